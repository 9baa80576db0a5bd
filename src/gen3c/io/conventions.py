"""Per-frame depth against its cameras: poses or depth saved in another convention.

Two mistakes pass every per-file check: camera-to-world poses saved where world-to-camera ones
belong (or the reverse), and disparity (inverse depth) saved as depth. Where frames carry depth
both show: carried into another frame with the cameras, frame A's depth must land on frame B's.
:func:`check_depth_conventions` measures that for four readings — poses as given or inverted,
depth as given or its inverse — each at the depth scale that fits it best (depth up to scale:
its units need not be the poses'), and refuses the input when another reading fits far better
than the one as given, and far better than no motion at all.

Depth cannot tell the poses from their inverses where the scene looks the same from where the
inverted cameras would be: a camera sliding sideways past a wall or along a floor, walking down
a corridor or turning inside a sphere sees the same depth at each pixel either way. The frames'
colours do: carried with the right poses, a pixel of a textured surface lands on its own colour
in the other frame, and with the wrong ones beside it. Where the depth fits the inverted poses
about as well as the poses as given (and images come with it), :func:`colour_errors` compares
the brightness (luma: videos keep it sharp, where they halve and blur colour) that the most
textured half of the sampled pixels lands on, for both, each at the depth scale that fits it
best among those the depth allows; the input is refused when the inverted poses fit far better
than those as given, and than no motion at all. So it is for the depth as given and as 1 / depth
where the depth fits both (a short walk forward, each view's depth at a scale of its own): one
mistake at a time, both at once being the depth's alone to tell.

Views whose depth was estimated one by one (a monocular estimator per photo) each come at a
scale of their own: 10 % more depth in one view fits a camera moved back as well as the true one
moved forward. ``per_frame_scale`` measures every reading with each pair's depth ratio fitted
too, so such views are judged by their shape and colours, not their scales. That leaves the
depth of a walk forward or back little to tell its poses from their inverses by (the parallax
between near and far, a fraction of the motion): the inverted poses fit with the cameras hardly
moving and each view's depth some percent off, as near 1 as a real estimate's scale is, so no
bound on the scales tells them apart; the colours do. Images with no texture (a constant colour)
tell nothing, and depth estimated from them would be no depth at all: with those, every frame's
depth is taken at one scale, as without ``per_frame_scale``.

Where neither tells the readings apart (a static camera; a pure rotation of a scene at one
distance, or a flat wall faced straight on, of one colour) all of them fit and nothing is said;
so it is for depth or colours too noisy to tell them apart. Up to 9 frame pairs and 512 pixels
each: a fraction of a second for a 720p clip.
"""

from __future__ import annotations

import math
from typing import NamedTuple

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
#: Colours (:func:`colour_errors`): a reading's error is the median over the landed pixels of
#: all pairs of |luma there − luma here| in 0…255 levels, less the pair's median difference (a
#: change of exposure is no misfit); COLOUR_CAP where fewer than MIN_OVERLAP of them land.
#: Refused when the poses as given are off by MIN_COLOUR levels or more and their inverses fit
#: MARGIN times better (and STILL_MARGIN times better than no motion).
MIN_COLOUR = 2.0
COLOUR_CAP = 255.0
#: Images carry texture (``per_frame_scale``) where a tenth or more of the sampled pixels have a
#: contrast (:func:`_contrast`) of this many levels of 255 or more: a constant colour has none,
#: one under noise of 2 levels none either (a tenth at 5 levels or more).
MIN_TEXTURE = 8.0


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


