"""Per-frame depth against its cameras (gen3c.io.conventions): camera-to-world poses and inverse
depth saved where world-to-camera poses and z-depth belong are refused; consistent inputs, and
inputs whose readings cannot be told apart, pass. Closed-form scene: the inside of a box room."""

import numpy as np
import pytest
import torch
from layouts import write_multiview, write_sample, write_vipe

from gen3c.cameras import invert_pose, look_at, make_intrinsics, pixel_grid
from gen3c.errors import Gen3cInputError
from gen3c.io.conventions import check_depth_conventions, frame_pairs
from gen3c.io.depth import FAR_DEPTH
from gen3c.io.gen3c_sample import read_sample
from gen3c.io.multiview import read_multiview
from gen3c.io.vipe import read_vipe

H, W, T = 48, 64, 8
LO, HI = np.array([-3.0, -2.0, -2.0]), np.array([3.0, 1.5, 6.0])


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # (conftest.py)


def cameras(eyes, targets):
    w2c = look_at(torch.tensor(eyes, dtype=torch.float32), torch.tensor(targets, dtype=torch.float32))
    K = make_intrinsics(0.8 * W, 0.8 * W, (W - 1) / 2, (H - 1) / 2).expand(len(eyes), 3, 3).clone()
    return w2c, K


def room_depth(w2c, K):
    """z-depth of the box [LO, HI] seen from inside: each ray's nearest exit plane."""
    v, u = np.mgrid[:H, :W].astype(np.float64)
    out = []
    for i in range(len(w2c)):
        c2w = invert_pose(w2c[i].double()).numpy()
        d = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K[i].double().numpy()).T @ c2w[:3, :3].T
        with np.errstate(divide="ignore"):
            out.append(np.where(d > 0, (HI - c2w[:3, 3]) / d, (LO - c2w[:3, 3]) / d).min(-1))
    return torch.tensor(np.stack(out), dtype=torch.float32)


def walk():
    """Forward and to the right, looking into a corner of the room."""
    return cameras([[0.1 * i, 0.0, 0.15 * i] for i in range(T)], [[2.5, 0.5, 5.0]] * T)


def check(depth, w2c, K, valid=None):
    valid = torch.ones_like(depth, dtype=torch.bool) if valid is None else valid
    check_depth_conventions(depth, valid, K, w2c, poses_name="POSES", depth_name="DEPTH", poses_fix="FIX POSES", depth_fix="FIX DEPTH")


MOTIONS = {
    "walk": walk,
    "orbit": lambda: cameras([[2 * np.sin(0.1 * i), 0.0, 2 - 2 * np.cos(0.1 * i)] for i in range(T)], [[0.0, 0.0, 2.0]] * T),
    "turn": lambda: cameras([[0.3, 0.0, 0.0]] * T, [[5 * np.sin(0.05 * i), 0.3, 5 * np.cos(0.05 * i)] for i in range(T)]),
}


@pytest.mark.parametrize("motion", MOTIONS)
def test_a_consistent_scene_passes_and_each_mistake_is_refused_naming_the_file(motion):
    w2c, K = MOTIONS[motion]()
    depth = room_depth(w2c, K)
    check(depth, w2c, K)
    check(depth * 3.0, w2c, K)  # depth in other units than the poses: no convention mistake
    with pytest.raises(Gen3cInputError, match=r"^POSES look camera-to-world \(.* a median \d+% off .* [01]% read inverted\): FIX POSES$"):
        check(depth, invert_pose(w2c), K)
    for disparity in (1.0 / depth, 7.0 / depth):  # inverse depth at any scale
        with pytest.raises(Gen3cInputError, match=r"^DEPTH looks like inverse depth \(disparity\) \(.* [01]% read as 1 / depth\): FIX DEPTH$"):
            check(disparity, w2c, K)


def test_a_static_camera_and_a_turn_inside_a_sphere_pass_either_way():
    """Where the cameras' motion explains nothing, nothing is said: a camera that never moves, and
    a pure rotation whose scene is at one distance from it (every frame's depth is the same)."""
    w2c, K = cameras([[0.3, 0.0, 0.0]] * T, [[0.3, 0.3, 5.0]] * T)
    depth = room_depth(w2c, K)
    for d, poses in ((depth, w2c), (depth, invert_pose(w2c)), (1.0 / depth, w2c)):
        check(d, poses, K)
    w2c, K = MOTIONS["turn"]()
    rays = pixel_grid(H, W) @ torch.linalg.inv(K[0]).T  # z = 1
    sphere = (2.0 / rays.norm(dim=-1)).expand(T, H, W)  # z-depth of a sphere of radius 2 about the camera
    for d, poses in ((sphere, w2c), (sphere, invert_pose(w2c)), (1.0 / sphere, w2c)):
        check(d, poses, K)


