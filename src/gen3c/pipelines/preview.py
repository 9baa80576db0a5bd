"""The preview generator: the 3D cache's renders with holes filled classically, on a CPU.

It needs no weights and runs in seconds. Holes (what the cache does not see) are filled with
OpenCV inpainting; each filled pixel is then lifted into a *fill cloud* at background depth, so
later frames render the same fill from 3D instead of inpainting it anew: the fill moves with
the camera and does not flicker from frame to frame.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch
from torch import Tensor

from gen3c.cache import BufferRenders, Cache3D, forward_warp
from gen3c.cameras import Cameras, unproject_depth

INPAINT_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def composite_buffers(buffers: BufferRenders) -> tuple[Tensor, Tensor, Tensor]:
    """Merge the buffers of each frame, the nearest valid one winning per pixel.

    Returns:
        ``(color (T, 3, H, W), mask (T, H, W) bool, depth (T, H, W))``.
    """
    valid = buffers.masks[:, :, 0] > 0  # (T, NB, H, W)
    depth = torch.where(valid, buffers.depths[:, :, 0], torch.full_like(buffers.depths[:, :, 0], torch.inf))
    best = depth.argmin(dim=1, keepdim=True)  # (T, 1, H, W)
    color = torch.gather(buffers.colors, 1, best[:, :, None].expand(-1, -1, 3, -1, -1))[:, 0]
    mask = valid.any(dim=1)
    return color, mask, torch.gather(depth, 1, best)[:, 0].masked_fill(~mask, 0.0)


def fill_background_depth(depth: np.ndarray, holes: np.ndarray, radius: int = 3) -> np.ndarray:
    """Depth for hole pixels, biased to the background: holes are mostly disocclusions, so
    each gets the larger of the inpainted depth and the farthest valid depth nearby."""
    filled = cv2.inpaint(depth.astype(np.float32), holes.astype(np.uint8), radius, cv2.INPAINT_TELEA)
    far = cv2.dilate(np.where(holes, 0, depth).astype(np.float32), np.ones((7, 7), np.uint8))
    out = np.where(holes, np.maximum(filled, far), depth)
    if not np.isfinite(out).all() or (out[holes] <= 0).any():
        fallback = float(depth[~holes].max()) if (~holes).any() else 1.0
        out = np.where(holes & ~(out > 0), fallback, out)
    return out


class PreviewGenerator:
    """Fills what the cache does not see; no model, no downloads.

    Args:
        inpaint: "telea" or "ns" (OpenCV's two inpainting methods).
        inpaint_radius: neighbourhood radius in pixels.
    """

    name = "preview"

    def __init__(self, inpaint: str = "telea", inpaint_radius: int = 3) -> None:
        if inpaint not in INPAINT_METHODS:
            raise ValueError(f"inpaint must be one of {sorted(INPAINT_METHODS)}, got {inpaint!r}")
        self.inpaint = INPAINT_METHODS[inpaint]
        self.inpaint_radius = inpaint_radius

    def generate(
        self,
        cache: Cache3D,
        cameras: Cameras,
        first_frame: Tensor | None = None,
        *,
        buffers: BufferRenders | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Tensor:
        """Render a video along ``cameras``.

        Args:
            cache: the 3D cache.
            cameras: T target cameras.
            first_frame: (3, H, W) in [−1, 1]; as in GEN3C, frame 0 shows the conditioning
                image wherever the cache leaves a hole.
            buffers: ``cache.render(cameras)`` if already computed.
            progress: called with 1 after each frame.
        Returns:
            (T, 3, H, W) frames in [−1, 1].
        """
        if buffers is None:
            buffers = cache.render(cameras)
        color, mask, depth = composite_buffers(buffers)
        T, H, W = len(cameras), cameras.height, cameras.width
        fill_points = torch.empty(0, 3)
        fill_colors = torch.empty(0, 3)
        frames = torch.empty(T, 3, H, W)
        w2c, K = cameras.w2c.cpu(), cameras.K.cpu()
        for t in range(T):
            c, m, d = color[t].cpu().clone(), mask[t].cpu().clone(), depth[t].cpu().clone()
            if fill_points.shape[0]:
                fill = forward_warp(fill_points, fill_colors, w2c[t : t + 1], K[t : t + 1], H, W, mode="zbuffer")
                use = ~m & (fill.mask[0, 0] > 0)
                c = torch.where(use, fill.color[0], c)
                d = torch.where(use, fill.depth[0, 0], d)
                m |= use
            holes = ~m
            if t == 0 and first_frame is not None:
                c = torch.where(holes, first_frame.cpu().float(), c)
            if holes.any():
                c, d = self._fill(c, d, holes, skip_color=(t == 0 and first_frame is not None))
                points = unproject_depth(d, K[t], w2c[t])[holes]
                fill_points = torch.cat([fill_points, points])
                fill_colors = torch.cat([fill_colors, c.permute(1, 2, 0)[holes]])
            frames[t] = c
            if progress is not None:
                progress(1)
        return frames

    def _fill(self, color: Tensor, depth: Tensor, holes: Tensor, skip_color: bool) -> tuple[Tensor, Tensor]:
        hole_np = holes.numpy()
        depth_np = fill_background_depth(depth.numpy(), hole_np, self.inpaint_radius)
        if not skip_color:
            rgb = ((color.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
            filled = cv2.inpaint(np.ascontiguousarray(rgb), hole_np.astype(np.uint8), self.inpaint_radius, self.inpaint)
            color = torch.where(holes, torch.from_numpy(filled).permute(2, 0, 1).float() / 127.5 - 1.0, color)
        return color, torch.from_numpy(depth_np)
