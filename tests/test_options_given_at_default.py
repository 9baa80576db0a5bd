"""An option the user gave is refused where the run would ignore it, also when the value given is
its default: the checks compared values with the defaults, so ``--trajectory left --camera_file X``
ran silently while ``--trajectory zoom_in --camera_file X`` was refused. A run record, which holds
every default, still replays through ``gen3c batch``."""

import json
import re

import pytest
from typer.testing import CliRunner

import gen3c
from gen3c.cli import app
from gen3c.errors import Gen3cInputError

runner = CliRunner()


def refused(argv, match, out=None):
    """Run ``gen3c ARGV``: exit 2 with one error line matching ``match``; ``out`` never made."""
    res = runner.invoke(app, [str(a) for a in argv])
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = res.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and re.search(match, lines[0]), res.output
    if out is not None:
        assert not out.exists()


@pytest.fixture()
def camera_file(tmp_path):
    """A gen3c camera file of 5 cameras at 32×48."""
    import torch

    from gen3c.cameras import intrinsics_from_fov
    from gen3c.io.camera_files import save_cameras
    from gen3c.trajectories import preset_trajectory

    cams = preset_trajectory(
        "left", "center_facing", 5, torch.eye(4), intrinsics_from_fov(60, 32, 48), 32, 48
    )
    save_cameras(tmp_path / "path.json", cams, 24)
    return tmp_path / "path.json"


def generate(box_scene, out, *args):
    image, depth, _, _ = box_scene
    return ["generate", "--input_image_path", image, "--depth_path", depth, "--fov", "60", "--resolution", "32x48",
            "--video_save_folder", out, *args]  # fmt: skip


@pytest.mark.parametrize(
    "args, match",
    [
        (["--trajectory", "left"], r"--trajectory shapes a preset path, which --camera_file replaces: drop it$"),
        (["--movement_distance", "0.3"], r"--movement_distance shapes a preset path, which --camera_file replaces"),
        (["--camera_rotation", "center_facing", "--trajectory_scale", "auto"],
         r"--camera_rotation, --trajectory_scale shape a preset path, which --camera_file replaces: drop them$"),
    ],
)  # fmt: skip
def test_generate_refuses_a_preset_flag_at_its_default_beside_a_camera_file(
    args, match, box_scene, camera_file, tmp_path
):
    out = tmp_path / "out"
    refused(generate(box_scene, out, "--camera_file", camera_file, *args), match, out)


@pytest.mark.parametrize(
    "args, match",
    [
        (
            ["--seed", "1"],
            r"--seed applies to --generator gen3c only \(the preview is deterministic\): drop it$",
        ),
        (
            ["--png_depth_scale", "0.001"],
            r"--png_depth_scale applies to a 16-bit PNG or TIFF --depth_path only: drop it$",
        ),
        (
            ["--memory_mode", "resident"],
            r"--memory_mode applies to --generator gen3c only; drop it or pass --generator gen3c$",
        ),
        (
            ["--speed", "exact", "--num_gpus", "1"],
            r"--speed, --num_gpus apply to --generator gen3c only; drop them or pass --generator gen3c$",
        ),
    ],
)
def test_generate_refuses_a_flag_at_its_default_that_the_run_ignores(args, match, box_scene, tmp_path):
    """With the preview and an .npy depth each was accepted and did nothing, where any other value was refused."""
    out = tmp_path / "out"
    refused(generate(box_scene, out, "--num_video_frames", "5", *args), match, out)


