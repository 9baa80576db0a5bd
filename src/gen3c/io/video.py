"""Video files: H.264 mp4 writing (atomic, also streamed chunk by chunk) and reading."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from torch import Tensor

from gen3c.dependencies import require
from gen3c.errors import (
    Gen3cInputError,
    counted,
    first_line,
    is_whole_number,
    path_to_copy,
    quoted_path,
    shown_value,
)
from gen3c.io.atomic import atomic_path, write_failure
from gen3c.io.images import outside_unit_range, plain_tensor, to_uint8
from gen3c.io.paths import reader_path, writer_path
from gen3c.trajectories import check_fps

DEFAULT_FPS = 24
#: The file types ffmpeg writes H.264 into (a .gif or .webm takes other codecs; no suffix, no type).
H264_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")
#: Those of them in the mp4 family, whose index (``moov``) gen3c writes before the frames
#: (``+faststart``): a browser or a player reading over the network starts playing at once,
#: rather than after fetching the whole file to find the index at its end.
_MP4_SUFFIXES = (".mp4", ".m4v", ".mov")


def _check_range(frames: Tensor) -> None:
    """Refuse float frames outside [−1, 1] (beyond float error), which would be written clipped."""
    outside = outside_unit_range(frames, "frames")
    if outside is not None:
        span, hint = outside
        raise Gen3cInputError(f"video frames span {span}: pass float frames in [-1, 1]{hint}")


def _check_quality(quality: object) -> float:
    """imageio-ffmpeg's quality scale is 1–10 (it asserts so once ffmpeg is about to start)."""
    if isinstance(quality, bool) or not isinstance(quality, int | float | np.integer | np.floating) or not 1 <= quality <= 10:
        raise Gen3cInputError(f"video quality {str(quality)[:20]!r} is out of range: pass a number from 1 (smallest file) to 10 (best)")
    return float(quality)


#: ffmpeg's filters from RGB to H.264's yuv420p: the BT.709 matrix in limited range, and the frames
#: tagged BT.709 throughout (matrix, primaries, transfer), which the encoder writes into the file
#: (its own -color_primaries / -color_trc options alone are overridden by the untagged frames).
_TO_BT709 = (
    "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
    "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv"
)


