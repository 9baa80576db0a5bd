"""Video files: H.264 mp4 writing (atomic, also streamed chunk by chunk) and reading."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gen3c.errors import Gen3cInputError, first_line
from gen3c.io.atomic import atomic_path
from gen3c.io.images import outside_unit_range, to_uint8

DEFAULT_FPS = 24


def _check_range(frames: Tensor) -> None:
    """Refuse float frames outside [−1, 1] (beyond float error), which would be written clipped."""
    outside = outside_unit_range(frames, "frames")
    if outside is not None:
        span, hint = outside
        raise Gen3cInputError(f"video frames span {span}: pass float frames in [-1, 1]{hint}")


class _Abandoned(BaseException):
    """Thrown into imageio-ffmpeg's frame writer by :meth:`VideoWriter.abandon`."""


class VideoWriter:
    """Append frames to an H.264 mp4 (yuv420p, plays everywhere) chunk by chunk.

    The file is written beside ``path`` under a temporary name and renamed onto ``path`` only
    when the writer closes without an error, so memory stays flat however long the video is and
    an interrupted run leaves nothing half-written. Use it as a context manager::

        with VideoWriter("out.mp4", fps=24) as writer:
            for chunk in chunks:
                writer.write(chunk)  # (T, 3, H, W) in [−1, 1] or (T, H, W, 3) uint8

    Args:
        quality: imageio-ffmpeg quality 1–10 (8 ≈ visually lossless for our content).
    """

    def __init__(self, path: str | os.PathLike, fps: float = DEFAULT_FPS, quality: int = 8) -> None:
        self.path = Path(path)
        self.fps = fps
        self.quality = quality
        self.frames_written = 0
        self._size: tuple[int, int] | None = None
        self._encoder = None
        self._stack: contextlib.ExitStack | None = None
        self._tmp: Path | None = None
        self._finished = False

    def __enter__(self) -> VideoWriter:
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        return self

    def write(self, frames: Tensor | np.ndarray) -> None:
        """Append (T, 3, H, W) float frames in [−1, 1] or (T, H, W, 3) uint8 frames."""
        if self._tmp is None or self._finished:
            raise RuntimeError("VideoWriter.write outside its with-block or after finish()")
        # The shape is checked as given (a float tensor of the wrong layout, named as it came).
        given = tuple(frames.shape) if hasattr(frames, "shape") else type(frames).__name__
        if isinstance(frames, Tensor) and frames.dtype.is_floating_point and (frames.ndim != 4 or frames.shape[1] != 3):
            raise Gen3cInputError(f"video frames have shape {given}: pass (T, 3, H, W) floats in [-1, 1] or (T, H, W, 3) uint8")
        if isinstance(frames, Tensor) and frames.dtype.is_floating_point and frames.numel():
            _check_range(frames)
        array = to_uint8(frames) if isinstance(frames, Tensor) and frames.dtype.is_floating_point else np.asarray(frames)
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
            raise Gen3cInputError(f"video frames are {given} {array.dtype}: pass (T, 3, H, W) floats in [-1, 1] or (T, H, W, 3) uint8")
        if array.shape[1] % 2 or array.shape[2] % 2:
            raise Gen3cInputError(f"H.264 needs even frame sizes, got {array.shape[1]}×{array.shape[2]}: crop or resize the frames")
        if self._size is not None and array.shape[1:3] != self._size:
            raise Gen3cInputError(f"frames of {array.shape[1]}×{array.shape[2]} after frames of {self._size[0]}×{self._size[1]}")
        if self._encoder is None:
            self._size = array.shape[1:3]
            self._encoder = self._start_encoder(*self._size)
        for frame in array:
            try:
                self._encoder.send(np.ascontiguousarray(frame))
            except OSError as exc:  # ffmpeg has stopped (killed, a full disk): the pipe to it is broken
                raise self._encoder_error(f"ffmpeg stopped after {self.frames_written} frames ({first_line(exc)})") from None
            self.frames_written += 1

    def _start_encoder(self, height: int, width: int):
        """imageio-ffmpeg's frame writer (a generator fed one (H, W, 3) uint8 frame per ``send``),
        its ffmpeg started."""
        try:
            import imageio_ffmpeg
        except ImportError:  # a dependency of gen3c
            raise Gen3cInputError(
                f"video {str(self.path)!r} could not be written: this Python environment lacks imageio-ffmpeg: pip install imageio-ffmpeg"
            ) from None
        encoder = imageio_ffmpeg.write_frames(
            str(self._tmp), (width, height), pix_fmt_in="rgb24", pix_fmt_out="yuv420p", fps=self.fps, quality=self.quality,
            codec="libx264", macro_block_size=1, ffmpeg_log_level="error", output_params=["-preset", "fast"],
        )  # fmt: skip
        encoder.send(None)  # starts ffmpeg
        return encoder

    def finish(self) -> None:
        """Let ffmpeg encode the frames it still holds and check that the file has them all; the
        file is renamed onto ``path`` when the with-block ends (at once, nothing left to fail).

        Raises:
            Gen3cInputError: ffmpeg stopped before it had encoded every frame.
        """
        if self._finished:
            return
        self._finished = True
        encoder, self._encoder = self._encoder, None
        if encoder is not None:
            encoder.close()  # closes ffmpeg's input and waits until it has written the file
        if self.frames_written == 0:
            raise ValueError(f"no frames were written to {self.path}")
        # ffmpeg can stop after the last frame went into its pipe, and its exit status does not
        # reach us through imageio-ffmpeg: the frames in the file tell.
        try:
            encoded = count_video_frames(self._tmp)
        except Gen3cInputError:  # no readable video at all
            encoded = 0
        if encoded != self.frames_written:
            raise self._encoder_error(f"ffmpeg encoded {encoded} of its {self.frames_written} frames")

    def abandon(self) -> None:
        """Stop ffmpeg at once, without letting it encode the frames it still holds (which can
        take many seconds): the file is not wanted (an error, Ctrl-C). The with-block does this
        on an exception and removes the temporary file."""
        encoder, self._encoder = self._encoder, None
        if encoder is None:
            return
        # imageio-ffmpeg kills its ffmpeg when a BaseException other than GeneratorExit reaches
        # the writer (as for Ctrl-C there); close() would wait for ffmpeg to finish the video.
        with contextlib.suppress(_Abandoned, StopIteration):
            encoder.throw(_Abandoned())

    def __exit__(self, exc_type, exc, tb) -> bool:
        stack, self._stack = self._stack, None
        try:
            if exc_type is None:
                self.finish()
            else:
                self.abandon()
        except BaseException:
            self.abandon()
            stack.__exit__(*sys.exc_info())  # removes the temporary file
            raise
        finally:
            self._tmp = None
        return stack.__exit__(exc_type, exc, tb)  # renames on success, removes on error

    def _encoder_error(self, what: str) -> Gen3cInputError:
        folder = str(self.path.parent)
        return Gen3cInputError(f"video {str(self.path)!r} could not be written: {what}; check the free space in {folder!r} and run again")


