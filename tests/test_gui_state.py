"""The GUI's state without a browser: keyframe editing, camera files, request building and the
one-job-at-a-time runner (the keyframe spline itself: tests/test_trajectories.py)."""

import dataclasses
import io
import json
import re
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gen3c.cameras import look_at
from gen3c.errors import Gen3cInputError, Gen3cModelError, collect_notes, note, record_notes
from gen3c.gui.state import MAX_UPLOAD_BYTES, GuiState, JobRunner
from gen3c.io.camera_files import cameras_to_dict, fit_cameras, load_camera_file
from gen3c.pipelines.request import (
    GenerationRequest,
    check_unused_settings,
    load_scene,
    make_cameras,
    run_request,
)
from gen3c.pipelines.spelling import row_spelling
from gen3c.trajectories import DEFAULT_SMOOTHNESS, interpolate_keyframes

F64 = torch.float64


def orbit_w2c(n: int = 4) -> torch.Tensor:
    """n OpenCV cameras on an arc, looking at a point 2 units ahead."""
    angles = torch.linspace(-0.4, 0.5, n, dtype=F64)
    eyes = torch.stack([torch.sin(angles) * 0.8, -0.1 * torch.arange(n, dtype=F64), 2 - torch.cos(angles) * 2], -1)
    return look_at(eyes, torch.tensor([0.0, 0.0, 2.0], dtype=F64).expand_as(eyes))


@pytest.fixture
def state(tmp_path, room_sample):
    s = GuiState(tmp_path / "work", GenerationRequest(resolution="96x160", num_video_frames=13))
    s.load_sample(*room_sample)
    return s


# -- keyframe editing -------------------------------------------------------------------------


def test_keyframe_add_move_delete_reorder(state):
    poses = orbit_w2c(4)
    ids = [state.add_keyframe(p).id for p in poses[:3]]
    duration = 12 / 24
    assert [kf.time for kf in state.keyframes] == pytest.approx([0.0, duration / 2, duration])  # even timing
    state.move_keyframe(ids[1], poses[3])
    assert torch.equal(state.keyframes[1].w2c, poses[3])
    state.reorder_keyframe(ids[2], 0)
    assert [kf.id for kf in state.keyframes] == [ids[2], ids[0], ids[1]]
    assert [kf.time for kf in state.keyframes] == pytest.approx([0.0, duration / 2, duration])  # times stay with slots
    state.delete_keyframe(ids[0])
    assert [kf.id for kf in state.keyframes] == [ids[2], ids[1]]
    assert [kf.time for kf in state.keyframes] == pytest.approx([0.0, duration])
    with pytest.raises(Gen3cInputError, match="does not exist"):
        state.delete_keyframe(ids[0])
    with pytest.raises(Gen3cInputError, match="rigid"):
        state.add_keyframe(torch.eye(4, dtype=F64) * 2)


def test_keyframe_times_sort_and_turn_off_even_timing(state):
    ids = [state.add_keyframe(p).id for p in orbit_w2c(3)]
    state.set_keyframe_time(ids[0], 0.45)
    assert not state.auto_time
    assert [kf.id for kf in state.keyframes] == [ids[1], ids[0], ids[2]]
    with pytest.raises(Gen3cInputError, match="already at"):
        state.set_keyframe_time(ids[1], 0.45)
    with pytest.raises(Gen3cInputError, match="≥ 0"):
        state.set_keyframe_time(ids[1], -1.0)
    state.set_auto_time(True)
    assert [kf.time for kf in state.keyframes] == pytest.approx([0.0, 0.25, 0.5])


def test_a_keyframe_added_at_a_time_another_has_is_refused_as_a_time_set_is(state):
    """``add_keyframe(w2c, time)`` (even timing off) took another keyframe's time, a NaN or a
    negative time, and the path then failed at Generate ("keyframe times [0, 0] must be strictly
    increasing"), or went wrong; ``set_keyframe_time`` refuses these."""
    poses = orbit_w2c(3)
    state.set_auto_time(False)
    state.add_keyframe(poses[0], 0.25)
    for time, words in ((0.25, r"another keyframe is already at 0.25 s"), (float("nan"), r"keyframe time nan must be"), (-1.0, "≥ 0")):
        with pytest.raises(Gen3cInputError, match=words):
            state.add_keyframe(poses[1], time)
    assert [kf.time for kf in state.keyframes] == [0.25]  # nothing added
    state.add_keyframe(poses[1], 0.5)
    state.set_path_mode("keyframes")
    assert len(state.cameras()) == 13


def test_a_keyframe_at_the_input_s_camera_starts_the_path_where_the_video_starts(state):
    """The video's first frame is the input's image: a keyframe path authored from views in the
    page (none exactly at the input's camera) jumped after it, with a note naming a camera file
    the user never made. "Add input camera" puts the first keyframe there."""
    from gen3c.pipelines.preview import PreviewGenerator

    def run_notes() -> list[str]:
        with record_notes() as notes:
            run_request(state.build_request(), source=state.run_source, generator=PreviewGenerator())
        return [n for n in notes if "jumps onto" in n]

    later = [state.add_keyframe(p).id for p in orbit_w2c(3)[1:]]
    state.set_path_mode("keyframes")
    assert len(run_notes()) == 1 and state.starts_away_from_input  # the page says it before the run
    source = state.add_source_keyframe()
    assert [kf.id for kf in state.keyframes] == [source.id, *later]
    assert [kf.time for kf in state.keyframes] == pytest.approx([0.0, 0.25, 0.5])  # even timing: 13 frames at 24 fps
    assert torch.equal(state.keyframe_path().w2c[0], state.source.w2c.to(state.keyframe_path().w2c.dtype))
    assert run_notes() == [] and not state.starts_away_from_input
    state.set_keyframe_time(later[0], 0.3)  # times by hand: the input's camera goes at 0 s
    state.delete_keyframe(source.id)
    assert state.add_source_keyframe().time == 0.0 and state.keyframes[0].w2c.equal(state.source.w2c.double())
    with pytest.raises(Gen3cInputError, match="the path already starts at the input's camera"):
        state.add_source_keyframe()


def test_a_run_s_note_on_a_path_away_from_the_input_points_at_the_page_s_fix(state):
    """A run's note on a path starting away from the input's camera named the path file the page
    wrote (paths/gui_001_path.json) and said to give its poses in that camera's world: nothing a
    page user can do. The page names the keyframe path and its fix, "Add input camera"."""
    from gen3c.gui.state import page_run_note
    from gen3c.pipelines.preview import PreviewGenerator

    for p in orbit_w2c(3)[1:]:
        state.add_keyframe(p)
    state.set_path_mode("keyframes")
    request = state.build_request()
    with record_notes() as notes:
        run_request(request, source=state.run_source, generator=PreviewGenerator())
    (run_note,) = [n for n in notes if "jumps onto" in n]
    assert run_note.startswith(f"camera file {request.camera_file!r} starts ")
    page = page_run_note(run_note, request.camera_file, "keyframes")
    assert page == "Keyframe 1" + run_note[len(f"camera file {request.camera_file!r}") : run_note.index(", so the video jumps")] + (
        ', so the video jumps onto the keyframe path after it: "Add input camera" (Camera path → Keyframes) starts the path there'
    )
    # An imported fixed path: named as such; the fix (its poses in the input camera's world) is the user's file's.
    assert page_run_note(run_note, request.camera_file, "file") == "The imported camera path" + run_note[len(f"camera file {request.camera_file!r}") :]
    other = "--chunk_frames 9: the run has only 9 frames"
    assert page_run_note(other, request.camera_file, "keyframes") == other and page_run_note(run_note, None, "preset") == run_note


def test_an_imported_path_in_the_other_axes_is_mended_in_the_file_imported(state):
    """An imported nerfstudio path that writes the input's camera as the identity camera_to_world
    (OpenCV axes where nerfstudio's are OpenGL) reaches the run as the page's own gen3c file:
    the run's note told the page user to negate the rows of each 'w2c' of that file, which they
    never chose; the page says to mend the file they imported."""
    from gen3c.gui.state import page_run_note
    from gen3c.pipelines.preview import PreviewGenerator

    entries = [{"camera_to_world": [1.0, 0, 0, x, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], "fov": 50.0} for x in (0.0, 0.1, 0.2)]
    state.import_camera_path(json.dumps({"render_height": 96, "render_width": 160, "camera_path": entries}))
    assert state.path_mode == "file"
    request = state.build_request()
    with record_notes() as notes:
        run_request(request, source=state.run_source, generator=PreviewGenerator())
    (run_note,) = [n for n in notes if "turned 180°" in n]
    assert run_note.endswith("negate the 2nd and 3rd rows of each 'w2c', or the 2nd and 3rd columns of each 'c2w'")  # the page's gen3c file's fix
    assert page_run_note(run_note, request.camera_file, "file") == (
        "The imported camera path: its first camera is the camera of the input image turned 180° about its x axis (upside down, looking away "
        "from the scene), as a pose written in the other axes (OpenCV for OpenGL, or the reverse) is: mend the poses of the camera file imported "
        '(docs/cameras.md, "Camera files", gives each format\'s axes) and import it again'
    )


def test_keyframe_path_has_one_camera_per_frame_through_the_keyframes(state):
    poses = orbit_w2c(3)
    for p in poses:
        state.add_keyframe(p)
    state.set_path_mode("keyframes")
    cams = state.cameras()
    assert len(cams) == 13 and (cams.height, cams.width) == (96, 160)
    assert torch.allclose(cams.K, state.source.K.expand(13, 3, 3))
    for k, frame in ((0, 0), (1, 6), (2, 12)):  # even timing puts keyframe k on frames 0, 6, 12
        assert torch.allclose(cams.w2c[frame].double(), poses[k], atol=1e-5)
    state.update(num_video_frames=25)  # even timing follows the length
    assert torch.allclose(state.cameras().w2c[12].double(), poses[1], atol=1e-5)


def test_empty_keyframe_path_is_a_clear_error(state):
    state.set_path_mode("keyframes")
    with pytest.raises(Gen3cInputError, match="add keyframes"):
        state.cameras()
    with pytest.raises(Gen3cInputError, match="import"):
        state.set_path_mode("file")


