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
written by ``gen3c depth`` keeps the kind (and camera) recorded beside it (:func:`depth_record`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gen3c.cameras import check_intrinsics_fit, make_intrinsics, resize_intrinsics, validate_intrinsics
from gen3c.depth.base import DEPTH_KINDS, DepthEstimate, camera_for
from gen3c.errors import Gen3cInputError, note
from gen3c.io.depth import DEFAULT_PNG_DEPTH_SCALE, FAR_DEPTH, conform_depth, load_depth
from gen3c.io.formats import require_numpy_file


def parse_intrinsics(spec: str | os.PathLike, name: str = "--intrinsics", image_size: tuple[int, int] | None = None) -> Tensor:
    """Intrinsics (3, 3) in pixels from ``"fx,fy,cx,cy"`` or a file.

    Files: ``.json`` with ``fx, fy, cx, cy`` or a 3×3 ``K`` / ``intrinsics``; ``.txt`` with 4
    or 9 numbers; ``.npy`` with a (3, 3) or (4,) array (never unpickled).

    Args:
        image_size: (H, W) of the image the camera belongs to. A JSON that records the size it
            was made for (``height``, ``width``: ``gen3c depth --resolution`` writes one) is
            scaled to it, as a plain resize, with a note; the result is checked against it
            (:func:`gen3c.cameras.check_intrinsics_fit`: normalised or wrong-size intrinsics).
    """
    text = str(spec).strip()
    made_for = None
    try:
        p = Path(text).expanduser()
        is_file = p.is_file()
    except (OSError, ValueError, RuntimeError):  # unknown ~user, NUL bytes, over-long names
        is_file = False
    if not is_file:
        try:
            values = [float(v) for v in text.replace(";", ",").replace(" ", ",").split(",") if v]
        except ValueError:
            raise Gen3cInputError(f"{name} {text!r} is neither 'fx,fy,cx,cy' nor an existing file: check it") from None
        return _fit(_from_values(_floats(values, name, text), name, text), None, image_size, f"{name} {text!r}")
    suffix = p.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(p.read_text())
            made_for = _recorded_size(data)
            if isinstance(data, dict) and all(k in data for k in ("fx", "fy", "cx", "cy")):
                values = [data[k] for k in ("fx", "fy", "cx", "cy")]
            elif isinstance(data, dict) and ("K" in data or "intrinsics" in data):
                values = np.asarray(data.get("K", data.get("intrinsics")), dtype=np.float64).reshape(-1).tolist()
            elif isinstance(data, list):
                values = np.asarray(data, dtype=np.float64).reshape(-1).tolist()
            else:
                raise Gen3cInputError(f"{name} file {str(p)!r} needs keys fx, fy, cx, cy or a 3×3 'K'")
        elif suffix == ".npy":
            require_numpy_file(p, f"{name} file {str(p)!r}")
            values = np.load(p, allow_pickle=False).astype(np.float64).reshape(-1).tolist()
        else:
            values = p.read_text().replace(",", " ").split()
    except Gen3cInputError:
        raise
    except (OSError, ValueError, TypeError, EOFError, RecursionError) as exc:  # EOFError: an empty .npy
        raise Gen3cInputError(f"{name} file {str(p)!r} cannot be read ({exc}): write 'fx fy cx cy' or a 3×3 matrix") from None
    return _fit(_from_values(_floats(values, name, str(p)), name, str(p)), made_for, image_size, f"{name} {str(p)!r}")


def _recorded_size(data: Any) -> tuple[int, int] | None:
    """The (H, W) a JSON camera says it was made for (``height``, ``width``), if it says so."""
    if not isinstance(data, dict):
        return None
    size = tuple(data.get(key) for key in ("height", "width"))
    return size if all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size) else None


