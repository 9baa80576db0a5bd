"""Camera-controlled video from a 3D cache: the composition the CLI and the GUI both call.

    source view(s) → :func:`prepare_source` → :func:`build_cache` → cameras (preset or file)
    → :func:`generate_video` (per chunk: cache, render buffers, run a generator)
    → :class:`OutputWriter` / :func:`save_outputs`

A *generator* is any object with ``generate(cache, cameras, first_frame, *, buffers=None,
progress=None, chunk=0) -> (T, 3, H, W)`` (``chunk``: which chunk of the video the call makes,
for a generator whose chunks draw successive noise, as GEN3C's; others ignore it, or leave it out
of their signature and are not given it), optionally
``check_num_frames(n)`` (frames of one call) and ``chunk_frames`` (the frames it makes per call
when that is fixed: 121 for GEN3C's model): the CPU preview
(:class:`~gen3c.pipelines.preview.PreviewGenerator`) or the GEN3C diffusion model.
Long videos are made chunk by chunk (:mod:`gen3c.pipelines.autoregressive`); every generator is
called once per chunk with the same protocol.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import json
import math
import numbers
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import Tensor

from gen3c.cache import OTHER_AXES, UNSEEN_FRAMES, BufferRenders, Cache3D
from gen3c.cameras import (
    Cameras,
    check_intrinsics_fit,
    check_unmasked,
    note_swapped_intrinsics,
    resize_crop_intrinsics,
    resize_intrinsics,
    validate_poses,
)
from gen3c.constants import GEN3C_CHUNK_FRAMES, MAX_FRAMES
from gen3c.errors import (
    Gen3cInputError,
    complex_refusal,
    describe_value,
    is_whole_number,
    meta_refusal,
    note,
    noted,
    raise_if_interrupted,
    shown_value,
    spelled,
)
from gen3c.io.atomic import (
    atomic_path,
    check_output_spelling,
    check_output_targets,
    check_video_name,
    ensure_writable_dir,
    flush_files,
    remove_abandoned_parts,
    signals_deferred,
    write_failure,
)
from gen3c.io.camera_files import save_cameras
from gen3c.io.depth import median_scene_depth
from gen3c.io.formats import json_default
from gen3c.io.images import resize_image, to_uint8
from gen3c.io.paths import one_form, writer_path
from gen3c.io.ply import write_ply
from gen3c.io.video import DEFAULT_FPS, VideoWriter
from gen3c.pipelines.autoregressive import (
    CachePlan,
    FixedCache,
    GrowingCache,
    check_chunked_frame_count,
    plan_chunks,
)
from gen3c.progress import ProgressFactory, check_progress_factory
from gen3c.summary import dataclass_repr
from gen3c.trajectories import DEPTH_KINDS, TURNED_ROUND, _center_depth_for, _preset_trajectory

if TYPE_CHECKING:
    import PIL.Image



class VideoGenerator(Protocol):
    """``name`` labels progress; ``needs_buffer_depth`` (default True when absent) says whether
    ``generate`` reads ``buffers.depths`` — when False the cache renders colour and mask only;
    ``render_device`` (default None when absent: where the cache is) is where the cache is
    splatted for this generator, e.g. the GPU it computes on, and ``render_output_device`` (the
    same default) where it takes the renders. ``check_memory(cameras, buffers, device)``, where
    present, is asked before each chunk's renders are made (``buffers`` of them into ``cameras``,
    returned on ``device``): it refuses a chunk whose renders and what ``generate`` makes of them
    cannot fit."""

    name: str

    def generate(
        self,
        cache: Cache3D,
        cameras: Cameras,
        first_frame: Tensor | None = None,
        *,
        buffers: BufferRenders | None = None,
        progress: Callable[[int], None] | None = None,
        chunk: int = 0,
    ) -> Tensor: ...


@dataclass
class SourceView:
    """One source view at the working resolution.

    Attributes:
        image: (3, H, W) in [−1, 1].
        depth: (H, W) z-depth (0 where invalid).
        K: (3, 3) intrinsics in pixels of H × W.
        w2c: (4, 4) pose; the identity for single-image input.
        valid: (H, W) bool, pixels allowed into the cache.
        depth_kind: "relative" (up to scale, e.g. MoGe) or "metric" (incl. user depth).
    """

    image: Tensor
    depth: Tensor
    K: Tensor
    w2c: Tensor = field(default_factory=lambda: torch.eye(4))
    valid: Tensor | None = None
    depth_kind: str = "metric"
    #: Typical scene depth for ``--trajectory_scale median_depth``; None: the median of the
    #: valid depth (:meth:`median_depth`). Estimators set it from their trusted pixels (MoGe's
    #: sky, filled far away, stays in the cache as in GEN3C but must not move the median).
    reference_depth: float | None = None

    __repr__ = dataclass_repr

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.image.shape[-2:])

    def median_depth(self) -> float | None:
        """The view's median depth, the scale of ``--trajectory_scale median_depth`` and of the
        GUI: :attr:`reference_depth` when set, else :func:`gen3c.io.depth.median_scene_depth` of
        the valid depth (None when no pixel is valid)."""
        return self.reference_depth if self.reference_depth is not None else median_scene_depth(self.depth, self.valid)


def prepare_source(
    image: Tensor | np.ndarray | PIL.Image.Image,
    depth: Tensor | np.ndarray,
    K: Tensor | np.ndarray,
    resolution: tuple[int, int],
    resize_mode: str = "crop",
    valid: Tensor | np.ndarray | None = None,
    w2c: Tensor | np.ndarray | None = None,
    depth_kind: str = "metric",
    *,
    note_unit_range: bool = True,
    note_invalid_depth: bool = True,
) -> SourceView:
    """Bring an image, its depth and intrinsics to the working resolution.

    The image, depth and camera may come from files (:func:`gen3c.io.images.load_image`,
    :func:`gen3c.io.depth.load_depth`) or from memory: a PIL image and numpy arrays are taken
    as they are, and their depth is treated as ``--depth_path``'s is (NaN / +inf far away, as
    GEN3C places sky; ≤ 0 left out; a note says how many).

    Args:
        image: (3, h, w) float tensor in [−1, 1], or a uint8 tensor, a PIL image, an (h, w, 3)
            uint8 array or float array in [0, 1] (:func:`gen3c.io.images.as_image`). A float
            *tensor* is read as [−1, 1]: pass a [0, 1] one (torchvision's ``to_tensor``, kornia)
            as ``image * 2 - 1`` (one with no value below 0 is noted).
        depth: (h, w) z-depth (tensor or array, any real dtype; (1, h, w) too), metres best (GEN3C's cache clamps
            at 100; a map with no depth below 1e4, millimetres most likely, is refused); a numpy masked
            array's masked pixels are invalid, as NaN is.
        K: (3, 3) intrinsics in pixels of h × w, OpenCV convention
            (:func:`gen3c.cameras.intrinsics_from_fov` for a field of view in degrees); K and
            ``w2c`` with masked entries or complex values are refused.
        resolution: working (H, W).
        resize_mode: "crop" (keep aspect, centre-crop) or "stretch" (GEN3C's plain resize).
        valid: optional (h, w) bool, False for pixels to leave out of the cache (a numpy masked
            array's masked pixels too, as a masked depth's).
        w2c: optional (4, 4) world-to-camera pose (default: the identity).
        depth_kind: "metric" (incl. the user's own units) or "relative" (up to scale, e.g.
            MoGe's): what ``trajectory_scale="auto"`` scales a preset path by (:mod:`gen3c.trajectories`).
        note_unit_range: note a float tensor with no value below 0 as likely [0, 1]; False where
            the image is known to be in [−1, 1] (read from a file, or checked where it came in), so a
            bright photo is not taken for a [0, 1] one.
        note_invalid_depth: say what was done with NaN / inf / ≤ 0 / ≥ 1e4 depth; False where the
            depth was filled and noted already (a depth file read by
            :func:`gen3c.io.depth.conform_depth`) or is an estimator's (its far fill is no news), so
            the filled pixels are not noted a second time as depth ≥ 1e4.

    Raises:
        Gen3cInputError: an argument of the wrong type, shape or range, or a depth with no
            valid pixel, in one line.
    """
    from gen3c.io.depth import InvalidDepthTally, fill_invalid_depth

    image = source_image(image, "prepare_source image", note_unit_range=note_unit_range)
    size = tuple(image.shape[-2:])
    depth = source_depth(depth, size, "prepare_source depth")
    if isinstance(K, numbers.Real):
        raise Gen3cInputError(
            f"prepare_source K is the number {K!r}: pass (3, 3) intrinsics in pixels; for a field of view in degrees, "
            f"gen3c.cameras.intrinsics_from_fov({K!r}, {size[0]}, {size[1]})"
        )
    K = _camera_matrix(K, "prepare_source K")
    if K.shape != (3, 3):
        raise Gen3cInputError(f"prepare_source K has shape {tuple(K.shape)}: pass one (3, 3) matrix in pixels of the image")
    K = check_intrinsics_fit(K, *size, "prepare_source K")
    note_swapped_intrinsics(K, *size, "prepare_source K")
    if w2c is not None:
        w2c = validate_poses(_camera_matrix(w2c, "prepare_source w2c"), "prepare_source w2c")
        if w2c.shape != (4, 4):
            raise Gen3cInputError(f"prepare_source w2c has shape {tuple(w2c.shape)}: pass one (4, 4) world-to-camera pose")
    if (isinstance(resolution, np.ndarray) or (isinstance(resolution, Tensor) and not resolution.is_meta)) and resolution.ndim == 1:
        resolution = resolution.tolist()  # (torch.tensor([H, W]) or np.array([H, W]) was refused, a tuple of numpy ints taken)
    if not (isinstance(resolution, (tuple, list)) and len(resolution) == 2 and all(_is_positive_int(v) for v in resolution)):
        raise Gen3cInputError(f"prepare_source resolution {shown_value(resolution)} must be (H, W), two positive whole numbers, e.g. (704, 1280)")
    resolution = tuple(int(v) for v in resolution)
    if depth_kind not in DEPTH_KINDS:
        raise Gen3cInputError(f"prepare_source depth_kind {shown_value(depth_kind)} is unknown: pass one of {', '.join(DEPTH_KINDS)}")
    depth = depth.to(image.device).float()
    if valid is not None:
        if isinstance(valid, np.ma.MaskedArray):  # masked pixels are invalid, as a masked depth's are
            valid = valid.filled(0)
        valid = _as_tensor(valid, "prepare_source valid")
        if valid.is_complex():
            raise Gen3cInputError(complex_refusal("prepare_source valid", valid.dtype))
        valid = valid.to(image.device).bool()
        if tuple(valid.shape) != size:
            raise Gen3cInputError(f"prepare_source valid is {tuple(valid.shape)} but the image is {size}: pass an (H, W) mask")
    # As a depth file is read (a no-op for depth that was: its invalid pixels are already 0 and
    # not valid); NaN must not reach the bilinear resize, which would spread it to its neighbours.
    # Depth filled already holds NaN's fill (1e4): counted again, it would be noted as depth ≥ 1e4.
    tally = None if note_invalid_depth else InvalidDepthTally()
    depth, valid = fill_invalid_depth(depth, "prepare_source depth", mask=valid, tally=tally, mask_name="prepare_source valid")
    # GEN3C resizes depth bilinearly; the edge filter later drops the in-between points.
    stacked = torch.cat([image.float(), depth[None].float(), valid[None].float()])
    resized = resize_image(stacked, resolution, resize_mode)
    # Validity is resized without blending: a pixel stays valid only if fully valid.
    new_valid = resized[4] > 0.999
    new_K = (resize_intrinsics if resize_mode == "stretch" else resize_crop_intrinsics)(K.float(), size, resolution)
    return SourceView(
        image=resized[:3].clamp(-1, 1),
        depth=torch.where(new_valid, resized[3], torch.zeros_like(resized[3])),
        K=new_K,
        w2c=(torch.eye(4) if w2c is None else w2c).float(),
        valid=new_valid,
        depth_kind=depth_kind,
    )


def source_image(image: Tensor | np.ndarray | PIL.Image.Image, name: str, note_unit_range: bool = True) -> Tensor:
    """:func:`prepare_source`'s image check and conversion, for any API that takes an image in
    memory (:func:`gen3c.pipelines.request.generate` too): → (3, h, w) float32 in [−1, 1]
    (:func:`gen3c.io.images.as_image`); a float tensor with no value below 0 is noted as likely [0, 1].
    An image file's size limits apply (:func:`gen3c.io.images.check_image_size`), checked from
    the image's shape before it is converted (:func:`gen3c.io.images.stated_size`).

    Raises:
        Gen3cInputError: another type, shape, size or range, in one line naming ``name``.
    """
    from gen3c.io.images import as_image, check_image_size, stated_size
    from gen3c.io.images import note_unit_range as note_if_unit_range

    size = stated_size(image)
    if size is not None:  # else as_image refuses it
        check_image_size(*size, name)
    float_tensor = note_unit_range and isinstance(image, Tensor) and image.dtype.is_floating_point
    image = as_image(image, name)
    if float_tensor:
        note_if_unit_range(image, name, stacklevel=3)
    return image


def source_depth(depth: Tensor | np.ndarray, size: tuple[int, int], name: str) -> Tensor:
    """:func:`prepare_source`'s depth check: an (h, w) tensor or array of real numbers matching the
    image's ``size`` → a tensor (its dtype kept; values are checked later, as a depth file's are).
    Sides of 1 are dropped, as ``gen3c.generate(depth=)`` and a depth file drop them: a depth
    model's (1, h, w) or (1, 1, h, w) output is the (h, w) map.

    Raises:
        Gen3cInputError: another type, shape or dtype, in one line naming ``name``.
    """
    from gen3c.io.depth import masked_as_nan

    if isinstance(depth, np.ndarray) and depth.dtype.kind in "fiu":  # a masked array's masked pixels: invalid, as NaN
        depth = masked_as_nan(depth)
    depth = _as_tensor(depth, name)
    if tuple(depth.shape) != tuple(size) and [n for n in depth.shape if n != 1] == [n for n in size if n != 1]:
        depth = depth.reshape(size)  # was refused here, where gen3c.generate() took the same array
    if tuple(depth.shape) != tuple(size):
        raise Gen3cInputError(f"{name} is {tuple(depth.shape)} but the image is {tuple(size)}: pass the (H, W) depth of this image")
    if depth.is_complex():
        raise Gen3cInputError(complex_refusal(name, depth.dtype))
    if depth.dtype == torch.bool:
        raise Gen3cInputError(f"{name} holds bool values: depth must be a numeric array")
    return depth


def _camera_matrix(value, name: str) -> Tensor:
    """A camera matrix (K, w2c) as a float32 tensor; a masked array with masked entries
    (:func:`gen3c.cameras.check_unmasked`) and complex values (whose imaginary part ``.float()``
    drops) refused in one line naming ``name``."""
    check_unmasked(value, name)
    matrix = _as_tensor(value, name)
    if matrix.is_complex():
        raise Gen3cInputError(complex_refusal(name, matrix.dtype))
    return matrix.float()


def _is_positive_int(value: object) -> bool:
    return is_whole_number(value) and value > 0


def _as_tensor(value, name: str) -> Tensor:
    """A tensor, numpy array or nested list as a tensor; anything else (and a meta tensor, which
    holds no values: torch's "Cannot copy out of meta tensor" or "Tensor.item() cannot be called on
    meta tensors" further on) is refused in one line."""
    if isinstance(value, Tensor):
        if value.is_meta:
            raise Gen3cInputError(meta_refusal(name))
        return value
    if isinstance(value, (np.ndarray, list, tuple)):
        try:
            array = np.asarray(value)
        except ValueError:  # numpy refuses a ragged nested list
            raise Gen3cInputError(f"{name} is {describe_value(value)} whose rows differ in length: pass a tensor or a numpy array") from None
        if array.dtype.kind not in "biufc":  # objects, strings, dates: no numbers for torch
            raise Gen3cInputError(f"{name} holds {array.dtype} values: pass numbers")
        try:
            return torch.as_tensor(array)
        except (TypeError, ValueError):
            pass
        # torch takes neither negative strides (a flipped view) nor another byte order nor long
        # double: a native copy is the same numbers (long double's beyond float64 become ±inf)
        long = array.dtype.kind in "fc" and array.dtype.itemsize > (8 if array.dtype.kind == "f" else 16)
        native = {"f": np.float64, "c": np.complex128}[array.dtype.kind] if long else array.dtype.newbyteorder("=")
        with np.errstate(over="ignore"):
            return torch.as_tensor(np.ascontiguousarray(array, dtype=native))
    raise Gen3cInputError(f"{name} is {describe_value(value)}: pass a tensor or a numpy array")


def build_cache(
    views: list[SourceView],
    filter_points_threshold: float = 0.05,
    foreground_masking: bool = False,
    splat: str = "bilinear",
    max_buffers: int = 2,
    check_conventions: bool = True,
) -> Cache3D:
    """A :class:`Cache3D` holding ``views`` (the last one ends up as buffer 0, newest first).

    Views of one size with depth are checked against each other's poses, as a multi-view file's
    key views are (:func:`gen3c.io.conventions.check_depth_conventions`): camera-to-world poses
    given as ``prepare_source(w2c=…)``, or disparity as depth, are refused in one line. Each
    view's depth may have a scale of its own (estimated photo by photo): only its shape is compared.
    ``check_conventions=False`` skips it, for views read from files that were checked there.
    """
    if not isinstance(views, (list, tuple)) or not all(isinstance(v, SourceView) for v in views):
        raise Gen3cInputError(f"build_cache takes a list of SourceView (prepare_source), got {describe_value(views)}: pass [source]")
    if check_conventions and len(views) > 1 and len({v.size for v in views}) == 1:
        _check_view_conventions(views)
    cache = Cache3D(max_buffers, filter_points_threshold, foreground_masking, splat)
    for view in views:
        cache.add_view(view.image, view.depth, view.K, view.w2c, view.valid)
    return cache


def _check_view_conventions(views: list[SourceView] | tuple[SourceView, ...]) -> None:
    """:func:`build_cache`'s check of several views of one size: their depth carried into one
    another with their poses, as given and inverted (a camera-to-world pose passed as
    ``prepare_source(w2c=c2w)`` built a cache of points in no camera's frame without a word)."""
    from gen3c.io.conventions import check_depth_conventions
    from gen3c.io.frames import images_to_uint8

    depth = torch.stack([v.depth.float().cpu() for v in views])
    valid = torch.stack([(v.depth > 0 if v.valid is None else v.valid).cpu() for v in views])
    check_depth_conventions(
        depth, valid, torch.stack([v.K.float().cpu() for v in views]), torch.stack([v.w2c.float().cpu() for v in views]),
        poses_name="build_cache views' poses (prepare_source w2c=)", depth_name="build_cache views' depth",
        poses_fix="pass each view's world-to-camera pose: invert_pose(c2w), or opengl_to_opencv(c2w) for an OpenGL / nerfstudio one",
        depth_fix="pass z-depth (1 / disparity, in the poses' units) to prepare_source",
        images=images_to_uint8(torch.stack([v.image.cpu() for v in views])),
        # Each view's depth at its own scale (an estimator's per photo): 10 % more depth in one view
        # read as the other camera moved back, and correct poses were refused as camera-to-world.
        per_frame_scale=True,
    )  # fmt: skip


def preset_cameras(
    source: SourceView,
    trajectory: str,
    camera_rotation: str,
    num_frames: int,
    movement_distance: float = 0.3,
    trajectory_scale: str = "auto",
) -> Cameras:
    """GEN3C's preset trajectory relative to ``source`` (see :mod:`gen3c.trajectories`).

    Args:
        trajectory: one of :data:`gen3c.trajectories.PRESETS` ("left", "right", "up", "down",
            "zoom_in", "zoom_out", "clockwise", "counterclockwise").
        camera_rotation: one of :data:`gen3c.trajectories.ROTATION_MODES`.
        num_frames: T.
        movement_distance, trajectory_scale: how far, and in which unit
            (:func:`gen3c.trajectories.center_depth_for`).
    Returns:
        :class:`~gen3c.cameras.Cameras`: T OpenCV world-to-camera poses (frame 0 is the source
        camera) with the source's intrinsics, in pixels of its working size. For a path of your
        own, build ``Cameras(w2c, source.K, *source.size)`` from (T, 4, 4) world-to-camera poses.
    """
    from gen3c.pipelines.spelling import keyword_spelling

    with spelled(keyword_spelling):  # its refusals name its keyword arguments (movement_distance=), not the flags
        return _preset_cameras(source, trajectory, camera_rotation, num_frames, movement_distance, trajectory_scale)


def _preset_cameras(
    source: SourceView, trajectory: str, camera_rotation: str, num_frames: int, movement_distance: float, trajectory_scale: str
) -> Cameras:
    """:func:`preset_cameras`, its refusals and notes worded for the command line (its route's)."""
    if not isinstance(source, SourceView):
        raise Gen3cInputError(f"preset_cameras takes the SourceView of prepare_source, got {describe_value(source)}")
    center = _center_depth_for(trajectory_scale, source.median_depth(), source.depth_kind)
    H, W = source.size
    return _preset_trajectory(trajectory, camera_rotation, num_frames, source.w2c, source.K, H, W, movement_distance, center)


def resolve_chunk_frames(num_frames: int, generator: object, requested: int | None = None) -> int | None:
    """Frames per chunk: the generator's fixed chunk (GEN3C: 121), else ``requested``, else 121
    when the count is GEN3C's ``120·N + 1`` with N ≥ 2, else None (one chunk)."""
    fixed = getattr(generator, "chunk_frames", None)
    if fixed is not None:
        if requested is not None and requested != fixed:
            raise Gen3cInputError(f"--chunk_frames {requested}: the {generator.name} generator makes {fixed} frames per chunk; leave it out")
        return fixed
    if requested is not None:
        if not is_whole_number(requested):
            raise Gen3cInputError(f"chunk_frames is {describe_value(requested)}: pass a whole number of frames, 2 or more")
        requested = int(requested)
        if requested < 2:
            raise Gen3cInputError(f"--chunk_frames {requested} is too small: chunks overlap by one frame, so pass 2 or more")
        return requested
    chunk = GEN3C_CHUNK_FRAMES
    return chunk if num_frames > chunk and (num_frames - 1) % (chunk - 1) == 0 else None


def check_num_frames(num_frames: int, generator: object, chunk_frames: int | None = None, setting: str = "--num_video_frames") -> None:
    """Frame counts every generator accepts, then the generator's own rules: a generator with a
    fixed ``chunk_frames`` (GEN3C: 121) makes ``(chunk_frames − 1)·N + 1`` frames; its
    ``check_num_frames`` sees each chunk's length. ``setting``: what the caller's user gave the
    count as (``--num_video_frames``; :func:`generate_video`: ``len(cameras) ==``)."""
    if not 1 <= num_frames <= MAX_FRAMES:
        raise Gen3cInputError(f"{setting} {num_frames} is impossible: pass a count between 1 and {MAX_FRAMES}")
    fixed = getattr(generator, "chunk_frames", None)
    if fixed is not None:
        check_chunked_frame_count(num_frames, fixed, f"the {getattr(generator, 'name', 'chosen')} generator", setting=setting)
    check = getattr(generator, "check_num_frames", None)
    if check is not None:
        for length in sorted({stop - start for start, stop in plan_chunks(num_frames, chunk_frames or fixed)}):
            check(length)


@dataclass
class VideoResult:
    """What a run made.

    Attributes:
        cameras: the T cameras of the video.
        frames: (T, 3, H, W) in [−1, 1] when kept (see :func:`generate_video`), else None.
        buffers: the buffer renders that conditioned them (chunk 0, then each later chunk without
            its first frame, padded with empty buffers to the most any chunk had), when kept.
        num_frames: T.
        chunks: ``(start, stop)`` of each chunk.
        last_frame: (3, H, W), the video's last frame.
        plan: the :class:`~gen3c.pipelines.autoregressive.CachePlan` the run rendered from, as the
            run left it: a growing cache holds the generated frames it took between chunks (in
            its own copy of the views, :func:`default_plan`). ``plan.point_cloud()`` is the point
            cloud ``gen3c generate --save_point_cloud`` writes, and :func:`save_outputs`'s.
    """

    frames: Tensor | None
    buffers: BufferRenders | None
    cameras: Cameras
    num_frames: int = 0
    chunks: list[tuple[int, int]] = field(default_factory=list)
    last_frame: Tensor | None = None
    plan: CachePlan | None = field(default=None, repr=False)

    __repr__ = dataclass_repr

    def __post_init__(self) -> None:
        if not self.num_frames and self.frames is not None:
            self.num_frames = len(self.frames)


class FrameSink(Protocol):
    def write(self, frames: Tensor, buffers: BufferRenders) -> None: ...


def default_plan(cache: Cache3D) -> CachePlan:
    """How a cache handed to :func:`generate_video` changes between chunks: a cache of static
    views grows with the generated frames (GEN3C's single-image mode), in a copy of its list of
    views (the views are shared, not copied): the caller's cache stays as built, so the next path
    rendered from it starts from the source alone, not from this run's frames; a 4D or selecting
    cache stays as it is."""
    from gen3c.cache import SelectingCache3D

    if isinstance(cache, SelectingCache3D) or any(view.num_frames > 1 for view in cache.views):
        return FixedCache(cache)
    grown = copy.copy(cache)
    grown.views = list(cache.views)
    return GrowingCache(grown)


def takes_chunk_keyword(generator: VideoGenerator) -> bool:
    """Whether ``generator.generate`` takes ``chunk`` (by name or ``**kwargs``): a generator
    written before the keyword existed is called without it."""
    try:
        params = inspect.signature(generator.generate).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): give it the protocol's
        return True
    return any(p.name == "chunk" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def generate_video(
    cache: Cache3D | CachePlan,
    cameras: Cameras,
    generator: VideoGenerator,
    first_frame: Tensor | None = None,
    progress: ProgressFactory | None = None,
    *,
    chunk_frames: int | None = None,
    sink: FrameSink | None = None,
    keep: bool | None = None,
    start_chunk: int = 0,
    on_chunk: Callable[[int, Tensor], None] | None = None,
) -> VideoResult:
    """Render the cache along ``cameras`` and let ``generator`` make the video, chunk by chunk.

    Each chunk: 1. the plan's cache for the chunk (between chunks a growing cache takes the last
    generated frame), 2. render its buffers, 3. generate, conditioned on ``first_frame`` for the
    first chunk and on the previous chunk's last frame (as the video holds it, :func:`as_saved`)
    after that, told the chunk's index (``chunk=k``: the gen3c model's chunk k starts from its
    seed's (k+1)-th noise draw, so a resumed run, told k too, makes the same chunk), 4. hand the
    new frames and their buffers to ``sink`` (chunk 0 whole, later chunks without their first
    frame, which repeats the previous chunk's last one), 5. drop the chunk's buffers.

    Args:
        cache: a :class:`~gen3c.cache.Cache3D` (see :func:`default_plan`) or a
            :class:`~gen3c.pipelines.autoregressive.CachePlan`.
        first_frame: (3, H, W) in [−1, 1], the image the first frame is conditioned on.
        progress: a :data:`~gen3c.progress.ProgressFactory` for the stages' bars
            (:func:`~gen3c.progress.progress_bars` draws ``gen3c generate``'s); None draws nothing.
        chunk_frames: frames per chunk; see :func:`resolve_chunk_frames` for the default.
        sink: receives ``write(frames, buffers)`` as chunks finish, e.g. an :class:`OutputWriter`.
        keep: keep every frame and buffer in the result (default: only without a sink). A kept
            long video costs memory in proportion to its length; a sink keeps memory flat.
        start_chunk: skip the chunks before this one (a resumed run, :mod:`gen3c.pipelines.resume`):
            ``first_frame`` is then the previous chunk's last frame and the plan holds the cache
            state that chunk left; the result keeps the new chunks only (None when all were made).
        on_chunk: called as ``on_chunk(k, last_frame)`` after chunk k went to the sink.
    """
    _check_video_inputs(cache, cameras, generator, first_frame)
    check_progress_factory(progress)
    T = len(cameras)
    try:
        chunk = resolve_chunk_frames(T, generator, chunk_frames)
        check_num_frames(T, generator, chunk, setting="len(cameras) ==")
    except Gen3cInputError as exc:  # worded for the command line's flags: in this call's keywords (chunk_frames=)
        from gen3c.pipelines.spelling import keyword_spelling

        exc.args = (keyword_spelling(str(exc)),)
        raise
    plan = default_plan(cache) if isinstance(cache, Cache3D) else cache
    chunks = plan_chunks(T, chunk)
    if not is_whole_number(start_chunk) or not 0 <= start_chunk <= len(chunks):
        raise Gen3cInputError(
            f"start_chunk {shown_value(start_chunk)} does not fit a run of {len(chunks)} chunk{'s' if len(chunks) > 1 else ''}: pass the "
            f"index of the first chunk to make, 0 to {len(chunks) - 1} ({len(chunks)}: all are made)"
        )
    keep = sink is None if keep is None else keep
    num_buffers = plan.buffers_for(len(chunks))
    kept_frames: list[Tensor] = []
    kept_buffers: list[BufferRenders] = []
    condition = first_frame
    takes_chunk = takes_chunk_keyword(generator)
    for k, (start, stop) in enumerate(chunks):
        if k < start_chunk:
            continue
        label = f"Chunk {k + 1}/{len(chunks)}: " if len(chunks) > 1 else ""
        cams = cameras[start:stop]
        chunk_cache, offset = plan.cache_for_chunk(k, start, cams, condition if k else None, progress, label)
        stage = _stage_names(label, generator)
        output_device = getattr(generator, "render_output_device", None)
        check_memory = getattr(generator, "check_memory", None)
        if check_memory is not None and chunk_cache.views:  # (an empty cache is refused by its render, in its words)
            check_memory(cams, num_buffers, chunk_cache.views[0].points.device if output_device is None else output_device)
        buffers = chunk_cache.render(
            cams,
            frame_offset=offset,
            progress=progress(stage[0], len(cams)) if progress else None,
            depth=getattr(generator, "needs_buffer_depth", True),
            device=getattr(generator, "render_device", None),
            output_device=output_device,
        )
        note_unseen_frames(buffers.masks, start, T, skip_first=k > 0)
        told = {"chunk": k} if takes_chunk else {}
        frames = generator.generate(
            chunk_cache, cams, condition, buffers=buffers, progress=progress(stage[1], len(cams)) if progress else None, **told
        )
        _check_frames(frames, cams, generator, label)
        new = slice(0 if k == 0 else 1, None)
        fresh, fresh_buffers = frames[new], _slice_buffers(buffers, new)
        if sink is not None:
            sink.write(fresh, fresh_buffers)
        if keep:
            kept_frames.append(fresh.detach().cpu())
            kept_buffers.append(pad_buffers(_slice_buffers(buffers, new, cpu=True), num_buffers))
        condition = as_saved(frames[-1])
        if on_chunk is not None:
            on_chunk(k, condition)
        del buffers, frames, fresh, fresh_buffers, chunk_cache
    return VideoResult(
        frames=_cat(kept_frames) if keep and kept_frames else None,
        buffers=_cat_buffers(kept_buffers) if keep and kept_frames else None,
        cameras=cameras,
        num_frames=T,
        chunks=chunks,
        last_frame=condition,
        plan=plan,
    )


#: The share of a frame's pixels that the 3D cache must reach in at least one buffer for the frame
#: to count as seeing it (a few stray splats of a far-off cache are no guide to the model).
UNSEEN_SHARE = 1e-3


def note_unseen_frames(masks: Tensor, start: int, num_frames: int, skip_first: bool = False) -> None:
    """Note the frames whose buffer masks (``masks``: (T, NB, 1, H, W), a chunk's renders, its
    first frame frame ``start`` of ``num_frames``) reach under :data:`UNSEEN_SHARE` of their
    pixels in every buffer: the model invents them from nothing (a camera path far too long for
    the cache's scale, or turned away from the scene). One note, naming the frames; ``skip_first``
    leaves out a later chunk's first frame (the previous chunk's last, noted with it). Silent where
    the render already said that no camera sees the cache (:meth:`gen3c.cache.Cache3D.render_views`,
    which is silent after this note in a run) and where the preset path's note said it turns the
    camera round (:data:`gen3c.trajectories.TURNED_ROUND`) or a camera file's that its poses are in
    the other axes (:data:`gen3c.cache.OTHER_AXES`)."""
    if masks.numel() == 0 or noted(TURNED_ROUND) or noted(OTHER_AXES):
        return
    if not bool(masks.any()) and not noted(UNSEEN_FRAMES):  # the render said that no camera sees the cache
        return
    T, _, _, H, W = masks.shape
    seen = masks.sum(dim=(2, 3, 4)).amax(dim=1).tolist()  # pixels of the best buffer, per frame (one small copy)
    first = 1 if skip_first else 0
    unseen = [start + i for i in range(first, T) if seen[i] < UNSEEN_SHARE * H * W]
    if not unseen:
        return
    runs: list[list[int]] = []
    for i in unseen:
        if runs and runs[-1][1] == i - 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    shown = ", ".join(f"{a}" if a == b else f"{a}…{b}" for a, b in runs[:4]) + (", …" if len(runs) > 4 else "")
    one = len(unseen) == 1
    note(
        f"{'frame' if one else 'frames'} {shown} of {num_frames} {'sees' if one else 'see'} {UNSEEN_FRAMES} (under {UNSEEN_SHARE:.1%} of "
        f"{'its' if one else 'their'} pixels): the model fills {'it' if one else 'them'} from nothing; check the camera path's scale "
        "(--movement_distance; a camera file's translations are in the depth's units, metres for metric depth) and that it faces the scene",
        stacklevel=3,
    )


def as_saved(frame: Tensor) -> Tensor:
    """``frame`` (3, H, W) in [−1, 1] as the video holds it: through uint8 and back, on its device.
    The next chunk is conditioned on this (and a growing cache takes it), as GEN3C's scripts take
    the uint8 video's ``video[-1]`` (``gen3c_single_image.py``, ``gen3c_dynamic.py``)."""
    saved = torch.from_numpy(to_uint8(frame)).permute(2, 0, 1).to(frame.device)
    return saved.float() / 255.0 * 2 - 1


def _check_video_inputs(cache: object, cameras: object, generator: object, first_frame: object) -> None:
    """:func:`generate_video`'s arguments checked up front, each mistake in one line."""
    if not isinstance(cache, Cache3D) and not callable(getattr(cache, "cache_for_chunk", None)):
        raise Gen3cInputError(f"cache is {describe_value(cache)}: pass a gen3c.cache.Cache3D (build_cache) or a CachePlan")
    if not isinstance(cameras, Cameras):
        raise Gen3cInputError(f"cameras is {describe_value(cameras)}: pass gen3c.cameras.Cameras (preset_cameras, load_camera_file)")
    if isinstance(generator, type) or not callable(getattr(generator, "generate", None)):
        what = f"the class {generator.__name__}, not an instance" if isinstance(generator, type) else describe_value(generator)
        raise Gen3cInputError(f"generator is {what}: pass an object with generate(), e.g. PreviewGenerator()")
    if first_frame is not None:
        check_first_frame(first_frame, cameras.height, cameras.width)


def check_first_frame(first_frame: object, height: int, width: int) -> None:
    """A first frame for cameras of ``height`` × ``width``: a (3, H, W) float tensor in [−1, 1]
    (:func:`generate_video`'s and a generator's ``generate()``'s ``first_frame``), else one line
    naming it."""
    size = (height, width)
    if not isinstance(first_frame, Tensor):  # (an array of the right shape was "… but the cameras make 64×112 frames")
        raise Gen3cInputError(
            f"first_frame is {describe_value(first_frame)}, not a tensor: pass a (3, {size[0]}, {size[1]}) tensor in [-1, 1] "
            "(the prepared source's image)"
        )
    if tuple(first_frame.shape) != (3, *size):
        raise Gen3cInputError(
            f"first_frame is {tuple(first_frame.shape)} but the cameras make {size[0]}×{size[1]} frames: pass a (3, {size[0]}, {size[1]}) "
            "tensor in [-1, 1] (the prepared source's image)"
        )
    if first_frame.is_meta:  # (was torch's "Tensor.item() cannot be called on meta tensors")
        raise Gen3cInputError(meta_refusal("first_frame"))
    # Checked here, not by each generator: the preview shows it in frame 0's holes as it is.
    lo, hi = (float(v) for v in torch.aminmax(first_frame.float())) if first_frame.numel() else (0.0, 0.0)
    if not first_frame.dtype.is_floating_point or not (-1 - 1e-3 <= lo and hi <= 1 + 1e-3):  # (NaN fails too)
        raise Gen3cInputError(
            f"first_frame holds {str(first_frame.dtype).removeprefix('torch.')} values in [{lo:.4g}, {hi:.4g}]: pass floats in [-1, 1] "
            "(the prepared source's image; a uint8 image as image / 127.5 - 1)"
        )


def _check_frames(frames: object, cameras: Cameras, generator: object, label: str = "") -> None:
    """A generator's frames for a chunk: one per camera, at the cameras' size (else the video
    and its cameras file would disagree, and the next chunk would start from the wrong frame),
    and finite (NaN would be written as black pixels, and condition the next chunk)."""
    expected = (len(cameras), 3, cameras.height, cameras.width)
    name = getattr(generator, "name", type(generator).__name__)
    if not isinstance(frames, Tensor) or tuple(frames.shape) != expected:
        got = tuple(frames.shape) if isinstance(frames, Tensor) else describe_value(frames)
        raise Gen3cInputError(
            f"the {name} generator returned {got} for {len(cameras)} cameras: its generate() must return one frame per camera, "
            f"a {expected} tensor in [-1, 1]"
        )
    # NaN and ±inf show in the extremes, which a reduction finds without the whole-chunk float
    # copy and masks torch.isfinite makes (more memory than the frames themselves).
    if frames.is_floating_point() and not all(map(math.isfinite, torch.aminmax(frames))):
        transformer = getattr(getattr(generator, "pipeline", None), "transformer", None)
        cause = (
            "a model computing in float16 can overflow (--dtype bfloat16 has float32's range)"
            if getattr(transformer, "dtype", None) == torch.float16
            else "its generate() must return finite frames in [-1, 1] (check the buffers and first frame it was given)"
        )
        raise Gen3cInputError(f"{label}the {name} generator returned NaN or infinite values, which the video would show as black: {cause}")


def _stage_names(label: str, generator: object) -> tuple[str, str]:
    name = getattr(generator, "name", "generator")
    if label:
        return f"{label}rendering 3D cache", f"{label}generating ({name})"
    return "Rendering 3D cache", f"Generating ({name})"


def run_fraction(stage: str, done: int, total: int) -> float | None:
    """How much of a run's video the progress stage ``stage`` (as :func:`generate_camera_video`
    names them), ``done`` of its ``total`` steps in, has generated, from 0 to 1: a run of N chunks
    ("Chunk k/N: …") is N equal parts, each made as its generating stage advances. None for any
    other stage (loading a model, rendering the cache, adding a frame to it): the video's share
    stays where it was, since generating is nearly all of a run's time."""
    chunk = re.match(r"Chunk (\d+)/(\d+): ", stage)
    index, count = (int(chunk[1]) - 1, int(chunk[2])) if chunk else (0, 1)
    if not stage[chunk.end() if chunk else 0 :].lower().startswith("generating (") or total <= 0 or count <= 0:
        return None
    return min(1.0, (index + min(done, total) / total) / count)


def _slice_buffers(b: BufferRenders, index: slice, cpu: bool = False) -> BufferRenders:
    def move(t: Tensor | None) -> Tensor | None:
        if t is None:
            return None
        return t[index].detach().cpu() if cpu else t[index]

    return BufferRenders(move(b.colors), move(b.masks), move(b.depths), b.views)


def pad_buffers(b: BufferRenders, num_buffers: int) -> BufferRenders:
    """``b`` with empty buffers (colour −1, mask 0, depth 0) appended up to ``num_buffers``."""
    extra = num_buffers - b.num_buffers
    if extra <= 0:
        return b
    T, _, _, H, W = b.colors.shape

    def pad(t: Tensor | None, value: float) -> Tensor | None:
        if t is None:
            return None
        return torch.cat([t, torch.full((T, extra, t.shape[2], H, W), value, dtype=t.dtype, device=t.device)], dim=1)

    return BufferRenders(pad(b.colors, -1.0), pad(b.masks, 0.0), pad(b.depths, 0.0), b.views)


def _cat(tensors: list[Tensor]) -> Tensor:
    """The chunks' tensors joined along time, contiguous; one chunk's as it is when it is (each
    chunk's are its own: copying a 121-frame 352×640 video and its two buffers moves ~1 GB)."""
    return tensors[0].contiguous() if len(tensors) == 1 else torch.cat(tensors)


def _cat_buffers(items: list[BufferRenders]) -> BufferRenders:
    depths = None if any(b.depths is None for b in items) else _cat([b.depths for b in items])
    return BufferRenders(_cat([b.colors for b in items]), _cat([b.masks for b in items]), depths, items[0].views)


def buffer_panel(frames: Tensor, buffers: BufferRenders, num_buffers: int | None = None) -> Tensor:
    """GEN3C's ``--save_buffer`` layout: each buffer's render side by side, left of the
    generated frame, empty buffers padded black up to ``num_buffers``. Returns (T, 3, H, W·(1 + NB))."""
    b = pad_buffers(buffers, num_buffers or buffers.num_buffers)
    panels = [b.colors[:, i] for i in range(b.num_buffers)]
    return torch.cat([*panels, frames.to(b.colors.device)], dim=-1)


def mask_panel(buffers: BufferRenders, num_buffers: int | None = None) -> Tensor:
    """Each buffer's validity mask side by side (white = seen by the cache): (T, 3, H, W·NB)."""
    b = pad_buffers(buffers, num_buffers or buffers.num_buffers)
    return torch.cat([(b.masks[:, i] * 2 - 1).expand(-1, 3, -1, -1) for i in range(b.num_buffers)], dim=-1)


#: How to get past an output name taken by a folder.
OTHER_NAME = "pass another --video_save_name or --video_save_folder"

#: The files of a run named NAME, by key (what :class:`OutputWriter` may write).
OUTPUT_FILES = {
    "video": "{}.mp4",
    "buffer_masks": "{}_buffer_masks.mp4",
    "cameras": "{}_cameras.json",
    "point_cloud": "{}.ply",
    "run": "{}_run.json",
}


def check_output_files(folder: str | Path, name: str, *, save_buffer: bool, point_cloud: bool) -> None:
    """Refuse a run named ``name`` where a file it writes into ``folder`` (:data:`OUTPUT_FILES`: its
    buffer masks with ``save_buffer``, its point cloud with ``point_cloud``) is a folder there
    (:func:`~gen3c.io.atomic.check_output_targets`), or where ``folder`` holds one of them, or a
    long run's kept chunks' folder ``NAME.partial``, under another spelling that this file system
    takes for the same name (macOS and Windows: ``Demo.mp4`` for ``demo.mp4``), which the run would
    replace (:func:`~gen3c.io.atomic.check_output_spelling`)."""
    from gen3c.pipelines.resume import partial_dir

    files = output_files(folder, name, save_buffer=save_buffer, point_cloud=point_cloud)
    check_output_targets(files, OTHER_NAME)
    check_output_spelling([*files, partial_dir(folder, name)], OTHER_NAME)


def output_files(folder: str | Path, name: str, *, save_buffer: bool, point_cloud: bool) -> list[Path]:
    """The files a run named ``name`` writes into ``folder`` (:data:`OUTPUT_FILES`: its buffer
    masks with ``save_buffer``, its point cloud with ``point_cloud``)."""
    keys = ["video", "cameras", "run", *(["buffer_masks"] if save_buffer else []), *(["point_cloud"] if point_cloud else [])]
    return [Path(folder) / OUTPUT_FILES[key].format(name) for key in keys]


def earlier_outputs(folder: str | Path, name: str) -> set[str]:
    """The keys of :data:`OUTPUT_FILES` that an earlier run named ``name`` wrote into ``folder``,
    as its ``NAME_run.json`` lists them (``outputs``); a record from before gen3c listed them
    tells by its ``save_buffer`` / ``save_point_cloud``. Empty without a readable record: only
    what gen3c recorded as its own output is ever replaced."""
    path = Path(folder) / OUTPUT_FILES["run"].format(name)
    try:
        record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() and path.stat().st_size < 1 << 20 else None
    except (OSError, ValueError):
        return set()
    if not isinstance(record, dict):
        return set()
    listed = record.get("outputs")
    if isinstance(listed, dict):
        return {key for key, file in listed.items() if key in OUTPUT_FILES and _one_name(file, OUTPUT_FILES[key].format(name))}
    if not _one_name(record.get("video_save_name"), name) or not isinstance(record.get("save_buffer"), bool):
        return set()
    return {"video", "cameras", "run"} | {key for key, flag in (("buffer_masks", "save_buffer"), ("point_cloud", "save_point_cloud"))
                                        if record.get(flag) is True}  # fmt: skip


def _one_name(recorded: object, name: str) -> bool:
    """Whether a run record's ``recorded`` name is ``name``, in the same Unicode form or another
    (café with é as one character, or as e and a combining accent): one name, which macOS's file
    systems find under either, and which a run replaces (:func:`~gen3c.io.atomic.check_output_spelling`)."""
    return isinstance(recorded, str) and one_form(recorded) == one_form(name)


class OutputWriter:
    """Writes a run's files into ``folder`` while it runs, so memory stays flat however long the
    video is. The files are written under temporary names and appear together, as one set, when
    the with-block ends without an error (on an error nothing is left).

    Files: ``{name}.mp4`` (with ``save_buffer``: GEN3C's widened layout, the buffer renders left
    of the generated frame), with ``save_buffer`` also ``{name}_buffer_masks.mp4``; then from
    :meth:`finish` ``{name}_cameras.json`` (loads back with ``--camera_file``), ``{name}.ply``
    (a point cloud, when given) and ``{name}_run.json`` (the settings, when given, and the files
    written). The set replaces an earlier run's of the same name: the earlier files this run does
    not write (its buffer masks, say, when this run has no ``save_buffer``) are removed, so none is
    left beside a video it does not belong to (:func:`earlier_outputs`). The temporary files of
    this name that a run killed outright left (kill -9, the out-of-memory killer) are removed as
    the writer starts (:func:`~gen3c.io.atomic.remove_abandoned_parts`)::

        with OutputWriter("outputs", "my_video", save_buffer=True, num_buffers=2) as out:
            result = generate_video(cache, cameras, generator, first_frame, sink=out)
            paths = out.finish(cameras)
    """

    def __init__(
        self,
        folder: str | Path,
        name: str,
        *,
        save_buffer: bool = False,
        num_buffers: int = 1,
        fps: float = DEFAULT_FPS,
        point_cloud: bool = False,
    ) -> None:
        """``point_cloud``: :meth:`finish` will be given one (its file name is checked now, with
        the others, before any frame is made). A leading ``~`` in ``folder`` is the home folder."""
        check_video_name(name, "video_save_name")
        self.folder = ensure_writable_dir(writer_path(folder, "OutputWriter folder", "the outputs"))
        self.name = name
        self.save_buffer = save_buffer
        self.num_buffers = num_buffers
        self.fps = fps
        self.paths: dict[str, Path] = {"video": self._path("video")}
        if save_buffer:
            self.paths["buffer_masks"] = self._path("buffer_masks")
        # Refused before any frame is made (and :meth:`finish` checks before writing any).
        check_output_files(self.folder, name, save_buffer=save_buffer, point_cloud=point_cloud)
        self.frames_written = 0
        self._stack: contextlib.ExitStack | None = None
        self._written: dict[str, Path] | None = None
        self._companion_tmp: dict[str, Path] = {}

    def _path(self, key: str) -> Path:
        return self.folder / OUTPUT_FILES[key].format(self.name)

    def __enter__(self) -> OutputWriter:
        # (a run of this name killed with kill -9 or by the out-of-memory killer left its files half-written)
        remove_abandoned_parts(self.folder, [pattern.format(self.name) for pattern in OUTPUT_FILES.values()])
        self._stack = contextlib.ExitStack()
        self._video = self._stack.enter_context(VideoWriter(self.paths["video"], self.fps))
        self._masks = self._stack.enter_context(VideoWriter(self.paths["buffer_masks"], self.fps)) if self.save_buffer else None
        return self

    def write(self, frames: Tensor, buffers: BufferRenders) -> None:
        """Append frames (T, 3, H, W) in [−1, 1] and the buffers that conditioned them."""
        self.write_arrays(self.panels(frames, buffers))

    def panels(self, frames: Tensor, buffers: BufferRenders) -> dict[str, np.ndarray]:
        """What :meth:`write` appends to each video, by path key: (T, H, W', 3) uint8 arrays."""
        if self.save_buffer and buffers.num_buffers > self.num_buffers:
            if self.frames_written:  # the videos' width is set: said here, not as ffmpeg's size mismatch
                raise Gen3cInputError(
                    f"OutputWriter(num_buffers={self.num_buffers}) got a chunk of {buffers.num_buffers} buffers after narrower ones: "
                    "pass num_buffers=plan.buffers_for(number of chunks), the most any chunk renders, so --save_buffer's panel keeps one width"
                )
            self.num_buffers = buffers.num_buffers  # as wide as the first chunk's buffers
        video = buffer_panel(frames, buffers, self.num_buffers) if self.save_buffer else frames
        arrays = {"video": to_uint8(video)}
        if self.save_buffer:
            arrays["buffer_masks"] = to_uint8(mask_panel(buffers, self.num_buffers))
        return arrays

    def write_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Append :meth:`panels`' arrays (e.g. a resumed run's kept chunks)."""
        self._video.write(arrays["video"])
        if self._masks is not None:
            self._masks.write(arrays["buffer_masks"])
        self.frames_written += len(arrays["video"])

    def finish(
        self, cameras: Cameras, *, point_cloud: tuple[Tensor, Tensor] | None = None, metadata: dict | None = None
    ) -> dict[str, Path]:
        """Finish encoding the videos, then write the companion files (under temporary names,
        like the videos: an encoder that fails leaves no companions either); returns every
        output path. The files appear when the with-block ends."""
        if self._stack is None or self._written is not None:
            raise RuntimeError("OutputWriter.finish outside its with-block or twice")
        if isinstance(cameras, Cameras) and len(cameras) != self.frames_written:  # (save_cameras refuses other types)
            raise Gen3cInputError(
                f"OutputWriter.finish got {len(cameras)} cameras for a video of {self.frames_written} frames: pass the cameras "
                "the frames were made along (one per frame), so the cameras file matches the video"
            )
        self._finish_videos()
        companions = self._companions(point_cloud is not None, metadata is not None)
        check_output_targets(companions.values(), OTHER_NAME)
        paths = {**self.paths, **companions}
        tmp = self._companion_tmp = {key: self._stack.enter_context(atomic_path(path)) for key, path in companions.items()}
        try:
            save_cameras(tmp["cameras"], cameras, self.fps)
            if point_cloud is not None:
                write_ply(tmp["point_cloud"], *point_cloud)
            if metadata is not None:
                record = {**metadata, "outputs": {key: path.name for key, path in paths.items()}}
                tmp["run"].write_text(json.dumps(record, indent=1, default=json_default), encoding="utf-8")
        except OSError as exc:  # a full disk, say: one line (the with-block removes every temporary file)
            raise self._write_failure(exc) from None
        self._written = paths
        return paths

    def _write_failure(self, exc: OSError) -> BaseException:
        """The one-line refusal of outputs the system would not write (:func:`write_failure`), else ``exc``."""
        return write_failure(f"the outputs {self.name!r}", self.folder, exc) or exc

    def _finish_videos(self) -> None:
        for video in (self._video, self._masks):
            if video is not None:
                video.finish()

    def _companions(self, point_cloud: bool, metadata: bool) -> dict[str, Path]:
        paths = {"cameras": self._path("cameras")}
        if point_cloud:
            paths["point_cloud"] = self._path("point_cloud")
        if metadata:
            paths["run"] = self._path("run")
        return paths

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack = self._stack, None
        if exc_type is None:
            try:
                raise_if_interrupted()  # a Ctrl-C that Python dropped in a finalizer publishes nothing
                self._finish_videos()  # (without finish(): the videos alone)
                # Every file on the disk before the first rename: a flush the disk refuses (full,
                # a write error) publishes none of them, rather than the files renamed before it.
                flush_files([w._tmp for w in (self._video, self._masks) if w is not None] + list(self._companion_tmp.values()))
            except BaseException as failed:
                stack.__exit__(*sys.exc_info())  # removes every temporary file
                if isinstance(failed, OSError):
                    raise self._write_failure(failed) from None
                raise
        # The set as one unit: its files renamed into place one after the other and the earlier
        # run's files that this run did not write removed, with Ctrl-C held back for those few
        # moments: the folder holds the earlier set or this one, never a mix.
        with signals_deferred():
            earlier = earlier_outputs(self.folder, self.name) if exc_type is None else set()
            try:
                suppressed = stack.__exit__(exc_type, exc, tb)  # renames on success, removes on an error
            except OSError as failed:  # a flush the disk refused before a rename
                raise self._write_failure(failed) from None
            for key in earlier - set(self._written or self.paths):
                stale = self._path(key)
                if not stale.is_dir():
                    stale.unlink(missing_ok=True)
        return suppressed


def save_outputs(
    result: VideoResult,
    folder: str | Path,
    name: str,
    *,
    save_buffer: bool = False,
    cache: Cache3D | None = None,
    save_point_cloud: bool = False,
    fps: float = DEFAULT_FPS,
    metadata: dict | None = None,
) -> dict[str, Path]:
    """Write a kept result's video and companions (see :class:`OutputWriter`), atomically.

    ``save_point_cloud`` writes the cache the run rendered from as the run left it
    (``result.plan``): after a chunked run from a single image, the source and the generated
    frames the cache took, as ``gen3c generate --save_point_cloud`` writes. ``cache`` writes that
    cache's points instead, as the cache is: the cache handed to :func:`generate_video` stays as
    built (the run grew a copy), so ``cache=cache`` is the source's points alone. A leading ``~``
    in ``folder`` is the home folder.
    """
    if not isinstance(result, VideoResult):
        raise Gen3cInputError(f"save_outputs takes the VideoResult of generate_video, got {describe_value(result)}")
    folder = writer_path(folder, "save_outputs folder", "the outputs")
    if result.frames is None or result.buffers is None:
        raise Gen3cInputError("save_outputs needs a result with its frames kept (generate_video(..., keep=True)); stream long videos through an OutputWriter")
    if cache is not None and not save_point_cloud:
        raise Gen3cInputError("save_outputs' cache= names the point cloud to write: pass save_point_cloud=True with it, or leave it out")
    if cache is not None and not isinstance(cache, Cache3D):
        raise Gen3cInputError(f"save_outputs' cache is {describe_value(cache)}: pass a gen3c.cache.Cache3D, or leave it out for the run's own")
    if save_point_cloud and cache is None and result.plan is None:
        raise Gen3cInputError("save_outputs(save_point_cloud=True) got a result that carries no cache (result.plan): pass cache=")
    points = (cache if cache is not None else result.plan).point_cloud() if save_point_cloud else None
    with OutputWriter(
        folder, name, save_buffer=save_buffer, num_buffers=result.buffers.num_buffers, fps=fps, point_cloud=save_point_cloud
    ) as out:
        out.write(result.frames, result.buffers)
        return out.finish(result.cameras, point_cloud=points, metadata=metadata)