def test_keyframes_of_a_one_frame_video_are_a_clear_error(state):
    """Even timing over a 1-frame video put every keyframe at 0 s, then failed with "keyframe
    times [0, 0] must be strictly increasing"."""
    state.update(num_video_frames=1)
    state.set_path_mode("keyframes")
    poses = orbit_w2c(2)
    state.add_keyframe(poses[0])
    assert torch.allclose(state.cameras().w2c[0].double(), poses[0], atol=1e-5)  # one keyframe: a still camera
    state.add_keyframe(poses[1])
    with pytest.raises(Gen3cInputError, match=r"^a 1-frame video has no time to spread 2 keyframes over: set Frames to 2 or more, or keep one keyframe$"):
        state.cameras()
    state.update(num_video_frames=2)
    assert torch.allclose(state.cameras().w2c[1].double(), poses[1], atol=1e-5)


def test_a_reorder_to_a_position_that_is_no_whole_number_keeps_the_keyframe(state):
    """reorder_keyframe popped the keyframe before inserting it at its new position: a position
    such as 1.0 or "1" raised a TypeError there, and the keyframe was gone from the path."""
    ids = [state.add_keyframe(p).id for p in orbit_w2c(3)]
    for position in (1.0, "1", None, float("nan")):
        with pytest.raises(Gen3cInputError, match=r"^keyframe position .* must be a whole number \(0 is the first\)$"):
            state.reorder_keyframe(ids[0], position)
        assert [kf.id for kf in state.keyframes] == ids
    state.reorder_keyframe(ids[0], np.int64(2))  # a numpy integer is a whole number
    assert [kf.id for kf in state.keyframes] == [ids[1], ids[2], ids[0]]


def test_a_keyframe_pose_that_is_no_matrix_or_too_large_is_one_line_naming_the_keyframe(state):
    """A pose given as text or None was a TypeError from torch; one whose translation float32
    cannot hold (1e300) was taken, then the path failed with "Cameras.w2c contain NaN or infinite
    values (frame 1)", naming no keyframe. A keyframe moved so is named ("keyframe pose" before)."""
    first = state.add_keyframe(orbit_w2c(2)[0])
    huge = torch.eye(4, dtype=F64)
    huge[0, 3] = 1e300
    for pose, words in (("x", "is no 4×4 matrix of numbers"), (None, "is no 4×4 matrix of numbers"), (huge, "holds 1e+300, beyond float32's")):
        for action, subject in ((state.add_keyframe, "keyframe pose"), (lambda p: state.move_keyframe(first.id, p), f"keyframe #{first.id}'s pose")):
            with pytest.raises(Gen3cInputError, match=rf"^{subject} .*" + re.escape(words)):
                action(pose)
    assert len(state.keyframes) == 1 and torch.equal(state.keyframes[0].w2c, orbit_w2c(2)[0])
    state.move_keyframe(first.id, torch.eye(4).tolist())  # a nested list of numbers is a pose
    assert torch.equal(state.keyframes[0].w2c, torch.eye(4, dtype=F64))


@pytest.mark.parametrize("value", ["0.2", None, True, b"1"])
def test_a_keyframe_time_or_smoothness_that_is_no_number_is_one_line(state, value):
    """A keyframe time or smoothness that is no number (another client's text, None) was a
    TypeError from np.isfinite or a comparison: the page's "internal error"."""
    first = state.add_keyframe(orbit_w2c(2)[0])
    with pytest.raises(Gen3cInputError, match=r"^keyframe time .* is not a number: enter one$"):
        state.set_keyframe_time(first.id, value)
    if value is not None:  # (None: no time given, the keyframe goes after the last)
        with pytest.raises(Gen3cInputError, match=r"^keyframe time .* is not a number: enter one$"):
            state.add_keyframe(orbit_w2c(2)[1], value)  # even timing on: checked all the same
        state.set_auto_time(False)
        with pytest.raises(Gen3cInputError, match=r"^keyframe time .* is not a number: enter one$"):
            state.add_keyframe(orbit_w2c(2)[1], value)
    with pytest.raises(Gen3cInputError, match=r"^smoothness .* is not a number: enter one$"):
        state.set_smoothness(value)
    assert [(kf.id, kf.time) for kf in state.keyframes] == [(first.id, 0.0)] and state.smoothness == DEFAULT_SMOOTHNESS


# -- camera files -----------------------------------------------------------------------------


def test_camera_path_export_import_round_trip(state, tmp_path, room_sample):
    for p in orbit_w2c(4):
        state.add_keyframe(p)
    state.set_keyframe_time(state.keyframes[1].id, 0.1)
    state.set_smoothness(0.8)
    state.set_path_mode("keyframes")
    exported = state.camera_path_json()
    data = json.loads(exported)
    assert len(data["camera_path"]) == 13 and len(data["keyframes"]) == 5 and data["gen3c"]["smoothness"] == 0.8
    # The fifth holds the last pose at 13 / 24 s: nerfstudio's viewer, after "Load Path" at 24 fps,
    # renders int(24 × 13 / 24) = 13 frames, as gen3c (the sum of the transitions is the duration).
    assert data["keyframes"][4]["gen3c_hold"] and data["keyframes"][4]["time"] == 13 / 24
    assert int(24 * sum(kf["override_transition_sec"] for kf in data["keyframes"][1:])) == 13
    assert data["smoothness_value"] == pytest.approx(0.2)  # nerfstudio's spline tension
    assert len(data["keyframes"][0]["matrix"]) == 16

    other = GuiState(tmp_path / "other", GenerationRequest(resolution="96x160", num_video_frames=5))
    other.load_sample(*room_sample)
    other.import_camera_path(exported)
    assert other.path_mode == "keyframes" and other.smoothness == 0.8 and not other.auto_time
    assert other.request.num_video_frames == 13
    assert [kf.time for kf in other.keyframes] == pytest.approx([kf.time for kf in state.keyframes])
    for a, b in zip(other.keyframes, state.keyframes, strict=True):
        assert torch.allclose(a.w2c, b.w2c, atol=1e-12)
    assert torch.allclose(other.cameras().w2c, state.cameras().w2c, atol=1e-6)


@pytest.mark.parametrize("mode", ["preset", "keyframes"])
def test_saved_camera_path_replays_the_same_cameras_with_the_cli(tmp_path, box_scene, mode):
    """The downloaded camera_path.json, read as `gen3c generate --camera_file` reads it, gives the
    cameras the page shows — also for intrinsics nerfstudio cannot say (fx ≠ fy, off-centre)."""
    image_path, depth_path, _, _ = box_scene
    state = GuiState(tmp_path, GenerationRequest(resolution="96x160", num_video_frames=9))
    state.load_files(str(image_path), str(depth_path), intrinsics="150,170,60,40")
    if mode == "keyframes":
        for p in orbit_w2c(3):
            state.add_keyframe(p)
        state.set_path_mode("keyframes")
    shown = state.cameras()
    path = tmp_path / "camera_path.json"
    path.write_bytes(state.camera_path_json())
    replayed = fit_cameras(load_camera_file(path), 9, 96, 160)
    assert torch.allclose(replayed.K, shown.K, atol=1e-5) and torch.allclose(replayed.w2c, shown.w2c, atol=1e-6)
    assert float(shown.K[0, 0, 2]) != 80.0  # the source's principal point, not the centre


def test_a_downloaded_path_replays_at_its_own_speed_with_the_cli(tmp_path, box_scene):
    """`gen3c generate --camera_file camera_path.json` makes the video the page would: the same
    cameras and frame count, and the page's frame rate, so keyframe times in seconds hold."""
    from typer.testing import CliRunner

    from gen3c.cli import app
    from gen3c.io.video import read_video

    image_path, depth_path, _, _ = box_scene
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="64x112", num_video_frames=9, fps=12))
    state.load_files(str(image_path), str(depth_path), fov=60)
    for p in orbit_w2c(3):
        state.add_keyframe(p)
    state.set_path_mode("keyframes")
    path = tmp_path / "camera_path.json"
    path.write_bytes(state.camera_path_json())
    res = CliRunner().invoke(app, ["generate", "--input_image_path", str(image_path), "--depth_path", str(depth_path), "--fov", "60",
                                   "--resolution", "64x112", "--camera_file", str(path), "--video_save_folder", str(tmp_path / "out")])  # fmt: skip
    assert res.exit_code == 0, res.output
    frames, fps = read_video(tmp_path / "out" / "output.mp4")
    assert len(frames) == 9 and fps == 12
    replayed = load_camera_file(tmp_path / "out" / "output_cameras.json")
    assert torch.allclose(replayed.w2c, state.cameras().w2c, atol=1e-6)
    # --fps still decides when given.
    assert GenerationRequest(camera_file=str(path), fps=30).fps == 30 and GenerationRequest(camera_file=str(path)).fps == 12


def test_import_nerfstudio_keyframes_without_times_uses_transitions(state):
    """nerfstudio's viewer stores on each keyframe the transition that leads to it (its
    ``render_panel.py``), and its spline tension as ``smoothness_value``."""
    for p in orbit_w2c(3):
        state.add_keyframe(p)
    state.set_path_mode("keyframes")
    data = json.loads(state.camera_path_json())
    data["keyframes"] = [kf for kf in data["keyframes"] if not kf.get("gen3c_hold")]  # nerfstudio's own three
    for kf in data["keyframes"]:
        del kf["time"]  # as nerfstudio writes them
    del data["gen3c"]
    assert [kf["override_transition_sec"] for kf in data["keyframes"]] == pytest.approx([None, 0.25, 0.25])
    data["keyframes"][1]["override_transition_sec"] = 0.2
    data["keyframes"][2]["override_transition_enabled"] = False  # then the default, 0.3
    data["default_transition_sec"], data["smoothness_value"] = 0.3, 0.25
    state.import_camera_path(json.dumps(data))
    assert [kf.time for kf in state.keyframes] == pytest.approx([0.0, 0.2, 0.5])
    assert state.smoothness == 0.75 and state.path_mode == "keyframes"


