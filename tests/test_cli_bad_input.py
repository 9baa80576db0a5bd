"""User mistakes on every command: exit code 2, one line naming the input and the fix, no
traceback, nothing left in the output folder (an adversarial audit's findings, kept)."""

import importlib.util
import json
import re
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from child_env import child_env
from typer.testing import CliRunner

from gen3c.cli import app

runner = CliRunner()


def refused(argv, match, out=None):
    """Run ``gen3c ARGV``: exit 2 with one error line matching ``match``; ``out`` left empty."""
    res = runner.invoke(app, [str(a) for a in argv])
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert "Traceback" not in res.output
    errors = res.output.splitlines()  # exactly one line: no blank line of a progress display either
    assert len(errors) == 1 and errors[0].startswith("error:") and re.search(match, errors[0]), res.output
    if out is not None:
        assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))
    return errors[0]


@pytest.fixture()
def files(tmp_path, box_scene):
    """An image, its depth, and files of the wrong kind under the names users give them."""
    image, depth, _, _ = box_scene
    png = image.read_bytes()
    found = {"image": image, "depth": depth, "afile": tmp_path / "afile"}
    found["afile"].write_text("x")
    for name, data in {"png.npz": png, "png.npy": png, "text.npy": b"fx fy cx cy\n", "K.npy": png}.items():
        (tmp_path / name).write_bytes(data)
        found[name] = tmp_path / name
    np.save(tmp_path / "array.npy", np.ones((4, 4), np.float32))
    found["array.npy"] = tmp_path / "array.npy"
    sample = tmp_path / "sample"
    sample.mkdir()
    for name in ("rgb.mp4", "depth.npz", "mask.npz", "camera.npz"):
        (sample / name).write_bytes(png)
    found["sample"] = sample
    return found


def generate(files, out, **changes):
    args = {"--input_image_path": files["image"], "--depth_path": files["depth"], "--fov": "60", "--resolution": "32x48",
            "--num_video_frames": "5", "--video_save_folder": out, **changes}  # fmt: skip
    return ["generate"] + [x for k, v in args.items() if v is not None for x in (k, v)]


@pytest.mark.parametrize(
    "case, match",
    [
        ("png_as_npz_depth", r"depth file '.*png\.npz' is a PNG image, not a NumPy \.npz file"),
        ("text_as_npy_depth", r"depth file '.*text\.npy' is text, not a NumPy \.npy file"),
        ("npy_as_multiview", r"multi-view npz '.*array\.npy' is a NumPy \.npy array, not a NumPy \.npz file"),
        ("png_in_sample_folder", r"depth\.npz' is a PNG image, not a NumPy \.npz file"),
        ("png_as_npy_intrinsics", r"--intrinsics file '.*K\.npy' is a PNG image, not a NumPy \.npy file"),
    ],
)
def test_a_file_of_another_kind_is_named_for_what_it_is(case, match, files, tmp_path):
    """numpy.load takes any unknown file for a pickle: the error named "Python objects" for a renamed PNG."""
    out = tmp_path / "out"
    changes = {
        "png_as_npz_depth": {"--depth_path": files["png.npz"]},
        "text_as_npy_depth": {"--depth_path": files["text.npy"]},
        "npy_as_multiview": {"--input_image_path": None, "--depth_path": None, "--fov": None, "--multiview_npz": files["array.npy"]},
        "png_in_sample_folder": {"--input_image_path": files["sample"], "--depth_path": None, "--fov": None},
        "png_as_npy_intrinsics": {"--fov": None, "--intrinsics": files["K.npy"]},
    }[case]
    refused(generate(files, out, **changes), match, out)


@pytest.mark.parametrize(
    "case, match",
    [
        ("long_image", r"input image '/tmp/[^'…]{45}…n{145}\.png' cannot be read \(File name too long\): check the path"),
        # 5000 characters in 25 folders: the line as long (the image reader quoted every path whole)
        ("deep_image", r"^error: input image '/tmp/[^'…]{45}…d{139}/photo\.png' cannot be read \(File name too long\): check the path and the file's permissions$"),
        ("long_sample", r"'/tmp/[^'…]{45}…n{146}\.pt' cannot be read \(File name too long\): check the path"),
        ("unknown_user", r"--input_image_path '~nouser_gen3c/x\.png' starts with ~nouser_gen3c, the home folder of 'nouser_gen3c', "
                         r"no user on this machine: write the path out in full"),
        ("long_vipe", r"ViPE directory '/tmp/[^'…]{45}…n{149}' does not exist: pass the folder given to 'vipe infer --output'$"),
        ("long_vipe_video", r"ViPE video '/tmp/[^'…]{45}…n{139}/rgb/a\.mp4' does not exist: check --vipe_path$"),
        ("long_multiview", r"multi-view npz '/tmp/[^'…]{45}…n{149}' does not exist: check --multiview_npz$"),
        ("long_depth", r"^error: depth file '/tmp/[^'…]{45}…n{145}\.npy' cannot be read \(File name too long\): check the path$"),
        ("long_checkpoint", r"^error: checkpoint '/tmp/[^'…]{45}…n{149}' does not exist: pass a converted checkpoint folder or a hub id; "),
        # refused before the depth is estimated (minutes; here MoGe's weights, not on this machine, were named first)
        ("missing_checkpoint", r"^error: checkpoint '.*nope' does not exist: pass a converted checkpoint folder or a hub id; "),
    ],
)  # fmt: skip
def test_an_input_path_no_file_can_have_is_one_line(case, match, files, tmp_path):
    """A 300-character name raised OSError "File name too long" from the settings' frame-rate
    default (is the input a sample folder?), from the ViPE and multi-view readers' checks and where
    a checkpoint folder is looked for; a quoted ~user of no user was called missing. A path over
    200 characters is quoted by its start and its end, which names the file."""
    out = tmp_path / "out"
    long = tmp_path / ("n" * 300)
    inputs = {"long_image": {"--input_image_path": tmp_path / ("n" * 300 + ".png")}, "long_sample": {"--input_image_path": tmp_path / ("n" * 300 + ".pt")},
              "deep_image": {"--input_image_path": tmp_path.joinpath(*["d" * 200] * 25, "photo.png")},
              "unknown_user": {"--input_image_path": "~nouser_gen3c/x.png"}, "long_vipe": {"--vipe_path": long},
              "long_vipe_video": {"--vipe_path": long / "rgb" / "a.mp4"}, "long_multiview": {"--multiview_npz": long},
              "long_checkpoint": {"--generator": "gen3c", "--checkpoint_dir": long, "--num_video_frames": "121"},
              "missing_checkpoint": {"--input_image_path": files["image"], "--fov": None, "--generator": "gen3c", "--checkpoint_dir": tmp_path / "nope",
                                     "--num_video_frames": "121"},
              "long_depth": {"--input_image_path": files["image"], "--depth_path": tmp_path / ("n" * 300 + ".npy")}}[case]  # fmt: skip
    image = {} if "--input_image_path" in inputs or "--generator" in inputs else {"--input_image_path": None, "--fov": None}
    refused(generate(files, out, **{"--depth_path": None, **image, **inputs}), match, out)


@pytest.mark.parametrize(
    "case, match",
    [
        ("file", r"^error: checkpoint '.*afile' is a file: pass the checkpoint's folder \(the one holding model_index\.json\)$"),
        ("empty", r"^error: checkpoint '.*empty' has no model_index\.json, so it is not a converted gen3c checkpoint: "),
        ("original", r"^error: checkpoint '.*Gen3C-Cosmos-7B' is GEN3C's original layout, not a converted one: run `gen3c convert "),
    ],
)  # fmt: skip
def test_a_checkpoint_that_cannot_load_is_refused_before_the_input_is_read(case, match, files, tmp_path, monkeypatch):
    """A --checkpoint_dir that is a file or a folder without a converted checkpoint was refused only
    when the model loaded: after the input was read and its depth estimated (minutes; here MoGe's
    weights, not on this machine, were named first), and by `gen3c gui` once the page loaded it.
    Now in the load's own words before anything is read; the GUI's server does not start."""
    pytest.importorskip("diffusers")
    pytest.importorskip("viser")
    import gen3c.gui.app as gui_app

    def no_server(*args, **kwargs):
        raise AssertionError("the GUI started")

    monkeypatch.setattr(gui_app, "Gen3cApp", no_server)
    (tmp_path / "empty").mkdir()
    (tmp_path / "Gen3C-Cosmos-7B").mkdir()
    (tmp_path / "Gen3C-Cosmos-7B" / "model.pt").write_bytes(b"weights")
    checkpoint = {"file": files["afile"], "empty": tmp_path / "empty", "original": tmp_path / "Gen3C-Cosmos-7B"}[case]
    out = tmp_path / "out"
    refused(generate(files, out, **{"--depth_path": None, "--fov": None, "--generator": "gen3c", "--checkpoint_dir": checkpoint, "--num_video_frames": "121"}),
            match, out)
    refused(["gui", "--work_dir", tmp_path / "gui", "--generator", "gen3c", "--checkpoint_dir", checkpoint], match)
    assert not (tmp_path / "gui").exists()


@pytest.mark.parametrize(
    "info, match",
    [
        ('{"chunk_frames": "x"}', r"'s 'chunk_frames' must be a whole number of frames ≥ 1, got \"x\": fix or remove it$"),
        ('{"chunk_frames": true}', r"'s 'chunk_frames' must be a whole number of frames ≥ 1, got true: fix or remove it$"),
        ('{"guidance": "high"}', r"'s 'guidance' must be a finite number, got \"high\": fix or remove it$"),
        ('{"num_steps": 2.5}', r"'s 'num_steps' must be a whole number of steps ≥ 1, got 2\.5: fix or remove it$"),
        ("[17]", r" is unreadable \(a JSON list, not an object\): train or copy it again$"),
    ],
)  # fmt: skip
def test_a_checkpoint_s_model_record_of_the_wrong_kind_is_one_line(info, match, files, tmp_path):
    """A checkpoint's gen3c_model.json with a setting of the wrong kind was a ValueError traceback
    ("a bug in gen3c") where a run converted it, was read as True → chunk_frames 1, a float's steps
    cut to a whole number, or (no JSON object) ignored: one line naming the file and the setting."""
    pytest.importorskip("diffusers")
    from gen3c.models.packaged import packaged_model_dir

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(packaged_model_dir("tiny"), checkpoint)
    (checkpoint / "gen3c_model.json").write_text(info)
    out = tmp_path / "out"
    refused(generate(files, out, **{"--generator": "gen3c", "--checkpoint_dir": checkpoint, "--num_video_frames": "17"}),
            r"^error: checkpoint '.*ckpt': gen3c_model\.json" + match, out)


