"""The command line end to end: outputs, frame counts, content, and bad input."""

import io
import json
import os
import re
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest
import torch
from child_env import child_env
from rich.console import Console
from typer.testing import CliRunner

import gen3c.cli
from gen3c.cli import OPENMP_WAIT_SETTINGS, app, idle_thread_settings, imports_without_collection
from gen3c.io.camera_files import load_camera_file
from gen3c.io.video import read_video

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def generate_args(box_scene, out, *extra):
    image, depth, _, _ = box_scene
    return ("generate", "--input_image_path", image, "--depth_path", depth, "--fov", "60", "--resolution", "96x160",
            "--video_save_folder", out, *extra)  # fmt: skip


def test_generate_user_image_and_depth(box_scene, tmp_path):
    out = tmp_path / "out"
    res = invoke(*generate_args(box_scene, out, "--num_video_frames", 17, "--trajectory", "zoom_out", "--save_point_cloud"))
    assert res.exit_code == 0, res.output
    frames, fps = read_video(out / "output.mp4")
    assert frames.shape == (17, 96, 160, 3) and fps == 24
    # The camera moves, so the picture changes over time (and more by the end than at the start).
    diffs = [np.abs(frames[i].astype(float) - frames[0]).mean() for i in (1, 8, 16)]
    assert diffs[0] < diffs[1] < diffs[2] and diffs[2] > 5
    cams = load_camera_file(out / "output_cameras.json")
    assert len(cams) == 17 and (cams.height, cams.width) == (96, 160)
    assert (out / "output.ply").stat().st_size > 1000
    run = json.loads((out / "output_run.json").read_text())
    assert run["trajectory"] == "zoom_out" and run["num_video_frames"] == 17


def test_save_buffer_widens_video_as_gen3c(box_scene, tmp_path):
    res = invoke(*generate_args(box_scene, tmp_path, "--num_video_frames", 9, "--save_buffer", "--video_save_name", "buf"))
    assert res.exit_code == 0, res.output
    frames, _ = read_video(tmp_path / "buf.mp4")
    assert frames.shape == (9, 96, 320, 3)  # one buffer render left of the generated frame
    assert "(9 frames, 160×96, 320×96 with the buffer renders)" in res.output  # the file's size too
    masks, _ = read_video(tmp_path / "buf_buffer_masks.mp4")
    assert masks.shape == (9, 96, 160, 3)
    assert masks[0].mean() > 200 and masks[-1].mean() < masks[0].mean()  # holes open as the camera moves


def test_the_paths_a_run_wrote_print_whole_in_a_log(box_scene, tmp_path):
    """Without a terminal (a log, a pipe, CI) rich lays lines out at 80 columns: the paths a run
    wrote were broken over two lines wherever the 80th column fell, so none could be copied from
    the log. They print whole, one line each (a terminal wraps them on screen only)."""
    out = tmp_path / "a_folder_whose_name_takes_these_paths_past_the_eightieth_column"
    env = {"COLUMNS": "80"}
    res = runner.invoke(app, [str(a) for a in generate_args(box_scene, out, "--num_video_frames", 9)], env=env)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert any(line.startswith(f"wrote {out / 'output.mp4'} (9 frames, 160×96) in ") for line in lines), lines
    assert f"      {out / 'output_cameras.json'}" in lines and f"      {out / 'output_run.json'}" in lines
    res = runner.invoke(app, ["depth", str(box_scene[0]), "--depth_estimator", "prior", "--output_folder", str(out)], env=env)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert any(line.startswith(f"wrote {out / 'image_depth.png'} (160×96, relative depth from prior, ") for line in lines), lines
    assert f"      {out / 'image_depth.json'}" in lines


