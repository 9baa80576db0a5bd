"""The 3D cache: source views lifted to coloured point clouds and rendered into new cameras.

Pure PyTorch (CPU and CUDA). The functions follow GEN3C (``cache_3d.py``, ``forward_warp_utils_pytorch.py``):

- :func:`reliable_depth_mask` — the depth-edge filter that drops "rubber sheet" points.
- :func:`forward_warp` — bilinear forward splatting with GEN3C's soft depth weights (default)
  or a hard z-buffer, returning warped colour, validity mask and depth.
- :func:`foreground_curtain_mask` — GEN3C's ``--foreground_masking``: a curtain mesh spanning
  depth edges, seen from the target camera, hides background leaking through cracks.

:class:`Cache3D` is a thin holder of tensors over them: up to ``max_buffers`` source views
(newest first), each a static point cloud (F = 1) or one cloud per frame (F = T, a 4D cache for
video input, where target frame t renders source frame t).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gen3c.cameras import Cameras, check_intrinsics_fit, unproject_depth, validate_poses
from gen3c.constants import SPLAT_MODES
from gen3c.errors import (
    Gen3cInputError,
    Gen3cMemoryError,
    counted,
    describe_value,
    is_whole_number,
    note,
    noted,
    shown_value,
)
from gen3c.io.images import outside_unit_range
from gen3c.summary import dataclass_repr

# GEN3C's cache clamps a source view's depth to [0, 100] and treats NaN as 100 (``cache_3d.py``,
# at construction); a frame it generates and adds later (``update_cache``) to [0, 10⁴], NaN at 10⁴.
CACHE_MAX_DEPTH = 100.0
GENERATED_MAX_DEPTH = 1e4
# Sharpness of the soft z-buffer: weights are divided by exp(50 · log(1+z) / max log(1+z)).
DEPTH_WEIGHT_SHARPNESS = 50.0


# --------------------------------------------------------------------------------------------
# Depth-edge filter
# --------------------------------------------------------------------------------------------


def reliable_depth_mask(depth: Tensor, threshold: float = 0.05, window: int = 5) -> Tensor:
    """Pixels whose depth is locally smooth: ``(max − min) / mean < threshold`` over a
    ``window × window`` neighbourhood, and ``depth > 0`` (GEN3C's ``--filter_points_threshold``).

    Args:
        depth: (*B, H, W) z-depth.
        window: an odd whole number ≥ 1 (GEN3C: 5), so the window is centred on its pixel.
    Returns:
        (*B, H, W) bool, True where the pixel is reliable.
    """
    if not isinstance(depth, Tensor) or depth.ndim < 2:
        got = f"shape {tuple(depth.shape)}" if isinstance(depth, Tensor) else describe_value(depth)
        raise Gen3cInputError(f"reliable_depth_mask depth must be a (*B, H, W) tensor, got {got}")
    # An even window gave a mask one pixel too large (torch's size-mismatch error), 0 torch's kernel-size error.
    if not is_whole_number(window) or window < 1 or window % 2 == 0:
        raise Gen3cInputError(f"reliable_depth_mask window {shown_value(window)} must be an odd whole number ≥ 1 (GEN3C: 5)")
    # NaN or a threshold ≤ 0 marked every pixel unreliable without a word (the ratio is ≥ 0).
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 < threshold < math.inf:
        raise Gen3cInputError(f"reliable_depth_mask threshold {shown_value(threshold)} must be a number > 0 (GEN3C: 0.05; no filter: depth > 0)")
    shape = depth.shape
    if depth.numel() == 0:  # was torch's "cannot reshape tensor of 0 elements"
        return torch.zeros(shape, dtype=torch.bool, device=depth.device)
    d = depth.reshape(-1, 1, *shape[-2:]).float()
    pad = window // 2
    # As GEN3C's ``reliable_depth_mask_range_batch``: max and min over the window's pixels in the
    # image, the mean over all window² places with zeros outside it (so within pad pixels of the
    # border a slope counts more), and 1e-6 added to the mean. A replicated border kept points
    # GEN3C drops there.
    d_max = F.max_pool2d(d, window, stride=1, padding=pad)
    d_min = -F.max_pool2d(-d, window, stride=1, padding=pad)
    d_mean = F.avg_pool2d(d, window, stride=1, padding=pad, count_include_pad=True)
    ratio = (d_max - d_min) / (d_mean + 1e-6)
    reliable = (ratio < threshold) & (d > 0)
    return reliable.reshape(shape)


# --------------------------------------------------------------------------------------------
# Forward warping
# --------------------------------------------------------------------------------------------


@dataclass
class WarpResult:
    """Output of :func:`forward_warp` for B target views.

    Attributes:
        color: (B, C, H, W); invalid pixels hold ``fill_value``.
        mask: (B, 1, H, W) float {0, 1}.
        depth: (B, 1, H, W) z-depth in the target camera, 0 where invalid; None when the render
            was asked for colour and mask only (``depth=False``, as GEN3C renders).
    """

    color: Tensor
    mask: Tensor
    depth: Tensor | None

    __repr__ = dataclass_repr


def forward_warp(
    points: Tensor,
    colors: Tensor,
    w2c: Tensor,
    K: Tensor,
    height: int,
    width: int,
    mode: str = "bilinear",
    fill_value: float = -1.0,
    depth: bool = True,
) -> WarpResult:
    """Render point clouds into cameras by forward splatting.

    ``"bilinear"`` (GEN3C's default): every point adds its colour to its 4 neighbouring pixels
    with bilinear weights divided by ``exp(50 · log(1+z) / max log(1+z))`` — nearer points
    dominate, a soft z-buffer — and ``colour = Σ w·c / Σ w``; a pixel is valid when ``Σ w > 0``.
    The max is taken per target view. ``"zbuffer"``: each point lands on its nearest pixel and
    the nearest point wins.

    Args:
        points: (N, 3) world points shared by all views, or (B, N, 3) one cloud per view.
        colors: (N, C) or (B, N, C), matching ``points``.
        w2c: (B, 4, 4) target poses.
        K: (B, 3, 3) target intrinsics in pixels of a ``height`` × ``width`` image
            (:func:`~gen3c.cameras.check_intrinsics_fit`: normalised ones are refused).
        fill_value: colour of invalid pixels (−1 is black in [−1, 1] images).
        depth: also render the (weighted) depth; ``False`` skips it, a fifth less work.
    Returns:
        :class:`WarpResult` (float32, on ``w2c``'s device, where all inputs must be). The splat is
        not differentiable: inputs that require grad are taken as constants.

    Example:
        >>> pts = torch.tensor([[0.0, 0.0, 2.0]])
        >>> K = torch.tensor([[[10.0, 0, 2], [0, 10.0, 2], [0, 0, 1]]])
        >>> out = forward_warp(pts, torch.ones(1, 3), torch.eye(4)[None], K, 5, 5)
        >>> out.mask[0, 0, 2, 2].item(), round(out.depth[0, 0, 2, 2].item(), 5)
        (1.0, 2.0)
    """
    if mode not in SPLAT_MODES:
        raise Gen3cInputError(f"splat mode must be one of {SPLAT_MODES}, got {shown_value(mode)}")
    if isinstance(fill_value, bool) or not isinstance(fill_value, numbers.Real):  # (None was "bad operand type for unary -")
        raise Gen3cInputError(f"forward_warp fill_value {shown_value(fill_value)} must be a number, the colour of pixels no point lands on (-1: black)")
    _check_warp_inputs(points, colors, w2c, K, height, width, mode)
    # Planar (3, N) / (C, N) layouts keep every per-point operation on contiguous rows.
    if points.ndim == 2:
        clouds = [(points.T.float().contiguous(), colors.T.float().contiguous())]
    else:
        clouds = [(p.T.float().contiguous(), c.T.float().contiguous()) for p, c in zip(points, colors, strict=True)]
    return warp_planar(clouds, w2c, K, height, width, mode, fill_value, depth=depth)


def _check_warp_inputs(points: Tensor, colors: Tensor, w2c: Tensor, K: Tensor, height: int, width: int, mode: str) -> None:
    """:func:`forward_warp`'s arguments checked up front, each mistake in one line."""
    for name, value in (("points", points), ("colors", colors), ("w2c", w2c), ("K", K)):
        if not isinstance(value, Tensor):
            raise Gen3cInputError(f"forward_warp {name} is {describe_value(value)}: pass a tensor")
    if points.ndim not in (2, 3) or points.shape[-1] != 3:
        raise Gen3cInputError(f"forward_warp points have shape {tuple(points.shape)}: pass (N, 3) or (B, N, 3) world points")
    if colors.shape[:-1] != points.shape[:-1] or colors.ndim != points.ndim:
        raise Gen3cInputError(f"forward_warp colors have shape {tuple(colors.shape)} for points {tuple(points.shape)}: pass (N, C) or (B, N, C) to match")
    if w2c.ndim != 3 or w2c.shape[-2:] != (4, 4) or tuple(K.shape) != (len(w2c), 3, 3):
        raise Gen3cInputError(
            f"forward_warp w2c {tuple(w2c.shape)} and K {tuple(K.shape)}: pass (B, 4, 4) poses and (B, 3, 3) intrinsics (one camera: w2c[None], K[None])"
        )
    if points.ndim == 3 and len(points) != len(w2c):
        raise Gen3cInputError(f"forward_warp has {len(points)} point clouds for {len(w2c)} cameras: pass one cloud (N, 3) or one per camera")
    # Mixed devices were torch's "Tensor on device meta is not on the expected device" or
    # ".item() cannot be called on meta tensors" from inside the splat.
    for name, value in (("points", points), ("colors", colors), ("K", K)):
        if value.device != w2c.device:
            raise Gen3cInputError(
                f"forward_warp {name} are on {value.device} and w2c on {w2c.device}: pass all four on the device to render on ({name}.to(w2c.device))"
            )
    # NaN in a camera dropped every point and returned an empty render without a word; a zero
    # image size divided by zero in the splat's slot arithmetic; a scaled or sheared pose (or a
    # camera-to-world one with a bad last row) rendered points in no camera's frame, silently.
    for name, size in (("height", height), ("width", width)):
        if not is_whole_number(size) or size < 1:
            raise Gen3cInputError(f"forward_warp {name} {shown_value(size)} must be the image size in pixels, a whole number ≥ 1")
    # Held to the image's size, as add_view's and Cameras' K are: normalised intrinsics (MoGe's
    # fractions) or a K of an image twice the size rendered the cloud into a speck or a quarter.
    check_intrinsics_fit(K, height, width, "forward_warp K")
    validate_poses(w2c, "forward_warp w2c")
    # A point at infinite depth on a camera's axis landed in the image and made its 4 pixels NaN
    # (or their depth infinite); a NaN colour spread the same way.
    for name, value in (("points", points), ("colors", colors)):
        if value.dtype.is_floating_point and not bool(torch.isfinite(value).all()):
            raise Gen3cInputError(
                f"forward_warp {name} contain NaN or infinite values: pass finite ones (keep = torch.isfinite(points).all(-1) "
                "selects the finite points)"
            )
    # An image too large for the machine was torch's allocator error ("you tried to allocate
    # 800016000080 bytes") and a traceback, or the process killed by the system as it filled.
    if w2c.device.type == "cpu":
        B, C, border = len(w2c), colors.shape[-1], 1 if mode == "bilinear" else 0
        # The result (colour, mask, depth) and the splat's accumulator (with its border), float32.
        need = B * (C + 2) * 4 * (height * width + (height + 2 * border) * (width + 2 * border))
        what = f"forward_warp into {counted(B, 'camera')} of {height}×{width} needs {need / 2**30:.1f} GB of CPU memory for the render and its splat"
        check_cpu_memory(need, what, "render fewer cameras at once or a smaller image", stacklevel=4)


@torch.no_grad()  # the splat writes into buffers (out=): inputs that require grad were torch's autograd error
def warp_planar(
    clouds: list[tuple[Tensor, Tensor]],
    w2c: Tensor,
    K: Tensor,
    height: int,
    width: int,
    mode: str = "bilinear",
    fill_value: float = -1.0,
    out: WarpResult | None = None,
    workspace: SplatWorkspace | None = None,
    depth: bool = True,
) -> WarpResult:
    """:func:`forward_warp` on clouds already in planar layout: ``[(points (3, N), colors (C, N))]``,
    one shared by all B views or one per view.

    ``out`` (tensors of the result's shapes, possibly strided views) receives the result in
    place; ``workspace`` keeps the per-point scratch buffers between calls. Both only save
    allocations: on a CPU every fresh 3.6 MB temporary costs page faults, and they were about
    half of the render time.
    """
    B = w2c.shape[0]
    C = clouds[0][1].shape[0]
    D = int(depth)
    border = 1 if mode == "bilinear" else 0
    ph, pw = height + 2 * border, width + 2 * border
    if workspace is None:
        workspace = SplatWorkspace()
    # Accumulated rows: C weighted colours, the weighted depth (when asked), the weight.
    acc = workspace.accumulator(B, C + D + 1, ph * pw, w2c.device)
    for b in range(B):
        planar_pts, planar_cols = clouds[b if len(clouds) > 1 else 0]
        if mode == "bilinear":
            workspace.splat_bilinear(planar_pts, planar_cols, w2c[b].float(), K[b].float(), height, width, acc[b], depth)
        else:
            cam = torch.addmm(w2c[b, :3, 3:].float(), w2c[b, :3, :3].float(), planar_pts)
            _splat_nearest(cam, planar_cols, K[b].float(), height, width, acc[b])
    acc = acc.view(B, C + D + 1, ph, pw)[:, :, border : border + height, border : border + width]
    weight = acc[:, C + D : C + D + 1]
    if out is None:
        out = WarpResult(
            color=torch.empty(B, C, height, width, device=w2c.device),
            mask=torch.empty(B, 1, height, width, device=w2c.device),
            depth=torch.empty(B, 1, height, width, device=w2c.device) if depth else None,
        )
    torch.gt(weight, 0, out=out.mask)
    # Weights are ≥ e^-50 × bilinear, far above float32's smallest normal: clamping is exact,
    # and empty pixels (all sums 0) come out as 0 · 1/tiny = 0.
    inv_weight = weight.clamp_(min=torch.finfo(torch.float32).tiny).reciprocal_()
    # colour = (1 − mask) · fill + Σ w·c / Σ w in one pass (out.depth, when there is one, lends
    # its memory to the fill plane first); a separate masked fill cost twice as much.
    fill = torch.mul(out.mask, -fill_value, out=out.depth if depth else workspace.plane(out.mask))
    torch.addcmul(fill.add_(fill_value), acc[:, :C], inv_weight, out=out.color)
    if depth:
        torch.mul(acc[:, C : C + 1], inv_weight, out=out.depth)
    return out


def _project_planar(cam: Tensor, K: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pixel coordinates of camera-space points (3, N); returns u, v, z and the z > 0 mask."""
    x, y, z = cam[0], cam[1], cam[2]
    front = z > 1e-6
    inv_z = torch.where(front, z, torch.ones_like(z)).reciprocal_()
    u = (K[0, 0] * x + K[0, 1] * y).mul_(inv_z).add_(K[0, 2])
    v = (K[1, 1] * y).mul_(inv_z).add_(K[1, 2])
    return u, v, z, front


#: The splats compute a pixel's flat index in float32 up to this many pixels (with the bilinear
#: splat's border), where float32 holds every index exactly, and in float64 (exact to 2^53) past
#: it: float32 rounded odd indices there, a point a pixel off. Int64 throughout cost a 704 × 1280
#: frame of 0.9 M points 3–5 % on a CPU (6 ms bilinear, 10 ms z-buffer, one thread).
_FLOAT32_INDEX_PIXELS = 2**24

# Points closer than this (pixels) to a pixel centre land on that pixel alone, so rendering
# from the source camera reproduces the source exactly despite float error in K⁻¹.
_SNAP = 1e-3

#: How the bilinear splat sums each pixel's contributions, by device type (others: "scatter").
#: "scatter": float ``scatter_add_``, one corner at a time; a CPU adds in point order, but CUDA's
#: atomics add in whatever order they land, so the same cache rendered twice differed in the last
#: bits and 35 sampling steps grew that into two videos from one seed (max |Δ| 7e-4 on an H100).
#: "fixed": each weight relative to its pixel's largest, summed as int64 fixed point by atomic
#: ``scatter_add_``, one corner at a time (a point's scratch is one corner's terms): integer
#: addition gives the same bits in any order, without PyTorch's deterministic mode (whose
#: ``scatter_add_`` sorts at every scatter: 6× the atomic render).
#: The tests and benchmarks/bench_cache_render.py set it to run either on any device.
_SPLAT_SUM = {"cuda": "fixed"}


class SplatWorkspace:
    """Scratch buffers of the bilinear splat, reused across frames and chunks of one render.

    Every per-point quantity is written into a buffer kept here (``out=`` and in-place ops), so
    splatting a frame allocates nothing per point (only a few scalars: the max log-depth, and the
    fixed-point sum's scales); the buffers follow the size of the latest cloud.
    """

    def __init__(self) -> None:
        self._spread: tuple[int, Tensor] | None = None
        self._flat: dict[str, Tensor] = {}  # by name: the accumulator, the fill plane, per-point rows

    def _reused(self, name: str, shape: tuple[int, ...], device, dtype: torch.dtype = torch.float32) -> Tensor:
        """A contiguous tensor of ``shape`` in the memory kept under ``name``, grown when short by
        at least a half, so a cloud that grows a little every frame (the preview's fill cloud)
        does not allocate every frame."""
        size = math.prod(shape)
        flat = self._flat.get(name)
        if flat is None or flat.numel() < size or flat.device != torch.device(device) or flat.dtype != dtype:
            grown = size if flat is None or flat.dtype != dtype else max(size, flat.numel() * 3 // 2)
            flat = self._flat[name] = torch.empty(grown, device=device, dtype=dtype)
        return flat[:size].view(shape)

    @property
    def nbytes(self) -> int:
        """Bytes of scratch held now (per-point and per-pixel buffers together)."""
        spread = 0 if self._spread is None else self._spread[1].nbytes
        return spread + sum(flat.nbytes for flat in self._flat.values())

    def accumulator(self, batch: int, channels: int, pixels: int, device) -> Tensor:
        """(batch, channels, pixels) zeros, reusing the previous accumulator's memory."""
        return self._reused("acc", (batch, channels, pixels), device).zero_()

    def plane(self, like: Tensor) -> Tensor:
        """Scratch of ``like``'s shape (contiguous), reused between calls."""
        return self._reused("plane", tuple(like.shape), like.device)

    def _spread_slots(self, n: int, pixels: int, pw: int, device, dtype: torch.dtype) -> Tensor:
        """(n,) slots ``i mod (pixels − pw − 2)`` as ``dtype`` (the flat index's) for out-of-view
        points (see below); the slots of a longer cloud start with those of a shorter one, so they
        are kept for the longest and sliced."""
        spread = self._spread
        if (
            spread is None or spread[0] != pixels or spread[1].shape[0] < n
            or spread[1].device != torch.device(device) or spread[1].dtype != dtype
        ):
            grown = n if spread is None or spread[0] != pixels else max(n, spread[1].shape[0] * 3 // 2)
            self._spread = spread = (pixels, (torch.arange(grown, device=device) % (pixels - pw - 2)).to(dtype))
        return spread[1][:n]

    def splat_bilinear(
        self, points: Tensor, cols: Tensor, w2c: Tensor, K: Tensor, height: int, width: int, acc: Tensor, depth: bool = True
    ) -> None:
        """Accumulate points (3, N) with colours (C, N), seen by w2c (4, 4) and K (3, 3), into
        ``acc`` (C + D + 1, (H+2)·(W+2)), an image with a one-pixel border so every neighbour of
        an in-view point has a slot: C weighted colour channels, the weighted depth if ``depth``
        (D = 1), the weight. Summed as ``_SPLAT_SUM`` says for the device."""
        C, N = cols.shape
        rows = self._reused("rows", (C + 12, N), cols.device)
        cam, u, base_w, bottom, v, x0, y0, tmp = rows[C + 2 :].split((3, 1, 1, 1, 1, 1, 1, 1))
        cam_x, cam_y, z = cam
        u, v, x0, y0, base_w, tmp, bottom = u[0], v[0], x0[0], y0[0], base_w[0], tmp[0], bottom[0]
        in_view, scratch = self._reused("flags", (2, N), cols.device, torch.bool)
        torch.addmm(w2c[:3, 3:], w2c[:3, :3], points, out=cam)
        # Projection (z ≤ 1e-6 is behind the camera; its 1/z is replaced by 1 and it is dropped).
        torch.gt(z, 1e-6, out=in_view)
        torch.where(in_view, z, z.new_ones(()), out=tmp).reciprocal_()
        torch.mul(cam_x, K[0, 0], out=u).addcmul_(cam_y, K[0, 1]).mul_(tmp).add_(K[0, 2])
        torch.mul(cam_y, K[1, 1], out=v).mul_(tmp).add_(K[1, 2])
        torch.add(u, _SNAP, out=x0).floor_()
        torch.add(v, _SNAP, out=y0).floor_()
        for coord, size in ((x0, width), (y0, height)):
            in_view.logical_and_(torch.ge(coord, -1, out=scratch))
            in_view.logical_and_(torch.lt(coord, size, out=scratch))
        torch.logical_not(in_view, out=scratch)  # scratch = out of view from here on
        # Soft z-buffer weight (GEN3C clamps depth at 1000 first); the max is over visible points
        # (log(1 + z) ≥ 0, so zeroing the others leaves the max alone).
        torch.clamp(z, 0.0, 1000.0, out=base_w).log1p_()
        if not in_view.any():
            return
        max_log = tmp.copy_(base_w).masked_fill_(scratch, 0.0).max().clamp_(min=1e-8)
        base_w.mul_(-DEPTH_WEIGHT_SHARPNESS / max_log).exp_().masked_fill_(scratch, 0.0)
        fx = u.sub_(x0)
        fy = v.sub_(y0)
        fx.masked_fill_(torch.lt(fx, _SNAP, out=scratch), 0.0)
        fy.masked_fill_(torch.lt(fy, _SNAP, out=scratch), 0.0)
        # Flat index of the top-left neighbour in the bordered image, computed in float and
        # converted once: in y0's own row while float32 is exact (_FLOAT32_INDEX_PIXELS), in a
        # float64 copy past it. Out-of-view points add zeros, each into a slot of its own (i mod
        # pixels) rather than into one clamped border pixel: a long run of adds to one address is
        # a serial dependency chain that took half the scatter time.
        pw, pixels = width + 2, acc.shape[1]
        corner = y0 if pixels <= _FLOAT32_INDEX_PIXELS else self._reused("wide index", (N,), y0.device, torch.float64).copy_(y0)
        corner.add_(1).mul_(pw).add_(x0).add_(1)
        torch.where(in_view, corner, self._spread_slots(N, pixels, pw, y0.device, corner.dtype), out=corner)
        torch.mul(base_w, fy, out=bottom)
        base_w.sub_(bottom)  # the top row's weight: base · (1 − fy)
        if _SPLAT_SUM.get(cols.device.type, "scatter") == "fixed":
            self._sum_fixed(cols, z, fx, base_w, bottom, corner, in_view, tmp, rows[: C + 2], acc, depth, pw)
        else:
            self._sum_scatter(cols, z, fx, base_w, bottom, corner, tmp, rows[: C + int(depth) + 1], acc, pw)

    def _sum_scatter(
        self, cols: Tensor, z: Tensor, fx: Tensor, top: Tensor, bottom: Tensor, corner: Tensor, tmp: Tensor,
        contrib: Tensor, acc: Tensor, pw: int
    ) -> None:
        """:meth:`splat_bilinear`'s sum by ``scatter_add_``: ``corner`` (N,) holds the float flat
        index of each point's top-left neighbour, ``contrib`` (C + D + 1, N) is scratch for what
        one corner adds: weighted colours, [weighted depth,] weight."""
        C, D = cols.shape[0], contrib.shape[0] - cols.shape[0] - 1
        idx = self._reused("index", corner.shape, corner.device, torch.long).copy_(corner)
        weight = contrib[C + D]
        # Corners in the order top-left, top-right, bottom-left, bottom-right; the index steps
        # in place between them. One 2-D scatter per corner adds all C + D + 1 rows (on a
        # 2-core CPU, 4 rows split evenly over the threads where 5 split 3 : 2).
        for step, row, right in ((0, top, False), (1, top, True), (pw - 1, bottom, False), (1, bottom, True)):
            _corner_weight(row, fx, right, tmp, weight)
            if step:
                idx.add_(step)
            torch.mul(cols, weight, out=contrib[:C])
            if D:
                torch.mul(z, weight, out=contrib[C])
            acc.scatter_add_(1, idx.expand(C + D + 1, -1), contrib)

    def _sum_fixed(
        self, cols: Tensor, z: Tensor, fx: Tensor, top: Tensor, bottom: Tensor, corner: Tensor, in_view: Tensor, tmp: Tensor,
        scratch: Tensor, acc: Tensor, depth: bool, pw: int
    ) -> None:
        """:meth:`splat_bilinear`'s sum in fixed-point integers, the same bits in any order of
        addition (integer addition is associative), so CUDA's atomic adds stay deterministic.

        A global fixed-point scale would round the far points' weights (down to e^-50 · 10^-6)
        to zero, so each weight is taken relative to the largest one reaching its pixel:
        r = w / max w ∈ [0, 1] (a max is exact in any order; 1 for that largest one, so Σ r ≥ 1
        wherever Σ w > 0). The per-pixel factor cancels in what :func:`warp_planar` reads: Σ w·c /
        Σ w, Σ w·z / Σ w and Σ w > 0. Colours are scaled by the frame's max |c|, depths by its max
        visible z, so every term is in [−1, 1] (each factor is, and float products of such stay
        so): with S = 63 − bit_length(N), a pixel's at most N terms (a point adds at most one to a
        pixel) sum to at most N · 2^S ≤ 2^63 − 2^S, within int64. Each is rounded by at most
        2^-(S+1), far below float32's rounding of Σ r ≥ 1 (S ≥ 42 below 2^21 points, 32 below 2^31).
        ``acc`` (C + D + 1, P) receives the per-pixel sums of r·c, [r·z,] r, overwritten: one call
        per accumulator row, as in :func:`warp_planar`.

        The four corners are summed one after the other, so the scratch of a point is one
        corner's: its index (int64) and its R = C + D + 1 terms in float32 and int64, 68 bytes for
        C = 3 with depth (all four at once took 320; a multi-view cache has millions of points).
        ``scratch`` (C + 2, N) holds the unit colours [and depth] and one corner's weights, ``tmp``
        (N,) is overwritten."""
        C, N = cols.shape
        D, P, device = int(depth), acc.shape[1], cols.device
        R = C + D + 1
        scale = 63 - N.bit_length()
        # Per point: colours / max |c| and z / max visible z, each in [−1, 1] (z's scale before
        # ``tmp`` becomes the corner weights' scratch).
        lo, hi = torch.aminmax(cols)
        col_scale = torch.maximum(hi, lo.neg()).clamp_(min=torch.finfo(torch.float32).tiny)
        z_scale = torch.where(in_view, z, z.new_zeros(()), out=tmp).max()
        unit, w = scratch[: C + D], scratch[C + 1]
        torch.div(cols, col_scale, out=unit[:C])
        if depth:
            torch.div(z, z_scale, out=unit[C])
        # One corner at a time (top-left, top-right, bottom-left, bottom-right; the index steps in
        # place), so no scratch holds all four corners' terms: first each pixel's largest weight
        # (a max is exact in any order), then each corner's fixed-point terms added to the sums.
        corners = ((0, top, False), (1, top, True), (pw - 1, bottom, False), (1, bottom, True))
        idx = self._reused("corner index", (N,), device, torch.long).copy_(corner)
        w_max = self._reused("max weight", (P,), device).zero_()
        for step, row, right in corners:
            if step:
                idx.add_(step)
            w_max.scatter_reduce_(0, idx, _corner_weight(row, fx, right, tmp, w), "amax")
        # Pixels nothing reaches keep 0, raised to tiny so that their (zero) weights give r = 0.
        w_max.clamp_(min=torch.finfo(torch.float32).tiny)
        terms = self._reused("terms", (R, N), device)
        fixed = self._reused("fixed terms", (R, N), device, torch.long)
        sums = self._reused("fixed sums", (R, P), device, torch.long).zero_()
        r = terms[R - 1]
        idx.copy_(corner)
        for step, row, right in corners:
            if step:
                idx.add_(step)
            _corner_weight(row, fx, right, tmp, r).div_(torch.index_select(w_max, 0, idx, out=w))
            r.mul_(2.0**scale)  # exact: a power of two
            torch.mul(unit, r, out=terms[: R - 1])
            sums.scatter_add_(1, idx.expand(R, -1), fixed.copy_(terms.round_()))
        acc.copy_(sums)
        acc[:C].mul_(col_scale * 2.0**-scale)
        if depth:
            acc[C].mul_(z_scale * 2.0**-scale)
        acc[R - 1].mul_(2.0**-scale)


def _corner_weight(row: Tensor, fx: Tensor, right: bool, tmp: Tensor, out: Tensor) -> Tensor:
    """A corner's bilinear weight into ``out``: ``row · fx`` on the right, ``row − row · fx`` on
    the left (the same expression in both sums, so both splat the same values)."""
    if right:
        return torch.mul(row, fx, out=out)
    return torch.sub(row, torch.mul(row, fx, out=tmp), out=out)


def _splat_nearest(cam: Tensor, cols: Tensor, K: Tensor, height: int, width: int, acc: Tensor) -> None:
    """Hard z-buffer into ``acc`` (C + D + 1, H·W): colours, depth (when D = 1), weight 1."""
    u, v, z, front = _project_planar(cam, K)
    x, y = torch.floor(u + 0.5), torch.floor(v + 0.5)
    keep = front & (x >= 0) & (x < width) & (y >= 0) & (y < height)
    if not keep.any():
        return
    # The flat index in float32 while that is exact, float64 past it (as the bilinear splat).
    index_dtype = torch.float32 if height * width <= _FLOAT32_INDEX_PIXELS else torch.float64
    idx = (y[keep].to(index_dtype) * width + x[keep]).long()
    zz = z[keep]
    zbuf = torch.full((height * width,), math.inf, device=cam.device).scatter_reduce_(0, idx, zz, reduce="amin")
    win = (zz == zbuf[idx]).nonzero()[:, 0]
    # Ties at exactly equal depth: the last point wins, chosen here (max is exact in any order)
    # so that every pixel is written once: with several writes to one pixel, CUDA keeps any one.
    last = torch.full_like(zbuf, -1, dtype=torch.long).scatter_reduce_(0, idx[win], win, reduce="amax")
    win = last[last >= 0]
    widx = idx[win]
    C = cols.shape[0]
    for c in range(C):
        acc[c, widx] = cols[c][keep][win]
    if acc.shape[0] > C + 1:
        acc[C, widx] = zz[win]
    acc[-1, widx] = 1.0


# --------------------------------------------------------------------------------------------
# Foreground masking (GEN3C's "curtain" at depth edges)
# --------------------------------------------------------------------------------------------


def foreground_curtain_depth(
    points_world: Tensor,
    edge: Tensor,
    w2c: Tensor,
    K: Tensor,
    height: int,
    width: int,
    downsample: int = 4,
    max_samples: int = 8_000_000,
) -> Tensor:
    """Depth of the nearest hit of each target pixel's ray with the depth-edge curtain mesh.

    The source points on a grid ``downsample``× coarser than the image are meshed: every 2×2
    patch of grid points touching a depth-edge pixel becomes two triangles, so the mesh spans the
    gap between foreground and background. The mesh is ray-cast from the target camera by
    rasterising it densely (a lattice of ≤ 1 pixel spacing per triangle, nearest depth wins).

    Args:
        points_world: (H, W, 3) source points.
        edge: (H, W) bool, the depth-edge (unreliable) pixels.
        w2c: (4, 4), K: (3, 3) target camera.
    Returns:
        (height, width) hit depth, +inf where the ray misses the curtain.
    """
    _check_curtain_inputs("foreground_curtain_depth", points_world, edge, w2c, K)
    device = points_world.device
    hit = torch.full((height * width,), math.inf, device=device)
    s = downsample
    grid = points_world[::s, ::s]  # (h, w, 3)
    h, w = grid.shape[:2]
    if h < 2 or w < 2:
        return hit.view(height, width)
    # A coarse cell is on an edge when any full-resolution pixel it covers is.
    edge_c = F.max_pool2d(edge[None, None].float(), s, stride=s, ceil_mode=True)[0, 0, :h, :w] > 0
    patch = edge_c[:-1, :-1] | edge_c[1:, :-1] | edge_c[:-1, 1:] | edge_c[1:, 1:]
    r, c = patch.nonzero(as_tuple=True)
    if r.numel() == 0:
        return hit.view(height, width)
    cam = grid @ w2c[:3, :3].T + w2c[:3, 3]  # (h, w, 3) in the target camera
    p00, p01, p10, p11 = cam[r, c], cam[r, c + 1], cam[r + 1, c], cam[r + 1, c + 1]
    tris = torch.cat([torch.stack([p00, p01, p10], 1), torch.stack([p11, p10, p01], 1)])  # (T, 3, 3)
    tris = tris[(tris[..., 2] > 1e-6).all(dim=1) & torch.isfinite(tris).all(dim=(1, 2))]
    if tris.shape[0] == 0:
        return hit.view(height, width)
    proj = tris @ K.T
    pix = proj[..., :2] / proj[..., 2:3]
    in_view = (pix[..., 0].max(1).values > -1) & (pix[..., 0].min(1).values < width) & (
        pix[..., 1].max(1).values > -1
    ) & (pix[..., 1].min(1).values < height)
    tris, pix = tris[in_view], pix[in_view]
    if tris.shape[0] == 0:
        return hit.view(height, width)
    # A lattice along the triangle's two edges from vertex 0, with ≤ 1 pixel spacing on each;
    # curtain triangles are long and thin, so two step counts cost far less than one square one.
    # The lattice lives in the image (uniform steps in pixels) and depth is interpolated
    # perspective-correctly (1/z is linear in screen space): a lattice uniform in camera space
    # would stretch to steps of many pixels at a curtain's near end, leaving holes in it.
    limit = max(height, width)
    k1 = torch.ceil((pix[:, 1] - pix[:, 0]).norm(dim=-1).clamp(max=limit)).long().clamp(min=1)
    k2 = torch.ceil((pix[:, 2] - pix[:, 0]).norm(dim=-1).clamp(max=limit)).long().clamp(min=1)
    # Keep the lattice inside the sample budget by coarsening every triangle alike.
    while ((k1 + 1) * (k2 + 1)).sum() > max_samples and max(k1.max(), k2.max()) > 1:
        k1, k2 = torch.ceil(k1 / 2).long(), torch.ceil(k2 / 2).long()
    counts = (k1 + 1) * (k2 + 1)
    tri = torch.repeat_interleave(torch.arange(tris.shape[0], device=device), counts)
    start = torch.cumsum(counts, 0) - counts
    local = torch.arange(tri.numel(), device=device) - start[tri]
    row = k2[tri] + 1
    a = (local // row).float() / k1[tri].float()
    bb = (local % row).float() / k2[tri].float()
    # Lattice points past the diagonal mirror ones before it: keep the triangle's half only.
    inner = a + bb <= 1.0 + 1e-6
    tri, a, bb = tri[inner], a[inner, None], bb[inner, None]
    P = pix[tri]
    uv = P[:, 0] + a * (P[:, 1] - P[:, 0]) + bb * (P[:, 2] - P[:, 0])
    inv_z = tris[..., 2].reciprocal()[tri]
    z = (inv_z[:, :1] + a * (inv_z[:, 1:2] - inv_z[:, :1]) + bb * (inv_z[:, 2:] - inv_z[:, :1]))[:, 0].reciprocal()
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        x = torch.floor(uv[:, 0]).long() + dx
        y = torch.floor(uv[:, 1]).long() + dy
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        hit.scatter_reduce_(0, (y * width + x)[inside], z[inside], reduce="amin")
    return hit.view(height, width)


def _check_curtain_inputs(function: str, points_world: Tensor, edge: Tensor, w2c: Tensor, K: Tensor) -> None:
    """One source view and one target camera, unbatched: a (1, 4, 4) pose or (1, H, W, 3) points
    were sliced as if unbatched and gave a wrong curtain without a word."""
    for name, value, shape in (("points_world", points_world, "(H, W, 3)"), ("edge", edge, "(H, W)"), ("w2c", w2c, "(4, 4)"), ("K", K, "(3, 3)")):
        if not isinstance(value, Tensor):
            raise Gen3cInputError(f"{function} {name} is {describe_value(value)}: pass a {shape} tensor")
    H, W = points_world.shape[:2] if points_world.ndim == 3 else (-1, -1)
    expected = {"points_world": (H, W, 3), "edge": (H, W), "w2c": (4, 4), "K": (3, 3)}
    for name, value in (("points_world", points_world), ("edge", edge), ("w2c", w2c), ("K", K)):
        if tuple(value.shape) != expected[name]:
            raise Gen3cInputError(
                f"{function} {name} has shape {tuple(value.shape)}: pass one view's points (H, W, 3), its edge (H, W) and one camera's "
                "w2c (4, 4) and K (3, 3) (a batch: one call per view)"
            )


def foreground_curtain_mask(
    warped_depth: Tensor,
    points_world: Tensor,
    edge: Tensor,
    w2c: Tensor,
    K: Tensor,
    tolerance: float = 0.02,
) -> Tensor:
    """Pixels to keep after GEN3C's foreground masking: False where the warped point lies more
    than ``tolerance`` (depth units) behind the curtain mesh (see :func:`foreground_curtain_depth`).

    Args:
        warped_depth: (H, W) depth of the warped render in the target camera.
        points_world: (Hs, Ws, 3), edge: (Hs, Ws) source points and depth-edge pixels.
    Returns:
        (H, W) bool keep-mask.
    """
    if not isinstance(warped_depth, Tensor) or warped_depth.ndim != 2:
        got = f"shape {tuple(warped_depth.shape)}" if isinstance(warped_depth, Tensor) else describe_value(warped_depth)
        raise Gen3cInputError(f"foreground_curtain_mask warped_depth must be one (H, W) depth map, got {got}: pass one target view at a time")
    _check_curtain_inputs("foreground_curtain_mask", points_world, edge, w2c, K)
    H, W = warped_depth.shape
    hit = foreground_curtain_depth(points_world, edge, w2c, K, H, W)
    return ~(warped_depth > hit + tolerance)


# --------------------------------------------------------------------------------------------
# The cache
# --------------------------------------------------------------------------------------------


def _concrete(device: torch.device | str, name: str = "device") -> torch.device:
    """``device`` with its index ("cuda" → "cuda:0" on the current GPU), so one device has one name;
    one that is no device name, or a GPU or backend this machine lacks, is refused naming ``name``."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):  # ("gpu" was torch's "Expected one of cpu, cuda, …" from inside render)
        raise Gen3cInputError(
            f"{name} {str(device)[:40]!r} is not a device name: pass 'cuda', 'cuda:1' or 'cpu' (or None: where the cache is)"
        ) from None
    if device.type == "meta":  # (was torch's "Tensor.item() cannot be called on meta tensors" from the splat)
        raise Gen3cInputError(f"{name} 'meta' holds no values to render into: pass 'cuda', 'cpu' or None (where the cache is)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise Gen3cInputError(f"{name} {str(device)!r}: no CUDA GPU is visible here: pass {name}='cpu' (or None: where the cache is)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()  # ('cuda:1' on one GPU was torch's "CUDA error: invalid device ordinal" inside the render)
        visible = "cuda:0" if count == 1 else f"cuda:0 … cuda:{count - 1}"
        raise Gen3cInputError(f"{name} {str(device)!r}: this machine shows {counted(count, 'CUDA GPU')} ({visible}): pass one of those or {name}='cpu'")
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    if not backend_available(device):  # ('mps' off a Mac was torch's "PyTorch is not linked with support for mps devices" inside the render)
        raise Gen3cInputError(f"{name} {str(device)!r}: this machine's torch cannot use {device.type} devices: pass {name}='cpu' (or None: where the cache is)")
    return device


def backend_available(device: torch.device) -> bool:
    """Whether this machine's torch can make tensors on ``device``; for a backend other than the
    CPU's, CUDA's and meta ("mps" off a Mac, "xpu" without Intel's GPU: False), by making one."""
    if device.type in ("cpu", "cuda", "meta"):
        return True
    try:
        torch.empty(0, device=device)
    except Exception:  # each backend fails its own way: RuntimeError, AssertionError, ModuleNotFoundError, NotImplementedError
        return False
    return True


def _check_render_memory(frames: int, buffers: int, height: int, width: int, depth: bool, device: torch.device) -> None:
    """Refuse renders returned to the CPU that cannot fit in its memory, before allocating them:
    past RAM and swap that was torch's allocator error and a traceback, and renders that fit only
    on paper got the process killed by the system as they filled; note renders past the memory free now."""
    if device.type != "cpu":
        return
    need = frames * buffers * (5 if depth else 4) * height * width * 4  # float32 colour (3), mask, depth
    what = (
        f"rendering the 3D cache into {frames} frames of {height}×{width} ({counted(buffers, 'buffer')}) needs "
        f"{need / 2**30:.1f} GB of CPU memory for the renders"
    )
    fix = "render fewer frames at once (gen3c generate --chunk_frames; in Python Cache3D.render(cameras[a:b])) or at a lower --resolution"
    check_cpu_memory(need, what, fix, stacklevel=5)


def check_cpu_memory(need: int, what: str, fix: str, stacklevel: int, *, say_note: bool = True) -> bool:
    """Raise :class:`Gen3cMemoryError` ("``what``; with the … GB this process holds …: ``fix``")
    when ``need`` bytes, about to be allocated, and what this process holds already exceed the
    CPU's memory with swap; note it when ``need`` exceeds the memory free now (unless
    ``say_note`` is False: a check that repeats as its need grows says it once). Returns whether
    it exceeds the memory free now."""
    from gen3c.models.memory import HostMemory

    memory = HostMemory.now()
    # What the process holds (the interpreter and libraries, the input, the cache, the frames
    # made so far) stays while ``need`` is added: a run that fits only without it is killed.
    if need + memory.held > memory.total:
        raise Gen3cMemoryError(
            f"{what}; with the {memory.held / 2**30:.1f} GB this process holds already, {(need + memory.held) / 2**30:.1f} GB, and "
            f"{memory.capacity()}: {fix}"
        )
    if need <= memory.available:
        return False
    if say_note:
        note(f"{what} and {memory.available / 2**30:.1f} GB are free now: the system may stop the run unless other programs give memory back; else {fix}", stacklevel=stacklevel)
    return True


@dataclass
class CacheView:
    """One source view of the cache (one buffer).

    Attributes:
        points: (F, H, W, 3) world points; F = 1 for a static view, F = T for a 4D (video) view.
        colors: (F, H, W, 3) in [−1, 1].
        valid: (F, H, W) bool — reliable pixels with depth > 0 that take part in rendering.
        edge: (F, H, W) bool — depth-edge pixels at the default threshold (foreground masking).
        w2c: (F, 4, 4), K: (F, 3, 3) source cameras.
        filtered: (F, H, W) bool — pixels with depth > 0, allowed by the mask, that the depth-edge
            filter left out (the preview generator recovers those on smooth surfaces).
    """

    points: Tensor
    colors: Tensor
    valid: Tensor
    edge: Tensor
    w2c: Tensor
    K: Tensor
    filtered: Tensor

    __repr__ = dataclass_repr

    @property
    def num_frames(self) -> int:
        return self.points.shape[0]

    def planar(self, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """Valid points (3, N) and colours (3, N) of a static view, in the layout the splatting
        uses, on ``device`` (default: the view's own); computed once per device and kept, since
        every render of the view needs them."""
        device = _concrete(self.points.device if device is None else device)
        kept = self.__dict__.setdefault("_planar", {})
        if device not in kept:
            valid = self.valid[0]
            kept[device] = (self.points[0][valid].T.to(device).contiguous(), self.colors[0][valid].T.to(device).contiguous())
        return kept[device]

    def frame(self, t: int) -> tuple[Tensor, Tensor, Tensor]:
        """Points (H, W, 3), colours (H, W, 3) and validity (H, W) of the frame a target frame t
        renders (a static view's one frame for every t)."""
        f = t if self.num_frames > 1 else 0
        return self.points[f], self.colors[f], self.valid[f]


#: The words of the note on a run's frames that see none of the cache
#: (:func:`gen3c.pipelines.camera_video.note_unseen_frames`): once said in a run, a later render
#: that sees nothing at all (:meth:`Cache3D.render_views`) does not add its own note on the cameras.
UNSEEN_FRAMES = "none of the 3D cache"
#: The words of the note on a camera file whose poses are in the other axes (OpenCV for OpenGL:
#: :func:`gen3c.pipelines.request.scene_cameras`): once said, the renders that see nothing say no more.
OTHER_AXES = "a pose written in the other axes"


@dataclass
class BufferRenders:
    """The cache rendered into T target cameras, one buffer per source view.

    Attributes:
        colors: (T, NB, 3, H, W) warped colour in [−1, 1], −1 where invalid.
        masks: (T, NB, 1, H, W) float {0, 1}.
        depths: (T, NB, 1, H, W) z-depth in the target camera, 0 where invalid; None when the
            render skipped it (``depth=False``).
        views: index in ``cache.views`` of the view behind each buffer (all views, in order,
            unless a :class:`SelectingCache3D` chose some).
    """

    colors: Tensor
    masks: Tensor
    depths: Tensor | None
    views: tuple[int, ...] = ()

    __repr__ = dataclass_repr

    @property
    def num_buffers(self) -> int:
        return self.colors.shape[1]


def _check_view(image: Tensor, depth: Tensor, K: Tensor, w2c: Tensor, mask: Tensor | None) -> None:
    """Refuse a view for :meth:`Cache3D.add_view` whose arguments do not fit together, in one line."""
    given = {"image": image, "depth": depth, "K": K, "w2c": w2c, **({} if mask is None else {"mask": mask})}
    for name, value in given.items():
        if not isinstance(value, Tensor):
            raise Gen3cInputError(f"add_view {name} is {describe_value(value)}: pass a tensor (torch.as_tensor(...))")
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise Gen3cInputError(f"add_view image has shape {tuple(image.shape)}: pass (3, H, W) or (F, 3, H, W) colours in [-1, 1]")
    # No frame or no pixel: torch's reshape error at once (an empty image), or a view that every
    # later render failed on with an IndexError (no frame).
    if 0 in image.shape:
        raise Gen3cInputError(f"add_view image has shape {tuple(image.shape)}: pass at least one frame of at least 1×1 pixels")
    if not image.dtype.is_floating_point:
        raise Gen3cInputError(f"add_view image is {image.dtype}: pass float colours in [-1, 1] (uint8: image / 127.5 - 1)")
    # Mixed devices were torch's "Tensor on device meta is not on the expected device cpu!".
    for name, value in given.items():
        if value.device != image.device:
            raise Gen3cInputError(f"add_view {name} is on {value.device} and image on {image.device}: pass all on one device ({name}.to(image.device))")
    outside = outside_unit_range(image, "image")
    if outside is not None:
        span, hint = outside
        raise Gen3cInputError(f"add_view image values span {span}: pass colours in [-1, 1]{hint}")
    lead, (H, W) = tuple(image.shape[:-3]), tuple(image.shape[-2:])
    expected = {"depth": (*lead, H, W), "K": (*lead, 3, 3), "w2c": (*lead, 4, 4), "mask": (*lead, H, W)}
    for name, value in given.items():
        if name != "image" and tuple(value.shape) != expected[name]:
            raise Gen3cInputError(
                f"add_view {name} has shape {tuple(value.shape)} for an image of shape {tuple(image.shape)}: pass {expected[name]}"
            )
    # Fit to the image, as Cameras' and prepare_source's K are: normalised intrinsics (MoGe's) passed
    # validate_intrinsics alone and lifted the view into a speck the renders never showed.
    check_intrinsics_fit(K, H, W, "add_view K")
    validate_poses(w2c, "add_view w2c")


class Cache3D:
    """Up to ``max_buffers`` source views as point clouds, newest first (GEN3C's ``cache_3d.py``).

    Args:
        max_buffers: GEN3C keeps 2. When full, a new view replaces buffer 0.
        filter_points_threshold: edge-filter threshold (GEN3C's ``--filter_points_threshold``); 0, or 1 and above
            (where GEN3C's ``cache_3d.py`` skips the filter), keep every point.
        foreground_masking: hide points seen through depth-edge cracks (GEN3C's ``--foreground_masking``).
        splat: "bilinear" (GEN3C) or "zbuffer".
        foreground_tolerance: how far (depth units) behind the curtain a warped point may lie
            before foreground masking hides it (GEN3C: 0.02).

    Depth enters the cache clamped to [0, :data:`CACHE_MAX_DEPTH`] = [0, 100], NaN at 100, as
    GEN3C's ``cache_3d.py`` does for its source views (a generated frame added between chunks
    to [0, :data:`GENERATED_MAX_DEPTH`]: :meth:`add_view`'s ``max_depth``). In metric depth that is 100 m: an outdoor scene's points
    farther away sit on their rays at 100 m (a backdrop; they keep their colour but lose the
    little parallax they had). Inputs that need more range must be scaled down before
    :meth:`add_view`; the readers note a median depth beyond 100 (millimetres, most likely).
    """

    def __init__(
        self,
        max_buffers: int = 2,
        filter_points_threshold: float = 0.05,
        foreground_masking: bool = False,
        splat: str = "bilinear",
        foreground_tolerance: float = 0.02,
    ) -> None:
        if splat not in SPLAT_MODES:
            raise Gen3cInputError(f"splat must be one of {SPLAT_MODES}, got {shown_value(splat)}")
        if not is_whole_number(max_buffers) or max_buffers < 1:
            raise Gen3cInputError(f"max_buffers {shown_value(max_buffers)} must be a whole number ≥ 1 (GEN3C keeps 2)")
        if isinstance(filter_points_threshold, bool) or not isinstance(filter_points_threshold, numbers.Real) or not 0 <= filter_points_threshold < math.inf:
            raise Gen3cInputError(f"filter_points_threshold {shown_value(filter_points_threshold)} must be ≥ 0 (GEN3C: 0.05; 0, or 1 and above, keeps every point)")
        # NaN turned foreground masking off without a word (no depth is > hit + NaN), a negative
        # value hid points in front of the curtain too.
        if isinstance(foreground_tolerance, bool) or not isinstance(foreground_tolerance, numbers.Real) or not 0 <= foreground_tolerance < math.inf:
            raise Gen3cInputError(f"foreground_tolerance {shown_value(foreground_tolerance)} must be a finite distance ≥ 0 in depth units (GEN3C: 0.02)")
        # Any value was taken for its truth: "no", "false" or "off" turned the masking on.
        if not isinstance(foreground_masking, bool | np.bool_):
            raise Gen3cInputError(f"foreground_masking {shown_value(foreground_masking)} must be True or False")
        self.max_buffers = int(max_buffers)  # (a numpy integer as Python's: the repr, a state's check)
        self.filter_points_threshold = filter_points_threshold
        self.foreground_masking = bool(foreground_masking)
        self.foreground_tolerance = foreground_tolerance
        self.splat = splat
        self.views: list[CacheView] = []

    def __len__(self) -> int:
        return len(self.views)

    def __repr__(self) -> str:
        views = ", ".join(f"{v.num_frames}×{v.points.shape[1]}×{v.points.shape[2]}" for v in self.views)
        points = sum(int(v.valid.sum()) for v in self.views)
        return (
            f"{type(self).__name__}(views=[{views}] (frames×H×W, newest first), points={points}, max_buffers={self.max_buffers}, "
            f"splat={self.splat!r}, filter_points_threshold={self.filter_points_threshold}, foreground_masking={self.foreground_masking})"
        )

    def state_dict(self) -> dict[str, Tensor]:
        """The views' tensors by name (``view0.points``, …, newest first), e.g. for safetensors;
        :meth:`load_state_dict` restores them exactly (a resumed long run needs the very cache)."""
        return {f"view{i}.{f.name}": getattr(v, f.name).detach().cpu().contiguous()
                for i, v in enumerate(self.views) for f in fields(CacheView)}  # fmt: skip

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Replace the views with those of :meth:`state_dict`'s output."""
        if not isinstance(state, Mapping) or not all(isinstance(key, str) for key in state):  # (None was "'NoneType' object is not iterable")
            raise Gen3cInputError(f"load_state_dict state is {describe_value(state)}: pass what Cache3D.state_dict() returned, a dict of tensors by name")
        count = len({key.split(".")[0] for key in state})
        names = [f.name for f in fields(CacheView)]
        # States saved before ``filtered`` existed lack it: they restore with no such pixel.
        missing = [f"view{i}.{n}" for i in range(count) for n in names if f"view{i}.{n}" not in state and n != "filtered"]
        if missing or count > self.max_buffers:
            raise ValueError(f"not a cache state of at most {self.max_buffers} views (missing {missing[:3]})")
        self.views = []
        for i in range(count):
            view = {n: state[f"view{i}.{n}"] for n in names if f"view{i}.{n}" in state}
            view.setdefault("filtered", torch.zeros_like(view["valid"]))
            self.views.append(CacheView(**view))

    def add_view(
        self, image: Tensor, depth: Tensor, K: Tensor, w2c: Tensor, mask: Tensor | None = None, max_depth: float = CACHE_MAX_DEPTH
    ) -> CacheView:
        """Lift a source view (or a video of F frames) into the cache as a new buffer.

        Args:
            image: (F, 3, H, W) or (3, H, W) in [−1, 1].
            depth: (F, H, W) or (H, W) z-depth, clamped to [0, ``max_depth``], NaN at ``max_depth``:
                GEN3C's 100 for a source view (see the class), its :data:`GENERATED_MAX_DEPTH` for a
                frame it generated (``cache_3d.py``'s ``update_cache``).
            K: (F, 3, 3) or (3, 3); w2c: (F, 4, 4) or (4, 4).
            mask: optional (F, H, W) or (H, W) bool, False for pixels to leave out (e.g. sky); of
                another dtype, pixels > 0 are let in (a fraction too, as GEN3C splats them and the
                input readers read masks), ≤ 0 and NaN left out.
        Returns:
            The new :class:`CacheView` (now buffer 0).
        """
        _check_view(image, depth, K, w2c, mask)
        # NaN, 0 or less dropped every point (the render then blamed depth ≤ 0 or the filter); inf
        # put NaN and infinite depth on points that rendered as NaN.
        if isinstance(max_depth, bool) or not isinstance(max_depth, numbers.Real) or not 0 < max_depth < math.inf:
            raise Gen3cInputError(
                f"add_view max_depth {shown_value(max_depth)} must be a finite depth > 0 (GEN3C: {CACHE_MAX_DEPTH:g} for a source view, {GENERATED_MAX_DEPTH:g} for a generated frame)"
            )
        # The cache holds constants: an image or depth that required grad (a network's output
        # outside torch.no_grad()) made every render torch's autograd error.
        image, depth, K, w2c = (value.detach() for value in (image, depth, K, w2c))
        if image.ndim == 3:
            image, depth, K, w2c = image[None], depth[None], K[None], w2c[None]
            mask = None if mask is None else mask[None]
        depth = torch.nan_to_num(depth.float(), nan=max_depth).clamp(0.0, max_depth)
        edge = ~reliable_depth_mask(depth, 0.05)
        kept = depth > 0
        if mask is not None:
            # As gen3c.io.depth.mask_lets_in: ``bool()`` let in −1 and NaN, which GEN3C never draws.
            kept &= mask > 0
        valid = kept
        # GEN3C filters only below 1 (a GEN3C user turns it off with 1); 0, which in GEN3C drops
        # every point, keeps them all here.
        if 0 < self.filter_points_threshold < 1:
            valid = kept & reliable_depth_mask(depth, self.filter_points_threshold)
        points = unproject_depth(depth, K.float(), w2c.float())
        view = CacheView(
            points=points,
            colors=image.permute(0, 2, 3, 1).float(),
            valid=valid,
            edge=edge & (depth > 0),
            w2c=w2c.float(),
            K=K.float(),
            filtered=kept & ~valid,
        )
        if len(self.views) < self.max_buffers:
            self.views.insert(0, view)
        else:
            self.views[0] = view
        return view

    def render(
        self,
        cameras: Cameras,
        frame_offset: int = 0,
        chunk_size: int = 4,
        progress: Callable[[int], None] | None = None,
        depth: bool = True,
        device: torch.device | str | None = None,
        output_device: torch.device | str | None = None,
    ) -> BufferRenders:
        """Render every buffer into every camera.

        Args:
            cameras: T target cameras.
            frame_offset: index of ``cameras[0]`` in a 4D view's frames (autoregressive chunks).
            chunk_size: target frames splatted together.
            progress: called with the number of frames finished after each chunk.
            depth: also render depth (the preview generator merges buffers by it); ``False``
                returns colour and mask only, as GEN3C's renderer does, about a fifth faster.
            device: where to splat (e.g. the GPU a generator computes on; default: where the
                cache's points are).
            output_device: where the renders are returned (default: where the cache's points
                are). They come back there ``chunk_size`` frames at a time, so a GPU that splats
                for a cache on the CPU holds a few frames of them, never the whole video's (3.5 GB
                for 121 frames at 704×1280 with two buffers); ``output_device=device`` keeps them
                where they are splatted, with no copy out and back for a consumer computing there.
        Returns:
            :class:`BufferRenders` with NB = number of views.
        """
        return self.render_views(range(len(self.views)), cameras, frame_offset, chunk_size, progress, depth, device, output_device)

    def render_views(
        self,
        indices,
        cameras: Cameras,
        frame_offset: int = 0,
        chunk_size: int = 4,
        progress: Callable[[int], None] | None = None,
        depth: bool = True,
        device: torch.device | str | None = None,
        output_device: torch.device | str | None = None,
    ) -> BufferRenders:
        """Render the views ``indices`` (in that order) into every camera; see :meth:`render`."""
        frame_offset, chunk_size = self._check_render(cameras, frame_offset, chunk_size)
        indices = tuple(indices)
        if not indices:  # was an IndexError from views[0]
            raise Gen3cInputError("render_views got no views to render: pass the indices of one or more of the cache's views")
        for i in indices:
            self._check_buffer(i)
        views = [self.views[i] for i in indices]
        T, H, W = len(cameras), cameras.height, cameras.width
        returned_on = views[0].points.device if output_device is None else _concrete(output_device, "output_device")
        device = views[0].points.device if device is None else _concrete(device)
        _check_render_memory(T, len(views), H, W, depth, returned_on)
        colors = torch.empty(T, len(views), 3, H, W, device=returned_on)
        masks = torch.empty(T, len(views), 1, H, W, device=returned_on)
        depths = torch.empty(T, len(views), 1, H, W, device=returned_on) if depth else None
        w2c_all, K_all = cameras.w2c.to(device), cameras.K.to(device)
        workspace = SplatWorkspace()
        for start in range(0, T, chunk_size):
            stop = min(T, start + chunk_size)
            for v, view in enumerate(views):
                out = WarpResult(colors[start:stop, v], masks[start:stop, v], depths[start:stop, v] if depth else None)
                target = out if device == returned_on else None  # elsewhere: splat there, then copy back
                result = self.render_view(view, w2c_all[start:stop], K_all[start:stop], H, W, frame_offset + start, target, workspace, depth)
                if target is None:
                    out.color.copy_(result.color)
                    out.mask.copy_(result.mask)
                    if depth:
                        out.depth.copy_(result.depth)
            if progress is not None:
                progress(stop - start)
        if T and not any(bool(view.valid.any()) for view in views):
            # Was the note below, which sent the user after their camera poses.
            note(
                f"the cache holds no point to render into {'the camera' if T == 1 else f'the {T} cameras'}: every pixel of its views has depth ≤ 0, is "
                "masked out, or was dropped by the depth-edge filter (--filter_points_threshold 0 keeps every point)",
                stacklevel=3,
            )
        elif T and not bool(masks.any()) and not noted(UNSEEN_FRAMES) and not noted(OTHER_AXES):
            # Not an error (a path may turn away from the scene), but mostly a convention mix-up;
            # not said in a run whose earlier frames saw the cache and were noted when they no longer did.
            note(
                f"no point of the cache lands in {'the camera' if T == 1 else f'any of the {T} cameras'}: check that {'its pose is' if T == 1 else 'their poses are'} OpenCV world-to-camera "
                "in the cache's world (a camera-to-world or an OpenGL pose looks away from the scene: "
                "gen3c.cameras.invert_pose, opengl_to_opencv)",
                stacklevel=3,
            )
        return BufferRenders(colors=colors, masks=masks, depths=depths, views=indices)

    @torch.no_grad()  # as warp_planar; the curtain test writes into the render too
    def render_view(
        self,
        view: CacheView,
        w2c: Tensor,
        K: Tensor,
        height: int,
        width: int,
        first_frame: int = 0,
        out: WarpResult | None = None,
        workspace: SplatWorkspace | None = None,
        depth: bool = True,
    ) -> WarpResult:
        """Render one view into B cameras (B, 4, 4) / (B, 3, 3) on their device (where the view's
        points are taken to); see :meth:`render`. ``out``, ``workspace`` and ``depth`` as in
        :func:`warp_planar`."""
        B = w2c.shape[0]
        device = w2c.device
        workspace = workspace or SplatWorkspace()
        with_depth = depth or self.foreground_masking  # the curtain test needs the rendered depth
        if out is None:
            out = WarpResult(*(torch.empty(B, c, height, width, device=device) for c in (3, 1, 1)))
        if with_depth and out.depth is None:
            out = WarpResult(out.color, out.mask, torch.empty(B, 1, height, width, device=device))
        if view.num_frames == 1:
            warp_planar([view.planar(device)], w2c, K, height, width, self.splat, out=out, workspace=workspace, depth=with_depth)
            frames = [0] * B
        else:
            frames = [min(first_frame + b, view.num_frames - 1) for b in range(B)]
            for b, f in enumerate(frames):
                valid = view.valid[f]
                cloud = (view.points[f][valid].T.to(device).contiguous(), view.colors[f][valid].T.to(device).contiguous())
                out_b = WarpResult(out.color[b : b + 1], out.mask[b : b + 1], out.depth[b : b + 1] if with_depth else None)
                warp_planar([cloud], w2c[b : b + 1], K[b : b + 1], height, width, self.splat, out=out_b, workspace=workspace, depth=with_depth)
        if self.foreground_masking:
            for b, f in enumerate(frames):
                keep = foreground_curtain_mask(
                    out.depth[b, 0], view.points[f].to(device), view.edge[f].to(device), w2c[b], K[b], self.foreground_tolerance
                )
                out.mask[b, 0] *= keep
                out.color[b] = torch.where(keep, out.color[b], torch.full_like(out.color[b], -1.0))
                out.depth[b, 0] *= keep
        if not depth:
            out = WarpResult(out.color, out.mask, None)
        return out

    def _check_render(self, cameras: Cameras, frame_offset: int, chunk_size: int) -> tuple[int, int]:
        """Refuse a render the cache cannot make (no view) or arguments it cannot take, in one line;
        returns ``frame_offset`` and ``chunk_size`` as Python ints (numpy's are taken too, and a
        progress callback is handed counts made from them)."""
        if not self.views:
            raise Gen3cInputError("the cache is empty: add a view first (Cache3D.add_view)")
        if not isinstance(cameras, Cameras):
            raise Gen3cInputError(f"cameras is {describe_value(cameras)}: pass gen3c.cameras.Cameras(w2c, K, height, width)")
        if not is_whole_number(chunk_size) or chunk_size < 1:
            raise Gen3cInputError(f"chunk_size {shown_value(chunk_size)} must be a whole number ≥ 1 (target frames splatted together)")
        # A negative offset indexed a 4D view's frames from the end (another frame, silently).
        if not is_whole_number(frame_offset) or frame_offset < 0:
            raise Gen3cInputError(f"frame_offset {shown_value(frame_offset)} must be a whole number ≥ 0 (the index of cameras[0] in the video)")
        return int(frame_offset), int(chunk_size)

    def _check_buffer(self, buffer: object) -> None:
        """Refuse a buffer index that names no view of the cache, in one line."""
        if not is_whole_number(buffer) or not -len(self.views) <= buffer < len(self.views):
            raise Gen3cInputError(f"buffer {shown_value(buffer)} is not one of the cache's {len(self.views)} views: pass 0 … {len(self.views) - 1}")

    def point_cloud(self, buffer: int | None = None, frame: int = 0) -> tuple[Tensor, Tensor]:
        """Valid points (N, 3) and colours (N, 3) in [−1, 1], of one buffer or of all, at ``frame``
        of 4D views (a static view shows its one cloud at every frame)."""
        if not self.views:
            raise Gen3cInputError("the cache is empty: add a view first (Cache3D.add_view)")
        if buffer is not None:
            self._check_buffer(buffer)
        views = self.views if buffer is None else [self.views[buffer]]
        frames = min((v.num_frames for v in views if v.num_frames > 1), default=math.inf)
        if not is_whole_number(frame) or not 0 <= frame < frames:
            raise Gen3cInputError(f"frame {shown_value(frame)} is not a frame of the cache's {frames}-frame views: pass 0 … {frames - 1}")
        pts, cols = [], []
        for view in views:
            p, c, v = view.frame(frame)
            pts.append(p[v])
            cols.append(c[v])
        return torch.cat(pts), torch.cat(cols)


class SelectingCache3D(Cache3D):
    """Many source views (e.g. multi-view key frames); every render uses only the ``select``
    views that see most of the target cameras — GEN3C's ``Cache3D_BufferSelector`` (``cache_3d.py``).

    For a render (one chunk of target cameras) each view's validity mask is rendered into all of
    them and summed; the ``select`` views with the largest sums fill the buffers, best first.
    Then, per target frame, if a chosen view covers at least ``near_full_threshold`` of the frame
    on its own, only the first such view is kept and the others are blanked for that frame, as
    GEN3C does (``mask_for_max_buffer_model``); pass ``near_full_threshold=None`` to keep all.

    Views keep the order they were added in (``views[0]`` is the first key view).
    """

    def __init__(self, select: int = 2, near_full_threshold: float | None = 0.9, **kwargs) -> None:
        kwargs.setdefault("max_buffers", MAX_SELECTABLE_VIEWS)
        super().__init__(**kwargs)
        if not is_whole_number(select) or select < 1:
            raise Gen3cInputError(f"select must be a whole number ≥ 1 (views per render; GEN3C: 2), got {shown_value(select)}")
        # NaN or a value past 1 meant "never" without saying so, 0 or less "always".
        if near_full_threshold is not None and not 0 < near_full_threshold <= 1:
            raise Gen3cInputError(
                f"near_full_threshold {shown_value(near_full_threshold)} must be a fraction of the frame in (0, 1] (GEN3C: 0.9), or None to keep every view"
            )
        self.select = int(select)
        self.near_full_threshold = near_full_threshold

    def add_view(
        self, image: Tensor, depth: Tensor, K: Tensor, w2c: Tensor, mask: Tensor | None = None, max_depth: float = CACHE_MAX_DEPTH
    ) -> CacheView:
        """Add a view at the end (views keep their input order); see :meth:`Cache3D.add_view`."""
        view = super().add_view(image, depth, K, w2c, mask, max_depth)
        self.views.append(self.views.pop(0))
        return view

    def overlap_scores(
        self, cameras: Cameras, frame_offset: int = 0, chunk_size: int = 4, device: torch.device | str | None = None
    ) -> Tensor:
        """(N,) number of target pixels each view covers, summed over ``cameras`` (splatted on
        ``device``, default the cache's)."""
        # Ran before render_views' checks: a tensor for cameras was an AttributeError, chunk_size=0 range()'s ValueError.
        frame_offset, chunk_size = self._check_render(cameras, frame_offset, chunk_size)
        scores = torch.zeros(len(self.views), dtype=torch.float64)
        device = self.views[0].points.device if device is None else _concrete(device)
        w2c_all, K_all = cameras.w2c.to(device), cameras.K.to(device)
        for start in range(0, len(cameras), chunk_size):
            stop = min(len(cameras), start + chunk_size)
            for v, view in enumerate(self.views):
                out = self.render_view(
                    view, w2c_all[start:stop], K_all[start:stop], cameras.height, cameras.width, frame_offset + start, depth=False
                )
                scores[v] += float(out.mask.sum())
        return scores

    def render(
        self,
        cameras: Cameras,
        frame_offset: int = 0,
        chunk_size: int = 4,
        progress: Callable[[int], None] | None = None,
        depth: bool = True,
        device: torch.device | str | None = None,
        output_device: torch.device | str | None = None,
    ) -> BufferRenders:
        """Render the ``select`` best views into ``cameras`` (class docstring)."""
        chosen = tuple(range(len(self.views)))
        if len(self.views) > self.select:
            scores = self.overlap_scores(cameras, frame_offset, chunk_size, device)
            chosen = tuple(int(i) for i in torch.sort(scores, descending=True, stable=True).indices[: self.select])
        out = self.render_views(chosen, cameras, frame_offset, chunk_size, progress, depth, device, output_device)
        if self.near_full_threshold is not None and out.num_buffers > 1:
            keep_only_first_full(out, self.near_full_threshold)
        return out


# A SelectingCache3D keeps every view it is given.
MAX_SELECTABLE_VIEWS = 1 << 16


def keep_only_first_full(renders: BufferRenders, threshold: float) -> None:
    """Per frame, when some buffer covers ≥ ``threshold`` of the image, blank every other buffer
    (colour −1, mask 0, depth 0) so the first such buffer conditions that frame alone. In place."""
    coverage = renders.masks.mean(dim=(2, 3, 4))  # (T, NB)
    full = coverage >= threshold
    first = full.float().argmax(dim=1)
    blank = full.any(dim=1)[:, None] & (torch.arange(renders.num_buffers, device=full.device)[None] != first[:, None])
    b = blank[:, :, None, None, None]
    renders.colors.masked_fill_(b, -1.0)
    renders.masks.masked_fill_(b, 0.0)
    if renders.depths is not None:
        renders.depths.masked_fill_(b, 0.0)