@pytest.mark.parametrize("link", ["dangling", "loop"])
def test_an_output_folder_that_is_a_link_to_no_folder_says_so(link, files, tmp_path):
    """A dangling symbolic link or a loop of them as the output folder said "cannot be created
    (File exists)", of a path where nothing seems to be."""
    out = tmp_path / "out"
    if link == "dangling":
        out.symlink_to(tmp_path / "nowhere")
    else:
        (tmp_path / "other").symlink_to(out)
        out.symlink_to(tmp_path / "other")
    refused(generate(files, out), r"^error: --video_save_folder '.*out' is a symbolic link to '.*(nowhere|other)', which is no folder "
                                  r"\(missing, or a loop of links\): make the folder it points to, or choose another path$")
    assert out.is_symlink() and not (tmp_path / "nowhere").exists()


def test_a_path_no_reader_checked_first_is_one_line(files, tmp_path, monkeypatch):
    """The CLI's own line for a path no file can have that a reader met unchecked (it was "stopped
    on an unexpected OSError … a bug in gen3c", with a traceback)."""
    import errno

    from gen3c.pipelines import request

    def unchecked(*args, **kwargs):
        raise OSError(errno.ENAMETOOLONG, "File name too long", str(tmp_path / ("n" * 300)))

    monkeypatch.setattr(request, "run_request", unchecked)
    refused(generate(files, tmp_path / "out"), r"^error: path '/tmp/[^'…]{45}…n{149}' cannot be used \(File name too long\): check the paths given$")


LONG = "n" * 201


@pytest.mark.parametrize(
    "case, match",
    [
        ("name_too_long", r"--video_save_name 'n+'… is 201 bytes long: pass a name of at most 200 bytes"),
        ("name_with_mp4", r"--video_save_name 'clip\.mp4' ends in \.mp4, which gen3c adds itself: pass 'clip'"),
        ("video_taken_by_folder", r"output '.*output\.mp4' is a folder: move it away, or pass another --video_save_name"),
        ("cameras_taken_by_folder", r"output '.*output_cameras\.json' is a folder"),
        ("ply_taken_by_folder", r"output '.*output\.ply' is a folder"),
        ("folder_is_a_file", r"--video_save_folder '.*afile' is a file, not a folder: choose a folder path"),
    ],
)
def test_generate_output_names_refused_before_anything_is_made(case, match, files, tmp_path):
    """These raised OSError / IsADirectoryError tracebacks (a name too long for the file system, a
    folder where a file goes — after writing the cameras and settings), or wrote clip.mp4.mp4."""
    out = tmp_path / "out"
    blocker = {"video_taken_by_folder": "output.mp4", "cameras_taken_by_folder": "output_cameras.json",
               "ply_taken_by_folder": "output.ply"}.get(case)  # fmt: skip
    if blocker:
        (out / blocker).mkdir(parents=True)
    changes = {
        "name_too_long": {"--video_save_name": LONG},
        "name_with_mp4": {"--video_save_name": "clip.mp4"},
        "folder_is_a_file": {"--video_save_folder": files["afile"]},
    }.get(case, {})
    argv = generate(files, out, **changes) + (["--save_point_cloud", "--save_buffer"] if case == "ply_taken_by_folder" else [])
    refused(argv, match)
    # Only the blocking folder is there: no video, no cameras, no temporary file.
    assert sorted(p.name for p in out.rglob("*")) == ([blocker] if blocker else []), sorted(out.rglob("*"))


CASE = "ignores case, as macOS and Windows do"


@pytest.mark.parametrize(
    "name, taken, mine",
    [
        ("demo", "Demo.mp4", "demo.mp4"),  # another run's video
        ("demo", "DEMO_run.json", "demo_run.json"),  # another run's record
        ("Café", "cafe\u0301.mp4", "Café.mp4"),  # another case (and é as e and a combining accent)
        ("demo", "Demo.partial", "demo.partial"),  # a long run's kept chunks
    ],
)
def test_an_output_the_folder_holds_in_another_spelling_is_refused_on_such_a_file_system(name, taken, mine, files, tmp_path, case_insensitive_folders):
    """On macOS and Windows --video_save_name demo wrote demo.mp4 over the Demo.mp4 there (another
    run's, left with its record beside a video it did not make), its record over DEMO_run.json; a
    demo.partial was Demo.partial, whose chunks a --resume took for its own. Now one line, before
    the input is read, and the file is kept."""
    out = tmp_path / "out"
    out.mkdir()
    if taken.endswith(".partial"):
        (out / taken).mkdir()
    else:
        (out / taken).write_bytes(b"earlier")
    refused(generate(files, out, **{"--video_save_name": name}),
            rf"^error: output '.*/{re.escape(mine)}' would replace '{re.escape(taken)}' there, the same file to this file system \(it {CASE}\): "
            r"pass another --video_save_name or --video_save_folder, or spell the name as that file's is, to replace it$")  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [taken]
    assert (out / taken).is_dir() if taken.endswith(".partial") else (out / taken).read_bytes() == b"earlier"


def test_an_output_of_another_case_is_two_files_where_the_file_system_tells_case(files, tmp_path):
    """Linux: demo.mp4 beside Demo.mp4 is another file, written as before."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "Demo.mp4").write_bytes(b"earlier")
    res = runner.invoke(app, [str(a) for a in generate(files, out, **{"--video_save_name": "demo"})])
    assert res.exit_code == 0, res.output
    assert (out / "Demo.mp4").read_bytes() == b"earlier" and (out / "demo.mp4").stat().st_size > 1000


def test_an_output_in_another_unicode_form_is_the_same_name_and_is_replaced(files, tmp_path, case_insensitive_folders):
    """HFS+ lists café.mp4 with é as e and a combining accent however it was typed: a run of that
    name again replaces it, as any run of a name used before does, rather than being refused."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "cafe\u0301.mp4").write_bytes(b"earlier")
    res = runner.invoke(app, [str(a) for a in generate(files, out, **{"--video_save_name": "caf\u00e9"})])
    assert res.exit_code == 0, res.output


def test_a_name_used_before_lists_no_folder_where_the_file_system_tells_case(tmp_path, monkeypatch):
    """Linux: a run under a name used before listed its output folder for every file it writes, in
    the run's check and again in its writer, to find another spelling that Linux cannot have
    (0.5 s for 100,000 files in a batch's folder). It looks the name up in the other case: not found,
    the folder is not listed. Where the folder ignores case, the other spelling is still found."""
    import os

    from gen3c.io import paths

    (tmp_path / "demo.mp4").write_bytes(b"earlier")
    (tmp_path / "Other.mp4").write_bytes(b"earlier")
    listed = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda folder=".": listed.append(folder) or real_listdir(folder))
    assert [paths.other_spelling(tmp_path / name) for name in ("demo.mp4", "other.mp4", "new.mp4")] == [None, None, None]
    assert listed == []
    monkeypatch.setattr(paths, "_found_as_spelled", lambda path: any(paths.one_file_key(name) == paths.one_file_key(path.name) for name in real_listdir(path.parent)))
    assert [paths.other_spelling(tmp_path / name) for name in ("demo.mp4", "other.mp4", "new.mp4")] == [None, "Other.mp4", None]


@pytest.mark.parametrize(
    "held, mine",
    [
        # NTFS keeps the Kelvin sign K apart from k (its upper case is K), which case-folding makes one.
        (["\u212a.mp4", "k.mp4"], "k.mp4"),
        # ß is no ss to Windows (it upper-cases a character to one): a folder from there may hold both, one key's names.
        (["Stra\u00dfe.mp4", "strasse.mp4"], "strasse.mp4"),
    ],
)
def test_the_entry_told_as_another_spelling_is_the_file_the_name_opens(held, mine, tmp_path, monkeypatch):
    """Where a case-insensitive folder held two names of one case-folded key, the first listed was
    told as the file an output would replace, which could be the other: the one the name opens
    (the same inode) is told. Here the file system's answer is a hard link under the asked
    spelling, which the folder's listing leaves out, as macOS and Windows list only the file's own."""
    import os

    from gen3c.io import paths

    for name in held:
        (tmp_path / name).write_bytes(name.encode())
    asked = mine.upper()
    os.link(tmp_path / mine, tmp_path / asked)
    real_listdir = os.listdir  # (the folder listed without the asked spelling, the other name first)
    monkeypatch.setattr(os, "listdir", lambda folder=".": held if Path(folder) == tmp_path else real_listdir(folder))
    assert paths.other_spelling(tmp_path / asked) == mine


def test_a_name_of_another_spelling_is_told_where_the_file_system_numbers_files_by_the_name_looked_up(tmp_path, case_insensitive_folders, monkeypatch):
    """A case-insensitive network share may number a file by the name it was looked up by (macOS's
    smbfs without the server's file ids, Linux's cifs with noserverino): demo.mp4 and Demo.mp4, one
    file, have two inode numbers. Telling the entry by its inode found none, so the Demo.mp4 there
    was not told and writing demo.mp4 replaced it; and every other name of the folder was stat'ed
    to look for it (thousands of round trips on a share). The name of the key is told, no other stat'ed."""
    from gen3c.io import paths

    (tmp_path / "Demo.mp4").write_bytes(b"earlier run")
    for i in range(50):
        (tmp_path / f"other_{i}.mp4").write_bytes(b"")
    looked_up: list[str] = []

    def numbered_by_name(path):
        looked_up.append(path.name)
        return (1, zlib.crc32(path.name.encode()) + 1)

    monkeypatch.setattr(paths, "_file_id", numbered_by_name, raising=False)  # (the code before had it too)
    assert paths.other_spelling(tmp_path / "demo.mp4") == "Demo.mp4"
    assert looked_up == ["demo.mp4", "Demo.mp4"]


