"""GEN3C's presets against poses derived by hand from GEN3C's `camera_utils.py` (docs/cameras.md,
"Presets"), and the keyframe spline against closed forms."""

import contextlib
import math

import pytest
import torch

from gen3c.cameras import camera_centers, look_at, make_intrinsics, rotation_angle_degrees
from gen3c.errors import Gen3cInputError
from gen3c.io.depth import FAR_DEPTH, median_scene_depth
from gen3c.trajectories import (
    PRESETS,
    ROTATION_MODES,
    KeyframePath,
    _qconj,
    center_depth_for,
    interpolate_keyframes,
    keyframe_trajectory,
    preset_offsets,
    preset_trajectory,
)

K = make_intrinsics(500.0, 500.0, 320.0, 176.0)


def traj(name, rotation, n, d=0.3, c=1.0, W0=None):
    W0 = torch.eye(4) if W0 is None else W0
    return preset_trajectory(name, rotation, n, W0, K, 352, 640, d, c)


def test_left_center_facing_by_hand():
    # n = 4, d = 0.3: p2 = (−2·0.3/4, 0, 0) = (−0.15, 0, 0); look-at (0, 0, 1).
    cams = traj("left", "center_facing", 4)
    f = torch.tensor([0.15, 0.0, 1.0]) / math.sqrt(1.0225)
    expected = torch.eye(4)
    expected[0, :3] = torch.tensor([f[2], 0.0, -f[0]])
    expected[2, :3] = f
    expected[:3, 3] = torch.tensor([0.15, 0.0, 0.0])
    assert torch.allclose(cams.w2c[2], expected, atol=1e-6)
    # GEN3C's translation −p (not −R p) puts the centre at Rᵀp, not at p.
    assert torch.allclose(camera_centers(cams.w2c[2]), torch.tensor([-0.15 * f[2], 0.0, 0.15 * f[0]]), atol=1e-6)
    assert torch.allclose(cams.w2c[0], torch.eye(4))


def test_up_no_rotation_by_hand():
    # No rotation: R = I, centre = p = (0, −i·d/n, 0); up is −y because y points down.
    cams = traj("up", "no_rotation", 5, d=0.5)
    for i in range(5):
        assert torch.allclose(cams.w2c[i, :3, :3], torch.eye(3), atol=1e-6)
        assert torch.allclose(camera_centers(cams.w2c[i]), torch.tensor([0.0, -i * 0.5 / 5, 0.0]), atol=1e-6)


def test_zoom_in_and_out_move_along_z():
    zin = traj("zoom_in", "center_facing", 5, d=0.5)
    zout = traj("zoom_out", "center_facing", 5, d=0.5)
    assert torch.allclose(camera_centers(zin.w2c[4]), torch.tensor([0.0, 0.0, 0.4]), atol=1e-6)
    assert torch.allclose(camera_centers(zout.w2c[4]), torch.tensor([0.0, 0.0, -0.4]), atol=1e-6)


