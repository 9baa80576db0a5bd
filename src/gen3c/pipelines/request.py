"""One generation job as data, and the function that runs it.

:class:`GenerationRequest` holds every setting of a run under the CLI's flag names (it and its
checks live in :mod:`gen3c.pipelines.settings`, which imports no torch); the CLI, the GUI and
batch manifests all build one and call :func:`run_request`, so the three never drift apart.

A request names one input: an image (``input_image_path`` + ``depth_path``), a video with depth
and cameras (``input_image_path`` = a GEN3C sample directory or legacy ``.pt``, or
``vipe_path``), or multi-view key frames (``multiview_npz``). :func:`load_scene` turns it into
the cache plan, cameras and first frame that :func:`~gen3c.pipelines.camera_video.generate_video`
needs; the rest of a run is the same for every input.
"""

from __future__ import annotations

import contextlib
import difflib
import gc
import json
import math
import numbers
import os
import sys
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gen3c.cache import OTHER_AXES
from gen3c.cameras import Cameras
from gen3c.constants import GEN3C_CHUNK_FRAMES
from gen3c.errors import (
    Gen3cInputError,
    Gen3cMemoryError,
    Gen3cSettingError,
    counted,
    describe_value,
    is_whole_number,
    note,
    quoted_path,
    record_notes,
    spelled,
)
from gen3c.io.intrinsics import parse_intrinsics
from gen3c.io.paths import expand_home, looks_like_path
from gen3c.models import configs
from gen3c.pipelines.autoregressive import (
    CachePlan,
    FixedCache,
    GrowingCache,
    VideoCache,
    check_chunked_frame_count,
    makes_frame_count,
    plan_chunks,
)
from gen3c.pipelines.camera_video import (
    OTHER_NAME,
    OutputWriter,
    SourceView,
    VideoResult,
    _preset_cameras,  # worded for the command line, as the route's refusals are
    build_cache,
    check_num_frames,
    check_output_files,
    generate_video,
    output_files,
    prepare_source,
    resolve_chunk_frames,
)
from gen3c.pipelines.options import (
    GENERATOR_OPTIONS,
    NO_EFFECT_OPTIONS,
    check_gen3c_only,
    check_generator,
    check_speed_device,
    refuse_gen3c_only,
)
from gen3c.pipelines.resume import CLI_RESUMES, ChunkKeeper, PartialRun, restore
from gen3c.pipelines.settings import GENERATORS as GENERATORS
from gen3c.pipelines.settings import MAX_FPS as MAX_FPS
from gen3c.pipelines.settings import MIN_FPS as MIN_FPS
from gen3c.pipelines.settings import OPTION_PATH_FIELDS as OPTION_PATH_FIELDS
from gen3c.pipelines.settings import PATH_FIELDS as PATH_FIELDS

# The request and its checks (no torch); those of its names used elsewhere are re-exported here.
from gen3c.pipelines.settings import (
    START_FRAME_REFUSAL,
    GenerationRequest,
    check_noise_aug_strength,
    check_request,
    check_seed,
    check_unused_settings,
    fixed_chunk_frames,
    has_depth,
    memory_depth,
    memory_image,
)
from gen3c.pipelines.settings import _coerce as _coerce
from gen3c.pipelines.settings import official_chunk_frames as official_chunk_frames
from gen3c.pipelines.spelling import keyword_spelling, row_spelling
from gen3c.progress import ProgressFactory, callable_as, describe_progress
from gen3c.summary import dataclass_repr
from gen3c.trajectories import (  # worded for the command line, as the route's refusals are
    _center_depth_for,
    _preset_trajectory,
)

if TYPE_CHECKING:
    import PIL.Image

    from gen3c.depth.base import DepthEstimate
    from gen3c.depth.user import DepthRecord
    from gen3c.io.frames import FrameStack
    from gen3c.io.multiview import MultiViewInput

    #: What an input is read into (:func:`read_input`).
    SceneInput = SourceView | FrameStack | MultiViewInput

INPUT_KINDS = ("image", "sample", "vipe", "multiview")
#: How a user allows a legacy pickled ``.pt`` sample (which can run code), as each caller offers it,
#: said when one is refused (:func:`read_input`): the command line, and :func:`generate` from Python.
CLI_GRANTS_TRUST = "pass --trust_checkpoint"
PYTHON_GRANTS_TRUST = "pass trust_checkpoint=True"
#: How :func:`generate`'s caller continues a long run that stopped (the command line's: ``CLI_RESUMES``).
PYTHON_RESUMES = "call gen3c.generate() again with resume=True"


@dataclass
class InMemoryInput:
    """An image and/or its depth handed over in Python instead of files (:func:`generate`),
    converted as their files are read; the other may be a file (``input_image_path``, ``depth_path``).

    Attributes:
        image: (3, h, w) float32 in [−1, 1], as :func:`~gen3c.io.images.load_image` reads a file
            (:func:`~gen3c.pipelines.camera_video.source_image`); None: the image is a file.
        depth: (H, W) float32 z-depth as :func:`~gen3c.io.depth.load_depth` reads a ``.npy``
            (:func:`~gen3c.io.depth.depth_map`), its values checked and brought to the image's
            size where a file's are (:func:`load_source`); None: a depth file, or estimated.
        described: what was handed over, by the field it stands for (``input_image_path``,
            ``depth_path``): type, shape, dtype and the sha256 of its bytes, for the run record.
        depth_record: for a :class:`~gen3c.depth.base.DepthEstimate` handed over, its kind,
            camera and trusted pixels (:meth:`~gen3c.depth.user.DepthRecord.of_estimate`), read
            as ``gen3c depth``'s record beside its ``.npy`` is; None for a bare array.
    """

    image: torch.Tensor | None
    depth: torch.Tensor | None
    described: dict[str, dict[str, Any]]
    depth_record: DepthRecord | None = None

    __repr__ = dataclass_repr

    @classmethod
    def from_arrays(cls, image: Any, depth: Any, where: str) -> InMemoryInput:
        """Check and convert ``image`` and ``depth`` (each None where it is not in memory;
        ``depth`` an array, or a :class:`~gen3c.depth.base.DepthEstimate` whose kind, camera and
        mask come with it).

        Raises:
            Gen3cInputError: a wrong type, shape, size or range, naming ``where``'s argument.
        """
        from gen3c.cameras import check_intrinsics_fit
        from gen3c.depth.base import DepthEstimate
        from gen3c.depth.user import DepthRecord
        from gen3c.io.depth import depth_map
        from gen3c.pipelines.camera_video import source_image

        described, record = {}, None
        if image is not None:
            checked = source_image(image, f"{where} image").cpu()  # a huge one refused before its bytes are hashed
            described["input_image_path"] = describe_array(image)
            image = checked
        if isinstance(depth, DepthEstimate):
            record = DepthRecord.of_estimate(depth)
            check_intrinsics_fit(record.intrinsics, *record.size, f"{where} depth's intrinsics")
            described["depth_path"] = {
                **describe_array(depth.depth), "in_memory": f"{DepthEstimate.__module__}.DepthEstimate", "kind": record.kind,
                "source": record.source, "intrinsics": record.intrinsics.tolist(), "mask_sha256": describe_array(record.mask)["sha256"],
            }  # fmt: skip
            depth = depth_map(depth.depth, f"{where} depth")
        elif depth is not None:
            checked = depth_map(depth, f"{where} depth")  # a real array (not an object one) before it is hashed
            described["depth_path"] = describe_array(depth)
            depth = checked
        return cls(image, depth, described, record)


def describe_array(value: Any) -> dict[str, Any]:
    """What an in-memory input was, for a run record: its type, shape, dtype and the sha256 of its
    bytes (C order; a PIL image's pixel array), so the same array can be told again."""
    import hashlib

    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    # The bytes hashed are those of one C-order buffer, read in place (a memoryview): a
    # contiguous input is not copied, another once (an image of 100 MP is 1.2 GB as float32).
    if isinstance(value, torch.Tensor):
        flat = value.detach().resolve_conj().resolve_neg().cpu().contiguous().reshape(-1)
        data, shape, dtype = flat.view(torch.uint8).numpy(), tuple(value.shape), str(value.dtype).removeprefix("torch.")
    else:
        array = np.ascontiguousarray(np.asarray(value))
        data, shape, dtype = array.reshape(-1).view(np.uint8), array.shape, str(array.dtype)
    digest = hashlib.sha256(memoryview(data))
    if isinstance(value, np.ma.MaskedArray):  # its mask changes the depth taken (masked pixels are invalid)
        digest.update(np.ascontiguousarray(np.ma.getmaskarray(value)).reshape(-1).view(np.uint8))
    described = {"in_memory": kind, "shape": list(shape), "dtype": dtype, "sha256": digest.hexdigest()}
    mode = getattr(value, "mode", None)
    if isinstance(mode, str):  # a PIL image
        described["mode"] = mode
    return described