def write_video(path: str | os.PathLike, frames: Tensor | np.ndarray, fps: float = DEFAULT_FPS, quality: int = 8) -> Path:
    """Encode frames as an H.264 mp4 (yuv420p, plays everywhere), atomically.

    Args:
        frames: (T, 3, H, W) float in [−1, 1], or (T, H, W, 3) uint8. H and W must be even.
        quality: imageio-ffmpeg quality 1–10 (8 ≈ visually lossless for our content).
    """
    with VideoWriter(path, fps, quality) as writer:
        writer.write(frames)
    return Path(path)


def count_video_frames(path: str | os.PathLike, name: str = "video") -> int:
    """Number of frames of a video, counted from its packets (no decoding)."""
    import av

    p = Path(path)
    if not p.is_file():
        raise Gen3cInputError(f"{name} {str(p)!r} does not exist: check the path")
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise Gen3cInputError(f"{name} {str(p)!r} has no video stream")
            stream = container.streams.video[0]
            count = sum(1 for packet in container.demux(stream) if packet.size > 0)
    except Gen3cInputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise Gen3cInputError(f"{name} {str(p)!r} cannot be read ({exc}): re-encode it as H.264 mp4") from None
    if count == 0:
        raise Gen3cInputError(f"{name} {str(p)!r} has no frames")
    return count


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
