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
from gen3c.cameras import Cameras, invert_pose

INPAINT_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def composite_buffers(buffers: BufferRenders) -> tuple[Tensor, Tensor, Tensor]:
    """Merge the buffers of each frame, the nearest valid one winning per pixel.

    Returns:
        ``(color (T, 3, H, W), mask (T, H, W) bool, depth (T, H, W))``.
    """
    color = buffers.colors[:, 0]
    mask = buffers.masks[:, 0, 0] > 0
    depth = buffers.depths[:, 0, 0]
    for i in range(1, buffers.num_buffers):
        valid = buffers.masks[:, i, 0] > 0
        wins = valid & (~mask | (buffers.depths[:, i, 0] < depth))
        color = torch.where(wins[:, None], buffers.colors[:, i], color)
        depth = torch.where(wins, buffers.depths[:, i, 0], depth)
        mask |= valid
    return color, mask, depth


def unproject_pixels(pixels: Tensor, depth: Tensor, K: Tensor, w2c: Tensor) -> Tensor:
    """World points (N, 3) of the True pixels of ``pixels`` (H, W) at ``depth`` (N,)."""
    v, u = pixels.nonzero(as_tuple=True)
    x = (u.float() - K[0, 2]) / K[0, 0]
    y = (v.float() - K[1, 2]) / K[1, 1]
    cam = torch.stack([x * depth, y * depth, depth], dim=1)
    c2w = invert_pose(w2c)
    return cam @ c2w[:3, :3].T + c2w[:3, 3]


