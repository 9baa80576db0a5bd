"""Evaluation metrics on cases with known answers (gen3c.evaluation.metrics, baselines, suite)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gen3c.cache import reliable_depth_mask
from gen3c.cameras import Cameras, intrinsics_from_fov, rotation_angle_degrees
from gen3c.evaluation import metrics
from gen3c.evaluation.baselines import (
    CacheRenderGenerator,
    HomographyGenerator,
    StillGenerator,
    plane_homography,
)
from gen3c.evaluation.suite import (
    HELD_OUT_SEEDS,
    BenchmarkConfig,
    benchmark_cases,
    contact_indices,
    render_ground_truth,
)
from gen3c.pipelines.camera_video import build_cache
from gen3c.pipelines.preview import composite_buffers
from gen3c.scenes import Checker, Plane, Scene, render, source_camera


def test_psnr_of_a_known_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 20, generator=g) - 0.5
    signs = torch.randint(0, 2, x.shape, generator=g) * 2 - 1
    # ±0.1 in [−1, 1] is ±0.05 on the [0, 1] scale: MSE 0.0025, PSNR 10·log10(400).
    out = metrics.psnr(x + 0.1 * signs, x)
    assert torch.allclose(out, torch.full((2,), 10 * math.log10(400), dtype=torch.float64), atol=1e-4)


def test_psnr_masks():
    x = torch.zeros(1, 3, 4, 4)
    y = x.clone()
    y[..., :2] = 0.4  # error 0.2 on the [0, 1] scale in the left half only
    left = torch.zeros(1, 4, 4, dtype=torch.bool)
    left[..., :2] = True
    assert float(metrics.psnr(y, x, left)) == pytest.approx(10 * math.log10(25), abs=1e-4)
    assert math.isinf(float(metrics.psnr(y, x, ~left)))
    assert math.isnan(float(metrics.psnr(y, x, torch.zeros_like(left))))



def test_a_mask_of_another_shape_is_refused_not_broadcast():
    """A (B, 1, H, W) mask broadcast against the (B, H, W) pixels, so each image was scored over
    every image's pixels (a batch of a noisy and an identical image read 20 dB twice, not 20 and
    ∞); an (H, W) one failed with torch's own size message."""
    pred, target = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    pred[0] += 0.2
    mask = torch.ones(2, 4, 4, dtype=torch.bool)
    assert metrics.psnr(pred, target, mask).tolist() == [pytest.approx(20.0), math.inf]
    for wrong in (mask[:, None], mask[0]):
        for score in (metrics.psnr, metrics.ssim):
            with pytest.raises(ValueError, match=r"^mask has shape .* but the images' pixels \(2, 4, 4\): pass one \(H, W\) map per image"):
                score(pred, target, wrong)


def test_8_bit_images_are_refused_not_read_as_white():
    """uint8 frames (0 … 255) went through the [−1, 1] → [0, 1] clamp as almost all white: two
    random 8-bit images scored ≈ 29 dB PSNR and SSIM 0.9 (truly ≈ 7.7 dB, ≈ 0)."""
    g = torch.Generator().manual_seed(5)
    a, b = (torch.randint(0, 256, (1, 3, 8, 8), generator=g, dtype=torch.uint8) for _ in range(2))
    for metric in (metrics.psnr, metrics.ssim):
        with pytest.raises(ValueError, match=r"floating point in \[−1, 1\], got torch.uint8: convert 8-bit ones"):
            metric(a, b)
    depth = torch.full((2, 8, 8), 3.0)
    cams = Cameras(torch.eye(4).repeat(2, 1, 1), intrinsics_from_fov(60.0, 8, 8), 8, 8)
    with pytest.raises(ValueError, match="floating point"):
        metrics.warp_error(torch.stack([a[0], b[0]]), depth, cams)
    # Converted as the message says, they score what float images do.
    assert float(metrics.psnr(a.float() / 127.5 - 1, b.float() / 127.5 - 1)) < 10

