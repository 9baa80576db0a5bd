"""The settings of one generation job, and their checks, without torch.

:class:`GenerationRequest` holds every setting of a run under the CLI's flag names, with the
values they may take (:mod:`gen3c.constants`) and the
checks that need no input read and no model loaded (:func:`check_request`,
:func:`check_unused_settings`). This module imports nothing heavy (no torch), so ``gen3c generate``
refuses a mistyped setting in a fraction of a second; :mod:`gen3c.pipelines.request` runs the
request (and re-exports these names).
"""

from __future__ import annotations

import math
import numbers
import os
import sys
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from gen3c.constants import (
    DEFAULT_MOVEMENT_DISTANCE,
    GEN3C_CHUNK_FRAMES,
    MAX_FRAMES,
    RESIZE_MODES,
    SCALED_DEPTH_SUFFIXES,
    SPLAT_MODES,
)
from gen3c.depth.names import DEFAULT_DEPTH_ESTIMATOR, check_estimator_name
from gen3c.errors import Gen3cInputError, describe_value, is_whole_number, quoted_path
from gen3c.io.atomic import check_video_name
from gen3c.io.paths import expand_home, is_dir, looks_like_path
from gen3c.models import configs

if TYPE_CHECKING:
    import torch

    from gen3c.io.camera_files import CameraFile

GENERATORS = ("preview", "gen3c")
#: Request fields that always name files (a leading ``~`` expanded on construction, as a shell does).
PATH_FIELDS = ("input_image_path", "vipe_path", "multiview_npz", "depth_path", "camera_file")
#: gen3c generator options that name a file or folder (``checkpoint_dir`` also GEN3C's hub id).
OPTION_PATH_FIELDS = ("checkpoint_dir", "lora", "cache_dir")
#: Frames per chunk of generators that make a fixed number (checked before a model loads).
GENERATOR_CHUNK_FRAMES = {"gen3c": GEN3C_CHUNK_FRAMES}


