"""Distillation (`gen3c train` mode distill) on tiny random models on the CPU: the targets in
closed form and against the sampler, a step that learns, resume, the student as a checkpoint,
the 2-process gloo run, and `gen3c eval` comparing teacher and student in one run."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
import torch
from child_env import child_env
from tiny_model import tiny_pipeline
from typer.testing import CliRunner

from gen3c.cli import app
from gen3c.errors import Gen3cInputError, collect_notes
from gen3c.models import configs
from gen3c.pipelines.gen3c import condition_channels, condition_indicator
from gen3c.training.config import config_from_dict, load_config, shipped_config
from gen3c.training.distill import (
    Conditioning,
    Stage,
    check_halving,
    denoised,
    distill_stages,
    euler_step,
    halving_target,
    make_conditioning,
    network_output,
    note_long_samples,
    sampler_sigmas,
    stage_loss,
)
from gen3c.training.loop import train

runner = CliRunner()
H, W, T_LAT = 32, 48, 2  # 9 frames -> latents (B, 16, 2, 4, 6)


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def teacher_checkpoint(tmp_path_factory):
    """A tiny random gen3c checkpoint stating its 9-frame chunk (the teacher)."""
    folder = tmp_path_factory.mktemp("teacher")
    tiny_pipeline(seed=0).save_pretrained(folder)
    (folder / "gen3c_model.json").write_text(json.dumps({"chunk_frames": 9, "resolution": [H, W], "dtype": "float32"}))
    return folder


def distill_config(checkpoint, **sections) -> dict:
    base = {
        "run": {"max_steps": 2},
        "data": {"resolution": [H, W], "num_frames": 9, "num_clips": 4, "cache_clips": True},
        "model": {"checkpoint": str(checkpoint)},  # the cached prompts are T5-like (non-zero): all 512 tokens
        "train": {"mode": "distill", "batch_size": 2, "lr": 1e-3},
        "distill": {"teacher_steps": 5, "student_steps": [3]},
        "log": {"every": 1, "sample_every": -1},
    }
    for name, table in sections.items():
        base[name] = {**base.get(name, {}), **table}
    return base


def sampler_conditioning(image_latent, buffers, text, negative, seed: int) -> Conditioning:
    """The conditions exactly as Gen3cPipeline.denoise makes them for ``seed`` (numpy augmentation noise)."""
    aug = torch.from_numpy(np.random.RandomState(seed).standard_normal(tuple(image_latent.shape)).astype(np.float32))
    indicator = condition_indicator(1, image_latent.shape[2])
    return Conditioning(
        clean=image_latent, augmented=(image_latent + 0.001 * aug) / (0.001**2 + 0.25) ** 0.5, indicator=indicator,
        condition=condition_channels(indicator, buffers), uncondition=condition_channels(indicator, torch.zeros_like(buffers)),
        text=text, negative_text=negative, augment_sigma=0.001,
    )  # fmt: skip


def latents(seed: int = 0, batch: int = 1):
    g = torch.Generator().manual_seed(seed)
    image_latent = torch.zeros(batch, 16, T_LAT, 4, 6)
    image_latent[:, :, 0] = torch.randn(batch, 16, 4, 6, generator=g)
    return image_latent, torch.randn(batch, 64, T_LAT, 4, 6, generator=g)


@pytest.mark.parametrize(("guidance", "num_steps"), [(0.0, 5), (1.0, 9)])
def test_denoised_and_euler_steps_are_the_samplers(pipe, guidance, num_steps):
    """A chain of `denoised` + `euler_step` from the sampler's noise reproduces Gen3cPipeline.denoise,
    guidance and first-frame replacement included: the targets are the sampler's own arithmetic."""
    image_latent, buffers = latents()
    text, negative = pipe.encode_prompt(""), pipe.encode_prompt(configs.DEFAULT_NEGATIVE_PROMPT)
    reference = pipe.denoise(image_latent, buffers, text, negative, guidance=guidance, num_steps=num_steps, seed=3)
    cond = sampler_conditioning(image_latent, buffers, text, negative, 3)
    sigmas = sampler_sigmas(pipe.scheduler, num_steps)
    x = torch.randn(image_latent.shape, generator=torch.Generator().manual_seed(3)) * pipe.scheduler.init_noise_sigma
    with torch.no_grad():
        for i in range(num_steps):
            d = denoised(pipe.transformer, x, sigmas[i : i + 1], cond, guidance)
            x = euler_step(d.state, d.denoised, sigmas[i : i + 1], sigmas[i + 1 : i + 2])
    torch.testing.assert_close(x, reference, rtol=0, atol=1e-5)


def test_karras_grids_nest_and_other_chains_are_refused(pipe):
    for teacher, student in ((33, 17), (17, 9), (9, 5), (5, 3)):
        t, s = sampler_sigmas(pipe.scheduler, teacher), sampler_sigmas(pipe.scheduler, student)
        assert torch.equal(t[:-1][::2], s[:-1]) and t[-1] == s[-1] == 0  # every other teacher point is a student point
    assert float(t[0]) == pytest.approx(80.0) and float(t[-2]) == pytest.approx(0.0002)
    check_halving(33, [17, 9, 5])
    with pytest.raises(Gen3cInputError, match=r"8 steps do not halve 17 .* takes 9"):
        check_halving(33, [17, 8])
    with pytest.raises(Gen3cInputError, match="do not halve 35"):
        check_halving(35, [17])
    check_halving(16385, [8193, 4097])  # finer than progressive distillation's 8192-step teachers
    for steps in (16387, 10**20):  # 10**20 passed, then failed in numpy's grid with a traceback
        with pytest.raises(Gen3cInputError, match=rf"distill.teacher_steps = {steps} must be at most 16385: .* float32 rounding"):
            check_halving(steps, [])


def test_stage_labels_say_what_each_stage_does(teacher_checkpoint):
    """The guidance stage's bar read "Stage 0: 5→5 steps", as if it did nothing; it now says it folds
    guidance's two forwards into one, and a halving stage says it halves (with a guided teacher: so)."""
    labels = [s.label for s in distill_stages(config_from_dict(distill_config(teacher_checkpoint)).distill, 2)]
    assert labels == ["guidance, 5 steps × 2 forwards → × 1", "halving, 5→3 steps"]
    direct = config_from_dict(distill_config(teacher_checkpoint, distill={"guidance_stage": False})).distill
    assert [s.label for s in distill_stages(direct, 2)] == ["halving, 5→3 steps (guided teacher)"]


def test_students_of_many_steps_are_said_in_a_note_before_the_run(teacher_checkpoint):
    """distill.teacher_steps = 10000 passed without a word; a training step costs the same on any
    grid, but each sample video of its student took 10,000 forwards and the student sampled with
    10,000 steps: said up front, naming the key and how to skip the samples."""

    def notes(**distill_and_log):
        log = distill_and_log.pop("log", {})
        config = config_from_dict(distill_config(teacher_checkpoint, distill=distill_and_log, log=log))
        with collect_notes() as said:
            note_long_samples(config)
        return said

    (said,) = notes(teacher_steps=10000, student_steps=[], log={"sample_every": 0})
    assert said.startswith("distill.teacher_steps = 10000: the students sample with up to 10000 steps")
    assert "take up to 10000 DiT forwards each (log.sample_every = -1 makes none)" in said
    assert "the student it writes samples with 10000 steps" in said
    (said,) = notes(teacher_steps=257, student_steps=[129, 65], log={"sample_every": 5})  # the last student: GEN3C's cost
    assert "every log.sample_every steps) take up to 257 DiT forwards" in said and "it writes" not in said
    assert notes(teacher_steps=257, student_steps=[129, 65]) == []  # no samples (-1), the last student short
    assert notes(teacher_steps=33, student_steps=[17, 9, 5], log={"sample_every": 0}) == []  # the shipped recipe


def test_guidance_target_in_closed_form(pipe):
    """Teacher = student: with no buffers (uncond = cond) the guided target is the student's own
    output and the loss is exactly 0; with buffers it is 2·F_cond − F_uncond at g = 1."""
    net = pipe.transformer
    x0, buffers = latents(1, batch=2)
    text = torch.zeros(1, 8, configs.TRANSFORMER_TINY["text_embed_dim"])
    stage = Stage(0, "guidance", 5, 5, 1.0, 1)
    with torch.no_grad():
        none = stage_loss(net, net, stage, x0, torch.zeros_like(buffers), text, text, pipe.scheduler, torch.Generator().manual_seed(0))
    assert float(none.loss) == 0.0

    sigma = torch.tensor([2.0, 0.3])
    cond = make_conditioning(x0, buffers, text, text, torch.Generator().manual_seed(1))
    x = x0 + sigma.view(-1, 1, 1, 1, 1) * torch.randn(x0.shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        guided = denoised(net, x, sigma, cond, guidance=1.0)
        hidden = guided.state / (sigma.view(-1, 1, 1, 1, 1) ** 2 + 0.25).sqrt()
        f_cond = network_output(net, hidden, sigma, cond.text, cond.condition)
        f_uncond = network_output(net, hidden, sigma, cond.text, cond.uncondition)
    s = sigma.view(-1, 1, 1, 1, 1)
    by_hand = 0.25 / (s**2 + 0.25) * guided.state + s * 0.5 / (s**2 + 0.25).sqrt() * (2 * f_cond - f_uncond)
    torch.testing.assert_close(guided.denoised[:, :, 1:], by_hand[:, :, 1:])  # generated frames
    torch.testing.assert_close(guided.denoised[:, :, :1], x0[:, :, :1])  # the conditioned frame: the clean latent
    assert float((f_cond - f_uncond).abs().mean()) > 1e-3  # the buffers matter, so the target differs from F_cond


def test_guidance_distillation_learns_the_guided_output(pipe):
    """A few steps on a fixed batch: the loss falls and the student's one forward moves toward
    cond + g·(cond − uncond) of the frozen teacher."""
    teacher = pipe.transformer
    student = copy.deepcopy(teacher).train().requires_grad_(True)
    x0, buffers = latents(3, batch=2)
    buffers = buffers * 3  # buffers far from zero: guidance changes the output a lot
    text = torch.zeros(1, 8, configs.TRANSFORMER_TINY["text_embed_dim"])
    stage = Stage(0, "guidance", 5, 5, 2.0, 1)
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)

    def loss_at(seed: int) -> torch.Tensor:
        return stage_loss(student, teacher, stage, x0, buffers, text, text, pipe.scheduler, torch.Generator().manual_seed(seed)).loss

    def gap() -> float:  # student's one forward vs the teacher's guided output at fixed inputs
        sigma = torch.tensor([1.0, 0.2])
        cond = make_conditioning(x0, buffers, text, text, torch.Generator().manual_seed(9))
        x = x0 + sigma.view(-1, 1, 1, 1, 1) * 0.5
        with torch.no_grad():
            return float((denoised(student, x, sigma, cond).denoised - denoised(teacher, x, sigma, cond, 2.0).denoised).abs().mean())

    with torch.no_grad():
        before = sum(float(loss_at(s)) for s in range(3)) / 3
    gap_before = gap()
    for step in range(10):
        opt.zero_grad()
        loss_at(step % 3).backward()
        opt.step()
    with torch.no_grad():
        after = sum(float(loss_at(s)) for s in range(3)) / 3
    assert after < 0.5 * before, (before, after)
    assert gap() < 0.7 * gap_before