def test_circle_offsets_by_hand():
    # θ_i = 2πi/(n−1); clockwise p = (d(cos θ − 1), d sin θ, 0), counterclockwise mirrors x.
    p = preset_offsets("clockwise", 5, 0.3)
    assert torch.allclose(p[1], torch.tensor([-0.3, 0.3, 0.0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(p[2], torch.tensor([-0.6, 0.0, 0.0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(p[4], torch.zeros(3, dtype=torch.float64), atol=1e-12)
    q = preset_offsets("counterclockwise", 5, 0.3)
    assert torch.allclose(q[1], torch.tensor([0.3, 0.3, 0.0], dtype=torch.float64), atol=1e-12)


def test_a_negative_distance_runs_the_opposite_preset_as_the_help_says():
    """GEN3C takes any movement_distance: below 0 every offset is negated, so left runs right's
    path exactly, and a circle turns the same way on the other side of the camera. Neither --help
    nor docs/cameras.md said so: -0.3 with left gave a right move, unexplained."""
    from typer.testing import CliRunner

    from gen3c.cli import app

    for a, b in (("left", "right"), ("up", "down"), ("zoom_in", "zoom_out")):
        for rotation in ROTATION_MODES:
            assert torch.allclose(traj(a, rotation, 9, d=-0.3).w2c, traj(b, rotation, 9, d=0.3).w2c, atol=1e-6), (a, rotation)
    cw, ccw = preset_offsets("clockwise", 5, -0.3), preset_offsets("counterclockwise", 5, 0.3)
    assert torch.allclose(cw, -preset_offsets("clockwise", 5, 0.3))
    assert torch.allclose(cw[1], torch.tensor([0.3, -0.3, 0.0], dtype=torch.float64)) and ccw[1, 1] == -cw[1, 1]  # up, where ccw goes down
    out = CliRunner().invoke(app, ["generate", "--help"], env={"COLUMNS": "400"}).output
    assert (
        "Below 0 it moves the other way, as in GEN3C: left runs right's path, up down's, zoom_in zoom_out's; "
        "a circle keeps its turning direction on the other side." in " ".join(out.replace("│", " ").split())
    )


def test_divisor_is_n_and_center_depth_scales():
    p = preset_offsets("right", 10, 0.3, center_depth=2.0)
    assert p[9, 0].item() == pytest.approx(9 * 0.3 * 2.0 / 10)


def test_trajectory_aligned_targets_two_p():
    # Right, aligned: target = L + 2p, so f ∝ (p_x, 0, 1) with p_x = 0.3·3/4.
    cams = traj("right", "trajectory_aligned", 4)
    px = 0.3 * 3 / 4
    f = torch.tensor([px, 0.0, 1.0])
    f = f / f.norm()
    assert torch.allclose(cams.w2c[3, 2, :3], f, atol=1e-6)


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("rotation", ROTATION_MODES)
def test_every_preset_is_rigid_and_starts_at_source(name, rotation):
    W0 = torch.eye(4)
    W0[:3, 3] = torch.tensor([0.1, -0.2, 0.3])
    for n in (1, 2, 7):
        cams = traj(name, rotation, n, W0=W0)
        assert len(cams) == n
        R = cams.w2c[:, :3, :3]
        assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(n, 3, 3), atol=1e-5)
        assert torch.allclose(cams.w2c[0], W0, atol=1e-6)  # p0 = 0 → A0 = I → frame 0 is the source


def test_video_mode_per_frame_sources():
    W = torch.eye(4)[None].repeat(3, 1, 1)
    W[:, 0, 3] = torch.tensor([0.0, 1.0, 2.0])
    cams = preset_trajectory("left", "no_rotation", 3, W, K, 352, 640)
    assert torch.allclose(cams.w2c[2, 0, 3], torch.tensor(2.0 + 2 * 0.3 / 3))
    # A stack of one source pose, or of another length, names the argument and its two forms
    # (before: "source camera poses have shape (1, 4, 4): expected (4, 4) or (3, 4, 4) for 3 frames").
    with pytest.raises(Gen3cInputError, match=r"^preset_trajectory source_w2c has shape \(1, 4, 4\): pass one \(4, 4\) source pose \(shared by every frame, source_w2c\[0\]\) or one per frame, \(3, 4, 4\) for 3 frames$"):
        preset_trajectory("left", "no_rotation", 3, W[:1], K, 352, 640)
    with pytest.raises(Gen3cInputError, match=r"^preset_trajectory source_w2c has shape \(2, 4, 4\): pass one \(4, 4\) source pose \(shared by every frame\) or one per frame"):
        preset_trajectory("left", "no_rotation", 3, W[:2], K, 352, 640)


def test_center_depth_modes():
    median = median_scene_depth(torch.tensor([[2.0, 4.0], [6.0, 0.0]]))
    assert median == 4.0  # median of valid depth (the 0 is a hole)
    assert center_depth_for("gen3c", median, "metric") == 1.0
    assert center_depth_for("auto", median, "relative") == 1.0
    assert center_depth_for("auto", median, "metric") == 4.0
    assert center_depth_for("median_depth", median, "relative") == 4.0
    assert center_depth_for("gen3c", None, "metric") == 1.0  # GEN3C's units need no depth
    with pytest.raises(Gen3cInputError):
        center_depth_for("metres", median, "metric")


def test_median_scene_depth_is_the_lower_median_of_valid_depth_short_of_the_far_fill():
    """[1, 2, 3, 8] and two far-filled NaN pixels: the lower middle value 2 (numpy's median
    would say 2.5; the far fill, left in, 3 or more)."""
    depth = torch.tensor([[1.0, 2.0, 3.0], [8.0, FAR_DEPTH, FAR_DEPTH]])
    assert median_scene_depth(depth) == 2.0
    assert median_scene_depth(depth, torch.tensor([[False, True, True], [True, True, True]])) == 3.0
    assert median_scene_depth(depth, torch.zeros(2, 3, dtype=torch.bool)) is None


def test_a_path_scaled_by_a_view_without_valid_depth_is_refused():
    """Scaling by the median depth of a view with no valid pixel (here: cropped away) used to fall
    back to GEN3C's c = 1 in silence, reading --movement_distance in the depth's own unit."""
    from gen3c.pipelines.camera_video import SourceView, preset_cameras

    depth = torch.full((8, 8), 500.0)  # millimetres, say
    source = SourceView(torch.zeros(3, 8, 8), depth, make_intrinsics(8.0, 8.0, 4.0, 4.0), valid=torch.zeros(8, 8, dtype=torch.bool))
    with pytest.raises(Gen3cInputError, match='no pixel of it has a valid depth: check the depth input, or pass trajectory_scale="gen3c"'):
        preset_cameras(source, "left", "center_facing", 4, 0.3, "median_depth")
    assert len(preset_cameras(source, "left", "center_facing", 4, 0.3, "gen3c")) == 4


def test_bad_presets():
    with pytest.raises(Gen3cInputError, match="unknown trajectory"):
        traj("sideways", "center_facing", 3)
    with pytest.raises(Gen3cInputError, match="camera_rotation"):
        traj("left", "spin", 3)
    with pytest.raises(Gen3cInputError):
        traj("left", "center_facing", 0)


def test_a_preset_from_numpy_arrays_equals_the_one_from_tensors():
    # Before: a numpy source pose was "AttributeError: 'numpy.ndarray' object has no attribute 'to'".
    import numpy as np

    from_arrays = preset_trajectory("clockwise", "trajectory_aligned", 9, np.eye(4), K.double().numpy(), 352, 640, np.float64(0.3))
    from_tensors = traj("clockwise", "trajectory_aligned", 9)
    assert from_arrays.w2c.dtype == from_arrays.K.dtype == torch.float32
    assert torch.equal(from_arrays.w2c, from_tensors.w2c) and torch.equal(from_arrays.K, from_tensors.K)


@pytest.mark.parametrize(
    "change, match",
    [
        # Before: a TypeError from math.isfinite, then silence for the rest: a centre depth ≤ 0 or a
        # non-rigid source gave all-zero rotations, a typo in depth_kind meant "metric",
        # median_depth without depth a plain ValueError, a negative count torch.arange's error.
        ({"d": "0.3"}, "the movement distance '0.3' is not a finite number"),
        ({"c": 0.0}, r"the centre depth 0.0 must be > 0"),
        ({"W0": torch.zeros(4, 4)}, "source_w2c is not rigid"),
        # Before: Python's OverflowError "int too large to convert to float".
        ({"d": 10**400}, "the movement distance 1" + "0" * 35 + "… is not a finite number"),
    ],
)
def test_preset_arguments_are_checked(change, match):
    with pytest.raises(Gen3cInputError, match=match):
        traj("left", "center_facing", 5, **change)


def test_preset_helpers_check_their_arguments():
    with pytest.raises(Gen3cInputError, match="^num_frames must be a whole number ≥ 1, got -3$"):
        preset_offsets("left", -3, 0.3)
    with pytest.raises(Gen3cInputError, match="^num_frames 1000000000000 is more than a run may ask for: pass a count between 1 and 100000$"):
        preset_offsets("left", 10**12, 0.3)  # before: torch's "can't allocate memory" (8 TB of frame offsets)
    with pytest.raises(Gen3cInputError, match="unknown depth_kind 'metres': choose one of metric, relative"):
        center_depth_for("auto", 1.0, "metres")
    with pytest.raises(Gen3cInputError, match=r'median depth \(trajectory_scale="median_depth"\), but no pixel'):
        center_depth_for("median_depth", None, "metric")


# -- keyframe paths ---------------------------------------------------------------------------

F64 = torch.float64


def orbit_w2c(n: int = 4) -> torch.Tensor:
    """n OpenCV cameras on an arc, looking at a point 2 units ahead."""
    angles = torch.linspace(-0.4, 0.5, n, dtype=F64)
    eyes = torch.stack([torch.sin(angles) * 0.8, -0.1 * torch.arange(n, dtype=F64), 2 - torch.cos(angles) * 2], -1)
    return look_at(eyes, torch.tensor([0.0, 0.0, 2.0], dtype=F64).expand_as(eyes))


@pytest.mark.parametrize("smoothness", [0.0, 0.5, 1.0])
def test_spline_passes_through_keyframes_at_their_times(smoothness):
    w2c = orbit_w2c(5)
    times = torch.tensor([0.0, 0.4, 1.5, 1.7, 3.0], dtype=F64)
    at_keys = interpolate_keyframes(w2c, times, times, smoothness)
    assert torch.allclose(at_keys, w2c, atol=1e-10)
    dense = interpolate_keyframes(w2c, times, torch.linspace(-1.0, 4.0, 301, dtype=F64), smoothness)
    R = dense[:, :3, :3]
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=F64).expand_as(R), atol=1e-10)
    assert torch.allclose(torch.linalg.det(R), torch.ones(301, dtype=F64))
    # Held before the first and after the last keyframe; continuous in between.
    assert torch.allclose(dense[0], w2c[0]) and torch.allclose(dense[-1], w2c[-1])
    step = (camera_centers(dense[1:]) - camera_centers(dense[:-1])).norm(dim=-1)
    assert step.max() < 0.05


def test_zero_smoothness_moves_on_straight_segments():
    w2c = orbit_w2c(3)
    times = torch.tensor([0.0, 1.0, 2.0], dtype=F64)
    mid = camera_centers(interpolate_keyframes(w2c, times, torch.tensor([0.3, 0.7], dtype=F64), 0.0))
    a, b = camera_centers(w2c[:2])
    for p in mid:  # on the chord between keyframes 0 and 1
        assert torch.linalg.cross(p - a, b - a).norm() < 1e-10
    curved = camera_centers(interpolate_keyframes(w2c, times, torch.tensor([0.5], dtype=F64), 1.0))[0]
    assert torch.linalg.cross(curved - a, b - a).norm() > 1e-4


def test_spline_rejects_unordered_times():
    with pytest.raises(Gen3cInputError, match="strictly increasing"):
        interpolate_keyframes(orbit_w2c(3), torch.tensor([0.0, 1.0, 1.0], dtype=F64), torch.zeros(2, dtype=F64))


def yaw(degrees: float, centre=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """w2c of an OpenCV camera at ``centre`` turned ``degrees`` about the world y axis."""
    a = math.radians(degrees)
    R = torch.tensor([[math.cos(a), 0.0, -math.sin(a)], [0.0, 1.0, 0.0], [math.sin(a), 0.0, math.cos(a)]], dtype=F64)
    w2c = torch.eye(4, dtype=F64)
    w2c[:3, :3] = R
    w2c[:3, 3] = -R @ torch.tensor(centre, dtype=F64)
    return w2c


@pytest.mark.parametrize("smoothness", [0.0, 0.5, 1.0])
def test_two_keyframes_give_a_constant_speed_line_and_a_slerp(smoothness):
    """From (0, 0, 0) facing ahead at 0 s to (2, 0, 4) turned 60° at 2 s: at t the centre is
    t/2 of the way, (t, 0, 2t), and the camera is turned 30°·t — whatever the smoothness, since
    two keyframes have no neighbours to curve toward."""
    w2c = torch.stack([yaw(0.0), yaw(60.0, (2.0, 0.0, 4.0))])
    t = torch.tensor([0.0, 0.25, 0.5, 1.0, 1.5, 2.0], dtype=F64)
    path = interpolate_keyframes(w2c, torch.tensor([0.0, 2.0], dtype=F64), t, smoothness)
    assert torch.allclose(camera_centers(path), torch.stack([t, 0 * t, 2 * t], -1), atol=1e-12)
    for pose, ti in zip(path, t.tolist(), strict=True):
        assert torch.allclose(pose, yaw(30.0 * ti, (ti, 0.0, 2 * ti)), atol=1e-12)


def test_keyframe_trajectory_samples_frame_i_at_i_over_fps():
    w2c = torch.stack([yaw(0.0), yaw(60.0, (2.0, 0.0, 4.0))])
    cams = keyframe_trajectory(w2c, [0.0, 2.0], K, 352, 640, num_frames=5, fps=2.0)
    assert len(cams) == 5 and (cams.height, cams.width) == (352, 640) and torch.equal(cams.K, K.expand(5, 3, 3))
    # Frame 2 plays at 1 s, half way: turned 30°, at (1, 0, 2); frame 4 (2 s) is the last keyframe.
    assert torch.allclose(cams.w2c[2], yaw(30.0, (1.0, 0.0, 2.0)).float(), atol=1e-6)
    assert torch.allclose(cams.w2c[4], w2c[1].float(), atol=1e-6)


def test_the_path_turns_the_short_way_between_keyframes():
    """170° and −170° are 20° apart through 180°, though their quaternions (w ≥ 0) have a negative
    dot product: half way the camera faces 180°, not 0°."""
    w2c = torch.stack([yaw(170.0), yaw(-170.0), yaw(-150.0)])
    for smoothness in (0.0, 0.5, 1.0):
        mid = interpolate_keyframes(w2c, torch.tensor([0.0, 1.0, 2.0], dtype=F64), torch.tensor([0.5], dtype=F64), smoothness)[0]
        assert rotation_angle_degrees(mid[:3, :3], yaw(180.0)[:3, :3]) < 1.0
    dense = interpolate_keyframes(w2c, torch.tensor([0.0, 1.0, 2.0], dtype=F64), torch.linspace(0, 2, 201, dtype=F64), 1.0)
    steps = rotation_angle_degrees(dense[1:, :3, :3], dense[:-1, :3, :3])
    assert steps.max() < 0.5  # 40° over 200 steps: no jump the long way round


def angular_velocity(path: torch.Tensor, dt: float) -> torch.Tensor:
    """(T−1, 3) rotation vectors per second between consecutive poses (camera-to-world frames)."""
    R = path[:, :3, :3].transpose(-1, -2)  # c2w rotations
    rel = R[1:] @ R[:-1].transpose(-1, -2)
    angle = torch.arccos(((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1))
    axis = torch.stack([rel[:, 2, 1] - rel[:, 1, 2], rel[:, 0, 2] - rel[:, 2, 0], rel[:, 1, 0] - rel[:, 0, 1]], -1)
    return axis / (2 * torch.sin(angle))[:, None] * angle[:, None] / dt


def test_full_smoothness_turns_and_moves_without_a_jolt_at_unevenly_timed_keyframes():
    """Smoothness 1 is C¹ in time: the velocity and the angular velocity just before a keyframe
    equal those just after it, also when the keyframes around it are 0.3 s and 2 s away."""
    w2c = torch.stack([yaw(0.0), yaw(20.0, (0.5, 0.0, 0.1)), yaw(80.0, (2.0, 0.3, 1.0)), yaw(90.0, (2.5, 0.0, 2.0))])
    times = torch.tensor([0.0, 0.3, 2.3, 3.0], dtype=F64)
    dt = 1e-6
    for key in (1, 2):
        t = times[key] + torch.tensor([-2 * dt, -dt, dt, 2 * dt], dtype=F64)
        path = interpolate_keyframes(w2c, times, t, 1.0)
        before, after = angular_velocity(path[:2], dt)[0], angular_velocity(path[2:], dt)[0]
        assert torch.allclose(before, after, atol=1e-4, rtol=1e-4), (key, before, after)
        c = camera_centers(path)
        assert torch.allclose((c[1] - c[0]) / dt, (c[3] - c[2]) / dt, atol=1e-4, rtol=1e-4)


def test_zero_smoothness_is_piecewise_linear_at_constant_speed():
    """Smoothness 0: straight segments walked at constant speed and plain slerps — no stop at
    each keyframe (zero tangents would ease in and out of every one)."""
    w2c = torch.stack([yaw(0.0), yaw(40.0, (1.0, 0.0, 1.0)), yaw(0.0, (1.0, 0.0, 3.0))])
    times = torch.tensor([0.0, 1.0, 3.0], dtype=F64)
    t = torch.tensor([0.25, 0.5, 2.0, 2.5], dtype=F64)
    path = interpolate_keyframes(w2c, times, t, 0.0)
    expected = torch.stack([yaw(10.0, (0.25, 0.0, 0.25)), yaw(20.0, (0.5, 0.0, 0.5)), yaw(20.0, (1.0, 0.0, 2.0)), yaw(10.0, (1.0, 0.0, 2.5))])
    assert torch.allclose(path, expected, atol=1e-12)


@pytest.mark.parametrize("smoothness", [0.5, 1.0])
def test_evenly_timed_centres_follow_catmull_rom_blended_with_the_chord(smoothness):
    """Keyframes 1 s apart, half way from keyframe 1 to 2: Catmull–Rom gives
    (−p₀ + 9p₁ + 9p₂ − p₃)/16; smoothness s blends its tangents with the chord's, which puts the
    point at (p₁ + p₂)/2 + s·(p₁ + p₂ − p₀ − p₃)/16."""
    centres = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.5, 0.0], [2.0, 0.0, 1.0], [2.0, -1.0, 3.0]], dtype=F64)
    w2c = torch.stack([yaw(10.0 * k, c.tolist()) for k, c in enumerate(centres)])
    mid = camera_centers(interpolate_keyframes(w2c, torch.arange(4, dtype=F64), torch.tensor([1.5], dtype=F64), smoothness))[0]
    p0, p1, p2, p3 = centres
    assert torch.allclose(mid, (p1 + p2) / 2 + smoothness * (p1 + p2 - p0 - p3) / 16, atol=1e-12)
    if smoothness == 1.0:
        assert torch.allclose(mid, (-p0 + 9 * p1 + 9 * p2 - p3) / 16, atol=1e-12)


def test_one_keyframe_holds_the_camera_still():
    path = interpolate_keyframes(yaw(30.0, (1.0, 2.0, 3.0))[None], torch.tensor([0.5], dtype=F64), torch.tensor([0.0, 0.5, 9.0], dtype=F64))
    assert torch.allclose(path, yaw(30.0, (1.0, 2.0, 3.0)).expand(3, 4, 4), atol=1e-12)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"times": [0.0, 1.0, 1.0]}, r"keyframe times \[0, 1, 1\] must be strictly increasing: give each keyframe its own time"),
        ({"times": [0.0, 2.0, 1.0]}, "keyframe times .* must be strictly increasing"),
        ({"times": [0.0, float("nan"), 1.0]}, "keyframe times .* contain NaN or infinite values"),
        ({"times": [0.0, 1.0]}, r"2 keyframe times for 3 keyframes: give one time \(seconds\) per keyframe"),
        ({"w2c": torch.zeros(0, 4, 4), "times": []}, "a keyframe path needs at least one keyframe"),
        ({"w2c": torch.full((3, 4, 4), float("nan"))}, "keyframe poses contain NaN"),
        ({"w2c": torch.eye(4).expand(3, 4, 4) * 2}, "keyframe poses are not rigid"),
        ({"w2c": torch.eye(4)}, r"keyframe poses must be \(K, 4, 4\)"),
        ({"smoothness": 1.5}, "smoothness 1.5 must be between 0 and 1"),
        ({"smoothness": float("nan")}, r"smoothness nan is not a finite number: pass one, e\.g\. 0\.5$"),
        ({"query": [0.0, float("inf")]}, "query times contain NaN or infinite values"),
    ],
)
def test_keyframe_arguments_are_checked_in_one_line(change, match):
    args = {"w2c": orbit_w2c(3), "times": [0.0, 1.0, 2.0], "query": [0.5], "smoothness": 0.5, **change}
    with pytest.raises(Gen3cInputError, match=match) as info:
        interpolate_keyframes(args["w2c"], torch.as_tensor(args["times"], dtype=F64), torch.as_tensor(args["query"], dtype=F64), args["smoothness"])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "change, match",
    [({"fps": 0.0}, "fps 0 must be a number of frames per second > 0"),
     ({"fps": float("nan")}, r"^the fps nan is not a finite number: pass one, e\.g\. 24$"),  # (was "e.g. 0.3", the movement distance's)
     ({"num_frames": 0}, "^num_frames must be a whole number ≥ 1, got 0$"),
     ({"fps": 10**400}, "the fps 1" + "0" * 35 + "… is not a finite number"),
     ({"num_frames": 10**12}, "^num_frames 1000000000000 is more than a run may ask for")],
)  # fmt: skip
def test_keyframe_trajectory_checks_the_frames(change, match):
    args = {"num_frames": 5, "fps": 24.0, **change}
    with pytest.raises(Gen3cInputError, match=match):
        keyframe_trajectory(orbit_w2c(3), [0.0, 1.0, 2.0], K, 352, 640, **args)
    with pytest.raises(Gen3cInputError, match=r"median depth \(metric depth\), but no pixel"):
        center_depth_for("auto", None, "metric")


