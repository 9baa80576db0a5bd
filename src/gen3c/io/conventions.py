"""Per-frame depth against its cameras: poses or depth saved in another convention.

Two mistakes pass every per-file check: camera-to-world poses saved where world-to-camera ones
belong (or the reverse), and disparity (inverse depth) saved as depth. Where frames carry depth
both show: carried into another frame with the cameras, frame A's depth must land on frame B's.
:func:`check_depth_conventions` measures that for four readings — poses as given or inverted,
depth as given or its inverse — each at the depth scale that fits it best (depth up to scale:
its units need not be the poses'), and refuses the input when another reading fits far better
than the one as given, and far better than no motion at all. Where the readings cannot be told
apart (a static camera, a pure rotation of a scene at one distance, a flat wall faced straight
on) all of them fit and nothing is said; so it is for depth too noisy to tell them apart.
Up to 9 frame pairs and 512 pixels each: a fraction of a second for a 720p clip.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gen3c.cameras import invert_pose
from gen3c.errors import Gen3cInputError
from gen3c.io.depth import FAR_DEPTH

#: Pixels sampled in each frame pair.
SAMPLES = 512
#: A reading's error: the median |log(carried depth / depth there)| over the pixels seen in both
#: frames, averaged over the pairs; a pair where fewer than MIN_OVERLAP of them land counts as CAP.
MIN_OVERLAP = 0.2
CAP = 1.0
#: Refused when the reading as given is off by this much (~3 % depth error) and another fits
#: MARGIN times better.
MIN_ERROR = 0.03
MARGIN = 4.0
#: ... and STILL_MARGIN times better than no motion at all.
STILL_MARGIN = 2.0
#: Frame gaps of the pairs compared, from a few frames spread over the clip.
GAPS = (1, 4, 16)
ANCHORS = 3


def frame_pairs(count: int) -> list[tuple[int, int]]:
    """The frame pairs compared among ``count`` frames: from up to :data:`ANCHORS` frames spread
    over them, the frames :data:`GAPS` later (or earlier, near the end)."""
    pairs: set[tuple[int, int]] = set()
    if count < 2:
        return []
    for a in sorted({round(i * (count - 1) / max(ANCHORS - 1, 1)) for i in range(ANCHORS)}):
        for gap in GAPS:
            b = a + gap if a + gap < count else a - gap
            if 0 <= b < count and b != a:
                pairs.add((a, b))
    return sorted(pairs)


def reading_errors(depth: Tensor, valid: Tensor, K: Tensor, w2c: Tensor, pairs: list[tuple[int, int]] | None = None) -> dict:
    """Each reading's error (module docstring), by ``(poses inverted, depth inverted)``, and by
    ``"still"`` that of no motion at all (each pixel against the same pixel); NaN where no pair
    has a valid pixel.

    Args:
        depth: (T, H, W) z-depth; valid: (T, H, W) bool; K: (T, 3, 3); w2c: (T, 4, 4) as given.
        pairs: the frame pairs (default :func:`frame_pairs`).
    """
    pairs = frame_pairs(len(depth)) if pairs is None else pairs
    generator = torch.Generator().manual_seed(0)
    kept, picks = [], []
    for a, b in pairs:
        pick = _sample_pixels(depth, valid, a, generator)
        if pick is not None:
            kept.append((a, b))
            picks.append(pick)
    if not kept:
        return dict.fromkeys(((False, False), (True, False), (False, True), (True, True), "still"), math.nan)
    a, b = (torch.tensor(frames) for frames in zip(*kept, strict=True))
    pick = torch.stack(picks)  # (P, N, 2) rows and columns in frame a
    K = K.double()
    rays = torch.stack([pick[..., 1], pick[..., 0], torch.ones_like(pick[..., 0])], -1).double() @ torch.linalg.inv(K[a]).transpose(-1, -2)
    here = depth[a[:, None], pick[..., 0], pick[..., 1]].double()
    # Motionless: each pixel against the same pixel of frame b (the same for depth and 1 / depth).
    there, seen = _depth_at(depth, valid, b[:, None].expand_as(pick[..., 0]), pick[..., 0], pick[..., 1])
    still = torch.where(seen, (here.log() - there.log()).abs(), torch.nan).nanmedian(-1).values.nan_to_num(CAP)
    errors = {"still": float(torch.where(seen.double().mean(-1) >= MIN_OVERLAP, still.clamp(max=CAP), CAP).mean())}
    typical = float(here.median())
    for inverse_depth in (False, True):
        points = rays * (1.0 / here if inverse_depth else here)[..., None]  # (P, N, 3) in camera a, at scale 1
        for inverted in (False, True):
            poses = invert_pose(w2c.double()) if inverted else w2c.double()
            rel = poses[b] @ invert_pose(poses[a])
            carried = (points @ rel[:, :3, :3].transpose(-1, -2), rel[:, None, :3, 3])
            centre = typical / float(points[..., 2].median())  # scaled, the map's typical value is the depth's
            target = (depth, valid, inverse_depth)
            errors[(inverted, inverse_depth)] = _best_scale_error(target, K[b], b, carried, centre)
    return errors


def _sample_pixels(depth: Tensor, valid: Tensor, frame: int, generator: torch.Generator) -> Tensor | None:
    """:data:`SAMPLES` (row, column) of pixels with depth in ``frame``, drawn at random (with
    repetition); None where it has none. Drawn among random pixels, not from a list of every
    valid one: a 720p frame is not scanned."""
    H, W = depth.shape[-2:]
    tries = torch.stack([torch.randint(H, (4 * SAMPLES,), generator=generator), torch.randint(W, (4 * SAMPLES,), generator=generator)], -1)
    ok = _depth_at(depth, valid, torch.full((len(tries),), frame), tries[:, 0], tries[:, 1])[1]
    found = tries[ok] if int(ok.sum()) >= SAMPLES // 4 else None
    if found is None:  # few pixels have depth: find them all
        where = (valid[frame] & (depth[frame] > 0) & (depth[frame] < FAR_DEPTH)).nonzero()
        if len(where) == 0:
            return None
        found = where
    return found[torch.randint(len(found), (SAMPLES,), generator=generator)]


def _depth_at(depth: Tensor, valid: Tensor, frame: Tensor, row: Tensor, col: Tensor) -> tuple[Tensor, Tensor]:
    """The depth (float64) at the pixels and whether it is measured there (valid, > 0, below
    :data:`~gen3c.io.depth.FAR_DEPTH`, where sky and other unknown depth is placed); 1 where not."""
    values = depth[frame, row, col].double()
    ok = valid[frame, row, col] & (values > 0) & (values < FAR_DEPTH)
    return torch.where(ok, values, 1.0), ok


def _best_scale_error(target: tuple, K: Tensor, b: Tensor, carried: tuple[Tensor, Tensor], centre: float) -> float:
    """The mean over pairs of :func:`_pair_errors` at the scale that makes it least: whole
    octaves within 2¹² of ``centre`` (1 for depth as given), then eighths of an octave around the best."""
    def least(exponents: Tensor) -> tuple[float, float]:
        mean = _pair_errors(*target, K, b, *carried, centre * 2.0**exponents).mean(-1)
        return float(exponents[int(mean.argmin())]), float(mean.min())

    best, _ = least(torch.arange(-12, 13, dtype=torch.float64))
    return least(best + torch.arange(-7, 8, dtype=torch.float64) / 8)[1]


def _pair_errors(
    depth: Tensor, valid: Tensor, inverse_depth: bool, K: Tensor, b: Tensor, rotated: Tensor, shift: Tensor, scales: Tensor
) -> Tensor:
    """(S, P) errors of the P pairs' sampled points carried into their frame ``b`` at each scale,
    against ``depth`` there (its inverse with ``inverse_depth``).

    ``rotated``: (P, N, 3) the points of frame a (at scale 1) turned into camera b's axes;
    ``shift``: (P, 1, 3) camera b's translation from camera a; ``K``: (P, 3, 3) of frame b."""
    H, W = depth.shape[-2:]
    cam = scales[:, None, None, None] * rotated + shift  # (S, P, N, 3): depth × s, the poses as they are
    z = cam[..., 2]
    uv = (cam[..., :2] / z.clamp(min=1e-12)[..., None]) @ K[:, :2, :2].transpose(-1, -2) + K[:, None, :2, 2]
    col, row = uv[..., 0].round(), uv[..., 1].round()
    inside = (z > 0) & (col >= 0) & (col <= W - 1) & (row >= 0) & (row <= H - 1)
    r, c = row.clamp(0, H - 1).long(), col.clamp(0, W - 1).long()
    values, ok = _depth_at(depth, valid, b[:, None].expand_as(r), r, c)
    seen = inside & ok
    there = scales[:, None, None] * (1.0 / values if inverse_depth else values)
    error = (z.clamp(min=1e-12).log() - there.log()).abs()
    median = torch.where(seen, error, torch.nan).nanmedian(-1).values.nan_to_num(CAP)
    overlap = seen.double().mean(-1)
    return torch.where(overlap >= MIN_OVERLAP, median.clamp(max=CAP), torch.full_like(median, CAP))