def load_source(request: GenerationRequest) -> SourceView:
    """Read the request's image, depth and camera and bring them to the working resolution.

    Without ``depth_path`` the depth comes from ``request.depth_estimator`` (MoGe by default,
    as GEN3C); if the default's weights cannot be loaded, the preview falls back to the geometric
    prior with a warning saying so (:func:`gen3c.depth.prior.prior_notice`); an estimator named
    (MoGe too) is refused instead. An image or depth in memory
    (:attr:`GenerationRequest.in_memory`) stands for its file and goes the same way.
    """
    from gen3c.cameras import resize_intrinsics
    from gen3c.depth.user import depth_record, untrusted_left_out
    from gen3c.io.depth import conform_depth, depth_from_disparity, load_depth, median_scene_depth
    from gen3c.io.images import large_image_size, read_photo, resize_image, resize_nearest, shrink_image
    from gen3c.io.resolution import parse_resolution
    from gen3c.pipelines.settings import DISPARITY_WITHOUT_DEPTH

    size = parse_resolution(request.resolution)
    in_memory = memory_image(request)
    if request.input_image_path is None and in_memory is None:
        raise Gen3cInputError("no input image: pass --input_image_path")
    # A 48–200 MP photo is brought down once, here, to what the working size can use (aspect ratio
    # kept): the estimator, the depth and the resize to the working size never see the full size.
    if in_memory is None:
        image, stored = read_photo(request.input_image_path, cover=size)
    else:
        stored = tuple(in_memory.shape[-2:])
        image = shrink_image(in_memory, large_image_size(stored, cover=size))  # as the same pixels in a PNG
    h, w = image.shape[-2:]
    K = parse_intrinsics(request.intrinsics, stored, fov=request.fov)  # pixels of the photo as stored
    if K is not None and stored != (h, w):
        K = resize_intrinsics(K, stored, (h, w))
    if not has_depth(request):
        if request.depth_is_disparity:  # (a request that skipped check_unused_settings: the GUI's)
            raise Gen3cInputError(DISPARITY_WITHOUT_DEPTH)
        return estimate_source(request, image, K, size)
    if memory_depth(request) is not None:  # an array, or an estimate with its record (InMemoryInput.depth_record)
        raw, name, record = memory_depth(request), "gen3c.generate() depth", request.in_memory.depth_record
    else:
        raw = load_depth(request.depth_path, request.png_depth_scale)
        name = f"depth file {quoted_path(request.depth_path)}"
        # `gen3c depth` records the kind and camera of the depth it writes: read back, the run it
        # came from is reproduced (relative depth keeps GEN3C's units for --movement_distance).
        record = depth_record(request.depth_path, tuple(raw.shape))
    disparity_trusted = None
    if request.depth_is_disparity:
        if record is not None:  # gen3c depth's export, or an estimate: z-depth by construction
            raise Gen3cInputError(f"{name} is z-depth ({record.kind}, from {record.source}, {record.where}), not disparity: drop --depth_is_disparity")
        raw, disparity_trusted = depth_from_disparity(raw, name, request.mask_invalid_depth)
    if isinstance(raw, torch.Tensor) and tuple(raw.shape) == stored != (h, w):  # the photo's own size: brought down with it
        raw = resize_nearest(raw, (h, w))
        disparity_trusted = None if disparity_trusted is None else resize_nearest(disparity_trusted, (h, w))
    # Stretched depth at the working size (`gen3c depth --resolution`, made as a stretch run makes
    # it) is taken as it is, the image stretched to it: brought to the photo's size and back, it
    # went through two resizes the estimating run did not make (and another aspect ratio than the
    # photo's was refused).
    at = size if request.resize_mode == "stretch" and tuple(raw.shape) == size else (h, w)
    depth, valid = conform_depth(raw, at, name, request.mask_invalid_depth)
    if record is not None and K is None and request.depth_estimator is not None:
        raise Gen3cInputError(f"--depth_estimator is not used: {name} comes with its camera, {record.where}: drop --depth_estimator")
    if record is not None:
        camera = "" if K is not None else f" and {record.camera_note()}"
        note(f"{name}: {record.kind} depth from {record.source}{camera}, as {record.where}", stacklevel=2)
        if request.mask_invalid_depth:  # the estimator's untrusted pixels (sky at the far fill) are its invalid ones
            valid = untrusted_left_out(record, valid, name)
    if K is None:
        K = record.camera(at) if record is not None else resize_intrinsics(_estimated_camera(request, image), (h, w), at)
    elif at != (h, w):
        K = resize_intrinsics(K, (h, w), at)
    if at != (h, w):
        image = resize_image(image, at, "stretch")
    if disparity_trusted is not None:
        disparity_trusted = resize_nearest(disparity_trusted, tuple(depth.shape))  # as conform_depth resizes the depth
        if request.mask_invalid_depth:  # the far field the floor clamped, as NaN/inf pixels of z-depth are left out
            valid = valid & disparity_trusted
    kind = record.kind if record is not None else "relative" if disparity_trusted is not None else "metric"
    # the image was read from a file or checked as it came in (InMemoryInput): its range is known
    source = prepare_source(
        image, depth, K, size, request.resize_mode, valid=valid, depth_kind=kind, note_unit_range=False, note_invalid_depth=False
    )
    if record is not None:  # the median the estimating run took, its untrusted sky (at the far fill) left out
        source.reference_depth = record.median_depth(depth, valid)
    elif disparity_trusted is not None:  # the median the estimators take of theirs: the trusted pixels' (1 at its size)
        source.reference_depth = median_scene_depth(depth, valid & disparity_trusted)
    return source


def estimate_source(request: GenerationRequest, image: torch.Tensor, K: torch.Tensor | None, size: tuple[int, int]) -> SourceView:
    """Depth and camera of ``image`` ((3, h, w) in [−1, 1]) from the request's depth estimator.

    With ``resize_mode="stretch"`` the estimate is made at the working size directly — for MoGe
    that is GEN3C's exact path (720×1280 → one bilinear resize to the working size). The cache
    receives every pixel with depth > 0, as GEN3C's does: pixels the estimator marks invalid
    (sky) stay in at their far fill depth.
    """

    from gen3c.depth import GeometricPriorEstimator, cached_depth_estimator, prior_notice
    from gen3c.depth.loading import falls_back_to_prior
    from gen3c.errors import Gen3cModelError
    from gen3c.io.images import resize_image

    try:
        estimator = cached_depth_estimator(request.estimator)
    except Gen3cModelError as exc:
        if request.generator != "preview":
            raise
        if not falls_back_to_prior(request.depth_estimator):  # asked for by name: no made-up depth stands in for it
            raise Gen3cModelError(
                f"{exc} (--depth_estimator {quoted_path(request.depth_estimator)} was asked for by name, so the preview does not fall back "
                "to the geometric prior: leave it out for that)"
            ) from None
        note(prior_notice(str(exc)), stacklevel=2)
        estimator = GeometricPriorEstimator()
    unit = (image + 1) / 2
    with out_of_memory_as_error(RunStage(f"estimating depth with {request.estimator}")):
        if request.resize_mode == "stretch":
            estimate = estimator.estimate(unit, size=size, intrinsics=K)
        else:
            estimate = estimator.estimate(unit, intrinsics=K)
    if request.resize_mode == "stretch":
        image = resize_image(image, size, "stretch")
    from gen3c.depth import median_depth

    source = prepare_source(
        image, estimate.depth, estimate.intrinsics, size, request.resize_mode, valid=estimate.depth > 0, depth_kind=estimate.kind,
        note_unit_range=False, note_invalid_depth=False,
    )
    source.reference_depth = median_depth(estimate)
    return source


def _estimated_camera(request: GenerationRequest, image: torch.Tensor) -> torch.Tensor:
    """Intrinsics for user depth given without --intrinsics / --fov: the depth estimator's camera."""

    from gen3c.depth import cached_depth_estimator
    from gen3c.errors import Gen3cModelError

    try:
        estimator = cached_depth_estimator(request.estimator)
        with out_of_memory_as_error(RunStage(f"estimating the camera with {request.estimator}")):
            estimate = estimator.estimate((image + 1) / 2)
    except Gen3cModelError as exc:
        raise Gen3cInputError(
            f"user depth needs the camera: pass --intrinsics fx,fy,cx,cy or --fov DEGREES (estimating it failed: {exc})"
        ) from None
    fov = 2 * math.degrees(math.atan(0.5 * image.shape[-1] / float(estimate.intrinsics[0, 0])))
    how = "a default" if estimate.intrinsics_from == "default" else "the estimated"
    note(f"no --intrinsics / --fov: using {how} camera from {estimate.source} ({fov:.1f}° horizontal)", stacklevel=3)
    return estimate.intrinsics


def make_cameras(request: GenerationRequest, source: SourceView) -> Cameras:
    """The request's trajectory: its camera file, or its preset relative to ``source``."""
    if request.camera_file is not None:
        return _file_cameras(request, *source.size, "image")
    return _preset_cameras(
        source, request.trajectory, request.camera_rotation, request.num_video_frames, request.movement_distance, request.trajectory_scale
    )


def input_kind(request: GenerationRequest) -> str:
    """Which of :data:`INPUT_KINDS` the request names, after checking that it names one."""
    from gen3c.io.formats import is_sample
    from gen3c.io.gen3c_sample import check_sample_dir
    from gen3c.io.paths import is_dir

    in_memory = memory_image(request) is not None
    image = request.input_image_path if not in_memory else request.in_memory
    given = [flag for flag, value in (("--input_image_path", image), ("--vipe_path", request.vipe_path),
                                       ("--multiview_npz", request.multiview_npz)) if value is not None]  # fmt: skip
    if in_memory and request.input_image_path is not None:
        given.append("an image in memory")
    if not given:
        raise Gen3cInputError("no input: pass --input_image_path (an image, or a GEN3C sample directory), --vipe_path or --multiview_npz")
    if len(given) > 1:
        raise Gen3cInputError(f"{' and '.join(given)} were both given: pass one input")
    if request.vipe_path is not None:
        kind = "vipe"
    elif request.multiview_npz is not None:
        kind = "multiview"
    else:
        kind = "image" if in_memory else "sample" if is_sample(request.input_image_path) else "image"
    if kind != "image":
        # a depth in memory would go unused beside this input, as a --depth_path file would
        depth = request.depth_path if memory_depth(request) is None else "in memory"
        for flag, value in (("--depth_path", depth), ("--intrinsics", request.intrinsics), ("--fov", request.fov)):
            if value is not None:
                if kind == "sample" and is_dir(request.input_image_path):  # a folder that is no sample is told so first
                    check_sample_dir(request.input_image_path)
                raise Gen3cInputError(f"{flag} applies to a single image; this {kind} input carries its own depth and cameras: leave it out")
    if kind not in ("vipe", "sample") and request.vipe_starting_frame_idx:
        raise Gen3cInputError(START_FRAME_REFUSAL)
    if kind != "vipe" and request.vipe_clip is not None:
        raise Gen3cInputError("--vipe_clip applies to --vipe_path only")
    options = request.generator_options if isinstance(request.generator_options, dict) else {}
    check_noise_aug_strength(kind, options.get("noise_aug_strength"))
    return kind


@dataclass
class Scene:
    """What a run renders: the cache of every chunk, the cameras, the first frame's condition."""

    plan: CachePlan
    cameras: Cameras
    first_frame: torch.Tensor
    kind: str


def load_scene(
    request: GenerationRequest,
    source: SourceView | None = None,
    grant_trust: str | None = CLI_GRANTS_TRUST,
    progress: ProgressFactory | None = None,
) -> Scene:
    """Read the request's input and build its cache plan, cameras and first frame.

    Args:
        source: an already prepared single image (e.g. the demo sample) instead of the files.
        grant_trust: how the caller's user allows a legacy pickled ``.pt`` sample (:func:`read_input`).
        progress: shows a video input's frames being read as a stage (:func:`read_input`).
    """
    kind = "image" if source is not None else input_kind(request)
    data = source if source is not None else read_input(request, kind, grant_trust, progress)
    cameras = scene_cameras(request, kind, data)
    # Later chunks of an image whose depth came from an estimator re-estimate depth for the frame
    # they add to the cache, as GEN3C does with MoGe. A source handed over (the GUI's) is the
    # request's image read already when the request names one; else it carries its own depth.
    named = source is None or request.input_image_path is not None
    estimated = kind == "image" and named and not has_depth(request)
    plan = scene_plan(request, kind, data, _loaded_estimator(request) if estimated else None)
    return Scene(plan, cameras, first_view(kind, data).image, kind)


def read_input(
    request: GenerationRequest, kind: str, grant_trust: str | None = CLI_GRANTS_TRUST, progress: ProgressFactory | None = None
) -> SceneInput:
    """Read the request's input of ``kind`` (:func:`input_kind`) at the working resolution: a
    :class:`SourceView` (image), a :class:`~gen3c.io.frames.FrameStack` (sample, vipe) or a
    :class:`~gen3c.io.multiview.MultiViewInput` (multiview). ``grant_trust``: how the caller's
    user allows a legacy pickled ``.pt`` sample (:func:`~gen3c.io.gen3c_sample.read_sample`);
    ``progress``: shows a video's frames being read as a stage."""
    from gen3c.io.resolution import parse_resolution

    size = parse_resolution(request.resolution)
    if kind == "image":
        return load_source(request)
    if kind == "multiview":
        from gen3c.io.multiview import read_multiview

        return read_multiview(request.multiview_npz, size, resize_mode=request.resize_mode, mask_invalid_depth=request.mask_invalid_depth)
    return load_video_frames(request, kind, size, grant_trust, progress)


