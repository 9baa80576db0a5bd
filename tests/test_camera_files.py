"""Camera files, field by field: every field gen3c reads is checked (one line naming it and the
fix), and no field that changes what the file means is dropped silently.

nerfstudio's meaning of each ``transforms.json`` field is its ``nerfstudio_dataparser.py``'s:
frames sorted by ``file_path``; ``fl_x``, ``fl_y``, ``cx``, ``cy``, ``w``, ``h`` required at the top
level or in every frame; lens distortion ``k1, k2, k3, k4, p1, p2`` (or ``distortion_params`` in that
order, ``camera_utils.get_distortion_params``), 0 when absent; ``camera_model`` one of
``cameras.py``'s ``CAMERA_MODEL_TO_TYPE`` (SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV
are perspective; OPENCV_FISHEYE, EQUIRECTANGULAR, … are not).
"""

import json
import math
import re

import numpy as np
import pytest
import torch

from gen3c.cameras import Cameras, camera_centers, make_intrinsics
from gen3c.errors import Gen3cInputError
from gen3c.io.camera_files import (
    _nerfstudio_keyframes,
    cameras_from_dict,
    cameras_to_dict,
    cameras_to_nerfstudio_path,
    load_camera_file,
    read_keyframe_path,
)
from gen3c.trajectories import KeyframePath

NAME = "camera file 'c.json'"
IDENTITY = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]


def moved(x: float) -> list[list[float]]:
    """An OpenGL camera-to-world: the identity rotation, standing at (x, 0, 0)."""
    return [[1.0, 0.0, 0.0, x], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]


def moved_flat(x: float) -> list[float]:
    """:func:`moved` as nerfstudio's 16 numbers, row-major."""
    return [v for row in moved(x) for v in row]


def transforms(**top) -> dict:
    """A 100×100 transforms.json, fl 100 px, principal point at the centre (50, 50) in nerfstudio's
    pixels; two frames standing at x = 0 and x = 1."""
    return {"fl_x": 100, "fl_y": 100, "cx": 50, "cy": 50, "w": 100, "h": 100, "frames": [{"transform_matrix": moved(0.0)}, {"transform_matrix": moved(1.0)}], **top}


def refused(data: dict, match: str) -> str:
    with pytest.raises(Gen3cInputError, match=match) as info:
        cameras_from_dict(data, NAME)
    message = str(info.value)
    assert message.startswith(NAME) and "\n" not in message
    return message


# -- transforms.json: lens distortion and camera models --------------------------------------
# A corner of the 100×100 image, (−½, −½) in gen3c's pixels, is the ray x = y = (−½ − 49.5) / 100 = −½,
# r = x² + y² = ½. k1 moves it by (x, y)·k1·r: fx·|k1|·½·½·√2 = 25·√2·k1 px; p1 moves it by
# (2·p1·x·y, p1·(r + 2y²)) = (½·p1, p1): 100·p1·√1.25 = 111.8·p1 px. The corners move most.


@pytest.mark.parametrize(
    ("coefficients", "match"),
    [({"k1": 0.1}, r"lens distortion 'k1' 0\.1 moves pixels up to 3\.54 px from the pinhole camera gen3c renders: set it to 0 "),
     ({"p1": 0.01}, r"lens distortion 'p1' 0\.01 moves pixels up to 1\.12 px"),
     ({"k1": 0.1, "k2": 0.0, "p2": -0.004}, r"lens distortion 'k1' 0\.1, 'p2' -0\.004 moves pixels"),
     ({"distortion_params": [0.1, 0, 0, 0, 0, 0]}, r"lens distortion 'distortion_params\[0\]' 0\.1 moves pixels up to 3\.54 px")],
)  # fmt: skip
def test_lens_distortion_beyond_half_a_pixel_is_refused_naming_the_field_and_the_shift(coefficients, match):
    """Before, every coefficient was dropped: the video was the pinhole camera's, silently."""
    message = refused(transforms(camera_model="OPENCV", **coefficients), match)
    assert "image_undistorter" in message


def test_a_frames_own_distortion_is_named_with_its_frame():
    data = transforms()
    data["frames"][1]["k1"] = 0.1
    refused(data, r"lens distortion frames\[1\]\.k1 0\.1 moves pixels up to 3\.54 px")