def test_preset_trajectory_takes_movement_distance_as_preset_cameras_does_and_distance_still():
    """preset_trajectory's distance is movement_distance, as in preset_cameras and the CLI
    (before: only ``distance=``); the old keyword still works, with a DeprecationWarning."""
    K = make_intrinsics(500.0, 500.0, 320.0, 176.0)
    args = ("left", "center_facing", 5, torch.eye(4), K, 352, 640)
    named = preset_trajectory(*args, movement_distance=0.7, center_depth=2.0)
    assert torch.equal(named.w2c, traj("left", "center_facing", 5, 0.7, 2.0).w2c)  # the positional form, checked by hand above
    assert not torch.equal(named.w2c, preset_trajectory(*args, center_depth=2.0).w2c)  # the default distance is another
    with pytest.warns(DeprecationWarning, match="now called movement_distance"):
        old = preset_trajectory(*args, distance=0.7, center_depth=2.0)
    assert torch.equal(old.w2c, named.w2c)
    with pytest.raises(Gen3cInputError, match="one setting under two names"):
        preset_trajectory(*args, movement_distance=0.5, distance=0.7)


@pytest.mark.parametrize("by_old_name", [False, True])
def test_a_path_beyond_float32_names_the_distance_that_took_it_there(by_old_name):
    """A distance so large that the path overflows float32 is refused naming it (after the
    rename, the message formatted the unused ``distance=None`` and raised a TypeError instead)."""
    K = make_intrinsics(500.0, 500.0, 320.0, 176.0)
    args = ("left", "center_facing", 29, torch.eye(4), K, 352, 640)
    kwargs = {"distance": 1.877e19} if by_old_name else {"movement_distance": 1.877e19}
    with pytest.warns(DeprecationWarning) if by_old_name else contextlib.nullcontext():
        with pytest.raises(Gen3cInputError, match=r"^the left path with movement_distance=1\.877e\+19 and centre depth 1e\+20 leaves the range of float32 numbers: pass a smaller movement_distance=$"):
            preset_trajectory(*args, center_depth=1e20, **kwargs)