def test_a_generate_run_record_with_a_camera_file_replays(box_scene, camera_file, tmp_path):
    """The record holds every default (trajectory "left" beside its camera file): gen3c batch runs
    it again, and a command line without the preset flags runs too."""
    out = tmp_path / "out"
    res = runner.invoke(app, [str(a) for a in generate(box_scene, out, "--camera_file", camera_file)])
    assert res.exit_code == 0, res.output
    record = json.loads((out / "output_run.json").read_text())
    assert record["trajectory"] == "left" and record["camera_file"] == str(camera_file)
    res = runner.invoke(
        app, ["batch", str(out / "output_run.json"), "--output_folder", str(tmp_path / "again")]
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "again" / "output.mp4").is_file()


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_manifest_row_naming_a_preset_setting_at_its_default_beside_a_camera_file_is_refused(
    suffix, box_scene, camera_file, tmp_path
):
    """A row's author wrote it; an empty CSV cell is no setting (the row beside it runs)."""
    image, depth, _, _ = box_scene
    row = {
        "input_image_path": str(image),
        "depth_path": str(depth),
        "fov": 60,
        "resolution": "32x48",
        "camera_file": str(camera_file),
    }
    manifest = tmp_path / f"jobs{suffix}"
    if suffix == ".jsonl":
        manifest.write_text(json.dumps({**row, "trajectory": "left"}) + "\n")
    else:
        manifest.write_text(
            ",".join([*row, "trajectory"]) + "\n" + ",".join([*map(str, row.values()), "left"]) + "\n"
        )
    out = tmp_path / "out"
    refused(
        ["batch", manifest, "--output_folder", out],
        r"line [12]: trajectory shapes a preset path, which camera_file replaces",
        out,
    )
    if suffix == ".csv":
        manifest.write_text(
            ",".join([*row, "trajectory"]) + "\n" + ",".join([*map(str, row.values()), ""]) + "\n"
        )
        res = runner.invoke(app, ["batch", str(manifest), "--output_folder", str(out)])
        assert res.exit_code == 0, res.output


def test_python_generate_refuses_a_preset_keyword_at_its_default_beside_a_camera_file(
    box_scene, camera_file, tmp_path
):
    """gen3c.generate takes its settings as keywords: one given is known, whatever its value."""
    image, depth, _, _ = box_scene
    with pytest.raises(Gen3cInputError) as caught:
        gen3c.generate(
            image,
            depth=depth,
            fov=60,
            camera_file=camera_file,
            trajectory="left",
            generator="preview",
            video_save_folder=tmp_path / "out",
            progress=False,
        )
    assert (
        str(caught.value)
        == "gen3c.generate(): trajectory= shapes a preset path, which camera_file= replaces: drop it"
    )
    with pytest.raises(
        Gen3cInputError, match=r"^gen3c.generate\(\): seed= applies to generator=\"gen3c\" only"
    ):
        gen3c.generate(
            image,
            depth=depth,
            fov=60,
            seed=1,
            generator="preview",
            video_save_folder=tmp_path / "out",
            progress=False,
        )
    assert not (tmp_path / "out").exists()


def test_batch_refuses_cpus_per_job_at_its_default_without_ray(box_scene, tmp_path):
    image, depth, _, _ = box_scene
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(
        json.dumps({"input_image_path": str(image), "depth_path": str(depth), "fov": 60}) + "\n"
    )
    out = tmp_path / "out"
    refused(
        ["batch", manifest, "--output_folder", out, "--cpus_per_job", "1"],
        r"--cpus_per_job applies to --ray only",
        out,
    )


def small_eval(resolution: str, *more: str) -> list[str]:
    """gen3c eval's arguments for one scene, preset and method at ``resolution``, no plots."""
    return ["--scenes", "room", "--presets", "left", "--methods", "still", "--resolution", resolution, *more, "--no_plots"]


@pytest.mark.parametrize(
    "args, match",
    [
        (["--seed", "1"], "--seed applies to --generator gen3c only"),
        (["--speed", "exact"], "--speed applies to --generator gen3c only"),
    ],
)
def test_eval_refuses_a_gen3c_flag_at_its_default_with_the_preview(args, match, tmp_path):
    out = tmp_path / "report"
    refused(["eval", "--output_folder", out, *small_eval("32x48", "--num_video_frames", "5"), *args], match, out)