def close_cracks(color: Tensor, depth: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Fill one-pixel cracks between splats with the mean of their covered 3×3 neighbours.

    Cracks open wherever the camera magnifies the cache; inpainting them and adding them to the
    fill cloud would stack slightly different layers of fill frame after frame (speckle).

    Args:
        color: (3, H, W); depth: (H, W); mask: (H, W) bool coverage.
    """
    covered = mask.numpy().astype(np.uint8)
    closed = cv2.morphologyEx(covered, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(bool) | mask.numpy()
    cracks = torch.from_numpy(closed & ~mask.numpy())
    if not cracks.any():
        return color, depth, mask
    covered_f = covered.astype(np.float32)
    stacked = np.concatenate([(color * mask).permute(1, 2, 0).numpy(), (depth * mask)[..., None].numpy(), covered_f[..., None]], axis=2)
    box = cv2.blur(np.ascontiguousarray(stacked), (3, 3), borderType=cv2.BORDER_CONSTANT)
    mean = torch.from_numpy(box[..., :4] / np.maximum(box[..., 4:], 1e-6)).permute(2, 0, 1)
    color = torch.where(cracks, mean[:3], color)
    depth = torch.where(cracks, mean[3], depth)
    return color, depth, mask | cracks


def foreground_rim(depth: np.ndarray, holes: np.ndarray, width: int = 8, ratio: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Valid pixels bordering a hole that are clearly nearer than the farthest pixel bordering
    the same hole: the foreground side of a disocclusion.

    Args:
        depth: (H, W) float depth; holes: (H, W) bool.
    Returns:
        ``(rim, border)``: (H, W) bool each; ``border`` is every valid pixel next to a hole.
    """
    count, labels = cv2.connectedComponents(holes.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(holes), np.zeros_like(holes)
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    # Each border pixel takes the label of a hole next to it (the largest label nearby).
    near_label = cv2.dilate(labels.astype(np.float32), kernel).astype(np.int64)
    border = (near_label > 0) & ~holes
    far = np.zeros(count, np.float32)
    np.maximum.at(far, near_label[border], depth[border].astype(np.float32))
    rim = np.zeros_like(holes)
    rim[border] = depth[border] < ratio * far[near_label[border]]
    return rim, border


def fill_holes(rgb: np.ndarray, depth: np.ndarray, holes: np.ndarray, radius: int, method: int) -> tuple[np.ndarray, np.ndarray]:
    """Inpaint colour (H, W, 3) uint8 and depth (H, W) in the holes from the background only.

    Holes are mostly disocclusions: the foreground rim next to each hole is hidden from the
    inpainting, so both colour and depth continue the background instead of smearing the object.
    """
    rim, border = foreground_rim(depth, holes)
    source_mask = (holes | rim).astype(np.uint8)
    depth_out = depth.astype(np.float32).copy()
    background = border & ~rim
    if background.any():
        # Each hole pixel takes the depth of its nearest background border pixel: unlike
        # gradient-based inpainting this never overshoots, so the fill sits on the background.
        _, labels = cv2.distanceTransformWithLabels((~background).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
        depth_out[holes] = depth.reshape(-1)[np.flatnonzero(background.reshape(-1))][labels[holes] - 1]
    else:
        depth_out[holes] = float(depth[~holes].max()) if (~holes).any() else 1.0
    rgb_filled = _inpaint_smooth(rgb, source_mask, radius, method)
    return np.where(holes[..., None], rgb_filled, rgb), depth_out


def _inpaint_smooth(rgb: np.ndarray, mask: np.ndarray, radius: int, method: int, factor: int = 4) -> np.ndarray:
    """Inpaint at 1/``factor`` resolution and upsample: a smooth fill that changes little from
    one frame to the next (full-resolution inpainting of textures turns into speckle)."""
    h, w = mask.shape
    if min(h, w) < 8 * factor:
        return cv2.inpaint(np.ascontiguousarray(rgb), mask, radius, method)
    small = (w // factor, h // factor)
    keep = (mask == 0).astype(np.float32)
    # Average only the known pixels of each block, so holes do not darken the small image.
    weight = cv2.resize(keep, small, interpolation=cv2.INTER_AREA)
    color = cv2.resize(rgb.astype(np.float32) * keep[..., None], small, interpolation=cv2.INTER_AREA)
    small_rgb = np.clip(color / np.maximum(weight, 1e-6)[..., None], 0, 255).astype(np.uint8)
    small_mask = (weight < 0.5).astype(np.uint8)
    filled = cv2.inpaint(small_rgb, small_mask, max(1, radius // 2), method)
    return cv2.resize(filled, (w, h), interpolation=cv2.INTER_LINEAR)


class PreviewGenerator:
    """Fills what the cache does not see; no model, no downloads.

    Args:
        inpaint: "telea" or "ns" (OpenCV's two inpainting methods).
        inpaint_radius: neighbourhood radius in pixels.
    """

    name = "preview"
    needs_buffer_depth = True  # buffers are merged nearest-first

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
            c, m, d = color[t].cpu(), mask[t].cpu(), depth[t].cpu()
            if fill_points.shape[0]:
                fill = forward_warp(fill_points, fill_colors, w2c[t : t + 1], K[t : t + 1], H, W)
                use = ~m & (fill.mask[0, 0] > 0)
                c = torch.where(use, fill.color[0], c)
                d = torch.where(use, fill.depth[0, 0], d)
                m = m | use
            c, d, m = close_cracks(c, d, m)
            holes = ~m
            if t == 0 and first_frame is not None:
                # Frame 0 shows the conditioning image (as in GEN3C). Its depth-edge pixels,
                # which the cache left out, blend foreground and background colours: they must
                # not seed the fill cloud, or the object's colour would ghost into disocclusions.
                c = torch.where(holes, first_frame.cpu().float(), c)
            elif holes.any():
                c, d = self._fill(c, d, holes)
                points = unproject_pixels(holes, d[holes], K[t], w2c[t])
                fill_points = torch.cat([fill_points, points])
                fill_colors = torch.cat([fill_colors, c.permute(1, 2, 0)[holes]])
            frames[t] = c
            if progress is not None:
                progress(1)
        return frames

    def _fill(self, color: Tensor, depth: Tensor, holes: Tensor) -> tuple[Tensor, Tensor]:
        rgb = ((color.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        rgb, depth_np = fill_holes(rgb, depth.numpy(), holes.numpy(), self.inpaint_radius, self.inpaint)
        color = torch.where(holes, torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1.0, color)
        return color, torch.from_numpy(depth_np)