@pytest.mark.parametrize("name, sign", [("up", 1.0), ("down", -1.0)])
def test_a_very_long_vertical_path_looks_straight_along_it(name, sign):
    """``up`` with d = 1e13: frame 1's offset is (0, ∓2e12, 0), so f = normalise((0, ±2e12, 1)) ≈
    (0, ±1, 5e-13), r = normalise(y × f) = (1, 0, 0), u = f × r = (0, 0, ∓1). Before: torch's
    normalize divided |y × f| ≈ 5e-13 by its floor of 1e-12, r came out half a unit long, and
    the path was refused as "Cameras.w2c are not rigid" (a pose the user never gave)."""
    cams = traj(name, "center_facing", 5, d=1e13)
    expected = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -sign], [0.0, sign, 0.0]])
    assert torch.allclose(cams.w2c[1, :3, :3], expected, atol=1e-6)


@pytest.mark.parametrize("name, rotation", [("zoom_in", "center_facing"), ("zoom_out", "trajectory_aligned")])
def test_a_preset_that_reaches_its_look_at_point_is_refused_in_one_line(name, rotation):
    # Frame i of n sits at i·d·c/n along z; with d = 2 and n = 120 frame 60 is on the look-at
    # point (0, 0, c) itself (trajectory_aligned zoom_out looks at L + 2p, so from p towards L + p).
    # Before: "Cameras.w2c are not rigid (frame 60): ... take any scale, shear or mirroring out of
    # it", advice about a pose the user never wrote.
    with pytest.raises(Gen3cInputError, match=rf'^the {name} path with camera_rotation="{rotation}" and movement_distance=2 puts the '
                       r"camera on the point it looks at in frame 60 of 120, where it has no view direction"):  # fmt: skip
        traj(name, rotation, 120, d=2.0)
    # Just short of it (d = 1.99) GEN3C's path is well defined and kept: frame 60 is 0.005 in front
    # (frames 61… are past it, which a note says).
    with pytest.warns(UserWarning, match="passes the point it looks at in frame 61 of 120"):
        assert camera_centers(traj(name, rotation, 120, d=1.99).w2c)[60].isfinite().all()