def test_import_nerfstudio_looped_path_returns_to_its_first_keyframe(state):
    """nerfstudio's ``is_cycle`` path goes on from the last keyframe back to the first, taking the
    first keyframe's transition (its ``render_panel.py`` counts it only in a loop); its frames
    cover that closing transition too: int(fps · seconds) frames, frame i at i / fps, the last
    one a frame short of the first keyframe again."""
    w2c = orbit_w2c(3)
    for p in w2c:
        state.add_keyframe(p)
    state.set_path_mode("keyframes")
    data = json.loads(state.camera_path_json())
    data["keyframes"] = [kf for kf in data["keyframes"] if not kf.get("gen3c_hold")]  # nerfstudio's own three
    for kf in data["keyframes"]:
        del kf["time"]
    del data["gen3c"]
    data["keyframes"][0].update(override_transition_enabled=True, override_transition_sec=0.5)  # closes the loop
    data["keyframes"][1]["override_transition_sec"] = 0.25
    data["keyframes"][2]["override_transition_sec"] = 0.25
    data["is_cycle"], data["fps"], data["seconds"] = True, 12.0, 1.0
    data["camera_path"] = data["camera_path"][:1] * 12  # 1 s at 12 fps; what nerfstudio sampled is not read
    state.import_camera_path(json.dumps(data))
    assert [kf.time for kf in state.keyframes] == pytest.approx([0.0, 0.25, 0.5, 1.0])
    cams = state.cameras()
    assert len(cams) == 12 and state.request.fps == 12 and torch.allclose(cams.w2c[0].double(), w2c[0], atol=1e-5)
    assert torch.allclose(cams.w2c[3].double(), w2c[1], atol=1e-5)  # frame 3 at 0.25 s
    assert torch.allclose(cams.w2c[6].double(), w2c[2], atol=1e-5)  # frame 6 at 0.5 s: the last keyframe
    path = state.keyframe_data()
    assert torch.allclose(interpolate_keyframes(path.w2c, path.times, [1.0], path.smoothness)[0], w2c[0], atol=1e-9)  # 1 s: back at the start
    # Without the loop the closing transition is not there: the camera stops at the last keyframe.
    data["is_cycle"] = False
    state.import_camera_path(json.dumps(data))
    assert [kf.time for kf in state.keyframes] == pytest.approx([0.0, 0.25, 0.5])


def test_import_path_without_keyframes_is_a_fixed_path(state):
    state.update(trajectory="clockwise")
    preset = state.cameras()
    data = json.loads(state.camera_path_json())
    assert data["keyframes"] == []
    state.update(trajectory="left", num_video_frames=7)
    state.import_camera_path(json.dumps(data))
    assert state.path_mode == "file" and state.request.num_video_frames == 13
    assert torch.allclose(state.cameras().w2c, preset.w2c, atol=1e-5)


def test_import_legacy_or_blender_path_is_a_fixed_path(state):
    """nerfstudio's legacy viewer and Blender add-on write keyframe matrices as text (column-major)
    timed by "properties": the file imports as its camera_path, a fixed path, at its frame rate."""
    state.update(trajectory="up")
    preset = state.cameras()
    data = json.loads(state.camera_path_json())
    data["keyframes"] = [{"matrix": "[1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]", "fov": 50, "aspect": 1,
                          "properties": '[["FOV",50],["NAME","Camera 0"],["TIME",0]]'}]  # fmt: skip
    data["fps"], data["seconds"] = 30, 13 / 30
    del data["gen3c"]
    state.import_camera_path(json.dumps(data))
    assert state.path_mode == "file" and state.request.num_video_frames == 13 and state.request.fps == 30
    assert torch.allclose(state.cameras().w2c, preset.w2c, atol=1e-5)


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "not valid JSON"), ('{"camera_path": [], "render_height": 9, "render_width": 16}', "non-empty"), ("[1, 2]", "JSON object"),
     (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff", "'x.json' is a PNG image, not a camera file"),
     (b"PK\x03\x04\x14\x00\x00\x00\x08\x00\xd3", "'x.json' is a zip archive, not a camera file")],
)  # fmt: skip
def test_bad_camera_files_are_clear_errors(state, text, message):
    with pytest.raises(Gen3cInputError, match=message):
        state.import_camera_path(text, "camera file 'x.json'")
    assert state.path_mode == "preset"


# -- sources, uploads, requests, renders ------------------------------------------------------


def test_a_disparity_file_loads_as_relative_depth_and_the_next_image_is_depth_again(tmp_path, box_scene):
    """The page's "Depth is disparity" box (load_files' depth_is_disparity): the file is read as
    gen3c generate --depth_is_disparity reads it (1 / disparity, median 1, relative), and loading
    another image without it reads its depth as z-depth again (the setting is the input's, cleared
    with it). Without a depth file it is refused, nothing loaded. Before: an unknown request field."""
    image_path, depth_path, _, depth = box_scene
    np.save(tmp_path / "disparity.npy", 1 / depth.numpy())
    state = GuiState(tmp_path, GenerationRequest(resolution="48x80"))
    with pytest.raises(Gen3cInputError, match="--depth_is_disparity applies to the depth given for a single image"):
        state.load_files(str(image_path), "", fov=60, depth_is_disparity=True)
    assert state.source is None
    source = state.load_files(str(image_path), str(tmp_path / "disparity.npy"), fov=60, depth_is_disparity=True)
    assert source.depth_kind == "relative" and state.request.depth_is_disparity
    assert torch.allclose(source.depth, state.load_files(str(image_path), str(depth_path), fov=60).depth / 4)
    assert not state.request.depth_is_disparity


def test_load_files_checks_input_like_the_cli(tmp_path, box_scene):
    image_path, depth_path, image, _ = box_scene
    state = GuiState(tmp_path, GenerationRequest(resolution="48x80"))
    with pytest.raises(Gen3cInputError, match="does not exist"):
        state.load_files(str(tmp_path / "missing.png"), str(depth_path), fov=60)
    with pytest.raises(Gen3cInputError, match="--intrinsics fx,fy,cx,cy or --fov"):
        state.load_files(str(image_path), str(depth_path))
    assert state.source is None and state.request.input_image_path is None  # nothing half-loaded
    # A folder in the image field (with the FOV the page always sends) is named as one.
    with pytest.raises(Gen3cInputError, match="is a folder or .pt file, not an image: load it as a video input"):
        state.load_files(str(tmp_path), "", fov=60)
    source = state.load_files(str(image_path), str(depth_path), fov=60)
    assert source.size == (48, 80) and state.request.input_image_path == str(image_path)
    state.update(resolution="96x160")  # re-read at the new working resolution
    assert state.source.size == (96, 160)
    with pytest.raises(Gen3cInputError, match="resolution"):
        state.update(resolution="nonsense")
    assert state.request.resolution == "96x160"


def test_another_input_clears_the_camera_path_the_same_input_keeps_it(tmp_path, box_scene, room_sample):
    """Keyframes are poses in the world of the input they were made in: loading another input
    kept them, in the old input's coordinates, and Generate ran them there. Another input clears
    them (and an imported path) and says so; loading the same input again (another FOV) keeps them;
    a path imported before any input is the first input's."""
    image_path, depth_path, _, _ = box_scene
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=9))
    state.add_keyframe(orbit_w2c(2)[0])  # before any input, as an imported camera_path.json's
    state.set_path_mode("keyframes")
    state.load_files(str(image_path), str(depth_path), fov=60)
    assert len(state.keyframes) == 1 and state.path_mode == "keyframes" and state.path_note == ""
    state.add_keyframe(orbit_w2c(2)[1])
    state.load_files(str(image_path), str(depth_path), fov=75)  # the same input again
    assert len(state.keyframes) == 2 and state.path_mode == "keyframes" and state.path_note == ""
    state.load_sample(*room_sample, label="room")  # another input
    assert state.keyframes == [] and state.path_mode == "preset" and state.imported is None
    assert state.path_note.startswith("cleared the 2 keyframes made for image.png: its poses are in that input's world, not room's")
    fixed = json.dumps(cameras_to_dict(state.cameras())).encode()
    state.import_camera_path(fixed)  # a fixed path, imported for the room
    state.load_files(str(image_path), str(depth_path), fov=60)
    assert state.imported is None and state.path_mode == "preset" and "cleared the imported camera path made for room" in state.path_note
    state.load_files(str(image_path), str(depth_path), fov=60)
    assert state.path_note == ""  # said once, when it was cleared


def test_a_refused_in_memory_sample_leaves_the_loaded_input_as_it_was(tmp_path, room_sample):
    """A sample refused by the loader cleared the request's input files first: the loaded demo
    stayed on the page, but a run then recorded no input, and a new resolution prepared the
    refused sample instead of reading the demo's files again."""
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=5))
    state.load_demo()
    loaded = state.request.input_image_path
    image, depth, K = room_sample
    with pytest.raises(Gen3cInputError, match="depth is"):
        state.load_sample(image, depth[:10], K)
    assert state.request.input_image_path == loaded and state.build_request("after").input_image_path == loaded
    state.update(resolution="96x160")  # the demo's files read again at the new size
    assert state.source.size == (96, 160) and state.source_label == "demo sample"


def test_uploads_stay_in_the_work_folder(tmp_path):
    state = GuiState(tmp_path / "work")
    path = state.save_upload("../../../etc/evil name.png", b"\x89PNG", "image")
    assert path.parent == state.work_dir / "uploads" and path.name == "evil_name.png"
    with pytest.raises(Gen3cInputError, match="empty"):
        state.save_upload("a.png", b"", "image")
    with pytest.raises(Gen3cInputError, match="upload limit"):
        state.save_upload("a.png", b"0" * (MAX_UPLOAD_BYTES + 1), "image")


def test_an_upload_named_as_a_windows_device_is_stored_under_a_name_any_system_holds(tmp_path, box_scene):
    """An upload called con.png or NUL.npy was stored so: on a server running on Windows it was
    written to the console or the null device and lost (the input then "did not exist"), and a
    work folder copied there lost it. It is stored as upload_con.png, and loads."""
    image_path, depth_path, _, _ = box_scene
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=9))
    image = state.save_upload("con.png", image_path.read_bytes(), "image")
    depth_file = state.save_upload("NUL.npy", depth_path.read_bytes(), "depth file")
    assert (image.name, depth_file.name) == ("upload_con.png", "upload_NUL.npy")
    state.load_files(str(image), str(depth_file), fov=60)
    assert state.request.input_image_path == str(image)
    # COM¹ is COM1 once its accents and marks are dropped; a name that only starts like one is kept.
    names = [state.save_upload(name, b"data", "file").name for name in ("Com\u00b9.backup.npz", "console.png", "aux_1.png")]
    assert names == ["upload_Com1.backup.npz", "console.png", "aux_1.png"]


def test_an_upload_named_in_another_script_keeps_its_suffix_and_loads(tmp_path, box_scene):
    """An upload's name kept only ASCII letters: 深度.npy was stored as "npy", which loading refused
    as "depth file '…/uploads/npy' has an unsupported format" (its suffix, gone, told its format);
    café.png became caf_.png."""
    image_path, depth_path, _, depth = box_scene
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=9))
    image = state.save_upload("写真.png", image_path.read_bytes(), "image")
    depth_file = state.save_upload("深度.npy", depth_path.read_bytes(), "depth file")
    state.load_files(str(image), str(depth_file), fov=60)
    assert state.request.depth_path == str(depth_file) and state.source.median_depth() == pytest.approx(float(depth.median()))
    assert (image.name, depth_file.name) == ("upload.png", "upload.npy")
    assert state.save_upload("café.png", image_path.read_bytes(), "image").name == "cafe.png"


