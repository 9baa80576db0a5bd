"""Readers and writers: round trips and clear errors."""

import errno
import json
import os
import re
import warnings
import zipfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, features

from gen3c.cameras import Cameras, look_at, make_intrinsics, opencv_to_opengl, project_points
from gen3c.errors import Gen3cInputError
from gen3c.io.atomic import atomic_path, ensure_writable_dir
from gen3c.io.camera_files import (
    camera_dict_fps,
    cameras_from_dict,
    cameras_to_nerfstudio_path,
    fit_cameras,
    load_camera_file,
    read_camera_file,
    read_keyframe_path,
    save_cameras,
    save_nerfstudio_path,
)
from gen3c.io.depth import FAR_DEPTH, conform_depth, load_depth, scene_depths
from gen3c.io.images import load_image, resize_image, resize_nearest, save_image, to_uint8
from gen3c.io.ply import read_ply, write_ply
from gen3c.io.resolution import parse_resolution
from gen3c.io.video import VideoWriter, count_video_frames, read_video, write_video
from gen3c.trajectories import KeyframePath


def orbit(n=5, h=48, w=64):
    eyes = torch.stack([torch.tensor([np.sin(a), 0.1 * i, -2 * np.cos(a)], dtype=torch.float32) for i, a in enumerate(np.linspace(0, 1, n))])
    w2c = look_at(eyes, torch.zeros(n, 3))
    K = make_intrinsics(60.0, 60.0, w / 2, h / 2)
    return Cameras(w2c, K, h, w)


def test_gen3c_camera_json_round_trip(tmp_path):
    cams = orbit()
    save_cameras(tmp_path / "c.json", cams)
    back = load_camera_file(tmp_path / "c.json")
    assert torch.allclose(back.w2c, cams.w2c, atol=1e-6) and torch.allclose(back.K, cams.K)
    assert (back.height, back.width) == (48, 64)


def test_gen3c_camera_json_c2w_and_shared_intrinsics(tmp_path):
    cams = orbit(3)
    data = {
        "width": 64, "height": 48, "intrinsics": [60, 60, 32, 24],
        "frames": [{"c2w": c.tolist()} for c in cams.c2w],
    }  # fmt: skip
    (tmp_path / "c.json").write_text(json.dumps(data))
    back = load_camera_file(tmp_path / "c.json")
    assert torch.allclose(back.w2c, cams.w2c, atol=1e-5) and torch.allclose(back.K, cams.K)


def test_nerfstudio_camera_path_round_trip(tmp_path):
    cams = orbit()
    save_nerfstudio_path(tmp_path / "camera_path.json", cams)
    data = json.loads((tmp_path / "camera_path.json").read_text())
    # nerfstudio stores OpenGL camera-to-world, row-major, and a vertical fov in degrees.
    assert np.allclose(np.array(data["camera_path"][2]["camera_to_world"]).reshape(4, 4), opencv_to_opengl(cams.w2c[2].double()).numpy())
    assert data["camera_path"][0]["fov"] == pytest.approx(2 * np.degrees(np.arctan(24 / 60)))
    back = load_camera_file(tmp_path / "camera_path.json")
    assert torch.allclose(back.w2c, cams.w2c, atol=1e-5) and torch.allclose(back.K, cams.K, atol=1e-4)


def keyframed(smoothness=0.7, times=(0.0, 0.5, 2.0), num_frames=13, fps=6.0):
    """A keyframe path through three poses of :func:`orbit`, and its cameras at 48×64."""
    path = KeyframePath(orbit(3).w2c.double(), torch.tensor(times, dtype=torch.float64), smoothness, num_frames, fps)
    return path, path.cameras(make_intrinsics(60.0, 55.0, 30.0, 20.0), 48, 64)


def test_a_keyframed_camera_path_replays_its_keyframes(tmp_path):
    """A camera_path.json gen3c writes keeps the keyframes (exact times, smoothness); reading it
    samples them with keyframe_trajectory, as the GUI did when it wrote the file."""
    path, cams = keyframed()
    save_nerfstudio_path(tmp_path / "camera_path.json", cams, 6.0, keyframes=path)
    data = json.loads((tmp_path / "camera_path.json").read_text())
    # The last keyframe (2 s) is before 13 frames / 6 fps: a hold keyframe there, for nerfstudio's viewer.
    assert [kf["time"] for kf in data["keyframes"]] == [0.0, 0.5, 2.0, 13 / 6] and data["gen3c"] == {"smoothness": 0.7}
    assert [kf.get("gen3c_hold", False) for kf in data["keyframes"]] == [False, False, False, True]
    # As nerfstudio's viewer: each keyframe holds the transition leading to it; tension = 1 − smoothness.
    assert [kf["override_transition_sec"] for kf in data["keyframes"]] == pytest.approx([None, 0.5, 1.5, 1 / 6])
    assert data["smoothness_value"] == pytest.approx(0.3) and np.allclose(data["keyframes"][1]["matrix"], opencv_to_opengl(path.w2c[1]).reshape(-1))
    back = read_keyframe_path(data)
    assert torch.allclose(back.w2c, path.w2c, atol=1e-6) and torch.equal(back.times, path.times)
    assert (back.smoothness, back.num_frames, back.fps) == (0.7, 13, 6.0)
    replayed = load_camera_file(tmp_path / "camera_path.json")
    assert torch.allclose(replayed.w2c, cams.w2c, atol=1e-6) and torch.equal(replayed.K, cams.K)


def test_a_camera_path_changed_after_gen3c_wrote_it_is_refused(tmp_path):
    """Its keyframes and its camera_path would give two different videos: neither is dropped
    silently. nerfstudio's own files, and gen3c's older ones, replay camera_path as it is."""
    path, cams = keyframed()
    data = json.loads(json.dumps(cameras_to_nerfstudio_path(cams, 6.0, path)))
    data["camera_path"][5]["camera_to_world"][3] += 0.1  # moved 0.1 along x
    with pytest.raises(Gen3cInputError, match=r"^camera file: its camera_path does not follow its keyframes \(frame 5 is 0\.1 away, turned 0\.0°\): .* delete its \"gen3c\" entry") as info:
        cameras_from_dict(data)
    assert "\n" not in str(info.value)
    as_written = cameras_from_dict(data, follow_keyframes=False)
    assert torch.allclose(as_written.centers[5], cams.centers[5] + torch.tensor([0.1, 0.0, 0.0]), atol=1e-5)
    for old_or_foreign in ({**data, "gen3c": {"path_mode": "keyframes"}}, {k: v for k, v in data.items() if k != "gen3c"}):
        assert torch.equal(cameras_from_dict(old_or_foreign).w2c, as_written.w2c)
    data["camera_path"][5]["camera_to_world"][3] -= 0.1
    data["keyframes"][1]["time"] = 0.7  # a keyframe retimed by hand
    with pytest.raises(Gen3cInputError, match="does not follow its keyframes"):
        cameras_from_dict(data)


def test_nerfstudio_keyframes_are_timed_by_their_transitions():
    """nerfstudio's viewer (``render_panel.py``) writes no times: keyframe i comes
    ``override_transition_sec`` of keyframe i after keyframe i − 1 when enabled, else
    ``default_transition_sec`` (0.5 when absent); its ``smoothness_value`` is a tension."""
    gl = opencv_to_opengl(orbit(4).w2c.double()).reshape(4, 16).tolist()
    keyframes = [{"matrix": m, "fov": 50.0, "aspect": 4 / 3} for m in gl]
    keyframes[1] |= {"override_transition_enabled": True, "override_transition_sec": 1.25}
    keyframes[2] |= {"override_transition_enabled": False, "override_transition_sec": 9.0}
    data = {"camera_path": [{"camera_to_world": gl[0], "fov": 50.0}] * 7, "render_height": 48, "render_width": 64,
            "keyframes": keyframes, "fps": 30, "smoothness_value": 0.2, "default_transition_sec": 2.0}  # fmt: skip
    path = read_keyframe_path(data)
    assert path.times.tolist() == [0.0, 1.25, 3.25, 5.25] and path.smoothness == pytest.approx(0.8)
    assert (path.num_frames, path.fps) == (7, 30.0) and torch.allclose(path.w2c, orbit(4).w2c.double(), atol=1e-6)
    del data["default_transition_sec"], data["smoothness_value"]
    assert read_keyframe_path(data).times.tolist() == [0.0, 1.25, 1.75, 2.25] and read_keyframe_path(data).smoothness == 0.5
    assert read_keyframe_path({**data, "keyframes": []}) is None and read_keyframe_path({"frames": []}) is None


@pytest.mark.parametrize(
    ("change", "match"),
    [({1: {"override_transition_sec": 0.0}}, r"keyframe times \[0, 0, 0\.5\] must be strictly increasing"),
     ({1: {"time": float("nan")}}, "keyframe times .* contain NaN"),
     ({0: {"matrix": [1, 0, 0]}}, r"keyframes\[0\]\.matrix must be 4×4"),
     ({2: {"matrix": None}}, r"keyframes\[2\] needs 'matrix', 16 numbers"),
     ({1: {"override_transition_sec": "1"}}, r"keyframes\[1\]\.override_transition_sec must be a number"),
     ({-1: {"smoothness_value": 3.0}}, r"'smoothness_value' 3 is nerfstudio's spline tension, between 0 \(smooth\) and 1 \(tense\): fix it$")],
)  # fmt: skip
def test_bad_keyframes_are_one_line_errors(change, match):
    gl = opencv_to_opengl(orbit(3).w2c.double()).reshape(3, 16).tolist()
    data = {"camera_path": [{"camera_to_world": gl[0], "fov": 50.0}], "render_height": 48, "render_width": 64,
            "keyframes": [{"matrix": m, "override_transition_enabled": True, "override_transition_sec": 0.5} for m in gl]}  # fmt: skip
    for index, fields in change.items():
        (data if index < 0 else data["keyframes"][index]).update(fields)
    with pytest.raises(Gen3cInputError, match=match) as info:
        read_keyframe_path(data, "camera file 'p.json'")
    assert str(info.value).startswith("camera file 'p.json'") and "\n" not in str(info.value)


def test_nerfstudio_transforms_json(tmp_path):
    """nerfstudio's pixel (u, v) is centred at (u + ½, v + ½) (``Cameras.get_image_coords``), gen3c's
    at (u, v): its principal point (32, 24) of a 64×48 image, the centre, is gen3c's (31.5, 23.5)."""
    cams = orbit(2)
    gl = opencv_to_opengl(cams.w2c.double())
    data = {"fl_x": 60, "fl_y": 62, "cx": 32, "cy": 24, "w": 64, "h": 48, "frames": [{"transform_matrix": m.tolist()} for m in gl]}
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    back = load_camera_file(tmp_path / "transforms.json")
    assert torch.allclose(back.w2c, cams.w2c, atol=1e-5)
    assert back.K[1].tolist() == [[60.0, 0.0, 31.5], [0.0, 62.0, 23.5], [0.0, 0.0, 1.0]]


# -- nerfstudio's conventions, each from its source -------------------------------------------
# scripts/render.py: ns-render renders every camera_path entry and writes the video at
#   len(camera_path) / seconds fps ("fps" is not read).
# viewer/render_panel.py: the viewer writes N = int(fps × duration) entries, entry i at
#   duration × i / N (the last keyframe of an open path is never reached), seconds = duration.
# cameras/camera_paths.py, get_path_from_json: camera_to_world is 16 numbers, row-major, OpenGL
#   camera-to-world; fx = fy = (render_height / 2) / tan(fov / 2); cx, cy = render_width / 2,
#   render_height / 2, in pixels centred at half-integers (cameras.py, get_image_coords).


def test_a_hand_written_nerfstudio_path_gives_the_cameras_derived_by_hand(tmp_path):
    """5 entries over 2.5 s at 2 fps; fov 90° over 480 rows: f = 240 / tan 45° = 240 px, principal
    point (320, 240) in nerfstudio's pixels = (319.5, 239.5) in gen3c's. The first camera is
    OpenGL's identity: OpenCV's w2c flips y and z. The last stands at (1, 2, 3) turned 90° about
    y (looking along −x): c2w rows [0 0 1 1], [0 1 0 2], [−1 0 0 3], so w2c = [[0, 0, −1, 3],
    [0, −1, 0, 2], [−1, 0, 0, 1]] (R = (R_gl · diag(1, −1, −1))ᵀ, t = −R·(1, 2, 3))."""
    identity = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    last = [0, 0, 1, 1, 0, 1, 0, 2, -1, 0, 0, 3, 0, 0, 0, 1]
    data = {"camera_type": "perspective", "render_height": 480, "render_width": 640, "fps": 2, "seconds": 2.5,
            "camera_path": [{"camera_to_world": identity, "fov": 90, "aspect": 4 / 3}] * 4 + [{"camera_to_world": last, "fov": 90, "aspect": 4 / 3}]}  # fmt: skip
    (tmp_path / "camera_path.json").write_text(json.dumps(data))
    read = read_camera_file(tmp_path / "camera_path.json")
    cams = read.cameras
    assert (len(cams), read.fps, cams.height, cams.width) == (5, 2.0, 480, 640)
    assert torch.equal(cams.w2c[0], torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0])))
    assert torch.allclose(cams.w2c[4], torch.tensor([[0.0, 0, -1, 3], [0, -1, 0, 2], [-1, 0, 0, 1], [0, 0, 0, 1]]), atol=1e-6)
    assert torch.allclose(cams.K[0], torch.tensor([[240.0, 0, 319.5], [0, 240, 239.5], [0, 0, 1]]))
    # The point 5 units ahead of the last camera, (−4, 2, 3), is 5 deep at the image centre.
    uv, z = project_points(torch.tensor([[-4.0, 2.0, 3.0]]), cams.K[4], cams.w2c[4])
    assert torch.allclose(uv, torch.tensor([[319.5, 239.5]])) and z.item() == pytest.approx(5.0)


def test_a_gen3c_orbit_is_written_as_nerfstudio_reads_it_and_reads_back():
    """Four cameras 2 units from the origin at 0°, 90°, 180°, 270° around it, looking at it
    (gen3c's world: y down). The one at 90° stands at (2, 0, 0) looking along −x: OpenGL
    c2w columns x = (0, 0, 1), y = (0, −1, 0), z = (1, 0, 0), position (2, 0, 0). fy = 50 px over
    100 rows is a vertical fov of 2·atan(50 / 50) = 90°. 30 fps: ns-render plays 4 / seconds fps."""
    angles = torch.tensor([0.0, 0.5, 1.0, 1.5], dtype=torch.float64) * torch.pi
    eyes = torch.stack([2 * torch.sin(angles), torch.zeros(4, dtype=torch.float64), -2 * torch.cos(angles)], -1)
    cams = Cameras(look_at(eyes, torch.zeros(4, 3, dtype=torch.float64)), make_intrinsics(50.0, 50.0, 40.0, 50.0), 100, 80)
    data = json.loads(json.dumps(cameras_to_nerfstudio_path(cams, fps=30)))
    assert np.allclose(data["camera_path"][1]["camera_to_world"], [0, 0, 1, 2, 0, -1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1], atol=1e-6)
    assert np.allclose(data["camera_path"][0]["camera_to_world"], [1, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1, -2, 0, 0, 0, 1], atol=1e-6)
    assert data["camera_path"][1]["fov"] == pytest.approx(90.0) and data["camera_path"][1]["aspect"] == 0.8
    assert (data["render_height"], data["render_width"], data["camera_type"]) == (100, 80, "perspective")
    assert len(data["camera_path"]) / data["seconds"] == pytest.approx(30.0) and data["fps"] == 30.0
    back = cameras_from_dict(data)
    assert torch.allclose(back.w2c, cams.w2c, atol=1e-6) and torch.equal(back.K, cams.K)
    # nerfstudio reads no "K": the fov gives its centred camera, (40 − ½, 50 − ½) in gen3c's pixels.
    for entry in data["camera_path"]:
        del entry["K"]
    assert torch.allclose(cameras_from_dict(data).K[1], torch.tensor([[50.0, 0, 39.5], [0, 50, 49.5], [0, 0, 1]]))


@pytest.mark.parametrize("n", [11, 13, 123])
def test_gen3c_seconds_play_its_frames_at_its_fps_in_ns_render_and_back(n):
    """seconds = n / fps: ns-render's n / seconds is fps (to rounding), and gen3c reads fps back exactly."""
    cams = Cameras(torch.eye(4).expand(n, 4, 4), make_intrinsics(60.0, 60.0, 32.0, 24.0), 48, 64)
    data = cameras_to_nerfstudio_path(cams, fps=30)
    assert n / data["seconds"] == pytest.approx(30.0, rel=1e-12) and camera_dict_fps(data) == 30.0


def test_a_nerfstudio_viewer_path_plays_at_entries_over_seconds():
    """The viewer's keyframes 0.65 s apart give a 1.3 s path; at 25 fps it wrote int(32.5) = 32
    entries, entry i at 1.3·i/32 s, and ns-render plays them at 32 / 1.3 fps. gen3c takes that rate,
    so frame 16 is at 0.65 s — the middle keyframe — in the run and in the GUI's keyframe path."""
    w2c = orbit(3).w2c.double()
    gl = opencv_to_opengl(w2c).reshape(3, 16).tolist()
    data = {"render_height": 48, "render_width": 64, "fps": 25.0, "seconds": 1.3, "default_transition_sec": 0.65,
            "smoothness_value": 0.0, "is_cycle": False,
            "keyframes": [{"matrix": m, "fov": 50.0, "aspect": 4 / 3, "override_transition_enabled": False,
                           "override_transition_sec": None} for m in gl],
            "camera_path": [{"camera_to_world": gl[0], "fov": 50.0, "aspect": 4 / 3}] * 32}  # fmt: skip
    assert camera_dict_fps(data) == pytest.approx(32 / 1.3)
    path = read_keyframe_path(data)
    assert path.times.tolist() == pytest.approx([0.0, 0.65, 1.3]) and (path.num_frames, path.fps) == (32, pytest.approx(32 / 1.3))
    frames = path.cameras(make_intrinsics(60.0, 60.0, 32.0, 24.0), 48, 64)
    assert torch.allclose(frames.w2c[16].double(), w2c[1], atol=1e-6)
    # Without "seconds" (not nerfstudio's, which needs it) the file's "fps" is the rate.
    assert camera_dict_fps({k: v for k, v in data.items() if k != "seconds"}) == 25.0
    assert camera_dict_fps({k: v for k, v in data.items() if k != "fps"}) == pytest.approx(32 / 1.3)