@pytest.mark.parametrize(
    "name, blocker, match",
    [
        ("a/b", None, r"--name 'a/b' must be a plain file name"),
        ("..", None, r"--name '\.\.' must be a plain file name"),
        ("", None, r"--name '' must be a plain file name"),
        ("  ", None, r"^error: --name '  ' is only spaces: pass a name$"),
        (LONG, None, r"--name 'n+'… is 201 bytes long"),
        (None, "image_depth.json", r"output '.*image_depth\.json' is a folder: move it away, or pass another --name"),
    ],
)
def test_depth_output_names(name, blocker, match, files, tmp_path):
    """`gen3c depth --name a/b` and over-long names were tracebacks, '..' wrote '.._depth.png', a
    folder at NAME_depth.json failed after three of the four files were written."""
    out = tmp_path / "out"
    if blocker:
        (out / blocker).mkdir(parents=True)
    argv = ["depth", files["image"], "--depth_estimator", "prior", "--fov", "60", "--output_folder", out]
    refused(argv + ([] if name is None else ["--name", name]), match)
    assert sorted(p.name for p in out.rglob("*")) == ([blocker] if blocker else [])


def test_depth_never_writes_over_the_image_it_reads(files, tmp_path):
    """`gen3c depth room_depth.png --name room` (a photo saved under an output's name) read the
    photo, then wrote its false-colour depth over it as room_depth.png: the photo was lost."""
    out = tmp_path / "out"
    out.mkdir()
    photo = out / "room_depth.png"
    shutil.copyfile(files["image"], photo)
    refused(["depth", photo, "--depth_estimator", "prior", "--fov", "60", "--output_folder", out, "--name", "room"],
            r"^error: the input IMAGE_PATH '.*out/room_depth\.png' is the output '.*out/room_depth\.png', which this run would replace: "
            r"pass another --name or --output_folder$")  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["room_depth.png"] and photo.read_bytes() == files["image"].read_bytes()


@pytest.mark.parametrize(
    "command, args, match",
    [
        # `gen3c depth --fov nan` named no flag ("field of view nan° is out of range"), where `gen3c generate` says --fov.
        ("depth", ["--fov", "nan"], r"^error: --fov nan is impossible: pass degrees between 0\.01 and 179$"),
        ("depth", ["--fov", "0"], r"^error: --fov 0\.0 is impossible: pass degrees between 0\.01 and 179$"),
        # A folder as --intrinsics was "neither 'fx,fy,cx,cy' nor an existing file: check it", though it exists.
        ("depth", ["--intrinsics", "{folder}"], r"^error: --intrinsics '.*' is a folder: pass a file in it \(JSON fx/fy/cx/cy or K, txt, npy, "
                                                r"a camera file, COLMAP's cameras\.txt\), or 'fx,fy,cx,cy'$"),
        ("generate", ["--intrinsics", "{folder}"], r"^error: --intrinsics '.*' is a folder: pass a file in it"),
    ],
)  # fmt: skip
def test_a_field_of_view_or_intrinsics_of_no_use_is_refused_naming_the_flag(command, args, match, files, tmp_path):
    out = tmp_path / "out"
    args = [a.format(folder=tmp_path) for a in args]
    if command == "depth":
        argv = ["depth", files["image"], "--depth_estimator", "prior", "--output_folder", out, *args]
    else:
        argv = generate(files, out, **{"--fov": None, args[0]: args[1]})
    refused(argv, match, out)


WINDOWS_DEVICE = "a device name on Windows (CON, PRN, AUX, NUL, CONIN$, CONOUT$, COM1…9, LPT1…9), which no file there can have"


@pytest.mark.parametrize(
    "name, problem, depth_files_too",
    [
        ("nul", f"is {WINDOWS_DEVICE}", False),  # nul.mp4 is the null device there: the video written into nothing
        ("CON.v2", f"starts with 'CON', {WINDOWS_DEVICE}", True),  # CON.v2_depth.png too
        ("Com\u00b9", f"is {WINDOWS_DEVICE}", False),
        ("take:1", "holds ':', which Windows takes in no file name (< > : \" \\ | ? *)", True),  # a hidden stream of a file 'take'
        ("why?", "holds '?', which Windows takes in no file name", True),
    ],
)
def test_an_output_name_windows_holds_no_file_under_is_refused_there(name, problem, depth_files_too, files, tmp_path, monkeypatch):
    """On Windows `gen3c generate --video_save_name nul` wrote its video to the null device, where
    it was lost, and `take:1` into a hidden stream of a file 'take': runs that ended as if they had
    made their outputs. One line now, before anything is read or written (the Windows branch, run
    here with the platform check patched). gen3c depth refuses a --name where its own files'
    names are none Windows holds (CON.v2_depth.png), not where only the video's would be (nul)."""
    from gen3c.io import atomic

    monkeypatch.setattr(atomic, "on_windows", lambda: True, raising=False)  # (the code before had no such check)
    out = tmp_path / "out"
    refused(generate(files, out, **{"--video_save_name": name}), rf"^error: --video_save_name {re.escape(repr(name))} {re.escape(problem)}.*: choose another name$")
    if depth_files_too:
        argv = ["depth", files["image"], "--depth_estimator", "prior", "--fov", "60", "--output_folder", out, "--name", name]
        refused(argv, rf"^error: --name {re.escape(repr(name))} {re.escape(problem)}.*: choose another name$")
    assert not out.exists() or not any(out.iterdir())


def test_a_depth_name_that_only_begins_its_files_names_is_written_on_windows(files, tmp_path, monkeypatch):
    """`gen3c depth --name nul` was refused on Windows as if it wrote nul.*, though its files are
    nul_depth.png, nul_points.ply, …: names Windows holds like any other. They are written now;
    a name its files would start with a device name in (nul.v2_depth.png) is still refused."""
    from gen3c.io import atomic

    monkeypatch.setattr(atomic, "on_windows", lambda: True, raising=False)
    out = tmp_path / "out"
    argv = ["depth", files["image"], "--depth_estimator", "prior", "--fov", "60", "--output_folder", out]
    res = runner.invoke(app, [str(a) for a in [*argv, "--name", "nul"]])
    assert res.exit_code == 0, res.output
    written = ["nul_depth.json", "nul_depth.npy", "nul_depth.png", "nul_mask.png", "nul_points.ply"]
    assert sorted(p.name for p in out.iterdir()) == written
    refused([*argv, "--name", "nul.v2"], rf"^error: --name 'nul\.v2' starts with 'nul', {re.escape(WINDOWS_DEVICE)}: choose another name$")


def test_an_output_folder_windows_holds_no_folder_under_is_refused_there(files, tmp_path, monkeypatch):
    """On Windows `--video_save_folder out/nul` (gen3c depth's --output_folder, gen3c train's --out)
    named the null device, not a folder, and was not checked: outputs went nowhere, or the system's
    error came once the model had loaded. One line now, naming the option, before anything is
    written; a folder whose name only begins with a device name's letters is a folder like any other."""
    from gen3c.errors import Gen3cInputError
    from gen3c.io import atomic

    monkeypatch.setattr(atomic, "on_windows", lambda: True, raising=False)
    device = re.escape(WINDOWS_DEVICE.replace("no file", "no folder"))  # (it said "no file there can have" of a folder)
    refused(generate(files, tmp_path / "out" / "nul"), rf"^error: --video_save_folder '.*/out/nul': 'nul' is {device}: choose another folder$", tmp_path / "out")
    argv = ["depth", files["image"], "--depth_estimator", "prior", "--fov", "60", "--output_folder", tmp_path / "out" / "con.d"]
    refused(argv, rf"^error: --output_folder '.*/out/con\.d': 'con\.d' starts with 'con', {device}: choose another folder$", tmp_path / "out")
    refused(["train", "small_procedural", "--out", tmp_path / "out" / "AUX"], rf"^error: training output folder '.*/out/AUX': 'AUX' is {device}: choose another folder$", tmp_path / "out")
    # A file written by its full path (the Python API's writers): its name is checked as it is made.
    with pytest.raises(Gen3cInputError, match=rf"^output '.*/con\.json': 'con\.json' starts with 'con', {re.escape(WINDOWS_DEVICE)}: choose another output name$"):
        atomic.write_text_atomic(tmp_path / "con.json", "{}")
    with pytest.raises(Gen3cInputError, match=r"^--output_folder '.*/take:1': 'take:1' holds ':', which Windows takes in no folder name \(<"):
        atomic.ensure_writable_dir(tmp_path / "take:1", "--output_folder")
    assert not (tmp_path / "out").exists() and not (tmp_path / "con.json").exists() and not (tmp_path / "take:1").exists()
    assert atomic.ensure_writable_dir(tmp_path / "nul_outputs", "--output_folder").is_dir()
    atomic.write_text_atomic(tmp_path / "console.json", "{}")
    assert (tmp_path / "console.json").read_text() == "{}"


def test_an_output_name_windows_holds_no_file_under_is_kept_elsewhere(files, tmp_path):
    """On Linux and macOS `take:1` and `nul` are file names like any other, and a run's outputs
    (unlike a batch's, copied anywhere) stay where they are made: they are written."""
    from gen3c.io.atomic import check_output_name

    for name in ("take:1", "nul", "CON.v2", "why?"):
        check_output_name(name, "--video_save_name")
    out = tmp_path / "out"
    res = runner.invoke(app, [str(a) for a in generate(files, out, **{"--video_save_name": "take:1"})])
    assert res.exit_code == 0, res.output
    assert (out / "take:1.mp4").stat().st_size > 1000


