"""Image input: decoding with clear errors, and resizing to the working resolution."""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from gen3c.cameras import resize_crop_plan, whole_image_size
from gen3c.constants import RESIZE_MODES
from gen3c.errors import (
    Gen3cInputError,
    caught_warnings,
    complex_refusal,
    describe_value,
    first_line,
    meta_refusal,
    note,
    quoted_path,
)
from gen3c.io.paths import reader_path, refuse_special_file, writer_path

# Larger images are refused before decoding: a small file can claim gigapixels
# (a decompression bomb). A larger JPEG photo (a 200 MP phone's) is decoded reduced to at most
# this many pixels where it is read to be brought down (:func:`read_photo`).
MAX_IMAGE_PIXELS = 100_000_000
#: The reductions a JPEG's decoder makes as it decodes (its DCT scaling: 1/2, 1/4, 1/8 a side),
#: by which :func:`read_photo` reads a JPEG over :data:`MAX_IMAGE_PIXELS`.
JPEG_REDUCTIONS = (2, 4, 8)
#: A photo larger than this (a 48–200 MP phone photo) is brought down, aspect ratio kept, as it is
#: read for generation and ``gen3c depth`` (:func:`read_photo`): the depth estimators work at 2.4 MP
#: or less (MoGe: 720×1280) and generation at 704×1280, so more pixels only cost memory and time.
LARGE_IMAGE_PIXELS = 4_000_000
#: What :func:`gen3c.io.formats.describe_head` calls the formats PIL decodes.
DECODABLE_HEADS = ("a PNG image", "a JPEG image", "a GIF image", "a TIFF image", "a WebP image")


