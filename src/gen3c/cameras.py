"""Camera conventions: the one place they are defined.

Everything in gen3c uses these conventions, and only this module converts between them:

- **OpenCV camera**: x right, y down, z forward (the camera looks along +z).
- **Poses are world-to-camera** 4×4 matrices (``w2c``): ``X_cam = w2c @ X_world``.
- **Intrinsics** are 3×3 matrices in pixels of the image they belong to, with pixel centres at
  integer coordinates (pixel ``(u, v)`` covers ``[u - 0.5, u + 0.5]``), as GEN3C uses them.
- **Depth** is z-depth (the z coordinate in camera space), not distance along the ray.

The OpenGL / nerfstudio / Blender convention (x right, y up, z backward, camera-to-world) is
reached only through :func:`opencv_to_opengl` and :func:`opengl_to_opencv`, and nerfstudio's
pixel grid (pixel centres at half-integers) through :func:`intrinsics_from_nerfstudio`. Rotations as
quaternions are (w, x, y, z), viser's ``wxyz`` (:func:`matrix_to_quaternion`).

Functions take batched tensors with leading dimensions ``*B`` and validate shapes up front.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gen3c.errors import (
    Gen3cInputError,
    complex_refusal,
    describe_value,
    meta_refusal,
    note,
    noted,
    shown_value,
)

# Flipping y and z turns an OpenCV camera frame into an OpenGL one and back.
_CV_GL_FLIP = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


def _describe(value: object) -> str:
    # (not "a ndarray": errors.describe_value says "a numpy array of shape (3, 3)")
    return f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else describe_value(value)


def _real_number(value: object) -> float | None:
    """``value`` as a float; None where it is no real number (text, a bool, a complex number, None)."""
    if isinstance(value, (str, bytes, bool)) or (isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of several numbers, or a complex one
        return None


def _finite_number(value: object, what: str, fix: str) -> float:
    """``value`` (a Python or numpy number, a one-element tensor or array) as a finite float, or a
    one-line refusal naming ``what``: None or a text was Python's "unsupported operand type(s)"
    from inside the arithmetic, NaN a matrix of NaN."""
    number = _real_number(value)
    if number is None or not math.isfinite(number):
        raise Gen3cInputError(f"{what} is {shown_value(value)}: {fix}")
    return number


def _floating(tensor: Tensor) -> Tensor:
    """``tensor`` in a floating dtype (integers: float32), so a fractional scale or shift is not truncated."""
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def _check_batches(function: str, *arguments: tuple[str, Tensor | None, int]) -> None:
    """Refuse (name, tensor, trailing dims) arguments whose leading ``*B`` dims do not broadcast
    together (a tensor None is left out): 3 depth maps with 2 cameras were torch's "The size of
    tensor a (2) must match the size of tensor b (3) at non-singleton dimension 0"."""
    given = [(name, tuple(t.shape[: t.ndim - dims])) for name, t, dims in arguments if t is not None]
    try:
        torch.broadcast_shapes(*(batch for _, batch in given))
    except RuntimeError:
        shapes = ", ".join(f"{name} {batch}" for name, batch in given)
        raise Gen3cInputError(
            f"{function}'s batch dimensions do not pair up ({shapes}): pass one per item, or leave one out (a (3, 3) K serves every item)"
        ) from None


def _check_real(name: str, tensor: Tensor) -> None:
    """Refuse a complex or bool tensor as the numbers ``name`` (a matrix, points, depth): complex
    ones were torch's "not implemented for 'ComplexFloat'" from deep inside, bool ones torch's
    "Subtraction ... with a bool tensor is not supported" or, worse, taken as 0 and 1 (a bool K
    passed validate_intrinsics as fx = cx = 1)."""
    if tensor.is_complex():
        raise Gen3cInputError(complex_refusal(name, tensor.dtype))
    if tensor.dtype == torch.bool:
        raise Gen3cInputError(f"{name} is a bool tensor: pass real numbers (its .float(), if 0 and 1 are meant)")


def _check_square_matrices(name: str, matrices: object, size: int, symbol: str) -> None:
    """Refuse as ``name`` what is not a tensor of real (*B, size, size) matrices with values;
    ``symbol`` (K, w2c) stands for it in the fix."""
    if not isinstance(matrices, Tensor):
        raise Gen3cInputError(f"{name} are {_describe(matrices)}: pass a tensor (torch.as_tensor({symbol}))")
    if matrices.is_meta:  # was torch's "Tensor.item() cannot be called on meta tensors"
        raise Gen3cInputError(meta_refusal(name))
    _check_real(name, matrices)
    if matrices.shape[-2:] != (size, size):
        raise Gen3cInputError(f"{name} must be {size}×{size} matrices, got shape {tuple(matrices.shape)}")


def _check_last_dims(name: str, tensor: Tensor, dims: tuple[int, ...]) -> None:
    if not isinstance(tensor, Tensor):
        raise Gen3cInputError(f"{name} is {describe_value(tensor)}: pass a tensor (torch.as_tensor({name}))")
    _check_real(name, tensor)
    if tensor.shape[-len(dims) :] != dims:
        raise Gen3cInputError(f"{name} must have shape (*B, {', '.join(map(str, dims))}), got {tuple(tensor.shape)}")


# --------------------------------------------------------------------------------------------
# Intrinsics
# --------------------------------------------------------------------------------------------


def make_intrinsics(fx: float, fy: float, cx: float, cy: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """Build a (3, 3) pinhole intrinsics matrix in pixels.

    >>> make_intrinsics(500.0, 500.0, 320.0, 240.0)[0, 0].item()
    500.0
    """
    values = {"fx": fx, "fy": fy, "cx": cx, "cy": cy}
    for name, value in values.items():  # a text was torch's "too many dimensions 'str'"
        number = _real_number(value)
        if number is None:
            raise Gen3cInputError(f"make_intrinsics {name} is {describe_value(value)}: pass fx, fy, cx, cy as numbers of pixels, e.g. 500.0")
        if not math.isfinite(number):  # (was a matrix of NaN, refused only where a caller validated it)
            raise Gen3cInputError(f"make_intrinsics {name} is {number:g}: pass fx, fy, cx, cy as finite numbers of pixels, e.g. 500.0")
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=dtype)


def focal_from_fov(fov_degrees: float, size: int) -> float:
    """Focal length in pixels for a field of view in degrees spanning ``size`` pixels (one of
    π or less notes that it may be radians)."""
    given = fov_degrees
    fov_degrees = _real_number(fov_degrees)  # (a text, a bool or a complex number is no angle: Python's TypeError below before)
    if fov_degrees is None:
        raise Gen3cInputError(f"field of view {str(given)[:40]!r} is not a number: pass degrees between 0.01 and 179, e.g. 60")
    if not 0.01 <= fov_degrees <= 179.0:
        raise Gen3cInputError(f"field of view {fov_degrees}° is out of range: pass a value between 0.01 and 179 degrees")
    span = _real_number(size)  # (None, e.g. intrinsics_from_fov(60, h, None), was Python's "'<' not supported")
    if span is None or not 0 < span < math.inf:  # 0 gave a focal length of 0, a negative size a negative one
        raise Gen3cInputError(f"a field of view spans {shown_value(size)} pixels: pass the image's width or height, a positive number")
    if fov_degrees <= math.pi:  # a lens this long is rare; a field of view in radians is not
        note(
            f"field of view {fov_degrees:g}° is narrower than a long telephoto lens's: if it is in radians, pass "
            f"{math.degrees(fov_degrees):.4g} (degrees)",
            stacklevel=3,
        )
    return 0.5 * span / math.tan(math.radians(fov_degrees) / 2.0)