def test_images_with_nan_or_infinite_values_are_refused_not_scored():
    """An infinite pixel was clamped to white and scored as one (42 dB for one +∞ in an otherwise
    identical 2×3×32×40 pair, where the error has no value), and a NaN made the score NaN, which
    reads as an empty mask's "no such score". Every colour metric refuses both in one line."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 3, 32, 40, generator=g) * 2 - 1
    depth = torch.full((2, 32, 40), 3.0)
    cams = Cameras(torch.eye(4).repeat(2, 1, 1), intrinsics_from_fov(60.0, 32, 40), 32, 40)
    for bad in (math.inf, -math.inf, math.nan):
        y = x.clone()
        y[0, 1, 4, 5] = bad
        for score in (metrics.psnr, metrics.ssim, metrics.squared_error_map):
            for pred, target in ((y, x), (x, y)):
                with pytest.raises(ValueError, match=r"^images hold 1 NaN or infinite values \(of 3840\), which have no score"):
                    score(pred, target)
        video = torch.cat([x, y])
        with pytest.raises(ValueError, match="NaN or infinite"):
            metrics.warp_error(video, depth, cams)
        with pytest.raises(ValueError, match="NaN or infinite"):
            metrics.camera_errors(video, cams, depth[0])
    # finite images score as before: identical ones ∞ dB and SSIM 1
    assert math.isinf(float(metrics.psnr(x, x))) and float(metrics.ssim(x, x)) == pytest.approx(1.0, abs=1e-5)


def test_ssim_identity_and_constant_images():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 24, 24, generator=g) * 2 - 1
    assert torch.allclose(metrics.ssim(x, x), torch.ones(2), atol=1e-5)
    # Constant images a, b (on [0, 1]): no variance, so SSIM = (2ab + C1) / (a² + b² + C1).
    a, b = 0.6, 0.4
    value = metrics.ssim(torch.full((1, 3, 16, 16), 2 * a - 1), torch.full((1, 3, 16, 16), 2 * b - 1))
    expected = (2 * a * b + metrics.SSIM_C1) / (a * a + b * b + metrics.SSIM_C1)
    assert float(value) == pytest.approx(expected, abs=1e-5)
    # Structure destroyed: a pattern against its negative has SSIM well below 0.
    assert (metrics.ssim(x, -x) < -0.5).all()


def _ssim_reference(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """SSIM map written out from Wang et al. 2004 in float64: an explicit 11×11 Gaussian
    (σ 1.5, normalised) over every pixel's window, borders mirrored without repeating the edge
    pixel, per channel on [0, 1], channels averaged. (C, H, W) in [0, 1] → (H, W)."""
    r = np.arange(-5, 6)
    g = np.exp(-(r**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    maps = []
    for x, y in zip(pred, target, strict=True):
        px, py = np.pad(x, 5, mode="reflect"), np.pad(y, 5, mode="reflect")
        wx = np.lib.stride_tricks.sliding_window_view(px, (11, 11))
        wy = np.lib.stride_tricks.sliding_window_view(py, (11, 11))
        mx, my = (wx * w).sum(axis=(-2, -1)), (wy * w).sum(axis=(-2, -1))
        vx = (((wx - mx[..., None, None]) ** 2) * w).sum(axis=(-2, -1))
        vy = (((wy - my[..., None, None]) ** 2) * w).sum(axis=(-2, -1))
        cov = ((wx - mx[..., None, None]) * (wy - my[..., None, None]) * w).sum(axis=(-2, -1))
        c1, c2 = 0.01**2, 0.03**2
        maps.append((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return np.mean(maps, axis=0)


def test_ssim_map_matches_the_definition_written_out():
    """Window, constants, colour handling and the mirrored borders against an independent
    float64 implementation, on a known affine intensity change plus noise and a blur."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 23, 31, generator=g) * 2 - 1
    y = torch.empty_like(x)
    y[0] = (0.6 * x[0] + 0.2 + 0.1 * torch.randn(x[0].shape, generator=g)).clamp(-1, 1)  # contrast, brightness, noise
    y[1] = F.avg_pool2d(x[1][None], 3, stride=1, padding=1, count_include_pad=False)[0]  # blur
    ours = metrics.ssim_map(y, x).double().numpy()
    for b in range(2):
        ref = _ssim_reference(((y[b].double() + 1) / 2).numpy(), ((x[b].double() + 1) / 2).numpy())
        assert np.abs(ours[b] - ref).max() < 2e-5, b
        assert float(metrics.ssim(y[b : b + 1], x[b : b + 1])) == pytest.approx(ref.mean(), abs=2e-6)