def test_invalid_pixels_are_left_out_and_a_single_frame_is_not_checked():
    w2c, K = walk()
    depth = room_depth(w2c, K)
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[:, :, : W // 3] = False
    check(torch.where(valid, depth, torch.full_like(depth, 1e-3)), w2c, K, valid)  # junk where not valid: ignored
    with pytest.raises(Gen3cInputError, match="camera-to-world"):
        check(depth, invert_pose(w2c), K, valid)
    sky = depth.clone()
    sky[:, : H // 2] = FAR_DEPTH  # unknown depth placed far away, as readers place NaN: not a measurement
    with pytest.raises(Gen3cInputError, match="camera-to-world"):
        check(sky, invert_pose(w2c), K)
    check(depth[:1], invert_pose(w2c[:1]), K[:1])
    assert frame_pairs(1) == [] and frame_pairs(2) == [(0, 1), (1, 0)]


def _rgb(n):
    return np.full((n, H, W, 3), 128, np.uint8)


def test_a_sample_directory_with_camera_to_world_poses_or_disparity_is_refused(tmp_path):
    w2c, K = walk()
    depth = room_depth(w2c, K).numpy()
    read_sample(write_sample(tmp_path / "ok", _rgb(T), depth, depth > 0, w2c, K), (H, W))
    c2w = write_sample(tmp_path / "c2w", _rgb(T), depth, depth > 0, invert_pose(w2c), K)
    with pytest.raises(Gen3cInputError, match=r"c2w' camera.npz w2c look camera-to-world .*: save each matrix's inverse \(np.linalg.inv\) as w2c"):
        read_sample(c2w, (H, W))
    disparity = write_sample(tmp_path / "disp", _rgb(T), 1.0 / depth, depth > 0, w2c, K)
    with pytest.raises(Gen3cInputError, match=r"disp' depth.npz looks like inverse depth \(disparity\) .*: save z-depth"):
        read_sample(disparity, (H, W))


def test_a_vipe_clip_with_world_to_camera_poses_is_refused(tmp_path):
    pytest.importorskip("OpenEXR")
    w2c, K = walk()
    depth = room_depth(w2c, K).numpy()
    read_vipe(write_vipe(tmp_path / "ok", "walk", _rgb(T), depth, w2c, K), (H, W))
    wrong = write_vipe(tmp_path / "w2c", "walk", _rgb(T), depth, invert_pose(w2c), K)  # the writer inverts: w2c on disk
    with pytest.raises(Gen3cInputError, match=r"^ViPE pose/walk.npz poses look world-to-camera .*: ViPE writes camera-to-world poses"):
        read_vipe(wrong, (H, W))


def test_multiview_key_frames_with_camera_to_world_poses_are_refused(tmp_path):
    w2c, K = walk()
    depth = room_depth(w2c, K).numpy()
    read_multiview(write_multiview(tmp_path / "ok.npz", _rgb(T), depth, depth > 0, K, w2c, w2c), (H, W))
    c2w = invert_pose(w2c)
    with pytest.raises(Gen3cInputError, match=r"c2w.npz' w2cs_key_frames look camera-to-world .* \(and in w2cs_all"):
        read_multiview(write_multiview(tmp_path / "c2w.npz", _rgb(T), depth, depth > 0, K, c2w, c2w), (H, W))


def test_the_cli_refuses_a_camera_to_world_sample_in_one_line_and_writes_nothing(tmp_path):
    from typer.testing import CliRunner

    from gen3c.cli import app

    w2c, K = walk()
    depth = room_depth(w2c, K).numpy()
    folder = write_sample(tmp_path / "c2w", _rgb(T), depth, depth > 0, invert_pose(w2c), K)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["generate", "--input_image_path", str(folder), "--resolution", f"{H}x{W}",
                                   "--num_video_frames", str(T), "--video_save_folder", str(out)])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "camera.npz w2c look camera-to-world" in res.output and "Traceback" not in res.output
    assert not out.exists() or not any(out.iterdir())


def test_a_legacy_pt_sample_with_camera_to_world_poses_is_refused(tmp_path):
    w2c, K = walk()
    depth = room_depth(w2c, K)
    image = torch.zeros(T, 3, H, W)
    path = tmp_path / "c2w.pt"
    torch.save((image, depth[:, None], torch.ones(T, 1, H, W), invert_pose(w2c), K), path)
    with pytest.raises(Gen3cInputError, match=r"c2w.pt' w2c look camera-to-world .*: save each matrix's inverse"):
        read_sample(path, (H, W))
    torch.save((image, depth[:, None], torch.ones(T, 1, H, W), w2c, K), path)
    assert len(read_sample(path, (H, W))) == T