def reading_errors(depth: Tensor, valid: Tensor, K: Tensor, w2c: Tensor, sample: PairSample, per_frame_scale: bool = False) -> dict:
    """Each reading's error (module docstring), by ``(poses inverted, depth inverted)``, and by
    ``"still"`` that of no motion at all (each pixel against the same pixel).

    Args:
        depth: (T, H, W) z-depth; valid: (T, H, W) bool; K: (T, 3, 3); w2c: (T, 4, 4) as given.
        sample: the frame pairs' pixels (:func:`sample_pairs` of this depth).
        per_frame_scale: each frame's depth may have a scale of its own: each error is taken
            about the pair's median depth ratio (:func:`_depth_errors`).
    """
    a, b, pick, rays, here = sample
    K = K.double()
    # Motionless: each pixel against the same pixel of frame b (the same for depth and 1 / depth).
    there, seen = _depth_at(depth, valid, b[:, None].expand_as(pick[..., 0]), pick[..., 0], pick[..., 1])
    still = _about_median(torch.where(seen, here.log() - there.log(), torch.nan), per_frame_scale).abs().nanmedian(-1).values.nan_to_num(CAP)
    errors = {"still": float(torch.where(seen.double().mean(-1) >= MIN_OVERLAP, still.clamp(max=CAP), CAP).mean())}
    typical = float(here.median())
    for inverse_depth in (False, True):
        points = rays * (1.0 / here if inverse_depth else here)[..., None]  # (P, N, 3) in camera a, at scale 1
        for inverted in (False, True):
            poses = invert_pose(w2c.double()) if inverted else w2c.double()
            rel = poses[b] @ invert_pose(poses[a])
            carried = (points @ rel[:, :3, :3].transpose(-1, -2), rel[:, None, :3, 3])
            centre = typical / float(points[..., 2].median())  # scaled, the map's typical value is the depth's
            target = (depth, valid, inverse_depth, per_frame_scale)
            errors[(inverted, inverse_depth)] = _best_scale_error(target, K[b], b, carried, centre)
    return errors


class PairSample(NamedTuple):
    """The P frame pairs (:func:`frame_pairs`) with a pixel of depth in their first frame, and N
    pixels sampled there (:func:`sample_pairs`)."""

    a: Tensor  #: (P,) each pair's first frame
    b: Tensor  #: (P,) the frame it is carried into
    pick: Tensor  #: (P, N, 2) the pixels' rows and columns in frame a
    rays: Tensor  #: (P, N, 3) their rays at z = 1, float64
    here: Tensor  #: (P, N) their depth, float64


def sample_pairs(depth: Tensor, valid: Tensor, K: Tensor) -> PairSample | None:
    """The pixels every reading and the colours are measured on (:class:`PairSample`); None where
    no pair has a pixel of depth. The same pixels on every call (a fixed seed)."""
    pairs = frame_pairs(len(depth))
    generator = torch.Generator().manual_seed(0)
    kept, picks = [], []
    for a, b in pairs:
        pick = _sample_pixels(depth, valid, a, generator)
        if pick is not None:
            kept.append((a, b))
            picks.append(pick)
    if not kept:
        return None
    a, b = (torch.tensor(frames) for frames in zip(*kept, strict=True))
    pick = torch.stack(picks)
    rays = torch.stack([pick[..., 1], pick[..., 0], torch.ones_like(pick[..., 0])], -1).double() @ torch.linalg.inv(K.double()[a]).transpose(-1, -2)
    return PairSample(a, b, pick, rays, depth[a[:, None], pick[..., 0], pick[..., 1]].double())


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
    depth: Tensor, valid: Tensor, inverse_depth: bool, per_frame_scale: bool, K: Tensor, b: Tensor, rotated: Tensor, shift: Tensor,
    scales: Tensor,
) -> Tensor:
    """(S, P) errors of the P pairs' sampled points carried into their frame ``b`` at each scale,
    against ``depth`` there (its inverse with ``inverse_depth``).

    ``rotated``: (P, N, 3) the points of frame a (at scale 1) turned into camera b's axes;
    ``shift``: (P, 1, 3) camera b's translation from camera a; ``K``: (P, 3, 3) of frame b."""
    z, uv, inside = _project(K, rotated, shift, scales, depth.shape[-2:])
    return _depth_errors(depth, valid, inverse_depth, b, z, uv, inside, scales, per_frame_scale)