class VideoWriter:
    """Append frames to an H.264 mp4 (yuv420p, plays everywhere; BT.709 limited range, which the
    file names, with BT.709 primaries and transfer, so players do not guess; its index first,
    so browsers play it while it downloads) chunk by chunk.

    The file is written beside ``path`` under a temporary name and renamed onto ``path`` only
    when the writer closes without an error, so memory stays flat however long the video is and
    an interrupted run leaves nothing half-written. Use it as a context manager::

        with VideoWriter("out.mp4", fps=24) as writer:
            for chunk in chunks:
                writer.write(chunk)  # (T, 3, H, W) in [−1, 1] or (T, H, W, 3) uint8

    Args:
        path: where the video goes, a leading ``~`` being the home folder.
        fps: frames per second, a finite number > 0.
        quality: imageio-ffmpeg quality 1–10 (8 ≈ visually lossless for our content).
    Raises:
        Gen3cInputError: ``path`` no path, ``fps`` or ``quality`` out of range, or ``path`` not of a file type that
            takes H.264 (:data:`H264_SUFFIXES`), before anything is written.
    """

    def __init__(self, path: str | os.PathLike, fps: float = DEFAULT_FPS, quality: float = 8) -> None:
        self.path = writer_path(path, "VideoWriter path", "the video")
        if self.path.suffix.lower() not in H264_SUFFIXES:  # else ffmpeg refuses once frames are encoded, "check the free space"
            raise Gen3cInputError(
                f"video {quoted_path(self.path)} does not end in .mp4: gen3c writes H.264, which goes in {', '.join(H264_SUFFIXES)} files; pass a name ending in .mp4"
            )
        self.fps = check_fps(fps)  # (imageio-ffmpeg would write fps=0 at 16 fps)
        self.quality = _check_quality(quality)
        self.frames_written = 0
        self._size: tuple[int, int] | None = None
        self._encoder: subprocess.Popen | None = None
        self._said: _FirstError | None = None
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
        if isinstance(frames, Tensor):  # (a meta tensor was torch's "Tensor.item() cannot be called on meta tensors")
            frames = plain_tensor(frames, "video frames")
        if isinstance(frames, Tensor) and frames.dtype.is_floating_point and frames.numel():
            _check_range(frames)
        array = to_uint8(frames) if isinstance(frames, Tensor) and frames.dtype.is_floating_point else np.asarray(frames)
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
            floats = "a torch tensor of (T, 3, H, W) floats" if array.dtype.kind == "f" and not isinstance(frames, Tensor) else "(T, 3, H, W) floats"
            raise Gen3cInputError(f"video frames are {given} {array.dtype}: pass {floats} in [-1, 1] or (T, H, W, 3) uint8")
        if array.shape[1] % 2 or array.shape[2] % 2:
            raise Gen3cInputError(f"H.264 needs even frame sizes, got {array.shape[1]}×{array.shape[2]}: crop or resize the frames")
        if self._size is not None and array.shape[1:3] != self._size:
            raise Gen3cInputError(f"frames of {array.shape[1]}×{array.shape[2]} after frames of {self._size[0]}×{self._size[1]}")
        if self._encoder is None:
            self._size = array.shape[1:3]
            self._encoder = self._start_encoder(*self._size)
        for frame in array:
            try:
                self._encoder.stdin.write(np.ascontiguousarray(frame).data)
            except OSError as exc:  # ffmpeg has stopped (killed, a full disk): the pipe to it is broken
                raise self._encoder_error(self._why_it_stopped(exc)) from None
            self.frames_written += 1

    def _start_encoder(self, height: int, width: int) -> subprocess.Popen:
        """imageio-ffmpeg's ffmpeg, started to encode the (H, W, 3) uint8 frames written to its
        stdin, with imageio-ffmpeg's ``write_frames`` settings (quality q as x264's crf
        ``int((1 - q / 10) * 51)``, fps as a rational), converted and tagged as BT.709
        (:data:`_TO_BT709`), an mp4's index before its frames."""
        imageio_ffmpeg = require("imageio_ffmpeg", f"writing video {quoted_path(self.path)}")
        fps = Fraction(self.fps).limit_denominator()
        crf = int((1 - self.quality / 10) * 51)
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error",
            "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{width}x{height}", "-pix_fmt", "rgb24", "-r", str(fps), "-i", "-",
            "-an", "-vcodec", "libx264", "-vf", _TO_BT709, "-pix_fmt", "yuv420p",
            "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
            "-crf", str(crf), "-preset", "fast",
            *(["-movflags", "+faststart"] if self.path.suffix.lower() in _MP4_SUFFIXES else []), str(self._tmp),
        ]  # fmt: skip
        # Its own process group (Ctrl-C in a terminal reaches gen3c, which stops it), set by
        # subprocess itself: imageio-ffmpeg's write_frames does that with a preexec_fn, which runs
        # Python in the forked child, and with PyAV 19 (Python >= 3.12) that child hung for ever
        # freeing another thread's frame converter (any frame.to_ndarray(format=...) leaves one).
        encoder = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, process_group=0)
        self._said = _FirstError(encoder.stderr)  # its error goes into gen3c's message, not onto the terminal
        return encoder

    def finish(self) -> None:
        """Let ffmpeg encode the frames it still holds and check that it succeeded and that the
        file has them all; the file is renamed onto ``path`` when the with-block ends (at once,
        nothing left to fail).

        Raises:
            Gen3cInputError: ffmpeg failed (its exit status and first error line are in the
                message), or stopped before it had encoded every frame.
        """
        if self._finished:
            return
        self._finished = True
        encoder = self._encoder
        if encoder is not None:
            with contextlib.suppress(OSError):  # ffmpeg has stopped: its exit status tells
                encoder.stdin.close()
            encoder.wait()  # until it has written the file (a Ctrl-C here: abandon() kills it)
            self._encoder = None
            self._said.join(5)  # its last words (a pipe some child of it still holds: not waited for)
            if encoder.returncode:
                raise self._encoder_error(self._exit_report(encoder))
        if self.frames_written == 0:
            raise Gen3cInputError(f"video {quoted_path(self.path)}: no frames were given; a video needs at least one")
        # A second line of defence: an encoder that ended well yet wrote too few frames.
        try:
            encoded = count_video_frames(self._tmp)
        except Gen3cInputError:  # no readable video at all
            encoded = 0
        if encoded != self.frames_written:
            raise self._encoder_error(f"ffmpeg encoded {encoded} of its {self.frames_written} frames")

    def abandon(self) -> None:
        """Stop ffmpeg at once, without letting it encode the frames it still holds (which can
        take many seconds): the file is not wanted (an error, Ctrl-C). The with-block does this
        on an exception and removes the temporary file. ffmpeg is in its own process group, so
        a Ctrl-C in the terminal reached gen3c only: it is killed and reaped here, leaving no
        orphan or zombie."""
        encoder = self._encoder
        if encoder is None:
            return
        encoder.kill()
        encoder.wait()
        self._encoder = None  # (only now: a second Ctrl-C in wait() comes back here to kill it)
        with contextlib.suppress(OSError):  # the pipe to a killed ffmpeg
            encoder.stdin.close()
        self._said.join(5)

    def _why_it_stopped(self, exc: OSError) -> str:
        """What a broken pipe to ffmpeg means: how it ended (once its stdin is broken it has
        ended or is ending), or, if it still runs, that it stopped reading (abandon() kills it)."""
        try:
            self._encoder.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return f"ffmpeg stopped reading frames after {self.frames_written} frames ({first_line(exc)})"
        self._said.join(5)
        return self._exit_report(self._encoder)

    def _exit_report(self, encoder: subprocess.Popen) -> str:
        """``ffmpeg exited with status 1 after 4 frames (its first error line)``, or ``was killed by SIGKILL``."""
        code = encoder.returncode
        if code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        said = f" ({self._said.line})" if self._said is not None and self._said.line else ""
        return f"ffmpeg {how} after {self.frames_written} frames{said}"

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
        if exc_type is not None:
            return stack.__exit__(exc_type, exc, tb)  # removes the temporary file
        try:
            return stack.__exit__(None, None, None)  # flushes it to the disk and renames it
        except OSError as failed:  # a flush the disk refused (full, a write error): nothing published
            refusal = write_failure(f"video {quoted_path(self.path)}", self.path.parent, failed)
            if refusal is None:
                raise
            raise refusal from None

    def _encoder_error(self, what: str) -> Gen3cInputError:
        """One line: ``what`` went wrong, with the output's own name where ffmpeg named its
        temporary file, and the advice that fits ffmpeg's own error (the free space where it
        says nothing known: a full disk is the usual cause)."""
        if self._tmp is not None:
            what = what.replace(self._tmp.name, self.path.name)
        folder = path_to_copy(self.path.parent)
        if what.startswith("ffmpeg was killed by"):
            advice = "something killed ffmpeg (out of memory?): run again"
        else:
            advice = next((text for cause, text in _ENCODER_ADVICE if cause in what), "check the free space in {folder} and run again")
        return Gen3cInputError(f"video {quoted_path(self.path)} could not be written: {what}; {advice.format(folder=folder)}")