def test_another_upload_of_the_same_name_keeps_the_first_file(tmp_path, box_scene, room_sample):
    """Two photos both called photo.png: the second overwrote the first, so the input loaded from
    it (read again on a resolution change), and the run records naming it, had another image, and
    the keyframes made for the first stayed on as if the input were the same."""
    image_path, depth_path, _, _ = box_scene
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=9))
    first = state.save_upload("photo.png", image_path.read_bytes(), "image")
    state.load_files(str(first), str(depth_path), fov=60)
    state.add_keyframe(orbit_w2c(2)[0])
    other = room_sample[0].add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(other).save(buffer, format="PNG")
    second = state.save_upload("photo.png", buffer.getvalue(), "image")
    assert second == first.with_name("photo_2.png") and first.read_bytes() == image_path.read_bytes()
    assert state.save_upload("photo.png", buffer.getvalue(), "image") == second  # the same file again: its name
    assert state.save_upload("photo.png", image_path.read_bytes(), "image") == first
    state.load_files(str(second), "", fov=60, depth_estimator="prior")
    assert state.keyframes == [] and "cleared the 1 keyframe made for photo.png" in state.path_note


def test_requests_reproduce_the_gui_path_through_the_cli_functions(state):
    preset = state.build_request("p")
    assert preset.camera_file is None and preset.video_save_folder == str(state.work_dir / "outputs")
    assert torch.allclose(make_cameras(preset, state.source).w2c, state.cameras().w2c)
    for p in orbit_w2c(3):
        state.add_keyframe(p)
    state.set_path_mode("keyframes")
    custom = state.build_request("k")
    assert custom.camera_file.startswith(str(state.work_dir))
    assert torch.allclose(make_cameras(custom, state.source).w2c, state.cameras().w2c, atol=1e-6)
    # The run gets the keyframes themselves (the downloadable camera_path.json), which it samples
    # with the library's keyframe_trajectory as `--camera_file` does.
    written = json.loads(Path(custom.camera_file).read_text())
    assert len([kf for kf in written["keyframes"] if not kf.get("gen3c_hold")]) == 3 and written["gen3c"]["smoothness"] == state.smoothness
    state.update(num_video_frames=4)  # a short run, through run_request as the CLI does it
    out = run_request(state.build_request("k"), source=state.source)
    assert out.paths["video"] == state.work_dir / "outputs" / "k.mp4" and len(out.result.frames) == 4
    assert state.next_output_name() == "gui_001"


def test_a_gui_run_record_runs_again_with_gen3c_batch(tmp_path, box_scene, video_inputs):
    """The request a run gets (and NAME_run.json records, which `gen3c batch` runs again) holds no
    setting that run does not use: the preset's controls once the path is keyframes or a file or
    a multi-view input's own, the depth estimator once the image comes with its depth and camera.
    `gen3c batch` (check_unused_settings) refused such records."""
    image_path, depth_path, _, _ = box_scene
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=4))
    state.load_files(str(image_path), str(depth_path), fov=60, depth_estimator="prior")
    state.update(trajectory="right", movement_distance=0.5)
    preset = state.build_request("p")  # the preset is this run's path; the estimator estimates nothing
    assert (preset.trajectory, preset.movement_distance, preset.depth_estimator) == ("right", 0.5, None)
    for p in orbit_w2c(2):
        state.add_keyframe(p)
    state.set_path_mode("keyframes")
    cams = state.cameras()
    request = state.build_request("k")
    assert (request.trajectory, request.movement_distance) == ("left", GenerationRequest.movement_distance)
    check_unused_settings(request)  # what gen3c batch checks a record's settings with
    assert torch.allclose(make_cameras(request, state.source).w2c, cams.w2c, atol=1e-6)  # the same path
    assert state.request.trajectory == "right"  # the page keeps its controls
    state = GuiState(tmp_path / "mv", GenerationRequest(resolution="48x80", num_video_frames=6))
    state.load_video(str(video_inputs["multiview"]))
    state.update(trajectory="up")  # a preset the npz's own trajectory replaces
    check_unused_settings(state.build_request("mv"))


def test_frame_render_shows_the_cache(state):
    color, mask = state.render_frame(0)
    assert color.shape == (3, 96, 160) and mask.shape == (1, 96, 160)
    seen = mask[0] > 0
    assert seen.float().mean() > 0.8
    assert (color[:, seen] - state.source.image[:, seen]).abs().mean() < 0.05  # frame 0 is the source view
    _, last = state.render_frame(12)
    assert last.mean() < mask.mean()  # the camera moved: holes open
    with pytest.raises(Gen3cInputError, match="outside"):
        state.render_frame(13)
    for index in (1.5, True, "1"):  # were a TypeError, and True a message on an internal frame_offset
        with pytest.raises(Gen3cInputError, match=r"^frame .* is not a whole number: pick a frame of the path \(0 is the first\)$"):
            state.render_frame(index)
    assert torch.equal(state.render_frame(np.int64(12))[1], last)
    points, colors = state.display_points(max_points=1000)
    assert points.shape == (1000, 3) and colors.shape == (1000, 3)


# -- jobs -------------------------------------------------------------------------------------


def test_one_job_at_a_time_and_cancel_leaves_no_output(state):
    runner = JobRunner()
    request = state.build_request("cancelled")
    started, release = threading.Event(), threading.Event()
    results = []

    def on_progress(stage, done, total):
        started.set()
        release.wait(10)

    runner.start(request, state.source, on_progress, results.append)
    assert started.wait(10) and runner.running
    with pytest.raises(Gen3cInputError, match="already running"):
        runner.start(request, state.source, on_progress, results.append)
    runner.cancel()
    release.set()
    assert runner.wait(30)
    assert results[0].cancelled and results[0].output is None
    outputs = state.work_dir / "outputs"
    assert not outputs.exists() or not any(outputs.iterdir())  # not even a temporary file

    runner.start(dataclasses.replace(request, video_save_name="done"), state.source, lambda *a: None, results.append)
    assert runner.wait(60)
    assert results[1].output is not None and results[1].output.paths["video"].is_file()


def test_generate_pressed_while_a_cancelled_run_stops_says_so(state):
    """A Generate pressed after Cancel, before the run reached its next step, was told "a
    generation is already running: wait for it to finish or cancel it": cancelled already."""
    runner, results = JobRunner(), []
    started, release = threading.Event(), threading.Event()

    def on_progress(stage, done, total):
        started.set()
        release.wait(10)

    request = state.build_request("x")
    runner.start(request, state.source, on_progress, results.append)
    assert started.wait(10)
    runner.cancel()
    with pytest.raises(Gen3cInputError, match=r"^the cancelled generation has not stopped yet: press Generate again once the page says it was cancelled$"):
        runner.start(request, state.source, lambda *a: None, results.append)
    release.set()
    assert runner.wait(30) and results[0].cancelled


def test_a_run_whose_end_was_shown_is_no_longer_running(state, monkeypatch):
    """The page shows a run's end (``on_done``) and enables Generate; a press right then was
    refused as "already running" while the worker thread had yet to exit."""
    import time

    leave = threading.Event()

    class SlowToExit(threading.Thread):  # (a busy machine: the job's thread exits a while after its work)
        def run(self):
            super().run()
            if self.name == "gen3c-gui-job":
                leave.wait(60)  # here until the test has started run b: alive all along

    monkeypatch.setattr(threading, "Thread", SlowToExit)
    runner, results, shown = JobRunner(), [], threading.Event()
    runner.start(state.build_request("a"), state.source, lambda *a: None, lambda result: (results.append(result), shown.set()))
    assert shown.wait(30)
    deadline = time.monotonic() + 30  # (on_done has returned an instant after it set the event)
    while runner.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not runner.running
    runner.start(state.build_request("b"), state.source, lambda *a: None, results.append)
    leave.set()
    assert runner.wait(30) and [r.output.paths["video"].name for r in results] == ["a.mp4", "b.mp4"]


def test_a_prompt_the_page_sent_for_the_preview_is_left_out_of_its_run(state):
    """The page keeps its (hidden) prompt box's text; the preview reads no gen3c option, and a run
    with one is refused (run_request), so the run's request leaves it out and the run goes on."""
    state.set_prompt("a cat")
    request = state.build_request("p")
    assert request.generator == "preview" and request.generator_options == {}
    runner, results = JobRunner(), []
    runner.start(request, state.source, lambda *a: None, results.append)
    assert runner.wait(60)
    assert results[0].error is None and results[0].output.paths["video"].is_file()
    assert state.request.generator_options == {"prompt": "a cat"}  # the box keeps what was typed


def test_a_work_subfolder_that_is_no_folder_is_said_in_the_page_s_words(state):
    """A file (or a link to nothing) at the work folder's outputs/ was refused by the run as
    "--video_save_folder '…/outputs' is a file …: choose a folder path": a flag the page has not;
    uploads/ as an "output folder" to choose."""
    outputs = state.work_dir / "outputs"
    outputs.write_text("x")
    with pytest.raises(Gen3cInputError, match=r"^'.*outputs' is a file, where the GUI writes its videos: move or remove it$"):
        state.build_request()
    outputs.unlink()
    outputs.symlink_to(state.work_dir / "gone")
    with pytest.raises(Gen3cInputError, match=r"^'.*outputs' is a link to nothing, where the GUI writes its videos: move or remove it$"):
        state.build_request()
    (state.work_dir / "uploads").write_text("x")  # was "output folder '…/uploads' is a file, not a folder: choose a folder path"
    with pytest.raises(Gen3cInputError, match=r"^'.*uploads' is a file, where the GUI keeps uploads: move or remove it$"):
        state.save_upload("a.png", b"x")


def test_job_errors_are_reported_not_raised(state):
    runner, results = JobRunner(), []
    bad = dataclasses.replace(state.build_request("bad"), num_video_frames=0)
    runner.start(bad, state.source, lambda *a: None, results.append)
    assert runner.wait(30)
    assert results[0].error and "num_video_frames" in results[0].error


