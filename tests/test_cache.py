"""The 3D cache: forward warping against closed forms, the depth-edge filter, foreground
masking, and rendering procedural scenes against their ground truth."""

from __future__ import annotations

import gc
import math
import re
import sys

import numpy as np
import pytest
import torch

import gen3c.cache
from gen3c.cache import (
    DEPTH_WEIGHT_SHARPNESS,
    BufferRenders,
    Cache3D,
    SelectingCache3D,
    SplatWorkspace,
    foreground_curtain_depth,
    foreground_curtain_mask,
    forward_warp,
    reliable_depth_mask,
    warp_planar,
)
from gen3c.cameras import Cameras, make_intrinsics, project_points, unproject_depth
from gen3c.errors import Gen3cInputError
from gen3c.scenes import make_scene, render, source_camera
from gen3c.trajectories import preset_trajectory

K5 = make_intrinsics(10.0, 10.0, 3.0, 2.0)  # a 5 × 6 image
EYE = torch.eye(4)[None]


def _point_at(u: float, v: float, z: float, K: torch.Tensor = K5) -> list[float]:
    """World point (camera at the origin) that projects to pixel position (u, v) at depth z."""
    return [(u - K[0, 2].item()) * z / K[0, 0].item(), (v - K[1, 2].item()) * z / K[1, 1].item(), z]


def _psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (dB) of [−1, 1] images (C, H, W) over ``mask`` (H, W), peak = the full range."""
    mse = (((a - b) / 2.0) ** 2).mean(dim=0)[mask].mean().item()
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


# --------------------------------------------------------------------------------------------
# forward_warp: closed forms
# --------------------------------------------------------------------------------------------


def test_single_point_splats_bilinear_weights_on_its_four_pixels():
    u, v, z = 2.3, 1.6, 2.0
    point = torch.tensor([_point_at(u, v, z)])
    out = forward_warp(point, torch.ones(1, 3), EYE, K5[None], 5, 6)
    expected_mask = torch.zeros(5, 6)
    expected_mask[1:3, 2:4] = 1.0
    torch.testing.assert_close(out.mask[0, 0], expected_mask)
    torch.testing.assert_close(out.depth[0, 0][expected_mask.bool()], torch.full((4,), z))

    # The weights themselves: add a black reference point exactly on each of the 4 pixel centres
    # at the same depth (weight 1 there, same depth weight); a pixel's colour is then w / (w + 1).
    refs = torch.tensor([_point_at(x, y, z) for y in (1, 2) for x in (2, 3)])
    pts = torch.cat([point, refs])
    cols = torch.cat([torch.ones(1, 1), torch.zeros(4, 1)])
    out = forward_warp(pts, cols, EYE, K5[None], 5, 6, fill_value=0.0)
    c = out.color[0, 0, 1:3, 2:4]
    weights = c / (1.0 - c)
    fx, fy = u - 2, v - 1
    expected = torch.tensor([[(1 - fx) * (1 - fy), fx * (1 - fy)], [(1 - fx) * fy, fx * fy]])
    torch.testing.assert_close(weights, expected, atol=1e-4, rtol=0)


def test_nearer_point_dominates_under_the_soft_zbuffer():
    red, green = torch.tensor([1.0, -1.0, -1.0]), torch.tensor([-1.0, 1.0, -1.0])
    for z_near, z_far in ((2.0, 4.0), (2.0, 2.02)):
        pts = torch.tensor([_point_at(2.0, 1.0, z_far), _point_at(2.0, 1.0, z_near)])
        out = forward_warp(pts, torch.stack([green, red]), EYE, K5[None], 5, 6)
        # w ∝ exp(−50 · log(1 + z) / max log(1 + z)); the max is the far point's.
        ratio = math.exp(
            DEPTH_WEIGHT_SHARPNESS * (math.log1p(z_far) - math.log1p(z_near)) / math.log1p(z_far)
        )
        expected = (ratio * red + green) / (ratio + 1.0)
        torch.testing.assert_close(out.color[0, :, 1, 2], expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(
            out.depth[0, 0, 1, 2], torch.tensor((ratio * z_near + z_far) / (ratio + 1.0))
        )
    # A far ratio (2 vs 4): the near point is all that shows.
    assert ratio > 1.3
    pts = torch.tensor([_point_at(2.0, 1.0, 4.0), _point_at(2.0, 1.0, 2.0)])
    out = forward_warp(pts, torch.stack([green, red]), EYE, K5[None], 5, 6)
    torch.testing.assert_close(out.color[0, :, 1, 2], red, atol=1e-6, rtol=0)


def test_zbuffer_keeps_the_nearest_point_in_any_order():
    depths = torch.tensor([3.0, 1.5, 2.5])
    pts = torch.tensor([_point_at(2.2, 0.9, z) for z in depths.tolist()])
    cols = torch.eye(3)
    for perm in ([0, 1, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]):
        out = forward_warp(pts[perm], cols[perm], EYE, K5[None], 5, 6, mode="zbuffer", fill_value=0.0)
        assert out.mask[0, 0].sum() == 1 and out.mask[0, 0, 1, 2] == 1  # nearest pixel only
        torch.testing.assert_close(out.color[0, :, 1, 2], cols[1])
        assert out.depth[0, 0, 1, 2].item() == pytest.approx(1.5)


def test_zbuffer_ties_at_one_depth_go_to_the_last_point():
    """Every pixel is written once, by the last of the nearest points. Before, every tied point
    wrote it and the last write won: on a GPU any one, and on two CPU threads either thread's
    (the same render came out with the first half's last colour or the last point's)."""
    pts = torch.tensor([_point_at(2.2, 0.9, 2.0)] * 3 + [_point_at(2.1, 1.1, 3.0)])
    cols = torch.eye(4)[:, :3]
    for perm in ([0, 1, 2, 3], [3, 2, 0, 1], [1, 3, 0, 2]):
        out = forward_warp(pts[perm], cols[perm], EYE, K5[None], 5, 6, mode="zbuffer", fill_value=0.0)
        last = max(i for i, p in enumerate(perm) if p < 3)
        torch.testing.assert_close(out.color[0, :, 1, 2], cols[perm[last]])
    n = 70_000  # enough for index_put_ to split the writes over two threads (32768 a task)
    pts = torch.tensor([_point_at(2.2, 0.9, 2.0)]).expand(n, 3).contiguous()
    cols = torch.linspace(-1, 1, n)[:, None].expand(n, 3).contiguous()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for _ in range(10):
            out = forward_warp(pts, cols, EYE, K5[None], 5, 6, mode="zbuffer", fill_value=0.0)
            assert out.color[0, :, 1, 2].tolist() == [1.0, 1.0, 1.0]
    finally:
        torch.set_num_threads(threads)


# The bilinear splat's two sums, both run here on the CPU: "scatter" (float scatter_add_, a CPU's
# and before 2026-12-06 also a GPU's) and "fixed" (a GPU's: int64 fixed point, the same bits in any
# order of addition).
K20 = make_intrinsics(20.0, 20.0, 15.0, 10.0)  # a 20 × 30 image
CLUSTER = 400  # points in one pixel's square


def _awkward_cloud(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3) points and (N, 3) colours in [−1, 1] for K20 at the origin: a spread over and
    beyond the view (out-of-view points), points on pixel centres, points behind the camera,
    CLUSTER points inside one pixel's square, and a far patch (z ≈ 1000, weights ≈ e^-50)
    where nothing near lands."""
    g = torch.Generator().manual_seed(seed)
    spread = [_point_at(u, v, z, K20) for u, v, z in (torch.rand(3000, 3, generator=g) * torch.tensor([28.0, 26.0, 4.0]) + torch.tensor([-6.0, -3.0, 1.0])).tolist()]
    centres = [_point_at(float(u), float(v), z, K20) for u, v, z in zip(torch.randint(0, 22, (200,), generator=g), torch.randint(0, 20, (200,), generator=g), (1 + 4 * torch.rand(200, generator=g)).tolist(), strict=True)]
    behind = (torch.rand(100, 3, generator=g) - 0.5) * torch.tensor([4.0, 4.0, 4.0]) - torch.tensor([0.0, 0.0, 2.0])
    cluster = [_point_at(7.2 + 0.6 * a, 4.2 + 0.6 * b, 2 + c, K20) for a, b, c in torch.rand(CLUSTER, 3, generator=g).tolist()]
    far = [_point_at(u, v, z, K20) for u, v, z in (torch.rand(100, 3, generator=g) * torch.tensor([4.0, 8.0, 100.0]) + torch.tensor([25.0, 5.0, 900.0])).tolist()]
    pts = torch.cat([torch.tensor(spread), torch.tensor(centres), behind, torch.tensor(cluster), torch.tensor(far)])
    return pts, torch.rand(len(pts), 3, generator=g) * 2 - 1


def _splat_with(monkeypatch, how: str, pts: torch.Tensor, cols: torch.Tensor, depth: bool = True):
    monkeypatch.setitem(gen3c.cache._SPLAT_SUM, "cpu", how)
    return forward_warp(pts, cols, EYE, K20[None], 20, 30, depth=depth)


# The float sum of n terms in any order is within (n − 1)·u·Σ|terms| of the exact one (u = 2^-24),
# in each of Σ w·c and Σ w; with |c| ≤ 1, Σ|w·c| ≤ Σ w, so its colour Σ w·c / Σ w is within 2n·u
# of the exact ratio, its depth (z > 0) within 2n·u relatively. The fixed-point sum's terms are the
# same weights divided by the pixel's largest (Σ r ≥ 1), off by 3 roundings each (r, c / max|c|,
# their product: ≤ 6u on the ratio), rounded to multiples of 2^-S (S = 63 − bit_length(N) = 51 here:
# n·2^-52 on Σ r ≥ 1) and converted to float32 (≤ 2u): within 2n·u of the exact ratio too for
# n ≥ 5. So the two differ by ≤ 4n·u; n ≤ 500 contributions to a pixel here (the cluster and the
# spread around it). A mix-up of pixels or weights is off by ≫ 1e-4; the mask is exact (every
# weight ≥ 0, and the largest one of a pixel gives r = 1).
SUM_ORDER_TOL = 4 * 500 * 2.0**-24


@pytest.mark.parametrize("depth", [True, False])
def test_the_fixed_point_sum_splats_what_scatter_add_does(monkeypatch, depth):
    pts, cols = _awkward_cloud(0)
    scattered = _splat_with(monkeypatch, "scatter", pts, cols, depth)
    fixed = _splat_with(monkeypatch, "fixed", pts, cols, depth)
    # The cloud covers what it should: the far patch alone, empty pixels, a crowded one.
    assert scattered.mask[0, 0, 8:12, 26:29].all() and scattered.mask[0, 0, 4, 7] and not scattered.mask.all()
    assert scattered.color[0, :, 8:12, 26:29].abs().max() > 0.05  # e^-50 weights still average colours
    torch.testing.assert_close(fixed.color, scattered.color, atol=SUM_ORDER_TOL, rtol=0)
    assert torch.equal(fixed.mask, scattered.mask)
    if depth:
        torch.testing.assert_close(fixed.depth, scattered.depth, atol=0, rtol=SUM_ORDER_TOL)
        assert scattered.depth[0, 0, 8:12, 26:29].min() > 900
    else:
        assert fixed.depth is None


def test_the_fixed_point_sum_is_the_same_every_time_and_in_any_point_order(monkeypatch):
    """Rendered twice (one workspace kept, as a render's frames do, and a fresh one) and with the
    points shuffled, the fixed-point sum gives the same bits: integer sums do not depend on the
    order of addition (which CUDA's atomics do not fix). The float scatter_add_ does."""
    pts, cols = _awkward_cloud(1)
    planar = [(pts.T.contiguous(), cols.T.contiguous())]
    perm = torch.randperm(len(pts), generator=torch.Generator().manual_seed(2))
    shuffled = [(pts[perm].T.contiguous(), cols[perm].T.contiguous())]
    w2c, K = torch.cat([EYE, EYE]), torch.stack([K20, K20 * torch.tensor([[1.1], [1.1], [1.0]])])
    monkeypatch.setitem(gen3c.cache._SPLAT_SUM, "cpu", "scatter")
    scattered = warp_planar(planar, w2c, K, 20, 30)
    assert not torch.equal(warp_planar(shuffled, w2c, K, 20, 30).color, scattered.color)  # another order, other roundings
    monkeypatch.setitem(gen3c.cache._SPLAT_SUM, "cpu", "fixed")
    workspace = SplatWorkspace()
    first = warp_planar(planar, w2c, K, 20, 30, workspace=workspace)
    torch.testing.assert_close(first.color, scattered.color, atol=SUM_ORDER_TOL, rtol=0)
    for again in (
        warp_planar(planar, w2c, K, 20, 30, workspace=workspace),
        warp_planar(planar, w2c, K, 20, 30),
        warp_planar(shuffled, w2c, K, 20, 30, workspace=workspace),
    ):
        for a, b in ((first.color, again.color), (first.mask, again.mask), (first.depth, again.depth)):
            assert torch.equal(a, b)


def test_the_fixed_point_sum_does_not_overflow_with_every_point_in_one_pixel(monkeypatch):
    """N = 2^18 − 1 points on one pixel centre with colours ±1 and one depth: every term is ±2^S
    (S = 63 − 18 = 45), and the pixel's sums, ±N·2^S = ±(2^63 − 2^45), just fit in int64 (one
    bit more of S and they wrap around). The depth comes out right too, where scatter_add_'s
    262143 float adds of z · e^-50 drift to 3.0046."""
    n = 2**18 - 1
    pts = torch.tensor([_point_at(12.0, 7.0, 3.0, K20)]).expand(n, 3).contiguous()
    cols = torch.tensor([1.0, -1.0, 0.25]).expand(n, 3).contiguous()
    out = _splat_with(monkeypatch, "fixed", pts, cols)
    assert out.color[0, :, 7, 12].tolist() == [1.0, -1.0, 0.25] and out.mask.sum() == 1
    torch.testing.assert_close(out.depth[0, 0, 7, 12], torch.tensor(3.0), atol=0, rtol=2**-22)