def test_zero_or_sub_half_pixel_distortion_reads_as_the_pinhole_camera():
    """k1 = 0.01 moves a corner 25·√2·0.01 = 0.35 px: the nearest pixel is the pinhole's, so the
    file is its pinhole camera (fl 100, principal point (49.5, 49.5) in gen3c's pixels)."""
    pinhole = cameras_from_dict(transforms())
    assert pinhole.K[0].tolist() == [[100.0, 0.0, 49.5], [0.0, 100.0, 49.5], [0.0, 0.0, 1.0]]
    for extra in ({"camera_model": "OPENCV", "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0}, {"camera_model": "PINHOLE"},
                  {"camera_model": "SIMPLE_RADIAL", "k1": 0.01}, {"distortion_params": [0, 0, 0, 0, 0, 0]}):  # fmt: skip
        cams = cameras_from_dict(transforms(**extra))
        assert torch.equal(cams.K, pinhole.K) and torch.equal(cams.w2c, pinhole.w2c)


def test_distortion_given_twice_differently_is_refused():
    refused(transforms(k1=0.01, distortion_params=[0.02, 0, 0, 0, 0, 0]), r"'k1' 0\.01 differs from 'distortion_params\[0\]' 0\.02: give the distortion once")
    data = transforms(k1=0.0)
    data["frames"][0]["k1"] = 0.3
    refused(data, r"frames\[0\]\.k1 0\.3 differs from the file's 'k1' 0\.0: give it once, at the top level or in every frame")


@pytest.mark.parametrize(
    ("model", "match"),
    [("OPENCV_FISHEYE", r"'camera_model' 'OPENCV_FISHEYE' is a fisheye camera: gen3c renders pinhole cameras; give the pinhole camera of the images undistorted first"),
     ("EQUIRECTANGULAR", r"'camera_model' 'EQUIRECTANGULAR' is an equirectangular \(360°\) camera: gen3c renders pinhole cameras"),
     ("VR180_L", r"is a VR180 camera"),
     ("pinhole", r"'camera_model' 'pinhole' is not one of nerfstudio's camera models: give one of SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV$"),
     (3, r"'camera_model' 3 is not one of nerfstudio's camera models")],
)  # fmt: skip
def test_cameras_that_are_not_pinhole_are_refused(model, match):
    """A fisheye with all coefficients 0 is still a fisheye (equidistant): not a pinhole camera."""
    refused(transforms(camera_model=model, k1=0.0, k2=0.0, k3=0.0, k4=0.0), match)


# -- transforms.json: required fields, poses and frame order ---------------------------------


@pytest.mark.parametrize(
    ("drop", "match"),
    [("fl_x", r"frames\[0\] has no 'fl_x' and the file has none: give the focal length in pixels as 'fl_x', at the top level or in every frame$"),
     ("fl_y", r"frames\[0\] has no 'fl_y' and the file has none: give the vertical focal length in pixels as 'fl_y'"),
     ("cx", r"frames\[0\] has no 'cx' and the file has none: give the principal point's x in pixels \(w / 2 for a centred camera\)"),
     ("h", r"frames\[0\] has no 'h' and the file has none: give the image height in pixels as 'h'")],
)  # fmt: skip
def test_a_missing_intrinsic_is_named_with_its_frame_and_the_fix(drop, match):
    """nerfstudio requires each of them (its dataparser asserts "fx not specified in frame"); gen3c
    used to guess fl_y = fl_x and a centred principal point, or fail on a bare KeyError."""
    data = transforms()
    del data[drop]
    refused(data, match)


def test_a_missing_focal_length_beside_camera_angle_x_says_how_to_convert_it():
    data = transforms(camera_angle_x=1.2)
    del data["fl_x"]
    refused(data, r"'camera_angle_x' is Blender's and instant-ngp's, which nerfstudio's format does not read: fl_x = w / 2 / tan\(camera_angle_x / 2\)\)$")


def test_per_frame_intrinsics_are_read_and_a_conflict_with_the_files_is_refused():
    data = transforms()
    del data["fl_x"]
    data["frames"][0]["fl_x"], data["frames"][1]["fl_x"] = 80, 90
    assert cameras_from_dict(data).K[:, 0, 0].tolist() == [80.0, 90.0]
    data["fl_x"] = 80
    refused(data, r"frames\[1\]\.fl_x 90 differs from the file's 'fl_x' 80: give it once")
    data = transforms()
    data["frames"][1]["w"] = 120
    refused(data, r"frames\[1\]\.w 120 differs from the file's 'w' 100")


@pytest.mark.parametrize(
    ("change", "match"),
    [({"fl_x": "100"}, r"'fl_x' must be a finite number, got '100'$"),
     ({"fl_y": -5}, r"'fl_y' -5 must be > 0 pixels$"),
     ({"cx": float("nan")}, r"'cx' must be a finite number, got nan$"),
     ({"w": 100.5}, r"'w' 100\.5 is not a whole number of pixels"),
     ({"cx": 0.5, "cy": 0.5, "fl_x": 1.2, "fl_y": 1.2}, r"frames\[0\] intrinsics \(fx=1\.2, fy=1\.2, cx=0, cy=0\) look normalised")],
)  # fmt: skip
def test_bad_intrinsic_values_are_one_line_errors_naming_the_field(change, match):
    refused(transforms(**change), match)


def test_a_rigid_pose_is_required_and_the_error_names_the_frames_transform_matrix():
    """Before: "camera file: camera file poses are not rigid (frame 1)", naming neither the field
    nor how to fix it."""
    data = transforms()
    data["frames"][1]["transform_matrix"][0][0] = 2.0  # x scaled by 2
    refused(data, r"frames\[1\]\.transform_matrix is not rigid: the 3×3 block must be a rotation \(orthonormal, det \+1\): take any scale, shear or mirroring out of it$")
    data = transforms()
    del data["frames"][1]["transform_matrix"]
    refused(data, r"frames\[1\] has no 'transform_matrix': give every frame its camera-to-world 4×4 \(OpenGL\)")


def test_frames_of_another_size_are_named():
    data = transforms()
    del data["w"], data["h"]
    data["frames"][0] |= {"w": 100, "h": 100}
    data["frames"][1] |= {"w": 200, "h": 100}
    refused(data, r"frames\[1\] is 200×100 \(w × h\) but frames\[0\] is 100×100: gen3c renders one image size")


def test_frames_are_in_file_path_order_as_nerfstudio_sorts_them():
    """nerfstudio sorts the frames by image path, part by part (pathlib's order: "a/b.png" before
    "a-b/c.png" although "-" sorts before "/"; "10.png" before "9.png"). The camera standing at x
    is the frame named for x's place: centres 0, 1, 2, 3."""
    data = transforms()
    data["frames"] = [{"file_path": path, "transform_matrix": moved(x)}
                      for path, x in (("./images/9.png", 2.0), ("a-b/c.png", 3.0), ("images/10.png", 1.0), ("a/b.png", 0.0))]  # fmt: skip
    cams = cameras_from_dict(data)
    assert cams.centers[:, 0].tolist() == [0.0, 3.0, 1.0, 2.0]  # a/b, a-b/c, images/10, images/9
    del data["frames"][2]["file_path"]
    refused(data, r"frames\[2\]\.file_path is None while other frames name their image: nerfstudio orders the frames by file_path; give every frame one, or none to keep the file's order$")
    for frame in data["frames"]:
        frame.pop("file_path", None)
    assert cameras_from_dict(data).centers[:, 0].tolist() == [2.0, 3.0, 1.0, 0.0]  # no names: the file's order


# -- nerfstudio camera_path.json -------------------------------------------------------------


def camera_path(**top) -> dict:
    """Two 48×64 cameras of fov 90° (f = 24 px), as nerfstudio's viewer writes them."""
    return {"camera_type": "perspective", "render_height": 48, "render_width": 64, "seconds": 1.0,
            "camera_path": [{"camera_to_world": moved_flat(0.0), "fov": 90.0, "aspect": 4 / 3}] * 2, **top}  # fmt: skip


def test_an_image_size_written_as_a_whole_float_is_read():
    """480.0 is 480 pixels (JavaScript numbers have no integers); 480.5 is no image size."""
    cams = cameras_from_dict(camera_path(render_height=48.0, render_width=64.0))
    assert (cams.height, cams.width) == (48, 64) and isinstance(cams.height, int)
    assert cams.K[0].tolist() == [[24.0, 0.0, 31.5], [0.0, 24.0, 23.5], [0.0, 0.0, 1.0]]
    refused(camera_path(render_height=48.5), r"'render_height' 48\.5 is not a whole number of pixels: give the size, in pixels, of the image the intrinsics refer to$")
    refused(camera_path(render_width=True), r"'render_width' must be a whole number of pixels, got True$")
    assert cameras_from_dict(transforms(w=100.0, h=100.0)).width == 100


def test_a_non_rigid_camera_to_world_is_named():
    data = camera_path()
    data["camera_path"] = [dict(data["camera_path"][0]), {**data["camera_path"][0], "camera_to_world": [2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]}]
    refused(data, r"camera_path\[1\]\.camera_to_world is not rigid: .*take any scale, shear or mirroring out of it$")


def test_a_gen3c_K_must_agree_with_the_fov_nerfstudio_renders():
    """fy = 60 px over 48 rows is a vertical fov of 2·atan(24 / 60) = 43.6028°. A fov edited to 50°
    is f = 24 / tan 25° = 51.4682 px: the image's top edge 24·(60 − 51.47) / 60 = 3.4 px apart, which
    nerfstudio and gen3c would render differently. 43.60° (rounded) is 0.002 px apart: K is read."""
    cams = Cameras(torch.eye(4).expand(2, 4, 4), make_intrinsics(60.0, 60.0, 30.0, 20.0), 48, 64)
    data = json.loads(json.dumps(cameras_to_nerfstudio_path(cams, fps=2)))
    assert data["camera_path"][0]["fov"] == pytest.approx(math.degrees(2 * math.atan(24 / 60)))
    data["camera_path"][1]["fov"] = 43.60
    assert torch.equal(cameras_from_dict(data).K, cams.K)
    data["camera_path"][1]["fov"] = 50
    refused(data, r"camera_path\[1\] 'fov' 50° is a focal length of 51\.4682 px over 48 rows, but its 'K' has fy 60 px: "
                  r"nerfstudio renders the fov and gen3c the K; fix the fov, or delete 'K' to render the fov's centred camera$")  # fmt: skip


@pytest.mark.parametrize(
    ("where", "key", "value", "match"),
    [(None, "is_cycle", "true", r"'is_cycle' must be true or false, got 'true'$"),
     (1, "override_transition_enabled", 1, r"keyframes\[1\]\.override_transition_enabled must be true or false, got 1$")],
)  # fmt: skip
def test_keyframe_flags_must_be_true_or_false(where, key, value, match):
    """Before, "is_cycle": "true" read as false and "override_transition_enabled": 1 as true."""
    data = camera_path(keyframes=[{"matrix": moved_flat(0.0), "fov": 90.0}, {"matrix": moved_flat(1.0), "fov": 90.0}])
    (data if where is None else data["keyframes"][where])[key] = value
    with pytest.raises(Gen3cInputError, match=match):
        read_keyframe_path(data, NAME)


# -- keyframes in nerfstudio's viewer ---------------------------------------------------------


def nerfstudio_viewer_render(data: dict, fps: float) -> tuple[list[float], list[float]]:
    """What nerfstudio's viewer renders after "Load Path" of ``data``, its FPS set to ``fps`` (its
    ``viewer/render_panel.py``). Load Path reads only the keyframes and ``default_transition_sec``
    (0.5 absent); its FPS, Loop (off) and tension stay as they were. Keyframe k comes its transition
    after keyframe k − 1 (``override_transition_sec`` when ``override_transition_enabled``, else
    the default); the duration is the last keyframe's time, summed in order from 0
    (``compute_duration``); the render writes n = int(fps × duration) frames, frame i at
    duration · i / n. Returns (keyframe times, frame times)."""
    default = data.get("default_transition_sec", 0.5)
    times, duration = [0.0], 0.0
    for kf in data["keyframes"][1:]:
        step = kf.get("override_transition_sec")
        duration += step if kf.get("override_transition_enabled") and step is not None else default
        times.append(duration)
    n = int(fps * duration)
    return times, [duration * i / n for i in range(n)]


def even_times(num_keyframes: int, num_frames: int, fps: float) -> list[float]:
    """Keyframe times as the GUI's even timing computes them (``GuiState._retime``): from the
    first frame, 0 s, to the last, (n − 1) / fps."""
    return [(num_frames - 1) / fps * k / (num_keyframes - 1) for k in range(num_keyframes)] if num_keyframes > 1 else [0.0]


def gui_timed(num_keyframes: int, num_frames: int, fps: float) -> KeyframePath:
    """Keyframes stepping along x, timed as the GUI times them by default (:func:`even_times`)."""
    w2c = torch.eye(4, dtype=torch.float64).repeat(num_keyframes, 1, 1)
    w2c[:, 0, 3] = -torch.arange(num_keyframes, dtype=torch.float64)
    return KeyframePath(w2c, torch.tensor(even_times(num_keyframes, num_frames, fps), dtype=torch.float64), 0.5, num_frames, fps)


def written(path: KeyframePath) -> dict:
    cams = path.cameras(make_intrinsics(24.0, 24.0, 31.5, 23.5), 48, 64)
    return json.loads(json.dumps(cameras_to_nerfstudio_path(cams, path.fps, path)))


def test_nerfstudio_renders_the_frames_of_gen3c_keyframes_at_their_times():
    """25 frames at 24 fps, three keyframes at 0, 0.5 and 1 s (the last frame, 24 / 24 s). Before,
    the file held transitions 0.5 and 0.5: the viewer's duration was 1 s, int(24 × 1) = 24
    frames, one short. A hold keyframe (the last pose again) at 25 / 24 s makes it 25 frames,
    frame i at i / 24 s as gen3c's, with the keyframes at gen3c's times; gen3c reads its three
    keyframes back."""
    path = gui_timed(3, 25, 24.0)
    data = written(path)
    keyframe_times, frame_times = nerfstudio_viewer_render(data, 24.0)
    assert keyframe_times == pytest.approx([0.0, 0.5, 1.0, 25 / 24])
    assert len(frame_times) == 25 and frame_times == pytest.approx([i / 24 for i in range(25)])
    hold = data["keyframes"][-1]
    assert hold["gen3c_hold"] is True and hold["matrix"] == data["keyframes"][2]["matrix"]
    back = read_keyframe_path(data)
    assert back.times.tolist() == [0.0, 0.5, 1.0] and (back.num_frames, back.fps) == (25, 24.0)
    assert torch.allclose(back.w2c, path.w2c) and torch.allclose(cameras_from_dict(data).w2c, path.cameras(make_intrinsics(24.0, 24.0, 31.5, 23.5), 48, 64).w2c)


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on the device)"))]
)
def test_a_nerfstudio_path_of_cameras_on_a_gpu_keeps_keyframes_made_on_the_cpu(device):
    """The GUI's keyframes live on the CPU; the cameras sampled from them may have been moved to a
    GPU. Checking that the cameras follow the keyframes subtracted CPU poses from CUDA ones."""
    path = gui_timed(3, 25, 24.0)
    cams = path.cameras(make_intrinsics(24.0, 24.0, 31.5, 23.5), 48, 64)
    assert cameras_to_nerfstudio_path(cams.to(device), path.fps, path) == cameras_to_nerfstudio_path(cams, path.fps, path)


