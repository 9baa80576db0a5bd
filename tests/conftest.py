import os

import numpy as np
import pytest
import torch
from PIL import Image

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n 2` on 2 cores: each worker (and the gen3c processes it starts) computes on one
    # thread unless told otherwise; torch's default of a thread per core in every worker made the
    # suite more than twice as slow (threads spinning against each other).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture()
def case_insensitive_folders(monkeypatch):
    """Every folder as macOS and Windows have them: a name finds the entry whose name differs from
    it only in case or Unicode form (gen3c.io.paths' probe; Linux's file systems cannot be made so)."""
    from gen3c.io import paths

    def found(path):
        try:
            return any(paths.one_file_key(name) == paths.one_file_key(path.name) for name in os.listdir(path.parent))
        except OSError:
            return False

    monkeypatch.setattr(paths, "_found_as_spelled", found)


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


def make_room_sample(height: int = 192, width: int = 320):
    """An in-memory image + depth + intrinsics: a textured back wall (depth 4), an orange box
    (depth 2.5) and a blue ball. Returns (image (3, H, W) in [−1, 1], depth (H, W), K (3, 3))."""
    from gen3c.cameras import intrinsics_from_fov

    H, W = height, width
    K = intrinsics_from_fov(60, H, W)
    fx, cx, cy = float(K[0, 0]), float(K[0, 2]), float(K[1, 2])
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    u, v = xx / W, yy / H
    depth = np.full((H, W), 4.0, np.float32)
    rgb = np.stack([0.55 + 0.25 * np.sin(u * 18), 0.6 + 0.2 * np.cos(v * 14), 0.75 + 0.1 * np.sin((u + v) * 9)], -1)
    box = (v > 0.3) & (v < 0.75) & (u > 0.2) & (u < 0.5)
    depth[box] = 2.5
    rgb = np.where(box[..., None], np.array([0.95, 0.5, 0.12]) * (0.85 + 0.15 * np.sin(xx / 6))[..., None], rgb)
    # A ball of radius 0.45 centred 3 units ahead, right of the box: ray-sphere depth.
    rx, ry = (xx - cx) / fx, (yy - cy) / fx
    centre, radius = np.array([0.75, 0.2, 3.0]), 0.45
    a = rx**2 + ry**2 + 1
    b = -2 * (rx * centre[0] + ry * centre[1] + centre[2])
    disc = b**2 - 4 * a * (centre @ centre - radius**2)
    ball = disc > 0
    z = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    depth[ball] = z[ball]
    shade = np.clip(1.0 - ((rx * z - centre[0]) ** 2 + (ry * z - centre[1] + 0.2) ** 2) / radius**2 * 0.6, 0.3, 1)
    rgb = np.where(ball[..., None], np.array([0.2, 0.45, 0.95]) * shade[..., None], rgb)
    image = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1) * 2 - 1
    return image.clamp(-1, 1), torch.from_numpy(depth), K


@pytest.fixture(scope="session")
def room_sample():
    return make_room_sample()


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: one thread avoids thread hand-offs that dominate on a busy shared CPU (a module
    takes it with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