def load_image(path: str | os.PathLike, name: str = "input image", *, size_for: Any = None) -> Tensor:
    """Decode an image file to (3, H, W) float32 in [−1, 1] (RGB; alpha composited on white), as a
    PIL image in memory is read (:func:`image_to_uint8`): 16-bit grey (a PNG, a PGM, a signed
    TIFF without negative samples) scaled to 8 bits, a float TIFF (PIL mode ``F``) read as [0, 1],
    32-bit integers refused.

    The EXIF orientation is applied, as image viewers and OpenCV's ``imread`` do: a phone photo
    stored portrait with Orientation 6 comes out upright (landscape), the way its depth map and
    its viewer see it. An animated GIF or WebP, or a multi-page TIFF, is read as its first frame,
    with a :func:`~gen3c.errors.note` saying so.

    ``size_for`` (private to :func:`read_photo`): (H, W) upright → the (H', W') to bring the 8-bit
    pixels to (antialiased bilinear) before the float copy is made. With it, a JPEG over
    :data:`MAX_IMAGE_PIXELS` is decoded reduced (:func:`_draft_within_limit`), not refused.

    Raises:
        Gen3cInputError: missing, empty, corrupt, unsupported or absurdly large files; a HEIC/HEIF
            photo without pillow-heif (``pip install 'gen3c[heic]'``).
    """
    p = reader_path(path, name, "an image file")  # (~ expanded, as the command line does)
    try:
        missing, folder = not p.exists(), p.is_dir()
        empty = not missing and not folder and p.stat().st_size == 0
    except OSError as exc:  # the file system's refusal of the path itself (a name too long)
        raise Gen3cInputError(_unreadable(name, p, exc)) from None
    if missing:
        raise Gen3cInputError(f"{name} {quoted_path(p)} does not exist: check the path")
    if folder:
        raise Gen3cInputError(f"{name} {quoted_path(p)} is a folder: pass an image file (PNG, JPEG, WebP, …)")
    refuse_special_file(p, name)
    if empty:
        raise Gen3cInputError(f"{name} {quoted_path(p)} is empty (0 bytes): pass a valid image file")
    heif_opener = _heif_registered  # as PIL opens the file (another thread registering it meanwhile makes no photo "damaged")
    try:
        # Every warning of this read kept, to be said after it (below); PIL warns from 89 MP, below
        # our own limit, which the size check applies before decoding.
        with caught_warnings(Image.DecompressionBombWarning) as caught:
            with _opened(p) as im:
                target = None  # the size a JPEG decoded reduced is brought to
                if im.width * im.height > MAX_IMAGE_PIXELS and im.format in ("JPEG", "MPO"):
                    target = _draft_within_limit(im, size_for, f"{name} {quoted_path(p)}")
                check_image_size(*im.size, f"{name} {quoted_path(p)}")  # (a JPEG: as it will be decoded)
                im.load()
                # One reading for a file and a PIL image in memory: 16-bit grey scaled, float (mode F)
                # as [0, 1], 32-bit integers refused; PIL's own RGB conversion clips them.
                array = image_to_uint8(im, f"{name} {quoted_path(p)}")
                frames = _frame_count(im)
    except Gen3cInputError:
        raise
    except Image.DecompressionBombError as exc:  # over twice PIL's limit (179 MP), refused before its size is known
        raise bomb_refusal(f"{name} {quoted_path(p)}", exc) from None
    except UnidentifiedImageError:
        from gen3c.io.formats import describe_head, file_head

        what = describe_head(file_head(p))
        decodable = (what == "a HEIC/HEIF image" and heif_opener) or (what == "an AVIF image" and _pil_reads_avif())
        if what in DECODABLE_HEADS or decodable:  # cut short before its size: not another format
            raise Gen3cInputError(f"{name} {quoted_path(p)} is {what} that cannot be decoded (corrupt or truncated): re-export the image") from None
        known = "" if what.startswith("of an unknown") else f" ({what})"
        hint = ""
        if what == "a HEIC/HEIF image" and not heif_opener:  # PIL reads HEIF through pillow-heif's opener only
            _register_heif(f"reading {name} {quoted_path(p)}, a HEIC/HEIF photo (or convert it to JPEG)")
            return load_image(path, name, size_for=size_for)
        if "video" in what:
            hint = " (a video goes in as its GEN3C sample directory or with --vipe_path)"
        elif p.suffix.lower() == ".npz":
            hint = " (multi-view key frames go in with --multiview_npz, a depth map with --depth_path)"
        raise Gen3cInputError(f"{name} {quoted_path(p)} is not a readable image{known}: use PNG, JPEG, WebP, BMP or TIFF{hint}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:  # the system's (no permission, an I/O error), not PIL's
            raise Gen3cInputError(_unreadable(name, p, exc)) from None
        raise Gen3cInputError(f"{name} {quoted_path(p)} is corrupt or truncated ({first_line(exc)}): re-export the image") from None
    say_pillow_warnings(caught, f"{name} {quoted_path(p)}")
    if frames != 1:
        note(f"{name} {quoted_path(p)} holds {frames} frames (an animation or a multi-page file): gen3c uses the first, as a still image")
    if size_for is not None:
        array = _shrink_uint8(array, target or size_for(array.shape[:2]))
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def say_pillow_warnings(caught: list[warnings.WarningMessage], what: str) -> None:
    """The warnings of reading ``what`` (:func:`~gen3c.errors.caught_warnings`) said: Pillow's own
    (a TIFF's "Tag data larger than file", "Corrupt EXIF data"), which name no file or image, as
    one note that does; others as they came.

    Pillow's own are its UserWarnings raised in its code. A warning of another category raised
    there is not the image's damage: a ResourceWarning the collector raised while Pillow's code ran
    (an "unclosed file" another part of the program left), a DeprecationWarning."""
    damage = [w for w in caught if issubclass(w.category, UserWarning) and f"{os.sep}PIL{os.sep}" in w.filename]
    pillow = list(dict.fromkeys(first_line(w.message) for w in damage))
    if pillow:
        note(f"{what} may be damaged (Pillow, reading it: {'; '.join(pillow)[:200]}): re-export it if it looks wrong")
    for w in caught:
        if w not in damage:  # not Pillow's: as it came
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


@contextmanager
def _opened(p: Path) -> Iterator[Image.Image]:
    """``Image.open(p)``, but a JPEG over twice PIL's own pixel limit (179 MP; PIL refuses it as it
    opens it, before gen3c's limit is asked) opened by PIL's JPEG reader itself, so that gen3c's
    limit decides: refused, or decoded reduced (:func:`_draft_within_limit`). Nothing is decoded yet."""
    try:
        image = Image.open(p)
    except Image.DecompressionBombError:
        from gen3c.io.formats import describe_head, file_head

        if describe_head(file_head(p)) != "a JPEG image":
            raise
        image = None
    if image is not None:
        with image:
            yield image
        return
    from PIL import JpegImagePlugin

    with open(p, "rb") as fp, JpegImagePlugin.jpeg_factory(fp, os.fspath(p)) as image:
        yield image


def _draft_within_limit(im: Image.Image, size_for: Any, what: str) -> tuple[int, int]:
    """Have a JPEG over :data:`MAX_IMAGE_PIXELS` (still undecoded) decoded reduced by its DCT scaling
    (:data:`JPEG_REDUCTIONS`; PIL's ``draft``), by the least of them that brings it within the
    limit: the closest to a full decode brought down alike. Returns ``size_for`` of its upright
    size (the size the decoded pixels are to be brought to). ``size_for`` None
    (:func:`load_image`, which reads images at their full size): refused.

    Raises:
        Gen3cInputError: naming ``what``, its size and the fix, where it is not to be read reduced or
            even 1/8 of each side is over the limit.
    """
    width, height = im.size
    mp = f"{width}×{height} = {width * height / 1e6:.0f} MP"
    limit = MAX_IMAGE_PIXELS // 1_000_000
    if size_for is None:
        raise Gen3cInputError(
            f"{what} is {mp}, above the {limit} MP limit at full size: downscale it first, or read it reduced "
            "(gen3c.io.images.read_photo; `gen3c depth` without --full_size)"
        )
    # decoded as stored, then turned: upright, a photo stored turned by 90° has its width and height swapped
    sideways = _exif_orientation(im) in (5, 6, 7, 8)
    target = size_for((width, height) if sideways else (height, width))
    for scale in JPEG_REDUCTIONS:
        if -(-width // scale) * -(-height // scale) <= MAX_IMAGE_PIXELS:  # the decoder rounds a reduced side up
            # PIL picks the strongest reduction whose result is at least the size asked: floor(side / scale)
            # asks for exactly ``scale``. The mode is kept: a CMYK or grey JPEG is converted as any is.
            im.draft(None, (width // scale, height // scale))
            return target
    raise Gen3cInputError(f"{what} is {mp}, above the {limit} MP limit even decoded at 1/{JPEG_REDUCTIONS[-1]} of its size: downscale it first")


def _shrink_uint8(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 → ``size`` (H', W') by PIL's bilinear, which widens its support when
    shrinking (antialiased), on the 8-bit pixels."""
    if tuple(array.shape[:2]) == tuple(size):
        return array
    return np.array(Image.fromarray(array).resize((size[1], size[0]), Image.Resampling.BILINEAR))


def shrink_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    """(3, H, W) in [−1, 1] in memory → ``size``, as :func:`read_photo` brings the same pixels
    saved as a PNG down (8-bit pixels, as every uint8 / PIL image handed over is); other float
    pixels by :func:`resize_image`'s antialiased resize."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    array = to_uint8(image)
    eight_bit = torch.from_numpy(array).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
    if not torch.equal(eight_bit, image.detach().cpu().float()):
        return resize_image(image, size, "stretch")
    return torch.from_numpy(_shrink_uint8(array, size)).permute(2, 0, 1).float().div_(127.5).sub_(1.0).to(image.device)


def large_image_size(size: tuple[int, int], cover: tuple[int, int] | None = None, max_pixels: int | None = None) -> tuple[int, int]:
    """The (H, W) an image of ``size`` is brought down to: ``size`` itself up to ``max_pixels``,
    else the aspect ratio kept (each side rounded down) at ``max_pixels``, or more where that is
    needed to cover ``cover`` (H, W; the working resolution, reached by a resize that covers it).
    ``max_pixels`` defaults to :data:`LARGE_IMAGE_PIXELS`.

    >>> large_image_size((6000, 8000)), large_image_size((5999, 8000)), large_image_size((720, 1280))
    ((1731, 2308), (1731, 2309), (720, 1280))
    """
    h, w = size
    pixels = LARGE_IMAGE_PIXELS if max_pixels is None else max_pixels
    need = 0.0 if cover is None else max(cover[0] / h, cover[1] / w)  # the scale that covers it
    if h * w <= pixels or need >= 1:
        return (h, w)
    # The aspect ratio exactly where the sides have a small common ratio (4:3, 16:9, 3:2): then
    # fx = fy stays so through the later resize to the working size.
    g = math.gcd(h, w)
    uh, uw = h // g, w // g
    target = max(pixels, h * w * need * need)
    k = max(math.isqrt(int(target) // (uh * uw)), 0 if cover is None else max(-(-cover[0] // uh), -(-cover[1] // uw)))
    if 0.9 * target <= k * k * uh * uw <= 1.1 * target:
        return (k * uh, k * uw)
    scale = math.sqrt(pixels / (h * w))
    return (max(1, int(h * scale), math.ceil(h * need - 1e-6)), max(1, int(w * scale), math.ceil(w * need - 1e-6)))


def read_photo(path: str | os.PathLike, cover: tuple[int, int] | None = None, name: str = "input image") -> tuple[Tensor, tuple[int, int]]:
    """:func:`load_image`, a large photo brought down to :func:`large_image_size` (``cover``: the
    working resolution) from its 8-bit pixels, before its float copy is made: memory and time do
    not grow with the camera's megapixels beyond decoding the file. An image of at most
    :data:`LARGE_IMAGE_PIXELS` comes back as :func:`load_image` reads it, bit for bit.

    Returns:
        ``(image (3, H', W') in [−1, 1], (H, W))``: the image and its stored (upright) size, which
        ``--intrinsics`` are pixels of (scale them with :func:`gen3c.cameras.resize_intrinsics`).
    """
    stored: list[tuple[int, int]] = []

    def size_for(size: tuple[int, int]) -> tuple[int, int]:
        stored.append((int(size[0]), int(size[1])))
        return large_image_size(stored[-1], cover)

    image = load_image(path, name, size_for=size_for)
    return image, stored[-1]


def _pil_reads_avif() -> bool:
    """Whether this Pillow decodes AVIF itself (its own plugin, from Pillow 11.2 where built with libavif)."""
    from PIL import features

    return "avif" in features.modules and bool(features.check_module("avif"))


def _frame_count(im: Image.Image) -> int | str:
    """How many frames an opened image file holds (an animated GIF or WebP, a multi-page TIFF):
    1 for a still image and an MPO (its further pictures are a camera's extras: a stereo view, a
    preview), "several" where a later frame cannot be read (the first was)."""
    if not getattr(im, "is_animated", False) or im.format == "MPO":
        return 1
    try:
        return im.n_frames
    except Exception:  # a later frame PIL cannot parse raises what it may (TypeError "Missing dimensions" of a TIFF)
        return "several"


_heif_registered = False


def _register_heif(needed_for: str) -> None:
    """Let PIL open HEIC/HEIF files (pillow-heif's opener; the ``heic`` extra), once per process.
    pillow-heif turns the picture by its orientation as it decodes and sets the EXIF tag to 1, so
    an iPhone photo comes out upright once, not turned twice."""
    global _heif_registered
    from gen3c.dependencies import require

    require("pillow_heif", needed_for).register_heif_opener()
    _heif_registered = True


def bomb_refusal(what: str, exc: Exception) -> Gen3cInputError:
    """PIL's ``DecompressionBombError`` (a file claiming over twice PIL's limit, 179 MP, refused
    before gen3c's own size check can run) as gen3c's one line about ``what``."""
    claimed = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"claims {int(claimed[1]) / 1e6:.0f} MP" if claimed else "claims an absurd size"
    return Gen3cInputError(f"{what} {size}, above the {MAX_IMAGE_PIXELS // 1_000_000} MP limit (or a decompression bomb): downscale it first")


def _unreadable(name: str, p: Path, exc: OSError) -> str:
    return f"{name} {quoted_path(p)} cannot be read ({exc.strerror or exc}): check the path and the file's permissions"


def check_image_size(width: int, height: int, name: str) -> None:
    """The size limits of an input image, a file's (:func:`load_image`) or one in memory
    (:func:`gen3c.pipelines.camera_video.source_image`): at least 8×8, at most
    :data:`MAX_IMAGE_PIXELS`.

    Raises:
        Gen3cInputError: naming ``name``, its size and the fix.
    """
    check_pixel_limit(width, height, name)
    if width < 8 or height < 8:
        raise Gen3cInputError(f"{name} is only {width}×{height} pixels: pass an image of at least 8×8")


def check_pixel_limit(width: int, height: int, name: str) -> None:
    """At most :data:`MAX_IMAGE_PIXELS`: an input image's limit (:func:`check_image_size`), and a
    depth map's (:func:`gen3c.io.depth.depth_map`), checked before their values are converted.

    Raises:
        Gen3cInputError: naming ``name``, its size and the fix.
    """
    if width * height > MAX_IMAGE_PIXELS:
        raise Gen3cInputError(
            f"{name} is {width}×{height} = {width * height / 1e6:.0f} MP, above the {MAX_IMAGE_PIXELS // 1_000_000} MP limit: downscale it first"
        )


def plain_tensor(values: Tensor, name: str) -> Tensor:
    """``values`` detached, with its lazy negation or conjugation (``x.conj().imag``) applied, so
    numpy can take it; a sparse, quantized or meta tensor (no plain values to read) refused.

    Raises:
        Gen3cInputError: naming ``name``, what the tensor is and the fix.
    """
    if values.is_meta:
        raise Gen3cInputError(meta_refusal(name))
    if values.is_quantized or values.layout != torch.strided:
        kind, fix = ("quantized", "tensor.dequantize()") if values.is_quantized else (str(values.layout).removeprefix("torch."), "tensor.to_dense()")
        raise Gen3cInputError(f"{name} is a {kind} tensor: pass {fix}")
    return values.detach().resolve_conj().resolve_neg()


def stated_size(image: Any) -> tuple[int, int] | None:
    """``(width, height)`` of an image in memory, read from its ``size`` (PIL) or ``shape``
    without converting it: (3, H, W) for a tensor, (H, W) or (H, W, 3 | 4) for a numpy array, as
    :func:`as_image` takes them; None for anything else (:func:`as_image` names what is wrong).
    So :func:`check_image_size` refuses a gigapixel image before its ~12 bytes a pixel of float
    copy are allocated, as :func:`load_image` does from a file's header."""
    if isinstance(image, Image.Image):
        return image.size
    shape = getattr(image, "shape", None) if isinstance(image, (Tensor, np.ndarray)) else None
    if isinstance(image, Tensor) and len(shape) == 3 and shape[0] == 3:
        return int(shape[2]), int(shape[1])
    if isinstance(image, np.ndarray) and (len(shape) == 2 or (len(shape) == 3 and shape[2] in (3, 4))):
        return int(shape[1]), int(shape[0])
    return None


def check_not_empty(image: Any, name: str) -> None:
    """Refuse an image in memory of no pixels (:func:`stated_size` 0 wide or high), naming ``name``:
    an empty array came back from a conversion, or torch's error on its min(), or a reshape's."""
    size = stated_size(image)
    if size is not None and 0 in size:
        raise Gen3cInputError(f"{name} is empty ({size[0]}×{size[1]} pixels): pass an image with pixels")


#: PIL's transpose that undoes each EXIF orientation (2–8; 1 is upright), as ``ImageOps.exif_transpose`` does.
_UNDO_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def exif_upright(image: Image.Image) -> Image.Image:
    """``image`` turned by its EXIF orientation (``ImageOps.exif_transpose``). A damaged EXIF block
    that PIL reads but cannot write back into the turned image (a tag of the wrong type: a
    ``struct.error``) is no reason to refuse the photo: it is turned by its orientation tag alone."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # whatever PIL's EXIF writer raises; a pixel decoding error comes again just below
        method = _UNDO_ORIENTATION.get(_exif_orientation(image))
        return image.transpose(method) if method is not None else image


def _exif_orientation(image: Image.Image) -> int | None:
    """An image's EXIF orientation (1–8; its XMP ``tiff:Orientation`` where EXIF has none), as
    ``ImageOps.exif_transpose`` reads it, without decoding the pixels; None where there is none or
    its EXIF block cannot be read."""
    try:
        orientation = image.getexif().get(0x0112)
    except Exception:  # a damaged EXIF block: whatever PIL's parser raises
        return None
    return orientation if isinstance(orientation, int) else None


def upright_rgb(image: Image.Image) -> Image.Image:
    """A PIL image as it is seen, in RGB: turned by its EXIF orientation, as image viewers and
    OpenCV's ``imread`` do, with transparent pixels over white (premultiplied ``RGBa`` / ``La``
    too); 16-bit grey (``I;16``) scaled to 8 bits (÷ 257). How an image file is read
    (:func:`load_image`) and a PIL image or RGBA array in memory taken (:func:`image_to_uint8`)."""
    image = exif_upright(image)
    if image.mode.startswith("I;16"):  # 16-bit grey (a 16-bit PNG): PIL's own conversion clips at 255, a white image
        grey = (np.asarray(image, dtype=np.float32) / 257.0).round().astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode in ("RGBa", "La"):  # premultiplied alpha (PIL has no La → RGB): over white is colour + (255 − alpha)
        pixels = np.asarray(image, dtype=np.int32)
        over_white = np.clip(pixels[..., :-1] + 255 - pixels[..., -1:], 0, 255).astype(np.uint8)
        return Image.fromarray(np.repeat(over_white, 3, axis=-1) if image.mode == "La" else over_white)
    # "transparency": a palette's transparent entries, or a bilevel, grey or RGB PNG's one transparent colour (its tRNS chunk)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode in ("1", "P", "L", "RGB") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def outside_unit_range(values: Tensor, var: str) -> tuple[str, str] | None:
    """Where float colours leave [−1, 1] beyond float error (NaN counts): ``("[lo, hi]", hint)``,
    the hint naming the fix for 0–255 values (``var / 127.5 - 1``); None when they lie inside."""
    lo, hi = (float(v) for v in torch.aminmax(values.detach())) if values.numel() else (0.0, 0.0)
    if -1 - 1e-3 <= lo and hi <= 1 + 1e-3:  # also False for NaN
        return None
    return f"[{lo:.3g}, {hi:.3g}]", f" (0–255 values: pass {var} / 127.5 - 1)" if hi > 2 else ""


def note_unit_range(values: Tensor, name: str, var: str = "image", stacklevel: int = 1) -> None:
    """Note float colours (an image, renders) with no value below 0 as likely [0, 1] ones, which
    read as [−1, 1] come out washed out (black is mid-grey); a flat tensor says nothing. Only where
    the values came in from the user as floats: a bright photo read from a file is [−1, 1] for sure.
    ``stacklevel`` counts from the caller, as :func:`gen3c.errors.note` does."""
    lo, hi = (float(v) for v in torch.aminmax(values.detach())) if values.numel() else (0.0, 0.0)
    if lo >= 0 and hi > lo:
        # [0, 1] is what torchvision, kornia and the depth estimators take: the likelier reading
        # of an image whose darkest pixel would be mid-grey in [-1, 1].
        note(
            f"{name} has no value below 0, so its darkest pixel is mid-grey in [-1, 1]: if it holds [0, 1] colours "
            f"(torchvision's to_tensor, kornia, gen3c.depth.image_to_tensor), pass {var} * 2 - 1",
            stacklevel=stacklevel + 1,
        )


def as_image(image: Any, name: str = "image") -> Tensor:
    """An image handed over in Python → (3, H, W) float32 in [−1, 1], the library's convention.

    Takes a (3, H, W) float tensor in [−1, 1] (kept as it is, on its device), a (3, H, W) uint8
    tensor, a PIL image, or an (H, W, 3) numpy array (uint8, or float in [0, 1]) — the forms the
    depth estimators take (:func:`image_to_uint8`). A [0, 1] float tensor cannot be
    told from a bright [−1, 1] one and is taken as the latter (it comes out washed out).

    Raises:
        Gen3cInputError: a path, another shape, type or range, in one line saying what to pass.
    """
    if isinstance(image, (str, os.PathLike)):
        raise Gen3cInputError(f"{name} is a path ({str(image)[:60]!r}): read it first with gen3c.io.images.load_image(path)")
    if isinstance(image, Tensor):
        image = plain_tensor(image, name)
    check_not_empty(image, name)  # (a (3, 0, W) one came back, to fail in whatever took it: save_image's reshape)
    if isinstance(image, Tensor) and image.dtype.is_floating_point:
        if image.element_size() == 1:  # float8: no isfinite / aminmax of its own
            image = image.float()
        if image.ndim != 3 or image.shape[0] != 3:
            hwc = image.ndim == 3 and image.shape[-1] == 3
            hint = ": it looks like (H, W, 3), pass image.permute(2, 0, 1)" if hwc else ""
            raise Gen3cInputError(f"{name} has shape {tuple(image.shape)}: pass one (3, H, W) RGB image{hint}")
        if not torch.isfinite(image).all():
            raise Gen3cInputError(f"{name} holds NaN or infinite values: pass colours in [-1, 1]")
        outside = outside_unit_range(image, "image")
        if outside is not None:
            span, hint = outside
            raise Gen3cInputError(f"{name} values span {span}, expected [-1, 1]{hint}")
        return image.detach().float()
    if not isinstance(image, (Tensor, np.ndarray, Image.Image)):
        raise Gen3cInputError(
            f"{name} is {describe_value(image)}: pass a (3, H, W) tensor in [-1, 1], a PIL image or an (H, W, 3) uint8 array"
        )
    return torch.from_numpy(image_to_uint8(image, name)).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def image_to_uint8(image: Any, name: str = "image") -> np.ndarray:
    """Any accepted image form → (H, W, 3) uint8 RGB array (a copy).

    Accepts a (3, H, W) float tensor in [0, 1] (or a uint8 tensor), a PIL image, or an
    (H, W, 3) / (H, W, 4) / (H, W) numpy array (uint8, or float in [0, 1]). A PIL image and an
    RGBA array are taken as their file is read (:func:`upright_rgb`): turned by
    the EXIF orientation, transparent pixels over white; a 16-bit one (mode ``I;16``, and the mode
    ``I`` of a 16-bit PGM or a signed 16-bit TIFF, whose negative samples are refused) scaled to 8 bits, a float one (mode ``F``) read as [0, 1] as a float array is. A bool tensor or array is
    a black-and-white image (False 0, True 255), as PIL's mode ``1`` and ``Image.fromarray`` of
    it are. Refused in one line: complex values, integers other than uint8 (and bool; their
    range is unknown: a 16-bit image is ``array / 65535``), PIL's 32-bit integer mode ``I`` (of no
    16-bit file), and
    a numpy masked array with masked pixels (colour has no "missing" value: fill it, or pass an
    RGBA array whose alpha is 0 there).
    """
    check_not_empty(image, name)
    if isinstance(image, Tensor):
        x = plain_tensor(image, name).cpu()  # (a meta tensor was "Cannot copy out of meta tensor; no data!")
        if x.is_complex():
            raise Gen3cInputError(complex_refusal(name, x.dtype))
        if x.ndim != 3 or x.shape[0] != 3:
            hint = " (it looks like (H, W, 3): pass tensor.permute(2, 0, 1))" if x.ndim == 3 and x.shape[-1] == 3 else ""
            raise Gen3cInputError(f"{name} tensor has shape {tuple(x.shape)}: pass (3, H, W) RGB{hint}")
        if x.dtype == torch.uint8:
            return x.permute(1, 2, 0).numpy().copy()
        if x.dtype == torch.bool:
            return (x.permute(1, 2, 0).numpy() * np.uint8(255)).astype(np.uint8)
        if not x.is_floating_point():
            raise Gen3cInputError(f"{name} tensor is {str(x.dtype).removeprefix('torch.')}{_integer_hint(x.numpy(), 'tensor')}")
        x = x.float()
        _check_unit_range(x, name)
        return (x.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    if isinstance(image, Image.Image):
        rgb = None
        with caught_warnings() as caught:  # Pillow's (a damaged EXIF block's "Corrupt EXIF data"): said below, naming the image
            try:
                if image.mode == "I":  # PIL's 8-bit conversion clips
                    sixteen = _sixteen_bit(image, name)
                    if sixteen is None:  # 32-bit integers (a 32-bit TIFF, a PIL image of an int32 array)
                        raise Gen3cInputError(
                            f"{name} holds integer colours of unknown range (PIL mode I, 32-bit): save it as an 8- or 16-bit PNG, "
                            f"or pass np.asarray(image) as uint8 or float in [0, 1]{_integer_range_hint(np.asarray(image), 'array')}"
                        )
                    image = sixteen
                if image.mode == "F":  # floats (a float TIFF): read as a float array is, [0, 1]; PIL's conversion clips
                    image, name = np.asarray(exif_upright(image)), f"{name} (PIL mode F)"
                else:
                    rgb = np.asarray(upright_rgb(image), dtype=np.uint8).copy()
            except Gen3cInputError:
                raise
            except (OSError, ValueError) as exc:  # a lazily opened file that turns out truncated or corrupt
                raise Gen3cInputError(f"{name} PIL image could not be decoded ({first_line(exc)}): pass a complete image") from None
        say_pillow_warnings(caught, name)
        if rgb is not None:
            return rgb
    if isinstance(image, np.ndarray):
        x = image
        if isinstance(x, np.ma.MaskedArray):
            masked = int(np.ma.getmaskarray(x).sum())
            if masked:
                raise Gen3cInputError(
                    f"{name} is a masked array with {masked} masked values: colour has no 'missing' value, "
                    "pass image.filled(colour), or an RGBA array whose alpha is 0 there (over white)"
                )
            x = np.ma.getdata(x)
        if x.dtype.kind == "c":
            raise Gen3cInputError(complex_refusal(name, x.dtype))
        if x.ndim == 2:
            x = np.repeat(x[..., None], 3, axis=-1)
        if x.ndim != 3 or x.shape[-1] not in (3, 4):
            hint = " (it looks like (3, H, W): pass array.transpose(1, 2, 0))" if x.ndim == 3 and x.shape[0] in (3, 4) else ""
            raise Gen3cInputError(f"{name} array has shape {x.shape}: pass (H, W, 3) RGB{hint}")
        if x.dtype.kind == "f":
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            _check_unit_range(t, name)
            x = (np.clip(x, 0, 1) * 255.0).round().astype(np.uint8)
        elif x.dtype == np.bool_:
            x = x.astype(np.uint8) * np.uint8(255)
        elif x.dtype != np.uint8:
            raise Gen3cInputError(f"{name} array is {x.dtype}{_integer_hint(x, 'array')}")
        if x.shape[-1] == 4:  # as its PNG is read: over white
            return np.asarray(upright_rgb(Image.fromarray(np.ascontiguousarray(x))), dtype=np.uint8).copy()
        return x.copy()
    raise Gen3cInputError(f"{name} is {describe_value(image)}: pass a (3, H, W) tensor in [0, 1], a PIL image or a uint8 array")


def _sixteen_bit(image: Image.Image, name: str) -> Image.Image | None:
    """A mode-I PIL image of 16-bit samples as the ``I;16`` image a 16-bit PNG opens as, turned
    upright first (the new image has no EXIF), so it is read as one (:func:`upright_rgb`); None for
    other mode-I images (32-bit integers, of unknown range). PIL opens a 16-bit PGM (any maxval
    scaled to 0–65535) and a TIFF of signed 16-bit samples (it has no signed 16-bit mode) as mode I.

    Raises:
        Gen3cInputError: negative samples (a signed TIFF's), which no colour has, naming ``name``.
    """
    tags = getattr(image, "tag_v2", None)  # a TIFF's; BitsPerSample is tag 258
    if not (image.format == "PPM" or (image.format == "TIFF" and tags is not None and tags.get(258) in (16, (16,)))):
        return None
    values = np.asarray(exif_upright(image))
    lo = int(values.min()) if values.size else 0
    if lo < 0:
        raise Gen3cInputError(
            f"{name} holds negative colours (signed 16-bit samples, down to {lo}): save it as an unsigned 16-bit PNG, "
            "or pass its values as float in [0, 1]"
        )
    return Image.fromarray(values.astype(np.uint16))


def _integer_hint(values: np.ndarray, var: str) -> str:
    """What to pass instead of colours of another dtype than uint8 (integers: their range is
    unknown), by their values; ``var`` is "array" or "tensor"."""
    fix = ": pass uint8 or float in [0, 1]" if var == "array" else ": pass a uint8 tensor or a float one"
    return fix + _integer_range_hint(values, var)


def _integer_range_hint(values: np.ndarray, var: str) -> str:
    """How to turn integer colours into uint8 or [0, 1], by their values: "(its values fit 0–255:
    …)", "(16-bit colours: …)" or "(its values span […])", after a space; "" for other dtypes."""
    if values.dtype.kind not in "iu":
        return ""
    lo, hi = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if 0 <= lo and hi <= 255:
        return f" (its values fit 0–255: {'array.astype(np.uint8)' if var == 'array' else 'tensor.to(torch.uint8)'})"
    if 0 <= lo and hi <= 65535:
        return f" (16-bit colours: {'array / 65535' if var == 'array' else '(tensor / 257).round().to(torch.uint8)'})"
    return f" (its values span [{lo}, {hi}])"


def image_to_tensor(image: Any, name: str = "image") -> Tensor:
    """Any accepted image form → (3, H, W) float32 tensor in [0, 1]."""
    if isinstance(image, Tensor) and image.dtype.is_floating_point:
        image = plain_tensor(image, name)  # (a meta tensor was "Tensor.item() cannot be called on meta tensors")
        if image.ndim != 3 or image.shape[0] != 3:
            raise Gen3cInputError(f"{name} tensor has shape {tuple(image.shape)}: pass (3, H, W) RGB")
        check_not_empty(image, name)  # (torch's "min(): Expected reduction dim to be specified")
        _check_unit_range(image, name)
        return image.detach().float().clamp(0, 1)
    return torch.from_numpy(image_to_uint8(image, name)).permute(2, 0, 1).float().div_(255.0)


def _check_unit_range(x: Tensor, name: str) -> None:
    if not torch.isfinite(x).all():
        raise Gen3cInputError(f"{name} holds NaN or infinite values: pass colours in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        hint = ": it looks like [-1, 1], pass (image + 1) / 2" if lo < 0 and lo >= -1 - 1e-3 else ""
        raise Gen3cInputError(f"{name} values span [{lo:.3g}, {hi:.3g}], expected [0, 1]{hint}")


def resize_image(image: Tensor, size: tuple[int, int], mode: str = "crop") -> Tensor:
    """Resize (*B, C, H, W) to ``size`` (H, W).

    ``"crop"`` keeps the aspect ratio: scale to cover, then centre-crop (our default).
    ``"stretch"`` is GEN3C's plain resize, which does not keep the aspect ratio.
    Intrinsics follow with :func:`gen3c.cameras.resize_crop_intrinsics` / ``resize_intrinsics``.
    """
    if mode not in RESIZE_MODES:
        raise Gen3cInputError(f"unknown resize mode {mode!r}: choose one of {', '.join(RESIZE_MODES)}")
    size = _check_resize("resize_image", "image", image, 3, size)
    squeeze = image.ndim == 3
    x = image[None] if squeeze else image
    if mode == "stretch":
        out = _resize(x, size)
    else:
        # One channel at a time, each cropped as soon as it is made: the image that covers the
        # target can be far larger than the target (a 16 × 7680 strip's, from 352 × 640, is 4224 ×
        # 7680: 264 times). Resizing only the part kept rounds differently in places (torch's
        # kernel, told the scale and a smaller output, came out 1 ulp off); a channel alone does not.
        (rh, rw), top, left = resize_crop_plan(tuple(x.shape[-2:]), size)
        crop = (..., slice(top, top + size[0]), slice(left, left + size[1]))
        out = torch.cat([_resize(x[:, c : c + 1], (rh, rw))[crop].clone() for c in range(x.shape[1])], dim=1)
    return out[0] if squeeze else out


def _check_resize(function: str, name: str, values: object, dims: int, size: object) -> tuple[int, int]:
    """``size`` as (H, W) ints, after refusing what :func:`resize_image` / :func:`resize_nearest`
    cannot resize: no tensor or fewer than ``dims`` dimensions (None was "'NoneType' object has
    no attribute 'ndim'"), an empty image, or a size that is not two whole numbers ≥ 1 (an int,
    6.5 or 0 were torch's interpolate errors)."""
    if not isinstance(values, Tensor) or values.ndim < dims:
        shape = "(*B, C, H, W)" if dims == 3 else "(*B, H, W)"
        got = f"shape {tuple(values.shape)}" if isinstance(values, Tensor) else describe_value(values)
        raise Gen3cInputError(f"{function} {name} is {got}: pass a {shape} tensor")
    if 0 in values.shape[-2:]:
        raise Gen3cInputError(f"{function} {name} has shape {tuple(values.shape)}: an image of no pixels has nothing to resize")
    return whole_image_size(size, f"{function} size")


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=shrinking)


def resize_nearest(labels: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize a (*B, H, W) map of labels (instance ids, masks; any dtype) to ``size`` (H, W) by
    nearest neighbour, keeping its dtype and every value exactly.

    Each output pixel copies the source pixel ``F.interpolate(mode="nearest")`` picks; the values
    themselves never pass through float32, which rounds integers above 2**24 (an id 2**24 + 1
    became 2**24, and 2**31 − 1 overflowed to −2**31).
    """
    size = _check_resize("resize_nearest", "labels", labels, 2, size)
    if tuple(labels.shape[-2:]) == size:
        return labels
    rows, cols = (_nearest_sources(n, m, labels.device) for n, m in zip(labels.shape[-2:], size, strict=True))
    return labels[..., rows[:, None], cols[None, :]]


def _nearest_sources(source: int, target: int, device: torch.device) -> Tensor:
    """(target,) int64 indices of the source pixels a nearest resize of one axis picks: torch's own
    rule, run on the pixel indices (exact in float32: no image side reaches 2**24)."""
    index = torch.arange(source, dtype=torch.float32, device=device)[None, None]
    return F.interpolate(index, size=target, mode="nearest")[0, 0].long()


def to_uint8(image: Tensor, name: str = "to_uint8 image") -> np.ndarray:
    """(*B, 3, H, W) float in [−1, 1] → (*B, H, W, 3) uint8; values a little past ±1 (a
    generator's overshoot) are clipped.

    Raises:
        Gen3cInputError: ``image`` is no float tensor, not channels-first RGB, holds no values
            (meta), or holds 0–255 colours (all of them would be clipped to white).
    """
    _check_float_frames(image, name)
    image = plain_tensor(image, name)
    out = torch.empty((*image.shape[:-3], *image.shape[-2:], 3), dtype=torch.uint8)
    if not image.numel():  # (its frames of no pixels: the reshape below cannot count them)
        return out.numpy()
    # Frame by frame through one float scratch: whole-video temporaries (1.3 GB for 121 frames
    # at 704×1280) cost more in page faults than the arithmetic (5× on a 2-core CPU).
    scratch = torch.empty(image.shape[-3:], device=image.device)
    for frame, target in zip(image.reshape(-1, *image.shape[-3:]), out.view(-1, *out.shape[-3:]), strict=True):
        scratch.copy_(frame).clamp_(-1, 1).add_(1.0).mul_(127.5).round_()
        target.copy_(scratch.movedim(0, -1))
    return out.numpy()


def _check_float_frames(image: object, name: str) -> None:
    """:func:`to_uint8`'s input check. A (T, H, W, 3) tensor was torch's "The size of tensor a (3)
    must match the size of tensor b …", a numpy array an AttributeError, and a uint8 tensor or
    0–255 floats came out all white (clipped at 1)."""
    if not isinstance(image, Tensor):
        raise Gen3cInputError(f"{name} is {describe_value(image)}: pass a (*B, 3, H, W) float tensor in [-1, 1] (torch.as_tensor(array))")
    shape = tuple(image.shape)
    if not image.dtype.is_floating_point:
        fix = "it is 8-bit already: image.movedim(-3, -1).numpy() is the array" if image.dtype == torch.uint8 else "pass floats in [-1, 1]"
        raise Gen3cInputError(f"{name} is {shape} {str(image.dtype).removeprefix('torch.')}: to_uint8 takes floats in [-1, 1]; {fix}")
    if image.ndim < 3 or shape[-3] != 3:
        last = image.ndim >= 3 and shape[-1] == 3
        hint = ": it looks channels-last (…, H, W, 3), pass image.movedim(-1, -3)" if last else ""
        raise Gen3cInputError(f"{name} has shape {shape}: pass (*B, 3, H, W) RGB in [-1, 1]{hint}")
    if image.is_meta or not image.numel():
        return  # (plain_tensor refuses a meta tensor; an empty one has no values to check)
    values = plain_tensor(image, name)
    lo, hi = (float(v) for v in torch.aminmax(values.float() if values.element_size() == 1 else values))  # (float8 has no aminmax of its own)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # (NaN and -inf came out black, +inf was taken for 0–255 colours)
        raise Gen3cInputError(f"{name} holds NaN or infinite values (it spans [{lo:g}, {hi:g}]): pass finite floats in [-1, 1]")
    if hi > 2:  # (a little past 1 is a generator's overshoot, clipped as before)
        raise Gen3cInputError(f"{name} reaches {hi:.4g}: it holds 0–255 colours, not [-1, 1]; pass image / 127.5 - 1")


def on_cosmos_uint8_grid(video: Tensor) -> Tensor:
    """``video`` (..., 3, H, W) in [−1, 1] (float32) as Cosmos writes it: each value truncated
    to uint8 as ``(1 + x).clamp(0, 2) / 2 · 255`` cast to uint8 (GEN3C's decode, Cosmos'
    ``world_generation_pipeline.py`` ``_run_tokenizer_decoding``), back as ``u / 127.5 − 1``.

    GEN3C's video, and the last frame its long videos condition the next chunk on, are these
    values; :func:`to_uint8`'s rounding gives them back exactly. Truncation, not rounding: a
    generated frame comes out half a step (1/510) darker on average than rounding would make it.
    """
    levels = ((1.0 + video.float()).clamp(0, 2) / 2 * 255).to(torch.uint8)
    return levels.float() / 127.5 - 1.0


def save_image(path: str | os.PathLike, image: Any) -> None:
    """Write an image as PNG atomically: (3, H, W) in [−1, 1], or any form :func:`as_image`
    takes (a uint8 tensor, a PIL image, an (H, W, 3) uint8 array). ``path`` must end in .png
    (nothing is written otherwise); a leading ``~`` in it is the home folder."""
    from gen3c.io.atomic import atomic_path

    # (a "frame.jpg" held PNG data, which viewers going by the name misread)
    target = writer_path(path, "save_image path", "the image", ".png", "save_image writes PNG")
    # The converted image is written: a uint8 tensor, checked but then written as it came, was
    # clipped as [-1, 1] floats (a white PNG), and an (H, W, 3) array an AttributeError.
    image = as_image(image, "save_image image")

    with atomic_path(target) as tmp:
        Image.fromarray(to_uint8(image)).save(tmp, format="PNG")


