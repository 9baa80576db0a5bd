"""Frames with depth and cameras — what video, ViPE and multi-view inputs are read into.

:class:`FrameStack` holds T frames of one size: colour, z-depth, a validity mask and an OpenCV
world-to-camera pose and intrinsics per frame. Readers (:mod:`gen3c.io.gen3c_sample`,
:mod:`gen3c.io.vipe`, :mod:`gen3c.io.multiview`) validate what they read and bring each frame
to the working resolution as they decode it (:class:`FrameFitter`, the frames
:func:`fit_frames` makes of a whole stack), adjusting the intrinsics to match: a clip is never
held at its source size.

Colour is kept as uint8 and depth as float32 so a long video costs ~6 bytes per pixel per frame;
the pipeline converts one chunk of frames at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from gen3c.cameras import crop_intrinsics, resize_crop_plan, resize_intrinsics, validate_intrinsics
from gen3c.errors import Gen3cInputError, is_whole_number, quoted_path
from gen3c.io.images import RESIZE_MODES, resize_image, resize_nearest
from gen3c.summary import dataclass_repr

if TYPE_CHECKING:
    from gen3c.progress import ProgressFactory

#: The progress stage of a video input's frames being read (a 1080p clip's 121 frames take about
#: a minute on a 2-core CPU, before any other stage starts).
READING_STAGE = "Reading video"

# GEN3C reads video at 720×1280 and centre-crops it to its working size 704×1280 (``gen3c_dynamic.py``).
GEN3C_READ_SIZE = (720, 1280)
GEN3C_WORK_SIZE = (704, 1280)


@dataclass
class FrameStack:
    """T frames of one size with depth and cameras.

    Attributes:
        images: (T, 3, H, W) uint8 RGB.
        depth: (T, H, W) float32 z-depth; 0 where there is none.
        valid: (T, H, W) bool, pixels allowed into the 3D cache.
        w2c: (T, 4, 4) float32 OpenCV world-to-camera poses.
        K: (T, 3, 3) float32 intrinsics in pixels of H × W.
        fps: frame rate of the source video, when known.
        frame_indices: index of each frame in its source (e.g. the ViPE clip).
        depth_kind: "metric" (ViPE, user files) or "relative" (up to scale).
        instance_ids: optional (T, H, W) instance ids (ViPE's ``mask/<clip>.zip``), read and
            checked for the user's own use; gen3c does not use them (nor does GEN3C remove
            points with them). Kept in the smallest of uint8, int16 and int32 that holds the ids
            read (:func:`id_dtype`): ViPE's 8-bit PNGs cost 1 byte per pixel per frame, not 4.
    """

    images: Tensor
    depth: Tensor
    valid: Tensor
    w2c: Tensor
    K: Tensor
    fps: float | None = None
    frame_indices: list[int] = field(default_factory=list)
    depth_kind: str = "metric"
    instance_ids: Tensor | None = None

    __repr__ = dataclass_repr

    def __post_init__(self) -> None:
        T = self.images.shape[0]
        H, W = self.images.shape[-2:]
        expected = {
            "images": (T, 3, H, W),
            "depth": (T, H, W),
            "valid": (T, H, W),
            "w2c": (T, 4, 4),
            "K": (T, 3, 3),
        }
        for key, shape in expected.items():
            if tuple(getattr(self, key).shape) != shape:
                raise ValueError(f"FrameStack.{key} must be {shape}, got {tuple(getattr(self, key).shape)}")
        if self.images.dtype != torch.uint8:
            raise ValueError(f"FrameStack.images must be uint8, got {self.images.dtype}")
        if self.instance_ids is not None:
            ids = self.instance_ids
            if tuple(ids.shape) != (T, H, W) or ids.dtype.is_floating_point or ids.dtype.is_complex:
                raise ValueError(f"FrameStack.instance_ids must be (T, H, W) integers, got {tuple(ids.shape)} {ids.dtype}")
            self.instance_ids = ids.to(id_dtype(ids))
        if not self.frame_indices:
            self.frame_indices = list(range(T))

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return (int(self.images.shape[-2]), int(self.images.shape[-1]))

    def image(self, start: int, stop: int | None = None) -> Tensor:
        """Frames ``start:stop`` as float in [−1, 1]: (n, 3, H, W) (or (3, H, W) when stop is None)."""
        if stop is None:
            return self.images[start].float().div_(127.5).sub_(1.0)
        return self.images[start:stop].float().div_(127.5).sub_(1.0)


#: The integer types instance ids are kept in, narrowest first.
ID_DTYPES = (torch.uint8, torch.int16, torch.int32)


def id_dtype(ids: Tensor, at_least: torch.dtype = torch.uint8) -> torch.dtype:
    """The narrowest of :data:`ID_DTYPES`, no narrower than ``at_least``, that holds every value
    of the integer tensor ``ids``."""
    lo, hi = (int(ids.min()), int(ids.max())) if ids.numel() else (0, 0)
    for dtype in ID_DTYPES[ID_DTYPES.index(at_least) :]:
        if torch.iinfo(dtype).min <= lo and hi <= torch.iinfo(dtype).max:
            return dtype
    raise ValueError(f"instance ids {lo} … {hi} do not fit int32")


def images_to_uint8(images: Tensor) -> Tensor:
    """(…, 3, H, W) float in [−1, 1] → uint8."""
    return ((images.float().clamp(-1, 1) + 1.0) * 127.5).round_().to(torch.uint8)


def fit_plan(
    size: tuple[int, int], resolution: tuple[int, int], mode: str = "crop"
) -> tuple[tuple[int, int], int, int]:
    """How frames of ``size`` reach the working ``resolution``: ``((resized_h, resized_w), top, left)``.

    ``"crop"`` resizes to cover the working size keeping the aspect ratio, then centre-crops.
    ``"stretch"`` is GEN3C's: a plain resize to the 720×1280-equivalent of the working size
    (``720/704`` of its height), then a centre crop — 720×1280 → 704×1280 at GEN3C's size.
    For 16:9 input at 704×1280 both read frames exactly as GEN3C does.
    """
    if mode not in RESIZE_MODES:
        raise Gen3cInputError(f"unknown resize mode {mode!r}: choose one of {', '.join(RESIZE_MODES)}")
    if mode == "crop":
        return resize_crop_plan(size, resolution)
    h, w = resolution
    rh = max(h, round(h * GEN3C_READ_SIZE[0] / GEN3C_WORK_SIZE[0]))
    return (rh, w), (rh - h) // 2, 0


def fit_intrinsics(
    K: Tensor, size: tuple[int, int], resolution: tuple[int, int], mode: str = "crop"
) -> Tensor:
    """Intrinsics (*B, 3, 3) of ``size`` frames after :func:`fit_plan`."""
    (rh, rw), top, left = fit_plan(size, resolution, mode)
    return crop_intrinsics(resize_intrinsics(K.float(), size, (rh, rw)), top, left)


def fit_frames(
    stack: FrameStack, resolution: tuple[int, int], mode: str = "crop", batch: int = 8
) -> FrameStack:
    """Bring a stack to the working ``resolution`` (H, W) with :func:`fit_plan`, intrinsics adjusted.

    Colour and depth are resized bilinearly (GEN3C resizes depth bilinearly too; the edge filter
    later drops the blended points at depth edges); a pixel stays valid only where every source
    pixel it blends was valid, so holes never blend into the depth. Readers of long clips use
    :class:`FrameFitter`, which does the same a frame at a time as the frames are decoded.
    """
    if stack.size == tuple(resolution):
        return stack
    fitter = FrameFitter(len(stack), resolution, mode)
    for s in range(0, len(stack), batch):
        e = min(len(stack), s + batch)
        ids = None if stack.instance_ids is None else stack.instance_ids[s:e]
        fitter.add(stack.images[s:e], stack.depth[s:e], stack.valid[s:e], ids)
    return fitter.stack(
        stack.w2c, stack.K, fps=stack.fps, frame_indices=stack.frame_indices, depth_kind=stack.depth_kind
    )


class FrameFitter:
    """Frames brought to the working resolution as a reader decodes them, so that a clip is never
    held at its source size: only the working-size :class:`FrameStack` grows.

    The frames come out as :func:`fit_frames` makes them from the whole clip, bit for bit (the
    bilinear and nearest resizes treat each frame alone, so the frames added together do not
    matter). Each added frame must have the size of the first.

    Args:
        count: how many frames will be added.
        resolution, mode: see :func:`fit_plan`.
        progress: shows the frames added as the stage :data:`READING_STAGE`, which starts once
            the first frame is in (a refusal of the first frame, where most are found, stays
            its one line).
    """

    def __init__(
        self, count: int, resolution: tuple[int, int], mode: str = "crop", progress: ProgressFactory | None = None
    ) -> None:
        if mode not in RESIZE_MODES:
            raise Gen3cInputError(f"unknown resize mode {mode!r}: choose one of {', '.join(RESIZE_MODES)}")
        self.count, self.resolution, self.mode = count, tuple(resolution), mode
        self.added = 0
        self._progress = progress
        self._advance = None
        self.source_size: tuple[int, int] | None = None
        self._out: dict[str, Tensor] = {}

    def add(self, images: Tensor, depth: Tensor, valid: Tensor, instance_ids: Tensor | None = None) -> None:
        """Append frames at their source size (one or a few at a time).

        Args:
            images: (n, 3, H, W) uint8 (or (3, H, W), one frame).
            depth: (n, H, W) float32 z-depth, 0 where there is none; ``valid``: (n, H, W) bool.
            instance_ids: optional (n, H, W) integers, given with every frame or with none;
                kept in the narrowest type that holds all ids added (:func:`id_dtype`).
        """
        if images.ndim == 3:
            images, depth, valid = images[None], depth[None], valid[None]
            instance_ids = None if instance_ids is None else instance_ids[None]
        n, size = images.shape[0], (int(images.shape[-2]), int(images.shape[-1]))
        if self.source_size is None:
            self.source_size = size
            h, w = self.resolution if self.plan is not None else size
            self._out = {"images": torch.empty(self.count, 3, h, w, dtype=torch.uint8), "depth": torch.empty(self.count, h, w),
                         "valid": torch.empty(self.count, h, w, dtype=torch.bool)}  # fmt: skip
            if instance_ids is not None:
                self._out["instance_ids"] = torch.empty(self.count, h, w, dtype=id_dtype(instance_ids))
        if size != self.source_size:
            raise ValueError(f"FrameFitter: a {size} frame after {self.source_size} frames")
        if self.added + n > self.count:
            raise ValueError(f"FrameFitter: more than the {self.count} frames announced")
        if (instance_ids is None) == ("instance_ids" in self._out):
            raise ValueError("FrameFitter: instance_ids must come with every frame or with none")
        s, e = self.added, self.added + n
        out = self._out
        if instance_ids is not None:
            wider = id_dtype(instance_ids, at_least=out["instance_ids"].dtype)
            if wider != out["instance_ids"].dtype:  # ids past the type of those before: widened once
                out["instance_ids"] = out["instance_ids"].to(wider)
        if self.plan is None:
            out["images"][s:e], out["depth"][s:e], out["valid"][s:e] = images, depth, valid
            if instance_ids is not None:
                out["instance_ids"][s:e] = instance_ids
        else:
            (rh, rw), top, left = self.plan
            h, w = self.resolution
            v = valid[:, None].float()
            x = torch.cat([images.float().div_(127.5).sub_(1.0), depth[:, None] * v, v], dim=1)
            x = resize_image(x, (rh, rw), "stretch")[..., top : top + h, left : left + w]
            ok = x[:, 4] > 0.999
            out["images"][s:e] = images_to_uint8(x[:, :3])
            out["depth"][s:e] = torch.where(ok, x[:, 3] / x[:, 4].clamp(min=1e-6), torch.zeros_like(x[:, 3]))
            out["valid"][s:e] = ok
            if instance_ids is not None:
                ids = resize_nearest(instance_ids, (rh, rw))  # exact in the ids' own integer type
                out["instance_ids"][s:e] = ids[:, top : top + h, left : left + w]
        self.added = e
        if self._progress is not None:
            if self._advance is None:
                self._advance = self._progress(READING_STAGE, self.count)
            self._advance(n)

    @property
    def plan(self) -> tuple[tuple[int, int], int, int] | None:
        """:func:`fit_plan` for the frames added (None while they are at the working size, or none came yet)."""
        if self.source_size is None or self.source_size == self.resolution:
            return None
        return fit_plan(self.source_size, self.resolution, self.mode)

    def stack(self, w2c: Tensor, K: Tensor, **fields) -> FrameStack:
        """The :class:`FrameStack` of the frames added, given their cameras at the source size
        (``K`` is adjusted with :func:`fit_intrinsics`); ``fields``: fps, frame_indices, depth_kind."""
        if self.added != self.count or self.source_size is None:
            raise ValueError(f"FrameFitter: {self.added} of the {self.count} frames announced were added")
        if self.plan is not None:
            K = fit_intrinsics(K, self.source_size, self.resolution, self.mode)
        return FrameStack(w2c=w2c, K=K, instance_ids=self._out.get("instance_ids"), **fields,
                          **{k: v for k, v in self._out.items() if k != "instance_ids"})  # fmt: skip


# --------------------------------------------------------------------------------------------
# Checks shared by the readers (each raises a one-line Gen3cInputError)
# --------------------------------------------------------------------------------------------


def absent_note(path: Path) -> str:
    """Why ``path``, where a reader wants a file, holds none, for its refusal: a link whose target
    is gone (a folder copied from another machine with its symbolic links), a folder, or ""."""
    if path.is_symlink() and not path.exists():
        return f" (a link to {quoted_path(os.readlink(path))}, which does not exist here: copy what it points to, not the link)"
    return " (a folder, not a file)" if path.is_dir() else ""


def validate_intrinsics_frames(K: Tensor, name: str, frame_offset: int = 0) -> Tensor:
    """:func:`gen3c.cameras.validate_intrinsics` of a (T, 3, 3) stack read from a file, whose
    refusal (NaN, a focal length ≤ 0, a bad last row) names the first bad frame, counted from
    ``frame_offset`` (the index of ``K[0]`` in the file), as :func:`check_intrinsics_fit`'s do."""
    try:
        return validate_intrinsics(K, name)
    except Gen3cInputError:
        for i in range(len(K) if K.ndim == 3 and len(K) > 1 else 0):  # on the way to an error: the frame to name
            validate_intrinsics(K[i], f"{name} (frame {frame_offset + i})")
        raise