def _four_corner_fixed_sum(cols, z, fx, top, bottom, corner, in_view, depth, pw, pixels):
    """The fixed-point sum as _sum_fixed computed it up to 2026-12: all four corners' indices,
    weights, ratios and (R, 4N) int64 terms at once, added by one scatter_add_."""
    C, N = cols.shape
    R, scale, tiny = C + int(depth) + 1, 63 - N.bit_length(), torch.finfo(torch.float32).tiny
    idx = (corner.long() + torch.tensor([0, 1, pw, pw + 1])[:, None]).view(-1)
    w = torch.stack([top - top * fx, top * fx, bottom - bottom * fx, bottom * fx]).view(-1)
    w_max = torch.zeros(pixels).scatter_reduce_(0, idx, w, "amax").clamp_(min=tiny)
    r = (w / w_max[idx]) * 2.0**scale
    col_scale = torch.maximum(cols.max(), -cols.min()).clamp(min=tiny)
    z_scale = torch.where(in_view, z, torch.zeros(())).max()
    unit = torch.cat([cols / col_scale] + ([(z / z_scale)[None]] if depth else []))
    terms = torch.cat([unit.repeat(1, 4) * r, r[None]])
    sums = torch.zeros(R, pixels, dtype=torch.long).scatter_add_(1, idx.expand(R, -1), terms.round().long())
    acc = sums.float()
    acc[:C] *= col_scale * 2.0**-scale
    if depth:
        acc[C] *= z_scale * 2.0**-scale
    acc[R - 1] *= 2.0**-scale
    return acc


@pytest.mark.parametrize("depth", [True, False])
def test_the_fixed_point_sum_one_corner_at_a_time_gives_the_four_corners_bits(monkeypatch, depth):
    """The fixed-point sum adds one corner at a time (its scratch (R, N), not (R, 4N)): integer
    addition is associative and the max exact in any order, so its sums are bit for bit those of
    all four corners at once (the formula it had before), rendered twice through one workspace."""
    pts, cols = _awkward_cloud(3)
    calls = []
    sum_fixed = SplatWorkspace._sum_fixed

    def recorded(self, *args):  # (cols, z, fx, top, bottom, corner, in_view, scratch…, acc, depth, pw)
        inputs = [t.clone() for t in args[:7]]
        sum_fixed(self, *args)
        acc, depth, pw = args[-3:]
        calls.append((inputs, depth, pw, acc.clone()))

    monkeypatch.setattr(SplatWorkspace, "_sum_fixed", recorded)
    monkeypatch.setitem(gen3c.cache._SPLAT_SUM, "cpu", "fixed")
    w2c, K = torch.cat([EYE, EYE]), torch.stack([K20, K20 * torch.tensor([[1.1], [1.1], [1.0]])])
    workspace = SplatWorkspace()
    for cloud in ((pts.T.contiguous(), cols.T.contiguous()), (pts[:2000].T.contiguous(), cols[:2000].T.contiguous())):
        warp_planar([cloud], w2c, K, 20, 30, workspace=workspace, depth=depth)
    assert len(calls) == 4
    for inputs, with_depth, pw, acc in calls:
        expected = _four_corner_fixed_sum(*inputs, with_depth, pw, acc.shape[1])
        assert expected[-1].sum() > 100 and torch.equal(acc, expected)


def test_the_fixed_point_sum_keeps_no_scratch_of_all_four_corners(monkeypatch):
    """Its scratch per point, besides the splat's own rows (C + 12 floats), flags and spread
    slots, is the corner index (int64) and one corner's R terms in float32 and int64: 134 bytes a
    point for C = 3 with depth (R = 5), where all four corners at once held 386."""
    n = 20_000
    g = torch.Generator().manual_seed(4)
    pts = torch.tensor([_point_at(u, v, 2.0) for u, v in (torch.rand(n, 2, generator=g) * torch.tensor([6.0, 5.0]) - 0.5).tolist()])
    monkeypatch.setitem(gen3c.cache._SPLAT_SUM, "cpu", "fixed")
    workspace = SplatWorkspace()
    warp_planar([(pts.T.contiguous(), torch.rand(3, n, generator=g))], EYE, K5[None], 5, 6, workspace=workspace)
    per_pixel = 7 * 8 * (4 * 5 + 4 + 8 * 5)  # the bordered 7 × 8 image: accumulator, max weight, int64 sums
    assert workspace.nbytes - per_pixel == ((3 + 12) * 4 + 2 + 4 + 8 + 5 * (4 + 8)) * n


@pytest.mark.parametrize("mode", ["bilinear", "zbuffer"])
def test_points_behind_the_camera_are_ignored(mode):
    # (0, 0, −2) would "project" to the principal point if z were not checked.
    behind = torch.tensor([[0.0, 0.0, -2.0], [0.1, -0.1, -0.5], [0.0, 0.0, 0.0]])
    out = forward_warp(behind, torch.ones(3, 3), EYE, K5[None], 5, 6, mode=mode)
    assert out.mask.sum() == 0 and (out.color == -1).all() and (out.depth == 0).all()
    # Beside a visible point they change nothing.
    front = torch.tensor([_point_at(3.0, 2.0, 2.0)])
    alone = forward_warp(front, torch.zeros(1, 3), EYE, K5[None], 5, 6, mode=mode)
    mixed = forward_warp(
        torch.cat([behind, front]),
        torch.cat([torch.ones(3, 3), torch.zeros(1, 3)]),
        EYE,
        K5[None],
        5,
        6,
        mode=mode,
    )
    torch.testing.assert_close(mixed.color, alone.color)
    torch.testing.assert_close(mixed.mask, alone.mask)


@pytest.mark.parametrize("mode", ["bilinear", "zbuffer"])
def test_points_outside_the_image_change_nothing(mode):
    # Points beside, above and below the 5 × 6 image (one just outside its 1-pixel border) and a
    # long run of them, as a camera turning away leaves: they add nothing anywhere.
    inside = torch.tensor([_point_at(2.4, 1.7, 2.0)])
    outside = torch.tensor(
        [_point_at(u, v, 2.0) for u, v in ((-3.0, 2.0), (8.5, 1.0), (2.0, -4.0), (3.0, 7.2), (-1.5, -1.5))]
        + [_point_at(40.0 + i, 2.0, 3.0) for i in range(500)]
    )
    alone = forward_warp(inside, torch.zeros(1, 3), EYE, K5[None], 5, 6, mode=mode)
    mixed = forward_warp(torch.cat([outside, inside]), torch.cat([torch.ones(len(outside), 3), torch.zeros(1, 3)]), EYE, K5[None], 5, 6, mode=mode)
    torch.testing.assert_close(mixed.color, alone.color)
    torch.testing.assert_close(mixed.mask, alone.mask)
    torch.testing.assert_close(mixed.depth, alone.depth)


@pytest.mark.parametrize("foreground_masking", [False, True])
def test_render_without_depth_gives_the_same_colour_and_mask(foreground_masking):
    H, W = 88, 160
    src = source_camera(H, W)
    gt = render(make_scene("objects", seed=0), src)
    cache = Cache3D(foreground_masking=foreground_masking)
    cache.add_view(gt.rgb[0], gt.depth[0], src.K[0], src.w2c[0])
    cams = preset_trajectory("left", "center_facing", 7, src.w2c[0], src.K[0], H, W)
    full, lean = cache.render(cams, chunk_size=3), cache.render(cams, chunk_size=3, depth=False)
    assert lean.depths is None and full.depths is not None
    torch.testing.assert_close(lean.masks, full.masks, atol=0, rtol=0)
    torch.testing.assert_close(lean.colors, full.colors, atol=1e-6, rtol=0)
    # Chunks share one workspace: the last render of a chunk equals a fresh render of its frame.
    one = cache.render(cams[6])
    torch.testing.assert_close(one.colors[0], full.colors[6], atol=1e-6, rtol=0)
    torch.testing.assert_close(one.depths[0], full.depths[6], atol=1e-6, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on the device)")
@pytest.mark.parametrize("splat", ["bilinear", "zbuffer"])
def test_a_cuda_render_is_the_same_every_time(splat):
    """CUDA's atomics add a pixel's splats in any order: the same cache gave renders differing in
    the last bits, and one seed two videos. The splat sums in int64 fixed point now (integer
    adds give the same bits in any order; no PyTorch deterministic mode either): the same bits
    every time, also with the user's strict mode on."""
    H, W = 176, 320
    src = source_camera(H, W)
    gt = render(make_scene("objects", seed=0), src)
    cams = preset_trajectory("left", "center_facing", 9, src.w2c[0], src.K[0], H, W)
    cache = Cache3D(splat=splat)
    cache.add_view(gt.rgb[0].cuda(), gt.depth[0].cuda(), src.K[0].cuda(), src.w2c[0].cuda())
    first = cache.render(cams)
    torch.use_deterministic_algorithms(True)  # would raise on an op with no deterministic kernel
    try:
        renders = [cache.render(cams)]
    finally:
        torch.use_deterministic_algorithms(False)
    renders += [cache.render(cams) for _ in range(3)]
    for again in renders:
        for a, b in ((first.colors, again.colors), (first.masks, again.masks), (first.depths, again.depths)):
            assert torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on the device)")
@pytest.mark.parametrize("foreground_masking", [False, True])
def test_cuda_render_matches_the_cpu_render(foreground_masking):
    H, W = 176, 320
    src = source_camera(H, W)
    gt = render(make_scene("objects", seed=0), src)
    cams = preset_trajectory("left", "center_facing", 9, src.w2c[0], src.K[0], H, W)
    outs = {}
    for dev in ("cpu", "cuda"):
        cache = Cache3D(foreground_masking=foreground_masking)
        cache.add_view(gt.rgb[0].to(dev), gt.depth[0].to(dev), src.K[0].to(dev), src.w2c[0].to(dev))
        outs[dev] = (cache.render(cams), cache.render(cams, depth=False))
    # A cache on the CPU splatted on the GPU (what the gen3c generator does): renders on the CPU.
    cache = Cache3D(foreground_masking=foreground_masking)
    cache.add_view(gt.rgb[0], gt.depth[0], src.K[0], src.w2c[0])
    outs["cpu→cuda"] = (cache.render(cams, device="cuda"), cache.render(cams, depth=False, device="cuda"))
    # … and the renders left where they were splatted (the gen3c generator with its DiT resident).
    kept = dict(device="cuda", output_device="cuda")
    outs["cpu→cuda, kept"] = (cache.render(cams, **kept), cache.render(cams, depth=False, **kept))
    cpu, cpu_lean = outs["cpu"]
    for name in ("cuda", "cpu→cuda", "cpu→cuda, kept"):
        gpu, gpu_lean = outs[name]
        assert gpu.colors.device.type == gpu_lean.masks.device.type == ("cpu" if name == "cpu→cuda" else "cuda"), name
        # Scatter order differs between devices: colours agree to float rounding; a mask may flip
        # only where a weight sits at the float32 limit (none in this scene).
        torch.testing.assert_close(gpu.masks.cpu(), cpu.masks, atol=0, rtol=0)
        torch.testing.assert_close(gpu.colors.cpu(), cpu.colors, atol=1e-4, rtol=0)
        torch.testing.assert_close(gpu.depths.cpu(), cpu.depths, atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(gpu_lean.colors.cpu(), cpu_lean.colors, atol=1e-4, rtol=0)
        assert gpu_lean.depths is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on the device)")
def test_cuda_splat_of_a_cpu_video_cache_and_a_selecting_cache():
    cpu, gpu = _video_and_selecting_renders("cpu"), _video_and_selecting_renders("cuda")
    for a, b in zip(cpu, gpu, strict=True):
        assert b.colors.device.type == "cuda" and a.views == b.views
        b = BufferRenders(b.colors.cpu(), b.masks.cpu(), b.depths.cpu(), b.views)
        # The GPU adds splats in another order: in this scene of many depth ties (the video cache
        # holds every frame's points) a mask flips at 164 of 19,200 pixels (0.9 %, measured on an
        # H200); elsewhere the renders agree.
        agree = b.masks == a.masks
        assert agree.float().mean() > 0.98
        colors_agree = agree.expand_as(a.colors)
        assert (b.colors - a.colors).abs()[colors_agree].mean() < 1e-3


def _video_and_selecting_renders(device):
    """Renders splatted on ``device`` of a 4D (video) cache with foreground masking, and of a
    selecting cache choosing 2 of 3 views; both caches on the CPU."""
    H, W = 48, 80
    src = source_camera(H, W)
    scene = make_scene("objects", seed=0)
    cams = preset_trajectory("left", "center_facing", 5, src.w2c[0], src.K[0], H, W)
    frames = render(scene, cams)
    video = Cache3D(foreground_masking=True)
    video.add_view(frames.rgb, frames.depth, cams.K, cams.w2c)
    selecting = SelectingCache3D(select=2)
    for i in (0, 2, 4):
        selecting.add_view(frames.rgb[i], frames.depth[i], cams.K[i], cams.w2c[i])
    return (
        video.render(cams, chunk_size=2, device=device, output_device=device),
        selecting.render(cams, chunk_size=2, device=device, output_device=device),
    )


def test_splat_device_argument_on_the_cpu_changes_nothing():
    """``device=`` names where to splat and ``output_device=`` where the renders go; naming the
    cache's own device is the default render."""
    plain, named = _video_and_selecting_renders(None), _video_and_selecting_renders("cpu")
    for a, b in zip(plain, named, strict=True):
        assert a.views == b.views and b.colors.device.type == "cpu"
        assert torch.equal(a.colors, b.colors) and torch.equal(a.masks, b.masks) and torch.equal(a.depths, b.depths)


def test_forward_warp_batches_views():
    pts = torch.tensor([_point_at(2.0, 1.0, 2.0)])
    w2c = torch.eye(4).repeat(2, 1, 1)
    w2c[1, 0, 3] = 1.0 * 2.0 / 10.0  # camera 1 moved so the point lands one pixel to the right
    out = forward_warp(pts, torch.ones(1, 3), w2c, K5[None].repeat(2, 1, 1), 5, 6)
    assert out.mask[0, 0, 1, 2] == 1 and out.mask[1, 0, 1, 3] == 1 and out.mask.sum() == 2


