"""Reproducing a run from its record: ``NAME_run.json`` names what ran (inputs by absolute path
and sha256, the shipped demo sample's files, the checkpoint, the package versions), and
``gen3c batch NAME_run.json`` runs it again into the same video (run_record in
gen3c/pipelines/request.py, _record_rows in gen3c/batch/manifest.py)."""

import hashlib
import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import gen3c
from gen3c.batch import load_manifest
from gen3c.cli import app
from gen3c.io.video import read_video
from gen3c.scenes import demo_sample_files

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_demo_records_the_shipped_files_and_reruns_from_its_record(tmp_path):
    """`gen3c demo` recorded "input_image_path": null (the sample was loaded in memory), so its
    record named no input and could not run again; now it names the sample's installed files."""
    res = invoke("demo", "--num_video_frames", 9, "--resolution", "64x112", "--trajectory", "clockwise",
                 "--video_save_folder", tmp_path / "first")  # fmt: skip
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "first" / "demo_run.json").read_text())
    files = demo_sample_files()
    assert {key: record[key] for key in files} == files
    assert record["inputs_sha256"] == {key: hashlib.sha256(open(path, "rb").read()).hexdigest() for key, path in files.items()}
    res = invoke("batch", tmp_path / "first" / "demo_run.json", "--output_folder", tmp_path / "again")
    assert res.exit_code == 0, res.output
    first, again = tmp_path / "first" / "demo.mp4", tmp_path / "again" / "demo.mp4"
    frames, _ = read_video(first)
    assert frames.shape == (9, 64, 112, 3) and np.array_equal(read_video(again)[0], frames)
    assert sha256(again) == sha256(first)  # the same bytes, not only the same pixels
    rerun = json.loads((tmp_path / "again" / "demo_run.json").read_text())
    ran_again = ("video_save_folder", "ended_at")  # (where and when it ran again)
    assert {k: v for k, v in rerun.items() if k not in ran_again} == {k: v for k, v in record.items() if k not in ran_again}  # fmt: skip


def test_a_record_says_when_where_and_with_which_code_it_ran(tmp_path):
    """A run record named gen3c's version only (a source install's code changes without it) and
    neither when nor on what the frames were made: two runs of one request on two machines, or
    before and after an edit of the code, had records alike. It names them now."""
    from datetime import UTC, datetime

    from gen3c.environment import code_digest, cpu_kind

    before = datetime.now(UTC).replace(microsecond=0)
    res = invoke("demo", "--num_video_frames", 5, "--resolution", "48x80", "--video_save_folder", tmp_path)
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "demo_run.json").read_text())
    ended = record["ended_at"]
    assert before <= datetime.fromisoformat(ended) <= datetime.now(UTC) and ended.endswith("+00:00"), ended
    assert record["versions"]["gen3c_code"] == code_digest() and len(code_digest()) == 64
    # the preview makes its frames where the cache is: on the CPU, as the command line reads the input
    assert record["machine"] == {"device": "cpu", "cpu": cpu_kind(), "cpu_threads": torch.get_num_threads()}
    job = load_manifest(tmp_path / "demo_run.json")[0]
    assert job.settings.keys().isdisjoint({"machine", "ended_at"})  # no settings of the job


def test_relative_paths_are_recorded_absolute_and_rerun_from_elsewhere(box_scene, tmp_path, monkeypatch):
    """Paths typed relative to where a run started were recorded as typed, naming nothing once
    the record is read from another folder."""
    image, depth, _, _ = box_scene
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(image, inputs / "photo.png")
    shutil.copy(depth, inputs / "photo_depth.npy")
    (inputs / "K.txt").write_text("120 120 80 48")
    monkeypatch.chdir(inputs)
    res = invoke("generate", "--input_image_path", "photo.png", "--depth_path", "photo_depth.npy", "--intrinsics", "K.txt",
                 "--resolution", "48x80", "--num_video_frames", 5, "--video_save_folder", "../out")  # fmt: skip
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "out" / "output_run.json").read_text())
    assert (record["input_image_path"], record["depth_path"], record["intrinsics"]) == (
        str(inputs / "photo.png"), str(inputs / "photo_depth.npy"), str(inputs / "K.txt"))  # fmt: skip
    assert record["inputs_sha256"] == {"input_image_path": sha256(inputs / "photo.png"),
                                       "depth_path": sha256(inputs / "photo_depth.npy"), "intrinsics": sha256(inputs / "K.txt")}  # fmt: skip
    assert record["depth_estimator"] is None  # none named: the default, recorded as such (a name given stays as typed: test_batch)
    assert record["versions"]["gen3c"] == gen3c.__version__ and record["versions"]["torch"] == torch.__version__
    assert "generator_settings" not in record and record["notes"] == []  # the preview has none; nothing departed from the request
    monkeypatch.chdir(tmp_path)
    res = invoke("batch", tmp_path / "out" / "output_run.json", "--output_folder", "again")
    assert res.exit_code == 0, res.output
    assert sha256(tmp_path / "again" / "output.mp4") == sha256(tmp_path / "out" / "output.mp4")