# ffmpeg's first error line ends with the C library's text of the cause; what to do about each.
_ENCODER_ADVICE = (
    ("No space left on device", "check the free space in {folder} and run again"),
    ("No such file or directory", "the folder {folder} was removed while the video was written: run again"),
    ("Permission denied", "check the permissions of {folder} and run again"),
    ("Operation not permitted", "check the permissions of {folder} and run again"),
    ("Read-only file system", "{folder} is on a read-only file system: write the video elsewhere"),
    ("Disk quota exceeded", "the disk quota for {folder} is used up: free some space or write the video elsewhere"),
)


class _FirstError(threading.Thread):
    """Reads ffmpeg's stderr as it comes (a pipe nobody reads stops the writer once full, 64 KiB)
    and keeps its first line, without the ``[libx264 @ 0x…]`` tags: the cause ("height not
    divisible by 2", "… : No space left on device"); the lines after it are its consequences
    ("Nothing was written into output file …")."""

    def __init__(self, pipe) -> None:
        super().__init__(name="ffmpeg stderr", daemon=True)
        self.pipe = pipe
        self.line: str | None = None
        self.start()

    def run(self) -> None:
        with self.pipe:
            for raw in self.pipe:
                if self.line is None:
                    text = re.sub(r"^(\[[^\]]*\] )+", "", raw.decode("utf-8", "replace")).strip()
                    self.line = text[:200] or None