def _fit(K: Tensor, made_for: tuple[int, int] | None, image_size: tuple[int, int] | None, what: str) -> Tensor:
    if image_size is None:
        return K
    image_size = (int(image_size[0]), int(image_size[1]))
    if made_for is not None and made_for != image_size:
        (h0, w0), (h1, w1) = made_for, image_size
        note(f"{what} was made for a {w0}×{h0} image: scaled to the {w1}×{h1} input (fx, cx × {w1 / w0:.4g}; fy, cy × {h1 / h0:.4g})", stacklevel=3)
        K = resize_intrinsics(K, made_for, image_size)
    return check_intrinsics_fit(K, *image_size, what)


def _floats(values: list[Any], name: str, what: str) -> list[float]:
    try:
        out = [float(v) for v in values if str(v).strip() != ""]
    except (TypeError, ValueError):
        out = []
    if len(out) not in (4, 9):
        raise Gen3cInputError(f"{name} {what!r} must hold 4 numbers 'fx,fy,cx,cy' or a 3×3 matrix, in pixels of the input image")
    return out


def _from_values(values: list[float], name: str, what: str) -> Tensor:
    K = make_intrinsics(*values) if len(values) == 4 else torch.tensor(values, dtype=torch.float32).reshape(3, 3)
    return validate_intrinsics(K, f"{name} {what!r}")


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
    path: Path

    def camera(self, image_size: tuple[int, int]) -> Tensor:
        """The recorded intrinsics in pixels of an ``image_size`` (H, W) image (plain resize)."""
        return resize_intrinsics(self.intrinsics, self.size, tuple(image_size))


def depth_record(path: str | os.PathLike, depth_size: tuple[int, int]) -> DepthRecord | None:
    """The record of a ``.npy`` depth written by ``gen3c depth`` (:class:`DepthRecord`), or None
    when there is none, it is not one of ours, or it describes a depth of another size than
    ``depth_size`` (H, W) (the depth was replaced since)."""
    p = Path(path)
    sidecar = p.with_suffix(".json")
    if p.suffix.lower() != ".npy" or not sidecar.is_file():
        return None
    try:
        data = json.loads(sidecar.read_text())
        K = torch.tensor(data["intrinsics"], dtype=torch.float32)
        record = DepthRecord(str(data["kind"]), K, _recorded_size(data), str(data["source"]), sidecar)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, RecursionError):
        return None
    if record.kind not in DEPTH_KINDS or record.size != tuple(depth_size) or tuple(K.shape) != (3, 3):
        return None
    try:
        check_intrinsics_fit(K, *record.size, str(sidecar))
    except Gen3cInputError:
        return None
    return record


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
        intrinsics: (3, 3) in pixels of that image, or a ``parse_intrinsics`` string / file.
        fov: horizontal field of view in degrees (instead of ``intrinsics``).
        png_scale: depth = PNG value × this (default 0.001: millimetres → metres).
        mask_invalid: leave NaN/+inf pixels out (depth 0) instead of placing them far away.
        kind: "metric" or "relative" when the file is up to scale (e.g. saved MoGe depth); None
            (default): the kind ``gen3c depth`` recorded beside the file (:func:`depth_record`),
            else "metric".
        camera_estimate: an estimator's output for the same image, whose intrinsics are used
            when the user gives none (else the recorded camera, else the default 60° FOV).
    """
    name = f"depth file {str(path)!r}"
    raw = load_depth(path, png_scale, name)
    record = depth_record(path, tuple(raw.shape))
    H, W = image_size
    depth, valid = conform_depth(raw, (H, W), name, mask_invalid)
    if kind is None:
        kind = record.kind if record is not None else "metric"
    if isinstance(intrinsics, (str, os.PathLike)):
        intrinsics = parse_intrinsics(intrinsics, image_size=(H, W))
    if intrinsics is None and fov is None and camera_estimate is not None:
        K, source = resize_intrinsics(camera_estimate.intrinsics, camera_estimate.size, (H, W)), "model"
    elif intrinsics is None and fov is None and record is not None:
        K, source = record.camera((H, W)), "model"
    else:
        K, source = camera_for(H, W, intrinsics, fov)
    trusted = valid & (depth < FAR_DEPTH)
    return DepthEstimate(depth, K, trusted, kind, f"user:{Path(path).name}", source)
