"""Video files: H.264 mp4 writing (atomic) and reading."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gen3c.errors import Gen3cInputError
from gen3c.io.atomic import atomic_path
from gen3c.io.images import to_uint8

DEFAULT_FPS = 24


def write_video(path: str | os.PathLike, frames: Tensor | np.ndarray, fps: float = DEFAULT_FPS, quality: int = 8) -> Path:
    """Encode frames as an H.264 mp4 (yuv420p, plays everywhere), atomically.

    Args:
        frames: (T, 3, H, W) float in [−1, 1], or (T, H, W, 3) uint8. H and W must be even.
        quality: imageio-ffmpeg quality 0–10 (8 ≈ visually lossless for our content).
    """
    import imageio.v2 as imageio

    array = to_uint8(frames) if isinstance(frames, Tensor) else np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8 or (T, 3, H, W) float, got {array.shape} {array.dtype}")
    if array.shape[1] % 2 or array.shape[2] % 2:
        raise ValueError(f"H.264 needs even frame sizes, got {array.shape[1]}×{array.shape[2]}")
    path = Path(path)
    with atomic_path(path) as tmp:
        writer = imageio.get_writer(
            tmp, format="FFMPEG", fps=fps, codec="libx264", quality=quality, pixelformat="yuv420p", macro_block_size=1,
            ffmpeg_params=["-preset", "fast"], ffmpeg_log_level="error",
        )
        try:
            for frame in array:
                writer.append_data(frame)
        finally:
            writer.close()
    return path


def read_video(path: str | os.PathLike, name: str = "video", max_frames: int | None = None, start: int = 0) -> tuple[np.ndarray, float]:
    """Decode a video to (T, H, W, 3) uint8 and its frame rate.

    Args:
        start: first frame to keep; ``max_frames``: how many to keep (None: all).
    """
    import av

    p = Path(path)
    if not p.is_file():
        raise Gen3cInputError(f"{name} {str(p)!r} does not exist: check the path")
    frames = []
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise Gen3cInputError(f"{name} {str(p)!r} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate) if stream.average_rate else DEFAULT_FPS
            for i, frame in enumerate(container.decode(stream)):
                if i < start:
                    continue
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except Gen3cInputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise Gen3cInputError(f"{name} {str(p)!r} cannot be decoded ({exc}): re-encode it as H.264 mp4") from None
    if not frames:
        raise Gen3cInputError(f"{name} {str(p)!r} has no frames from index {start}")
    return np.stack(frames), fps


def frames_to_tensor(frames: np.ndarray) -> Tensor:
    """(T, H, W, 3) uint8 → (T, 3, H, W) float in [−1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
