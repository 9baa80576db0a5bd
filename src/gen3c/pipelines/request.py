"""One generation job as data, and the function that runs it.

:class:`GenerationRequest` holds every setting of a run under the CLI's flag names; the CLI,
the GUI and batch manifests all build one and call :func:`run_request`, so the three never
drift apart.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from gen3c.cameras import Cameras, intrinsics_from_fov
from gen3c.errors import Gen3cInputError
from gen3c.pipelines.camera_video import (
    ProgressFactory,
    SourceView,
    VideoResult,
    build_cache,
    check_num_frames,
    generate_video,
    prepare_source,
    preset_cameras,
    save_outputs,
)
from gen3c.trajectories import DEFAULT_MOVEMENT_DISTANCE

GENERATORS = ("preview", "gen3c")


@dataclass
class GenerationRequest:
    """Every setting of a single-image run (names follow the CLI flags)."""

    input_image_path: str | None = None
    depth_path: str | None = None
    png_depth_scale: float = 0.001
    mask_invalid_depth: bool = False
    intrinsics: str | None = None
    fov: float | None = None
    depth_estimator: str = "moge"
    trajectory: str = "left"
    camera_rotation: str = "center_facing"
    movement_distance: float = DEFAULT_MOVEMENT_DISTANCE
    trajectory_scale: str = "auto"
    camera_file: str | None = None
    num_video_frames: int = 121
    filter_points_threshold: float = 0.05
    foreground_masking: bool = False
    splat: str = "bilinear"
    resolution: str = "704x1280"
    resize_mode: str = "crop"
    generator: str = "preview"
    seed: int = 1
    generator_options: dict[str, Any] = field(default_factory=dict)
    video_save_folder: str = "outputs"
    video_save_name: str = "output"
    save_buffer: bool = False
    save_point_cloud: bool = False
    fps: float = 24.0

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str = "request") -> GenerationRequest:
        """Build a request from plain data (JSON, CSV, GUI), checking names and types.

        Raises:
            Gen3cInputError: unknown settings or values of the wrong type.
        """
        if not isinstance(data, dict):
            raise Gen3cInputError(f"{name} must be an object of settings, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = [k for k in data if k not in known]
        if unknown:
            shown = ", ".join(repr(k)[:40] for k in unknown[:3]) + (" …" if len(unknown) > 3 else "")
            raise Gen3cInputError(f"{name} has unknown settings {shown}: see GenerationRequest's fields for the valid ones")
        values = {key: _coerce(key, value, known[key].type, name) for key, value in data.items()}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(key: str, value: Any, annotation: str, name: str) -> Any:
    """Check one setting against its annotation (as written in this module)."""
    optional = "None" in annotation
    if value is None:
        if optional:
            return None
        raise Gen3cInputError(f"{name}: setting {key!r} cannot be empty")
    base = annotation.replace(" | None", "")
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "dict[str, Any]": isinstance(value, dict),
    }.get(base)
    if not ok:
        raise Gen3cInputError(f"{name}: setting {key!r} must be {base}, got {type(value).__name__} {str(value)[:40]!r}")
    return float(value) if base == "float" else value


def parse_intrinsics(intrinsics: str | None, fov: float | None, height: int, width: int) -> torch.Tensor | None:
    """The input image's intrinsics from ``"fx,fy,cx,cy"`` (or a file: JSON, txt, npy — see
    :func:`gen3c.depth.user.parse_intrinsics`) or a horizontal fov, or None."""
    if intrinsics is not None and fov is not None:
        raise Gen3cInputError("pass either --intrinsics or --fov, not both")
    if fov is not None:
        return intrinsics_from_fov(fov, height, width)
    if intrinsics is None:
        return None
    from gen3c.depth.user import parse_intrinsics as parse_intrinsics_spec

    return parse_intrinsics_spec(str(intrinsics), "--intrinsics")


def load_source(request: GenerationRequest) -> SourceView:
    """Read the request's image, depth and camera and bring them to the working resolution.

    Without ``depth_path`` the depth comes from ``request.depth_estimator`` (MoGe by default,
    as GEN3C); if it cannot be loaded, the preview falls back to the geometric prior with a
    warning saying so (:func:`gen3c.depth.prior.prior_notice`).
    """
    from gen3c.io.depth import conform_depth, load_depth
    from gen3c.io.images import load_image, parse_resolution

    size = parse_resolution(request.resolution)
    if request.input_image_path is None:
        raise Gen3cInputError("no input image: pass --input_image_path")
    image = load_image(request.input_image_path)
    h, w = image.shape[-2:]
    K = parse_intrinsics(request.intrinsics, request.fov, h, w)
    if request.depth_path is None:
        return estimate_source(request, image, K, size)
    raw = load_depth(request.depth_path, request.png_depth_scale)
    depth, valid = conform_depth(raw, (h, w), f"depth file {str(request.depth_path)!r}", request.mask_invalid_depth)
    if K is None:
        K = _estimated_camera(request, image)
    return prepare_source(image, depth, K, size, request.resize_mode, valid=valid, depth_kind="metric")


def estimate_source(request: GenerationRequest, image: torch.Tensor, K: torch.Tensor | None, size: tuple[int, int]) -> SourceView:
    """Depth and camera of ``image`` ((3, h, w) in [−1, 1]) from the request's depth estimator.

    With ``resize_mode="stretch"`` the estimate is made at the working size directly — for MoGe
    that is GEN3C's exact path (720×1280 → one bilinear resize to the working size). The cache
    receives every pixel with depth > 0, as GEN3C's does: pixels the estimator marks invalid
    (sky) stay in at their far fill depth.
    """
    import warnings

    from gen3c.depth import GeometricPriorEstimator, cached_depth_estimator, prior_notice
    from gen3c.errors import Gen3cModelError
    from gen3c.io.images import resize_image

    try:
        estimator = cached_depth_estimator(request.depth_estimator)
    except Gen3cModelError as exc:
        if request.generator != "preview":
            raise
        warnings.warn(prior_notice(str(exc)), stacklevel=2)
        estimator = GeometricPriorEstimator()
    unit = (image + 1) / 2
    if request.resize_mode == "stretch":
        estimate = estimator.estimate(unit, size=size, intrinsics=K)
        image = resize_image(image, size, "stretch")
    else:
        estimate = estimator.estimate(unit, intrinsics=K)
    return prepare_source(
        image, estimate.depth, estimate.intrinsics, size, request.resize_mode, valid=estimate.depth > 0, depth_kind=estimate.kind
    )


def _estimated_camera(request: GenerationRequest, image: torch.Tensor) -> torch.Tensor:
    """Intrinsics for user depth given without --intrinsics / --fov: the depth estimator's camera."""
    import warnings

    from gen3c.depth import cached_depth_estimator
    from gen3c.errors import Gen3cModelError

    try:
        estimate = cached_depth_estimator(request.depth_estimator).estimate((image + 1) / 2)
    except Gen3cModelError as exc:
        raise Gen3cInputError(
            f"user depth needs the camera: pass --intrinsics fx,fy,cx,cy or --fov DEGREES (estimating it failed: {exc})"
        ) from None
    fov = 2 * math.degrees(math.atan(0.5 * image.shape[-1] / float(estimate.intrinsics[0, 0])))
    how = "a default" if estimate.intrinsics_from == "default" else "the estimated"
    warnings.warn(f"no --intrinsics / --fov: using {how} camera from {estimate.source} ({fov:.1f}° horizontal)", stacklevel=3)
    return estimate.intrinsics