def _ramp(H: int, W: int) -> torch.Tensor:
    """(3, H, W) colours linear in the pixel: red = u / W·2 − 1, green = v / H·2 − 1, blue 0.3."""
    u, v = torch.arange(W).float(), torch.arange(H).float()
    return torch.stack([(u / W * 2 - 1).expand(H, W), (v[:, None] / H * 2 - 1).expand(H, W), torch.full((H, W), 0.3)])


@pytest.mark.parametrize("splat", ["bilinear", "zbuffer"])
@pytest.mark.parametrize("t", [0.2, 0.1])  # shifts of 2 and 1 pixels
def test_a_plane_seen_from_a_camera_moved_along_x_shifts_by_fx_t_over_z(splat, t):
    # A fronto-parallel plane at z = 4 (odd size 33 × 47), the camera moved t to the right: every
    # point moves s = fx·t/z pixels left, exactly, so target pixel u shows source pixel u + s, and
    # the last s columns, which no source pixel reaches, are empty.
    H, W, fx, z = 33, 47, 40.0, 4.0
    K = make_intrinsics(fx, fx, 23.0, 16.0)
    cache = Cache3D(splat=splat)
    cache.add_view(_ramp(H, W), torch.full((H, W), z), K, torch.eye(4))
    w2c = torch.eye(4)
    w2c[0, 3] = -t
    out = cache.render(Cameras(w2c[None], K[None], H, W))
    s = round(fx * t / z)
    expected_mask = torch.ones(H, W, dtype=torch.bool)
    expected_mask[:, W - s :] = False
    assert torch.equal(out.masks[0, 0, 0] > 0, expected_mask)
    shifted = _ramp(H, W)
    shifted[0] += 2 * s / W  # red at u + s
    torch.testing.assert_close(out.colors[0, 0][:, expected_mask], shifted[:, expected_mask], atol=1e-6, rtol=0)
    assert (out.colors[0, 0][:, ~expected_mask] == -1).all()
    assert (out.depths[0, 0, 0][expected_mask] == z).all() and (out.depths[0, 0, 0][~expected_mask] == 0).all()


def test_a_half_pixel_shift_splats_each_point_half_onto_two_pixels():
    # s = fx·t/z = 0.5: target pixel u gets the points of source u and u + 1 at weight ½ each, so a
    # colour linear in u comes out as the source's at u + 0.5 (all but the last column, which only
    # source W − 1 reaches; source 0 lands half on the border outside the image).
    H, W, fx, z = 9, 15, 40.0, 4.0
    K = make_intrinsics(fx, fx, 7.0, 4.0)
    cache = Cache3D()
    cache.add_view(_ramp(H, W), torch.full((H, W), z), K, torch.eye(4))
    w2c = torch.eye(4)
    w2c[0, 3] = -0.05
    out = cache.render(Cameras(w2c[None], K[None], H, W))
    assert out.masks.all()
    u = torch.arange(W - 1).float()
    torch.testing.assert_close(out.colors[0, 0, 0, :, : W - 1], ((u + 0.5) / W * 2 - 1).expand(H, W - 1), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.colors[0, 0, 0, :, W - 1], torch.full((H,), (W - 1) / W * 2 - 1), atol=1e-6, rtol=0)