def test_a_depth_output_the_folder_holds_in_another_spelling_is_refused_on_such_a_file_system(files, tmp_path, case_insensitive_folders):
    """On macOS and Windows `gen3c depth photo.png --name room` wrote room_depth.png over the
    Room_depth.png of an earlier export there."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "Room_depth.png").write_bytes(b"earlier")
    argv = ["depth", files["image"], "--depth_estimator", "prior", "--fov", "60", "--output_folder", out, "--name", "room"]
    refused(argv, rf"^error: output '.*/room_depth\.png' would replace 'Room_depth\.png' there, the same file to this file system \(it {CASE}\): "
                  r"pass another --name or --output_folder, or spell the name as that file's is, to replace it$")  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["Room_depth.png"] and (out / "Room_depth.png").read_bytes() == b"earlier"


@pytest.mark.parametrize(
    "taken, match",
    [
        ("Room_depth.png", rf"output '.*/room_depth\.png' would replace 'Room_depth\.png' there, the same file to this file system \(it {CASE}\)"),
        ("room_points.ply/", r"output '.*/room_points\.ply' is a folder: move it away, or pass another --name or --output_folder$"),
    ],
)
def test_depth_outputs_the_folder_cannot_take_are_refused_before_the_estimator_loads(taken, match, files, tmp_path, case_insensitive_folders, monkeypatch):
    """`gen3c depth --name room` beside an earlier export's Room_depth.png (macOS, Windows), or with
    a folder at room_points.ply, loaded the estimator and estimated the depth (a download and
    minutes for MoGe on a CPU) before it was refused. Now before the estimator loads."""
    import gen3c.depth

    def no_loading(*args, **kwargs):
        raise AssertionError("the depth estimator was loaded")

    monkeypatch.setattr(gen3c.depth, "load_depth_estimator", no_loading)
    out = tmp_path / "out"
    out.mkdir()
    (out / taken).mkdir() if taken.endswith("/") else (out / taken).write_bytes(b"earlier")
    argv = ["depth", files["image"], "--depth_estimator", "prior", "--fov", "60", "--output_folder", out, "--name", "room"]
    refused(argv, match)
    assert sorted(p.name for p in out.iterdir()) == [taken.rstrip("/")]


@pytest.mark.parametrize(
    "args, match",
    [
        (["--gpus_per_job", "nan"], r"--gpus_per_job nan is impossible: pass a number of 0 or more"),
        (["--gpus_per_job", "inf"], r"--gpus_per_job inf is impossible"),
        (["--ray", "--cpus_per_job", "nan"], r"--cpus_per_job nan is impossible"),
    ],
)
def test_batch_engine_numbers(args, match, files, tmp_path):
    """NaN / inf reached int() (ValueError / OverflowError tracebacks; with --ray after writing the summary)."""
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({"input_image_path": str(files["image"]), "depth_path": str(files["depth"]), "fov": 60}) + "\n")
    out = tmp_path / "out"
    refused(["batch", manifest, "--output_folder", out, *args], match)
    assert not out.exists()


@pytest.mark.parametrize("args", [["--ray"], ["--ray_address", "auto"], ["--ray", "--workers", "2", "--cpus_per_job", "0.5"]])
def test_batch_on_ray_without_ray_is_one_line(args, files, tmp_path, monkeypatch):
    """Without the batch extra: one line naming the flag and the install, before the output folder is made."""
    monkeypatch.setitem(sys.modules, "ray", None)  # (import ray: ImportError, as when it is not installed)
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({"input_image_path": str(files["image"]), "depth_path": str(files["depth"]), "fov": 60}) + "\n")
    out = tmp_path / "out"
    said = refused(["batch", manifest, "--output_folder", out, *args], "")
    assert said == "error: gen3c batch --ray (or --ray_address) needs ray (ray is missing): pip install 'gen3c[batch]'", said
    assert not out.exists()


EVAL_SMALL = ["--scenes", "room", "--presets", "left", "--methods", "still", "--resolution", "32x48", "--num_video_frames", "5", "--no_plots"]


@pytest.mark.parametrize(
    "args, match",
    [
        (["--contact_frames", "0"], r"--contact_frames 0 must be 1 or more"),
        (["--movement_distance", "nan"], r"--movement_distance nan is impossible: pass a finite number"),
        (["--num_video_frames", "10000000"], r"--num_video_frames 10000000: the benchmark needs at least 3 frames and at most 100000"),
    ],
)
def test_eval_settings_refused_before_the_benchmark(args, match, tmp_path):
    """--contact_frames 0 silently showed one frame; a NaN distance failed mid-run ("leaves the range
    of float32 numbers: pass a smaller --movement_distance"); a huge count started the run."""
    out = tmp_path / "report"
    refused(["eval", "--output_folder", out, *EVAL_SMALL, *args], match)
    assert not out.exists()


@pytest.mark.parametrize(
    "case, match",
    [
        ("png_config", r"config '.*c\.toml' is a PNG image, not a TOML file: pass a training config; .*default\.toml shows every key"),
        ("nan_setting", r"config '.*c\.toml': train\.lr = nan must be finite"),
        ("inf_in_a_list", r"data\.movement_distance = \[0\.1, inf\] must be finite"),
        ("stop_after_0", r"--stop_after 0 must be 1 or more"),
        ("resume_nowhere", r"--resume '.*nowhere' does not exist: pass OUT/checkpoints/step_… or 'auto'$"),  # (said "no custom_checkpoint_0.pkl")
    ],
)
def test_train_mistakes_refused_before_the_run(case, match, files, tmp_path):
    """A binary config was a UnicodeDecodeError traceback; TOML's nan/inf trained (lr = nan) or
    crashed later; --stop_after 0 and a wrong --resume folder were found only after the clips and
    the model were made."""
    from gen3c.training.config import shipped_config

    config, out, extra = tmp_path / "c.toml", tmp_path / "run", []
    text = {"nan_setting": "[train]\nlr = nan\n", "inf_in_a_list": "[data]\nmovement_distance = [0.1, inf]\n"}.get(case)
    if case == "png_config":
        config.write_bytes(files["image"].read_bytes())
    elif text:
        config.write_text(text)
    else:
        shutil.copy(shipped_config("default.toml"), config)
        extra = ["--stop_after", "0"] if case == "stop_after_0" else ["--resume", tmp_path / "nowhere"]
    refused(["train", config, "--out", out, *extra], match)
    assert not out.exists()


def test_train_refuses_an_empty_resume(tmp_path, monkeypatch):
    """`--resume "$CKPT"` with CKPT unset was read as the current folder: "--resume '.' is not a
    checkpoint", naming a folder the user never gave."""
    monkeypatch.chdir(tmp_path)
    refused(["train", "small_procedural", "--out", tmp_path / "run", "--resume", ""],
            r"^error: --resume is empty \(an unset shell variable\?\): pass OUT/checkpoints/step_… or 'auto', or leave the option out$")  # fmt: skip
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "src, out, match",
    [
        ("ckpt", "afile", r"output folder '.*afile' is a file, not a folder"),
        ("afile", "converted", r"checkpoint folder '.*afile' is a file, not a folder"),
        ("ckpt", "ckpt", r"output folder '.*ckpt' holds the checkpoint being converted"),
        ("ckpt/Gen3C-Cosmos-7B", "ckpt", r"output folder '.*ckpt' holds the checkpoint being converted"),
    ],
)
def test_convert_folders(src, out, match, files, tmp_path):
    """OUT a file was a NotADirectoryError traceback; SRC a file said it did not exist; OUT holding
    SRC with --overwrite would have deleted GEN3C's downloaded checkpoint after converting it."""
    pytest.importorskip("diffusers")
    (tmp_path / "ckpt" / "Gen3C-Cosmos-7B").mkdir(parents=True)
    (tmp_path / "ckpt" / "Gen3C-Cosmos-7B" / "model.pt").write_bytes(b"weights")
    refused(["convert", tmp_path / src, tmp_path / out, "--overwrite"], match)
    assert (tmp_path / "ckpt" / "Gen3C-Cosmos-7B" / "model.pt").read_bytes() == b"weights"
    assert not (tmp_path / "converted").exists()


def test_gui_refuses_a_missing_checkpoint_an_unloadable_estimator_and_a_work_dir_that_is_no_folder(tmp_path, monkeypatch):
    """A --checkpoint_dir not there and a --depth_estimator that cannot load were found only once the
    page loaded the model or an image (the server up, exit 0 at Ctrl-C); a --work_dir that is a
    named pipe was "GUI work folder 'x' is a file" (no flag named). Each is one line before the
    server starts, and nothing is left of the refused start."""
    pytest.importorskip("viser")
    import os

    import gen3c.gui.app as gui_app

    def no_server(*args, **kwargs):
        raise AssertionError("the GUI started")

    monkeypatch.setattr(gui_app, "Gen3cApp", no_server)
    work = tmp_path / "gui"
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("x")
    refused(["gui", "--work_dir", work, "--generator", "gen3c", "--checkpoint_dir", tmp_path / "no_ckpt"],
            r"^error: checkpoint '.*no_ckpt' does not exist: pass a converted checkpoint folder or a hub id")  # fmt: skip
    refused(["gui", "--work_dir", work, "--depth_estimator", tmp_path / "no" / "model.pt"], r"^error: --depth_estimator path '.*model\.pt' does not exist")
    refused(["gui", "--work_dir", work, "--depth_estimator", not_a_model],
            r"^error: depth estimator '.*notes\.txt' is neither a MoGe model\.pt nor a transformers folder with config\.json")  # fmt: skip
    assert not work.exists()
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    for path, what in (("pipe", "is a named pipe, not a folder"), ("notes.txt", "is a file, not a folder"),
                       ("loop", "is a symbolic link to '.*loop', which is no folder")):  # fmt: skip
        refused(["gui", "--work_dir", tmp_path / path], rf"^error: --work_dir '.*{path}' {what}")