def test_halving_target_is_two_steps_of_the_teachers_sampler(pipe):
    """For every student step j of a 9 → 5 halving, the target's x_c is where the teacher's own
    sampler (Gen3cPipeline.denoise, recorded by its callback) is two steps later, and one
    student Euler step with the target estimate lands exactly there."""
    image_latent, buffers = latents(4)
    text = pipe.encode_prompt("")
    states = []
    x_start = torch.randn(image_latent.shape, generator=torch.Generator().manual_seed(5)) * pipe.scheduler.init_noise_sigma
    pipe.denoise(image_latent, buffers, text, None, guidance=0.0, num_steps=9, seed=5, callback=lambda i, s, x: states.append(x.clone()))
    trajectory = [x_start, *states]  # trajectory[i]: the state at teacher σ_i (i = 0 … 9)
    sigmas = sampler_sigmas(pipe.scheduler, 9)
    cond = sampler_conditioning(image_latent, buffers, text, text, 5)
    for j in range(5):
        with torch.no_grad():
            target, x_c, s_c = halving_target(pipe.transformer, trajectory[2 * j], torch.tensor([j]), sigmas, cond)
        after = min(2 * j + 2, 9)  # the last student step (σ_min → 0) is one teacher step
        torch.testing.assert_close(x_c, trajectory[after], rtol=0, atol=1e-5)
        assert float(s_c) == float(sigmas[after])
        start = denoised(pipe.transformer, trajectory[2 * j], sigmas[2 * j : 2 * j + 1], cond).state
        landed = euler_step(start, target, sigmas[2 * j : 2 * j + 1], s_c)
        torch.testing.assert_close(landed[:, :, 1:], x_c[:, :, 1:], rtol=0, atol=1e-4)


def test_teacher_in_float8_or_streamed_gives_the_same_targets(tmp_path, teacher_checkpoint):
    from gen3c.training.distill_loop import make_teacher

    base = config_from_dict(distill_config(teacher_checkpoint))
    x0, buffers = latents(6, batch=2)
    text = torch.zeros(1, 8, configs.TRANSFORMER_TINY["text_embed_dim"])
    student = make_teacher(teacher_checkpoint, base, torch.device("cpu"))
    scheduler = tiny_pipeline(seed=0).scheduler
    stage = Stage(0, "halving", 5, 3, 1.0, 1)
    losses = {}
    for memory in ("resident", "offload", "fp8"):
        config = config_from_dict(distill_config(teacher_checkpoint, distill={"teacher_memory": memory}))
        teacher = make_teacher(teacher_checkpoint, config, torch.device("cpu"))
        with torch.no_grad():
            losses[memory] = float(stage_loss(student, teacher, stage, x0, buffers, text, text, scheduler, torch.Generator().manual_seed(0)).loss)
    assert losses["offload"] == pytest.approx(losses["resident"], rel=1e-5)
    assert losses["fp8"] != losses["resident"] and losses["fp8"] == pytest.approx(losses["resident"], rel=0.5)
    assert losses["resident"] > 0  # the teacher's guided two steps differ from the unguided student's one


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {"checkpoint": ""}}, "needs model.checkpoint"),
        ({"distill": {"student_steps": [16]}}, "16 steps do not halve 5"),
        ({"distill": {"guidance": 0.0}}, "guidance_stage needs distill.guidance"),
        ({"distill": {"stage_max_steps": [3]}}, "must list 2 positive step counts"),
        ({"distill": {"teacher_memory": "disk"}}, "choose one of resident, fp8, offload"),
        ({"distill": {"guidance_stage": False, "student_steps": []}}, "has no stage"),
    ],
)
def test_bad_distill_configs_are_refused(teacher_checkpoint, change, message):
    cfg = distill_config(teacher_checkpoint)
    for name, table in change.items():
        cfg[name] = {**cfg[name], **table}
    with pytest.raises(Gen3cInputError, match=message):
        config_from_dict(cfg)