@dataclass
class GenerationRequest:
    """Every setting of a run (names follow the CLI flags).

    A field at its default counts as unset: a request cannot tell one given from one left at its
    default (a run record, :meth:`from_dict` and ``dataclasses.replace`` carry every default), so
    :func:`check_unused_settings` refuses a setting the run would ignore only where it differs
    from the default; the surfaces that know what was named (the CLI's typed flags,
    ``gen3c.generate``'s keywords, a manifest row's keys) pass those names as ``given``.
    """

    input_image_path: str | None = None
    vipe_path: str | None = None
    vipe_clip: str | None = None
    vipe_starting_frame_idx: int = 0
    multiview_npz: str | None = None
    trust_checkpoint: bool = False
    depth_path: str | None = None
    png_depth_scale: float = 0.001
    #: The depth given (``depth_path`` or in memory) is disparity, larger = nearer (MiDaS, DPT,
    #: Depth Anything's relative models): read as :func:`gen3c.io.depth.depth_from_disparity` does.
    depth_is_disparity: bool = False
    mask_invalid_depth: bool = False
    intrinsics: str | None = None
    fov: float | None = None
    #: None: the default estimator (:attr:`estimator`, GEN3C's MoGe), which the preview replaces with
    #: the geometric prior where its weights cannot load; an estimator named (``"moge"`` too) never is.
    depth_estimator: str | None = None
    trajectory: str = "left"
    camera_rotation: str = "center_facing"
    movement_distance: float = DEFAULT_MOVEMENT_DISTANCE
    trajectory_scale: str = "auto"
    camera_file: str | None = None
    #: None: the camera file's count, else one chunk of the generator's model
    #: (:func:`default_num_frames`), set on construction.
    num_video_frames: int | None = None
    chunk_frames: int | None = None
    filter_points_threshold: float = 0.05
    foreground_masking: bool = False
    splat: str = "bilinear"
    #: "HxW"; None: the gen3c generator's model's own (:func:`default_resolution`), set on construction.
    resolution: str | None = None
    resize_mode: str = "crop"
    generator: str = "preview"
    seed: int = 1
    generator_options: dict[str, Any] = field(default_factory=dict)
    video_save_folder: str = "outputs"
    video_save_name: str = "output"
    save_buffer: bool = False
    save_point_cloud: bool = False
    #: None: the camera file's frame rate, else a video input's, else GEN3C's 24 (:func:`default_fps`), set on construction.
    fps: float | None = None
    #: Not a field (no setting, not in :meth:`to_dict`): an :class:`~gen3c.pipelines.request.InMemoryInput` standing for
    #: ``input_image_path`` and/or ``depth_path``, set by :func:`~gen3c.pipelines.request.generate` for arrays handed over in Python.
    in_memory = None

    def __post_init__(self) -> None:
        for key in (*PATH_FIELDS, "intrinsics", "depth_estimator", "video_save_folder"):
            if isinstance(getattr(self, key), os.PathLike):  # a pathlib.Path as its text, which the run record makes absolute and hashes
                setattr(self, key, os.fspath(getattr(self, key)))
        # "~/x.png" names the same file in Python as in a shell or a batch manifest; first, as the
        # camera file is read for the defaults below.
        for key in PATH_FIELDS:
            value = getattr(self, key)
            if isinstance(value, str) and not value.strip():  # Path("") is the current folder: no file named
                raise Gen3cInputError(f"--{key} is empty: pass its path, or leave it out")
            if isinstance(value, (str, os.PathLike)) and str(os.fspath(value)).startswith("~"):
                setattr(self, key, str(expand_home(value, f"--{key}")))
        if isinstance(self.video_save_folder, str) and not self.video_save_folder.strip():  # (" " made a folder of that name)
            raise Gen3cInputError("--video_save_folder is empty: pass a folder, or leave it out")
        if isinstance(self.video_save_folder, str) and self.video_save_folder.startswith("~"):  # (was made as ./~/…)
            self.video_save_folder = str(expand_home(self.video_save_folder, "--video_save_folder"))
        options = self.generator_options if isinstance(self.generator_options, dict) else {}
        for key in OPTION_PATH_FIELDS:  # ~user of no user: one line now, not a RuntimeError where it is first read
            if isinstance(options.get(key), str) and options[key].startswith("~"):
                expand_home(options[key], f"--{key}")
        if self.resolution is None:
            self.resolution = default_resolution(self)
        if self.num_video_frames is None:
            self.num_video_frames = default_num_frames(self)
        if self.fps is None:
            self.fps = default_fps(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str = "request") -> GenerationRequest:
        """Build a request from plain data (JSON, CSV, GUI), checking names and types.

        Raises:
            Gen3cInputError: unknown settings or values of the wrong type.
        """
        if not isinstance(data, dict):
            raise Gen3cInputError(f"{name} must be an object of settings, got {describe_value(data)}")
        known = {f.name: f for f in fields(cls)}
        unknown = [k for k in data if k not in known]
        if unknown:
            shown = ", ".join(repr(k)[:40] for k in unknown[:3]) + (" …" if len(unknown) > 3 else "")
            raise Gen3cInputError(f"{name} has unknown settings {shown}: see GenerationRequest's fields for the valid ones")
        values = {key: _coerce(key, value, known[key].type, name) for key, value in data.items()}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def estimator(self) -> str:
        """The depth estimator the request runs: its ``depth_estimator``, else the default's name."""
        return DEFAULT_DEPTH_ESTIMATOR if self.depth_estimator is None else self.depth_estimator

    def read_camera_file(self) -> CameraFile | None:
        """The ``camera_file`` as read once (:func:`gen3c.io.camera_files.read_camera_file`), None
        without one. The request keeps what it read: the default frame count and frame rate, the
        frame-count check, the trajectory and ``--resume``'s hash of the inputs all take these very
        bytes, so a run reads the file once. It is read again only when the file on disk changed
        since (another size or modification time), e.g. between two runs of one request.
        """
        if self.camera_file is None:
            return None
        from gen3c.io.camera_files import read_camera_file

        try:
            stat = os.stat(self.camera_file)
            key = (str(self.camera_file), stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except (OSError, ValueError):
            return read_camera_file(self.camera_file)  # which says what is wrong with the path
        kept = self.__dict__.get("_camera_file_read")
        if kept is None or kept[0] != key:
            kept = (key, read_camera_file(self.camera_file))
            self.__dict__["_camera_file_read"] = kept  # not a field: no part of the settings
        return kept[1]

    def read_input_contents(self) -> dict[str, bytes]:
        """The bytes of the inputs the request has read itself, by field (its camera file), for
        ``--resume``'s hash of the inputs (:func:`gen3c.pipelines.resume.input_digests`)."""
        camera_file = self.read_camera_file()
        return {} if camera_file is None else {"camera_file": camera_file.content}


def fixed_chunk_frames(request: GenerationRequest) -> int | None:
    """Frames per chunk of a generator that makes a fixed number, None for the preview: the
    gen3c generator's ``chunk_frames``, else its packaged model's or checkpoint's (the tiny
    model: 17), else GEN3C's 121. Known before any model loads."""
    fixed = GENERATOR_CHUNK_FRAMES.get(request.generator)
    if fixed is None:
        return None
    from gen3c.models.packaged import model_chunk_frames

    return request.chunk_frames or model_chunk_frames(request.generator_options) or fixed


def official_chunk_frames(cache_dir: str | None = None) -> int:
    """Frames per chunk of GEN3C's official weights, which the gen3c generator runs when no model
    is named (121), known before they are fetched: their converted copy's ``gen3c_model.json``
    where the cache (``--cache_dir``) holds one, else what gen3c converts them with."""
    from gen3c.models import weights
    from gen3c.models.packaged import checkpoint_info

    converted = weights.converted_official(cache_dir)
    info = weights.OFFICIAL.model_info if converted is None else checkpoint_info(str(converted))
    return int(info.get("chunk_frames", GEN3C_CHUNK_FRAMES))


def default_num_frames(request: GenerationRequest) -> int:
    """The frames of a run that names no count: one per camera of its camera file; else one
    chunk of the generator (:func:`fixed_chunk_frames`), GEN3C's 121 for the preview."""
    if request.camera_file is not None:
        return len(request.read_camera_file().cameras)
    return fixed_chunk_frames(request) or GEN3C_CHUNK_FRAMES


def default_resolution(request: GenerationRequest) -> str:
    """The working resolution of a run that names none: the size the gen3c generator's model was
    trained at (``gen3c_model.json``: the tiny model's 64x112), else GEN3C's 704x1280."""
    size = None
    if request.generator == "gen3c":
        from gen3c.models.packaged import model_resolution

        size = model_resolution(request.generator_options)
    return "x".join(map(str, size or configs.RESOLUTION))


def check_camera_file_fps(fps: float, name: str, fix: str = "") -> None:
    """Refuse the frame rate of a camera file (``name``, e.g. "camera file 'path.json'") that no
    video can be written at (outside :data:`MIN_FPS` … :data:`MAX_FPS`), naming the file, where
    the run's rate would come from it; ``fix``: the caller's other way out (", or pass --fps")."""
    if not MIN_FPS <= fps <= MAX_FPS:
        raise Gen3cInputError(
            f"{name} plays at {fps:g} fps, outside the {MIN_FPS:g} … {MAX_FPS:g} fps a video can be written at: "
            f"fix its 'fps' (a nerfstudio camera_path's 'seconds'){fix}"
        )


def default_fps(request: GenerationRequest) -> float:
    """The frame rate of a run that names none: its camera file's
    (:func:`~gen3c.io.camera_files.camera_dict_fps`; a nerfstudio camera_path's entries / seconds,
    as ns-render plays it), so a path made at 12 fps (in the GUI, in nerfstudio) replays at its
    own speed (a rate outside [MIN_FPS, MAX_FPS] is refused, naming the file); else a video
    input's own (output frame t renders input frame t, so a 30 fps clip written at 24 would play
    25 % slow), brought into [MIN_FPS, MAX_FPS]; else GEN3C's 24. (The network is told GEN3C's 24
    whatever the file's rate, as GEN3C does.)"""
    fps = None if request.camera_file is None else request.read_camera_file().fps
    if fps is not None:  # (here: check_request would blame --fps, which was not given)
        check_camera_file_fps(fps, f"camera file {quoted_path(request.camera_file)}", ", or pass --fps")
    if fps is None:
        rate = _input_video_rate(request)
        fps = None if rate is None else min(max(rate, MIN_FPS), MAX_FPS)
    return 24.0 if fps is None else fps


def _input_video_rate(request: GenerationRequest) -> float | None:
    """The frame rate of a video input's mp4 (a sample directory's ``rgb.mp4``, a ViPE clip's);
    None for other inputs, or where the path is wrong (the input's reader then says so)."""
    if request.vipe_path is not None:
        from gen3c.io.vipe import clip_video, resolve_vipe

        try:
            root, clip = resolve_vipe(request.vipe_path, request.vipe_clip)
        except Gen3cInputError:
            return None
        mp4 = clip_video(root, clip)
    elif request.input_image_path is not None and is_dir(request.input_image_path):
        from gen3c.io.gen3c_sample import sample_file

        try:
            mp4 = sample_file(request.input_image_path, "rgb.mp4")  # rgb.MP4 too
        except Gen3cInputError:  # two candidates: the sample's reader says so
            return None
    else:
        return None
    # gen3c.io.video imports torch: only a video input's rate needs it, so an image run's settings are checked without
    from gen3c.io.video import video_rate

    return video_rate(mp4)


def _zero_d_number(value: Any) -> Any:
    """A 0-d array or tensor (``np.median(depth)``, ``torch.tensor(60.0)``, ``K[0, 0]``) as its one
    number, as numpy's numbers are taken; it was refused as "must be float, got a torch tensor of
    shape ()". Anything else as it is."""
    torch = sys.modules.get("torch")  # (a tensor can only come from a process that imported torch)
    if torch is not None and isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_meta:
        return value.item()
    return value[()] if isinstance(value, np.ndarray) and value.ndim == 0 else value


def _coerce(key: str, value: Any, annotation: str, name: str) -> Any:
    """Check one setting against its annotation (as written in this module)."""
    optional = "None" in annotation
    if value is None:
        if optional:
            return None
        raise Gen3cInputError(f"{name}: setting {key!r} is null (None): give it a value, or leave it out for its default")
    base = annotation.replace(" | None", "")
    value = _zero_d_number(value)
    # is_whole_number / numbers.Real: numpy's scalars too (a notebook's np.int64 frame count).
    whole = is_whole_number(value)
    ok = {
        "str": isinstance(value, str),
        "int": whole,
        "float": whole or (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))),
        "bool": isinstance(value, (bool, np.bool_)),
        "dict[str, Any]": isinstance(value, dict),
    }.get(base)
    if not ok:
        raise Gen3cInputError(f"{name}: setting {key!r} must be {base}, got {describe_value(value)}")
    convert = {"int": int, "float": float, "bool": bool}.get(base)
    return convert(value) if convert else value