def check_depth_conventions(
    depth: Tensor,
    valid: Tensor,
    K: Tensor,
    w2c: Tensor,
    *,
    poses_name: str,
    depth_name: str,
    poses_fix: str,
    depth_fix: str,
    inverted_is: str = "camera-to-world",
) -> None:
    """Refuse per-frame depth and poses that fit each other only in another convention.

    Args:
        depth, valid, K, w2c: as :func:`reading_errors` takes them (w2c as gen3c reads them).
        poses_name, depth_name: the files (and keys) the poses and depth come from.
        poses_fix, depth_fix: what fixes each (e.g. "save their inverses as w2c").
        inverted_is: what the poses are when their inverses fit: "camera-to-world" where the
            file holds world-to-camera ones, "world-to-camera" where it holds the other.

    Raises:
        Gen3cInputError: in one line naming the file and the fix, when a reading other than the
            one as given fits :data:`MARGIN` times better (and :data:`STILL_MARGIN` times better
            than no motion) and the one as given is off by :data:`MIN_ERROR` or more.
    """
    if len(depth) < 2:
        return
    errors = reading_errors(depth, valid, K, w2c)
    given, still = errors.pop((False, False)), errors.pop("still")
    if math.isnan(given) or given < MIN_ERROR:
        return
    (inverted, inverse_depth), best = min(errors.items(), key=lambda item: item[1])
    # Another reading must fit far better, and by the cameras' motion: not only at a depth scale
    # so large that the cameras hardly move (depth that changes less than they say it should).
    if not (best * MARGIN <= given and best * STILL_MARGIN <= still):
        return
    fit = f"one frame's depth carried into another lands a median {math.exp(given) - 1:.0%} off its depth as given, {math.exp(best) - 1:.0%} read"
    if inverted and inverse_depth:
        raise Gen3cInputError(
            f"{poses_name} look {inverted_is} and {depth_name} looks like inverse depth (disparity) ({fit} so): "
            f"{poses_fix}, and {depth_fix}"
        )
    if inverted:
        raise Gen3cInputError(f"{poses_name} look {inverted_is} ({fit} inverted): {poses_fix}")
    raise Gen3cInputError(f"{depth_name} looks like inverse depth (disparity) ({fit} as 1 / depth): {depth_fix}")