def test_a_camera_turned_about_its_centre_warps_by_the_homography_whatever_the_depth():
    # Pure rotation R: a source pixel p lands at K R K⁻¹ p, independent of its depth. Sparse
    # source pixels (every 5th, so none share a target pixel) at random depths, the z-buffer
    # splat (nearest pixel): each lands on the pixel its homography image rounds to, its colour
    # saying which source pixel it is.
    H, W = 41, 57
    K = make_intrinsics(50.0, 50.0, 28.0, 20.0)
    a, b = math.radians(4.0), math.radians(-3.0)
    yaw = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    pitch = torch.tensor([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    w2c = torch.eye(4)
    w2c[:3, :3] = pitch @ yaw
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[2::5, 2::5] = True
    depth = 1.0 + 9.0 * torch.rand(H, W, generator=torch.Generator().manual_seed(0))
    cache = Cache3D(splat="zbuffer", filter_points_threshold=0)
    cache.add_view(_ramp(H, W), depth, K, torch.eye(4), mask)
    out = cache.render(Cameras(w2c[None], K[None], H, W))
    homography = (K @ w2c[:3, :3] @ torch.linalg.inv(K)).double()
    v, u = mask.nonzero(as_tuple=True)
    p = torch.stack([u, v, torch.ones_like(u)]).double()
    q = homography @ p
    tu, tv = torch.floor(q[0] / q[2] + 0.5).long(), torch.floor(q[1] / q[2] + 0.5).long()
    inside = (tu >= 0) & (tu < W) & (tv >= 0) & (tv < H)
    assert inside.sum() > 60
    lit = out.masks[0, 0, 0] > 0
    assert lit.sum() == inside.sum() and lit[tv[inside], tu[inside]].all()
    colors = out.colors[0, 0, :2, tv[inside], tu[inside]]
    torch.testing.assert_close(colors[0], u[inside].float() / W * 2 - 1)
    torch.testing.assert_close(colors[1], v[inside].float() / H * 2 - 1)


@pytest.mark.parametrize("splat", ["bilinear", "zbuffer"])
def test_a_box_in_front_of_a_wall_disoccludes_exactly_what_the_parallax_uncovers(splat):
    # Wall at z = 8, a box at z = 4 over rows 8..19, columns 10..19; the camera moves 0.4 right
    # (fx = 40): the box moves 4 pixels left (to 6..15), the wall 2. The box covers wall columns
    # 6, 7 (nearest wins), wall columns 16, 17 of those rows were behind the box and stay empty,
    # as do the last 2 columns everywhere. The edge filter (GEN3C: 0.05) also drops the 2 pixels
    # either side of the box's edges: box 10, 11, 18, 19 and wall 8, 9, 20, 21 in its rows.
    H, W = 29, 41
    K = make_intrinsics(40.0, 40.0, 20.0, 14.0)
    depth = torch.full((H, W), 8.0)
    depth[8:20, 10:20] = 4.0
    image = torch.full((3, H, W), -0.5)
    image[:, 8:20, 10:20] = 0.5
    w2c = torch.eye(4)
    w2c[0, 3] = -0.4
    camera = Cameras(w2c[None], K[None], H, W)
    cache = Cache3D(splat=splat, filter_points_threshold=0)
    cache.add_view(image, depth, K, torch.eye(4))
    out = cache.render(camera)
    seen = torch.ones(H, W, dtype=torch.bool)
    seen[8:20, 16:18] = False
    seen[:, W - 2 :] = False
    color = torch.full((H, W), -0.5)
    color[8:20, 6:16] = 0.5
    z = torch.full((H, W), 8.0)
    z[8:20, 6:16] = 4.0
    assert torch.equal(out.masks[0, 0, 0] > 0, seen)
    # The soft z-buffer lets the wall in by e^-50·(log 9 − log 5)/log 9 ≈ 1.5e-6 where the box wins.
    tol = 0 if splat == "zbuffer" else 2e-6
    torch.testing.assert_close(out.colors[0, 0][:, seen], color[seen].expand(3, -1), atol=tol, rtol=0)
    torch.testing.assert_close(out.depths[0, 0, 0][seen], z[seen], atol=10 * tol, rtol=0)
    # With the edge filter, row 12 (rows 6 and 21 are also touched, by the box's top and bottom).
    filtered = Cache3D(splat=splat)
    filtered.add_view(image, depth, K, torch.eye(4))
    row = (filtered.render(camera).masks[0, 0, 0, 12] > 0).int().tolist()
    # wall 0..7 → −2..5, box 12..17 → 8..13, wall 22..40 → 20..38.
    assert row == [1] * 6 + [0] * 2 + [1] * 6 + [0] * 6 + [1] * 19 + [0] * 2


@pytest.mark.parametrize("splat", ["bilinear", "zbuffer"])
def test_a_camera_moved_towards_a_plane_scales_it_about_the_principal_point_by_z_over_z_minus_t(splat):
    # Plane at z = 4, camera moved t = 2 forward: a point at pixel offset d from the principal
    # point (23, 16) lands at offset d·z/(z−t) = 2d, so target pixels at even offsets (odd u, even
    # v) show source pixel cx + (u − cx)/2, the others stay empty; every depth is z − t = 2.
    H, W, z, t = 33, 47, 4.0, 2.0
    K = make_intrinsics(40.0, 40.0, 23.0, 16.0)
    cache = Cache3D(splat=splat, filter_points_threshold=0)
    cache.add_view(_ramp(H, W), torch.full((H, W), z), K, torch.eye(4))
    w2c = torch.eye(4)
    w2c[2, 3] = -t
    out = cache.render(Cameras(w2c[None], K[None], H, W))
    u, v = torch.arange(W), torch.arange(H)
    lit = ((u % 2 == 1)[None, :] & (v % 2 == 0)[:, None])
    assert torch.equal(out.masks[0, 0, 0] > 0, lit)
    source = _ramp(H, W)[:, 16 + (v[::2] - 16) // 2][:, :, 23 + (u[1::2] - 23) // 2]
    torch.testing.assert_close(out.colors[0, 0][:, lit].view(3, len(v[::2]), len(u[1::2])), source, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.depths[0, 0, 0][lit], torch.full((int(lit.sum()),), z - t), atol=1e-5, rtol=0)
    assert (out.colors[0, 0][:, ~lit] == -1).all() and (out.depths[0, 0, 0][~lit] == 0).all()


def test_a_camera_moved_away_from_a_plane_shrinks_it_by_z_over_z_minus_t():
    # t = −4: scale 4/8 = ½ about (23, 16), depth 8. Source columns 0 … 46 land on 11.5 … 34.5, so
    # the bilinear splat lights columns 11 … 35 and rows 8 … 24; inside, each target pixel gets
    # source pixel cx + 2(u − cx) at weight 1 and its neighbours symmetrically, so a colour linear
    # in the pixel comes out as that source pixel's.
    H, W = 33, 47
    K = make_intrinsics(40.0, 40.0, 23.0, 16.0)
    cache = Cache3D(filter_points_threshold=0)
    cache.add_view(_ramp(H, W), torch.full((H, W), 4.0), K, torch.eye(4))
    w2c = torch.eye(4)
    w2c[2, 3] = 4.0
    out = cache.render(Cameras(w2c[None], K[None], H, W))
    lit = torch.zeros(H, W, dtype=torch.bool)
    lit[8:25, 11:36] = True
    assert torch.equal(out.masks[0, 0, 0] > 0, lit)
    torch.testing.assert_close(out.depths[0, 0, 0][lit], torch.full((int(lit.sum()),), 8.0), atol=1e-5, rtol=0)
    u, v = torch.arange(12, 35), torch.arange(9, 24)
    source = _ramp(H, W)[:, 16 + 2 * (v - 16)][:, :, 23 + 2 * (u - 23)]
    torch.testing.assert_close(out.colors[0, 0, :, 9:24, 12:35], source, atol=1e-5, rtol=0)


@pytest.mark.parametrize("splat", ["bilinear", "zbuffer"])
def test_a_camera_rolled_about_its_optical_axis_rotates_the_image(splat):
    # Rolled 90° (w2c rotation (x, y, z) → (−y, x, z)), square pixels, principal point at the
    # centre of a square image: source pixel (u, v) lands on (30 − v, u), whatever its depth,
    # which it keeps. Every target pixel is lit: target (row r, column c) shows source (30 − c, r).
    S = 31
    K = make_intrinsics(40.0, 40.0, 15.0, 15.0)
    depth = 2.0 + torch.rand(S, S, generator=torch.Generator().manual_seed(0))
    cache = Cache3D(splat=splat, filter_points_threshold=0)
    cache.add_view(_ramp(S, S), depth, K, torch.eye(4))
    w2c = torch.eye(4)
    w2c[:3, :3] = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    out = cache.render(Cameras(w2c[None], K[None], S, S))
    assert out.masks.all()
    r, c = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    torch.testing.assert_close(out.colors[0, 0], _ramp(S, S)[:, S - 1 - c, r], atol=1e-6, rtol=0)
    torch.testing.assert_close(out.depths[0, 0, 0], depth[S - 1 - c, r], atol=1e-5, rtol=0)


@pytest.mark.parametrize("splat", ["bilinear", "zbuffer"])
def test_a_rendered_point_has_its_depth_in_the_new_camera(splat):
    # Sparse points (every 5th pixel) of a plane at z = 4, a camera turned 5° and moved
    # (0.3, −0.2, 0.5): each lands where K (R X + t) says, with depth (R X + t)_z — the plane's
    # depth in the new camera along that point's ray. The z-buffer lights the nearest pixel, the
    # bilinear splat the pixel up-left of the point (and others).
    H, W = 41, 57
    K = make_intrinsics(50.0, 50.0, 28.0, 20.0)
    a = math.radians(5.0)
    w2c = torch.eye(4)
    w2c[:3, :3] = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    w2c[:3, 3] = torch.tensor([0.3, -0.2, 0.5])
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[2::5, 2::5] = True
    cache = Cache3D(splat=splat, filter_points_threshold=0)
    view = cache.add_view(_ramp(H, W), torch.full((H, W), 4.0), K, torch.eye(4), mask)
    out = cache.render(Cameras(w2c[None], K[None], H, W))
    cam = view.points[0][mask].double() @ w2c[:3, :3].double().T + w2c[:3, 3].double()
    u, v = K[0, 0] * cam[:, 0] / cam[:, 2] + K[0, 2], K[1, 1] * cam[:, 1] / cam[:, 2] + K[1, 2]
    if splat == "zbuffer":
        tu, tv = torch.floor(u + 0.5).long(), torch.floor(v + 0.5).long()
    else:
        tu, tv = torch.floor(u).long(), torch.floor(v).long()
    inside = (tu >= 0) & (tu < W) & (tv >= 0) & (tv < H)
    assert inside.sum() > 60
    assert (out.masks[0, 0, 0, tv[inside], tu[inside]] == 1).all()
    torch.testing.assert_close(out.depths[0, 0, 0, tv[inside], tu[inside]].double(), cam[inside, 2], atol=1e-5, rtol=0)


@pytest.mark.parametrize("splat", ["bilinear", "zbuffer"])
def test_a_camera_with_other_intrinsics_and_image_size_renders_through_its_own(splat):
    # From the source pose, fx' = 2 fx with cx' = 2 cx and an image twice as wide (fy, cy and the
    # height kept): source pixel (u, v) lands on (2u, v), so even columns show the source's and
    # odd ones stay empty, at the plane's depth.
    H, W = 33, 47
    K = make_intrinsics(40.0, 40.0, 23.0, 16.0)
    cache = Cache3D(splat=splat, filter_points_threshold=0)
    cache.add_view(_ramp(H, W), torch.full((H, W), 4.0), K, torch.eye(4))
    wide = make_intrinsics(80.0, 40.0, 46.0, 16.0)
    out = cache.render(Cameras(torch.eye(4)[None], wide[None], H, 2 * W))
    assert out.colors.shape == (1, 1, 3, H, 2 * W)
    lit = torch.zeros(H, 2 * W, dtype=torch.bool)
    lit[:, 0 : 2 * W - 1 : 2] = True
    assert torch.equal(out.masks[0, 0, 0] > 0, lit)
    torch.testing.assert_close(out.colors[0, 0][:, lit].view(3, H, W), _ramp(H, W), atol=1e-6, rtol=0)
    assert (out.depths[0, 0, 0][lit] - 4.0).abs().max() < 1e-5 and (out.colors[0, 0][:, ~lit] == -1).all()


def test_the_fixed_point_sum_gives_the_same_bits_on_any_number_of_threads(monkeypatch):
    # 300 000 points in a 61 × 83 image (so CPU kernels split the work), splatted on 1 and on 2
    # threads, and shuffled: the int64 sums are the same bits.
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(300_000, 3, generator=g) * torch.tensor([2.0, 2.0, 3.0]) + torch.tensor([-1.0, -1.0, 1.0])
    cols = torch.rand(300_000, 3, generator=g) * 2 - 1
    K = make_intrinsics(40.0, 40.0, 41.0, 30.0)[None]
    perm = torch.randperm(len(pts), generator=g)
    monkeypatch.setitem(gen3c.cache._SPLAT_SUM, "cpu", "fixed")
    threads = torch.get_num_threads()
    renders = []
    try:
        for n, order in ((1, slice(None)), (2, slice(None)), (2, perm)):
            torch.set_num_threads(n)
            renders.append(forward_warp(pts[order], cols[order], EYE, K, 61, 83))
    finally:
        torch.set_num_threads(threads)
    for other in renders[1:]:
        assert torch.equal(other.color, renders[0].color) and torch.equal(other.depth, renders[0].depth)
        assert torch.equal(other.mask, renders[0].mask)


def test_buffers_are_newest_first_and_a_full_cache_replaces_buffer_0_as_gen3c():
    # GEN3C (cache_3d.py): a new view goes first; once max_buffers views exist, the newest replaces
    # buffer 0, so the source view stays buffer 1 for the whole autoregressive video.
    K = make_intrinsics(10.0, 10.0, 2.0, 2.0)
    cache = Cache3D(max_buffers=2)
    shades = (-0.5, 0.0, 0.5, 1.0)
    for shade in shades:
        cache.add_view(torch.full((3, 5, 5), shade), torch.full((5, 5), 2.0), K, torch.eye(4))
    assert [v.colors[0, 0, 0, 0].item() for v in cache.views] == [1.0, -0.5]  # the last, then the first
    out = cache.render(Cameras(torch.eye(4)[None], K[None], 5, 5))
    assert out.colors[0, :, 0, 2, 2].tolist() == pytest.approx([1.0, -0.5], abs=1e-6) and out.views == (0, 1)


# --------------------------------------------------------------------------------------------
# Depth-edge filter
# --------------------------------------------------------------------------------------------


def test_reliable_depth_mask_marks_the_5x5_window_around_a_step():
    depth = torch.full((12, 20), 2.0)
    depth[:, 10:] = 3.0  # step between columns 9 and 10
    reliable = reliable_depth_mask(depth)
    expected = torch.ones(12, 20, dtype=torch.bool)
    expected[:, 8:12] = False  # columns whose 5-wide window holds both sides: 8, 9, 10, 11
    assert torch.equal(reliable, expected)
    # Batched input keeps its shape; a mirrored step mirrors the mask.
    both = reliable_depth_mask(torch.stack([depth, depth.flip(-1)]))
    assert (
        both.shape == (2, 12, 20)
        and torch.equal(both[0], expected)
        and torch.equal(both[1], expected.flip(-1))
    )
    # A horizontal step: rows 5..8 unreliable.
    row_step = torch.full((14, 9), 4.0)
    row_step[7:] = 6.0
    expected_rows = torch.ones(14, 9, dtype=torch.bool)
    expected_rows[5:9] = False
    assert torch.equal(reliable_depth_mask(row_step[None])[0], expected_rows)
    # A single spike marks exactly its 5 × 5 neighbourhood.
    spike = torch.full((11, 11), 2.0)
    spike[5, 5] = 2.5
    expected_spike = torch.ones(11, 11, dtype=torch.bool)
    expected_spike[3:8, 3:8] = False
    assert torch.equal(reliable_depth_mask(spike), expected_spike)


def test_reliable_depth_mask_threshold_and_nonpositive_depth():
    depth = torch.full((10, 10), 2.0)
    depth[:, 5:] = 2.05  # (max − min) / mean ≈ 0.025 < 0.05: smooth enough
    assert reliable_depth_mask(depth).all()
    assert not reliable_depth_mask(depth, threshold=0.02)[:, 3:7].any()
    depth[0, 0] = 0.0
    assert not reliable_depth_mask(depth)[0, 0]


def test_reliable_depth_mask_counts_the_window_past_the_border_as_zeros_as_gen3c():
    # GEN3C's reliable_depth_mask_range_batch pools with padding: max and min over the window's
    # pixels inside the image, the mean over all 25 places (zeros outside), + 1e-6. On a gentle
    # slope (depth 10 + 0.11·column) the interior is smooth, (4·0.11) / mean < 0.044, but at a
    # corner only 3 × 3 of the 25 places are in the image: (2·0.11) / (9/25 · 10.11) = 0.060 ≥ 0.05,
    # so GEN3C drops the corner point. A replicated border kept it (ratio 0.022).
    H, W = 7, 9
    depth = 10.0 + 0.11 * torch.arange(W).float().expand(H, W)
    reliable = reliable_depth_mask(depth)
    expected = torch.zeros(H, W, dtype=torch.bool)
    for r in range(H):
        for c in range(W):
            inside = depth[max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3]
            ratio = (inside.max() - inside.min()) / (inside.sum() / 25 + 1e-6)
            expected[r, c] = bool(ratio < 0.05)
    assert torch.equal(reliable, expected)
    assert not reliable[0, 0] and not reliable[-1, -1] and reliable[2:-2, 2:-2].all()


def test_an_edge_filter_threshold_of_1_or_more_keeps_every_point_as_in_gen3c():
    # GEN3C's cache_3d.py filters only when filter_points_threshold < 1, so a GEN3C user passes 1
    # to keep every point. gen3c still dropped the pixels beside a strong edge there: depth 1 next
    # to 5 gives (5 − 1) / mean ≥ 4 / 3.4 > 1 over the window.
    depth = torch.ones(10, 12)
    depth[:, 6:] = 5.0
    K = make_intrinsics(10.0, 10.0, 5.5, 4.5)
    assert not reliable_depth_mask(depth, 1.0)[:, 5:7].any()  # the filter itself would drop them
    for threshold in (0, 1.0, 2.5):
        view = Cache3D(filter_points_threshold=threshold).add_view(torch.zeros(3, 10, 12), depth, K, torch.eye(4))
        assert view.valid.all() and not view.filtered.any()
    assert not Cache3D(filter_points_threshold=0.99).add_view(torch.zeros(3, 10, 12), depth, K, torch.eye(4)).valid[0, :, 5:7].any()


def test_cache_view_records_what_the_edge_filter_alone_left_out():
    depth = torch.full((10, 12), 2.0)
    depth[:, 6:] = 3.0  # a depth edge between columns 5 and 6
    depth[0, 0] = 0.0  # no depth
    mask = torch.ones(10, 12, dtype=torch.bool)
    mask[8:, 8:] = False  # left out by the caller
    K = make_intrinsics(10.0, 10.0, 5.5, 4.5)
    view = Cache3D().add_view(torch.zeros(3, 10, 12), depth, K, torch.eye(4), mask)
    edge = ~reliable_depth_mask(depth)
    assert torch.equal(view.filtered[0], edge & (depth > 0) & mask)
    assert torch.equal(view.valid[0], ~edge & (depth > 0) & mask)
    assert not Cache3D(filter_points_threshold=0).add_view(torch.zeros(3, 10, 12), depth, K, torch.eye(4), mask).filtered.any()
    # A state saved before the field existed restores with no filtered pixel.
    cache = Cache3D()
    cache.add_view(torch.zeros(3, 10, 12), depth, K, torch.eye(4), mask)
    state = cache.state_dict()
    restored = Cache3D()
    restored.load_state_dict(state)
    assert torch.equal(restored.views[0].filtered, view.filtered)
    restored.load_state_dict({k: v for k, v in state.items() if not k.endswith(".filtered")})
    assert not restored.views[0].filtered.any() and torch.equal(restored.views[0].valid, view.valid)


# --------------------------------------------------------------------------------------------
# Foreground masking
# --------------------------------------------------------------------------------------------


def _bar_scene() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A red bar (depth 1.5, columns 16..31) in front of a green wall (depth 6), 32 × 48, and a
    target camera moved 0.3 left and 0.9 forward. Returns (image, depth, K, target w2c)."""
    H, W = 32, 48
    K = make_intrinsics(48.0, 48.0, (W - 1) / 2, (H - 1) / 2)
    depth = torch.full((H, W), 6.0)
    depth[:, 16:32] = 1.5
    image = -torch.ones(3, H, W)
    image[0, :, 16:32] = 1.0
    image[1] = -image[0]
    w2c = torch.eye(4)
    w2c[0, 3], w2c[2, 3] = 0.3, -0.9
    return image, depth, K, w2c


def test_foreground_curtain_has_no_holes():
    # The curtain between the bar's edges and the wall spans depths 0.6 to 5.1 in the target:
    # every row's hits must form one unbroken run (a lattice uniform in camera space leaves
    # gaps of several pixels at the near end).
    _, depth, K, w2c = _bar_scene()
    edge = ~reliable_depth_mask(depth)
    hit = foreground_curtain_depth(unproject_depth(depth, K, torch.eye(4)), edge, w2c, K, 32, 48)
    for row in torch.isfinite(hit):
        cols = row.nonzero()[:, 0]
        assert cols.numel() > 10 and row[cols.min() : cols.max() + 1].all()


def test_foreground_curtain_depth_is_perspective_correct():
    # An all-edge slanted plane (1/z linear in u, z from 0.5 to 8) seen from its own camera: the
    # curtain is the plane itself. Each lattice sample marks the pixels up to one to its right
    # and below, so a pixel's hit lies between the plane's depth there and one pixel nearer.
    H, W = 24, 41
    K = make_intrinsics(30.0, 30.0, 20.0, 12.0)
    inv_z = 2.0 + (0.125 - 2.0) * torch.arange(W, dtype=torch.float32) / (W - 1)
    depth = (1.0 / inv_z).expand(H, W).contiguous()
    hit = foreground_curtain_depth(
        unproject_depth(depth, K, torch.eye(4)), torch.ones(H, W, dtype=torch.bool), torch.eye(4), K, H, W
    )
    foot = hit[:21]  # the coarse grid (every 4th point) spans rows 0..20, all 41 columns
    nearer = torch.cat([depth[:21, :1], depth[:21, :-1]], dim=1)
    assert torch.isfinite(foot).all()
    assert ((foot >= nearer - 1e-4) & (foot <= depth[:21] + 1e-4)).all()


def test_foreground_masking_hides_background_leaking_through_a_crack():
    # The bar of _bar_scene seen from a camera moved 0.3 left and 0.9 forward: the bar, now at
    # depth 0.6, is magnified 2.5× so its splats leave cracks, and wall points from beside the bar
    # slide in behind it — through the cracks they show as green pixels inside the bar.
    image, depth, K, w2c = _bar_scene()
    H, W = depth.shape
    f, cx, tx, tz = K[0, 0].item(), K[0, 2].item(), w2c[0, 3].item(), -w2c[2, 3].item()
    target = Cameras(w2c[None], K, H, W)
    # The bar's columns in the target, from its source edges at u = 15.5 and 31.5.
    edges = [f * ((u - cx) / f * 1.5 + tx) / (1.5 - tz) + cx for u in (15.5, 31.5)]
    inside = ((torch.arange(W) > edges[0]) & (torch.arange(W) < edges[1])).expand(H, W)

    def render_bar(masking: bool):
        cache = Cache3D(foreground_masking=masking)
        cache.add_view(image, depth, K, torch.eye(4))
        out = cache.render(target)
        color, valid = out.colors[0, 0], out.masks[0, 0, 0] > 0
        return color, valid, valid & (color[0] > color[1]), valid & (color[1] > color[0])

    _, _, red, green = render_bar(False)
    leaks = green & inside
    assert leaks.sum() > 50  # the constructed leak is there without masking
    # A leak is a crack: red on both sides of it in its row.
    r, c = leaks[:, 1:-1].nonzero(as_tuple=True)
    assert (red[r, c] & red[r, c + 2]).any()

    color, valid, red_m, green_m = render_bar(True)
    assert not (green_m & inside).any()  # every leak is hidden
    assert torch.equal(red_m, red)  # the foreground itself is untouched
    assert (color[:, leaks] == -1).all() and not valid[leaks].any()  # hidden = black, invalid
    assert (green_m & ~inside).sum() > 0.7 * (green & ~inside).sum()  # the open background stays


# --------------------------------------------------------------------------------------------
# Procedural scenes against ground truth
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["room", "street"])
@pytest.mark.parametrize("splat", ["bilinear", "zbuffer"])
def test_cache_round_trip_reproduces_the_source(name, splat):
    src = source_camera(176, 320)
    gt = render(make_scene(name, seed=0), src)
    cache = Cache3D(splat=splat)
    view = cache.add_view(gt.rgb[0], gt.depth[0], src.K[0], src.w2c[0])
    out = cache.render(src)
    valid = out.masks[0, 0, 0] > 0
    assert torch.equal(valid, view.valid[0])  # every cached point lands on its own pixel
    assert valid.float().mean() > 0.75
    assert _psnr(out.colors[0, 0], gt.rgb[0], valid) >= 40.0
    torch.testing.assert_close(
        out.depths[0, 0, 0][valid], gt.depth[0][valid].clamp(max=100.0), rtol=1e-5, atol=0
    )


def _visible_in_source(
    depth: torch.Tensor,
    K: torch.Tensor,
    w2c: torch.Tensor,
    src_depth: torch.Tensor,
    src_K: torch.Tensor,
    src_w2c: torch.Tensor,
    rtol: float = 0.01,
) -> torch.Tensor:
    """Pixels of a target view whose ground-truth surface point is visible in the source: the
    point, reprojected into the source, agrees within ``rtol`` with the source depth at all 4
    pixels around it (so it is neither occluded nor on a source depth edge)."""
    H, W = depth.shape
    uv, z = project_points(unproject_depth(depth, K, w2c).reshape(-1, 3), src_K, src_w2c)
    x0, y0 = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    ok = torch.isfinite(depth).reshape(-1) & (z > 0) & (x0 >= 0) & (x0 < W - 1) & (y0 >= 0) & (y0 < H - 1)
    for dy in (0, 1):
        for dx in (0, 1):
            d = src_depth[(y0 + dy).clamp(0, H - 1), (x0 + dx).clamp(0, W - 1)]
            ok &= (d - z).abs() < rtol * z
    return ok.view(H, W)


@pytest.mark.parametrize("name", ["room", "objects"])
def test_novel_views_match_ground_truth_where_visible_in_source(name):
    """GEN3C's preset cameras (0.3 movement, centre depth 1) at the end of the path: the cache
    render equals the ray-cast ground truth on pixels the source sees. Colour is antialiased
    (3×3 rays per pixel) in the source and ground truth alike; depth is at pixel centres."""
    H, W = 352, 640
    scene, src = make_scene(name, seed=0), source_camera(H, W)
    source = render(scene, src, supersample=3)
    cache = Cache3D()
    cache.add_view(source.rgb[0], source.depth[0], src.K[0], src.w2c[0])
    targets = Cameras.cat(
        [
            preset_trajectory(t, "center_facing", 8, src.w2c[0], src.K[0], H, W)[-1]
            for t in ("left", "zoom_in")
        ]
    )
    gt = render(scene, targets, supersample=3)
    out = cache.render(targets)
    for i in range(len(targets)):
        visible = _visible_in_source(
            gt.depth[i], targets.K[i], targets.w2c[i], source.depth[0], src.K[0], src.w2c[0]
        )
        valid = out.masks[i, 0, 0] > 0
        scored = visible & valid
        assert visible.float().mean() > 0.6
        assert scored.sum() > 0.95 * visible.sum()  # the cache covers what the source saw
        assert _psnr(out.colors[i, 0], gt.rgb[i], scored) >= 30.0
        rel = (out.depths[i, 0, 0] - gt.depth[i]).abs() / gt.depth[i]
        assert rel[scored].median() < 1e-3  # geometry lands where it should


def test_add_view_refuses_arguments_that_do_not_fit_together():
    from gen3c.errors import Gen3cInputError

    K = make_intrinsics(40.0, 40.0, 24.0, 16.0)
    image, depth, w2c = torch.zeros(3, 32, 48), torch.ones(32, 48), torch.eye(4)
    mistakes = [
        # Before: the first three were taken silently (a view of garbage points), the rest raised
        # ValueError / AttributeError from deep inside.
        ((image.permute(1, 2, 0), depth, K, w2c), r"image has shape \(32, 48, 3\): pass \(3, H, W\)"),
        ((image, depth[None], K, w2c), r"depth has shape \(1, 32, 48\) .*: pass \(32, 48\)"),
        ((image, depth[:10], K, w2c), r"depth has shape \(10, 48\)"),
        ((image.byte(), depth, K, w2c), "image is torch.uint8: pass float colours"),
        ((image, depth, torch.eye(4), w2c), r"K has shape \(4, 4\) .*: pass \(3, 3\)"),
        ((image, depth, K, w2c[:3]), r"w2c has shape \(3, 4\)"),
        ((image, depth.numpy(), K, w2c), r"depth is a numpy array of shape \(32, 48\): pass a tensor"),
        ((image[None].repeat(2, 1, 1, 1), depth[None].repeat(2, 1, 1), K, w2c), r"K has shape \(3, 3\) .*: pass \(2, 3, 3\)"),
    ]
    for args, match in mistakes:
        with pytest.raises(Gen3cInputError, match=match):
            Cache3D().add_view(*args)
    with pytest.raises(Gen3cInputError, match=r"mask has shape \(16, 48\)"):
        Cache3D().add_view(image, depth, K, w2c, torch.ones(16, 48, dtype=torch.bool))
    for empty in (Cache3D(), SelectingCache3D()):
        with pytest.raises(Gen3cInputError, match="the cache is empty"):
            empty.render(Cameras(w2c[None], K, 32, 48))
    cache = Cache3D()
    cache.add_view(image, depth, K, w2c)
    with pytest.raises(Gen3cInputError, match=r"cameras is a torch tensor of shape \(1, 4, 4\): pass gen3c.cameras.Cameras"):
        cache.render(w2c[None])


def test_add_view_refuses_values_a_view_cannot_have():
    # Before: 0–255 colours, a non-rigid pose and a K without [0, 0, 1] were lifted into the
    # cache silently (colours far outside [-1, 1], points in no camera's frame).
    from gen3c.errors import Gen3cInputError

    K = make_intrinsics(40.0, 40.0, 24.0, 16.0)
    image, depth, w2c = torch.zeros(3, 32, 48), torch.ones(32, 48), torch.eye(4)
    mistakes = [
        ((image + 200.0, depth, K, w2c), r"image values span \[200, 200\]: pass colours in \[-1, 1\] \(0–255 values: pass image / 127.5 - 1\)"),
        ((image.clone().fill_(float("nan")), depth, K, w2c), r"image values span \[nan, nan\]"),
        ((image, depth, K, torch.zeros(4, 4)), "add_view w2c is not rigid"),
        ((image, depth, K / 40.0, w2c), r"add_view K must have \[0, 0, 1\] as their last row"),
        # Normalised intrinsics (MoGe's) were lifted into a speck of the scene; K of an image twice the size into a quarter of it.
        ((image, depth, make_intrinsics(40 / 48, 40 / 32, 0.5, 0.5), w2c), r"^add_view K \(fx=0.833333, fy=1.25, cx=0.5, cy=0.5\) look normalised"),
        ((image[None], depth[None], make_intrinsics(80.0, 80.0, 48.0, 32.0)[None], w2c[None]), r"^add_view K \(fx=80, fy=80, cx=48, cy=32\) put the principal point at the bottom-right corner"),
    ]
    for args, match in mistakes:
        with pytest.raises(Gen3cInputError, match=match):
            Cache3D().add_view(*args)
    Cache3D().add_view(image.fill_(1.0004), depth, K, w2c)  # float error past ±1 is no mistake


def test_cache_whole_number_settings_take_numpy_integers_as_python_ints():
    """max_buffers, select and chunk_size follow gen3c's one rule for whole numbers (numpy integers
    too, no bool, no float even 2.0), as frame_offset and buffer did. Before: max_buffers=np.int64(3)
    was refused ("must be a whole number ≥ 1"), so was chunk_size=np.int64(2)."""
    import numpy as np

    from gen3c.errors import Gen3cInputError

    cache = Cache3D(max_buffers=np.int64(3))
    assert type(cache.max_buffers) is int and "max_buffers=3," in repr(cache)
    assert type(SelectingCache3D(select=np.int32(1)).select) is int
    for bad in (True, 2.0):
        with pytest.raises(Gen3cInputError, match=f"^max_buffers {bad!r} must be a whole number ≥ 1"):
            Cache3D(max_buffers=bad)
        with pytest.raises(Gen3cInputError, match=f"^select must be a whole number ≥ 1 .* got {bad!r}$"):
            SelectingCache3D(select=bad)
    K = make_intrinsics(40.0, 40.0, 24.0, 16.0)
    cache.add_view(torch.rand(3, 32, 48) * 2 - 1, torch.full((32, 48), 2.0), K, torch.eye(4))
    cameras = Cameras(EYE.expand(5, 4, 4), K.expand(5, 3, 3), 32, 48)
    counts = []
    got = cache.render(cameras, chunk_size=np.int64(2), frame_offset=np.int64(0), progress=counts.append)
    expected = cache.render(cameras, chunk_size=2)
    assert torch.equal(got.colors, expected.colors) and torch.equal(got.masks, expected.masks)
    assert bool(got.masks.any())
    assert counts == [2, 2, 1] and {type(n) for n in counts} == {int}  # a progress bar gets Python's ints
    for bad in (True, 2.0):
        with pytest.raises(Gen3cInputError, match=f"^chunk_size {bad!r} must be a whole number ≥ 1"):
            cache.render(cameras, chunk_size=bad)


def test_cache_settings_are_checked_and_shown():
    # Before: max_buffers=0 failed at the first add_view (IndexError), chunk_size=0 in range(),
    # a CUDA device without a GPU in torch's driver error; the repr was the default object's.
    from gen3c.errors import Gen3cInputError

    with pytest.raises(Gen3cInputError, match="max_buffers 0 must be a whole number ≥ 1"):
        Cache3D(max_buffers=0)
    with pytest.raises(Gen3cInputError, match="filter_points_threshold -1 must be ≥ 0"):
        Cache3D(filter_points_threshold=-1)
    with pytest.raises(Gen3cInputError, match=r"select must be a whole number ≥ 1 \(views per render; GEN3C: 2\), got 0"):
        SelectingCache3D(select=0)
    # Before: select=1.5 failed at the first render (a float slice), near_full_threshold NaN or
    # past 1 never blanked a buffer and 0 always did, and foreground_tolerance NaN kept every
    # point behind the curtain (foreground masking silently off), a negative one hid some in front.
    with pytest.raises(Gen3cInputError, match="select must be a whole number ≥ 1 .* got 1.5"):
        SelectingCache3D(select=1.5)
    for threshold in (math.nan, 0.0, 1.5):
        with pytest.raises(Gen3cInputError, match=rf"near_full_threshold {threshold!r} must be a fraction of the frame in \(0, 1\]"):
            SelectingCache3D(near_full_threshold=threshold)
    for tolerance in (math.nan, -0.01, math.inf):
        with pytest.raises(Gen3cInputError, match=rf"foreground_tolerance {tolerance!r} must be a finite distance ≥ 0"):
            Cache3D(foreground_masking=True, foreground_tolerance=tolerance)
    cache = Cache3D()
    cache.add_view(torch.zeros(3, 32, 48), torch.ones(32, 48), make_intrinsics(40.0, 40.0, 24.0, 16.0), torch.eye(4))
    cameras = Cameras(EYE, make_intrinsics(40.0, 40.0, 24.0, 16.0), 32, 48)
    with pytest.raises(Gen3cInputError, match="chunk_size 0 must be a whole number ≥ 1"):
        cache.render(cameras, chunk_size=0)
    if not torch.cuda.is_available():
        with pytest.raises(Gen3cInputError, match="device 'cuda': no CUDA GPU is visible here: pass device='cpu'"):
            cache.render(cameras, device="cuda")
        with pytest.raises(Gen3cInputError, match="^output_device 'cuda': no CUDA GPU is visible here: pass output_device='cpu'"):
            cache.render(cameras, output_device="cuda")
    # Before: torch's RuntimeError "Expected one of cpu, cuda, ipu, xpu, … device type at start of device string: gpu".
    for key, value in (("device", "gpu"), ("output_device", "cuda:x"), ("device", 3.5)):
        with pytest.raises(Gen3cInputError) as refused:
            cache.render(cameras, **{key: value})
        assert str(refused.value) == f"{key} {str(value)!r} is not a device name: pass 'cuda', 'cuda:1' or 'cpu' (or None: where the cache is)"
    assert repr(cache) == (
        "Cache3D(views=[1×32×48] (frames×H×W, newest first), points=1536, max_buffers=2, splat='bilinear', "
        "filter_points_threshold=0.05, foreground_masking=False)"
    )


def test_a_gpu_or_backend_this_machine_lacks_is_refused_before_the_render(monkeypatch):
    """Before: device='mps' off a Mac (or output_device='mps') ended in torch's RuntimeError "PyTorch
    is not linked with support for mps devices" (output_device: a NotImplementedError) from inside
    the render, and 'cuda:3' on a machine of one GPU in torch's "invalid device ordinal"."""
    from gen3c.errors import Gen3cInputError

    cache = Cache3D()
    K = make_intrinsics(40.0, 40.0, 24.0, 16.0)
    cache.add_view(torch.zeros(3, 32, 48), torch.ones(32, 48), K, torch.eye(4))
    cameras = Cameras(EYE, K, 32, 48)
    if not torch.backends.mps.is_available():
        for key in ("device", "output_device"):
            with pytest.raises(Gen3cInputError, match=rf"^{key} 'mps': this machine's torch cannot use mps devices: pass {key}='cpu' \(or None: where the cache is\)$"):
                cache.render(cameras, **{key: "mps"})
    assert cache.render(cameras, device=torch.device("cpu"), output_device="cpu:0").colors.device.type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine of one GPU, as far as the check can tell
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for key in ("device", "output_device"):
        with pytest.raises(Gen3cInputError) as refused:
            cache.render(cameras, **{key: "cuda:3"})
        assert str(refused.value) == f"{key} 'cuda:3': this machine shows 1 CUDA GPU (cuda:0): pass one of those or {key}='cpu'"


def test_forward_warp_checks_its_arguments_and_its_example_runs():
    import doctest

    import gen3c.cache
    from gen3c.errors import Gen3cInputError

    # Before: the docstring's example printed a depth of 1.9999998807907104 where it showed 2.0.
    assert doctest.testmod(gen3c.cache).failed == 0
    pts, cols = torch.tensor([[0.0, 0.0, 2.0]]), torch.ones(1, 3)
    mistakes = [  # before: IndexError / RuntimeError from inside the splat, or a ValueError
        ((pts, cols, torch.eye(4), K5), r"w2c \(4, 4\) and K \(3, 3\): pass \(B, 4, 4\) poses .* \(one camera: w2c\[None\], K\[None\]\)"),
        ((pts[0], cols, EYE, K5[None]), r"points have shape \(3,\): pass \(N, 3\) or \(B, N, 3\)"),
        ((pts, cols[:, :2].T, EYE, K5[None]), r"colors have shape \(2, 1\) for points \(1, 3\)"),
        ((pts[None].repeat(2, 1, 1), cols[None].repeat(2, 1, 1), EYE, K5[None]), "has 2 point clouds for 1 cameras"),
    ]
    for args, match in mistakes:
        with pytest.raises(Gen3cInputError, match=match):
            forward_warp(*args, 5, 6)
    with pytest.raises(Gen3cInputError, match="splat mode must be one of"):
        forward_warp(pts, cols, EYE, K5[None], 5, 6, mode="nearest")


def test_a_render_that_sees_nothing_says_which_convention_to_check():
    """Cameras in OpenGL's convention (looking along −z) see none of the cache; the render says
    to check the convention instead of handing back empty buffers without a word. Before: silent."""
    import warnings

    from gen3c.cameras import invert_pose, look_at, opencv_to_opengl

    cache = Cache3D()
    cache.add_view(torch.zeros(3, 5, 6), torch.full((5, 6), 2.0), K5, torch.eye(4))
    w2c = look_at(torch.tensor([[0.1, 0.0, -0.5]]), torch.tensor([[0.0, 0.0, 2.0]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.render(Cameras(w2c, K5, 5, 6)).masks.any()
    opengl = invert_pose(opencv_to_opengl(w2c))  # an OpenGL world-to-camera pose, as a renderer keeps one
    with pytest.warns(UserWarning, match=r"no point of the cache lands in the camera: check that its pose is OpenCV world-to-camera"):
        assert not cache.render(Cameras(opengl, K5, 5, 6)).masks.any()


def test_a_render_of_a_cache_without_points_says_so_not_to_check_the_cameras():
    # A view whose every pixel is masked out, has no depth, or was dropped by the edge filter
    # (noisy depth at a strict threshold) renders nothing from any camera; the note sent the user
    # after their camera conventions.
    K = make_intrinsics(10.0, 10.0, 5.0, 4.0)
    noisy = 1.0 + torch.rand(9, 11, generator=torch.Generator().manual_seed(0))
    camera = Cameras(torch.eye(4)[None], K[None], 9, 11)
    for depth, mask, threshold in (
        (torch.ones(9, 11), torch.zeros(9, 11, dtype=torch.bool), 0.05),
        (torch.zeros(9, 11), None, 0.05),
        (noisy, None, 0.01),
    ):
        cache = Cache3D(filter_points_threshold=threshold)
        cache.add_view(torch.zeros(3, 9, 11), depth, K, torch.eye(4), mask)
        with pytest.warns(UserWarning, match=r"^the cache holds no point to render into the camera: every pixel of its views has depth ≤ 0") as caught:
            assert not cache.render(camera).masks.any()
        (said,) = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    # The setting named as a flag, which each surface respells (it said "filter_points_threshold; 0", a batch row's words).
    from gen3c.pipelines.spelling import keyword_spelling

    assert said.endswith("or was dropped by the depth-edge filter (--filter_points_threshold 0 keeps every point)"), said
    assert keyword_spelling(said).endswith("(filter_points_threshold=0 keeps every point)")


def test_forward_warp_refuses_non_finite_cameras_and_empty_images():
    # Before: a NaN in K or w2c dropped every point and returned an all-invalid render without a
    # word, fx = 0 squashed the cloud onto one column, and a 0 × 0 image was torch's ZeroDivisionError.
    from gen3c.errors import Gen3cInputError

    pts, cols = torch.tensor([[0.0, 0.0, 2.0]]), torch.ones(1, 3)
    with pytest.raises(Gen3cInputError, match="forward_warp K contain NaN or infinite values"):
        forward_warp(pts, cols, EYE, K5[None] * math.nan, 5, 6)
    with pytest.raises(Gen3cInputError, match="forward_warp K have a focal length ≤ 0"):
        forward_warp(pts, cols, EYE, make_intrinsics(0.0, 10.0, 3.0, 2.0)[None], 5, 6)
    with pytest.raises(Gen3cInputError, match="forward_warp w2c contain NaN or infinite values"):
        forward_warp(pts, cols, EYE * math.nan, K5[None], 5, 6)
    for height, width in ((0, 0), (5, 2.5)):
        with pytest.raises(Gen3cInputError, match=r"forward_warp (height|width) .* must be the image size in pixels"):
            forward_warp(pts, cols, EYE, K5[None], height, width)
    # Before: rendered without a word into a speck (normalised K) or the top-left quarter (K of an image twice the size).
    with pytest.raises(Gen3cInputError, match=r"^forward_warp K \(fx=0.5, fy=0.5, cx=0.5, cy=0.5\) look normalised .*: pass pixels of the 30×20"):
        forward_warp(pts, cols, EYE, make_intrinsics(0.5, 0.5, 0.5, 0.5)[None], 20, 30)
    with pytest.raises(Gen3cInputError, match=r"^forward_warp K \(fx=40, fy=40, cx=30, cy=20\) put the principal point at the bottom-right corner"):
        forward_warp(pts, cols, EYE, make_intrinsics(40.0, 40.0, 30.0, 20.0)[None], 20, 30)
    # An empty cloud is no mistake: every pixel is invalid, at the fill colour.
    empty = forward_warp(torch.zeros(0, 3), torch.zeros(0, 3), EYE, K5[None], 5, 6)
    assert not empty.mask.any() and torch.equal(empty.color, torch.full((1, 3, 5, 6), -1.0))


@pytest.mark.parametrize("splat", ["bilinear", "zbuffer"])
def test_forward_warp_refuses_points_and_colours_that_are_not_finite(splat):
    # Before: a point at infinite depth on the camera's axis projects to the principal point and
    # made its 4 pixels' colour NaN (their depth infinite with the fixed-point sum), silently.
    from gen3c.errors import Gen3cInputError

    pts, cols = torch.tensor([[0.0, 0.0, math.inf], [0.1, 0.1, 2.0]]), torch.zeros(2, 3)
    with pytest.raises(Gen3cInputError, match=r"^forward_warp points contain NaN or infinite values: pass finite ones"):
        forward_warp(pts, cols, EYE, K5[None], 5, 6, mode=splat)
    with pytest.raises(Gen3cInputError, match=r"^forward_warp colors contain NaN or infinite values"):
        forward_warp(pts[1:], torch.full((1, 3), math.nan), EYE, K5[None], 5, 6, mode=splat)
    keep = torch.isfinite(pts).all(-1)  # what the message says to do
    assert forward_warp(pts[keep], cols[keep], EYE, K5[None], 5, 6, mode=splat).color.isfinite().all()


def test_reliable_depth_mask_refuses_windows_without_a_centre():
    # Before: window=4 was torch's "size of tensor a (11) must match ... (10)", 0 its kernel-size error.
    from gen3c.errors import Gen3cInputError

    for window in (4, 0, 2.0):
        with pytest.raises(Gen3cInputError, match=f"reliable_depth_mask window {window!r} must be an odd whole number ≥ 1"):
            reliable_depth_mask(torch.ones(10, 10), window=window)
    with pytest.raises(Gen3cInputError, match=r"reliable_depth_mask depth must be a \(\*B, H, W\) tensor, got shape \(10,\)"):
        reliable_depth_mask(torch.ones(10))
    # window 1: max = min, so every pixel with depth > 0 is reliable.
    depth = torch.tensor([[1.0, 100.0], [0.0, 2.0]])
    assert torch.equal(reliable_depth_mask(depth, window=1), depth > 0)


def test_point_cloud_and_render_refuse_buffers_and_frames_the_cache_does_not_have():
    # Before: an empty cache was torch.cat's "expected a non-empty list of Tensors", a buffer or
    # frame out of range an IndexError, a float frame_offset an IndexError inside the render, and
    # frame_offset=-1 rendered a 4D view's last frame where the first was asked for, silently.
    from gen3c.errors import Gen3cInputError

    cache = Cache3D()
    with pytest.raises(Gen3cInputError, match="the cache is empty: add a view first"):
        cache.point_cloud()
    # A 3-frame 4D view at depths 1, 2, 3, seen by the source camera.
    depth = torch.arange(1.0, 4.0)[:, None, None].expand(3, 5, 6)
    cache.add_view(torch.zeros(3, 3, 5, 6), depth, K5.expand(3, 3, 3), torch.eye(4).expand(3, 4, 4))
    camera = Cameras(EYE, K5, 5, 6)
    assert cache.render(camera, frame_offset=1).depths[0, 0, 0, 2, 3].item() == pytest.approx(2.0)
    assert cache.point_cloud(frame=2)[0][:, 2].eq(3.0).all()
    for frame_offset in (-1, 1.0, True):
        with pytest.raises(Gen3cInputError, match=f"frame_offset {frame_offset!r} must be a whole number ≥ 0"):
            cache.render(camera, frame_offset=frame_offset)
    with pytest.raises(Gen3cInputError, match=r"buffer 1 is not one of the cache's 1 views: pass 0 … 0"):
        cache.point_cloud(buffer=1)
    with pytest.raises(Gen3cInputError, match=r"buffer 5 is not one of the cache's 1 views"):
        cache.render_views([5], camera)
    with pytest.raises(Gen3cInputError, match="render_views got no views to render"):
        cache.render_views([], camera)
    for frame in (3, -1):
        with pytest.raises(Gen3cInputError, match=rf"frame {frame} is not a frame of the cache's 3-frame views: pass 0 … 2"):
            cache.point_cloud(frame=frame)


@pytest.mark.parametrize("mode", ["bilinear", "zbuffer"])
def test_a_render_past_2_to_the_24_pixels_puts_every_point_on_its_pixel(mode):
    # Renders past 2^24 pixels (4096 × 4096, with the bilinear splat's border) were refused: the
    # splats' flat pixel index was float32, which rounds odd integers past 2^24, so points landed a
    # pixel off (or past the image's end). An 8 × (2^21 + 1) image is just past it for the z-buffer
    # (its last row holds pixels 2^24 − 2^21 + 7 … 2^24 + 7) and well past it with the border.
    # (Both of the bilinear splat's sums step from the same flat index: one of them is enough.)
    H, W = 8, 2**21 + 1
    # Identity camera and K: (x, y, 1) projects to (u, v) = (x, y), the centre of pixel (y, x)
    # when both are whole. Sub-pixel u = x + 0.25 is exact in float32 below 2^22.
    uv = [(0.0, 0.0), (2.0, 7.0), (W - 3 + 0.25, 7.0), (W - 1.0, 7.0)]
    points = torch.tensor([[u, v, 1.0] for u, v in uv])
    colors = torch.arange(1.0, len(uv) + 1)[:, None]
    out = forward_warp(points, colors, EYE, make_intrinsics(1.0, 1.0, 0.0, 0.0)[None], H, W, mode=mode, depth=False)
    # Closed form: the bilinear splat lights the (up to 4) in-image neighbours with a weight > 0
    # (a whole u or v gives the far neighbours weight 0), the z-buffer the nearest pixel.
    expected = {}
    for (u, v), color in zip(uv, colors[:, 0].tolist(), strict=True):
        if mode == "zbuffer":
            expected[(math.floor(v + 0.5), math.floor(u + 0.5))] = color
            continue
        x0, y0 = math.floor(u), math.floor(v)
        for dy in (0, 1) if v > y0 else (0,):
            for dx in (0, 1) if u > x0 else (0,):
                if y0 + dy < H and x0 + dx < W:
                    expected[(y0 + dy, x0 + dx)] = color
    lit = out.mask[0, 0].nonzero().tolist()
    assert sorted(map(tuple, lit)) == sorted(expected)
    for (y, x), color in expected.items():
        assert out.color[0, 0, y, x].item() == pytest.approx(color, rel=1e-6)


def test_renders_past_the_machines_memory_are_refused_before_they_are_allocated(monkeypatch):
    # Renders of many frames at a high resolution (e.g. `gen3c demo --resolution 2160x3840
    # --num_video_frames 300`: 29.9 GB of colour alone) ended in torch's allocator error and a
    # traceback, or, where they fit on paper only, in the system killing the process.
    from gen3c.errors import Gen3cDependencyError, Gen3cMemoryError
    from gen3c.models import memory

    cache = Cache3D()
    cache.add_view(torch.zeros(3, 8, 8), torch.ones(8, 8), make_intrinsics(8.0, 8.0, 3.5, 3.5), torch.eye(4))
    cameras = Cameras(torch.eye(4).expand(10, 4, 4), make_intrinsics(64.0, 64.0, 31.5, 31.5), 64, 64)
    need = 10 * 5 * 64 * 64 * 4  # float32 colour (3), mask and depth of 10 frames, one buffer
    measured = memory.HostMemory.__dict__["now"]
    monkeypatch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=need - 1, total=need - 1)))
    with pytest.raises(Gen3cMemoryError, match=r"^rendering the 3D cache into 10 frames of 64×64 \(1 buffer\) needs 0\.0 GB of CPU memory for the renders; "
                       r"with the 0\.0 GB this process holds already, 0\.0 GB, and this machine has 0\.0 GB of RAM and swap: render fewer frames at once \(gen3c generate --chunk_frames; .*--resolution$"):
        cache.render(cameras)
    assert cache.render(cameras, depth=False).masks.any()  # colour and mask only: 4/5 of it
    monkeypatch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=need - 1, total=need)))
    with pytest.warns(UserWarning, match="free now: the system may stop the run"):
        assert cache.render(cameras).masks.any()
    # psutil measures it everywhere (one of gen3c's own dependencies): an install without it says
    # so in one line, where renders went ahead unchecked off Linux (no /proc/meminfo) before.
    monkeypatch.setattr(memory.HostMemory, "now", measured)
    monkeypatch.setitem(sys.modules, "psutil", None)  # importing it now raises ImportError
    with pytest.raises(Gen3cDependencyError, match=r"^checking the free CPU memory needs psutil \(psutil is missing\): pip install 'psutil"):
        cache.render(cameras)


