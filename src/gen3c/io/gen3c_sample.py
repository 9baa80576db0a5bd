"""GEN3C's video sample layout (what its ``--input_image_path .../batch_0000`` reads: ``data_loader_utils.py``).

A sample directory holds::

    rgb.mp4      T frames, RGB
    depth.npz    key "depth": (T, H, W) float16 z-depth
    mask.npz     key "mask": (T, H, W) bool, True where the depth may enter the 3D cache
    camera.npz   keys "w2c": (T, 4, 4) and "intrinsics": (T, 3, 3) float32,
                 OpenCV world-to-camera poses, intrinsics in pixels of the stored frames

The legacy form is one ``.pt`` file with the same five tensors (image (T, 3, H, W) in [−1, 1],
depth (T, 1, H, W), mask (T, 1, H, W), w2c, intrinsics). It is a pickle: it is loaded with
``torch.load(weights_only=True)`` only; a file that needs full unpickling (which can run code)
is refused unless the caller passes ``trust_checkpoint=True`` (CLI ``--trust_checkpoint``).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from gen3c.cameras import check_intrinsics_fit, validate_poses
from gen3c.errors import Gen3cInputError, first_line
from gen3c.io.depth import fill_invalid_depth
from gen3c.io.frames import (
    FrameStack,
    check_array,
    check_decoded,
    fit_frames,
    frame_range,
    images_to_uint8,
    load_npz_array,
)
from gen3c.io.video import count_video_frames, read_video

SAMPLE_FILES = ("rgb.mp4", "depth.npz", "mask.npz", "camera.npz")


def is_sample(path: str | os.PathLike) -> bool:
    """True for a directory (an image input cannot be one) or a ``.pt`` file."""
    p = Path(path)
    return p.is_dir() or (p.suffix.lower() == ".pt" and p.is_file())


def read_sample(
    path: str | os.PathLike,
    resolution: tuple[int, int],
    *,
    start: int = 0,
    num_frames: int | None = None,
    resize_mode: str = "crop",
    mask_invalid_depth: bool = False,
    trust_checkpoint: bool = False,
) -> FrameStack:
    """Read a GEN3C sample directory (or legacy ``.pt``) at the working resolution.

    Args:
        resolution: working (H, W); frames are resized and centre-cropped with intrinsics
            adjusted (:func:`gen3c.io.frames.fit_frames`).
        start: first frame to use; ``num_frames``: how many (None: to the end).
        mask_invalid_depth: leave NaN/inf depth out of the cache instead of placing it far away
            (GEN3C's treatment, :func:`gen3c.io.depth.fill_invalid_depth`).
    Raises:
        Gen3cInputError: missing files or keys, wrong shapes, frame counts that disagree, bad
            values, ``start`` past the end.
    """
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".pt":
        stack = _read_pt(p, trust_checkpoint, mask_invalid_depth)
        stack = _select(stack, start, num_frames, f"sample {str(p)!r}")
    elif p.is_dir():
        stack = _read_dir(p, start, num_frames, mask_invalid_depth)
    elif p.is_file() and p.name in SAMPLE_FILES:
        raise Gen3cInputError(f"sample {str(p)!r} is one file of a GEN3C sample: pass its folder, {str(p.parent)!r}")
    elif p.is_file():
        raise Gen3cInputError(f"sample {str(p)!r} is a file but not a .pt sample: pass a GEN3C sample directory ({', '.join(SAMPLE_FILES)}) or .pt file")
    else:
        raise Gen3cInputError(
            f"sample {str(p)!r} does not exist: pass a GEN3C sample directory ({', '.join(SAMPLE_FILES)}) or .pt file"
        )
    return fit_frames(stack, resolution, resize_mode)


def _read_dir(folder: Path, start: int, num_frames: int | None, mask_invalid_depth: bool) -> FrameStack:
    name = f"sample directory {str(folder)!r}"
    missing = [f for f in SAMPLE_FILES if not (folder / f).is_file()]
    if missing:
        from gen3c.io.vipe import is_vipe

        if is_vipe(folder):
            raise Gen3cInputError(f"{name} is a ViPE result (rgb/, pose/), not a GEN3C sample: pass it as --vipe_path")
        raise Gen3cInputError(
            f"{name} lacks {', '.join(missing)}: a GEN3C sample holds {', '.join(SAMPLE_FILES)}"
        )
    depth = load_npz_array(folder / "depth.npz", "depth")
    mask = load_npz_array(folder / "mask.npz", "mask")
    w2c = load_npz_array(folder / "camera.npz", "w2c")
    K = load_npz_array(folder / "camera.npz", "intrinsics")
    check_array(depth, f"{name} depth.npz 'depth'", (None, None, None))
    check_array(mask, f"{name} mask.npz 'mask'", (None, None, None), kinds="bui")
    check_array(w2c, f"{name} camera.npz 'w2c'", (None, 4, 4))
    check_array(K, f"{name} camera.npz 'intrinsics'", (None, 3, 3))
    total = count_video_frames(folder / "rgb.mp4", "sample video")
    counts = {
        "rgb.mp4": total,
        "depth.npz": len(depth),
        "mask.npz": len(mask),
        "camera.npz w2c": len(w2c),
        "camera.npz intrinsics": len(K),
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
    stop = frame_range(start, num_frames, total, f"{name} rgb.mp4")
    frames, fps = read_video(folder / "rgb.mp4", "sample video", max_frames=stop - start, start=start)
    check_decoded(len(frames), stop - start, f"{name} rgb.mp4")
    if frames.shape[1:3] != depth.shape[1:]:
        raise Gen3cInputError(
            f"{name} rgb.mp4 is {frames.shape[1]}×{frames.shape[2]} but depth.npz is {depth.shape[1]}×{depth.shape[2]}: depth must be per pixel of the frames"
        )
    depth_t, valid = fill_invalid_depth(
        torch.from_numpy(depth[start:stop].astype(np.float32)),
        f"{name} depth.npz",
        mask_invalid_depth,
        mask=torch.from_numpy(mask[start:stop].astype(bool)),
        frame_offset=start,
    )
    w2c_t = validate_poses(torch.from_numpy(w2c[start:stop].astype(np.float32)), f"{name} camera.npz w2c", frame_offset=start)
    K_t = check_intrinsics_fit(
        torch.from_numpy(K[start:stop].astype(np.float32)), *frames.shape[1:3], f"{name} camera.npz intrinsics", frame_offset=start
    )
    return FrameStack(
        images=torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous(),
        depth=depth_t,
        valid=valid,
        w2c=w2c_t,
        K=K_t,
        fps=fps,
        frame_indices=list(range(start, stop)),
    )


def _read_pt(path: Path, trust_checkpoint: bool, mask_invalid_depth: bool) -> FrameStack:
    name = f"sample {str(path)!r}"
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not trust_checkpoint:
            raise Gen3cInputError(
                f"{name} holds Python objects that only full unpickling can load, which can run code: "
                "convert it to a sample directory, or pass --trust_checkpoint if you trust its source"
            ) from None
        data = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise Gen3cInputError(
            f"{name} is not a readable torch file ({first_line(exc, 120)})"
        ) from None
    if (
        not isinstance(data, (tuple, list))
        or len(data) != 5
        or not all(isinstance(t, torch.Tensor) for t in data)
    ):
        raise Gen3cInputError(
            f"{name} must hold 5 tensors (image, depth, mask, w2c, intrinsics), got {type(data).__name__}"
        )
    image, depth, mask, w2c, K = (t.detach().cpu() for t in data)
    T = image.shape[0] if image.ndim == 4 else -1
    for what, t, shape in (
        ("image", image, (T, 3)),
        ("depth", depth, (T, 1)),
        ("mask", mask, (T, 1)),
        ("w2c", w2c, (T, 4, 4)),
        ("intrinsics", K, (T, 3, 3)),
    ):
        if (
            T < 1
            or t.ndim != (4 if what in ("image", "depth", "mask") else 3)
            or tuple(t.shape[: len(shape)]) != shape
        ):
            raise Gen3cInputError(
                f"{name} {what} has shape {tuple(t.shape)}: expected (T, 3, H, W), (T, 1, H, W) ×2, (T, 4, 4), (T, 3, 3)"
            )
    if depth.shape[-2:] != image.shape[-2:] or mask.shape[-2:] != image.shape[-2:]:
        raise Gen3cInputError(
            f"{name} image, depth and mask sizes differ: {tuple(image.shape)}, {tuple(depth.shape)}, {tuple(mask.shape)}"
        )
    if not torch.isfinite(image).all() or image.min() < -1.01 or image.max() > 1.01:
        raise Gen3cInputError(f"{name} image must be finite and in [−1, 1]")
    depth_t, valid = fill_invalid_depth(depth[:, 0].float(), f"{name} depth", mask_invalid_depth, mask=mask[:, 0] > 0.5)
    return FrameStack(
        images=images_to_uint8(image),
        depth=depth_t,
        valid=valid,
        w2c=validate_poses(w2c.float(), f"{name} w2c"),
        K=check_intrinsics_fit(K.float(), *image.shape[-2:], f"{name} intrinsics"),
    )


def _select(stack: FrameStack, start: int, num_frames: int | None, name: str) -> FrameStack:
    stop = frame_range(start, num_frames, len(stack), name)
    if (start, stop) == (0, len(stack)):
        return stack
    return FrameStack(
        images=stack.images[start:stop], depth=stack.depth[start:stop], valid=stack.valid[start:stop],
        w2c=stack.w2c[start:stop], K=stack.K[start:stop], fps=stack.fps, frame_indices=list(range(start, stop)),
    )  # fmt: skip