def test_gui_loads_the_estimator_it_is_given_for_the_page_before_it_starts(tmp_path, monkeypatch):
    """The estimator ``--depth_estimator`` names is loaded before the server starts, as the page's
    first image then takes it (cached_depth_estimator, by the name the page sends: no second load)."""
    pytest.importorskip("viser")
    from types import SimpleNamespace

    import gen3c.depth as depth_module
    import gen3c.gui.app as gui_app

    loaded, started = [], []
    monkeypatch.setattr(depth_module, "cached_depth_estimator", lambda name: loaded.append(name))

    def stopped_at_once():
        raise KeyboardInterrupt

    def gui(work_dir, **kwargs):
        started.append(list(loaded))  # what was loaded when the server started
        return SimpleNamespace(url="http://x", state=SimpleNamespace(work_dir=work_dir), serve_forever=stopped_at_once)

    monkeypatch.setattr(gui_app, "Gen3cApp", gui)
    res = runner.invoke(app, ["gui", "--work_dir", str(tmp_path / "gui"), "--depth_estimator", " prior "])
    assert res.exit_code == 130 and "the GUI stopped" in res.output, res.output
    assert started == [["prior"]]


@pytest.mark.parametrize(
    "args, match",
    [
        (["--port", "70000"], r"--port 70000 is impossible: pass a port between 0 and 65535"),
        (["--port", "-1"], r"--port -1 is impossible"),
        (["--host", "no-such-host.invalid"], r"--host 'no-such-host\.invalid' cannot be listened on here \(.+\): pass 127\.0\.0\.1"),
        (["--num_video_frames", "0"], r"--num_video_frames 0 is impossible: pass a count between 1 and 100000"),
        (["--fps", "0"], r"--fps 0\.0 is impossible: pass a frame rate in \[1, 240\]"),
        (["--filter_points_threshold", "nan"], r"--filter_points_threshold nan is impossible"),
    ],
)
def test_gui_settings_refused_before_the_server_starts(args, match, tmp_path):
    """viser retried a bad address port after port, then waited for ever without a word (a port
    out of range also printed an OverflowError traceback from its thread); starting values
    outside the page's controls were ValueError tracebacks from viser."""
    pytest.importorskip("viser")
    work = tmp_path / "gui"
    refused(["gui", "--work_dir", work, *args], match)
    assert not work.exists()


def test_gui_refuses_an_empty_host(tmp_path, monkeypatch):
    """`--host "$HOST"` with HOST unset served the GUI on every network interface (Python's
    sockets read "" so), printing a 127.0.0.1 address."""
    pytest.importorskip("viser")
    import gen3c.gui.app as gui_app

    def no_server(*args, **kwargs):
        raise AssertionError("the GUI started")

    monkeypatch.setattr(gui_app, "Gen3cApp", no_server)
    work = tmp_path / "gui"
    refused(["gui", "--work_dir", work, "--host", ""], r"^error: --host is empty \(an unset shell variable\?\): pass 127\.0\.0\.1 \(this machine only\)")
    assert not work.exists()


def test_gui_refuses_a_gen3c_option_mistake_as_generate_does(tmp_path, monkeypatch):
    """The GUI started and served a page whose generator could never load (the mistake only
    printed by its loader thread, exit code 0 at Ctrl-C); gen3c generate refuses it in a second."""
    pytest.importorskip("viser")
    import gen3c.gui.app as gui_app

    def no_server(*args, **kwargs):
        raise AssertionError("the GUI started with a mistaken option")

    monkeypatch.setattr(gui_app, "Gen3cApp", no_server)
    work = tmp_path / "gui"
    refused(["gui", "--work_dir", work, "--generator", "gen3c", "--speed", "fastst"], r"--speed 'fastst' is unknown: use one of exact, fast, fastest")
    # A size its model cannot take is offered the model's sizes (it was the tokenizer's multiples of 8, '72x104', refused next)
    refused(["gui", "--work_dir", work, "--generator", "gen3c", "--model", "tiny", "--resolution", "70x100"],
            r"--resolution '70x100': this model takes heights and widths that are multiples of 16 .*: pass --resolution '64x96' or '80x112'$")
    refused(["gui", "--work_dir", work, "--resolution", "70x100"], r"multiples of 8 .*: pass --resolution '64x96' or '72x104'$")  # the preview's
    assert not work.exists()


@pytest.mark.parametrize(
    "args, match",
    [
        (["--seed", "-1"], r"--seed -1 is out of range: pass a whole number from 0 to 4294967295"),
        (["--seed", str(2**70)], r"--seed 1180591620717411303424 is out of range"),
        (["--guidance", "nan"], r"--guidance nan is impossible: pass a finite number"),
    ],
)
def test_gen3c_sampling_numbers_refused_before_loading(args, match, files, tmp_path):
    """Seeds outside numpy's range were ValueError tracebacks after the model ran its first steps;
    a NaN guidance was refused only after loading and rendering, without naming --guidance."""
    pytest.importorskip("diffusers")
    out = tmp_path / "out"
    refused(generate(files, out, **{"--generator": "gen3c", "--model": "tiny", "--num_video_frames": "17"}) + args, match, out)


@pytest.mark.parametrize(
    "case, match",
    [
        ("mp4_as_image", r"input image '.*clip\.mp4' is not a readable image \(an MP4/MOV video\): .*--vipe_path"),
        ("npy_as_image", r"input image '.*array\.npy' is not a readable image \(a NumPy \.npy array\)"),
        ("folder_as_multiview", r"multi-view npz '.*sample' is a folder: pass the \.npz file in it"),
        ("file_as_vipe", r"ViPE directory '.*afile' is a file, not a folder"),
    ],
)
def test_wrong_kind_of_input_says_what_it_is(case, match, files, tmp_path):
    """These said "does not exist" (a folder given as the npz, a file as the ViPE folder) or only
    "not a readable image" for a video."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    out = tmp_path / "out"
    plain = {"--input_image_path": None, "--depth_path": None, "--fov": None}
    changes = {
        "mp4_as_image": {**plain, "--input_image_path": clip},
        "npy_as_image": {**plain, "--input_image_path": files["array.npy"]},
        "folder_as_multiview": {**plain, "--multiview_npz": files["sample"]},
        "file_as_vipe": {**plain, "--vipe_path": files["afile"]},
    }[case]
    refused(generate(files, out, **changes), match, out)


@pytest.mark.parametrize(
    "args, match",
    [
        (["--trajectory", "zoom_in", "--movement_distance", "2"], r"--trajectory, --movement_distance shape a preset path, which --camera_file replaces: drop them"),
        (["--camera_rotation", "no_rotation"], r"--camera_rotation shapes a preset path, which --camera_file replaces: drop it$"),
    ],
)
def test_preset_flags_with_a_camera_file_are_refused_not_ignored(args, match, files, tmp_path):
    """They were silently ignored: the video followed the camera file whatever --trajectory said."""
    import torch

    from gen3c.cameras import intrinsics_from_fov
    from gen3c.io.camera_files import save_cameras
    from gen3c.trajectories import preset_trajectory

    cams = preset_trajectory("left", "center_facing", 5, torch.eye(4), intrinsics_from_fov(60, 32, 48), 32, 48)
    save_cameras(tmp_path / "path.json", cams, 24)
    out = tmp_path / "out"
    refused(generate(files, out, **{"--camera_file": tmp_path / "path.json"}) + args, match, out)
    # The same in a batch manifest, naming the line.
    manifest = tmp_path / "jobs.jsonl"
    row = {"input_image_path": str(files["image"]), "depth_path": str(files["depth"]), "fov": 60,
           "camera_file": str(tmp_path / "path.json"), "trajectory": "up"}  # fmt: skip
    manifest.write_text(json.dumps(row) + "\n")
    refused(["batch", manifest, "--output_folder", out], r"manifest '.*jobs\.jsonl' line 1: trajectory shapes a preset path, which camera_file replaces", out)


@pytest.mark.parametrize("case", ["sample_video", "vipe_video", "camera_file"])
def test_a_run_never_writes_its_output_over_a_file_it_reads(case, files, tmp_path):
    """A sample directory's rgb.mp4 (or a ViPE clip's rgb/NAME.mp4) with the outputs written
    beside it under its name, or a --camera_file replayed under the name it was written as, was
    read and then replaced by the run's own output: the input was lost. Refused now, kept as it was."""
    import torch
    from layouts import scene, write_sample, write_vipe

    from gen3c.cameras import intrinsics_from_fov
    from gen3c.io.camera_files import save_cameras
    from gen3c.trajectories import preset_trajectory

    rgb, depth, _, w2c, K = scene(4, 32, 48)
    size = ["--resolution", "32x48", "--num_video_frames", "3"]
    if case == "sample_video":
        kept = write_sample(tmp_path / "sample", rgb, depth, depth > 0, w2c, K) / "rgb.mp4"
        argv = ["generate", "--input_image_path", kept.parent, "--video_save_folder", kept.parent, "--video_save_name", "rgb", *size]
        match = r"the input --input_image_path '.*sample' holds '.*sample/rgb\.mp4'"
    elif case == "vipe_video":
        kept = write_vipe(tmp_path / "vipe", "clip", rgb, depth, w2c, K) / "rgb" / "clip.mp4"
        argv = ["generate", "--vipe_path", kept, "--video_save_folder", kept.parent, "--video_save_name", "clip", *size]
        match = r"the input --vipe_path '.*rgb/clip\.mp4' is that file"
    else:
        kept = tmp_path / "out" / "output_cameras.json"
        kept.parent.mkdir()
        save_cameras(kept, preset_trajectory("left", "center_facing", 5, torch.eye(4), intrinsics_from_fov(60, 32, 48), 32, 48), 24)
        argv = generate(files, kept.parent, **{"--camera_file": kept, "--num_video_frames": None})
        match = r"the input --camera_file '.*out/output_cameras\.json' is that file"
    before = {path: path.read_bytes() for path in kept.parent.iterdir()}
    refused(argv, rf"^error: {match}, which this run would replace with its output '.*{kept.name}': pass another --video_save_name or --video_save_folder$")
    assert {path: path.read_bytes() for path in kept.parent.iterdir()} == before