def test_ssim_agrees_with_scikit_image_inside_the_border():
    """scikit-image (when installed) computes the same Gaussian SSIM; its borders differ
    (it mirrors the edge pixel too and crops the mean), so the maps are compared inside."""
    skm = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 3, 32, 40, generator=g) * 2 - 1
    y = (0.8 * x + 0.15 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    _, full = skm.structural_similarity(((y[0] + 1) / 2).double().numpy(), ((x[0] + 1) / 2).double().numpy(), data_range=1.0,
                                        gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=0, full=True)  # fmt: skip
    ours = metrics.ssim_map(y, x)[0].double().numpy()
    assert np.abs(ours[5:-5, 5:-5] - full.mean(axis=0)[5:-5, 5:-5]).max() < 2e-5


def _two_planes(near_half: float = 0.6) -> Scene:
    """A textured wall at z = 4 and a textured square at z = 2 in front of it."""
    wall = Plane((0.0, 0.0, 4.0), (0.0, 0.0, -1.0), Checker(0.5, seed=1), u_axis=(1.0, 0.0, 0.0))
    near = Plane((0.0, 0.0, 2.0), (0.0, 0.0, -1.0), Checker(0.25, ((0.9, 0.3, 0.2), (0.2, 0.3, 0.9))), u_axis=(1.0, 0.0, 0.0),
                 half_extent=(near_half, near_half))  # fmt: skip
    return Scene([wall, near], ambient=1.0)


def _shifted(cam: Cameras, xs: list[float]) -> Cameras:
    """The source camera moved to x = each of ``xs`` (no rotation): w2c translation −x."""
    w2c = torch.eye(4).repeat(len(xs), 1, 1)
    w2c[:, 0, 3] = -torch.tensor(xs)
    return Cameras(w2c, cam.K[0], cam.height, cam.width)


def test_source_visibility_disocclusion_width():
    src = source_camera(64, 96)
    scene = _two_planes()
    s = render(scene, src)
    b = 0.4
    target = render(scene, _shifted(src, [0.0, b]))
    seen = metrics.source_visibility(target.depth, _shifted(src, [0.0, b]), s.depth[0], src.K[0], src.w2c[0])
    assert seen[0].all()  # the source camera itself sees everything
    # Moving right by b uncovers f·b·(1/2 − 1/4) pixels of wall beside the near square, and
    # f·b/4 pixels of wall the source never framed enter at the right border.
    f = float(src.K[0, 0, 0])
    runs = torch.unique_consecutive((~seen[1, 32]).int(), return_counts=True)
    hidden = [n for v, n in zip(runs[0].tolist(), runs[1].tolist(), strict=True) if v == 1]
    assert len(hidden) == 2
    assert hidden[0] == pytest.approx(f * b * (1 / 2 - 1 / 4), abs=1.5)
    assert hidden[1] == pytest.approx(f * b / 4, abs=1.5)
    # Pixels with no surface are never seen.
    sky = torch.full_like(target.depth, math.inf)
    assert not metrics.source_visibility(sky, _shifted(src, [0.0, b]), s.depth[0], src.K[0], src.w2c[0]).any()


def test_source_visibility_leaves_out_what_the_edge_filter_drops():
    """With the cache's edge filter, the source pixels it drops (2 on each side of the square's
    depth edges, GEN3C's 5×5 window) are not seen from any camera, the source's own included."""
    src = source_camera(64, 96)
    scene = _two_planes()
    s = render(scene, src)
    kept = reliable_depth_mask(s.depth[0])
    dropped_cols = (~kept[32]).nonzero()[:, 0].tolist()
    square = (s.depth[0, 32] < 3).nonzero()[:, 0]
    left, right = int(square.min()), int(square.max())
    assert dropped_cols == [left - 2, left - 1, left, left + 1, right - 1, right, right + 1, right + 2]
    seen = metrics.source_visibility(s.depth, src, s.depth[0], src.K[0], src.w2c[0], kept)
    # On the source's own grid a pixel counts as seen through a kept neighbour at distance 1 at
    # most (the projection lands on the pixel centre, ± float rounding): all but the run ends.
    assert not (~seen[0] & kept).any()
    assert (~seen[0]).sum() >= (~kept).sum() - 2 * 2 * 64
    b = 0.4
    moved = _shifted(src, [b])
    target = render(scene, moved)
    seen = metrics.source_visibility(target.depth, moved, s.depth[0], src.K[0], src.w2c[0], kept)
    plain = metrics.source_visibility(target.depth, moved, s.depth[0], src.K[0], src.w2c[0])
    assert not (seen & ~plain).any()
    # Moving right by b: the strip uncovered beside the square (f·b/4 pixels) widens by the 2
    # dropped square pixels on one side and the 2 dropped wall pixels on the other, less the one
    # pixel a bilinear footprint reaches on each side of a projected position between pixels.
    f = float(src.K[0, 0, 0])
    runs = torch.unique_consecutive((~seen[0, 32]).int(), return_counts=True)
    hidden = [n for v, n in zip(runs[0].tolist(), runs[1].tolist(), strict=True) if v == 1]
    assert len(hidden) == 3
    assert hidden[1] == pytest.approx(f * b / 4 + 4 - 1, abs=1.5)
    assert hidden[2] == pytest.approx(f * b / 4, abs=1.5)  # past the source's right border: no filter there


def test_benchmark_seen_mask_is_what_the_cache_covers():
    """The benchmark's seen mask uses exactly the cache's edge filter, and agrees with the
    pixels the cache's render actually covers (it leaks a little through cracks)."""
    config = BenchmarkConfig(scenes=("room",), presets=("left",), resolution=(88, 160), num_frames=5)
    truth = render_ground_truth(benchmark_cases(config)[0], config)
    cache = build_cache([truth.source])
    assert torch.equal(cache.views[0].valid[0], truth.reliable)
    _, covered, _ = composite_buffers(cache.render(truth.cameras))
    seen = truth.seen[1:]
    assert 0.1 < float((~seen).float().mean()) < 0.6
    assert float(covered[1:][seen].float().mean()) > 0.99
    assert float((~covered[1:][~seen]).float().mean()) > 0.9


def test_warp_error_known_answers():
    src = source_camera(48, 64)
    scene = _two_planes()
    still = _shifted(src, [0.0, 0.0, 0.0])
    gt = render(scene, still)
    err, coverage = metrics.warp_error(gt.rgb, gt.depth, still)
    assert err.abs().max() < 1e-5 and (coverage == 1).all()
    # A brightness step of 0.2 (0.1 on the [0, 1] scale) between frames shows as exactly 0.1.
    flicker = gt.rgb.clone() * 0.5
    flicker[1] += 0.2
    err, _ = metrics.warp_error(flicker, gt.depth, still)
    assert torch.allclose(err, torch.full((2,), 0.1, dtype=torch.float64), atol=1e-5)
    # A moving camera's own ground truth is consistent; the frames of another path are not.
    moving = _shifted(src, [0.0, 0.05, 0.1])
    truth = render(scene, moving, supersample=2)
    good, _ = metrics.warp_error(truth.rgb, truth.depth, moving)
    bad, _ = metrics.warp_error(truth.rgb.flip(0), truth.depth, moving)
    assert good.max() < 0.04 and bad.min() > 2 * good.max(), (good, bad)


def test_frames_cameras_and_depth_that_do_not_go_together_are_refused_naming_both():
    """One camera more than frames was used silently (the last ignored); one fewer, or a depth map
    of another size, failed with an IndexError or a reshape error naming neither."""
    T, H, W = 4, 16, 24
    frames, depth = torch.zeros(T, 3, H, W), torch.ones(T, H, W)
    cams = Cameras(torch.eye(4).repeat(T + 1, 1, 1), intrinsics_from_fov(60.0, H, W).expand(T + 1, 3, 3), H, W)
    for cameras, count in ((cams, 5), (cams[: T - 1], 3)):
        message = f"^the video has 4 frames of 16×24 but {count} cameras of 16×24: pass one camera per frame"
        with pytest.raises(ValueError, match=message):
            metrics.warp_error(frames, depth, cameras)
        with pytest.raises(ValueError, match=message):
            metrics.camera_errors(frames, cameras, depth[0])
    with pytest.raises(ValueError, match=r"^depth has shape \(3, 16, 24\) but the video needs \(4, 16, 24\)$"):
        metrics.warp_error(frames, depth[1:], cams[:T])
    with pytest.raises(ValueError, match=r"^source_depth has shape \(16, 32\) but the video needs \(16, 24\)$"):
        metrics.camera_errors(frames, cams[:T], torch.ones(H, W + 8))
    with pytest.raises(ValueError, match=r"^the video has 4 frames of 16×24 but 4 cameras of 32×48"):
        metrics.warp_error(frames, depth, Cameras(cams.w2c[:T], cams.K[:T], 2 * H, 2 * W))


def test_source_visibility_refuses_cameras_that_do_not_go_with_the_depth():
    """One camera for 4 depth maps served every frame, and cameras made for another size
    projected with the wrong intrinsics, both silently; a source_valid of another size failed
    in torch."""
    T, H, W = 4, 16, 24
    src = source_camera(H, W)
    depth, source = torch.full((T, H, W), 4.0), torch.full((H, W), 4.0)
    cams = _shifted(src, [0.0, 0.5, 1.0, 1.5])
    assert metrics.source_visibility(depth, cams, source, src.K[0], src.w2c[0])[1:].float().mean() < 1.0
    for cameras, message in ((src, "1 cameras of 16×24"), (_shifted(source_camera(2 * H, 2 * W), [0.0] * T), "4 cameras of 32×48")):
        with pytest.raises(ValueError, match=f"^target_depth has 4 frames of 16×24 but {message}: pass one camera per frame"):
            metrics.source_visibility(depth, cameras, source, src.K[0], src.w2c[0])
    with pytest.raises(ValueError, match=r"^source_valid has shape \(8, 12\) but the video needs \(16, 24\)$"):
        metrics.source_visibility(depth, cams, source, src.K[0], src.w2c[0], torch.ones(8, 12, dtype=torch.bool))


@pytest.fixture(scope="module")
def room_truth():
    config = BenchmarkConfig(scenes=("corridor",), presets=("left",), num_frames=13)
    return render_ground_truth(benchmark_cases(config)[0], config)


def test_camera_error_is_zero_on_ground_truth(room_truth):
    t = room_truth
    err = metrics.camera_errors(t.rgb, t.cameras, t.source.depth, t.reliable, min_baseline=0.02 * t.median_depth)
    assert not err.failed.any() and err.points > 50
    assert metrics.nanmean(err.rotation) < 0.5
    assert metrics.nanmean(err.translation) < 3.0
    assert metrics.nanmean(err.center) < 0.01 * t.median_depth


def test_camera_error_of_a_still_video_is_the_commanded_motion(room_truth):
    """A video that never moves (the source frame repeated) is recovered at the source
    camera, so its errors are the commanded motion itself, frame by frame: the rotation
    angle and the centre's distance from frame 0; no direction of motion exists."""
    t = room_truth
    still = t.source.image[None].repeat(len(t.cameras), 1, 1, 1)
    err = metrics.camera_errors(still, t.cameras, t.source.depth, t.reliable, min_baseline=0.02 * t.median_depth)
    R = t.cameras.w2c[:, :3, :3].double()
    moved = (t.cameras.centers[1:] - t.cameras.centers[0]).double().norm(dim=1)
    turned = torch.stack([rotation_angle_degrees(R[0], R[i]) for i in range(1, len(t.cameras))])
    assert not err.failed.any() and float(moved[-1]) > 0.1 * t.median_depth
    assert torch.allclose(err.center, moved, atol=1e-3 * t.median_depth)
    assert torch.allclose(err.rotation, turned, atol=0.02)
    assert err.translation.isnan().all()


@pytest.mark.slow
def test_camera_error_measures_a_known_rotation_and_path_offset(room_truth):
    """The scene filmed with every frame after the first turned by 3° about its own centre,
    along the commanded path turned by 20° about the vertical through frame 0's centre and
    shortened to half: rotation error ≈ 3°, direction error ≈ 20°, centre error ≈ the distance
    between the two paths' centres."""
    t = room_truth
    cams = t.cameras[[0, 3, 6, 9, 12]]  # every third frame: one render of 5 frames
    a, yaw_angle = math.radians(20.0), 3.0
    turn = torch.tensor([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]], dtype=torch.float64)
    c = cams.centers.double()
    offset = c[0] + 0.5 * (c - c[0]) @ turn.T
    cy, sy = math.cos(math.radians(yaw_angle)), math.sin(math.radians(yaw_angle))
    yaw = torch.tensor([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]], dtype=torch.float64)
    R = cams.w2c[:, :3, :3].double().clone()
    R[1:] = yaw @ R[1:]
    w2c = cams.w2c.double().clone()
    w2c[:, :3, :3] = R
    w2c[:, :3, 3] = -(R @ offset[:, :, None])[:, :, 0]
    frames = render_perturbed(t, Cameras(w2c.float(), cams.K, cams.height, cams.width))
    err = metrics.camera_errors(frames, cams, t.source.depth, t.reliable, min_baseline=0.02 * t.median_depth)
    assert not err.failed.any()
    assert err.rotation.tolist() == pytest.approx([yaw_angle] * 4, abs=0.5)
    assert metrics.nanmean(err.translation) == pytest.approx(20.0, abs=5.0)  # the floor (ground truth) is 1–3°
    apart = (offset - c).norm(dim=1)[1:]
    assert (err.center - apart).abs().max() < 0.01 * t.median_depth, (err.center, apart)