def scene_plan(request: GenerationRequest, kind: str, data: SceneInput, depth_estimator=None) -> CachePlan:
    """The cache of every chunk for an input already read (:func:`read_input`), under the
    request's cache settings: the image's growing cache (``depth_estimator`` re-estimates the
    frames it adds), the video's 4D cache, or the key views of which each chunk uses the 2 best."""
    settings = {"filter_points_threshold": request.filter_points_threshold, "foreground_masking": request.foreground_masking,
                "splat": request.splat}  # fmt: skip
    if kind == "image":
        return GrowingCache(build_cache([data], **settings), depth_estimator=depth_estimator)
    if kind == "multiview":
        from gen3c.cache import SelectingCache3D

        cache = SelectingCache3D(select=2, **settings)
        keys = data.keys
        for i in range(len(keys)):
            cache.add_view(keys.image(i), keys.depth[i], keys.K[i], keys.w2c[i], keys.valid[i])
        return FixedCache(cache)
    return VideoCache(data, **settings)


def scene_cameras(request: GenerationRequest, kind: str, data: SceneInput) -> Cameras:
    """The request's trajectory for an input already read: its camera file, else the preset
    relative to the image or applied per frame to the video's cameras, else the multi-view
    input's own trajectory (``w2cs_all``)."""
    if kind == "image":
        cameras = make_cameras(request, data)
    elif kind == "multiview":
        cameras = _multiview_cameras(request, data)
    else:
        cameras = video_cameras(request, data)
    what = {"image": "the input image", "multiview": "the first key view"}.get(kind, "the input video's first frame")
    if request.camera_file is not None:
        from gen3c.io.camera_files import AXES_FIX, SOURCE_POSE

        file = f"camera file {quoted_path(request.camera_file)}"
        read = request.read_camera_file()
        origin = f" ({SOURCE_POSE[read.kind]})" if kind == "image" else ""
        source = first_view(kind, data)
        fov = f" ({_source_fov(source, read.cameras, cameras)})" if read.kind == "camera_path" else ""
        _note_first_camera_away_from_source(
            cameras, source, what, path=file, path_K=file, onto="the file's path",
            fix=f"give the poses in the world of that camera{origin} and start the path there",
            fix_K=f"give the file's first camera the intrinsics of {what}{fov}", axes_fix=AXES_FIX[read.kind],
        )  # fmt: skip
    elif kind == "multiview":
        # GEN3C's gen3c_multiview.py seeds frame 0 with the first key view's image and renders w2cs_all[0]
        # for it, so a path that starts elsewhere jumps after frame 0 there too. Without Ks_all every camera
        # has the last key view's K (GEN3C's default): intrinsics are compared only where Ks_all gives others.
        npz = f"multi-view npz {quoted_path(request.multiview_npz)}"
        _note_first_camera_away_from_source(
            cameras, first_view(kind, data), what, path=f"{npz} w2cs_all", path_K=f"{npz} Ks_all", onto="w2cs_all's path",
            fix="start w2cs_all at w2cs_key_frames[0], or put first the key view it starts at",
            fix_K="give Ks_all[0] the first key view's K_key_frames[0]",
            check_intrinsics=not torch.allclose(cameras.K[0], data.keys.K[-1], atol=1e-4),
        )  # fmt: skip
    return cameras


def _source_fov(source: SourceView, file_cameras: Cameras, fitted: Cameras) -> str:
    """The source camera's zoom as a nerfstudio camera_path.json says it: the vertical ``fov``
    over the file's ``render_height`` whose focal length, brought to the working size as the
    file's are (``fitted`` from ``file_cameras``), is the source's fy."""
    from gen3c.cameras import fov_from_focal

    scale = float(fitted.K[0, 1, 1]) / float(file_cameras.K[0, 1, 1])  # (the fit scales focal lengths, whatever it crops)
    fov = fov_from_focal(float(source.K[1, 1]) / scale, file_cameras.height)
    return f"in nerfstudio's terms a 'fov' of {fov:.4g}° over its render_height {file_cameras.height}, without a 'K'"


#: A path's first camera (a camera file's, a multi-view w2cs_all's) this far from the view the first frame
#: shows (a share of its median depth, or degrees) makes the video jump after its first frame
#: (:func:`_note_first_camera_away_from_source`).
FIRST_CAMERA_DISTANCE, FIRST_CAMERA_DEGREES = 0.01, 0.5
#: … or its focal length this much longer or shorter (a share), or its principal point this many pixels away.
FIRST_CAMERA_ZOOM, FIRST_CAMERA_PIXELS = 0.01, 2.0
#: The note on a path whose first camera is the source's turned round (:func:`_note_first_camera_away_from_source`),
#: before the fix for the file's kind.
AXES_MIX_UP = f", as {OTHER_AXES} (OpenCV for OpenGL, or the reverse) is: "


def first_camera_away(w2c: torch.Tensor, source: SourceView) -> tuple[float, float, bool]:
    """How far a path's first camera ``w2c`` (4, 4) is from the camera of the view the video's
    first frame shows (``source``): the distance between them, in the scene's units, the angle
    between their rotations, in degrees, and whether either is as large as makes the video jump
    after its first frame (:data:`FIRST_CAMERA_DISTANCE` of the median depth, or
    :data:`FIRST_CAMERA_DEGREES`)."""
    from gen3c.cameras import camera_centers, rotation_angle_degrees

    first, origin = w2c.double().cpu(), source.w2c.double().cpu()
    distance = float((camera_centers(first) - camera_centers(origin)).norm())
    degrees = float(rotation_angle_degrees(origin[:3, :3], first[:3, :3]))
    median = source.median_depth()
    far = median is not None and distance > FIRST_CAMERA_DISTANCE * median
    return distance, degrees, far or degrees > FIRST_CAMERA_DEGREES


def _note_first_camera_away_from_source(
    cameras: Cameras,
    source: SourceView,
    what: str,
    *,
    path: str,
    path_K: str,
    onto: str,
    fix: str,
    fix_K: str,
    check_intrinsics: bool = True,
    axes_fix: str | None = None,
) -> None:
    """The video's first frame is the source view's image (the generators condition on it), seen
    from the source camera (``what`` names it); a path whose first camera is elsewhere (a camera
    file in another world frame, e.g. a COLMAP or nerfstudio scene's, or one that starts elsewhere;
    a multi-view ``w2cs_all`` that starts at another key view) jumps from it onto its own path
    (``onto``) at frame 1: said in a note naming ``path`` and ending in ``fix`` (``path_K`` and
    ``fix_K`` for other intrinsics, compared where ``check_intrinsics``). A first camera that is
    the source camera turned 180° about its x axis (upside down, looking away from the scene) is
    the source camera written in the other axes, OpenCV for OpenGL or the reverse (the identity
    hand-written as a nerfstudio camera_to_world): said so, with ``axes_fix``, where given."""
    K, own = cameras.K[0].double().cpu(), source.K.double().cpu()
    zoom = float(((K.diagonal()[:2] / own.diagonal()[:2]) - 1).abs().max())
    shift = float((K[:2, 2] - own[:2, 2]).abs().max())
    if check_intrinsics and (zoom > FIRST_CAMERA_ZOOM or shift > FIRST_CAMERA_PIXELS):
        def shown(m: torch.Tensor) -> str:
            return ", ".join(f"{name}={float(m[i, j]):.5g}" for name, i, j in (("fx", 0, 0), ("fy", 1, 1), ("cx", 0, 2), ("cy", 1, 2)))

        note(
            f"{path_K}: its first camera's intrinsics ({shown(K)} at the working {cameras.width}×{cameras.height}) are not those of "
            f"{what} ({shown(own)}), but the video's first frame is {what} itself, so the view jumps after it: {fix_K}",
            stacklevel=3,
        )
    distance, degrees, away = first_camera_away(cameras.w2c[0], source)
    if not away:
        return
    turned_round = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64)) @ cameras.w2c[0].double().cpu()
    if axes_fix is not None and not first_camera_away(turned_round, source)[2]:
        note(f"{path}: its first camera is the camera of {what} turned 180° about its x axis (upside down, looking away from the scene){AXES_MIX_UP}{axes_fix}", stacklevel=3)
        return
    median = source.median_depth()
    scale = f" ({distance / median:.3g}× the scene's median depth)" if median else ""
    note(
        f"{path} starts {distance:.4g} units{scale} and {degrees:.3g}° away from the camera of "
        f"{what}, but the video's first frame is {what} itself, so the video jumps onto {onto} after it: {fix}",
        stacklevel=3,
    )


def first_view(kind: str, data: SceneInput) -> SourceView:
    """The view whose frame conditions the video's first frame: the image, the video's first
    frame or the first key view, as a :class:`SourceView` at the working resolution."""
    if kind == "image":
        return data
    frames = data.keys if kind == "multiview" else data
    return SourceView(frames.image(0), frames.depth[0], frames.K[0], frames.w2c[0], frames.valid[0], frames.depth_kind)


def _loaded_estimator(request: GenerationRequest):
    """The request's depth estimator if it loads (it is cached), else None (the geometric
    prior stood in for it, and the cache's rendered depth stands in for re-estimation)."""
    from gen3c.depth import cached_depth_estimator
    from gen3c.errors import Gen3cModelError

    try:
        return cached_depth_estimator(request.estimator)
    except Gen3cModelError:
        return None


def load_video_frames(
    request: GenerationRequest,
    kind: str,
    size: tuple[int, int],
    grant_trust: str | None = CLI_GRANTS_TRUST,
    progress: ProgressFactory | None = None,
):
    """The request's video (sample directory or ViPE clip) at the working size, as a FrameStack
    (``grant_trust``, ``progress``: :func:`read_input`'s)."""
    common = {"start": request.vipe_starting_frame_idx, "num_frames": request.num_video_frames, "resize_mode": request.resize_mode,
              "mask_invalid_depth": request.mask_invalid_depth, "progress": progress}  # fmt: skip
    if kind == "vipe":
        from gen3c.io.vipe import read_vipe

        frames = read_vipe(request.vipe_path, size, clip=request.vipe_clip, **common)
    else:
        from gen3c.io.gen3c_sample import read_sample

        frames = read_sample(request.input_image_path, size, trust_checkpoint=request.trust_checkpoint, grant_trust=grant_trust, **common)
    T, n = request.num_video_frames, len(frames)
    if n < T:  # GEN3C pads the clip with its last frame too (vipe_utils.py), silently
        note(
            f"the video has {counted(n, 'frame')} from frame {request.vipe_starting_frame_idx} on, fewer than the {T} asked for: "
            f"output frames {n}…{T - 1} render its last frame ({frames.frame_indices[-1]}), frozen{_fitting_count(request, n)}",
            stacklevel=3,
        )
    return frames