def test_a_request_of_pathlib_paths_is_recorded_as_one_of_their_text(box_scene, tmp_path, monkeypatch):
    """A GenerationRequest built in Python with pathlib.Path inputs ran, but its record kept them
    relative and hashed none of them (``"inputs_sha256": {}``): a record naming nothing to check."""
    from pathlib import Path

    from gen3c.pipelines.request import GenerationRequest, run_request

    image, depth, _, _ = box_scene
    shutil.copy(image, tmp_path / "photo.png")
    shutil.copy(depth, tmp_path / "photo_depth.npy")
    (tmp_path / "K.txt").write_text("60 60 24 16")
    monkeypatch.chdir(tmp_path)
    request = GenerationRequest(input_image_path=Path("photo.png"), depth_path=Path("photo_depth.npy"), intrinsics=Path("K.txt"),
                                resolution="32x48", num_video_frames=3, video_save_folder=Path("out"))  # fmt: skip
    record = json.loads(run_request(request).paths["run"].read_text())
    files = {"input_image_path": "photo.png", "depth_path": "photo_depth.npy", "intrinsics": "K.txt"}
    assert {key: record[key] for key in files} == {key: str(tmp_path / name) for key, name in files.items()}
    assert record["inputs_sha256"] == {key: sha256(tmp_path / name) for key, name in files.items()}
    assert record["video_save_folder"] == "out"


def test_a_record_is_a_manifest_of_its_one_job(box_scene, tmp_path):
    """`gen3c batch NAME_run.json` takes the record's settings through the manifest's checks,
    under its name, without what the run found (generator settings, hashes, versions, outputs);
    an input changed since is said, and a .json that is no record is refused."""
    image, depth, _, _ = box_scene
    shutil.copy(image, tmp_path / "photo.png")
    res = invoke("generate", "--input_image_path", tmp_path / "photo.png", "--depth_path", depth, "--fov", 60, "--resolution", "48x80",
                 "--num_video_frames", 5, "--video_save_folder", tmp_path / "out", "--video_save_name", "shot", "--trajectory", "up")  # fmt: skip
    assert res.exit_code == 0, res.output
    path = tmp_path / "out" / "shot_run.json"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no note while the inputs are as recorded
        (job,) = load_manifest(path, check_inputs=True)
    assert job.name == "shot" and job.settings["trajectory"] == "up" and job.settings["fov"] == 60.0
    assert not {"outputs", "generator_settings", "inputs_sha256", "notes", "versions", "video_save_folder"} & set(job.settings)
    (tmp_path / "photo.png").write_bytes((tmp_path / "photo.png").read_bytes() + b"\0")
    with pytest.warns(UserWarning, match="input_image_path .*photo.png' changed since that run"):
        load_manifest(path)
    record = json.loads(path.read_text())
    del record["outputs"]
    path.write_text(json.dumps(record))
    res = invoke("batch", path)
    assert res.exit_code == 2 and "is no run record" in res.output


@pytest.mark.slow
def test_the_tiny_model_twice_with_one_seed_makes_the_same_video(box_scene, tmp_path):
    """Seeded on the CPU, the gen3c generator gives the same frames and the same mp4 bytes run
    after run (another seed does not: the test can fail), and its record names the checkpoint
    by folder and by the sha256 of its checksums.json, and runs again into the same video."""
    from gen3c.models.packaged import packaged_model_dir

    image, depth, _, _ = box_scene
    common = ("generate", "--input_image_path", image, "--depth_path", depth, "--fov", 60, "--resolution", "32x48",
              "--generator", "gen3c", "--model", "tiny", "--num_steps", 2, "--video_save_folder", tmp_path)  # fmt: skip
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        res = invoke(*common, "--video_save_name", name, "--seed", seed)
        assert res.exit_code == 0, res.output
    a, b, c = (read_video(tmp_path / f"{name}.mp4")[0] for name in "abc")
    assert a.shape == (17, 32, 48, 3)
    assert np.array_equal(a, b) and sha256(tmp_path / "a.mp4") == sha256(tmp_path / "b.mp4")
    assert np.abs(a.astype(int) - c).mean() > 0.5  # the seed matters: equal videos are no accident
    ran = json.loads((tmp_path / "a_run.json").read_text())
    folder = packaged_model_dir("tiny")
    assert ran["generator_settings"]["checkpoint"] == str(folder)
    assert ran["generator_settings"]["checkpoint_checksums_sha256"] == sha256(folder / "checksums.json")
    assert ran["seed"] == 5 and ran["versions"]["diffusers"]
    computed_on = torch.device(ran["generator_settings"]["device"]).type
    assert ran["machine"]["device"].split()[0] == computed_on  # (the GPU's name after it)
    res = invoke("batch", tmp_path / "a_run.json", "--output_folder", tmp_path / "again")
    assert res.exit_code == 0, res.output
    assert np.array_equal(read_video(tmp_path / "again" / "a.mp4")[0], a)