def test_a_pose_that_fits_none_of_its_points_is_a_failure_not_a_score():
    """Tracked corners of a 32×48 `objects` case (17 on the backdrop at z = 8, one near) seen
    from a camera at (0.3, 0, 0): OpenCV's RANSAC returned EPnP's pose re-solved on its inliers,
    a camera 5·10¹² away that reprojects none of them within the threshold, and it was scored
    as a recovered pose (a centre error of 10¹¹ median depths swamped the means)."""
    world = [[-4.0415, 2.117, 8.0], [-2.5019, -2.5019, 8.0], [-1.9245, -2.8868, 8.0], [-1.5396, -1.7321, 8.0],
             [-1.3472, -2.8868, 8.0], [-1.3472, -2.3094, 8.0], [-0.9623, -0.9623, 8.0], [-0.7698, -1.7321, 8.0],
             [-0.5774, -2.6943, 8.0], [0.1925, -1.9245, 8.0], [0.7698, -2.8868, 8.0], [2.117, 2.3094, 8.0],
             [2.8868, 1.9245, 8.0], [3.0792, 1.1547, 8.0], [0.7664, -0.2705, 1.8739], [3.2717, 2.5019, 8.0],
             [3.849, 1.5396, 8.0], [3.849, 2.117, 8.0]]  # fmt: skip
    uv = [[0.706, 27.086], [8.554, 3.145], [12.018, 0.977], [14.047, 6.883], [15.126, 1.054], [15.088, 3.881],
          [17.028, 10.948], [17.936, 6.923], [19.065, 1.733], [20.012, 6.179], [23.227, 0.298], [29.976, 27.919],
          [33.823, 26.044], [34.698, 22.111], [35.831, 9.689], [36.133, 28.65], [38.582, 24.184], [38.878, 27.054]]  # fmt: skip
    K = intrinsics_from_fov(60.0, 32, 48).double()
    R, center = metrics._pnp(torch.tensor(world, dtype=torch.float64), torch.tensor(uv), K, 1.0, 10)
    if R is not None:  # a pose it keeps is one near the true camera
        assert float((center - torch.tensor([0.3, 0.0, 0.0], dtype=torch.float64)).norm()) < 1.0, center
        assert float(rotation_angle_degrees(R, torch.eye(3, dtype=torch.float64))) < 15.0


