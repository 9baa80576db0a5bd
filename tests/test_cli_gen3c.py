"""The gen3c generator and `gen3c convert` on the command line (tiny model, CPU)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from tiny_model import tiny_pipeline
from typer.testing import CliRunner

from gen3c.cli import app
from gen3c.errors import Gen3cInputError, Gen3cModelError
from gen3c.io.video import read_video
from gen3c.pipelines import loading as loading_module
from gen3c.pipelines.request import GenerationRequest, run_request

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_ckpt")
    tiny_pipeline(seed=0).save_pretrained(folder)
    return folder


def gen3c_args(box_scene, out, *extra):
    image, depth, _, _ = box_scene
    return ("generate", "--input_image_path", image, "--depth_path", depth, "--fov", "60", "--resolution", "32x48",
            "--video_save_folder", out, "--generator", "gen3c", *extra)  # fmt: skip


def test_flags_reach_the_generator(box_scene, tmp_path, tiny_checkpoint, monkeypatch):
    seen = {}

    def fake(options, seed=1, resolution=None, progress=None):
        seen.update(options, seed=seed, resolution=resolution)
        options = {
            **options,
            "checkpoint_dir": str(tiny_checkpoint),
            "chunk_frames": 17,
            "device": "cpu",
            "dtype": "float32",
        }
        return real(options, seed, resolution, progress)

    real = loading_module.generator_from_options
    monkeypatch.setattr(loading_module, "generator_from_options", fake)
    # A checkpoint folder that says it makes chunks of 17 (what --chunk_frames is checked against
    # before the model loads); the fake loads the tiny checkpoint in its place.
    shutil.copytree(tiny_checkpoint, tmp_path / "CKPT")
    (tmp_path / "CKPT" / "gen3c_model.json").write_text('{"chunk_frames": 17}')
    ckpt = str(tmp_path / "CKPT")
    res = invoke(*gen3c_args(box_scene, tmp_path, "--checkpoint_dir", ckpt, "--num_video_frames", 17, "--chunk_frames", 17, "--num_steps", 2,
                             "--guidance", 0, "--seed", 5, "--offload_tokenizer", "--disable_guardrail",
                             "--disable_prompt_upsampler", "--offload_prompt_upsampler", "--offload_guardrail_models"))  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (
        seen["checkpoint_dir"] == ckpt
        and seen["num_steps"] == 2
        and seen["guidance"] == 0
        and seen["seed"] == 5
        and seen["resolution"] == (32, 48)
    )
    assert seen["offload_tokenizer"] is True and seen["disable_guardrail"] is True
    frames, _ = read_video(tmp_path / "output.mp4")
    assert frames.shape == (17, 32, 48, 3)
    run = json.loads((tmp_path / "output_run.json").read_text())
    assert run["generator"] == "gen3c" and run["generator_options"]["num_steps"] == 2


def test_request_runs_the_tiny_checkpoint(box_scene, tmp_path, tiny_checkpoint):
    image, depth, _, _ = box_scene
    request = GenerationRequest(
        input_image_path=str(image), depth_path=str(depth), fov=60.0, resolution="32x48", num_video_frames=17,
        generator="gen3c", video_save_folder=str(tmp_path), generator_options={
            "checkpoint_dir": str(tiny_checkpoint), "chunk_frames": 17, "num_steps": 2, "device": "cpu", "dtype": "float32",
            "memory_mode": "model_offload",
        },
    )  # fmt: skip
    out = run_request(request)
    assert out.result.frames.shape == (17, 3, 32, 48)


@pytest.mark.parametrize(
    "extra, message",
    [
        ((), "HF_HUB_OFFLINE=1 forbids fetching them"),  # no checkpoint: GEN3C's weights would be fetched
        (("--checkpoint_dir", "/nowhere/ckpt"), "gen3c convert"),
        (("--checkpoint_dir", "x", "--memory_mode", "huge"), "memory_mode"),
        (("--checkpoint_dir", "x", "--cache_dir", "y"), "--cache_dir is where GEN3C's own weights are kept"),
    ],
)
def test_gen3c_errors_exit_2(box_scene, tmp_path, extra, message, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never the real hub from a test
    monkeypatch.setenv("GEN3C_CACHE_DIR", str(tmp_path / "weights"))
    res = invoke(*gen3c_args(box_scene, tmp_path, *extra))
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())


@pytest.mark.parametrize("checkpoint", [(), ("--checkpoint_dir", "nvidia/Gen3C-Cosmos-7B")])
def test_cache_dir_holds_gen3cs_weights_also_when_their_hub_id_is_given(box_scene, tmp_path, checkpoint, monkeypatch):
    """``--checkpoint_dir nvidia/Gen3C-Cosmos-7B`` runs GEN3C's official weights, as no
    --checkpoint_dir does, so --cache_dir (where their converted copy is kept) applies to it too:
    the copy in it is the one looked at (a damaged one here: named, then to be converted again,
    which offline cannot), the default cache untouched. Before: the hub id with --cache_dir was refused."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never the real hub from a test
    monkeypatch.setenv("GEN3C_CACHE_DIR", str(tmp_path / "weights"))
    mine = tmp_path / "mine"
    (mine / "Gen3C-Cosmos-7B-v1").mkdir(parents=True)
    (mine / "Gen3C-Cosmos-7B-v1" / "model_index.json").write_text("{}")
    (mine / "Gen3C-Cosmos-7B-v1" / "gen3c_weights.json").write_text("{")  # gen3c's, damaged since
    res = invoke(*gen3c_args(box_scene, tmp_path / "out", *checkpoint, "--cache_dir", mine))
    *notes, last = res.output.strip().splitlines()
    assert res.exit_code == 2 and last.startswith("error: ") and "HF_HUB_OFFLINE=1 forbids fetching them" in last, res.output
    assert any(line.startswith(f"{mine / 'Gen3C-Cosmos-7B-v1'} is damaged") for line in notes), res.output
    assert not (tmp_path / "weights").exists() and not (tmp_path / "out").exists()


