"""GEN3C's video sample layout (what its ``--input_image_path .../batch_0000`` reads: ``data_loader_utils.py``).

A sample directory holds::

    rgb.mp4      T frames, RGB
    depth.npz    key "depth": (T, H, W) float16 z-depth ((T, 1, H, W), as the .pt holds it, too)
    mask.npz     key "mask": (T, H, W) bool, True where the depth may enter the 3D cache
                 (integers or floats: > 0, as GEN3C splats with the mask as a weight; the rule
                 of the .pt sample and the multi-view npz too: see mask_lets_in)
    camera.npz   keys "w2c": (T, 4, 4) and "intrinsics": (T, 3, 3) float32,
                 OpenCV world-to-camera poses, intrinsics in pixels of the stored frames
                 (w2c may be (T, 3, 4), [R | t], completed with [0 0 0 1]; intrinsics one
                 (3, 3), every frame's)

The legacy form is one ``.pt`` file with the same five tensors (image (T, 3, H, W) in [−1, 1],
depth (T, 1, H, W), mask (T, 1, H, W), w2c (T, 4, 4) or (T, 3, 4), intrinsics (T, 3, 3)). It is a pickle: it is loaded with
``torch.load(weights_only=True)`` only; a file that needs full unpickling (which can run code)
is refused unless the caller passes ``trust_checkpoint=True`` (``gen3c generate --trust_checkpoint``;
``gen3c train`` never grants it).
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from gen3c.cameras import check_intrinsics_fit, note_scaled_intrinsics, validate_poses
from gen3c.errors import Gen3cInputError, describe_value, first_line, note, path_to_copy, quoted_path
from gen3c.io.conventions import check_depth_conventions
from gen3c.io.depth import InvalidDepthTally, fill_invalid_depth, mask_lets_in
from gen3c.io.formats import PICKLE_MAGIC, ZIP_MAGICS, describe_head, file_head
from gen3c.io.frames import (
    FrameFitter,
    FrameStack,
    absent_note,
    check_array,
    check_decoded,
    check_depth_array,
    check_frame_size,
    complete_pose_rows,
    float32_array,
    frame_range,
    images_to_uint8,
    validate_intrinsics_frames,
)
from gen3c.io.npz import NpzFrames, NpzReader, load_npz_array
from gen3c.io.paths import reader_path
from gen3c.io.video import VideoIndex, iter_video_frames, probe_video, turned_hint

if TYPE_CHECKING:
    from gen3c.progress import ProgressFactory

SAMPLE_FILES = ("rgb.mp4", "depth.npz", "mask.npz", "camera.npz")


def read_sample(
    path: str | os.PathLike,
    resolution: tuple[int, int],
    *,
    start: int = 0,
    num_frames: int | None = None,
    resize_mode: str = "crop",
    mask_invalid_depth: bool = False,
    trust_checkpoint: bool = False,
    grant_trust: str | None = "pass trust_checkpoint=True",
    progress: ProgressFactory | None = None,
) -> FrameStack:
    """Read a GEN3C sample directory (or legacy ``.pt``) at the working resolution.

    Args:
        resolution: working (H, W); frames are resized and centre-cropped with intrinsics
            adjusted (:func:`gen3c.io.frames.fit_frames`).
        start: first frame to use; ``num_frames``: how many (None: to the end).
        mask_invalid_depth: leave NaN/inf depth out of the cache instead of placing it far away
            (GEN3C's treatment, :func:`gen3c.io.depth.fill_invalid_depth`).
        trust_checkpoint: allow full unpickling (which can run code) of a legacy ``.pt``.
        grant_trust: how the caller's user grants that, for the refusal's advice (e.g.
            ``"pass --trust_checkpoint"``); None where they cannot.
        progress: shows the frames read as a stage (:class:`~gen3c.io.frames.FrameFitter`).
    Raises:
        Gen3cInputError: missing files or keys, wrong shapes, frame counts that disagree, bad
            values, ``start`` past the end.
    """
    p = _sample_path(path)
    if p.is_file() and p.suffix.lower() == ".pt":
        return _read_pt(p, resolution, start, num_frames, resize_mode, mask_invalid_depth, trust_checkpoint, grant_trust, progress)
    if p.is_dir():
        return _read_dir(p, resolution, start, num_frames, resize_mode, mask_invalid_depth, progress)
    raise _no_sample(p)


def sample_length(path: str | os.PathLike, *, trust_checkpoint: bool = False, grant_trust: str | None = "pass trust_checkpoint=True") -> int:
    """How many frames the GEN3C sample directory (or legacy ``.pt``) ``path`` has, checked as far
    as that reads no frame: its files, keys, shapes and frame counts, the video's container (one cut
    short), every frame's pose and intrinsics. What only the frames tell (a frame that does not
    decode, its size against the depth's, depth values, the poses' and depth's conventions) is
    checked by :func:`read_sample` as it reads them. Arguments and refusals as :func:`read_sample`'s."""
    p = _sample_path(path)
    if p.is_file() and p.suffix.lower() == ".pt":
        name = f"sample {quoted_path(p)}"
        image, _, _, w2c, K = _pt_tensors(p, name, trust_checkpoint, grant_trust)
        _pt_cameras(name, image.shape[-2:], w2c, K, 0, len(image))
        return len(image)
    if p.is_dir():
        with _open_dir(p) as sample:
            validate_poses(torch.from_numpy(float32_array(sample.w2c)), f"{sample.name} camera.npz w2c")
            validate_intrinsics_frames(torch.from_numpy(float32_array(sample.K)), f"{sample.name} camera.npz intrinsics")
            return sample.video.frames
    raise _no_sample(p)


