"""What a file holds, told from its first bytes: so a file renamed to the wrong suffix (a PNG
saved as ``depth.npz``) gets an error that says what it is, not what a parser made of it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from gen3c.errors import Gen3cInputError
from gen3c.io.text import decode_head

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # an archive with members; an empty one
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXR_MAGIC = b"v/1\x01"
PICKLE_MAGIC = b"\x80"  # a pickle's PROTO opcode (torch.save's legacy format)

_SIGNATURES = (
    (NPY_MAGIC, "a NumPy .npy array"),
    (ZIP_MAGICS[0], "a zip archive"),
    (ZIP_MAGICS[1], "an empty zip archive"),
    (PNG_MAGIC, "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (EXR_MAGIC, "an OpenEXR image"),
    (b"%PDF", "a PDF document"),
    (PICKLE_MAGIC, "a Python pickle"),
)

#: ISO-media brands of still images: HEIF (iPhone photos, ``.heic``) and AVIF.
_STILL_BRANDS = {
    **dict.fromkeys((b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"miaf"), "a HEIC/HEIF image"),
    **dict.fromkeys((b"avif", b"avis"), "an AVIF image"),
}
#: Major brands of any HEIF-family image (MIAF's), whatever its codec: the compatible brands name it
#: (libheif and others write AVIF files as ``mif1`` with ``avif`` among them).
_GENERIC_BRANDS = (b"mif1", b"msf1", b"miaf")


def is_sample(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a GEN3C sample (:mod:`gen3c.io.gen3c_sample`), not an image: a
    directory (an image input cannot be one) or a ``.pt`` file."""
    from gen3c.io.paths import is_dir, is_file

    return is_dir(path) or (Path(path).suffix.lower() == ".pt" and is_file(path))


def loads_json(text: str | bytes, name: str, kind: str, fix: str, **kwargs: Any) -> Any:
    """``json.loads(text, **kwargs)``, where a JSON nested thousands deep ("[[[[…": json's decoder
    recurses once per level, and raises RecursionError) is a one-line error: "``name`` nests its
    JSON lists or objects thousands deep, as no ``kind`` does: ``fix``". Other errors (not JSON)
    are the caller's to word."""
    try:
        return json.loads(text, **kwargs)
    except RecursionError:
        raise Gen3cInputError(f"{name} nests its JSON lists or objects thousands deep, as no {kind} does: {fix}") from None


def python_scalar(value: Any) -> Any:
    """numpy's number or bool ``value`` as Python's (``np.float32(0.5)`` → 0.5, ``np.bool_(True)``
    → True); anything else as it is (a complex or a date of numpy's included)."""
    import numpy as np

    if isinstance(value, np.generic) and isinstance(plain := value.item(), (int, float, bool)):
        return plain
    return value


def json_default(value: Any) -> Any:
    """``json.dumps``' ``default=`` for gen3c's records: numpy's numbers and bools as JSON's numbers
    and booleans (a setting of ``np.float32(0.5)`` from Python is ``0.5``, not the text ``"0.5"``),
    a 0-d array (``np.array(0.5)``, what numpy's reductions of arrays often give) as its one number,
    an array or tensor of more dimensions as nested lists (its text was numpy's or torch's print,
    cut with "..." beyond 1000 numbers), anything else JSON has no type for as its text (a path, a dtype)."""
    import numpy as np

    torch = sys.modules.get("torch")  # (a tensor can only come from a process that imported torch)
    if torch is not None and isinstance(value, torch.Tensor) and not value.is_meta:
        return value.tolist()  # (a 0-d tensor gives its Python number)
    if isinstance(value, np.ndarray):
        return value.tolist()  # (Python's numbers, what JSON has no type for passed back here; a 0-d array its one number)
    plain = python_scalar(value)
    return plain if isinstance(plain, (int, float, bool)) else str(value)


#: JSON's own names of what ``json.loads`` returns, by the Python type it returns.
_JSON_KINDS = {"dict": "object", "list": "list", "str": "string", "bool": "boolean", "int": "number", "float": "number", "NoneType": "null"}


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words after "a JSON": "a JSON list", "a JSON string",
    "a JSON null" (not Python's "a JSON str", "a JSON NoneType")."""
    return f"a JSON {_JSON_KINDS.get(type(value).__name__, type(value).__name__)}"


def file_head(path: str | os.PathLike) -> bytes:
    """The first bytes of the file at ``path``, enough for :func:`describe_head`."""
    with open(path, "rb") as fh:
        return fh.read(64)  # (an ISO-media file's ftyp box with its compatible brands)


def describe_head(head: bytes) -> str:
    """What a file starting with ``head`` (its first bytes) is, in words: "a PNG image", …"""
    for magic, what in _SIGNATURES:
        if head.startswith(magic):
            return what
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[4:8] == b"ftyp":  # ISO media: its brands tell a still image (HEIF, AVIF) from a video
        return _iso_media_kind(head)
    try:  # (a character cut at the head's end is no binary: the incremental decoder waits for its rest)
        text = decode_head(head)  # (UTF-8, or UTF-16 / UTF-32 after their byte order mark: gen3c.io.text)
    except UnicodeDecodeError:
        return "of an unknown binary format"
    return "JSON text" if text.lstrip()[:1] in ("{", "[") else "text"


def _iso_media_kind(head: bytes) -> str:
    """What an ISO-media file (``head``: its first bytes, starting with its ``ftyp`` box) is: its
    major brand's kind, except a generic HEIF brand (:data:`_GENERIC_BRANDS`), which the first
    AVIF or HEIC among the box's compatible brands makes that (else "a HEIC/HEIF image")."""
    major = head[8:12]
    if major not in _GENERIC_BRANDS:
        return _STILL_BRANDS.get(major, "an MP4/MOV video")
    size = int.from_bytes(head[:4], "big")  # the box's length (0 or 1, which no ftyp box has: the bytes read)
    end = len(head) if size < 16 else min(size, len(head))
    compatible = [head[i : i + 4] for i in range(16, end - 3, 4)]
    return next((_STILL_BRANDS[b] for b in compatible if b in _STILL_BRANDS and b not in _GENERIC_BRANDS), "a HEIC/HEIF image")


def require_numpy_file(path: str | os.PathLike, label: str, archive: bool | None = None) -> None:
    """Raise a one-line :class:`Gen3cInputError` unless ``path`` holds what ``numpy.load`` should
    read: an ``.npz`` archive when ``archive`` (None: when its suffix is ``.npz``), else a ``.npy``
    array.

    ``numpy.load`` takes any other file for a pickle and, with pickles refused, reports "pickled
    data" — misleading for a renamed image or a text file. ``label`` names the input ("depth file
    'd.npz'").
    """
    p = Path(path)
    try:
        head = file_head(p)
    except OSError as exc:  # the system's refusal (no permission, an I/O error): not the file's content
        raise Gen3cInputError(f"{label} cannot be read ({exc.strerror or exc}): check the path and the file's permissions") from None
    if not head:
        raise Gen3cInputError(f"{label} is empty: pass the file again (it may not have finished copying)")
    npz = p.suffix.lower() == ".npz" if archive is None else archive
    if head.startswith(ZIP_MAGICS if npz else NPY_MAGIC):
        return
    what = describe_head(head)
    kind, save = (".npz", "numpy.savez") if npz else (".npy", "numpy.save")
    raise Gen3cInputError(
        f"{label} is {what}, not a NumPy {kind} file: save the arrays with {save}, or give the file its real suffix"
    )
