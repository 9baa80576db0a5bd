"""The input image's camera as a user gives it: ``--intrinsics`` (numbers or a file) or ``--fov``.

:func:`parse_intrinsics` is the one reader of both, for the CLI (``gen3c generate``, ``gen3c
depth``), the GUI, batch manifests and the Python API (:func:`gen3c.depth.load_user_depth`,
exported as ``gen3c.depth.parse_intrinsics``). The conventions (pixels, pixel centres at integer
coordinates) are :mod:`gen3c.cameras`'.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gen3c.cameras import (
    SQUARE_PIXELS,
    centred_for_turned,
    check_intrinsics_fit,
    intrinsics_from_fov,
    make_intrinsics,
    note_scaled_intrinsics,
    resize_intrinsics,
    validate_intrinsics,
    whole_image_size,
)
from gen3c.errors import Gen3cInputError, describe_value, note, quoted_path
from gen3c.io.formats import describe_head, file_head, loads_json, require_numpy_file
from gen3c.io.npz import read_npy_header
from gen3c.io.paths import expand_home, is_dir, refuse_special_file
from gen3c.io.text import decode_head, user_text


def parse_intrinsics(
    spec: str | os.PathLike | None,
    image_size: tuple[int, int],
    *,
    fov: float | None = None,
    name: str = "--intrinsics",
) -> Tensor | None:
    """The camera of an ``image_size`` (H, W) image as (3, 3) intrinsics in pixels, from
    ``spec`` or ``fov``; None when neither is given.

    ``spec``: ``"fx,fy,cx,cy"`` (commas, semicolons or spaces) or a file: ``.json`` with ``fx, fy,
    cx, cy`` or a 3×3 ``K`` / ``intrinsics``; ``.txt`` with 4 or 9 numbers (apart by blanks,
    commas, semicolons or brackets, as numpy prints a matrix; ``#`` lines skipped); ``.npy`` with
    a (3, 3) or (4,) array (never unpickled). A 4×4 matrix whose last row and column are [0, 0, 0, 1], as
    ScanNet's ``intrinsic_color.txt`` is written, gives its top-left 3×3. A camera file's JSON
    (a nerfstudio ``transforms.json``, or its top-level camera alone; a gen3c cameras JSON; a
    nerfstudio ``camera_path.json``) gives its one camera, as ``--camera_file`` reads it
    (:func:`gen3c.io.camera_files.camera_file_intrinsics`); so does a COLMAP ``cameras.txt``
    (:func:`gen3c.io.camera_files.colmap_camera_intrinsics`), scaled from its WIDTH × HEIGHT as
    a JSON of its size is. A JSON that records the size it was
    made for (``height``, ``width``: ``gen3c depth --resolution`` writes one; a camera file's size:
    transforms.json's ``w``, ``h``) is scaled to ``image_size``, as a plain resize, with a note;
    one of square pixels made for ``image_size`` turned a quarter (a landscape calibration for a
    photo read upright) is refused with the upright camera to pass instead; one without its size
    whose principal point is the centre of the image turned a quarter is noted, with the same.

    ``fov``: the horizontal field of view in degrees instead (principal point at the centre).

    The result is checked against the image (:func:`gen3c.cameras.check_intrinsics_fit`):
    normalised intrinsics, or pixels of another image size, are refused; a principal point at
    the centre of another size (the photo resized, its camera kept) is noted
    (:func:`gen3c.cameras.note_scaled_intrinsics`).

    Raises:
        Gen3cInputError: both ``spec`` and ``fov``, an unreadable spec or file, a camera that
            does not fit the image — one line naming ``name``.
    """
    if spec is not None and fov is not None:
        raise Gen3cInputError(f"pass either {name} or --fov, not both")
    if spec is not None and not isinstance(spec, (str, os.PathLike)):  # (a K tensor's repr was taken for a file name)
        raise Gen3cInputError(
            f"{name} is {describe_value(spec)}: pass 'fx,fy,cx,cy' or a camera file's path (a (3, 3) K tensor goes to load_user_depth(intrinsics=K) as it is)"
        )
    height, width = whole_image_size(image_size, "parse_intrinsics image_size")
    if fov is not None:
        return intrinsics_from_fov(fov, height, width)
    if spec is None:
        return None
    K, made_for, what = _read_spec(spec, name)
    if made_for is not None and made_for != (height, width):
        (h0, w0), (h1, w1) = made_for, (height, width)
        _refuse_turned_camera(K, made_for, (height, width), what)
        note(f"{what} was made for a {w0}×{h0} image: scaled to the {w1}×{h1} input (fx, cx × {w1 / w0:.4g}; fy, cy × {h1 / h0:.4g})", stacklevel=2)
        K = resize_intrinsics(K, made_for, (height, width))
        return check_intrinsics_fit(K, height, width, what)
    K = check_intrinsics_fit(K, height, width, what)
    note_scaled_intrinsics(K, height, width, what, resized="the image before it was resized")
    _note_turned_camera(K, height, width, what)
    return K


def _refuse_turned_camera(K: Tensor, made_for: tuple[int, int], size: tuple[int, int], what: str) -> None:
    """Refuse a camera of square pixels made for ``size`` turned a quarter (a landscape calibration
    for a phone photo read upright by its EXIF orientation): scaled per axis to it, as a resize, its
    pixels would be non-square, a wrong camera. A camera recorded non-square for a turned shape
    (``gen3c depth --resolution 60,80`` of an 80×60 photo) is a stretch, scaled back as one."""
    (h0, w0), (h1, w1) = made_for, size
    fx, fy = float(K[0, 0]), float(K[1, 1])
    if (h0, w0) != (w1, h1) or abs(fx / fy - 1) > SQUARE_PIXELS:
        return
    raise Gen3cInputError(
        f"{what} was made for a {w0}×{h0} image, the {w1}×{h1} input turned a quarter (a photo read upright by its EXIF orientation?): "
        f"scaled to it, its square pixels (fx={fx:g}, fy={fy:g}) would be stretched; {_upright_camera(K, made_for)}"
    )


def _note_turned_camera(K: Tensor, height: int, width: int, what: str) -> None:
    """Note a camera of square pixels, given without its size, whose principal point is the centre
    of the image turned a quarter (a 4032×3024 calibration, cx, cy = 2016, 1512, for the photo read
    upright, 3024×4032): inside the image, it passes :func:`gen3c.cameras.check_intrinsics_fit`.
    A note, not a refusal: a crop of a larger image can put a camera's centre there."""
    if centred_for_turned(K, height, width):
        cx, cy = float(K[0, 2]), float(K[1, 2])
        note(
            f"{what} (cx={cx:g}, cy={cy:g}) put the principal point at the centre of a {height}×{width} image, not of this {width}×{height} "
            f"one: made for the photo turned a quarter (as stored, read upright by its EXIF orientation)? then {_upright_camera(K, (width, height))}",
            stacklevel=3,
        )


def _upright_camera(K: Tensor, made_for: tuple[int, int]) -> str:
    """What to pass instead of ``K``, the camera of a ``made_for`` (H, W) image that the input is
    turned a quarter from: its intrinsics turned clockwise and anticlockwise."""
    (h0, w0), (fx, fy, cx, cy) = made_for, (float(K[i, j]) for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
    # Pixel centres at integer coordinates: turning a W0×H0 image clockwise takes (x, y) to
    # (H0 − 1 − y, x), anticlockwise to (y, W0 − 1 − x).
    clockwise = ",".join(f"{v:g}" for v in (fy, fx, h0 - 1 - cy, cx))
    anticlockwise = ",".join(f"{v:g}" for v in (fy, fx, cy, w0 - 1 - cx))
    turned = (
        f"'{clockwise}' (turned either way)"
        if clockwise == anticlockwise  # a centred principal point
        else f"'{clockwise}' if the photo was turned clockwise (EXIF orientation 6), '{anticlockwise}' if anticlockwise (8)"
    )
    return f"pass the upright image's camera, fx and fy swapped and the principal point turned with it: {turned}"


def check_intrinsics_spec(spec: str | os.PathLike, name: str = "--intrinsics") -> None:
    """Refuse a ``spec`` no image can use — neither 'fx,fy,cx,cy' nor a readable camera file — before
    any image is read (a batch checks every row up front); :func:`parse_intrinsics` checks the rest."""
    _read_spec(spec, name)


def recorded_size(data: Any) -> tuple[int, int] | None:
    """The (H, W) a JSON camera says it was made for (``height``, ``width``; 1920.0 is 1920),
    None when it says nothing of its size.

    Raises:
        ValueError: one of the two without the other, or a value that is no whole number of
            pixels > 0 (the intrinsics would be taken as pixels of the wrong image).
    """
    if not isinstance(data, dict) or ("height" not in data and "width" not in data):
        return None
    given = {key: data.get(key) for key in ("height", "width")}
    missing = [key for key in given if key not in data]
    if missing:
        raise ValueError(f"records its {'height' if missing == ['width'] else 'width'} but not its {missing[0]}: write both or neither")
    size = []
    for key, value in given.items():
        whole = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value == int(value)
        if not whole or value <= 0:
            raise ValueError(f"records {key} {value!r}: write the size the intrinsics were made for as whole pixels > 0")
        size.append(int(value))
    return size[0], size[1]


def spec_numbers(spec: str) -> list[float] | None:
    """The numbers of an intrinsics ``spec`` written as numbers ("fx,fy,cx,cy": commas, semicolons
    or spaces), however many; None when it is not numbers (then it names a file)."""
    try:
        return [float(v) for v in spec.strip().replace(";", ",").replace(" ", ",").split(",") if v]
    except ValueError:
        return None


def _read_spec(spec: str | os.PathLike, name: str) -> tuple[Tensor, tuple[int, int] | None, str]:
    """(K as written, the (H, W) a JSON records or None, how messages name it)."""
    text = str(spec).strip()
    try:
        p = Path(text).expanduser()
        is_file = p.is_file()
    except (OSError, ValueError, RuntimeError):  # unknown ~user, NUL bytes, over-long names
        is_file = False
    if not is_file:
        values = spec_numbers(text)
        if values is None:
            refuse_special_file(text, f"{name} file")
            # (~user of no user: said so; a folder: "nor an existing file" sent the user looking for a typo)
            if is_dir(expand_home(text, name)):
                raise Gen3cInputError(
                    f"{name} {quoted_path(text)} is a folder: pass a file in it (JSON fx/fy/cx/cy or K, txt, npy, a camera file, "
                    "COLMAP's cameras.txt), or 'fx,fy,cx,cy'"
                )
            raise Gen3cInputError(f"{name} {quoted_path(text)} is neither 'fx,fy,cx,cy' nor an existing file: check it")
        return _from_values(values, name, text), None, f"{name} {quoted_path(text)}"
    made_for, colmap = None, False
    where = f"{name} file {quoted_path(p)}"  # (the file, in its refusals)
    suffix = p.suffix.lower()
    try:
        if suffix != ".npy":
            # A video, image or array given here by mistake is named from its first bytes, not
            # read whole as text (gigabytes, for a video) to fail at its first non-UTF-8 byte.
            head = file_head(p)
            what = describe_head(head)
            if what == "a NumPy .npy array":  # np.save's output renamed: a camera, read by its suffix
                raise Gen3cInputError(f"{where} is a NumPy .npy array under another suffix: rename it to end in .npy")
            if suffix == ".bin" and (what == "of an unknown binary format" or b"\x00" in head):  # (NULs decode as UTF-8)
                raise Gen3cInputError(
                    f"{where} is binary, not text (COLMAP's cameras.bin?): convert it with "
                    "colmap model_converter --output_type TXT and pass the cameras.txt it writes"
                )
            if what not in ("text", "JSON text", "of an unknown binary format"):
                raise Gen3cInputError(
                    f"{where} is {what}, not a camera: {_PASS}"
                )
            # Read whole, every word a Python string: a COLMAP points3D.txt picked by mistake (72 MB
            # took 1.4 GB) is refused by its size. A camera file's JSON may hold thousands of frames.
            from gen3c.io.camera_files import (  # (it imports this module)
                MAX_CAMERA_FILE_BYTES,
                is_colmap_cameras,
            )

            # A COLMAP cameras.txt may hold a camera per image (thousands of lines), refused when they differ.
            colmap = suffix != ".json" and is_colmap_cameras(_text_head(p))
            other = None if colmap or suffix == ".json" else _colmap_other_file(p)
            if other is not None:
                raise Gen3cInputError(f"{where} is {other}, not a camera: pass the cameras.txt beside it")
            limit = MAX_CAMERA_FILE_BYTES if suffix == ".json" or colmap else MAX_INTRINSICS_TEXT_BYTES
            if p.stat().st_size > limit:
                most, kind = (f"{limit >> 20} MiB", "a camera file") if limit == MAX_CAMERA_FILE_BYTES else (f"{limit >> 10} KiB", "an intrinsics file")
                raise Gen3cInputError(
                    f"{where} is {p.stat().st_size / 1e6:.3g} MB, more than {kind} holds ({most} at most): "
                    "pass the camera's own file or 'fx,fy,cx,cy'"
                )
        if suffix == ".json":
            # Decoded and parsed as a camera file is (a byte order mark, an integer no float holds, a key given twice)
            from gen3c.io.camera_files import json_hooks

            text = user_text(p.read_bytes(), where, _PASS, "a camera")
            data = loads_json(text, where, "intrinsics file", "write 'fx fy cx cy' or a 3×3 matrix", **json_hooks(where))
            if _is_camera_file(data):  # a camera file's one camera, read by the camera files' reader
                from gen3c.io.camera_files import camera_file_intrinsics

                K, made_for = camera_file_intrinsics(data, where)
                return K, made_for, f"{name} {quoted_path(p)}"
            try:
                made_for = recorded_size(data)
            except ValueError as exc:
                raise Gen3cInputError(f"{where} {exc}") from None
            if isinstance(data, dict) and all(k in data for k in ("fx", "fy", "cx", "cy")):
                values = [data[k] for k in ("fx", "fy", "cx", "cy")]
            elif isinstance(data, dict) and ("K" in data or "intrinsics" in data):
                values = np.asarray(data.get("K", data.get("intrinsics")), dtype=np.float64).reshape(-1).tolist()
            elif isinstance(data, list):
                values = np.asarray(data, dtype=np.float64).reshape(-1).tolist()
            else:
                raise Gen3cInputError(f"{where} needs keys fx, fy, cx, cy or a 3×3 'K' (or nerfstudio's fl_x, fl_y, cx, cy, w, h)")
        elif suffix == ".npy":
            require_numpy_file(p, where)
            # Its size from its header first: a depth map or video given here by mistake would be
            # read whole and made a list of Python floats (~30 bytes each) only to be refused.
            with open(p, "rb") as fp:
                header = read_npy_header(fp)
            if header is not None and math.prod(header[0]) not in (4, 9, 16):
                raise Gen3cInputError(f"{where} holds a {tuple(header[0])} array: it must hold {_NUMBERS}")
            values = np.load(p, allow_pickle=False).astype(np.float64).reshape(-1).tolist()
        elif colmap:
            from gen3c.io.camera_files import colmap_camera_intrinsics

            K, made_for = colmap_camera_intrinsics(user_text(p.read_bytes(), where, "pass COLMAP's cameras.txt", "a camera"), where)
            return K.float(), made_for, f"{name} {quoted_path(p)}"
        else:
            # Numbers apart by blanks, commas or semicolons (as "fx,fy,cx,cy" is written), a matrix
            # in brackets as numpy prints it and Python writes a list, after "#" comment lines.
            text = user_text(p.read_bytes(), where, _PASS, "a camera")
            lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
            values = re.split(r"[\s,;\[\]]+", " ".join(lines))
    except Gen3cInputError:
        raise
    except (OSError, ValueError, TypeError, EOFError) as exc:  # EOFError: an empty .npy
        raise Gen3cInputError(f"{where} cannot be read ({exc}): write 'fx fy cx cy' or a 3×3 matrix") from None
    return _from_values(values, name, str(p)), made_for, f"{name} {quoted_path(p)}"


#: The first line COLMAP writes atop the files of its text model that hold no camera, and the
#: file's name: what a user may pick instead of cameras.txt, beside it.
_COLMAP_OTHER_FILES = {
    "# Image list with two lines of data per image": "images.txt",
    "# 3D point list with one line of data per point": "points3D.txt",
}
_COLMAP_OTHER_CONTENTS = {"images.txt": "each image's pose", "points3D.txt": "the scene's 3D points"}


def _colmap_other_file(p: Path) -> str | None:
    """"COLMAP's images.txt (each image's pose)" where ``p`` is a COLMAP text model's images.txt or
    points3D.txt (by its first line, else by its name where it holds no camera's count of numbers);
    None for any other file."""
    lines = _text_head(p).splitlines()
    kind = next((name for head, name in _COLMAP_OTHER_FILES.items() if lines and lines[0].strip().startswith(head)), None)
    if kind is None:
        named = {name.lower(): name for name in _COLMAP_OTHER_CONTENTS}.get(p.name.lower())
        words = sum(len(line.split()) for line in lines if not line.lstrip().startswith("#"))
        kind = named if words not in (4, 9, 16) else None  # (a camera's numbers under that name are read)
    return None if kind is None else f"COLMAP's {kind} ({_COLMAP_OTHER_CONTENTS[kind]})"


def _text_head(p: Path) -> str:
    """The first lines of a text file (its first 4 KiB: a COLMAP cameras.txt's comments and first
    camera), decoded as the whole file is (:func:`gen3c.io.text.decode_text`; a byte no text holds
    replaced)."""
    with open(p, "rb") as fh:
        return decode_head(fh.read(4096), errors="replace")


#: The largest intrinsics text file read (4 to 16 numbers, with comments, are far less); a JSON
#: may be a camera file, up to :data:`gen3c.io.camera_files.MAX_CAMERA_FILE_BYTES`.
MAX_INTRINSICS_TEXT_BYTES = 64 * 1024

#: Top-level keys that only a nerfstudio transforms.json's camera has (its ``cx``, ``cy``, ``w``,
#: ``h`` are also found beside an ``{"fx", "fy", "cx", "cy"}`` or ``{"K"}`` JSON, read as such).
_NERFSTUDIO_CAMERA_KEYS = ("fl_x", "fl_y", "camera_model", "camera_angle_x", "distortion_params")


def _is_camera_file(data: Any) -> bool:
    """Whether an intrinsics JSON is a camera file (:mod:`gen3c.io.camera_files`: a gen3c cameras
    JSON, a nerfstudio camera_path.json or transforms.json) rather than one camera's numbers."""
    if not isinstance(data, dict) or all(k in data for k in ("fx", "fy", "cx", "cy")):
        return False
    return "frames" in data or "camera_path" in data or any(key in data for key in _NERFSTUDIO_CAMERA_KEYS)


#: What an intrinsics spec or file must hold, for the refusals.
_NUMBERS = "4 numbers 'fx,fy,cx,cy', a 3×3 matrix or a 4×4 one padded with [0, 0, 0, 1] (ScanNet's), in pixels of the input image"
#: What to pass instead of a file that holds no camera.
_PASS = f"pass 'fx,fy,cx,cy' or a .txt, .json or .npy file of {_NUMBERS}"


def _from_values(values: list[Any], name: str, what: str) -> Tensor:
    try:
        numbers = [float(v) for v in values if str(v).strip() != ""]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) not in (4, 9, 16):
        raise Gen3cInputError(f"{name} {what!r} must hold {_NUMBERS}")
    if not all(map(math.isfinite, numbers)):  # (named here: make_intrinsics would name its own fx, not this input)
        raise Gen3cInputError(f"{name} {what!r} contain NaN or infinite values: pass finite fx, fy, cx, cy")
    if len(numbers) == 16:
        numbers = unpad_intrinsics(np.asarray(numbers).reshape(4, 4), f"{name} {what!r}").reshape(-1).tolist()
    K = make_intrinsics(*numbers) if len(numbers) == 4 else torch.tensor(numbers, dtype=torch.float32).reshape(3, 3)
    return validate_intrinsics(K, f"{name} {what!r}")


def unpad_intrinsics(M: np.ndarray, what: str) -> np.ndarray:
    """The 3×3 intrinsics of a 4×4 ``M`` padded with the identity's last row and column, as
    ScanNet writes its ``intrinsic_*.txt``; another 4×4 is refused in one line naming ``what``."""
    if M[3, :3].any() or M[:3, 3].any() or M[3, 3] != 1.0:
        raise Gen3cInputError(
            f"{what} is a 4×4 matrix whose last row {M[3].tolist()} and column {M[:, 3].tolist()} are not [0, 0, 0, 1]"
            " (not intrinsics padded to 4×4): write its 3×3 intrinsics"
        )
    return M[:3, :3]