def write_video(path: str | os.PathLike, frames: Tensor | np.ndarray, fps: float = DEFAULT_FPS, quality: float = 8) -> Path:
    """Encode frames as an H.264 mp4 (yuv420p, plays everywhere; BT.709 limited range, named in the file), atomically.

    A file already at ``path`` is replaced once the new video is complete (never half-overwritten).

    Args:
        frames: (T, 3, H, W) float in [−1, 1], or (T, H, W, 3) uint8. H and W must be even.
        fps: frames per second, a finite number > 0.
        quality: imageio-ffmpeg quality 1–10 (8 ≈ visually lossless for our content).
    Raises:
        Gen3cInputError: bad frames, ``fps`` / ``quality`` out of range, or ``path`` not ending in
            .mp4 (or another of :data:`H264_SUFFIXES`) (nothing is written).
    Returns:
        the video's path, a leading ``~`` expanded to the home folder.
    """
    with VideoWriter(writer_path(path, "write_video path", "the video"), fps, quality) as writer:
        writer.write(frames)
    return writer.path


@dataclass(frozen=True)
class VideoIndex:
    """What a video's packets tell without decoding a frame (:func:`probe_video`).

    Attributes:
        frames: how many frames it has.
        fps: its frame rate (24 when the file does not say).
        pts: each frame's presentation time, in display order; None when a packet lacks one.
        idr: ``(frame index, pts)`` of each H.264 IDR frame: decoding from one gives every
            later frame exactly as decoding from the first frame does, since no frame after an
            IDR frame refers to one before it. Empty for other codecs.
    """

    frames: int
    fps: float
    pts: tuple[int, ...] | None = None
    idr: tuple[tuple[int, int], ...] = ()


def probe_video(path: str | os.PathLike, name: str = "video") -> VideoIndex:
    """Count a video's frames and find where decoding may start, from its packets (no decoding).
    A leading ``~`` in ``path`` is the home folder, as on the command line."""
    p = reader_path(path, name, "a video file")
    av = require("av", f"reading {name} {quoted_path(p)}")
    if not p.is_file():
        raise Gen3cInputError(f"{name} {quoted_path(p)} does not exist: check the path")
    pts: list[int | None] = []
    keys: list[int] = []
    stored = 0  # packets in the file, those an edit list hides included
    cut = 0  # packets read short (the file ends inside them)
    try:
        with av.open(str(p)) as container:
            stream = _video_stream(container, p, name)
            _check_square_pixels(stream, p, name)
            fps = float(stream.average_rate) if stream.average_rate else DEFAULT_FPS
            listed = stream.frames  # the container's index (0: it does not say)
            nal_length = _avc_nal_length(stream)
            matroska = container.format.name.startswith("matroska")
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if stored == 0 and not packet.is_keyframe and not packet.is_corrupt:  # (one cut short has lost its flag)
                    _refuse_open_start(container, stream, p, name)
                stored += 1
                cut += packet.is_corrupt
                if packet.is_discard:  # before an edit list's start (a trimmed clip): decoders drop it
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe and nal_length and _is_idr(bytes(packet), nal_length):
                    keys.append(packet.pts)
    except Gen3cInputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise Gen3cInputError(
            f"{name} {quoted_path(p)} cannot be read ({exc}): it is truncated, damaged or not a video; copy or export it again as H.264 mp4"
        ) from None
    if stored < listed or cut:  # the index was written, the frames' data is cut short
        raise Gen3cInputError(
            f"{name} {quoted_path(p)} is truncated: its index lists {max(listed, stored)} frames but the file holds {stored - cut} whole: copy or export it again"
        )
    missing = _matroska_bytes_missing(p) if matroska else 0
    if missing:  # Matroska/WebM lists no frame count: its header's size of the whole tells
        raise Gen3cInputError(
            f"{name} {quoted_path(p)} is truncated: it ends {counted(missing, 'byte')} before the end its header gives "
            f"(it holds {counted(stored - cut, 'whole frame')}): copy or export it again"
        )
    if not pts:
        raise Gen3cInputError(f"{name} {quoted_path(p)} has no frames: export the video again with its frames")
    if None in pts or len(set(pts)) != len(pts):  # no order to find frames by: decode from the start
        return VideoIndex(len(pts), fps)
    ordered = sorted(pts)
    rank = {t: i for i, t in enumerate(ordered)}
    return VideoIndex(len(pts), fps, tuple(ordered), tuple((rank[t], t) for t in keys))