def test_one_frame_and_one_job_are_said_in_the_singular(box_scene, tmp_path):
    """Before: "wrote … (1 frames, …)", "done a (1 frames, …)", "gen3c batch: 1 jobs in …"."""
    res = invoke(*generate_args(box_scene, tmp_path / "one", "--num_video_frames", 1))
    assert res.exit_code == 0, res.output
    assert f"wrote {tmp_path / 'one' / 'output.mp4'} (1 frame, 160×96) in " in res.output
    image, depth, _, _ = box_scene
    job = {"name": "a", "input_image_path": str(image), "depth_path": str(depth), "fov": 60, "resolution": "96x160", "num_video_frames": 1}
    (tmp_path / "jobs.jsonl").write_text(json.dumps(job) + "\n")
    res = invoke("batch", tmp_path / "jobs.jsonl", "--output_folder", tmp_path / "batch")
    assert res.exit_code == 0, res.output
    assert "done a (1 frame, " in res.output and f"gen3c batch: 1 job in {tmp_path / 'batch'}\n" in res.output


def test_the_wrote_line_is_coloured_as_the_other_lines_are(box_scene, tmp_path, monkeypatch):
    """In a terminal only "wrote" is coloured, as in every other line the command prints. Before:
    rich's highlighter coloured the numbers and the path too."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    stream = io.StringIO()
    monkeypatch.setattr(gen3c.cli, "console", Console(file=stream, force_terminal=True, color_system="standard", width=100))
    res = invoke(*generate_args(box_scene, tmp_path, "--num_video_frames", 9))
    assert res.exit_code == 0, res.output
    path = re.escape(str(tmp_path / "output.mp4"))
    assert re.search(rf"\x1b\[32mwrote\x1b\[0m {path} \(9 frames, 160×96\) in [0-9.]+ s\n", stream.getvalue()), stream.getvalue()[-400:]


def test_a_rerun_under_the_same_name_replaces_the_earlier_runs_set_of_files(box_scene, tmp_path):
    """Run again without --save_buffer / --save_point_cloud: the earlier run's buffer masks and
    point cloud go with its video (they stayed beside a new video they no longer matched); files
    gen3c did not record as its own stay."""
    first = generate_args(box_scene, tmp_path, "--num_video_frames", 5, "--video_save_name", "v")
    assert invoke(*first, "--save_buffer", "--save_point_cloud").exit_code == 0
    assert len(list(tmp_path.iterdir())) == 5
    res = invoke(*first)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4", "v_cameras.json", "v_run.json"]
    assert read_video(tmp_path / "v.mp4")[0].shape == (5, 96, 160, 3)
    run = json.loads((tmp_path / "v_run.json").read_text())
    assert run["outputs"] == {"video": "v.mp4", "cameras": "v_cameras.json", "run": "v_run.json"}
    # A record written before gen3c listed its outputs tells by its settings; a file it does not
    # name (a point cloud the user put there) and a listed name that is not this run's stay.
    (tmp_path / "v_buffer_masks.mp4").write_bytes(b"old masks")
    (tmp_path / "v.ply").write_bytes(b"mine")
    (tmp_path / "notes.txt").write_text("mine")
    del run["outputs"]
    (tmp_path / "v_run.json").write_text(json.dumps({**run, "save_buffer": True}))
    assert invoke(*first).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "v.mp4", "v.ply", "v_cameras.json", "v_run.json"]
    run = json.loads((tmp_path / "v_run.json").read_text())
    (tmp_path / "v_run.json").write_text(json.dumps({**run, "outputs": {**run["outputs"], "point_cloud": "notes.txt"}}))
    assert invoke(*first).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "v.mp4", "v.ply", "v_cameras.json", "v_run.json"]


def test_a_rerun_under_the_same_name_in_another_unicode_form_replaces_the_earlier_runs_set(box_scene, tmp_path):
    """macOS: a run named café (é as e and a combining accent, as a name copied from the Finder is)
    with --save_buffer, then café again typed (é as one character) without it: the file system
    takes the two for one name, and gen3c replaces the earlier run's files as it does for any name
    used before (the spelling check lets it), but its buffer masks stayed beside the new video: the
    record lists them in the first run's form, which was compared character for character.
    Simulated on Linux by the files being found under the second run's form."""
    import unicodedata

    decomposed, composed = "cafe\u0301", "caf\u00e9"
    args = generate_args(box_scene, tmp_path, "--num_video_frames", 5)
    assert invoke(*args, "--video_save_name", decomposed, "--save_buffer").exit_code == 0
    for p in tmp_path.iterdir():  # where the second run finds them
        p.rename(p.with_name(unicodedata.normalize("NFC", p.name)))
    res = invoke(*args, "--video_save_name", composed)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{composed}.mp4", f"{composed}_cameras.json", f"{composed}_run.json"]


