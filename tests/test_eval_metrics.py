"""Evaluation metrics on cases with known answers (gen3c.evaluation.metrics, baselines, suite)."""

from __future__ import annotations

import math

import pytest
import torch

from gen3c.cameras import Cameras, intrinsics_from_fov
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


def test_camera_error_measures_a_known_rotation(room_truth):
    t = room_truth
    angle = 3.0
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    yaw = torch.eye(4)
    yaw[0, 0], yaw[0, 2], yaw[2, 0], yaw[2, 2] = c, s, -s, c
    # Frames 1… turned by 3° about their own centre (w2c' = R·w2c keeps the centre).
    w2c = t.cameras.w2c.clone()
    w2c[1:] = yaw @ w2c[1:]
    scene_truth = render_perturbed(t, Cameras(w2c, t.cameras.K, t.cameras.height, t.cameras.width))
    err = metrics.camera_errors(scene_truth, t.cameras, t.source.depth, t.reliable, min_baseline=0.02 * t.median_depth)
    assert metrics.nanmean(err.rotation) == pytest.approx(angle, abs=0.5)
    assert metrics.nanmean(err.center) < 0.02 * t.median_depth


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


def _view(s, cam):
    from gen3c.pipelines.camera_video import SourceView

    return SourceView(s.rgb[0].float(), s.depth[0].float(), cam.K[0])


def test_held_out_seeds_and_contact_frames():
    assert min(HELD_OUT_SEEDS) >= 1000 and len(set(HELD_OUT_SEEDS)) == len(HELD_OUT_SEEDS) == 32
    full = {c.name: c.seed for c in benchmark_cases(BenchmarkConfig())}
    subset = benchmark_cases(BenchmarkConfig(scenes=("street",), presets=("up", "left")))
    assert [(c.name, c.seed) for c in subset] == [("street-up", full["street-up"]), ("street-left", full["street-left"])]
    assert contact_indices(25, 5) == [1, 7, 12, 18, 24] and contact_indices(4, 5) == [1, 2, 3]


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