def check_array(array: np.ndarray, name: str, shape: tuple, kinds: str = "f") -> np.ndarray:
    """Check an array's dtype kind and shape; ``None`` or a name ("T") in ``shape`` matches any
    size (the message shows the name, or ``*`` for None)."""
    if array.dtype.kind not in kinds:
        raise Gen3cInputError(f"{name} holds {array.dtype} values: expected {_kind_names(kinds)}")
    if not check_shape(array.shape, shape):
        expected = "(" + ", ".join("*" if d is None else str(d) for d in shape) + ")"
        # a trailing channel axis of 1 ((T, H, W, 1), as image tools save one channel): say how to drop it
        trailing = array.ndim == len(shape) + 1 and array.shape[-1] == 1 and check_shape(array.shape[:-1], shape)
        fix = ": save it without its last axis of 1 (np.squeeze(array, -1))" if trailing else ""
        raise Gen3cInputError(f"{name} has shape {tuple(array.shape)}: expected {expected}{fix}")
    return array


def check_shape(got: tuple, shape: tuple) -> bool:
    """Whether ``got`` matches ``shape`` (:func:`check_array`'s: None or a name matches any size)."""
    return len(got) == len(shape) and all(want is None or isinstance(want, str) or want == size for want, size in zip(shape, got, strict=True))


