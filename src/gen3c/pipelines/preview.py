"""The preview generator: the 3D cache's renders with holes filled classically, on a CPU.

It needs no weights and runs in seconds. What the cache does not see is filled three ways:

- pixels the cache's depth-edge filter dropped on smooth surfaces (steep floors, walls seen at
  a grazing angle) are put back from the source view (:func:`filtered_smooth_points`; a
  video's from the source frame that the target frame renders);
- a disocclusion — background a foreground object hid in the source — is filled from the far
  side of the depth edge that opened it only (:func:`fill_holes`): the near side is kept out,
  so the object's colour does not smear into the hole and trail behind it as a ghost;
- what the camera sees past the source's frame is extended from the content at the frame's
  border, blurred more with the distance (:func:`extend_past_frame`), in one piece at the first
  frame rather than one strip per frame, each a copy of the last (streaks), as far past each side
  as the later cameras look (:func:`sides_seen_past_frame`).

Each filled pixel is lifted into a *fill cloud* at its filled (background) depth, so later
frames render the same fill from 3D instead of filling anew: the fill moves with the camera and
does not flicker from frame to frame.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gen3c.cache import BufferRenders, Cache3D, SplatWorkspace, WarpResult, check_cpu_memory, warp_planar
from gen3c.cameras import Cameras, crop_intrinsics, invert_pose, project_points
from gen3c.errors import Gen3cInputError, counted, describe_value
from gen3c.progress import check_step_progress

# Foreground within this share of the image's larger side of a disocclusion stays out of its fill.
REACH = 0.05


def reach_pixels(height: int, width: int, reach: float = REACH) -> int:
    """:data:`REACH` (or ``reach``) in pixels of a ``height`` × ``width`` image."""
    return max(2, round(reach * max(height, width)))


def composite_buffers(buffers: BufferRenders) -> tuple[Tensor, Tensor, Tensor]:
    """Merge the buffers of each frame, the nearest valid one winning per pixel.

    Returns:
        ``(color (T, 3, H, W), mask (T, H, W) bool, depth (T, H, W))``.
    """
    color = buffers.colors[:, 0]
    mask = buffers.masks[:, 0, 0] > 0
    depth = buffers.depths[:, 0, 0]
    for i in range(1, buffers.num_buffers):
        valid = buffers.masks[:, i, 0] > 0
        wins = valid & (~mask | (buffers.depths[:, i, 0] < depth))
        color = torch.where(wins[:, None], buffers.colors[:, i], color)
        depth = torch.where(wins, buffers.depths[:, i, 0], depth)
        mask |= valid
    return color, mask, depth


#: Bytes a pixel of a frame the preview makes takes: float32 colour (12) and the 8-bit copy the
#: video writer makes of it (3).
FRAME_BYTES = 15
#: Bytes a pixel of one frame's size the preview's work on a frame takes besides the chunk's
#: arrays (hole fill pyramids, crack closing, the fill cloud's render, their scratch and the
#: allocator's slack): up to 322 measured (121 frames at 352×640, one buffer), with a margin.
FRAME_WORK_BYTES = 500


def render_bytes(frames: int, buffers: int, height: int, width: int) -> int:
    """The bytes of ``buffers`` renders into ``frames`` frames of ``height`` × ``width`` with
    depth: float32 colour, mask and depth, 20 a pixel."""
    return frames * buffers * height * width * 20


def preview_bytes(frames: int, buffers: int, height: int, width: int, renders_on_cpu: bool = True) -> int:
    """About the most CPU memory :meth:`PreviewGenerator.generate` and the video writer after it
    take for ``frames`` frames of ``height`` × ``width`` from ``buffers`` buffers, besides the
    fill cloud and the view past the first frame: :data:`FRAME_BYTES` a pixel for the frames,
    :data:`FRAME_WORK_BYTES` a pixel of one frame for the work on a frame and, for renders on the
    CPU, the renders (:func:`render_bytes`) and their merge (:func:`composite_buffers`): a byte
    (the mask) for one buffer, 17 for more (a colour, depth and mask of its own; while a third
    buffer merges, its colour twice, before the frames are made)."""
    merge = 1 if buffers == 1 else 17
    chunk = frames * height * width * (FRAME_BYTES + (merge if renders_on_cpu else 0))
    return chunk + height * width * FRAME_WORK_BYTES + (render_bytes(frames, buffers, height, width) if renders_on_cpu else 0)


def unproject_pixels(pixels: Tensor, depth: Tensor, K: Tensor, w2c: Tensor, origin: tuple[int, int] = (0, 0)) -> Tensor:
    """World points (N, 3) of the True pixels of ``pixels`` (H, W) at ``depth`` (N,); ``origin``:
    the (row, column) of ``pixels``' top left in the image that ``K`` describes."""
    v, u = pixels.nonzero(as_tuple=True)
    return unproject_at(v + origin[0], u + origin[1], depth, K, w2c)


def unproject_at(v: Tensor, u: Tensor, depth: Tensor, K: Tensor, w2c: Tensor) -> Tensor:
    """World points (N, 3) of the pixels at rows ``v`` and columns ``u`` (N,) of the image that
    ``K`` describes, at ``depth`` (N,)."""
    x = (u.float() - K[0, 2]) / K[0, 0]
    y = (v.float() - K[1, 2]) / K[1, 1]
    cam = torch.stack([x * depth, y * depth, depth], dim=1)
    c2w = invert_pose(w2c)
    return cam @ c2w[:3, :3].T + c2w[:3, 3]


