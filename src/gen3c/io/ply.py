"""Point clouds as binary PLY (x, y, z float32; red, green, blue uint8)."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

from gen3c.io.atomic import atomic_path


def write_ply(path: str | os.PathLike, points: Tensor, colors: Tensor) -> None:
    """Write (N, 3) points with (N, 3) colours in [−1, 1] as a binary PLY file, atomically."""
    from plyfile import PlyData, PlyElement

    pts = points.detach().float().cpu().numpy()
    rgb = ((colors.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    vertex = np.empty(len(pts), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    vertex["x"], vertex["y"], vertex["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(vertex, "vertex")], text=False).write(str(tmp))


def read_ply(path: str | os.PathLike) -> tuple[Tensor, Tensor]:
    """Read a PLY written by :func:`write_ply`: (N, 3) points and (N, 3) uint8 colours."""
    from plyfile import PlyData

    v = PlyData.read(str(path))["vertex"].data
    points = np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float32)
    colors = np.stack([v["red"], v["green"], v["blue"]], axis=1)
    return torch.from_numpy(points), torch.from_numpy(colors)
