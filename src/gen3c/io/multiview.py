"""GEN3C's multi-view input: key views with depth and cameras, plus the path to render (``gen3c_multiview.py --npz_path``).

One ``.npz`` (GEN3C's ``gen3c_multiview.py --npz_path``) with::

    images_key_frames  (N, 3, H, W) float in [−1, 1]
    depth_key_frames   (N, 1, H, W) z-depth          (N, H, W) accepted too
    mask_key_frames    (N, 1, H, W) 1 = use the pixel  (N, H, W) accepted too
    K_key_frames       (N, 3, 3) intrinsics in pixels of H × W
    w2cs_key_frames    (N, 4, 4) OpenCV world-to-camera
    w2cs_all           (T, 4, 4) the trajectory to render
    Ks_all             (T, 3, 3) optional; GEN3C uses the last key view's K for every frame without it
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gen3c.cameras import Cameras, check_intrinsics_fit, validate_poses
from gen3c.errors import Gen3cInputError
from gen3c.io.depth import fill_invalid_depth
from gen3c.io.formats import require_numpy_file
from gen3c.io.frames import FrameStack, check_array, fit_frames, fit_intrinsics, images_to_uint8

MULTIVIEW_KEYS = (
    "images_key_frames",
    "depth_key_frames",
    "mask_key_frames",
    "K_key_frames",
    "w2cs_key_frames",
    "w2cs_all",
)


@dataclass
class MultiViewInput:
    """Key views and the trajectory, both at the working resolution.

    Attributes:
        keys: the N key views (the first one conditions the first frame).
        trajectory: the T cameras of ``w2cs_all`` (and ``Ks_all``).
    """

    keys: FrameStack
    trajectory: Cameras


def read_multiview(
    path: str | os.PathLike,
    resolution: tuple[int, int],
    *,
    resize_mode: str = "crop",
    mask_invalid_depth: bool = False,
) -> MultiViewInput:
    """Read a multi-view ``.npz`` and bring views and trajectory to the working resolution.

    Raises:
        Gen3cInputError: missing file or keys, wrong shapes or counts, images outside [−1, 1],
            bad depth, non-rigid poses, bad intrinsics.
    """
    p = Path(path)
    name = f"multi-view npz {str(p)!r}"
    if not p.is_file():
        why = "is a folder: pass the .npz file in it" if p.is_dir() else "does not exist: check --multiview_npz"
        raise Gen3cInputError(f"{name} {why}")
    try:
        require_numpy_file(p, name, archive=True)
        with np.load(p, allow_pickle=False) as data:
            missing = [k for k in MULTIVIEW_KEYS if k not in data.files]
            if missing:
                raise Gen3cInputError(
                    f"{name} lacks {', '.join(missing)}: GEN3C's multi-view input holds {', '.join(MULTIVIEW_KEYS)} (+ optional Ks_all)"
                )
            arrays = {k: data[k] for k in (*MULTIVIEW_KEYS, "Ks_all") if k in data.files}
    except Gen3cInputError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise Gen3cInputError(
                f"{name} holds Python objects, which are never unpickled: save plain arrays"
            ) from None
        raise Gen3cInputError(f"{name} cannot be read ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise Gen3cInputError(f"{name} is not a readable .npz file ({exc})") from None

    images = check_array(arrays["images_key_frames"], f"{name} images_key_frames", (None, 3, None, None))
    N, _, H, W = images.shape
    if N == 0:
        raise Gen3cInputError(f"{name} has no key views: images_key_frames is empty")
    depth = _squeeze_channel(arrays["depth_key_frames"], f"{name} depth_key_frames", (N, H, W), "f")
    mask = _squeeze_channel(arrays["mask_key_frames"], f"{name} mask_key_frames", (N, H, W), "fbiu")
    K = check_array(arrays["K_key_frames"], f"{name} K_key_frames", (N, 3, 3))
    w2c = check_array(arrays["w2cs_key_frames"], f"{name} w2cs_key_frames", (N, 4, 4))
    w2c_all = check_array(arrays["w2cs_all"], f"{name} w2cs_all", (None, 4, 4))
    if len(w2c_all) == 0:
        raise Gen3cInputError(f"{name} w2cs_all is empty: it must hold the cameras of the video to render")
    if "Ks_all" in arrays:
        K_all = check_array(arrays["Ks_all"], f"{name} Ks_all", (len(w2c_all), 3, 3))
    else:
        K_all = np.broadcast_to(K[-1], (len(w2c_all), 3, 3))

    image_t = torch.from_numpy(images.astype(np.float32))
    if not torch.isfinite(image_t).all() or image_t.min() < -1.01 or image_t.max() > 1.01:
        lo, hi = float(np.nanmin(images)), float(np.nanmax(images))
        raise Gen3cInputError(
            f"{name} images_key_frames must be finite and in [−1, 1], got values in [{lo:.3g}, {hi:.3g}]"
        )
    depth_t, valid = fill_invalid_depth(
        torch.from_numpy(depth.astype(np.float32)),
        f"{name} depth_key_frames",
        mask_invalid_depth,
        mask=torch.from_numpy(mask.astype(np.float32) > 0.5),
    )
    keys = FrameStack(
        images=images_to_uint8(image_t),
        depth=depth_t,
        valid=valid,
        w2c=validate_poses(torch.from_numpy(w2c.astype(np.float32)), f"{name} w2cs_key_frames"),
        K=check_intrinsics_fit(torch.from_numpy(K.astype(np.float32)), H, W, f"{name} K_key_frames"),
    )
    trajectory = Cameras(
        validate_poses(torch.from_numpy(w2c_all.astype(np.float32)), f"{name} w2cs_all"),
        fit_intrinsics(
            check_intrinsics_fit(torch.from_numpy(np.ascontiguousarray(K_all, dtype=np.float32)), H, W, f"{name} Ks_all"),
            (H, W),
            resolution,
            resize_mode,
        ),
        *resolution,
    )
    return MultiViewInput(keys=fit_frames(keys, resolution, resize_mode), trajectory=trajectory)


def _squeeze_channel(array: np.ndarray, name: str, shape: tuple[int, int, int], kinds: str) -> np.ndarray:
    """(N, 1, H, W) or (N, H, W) → (N, H, W)."""
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    return check_array(array, name, shape, kinds)