def close_cracks(
    color: Tensor, depth: Tensor, mask: Tensor, size: int = 3, depth_range: float | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Fill cracks between splats — gaps a ``size`` × ``size`` closing covers — with the mean of
    their covered ``size`` × ``size`` neighbours.

    Cracks open wherever the camera magnifies the cache; inpainting them and adding them to the
    fill cloud would stack slightly different layers of fill frame after frame (speckle). With
    ``depth_range``, a gap closes only when its covered neighbours lie within that relative depth
    range of each other (one surface), so no gap at a depth edge is closed across it.

    Args:
        color: (3, H, W); depth: (H, W); mask: (H, W) bool coverage.
    """
    covered = mask.numpy()
    kernel = np.ones((size, size), np.uint8)
    gaps = cv2.morphologyEx(covered.view(np.uint8), cv2.MORPH_CLOSE, kernel) > covered
    if depth_range is not None and gaps.any():
        depth_np = depth.numpy().astype(np.float32, copy=False)
        nearest = cv2.erode(np.where(covered, depth_np, np.float32(np.inf)), kernel)
        farthest = cv2.dilate(np.where(covered, depth_np, np.float32(0)), kernel)
        with np.errstate(invalid="ignore", over="ignore"):  # inf where no neighbour is covered
            gaps &= farthest <= (1 + depth_range) * nearest
    if not gaps.any():
        return color, depth, mask
    # Covered colour, depth and coverage, box-filtered; the mean is taken at the gaps only. The
    # planes are multiplied as they are and interleaved by cv2.merge (a strided numpy write into
    # the interleaved image took as long as the rest together).
    colour = np.multiply(color.numpy(), covered, dtype=np.float32)
    stacked = cv2.merge([*colour, np.multiply(depth.numpy(), covered, dtype=np.float32), covered.astype(np.float32)])
    box = cv2.blur(stacked, (size, size), borderType=cv2.BORDER_CONSTANT)[gaps]
    mean = torch.from_numpy(box[:, :4] / np.maximum(box[:, 4:], 1e-6))
    cracks = torch.from_numpy(gaps)
    color, depth = color.clone(), depth.clone()
    color[:, cracks] = mean[:, :3].T
    depth[cracks] = mean[:, 3]
    return color, depth, mask | cracks


#: A pixel nearer than this share of the farthest one near it lies in front of a depth edge: the
#: hole fill leaves it out (:func:`foreground_near_holes`, the depth-ordered :func:`push_pull`).
NEARER_RATIO = 0.9
#: A push-pull level's pixel trusts its own average in proportion to its weight, wholly from
#: 1 / this weight on, and the smoothly upsampled coarser level for the rest.
PUSH_PULL_GAIN = 2.0


def push_pull(values: np.ndarray, known: np.ndarray, depth_channel: int | None = None, kept_channel: int | None = None) -> np.ndarray:
    """Fill the unknown pixels of ``values`` (H, W, C) float32 from the ``known`` ones (H, W) bool
    by push-pull: a Gaussian pyramid of the known pixels (weighted averages, holes carry weight
    0), then, coarse to fine, every pixel keeps its own average where its weight is high and
    takes the smoothly upsampled coarser level where it is low. Known pixels come back exactly;
    a hole is filled from the content around it at the scale of the hole, smoothly in both
    directions (no 1-D smears). ``known`` must hold at least one pixel.

    With ``depth_channel`` the pyramid is depth-ordered: on every coarser level, a pixel nearer
    than :data:`NEARER_RATIO` × the farthest pixel within 2 pixels of it drops out (before it is used and
    pooled further), so where a near and a far surface meet, the coarse levels (and the holes
    filled from them) hold the far one. With ``kept_channel`` too (1 or 0 a pixel: the far side
    of a hole, :func:`far_side_of_holes`), a coarser level's pixel that holds more kept pixels
    than others is never dropped.
    """
    out = values.astype(np.float32, copy=True)
    holes = ~known
    out[holes] = _push_pull_at(_known_level(np.moveaxis(values, -1, 0), known), holes, depth_channel, kept_channel)
    return out


def _known_level(planes: Iterable[np.ndarray], known: np.ndarray) -> np.ndarray:
    """The finest level of :func:`push_pull`'s pyramid, (H, W, C + 1) float32: the ``planes`` (C of
    (H, W)) premultiplied by the weight, 1 where ``known`` and 0 elsewhere, and the weight last.
    Known pixels are copied and the others set to 0, so that what a hole holds (NaN, inf: often
    how unknown is marked) never enters the fill, as a product with 0 would let NaN in."""
    zero = np.float32(0)
    return cv2.merge([np.where(known, plane, zero).astype(np.float32, copy=False) for plane in planes] + [known.astype(np.float32)])


def _push_pull_at(level: np.ndarray, targets: np.ndarray, depth_channel: int | None = None, kept_channel: int | None = None) -> np.ndarray:
    """:func:`push_pull`'s fill from its finest ``level`` (:func:`_known_level`) at the
    ``targets`` (H, W) bool, which must be unknown pixels: (n, C) float32 in row-major order of
    the targets. With ``kept_channel`` (1 or 0 a pixel), a coarser level's pixel that holds more
    kept pixels than others is never dropped as nearer."""
    h, w, channels = level.shape[0], level.shape[1], level.shape[2] - 1
    pyramid = [level]
    while max(level.shape[:2]) > 1:
        level = cv2.pyrDown(level).reshape((level.shape[0] + 1) // 2, (level.shape[1] + 1) // 2, channels + 1)
        if depth_channel is not None:
            level = _drop_nearer(level, depth_channel, kept_channel)
        pyramid.append(level)
    filled = level[..., :-1] / np.maximum(level[..., -1:], 1e-12)
    for level in reversed(pyramid[1:-1]):
        coarse = cv2.pyrUp(filled, dstsize=level.shape[1::-1]).reshape(*level.shape[:2], channels)
        own_weight = level[..., -1:]
        trust = np.minimum(own_weight * PUSH_PULL_GAIN, 1.0)
        # trust · own + (1 − trust) · coarse, with own = level / weight
        filled = coarse + trust * (level[..., :-1] / np.maximum(own_weight, 1e-12) - coarse)
    # The full-resolution level has weight 1 (known) or 0 (hole): holes take the coarser level.
    return cv2.pyrUp(filled, dstsize=(w, h)).reshape(h, w, channels)[targets]


def _drop_nearer(level: np.ndarray, depth_channel: int, kept_channel: int | None = None) -> np.ndarray:
    """A pyramid level (premultiplied channels, weight last) without its pixels that are nearer
    than :data:`NEARER_RATIO` × the farthest pixel in their 5×5 neighbourhood (the pooling footprint),
    less those that are mostly ``kept_channel``'s."""
    weight = level[..., -1]
    has = weight > 1e-6
    depth = np.where(has, level[..., depth_channel] / np.maximum(weight, 1e-12), 0).astype(np.float32)
    farthest = cv2.dilate(depth, np.ones((5, 5), np.uint8))
    nearer = has & (depth < NEARER_RATIO * farthest)
    if kept_channel is not None:
        nearer &= level[..., kept_channel] < 0.5 * weight
    if not nearer.any():
        return level
    return np.where(nearer[..., None], 0.0, level).astype(np.float32)


def foreground_near_holes(depth: np.ndarray, known: np.ndarray, holes: np.ndarray, reach: int) -> np.ndarray:
    """Known pixels on the near side of a depth edge that opened a hole: nearer than :data:`NEARER_RATIO` ×
    the farthest known pixel bordering the same hole within its reach, less the hole's far side
    (:func:`far_side_of_holes`).

    A disocclusion lies between an occluder (near) and what it hid (far); its fill must come
    from the far side only, or the occluder's colour smears into the hole and, lifted into 3D,
    trails behind it as a ghost. A hole's border depths spread ``reach`` plus twice the hole's
    width (rounded up to ``reach`` · 2^k): across the hole and at least ``reach`` plus its width
    into the near side, which keeps the occluder out of the fill's coarse levels too. A floor
    beside the hole is nearer than a wall bordering it farther along, but it lies across the
    hole from the occluder: it stays a source, so the floor continues into the hole.

    Args:
        depth: (H, W) float; known: (H, W) bool, pixels with content; holes: (H, W) bool, the
            holes whose borders are depth edges (disocclusions).
    Returns:
        (H, W) bool.
    """
    return _hole_sides(depth, known, holes, reach)[0]


def far_side_of_holes(depth: np.ndarray, known: np.ndarray, holes: np.ndarray, reach: int) -> np.ndarray:
    """(H, W) bool: the known pixels within a hole's reach (as :func:`foreground_near_holes`)
    nearest to a pixel that ends a run of the hole, along a row or down a column, on its far
    side — farther than the pixel at the run's other end by :data:`NEARER_RATIO`, and the near
    end of no run. Across a hole from its occluder they are background, however much nearer
    than the farthest surface around (a floor beside a hole that a wall borders too)."""
    return _hole_sides(depth, known, holes, reach)[1]


