"""Camera trajectories: pure functions from parameters to camera stacks — GEN3C's presets, and
keyframe paths (:func:`keyframe_trajectory`: the spline the GUI edits and ``--camera_file``
replays; docs/cameras.md, "Keyframe paths").

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

import functools
import inspect
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

from gen3c.cameras import (
    Cameras,
    as_float32,
    as_float64,
    gen3c_look_at,
    invert_pose,
    matrix_to_quaternion,
    quaternion_slerp,
    quaternion_to_matrix,
    validate_intrinsics,
    validate_poses,
)
from gen3c.constants import DEFAULT_MOVEMENT_DISTANCE, MAX_FRAMES
from gen3c.errors import Gen3cInputError, is_whole_number, note, shown_value, spelled
from gen3c.summary import dataclass_repr

PRESETS = ("left", "right", "up", "down", "zoom_in", "zoom_out", "clockwise", "counterclockwise")
ROTATION_MODES = ("center_facing", "no_rotation", "trajectory_aligned")
TRAJECTORY_SCALES = ("auto", "gen3c", "median_depth")
#: What a depth map's values mean: "relative" (up to scale, e.g. MoGe's) or "metric" (incl. user depth).
DEPTH_KINDS = ("metric", "relative")
GEN3C_CENTER_DEPTH = 1.0
T = TypeVar("T")


def check_preset(trajectory: str, camera_rotation: str) -> None:
    if trajectory not in PRESETS:
        raise Gen3cInputError(f"unknown trajectory {shown_value(trajectory)}: choose one of {', '.join(PRESETS)} or pass a camera file")
    if camera_rotation not in ROTATION_MODES:
        raise Gen3cInputError(f"unknown camera_rotation {shown_value(camera_rotation)}: choose one of {', '.join(ROTATION_MODES)}")


def _check_num_frames(num_frames: object) -> int:
    if not is_whole_number(num_frames) or num_frames < 1:
        raise Gen3cInputError(f"num_frames must be a whole number ≥ 1, got {shown_value(num_frames)}")
    if num_frames > MAX_FRAMES:  # was torch's "can't allocate memory" for the path's frame times
        raise Gen3cInputError(f"num_frames {num_frames} is more than a run may ask for: pass a count between 1 and {MAX_FRAMES}")
    return int(num_frames)


def check_fps(fps: object) -> float:
    """``fps`` as a float, or a one-line :class:`Gen3cInputError` unless it is a finite number > 0."""
    fps = _finite(fps, "fps", "24")
    if fps <= 0:
        raise Gen3cInputError(f"fps {fps:g} must be a number of frames per second > 0")
    return fps


def _finite(value: object, name: str, example: str) -> float:
    """``value`` as a finite float (a Python or numpy number, a one-element tensor); the refusal
    suggests ``example`` (every setting's was the movement distance's 0.3: "the fps nan … e.g. 0.3")."""
    try:
        number = None if isinstance(value, (str, bytes, bool)) else float(value)
    except (TypeError, ValueError, RuntimeError, OverflowError):  # OverflowError: an int beyond float's range (10**400)
        number = None
    if number is None or not math.isfinite(number):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:36] + "…"
        raise Gen3cInputError(f"the {name} {shown} is not a finite number: pass one, e.g. {example}")
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
        raise Gen3cInputError(f"unknown trajectory {shown_value(trajectory)}: choose one of {', '.join(PRESETS)}")
    _check_num_frames(num_frames)
    distance, center_depth = (_finite(v, name, example) for name, v, example in (("movement distance", distance, "0.3"), ("centre depth", center_depth, "1")))
    if center_depth <= 0:
        raise Gen3cInputError(f"the centre depth {shown_value(center_depth)} must be > 0: it is the look-at depth in front of the camera (GEN3C: 1)")
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


def _keyword_worded(worker: Callable[..., T]) -> Callable[..., T]:
    """The public function over ``worker``: its refusals and notes, written once and worded for
    ``gen3c generate``'s flags (``--movement_distance 2``), are said in the keyword arguments of
    the public functions here (``movement_distance=2``, ``camera_rotation="center_facing"``), as
    :func:`gen3c.generate` names them (:func:`~gen3c.pipelines.spelling.keyword_spelling`). The
    command line's route (and the surfaces that respell it: batch rows, the GUI) calls ``worker``
    itself, ``__wrapped__``, which keeps the flags' wording. A worker with a
    ``movement_distance`` also takes ``distance=``, its former name, with a DeprecationWarning."""
    renamed = "movement_distance" in inspect.signature(worker).parameters

    @functools.wraps(worker)
    def in_keyword_words(*args: Any, **kwargs: Any) -> T:
        if renamed and "distance" in kwargs:
            bound = inspect.signature(worker).bind_partial(*args, **{k: v for k, v in kwargs.items() if k != "distance"})
            given = bound.arguments.get("movement_distance", DEFAULT_MOVEMENT_DISTANCE)
            bound.arguments["movement_distance"] = _renamed_distance(worker.__name__, given, kwargs["distance"])
            args, kwargs = bound.args, bound.kwargs
        # (gen3c.pipelines.spelling imports the request's settings: not when this module is imported)
        from gen3c.pipelines.spelling import keyword_spelling

        with spelled(keyword_spelling):
            return worker(*args, **kwargs)

    return in_keyword_words


def _renamed_distance(function: str, movement_distance: float, distance: float | None) -> float:
    """``movement_distance``, or ``distance``, its former name, still taken with a DeprecationWarning."""
    if distance is None:
        return movement_distance
    if movement_distance != DEFAULT_MOVEMENT_DISTANCE:
        raise Gen3cInputError(f"{function} got movement_distance and distance, one setting under two names: pass movement_distance")
    warnings.warn(f"{function}'s distance is now called movement_distance (as in preset_cameras and --movement_distance)",
                  DeprecationWarning, stacklevel=3)  # fmt: skip
    return distance


#: The words of the note on a preset path that passes the point it looks at: the note on frames
#: that see none of the cache (:func:`gen3c.pipelines.camera_video.generate_video`) is not said beside it.
TURNED_ROUND = "GEN3C's look-at turns the camera round"


@_keyword_worded
def preset_offset_matrices(
    trajectory: str,
    camera_rotation: str,
    num_frames: int,
    movement_distance: float = DEFAULT_MOVEMENT_DISTANCE,
    center_depth: float = GEN3C_CENTER_DEPTH,
) -> Tensor:
    """GEN3C's per-frame offset matrices Aᵢ (n, 4, 4), float64; a frame's pose is ``Aᵢ @ W₀``.
    ``distance`` is ``movement_distance``'s former name, still taken (with a DeprecationWarning)."""
    check_preset(trajectory, camera_rotation)
    num_frames = _check_num_frames(num_frames)
    p = preset_offsets(trajectory, num_frames, movement_distance, center_depth)
    distance, center_depth = float(movement_distance), float(center_depth)  # numbers preset_offsets took (numpy, one-element tensors)
    look = torch.tensor([0.0, 0.0, center_depth], dtype=torch.float64).expand_as(p)
    if camera_rotation == "center_facing":
        target = look
    elif camera_rotation == "no_rotation":
        target = look + p
    else:
        target = look + 2.0 * p
    # zoom_in facing the centre (and zoom_out aligned with the path) reaches the look-at point
    # when i·d/n = 1: there GEN3C's look-at has no direction (its NaN, our all-zero rotation).
    onto = (target - p).norm(dim=-1) <= 1e-9 * center_depth
    if bool(onto.any()):
        i = int(onto.nonzero()[0, 0])
        raise Gen3cInputError(
            f"the {trajectory} path with --camera_rotation {camera_rotation} and --movement_distance {distance:g} puts the camera "
            f"on the point it looks at in frame {i} of {num_frames}, where it has no view direction: pass another "
            "--movement_distance (one below 1 never gets there)"
        )
    # Past it, GEN3C's look-at turns the camera round: it looks back, away from the scene (and
    # stands behind the source, its centre being Rᵀpᵢ), and renders nothing.
    past = (target - p)[:, 2] < 0
    if bool(past.any()):
        i = int(past.nonzero()[0, 0])
        note(
            f"the {trajectory} path with --camera_rotation {camera_rotation} and --movement_distance {distance:g} passes the point it "
            f"looks at in frame {i} of {num_frames}, where {TURNED_ROUND}: frames {i}…{num_frames - 1} look "
            "away from the scene and show nothing of it; pass a --movement_distance below 1 to stay in front of that point, "
            "or --camera_rotation no_rotation to go on facing the scene",
            stacklevel=3,
        )
    return gen3c_look_at(p, target)