def fov_from_focal(focal: float, size: int) -> float:
    """Field of view in degrees spanned by ``size`` pixels at focal length ``focal`` (pixels)."""
    pixels, span = _real_number(focal), _real_number(size)
    if pixels is None or span is None:  # a text was math.isfinite's TypeError
        name, value = ("focal", focal) if pixels is None else ("size", size)
        raise Gen3cInputError(f"fov_from_focal {name} is {describe_value(value)}: pass a positive focal length and image size in pixels")
    if not (math.isfinite(pixels) and pixels > 0 and span > 0):
        raise Gen3cInputError(f"focal length {shown_value(focal)} px over {shown_value(size)} px has no field of view: pass a positive focal length and image size in pixels")
    return math.degrees(2.0 * math.atan(0.5 * span / pixels))


def intrinsics_from_fov(fov_degrees: float, height: int, width: int, axis: str = "horizontal") -> Tensor:
    """(3, 3) intrinsics with square pixels and the principal point at (W / 2, H / 2), as GEN3C's
    scripts put it (half a pixel from the centre (W − 1) / 2 of integer pixel centres).

    Args:
        fov_degrees: field of view along ``axis`` ("horizontal" spans the width, "vertical" the height).
        height, width: image size in pixels.
    """
    if axis not in ("horizontal", "vertical"):
        raise Gen3cInputError(f"intrinsics_from_fov axis {shown_value(axis)} is unknown: pass 'horizontal' (the fov spans the width) or 'vertical'")
    size = width if axis == "horizontal" else height
    f = focal_from_fov(fov_degrees, size)
    ((height, width),) = _check_sizes((height, width))  # the side the fov does not span too: a negative one gave a K off the image
    return make_intrinsics(f, f, width / 2.0, height / 2.0)


#: nerfstudio puts pixel (u, v)'s centre at (u + ½, v + ½) (its ``Cameras.get_image_coords``,
#: ``pixel_offset=0.5``, as COLMAP does); gen3c at (u, v). Its principal point is ours + ½.
NERFSTUDIO_PIXEL_OFFSET = 0.5


def intrinsics_from_nerfstudio(fx: float, fy: float, cx: float, cy: float) -> Tensor:
    """(3, 3) float64 intrinsics, in gen3c's convention, of nerfstudio's camera ``fx, fy, cx, cy``
    (``transforms.json``'s ``fl_x, fl_y, cx, cy``): the same rays, the principal point ½ px up and left.

    >>> intrinsics_from_nerfstudio(240.0, 240.0, 320.0, 240.0)[:2, 2].tolist()
    [319.5, 239.5]
    """
    for name, value in (("fx", fx), ("fy", fy), ("cx", cx), ("cy", cy)):  # (None was Python's TypeError from the shift)
        number = _real_number(value)
        if number is None:
            raise Gen3cInputError(f"intrinsics_from_nerfstudio {name} is {describe_value(value)}: pass fx, fy, cx, cy as numbers of pixels")
        if not math.isfinite(number):  # (named here, not as make_intrinsics' own argument)
            raise Gen3cInputError(f"intrinsics_from_nerfstudio {name} is {number:g}: pass fx, fy, cx, cy as finite numbers of pixels")
    return make_intrinsics(fx, fy, cx - NERFSTUDIO_PIXEL_OFFSET, cy - NERFSTUDIO_PIXEL_OFFSET, dtype=torch.float64)


def intrinsics_from_nerfstudio_fov(fov_degrees: float, height: int, width: int) -> Tensor:
    """(3, 3) float64 intrinsics of a nerfstudio ``camera_path.json`` camera: ``fov`` is vertical,
    in degrees, over ``height`` (``fx = fy = (height / 2) / tan(fov / 2)``, nerfstudio's
    ``three_js_perspective_camera_focal_length``), and the principal point is the image centre,
    ``(width / 2, height / 2)`` in nerfstudio's pixels (``camera_paths.get_path_from_json``).

    >>> intrinsics_from_nerfstudio_fov(90.0, 480, 640)[:2, 2].tolist()
    [319.5, 239.5]
    """
    f = focal_from_fov(fov_degrees, height)
    ((height, width),) = _check_sizes((height, width))  # (the width, which the fov does not span: None was Python's TypeError)
    return intrinsics_from_nerfstudio(f, f, width / 2.0, height / 2.0)