def test_memory_this_process_holds_counts_beside_what_it_is_about_to_allocate(monkeypatch):
    """The checks compared what was about to be allocated with the machine's RAM and swap alone,
    though the process holds its interpreter, libraries, input and cache meanwhile (0.65 GB at
    352×640, more for a video's 4D cache): renders that fit only without them were made, past the
    machine's memory, until the system's kill. Now what it holds counts too, and the line says so."""
    from gen3c.errors import Gen3cMemoryError
    from gen3c.models import memory

    cache = Cache3D()
    cache.add_view(torch.zeros(3, 8, 8), torch.ones(8, 8), make_intrinsics(8.0, 8.0, 3.5, 3.5), torch.eye(4))
    cameras = Cameras(torch.eye(4).expand(10, 4, 4), make_intrinsics(64.0, 64.0, 31.5, 31.5), 64, 64)
    need = 10 * 5 * 64 * 64 * 4
    held = 3 * 2**30
    monkeypatch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=2**40, total=need + held - 1, held=held)))
    with pytest.raises(Gen3cMemoryError, match=r"^rendering the 3D cache into 10 frames of 64×64 \(1 buffer\) needs 0\.0 GB of CPU memory for the renders; "
                       r"with the 3\.0 GB this process holds already, 3\.0 GB, and this machine has 3\.0 GB of RAM and swap: render fewer frames"):
        cache.render(cameras)
    monkeypatch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=2**40, total=need + held, held=held)))
    assert cache.render(cameras).masks.any()


