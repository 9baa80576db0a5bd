"""Long videos in chunks (GEN3C's autoregression in ``gen3c_single_image.py``) and the cache each chunk renders.

A video of ``120·N + 1`` frames is made in N chunks of 121: chunk k+1 starts at frame 120·k,
the last frame of chunk k, and is conditioned on it; the output is chunk 0 followed by every
later chunk without its first frame. What the 3D cache does between chunks depends on the input:

- :class:`GrowingCache` (single image): the generated frame joins the cache as a new buffer
  (newest first, replacing buffer 0 once 2 exist) with depth aligned to the cache's own render
  (:func:`align_depth_to_reference`).
- :class:`VideoCache` (video input): a 4D cache; each chunk lifts only its own source frames,
  so target frame t renders source frame t and memory does not grow with the video's length.
- :class:`FixedCache` (multi-view input, or any cache given as is): unchanged between chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gen3c.cache import GENERATED_MAX_DEPTH, Cache3D, SelectingCache3D
from gen3c.cameras import Cameras, pixel_grid
from gen3c.errors import Gen3cInputError, describe_value, is_whole_number, note, quoted_path
from gen3c.io.frames import FrameStack
from gen3c.progress import ProgressFactory

# --------------------------------------------------------------------------------------------
# Chunks
# --------------------------------------------------------------------------------------------


def plan_chunks(num_frames: int, chunk_frames: int | None = None) -> list[tuple[int, int]]:
    """``(start, stop)`` of each chunk: ``chunk_frames`` long, each starting on the previous
    one's last frame; the last chunk may be shorter. One chunk when ``chunk_frames`` is None.

    >>> plan_chunks(241, 121)
    [(0, 121), (120, 241)]
    """
    if chunk_frames is None or num_frames <= chunk_frames:
        return [(0, num_frames)]
    if chunk_frames < 2:
        raise Gen3cInputError(
            f"--chunk_frames {chunk_frames} is too small: chunks overlap by one frame, so pass 2 or more"
        )
    chunks, start = [], 0
    while True:
        stop = min(num_frames, start + chunk_frames)
        chunks.append((start, stop))
        if stop == num_frames:
            return chunks
        start = stop - 1


def valid_frame_counts(chunk_frames: int, shown: int = 3) -> str:
    """``"121, 241, 361, …"`` for chunks of 121 frames."""
    return ", ".join(str(1 + (chunk_frames - 1) * n) for n in range(1, shown + 1)) + ", …"


def makes_frame_count(num_frames: int, chunk_frames: int) -> bool:
    """Whether a generator making ``chunk_frames`` (2 or more) per call, chunks overlapping by
    one frame, can make ``num_frames``: ``(chunk−1)·N + 1``."""
    return num_frames >= chunk_frames and (num_frames - 1) % (chunk_frames - 1) == 0


def check_chunked_frame_count(
    num_frames: int, chunk_frames: int, who: str, camera_file: str | None = None, setting: str = "--num_video_frames"
) -> None:
    """A generator that makes exactly ``chunk_frames`` per call can make ``(chunk−1)·N + 1`` frames.
    ``camera_file``: the file whose cameras set the count (the fix is then another file);
    ``setting``: what the caller's user gave the count as (``--num_video_frames``)."""
    if not is_whole_number(chunk_frames) or chunk_frames < 2:
        # A generator's own chunk_frames (a custom generator's): 1 divided by zero below.
        raise Gen3cInputError(
            f"{who} has chunk_frames {chunk_frames!r}: chunks overlap by one frame, so a generator that makes a fixed number "
            "of frames per call must make a whole number, 2 or more"
        )
    if not makes_frame_count(num_frames, chunk_frames):
        if camera_file is not None:
            raise Gen3cInputError(
                f"camera file {quoted_path(camera_file)} has {num_frames} cameras, a count {who} cannot make ({chunk_frames} frames per chunk "
                f"with one frame of overlap): pass a camera file of {chunk_frames - 1}·N+1 cameras ({valid_frame_counts(chunk_frames)})"
            )
        raise Gen3cInputError(
            f"{setting} {num_frames} is not possible with {who}, which makes {chunk_frames} frames per chunk with one "
            f"frame of overlap: pass {chunk_frames - 1}·N+1 frames ({valid_frame_counts(chunk_frames)})"
        )


# --------------------------------------------------------------------------------------------
# What each chunk renders
# --------------------------------------------------------------------------------------------