def _fitting_count(request: GenerationRequest, n: int) -> str:
    """How to stay within a video of ``n`` frames: the most frames ≤ n the generator can make."""
    fixed = fixed_chunk_frames(request)
    count = n if fixed is None else (n - 1) // (fixed - 1) * (fixed - 1) + 1 if n >= fixed else None
    if count is None:
        return f" (the {request.generator} generator makes at least {fixed} frames)"
    fix = f"a --camera_file of {count} cameras" if request.camera_file is not None else f"--num_video_frames {count}"
    return f"; pass {fix} to stay within it"


def video_cameras(request: GenerationRequest, frames) -> Cameras:
    """The request's trajectory for video input: its camera file (poses in the video's world
    frame), or its preset applied per frame to the source cameras, ``w2cᵢ = Aᵢ · Wᵢ`` (GEN3C's ``gen3c_dynamic.py``);
    target frames past the end of the source video keep its last camera."""
    T = request.num_video_frames
    H, W = frames.size
    if request.camera_file is not None:
        return _file_cameras(request, H, W, "video")
    index = torch.arange(T).clamp(max=len(frames) - 1)
    from gen3c.io.depth import median_scene_depth

    # the first frame's, as a SourceView of it (first_view) measures it
    center = _center_depth_for(request.trajectory_scale, median_scene_depth(frames.depth[0], frames.valid[0]), frames.depth_kind)
    return _preset_trajectory(
        request.trajectory, request.camera_rotation, T, frames.w2c[index], frames.K[index], H, W, request.movement_distance, center
    )


def _multiview_cameras(request: GenerationRequest, mv) -> Cameras:
    T = request.num_video_frames
    if request.camera_file is not None:
        return _file_cameras(request, *mv.keys.size, "multiview")
    if len(mv.trajectory) < T:
        raise Gen3cInputError(_too_few_cameras(request, len(mv.trajectory)))
    cameras, fixed = len(mv.trajectory), fixed_chunk_frames(request)
    most = cameras if fixed is None else (cameras - 1) // (fixed - 1) * (fixed - 1) + 1
    if most > T:  # GEN3C's default 121 of a 361-camera path (GEN3C's own example) dropped the rest silently
        note(
            f"multi-view npz {quoted_path(request.multiview_npz)} has {cameras} cameras in w2cs_all; the first {T} are rendered "
            f"(--num_video_frames {T}): pass --num_video_frames {most} to render {'all of them' if most == cameras else f'the first {most}'}",
            stacklevel=3,
        )
    return mv.trajectory[:T]


def _too_few_cameras(request: GenerationRequest, cameras: int) -> str:
    """The refusal of a multi-view npz of fewer ``cameras`` (``w2cs_all``) than the run's frames:
    the count to pass (GEN3C's own 121 by default, which a short path does not reach), one its
    generator can make."""
    T = request.num_video_frames
    fixed = fixed_chunk_frames(request)  # (None: the preview, any count)
    default = f" (the default: {'the model' if fixed else 'GEN3C'}'s chunk)" if T == (fixed or GEN3C_CHUNK_FRAMES) else ""
    what = f"multi-view npz {quoted_path(request.multiview_npz)} has {cameras} cameras in w2cs_all but --num_video_frames is {T}{default}"
    if fixed is None:
        fix = f"pass --num_video_frames {cameras}"
    elif cameras >= fixed:
        fix = f"pass --num_video_frames {(cameras - 1) // (fixed - 1) * (fixed - 1) + 1} (the {request.generator} generator makes {fixed - 1}·N+1 frames)"
    else:
        fix = f"the {request.generator} generator makes {fixed} frames per chunk, more than its cameras: pass a --camera_file with {T} cameras instead"
        return f"{what}: {fix}"
    return f"{what}: {fix}, or a --camera_file with {T} cameras"


def _file_cameras(request: GenerationRequest, H: int, W: int, kind: str) -> Cameras:
    from gen3c.io.camera_files import fit_cameras

    cams = request.read_camera_file().cameras
    fit = intrinsics_fit(kind, request.resize_mode)
    return fit_cameras(cams, request.num_video_frames, H, W, name=f"camera file {quoted_path(request.camera_file)}", fit=fit)


def intrinsics_fit(kind: str, resize_mode: str):
    """How intrinsics of an input of ``kind`` reach the working size under ``resize_mode``, as
    ``fit(K, size, working_size)``: what the readers do to the input's own cameras, and so what a
    camera file of another size gets (:func:`~gen3c.io.camera_files.fit_cameras`). ``crop``:
    resize to cover, centre crop. ``stretch``: an image is plainly resized (GEN3C's
    ``gen3c_single_image.py``); video and key frames are resized to the 720×1280-equivalent and
    centre-cropped (GEN3C's ``vipe_utils.py``, :func:`gen3c.io.frames.fit_intrinsics`)."""
    from functools import partial

    from gen3c.cameras import resize_crop_intrinsics, resize_intrinsics
    from gen3c.io.frames import fit_intrinsics

    if resize_mode != "stretch":
        return resize_crop_intrinsics
    return resize_intrinsics if kind == "image" else partial(fit_intrinsics, mode="stretch")


def _loading_module():
    """:mod:`gen3c.pipelines.loading`, which the gen3c generator needs (diffusers and co., each
    checked here: torchvision, say, is imported only once sampling starts)."""
    from gen3c.dependencies import DIFFUSION_MODULES, check_installed, require

    check_installed(DIFFUSION_MODULES, "the gen3c generator", extra="diffusion")
    return require("gen3c.pipelines.loading", "the gen3c generator", extra="diffusion")


#: What writes every run's video: imageio-ffmpeg's ffmpeg encodes it, PyAV counts its frames.
VIDEO_MODULES = ("imageio_ffmpeg", "av")


def check_dependencies(request: GenerationRequest) -> None:
    """Import the packages a run needs besides its generator's (:func:`check_generator` checks the
    gen3c generator's), before anything is read or generated (each import takes milliseconds):
    the video's, the preview generator's OpenCV, the point cloud's plyfile.

    Raises:
        Gen3cDependencyError: one is missing or fails to import.
    """
    from gen3c.dependencies import require

    for module in VIDEO_MODULES:
        require(module, "writing the output video")
    if request.generator == "preview":
        require("cv2", "the preview generator")
    if request.save_point_cloud:
        require("plyfile", "--save_point_cloud")


def check_generator_setup(request: GenerationRequest, given: Collection[str] = ()) -> dict[str, Any]:
    """:func:`~gen3c.pipelines.options.check_generator`, then what the disk and this machine say
    of its options before anything is read or loaded (a depth estimate, the weights: minutes): a
    ``--checkpoint_dir`` that is not there or is no converted checkpoint (a file, a folder without
    model_index.json: :func:`~gen3c.pipelines.loading.check_local_checkpoint`), a ``--speed`` this
    device cannot run. ``given``: the options the user typed (:func:`check_generator`'s). Returns
    the options (``{}`` for the preview)."""
    options = check_generator(request, given)
    if options.get("checkpoint_dir"):
        from gen3c.models.packaged import check_checkpoint_path

        check_checkpoint_path(str(options["checkpoint_dir"]))
        _loading_module().check_local_checkpoint(str(options["checkpoint_dir"]))
    check_speed_device(options.get("speed"), options.get("device"), fp8_matmul=options.get("fp8_matmul"), compile=options.get("compile"))
    return options


def make_generator(request: GenerationRequest, progress: ProgressFactory | None = None):
    """The generator a request names; ``progress`` shows the gen3c model's loading as a stage."""
    # Checked here for the callers without run_request (the GUI, `gen3c compare`, a batch worker's pool);
    # run_request's check, before the input is read, repeats here: milliseconds, its notes said once (errors.note).
    check_generator(request)
    if request.generator == "preview":
        from gen3c.pipelines.preview import PreviewGenerator

        return PreviewGenerator()
    from gen3c.io.resolution import parse_resolution

    check_seed(request.seed)
    return _loading_module().generator_from_options(
        request.generator_options, seed=request.seed, resolution=parse_resolution(request.resolution), progress=progress
    )


#: Settings a loaded generator takes per run (plain attributes, given by
#: :meth:`~gen3c.pipelines.gen3c.Gen3cGenerator.configure`; nothing reloads). Runs that differ
#: only in these (and the seed) share one loaded model.
PER_JOB_GENERATOR_SETTINGS = ("prompt", "negative_prompt")
#: Settings that only shape sampling, which a loaded gen3c generator also takes per run
#: (:meth:`~gen3c.pipelines.gen3c.Gen3cGenerator.configure`: its sampler, step cache and attributes):
#: a sweep over steps or guidance loads once. The weights, memory plan and kernels (checkpoint,
#: LoRA, dtype, memory mode, fp8, attention, compile, ``speed``) reload.
SAMPLING_GENERATOR_SETTINGS = ("guidance", "num_steps", "sampler", "guidance_every", "guidance_batch", "step_cache", "noise_aug_strength")
#: Settings that check the model's files rather than shape what is loaded: a model loaded without
#: ``verify_checksums`` has its checkpoint's files checked by
#: :meth:`~gen3c.pipelines.gen3c.Gen3cGenerator.configure` when a run first asks, not loaded again.
CHECK_GENERATOR_SETTINGS = ("verify_checksums",)
#: The model settings: the gen3c generator's options that shape what is loaded (all but the per-run
#: and checking ones above, and GEN3C's flags for parts gen3c does not have, which change nothing).
#: :meth:`GeneratorPool.key` loads another generator when one differs, and
#: :meth:`~gen3c.pipelines.gen3c.Gen3cGenerator.configure` refuses one that differs from the load's.
MODEL_GENERATOR_SETTINGS = tuple(
    k for k in GENERATOR_OPTIONS if k not in (*PER_JOB_GENERATOR_SETTINGS, *SAMPLING_GENERATOR_SETTINGS, *CHECK_GENERATOR_SETTINGS, *NO_EFFECT_OPTIONS)
)


#: The generator options that name the model (which :func:`model_source` reads as one).
MODEL_NAMING_SETTINGS = ("model", "checkpoint_dir", "cache_dir")


