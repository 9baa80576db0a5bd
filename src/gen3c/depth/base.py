"""The one depth interface: an image goes in, a :class:`DepthEstimate` comes out.

Every estimator (MoGe, the transformers models, the geometric prior, a user's depth file)
returns the same record, so the cache and the trajectories never ask where depth came from:

- ``depth`` (H, W) float32 **z-depth** (not ray distance), OpenCV camera (x right, y down,
  z forward). It is finite and > 0 everywhere: pixels the estimator marks invalid (sky,
  undefined) carry a far fill value, as GEN3C does with MoGe (depth 1000). Only user depth may
  hold 0 = "no point here" (holes the user asked to mask).
- ``intrinsics`` (3, 3) float32 in pixels of the H × W map, pixel centres at integer
  coordinates (see :mod:`gen3c.cameras`).
- ``mask`` (H, W) bool: the pixels the estimator trusts. GEN3C builds its cache from *all*
  pixels (the far fill included) and does not pass MoGe's mask to the cache; the mask is kept
  for statistics (:func:`median_depth`) and for callers who want to drop the sky.
- ``kind``: ``"relative"`` — up to an unknown scale (MoGe v1, Depth Anything V2 relative, the
  prior); ``"metric"`` — in metres or the user's own unit (Depth Pro, metric Depth Anything,
  ZoeDepth, user depth). It decides what ``--movement_distance`` means
  (:func:`gen3c.trajectories.center_depth_for`): GEN3C's exact units for relative depth, a
  fraction of the scene's median depth for metric depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gen3c.cameras import check_intrinsics_fit, intrinsics_from_fov, resize_intrinsics
from gen3c.errors import Gen3cInputError, first_line
from gen3c.io.depth import median_scene_depth
from gen3c.io.images import resize_nearest
from gen3c.summary import dataclass_repr
from gen3c.trajectories import DEPTH_KINDS

#: Horizontal field of view assumed when neither the model nor the user gives the camera.
#: 60° is a middle-of-the-road phone/compact camera (a 30 mm full-frame equivalent).
DEFAULT_FOV_DEGREES = 60.0
#: Where intrinsics came from: the model, the user (``--intrinsics`` / ``--fov``), or the default FOV.
INTRINSICS_SOURCES = ("model", "user", "default")


@dataclass
class DepthEstimate:
    """Depth, intrinsics and validity of one image (module docstring for the conventions).

    Attributes:
        depth: (H, W) float32 z-depth.
        intrinsics: (3, 3) float32, pixels of H × W.
        mask: (H, W) bool, True where the estimator trusts the depth.
        kind: ``"metric"`` or ``"relative"`` (up to scale).
        source: the estimator, e.g. ``"moge:Ruicheng/moge-vitl"`` or ``"user:scene.npy"``.
        intrinsics_from: ``"model"``, ``"user"`` or ``"default"`` (:data:`DEFAULT_FOV_DEGREES`).
    """

    depth: Tensor
    intrinsics: Tensor
    mask: Tensor
    kind: str
    source: str
    intrinsics_from: str = "model"

    __repr__ = dataclass_repr

    def __post_init__(self) -> None:
        if self.depth.ndim != 2:
            raise ValueError(f"depth must be (H, W), got {tuple(self.depth.shape)}")
        if tuple(self.mask.shape) != tuple(self.depth.shape):
            raise ValueError(f"mask {tuple(self.mask.shape)} and depth {tuple(self.depth.shape)} differ in shape")
        if tuple(self.intrinsics.shape) != (3, 3):
            raise ValueError(f"intrinsics must be (3, 3), got {tuple(self.intrinsics.shape)}")
        if self.kind not in DEPTH_KINDS:
            raise ValueError(f"kind must be one of {DEPTH_KINDS}, got {self.kind!r}")
        if self.intrinsics_from not in INTRINSICS_SOURCES:
            raise ValueError(f"intrinsics_from must be one of {INTRINSICS_SOURCES}, got {self.intrinsics_from!r}")
        self.depth = self.depth.float()
        self.intrinsics = self.intrinsics.float()
        self.mask = self.mask.bool()

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return (int(self.depth.shape[0]), int(self.depth.shape[1]))

    def to(self, device: torch.device | str) -> DepthEstimate:
        return replace(self, depth=self.depth.to(device), intrinsics=self.intrinsics.to(device), mask=self.mask.to(device))

    def resized(self, size: tuple[int, int]) -> DepthEstimate:
        """The estimate at ``size`` (H, W) by a plain resize (aspect ratio not kept).

        Depth is resized bilinearly (as GEN3C resizes MoGe's depth), the mask by nearest
        neighbour, and fx, cx / fy, cy scale with the width / height ratio.
        """
        if tuple(size) == self.size:
            return self
        depth = resize_depth(self.depth, size)
        if (self.depth <= 0).any():  # user holes: keep them holes instead of blending into 0
            holes = resize_mask(self.depth <= 0, size)
            depth = torch.where(holes, torch.zeros_like(depth), depth)
        return replace(
            self,
            depth=depth,
            intrinsics=resize_intrinsics(self.intrinsics, self.size, tuple(size)),
            mask=resize_mask(self.mask, size),
        )


@runtime_checkable
class DepthEstimator(Protocol):
    """Anything that turns an image into a :class:`DepthEstimate`.

    ``estimate(image, size=None, intrinsics=None, fov=None)``:

    - ``image``: (3, H, W) float tensor in [0, 1], a PIL image, or an (H, W, 3) uint8 array.
    - ``size``: (H', W') of the returned estimate (default: the image's own size). Estimators
      that resize internally (MoGe at 720×1280, as GEN3C) resize *once* from their own
      resolution to ``size``, which is what GEN3C does for its working size 704×1280.
    - ``intrinsics`` (3, 3, pixels of the input image) / ``fov`` (horizontal degrees): the
      camera, when the user knows it. Models that predict depth only use it for the
      intrinsics; Depth Pro also uses its focal length for the metric scale.
    """

    name: str
    kind: str

    def estimate(
        self,
        image: Any,
        size: tuple[int, int] | None = None,
        intrinsics: Tensor | None = None,
        fov: float | None = None,
    ) -> DepthEstimate: ...


# --------------------------------------------------------------------------------------------
# Helpers shared by the estimators
# --------------------------------------------------------------------------------------------


def median_depth(estimate: DepthEstimate) -> float:
    """The median z-depth over the trusted pixels (``mask``, > 0, short of the far fill):
    :func:`gen3c.io.depth.median_scene_depth`, as for every other input.

    This is the scene scale that gives ``--movement_distance`` its meaning for metric depth.
    Falls back to all positive pixels short of the far fill when the mask holds none.

    Raises:
        Gen3cInputError: no pixel has a finite positive depth short of the far fill.
    """
    median = median_scene_depth(estimate.depth, estimate.mask)
    if median is None:
        median = median_scene_depth(estimate.depth)
    if median is None:
        raise Gen3cInputError(f"depth from {estimate.source} has no finite positive pixel short of the far fill: check the depth input")
    return median


def image_to_uint8(image: Any, name: str = "image") -> np.ndarray:
    """Any accepted image form → (H, W, 3) uint8 RGB array (a copy).

    Accepts a (3, H, W) float tensor in [0, 1] (or a uint8 tensor), a PIL image, or an
    (H, W, 3) / (H, W, 4) / (H, W) numpy array (uint8, or float in [0, 1]). A PIL image and an
    RGBA array are taken as their file is read (:func:`gen3c.io.images.upright_rgb`): turned by
    the EXIF orientation, transparent pixels over white; a 16-bit one (mode ``I;16``) scaled to
    8 bits, a float one (mode ``F``) read as [0, 1] as a float array is. A bool tensor or array is
    a black-and-white image (False 0, True 255), as PIL's mode ``1`` and ``Image.fromarray`` of
    it are. Refused in one line: complex values, integers other than uint8 (and bool; their
    range is unknown: a 16-bit image is ``array / 65535``), PIL's 32-bit integer mode ``I``, and
    a numpy masked array with masked pixels (colour has no "missing" value: fill it, or pass an
    RGBA array whose alpha is 0 there).
    """
    from gen3c.io.depth import complex_refusal
    from gen3c.io.images import stated_size, upright_rgb

    size = stated_size(image)
    if size is not None and 0 in size:  # else an empty array came back, or torch's error on its min()
        raise Gen3cInputError(f"{name} is empty ({size[0]}×{size[1]} pixels): pass an image with pixels")
    if isinstance(image, Tensor):
        x = image.detach().cpu()
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
    try:
        from PIL import Image, ImageOps

        if isinstance(image, Image.Image):
            try:
                if image.mode == "I":  # 32-bit integers (a 16-bit PGM, a signed or 32-bit TIFF): PIL's 8-bit conversion clips
                    raise Gen3cInputError(
                        f"{name} holds integer colours of unknown range (PIL mode I, 32-bit): save it as an 8- or 16-bit PNG, "
                        f"or pass np.asarray(image) as uint8 or float in [0, 1]{_integer_range_hint(np.asarray(image), 'array')}"
                    )
                if image.mode == "F":  # floats (a float TIFF): read as a float array is, [0, 1]; PIL's conversion clips
                    image, name = np.asarray(ImageOps.exif_transpose(image)), f"{name} (PIL mode F)"
                else:
                    return np.asarray(upright_rgb(image), dtype=np.uint8).copy()
            except Gen3cInputError:
                raise
            except (OSError, ValueError) as exc:  # a lazily opened file that turns out truncated or corrupt
                raise Gen3cInputError(f"{name} PIL image could not be decoded ({first_line(exc)}): pass a complete image") from None
    except ImportError:  # pragma: no cover - pillow is a core dependency
        pass
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
    raise Gen3cInputError(f"{name} is a {type(image).__name__}: pass a (3, H, W) tensor in [0, 1], a PIL image or a uint8 array")


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
        if image.ndim != 3 or image.shape[0] != 3:
            raise Gen3cInputError(f"{name} tensor has shape {tuple(image.shape)}: pass (3, H, W) RGB")
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


def resize_depth(depth: Tensor, size: tuple[int, int]) -> Tensor:
    """(H, W) → ``size`` bilinearly (align_corners=False), as GEN3C resizes depth."""
    if tuple(depth.shape) == tuple(size):
        return depth
    return F.interpolate(depth[None, None].float(), size=tuple(size), mode="bilinear", align_corners=False)[0, 0]


def resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """(H, W) bool → ``size`` by nearest neighbour, as GEN3C resizes MoGe's mask."""
    return resize_nearest(mask.bool(), size)


def camera_for(
    height: int,
    width: int,
    intrinsics: Tensor | None = None,
    fov: float | None = None,
    name: str = "intrinsics",
) -> tuple[Tensor, str]:
    """Intrinsics for an H × W image when the model gives none.

    The user's ``intrinsics`` (pixels of this image) win, then ``fov`` (horizontal degrees),
    then :data:`DEFAULT_FOV_DEGREES` with the principal point at the image centre.

    Returns:
        ``(K (3, 3), intrinsics_from)`` with ``intrinsics_from`` "user" or "default".
    """
    if intrinsics is not None and fov is not None:
        raise Gen3cInputError("pass either intrinsics or a field of view, not both")
    if intrinsics is not None:
        K = torch.as_tensor(intrinsics, dtype=torch.float32)
        return check_intrinsics_fit(K, height, width, name).clone(), "user"
    if fov is not None:
        return intrinsics_from_fov(float(fov), height, width), "user"
    return intrinsics_from_fov(DEFAULT_FOV_DEGREES, height, width), "default"


def user_focal(height: int, width: int, intrinsics: Tensor | None, fov: float | None) -> float | None:
    """The user's horizontal focal length in pixels of an H × W image, or None."""
    if intrinsics is None and fov is None:
        return None
    K, _ = camera_for(height, width, intrinsics, fov)
    return float(K[0, 0])


def fov_from_intrinsics(K: Tensor, width: int) -> float:
    """Horizontal field of view (degrees) of intrinsics ``K`` for an image ``width`` pixels wide."""
    return math.degrees(2.0 * math.atan(0.5 * width / float(K[0, 0])))