def lens_distortion_shift(K: Tensor, height: int, width: int, coefficients: tuple[float, ...]) -> float:
    """How far, in pixels, a lens with radial-tangential distortion ``coefficients``
    ``(k1, k2, k3, k4, p1, p2)`` (nerfstudio's ``distortion_params`` order, OpenCV's model) moves
    what the pinhole camera ``K`` (3, 3) sees: the largest shift over a 33 × 33 grid of the
    ``height`` × ``width`` image, its corners included.

    The pinhole's pixel shows the ray (x, y) = ((u − cx) / fx, (v − cy) / fy); the lens shows it at
    x·d + 2·p1·x·y + p2·(r + 2x²), y·d + 2·p2·x·y + p1·(r + 2y²), with r = x² + y² and
    d = 1 + k1·r + k2·r² + k3·r³ + k4·r⁴ (nerfstudio's ``camera_utils``). With k1 alone the
    shift at a corner (x, y) is fx·|k1|·r·√r for fx = fy:

    >>> round(lens_distortion_shift(make_intrinsics(100.0, 100.0, 49.5, 49.5), 100, 100, (0.1, 0, 0, 0, 0, 0)), 4)
    3.5355
    """
    K = _as_real(K, "lens_distortion_shift K")  # (a tensor, an array or nested lists)
    if K.shape != (3, 3):
        raise Gen3cInputError(f"lens_distortion_shift K must be one (3, 3) matrix, got shape {tuple(K.shape)}")
    validate_intrinsics(K, "lens_distortion_shift K")  # (fx = 0 divided by zero)
    ((height, width),) = _check_sizes((height, width))
    # nerfstudio's distortion_params is a (6,) tensor; as Python's numbers, a bool one is no numbers
    listed = coefficients.tolist() if isinstance(coefficients, (Tensor, np.ndarray)) and not getattr(coefficients, "is_meta", False) else coefficients
    values = [_real_number(c) for c in listed] if isinstance(listed, (tuple, list)) else []
    # (None, a text or 5 numbers were Python's unpacking and float() errors; NaN a shift of NaN)
    if len(values) != 6 or not all(v is not None and math.isfinite(v) for v in values):
        raise Gen3cInputError(
            f"lens_distortion_shift coefficients {shown_value(coefficients)} must be six finite numbers (k1, k2, k3, k4, p1, p2), "
            "nerfstudio's distortion_params"
        )
    k1, k2, k3, k4, p1, p2 = values
    v, u = torch.meshgrid(torch.linspace(-0.5, height - 0.5, 33, dtype=torch.float64), torch.linspace(-0.5, width - 0.5, 33, dtype=torch.float64), indexing="ij")
    fx, fy, cx, cy = (float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    x, y = (u - cx) / fx, (v - cy) / fy
    r = x * x + y * y
    d = 1.0 + r * (k1 + r * (k2 + r * (k3 + r * k4)))
    shift_x = x * (d - 1.0) + 2.0 * p1 * x * y + p2 * (r + 2.0 * x * x)
    shift_y = y * (d - 1.0) + 2.0 * p2 * x * y + p1 * (r + 2.0 * y * y)
    return float(torch.hypot(fx * shift_x, fy * shift_y).max())


def scale_intrinsics(K: Tensor, scale_x: float, scale_y: float) -> Tensor:
    """Intrinsics of an image resized by ``(scale_x, scale_y)``.

    GEN3C scales fx, cx by the width ratio and fy, cy by the height ratio (a plain
    multiplication); we do the same so our renders line up with its model.

    Args:
        K: (*B, 3, 3); integer matrices are computed in float32.
    Returns:
        (*B, 3, 3), floating point.
    """
    _check_last_dims("K", K, (3, 3))
    fix = "pass the new size over the old along each axis, a number > 0 (e.g. 0.5 for half the width)"
    scales = [_finite_number(v, f"scale_intrinsics {name}", fix) for name, v in (("scale_x", scale_x), ("scale_y", scale_y))]
    for name, scale in zip(("scale_x", "scale_y"), scales, strict=True):
        if scale <= 0:  # 0 gave a focal length of 0, a negative one a mirrored camera
            raise Gen3cInputError(f"scale_intrinsics {name} is {scale:g}: {fix}")
    K = _floating(K)
    S = torch.diag(torch.tensor([*scales, 1.0], dtype=K.dtype, device=K.device))
    return S @ K


def _check_sizes(*sizes: tuple[int, int]) -> list[tuple[float, float]]:
    """Refuse an image size (H, W) that is not two positive numbers (a 0 divided by zero); return
    each as two Python numbers (a tensor's or numpy's too: ``torch.tensor([H, W])``, whose sides
    were refused, and whose 0-d tensors made ``resize_crop_plan``'s sizes tensors)."""
    checked = []
    for size in sizes:
        if isinstance(size, Tensor) and size.ndim == 1 and not size.is_meta:
            size = size.tolist()  # (a bool or complex one gives no real numbers: refused below)
        # (None was Python's "object of type 'NoneType' has no len()"; a numpy array of two sides is a size, as it was)
        if not isinstance(size, (tuple, list)) and not (isinstance(size, np.ndarray) and size.ndim == 1):
            raise Gen3cInputError(f"image size {shown_value(size)} must be (height, width) in pixels, two positive numbers")
        sides = [side.item() if isinstance(side, (Tensor, np.generic)) and side.ndim == 0 and not getattr(side, "is_meta", False) else side for side in size]
        if len(sides) != 2 or not all(isinstance(n, numbers.Real) and not isinstance(n, bool) and 0 < n < math.inf for n in sides):
            raise Gen3cInputError(f"image size {tuple(size)!r} must be (height, width) in pixels, two positive numbers")
        checked.append(tuple(sides))
    return checked


def _whole_side(value: object) -> int:
    """An image side as a Python int (numpy integers and 0-d integer tensors too); TypeError for
    anything else, a bool included (``operator.index(True)`` is 1: a 1-pixel side, taken silently)."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, Tensor) and value.dtype == torch.bool):
        raise TypeError("a bool is no number of pixels")
    return operator.index(value)


def whole_image_size(value: object, name: str) -> tuple[int, int]:
    """``value``, an image's (H, W) given as an argument, as two Python ints ≥ 1 (numpy integers and
    0-d integer tensors too), or a one-line refusal naming ``name``: None, one number, a text, a
    bool, or 12.5 pixels (which ``int()`` truncated without a word) are no size."""
    try:
        height, width = (_whole_side(n) for n in value)
    except (TypeError, ValueError):  # (not two whole numbers)
        height = width = 0
    if isinstance(value, str) or min(height, width) < 1:
        raise Gen3cInputError(f"{name} {shown_value(value)} must be the image's (height, width), two whole numbers of pixels ≥ 1")
    return height, width


def resize_intrinsics(K: Tensor, old_size: tuple[int, int], new_size: tuple[int, int]) -> Tensor:
    """Intrinsics after resizing an image from ``old_size`` to ``new_size`` (both (H, W))."""
    (h0, w0), (h1, w1) = _check_sizes(old_size, new_size)
    return scale_intrinsics(K, w1 / w0, h1 / h0)


def crop_intrinsics(K: Tensor, top: float, left: float) -> Tensor:
    """Intrinsics after cropping ``top`` rows and ``left`` columns off an image: the principal
    point shifts, the focal lengths stay.

    Args:
        K: (*B, 3, 3); integer matrices are computed in float32.
    """
    _check_last_dims("K", K, (3, 3))
    fix = "pass the rows and columns cropped off as numbers of pixels (negative: padding)"
    top, left = (_finite_number(v, f"crop_intrinsics {name}", fix) for name, v in (("top", top), ("left", left)))
    out = _floating(K).clone()
    out[..., 0, 2] -= left
    out[..., 1, 2] -= top
    return out


def resize_crop_plan(old_size: tuple[int, int], new_size: tuple[int, int]) -> tuple[tuple[int, int], int, int]:
    """How to resize-then-centre-crop an image of ``old_size`` to ``new_size`` keeping the
    aspect ratio (the image is scaled to cover the target, then the excess is cropped).

    Returns:
        ``((resized_h, resized_w), top, left)``.
    """
    (h0, w0), (h1, w1) = _check_sizes(old_size, new_size)
    scale = max(h1 / h0, w1 / w0)
    rh, rw = max(h1, round(h0 * scale)), max(w1, round(w0 * scale))
    return (rh, rw), (rh - h1) // 2, (rw - w1) // 2


def resize_crop_intrinsics(K: Tensor, old_size: tuple[int, int], new_size: tuple[int, int]) -> Tensor:
    """Intrinsics after :func:`resize_crop_plan`'s resize + centre crop."""
    (rh, rw), top, left = resize_crop_plan(old_size, new_size)
    return crop_intrinsics(resize_intrinsics(K, old_size, (rh, rw)), top, left)


def validate_intrinsics(K: Tensor, name: str = "intrinsics") -> Tensor:
    """Check that ``K`` (*B, 3, 3) is a finite pinhole matrix with positive focal lengths."""
    _check_square_matrices(name, K, 3, "K")
    if not torch.isfinite(K).all():
        raise Gen3cInputError(f"{name} contain NaN or infinite values: pass finite fx, fy, cx, cy")
    if (K[..., 0, 0] <= 0).any() or (K[..., 1, 1] <= 0).any():
        raise Gen3cInputError(f"{name} have a focal length ≤ 0: fx and fy must be positive pixels")
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=K.dtype, device=K.device)
    if not torch.allclose(K[..., 2, :], bottom.expand_as(K[..., 2, :])):
        # MATLAB's IntrinsicMatrix (and some exporters) store K transposed: [fx 0 0; s fy 0; cx cy 1].
        transposed = torch.allclose(K[..., :, 2], bottom.expand_as(K[..., :, 2]))
        fix = "K.T" if K.ndim == 2 else "each matrix transposed, K.transpose(-1, -2)"  # (.T of a stack reverses all its axes)
        hint = f": they have it as their last column, so they look transposed (MATLAB's IntrinsicMatrix layout): pass {fix}" if transposed else ""
        raise Gen3cInputError(f"{name} must have [0, 0, 1] as their last row{hint}")
    return K


#: A principal point this close to an image's corner (pixels) is a mistake (:func:`check_intrinsics_fit`).
CORNER_PIXELS = 2.0