def _sample_path(path: object) -> Path:
    """``path`` given to :func:`read_sample` / :func:`sample_length`, its ``~`` expanded as every
    reader's is; None or a number is one line (was Path's "expected str, bytes or os.PathLike object")."""
    return reader_path(path, "sample", f"a GEN3C sample directory ({', '.join(SAMPLE_FILES)}) or .pt file")


def _no_sample(p: Path) -> Gen3cInputError:
    """The refusal of ``p``, neither a sample directory nor a ``.pt`` file."""
    if p.is_file() and p.name.lower() in SAMPLE_FILES:
        return Gen3cInputError(f"sample {quoted_path(p)} is one file of a GEN3C sample: pass its folder, {path_to_copy(p.parent)}")
    if p.is_file():
        return Gen3cInputError(f"sample {quoted_path(p)} is a file but not a .pt sample: pass a GEN3C sample directory ({', '.join(SAMPLE_FILES)}) or .pt file")
    return Gen3cInputError(
        f"sample {quoted_path(p)} does not exist: pass a GEN3C sample directory ({', '.join(SAMPLE_FILES)}) or .pt file"
    )


def check_sample_dir(folder: str | os.PathLike) -> None:
    """Raise :class:`Gen3cInputError` when the directory ``folder`` lacks a GEN3C sample's files
    (naming a ViPE result given here as one)."""
    folder = Path(folder)
    missing = [f + absent_note(sample_file(folder, f)) for f in SAMPLE_FILES if not sample_file(folder, f).is_file()]
    if missing:
        from gen3c.io.vipe import is_vipe

        name = f"sample directory {quoted_path(folder)}"
        if is_vipe(folder):
            raise Gen3cInputError(f"{name} is a ViPE result (rgb/, pose/), not a GEN3C sample: pass it as --vipe_path")
        raise Gen3cInputError(f"{name} lacks {', '.join(missing)}: a GEN3C sample holds {', '.join(SAMPLE_FILES)}")


def sample_file(folder: str | os.PathLike, name: str) -> Path:
    """The file ``name`` (one of :data:`SAMPLE_FILES`) of the sample directory ``folder``: ``folder
    / name``, else the one file whose name is ``name`` in other letter case (``rgb.MP4``, as
    cameras and Windows copies write it); ``folder / name`` where there is none.

    Raises:
        Gen3cInputError: several such files and not ``name`` itself (``rgb.MP4`` and ``RGB.mp4``),
            naming them.
    """
    folder = Path(folder)
    exact = folder / name
    if exact.is_file():
        return exact
    try:
        found = sorted(f for f in folder.iterdir() if f.name.lower() == name and f.is_file())
    except OSError:  # no folder, no permission: the caller says what is missing
        return exact
    if len(found) > 1:
        raise Gen3cInputError(
            f"sample directory {quoted_path(folder)} holds {' and '.join(f.name for f in found)}, none named {name}: "
            f"keep the one that belongs to the sample, renamed {name}"
        )
    return found[0] if found else exact


@dataclass
class _OpenSample:
    """A sample directory's checked files (:func:`_open_dir`): depth and mask to be read frame by
    frame, every frame's w2c (T, 4, 4) and intrinsics (T, 3, 3) as saved, the video's index."""

    name: str
    mp4: Path
    depth: NpzFrames
    mask: NpzFrames
    w2c: np.ndarray
    K: np.ndarray
    video: VideoIndex