def _refuse_open_start(container, stream, path: Path, name: str) -> None:
    """Refuse a video whose first frame is no keyframe (a stream recording or capture that starts
    mid-way): the frames before its first keyframe refer to frames that are not in the file, so
    decoders drop them or show them broken, and the frames counted from its packets would be paired
    with depth and cameras made for other frames."""
    before = 1
    for packet in container.demux(stream):
        if packet.size and packet.is_keyframe:
            break
        before += bool(packet.size)
    else:
        before = None
    what = f"its first keyframe is frame {before} (from 0), the frames before it" if before else "it has no keyframe, its frames"
    raise Gen3cInputError(
        f"{name} {quoted_path(path)} starts mid-stream (a recording cut between keyframes): {what} refer to frames that are not "
        f"in the file; re-encode it, which drops them (ffmpeg -i IN -c:v libx264 OUT), and make its depth for what is left"
    )


def _matroska_bytes_missing(path: Path) -> int:
    """How many bytes a Matroska/WebM file lacks of the size its Segment element gives (written
    once the file is complete); 0 where it is whole or does not say (a live recording's unknown
    size)."""
    with open(path, "rb") as f:
        head = f.read(64)  # the EBML header (about 40 bytes as muxers write it), then the Segment's ID and size
    at = 0
    for element_id in (0x1A45DFA3, 0x18538067):
        element, at = _ebml_number(head, at, keep_marker=True)
        length, at = _ebml_number(head, at, keep_marker=False)
        if element != element_id or length is None:
            return 0
        if element_id == 0x1A45DFA3:
            at += length  # past the header's contents
    return max(at + length - path.stat().st_size, 0)


def _ebml_number(data: bytes, at: int, keep_marker: bool) -> tuple[int | None, int]:
    """An EBML variable-length number at ``data[at:]`` and where the next begins: an element ID
    (its length marker kept) or a size (marker dropped; None where all its bits are set: unknown)."""
    if at >= len(data) or data[at] == 0:
        return None, len(data)
    width = 8 - data[at].bit_length() + 1  # leading zero bits + 1
    if at + width > len(data):
        return None, len(data)
    value = int.from_bytes(data[at : at + width], "big")
    if not keep_marker:
        value &= (1 << (7 * width)) - 1
        if value == (1 << (7 * width)) - 1:
            return None, at + width
    return value, at + width


def video_rate(path: str | os.PathLike) -> float | None:
    """A video's frame rate as :func:`probe_video` gives it, from the file's header alone; None
    when the file does not say or cannot be opened (its reader then says what is wrong)."""
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(str(path)) as container:
            rate = container.streams.video[0].average_rate
    except (av.error.FFmpegError, OSError, ValueError, IndexError):
        return None
    return float(rate) if rate else None


def _avc_nal_length(stream) -> int | None:
    """Bytes of the NAL unit lengths of an H.264 stream stored as in mp4 (``avcC``); else None."""
    extradata = stream.codec_context.extradata
    if stream.codec_context.name != "h264" or not extradata or len(extradata) < 5 or extradata[0] != 1:
        return None
    return (extradata[4] & 3) + 1


def _is_idr(data: bytes, nal_length: int) -> bool:
    """Whether an H.264 access unit (length-prefixed NAL units) holds an IDR slice (NAL type 5)."""
    i = 0
    while i + nal_length < len(data):
        size = int.from_bytes(data[i : i + nal_length], "big")
        if data[i + nal_length] & 0x1F == 5:
            return True
        i += nal_length + size
    return False