def check_intrinsics_fit(K: Tensor, height: int, width: int, name: str = "intrinsics", frame_offset: int = 0) -> Tensor:
    """Check that pixel intrinsics ``K``, (3, 3) or a (T, 3, 3) stack, can belong to an image of
    ``height`` × ``width``.

    Three mistakes pass :func:`validate_intrinsics` and give a wildly wrong camera: normalised
    intrinsics (fractions of the image size, as MoGe returns them), intrinsics of another image
    size (a video downscaled with its camera file kept) and a principal point at 0 (centred
    pixel coordinates). Each puts the principal point where no real camera has it: within
    :data:`CORNER_PIXELS` of a corner (checked for images over 16 pixels a side), or outside the
    image. A stack's error names its first bad frame, counted from ``frame_offset`` (the index of
    ``K[0]`` in its file).

    Raises:
        Gen3cInputError: one line saying which mistake it looks like and how to fix it.
    """
    if not isinstance(K, Tensor):  # a list was AttributeError: 'list' object has no attribute 'ndim'
        raise Gen3cInputError(f"{name} are {_describe(K)}: pass a tensor (torch.as_tensor(K))")
    if K.ndim not in (2, 3) or tuple(K.shape[-2:]) != (3, 3):
        raise Gen3cInputError(f"{name} must be one 3×3 matrix or a (T, 3, 3) stack, got shape {tuple(K.shape)}")
    validate_intrinsics(K, name)
    stack = K.reshape(-1, 3, 3).double()
    fx, fy, cx, cy = stack[:, 0, 0], stack[:, 1, 1], stack[:, 0, 2], stack[:, 1, 2]
    normalised = (torch.maximum(cx, cy) <= 1.0) & (torch.maximum(fx, fy) <= 10.0) & (min(height, width) > 8)
    outside = (cx < 0) | (cx > width) | (cy < 0) | (cy > height)
    checked = min(height, width) > 16  # (a few pixels are much of a tiny test image)
    far_corner = (cx >= width - CORNER_PIXELS) & (cy >= height - CORNER_PIXELS) & ~outside & checked
    near_corner = (cx <= CORNER_PIXELS) & (cy <= CORNER_PIXELS) & ~outside & ~normalised & checked
    for bad, problem in (
        (normalised, "look normalised (fractions of the image size): pass pixels of the {w}×{h} (W×H) image, i.e. fx, cx × {w} and fy, cy × {h}"),
        (outside, "put the principal point outside the {w}×{h} (W×H) image: pass intrinsics in pixels of this image "
                  "(these look made for another size)"),
        (far_corner, "put the principal point at the bottom-right corner of the {w}×{h} (W×H) image: these look made for an image "
                     "twice its size (a video downscaled, its camera file kept): pass intrinsics in pixels of this image (fx, fy, cx, cy × ½)"),
        (near_corner, "put the principal point at the top-left corner of the {w}×{h} (W×H) image: gen3c's cx, cy count pixels from "
                      "that corner, not from the image's centre: add {half_w:g} to cx and {half_h:g} to cy"),
    ):  # fmt: skip
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            where = f" (frame {frame_offset + i})" if K.ndim == 3 and len(stack) > 1 else ""
            numbers = f"fx={float(fx[i]):g}, fy={float(fy[i]):g}, cx={float(cx[i]):g}, cy={float(cy[i]):g}"
            raise Gen3cInputError(f"{name}{where} ({numbers}) {problem.format(w=width, h=height, half_w=width / 2, half_h=height / 2)}")
    return K


#: How far (as a share) a principal point may sit from the centre, along the same diagonal on both
#: axes, before :func:`note_scaled_intrinsics` takes it for the centre of another frame size.
SCALED_CENTRE = 0.2


def note_scaled_intrinsics(
    K: Tensor, height: int, width: int, name: str = "intrinsics", frame_offset: int = 0, resized: str = "the video before it was resized"
) -> None:
    """Note intrinsics, (3, 3) or (T, 3, 3), whose principal point is the centre of a frame of
    another size: (2·cx + 1)/W and (2·cy + 1)/H agree within 2 % at a factor s ≥ 1 + :data:`SCALED_CENTRE`
    or ≤ 1 − :data:`SCALED_CENTRE` — intrinsics of 1920×1080 frames on the same video resized to
    1280×720 (s = 1.5), or of 720p frames on 1080p ones (s ≈ 0.67). :func:`check_intrinsics_fit`
    refuses only a principal point outside the image or at its corner (s ≥ 2). A note, not a
    refusal: a crop can keep a camera's centre there. The note names the first such frame and asks
    whether they were made for ``resized`` ("the image before it was resized", for a photo)."""
    stack = K.reshape(-1, 3, 3).double()
    sx, sy = (2 * stack[:, 0, 2] + 1) / width, (2 * stack[:, 1, 2] + 1) / height  # the centre of n pixels is (n − 1) / 2
    same = (sx - sy).abs() <= 0.02 * torch.maximum(sx, sy)
    scaled = same & ((torch.minimum(sx, sy) >= 1 + SCALED_CENTRE) | (torch.maximum(sx, sy) <= 1 - SCALED_CENTRE)) & (sx > 0)
    if bool(scaled.any()):
        i = int(scaled.nonzero()[0, 0])
        s = float(sx[i] + sy[i]) / 2
        where = f" (frame {frame_offset + i})" if K.ndim == 3 and len(stack) > 1 else ""
        note(
            f"{name}{where} (cx={float(stack[i, 0, 2]):g}, cy={float(stack[i, 1, 2]):g}) put the principal point at the centre of a "
            f"{s * width:.0f}×{s * height:.0f} image, not of this {width}×{height} one: made for {resized}? "
            f"then scale fx, fy, cx, cy by {1 / s:.4g}",
            stacklevel=2,
        )


#: How far fx / fy may be from 1 for a camera's pixels to count as square (a calibration's are
#: within a few tenths of a percent; ``gen3c depth --resolution`` of a turned shape, 4:3 to 3:4, gives 1.78).
SQUARE_PIXELS = 0.01
#: How near (as a share of each side) a principal point must be to the centre of the image turned
#: a quarter for :func:`centred_for_turned`, as :func:`note_scaled_intrinsics` takes a centre.
TURNED_CENTRE = 0.02


def centred_for_turned(K: Tensor, height: int, width: int) -> bool:
    """Whether (3, 3) intrinsics of square pixels put the principal point at the centre of the
    ``height`` × ``width`` image turned a quarter (of ``width`` × ``height`` pixels): a camera made
    for the other orientation (a turned photo's calibration, or ``intrinsics_from_fov(fov, *pil.size)``,
    PIL's size being (W, H)), which passes :func:`check_intrinsics_fit`. Never for a near-square
    image, whose two centres are too close to tell apart."""
    if abs(height / width - 1) <= 0.1:
        return False
    fx, fy, cx, cy = (float(K[i, j]) for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
    if abs(fx / fy - 1) > SQUARE_PIXELS:
        return False
    # the centre of n pixels is (n − 1) / 2; the turned image's is ((H − 1) / 2, (W − 1) / 2)
    return abs(2 * cx + 1 - height) <= TURNED_CENTRE * height and abs(2 * cy + 1 - width) <= TURNED_CENTRE * width


def note_swapped_intrinsics(K: Tensor, height: int, width: int, name: str = "intrinsics") -> None:
    """Note (3, 3) intrinsics in memory made for the image with height and width swapped
    (:func:`centred_for_turned`): ``intrinsics_from_fov(60, *pil_image.size)`` gave a camera whose
    principal point sat far from the centre, and the video was made from it without a word. A note,
    not a refusal, as for a camera file: a crop can put a camera's centre there. Silent where a
    reader noted the same camera already (its file's, :mod:`gen3c.io.intrinsics`)."""
    if not centred_for_turned(K, height, width):
        return
    said = f"put the principal point at the centre of a {height}×{width} image, not of this {width}×{height} one"
    if noted(said):
        return
    note(
        f"{name} (cx={float(K[0, 2]):g}, cy={float(K[1, 2]):g}) {said}: made with height and width swapped (PIL's image.size "
        f"is (W, H); intrinsics_from_fov takes (fov, H, W))? then pass this image's, e.g. intrinsics_from_fov(fov, {height}, {width})",
        stacklevel=3,
    )


# --------------------------------------------------------------------------------------------
# Poses
# --------------------------------------------------------------------------------------------


def invert_pose(T: Tensor) -> Tensor:
    """Inverse of rigid 4×4 transforms (w2c ↔ c2w) without a general matrix inverse.

    Args:
        T: (*B, 4, 4) with an orthonormal rotation block.
    Returns:
        (*B, 4, 4), floating point (integer poses: float32, as everywhere in this module).
    """
    _check_last_dims("T", T, (4, 4))
    T = _floating(T)  # (integer poses came back as integers, where this module's other functions give float32)
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    out = torch.zeros_like(T)
    Rt = R.transpose(-1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3:] = -Rt @ t
    out[..., 3, 3] = 1.0
    return out


def camera_centers(w2c: Tensor) -> Tensor:
    """Camera centres in world space, (*B, 3), of world-to-camera poses (*B, 4, 4); integer
    poses give float32 centres."""
    _check_last_dims("w2c", w2c, (4, 4))
    w2c = _floating(w2c)
    R = w2c[..., :3, :3]
    t = w2c[..., :3, 3:]
    return (-R.transpose(-1, -2) @ t)[..., 0]


def _unit(v: Tensor) -> Tensor:
    """``v / |v|`` along the last dimension, exactly unit however short ``v`` is (torch's
    ``normalize`` divides by at least 1e-12: a shorter vector came out shorter than 1); 0 stays 0."""
    return v / v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)


