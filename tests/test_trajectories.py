"""GEN3C's presets against poses derived by hand from GEN3C's `camera_utils.py` (docs/cameras.md,
"Presets"), and the keyframe spline against closed forms."""

import math

import pytest
import torch

from gen3c.cameras import camera_centers, look_at, make_intrinsics
from gen3c.errors import Gen3cInputError
from gen3c.trajectories import (
    PRESETS,
    ROTATION_MODES,
    center_depth_for,
    interpolate_keyframes,
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


def test_center_depth_modes():
    depth = torch.tensor([[2.0, 4.0], [6.0, 0.0]])
    assert center_depth_for("gen3c", depth, "metric") == 1.0
    assert center_depth_for("auto", depth, "relative") == 1.0
    assert center_depth_for("auto", depth, "metric") == 4.0  # median of valid depth
    assert center_depth_for("median_depth", depth, "relative") == 4.0
    with pytest.raises(Gen3cInputError):
        center_depth_for("metres", depth, "metric")


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
        ({"W0": torch.zeros(4, 4)}, "source_w2c are not rigid"),
    ],
)
def test_preset_arguments_are_checked(change, match):
    with pytest.raises(Gen3cInputError, match=match):
        traj("left", "center_facing", 5, **change)


def test_preset_helpers_check_their_arguments():
    with pytest.raises(Gen3cInputError, match="num_video_frames must be a whole number ≥ 1, got -3"):
        preset_offsets("left", -3, 0.3)
    with pytest.raises(Gen3cInputError, match="unknown depth_kind 'metres': choose one of metric, relative"):
        center_depth_for("auto", torch.ones(2, 2), "metres")
    with pytest.raises(Gen3cInputError, match="trajectory_scale 'median_depth' needs the source depth"):
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