@pytest.mark.parametrize(
    ("change", "match"),
    [({"fps": 12}, r"'fps' 12 × 'seconds' 0\.541667 is 6\.5 frames, but 'camera_path' has 13 \(ns-render plays them at 24 fps\): "
                   r"set 'seconds' to 1\.08333 \(entries / fps\) or 'fps' to 24$"),
     ({"seconds": 0}, r"'seconds' 0 must be the camera_path's duration in seconds > 0: ns-render plays its 13 entries over it; fix it$"),
     ({"seconds": "5 s"}, r"'seconds' must be the camera_path's duration in seconds, got '5 s'"),
     ({"camera_type": "fisheye"}, r"'camera_type' 'fisheye' is not supported: .* export the path with camera type 'perspective'$"),
     ({"camera_path": [{"fov": 50}]}, r"camera_path\[0\] needs 'camera_to_world', 16 numbers \(OpenGL camera-to-world, row-major\)$"),
     ({"camera_path": [{"camera_to_world": np.eye(4).ravel().tolist()}]}, r"camera_path\[0\] has no 'fov': give its vertical field of view in degrees, between 0\.01 and 179 \(nerfstudio requires one\)$"),
     ({"camera_path": [{"camera_to_world": np.eye(4).ravel().tolist(), "fov": 179.5}]}, r"camera_path\[0\] 'fov' 179\.5 is not a vertical")],
)  # fmt: skip
def test_bad_nerfstudio_paths_are_one_line_errors_naming_file_field_and_fix(tmp_path, change, match):
    """13 entries over 13/24 s play at 24 fps: an "fps" of 12 says 6.5 frames, a hand edit that
    ns-render (which reads only seconds) and the viewer would disagree on."""
    data = {**cameras_to_nerfstudio_path(Cameras(torch.eye(4).expand(13, 4, 4), make_intrinsics(60.0, 60.0, 32.0, 24.0), 48, 64)), **change}
    if "camera_path" in change:
        data.pop("seconds")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    with pytest.raises(Gen3cInputError, match=r"^camera file '.*p\.json'.*" + match) as info:
        read_camera_file(path)
    assert "\n" not in str(info.value)


def test_legacy_and_blender_keyframes_leave_the_camera_path_as_the_path():
    """nerfstudio's legacy viewer and its Blender add-on write a keyframe's "matrix" as text
    (three.js / Blender column-major) and time it in "properties": not the viewer's keyframes,
    so the file's camera_path (row-major there too) is its path, also for the GUI."""
    cams = orbit(3)
    data = cameras_to_nerfstudio_path(cams, fps=24)
    columns = opencv_to_opengl(cams.w2c.double()).transpose(-1, -2).reshape(3, 16).tolist()
    data["keyframes"] = [{"matrix": str(m), "fov": 50.0, "aspect": 1, "properties": f'[["FOV",50],["NAME","Camera {i}"],["TIME",{i / 24}]]'}
                         for i, m in enumerate(columns)]  # fmt: skip
    assert read_keyframe_path(data) is None
    assert torch.allclose(cameras_from_dict(data).w2c, cams.w2c, atol=1e-6)


def test_keyframes_and_the_cameras_written_beside_them_must_agree():
    """A camera_path.json whose camera_path is not its keyframes' is refused when read back, so
    it is not written: the frame count, the rate and every pose must be the keyframes'."""
    path, cams = keyframed()
    with pytest.raises(Gen3cInputError, match=r"^the keyframes are sampled at 13 frames at 6 fps, the cameras are 13 at 12 fps: "):
        cameras_to_nerfstudio_path(cams, 12.0, path)
    with pytest.raises(Gen3cInputError, match=r"the keyframes are sampled at 13 frames at 6 fps, the cameras are 12 at 6 fps"):
        cameras_to_nerfstudio_path(cams[:12], 6.0, path)
    moved = Cameras(cams.w2c.clone(), cams.K, cams.height, cams.width)
    moved.w2c[4, 0, 3] += 0.5
    with pytest.raises(Gen3cInputError, match=r"^the cameras do not follow the keyframes \(frame 4 is 0\.5 away, turned 0\.0°\)"):
        cameras_to_nerfstudio_path(moved, 6.0, path)


@pytest.mark.parametrize(
    "content, match",
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"width": 64, "height": 48, "frames": []}', "non-empty"),
        ('{"width": 64, "height": 48, "frames": [{"w2c": [[1, 0], [0, 1]], "K": [[1,0,0],[0,1,0],[0,0,1]]}]}', "4×4"),
        ('{"width": 64, "height": 48, "frames": [{"K": [[1,0,0],[0,1,0],[0,0,1]]}]}', "neither"),
        ('{"width": -1, "height": 48, "frames": [{"w2c": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}', "'width' -1 is not an image size"),
        ('{"width": 64, "height": 48, "frames": [{"w2c": [[2,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]], "intrinsics": [1,1,0,0]}]}', "rigid"),
        ('{"width": 64, "height": 48, "frames": [{"w2c": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]], "intrinsics": [0,1,0,0]}]}', "focal"),
        ('{"camera_path": [{"camera_to_world": [1,0,0,0], "fov": 50}], "render_height": 48, "render_width": 64}', "4×4"),
        ('{"camera_path": [{"camera_to_world": [1,0,0,0,0,1,0,0,0,0,1,0,0,0,0,1], "fov": 500}], "render_height": 48, "render_width": 64}', "fov"),
        ('{"something": 1}', "neither"),
    ],
)
def test_camera_file_errors(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(Gen3cInputError, match=match) as info:
        load_camera_file(path)
    assert "bad.json" in str(info.value) and "\n" not in str(info.value)


def test_fit_cameras_rescales_and_checks_count():
    cams = orbit(4, 48, 64)
    fitted = fit_cameras(cams, 4, 96, 128)
    assert fitted.K[0, 0, 0].item() == pytest.approx(120.0)
    with pytest.raises(Gen3cInputError, match="4 cameras but 5"):
        fit_cameras(cams, 5, 48, 64)


def test_fit_cameras_and_cameras_from_dict_take_numpy_numbers_and_refuse_what_is_no_count():
    """fit_cameras(cams, "4", …) said "camera file has 4 cameras but 4 frames were asked for",
    fit_cameras(None, …) was "object of type 'NoneType' has no len()"; cameras_from_dict of a dict
    built in Python refused a numpy height ("'height' must be a whole number of pixels, got
    np.int64(48)") while it took numpy matrices. The count and the cameras are checked in one line
    now, and a numpy size is its number."""
    cams = orbit(4, 48, 64)
    for count in ("4", None, 0):
        with pytest.raises(Gen3cInputError, match=rf"^fit_cameras num_frames {re.escape(repr(count))} must be a whole number of frames ≥ 1$"):
            fit_cameras(cams, count, 48, 64)
    with pytest.raises(Gen3cInputError, match=r"^cameras is NoneType 'None': pass gen3c\.cameras\.Cameras"):
        fit_cameras(None, 4, 48, 64)
    assert len(fit_cameras(cams, np.int64(4), 48, 64)) == 4
    from gen3c.io.camera_files import cameras_to_dict

    data = {**cameras_to_dict(cams), "height": np.int64(48), "width": np.int64(64)}
    assert torch.equal(cameras_from_dict(data).w2c, cams.w2c)
    with pytest.raises(Gen3cInputError, match=r"'height' 48\.5 is not a whole number of pixels"):
        cameras_from_dict({**data, "height": np.float32(48.5)})


def test_depth_formats_round_trip(tmp_path):
    OpenEXR = pytest.importorskip("OpenEXR")  # gen3c[exr]

    depth = (1.0 + np.random.default_rng(0).random((20, 30))).astype(np.float32)
    np.save(tmp_path / "d.npy", depth)
    np.savez(tmp_path / "d.npz", depth=depth, other=np.zeros(3))
    np.savez(tmp_path / "single.npz", anything=depth)
    Image.fromarray((depth * 1000).astype(np.uint16)).save(tmp_path / "d.png")
    OpenEXR.File({"type": OpenEXR.scanlineimage}, {"Z": depth}).write(str(tmp_path / "d.exr"))
    for name, atol in (("d.npy", 0), ("d.npz", 0), ("single.npz", 0), ("d.png", 1e-3), ("d.exr", 1e-6)):
        loaded = load_depth(tmp_path / name)
        assert loaded.shape == (20, 30)
        assert np.allclose(loaded.numpy(), depth, atol=atol), name


def test_exr_depth_channel_is_found_by_name_beside_colour_layers(tmp_path):
    """Blender's multi-layer EXR holds "ViewLayer.Combined" (R, G, B, A) and "ViewLayer.Depth.Z";
    the colour's red used to be read as the depth."""
    OpenEXR = pytest.importorskip("OpenEXR")
    depth, colour = np.full((6, 8), 2.5, np.float32), np.full((6, 8), 0.3, np.float32)
    layers = {f"ViewLayer.Combined.{c}": colour for c in "RGBA"} | {"ViewLayer.Depth.Z": depth}
    OpenEXR.File({"type": OpenEXR.scanlineimage}, layers).write(str(tmp_path / "blender.exr"))
    assert (load_depth(tmp_path / "blender.exr") == 2.5).all()
    OpenEXR.File({"type": OpenEXR.scanlineimage}, {c: colour for c in "RGBA"} | {"Z": depth}).write(str(tmp_path / "rgbaz.exr"))
    assert (load_depth(tmp_path / "rgbaz.exr") == 2.5).all()
    # Before: without a depth pass, the Z of the normal or mist pass was read as depth, silently.
    for other in ("Normal", "Mist"):
        layers = {f"ViewLayer.Combined.{c}": colour for c in "RGBA"} | {f"ViewLayer.{other}.Z": colour}
        OpenEXR.File({"type": OpenEXR.scanlineimage}, layers).write(str(tmp_path / "no_depth.exr"))
        with pytest.raises(Gen3cInputError, match=rf"no_depth\.exr' has no depth channel \(it has ViewLayer\.Combined, ViewLayer\.{other}\.Z\): write the depth into channel Z \(Blender: enable the Z pass"):
            load_depth(tmp_path / "no_depth.exr")


def test_depth_png_is_read_upright_like_its_photo(tmp_path):
    """A 16-bit depth PNG stored sideways with EXIF Orientation 6, like the phone photo it
    belongs to: both are turned upright, so they still fit each other."""
    raw = np.arange(10 * 12, dtype=np.uint16).reshape(10, 12) + 1000  # stored 10×12, shown 12×10
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(raw).save(tmp_path / "d.png", exif=exif.tobytes())
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "photo.png", exif=exif.tobytes())
    depth = load_depth(tmp_path / "d.png", 1.0)
    assert depth.shape == load_image(tmp_path / "photo.png").shape[-2:] == (12, 10)
    assert np.array_equal(depth.numpy(), np.rot90(raw, -1).astype(np.float32))  # Orientation 6 = 90° clockwise
    with pytest.raises(Gen3cInputError, match="turned by 90°: photos are read upright"):
        conform_depth(torch.ones(10, 12), (12, 10))


def test_a_depth_npz_refused_as_damaged_leaves_no_file_open(tmp_path):
    """An .npz depth file that is no readable zip (cut short, or garbage after a zip's first bytes)
    was refused with the file left open: numpy's np.load, which opened it, left it in the refusal's
    traceback, closed only with the refusal (where that is in a reference cycle, by the collector,
    with a ResourceWarning "unclosed file …" in whatever runs then). gen3c opens the file itself
    now, and closes it as it refuses it."""
    for name, data in (("garbage.npz", b"PK\x03\x04garbage"), ("cut.npz", None)):
        if data is None:  # a real archive cut short: its central directory is gone
            np.savez(tmp_path / "whole.npz", depth=np.ones((4, 5), np.float32))
            data = (tmp_path / "whole.npz").read_bytes()[:-30]
        (tmp_path / name).write_bytes(data)
        with pytest.raises(Gen3cInputError, match=rf"^depth file '.*{name}' is corrupt or truncated \(File is not a zip file\): re-export it$") as err:
            load_depth(tmp_path / name)
        assert open_here(tmp_path / name) == 0, name  # with the refusal still held (a caller that keeps it to show it)
        del err