def count_video_frames(path: str | os.PathLike, name: str = "video") -> int:
    """Number of frames of a video, counted from its packets (no decoding)."""
    return probe_video(path, name).frames


def iter_video_frames(
    path: str | os.PathLike, name: str = "video", start: int = 0, count: int | None = None, index: VideoIndex | None = None
) -> Iterator[np.ndarray]:
    """Decode frames ``start`` … ``start + count − 1`` (None: to the end), one (H, W, 3) uint8
    RGB array at a time, holding none of the others, each turned upright as players show it
    (a phone's 90/180/270° display matrix).

    Given the video's ``index`` (:func:`probe_video`), decoding starts at the last IDR frame at or
    before ``start`` rather than at the first frame, which gives the same frames (checked on
    landing: where the seek does not land on that IDR frame, decoding starts from the first
    frame). The frame numbers are those of decoding from the first frame.
    """
    p = reader_path(path, name, "a video file")
    _check_frame_index("iter_video_frames start", start, 0)
    if count is not None:
        _check_frame_index("iter_video_frames count", count, 0)
    av = require("av", f"reading {name} {quoted_path(p)}")
    if not p.is_file():
        raise Gen3cInputError(f"{name} {quoted_path(p)} does not exist: check the path")
    # Our own converter, not frame.to_ndarray(format=...): PyAV 19 (Python ≥ 3.12) keeps that one in
    # a thread-local with swscale's worker threads, and a fork with a preexec_fn in another thread
    # of the process (imageio-ffmpeg's readers and writers) frees it in the child, which then waits
    # forever for threads that are not there.
    to_rgb = av.video.reformatter.VideoReformatter()
    try:
        for frame in itertools.islice(_decoded(p, name, start, index), count):
            turns = _display_turns(frame, p, name)
            image = _rgb24(to_rgb, frame)
            yield np.ascontiguousarray(np.rot90(image, turns)) if turns else image
    except Gen3cInputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise Gen3cInputError(f"{name} {quoted_path(p)} cannot be decoded ({exc}): re-encode it as H.264 mp4") from None


# A frame's colour matrix tag (libavutil's AVColorSpace) → the name of swscale's matrix in PyAV's
# Colorspace: BT.709 1, FCC 4, BT.470BG 5 and SMPTE 170M 6 (BT.601), SMPTE 240M 7, BT.2020 9 and 10.
# Untagged and others: BT.601, swscale's (and OpenCV's) default.
_SWS_MATRIX = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}


def _rgb24(to_rgb, frame) -> np.ndarray:
    """A decoded frame as (H, W, 3) uint8 RGB, a YUV one converted with the matrix and range its
    file names, as ffmpeg shows it. Both are passed to PyAV explicitly: PyAV ≤ 16 converts with
    BT.601 limited range whatever the file says (a BT.709 phone video's red came out as 230, its
    green bluish), PyAV ≥ 17 by the frame's tags."""
    import av.video.reformatter as sws

    fmt = frame.format
    if fmt.is_rgb or fmt.has_palette or len(fmt.components) < 3:  # RGB, palette, grey: no matrix
        return to_rgb.reformat(frame, format="rgb24").to_ndarray()
    # (PyAV 12 has no BT.2020 matrix: BT.601 there, as before)
    matrix = getattr(sws.Colorspace, _SWS_MATRIX.get(int(frame.colorspace), "ITU601"), sws.Colorspace.ITU601)
    other = sws.Colorspace.ITU601 if matrix == sws.Colorspace.ITU709 else sws.Colorspace.ITU709
    full = int(frame.color_range) == 2 or fmt.name.startswith("yuvj")  # AVCOL_RANGE_JPEG, or the yuvj formats' own
    # The output's matrix is unused (RGB), but PyAV ≤ 16 applies the source's only where the two differ.
    return to_rgb.reformat(
        frame, format="rgb24", src_colorspace=matrix, dst_colorspace=other,
        src_color_range="JPEG" if full else "MPEG", dst_color_range="JPEG",
    ).to_ndarray()  # fmt: skip


