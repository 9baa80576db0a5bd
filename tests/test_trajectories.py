"""GEN3C's presets against poses derived by hand from GEN3C's `camera_utils.py` (docs/cameras.md, "Presets")."""

import math

import pytest
import torch

from gen3c.cameras import camera_centers, make_intrinsics
from gen3c.errors import Gen3cInputError
from gen3c.io.depth import FAR_DEPTH, median_scene_depth
from gen3c.trajectories import (
    PRESETS,
    ROTATION_MODES,
    center_depth_for,
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
    with pytest.raises(Gen3cInputError, match="no pixel of it has a valid depth: check the depth input, or pass --trajectory_scale gen3c"):
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
        center_depth_for("auto", 1.0, "metres")
    with pytest.raises(Gen3cInputError, match=r"median depth \(--trajectory_scale median_depth\), but no pixel"):
        center_depth_for("median_depth", None, "metric")
    with pytest.raises(Gen3cInputError, match=r"median depth \(metric depth\), but no pixel"):
        center_depth_for("auto", None, "metric")