def _project(K: Tensor, rotated: Tensor, shift: Tensor, scales: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
    """The points (:func:`_pair_errors`) at each scale in camera b: their depth z (S, P, N),
    pixel (S, P, N, 2) (column, row) and whether they land in the ``size`` (H, W) frame,
    in front of the camera."""
    H, W = size
    cam = scales[:, None, None, None] * rotated + shift  # (S, P, N, 3): depth × s, the poses as they are
    z = cam[..., 2]
    uv = (cam[..., :2] / z.clamp(min=1e-12)[..., None]) @ K[:, :2, :2].transpose(-1, -2) + K[:, None, :2, 2]
    col, row = uv[..., 0].round(), uv[..., 1].round()
    return z, uv, (z > 0) & (col >= 0) & (col <= W - 1) & (row >= 0) & (row <= H - 1)


def _depth_errors(
    depth: Tensor, valid: Tensor, inverse_depth: bool, b: Tensor, z: Tensor, uv: Tensor, inside: Tensor, scales: Tensor,
    per_frame_scale: bool = False,
) -> Tensor:
    """(S, P) errors of the projected points (:func:`_project`) against the depth there; with
    ``per_frame_scale`` about the pair's median ratio of the two (frame b's depth at its own scale)."""
    H, W = depth.shape[-2:]
    r, c = uv[..., 1].round().clamp(0, H - 1).long(), uv[..., 0].round().clamp(0, W - 1).long()
    values, ok = _depth_at(depth, valid, b[:, None].expand_as(r), r, c)
    seen = inside & ok
    there = scales[:, None, None] * (1.0 / values if inverse_depth else values)
    error = _about_median(torch.where(seen, z.clamp(min=1e-12).log() - there.log(), torch.nan), per_frame_scale).abs()
    median = error.nanmedian(-1).values.nan_to_num(CAP)
    overlap = seen.double().mean(-1)
    return torch.where(overlap >= MIN_OVERLAP, median.clamp(max=CAP), torch.full_like(median, CAP))


def _about_median(log_ratio: Tensor, per_frame_scale: bool) -> Tensor:
    """``log_ratio`` (..., N) (NaN where unseen), less its median over N where ``per_frame_scale``:
    a depth ratio the whole pair shares is the frames' scales, no misfit."""
    return log_ratio - log_ratio.nanmedian(-1, keepdim=True).values if per_frame_scale else log_ratio


def colour_errors(
    images: Tensor, depth: Tensor, valid: Tensor, K: Tensor, w2c: Tensor, within: float, sample: PairSample, contrast: Tensor,
    readings: list[tuple[bool, bool]], per_frame_scale: bool = False,
) -> dict:
    """The colour error (:data:`MIN_COLOUR`) of each of ``readings`` (``(poses inverted, depth
    inverted)``, as :func:`reading_errors` keys them), each at the depth scale that makes it
    least among those at which its depth lands no more than ``within`` off (:func:`reading_errors`'
    error; inf where none does), and by ``"still"`` that of no motion at all. The pixels: the
    half of the sample's with the most ``contrast`` (P, N) (:func:`_contrast`) in each pair.
    Scales: whole octaves within 2¹² of the depth's (the nearest pixel's luma), then eighths of
    an octave around the best (luma interpolated between pixels).

    Args:
        images: (T, 3, H, W) uint8 RGB of the frames; the rest (``per_frame_scale`` too, for the
            depth's error) as :func:`reading_errors` takes them.
    """
    a, b, pick, rays, here = sample
    K = K.double()
    row, col = pick[..., 0], pick[..., 1]
    # The most textured half of each pair's pixels: those of a flat colour fit any poses.
    textured = contrast.topk(max(pick.shape[1] // 2, 1), dim=-1).indices  # (P, M)
    row, col = row.gather(1, textured), col.gather(1, textured)
    source = _pixels(images, a[:, None], row, col)  # (P, M)
    still = _pixels(images, b[:, None], row, col) - source
    errors: dict = {"still": float(_colour_error(still[None], torch.ones_like(still[None], dtype=torch.bool))[0])}
    typical = float(here.median())
    for inverted, inverse_depth in readings:
        points = rays * (1.0 / here if inverse_depth else here)[..., None]
        poses = invert_pose(w2c.double()) if inverted else w2c.double()
        rel = poses[b] @ invert_pose(poses[a])
        target = (depth, valid, inverse_depth, per_frame_scale)
        carried = (images, source, textured, within, K[b], b, points @ rel[:, :3, :3].transpose(-1, -2), rel[:, None, :3, 3])
        centre = 1.0 if not inverse_depth else typical / float(points[..., 2].median())  # as reading_errors centres it
        coarse = torch.arange(-12, 13, dtype=torch.float64)
        depth_error, colour = _fits(target, *carried, centre * 2.0**coarse, smooth=False)
        best = coarse[int(colour.argmin() if colour.isfinite().any() else depth_error.argmin())]
        fine = best + torch.arange(-7, 8, dtype=torch.float64) / 8
        errors[(inverted, inverse_depth)] = float(_fits(target, *carried, centre * 2.0**fine, smooth=True)[1].min())
    return errors


def _fits(
    target: tuple, images: Tensor, source: Tensor, textured: Tensor, within: float, K: Tensor, b: Tensor, rotated: Tensor,
    shift: Tensor, scales: Tensor, *, smooth: bool,
) -> tuple[Tensor, Tensor]:
    """(S,) depth errors (mean over pairs) of the points (:func:`_pair_errors`) at ``scales``
    (S,) against the ``target`` ``(depth, valid, inverse_depth, per_frame_scale)``, and colour
    errors of their ``textured`` ones (P, M) against their luma ``source`` (P, M) in frame a: inf
    where the depth error is above ``within``. Luma taken at the nearest pixel, or interpolated
    with ``smooth``."""
    depth, valid, inverse_depth, per_frame_scale = target
    z, uv, inside = _project(K, rotated, shift, scales, depth.shape[-2:])
    depth_error = _depth_errors(depth, valid, inverse_depth, b, z, uv, inside, scales, per_frame_scale).mean(-1)
    colour = torch.full_like(depth_error, torch.inf)
    keep = (depth_error <= within).nonzero()[:, 0]
    if len(keep):
        uv = uv[keep].take_along_dim(textured[None, :, :, None], dim=2)
        inside = inside[keep].take_along_dim(textured[None], dim=2)
        colour[keep] = _colour_error(_colours_at(images, b, uv, smooth) - source, inside)
    return depth_error, colour


def _contrast(images: Tensor, frame: Tensor, row: Tensor, col: Tensor) -> Tensor:
    """(P, N) contrast at the pixels (P, N) of the pairs' ``frame`` (P,): the luma differences
    (:func:`_pixels`) across them, left to right and top to bottom (clamped to the frame)."""
    H, W = images.shape[-2:]
    f = frame[:, None]

    def across(r0: Tensor, c0: Tensor, r1: Tensor, c1: Tensor) -> Tensor:
        return (_pixels(images, f, r1, c1) - _pixels(images, f, r0, c0)).abs()

    left, right, up, down = (col - 1).clamp(min=0), (col + 1).clamp(max=W - 1), (row - 1).clamp(min=0), (row + 1).clamp(max=H - 1)
    return across(row, left, row, right) + across(up, col, down, col)


def _colours_at(images: Tensor, frame: Tensor, uv: Tensor, smooth: bool) -> Tensor:
    """(S, P, N) float64 luma (:func:`_pixels`) of the P pairs' ``frame`` (P,) at pixels ``uv``
    (S, P, N, 2) (clamped to the frame): the nearest pixel's, or with ``smooth`` interpolated
    between the four pixels around."""
    H, W = images.shape[-2:]
    if not smooth:
        return _pixels(images, frame[None, :, None], uv[..., 1].round().clamp(0, H - 1).long(), uv[..., 0].round().clamp(0, W - 1).long())
    u, v = uv[..., 0].clamp(0, W - 1), uv[..., 1].clamp(0, H - 1)
    c0, r0 = u.floor().clamp(0, max(W - 2, 0)), v.floor().clamp(0, max(H - 2, 0))
    fu, fv = (u - c0).clamp(0, 1), (v - r0).clamp(0, 1)
    c0, r0 = c0.long(), r0.long()
    c1, r1 = (c0 + 1).clamp(max=W - 1), (r0 + 1).clamp(max=H - 1)
    f = frame[None, :, None]

    def at(r: Tensor, c: Tensor) -> Tensor:
        return _pixels(images, f, r, c)

    return (at(r0, c0) * (1 - fu) + at(r0, c1) * fu) * (1 - fv) + (at(r1, c0) * (1 - fu) + at(r1, c1) * fu) * fv


def _pixels(images: Tensor, frame: Tensor, row: Tensor, col: Tensor) -> Tensor:
    """(...) float64 luma (0.299 R + 0.587 G + 0.114 B) of ``images`` (T, 3, H, W) at frames, rows
    and columns that broadcast to (...): videos keep it at full resolution, where their colour is
    halved (4:2:0) and blurred. Gathered by flat index, not by indexing around the colour axis
    (slower)."""
    H, W = images.shape[-2:]
    at = (frame * (3 * H * W) + row * W + col)[..., None] + torch.arange(3) * (H * W)
    return images.reshape(-1)[at].double() @ torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64)


def _colour_error(difference: Tensor, inside: Tensor) -> Tensor:
    """(S,) errors (:data:`MIN_COLOUR`) of luma differences (S, P, N) where ``inside`` (S, P, N):
    less each pair's median difference, the median over all pairs' pixels."""
    difference = torch.where(inside, difference, torch.nan)
    error = (difference - difference.nanmedian(2, keepdim=True).values).abs()
    median = error.flatten(1).nanmedian(-1).values.nan_to_num(COLOUR_CAP)
    return torch.where(inside.flatten(1).double().mean(-1) >= MIN_OVERLAP, median, COLOUR_CAP)


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
    images: Tensor | None = None,
    per_frame_scale: bool = False,
) -> None:
    """Refuse per-frame depth and poses that fit each other only in another convention.

    Args:
        depth, valid, K, w2c: as :func:`reading_errors` takes them (w2c as gen3c reads them).
        poses_name, depth_name: the files (and keys) the poses and depth come from.
        poses_fix, depth_fix: what fixes each (e.g. "save their inverses as w2c").
        inverted_is: what the poses are when their inverses fit: "camera-to-world" where the
            file holds world-to-camera ones, "world-to-camera" where it holds the other.
        images: (T, 3, H, W) uint8 RGB of the frames, to tell the readings apart where the
            depth cannot (:func:`colour_errors`); None: by the depth alone.
        per_frame_scale: each frame's depth may have a scale of its own (views whose depth was
            estimated one by one): every error is taken about each pair's depth ratio, where
            ``images`` carry texture (:data:`MIN_TEXTURE`; module docstring).

    Raises:
        Gen3cInputError: in one line naming the file and the fix, when a reading other than the
            one as given fits :data:`MARGIN` times better (and :data:`STILL_MARGIN` times better
            than no motion) and the one as given is off by :data:`MIN_ERROR` or more; or, among
            the readings whose depth fits within :data:`MIN_ERROR` of the one as given, when
            the colours fit one so (the one as given off by :data:`MIN_COLOUR` levels or more).
    """
    if len(depth) < 2:
        return
    if images is not None and images.shape != (*depth.shape[:1], 3, *depth.shape[1:]):
        raise ValueError(f"check_depth_conventions: images {tuple(images.shape)} do not match depth {tuple(depth.shape)}")
    sample = sample_pairs(depth, valid, K)  # once: every reading and the colours are measured on these pixels
    if sample is None:
        return
    words = (poses_name, depth_name, poses_fix, depth_fix, inverted_is)
    contrast = None if images is None else _contrast(images, sample.a, sample.pick[..., 0], sample.pick[..., 1])
    # A scale of its own per frame only where the colours can tell what that leaves the depth
    # unable to (a walk forward from one back); untextured images carry no such depth.
    own_scales = per_frame_scale and contrast is not None and float(contrast.quantile(0.9)) >= MIN_TEXTURE
    errors = reading_errors(depth, valid, K, w2c, sample, per_frame_scale=own_scales)
    given, still = errors.pop((False, False)), errors.pop("still")
    untextured = per_frame_scale and contrast is not None and not own_scales
    why_one_scale = "; the images carry no texture, so every frame's depth is taken at one scale" if untextured else ""
    _refuse_by_depth(errors, given, still, words, why_one_scale)
    if images is None:
        return
    # The colours judge one mistake at a time, where the depth fits it within MIN_ERROR of the
    # reading as given, each at the scales where the better of the two lands within MIN_ERROR. Not
    # both at once: where the depth fits every reading, both at once land about as one of them
    # does, and the line would name a mistake that is not there.
    for reading, read in (((True, False), "the poses inverted"), ((False, True), "the depth read as 1 / depth")):
        if errors[reading] > given + MIN_ERROR:  # the depth says the reading as given fits better
            continue
        within = min(given, errors[reading]) + MIN_ERROR
        colours = colour_errors(images, depth, valid, K, w2c, within, sample, contrast, [(False, False), reading], own_scales)
        as_given, other = colours[(False, False)], colours[reading]
        if math.isfinite(as_given) and as_given >= MIN_COLOUR and other * MARGIN <= as_given and other * STILL_MARGIN <= colours["still"]:
            measured = (
                f"carried into other frames, textured pixels land a median {as_given:.0f} brightness levels of 255 off their own, "
                f"{other:.0f} with {read}; the depth fits both"
            )
            raise _refusal(reading, measured, words)


def _refuse_by_depth(errors: dict, given: float, still: float, words: tuple[str, ...], why_one_scale: str) -> None:
    """Refuse (:func:`check_depth_conventions`) by the depth's ``errors`` (:func:`reading_errors`,
    less the reading as given, ``given``, and no motion, ``still``); ``why_one_scale`` ends what
    was measured where a scale of its own per frame was asked for and not taken."""
    if given < MIN_ERROR:
        return
    reading, best = min(errors.items(), key=lambda item: item[1])
    # Another reading must fit far better, and by the cameras' motion: not only at a depth scale
    # so large that the cameras hardly move (depth that changes less than they say it should).
    if not (best * MARGIN <= given and best * STILL_MARGIN <= still):
        return
    read = {(True, False): "inverted", (False, True): "as 1 / depth"}.get(reading, "so")
    raise _refusal(
        reading,
        f"one frame's depth carried into another lands a median {math.exp(given) - 1:.0%} off its depth as given, "
        f"{math.exp(best) - 1:.0%} read {read}{why_one_scale}",
        words,
    )


def _refusal(reading: tuple[bool, bool], measured: str, words: tuple[str, ...]) -> Gen3cInputError:
    """The one line refusing the input for fitting ``reading`` (poses inverted, depth inverted),
    with what ``measured`` it; ``words``: check_depth_conventions' names and fixes."""
    poses_name, depth_name, poses_fix, depth_fix, inverted_is = words
    if reading == (True, True):
        return Gen3cInputError(
            f"{poses_name} look {inverted_is} and {depth_name} looks like inverse depth (disparity) ({measured}): {poses_fix}, and {depth_fix}"
        )
    if reading == (True, False):
        return Gen3cInputError(f"{poses_name} look {inverted_is} ({measured}): {poses_fix}")
    return Gen3cInputError(f"{depth_name} looks like inverse depth (disparity) ({measured}): {depth_fix}")