def _decoded(path: Path, name: str, start: int, index: VideoIndex | None):
    """The decoded frames ``start``, ``start + 1``, … (``av.VideoFrame``)."""
    import av

    if index is not None:
        with av.open(str(path)) as container:
            frames = _seek(container, _video_stream(container, path, name), index, start)
            if frames is not None:
                yield from frames
                return
    with av.open(str(path)) as container:
        yield from itertools.islice(_decode(container, _video_stream(container, path, name)), start, None)


def _decode(container, stream):
    """``stream``'s frames from where ``container`` stands. Empty packets are skipped, as
    :func:`probe_video` skips them: a container may keep one where a capture dropped a frame, and
    libavcodec takes an empty packet for the end of the stream (refusing every packet after it)."""
    for packet in container.demux(stream):
        if packet.size:
            yield from packet.decode()
    yield from stream.codec_context.decode(None)  # the frames the decoder still holds


def _video_stream(container, path: Path, name: str):
    fmt = container.format.name
    if fmt == "image2" or fmt.endswith("_pipe"):  # ffmpeg's single-image readers (png_pipe, jpeg_pipe, …)
        kind = "an image" if fmt == "image2" else f"a {fmt.removesuffix('_pipe').upper()} image"
        raise Gen3cInputError(
            f"{name} {quoted_path(path)} is {kind}, not a video (renamed?): pass a video file; "
            f"a single picture is an image input (gen3c generate --input_image_path IMAGE)"
        )
    if not container.streams.video:
        if not container.streams:  # a 0-frame export, or an mp4 cut short before its index (written last)
            raise Gen3cInputError(
                f"{name} {quoted_path(path)} has no streams: it holds no frames, or it is truncated or damaged; export or copy it again"
            )
        kinds = sorted({s.type for s in container.streams})
        raise Gen3cInputError(f"{name} {quoted_path(path)} has no video stream (only {', '.join(kinds)}): pass a video file")
    return container.streams.video[0]


def _check_square_pixels(stream, path: Path, name: str) -> None:
    """Refuse anamorphic video (stored width ≠ displayed width): depth and intrinsics made for
    one of the two sizes would silently be read against the other. The container's ratio (mp4's
    ``pasp``; PyAV gives the video stream's where it has none) and the video stream's own (H.264's
    VUI, which the decoded frames carry) can differ, and players differ in which they follow."""
    said = stream.sample_aspect_ratio
    sar = next((r for r in (said, stream.codec_context.sample_aspect_ratio) if r and r != 1), None)  # None or 0: not set, square
    if sar is None:
        return
    where = "" if sar == said else f" in its video stream, {said.numerator}:{said.denominator} in its container"
    h, w = stream.height, stream.width
    raise Gen3cInputError(
        f"{name} {quoted_path(path)} has non-square pixels (sample aspect ratio {sar.numerator}:{sar.denominator}{where}: "
        f"stored {w}×{h}, shown {round(w * sar)}×{h}): re-encode it with square pixels at the size its depth "
        f"and intrinsics were made for (ffmpeg -i IN -vf scale=iw*sar:ih,setsar=1 OUT)"
    )


def _display_turns(frame, path: Path, name: str) -> int:
    """Quarter turns counter-clockwise (``np.rot90``'s k) that show ``frame`` as players show
    it, from its display matrix (phones store portrait video landscape with one). OpenCV, which
    ViPE reads videos with, turns frames the same way, so ViPE's depth is for the shown frame."""
    # By its type's name: PyAV ≤ 18 iterates the side data, PyAV 19 (Python ≥ 3.12) their types; both look names up.
    matrix = frame.side_data.get("DISPLAYMATRIX")
    if matrix is None:
        return 0
    a, b, _, c, d, *_ = np.frombuffer(bytes(matrix), np.int32).astype(np.float64)
    # libavutil/display.h: rows (a b u; c d v; x y w), a pure rotation by θ counter-clockwise
    # is a = d = cos θ, b = −sin θ, c = sin θ (16.16 fixed point); a mirror has a negative determinant.
    angle = np.degrees(np.arctan2(-b, a)) if a * d - b * c > 0 else np.nan
    turns = round(angle / 90) if np.isfinite(angle) else None
    if turns is None or abs(angle - 90 * turns) > 0.5:
        what = f"a rotation of {angle:.1f}°" if np.isfinite(angle) else "a mirrored display matrix"
        raise Gen3cInputError(
            f"{name} {quoted_path(path)} is shown with {what}: re-encode it upright (ffmpeg -i IN OUT applies it)"
        )
    return turns % 4


