"""Camera files: gen3c's per-frame JSON, nerfstudio's ``camera_path.json`` and ``transforms.json``.

**gen3c cameras JSON** (written beside every video, read by ``--camera_file``)::

    {
      "format": "gen3c-cameras", "version": 1,
      "convention": "opencv",          # x right, y down, z forward; poses world-to-camera
      "width": 1280, "height": 704,    # image size the intrinsics refer to
      "fps": 24,
      "frames": [
        {"w2c": [[...4 rows of 4...]], "K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]},
        ...
      ]
    }

Per frame, ``"c2w"`` may replace ``"w2c"`` (camera-to-world), and ``"intrinsics": [fx, fy, cx,
cy]`` may replace ``"K"``; a top-level ``"K"``/``"intrinsics"`` applies to frames without one. A ``"K"``
may be 4×4 padded with [0, 0, 0, 1] (ScanNet's), as ``--intrinsics`` reads it.
For single-image input the world frame is the source camera's: the source pose is the identity.
A key it does not define is refused (docs/cameras.md, "gen3c cameras JSON").

**nerfstudio camera_path.json** is read and written as nerfstudio reads and writes it
(docs/cameras.md, "nerfstudio camera_path.json"): one frame per ``camera_path`` entry, played
over ``seconds`` (``scripts/render.py``); ``camera_to_world`` 16 numbers, a row-major OpenGL
camera-to-world matrix; ``fov`` vertical, in degrees, over ``render_height``, the principal point
at the image centre (``cameras/camera_paths.py``, ``get_path_from_json``); keyframes as its
viewer writes them (``viewer/render_panel.py``). nerfstudio's path has no principal point and one
focal length; gen3c writes each entry's exact ``"K"`` beside its ``fov`` (nerfstudio ignores it)
and reads it back when present, so a path saved from gen3c replays the same cameras.
nerfstudio's ``transforms.json`` (``frames`` with ``transform_matrix``) is read too, as its
``nerfstudio_dataparser.py`` reads it (docs/cameras.md, "nerfstudio transforms.json"): frames in
``file_path`` order, pinhole camera models only, lens distortion only where it moves no pixel by
more than ½ px (:data:`MAX_DISTORTION_SHIFT`). COLMAP's ``cameras.txt`` gives an image's
``--intrinsics`` (:func:`colmap_camera_intrinsics`), its lens distortion read as transforms.json's.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import torch

from gen3c.cameras import (
    Cameras,
    check_intrinsics_fit,
    focal_from_fov,
    fov_from_focal,
    intrinsics_from_nerfstudio,
    intrinsics_from_nerfstudio_fov,
    invert_pose,
    lens_distortion_shift,
    make_intrinsics,
    opencv_to_opengl,
    opengl_to_opencv,
    resize_crop_intrinsics,
    rotation_angle_degrees,
    validate_intrinsics,
    validate_poses,
)
from gen3c.constants import MAX_FRAMES
from gen3c.errors import Gen3cInputError, describe_value, is_whole_number, quoted, quoted_path, shown_value
from gen3c.io.atomic import write_text_atomic
from gen3c.io.formats import loads_json
from gen3c.io.intrinsics import unpad_intrinsics
from gen3c.io.paths import reader_path, writer_path
from gen3c.io.text import user_text
from gen3c.trajectories import DEFAULT_SMOOTHNESS, KeyframePath, check_fps

FORMAT_NAME = "gen3c-cameras"
MAX_CAMERA_FILE_BYTES = 64 * 1024 * 1024
#: nerfstudio's transition between keyframes when a file names none (its viewer's "Load Path").
NERFSTUDIO_DEFAULT_TRANSITION_SEC = 0.5


@dataclass(frozen=True)
class CameraFile:
    """A camera file as read once (:func:`read_camera_file`): what a run needs of it, all from
    the same bytes — its cameras, its frame rate and the bytes themselves (``--resume`` hashes
    them, so the kept chunks are tied to the cameras they were made with)."""

    path: str
    content: bytes
    cameras: Cameras
    #: The frame rate it was made for (gen3c's and nerfstudio's ``"fps"``); None when it names none
    #: (nerfstudio's ``transforms.json``).
    fps: float | None
    #: Its kind (:func:`camera_file_kind`): what its poses are called, and in which axes.
    kind: str = "gen3c"


def camera_dict_fps(data: Any, name: str = "camera file") -> float | None:
    """The frame rate a camera file's JSON object plays at; None when it names none
    (nerfstudio's ``transforms.json``).

    A gen3c cameras JSON plays at its ``"fps"``. A nerfstudio ``camera_path.json`` plays its N
    ``camera_path`` entries over ``"seconds"``: ns-render writes them at N / seconds fps and never
    reads ``"fps"`` (``scripts/render.py``), the viewer's setting, from which it counted
    N = int(fps × seconds) entries (``viewer/render_panel.py``). So its rate is N / seconds —
    exactly ``"fps"`` when fps × seconds is N (gen3c writes seconds = N / fps), a little less when
    the viewer rounded a fraction of a frame down. A file whose fps × seconds is a frame or more
    away from N was edited by hand: one line says which number to fix.
    """
    if not isinstance(data, dict):
        return None
    fps = _positive(data, "fps", "a number of frames per second", name, "fix it or pass --fps")
    path = data.get("camera_path")
    if not isinstance(path, list) or not path or data.get("seconds") is None:
        return fps
    n = len(path)
    seconds = _positive(data, "seconds", "the camera_path's duration in seconds", name, f"ns-render plays its {n} entries over it; fix it")
    if fps is None:
        return n / seconds
    counted = fps * seconds
    if abs(counted - n) <= 1e-6 * n:  # as written (gen3c's n / fps comes back as n up to rounding)
        return fps
    if abs(counted - n) < 1:  # the viewer counted int(fps × seconds): the frames are seconds / n apart
        return n / seconds
    raise Gen3cInputError(
        f"{name}: 'fps' {fps:g} × 'seconds' {seconds:g} is {counted:g} frames, but 'camera_path' has {n} "
        f"(ns-render plays them at {n / seconds:g} fps): set 'seconds' to {n / fps:g} (entries / fps) or 'fps' to {n / seconds:g}"
    )


def _positive(data: dict, key: str, what: str, name: str, fix: str) -> float | None:
    """``data[key]`` as a finite number > 0, None when absent; else one line naming the file and key."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Gen3cInputError(f"{name}: '{key}' must be {what}, got {str(value)[:40]!r}: {fix}")
    if not math.isfinite(value) or value <= 0:  # JSON as Python reads it takes NaN and Infinity
        raise Gen3cInputError(f"{name}: '{key}' {value:g} must be {what} > 0: {fix}")
    return float(value)


def read_camera_file(path: str | os.PathLike) -> CameraFile:
    """Read a camera file of any supported kind (detected from its keys) once: its cameras
    (OpenCV), its frame rate and its bytes."""
    fix = ": for a camera file's JSON already loaded, pass it to cameras_from_dict" if isinstance(path, dict) else ""
    p = reader_path(path, "camera file", "a camera file", fix)
    name = f"camera file {quoted_path(p)}"
    try:
        if not p.is_file():
            raise Gen3cInputError(f"{name} does not exist or is not a file: check the path")
        if p.stat().st_size > MAX_CAMERA_FILE_BYTES:
            raise Gen3cInputError(f"{name} is larger than {MAX_CAMERA_FILE_BYTES >> 20} MiB: it cannot be a camera file")
        content = p.read_bytes()
    except OSError as exc:  # a name too long, no permission, an I/O error
        raise Gen3cInputError(f"{name} cannot be read ({exc.strerror or exc}): check the path and the file's permissions") from None
    data = parse_camera_json(content, name)
    cameras = cameras_from_dict(data, name)
    return CameraFile(str(path), content, cameras, camera_dict_fps(data, name), camera_file_kind(data))


def _check_run_length(data: Any, name: str) -> None:
    """A file of more cameras than a run may ask for (one a frame), refused before they are read
    (120,000 took 20 s, to be refused as an impossible "--num_video_frames" the user never gave)."""
    key = "camera_path" if isinstance(data, dict) and "camera_path" in data else "frames"
    entries = data.get(key) if isinstance(data, dict) else None
    if isinstance(entries, list) and len(entries) > MAX_FRAMES:
        raise Gen3cInputError(
            f"{name}: '{key}' has {len(entries)} entries, one a frame: more than the {MAX_FRAMES} frames a run may ask for; "
            f"sample the path at {MAX_FRAMES} frames or fewer"
        )


def load_camera_file(path: str | os.PathLike) -> Cameras:
    """The cameras of a camera file (:func:`read_camera_file`), as OpenCV cameras."""
    return read_camera_file(path).cameras


def parse_camera_json(content: bytes, name: str = "camera file") -> Any:
    """The JSON value of a camera file's bytes (UTF-8, with or without a byte order mark, or UTF-16
    with one); a file of another kind (an image, an npz, text that is not JSON) is a one-line error
    saying what it is, as is a key given twice in one object, an integer no float can hold, or more
    cameras than a run may ask for (refused before they are read: :func:`_check_run_length`)."""
    if len(content) > MAX_CAMERA_FILE_BYTES:
        raise Gen3cInputError(f"{name} is larger than {MAX_CAMERA_FILE_BYTES >> 20} MiB: it cannot be a camera file")
    fix = "pass a gen3c cameras JSON, a nerfstudio camera_path.json or a nerfstudio transforms.json"
    if not content.strip():  # (was "is not valid JSON (Expecting value: line 1 column 1 (char 0))")
        raise Gen3cInputError(f"{name} is empty{'' if not content else ' (only blank space)'}: write the cameras into it, or pass the file again (it may not have finished copying)")
    try:
        data = loads_json(user_text(content, name, fix, "a camera file"), name, "camera file", fix, **json_hooks(name))
    except json.JSONDecodeError as exc:
        if exc.doc.lstrip()[:1] in ("{", "[", ""):
            raise Gen3cInputError(f"{name} is not valid JSON ({exc}): {fix}") from None
        # text that never was JSON (a CSV, KITTI's poses.txt): JSON's parser's words would not say so
        first = exc.doc.lstrip().splitlines()[0].strip()
        kitti = "; a KITTI poses.txt (12 numbers a line) becomes a gen3c cameras JSON as docs/cameras.md, 'gen3c cameras JSON', shows"
        raise Gen3cInputError(f"{name} is text, not valid JSON (its first line: {quoted(first, 60)}): {fix}{kitti if _numbers_line(first, 12) else ''}") from None
    _check_run_length(data, name)  # (the GUI's import too: its path's length becomes the run's)
    return data


def json_hooks(name: str) -> dict[str, Callable]:
    """``json.loads``'s keyword arguments for a camera's JSON (a camera file, an ``--intrinsics``
    file) named ``name`` in its refusals: an integer no float can hold and a key given twice in
    one object are each a one-line :class:`Gen3cInputError`."""
    return {"parse_int": _json_integer(name), "object_pairs_hook": _json_object(name)}


def _numbers_line(line: str, count: int) -> bool:
    """Whether ``line`` is ``count`` numbers apart by spaces."""
    words = line.split()
    try:
        return len(words) == count and all(math.isfinite(float(word)) for word in words)
    except ValueError:
        return False


#: The largest integer a float64 holds (±1.8e308, 309 digits): a camera file's numbers are read as floats.
_FLOAT_MAX = int(sys.float_info.max)


def _json_integer(name: str) -> Callable[[str], int]:
    """json's ``parse_int`` for a camera file: an integer no float can hold (a 400-digit one was
    OverflowError once converted, one of 5000 digits Python's own ValueError) is one line."""

    def parse(text: str) -> int:
        digits = len(text.lstrip("-"))
        value = int(text) if digits <= len(str(_FLOAT_MAX)) else None  # (int() of 4300 digits and more is refused)
        if value is None or abs(value) > _FLOAT_MAX:
            shown = text if len(text) <= 12 else f"{text[:4]}…{text[-3:]}"
            raise Gen3cInputError(f"{name} holds the integer {shown} ({digits} digits), beyond any floating-point number: check that number")
        return value

    return parse


def _json_object(name: str) -> Callable[[list[tuple[str, Any]]], dict]:
    """json's ``object_pairs_hook`` for a camera file: a key given twice in one object is refused
    (a JSON reader keeps its last value and drops the first without a word)."""

    def build(pairs: list[tuple[str, Any]]) -> dict:
        obj = dict(pairs)
        if len(obj) < len(pairs):
            seen: dict[str, Any] = {}
            for key, value in pairs:
                if key in seen:
                    raise Gen3cInputError(
                        f"{name} gives {key[:40]!r} twice in one object ({_show(seen[key])}, then {_show(value)}): "
                        "a JSON reader keeps the last and drops the first; keep one"
                    )
                seen[key] = value
        return obj

    return build


def cameras_from_dict(data: Any, name: str = "camera file", follow_keyframes: bool = True) -> Cameras:
    """The cameras of a camera file's JSON object (any supported kind, detected from its keys).

    A ``camera_path.json`` that gen3c wrote with keyframes (its ``"gen3c"`` entry names their
    ``"smoothness"``) is its keyframe path, sampled by :func:`~gen3c.trajectories.keyframe_trajectory`
    at its frames with its ``camera_path``'s intrinsics; its ``camera_path`` poses must agree
    (they are written for nerfstudio). ``follow_keyframes=False`` reads ``camera_path`` as it is.
    """
    if not isinstance(data, dict):
        raise Gen3cInputError(f"{name} must hold a JSON object with 'frames' or 'camera_path'")
    try:
        kind = camera_file_kind(data)
        if kind == "camera_path":
            # The keyframes are read first: what is wrong with the path as a whole (more frames than
            # a run may ask for) is said before each of its camera_path entries is read.
            keyframes = read_keyframe_path(data, name) if follow_keyframes and _gen3c_keyframes(data) else None
            cams = _from_nerfstudio_path(data)
            if keyframes is not None:
                cams = _follow_keyframes(keyframes, cams)
        elif kind == "transforms":
            cams = _from_nerfstudio_transforms(data)
        elif "frames" in data:
            cams = _from_gen3c(data)
        elif isinstance(data.get("outputs"), dict) and "video_save_name" in data:
            # NAME_run.json sits beside NAME_cameras.json: the record names the run's cameras file
            cameras = data["outputs"].get("cameras")
            raise Gen3cInputError(
                f"{name} is a run record (NAME_run.json), not a camera file: pass the cameras it wrote, "
                f"{cameras if isinstance(cameras, str) else 'NAME_cameras.json'} beside it, or run the record again with gen3c batch"
            )
        else:
            raise Gen3cInputError(
                f"{name} has neither 'frames' (a gen3c cameras JSON, a nerfstudio transforms.json) nor 'camera_path' "
                "(a nerfstudio camera_path.json): see the documented formats"
            )
    except Gen3cInputError as exc:
        msg = str(exc)
        raise Gen3cInputError(msg if msg.startswith(name) else f"{name}: {msg}") from None
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise Gen3cInputError(f"{name} is malformed ({type(exc).__name__}: {exc}): see the documented format") from None
    validate_poses(cams.w2c, f"{name} poses")
    validate_intrinsics(cams.K, f"{name} intrinsics")
    return cams


def camera_file_kind(data: dict) -> str:
    """Which kind of camera file a JSON object is, from its keys: ``"camera_path"`` (nerfstudio's
    ``camera_path.json``), ``"transforms"`` (nerfstudio's ``transforms.json``) or ``"gen3c"``."""
    if "camera_path" in data:
        return "camera_path"
    frames = data.get("frames")
    if isinstance(frames, list) and (
        any(isinstance(f, dict) and "transform_matrix" in f for f in frames) or any(key in data for key in NERFSTUDIO_TOP_KEYS)
    ):  # (an empty or unfinished transforms.json was refused as a gen3c file holding an unknown 'fl_x')
        return "transforms"
    return "gen3c"


#: The input image's camera (the world's origin, OpenCV ``w2c`` = identity) as each kind of camera
#: file writes it: nerfstudio's poses are OpenGL camera-to-world, y and z turned round.
_OPENGL_ORIGIN = "[[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]] in nerfstudio's OpenGL axes"
SOURCE_POSE = {
    "gen3c": "w2c = identity",
    "camera_path": f"camera_to_world = {_OPENGL_ORIGIN}",
    "transforms": f"transform_matrix = {_OPENGL_ORIGIN}",
}
#: How to mend each kind of camera file whose poses were written in the other axes (OpenCV for
#: OpenGL or the reverse): the cameras then sit where they should, each turned 180° about its x axis.
_NERFSTUDIO_AXES = (
    "nerfstudio's {key} is an OpenGL camera-to-world (x right, y up, looking along −z), these look OpenCV "
    "(x right, y down, z forward): negate the 2nd and 3rd columns of each {key}"
)
AXES_FIX = {
    "gen3c": "a gen3c cameras JSON's poses are OpenCV (x right, y down, z forward), these look OpenGL (x right, y up, looking "
    "along −z: nerfstudio's, Blender's): negate the 2nd and 3rd rows of each 'w2c', or the 2nd and 3rd columns of each 'c2w'",
    "camera_path": _NERFSTUDIO_AXES.format(key="'camera_to_world'"),
    "transforms": _NERFSTUDIO_AXES.format(key="'transform_matrix'"),
}


def camera_file_intrinsics(data: dict, name: str = "camera file") -> tuple[torch.Tensor, tuple[int, int]]:
    """The one camera of a camera file's JSON object, as an image's ``--intrinsics``
    (:func:`gen3c.io.intrinsics.parse_intrinsics`): its (3, 3) float32 intrinsics in gen3c's
    pixels and the (H, W) they are pixels of.

    The frames' intrinsics, read as :func:`cameras_from_dict` reads them (a nerfstudio
    ``transforms.json``: its pixel grid, pinhole models only, lens distortion up to ½ px), must be
    one camera. A ``transforms.json`` may hold its camera alone (``fl_x``, ``fl_y``, ``cx``,
    ``cy``, ``w``, ``h``, … at the top level, no frames).

    Raises:
        Gen3cInputError: what :func:`cameras_from_dict` refuses, or frames of different
            intrinsics, in one line naming ``name``.
    """
    if not data.get("frames") and "camera_path" not in data and any(key in data for key in NERFSTUDIO_TOP_KEYS):
        try:
            K, h, w = _nerfstudio_camera(data, {}, "")
        except Gen3cInputError as exc:
            raise Gen3cInputError(f"{name}: {exc}") from None
        return check_intrinsics_fit(K, h, w, f"{name} intrinsics").float(), (h, w)
    cams = cameras_from_dict(data, name, follow_keyframes=False)
    differ = (cams.K != cams.K[0]).flatten(1).any(1)
    if bool(differ.any()):
        i = int(differ.nonzero()[0, 0])
        shown = [", ".join(f"{float(v):g}" for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2])) for K in (cams.K[0], cams.K[i])]
        raise Gen3cInputError(
            f"{name} holds cameras of different intrinsics (fx, fy, cx, cy = {shown[0]} and {shown[1]}): an image has one; "
            "pass the input image's own as 'fx,fy,cx,cy'"
        )
    return cams.K[0], (cams.height, cams.width)