def model_source(options: dict[str, Any]) -> str:
    """The model a gen3c generator's options name, one way however it is spelt: the local folder
    that loads (a packaged model's, by its name or its folder; GEN3C's official weights' converted
    folder in ``cache_dir``, by no checkpoint or GEN3C's hub id) resolved (``~``, ``..``, a
    trailing slash, links), or a hub id as given. Nothing is fetched or read; what cannot be
    resolved (an unknown model, a cache folder that is a file) is the options' own spelling,
    refused when it loads."""
    from gen3c.models.packaged import PACKAGED_MODELS, packaged_model_dir
    from gen3c.models.weights import converted_dir, is_official_repo, weights_cache_dir

    model, checkpoint, cache_dir = (options.get(key) for key in MODEL_NAMING_SETTINGS)
    try:
        if model is not None:
            folder = packaged_model_dir(str(model))
        elif not checkpoint or is_official_repo(checkpoint):
            folder = converted_dir(weights_cache_dir(cache_dir))
        elif str(checkpoint) in PACKAGED_MODELS and not Path(str(checkpoint)).exists():  # as checkpoint_folder reads it
            folder = packaged_model_dir(str(checkpoint))
        else:
            folder = Path(str(checkpoint)).expanduser()
            if not folder.exists():  # a hub id (or a missing folder, refused when it loads)
                return str(checkpoint)
        return str(folder.resolve())
    except (Gen3cInputError, OSError, RuntimeError):
        return json.dumps([model, checkpoint, cache_dir])


class GeneratorPool:
    """One generator, loaded once and reused by every request with the same model settings: a
    batch worker's jobs ("models loaded once per worker") and :func:`generate`'s calls. Only
    per-run settings (seed, prompt, :data:`SAMPLING_GENERATOR_SETTINGS`) change between requests; a
    request with other model settings replaces the generator (one model in memory at a time). A
    LoRA adapter counts by its weights' sha256 too: one replaced at its path since is loaded again.

    ``digests``: the adapters' digests already read (:func:`lora_digest`), e.g. a batch's plan's,
    so each adapter is read once per batch run, not once per job.

    What loading noted (the memory mode ``--max_gpu_memory`` chose, a preset a distilled student
    overrides) is said again to every request that reuses the generator, so each run's notes and
    run record list it, as they do where ``gen3c generate`` loads the model for each run."""

    def __init__(self, digests: dict[str, str] | None = None) -> None:
        self._key: str | None = None
        self._generator: Any = None
        self._load_notes: list[str] = []
        self.loads = 0
        self.digests = {} if digests is None else digests

    @staticmethod
    def key(request: GenerationRequest, digests: dict[str, str] | None = None) -> str:
        """Which loaded generator ``request`` needs (``digests``: see :func:`lora_digest`)."""
        options = {k: v for k, v in request.generator_options.items() if k in MODEL_GENERATOR_SETTINGS and k not in MODEL_NAMING_SETTINGS}
        options["model_source"] = model_source(request.generator_options)  # one model however it is named
        # --max_gpu_memory picks the memory mode for the frame size: another size, another plan.
        size = request.resolution if "max_gpu_memory" in options else None
        if options.get("lora"):  # by its weights too: an adapter replaced at its path since is loaded again
            options["lora_sha256"] = lora_digest(options["lora"], digests)
        return json.dumps([request.generator, options, size], sort_keys=True, default=str)

    def get(self, request: GenerationRequest, progress: ProgressFactory | None = None) -> tuple[Any, bool]:
        """The generator for ``request`` with its per-run settings, and whether it was loaded now
        (``progress``: the loading's stage, as :func:`make_generator`)."""
        from gen3c.io.resolution import parse_resolution

        key = self.key(request, self.digests)
        loaded = key != self._key
        if loaded:
            self.clear()
            with record_notes() as said:
                self._generator = make_generator(request, progress)
            self._key, self._load_notes = key, said
            self.loads += 1
        generator = self._generator
        if hasattr(generator, "seed"):
            generator.seed = request.seed
        gen3c = sys.modules.get("gen3c.pipelines.gen3c")  # (not imported: no gen3c generator was loaded)
        if gen3c is not None and isinstance(generator, gen3c.Gen3cGenerator):  # in the command line's words, respelled per surface
            from gen3c.pipelines.loading import configure_generator

            configure_generator(generator, request.generator_options)
        elif callable(getattr(generator, "configure", None)):  # the prompts and sampling settings (a custom generator's)
            generator.configure(request.generator_options)
        misfit = getattr(generator, "memory_plan_misfit", None)  # --max_gpu_memory's plan left T5 out, and this prompt needs it
        if not loaded and callable(misfit) and misfit(*parse_resolution(request.resolution)) is not None:
            self.clear()
            return self.get(request, progress)
        if not loaded:
            for message in self._load_notes:
                note(message, stacklevel=2)
        return generator, loaded

    def clear(self) -> None:
        """Drop the loaded generator and give its accelerator memory back."""
        self._generator, self._key, self._load_notes = None, None, []
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def lora_digest(path: str | os.PathLike, digests: dict[str, str] | None = None) -> str | None:
    """The adapter's :func:`~gen3c.training.lora.lora_sha256`; None when it cannot be read (loading it says why).

    ``digests``: digests already read, added to: an adapter whose weights file has the same path,
    inode, size and modification time is not read again (one replaced at its path since, as
    ``gen3c train`` writes it or copied over, is)."""
    from gen3c.training.lora import lora_sha256, lora_weights_file

    try:
        file = lora_weights_file(path)
        stat = file.stat()
        key = f"lora {file.resolve()} {stat.st_ino} {stat.st_size} {stat.st_mtime_ns}"
        if digests is None:
            return lora_sha256(file)
        if key not in digests:
            digests[key] = lora_sha256(file)
        return digests[key]
    except (OSError, Gen3cInputError):
        return None


def check_frame_count(request: GenerationRequest) -> None:
    """Refuse frame counts the named generator cannot make (its chunk: :func:`fixed_chunk_frames`),
    and a camera file of another count, before anything is loaded."""
    fixed = fixed_chunk_frames(request)
    if request.camera_file is not None:
        from gen3c.io.camera_files import check_camera_count

        count = len(request.read_camera_file().cameras)
        other_file = True  # offer a file of --num_video_frames cameras: not where the generator cannot make that many frames
        if fixed is not None and count != request.num_video_frames:
            # a file the generator cannot follow at any --num_video_frames: that first, not a count it refuses next
            check_chunked_frame_count(count, fixed, f"the {request.generator} generator", str(request.camera_file))
            other_file = makes_frame_count(request.num_video_frames, fixed)
        # before the input is read: its notes (a short video's frozen tail) would offer a count the file refuses
        check_camera_count(count, request.num_video_frames, f"camera file {quoted_path(request.camera_file)}", other_file)
    if fixed is not None:
        # the count is the file's (by default, or given alike): the fix is another file
        camera_file = None if request.camera_file is None else str(request.camera_file)
        check_chunked_frame_count(request.num_video_frames, fixed, f"the {request.generator} generator", camera_file, "--num_video_frames")


def check_frame_size(resolution: str, generator) -> None:
    """Refuse a working ``resolution`` ("HxW") the generator cannot take (the gen3c model's size
    limits, offering sizes it takes: :func:`~gen3c.io.resolution.parse_resolution`'s ``model_check``),
    before the cache is rendered."""
    from gen3c.io.resolution import parse_resolution

    parse_resolution(resolution, getattr(generator, "check_frame_size", None))


#: Fields that name a file or something else (numbers, a name, a hub id).
MAYBE_PATH_FIELDS = ("intrinsics", "depth_estimator")


def resolve_paths(settings: dict[str, Any], base: Path) -> dict[str, Any]:
    """``settings`` (a request's, by field) with the relative paths they name resolved against
    ``base``: :data:`PATH_FIELDS` always; :data:`MAYBE_PATH_FIELDS` and the generator options'
    :data:`OPTION_PATH_FIELDS` when the value is a path — a file or folder under ``base``, or a
    value that can be nothing else (:func:`may_name_no_path`: "fx,fy,cx,cy", 'moge' and an
    ``org/name`` hub id stay). Batch manifests resolve against their folder, run records against
    the folder the run started in."""
    out = dict(settings)
    for key in PATH_FIELDS:
        if isinstance(out.get(key), str) and out[key].strip():  # an empty one stays, for the request to refuse
            out[key] = str(_against(out[key], base, key))
    for key in MAYBE_PATH_FIELDS:
        if isinstance(out.get(key), str):
            out[key] = _if_path(key, out[key], base)
    options = out.get("generator_options")
    if isinstance(options, dict):
        out["generator_options"] = {
            key: _if_path(key, value, base) if key in OPTION_PATH_FIELDS and isinstance(value, str) else value for key, value in options.items()
        }
    return out


def may_name_no_path(key: str, value: str) -> bool:
    """Whether ``value`` of the path-or-other field ``key`` may be something other than a path:
    numbers for ``intrinsics``; a name or an ``org/name`` hub id for ``depth_estimator`` and
    ``checkpoint_dir`` (any but what :func:`~gen3c.io.paths.looks_like_path` takes for a path; an
    empty one too, which names no folder); never for ``lora`` and ``cache_dir``."""
    if key == "intrinsics":
        from gen3c.io.intrinsics import spec_numbers

        return spec_numbers(value) is not None
    if key in ("depth_estimator", "checkpoint_dir"):
        return not looks_like_path(value)
    return False


def _against(value: str, base: Path, key: str = "path") -> Path:
    p = expand_home(value, key)
    return p if p.is_absolute() else base / p


def _if_path(key: str, value: str, base: Path) -> str:
    """``value`` resolved against ``base`` when it is a relative path: a file or folder there, or
    a value that can be nothing else; else as is ("fx,fy,cx,cy", a hub id, 'moge', and an empty
    value, which the field's check refuses: not ``base`` itself)."""
    if not value.strip():
        return value
    try:
        candidate = _against(value, base)
        if Path(value).expanduser().is_absolute() or (may_name_no_path(key, value) and not candidate.exists()):
            return value
        return str(candidate)
    except (OSError, ValueError, RuntimeError):
        return value


#: Keys of a run record (``NAME_run.json``) that are not request settings: what the run found
#: and wrote (:func:`run_record`; ``outputs`` is added by :meth:`OutputWriter.finish`).
RECORD_KEYS = ("generator_settings", "inputs_sha256", "in_memory_inputs", "notes", "versions", "machine", "ended_at",
               "outputs")  # fmt: skip
#: Distributions whose versions a run record names (those installed): they decide the frames and
#: the mp4's bytes (PyAV encodes it).
RECORDED_PACKAGES = ("numpy", "av", "diffusers", "transformers")