def test_convert_command(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    res = invoke("convert", tmp_path / "src", tmp_path / "out")
    assert res.exit_code == 2
    assert "Gen3C-Cosmos-7B" in " ".join(res.output.split())
    calls = []
    import gen3c.models.convert as convert_module

    monkeypatch.setattr(convert_module, "convert_checkpoint", lambda *a, **k: calls.append((a, k)))
    res = invoke("convert", tmp_path / "src", tmp_path / "out", "--trust_checkpoint", "--no_text_encoder")
    assert res.exit_code == 0, res.output
    assert calls[0][1] == {"trust_checkpoint": True, "overwrite": False, "keep_text_encoder": False}


def test_frame_count_defaults_to_one_chunk_of_the_model(tmp_path, monkeypatch):
    from gen3c.batch.manifest import make_job
    from gen3c.errors import Gen3cInputError

    tiny = {"model": "tiny"}
    assert GenerationRequest().num_video_frames == 121  # the preview: GEN3C's 121
    assert GenerationRequest(generator="gen3c", generator_options={"checkpoint_dir": "x"}).num_video_frames == 121  # GEN3C-7B
    assert GenerationRequest(generator="gen3c", generator_options=tiny).num_video_frames == 17
    assert GenerationRequest(generator="gen3c", chunk_frames=9).num_video_frames == 9
    assert GenerationRequest(generator="gen3c", generator_options=tiny, num_video_frames=33).num_video_frames == 33  # given: kept
    # gen3c batch: a manifest row without num_video_frames.
    job = make_job({"generator": "gen3c", "model": "tiny", "input_image_path": "x.png", "resolution": "64x112"}, 1, 0, tmp_path)
    assert job.request(tmp_path).num_video_frames == 17
    # gen3c gui: the request it starts the app with.
    pytest.importorskip("viser")  # gen3c[gui]
    import gen3c.gui.app as gui_app

    seen = []

    def app_stub(work_dir, host, port, request, **_):
        seen.append(request)
        raise Gen3cInputError("stop before serving")

    monkeypatch.setattr(gui_app, "Gen3cApp", app_stub)
    res = invoke("gui", "--generator", "gen3c", "--model", "tiny", "--work_dir", tmp_path / "gui")
    assert res.exit_code == 2 and "stop before serving" in res.output
    assert seen[0].num_video_frames == 17


def test_a_chunk_length_the_model_does_not_make_is_refused_before_it_loads(box_scene, tmp_path, monkeypatch):
    """--chunk_frames other than the model's chunk was refused only once the weights had loaded
    (minutes for GEN3C-7B)."""
    import gen3c.pipelines.request as request_module

    def no_loading(request, progress=None):
        raise AssertionError("loaded the model before refusing --chunk_frames")

    monkeypatch.setattr(request_module, "make_generator", no_loading)
    monkeypatch.setenv("GEN3C_CACHE_DIR", str(tmp_path / "no_cache"))  # GEN3C-7B not converted here: its chunk is 121
    image, depth, _, _ = box_scene
    for model, chunk, frames, own in ((["--model", "tiny"], 20, 39, 17), ([], 33, 65, 121)):
        res = invoke("generate", "--generator", "gen3c", *model, "--input_image_path", image, "--depth_path", depth, "--fov", 60,
                     "--resolution", "64x112", "--chunk_frames", chunk, "--num_video_frames", frames, "--video_save_folder", tmp_path)  # fmt: skip
        assert res.exit_code == 2, res.output
        assert f"--chunk_frames {chunk}: the gen3c generator makes {own} frames per chunk; leave it out" in res.output
    assert list(tmp_path.iterdir()) == []


def test_a_resolution_the_model_cannot_take_is_refused_before_the_input_is_read_or_the_model_loads(tmp_path, monkeypatch):
    """Its configs say what it takes (the tiny model: 384×640 at most, multiples of 16; GEN3C-7B:
    704×1280): was found only once the weights had loaded."""
    import gen3c.pipelines.request as request_module

    def no_loading(request, progress=None):
        raise AssertionError("loaded the model before refusing the resolution")

    monkeypatch.setattr(request_module, "make_generator", no_loading)
    monkeypatch.setenv("GEN3C_CACHE_DIR", str(tmp_path / "no_cache"))
    missing = tmp_path / "not_read.png"  # never read: the resolution is refused first
    for model, resolution, message in ((["--model", "tiny"], "704x1280", "--resolution '704x1280' is larger than this model takes (384x640 at most): pass --resolution '352x640'"),
                                       ([], "704x1272", "--resolution '704x1272': this model takes heights and widths that are multiples of 16 (GEN3C works at 704x1280): pass --resolution '704x1264' or '704x1280'")):  # fmt: skip
        res = invoke("generate", "--generator", "gen3c", *model, "--input_image_path", missing, "--fov", 60,
                     "--resolution", resolution, "--video_save_folder", tmp_path / "out")  # fmt: skip
        assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "out").exists()