@pytest.mark.parametrize(
    "args, match",
    [
        # --memory_mode resident was dropped silently for --low_memory's streamed DiT (or the budget's plan)
        (["--model", "tiny", "--memory_mode", "resident", "--low_memory"],
         r"--low_memory and --memory_mode each choose the memory mode: pass only one of them$"),
        (["--model", "tiny", "--max_gpu_memory", "20", "--memory_mode", "resident"],
         r"--max_gpu_memory and --memory_mode each choose the memory mode"),
        # --guidance_every 1 (the presets' value) with no unconditional branch to run was accepted silently, any other count refused
        (["--model", "tiny", "--guidance", "0", "--guidance_every", "1"],
         r"--guidance_every shapes guidance's two branches, but --guidance 0 runs without guidance"),
        (["--model", "tiny_fast", "--guidance_every", "1"],
         r"--guidance_every shapes guidance's two branches, but this model samples without guidance \(a distilled student\)"),
    ],
)  # fmt: skip
def test_generate_refuses_a_gen3c_setting_typed_at_its_default_that_another_makes_moot(
    args, match, box_scene, tmp_path
):
    """A gen3c setting typed at its default beside one that decides it instead was accepted silently, any other value refused."""
    pytest.importorskip("diffusers")
    out = tmp_path / "out"
    refused(generate(box_scene, out, "--generator", "gen3c", "--num_video_frames", "17", *args), match, out)


@pytest.mark.parametrize("where", ["flat", "nested"])
def test_a_manifest_row_naming_memory_mode_resident_beside_low_memory_is_refused(where, box_scene, tmp_path):
    pytest.importorskip("diffusers")
    image, depth, _, _ = box_scene
    options = {"memory_mode": "resident", "low_memory": True}
    row = {
        "input_image_path": str(image),
        "depth_path": str(depth),
        "fov": 60,
        "generator": "gen3c",
        "model": "tiny",
        "num_video_frames": 17,
    }
    row.update(options if where == "flat" else {"generator_options": options})
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps(row) + "\n")
    out = tmp_path / "out"
    refused(
        ["batch", manifest, "--output_folder", out],
        r"line 1: low_memory and memory_mode each choose the memory mode",
        out,
    )


def test_python_generate_refuses_memory_mode_resident_beside_low_memory(box_scene, tmp_path):
    pytest.importorskip("diffusers")
    image, depth, _, _ = box_scene
    with pytest.raises(
        Gen3cInputError,
        match="^low_memory=True and memory_mode= each choose the memory mode: pass only one of them$",
    ):
        gen3c.generate(image, depth=depth, fov=60, model="tiny", num_video_frames=17, memory_mode="resident", low_memory=True,
                       video_save_folder=tmp_path / "out", progress=False)  # fmt: skip
    assert not (tmp_path / "out").exists()


@pytest.fixture()
def sample_folder(tmp_path):
    """A folder a GEN3C sample's files name (a video input; never read by the checks here)."""
    sample = tmp_path / "sample"
    sample.mkdir()
    for name in ("rgb.mp4", "depth.npz", "mask.npz", "camera.npz"):
        (sample / name).write_bytes(b"x")
    return sample


def test_generate_refuses_a_start_frame_of_0_for_an_input_without_frames(box_scene, tmp_path):
    """--vipe_starting_frame_idx 0 beside an image or a multi-view .npz was accepted silently, 1 refused."""
    import numpy as np

    out = tmp_path / "out"
    match = (
        r"--vipe_starting_frame_idx applies to video input \(--vipe_path or a sample directory\): drop it$"
    )
    refused(generate(box_scene, out, "--vipe_starting_frame_idx", "0"), match, out)
    np.savez(tmp_path / "views.npz", x=np.zeros(1))
    refused(["generate", "--multiview_npz", tmp_path / "views.npz", "--vipe_starting_frame_idx", "0",
             "--video_save_folder", out], match, out)  # fmt: skip
    image, depth, _, _ = box_scene
    with pytest.raises(
        Gen3cInputError, match=r"^gen3c.generate\(\): vipe_starting_frame_idx= applies to video input"
    ):
        gen3c.generate(image, depth=depth, fov=60, vipe_starting_frame_idx=0, generator="preview",
                       video_save_folder=out, progress=False)  # fmt: skip
    manifest = tmp_path / "jobs.jsonl"
    row = {"input_image_path": str(image), "depth_path": str(depth), "fov": 60, "vipe_starting_frame_idx": 0}
    manifest.write_text(json.dumps(row) + "\n")
    refused(
        ["batch", manifest, "--output_folder", out],
        r"line 1: vipe_starting_frame_idx applies to video input",
        out,
    )