def make_cameras(request: GenerationRequest, source: SourceView) -> Cameras:
    """The request's trajectory: its camera file, or its preset relative to ``source``."""
    if request.camera_file is not None:
        from gen3c.io.camera_files import fit_cameras, load_camera_file

        H, W = source.size
        cams = load_camera_file(request.camera_file)
        return fit_cameras(cams, request.num_video_frames, H, W, name=f"camera file {str(request.camera_file)!r}")
    return preset_cameras(
        source, request.trajectory, request.camera_rotation, request.num_video_frames, request.movement_distance, request.trajectory_scale
    )


def make_generator(request: GenerationRequest):
    """The generator a request names."""
    if request.generator == "preview":
        from gen3c.pipelines.preview import PreviewGenerator

        return PreviewGenerator()
    if request.generator == "gen3c":
        try:
            from gen3c.pipelines.gen3c import generator_from_options
        except ImportError as exc:
            raise Gen3cInputError(
                f"the gen3c generator needs the diffusion extra ({exc.name} is missing): pip install 'gen3c[diffusion]'"
            ) from None
        return generator_from_options(request.generator_options, seed=request.seed)
    raise Gen3cInputError(f"unknown generator {request.generator!r}: choose one of {', '.join(GENERATORS)}")


@dataclass
class RunOutput:
    result: VideoResult
    paths: dict[str, Path]
    seconds: float


def run_request(
    request: GenerationRequest,
    *,
    source: SourceView | None = None,
    generator=None,
    progress: ProgressFactory | None = None,
) -> RunOutput:
    """Run one request end to end and write its outputs.

    Args:
        source: an already prepared source view (e.g. the demo sample); read from the request's
            files when None.
        generator: a generator to reuse across requests; made from the request when None.
        progress: stage-wise progress callbacks (see :data:`ProgressFactory`).
    """
    from gen3c.io.atomic import ensure_writable_dir

    started = time.perf_counter()
    ensure_writable_dir(request.video_save_folder, "--video_save_folder")
    generator = generator or make_generator(request)
    check_num_frames(request.num_video_frames, generator)
    source = source or load_source(request)
    cameras = make_cameras(request, source)
    cache = build_cache([source], request.filter_points_threshold, request.foreground_masking, request.splat)
    result = generate_video(cache, cameras, generator, first_frame=source.image, progress=progress)
    paths = save_outputs(
        result,
        request.video_save_folder,
        request.video_save_name,
        save_buffer=request.save_buffer,
        cache=cache,
        save_point_cloud=request.save_point_cloud,
        fps=request.fps,
        metadata=request.to_dict(),
    )
    return RunOutput(result=result, paths=paths, seconds=time.perf_counter() - started)