def render_perturbed(truth, cameras: Cameras) -> torch.Tensor:
    from gen3c.scenes import make_scene

    return render(make_scene(truth.case.scene, truth.case.seed), cameras).rgb.float()


def test_plane_homography_of_a_sideways_move():
    K = intrinsics_from_fov(60, 48, 64)
    w2c = torch.eye(4)
    w2c[0, 3] = -0.5  # camera moved to x = 0.5: points move left by f·0.5/d
    H = plane_homography(K, torch.eye(4), K, w2c, plane_depth=2.0)
    p = H @ torch.tensor([10.0, 20.0, 1.0], dtype=torch.float64)
    assert (p[:2] / p[2]).tolist() == pytest.approx([10.0 - float(K[0, 0]) * 0.5 / 2.0, 20.0], abs=1e-9)


def test_baselines_on_a_plane():
    src = source_camera(48, 64)
    wall = Scene([Plane((0.0, 0.0, 3.0), (0.0, 0.0, -1.0), Checker(0.2, seed=2), u_axis=(1.0, 0.0, 0.0))], ambient=1.0)
    s = render(wall, src, supersample=2)
    cache = build_cache([_view(s, src)])
    cams = _shifted(src, [0.0, 0.1, 0.2])
    truth = render(wall, cams, supersample=2).rgb
    image = s.rgb[0].float()
    still = StillGenerator().generate(cache, cams, image)
    assert torch.equal(still, image[None].repeat(3, 1, 1, 1))
    # A single plane is exactly what one homography models: it beats holding still by far.
    warped = HomographyGenerator().generate(cache, cams, image)
    inner = (slice(None), slice(None), slice(4, -4), slice(8, -8))
    assert float(metrics.psnr(warped[inner], truth[inner]).min()) > float(metrics.psnr(still[inner], truth[inner])[1:].max()) + 8
    raw = CacheRenderGenerator().generate(cache, cams, image)
    assert (raw[2, :, :, -2:] == -1).all()  # the right border is uncovered after moving right


def test_the_homography_plane_is_at_the_source_views_median_depth(monkeypatch):
    """The plane sat at the median depth of the points the cache's edge filter keeps, not the
    source view's median depth (the scene's scale the docs name): a source whose far part is all
    depth edges put it at the near part's depth."""
    from gen3c.evaluation import baselines
    from gen3c.pipelines.camera_video import SourceView

    src = source_camera(24, 40)
    depth = torch.ones(24, 40)
    depth[:, 12:] = 4.0 + 0.6 * ((torch.arange(24)[:, None] + torch.arange(12, 40)) % 2)  # a rough far part: every pixel an edge
    view = SourceView(torch.zeros(3, 24, 40), depth, src.K[0])
    cache = build_cache([view])
    assert float(cache.views[0].points[0][cache.views[0].valid[0]][:, 2].median()) == 1.0  # what the cache keeps: the near part
    planes = []
    real = baselines.plane_homography
    monkeypatch.setattr(baselines, "plane_homography", lambda *a: planes.append(a[-1]) or real(*a))
    HomographyGenerator().generate(cache, _shifted(src, [0.0, 0.1]), view.image)
    assert planes == [view.median_depth()] * 2 and view.median_depth() == 4.0