@pytest.mark.parametrize("name, rotation, d", [("zoom_in", "center_facing", 1.99), ("zoom_out", "trajectory_aligned", 1.99), ("zoom_out", "center_facing", -1.99)])
def test_a_preset_that_passes_its_look_at_point_turns_round_as_gen3c_and_says_so(name, rotation, d):
    """Past the look-at point (frame i > n/d) GEN3C's look-at turns the camera round: it looks along
    −z, away from the scene, which it no longer shows. Kept as GEN3C makes it, but no longer silently."""
    from gen3c.errors import collect_notes

    with collect_notes() as notes:
        cams = traj(name, rotation, 120, d=d)
    forward = cams.w2c[:, 2, :3]  # each camera's view direction in the world
    assert (forward[:61, 2] > 0).all() and torch.allclose(forward[61:], torch.tensor([0.0, 0.0, -1.0]).expand(59, 3))
    assert notes == [
        f'the {name} path with camera_rotation="{rotation}" and movement_distance={d:g} passes the point it looks at in frame 61 of 120, '
        "where GEN3C's look-at turns the camera round: frames 61…119 look away from the scene and show nothing of it; pass a "
        'movement_distance= below 1 to stay in front of that point, or camera_rotation="no_rotation" to go on facing the scene'
    ]
    with collect_notes() as notes:
        traj(name, rotation, 120, d=math.copysign(0.99, d))
    assert notes == []