def test_camera_file_round_trip_reproduces_the_video(box_scene, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert invoke(*generate_args(box_scene, a, "--num_video_frames", 9, "--trajectory", "clockwise")).exit_code == 0
    # Without --num_video_frames the file's 9 cameras set the count (not the default 121).
    res = invoke(*generate_args(box_scene, b, "--camera_file", a / "output_cameras.json"))
    assert res.exit_code == 0, res.output
    fa, _ = read_video(a / "output.mp4")
    fb, _ = read_video(b / "output.mp4")
    assert fb.shape[0] == 9 and np.abs(fa.astype(int) - fb.astype(int)).max() <= 2


def test_a_nerfstudio_camera_path_renders_its_frames_over_its_seconds(box_scene, tmp_path):
    """nerfstudio's viewer at 25 fps over a 0.65 s path wrote int(16.25) = 16 entries, and ns-render
    (its render.py) plays them at 16 / 0.65 fps: so does gen3c, 16 frames lasting 0.65 s. Its fov
    of 60° over 96 rows is f = 48 / tan 30° px, centred: (79.5, 47.5) in gen3c's pixels."""
    path = [{"camera_to_world": [1, 0, 0, 0.1 * i / 16, 0, -1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1], "fov": 60.0, "aspect": 5 / 3} for i in range(16)]
    data = {"camera_type": "perspective", "render_height": 96, "render_width": 160, "fps": 25, "seconds": 0.65, "camera_path": path}
    (tmp_path / "camera_path.json").write_text(json.dumps(data))
    res = invoke(*generate_args(box_scene, tmp_path / "out", "--camera_file", tmp_path / "camera_path.json"))
    assert res.exit_code == 0, res.output
    frames, fps = read_video(tmp_path / "out" / "output.mp4")
    assert len(frames) == 16 and fps == pytest.approx(16 / 0.65, rel=1e-4)
    cams = json.loads((tmp_path / "out" / "output_cameras.json").read_text())
    assert cams["fps"] == pytest.approx(16 / 0.65) and len(cams["frames"]) == 16
    assert np.allclose(cams["frames"][15]["K"], [[48 / np.tan(np.pi / 6), 0, 79.5], [0, 48 / np.tan(np.pi / 6), 47.5], [0, 0, 1]], atol=1e-4)


def test_entry_point_help_lists_gen3c_flags():
    out = subprocess.run([sys.executable, "-m", "gen3c", "generate", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ("--input_image_path", "--video_save_name", "--video_save_folder", "--trajectory", "--camera_rotation",
                 "--movement_distance", "--num_video_frames", "--save_buffer", "--foreground_masking", "--seed",
                 "--depth_path", "--intrinsics", "--fov", "--generator", "--resolution", "--camera_file"):  # fmt: skip
        assert flag in out


def test_version_flag_prints_the_installed_version_and_runs_no_command():
    from gen3c import __version__

    done = subprocess.run([sys.executable, "-m", "gen3c", "--version", "demo"], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"gen3c {__version__}\n", "")
    assert __version__ == metadata.version("gen3c")


def test_idle_threads_sleep_unless_the_user_says_how_they_wait():
    assert idle_thread_settings({"OMP_NUM_THREADS": "2"}) == {"GOMP_SPINCOUNT": "1000", "OMP_WAIT_POLICY": "PASSIVE"}
    for name, value in (("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "300000"), ("KMP_BLOCKTIME", "200")):
        assert idle_thread_settings({name: value}) == {}


# `gen3c cache list` (a real command, quick) with one signal sent to itself at a chosen point:
# the first call of a function (`call`) or C function (`c_call`) that the profile hook watches.
INTERRUPTING = """
import atexit, gc, os, signal, sys, time
point, name, *args = sys.argv[1:]
send = lambda: os.kill(os.getpid(), getattr(signal, name))
watch = {
    "import": ("call", lambda frame, arg: frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "typer"),
    "command": ("call", lambda frame, arg: frame.f_code.co_name == "cache_list"),
    "sys.exit": ("c_call", lambda frame, arg: arg is sys.exit),
    "gc.freeze": ("c_call", lambda frame, arg: arg is gc.freeze),
}
def hook(frame, event, arg):
    if event == watch[point][0] and watch[point][1](frame, arg):
        sys.setprofile(None)
        send()
if point in watch:
    sys.setprofile(hook)
else:  # during the interpreter's shutdown, once or twice
    atexit.register(lambda: [send(), time.sleep(0.1)] + ([send(), time.sleep(10)] if point == "shutdown twice" else []))
sys.argv = ["gen3c", *args]
from gen3c.__main__ import main
main()
"""


@pytest.mark.slow
def test_ctrl_c_ends_in_130_wherever_it_comes(tmp_path):
    """Ctrl-C that came while typer's modules loaded, or as a finished command's exit unwound
    (typer's sys.exit, the gc.freeze after it), replaced the SystemExit under way: Python then
    killed itself with SIGINT (status −2, a KeyboardInterrupt traceback). Each point is hit
    exactly (a profile hook sends the signal); once the exit code is settled an interrupt is
    ignored, and a second one ends a hanging exit at once."""
    env = child_env(OMP_NUM_THREADS="1")
    expected = {("import", "SIGINT"): 130, ("command", "SIGINT"): 130, ("sys.exit", "SIGINT"): 130, ("gc.freeze", "SIGINT"): 130,
                ("sys.exit", "SIGTERM"): 143, ("shutdown", "SIGINT"): 0, ("shutdown twice", "SIGINT"): -2}  # fmt: skip
    for (point, name), code in expected.items():
        done = subprocess.run([sys.executable, "-c", INTERRUPTING, point, name, "cache", "list", "--cache_dir", str(tmp_path)],
                              capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
        assert done.returncode == code, (point, name, done.stderr)
        assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, (point, name, done.stderr)
        finished = "nothing cached" in done.stderr
        assert finished == (point not in ("import", "command")), (point, name, done.stderr)
        assert ("interrupted: " in done.stderr) == (point == "command"), (point, name, done.stderr)


@pytest.mark.slow
def test_the_command_line_sets_the_wait_policy_before_torch_loads(tmp_path):
    """OpenMP reads its settings once, when torch loads: libgomp's own report (OMP_DISPLAY_ENV)
    shows gen3c's spin count of 1000 (its default is 300000), or the user's own when one is given."""
    env = {k: v for k, v in os.environ.items() if k not in OPENMP_WAIT_SETTINGS} | {"OMP_DISPLAY_ENV": "VERBOSE"}
    command = [sys.executable, "-m", "gen3c", "generate", "--input_image_path", str(tmp_path / "missing.png")]  # fails after torch loads
    spin = {}
    for given in ({}, {"GOMP_SPINCOUNT": "5"}):
        done = subprocess.run(command, capture_output=True, text=True, env=env | given)
        assert done.returncode == 2 and "missing.png" in done.stderr
        lines = [line.split("=")[1].strip(" '") for line in done.stderr.splitlines() if line.strip().startswith("GOMP_SPINCOUNT")]
        if not lines:
            pytest.skip("torch here does not use GNU OpenMP (no GOMP_SPINCOUNT in its OMP_DISPLAY_ENV report)")
        spin[given.get("GOMP_SPINCOUNT")] = lines[0]
    assert spin == {None: "1000", "5": "5"}


def test_modules_load_with_the_garbage_collector_paused_and_only_then(tmp_path, monkeypatch):
    import builtins
    import gc

    for name in ("inside_block", "outside_block", "nested_outer", "nested_inner", "broken_module"):
        (tmp_path / f"{name}.py").write_text("import gc\nPAUSED = not gc.isenabled()\n")
    (tmp_path / "nested_outer.py").write_text("import gc\nimport nested_inner\nPAUSED_AFTER_INNER = not gc.isenabled()\n")
    (tmp_path / "broken_module.py").write_text("raise RuntimeError('broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    real_import = builtins.__import__
    assert gc.isenabled()
    with imports_without_collection():
        import inside_block
        import nested_outer

        assert gc.isenabled()
        with pytest.raises(RuntimeError, match="broken"):
            import broken_module  # noqa: F401
        assert gc.isenabled()
        gc.disable()  # paused by someone else: left paused
        import math  # noqa: F401

        assert not gc.isenabled()
        gc.enable()
    import outside_block

    assert inside_block.PAUSED and nested_outer.PAUSED_AFTER_INNER and sys.modules["nested_inner"].PAUSED
    assert not outside_block.PAUSED and builtins.__import__ is real_import and gc.isenabled()


def test_a_large_librarys_objects_are_frozen_when_its_import_returns(tmp_path, monkeypatch):
    """Loaded with the collector paused, a library's objects all wait in its youngest generation;
    after an import that leaves FREEZE_AFTER_OBJECTS of them they are frozen (never walked again),
    after a small one they are left to the collector."""
    import gc

    from gen3c.cli import FREEZE_AFTER_OBJECTS

    (tmp_path / "small_library.py").write_text("TABLE = [[i] for i in range(1000)]\n")
    (tmp_path / "large_library.py").write_text(f"TABLE = [[i] for i in range({FREEZE_AFTER_OBJECTS})]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    gc.collect()
    frozen = gc.get_freeze_count()
    try:
        with imports_without_collection():
            import small_library

            assert gc.get_freeze_count() == frozen
            # gc.get_objects(): the generations the collector walks (not the frozen objects)
            assert any(o is small_library.TABLE for o in gc.get_objects())
            import large_library

            assert gc.get_freeze_count() >= frozen + FREEZE_AFTER_OBJECTS
            assert not any(o is large_library.TABLE for o in gc.get_objects())
    finally:
        gc.unfreeze()


def test_help_texts_show_as_written():
    """typer renders help as rich markup: a bracketed word such as 'gen3c[fast]' would vanish
    from the screen unless escaped."""
    import typer.main
    from rich.text import Text

    def commands(command):
        yield command
        for sub in getattr(command, "commands", {}).values():
            yield from commands(sub)

    shown = [(p.help, Text.from_markup(p.help).plain) for c in commands(typer.main.get_command(app)) for p in c.params if getattr(p, "help", None)]
    assert len(shown) > 100
    assert not [(text, plain) for text, plain in shown if plain != text.replace("\\[", "[")]
    out = subprocess.run([sys.executable, "-m", "gen3c", "generate", "--help"], capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "300"}).stdout  # fmt: skip
    assert "with gen3c[fast] installed" in out


@pytest.fixture()
def bad_files(tmp_path, box_scene):
    files = {}
    (tmp_path / "empty.png").write_bytes(b"")
    files["empty"] = tmp_path / "empty.png"
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    files["corrupt"] = tmp_path / "corrupt.png"
    np.save(tmp_path / "nan.npy", np.full((96, 160), np.nan, np.float32))
    files["nan"] = tmp_path / "nan.npy"
    np.save(tmp_path / "neg.npy", -np.ones((96, 160), np.float32))
    files["neg"] = tmp_path / "neg.npy"
    np.save(tmp_path / "shape.npy", np.ones((50, 50), np.float32))
    files["shape"] = tmp_path / "shape.npy"
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    files["obj"] = tmp_path / "obj.npy"
    (tmp_path / "cams.json").write_text('{"frames": [1, 2]}')
    files["cams"] = tmp_path / "cams.json"
    (tmp_path / "afile").write_text("x")
    files["afile"] = tmp_path / "afile"
    return files


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing_image", "does not exist"),
        ("empty_image", "empty"),
        ("corrupt_image", "corrupt|not a readable"),
        ("nan_depth", "NaN"),
        ("negative_depth", "≤ 0"),
        ("wrong_shape_depth", "aspect"),
        ("object_depth", "never unpickled"),
        ("bad_intrinsics", "fx,fy,cx,cy"),
        ("negative_focal", "focal"),
        ("fov_and_intrinsics", "either"),
        ("bad_camera_file", "camera file"),
        ("zero_frames", "impossible"),
        ("tiny_fps", r"--fps 4\.8e-16 is impossible: pass a frame rate in \[1, 240\]"),
        ("bad_resolution", "HEIGHTxWIDTH"),
        ("output_is_file", "video_save_folder"),
        ("no_camera", "--intrinsics"),
        ("gen3c_generator", "gen3c"),
        ("estimator_not_used", "--depth_estimator estimates the depth without --depth_path, or the camera without"),
    ],
)
def test_bad_input_is_one_line_exit_2_no_output(case, match, box_scene, bad_files, tmp_path):
    image, depth, _, _ = box_scene
    out = tmp_path / "out"
    base = {"--input_image_path": image, "--depth_path": depth, "--fov": "60", "--resolution": "96x160",
            "--video_save_folder": out, "--num_video_frames": "9"}  # fmt: skip
    change = {
        "missing_image": {"--input_image_path": tmp_path / "nope.png"},
        "empty_image": {"--input_image_path": bad_files["empty"]},
        "corrupt_image": {"--input_image_path": bad_files["corrupt"]},
        "nan_depth": {"--depth_path": bad_files["nan"]},
        "negative_depth": {"--depth_path": bad_files["neg"]},
        "wrong_shape_depth": {"--depth_path": bad_files["shape"]},
        "object_depth": {"--depth_path": bad_files["obj"]},
        "bad_intrinsics": {"--fov": None, "--intrinsics": "1,2,3"},
        "negative_focal": {"--fov": None, "--intrinsics": "-100,100,80,48"},
        "fov_and_intrinsics": {"--intrinsics": "100,100,80,48"},
        "bad_camera_file": {"--camera_file": bad_files["cams"]},
        "zero_frames": {"--num_video_frames": "0"},
        "tiny_fps": {"--fps": "4.8e-16"},  # found by the fuzzer: the encoder's time base rounds to 0
        "bad_resolution": {"--resolution": "big"},
        "output_is_file": {"--video_save_folder": bad_files["afile"] / "sub"},
        "no_camera": {"--fov": None},
        "gen3c_generator": {"--generator": "gen3c"},
        "estimator_not_used": {"--depth_estimator": "prior"},  # depth and camera given: nothing to estimate
    }[case]
    args = {**base, **change}
    argv = ["generate"] + [str(x) for k, v in args.items() if v is not None for x in (k, v)]
    res = runner.invoke(app, argv)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    import re

    assert re.search(match, res.output), res.output
    error_lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(error_lines) <= 3  # one message (a long one may wrap in the terminal)
    assert not out.exists() or not any(out.iterdir())


def test_mask_invalid_depth_needs_depth_from_a_file(box_scene, tmp_path):
    """An estimator's depth has no NaN/inf pixels: --mask_invalid_depth there would do nothing. The
    refusal says how to leave its sky out, as docs/depth.md does ("export it first"); before, it said
    only "drop it"."""
    image, _, _, _ = box_scene
    res = invoke("generate", "--input_image_path", image, "--depth_estimator", "prior", "--mask_invalid_depth",
                 "--resolution", "96x160", "--num_video_frames", 5, "--video_save_folder", tmp_path)  # fmt: skip
    assert res.exit_code == 2 and "--mask_invalid_depth applies to depth given with the input" in res.output, res.output
    assert "export the depth first with gen3c depth and pass its NAME_depth.npy as --depth_path" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_a_named_estimator_that_cannot_load_stops_the_preview(box_scene, tmp_path, monkeypatch):
    """--depth_estimator someone/depth-model not cached, offline: it used to run the preview on the
    geometric prior with a note; the default (moge) still falls back, a named model is refused."""
    image, _, _, _ = box_scene
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    out = tmp_path / "out"
    res = invoke("generate", "--input_image_path", image, "--depth_estimator", "someone/depth-model", "--fov", "60",
                 "--resolution", "96x160", "--num_video_frames", 5, "--video_save_folder", out)  # fmt: skip
    assert res.exit_code == 2 and "someone/depth-model" in res.output and "Traceback" not in res.output, res.output
    assert "using a flat geometric prior" not in res.output and "asked for by name" in res.output and len([line for line in res.output.splitlines() if line.strip()]) <= 3
    assert not out.exists() or not any(out.iterdir())


def test_unknown_trajectory_is_a_usage_error(box_scene, tmp_path):
    res = invoke(*generate_args(box_scene, tmp_path, "--trajectory", "sideways"))
    assert res.exit_code == 2 and "sideways" in res.output


def test_demo_end_to_end(tmp_path):
    res = invoke("demo", "--video_save_folder", tmp_path, "--resolution", "176x320", "--save_buffer")
    assert res.exit_code == 0, res.output
    frames, fps = read_video(tmp_path / "demo.mp4")
    assert frames.shape == (121, 176, 640, 3) and fps == 24  # buffer render + generated frame
    generated = frames[..., 320:, :].astype(float)
    # Frame 0 is the shipped image; the camera then moves steadily, never jumping.
    from gen3c.scenes import load_demo_sample

    image, _, _ = load_demo_sample()
    assert image.shape[-2:] == (704, 1280)
    steps = np.abs(np.diff(generated, axis=0)).mean(axis=(1, 2, 3))
    assert steps.min() > 0.05 and steps.max() < 8 * np.median(steps)
    assert np.abs(generated[-1] - generated[0]).mean() > 10
    # No black holes are left in what the preview generated.
    assert (generated.max(axis=-1) < 8).mean() < 0.002


def test_gen3c_only_flags_with_preview_are_an_error(box_scene, tmp_path):
    res = invoke(*generate_args(box_scene, tmp_path, "--guidance", "3", "--compile"))
    assert res.exit_code == 2 and "--guidance, --compile apply to --generator gen3c only" in res.output


QUADRANTS = {(0, 0): (230, 40, 40), (0, 1): (40, 200, 60), (1, 0): (40, 70, 230), (1, 1): (240, 220, 40)}


def test_phone_photo_with_exif_orientation_comes_out_upright(tmp_path):
    """A JPEG stored portrait with EXIF Orientation 6 (turn 90° clockwise to view) and a depth map
    made for the upright, landscape photo: accepted, and the video is upright, as a viewer shows it."""
    from PIL import Image

    H, W = 48, 80
    upright = np.zeros((H, W, 3), np.uint8)
    for (r, c), colour in QUADRANTS.items():
        upright[r * H // 2 : (r + 1) * H // 2, c * W // 2 : (c + 1) * W // 2] = colour
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # what the phone wrote: 48 wide, 80 high
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    stored.save(tmp_path / "phone.jpg", quality=95, exif=exif)
    assert stored.size == (H, W)
    np.save(tmp_path / "depth.npy", np.full((H, W), 3.0, np.float32))
    res = invoke("generate", "--input_image_path", tmp_path / "phone.jpg", "--depth_path", tmp_path / "depth.npy", "--fov", "60",
                 "--resolution", f"{H}x{W}", "--num_video_frames", 5, "--video_save_folder", tmp_path / "out")  # fmt: skip
    assert res.exit_code == 0, res.output
    frames, _ = read_video(tmp_path / "out" / "output.mp4")
    assert frames.shape == (5, H, W, 3)
    for (r, c), colour in QUADRANTS.items():  # each quadrant's colour where the upright photo has it
        inner = frames[0, r * H // 2 + 6 : (r + 1) * H // 2 - 6, c * W // 2 + 8 : (c + 1) * W // 2 - 8].reshape(-1, 3)
        assert np.abs(inner.mean(0) - colour).max() < 20, (r, c, inner.mean(0))


def test_depth_with_nan_holes_and_inf_sky_is_accepted_with_a_note(box_scene, tmp_path):
    image, depth_path, _, depth = box_scene
    sky = depth.numpy().copy()
    sky[:20] = np.inf  # sky, as MoGe and ViPE leave it
    sky[50, 10:14] = np.nan
    np.save(tmp_path / "sky.npy", sky)
    res = invoke("generate", "--input_image_path", image, "--depth_path", tmp_path / "sky.npy", "--fov", "60", "--resolution", "96x160",
                 "--num_video_frames", 5, "--video_save_folder", tmp_path / "out")  # fmt: skip
    assert res.exit_code == 0, res.output
    note = " ".join(res.output.split())
    assert "note: depth file" in note and "3204 pixels (21%) of NaN/inf depth sit far away" in note and "--mask_invalid_depth" in note
    frames, _ = read_video(tmp_path / "out" / "output.mp4")
    assert frames.shape == (5, 96, 160, 3)
    res = invoke("generate", "--input_image_path", image, "--depth_path", tmp_path / "sky.npy", "--fov", "60", "--resolution", "96x160",
                 "--num_video_frames", 5, "--video_save_folder", tmp_path / "masked", "--mask_invalid_depth")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "3204 pixels (21%) of NaN/inf/≤ 0 depth are left out of the cache" in " ".join(res.output.split())


@pytest.mark.slow
def test_a_reader_that_leaves_early_ends_the_command_quietly(tmp_path):
    """`gen3c env --json | head`: the reader of stdout has gone before the report is written. The
    command ends with the shell's code for it (128 + SIGPIPE), no traceback calling it a bug."""
    env = child_env(OMP_NUM_THREADS="1")
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes
    try:
        done = subprocess.run([sys.executable, "-m", "gen3c", "env", "--json", "--cache_dir", str(tmp_path)], stdout=write,
                              stderr=subprocess.PIPE, text=True, env=env, timeout=120)  # fmt: skip
    finally:
        os.close(write)
    assert done.returncode == 141 and done.stderr == "", done.stderr


UNSEEN = "see none of the 3D cache (under 0.1% of their pixels): the model fills them from nothing; check the camera path's scale"


def test_frames_that_see_none_of_the_cache_are_noted_once_naming_them(box_scene, tmp_path):
    """A camera file whose frames 4…8 stand 1e8 units off (a path in millimetres for a scene in
    metres, say) ran to a video the model invented from nothing, without a word. The run now
    names those frames, once (it is in the run record too); a path that sees the scene says
    nothing, and a preset that turns round past its look-at point keeps its own note alone."""
    from gen3c.cameras import Cameras, intrinsics_from_fov
    from gen3c.io.camera_files import save_cameras

    w2c = torch.eye(4).repeat(9, 1, 1)
    w2c[4:, 0, 3] = -1e8
    save_cameras(tmp_path / "far.json", Cameras(w2c, intrinsics_from_fov(60, 96, 160), 96, 160))
    res = invoke(*generate_args(box_scene, tmp_path / "far", "--camera_file", tmp_path / "far.json"))
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert said.count(f"note: frames 4…8 of 9 {UNSEEN}") == 1 and said.count("none of the 3D cache") == 1, res.output
    run = json.loads((tmp_path / "far" / "output_run.json").read_text())
    assert [n for n in run["notes"] if "none of the 3D cache" in n] == [  # (in a manifest row's words, as the record says its notes)
        f"frames 4…8 of 9 {UNSEEN} (movement_distance; a camera file's translations are in the depth's units, metres for metric depth) "
        "and that it faces the scene"
    ]
    w2c[4:, 0, 3] = -0.05  # a step aside: every frame sees the scene
    save_cameras(tmp_path / "near.json", Cameras(w2c, intrinsics_from_fov(60, 96, 160), 96, 160))
    for name, extra in (("near", ("--camera_file", tmp_path / "near.json")), ("preset", ("--num_video_frames", 17))):
        res = invoke(*generate_args(box_scene, tmp_path / name, *extra))
        assert res.exit_code == 0 and "none of the 3D cache" not in res.output, res.output
    # frames 6…16 turn round and see nothing: said once, by the preset's note
    res = invoke(*generate_args(box_scene, tmp_path / "turned", "--num_video_frames", 17, "--trajectory", "zoom_in", "--movement_distance", 3))
    said = " ".join(res.output.split())
    assert res.exit_code == 0 and "turns the camera round: frames 6…16 look away" in said and "none of the 3D cache" not in said, res.output