def test_the_memory_this_process_holds_is_measured():
    """HostMemory.held is this process's resident memory: a 256 MiB array written through raises it by about that."""
    from gen3c.models.memory import HostMemory

    # The pages are mapped before the first reading and touched between the two, with the collector
    # off: in a long test process a collection freeing earlier tests' garbage between the readings
    # made the difference fall short of 256 MiB.
    gc.collect()
    gc.disable()
    try:
        block = np.empty(2**25)  # 256 MiB, mapped, no page touched yet
        before = HostMemory.now().held
        block.fill(1.0)
        after = HostMemory.now().held
    finally:
        gc.enable()
    assert 0 < before and 240 * 2**20 < after - before < 280 * 2**20, (before, after)
    del block


def fake_cgroups(root, cgroup_lines, limits):
    """A /proc/self/cgroup of ``cgroup_lines`` and a cgroup mount under ``root`` whose files
    ``limits`` maps ({relative path: text})."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "proc_cgroup").write_text("\n".join(cgroup_lines) + "\n")
    for name, text in limits.items():
        (root / "mount" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "mount" / name).write_text(text + "\n")
    return root / "proc_cgroup", root / "mount"


def test_a_cgroup_memory_limit_is_read_from_the_process_cgroup_and_those_above(tmp_path, monkeypatch):
    """A SLURM job's limit is on the job's cgroup, above the task's the process is in (cgroup v2);
    inside a container (cgroup v1 here) the path named is not mounted, its own cgroup is the root;
    v1's "no limit" is 2^63 rounded down to pages, v2's "max"."""
    from gen3c import environment

    cases = [
        (["0::/slurm/job_7/step_0/task_0"], {"slurm/job_7/memory.max": str(4 * 2**30), "slurm/job_7/step_0/task_0/memory.max": "max"}, 4 * 2**30),
        (["4:memory:/docker/abc", "0::/"], {"memory/memory.limit_in_bytes": str(2 * 2**30)}, 2 * 2**30),
        (["4:memory:/docker/abc", "0::/"], {"memory/memory.limit_in_bytes": "9223372036854771712"}, None),
        (["0::/user.slice"], {"user.slice/memory.max": "max"}, None),
    ]
    for i, (lines, limits, expected) in enumerate(cases):
        proc, mount = fake_cgroups(tmp_path / str(i), lines, limits)
        monkeypatch.setattr(environment, "PROC_CGROUP", proc)
        monkeypatch.setattr(environment, "CGROUP_MOUNT", mount)
        found = environment.cgroup_memory()
        assert (found and found.limit) == expected, (lines, limits)
    monkeypatch.setattr(environment, "PROC_CGROUP", tmp_path / "absent")  # (not Linux)
    assert environment.cgroup_memory() is None


def test_what_the_cgroups_other_processes_use_leaves_less_of_its_limit(tmp_path, monkeypatch):
    """Each limited cgroup's limit is shared by all its processes (a SLURM job's other tasks, a
    container's other programs): what is left is its limit less its use (v2 memory.current, v1
    memory.usage_in_bytes) other than inactive file cache, which the kernel reclaims first; the
    least of that over the limited cgroups. Before, only the limit was read (HostMemory took the
    limit less what this process holds as free)."""
    from gen3c import environment

    gib = 2**30
    cases = [
        # the job's 4 GiB: 3 GiB used, 0.5 GiB of it inactive file cache
        (["0::/job/task"], {"job/memory.max": str(4 * gib), "job/memory.current": str(3 * gib), "job/memory.stat": f"anon 1\ninactive_file {gib // 2}"},
         (4 * gib, gib + gib // 2)),
        # the step's smaller limit, but less left of the job's above it
        (["0::/job/step"], {"job/memory.max": str(4 * gib), "job/memory.current": str(4 * gib - 2**20), "job/step/memory.max": str(2 * gib),
                            "job/step/memory.current": str(gib)}, (2 * gib, 2**20)),
        # cgroup v1: usage_in_bytes and the stat's total_inactive_file (the cgroups below too)
        (["4:memory:/docker/abc"], {"memory/memory.limit_in_bytes": str(2 * gib), "memory/memory.usage_in_bytes": str(2 * gib),
                                    "memory/memory.stat": f"inactive_file 1\ntotal_inactive_file {gib}"}, (2 * gib, gib)),
        # a use past the limit (swapped out, or not yet reclaimed) leaves nothing, not less than nothing
        (["0::/job"], {"job/memory.max": str(gib), "job/memory.current": str(2 * gib)}, (gib, 0)),
    ]
    for i, (lines, files, expected) in enumerate(cases):
        proc, mount = fake_cgroups(tmp_path / str(i), lines, files)
        monkeypatch.setattr(environment, "PROC_CGROUP", proc)
        monkeypatch.setattr(environment, "CGROUP_MOUNT", mount)
        found = environment.cgroup_memory()
        assert (found.limit, found.available) == expected, (lines, files)


def test_a_cgroup_v1_limit_above_use_hierarchy_0_does_not_hold_the_cgroups_below(tmp_path, monkeypatch):
    """cgroup v1 with memory.use_hierarchy 0 (older kernels' default) holds only the cgroup's own
    processes to its limit: a 1 GiB limit there is none for the cgroup below, whose own 8 GiB is
    the limit (it was taken as 1 GiB, refusing what the kernel allows). With 1, it holds."""
    from gen3c import environment

    gib = 2**30
    for use_hierarchy, expected in (("0", 8 * gib), ("1", gib)):
        files = {"memory/slurm/memory.limit_in_bytes": str(gib), "memory/slurm/memory.use_hierarchy": use_hierarchy,
                 "memory/slurm/job/memory.limit_in_bytes": str(8 * gib), "memory/slurm/job/memory.use_hierarchy": use_hierarchy}
        proc, mount = fake_cgroups(tmp_path / use_hierarchy, ["5:memory:/slurm/job"], files)
        monkeypatch.setattr(environment, "PROC_CGROUP", proc)
        monkeypatch.setattr(environment, "CGROUP_MOUNT", mount)
        assert environment.cgroup_memory().limit == expected, use_hierarchy


def test_a_cgroups_swap_limit_lowers_the_swap_it_can_use(tmp_path, monkeypatch):
    """A cgroup limits swap too (v2 memory.swap.max, swap alone; v1 memory.memsw.limit_in_bytes,
    memory and swap together): the checks took the limit with all the machine's swap, so on a
    machine with 8 GiB of swap a job allowed none was said to hold 8 GiB more than it can, and
    what needed it was made until the kill. Now the least swap the cgroups allow counts."""
    from types import SimpleNamespace

    import psutil

    from gen3c import environment
    from gen3c.models.memory import HostMemory

    gib = 2**30
    cases = [
        (["0::/job/task"], {"job/memory.max": str(gib), "job/memory.swap.max": "0", "job/task/memory.swap.max": "max"}, 0),
        (["0::/job/task"], {"job/memory.max": str(gib), "job/memory.swap.max": "max", "job/task/memory.swap.max": str(gib // 2)}, gib // 2),
        (["0::/job"], {"job/memory.max": str(gib), "job/memory.swap.max": "max"}, None),
        (["4:memory:/job"], {"memory/job/memory.limit_in_bytes": str(gib), "memory/job/memory.memsw.limit_in_bytes": str(gib + gib // 4)}, gib // 4),
        (["4:memory:/job"], {"memory/job/memory.limit_in_bytes": str(gib), "memory/job/memory.memsw.limit_in_bytes": "9223372036854771712"}, None),
    ]
    machine_swap = 8 * gib
    monkeypatch.setattr(psutil, "swap_memory", lambda: SimpleNamespace(total=machine_swap))
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(total=64 * gib, available=32 * gib))
    for i, (lines, files, expected) in enumerate(cases):
        proc, mount = fake_cgroups(tmp_path / str(i), lines, files)
        monkeypatch.setattr(environment, "PROC_CGROUP", proc)
        monkeypatch.setattr(environment, "CGROUP_MOUNT", mount)
        assert environment.cgroup_memory().swap == expected, (lines, files)
        memory = HostMemory.now()
        assert memory.limited and memory.total == gib + (machine_swap if expected is None else expected), (lines, files, memory)


def test_the_free_memory_in_a_cgroup_is_what_its_processes_leave(tmp_path, monkeypatch):
    """HostMemory's free memory in a cgroup was its limit less what this process holds, though
    the cgroup's other processes use the same limit: with them using all but 1 MiB of it, a
    render needing more than that was said to fit. Now it is what the cgroup's use leaves."""
    import psutil

    from gen3c import environment
    from gen3c.models.memory import HostMemory

    limit = HostMemory.now().held + 2 * 2**30
    if limit >= psutil.virtual_memory().total:
        pytest.skip("needs a machine of more RAM than this process holds and 2 GiB")
    proc, mount = fake_cgroups(tmp_path, ["0::/job"], {"job/memory.max": str(limit), "job/memory.current": str(limit - 2**20)})
    monkeypatch.setattr(environment, "PROC_CGROUP", proc)
    monkeypatch.setattr(environment, "CGROUP_MOUNT", mount)
    memory = HostMemory.now()
    assert memory.limited and memory.available == 2**20, memory


def test_memory_past_the_cgroups_limit_is_refused_though_the_machine_has_it(tmp_path, monkeypatch):
    """In a container or a SLURM job the kernel kills a process past its cgroup's memory limit,
    however much RAM the machine has; RAM and swap were all the checks knew (MemTotal and psutil
    tell the machine's), so renders past the limit were made until the kill. Now the limit,
    where lower, is what the process can hold (with the machine's swap), and the line says so."""
    import psutil

    from gen3c import environment
    from gen3c.errors import Gen3cMemoryError
    from gen3c.models.memory import HostMemory

    proc, mount = fake_cgroups(tmp_path, ["0::/job"], {"job/memory.max": str(2**28)})
    monkeypatch.setattr(environment, "PROC_CGROUP", proc, raising=False)
    monkeypatch.setattr(environment, "CGROUP_MOUNT", mount, raising=False)
    machine = psutil.virtual_memory().total
    assert machine > 2 * 2**30, machine  # (the test needs a machine of more than the limit and the render)
    with pytest.raises(Gen3cMemoryError, match=r"^forward_warp into 1 camera of 4096×4096 needs 0\.6 GB of CPU memory for the render and its splat; "
                       r"with the .* GB this process holds already, .* GB, and this process's cgroup \(a container's or a job's memory limit\) allows "):
        forward_warp(torch.zeros(1, 3), torch.zeros(1, 3), torch.eye(4)[None], make_intrinsics(4096.0, 4096.0, 2047.5, 2047.5)[None], 4096, 4096)
    memory = HostMemory.now()
    assert memory.limited and memory.total - 2**28 == psutil.swap_memory().total
    assert memory.available == max(0, 2**28 - memory.held)


def test_depth_beyond_100_enters_the_cache_on_its_ray_at_100_as_documented():
    # Pins the clamp docs/depth.md ("Depth beyond 100") and Cache3D's docstring describe
    # (GEN3C's cache_3d.py): 150 m sits at 100 m along its own ray, NaN at 100, colour kept.
    cache = Cache3D(filter_points_threshold=0)
    K = make_intrinsics(2.0, 2.0, 0.0, 0.0)
    depth = torch.tensor([[50.0, 150.0], [float("nan"), 0.0]])
    view = cache.add_view(torch.linspace(-1, 1, 12).reshape(3, 2, 2), depth, K, torch.eye(4))
    expected = unproject_depth(torch.tensor([[[50.0, 100.0], [100.0, 0.0]]]), K[None], torch.eye(4)[None])
    assert torch.equal(view.points, expected) and view.points[0, 0, 1].tolist() == [50.0, 0.0, 100.0]
    assert view.valid[0].tolist() == [[True, True], [True, False]]
    assert torch.equal(view.colors[0], torch.linspace(-1, 1, 12).reshape(3, 2, 2).permute(1, 2, 0))


def test_add_view_refuses_empty_views_and_mixed_devices():
    # Before: an image of 0 frames went in and every render was an IndexError, one of 0 columns
    # torch's reshape error, and a depth or mask on another device torch's "is not on the expected device".
    from gen3c.errors import Gen3cInputError

    K = make_intrinsics(40.0, 40.0, 24.0, 16.0)
    image, depth, w2c = torch.zeros(3, 32, 48), torch.ones(32, 48), torch.eye(4)
    mistakes = [
        ((image[None, :, :, :0], depth[None, :, :0], K[None], w2c[None]), r"^add_view image has shape \(1, 3, 32, 0\): pass at least one frame of at least 1×1 pixels$"),
        ((image[None][:0], depth[None][:0], K[None][:0], w2c[None][:0]), r"^add_view image has shape \(0, 3, 32, 48\): pass at least one frame"),
        ((image, depth.to("meta"), K, w2c), r"^add_view depth is on meta and image on cpu: pass all on one device \(depth.to\(image.device\)\)$"),
        ((image, depth, K, w2c, torch.ones(32, 48, dtype=torch.bool, device="meta")), r"^add_view mask is on meta and image on cpu"),
    ]
    for args, match in mistakes:
        with pytest.raises(Gen3cInputError, match=match):
            Cache3D().add_view(*args)


def test_add_view_lets_in_the_pixels_whose_mask_is_above_0_as_the_readers_and_gen3c():
    # GEN3C draws a point whose mask is > 0 (a fraction too) and never one whose mask is ≤ 0, and
    # the input readers read masks so (gen3c.io.depth.mask_lets_in). Before: add_view took
    # mask.bool(), so a mask of −1 or NaN let its pixels in.
    K = make_intrinsics(40.0, 40.0, 24.0, 16.0)
    image, depth, w2c = torch.zeros(3, 32, 48), torch.ones(32, 48), torch.eye(4)
    values = torch.tensor([-1.0, 0.0, 0.25, 1.0, 2.0, math.nan])
    mask = values[torch.arange(48) % 6].expand(32, 48)
    expected = mask > 0
    assert expected.any() and not expected.all()
    for m in (mask, mask.double(), mask.nan_to_num(0).to(torch.int8)):
        assert torch.equal(Cache3D(filter_points_threshold=0).add_view(image, depth, K, w2c, m).valid[0], m > 0)
    uint8 = expected.to(torch.uint8) * 255  # a PNG's 0 / 255
    assert torch.equal(Cache3D(filter_points_threshold=0).add_view(image, depth, K, w2c, uint8).valid[0], expected)


def test_a_view_or_camera_that_requires_grad_renders_as_constants():
    # Before: an image or depth that required grad (a network's output outside torch.no_grad())
    # went into the cache and every render was torch's "functions with out=... arguments don't
    # support automatic differentiation"; forward_warp the same.
    K = make_intrinsics(40.0, 40.0, 23.0, 16.0)
    image, depth = _ramp(33, 47).requires_grad_(), torch.full((33, 47), 4.0, requires_grad=True)
    cache = Cache3D()
    view = cache.add_view(image, depth, K.requires_grad_(), torch.eye(4))
    assert not any(t.requires_grad for t in (view.points, view.colors, view.w2c, view.K))
    expected = Cache3D()
    expected.add_view(image.detach(), depth.detach(), K.detach(), torch.eye(4))
    camera = Cameras(EYE, K.detach()[None], 33, 47)
    assert torch.equal(cache.render(camera).colors, expected.render(camera).colors)
    pts = torch.tensor([_point_at(2.0, 1.0, 2.0)], requires_grad=True)
    out = forward_warp(pts, torch.ones(1, 3, requires_grad=True), EYE, K5[None].requires_grad_(), 5, 6)
    assert out.mask[0, 0, 1, 2] == 1 and not out.color.requires_grad


def test_forward_warp_refuses_poses_that_are_not_rigid_and_mixed_devices():
    # Before: a scaled pose, or a transposed (column-major) one, rendered points in no camera's
    # frame without a word (add_view and Cameras refuse both); an argument on another device was
    # torch's ".item() cannot be called on meta tensors" from inside the splat.
    from gen3c.errors import Gen3cInputError

    pts, cols = torch.tensor([[0.0, 0.0, 2.0]]), torch.ones(1, 3)
    moved = torch.eye(4)
    moved[0, 3] = 0.5
    mistakes = [
        ((pts, cols, 2 * EYE, K5[None]), r"^forward_warp w2c are not rigid: the 3×3 block must be a rotation"),
        ((pts, cols, moved.T[None], K5[None]), r"^forward_warp w2c must have \[0, 0, 0, 1\] as their last row: .* looks transposed"),
        ((pts.to("meta"), cols, EYE, K5[None]), r"^forward_warp points are on meta and w2c on cpu: pass all four on the device to render on \(points.to\(w2c.device\)\)$"),
        ((pts, cols.to("meta"), EYE, K5[None]), r"^forward_warp colors are on meta and w2c on cpu"),
        ((pts, cols, EYE, K5[None].to("meta")), r"^forward_warp K are on meta and w2c on cpu"),
    ]
    for args, match in mistakes:
        with pytest.raises(Gen3cInputError, match=match):
            forward_warp(*args, 5, 6)


def test_forward_warp_refuses_images_past_the_machines_memory_before_allocating(monkeypatch):
    # Before: a 200 000 × 200 000 render was torch's "DefaultCPUAllocator: can't allocate memory:
    # you tried to allocate 800016000080 bytes" and a traceback (or, fitting on paper only, the
    # process killed as it filled), where Cache3D.render refuses with the memory named.
    from gen3c.errors import Gen3cMemoryError
    from gen3c.models import memory

    pts, cols = torch.tensor([[0.0, 0.0, 2.0]]), torch.ones(1, 3)
    # Colour (3), mask and depth of the result, and the accumulator's 5 rows with a 1-pixel border.
    need = 5 * 4 * (64 * 64 + 66 * 66)
    monkeypatch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=need - 1, total=need - 1)))
    with pytest.raises(Gen3cMemoryError, match=r"^forward_warp into 1 camera of 64×64 needs 0\.0 GB of CPU memory for the render and its splat; "
                       r"with the 0\.0 GB this process holds already, 0\.0 GB, and this machine has 0\.0 GB of RAM and swap: render fewer cameras at once or a smaller image$"):
        forward_warp(pts, cols, EYE, make_intrinsics(32.0, 32.0, 31.5, 31.5)[None], 64, 64)
    monkeypatch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=need, total=need)))
    assert forward_warp(pts, cols, EYE, make_intrinsics(32.0, 32.0, 31.5, 31.5)[None], 64, 64).mask.any()


