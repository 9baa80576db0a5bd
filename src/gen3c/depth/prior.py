"""A zero-download stand-in for depth: a ground plane and a far wall.

When no estimator can be loaded (no weights, no network), the preview can still run on any
photo with this deliberately simple scene: a level camera looks at a wall at depth ``far`` (1);
the lower part of the image is a ground plane that rises from depth ``near`` (½) at the bottom
row to the wall. It is not an estimate of the photo — the image is pasted on that shape — but it
gives the camera motion plausible parallax. ``kind="relative"``: the wall fills the rows
v ≤ cy + (near / far)·(H − 1 − cy), more than half of them whenever cy ≥ 1 with the defaults
(any principal point but one on the top row), so the median depth is 1 and
``--movement_distance`` has GEN3C's meaning relative to the wall. (With cy < 1 and an even H,
exactly half the rows are wall and the median, the lower middle value, is the ground's row
just short of it: 0.979 for 48 rows. Another ``near`` / ``far`` keeps the median at ``far`` for a
principal point below about (H − 1)·(far − 2·near) / (2·(far − near)).)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gen3c.depth.base import DepthEstimate, camera_for, estimator_input
from gen3c.depth.names import PRIOR_NAME


def prior_notice(reason: str) -> str:
    """What the CLI prints when it falls back to the prior."""
    return (
        f"no depth estimator available ({reason}); using a flat geometric prior (ground plane + far wall) "
        "instead of real depth. For real depth pass --depth_path, or download MoGe "
        "(huggingface.co/Ruicheng/moge-vitl, model.pt) and pass --depth_estimator PATH"
    )


def ground_and_wall_depth(height: int, width: int, K: Tensor, near: float = 0.5, far: float = 1.0) -> Tensor:
    """(H, W) z-depth of a level camera above a ground plane, facing a wall at depth ``far``.

    The horizon is the principal point's row cy; the ground under row v > cy is at depth
    ``near · (H − 1 − cy) / (v − cy)`` (a plane: depth ∝ 1 / (v − cy)), so the bottom row is
    at ``near``; everything is capped at the wall. The implied camera height is
    ``near · (H − 1 − cy) / fy``.
    """
    if not 0 < near <= far:
        raise ValueError(f"need 0 < near <= far, got near={near}, far={far}")
    cy = float(K[1, 2])
    v = torch.arange(height, dtype=torch.float32)
    below = v - cy
    ground = torch.where(below > 0, near * max(height - 1 - cy, 1e-6) / below.clamp(min=1e-6), torch.full_like(v, far))
    return ground.clamp(max=far)[:, None].expand(height, width).contiguous()


class GeometricPriorEstimator:
    """:func:`ground_and_wall_depth` behind the :class:`~gen3c.depth.base.DepthEstimator` interface."""

    name = PRIOR_NAME
    kind = "relative"

    def __init__(self, near: float = 0.5, far: float = 1.0) -> None:
        self.near, self.far = near, far

    def __repr__(self) -> str:
        return f"GeometricPriorEstimator(near={self.near}, far={self.far})"

    def estimate(
        self,
        image: Any,
        size: tuple[int, int] | None = None,
        intrinsics: Tensor | None = None,
        fov: float | None = None,
    ) -> DepthEstimate:
        rgb, size = estimator_input(image, size)
        H, W = rgb.shape[:2]
        K, source = camera_for(H, W, intrinsics, fov)
        depth = ground_and_wall_depth(H, W, K, self.near, self.far)
        estimate = DepthEstimate(depth, K, torch.ones(H, W, dtype=torch.bool), self.kind, self.name, source)
        return estimate if size is None else estimate.resized(size)
