"""The user's own depth (``--depth_path``) and camera (``--intrinsics`` / ``--fov``) as a
:class:`~gen3c.depth.base.DepthEstimate`.

Files are read by :mod:`gen3c.io.depth` (npy, npz with key ``depth`` or a single array,
16-bit PNG × scale with 0 = invalid, EXR channel Z/R/Y; never unpickled). A depth map of another
size is resized (nearest) with a warning when its aspect ratio matches the image's, else
refused. NaN / +inf pixels sit far away as in GEN3C (:func:`gen3c.io.depth.fill_invalid_depth`;
``mask_invalid`` leaves them out of the cache instead), ≤ 0 pixels are holes (depth 0); either
way they are not in ``mask``, so they do not count for the median depth.

User depth is ``kind="metric"`` by default: its unit is the user's, so ``--movement_distance``
is read relative to the scene's median depth (:func:`gen3c.depth.base.median_depth`). Depth
written by ``gen3c depth`` keeps the kind, camera and trusted pixels recorded beside it
(:func:`depth_record`): its sky, written at MoGe's far fill, stays out of the median depth.
``--intrinsics`` / ``--fov`` are read by :func:`gen3c.io.intrinsics.parse_intrinsics`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gen3c.cameras import check_intrinsics_fit, fov_from_focal, resize_intrinsics, whole_image_size
from gen3c.depth.base import DEPTH_KINDS, INTRINSICS_SOURCES, DepthEstimate, camera_for, resize_mask
from gen3c.errors import Gen3cInputError, note, quoted_path
from gen3c.io.depth import DEFAULT_PNG_DEPTH_SCALE, FAR_DEPTH, conform_depth, load_depth, median_scene_depth
from gen3c.io.intrinsics import parse_intrinsics, recorded_size
from gen3c.io.text import decode_text
from gen3c.summary import dataclass_repr


@dataclass(frozen=True)
class DepthRecord:
    """What ``gen3c depth`` records beside the depth it writes (``NAME_depth.json`` next to
    ``NAME_depth.npy``): the depth's kind, its camera and the estimator. Read back, it makes the
    exported depth reproduce the run it came from (relative MoGe depth keeps GEN3C's units for
    ``--movement_distance`` instead of being taken as metric)."""

    kind: str
    intrinsics: Tensor
    size: tuple[int, int]
    source: str
    #: The record's file (``NAME_depth.json``); None for a :class:`DepthEstimate` handed over in
    #: memory (:meth:`of_estimate`).
    path: Path | None
    #: (H, W) bool at ``size``, the pixels the estimator trusted (``NAME_mask.png``); None for a
    #: record written before the mask was (every pixel short of the far fill counts).
    mask: Tensor | None = None
    #: Where the recorded camera came from (:attr:`DepthEstimate.intrinsics_from`): the estimator
    #: ("model"), the ``--intrinsics`` / ``--fov`` given to ``gen3c depth`` ("user"), or the default
    #: field of view where nothing estimated one ("default"). "model" for a record without it.
    intrinsics_from: str = "model"

    __repr__ = dataclass_repr

    @classmethod
    def of_estimate(cls, estimate: DepthEstimate) -> DepthRecord:
        """What an estimate in memory (``gen3c.generate(depth=estimate)``) carries, as its export
        by ``gen3c depth`` records it: the run is the one ``--depth_path NAME_depth.npy`` makes."""
        return cls(
            estimate.kind, estimate.intrinsics.float().cpu(), estimate.size, estimate.source, None, estimate.mask.bool().cpu(),
            estimate.intrinsics_from,
        )

    def camera_note(self) -> str:
        """The recorded camera as a note names it, with its horizontal field of view: a default one
        (:attr:`intrinsics_from`) is not called the estimator's."""
        fov = f"{fov_from_focal(float(self.intrinsics[0, 0]), self.size[1]):.1f}° horizontal"
        if self.intrinsics_from == "default":
            return f"the default camera ({fov}: none was estimated; --fov or --intrinsics if you know it)"
        return f"the camera it was given ({fov})" if self.intrinsics_from == "user" else f"its camera ({fov})"

    @property
    def where(self) -> str:
        """Where the record comes from, for notes and messages."""
        return "held by the DepthEstimate" if self.path is None else f"recorded in {self.path.name}"

    def camera(self, image_size: tuple[int, int]) -> Tensor:
        """The recorded intrinsics in pixels of an ``image_size`` (H, W) image (plain resize)."""
        return resize_intrinsics(self.intrinsics, self.size, tuple(image_size))

    def trusted(self, image_size: tuple[int, int]) -> Tensor | None:
        """The recorded mask at ``image_size`` (H, W), resized (nearest) as the depth is
        (:func:`gen3c.io.depth.conform_depth`); None without one."""
        return None if self.mask is None else resize_mask(self.mask, tuple(image_size))

    def median_depth(self, depth: Tensor, valid: Tensor) -> float | None:
        """The median depth the estimating run took (:func:`gen3c.depth.base.median_depth`): over
        the trusted pixels of ``depth`` (H, W), read back, else over all of ``valid``; None
        without a recorded mask (the caller's median over ``valid`` stands)."""
        trusted = self.trusted(tuple(depth.shape))
        if trusted is None:
            return None
        median = median_scene_depth(depth, valid & trusted)
        return median_scene_depth(depth, valid) if median is None else median