def test_a_lora_of_another_model_without_that_model_named_says_which_to_pass(box_scene, tmp_path):
    """Without --model/--checkpoint_dir the gen3c generator runs GEN3C-7B; an adapter trained on the
    tiny model (its gen3c_lora.json says so) got GEN3C-7B's 121-frame rule as its error."""
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "pytorch_lora_weights.safetensors").write_bytes(b"")
    image, depth, _, _ = box_scene
    args = ("generate", "--generator", "gen3c", "--input_image_path", image, "--depth_path", depth, "--fov", 60,
            "--num_video_frames", 17, "--lora", lora, "--video_save_folder", tmp_path / "out")  # fmt: skip
    for base, flag in (("tiny", "--model tiny"), (str(tmp_path / "small"), f"--checkpoint_dir {tmp_path / 'small'}")):
        (tmp_path / "small").mkdir(exist_ok=True)
        (tmp_path / "small" / "gen3c_model.json").write_text('{"chunk_frames": 17}')
        (lora / "gen3c_lora.json").write_text(json.dumps({"rank": 4, "base_checkpoint": base}))
        res = invoke(*args)
        assert res.exit_code == 2 and f"was trained on {base!r}, not GEN3C-7B (what runs without a model named): pass {flag}" in res.output, res.output
        # GEN3C's hub id (in any case) runs GEN3C-7B as well: the same refusal, not a load that fails on shapes.
        res = invoke(*args, "--checkpoint_dir", "NVIDIA/gen3c-cosmos-7b")
        assert res.exit_code == 2 and f"not GEN3C-7B (what --checkpoint_dir nvidia/Gen3C-Cosmos-7B runs): pass {flag}" in res.output, res.output
    assert not (tmp_path / "out").exists()


def test_tiny_model_without_a_frame_count_or_resolution_makes_one_chunk_at_its_size(box_scene, tmp_path):
    """`gen3c generate --generator gen3c --model tiny` with no --num_video_frames and no --resolution:
    17 frames at the 64x112 it was trained at, not an error about 121 frames or 704x1280."""
    image, depth, _, _ = box_scene
    res = invoke("generate", "--generator", "gen3c", "--model", "tiny", "--input_image_path", image, "--depth_path", depth,
                 "--fov", "60", "--num_steps", "2", "--video_save_folder", tmp_path,
                 "--max_gpu_memory", "1000")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "for 17 frames at 64x112)" in " ".join(res.output.split())  # the budget is planned for this run
    frames, _ = read_video(tmp_path / "output.mp4")
    assert frames.shape == (17, 64, 112, 3)
    run = json.loads((tmp_path / "output_run.json").read_text())
    assert run["num_video_frames"] == 17 and run["resolution"] == "64x112"


