"""Point clouds as binary PLY (x, y, z float32; red, green, blue uint8)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gen3c.dependencies import require
from gen3c.errors import Gen3cInputError, describe_value, quoted_path
from gen3c.io.atomic import atomic_path
from gen3c.io.images import outside_unit_range, plain_tensor
from gen3c.io.paths import reader_path, writer_path


def write_ply(path: str | os.PathLike, points: Tensor, colors: Tensor) -> None:
    """Write (N, 3) points with (N, 3) colours as a binary PLY file, atomically.

    Colours are float in [−1, 1] (the library's images), or uint8 0–255 as :func:`read_ply`
    returns them, so ``write_ply(path, *read_ply(other))`` copies a cloud unchanged. ``path`` must
    end in .ply (nothing is written otherwise); a leading ``~`` in it is the home folder.
    """
    target = writer_path(path, "write_ply path", "the point cloud", ".ply", "write_ply writes a PLY point cloud")
    for name, value in (("points", points), ("colors", colors)):
        if not isinstance(value, Tensor) or value.ndim != 2 or value.shape[1] != 3:
            raise Gen3cInputError(f"write_ply {name} is {describe_value(value)}: pass an (N, 3) tensor")
    if len(points) != len(colors):
        raise Gen3cInputError(f"write_ply has {len(points)} points but {len(colors)} colours: pass one colour per point")
    points, colors = plain_tensor(points, "write_ply points"), plain_tensor(colors, "write_ply colors")
    if points.dtype == torch.bool or points.is_complex():  # (bool ones were written as 0 and 1, complex ones without their imaginary part)
        raise Gen3cInputError(f"write_ply points are {str(points.dtype).removeprefix('torch.')}: pass real coordinates (float)")
    # Other integers and 0–255 floats were clamped as [-1, 1] values: a white cloud; NaN a black one.
    if colors.dtype != torch.uint8 and not colors.dtype.is_floating_point:
        raise Gen3cInputError(
            f"write_ply colors are {str(colors.dtype).removeprefix('torch.')}: pass uint8 0–255 (colors.to(torch.uint8)) or floats in [-1, 1]"
        )
    outside = None if colors.dtype == torch.uint8 else outside_unit_range(colors, "colors")
    if outside is not None:
        span, hint = outside
        raise Gen3cInputError(f"write_ply colors span {span}: pass floats in [-1, 1] or uint8 0–255{hint}")
    pts = points.float().cpu().numpy()
    finite = np.isfinite(pts).all(axis=1)
    if not finite.all():  # (were written as they were: viewers and meshers choke on them or frame the cloud on them)
        beyond = " or beyond float32's ±3.4e38" if points.dtype == torch.float64 else ""
        raise Gen3cInputError(
            f"write_ply points hold NaN or infinite coordinates{beyond} ({int((~finite).sum())} of {len(pts)} points): "
            "leave them out, keep = torch.isfinite(points).all(1); write_ply(path, points[keep], colors[keep])"
        )
    if colors.dtype == torch.uint8:
        rgb = colors.cpu().numpy()
    else:
        rgb = ((colors.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    vertex = np.empty(len(pts), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    vertex["x"], vertex["y"], vertex["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    plyfile = require("plyfile", f"writing the point cloud {quoted_path(target)}")

    with atomic_path(target) as tmp:
        plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")], text=False).write(str(tmp))


def read_ply(path: str | os.PathLike) -> tuple[Tensor, Tensor]:
    """Read a point cloud with colours (what :func:`write_ply` writes): (N, 3) float32 points
    and (N, 3) uint8 colours. Colours stored otherwise are brought to 0–255: float in [0, 1]
    (as Open3D's tensor API writes them), 16-bit 0–65535, other integers 0–255. A leading ``~``
    in ``path`` is the home folder.

    Raises:
        Gen3cInputError: a path that is no path (a number, None), a missing file, one that is no PLY, a PLY without coloured vertices, or
            colours out of their type's range.
    """
    p = reader_path(path, "point cloud", "a PLY point cloud")
    PlyData = require("plyfile", f"reading the point cloud {quoted_path(p)}").PlyData
    if not p.is_file():
        raise Gen3cInputError(f"point cloud {quoted_path(p)} does not exist or is not a file: check the path")
    try:
        ply = PlyData.read(str(p))
    except Exception as exc:  # plyfile raises several kinds (PlyHeaderParseError, UnicodeDecodeError, …) for files that are no PLY
        raise Gen3cInputError(f"point cloud {quoted_path(p)} is not a readable PLY file ({type(exc).__name__}): pass a PLY point cloud") from None
    try:
        v = ply["vertex"].data
        points = np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float32)
        colors = np.stack([v["red"], v["green"], v["blue"]], axis=1)
    except (KeyError, ValueError) as exc:  # plyfile: a missing element or property
        raise Gen3cInputError(f"point cloud {quoted_path(p)} has no coloured vertices (x, y, z, red, green, blue; missing {exc}): pass a coloured point cloud") from None
    return torch.from_numpy(points), torch.from_numpy(_colors_uint8(colors, p))


def _colors_uint8(colors: np.ndarray, p: Path) -> np.ndarray:
    """PLY colours of any property type as 0–255 (a plain cast made float [0, 1] colours black
    and wrapped 16-bit ones)."""
    if colors.dtype == np.uint8:
        return colors
    kind, top = ("float", 1.0) if colors.dtype.kind == "f" else ("16-bit", 65535) if colors.dtype == np.uint16 else ("integer", 255)
    values = colors.astype(np.float64)
    if len(values) and not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= top):
        raise Gen3cInputError(
            f"point cloud {quoted_path(p)} has {kind} colours outside [0, {top:g}] (from {values.min():g} to {values.max():g}): write red, green, blue as 0–255 uchar"
        )
    return (values * (255 / top)).round().astype(np.uint8)