def test_a_run_s_unexpected_error_keeps_its_traceback_and_a_broken_package_is_named(state, monkeypatch, capfd):
    """A run's exception that no check raised became "internal error: …" on the page with its
    traceback lost with the worker thread; a package failing to import read as such a bug too,
    where ``gen3c generate`` names the package and its reinstall."""
    from gen3c.gui import state as gui_state

    def broken(*args, **kwargs):
        try:
            raise ImportError("cannot import name 'x' from 'cv2'", name="cv2")
        except ImportError as exc:  # as diffusers' lazy imports wrap it
            raise RuntimeError("Failed to import diffusers.models") from exc

    request, results = state.build_request("bad"), []
    for run, words in ((lambda *a, **k: {}["bug"], "internal error: KeyError: 'bug'"),
                       (broken, "needs opencv-python-headless, whose installed")):  # fmt: skip
        monkeypatch.setattr(gui_state, "run_request", run)
        runner = JobRunner()
        runner.start(request, state.source, lambda *a: None, results.append)
        assert runner.wait(30) and words in results[-1].error, results[-1].error
    log = capfd.readouterr().err
    assert log.count("Traceback") == 1 and "KeyError: 'bug'" in log  # the bug's, not the install's


def test_a_run_s_unexpected_error_is_one_line_and_a_full_disk_is_said_as_such(state, monkeypatch, capfd):
    """A run stopped by an error no check raised showed its whole message on the page (torch's
    CUDA errors run over four lines), and a full disk read as "internal error: OSError: [Errno 28]
    …", a bug of gen3c's, where the fix is the user's: free space."""
    import errno

    from gen3c.gui import state as gui_state

    def cuda_error(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nCUDA kernel errors might be asynchronously reported "
                           "at some other API call, so the stacktrace below might be incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1")  # fmt: skip

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(state.work_dir / "outputs" / "gui_001.mp4.tmp"))

    request, results = state.build_request("bad"), []
    for run in (cuda_error, disk_full):
        monkeypatch.setattr(gui_state, "run_request", run)
        runner = JobRunner()
        runner.start(request, state.source, lambda *a: None, results.append)
        assert runner.wait(30)
    assert [r.error for r in results] == [
        "internal error: RuntimeError: CUDA error: an illegal memory access was encountered (the server's log has its traceback)",
        "the disk is full (No space left on device): free space on the disk of the GUI's work folder, then try again",
    ]
    assert "CUDA_LAUNCH_BLOCKING" in capfd.readouterr().err  # the log keeps all of it


# -- inputs the CLI takes: an image alone, videos, multi-view ----------------------------------


def test_image_alone_gets_depth_as_gen3c_generate_does(tmp_path, box_scene, monkeypatch):
    """No depth file: the request's estimator, else the geometric prior with the CLI's note."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no MoGe weights here: the prior stands in
    image_path, _, _, _ = box_scene
    state = GuiState(tmp_path, GenerationRequest(resolution="48x80", num_video_frames=5))
    source = state.load_files(str(image_path), "", fov=60.0)
    assert source.size == (48, 80) and source.depth_kind == "relative" and state.kind == "image"
    assert len(state.notes) == 1 and "geometric prior" in state.notes[0] and "--depth_path" in state.notes[0]
    assert state.request.depth_path is None and state.request.input_image_path == str(image_path)
    _, mask = state.render_frame(0)
    assert mask.float().mean() > 0.5  # (at 48×80 the edge filter drops the prior's steep ground near the bottom)
    out = run_request(state.build_request("alone"), source=state.run_source, source_notes=state.notes)
    assert out.result.frames.shape == (5, 3, 48, 80)
    # its record says the prior stood in for the default it names by no name (the run itself read no depth)
    record = json.loads(out.paths["run"].read_text())
    assert record["depth_estimator"] is None and record["notes"] == [row_spelling(n) for n in state.notes]  # (the record's keys)
    state.load_files(str(image_path), "", fov=60.0, depth_estimator="prior")  # asked for: no note
    assert state.notes == [] and state.request.depth_estimator == "prior"
    # Another estimator named that cannot load is refused: the prior stands in for the default only.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(Gen3cModelError, match="someone/depth-model"):
        state.load_files(str(image_path), "", fov=60.0, depth_estimator="someone/depth-model")
    with pytest.raises(Gen3cModelError, match=r"\(--depth_estimator 'moge' was asked for by name, so the preview does not fall back"):
        state.load_files(str(image_path), "", fov=60.0, depth_estimator="moge")  # MoGe named, as the default is not
    assert state.request.depth_estimator == "prior"  # the last input stays loaded
    with pytest.raises(Gen3cInputError, match="not an image"):
        state.load_files(str(tmp_path), "")



def test_png_depth_scale_and_mask_invalid_depth_reach_the_cache_and_the_run_as_the_cli_s(tmp_path, box_scene, monkeypatch):
    """The page's PNG depth scale and Mask invalid depth: a loaded input is checked as the CLI
    checks it (a scale ≤ 0 read as "no valid pixel"), the scale belongs to the PNG it was loaded
    with (another depth file kept it, and the run's record was refused), and the mask reads the
    depth again where it comes with the input and is left out of the record where it does not
    (an estimate, not re-made for it)."""
    image, _, _, depth = box_scene
    png = tmp_path / "depth_mm.png"
    Image.fromarray((depth.numpy() * 1000).astype(np.uint16)).save(png)
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=5))
    with pytest.raises(Gen3cInputError, match=r"^--png_depth_scale 0 is impossible: pass a number > 0$"):
        state.load_files(str(image), str(png), fov=60.0, png_depth_scale=0)
    state.load_files(str(image), str(png), fov=60.0, png_depth_scale=0.0005)
    assert state.scene_scale() == pytest.approx(2.0)  # 4000 × 0.0005
    sky = depth.numpy().copy()
    sky[:20] = float("inf")
    np.save(tmp_path / "sky.npy", sky)
    state.load_files(str(image), str(tmp_path / "sky.npy"), fov=60.0)
    assert state.request.png_depth_scale == 0.001 and state.source.valid.all()  # the sky sits far away, in the cache
    check_unused_settings(state.build_request("far"))
    state.update(mask_invalid_depth=True)  # read again: the sky (the top 10 of 48 rows) left out
    assert not state.source.valid[:10].any() and state.source.valid[11:].all() and state.build_request("masked").mask_invalid_depth
    state.load_files(str(image), "", fov=60.0, depth_estimator="prior")
    reads = []
    monkeypatch.setattr(GuiState, "_read", staticmethod(lambda request, kind: reads.append(kind)))
    state.update(mask_invalid_depth=False)
    state.update(mask_invalid_depth=True)  # an estimate has no invalid pixel: not estimated again
    assert reads == [] and not state.build_request("estimated").mask_invalid_depth


def test_a_run_of_an_image_alone_re_estimates_later_chunks_as_the_cli_does(tmp_path, box_scene, room_sample):
    """The GUI hands its estimated image over as the run's source; the run then built a cache that
    never re-estimated the depth of the frames later chunks add (gen3c generate's does, as GEN3C
    with MoGe), so a video of several chunks differed from the CLI's run of its record."""
    image_path, _, _, _ = box_scene
    state = GuiState(tmp_path, GenerationRequest(resolution="48x80", num_video_frames=5))
    state.load_files(str(image_path), "", fov=60.0, depth_estimator="prior")
    request = state.build_request("alone")
    cli = load_scene(request).plan  # what gen3c generate (and gen3c batch of the record) builds
    gui = load_scene(request, state.run_source).plan
    assert type(cli.depth_estimator).__name__ == type(gui.depth_estimator).__name__ == "GeometricPriorEstimator"
    state.load_sample(*room_sample)  # an in-memory sample carries its depth: nothing to re-estimate
    assert load_scene(state.build_request("sample"), state.run_source).plan.depth_estimator is None


def test_recorded_notes_go_on_as_they_come():
    """record_notes keeps a copy (once each, in order) of what goes on to the collector or is warned."""
    with pytest.warns(UserWarning, match="^warned$"), record_notes() as kept:
        note("warned")
    assert kept == ["warned"]
    with collect_notes() as collected, record_notes() as outer:
        with record_notes() as inner:
            note("a")
            note("a")
        note("b")
    assert collected == ["a", "b"] and outer == ["a", "b"] and inner == ["a"]


def test_notes_are_collected_per_thread():
    """collect_notes takes this thread's notes (once each, in order); outside it, and in other
    threads meanwhile, a note is a UserWarning the CLI prints."""
    with pytest.warns(UserWarning, match="^outside$"):
        note("outside")
    others = []

    def elsewhere():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            note("from another thread")
        others.extend(str(w.message) for w in caught if issubclass(w.category, UserWarning))

    with collect_notes() as outer:
        note("a")
        with collect_notes() as inner:
            note("b")
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
        note("c")
        note("a")
    assert outer == ["a", "c"] and inner == ["b"] and others == ["from another thread"]


def test_a_generation_s_notes_stay_out_of_an_input_s(tmp_path, box_scene, monkeypatch):
    """Reading an input while another thread (a running generation) notes something: the
    input's notes are its own, and the other note is still told."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import gen3c.gui.state as gui_state

    real_read_input = gui_state.read_input

    def read_input_while_a_job_notes(request, kind, **options):
        job = threading.Thread(target=note, args=("--max_gpu_memory 24: memory mode 'resident'",))
        job.start()
        job.join()
        return real_read_input(request, kind, **options)

    monkeypatch.setattr(gui_state, "read_input", read_input_while_a_job_notes)
    image_path, _, _, _ = box_scene
    state = GuiState(tmp_path, GenerationRequest(resolution="48x80", num_video_frames=5))
    with pytest.warns(UserWarning, match="memory mode"):
        state.load_files(str(image_path), "", fov=60.0)
    assert len(state.notes) == 1 and "geometric prior" in state.notes[0]

@pytest.fixture(scope="module")
def video_inputs(tmp_path_factory):
    from layouts import scene, write_multiview, write_sample, write_vipe

    rgb, depth, ids, w2c, K = scene(6, 48, 80)
    root = tmp_path_factory.mktemp("video_inputs")
    keys = [0, 5]
    return {
        "sample": write_sample(root / "batch_0000", rgb, depth, depth > 0, w2c, K),
        "vipe": write_vipe(root / "vipe", "walk", rgb, depth, w2c, K) / "rgb" / "walk.mp4",
        "multiview": write_multiview(root / "mv.npz", rgb[keys], depth[keys], depth[keys] > 0, K[keys], w2c[keys], w2c),
        "w2c": w2c,
    }


@pytest.mark.parametrize("kind", ["sample", "vipe", "multiview"])
def test_video_inputs_load_with_their_cameras_and_run_as_the_cli(tmp_path, video_inputs, kind):
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=9))
    source = state.load_video(str(video_inputs[kind]))
    w2c = video_inputs["w2c"]
    assert state.kind == kind and source.size == (48, 80) and state.run_source is None
    cams = state.input_cameras()
    expected = w2c[[0, 5]] if kind == "multiview" else w2c
    assert len(cams) == len(expected) and torch.allclose(cams.w2c, expected, atol=1e-5)
    assert torch.allclose(source.w2c, w2c[0], atol=1e-5)
    path = state.cameras()
    if kind == "multiview":  # the npz's own trajectory, all 6 of its cameras
        assert state.request.num_video_frames == 6 and torch.allclose(path.w2c, w2c, atol=1e-5)
    else:  # the preset applied per frame to the video's cameras; frames past its end keep the last
        assert len(path) == 9 and not torch.allclose(path.w2c[3], w2c[3], atol=1e-3)
    color, mask = state.render_frame(3)
    assert color.shape == (3, 48, 80) and mask.float().mean() > 0.5
    points, colors = state.display_points(500)
    assert points.shape == (500, 3) and colors.dtype.name == "uint8"
    out = run_request(state.build_request(kind), source=state.run_source)  # the run reads the files, as the CLI
    assert len(out.result.frames) == len(path)
    assert torch.allclose(out.result.cameras.w2c, path.w2c, atol=1e-5)
    state.update(resolution="32x48")  # re-read at the new working size
    assert state.source.size == (32, 48) and state.render_frame(0)[0].shape == (3, 32, 48)


def test_video_input_errors_are_the_clis(tmp_path, video_inputs, box_scene):
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=9))
    with pytest.raises(Gen3cInputError, match="not a video input"):
        state.load_video(str(box_scene[0]))
    with pytest.raises(Gen3cInputError, match="--vipe_starting_frame_idx 7 is outside"):
        state.load_video(str(video_inputs["sample"]), start=7)
    with pytest.raises(Gen3cInputError, match="does not exist"):
        state.load_video(str(tmp_path / "nothing.npz"))
    assert state.source is None and state.request.input_image_path is None  # nothing half-loaded


@pytest.mark.parametrize("start", [float("nan"), "x", 2.5, None, True])
def test_a_video_start_frame_that_is_no_whole_number_is_one_line(tmp_path, video_inputs, start):
    """load_video int()-ed its start frame: NaN or text was a ValueError (the page's "internal
    error"), 2.5 was read as frame 2 and True as frame 1 without a word."""
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=9))
    with pytest.raises(Gen3cInputError, match=r"^--vipe_starting_frame_idx .* is not a whole number: enter one$"):
        state.load_video(str(video_inputs["sample"]), start=start)
    assert state.source is None
    state.load_video(str(video_inputs["sample"]), start=np.int64(0))  # a numpy integer is one


