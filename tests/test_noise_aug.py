"""GEN3C's ``--noise_aug_strength`` from the command line to the pipeline: checked with the other
gen3c options, refused where GEN3C never applies it (video and multi-view inputs), said to change
nothing for a one-chunk video, taken per run by a loaded generator, recorded in the run record, and
applied to a long single-image video's chunk 2 on (the pipeline's own noise: test_pipeline_call_args)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gen3c.cli import app
from gen3c.errors import Gen3cInputError, collect_notes
from gen3c.pipelines.settings import GenerationRequest

runner = CliRunner()
NOTE = r"--noise_aug_strength 0\.5: a video of one chunk \(17 frames\) has one buffer, the image's, which GEN3C never noises"


def refused(args, match):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = res.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and re.search(match, lines[0]), res.output


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--generator", "gen3c", "--noise_aug_strength", "-0.1"], r"--noise_aug_strength -0\.1 is impossible: pass a finite number ≥ 0 \(GEN3C: 0"),
        (["--generator", "gen3c", "--noise_aug_strength", "nan"], r"--noise_aug_strength nan is impossible"),
        (["--noise_aug_strength", "0.2"], r"--noise_aug_strength applies to --generator gen3c only; drop it or pass --generator gen3c"),
    ],
)
def test_a_bad_strength_or_the_preview_generator_is_refused_before_anything_loads(extra, match, box_scene, tmp_path):
    image, depth, _, _ = box_scene
    args = ["generate", "--input_image_path", image, "--depth_path", depth, "--fov", "60", "--model", "tiny",
            "--video_save_folder", tmp_path / "out", *extra]  # fmt: skip
    if "gen3c" not in extra:
        args.remove("--model"), args.remove("tiny")
    refused(args, match)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag, what", [("--multiview_npz", "a multi-view input"), ("--vipe_path", "a video input"), ("--input_image_path", "a video input")])
def test_a_video_or_multi_view_input_refuses_it_in_one_line_saying_why(flag, what, tmp_path):
    """GEN3C noises the single-image mode's growing cache only (gen3c_multiview.py parses the flag
    and never passes it on; gen3c_dynamic.py has none): it would do nothing, so it is refused
    (a GEN3C sample directory given as --input_image_path is a video input)."""
    sample = tmp_path / "sample"
    sample.mkdir()
    for name in ("rgb.mp4", "depth.npz", "mask.npz", "camera.npz"):
        (sample / name).write_bytes(b"x")
    path = tmp_path / "views.npz" if flag == "--multiview_npz" else sample
    np.savez(tmp_path / "views.npz", x=np.zeros(1))
    refused(["generate", flag, path, "--generator", "gen3c", "--model", "tiny", "--noise_aug_strength", "0.2", "--video_save_folder", tmp_path / "out"],
            rf"^error: --noise_aug_strength 0\.2 applies to a single image: GEN3C noises the buffers of the single-image mode's growing "
            rf"cache only, not those of {what}; drop it$")  # fmt: skip
    # The one check (input_kind's) serves batch manifests and gen3c.generate too; 0 is GEN3C's default, never refused.
    from gen3c.pipelines.request import input_kind

    request = GenerationRequest(generator="gen3c", **{flag.removeprefix("--"): str(path)}, generator_options={"noise_aug_strength": 0.2})
    with pytest.raises(Gen3cInputError, match="applies to a single image"):
        input_kind(request)
    request.generator_options["noise_aug_strength"] = 0.0
    assert input_kind(request) in ("multiview", "vipe", "sample")


def test_the_option_is_checked_and_taken_per_run_as_the_other_sampling_settings():
    from gen3c.pipelines.options import GENERATOR_OPTIONS, check_generator_options
    from gen3c.pipelines.request import MODEL_GENERATOR_SETTINGS, SAMPLING_GENERATOR_SETTINGS

    assert GENERATOR_OPTIONS["noise_aug_strength"] is float
    assert check_generator_options({"model": "tiny", "noise_aug_strength": 1})["noise_aug_strength"] == 1.0  # coerced as a float
    for bad in (-1, float("inf")):
        with pytest.raises(Gen3cInputError, match=r"^--noise_aug_strength .* is impossible"):
            check_generator_options({"model": "tiny", "noise_aug_strength": bad})
    # a loaded model takes another strength without reloading (GeneratorPool, gen3c.generate, batch)
    assert "noise_aug_strength" in SAMPLING_GENERATOR_SETTINGS and "noise_aug_strength" not in MODEL_GENERATOR_SETTINGS


@pytest.fixture(scope="module")
def generator():
    from tiny_model import tiny_pipeline

    from gen3c.pipelines.gen3c import Gen3cGenerator

    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return Gen3cGenerator(pipe, num_steps=1, chunk_frames=17)


def test_a_long_single_image_video_noises_chunk_2_on_and_chunk_1_not(generator, box_scene, monkeypatch):
    """Chunk 1 has one buffer (the image's): unchanged; chunk 2 has two, the newest (the last
    generated frame) noised: changed, and by the seed alone (the same video twice)."""
    from gen3c.pipelines.autoregressive import GrowingCache
    from gen3c.pipelines.camera_video import build_cache, generate_video, prepare_source, preset_cameras

    _, _, image, depth = box_scene
    K = torch.tensor([[100.0, 0, 80], [0, 100.0, 48], [0, 0, 1]])
    source = prepare_source(image, depth, K, (32, 32))
    cameras = preset_cameras(source, "right", "center_facing", num_frames=33)

    pipe, encoded = generator.pipeline, []

    def encode_conditions(image, colors, masks, **noise):  # what each chunk's buffers are encoded with
        encoded.append((colors.shape[1], noise["noise_aug_strength"]))
        return type(pipe).encode_conditions(pipe, image, colors, masks, **noise)

    monkeypatch.setattr(pipe, "encode_conditions", encode_conditions)

    def video(strength: float) -> torch.Tensor:
        generator.configure({"num_steps": 1, "noise_aug_strength": strength})
        assert generator.noise_aug_strength == strength
        plan = GrowingCache(build_cache([source]), align_steps=2)
        return generate_video(plan, cameras, generator, source.image, chunk_frames=17).frames

    plain, noised = video(0.0), video(0.5)
    assert torch.equal(plain[:17], noised[:17])
    assert not torch.equal(plain[17:], noised[17:])  # (by little: one step of a random tiny DiT)
    assert torch.equal(noised, video(0.5))
    assert encoded == [(1, 0.0), (2, 0.0), (1, 0.5), (2, 0.5), (1, 0.5), (2, 0.5)]
    generator.configure({"num_steps": 1})  # left out: GEN3C's 0 again, as at load
    assert generator.noise_aug_strength == 0.0


def test_a_one_chunk_run_notes_that_it_changes_nothing_and_records_it(generator, box_scene, tmp_path):
    """Not refused (the same command with more frames uses it): one note line; run.json and the
    printed settings carry the strength; --resume of a run with another strength is refused."""
    from gen3c.cli import _describe_settings
    from gen3c.pipelines.request import run_request
    from gen3c.pipelines.resume import _changed_output, output_settings

    image, depth, _, _ = box_scene
    request = GenerationRequest(
        input_image_path=str(image), depth_path=str(depth), fov=60, resolution="32x32", num_video_frames=17, generator="gen3c",
        video_save_folder=str(tmp_path), generator_options={"model": "tiny", "noise_aug_strength": 0.5},
    )  # fmt: skip
    generator.configure({"num_steps": 1, "noise_aug_strength": 0.5})
    try:
        with collect_notes() as said:
            out = run_request(request, generator=generator)
    finally:
        generator.configure({"num_steps": 1})
    assert [n for n in said if re.match(NOTE, n)], said
    record = json.loads(out.paths["run"].read_text())  # (in the record's keys, as a manifest row names them)
    assert [n for n in record["notes"] if re.match(NOTE.removeprefix("--"), n)], record["notes"]
    assert record["generator_settings"]["noise_aug_strength"] == 0.5 == out.generator_settings["noise_aug_strength"]
    assert "guidance 1, buffer noise 0.5, step cache" in _describe_settings(out.generator_settings)
    other = {**out.generator_settings, "noise_aug_strength": 0.0}
    stored = {"generator_settings": output_settings(out.generator_settings), "chunks": []}
    assert _changed_output(stored, {"generator_settings": output_settings(other), "chunks": []}) == "noise_aug_strength: recorded 0.5, now 0.0"
    # a run.json of a gen3c without the setting was made without noise: resumed as GEN3C's 0, refused otherwise
    older = {"generator_settings": {k: v for k, v in output_settings(other).items() if k != "noise_aug_strength"}, "chunks": []}
    assert _changed_output(older, {"generator_settings": output_settings(other), "chunks": []}) == ""
    assert _changed_output(older, stored) == "noise_aug_strength: recorded 0.0, now 0.5"