def _seek(container, stream, index: VideoIndex, start: int):
    """Frames ``start``, ``start + 1``, … decoded from the last IDR frame at or before ``start``;
    None where there is none past the first frame, or the seek lands elsewhere."""
    before = [idr for idr in index.idr if idr[0] <= start]
    if index.pts is None or start >= index.frames or not before or before[-1][0] == 0:
        return None
    import av

    try:
        container.seek(before[-1][1], backward=True, any_frame=False, stream=stream)  # lands on it (mp4 seeks by pts)
    except av.error.FFmpegError:
        return None
    frames = _decode(container, stream)
    first = next(frames, None)
    # Landed on an IDR frame at or before ``start`` (an earlier one only costs time): from there
    # on, the frames are those of decoding from the first frame.
    if first is None or first.pts not in {t for _, t in before}:
        return None
    target = index.pts[start]
    frame = first
    while frame is not None and frame.pts is not None and frame.pts < target:
        frame = next(frames, None)
    if frame is None or frame.pts != target:
        return None
    return itertools.chain([frame], frames)


def turned_hint(frame_size: tuple[int, int], array_size: tuple[int, ...], video: str | os.PathLike | None = None) -> str:
    """A note for a per-pixel array whose size is the frames' turned a quarter: frames are read
    as shown (:func:`iter_video_frames`), a depth made for a phone video's stored frames is not.
    Given the ``video``, the note says whether its display matrix turns it a quarter (the depth
    was made for its stored frames) or not (the array was saved transposed)."""
    if tuple(array_size) != tuple(frame_size)[::-1]:
        return ""
    turns = None if video is None else first_frame_turns(video)
    if turns is None:
        return "; a video shown turned (a phone's display matrix) is read as shown: make it for the frames as shown"
    if turns % 2:
        return (
            f"; the video's display matrix turns it {90 * turns}° (a phone's portrait clip) and it is read as shown, "
            "as players and ViPE show it: make it for the frames as shown, or re-encode the video upright (ffmpeg -i IN OUT) and make both for that"
        )
    return "; the video carries no quarter-turn display matrix, so it looks saved transposed (width × height): save it as height × width of the frames"


def first_frame_turns(path: str | os.PathLike) -> int | None:
    """Quarter turns the display matrix of a video's first frame applies (:func:`iter_video_frames`);
    None where the video or its matrix cannot be read."""
    import av

    p = Path(path)
    try:
        with av.open(str(p)) as container:
            frame = next(_decode(container, container.streams.video[0]), None)
            return None if frame is None else _display_turns(frame, p, "video")
    except (av.error.FFmpegError, OSError, ValueError, IndexError, Gen3cInputError):
        return None


def read_video(path: str | os.PathLike, name: str = "video", max_frames: int | None = None, start: int = 0) -> tuple[np.ndarray, float]:
    """Decode a video to (T, H, W, 3) uint8 and its frame rate.

    Args:
        start: first frame to keep; ``max_frames``: how many to keep (None: all).
    """
    # (else islice's "Indices for islice() must be None or an integer" came back as the video's
    # fault: "cannot be decoded …: re-encode it as H.264 mp4")
    _check_frame_index("read_video start", start, 0)
    if max_frames is not None:
        _check_frame_index("read_video max_frames", max_frames, 1)
    index = probe_video(path, name)
    frames = list(iter_video_frames(path, name, start, max_frames, index))
    if not frames:
        raise Gen3cInputError(f"{name} {quoted_path(path)} has no frames from index {start}")
    return np.stack(frames), index.fps


def _check_frame_index(name: str, value: object, least: int) -> None:
    """Refuse a frame index or count ``name`` that is no whole number ≥ ``least`` (a numpy integer is one)."""
    if not is_whole_number(value) or value < least:
        raise Gen3cInputError(f"{name} {shown_value(value)} must be a whole number of frames ≥ {least}")