def test_even_timing_set_from_text_is_refused_not_read_as_on(state):
    """set_auto_time bool()-ed its value: "false" (another client's text) turned even timing on,
    respacing keyframes the user had timed."""
    ids = [state.add_keyframe(p).id for p in orbit_w2c(3)]
    state.set_keyframe_time(ids[1], 0.1)
    with pytest.raises(Gen3cInputError, match=r"^even timing must be on or off \(True or False\), got str 'false'$"):
        state.set_auto_time("false")
    assert not state.auto_time and [kf.time for kf in state.keyframes] == pytest.approx([0.0, 0.1, 0.5])
    state.set_auto_time(np.bool_(True))
    assert state.auto_time and [kf.time for kf in state.keyframes] == pytest.approx([0.0, 0.25, 0.5])


def test_a_video_input_path_with_a_tilde_or_a_typo_is_told_as_the_path_it_is(tmp_path, video_inputs, monkeypatch):
    """The Input path box takes "~/…" as a shell (and the image box) does, ViPE results included;
    a path that names nothing is said to name nothing, not to be "not a video input"."""
    root = video_inputs["vipe"].parents[2]  # the folder holding vipe/, batch_0000/ and mv.npz
    monkeypatch.setenv("HOME", str(root))
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=9))
    for text, kind in (("~/vipe", "vipe"), ("~/vipe/rgb/walk.mp4", "vipe"), ("~/batch_0000", "sample"), ("~/mv.npz", "multiview")):
        state.load_video(text)
        assert state.kind == kind, text
    for text in (str(tmp_path / "no_such_sample"), "~/no_such_sample/", str(tmp_path / "no_such.pt")):
        with pytest.raises(Gen3cInputError) as err:
            state.load_video(text)
        assert str(err.value) == f"video input {text!r} does not exist: check the path", text
    assert state.kind == "multiview"  # the refused paths left the loaded input as it was


def test_the_gui_scale_is_the_median_depth_a_run_scales_its_path_by(tmp_path, box_scene):
    """An estimated depth's median is the estimator's trusted pixels' (MoGe's far-filled sky left
    out): the GUI's scale used to take the median of the cropped working depth instead."""
    image_path, _, _, _ = box_scene
    state = GuiState(tmp_path, GenerationRequest(resolution="48x48", num_video_frames=5))
    source = state.load_files(str(image_path), "", fov=60.0, depth_estimator="prior")
    assert source.reference_depth is not None
    assert state.scene_scale() == source.median_depth() == source.reference_depth


def test_a_broken_viser_is_one_line_naming_it_as_the_gui_is_imported(tmp_path, monkeypatch):
    """viser installed but failing to import (an AttributeError as it is imported): importing the
    GUI (Python, not only `gen3c gui`) is one line naming it and the reinstall. Before: the
    AttributeError's traceback (gen3c.gui.app caught only an ImportError)."""
    import importlib
    import sys
    from importlib import metadata

    from gen3c.dependencies import requirement
    from gen3c.errors import Gen3cDependencyError

    pytest.importorskip("viser")  # its installed version is in the message
    (tmp_path / "viser").mkdir()
    (tmp_path / "viser" / "__init__.py").write_text("raise AttributeError(\"module 'websockets' has no attribute 'fake'\")\n")
    for name in [name for name in sys.modules if name.partition(".")[0] == "viser" or name == "gen3c.gui.app"]:
        monkeypatch.delitem(sys.modules, name)  # put back after the test
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(Gen3cDependencyError) as raised:
        importlib.import_module("gen3c.gui.app")
    assert str(raised.value) == (
        f"the gen3c GUI needs viser, whose installed {metadata.version('viser')} fails to import "
        f"(AttributeError: module 'websockets' has no attribute 'fake'): pip install --force-reinstall '{requirement('viser', 'gui')}' "
        "(`pip check` names installed versions that do not match)"
    )



def test_the_frames_a_multi_view_input_lowered_come_back_with_the_next_input(tmp_path, video_inputs, box_scene, room_sample):
    """A multi-view npz lowers Frames to its trajectory's length (6 here); loading an image next
    kept 6. The count the input forced goes back to the user's; one the user typed stays."""
    image, depth = str(box_scene[0]), str(box_scene[1])
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=9))
    state.load_video(str(video_inputs["multiview"]))
    assert state.request.num_video_frames == 6
    state.load_files(image, depth, fov=60.0)
    assert state.request.num_video_frames == 9 and len(state.cameras()) == 9
    state.update(num_video_frames=11)  # the user's count: lowered by the npz, back after it
    state.load_video(str(video_inputs["multiview"]))
    state.load_sample(*room_sample)
    assert state.request.num_video_frames == 11
    for typed in (4, 6):  # typed while the npz is loaded (6: the npz's own count, typed): it stays
        state.load_video(str(video_inputs["multiview"]))
        state.update(num_video_frames=typed)
        state.load_files(image, depth, fov=60.0)
        assert state.request.num_video_frames == typed
    # A refused input changes nothing; a video input gets the count back too.
    state.update(num_video_frames=9)
    state.load_video(str(video_inputs["multiview"]))
    with pytest.raises(Gen3cInputError):
        state.load_video(str(tmp_path / "nothing.npz"))
    assert state.request.num_video_frames == 6
    state.load_video(str(video_inputs["sample"]))
    assert state.request.num_video_frames == 9 and len(state.cameras()) == 9


def test_the_fps_follows_a_video_input_until_the_user_sets_it(tmp_path, box_scene):
    """``gen3c generate`` runs a video input at its own frame rate unless --fps is given; the page
    kept 24 for a 30 fps clip (so its video played 25 % slow), and loading kept the old rate."""
    from layouts import scene, write_sample

    rgb, depth, _, w2c, K = scene(6, 48, 80)
    sample = write_sample(tmp_path / "sample", rgb, depth, depth > 0, w2c, K, fps=30)
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=6))
    state.add_keyframe(torch.eye(4, dtype=F64))  # before any input: the first input's, evenly timed at 24 fps
    state.add_keyframe(torch.eye(4, dtype=F64))
    assert state.keyframes[1].time == pytest.approx(5 / 24)
    state.load_video(str(sample))
    assert state.request.fps == 30 and state.build_request().fps == 30
    assert state.keyframes[1].time == pytest.approx(5 / 30)  # the last frame plays earlier now
    state.load_files(str(box_scene[0]), str(box_scene[1]), fov=60.0)  # an image: GEN3C's 24
    assert state.request.fps == 24
    state.load_video(str(sample))
    assert state.request.fps == 30
    state.update(fps=15)  # set on the page: the user's from then on
    state.load_video(str(sample), start=1)
    assert state.request.fps == 15
    # A rate other than the default at start (gen3c gui --fps 12) is the user's too.
    state = GuiState(tmp_path / "work2", GenerationRequest(resolution="48x80", num_video_frames=6, fps=12))
    state.load_video(str(sample))
    assert state.request.fps == 12
    # So is the default itself when given (gen3c gui --fps 24 passes fps_given).
    state = GuiState(tmp_path / "work3", GenerationRequest(resolution="48x80", num_video_frames=6, fps=24), fps_given=True)
    state.load_video(str(sample))
    assert state.request.fps == 24


def test_a_pickled_pt_sample_is_refused_with_advice_the_gui_user_can_follow(tmp_path):
    """The refusal said "pass --trust_checkpoint", a flag `gen3c gui` does not have: the page never
    unpickles, so it says to convert the file or run it with gen3c generate."""
    import fractions

    torch.save((torch.zeros(2, 3, 8, 8), torch.ones(2, 1, 8, 8), fractions.Fraction(1, 3)), tmp_path / "pickled.pt")
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=9))
    with pytest.raises(Gen3cInputError, match=r"full unpickling .*: convert it to a sample directory \(rgb\.mp4, .*\), or run it with "
                       r"`gen3c generate --trust_checkpoint` if you trust its source$") as refused:  # fmt: skip
        state.load_video(str(tmp_path / "pickled.pt"))
    assert "pass --trust_checkpoint" not in str(refused.value) and state.source is None