@pytest.mark.parametrize("fps", [500.0, 0.5])
def test_a_camera_files_frame_rate_no_video_can_have_is_blamed_on_the_file_not_on_fps(fps, files, tmp_path):
    """A camera file playing at 500 or 0.5 fps was refused as "--fps 500.0 is impossible", naming a
    flag the user never gave; the file is named now, and --fps still overrides its rate."""
    import torch

    from gen3c.cameras import intrinsics_from_fov
    from gen3c.io.camera_files import save_cameras
    from gen3c.trajectories import preset_trajectory

    cams = preset_trajectory("left", "center_facing", 5, torch.eye(4), intrinsics_from_fov(60, 32, 48), 32, 48)
    save_cameras(tmp_path / "path.json", cams, 24)
    data = json.loads((tmp_path / "path.json").read_text())
    (tmp_path / "path.json").write_text(json.dumps({**data, "fps": fps}))
    out = tmp_path / "out"
    refused(generate(files, out, **{"--camera_file": tmp_path / "path.json", "--num_video_frames": None}),
            rf"^error: camera file '.*path\.json' plays at {fps:g} fps, outside the 1 … 240 fps a video can be written at: "
            r"fix its 'fps' \(a nerfstudio camera_path's 'seconds'\), or pass --fps$", out)  # fmt: skip
    res = runner.invoke(app, [str(a) for a in generate(files, out, **{"--camera_file": tmp_path / "path.json", "--num_video_frames": None, "--fps": "30"})])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "output_run.json").read_text())["fps"] == 30


@pytest.mark.parametrize(
    "args, match",
    [
        (["--png_depth_scale", "0.01"], r"--png_depth_scale applies to a 16-bit PNG or TIFF --depth_path only: drop it"),
        (["--trust_checkpoint"], r"--trust_checkpoint applies to a legacy \.pt --input_image_path only: drop it"),
        (["--seed", "7"], r"--seed applies to --generator gen3c only \(the preview is deterministic\): drop it"),
    ],
)
def test_flags_that_would_do_nothing_are_refused(args, match, files, tmp_path):
    """With an .npy depth, a PNG image and the preview, these did nothing, silently."""
    out = tmp_path / "out"
    refused(generate(files, out) + args, match, out)


@pytest.mark.parametrize("command", [["cache", "list"], ["cache", "remove", "all"], ["download", "--dry_run"]])
def test_weights_cache_that_is_a_file(command, files, monkeypatch):
    """`cache list` / `cache remove` said "nothing cached" for a --cache_dir that is a file."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    refused([*command, "--cache_dir", files["afile"]], r"--cache_dir / GEN3C_CACHE_DIR\) '.*afile' is a file: choose a folder")
    assert files["afile"].read_text() == "x"


def test_a_file_where_a_long_run_keeps_its_chunks(files, tmp_path):
    """NAME.partial as a file was a NotADirectoryError traceback for a run of several chunks."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "output.partial").write_text("mine")
    argv = generate(files, out, **{"--num_video_frames": "9", "--chunk_frames": "5"})
    refused(argv, r"output\.partial' is a file where a long run keeps its finished chunks: move it away")
    assert [p.name for p in out.iterdir()] == ["output.partial"] and (out / "output.partial").read_text() == "mine"


def test_train_resume_never_unpickles_a_foreign_step_counter(tmp_path):
    """accelerate reads custom_checkpoint_0.pkl with full unpickling: `gen3c train --resume` ran
    the code of any folder it was pointed at."""
    import torch

    from gen3c.training.config import shipped_config

    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    checkpoint = tmp_path / "step_000010"
    checkpoint.mkdir()
    torch.save({"step": 10, "payload": Evil()}, checkpoint / "custom_checkpoint_0.pkl")
    out = tmp_path / "run"
    refused(["train", shipped_config("default.toml"), "--out", out, "--resume", checkpoint],
            r"custom_checkpoint_0\.pkl is not the plain step counter `gen3c train` writes .*; it is never unpickled")  # fmt: skip
    assert not (tmp_path / "pwned").exists() and not out.exists()


def test_a_failed_run_leaves_no_empty_output_folders(files, tmp_path):
    """The output folders a run had to create go again when it fails before writing into them;
    a folder that was there already stays."""
    nested = tmp_path / "new" / "deeper" / "out"
    refused(generate(files, nested, **{"--depth_path": files["png.npz"]}), r"is a PNG image", out=nested)
    assert not (tmp_path / "new").exists()
    there = tmp_path / "there"
    there.mkdir()
    refused(generate(files, there, **{"--depth_path": files["png.npz"]}), r"is a PNG image", out=there)
    assert there.is_dir()


@pytest.fixture()
def read_only(tmp_path):
    """``(folder, prefix)``: a folder no command may write to (holding a converted checkpoint, as a
    weights cache would), and what to run a command under to see it so. Not root: its permissions
    (0555). Root (whom permissions do not stop): a read-only bind mount of it in a mount namespace
    of the command's own (``unshare``)."""
    import os
    import subprocess

    folder = tmp_path / "ro"
    (folder / "Gen3C-Cosmos-7B-v1").mkdir(parents=True)
    (folder / "Gen3C-Cosmos-7B-v1" / "model_index.json").write_text("{}")
    (folder / "Gen3C-Cosmos-7B-v1" / "gen3c_weights.json").write_text("{}")  # gen3c's (a folder without it is left alone)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder, []
        folder.chmod(0o755)
        return
    mount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    prefix = ["unshare", "-m", "sh", "-c", mount, str(folder)]
    if shutil.which("unshare") is None or subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("no read-only folder for root here (unshare -m with a bind mount is not allowed)")
    yield folder, prefix


@pytest.mark.slow
def test_every_command_refuses_a_read_only_output_folder_in_one_line(read_only, files, tmp_path):
    """An output on a read-only folder: exit 2 and one line naming it, before any slow work (the
    model loading, the conversion), nothing written. `cache remove` was a traceback from its lock
    file; `convert` and `train` found it only after reading the weights / loading the model."""
    import subprocess
    import sys

    folder, prefix = read_only
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({"name": "a", "input_image_path": str(files["image"]), "depth_path": str(files["depth"]), "fov": 60}) + "\n")
    (tmp_path / "official").mkdir()
    ro = str(folder)
    commands = {
        "demo": ["demo", "--video_save_folder", ro],
        "demo (a folder to make)": ["demo", "--video_save_folder", f"{ro}/sub"],
        "generate": ["generate", "--input_image_path", str(files["image"]), "--depth_path", str(files["depth"]), "--fov", "60", "--video_save_folder", ro],
        "depth": ["depth", str(files["image"]), "--depth_estimator", "prior", "--output_folder", ro],
        "eval": ["eval", "--output_folder", ro, "--scenes", "room", "--presets", "left"],
        "batch": ["batch", str(manifest), "--output_folder", ro],
        "convert": ["convert", str(tmp_path / "official"), f"{ro}/converted"],
        "train": ["train", "small_procedural", "--out", f"{ro}/run"],
        "download": ["download", "--dry_run", "--cache_dir", ro],
        "cache remove": ["cache", "remove", "all", "--cache_dir", ro],
    }
    script = (
        "import json, sys\nfrom typer.testing import CliRunner\nfrom gen3c.cli import app\n"
        "print(json.dumps([(r.exit_code, r.output) for r in (CliRunner().invoke(app, a) for a in json.loads(sys.argv[1]))]))"
    )
    env = child_env(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    done = subprocess.run([*prefix, sys.executable, "-c", script, json.dumps(list(commands.values()))], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name, (code, output) in zip(commands, json.loads(done.stdout.splitlines()[-1]), strict=True):
        lines = output.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), (name, code, output)
        assert re.search(rf"'{re.escape(ro)}[^']*' (is not writable|cannot be created|cannot be written)", lines[0]), (name, lines[0])
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
        "Gen3C-Cosmos-7B-v1", "Gen3C-Cosmos-7B-v1/gen3c_weights.json", "Gen3C-Cosmos-7B-v1/model_index.json",
    ]  # fmt: skip


def _path_parameters():
    """(argv prefix of the command, its parameter) for every parameter of every command that is
    typed as a path, read off the typer app: a new path option is covered without a change here."""
    import inspect
    import typing

    import typer

    def walk(command, words):
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*words, name])
        if command.callback is not None and not hasattr(command, "commands"):
            hints = typing.get_type_hints(inspect.unwrap(command.callback))
            for param in command.params:
                if "Path" in str(hints.get(param.name)):
                    yield words, command, param

    return list(walk(typer.main.get_command(app), []))


PATH_PARAMETERS = _path_parameters()


def test_the_path_parameters_are_found():
    found = {(" ".join(words), param.name) for words, _, param in PATH_PARAMETERS}
    assert {("generate", "cache_dir"), ("generate", "input_image_path"), ("convert", "src"), ("eval", "output_folder"),
            ("gui", "work_dir"), ("batch", "manifest"), ("train", "out"), ("cache list", "cache_dir")} <= found, found  # fmt: skip


@pytest.mark.parametrize("blank", ["", " \t"], ids=["empty", "spaces"])
@pytest.mark.parametrize("words, command, param", PATH_PARAMETERS, ids=[f"{' '.join(w)} {p.name}" for w, _, p in PATH_PARAMETERS])
def test_an_empty_path_is_refused_not_read_as_the_current_folder(words, command, param, blank, tmp_path, monkeypatch):
    """`--cache_dir "$CACHE"` with CACHE unset gave typer '', which it read as Path('.'): the
    command went on in the current folder (converted weights, outputs, a GUI work folder there).
    Spaces alone (`--video_save_folder " "`) made a folder of that invisible name and wrote there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # (were it not refused, `download` would not fetch)
    if words[0] == "gui":  # (were it not refused, the GUI would serve until stopped: the test fails instead of hanging)
        pytest.importorskip("viser")  # (the patch imports the GUI, which needs it)
        monkeypatch.setattr("gen3c.gui.app.Gen3cApp.serve_forever", lambda self: pytest.fail("the GUI started"))
    argv = list(words)
    for other in command.params:  # the other positional arguments a command needs, given
        if other.param_type_name == "argument":
            argv.append(blank if other is param else "all")
    if param.param_type_name == "option":  # by its last name: the one typed is named (--npz_path was called --multiview_npz)
        argv += [param.opts[-1], blank]
        match = rf"^error: {param.opts[-1]} is empty \(an unset shell variable\?\): give a path, or leave the option out$"
    else:
        match = rf"^error: {param.name.upper()} is empty: give a path$"
    refused(argv, match)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("words, command, param", PATH_PARAMETERS, ids=[f"{' '.join(w)} {p.name}" for w, _, p in PATH_PARAMETERS])
def test_a_url_given_as_a_path_is_said_to_be_one(words, command, param, tmp_path, monkeypatch):
    """`--input_image_path https://host/a.png` was "input image 'https:/host/a.png' does not exist":
    typer had made the URL a local path, one slash gone."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    url = "https://example.com/photos/a b.png"
    argv = list(words)
    for other in command.params:
        if other.param_type_name == "argument":
            argv.append(url if other is param else "all")
    what = re.escape(param.opts[-1]) if param.param_type_name == "option" else param.name.upper()
    if param.param_type_name == "option":
        argv += [f"{param.opts[-1]}={url}"]
    refused(argv, rf"^error: {what} {re.escape(repr(url))} is a URL: gen3c reads local files; download it first and give its path$")
    assert not any(tmp_path.iterdir())


