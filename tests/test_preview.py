"""The preview generator: no holes, frame 0 is the source, fills are steady over time."""

import numpy as np
import torch

from gen3c.cameras import intrinsics_from_fov
from gen3c.pipelines.camera_video import build_cache, generate_video, prepare_source, preset_cameras
from gen3c.pipelines.preview import PreviewGenerator, close_cracks, fill_holes


def run(box_scene, trajectory="left", n=25):
    _, _, image, depth = box_scene
    K = intrinsics_from_fov(60.0, *image.shape[-2:])
    src = prepare_source(image, depth, K, (96, 160))
    cams = preset_cameras(src, trajectory, "center_facing", n, 0.3)
    cache = build_cache([src])
    return src, generate_video(cache, cams, PreviewGenerator(), first_frame=src.image)


def test_preview_fills_every_hole_and_keeps_frame_zero(box_scene):
    src, result = run(box_scene)
    frames, masks = result.frames, result.buffers.masks
    assert frames.shape == (25, 3, 96, 160)
    assert torch.isfinite(frames).all() and frames.min() >= -1 and frames.max() <= 1
    assert torch.allclose(frames[0], src.image, atol=1e-5)
    # The last frame has real holes (disocclusion + border) and the preview filled them with
    # colours near the far wall's, not black.
    holes = masks[-1, 0, 0] == 0
    assert holes.float().mean() > 0.02
    assert (frames[-1][:, holes] > -0.95).any(dim=0).float().mean() > 0.99
    # Seen pixels are the cache render itself.
    seen = masks[-1, 0, 0] > 0
    assert torch.allclose(frames[-1][:, seen], result.buffers.colors[-1, 0][:, seen], atol=1e-5)


def test_preview_fill_is_temporally_steady(box_scene):
    # A camera standing still must give identical frames: the fill of frame t is rendered
    # from the fill cloud in frame t + 1, not inpainted anew.
    _, _, image, depth = box_scene
    K = intrinsics_from_fov(60.0, 96, 160)
    src = prepare_source(image, depth, K, (96, 160))
    cams = preset_cameras(src, "left", "center_facing", 20, 0.3)
    hold = cams[-1]
    from gen3c.cameras import Cameras

    still = Cameras.cat([cams, hold, hold, hold])
    result = generate_video(build_cache([src]), still, PreviewGenerator(), first_frame=src.image)
    assert torch.allclose(result.frames[-1], result.frames[-2], atol=2e-2)
    assert torch.allclose(result.frames[-2], result.frames[-3], atol=2e-2)


def test_fill_holes_takes_background_depth():
    import cv2

    depth = np.full((60, 120), 4.0, np.float32)
    depth[10:50, 60:100] = 2.0  # foreground box right of the hole
    holes = np.zeros_like(depth, bool)
    holes[10:50, 40:60] = True
    depth[holes] = 0
    rgb = np.zeros((60, 120, 3), np.uint8)
    rgb[depth == 4.0] = (0, 0, 255)
    rgb[depth == 2.0] = (255, 0, 0)
    out_rgb, out_depth = fill_holes(rgb, depth, holes, 3, cv2.INPAINT_TELEA)
    assert np.allclose(out_depth[holes], 4.0)
    # The fill continues the blue wall; the red box does not bleed in.
    assert out_rgb[holes][:, 2].mean() > 200 and out_rgb[holes][:, 0].mean() < 40


def test_close_cracks_fills_single_pixel_gaps():
    mask = torch.ones(10, 10, dtype=torch.bool)
    mask[5, 5] = False
    mask[0:3, 7:10] = False  # a real hole (3×3 at the corner) stays open
    color = torch.ones(3, 10, 10) * 0.5
    depth = torch.full((10, 10), 3.0)
    c, d, m = close_cracks(color * mask, depth * mask, mask)
    assert m[5, 5] and torch.allclose(c[:, 5, 5], torch.full((3,), 0.5)) and d[5, 5] == 3.0
    assert not m[1, 8]