def test_a_video_input_in_the_image_box_is_told_where_it_loads_whatever_the_buffer_noise(tmp_path, video_inputs):
    """A sample folder given as the image, with a buffer noise set: the noise's refusal came first
    ("drop it"), and only once it was dropped the real fix, loading the folder as a video input."""
    request = GenerationRequest(generator="gen3c", resolution="48x80", num_video_frames=9, generator_options={"noise_aug_strength": 0.1})
    state = GuiState(tmp_path / "work", request)
    with pytest.raises(Gen3cInputError, match=r"is a folder or \.pt file, not an image: load it as a video input below"):
        state.load_files(str(video_inputs["sample"]), "", fov=60.0)
    assert state.source is None and state.noise_aug_strength == 0.1


def test_buffer_noise_is_checked_as_gen3c_generate_checks_it(tmp_path, video_inputs):
    """The page's "Buffer noise" sets the gen3c generator's noise_aug_strength, refused as the CLI
    refuses it: for another generator, below 0 or not finite, and above 0 for a loaded video."""
    preview = GuiState(tmp_path / "preview", GenerationRequest(resolution="48x80", num_video_frames=9))
    with pytest.raises(Gen3cInputError, match=r'noise_aug_strength applies to generator="gen3c" only'):
        preview.set_noise_aug_strength(0.1)
    state = GuiState(tmp_path / "gen3c", GenerationRequest(generator="gen3c", resolution="48x80", num_video_frames=9))
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(Gen3cInputError, match=r"--noise_aug_strength \S+ is impossible: pass a finite number ≥ 0"):
            state.set_noise_aug_strength(bad)
    for bad in (None, "0.5", True):  # None was a KeyError (dropped as unset by the options' check)
        with pytest.raises(Gen3cInputError, match=r"^--noise_aug_strength .* is not a number: enter one$"):
            state.set_noise_aug_strength(bad)
    state.set_noise_aug_strength(1)
    assert state.request.generator_options["noise_aug_strength"] == 1.0 and state.takes_noise_aug
    state.set_noise_aug_strength(0.0)
    state.load_video(str(video_inputs["sample"]))
    assert not state.takes_noise_aug
    with pytest.raises(Gen3cInputError, match=r"--noise_aug_strength 0.3 applies to a single image"):
        state.set_noise_aug_strength(0.3)
    assert state.noise_aug_strength == 0.0 and preview.request.generator_options == {}


def test_a_video_input_path_no_file_can_have_is_one_line_saying_so(tmp_path):
    """A path with a name too long for the file system (a paste gone wrong) made the ViPE check
    raise OSError: "internal error" in the page. Now it names nothing, said in one short line."""
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=9))
    for text in ("x" * 300, str(tmp_path / ("y" * 300) / "rgb" / "walk.mp4"), "x" * 300 + ".npz"):
        with pytest.raises(Gen3cInputError, match="does not exist") as err:
            state.load_video(text)
        assert len(str(err.value)) < 200 and "\n" not in str(err.value), str(err.value)
    assert state.source is None


def test_a_run_s_name_is_not_one_left_by_an_earlier_run_whose_video_is_gone(tmp_path):
    """A run's files are NAME.mp4, NAME_run.json, NAME_cameras.json, …: with gui_001.mp4 moved
    away the next run was named gui_001 again and replaced the record and cameras left of the first."""
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=9))
    outputs = state.work_dir / "outputs"
    outputs.mkdir()
    (outputs / "gui_001_run.json").write_text("{}")
    (outputs / "gui_002_buffer.mp4").write_bytes(b"")
    (outputs / "gui_0030.mp4").write_bytes(b"")  # another name
    assert state.next_output_name() == "gui_003"


def test_a_run_s_name_is_none_the_outputs_folder_holds_in_another_case(tmp_path):
    """On macOS and Windows GUI_001.mp4 is gui_001.mp4: with a GUI_001 run's files (or its
    GUI_002_run.json, a folder copied from Linux) in the outputs folder, the next run was named
    gui_001 and replaced them."""
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=9))
    outputs = state.work_dir / "outputs"
    outputs.mkdir()
    (outputs / "GUI_001.mp4").write_bytes(b"")
    (outputs / "Gui_002_run.json").write_text("{}")
    assert state.next_output_name() == "gui_003"


def test_an_outputs_folder_that_cannot_be_listed_is_one_line_naming_it(tmp_path, monkeypatch):
    """An outputs folder gen3c may write into but not list (mode 0300, an ACL) ended a run's start
    in a PermissionError traceback from finding the next gui_NNN name."""
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=9))
    outputs = state.work_dir / "outputs"
    outputs.mkdir()
    real_iterdir = Path.iterdir

    def iterdir(path):
        if path == outputs:
            raise PermissionError(13, "Permission denied", str(path))
        return real_iterdir(path)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    message = (rf"^the GUI's outputs folder '{re.escape(str(outputs))}' cannot be listed \(Permission denied\) to find a free gui_NNN name: "
               r"give gen3c permission to read it, or start gen3c gui with another --work_dir$")  # fmt: skip
    for find in (state.next_output_name, state.reserve_output_name):
        with pytest.raises(Gen3cInputError, match=message):
            find()
    assert list(real_iterdir(outputs)) == []


def test_an_imported_path_of_more_cameras_than_a_run_may_ask_for_is_refused_before_they_are_read(state):
    """The GUI's import read every camera of a 100,001-camera path (or stopped at the first one
    it could not read) before its length, the run's, was refused; it is refused first, naming the
    path's key, as ``--camera_file`` refuses it."""
    from gen3c.errors import Gen3cInputError

    data = {"render_height": 48, "render_width": 64, "camera_path": [{}] * 100_001}  # (entries left empty: none is read)
    with pytest.raises(Gen3cInputError, match=r"^camera file: 'camera_path' has 100001 entries, one a frame: more than the 100000 frames"):
        state.import_camera_path(json.dumps(data))


def test_two_guis_on_one_work_folder_name_their_runs_apart(tmp_path, room_sample, monkeypatch):
    """Two `gen3c gui` sharing a work folder both named their next run gui_001 (a run writes its
    outputs as it ends: until then the folder held nothing of it) and the later run replaced the
    earlier's files. A run's name is held by outputs/NAME.running, made exclusively, until it ends."""
    from gen3c.pipelines.preview import PreviewGenerator

    first, second = (GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=5)) for _ in range(2))
    for state in (first, second):
        state.load_sample(*room_sample)
    outputs = tmp_path / "work" / "outputs"
    a, b = first.build_request(), second.build_request()
    assert (a.video_save_name, b.video_save_name) == ("gui_001", "gui_002")
    assert sorted(p.name for p in outputs.iterdir()) == ["gui_001.running", "gui_002.running"]
    first.release_output_name("gui_001")  # (its run wrote nothing: the number is free again)
    second.release_output_name("gui_002")
    # Both servers list the folder before either holds a name: the second finds gui_001 made and takes the next.
    listed_first = iter(["gui_001"])
    listing = second.next_output_name
    monkeypatch.setattr(second, "next_output_name", lambda: next(listed_first, None) or listing())
    c, d = first.build_request(), second.build_request()
    assert (c.video_save_name, d.video_save_name) == ("gui_001", "gui_002")
    run_request(c, source=first.run_source, generator=PreviewGenerator())
    first.release_output_name("gui_001")
    second.release_output_name("gui_002")
    assert sorted(p.name for p in outputs.iterdir()) == ["gui_001.mp4", "gui_001_cameras.json", "gui_001_run.json"]
    assert first.build_request().video_save_name == "gui_002"  # the run's outputs hold its name


@pytest.mark.parametrize("auto_time", [True, False])
def test_add_input_camera_pressed_twice_is_refused_with_either_timing(state, auto_time):
    """With even timing a second "Add input camera" added a second keyframe at the input's camera
    (the camera held still for the path's first step); with times by hand the same press was
    refused, as another keyframe already at 0 s. Now refused with either, saying why."""
    later = [state.add_keyframe(p).id for p in orbit_w2c(3)[1:]]
    if not auto_time:
        state.set_keyframe_time(later[0], 0.25)  # times by hand from here on
    first = state.add_source_keyframe()
    with pytest.raises(Gen3cInputError, match=rf"^the path already starts at the input's camera \(keyframe #{first.id} at 0\.00 s\): "
                                              r"another keyframe there would only hold the camera still$"):  # fmt: skip
        state.add_source_keyframe()
    assert [kf.id for kf in state.keyframes] == [first.id, *later]
    if not auto_time:  # another keyframe at 0 s is a time clash, as before
        state.delete_keyframe(first.id)
        state.set_keyframe_time(later[0], 0.0)
        with pytest.raises(Gen3cInputError, match=r"^another keyframe is already at 0 s: give it a later time, or turn on even timing"):
            state.add_source_keyframe()


def test_a_run_s_name_is_free_in_the_outputs_folder_the_runs_write_to(tmp_path):
    """A run always writes into work_dir/outputs, but its name was looked for in the settings'
    video_save_folder: a Python caller that set one (state.update(video_save_folder=…)) had every
    run named gui_001, each replacing the last's video."""
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=9))
    outputs = state.work_dir / "outputs"
    outputs.mkdir(parents=True)
    (outputs / "gui_001.mp4").write_bytes(b"")
    state.update(video_save_folder=str(tmp_path / "elsewhere"))
    assert state.next_output_name() == "gui_002"
    assert state.reserve_output_name() == "gui_002" and (outputs / "gui_002.running").is_file()


