import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(scope="session")
def box_scene(tmp_path_factory):
    """A user image + depth on disk: a textured near box (depth 2) in front of a far wall (4).

    Returns (image_path, depth_path, image (3, H, W) in [−1, 1], depth (H, W)).
    """
    folder = tmp_path_factory.mktemp("box_scene")
    H, W = 96, 160
    yy, xx = np.mgrid[:H, :W]
    rgb = np.stack([(xx // 8 % 2) * 180 + 40, (yy // 8 % 2) * 180 + 40, np.full_like(xx, 100)], -1).astype(np.uint8)
    depth = np.full((H, W), 4.0, np.float32)
    depth[30:66, 60:110] = 2.0
    rgb[30:66, 60:110] = (230, 120, 20)
    Image.fromarray(rgb).save(folder / "image.png")
    np.save(folder / "depth.npy", depth)
    image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1
    return folder / "image.png", folder / "depth.npy", image, torch.from_numpy(depth)