#: Frame rates a video can be written at.
# Below 1 fps encoders round the time base to 0 and write an unreadable mp4.
MIN_FPS, MAX_FPS = 1.0, 240.0


def check_fov(fov: float | None) -> None:
    """Refuse a ``--fov`` (degrees) no camera has, naming the flag (``gen3c generate``, ``gen3c depth``)."""
    if fov is not None and not (math.isfinite(fov) and 0.01 <= fov <= 179):
        raise Gen3cInputError(f"--fov {fov} is impossible: pass degrees between 0.01 and 179")


def check_seed(seed: int) -> None:
    if not 0 <= seed <= configs.MAX_SEED:
        raise Gen3cInputError(f"--seed {seed} is out of range: pass a whole number from 0 to {configs.MAX_SEED}")


def check_request(request: GenerationRequest) -> None:
    """Refuse settings no run can use, before anything is loaded and before any input is read
    (the other settings are checked where they are parsed: resolution, trajectory, frame counts,
    files); a LoRA's small record is read (:func:`check_lora_base`), and a ``depth_estimator``
    that is no estimator's name, hub id, path or existing file is refused where the request uses one."""
    for f in fields(GenerationRequest):  # a request built in Python skips from_dict's type checks
        if not f.type.startswith("str"):  # paths may be str or os.PathLike
            _coerce(f.name, getattr(request, f.name), f.type, "request")
    for key, choices in (("splat", SPLAT_MODES), ("resize_mode", RESIZE_MODES)):
        value = getattr(request, key)
        if value not in choices:
            raise Gen3cInputError(f"--{key} {str(value)[:40]!r} is unknown: choose one of {', '.join(choices)}")
    numbers = (("movement_distance", request.movement_distance, lambda v: True, "a finite number"),
               ("filter_points_threshold", request.filter_points_threshold, lambda v: v >= 0, "a number ≥ 0 (0, or 1 and above, keeps every point)"),
               ("png_depth_scale", request.png_depth_scale, lambda v: v > 0, "a number > 0"),
               ("fps", request.fps, lambda v: MIN_FPS <= v <= MAX_FPS, f"a frame rate in [{MIN_FPS:g}, {MAX_FPS:g}]"))  # fmt: skip
    for key, value, allowed, what in numbers:
        if not (math.isfinite(value) and allowed(value)):
            raise Gen3cInputError(f"--{key} {value} is impossible: pass {what}")
    check_seed(request.seed)
    if not 1 <= request.num_video_frames <= MAX_FRAMES:
        raise Gen3cInputError(f"--num_video_frames {request.num_video_frames} is impossible: pass a count between 1 and {MAX_FRAMES}")
    # Refused here, not only where the input is read (cameras.focal_from_fov, parse_intrinsics,
    # resolve_chunk_frames): a batch manifest's row is refused when the manifest is read.
    check_fov(request.fov)
    if request.fov is not None and request.intrinsics is not None:
        raise Gen3cInputError("pass either --intrinsics or --fov, not both")
    if request.chunk_frames is not None and request.chunk_frames < 2:
        raise Gen3cInputError(f"--chunk_frames {request.chunk_frames} is too small: chunks overlap by one frame, so pass 2 or more")
    check_video_name(request.video_save_name, "--video_save_name")
    estimator = str(request.estimator).strip()
    # A typo is refused now, not once the input is read (and a model loaded); a path is checked
    # where files are (batch's check_inputs, the loader): a manifest may be read where they are not.
    if uses_estimator(request) and not looks_like_path(estimator):
        check_estimator_name(estimator, "--depth_estimator")
    check_lora_base(request)


