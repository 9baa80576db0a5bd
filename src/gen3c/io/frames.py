"""Frames with depth and cameras — what video, ViPE and multi-view inputs are read into.

:class:`FrameStack` holds T frames of one size: colour, z-depth, a validity mask and an OpenCV
world-to-camera pose and intrinsics per frame. Readers (:mod:`gen3c.io.gen3c_sample`,
:mod:`gen3c.io.vipe`, :mod:`gen3c.io.multiview`) validate what they read, then bring it to the
working resolution with :func:`fit_frames`, which adjusts the intrinsics to match.

Colour is kept as uint8 and depth as float32 so a long video costs ~6 bytes per pixel per frame;
the pipeline converts one chunk of frames at a time.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gen3c.cameras import crop_intrinsics, resize_crop_plan, resize_intrinsics
from gen3c.errors import Gen3cInputError
from gen3c.io.formats import require_numpy_file
from gen3c.io.images import RESIZE_MODES, resize_image

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
        instance_ids: optional (T, H, W) int32 instance masks (ViPE); not used by the cache.
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
    pixel it blends was valid, so holes never blend into the depth.
    """
    size = stack.size
    if size == tuple(resolution):
        return stack
    (rh, rw), top, left = fit_plan(size, resolution, mode)
    h, w = resolution
    T = len(stack)
    images = torch.empty(T, 3, h, w, dtype=torch.uint8)
    depth = torch.empty(T, h, w)
    valid = torch.empty(T, h, w, dtype=torch.bool)
    for s in range(0, T, batch):
        e = min(T, s + batch)
        v = stack.valid[s:e, None].float()
        x = torch.cat([stack.image(s, e), stack.depth[s:e, None] * v, v], dim=1)
        x = resize_image(x, (rh, rw), "stretch")[..., top : top + h, left : left + w]
        ok = x[:, 4] > 0.999
        images[s:e] = images_to_uint8(x[:, :3])
        depth[s:e] = torch.where(ok, x[:, 3] / x[:, 4].clamp(min=1e-6), torch.zeros_like(x[:, 3]))
        valid[s:e] = ok
    instance_ids = None
    if stack.instance_ids is not None:
        ids = torch.nn.functional.interpolate(
            stack.instance_ids[:, None].float(), size=(rh, rw), mode="nearest"
        )
        instance_ids = ids[:, 0, top : top + h, left : left + w].to(torch.int32)
    return FrameStack(
        images=images,
        depth=depth,
        valid=valid,
        w2c=stack.w2c,
        K=fit_intrinsics(stack.K, size, resolution, mode),
        fps=stack.fps,
        frame_indices=stack.frame_indices,
        depth_kind=stack.depth_kind,
        instance_ids=instance_ids,
    )


# --------------------------------------------------------------------------------------------
# Checks shared by the readers (each raises a one-line Gen3cInputError)
# --------------------------------------------------------------------------------------------


def check_array(array: np.ndarray, name: str, shape: tuple, kinds: str = "f") -> np.ndarray:
    """Check an array's dtype kind and shape; ``None`` in ``shape`` matches any size."""
    if array.dtype.kind not in kinds:
        raise Gen3cInputError(f"{name} holds {array.dtype} values: expected {_kind_names(kinds)}")
    ok = array.ndim == len(shape) and all(
        want is None or want == got for want, got in zip(shape, array.shape, strict=False)
    )
    if not ok:
        expected = "(" + ", ".join("*" if d is None else str(d) for d in shape) + ")"
        raise Gen3cInputError(f"{name} has shape {tuple(array.shape)}: expected {expected}")
    return array


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
    """The stop index for frames ``start`` … (``num_frames`` of them, or to the end)."""
    if start < 0 or start >= total:
        raise Gen3cInputError(
            f"starting frame {start} is outside {name}, which has {total} frames: pass 0 … {total - 1}"
        )
    return total if num_frames is None else min(total, start + num_frames)


def load_npz_array(path: Path, key: str, name: str | None = None) -> np.ndarray:
    """One array of an ``.npz`` file, never unpickling objects; clear errors for the rest."""
    name = name or f"{str(path)!r}"
    try:
        require_numpy_file(path, name, archive=True)
        with np.load(path, allow_pickle=False) as data:
            if key not in data.files:
                raise Gen3cInputError(
                    f"{name} has no key {key!r} (it holds {sorted(data.files)}): save the array under {key!r}"
                )
            return data[key]
    except Gen3cInputError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise Gen3cInputError(
                f"{name} key {key!r} holds Python objects, which are never unpickled: save a plain array"
            ) from None
        raise Gen3cInputError(f"{name} cannot be read ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise Gen3cInputError(f"{name} is not a readable .npz file ({exc})") from None