def _view(s, cam):
    from gen3c.pipelines.camera_video import SourceView

    return SourceView(s.rgb[0].float(), s.depth[0].float(), cam.K[0])


def test_held_out_seeds_and_contact_frames():
    assert min(HELD_OUT_SEEDS) >= 1000 and len(set(HELD_OUT_SEEDS)) == len(HELD_OUT_SEEDS) == 32
    full = {c.name: c.seed for c in benchmark_cases(BenchmarkConfig())}
    subset = benchmark_cases(BenchmarkConfig(scenes=("street",), presets=("up", "left")))
    assert [(c.name, c.seed) for c in subset] == [("street-up", full["street-up"]), ("street-left", full["street-left"])]
    assert contact_indices(25, 5) == [1, 7, 12, 18, 24] and contact_indices(4, 5) == [1, 2, 3]


@pytest.mark.parametrize(
    "change, refusal",
    [
        ({"contact_frames": True}, r"--contact_frames True must be 1 or more, a whole number \(frames per row"),  # (showed 1 frame)
        ({"contact_frames": 2.5}, r"--contact_frames 2\.5 must be 1 or more, a whole number"),
        ({"num_frames": 3.5}, r"--num_video_frames 3\.5: the benchmark needs at least 3 frames and at most \d+, a whole number$"),
        ({"resolution": (32, 48.5)}, r"--resolution 32x48\.5 must be whole numbers of pixels: pass at least 16 a side$"),
    ],
)
def test_benchmark_counts_from_python_are_whole_numbers(change, refusal):
    """BenchmarkConfig's counts from Python are whole numbers by gen3c's one rule (a bool or a
    float is refused in one line naming the setting, before any case runs); numpy integers are taken."""
    import numpy as np

    from gen3c.errors import Gen3cInputError

    BenchmarkConfig(scenes=("room",), presets=("left",), resolution=(np.int64(32), 48), num_frames=np.int64(3), contact_frames=np.int64(2)).check()
    with pytest.raises(Gen3cInputError, match=f"^{refusal}"):
        BenchmarkConfig(**{"scenes": ("room",), "presets": ("left",), "resolution": (32, 48), "num_frames": 3, **change}).check()


def test_one_contact_frame_is_the_last_as_every_spread_ends_there():
    """--contact_frames 1 showed frame 1, the least different from the source view; any count
    above 1 ends at the last frame, and so does 1 now."""
    assert contact_indices(25, 1) == [24] and contact_indices(2, 1) == [1]
    assert [contact_indices(25, n)[-1] for n in (1, 2, 3, 24, 30)] == [24] * 5


def test_benchmark_psnr_is_pooled_per_case_then_averaged_as_documented():
    """docs/eval.md: image scores over frames 1 … T−1 on the [0, 1] scale, pooled over a case's
    pixels (all / seen / disoccluded), and the summary the mean over cases — recomputed here by
    hand in float64 from the ground truth for the `still` row (the source frame held still)."""

    from gen3c.evaluation.report import summarize
    from gen3c.evaluation.suite import (
        BenchmarkConfig,
        benchmark_cases,
        render_ground_truth,
        run_benchmark,
        select_methods,
    )

    config = BenchmarkConfig(scenes=("room", "street"), presets=("left",), resolution=(32, 48), num_frames=4)
    result = run_benchmark(config, select_methods(["still"]), device="cpu")
    per_case = []
    for case, scored in zip(benchmark_cases(config), result.cases, strict=True):
        truth = render_ground_truth(case, config, "cpu")
        unit = ((truth.rgb.double() + 1) / 2).clamp(0, 1).numpy()
        squared = ((unit[0][None] - unit[1:]) ** 2).mean(axis=1)  # (T − 1, H, W)
        seen = truth.seen[1:].numpy()
        hand = {"psnr": squared.mean(), "psnr_seen": squared[seen].mean(), "psnr_disoccluded": squared[~seen].mean()}
        for score, mse in hand.items():
            assert scored.scores["still"][score] == pytest.approx(10 * math.log10(1 / mse), abs=1e-4), (case.name, score)
        per_case.append(10 * math.log10(1 / hand["psnr"]))
    assert summarize(result)["still"]["psnr"] == pytest.approx(sum(per_case) / len(per_case), abs=1e-4)


def test_benchmark_scores_are_reproducible():
    """Two runs give the same numbers to the last digit, whatever ran before in the process:
    the homography row alone, then after the other rows (camera scores included — OpenCV's
    PnP RANSAC draws from a fixed seed)."""
    from gen3c.evaluation.suite import run_benchmark, select_methods

    config = BenchmarkConfig(scenes=("objects",), presets=("right",), resolution=(48, 80), num_frames=5)
    alone = run_benchmark(config, select_methods(["homography"]), device="cpu").cases[0].scores
    after = run_benchmark(config, select_methods(["cache", "still", "homography"]), device="cpu").cases[0].scores
    assert alone["homography"] == after["homography"] and alone["ground_truth"] == after["ground_truth"]
    assert math.isfinite(after["homography"]["rotation_error"])