@contextlib.contextmanager
def _open_dir(folder: Path) -> Iterator[_OpenSample]:
    """The sample directory ``folder`` with its files checked as far as that reads no frame (its
    npz files open while in use)."""
    name = f"sample directory {quoted_path(folder)}"
    check_sample_dir(folder)
    files = {f: sample_file(folder, f) for f in SAMPLE_FILES}
    rgb = files["rgb.mp4"].name  # rgb.mp4, or rgb.MP4
    with NpzReader(files["depth.npz"]) as depth_npz, NpzReader(files["mask.npz"]) as mask_npz:
        depth = depth_npz.frames("depth").squeeze_channel()  # (T, 1, H, W), as the .pt holds them, too
        mask = mask_npz.frames("mask").squeeze_channel()
        w2c = complete_pose_rows(load_npz_array(files["camera.npz"], "w2c"))  # (T, 3, 4) [R | t] → (T, 4, 4)
        K = load_npz_array(files["camera.npz"], "intrinsics")
        check_depth_array(depth, f"{name} depth.npz 'depth'", ("T", "H", "W"))
        check_array(mask, f"{name} mask.npz 'mask'", ("T", "H", "W"), kinds="fbiu")  # as multiview's mask_key_frames
        check_array(w2c, f"{name} camera.npz 'w2c'", ("T", 4, 4))
        shared_K = K.shape == (3, 3)
        if shared_K:  # one camera for every frame (a fixed lens): each frame's K
            K = K[None].repeat(len(w2c), axis=0)
        # ViPE's rows of fx, fy, cx, cy; a (4, 4) of other than 4 frames is one 4×4 matrix (a homogeneous K
        # or a projection, whose 3×3 need not be K): refused as any other shape
        if K.ndim == 2 and K.shape[1] == 4 and (K.shape[0] != 4 or len(w2c) == 4):
            raise Gen3cInputError(
                f"{name} camera.npz 'intrinsics' has shape {K.shape}, rows of fx, fy, cx, cy as ViPE saves them: save (T, 3, 3) "
                "matrices [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] in pixels of the frames"
            )
        if K.shape == (4,):  # one such row for every frame
            raise Gen3cInputError(
                f"{name} camera.npz 'intrinsics' has shape (4,), one row of fx, fy, cx, cy: save the matrix [[fx, 0, cx], [0, fy, cy], "
                "[0, 0, 1]] in pixels of the frames, (3, 3) for every frame or (T, 3, 3) one a frame"
            )
        check_array(K, f"{name} camera.npz 'intrinsics'", ("T", 3, 3))
        video = probe_video(files["rgb.mp4"], "sample video")
        counts = {
            rgb: video.frames,
            "depth.npz": len(depth),
            "mask.npz": len(mask),
            "camera.npz w2c": len(w2c),
            **({} if shared_K else {"camera.npz intrinsics": len(K)}),
        }
        if len(set(counts.values())) != 1:
            listed = ", ".join(f"{k} {v}" for k, v in counts.items())
            raise Gen3cInputError(
                f"{name} has frame counts that disagree ({listed}): every file needs one entry per frame"
            )
        if mask.shape != depth.shape:
            raise Gen3cInputError(
                f"{name} mask.npz is {mask.shape[1]}×{mask.shape[2]} but depth.npz is {depth.shape[1]}×{depth.shape[2]}: they must match"
            )
        yield _OpenSample(name, files["rgb.mp4"], depth, mask, w2c, K, video)


