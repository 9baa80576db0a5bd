"""GEN3C's multi-view input: key views with depth and cameras, plus the path to render (``gen3c_multiview.py --npz_path``).

One ``.npz`` (GEN3C's ``gen3c_multiview.py --npz_path``) with::

    images_key_frames  (N, 3, H, W) float in [−1, 1]
    depth_key_frames   (N, 1, H, W) z-depth          (N, H, W) accepted too
    mask_key_frames    (N, 1, H, W) > 0 = use the pixel  (N, H, W) accepted too
    K_key_frames       (N, 3, 3) intrinsics in pixels of H × W
    w2cs_key_frames    (N, 4, 4) OpenCV world-to-camera
    w2cs_all           (T, 4, 4) the trajectory to render
    Ks_all             (T, 3, 3) optional; GEN3C uses the last key view's K for every frame without it
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gen3c.cameras import Cameras, check_intrinsics_fit, note_scaled_intrinsics, validate_poses
from gen3c.errors import Gen3cInputError, note, quoted_path
from gen3c.io.conventions import check_depth_conventions
from gen3c.io.depth import InvalidDepthTally, fill_invalid_depth, mask_lets_in
from gen3c.io.frames import (
    FrameFitter,
    FrameStack,
    check_array,
    check_depth_array,
    fit_intrinsics,
    float32_array,
    images_to_uint8,
    validate_intrinsics_frames,
)
from gen3c.io.npz import NpzReader
from gen3c.io.paths import is_dir, is_file, refuse_special_file

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
    name = f"multi-view npz {quoted_path(p)}"
    refuse_special_file(p, "multi-view npz")
    if not is_file(p):
        why = "is a folder: pass the .npz file in it" if is_dir(p) else "does not exist: check --multiview_npz"
        raise Gen3cInputError(f"{name} {why}")
    with NpzReader(p, name) as npz:
        missing = [k for k in MULTIVIEW_KEYS if k not in npz.files]
        for key in missing:  # poses saved camera-to-world, as c2ws_all: their inverse, not the key renamed
            npz.refuse_inverted(key)
        if missing:
            raise Gen3cInputError(
                f"{name} lacks {', '.join(missing)}: GEN3C's multi-view input holds {', '.join(MULTIVIEW_KEYS)} (+ optional Ks_all)"
            )
        # The key views are read one at a time below; the cameras whole.
        images = npz.frames("images_key_frames")
        if images.dtype.kind in "iub":  # 8-bit colours saved as they are
            raise Gen3cInputError(
                f"{name} images_key_frames holds {images.dtype} values: GEN3C's are floats in [−1, 1]; save images / 127.5 - 1 (for 0 … 255)"
            )
        if images.ndim == 4 and images.shape[-1] == 3 and images.shape[1] != 3:
            raise Gen3cInputError(
                f"{name} images_key_frames has shape {tuple(images.shape)}, (N, H, W, 3): GEN3C's are (N, 3, H, W); save images.transpose(0, 3, 1, 2)"
            )
        images = check_array(images, f"{name} images_key_frames", (None, 3, None, None))
        depth_frames, mask_frames = npz.frames("depth_key_frames"), npz.frames("mask_key_frames")
        cameras = {k: npz.load(k) for k in ("K_key_frames", "w2cs_key_frames", "w2cs_all", "Ks_all") if k in npz.files}
        N, _, H, W = images.shape
        if N == 0:
            raise Gen3cInputError(f"{name} has no key views: images_key_frames is empty")
        depth = check_depth_array(depth_frames.squeeze_channel(), f"{name} depth_key_frames", (N, H, W))
        mask = check_array(mask_frames.squeeze_channel(), f"{name} mask_key_frames", (N, H, W), "fbiu")
        K = check_array(cameras["K_key_frames"], f"{name} K_key_frames", (N, 3, 3))
        w2c = check_array(cameras["w2cs_key_frames"], f"{name} w2cs_key_frames", (N, 4, 4))
        w2c_all = check_array(cameras["w2cs_all"], f"{name} w2cs_all", (None, 4, 4))
        if len(w2c_all) == 0:
            raise Gen3cInputError(f"{name} w2cs_all is empty: it must hold the cameras of the video to render")
        if "Ks_all" in cameras:
            K_all = check_array(cameras["Ks_all"], f"{name} Ks_all", (len(w2c_all), 3, 3))
        else:
            K_all = np.broadcast_to(K[-1], (len(w2c_all), 3, 3))
        key_w2c = validate_poses(torch.from_numpy(float32_array(w2c)), f"{name} w2cs_key_frames")
        key_K = validate_intrinsics_frames(torch.from_numpy(float32_array(K)), f"{name} K_key_frames")
        key_K = check_intrinsics_fit(key_K, H, W, f"{name} K_key_frames")
        path_w2c = validate_poses(torch.from_numpy(float32_array(w2c_all)), f"{name} w2cs_all")
        path_K = validate_intrinsics_frames(torch.from_numpy(float32_array(K_all)), f"{name} Ks_all")
        path_K = check_intrinsics_fit(path_K, H, W, f"{name} Ks_all")
        resized = "the key views before they were resized"
        note_scaled_intrinsics(key_K, H, W, f"{name} K_key_frames", resized=resized)
        if "Ks_all" in cameras:  # (else they are the last key view's, noted above)
            note_scaled_intrinsics(path_K, H, W, f"{name} Ks_all", resized=resized)
        trajectory = Cameras(path_w2c, fit_intrinsics(path_K, (H, W), resolution, resize_mode), *resolution)
        fitter = FrameFitter(N, resolution, resize_mode)
        tally = InvalidDepthTally()
        lo, hi = math.inf, -math.inf
        for i, (image, depth_i, mask_i) in enumerate(zip(images.frames(), depth.frames(), mask.frames(), strict=True)):
            image_t = torch.from_numpy(float32_array(image))
            if not torch.isfinite(image_t).all() or image_t.min() < -1.01 or image_t.max() > 1.01:
                lo, hi = float(np.nanmin(image)), float(np.nanmax(image))
                raise Gen3cInputError(
                    f"{name} images_key_frames must be finite and in [−1, 1], got values in [{lo:.3g}, {hi:.3g}] (key view {i})"
                )
            lo, hi = min(lo, float(image_t.min())), max(hi, float(image_t.max()))
            depth_t, valid = fill_invalid_depth(
                torch.from_numpy(float32_array(depth_i))[None],
                f"{name} depth_key_frames",
                mask_invalid_depth,
                mask=mask_lets_in(mask_i)[None],
                frame_offset=i,
                tally=tally,
                mask_name="mask_key_frames",
            )
            fitter.add(images_to_uint8(image_t), depth_t[0], valid[0])
    tally.note(f"{name} depth_key_frames", mask_invalid_depth, stacklevel=2)
    if lo >= 0 and hi > lo:  # [0, 1] colours (torchvision's): read as [−1, 1], black is mid-grey
        note(
            f"{name} images_key_frames has no value below 0, so its darkest pixel is mid-grey in [−1, 1]: "
            "if it holds [0, 1] colours, save images * 2 - 1",
            stacklevel=2,
        )
    keys = fitter.stack(key_w2c, key_K)
    check_depth_conventions(
        keys.depth, keys.valid, keys.K, keys.w2c, poses_name=f"{name} w2cs_key_frames", depth_name=f"{name} depth_key_frames", images=keys.images,
        poses_fix="save each matrix's inverse (np.linalg.inv), OpenCV world-to-camera, in w2cs_key_frames (and in w2cs_all, if it holds camera-to-world ones too)",
        depth_fix="save z-depth (1 / disparity, in the poses' units) as depth_key_frames",
        # Each key view's depth at its own scale (an estimator's per photo): 10 % more depth in one
        # view read as its camera moved back, and correct poses were refused.
        per_frame_scale=True,
    )  # fmt: skip
    return MultiViewInput(keys=keys, trajectory=trajectory)