@pytest.mark.parametrize(
    "flags, message",
    [(["--guidance", "1e30"], "sampling diverged at step 1 of 2 (--guidance 1e+30): its latents passed ±10000 or became NaN, which decode to no picture: "
                              "pass a --guidance nearer GEN3C's 1"),
     (["--guidance", "1e10"], "sampling diverged at step 1 of 2 (--guidance 1e+10): its latents passed ±10000 or became NaN, which decode to no picture: "
                              "pass a --guidance nearer GEN3C's 1"),
     (["--noise_aug_strength", "1e308", "--num_video_frames", "33"],
      "the buffers noised with --noise_aug_strength 1e+308 encoded to NaN or infinite latents: pass a --noise_aug_strength nearer GEN3C's 0")],
)  # fmt: skip
def test_a_setting_that_overflows_the_sampler_is_refused_not_written_as_a_meaningless_video(box_scene, tmp_path, monkeypatch, flags, message):
    """--guidance 1e30 or --noise_aug_strength 1e308 (finite, so accepted) overflowed the guided
    output or the noised buffers: the latents were NaN and the run wrote an all-black video (the
    first frame too; the second chunk) and said it succeeded; then it was refused once the frames
    came out NaN, which on the CPU they did, but on a CUDA GPU (an H100) --guidance 1e30 gave a
    finite video of nothing, as --guidance 1e10 does on the CPU (its latents 5e7 where GEN3C's are
    a few units). Now the sampler notices the latents diverge, at the step they do, on any device.
    The noise's run fails in chunk 2: its chunk 1 is not kept, nor offered to --resume (which
    failed the same way), so the run with the strength fixed is not refused for them."""
    if "--noise_aug_strength" in flags:  # (the colours' overflow to inf, measured on the CPU)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    image, depth, _, _ = box_scene
    out = tmp_path / "out"
    res = invoke("generate", "--generator", "gen3c", "--model", "tiny", "--input_image_path", image, "--depth_path", depth,
                 "--fov", "60", "--num_steps", "2", "--video_save_folder", out, *flags)  # fmt: skip
    assert res.exit_code == 2, res.output
    assert res.output.splitlines()[-1] == f"error: {message}"
    assert not out.exists()  # (no video, no kept chunks)


def test_too_small_a_gpu_budget_is_refused_before_depth_is_estimated_or_weights_are_fetched(tmp_path, monkeypatch):
    """--max_gpu_memory below the leanest plan's estimate was refused once the model had loaded: after
    the depth estimate (MoGe: a download, then seconds to minutes) and the load (GEN3C's weights: a
    ~30 GB download first). Now it is refused from the model's configs before the input is read:
    here, with no depth given and nothing fetchable, the refusal comes instead of MoGe's or the
    weights' "cannot be fetched"."""
    from PIL import Image

    from gen3c.models import weights

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "empty_cache"))  # GEN3C's weights not converted here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU's float32 on a GPU host too
    Image.new("RGB", (112, 64), (100, 120, 140)).save(tmp_path / "photo.png")
    common = ("generate", "--generator", "gen3c", "--input_image_path", tmp_path / "photo.png", "--video_save_folder", tmp_path / "out",
             )  # fmt: skip
    res = invoke(*common, "--model", "tiny", "--max_gpu_memory", "0.01")
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()).startswith(
        "error: --max_gpu_memory 0.01 GB is too little for the leanest mode's estimated peak of 30.5 MB (+11% headroom) for 17 frames at "
        "64×112: it needs --max_gpu_memory 0.034 or more"
    ), res.output
    # GEN3C-7B in float32 (the CPU's), at its 121 frames of 704x1280, from the configs gen3c converts it with.
    res = invoke(*common, "--max_gpu_memory", "4")
    assert res.exit_code == 2 and "--max_gpu_memory 4 GB is too little for the leanest mode's estimated peak of 15.8 GB" in res.output, res.output
    assert "for 121 frames at 704×1280: it needs --max_gpu_memory 17.6 or more" in " ".join(res.output.split())
    res = invoke(*common, "--max_gpu_memory", "4", "--resolution", "352x640")  # half the size: less, still too much
    assert res.exit_code == 2 and "for 121 frames at 352×640: it needs --max_gpu_memory " in " ".join(res.output.split()), res.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "empty_cache").exists()