def test_keyframe_times_of_the_right_count_but_another_shape_are_named_by_shape():
    # Before: a (3, 1) column of times read "3 keyframe times for 3 keyframes: give one time per keyframe".
    with pytest.raises(Gen3cInputError, match=r"keyframe times have shape \(3, 1\): give one time \(seconds\) per keyframe as a flat \(3,\) list"):
        interpolate_keyframes(orbit_w2c(3), torch.tensor([[0.0], [1.0], [2.0]], dtype=F64), torch.tensor([0.5], dtype=F64))


# -- devices: a path is computed where its input poses are --------------------------------------

#: Each device test runs on the CPU here and on a GPU where there is one (the coordinator's device run).
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on the device)"))]


@pytest.mark.parametrize("device", ["meta", *DEVICES])
def test_quaternion_conjugate_stays_on_the_inputs_device(device):
    """The spline's conjugate multiplied by a CPU constant: keyframes on a GPU failed with "Tensor
    on device cpu is not on the expected device cuda" ("meta" shows it on the CPU)."""
    q = torch.tensor([[0.5, -0.5, 0.5, 0.5], [1.0, 0.0, 0.0, 0.0]], dtype=F64, device=device)
    conj = _qconj(q)
    assert (conj.device.type, conj.dtype, conj.shape) == (device, F64, (2, 4))
    if device != "meta":
        assert torch.equal(conj.cpu(), torch.tensor([[0.5, 0.5, -0.5, -0.5], [1.0, -0.0, -0.0, -0.0]], dtype=F64))