def _read_dir(
    folder: Path,
    resolution: tuple[int, int],
    start: int,
    num_frames: int | None,
    resize_mode: str,
    mask_invalid_depth: bool,
    progress: ProgressFactory | None,
) -> FrameStack:
    """Decode the frames used from ``rgb.mp4``, ``depth.npz`` and ``mask.npz`` one at a time, each
    brought to the working resolution as it comes (the npz arrays are read frame by frame too)."""
    with _open_dir(folder) as sample:
        name, mp4, depth, mask, video = sample.name, sample.mp4, sample.depth, sample.mask, sample.video
        rgb = mp4.name  # rgb.mp4, or rgb.MP4
        stop = frame_range(start, num_frames, video.frames, f"{name} {rgb}")
        w2c_t = validate_poses(torch.from_numpy(float32_array(sample.w2c[start:stop])), f"{name} camera.npz w2c", frame_offset=start)
        fitter = FrameFitter(stop - start, resolution, resize_mode, progress)
        tally = InvalidDepthTally()
        frames = zip(
            range(start, stop),
            iter_video_frames(mp4, "sample video", start, stop - start, video),
            depth.frames(start, stop),
            mask.frames(start, stop),
            strict=False,
        )
        for frame, image, depth_f, mask_f in frames:
            size = check_frame_size(image, fitter, f"{name} {rgb}", frame)
            if frame == start:
                if size != depth.shape[1:]:
                    raise Gen3cInputError(
                        f"{name} {rgb} is {size[0]}×{size[1]} but depth.npz is {depth.shape[1]}×{depth.shape[2]}: depth must be per pixel of the frames"
                        + turned_hint(size, depth.shape[1:], mp4)
                    )
                K_t = validate_intrinsics_frames(torch.from_numpy(float32_array(sample.K[start:stop])), f"{name} camera.npz intrinsics", start)
                K_t = check_intrinsics_fit(K_t, *size, f"{name} camera.npz intrinsics", frame_offset=start)
                note_scaled_intrinsics(K_t, *size, f"{name} camera.npz intrinsics", frame_offset=start)
            depth_t, valid = fill_invalid_depth(
                torch.from_numpy(float32_array(depth_f))[None],
                f"{name} depth.npz",
                mask_invalid_depth,
                mask=mask_lets_in(mask_f)[None],
                frame_offset=frame,
                tally=tally,
                mask_name="mask.npz",
            )
            fitter.add(torch.from_numpy(image).permute(2, 0, 1), depth_t[0], valid[0])
    check_decoded(fitter.added, stop - start, f"{name} {rgb}")
    tally.note(f"{name} depth.npz", mask_invalid_depth, stacklevel=2)
    stack = fitter.stack(w2c_t, K_t, fps=video.fps, frame_indices=list(range(start, stop)))
    _check_conventions(stack, f"{name} camera.npz w2c", f"{name} depth.npz")
    return stack


def _read_pt(
    path: Path,
    resolution: tuple[int, int],
    start: int,
    num_frames: int | None,
    resize_mode: str,
    mask_invalid_depth: bool,
    trust_checkpoint: bool,
    grant_trust: str | None,
    progress: ProgressFactory | None,
) -> FrameStack:
    """The legacy ``.pt`` sample, memory-mapped where torch can (a file saved by torch ≥ 1.6), so
    that only the frames used are read; each is brought to the working resolution in turn."""
    name = f"sample {quoted_path(path)}"
    image, depth, mask, w2c, K = _pt_tensors(path, name, trust_checkpoint, grant_trust)
    stop = frame_range(start, num_frames, len(image), name)
    w2c_t, K_t = _pt_cameras(name, image.shape[-2:], w2c, K, start, stop)
    fitter = FrameFitter(stop - start, resolution, resize_mode, progress)
    tally = InvalidDepthTally()
    lo, hi = math.inf, -math.inf
    for frame in range(start, stop):
        if not torch.isfinite(image[frame]).all() or image[frame].min() < -1.01 or image[frame].max() > 1.01:
            raise Gen3cInputError(f"{name} image (frame {frame}) must be finite and in [−1, 1]")
        lo, hi = min(lo, float(image[frame].min())), max(hi, float(image[frame].max()))
        depth_t, valid = fill_invalid_depth(
            depth[frame : frame + 1, 0].float(), f"{name} depth", mask_invalid_depth,
            mask=mask_lets_in(mask[frame : frame + 1, 0]), frame_offset=frame, tally=tally,
        )  # fmt: skip
        fitter.add(images_to_uint8(image[frame]), depth_t[0], valid[0])
    tally.note(f"{name} depth", mask_invalid_depth, stacklevel=2)
    if lo >= 0 and hi > lo:  # [0, 1] colours (torchvision's): read as [−1, 1], black is mid-grey
        note(
            f"{name} image has no value below 0 in frames {start}…{stop - 1}, so its darkest pixel is mid-grey in [−1, 1]: "
            "if it holds [0, 1] colours, save image * 2 - 1",
            stacklevel=2,
        )
    stack = fitter.stack(w2c_t, K_t, frame_indices=list(range(start, stop)))
    _check_conventions(stack, f"{name} w2c", f"{name} depth")
    return stack