def check_lora_base(request: GenerationRequest) -> None:
    """Refuse a LoRA trained on a model other than GEN3C-7B when GEN3C-7B runs: without
    ``--checkpoint_dir`` / ``--model``, or with GEN3C's hub id as ``--checkpoint_dir``, the gen3c
    generator runs GEN3C-7B, which the adapter does not fit."""
    from gen3c.models.weights import OFFICIAL_REPO, is_official_repo

    options = request.generator_options
    official = is_official_repo(options.get("checkpoint_dir"))
    if request.generator != "gen3c" or not options.get("lora") or options.get("model") or (options.get("checkpoint_dir") and not official):
        return
    from gen3c.models.packaged import PACKAGED_MODELS, checkpoint_info, packaged_model_info
    from gen3c.training.lora import lora_base_checkpoint

    base = lora_base_checkpoint(options["lora"])
    if base is None:
        return
    info = packaged_model_info(base) if base in PACKAGED_MODELS else checkpoint_info(base)
    if info.get("chunk_frames", GEN3C_CHUNK_FRAMES) != GEN3C_CHUNK_FRAMES:  # not GEN3C-7B (nor a fine-tune of it)
        flag = f"--model {base}" if base in PACKAGED_MODELS else f"--checkpoint_dir {base}"
        raise Gen3cInputError(
            f"--lora {quoted_path(options['lora'])} was trained on {base!r}, not GEN3C-7B "
            f"({f'what --checkpoint_dir {OFFICIAL_REPO} runs' if official else 'what runs without a model named'}): pass {flag}"
        )