@pytest.mark.parametrize("fps", [24.0, 30.0, 29.97, 7.0])
def test_nerfstudio_renders_every_frame_count_whatever_the_rounding(fps):
    """The viewer truncates fps × (a sum of transitions): for every n, the GUI's evenly timed
    keyframes must come to n frames, not n − 1 where the sum falls an ulp short (61 frames at
    29.97 or 7 fps did). The keyframes as cameras_to_nerfstudio_path writes them (sampling the
    spline for every n would take half a minute)."""
    for num_frames in range(2, 122):
        for num_keyframes in (1, 2, 3, 7):
            times = even_times(num_keyframes, num_frames, fps)
            keyframes = _nerfstudio_keyframes([moved_flat(t) for t in times], times, 90.0, 4 / 3, num_frames, fps)
            _, frame_times = nerfstudio_viewer_render({"keyframes": keyframes}, fps)
            assert len(frame_times) == num_frames, (num_frames, num_keyframes)


def test_keyframes_inside_the_video_get_a_hold_at_each_end():
    """Keyframes at 0.25 s and 0.75 s of 12 frames at 8 fps (1.5 s): gen3c holds the first pose
    until 0.25 s and the last from 0.75 s. The viewer starts at its first keyframe: a hold at 0 s
    and one at 12 / 8 = 1.5 s put its keyframes at 0.25 and 0.75 s and give it 12 frames."""
    path = KeyframePath(gui_timed(2, 2, 1.0).w2c, [0.25, 0.75], 0.5, 12, 8.0)
    data = written(path)
    assert [kf.get("gen3c_hold", False) for kf in data["keyframes"]] == [True, False, False, True]
    keyframe_times, frame_times = nerfstudio_viewer_render(data, 8.0)
    assert keyframe_times == pytest.approx([0.0, 0.25, 0.75, 1.5]) and frame_times == pytest.approx([i / 8 for i in range(12)])
    assert read_keyframe_path(data).times.tolist() == [0.25, 0.75]
    # A keyframe on the first frame and one past the video: no hold (nerfstudio plays on to 2 s: 16 frames).
    data = written(KeyframePath(path.w2c, [0.0, 2.0], 0.5, 12, 8.0))
    assert "gen3c_hold" not in json.dumps(data) and len(nerfstudio_viewer_render(data, 8.0)[1]) == 16


def test_a_hold_keyframe_is_only_at_an_end_of_an_open_path():
    data = written(gui_timed(3, 25, 24.0))
    data["keyframes"][1]["gen3c_hold"] = True
    with pytest.raises(Gen3cInputError, match=r"^camera file 'c\.json': keyframes\[1\]\.gen3c_hold marks a keyframe gen3c adds at an end of an open path"):
        read_keyframe_path(data, NAME)
    data["keyframes"][1]["gen3c_hold"] = "yes"
    with pytest.raises(Gen3cInputError, match=r"keyframes\[1\]\.gen3c_hold must be true or false, got 'yes'$"):
        read_keyframe_path(data, NAME)


# -- gen3c cameras JSON ----------------------------------------------------------------------


