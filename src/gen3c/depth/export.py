"""Looking at depth before generating: false-colour PNG, raw ``.npy``, the trusted pixels'
mask, point cloud ``.ply`` and a small JSON with the camera (what ``gen3c depth IMAGE`` writes)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gen3c.cameras import unproject_depth
from gen3c.depth.base import DepthEstimate, median_depth
from gen3c.errors import Gen3cInputError, quoted_path
from gen3c.io.atomic import (
    atomic_paths,
    check_output_name,
    check_output_spelling,
    check_output_targets,
    ensure_writable_dir,
)
from gen3c.io.images import image_to_tensor
from gen3c.io.paths import same_file
from gen3c.io.ply import write_ply


def depth_to_color(depth: Tensor, mask: Tensor | None = None) -> np.ndarray:
    """(H, W) depth → (H, W, 3) uint8 false colour (turbo; near = red, far = blue; invalid = black).

    Colours follow inverse depth between its 2nd and 98th percentiles over valid pixels, so a few
    far-away or masked pixels do not wash out the scene.
    """
    import cv2

    d = depth.detach().float().cpu()
    valid = torch.isfinite(d) & (d > 0)
    if mask is not None:
        valid &= mask.cpu().bool()
    out = np.zeros((*d.shape, 3), dtype=np.uint8)
    if not valid.any():
        return out
    inv = torch.where(valid, 1.0 / d.clamp(min=1e-12), torch.zeros_like(d))
    sample = inv[valid]
    if sample.numel() > 1_000_000:  # quantile() has a size limit; a strided sample is plenty
        sample = sample[:: sample.numel() // 1_000_000 + 1]
    lo, hi = (float(v) for v in torch.quantile(sample, torch.tensor([0.02, 0.98])))
    scaled = ((inv - lo) / max(hi - lo, 1e-12)).clamp(0, 1)
    gray = (scaled * 255).round().to(torch.uint8).numpy()
    colored = cv2.cvtColor(cv2.applyColorMap(gray, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    out[valid.numpy()] = colored[valid.numpy()]
    return out


#: The files ``gen3c depth`` writes for a ``--name``, by key.
DEPTH_FILES = {"png": "{}_depth.png", "npy": "{}_depth.npy", "mask": "{}_mask.png", "ply": "{}_points.ply", "json": "{}_depth.json"}

#: How to get past an output name that cannot be written.
OTHER_DEPTH_NAME = "pass another --name or --output_folder"


def check_depth_name(name: str, what: str = "--name") -> None:
    """Refuse a ``--name`` (``what``) of depth outputs that is no plain file name, or that makes a
    name of :data:`DEPTH_FILES` Windows holds no file under, there (``con.v2_depth.png`` is the
    console; ``nul_depth.png`` is a file like any other): :func:`~gen3c.io.atomic.check_output_name`."""
    check_output_name(name, what, DEPTH_FILES.values())


def check_depth_outputs(folder: str | os.PathLike, name: str) -> dict[str, Path]:
    """The paths of :data:`DEPTH_FILES` for ``name`` in ``folder``, refused where one is a folder
    there, or where the folder holds one in another case, one file to this file system (macOS,
    Windows: ``Room_depth.png`` for ``room_depth.png``). ``gen3c depth`` calls it before its
    estimator loads, and :func:`save_depth_outputs` before it writes."""
    paths = {key: Path(folder) / pattern.format(name) for key, pattern in DEPTH_FILES.items()}
    check_output_targets(paths.values(), OTHER_DEPTH_NAME)
    check_output_spelling(paths.values(), OTHER_DEPTH_NAME)
    return paths


def check_inputs_kept(paths: dict[str, Path], inputs: dict[str, str | os.PathLike | None]) -> None:
    """Refuse outputs ``paths`` (:func:`check_depth_outputs`') of which one is a file the run reads,
    ``inputs`` by what names it (``IMAGE_PATH``, ``--intrinsics``): ``gen3c depth x_depth.png --name
    x`` read the photo, then wrote its false-colour depth over it, and the photo was lost."""
    for what, given in inputs.items():
        if given is None or not os.path.isfile(given):  # (intrinsics given as numbers too)
            continue
        for output in paths.values():
            if same_file(given, output):
                raise Gen3cInputError(
                    f"the input {what} {quoted_path(given)} is the output {quoted_path(output)}, which this run would replace: {OTHER_DEPTH_NAME}"
                )


def save_depth_outputs(estimate: DepthEstimate, image, folder: str | os.PathLike, name: str) -> dict[str, Path]:
    """Write ``NAME_depth.png`` (false colour), ``NAME_depth.npy`` (float32 z-depth),
    ``NAME_mask.png`` (8-bit, 255 where the estimator trusts the depth, 0 where it does not, e.g.
    MoGe's sky at its far fill), ``NAME_points.ply`` (trusted pixels, camera space, OpenCV axes)
    and ``NAME_depth.json`` (intrinsics, kind, source, median depth, the mask's file name),
    atomically and as one set. Read back (:func:`gen3c.depth.user.depth_record`), the mask keeps
    the untrusted pixels out of the median depth, as in the run that estimated them.

    Args:
        estimate: the depth; ``image`` is the picture it belongs to (any form accepted by the
            estimators), resized to the estimate's size for the point colours.
    """
    from PIL import Image

    check_depth_name(name)
    out = ensure_writable_dir(folder, "--output_folder")
    H, W = estimate.size
    rgb = image_to_tensor(image)
    if tuple(rgb.shape[-2:]) != (H, W):
        rgb = torch.nn.functional.interpolate(rgb[None], size=(H, W), mode="bilinear", align_corners=False, antialias=True)[0]
    paths = check_depth_outputs(out, name)
    buffer = io.BytesIO()
    np.save(buffer, estimate.depth.cpu().numpy().astype(np.float32))
    keep = estimate.mask & torch.isfinite(estimate.depth) & (estimate.depth > 0)
    points = unproject_depth(estimate.depth.float().cpu(), estimate.intrinsics.float().cpu())[keep]
    colors = rgb.permute(1, 2, 0)[keep] * 2 - 1
    info = {
        "source": estimate.source,
        "kind": estimate.kind,
        "height": H,
        "width": W,
        "intrinsics": estimate.intrinsics.tolist(),
        "intrinsics_from": estimate.intrinsics_from,
        "median_depth": median_depth(estimate),
        "valid_fraction": float(estimate.mask.float().mean()),
        "mask": paths["mask"].name,
    }
    # One set: every file is written under a temporary name first and the five are renamed into
    # place only once all are complete (a failure part-way, e.g. a full disk, leaves none of them).
    with atomic_paths(paths) as tmp:
        Image.fromarray(depth_to_color(estimate.depth, estimate.mask)).save(tmp["png"], format="PNG")
        tmp["npy"].write_bytes(buffer.getvalue())
        Image.fromarray(estimate.mask.cpu().numpy().astype(np.uint8) * 255).save(tmp["mask"], format="PNG")
        write_ply(tmp["ply"], points, colors)
        tmp["json"].write_text(json.dumps(info, indent=2) + "\n")
    return paths