def complete_pose_rows(array: np.ndarray) -> np.ndarray:
    """Poses saved as (N, 3, 4) ``[R | t]``, the rows of a rigid 4×4 above its constant
    ``[0 0 0 1]``, completed with that row to (N, 4, 4); any other array as it is (its reader's
    shape and dtype checks then say what is wrong with it)."""
    if array.ndim == 3 and array.shape[1:] == (3, 4) and array.dtype.kind in "fi":
        last = np.broadcast_to(np.array([0, 0, 0, 1], array.dtype), (len(array), 1, 4))
        return np.concatenate([array, last], axis=1)
    return array


def check_depth_array(array: np.ndarray, name: str, shape: tuple) -> np.ndarray:
    """:func:`check_array` for z-depth, which must be floats: integer depth (a depth camera's
    millimetres, 16-bit PNG depth saved as is) is refused with the conversion to save instead."""
    if array.dtype.kind in "iub":
        raise Gen3cInputError(
            f"{name} holds {array.dtype} values, not float z-depth: save it as floats in the poses' units "
            "(integer millimetres: depth.astype(np.float32) / 1000 for metres)"
        )
    return check_array(array, name, shape)


def float32_array(array: np.ndarray, copy: bool = True) -> np.ndarray:
    """``array`` as a float32 copy (``copy=False``: ``array`` itself where it is float32 already,
    for an array the caller owns). Magnitudes beyond float32's range (~3.4e38) become ±inf
    quietly, without numpy's "overflow encountered in cast" warning: the reader's own checks
    then treat them as the non-finite values they now are (:func:`gen3c.io.depth.fill_invalid_depth`'s
    note for depth, a one-line error for poses and intrinsics)."""
    with np.errstate(over="ignore"):
        return np.asarray(array).astype(np.float32, copy=copy)


