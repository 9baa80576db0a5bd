"""Camera trajectories: GEN3C's presets as pure functions from parameters to camera stacks.

The presets follow GEN3C's ``camera_utils.py`` exactly: per-frame offsets pᵢ with divisor n (not n − 1),
a fixed look-at point L = (0, 0, c) with centre depth c = 1, GEN3C's look-at matrix (translation
column −pᵢ) and ``w2cᵢ = Aᵢ · W₀``. In video mode W₀ is the source camera of frame i.

What ``movement_distance`` means depends on the depth's units (:data:`TRAJECTORY_SCALES`):

- ``"gen3c"``: distances are in depth units, centre depth 1.0 — exactly GEN3C. With MoGe's
  up-to-scale depth this is GEN3C's behaviour; with metric depth it means metres.
- ``"median_depth"``: the centre depth c is the source view's median depth, so the path is
  scaled to the scene: 0.3 means "30 % of the typical scene depth" whatever the units.
- ``"auto"`` (the CLI default): ``gen3c`` for relative (up-to-scale) depth, ``median_depth``
  for metric or user-supplied depth.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from gen3c.cameras import Cameras, as_float32, gen3c_look_at, validate_intrinsics, validate_poses
from gen3c.errors import Gen3cInputError

PRESETS = ("left", "right", "up", "down", "zoom_in", "zoom_out", "clockwise", "counterclockwise")
ROTATION_MODES = ("center_facing", "no_rotation", "trajectory_aligned")
TRAJECTORY_SCALES = ("auto", "gen3c", "median_depth")
#: What a depth map's values mean: "relative" (up to scale, e.g. MoGe's) or "metric" (incl. user depth).
DEPTH_KINDS = ("metric", "relative")
DEFAULT_MOVEMENT_DISTANCE = 0.3
GEN3C_CENTER_DEPTH = 1.0


def check_preset(trajectory: str, camera_rotation: str) -> None:
    if trajectory not in PRESETS:
        raise Gen3cInputError(f"unknown trajectory {trajectory!r}: choose one of {', '.join(PRESETS)} or pass a camera file")
    if camera_rotation not in ROTATION_MODES:
        raise Gen3cInputError(f"unknown camera_rotation {camera_rotation!r}: choose one of {', '.join(ROTATION_MODES)}")


def _check_num_frames(num_frames: object) -> int:
    if isinstance(num_frames, bool) or not isinstance(num_frames, numbers.Integral) or num_frames < 1:
        raise Gen3cInputError(f"num_video_frames must be a whole number ≥ 1, got {num_frames!r}")
    return int(num_frames)


def _finite(value: object, name: str) -> float:
    """``value`` as a finite float (a Python or numpy number, a one-element tensor)."""
    try:
        number = None if isinstance(value, (str, bytes, bool)) else float(value)
    except (TypeError, ValueError, RuntimeError):
        number = None
    if number is None or not math.isfinite(number):
        raise Gen3cInputError(f"the {name} {value!r} is not a finite number: pass one, e.g. 0.3")
    return number


def preset_offsets(trajectory: str, num_frames: int, distance: float, center_depth: float = GEN3C_CENTER_DEPTH) -> Tensor:
    """Per-frame camera offsets pᵢ of a preset (GEN3C's ``camera_utils.py``).

    Args:
        trajectory: one of :data:`PRESETS`.
        num_frames: n ≥ 1.
        distance: d, the movement distance.
        center_depth: c, the look-at depth (GEN3C: 1.0).
    Returns:
        (n, 3) float64 offsets.
    """
    if trajectory not in PRESETS:
        raise Gen3cInputError(f"unknown trajectory {trajectory!r}: choose one of {', '.join(PRESETS)}")
    _check_num_frames(num_frames)
    distance, center_depth = (_finite(v, name) for name, v in (("movement distance", distance), ("centre depth", center_depth)))
    if center_depth <= 0:
        raise Gen3cInputError(f"the centre depth {center_depth!r} must be > 0: it is the look-at depth in front of the camera (GEN3C: 1)")
    n = int(num_frames)
    i = torch.arange(n, dtype=torch.float64)
    p = torch.zeros(n, 3, dtype=torch.float64)
    step = i * distance * center_depth / n
    if trajectory in ("left", "right"):
        p[:, 0] = -step if trajectory == "left" else step
    elif trajectory in ("up", "down"):
        p[:, 1] = -step if trajectory == "up" else step
    elif trajectory in ("zoom_in", "zoom_out"):
        p[:, 2] = step if trajectory == "zoom_in" else -step
    else:
        theta = 2.0 * math.pi * i / max(n - 1, 1)
        s = 1.0 if trajectory == "clockwise" else -1.0
        p[:, 0] = s * distance * (torch.cos(theta) - 1.0) * center_depth
        p[:, 1] = distance * torch.sin(theta) * center_depth
    return p


def preset_offset_matrices(
    trajectory: str,
    camera_rotation: str,
    num_frames: int,
    distance: float = DEFAULT_MOVEMENT_DISTANCE,
    center_depth: float = GEN3C_CENTER_DEPTH,
) -> Tensor:
    """GEN3C's per-frame offset matrices Aᵢ (n, 4, 4), float64; a frame's pose is ``Aᵢ @ W₀``."""
    check_preset(trajectory, camera_rotation)
    num_frames = _check_num_frames(num_frames)
    p = preset_offsets(trajectory, num_frames, distance, center_depth)
    look = torch.tensor([0.0, 0.0, center_depth], dtype=torch.float64).expand_as(p)
    if camera_rotation == "center_facing":
        target = look
    elif camera_rotation == "no_rotation":
        target = look + p
    else:
        target = look + 2.0 * p
    return gen3c_look_at(p, target)


def preset_trajectory(
    trajectory: str,
    camera_rotation: str,
    num_frames: int,
    source_w2c: Tensor,
    K: Tensor,
    height: int,
    width: int,
    distance: float = DEFAULT_MOVEMENT_DISTANCE,
    center_depth: float = GEN3C_CENTER_DEPTH,
) -> Cameras:
    """A preset trajectory relative to the source camera(s).

    Args:
        trajectory, camera_rotation: preset and rotation mode.
        num_frames: number of frames n.
        source_w2c: (4, 4) source pose W₀, or (n, 4, 4) per-frame source poses (video mode);
            a tensor or an array.
        K: (3, 3) or (n, 3, 3) intrinsics in pixels, kept as given (GEN3C keeps them constant).
        height, width: image size of ``K``.
        distance, center_depth: d and c; see :func:`center_depth_for` for their units.
    Returns:
        :class:`Cameras` with n frames, float32.
    """
    A = preset_offset_matrices(trajectory, camera_rotation, num_frames, distance, center_depth)
    W0 = validate_poses(as_float32(source_w2c, "source_w2c"), "source_w2c").to(torch.float64)
    if W0.shape not in ((4, 4), (num_frames, 4, 4)):
        raise Gen3cInputError(
            f"source camera poses have shape {tuple(W0.shape)}: expected (4, 4) or ({num_frames}, 4, 4) for {num_frames} frames"
        )
    w2c = (A @ W0).to(torch.float32)
    if not torch.isfinite(w2c).all():  # e.g. a distance so large that the path overflows float32
        raise Gen3cInputError(
            f"the {trajectory} path with movement_distance {distance:g} and centre depth {center_depth:g} leaves the "
            "range of float32 numbers: pass a smaller --movement_distance"
        )
    return Cameras(w2c, validate_intrinsics(as_float32(K, "K"), "K"), height, width)


def center_depth_for(trajectory_scale: str, median_depth: float | None, depth_kind: str) -> float:
    """The centre depth c that gives ``--movement_distance`` its meaning (module docstring).

    GEN3C's offsets are ``i·d·c/n``, so c scales the whole path: c = 1 reproduces GEN3C, c =
    median source depth makes d a fraction of the typical scene depth.

    Args:
        trajectory_scale: "auto", "gen3c" or "median_depth".
        median_depth: the source view's median depth
            (:meth:`gen3c.pipelines.camera_video.SourceView.median_depth`, a video's first frame's:
            :func:`gen3c.io.depth.median_scene_depth`); None when it has no valid depth.
        depth_kind: "relative" (up to scale, e.g. MoGe) or "metric" (incl. user depth).
    Raises:
        Gen3cInputError: the path is to be scaled by the median depth and there is none.
    """
    if trajectory_scale not in TRAJECTORY_SCALES:
        raise Gen3cInputError(f"unknown trajectory_scale {trajectory_scale!r}: choose one of {', '.join(TRAJECTORY_SCALES)}")
    if depth_kind not in DEPTH_KINDS:
        raise Gen3cInputError(f"unknown depth_kind {depth_kind!r}: choose one of {', '.join(DEPTH_KINDS)}")
    mode = trajectory_scale
    if mode == "auto":
        mode = "gen3c" if depth_kind == "relative" else "median_depth"
    if mode == "gen3c":
        return GEN3C_CENTER_DEPTH
    if median_depth is None:
        # GEN3C's c = 1 here would read --movement_distance in the depth's own unit (millimetres, say).
        how = "--trajectory_scale median_depth" if trajectory_scale == "median_depth" else f"{depth_kind} depth"
        raise Gen3cInputError(
            f"the path is scaled by the source view's median depth ({how}), but no pixel of it has a valid depth: "
            "check the depth input, or pass --trajectory_scale gen3c"
        )
    median = _finite(median_depth, "median depth")
    if median <= 0:
        raise Gen3cInputError(f"the median depth {median:g} must be > 0: pass the depth's median over its valid pixels")
    return median