#: Settings of a preset path (GEN3C's ``--trajectory`` & co.), unused when a path is given.
PRESET_SETTINGS = ("trajectory", "camera_rotation", "movement_distance", "trajectory_scale")


def check_unused_settings(request: GenerationRequest, where: str | None = None, given: Collection[str] = ()) -> None:
    """Refuse settings that the request would silently ignore, where changed from their defaults
    or named in ``given``: a preset path's where the path is given (a camera file, a multi-view
    input's ``w2cs_all``), ``png_depth_scale`` without a PNG depth or with ``depth_is_disparity``, ``trust_checkpoint`` without a
    legacy ``.pt`` input, ``seed`` with a generator that draws no random numbers (the preview),
    ``depth_estimator`` where no depth or camera is estimated, ``depth_is_disparity`` where no single
    image's depth is given, ``mask_invalid_depth`` where no depth
    is read from a file, ``vipe_starting_frame_idx`` for an input without frames, and (given only)
    the gen3c generator's ``noise_aug_strength`` for a video or multi-view input. ``where``
    prefixes the message (e.g. a manifest line). ``given``: the settings the caller knows were
    given (typed on the command line, a keyword of ``gen3c.generate()``, a manifest row's key),
    refused at their default value too, which a request cannot tell from unset (a run record
    holds every default, so a replayed one names none)."""
    prefix = f"{where}: " if where else ""
    defaults = {f.name: f.default for f in fields(GenerationRequest)}

    def changed(key: str) -> bool:
        return key in given or getattr(request, key) != defaults[key]

    path = "--camera_file" if request.camera_file is not None else "the multi-view input's w2cs_all" if request.multiview_npz else None
    preset = [f"--{key}" for key in PRESET_SETTINGS if changed(key)]
    if path and preset:
        verb, them = ("shape", "them") if len(preset) > 1 else ("shapes", "it")
        raise Gen3cInputError(f"{prefix}{', '.join(preset)} {verb} a preset path, which {path} replaces: drop {them}")
    if changed("png_depth_scale") and not str(request.depth_path or "").lower().endswith(SCALED_DEPTH_SUFFIXES):
        raise Gen3cInputError(f"{prefix}--png_depth_scale applies to a 16-bit PNG or TIFF --depth_path only: drop it")
    if changed("png_depth_scale") and request.depth_is_disparity:  # 1 / (scale · value), brought to median 1: the scale cancels out
        raise Gen3cInputError(f"{prefix}{DISPARITY_SCALE_REFUSAL}")
    if request.trust_checkpoint and not str(request.input_image_path or "").lower().endswith(".pt"):
        raise Gen3cInputError(f"{prefix}--trust_checkpoint applies to a legacy .pt --input_image_path only: drop it")
    if changed("seed") and request.generator != "gen3c":
        raise Gen3cInputError(f"{prefix}--seed applies to --generator gen3c only (the {request.generator} is deterministic): drop it")
    video = is_video_input(request)
    if changed("vipe_starting_frame_idx") and frameless_input(request):
        raise Gen3cInputError(f"{prefix}{START_FRAME_REFUSAL}")
    strength = request.generator_options.get("noise_aug_strength") if isinstance(request.generator_options, dict) else None
    if "noise_aug_strength" in given and request.generator == "gen3c" and video and isinstance(strength, numbers.Real):
        try:
            check_noise_aug_strength("multiview" if request.multiview_npz is not None else "vipe", strength, given=True)
        except Gen3cInputError as exc:
            raise Gen3cInputError(f"{prefix}{exc}") from None
    if request.depth_estimator != defaults["depth_estimator"]:
        if video:
            raise Gen3cInputError(f"{prefix}--depth_estimator applies to a single image; a video or multi-view input carries its own depth: drop it")
        if has_depth(request) and (request.fov is not None or request.intrinsics is not None):
            raise Gen3cInputError(
                f"{prefix}--depth_estimator estimates the depth without --depth_path, or the camera without --intrinsics / --fov; "
                "with both given it is not used: drop it"
            )
    if changed("depth_is_disparity") and (video or not has_depth(request)):
        raise Gen3cInputError(f"{prefix}{DISPARITY_WITHOUT_DEPTH}")
    if request.mask_invalid_depth and not video and not has_depth(request):
        raise Gen3cInputError(
            f"{prefix}--mask_invalid_depth applies to depth given with the input (--depth_path, a video or multi-view input); "
            "an estimator's depth has no NaN/inf pixels: drop it, or export the depth first with gen3c depth and pass "
            "its NAME_depth.npy as --depth_path to leave the pixels its mask does not trust (the sky) out"
        )