def look_at(eye: Tensor, target: Tensor, up: Tensor | None = None) -> Tensor:
    """World-to-camera pose of an OpenCV camera at ``eye`` looking at ``target``.

    The camera's y axis (down in the image) points away from ``up`` (default world −y, i.e.
    the world shares the OpenCV "y down" convention of the single-image source camera).

    Args:
        eye, target: (*B, 3) tensors; a (3,) one is shared by every camera.
        up: (*B, 3), (3,) or None.
    Returns:
        (*B, 4, 4) w2c, float64 where an input is float64, else float32 (integer and half inputs too).

    >>> eyes = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.0, 0.2]])
    >>> look_at(eyes, torch.tensor([0.0, 0.0, 2.0])).shape     # a path of 2 cameras
    torch.Size([2, 4, 4])

    Raises:
        Gen3cInputError: a NaN or infinite coordinate, ``eye`` equal to ``target``, or a view
            direction along ``up`` (no camera orientation follows from them).
    """
    _check_last_dims("eye", eye, (3,))
    _check_last_dims("target", target, (3,))
    if up is None:
        # (in a floating dtype: −1 in an unsigned eye's was "value cannot be converted to type uint8 without overflow")
        up = torch.tensor([0.0, -1.0, 0.0], dtype=torch.promote_types(eye.dtype, torch.float32), device=eye.device).expand_as(eye)
    _check_last_dims("up", up, (3,))
    for name, value in (("eye", eye), ("target", target), ("up", up)):
        if value.is_meta:  # was torch's "Tensor.item() cannot be called on meta tensors"
            raise Gen3cInputError(f"look_at {meta_refusal(name)}")
        if not bool(torch.isfinite(value).all()):  # NaN slips past the check below and gave a NaN pose
            raise Gen3cInputError(f"look_at {name} contains NaN or infinite values: pass finite world coordinates")
    # One eye with many targets (or a (3,) up) was torch's "linalg.cross: inputs must have the
    # same number of dimensions"; an integer eye failed in normalize, a float64 target with a
    # float32 eye in a matmul.
    dtype = torch.promote_types(torch.promote_types(eye.dtype, target.dtype), torch.promote_types(up.dtype, torch.float32))
    try:
        eye, target, up = (v.to(dtype) for v in torch.broadcast_tensors(eye, target, up))
    except RuntimeError:
        raise Gen3cInputError(
            f"look_at eye {tuple(eye.shape)}, target {tuple(target.shape)} and up {tuple(up.shape)} do not pair up: "
            "pass (*B, 3) for each, or (3,) for one shared by all"
        ) from None
    if bool((up.norm(dim=-1) == 0).any()):  # was "looks from eye to target along up, or eye equals target"
        raise Gen3cInputError("look_at up is (0, 0, 0): pass the world's up direction, e.g. (0, -1, 0) (OpenCV's y points down)")
    direction = target - eye
    side = torch.linalg.cross(direction, up)
    if (side.norm(dim=-1) <= 1e-6 * direction.norm(dim=-1) * up.norm(dim=-1)).any():
        raise Gen3cInputError("look_at: a camera looks from eye to target along up, or eye equals target: move the target or pass another up")
    forward, right = _unit(direction), _unit(side)
    down = torch.linalg.cross(forward, right)
    R = torch.stack([right, down, forward], dim=-2)  # rows: camera axes in world coords
    w2c = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype, device=eye.device)
    w2c[..., :3, :3] = R
    w2c[..., :3, 3] = -(R @ eye[..., :, None])[..., 0]
    w2c[..., 3, 3] = 1.0
    return w2c


def gen3c_look_at(position: Tensor, target: Tensor) -> Tensor:
    """GEN3C's look-at offset matrix A (``camera_utils.py``), reproduced exactly.

    ``f = normalise(target − p)``, ``r = normalise((0, 1, 0) × f)``, ``u = f × r``; the rotation
    rows are r, u, f and the translation column is ``−p`` — *not* ``−R p``. Under rotation this
    places the camera centre at ``−Rᵀ(−p) = Rᵀ p`` rather than at ``p``; GEN3C's presets are
    defined by this matrix, so ours use it too.

    Args:
        position: (*B, 3) offsets pᵢ.
        target: (*B, 3) look-at targets; a (3,) one is shared by every offset.
    Returns:
        (*B, 4, 4) offset matrices Aᵢ, in the inputs' common floating dtype (integers: float32);
        the frame's pose is ``Aᵢ @ W₀``.
    """
    _check_last_dims("position", position, (3,))  # an array was AttributeError: 'numpy.ndarray' object has no attribute 'norm'
    _check_last_dims("target", target, (3,))
    # Integer offsets failed in the normalisation (vector_norm's "Expected a floating point" error).
    dtype = torch.promote_types(torch.promote_types(position.dtype, target.dtype), torch.float32)
    try:
        position, target = (v.to(dtype) for v in torch.broadcast_tensors(position, target))
    except RuntimeError:
        raise Gen3cInputError(
            f"gen3c_look_at position {tuple(position.shape)} and target {tuple(target.shape)} do not pair up: pass (*B, 3) for each, or (3,) for one shared by all"
        ) from None
    f = _unit(target - position)
    y = torch.tensor([0.0, 1.0, 0.0], dtype=position.dtype, device=position.device).expand_as(f)
    r = _unit(torch.linalg.cross(y, f))  # (an 'up' path 1e13 long: |y × f| ≈ 1e-13)
    u = torch.linalg.cross(f, r)
    A = torch.zeros(*position.shape[:-1], 4, 4, dtype=position.dtype, device=position.device)
    A[..., 0, :3] = r
    A[..., 1, :3] = u
    A[..., 2, :3] = f
    A[..., :3, 3] = -position
    A[..., 3, 3] = 1.0
    return A


def opencv_to_opengl(w2c: Tensor) -> Tensor:
    """OpenCV world-to-camera (*B, 4, 4) → OpenGL/nerfstudio camera-to-world (*B, 4, 4)
    (integer poses: float32, as :func:`invert_pose`)."""
    _check_last_dims("w2c", w2c, (4, 4))
    w2c = _floating(w2c)
    return invert_pose(w2c) @ _CV_GL_FLIP.to(w2c)


def opengl_to_opencv(c2w_gl: Tensor) -> Tensor:
    """OpenGL/nerfstudio camera-to-world (*B, 4, 4) → OpenCV world-to-camera (*B, 4, 4)
    (integer poses: float32, as :func:`invert_pose`)."""
    _check_last_dims("c2w_gl", c2w_gl, (4, 4))
    c2w_gl = _floating(c2w_gl)
    return invert_pose(c2w_gl @ _CV_GL_FLIP.to(c2w_gl))