def test_a_run_name_held_by_a_killed_gui_is_freed_and_its_kept_chunks_dropped(tmp_path):
    """A `gen3c gui` killed mid-run (kill -9, a closed terminal, a restarted container) left
    outputs/gui_NNN.running behind, and every later server skipped that number for good (and its
    kept chunks, gui_NNN.partial, which the GUI never resumes). Now the hold of a process that is gone
    is dropped with its chunks; one of a process still running, of another machine (a shared
    work folder) or another pid namespace (a container) of this one, or of this process is kept."""
    import os
    import socket
    import subprocess
    import sys

    from gen3c.gui import state as gui_state

    host = socket.gethostname()
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        outputs = tmp_path / "work" / "outputs"
        outputs.mkdir(parents=True)
        held = {
            "gui_001": f"a gen3c gui run, {host} pid {ended.pid}\n",  # killed
            "gui_002": f"a gen3c gui run, {host} pid {alive.pid}\n",  # another server, running
            "gui_003": f"a gen3c gui run, elsewhere.example pid {ended.pid}\n",  # another machine's: cannot be told
            "gui_004": f"a gen3c gui run, {host} pid {os.getpid()}\n",  # an earlier process given this one's pid (a restarted container)
            # A container's (docker --network host takes this machine's name): its pids are not this machine's.
            "gui_005": f"a gen3c gui run, {host} pid {ended.pid}, process 0123abcd, pid namespace pid:[1]\n",
            "gui_006": f"a gen3c gui run, {host} pid {ended.pid}, process 0123abcd, pid namespace {gui_state._PID_NAMESPACE}\n",  # killed, here
        }
        for name, text in held.items():
            (outputs / f"{name}.running").write_text(text)
        (outputs / "gui_001.partial").mkdir()
        (outputs / "gui_001.partial" / "chunk_000.mp4").write_bytes(b"kept chunk")
        state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=5))
        assert state.reserve_output_name() == "gui_001"
        assert not (outputs / "gui_001.partial").exists()
        assert state.reserve_output_name() == "gui_004"
        assert state.reserve_output_name() == "gui_006"
        assert GuiState(tmp_path / "work").reserve_output_name() == "gui_007"  # another server in this process keeps this one's holds
        for name in ("gui_002", "gui_003", "gui_005"):
            assert (outputs / f"{name}.running").read_text() == held[name]
        assert sorted(p.name for p in outputs.iterdir()) == [f"gui_00{k}.running" for k in range(1, 8)]
    finally:
        alive.kill()
        alive.wait()


def test_a_run_name_taken_again_while_a_killed_gui_s_hold_is_freed_is_given_back(tmp_path, monkeypatch):
    """Two servers freeing the same killed GUI's hold at once: the first frees it and a running
    server takes the name; the second, which read the killed one's marker, must not remove the
    running one's: it is moved back."""
    import os
    import socket

    from gen3c.gui import state as gui_state

    outputs = tmp_path / "work" / "outputs"
    outputs.mkdir(parents=True)
    running = gui_state._MARKER_TEXT.format(host=socket.gethostname(), pid=os.getpid(), tag=gui_state._PROCESS_TAG, locked="")
    (outputs / "gui_001.running").write_text(running)  # the running server's, made since the killed one's was read
    (outputs / "gui_001.partial").mkdir()  # its run's kept chunks
    judged = iter([True])  # the listing read the killed server's marker
    real = gui_state._marker_abandoned
    monkeypatch.setattr(gui_state, "_marker_abandoned", lambda marker: next(judged, None) or real(marker))
    assert GuiState(tmp_path / "work").next_output_name() == "gui_002"
    assert (outputs / "gui_001.running").read_text() == running and (outputs / "gui_001.partial").is_dir()
    assert sorted(p.name for p in outputs.iterdir()) == ["gui_001.partial", "gui_001.running"]


def test_a_run_name_held_by_a_gui_killed_in_another_pid_namespace_is_freed_once_its_lock_is_gone(tmp_path, monkeypatch):
    """A container restarted after its GUI was killed mid-run runs in a new pid namespace, so the
    killed GUI's marker, naming the old one, was held for good (its pid cannot be looked up from
    here). A marker is now locked by the server that made it while its run runs: held while that
    server lives, whatever namespace it names, and freed with its kept chunks once it is killed."""
    import signal
    import subprocess
    import sys

    from gen3c.gui import state as gui_state

    work = tmp_path / "work"
    server = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from gen3c.gui.state import GuiState; "
         "print(GuiState(sys.argv[1]).reserve_output_name(), flush=True); time.sleep(120)", str(work)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout.readline().strip() == "gui_001"
        outputs = work / "outputs"
        (outputs / "gui_001.partial").mkdir()  # its run's kept chunks
        monkeypatch.setattr(gui_state, "_PID_NAMESPACE", "pid:[1]")  # this process: as if in another namespace
        assert GuiState(work).next_output_name() == "gui_002"  # a running server's: held
        assert (outputs / "gui_001.running").is_file() and (outputs / "gui_001.partial").is_dir()
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    assert GuiState(work).next_output_name() == "gui_001"
    assert sorted(p.name for p in outputs.iterdir()) == []


def test_a_start_frame_left_from_a_video_is_said_with_its_fix_for_a_multi_view_input(tmp_path, video_inputs, box_scene):
    """The Start frame box keeps its value between loads: a multi-view npz loaded after a video read
    from frame 2 was refused as "--vipe_starting_frame_idx applies to video input (--vipe_path or a
    sample directory)", on the page '"Start frame" applies to video input ("Input path" or a sample
    directory)' — the box the npz was given in, and no fix; an image given there was refused so too,
    before being told to load it as an image."""
    state = GuiState(tmp_path / "work", GenerationRequest(resolution="48x80", num_video_frames=4))
    state.load_video(str(video_inputs["sample"]), start=2)
    npz = str(video_inputs["multiview"])
    with pytest.raises(Gen3cInputError, match=r"^--vipe_starting_frame_idx 2 picks the first frame of a video; '.*mv\.npz' is a multi-view "
                                              r"\.npz, which has none: set it to 0$"):  # fmt: skip
        state.load_video(npz, start=2)
    with pytest.raises(Gen3cInputError, match=r"is not a video input \(a sample directory, a ViPE result or a multi-view \.npz\): load images above$"):
        state.load_video(str(box_scene[0]), start=2)
    assert state.kind == "sample"  # the video stays loaded
    state.load_video(npz, start=0)
    assert state.kind == "multiview"


def test_an_upload_killed_mid_write_leaves_no_temporary_file_for_the_next_server(tmp_path):
    """A gen3c gui killed while it wrote an upload (or a camera path file) left its hidden
    temporary file, ``.NAME.PID@HOST-RANDOM.part.EXT``, in uploads/ for good (a large image's
    MiBs each time). The next server on the work folder removes those of a process that is gone;
    one of a server still writing, or of another machine, is kept."""
    import signal
    import subprocess
    import sys

    work = tmp_path / "work"
    writer = (
        "import sys, time; from gen3c.io.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'half an image'); print(tmp.name, flush=True); time.sleep(120)\n"
    )
    parts, servers = {}, []
    try:
        for folder, name in (("uploads", "photo.png"), ("paths", "gui_001_path.json"), ("uploads", "still_writing.npy")):
            (work / folder).mkdir(parents=True, exist_ok=True)
            servers.append(subprocess.Popen([sys.executable, "-c", writer, str(work / folder / name)], stdout=subprocess.PIPE, text=True))
            parts[name] = work / folder / servers[-1].stdout.readline().strip()
            assert parts[name].is_file() and parts[name].name.startswith(f".{Path(name).stem}.")
        for killed in servers[:2]:
            killed.send_signal(signal.SIGKILL)
            killed.wait()
        elsewhere = work / "uploads" / ".photo.12345@elsewhere-example-abcd1234.part.png"  # a shared folder's other machine
        elsewhere.write_bytes(b"x")
        state = GuiState(work)
        assert not parts["photo.png"].exists() and not parts["gui_001_path.json"].exists()
        assert parts["still_writing.npy"].is_file() and elsewhere.is_file()
        assert state.save_upload("photo.png", b"whole").read_bytes() == b"whole"
    finally:
        for server in servers:
            server.kill()
            server.wait()


class _FakeKernel32:
    """Windows' kernel32 as process_alive calls it, over a table of pid → exit code (259: still
    running); a pid missing from it has no process, one mapped to None may not be opened."""

    def __init__(self, processes):
        self.processes, self.error, self.open_handles = processes, 0, set()

    def OpenProcess(self, access, inherit, pid):
        if pid not in self.processes or self.processes[pid] is None:
            self.error = 87 if pid not in self.processes else 5  # ERROR_INVALID_PARAMETER, ERROR_ACCESS_DENIED
            return None
        self.open_handles.add(1000 + pid)
        return 1000 + pid

    def GetExitCodeProcess(self, handle, code):
        code._obj.value = self.processes[handle - 1000]
        return 1

    def CloseHandle(self, handle):
        self.open_handles.remove(handle)
        return 1


def test_on_windows_a_run_name_held_by_a_killed_gui_is_freed(tmp_path, monkeypatch):
    """Windows has no flock, so a GUI's run marker there is unlocked, and process_alive answered
    True for every pid on Windows (os.kill(pid, 0) would end the process there): the marker of a
    GUI killed mid-run held its gui_NNN for good. Now Windows is asked for the process and its exit
    code: a pid with no process, or one that has ended, frees its name; a running process's, or
    one that may not be opened (another user's), is held. The platform is faked: fcntl missing,
    no pid namespace, kernel32 a table."""
    import socket

    from gen3c.gui import state as gui_state
    from gen3c.io import atomic

    kernel32 = _FakeKernel32({401: 259, 402: 0, 403: None})  # running, ended (handle held elsewhere), another user's
    monkeypatch.setattr(gui_state, "fcntl", None)
    monkeypatch.setattr(gui_state, "_PID_NAMESPACE", "unknown")
    monkeypatch.setattr(atomic, "on_windows", lambda: True)
    monkeypatch.setattr(atomic, "_kernel32", lambda: (kernel32, lambda: kernel32.error), raising=False)
    outputs = tmp_path / "work" / "outputs"
    outputs.mkdir(parents=True)
    host = socket.gethostname()
    for k, pid in enumerate((401, 402, 403, 404), start=1):  # 404: no process has it
        (outputs / f"gui_00{k}.running").write_text(f"a gen3c gui run, {host} pid {pid}, process 0123abcd, pid namespace unknown\n")
    state = GuiState(tmp_path / "work")
    assert [state.reserve_output_name() for _ in range(3)] == ["gui_002", "gui_004", "gui_005"]
    assert (outputs / "gui_001.running").read_text().endswith("pid 401, process 0123abcd, pid namespace unknown\n")
    assert not (outputs / "gui_005.running").read_text().endswith(f"{gui_state._MARKER_LOCKED}\n")  # made unlocked: no flock here
    assert not kernel32.open_handles  # each handle opened was closed
    for name in ("gui_002", "gui_004", "gui_005"):
        state.release_output_name(name)
    assert sorted(p.name for p in outputs.iterdir()) == ["gui_001.running", "gui_003.running"]
    assert atomic.process_alive(2**40)  # no process id: cannot be told