def gen3c_file(**top) -> dict:
    return {**cameras_to_dict(Cameras(torch.eye(4)[None], make_intrinsics(60.0, 60.0, 32.0, 24.0), 48, 64)), **top}


@pytest.mark.parametrize(
    ("frame", "match"),
    [({"w2c": IDENTITY, "c2w": moved(1.0)}, r"frames\[0\]\.w2c and frames\[0\]\.c2w are both given: keep one"),
     ({"w2c": IDENTITY, "K": [[60, 0, 32], [0, 60, 24], [0, 0, 1]], "intrinsics": [50, 50, 32, 24]}, r"frames\[0\]\.K and frames\[0\]\.intrinsics are both given"),
     ({"w2c": IDENTITY, "intrinsic": [50, 50, 32, 24]}, r"frames\[0\]\.intrinsic is not a key of a gen3c cameras JSON \(frames\[0\] holds w2c, c2w, K, intrinsics\): fix its name or remove it$"),
     ({"w2c": IDENTITY, "intrinsics": ["50", 50, 32, 24]}, r"frames\[0\]\.intrinsics\[0\] must be a finite number, got '50'$"),
     ({"w2c": [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}, r"frames\[0\]\.w2c is not rigid: "),
     ({"c2w": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]}, r"frames\[0\]\.c2w must have \[0, 0, 0, 1\] as its last row: \[0, 0, 0, 1\] is its last column, so it looks transposed \(column-major\): transpose it$"),
     ({"w2c": [["a"] * 4] * 4}, r"frames\[0\]\.w2c must be a 4×4 matrix of numbers, got \[\['a'"),
     ({"w2c": IDENTITY, "intrinsics": [0.9, 1.2, 0.5, 0.5]}, r"frames\[0\] intrinsics \(fx=0\.9, fy=1\.2, cx=0\.5, cy=0\.5\) look normalised")],
)  # fmt: skip
def test_gen3c_frames_say_one_thing_one_way(frame, match):
    """Before: w2c won over c2w, K over intrinsics and the file's K over a misspelt "intrinsic",
    silently; "50" was read as 50."""
    refused({**gen3c_file(K=[[60, 0, 32], [0, 60, 24], [0, 0, 1]]), "frames": [frame]}, match)




def test_a_pose_of_the_wrong_shape_names_the_shapes_taken():
    """A 3×4 pose is read (its [0, 0, 0, 1] row added): the error for a 3×3 said only "must be 4×4"."""
    three_by_four = IDENTITY[:3]
    K = [[60, 0, 32], [0, 60, 24], [0, 0, 1]]
    assert cameras_from_dict({**gen3c_file(K=K), "frames": [{"w2c": three_by_four}]}).w2c.shape == (1, 4, 4)
    refused({**gen3c_file(K=K), "frames": [{"w2c": [row[:3] for row in three_by_four]}]},
            r"frames\[0\]\.w2c must be 4×4 \(or 3×4: its rows without \[0, 0, 0, 1\]\), got shape \(3, 3\)$")
    # A KITTI poses.txt line (camera-to-world, 3×4 row by row) pasted as one list: "got shape (12,)" said not how to write it.
    kitti_line = [1, 0, 0, 0.5, 0, 1, 0, 0, 0, 0, 1, 2.0]
    refused({**gen3c_file(K=K), "frames": [{"c2w": kitti_line}]},
            r"frames\[0\]\.c2w holds 12 numbers in one list, a 3×4 pose written flat \(as a KITTI poses.txt line\): write them as its 3 rows, "
            r"\[\[r11, r12, r13, tx\], \[r21, r22, r23, ty\], \[r31, r32, r33, tz\]\] \(a KITTI line's numbers in order, 4 a row\)$")
    rows = [kitti_line[i : i + 4] for i in (0, 4, 8)]  # written as the message says: read, centre at (0.5, 0, 2)
    cams = cameras_from_dict({**gen3c_file(K=K), "frames": [{"c2w": rows}]})
    assert torch.allclose(camera_centers(cams.w2c[0]), torch.tensor([0.5, 0.0, 2.0]))

@pytest.mark.parametrize("key", ["w2c", "K"])
def test_a_number_beyond_float32_is_named_with_its_field(key):
    """1e39 is finite in the file but infinite in float32: the error said "Cameras.w2c contain NaN
    or infinite values", naming neither the field nor what was wrong with it."""
    frame = {"w2c": [row[:] for row in IDENTITY], "K": [[60, 0, 32], [0, 60, 24], [0, 0, 1]]}
    frame[key][0][2 if key == "K" else 3] = 1e39
    refused({**gen3c_file(), "frames": [frame]}, rf"frames\[0\]\.{key} holds 1e\+39, beyond float32's ±3\.4e\+38, the precision cameras are rendered in: check its units$")

@pytest.mark.parametrize(
    ("top", "match"),
    [({"convension": "opengl"}, r"'convension' is not a key of a gen3c cameras JSON \(the top level holds format, version, convention, note, "),
     ({"version": 2}, r"'version' 2 is not 1, the one this gen3c reads: write the file with this gen3c$"),
     ({"format": "colmap"}, r"'format' 'colmap' is not 'gen3c-cameras'"),
     ({"width": 64.5}, r"'width' 64\.5 is not a whole number of pixels")],
)  # fmt: skip
def test_gen3c_top_level_fields_are_checked(top, match):
    refused(gen3c_file(**top), match)


def test_a_gen3c_file_with_whole_float_sizes_reads(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(gen3c_file(width=64.0, height=48.0)))
    cams = load_camera_file(path)
    assert (cams.height, cams.width) == (48, 64) and cams.K[0, 0, 2].item() == 32.0