def _hole_sides(depth: np.ndarray, known: np.ndarray, holes: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """(:func:`foreground_near_holes`, :func:`far_side_of_holes`).

    Holes are a thousandth of a frame or so, and passes over the whole image took most of the
    time: each step works over the part of the image it can change (the holes' bounding box, a
    few pixels around each far end, the box the holes' reach covers), with the same result as
    over the whole image."""
    height, width = holes.shape
    foreground, far_side = np.zeros_like(known), np.zeros_like(known)
    holes_u8 = holes.astype(np.uint8)
    x, y, w, h = cv2.boundingRect(holes_u8)
    if w == 0 or (w, h) == (width, height) and holes.all():  # no hole, or no pixel beside one: no border
        return foreground, far_side
    # The holes' bounding box and the known pixels around it (their border). It starts on an even
    # row and column: connectedComponents scans 2 × 2 blocks, so it numbers the holes in the same
    # order as over the whole image (the order decides a pixel between two holes: the larger label).
    top, left = max(y - 1, 0) & ~1, max(x - 1, 0) & ~1
    box = np.s_[top : min(y + h + 1, height), left : min(x + w + 1, width)]
    holes_in, known_in = holes[box], known[box]
    count, labels = cv2.connectedComponents(holes_u8[box], connectivity=8)
    # Half-width of each hole: the largest distance from one of its pixels to its border.
    inside = cv2.distanceTransform(holes_u8[box], cv2.DIST_L2, 3)
    half_width = np.zeros(count, np.float32)
    np.maximum.at(half_width, labels[holes_in], inside[holes_in])
    # Holes are grouped by reach rounded up to reach · 2^k: one dilation per group.
    scale = np.ceil(np.log2(np.maximum((reach + 4 * half_width) / reach, 1.0))).astype(int)
    # Each known pixel next to a hole takes that hole's label (the largest label around it).
    near_label = cv2.dilate(labels.astype(np.float32), np.ones((3, 3), np.uint8))
    border_y, border_x = np.nonzero(known_in & (near_label > 0))
    border_scale = scale[near_label[border_y, border_x].astype(np.int64)]
    near_end, far_end = _run_ends(depth[box], known_in, holes_in)
    far_end &= ~near_end
    border_y, border_x = border_y + top, border_x + left
    border_depth = depth[border_y, border_x].astype(np.float32)
    # Each group's depths dilated (0 elsewhere) over the group's bounding box and the radius
    # around it: beyond that it is 0, and inside it the same as over the image. The farthest depth
    # is kept over the box that holds them all (reach_box); outside it, it is 0.
    groups = []  # (radius, the group's border pixels, its box: top, bottom, left, right)
    for k in np.unique(scale[1:]):
        group = border_scale == k
        if group.any():
            radius, ys, xs = reach * 2**k, border_y[group], border_x[group]
            top_k, left_k = max(ys.min() - radius, 0), max(xs.min() - radius, 0)
            bottom_k, right_k = min(ys.max() + radius + 1, height), min(xs.max() + radius + 1, width)
            groups.append((radius, group, (top_k, bottom_k, left_k, right_k)))
    if not groups:  # no known pixel borders a hole
        return foreground, far_side
    tops, bottoms, lefts, rights = zip(*(box_k for _, _, box_k in groups), strict=True)
    r_top, r_left = min(tops), min(lefts)
    reach_box = np.s_[r_top : max(bottoms), r_left : max(rights)]
    farthest = np.zeros((max(bottoms) - r_top, max(rights) - r_left), np.float32)
    for radius, group, (top_k, bottom_k, left_k, right_k) in groups:
        spread = np.zeros((bottom_k - top_k, right_k - left_k), np.float32)
        spread[border_y[group] - top_k, border_x[group] - left_k] = border_depth[group]
        reached = cv2.dilate(spread, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))
        in_farthest = farthest[top_k - r_top : bottom_k - r_top, left_k - r_left : right_k - r_left]
        np.maximum(in_farthest, reached, out=in_farthest)
    known_near = known[reach_box]
    if far_end.any():
        # A far end near a depth edge of its own, on the edge's near side (a box's top against the
        # wall behind it), is an occluder's outline, not a surface that goes on into the hole:
        # kept, its colour streaks across the hole beside that edge. (An eighth of the reach, 4
        # pixels at 640 wide: farther, floor beside a sphere or a box counts as an outline too.)
        end_y, end_x = np.nonzero(far_end)
        far_end[end_y, end_x] = ~_near_an_outline(depth, known, end_y + top, end_x + left, max(1, reach // 8))
    if far_end.any():
        # The known pixels nearest to a far end among the holes' border pixels (their Voronoi
        # cells), over reach_box: it holds every border pixel, so a pixel's nearest ones and the
        # distance transform's paths to them lie in it, and its cells are those over the image.
        not_border = np.ones(farthest.shape, np.uint8)
        not_border[border_y - r_top, border_x - r_left] = 0
        _, cell = cv2.distanceTransformWithLabels(not_border, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
        far_cell = np.zeros(int(cell.max()) + 1, bool)
        far_cell[cell[border_y - r_top, border_x - r_left]] = far_end[border_y - top, border_x - left]
        far_side[reach_box] = known_near & far_cell[cell] & (farthest > 0)
    foreground[reach_box] = known_near & (depth[reach_box] < NEARER_RATIO * farthest) & (farthest > 0) & ~far_side[reach_box]
    return foreground, far_side


def _near_an_outline(depth: np.ndarray, known: np.ndarray, ys: np.ndarray, xs: np.ndarray, distance: int) -> np.ndarray:
    """(n,) bool: whether a known pixel lies within ``distance`` (Chebyshev) of each pixel
    (``ys``, ``xs``) that is nearer than :data:`NEARER_RATIO` × the farthest known pixel in its
    3 × 3 neighbourhood (the near side of a depth edge). Pixels outside the image count for nothing."""
    height, width = depth.shape
    span = np.arange(-distance - 1, distance + 2)  # the window and the neighbourhood of its pixels
    rows, cols = ys[:, None] + span, xs[:, None] + span
    in_image = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
    rows, cols = np.clip(rows, 0, height - 1)[:, :, None], np.clip(cols, 0, width - 1)[:, None, :]
    window_depth, window_known = depth[rows, cols], known[rows, cols] & in_image
    known_depth = np.where(window_known, window_depth, 0).astype(np.float32)
    known_depth[~in_image] = -np.inf
    farthest = known_depth[:, :-2]
    for dy in (1, 2):
        farthest = np.maximum(farthest, known_depth[:, dy : dy + farthest.shape[1]])
    farthest = np.maximum(np.maximum(farthest[:, :, :-2], farthest[:, :, 1:-1]), farthest[:, :, 2:])
    occluding = window_known[:, 1:-1, 1:-1] & (window_depth[:, 1:-1, 1:-1] < NEARER_RATIO * farthest)
    return occluding.any(axis=(1, 2))


def _run_ends(depth: np.ndarray, known: np.ndarray, holes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(near ends, far ends), (H, W) bool: the known pixels that end a run of ``holes`` along a row
    or down a column where one end is nearer than :data:`NEARER_RATIO` × the other: the two sides
    of the depth edge across the hole. A run that reaches the image's border has one end only and
    marks nothing; a known pixel between two runs of a line ends both, and each run is paired with
    its own two ends. The runs are read off the holes' pixels in row-major order (of transposed views
    for the columns; the marks are written through)."""
    near_end, far_end = np.zeros(holes.shape, bool), np.zeros(holes.shape, bool)
    for d, k, h, near, far in (
        (depth, known, holes, near_end, far_end),
        (depth.T, known.T, holes.T, near_end.T, far_end.T),
    ):
        line, along = np.nonzero(h)
        # A run starts where the hole pixel before it in this order is not the one just before it.
        starts = np.flatnonzero(np.r_[True, (line[1:] != line[:-1]) | (along[1:] != along[:-1] + 1)])
        lasts = np.r_[starts[1:], len(line)] - 1
        line, before, after = line[starts], along[starts] - 1, along[lasts] + 1
        ends = (before >= 0) & (after < h.shape[1])
        line, before, after = line[ends], before[ends], after[ends]
        both = k[line, before] & k[line, after]
        line, before, after = line[both], before[both], after[both]
        first_nearer = d[line, before] < NEARER_RATIO * d[line, after]
        last_nearer = d[line, after] < NEARER_RATIO * d[line, before]
        near[line[first_nearer], before[first_nearer]] = True
        far[line[first_nearer], after[first_nearer]] = True
        near[line[last_nearer], after[last_nearer]] = True
        far[line[last_nearer], before[last_nearer]] = True
    return near_end, far_end


def fill_holes(color: np.ndarray, depth: np.ndarray, holes: np.ndarray, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """Fill colour (H, W, 3) float32 and depth (H, W) in ``holes`` (H, W) bool from the background.

    The pixels in front of the depth edge that opened a hole (:func:`foreground_near_holes`) are
    left out altogether, and a depth-ordered :func:`push_pull` fills colour and depth alike, so
    each hole takes the colour and the depth of the surface behind the edge; the hole's far side
    (:func:`far_side_of_holes`) is never dropped from its coarse levels, so a floor beside the hole
    continues into it rather than the wall farther along.

    Returns:
        ``(color, depth)`` with the holes filled; elsewhere unchanged.
    """
    filled = fill_at_holes(color, depth, holes, reach)
    color, depth = color.astype(np.float32), depth.astype(np.float32)
    color[holes], depth[holes] = filled[:, :3], filled[:, 3]
    return color, depth


def fill_at_holes(color: np.ndarray, depth: np.ndarray, holes: np.ndarray, reach: int) -> np.ndarray:
    """:func:`fill_holes`' colour and depth at the holes only: (n, 4) float32, the n hole pixels
    in row-major order."""
    known = ~holes
    if not known.any():
        return np.tile(np.array([0, 0, 0, 1], np.float32), (int(holes.sum()), 1))
    foreground, far_side = _hole_sides(depth, known, holes, reach)
    sources = known & ~foreground
    if not sources.any():  # only foreground in view: fill from it rather than from nothing
        sources = known
    # Colour, depth and the far side interleaved by cv2.merge (in _known_level): the colour is
    # often a view of planar (3, H, W) data, which np.concatenate copies ten times slower, and a
    # masked copy into the interleaved level took longer than the rest of building it.
    planes = [*np.moveaxis(color.astype(np.float32, copy=False), -1, 0), depth.astype(np.float32, copy=False), far_side.astype(np.float32)]
    return _push_pull_at(_known_level(planes, sources), holes, depth_channel=3, kept_channel=4)[:, :4]


# The extension's pyramid levels finer than this one are filtered over a window of the band (the
# part made and margins); this level and the coarser ones over the whole band, 4^PARTIAL_LEVEL times
# smaller there.
PARTIAL_LEVEL = 4
# OpenCV's pyramid filters run along a row in vector steps (of up to 128 floats) and finish its last
# pixels one at a time, which can round differently (it does for one channel on an AVX-512 CPU):
# a window's columns start only at multiples that keep every level's columns on the whole band's
# steps, and a window's right edge either copies the band's (a multiple from it, in the columns
# that repeat the frame's last one) or lies far enough right of the part made for those last
# pixels to stay out of it. Rows are all filtered alike.
_COLUMN_STEP = 128
# The most pixels of the band's window (:func:`band_window`) a tile of it is made over: 128 MB a
# float32 copy of 4 channels. The memory the band takes follows a tile's, not the band's size; a
# band whose window holds no more is made whole.
TILE_PIXELS = 1 << 23


def extend_past_frame(values: np.ndarray, pad: int, sides: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """``values`` (H, W, C) float32 extended by ``pad`` pixels on every side from the nearest
    content, blurred in proportion to the distance from the frame: each border row and column
    continues outwards, its detail fading (a Gaussian of σ ≈ the distance), so the extension is
    smooth in both directions instead of a streak of every border pixel.

    ``sides`` (top, bottom, left, right), each in [0, ``pad``], asks for only that much of it past
    each side. The pixels are the whole extension's, bit for bit, made a tile at a time
    (:class:`BandExtension`): the memory taken besides the result follows a tile's size, not
    ``pad``'s.

    Returns:
        (top + H + bottom, left + W + right, C) with ``values`` in the middle; without ``sides``,
        (H + 2·pad, W + 2·pad, C).
    """
    band = BandExtension(values, pad, sides)
    r0, r1, c0, c1 = band.asked
    out = np.empty((r1 - r0, c1 - c0, values.shape[2]), values.dtype)
    for top, bottom, left, right in band.tiles():
        out[top - r0 : bottom - r0, left - c0 : right - c0] = band.window(top, bottom, left, right)
    return out


def band_tiles(
    height: int, width: int, pad: int, sides: tuple[int, int, int, int], channels: int = 4, most: int | None = None
) -> list[tuple[int, int, int, int]]:
    """The tiles that make up the part ``sides`` asks for of the band ``pad`` wide around a
    ``height`` × ``width`` frame of ``channels``: (first row, end row, first column, end column)
    in the whole band (the frame's top left at (``pad``, ``pad``)), row by row, left to right.

    Each is made over its window (:func:`band_window`), which adds margins: of the even splits of
    the rows (into parts of 256 or more) and of the columns (512 or more) whose windows hold at
    most ``most`` pixels each (default :data:`TILE_PIXELS`), the one whose windows hold the fewest
    pixels in all; where none keeps within ``most``, the one that comes nearest."""
    most = TILE_PIXELS if most is None else most
    top, bottom, left, right = sides
    rows, cols = (pad - top, pad + height + bottom), (pad - left, pad + width + right)

    def splits(axis: int, span: tuple[int, int], least: int) -> list[tuple[list[tuple[int, int]], int, int]]:
        """Each even split of ``span`` on ``axis`` (into parts of ``least`` or more), with the
        largest and the total extent of its parts' windows on that axis."""
        out = []
        for count in range(1, -(-(span[1] - span[0]) // least) + 1):
            parts = _even_split(*span, count)
            windows = [band_window(height, width, channels, pad, (*part, *cols) if axis == 0 else (*rows, *part)) for part in parts]
            extents = [window[2 * axis + 1] - window[2 * axis] for window in windows]
            out.append((parts, max(extents), sum(extents)))
        return out

    _, row_parts, col_parts = min(
        ((max(r_most * c_most - most, 0), r_total * c_total), r_parts, c_parts)
        for r_parts, r_most, r_total in splits(0, rows, 256)
        for c_parts, c_most, c_total in splits(1, cols, 512)
    )
    return [(r0, r1, c0, c1) for r0, r1 in row_parts for c0, c1 in col_parts]


def _even_split(start: int, stop: int, count: int) -> list[tuple[int, int]]:
    """``start``:``stop`` in ``count`` parts of about the same size (fewer where they come out even)."""
    step = -(-(stop - start) // count)
    return [(first, min(first + step, stop)) for first in range(start, stop, step)]


def band_window(height: int, width: int, channels: int, pad: int, part: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The window of the band (rows and columns as in :func:`band_tiles`) whose fine pyramid
    levels (below :data:`PARTIAL_LEVEL`) hold the whole band's over ``part`` and what upsampling
    them there reads: ``part`` with margins of :attr:`BandExtension.MARGIN_CELLS` cells, rows on
    the cells' grid and columns on steps that keep every level's columns on the whole band's
    vector steps (:data:`_COLUMN_STEP`), each side to the band's edge where it would come within a
    step of it. Past the frame the band repeats the frame's border rows (columns), so a side cut
    there looks, to the filters, as the band's own edge does."""
    r0, r1, c0, c1 = part
    size = (height + 2 * pad, width + 2 * pad)
    cell = 2**PARTIAL_LEVEL
    margin = BandExtension.MARGIN_CELLS * cell
    columns = cell * _COLUMN_STEP // math.gcd(channels, _COLUMN_STEP)
    # A right side within or beside the frame's columns is no copy of the band's edge: the pixels
    # its filters finish one at a time (a vector step of every level filtered over the window) are
    # kept out of the part too.
    right = margin if c1 >= pad + width else margin + 2 ** (PARTIAL_LEVEL - 1) * -(-_COLUMN_STEP // channels)
    return (
        max(r0 - margin, 0) // cell * cell,
        size[0] - max(size[0] - r1 - margin, 0) // cell * cell,
        max(c0 - margin, 0) // columns * columns,
        size[1] - max(size[1] - c1 - right, 0) // columns * columns,
    )


def extension_bytes(height: int, width: int, pad: int, sides: tuple[int, int, int, int], channels: int = 4) -> int:
    """About the most memory the band past a ``height`` × ``width`` frame with ``channels`` takes
    as :class:`PreviewGenerator` makes it, a tile at a time (:func:`band_tiles`), besides the
    points it keeps: 16 bytes a channel (4 float32 copies) for each pixel of the largest tile and
    of its window (:func:`band_window`) — or 8 (a copy and its pyramid) for each pixel of the
    window around the frame alone, which the coarse levels start from, where that is more — and
    for the whole band's coarse levels, 16 for one pixel in 64 (copies of level
    :data:`PARTIAL_LEVEL`, which holds one in 256)."""

    def area(part: tuple[int, int, int, int]) -> int:
        return (part[1] - part[0]) * (part[3] - part[2])

    tiles = band_tiles(height, width, pad, sides, channels)
    largest = max(area(tile) + area(band_window(height, width, channels, pad, tile)) for tile in tiles)
    frame = area(band_window(height, width, channels, pad, (pad, pad + height, pad, pad + width)))
    whole = (height + 2 * pad) * (width + 2 * pad)
    return 16 * channels * (max(largest, frame // 2) + whole // 64)


# About the bytes a point of the fill cloud takes while the preview renders it: its position and
# colour (24, up to half again as the cloud grows) and the splat's scratch for it (SplatWorkspace:
# ~80). Measured: a 1408×2560 band of 16.7 million points took 1914 MiB more at its peak.
FILL_POINT_BYTES = 120


def band_points(height: int, width: int, sides: tuple[int, int, int, int]) -> int:
    """The most points the band past a ``height`` × ``width`` frame can add to the fill cloud where
    ``sides`` (top, bottom, left, right) of it are made: every pixel of that part past the frame
    (as many where the later cameras see all of it, e.g. a camera pulling far back)."""
    top, bottom, left, right = sides
    return (height + top + bottom) * (width + left + right) - height * width


def check_extension_fits(height: int, width: int, pad: int, sides: tuple[int, int, int, int], to_come: int) -> None:
    """Refuse, before it is made, a view past the frame (the band past a ``height`` × ``width``
    frame, ``sides`` of its ``pad``-wide band) that cannot fit in this machine's CPU memory with
    swap (a process that outgrows them is killed without a word) beside what this process holds
    and the ``to_come`` bytes the chunk takes later (its frames, not yet written): the band as it is made
    (:func:`extension_bytes`) and the points of it that later frames render, at most
    :func:`band_points`, :data:`FILL_POINT_BYTES` each; note one past the memory free now
    (:func:`~gen3c.cache.check_cpu_memory`).

    Raises:
        Gen3cMemoryError: naming the frame, how far past it the band reaches, the estimate and what to do.
    """
    points = band_points(height, width, sides)
    need = to_come + extension_bytes(height, width, pad, sides) + FILL_POINT_BYTES * points
    what = (
        f"the preview's view past the first frame ({height}×{width}, extended {', '.join(map(str, sides[:3]))} and {sides[3]} pixels "
        f"past its top, bottom, left and right, as far as the later cameras look) needs {need / 2**30:.1f} GB of CPU memory, "
        f"with the up to {points:,} points of it that later frames render, and the frames"
    )
    check_cpu_memory(need, what, "pass a smaller --resolution, or a camera path that looks less far past the first frame", stacklevel=5)


class BandExtension:
    """:func:`extend_past_frame` of ``values`` (H, W, C) over ``sides`` of its ``pad``-wide band,
    made a window at a time (:meth:`window`), each bit for bit the whole extension's there.

    Past a side of the frame the band repeats the frame's border row (column), and so does every
    level of its pyramid wherever the filters reach no content. The coarse levels, from
    :data:`PARTIAL_LEVEL` on, are the whole band's, made once: level :data:`PARTIAL_LEVEL` from
    the window around the frame alone (:func:`band_window`), the stretches of such rows and
    columns beyond it put back as copies of their neighbours (they span whole cells of that level,
    columns a multiple of :data:`_COLUMN_STEP` too). The finer levels are filtered over each
    window's own :func:`band_window`, and the coarse ones brought back to full size over the
    window only.

    Coordinates are the whole band's, as :func:`band_tiles` gives them: the frame's top left at
    (``pad``, ``pad``).
    """

    #: Cells of level PARTIAL_LEVEL kept past the part made: between it and the stretch taken
    #: out, what the upsampling reads (3); between the stretch and the band's outer edge, where the
    #: filters' border handling differs (4); and one to spare (the pixels differ with 5 in all).
    MARGIN_CELLS = 8

    def __init__(self, values: np.ndarray, pad: int, sides: tuple[int, int, int, int] | None = None) -> None:
        H, W, _ = values.shape
        sides = (pad,) * 4 if sides is None else tuple(sides)
        if len(sides) != 4 or not all(0 <= side <= pad for side in sides):
            raise Gen3cInputError(f"extend_past_frame's sides must be 4 numbers of pixels in [0, pad] = [0, {pad}], got {sides}")
        top, bottom, left, right = sides
        self.values, self.pad, self.sides = values, pad, sides
        self.size = (H + 2 * pad, W + 2 * pad)
        #: The part asked for: (first row, end row, first column, end column).
        self.asked = (pad - top, pad + H + bottom, pad - left, pad + W + right)
        around_frame = band_window(H, W, values.shape[2], pad, (pad, pad + H, pad, pad + W))
        level = self._canvas(around_frame)
        for _ in range(PARTIAL_LEVEL):
            level = _pyr_down(level)
        self._coarse = [self._put_back(level, around_frame)]  # levels PARTIAL_LEVEL, PARTIAL_LEVEL + 1, …
        self._coarse_upsampled: dict[int, np.ndarray] = {}  # each coarser level brought to PARTIAL_LEVEL's size

    def tiles(self) -> list[tuple[int, int, int, int]]:
        """The tiles that make up the part asked for (:func:`band_tiles`)."""
        H, W, C = self.values.shape
        return band_tiles(H, W, self.pad, self.sides, C)

    def window(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """The extension over rows ``r0``:``r1`` and columns ``c0``:``c1`` of the band:
        (r1 − r0, c1 − c0, C)."""
        H, W, C = self.values.shape
        pad = self.pad
        around = band_window(H, W, C, pad, (r0, r1, c0, c1))
        level = self._canvas(around)
        rows, cols = slice(r0 - around[0], r1 - around[0]), slice(c0 - around[2], c1 - around[2])
        y, x = np.ogrid[r0:r1, c0:c1]
        outside = np.hypot(np.maximum(np.maximum(pad - y, y - (pad + H - 1)), 0), np.maximum(np.maximum(pad - x, x - (pad + W - 1)), 0))
        # Level k of a Gaussian pyramid, brought back to full size, is a blur of σ ≈ 2^(k−1): each
        # pixel blends the two levels around log2 of twice its distance (the frame, 0, keeps its own).
        position = np.log2(np.maximum(2 * outside, 1.0)).astype(np.float32)
        finer = level[rows, cols]
        out = finer.copy()
        for k in range(1, int(np.ceil(position.max())) + 1):
            if k < PARTIAL_LEVEL:
                level = _pyr_down(level)  # (the finer ones are dropped)
                blurred = level
                for _ in range(k):
                    blurred = _pyr_up(blurred)
                blurred = blurred[rows, cols]
            else:
                blurred = self._coarse_over(k, r0, r1, c0, c1)
            ring = (position > k - 1) & (position <= k)
            weight = (position[ring] - (k - 1))[:, None]
            out[ring] = (1 - weight) * finer[ring] + weight * blurred[ring]
            finer = blurred
        return out

    def _canvas(self, part: tuple[int, int, int, int]) -> np.ndarray:
        """The band's pixels over ``part``: the frame's, its border rows and columns repeated past it."""
        H, W, _ = self.values.shape
        rows = np.clip(np.arange(part[0], part[1]) - self.pad, 0, H - 1)
        cols = np.clip(np.arange(part[2], part[3]) - self.pad, 0, W - 1)
        return np.take(np.take(self.values, rows, axis=0), cols, axis=1)  # (4 times as fast as one 2-D index)

    def _put_back(self, level: np.ndarray, part: tuple[int, int, int, int]) -> np.ndarray:
        """Level :data:`PARTIAL_LEVEL` of the band's window ``part`` around the frame with the
        stretches outside it put back: copies of the row (column) 4 cells in from each of its
        sides, inserted there."""
        cell = 2**PARTIAL_LEVEL
        for axis in (0, 1):
            before, after = part[2 * axis], self.size[axis] - part[2 * axis + 1]
            if not before and not after:
                continue
            n = level.shape[axis]
            whole = -(-self.size[axis] // cell)  # each level holds ceil(n / 2) of the one below
            index = np.arange(n)
            copies_before, copies_after = np.full(before // cell, 4), np.full(whole - n - before // cell, n - 5)
            level = np.take(level, np.concatenate([index[:4], copies_before, index[4 : n - 4], copies_after, index[n - 4 :]]), axis=axis)
        return level

    def _coarse_over(self, k: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """The whole band's level ``k`` ≥ :data:`PARTIAL_LEVEL` brought back to full size over
        rows ``r0``:``r1`` and columns ``c0``:``c1``."""
        while len(self._coarse) <= k - PARTIAL_LEVEL:
            self._coarse.append(_pyr_down(self._coarse[-1]))
        blurred = self._coarse_upsampled.get(k)
        if blurred is None:
            blurred = self._coarse[k - PARTIAL_LEVEL]
            for _ in range(k - PARTIAL_LEVEL):
                blurred = _pyr_up(blurred)
            self._coarse_upsampled[k] = blurred  # (every tile reads it)
        # On level PARTIAL_LEVEL, the cells of the part and 3 more on each side, which its upsampling
        # reads. (A coarser level brought up is larger than the band past its end, by up to a cell of
        # that level: brought up whole, a part at the band's end took up to 16 times the part.)
        cell = 2**PARTIAL_LEVEL
        first = [max(r0 // cell - 3, 0), max(c0 // cell - 3, 0)]
        blurred = blurred[first[0] : -(-r1 // cell) + 3, first[1] : -(-c1 // cell) + 3]
        for _ in range(PARTIAL_LEVEL):
            blurred = _pyr_up(blurred)
        top, left = r0 - first[0] * cell, c0 - first[1] * cell
        return blurred[top : top + r1 - r0, left : left + c1 - c0]


def _pyr_down(level: np.ndarray) -> np.ndarray:
    return cv2.pyrDown(level).reshape((level.shape[0] + 1) // 2, (level.shape[1] + 1) // 2, level.shape[2])


def _pyr_up(level: np.ndarray) -> np.ndarray:
    return cv2.pyrUp(level).reshape(level.shape[0] * 2, level.shape[1] * 2, level.shape[2])


def sides_seen_past_frame(cameras: Cameras, depth_range: tuple[float, float], pad: int, slack: float) -> tuple[int, int, int, int] | None:
    """How far past each side of the first camera's frame — (top, bottom, left, right), pixels in
    [0, ``pad``] — a pixel of the band ``pad`` wide around it can be seen by a later camera of
    ``cameras`` (within ``slack`` pixels of its frame), lifted to any depth in ``depth_range``
    (z-depth in the first camera); None where no later camera can see any of it.

    The pixels a camera can see this way are the first camera's view of a convex body (its
    frustum between the two depths, within the band): they lie within the bounding box of its
    corners' views. The corners are found among the points where three of the body's planes meet,
    in float64 and with a pixel to spare, so the answer holds for the float32 projections too.
    """
    H, W = cameras.height, cameras.width
    near, far = depth_range
    if len(cameras) < 2:
        return None
    if not 0 < near <= far < math.inf:
        return (pad,) * 4
    K = cameras.K.detach().cpu().double()
    w2c = cameras.w2c.detach().cpu().double()
    if not (torch.isfinite(K).all() and torch.isfinite(w2c).all()):
        return (pad,) * 4
    s = slack + 1.0
    # Half-spaces a · (x, y, z, 1) ≤ 0 in the first camera's frame, for every later camera t: in
    # front of it, within its frame and slack (its homogeneous pixel (q0, q1, q2 = depth)) ...
    P = K[1:] @ (w2c[1:] @ invert_pose(w2c[0]))[:, :3]  # (T − 1, 3, 4)
    q0, q1, q2 = P[:, 0], P[:, 1], P[:, 2]
    per_camera = torch.stack([-q2, -q0 - s * q2, q0 - (W + s) * q2, -q1 - s * q2, q1 - (H + s) * q2], dim=1)
    # ... and, for all of them, between the depths and within the band of the first camera.
    p = torch.cat([K[0], torch.tensor([[0.0], [0.0], [0.0]], dtype=torch.float64)], dim=1)  # (3, 4): (u·z, v·z, z)
    z = torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    one = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    near, far = near * (1 - 1e-5), far * (1 + 1e-5)  # (the band's float32 blends of the frame's depths may round past them)
    box = torch.stack([
        -z + near * one, z - far * one,
        -p[0] - (pad + 1) * p[2], p[0] - (W + pad) * p[2],
        -p[1] - (pad + 1) * p[2], p[1] - (H + pad) * p[2],
    ])  # fmt: skip
    planes = torch.cat([per_camera, box.expand(len(per_camera), -1, -1)], dim=1)  # (T − 1, 11, 4)
    planes = planes / planes[..., :3].norm(dim=-1, keepdim=True).clamp(min=1e-300)
    triples = torch.combinations(torch.arange(planes.shape[1]), 3)  # (165, 3)
    A = planes[:, triples]  # (T − 1, 165, 3, 4)
    solvable = torch.linalg.det(A[..., :3]).abs() > 1e-12
    corners = torch.linalg.solve(torch.where(solvable[..., None, None], A[..., :3], torch.eye(3, dtype=torch.float64)), -A[..., 3])
    inside = solvable & ((torch.einsum("tpk,tck->tcp", planes[..., :3], corners) + planes[:, None, :, 3]) <= 1e-9 * (1 + corners.abs().amax(-1, keepdim=True))).all(-1)
    if not inside.any():
        return None
    pixels = corners[inside] @ K[0].T
    u, v = pixels[:, 0] / pixels[:, 2], pixels[:, 1] / pixels[:, 2]
    reach = (-v.min(), v.max() - (H - 1), -u.min(), u.max() - (W - 1))
    # A pixel to spare, less a thousandth: a corner a rounding error past a pixel's edge does not add one.
    return tuple(min(pad, max(0, math.ceil(float(r) + 1 - 1e-3))) for r in reach)  # type: ignore[return-value]


class GrowingCloud:
    """A point cloud that grows every frame (the fill cloud), rendered into every frame: kept in
    the splat's planar layout (points (3, N), colours (3, N) as rows of one buffer, grown by half
    when full), so appending copies only the new points, and each render reuses the previous
    one's scratch and output memory — concatenating and transposing the whole cloud and fresh
    buffers for every frame cost more than the splatting itself.

    Args:
        points: (N, 3); colors: (N, 3).
    """

    def __init__(self, points: Tensor, colors: Tensor) -> None:
        self._rows = torch.empty(6, max(len(points), 1024))
        self._size = 0
        self._workspace = SplatWorkspace()
        self._out: WarpResult | None = None
        self.append(points, colors)

    def __len__(self) -> int:
        return self._size

    def capacity_after(self, count: int) -> int:
        """The points the cloud has room for once ``count`` more are appended."""
        end = self._size + count
        return self._rows.shape[1] if end <= self._rows.shape[1] else max(end, self._rows.shape[1] * 3 // 2)

    def append(self, points: Tensor, colors: Tensor) -> None:
        """Add points (n, 3) with colours (n, 3)."""
        end = self._size + len(points)
        if end > self._rows.shape[1]:
            grown = torch.empty(6, self.capacity_after(len(points)))
            grown[:, : self._size] = self._rows[:, : self._size]
            self._rows = grown
        self._rows[:3, self._size : end] = points.T
        self._rows[3:, self._size : end] = colors.T
        self._size = end

    def render(self, w2c: Tensor, K: Tensor, height: int, width: int) -> WarpResult:
        """:func:`~gen3c.cache.forward_warp` of the cloud into one camera, w2c (1, 4, 4) and
        K (1, 3, 3); the result's tensors are overwritten by the next render."""
        out = self._out
        if out is None or out.color.shape[-2:] != (height, width):
            out = self._out = WarpResult(*(torch.empty(1, c, height, width) for c in (3, 1, 1)))
        cloud = (self._rows[:3, : self._size], self._rows[3:, : self._size])
        return warp_planar([cloud], w2c, K, height, width, out=out, workspace=self._workspace)


class PreviewGenerator:
    """Fills what the cache does not see; no model, no downloads.

    At the first frame, a band ``margin`` wide around the frame is filled too
    (:func:`extend_past_frame`), and the part of it the later cameras see is lifted into the fill
    cloud: what a moving camera sees past the source is then filled in one piece, smooth in both
    directions, instead of one thin strip per frame, each a copy of the last (streaks). The band is
    made only as far past each side as the later cameras can see it
    (:func:`sides_seen_past_frame`), and a tile at a time (:class:`BandExtension`), so its memory
    follows a tile's size, not the image's larger side nor how far they look (a 16 × 7680 strip's
    took 13.5 GB, then 10.5 GB where the cameras roll); one that cannot fit is refused before it is
    made (:func:`check_extension_fits`).

    A frame that sees nothing of the cache or the fill cloud (a camera turned away from the
    scene) is mid-grey (0), and that grey is not lifted into the fill cloud.

    Each :meth:`generate` call (a chunk of a long video) starts a new fill cloud, which grows as
    its cameras see what no earlier frame filled; its memory is asked for before it grows
    (:data:`FILL_POINT_BYTES` a point, with the renders and frames), so a chunk too long for the
    machine is refused in one line rather than killed.

    Args:
        margin: the band's width, as a share of the image's larger side.
        reach: how far (same unit) from a disocclusion the foreground is kept out of its fill.
    """

    name = "preview"
    needs_buffer_depth = True  # buffers are merged nearest-first

    def __init__(self, margin: float = 0.5, reach: float = REACH) -> None:
        for name, value in (("margin", margin), ("reach", reach)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise Gen3cInputError(f"PreviewGenerator {name} is {describe_value(value)}: pass a number (a share of the image's larger side)")
        if not 0 <= margin <= 1 or not 0 < reach <= 1:
            raise Gen3cInputError(f"PreviewGenerator margin must be in [0, 1] and reach in (0, 1], got {margin} and {reach}")
        self.margin = float(margin)  # (a numpy scalar or a Fraction is shown, compared and recorded as the number it is)
        self.reach = float(reach)

    def __repr__(self) -> str:
        return f"PreviewGenerator(margin={self.margin}, reach={self.reach})"

    def generate(
        self,
        cache: Cache3D,
        cameras: Cameras,
        first_frame: Tensor | None = None,
        *,
        buffers: BufferRenders | None = None,
        progress: Callable[[int], None] | None = None,
        chunk: int = 0,  # (the generator protocol's chunk index: the preview draws no noise)
    ) -> Tensor:
        """Render a video along ``cameras``.

        Args:
            cache: the 3D cache.
            cameras: T target cameras.
            first_frame: (3, H, W) in [−1, 1]; as in GEN3C, frame 0 shows the conditioning
                image wherever the cache leaves a hole.
            buffers: ``cache.render(cameras)`` if already computed.
            progress: called with 1 after each frame.
        Returns:
            (T, 3, H, W) frames in [−1, 1].
        """
        check_step_progress(progress)
        if buffers is None:
            buffers = cache.render(cameras)
        elif buffers.depths is None:  # the buffers merge nearest-first and holes fill from their depth
            raise Gen3cInputError("PreviewGenerator.generate got buffers rendered without depth: pass cache.render(cameras) (depth=True), or leave buffers out")
        elif len(buffers.colors) != len(cameras):
            raise Gen3cInputError(f"PreviewGenerator.generate got buffers of {len(buffers.colors)} frames for {len(cameras)} cameras: pass cache.render(cameras) of these cameras, or leave buffers out")
        self.check_memory(cameras, buffers.num_buffers, buffers.colors.device, rendered=True)
        color, mask, depth = composite_buffers(buffers)
        T, H, W = len(cameras), cameras.height, cameras.width
        reach = reach_pixels(H, W, self.reach)
        w2c, K = cameras.w2c.cpu(), cameras.K.cpu()
        to_come = T * H * W * FRAME_BYTES  # (the frames, not yet written: the checks of the band and the cloud count them)
        written_bytes = H * W * 12  # (a frame's float32 colour once written into frames: then part of what the process holds)
        fill_cloud = GrowingCloud(*filtered_smooth_points(cache))
        cloud_noted = False  # (the cloud grows a few times a chunk: a note that it fits only past the free memory is said once)
        video = any(view.num_frames > 1 for view in cache.views)
        workspace = SplatWorkspace()
        frames = torch.empty(T, 3, H, W)
        for t in range(T):
            c, m, d = color[t].cpu(), mask[t].cpu(), depth[t].cpu()
            seen = m  # what the cache itself shows, before any put-back surface, fill or closed crack
            if video:  # a 4D view's put-back surfaces of the frame that target frame t renders, first
                points, colors = filtered_smooth_points(cache, frame=t)
                if len(points):
                    cloud = (points.T.contiguous(), colors.T.contiguous())
                    c, d, m = underlay(warp_planar([cloud], w2c[t : t + 1], K[t : t + 1], H, W, workspace=workspace), c, d, m)
            if len(fill_cloud):
                c, d, m = underlay(fill_cloud.render(w2c[t : t + 1], K[t : t + 1], H, W), c, d, m)
            c, d, m = close_cracks(c, d, m)
            if t == 0:
                fill_cloud.append(*self._extend_past_frame(c, d, m, cameras, reach, to_come))
            holes = ~m
            fill_color = None  # (the fill at the holes, where frame t is filled)
            if t == 0 and first_frame is not None:
                # Frame 0 shows the conditioning image (as in GEN3C) wherever the cache leaves a
                # hole, cracks closed above included: their neighbours' mean is not the image's
                # pixel. Its depth-edge pixels, which the cache left out, blend foreground and
                # background colours: they must not seed the fill cloud, or the object's colour
                # would ghost into disocclusions.
                c = torch.where(seen, c, first_frame.cpu().float())
            elif holes.any():
                fill_color, fill_depth = self._fill_at(c, d, holes, reach)
                # A frame that shows nothing (camera turned away) is filled from nothing: a flat
                # grey at an invented depth of 1, which must not join the cloud, or later frames
                # that see the scene again would show it as a grey wall in front of their fill.
                if m.any():
                    cloud_noted |= self._check_cloud_growth(
                        fill_cloud, int(holes.sum()), t, cameras, to_come - t * written_bytes, say_note=not cloud_noted
                    )
                    fill_cloud.append(unproject_pixels(holes, fill_depth, K[t], w2c[t]), fill_color)
            frames[t] = c
            if fill_color is not None:
                # Written into the frame: filled copies of c and d, taken apart again at the holes
                # for the cloud, cost a third of the fill's own time.
                frames[t].numpy().reshape(3, -1)[:, np.flatnonzero(holes.numpy())] = fill_color.numpy().T
            if progress is not None:
                progress(1)
        return frames

    def check_memory(self, cameras: Cameras, buffers: int, device: torch.device | str = "cpu", *, rendered: bool = False) -> None:
        """Refuse, before they are made, ``buffers`` renders into ``cameras`` on ``device`` and
        what :meth:`generate` makes of them (:func:`preview_bytes`) where they cannot fit in this
        machine's CPU memory with swap beside what this process holds; note them where they fit
        only past the memory free now (:func:`~gen3c.cache.check_cpu_memory`).
        :func:`~gen3c.pipelines.camera_video.generate_video` asks before each chunk's renders are
        made, :meth:`generate` (``rendered``: the renders are made, and held) before it merges them.

        Raises:
            Gen3cMemoryError: naming the frames, the estimate and what to do.
        """
        T, H, W = len(cameras), cameras.height, cameras.width
        on_cpu = torch.device(device).type == "cpu"
        need = preview_bytes(T, buffers, H, W, on_cpu) - (render_bytes(T, buffers, H, W) if on_cpu and rendered else 0)
        what = (
            f"the preview of {T} frames of {H}×{W} ({counted(buffers, 'buffer')}) needs {need / 2**30:.1f} GB of CPU memory for "
            f"{'the renders, their merge and ' if on_cpu and not rendered else 'the merge of its renders and ' if on_cpu else ''}the frames"
        )
        fix = "make fewer frames at once (gen3c generate --chunk_frames; in Python generate_video(..., chunk_frames=N)) or at a lower --resolution"
        check_cpu_memory(need, what, fix, stacklevel=4)

    @staticmethod
    def _check_cloud_growth(cloud: GrowingCloud, count: int, t: int, cameras: Cameras, to_come: int, say_note: bool) -> bool:
        """Refuse, before it is made, the fill cloud's room for ``count`` more points (frame ``t``'s
        fill) where it outgrows this machine's CPU memory with what this process holds and the
        ``to_come`` bytes of frames not yet written, :data:`FILL_POINT_BYTES` a point; note it past the memory free now
        where ``say_note``. The cloud grows by half when full, so this is asked a few times a
        chunk. Returns whether its growth needs more than the memory free now.

        Raises:
            Gen3cMemoryError: naming the frame, the cloud's points, the estimate and what to do.
        """
        capacity = cloud.capacity_after(count)
        if capacity == cloud.capacity_after(0):
            return False
        T, H, W = len(cameras), cameras.height, cameras.width
        need = to_come + FILL_POINT_BYTES * capacity
        what = (
            f"the preview's fill cloud grows to {len(cloud) + count:,} points at frame {t + 1} of {T} ({H}×{W}: the cameras keep "
            f"seeing parts no earlier frame filled) and with the frames needs {need / 2**30:.1f} GB of CPU memory"
        )
        fix = (
            "make fewer frames at once (gen3c generate --chunk_frames; in Python generate_video(..., chunk_frames=N)): each chunk "
            "starts a new fill cloud"
        )
        return check_cpu_memory(need, what, fix, stacklevel=4, say_note=say_note)

    def _extend_past_frame(
        self, color: Tensor, depth: Tensor, mask: Tensor, cameras: Cameras, reach: int, to_come: int
    ) -> tuple[Tensor, Tensor]:
        """The band around frame 0 ((3, H, W), (H, W), (H, W) bool, after the fill cloud),
        ``margin`` wide and filled by :func:`extend_past_frame`: the points (N, 3) of the band
        that a later camera of ``cameras`` sees, lifted at their filled depth, and their colours
        (N, 3). ``to_come``: the bytes the chunk's frames take later, beside what the process holds."""
        H, W = mask.shape
        pad = round(self.margin * max(H, W))
        if pad == 0 or len(cameras) < 2 or not mask.any():  # (a frame 0 that sees nothing has nothing to extend)
            return torch.empty(0, 3), torch.empty(0, 3)
        color, depth = self._fill(color, depth, ~mask, reach)  # the frame's own holes first
        values = np.concatenate([color.permute(1, 2, 0).numpy(), depth[..., None].numpy()], axis=2)
        # Which parts of the band the later cameras see is judged from every 4th pixel (the band is
        # smooth); a seen one keeps the pixels up to a stride and a half around it. The band is
        # made only as far past each side as they can see it (its depth lies between the frame's
        # least and greatest), those pixels around it and one to spare.
        stride = 4
        slack = stride + 1  # a sample stands for the pixels around it
        seen_sides = sides_seen_past_frame(cameras, (float(depth.min()), float(depth.max())), pad, slack)
        if seen_sides is None:
            return torch.empty(0, 3), torch.empty(0, 3)
        sides = tuple(min(pad, side + 3 * stride // 2 + 1) for side in seen_sides)
        check_extension_fits(H, W, pad, sides, to_come)
        band = BandExtension(np.ascontiguousarray(values, dtype=np.float32), pad, sides)
        K0, w2c0 = crop_intrinsics(cameras.K[0].cpu(), -pad, -pad), cameras.w2c[0].cpu()  # the whole band's camera
        # A tile at a time, its seen pixels in the order of the whole band's rows (a row of tiles is
        # merged by position): the fill cloud's points come in the order they always did, so it
        # renders the same.
        tiles = band.tiles()
        points, colors = [], []
        for rows in dict.fromkeys(tile[:2] for tile in tiles):
            parts = [self._seen_in_tile(band, tile, cameras, (K0, w2c0), stride, slack) for tile in tiles if tile[:2] == rows]
            v, u, values_seen = (torch.cat(part) for part in zip(*parts, strict=True))
            order = torch.from_numpy(np.argsort((v * band.size[1] + u).numpy(), kind="stable"))
            v, u, values_seen = v[order], u[order], values_seen[order]
            points.append(unproject_at(v, u, values_seen[:, 3], K0, w2c0))
            colors.append(values_seen[:, :3].clamp(-1, 1))
        return torch.cat(points), torch.cat(colors)

    @staticmethod
    def _seen_in_tile(
        band: BandExtension, tile: tuple[int, int, int, int], cameras: Cameras, band_camera: tuple[Tensor, Tensor], stride: int, slack: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The pixels of ``tile`` of the band that a later camera of ``cameras`` sees: their rows
        and columns in the whole band (N,) each, in the tile's row-major order, and their values
        (N, 4), colour and depth. The band's pixels lift to 3D with ``band_camera`` (K, w2c). Every
        ``stride``-th pixel of the whole band is tested (within ``slack`` pixels of a later
        camera's frame), and a seen one keeps the pixels up to a stride and a half around it, so
        the tile is made with the samples that far around it."""
        H, W, pad = cameras.height, cameras.width, band.pad
        spread = 3 * stride // 2
        r0, r1, c0, c1 = tile
        a0, a1, b0, b1 = band.asked
        around = (max(r0 - spread, a0), min(r1 + spread, a1), max(c0 - spread, b0), min(c1 + spread, b1))
        canvas = torch.from_numpy(band.window(*around))
        frame = (slice(max(pad - around[0], 0), max(pad + H - around[0], 0)), slice(max(pad - around[2], 0), max(pad + W - around[2], 0)))
        samples = torch.zeros(canvas.shape[:2], dtype=torch.bool)
        samples[-around[0] % stride :: stride, -around[2] % stride :: stride] = True  # every 4th of the whole band
        samples[frame] = False
        points = unproject_pixels(samples, canvas[..., 3][samples], *band_camera, (around[0], around[2]))
        seen = torch.zeros(len(points), dtype=torch.bool)
        for start in range(1, len(cameras), 8):  # 8 cameras at a time bound the memory
            cams = cameras[start : start + 8]
            uv, z = project_points(points[None], cams.K.cpu(), cams.w2c.cpu())
            u, v = uv[..., 0], uv[..., 1]
            seen |= ((z > 0) & (u > -slack) & (u < W + slack) & (v > -slack) & (v < H + slack)).any(dim=0)
        grid = np.zeros(canvas.shape[:2], np.uint8)
        grid[samples.numpy()] = seen.numpy()
        kept = torch.from_numpy(cv2.dilate(grid, np.ones((2 * spread + 1, 2 * spread + 1), np.uint8)) > 0)
        kept[frame] = False
        inside = (slice(r0 - around[0], r1 - around[0]), slice(c0 - around[2], c1 - around[2]))
        v, u = kept[inside].nonzero(as_tuple=True)
        return v + r0, u + c0, canvas[inside][v, u]

    @staticmethod
    def _fill(color: Tensor, depth: Tensor, holes: Tensor, reach: int) -> tuple[Tensor, Tensor]:
        """``color`` (3, H, W) and ``depth`` (H, W) with their ``holes`` filled (copies where any)."""
        if not holes.any():
            return color, depth
        fill_color, fill_depth = PreviewGenerator._fill_at(color, depth, holes, reach)
        color, depth = color.clone(), depth.clone()
        color[:, holes] = fill_color.T
        depth[holes] = fill_depth
        return color, depth

    @staticmethod
    def _fill_at(color: Tensor, depth: Tensor, holes: Tensor, reach: int) -> tuple[Tensor, Tensor]:
        """The fill at the n ``holes`` (H, W) of ``color`` (3, H, W) and ``depth`` (H, W), in
        row-major order: colour (n, 3) in [-1, 1] and depth (n,)."""
        filled = torch.from_numpy(fill_at_holes(color.permute(1, 2, 0).numpy(), depth.numpy(), holes.numpy(), reach))
        return filled[:, :3].clamp(-1, 1), filled[:, 3]


def underlay(fill: WarpResult, color: Tensor, depth: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``fill`` (one frame) shown where ``mask`` (H, W) leaves a hole in ``color`` (3, H, W) and
    ``depth`` (H, W). Put-back surfaces seen from a new angle spread into dotted lines: the gaps
    within one surface are closed first, before the holes are filled from the background."""
    fill_c, fill_d, fill_m = close_cracks(fill.color[0], fill.depth[0, 0], fill.mask[0, 0] > 0, 5, 0.05)
    use = ~mask & fill_m
    return torch.where(use, fill_c, color), torch.where(use, fill_d, depth), mask | use


def smooth_surface_pixels(depth: Tensor, tolerance: float = 0.05) -> Tensor:
    """(H, W) bool: pixels of ``depth`` (H, W) whose surface is locally smooth — the second
    differences of inverse depth (0 on any plane, whose inverse depth is affine in the pixel
    coordinates) stay below ``tolerance`` × the inverse depth over the pixel and its 8 neighbours.
    Depth edges fail on both sides, and so do the pixels next to them (often colour blends)."""
    valid = depth > 0
    inv = torch.where(valid, depth.float(), torch.ones_like(depth.float())).reciprocal() * valid
    # Second differences inside the image; the border rows and columns repeat their neighbours'
    # (none across an image under 3 pixels wide or high: nothing to tell a plane by there).
    d2u, d2v = torch.zeros_like(inv), torch.zeros_like(inv)
    if inv.shape[1] >= 3:
        d2u = F.pad((inv[:, 2:] - 2 * inv[:, 1:-1] + inv[:, :-2])[None], (1, 1), mode="replicate")[0]
    if inv.shape[0] >= 3:
        d2v = F.pad((inv[2:] - 2 * inv[1:-1] + inv[:-2]).T[None], (1, 1), mode="replicate")[0].T
    rough = ((d2u.abs() + d2v.abs()) > tolerance * inv) | ~valid
    rough = F.max_pool2d(rough[None, None].float(), 3, stride=1, padding=1)[0, 0] > 0
    return ~rough


def filtered_smooth_points(cache: Cache3D, frame: int | None = None) -> tuple[Tensor, Tensor]:
    """The points (N, 3) and colours (N, 3) that the cache's depth-edge filter left out although
    they lie on smooth surfaces (:func:`smooth_surface_pixels`) — steep floors and walls seen at
    a grazing angle, whose relative depth range over 5×5 pixels is large.

    ``frame`` None: those of the static views. ``frame`` t: those of the 4D (video) views' frame
    that target frame t renders (their last past their end, as :meth:`Cache3D.render_view`)."""
    points, colors = [torch.empty(0, 3)], [torch.empty(0, 3)]
    for view in cache.views:
        if (view.num_frames == 1) != (frame is None):
            continue
        f = 0 if frame is None else min(frame, view.num_frames - 1)
        p = view.points[f].cpu()
        z = p @ view.w2c[f, 2, :3].cpu() + view.w2c[f, 2, 3].cpu()
        keep = view.filtered[f].cpu() & smooth_surface_pixels(z)
        points.append(p[keep])
        colors.append(view.colors[f].cpu()[keep])
    return torch.cat(points), torch.cat(colors)