@pytest.mark.parametrize("device", DEVICES)
def test_keyframe_spline_runs_on_the_keyframes_device(device):
    """Keyframes on a GPU, times as a list and query times on the CPU: the path is float64 on the
    keyframes' device and the CPU's path; float32 keyframes give it to float32 precision."""
    w2c = orbit_w2c(4)
    times = [0.0, 0.4, 1.5, 2.0]
    query = torch.linspace(-0.5, 2.5, 31, dtype=F64)
    on_cpu = interpolate_keyframes(w2c, times, query, 0.5)
    path = interpolate_keyframes(w2c.to(device), times, query, 0.5)
    assert (path.device.type, path.dtype) == (device, F64)
    assert torch.allclose(path.cpu(), on_cpu, atol=1e-12)
    assert torch.allclose(interpolate_keyframes(w2c.to(device), times, torch.tensor(times, dtype=F64), 0.5).cpu(), w2c, atol=1e-10)
    assert torch.allclose(interpolate_keyframes(w2c.float().to(device), times, query.float(), 0.5).cpu(), on_cpu, atol=1e-5)
    # Two keyframes, closed form (test_two_keyframes_give_a_constant_speed_line_and_a_slerp).
    two = interpolate_keyframes(torch.stack([yaw(0.0), yaw(60.0, (2.0, 0.0, 4.0))]).to(device), torch.tensor([0.0, 2.0], device=device), [1.0])
    assert two.device.type == device and torch.allclose(two[0].cpu(), yaw(30.0, (1.0, 0.0, 2.0)), atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_keyframe_cameras_are_on_the_keyframes_device(device):
    """keyframe_trajectory and KeyframePath.cameras with keyframes on a GPU and K on the CPU (its
    frame times were a CPU arange): float32 cameras on the keyframes' device, frame 2 at 1 s half way."""
    w2c = torch.stack([yaw(0.0), yaw(60.0, (2.0, 0.0, 4.0))]).to(device)
    for cams in (keyframe_trajectory(w2c, [0.0, 2.0], K, 352, 640, num_frames=5, fps=2.0), KeyframePath(w2c, [0.0, 2.0], 0.5, 5, 2.0).cameras(K, 352, 640)):
        assert (cams.w2c.device.type, cams.K.device.type, cams.w2c.dtype) == (device, device, torch.float32)
        assert torch.allclose(cams.w2c[2].cpu(), yaw(30.0, (1.0, 0.0, 2.0)).float(), atol=1e-6)
        assert torch.equal(cams.K.cpu(), K.expand(5, 3, 3))


@pytest.mark.parametrize("device", DEVICES)
def test_preset_trajectory_runs_on_the_source_cameras_device(device):
    """A source pose on a GPU (float64) and K on the CPU: the offsets Aᵢ were built on the CPU and
    Aᵢ @ W₀ failed with a device mismatch. Now float32 cameras on W₀'s device, equal to the CPU's:
    frame 2 of "left" (n = 4) is the hand-derived A₂ (test_left_center_facing_by_hand) times W₀."""
    W0 = yaw(20.0, (0.1, -0.2, 0.3))
    cams = preset_trajectory("left", "center_facing", 4, W0.to(device), K, 352, 640)
    assert (cams.w2c.device.type, cams.K.device.type, cams.w2c.dtype) == (device, device, torch.float32)
    f = torch.tensor([0.15, 0.0, 1.0], dtype=F64) / math.sqrt(1.0225)
    A2 = torch.eye(4, dtype=F64)
    A2[0, :3] = torch.tensor([f[2], 0.0, -f[0]], dtype=F64)
    A2[2, :3] = f
    A2[:3, 3] = torch.tensor([0.15, 0.0, 0.0], dtype=F64)
    assert torch.allclose(cams.w2c[2].cpu(), (A2 @ W0).float(), atol=1e-6)
    assert torch.allclose(cams.w2c.cpu(), traj("left", "center_facing", 4, W0=W0.float()).w2c, atol=1e-6)
    # Video mode: one source pose per frame, on the GPU.
    per_frame = torch.stack([yaw(10.0 * i, (0.0, 0.0, 0.1 * i)) for i in range(4)])
    video = preset_trajectory("clockwise", "no_rotation", 4, per_frame.to(device), K, 352, 640)
    assert video.w2c.device.type == device
    assert torch.allclose(video.w2c.cpu(), traj("clockwise", "no_rotation", 4, W0=per_frame).w2c, atol=1e-6)


def test_preset_refusals_and_notes_name_the_python_arguments_and_the_command_lines_route_keeps_its_flags():
    """Called from Python, preset_trajectory, preset_offset_matrices, center_depth_for and
    preset_cameras named their settings by gen3c generate's flags (--movement_distance 2, and
    preset_offset_matrices' own argument was ``distance``); now by their keyword arguments, as
    gen3c.generate() does. The command line's route (make_cameras) still says --movement_distance."""
    from gen3c.errors import collect_notes
    from gen3c.pipelines.camera_video import SourceView, preset_cameras
    from gen3c.pipelines.request import make_cameras
    from gen3c.pipelines.settings import GenerationRequest
    from gen3c.trajectories import preset_offset_matrices

    reached = 'the zoom_in path with camera_rotation="center_facing" and movement_distance=2 puts the camera on the point it looks at in frame 2 of 4'
    with pytest.raises(Gen3cInputError, match=f"^{reached}, where it has no view direction: pass another movement_distance= "):
        preset_offset_matrices("zoom_in", "center_facing", 4, movement_distance=2.0)
    with pytest.raises(Gen3cInputError, match=f"^{reached},"):
        preset_trajectory("zoom_in", "center_facing", 4, torch.eye(4), K, 352, 640, movement_distance=2.0)
    source = SourceView(torch.zeros(3, 8, 8), torch.full((8, 8), 2.0), make_intrinsics(8.0, 8.0, 4.0, 4.0), depth_kind="relative")
    with pytest.raises(Gen3cInputError, match=f"^{reached},"):
        preset_cameras(source, "zoom_in", "center_facing", 4, 2.0)
    with collect_notes() as notes:
        preset_cameras(source, "zoom_in", "center_facing", 4, 1.9)
    assert notes and notes[0].startswith('the zoom_in path with camera_rotation="center_facing" and movement_distance=1.9 passes the point')
    # the command line's route: its flags, as gen3c generate prints them
    request = GenerationRequest(trajectory="zoom_in", movement_distance=2.0, num_video_frames=4)
    with pytest.raises(Gen3cInputError, match="^the zoom_in path with --camera_rotation center_facing and --movement_distance 2 puts the camera"):
        make_cameras(request, source)
    with collect_notes() as notes:
        make_cameras(GenerationRequest(trajectory="zoom_in", movement_distance=1.9, num_video_frames=4), source)
    assert notes and notes[0].startswith("the zoom_in path with --camera_rotation center_facing and --movement_distance 1.9 passes the point")


def test_preset_offset_matrices_takes_movement_distance_as_preset_trajectory_does_and_distance_still():
    """A_1 of ``right`` facing the centre, d = 0.8, n = 4: p₁ = (0.2, 0, 0), f = (−0.2, 0, 1)/√1.04, translation −p₁."""
    from gen3c.trajectories import preset_offset_matrices

    A = preset_offset_matrices("right", "center_facing", 4, movement_distance=0.8)
    f = torch.tensor([-0.2, 0.0, 1.0], dtype=torch.float64) / math.sqrt(1.04)
    assert torch.allclose(A[1, 2, :3], f) and torch.allclose(A[1, :3, 3], torch.tensor([-0.2, 0.0, 0.0], dtype=torch.float64))
    with pytest.warns(DeprecationWarning, match="preset_offset_matrices's distance is now called movement_distance"):
        assert torch.equal(preset_offset_matrices("right", "center_facing", 4, distance=0.8), A)
    with pytest.raises(Gen3cInputError, match="one setting under two names"):
        preset_offset_matrices("right", "center_facing", 4, movement_distance=0.5, distance=0.8)