def test_generate_refuses_noise_aug_strength_0_for_a_video_input(sample_folder, tmp_path):
    """--noise_aug_strength 0 beside a video input was accepted silently, 0.2 refused; the refusal
    of any strength typed there no longer offers 0, which is refused too."""
    out = tmp_path / "out"
    for strength in ("0", "0.2"):
        refused(["generate", "--input_image_path", sample_folder, "--generator", "gen3c", "--model", "tiny",
                 "--noise_aug_strength", strength, "--video_save_folder", out],
                rf"^error: --noise_aug_strength {strength} applies to a single image: .* not those of a video input; drop it$", out)  # fmt: skip
    with pytest.raises(
        Gen3cInputError, match=r"^gen3c.generate\(\): noise_aug_strength=0 applies to a single image"
    ):
        gen3c.generate(
            sample_folder, model="tiny", noise_aug_strength=0, video_save_folder=out, progress=False
        )
    assert not out.exists()


def test_generate_refuses_an_empty_prompt_beside_disable_prompt_encoder(box_scene, tmp_path):
    """--prompt "" (GEN3C's default) beside --disable_prompt_encoder was accepted silently, --prompt "a" refused."""
    pytest.importorskip("diffusers")
    out = tmp_path / "out"
    refused(generate(box_scene, out, "--generator", "gen3c", "--model", "tiny", "--num_video_frames", "17",
                     "--disable_prompt_encoder", "--prompt", ""),
            r"--prompt would change nothing: --disable_prompt_encoder gives zero text embeddings for every text", out)  # fmt: skip
    image, depth, _, _ = box_scene
    with pytest.raises(
        Gen3cInputError, match=r"^prompt= would change nothing: disable_prompt_encoder=True gives zero"
    ):
        gen3c.generate(image, depth=depth, fov=60, model="tiny", num_video_frames=17, disable_prompt_encoder=True, prompt="",
                       video_save_folder=out, progress=False)  # fmt: skip
    assert not out.exists()


def test_a_request_object_counts_a_setting_at_its_default_as_unset(box_scene, camera_file, tmp_path):
    """A GenerationRequest cannot tell a field given from one left at its default (a run record,
    ``from_dict`` and ``dataclasses.replace`` carry every default), so ``run_request`` takes a
    default as unset: a request built with ``trajectory="left"`` beside its camera file, or one
    read from a run record and changed by ``replace``, runs; a changed moot field is refused."""
    from dataclasses import replace

    from gen3c.pipelines.request import GenerationRequest, run_request

    image, depth, _, _ = box_scene
    common = {"input_image_path": str(image), "depth_path": str(depth), "fov": 60, "resolution": "32x48",
              "camera_file": str(camera_file), "vipe_starting_frame_idx": 0, "seed": 1}  # fmt: skip
    run_request(GenerationRequest(**common, trajectory="left", video_save_folder=str(tmp_path / "a")))
    record = json.loads((tmp_path / "a" / "output_run.json").read_text())
    request = GenerationRequest.from_dict(
        {key: record[key] for key in GenerationRequest.__dataclass_fields__}
    )
    again = run_request(replace(request, video_save_folder=str(tmp_path / "b"), filter_points_threshold=0.1))
    assert again.paths["video"].is_file()
    with pytest.raises(
        Gen3cInputError, match=r"^--trajectory shapes a preset path, which --camera_file replaces"
    ):
        run_request(replace(request, trajectory="right", video_save_folder=str(tmp_path / "c")))
    with pytest.raises(Gen3cInputError, match=r"^--seed applies to --generator gen3c only"):
        run_request(replace(request, seed=0, video_save_folder=str(tmp_path / "c")))
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    "args, match",
    [
        (
            ["--memory_mode", "resident", "--low_memory"],
            r"--low_memory and --memory_mode each choose the memory mode",
        ),
        (
            ["--disable_prompt_encoder", "--prompt="],
            r"--prompt would change nothing: --disable_prompt_encoder",
        ),
    ],
)
def test_eval_refuses_a_gen3c_setting_typed_at_its_default_that_another_makes_moot(args, match, tmp_path):
    """gen3c eval --generator gen3c ran the benchmark with these, where gen3c generate refuses them."""
    pytest.importorskip("diffusers")
    out = tmp_path / "report"
    refused(
        ["eval", "--generator", "gen3c", "--model", "tiny", "--output_folder", out, *small_eval("64x112"), *args], match, out
    )