def test_a_prompt_a_model_without_t5_cannot_encode_is_refused_before_the_input_is_read(tmp_path, monkeypatch, tiny_checkpoint):
    """--model tiny (no T5) with a prompt outside its prompt cache was refused only as the model
    sampled, after the depth estimate (MoGe: a download), the load and the cache's renders, saying
    "Couldn't instantiate the backend tokenizer" and to fetch GEN3C's weights. Now it is refused
    first, naming the flag and the fix; a cached prompt, --disable_prompt_encoder and a checkpoint
    with T5 pass this check."""
    from PIL import Image

    from gen3c.pipelines.options import refuse_prompts_without_text_encoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    Image.new("RGB", (112, 64), (100, 120, 140)).save(tmp_path / "photo.png")
    common = ("generate", "--generator", "gen3c", "--model", "tiny", "--input_image_path", tmp_path / "photo.png",
              "--video_save_folder", tmp_path / "out")  # fmt: skip
    res = invoke(*common, "--prompt", "a cat")
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (
        "error: --prompt 'a cat': --model 'tiny' has no T5 text encoder, so it encodes only the prompts its prompt cache holds "
        "(the empty prompt, GEN3C's default negative prompt): leave out --prompt, or run a model with T5 (GEN3C's own: leave out --model)"
    )
    res = invoke(*common, "--negative_prompt", "blurry", "--guidance", "3")
    assert res.exit_code == 2 and "error: --negative_prompt 'blurry': --model 'tiny' has no T5 text encoder" in res.output, res.output
    assert not (tmp_path / "out").exists()
    refuse_prompts_without_text_encoder({"model": "tiny", "prompt": "", "guidance": 3.0})  # the cached ones
    refuse_prompts_without_text_encoder({"model": "tiny", "prompt": "a cat", "disable_prompt_encoder": True})
    refuse_prompts_without_text_encoder({"checkpoint_dir": str(tiny_checkpoint), "prompt": "a cat"})  # saved with its T5
    shutil.copytree(tiny_checkpoint, tmp_path / "no_t5", ignore=shutil.ignore_patterns("text_encoder", "tokenizer"))
    with pytest.raises(Gen3cInputError, match=r"^--prompt 'a cat': --checkpoint_dir '.*no_t5' has no T5 text encoder"):
        refuse_prompts_without_text_encoder({"checkpoint_dir": str(tmp_path / "no_t5"), "prompt": "a cat"})


def test_the_default_resolution_is_the_models_own(tmp_path):
    """No resolution: the packaged or trained model's gen3c_model.json size, GEN3C's 704x1280 for
    the official weights and the preview; a resolution given is kept."""
    assert GenerationRequest(generator="gen3c", generator_options={"model": "tiny"}).resolution == "64x112"
    assert GenerationRequest(generator="gen3c", generator_options={"model": "tiny"}, resolution="48x96").resolution == "48x96"
    assert GenerationRequest(generator="gen3c").resolution == "704x1280"
    assert GenerationRequest().resolution == "704x1280"
    ckpt = tmp_path / "CKPT"
    ckpt.mkdir()
    (ckpt / "gen3c_model.json").write_text('{"chunk_frames": 9, "resolution": [32, 48]}')
    request = GenerationRequest(generator="gen3c", generator_options={"checkpoint_dir": str(ckpt)})
    assert (request.resolution, request.num_video_frames) == ("32x48", 9)
    (ckpt / "gen3c_model.json").write_text('{"chunk_frames": 9, "resolution": "32x48"}')
    with pytest.raises(Gen3cModelError, match=r"'resolution' must be \[height, width\] in pixels, got 32x48"):
        GenerationRequest(generator="gen3c", generator_options={"checkpoint_dir": str(ckpt)})