@_keyword_worded
def preset_trajectory(
    trajectory: str,
    camera_rotation: str,
    num_frames: int,
    source_w2c: Tensor,
    K: Tensor,
    height: int,
    width: int,
    movement_distance: float = DEFAULT_MOVEMENT_DISTANCE,
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
        movement_distance, center_depth: d and c (``--movement_distance``, as
            :func:`~gen3c.pipelines.camera_video.preset_cameras` names it); see
            :func:`center_depth_for` for their units.
        distance: ``movement_distance``'s former name, still taken (with a DeprecationWarning).
    Returns:
        :class:`Cameras` with n frames, float32, on ``source_w2c``'s device.
    """
    A = _preset_offset_matrices(trajectory, camera_rotation, num_frames, movement_distance, center_depth)
    W0 = validate_poses(as_float32(source_w2c, "source_w2c"), "source_w2c").to(torch.float64)
    if W0.shape not in ((4, 4), (num_frames, 4, 4)):
        raise Gen3cInputError(
            f"preset_trajectory source_w2c has shape {tuple(W0.shape)}: pass one (4, 4) source pose (shared by every frame"
            f"{', source_w2c[0]' if W0.shape == (1, 4, 4) else ''}) or one per frame, ({num_frames}, 4, 4) for {num_frames} frames"
        )
    w2c = (A.to(W0.device) @ W0).to(torch.float32)  # A is built on the CPU, W₀ may be on a GPU
    if not torch.isfinite(w2c).all():  # e.g. a distance so large that the path overflows float32
        raise Gen3cInputError(
            f"the {trajectory} path with --movement_distance {movement_distance:g} and centre depth {center_depth:g} leaves the "
            "range of float32 numbers: pass a smaller --movement_distance"
        )
    return Cameras(w2c, validate_intrinsics(as_float32(K, "K"), "K"), height, width)


@_keyword_worded
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
        raise Gen3cInputError(f"unknown trajectory_scale {shown_value(trajectory_scale)}: choose one of {', '.join(TRAJECTORY_SCALES)}")
    if depth_kind not in DEPTH_KINDS:
        raise Gen3cInputError(f"unknown depth_kind {shown_value(depth_kind)}: choose one of {', '.join(DEPTH_KINDS)}")
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
    median = _finite(median_depth, "median depth", "2.5")
    if median <= 0:
        raise Gen3cInputError(f"the median depth {median:g} must be > 0: pass the depth's median over its valid pixels")
    return median


# What the command line's route calls (and the surfaces that respell it): the flags' wording.
_preset_offset_matrices = preset_offset_matrices.__wrapped__
_preset_trajectory = preset_trajectory.__wrapped__
_center_depth_for = center_depth_for.__wrapped__


# --------------------------------------------------------------------------------------------
# Keyframe paths: the GUI's editor, camera_path.json keyframes, and Python
# --------------------------------------------------------------------------------------------

#: Keyframe spline smoothness: 0 straight segments and plain slerp, 1 a Catmull–Rom spline.
DEFAULT_SMOOTHNESS = 0.5


def _qmul(a: Tensor, b: Tensor) -> Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
         aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1
    )  # fmt: skip


def _qconj(q: Tensor) -> Tensor:
    return torch.cat([q[..., :1], -q[..., 1:]], -1)


def _qlog(q: Tensor) -> Tensor:
    """Log of unit quaternions (*B, 4) → rotation vectors / 2, (*B, 3)."""
    v = q[..., 1:]
    norm = v.norm(dim=-1, keepdim=True)
    angle = torch.atan2(norm, q[..., :1])
    return torch.where(norm > 1e-12, v / norm.clamp(min=1e-12) * angle, v)


def _qexp(r: Tensor) -> Tensor:
    """Exp of rotation vectors / 2 (*B, 3) → unit quaternions (*B, 4)."""
    angle = r.norm(dim=-1, keepdim=True)
    axis = torch.where(angle > 1e-12, r / angle.clamp(min=1e-12), r)
    return torch.cat([torch.cos(angle), torch.where(angle > 1e-12, torch.sin(angle) * axis, r)], -1)


def _seconds(values: Tensor) -> str:
    shown = ", ".join(f"{float(t):g}" for t in values[:8])
    return f"[{shown}{', …' if len(values) > 8 else ''}]"


def check_keyframes(keyframes_w2c: Tensor, times: Tensor, smoothness: float) -> tuple[Tensor, Tensor, float]:
    """Keyframe poses (K, 4, 4) and times (K,) as float64, and the smoothness, checked: K ≥ 1
    rigid poses, one finite time per keyframe, strictly increasing, smoothness in [0, 1]. The times
    are put on the poses' device (a list of times with poses on a GPU)."""
    w2c = as_float64(keyframes_w2c, "keyframe poses")
    if w2c.ndim != 3 or w2c.shape[-2:] != (4, 4):
        hint = ": one keyframe is w2c[None]" if w2c.shape == (4, 4) else ""
        raise Gen3cInputError(f"keyframe poses must be (K, 4, 4) world-to-camera matrices, got {tuple(w2c.shape)}{hint}")
    if len(w2c) == 0:
        raise Gen3cInputError("a keyframe path needs at least one keyframe: add one")
    validate_poses(w2c, "keyframe poses")
    times = as_float64(times, "keyframe times").to(w2c.device)
    if times.shape != (len(w2c),) and times.numel() == len(w2c):
        raise Gen3cInputError(f"keyframe times have shape {tuple(times.shape)}: give one time (seconds) per keyframe as a flat ({len(w2c)},) list")
    if times.shape != (len(w2c),):
        raise Gen3cInputError(f"{times.numel()} keyframe times for {len(w2c)} keyframes: give one time (seconds) per keyframe")
    if not torch.isfinite(times).all():
        raise Gen3cInputError(f"keyframe times {_seconds(times)} contain NaN or infinite values: give each keyframe a time in seconds")
    if not (times[1:] > times[:-1]).all():
        raise Gen3cInputError(f"keyframe times {_seconds(times)} must be strictly increasing: give each keyframe its own time")
    smoothness = _finite(smoothness, "smoothness", "0.5")
    if not 0.0 <= smoothness <= 1.0:
        raise Gen3cInputError(f"smoothness {smoothness:g} must be between 0 and 1 (0: straight segments, 1: Catmull–Rom)")
    return w2c, times, smoothness


def interpolate_keyframes(keyframes_w2c: Tensor, times: Tensor, query_times: Tensor, smoothness: float = DEFAULT_SMOOTHNESS) -> Tensor:
    """The keyframe spline: OpenCV world-to-camera poses at ``query_times``.

    Each segment between keyframes k and k + 1 is a cubic Hermite curve for the camera centre
    and a squad curve for its orientation, leaving keyframe k with velocity
    ``(1 − s)·chord + s·catmull_rom`` and reaching k + 1 likewise, where ``chord`` is the
    segment's own constant velocity and ``catmull_rom`` the keyframe's central difference over
    the non-uniform times, ``(p_{k+1} − p_{k−1}) / (t_{k+1} − t_{k−1})`` (one-sided at the
    ends); orientations use the same blend in the tangent space of the keyframe's quaternion
    (``log(q_k⁻¹ q_{k±1})``). So ``smoothness`` s = 0 walks straight segments at constant
    speed with plain slerp, s = 1 is C¹ in time (no jolt at a keyframe, however unevenly the
    keyframes are timed), and two keyframes give a straight line at constant speed and a slerp
    for every s. Quaternions are kept in one hemisphere along the path, so each segment turns
    the short way. The path passes through every keyframe at its time and holds the first and
    last pose before and after them.

    Args:
        keyframes_w2c: (K, 4, 4) rigid keyframe poses, K ≥ 1 (one keyframe: a still camera).
        times: (K,) strictly increasing keyframe times in seconds.
        query_times: (T,) times to evaluate, in seconds.
        smoothness: s in [0, 1].
    Returns:
        (T, 4, 4) float64 world-to-camera poses, on ``keyframes_w2c``'s device.
    """
    w2c, times, s = check_keyframes(keyframes_w2c, times, smoothness)
    query = as_float64(query_times, "query times").reshape(-1).to(w2c.device)
    if not torch.isfinite(query).all():
        raise Gen3cInputError("query times contain NaN or infinite values: pass times in seconds")
    c2w = invert_pose(w2c)
    K = len(c2w)
    if K == 1:
        return w2c[0].expand(len(query), 4, 4).clone()
    p = c2w[:, :3, 3]
    q = matrix_to_quaternion(c2w[:, :3, :3])
    # q and −q are one rotation: flip each so it is on its predecessor's side (the short way round).
    dots = (q[1:] * q[:-1]).sum(-1)
    q = q * torch.cat([torch.ones(1, dtype=q.dtype, device=q.device), torch.where(dots < 0, -1.0, 1.0).cumprod(0)])[:, None]

    h = times[1:] - times[:-1]  # (K−1,) segment durations
    # Centres: velocity of each straight segment, and Catmull–Rom velocity at each keyframe.
    chord = (p[1:] - p[:-1]) / h[:, None]
    central = torch.cat([chord[:1], (p[2:] - p[:-2]) / (times[2:] - times[:-2])[:, None], chord[-1:]])
    v_start = (1 - s) * chord + s * central[:-1]  # (K−1, 3): segment k leaves keyframe k at this velocity
    v_end = (1 - s) * chord + s * central[1:]  # and reaches keyframe k + 1 at this one
    # Orientations, in the tangent space at each keyframe (half rotation vectors): the segment's
    # own turn log(q_k⁻¹ q_{k+1}), and the Catmull–Rom turn rate at each keyframe.
    turn = _qlog(_qmul(_qconj(q[:-1]), q[1:]))  # (K−1, 3); seen from q_{k+1} it is −log(q_{k+1}⁻¹ q_k), the same vector
    rate = torch.cat([turn[:1] / h[:1, None], (turn[1:] + turn[:-1]) / (times[2:] - times[:-2])[:, None], turn[-1:] / h[-1:, None]])
    # Squad leaves q_k with tangent turn + 2·log(q_k⁻¹ a) (per unit of the segment's parameter)
    # and reaches q_{k+1} with turn − 2·log(q_{k+1}⁻¹ b): choose the inner quaternions a, b for the blend.
    d_start = (1 - s) * turn + s * h[:, None] * rate[:-1]
    d_end = (1 - s) * turn + s * h[:, None] * rate[1:]
    a = _qmul(q[:-1], _qexp((d_start - turn) / 2))
    b = _qmul(q[1:], _qexp((turn - d_end) / 2))

    tq = query.clamp(times[0], times[-1])
    seg = (torch.searchsorted(times, tq, right=True) - 1).clamp(0, K - 2)
    hs = h[seg][:, None]
    u = ((tq - times[seg]) / h[seg])[:, None]
    h00, h10, h01, h11 = 2 * u**3 - 3 * u**2 + 1, u**3 - 2 * u**2 + u, -2 * u**3 + 3 * u**2, u**3 - u**2
    out = torch.zeros(len(query), 4, 4, dtype=torch.float64, device=p.device)
    out[:, 3, 3] = 1.0
    out[:, :3, 3] = h00 * p[seg] + h10 * hs * v_start[seg] + h01 * p[seg + 1] + h11 * hs * v_end[seg]
    u = u[:, 0]
    outer = quaternion_slerp(q[seg], q[seg + 1], u)
    inner = quaternion_slerp(a[seg], b[seg], u)
    out[:, :3, :3] = quaternion_to_matrix(quaternion_slerp(outer, inner, 2 * u * (1 - u)))
    return invert_pose(out)


def keyframe_trajectory(
    keyframes_w2c: Tensor,
    times: Tensor,
    K: Tensor,
    height: int,
    width: int,
    num_frames: int,
    fps: float,
    smoothness: float = DEFAULT_SMOOTHNESS,
) -> Cameras:
    """A keyframed camera path sampled at every frame: frame i is the spline at i / fps seconds.

    Args:
        keyframes_w2c: (K, 4, 4) OpenCV world-to-camera keyframe poses (a tensor or an array).
        times: (K,) keyframe times in seconds, strictly increasing.
        K: (3, 3) or (num_frames, 3, 3) intrinsics in pixels of ``height`` × ``width``.
        num_frames: n, the frames of the video.
        fps: frames per second.
        smoothness: see :func:`interpolate_keyframes`.
    Returns:
        :class:`Cameras` with n frames, float32, on ``keyframes_w2c``'s device.
    """
    num_frames, fps = _check_num_frames(num_frames), check_fps(fps)
    frame_times = torch.arange(num_frames, dtype=torch.float64) / fps
    w2c = interpolate_keyframes(keyframes_w2c, times, frame_times, smoothness)
    return Cameras(w2c.float(), validate_intrinsics(as_float32(K, "K"), "K"), height, width)


@dataclass
class KeyframePath:
    """A keyframed camera path and the frames it is sampled at: what a ``camera_path.json`` with
    keyframes holds (:func:`gen3c.io.camera_files.read_keyframe_path`) and what the GUI edits.

    Attributes:
        w2c: (K, 4, 4) OpenCV world-to-camera keyframe poses, float64.
        times: (K,) keyframe times in seconds, strictly increasing, float64.
        smoothness: in [0, 1] (:func:`interpolate_keyframes`).
        num_frames: frames of the video; frame i plays at i / fps.
        fps: frames per second.

    Tensors, arrays and lists are taken; everything is checked on construction.
    """

    w2c: Tensor
    times: Tensor
    smoothness: float = DEFAULT_SMOOTHNESS
    num_frames: int = 1
    fps: float = 24.0

    __repr__ = dataclass_repr

    def __post_init__(self) -> None:
        self.w2c, self.times, self.smoothness = check_keyframes(self.w2c, self.times, self.smoothness)
        self.num_frames = _check_num_frames(self.num_frames)
        self.fps = check_fps(self.fps)

    def cameras(self, K: Tensor, height: int, width: int) -> Cameras:
        """The path at every frame with intrinsics ``K`` ((3, 3) or (num_frames, 3, 3), pixels of
        ``height`` × ``width``): :func:`keyframe_trajectory`."""
        return keyframe_trajectory(self.w2c, self.times, K, height, width, self.num_frames, self.fps, self.smoothness)