def _show(value: Any) -> str:
    """``value`` as a message quotes it: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _label(where: str, key: str) -> str:
    """A field's name in a message: ``frames[3].K`` inside ``frames[3]``, ``'K'`` at the top level."""
    return f"{where}.{key}" if where else f"'{key}'"


def _holds_bool(value: Any) -> bool:
    """Whether a JSON value (nested lists) holds true or false anywhere."""
    if isinstance(value, list):
        return any(isinstance(v, bool) for v in value) or any(_holds_bool(v) for v in value if isinstance(v, list))
    return isinstance(value, bool)


def _matrix(value: Any, rows: int, cols: int, what: str) -> torch.Tensor:
    try:
        if _holds_bool(value):  # (torch reads true and false as 1 and 0; every other number of a file refuses them)
            raise TypeError
        t = torch.tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise Gen3cInputError(f"{what} must be a {rows}×{cols} matrix of numbers, got {_show(value)}") from None
    if t.numel() == rows * cols and t.ndim == 1:
        t = t.reshape(rows, cols)
    if (rows, cols) == (3, 3) and t.shape in ((16,), (4, 4)):  # ScanNet's 4×4 K, as --intrinsics reads it
        t = torch.from_numpy(unpad_intrinsics(t.reshape(4, 4).numpy(), what).copy())
    if t.shape == (3, 4) and (rows, cols) == (4, 4):
        t = torch.cat([t, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=t.dtype)])
    if t.shape == (12,) and (rows, cols) == (4, 4):  # which 3×4 (rows or columns first) is the writer's to say
        raise Gen3cInputError(
            f"{what} holds 12 numbers in one list, a 3×4 pose written flat (as a KITTI poses.txt line): write them as its 3 rows, "
            "[[r11, r12, r13, tx], [r21, r22, r23, ty], [r31, r32, r33, tz]] (a KITTI line's numbers in order, 4 a row)"
        )
    if t.shape != (rows, cols):
        also = {(4, 4): " (or 3×4: its rows without [0, 0, 0, 1])", (3, 3): " (or 4×4 padded with [0, 0, 0, 1])"}[(rows, cols)]
        raise Gen3cInputError(f"{what} must be {rows}×{cols}{also}, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise Gen3cInputError(f"{what} contains NaN or infinite values: write finite numbers")
    largest = float(t.abs().max())
    if largest > torch.finfo(torch.float32).max:  # was "Cameras.w2c contain NaN or infinite values", once in float32
        raise Gen3cInputError(f"{what} holds {largest:g}, beyond float32's ±{torch.finfo(torch.float32).max:.3g}, the precision cameras are rendered in: check its units")
    return t


def _pose(value: Any, what: str) -> torch.Tensor:
    """A file's 4×4 pose (a 3×4 gets its [0, 0, 0, 1] row), refused in one line naming ``what``
    unless it is rigid."""
    return validate_poses(_matrix(value, 4, 4, what), what)


# A file's frames are checked as one stack: checked one by one, 20,000 frames took a minute.
def _rigid(poses: list[torch.Tensor], whats: list[str]) -> torch.Tensor:
    """(N, 4, 4) of :func:`_matrix` 4×4 ``poses``, refused as :func:`_pose` refuses the first
    that is not rigid, naming it by its ``whats`` entry."""
    stack = torch.stack(poses)
    try:
        return validate_poses(stack, "poses")
    except Gen3cInputError:
        for pose, what in zip(poses, whats, strict=True):
            validate_poses(pose, what)
        raise


def _fitting(Ks: list[torch.Tensor], whats: list[str], height: int, width: int) -> torch.Tensor:
    """(N, 3, 3) of 3×3 intrinsics, refused as :func:`check_intrinsics_fit` refuses the first
    that cannot belong to a ``height`` × ``width`` image, naming it by its ``whats`` entry."""
    stack = torch.stack(Ks)
    try:
        return check_intrinsics_fit(stack, height, width)
    except Gen3cInputError:
        for K, what in zip(Ks, whats, strict=True):
            check_intrinsics_fit(K, height, width, what)
        raise


def _real(value: Any, what: str, positive: bool = False) -> float:
    """``value`` as a finite number (> 0 when ``positive``), else one line naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Gen3cInputError(f"{what} must be a finite number, got {_show(value)}")
    if positive and value <= 0:
        raise Gen3cInputError(f"{what} {value:g} must be > 0 pixels")
    return float(value)


MAX_IMAGE_SIDE = 16384


def _pixels(value: Any, what: str) -> int:
    """An image side: a whole number of pixels (``480`` or ``480.0``), else one line naming ``what``."""
    if value is None:
        raise Gen3cInputError(f"{what} is missing: give the width and height, in pixels, of the image the intrinsics refer to")
    # (numpy's numbers too: a dict built in Python for cameras_from_dict; np.int64(480) was refused)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Gen3cInputError(f"{what} must be a whole number of pixels, got {_show(value)}")
    value = int(value) if isinstance(value, numbers.Integral) else float(value)
    if isinstance(value, float) and not value.is_integer():
        raise Gen3cInputError(f"{what} {value:g} is not a whole number of pixels: give the size, in pixels, of the image the intrinsics refer to")
    if not 1 <= value <= MAX_IMAGE_SIDE:
        raise Gen3cInputError(f"{what} {value:g} is not an image size: give a whole number of pixels between 1 and {MAX_IMAGE_SIDE}")
    return int(value)


def _size(data: dict, keys: tuple[str, str]) -> tuple[int, int]:
    """(height, width) from ``data[keys[0]]``, ``data[keys[1]]``."""
    return _pixels(data.get(keys[0]), f"'{keys[0]}'"), _pixels(data.get(keys[1]), f"'{keys[1]}'")


def _only_one(entry: dict, keys: tuple[str, str], where: str) -> None:
    if keys[0] in entry and keys[1] in entry:
        raise Gen3cInputError(f"{_label(where, keys[0])} and {_label(where, keys[1])} are both given: keep one (they say the same thing two ways)")


def _intrinsics(entry: dict, fallback: torch.Tensor | None, where: str) -> torch.Tensor:
    _only_one(entry, ("K", "intrinsics"), where)
    if "K" in entry:
        return _matrix(entry["K"], 3, 3, _label(where, "K"))
    if "intrinsics" in entry:
        what, values = _label(where, "intrinsics"), entry["intrinsics"]
        if not isinstance(values, list) or len(values) != 4:
            raise Gen3cInputError(f"{what} must be [fx, fy, cx, cy] in pixels, got {_show(values)}")
        return make_intrinsics(*(_real(v, f"{what}[{j}]") for j, v in enumerate(values)), dtype=torch.float64)
    if fallback is None:
        raise Gen3cInputError(f"{where} has no 'K' or 'intrinsics' and the file has no top-level intrinsics")
    return fallback


#: The keys of a gen3c cameras JSON, at the top level and in a frame (module docstring).
GEN3C_KEYS = ("format", "version", "convention", "note", "width", "height", "fps", "K", "intrinsics", "frames")
GEN3C_FRAME_KEYS = ("w2c", "c2w", "K", "intrinsics")


def _known_keys(entry: dict, keys: tuple[str, ...], where: str) -> None:
    """A key gen3c does not read would be dropped silently (a misspelt "intrinsic" leaves a frame
    the file's shared intrinsics): refuse it."""
    unknown = [key for key in entry if key not in keys]
    if unknown:
        place = where or "the top level"
        raise Gen3cInputError(
            f"{_label(where, str(unknown[0]))} is not a key of a gen3c cameras JSON ({place} holds {', '.join(keys)}): fix its name or remove it"
        )


def _from_gen3c(data: dict) -> Cameras:
    if data.get("format", FORMAT_NAME) != FORMAT_NAME:
        raise Gen3cInputError(f"'format' {_show(data['format'])} is not {FORMAT_NAME!r}: pass a gen3c cameras JSON or a nerfstudio camera file")
    version = data.get("version", 1)
    if isinstance(version, bool) or version != 1:
        raise Gen3cInputError(f"'version' {_show(version)} is not 1, the one this gen3c reads: write the file with this gen3c")
    _known_keys(data, GEN3C_KEYS, "")
    if data.get("convention", "opencv") != "opencv":
        raise Gen3cInputError(f"'convention' {_show(data.get('convention'))} is not supported: gen3c camera files use 'opencv'")
    h, w = _size(data, ("height", "width"))
    frames = data["frames"]
    if not isinstance(frames, list) or not frames:
        raise Gen3cInputError("'frames' must be a non-empty list")
    shared = _intrinsics(data, None, "") if ("K" in data or "intrinsics" in data) else None
    poses, pose_names, inverted, Ks, K_names = [], [], [], [], []
    for i, frame in enumerate(frames):
        where = f"frames[{i}]"
        if not isinstance(frame, dict):
            raise Gen3cInputError(f"{where} must be an object with 'w2c' or 'c2w'")
        _known_keys(frame, GEN3C_FRAME_KEYS, where)
        _only_one(frame, ("w2c", "c2w"), where)
        key = "w2c" if "w2c" in frame else "c2w"
        if key not in frame:
            raise Gen3cInputError(f"{where} has neither 'w2c' nor 'c2w'")
        poses.append(_matrix(frame[key], 4, 4, f"{where}.{key}"))
        pose_names.append(f"{where}.{key}")
        inverted.append(key == "c2w")
        Ks.append(_intrinsics(frame, shared, where))
        K_names.append(f"{where} intrinsics")
    stack = _rigid(poses, pose_names)
    w2c = torch.where(torch.tensor(inverted)[:, None, None], invert_pose(stack), stack)
    return Cameras(w2c.float(), _fitting(Ks, K_names, h, w).float(), h, w)


def _from_nerfstudio_path(data: dict) -> Cameras:
    """nerfstudio's ``get_path_from_json``: one camera per ``camera_path`` entry."""
    camera_type = data.get("camera_type", "perspective")
    if camera_type != "perspective":
        raise Gen3cInputError(
            f"'camera_type' {str(camera_type)[:40]!r} is not supported: gen3c renders pinhole cameras; export the path with camera type 'perspective'"
        )
    h, w = _size(data, ("render_height", "render_width"))
    path = data["camera_path"]
    if not isinstance(path, list) or not path:
        raise Gen3cInputError("'camera_path' must be a non-empty list, one camera per frame")
    poses, pose_names, Ks, K_names = [], [], [], []
    for i, entry in enumerate(path):
        what = f"camera_path[{i}]"
        if not isinstance(entry, dict) or entry.get("camera_to_world") is None:
            raise Gen3cInputError(f"{what} needs 'camera_to_world', 16 numbers (OpenGL camera-to-world, row-major)")
        poses.append(_matrix(entry["camera_to_world"], 4, 4, f"{what}.camera_to_world"))
        pose_names.append(f"{what}.camera_to_world")
        # gen3c's exact intrinsics when it wrote the file; nerfstudio's centred pinhole otherwise.
        Ks.append(_matrix(entry["K"], 3, 3, f"{what}.K") if "K" in entry else intrinsics_from_nerfstudio_fov(_fov(entry.get("fov"), what), h, w))
        K_names.append(f"{what}.K" if "K" in entry else f"{what} intrinsics")
    w2c = opengl_to_opencv(_rigid(poses, pose_names))
    K = _fitting(Ks, K_names, h, w)
    for i, entry in enumerate(path):
        if "K" in entry and entry.get("fov") is not None:
            _check_written_K(entry, f"camera_path[{i}]", K[i], h)
    return Cameras(w2c.float(), K.float(), h, w)


def _check_written_K(entry: dict, what: str, K: torch.Tensor, height: int) -> None:
    """An entry's gen3c ``"K"`` must agree with its ``"fov"`` (nerfstudio renders the fov):
    their focal lengths may put the image's top and bottom edges at most ½ px apart."""
    fov = _fov(entry["fov"], what)
    focal, fy = focal_from_fov(fov, height), float(K[1, 1])
    if abs(focal - fy) / fy * height / 2 > 0.5:
        raise Gen3cInputError(
            f"{what} 'fov' {fov:g}° is a focal length of {focal:.6g} px over {height} rows, but its 'K' has fy {fy:.6g} px: "
            "nerfstudio renders the fov and gen3c the K; fix the fov, or delete 'K' to render the fov's centred camera"
        )


def _fov(value: Any, what: str) -> float:
    if value is None:  # (was "'fov' None is not a vertical field of view": absent, not wrong)
        raise Gen3cInputError(f"{what} has no 'fov': give its vertical field of view in degrees, between 0.01 and 179 (nerfstudio requires one)")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.01 <= value <= 179.0:  # NaN fails too
        raise Gen3cInputError(f"{what} 'fov' {_show(value)} is not a vertical field of view in degrees: give one between 0.01 and 179")
    return float(value)


#: nerfstudio's camera models (``cameras.py``, ``CAMERA_MODEL_TO_TYPE``) that are pinhole cameras,
#: lens distortion (``k1`` … ``p2``) aside …
NERFSTUDIO_PINHOLE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")
#: … and those that are not, as what they are.
NERFSTUDIO_OTHER_MODELS = {
    "OPENCV_FISHEYE": "a fisheye", "FISHEYE624": "a fisheye", "EQUIRECTANGULAR": "an equirectangular (360°)",
    "OMNIDIRECTIONALSTEREO_L": "an omnidirectional stereo", "OMNIDIRECTIONALSTEREO_R": "an omnidirectional stereo",
    "VR180_L": "a VR180", "VR180_R": "a VR180", "ORTHOPHOTO": "an orthographic",
}  # fmt: skip
#: transforms.json's lens distortion, in the order of its ``distortion_params`` (nerfstudio's
#: ``camera_utils.get_distortion_params``); an absent one is 0.
NERFSTUDIO_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
#: A lens whose distortion moves no pixel of its image by more than this many pixels (of the
#: file's size) is read as its pinhole camera: the nearest pixel is the same.
MAX_DISTORTION_SHIFT = 0.5
#: Top-level keys that make a file with ``frames`` a transforms.json (a gen3c file has none of them).
NERFSTUDIO_TOP_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_model", "camera_angle_x", "distortion_params")
#: The fields transforms.json must give, at the top level or in every frame, and what each is.
_NERFSTUDIO_REQUIRED = {
    "fl_x": "the focal length in pixels",
    "fl_y": "the vertical focal length in pixels",
    "cx": "the principal point's x in pixels (w / 2 for a centred camera)",
    "cy": "the principal point's y in pixels (h / 2 for a centred camera)",
    "w": "the image width in pixels",
    "h": "the image height in pixels",
}


def _from_nerfstudio_transforms(data: dict) -> Cameras:
    """nerfstudio's ``transforms.json`` as its ``nerfstudio_dataparser.py`` reads it: frames in
    ``file_path`` order; ``fl_x``, ``fl_y``, ``cx``, ``cy``, ``w``, ``h``, ``camera_model`` and the
    distortion at the top level or in every frame; ``transform_matrix`` an OpenGL camera-to-world."""
    frames = data["frames"]
    if not frames:
        raise Gen3cInputError("'frames' is empty: give one frame per image, each with its 'transform_matrix' (camera-to-world 4×4, OpenGL)")
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict) or "transform_matrix" not in frame:
            raise Gen3cInputError(f"frames[{i}] has no 'transform_matrix': give every frame its camera-to-world 4×4 (OpenGL), as nerfstudio does")
    poses, pose_names, Ks, K_names, size = [], [], [], [], None
    for i in _nerfstudio_frame_order(frames):
        frame, where = frames[i], f"frames[{i}]"
        K, h, w = _nerfstudio_camera(data, frame, where)
        if size is not None and size[1:] != (h, w):
            raise Gen3cInputError(
                f"{where} is {w}×{h} (w × h) but {size[0]} is {size[2]}×{size[1]}: gen3c renders one image size; give every frame the same 'w' and 'h'"
            )
        size = size or (where, h, w)
        Ks.append(K)
        K_names.append(f"{where} intrinsics")
        poses.append(_matrix(frame["transform_matrix"], 4, 4, f"{where}.transform_matrix"))
        pose_names.append(f"{where}.transform_matrix")
    w2c = opengl_to_opencv(_rigid(poses, pose_names))
    return Cameras(w2c.float(), _fitting(Ks, K_names, size[1], size[2]).float(), size[1], size[2])


def _nerfstudio_camera(data: dict, frame: dict, where: str) -> tuple[torch.Tensor, int, int]:
    """A transforms.json frame's pinhole camera (its fields or the file's; ``where`` "" for the
    file's own, without a frame): (K in gen3c's pixels, h, w)."""

    def field(key: str) -> tuple[Any, str]:
        return _transforms_field(data, frame, key, where)

    _check_camera_model(*field("camera_model"))
    h, w = (_nerfstudio_required(field, key, where, data) for key in ("h", "w"))
    K = intrinsics_from_nerfstudio(*(_nerfstudio_required(field, key, where, data) for key in ("fl_x", "fl_y", "cx", "cy")))
    _check_distortion(field, K, h, w)
    return K, h, w


def _nerfstudio_frame_order(frames: list[dict]) -> list[int]:
    """The order nerfstudio gives transforms.json's frames: by ``file_path`` (its dataparser
    sorts them by image file, path part by path part); a file with no ``file_path`` keeps its order."""
    paths = [frame.get("file_path") for frame in frames]
    if all(path is None for path in paths):
        return list(range(len(frames)))
    for i, path in enumerate(paths):
        if not isinstance(path, str) or not path:
            raise Gen3cInputError(
                f"frames[{i}].file_path is {_show(path)} while other frames name their image: nerfstudio orders the frames by "
                "file_path; give every frame one, or none to keep the file's order"
            )
    return sorted(range(len(frames)), key=lambda i: PurePosixPath(paths[i]).parts)


def _transforms_field(data: dict, frame: dict, key: str, where: str) -> tuple[Any, str]:
    """A frame's ``key``: its own or the file's, and the field's name ("" when neither has it).
    Both, different, is refused: one of them would be dropped silently."""
    if key in frame and key in data and frame[key] != data[key]:
        raise Gen3cInputError(f"{where}.{key} {_show(frame[key])} differs from the file's '{key}' {_show(data[key])}: give it once, at the top level or in every frame")
    if key in frame:
        return frame[key], f"{where}.{key}"
    if key in data:
        return data[key], f"'{key}'"
    return None, ""


def _nerfstudio_required(field: Callable[[str], tuple[Any, str]], key: str, where: str, data: dict) -> float | int:
    """A field nerfstudio requires of every frame (its own or the file's): a focal length > 0,
    a principal point coordinate, or an image side in whole pixels."""
    value, label = field(key)
    if not label:
        hint = ""
        if key == "fl_x" and "camera_angle_x" in data:
            hint = " ('camera_angle_x' is Blender's and instant-ngp's, which nerfstudio's format does not read: fl_x = w / 2 / tan(camera_angle_x / 2))"
        missing = f"{where} has no '{key}' and the file has none" if where else f"the file has no '{key}'"
        raise Gen3cInputError(f"{missing}: give {_NERFSTUDIO_REQUIRED[key]} as '{key}', at the top level or in every frame{hint}")
    if key in ("w", "h"):
        return _pixels(value, label)
    return _real(value, label, positive=key.startswith("fl_"))


def _check_camera_model(model: Any, label: str) -> None:
    if not label or model in NERFSTUDIO_PINHOLE_MODELS:
        return
    kind = NERFSTUDIO_OTHER_MODELS.get(model) if isinstance(model, str) else None
    if kind is not None:
        raise Gen3cInputError(
            f"{label} {model!r} is {kind} camera: gen3c renders pinhole cameras; give the pinhole camera of the images undistorted "
            "first (camera_model 'PINHOLE' or 'OPENCV' with fl_x, fl_y, cx, cy; e.g. COLMAP's image_undistorter writes one)"
        )
    raise Gen3cInputError(f"{label} {_show(model)} is not one of nerfstudio's camera models: give one of {', '.join(NERFSTUDIO_PINHOLE_MODELS)}")


def _check_distortion(field: Callable[[str], tuple[Any, str]], K: torch.Tensor, height: int, width: int) -> None:
    """Refuse lens distortion that moves a pixel more than :data:`MAX_DISTORTION_SHIFT` from the
    pinhole camera ``K`` (what gen3c renders). ``distortion_params`` (nerfstudio's list) is
    taken over ``k1`` … ``p2``, as nerfstudio does; both, different, is refused."""
    named = [field(key) for key in NERFSTUDIO_DISTORTION_KEYS]
    params, label = field("distortion_params")
    if label:
        if not isinstance(params, list) or len(params) != len(NERFSTUDIO_DISTORTION_KEYS):
            raise Gen3cInputError(f"{label} must be [k1, k2, k3, k4, p1, p2], 6 numbers, got {_show(params)}")
        labels = [f"{label[:-1]}[{j}]'" if label.endswith("'") else f"{label}[{j}]" for j in range(len(params))]
        coefficients = [_real(v, what) for v, what in zip(params, labels, strict=True)]
        for (value, what), c, in_list in zip(named, coefficients, labels, strict=True):
            if what and _real(value, what) != c:
                raise Gen3cInputError(f"{what} {value:g} differs from {in_list} {c:g}: give the distortion once")
    else:
        labels = [what for _, what in named]
        coefficients = [_real(value, what) if what else 0.0 for value, what in named]
    _refuse_distortion(K, height, width, coefficients, labels,
                       "set it to 0 to render the pinhole camera of the same fl_x, fl_y, cx, cy, or give the pinhole camera of frames undistorted first (e.g. COLMAP's image_undistorter)")  # fmt: skip


def _refuse_distortion(K: torch.Tensor, height: int, width: int, coefficients: list[float], labels: list[str], fix: str) -> None:
    """Refuse radial-tangential lens distortion (``coefficients``: k1, k2, k3, k4, p1, p2 in
    nerfstudio's order, ``labels`` their names in a message) that moves a pixel of the ``height`` ×
    ``width`` image more than :data:`MAX_DISTORTION_SHIFT` from the pinhole camera ``K``."""
    if not any(coefficients):
        return
    shift = lens_distortion_shift(K, height, width, tuple(coefficients))
    if shift > MAX_DISTORTION_SHIFT:
        given = ", ".join(f"{what} {c:g}" for what, c in zip(labels, coefficients, strict=True) if c)
        raise Gen3cInputError(f"lens distortion {given} moves pixels up to {shift:.3g} px from the pinhole camera gen3c renders: {fix}")


#: COLMAP's camera models (``src/colmap/sensor/models.h``) that are pinhole cameras with lens
#: distortion: their parameters, in ``cameras.txt``'s order …
COLMAP_PINHOLE_MODELS = {
    "SIMPLE_PINHOLE": ("f", "cx", "cy"),
    "PINHOLE": ("fx", "fy", "cx", "cy"),
    "SIMPLE_RADIAL": ("f", "cx", "cy", "k"),
    "RADIAL": ("f", "cx", "cy", "k1", "k2"),
    "OPENCV": ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2"),
    "FULL_OPENCV": ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"),
    "FOV": ("fx", "fy", "cx", "cy", "omega"),
    "SIMPLE_DIVISION": ("f", "cx", "cy", "k"),
    "DIVISION": ("fx", "fy", "cx", "cy", "k"),
}
#: … their radial-tangential distortion as nerfstudio's (k1, k2, k3, k4, p1, p2) (:func:`_refuse_distortion`;
#: FULL_OPENCV's k4 … k6 divide, FOV's and the division models' distort otherwise: read only at 0) …
_COLMAP_AS_NERFSTUDIO = {"SIMPLE_RADIAL": ("k", "", "", "", "", ""), "RADIAL": ("k1", "k2", "", "", "", ""),
                         "OPENCV": ("k1", "k2", "", "", "p1", "p2"), "FULL_OPENCV": ("k1", "k2", "k3", "", "p1", "p2")}  # fmt: skip
#: … and the fisheye models, never pinhole cameras.
COLMAP_FISHEYE_MODELS = ("OPENCV_FISHEYE", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE", "THIN_PRISM_FISHEYE", "RAD_TAN_THIN_PRISM_FISHEYE")
#: How to get a pinhole camera from COLMAP, for the refusals.
_UNDISTORT = "undistort the images first (colmap image_undistorter writes their PINHOLE camera in sparse/cameras.txt) and pass that camera with an undistorted image"


def is_colmap_cameras(text: str) -> bool:
    """Whether ``text`` is a COLMAP ``cameras.txt`` (a line ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS...``
    after ``#`` comments), not an intrinsics text file of numbers."""
    return any(_COLMAP_LINE.match(line) for line in text.splitlines())


_COLMAP_LINE = re.compile(r"^\s*\d+\s+[A-Za-z_][A-Za-z0-9_]*\s")


def colmap_camera_intrinsics(text: str, name: str = "cameras.txt") -> tuple[torch.Tensor, tuple[int, int]]:
    """The one camera of a COLMAP ``cameras.txt`` (its text model), as an image's ``--intrinsics``
    (:func:`gen3c.io.intrinsics.parse_intrinsics`): (3, 3) float64 intrinsics in gen3c's pixels and
    the (H, W) they are pixels of (``HEIGHT``, ``WIDTH``).

    ``SIMPLE_PINHOLE`` (f, cx, cy) and ``PINHOLE`` (fx, fy, cx, cy) are read as they are; a model
    with lens distortion as nerfstudio's ``transforms.json`` is (:func:`_check_distortion`): only
    where it moves no pixel by more than :data:`MAX_DISTORTION_SHIFT`. COLMAP puts pixel centres at
    (u + ½, v + ½), as nerfstudio does: its principal point is gen3c's + ½
    (:func:`gen3c.cameras.intrinsics_from_nerfstudio`). Several cameras are one when equal.

    Raises:
        Gen3cInputError: a malformed line, a fisheye or unknown model, too much distortion, several
            different cameras — one line naming ``name``.
    """
    cameras = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            cameras[line.split()[0]] = (number, *_colmap_camera(line.split()))
        except Gen3cInputError as exc:
            raise Gen3cInputError(f"{name} line {number}: {exc}") from None
    if not cameras:
        raise Gen3cInputError(f"{name} holds no camera line 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...': pass COLMAP's cameras.txt")
    (first, (_, K, size)), *others = cameras.items()
    if any(not torch.equal(other_K, K) or other_size != size for _, (_, other_K, other_size) in others):
        ids = list(cameras)
        shown = ", ".join(ids[:5]) + (", …" if len(ids) > 5 else "")
        raise Gen3cInputError(
            f"{name} holds {len(ids)} cameras of different intrinsics (CAMERA_ID {shown}): an image has one; pass a cameras.txt of the "
            "input image's camera alone (images.txt names each image's CAMERA_ID) or its 'fx,fy,cx,cy'"
        )
    return check_intrinsics_fit(K, *size, f"{name} camera {first} (line {cameras[first][0]})"), size


def _colmap_camera(words: list[str]) -> tuple[torch.Tensor, tuple[int, int]]:
    """A ``cameras.txt`` line's pinhole camera: (K in gen3c's pixels, (HEIGHT, WIDTH))."""
    if len(words) < 4 or not words[0].isdigit():
        raise Gen3cInputError(f"{_show(' '.join(words))} is no camera line 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...'")
    model = words[1]
    if model in COLMAP_FISHEYE_MODELS:
        raise Gen3cInputError(f"model {model} is a fisheye camera: gen3c renders pinhole cameras; {_UNDISTORT}")
    if model not in COLMAP_PINHOLE_MODELS:
        raise Gen3cInputError(f"model {_show(model)} is none of COLMAP's camera models: give one of {', '.join(COLMAP_PINHOLE_MODELS)}")
    names = COLMAP_PINHOLE_MODELS[model]
    if len(words) != 4 + len(names):
        raise Gen3cInputError(f"{model} takes WIDTH HEIGHT and {len(names)} parameters ({', '.join(names)}), got {len(words) - 4} after WIDTH HEIGHT")
    try:
        numbers = [float(word) for word in words[2:]]
    except ValueError:
        raise Gen3cInputError(f"{model}'s WIDTH HEIGHT {' '.join(names)} must be numbers, got {_show(' '.join(words[2:]))}") from None
    width, height = (_pixels(value, what) for value, what in zip(numbers[:2], ("WIDTH", "HEIGHT"), strict=True))
    params = {key: _real(value, f"{model} {key}", positive=key.startswith("f")) for key, value in zip(names, numbers[2:], strict=True)}
    fx, fy = params.get("fx", params.get("f")), params.get("fy", params.get("f"))
    # COLMAP's pixel centres are nerfstudio's, (u + ½, v + ½): its principal point is gen3c's + ½
    K = intrinsics_from_nerfstudio(fx, fy, params["cx"], params["cy"])
    distortion = {key: value for key, value in params.items() if key not in ("f", "fx", "fy", "cx", "cy")}
    if model in _COLMAP_AS_NERFSTUDIO and not any(distortion.get(key) for key in ("k4", "k5", "k6")):
        keys = _COLMAP_AS_NERFSTUDIO[model]
        _refuse_distortion(K, height, width, [distortion.get(key, 0.0) for key in keys], list(keys),
                           f"pass the PINHOLE camera of the same fx, fy, cx, cy, or {_UNDISTORT}")  # fmt: skip
    elif any(distortion.values()):
        given = ", ".join(f"{key} {value:g}" for key, value in distortion.items() if value)
        raise Gen3cInputError(f"{model}'s lens distortion {given} is not a pinhole camera's: {_UNDISTORT}")
    return K, (height, width)


def _gen3c_keyframes(data: dict) -> bool:
    """Whether ``data`` is a camera_path.json whose keyframes gen3c wrote, and so defines."""
    extra = data.get("gen3c")
    return bool(data.get("keyframes")) and isinstance(extra, dict) and "smoothness" in extra


def _follow_keyframes(path: KeyframePath, written: Cameras) -> Cameras:
    cams = path.cameras(written.K, written.height, written.width)
    departure = _departure(cams, written)
    if departure is not None:
        raise Gen3cInputError(
            f"its camera_path does not follow its keyframes ({departure}): "
            "it was changed after gen3c wrote it; import it in gen3c gui and download it again, or delete its \"gen3c\" entry "
            "to replay camera_path as it is"
        )
    return cams


def _departure(sampled: Cameras, written: Cameras) -> str | None:
    """Where ``written`` first leaves ``sampled`` (a keyframe path at its frames), as
    "frame i is d away, turned a°"; None when every pose agrees to float32 precision."""
    written = written.to(sampled.w2c.device)  # keyframes on the CPU, the cameras on a GPU
    off = (sampled.w2c - written.w2c).abs() - 1e-4 * (1 + written.w2c.abs())  # float32 written, float64 evaluated
    bad = (off > 0).flatten(1).any(1)
    if not bool(bad.any()):
        return None
    i = int(bad.nonzero()[0, 0])
    apart = float((sampled.centers[i] - written.centers[i]).norm())
    turned = float(rotation_angle_degrees(sampled.w2c[i, :3, :3].double(), written.w2c[i, :3, :3].double()))
    return f"frame {i} is {apart:.3g} away, turned {turned:.1f}°"


def read_keyframe_path(data: Any, name: str = "camera file") -> KeyframePath | None:
    """The keyframes of a nerfstudio ``camera_path.json`` object, None when it has none or has
    those of nerfstudio's legacy viewer or Blender add-on (``matrix`` as text, column-major, timed
    by ``properties``: there the ``camera_path`` is the path).

    Keyframes carry ``matrix`` (16 numbers, row-major OpenGL camera-to-world). A keyframe's time
    is its ``"time"`` (seconds; gen3c writes it) or, as nerfstudio counts it, the previous
    keyframe's time plus this keyframe's ``override_transition_sec`` when
    ``override_transition_enabled``, else the file's ``default_transition_sec`` (nerfstudio's
    ``render_panel.py``: a keyframe holds the transition that leads to it). A looped path
    (``"is_cycle": true``) goes on to the first keyframe again, after the first keyframe's own
    transition (nerfstudio's closing one): that keyframe is appended, so its times and poses are
    nerfstudio's; the spline's tangent where the loop closes is one-sided here. The smoothness is
    gen3c's own (``"gen3c": {"smoothness": s}``), else ``1 − smoothness_value``: nerfstudio's
    viewer writes its spline *tension* there (0 smooth, 1 tense). The path has one frame per
    ``camera_path`` entry, at the file's rate (:func:`camera_dict_fps`; 24 when it names none, as
    a run's default): frame i at i / rate, as nerfstudio's viewer sampled it. Keyframes marked
    ``"gen3c_hold": true`` (gen3c writes them at the ends for nerfstudio's viewer) are dropped:
    gen3c's spline holds the end poses without them.
    """
    if not isinstance(data, dict) or "camera_path" not in data or not data.get("keyframes"):
        return None
    keyframes = data["keyframes"]
    legacy = isinstance(keyframes, list) and any(isinstance(k, dict) and isinstance(k.get("matrix"), str) for k in keyframes)
    if legacy and not _gen3c_keyframes(data):
        return None
    try:
        return _keyframe_path(data, name)
    except Gen3cInputError as exc:
        msg = str(exc)
        raise Gen3cInputError(msg if msg.startswith(name) else f"{name}: {msg}") from None
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise Gen3cInputError(f"{name} has malformed keyframes ({type(exc).__name__}: {exc}): see the documented format") from None


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Gen3cInputError(f"{what} must be a number, got {str(value)[:40]!r}")
    return float(value)


def _flag(entry: dict, key: str, where: str) -> bool:
    """A true/false field (absent or null: false); another value would be read as one or the
    other by accident."""
    value = entry.get(key)
    if value is not None and not isinstance(value, bool):
        raise Gen3cInputError(f"{_label(where, key)} must be true or false, got {_show(value)}")
    return bool(value)


def _keyframe_path(data: dict, name: str) -> KeyframePath:
    keyframes, path = data["keyframes"], data["camera_path"]
    if not isinstance(keyframes, list) or not all(isinstance(k, dict) for k in keyframes):
        raise Gen3cInputError("'keyframes' must be a list of objects")
    if not isinstance(path, list) or not path:
        raise Gen3cInputError("'camera_path' must be a non-empty list (one entry per frame)")
    if len(path) > MAX_FRAMES:  # (KeyframePath's own refusal, "num_frames N is more than …", named no field of the file)
        raise Gen3cInputError(
            f"'camera_path' has {len(path)} entries, one a frame: more than the {MAX_FRAMES} frames a run may ask for; "
            f"sample the path at {MAX_FRAMES} frames or fewer"
        )
    default = data.get("default_transition_sec", NERFSTUDIO_DEFAULT_TRANSITION_SEC)
    default = _number(default, "'default_transition_sec'") if default is not None else NERFSTUDIO_DEFAULT_TRANSITION_SEC

    def transition(i: int) -> float:  # the seconds that lead to keyframe i
        step = keyframes[i].get("override_transition_sec") if _flag(keyframes[i], "override_transition_enabled", f"keyframes[{i}]") else None
        return default if step is None else _number(step, f"keyframes[{i}].override_transition_sec")

    w2cs, times = [], []
    for i, kf in enumerate(keyframes):
        if kf.get("matrix") is None:
            raise Gen3cInputError(f"keyframes[{i}] needs 'matrix', 16 numbers (OpenGL camera-to-world, row-major)")
        w2cs.append(opengl_to_opencv(_pose(kf["matrix"], f"keyframes[{i}].matrix")))
        if kf.get("time") is not None:
            times.append(_number(kf["time"], f"keyframes[{i}].time"))
        else:
            times.append(times[-1] + transition(i) if i > 0 else 0.0)
    holds = [i for i, kf in enumerate(keyframes) if _flag(kf, "gen3c_hold", f"keyframes[{i}]")]
    if holds:  # gen3c's own spline holds its end poses: the keyframes it wrote for nerfstudio's go
        if any(0 < i < len(keyframes) - 1 for i in holds) or len(holds) == len(keyframes) or _flag(data, "is_cycle", ""):
            raise Gen3cInputError(
                f"keyframes[{holds[0]}].gen3c_hold marks a keyframe gen3c adds at an end of an open path, and this one is not: "
                "remove its 'gen3c_hold' to keep it as a keyframe"
            )
        w2cs = [w for i, w in enumerate(w2cs) if i not in holds]
        times = [t for i, t in enumerate(times) if i not in holds]
    if _flag(data, "is_cycle", ""):  # the loop closes on the first keyframe, after its own transition
        w2cs.append(w2cs[0])
        times.append(times[-1] + transition(0))
    extra = data.get("gen3c") if isinstance(data.get("gen3c"), dict) else None
    if extra is not None and "smoothness" in extra:
        smoothness = _number(extra["smoothness"], "gen3c smoothness")
    elif data.get("smoothness_value") is None:
        smoothness = DEFAULT_SMOOTHNESS
    elif extra is not None:  # written by gen3c before it recorded its own smoothness: the value is gen3c's
        smoothness = _number(data["smoothness_value"], "'smoothness_value'")
    else:
        tension = _number(data["smoothness_value"], "'smoothness_value' (nerfstudio's spline tension)")
        if not 0.0 <= tension <= 1.0:  # (NaN too) named as written, not as the smoothness 1 − tension
            raise Gen3cInputError(f"'smoothness_value' {tension:g} is nerfstudio's spline tension, between 0 (smooth) and 1 (tense): fix it")
        smoothness = 1.0 - tension
    fps = camera_dict_fps(data, name) or 24.0
    return KeyframePath(torch.stack(w2cs), torch.tensor(times, dtype=torch.float64), smoothness, len(path), fps)


def _check_cameras(cameras: object) -> None:
    if not isinstance(cameras, Cameras):
        raise Gen3cInputError(f"cameras is {describe_value(cameras)}: pass gen3c.cameras.Cameras(w2c, K, height, width)")


def cameras_to_dict(cameras: Cameras, fps: float = 24.0) -> dict:
    """The gen3c cameras JSON object for ``cameras``."""
    _check_cameras(cameras)
    fps = check_fps(fps)
    return {
        "format": FORMAT_NAME,
        "version": 1,
        "convention": "opencv",
        "note": "OpenCV camera (x right, y down, z forward); w2c maps world to camera; K in pixels of width x height",
        "width": cameras.width,
        "height": cameras.height,
        "fps": fps,
        "frames": [
            {"w2c": cameras.w2c[i].double().tolist(), "K": cameras.K[i].double().tolist()} for i in range(len(cameras))
        ],
    }


def save_cameras(path: str | os.PathLike, cameras: Cameras, fps: float = 24.0) -> None:
    """Write ``cameras`` as a gen3c cameras JSON file (atomically); ``path`` must end in .json
    (nothing is written otherwise), a leading ``~`` in it is the home folder."""
    target = writer_path(path, "save_cameras path", "the camera file", ".json", "save_cameras writes a gen3c cameras JSON")
    write_text_atomic(target, json.dumps(cameras_to_dict(cameras, fps), indent=1))


def cameras_to_nerfstudio_path(cameras: Cameras, fps: float = 24.0, keyframes: KeyframePath | None = None) -> dict:
    """A nerfstudio ``camera_path.json`` object (OpenGL c2w, vertical fov) for ``cameras``.

    ``seconds`` is ``len(cameras) / fps``: ns-render plays the ``camera_path`` entries at
    entries / seconds fps (its ``render.py``), so it renders these frames at ``fps``.

    With ``keyframes`` (the path ``cameras`` were sampled from: ``keyframes.cameras(K, H, W)``
    at ``fps = keyframes.fps``) the file keeps them as nerfstudio's viewer does — ``matrix``,
    ``fov``, ``aspect``, the transition that leads to each keyframe, the spline tension
    ``smoothness_value`` = 1 − smoothness — plus each keyframe's exact ``time`` and
    ``"gen3c": {"smoothness": s}``, which gen3c reads back (:func:`read_keyframe_path`;
    ``--camera_file`` replays the keyframes). Hold keyframes at 0 s and n / fps make nerfstudio's
    viewer, after "Load Path" at the same fps, render the same n frames at the same times
    (:func:`_nerfstudio_keyframes`).
    """
    _check_cameras(cameras)
    fps = check_fps(fps)
    if keyframes is not None:
        _check_sampled_from(keyframes, cameras, fps)
    c2w_gl = opencv_to_opengl(cameras.w2c.double())
    path = []
    for i in range(len(cameras)):
        fy = float(cameras.K[i, 1, 1])
        path.append(
            {
                "camera_to_world": c2w_gl[i].reshape(-1).tolist(),
                "fov": fov_from_focal(fy, cameras.height),
                "aspect": cameras.width / cameras.height,
                "K": cameras.K[i].double().tolist(),  # exact (nerfstudio ignores it): see the module's docstring
            }
        )
    data = {
        "camera_type": "perspective",
        "render_height": cameras.height,
        "render_width": cameras.width,
        "fps": fps,
        "seconds": len(cameras) / fps,
        "smoothness_value": 0.0,
        "is_cycle": False,
        "keyframes": [],
        "camera_path": path,
    }
    if keyframes is not None:
        fov, aspect = fov_from_focal(float(cameras.K[0, 1, 1]), cameras.height), cameras.width / cameras.height
        times = keyframes.times.tolist()
        matrices = opencv_to_opengl(keyframes.w2c).reshape(-1, 16).tolist()
        data["keyframes"] = _nerfstudio_keyframes(matrices, times, fov, aspect, len(cameras), fps)
        span = times[-1] - times[0]
        data["default_transition_sec"] = span / (len(times) - 1) if span > 0 else NERFSTUDIO_DEFAULT_TRANSITION_SEC
        data["smoothness_value"] = 1.0 - keyframes.smoothness
        data["gen3c"] = {"smoothness": keyframes.smoothness}
    return data


def _nerfstudio_keyframes(matrices: list[list[float]], times: list[float], fov: float, aspect: float, num_frames: int, fps: float) -> list[dict]:
    """gen3c's keyframes (OpenGL ``matrix`` and time each) as nerfstudio's viewer times them, with
    the hold keyframes that make it render gen3c's frames.

    After "Load Path" the viewer puts the first keyframe at 0 s and each next one its transition
    later; it renders int(fps × duration) frames, frame i at i / fps, where the duration is the
    sum of the transitions, so the last keyframe is never a frame (``render_panel.py``,
    ``compute_duration`` and the render button). gen3c's n frames are at i / fps too, but its
    path holds its first pose before the first keyframe and its last pose after the last one: a
    keyframe repeating the first pose at 0 s (when the first is later) and one repeating the last
    at n / fps (when the last is earlier) make nerfstudio's duration n / fps and its keyframe times
    gen3c's. They are marked ``"gen3c_hold": true``: gen3c's spline already holds there, so
    :func:`read_keyframe_path` drops them again. Keyframes before 0 s or after n / fps have no
    such fix (nerfstudio plays from the first keyframe to the last).
    """
    end = num_frames / fps
    tolerance = 1e-9 * max(end, 1.0)  # keyframe times computed as k · duration / (K − 1) are a rounding error off
    entries = [(m, t, False) for m, t in zip(matrices, times, strict=True)]
    if times[0] > tolerance:
        entries.insert(0, (matrices[0], 0.0, True))
    if times[-1] < end - tolerance:
        entries.append((matrices[-1], end, True))
    steps = [None] + [t - entries[k - 1][1] for k, (_, t, _) in enumerate(entries) if k > 0]

    def duration() -> float:  # as the viewer adds the transitions up: in order, from 0
        total = 0.0
        for step in steps[1:]:
            total += step
        return total

    if len(entries) > 1 and abs(duration() - end) <= tolerance:
        # It truncates fps × duration: a sum a rounding error short of n / fps would lose the last frame.
        steps[-1] += end - duration()
        while int(fps * duration()) < num_frames:
            steps[-1] += math.ulp(duration())
    keyframes = []
    for k, ((matrix, t, hold), step) in enumerate(zip(entries, steps, strict=True)):
        kf = {"matrix": matrix, "fov": fov, "aspect": aspect, "override_transition_enabled": k > 0, "override_transition_sec": step, "time": t}
        keyframes.append({**kf, "gen3c_hold": True} if hold else kf)
    return keyframes


def _check_sampled_from(keyframes: KeyframePath, cameras: Cameras, fps: float) -> None:
    """A file whose ``camera_path`` is not its keyframes' would be refused when read back."""
    if not isinstance(keyframes, KeyframePath):
        raise Gen3cInputError(f"keyframes is {describe_value(keyframes)}: pass a gen3c.trajectories.KeyframePath or None")
    if (keyframes.num_frames, keyframes.fps) != (len(cameras), fps):
        raise Gen3cInputError(
            f"the keyframes are sampled at {keyframes.num_frames} frames at {keyframes.fps:g} fps, the cameras are {len(cameras)} "
            f"at {fps:g} fps: pass the cameras the keyframes give (keyframes.cameras(K, H, W)) and fps=keyframes.fps"
        )
    departure = _departure(keyframes.cameras(cameras.K, cameras.height, cameras.width), cameras)
    if departure is not None:
        raise Gen3cInputError(f"the cameras do not follow the keyframes ({departure}): pass the cameras the keyframes give, keyframes.cameras(K, H, W)")


def save_nerfstudio_path(path: str | os.PathLike, cameras: Cameras, fps: float = 24.0, keyframes: KeyframePath | None = None) -> None:
    """Write ``cameras`` (and the ``keyframes`` they were sampled from) as a nerfstudio
    ``camera_path.json`` (:func:`cameras_to_nerfstudio_path`), atomically; ``path`` must end in
    .json (nothing is written otherwise), a leading ``~`` in it is the home folder."""
    target = writer_path(path, "save_nerfstudio_path path", "the camera path", ".json", "save_nerfstudio_path writes a nerfstudio camera_path JSON")
    write_text_atomic(target, json.dumps(cameras_to_nerfstudio_path(cameras, fps, keyframes), indent=1))


def check_camera_count(count: int, num_frames: int, name: str = "camera file", other_file: bool = True) -> None:
    """Refuse a camera file of ``count`` cameras for a run of ``num_frames`` frames (one camera a
    frame). ``other_file``: offer a file of ``num_frames`` cameras too (not where the generator
    cannot make that many frames)."""
    if count != num_frames:
        also = f" or a file with {num_frames} cameras" if other_file else ""
        raise Gen3cInputError(f"{name} has {count} cameras but {num_frames} frames were asked for: pass --num_video_frames {count}{also}")


def fit_cameras(
    cameras: Cameras,
    num_frames: int,
    height: int,
    width: int,
    name: str = "camera file",
    fit: Callable[[torch.Tensor, tuple[int, int], tuple[int, int]], torch.Tensor] = resize_crop_intrinsics,
) -> Cameras:
    """Bring file cameras to the run: the file must have ``num_frames`` cameras; intrinsics of
    another image size are brought to ``height`` × ``width`` by ``fit(K, file_size, working_size)``,
    which must be how the run's input frames reached the working size (the default,
    resize to cover + centre crop, is ``--resize_mode crop``'s; a plain resize when the aspect
    ratio matches), so that a camera file at the input's own size describes the input's cameras."""
    _check_cameras(cameras)  # (None was "object of type 'NoneType' has no len()")
    if not is_whole_number(num_frames) or num_frames < 1:  # ('3' was "has 3 cameras but 3 frames were asked for")
        raise Gen3cInputError(f"fit_cameras num_frames {shown_value(num_frames)} must be a whole number of frames ≥ 1")
    check_camera_count(len(cameras), num_frames, name)
    if (cameras.height, cameras.width) == (height, width):
        return cameras
    K = fit(cameras.K, (cameras.height, cameras.width), (height, width))
    cx, cy = K[:, 0, 2], K[:, 1, 2]
    outside = (cx < 0) | (cx > width) | (cy < 0) | (cy > height)
    if bool(outside.any()):  # (was Cameras' "Cameras.K (frame 0) … put the principal point outside", naming no file)
        i = int(outside.nonzero()[0, 0])
        portrait, working_portrait = cameras.height > cameras.width, height > width
        swapped = f" (a {'portrait' if portrait else 'landscape'} size for a {'portrait' if working_portrait else 'landscape'} input: swapped?)" if portrait != working_portrait else ""
        raise Gen3cInputError(
            f"{name}: camera {i}'s principal point ({float(cameras.K[i, 0, 2]):g}, {float(cameras.K[i, 1, 2]):g}) in its {cameras.width}×{cameras.height} "
            f"(W×H) image lands at ({float(cx[i]):.4g}, {float(cy[i]):.4g}), outside the working {width}×{height} image, once brought to it as "
            f"the input's frames are (resized and centre-cropped): the file's image size looks wrong{swapped}; give the width and height of the "
            "image its intrinsics are in pixels of"
        )
    return Cameras(cameras.w2c, K, height, width)
