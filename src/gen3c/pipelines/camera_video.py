"""Camera-controlled video from a 3D cache: the composition the CLI and the GUI both call.

    source view(s) → :func:`prepare_source` → :func:`build_cache` → cameras (preset or file)
    → :func:`generate_video` (render buffers, run a generator) → :func:`save_outputs`

A *generator* is any object with ``generate(cache, cameras, first_frame, *, buffers=None,
progress=None) -> (T, 3, H, W)`` and ``check_num_frames(n)``: the CPU preview
(:class:`~gen3c.pipelines.preview.PreviewGenerator`) or the GEN3C diffusion model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from gen3c.cache import BufferRenders, Cache3D
from gen3c.cameras import Cameras, resize_crop_intrinsics, resize_intrinsics
from gen3c.errors import Gen3cInputError
from gen3c.io.atomic import ensure_writable_dir, write_text_atomic
from gen3c.io.camera_files import save_cameras
from gen3c.io.images import resize_image
from gen3c.io.ply import write_ply
from gen3c.io.video import DEFAULT_FPS, write_video
from gen3c.trajectories import center_depth_for, preset_trajectory

#: ``progress(stage, total)`` returns a function to call with the number of steps just done.
ProgressFactory = Callable[[str, int], Callable[[int], None]]
MAX_FRAMES = 100_000


class VideoGenerator(Protocol):
    name: str

    def generate(
        self,
        cache: Cache3D,
        cameras: Cameras,
        first_frame: Tensor | None = None,
        *,
        buffers: BufferRenders | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Tensor: ...


@dataclass
class SourceView:
    """One source view at the working resolution.

    Attributes:
        image: (3, H, W) in [−1, 1].
        depth: (H, W) z-depth (0 where invalid).
        K: (3, 3) intrinsics in pixels of H × W.
        w2c: (4, 4) pose; the identity for single-image input.
        valid: (H, W) bool, pixels allowed into the cache.
        depth_kind: "relative" (up to scale, e.g. MoGe) or "metric" (incl. user depth).
    """

    image: Tensor
    depth: Tensor
    K: Tensor
    w2c: Tensor = field(default_factory=lambda: torch.eye(4))
    valid: Tensor | None = None
    depth_kind: str = "metric"

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.image.shape[-2:])


def prepare_source(
    image: Tensor,
    depth: Tensor,
    K: Tensor,
    resolution: tuple[int, int],
    resize_mode: str = "crop",
    valid: Tensor | None = None,
    w2c: Tensor | None = None,
    depth_kind: str = "metric",
) -> SourceView:
    """Bring an image, its depth and intrinsics to the working resolution.

    Args:
        image: (3, h, w) in [−1, 1]; depth: (h, w); K: (3, 3) in pixels of h × w.
        resolution: working (H, W).
        resize_mode: "crop" (keep aspect, centre-crop) or "stretch" (GEN3C's plain resize).
        valid: optional (h, w) bool.
    """
    size = tuple(image.shape[-2:])
    if tuple(depth.shape) != size:
        raise ValueError(f"depth {tuple(depth.shape)} and image {size} must have the same size here")
    if valid is None:
        valid = depth > 0
    # GEN3C resizes depth bilinearly; the edge filter later drops the in-between points.
    stacked = torch.cat([image.float(), depth[None].float(), valid[None].float()])
    resized = resize_image(stacked, resolution, resize_mode)
    # Validity is resized without blending: a pixel stays valid only if fully valid.
    new_valid = resized[4] > 0.999
    new_K = (resize_intrinsics if resize_mode == "stretch" else resize_crop_intrinsics)(K.float(), size, resolution)
    return SourceView(
        image=resized[:3].clamp(-1, 1),
        depth=torch.where(new_valid, resized[3], torch.zeros_like(resized[3])),
        K=new_K,
        w2c=(torch.eye(4) if w2c is None else w2c).float(),
        valid=new_valid,
        depth_kind=depth_kind,
    )


def build_cache(
    views: list[SourceView],
    filter_points_threshold: float = 0.05,
    foreground_masking: bool = False,
    splat: str = "bilinear",
    max_buffers: int = 2,
) -> Cache3D:
    """A :class:`Cache3D` holding ``views`` (the last one ends up as buffer 0, newest first)."""
    cache = Cache3D(max_buffers, filter_points_threshold, foreground_masking, splat)
    for view in views:
        cache.add_view(view.image, view.depth, view.K, view.w2c, view.valid)
    return cache


def preset_cameras(
    source: SourceView,
    trajectory: str,
    camera_rotation: str,
    num_frames: int,
    movement_distance: float = 0.3,
    trajectory_scale: str = "auto",
) -> Cameras:
    """GEN3C's preset trajectory relative to ``source`` (see :mod:`gen3c.trajectories`)."""
    center = center_depth_for(trajectory_scale, source.depth[source.depth > 0], source.depth_kind)
    H, W = source.size
    return preset_trajectory(trajectory, camera_rotation, num_frames, source.w2c, source.K, H, W, movement_distance, center)


def check_num_frames(num_frames: int, generator: object) -> None:
    """Frame counts every generator accepts, then the generator's own rule."""
    if not 1 <= num_frames <= MAX_FRAMES:
        raise Gen3cInputError(f"num_video_frames {num_frames} is impossible: pass a count between 1 and {MAX_FRAMES}")
    check = getattr(generator, "check_num_frames", None)
    if check is not None:
        check(num_frames)


@dataclass
class VideoResult:
    """Frames (T, 3, H, W) in [−1, 1], the buffer renders that conditioned them, the cameras."""

    frames: Tensor
    buffers: BufferRenders
    cameras: Cameras


def generate_video(
    cache: Cache3D,
    cameras: Cameras,
    generator: VideoGenerator,
    first_frame: Tensor | None = None,
    progress: ProgressFactory | None = None,
) -> VideoResult:
    """Render the cache along ``cameras`` and let ``generator`` make the video."""
    check_num_frames(len(cameras), generator)
    T = len(cameras)
    buffers = cache.render(cameras, progress=progress("Rendering 3D cache", T) if progress else None)
    frames = generator.generate(
        cache, cameras, first_frame, buffers=buffers, progress=progress(f"Generating ({generator.name})", T) if progress else None
    )
    return VideoResult(frames=frames, buffers=buffers, cameras=cameras)


def buffer_panel(result: VideoResult) -> Tensor:
    """GEN3C's ``--save_buffer`` layout: each buffer's render side by side, left of the
    generated frame. Returns (T, 3, H, W·(1 + NB))."""
    b = result.buffers
    panels = [b.colors[:, i] for i in range(b.num_buffers)]
    return torch.cat([*panels, result.frames.to(b.colors.device)], dim=-1)


def mask_panel(result: VideoResult) -> Tensor:
    """Each buffer's validity mask side by side (white = seen by the cache): (T, 3, H, W·NB)."""
    b = result.buffers
    return torch.cat([(b.masks[:, i] * 2 - 1).expand(-1, 3, -1, -1) for i in range(b.num_buffers)], dim=-1)


def save_outputs(
    result: VideoResult,
    folder: str | Path,
    name: str,
    *,
    save_buffer: bool = False,
    cache: Cache3D | None = None,
    save_point_cloud: bool = False,
    fps: float = DEFAULT_FPS,
    metadata: dict | None = None,
) -> dict[str, Path]:
    """Write the video and its companions; every file is written atomically.

    Files: ``{name}.mp4`` (with ``save_buffer``: GEN3C's widened layout, buffer renders left of
    the generated frame), ``{name}_cameras.json`` (loads back with ``--camera_file``), with
    ``save_buffer`` also ``{name}_buffer_masks.mp4``, with ``save_point_cloud``
    ``{name}.ply``, and ``{name}_run.json`` (the settings of the run) when ``metadata`` is given.
    """
    out = ensure_writable_dir(folder)
    if not name or Path(name).name != name or name in (".", ".."):
        raise Gen3cInputError(f"video_save_name {name!r} must be a plain file name without folders")
    paths: dict[str, Path] = {}
    frames = buffer_panel(result) if save_buffer else result.frames
    paths["video"] = write_video(out / f"{name}.mp4", frames, fps=fps)
    cams_path = out / f"{name}_cameras.json"
    save_cameras(cams_path, result.cameras, fps)
    paths["cameras"] = cams_path
    if save_buffer:
        paths["buffer_masks"] = write_video(out / f"{name}_buffer_masks.mp4", mask_panel(result), fps=fps)
    if save_point_cloud:
        if cache is None:
            raise ValueError("save_point_cloud needs the cache")
        points, colors = cache.point_cloud()
        paths["point_cloud"] = out / f"{name}.ply"
        write_ply(paths["point_cloud"], points, colors)
    if metadata is not None:
        paths["run"] = out / f"{name}_run.json"
        write_text_atomic(paths["run"], json.dumps(metadata, indent=1, default=str))
    return paths