def test_stored_latents_are_keyed_by_what_the_clips_are(pipe, teacher_checkpoint):
    """The key of OUT/latents.safetensors held data.num_workers, a setting a resumed run may
    change: the resumed run made and encoded every clip again (minutes for a real config)."""
    from gen3c.training.distill_loop import _latents_key

    def key(**data):
        return _latents_key(config_from_dict(distill_config(teacher_checkpoint, data=data)), pipe.vae)

    assert key(num_workers=2) == key()
    assert key(num_clips=5) != key() and key(resolution=[48, 64]) != key()


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, teacher_checkpoint):
    """One CLI run: a guidance stage on the 5-step grid, then 5 → 3 steps (2 optimiser steps each)."""
    folder = tmp_path_factory.mktemp("distill")
    cfg = distill_config(teacher_checkpoint, log={"sample_every": 0})
    path = folder / "distill.toml"
    path.write_text("\n".join(f"[{s}]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in t.items()) for s, t in cfg.items()))
    res = runner.invoke(app, ["train", str(path), "--out", str(folder / "out")])
    assert res.exit_code == 0, res.output
    return folder / "out", cfg


@pytest.mark.slow
def test_distill_cli_writes_stages_and_a_student(distilled):
    out, _ = distilled
    rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert [(r["step"], r["stage"]) for r in rows] == [(1, 0), (2, 0), (3, 1), (4, 1)]
    stages = sorted(p.name for p in (out / "stages").iterdir())
    assert stages == ["0_guidance_5steps", "1_5to3steps"]
    first = json.loads((out / "stages" / "0_guidance_5steps" / "gen3c_model.json").read_text())
    assert first["num_steps"] == 5 and first["distilled"] == ["guidance distillation: 5 steps × 2 forwards (g = 1) → 5 × 1"]
    meta = json.loads((out / "model" / "gen3c_model.json").read_text())
    assert meta["num_steps"] == 3 and meta["guidance"] == 0.0 and meta["chunk_frames"] == 9 and meta["dtype"] == "float32"
    assert list((out / "logs").glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (out / "samples").glob("*.mp4")) == ["step_0000002.mp4", "step_0000004.mp4"]  # each stage's end
    card = (out / "MODEL_CARD.md").read_text()
    assert "3 steps × 1 forward" in card and "1_5to3steps" in card
    assert (out / "latents.safetensors").is_file()


@pytest.mark.slow
def test_student_loads_and_samples_with_its_own_steps(distilled, box_scene, tmp_path):
    from gen3c.pipelines.loading import generator_from_options

    out, _ = distilled
    student = generator_from_options({"checkpoint_dir": str(out / "model"), "device": "cpu"})
    assert (student.num_steps, student.guidance, student.chunk_frames) == (3, 0.0, 9)
    calls = []
    handle = student.pipeline.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    image, colors, masks = torch.rand(3, H, W) * 2 - 1, torch.rand(9, 1, 3, H, W) * 2 - 1, torch.ones(9, 1, 1, H, W)
    frames = student.generate(None, None, image, buffers=type("B", (), {"colors": colors, "masks": masks})())
    handle.remove()
    assert len(calls) == 3 and frames.shape == (9, 3, H, W)  # 3 steps × 1 forward
    assert generator_from_options({"checkpoint_dir": str(out / "model"), "num_steps": 2, "guidance": 1.0}).num_steps == 2

    image_path, depth_path, _, _ = box_scene
    res = runner.invoke(app, ["generate", "--generator", "gen3c", "--checkpoint_dir", str(out / "model"), "--input_image_path", str(image_path),
                              "--depth_path", str(depth_path), "--fov", "60", "--resolution", f"{H}x{W}", "--num_video_frames", "9",
                              "--video_save_folder", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 0, res.output


@pytest.mark.slow
def test_distill_resume_across_a_stage_matches_an_uninterrupted_run(tmp_path, distilled):
    from safetensors.torch import load_file

    out, cfg = distilled
    config = config_from_dict({**cfg, "log": {**cfg["log"], "sample_every": -1}})
    bars = []  # [label, total, steps advanced] of the stages' bars

    def progress(label, total):
        bar = [label, total, 0]
        bars.append(bar) if label.startswith("Stage") else None
        return lambda n=1: bar.__setitem__(2, bar[2] + n)

    first = train(config, tmp_path / "split", stop_after=3, progress=progress)  # ends inside the second stage
    assert first.steps == 3 and first.exported is None and (tmp_path / "split" / "stages" / "0_guidance_5steps").is_dir()
    # Each bar's total is what the invocation runs (before: 2 for the second stage, which ran 1 step).
    assert bars == [["Stage 0: guidance, 5 steps × 2 forwards → × 1", 2, 2], ["Stage 1: halving, 5→3 steps", 1, 1]]
    bars.clear()
    second = train(config, tmp_path / "split", resume="auto", progress=progress)
    assert second.steps == 4 and bars == [["Stage 1: halving, 5→3 steps", 1, 1]]
    whole = [json.loads(line)["loss"] for line in (out / "losses.jsonl").read_text().splitlines()]
    torch.testing.assert_close(torch.tensor(first.losses + second.losses), torch.tensor(whole), rtol=1e-5, atol=1e-7)
    a = load_file(out / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "split" / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_resume_inside_a_later_stage_logs_each_step_once(tmp_path, teacher_checkpoint):
    """distill/stage_N was logged at the stage's own step, below the run's step that a resumed run
    purges from: resumed inside stage 1 (after a crash, or from an earlier checkpoint), the curve
    kept the points of the steps run again and got them a second time."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = config_from_dict(distill_config(teacher_checkpoint, log={"checkpoint_every": 3}))
    out = tmp_path / "run"
    train(config, out)  # steps 1-2: stage 0, 3-4: stage 1, a checkpoint at step 3 (the stage's first)
    assert train(config, out, resume=str(out / "checkpoints" / "step_0000003")).steps == 4  # step 4 again
    logs = EventAccumulator(str(out / "logs"))
    logs.Reload()
    steps = {tag: [e.step for e in logs.Scalars(tag)] for tag in ("distill/loss", "distill/stage_0", "distill/stage_1")}
    assert steps == {"distill/loss": [1, 2, 3, 4], "distill/stage_0": [1, 2], "distill/stage_1": [3, 4]}


@pytest.mark.slow
def test_a_resume_that_lowers_max_steps_below_the_stage_ends_the_stage_without_a_negative_bar(tmp_path, teacher_checkpoint):
    """run.max_steps (each stage's length) may change on resume; lowered below the steps the stage
    had done, its bar got a negative total. Now: no bar, a line saying so, and the stage ends."""
    cfg = distill_config(teacher_checkpoint, run={"max_steps": 3}, distill={"student_steps": []})  # one stage
    out = tmp_path / "run"
    assert train(config_from_dict(cfg), out, stop_after=2).steps == 2
    bars, said = [], []

    def progress(label, total):
        bars.append([label, total])
        return lambda n=1: None

    lowered = config_from_dict({**cfg, "run": {"max_steps": 1}})
    result = train(lowered, out, resume="auto", progress=progress, echo=said.append)
    assert not [bar for bar in bars if bar[0].startswith("Stage")]
    assert "stage 0: 2 steps done, run.max_steps = 1: nothing left to train, the stage ends" in said
    assert result.steps == 2 and result.exported == out / "model"
    meta = json.loads((out / "model" / "gen3c_model.json").read_text())
    assert meta["num_steps"] == 5 and json.loads((out / "stages" / "0_guidance_5steps" / "gen3c_model.json").read_text())["distill_stage"]["steps"] == 2


@pytest.mark.slow
def test_the_time_budget_of_a_stage_counts_across_resumes(tmp_path, teacher_checkpoint, caplog):
    """run.max_minutes is each stage's budget, counted from the checkpoint's record as in `gen3c
    train` (a resumed run whose stage has spent it took one more step before looking). diffusers'
    warning about casting float32 weights to float32 (a no-op cast) is gone from the console."""
    out = tmp_path / "run"
    first = train(config_from_dict(distill_config(teacher_checkpoint, run={"max_minutes": 10.0})), out, stop_after=1)
    spent = torch.load(first.checkpoint / "custom_checkpoint_0.pkl", weights_only=True)["stage_seconds"]
    assert first.steps == 1 and 0 < spent == pytest.approx(first.seconds)
    said = []
    second = train(config_from_dict(distill_config(teacher_checkpoint, run={"max_minutes": 0.5 * spent / 60})), out, resume="auto", echo=said.append)
    assert said[0].startswith("stage 0: the time budget (run.max_minutes = ") and "is spent after 1 of 2 steps" in said[0]
    rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in rows][:2] == [0, 1] and second.exported == out / "model"  # the next stage: a budget of its own
    stages = [json.loads((out / "stages" / name / "gen3c_model.json").read_text())["distill_stage"] for name in ("0_guidance_5steps", "1_5to3steps")]
    assert [s["steps"] for s in stages][0] == 1 and stages[0]["seconds"] == pytest.approx(spent)
    assert second.seconds == pytest.approx(sum(s["seconds"] for s in stages))
    assert not [r.getMessage() for r in caplog.records if "should be kept in float32" in r.getMessage()]


@pytest.mark.slow
def test_eval_compares_teacher_and_student_in_one_run(distilled, teacher_checkpoint, tmp_path, monkeypatch):
    import shutil

    from gen3c.pipelines import loading as loading_module

    out, _ = distilled
    # A copy of the teacher whose gen3c_model.json asks for 4 steps at guidance 1: run with its own
    # defaults it must make the very videos the teacher makes with --num_steps 4.
    twin = shutil.copytree(teacher_checkpoint, tmp_path / "twin")
    (twin / "gen3c_model.json").write_text(json.dumps({"chunk_frames": 9, "dtype": "float32", "num_steps": 4, "guidance": 1.0}))
    real = loading_module.generator_from_options
    monkeypatch.setattr(loading_module, "generator_from_options", lambda options, seed=1, resolution=None, progress=None: real({**options, "device": "cpu"}, seed, resolution, progress))
    report = tmp_path / "report"
    res = runner.invoke(app, ["eval", "--generator", "gen3c", "--checkpoint_dir", str(teacher_checkpoint), "--num_steps", "4",
                              "--compare_models", f"{out / 'model'},{twin}", "--scenes", "room", "--presets", "left",
                              "--resolution", f"{H}x{W}", "--methods", "still", "--output_folder", str(report), "--no_plots"])  # fmt: skip
    assert res.exit_code == 0, res.output
    # The terminal table keeps every column whole with the extra one, also when not printed to a terminal.
    table = [line for line in res.output.splitlines() if line.startswith(("┃", "│"))]
    assert table[0].endswith(" vs ref┃") and not any("…" in line for line in table), table
    results = json.loads((report / "results.json").read_text())
    student_row, copy_row = "gen3c:out/model", "gen3c:twin"
    assert list(results["methods"]) == ["still", "gen3c", student_row, copy_row]
    scores = results["cases"][0]["scores"]
    assert 5 < scores[student_row]["psnr_vs_reference"] < 60  # the student's video differs from the teacher's
    # The teacher's twin: the same videos, an infinite PSNR (stored as "Infinity").
    assert scores[copy_row]["psnr_vs_reference"] == "Infinity" and scores[copy_row]["psnr"] == scores["gen3c"]["psnr"]
    assert "psnr_vs_reference" not in scores["gen3c"] and "psnr_vs_reference" not in scores["still"]
    text = (report / "report.md").read_text()
    assert "## Models compared" in text and "| `gen3c:out/model` | 3 steps × 1 forward |" in text
    assert "| `gen3c` | 4 steps × 2 forwards |" in text and "| `gen3c:twin` | 4 steps × 2 forwards |" in text
    bad = runner.invoke(app, ["eval", "--compare_models", "tiny", "--output_folder", str(report)])
    assert bad.exit_code == 2 and "--generator gen3c" in bad.output
    unknown = runner.invoke(app, ["eval", "--generator", "gen3c", "--model", "tiny", "--compare_models", "tiny_slow", "--output_folder", str(report)])
    assert unknown.exit_code == 2 and "neither a packaged model" in " ".join(unknown.output.split())


def test_shipped_distill_configs_load():
    small = load_config(shipped_config("distill_small.toml"))
    assert small.train.mode == "distill" and small.distill.student_steps[-1] <= 8
    assert small.model.checkpoint == "tiny" and small.model.max_sequence_length == 1
    big = load_config(shipped_config("distill_7b.toml"))
    assert big.train.distributed == "fsdp" and big.distill.teacher_memory == "fp8" and big.train.gradient_checkpointing


@pytest.mark.slow
def test_torchrun_distills_data_parallel_on_cpus(tmp_path, teacher_checkpoint):
    """`torchrun --nproc_per_node 2 -m gen3c train` in distill mode forms one gloo group (DDP):
    rank 0 alone writes stages, model and losses; the ranks' losses are averaged."""
    import subprocess
    import sys

    cfg = distill_config(teacher_checkpoint, train={"batch_size": 1})
    path = tmp_path / "d.toml"
    path.write_text("\n".join(f"[{s}]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in t.items()) for s, t in cfg.items()))
    env = child_env(OMP_NUM_THREADS="1")
    env["CUDA_VISIBLE_DEVICES"] = ""  # CPU ranks (gloo) on a GPU host too
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run([*launch, "-m", "gen3c", "train", str(path), "--out", str(tmp_path / "two")], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    said = proc.stdout + proc.stderr
    assert said.count("trained 4 steps") == 1 and "on 2 processes (DDP)" in said
    two = [json.loads(line) for line in (tmp_path / "two" / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in two] == [1, 2, 3, 4]
    assert json.loads((tmp_path / "two" / "model" / "gen3c_model.json").read_text())["num_steps"] == 3
    one = train(config_from_dict(cfg), tmp_path / "one")
    assert two[0]["loss"] != pytest.approx(one.losses[0], rel=1e-6)  # rank 1's clips count too


def test_zero_prompt_embeddings_give_the_same_output_at_any_length():
    """Why distill_small.toml sets max_sequence_length = 1: the small model's prompt is zero
    embeddings, and cross-attention over identical tokens averages identical values."""
    from gen3c.models.packaged import packaged_model_dir
    from gen3c.pipelines.loading import load_pipeline

    net = load_pipeline(packaged_model_dir("tiny"), dtype=torch.float32).transformer
    g = torch.Generator().manual_seed(0)
    hidden, condition, sigma = torch.randn(2, 16, 3, 8, 14, generator=g), torch.randn(2, 65, 3, 8, 14, generator=g), torch.tensor([3.0, 0.1])
    dim = net.config.text_embed_dim
    with torch.no_grad():
        long = network_output(net, hidden, sigma, torch.zeros(2, 512, dim), condition)
        short = network_output(net, hidden, sigma, torch.zeros(2, 1, dim), condition)
    torch.testing.assert_close(short, long, rtol=0, atol=1e-6)


def test_a_packaged_model_name_is_a_teacher_checkpoint():
    from gen3c.models.packaged import packaged_model_dir, resolve_checkpoint

    assert resolve_checkpoint("tiny") == str(packaged_model_dir("tiny"))
    assert resolve_checkpoint("runs/a/model") == "runs/a/model" and resolve_checkpoint("") == ""


def test_packaged_student_samples_with_its_own_five_steps():
    from gen3c.models.packaged import packaged_model_dir, packaged_model_info
    from gen3c.pipelines.loading import generator_from_options

    info = packaged_model_info("tiny_fast")
    assert (info["num_steps"], info["guidance"], info["chunk_frames"], info["teacher"]) == (5, 0.0, 17, "tiny")
    assert sum(p.stat().st_size for p in packaged_model_dir("tiny_fast").rglob("*") if p.is_file()) <= 10e6
    student = generator_from_options({"model": "tiny_fast"})
    calls = []
    handle = student.pipeline.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    h, w = info["resolution"]
    colors, masks = torch.rand(17, 1, 3, h, w) * 2 - 1, torch.ones(17, 1, 1, h, w)
    frames = student.generate(None, None, colors[0, 0], buffers=type("B", (), {"colors": colors, "masks": masks})())
    handle.remove()
    assert len(calls) == 5 and frames.shape == (17, 3, h, w)  # 5 steps × 1 forward


def test_python_load_generator_takes_a_students_own_defaults():
    """``load_generator(folder)`` (the Python entry, not only the CLI's options) reads the
    student's gen3c_model.json: 5 steps, no guidance, its chunk and dtype; what the caller passes
    wins."""
    from gen3c.models.packaged import packaged_model_dir
    from gen3c.pipelines.loading import load_generator

    folder = packaged_model_dir("tiny_fast")
    student = load_generator(folder, device="cpu")
    assert (student.num_steps, student.guidance, student.chunk_frames) == (5, 0.0, 17)
    assert student.pipeline.transformer_dtype == torch.float32
    told = load_generator(folder, device="cpu", num_steps=3, guidance=1.0)
    assert (told.num_steps, told.guidance) == (3, 1.0)


@pytest.mark.slow
def test_a_student_saved_and_loaded_again_keeps_its_steps(tmp_path):
    """``save_pretrained`` → ``from_pretrained`` keeps what the model was made for. Before: the
    copy lost ``gen3c_model.json``, so it sampled 35 steps with guidance (GEN3C's defaults), not
    the student's 5 without, and load_generator ran it at 121 frames, not 17."""
    from gen3c.models.packaged import packaged_model_info
    from gen3c.pipelines.gen3c import Gen3cPipeline
    from gen3c.pipelines.loading import load_generator

    student = Gen3cPipeline.from_pretrained("tiny_fast")  # a packaged model by name, as load_generator takes it
    assert student.model_info == packaged_model_info("tiny_fast")
    student.save_pretrained(tmp_path / "copy")
    again = Gen3cPipeline.from_pretrained(tmp_path / "copy")
    assert again.sampling_defaults == {"num_steps": 5, "guidance": 0.0} and again.model_info == student.model_info
    gen = load_generator(tmp_path / "copy", device="cpu")
    assert (gen.num_steps, gen.guidance, gen.chunk_frames, gen.pipeline.transformer.dtype) == (5, 0.0, 17, torch.float32)
    # The defaults as changed on the pipeline are what is saved.
    again.sampling_defaults = {"num_steps": 3}
    again.save_pretrained(tmp_path / "three")
    assert Gen3cPipeline.from_pretrained(tmp_path / "three").sampling_defaults == {"num_steps": 3}


def test_pipeline_from_pretrained_samples_a_student_with_its_own_steps():
    """diffusers' entry point too: ``Gen3cPipeline.from_pretrained(student)(...)`` runs the
    student's 5 steps without guidance unless told otherwise; a teacher keeps GEN3C's defaults."""
    from gen3c.models.packaged import packaged_model_dir, packaged_model_info
    from gen3c.pipelines.gen3c import Gen3cPipeline

    student = Gen3cPipeline.from_pretrained(packaged_model_dir("tiny_fast"))
    assert student.sampling_defaults == {"num_steps": 5, "guidance": 0.0}
    assert Gen3cPipeline.from_pretrained(packaged_model_dir("tiny")).sampling_defaults == {}
    h, w = packaged_model_info("tiny_fast")["resolution"]
    colors, masks = torch.rand(17, 1, 3, h, w) * 2 - 1, torch.ones(17, 1, 1, h, w)
    calls = []
    handle = student.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    student(colors[0, 0], colors, masks, output_type="latent")
    assert len(calls) == 5  # 5 steps × 1 forward
    calls.clear()
    student(colors[0, 0], colors, masks, num_steps=2, guidance=1.0, output_type="latent")
    handle.remove()
    assert len(calls) == 4  # told: 2 steps × 2 forwards


def test_a_student_sampled_otherwise_than_it_was_distilled_is_noted():
    """A distilled student learnt Euler steps on its own grid, one forward each with guidance
    absorbed. Before: ``--num_steps 35``, ``--guidance 1`` or ``--sampler dpmpp_2m`` on ``tiny_fast``
    ran without a word, on a grid (or with guidance on top) it never learnt. Now each is said in a
    note (allowed: a sweep over step counts is a fair experiment); its own settings, and a teacher
    at a few steps (the speed presets), say nothing."""
    from gen3c.errors import quoted_path
    from gen3c.models.packaged import packaged_model_dir
    from gen3c.pipelines.gen3c import Gen3cPipeline
    from gen3c.schedulers import make_scheduler

    student = Gen3cPipeline.from_pretrained(packaged_model_dir("tiny_fast"))
    colors, masks = torch.rand(9, 1, 3, 32, 48) * 2 - 1, torch.ones(9, 1, 1, 32, 48)  # (small: the notes come before sampling)

    def notes_of(pipe, **options) -> list[str]:
        with collect_notes() as said:
            pipe(colors[0, 0], colors, masks, output_type="latent", **options)
        return [n for n in said if "distilled student" in n]

    assert notes_of(student) == []
    student_is = (f"model {quoted_path(packaged_model_dir('tiny_fast'))} is a distilled student, trained to sample with 5 euler steps "
                  "and guidance 0 (its gen3c_model.json)")  # fmt: skip
    assert notes_of(student, num_steps=1) == [f"--num_steps 1: {student_is}, so its videos may be worse than with its own: it never "
                                              "learnt this setting; drop it to sample as it was distilled"]  # fmt: skip
    assert notes_of(student, guidance=1.0)[0].startswith(f"--guidance 1: {student_is}")
    student.scheduler = make_scheduler("dpmpp_2m", student.scheduler.config)
    assert notes_of(student, num_steps=1)[0].startswith(f"--num_steps 1 and --sampler dpmpp_2m: {student_is}")
    assert notes_of(Gen3cPipeline.from_pretrained(packaged_model_dir("tiny")), num_steps=1, guidance=0.0) == []


def test_the_note_on_a_student_sampled_otherwise_names_which_student(tmp_path):
    """`gen3c eval --compare_models` runs several models, two students among them at times, and
    `--sampler` reaches each: the note said "this model is a distilled student" for each, naming
    none. Now it names the student's folder, as its run record's checkpoint does."""
    import shutil

    from gen3c.errors import quoted_path
    from gen3c.models.packaged import packaged_model_dir
    from gen3c.pipelines.gen3c import Gen3cPipeline

    shutil.copytree(packaged_model_dir("tiny_fast"), tmp_path / "other_student")
    colors, masks = torch.rand(9, 1, 3, 32, 48) * 2 - 1, torch.ones(9, 1, 1, 32, 48)
    for folder in (packaged_model_dir("tiny_fast"), tmp_path / "other_student"):
        with collect_notes() as said:
            Gen3cPipeline.from_pretrained(folder)(colors[0, 0], colors, masks, output_type="latent", num_steps=2)
        assert [n for n in said if "distilled student" in n] == [
            f"--num_steps 2: model {quoted_path(folder)} is a distilled student, trained to sample with 5 euler steps and guidance 0 "
            "(its gen3c_model.json), so its videos may be worse than with its own: it never learnt this setting; drop it to sample as it "
            "was distilled"
        ], said


def test_a_student_of_a_student_records_its_teachers_weights_and_whole_lineage(tmp_path):
    """A student's gen3c_model.json names its teacher as model.checkpoint does. Before: by that
    name only (``tiny``, or a folder trained again since: other weights under one name), and a
    student of ``tiny_fast`` listed only its own halving, as if distilled from an unguided 5-step
    model, the guidance and the stages its teacher absorbed lost. Now it records the teacher's
    transformer weights by sha256 and the whole lineage, which the model card states."""
    from gen3c.io.hashing import sha256_file
    from gen3c.models.packaged import packaged_model_dir, packaged_model_info

    distill = {"guidance": 0.0, "guidance_stage": False, "teacher_steps": 5, "student_steps": [3]}
    cfg = distill_config("tiny_fast", run={"max_steps": 1}, data={"num_clips": 2}, distill=distill)
    train(config_from_dict(cfg), tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "model" / "gen3c_model.json").read_text())
    weights = packaged_model_dir("tiny_fast") / "transformer" / "diffusion_pytorch_model.safetensors"
    assert meta["teacher"] == "tiny_fast" and meta["teacher_sha256"] == {weights.name: sha256_file(weights)}
    lineage = packaged_model_info("tiny_fast")["distilled"]
    assert meta["distilled"] == [*lineage, "progressive distillation: 5 steps × 1 forward → 3 × 1"]
    stage = json.loads((tmp_path / "out" / "stages" / "0_5to3steps" / "gen3c_model.json").read_text())
    assert stage["distilled"] == meta["distilled"] and stage["teacher_sha256"] == meta["teacher_sha256"]  # a stage's student too
    card = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    assert f"(transformer {weights.name} sha256 `{sha256_file(weights)}`)" in card
    assert f"guidance 0 (1 DiT forward per step); itself a distilled student ({'; '.join(lineage)})." in card
    # The shipped student records the shipped teacher it was distilled from (tiny retrained would need tiny_fast again).
    taught_by = packaged_model_dir("tiny") / "transformer" / "diffusion_pytorch_model.safetensors"
    assert packaged_model_info("tiny_fast")["teacher_sha256"] == {taught_by.name: sha256_file(taught_by)}


def test_latents_of_a_run_that_recorded_relative_folders_are_kept(tmp_path, pipe, teacher_checkpoint, monkeypatch):
    """OUT/latents.safetensors is keyed by data.paths as config.json records them: a run that
    recorded them relative (before a config file's folders were made absolute) made and encoded
    every clip again when resumed with the same folders spelled absolute."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from gen3c.training.distill_loop import LATENTS_FILE, _latents_key, cached_latents

    (tmp_path / "data" / "batch_0000").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)

    def config(path: str):
        cfg = distill_config(teacher_checkpoint, data={"kind": "sample", "paths": [path]})
        del cfg["data"]["num_clips"]
        return config_from_dict(cfg)

    old, now = config("data/batch_0000"), config(str(tmp_path / "data" / "batch_0000"))
    out = tmp_path / "run"
    out.mkdir()
    x0, buffers = torch.randn(3, 16, T_LAT, 4, 6), torch.randn(3, 64, T_LAT, 4, 6)
    save_file({"x0": x0, "buffers": buffers}, str(out / LATENTS_FILE), metadata={"key": _latents_key(old, pipe.vae)})

    class Accelerator:  # the part cached_latents uses, one process
        is_main_process, device = True, torch.device("cpu")

        def wait_for_everyone(self) -> None:
            pass

    class NoClips:  # the clips are not made again
        def __len__(self) -> int:
            raise AssertionError("the clips were made and encoded again")

    got = cached_latents(now, NoClips(), pipe.vae, 0.5, out, Accelerator(), None, recorded_paths=old.data.paths)
    torch.testing.assert_close(got, (x0, buffers))
    with safe_open(str(out / LATENTS_FILE), "pt") as f:  # keyed by the spelling config.json records now
        assert f.metadata()["key"] == _latents_key(now, pipe.vae)
    torch.testing.assert_close(load_file(str(out / LATENTS_FILE))["buffers"], buffers)
    # Other folders are other clips.
    (tmp_path / "elsewhere").mkdir()
    save_file({"x0": x0, "buffers": buffers}, str(out / LATENTS_FILE), metadata={"key": _latents_key(config("elsewhere"), pipe.vae)})
    with pytest.raises(AssertionError, match="made and encoded again"):
        cached_latents(now, NoClips(), pipe.vae, 0.5, out, Accelerator(), None, recorded_paths=["elsewhere"])


@pytest.mark.parametrize("mode", ["distill", "full"])
@pytest.mark.parametrize(
    ("data", "message"),
    [pytest.param({"resolution": [144, 48]}, r"data.resolution = \[144, 48\] is larger than the model of model.checkpoint .* \(\[128, 128\] at most\)", id="size"),
     pytest.param({"num_frames": 65}, r"data.num_frames = 65 is more than the model of model.checkpoint .* \(57 at most per clip\)", id="frames")],
)  # fmt: skip
def test_clips_the_teacher_cannot_take_are_refused_before_the_run(tmp_path, teacher_checkpoint, mode, data, message):
    """The tiny DiT's position embeddings reach 128×128 and 8 latent frames. Before: the run made
    and encoded every clip, wrote the output folder, then ended in a raw RuntimeError (tensor sizes)."""
    cfg = distill_config(teacher_checkpoint, data=data)
    if mode == "full":
        cfg["train"]["mode"] = "full"
        del cfg["distill"]
    with pytest.raises(Gen3cInputError, match=message):
        train(config_from_dict(cfg), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("distill", "message"),
    [pytest.param({}, r"distill.guidance = 1: model.checkpoint 'tiny_fast' is a distilled student \(5 steps, guidance absorbed\)", id="guided"),
     pytest.param({"guidance": 0.0, "guidance_stage": False, "teacher_steps": 9, "student_steps": [5]},
                  r"distill.teacher_steps = 9: .* trained on its 5-step grid only: set distill.teacher_steps = 5", id="grid")],
)  # fmt: skip
def test_a_distilled_student_as_teacher_needs_its_own_steps_and_no_guidance(tmp_path, distill, message):
    """Before: distilling ``tiny_fast`` (5 steps, guidance absorbed) again ran with guidance 1 on a
    grid it never learnt: a meaningless student, written as if it were fine."""
    with pytest.raises(Gen3cInputError, match=message):
        train(config_from_dict(distill_config("tiny_fast", distill=distill)), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    from gen3c.models.packaged import packaged_model_info
    from gen3c.training.distill import check_teacher

    ok = config_from_dict(distill_config("tiny_fast", distill={"guidance": 0.0, "guidance_stage": False, "teacher_steps": 5, "student_steps": [3]}))
    check_teacher(ok.distill, packaged_model_info("tiny_fast"), "tiny_fast")  # a further halving of the student: fine
    check_teacher(config_from_dict(distill_config("tiny")).distill, packaged_model_info("tiny"), "tiny")  # an ordinary teacher


@pytest.mark.slow
def test_a_student_keeps_its_teachers_sampling_grid(tmp_path):
    """The student learns on the grid of the teacher's scheduler; before, model/ and stages/
    were written with GEN3C's default scheduler, so a teacher of another σ range gave a student
    sampled by default on σs it never learnt."""
    from diffusers import EDMEulerScheduler

    from gen3c.pipelines.gen3c import Gen3cPipeline

    teacher = tiny_pipeline(seed=0)
    teacher.scheduler = EDMEulerScheduler(**{**configs.SCHEDULER_GEN3C, "sigma_max": 40.0, "sigma_min": 0.002})
    teacher.save_pretrained(tmp_path / "teacher")
    cfg = distill_config(tmp_path / "teacher", run={"max_steps": 1}, distill={"teacher_steps": 5, "student_steps": []})
    result = train(config_from_dict(cfg), tmp_path / "out")
    student = Gen3cPipeline.from_pretrained(result.exported)
    assert student.sampling_defaults == {"num_steps": 5, "guidance": 0.0}
    torch.testing.assert_close(sampler_sigmas(student.scheduler, 5), sampler_sigmas(teacher.scheduler, 5), rtol=0, atol=0)
    assert float(sampler_sigmas(student.scheduler, 5)[0]) == pytest.approx(40.0)


@pytest.mark.parametrize(
    ("inside", "message"),
    [pytest.param("model/model_index.json", r"it holds a training run: set model.checkpoint to its model, '.*/run/model'", id="run"),
     pytest.param("gen3c_lora.json", r"it is a LoRA adapter .* set model.checkpoint to the model it adapts", id="lora"),
     pytest.param("notes.txt", r"convert GEN3C's weights with `gen3c convert CHECKPOINTS_DIR OUT_DIR` and set model.checkpoint to OUT_DIR", id="other")],
)  # fmt: skip
def test_a_teacher_folder_that_is_no_model_is_named_as_the_config_key(tmp_path, inside, message):
    """Before: "leave out --checkpoint_dir and gen3c fetches GEN3C's weights", advice for `gen3c
    generate`, for a run folder (OUT instead of OUT/model) or a LoRA adapter set as model.checkpoint."""
    (tmp_path / "run" / inside).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "run" / inside).write_text("{}")
    with pytest.raises(Gen3cInputError, match=r"^model.checkpoint '.*/run' is not a gen3c checkpoint folder \(no model_index.json\): " + message):
        train(config_from_dict(distill_config(tmp_path / "run")), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_teacher_without_a_prompt_cache_is_refused_naming_the_config_key(tmp_path):
    """It said "checkpoint '…'", which gen3c train has no setting of: the config's key is model.checkpoint."""
    pipe = tiny_pipeline(seed=0)
    pipe.register_modules(prompt_cache=None)
    teacher = tmp_path / "teacher"
    pipe.save_pretrained(teacher)
    (teacher / "gen3c_model.json").write_text(json.dumps({"chunk_frames": 9, "resolution": [H, W], "dtype": "float32"}))
    with pytest.raises(Gen3cInputError) as refused:
        train(config_from_dict(distill_config(teacher)), tmp_path / "run")
    assert str(refused.value) == f"model.checkpoint {str(teacher)!r} has no prompt cache (prompt_cache/): convert it again with `gen3c convert`"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("refusal", ["no_prompt_cache", "no_negative_prompt"])
def test_a_refused_distillation_says_no_note_before_its_refusal(refusal, tmp_path, monkeypatch):
    """The notes of data.num_workers and train.lr came before distillation's own checks, so a run
    then refused (a teacher without a prompt cache, or without the negative prompt guidance needs)
    printed them above its one line; so did the note of clips of another size or chunk than the
    teacher's gen3c_model.json states."""
    import os

    from gen3c.models.prompt_cache import PromptEmbeddingCache

    pipe = tiny_pipeline(seed=0)
    cache = None if refusal == "no_prompt_cache" else PromptEmbeddingCache.from_embeddings({"": pipe.prompt_cache.lookup("")[0]})
    pipe.register_modules(prompt_cache=cache)
    teacher = tmp_path / "teacher"
    pipe.save_pretrained(teacher)
    info = {"chunk_frames": 17, "resolution": [2 * H, 2 * W], "dtype": "float32"}  # not the clips' 9 frames of H × W
    (teacher / "gen3c_model.json").write_text(json.dumps(info))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    config = config_from_dict(distill_config(teacher, data={"num_workers": 2, "cache_clips": False}, train={"lr": 5.0}))
    match = "has no prompt cache" if refusal == "no_prompt_cache" else "lacks GEN3C's negative prompt"
    with collect_notes() as notes, pytest.raises(Gen3cInputError, match=match):
        train(config, tmp_path / "run")
    assert notes == []


@pytest.mark.slow
def test_a_teacher_without_the_negative_prompt_is_refused_where_guidance_needs_it(tmp_path):
    """A teacher whose prompt cache lacked GEN3C's negative prompt was guided with the empty prompt
    in its unconditional branch, silently: the student learnt another guidance than GEN3C's."""
    from gen3c.models.prompt_cache import PromptEmbeddingCache

    pipe = tiny_pipeline(seed=0)
    pipe.register_modules(prompt_cache=PromptEmbeddingCache.from_embeddings({"": pipe.prompt_cache.lookup("")[0]}))
    teacher = tmp_path / "teacher"
    pipe.save_pretrained(teacher)
    (teacher / "gen3c_model.json").write_text(json.dumps({"chunk_frames": 9, "resolution": [H, W], "dtype": "float32"}))
    out = tmp_path / "run"
    with pytest.raises(Gen3cInputError) as refused:
        train(config_from_dict(distill_config(teacher)), out)
    assert str(refused.value) == (
        f"the teacher's prompt cache {str(teacher / 'prompt_cache')!r} lacks GEN3C's negative prompt, the unconditional branch of "
        "distill.guidance = 1: convert the checkpoint again with `gen3c convert` (it caches the empty and the negative prompt)"
    )
    assert not out.exists()
    # Without guidance the teacher has no unconditional branch: the run goes on.
    unguided = distill_config(teacher, distill={"guidance": 0.0, "guidance_stage": False}, run={"max_steps": 1})
    assert train(config_from_dict(unguided), out).steps == 1


@pytest.mark.slow
def test_a_resumed_run_whose_teaching_stage_is_gone_says_so(tmp_path, teacher_checkpoint):
    """Before: a raw OSError from diffusers when OUT/stages/<previous stage>/ was deleted."""
    import shutil

    config = config_from_dict(distill_config(teacher_checkpoint))
    train(config, tmp_path / "run", stop_after=3)  # inside the second stage
    shutil.rmtree(tmp_path / "run" / "stages" / "0_guidance_5steps")
    with pytest.raises(Gen3cInputError, match=r"^--resume: '.*0_guidance_5steps', the student of stage 0 that teaches stage 1, is missing"):
        train(config, tmp_path / "run", resume="auto")
    # Continued in a new --out, which takes the finished stages' students from the run: it had
    # none to take. Before: it named the new --out's folder and said to "start a new --out".
    checkpoint = sorted((tmp_path / "run" / "checkpoints").glob("step_*"))[-1]
    with pytest.raises(Gen3cInputError) as caught:
        train(config, tmp_path / "new", resume=str(checkpoint))
    assert str(caught.value) == (
        f"--resume: {str(tmp_path / 'run' / 'stages' / '0_guidance_5steps')!r}, the student of stage 0 that teaches stage 1, is missing "
        f"or incomplete in the run the checkpoint comes from: restore it there (or in {str(tmp_path / 'new' / 'stages' / '0_guidance_5steps')!r}), "
        "or start over without --resume"
    )
    assert not (tmp_path / "new").exists()  # refused before it is written to


def test_a_resumed_distillation_may_lower_the_lr_and_its_card_says_so(tmp_path, teacher_checkpoint):
    """The divergence advice (lower train.lr and --resume) was refused as a config change; a
    distillation's resumed steps now take the new LR and its card states the change."""
    cfg = distill_config(teacher_checkpoint, distill={"student_steps": []})  # one stage of 2 steps
    out = tmp_path / "run"
    train(config_from_dict(cfg), out, stop_after=1)
    said: list[str] = []
    train(config_from_dict({**cfg, "train": {**cfg["train"], "lr": 5e-4}}), out, resume="auto", echo=said.append)
    assert [json.loads(line)["lr"] for line in (out / "losses.jsonl").read_text().splitlines()] == [1e-3, 5e-4]
    assert said[0].startswith("--resume: train.lr 0.001 → 0.0005 from step 2; ")
    assert "- **Changed on resume**: train.lr 0.001 → 0.0005 from step 2." in (out / "MODEL_CARD.md").read_text()


def test_a_distillation_card_states_no_change_that_no_step_used(tmp_path, teacher_checkpoint):
    """A resume that lowered train.lr and run.max_steps to the step reached ran no step, yet the
    card said "train.lr 0.001 → 0.0005 from step 2" (and lr 0.0005) with the stage's 1 step."""
    cfg = distill_config(teacher_checkpoint, distill={"student_steps": []})  # one stage of 2 steps
    out = tmp_path / "run"
    train(config_from_dict(cfg), out, stop_after=1)
    assert train(config_from_dict({**cfg, "train": {**cfg["train"], "lr": 5e-4}, "run": {**cfg["run"], "max_steps": 1}}), out, resume="auto").steps == 1
    card = (out / "MODEL_CARD.md").read_text()
    assert "Changed on resume" not in card and "AdamW lr 0.001 (" in card
    made = r"^- \*\*Made\*\*: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC with gen3c .+ \(code sha256 [0-9a-f]{12}\), torch .+\.$"
    assert re.search(made, card, re.M), card


@pytest.mark.slow
def test_a_run_stopped_in_a_later_stage_resumes_from_the_checkpoint_of_the_stage_before(tmp_path, distilled, box_scene, monkeypatch):
    """No checkpoint was written at a stage's end: Ctrl-C in stage 1 (log.checkpoint_every = 0)
    left nothing to resume, and --resume auto trained stage 0 again from step 0. Now each stage's
    end writes one (the next stage's start: fresh optimiser, the student as the weights), the
    resumed run trains stage 1 only and ends with the uninterrupted run's student; the stage's
    student samples from the CLI with its own steps."""
    from safetensors.torch import load_file

    import gen3c.training.distill_loop as distill_loop
    from gen3c.pipelines.loading import generator_from_options

    whole_out, cfg = distilled
    config = config_from_dict({**cfg, "log": {**cfg["log"], "sample_every": -1}})
    out = tmp_path / "run"
    step = distill_loop._optimizer_step
    calls = []

    def stopped_in_stage_1(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # stage 1's first step
            raise KeyboardInterrupt
        return step(*args, **kwargs)

    said = []
    with monkeypatch.context() as patch:
        patch.setattr(distill_loop, "_optimizer_step", stopped_in_stage_1)
        with pytest.raises(KeyboardInterrupt, match=r"^stopped; the newest checkpoint is '.*step_0000002': continue with --resume auto"):
            train(config, out, echo=said.append)
    assert said[-1] == (f"stage 0 done: its 5-step student is {str(out / 'stages' / '0_guidance_5steps')!r} (a checkpoint folder: "
                        "--checkpoint_dir); checkpoints/step_0000002 resumes at stage 1")  # fmt: skip
    saved = torch.load(out / "checkpoints" / "step_0000002" / "custom_checkpoint_0.pkl", weights_only=True)
    assert saved == {"step": 2, "stage": 1, "stage_step": 0, "stage_seconds": 0.0}
    stage_0 = out / "stages" / "0_guidance_5steps"
    assert not list((out / "checkpoints").glob(".*"))

    student = generator_from_options({"checkpoint_dir": str(stage_0), "device": "cpu"})
    assert (student.num_steps, student.guidance) == (5, 0.0)  # the stage's student, as the stage ended
    image_path, depth_path, _, _ = box_scene
    res = runner.invoke(app, ["generate", "--generator", "gen3c", "--checkpoint_dir", str(stage_0), "--input_image_path", str(image_path),
                              "--depth_path", str(depth_path), "--fov", "60", "--resolution", f"{H}x{W}", "--num_video_frames", "9",
                              "--video_save_folder", str(tmp_path / "video")])  # fmt: skip
    assert res.exit_code == 0, res.output

    bars = []
    resumed = train(config, out, resume="auto", progress=lambda label, total: bars.append([label, total]) or (lambda n=1: None))
    assert resumed.steps == 4 and bars == [["Stage 1: halving, 5→3 steps", 2]]  # stage 0 is not trained again
    whole = [json.loads(line)["loss"] for line in (whole_out / "losses.jsonl").read_text().splitlines()]
    rows = [json.loads(line)["loss"] for line in (out / "losses.jsonl").read_text().splitlines()]
    torch.testing.assert_close(torch.tensor(rows), torch.tensor(whole), rtol=1e-5, atol=1e-7)
    a = load_file(whole_out / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    b = load_file(out / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert "| 0_guidance_5steps | " in (out / "MODEL_CARD.md").read_text()


@pytest.mark.slow
def test_another_runs_checkpoint_in_a_later_stage_continues_in_a_new_out(tmp_path, distilled):
    """--resume OTHER/checkpoints/step_N --out NEW (a run continued elsewhere, as docs/training.md
    allows) inside stage 1 was refused: NEW/stages/ lacked stage 0's student, its teacher, and the
    message said to "start a new --out", which it was. Now the finished stages' students come along."""
    from safetensors.torch import load_file

    whole_out, cfg = distilled
    config = config_from_dict({**cfg, "log": {**cfg["log"], "sample_every": -1}})
    first = train(config, tmp_path / "a", stop_after=3)  # inside stage 1
    said = []
    second = train(config, tmp_path / "b", resume=str(first.checkpoint), echo=said.append)
    assert second.steps == 4 and second.exported == tmp_path / "b" / "model"
    assert said[0] == (f"--resume: the students of the finished stages (0_guidance_5steps) are copied from "
                       f"{str(tmp_path / 'a' / 'stages')!r} into {str(tmp_path / 'b' / 'stages')!r}")  # fmt: skip
    a = load_file(whole_out / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "b" / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert "| 0_guidance_5steps | " in (tmp_path / "b" / "MODEL_CARD.md").read_text()


def test_the_stop_message_of_a_distillation_names_its_stage_end_checkpoints(tmp_path, teacher_checkpoint):
    """Stopped in its first stage, a distillation said "log.checkpoint_every = 0 writes one at the
    end only", but each stage's end writes one."""
    from gen3c.training.loop import stopped_message

    config = config_from_dict(distill_config(teacher_checkpoint))
    assert stopped_message(config, tmp_path / "run") == (
        "stopped before the first checkpoint (log.checkpoint_every = 0 writes one at each stage's end only: set it to make a long "
        "stage resumable): nothing to resume; the same command starts it again from step 0")  # fmt: skip


@pytest.mark.slow
def test_a_larger_budget_on_resume_says_a_finished_stage_is_not_trained_again(tmp_path, teacher_checkpoint):
    """run.max_steps raised on resume after stage 0 had ended changed stage 1 only, without a word:
    the user who wanted stage 0 longer got a run that looked as asked."""
    cfg = distill_config(teacher_checkpoint)
    out = tmp_path / "run"
    assert train(config_from_dict(cfg), out, stop_after=2).steps == 2  # stage 0's end
    said = []
    longer = train(config_from_dict({**cfg, "run": {"max_steps": 3}}), out, resume="auto", echo=said.append)
    assert said[0] == "--resume: run.max_steps 2 → 3 applies to the stages not yet finished; 0_guidance_5steps is finished and not trained again"
    assert longer.steps == 5 and [s["steps"] for s in (json.loads((out / "stages" / n / "gen3c_model.json").read_text())["distill_stage"]
                                                       for n in ("0_guidance_5steps", "1_5to3steps"))] == [2, 3]  # fmt: skip


@pytest.mark.slow
def test_a_resume_may_change_the_budgets_of_the_stages_not_yet_finished(tmp_path, teacher_checkpoint):
    """distill.stage_max_steps was refused as any change of the run's config on --resume: a run
    could not be given more steps for its running stage. Now the running and later stages' entries
    may change (the running stage goes on to its new budget, or ends where it is past it); a
    finished stage's entry is refused before config.json records it."""
    cfg = distill_config(teacher_checkpoint, run={}, distill={"stage_max_steps": [2, 2]})
    cfg["run"].pop("max_steps")
    out = tmp_path / "run"
    assert train(config_from_dict(cfg), out, stop_after=3).steps == 3  # one step into stage 1
    recorded = (out / "config.json").read_text()

    def budgets(steps):
        return config_from_dict({**cfg, "distill": {**cfg["distill"], "stage_max_steps": steps}})

    checkpoint = out / "checkpoints" / "step_0000003"
    with pytest.raises(Gen3cInputError) as refused:
        train(budgets([3, 4]), out, resume="auto")
    assert str(refused.value) == (
        f"--resume: distill.stage_max_steps[0] = 3 changes stage 0_guidance_5steps, which the checkpoint {str(checkpoint)!r} has "
        "finished with 2 (its student is written and taught the stages after it; it is not trained again): keep 2 (change only "
        "the entries from stage 1 on), or start over in a new --out"
    )
    assert (out / "config.json").read_text() == recorded
    said = []
    longer = train(budgets([2, 4]), out, resume="auto", stop_after=2, echo=said.append)  # stage 1 runs on to its new 4 steps
    assert longer.steps == 5 and longer.exported is None
    said.clear()
    lowered = train(budgets([2, 1]), out, resume="auto", echo=said.append)  # 3 steps done: the stage ends
    assert "stage 1: 3 steps done, distill.stage_max_steps[1] = 1: nothing left to train, the stage ends" in said
    assert lowered.steps == 5 and lowered.exported == out / "model"
    rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert [(r["step"], r["stage"]) for r in rows] == [(1, 0), (2, 0), (3, 1), (4, 1), (5, 1)]
    with pytest.raises(Gen3cInputError, match=r"stage_max_steps\[1\] = 2 changes stage 1_5to3steps, .* keep 1 \(every stage is finished\)"):
        train(budgets([2, 2]), out, resume="auto")


@pytest.mark.slow
def test_a_stage_start_checkpoint_takes_the_students_weights_from_the_written_student(tmp_path, teacher_checkpoint):
    """A stage's end wrote its student to stages/ and the same weights again into its checkpoint
    (twice with an EMA): 3 copies of a 7B student per stage. Now the checkpoint records the
    student's file by path and sha256; a resume from it repeats the uninterrupted run (the next
    stage starts from the student as written, here in bfloat16), and refuses a changed or missing file."""
    import shutil

    from safetensors.torch import load_file, save_file

    cfg = distill_config(teacher_checkpoint, model={"export_dtype": "bfloat16"}, train={"ema_decay": 0.5})
    config = config_from_dict(cfg)
    whole = train(config, tmp_path / "whole")
    out = tmp_path / "run"
    assert train(config, out, stop_after=2).steps == 2  # stage 0's end
    checkpoint = out / "checkpoints" / "step_0000002"
    assert not list(checkpoint.glob("*.safetensors")), sorted(p.name for p in checkpoint.iterdir())  # no weights, no EMA
    student = out / "stages" / "0_guidance_5steps" / "transformer" / "diffusion_pytorch_model.safetensors"
    record = json.loads((checkpoint / "student.json").read_text())
    assert record["folder"] == "stages/0_guidance_5steps/transformer" and list(record["sha256"]) == [student.name]

    for damage, problem in (("changed", "has changed since (its sha256 is not the one recorded)"), ("missing", "is missing")):
        copy = shutil.copytree(out, tmp_path / damage)
        target = copy / student.relative_to(out)
        if damage == "changed":
            save_file({k: v + 1 for k, v in load_file(target).items()}, str(target))
        else:
            target.unlink()
        with pytest.raises(Gen3cInputError) as refused:
            train(config, copy, resume="auto")
        assert str(refused.value) == (
            f"--resume: checkpoint {str(copy / 'checkpoints' / 'step_0000002')!r} holds no copy of the student's weights, which are "
            f"{str(target)!r} (the student of stage 0_guidance_5steps), and that file {problem}: restore the stage's student as it "
            "was written, or resume from an earlier checkpoint"
        )

    resumed = train(config, out, resume="auto")
    assert resumed.steps == 4
    torch.testing.assert_close(torch.tensor(resumed.losses), torch.tensor(whole.losses[2:]), rtol=0, atol=0)
    a = load_file(tmp_path / "whole" / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    b = load_file(out / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(a[key], b[key]) for key in a)


@pytest.mark.slow
def test_a_run_stopped_between_a_stages_student_and_its_checkpoint_does_not_train_the_stage_again(tmp_path, distilled, monkeypatch):
    """Ctrl-C after a stage's student was written but before its checkpoint: --resume auto went
    back to the checkpoint before (here step 1) and trained the stage's tail again (with
    log.checkpoint_every = 0: the whole stage). Now the student's record (its end step and the
    losses up to it) is found: the checkpoint of the stage's end is written, and the run goes on
    with the next stage, ending as the uninterrupted run does."""
    import shutil

    from safetensors.torch import load_file
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import gen3c.training.distill_loop as distill_loop

    whole_out, cfg = distilled
    config = config_from_dict({**cfg, "log": {**cfg["log"], "sample_every": -1, "checkpoint_every": 1}})
    out = tmp_path / "run"
    save = distill_loop._save_checkpoint

    def stopped_at_the_stage_end(accelerator, folder, step, keep):
        if step == 2:
            raise KeyboardInterrupt
        return save(accelerator, folder, step, keep)

    with monkeypatch.context() as patch:
        patch.setattr(distill_loop, "_save_checkpoint", stopped_at_the_stage_end)
        with pytest.raises(KeyboardInterrupt):
            train(config, out)
    assert [p.name for p in (out / "checkpoints").glob("step_*")] == ["step_0000001"] and (out / "stages" / "0_guidance_5steps").is_dir()
    # A larger budget on resume: the stage was not over as the user now asks, and runs on to it.
    longer = shutil.copytree(out, tmp_path / "longer")
    train(config_from_dict({**cfg, "run": {"max_steps": 3}, "log": {**cfg["log"], "sample_every": -1}}), longer, resume="auto")
    assert [json.loads(line)["stage"] for line in (longer / "losses.jsonl").read_text().splitlines()] == [0, 0, 0, 1, 1, 1]

    said, bars = [], []
    resumed = train(config, out, resume="auto", echo=said.append, progress=lambda label, total: bars.append([label, total]) or (lambda n=1: None))
    assert said[0] == (f"--resume: stage 0 had ended at step 2 (its student {str(out / 'stages' / '0_guidance_5steps')!r}) before the run "
                       "was stopped: checkpoints/step_0000002 is written now, and the run goes on from there")  # fmt: skip
    assert resumed.steps == 4 and bars == [["Stage 1: halving, 5→3 steps", 2]]  # stage 0 is not trained again
    rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    whole = [json.loads(line) for line in (whole_out / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    torch.testing.assert_close(torch.tensor([r["loss"] for r in rows]), torch.tensor([r["loss"] for r in whole]), rtol=1e-5, atol=1e-7)
    a = load_file(whole_out / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    b = load_file(out / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    logs = EventAccumulator(str(out / "logs"))  # the stage's tail, purged as steps past the checkpoint, is logged again
    logs.Reload()
    assert [e.step for e in logs.Scalars("distill/loss")] == [1, 2, 3, 4] and [e.step for e in logs.Scalars("distill/stage_0")] == [1, 2]


@pytest.mark.slow
def test_a_changed_stage_budget_under_the_cosine_schedule_is_stated_in_the_card(tmp_path, teacher_checkpoint):
    """Under the cosine schedule a stage's budget is where its LR reaches 0: a changed
    distill.stage_max_steps reshapes the LR of the steps left, and the card says so, as it says a
    changed run.max_steps."""
    cfg = distill_config(teacher_checkpoint, run={}, train={"lr_schedule": "cosine", "warmup_steps": 0}, distill={"stage_max_steps": [2, 2]})
    cfg["run"].pop("max_steps")
    out = tmp_path / "run"
    train(config_from_dict(cfg), out, stop_after=3)
    train(config_from_dict({**cfg, "distill": {**cfg["distill"], "stage_max_steps": [2, 3]}}), out, resume="auto")
    lrs = [json.loads(line)["lr"] for line in (out / "losses.jsonl").read_text().splitlines()]
    assert lrs[2:] == pytest.approx([1e-3, 1e-3 * 0.75, 1e-3 * 0.25])  # stage 1's cosine over 3 steps from its step 0
    assert "- **Changed on resume**: distill.stage_max_steps [2, 2] → [2, 3] from step 4." in (out / "MODEL_CARD.md").read_text()


@pytest.mark.slow
def test_a_stage_start_checkpoint_set_aside_by_a_rewind_resumes_with_its_set_aside_student(tmp_path, teacher_checkpoint):
    """A rewind (here with a lower train.lr) sets aside the later checkpoints and the stage's
    student, and writes the stage's student of its own history. Resuming the set-aside stage-start
    checkpoint was refused: its student.json named stages/<stage>, which the rewind had replaced
    (or, stopped sooner, left missing). Now the student of its history is found in superseded/ and
    moved back, and the run repeats the uninterrupted one."""
    from safetensors.torch import load_file

    cfg = distill_config(teacher_checkpoint, log={"checkpoint_every": 1, "keep_checkpoints": 10})
    config = config_from_dict(cfg)
    whole = train(config, tmp_path / "whole")
    out = tmp_path / "run"
    assert train(config, out, stop_after=3).steps == 3
    lower = config_from_dict({**cfg, "train": {**cfg["train"], "lr": 5e-4}})
    assert train(lower, out, resume=str(out / "checkpoints" / "step_0000001"), stop_after=1).steps == 2  # another stage 0 student
    aside = out / "checkpoints" / "superseded"
    assert (aside / "stages" / "0_guidance_5steps").is_dir() and (aside / "step_0000002" / "student.json").is_file()
    # Continued in a new --out: the set-aside student is the one copied (it took the rewind's).
    said: list[str] = []
    elsewhere = train(config, tmp_path / "new", resume=str(aside / "step_0000002"), echo=said.append)
    torch.testing.assert_close(torch.tensor(elsewhere.losses), torch.tensor(whole.losses[2:]), rtol=0, atol=0)
    assert said[0] == (f"--resume: the students of the finished stages (0_guidance_5steps) are copied from {str(aside / 'stages')!r} "
                       f"into {str(tmp_path / 'new' / 'stages')!r}")  # fmt: skip
    said.clear()
    resumed = train(config, out, resume=str(aside / "step_0000002"), echo=said.append)
    assert resumed.steps == 4
    assert (f"--resume: the students of the finished stages (0_guidance_5steps) of checkpoint step_0000002's history are moved back from "
            f"{str(aside / 'stages')!r} into {str(out / 'stages')!r}; those of the history it leaves are set aside as 0_guidance_5steps.earlier1") in said
    torch.testing.assert_close(torch.tensor(resumed.losses), torch.tensor(whole.losses[2:]), rtol=0, atol=0)
    a = load_file(tmp_path / "whole" / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    b = load_file(out / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(a[key], b[key]) for key in a)
    # The rewind's own student of stage 0 is kept aside, not deleted.
    assert (aside / "stages" / "0_guidance_5steps.earlier1" / "transformer" / "config.json").is_file()


@pytest.mark.slow
def test_a_mid_stage_checkpoint_whose_teacher_another_history_replaced_is_refused(tmp_path, teacher_checkpoint):
    """A mid-stage checkpoint records its teacher (the previous stage's student, by sha256). A
    rewind wrote another stage 0 student; with the set-aside one deleted, resuming the set-aside
    step 3 trained stage 1 against the rewind's student without a word. Now refused in one line;
    with the set-aside student there, it is moved back and the run repeats the uninterrupted one."""
    import shutil

    cfg = distill_config(teacher_checkpoint, log={"checkpoint_every": 1, "keep_checkpoints": 10})
    config = config_from_dict(cfg)
    whole = train(config, tmp_path / "whole")
    out = tmp_path / "run"
    train(config, out, stop_after=3)  # step 3: inside stage 1
    assert json.loads((out / "checkpoints" / "step_0000003" / "teacher.json").read_text())["stage"] == "0_guidance_5steps"
    lower = config_from_dict({**cfg, "train": {**cfg["train"], "lr": 5e-4}})
    train(lower, out, resume=str(out / "checkpoints" / "step_0000001"), stop_after=1)  # another stage 0 student
    aside = out / "checkpoints" / "superseded"
    shutil.copytree(aside / "stages", tmp_path / "kept")
    shutil.rmtree(aside / "stages")
    expected = (
        f"--resume: checkpoint {str(aside / 'step_0000003')!r} trains stage 1 against the student of stage 0 its teacher.json "
        f"records (by sha256), and {str(out / 'stages' / '0_guidance_5steps')!r} is another (written by another history of the run), "
        f"nor did a rewind set it aside in {str(aside / 'stages')!r}: restore that student there, or resume from a checkpoint of "
        "the stage's present history (or start over without --resume)"
    )
    for target in (out, tmp_path / "new"):  # in its run, and continued in a new --out (not written to)
        with pytest.raises(Gen3cInputError) as refused:
            train(config, target, resume=str(aside / "step_0000003"))
        assert str(refused.value) == expected
    assert not (tmp_path / "new").exists()
    shutil.copytree(tmp_path / "kept", aside / "stages")
    resumed = train(config, out, resume=str(aside / "step_0000003"))
    torch.testing.assert_close(torch.tensor(resumed.losses), torch.tensor(whole.losses[3:]), rtol=0, atol=0)


@pytest.mark.parametrize("text", ["[1]", '{"stage": 1, "sha256": {}}', '{"stage": "0_guidance_5steps"}', "not json"])
def test_a_damaged_teacher_record_is_no_record(tmp_path, text):
    """A teacher.json that is no record (edited, cut short) counts as none (the checkpoint's
    losses.jsonl then finds the teacher, as for a checkpoint of an older version): no traceback."""
    from gen3c.training.distill_loop import recorded_teacher

    (tmp_path / "teacher.json").write_text(text)
    assert recorded_teacher(tmp_path) is None
    (tmp_path / "teacher.json").write_text('{"stage": "0_guidance_5steps", "sha256": {"a.safetensors": "00"}}')
    assert recorded_teacher(tmp_path) == {"stage": "0_guidance_5steps", "sha256": {"a.safetensors": "00"}}


def test_a_resume_in_the_first_stage_refuses_a_teacher_checkpoint_whose_weights_changed(tmp_path, teacher_checkpoint):
    """The first stage's teacher is model.checkpoint, read again by each invocation. Its weights
    replaced between a stop and the resume (re-converted, or the OUT/model of a run resumed since),
    the stage went on against the new teacher without a word (the loss jumped). Its checkpoints
    now record the teacher's weights by sha256 and the resume is refused in one line, before the
    run folder is written to; the teacher restored, the run goes on."""
    import shutil

    teacher = tmp_path / "teacher"
    shutil.copytree(teacher_checkpoint, teacher)
    config = config_from_dict(distill_config(teacher, distill={"student_steps": []}, log={"checkpoint_every": 1}))  # one stage of 2 steps
    out = tmp_path / "run"
    train(config, out, stop_after=1)
    weights = teacher / "transformer" / "diffusion_pytorch_model.safetensors"
    kept = weights.read_bytes()
    from safetensors.torch import load_file, save_file

    save_file({key: 1.5 * value for key, value in load_file(weights).items()}, weights, metadata={"format": "pt"})
    with pytest.raises(Gen3cInputError) as refused:
        train(config, out, resume="auto")
    assert str(refused.value) == (
        f"--resume: checkpoint {str(out / 'checkpoints' / 'step_0000001')!r} trains stage 0 against the teacher model.checkpoint = "
        f"{str(teacher)!r} as it was then (teacher.json records its weights by sha256), and {str(weights)!r} has other weights now: "
        "restore the teacher as it was, or distil the new one in a new --out without --resume (the steps so far learnt the old one)"
    )
    assert len((out / "losses.jsonl").read_text().splitlines()) == 1
    weights.write_bytes(kept)  # restored: the same weights (the resume goes on, as every other test's)
    from gen3c.training.distill_loop import changed_teacher_checkpoint

    assert changed_teacher_checkpoint(out / "checkpoints" / "step_0000001", teacher, str(teacher)) is None


def test_clips_of_another_size_than_the_teachers_are_said_in_a_note(tmp_path, teacher_checkpoint):
    """A teacher made for 17-frame 64×112 clips distilled on 9-frame 32×48 ones gave a student of
    that size, taught what the teacher makes at a size it never learnt, without a word."""
    import shutil
    import warnings

    teacher = tmp_path / "teacher"
    shutil.copytree(teacher_checkpoint, teacher)
    (teacher / "gen3c_model.json").write_text(json.dumps({"chunk_frames": 17, "resolution": [64, 112], "dtype": "float32"}))
    config = config_from_dict(distill_config(teacher, run={"max_steps": 1}, distill={"student_steps": []}))
    with pytest.warns(UserWarning) as said:
        train(config, tmp_path / "run")
    assert [str(w.message) for w in said if "teacher's" in str(w.message)] == [
        f"data.resolution = [32, 48] is not the teacher's [64, 112] and data.num_frames = 9 is not the teacher's 17 (model.checkpoint "
        f"{str(teacher)!r}, its gen3c_model.json): the student learns what the teacher makes at a size it was not trained for, and "
        "is written as a model of the clips' size; set them to the teacher's to distil the model as it samples"
    ]
    from gen3c.training.distill import note_other_clips

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the teacher's own size and chunk, or none stated: nothing to say
        note_other_clips(config.data, {"chunk_frames": 9, "resolution": [32, 48]}, "t")
        note_other_clips(config.data, {}, "t")