def test_a_json_nested_thousands_deep_is_one_line(tmp_path):
    """Before: json's RecursionError escaped as a traceback."""
    path = tmp_path / "c.json"
    path.write_text('{"frames": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(Gen3cInputError, match=r"^camera file '.*c\.json' nests its JSON lists or objects thousands deep, as no camera file does: pass ") as info:
        load_camera_file(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("tension", [2.0, -0.5, float("nan")])
def test_nerfstudio_spline_tension_out_of_range_is_named_as_written(tension):
    """Before: 'smoothness_value' 2 was refused as "smoothness -1", a number the file does not hold."""
    data = {"camera_path": [{"camera_to_world": moved_flat(0.0), "fov": 50.0}], "render_height": 48, "render_width": 64, "smoothness_value": tension,
            "keyframes": [{"matrix": moved_flat(0.0), "fov": 50.0, "aspect": 4 / 3}, {"matrix": moved_flat(1.0), "fov": 50.0, "aspect": 4 / 3}]}  # fmt: skip
    with pytest.raises(Gen3cInputError, match=rf"^{NAME}: 'smoothness_value' {tension:g} is nerfstudio's spline tension, between 0 \(smooth\) and 1 \(tense\): fix it$"):
        read_keyframe_path(data, NAME)


def test_a_fov_written_as_text_is_quoted_in_its_error():
    """Before: "'fov' 50 is not a vertical field of view in degrees: give one between 0.01 and 179",
    for a fov of "50" (text), which reads as a number in range."""
    data = {"camera_path": [{"camera_to_world": moved_flat(0.0), "fov": "50"}], "render_height": 48, "render_width": 64}
    refused(data, r"camera_path\[0\] 'fov' '50' is not a vertical field of view in degrees: give one between 0\.01 and 179$")


def test_a_long_camera_file_is_checked_as_one_stack(monkeypatch):
    """Every frame's pose and intrinsics are checked at once: checked one by one, a 20,000-frame
    file took a minute to read (a 64 MiB one, the most a camera file may be, most of an hour)."""
    import gen3c.io.camera_files as camera_files

    calls = []
    for name in ("validate_poses", "check_intrinsics_fit"):
        check = getattr(camera_files, name)
        monkeypatch.setattr(camera_files, name, lambda *args, check=check, name=name, **kw: calls.append(name) or check(*args, **kw))
    n = 300
    gl = [moved_flat(0.01 * i) for i in range(n)]
    ns_path = {"camera_path": [{"camera_to_world": m, "fov": 50.0} for m in gl], "render_height": 48, "render_width": 64}
    frames = [{"c2w": moved(0.01 * i)} if i % 2 else {"w2c": moved(-0.01 * i)} for i in range(n)]
    for data in (ns_path, gen3c_file(K=SHARED_K, frames=frames), transforms(frames=[{"transform_matrix": moved(0.01 * i)} for i in range(n)])):
        calls.clear()
        cams = cameras_from_dict(data, NAME)
        assert len(cams) == n and calls.count("validate_poses") <= 2
        # frame i stands at x = 0.01 i (c2w and OpenGL) or w2c moves the world by −0.01 i: the camera at x = 0.01 i
        assert torch.allclose(cams.centers[:, 0], 0.01 * torch.arange(n, dtype=torch.float32), atol=1e-6)
        assert calls.count("check_intrinsics_fit") <= 2  # (transforms.json: was each frame's own, 20,000 frames 24 s)


SHARED_K = [[60, 0, 32], [0, 60, 24], [0, 0, 1]]


@pytest.mark.parametrize(
    ("frame", "match"),
    [({"c2w": [[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}, r"frames\[7\]\.c2w is not rigid: "),
     ({"w2c": IDENTITY, "K": [[60, 0, 500], [0, 60, 24], [0, 0, 1]]}, r"frames\[7\] intrinsics \(fx=60, fy=60, cx=500, cy=24\) put the principal point outside")],
)  # fmt: skip
def test_a_long_files_first_bad_frame_is_named(frame, match):
    frames = [{"w2c": moved(0.1 * i)} for i in range(12)]
    frames[7], frames[9] = frame, frame
    refused(gen3c_file(K=SHARED_K, frames=frames), match)


def test_a_camera_file_name_the_file_system_refuses_is_one_line(tmp_path):
    """Before: the raw OSError "[Errno 36] File name too long" (a traceback from gen3c generate)."""
    path = tmp_path / ("x" * 300 + ".json")
    with pytest.raises(Gen3cInputError, match=r"^camera file '/tmp/[^'…]{45}…x{144}\.json' cannot be read \(File name too long\): check the path and the file's permissions$") as err:
        load_camera_file(path)
    assert len(str(err.value)) < 320  # the path quoted in 200 characters (its start and its end), not its 300+


def test_a_scannet_4x4_K_reads_as_its_3x3_and_one_not_padded_is_refused():
    """As ``--intrinsics`` reads ScanNet's ``intrinsic_color.txt``; before: "must be 3×3, got shape (4, 4)"."""
    K4 = [[60, 0, 32, 0], [0, 50, 24, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    for data in ({**gen3c_file(K=K4), "frames": [{"w2c": IDENTITY}]}, {**gen3c_file(), "frames": [{"w2c": IDENTITY, "K": [v for row in K4 for v in row]}]}):
        assert cameras_from_dict(data, NAME).K[0].tolist() == [[60, 0, 32], [0, 50, 24], [0, 0, 1]]
    path = cameras_to_nerfstudio_path(Cameras(torch.eye(4)[None], make_intrinsics(60.0, 60.0, 32.0, 24.0), 48, 64))
    path["camera_path"][0]["K"] = [[60, 0, 32, 0], [0, 60, 24, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    assert cameras_from_dict(path, NAME).K[0].tolist() == [[60, 0, 32], [0, 60, 24], [0, 0, 1]]
    K4[0][3] = 7
    refused({**gen3c_file(), "frames": [{"w2c": IDENTITY, "K": K4}]}, r"frames\[0\]\.K is a 4×4 matrix whose last row \[0\.0, 0\.0, 0\.0, 1\.0\] and column \[7\.0, 0\.0, 0\.0, 1\.0\] are not \[0, 0, 0, 1\] \(not intrinsics padded to 4×4\): write its 3×3 intrinsics$")


@pytest.mark.parametrize(
    ("frames", "match"),
    [([], r"'frames' is empty: give one frame per image, each with its 'transform_matrix' \(camera-to-world 4×4, OpenGL\)$"),
     ([{"file_path": "images/frame_00001.png"}], r"frames\[0\] has no 'transform_matrix': give every frame its camera-to-world 4×4 \(OpenGL\)")],
)  # fmt: skip
def test_a_transforms_json_without_poses_is_named_as_one(frames, match):
    """Before: read as a gen3c cameras JSON, "'fl_x' is not a key of a gen3c cameras JSON"."""
    refused(transforms(frames=frames), match)


@pytest.mark.parametrize(
    "value, got",
    [(123, "int '123'"), (None, "NoneType 'None'"), ({"frames": []}, "a dict of 1 item"), (np.eye(4), "a numpy array of shape (4, 4)")],
)
def test_a_camera_file_that_is_no_path_is_refused_in_one_line(value, got):
    """load_camera_file(123) was Path's TypeError "expected str, bytes or os.PathLike object, not int"."""
    with pytest.raises(Gen3cInputError, match=rf"^camera file is {re.escape(got)}: pass the path to a camera file \(a str or a pathlib\.Path\)") as info:
        load_camera_file(value)
    assert ("cameras_from_dict" in str(info.value)) == isinstance(value, dict)


def test_a_camera_file_path_starting_with_tilde_is_in_the_home_folder(tmp_path, monkeypatch):
    """load_camera_file("~/c.json") read "./~/c.json" ("does not exist"); the command line and
    gen3c.generate expand ~ as a shell does, so the Python readers do too."""
    monkeypatch.setenv("HOME", str(tmp_path))
    cams = Cameras(torch.eye(4)[None], make_intrinsics(60.0, 60.0, 32.0, 24.0), 48, 64)
    (tmp_path / "c.json").write_text(json.dumps(cameras_to_dict(cams)))
    assert torch.equal(load_camera_file("~/c.json").K, cams.K)
    with pytest.raises(Gen3cInputError, match=r"^camera file '~nosuchuser_gen3c/c\.json' starts with ~nosuchuser_gen3c, the home folder of"):
        load_camera_file("~nosuchuser_gen3c/c.json")


def test_a_keyframe_path_of_more_frames_than_a_run_may_ask_for_names_the_file_and_its_entries(tmp_path):
    """A gen3c camera_path.json of 100,001 camera_path entries (one a frame) was refused as
    "num_frames 100001 is more than a run may ask for", naming no field of the file, and only
    after its 100,001 entries were read (~20 s)."""
    data = written(gui_timed(2, 25, 24.0))
    assert read_keyframe_path(data).num_frames == 25
    # (entries left empty: the count is said before any entry is read, and the file stays small)
    long = {**data, "camera_path": [{}] * 100_001, "seconds": 100_001 / 24.0}
    (tmp_path / "c.json").write_text(json.dumps(long))
    with pytest.raises(Gen3cInputError, match=r"^camera file '.*c\.json': 'camera_path' has 100001 entries, one a frame: more than the 100000 frames a run may ask for"):
        load_camera_file(tmp_path / "c.json")


# -- the bytes of a camera file, as editors and shells write them ----------------------------


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
def test_a_camera_file_saved_with_a_byte_order_mark_reads(tmp_path, encoding):
    """Notepad saves UTF-8 with a byte order mark, PowerShell 5's `>` writes UTF-16 with one (a
    batch manifest so written reads). Before: "is not valid JSON (Unexpected UTF-8 BOM …)" and,
    for UTF-16, "is of an unknown binary format, not a camera file"."""
    text = json.dumps(gen3c_file(frames=[{"c2w": moved(0.5)}], K=SHARED_K))
    bom = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    (tmp_path / "c.json").write_bytes(bom + text.encode(encoding))
    cams = load_camera_file(tmp_path / "c.json")
    assert cams.centers[0].tolist() == [0.5, 0.0, 0.0] and cams.K[0].tolist() == SHARED_K


def test_a_camera_file_of_no_text_says_so_in_one_line(tmp_path):
    """A camera file in a Windows code page (é as 0xe9) was called "JSON text, not a camera file":
    it is one, in the wrong encoding. UTF-32 with its mark and CRLF line ends read."""
    text = json.dumps(gen3c_file(frames=[{"c2w": moved(0.5)}], K=SHARED_K), indent=1).replace("\n", "\r\n")
    (tmp_path / "c.json").write_bytes(text.encode("utf-32"))
    assert load_camera_file(tmp_path / "c.json").centers[0].tolist() == [0.5, 0.0, 0.0]
    (tmp_path / "c.json").write_bytes(text.replace('"opencv"', '"opencv", "note": "caméra"', 1).encode("cp1252"))
    with pytest.raises(Gen3cInputError, match=r"^camera file '.*c\.json' is not UTF-8 text \(line \d+ holds the byte 0xe9\): save it as UTF-8$"):
        load_camera_file(tmp_path / "c.json")


@pytest.mark.parametrize("digits", [400, 5000])
@pytest.mark.parametrize("key", ["w2c", "fps", "width"])
def test_an_integer_beyond_any_float_is_one_line(tmp_path, key, digits):
    """A 400-digit integer escaped as OverflowError ("int too large to convert to float": `gen3c
    generate` called it a bug in gen3c, with a traceback); one of 5000 digits as Python's ValueError
    "Exceeds the limit (4300 digits) for integer string conversion"."""
    huge = "1" + "0" * (digits - 1)
    fields = {"width": "64", "fps": "24", "w2c": json.dumps(IDENTITY)}
    fields[key] = f"[[1, 0, 0, {huge}], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]" if key == "w2c" else huge
    data = f'{{"width": {fields["width"]}, "height": 48, "fps": {fields["fps"]}, "K": {SHARED_K}, "frames": [{{"w2c": {fields["w2c"]}}}]}}'
    (tmp_path / "c.json").write_text(data)
    with pytest.raises(Gen3cInputError, match=rf"^camera file '.*c\.json' holds the integer 1000…000 \({digits} digits\), beyond any floating-point number: check that number$"):
        load_camera_file(tmp_path / "c.json")


@pytest.mark.parametrize(
    ("text", "match"),
    [('{"width": 64, "height": 48, "width": 640, ', r"gives 'width' twice in one object \(64, then 640\)"),
     ('{"width": 64, "height": 48, "frames": [{"w2c": IDENTITY, "w2c": MOVED}], ', r"gives 'w2c' twice in one object \(\[\[1\.0, 0\.0, 0\.0, 0\.0\], \[0\.0, 1\.0, 0\.0\.\.\., then \[\[1\.0, 0\.0, 0\.0, 2\.0\], \[0\.0, 1\.0, 0\.0\.\.\.\)")],
)  # fmt: skip
def test_a_key_given_twice_in_one_object_is_refused(tmp_path, text, match):
    """JSON readers keep a repeated key's last value and drop the first without a word (a pose
    pasted in and the old one left above it). Before: the file read, the first value gone."""
    text = text.replace("IDENTITY", json.dumps(IDENTITY)).replace("MOVED", json.dumps(moved(2.0)))
    if '"frames"' not in text:
        text += f'"frames": [{{"w2c": {json.dumps(IDENTITY)}}}], '
    (tmp_path / "c.json").write_text(text + f'"K": {json.dumps(SHARED_K)}}}')
    with pytest.raises(Gen3cInputError, match=rf"^camera file '.*c\.json' {match}: a JSON reader keeps the last and drops the first; keep one$"):
        load_camera_file(tmp_path / "c.json")


@pytest.mark.parametrize(
    ("frame", "match"),
    [({"w2c": [[True, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}, r"frames\[0\]\.w2c must be a 4×4 matrix of numbers, got \[\[True, 0, 0, 0\]"),
     ({"w2c": IDENTITY, "K": [[60, 0, 32], [0, 60, 24], [False, False, True]]}, r"frames\[0\]\.K must be a 3×3 matrix of numbers, got \[\[60, 0, 32\], \[0, 60, 24\], \[False")],
)  # fmt: skip
def test_true_or_false_in_a_matrix_is_no_number(frame, match):
    """Every other number of a camera file refuses true and false; a matrix read them as 1 and 0."""
    refused(gen3c_file(frames=[frame]), match)


@pytest.mark.parametrize(
    ("data", "key"),
    [({"width": 64, "height": 48, "K": SHARED_K, "frames": [{}] * 100_001}, "frames"),
     ({"fl_x": 60, "fl_y": 60, "cx": 32, "cy": 24, "w": 64, "h": 48, "frames": [{}] * 100_001}, "frames"),
     ({"render_height": 48, "render_width": 64, "camera_path": [{}] * 100_001}, "camera_path")],
)  # fmt: skip
def test_a_camera_file_of_more_cameras_than_a_run_may_ask_for_names_the_file(tmp_path, box_scene, data, key):
    """Before: every camera was read (120,000 took 20 s) and `gen3c generate` then said
    "--num_video_frames 120000 is impossible", a flag the user never passed; passing it as asked
    was refused with "has 120000 cameras but 5 frames were asked for: pass --num_video_frames 120000"."""
    from typer.testing import CliRunner

    from gen3c.cli import app

    (tmp_path / "c.json").write_text(json.dumps(data))  # (entries left empty: the count is said before any is read)
    message = rf"camera file '.*c\.json': '{key}' has 100001 entries, one a frame: more than the 100000 frames a run may ask for; sample the path at 100000 frames or fewer$"
    with pytest.raises(Gen3cInputError, match="^" + message):
        load_camera_file(tmp_path / "c.json")
    image, depth, _, _ = box_scene
    res = CliRunner().invoke(app, ["generate", "--input_image_path", str(image), "--depth_path", str(depth), "--fov", "60", "--resolution", "48x80",
                                   "--video_save_folder", str(tmp_path / "out"), "--camera_file", str(tmp_path / "c.json")])  # fmt: skip
    assert res.exit_code == 2 and re.fullmatch("error: " + message, res.output.strip()), res.output


@pytest.mark.parametrize(
    ("text", "match"),
    [("1 0 0 0 0 1 0 0 0 0 1 0\n1 0 0 0.1 0 1 0 0 0 0 1 0\n",
      r"is text, not valid JSON \(its first line: '1 0 0 0 0 1 0 0 0 0 1 0'\): pass a gen3c cameras JSON, a nerfstudio camera_path\.json or a nerfstudio transforms\.json; "
      r"a KITTI poses\.txt \(12 numbers a line\) becomes a gen3c cameras JSON as docs/cameras\.md, 'gen3c cameras JSON', shows$"),
     ("tx,ty,tz\n0,0,0\n", r"is text, not valid JSON \(its first line: 'tx,ty,tz'\): pass a gen3c cameras JSON, a nerfstudio camera_path\.json or a nerfstudio transforms\.json$"),
     ('{"frames": [],}', r"is not valid JSON \(Expecting property name enclosed in double quotes: line 1 column 15 \(char 14\)\): pass a gen3c cameras JSON")],
)  # fmt: skip
def test_a_text_file_that_is_not_json_says_so(tmp_path, text, match):
    """Before: a KITTI poses.txt was "is not valid JSON (Extra data: line 1 column 3 (char 2))",
    a CSV "(Expecting value: line 1 column 1 (char 0))": JSON's parser's words for text that
    never was JSON."""
    (tmp_path / "c.json").write_text(text)
    with pytest.raises(Gen3cInputError, match=rf"^camera file '.*c\.json' {match}"):
        load_camera_file(tmp_path / "c.json")


@pytest.mark.parametrize("key", ["c2w", "w2c"])
def test_a_camera_moved_along_x_in_a_file_moves_the_rendered_view_the_other_way(tmp_path, box_scene, key):
    """docs/cameras.md's convention, closed form, through `gen3c generate --camera_file`: OpenCV
    axes (x right), a camera standing 0.5 to the right of the source (c2w translation +0.5, or
    w2c −0.5) sees the box at depth 2 move left by fx · 0.5 / 2 pixels (test-only)."""
    from typer.testing import CliRunner

    from gen3c.cli import app
    from gen3c.io.video import read_video

    sign = 1.0 if key == "c2w" else -1.0
    data = {"width": 160, "height": 96, "intrinsics": [120.0, 120.0, 80.0, 48.0], "frames": [{key: IDENTITY}, {key: moved(0.5 * sign)}]}
    (tmp_path / "c.json").write_text(json.dumps(data))
    image, depth, _, _ = box_scene
    res = CliRunner().invoke(app, ["generate", "--input_image_path", str(image), "--depth_path", str(depth), "--intrinsics", "120,120,80,48",
                                   "--resolution", "96x160", "--video_save_folder", str(tmp_path / "out"), "--camera_file", str(tmp_path / "c.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    frames, _ = read_video(tmp_path / "out" / "output.mp4")
    centres = []
    for frame in frames.astype(int):  # the orange box (230, 120, 20), columns 60 … 109 in the source view
        orange = (frame[..., 0] > 180) & (frame[..., 1] > 80) & (frame[..., 1] < 160) & (frame[..., 2] < 80)
        columns = np.nonzero(orange.any(0))[0]
        centres.append((columns.min() + columns.max()) / 2)
    assert centres[0] == pytest.approx(84.5, abs=1.0) and centres[1] - centres[0] == pytest.approx(-120 * 0.5 / 2, abs=1.5)


#: The source camera (OpenCV w2c = identity) as nerfstudio's OpenGL camera-to-world: y and z turned round.
OPENGL_SOURCE = [[1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]


def other_axes_file(kind: str, mended: bool) -> dict:
    """A two-camera file of ``kind`` that starts at the source camera (a 120 px focal length,
    96×160) written in the other axes (OpenCV for OpenGL: the identity as nerfstudio's pose, the
    OpenGL source camera as gen3c's w2c) or, ``mended``, in the file's own; the second camera
    stands 0.1 to the right."""

    def pose(x: float) -> list[list[float]]:
        flip = [1.0, -1.0, -1.0, 1.0] if mended != (kind == "gen3c") else [1.0] * 4
        if kind == "gen3c":  # w2c: the rows flip, the camera at +x is w2c translation −x
            return [[v * flip[r] for v in row] for r, row in enumerate(moved(-x))]
        return [[v * flip[c] for c, v in enumerate(row)] for row in moved(x)]  # OpenGL c2w: the columns flip

    if kind == "gen3c":
        return {"width": 160, "height": 96, "intrinsics": [120.0, 120.0, 80.0, 48.0], "frames": [{"w2c": pose(0.0)}, {"w2c": pose(0.1)}]}
    if kind == "camera_path":
        fov = math.degrees(2 * math.atan(48 / 120))
        entries = [{"camera_to_world": [v for row in pose(x) for v in row], "fov": fov} for x in (0.0, 0.1)]
        return {"render_height": 96, "render_width": 160, "camera_path": entries}
    return {"fl_x": 120, "fl_y": 120, "cx": 80.5, "cy": 48.5, "w": 160, "h": 96, "frames": [{"transform_matrix": pose(x)} for x in (0.0, 0.1)]}


@pytest.mark.parametrize(
    ("kind", "fix"),
    [("gen3c", "a gen3c cameras JSON's poses are OpenCV (x right, y down, z forward), these look OpenGL (x right, y up, looking along −z: "
               "nerfstudio's, Blender's): negate the 2nd and 3rd rows of each 'w2c', or the 2nd and 3rd columns of each 'c2w'"),
     ("camera_path", "nerfstudio's 'camera_to_world' is an OpenGL camera-to-world (x right, y up, looking along −z), these look OpenCV "
                     "(x right, y down, z forward): negate the 2nd and 3rd columns of each 'camera_to_world'"),
     ("transforms", "nerfstudio's 'transform_matrix' is an OpenGL camera-to-world (x right, y up, looking along −z), these look OpenCV "
                    "(x right, y down, z forward): negate the 2nd and 3rd columns of each 'transform_matrix'")],
)  # fmt: skip
def test_a_path_written_in_the_other_axes_is_said_so_with_its_format_s_fix(tmp_path, box_scene, kind, fix):
    """The input camera hand-written as nerfstudio's identity camera_to_world (OpenCV axes where
    nerfstudio's are OpenGL), or gen3c's w2c in OpenGL axes, turns every camera round, upside down
    and away from the scene. Before, the note said "starts 0 units and 180° away …: give the poses
    in the world of that camera (w2c = identity)", a key no nerfstudio file has, which a
    camera_to_world of the identity already was."""
    from gen3c.errors import collect_notes
    from gen3c.pipelines.request import GenerationRequest, read_input, scene_cameras

    image, depth, _, _ = box_scene
    settings = {"input_image_path": str(image), "depth_path": str(depth), "intrinsics": "120,120,80,48", "resolution": "96x160", "num_video_frames": 2}
    data = read_input(GenerationRequest(**settings), "image")
    (tmp_path / "c.json").write_text(json.dumps(other_axes_file(kind, mended=False)))
    with collect_notes() as notes:
        scene_cameras(GenerationRequest(**settings, camera_file=str(tmp_path / "c.json")), "image", data)
    assert notes == [
        f"camera file {str(tmp_path / 'c.json')!r}: its first camera is the camera of the input image turned 180° about its x axis (upside down, "
        f"looking away from the scene), as a pose written in the other axes (OpenCV for OpenGL, or the reverse) is: {fix}"
    ]
    # Mended as the note says: the source camera, nothing to say.
    (tmp_path / "c.json").write_text(json.dumps(other_axes_file(kind, mended=True)))
    with collect_notes() as notes:
        cameras = scene_cameras(GenerationRequest(**settings, camera_file=str(tmp_path / "c.json")), "image", data)
    assert notes == [] and torch.allclose(cameras.w2c[0], torch.eye(4)) and torch.allclose(camera_centers(cameras.w2c[1]), torch.tensor([0.1, 0.0, 0.0]))


@pytest.mark.parametrize(
    ("kind", "origin"),
    [("gen3c", "w2c = identity"),
     ("camera_path", "camera_to_world = [[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]] in nerfstudio's OpenGL axes"),
     ("transforms", "transform_matrix = [[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]] in nerfstudio's OpenGL axes")],
)  # fmt: skip
def test_a_path_starting_elsewhere_is_told_the_input_camera_in_its_format_s_words(tmp_path, box_scene, kind, origin):
    """Before, every camera file starting away from the input camera was told "(w2c = identity)":
    a nerfstudio file that wrote its camera_to_world so got its cameras turned round."""
    from gen3c.errors import collect_notes
    from gen3c.pipelines.request import GenerationRequest, read_input, scene_cameras

    image, depth, _, _ = box_scene
    settings = {"input_image_path": str(image), "depth_path": str(depth), "intrinsics": "120,120,80,48", "resolution": "96x160", "num_video_frames": 2}
    data = read_input(GenerationRequest(**settings), "image")
    file = other_axes_file(kind, mended=True)
    for frame in file.get("frames", file.get("camera_path")):  # every camera 1 unit further along z
        if "camera_to_world" in frame:
            frame["camera_to_world"][11] += 1.0
        else:
            frame["w2c" if kind == "gen3c" else "transform_matrix"][2][3] += 1.0
    (tmp_path / "c.json").write_text(json.dumps(file))
    with collect_notes() as notes:
        scene_cameras(GenerationRequest(**settings, camera_file=str(tmp_path / "c.json")), "image", data)
    assert len(notes) == 1 and notes[0].startswith(f"camera file {str(tmp_path / 'c.json')!r} starts 1 units"), notes
    assert notes[0].endswith(f"give the poses in the world of that camera ({origin}) and start the path there"), notes


def test_gen3c_generate_says_a_path_in_the_other_axes_once(tmp_path, box_scene):
    """Through `gen3c generate`: the one note says what is wrong; the renders, which see nothing,
    add no note of their own (before: "no point of the cache lands in any of the 2 cameras: check
    that their poses are OpenCV world-to-camera … gen3c.cameras.invert_pose, opengl_to_opencv")."""
    from typer.testing import CliRunner

    from gen3c.cli import app

    (tmp_path / "c.json").write_text(json.dumps(other_axes_file("camera_path", mended=False)))
    image, depth, _, _ = box_scene
    res = CliRunner().invoke(app, ["generate", "--input_image_path", str(image), "--depth_path", str(depth), "--intrinsics", "120,120,80,48",
                                   "--resolution", "96x160", "--video_save_folder", str(tmp_path / "out"), "--camera_file", str(tmp_path / "c.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    notes = [line for line in res.output.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "turned 180° about its x axis" in notes[0] and notes[0].endswith("negate the 2nd and 3rd columns of each 'camera_to_world'"), res.output


@pytest.mark.parametrize("kind", ["camera_path", "transforms"])
def test_a_nerfstudio_camera_above_the_input_camera_stands_at_minus_y_in_gen3c_s_world(kind):
    """docs/cameras.md, closed form (test-only): only a nerfstudio camera's own axes are OpenGL's;
    the world is gen3c's (y down, z forward), so the input camera turned to OpenGL axes is the
    source, a translation (0, −0.1, 0) stands 0.1 above it and (0, 0, 0.1) 0.1 ahead, unturned."""
    poses = [[row[:] for row in OPENGL_SOURCE] for _ in range(3)]
    poses[1][1][3], poses[2][2][3] = -0.1, 0.1
    if kind == "camera_path":
        fov = math.degrees(2 * math.atan(24 / 60))
        data = {"render_height": 48, "render_width": 64, "camera_path": [{"camera_to_world": [v for row in p for v in row], "fov": fov} for p in poses]}
    else:
        data = {"fl_x": 60, "fl_y": 60, "cx": 32, "cy": 24, "w": 64, "h": 48, "frames": [{"transform_matrix": p} for p in poses]}
    cameras = cameras_from_dict(data, NAME)
    assert torch.allclose(cameras.w2c[:, :3, :3], torch.eye(3).expand(3, 3, 3))
    assert torch.allclose(camera_centers(cameras.w2c), torch.tensor([[0.0, 0.0, 0.0], [0.0, -0.1, 0.0], [0.0, 0.0, 0.1]]))


def test_a_file_whose_principal_point_the_crop_leaves_outside_names_the_file_and_its_size(tmp_path, box_scene):
    """A gen3c file with its width and height swapped (704×1280 for a 1280×704 camera): its
    principal point (640, 352) is inside its portrait image but above the landscape crop of it.
    Before, `gen3c generate` said "Cameras.K (frame 0) (fx=…, cy=-13.9) put the principal point
    outside the 112×64 (W×H) image: pass intrinsics in pixels of this image", naming no file."""
    from typer.testing import CliRunner

    from gen3c.cli import app

    data = {"width": 704, "height": 1280, "intrinsics": [1108.5, 1108.5, 640.0, 352.0], "frames": [{"w2c": IDENTITY}]}
    (tmp_path / "c.json").write_text(json.dumps(data))
    image, depth, _, _ = box_scene
    res = CliRunner().invoke(app, ["generate", "--input_image_path", str(image), "--depth_path", str(depth), "--fov", "60", "--resolution", "64x112",
                                   "--video_save_folder", str(tmp_path / "out"), "--camera_file", str(tmp_path / "c.json")])  # fmt: skip
    assert res.exit_code == 2 and not (tmp_path / "out").exists(), res.output
    assert re.fullmatch(
        r"error: camera file '.*c\.json': camera 0's principal point \(640, 352\) in its 704×1280 \(W×H\) image lands at \(101\.8, -13\.9\), outside "
        r"the working 112×64 image, once brought to it as the input's frames are \(resized and centre-cropped\): the file's image size looks wrong "
        r"\(a portrait size for a landscape input: swapped\?\); give the width and height of the image its intrinsics are in pixels of",
        res.output.strip(),
    ), res.output


@pytest.mark.parametrize(("content", "said"), [(b"", "is empty"), (b" \r\n", "is empty (only blank space)")])
def test_an_empty_camera_file_is_said_to_be_empty(tmp_path, content, said):
    """Before: "is not valid JSON (Expecting value: line 1 column 1 (char 0))" for a file of no
    bytes (a download or a redirect that wrote nothing), JSON's parser's words for it."""
    (tmp_path / "c.json").write_bytes(content)
    with pytest.raises(Gen3cInputError) as info:
        load_camera_file(tmp_path / "c.json")
    assert re.fullmatch(
        rf"camera file '.*c\.json' {re.escape(said)}: write the cameras into it, or pass the file again \(it may not have finished copying\)", str(info.value)
    ), info.value


def test_a_nerfstudio_path_of_another_zoom_is_told_the_input_s_fov(tmp_path, box_scene):
    """A path made in nerfstudio's viewer has its default fov, not the photo's; the note said "give
    the file's first camera the intrinsics of the input image", which a camera_path.json says as a
    fov. It now names the fov: the input's fy 120 px at the working 96×160 is 480 px over the
    file's 480×640 (4:3: resized by ¼ to cover, then cropped), a fov of 2·atan(240 / 480) = 53.13°;
    with it, nothing is said."""
    from gen3c.errors import collect_notes
    from gen3c.pipelines.request import GenerationRequest, read_input, scene_cameras

    image, depth, _, _ = box_scene
    settings = {"input_image_path": str(image), "depth_path": str(depth), "intrinsics": "120,120,80,48", "resolution": "96x160", "num_video_frames": 2}
    data = read_input(GenerationRequest(**settings), "image")
    said = {}
    for fov in (50.0, 53.13):
        entries = [{"camera_to_world": [v for row in OPENGL_SOURCE for v in row], "fov": fov}] * 2
        (tmp_path / "c.json").write_text(json.dumps({"render_height": 480, "render_width": 640, "camera_path": entries}))
        with collect_notes() as said[fov]:
            scene_cameras(GenerationRequest(**settings, camera_file=str(tmp_path / "c.json")), "image", data)
    assert len(said[50.0]) == 1 and said[50.0][0].endswith(
        "give the file's first camera the intrinsics of the input image (in nerfstudio's terms a 'fov' of 53.13° over its render_height 480, without a 'K')"
    ), said
    assert said[53.13] == []