def test_a_scene_or_preset_named_twice_is_refused():
    from gen3c.errors import Gen3cInputError

    with pytest.raises(Gen3cInputError, match="--scenes names 'room' twice"):
        BenchmarkConfig(scenes=("room", "street", "room")).check()
    with pytest.raises(Gen3cInputError, match="--presets names 'up' twice"):
        BenchmarkConfig(presets=("up", "up")).check()


def test_a_supersample_that_is_no_whole_number_from_1_is_refused_before_any_case():
    """BenchmarkConfig is Python API (docs/eval.md): before, check() let supersample 0 or 2.5
    through, and rendering the first case's ground truth raised render's ValueError or a
    TypeError from range()."""
    from gen3c.errors import Gen3cInputError

    for bad in (0, 2.5, True):
        with pytest.raises(Gen3cInputError, match=rf"^supersample {bad!r} must be a whole number ≥ 1"):
            BenchmarkConfig(supersample=bad).check()
    BenchmarkConfig(supersample=3).check()
    BenchmarkConfig(supersample=np.int64(2)).check()  # a numpy whole number, as a script computes it


def test_a_generator_named_like_a_method_row_is_refused():
    """A generator passed in (docs/eval.md, "Python") is a row of its own: one named like a
    baseline row would silently overwrite that row's scores, so it is refused."""
    from gen3c.errors import Gen3cInputError
    from gen3c.evaluation.suite import select_methods
    from gen3c.pipelines.preview import PreviewGenerator

    with pytest.raises(Gen3cInputError, match="the generator's row is named 'preview', like the 'preview' row"):
        select_methods(["still", "preview"], generator=PreviewGenerator())
    rows = [m.name for m in select_methods(["still"], generator=PreviewGenerator())]
    assert rows == ["still", "preview"]
    # The ground-truth row is a row too: its camera floor would be overwritten by the generator's scores.
    named = PreviewGenerator()
    named.name = "ground_truth"
    with pytest.raises(Gen3cInputError, match="the generator's row is named 'ground_truth', like the ground-truth row"):
        select_methods(["still"], generator=named)
    with pytest.raises(Gen3cInputError, match="two benchmark rows are named 'ground_truth'"):
        select_methods(["still"], generator=PreviewGenerator(), compared={"ground_truth": PreviewGenerator()})


class _Oracle:
    """A perfect generator: it ray-casts the case's own scene into the commanded cameras."""

    def __init__(self, name: str, scene):
        self.name, self.scene = name, scene

    def generate(self, cache, cameras, first_frame=None, *, buffers=None, progress=None, chunk=0):
        return render(self.scene, cameras).rgb


def test_a_perfect_generator_scores_the_ideal_values():
    """A generator that makes the ground truth itself scores PSNR +∞ (shown "∞", not "—" as a
    score that does not exist), SSIM 1, and the ground-truth row's warp and camera errors; a
    compared model identical to its reference scores +∞ against it, in the mean too."""
    from gen3c.evaluation.report import markdown, summarize, summary_table
    from gen3c.evaluation.suite import run_benchmark, select_methods
    from gen3c.scenes import make_scene

    config = BenchmarkConfig(scenes=("objects",), presets=("right",), resolution=(48, 80), num_frames=5)
    case = benchmark_cases(config)[0]
    scene = make_scene(case.scene, case.seed)
    methods = select_methods(["still"], generator=_Oracle("oracle", scene), compared={"oracle:copy": _Oracle("oracle:copy", scene)})
    result = run_benchmark(config, methods, device="cpu")
    scores = result.cases[0].scores
    summary = summarize(result)
    for row in ("oracle", "oracle:copy"):
        assert summary[row]["psnr"] == summary[row]["psnr_seen"] == summary[row]["psnr_disoccluded"] == math.inf
        assert summary[row]["ssim"] == pytest.approx(1.0, abs=1e-6)
        for score in ("warp_error", "rotation_error", "center_error", "pose_failures"):
            assert scores[row][score] == scores["ground_truth"][score], score
    assert math.isfinite(scores["oracle"]["rotation_error"])
    assert summary["oracle:copy"]["psnr_vs_reference"] == math.inf
    assert math.isfinite(summary["still"]["psnr"]) and math.isnan(summary["still"]["psnr_vs_reference"])
    from rich.console import Console

    console = Console(width=300, record=True)
    console.print(summary_table(result))
    oracle_line = next(line for line in console.export_text().splitlines() if "oracle:copy" in line)
    assert oracle_line.count("∞") == 4, oracle_line  # PSNR, seen, disocc., vs ref
    assert "| `oracle` | ∞ | ∞ | ∞ | 1.000 |" in markdown(result, plots=False, sheets=[])


class _Spoiled(StillGenerator):
    """The still baseline with its video spoiled: ``nan_frame`` set to NaN, or one frame short."""

    def __init__(self, name: str, nan_frame: int | None = None):
        self.name, self.nan_frame = name, nan_frame

    def generate(self, cache, cameras, first_frame=None, *, buffers=None, progress=None, chunk=0):
        frames = super().generate(cache, cameras, first_frame, buffers=buffers, progress=progress)
        if self.nan_frame is None:
            return frames[:-1]
        frames[self.nan_frame, :, 3, 5] = math.nan
        return frames