def depth_record(path: str | os.PathLike, depth_size: tuple[int, int]) -> DepthRecord | None:
    """The record of a ``.npy`` depth written by ``gen3c depth`` (:class:`DepthRecord`), or None
    when there is none, it is not one of ours, or it describes a depth of another size than
    ``depth_size`` (H, W) (the depth was replaced since)."""
    p = Path(path)
    sidecar = p.with_suffix(".json")
    if p.suffix.lower() != ".npy" or not sidecar.is_file():
        return None
    try:
        data = json.loads(decode_text(sidecar.read_bytes()))  # (a hand-edited record as any JSON a user saves)
        K = torch.tensor(data["intrinsics"], dtype=torch.float32)
        # an unknown source (a hand-edited record) is read as records without one are
        known = data.get("intrinsics_from") if data.get("intrinsics_from") in INTRINSICS_SOURCES else "model"
        record = DepthRecord(str(data["kind"]), K, recorded_size(data), str(data["source"]), sidecar, intrinsics_from=known)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, RecursionError):
        return None
    if record.kind not in DEPTH_KINDS or record.size != tuple(depth_size) or tuple(K.shape) != (3, 3):
        return None
    try:
        check_intrinsics_fit(K, *record.size, str(sidecar))
    except Gen3cInputError:
        return None
    if "mask" not in data:  # written before gen3c depth wrote the mask: read as it was then
        return record
    return replace(record, mask=_recorded_mask(data["mask"], sidecar, record.size))


def untrusted_left_out(record: DepthRecord, valid: Tensor, name: str) -> Tensor:
    """``valid`` (H, W) less the pixels ``record``'s mask does not trust, for ``--mask_invalid_depth``.

    ``gen3c depth`` writes the pixels its estimator does not trust (MoGe's sky) at the far fill,
    not NaN, and marks them in the mask: left out, they are what NaN/inf pixels of a raw saved
    estimate are (:func:`gen3c.io.depth.fill_invalid_depth`). A note says how many.
    """
    trusted = record.trusted(tuple(valid.shape))
    if trusted is None:  # a record written before the mask was: the far fill is all it tells
        return valid
    dropped = int((valid & ~trusted).sum())
    if dropped:
        share = 100 * dropped / valid.numel()
        note(f"{name}: --mask_invalid_depth leaves out {dropped} pixels ({share:.0f}%) the estimator did not trust, as {record.where}", stacklevel=3)
    return valid & trusted