def test_reliable_depth_mask_refuses_thresholds_that_mark_nothing_and_takes_empty_maps():
    # Before: a threshold of NaN or ≤ 0 marked every pixel unreliable without a word (the ratio is
    # ≥ 0), a string was torch's TypeError, and an empty map torch's "cannot reshape tensor of 0 elements".
    from gen3c.errors import Gen3cInputError

    for threshold in (math.nan, 0.0, -1, "0.05"):
        with pytest.raises(Gen3cInputError, match=rf"^reliable_depth_mask threshold {threshold!r} must be a number > 0 \(GEN3C: 0.05; no filter: depth > 0\)$"):
            reliable_depth_mask(torch.ones(10, 10), threshold=threshold)
    empty = reliable_depth_mask(torch.ones(2, 0, 5))
    assert empty.shape == (2, 0, 5) and empty.dtype == torch.bool


def test_selecting_cache_and_add_view_refuse_what_a_render_cannot_take():
    # Before: a SelectingCache3D with more views than it selects scored them before checking its
    # arguments (cameras as a tensor: AttributeError; chunk_size=0: range()'s ValueError); an
    # add_view max_depth of NaN or ≤ 0 dropped every point (the render then blamed depth ≤ 0 or
    # the filter) and inf made them render as NaN; Cache3D settings as strings were TypeErrors.
    from gen3c.errors import Gen3cInputError

    K = make_intrinsics(40.0, 40.0, 24.0, 16.0)
    image, depth, w2c = torch.zeros(3, 32, 48), torch.ones(32, 48), torch.eye(4)
    cache = SelectingCache3D(select=1)
    for _ in range(2):
        cache.add_view(image, depth, K, w2c)
    with pytest.raises(Gen3cInputError, match=r"^cameras is a torch tensor of shape \(1, 4, 4\): pass gen3c.cameras.Cameras"):
        cache.render(w2c[None])
    camera = Cameras(EYE, K[None], 32, 48)
    with pytest.raises(Gen3cInputError, match="^chunk_size 0 must be a whole number ≥ 1"):
        cache.render(camera, chunk_size=0)
    with pytest.raises(Gen3cInputError, match="^chunk_size 0 must be a whole number ≥ 1"):
        cache.overlap_scores(camera, chunk_size=0)
    for max_depth in (math.nan, 0.0, -1.0, math.inf, "100"):
        with pytest.raises(Gen3cInputError, match=rf"^add_view max_depth {max_depth!r} must be a finite depth > 0 \(GEN3C: 100 for a source view, 10000 for a generated frame\)$"):
            Cache3D().add_view(image, depth, K, w2c, max_depth=max_depth)
    with pytest.raises(Gen3cInputError, match="^filter_points_threshold '0.05' must be ≥ 0"):
        Cache3D(filter_points_threshold="0.05")
    with pytest.raises(Gen3cInputError, match="^foreground_tolerance '0.02' must be a finite distance ≥ 0"):
        Cache3D(foreground_tolerance="0.02")