def test_a_generator_without_the_chunk_keyword_is_benchmarked():
    """A user's generator written before `chunk` was in the protocol: the benchmark's progress
    wrapper passed chunk=… on to it (a TypeError)."""
    from gen3c.evaluation.suite import run_benchmark, select_methods

    class Old(StillGenerator):
        name = "old"

        def generate(self, cache, cameras, first_frame=None, *, buffers=None, progress=None):
            return super().generate(cache, cameras, first_frame, buffers=buffers, progress=progress)

    config = BenchmarkConfig(scenes=("room",), presets=("left",), resolution=(32, 48), num_frames=4)
    ticks = []
    result = run_benchmark(config, select_methods(["still"], generator=Old()), device="cpu", video_progress=ticks.append)
    assert {row for case in result.cases for row in case.scores} >= {"old", "still"}
    assert sum(ticks) == 2 * 4  # (progress as the CLI's bar takes it: the wrapper's path)


def test_a_video_that_cannot_be_scored_is_refused_naming_its_row_and_case():
    """A video with NaN in it scored NaN everywhere, which reads as "no such score" ("—") and
    drops the case out of every mean over cases unseen; one of the wrong length was refused
    without naming the row. Both are refused in one line naming the row and the case."""
    from gen3c.errors import Gen3cInputError
    from gen3c.evaluation.suite import run_benchmark, score_video, select_methods

    config = BenchmarkConfig(scenes=("room",), presets=("left",), resolution=(32, 48), num_frames=4)
    # generate_video refuses such frames itself (before they are written); the benchmark adds the row and case
    with pytest.raises(Gen3cInputError, match=r"^the broken row's video of case room-left: the broken generator returned NaN or infinite values"):
        run_benchmark(config, select_methods(["still"], generator=_Spoiled("broken", nan_frame=2)), device="cpu")
    with pytest.raises(Gen3cInputError, match=r"^the short row's video of case room-left: the short generator returned \(3, 3, 32, 48\) for 4 cameras"):
        run_benchmark(config, select_methods(["still"], generator=_Spoiled("short")), device="cpu")
    # videos made otherwise (score_video's own callers) are checked there, naming what they are given as
    truth = render_ground_truth(benchmark_cases(config)[0], config, "cpu")
    spoiled = truth.rgb.clone()
    spoiled[2, :, 3, 5] = math.nan
    with pytest.raises(Gen3cInputError, match=r"^the broken row's video of case room-left holds NaN or infinite values in 1 of its 4 frames \(the first: frame 2\)"):
        score_video(spoiled, truth, name="the broken row's video of case room-left")
    with pytest.raises(Gen3cInputError, match=r"^the short row's video of case room-left has shape \(3, 3, 32, 48\) but its ground truth \(4, 3, 32, 48\)"):
        score_video(truth.rgb[:-1], truth, name="the short row's video of case room-left")


def test_scoring_holds_the_maps_of_one_chunk_at_a_time_and_pools_as_all_at_once(monkeypatch):
    """score_video kept every frame's squared-error and SSIM maps until it pooled them (10 bytes
    per pixel and frame beyond what the memory check counts); it sums chunk by chunk now, with
    the scores of pooling all the maps at once (to float rounding)."""
    import weakref

    from gen3c.evaluation.suite import score_video

    config = BenchmarkConfig(scenes=("room",), presets=("left",), resolution=(32, 48), num_frames=9)
    truth = render_ground_truth(benchmark_cases(config)[0], config, "cpu")
    frames = truth.rgb[:1].repeat(9, 1, 1, 1)  # the still baseline's video
    alive, most = [], [0]
    for name in ("squared_error_map", "ssim_map"):
        original = getattr(metrics, name)

        def tracked(pred, target, _original=original):
            most[0] = max(most[0], sum(ref() is not None for ref in alive))
            out = _original(pred, target)
            alive.append(weakref.ref(out))
            return out

        monkeypatch.setattr(metrics, name, tracked)
    scores = score_video(frames, truth, chunk=2)
    assert len(alive) == 8 and most[0] <= 2  # 4 chunks of 2 maps; before: 7 alive at the last one
    monkeypatch.undo()
    sq = metrics.squared_error_map(frames[1:], truth.rgb[1:]).double()
    ss = metrics.ssim_map(frames[1:], truth.rgb[1:]).double()
    seen = truth.seen[1:]
    for part, mask in (("", torch.ones_like(seen)), ("_seen", seen), ("_disoccluded", ~seen)):
        assert scores[f"psnr{part}"] == pytest.approx(10 * math.log10(1 / float(sq[mask].mean())), rel=1e-6), part
        assert scores[f"ssim{part}"] == pytest.approx(float(ss[mask].mean()), rel=1e-6), part
    assert scores["psnr_per_frame"] == pytest.approx((10 * torch.log10(1 / sq.flatten(1).mean(dim=1))).tolist(), rel=1e-6)


def test_the_benchmark_keeps_no_buffers_of_a_video(monkeypatch):
    """run_benchmark kept each video's buffer renders (20 bytes per pixel and frame and buffer, counted by no
    memory check) until its scores were in; only the frames are kept now."""
    from gen3c.evaluation import suite

    kept = []
    make = suite.generate_video

    def recording(*args, **kwargs):
        video = make(*args, **kwargs)
        kept.append(video.buffers)
        return video

    monkeypatch.setattr(suite, "generate_video", recording)
    config = BenchmarkConfig(scenes=("room",), presets=("left",), resolution=(32, 48), num_frames=4)
    result = suite.run_benchmark(config, suite.select_methods(["still", "cache"]), device="cpu")
    assert kept == [None, None] and math.isfinite(result.cases[0].scores["cache"]["psnr_seen"])