#: The refusal of ``depth_is_disparity`` where no single image's depth is read (checked where the request is, and where the depth is).
DISPARITY_WITHOUT_DEPTH = (
    "--depth_is_disparity applies to the depth given for a single image (--depth_path): "
    "an estimator's depth, or a video or multi-view input's, is z-depth: drop it"
)

#: The refusal of ``png_depth_scale`` with ``depth_is_disparity``, where it would change nothing.
DISPARITY_SCALE_REFUSAL = (
    "--png_depth_scale does nothing with --depth_is_disparity: the disparity's depth is scaled to median 1, so its PNG scale cancels out: drop it"
)

#: The refusal of a start frame for an input without frames to start from (an image, a multi-view ``.npz``).
START_FRAME_REFUSAL = "--vipe_starting_frame_idx applies to video input (--vipe_path or a sample directory): drop it"


def frameless_input(request: GenerationRequest) -> bool:
    """Whether the request names one input and it has no frames to start from: an image (a
    file that is no GEN3C sample, or one in memory) or a multi-view ``.npz`` (no input, or
    several: :func:`~gen3c.pipelines.request.input_kind` says so)."""
    from gen3c.io.formats import is_sample

    image = memory_image(request) if request.input_image_path is None else request.input_image_path
    named = [value for value in (image, request.vipe_path, request.multiview_npz) if value is not None]
    if len(named) != 1 or request.vipe_path is not None:
        return False
    return request.multiview_npz is not None or memory_image(request) is not None or not is_sample(request.input_image_path)