def _recorded_mask(entry: object, sidecar: Path, size: tuple[int, int]) -> Tensor:
    """The trusted-pixel mask a record names (a PNG beside it, 255 = trusted) as (H, W) bool.

    Raises:
        Gen3cInputError: the entry is not a file beside the record, or the file is missing,
            unreadable or of another size than the depth: the depth would read back differently
            from the run it came from, so the record's owner is asked to mend it.
    """
    from PIL import Image, UnidentifiedImageError

    fix = f"export the depth again with gen3c depth, or delete the 'mask' entry of {quoted_path(sidecar)} to read it without one"
    if not isinstance(entry, str) or not entry or Path(entry).name != entry:
        raise Gen3cInputError(f"depth record {quoted_path(sidecar)} names the mask {quoted_path(entry)}, not a file beside it: {fix}")
    path = sidecar.with_name(entry)
    try:
        with Image.open(path) as im:
            mask = torch.from_numpy(np.asarray(im.convert("L")) > 127)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise Gen3cInputError(f"mask {quoted_path(path)} of depth record {sidecar.name} cannot be read ({exc}): {fix}") from None
    if tuple(mask.shape) != tuple(size):
        raise Gen3cInputError(
            f"mask {quoted_path(path)} is {mask.shape[0]}×{mask.shape[1]} but its depth is {size[0]}×{size[1]} (H×W): {fix}"
        )
    return mask


def load_user_depth(
    path: str | os.PathLike,
    image_size: tuple[int, int],
    intrinsics: Tensor | str | None = None,
    fov: float | None = None,
    png_scale: float = DEFAULT_PNG_DEPTH_SCALE,
    mask_invalid: bool = False,
    kind: str | None = None,
    camera_estimate: DepthEstimate | None = None,
) -> DepthEstimate:
    """A user's depth file as a :class:`DepthEstimate` at ``image_size`` (H, W).

    Args:
        path: depth file (module docstring).
        image_size: (H, W) of the image the depth belongs to.
        intrinsics: (3, 3) in pixels of that image, or an ``--intrinsics`` string / file
            (:func:`gen3c.io.intrinsics.parse_intrinsics`).
        fov: horizontal field of view in degrees (instead of ``intrinsics``).
        png_scale: depth = PNG value × this (default 0.001: millimetres → metres).
        mask_invalid: leave NaN/+inf pixels out (depth 0) instead of placing them far away, and
            the pixels the record's mask does not trust (:func:`untrusted_left_out`).
        kind: "metric" or "relative" when the file is up to scale (e.g. saved MoGe depth); None
            (default): the kind ``gen3c depth`` recorded beside the file (:func:`depth_record`),
            else "metric".
        camera_estimate: an estimator's output for the same image, whose intrinsics are used
            when the user gives none (else the recorded camera, else the default 60° FOV).
    """
    name = f"depth file {quoted_path(path)}"
    H, W = whole_image_size(image_size, "load_user_depth image_size")  # (before the file is read)
    if kind is not None and kind not in DEPTH_KINDS:  # before the file is read (it was DepthEstimate's ValueError after)
        raise Gen3cInputError(f"depth kind {kind!r} for {name} is unknown: pass one of {', '.join(DEPTH_KINDS)}, or None for the recorded kind")
    raw = load_depth(path, png_scale)  # names the file itself: "depth file 'PATH'"
    record = depth_record(path, tuple(raw.shape))
    depth, valid = conform_depth(raw, (H, W), name, mask_invalid)
    if mask_invalid and record is not None:
        valid = untrusted_left_out(record, valid, name)
        depth = torch.where(valid, depth, torch.zeros_like(depth))
    if kind is None:
        kind = record.kind if record is not None else "metric"
    if isinstance(intrinsics, (str, os.PathLike)):
        intrinsics = parse_intrinsics(intrinsics, (H, W))
    if intrinsics is None and fov is None and camera_estimate is not None:
        K, source = resize_intrinsics(camera_estimate.intrinsics, camera_estimate.size, (H, W)), camera_estimate.intrinsics_from
    elif intrinsics is None and fov is None and record is not None:
        K, source = record.camera((H, W)), record.intrinsics_from
    else:
        K, source = camera_for(H, W, intrinsics, fov)
    trusted = valid & (depth < FAR_DEPTH)
    if record is not None and record.mask is not None:  # the estimator's word, as in the run that estimated it
        trusted &= record.trusted((H, W))
    return DepthEstimate(depth, K, trusted, kind, f"user:{Path(path).name}", source)
