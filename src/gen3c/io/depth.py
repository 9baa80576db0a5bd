"""User-supplied depth maps: ``.npy``, ``.npz``, 16-bit PNG (with a scale), TIFF (32-bit float, or
16-bit as a PNG) and OpenEXR.

Depth is z-depth in any consistent unit. Object arrays are never unpickled.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gen3c.cache import CACHE_MAX_DEPTH
from gen3c.constants import SCALED_DEPTH_SUFFIXES
from gen3c.errors import (
    Gen3cInputError,
    caught_warnings,
    complex_refusal,
    describe_value,
    note,
    path_to_copy,
    quoted_path,
)
from gen3c.io.formats import EXR_MAGIC, require_numpy_file
from gen3c.io.frames import float32_array
from gen3c.io.images import check_pixel_limit, plain_tensor, resize_nearest
from gen3c.io.npz import ZIP_READ_ERRORS, damage, read_npy_header
from gen3c.io.paths import reader_path, refuse_special_file

DEPTH_SUFFIXES = (".npy", ".npz", ".png", ".tif", ".tiff", ".exr")
# 16-bit PNG depth is usually millimetres (Kinect, RealSense, ScanNet): value × 0.001 = metres.
DEFAULT_PNG_DEPTH_SCALE = 0.001


def load_depth(path: str | os.PathLike, png_scale: float = DEFAULT_PNG_DEPTH_SCALE, name: str = "depth file") -> Tensor:
    """Read a depth map as (H, W) float32 without validating its values.

    Args:
        path: ``.npy`` (2-D array, or (1, H, W) / (H, W, 1)), ``.npz`` (key ``depth`` or its
            only array), 16-bit PNG (depth = value × ``png_scale``; 0 stays 0, i.e. invalid),
            ``.tif`` / ``.tiff`` (single-channel 32-bit float: depth as it is; 16-bit: as a PNG) or
            ``.exr`` (channel Z, else one named depth or in a depth layer such as Blender's
            ``ViewLayer.Depth.Z``, else R / Y / its only channel). PNGs and TIFFs are turned upright
            by their EXIF orientation, as photos are (:func:`gen3c.io.images.load_image`). A
            leading ``~`` is the home folder, as on the command line.
    """
    p = reader_path(path, name, "a depth file")
    try:
        missing = not p.exists()
    except OSError as exc:  # the file system's refusal of the path itself (a name too long)
        raise Gen3cInputError(f"{name} {quoted_path(p)} cannot be read ({exc.strerror}): check the path") from None
    if missing:
        raise Gen3cInputError(f"{name} {quoted_path(p)} does not exist: check the path")
    refuse_special_file(p, name)
    if p.is_dir() or p.stat().st_size == 0:
        raise Gen3cInputError(f"{name} {quoted_path(p)} is empty or a folder: pass a depth file ({', '.join(DEPTH_SUFFIXES)})")
    suffix = p.suffix.lower()
    label = f"{name} {quoted_path(p)}"
    try:
        if suffix in (".npy", ".npz"):
            require_numpy_file(p, label)
        # The array's shape is checked from its header before its values are read: a video's
        # (T, H, W) depth stack given for one image would be read whole (gigabytes) to be refused.
        if suffix == ".npy":
            with open(p, "rb") as fp:
                _check_npy_shape(fp, label)
            array = np.load(p, allow_pickle=False)
        elif suffix == ".npz":
            # Opened here, not by np.load: the file np.load opens itself stays open in its error's
            # traceback when the archive is no readable zip, past this refusal.
            with open(p, "rb") as fh, np.load(fh, allow_pickle=False) as data:
                keys = list(data.keys())
                if "depth" not in keys and len(keys) != 1:
                    raise Gen3cInputError(f"{label} holds arrays {keys} but none named 'depth': save the depth under the key 'depth'")
                key = "depth" if "depth" in keys else keys[0]
                with data.zip.open(f"{key}.npy" if f"{key}.npy" in data.zip.namelist() else key) as fp:  # numpy's naming
                    _check_npy_shape(fp, label)
                array = data[key]
        elif suffix in SCALED_DEPTH_SUFFIXES:
            check_png_scale(png_scale, label)
            array = _read_depth_image(p, name)
            if array.dtype != np.float32:  # 16-bit integers, scaled as a PNG's
                array = array.astype(np.float32) * np.float32(png_scale)
            elif png_scale != DEFAULT_PNG_DEPTH_SCALE:
                raise Gen3cInputError(
                    f"{label} holds 32-bit float depth, read as it is: the PNG depth scale {png_scale:g} scales 16-bit integer depth only; drop --png_depth_scale"
                )
        elif suffix == ".exr":
            array = _read_exr(p, name)
        else:
            raise Gen3cInputError(f"{name} {quoted_path(p)} has an unsupported format: use one of {', '.join(DEPTH_SUFFIXES)}")
    except Gen3cInputError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise Gen3cInputError(f"{name} {quoted_path(p)} holds Python objects, which are never unpickled: save a plain float array") from None
        raise Gen3cInputError(f"{name} {quoted_path(p)} cannot be read ({exc}): save a plain float array") from None
    except ZIP_READ_ERRORS as exc:
        if isinstance(exc, OSError) and exc.errno is not None:  # the system's (no permission, an I/O error), not the file's
            raise Gen3cInputError(f"{name} {quoted_path(p)} cannot be read ({exc.strerror or exc}): check the path and the file's permissions") from None
        raise Gen3cInputError(f"{name} {quoted_path(p)} is corrupt or truncated ({damage(exc)}): re-export it") from None
    return depth_map(array, f"{name} {quoted_path(p)}", copy=False)  # read just now: its own, not copied again (192 MB at 48 MP)


def check_png_scale(png_scale: object, name: str) -> None:
    """Refuse a 16-bit PNG depth scale that is no finite number > 0 (the CLI's ``--png_depth_scale``
    is checked with the run's settings; this is :func:`load_depth`'s own, for Python callers): 0 or a
    negative one made every pixel a hole, refused as depth "with no valid pixel"."""
    try:
        value = math.nan if isinstance(png_scale, bool) else float(png_scale)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise Gen3cInputError(
            f"png_scale {png_scale!r} for {name} is impossible: pass a number > 0 (depth = PNG value × png_scale; 0.001 reads millimetres as metres)"
        )


def depth_map(values: np.ndarray | Tensor, name: str, copy: bool = True) -> Tensor:
    """A depth array as a file holds it, or as handed over in memory (``gen3c.generate(depth=)``),
    → (H, W) float32, its values unchecked (:func:`conform_depth` checks them): any real dtype,
    (1, H, W) and (H, W, 1) squeezed. Magnitudes beyond float32 become ±inf (invalid depth). A
    numpy masked array's masked pixels become NaN, so they are invalid depth as NaN is (placed far
    away, or left out with ``mask_invalid``: :func:`fill_invalid_depth`), never their raw values. Its
    size is checked from its shape first (an input image's pixel limit,
    :func:`gen3c.io.images.check_pixel_limit`), before its values are converted. ``copy=False``:
    a numpy array the caller owns (read from a file) is taken as it is where it is float32.

    Raises:
        Gen3cInputError: not an array, not real numbers, not 2-D once squeezed, or too large,
            naming ``name``.
    """
    if isinstance(values, Tensor):
        values = plain_tensor(values, name)
        if values.is_complex():  # numpy would take it (not complex32)
            raise Gen3cInputError(complex_refusal(name, values.dtype))
        if values.dtype == torch.bool:
            raise Gen3cInputError(f"{name} holds bool values: depth must be a numeric array")
    elif not isinstance(values, np.ndarray):
        raise Gen3cInputError(f"{name} is {describe_value(values)}: pass a tensor or a numpy array")
    elif values.dtype.kind == "c":
        raise Gen3cInputError(complex_refusal(name, values.dtype))
    elif values.dtype.kind not in "fiu":
        raise Gen3cInputError(f"{name} holds {values.dtype} values: depth must be a numeric array")
    check_depth_shape(values.shape, name)
    if isinstance(values, Tensor):
        values = values.cpu()
        # float16 / bfloat16 → float32 is exact (bfloat16 has no numpy dtype); float64 as float32_array casts it
        values = (values.float() if values.is_floating_point() and values.dtype != torch.float64 else values).numpy()
    values = masked_as_nan(values)
    return torch.from_numpy(float32_array(np.squeeze(values), copy=copy))


def check_depth_tensor(depth: object, name: str) -> None:
    """Refuse what the depth helpers cannot compute with, naming ``name``: no tensor (a numpy array
    or None was AttributeError: 'numpy.ndarray' object has no attribute 'numel'), a meta tensor
    (torch's "Tensor.item() cannot be called on meta tensors"), complex or bool values."""
    if not isinstance(depth, Tensor):
        # (depth_map, not torch.from_numpy: it takes a masked array's masked pixels as NaN, any real dtype)
        fix = f" (gen3c.io.depth.depth_map(array, {name!r}) takes an array as gen3c.generate does)" if isinstance(depth, np.ndarray) else ""
        raise Gen3cInputError(f"{name} is {describe_value(depth)}: pass a tensor of z-depth{fix}")
    plain_tensor(depth, name)
    if depth.is_complex():
        raise Gen3cInputError(complex_refusal(name, depth.dtype))
    if depth.dtype == torch.bool:
        raise Gen3cInputError(f"{name} holds bool values: depth must be numbers (a mask goes in as mask=)")


def check_depth_shape(shape: tuple[int, ...], name: str) -> None:
    """Refuse a depth array's ``shape`` unless it is (H, W) once its 1-sides are squeezed
    ((1, H, W), (H, W, 1)) and within an input image's pixel limit, naming ``name``."""
    squeezed = [side for side in shape if side != 1]  # np.squeeze's shape, before any copy
    if len(squeezed) != 2:
        raise Gen3cInputError(f"{name} has shape {tuple(shape)}: depth must be a 2-D (H, W) array")
    check_pixel_limit(squeezed[1], squeezed[0], name)


def _check_npy_shape(fp, name: str) -> None:
    """:func:`check_depth_shape` of the ``.npy`` stream ``fp``'s array, from its header (object
    arrays are left to ``np.load``'s refusal, format 3.0 to the check after reading)."""
    header = read_npy_header(fp)
    if header is not None and not header[2].hasobject:
        check_depth_shape(header[0], name)


def masked_as_nan(values: np.ndarray) -> np.ndarray:
    """A numpy masked array's data with its masked pixels NaN, so they are invalid depth
    (:func:`fill_invalid_depth`), in a float dtype that holds its values exactly (float32, or
    float64 for float64 and integers wider than 16 bits); any other array as it is."""
    if not isinstance(values, np.ma.MaskedArray):
        return values
    return values.astype(np.result_type(values.dtype, np.float32)).filled(np.nan)


def _read_depth_image(p: Path, name: str) -> np.ndarray:
    """A depth PNG's or TIFF's values, upright: 16-bit (or 32-bit) integers as int32, a TIFF's 32-bit
    floats (Pillow's mode ``F``) as float32."""
    from PIL import Image, UnidentifiedImageError

    from gen3c.io.images import bomb_refusal, check_pixel_limit, exif_upright

    kind = "PNG" if p.suffix.lower() == ".png" else "TIFF"
    try:
        # PIL warns from 89 MP, below gen3c's own limit, checked below before the pixels are read
        with caught_warnings(Image.DecompressionBombWarning) as caught:
            im = Image.open(p)
        for w in caught:  # the others as they came
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    except Image.DecompressionBombError as exc:
        raise bomb_refusal(f"{name} {quoted_path(p)}", exc) from None
    except UnidentifiedImageError:  # a renamed file: say what it is, not "cannot identify image file"
        from gen3c.io.formats import PNG_MAGIC, describe_head, file_head

        head = file_head(p)
        if kind == "PNG" and head.startswith(PNG_MAGIC):  # a PNG's signature, then a header cut short or garbled
            raise Gen3cInputError(f"{name} {quoted_path(p)} is a damaged PNG (its header cannot be read): export or copy it again") from None
        if kind == "TIFF" and head[:4] in (b"II*\x00", b"MM\x00*"):  # Pillow reads float TIFFs of 32 bits, one channel, only
            raise Gen3cInputError(
                f"{name} {quoted_path(p)} is a TIFF that cannot be read (64- or 16-bit floats, several channels, or damaged?): "
                "save the depth as a single-channel 32-bit float TIFF or a .npy"
            ) from None
        raise Gen3cInputError(f"{name} {quoted_path(p)} is {describe_head(head)}, not a {kind}: give the file its real suffix ({', '.join(DEPTH_SUFFIXES)})") from None
    with im:
        check_pixel_limit(*im.size, f"{name} {quoted_path(p)}")
        if im.mode not in ("I;16", "I;16B", "I;16L", "I") and not (kind == "TIFF" and im.mode == "F"):
            # A colour image is a picture of depth (gen3c depth's false-colour NAME_depth.png), whose
            # colours are no depth values: the depth itself is the .npy written beside it. So is an
            # 8-bit grey one (a viewer's or an estimator's normalised depth or disparity, near often
            # bright): its 256 levels × png_scale (0 to 0.255 at the default) are no metric depth.
            beside = p.with_suffix(".npy")
            held = "single-channel 16-bit" if kind == "PNG" else "single-channel 32-bit float or 16-bit"
            fix = f"pass {path_to_copy(beside)} beside it" if beside.is_file() else f"pass the depth values (.npy, or a {held} {kind})"
            actual = im.format or kind  # (a JPEG named .png is said to be one)
            what = f"an 8-bit grey {actual}, a picture of depth (256 levels hold no metric depth)" if im.mode == "L" else f"a {actual} of mode {im.mode}, a picture of depth"
            raise Gen3cInputError(f"{name} {quoted_path(p)} is {what}, not its values (depth {kind}s are {held}): {fix}")
        # Upright, as the photo it belongs to is read (gen3c.io.images.load_image applies EXIF too).
        return np.array(exif_upright(im), dtype=np.float32 if im.mode == "F" else np.int32)  # a copy: writable


def _read_exr(p: Path, name: str) -> np.ndarray:
    from gen3c.dependencies import require

    OpenEXR = require("OpenEXR", f"reading {name} {quoted_path(p)}")
    try:
        with OpenEXR.File(str(p)) as f:
            channels = {key: np.asarray(ch.pixels) for key, ch in f.channels().items()}  # (not copied: the one used is, to float32)
    except Exception as exc:  # OpenEXR raises plain Exceptions for bad files ("Unable to open … for read" for any other format)
        from gen3c.io.formats import describe_head, file_head

        try:
            head = file_head(p)
        except OSError as err:  # the system's refusal (no permission, an I/O error): not the file's content
            raise Gen3cInputError(f"{name} {quoted_path(p)} cannot be read ({err.strerror or err}): check the path and the file's permissions") from None
        if not head.startswith(EXR_MAGIC):  # a renamed file: say what it is, as for a PNG or an npy
            raise Gen3cInputError(f"{name} {quoted_path(p)} is {describe_head(head)}, not an OpenEXR file: give the file its real suffix ({', '.join(DEPTH_SUFFIXES)})") from None
        raise Gen3cInputError(f"{name} {quoted_path(p)} is a damaged OpenEXR file, cut short or corrupt ({exc}): export or copy it again") from None
    if not channels:
        raise Gen3cInputError(f"{name} {quoted_path(p)} has no channels: write the depth into channel Z")
    # Depth by name first, wherever it sits: Blender's multi-layer files hold "ViewLayer.Depth.Z"
    # beside the colour layer "ViewLayer.Combined" (R, G, B, A), which must not be read as depth,
    # nor must the Z of its other passes ("ViewLayer.Normal.Z", "ViewLayer.Mist.Z", "….Position.Z").
    depth_keys = [key for key in channels if {"depth", "Depth"} & set(key.split("."))]
    key = next((k for k in ("Z", *depth_keys, "R", "Y") if k in channels), None)
    if key is None and len(channels) > 1:
        shown = ", ".join(list(channels)[:6]) + (", …" if len(channels) > 6 else "")
        raise Gen3cInputError(
            f"{name} {quoted_path(p)} has no depth channel (it has {shown}): write the depth into channel Z (Blender: enable the Z pass, ViewLayer.Depth.Z)"
        )
    pixels = channels[key or next(iter(channels))].astype(np.float32)
    return pixels[..., 0] if pixels.ndim == 3 else pixels


#: Disparity below this share of its peak is the sky or far field: untrusted, and clamped there,
#: so the far end sits at 100 × the nearest depth instead of at infinity.
RELATIVE_DISPARITY_FLOOR = 0.01

#: The flag that reads ``--depth_path`` as disparity (:func:`depth_from_disparity`).
DISPARITY_FLAG = "--depth_is_disparity"


def disparity_to_relative_depth(disparity: Tensor, floor: float = RELATIVE_DISPARITY_FLOOR) -> tuple[Tensor, Tensor]:
    """Affine-invariant disparity (inverse depth up to scale and shift, as Depth Anything's relative
    models, DPT and MiDaS predict it) → depth up to scale, median 1. The shift is taken as 0:
    depth = 1 / disparity, the disparity below ``floor`` × its peak (NaN, ≤ 0 too) untrusted and
    clamped there, then scaled so that the median trusted depth is 1.

    Args:
        disparity: (H, W), larger = nearer.
    Returns:
        ``(depth (H, W), mask (H, W) bool)``: the mask holds the trusted pixels.

    >>> d, m = disparity_to_relative_depth(torch.tensor([[4.0, 2.0, 1.0, 0.0]]))
    >>> d.tolist(), m.tolist()
    ([[0.5, 1.0, 2.0, 50.0]], [[True, True, True, False]])
    """
    disparity = torch.nan_to_num(disparity.float(), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(disparity.max())
    if peak <= 0:
        return torch.ones_like(disparity), torch.zeros_like(disparity, dtype=torch.bool)
    lowest = floor * peak
    mask = disparity > lowest
    depth = 1.0 / disparity.clamp(min=lowest)
    return depth / float(depth[mask].median()), mask


def depth_from_disparity(disparity: Tensor, name: str, mask_invalid: bool = False) -> tuple[Tensor, Tensor]:
    """A user's disparity map (``--depth_is_disparity``: MiDaS's, DPT's or Depth Anything's saved
    output, larger = nearer) as the relative depth the estimators make of theirs
    (:func:`disparity_to_relative_depth`), with a note saying so and counting the untrusted pixels.

    Args:
        disparity: (H, W) as read (:func:`load_depth`).
        mask_invalid: the caller leaves the untrusted pixels out of the cache (``--mask_invalid_depth``);
            the note says where they go.
    Raises:
        Gen3cInputError: no finite disparity > 0 (+inf, infinitely near, is no measurement either).
    Returns:
        ``(depth (H, W), trusted (H, W) bool)``; depth is finite and > 0 everywhere.
    """
    check_depth_tensor(disparity, name)
    if not bool((torch.isfinite(disparity) & (disparity > 0)).any()):
        raise Gen3cInputError(
            f"{name} has no disparity > 0 (all NaN/inf/≤ 0), read as disparity ({DISPARITY_FLAG}, larger = nearer): "
            f"check its values, or drop {DISPARITY_FLAG} if it holds z-depth"
        )
    depth, trusted = disparity_to_relative_depth(disparity)
    untrusted = int((~trusted).sum())
    where = "left out of the cache" if mask_invalid else "sit at 100 × the nearest depth (--mask_invalid_depth leaves them out)"
    far = (
        f"; {untrusted} pixels ({100 * untrusted / trusted.numel():.2g}%) of disparity below {RELATIVE_DISPARITY_FLOOR:.0%} of its peak "
        f"(or NaN/inf/≤ 0) are untrusted and {where}"
        if untrusted
        else ""
    )
    note(f"{name}: read as disparity: depth = 1 / disparity up to scale (shift taken as 0), its median 1 (relative depth){far}", stacklevel=2)
    return depth, trusted


def mask_lets_in(mask: np.ndarray | Tensor) -> Tensor:
    """The pixels an input's own mask lets into the cache (bool, same shape): where it is > 0.

    For a sample's ``mask.npz``, a ``.pt`` sample's mask and multi-view ``mask_key_frames``
    alike. GEN3C does not threshold these masks: it multiplies each point's splatting weight by
    its mask value (``cache_3d.py`` → ``forward_warp_utils_pytorch.py`` ``bilinear_splatting``)
    and draws a target pixel only where the weights summed there are > 0. So a point whose mask
    is > 0 is drawn (a fraction only weighs less where points overlap), and one whose mask is
    ≤ 0 never is on its own (−1 even takes weight away from its neighbours); NaN is left out.
    """
    if isinstance(mask, Tensor):
        return mask > 0
    return torch.from_numpy(np.asarray(mask) > 0)


#: How depth in millimetres is made metres, for the messages that suspect it.
MILLIMETRES_FIX = "÷ 1000; a 16-bit PNG: --png_depth_scale 0.001"

#: Where NaN / +inf depth goes (GEN3C, ``gen3c_single_image.py``: NaN → 1e4, clamped to
#: [0, 1e4]); the cache then clamps depth to 100 (``cache_3d.py``), so sky becomes a far backdrop.
FAR_DEPTH = 1e4


def fill_invalid_depth(
    depth: Tensor,
    name: str = "depth",
    mask_invalid: bool = False,
    mask: Tensor | None = None,
    frame_offset: int = 0,
    tally: InvalidDepthTally | None = None,
    mask_name: str = "its mask",
) -> tuple[Tensor, Tensor]:
    """GEN3C's treatment of invalid depth, for (H, W) maps and (T, H, W) stacks alike.

    NaN and +inf (MoGe's and ViPE's sky, undefined pixels) are placed far away at
    :data:`FAR_DEPTH`, as GEN3C does: they enter the cache at its clamp depth of 100 and render
    as a backdrop that barely moves with the camera, which looks better than a hole the generator
    must invent. ``mask_invalid`` leaves them out of the cache instead. Depth ≤ 0 (and −inf) is
    "no point here" either way (GEN3C's clamp at 0; the 0 of 16-bit depth PNGs). Finite depth
    ≥ :data:`FAR_DEPTH` (Blender's background, 1e10) stays as it is and enters the cache at 100
    too: it is far background, as GEN3C's clamp at 1e4 makes it, and is left out of the median
    (:func:`scene_depths`) with NaN's fill. A one-line note (a ``UserWarning``; the CLI prints it
    as ``note:``) says what was done.

    Args:
        depth: (H, W) or (T, H, W) z-depth.
        mask: optional bool of the same shape, the pixels the input itself lets into the cache
            (e.g. a sample's ``mask.npz``); the note counts only those.
        mask_name: how the error for a frame ``mask`` leaves empty names the mask.
        frame_offset: the index of ``depth[0]`` in its file (a clip read from a starting frame),
            so that an error names the file's frame.
        tally: a clip read a frame at a time counts its pixels here and says the note once, at
            the end (:meth:`InvalidDepthTally.note`), instead of once per call.
    Raises:
        Gen3cInputError: a map, or a frame of a stack, without one finite depth > 0, or
            without one below :data:`FAR_DEPTH` (depth in millimetres, most likely: the message
            says so and how to scale it), or whose ``mask`` lets none of its valid depth in.
    Returns:
        ``(depth, valid)``: depth with far pixels at :data:`FAR_DEPTH` and holes at 0; ``valid``
        (bool) the pixels allowed into the cache.
    """
    check_depth_tensor(depth, name)
    if depth.ndim < 2:  # ((W,) was torch's "Dimension specified as -2 but tensor has no dimensions")
        raise Gen3cInputError(f"{name} has shape {tuple(depth.shape)}: pass (H, W) or (T, H, W) z-depth")
    if depth.numel() == 0:
        raise Gen3cInputError(f"{name} is empty (shape {tuple(depth.shape)}): check the file")
    trusted = torch.isfinite(depth) & (depth > 0)
    frames = depth.reshape(-1, *depth.shape[-2:])
    trusted_frames = trusted.reshape(frames.shape)
    empty = ~trusted_frames.flatten(1).any(1)
    if bool(empty.any()):
        first = int(empty.nonzero()[0, 0])
        where = f" (frame {frame_offset + first})" if depth.ndim == 3 else ""
        finite = frames[first][torch.isfinite(frames[first])]
        if finite.numel() and float(finite.min()) < 0:  # the depth of a camera that looks down −z, as OpenGL's and Blender's do
            raise Gen3cInputError(
                f"{name} has no valid pixel{where} (all NaN/inf/≤ 0; its depth spans [{float(finite.min()):.4g}, {float(finite.max()):.4g}]): "
                "negative z-depth is an OpenGL or Blender camera's, which looks down −z; negate it (gen3c's z-depth, OpenCV's, is > 0 in front)"
            )
        raise Gen3cInputError(f"{name} has no valid pixel{where} (all NaN/inf/≤ 0): check its values and their unit")
    # GEN3C clamps depth to FAR_DEPTH, where it puts NaN (gen3c_single_image.py): depth from there
    # on is far background, not scene. A map with no scene left is most likely in millimetres.
    beyond = trusted & (depth >= FAR_DEPTH)
    no_scene = ~(trusted & ~beyond).reshape(frames.shape).flatten(1).any(1)
    if bool(no_scene.any()):
        first = int(no_scene.nonzero()[0, 0])
        values = frames[first][trusted_frames[first]]
        where = f" (frame {frame_offset + first})" if depth.ndim == 3 else ""
        raise Gen3cInputError(
            f"{name} has no depth below {FAR_DEPTH:g}{where} (its valid depth spans [{float(values.min()):.4g}, {float(values.max()):.4g}]), "
            f"where GEN3C puts the far background: depth in millimetres? scale it to metres ({MILLIMETRES_FIX})"
        )
    far = torch.isnan(depth) | (depth == float("inf")) if not mask_invalid else torch.zeros_like(trusted)
    valid = trusted | far
    if mask is not None:
        valid &= mask
        far &= mask
        # A frame its mask empties would enter the cache as nothing, and its target frame render
        # black; most likely the mask's meaning is inverted (True = pixels to drop).
        shut = ~valid.reshape(frames.shape).flatten(1).any(1)
        if bool(shut.any()):
            where = f" of frame {frame_offset + int(shut.nonzero()[0, 0])}" if depth.ndim == 3 else ""
            raise Gen3cInputError(
                f"{name}: {mask_name} lets in no pixel{where} that has a valid depth, so nothing of it would enter the 3D cache: "
                f"{mask_name} must be True (> 0) where a pixel is used, not where it is dropped"
            )
    depth = torch.where(trusted, depth, torch.where(far, torch.full_like(depth, FAR_DEPTH), torch.zeros_like(depth)))
    counts = InvalidDepthTally(int(far.sum()), int((~valid).sum() if mask is None else (mask & ~valid).sum()), depth.numel())
    counts.beyond = int(beyond.sum() if mask is None else (beyond & mask).sum())
    counts.median = median_scene_depth(depth, valid)
    if tally is None:
        counts.note(name, mask_invalid, stacklevel=2)
    else:
        tally.add(counts)
    return depth, valid


@dataclass
class InvalidDepthTally:
    """Pixels :func:`fill_invalid_depth` placed far away (``far``) or left out (``holes``) of
    ``pixels`` in all, summed over the frames of a clip read one at a time."""

    far: int = 0
    holes: int = 0
    pixels: int = 0
    #: Finite depth ≥ :data:`FAR_DEPTH`: kept, but far background as GEN3C clamps it, out of the median.
    beyond: int = 0
    #: The largest median scene depth of the maps counted (:func:`median_scene_depth`), None: none.
    median: float | None = None

    def add(self, other: InvalidDepthTally) -> None:
        self.far, self.holes, self.pixels = self.far + other.far, self.holes + other.holes, self.pixels + other.pixels
        self.beyond += other.beyond
        if other.median is not None:
            self.median = other.median if self.median is None else max(self.median, other.median)

    def note(self, name: str, mask_invalid: bool, stacklevel: int = 1) -> None:
        """Say in one :func:`gen3c.errors.note` what was done with the invalid depth, if anything
        (``stacklevel`` as :func:`~gen3c.errors.note` counts it)."""
        notes = []
        if self.far:
            notes.append(
                f"{self._share(self.far)} of NaN/inf depth sit far away (depth 100 in the cache, as GEN3C places sky; "
                "--mask_invalid_depth leaves them out)"
            )
        if self.beyond:
            notes.append(
                f"{self._share(self.beyond)} of depth ≥ {FAR_DEPTH:g} are far background (GEN3C clamps depth there, "
                "with NaN) and do not count for the median depth"
            )
        if self.holes:
            notes.append(f"{self._share(self.holes)} of {'NaN/inf/≤ 0' if mask_invalid else '≤ 0'} depth are left out of the cache")
        if self.median is not None and self.median > CACHE_MAX_DEPTH:
            # Millimetres (a 16-bit PNG read with --png_depth_scale 1, a sensor's raw array) would
            # put the whole scene beyond the cache's clamp: one flat wall, without a word.
            notes.append(
                f"its median depth is {self.median:.4g}, beyond the {CACHE_MAX_DEPTH:g} at which GEN3C's cache clamps depth, "
                f"so the scene is flattened to a wall: depth in millimetres? scale it to metres ({MILLIMETRES_FIX})"
            )
        if notes:
            note(f"{name}: {'; '.join(notes)}", stacklevel=stacklevel + 1)

    def _share(self, count: int) -> str:
        return f"{count} pixels ({100 * count / self.pixels:.2g}%)"


def scene_depths(depth: Tensor, valid: Tensor | None = None) -> Tensor:
    """The depths that describe the scene, for its scale: valid, > 0, and not the far fill of
    NaN/inf pixels (:data:`FAR_DEPTH`), which must not move a median. Returns a 1-D tensor."""
    check_depth_tensor(depth, "depth")
    keep = (depth > 0) & (depth < FAR_DEPTH)
    return depth[keep if valid is None else keep & valid]


def median_scene_depth(depth: Tensor, valid: Tensor | None = None) -> float | None:
    """The scene's median depth, the one definition every caller uses (``--trajectory_scale
    median_depth``, :func:`gen3c.depth.median_depth`, the GUI's scale): the median of
    :func:`scene_depths` (``valid``, > 0, short of the far fill). Of an even count it is the lower
    of the two middle values (``torch.median``), not their mean (``numpy.median``). None when no
    pixel qualifies; the caller says what that means for it.

    Args:
        depth: (H, W) z-depth (any shape; ``valid`` the same shape).
    """
    values = scene_depths(depth, valid)
    return float(values.median()) if values.numel() else None


def conform_depth(depth: Tensor, size: tuple[int, int], name: str = "depth", mask_invalid: bool = False) -> tuple[Tensor, Tensor]:
    """Check depth values (:func:`fill_invalid_depth`) and bring the map to the image's size
    (another size of the same aspect ratio is resized, nearest, with a note; another aspect
    ratio is refused).

    Args:
        depth: (H, W).
        size: (H, W) of the image the depth belongs to (before any working-size resize).
        mask_invalid: leave NaN/+inf pixels out of the cache instead of placing them far away.
    Returns:
        ``(depth (H', W'), valid (H', W') bool)`` at ``size``.
    """
    check_depth_tensor(depth, name)
    if depth.ndim != 2:  # (a (1, H, W) map was "too many values to unpack")
        raise Gen3cInputError(f"{name} has shape {tuple(depth.shape)}: pass one (H, W) depth map (depth_map(depth, {name!r}) squeezes a (1, H, W) one)")
    depth, valid = fill_invalid_depth(depth, name, mask_invalid)
    if tuple(depth.shape) != tuple(size):
        (h0, w0), (h1, w1) = depth.shape, size
        if abs(h0 / w0 - h1 / w1) > 0.01 * (h1 / w1):
            turned = abs(w0 / h0 - h1 / w1) <= 0.01 * (h1 / w1)
            hint = (" (it is turned by 90°: photos are read upright, with their EXIF orientation applied; save the depth upright too)"
                    if turned else "")  # fmt: skip
            raise Gen3cInputError(
                f"{name} is {h0}×{w0} (H×W) but the image is {h1}×{w1}: their aspect ratios differ{hint}; pass the depth of this image"
            )
        note(f"{name} is {h0}×{w0} but the image is {h1}×{w1}: resizing the depth (nearest)", stacklevel=2)
        depth = resize_nearest(depth, size)
        valid = depth > 0
    return depth, valid