def _kind_names(kinds: str) -> str:
    names = {"f": "floats", "i": "integers", "u": "unsigned integers", "b": "booleans"}
    return " or ".join(names[k] for k in kinds)


def check_decoded(decoded: int, expected: int, name: str) -> None:
    """The decoder must deliver every frame the container lists."""
    if decoded != expected:
        raise Gen3cInputError(
            f"{name} lists {expected} frames from the start frame on but only {decoded} decode: the file is truncated or damaged"
        )


def frame_range(start: int, num_frames: int | None, total: int, name: str) -> int:
    """The stop index for frames ``start`` … (``num_frames`` ≥ 1 of them, or to the end).
    ``start`` is GEN3C's ``--vipe_starting_frame_idx``, as a refusal names it (respelled per
    surface: :mod:`gen3c.pipelines.spelling`)."""
    if num_frames is not None and (not is_whole_number(num_frames) or num_frames < 1):  # (True read 1 frame; 2.5 failed in range())
        raise Gen3cInputError(f"{num_frames!r} frames of {name} asked for: ask for a whole number, at least 1")
    if not is_whole_number(start):
        raise Gen3cInputError(f"--vipe_starting_frame_idx {start!r} is no frame of {name}: pass a whole number, 0 … {total - 1}")
    if start < 0 or start >= total:
        raise Gen3cInputError(
            f"--vipe_starting_frame_idx {start} is outside {name}, which has {total} frames: pass 0 … {total - 1}"
        )
    return total if num_frames is None else min(total, start + num_frames)


def check_frame_size(image: np.ndarray, fitter: FrameFitter, name: str, frame: int) -> tuple[int, int]:
    """The (H, W) of a decoded (H, W, 3) frame, which must be that of the frames before it."""
    size = (int(image.shape[0]), int(image.shape[1]))
    if fitter.source_size is not None and size != fitter.source_size:
        h, w = fitter.source_size
        raise Gen3cInputError(
            f"{name} frame {frame} is {size[0]}×{size[1]} but the frames before it are {h}×{w}: re-encode the video at one size"
        )
    return size