def _pt_tensors(path: Path, name: str, trust_checkpoint: bool, grant_trust: str | None) -> tuple[Tensor, ...]:
    """The five tensors of the legacy ``.pt`` sample ``path`` (image, depth, mask, w2c (T, 4, 4),
    intrinsics), their shapes checked, their values not read (memory-mapped where torch can)."""
    data = _load_pt(path, name, trust_checkpoint, grant_trust)
    if (
        not isinstance(data, (tuple, list))
        or len(data) != 5
        or not all(isinstance(t, torch.Tensor) for t in data)
    ):
        raise Gen3cInputError(
            f"{name} must hold 5 tensors (image, depth, mask, w2c, intrinsics), got {describe_value(data)}"
        )
    image, depth, mask, w2c, K = (t.detach().cpu() for t in data)
    T = image.shape[0] if image.ndim == 4 else -1
    for what, t, shapes in (
        ("image", image, [(T, 3)]),
        ("depth", depth, [(T, 1)]),
        ("mask", mask, [(T, 1)]),
        ("w2c", w2c, [(T, 4, 4), (T, 3, 4)]),
        ("intrinsics", K, [(T, 3, 3)]),
    ):
        if (
            T < 1
            or t.ndim != (4 if what in ("image", "depth", "mask") else 3)
            or all(tuple(t.shape[: len(shape)]) != shape for shape in shapes)
        ):
            raise Gen3cInputError(
                f"{name} {what} has shape {tuple(t.shape)}: "
                "expected (T, 3, H, W), (T, 1, H, W) ×2, (T, 4, 4) or (T, 3, 4), (T, 3, 3)"
            )
    w2c = torch.from_numpy(complete_pose_rows(w2c.float().numpy()))  # (T, 3, 4) [R | t] → (T, 4, 4)
    if depth.shape[-2:] != image.shape[-2:] or mask.shape[-2:] != image.shape[-2:]:
        raise Gen3cInputError(
            f"{name} image, depth and mask sizes differ: {tuple(image.shape)}, {tuple(depth.shape)}, {tuple(mask.shape)}"
        )
    return image, depth, mask, w2c, K


def _pt_cameras(name: str, size: tuple[int, int], w2c: Tensor, K: Tensor, start: int, stop: int) -> tuple[Tensor, Tensor]:
    """The checked w2c and intrinsics of frames ``start`` … ``stop − 1`` of a ``.pt`` sample of frames of ``size``."""
    w2c_t = validate_poses(w2c[start:stop].float(), f"{name} w2c", frame_offset=start)
    K_t = validate_intrinsics_frames(K[start:stop].float(), f"{name} intrinsics", start)
    K_t = check_intrinsics_fit(K_t, *size, f"{name} intrinsics", frame_offset=start)
    note_scaled_intrinsics(K_t, *size, f"{name} intrinsics", frame_offset=start)
    return w2c_t, K_t


def _check_conventions(stack: FrameStack, poses_name: str, depth_name: str) -> None:
    """Refuse camera-to-world poses or inverse depth saved where GEN3C's sample holds world-to-camera
    poses and z-depth (:func:`gen3c.io.conventions.check_depth_conventions`)."""
    check_depth_conventions(
        stack.depth, stack.valid, stack.K, stack.w2c, poses_name=poses_name, depth_name=depth_name, images=stack.images,
        poses_fix="save each matrix's inverse (np.linalg.inv) as w2c, OpenCV world-to-camera",
        depth_fix="save z-depth (1 / disparity, in the poses' units) as depth",
    )  # fmt: skip


def _load_pt(path: Path, name: str, trust_checkpoint: bool, grant_trust: str | None):
    """``torch.load`` of the file, ``weights_only`` unless the caller trusts it."""
    try:
        # Not torch's zip nor a legacy pickle (an HTML page saved as .pt, a renamed .npy): said so,
        # where weights_only's refusal would have advised trusting it.
        head = file_head(path)
        if not head.startswith((ZIP_MAGICS[0], PICKLE_MAGIC)):
            what = describe_head(head) if head else "empty"
            raise Gen3cInputError(
                f"{name} is {what}, not a PyTorch .pt file: pass a GEN3C sample directory ({', '.join(SAMPLE_FILES)}) or a .pt saved with torch.save"
            )
        try:
            return _mapped(lambda mmap: torch.load(path, map_location="cpu", weights_only=True, mmap=mmap))
        except pickle.UnpicklingError:
            if not trust_checkpoint:
                convert = f"convert it to a sample directory ({', '.join(SAMPLE_FILES)})"
                raise Gen3cInputError(
                    f"{name} holds Python objects that only full unpickling can load, which can run code: "
                    + (f"{convert}, or {grant_trust} if you trust its source" if grant_trust else f"{convert}, which is read without unpickling")
                ) from None
            return _mapped(lambda mmap: torch.load(path, map_location="cpu", weights_only=False, mmap=mmap))
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise Gen3cInputError(f"{name} is not a readable torch file ({first_line(exc, 120)})") from None


def _mapped(load):
    """``load(mmap=True)``: only the frames used are then read from the disk; ``load(mmap=False)``
    for a file of torch's legacy format (before 1.6), which cannot be memory-mapped."""
    try:
        return load(True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        return load(False)