def rotation_angle_degrees(R_a: Tensor, R_b: Tensor) -> Tensor:
    """Geodesic angle (degrees) between rotations (*B, 3, 3), in their common floating dtype (integers: float32).

    ``atan2(sin θ, cos θ)`` of the relative rotation (sin θ from its skew part, cos θ from its
    trace): arccos of the trace alone lost small angles, 0° for anything under ~0.03° in float32.
    """
    _check_last_dims("R_a", R_a, (3, 3))
    _check_last_dims("R_b", R_b, (3, 3))
    # A float32 and a float64 rotation were matmul's "expected m1 and m2 to have the same dtype",
    # integer ones (a permutation) vector_norm's "Expected a floating point" error.
    dtype = torch.promote_types(torch.promote_types(R_a.dtype, R_b.dtype), torch.float32)
    R = R_a.to(dtype).transpose(-1, -2) @ R_b.to(dtype)
    cos = (R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    skew = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    return torch.rad2deg(torch.atan2(skew.norm(dim=-1) / 2.0, cos))


def validate_poses(w2c: Tensor, name: str = "camera poses", atol: float = 1e-3, frame_offset: int = 0) -> Tensor:
    """Check that (*B, 4, 4) poses are finite rigid transforms (orthonormal rotation, det +1).

    A (T, 4, 4) stack's error names its first bad frame, counted from ``frame_offset`` (the
    index of ``w2c[0]`` in its file, for a clip read from a starting frame)."""
    _check_square_matrices(name, w2c, 4, "w2c")

    def where(bad: Tensor) -> str:
        return f" (frame {frame_offset + int(bad.nonzero()[0, 0])})" if bad.ndim == 1 and len(bad) > 1 else ""

    one = w2c.ndim == 2  # one matrix: "is", "its"
    finite = torch.isfinite(w2c).flatten(-2).all(-1)
    if not bool(finite.all()):
        raise Gen3cInputError(f"{name} {'contains' if one else 'contain'} NaN or infinite values{where(~finite)}")
    R = w2c[..., :3, :3].double()
    eye = torch.eye(3, dtype=R.dtype, device=R.device).expand_as(R)
    off = (R @ R.transpose(-1, -2) - eye).abs().flatten(-2).amax(-1)
    rigid = (off <= atol) & (torch.linalg.det(R) >= 0)
    if not bool(rigid.all()):
        # A rotation written with 2 or 3 decimals is a little off, not scaled or sheared.
        first = int((~rigid).reshape(-1).nonzero()[0, 0])
        rounded = bool(torch.linalg.det(R.reshape(-1, 3, 3)[first]) > 0) and float(off.reshape(-1)[first]) < 0.02
        fix = "take any scale, shear or mirroring out of it"
        if rounded:
            fix += f"; it is only {float(off.reshape(-1)[first]):.2g} off, as a rotation rounded to 2 or 3 decimals is: then write it with 6 or more"
        raise Gen3cInputError(f"{name} {'is' if one else 'are'} not rigid{where(~rigid)}: the 3×3 block must be a rotation (orthonormal, det +1): {fix}")
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=w2c.dtype, device=w2c.device)
    last_row = ((w2c[..., 3, :] - bottom).abs() <= atol).all(-1)
    if not bool(last_row.all()):
        # Column-major exports (OpenGL, glm, Blender's matrix read by columns) hold the translation in the last row.
        first = int((~last_row).reshape(-1).nonzero()[0, 0])
        transposed = bool(((w2c.reshape(-1, 4, 4)[first, :, 3] - bottom).abs() <= atol).all())
        whose = "its" if one else "that frame's"
        hint = f": [0, 0, 0, 1] is {whose} last column, so it looks transposed (column-major): transpose {'it' if one else 'each matrix'}" if transposed else ""
        raise Gen3cInputError(f"{name} must have [0, 0, 0, 1] as {'its' if one else 'their'} last row{where(~last_row)}{hint}")
    return w2c


# --------------------------------------------------------------------------------------------
# Rotations as quaternions (w, x, y, z): viser's ``wxyz`` and the keyframe spline's
# --------------------------------------------------------------------------------------------