def test_model_settings_are_refused_from_the_configs_before_the_input_is_read_or_a_weight_loads(box_scene, tmp_path, tiny_checkpoint, monkeypatch):
    """A checkpoint whose weight files are corrupt: a --chunk_frames, frame count, frame size or
    --num_gpus its configs rule out is a settings error from them (exit 2, one line), before the
    depth is read and the cache built, and no weight is read. --num_gpus was refused only by
    load_generator, after the input (a depth estimate: minutes) had been read."""
    import shutil

    import gen3c.pipelines.request as request_module

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    for weights in ckpt.rglob("*.safetensors"):
        weights.write_bytes(b"not safetensors")
    (ckpt / "gen3c_model.json").write_text('{"chunk_frames": 17, "resolution": [32, 48]}')  # 3 latent frames: no split
    calls = {"load_pipeline": 0, "load_scene": 0}

    def counted(name):
        def refuse(*args, **kwargs):
            calls[name] += 1
            raise AssertionError(f"{name} ran before the settings were refused")

        return refuse

    monkeypatch.setattr(loading_module, "load_pipeline", counted("load_pipeline"))
    monkeypatch.setattr(request_module, "load_scene", counted("load_scene"))
    monkeypatch.delenv("MASTER_ADDR", raising=False)  # joining a process group would fail at once, not hang
    image, depth, _, _ = box_scene
    base = ("generate", "--generator", "gen3c", "--checkpoint_dir", ckpt, "--input_image_path", image, "--depth_path", depth,
            "--fov", 60, "--video_save_folder", tmp_path / "out")  # fmt: skip
    for world, extra, message in (
        (None, ("--chunk_frames", 25), "--chunk_frames 25: the gen3c generator makes 17 frames per chunk; leave it out"),
        (None, ("--num_video_frames", 20), "num_video_frames 20 is not possible with the gen3c generator, which makes 17 frames per chunk"),
        (None, ("--resolution", "32x40"), "--resolution '32x40': this model takes heights and widths that are multiples of 16"),
        ("2", ("--num_gpus", 2), f"--num_gpus 2: checkpoint '{ckpt}' (its 17-frame chunks have 3 latent frames) cannot be split across GPUs"),
    ):
        if world is None:
            monkeypatch.delenv("WORLD_SIZE", raising=False)
        else:
            monkeypatch.setenv("WORLD_SIZE", world)  # as under torchrun --nproc_per_node=2
        res = invoke(*base, *extra)
        assert res.exit_code == 2, res.output
        assert res.output.startswith("error: ") and message in " ".join(res.output.split()), res.output
    assert calls == {"load_pipeline": 0, "load_scene": 0}
    assert not (tmp_path / "out").exists()


def test_gen3cs_hub_id_given_explicitly_gets_the_same_early_settings_checks_as_no_checkpoint(box_scene, tmp_path, monkeypatch):
    """``--checkpoint_dir nvidia/Gen3C-Cosmos-7B`` runs GEN3C's official weights, as no
    --checkpoint_dir does: a frame size or --num_gpus their known configs rule out is refused from
    them before the input is read or anything is fetched (the hub unreachable here). Before: only
    no --checkpoint_dir was checked; the hub id went on to read the input and fetch the weights."""
    import gen3c.pipelines.request as request_module
    from gen3c.pipelines.gen3c import OFFICIAL_REPO

    def refuse(*args, **kwargs):
        raise AssertionError("the input was read before the settings were refused")

    monkeypatch.setattr(request_module, "load_scene", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never the real hub from a test
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("GEN3C_CACHE_DIR", str(tmp_path / "weights"))
    monkeypatch.delenv("MASTER_ADDR", raising=False)  # joining a process group would fail at once, not hang
    image, depth, _, _ = box_scene
    for world, extra, message in (
        (None, ("--chunk_frames", 25), "--chunk_frames 25: the gen3c generator makes 121 frames per chunk; leave it out"),
        (None, ("--resolution", "32x40"), "--resolution '32x40': this model takes heights and widths that are multiples of 16 (GEN3C works at 704x1280): pass --resolution '32x32' or '32x48'"),
        ("3", ("--num_gpus", 3), "--num_gpus 3: the DiT's 32 attention heads do not split across 3 GPUs; use one of [1, 2, 4, 8, 16]"),
    ):
        if world is None:
            monkeypatch.delenv("WORLD_SIZE", raising=False)
        else:
            monkeypatch.setenv("WORLD_SIZE", world)  # as under torchrun --nproc_per_node=3
        for checkpoint in ((), ("--checkpoint_dir", OFFICIAL_REPO)):
            res = invoke("generate", "--generator", "gen3c", *checkpoint, "--input_image_path", image, "--depth_path", depth,
                         "--fov", 60, "--video_save_folder", tmp_path / "out", *extra)  # fmt: skip
            assert res.exit_code == 2, (checkpoint, extra, res.output)
            assert res.output.startswith("error: ") and message in " ".join(res.output.split()), (checkpoint, res.output)
    assert not (tmp_path / "out").exists() and not (tmp_path / "weights").exists()