def test_a_file_url_is_told_its_path(tmp_path, monkeypatch):
    """A local file's URL (copied from a browser's address bar) was told to be downloaded first;
    its path is the fix."""
    monkeypatch.chdir(tmp_path)
    refused(["generate", "--input_image_path", "file:///home/me/my%20photo.png"],
            r"^error: --input_image_path 'file:///home/me/my%20photo\.png' is a file's URL: give its path, '/home/me/my photo\.png'$")  # fmt: skip
    assert not any(tmp_path.iterdir())


def test_a_long_file_url_is_told_its_whole_path_to_copy(tmp_path, monkeypatch):
    """The path told for a file URL is the fix, to be copied: one of 300 characters was cut to its
    start and end around '…', which is no path."""
    monkeypatch.chdir(tmp_path)
    folders = "/".join(["a_rather_long_folder_name"] * 11)  # 285 characters
    refused(["generate", "--input_image_path", f"file:///home/{folders}/my%20photo.png"],
            rf"^error: --input_image_path 'file:///home/.*…' is a file's URL: give its path, '/home/{folders}/my photo\.png'$")  # fmt: skip
    assert not any(tmp_path.iterdir())


def test_a_windows_drive_is_not_taken_for_a_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(["generate", "--input_image_path", "C://photos/a.png"], r"^error: input image 'C:/photos/a.png' does not exist: check the path$")


@pytest.mark.parametrize(
    "argv, match",
    [
        (["generate", "--trajectory", "lefft"],
         r"^error: --trajectory 'lefft' is unknown: did you mean 'left'\? \(one of left, right, up, down, zoom_in, zoom_out, clockwise, counterclockwise\)$"),
        (["generate", "--camera_rotation", "sideways"], r"^error: --camera_rotation 'sideways' is unknown: pick one of center_facing, no_rotation, trajectory_aligned$"),
        (["generate", "--fovv", "60"], r"^error: --fovv is no option of \S+ generate: did you mean --fov\? \(see `\S+ generate --help`\)$"),
        (["depth", "--bogus"], r"^error: --bogus is no option of \S+ depth: see `\S+ depth --help` for its options$"),
        (["generatte"], r"^error: No such command 'generatte'. Did you mean 'generate'\? \(see `\S+ --help`\)$"),
        (["generate", "--fov"], r"^error: Option '--fov' requires an argument \(see `\S+ generate --help`\)$"),
        (["generate", "--fov", "wide"], r"^error: Invalid value for '--fov': .* \(see `\S+ generate --help`\)$"),
        (["batch"], r"^error: Missing argument '(?i:manifest)' \(see `\S+ batch --help`\)$"),
    ],
)
def test_a_mistyped_option_command_or_choice_is_one_line_not_click_s_usage_box(argv, match):
    """click printed its usage box (Usage:, Try '--help', a framed Error) for what typer checks
    itself; now one line as the commands' own mistakes, keeping click's "did you mean"."""
    refused(argv, match)


def test_an_unexpected_exception_keeps_its_traceback_and_says_how_to_report_it(monkeypatch):
    """A bug (no mistake gen3c can name) ends with its traceback and one line on what to do with it,
    exit code 1 (was: the bare traceback); a command's own typer.Exit is not taken for one."""
    import gen3c.cli as cli

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("gen3c.environment.report", broken)
    res = CliRunner().invoke(cli.app, ["env"])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert "Traceback (most recent call last):" in res.output and lines[-1].startswith(
        "error: gen3c env stopped on an unexpected ZeroDivisionError (its traceback and notes above)."
    ), res.output
    assert lines[-1].endswith("please report it with that traceback and the output of `gen3c env --json`")


def test_a_missing_package_met_late_keeps_the_notes_of_what_was_kept(capsys):
    """A package missing when a run is well under way (eval's generator importing it lazily) is one
    line, and the notes the run added (its finished cases kept as a partial report) stay on it."""
    import typer

    from gen3c.cli import user_errors

    @user_errors
    def eval_command():
        exc = ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")
        exc.add_note("the 2 finished cases of 4 are kept as a partial report in 'r/partial/report.md'")
        raise exc

    with pytest.raises(typer.Exit) as info:
        eval_command()
    assert info.value.exit_code == 2
    captured = capsys.readouterr()
    said = " ".join((captured.out + captured.err).split())
    assert said.startswith("error: gen3c eval needs matplotlib") and "pip install" in said, said
    assert said.endswith("; the 2 finished cases of 4 are kept as a partial report in 'r/partial/report.md'"), said


class _NoReader:
    """Watch a named pipe while a command runs: whenever a reader has opened it (which waits for a
    writer for ever), open it for writing, write a byte no input starts with and close it, so the
    reader fails at once instead of hanging; ``opened`` says whether that happened."""

    def __init__(self, fifo):
        import threading

        self.fifo, self.opened, self.done = fifo, False, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        import os

        while not self.done.wait(0.05):
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while no reader has it open
            except OSError:
                continue
            self.opened = True
            os.write(fd, b"\xff")  # no file of any kind: the reader stops at it
            os.close(fd)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


@pytest.mark.parametrize(
    "case, what",
    [
        ("depth.npy", "depth file"),
        ("depth.png", "depth file"),
        ("image.png", "input image"),
        ("views.npz", "multi-view npz"),
        ("K.txt", "--intrinsics file"),
        ("jobs.jsonl", "manifest"),
        ("config.toml", "config"),
        ("lora.safetensors", "LoRA"),
    ],
)
def test_a_named_pipe_is_refused_not_opened(case, what, files, tmp_path):
    """A named pipe (mkfifo, a shell's <(…)) as a depth .npy/.npz, a batch manifest or a train
    config hung for ever (open() waits for a writer); as an image it was "empty (0 bytes)", as a
    depth PNG "empty or a folder", as a multi-view npz or a LoRA "does not exist"."""
    import os

    if case == "lora.safetensors":
        pytest.importorskip("diffusers")
    fifo = tmp_path / case
    os.mkfifo(fifo)
    out = tmp_path / "out"
    argv = {
        "depth.npy": generate(files, out, **{"--depth_path": fifo}),
        "depth.png": generate(files, out, **{"--depth_path": fifo}),
        "image.png": ["depth", fifo, "--depth_estimator", "prior", "--fov", "60", "--output_folder", out],
        "views.npz": generate(files, out, **{"--input_image_path": None, "--depth_path": None, "--fov": None, "--multiview_npz": fifo}),
        "K.txt": generate(files, out, **{"--fov": None, "--intrinsics": fifo}),
        "jobs.jsonl": ["batch", fifo, "--output_folder", out],
        "config.toml": ["train", fifo, "--out", out],
        "lora.safetensors": generate(files, out, **{"--generator": "gen3c", "--model": "tiny", "--num_video_frames": "17", "--lora": fifo}),
    }[case]
    with _NoReader(fifo) as watch:
        refused(argv, rf"^error: {re.escape(what)} '.*{re.escape(case)}' is a named pipe, not a file: write its contents to a file and pass that$", out)
    assert not watch.opened and not out.exists()


NO_USER = "~nouser_gen3c/x"