def test_depth_errors(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(Gen3cInputError, match="never unpickled"):
        load_depth(tmp_path / "obj.npy")
    np.save(tmp_path / "3d.npy", np.ones((2, 3, 4), np.float32))
    with pytest.raises(Gen3cInputError, match="2-D"):
        load_depth(tmp_path / "3d.npy")
    (tmp_path / "trunc.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(Gen3cInputError, match="corrupt"):
        load_depth(tmp_path / "trunc.npz")
    with pytest.raises(Gen3cInputError, match="unsupported"):
        (tmp_path / "d.txt").write_text("1 2 3")
        load_depth(tmp_path / "d.txt")
    with pytest.raises(Gen3cInputError, match="does not exist"):
        load_depth(tmp_path / "missing.npy")


def test_conform_depth():
    d = torch.ones(10, 20)
    with pytest.warns(UserWarning, match=r"^depth is 10×20 but the image is 20×40: resizing the depth \(nearest\)$"):
        out, valid = conform_depth(d * 2, (20, 40))  # same aspect → resized, with a note
    assert out.shape == (20, 40) and valid.all() and (out == 2).all()
    with pytest.raises(Gen3cInputError, match="aspect"):
        conform_depth(d, (20, 20))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # clean depth: no note
        conform_depth(d, (10, 20))


@pytest.mark.parametrize(
    ("depth", "refusal"),
    [
        (None, r"depth is NoneType 'None': pass a tensor of z-depth$"),
        (np.ones((4, 6)), r"depth is a numpy array of shape \(4, 6\): pass a tensor of z-depth \(gen3c\.io\.depth\.depth_map\(array, 'depth'\) takes"),
        (torch.ones(4, 6, device="meta"), r"depth is a meta tensor, which holds no values"),
        (torch.ones(4, 6, dtype=torch.complex64), r"depth holds complex64 values: pass real numbers"),
        (torch.ones(4, 6, dtype=torch.bool), r"depth holds bool values: depth must be numbers \(a mask goes in as mask=\)$"),
    ],
)
def test_the_depth_helpers_refuse_what_is_no_depth_tensor_naming_it(depth, refusal):
    """median_scene_depth, fill_invalid_depth and conform_depth (public in gen3c.io.depth) took
    only tensors, and anything else was Python's or torch's error from inside: a numpy array or
    None "'numpy.ndarray' object has no attribute 'numel'", a meta tensor "Tensor.item() cannot be
    called on meta tensors", a 1-D one given to fill_invalid_depth torch's dimension error; a bool mask passed as depth was
    depths of 0 and 1. Each is one line naming the depth now; a (1, H, W) map given to
    conform_depth, which takes one (H, W) map, was "too many values to unpack"."""
    from gen3c.io.depth import fill_invalid_depth, median_scene_depth

    for call in (median_scene_depth, fill_invalid_depth, lambda d: conform_depth(d, (4, 6))):
        with pytest.raises(Gen3cInputError, match=f"^{refusal}"):
            call(depth)
    with pytest.raises(Gen3cInputError, match=r"^depth has shape \(1, 4, 6\): pass one \(H, W\) depth map \(depth_map\(depth, 'depth'\) squeezes"):
        conform_depth(torch.ones(1, 4, 6), (4, 6))
    with pytest.raises(Gen3cInputError, match=r"^depth has shape \(6,\): pass \(H, W\) or \(T, H, W\) z-depth$"):
        fill_invalid_depth(torch.ones(6))
    assert median_scene_depth(torch.full((4, 6), 2.0)) == 2.0


@pytest.mark.parametrize(
    ("call", "refusal"),
    [
        (lambda: resize_image(None, (6, 8)), r"resize_image image is NoneType 'None': pass a \(\*B, C, H, W\) tensor$"),
        (lambda: resize_image(np.zeros((3, 12, 16), np.float32), (6, 8)), r"resize_image image is a numpy array of shape \(3, 12, 16\): pass"),
        (lambda: resize_nearest(torch.zeros(3, 0, 16), (6, 8)), r"resize_nearest labels has shape \(3, 0, 16\): an image of no pixels has nothing to resize$"),
        (lambda: resize_image(torch.zeros(3, 12, 16), None), r"resize_image size None must be the image's \(height, width\), two whole numbers of pixels ≥ 1$"),
        (lambda: resize_image(torch.zeros(3, 12, 16), 6), r"resize_image size 6 must be"),
        (lambda: resize_nearest(torch.zeros(12, 16), (6.5, 8)), r"resize_nearest size \(6\.5, 8\) must be"),
        (lambda: resize_nearest(torch.zeros(12, 16), (0, 8)), r"resize_nearest size \(0, 8\) must be"),
        (lambda: resize_nearest(torch.zeros(12, 16), "6,8"), r"resize_nearest size '6,8' must be"),
    ],
)
def test_resize_refuses_what_it_cannot_resize_naming_it(call, refusal):
    """resize_image and resize_nearest (gen3c.io.images) checked nothing: None was "'NoneType'
    object has no attribute 'ndim'", a numpy image "'numpy.ndarray' object has no attribute
    'float'", a size of None, 6, (6.5, 8) or (0, 8) Python's or torch's interpolate errors, an
    image of no pixels torch's "Input and output sizes should be greater than 0"."""
    with pytest.raises(Gen3cInputError, match=f"^{refusal}"):
        call()
    # Sizes as numpy integers or a tensor of two still resize.
    assert resize_image(torch.zeros(3, 12, 16), (np.int64(6), 8)).shape == resize_nearest(torch.zeros(3, 12, 16), torch.tensor([6, 8])).shape == (3, 6, 8)


def test_an_image_of_no_pixels_or_no_values_is_refused_by_every_image_reader_in_memory(tmp_path):
    """image_to_uint8 refused an image of no pixels, but image_to_tensor's float path was torch's
    "min(): Expected reduction dim to be specified", as_image handed a (3, 0, W) image on (to fail
    in save_image's reshape), and to_uint8 of one failed its own reshape; a meta tensor was torch's
    "Cannot copy out of meta tensor" (image_to_uint8) or "Tensor.item() cannot be called on meta
    tensors" (image_to_tensor). Each refuses in the one line image_to_uint8 uses now, nothing is
    written, and to_uint8, which takes a batch of any size, gives an empty array for no pixels."""
    from gen3c.io.images import as_image, image_to_tensor, image_to_uint8

    empty = torch.zeros(3, 0, 16)
    for call, name in ((as_image, "image"), (image_to_tensor, "image"), (image_to_uint8, "image"), (lambda x: save_image(tmp_path / "e.png", x), "save_image image")):
        with pytest.raises(Gen3cInputError, match=rf"^{name} is empty \(16×0 pixels\): pass an image with pixels$"):
            call(empty)
        with pytest.raises(Gen3cInputError, match=rf"^{name} is a meta tensor, which holds no values"):
            call(torch.zeros(3, 4, 6, device="meta"))
    assert list(tmp_path.iterdir()) == []
    assert to_uint8(empty).shape == (0, 16, 3) and to_uint8(torch.zeros(0, 3, 4, 6)).shape == (0, 4, 6, 3)


def test_read_video_refuses_a_frame_range_that_is_none_without_blaming_the_video(tmp_path):
    """read_video(path, start=-1) or max_frames=1.5 reached itertools.islice, whose ValueError was
    caught as the decoder's: "video '…' cannot be decoded (Indices for islice() must be None or an
    integer …): re-encode it as H.264 mp4", blaming a good video; start=None was Python's "'<='
    not supported"; max_frames=0 said the video "has no frames from index 0". Each is one line
    naming the argument now, before the video is opened."""
    from gen3c.io.video import iter_video_frames

    path = write_video(tmp_path / "v.mp4", np.zeros((3, 16, 16, 3), np.uint8))
    for kwargs, refusal in (({"start": -1}, "start -1 must be a whole number of frames ≥ 0"), ({"start": None}, "start None must be"),
                            ({"max_frames": 1.5}, "max_frames 1.5 must be a whole number of frames ≥ 1"), ({"max_frames": 0}, "max_frames 0 must be"),
                            ({"max_frames": "2"}, "max_frames '2' must be")):  # fmt: skip
        with pytest.raises(Gen3cInputError, match=rf"^read_video {re.escape(refusal)}"):
            read_video(path, **kwargs)
    with pytest.raises(Gen3cInputError, match=r"^iter_video_frames count -2 must be a whole number of frames ≥ 0$"):
        next(iter_video_frames(path, count=-2))
    assert read_video(path, start=np.int64(1), max_frames=np.int64(1))[0].shape == (1, 16, 16, 3)
    assert list(iter_video_frames(path, count=0)) == []


def test_invalid_depth_sits_far_away_as_in_gen3c_unless_masked():
    bad = torch.ones(10, 20)
    bad[0, 0], bad[0, 1], bad[1, 1], bad[2, 2] = float("nan"), float("inf"), -1.0, float("-inf")
    # NaN/+inf: GEN3C's far depth (its cache clamps it to 100); ≤ 0 and −inf: no point. One note says so.
    with pytest.warns(UserWarning, match=r"^depth file 'x.npy': 2 pixels \(1%\) of NaN/inf depth sit far away.*; 2 pixels \(1%\) of ≤ 0 depth are left out of the cache$"):
        out, valid = conform_depth(bad, (10, 20), "depth file 'x.npy'")
    assert out[0, 0] == out[0, 1] == FAR_DEPTH and valid[0, 0] and valid[0, 1]
    assert out[1, 1] == out[2, 2] == 0 and not valid[1, 1] and not valid[2, 2] and valid.sum() == 198
    assert scene_depths(out, valid).tolist() == [1.0] * 196  # the far fill does not count for the scene's scale
    with pytest.warns(UserWarning, match=r"4 pixels \(2%\) of NaN/inf/≤ 0 depth are left out"):
        out, valid = conform_depth(bad, (10, 20), mask_invalid=True)
    assert out[0, 0] == 0 and valid.sum() == 196 and torch.isfinite(out).all()
    for fill in (float("nan"), float("inf"), 0.0, -2.0):  # nothing valid at all: still refused
        for mask_invalid in (False, True):
            with pytest.raises(Gen3cInputError, match=r"has no valid pixel \(all NaN/inf/≤ 0[;)]"):
                conform_depth(torch.full((10, 20), fill), (10, 20), mask_invalid=mask_invalid)
    # Negative depth everywhere (an OpenGL or Blender camera's −z) is named as such, with the fix.
    flipped = -torch.linspace(1, 4, 200).reshape(10, 20)
    flipped[5, 5] = float("nan")
    with pytest.raises(Gen3cInputError, match=r"no valid pixel \(all NaN/inf/≤ 0; its depth spans \[-4, -1\]\): negative z-depth is an OpenGL or Blender camera's, which looks down −z; negate it"):
        conform_depth(flipped, (10, 20))


def test_far_depth_renders_as_a_backdrop_and_masking_leaves_holes():
    """Why NaN/inf sit far away by default: the sky stays in the picture when the camera moves."""
    from gen3c.cache import CACHE_MAX_DEPTH, Cache3D
    from gen3c.cameras import intrinsics_from_fov

    H, W = 32, 48
    image = torch.zeros(3, H, W)
    image[2, :12] = 0.8  # blue sky above
    depth = torch.full((H, W), 3.0)
    depth[:12] = float("inf")
    K = intrinsics_from_fov(60.0, H, W)
    moved = Cameras(torch.eye(4)[None].clone(), K[None], H, W)
    moved.w2c[0, 0, 3] = -0.3  # the camera steps right
    sky_rows = {}
    for mask_invalid in (False, True):
        with pytest.warns(UserWarning):
            d, valid = conform_depth(depth, (H, W), mask_invalid=mask_invalid)
        cache = Cache3D(filter_points_threshold=0.05)
        cache.add_view(image, d, K, torch.eye(4), valid)
        points, _ = cache.point_cloud()
        out = cache.render(moved, depth=False)
        sky_rows[mask_invalid] = float(out.masks[0, 0, 0, 1:10].mean())
        if not mask_invalid:
            assert float(points[:, 2].max()) == pytest.approx(CACHE_MAX_DEPTH)  # the sky, clamped by the cache
            assert float(out.colors[0, 0, 2, 1:10, 4:-4].mean()) == pytest.approx(0.8, abs=0.02)  # sky colour, not a hole
    assert sky_rows[False] > 0.95 and sky_rows[True] == 0.0


def test_image_loading_and_errors(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:8, :, 3] = 255  # top half opaque red, bottom transparent → white
    Image.fromarray(rgba).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.shape == (3, 16, 16)
    assert torch.allclose(img[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    assert torch.allclose(img[:, 15, 0], torch.ones(3))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "text.jpg").write_text("hello")
    Image.new("1", (12000, 12000)).save(tmp_path / "bomb.png")  # 144 MP, a few KB on disk
    cases = {"empty.png": "empty", "junk.png": "corrupt|not a readable", "text.jpg": "not a readable", "bomb.png": "MP|decompression bomb", "missing.png": "does not exist"}
    for name, match in cases.items():
        with pytest.raises(Gen3cInputError, match=match):
            load_image(tmp_path / name)
    with pytest.raises(Gen3cInputError, match="folder"):
        load_image(tmp_path)


def test_an_image_within_the_100_mp_limit_loads_past_pils_lower_warning(tmp_path, monkeypatch):
    """PIL warns of a decompression bomb from 89 MP, below gen3c's 100 MP limit: an image of
    90–100 MP was refused as "claims an absurd size (decompression bomb)". PIL's thresholds are
    lowered here so that the images stay small; one over twice PIL's is refused naming our limit."""
    import struct
    import zlib

    Image.new("RGB", (16, 16), (255, 0, 0)).save(tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # 256 pixels: PIL warns, not over twice its limit
    assert torch.equal(load_image(tmp_path / "a.png")[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    monkeypatch.undo()
    # a PNG header claiming 20000×20000 (400 MP, over twice PIL's 89 MP) over 8×8 pixels of data
    data = bytearray((tmp_path / "a.png").read_bytes())
    data[16:24] = struct.pack(">II", 20000, 20000)  # the IHDR chunk's width and height, then its CRC
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    (tmp_path / "huge.png").write_bytes(bytes(data))
    with pytest.raises(Gen3cInputError, match=r"^input image '.*huge\.png' claims 400 MP, above the 100 MP limit \(or a decompression bomb\): downscale it first$"):
        load_image(tmp_path / "huge.png")
    Image.new("1", (12000, 9000)).save(tmp_path / "big.png")  # 108 MP: between PIL's limits, refused by ours from its size
    with pytest.raises(Gen3cInputError, match=r"^input image '.*big\.png' is 12000×9000 = 108 MP, above the 100 MP limit: downscale it first$"):
        load_image(tmp_path / "big.png")


#: How load_image refuses an AVIF it cannot decode: as damaged where this Pillow reads AVIF.
AVIF_UNREAD = (
    r"is an AVIF image that cannot be decoded \(corrupt or truncated\)"
    if "avif" in features.modules and features.check_module("avif")
    else r"is not a readable image \(an AVIF image\): use PNG, JPEG, WebP, BMP or TIFF$"
)


def test_a_heic_photo_is_named_as_one_with_how_to_convert_it(tmp_path, monkeypatch):
    """An iPhone photo (.heic) is an ISO-media file like an MP4: it was refused as "not a readable
    image (an MP4/MOV video): … (a video goes in as its GEN3C sample directory …)". Without
    pillow-heif its refusal names the extra; with it, a damaged one is named as damaged."""
    import sys

    from gen3c.io import images

    box = b"\x00\x00\x00\x18ftyp%s\x00\x00\x00\x00mif1%s"
    (tmp_path / "photo.heic").write_bytes(box % (b"heic", b"heic") + bytes(64))
    monkeypatch.setattr(images, "_heif_registered", False)
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # not installed
    with pytest.raises(Gen3cInputError, match=r"^reading input image '.*photo\.heic', a HEIC/HEIF photo \(or convert it to JPEG\) needs "
                                              r"pillow-heif .*: pip install 'gen3c\[heic\]'$"):  # fmt: skip
        load_image(tmp_path / "photo.heic")
    monkeypatch.delitem(sys.modules, "pillow_heif")
    pytest.importorskip("pillow_heif")
    with pytest.raises(Gen3cInputError, match=r"^input image '.*photo\.heic' is a HEIC/HEIF image that cannot be decoded \(corrupt or truncated\)"):
        load_image(tmp_path / "photo.heic")
    (tmp_path / "cut.avif").write_bytes(box % (b"avif", b"avif") + bytes(64))
    with pytest.raises(Gen3cInputError, match=rf"^input image '.*cut\.avif' {AVIF_UNREAD}"):
        load_image(tmp_path / "cut.avif")
    (tmp_path / "clip.mp4").write_bytes(box % (b"isom", b"mp41") + bytes(64))
    with pytest.raises(Gen3cInputError, match=r"\(an MP4/MOV video\)"):
        load_image(tmp_path / "clip.mp4")



def test_an_avif_whose_major_brand_is_mif1_is_named_avif(tmp_path, monkeypatch):
    """libheif (and others) write AVIF files with the generic HEIF major brand ``mif1`` and ``avif``
    among the compatible brands: such a file was named "a HEIC/HEIF image", and load_image asked for
    pillow-heif (which reads no AVIF) or called it a damaged HEIC. The compatible brands within the
    ftyp box's length tell it."""
    import sys

    from gen3c.io import images
    from gen3c.io.formats import describe_head

    def ftyp(major: bytes, *compatible: bytes, size: int | None = None) -> bytes:
        body = b"ftyp" + major + bytes(4) + b"".join(compatible)
        return (size or len(body) + 4).to_bytes(4, "big") + body

    assert describe_head(ftyp(b"mif1", b"mif1", b"miaf", b"avif", b"MA1B")) == "an AVIF image"
    assert describe_head(ftyp(b"msf1", b"msf1", b"avis")) == "an AVIF image"  # an AVIF image sequence
    assert describe_head(ftyp(b"avif", b"mif1", b"miaf")) == "an AVIF image"
    assert describe_head(ftyp(b"mif1", b"mif1", b"heic")) == "a HEIC/HEIF image"
    assert describe_head(ftyp(b"mif1", b"mif1", b"miaf")) == "a HEIC/HEIF image"
    assert describe_head(ftyp(b"mif1", b"mif1", size=20) + b"avif") == "a HEIC/HEIF image"  # past the box: another box's bytes
    assert describe_head(ftyp(b"isom", b"isom", b"avif")) == "an MP4/MOV video"  # a video's major brand decides
    (tmp_path / "photo.avif").write_bytes(ftyp(b"mif1", b"mif1", b"miaf", b"avif") + bytes(64))
    monkeypatch.setattr(images, "_heif_registered", False)
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # not installed: it was asked for
    with pytest.raises(Gen3cInputError, match=rf"^input image '.*photo\.avif' {AVIF_UNREAD}"):
        load_image(tmp_path / "photo.avif")


def test_a_damaged_avif_is_named_damaged_where_pillow_reads_avif(tmp_path):
    """Pillow (11.2 on, built with libavif) decodes AVIF itself: an AVIF cut short was refused as
    "not a readable image (an AVIF image): use PNG, JPEG, WebP, BMP or TIFF", as if no AVIF could be read."""
    from gen3c.io.images import _pil_reads_avif

    if not _pil_reads_avif():
        pytest.skip("this Pillow reads no AVIF")
    Image.fromarray(np.full((16, 24, 3), 90, np.uint8)).save(tmp_path / "whole.avif")
    assert load_image(tmp_path / "whole.avif").shape == (3, 16, 24)
    data = (tmp_path / "whole.avif").read_bytes()
    (tmp_path / "cut.avif").write_bytes(data[: len(data) // 2])
    with pytest.raises(Gen3cInputError, match=r"^input image '.*cut\.avif' is an AVIF image that cannot be decoded \(corrupt or truncated\): re-export"):
        load_image(tmp_path / "cut.avif")


def test_a_text_file_cut_inside_a_character_by_its_head_is_still_text(tmp_path):
    """describe_head reads a file's first bytes: a JSON or text file whose non-ASCII character
    (é, 日) straddles their end was "of an unknown binary format" (a JSON depth map given as .npz
    was refused as binary, not as JSON); bytes no UTF-8 text holds stay binary."""
    from gen3c.io.formats import describe_head, require_numpy_file

    text = '{"note": "café 日本 · ünïcödé depth in metres, made by hand", "depth": [[1.5, 2.0]]}'.encode()
    assert {describe_head(text[:n]) for n in range(1, 64)} == {"JSON text"}
    cut = text.index("é".encode())
    (tmp_path / "depth.npz").write_bytes(b" " * (63 - cut) + text)  # its é across the 64 bytes file_head reads
    with pytest.raises(Gen3cInputError, match=r"is JSON text, not a NumPy \.npz file"):
        require_numpy_file(tmp_path / "depth.npz", "depth file")
    assert describe_head(b"\x00\xfe\xff\x01garbage") == "of an unknown binary format"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_a_text_file_with_a_byte_order_mark_is_text_by_its_head(tmp_path, encoding):
    """A JSON saved by PowerShell 5's `>` (UTF-16) given as a depth .npz was "of an unknown binary
    format", one saved by Notepad (UTF-8 with its mark) "text", not JSON text."""
    from gen3c.io.formats import describe_head, require_numpy_file

    text = '{"depth": [[1.5, 2.0]]}\r\n'
    (tmp_path / "depth.npz").write_bytes((b"\xfe\xff" if encoding == "utf-16-be" else b"") + text.encode(encoding))
    with pytest.raises(Gen3cInputError, match=r"is JSON text, not a NumPy \.npz file"):
        require_numpy_file(tmp_path / "depth.npz", "depth file")
    assert describe_head("# K\n500 510 320 240\n".encode(encoding)[:9]) == "text"  # (cut inside a character)


def test_an_animation_is_read_as_its_first_frame_with_a_note(tmp_path):
    """An animated GIF or WebP, a multi-page TIFF: the first frame, and a note that says so (before:
    silently, so a clip passed as a GIF ran as a still photo)."""
    from gen3c.errors import collect_notes

    red, green, blue = (Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255)))
    for name in ("clip.gif", "clip.webp", "pages.tif"):
        red.save(tmp_path / name, save_all=True, append_images=[green, blue], lossless=True)
        with collect_notes() as notes:
            image = load_image(tmp_path / name)
        assert torch.equal(image[:, 0, 0], torch.tensor([1.0, -1.0, -1.0])), name
        assert len(notes) == 1 and re.fullmatch(rf"input image '.*{re.escape(name)}' holds 3 frames \(an animation or a multi-page file\): gen3c uses the first, as a still image", notes[0]), notes
    red.save(tmp_path / "still.gif")
    with collect_notes() as notes:
        load_image(tmp_path / "still.gif")
    assert notes == []
    # a TIFF whose second page lacks its width (PIL: TypeError "Missing dimensions" as it counts pages)
    data = bytearray((tmp_path / "pages.tif").read_bytes())
    first = int.from_bytes(data[4:8], "little")
    second = int.from_bytes(data[first + 2 + 12 * int.from_bytes(data[first : first + 2], "little") :][:4], "little")
    entries = [second + 2 + 12 * i for i in range(int.from_bytes(data[second : second + 2], "little"))]
    width = next(at for at in entries if int.from_bytes(data[at : at + 2], "little") == 256)
    data[width : width + 2] = (65000).to_bytes(2, "little")  # a tag no reader knows
    (tmp_path / "bad_page.tif").write_bytes(bytes(data))
    with collect_notes() as notes:
        assert torch.equal(load_image(tmp_path / "bad_page.tif")[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    assert len(notes) == 1 and "holds several frames" in notes[0], notes


def test_pillows_warnings_on_a_damaged_image_name_the_image(tmp_path):
    """Pillow reads past some damage with a warning of its own ("Tag data larger than file. Skipping
    tag 278"), which the command line showed as a note naming no file; now one note names the input."""
    from gen3c.errors import collect_notes

    Image.new("RGB", (16, 16), (255, 0, 0)).save(tmp_path / "a.tif")
    data = bytearray((tmp_path / "a.tif").read_bytes())
    ifd = int.from_bytes(data[4:8], "little")
    entries = [ifd + 2 + 12 * i for i in range(int.from_bytes(data[ifd : ifd + 2], "little"))]
    rows = next(at for at in entries if int.from_bytes(data[at : at + 2], "little") == 278)  # RowsPerStrip
    data[rows + 4 : rows + 8] = (100_000).to_bytes(4, "little")  # its count: data far beyond the file's end
    (tmp_path / "damaged.tif").write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing else warned
        with collect_notes() as notes:
            image = load_image(tmp_path / "damaged.tif")
    assert torch.equal(image[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    assert len(notes) == 1 and re.fullmatch(
        # (Pillow's own words vary: 13.0 "Tag data larger than file. Skipping tag 278", 12.3 "Truncated File Read")
        r"input image '.*damaged\.tif' may be damaged \(Pillow, reading it: [^\n]+\): re-export it if it looks wrong", notes[0]
    ), notes


def test_a_photo_with_a_damaged_exif_block_is_still_read_upright(tmp_path):
    """An EXIF tag of the wrong type (PlanarConfiguration as text, from a damaged file): PIL turns the
    image but cannot write that EXIF back, and load_image (and a PIL image in memory) escaped with
    a raw struct.error. Now the photo is turned by its orientation tag alone."""
    from gen3c.io.images import image_to_uint8

    pixels = np.random.default_rng(0).integers(0, 255, (24, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "Maker"  # Orientation 6 (turn 90° clockwise to view), Make
    Image.fromarray(pixels).save(tmp_path / "ok.jpg", exif=exif.tobytes(), quality=95)
    data = (tmp_path / "ok.jpg").read_bytes()
    assert data.count(b"\x01\x0f\x00\x02") == 1
    (tmp_path / "damaged.jpg").write_bytes(data.replace(b"\x01\x0f\x00\x02", b"\x01\x1c\x00\x02"))  # Make → PlanarConfiguration, still text
    upright = load_image(tmp_path / "ok.jpg")
    assert upright.shape == (3, 40, 24)
    assert torch.equal(load_image(tmp_path / "damaged.jpg"), upright)
    with Image.open(tmp_path / "damaged.jpg") as opened:
        assert image_to_uint8(opened).shape == (40, 24, 3)


def test_a_damaged_exif_block_of_an_image_in_memory_is_a_note_naming_it(tmp_path):
    """A PNG's EXIF (its eXIf chunk) is parsed only when it is asked for, turning the image upright:
    a damaged one raised Pillow's raw "Corrupt EXIF data" warning, naming no image, from an image in
    memory (from a file, load_image said it as a note naming the file). Now a note naming it too."""
    import io
    import struct
    import zlib

    from gen3c.io.images import as_image

    pixels = np.zeros((16, 16, 3), np.uint8)
    pixels[:, 8:] = 255
    Image.fromarray(pixels).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    damaged = b"MM\x00\x2a\x00\x00\x00\x08\x00\x05\x01\x12\x00\x03\xff\xff\xff\xff"  # 5 tags claimed, 1 cut short
    chunk = struct.pack(">I", len(damaged)) + b"eXIf" + damaged + struct.pack(">I", zlib.crc32(b"eXIf" + damaged))
    png = data[:33] + chunk + data[33:]  # after the IHDR chunk
    with Image.open(io.BytesIO(png)) as opened, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = as_image(opened, "gen3c.generate() image")
    assert torch.equal(image, load_image(tmp_path / "ok.png"))
    said = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(said) == 1 and re.fullmatch(
        r"gen3c\.generate\(\) image may be damaged \(Pillow, reading it: Corrupt EXIF data[^\n]*\): re-export it if it looks wrong", said[0]
    ), said


def test_real_world_photo_files_read_as_viewers_show_them(tmp_path):
    """A guard over files cameras and editors write: a CMYK JPEG (Photoshop's Adobe-marked, stored
    inverted), a progressive JPEG, a 16-bit RGBA PNG, a palette PNG with a transparent entry and a
    JPEG named .png read as their pixels (transparent ones white); a truncated JPEG is refused in
    one line (PIL's LOAD_TRUNCATED_IMAGES, which would read it with its lost part grey, stays off
    once all of gen3c is imported)."""
    import struct
    import zlib

    from PIL import ImageFile

    import gen3c.cli  # noqa: F401  (everything the CLI imports)

    yy, xx = np.mgrid[:48, :64]
    rgb = np.stack([xx * 4, yy * 5, 255 - xx * 4], -1).astype(np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    Image.fromarray(rgb).save(tmp_path / "progressive.jpg", quality=95, progressive=True)
    Image.fromarray(rgb).save(tmp_path / "jpeg.png", format="JPEG", quality=95)
    rgba = np.concatenate([rgb.astype(">u2") * 257, np.full((48, 64, 1), 65535, ">u2")], -1)
    rgba[:10, :10, 3] = 0
    rows = b"".join(b"\x00" + row.tobytes() for row in rgba)  # filter 0 on each row; PIL writes no 16-bit RGBA

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 64, 48, 16, 6, 0, 0, 0)  # 16 bits, colour type 6: RGBA
    (tmp_path / "rgba16.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    white_corner = rgb.copy()
    white_corner[:10, :10] = 255
    assert torch.equal(load_image(tmp_path / "rgba16.png"), torch.from_numpy(white_corner).permute(2, 0, 1).float() / 127.5 - 1)
    assert torch.equal(load_image(tmp_path / "cmyk.jpg"), torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1)
    for name in ("progressive.jpg", "jpeg.png"):  # within JPEG's loss
        assert float((load_image(tmp_path / name) - torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 + 1).abs().max()) < 8 / 127.5, name
    palette = Image.fromarray(rgb).quantize(16)
    palette.save(tmp_path / "palette.png", transparency=0)
    image = load_image(tmp_path / "palette.png")
    index = np.asarray(palette)
    colours = np.asarray(palette.convert("RGB"))
    assert (index == 0).any() and torch.equal(image[:, torch.from_numpy(index == 0)], torch.ones(3, int((index == 0).sum())))
    assert torch.equal(image[:, torch.from_numpy(index != 0)], torch.from_numpy(colours[index != 0].T).float() / 127.5 - 1)
    data = (tmp_path / "progressive.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(Gen3cInputError, match=r"^input image '.*cut\.jpg' is corrupt or truncated \([^\n]+\): re-export the image$"):
        load_image(tmp_path / "cut.jpg")


def test_a_png_transparent_colour_is_white_like_its_alpha(tmp_path):
    """A bilevel, grey or RGB PNG may make one colour transparent (its tRNS chunk) instead of carrying an
    alpha channel: viewers show it over the background, gen3c over white, as it does alpha 0.
    Before, it kept its colour."""
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:8] = (10, 20, 30)
    Image.fromarray(rgb).save(tmp_path / "rgb.png", transparency=(10, 20, 30))
    Image.fromarray(rgb[..., 1]).save(tmp_path / "grey.png", transparency=20)
    for name in ("rgb.png", "grey.png"):
        img = load_image(tmp_path / name)
        assert torch.equal(img[:, :8], torch.ones(3, 8, 16)) and torch.equal(img[:, 8:], -torch.ones(3, 8, 16)), name
    Image.fromarray(rgb[..., 1] == 0).save(tmp_path / "bilevel.png", transparency=0)  # top black and transparent, bottom white
    assert torch.equal(load_image(tmp_path / "bilevel.png"), torch.ones(3, 16, 16))


def test_a_truncated_png_is_named_corrupt_not_another_format(tmp_path):
    """Cut inside its header, PIL cannot tell it is a PNG; the file's first bytes can. Before:
    "is not a readable image (a PNG image): use PNG, JPEG, …"."""
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "a.png").read_bytes()[:40])
    with pytest.raises(Gen3cInputError, match=r"^input image '.*cut\.png' is a PNG image that cannot be decoded \(corrupt or truncated\): re-export the image$"):
        load_image(tmp_path / "cut.png")


def test_an_image_the_system_cannot_read_is_one_line(tmp_path, monkeypatch):
    """Before: a name too long escaped as the raw OSError "[Errno 36] File name too long", and a
    file without read permission was "corrupt or truncated ([Errno 13] Permission denied)"."""
    long = tmp_path / ("x" * 300 + ".png")
    with pytest.raises(Gen3cInputError, match=r"^input image '.*x\.png' cannot be read \(File name too long\): check the path and the file's permissions$"):
        load_image(long)
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")

    def denied(fp, *args, **kwargs):  # as open() refuses a file without read permission (root reads any)
        raise PermissionError(errno.EACCES, "Permission denied", str(fp))

    monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(Gen3cInputError, match=r"^input image '.*a\.png' cannot be read \(Permission denied\): check the path and the file's permissions$"):
        load_image(tmp_path / "a.png")


def test_resize_nearest_picks_torchs_pixels_and_keeps_the_values_exactly():
    """Label maps (ids, masks) resize by nearest neighbour in their own dtype: the pixels picked
    are F.interpolate's (mode="nearest"), the values never pass through float32."""
    for (h, w), size in (((6, 10), (4, 6)), ((5, 7), (10, 14)), ((5, 7), (11, 3)), ((9, 4), (9, 13)), ((720, 1280), (704, 1252))):
        picks = torch.arange(h * w, dtype=torch.int32).reshape(1, h, w)
        expected = torch.nn.functional.interpolate(picks[None].float(), size=size, mode="nearest")[0].long()
        assert torch.equal(resize_nearest(picks, size).long(), expected), ((h, w), size)
        for dtype, offset in ((torch.int32, 2**31 - 1 - h * w), (torch.int64, 2**53 + 1), (torch.int16, -(2**15))):
            labels = (picks.long() + offset).to(dtype) if dtype != torch.int16 else (picks % 2**15 + offset).to(dtype)
            out = resize_nearest(labels, size)
            assert out.dtype == dtype and torch.equal(out, labels.flatten()[expected.flatten()].reshape(out.shape))
        mask = picks % 3 == 0
        assert torch.equal(resize_nearest(mask, size), expected % 3 == 0)
    assert resize_nearest(picks, (h, w)) is picks


def test_resize_modes():
    x = torch.arange(2 * 4 * 8, dtype=torch.float32).reshape(2, 4, 8)
    assert resize_image(x, (4, 4), "crop").shape == (2, 4, 4)
    assert torch.equal(resize_image(x, (4, 4), "crop"), x[:, :, 2:6])  # same height: a pure centre crop
    assert resize_image(x, (2, 2), "stretch").shape == (2, 2, 2)
    assert parse_resolution("704x1280") == (704, 1280)
    for bad in ("704", "abcxdef", "700x1280", "8x8"):
        with pytest.raises(Gen3cInputError):
            parse_resolution(bad)
    # The height's own limit is the one named: 4400 is below the width's 7680.
    assert parse_resolution("4320x7680") == (4320, 7680)
    with pytest.raises(Gen3cInputError, match="the height must be 16 … 4320"):
        parse_resolution("4400x640")


@pytest.mark.parametrize(("shape", "size"), [((5, 352, 640), (16, 1920)), ((2, 4, 90, 60), (120, 16)), ((3, 40, 30), (24, 24)), ((1, 20, 300), (18, 64))])
def test_a_crop_resize_holds_one_channel_of_the_covering_image_at_a_time_and_gives_its_pixels(monkeypatch, shape, size):
    """The crop mode resizes the image to cover the target, then crops: a 16 × 7680 strip from the
    packaged 352 × 640 sample covered it at 4224 × 7680, 649 MB for its 5 channels (image, depth,
    validity) at once. It now resizes one channel at a time, cropped as it is made: the pixels are
    those of the whole resize, cropped, bit for bit."""
    import torch.nn.functional as F

    from gen3c.cameras import resize_crop_plan
    from gen3c.io import images

    x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    (rh, rw), top, left = resize_crop_plan(tuple(shape[-2:]), size)
    batch = x if x.ndim == 4 else x[None]
    whole = F.interpolate(batch, size=(rh, rw), mode="bilinear", align_corners=False, antialias=rh < shape[-2] or rw < shape[-1])
    expected = whole[..., top : top + size[0], left : left + size[1]]
    made = []
    resize = images._resize
    monkeypatch.setattr(images, "_resize", lambda image, to: made.append(resize(image, to)) or made[-1])
    got = resize_image(x, size, "crop")
    assert torch.equal(got, expected if x.ndim == 4 else expected[0])
    assert max(m.numel() for m in made) == batch.shape[0] * rh * rw  # one channel of the covering image


@pytest.mark.parametrize(
    ("text", "message"),
    [("70x100", "--resolution '70x100': the height and width must be multiples of 8 (the tokenizer's stride): pass --resolution '64x96' or '72x104'"),
     ("8x100", "--resolution '8x100' is out of range: the height must be 16 … 4320 and the width 16 … 7680, multiples of 8: pass --resolution '16x96' or '16x104'"),
     ("8640x15360", "--resolution '8640x15360' is out of range: the height must be 16 … 4320 and the width 16 … 7680, multiples of 8: pass --resolution '4320x7680'"),
     ("704", "--resolution '704' is not of the form HEIGHTxWIDTH, e.g. 704x1280")],
)  # fmt: skip
def test_a_resolution_refusal_names_the_flag_and_the_nearest_sizes_that_fit(text, message):
    """A size only off the stride was called "out of range", named no flag and offered no size."""
    with pytest.raises(Gen3cInputError) as caught:
        parse_resolution(text)
    assert str(caught.value) == message


def test_video_round_trip(tmp_path):
    t = torch.linspace(-1, 1, 7)
    frames = t[:, None, None, None].expand(7, 3, 32, 48).contiguous()
    write_video(tmp_path / "v.mp4", frames, fps=24)
    back, fps = read_video(tmp_path / "v.mp4")
    assert back.shape == (7, 32, 48, 3) and fps == 24
    expected = ((t + 1) * 127.5).numpy()
    assert np.abs(back.mean(axis=(1, 2, 3)) - expected).max() < 3
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_a_written_video_names_the_colour_matrix_range_primaries_and_transfer_it_was_encoded_with(tmp_path):
    """Untagged, players guess the matrix by the size (BT.709 from 720p on: GEN3C's 704×1280 red
    was shown as (255, 22, 0), its green as (0, 215, 0)), and colour-managed ones (QuickTime,
    Safari) guess the primaries and transfer too: the file names BT.709 limited range for all four
    (was the BT.601 matrix alone, primaries and transfer unknown), encodes with that matrix, and
    reads back as written."""
    import av

    frames = np.zeros((2, 32, 48, 3), np.uint8)
    frames[:, :, :16], frames[:, :, 16:32], frames[:, :, 32:] = (255, 0, 0), (0, 255, 0), (30, 60, 200)
    for name in ("v.mp4", "v.mkv"):
        path = write_video(tmp_path / name, frames)
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
            luma = np.frombuffer(bytes(frame.planes[0]), np.uint8).reshape(32, -1)[16, [8, 24, 40]]
        # AVCOL_SPC_BT709, AVCOL_RANGE_MPEG, AVCOL_PRI_BT709, AVCOL_TRC_BT709
        tags = (int(frame.colorspace), int(frame.color_range), int(frame.color_primaries), int(frame.color_trc))
        assert tags == (1, 1, 1, 1), (name, tags)
        # BT.709's luma of pure red and green in limited range, 16 + 219 · (0.2126, 0.7152) (BT.601's: 81, 145)
        assert abs(int(luma[0]) - 63) <= 1 and abs(int(luma[1]) - 173) <= 1, (name, luma)
        back = read_video(path)[0][:, :, [8, 24, 40]]
        assert np.abs(back.astype(int) - frames[:, :, [8, 24, 40]]).max() <= 3


def test_a_written_mp4_has_its_index_before_its_frames(tmp_path):
    """``+faststart``: the ``moov`` box (the index) comes before ``mdat`` (the frames), so a browser
    or a player reading over the network plays it as it arrives; it was written at the end, after
    every frame. Its frames and rate are those written."""
    import av

    for name in ("v.mp4", "v.mov", "v.m4v"):
        path = write_video(tmp_path / name, np.zeros((5, 16, 32, 3), np.uint8), fps=30000 / 1001)
        data = path.read_bytes()
        assert 0 <= data.find(b"moov") < data.find(b"mdat"), name
        assert count_video_frames(path) == 5
        with av.open(str(path)) as container:
            assert container.streams.video[0].average_rate == Fraction(30000, 1001)
    with VideoWriter(tmp_path / "s.mp4", fps=24) as writer:  # streamed chunk by chunk alike
        for _ in range(3):
            writer.write(np.zeros((2, 16, 32, 3), np.uint8))
    data = (tmp_path / "s.mp4").read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat") and count_video_frames(tmp_path / "s.mp4") == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.mp4", "v.m4v", "v.mov", "v.mp4"]  # no temporary file left


def test_streaming_video_writer_appends_chunks_and_renames_at_the_end(tmp_path):
    chunks = [torch.full((n, 3, 16, 24), v) for n, v in ((5, -0.5), (4, 0.5))]
    with VideoWriter(tmp_path / "s.mp4", fps=12) as writer:
        for chunk in chunks:
            writer.write(chunk)
            assert not (tmp_path / "s.mp4").exists()  # only a temporary file while writing
    back, fps = read_video(tmp_path / "s.mp4")
    assert back.shape == (9, 16, 24, 3) and fps == 12 and count_video_frames(tmp_path / "s.mp4") == 9
    assert back[:5].mean() < 80 and back[5:].mean() > 170
    with pytest.raises(KeyboardInterrupt), VideoWriter(tmp_path / "x.mp4") as writer:
        writer.write(chunks[0])
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.mp4"]  # nothing half-written
    with pytest.raises(Gen3cInputError, match="after frames of 16×24"), VideoWriter(tmp_path / "y.mp4") as writer:
        writer.write(chunks[0])
        writer.write(torch.zeros(1, 3, 8, 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.mp4"]


def _decode_all(path) -> list[np.ndarray]:
    """Every frame, decoding from the first: what the readers used to do before picking frames."""
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(container.streams.video[0])]


@pytest.mark.parametrize(
    "encoding, idr_frames",
    [
        ({}, [0, 4, 8, 12]),  # closed GOPs: every keyframe an IDR frame (what x264 writes by default)
        ({"x264-params": "open-gop=1"}, [0]),  # recovery-point keyframes are no place to start
        ({"codec": "mpeg4"}, []),  # other codecs (MPEG-4 part 2 here): from the first frame
    ],
    ids=["h264", "h264_open_gop", "mpeg4"],
)
def test_decoding_from_a_late_frame_gives_the_frames_of_decoding_from_the_first(tmp_path, encoding, idr_frames):
    """A clip read from frame s decodes from the last IDR frame at or before s (a 2-minute clip
    read from frame 2000 does not decode 2000 frames first), bit for bit the frames of decoding
    the whole clip; where no IDR frame lies before s it decodes from the first frame."""
    import av
    from layouts import scene, write_h264

    from gen3c.io.video import _seek, iter_video_frames, probe_video

    path = write_h264(tmp_path / "v.mp4", scene(14, 32, 48)[0], gop=4, bframes=2, **encoding)
    index = probe_video(path)
    assert index.frames == 14 and [i for i, _ in index.idr] == idr_frames
    every = _decode_all(path)
    for start in range(14):
        frames = list(iter_video_frames(path, "v", start, 5, index))
        assert len(frames) == min(5, 14 - start)
        assert all(np.array_equal(a, b) for a, b in zip(frames, every[start : start + 5], strict=True)), start
        with av.open(str(path)) as container:  # where the seek is taken: after an IDR frame past the first
            assert (_seek(container, container.streams.video[0], index, start) is not None) == any(0 < i <= start for i in idr_frames)
    assert np.array_equal(read_video(path, start=9, max_frames=3)[0], np.stack(every[9:12]))


def open_here(path: Path) -> int:
    """How many of this process's file descriptors are open on ``path``."""
    return sum(os.path.realpath(f"/proc/self/fd/{fd}") == str(path.resolve()) for fd in os.listdir("/proc/self/fd"))


def test_an_npz_read_frame_by_frame_is_closed_with_its_reader_when_reading_stopped_half_way(tmp_path):
    """A sample or multi-view reader refusing a frame (a mask that lets no pixel in) left its frame
    reader suspended: the member it held kept the .npz file open past the reader's close, until
    the collector found it (a ResourceWarning 'unclosed file …depth.npz' in whatever ran then)."""
    from gen3c.io.npz import NpzReader

    np.savez(tmp_path / "s.npz", depth=np.zeros((6, 5, 7), np.float32))
    np.savez_compressed(tmp_path / "c.npz", depth=np.zeros((6, 5, 7), np.float32))
    for path in (tmp_path / "s.npz", tmp_path / "c.npz"):
        with NpzReader(path) as npz:
            reading = npz.frames("depth").frames()
            next(reading)  # read one frame, then stop (as a refusal of that frame does)
            assert open_here(path) == 1
        assert open_here(path) == 0, path.name
        assert list(reading) == []  # (finished: its member is closed)


def test_npz_arrays_are_read_one_frame_at_a_time(tmp_path):
    from gen3c.io.npz import NpzReader, load_npz_array

    depth = np.random.default_rng(0).random((6, 1, 5, 7)).astype(np.float16)
    np.savez_compressed(tmp_path / "c.npz", depth=depth, f=np.asfortranarray(depth[:, 0]), big=depth.astype(">f4"))
    np.savez(tmp_path / "s.npz", depth=depth)
    for name in ("c.npz", "s.npz"):
        with NpzReader(tmp_path / name) as npz:
            frames = npz.frames("depth").squeeze_channel()
            assert frames.shape == (6, 5, 7) and frames.dtype == np.float16 and len(frames) == 6
            assert np.array_equal(np.stack(list(frames.frames(2, 5))), depth[2:5, 0])
            assert np.array_equal(np.stack(list(frames.frames())), depth[:, 0])
    with NpzReader(tmp_path / "c.npz") as npz:  # column-major and big-endian arrays read the same
        assert np.array_equal(np.stack(list(npz.frames("f").frames(1, 3))), depth[1:3, 0])
        assert np.array_equal(np.stack(list(npz.frames("big").frames(4))), depth[4:].astype(np.float32))
    assert np.array_equal(load_npz_array(tmp_path / "s.npz", "depth"), depth)
    with pytest.raises(Gen3cInputError, match=r"has no key 'mask' \(it holds \['depth'\]\)"):
        load_npz_array(tmp_path / "s.npz", "mask")
    np.savez(tmp_path / "o.npz", depth=np.array([{"a": 1}], dtype=object))
    with NpzReader(tmp_path / "o.npz") as npz, pytest.raises(Gen3cInputError, match="holds Python objects, which are never unpickled"):
        npz.frames("depth")
    # A member cut short: the frames before the cut are read, then a one-line error.
    import zipfile

    with zipfile.ZipFile(tmp_path / "s.npz") as z:
        data = z.read("depth.npy")
    with zipfile.ZipFile(tmp_path / "t.npz", "w") as z:
        z.writestr("depth.npy", data[: len(data) - 3 * 70])
    with NpzReader(tmp_path / "t.npz", "depth file 't.npz'") as npz:
        frames = npz.frames("depth").frames()
        assert np.array_equal(next(frames), depth[0])
        with pytest.raises(Gen3cInputError, match=r"depth file 't.npz' 'depth' ends at frame 3 of its 6: the file is truncated"):
            list(frames)



@pytest.mark.parametrize("how", ["stream", "method", "header"])
def test_damaged_npz_members_are_one_line_errors(tmp_path, how):
    """Before: a garbled deflate stream raised zlib.error, a compression method Python lacks
    NotImplementedError and a garbled .npy header tokenize.TokenError, each as a traceback."""
    import zipfile

    from layouts import damage_zip

    from gen3c.io.npz import NpzReader

    path = tmp_path / "d.npz"
    if how == "header":  # its dict's closing brace lost
        header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), "
        header += b" " * (64 - 10 - 1 - len(header) % 64) + b"\n"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("depth.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(24))
    else:
        np.savez_compressed(path, depth=np.ones((2, 3), np.float32))
        damage_zip(path, "depth.npy", how)
    reads = {
        "load": lambda: NpzReader(path, "d.npz").load("depth"),
        "frames": lambda: list(NpzReader(path, "d.npz").frames("depth").frames()),
        "load_depth": lambda: load_depth(path, name="d.npz"),
    }
    for read in reads.values():
        with pytest.raises(Gen3cInputError, match=r"^d\.npz .*(is not a readable \.npz file|is corrupt or truncated) \((.*compression|.*decompressing|its \.npy header is garbled)"):
            read()


def test_a_depth_file_of_the_wrong_shape_is_refused_from_its_header_before_its_values_are_read(tmp_path):
    """A video's (T, H, W) depth stack given for one image (gigabytes at 1080p) was read whole, to
    a MemoryError's traceback or the kernel's OOM kill, before its shape was refused. These files
    hold only a header claiming 64 × 2048 × 2048: read whole they were "cannot be read"."""
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (64, 2048, 2048), }"
    header += b" " * (64 - 10 - 1 - len(header) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    (tmp_path / "stack.npy").write_bytes(npy)
    with zipfile.ZipFile(tmp_path / "stack.npz", "w") as z:
        z.writestr("depth.npy", npy)
    for suffix in ("npy", "npz"):
        with pytest.raises(Gen3cInputError, match=rf"^depth file '.*stack\.{suffix}' has shape \(64, 2048, 2048\): depth must be a 2-D \(H, W\) array$"):
            load_depth(tmp_path / f"stack.{suffix}")
    # A (1, H, W) map within the pixel limit still reads, from either file.
    np.save(tmp_path / "one.npy", np.full((1, 2, 3), 2.0, np.float32))
    np.savez(tmp_path / "one.npz", other=np.full((1, 2, 3), 3.0, np.float32))
    assert torch.equal(load_depth(tmp_path / "one.npy"), torch.full((2, 3), 2.0))
    assert torch.equal(load_depth(tmp_path / "one.npz"), torch.full((2, 3), 3.0))


def test_a_depth_or_numpy_file_the_system_cannot_read_is_one_line(tmp_path, monkeypatch):
    """Before: a raw PermissionError from a sample's or multi-view npz, "corrupt or truncated
    ([Errno 13] …): re-export it" for a depth map, "write 'fx fy cx cy'" for an intrinsics .npy."""
    import errno

    from gen3c.io import formats
    from gen3c.io.intrinsics import parse_intrinsics
    from gen3c.io.npz import NpzReader

    np.savez(tmp_path / "d.npz", depth=np.ones((4, 4), np.float32))
    np.save(tmp_path / "K.npy", np.array([50.0, 50.0, 8.0, 8.0]))

    def denied(path):  # as open() refuses a file without read permission (root reads any)
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(formats, "file_head", denied)
    Image.fromarray(np.ones((4, 4), np.uint16)).save(tmp_path / "d.png")
    monkeypatch.setattr(Image, "open", denied)
    fix = r"cannot be read \(Permission denied\): check the path and the file's permissions$"
    for read, label in (
        (lambda: load_depth(tmp_path / "d.png"), "depth file '.*d.png'"),  # before: "corrupt or truncated"
        (lambda: NpzReader(tmp_path / "d.npz", "sample depth.npz"), "sample depth.npz"),
        (lambda: load_depth(tmp_path / "d.npz"), "depth file '.*d.npz'"),
        (lambda: parse_intrinsics(tmp_path / "K.npy", (16, 16)), "--intrinsics file '.*K.npy'"),
    ):
        with pytest.raises(Gen3cInputError, match=f"^{label} {fix}"):
            read()

def test_write_video_names_the_frames_as_given(tmp_path):
    # Before: a ValueError quoting the shape after a wrong conversion ("got (5, 48, 3, 32) uint8").
    mistakes = [
        (torch.rand(5, 32, 48, 3), r"video frames have shape \(5, 32, 48, 3\): pass \(T, 3, H, W\) floats"),
        (torch.rand(3, 32, 48), r"have shape \(3, 32, 48\)"),
        (np.zeros((5, 32, 48, 3), np.float32), r"are \(5, 32, 48, 3\) float32: pass a torch tensor of \(T, 3, H, W\) floats in \[-1, 1\]"),
        # before: "are (5, 3, 32, 48) float32: pass (T, 3, H, W) floats", the layout given
        (np.zeros((5, 3, 32, 48), np.float32), r"are \(5, 3, 32, 48\) float32: pass a torch tensor of \(T, 3, H, W\) floats"),
        (torch.zeros(5, 3, 32, 48, dtype=torch.uint8), r"are \(5, 3, 32, 48\) uint8"),  # before: written, all white
        (torch.rand(5, 3, 31, 47), "even frame sizes, got 31×47"),
        # before: written clipped, a white video
        (torch.full((5, 3, 32, 48), 200.0), r"frames span \[200, 200\]: pass float frames in \[-1, 1\] \(0–255 values: pass frames / 127.5 - 1\)"),
        (torch.full((5, 3, 32, 48), float("nan")), r"frames span \[nan, nan\]"),
        (torch.zeros(0, 3, 32, 48), "no frames were given; a video needs at least one"),  # before: a plain ValueError
        (np.zeros((0, 32, 48, 3), np.uint8), "no frames were given"),
        (torch.zeros(5, 3, 32, 48, device="meta"), r"^video frames is a meta tensor, which holds no values"),  # before: torch's "Tensor.item() cannot be called on meta tensors"
    ]
    for frames, match in mistakes:
        with pytest.raises(Gen3cInputError, match=match):
            write_video(tmp_path / "v.mp4", frames)
    with pytest.raises(Gen3cInputError, match=r"save_image image has shape \(1, 3, 32, 48\): pass one \(3, H, W\)"):
        save_image(tmp_path / "i.png", torch.zeros(1, 3, 32, 48))  # before: PIL's "Cannot handle this data type"
    assert not any(tmp_path.iterdir())
    uint8 = torch.full((3, 32, 48, 3), 200, dtype=torch.uint8)
    assert read_video(write_video(tmp_path / "v.mp4", uint8))[0].mean() == pytest.approx(200, abs=2)


def test_a_video_path_of_a_type_h264_does_not_go_in_is_refused_before_encoding(tmp_path):
    """Before: ffmpeg refused it once the frames were encoded ("gif muxer supports only codec
    gif"), and gen3c advised checking the free space."""
    frames = torch.zeros(2, 3, 16, 16)
    for name in ("v.gif", "v.webm", "v.png", "v"):
        with pytest.raises(Gen3cInputError, match=rf"^video '.*{name}' does not end in \.mp4: gen3c writes H\.264, .* pass a name ending in \.mp4$"):
            write_video(tmp_path / name, frames)
    assert not any(tmp_path.iterdir())
    assert [count_video_frames(write_video(tmp_path / f"v{s}", frames)) for s in (".MP4", ".mov", ".mkv")] == [2, 2, 2]


def test_write_functions_refuse_bad_settings_before_writing(tmp_path):
    """Out-of-range quality used to reach imageio-ffmpeg's assertion; fps=0 was written at its
    default 16 fps, and camera files with fps=0 were written (nerfstudio's: a ZeroDivisionError)."""
    frames = torch.zeros(2, 3, 16, 16)
    for quality in (0, 11, -1, float("nan"), "8", True, None):
        with pytest.raises(Gen3cInputError, match=r"^video quality .* is out of range: pass a number from 1 \(smallest file\) to 10 \(best\)$"):
            write_video(tmp_path / "v.mp4", frames, quality=quality)
    for fps in (0, -24, float("inf"), float("nan"), "24"):
        with pytest.raises(Gen3cInputError, match="fps"):
            write_video(tmp_path / "v.mp4", frames, fps=fps)
        with pytest.raises(Gen3cInputError, match="fps"):
            VideoWriter(tmp_path / "v.mp4", fps=fps)
        with pytest.raises(Gen3cInputError, match="fps"):
            save_cameras(tmp_path / "c.json", orbit(), fps=fps)
        with pytest.raises(Gen3cInputError, match="fps"):
            save_nerfstudio_path(tmp_path / "camera_path.json", orbit(), fps=fps)
    assert not any(tmp_path.iterdir())
    assert count_video_frames(write_video(tmp_path / "v.mp4", frames, fps=np.float32(12), quality=np.int64(1))) == 2


def test_ply_round_trip(tmp_path):
    pts = torch.randn(100, 3)
    cols = torch.rand(100, 3) * 2 - 1
    write_ply(tmp_path / "p.ply", pts, cols)
    p, c = read_ply(tmp_path / "p.ply")
    assert torch.allclose(p, pts) and torch.equal(c, ((cols + 1) * 127.5).round().to(torch.uint8))
    # What read_ply returns writes back unchanged (before: its uint8 colours were taken as [-1, 1]
    # values and clamped, a white cloud).
    write_ply(tmp_path / "copy.ply", p, c)
    assert (tmp_path / "copy.ply").read_bytes() == (tmp_path / "p.ply").read_bytes()


def test_ply_colours_of_other_types_read_as_0_to_255(tmp_path):
    """Float [0, 1] colours (Open3D's tensor API) were cast to uint8, all black; 16-bit ones wrapped."""
    import plyfile

    def ply(kind, values):
        vertex = np.zeros(len(values), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", kind), ("green", kind), ("blue", kind)])
        vertex["red"], vertex["green"], vertex["blue"] = np.asarray(values, dtype=kind).T
        plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")]).write(str(tmp_path / "c.ply"))
        return read_ply(tmp_path / "c.ply")[1].tolist()

    assert ply("f4", [[0.0, 0.5, 1.0]]) == [[0, 128, 255]]
    assert ply("u2", [[0, 257, 65535]]) == [[0, 1, 255]]
    assert ply("i4", [[0, 7, 255]]) == [[0, 7, 255]]
    with pytest.raises(Gen3cInputError, match=r"c\.ply' has float colours outside \[0, 1\] \(from 0 to 255\): write red, green, blue as 0–255 uchar$"):
        ply("f4", [[0.0, 255.0, 3.0]])


def test_ply_mistakes_are_one_line_errors(tmp_path):
    # Before: numpy's broadcast ValueError, an AttributeError, a silently dropped 4th column,
    # FileNotFoundError and UnicodeDecodeError.
    pts, cols = torch.randn(5, 3), torch.rand(5, 3)
    for args, match in [
        ((pts, cols[:2]), "has 5 points but 2 colours"),
        ((pts.numpy(), cols), r"points is a numpy array of shape \(5, 3\): pass an"),
        ((torch.randn(5, 4), cols), r"points is a torch tensor of shape \(5, 4\): pass an \(N, 3\) tensor"),
        # Before: clamped as [-1, 1] values, a white (or, NaN, black) cloud written without a word.
        ((pts, cols * 255), r"write_ply colors span \[\d.*, 2\d\d\]: pass floats in \[-1, 1\] or uint8 0–255 \(0–255 values: pass colors / 127.5 - 1\)$"),
        ((pts, torch.full((5, 3), float("nan"))), r"write_ply colors span \[nan, nan\]: pass floats in \[-1, 1\] or uint8 0–255$"),
        ((pts, torch.full((5, 3), 200)), r"write_ply colors are int64: pass uint8 0–255 \(colors.to\(torch.uint8\)\) or floats in \[-1, 1\]$"),
        ((pts.to("meta"), cols), r"write_ply points is a meta tensor, which holds no values"),
        # Before: written as they were (NaN, inf, or float64 1e300 as float32's inf), without a word.
        *(((bad, cols), rf"^write_ply points hold NaN or infinite coordinates{beyond} \(2 of 5 points\): leave them out, keep = torch\.isfinite")
          for bad, beyond in ((torch.cat([pts[:3], torch.tensor([[float("nan"), 0, 1], [0, float("-inf"), 1]])]), ""),
                              (torch.cat([pts[:3].double(), torch.tensor([[1e300, 0, 1], [0, 0, float("nan")]], dtype=torch.float64)]),
                               r" or beyond float32's ±3\.4e38"))),
    ]:
        with pytest.raises(Gen3cInputError, match=match):
            write_ply(tmp_path / "p.ply", *args)
    assert not any(tmp_path.iterdir())
    with pytest.raises(Gen3cInputError, match="does not exist or is not a file"):
        read_ply(tmp_path / "missing.ply")
    (tmp_path / "d.npy").write_bytes(b"\x93NUMPY" + bytes(range(256)))
    with pytest.raises(Gen3cInputError, match="is not a readable PLY file"):
        read_ply(tmp_path / "d.npy")
    (tmp_path / "plain.ply").write_text("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 1\n")
    with pytest.raises(Gen3cInputError, match="has no coloured vertices"):
        read_ply(tmp_path / "plain.ply")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(tmp_path / "ok.bin") as tmp:
        tmp.write_bytes(b"x")
    assert (tmp_path / "ok.bin").read_bytes() == b"x"
    assert oct(os.stat(tmp_path / "ok.bin").st_mode & 0o777) != "0o600"


def test_an_atomic_output_is_on_the_disk_before_its_name_is(tmp_path, monkeypatch):
    """The bytes are fsync'ed before the rename, the folder after it (before: neither, so a power
    cut soon after a run could leave an output's name on an empty file)."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", str(b))), real_replace(a, b)))
    with atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"x")
    assert events == [("fsync", str(tmp)), ("replace", str(tmp_path / "out.bin")), ("fsync", str(tmp_path))]


def test_a_published_folder_is_on_the_disk_all_the_way_down_before_its_name_is(tmp_path, monkeypatch):
    """Publishing a folder flushes every file, every subfolder's entries (after the files in it)
    and the folder's own before the rename, then the parent's (before: the files only, so a
    power cut could lose a subfolder's entries, e.g. a checkpoint's ``transformer/`` shards).
    A subfolder whose flush fails (EIO, ENOSPC, EDQUOT) is not published, as a file is not."""
    import stat

    from gen3c.io.atomic import publish

    staged = tmp_path / "staged"
    for name in ("sub/deeper/c.bin", "sub/b.bin", "a.bin", "empty/"):
        (staged / name).parent.mkdir(parents=True, exist_ok=True)
        (staged / name).mkdir() if name.endswith("/") else (staged / name).write_bytes(b"x")
    everything = [staged, *staged.rglob("*")]
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", str(b))), real_replace(a, b)))
    publish(staged, tmp_path / "model")
    synced = [path for kind, path in events[:-2] if kind == "fsync"]
    assert sorted(synced) == sorted(map(str, everything)) and len(synced) == len(everything)
    assert events[-2:] == [("replace", str(tmp_path / "model")), ("fsync", str(tmp_path))]
    for path in everything:  # each folder after everything in it
        assert all(synced.index(str(path)) > synced.index(str(inner)) for inner in everything if path in inner.parents)
    assert (tmp_path / "model" / "sub" / "deeper" / "c.bin").read_bytes() == b"x"

    failing = tmp_path / "again" / "sub"
    for code in (errno.EIO, errno.ENOSPC, errno.EDQUOT):
        failing.mkdir(parents=True, exist_ok=True)
        (failing / "a.bin").write_bytes(b"a")

        def failing_fsync(fd, code=code):
            if stat.S_ISDIR(os.fstat(fd).st_mode) and os.readlink(f"/proc/self/fd/{fd}") == str(failing):
                raise OSError(code, os.strerror(code))
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", failing_fsync)
        with pytest.raises(OSError) as caught:
            publish(tmp_path / "again", tmp_path / "other")
        assert caught.value.errno == code and caught.value.filename == str(failing)
        assert not (tmp_path / "other").exists()


def test_an_atomic_output_whose_bytes_did_not_reach_the_disk_is_not_published(tmp_path, monkeypatch):
    """fsync's EIO or ENOSPC (a write error, or a full disk that NFS reports only then) means the
    file is not whole: it was ignored and the file renamed into place. An fsync the file system
    does not do (EINVAL), or one of the folder after the rename, still publishes the output."""
    import stat

    real_fsync = os.fsync
    for code, published in ((errno.EIO, False), (errno.ENOSPC, False), (errno.EINVAL, True)):
        def failing_fsync(fd, code=code):
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise OSError(code, os.strerror(code))
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", failing_fsync)
        target = tmp_path / f"out{code}.bin"
        if published:
            with atomic_path(target) as tmp:
                tmp.write_bytes(b"x")
        else:
            with pytest.raises(OSError, match=re.escape(os.strerror(code))) as caught, atomic_path(target) as tmp:
                tmp.write_bytes(b"x")
            assert caught.value.errno == code and caught.value.filename == str(tmp)
        assert target.exists() == published
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")) if stat.S_ISDIR(os.fstat(fd).st_mode) else real_fsync(fd))
    with atomic_path(tmp_path / "after.bin") as tmp:  # the folder's flush fails after the rename: the output is in place
        tmp.write_bytes(b"y")
    assert (tmp_path / "after.bin").read_bytes() == b"y"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["after.bin", f"out{errno.EINVAL}.bin"]  # no .part file left


def test_signals_deferred_holds_ctrl_c_and_sigterm_back_until_the_block_ends():
    import signal

    import gen3c.errors
    from gen3c.errors import Terminated, terminate_like_ctrl_c
    from gen3c.io.atomic import signals_deferred

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    terminate_like_ctrl_c()
    handler = signal.getsignal(signal.SIGINT)
    try:
        for sig, raised in ((signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)):
            finished = []
            with pytest.raises(raised):
                with signals_deferred():
                    signal.raise_signal(sig)  # handled before it returns (os.kill's may come a moment later)
                    finished.append(sig)
            assert finished == [sig]
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        for sig, previous in before.items():
            signal.signal(sig, previous)
        gen3c.errors._INTERRUPTED.clear()


def test_every_file_writer_gives_plain_permissions_under_the_users_umask(tmp_path):
    """What users save from Python (videos, point clouds, cameras, images) gets 0666 less the
    umask, as a plain open() would: not the owner-only files of tempfile."""
    cams = Cameras(look_at(torch.tensor([[0.0, 0, 0], [0.1, 0, 0]]), torch.tensor([[0.0, 0, 1], [0.1, 0, 1]])), make_intrinsics(20.0, 20.0, 12.0, 8.0), 16, 24)
    old = os.umask(0o027)
    try:
        write_video(tmp_path / "v.mp4", torch.zeros(2, 3, 16, 24))
        write_ply(tmp_path / "p.ply", torch.zeros(3, 3), torch.zeros(3, 3))
        save_cameras(tmp_path / "c.json", cams)
        save_nerfstudio_path(tmp_path / "n.json", cams)
        save_image(tmp_path / "i.png", torch.zeros(3, 16, 24))
    finally:
        os.umask(old)
    assert {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == dict.fromkeys(["c.json", "i.png", "n.json", "p.ply", "v.mp4"], 0o640)


def test_publish_gives_a_finished_folder_plain_permissions_under_the_users_umask(tmp_path):
    """What tempfile and safetensors create owner-only (0700 folders, 0600 files) is published with
    0666/0777 less the umask, everywhere inside, as a plain mkdir()/open() would have made it."""
    import tempfile

    from safetensors.torch import save_file

    from gen3c.io.atomic import publish

    staging = Path(tempfile.mkdtemp(dir=tmp_path))
    (staging / "sub").mkdir(mode=0o700)
    save_file({"w": torch.zeros(2)}, str(staging / "sub" / "model.safetensors"))
    os.chmod(staging / "sub" / "model.safetensors", 0o600)  # as safetensors 0.8 leaves it
    old = os.umask(0o027)
    try:
        publish(staging, tmp_path / "model")
    finally:
        os.umask(old)
    assert not staging.exists()
    modes = [(p.stat().st_mode & 0o777, p.is_dir()) for p in [tmp_path / "model", *(tmp_path / "model").rglob("*")]]
    assert sorted(modes) == [(0o640, False), (0o750, True), (0o750, True)]


def test_replace_folder_never_leaves_the_target_missing(tmp_path, monkeypatch):
    """A finished folder replaces an older one (a trained model/, a converted checkpoint, a
    checkpoint saved again) with the old one kept until the new one is in place: a failure of the
    final rename puts the old one back (before, gen3c train's export removed model/ first, so a
    run stopped there left none), and a second replacement finds no stale aside in its way."""
    import gen3c.io.atomic as atomic

    def folder(name: str, text: str) -> Path:
        (tmp_path / name).mkdir()
        (tmp_path / name / "weights.txt").write_text(text)
        return tmp_path / name

    target = folder("model", "old")
    real_publish = atomic.publish

    def interrupted(finished, to):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic, "publish", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic.replace_folder(folder(".model.part", "new"), target)
    assert (target / "weights.txt").read_text() == "old"
    monkeypatch.setattr(atomic, "publish", real_publish)
    atomic.replace_folder(tmp_path / ".model.part", target)
    assert (target / "weights.txt").read_text() == "new"
    (tmp_path / ".model.part.old").mkdir()  # left by a run killed after the aside was made
    atomic.replace_folder(folder(".model.part", "newer"), target)
    assert (target / "weights.txt").read_text() == "newer" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    atomic.replace_folder(folder("fresh.part", "first"), tmp_path / "fresh")  # nothing to replace
    assert (tmp_path / "fresh" / "weights.txt").read_text() == "first"


def test_unwritable_output_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(Gen3cInputError, match="cannot be created|not a folder"):
        ensure_writable_dir(tmp_path / "file" / "sub")


def test_to_uint8_equals_the_whole_video_formula():
    def whole(x):  # the formula on the whole tensor at once (what to_uint8 does frame by frame)
        return ((x.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).movedim(-3, -1).numpy()

    x = torch.linspace(-1.2, 1.2, 2 * 3 * 3 * 5 * 7).reshape(2, 3, 3, 5, 7)
    for frames in (x, x[0], x[0, 0], x[0, :, :, ::2, 1:]):
        for dtype in (torch.float32, torch.float64, torch.bfloat16):
            got = to_uint8(frames.to(dtype))
            assert got.dtype == np.uint8 and np.array_equal(got, whole(frames.to(dtype)))
    assert to_uint8(torch.tensor([[[-1.0]], [[0.0]], [[1.0]]])).tolist() == [[[0, 128, 255]]]


def test_to_uint8_refuses_frames_it_would_garble_in_one_line():
    """Channels-last frames were torch's "The size of tensor a (3) must match the size of tensor b
    (5)", a numpy array an AttributeError, and a uint8 tensor or 0–255 floats an all-white picture
    (clipped at 1). A generator's slight overshoot past ±1 is still clipped."""
    frames = torch.linspace(-1, 1, 2 * 3 * 4 * 6).reshape(2, 3, 4, 6)
    for bad, message in (
        (frames.permute(0, 2, 3, 1), r"to_uint8 image has shape \(2, 4, 6, 3\): pass \(\*B, 3, H, W\) RGB in \[-1, 1\]: it looks channels-last \(…, H, W, 3\), pass image.movedim\(-1, -3\)"),
        (frames[:, :1], r"to_uint8 image has shape \(2, 1, 4, 6\): pass \(\*B, 3, H, W\) RGB in \[-1, 1\]$"),
        (frames.numpy(), r"to_uint8 image is a numpy array of shape \(2, 3, 4, 6\): pass a \(\*B, 3, H, W\) float tensor"),
        (torch.full((3, 4, 6), 200, dtype=torch.uint8), r"to_uint8 image is \(3, 4, 6\) uint8: .* it is 8-bit already: image.movedim\(-3, -1\).numpy\(\) is the array"),
        ((frames + 1) * 127.5, r"to_uint8 image reaches 255: it holds 0–255 colours, not \[-1, 1\]; pass image / 127.5 - 1"),
        (frames.to("meta"), r"to_uint8 image is a meta tensor, which holds no values"),
        # NaN and -inf came out black without a word (a diverged run's frames), +inf was taken for 0–255 colours.
        *((torch.cat([frames, torch.full((1, 3, 4, 6), v)]), rf"^to_uint8 image holds NaN or infinite values \(it spans \[{lo}, {hi}\]\): pass finite floats in \[-1, 1\]$")
          for v, lo, hi in ((float("nan"), "nan", "nan"), (float("-inf"), "-inf", "1"), (float("inf"), "-1", "inf"))),
    ):  # fmt: skip
        with pytest.raises(Gen3cInputError, match=message):
            to_uint8(bad)
    assert to_uint8(torch.tensor([-1.05, 0.0, 1.05])[:, None, None]).tolist() == [[[0, 128, 255]]]


def test_save_image_writes_a_uint8_tensor_or_array_as_its_pixels(tmp_path):
    """save_image checked a uint8 (3, H, W) tensor as an image but wrote it as [-1, 1] floats: a
    white PNG; an (H, W, 3) uint8 array, accepted by the check, was an AttributeError."""
    pixels = torch.arange(3 * 4 * 6, dtype=torch.uint8).reshape(3, 4, 6) * 3
    save_image(tmp_path / "tensor.png", pixels)
    save_image(tmp_path / "array.png", pixels.permute(1, 2, 0).numpy())
    for name in ("tensor.png", "array.png"):
        assert np.array_equal(np.asarray(Image.open(tmp_path / name)), pixels.permute(1, 2, 0).numpy()), name
    # It writes PNG: a name of another type was written PNG data under it ("frame.jpg"), now refused.
    save_image(tmp_path / "upper.PNG", pixels)
    for name in ("frame.jpg", "frame", "frame.png.tmp"):
        with pytest.raises(Gen3cInputError) as refused:
            save_image(tmp_path / name, pixels)
        assert str(refused.value) == f"save_image path '{tmp_path / name}' does not end in .png: save_image writes PNG; pass a name ending in .png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["array.png", "tensor.png", "upper.PNG"]


@pytest.mark.parametrize(
    ("writer", "suffix", "writes"),
    [
        ("save_cameras", ".json", "save_cameras writes a gen3c cameras JSON"),
        ("save_nerfstudio_path", ".json", "save_nerfstudio_path writes a nerfstudio camera_path JSON"),
        ("write_ply", ".ply", "write_ply writes a PLY point cloud"),
    ],
)
def test_a_writer_refuses_a_name_of_another_file_type(tmp_path, writer, suffix, writes):
    """save_cameras, save_nerfstudio_path and write_ply wrote under any name: a camera file saved
    as "cams.png" (JSON text an image viewer cannot open), a point cloud as "cloud.json". As
    save_image and write_video do, a name not ending in the one type each writes is refused and
    nothing is written; the suffix in capitals is the same type."""
    write = {
        "save_cameras": lambda path: save_cameras(path, orbit()),
        "save_nerfstudio_path": lambda path: save_nerfstudio_path(path, orbit()),
        "write_ply": lambda path: write_ply(path, torch.zeros(2, 3), torch.zeros(2, 3)),
    }[writer]
    for name in ("out.png", "out", f"out{suffix}.tmp"):
        with pytest.raises(Gen3cInputError) as refused:
            write(tmp_path / name)
        assert str(refused.value) == f"{writer} path '{tmp_path / name}' does not end in {suffix}: {writes}; pass a name ending in {suffix}"
    write(tmp_path / f"out{suffix.upper()}")
    assert [p.name for p in tmp_path.iterdir()] == [f"out{suffix.upper()}"]


def test_write_ply_refuses_points_that_are_no_coordinates(tmp_path):
    """write_ply wrote bool points as coordinates 0 and 1, and complex ones without their imaginary
    part (torch's cast warning aside), a cloud that was not the one given. Refused now, nothing
    written; integer coordinates are still written as floats."""
    for dtype in (torch.bool, torch.complex64):
        with pytest.raises(Gen3cInputError, match=rf"^write_ply points are {str(dtype).removeprefix('torch.')}: pass real coordinates \(float\)$"):
            write_ply(tmp_path / "p.ply", torch.ones(2, 3, dtype=dtype), torch.zeros(2, 3))
    assert list(tmp_path.iterdir()) == []
    write_ply(tmp_path / "p.ply", torch.ones(2, 3, dtype=torch.int64), torch.zeros(2, 3))
    assert read_ply(tmp_path / "p.ply")[0].tolist() == [[1.0] * 3] * 2


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_float64_depth_beyond_float32_is_the_non_finite_depth_note_not_a_numpy_warning(tmp_path):
    """float64 depth beyond float32's range (~3.4e38) becomes +inf / −inf when read as float32:
    far away (+) and left out (−) as NaN/inf depth is, with gen3c's note; numpy's "overflow
    encountered in cast" used to reach the user."""
    from gen3c.io.depth import fill_invalid_depth

    depth = np.full((4, 6), 2.0)
    depth[0, 0], depth[0, 1] = 1e300, -1e300
    np.save(tmp_path / "d.npy", depth)
    loaded = load_depth(tmp_path / "d.npy")
    assert loaded[0, 0] == float("inf") and loaded[0, 1] == float("-inf") and (loaded[1:] == 2.0).all()
    with pytest.warns(UserWarning, match=r"1 pixels \(4.2%\) of NaN/inf depth sit far away.*1 pixels \(4.2%\) of ≤ 0 depth are left out"):
        filled, valid = fill_invalid_depth(loaded, "d.npy")
    assert filled[0, 0] == FAR_DEPTH and valid[0, 0] and filled[0, 1] == 0 and not valid[0, 1]


@pytest.mark.parametrize("fps", ["0", "-12", "NaN", "Infinity"])
def test_a_camera_file_with_a_frame_rate_that_is_not_one_is_refused(tmp_path, fps):
    """A camera file's "fps" of 0, below 0, NaN or Infinity (JSON as Python reads it) was taken
    as the video's frame rate: one line naming the file and the key."""
    path = tmp_path / "c.json"
    save_cameras(path, orbit(), fps=24)
    data = json.loads(path.read_text())
    data["fps"] = "FPS"
    path.write_text(json.dumps(data).replace('"FPS"', fps))
    with pytest.raises(Gen3cInputError, match=r"^camera file '.*c\.json': 'fps' .* must be a number of frames per second > 0: fix it or pass --fps$"):
        read_camera_file(path)


def test_depth_in_millimetres_is_noted_with_the_fix_for_files_arrays_and_clips(tmp_path):
    """A median beyond the cache's clamp (100) flattens the scene to a wall: a note names the
    likely unit and the fix. Before: nothing was said."""

    from gen3c.cameras import intrinsics_from_fov
    from gen3c.io.depth import InvalidDepthTally, fill_invalid_depth
    from gen3c.pipelines.camera_video import prepare_source

    metres = np.full((12, 16), 2.5, np.float32)
    metres[:, :4] = 150.0  # a far quarter beyond the clamp, as a real scene has: the median is what counts
    np.save(tmp_path / "mm.npy", metres * 1000)
    np.save(tmp_path / "m.npy", metres)
    unit = r"median depth is 2500, beyond the 100 at which GEN3C's cache clamps depth.*millimetres\? scale it to metres"
    with pytest.warns(UserWarning, match=unit):
        conform_depth(load_depth(tmp_path / "mm.npy"), (12, 16))
    image = torch.zeros(3, 12, 16)
    with pytest.warns(UserWarning, match=unit):
        prepare_source(image, metres * 1000, intrinsics_from_fov(60, 12, 16), (12, 16))
    tally = InvalidDepthTally()
    for frame in (metres, metres * 1000):  # a clip read a frame at a time: one note, at the end
        fill_invalid_depth(torch.from_numpy(frame), tally=tally)
    with pytest.warns(UserWarning, match=unit):
        tally.note("clip depth", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # metres: no note at all
        conform_depth(load_depth(tmp_path / "m.npy"), (12, 16))
        prepare_source(image, metres, intrinsics_from_fov(60, 12, 16), (12, 16))


def test_depth_all_beyond_the_far_fill_is_refused_naming_the_unit_and_far_depth_is_counted(tmp_path):
    """Finite depth ≥ 1e4 (FAR_DEPTH, where GEN3C clamps depth and puts NaN) is far background,
    out of the median. Before: a map in millimetres with no pixel nearer than 10 m ran on to
    "the path is scaled by the source view's median depth …, but no pixel of it has a valid
    depth" (or a flat wall), and the far pixels of a partly far map were not mentioned."""
    from gen3c.depth import load_user_depth
    from gen3c.io.depth import fill_invalid_depth

    millimetres = np.full((12, 16), 15000, np.uint16)
    millimetres[:, :4] = 30000
    Image.fromarray(millimetres).save(tmp_path / "mm.png")  # a sensor's 16-bit PNG, read with --png_depth_scale 1
    unit = r"has no depth below 10000 \(its valid depth spans \[1\.5e\+04, 3e\+04\]\), where GEN3C puts the far background: depth in millimetres\? scale it to metres \(÷ 1000"
    with pytest.raises(Gen3cInputError, match=rf"^depth file '.*mm\.png' {unit}"):
        load_user_depth(tmp_path / "mm.png", (12, 16), fov=60, png_scale=1.0)
    clip = torch.stack([torch.full((12, 16), 2.0), torch.from_numpy(millimetres.astype(np.float32))])
    with pytest.raises(Gen3cInputError, match=r"^clip has no depth below 10000 \(frame 6\) \(its valid depth spans \[1\.5e\+04, 3e\+04\]\)"):
        fill_invalid_depth(clip, "clip", frame_offset=5)
    metres = np.full((12, 16), 2.0, np.float32)
    metres[:3] = 1e10  # Blender's background
    with pytest.warns(UserWarning, match=r"^d: 48 pixels \(25%\) of depth ≥ 10000 are far background .* do not count for the median depth$"):
        depth, valid = fill_invalid_depth(torch.from_numpy(metres), "d")
    assert bool(valid.all()) and depth[0, 0] == 1e10 and scene_depths(depth, valid).tolist() == [2.0] * 144


def test_a_depth_picture_in_a_deep_folder_is_told_the_whole_path_of_the_values_beside_it(tmp_path):
    """The .npy beside an 8-bit depth picture is the fix, to be copied: in a folder path of over
    200 characters it was cut to its start and end around '…', which is no path."""
    from gen3c.depth import load_user_depth

    folder = tmp_path.joinpath(*["a_rather_long_folder_name"] * 9)
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(folder / "grey.png")
    np.save(folder / "grey.npy", np.ones((12, 16), np.float32))
    with pytest.raises(Gen3cInputError, match=r"^depth file '.*….*grey\.png' is an 8-bit grey PNG") as caught:
        load_user_depth(folder / "grey.png", (12, 16), fov=60)
    assert f"pass {str(folder / 'grey.npy')!r} beside it" in str(caught.value)


def test_a_depth_file_error_names_the_file_once_and_a_renamed_png_says_what_it_is(tmp_path):
    """Before: load_user_depth's errors named the file twice ("depth file 'd.png' 'd.png' is a
    RGB PNG"), and a .npy saved as .png was "corrupt or truncated (cannot identify image file)"."""
    from gen3c.depth import load_user_depth

    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(Gen3cInputError, match=r"^depth file '[^']*rgb\.png' is a PNG of mode RGB, a picture of depth, not its values \(depth PNGs are single-channel 16-bit\): pass the depth values \(\.npy, or a single-channel 16-bit PNG\)$"):
        load_user_depth(tmp_path / "rgb.png", (12, 16), fov=60)
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(tmp_path / "photo.png", format="JPEG")  # (was "is a PNG of mode RGB")
    with pytest.raises(Gen3cInputError, match=r"^depth file '[^']*photo\.png' is a JPEG of mode RGB, a picture of depth, not its values "):
        load_user_depth(tmp_path / "photo.png", (12, 16), fov=60)
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(tmp_path / "grey.png", format="JPEG")
    with pytest.raises(Gen3cInputError, match=r"^depth file '[^']*grey\.png' is an 8-bit grey JPEG, a picture of depth "):
        load_user_depth(tmp_path / "grey.png", (12, 16), fov=60)
    np.save(tmp_path / "d.npy", np.ones((12, 16), np.float32))
    (tmp_path / "d.npy").rename(tmp_path / "d.png")
    with pytest.raises(Gen3cInputError, match=r"^depth file '[^']*d\.png' is a NumPy \.npy array, not a PNG: give the file its real suffix \(\.npy, "):
        load_user_depth(tmp_path / "d.png", (12, 16), fov=60)
    # a real PNG cut inside its header (before: "is a PNG image, not a PNG: give the file its real suffix")
    Image.fromarray(np.ones((12, 16), np.uint16)).save(tmp_path / "cut.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:12])
    with pytest.raises(Gen3cInputError, match=r"^depth file '[^']*cut\.png' is a damaged PNG \(its header cannot be read\): export or copy it again$"):
        load_user_depth(tmp_path / "cut.png", (12, 16), fov=60)


def test_io_layer_imports_nothing_from_depth():
    """gen3c.io reads and writes what users hand over; the depth estimators build on it, never the
    reverse. Before: io/images.py imported image_to_uint8 from gen3c.depth.base (lazily, to dodge the cycle)."""
    import ast

    import gen3c.io

    offenders = []
    for path in sorted(Path(gen3c.io.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{path.name}: {m}" for m in modules if m == "gen3c.depth" or m.startswith("gen3c.depth.")]
    assert offenders == []


def test_sha256_file_matches_hashlib_across_chunks(tmp_path):
    """The one chunked hash: a file over one chunk hashes as hashlib does on its whole bytes, and
    the progress callback's byte counts sum to the file's size."""
    import hashlib

    from gen3c.io.hashing import CHUNK_BYTES, sha256_file, update_from_file

    data = os.urandom(2 * CHUNK_BYTES + 12345)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    seen = []
    assert sha256_file(path, seen.append) == hashlib.sha256(data).hexdigest()
    assert seen == [CHUNK_BYTES, CHUNK_BYTES, 12345]
    (tmp_path / "empty.bin").write_bytes(b"")
    assert sha256_file(tmp_path / "empty.bin") == hashlib.sha256(b"").hexdigest()
    # Several sums in one read (a fetched weight file: the hub's sha256 and GEN3C's MD5).
    sha, md5 = hashlib.sha256(), hashlib.md5()
    update_from_file((sha, md5), path)
    assert (sha.hexdigest(), md5.hexdigest()) == (hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest())


def test_an_output_that_cannot_be_written_is_told_how_to_fix_it(tmp_path):
    """A missing folder is told to be created (was told to choose "a writable folder and a
    shorter name" whatever the cause), a file in the path and a too long name each their fix."""
    from gen3c.io.atomic import atomic_path

    (tmp_path / "file").write_text("x")
    for target, fix in (
        (tmp_path / "missing" / "out.mp4", f"create the folder {str(tmp_path / 'missing')!r} first"),
        (tmp_path / "file" / "out.mp4", "is a file, not a folder"),
        (tmp_path / ("n" * 300 + ".mp4"), "choose a shorter name"),
    ):
        with pytest.raises(Gen3cInputError, match=re.escape(fix)):
            with atomic_path(target):
                pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_an_output_folder_whose_name_the_system_refuses_is_one_line(tmp_path):
    """A name too long for the file system, or with a NUL character: ensure_writable_dir and
    check_writable_place (run before a training or a conversion starts) let the raw OSError
    "[Errno 36] File name too long" or ValueError "embedded null byte" out."""
    from gen3c.io.atomic import check_writable_place

    long = tmp_path / ("x" * 300) / "out"
    too_long = r" '/tmp/[^'…]{45}…x{145}x*(/out)?' cannot be used \(File name too long\): choose a shorter name$"
    with pytest.raises(Gen3cInputError, match=r"^output folder" + too_long):
        ensure_writable_dir(tmp_path / ("x" * 300))
    with pytest.raises(Gen3cInputError, match=r"^training output folder" + too_long):
        check_writable_place(long, "training output folder")
    with pytest.raises(Gen3cInputError, match=r"^output folder '.*a\\x00b' holds a NUL character, which no path can: remove it$"):
        ensure_writable_dir(tmp_path / "a\x00b")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self/status").is_file() or "Umask:" not in Path("/proc/self/status").read_text(), reason="Linux shows the umask in /proc")
def test_publishing_reads_the_umask_without_setting_it(tmp_path, monkeypatch):
    """Learning the umask by setting it (os.umask(0), then back) left it 0 for a moment in every
    thread: a file another thread created then was world-writable. Linux shows it in /proc."""
    old = os.umask(0o027)
    try:
        def set_umask(mask):
            raise AssertionError(f"os.umask({mask:#o}) changes the umask of every thread")

        monkeypatch.setattr(os, "umask", set_umask)
        with atomic_path(tmp_path / "out.bin") as tmp:
            tmp.write_bytes(b"x")
        monkeypatch.undo()
        assert os.stat(tmp_path / "out.bin").st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_a_truncated_heic_photo_is_refused_in_one_line(tmp_path):
    """pillow-heif's decoding errors end with a newline: a HEIC photo cut short after its header
    was refused in two lines ("… (points to file position 379)\\n): re-export the image")."""
    pillow_heif = pytest.importorskip("pillow_heif")

    pillow_heif.from_pillow(Image.fromarray(np.full((64, 80, 3), 128, np.uint8))).save(tmp_path / "whole.heic", quality=90)
    data = (tmp_path / "whole.heic").read_bytes()
    (tmp_path / "cut.heic").write_bytes(data[:-10])  # its header whole, its picture cut short
    with pytest.raises(Gen3cInputError, match=r"^input image '.*cut\.heic' is corrupt or truncated \(.+\): re-export the image$") as caught:
        load_image(tmp_path / "cut.heic")
    assert "\n" not in str(caught.value)


def test_a_heic_photo_read_while_another_thread_registers_the_opener_is_read(tmp_path, monkeypatch):
    """Two threads reading iPhone photos in a fresh process: the one whose open failed before the
    other registered pillow-heif's opener called its photo damaged ("cannot be decoded (corrupt or
    truncated)"), having looked at the flag after the failure; it registers and reads it now."""
    pillow_heif = pytest.importorskip("pillow_heif")
    from gen3c.io import images

    pixels = np.zeros((40, 64, 3), np.uint8)
    pixels[:, :32] = 255
    pillow_heif.from_pillow(Image.fromarray(pixels)).save(tmp_path / "phone.heic", quality=95)
    monkeypatch.setattr(images, "_heif_registered", False)  # PIL as in a fresh process
    monkeypatch.setattr(Image, "ID", [i for i in Image.ID if i != "HEIF"])
    monkeypatch.setattr(Image, "OPEN", {k: v for k, v in Image.OPEN.items() if k != "HEIF"})
    real_open = Image.open

    def open_while_another_thread_registers(*args, **kwargs):
        try:
            return real_open(*args, **kwargs)
        except Image.UnidentifiedImageError:
            images._register_heif("the other thread's photo")  # done just after this open failed
            raise

    monkeypatch.setattr(Image, "open", open_while_another_thread_registers)
    heic = load_image(tmp_path / "phone.heic")
    assert heic.shape == (3, 40, 64)
    assert float(heic[:, :, :28].mean()) > 0.9 and float(heic[:, :, 36:].mean()) < -0.9


def test_a_depth_png_is_held_to_the_images_pixel_limit_not_pils(monkeypatch, tmp_path):
    """A 16-bit depth PNG is read as a photo is: PIL's decompression-bomb warning (below gen3c's
    limit) is not passed on, gen3c's 100 MP limit refuses it naming it, and a file past twice PIL's
    limit is gen3c's one line (was: the warning as a nameless note, and a raw DecompressionBombError)."""
    import warnings

    from gen3c.io import images
    from gen3c.io.depth import load_depth

    Image.fromarray(np.full((40, 50), 2000, np.uint16)).save(tmp_path / "d.png")  # 2,000 px
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)  # PIL warns from 1,500 px, raises from 3,000
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_depth(tmp_path / "d.png").shape == (40, 50)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(Gen3cInputError, match=r"^depth file '.*d\.png' is 50×40 = 0 MP, above the 0 MP limit: downscale it first$"):
        load_depth(tmp_path / "d.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 900)
    with pytest.raises(Gen3cInputError, match=r"^depth file '.*d\.png' claims 0 MP, above the 0 MP limit \(or a decompression bomb\)"):
        load_depth(tmp_path / "d.png")


def test_a_heic_photo_is_read_upright_once(tmp_path, monkeypatch):
    """An iPhone photo stored sideways (EXIF orientation 6) reads upright, as a JPEG of it does:
    pillow-heif turns it as it decodes, and gen3c does not turn it a second time."""
    pillow_heif = pytest.importorskip("pillow_heif")
    from gen3c.io import images

    pixels = np.zeros((40, 64, 3), np.uint8)
    pixels[:, :32] = 255  # white left half, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    pillow_heif.from_pillow(Image.fromarray(pixels)).save(tmp_path / "phone.heic", exif=exif.tobytes(), quality=95)
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    # PIL as in a fresh process: no HEIF opener until load_image registers it
    monkeypatch.setattr(images, "_heif_registered", False)
    monkeypatch.setattr(Image, "ID", [i for i in Image.ID if i != "HEIF"])
    monkeypatch.setattr(Image, "OPEN", {k: v for k, v in Image.OPEN.items() if k != "HEIF"})
    heic, jpeg = load_image(tmp_path / "phone.heic"), load_image(tmp_path / "phone.jpg")
    assert heic.shape == jpeg.shape == (3, 64, 40)  # upright: portrait
    assert float((heic - jpeg).abs().mean()) < 0.05
    assert float(heic[:, :28].mean()) > 0.9 and float(heic[:, 36:].mean()) < -0.9  # the white half is now on top


def _pillow_warning(text: str) -> None:
    """A warning that looks like Pillow's own (load_image says those as a "may be damaged" note)."""
    warnings.warn_explicit(text, UserWarning, os.path.join(os.sep, "site-packages", "PIL", "TiffImagePlugin.py"), 1)


def test_an_images_note_holds_only_warnings_of_its_own_read(tmp_path, monkeypatch):
    """Another thread's warning, raised while an image is read (the GUI reads them in background
    threads), was recorded by the read's process-wide warnings.catch_warnings: said in that
    image's "may be damaged" note, and never shown where it was raised. Now it goes on as it came."""
    import threading

    import gen3c.io.images
    from gen3c.errors import collect_notes

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    inside, elsewhere_done = threading.Event(), threading.Event()
    real_frame_count = gen3c.io.images._frame_count

    def reading(im):  # inside the read: Pillow's warning about this file, then a pause for the other thread
        _pillow_warning("own damage")
        inside.set()
        elsewhere_done.wait(5)
        return real_frame_count(im)

    monkeypatch.setattr(gen3c.io.images, "_frame_count", reading)
    notes: list[str] = []

    def read() -> None:
        with collect_notes() as collected:
            load_image(tmp_path / "a.png")
        notes.extend(collected)

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        reader = threading.Thread(target=read)
        reader.start()
        assert inside.wait(5)
        _pillow_warning("another thread's")
        elsewhere_done.set()
        reader.join(5)
    assert len(notes) == 1 and "(Pillow, reading it: own damage)" in notes[0], notes
    assert [str(w.message) for w in shown if issubclass(w.category, UserWarning)] == ["another thread's"]


def test_a_warning_raised_in_pillows_code_that_is_not_pillows_own_is_no_note_of_damage(tmp_path, monkeypatch):
    """A ResourceWarning the garbage collector raised while Pillow's code ran (a file another part
    of the program left open, collected then: the warning names the code that ran) was said as the
    image's damage: "input image '…' may be damaged (Pillow, reading it: unclosed file <…>)". So
    was a DeprecationWarning raised there. Pillow's own (UserWarnings) still are; the others go on
    as they came."""
    import gen3c.io.images
    from gen3c.errors import collect_notes

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    in_pillow = os.path.join(os.sep, "site-packages", "PIL", "Image.py")
    real_frame_count = gen3c.io.images._frame_count
    unclosed, deprecated = "unclosed file <_io.FileIO name='/tmp/walk.npz' mode='rb' closefd=True>", "Image.Image.getdata is deprecated"

    def reading(im):
        warnings.warn_explicit(unclosed, ResourceWarning, in_pillow, 1)
        warnings.warn_explicit(deprecated, DeprecationWarning, in_pillow, 2)
        warnings.warn_explicit("Corrupt EXIF data", UserWarning, in_pillow, 3)  # Pillow's own
        return real_frame_count(im)

    monkeypatch.setattr(gen3c.io.images, "_frame_count", reading)
    with warnings.catch_warnings(record=True) as shown, collect_notes() as notes:
        warnings.simplefilter("always")
        load_image(tmp_path / "a.png")
    assert notes == [f"input image {str(tmp_path / 'a.png')!r} may be damaged (Pillow, reading it: Corrupt EXIF data): re-export it if it looks wrong"]
    assert [(w.category, str(w.message)) for w in shown if str(w.message) in (unclosed, deprecated)] == [
        (ResourceWarning, unclosed), (DeprecationWarning, deprecated)]  # fmt: skip


def test_reads_in_two_threads_leave_the_warning_filters_as_they_found_them(tmp_path, monkeypatch):
    """Two reads whose warnings.catch_warnings overlapped (the first ends while the second is in
    its block) left the first's filters ("always") and its recorder in place for good: every later
    warning of the process went into a list no one reads. Now the blocks take turns."""
    import threading

    import gen3c.io.images
    from gen3c.errors import collect_notes

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    first_inside, second_inside, first_done = threading.Event(), threading.Event(), threading.Event()
    real_frame_count = gen3c.io.images._frame_count

    def reading(im):
        _pillow_warning(f"damage seen by {threading.current_thread().name}")
        if threading.current_thread().name == "first":
            first_inside.set()
            second_inside.wait(0.5)  # (with the blocks taking turns the second is not inside yet)
        else:
            second_inside.set()
            first_done.wait(5)
        return real_frame_count(im)

    monkeypatch.setattr(gen3c.io.images, "_frame_count", reading)
    notes: dict[str, list[str]] = {}

    def read() -> None:
        with collect_notes() as collected:
            load_image(tmp_path / "a.png")
        notes[threading.current_thread().name] = collected
        if threading.current_thread().name == "first":
            first_done.set()

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        filters = list(warnings.filters)
        first = threading.Thread(target=read, name="first")
        first.start()
        assert first_inside.wait(5)
        second = threading.Thread(target=read, name="second")
        second.start()
        first.join(5)
        second.join(5)
        assert warnings.filters == filters
        warnings.warn("after both reads", UserWarning, stacklevel=1)
    assert [str(w.message) for w in shown if issubclass(w.category, UserWarning)] == ["after both reads"]
    for name in ("first", "second"):
        assert len(notes[name]) == 1 and f"(Pillow, reading it: damage seen by {name})" in notes[name][0], notes


def test_an_output_folder_made_for_a_run_is_on_the_disk_before_its_outputs(tmp_path, monkeypatch):
    """ensure_writable_dir made missing folders with a bare mkdir: outputs published into them were
    flushed, but not the new folders' own entries, so a power cut soon after could lose the folder
    and every output in it. Now each new folder's parent is flushed; an existing folder is left
    alone."""
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    ensure_writable_dir(tmp_path / "a" / "b")
    assert sorted(synced) == sorted([str(tmp_path), str(tmp_path / "a")])
    synced.clear()
    ensure_writable_dir(tmp_path / "a" / "b")
    assert synced == []


def test_caught_warnings_keeps_the_filters_it_found_for_other_threads():
    """While one thread records its warnings ("always"), another thread's warning is treated as
    the filters there were say: shown, ignored, or raised in its own thread ("error")."""
    import threading

    from gen3c.errors import caught_warnings

    class Quiet(UserWarning):
        pass

    class Strict(UserWarning):
        pass

    raised = []

    def elsewhere() -> None:
        warnings.warn("quiet", Quiet, stacklevel=1)
        warnings.warn("shown", UserWarning, stacklevel=1)
        try:
            warnings.warn("strict", Strict, stacklevel=1)
        except Strict as exc:
            raised.append(str(exc))

    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", Quiet)
        warnings.simplefilter("error", Strict)
        with caught_warnings() as caught:
            warnings.warn("mine", Quiet, stacklevel=1)
            other = threading.Thread(target=elsewhere)
            other.start()
            other.join()
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == ["mine"]
    assert [str(w.message) for w in shown if issubclass(w.category, UserWarning)] == ["shown"] and raised == ["strict"]


def test_load_depth_refuses_what_is_no_path_and_expands_the_home_folder(tmp_path, monkeypatch):
    """load_depth(123) was Path's TypeError "expected str, bytes or os.PathLike object, not int",
    and load_depth("~/d.npy") looked for "./~/d.npy"."""
    with pytest.raises(Gen3cInputError, match=r"^depth file is int '123': pass the path to a depth file \(a str or a pathlib\.Path\)$"):
        load_depth(123)
    monkeypatch.setenv("HOME", str(tmp_path))
    np.save(tmp_path / "d.npy", np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    assert load_depth("~/d.npy").tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_load_image_refuses_what_is_no_path_and_expands_the_home_folder(tmp_path, monkeypatch):
    """load_image(123) was Path's TypeError, and load_image("~/p.png") looked for "./~/p.png"
    (the command line and gen3c.generate expand ~; the other public readers do too)."""
    with pytest.raises(Gen3cInputError, match=r"^input image is int '123': pass the path to an image file \(a str or a pathlib\.Path\)$"):
        load_image(123)
    monkeypatch.setenv("HOME", str(tmp_path))
    Image.fromarray(np.full((8, 8, 3), 255, np.uint8)).save(tmp_path / "p.png")
    assert load_image("~/p.png").shape == (3, 8, 8) and bool((load_image("~/p.png") == 1).all())


def _written_under_home(tmp_path, monkeypatch):
    """A home folder under ``tmp_path`` and a current folder beside it, so that a writer that
    did not expand ``~`` would make ``./~`` there (or fail, finding no such folder)."""
    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir()
    here.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    return home, here


WRITERS = {  # name in errors, what it writes, a call writing to path, the written file read back as lists
    "save_cameras": ("the camera file", "c.json", lambda p, cams: save_cameras(p, cams), lambda f: load_camera_file(f).w2c.tolist()),
    "save_nerfstudio_path": ("the camera path", "n.json", lambda p, cams: save_nerfstudio_path(p, cams), lambda f: load_camera_file(f).w2c.tolist()),
    "write_video": ("the video", "v.mp4", lambda p, cams: write_video(p, np.full((2, 16, 16, 3), 200, np.uint8)), lambda f: read_video(f)[0].shape),
    "save_image": ("the image", "i.png", lambda p, cams: save_image(p, torch.ones(3, 8, 10)), lambda f: load_image(f).tolist()),
    "write_ply": ("the point cloud", "p.ply", lambda p, cams: write_ply(p, torch.eye(3), torch.ones(3, 3)), lambda f: read_ply(f)[0].tolist()),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_the_writers_write_a_path_starting_with_tilde_into_the_home_folder(writer, tmp_path, monkeypatch):
    """save_cameras("~/c.json") and the other public writers wrote into a folder named "~" in the
    current one (or refused "create the folder '~' first"), and took 123 with Path's TypeError
    "expected str, bytes or os.PathLike object, not int"; the readers and the command line expand ~."""
    kind, file, write, read_back = WRITERS[writer]
    home, here = _written_under_home(tmp_path, monkeypatch)
    cams = Cameras(look_at(torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]]), torch.tensor([0.0, 0.0, 2.0])), make_intrinsics(40.0, 40.0, 8.0, 6.0), 12, 16)
    expected = {
        "save_cameras": cams.w2c.tolist(), "save_nerfstudio_path": cams.w2c.tolist(), "write_video": (2, 16, 16, 3),
        "save_image": torch.ones(3, 8, 10).tolist(), "write_ply": torch.eye(3).tolist(),
    }[writer]  # fmt: skip
    write("~/" + file, cams)
    assert os.listdir(here) == [] and os.listdir(home) == [file]
    got = read_back(home / file)
    assert got == expected if writer != "save_nerfstudio_path" else np.allclose(got, expected, atol=1e-6)
    with pytest.raises(Gen3cInputError, match=rf"^{writer} path is int '123': pass the path to write {kind} to \(a str or a pathlib\.Path\)$"):
        write(123, cams)


def test_write_video_gives_back_the_path_it_wrote_and_its_writers_expand_tilde(tmp_path, monkeypatch):
    """write_video returned Path("~/v.mp4") as given; VideoWriter and the OutputWriter of a run's
    files (save_outputs' folder) made "./~" and wrote there."""
    from gen3c.pipelines.camera_video import OutputWriter

    home, here = _written_under_home(tmp_path, monkeypatch)
    assert write_video("~/v.mp4", np.zeros((1, 16, 16, 3), np.uint8)) == home / "v.mp4"
    with VideoWriter("~/w.mp4") as writer:
        writer.write(np.zeros((1, 16, 16, 3), np.uint8))
    assert writer.path == home / "w.mp4" and count_video_frames(home / "w.mp4") == 1
    assert OutputWriter("~/runs", "clip").folder == home / "runs"
    assert os.listdir(here) == [] and sorted(os.listdir(home)) == ["runs", "v.mp4", "w.mp4"]
    for call, name in ((lambda: VideoWriter(123), "VideoWriter path"), (lambda: OutputWriter(123, "clip"), "OutputWriter folder")):
        with pytest.raises(Gen3cInputError, match=rf"^{name} is int '123': pass the path to write the (video|outputs) to \(a str or a pathlib\.Path\)$"):
            call()


def test_save_outputs_writes_into_a_folder_starting_with_tilde_in_the_home_folder(tmp_path, monkeypatch):
    """save_outputs(result, "~/runs", ...) made "./~/runs" and wrote the run there."""
    from gen3c.pipelines.camera_video import (
        build_cache,
        generate_video,
        prepare_source,
        preset_cameras,
        save_outputs,
    )
    from gen3c.pipelines.preview import PreviewGenerator

    home, here = _written_under_home(tmp_path, monkeypatch)
    image, depth = torch.zeros(3, 16, 24), torch.full((16, 24), 2.0)
    source = prepare_source(image, depth, make_intrinsics(20.0, 20.0, 12.0, 8.0), (16, 24))
    result = generate_video(build_cache([source]), preset_cameras(source, "left", "center_facing", num_frames=2), PreviewGenerator(), source.image)
    paths = save_outputs(result, "~/runs", "clip")
    assert paths["video"] == home / "runs" / "clip.mp4" and count_video_frames(paths["video"]) == 2
    assert os.listdir(here) == [] and sorted(os.listdir(home / "runs")) == ["clip.mp4", "clip_cameras.json"]
    with pytest.raises(Gen3cInputError, match=r"^save_outputs folder is int '123': pass the path to write the outputs to \(a str or a pathlib\.Path\)$"):
        save_outputs(result, 123, "clip")


def test_a_value_of_the_wrong_kind_is_named_as_describe_value_says_not_a_ndarray():
    """Refusals built as "is a {type name}" said "save_image image is a int", "depth is a
    list" and "keyframes is a ndarray"; they now say what gen3c.errors.describe_value says."""
    from gen3c.io.depth import depth_map
    from gen3c.io.images import as_image, image_to_uint8

    cams = Cameras(torch.eye(4)[None], make_intrinsics(40.0, 40.0, 8.0, 6.0), 12, 16)
    refusals = {
        "image is int '5': pass a (3, H, W) tensor in [-1, 1], a PIL image or an (H, W, 3) uint8 array": lambda: as_image(5),
        "image is a list of 2 items: pass a (3, H, W) tensor in [0, 1], a PIL image or a uint8 array": lambda: image_to_uint8([1, 2]),
        "depth is a list of 2 items: pass a tensor or a numpy array": lambda: depth_map([[1.0], [2.0]], "depth"),
        "keyframes is a numpy array of shape (1, 4, 4): pass a gen3c.trajectories.KeyframePath or None": lambda: cameras_to_nerfstudio_path(cams, 24.0, np.eye(4)[None]),
        "cameras is int '7': pass gen3c.cameras.Cameras(w2c, K, height, width)": lambda: cameras_to_nerfstudio_path(7),
    }
    for message, call in refusals.items():
        with pytest.raises(Gen3cInputError) as refused:
            call()
        assert str(refused.value) == message


def test_the_gen3c_pipeline_names_an_argument_that_is_no_tensor_as_describe_value_says():
    """Gen3cPipeline's own _describe said "got ndarray" / "got NoneType" for what is no tensor."""
    pytest.importorskip("diffusers")
    from gen3c.pipelines.gen3c import Gen3cPipeline

    colors, masks = torch.zeros(1, 1, 3, 8, 8), torch.ones(1, 1, 1, 8, 8)
    for image, got in ((np.zeros((8, 8, 3), np.uint8), "a numpy array of shape (8, 8, 3)"), (None, "NoneType 'None'")):
        with pytest.raises(Gen3cInputError) as refused:
            Gen3cPipeline.check_inputs(None, image, colors, masks, 1.0, 1)  # refused before the pipeline is used
        assert str(refused.value) == f"image must be a (3, H, W) tensor in [-1, 1], got {got}"


def test_read_ply_refuses_what_is_no_path_and_expands_the_home_folder(tmp_path, monkeypatch):
    """read_ply("~/p.ply") looked for "./~/p.ply" ("does not exist") though write_ply wrote it
    into the home folder, and read_ply(123) was Path's TypeError."""
    home, _ = _written_under_home(tmp_path, monkeypatch)
    write_ply(home / "p.ply", torch.eye(3), torch.full((3, 3), 255, dtype=torch.uint8))
    points, colors = read_ply("~/p.ply")
    assert points.tolist() == torch.eye(3).tolist() and colors.tolist() == [[255] * 3] * 3
    with pytest.raises(Gen3cInputError, match=r"^point cloud is int '123': pass the path to a PLY point cloud \(a str or a pathlib\.Path\)$"):
        read_ply(123)


def test_write_checksums_writes_into_a_folder_starting_with_tilde_and_refuses_what_is_no_folder(tmp_path, monkeypatch):
    """write_checksums("~/ckpt") listed "./~/ckpt" (nothing) and failed writing its checksums.json
    (FileNotFoundError), as for any missing folder; write_checksums(123) was Path's TypeError."""
    import hashlib

    from gen3c.models.verify import write_checksums

    home, here = _written_under_home(tmp_path, monkeypatch)
    (home / "ckpt").mkdir()
    (home / "ckpt" / "config.json").write_text("{}")
    assert write_checksums("~/ckpt") == home / "ckpt" / "checksums.json"
    written = json.loads((home / "ckpt" / "checksums.json").read_text())
    assert written == {"algorithm": "sha256", "files": {"config.json": hashlib.sha256(b"{}").hexdigest()}}
    with pytest.raises(Gen3cInputError, match=r"^write_checksums folder is int '123': pass the path to the checkpoint folder \(a str or a pathlib\.Path\)$"):
        write_checksums(123)
    with pytest.raises(Gen3cInputError, match=rf"^write_checksums folder {re.escape(repr(str(home / 'nowhere')))} is no folder \(missing, or a file\)"):
        write_checksums("~/nowhere")
    assert os.listdir(here) == [] and sorted(os.listdir(home)) == ["ckpt"]


def test_write_report_writes_into_a_folder_starting_with_tilde_in_the_home_folder(tmp_path, monkeypatch):
    """write_report(result, "~/eval") made "./~/eval" and wrote the report there; 123 was Path's TypeError."""
    from gen3c.evaluation.report import read_results, write_report
    from gen3c.evaluation.suite import BenchmarkConfig, BenchmarkResult, Method

    home, here = _written_under_home(tmp_path, monkeypatch)
    result = BenchmarkResult(BenchmarkConfig(scenes=("room",), presets=("left",), num_frames=4), [Method("still", "held still", None)], [])
    paths = write_report(result, "~/eval", plots=False)
    assert paths["report"] == home / "eval" / "report.md" and read_results(home / "eval" / "results.json")["cases"] == []
    assert os.listdir(here) == [] and sorted(os.listdir(home / "eval")) == ["report.md", "results.json"]
    with pytest.raises(Gen3cInputError, match=r"^write_report folder is int '123': pass the path to write the report to \(a str or a pathlib\.Path\)$"):
        write_report(result, 123, plots=False)


def _load_config(path):
    from gen3c.training.config import load_config

    return load_config(path)


def _load_manifest(path):
    from gen3c.batch.manifest import load_manifest

    return load_manifest(path)


@pytest.mark.parametrize(
    "read, name",
    [(load_image, "photo.png"), (load_depth, "depth.npy"), (read_video, "clip.mp4"), (read_ply, "cloud.ply"),
     (read_camera_file, "cameras.json"), (_load_config, "train.toml"), (_load_manifest, "jobs.jsonl")],
)  # fmt: skip
def test_a_long_path_is_quoted_by_its_start_and_its_end(tmp_path, read, name):
    """A 1000-character path was quoted whole (a 1000-character error line, in the CLI too), or by
    its first 200 characters, which left out the file's name; it is quoted by its first 50
    characters and its last 149, the file and the folders above it."""
    path = str(tmp_path.joinpath(*["d" * 200] * 5, name))
    with pytest.raises(Gen3cInputError) as refused:
        read(path)
    message = str(refused.value)
    assert f"'{path[:50]}…{path[-149:]}'" in message and len(message) < 500, message
