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
import operator
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gen3c.cameras import as_float32, check_intrinsics_fit, intrinsics_from_fov, resize_intrinsics
from gen3c.errors import Gen3cInputError, Gen3cModelError, describe_value, note, quoted, shown_value
from gen3c.io.depth import median_scene_depth
from gen3c.io.images import image_to_uint8, resize_nearest
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
        # One Gen3cInputError line each (a numpy array was an AttributeError at .float(), a complex
        # depth lost its imaginary part without a word, a wrong shape or kind a bare ValueError).
        self.depth = as_float32(self.depth, "DepthEstimate depth")
        self.intrinsics = as_float32(self.intrinsics, "DepthEstimate intrinsics")
        self.mask = torch.as_tensor(self.mask).bool()
        if self.depth.ndim != 2:
            raise Gen3cInputError(f"DepthEstimate depth must be (H, W), got {tuple(self.depth.shape)}")
        if tuple(self.mask.shape) != tuple(self.depth.shape):
            raise Gen3cInputError(f"DepthEstimate mask {tuple(self.mask.shape)} and depth {tuple(self.depth.shape)} differ in shape: pass one flag a pixel")
        if tuple(self.intrinsics.shape) != (3, 3):
            raise Gen3cInputError(f"DepthEstimate intrinsics must be (3, 3) in pixels of the depth, got {tuple(self.intrinsics.shape)}")
        if self.kind not in DEPTH_KINDS:
            raise Gen3cInputError(f"DepthEstimate kind must be one of {', '.join(DEPTH_KINDS)}, got {shown_value(self.kind)}")
        if self.intrinsics_from not in INTRINSICS_SOURCES:
            raise Gen3cInputError(f"DepthEstimate intrinsics_from must be one of {', '.join(INTRINSICS_SOURCES)}, got {shown_value(self.intrinsics_from)}")

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return (int(self.depth.shape[0]), int(self.depth.shape[1]))

    def to(self, device: torch.device | str) -> DepthEstimate:
        return replace(self, depth=self.depth.to(device), intrinsics=self.intrinsics.to(device), mask=self.mask.to(device))

    def resized(self, size: tuple[int, int]) -> DepthEstimate:
        """The estimate at ``size`` (H, W) by a plain resize (aspect ratio not kept).

        Depth is resized bilinearly (as GEN3C resizes MoGe's depth), the mask by nearest
        neighbour, and fx, cx / fy, cy scale with the width / height ratio. Holes (depth ≤ 0,
        user depth only) stay holes, and so does every pixel blended with one.
        """
        if tuple(size) == self.size:
            return self
        depth = resize_depth(self.depth, size)
        mask = resize_mask(self.mask, size)
        if (self.depth <= 0).any():
            # User holes stay holes, and a pixel blended with one is a hole too (a point pulled
            # towards the camera otherwise): valid only where fully valid, as prepare_source
            # resizes a source view's validity.
            holes = resize_depth((self.depth > 0).float(), size) <= 0.999
            depth = torch.where(holes, torch.zeros_like(depth), depth)
            mask &= ~holes
        return replace(self, depth=depth, intrinsics=resize_intrinsics(self.intrinsics, self.size, tuple(size)), mask=mask)


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
        Gen3cInputError: ``estimate`` is no DepthEstimate (a depth map: an AttributeError before),
            or no pixel has a finite positive depth short of the far fill.
    """
    if not isinstance(estimate, DepthEstimate):
        raise Gen3cInputError(
            f"median_depth takes a DepthEstimate (an estimator's .estimate(image)), got {describe_value(estimate)}: "
            "for a depth map, gen3c.io.depth.median_scene_depth(torch.as_tensor(depth))"
        )
    median = median_scene_depth(estimate.depth, estimate.mask)
    if median is None:
        median = median_scene_depth(estimate.depth)
    if median is None:
        raise Gen3cInputError(f"depth from {estimate.source} has no finite positive pixel short of the far fill: check the depth input")
    return median


def refuse_non_finite(what: str, finite: Tensor, fix: str, reduced: torch.dtype | None = None, reduced_fix: str = "") -> None:
    """Refuse a depth network's raw output unless every pixel is finite (every estimator's check).

    A trained network never gives NaN/inf. Left in, an all-NaN output (damaged weights) read as
    invalid pixels everywhere: an estimate of all sky, no trusted pixel and a made-up camera, with
    no error; a partial one failed in MoGe's focal/shift solver.

    Args:
        what: the network, e.g. "MoGe" or "depth model dpt:Intel/dpt-hybrid-midas".
        finite: (…, H, W) bool, True where the pixel's outputs are all finite.
        fix: what to do about damaged weights, e.g. "re-download model.pt".
        reduced: the half precision it computed in (float16, bfloat16), if any: its overflow is
            the other cause, ``reduced_fix`` what to do about it.
    Raises:
        Gen3cModelError: one line, counting the pixels.
    """
    if bool(finite.all()):
        return
    overflow = f" or {str(reduced).removeprefix('torch.')} overflowed ({reduced_fix})" if reduced is not None else ""
    raise Gen3cModelError(
        f"{what} returned NaN/inf at {int((~finite).sum())} of {finite.numel()} pixels: its weights are damaged ({fix}){overflow}"
    )


def note_half_on_cpu(what: str, device: torch.device | str, half: str | None) -> None:
    """Say once (:func:`gen3c.errors.note`) that a depth network asked for in half precision on the
    CPU runs so, and slowly: the CPU's float16 / bfloat16 kernels are many times slower than its
    float32 ones. The request is honoured (it halves the memory); the defaults never ask for it
    there (float32, MoGe's autocast on CUDA only).

    Args:
        what: the estimator, e.g. "moge:Ruicheng/moge-vitl".
        half: the request, e.g. "dtype bfloat16" or "use_fp16=True"; None: none, nothing said.
    """
    if half is not None and torch.device(device).type == "cpu":
        note(f"depth estimator {what} runs with {half} on the CPU as asked: much slower there than float32 (the default), which a CPU computes fastest", stacklevel=3)


def estimate_size(size: Any) -> tuple[int, int]:
    """An estimator's ``size`` argument as (H, W), checked before any work is done.

    Raises:
        Gen3cInputError: not two whole numbers > 0 (a "704x1280" string, (704.0, 1280), (0, 1280)).
    """
    sides: list[int] = []
    if isinstance(size, (tuple, list, torch.Size)) and len(size) == 2:
        for v in size:
            try:  # whole numbers of any kind (int, numpy's, a 0-d integer tensor), not bool or 48.0
                sides.append(-1 if isinstance(v, bool) or (isinstance(v, Tensor) and v.dtype == torch.bool) else operator.index(v))
            except TypeError:
                sides.append(-1)
    if len(sides) != 2 or min(sides) <= 0:
        raise Gen3cInputError(f"depth estimate size {shown_value(size)} must be (H, W), two whole numbers > 0, e.g. (704, 1280)")
    return (sides[0], sides[1])


def estimator_input(image: Any, size: Any) -> tuple[np.ndarray, tuple[int, int] | None]:
    """An estimator's ``estimate(image, size)`` arguments checked, the size first: the image as
    an (H, W, 3) uint8 array (:func:`~gen3c.io.images.image_to_uint8`) and the size as (H, W),
    or None for the image's own (:func:`estimate_size`)."""
    size = None if size is None else estimate_size(size)
    return image_to_uint8(image), size


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
        if isinstance(intrinsics, str):  # (torch's "new(): invalid data type 'str'")
            raise Gen3cInputError(f"{name} {quoted(intrinsics, 60)} is text: pass a (3, 3) tensor, or read 'fx,fy,cx,cy' or a file with gen3c.depth.parse_intrinsics")
        K = as_float32(intrinsics, name)  # (a tensor, an array or nested lists of real numbers)
        if K.shape != (3, 3):  # (a (1, 3, 3) stack passed here and failed DepthEstimate's own check, a plain ValueError)
            hint = f": one camera is {name}[0]" if K.shape == (1, 3, 3) else ""
            raise Gen3cInputError(f"{name} must be one (3, 3) matrix, got shape {tuple(K.shape)}{hint}")
        return check_intrinsics_fit(K, height, width, name).clone(), "user"
    if fov is not None:
        return intrinsics_from_fov(fov, height, width), "user"
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
