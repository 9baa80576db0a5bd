"""Baselines without a 3D cache, as generators of :mod:`gen3c.pipelines.camera_video`.

They follow the generator protocol (``generate(cache, cameras, first_frame, *, buffers=None,
progress=None, chunk=0)``; drawing no noise, they ignore ``chunk``) so the benchmark runs them
exactly like the preview and the GEN3C model:

- :class:`StillGenerator`: the source image held still — what a generator that ignores the
  camera would make.
- :class:`HomographyGenerator`: the source image warped by one homography per frame, the
  one induced by a fronto-parallel plane at the source's median depth — camera control
  without 3D structure.
- :class:`CacheRenderGenerator`: the cache's render with its holes left black — the 3D
  cache's contribution alone, before any hole filling.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import cv2
import numpy as np
import torch
from torch import Tensor

from gen3c.cache import BufferRenders, Cache3D
from gen3c.cameras import Cameras
from gen3c.io.depth import median_scene_depth
from gen3c.pipelines.preview import composite_buffers


class _SourceImageBaseline(ABC):
    """A baseline made from the source image (``first_frame``, which it requires) and the target
    cameras: a generator whose frames come from :meth:`_frames`."""

    name: str

    def generate(
        self,
        cache: Cache3D,
        cameras: Cameras,
        first_frame: Tensor | None = None,
        *,
        buffers: BufferRenders | None = None,
        progress: Callable[[int], None] | None = None,
        chunk: int = 0,
    ) -> Tensor:
        """Returns (T, 3, H, W) in [−1, 1]."""
        if first_frame is None:
            raise ValueError(f"the {self.name} baseline needs the source image as first_frame")
        return self._frames(first_frame.float().cpu(), cache, cameras, progress)

    @abstractmethod
    def _frames(self, image: Tensor, cache: Cache3D, cameras: Cameras, progress: Callable[[int], None] | None) -> Tensor:
        """(T, 3, H, W) from the source ``image`` (3, H, W), float on the CPU."""


class StillGenerator(_SourceImageBaseline):
    """Every frame is the source image."""

    name = "still"

    def _frames(self, image: Tensor, cache: Cache3D, cameras: Cameras, progress: Callable[[int], None] | None) -> Tensor:
        """(T, 3, H, W): the source ``image`` (3, H, W) repeated."""
        if progress is not None:
            progress(len(cameras))
        return image[None].repeat(len(cameras), 1, 1, 1)


def plane_homography(K_src: Tensor, w2c_src: Tensor, K_dst: Tensor, w2c_dst: Tensor, plane_depth: float) -> Tensor:
    """The homography mapping source pixels to target pixels for the plane z = ``plane_depth``
    in the source camera: ``H = K_dst (R + t nᵀ / d) K_src⁻¹`` with (R, t) the source-to-target
    camera motion and n = (0, 0, 1).

    Args:
        K_src, K_dst: (3, 3); w2c_src, w2c_dst: (4, 4).
    Returns:
        (3, 3) float64, normalised so H[2, 2] = 1.
    """
    motion = w2c_dst.double() @ torch.linalg.inv(w2c_src.double())
    R, t = motion[:3, :3], motion[:3, 3:]
    n = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    H = K_dst.double() @ (R + t @ n / plane_depth) @ torch.linalg.inv(K_src.double())
    return H / H[2, 2]


class HomographyGenerator(_SourceImageBaseline):
    """The source image warped into each target camera by :func:`plane_homography` at the
    source view's median depth, over all its pixels with depth, whatever the cache's edge filter
    keeps (the cache is read only for the source camera and that depth).
    Pixels that come from outside the source image repeat its border."""

    name = "homography"

    def _frames(self, image: Tensor, cache: Cache3D, cameras: Cameras, progress: Callable[[int], None] | None) -> Tensor:
        """(T, 3, H, W): the source ``image`` (3, H, W) warped into each camera."""
        source = cache.views[-1]  # the oldest view: the source image
        w2c_src, K_src = source.w2c[0].cpu(), source.K[0].cpu()
        # Every source pixel with depth, the edge filter's (``filtered``) too: the source view's median
        # depth (the scene's scale, :func:`~gen3c.io.depth.median_scene_depth`), not the cache's.
        kept = (source.valid[0] | source.filtered[0]).cpu()
        cam_points = source.points[0].cpu()[kept] @ w2c_src[:3, :3].T + w2c_src[:3, 3]
        plane_depth = median_scene_depth(cam_points[:, 2])
        plane_depth = 1.0 if plane_depth is None else plane_depth
        src = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
        H, W = cameras.height, cameras.width
        frames = torch.empty(len(cameras), 3, H, W)
        for i in range(len(cameras)):
            M = plane_homography(K_src, w2c_src, cameras.K[i].cpu(), cameras.w2c[i].cpu(), plane_depth).numpy()
            warped = cv2.warpPerspective(src, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            frames[i] = torch.from_numpy(warped).permute(2, 0, 1)
            if progress is not None:
                progress(1)
        return frames


class CacheRenderGenerator:
    """The cache's render, nearest buffer first, with holes black (−1)."""

    name = "cache"

    def generate(
        self,
        cache: Cache3D,
        cameras: Cameras,
        first_frame: Tensor | None = None,
        *,
        buffers: BufferRenders | None = None,
        progress: Callable[[int], None] | None = None,
        chunk: int = 0,
    ) -> Tensor:
        """Returns (T, 3, H, W) in [−1, 1]."""
        if buffers is None:
            buffers = cache.render(cameras)
        color, mask, _ = composite_buffers(buffers)
        if progress is not None:
            progress(len(cameras))
        return torch.where(mask[:, None], color, torch.full_like(color, -1.0)).cpu()