def run_record(
    request: GenerationRequest,
    generator_settings: dict[str, Any] | None = None,
    notes: Sequence[str] = (),
    inputs_sha256: dict[str, str] | None = None,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """What ``NAME_run.json`` holds (before ``outputs``): enough to see what ran and run it again.

    - the request's settings, with the defaults filled in (resolution, frame count, frame rate)
      and the input paths made absolute (a path typed relative to where the run started would
      name nothing once the record is read elsewhere);
    - ``generator_settings``: what the gen3c generator ran with, its checkpoint included
      (:meth:`~gen3c.pipelines.gen3c.Gen3cGenerator.settings`); absent for the preview;
    - ``inputs_sha256``: by field, the sha256 of each input file (as ``sha256sum`` prints it) or
      folder (:func:`~gen3c.pipelines.resume.input_digests`), so an input changed since under the
      same path can be told; ``inputs_sha256`` where the run has them already (a long run's,
      hashed for ``--resume`` as it started: not read again);
    - ``in_memory_inputs``: only for inputs handed over in memory (:func:`generate` with arrays),
      whose path fields are null: by field, what stood for the file (type, shape, dtype, the
      sha256 of its bytes: :func:`describe_array`). Such a record cannot be run again;
    - ``notes``: what gen3c noted during the run (``gen3c generate`` prints them as "note:"), e.g.
      that the geometric prior stood in for a depth estimator that did not load, or a kernel's
      fallback: where what ran departs from what was asked. They name settings by the record's
      own keys (:func:`~gen3c.pipelines.spelling.row_spelling`: ``chunk_frames 16``, not
      ``--chunk_frames 16``), whichever surface ran it: the record is a manifest row;
    - ``versions``: of gen3c (and ``gen3c_code``, the sha256 of its Python files,
      :func:`~gen3c.environment.code_digest`: a source install's code changes without its
      version), Python, torch and :data:`RECORDED_PACKAGES`;
    - ``machine``: where the frames were made (``device``: the CPU, or CUDA and the GPU's name,
      :func:`~gen3c.environment.device_kind`; ``device``, None: this process's default), the CPU
      (:func:`~gen3c.environment.cpu_kind`) and torch's CPU threads: another GPU, CPU or thread
      count can move a frame's last bits;
    - ``ended_at``: when the run ended, in UTC (:func:`~gen3c.environment.utc_timestamp`).

    ``gen3c batch NAME_run.json`` runs the record again (docs/batch.md).
    """
    import platform
    from importlib import metadata

    from gen3c import __version__
    from gen3c.environment import code_digest, cpu_kind, device_kind, utc_timestamp
    from gen3c.pipelines.resume import input_digests

    record = resolve_paths(request.to_dict(), Path.cwd())
    if generator_settings is not None:
        record["generator_settings"] = generator_settings
    if inputs_sha256 is None:
        inputs_sha256 = input_digests(record, read=request.read_input_contents())
    record["inputs_sha256"] = inputs_sha256
    if request.in_memory is not None:
        record["in_memory_inputs"] = request.in_memory.described
    # torch's own string: the build too (2.14.1+cu130), which its package metadata leaves out
    versions = {"gen3c": __version__, "gen3c_code": code_digest(), "python": platform.python_version(), "torch": torch.__version__}
    for name in RECORDED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    record["notes"] = [row_spelling(n) for n in dict.fromkeys(notes)]
    record["versions"] = versions
    record["machine"] = {"device": device_kind(device), "cpu": cpu_kind(), "cpu_threads": torch.get_num_threads()}
    record["ended_at"] = utc_timestamp()
    return record


@dataclass
class RunOutput:
    """What :func:`run_request` (and :func:`generate`) made.

    Attributes:
        result: the :class:`~gen3c.pipelines.camera_video.VideoResult`: ``frames`` (T, 3, H, W)
            in [−1, 1] when kept (a video of one chunk), ``cameras``, ``buffers``.
        paths: the files written, by key (``"video"``, ``"cameras"``, ``"run"``, …).
        seconds: how long the run took.
    """

    result: VideoResult
    paths: dict[str, Path]
    seconds: float
    #: What the generator ran with, where it says (:meth:`~gen3c.pipelines.gen3c.Gen3cGenerator.settings`).
    generator_settings: dict[str, Any] | None = None

    __repr__ = dataclass_repr


class RunStage:
    """Which stage of a run is under way, for the message of running out of accelerator memory
    there (:func:`out_of_memory_as_error`): set by :func:`run_request` at each of its steps, and by
    the progress stages it hands on (:meth:`progress`); ``generator``: the one the run uses, once known."""

    def __init__(self, name: str, request: GenerationRequest | None = None) -> None:
        self.name = name
        self.request = request
        self.generator: Any = None
        self.partial: PartialRun | None = None  # a long run's kept chunks, once it generates: said when it stops (run_request)

    def progress(self, progress: ProgressFactory | None) -> ProgressFactory | None:
        """``progress``, noting each stage it starts ("Chunk 2/3: rendering 3D cache" → "rendering
        3D cache for chunk 2/3"); None stays None (no stage is noted then: the message names the step
        run_request set, "rendering 3D cache or generating")."""
        if progress is None:
            return None

        def factory(stage: str, total: int):
            label, _, what = stage.partition(": ")
            if not (label.startswith("Chunk ") and what):
                label, what = "", stage
            what = what[:1].lower() + what[1:]
            self.name = f"{what} for chunk {label.removeprefix('Chunk ')}" if label else what
            return progress(stage, total)

        return factory


@contextlib.contextmanager
def out_of_memory_as_error(stage: RunStage):
    """Turn running out of accelerator memory in a stage outside the model's own (which say theirs:
    the tokenizer, T5, the DiT) into a :class:`Gen3cMemoryError` naming ``stage`` and what to try:
    rendering the 3D cache on the GPU, handing renders and frames over, a depth estimate. It was
    torch's traceback (the GUI: "internal error")."""
    try:
        yield
        return
    except torch.OutOfMemoryError:
        pass
    # Outside the except clause: the traceback's frames (and their tensors) are freed.
    gc.collect()
    raise out_of_memory_error(stage.name, stage.generator, stage.request) from None


def out_of_memory_error(stage: str, generator: Any = None, request: GenerationRequest | None = None) -> Gen3cMemoryError:
    """The one-line error for running out of accelerator memory while ``stage``: a gen3c generator's
    names the flag of its memory plan to try (:meth:`~gen3c.pipelines.gen3c.Gen3cGenerator.out_of_memory_error`),
    as does the loading of the gen3c model ``request`` names (the plan its options ask for); else
    what frees the GPU."""
    made = getattr(generator, "out_of_memory_error", None)
    if callable(made):
        return made(stage)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if generator is None and request is not None and request.generator == "gen3c" and stage.startswith("loading"):
        from gen3c.models.memory import out_of_memory_message, requested_memory_plan

        options = request.generator_options
        plan = requested_memory_plan(options)  # (as load_generator plans)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        return Gen3cMemoryError(out_of_memory_message(plan, device, stage, lora=bool(options.get("lora")), max_gpu_memory=options.get("max_gpu_memory")))
    used = ""
    if torch.cuda.is_available():
        free, whole = torch.cuda.mem_get_info()
        used = f" ({(whole - free) / 2**30:.1f} of {whole / 2**30:.1f} GB in use)"
    if stage.startswith("estimating the camera"):
        fix = "close other programs on the GPU, or pass --fov DEGREES or --intrinsics fx,fy,cx,cy"
    elif stage.startswith("estimating"):
        fix = "close other programs on the GPU, or pass a depth map as --depth_path (`gen3c depth` makes one) or --depth_estimator prior (no weights)"
    elif stage.startswith("loading"):
        fix = "close other programs on the GPU or use one with more memory"
    else:
        fix = "close other programs on the GPU, or pass a smaller --resolution"
    return Gen3cMemoryError(f"the GPU ran out of memory while {stage}{used}: {fix}")


def run_request(
    request: GenerationRequest,
    *,
    source: SourceView | None = None,
    generator=None,
    generators: GeneratorPool | None = None,
    progress: ProgressFactory | None = None,
    keep_frames: bool | None = None,
    resume: bool = False,
    restart_changed: bool = False,
    source_notes: Sequence[str] = (),
    grant_trust: str | None = CLI_GRANTS_TRUST,
    resume_with: str | None = CLI_RESUMES,
) -> RunOutput:
    """Run one request end to end, writing its outputs as chunks finish (memory stays flat).

    Args:
        source: an already prepared source view (e.g. the GUI's loaded image); read from the
            request's files when None.
        generator: a generator to reuse across requests; made from the request when None.
        generators: where to take the generator from when none is given, after the input is
            read: a :class:`GeneratorPool` keeps it loaded for the next request.
        progress: stage-wise progress callbacks (see :data:`ProgressFactory`); long videos
            report each chunk's stages as "Chunk k/n: …".
        keep_frames: also keep every frame (and buffer) in the result; default: only for a run of
            one chunk, so long videos stream to disk with flat memory.
        resume: continue the interrupted run of this request from its last finished chunk. A run
            of several chunks keeps each finished chunk in ``NAME.partial/`` beside its outputs
            (:mod:`gen3c.pipelines.resume`) until it finishes; without ``resume`` an unfinished
            run there is an error, so nothing is lost by mistake.
        restart_changed: with ``resume``, kept chunks made with another chunk plan or generator
            settings are deleted and the run starts over, saying why, instead of being refused
            (``gen3c batch``: :meth:`~gen3c.pipelines.resume.PartialRun.open`).
        source_notes: the notes made while ``source`` was read (the GUI keeps them), which the
            run record lists before the run's own (:func:`run_record`).
        grant_trust: how the caller's user allows a legacy pickled ``.pt`` sample, said when one
            is refused (:func:`read_input`): the command line's flag by default.
        resume_with: how the caller's user continues a long run cut short (the command line's
            ``--resume`` by default), said when the run stops (an error, Ctrl-C) with how many
            chunks are kept where; None: the caller does not resume (the GUI), nothing is said.
    """
    from gen3c.io.atomic import removed_if_left_empty
    from gen3c.parallel import is_main_process

    # A run that fails (a bad input, a missing model) leaves no empty output folder behind.
    stage = RunStage("reading the input", request)
    try:
        with removed_if_left_empty(request.video_save_folder if is_main_process() else None), record_notes() as notes:
            notes.extend(source_notes)
            with out_of_memory_as_error(stage):  # (its error, too, is told what is kept)
                return _run_request(request, source=source, generator=generator, generators=generators, progress=progress,
                                    keep_frames=keep_frames, resume=resume, restart_changed=restart_changed, notes=notes,
                                    grant_trust=grant_trust, resume_with=resume_with, stage=stage)  # fmt: skip
    except BaseException as exc:
        kept = stage.partial.kept_line() if stage.partial is not None else ""
        if kept:
            say_kept(exc, kept)
        raise


def say_kept(exc: BaseException, kept: str) -> None:
    """Add ``kept`` (:meth:`~gen3c.pipelines.resume.PartialRun.kept_line`) to what the error or
    interrupt a long run stopped on says: an interrupt's message is it (the command line prints
    "interrupted: " before it), a one-line error's ends with it, any other error (a bug, a GPU
    driver's) shows it as a note below its traceback, which the command line prints."""
    if isinstance(exc, KeyboardInterrupt):  # Ctrl-C or SIGTERM (errors.Terminated), of its type still
        exc.args = (kept,)
    elif isinstance(exc, Gen3cInputError):
        exc.args = (f"{exc}; {kept}",)
    else:
        exc.add_note(kept)


def _run_request(
    request: GenerationRequest,
    *,
    source: SourceView | None,
    generator,
    generators: GeneratorPool | None,
    progress: ProgressFactory | None,
    keep_frames: bool | None,
    resume: bool,
    restart_changed: bool,
    notes: list[str],
    grant_trust: str | None,
    resume_with: str | None,
    stage: RunStage,
) -> RunOutput:
    from gen3c.io.atomic import ensure_writable_dir
    from gen3c.parallel import check_launch, is_main_process, objects_from_main

    started = time.perf_counter()
    # 1. Check the request (the model's settings first: a --num_gpus the model cannot split is
    # said before "launch with torchrun"), then, under torchrun, that --num_gpus matches the launch.
    check_request(request)
    # a request built in Python too: a setting this run would ignore (a preset's beside a camera file,
    # the preview's seed) is refused as gen3c generate, gen3c.generate and batch manifests refuse it
    check_unused_settings(request)
    check_dependencies(request)
    if generator is None:
        check_generator_setup(request)
    else:
        check_gen3c_only(request)  # (check_generator's first step, for a generator given)
        check_frame_size(request.resolution, generator)  # (and its resolution check, by this generator's sizes)
    check_frame_count(request)
    num_gpus = request.generator_options.get("num_gpus", 1)
    check_launch(num_gpus)
    main = is_main_process()
    if main:
        ensure_writable_dir(request.video_save_folder, "--video_save_folder")
        # Outputs the folder holds as a folder, or spelled otherwise (macOS, Windows: Demo.mp4 for
        # demo.mp4): refused now, not once the model has loaded (the writer checks them again).
        check_output_files(request.video_save_folder, request.video_save_name, save_buffer=request.save_buffer, point_cloud=request.save_point_cloud)
        check_inputs_kept(request)
    else:
        progress = None  # one set of bars, rank 0's (the model's loading too: gen3c.generate under torchrun)
    # 2. Read the input (cache plan, cameras, first frame) before a model loads: a mistake in it
    # ends the run in a second, not after minutes of loading weights.
    scene = load_scene(request, source, grant_trust, progress)
    if generator is None:
        stage.name = f"loading the {request.generator} model"
        generator = make_generator(request, progress) if generators is None else generators.get(request, progress)[0]
    stage.name, stage.generator = "rendering 3D cache or generating", generator  # (as the progress stages name them)
    progress = stage.progress(progress)
    if hasattr(generator, "fps"):
        # The gen3c model's DiT places frames in time by their rate: GEN3C gives it the --fps the
        # video is written at (gen3c_single_image.py, gen3c_persistent.py), so this run's.
        generator.fps = request.fps
    settings = generator.settings() if callable(getattr(generator, "settings", None)) else None
    noise_aug_strength = getattr(generator, "noise_aug_strength", 0.0)
    check_noise_aug_strength(scene.kind, noise_aug_strength)  # (a generator handed over: its own)
    T = request.num_video_frames
    chunk_frames = resolve_chunk_frames(T, generator, request.chunk_frames)
    check_num_frames(T, generator, chunk_frames)
    check_frame_size(request.resolution, generator)
    chunks = plan_chunks(T, chunk_frames)
    num_chunks = len(chunks)
    if not main:
        # Another rank of a multi-GPU run: the same sampling, no outputs (rank 0 writes them).
        first_frame, start_chunk = scene.first_frame, 0
        if resume and num_chunks > 1:  # where rank 0's kept chunks end, as it sends them below
            start_chunk, resumed_frame, state = objects_from_main(None, None, None)
            if start_chunk:
                scene.plan.load_state_dict(state)
                first_frame = resumed_frame
        result = generate_video(
            scene.plan, scene.cameras, generator, first_frame, chunk_frames=chunk_frames, keep=False, start_chunk=start_chunk
        )
        return RunOutput(result=result, paths={}, seconds=time.perf_counter() - started)
    keep = num_chunks == 1 if keep_frames is None else keep_frames
    partial = None
    if num_chunks > 1:
        partial = PartialRun.open(
            request.video_save_folder, request.video_save_name, request.to_dict(), chunks, resume=resume, read=request.read_input_contents(),
            generator_settings=settings, restart_changed=restart_changed, resume_with=resume_with,
        )
        if partial.finished and keep:
            raise ValueError("keep_frames cannot be used when resuming: the finished chunks are on disk as uint8 frames")
    else:
        if resume:
            note(f"--resume: a run of one chunk has nothing to resume; making all {T} frames", stacklevel=2)
        if isinstance(noise_aug_strength, numbers.Real) and noise_aug_strength > 0:  # not refused: more frames would use it
            note(
                f"--noise_aug_strength {noise_aug_strength:g}: a video of one chunk ({T} frames) has one buffer, the image's, which "
                f"GEN3C never noises, so nothing changes; it noises the newest buffer from chunk 2 on (--num_video_frames "
                f"{2 * (chunk_frames or T) - 1} and more)",
                stacklevel=2,
            )
        if request.chunk_frames is not None and getattr(generator, "chunk_frames", None) is None:
            # Not an error: a batch manifest may give one chunk size to rows of different lengths.
            # (A generator with its own chunk has checked the flag against it: it changes nothing there either way.)
            note(f"--chunk_frames {request.chunk_frames}: the run has only {T} frames; making them in one chunk", stacklevel=2)
    try:
        stage.partial = partial
        # 3. Generate chunk by chunk, streaming the outputs (and keeping finished chunks)
        num_buffers = scene.plan.buffers_for(num_chunks)
        with OutputWriter(
            request.video_save_folder, request.video_save_name, save_buffer=request.save_buffer, num_buffers=num_buffers, fps=request.fps,
            point_cloud=request.save_point_cloud,
        ) as out:
            first_frame, sink, on_chunk = scene.first_frame, out, None
            if partial is not None:
                sink = ChunkKeeper(out, partial, scene.plan)
                on_chunk = sink.chunk_done
                if partial.finished:
                    first_frame = restore(partial, scene.plan)
                if resume and num_gpus != 1:  # the other ranks of a multi-GPU run start where the kept chunks end, as this one
                    # (on the CPU, as read from disk: a GPU tensor pickled here would unpickle onto cuda:0 on every rank)
                    state = {key: value.cpu() for key, value in scene.plan.state_dict().items()} if partial.finished else None
                    objects_from_main(partial.finished, first_frame.cpu() if partial.finished else None, state)
                if partial.finished:
                    sink.replay(chunks, progress)
            result = generate_video(
                scene.plan, scene.cameras, generator, first_frame, progress, chunk_frames=chunk_frames, sink=sink, keep=keep,
                start_chunk=partial.finished if partial else 0, on_chunk=on_chunk,
            )  # fmt: skip
            stage.name = "writing the outputs"
            # where the frames were made: the model's GPU, else where the cache is (the preview's, a model's on the CPU)
            frames_device = getattr(generator, "render_device", None) or scene.first_frame.device
            point_cloud = scene.plan.point_cloud() if request.save_point_cloud else None
            record = run_record(request, settings, notes, partial.inputs if partial else None, frames_device)
            paths = out.finish(scene.cameras, point_cloud=point_cloud, metadata=record)
    except BaseException as exc:
        if partial is not None:
            partial.release()
        # Nothing finished: nothing worth keeping (run_request says what is kept otherwise). A
        # setting's failure neither: its fix makes another run, and the same settings fail again.
        if partial is not None and (isinstance(exc, Gen3cSettingError) or not partial.recount()):
            partial.remove()
        raise
    if partial is not None:
        partial.remove()
    return RunOutput(result=result, paths=paths, seconds=time.perf_counter() - started, generator_settings=settings)


def check_inputs_kept(request: GenerationRequest) -> None:
    """Refuse a run that would write one of its outputs over a file it reads: a ViPE clip's
    ``rgb/NAME.mp4`` or a sample directory's ``rgb.mp4`` with the outputs written beside it under
    that name, a ``--camera_file`` named ``NAME_cameras.json`` in the output folder. The run read
    the input, then replaced it with its own video: the input was lost."""
    from gen3c.io.paths import exists, same_file
    from gen3c.pipelines.resume import INPUT_FIELDS, input_files

    outputs = output_files(request.video_save_folder, request.video_save_name, save_buffer=request.save_buffer, point_cloud=request.save_point_cloud)
    outputs = [path for path in outputs if path.is_file()]  # (an output not there yet replaces no input)
    if not outputs:
        return
    for field in INPUT_FIELDS:
        value = getattr(request, field)
        if not (isinstance(value, str) and value and exists(value)):  # (intrinsics given as numbers too)
            continue
        given = Path(value).expanduser()
        for _, path in input_files(field, given, request.vipe_clip):
            replaced = next((output for output in outputs if same_file(path, output)), None)
            if replaced is not None:
                what = "is that file" if same_file(path, given) else f"holds {quoted_path(path)}"
                raise Gen3cInputError(
                    f"the input --{field} {quoted_path(value)} {what}, which this run would replace with its output "
                    f"{quoted_path(replaced)}: {OTHER_NAME}"
                )


def generate(
    image: str | os.PathLike | torch.Tensor | np.ndarray | PIL.Image.Image,
    *,
    depth: str | os.PathLike | torch.Tensor | np.ndarray | DepthEstimate | None = None,
    generator: str = "gen3c",
    video_save_folder: str | os.PathLike = "outputs",
    video_save_name: str | None = None,
    progress: bool | ProgressFactory = True,
    keep_loaded: bool = True,
    resume: bool = False,
    **settings: Any,
) -> RunOutput:
    """A camera-controlled video from an image in one call: ``gen3c generate --generator gen3c`` from Python.

    Without ``checkpoint_dir`` the GEN3C weights are fetched and converted on first use, then
    reused (:mod:`gen3c.models.weights`). The loaded model stays loaded for the next call with
    the same model settings, so a loop over trajectories, seeds or prompts loads it once::

        for path in ("left", "right", "zoom_in"):
            gen3c.generate("photo.png", trajectory=path, video_save_name=path)

    The image and depth may each be a file or in memory, as a diffusers pipeline takes them::

        gen3c.generate(PIL.Image.open("photo.png"), depth=depth_array, fov=60, generator="preview")

    An image in memory runs exactly as the same pixels saved as a PNG (and depth as ``.npy``):
    same checks, defaults, trajectory, resolution handling, notes and outputs, the same frames.
    Its run record (``NAME_run.json``) has null for what was in memory (``input_image_path``,
    ``depth_path``) and says what it was (``in_memory_inputs``: shape, dtype, sha256); a file
    given beside it keeps its path and sha256. ``gen3c batch`` cannot run such a record again.

    Args:
        image: the source image: a path (or anything ``--input_image_path`` takes), or in memory
            as :func:`~gen3c.pipelines.camera_video.prepare_source` takes it: a PIL image, an
            (H, W, 3) uint8 array (or float in [0, 1]), a (3, H, W) tensor, float in [−1, 1] or uint8.
        depth: its z-depth: a file (``--depth_path``; ``gen3c depth``'s ``NAME_depth.npy`` comes
            with its record), a :class:`~gen3c.depth.base.DepthEstimate` (an estimator's output:
            its kind, camera and trusted pixels kept, as that record keeps them), or an (H, W)
            array or tensor, taken as the same array saved as ``.npy`` with no record: metric
            depth (any real dtype; another size of the image's aspect ratio resized with a note;
            NaN / +inf far away, ≤ 0 left out; a numpy masked array's masked pixels as NaN); None
            estimates depth (MoGe).
        generator: "gen3c" (the diffusion model) or "preview" (CPU hole filling, no weights).
        video_save_name: the outputs' name; default: the image file's stem, "output" for an image in memory.
        progress: True draws the command line's bars on stderr, one per stage (loading the
            model, rendering the 3D cache, generating; :func:`gen3c.progress.progress_bars`);
            False draws none and prints nothing: a quiet notebook cell; a
            :data:`~gen3c.progress.ProgressFactory` (``progress(stage, total) -> advance(n=1)``)
            is called for those stages instead of any bar (a GUI's own progress, a log).
        keep_loaded: keep the generator's model loaded after the call for the next one with the
            same model settings (one model at a time: other settings replace it); False frees it
            (and its GPU memory) when the call returns.
        resume: continue the long run (several chunks) of the same call that stopped (an error,
            Ctrl-C), from the chunks it kept (``NAME.partial/``), as ``gen3c generate --resume``;
            a call that stops after keeping one says so.
        settings: any other ``gen3c generate`` setting by its flag name: the run's
            (``trajectory``, ``movement_distance``, ``num_video_frames``, ``fov``, ``seed``, …)
            and the gen3c generator's (``checkpoint_dir``, ``guidance``, ``num_steps``,
            ``prompt``, ``low_memory``, ``max_gpu_memory``, …). Where a flag takes a path, a
            dtype or a device, the Python object does too (``pathlib.Path``, ``dtype=torch.float16``,
            ``device=torch.device("cuda", 1)``), recorded as its text ("float16", "cuda:1"); so
            do ``intrinsics=`` a (3, 3) K in pixels of the image or (fx, fy, cx, cy), and
            ``resolution=(H, W)`` ("fx,fy,cx,cy", "HxW").

    Returns:
        :class:`RunOutput`: ``paths["video"]`` (the mp4 written), ``result.frames`` ((T, 3, H, W) in
        [−1, 1], kept for a video of one chunk), ``result.cameras``.
    """
    with spelled(keyword_spelling):  # worded for gen3c generate (--seed): this call's keyword arguments (seed=)
        return _generate(image, depth, generator, video_save_folder, video_save_name, progress, keep_loaded, resume, settings)


def _generate(image, depth, generator: str, video_save_folder, video_save_name: str | None, progress: bool | ProgressFactory,
              keep_loaded: bool, resume: bool, settings: dict[str, Any]) -> RunOutput:  # fmt: skip
    """:func:`generate`, its refusals worded for the command line."""
    where = "gen3c.generate()"
    # ("false" would draw bars; a factory was taken for True; progress(n) failed at the first stage in a TypeError)
    if not (isinstance(progress, bool) or callable_as(progress, "stage", 1)):
        given = describe_progress(progress, "progress(stage, total)")
        raise Gen3cInputError(f"{where}: progress is {given}: pass True (bars), False (quiet) or a callable progress(stage, total) -> advance(n=1)")
    if not isinstance(video_save_folder, (str, os.PathLike)):
        raise Gen3cInputError(f"{where}: video_save_folder is {describe_value(video_save_folder)}: pass a folder path")
    if not isinstance(resume, bool):  # ("false" would resume)
        raise Gen3cInputError(f"{where}: resume is {describe_value(resume)}: pass True or False")
    image_file = isinstance(image, (str, os.PathLike))
    depth_file = depth is None or isinstance(depth, (str, os.PathLike))
    in_memory = (None if image_file else image, None if depth_file else depth)
    memory = None if image_file and depth_file else InMemoryInput.from_arrays(*in_memory, where)
    for key, argument in (("input_image_path", "image"), ("depth_path", "depth")):
        if key in settings:  # the call's own argument sets it: a second value would be dropped
            raise Gen3cInputError(f"{where}: setting '{key}' is what the `{argument}` argument gives: pass the file as `{argument}` instead")
    known = {f.name for f in fields(GenerationRequest)} - {"generator_options"}
    settings = {k: _setting_text(k, v, where) for k, v in settings.items()}
    options = {k: v for k, v in settings.items() if k not in known}
    _check_setting_names(options, known, generator)
    data = {k: v for k, v in settings.items() if k in known}
    if video_save_name is None:  # (an empty name is refused as the command line's is, not taken for none)
        video_save_name = Path(image).stem if image_file else "output"
    data.update(
        input_image_path=str(image) if image_file else None, depth_path=str(depth) if depth_file and depth is not None else None,
        generator=generator, video_save_folder=str(video_save_folder), video_save_name=video_save_name, generator_options=options,
    )  # fmt: skip
    request = GenerationRequest.from_dict(data, name=where)
    request.in_memory = memory
    check_unused_settings(request, where, given=settings)  # (trajectory="left" beside camera_file= too)
    check_request(request)  # (run_request's first check, kept first)
    check_generator(request, given=settings)  # memory_mode="resident" beside low_memory=True too: run_request cannot tell it was given
    from gen3c.library_output import libraries_quiet
    from gen3c.progress import progress_bars

    try:
        if progress is True:
            with progress_bars() as bars:  # the command line's stages, on stderr
                return run_request(request, generators=GENERATE_POOL, progress=bars, resume=resume, grant_trust=PYTHON_GRANTS_TRUST, resume_with=PYTHON_RESUMES)
        factory = (lambda stage, total: lambda n=1: None) if progress is False else progress
        # diffusers' and transformers' bars too; only the gen3c generator uses diffusers, which a preview
        # run imported just to quiet it: ~170 MB and seconds, and TORCHINDUCTOR_CACHE_DIR set in os.environ
        libraries = ("diffusers", "transformers") if request.generator == "gen3c" else ("transformers",)
        with libraries_quiet(libraries):
            return run_request(request, generators=GENERATE_POOL, progress=factory, resume=resume, grant_trust=PYTHON_GRANTS_TRUST, resume_with=PYTHON_RESUMES)
    finally:
        if not keep_loaded:
            GENERATE_POOL.clear()


#: The model :func:`generate` keeps loaded between calls (``keep_loaded``).
GENERATE_POOL = GeneratorPool()


def _setting_text(key: str, value: Any, where: str) -> Any:
    """A Python object that stands for a setting's text, as that text, so the run record stays
    JSON and is the string form's: a path as str, a torch dtype for ``dtype`` by its name
    (torch.float16: "float16"), a torch device for ``device`` as its text ("cuda:1"), an (H, W)
    pair for ``resolution`` as "HxW" (prepare_source's form), and a (3, 3) K or (fx, fy, cx, cy)
    for ``intrinsics`` as "fx,fy,cx,cy" (:func:`_intrinsics_text`)."""
    if isinstance(value, os.PathLike):
        return str(value)
    # Each was "setting 'resolution' must be str, got a tuple of 2 items", though prepare_source takes
    # resolution=(H, W), and a K in memory had to be spelt out as text.
    if key == "resolution" and isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 1 and not getattr(value, "is_meta", False):
        value = value.tolist()  # (as prepare_source takes np.array([H, W]) or torch.tensor([H, W]))
    if key == "resolution" and isinstance(value, (tuple, list)):
        if len(value) != 2 or not all(is_whole_number(v) for v in value):
            raise Gen3cInputError(f"{where}: setting 'resolution' is {describe_value(value)}: pass (H, W), two whole numbers, e.g. (704, 1280), or 'HxW'")
        return f"{int(value[0])}x{int(value[1])}"
    if key == "intrinsics" and value is not None and not isinstance(value, str):
        return _intrinsics_text(value, where)
    if key == "dtype" and isinstance(value, torch.dtype):
        name = configs.dtype_name(value)
        if name is None:
            raise Gen3cInputError(f"{where}: setting 'dtype' is {value}: pass {', '.join(f'torch.{n}' for n in configs.DTYPE_NAMES)} or its name")
        return name
    if key == "device" and isinstance(value, torch.device):
        return str(value)
    return value


def _intrinsics_text(value: Any, where: str) -> str:
    """``intrinsics=`` given as a (3, 3) pinhole K in pixels of the input image (a tensor, an array,
    nested lists) or as the four numbers (fx, fy, cx, cy): the "fx,fy,cx,cy" text ``--intrinsics``
    takes, each number exactly (``repr``: a float32 K reads back as itself). A K with skew, or
    of another shape, is refused: ``--intrinsics`` has no skew."""
    from gen3c.cameras import as_float64, validate_intrinsics

    name = f"{where}: setting 'intrinsics'"
    numbers_ = as_float64(value, name)
    if numbers_.shape == (3, 3):
        K = validate_intrinsics(numbers_, name)
        # Rounding left by a K computed through rotations or float32 (1e-13 of a pixel) is no skew:
        # it was refused as "has skew (K[0, 1] = -8.95809e-14 …)" where prepare_source took that K.
        if max(abs(float(K[0, 1])), abs(float(K[1, 0]))) > 1e-6 * max(float(K[0, 0]), float(K[1, 1])):
            raise Gen3cInputError(f"{name} has skew (K[0, 1] = {float(K[0, 1]):g}, K[1, 0] = {float(K[1, 0]):g}): gen3c's cameras have none, pass a K with zeros there")
        numbers_ = K[[0, 1, 0, 1], [0, 1, 2, 2]]
    elif numbers_.shape != (4,):
        raise Gen3cInputError(
            f"{name} has shape {tuple(numbers_.shape)}: pass one (3, 3) K in pixels of the input image, the four numbers (fx, fy, cx, cy), "
            "or the text 'fx,fy,cx,cy'"
        )
    return ",".join(repr(float(v)) for v in numbers_)


def _check_setting_names(options: dict[str, Any], known: set[str], generator: str) -> None:
    """Refuse :func:`generate`'s keyword arguments that are no setting (a typo names its nearest
    setting) or that belong to a generator other than ``generator``."""
    if generator != "gen3c":  # the request's own refusal (check_gen3c_only), before the request is built
        # (None is unset, as check_gen3c_only counts it: a caller passing lora=None through)
        refuse_gen3c_only(sorted(f"--{key}" for key, value in options.items() if key in GENERATOR_OPTIONS and value is not None), "--generator gen3c")
    if "generator_options" in options:  # the request's field, which the call's keywords fill: "did you mean 'generator'?" misled
        raise Gen3cInputError(
            "gen3c.generate() takes the generator's settings as keyword arguments of their own, not as generator_options: "
            "pass them one by one (num_steps=35, guidance=7.0, …) or unpacked (**generator_options)"
        )
    for key in sorted(options):
        if key not in GENERATOR_OPTIONS:
            close = difflib.get_close_matches(key, [*known, *GENERATOR_OPTIONS], n=1)
            hint = f"did you mean {close[0]!r}?" if close else "see GenerationRequest's fields and `gen3c generate --help`"
            raise Gen3cInputError(f"gen3c.generate() got an unknown setting {key!r}: {hint}")