@pytest.mark.parametrize("words, command, param", PATH_PARAMETERS, ids=[f"{' '.join(w)} {p.name}" for w, _, p in PATH_PARAMETERS])
def test_a_home_folder_of_no_user_is_refused_naming_the_path(words, command, param, tmp_path, monkeypatch):
    """Outputs given as '~nouser/x' (quoted, or `--output_folder=~nouser/x`, which the shell leaves
    as it is) were written into a folder named '~nouser' in the current one; `convert` was a
    RuntimeError traceback."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if words == ["gui"] and importlib.util.find_spec("viser") is not None:  # (had it passed, no server would have started)
        monkeypatch.setattr("gen3c.gui.app.Gen3cApp", lambda *a, **k: pytest.fail("the GUI started"))
    argv = list(words)
    for other in command.params:
        if other.param_type_name == "argument":
            argv.append(NO_USER if other is param else "all")
    if param.param_type_name == "option":
        argv += [param.opts[-1], NO_USER]
    what = param.opts[-1] if param.param_type_name == "option" else param.name.upper()
    refused(argv, rf"^error: {what} '~nouser_gen3c/x' starts with ~nouser_gen3c, the home folder of 'nouser_gen3c', no user on this machine: write the path out in full$")
    assert not any(tmp_path.iterdir())


def test_a_quoted_home_folder_is_expanded_whether_typer_has_converted_the_path_yet(tmp_path, monkeypatch):
    """typer before 0.29 keeps the text as typed in ctx.params when the command's parse ends (it
    converts it to a Path later): '~/out' was left as it was and written into './~/out' (seen on a
    GPU host's typer). Both forms are expanded."""
    import types

    import gen3c.cli as cli

    monkeypatch.setenv("HOME", str(tmp_path))
    command = cli.typer.main.get_command(cli.app).commands["depth"]
    for typed in ("~/out", Path("~/out")):
        ctx = types.SimpleNamespace(params={"output_folder": typed, "image_path": "a.png"})
        cli._expand_home_paths(command, ctx, ["a.png", "--output_folder", "~/out"])
        assert ctx.params == {"output_folder": tmp_path / "out", "image_path": "a.png"}


def test_a_quoted_home_folder_is_the_home_folder_for_outputs(files, tmp_path, monkeypatch):
    """`--output_folder=~/out` (a tilde the shell leaves) wrote into './~/out', as inputs so given
    were read from the home folder: a later `rm -r ~` to tidy up is a disaster."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    res = runner.invoke(app, ["depth", str(files["image"]), "--depth_estimator", "prior", "--fov", "60", "--output_folder", "~/out"])
    assert res.exit_code == 0, res.output
    assert not any(work.iterdir()) and (home / "out" / "image_depth.npy").is_file()


def test_depth_image_paths_no_file_can_have(files, tmp_path):
    """A 300-character image name was refused as "--name 'nnnn…' is 300 bytes long", an option
    never given; a real image whose long name cannot name the outputs is told so, naming --name."""
    out = tmp_path / "out"
    argv = ["depth", tmp_path / ("n" * 300 + ".png"), "--depth_estimator", "prior", "--fov", "60", "--output_folder", out]
    refused(argv, r"^error: input image '.*n{100}.*' cannot be read \(File name too long\): check the path", out)
    long = tmp_path / ("n" * 240 + ".png")
    shutil.copy(files["image"], long)
    argv[1] = long
    refused(argv, r"^error: --name \(by default the image's name\) 'n{20}'… is 240 bytes long: pass a name of at most 200 bytes$", out)
    assert not out.exists()


@pytest.mark.parametrize("which", ["src", "out", "src below", "out below"])
def test_convert_through_a_loop_of_symbolic_links(which, tmp_path):
    """A loop of symbolic links as OUT was a RuntimeError traceback ("Symlink loop from …")."""
    pytest.importorskip("diffusers")
    import os

    os.symlink(tmp_path / "loop", tmp_path / "loop")
    (tmp_path / "ckpt").mkdir()
    loop = tmp_path / "loop" / "x" if which.endswith("below") else tmp_path / "loop"
    src, out = (loop, tmp_path / "converted") if which.startswith("src") else (tmp_path / "ckpt", loop)
    what = "checkpoint folder" if which.startswith("src") else "output folder"
    refused(["convert", src, out], rf"^error: {what} '{re.escape(str(loop))}' cannot be used \(a loop of symbolic links\): check the path$")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "loop"]


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("images.txt", "# Image list with two lines of data per image:\n#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
         "1 1 0 0 0 0 0 0 1 a.jpg\n10.0 20.0 -1 30.0 40.0 3\n", r"COLMAP's images\.txt \(each image's pose\)"),
        ("points3D.txt", "# 3D point list with one line of data per point:\n1 0.5 0.2 3.0 200 100 50 0.7 1 0 2 1\n",
         r"COLMAP's points3D\.txt \(the scene's 3D points\)"),
        ("points3D.txt", "1 0.5 0.2 3.0 200 100 50 0.7 1 0 2 1\n2 0.1 0.2 3.0 200 100 50 0.7 1 1 2 2\n", r"COLMAP's points3D\.txt \(the scene's 3D points\)"),  # by its name
    ],
)  # fmt: skip
def test_colmap_files_other_than_cameras_txt_as_intrinsics(name, text, match, files, tmp_path):
    """COLMAP's images.txt or points3D.txt (beside its cameras.txt) was refused as "must hold 4
    numbers 'fx,fy,cx,cy', …", naming neither what it is nor the file to pass."""
    (tmp_path / name).write_text(text)
    out = tmp_path / "out"
    argv = ["depth", files["image"], "--depth_estimator", "prior", "--intrinsics", tmp_path / name, "--output_folder", out]
    refused(argv, rf"^error: --intrinsics file '.*{re.escape(name)}' is {match}, not a camera: pass the cameras\.txt beside it$", out)
    assert not out.exists()


def test_intrinsics_json_of_a_huge_integer_a_repeated_key_or_a_byte_order_mark(files, tmp_path):
    """``--intrinsics K.json`` of a 400-digit integer was an OverflowError (a traceback, "gen3c
    bug"), one of a key given twice kept the last value without a word, one saved with a UTF-8
    byte order mark (Notepad's) was refused as "cannot be read (Unexpected UTF-8 BOM …)"."""
    out = tmp_path / "out"
    argv = ["depth", files["image"], "--depth_estimator", "prior", "--output_folder", out, "--intrinsics"]
    (tmp_path / "huge.json").write_text('{"fx": 1' + "0" * 399 + ', "fy": 100, "cx": 79.5, "cy": 47.5}')
    refused([*argv, tmp_path / "huge.json"], r"^error: --intrinsics file '.*huge\.json' holds the integer 1000…000 \(400 digits\), beyond any floating-point number", out)
    (tmp_path / "twice.json").write_text('{"fx": 100, "fy": 100, "cx": 79.5, "cy": 47.5, "cy": 40}')
    refused([*argv, tmp_path / "twice.json"], r"^error: --intrinsics file '.*twice\.json' gives 'cy' twice in one object \(47\.5, then 40\)", out)
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + b'{"fx": 100, "fy": 100, "cx": 79.5, "cy": 47.5}')
    res = runner.invoke(app, [str(a) for a in [*argv, tmp_path / "bom.json"]])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "image_depth.json").read_text())["intrinsics"][0] == [100.0, 0.0, 79.5]


def test_intrinsics_named_by_a_home_folder_of_no_user(files, tmp_path):
    """'~nouser/K.txt' was "neither 'fx,fy,cx,cy' nor an existing file", as every other reader says who is missing."""
    out = tmp_path / "out"
    argv = ["depth", files["image"], "--depth_estimator", "prior", "--intrinsics", "~nouser_gen3c/K.txt", "--output_folder", out]
    refused(argv, r"^error: --intrinsics '~nouser_gen3c/K\.txt' starts with ~nouser_gen3c, the home folder of 'nouser_gen3c', no user on this machine", out)


HUGE = "x" * 3000
CUT = "'" + "x" * 40 + "…'"


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--resolution", HUGE], rf"^error: --resolution {CUT} is not of the form HEIGHTxWIDTH, e.g\. 704x1280$"),
        (["--trajectory", HUGE], rf"^error: --trajectory {CUT} is unknown: pick one of left, right, "),
        (["--camera_rotation", HUGE], rf"^error: --camera_rotation {CUT} is unknown: pick one of "),
        (["--generator", "gen3c", "--step_cache", HUGE], rf"^error: --step_cache {CUT}: unknown kind {CUT}; use none, "),
        (["--save_buffer", HUGE], r"^error: Got unexpected extra argument\(s\) \(x{39}…x{38}\) \(see `gen3c generate --help`\)$"),
    ],
)  # fmt: skip
def test_a_huge_value_is_quoted_short_in_the_error_line(argv, match, files, tmp_path):
    """A 3000-character value of a choice or a --resolution (a paste gone wrong) was quoted whole:
    a 3000-character error line. It is cut to its first 40 characters (a stray argument click
    names, to its start and its end)."""
    line = refused(generate(files, tmp_path / "out", **dict(zip(argv[::2], argv[1::2], strict=True))), match)
    assert len(line) < 400


def test_a_huge_eval_scene_is_quoted_short(tmp_path):
    line = refused(["eval", "--scenes", HUGE, "--output_folder", tmp_path / "e"], rf"^error: unknown scene {CUT} in --scenes: choose from ")
    assert len(line) < 300


def test_a_preview_whose_renders_fit_and_frames_do_not_is_refused_before_the_renders(files, tmp_path, monkeypatch):
    """The renders (5 frames of 32×48, one buffer: 150 KB) were the only part of the preview's
    frames checked against the machine's memory; their merge and the frames (13 bytes a pixel more,
    250 KB in all) were not. Now the whole is, before the renders are made: one error line, no
    render, no video written."""
    from gen3c.cache import Cache3D
    from gen3c.models import memory

    renders = 5 * 32 * 48 * 20
    monkeypatch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=renders + 1000, total=renders + 1000)))
    rendered = []
    render = Cache3D.render
    monkeypatch.setattr(Cache3D, "render", lambda self, *args, **kwargs: rendered.append(1) or render(self, *args, **kwargs))
    out = tmp_path / "out"
    res = runner.invoke(app, [str(a) for a in generate(files, out)])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and res.output.splitlines()[-1] == errors[0], res.output
    assert errors[0] == (
        "error: the preview of 5 frames of 32×48 (1 buffer) needs 0.0 GB of CPU memory for the renders, their merge and the frames; with "
        "the 0.0 GB this process holds already, 0.0 GB, and this machine has 0.0 GB of RAM and swap: make fewer frames at once (gen3c generate --chunk_frames; in Python generate_video(..., "
        "chunk_frames=N)) or at a lower --resolution"
    ), errors[0]
    assert not rendered
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))


def test_a_view_past_the_frame_past_the_machines_memory_is_refused_before_it_is_made(files, tmp_path, monkeypatch):
    """The preview's band past the first frame is checked against the machine's memory before it
    is made (its renders, under 2 MB here, fit): one error line, after the progress lines of the
    stages that ran, naming the frame, how far past it the band reaches, the estimate and the fix;
    no video written."""
    from gen3c.models import memory

    # (16 MiB: the renders, merge and frames, with a frame's work 11 MB, fit)
    monkeypatch.setattr(memory.HostMemory, "now", classmethod(lambda cls: memory.HostMemory(available=16 * 2**20, total=16 * 2**20)))
    out = tmp_path / "out"
    res = runner.invoke(app, [str(a) for a in generate(files, out, **{"--resolution": "16x1024"})])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and res.output.splitlines()[-1] == errors[0], res.output
    assert re.fullmatch(
        r"error: the preview's view past the first frame \(16×1024, extended \d+, \d+, \d+ and \d+ pixels past its top, bottom, left and right, "
        r"as far as the later cameras look\) needs \d+\.\d GB of CPU memory, with the up to [\d,]+ points of it that later frames render, "
        r"and the frames; with the 0\.0 GB this process holds already, \d+\.\d GB, and this machine has 0\.0 GB of RAM and swap: pass a smaller --resolution, or a camera path that looks less far past the first frame",
        errors[0],
    ), errors[0]
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))