def matrix_to_quaternion(R: Tensor) -> Tensor:
    """Rotation matrices → unit quaternions (w, x, y, z) with w ≥ 0.

    Shepperd's method: of 4w², 4x², 4y², 4z² (each read off the diagonal) the largest is
    divided by, so rotations near 180° (w ≈ 0) stay as accurate as small ones.

    Args:
        R: (*B, 3, 3) rotations (the result is normalised, so near-orthonormal float32 input is fine).
    Returns:
        (*B, 4) float64.
    """
    _check_last_dims("R", R, (3, 3))
    R = R.to(torch.float64)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    # Row k is 4·q_k·q, for q_k = w, x, y, z: each row is q up to scale; the largest q_k² is used.
    rows = torch.stack(
        [
            torch.stack([1 + m00 + m11 + m22, R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1),
            torch.stack([R[..., 2, 1] - R[..., 1, 2], 1 + m00 - m11 - m22, R[..., 0, 1] + R[..., 1, 0], R[..., 0, 2] + R[..., 2, 0]], -1),
            torch.stack([R[..., 0, 2] - R[..., 2, 0], R[..., 0, 1] + R[..., 1, 0], 1 - m00 + m11 - m22, R[..., 1, 2] + R[..., 2, 1]], -1),
            torch.stack([R[..., 1, 0] - R[..., 0, 1], R[..., 0, 2] + R[..., 2, 0], R[..., 1, 2] + R[..., 2, 1], 1 - m00 - m11 + m22], -1),
        ],
        -2,
    )  # (*B, 4, 4)
    best = rows.diagonal(dim1=-2, dim2=-1).argmax(-1)
    q = torch.gather(rows, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    q = torch.nn.functional.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Quaternions (w, x, y, z) → rotation matrices; q and −q give the same rotation.

    Args:
        q: (*B, 4), finite and not zero; normalised here.
    Returns:
        (*B, 3, 3) float64.
    """
    _check_last_dims("q", q, (4,))
    norm = q.to(torch.float64).norm(dim=-1)
    # normalize() leaves a zero quaternion zero, and 1 − 2·0 made it the identity, silently.
    if not bool((torch.isfinite(norm) & (norm > 1e-12)).all()):
        raise Gen3cInputError("quaternion_to_matrix q has a zero, NaN or infinite quaternion: pass (w, x, y, z) of a rotation, e.g. (1, 0, 0, 0)")
    w, x, y, z = torch.nn.functional.normalize(q.to(torch.float64), dim=-1).unbind(-1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def quaternion_slerp(q0: Tensor, q1: Tensor, t: Tensor | float) -> Tensor:
    """Spherical linear interpolation along the shorter arc (q1 or −q1, whichever is nearer q0).

    Args:
        q0, q1: (*B, 4) quaternions (w, x, y, z), normalised here.
        t: (*B) or a float; 0 gives q0, 1 gives ±q1.
    Returns:
        (*B, 4) float64 unit quaternions, on ``q0``'s device.
    """
    _check_last_dims("q0", q0, (4,))  # an array was AttributeError: 'numpy.ndarray' object has no attribute 'to'
    _check_last_dims("q1", q1, (4,))
    q0 = torch.nn.functional.normalize(q0.to(torch.float64), dim=-1)
    q1 = torch.nn.functional.normalize(q1.to(torch.float64), dim=-1)
    if not isinstance(t, (Tensor, np.ndarray)) and _real_number(t) is None:  # (None, a text: torch's raw TypeError)
        raise Gen3cInputError(f"quaternion_slerp t is {describe_value(t)}: pass a number or a tensor of them, 0 for q0 and 1 for q1")
    if (t.dtype == torch.bool or t.is_complex()) if isinstance(t, Tensor) else isinstance(t, np.ndarray) and t.dtype.kind in "bc":
        raise Gen3cInputError(f"quaternion_slerp t holds {str(t.dtype).removeprefix('torch.')} values: pass real numbers, 0 for q0 and 1 for q1")  # (bool ones were taken as 0 and 1)
    # A float t was a CPU tensor of shape (1,), which no CUDA q0 mixes with.
    t = torch.as_tensor(t, dtype=torch.float64, device=q0.device)[..., None]
    for name, value in (("q0", q0), ("q1", q1), ("t", t)):  # (each gave a NaN quaternion without a word)
        if not value.is_meta and not bool(torch.isfinite(value).all()):  # (a meta tensor holds no values to check)
            raise Gen3cInputError(f"quaternion_slerp {name} holds NaN or infinite values: pass finite (w, x, y, z) quaternions and t (0 for q0, 1 for q1)")
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    theta = torch.arccos(dot.abs().clamp(max=1.0))
    sin = torch.sin(theta)
    close = sin < 1e-6  # nearly equal: the chord is the arc, and sin θ would divide by ~0
    safe = torch.where(close, torch.ones_like(sin), sin)
    w0 = torch.where(close, 1 - t, torch.sin((1 - t) * theta) / safe)
    w1 = torch.where(close, t, torch.sin(t * theta) / safe)
    return torch.nn.functional.normalize(w0 * q0 + w1 * q1, dim=-1)


# --------------------------------------------------------------------------------------------
# Projection
# --------------------------------------------------------------------------------------------


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> Tensor:
    """Homogeneous pixel centres (H, W, 3): ``[u, v, 1]`` with u the column, v the row.
    ``height`` and ``width`` are whole numbers ≥ 0 (Python's, numpy's or a 0-d integer tensor)."""
    for name, size in (("height", height), ("width", width)):
        # None and texts were torch's arange() argument error; 2.5 gave 3 rows, -1 torch's "upper bound and lower bound inconsistent"
        try:
            whole = operator.index(size) >= 0 and not isinstance(size, bool)
        except TypeError:
            whole = False
        if not whole:
            raise Gen3cInputError(f"pixel_grid {name} is {shown_value(size)}: pass the image's size in pixels, a whole number ≥ 0")
    v, u = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    return torch.stack([u, v, torch.ones_like(u)], dim=-1)


def unproject_depth(depth: Tensor, K: Tensor, w2c: Tensor | None = None) -> Tensor:
    """Lift z-depth maps to 3D points: ``X_cam = depth · K⁻¹ [u, v, 1]ᵀ``, ``X_world = w2c⁻¹ X_cam``.

    Args:
        depth: (*B, H, W) z-depth.
        K: (*B, 3, 3) intrinsics in pixels (:func:`validate_intrinsics`: finite, fx, fy > 0).
        w2c: (*B, 4, 4) or None (points stay in camera space).

        The ``*B`` of the three broadcast together (one K for a batch of depth maps); K and w2c
        are moved to ``depth``'s device.
    Returns:
        (*B, H, W, 3) points, in the common dtype of the inputs (integers only: float32), on
        ``depth``'s device.
    """
    _check_last_dims("K", K, (3, 3))
    # A zero focal length made K⁻¹ torch's singular-matrix error, a negative one mirrored the points.
    validate_intrinsics(K, "K")
    if not isinstance(depth, Tensor) or depth.ndim < 2:
        raise Gen3cInputError(f"depth must be a (*B, H, W) tensor, got {_describe(depth)}")
    _check_real("depth", depth)  # (a mask passed as depth was points at depth 0 and 1)
    if w2c is not None:
        _check_last_dims("w2c", w2c, (4, 4))
    _check_batches("unproject_depth", ("depth", depth, 2), ("K", K, 2), ("w2c", w2c, 2))
    dtype = torch.promote_types(depth.dtype, K.dtype if w2c is None else torch.promote_types(K.dtype, w2c.dtype))
    dtype = torch.promote_types(dtype, torch.float32)  # all-integer inputs: K⁻¹ needs a float
    # K and w2c join depth's device (K built on the CPU, depth on a GPU was torch's "Expected all
    # tensors to be on the same device"), as Cameras keeps K on its poses' device.
    depth, K = depth.to(dtype), K.to(depth.device, dtype)
    w2c = None if w2c is None else w2c.to(depth.device, dtype)
    H, W = depth.shape[-2:]
    rays = pixel_grid(H, W, device=depth.device, dtype=depth.dtype) @ torch.linalg.inv(K).transpose(-1, -2)[..., None, :, :]
    points = rays * depth[..., None]
    if w2c is None:
        return points
    c2w = invert_pose(w2c)
    return points @ c2w[..., None, :3, :3].transpose(-1, -2) + c2w[..., None, None, :3, 3]


def project_points(points: Tensor, K: Tensor, w2c: Tensor) -> tuple[Tensor, Tensor]:
    """Project world points into cameras.

    Args:
        points: (*B, N, 3) world points.
        K: (*B, 3, 3) intrinsics in pixels (:func:`validate_intrinsics`: finite, fx, fy > 0).
        w2c: (*B, 4, 4).

        The ``*B`` of the three broadcast together (one point set into T cameras); K and w2c
        are moved to ``points``' device.
    Returns:
        ``(uv, z)``: (*B, N, 2) pixel coordinates and (*B, N) z-depth in the camera. Points with
        z ≤ 0 get meaningless uv; callers mask them with ``z > 0``. Both in the common dtype of
        the inputs, on ``points``' device.
    """
    _check_last_dims("points", points, (3,))
    _check_last_dims("K", K, (3, 3))
    # A zero K projected every point to (0, 0), a NaN one to NaN, a negative focal length mirrored them: as unproject_depth, refused.
    validate_intrinsics(K, "K")
    _check_last_dims("w2c", w2c, (4, 4))
    if points.ndim < 2:
        raise Gen3cInputError(f"points must be (*B, N, 3), got {tuple(points.shape)}: one point is points[None]")
    _check_batches("project_points", ("points", points, 2), ("K", K, 2), ("w2c", w2c, 2))
    dtype = torch.promote_types(points.dtype, torch.promote_types(K.dtype, w2c.dtype))
    points, K, w2c = points.to(dtype), K.to(points.device, dtype), w2c.to(points.device, dtype)  # (on points' device: as unproject_depth)
    P = K @ w2c[..., :3, :]  # (*B, 3, 4)
    cam = points @ P[..., :3].transpose(-1, -2) + P[..., None, :, 3]
    z = cam[..., 2]
    uv = cam[..., :2] / z.clamp(min=1e-8)[..., None]
    return uv, z


# --------------------------------------------------------------------------------------------
# Camera stacks
# --------------------------------------------------------------------------------------------


def as_float32(value: object, name: str) -> Tensor:
    """A tensor, numpy array, nested list of real numbers or list of tensors / arrays of one
    shape (e.g. 4×4 matrices, stacked) as a float32 tensor (a float32 tensor as it is);
    anything else is refused in one line."""
    return _as_real(value, name).float()


def as_float64(value: object, name: str) -> Tensor:
    """As :func:`as_float32`, in float64 (keyframes: a spline is evaluated in double precision)."""
    return _as_real(value, name).double()


def check_unmasked(value: object, name: str) -> None:
    """Refuse a numpy masked array with masked entries as a camera matrix (K, w2c): a matrix has
    no "missing" number, and numpy and torch would take the raw values under the mask. One with
    none masked is its data.

    Raises:
        Gen3cInputError: naming ``name``, how many entries are masked and the fix.
    """
    if isinstance(value, np.ma.MaskedArray):
        masked = int(np.ma.getmaskarray(value).sum())
        if masked:
            raise Gen3cInputError(
                f"{name} is a masked array with {masked} masked values: a camera matrix has no missing entries, pass the whole matrix (value.filled(...))"
            )


def _as_real(value: object, name: str) -> Tensor:
    for item in value if isinstance(value, (list, tuple)) else (value,):
        check_unmasked(item, name)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Tensor) or hasattr(v, "__array__") for v in value):
        # A list of matrices (tensors or arrays), as a path is often built: stacked, not taken
        # apart number by number (which torch refuses for tensors and does slowly for arrays).
        items = [torch.as_tensor(v) for v in value]
        shapes = sorted({tuple(t.shape) for t in items})
        if len(shapes) > 1:
            raise Gen3cInputError(f"{name} is a list of {len(items)} items of shapes {', '.join(map(str, shapes[:3]))}: pass items of one shape")
        value = torch.stack([t.to(items[0].device) for t in items])
    elif isinstance(value, (list, tuple)):
        # Python's floats are float64: torch.as_tensor made them float32 (its default dtype) first, so
        # as_float64([[1000.1, …]]) was 1000.0999755859375; numpy keeps them as they are.
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):  # (ragged: torch.as_tensor below refuses it too)
            array = None
        if array is not None and array.dtype.kind in "biufc":
            value = array
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        tensor = None
    if tensor is not None and tensor.is_complex():
        raise Gen3cInputError(complex_refusal(name, tensor.dtype))
    if tensor is not None and tensor.is_meta:  # was torch's "Tensor.item() cannot be called on meta tensors" in validate_poses
        raise Gen3cInputError(meta_refusal(name))
    if tensor is None or tensor.dtype == torch.bool:
        raise Gen3cInputError(f"{name} is {_describe(value) if tensor is None else tensor.dtype}: pass real numbers (a tensor or an array)")
    return tensor


@dataclass
class Cameras:
    """A stack of N pinhole cameras of one image size.

    Attributes:
        w2c: (N, 4, 4) world-to-camera poses, OpenCV convention, float32.
        K: (N, 3, 3) intrinsics in pixels of an image of ``height`` × ``width``, float32 (a
            single (3, 3) is shared by all N).
        height, width: image size the intrinsics refer to.

    Tensors, numpy arrays, nested lists and lists of 4×4 (3×3) matrices of any real dtype are
    taken and stored as float32, the precision every renderer and generator computes cameras in.
    ``K`` is stored on ``w2c``'s device (intrinsics are often built on the CPU, poses on a GPU).
    Poses must be rigid and intrinsics in pixels of ``height`` × ``width``
    (:func:`check_intrinsics_fit`); a camera-to-world stack goes in as ``invert_pose(c2w)``, an
    OpenGL / nerfstudio one as ``opengl_to_opencv(c2w_gl)``.

    >>> import numpy as np
    >>> path = [np.eye(4) for _ in range(3)]                      # e.g. from another tool
    >>> Cameras(path, make_intrinsics(100.0, 100.0, 56.0, 32.0), height=64, width=112)
    Cameras(N=3, height=64, width=112, device=cpu)
    """

    w2c: Tensor
    K: Tensor
    height: int
    width: int

    def __post_init__(self) -> None:
        # Arrays (numpy, nested lists) become tensors, so every later step sees one type.
        self.w2c, self.K = (as_float32(value, f"Cameras.{name}") for name, value in (("w2c", self.w2c), ("K", self.K)))
        # K on the CPU with w2c on a GPU failed only later, in a render's K @ w2c.
        self.K = self.K.to(self.w2c.device)
        if self.w2c.ndim != 3 or self.w2c.shape[-2:] != (4, 4):
            hint = ": one camera is w2c[None]" if self.w2c.shape == (4, 4) else ""
            raise Gen3cInputError(f"Cameras.w2c must be (N, 4, 4) world-to-camera poses, got {tuple(self.w2c.shape)}{hint}")
        if self.K.shape == (3, 3):
            self.K = self.K.expand(len(self.w2c), 3, 3).clone()
        if self.K.shape != (len(self.w2c), 3, 3):
            raise Gen3cInputError(f"Cameras.K must be (3, 3) or (N, 3, 3) with N={len(self.w2c)}, got {tuple(self.K.shape)}")
        given = (self.height, self.width)
        try:
            self.height, self.width = _whole_side(self.height), _whole_side(self.width)  # numpy ints too
        except TypeError:
            self.height = self.width = 0
        if self.height < 1 or self.width < 1:
            raise Gen3cInputError(
                f"Cameras height and width must be the image size in pixels, two positive whole numbers, got {given[0]!r} × {given[1]!r}"
            )
        # A pose that is no rotation (a projection matrix, a scaled pose) renders nothing, and
        # normalised intrinsics a speck: refused here rather than as an empty video later.
        validate_poses(self.w2c, "Cameras.w2c")
        check_intrinsics_fit(self.K, self.height, self.width, "Cameras.K")

    def __len__(self) -> int:
        return self.w2c.shape[0]

    def __repr__(self) -> str:
        return f"Cameras(N={len(self)}, height={self.height}, width={self.width}, device={self.w2c.device})"

    def __iter__(self) -> Iterator[Cameras]:
        """Each camera as a stack of one (``cameras[i]``)."""
        return (self[i] for i in range(len(self)))

    def __getitem__(self, index) -> Cameras:
        if isinstance(index, np.ndarray) and index.ndim:  # np.arange(0, N, 2), a bool mask: was "only integer scalar arrays …"
            # (any integer dtype as numpy takes it: torch took uint8 for a mask, refused uint64)
            index = torch.as_tensor(index.astype(np.int64) if index.dtype.kind in "iu" else index)
        if not isinstance(index, (slice, Tensor, list, tuple)):
            try:
                index = operator.index(index)  # ints, numpy ints: one camera, kept as a stack of one
            except TypeError:  # (None, 1.5, "0": Python's "'float' object cannot be interpreted as an integer")
                raise Gen3cInputError(
                    f"cameras[{shown_value(index)}]: index a camera by a whole number, a slice, a list of indices or a bool mask"
                ) from None
            # Past the end the slice below was an empty stack, and `for camera in cameras` never ended.
            if not -len(self) <= index < len(self):
                raise Gen3cInputError(f"camera {index} is out of range for {len(self)} cameras: pass 0 … {len(self) - 1} (or −1 … −{len(self)})")
            index = slice(index, index + 1 if index != -1 else None)
        return Cameras(self.w2c[index], self.K[index], self.height, self.width)

    @property
    def c2w(self) -> Tensor:
        """(N, 4, 4) camera-to-world poses."""
        return invert_pose(self.w2c)

    @property
    def centers(self) -> Tensor:
        """(N, 3) camera centres in world space."""
        return camera_centers(self.w2c)

    def to(self, device: torch.device | str) -> Cameras:
        """The same cameras on ``device``."""
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError):  # ("gpu" was torch's "Expected one of cpu, cuda, … device type")
            raise Gen3cInputError(f"Cameras.to device {shown_value(device)} is not a device name: pass 'cuda', 'cuda:1' or 'cpu'") from None
        return Cameras(self.w2c.to(device), self.K.to(device), self.height, self.width)

    def resized(self, height: int, width: int) -> Cameras:
        """The same cameras for images plainly resized to ``height`` × ``width``."""
        return Cameras(self.w2c, resize_intrinsics(self.K, (self.height, self.width), (height, width)), height, width)

    @staticmethod
    def cat(items: list[Cameras]) -> Cameras:
        if not items:  # was "cannot concatenate cameras of different image sizes []"
            raise Gen3cInputError("Cameras.cat got no cameras: pass a list of at least one Cameras")
        for item in items:  # (None was "'NoneType' object has no attribute 'height'")
            if not isinstance(item, Cameras):
                raise Gen3cInputError(f"Cameras.cat got {describe_value(item)} among its items: pass a list of Cameras")
        sizes = {(c.height, c.width) for c in items}
        if len(sizes) != 1:
            raise Gen3cInputError(f"cannot concatenate cameras of different image sizes {sorted(sizes)}")
        devices = sorted({str(c.w2c.device) for c in items})
        if len(devices) != 1:  # was torch.cat's raw "Expected all tensors to be on the same device"
            raise Gen3cInputError(f"cannot concatenate cameras on different devices {devices}: move them to one first with .to(device)")
        return Cameras(torch.cat([c.w2c for c in items]), torch.cat([c.K for c in items]), items[0].height, items[0].width)