def check_noise_aug_strength(kind: str, strength: Any, given: bool = False) -> None:
    """Refuse GEN3C's ``--noise_aug_strength`` above 0 (or ``given``, at any value: it was typed
    or named) for an input of ``kind`` (:data:`~gen3c.pipelines.request.INPUT_KINDS`) other than
    a single image: GEN3C noises the buffers of ``gen3c_single_image.py``'s growing cache only
    (``Cache3D_Buffer``); ``gen3c_multiview.py`` parses the flag without passing it on and
    ``gen3c_dynamic.py`` has none, so it would change nothing there in GEN3C and is not made to
    change something here. :func:`check_unused_settings` checks one given (the CLI, batch
    manifests, :func:`~gen3c.pipelines.request.generate`),
    :func:`~gen3c.pipelines.request.input_kind` a request's value, and
    :func:`~gen3c.pipelines.request.run_request` a generator's handed over."""
    if kind == "image" or not isinstance(strength, numbers.Real) or not (given or strength > 0):
        return
    what = "a multi-view input" if kind == "multiview" else "a video input"
    raise Gen3cInputError(
        f"--noise_aug_strength {strength:g} applies to a single image: GEN3C noises the buffers of the single-image mode's "
        f"growing cache only, not those of {what}; drop it{'' if given else ' (or pass 0)'}"
    )


def is_video_input(request: GenerationRequest) -> bool:
    """Whether the input is a video or multi-view input (a ViPE result, a multi-view ``.npz``,
    a GEN3C sample), which carries its own depth and cameras."""
    from gen3c.io.formats import is_sample

    return request.vipe_path is not None or request.multiview_npz is not None or (
        request.input_image_path is not None and is_sample(request.input_image_path)
    )


def uses_estimator(request: GenerationRequest) -> bool:
    """Whether the request's ``depth_estimator`` estimates anything: a single image's depth
    (none given), or the camera of depth given without ``--intrinsics`` / ``--fov``."""
    return not is_video_input(request) and not (has_depth(request) and (request.fov is not None or request.intrinsics is not None))


def has_depth(request: GenerationRequest) -> bool:
    """Whether the request's image comes with its depth: a ``depth_path``, or a depth in memory."""
    return request.depth_path is not None or memory_depth(request) is not None


def memory_image(request: GenerationRequest) -> torch.Tensor | None:
    """The request's image handed over in memory (:attr:`GenerationRequest.in_memory`), or None."""
    return request.in_memory.image if request.in_memory is not None else None


def memory_depth(request: GenerationRequest) -> torch.Tensor | None:
    """The request's depth handed over in memory (:attr:`GenerationRequest.in_memory`), or None."""
    return request.in_memory.depth if request.in_memory is not None else None