class CachePlan(Protocol):
    """The cache of every chunk of a run."""

    def cache_for_chunk(
        self,
        index: int,
        start: int,
        cameras: Cameras,
        condition: Tensor | None,
        progress: ProgressFactory | None,
        label: str,
    ) -> tuple[Cache3D, int]:
        """The cache for chunk ``index`` (its cameras start at frame ``start``; ``condition`` is
        the previous chunk's last frame, None for chunk 0) and the ``frame_offset`` to render with."""
        ...

    def buffers_for(self, num_chunks: int) -> int:
        """The most buffers any chunk of a run of ``num_chunks`` renders (``--save_buffer`` width)."""
        ...

    def point_cloud(self) -> tuple[Tensor, Tensor]:
        """Points (N, 3) and colours (N, 3) in [−1, 1] of the cache, for ``--save_point_cloud``."""
        ...

    def state_dict(self) -> dict[str, Tensor]:
        """What the chunks so far changed (the cache's views), for ``--resume``; {} when nothing."""
        ...

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore :meth:`state_dict`'s output."""
        ...


class _Unchanging:
    """Plans whose cache follows from the input alone: nothing to keep for a resumed run."""

    def state_dict(self) -> dict[str, Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, got {sorted(state)[:3]}")


class FixedCache(_Unchanging):
    """The same cache for every chunk (multi-view input; any cache handed over as is)."""

    def __init__(self, cache: Cache3D) -> None:
        self.cache = cache

    def __repr__(self) -> str:
        return f"FixedCache(cache={self.cache!r})"

    def cache_for_chunk(self, index, start, cameras, condition, progress, label) -> tuple[Cache3D, int]:
        return self.cache, start

    def buffers_for(self, num_chunks: int) -> int:
        n = len(self.cache)
        return min(n, self.cache.select) if isinstance(self.cache, SelectingCache3D) else n

    def point_cloud(self) -> tuple[Tensor, Tensor]:
        return self.cache.point_cloud()


class GrowingCache:
    """A static cache that takes each chunk's conditioning frame as a new buffer (GEN3C's ``gen3c_single_image.py``).

    Before chunk k+1 the last generated frame is lifted into the cache at its camera: its depth
    is the ``depth_estimator``'s estimate (when given; e.g. MoGe, as GEN3C) or else the cache's
    own rendered depth, with the smooth surfaces the preview puts back at their own depth and the
    remaining holes filled from the background, aligned either way to the
    cache's rendered depth by :func:`align_depth_to_reference`. The cache keeps
    ``cache.max_buffers`` views, newest first.

    Args:
        depth_estimator: an object with ``estimate(image (3, H, W) in [0, 1], size=(H, W))``
            returning something with a ``depth`` (H, W) tensor (:mod:`gen3c.depth`'s protocol).
        align_steps: Adam steps of the per-pixel scale refinement (GEN3C: 100).
    """

    def __init__(self, cache: Cache3D, depth_estimator: Any = None, align_steps: int = 100) -> None:
        self.cache = cache
        self.depth_estimator = depth_estimator
        self.align_steps = align_steps

    def __repr__(self) -> str:
        return f"GrowingCache(cache={self.cache!r}, depth_estimator={self.depth_estimator!r}, align_steps={self.align_steps})"

    def cache_for_chunk(self, index, start, cameras, condition, progress, label) -> tuple[Cache3D, int]:
        if index > 0 and condition is not None:
            step = (
                progress(f"{label}adding frame {start} to the cache", self.align_steps) if progress else None
            )
            if not self.add_generated_frame(condition, cameras[0], step):
                note(
                    f"{label}frame {start} was not added to the 3D cache: the cache shows nothing at its camera, so there is no "
                    "depth to align it to; this chunk renders the cache as it was",
                    stacklevel=2,
                )
                if step is not None:
                    step(self.align_steps)  # the stage is over: its bar ends full, not stuck at 0
        return self.cache, start

    def add_generated_frame(
        self, frame: Tensor, camera: Cameras, progress: Callable[[int], None] | None = None
    ) -> bool:
        """Lift ``frame`` (3, H, W) in [−1, 1] seen by ``camera`` (one camera) into the cache.

        Returns:
            False (and the cache unchanged) when the cache shows nothing at that camera, so
            there is no depth to align to.
        """
        from gen3c.pipelines.preview import composite_buffers

        color, seen, rendered = (merged[0].cpu() for merged in composite_buffers(self.cache.render(camera)))
        if int(seen.sum()) < 2:
            return False
        if self.depth_estimator is not None:
            image01 = (frame.detach().float().cpu().clamp(-1, 1) + 1.0) / 2.0
            result = self.depth_estimator.estimate(image01, size=(camera.height, camera.width))
            estimate = self._depth_of(result).float().cpu()
            self._check_estimate(estimate, seen)
        else:
            shown, depth_shown = self._with_put_back_surfaces(camera, color, rendered, seen)
            estimate = fill_depth_holes(depth_shown, ~shown)
        # GEN3C's update_cache clamps a generated frame's depth to [0, 10⁴] before aligning it, not
        # to the 100 of its source views: far estimates (sky) stay far.
        estimate = torch.nan_to_num(estimate, nan=GENERATED_MAX_DEPTH).clamp(0.0, GENERATED_MAX_DEPTH)
        depth = align_depth_to_reference(
            estimate, rendered, seen, camera.K[0].cpu(), steps=self.align_steps, progress=progress
        )
        self.cache.add_view(
            frame.detach().float().cpu(), depth, camera.K[0].cpu(), camera.w2c[0].cpu(), max_depth=GENERATED_MAX_DEPTH
        )
        return True

    def _with_put_back_surfaces(
        self, camera: Cameras, color: Tensor, depth: Tensor, seen: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``seen`` (H, W) and ``depth`` (H, W) of the cache's render at ``camera`` with the
        surfaces its depth-edge filter left out on smooth ground — steep floors, the rims beside a
        depth edge — put back where the render has a hole, as the preview shows them
        (:func:`~gen3c.pipelines.preview.filtered_smooth_points`). Filled from the background
        instead, their pixels joined the cache at the far side's depth: the floor and a foreground
        object's rim behind the wall, where later chunks showed them as ghosts."""
        from gen3c.cache import warp_planar
        from gen3c.pipelines.preview import filtered_smooth_points, underlay

        points, colors = filtered_smooth_points(self.cache)
        if not len(points):
            return seen, depth
        cloud = (points.T.contiguous(), colors.T.contiguous())
        put_back = warp_planar([cloud], camera.w2c.cpu(), camera.K.cpu(), camera.height, camera.width)
        _, depth, seen = underlay(put_back, color, depth, seen)
        return seen, depth

    def _depth_of(self, result: Any) -> Tensor:
        """The ``depth`` tensor of the estimator's result, or one line naming the estimator and
        what it must return (:mod:`gen3c.depth`'s protocol)."""
        depth = getattr(result, "depth", None)
        if not isinstance(depth, Tensor):
            got = f"{describe_value(result)} without .depth" if depth is None else f"a .depth that is {describe_value(depth)}"
            raise Gen3cInputError(
                f"the depth estimator {type(self.depth_estimator).__name__}.estimate returned {got}: "
                "return an object whose .depth is an (H, W) torch tensor, as gen3c.depth's estimators do"
            )
        return depth

    def _check_estimate(self, estimate: Tensor, seen: Tensor) -> None:
        """Refuse an estimate that cannot be aligned to the cache, naming the estimator: gen3c's
        own (:mod:`gen3c.depth`) return finite depth > 0 everywhere, a far fill where they have none."""
        name = type(self.depth_estimator).__name__
        if estimate.shape != seen.shape:
            raise Gen3cInputError(
                f"the depth estimator {name} gave depth of shape {tuple(estimate.shape)} for a {seen.shape[0]}×{seen.shape[1]} frame: "
                "return (H, W) depth at the size= it is asked for"
            )
        usable = int((torch.isfinite(estimate) & (estimate > 0) & seen).sum())
        if usable < 2:
            raise Gen3cInputError(
                f"the depth estimator {name} gave {usable} pixels of finite depth > 0 where the cache shows the scene, so a generated "
                "frame cannot be aligned to the cache: return depth finite and > 0 everywhere (a far fill such as 1000 where there is "
                "none, as gen3c.depth's estimators do)"
            )

    def buffers_for(self, num_chunks: int) -> int:
        return min(self.cache.max_buffers, len(self.cache) + num_chunks - 1)

    def point_cloud(self) -> tuple[Tensor, Tensor]:
        return self.cache.point_cloud()

    def state_dict(self) -> dict[str, Tensor]:
        return self.cache.state_dict()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.cache.load_state_dict(state)


class VideoCache(_Unchanging):
    """A 4D cache of a video: target frame t renders source frame t (GEN3C's ``gen3c_dynamic.py``).

    Each chunk lifts only its own source frames, so the cache of a long video costs one chunk's
    points; target frames past the end of the source render its last frame.
    """

    def __init__(
        self,
        frames: FrameStack,
        filter_points_threshold: float = 0.05,
        foreground_masking: bool = False,
        splat: str = "bilinear",
    ) -> None:
        self.frames = frames
        self.settings = {
            "filter_points_threshold": filter_points_threshold,
            "foreground_masking": foreground_masking,
            "splat": splat,
        }

    def __repr__(self) -> str:
        return f"VideoCache(frames={self.frames!r}, {', '.join(f'{key}={value!r}' for key, value in self.settings.items())})"

    def cache_for_chunk(self, index, start, cameras, condition, progress, label) -> tuple[Cache3D, int]:
        T = len(self.frames)
        lo = min(start, T - 1)
        hi = max(lo + 1, min(start + len(cameras), T))
        return self._cache(lo, hi), start - lo

    def _cache(self, lo: int, hi: int) -> Cache3D:
        f = self.frames
        cache = Cache3D(max_buffers=1, **self.settings)
        cache.add_view(f.image(lo, hi), f.depth[lo:hi], f.K[lo:hi], f.w2c[lo:hi], f.valid[lo:hi])
        return cache

    def buffers_for(self, num_chunks: int) -> int:
        return 1

    def point_cloud(self) -> tuple[Tensor, Tensor]:
        """The first source frame's points."""
        return self._cache(0, 1).point_cloud()


# --------------------------------------------------------------------------------------------
# Depth for generated frames
# --------------------------------------------------------------------------------------------


def fill_depth_holes(depth: Tensor, holes: Tensor) -> Tensor:
    """(H, W) depth with the holes filled from the background side of the depth edges around
    them (the preview's disocclusion fill, :func:`gen3c.pipelines.preview.fill_holes`)."""
    from gen3c.pipelines.preview import fill_holes, reach_pixels

    d = depth.detach().float().cpu().numpy()
    h = holes.detach().cpu().numpy().astype(bool)
    if not h.any():
        return depth.float().cpu()
    _, filled = fill_holes(np.zeros((*d.shape, 3), np.float32), d, h, reach_pixels(*d.shape))
    return torch.from_numpy(filled)


def align_depth_to_reference(
    estimated: Tensor,
    reference: Tensor,
    valid: Tensor,
    K: Tensor | None = None,
    *,
    steps: int = 100,
    lr: float = 1e-3,
    smoothness: float = 0.1,
    quantiles: tuple[float, float] = (0.1, 0.9),
    progress: Callable[[int], None] | None = None,
) -> Tensor:
    """Align an estimated depth map to a reference depth (GEN3C's alignment of re-estimated depth
    to the cache's render, as GEN3C's ``gen3c_single_image.py`` does).

    1. Affine fit in inverse depth: ``1/aligned = a · (1/estimated) + b``, least squares over the
       pixels whose inverse depth lies strictly between the ``quantiles`` (10 %–90 %) in both maps.
    2. A per-pixel scale map s (start 1) refined by ``steps`` Adam steps (``lr``) on
       ``data + smoothness · mean|box3(s) − s|``; the data term is the mean L1 distance between the
       scaled and reference points unprojected with ``K`` (GEN3C's), or the mean absolute depth
       difference without ``K``. The 3×3 box filter replicates the border (GEN3C pads zeros).

    Args:
        estimated: (H, W) depth to align (> 0 where known).
        reference: (H, W) depth to align to; ``valid``: (H, W) bool, where it is known.
        K: (3, 3) intrinsics of both maps, or None.
        progress: called with 1 after each refinement step.
    Returns:
        (H, W) aligned depth; 0 where the estimate is unknown or its aligned inverse depth ≤ 0.

    Example:
        >>> est = torch.rand(8, 8) + 1
        >>> ref = 1 / (0.5 / est + 0.2)
        >>> out = align_depth_to_reference(est, ref, torch.ones(8, 8, dtype=torch.bool), steps=0)
        >>> bool(torch.allclose(out, ref, rtol=1e-4))
        True
    """
    est = estimated.detach().float()
    ref = reference.detach().float().to(est.device)
    est_ok = torch.isfinite(est) & (est > 0)
    ref_ok = valid.to(est.device).bool() & torch.isfinite(ref) & (ref > 0)
    if int((est_ok & ref_ok).sum()) < 2:
        raise Gen3cInputError(
            f"align_depth_to_reference: the estimated and reference depth are both known (finite, > 0, reference valid) at "
            f"{int((est_ok & ref_ok).sum())} pixels: pass maps that share 2 or more"
        )
    inv_e = torch.where(est_ok, 1.0 / est.clamp(min=1e-12), torch.zeros_like(est))
    inv_r = torch.where(ref_ok, 1.0 / ref.clamp(min=1e-12), torch.zeros_like(ref))
    q = torch.tensor(quantiles, dtype=torch.float32, device=est.device)
    lo_e, hi_e = _quantiles(inv_e[est_ok], q)
    lo_r, hi_r = _quantiles(inv_r[ref_ok], q)
    inliers = est_ok & ref_ok & (inv_e > lo_e) & (inv_e < hi_e) & (inv_r > lo_r) & (inv_r < hi_r)
    if int(inliers.sum()) < 2:  # e.g. a constant map: no pixel lies strictly inside its quantiles
        inliers = est_ok & ref_ok
    x, y = inv_e[inliers].double(), inv_r[inliers].double()
    var = ((x - x.mean()) ** 2).mean()
    if var <= 1e-12 * float(x.mean()) ** 2:
        scale, bias = y.mean() / x.mean(), torch.zeros((), dtype=torch.float64)
    else:
        scale = ((x - x.mean()) * (y - y.mean())).mean() / var
        bias = y.mean() - scale * x.mean()
    aligned_inv = inv_e * float(scale) + float(bias)
    known = est_ok & (aligned_inv > 0)
    aligned = torch.where(known, 1.0 / aligned_inv.clamp(min=1e-12), torch.zeros_like(est))
    if steps <= 0:
        return aligned
    return aligned * _refine_scale(aligned, ref, known & ref_ok, K, steps, lr, smoothness, progress)


def _quantiles(values: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
    # torch.quantile refuses inputs above 2^24 elements; a strided subsample estimates them well.
    stride = max(1, values.numel() // (1 << 24) + 1)
    lo, hi = torch.quantile(values[::stride], q)
    return lo, hi


def _refine_scale(
    depth: Tensor,
    reference: Tensor,
    mask: Tensor,
    K: Tensor | None,
    steps: int,
    lr: float,
    smoothness: float,
    progress,
) -> Tensor:
    """GEN3C's non-rigid refinement: a smooth per-pixel scale map s, ``depth · s ≈ reference``."""
    H, W = depth.shape
    if K is None:
        weight = torch.ones(H, W, device=depth.device)
        norm = 1.0
    else:  # |X_s − X_t|₁ = |d·s − d_t| · ‖K⁻¹[u, v, 1]‖₁ for points on the same ray
        rays = pixel_grid(H, W, device=depth.device) @ torch.linalg.inv(K.float().to(depth.device)).T
        weight = rays.abs().sum(-1)
        norm = 3.0  # GEN3C averages over the 3 coordinates
    d, t, w = depth[mask], reference[mask], weight[mask]
    kernel = torch.full((1, 1, 3, 3), 1.0 / 9.0, device=depth.device)
    scale = torch.ones(H, W, device=depth.device, requires_grad=True)
    # Adam (β = 0.9, 0.999, ε = 1e-8), written out: torch.optim would import torch._dynamo (seconds).
    m, v = torch.zeros_like(scale), torch.zeros_like(scale)
    with torch.enable_grad():
        for i in range(1, steps + 1):
            data = ((d * scale[mask] - t).abs() * w).mean() / norm
            smoothed = F.conv2d(F.pad(scale[None, None], (1, 1, 1, 1), mode="replicate"), kernel)[0, 0]
            loss = data + smoothness * (smoothed - scale).abs().mean()
            (grad,) = torch.autograd.grad(loss, scale)
            with torch.no_grad():
                m.mul_(0.9).add_(grad, alpha=0.1)
                v.mul_(0.999).addcmul_(grad, grad, value=0.001)
                scale -= lr * (m / (1 - 0.9**i)) / ((v / (1 - 0.999**i)).sqrt() + 1e-8)
            if progress is not None:
                progress(1)
    return scale.detach()