def test_the_foreground_curtain_refuses_batched_cameras_and_views():
    # Before: a (1, 4, 4) pose or (1, 3, 3) K was sliced as if unbatched and gave a curtain from
    # no camera without a word; a batched warped depth was torch's "too many values to unpack".
    from gen3c.errors import Gen3cInputError

    points, edge = torch.ones(16, 20, 3), torch.zeros(16, 20, dtype=torch.bool)
    K = make_intrinsics(20.0, 20.0, 10.0, 8.0)
    good = (points, edge, torch.eye(4), K)
    for i, bad, match in (
        (2, EYE, r"^foreground_curtain_depth w2c has shape \(1, 4, 4\): pass one view's points \(H, W, 3\), .* \(a batch: one call per view\)$"),
        (3, K[None], r"^foreground_curtain_depth K has shape \(1, 3, 3\)"),
        (0, points[None], r"^foreground_curtain_depth points_world has shape \(1, 16, 20, 3\)"),
        (1, edge[:8], r"^foreground_curtain_depth edge has shape \(8, 20\)"),
    ):
        args = list(good)
        args[i] = bad
        with pytest.raises(Gen3cInputError, match=match):
            foreground_curtain_depth(*args, 16, 20)
    with pytest.raises(Gen3cInputError, match=r"^foreground_curtain_mask warped_depth must be one \(H, W\) depth map, got shape \(1, 16, 20\)"):
        foreground_curtain_mask(torch.ones(1, 16, 20), *good)
    assert foreground_curtain_mask(torch.ones(16, 20), *good).all()  # no edge: no curtain


@pytest.mark.parametrize("setting", ["filter_points_threshold", "foreground_tolerance"])
def test_a_cache_setting_of_true_or_false_is_no_number(setting):
    """Cache3D(filter_points_threshold=True) was taken as 1 (every point kept without a word),
    foreground_tolerance=False as 0: a bool is refused as every other number gen3c checks refuses it
    (reliable_depth_mask's threshold, add_view's max_depth)."""
    from gen3c.errors import Gen3cInputError

    for value in (True, False):
        with pytest.raises(Gen3cInputError, match=f"^{setting} {value!r} must be"):
            Cache3D(**{setting: value})


def test_cache_settings_and_state_that_are_none_are_refused_in_one_line():
    """Cache3D(foreground_masking="no") took the text for its truth and turned the masking on;
    forward_warp(fill_value=None) was Python's "bad operand type for unary -: 'NoneType'" from the
    splat; load_state_dict(None) "'NoneType' object is not iterable". Each is one line now;
    numpy's bool and number work as Python's."""
    for flag in ("no", 1, None):
        with pytest.raises(Gen3cInputError, match=rf"^foreground_masking {re.escape(repr(flag))} must be True or False$"):
            Cache3D(foreground_masking=flag)
    assert Cache3D(foreground_masking=np.bool_(True)).foreground_masking is True
    pts = torch.tensor([[0.0, 0.0, 2.0]])
    K = torch.tensor([[[10.0, 0, 2], [0, 10.0, 2], [0, 0, 1]]])
    for fill in (None, "0"):
        with pytest.raises(Gen3cInputError, match=rf"^forward_warp fill_value {re.escape(repr(fill))} must be a number, the colour of pixels no point lands on"):
            forward_warp(pts, torch.ones(1, 3), torch.eye(4)[None], K, 5, 5, fill_value=fill)
    assert forward_warp(pts, torch.ones(1, 3), torch.eye(4)[None], K, 5, 5, fill_value=np.float32(0.5)).color[0, 0, 0, 0] == 0.5
    for state in (None, [1], {0: torch.zeros(1)}):
        with pytest.raises(Gen3cInputError, match=r"^load_state_dict state is .*: pass what Cache3D\.state_dict\(\) returned, a dict of tensors by name$"):
            Cache3D().load_state_dict(state)