def test_a_record_of_inputs_in_memory_is_refused_by_batch_in_one_line(box_scene, tmp_path):
    """An image handed over in memory has no path to run again from: its record says what it was
    (shape, dtype, sha256) and `gen3c batch` refuses it, naming the fix (before: no in-memory runs)."""
    image_path, depth_path, _, _ = box_scene
    rgb = np.array(Image.open(image_path).convert("RGB"))
    gen3c.generate(rgb, depth=np.load(depth_path), fov=60, resolution="32x48", num_video_frames=3, generator="preview",
                   progress=False, video_save_folder=tmp_path / "out")  # fmt: skip
    record = tmp_path / "out" / "output_run.json"
    assert json.loads(record.read_text())["in_memory_inputs"]["input_image_path"]["shape"] == [96, 160, 3]
    res = invoke("batch", record, "--output_folder", tmp_path / "again")
    assert res.exit_code == 2
    message = "its inputs (input_image_path, depth_path) were in memory (gen3c.generate() with arrays), not files: save them to files"
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "again" / "output.mp4").exists()
    # a path image with its depth in memory: the depth alone is named
    gen3c.generate(image_path, depth=np.load(depth_path), fov=60, resolution="32x48", num_video_frames=3, generator="preview",
                   progress=False, video_save_folder=tmp_path / "mixed")  # fmt: skip
    res = invoke("batch", tmp_path / "mixed" / "image_run.json", "--output_folder", tmp_path / "again")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "its inputs (depth_path) were in memory (gen3c.generate() with arrays), not files" in res.output
    assert not (tmp_path / "again" / "image.mp4").exists()


@pytest.mark.slow
def test_a_transforms_json_path_replays_from_its_cameras_file_and_its_record(box_scene, tmp_path):
    """The journey across camera files and records: a hand-written nerfstudio transforms.json
    (frames listed out of file_path order) → NAME_cameras.json replayed with --camera_file → that
    run's record through `gen3c batch`: the same cameras and frames each time. The two JSON files a
    run writes side by side, swapped, are refused naming the right one (before: 'has neither
    'frames' (gen3c) nor 'camera_path'' and 'is no run record … pass one')."""
    image, depth, _, _ = box_scene
    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenGL camera-to-world of the source camera (OpenCV identity)
    # listed out of order; nerfstudio sorts them by name: 0, 1, 10, 2
    frames = [{"file_path": f"images/{i}.png", "transform_matrix": (flip + np.pad(np.array([[0.02 * i], [0], [0.05 * i]]), ((0, 1), (3, 0)))).tolist()}
              for i in (2, 0, 10, 1)]  # fmt: skip
    transforms = tmp_path / "transforms.json"
    transforms.write_text(json.dumps({"camera_model": "PINHOLE", "fl_x": 60.0, "fl_y": 60.0, "cx": 40.0, "cy": 24.0, "w": 80, "h": 48, "frames": frames}))
    common = ("--input_image_path", image, "--depth_path", depth, "--fov", 60, "--resolution", "48x80")
    res = invoke("generate", *common, "--camera_file", transforms, "--video_save_folder", tmp_path / "a", "--video_save_name", "a")
    assert res.exit_code == 0, res.output
    from gen3c.io.camera_files import load_camera_file

    cams = load_camera_file(tmp_path / "a" / "a_cameras.json")
    assert len(cams) == 4 and torch.allclose(cams.centers[:, 2], torch.tensor([0.0, 0.05, 0.5, 0.1], dtype=cams.w2c.dtype), atol=1e-6)
    assert torch.allclose(cams.K[0], torch.tensor([[60.0, 0, 39.5], [0, 60.0, 23.5], [0, 0, 1]], dtype=cams.K.dtype))  # −½ px
    res = invoke("generate", *common, "--camera_file", tmp_path / "a" / "a_cameras.json", "--video_save_folder", tmp_path / "b", "--video_save_name", "b")
    assert res.exit_code == 0, res.output
    assert torch.equal(load_camera_file(tmp_path / "b" / "b_cameras.json").w2c, cams.w2c)
    res = invoke("batch", tmp_path / "b" / "b_run.json", "--output_folder", tmp_path / "c")
    assert res.exit_code == 0, res.output
    first = read_video(tmp_path / "a" / "a.mp4")[0]
    assert first.shape == (4, 48, 80, 3) and first[1:].std() > 1
    assert np.array_equal(read_video(tmp_path / "b" / "b.mp4")[0], first) and sha256(tmp_path / "c" / "b.mp4") == sha256(tmp_path / "b" / "b.mp4")

    res = invoke("generate", *common, "--camera_file", tmp_path / "b" / "b_run.json", "--video_save_folder", tmp_path / "d")
    assert res.exit_code == 2 and "is a run record (NAME_run.json), not a camera file: pass the cameras it wrote, b_cameras.json" in res.output
    res = invoke("batch", tmp_path / "b" / "b_cameras.json", "--output_folder", tmp_path / "e")
    assert res.exit_code == 2 and "is a camera file, not a run record: replay it with gen3c generate --camera_file" in res.output
    assert not (tmp_path / "d").exists() and not (tmp_path / "e" / "b.mp4").exists()
