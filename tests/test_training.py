"""gen3c train at tiny size on the CPU: the objective, buffer dropout, resume, LoRA, the CLI."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
from child_env import child_env
from tiny_model import tiny_components, tiny_pipeline
from typer.testing import CliRunner

from gen3c.cli import app
from gen3c.models import configs
from gen3c.training.config import config_from_dict, load_config, shipped_config
from gen3c.training.loop import loss_ends, train
from gen3c.training.objective import build_model_input, gen3c_loss, loss_weight

runner = CliRunner()
H, W, T_LAT = 32, 48, 2  # latents (B, 16, 2, 4, 6)


def tiny_config(tmp_path, **sections) -> dict:
    base = {
        "run": {"max_steps": 4},
        "data": {"resolution": [H, W], "num_frames": 9, "num_clips": 6},
        "tokenizer": {"steps": 2, "batch_size": 2},
        "train": {"batch_size": 2, "lr": 1e-3},
        "log": {"every": 1, "sample_every": -1},
    }
    for name, table in sections.items():
        base[name] = {**base.get(name, {}), **table}
    # Settings the run would not use are refused (they would do nothing): drop them.
    if base.get("model", {}).get("checkpoint"):
        del base["tokenizer"]
    if base["data"].get("kind", "procedural") != "procedural":
        del base["data"]["num_clips"]
        base["data"].setdefault("clip_stride", 1)  # 4 clips of sample_dir's 12 frames: a batch of 2 fits
    return base


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory):
    """A tiny random gen3c checkpoint that states its 9-frame chunk (as `gen3c train` writes it)."""
    folder = tmp_path_factory.mktemp("base")
    tiny_pipeline(seed=0).save_pretrained(folder)
    (folder / "gen3c_model.json").write_text(json.dumps({"chunk_frames": 9, "resolution": [H, W], "dtype": "float32"}))
    return folder


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    """A GEN3C sample directory of 12 frames (fast to read, unlike rendering procedural scenes)."""
    import numpy as np
    from layouts import scene, write_sample

    rgb, depth, _, w2c, K = scene(n=12, h=72, w=128)
    return write_sample(tmp_path_factory.mktemp("sample") / "batch_0000", rgb, depth, np.ones_like(depth, dtype=bool), w2c, K)


def test_loss_weight_and_inputs_match_the_sampler():
    scheduler = tiny_components(0, with_text_encoder=False)["scheduler"]
    assert float(loss_weight(torch.tensor(0.5))) == pytest.approx(8.0)  # (0.25+0.25)/(0.25·0.25)
    cfg = config_from_dict({"train": {"buffer_dropout": 0.0}}).train
    x0 = torch.randn(3, 16, T_LAT, 4, 6)
    buffers = torch.randn(3, 64, T_LAT, 4, 6)
    inp = build_model_input(x0, buffers, scheduler, cfg, torch.Generator().manual_seed(0))
    s = inp.sigma.view(-1, 1, 1, 1, 1)
    # Generated frames: c_in(σ)·x_σ; conditioned frame: ≈ c_in(0.001)·x₀ (σ_aug is tiny).
    torch.testing.assert_close(inp.hidden_states[:, :, 1:], (inp.noisy / (s**2 + 0.25).sqrt())[:, :, 1:])
    torch.testing.assert_close(inp.hidden_states[:, :, :1], x0[:, :, :1] / (0.001**2 + 0.25) ** 0.5, atol=0.012, rtol=0)
    torch.testing.assert_close(inp.timestep, 0.25 * inp.sigma.log())
    assert inp.condition_mask.shape == (3, 65, T_LAT, 4, 6)
    assert (inp.condition_mask[:, 0, 0] == 1).all() and (inp.condition_mask[:, 0, 1:] == 0).all()
    torch.testing.assert_close(inp.condition_mask[:, 1:], buffers)


def test_buffer_dropout_zeroes_exactly_the_buffer_channels():
    scheduler = tiny_components(0, with_text_encoder=False)["scheduler"]
    cfg = config_from_dict({"train": {"buffer_dropout": 0.5}}).train
    x0, buffers = torch.randn(64, 16, T_LAT, 4, 6), torch.randn(64, 64, T_LAT, 4, 6) + 3
    inp = build_model_input(x0, buffers, scheduler, cfg, torch.Generator().manual_seed(1))
    dropped = ~inp.kept
    assert 16 < int(dropped.sum()) < 48  # about half of 64 clips
    assert (inp.condition_mask[dropped, 1:] == 0).all()
    torch.testing.assert_close(inp.condition_mask[inp.kept, 1:], buffers[inp.kept])
    assert (inp.condition_mask[:, 0, 0] == 1).all()  # the condition mask survives dropout
    everything = build_model_input(x0, buffers, scheduler, config_from_dict({"train": {"buffer_dropout": 1.0}}).train,
                                   torch.Generator().manual_seed(1))  # fmt: skip
    assert (everything.condition_mask[:, 1:] == 0).all()


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch():
    parts = tiny_components(0, with_text_encoder=False)
    transformer, scheduler = parts["transformer"].train(), parts["scheduler"]
    cfg = config_from_dict({"train": {"buffer_dropout": 0.0, "p_mean": 0.0, "p_std": 0.5}}).train
    torch.manual_seed(0)
    x0, buffers = torch.randn(2, 16, T_LAT, 4, 6) * 0.5, torch.randn(2, 64, T_LAT, 4, 6) * 0.5
    text = torch.zeros(2, 8, configs.TRANSFORMER_TINY["text_embed_dim"])
    opt = torch.optim.Adam(transformer.parameters(), lr=3e-3)

    def loss_at(seed: int) -> torch.Tensor:
        return gen3c_loss(transformer, scheduler, x0, buffers, text, cfg, torch.Generator().manual_seed(seed))[0]

    with torch.no_grad():
        before = sum(float(loss_at(s)) for s in range(4)) / 4
    for step in range(30):
        opt.zero_grad()
        loss_at(step % 4).backward()
        opt.step()
    with torch.no_grad():
        after = sum(float(loss_at(s)) for s in range(4)) / 4
    assert after < 0.7 * before, (before, after)


def test_resume_matches_an_uninterrupted_run(tmp_path, base_checkpoint, sample_dir):
    config = config_from_dict(
        tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)}, data={"kind": "sample", "paths": [str(sample_dir)], "clip_stride": 1},
                    train={"lr_schedule": "cosine", "warmup_steps": 1, "buffer_dropout": 0.5})
    )  # fmt: skip
    whole = train(config, tmp_path / "whole")
    first = train(config, tmp_path / "split", stop_after=2)
    assert first.steps == 2 and first.exported is None and first.checkpoint.name == "step_0000002"
    # A run killed after step 3's loss was logged but before a checkpoint: the resumed run does
    # step 3 again, and its line replaces the stale one (it was kept: steps 1, 2, 3, 3, 4).
    with (tmp_path / "split" / "losses.jsonl").open("a") as f:
        f.write(json.dumps({"step": 3, "loss": 123.0, "lr": 0.0}) + "\n")
    second = train(config, tmp_path / "split", resume="auto")  # new objects, state from disk
    assert second.steps == 4
    torch.testing.assert_close(torch.tensor(first.losses + second.losses), torch.tensor(whole.losses), rtol=1e-5, atol=1e-6)
    from safetensors.torch import load_file

    a = load_file(tmp_path / "whole" / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    b = load_file(tmp_path / "split" / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    # A fine-tune's card said it was a small model with zero text embeddings, as one from scratch.
    card = (tmp_path / "whole" / "MODEL_CARD.md").read_text()
    assert "model fine-tuned with" in card and "zero text embeddings" not in card and "cached embedding" in card
    lines = (tmp_path / "split" / "losses.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]
    assert 123.0 not in [json.loads(line)["loss"] for line in lines]

    # Resuming with another config, or a fresh run into the folder, was accepted and mixed two runs.
    from dataclasses import replace

    from gen3c.errors import Gen3cInputError

    changed = replace(config, train=replace(config.train, weight_decay=0.01), run=replace(config.run, max_steps=6))
    with pytest.raises(Gen3cInputError, match=r"--resume: train\.weight_decay = 0\.01 differs from the run's 0\.0 .*config\.json"):
        train(changed, tmp_path / "split", resume="auto")
    with pytest.raises(Gen3cInputError, match=r"already holds a training run .* continue it with --resume auto, or choose a new --out"):
        train(config, tmp_path / "split")
    assert len((tmp_path / "split" / "losses.jsonl").read_text().splitlines()) == 4


def test_a_resume_may_lower_the_lr_as_the_divergence_advice_says_and_records_it(tmp_path, base_checkpoint, sample_dir):
    """A diverged run says "lower train.lr (or set train.grad_clip, train.warmup_steps) and
    --resume from one", but --resume refused any config change but budgets. The resumed steps now
    take the new values (the LR as losses.jsonl logs it), config.json records them, the change is
    said and stated in the model card, and a plain resume with the new config is accepted."""
    from dataclasses import replace

    from gen3c.errors import Gen3cInputError

    config = config_from_dict(tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)}, log={"keep_checkpoints": 3},
                                          data={"kind": "sample", "paths": [str(sample_dir)]}))  # fmt: skip
    out = tmp_path / "run"
    train(config, out, stop_after=2)
    # A warm-up the run is past would change nothing (it counts from step 0): refused.
    with pytest.raises(Gen3cInputError, match=r"^--resume: train\.warmup_steps = 2 would change no LR: the warm-up counts from step 0 and the run goes on from step 3"):
        train(replace(config, train=replace(config.train, warmup_steps=2)), out, resume="auto")
    lower = replace(config, train=replace(config.train, lr=5e-4, grad_clip=0.5, warmup_steps=4), run=replace(config.run, max_steps=3))
    said: list[str] = []
    resumed = train(lower, out, resume="auto", echo=said.append)
    assert resumed.steps == 3
    change = "train.lr 0.001 → 0.0005 from step 3; train.grad_clip 1.0 → 0.5 from step 3; train.warmup_steps 0 → 4 from step 3"
    assert said[0] == f"--resume: {change}; {str(out / 'config.json')!r} records the new values"
    rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert [(r["step"], r["lr"]) for r in rows] == [(1, 1e-3), (2, 1e-3), (3, 5e-4 * 3 / 4)]  # step 3 of the 4-step warm-up
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == 5e-4
    assert f"- **Changed on resume**: {change}." in (out / "MODEL_CARD.md").read_text()
    # A plain resume with the new config: accepted, nothing new to record, the history kept.
    said.clear()
    more = train(replace(lower, run=replace(lower.run, max_steps=4)), out, resume="auto", echo=said.append)
    assert more.steps == 4 and not any("records the new values" in line for line in said)
    assert f"- **Changed on resume**: {change}." in (out / "MODEL_CARD.md").read_text()
    # A rewind to before the change compares with that checkpoint's config: no change is recorded.
    train(replace(config, run=replace(config.run, max_steps=3)), out, resume=str(out / "checkpoints" / "step_0000002"))
    assert "Changed on resume" not in (out / "MODEL_CARD.md").read_text() and not (out / "config_changes.jsonl").exists()


def test_a_change_no_step_used_is_not_stated_in_the_card(tmp_path, base_checkpoint, sample_dir):
    """A resume that lowers train.lr while lowering run.max_steps to the step reached runs no step,
    yet the card said "train.lr 0.001 → 0.0005 from step 3" (and lr 0.0005) with 2 steps. It states
    the settings the steps ran with; the record is kept, and states the change once a step uses it."""
    from dataclasses import replace

    config = config_from_dict(tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)}, run={"max_steps": 4},
                                          data={"kind": "sample", "paths": [str(sample_dir)]}))  # fmt: skip
    out = tmp_path / "run"
    train(config, out, stop_after=2)
    lower = replace(config, train=replace(config.train, lr=5e-4))
    assert train(replace(lower, run=replace(lower.run, max_steps=2)), out, resume="auto").steps == 2
    card = (out / "MODEL_CARD.md").read_text()
    assert "Changed on resume" not in card and "AdamW lr 0.001 (" in card and "- **Steps**: 2 in" in card
    # When and with which gen3c and torch the model was made (the card named neither).
    from gen3c import __version__
    from gen3c.environment import code_digest

    made = re.search(r"^- \*\*Made\*\*: (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC with (.*)\.$", card, re.M)
    expected = f"gen3c {__version__} (code sha256 {code_digest()[:12]}), torch {torch.__version__}"
    assert made and made[2] == expected, card
    assert [c["key"] for c in map(json.loads, (out / "config_changes.jsonl").read_text().splitlines())] == ["train.lr"]
    assert train(replace(lower, run=replace(lower.run, max_steps=3)), out, resume="auto").steps == 3
    card = (out / "MODEL_CARD.md").read_text()
    assert "- **Changed on resume**: train.lr 0.001 → 0.0005 from step 3." in card and "AdamW lr 0.0005 (" in card


def test_a_resume_into_a_folder_another_run_still_holds_is_refused_before_it_writes(tmp_path, base_checkpoint, sample_dir):
    """Two invocations into one --out at once (a job started again while the first still runs)
    interleaved their checkpoints, losses and config.json: the running one holds the folder's lock,
    and the second is refused in one line before it records anything; once free, it resumes."""
    from dataclasses import replace

    from gen3c.errors import Gen3cInputError
    from gen3c.io.atomic import try_flock

    config = config_from_dict(tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)}, run={"max_steps": 2},
                                          data={"kind": "sample", "paths": [str(sample_dir)]}))  # fmt: skip
    out = tmp_path / "run"
    train(config, out, stop_after=1)
    # The running invocation is midway through swapping a superseded checkpoint back (it holds
    # .step_N.swap): the second one's repair of "a stopped swap" ran before its lock was refused.
    swap = out / "checkpoints" / "superseded" / ".step_0000004.swap"
    swap.mkdir(parents=True)
    (swap / "mark").write_text("being swapped")

    def contents() -> dict:
        return {str(p.relative_to(out)): p.read_bytes() if p.is_file() else None for p in sorted(out.rglob("*"))}

    before = contents()
    lower = replace(config, train=replace(config.train, lr=5e-4))
    with try_flock(out) as free:  # what the running invocation holds
        assert free
        with pytest.raises(Gen3cInputError, match=r"^--out '.*run' is held by another `gen3c train` or `gen3c eval` still going .*: wait for it to end, or choose another --out$"):
            train(lower, out, resume="auto")
    assert contents() == before
    shutil.rmtree(swap.parent)
    assert train(lower, out, resume="auto").steps == 2


def test_a_run_into_a_held_folder_is_refused_before_it_reads_its_clips(tmp_path, sample_dir):
    """The lock was taken only once the clips and the model were read (when the folder was made):
    a run into a folder another run holds was refused only after that work, and checked the folder's
    contents before it held it. Now the lock comes first; a folder the run made and never wrote to
    is removed again."""
    from gen3c.errors import Gen3cInputError
    from gen3c.io.atomic import try_flock

    config = config_from_dict(tiny_config(tmp_path, data={"kind": "sample", "paths": [str(tmp_path / "no_clips")]}))
    out = tmp_path / "held"
    out.mkdir()
    with try_flock(out) as free:
        assert free
        with pytest.raises(Gen3cInputError, match=r"^--out '.*held' is held by another `gen3c train` or `gen3c eval` still going"):
            train(config, out)
    assert list(out.iterdir()) == []
    with pytest.raises(Gen3cInputError, match="no_clips"):  # free: the clips are read, and refused
        train(config, tmp_path / "new" / "run")
    assert not (tmp_path / "new").exists()


def test_the_time_budget_counts_across_resumes(tmp_path, base_checkpoint, sample_dir):
    """run.max_minutes is the run's budget, as run.max_steps is: the checkpoint records the training
    time spent, and a resumed run goes on counting from it (it got a fresh budget per invocation)."""

    def config(minutes: float):
        return config_from_dict(tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)}, run={"max_steps": 60, "max_minutes": minutes},
                                            data={"kind": "sample", "paths": [str(sample_dir)]}))  # fmt: skip

    out = tmp_path / "run"
    first = train(config(10.0), out, stop_after=2)
    spent = torch.load(first.checkpoint / "custom_checkpoint_0.pkl", weights_only=True)["seconds"]
    assert first.steps == 2 and first.exported is None and 0 < spent == pytest.approx(first.seconds)
    # A budget the first invocation has already spent: the resumed run takes no step and ends the run.
    said = []
    done = train(config(0.5 * spent / 60), out, resume="auto", echo=said.append)
    assert (done.steps, done.losses, done.exported) == (2, [], out / "model")
    assert said == [f"the time budget (run.max_minutes = {0.5 * spent / 60:g}) is spent after step 2 ({spent / 60:.2f} min of training): the run ends"]
    assert torch.load(done.checkpoint / "custom_checkpoint_0.pkl", weights_only=True)["seconds"] == spent
    # More minutes continue the run until the count (kept across invocations) reaches them.
    more = train(config((spent + 0.2) / 60), out, resume="auto")
    total = torch.load(more.checkpoint / "custom_checkpoint_0.pkl", weights_only=True)["seconds"]
    assert 3 <= more.steps < 60 and total >= spent + 0.2 and more.exported == out / "model"
    assert "min of training" in (out / "MODEL_CARD.md").read_text()


def test_a_resume_that_lowers_max_steps_below_the_step_reached_ends_the_run(tmp_path, base_checkpoint, sample_dir):
    """run.max_steps may change on resume; lowered below the step reached, the bar's total was negative."""
    cfg = tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)}, data={"kind": "sample", "paths": [str(sample_dir)]}, run={"max_steps": 3})
    out = tmp_path / "run"
    train(config_from_dict(cfg), out, stop_after=2)
    bars, said = [], []
    lowered = config_from_dict({**cfg, "run": {"max_steps": 1}})
    done = train(lowered, out, resume="auto", progress=lambda label, total: bars.append(total) or (lambda n=1: None), echo=said.append)
    assert bars == [0] and said == ["step 2 reached, run.max_steps = 1: nothing left to train, the run ends"]
    assert (done.steps, done.losses, done.exported) == (2, [], out / "model")
    assert not (out / "config_changes.jsonl").exists()  # with the constant schedule a budget only


def test_a_resume_stopped_while_recording_its_changes_leaves_config_and_changes_as_one_set(tmp_path, base_checkpoint, sample_dir, monkeypatch):
    """A resume wrote config_changes.jsonl, then config.json: stopped between them, it left a
    change beside the config it changes from, and the next resume from a checkpoint of an older
    version (which holds no copy of either: the run's files stand in) recorded the change twice."""
    from dataclasses import replace

    from gen3c.training.config import Config

    config = config_from_dict(tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)}, data={"kind": "sample", "paths": [str(sample_dir)]}))
    out = tmp_path / "run"
    first = train(config, out, stop_after=2)
    (first.checkpoint / "config.json").unlink()  # a checkpoint of an older version
    lower = replace(config, train=replace(config.train, lr=5e-4))

    def stopped(self):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Config, "to_json", stopped)  # stopped while writing the run's config
        with pytest.raises(KeyboardInterrupt):
            train(lower, out, resume="auto")
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == 1e-3 and not (out / "config_changes.jsonl").exists()
    assert not list(out.glob(".*.part*"))
    train(lower, out, resume="auto")
    assert (out / "config_changes.jsonl").read_text().count("train.lr") == 1
    assert "- **Changed on resume**: train.lr 0.001 → 0.0005 from step 3.\n" in (out / "MODEL_CARD.md").read_text()


def test_a_run_stopped_between_its_export_and_its_card_leaves_no_card_of_another_model(tmp_path, base_checkpoint, sample_dir, monkeypatch):
    """A resumed run that went on past its first export replaced model/, then wrote MODEL_CARD.md:
    stopped between the two, OUT/MODEL_CARD.md described the earlier model (its steps, its
    losses) beside the new one. Now that card goes first; --resume auto writes both again."""
    from gen3c.training import loop

    cfg = tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)}, data={"kind": "sample", "paths": [str(sample_dir)]}, run={"max_steps": 2})
    out = tmp_path / "run"
    train(config_from_dict(cfg), out)
    assert "- **Steps**: 2 in" in (out / "MODEL_CARD.md").read_text()
    longer = config_from_dict({**cfg, "run": {"max_steps": 3}})

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(loop, "write_model_card", stopped)
        with pytest.raises(KeyboardInterrupt):
            train(longer, out, resume="auto")
    assert (out / "model").is_dir() and not (out / "MODEL_CARD.md").exists() and not (out / "model" / "MODEL_CARD.md").exists()
    train(longer, out, resume="auto")
    assert "- **Steps**: 3 in" in (out / "MODEL_CARD.md").read_text() == (out / "model" / "MODEL_CARD.md").read_text()


def test_a_resume_that_changes_max_steps_under_the_cosine_records_it(tmp_path, base_checkpoint, sample_dir):
    """With lr_schedule "cosine" run.max_steps is where the cosine reaches 0: a resume that
    changed it changed the LR of every step left, as a changed train.lr does, but only the LR
    change was recorded and stated in the model card. (With "constant" it is a budget: not recorded.)"""
    from dataclasses import replace

    from gen3c.training.loop import lr_factor

    config = config_from_dict(tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)}, data={"kind": "sample", "paths": [str(sample_dir)]},
                                          train={"lr_schedule": "cosine", "warmup_steps": 1}))  # fmt: skip
    out = tmp_path / "run"
    train(config, out, stop_after=2)
    longer = replace(config, run=replace(config.run, max_steps=6))
    said: list[str] = []
    assert train(longer, out, resume="auto", echo=said.append).steps == 6
    change = "run.max_steps 4 → 6 from step 3"
    assert said[0] == f"--resume: {change}; {str(out / 'config.json')!r} records the new values"
    assert [json.loads(line) for line in (out / "config_changes.jsonl").read_text().splitlines()] == [
        {"step": 3, "key": "run.max_steps", "from": 4, "to": 6}
    ]
    assert f"- **Changed on resume**: {change}." in (out / "MODEL_CARD.md").read_text()
    lrs = [json.loads(line)["lr"] for line in (out / "losses.jsonl").read_text().splitlines()]
    want = [1e-3 * lr_factor(config, s, 4) for s in range(2)] + [1e-3 * lr_factor(longer, s, 6) for s in range(2, 6)]
    assert lrs == pytest.approx(want) and lrs[2] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi / 5)))


@pytest.mark.slow
def test_a_resumed_run_from_scratch_keeps_its_tokenizer_facts_and_samples_each_step_once(tmp_path):
    """The card of a run resumed after its tokenizer stage lost the tokenizer's line (steps,
    minutes, held-out PSNR: it was trained by the earlier invocation), and the sample of the last
    step was made twice (in the loop and again at the end: a second sampling run)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = config_from_dict(tiny_config(tmp_path, run={"max_steps": 2}, log={"sample_every": 1, "sample_steps": 1, "checkpoint_every": 1}))
    out = tmp_path / "run"
    first = train(config, out, stop_after=1)
    assert first.tokenizer["steps"] == 2
    second = train(config, out, resume="auto")
    assert second.tokenizer == pytest.approx(first.tokenizer)
    card = (out / "MODEL_CARD.md").read_text()
    assert "- **Tokenizer**: trained 2 steps in " in card and f"{first.tokenizer['heldout_psnr']:.2f} dB PSNR" in card
    logs = EventAccumulator(str(out / "logs"))
    logs.Reload()
    assert [event.step for event in logs.Images("sample/truth_buffer_sample")] == [1, 2]


def test_lora_changes_the_output_and_unloads_exactly(tmp_path, box_scene, base_checkpoint, sample_dir):
    from gen3c.training import lora

    base_dir = base_checkpoint
    config = config_from_dict(
        tiny_config(tmp_path, model={"checkpoint": str(base_dir)}, run={"max_steps": 2}, data={"kind": "sample", "paths": [str(sample_dir)]},
                    train={"mode": "lora", "lr": 5e-2, "gradient_checkpointing": True}, lora={"rank": 4})
    )  # fmt: skip
    result = train(config, tmp_path / "run")
    assert result.exported == tmp_path / "run" / "lora"
    # The targets as configured, not peft's shortened suffixes ("0.proj", "2", …).
    assert json.loads((result.exported / "gen3c_lora.json").read_text())["targets"] == config.lora.targets
    # run.seed seeds the adapter's initial weights too: the same config trains the same adapter
    # (peft drew A from torch's unseeded generator, so two runs, or a run and its resumed twin, differed).
    from safetensors.torch import load_file

    again = load_file(lora.lora_weights_file(train(config, tmp_path / "again").exported))
    first = load_file(lora.lora_weights_file(result.exported))
    assert again.keys() == first.keys() and all(torch.equal(again[k], first[k]) for k in first)
    ckpt = result.checkpoint
    assert (ckpt / "lora" / "pytorch_lora_weights.safetensors").is_file() and not (ckpt / "model.safetensors").exists()

    pipe = tiny_pipeline(seed=0)
    image, colors, masks = torch.rand(3, H, W) * 2 - 1, torch.rand(9, 1, 3, H, W) * 2 - 1, torch.ones(9, 1, 1, H, W)
    run = dict(image=image, buffer_colors=colors, buffer_masks=masks, guidance=0.0, num_steps=2, output_type="latent")
    before = pipe(**run).frames
    adapted = pipe.load_lora(result.exported)(**run).frames
    assert (adapted - before).abs().max() > 1e-4
    restored = pipe.unload_lora()(**run).frames
    assert torch.equal(restored, before)

    # The CLI's --lora reaches the generator.
    image_path, depth_path, _, _ = box_scene
    out = tmp_path / "gen"
    res = runner.invoke(app, ["generate", "--input_image_path", str(image_path), "--depth_path", str(depth_path), "--fov", "60",
                              "--resolution", f"{H}x{W}", "--generator", "gen3c", "--checkpoint_dir", str(base_dir),
                              "--lora", str(result.exported), "--num_steps", "2", "--guidance", "0", "--num_video_frames", "9",
                              "--video_save_folder", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    bad = runner.invoke(app, ["generate", "--input_image_path", str(image_path), "--depth_path", str(depth_path), "--fov", "60",
                              "--generator", "gen3c", "--checkpoint_dir", str(base_dir), "--lora", str(tmp_path / "nope"),
                              "--video_save_folder", str(out)])  # fmt: skip
    assert bad.exit_code == 2 and "LoRA" in bad.output


def test_what_a_training_run_says_prints_as_it_is(tmp_path, monkeypatch):
    """The run's messages name paths and settings: printed as text, not read as rich markup (a
    folder named run[b]x[/b] lost its brackets and turned bold) nor highlighted, and not broken
    at 80 columns in a log."""
    import gen3c.training
    from gen3c.errors import Gen3cInputError

    said = f"--resume auto: {str(tmp_path / 'run[b]x[/b]' / ('long_' * 20))!r} holds no checkpoint yet: training starts at step 0"

    def run_training(config, out, echo=None, **kwargs):
        echo(said)
        raise Gen3cInputError("stop here")

    monkeypatch.setattr(gen3c.training, "run_training", run_training)
    res = runner.invoke(app, ["train", "default", "--out", str(tmp_path / "out")], env={"COLUMNS": "80"})
    assert res.exit_code == 2 and said in res.output.splitlines(), res.output


def test_a_bfloat16_export_keeps_in_float32_what_diffusers_keeps_in_float32(tmp_path, capfd):
    """model.export_dtype = "bfloat16" re-saves the weights in bfloat16. Before: by casting the
    loaded model with .to(), which also rounded the DiT's learnable position embedding (diffusers keeps it
    in float32) and printed diffusers' two "should be kept in float32 … casting directly with to()"
    lines at every export (each distillation stage's too). Now it is loaded in bfloat16 as diffusers
    loads a model, that embedding stays float32 and nothing is printed."""
    from safetensors import safe_open

    from gen3c.training.loop import _export

    pipe = tiny_pipeline(seed=0)
    config = config_from_dict({"model": {"export_dtype": "bfloat16"}})
    _export(pipe.transformer, pipe.vae, pipe.prompt_cache, config, tmp_path, False)
    weights = tmp_path / "model" / "transformer" / "diffusion_pytorch_model.safetensors"
    with safe_open(str(weights), "pt") as f:
        dtypes = {key: f.get_slice(key).get_dtype() for key in f.keys()}
    kept = {key for key in dtypes if key.startswith("learnable_pos_embed.")}
    assert kept and {dtypes[key] for key in kept} == {"F32"}
    assert {dtypes[key] for key in dtypes.keys() - kept} == {"BF16"}
    assert "kept in float32" not in "".join(capfd.readouterr())


def test_train_cli_end_to_end(tmp_path):
    import tomllib

    cfg = tiny_config(
        tmp_path, run={"max_steps": 3}, log={"sample_every": 2, "sample_steps": 2}, data={"source_frames": 2, "cache_clips": True},
        model={"export_dtype": "bfloat16"},  # re-saved from a temporary folder
    )
    path = tmp_path / "tiny.toml"
    path.write_text("\n".join(f"[{s}]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in t.items()) for s, t in cfg.items()))
    assert tomllib.loads(path.read_text())["data"]["resolution"] == [H, W]
    out = tmp_path / "out"
    res = runner.invoke(app, ["train", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    # The seconds of the DiT's steps, and those of the tokenizer stage that came first (not hidden in them).
    assert re.search(r"trained 3 steps, loss [\d.]+ in [\d.]+ s of training \(after the tokenizer's \d+ steps, [\d.]+ s\)", " ".join(res.output.split())), res.output
    losses = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in losses] == [1, 2, 3] and all(entry["loss"] > 0 for entry in losses)
    assert sorted(p.name for p in (out / "samples").glob("*.mp4")) == ["step_0000002.mp4", "step_0000003.mp4"]
    assert list((out / "logs").glob("events.out.tfevents.*"))
    assert json.loads((out / "model" / "gen3c_model.json").read_text())["chunk_frames"] == 9
    for config in (out / "model").glob("*/config.json"):  # no paths of this machine in a model to share
        assert json.loads(config.read_text()).get("_name_or_path", config.parent.name) == config.parent.name
        assert str(tmp_path) not in config.read_text()
    card = (out / "MODEL_CARD.md").read_text()
    assert "3 in" in card and "Tokenizer" in card and "dB PSNR" in card and "zero text embeddings" in card
    from gen3c.io.video import read_video

    frames, _ = read_video(out / "samples" / "step_0000003.mp4")
    assert frames.shape == (9, H, 3 * W, 3)  # truth | buffer 0 | sample

    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nlearning_rate = 1.0\n")
    res = runner.invoke(app, ["train", str(bad), "--out", str(out)])
    assert res.exit_code == 2 and "learning_rate" in res.output


def _write_toml(cfg: dict, path):
    path.write_text("\n".join(f"[{s}]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in t.items()) for s, t in cfg.items()))
    return path


def test_torchrun_trains_data_parallel_on_cpus(tmp_path):
    """`torchrun --nproc_per_node 2 -m gen3c train` on a CPU-only machine forms one gloo process
    group (DDP): one writer, the loss averaged over the ranks, and whole exported weights that
    took rank 1's clips into account — not two independent runs racing into one folder."""
    distributed = "ddp"
    import subprocess
    import sys

    from safetensors.torch import load_file

    cfg = tiny_config(tmp_path, run={"max_steps": 3}, train={"batch_size": 1, "lr": 1e-3, "distributed": distributed, "lr_schedule": "cosine"},
                      data={"cache_clips": True})  # fmt: skip
    path = _write_toml(cfg, tmp_path / "tiny.toml")
    env = child_env(OMP_NUM_THREADS="1")
    env["CUDA_VISIBLE_DEVICES"] = ""  # CPU ranks (gloo) on a GPU host too
    two = tmp_path / "two"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run([*launch, "-m", "gen3c", "train", str(path), "--out", str(two)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    said = proc.stdout + proc.stderr
    kind = distributed.upper()
    assert said.count("trained 3 steps") == 1 and f"on 2 processes ({kind})" in said
    assert f"× 2 processes ({kind})" in (two / "MODEL_CARD.md").read_text()
    two_losses = [json.loads(line)["loss"] for line in (two / "losses.jsonl").read_text().splitlines()]
    assert len(two_losses) == 3  # rank 0 alone writes
    # The cosine runs over the 3 steps, not 2× as fast (accelerate's prepared LR scheduler steps
    # once per process per step: it logged 0.25, 0, 0 here).
    lrs = [json.loads(line)["lr"] for line in (two / "losses.jsonl").read_text().splitlines()]
    assert lrs == pytest.approx([1e-3, 0.75e-3, 0.25e-3])

    one = train(config_from_dict(cfg), tmp_path / "one")  # the same run on one process
    # Rank 0 of the pair sees the clips and noise of the single process; rank 1 adds its own,
    # so the averaged loss and the weights differ from the single process's.
    assert two_losses[0] != pytest.approx(one.losses[0], rel=1e-6)
    w_two = load_file(two / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    w_one = load_file(tmp_path / "one" / "model" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert w_two.keys() == w_one.keys() and all(w_two[k].shape == w_one[k].shape for k in w_one)  # gathered, not shards
    assert any(not torch.equal(w_two[k], w_one[k]) for k in w_one)


def test_tokenizer_stage_continues_from_an_earlier_tokenizer(tmp_path):
    from gen3c.errors import Gen3cInputError

    first = train(config_from_dict(tiny_config(tmp_path, run={"max_steps": 1}, tokenizer={"steps": 8, "lr": 5e-3})), tmp_path / "a")
    again = train(
        config_from_dict(tiny_config(tmp_path, run={"max_steps": 1}, tokenizer={"steps": 2, "init": str(tmp_path / "a" / "tokenizer")})),
        tmp_path / "b",
    )
    # It starts where the first stage ended, not from a fresh network's loss.
    assert again.tokenizer["first_loss"] < 0.9 * first.tokenizer["first_loss"]
    with pytest.raises(Gen3cInputError, match="tokenizer.init .*nowhere' does not exist"):
        train(config_from_dict(tiny_config(tmp_path, tokenizer={"init": str(tmp_path / "nowhere")})), tmp_path / "c")


def test_a_tokenizer_folder_that_is_not_there_is_named_so(tmp_path):
    """A model.tokenizer or tokenizer.init that does not exist went to diffusers, which tried the
    hub and said "We couldn't connect to 'https://huggingface.co' …" of a local path."""
    from gen3c.errors import Gen3cInputError
    from gen3c.training.loop import _read_tokenizer

    (tmp_path / "afile").write_text("x")
    (tmp_path / "empty").mkdir()
    for name, what in (("nowhere", "does not exist"), ("afile", "is a file, not a folder")):
        with pytest.raises(Gen3cInputError) as refused:
            _read_tokenizer(str(tmp_path / name), "model.tokenizer")
        assert str(refused.value) == f"model.tokenizer {str(tmp_path / name)!r} {what}: give an OUT/tokenizer of `gen3c train`, or \"\" to train one"
    with pytest.raises(Gen3cInputError, match=r"^model\.tokenizer '.*empty' is not a tokenizer folder \(.*\): give an OUT/tokenizer of `gen3c train`$"):
        _read_tokenizer(str(tmp_path / "empty"), "model.tokenizer")


@pytest.mark.skipif(torch.cuda.is_available(), reason="FSDP is refused only without GPUs")
def test_fsdp_on_cpus_is_refused_not_quietly_ddp(tmp_path, monkeypatch):
    from gen3c.errors import Gen3cInputError
    from gen3c.training.loop import _accelerator

    monkeypatch.setenv("WORLD_SIZE", "2")
    config = config_from_dict(tiny_config(tmp_path, train={"distributed": "fsdp"}))
    with pytest.raises(Gen3cInputError, match='"fsdp" needs GPUs .* use "ddp" on CPUs'):
        _accelerator(config, tmp_path)


def test_shipped_configs_load():
    small = load_config(shipped_config("small_procedural.toml"))
    default = load_config(shipped_config("default.toml"))
    assert small.run.max_minutes > 0 and small.data.kind == "procedural" and not small.model.checkpoint
    assert default.to_dict() == config_from_dict({}).to_dict()  # the commented example states every default


@pytest.mark.parametrize(
    ("sections", "said"),
    [
        ({"train": {"lr": 1}}, "train.lr = 1 is far above what AdamW trains a DiT with (1e-5 to 1e-3): each step moves every weight by about 1,"),
        ({"train": {"lr": 10}}, "train.lr = 10 is far above"),
        ({"train": {"lr": 1e-12}}, "train.lr = 1e-12 over 1000 steps (run.max_steps) moves no weight by more than about 1e-09"),
        ({"tokenizer": {"lr": 0.5}}, "tokenizer.lr = 0.5 is far above what AdamW trains a tokenizer with (1e-4 to 5e-3)"),
        ({"model": {"checkpoint": "tiny"}, "train": {"mode": "distill", "lr": 1e-9}, "distill": {"stage_max_steps": [100, 10, 10, 10]}},
         "train.lr = 1e-09 over 100 steps (the longest of distill.stage_max_steps)"),
    ],
)
def test_an_implausible_learning_rate_is_said_in_a_note(sections, said):
    """train.lr = 1 (or 10, or 1e-12) was taken without a word: AdamW moves each weight by about lr
    a step, so 1 destroys a DiT at the first step and 1e-12 trains nothing. Now a note (the run goes on)."""
    from gen3c.errors import collect_notes
    from gen3c.training.loop import note_learning_rates

    config = config_from_dict(sections)
    with collect_notes() as notes:
        note_learning_rates(config, tokenizer_trains=not config.model.checkpoint)
    assert len(notes) == 1 and notes[0].startswith(said), notes


def test_the_shipped_configs_learning_rates_get_no_note():
    from gen3c.errors import collect_notes
    from gen3c.training.config import shipped_config_names
    from gen3c.training.loop import note_learning_rates

    with collect_notes() as notes:
        for name in shipped_config_names():
            config = load_config(shipped_config(f"{name}.toml"))
            note_learning_rates(config, tokenizer_trains=not config.model.checkpoint and not config.model.tokenizer)
        note_learning_rates(config_from_dict({"model": {"checkpoint": "tiny"}, "train": {"mode": "lora", "lr": 5e-2}}), tokenizer_trains=False)  # a fast LoRA test's
    assert notes == []


def test_the_tokenizer_stage_shows_the_latent_statistics_clips(tmp_path, sample_dir):
    """A from-scratch run made up to 16 clips for its tokenizer's latent statistics after the
    tokenizer's bar ended, with no bar of its own: minutes without a sign of life at 7B sizes."""
    config = config_from_dict(tiny_config(tmp_path, run={"max_steps": 1}, data={"kind": "sample", "paths": [str(sample_dir)]}))
    bars: dict[str, list[int]] = {}

    def progress(stage: str, total: int):
        bars[stage] = [total, 0]
        return lambda n=1: bars[stage].__setitem__(1, bars[stage][1] + n)

    train(config, tmp_path / "run", progress=progress)
    assert bars["Tokenizer"] == [2, 2] and bars["Latent statistics"] == [4, 4]  # sample_dir's 4 clips


def test_relative_folders_of_a_config_file_are_relative_to_its_folder(tmp_path, sample_dir, monkeypatch):
    """data.paths (and the other folders) were read relative to the working directory: the same
    config read other data, or none, when run from another folder."""
    from gen3c.training.data import make_dataset

    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "batch_0000").symlink_to(sample_dir)
    (project / "base").mkdir()
    path = project / "c.toml"
    path.write_text("[data]\nkind = 'sample'\nnum_frames = 9\npaths = ['data/batch_0000']\n[model]\ncheckpoint = 'base'\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = load_config(path)
    assert config.data.paths == [str(project / "data" / "batch_0000")] and config.model.checkpoint == str(project / "base")
    assert len(make_dataset(config.data)) > 0
    path.write_text("[model]\ntokenizer = 'tok'\n[tokenizer]\n")
    assert load_config(path).model.tokenizer == str(project / "tok")
    path.write_text("[tokenizer]\ninit = '~/tok'\n")
    assert load_config(path).tokenizer.init == str(Path("~/tok").expanduser())
    # A packaged model and a hub id (no such folder beside the config) are names, not folders.
    for name in ("tiny", "owner/model"):
        path.write_text(f"[model]\ncheckpoint = '{name}'\n")
        assert load_config(path).model.checkpoint == name
    # A config from Python has no folder: its relative folders are the working directory's.
    assert config_from_dict({"data": {"kind": "sample", "paths": ["x"]}}).data.paths == ["x"]


def test_sample_directory_clips_render_the_cache_into_the_clip_cameras(sample_dir):
    from gen3c.training.data import make_dataset

    folder = sample_dir
    cfg = config_from_dict({"data": {"kind": "sample", "paths": [str(folder)], "resolution": [H, W], "num_frames": 9,
                                     "clip_stride": 2, "source_frames": 2, "filter_points_threshold": 0.0}}).data  # fmt: skip
    clips = make_dataset(cfg)
    assert len(clips) == 2  # windows starting at frames 0 and 2 of 12
    clip = clips[1]
    assert clip["video"].shape == (3, 9, H, W) and clip["buffer_colors"].shape == (9, 2, 3, H, W)
    # Buffer 0 is the newest view (the clip's last frame), buffer 1 its first: each sees itself whole.
    masks = clip["buffer_masks"]
    assert float(masks[-1, 0].mean()) > 0.98 and float(masks[0, 1].mean()) > 0.98
    seen = masks[0, 1, 0] > 0
    err = (clip["buffer_colors"][0, 1][:, seen] - clip["video"][:, 0][:, seen]).abs().mean()
    assert float(err) < 0.05  # the source frame rendered into its own camera is itself


def test_vipe_clips(tmp_path):
    from layouts import scene, write_vipe

    from gen3c.training.data import make_dataset

    rgb, depth, _, w2c, K = scene(n=10, h=72, w=128)
    root = write_vipe(tmp_path / "vipe", "clip", rgb, depth, w2c, K)
    cfg = config_from_dict({"data": {"kind": "vipe", "paths": [str(root)], "resolution": [H, W], "num_frames": 9,
                                     "filter_points_threshold": 0.0}}).data  # fmt: skip
    clips = make_dataset(cfg)
    assert len(clips) == 1  # one window of 9 in 10 frames (stride 8)
    clip = clips[0]
    assert clip["buffer_colors"].shape == (9, 1, 3, H, W) and float(clip["buffer_masks"][0].mean()) > 0.98
    # The cameras move right: later frames see less of the first frame's cache.
    assert float(clip["buffer_masks"][-1].mean()) < float(clip["buffer_masks"][0].mean())


def test_a_vipe_output_of_several_clips_gives_the_windows_of_each(tmp_path, monkeypatch):
    """Before: refused with generate's advice, 'choose one with --vipe_clip NAME', a flag gen3c train has not."""
    from layouts import scene, write_vipe

    from gen3c.io import vipe
    from gen3c.training.data import make_dataset

    monkeypatch.setattr(vipe, "check_depth_conventions", lambda *args, **kwargs: None)  # (2 s a clip; tests/test_conventions.py)
    rgb, depth, _, w2c, K = scene(n=10, h=72, w=128)
    root = write_vipe(tmp_path / "vipe", "a", rgb, depth, w2c, K)
    write_vipe(root, "b", rgb[:5], depth[:5], w2c[:5], K[:5])  # too short for a clip: named by its clip
    write_vipe(root, "c", rgb[::-1].copy(), depth[::-1].copy(), w2c.flip(0), K.flip(0))
    cfg = config_from_dict({"data": {"kind": "vipe", "paths": [str(root)], "resolution": [H, W], "num_frames": 9,
                                     "clip_stride": 1}}).data  # fmt: skip
    with pytest.warns(UserWarning, match=r"^data\.paths\[0\] '.*vipe' clip 'b' has 5 frames, fewer than data\.num_frames = 9"):
        clips = make_dataset(cfg)
    assert clips.windows == [(0, 0), (0, 1), (2, 0), (2, 1)]  # clips a and c, in name order; b gives none
    torch.testing.assert_close(clips.window(2, 0)[0].image(0, 9), clips.window(0, 1)[0].image(0, 9).flip(0))  # c's first window: a's last, reversed


def test_hidden_files_in_a_vipe_outputs_rgb_folder_are_no_clips(tmp_path, monkeypatch):
    """Before: a copy from a Mac (rgb/._a.mp4, its AppleDouble metadata) was refused as clip '._a'
    lacking pose/._a.npz, and beside one clip made it 'holds 2 clips: choose one with --vipe_clip'."""
    from layouts import scene, write_vipe

    from gen3c.io import vipe
    from gen3c.training.data import make_dataset

    monkeypatch.setattr(vipe, "check_depth_conventions", lambda *args, **kwargs: None)  # (2 s a clip; tests/test_conventions.py)
    rgb, depth, _, w2c, K = scene(n=10, h=72, w=128)
    one = write_vipe(tmp_path / "one", "a", rgb, depth, w2c, K)
    two = write_vipe(tmp_path / "two", "a", rgb, depth, w2c, K)
    write_vipe(two, "b", rgb, depth, w2c, K)
    for root in (one, two):
        (root / "rgb" / "._a.mp4").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
        (root / "rgb" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    cfg = config_from_dict({"data": {"kind": "vipe", "paths": [str(one), str(two)], "resolution": [H, W], "num_frames": 9,
                                     "clip_stride": 1}}).data  # fmt: skip
    clips = make_dataset(cfg)
    assert clips.windows == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]  # one's clip, then two's a and b
    assert vipe.resolve_vipe(one) == (one, "a")


def test_a_vipe_output_of_many_clips_is_listed_once_not_once_per_clip(tmp_path, monkeypatch):
    """Before: reading each clip listed rgb/ twice (its name checked, its video found), so a folder
    of N clips cost 2·N listings of N files: 100,000 clips, hours before the first step."""
    from layouts import scene, write_vipe

    from gen3c.errors import Gen3cInputError
    from gen3c.io import vipe
    from gen3c.training.data import make_dataset

    monkeypatch.setattr(vipe, "check_depth_conventions", lambda *args, **kwargs: None)  # (2 s a clip; tests/test_conventions.py)
    rgb, depth, _, w2c, K = scene(n=9, h=72, w=128)
    root = tmp_path / "vipe"
    for name in ("a", "b", "c"):
        write_vipe(root, name, rgb, depth, w2c, K)
    listings = []
    listed = vipe.clip_videos
    monkeypatch.setattr(vipe, "clip_videos", lambda folder: listings.append(folder) or listed(folder))
    cfg = config_from_dict({"data": {"kind": "vipe", "paths": [str(root)], "resolution": [H, W], "num_frames": 9}}).data
    clips = make_dataset(cfg)
    assert clips.sources == [(str(root), "a"), (str(root), "b"), (str(root), "c")] and listings == [root]
    # A clip that is not there is still named with those that are (the listing, then).
    with pytest.raises(Gen3cInputError, match=r"has no clip 'd': its clips are a, b, c$"):
        vipe.read_vipe(root, (H, W), clip="d")


def test_videos_past_the_memory_budget_are_read_again_per_clip_giving_the_same_clips(sample_dir, tmp_path, monkeypatch):
    """Before: every video of data.paths stayed in memory whole at the training size (8 bytes a pixel
    a frame, in every process: 200 samples of 121 frames at 704×1280 were 170 GB each), so a real
    data set ran out of memory before the first step."""
    import pickle

    from layouts import scene, write_vipe

    from gen3c.io import gen3c_sample, vipe
    from gen3c.training import data

    for module in (gen3c_sample, vipe):  # (2 s a read; tests/test_conventions.py)
        monkeypatch.setattr(module, "check_depth_conventions", lambda *args, **kwargs: None)
    rgb, depth, _, w2c, K = scene(n=10, h=72, w=128)
    root = write_vipe(tmp_path / "vipe", "a", rgb, depth, w2c, K)
    write_vipe(root, "c", rgb[::-1].copy(), depth[::-1].copy(), w2c.flip(0), K.flip(0))
    configs = [config_from_dict({"data": {"kind": kind, "paths": [str(path)], "resolution": [H, W], "num_frames": 9, "clip_stride": 1,
                                          "source_frames": 2}}).data for kind, path in (("sample", sample_dir), ("vipe", root))]  # fmt: skip
    resident = [data.make_dataset(cfg) for cfg in configs]
    made = [[kept[i] for i in range(len(kept))] for kept in resident]
    monkeypatch.setattr(data, "RESIDENT_BYTES", 0, raising=False)
    read_again = [data.make_dataset(cfg) for cfg in configs]
    for kept, clips, again in zip(resident, made, read_again, strict=True):
        assert again.windows == kept.windows and len(kept) == 4
        for i in range(len(kept)):
            assert all(torch.equal(clips[i][key], again[i][key]) for key in ("video", "buffer_colors", "buffer_masks"))
        assert sum(len(stack) for stack in kept.resident.values()) == sum(kept.lengths) and again.resident == {}
        # Less than one clip's frames in a copy for another process (a spawned DataLoader worker, which reads its own).
        assert len(pickle.dumps(kept)) < 9 * H * W * 8 and pickle.loads(pickle.dumps(kept)).resident == {}


@pytest.mark.parametrize("kind", ["sample", "vipe"])
def test_the_run_start_reads_no_frame_and_each_rank_reads_the_videos_of_its_own_clips(kind, sample_dir, tmp_path, monkeypatch):
    """Before: every process read every video whole as the run started (to count its frames and
    check it): thousands of 121-frame 704×1280 clips were hours of decoding per rank before the
    first step. Now the start reads the files' headers and cameras, and a clip's frames are read
    when it is made: each rank of a 2-process run reads the video of its own clip only."""
    from layouts import scene, write_vipe

    from gen3c.io import gen3c_sample, npz, vipe
    from gen3c.training import data

    for module in (gen3c_sample, vipe):  # (2 s a read; tests/test_conventions.py)
        monkeypatch.setattr(module, "check_depth_conventions", lambda *args, **kwargs: None)
    if kind == "sample":
        paths = [str(shutil.copytree(sample_dir, tmp_path / name)) for name in ("a", "b", "c")]
    else:
        rgb, depth, _, w2c, K = scene(n=10, h=72, w=128)
        for name in ("a", "b", "c"):
            root = write_vipe(tmp_path / "vipe", name, rgb, depth, w2c, K)
        paths = [str(root)]
    decoded, depth_read = [], []
    for module in (gen3c_sample, vipe):
        frames_of = module.iter_video_frames
        monkeypatch.setattr(module, "iter_video_frames", lambda path, *a, frames_of=frames_of, **k: decoded.append(Path(path)) or frames_of(path, *a, **k))
    frames, zip_read = npz.NpzFrames.frames, vipe._ZipFrames.read
    monkeypatch.setattr(npz.NpzFrames, "frames", lambda self, *a: depth_read.append(self) or frames(self, *a))
    monkeypatch.setattr(vipe._ZipFrames, "read", lambda self, *a: depth_read.append(self) or zip_read(self, *a))
    cfg = config_from_dict({"data": {"kind": kind, "paths": paths, "resolution": [H, W], "num_frames": 9}}).data
    clips = data.make_dataset(cfg)
    assert len(clips) == 3 and clips.lengths == [12 if kind == "sample" else 10] * 3
    assert decoded == [] and depth_read == []
    for rank in (0, 1):  # each process of `torchrun --nproc_per_node 2` makes the clips its sampler gives it
        ranks_clips = data.make_dataset(cfg)
        decoded.clear()
        index = next(iter(data.StepSampler(len(ranks_clips), 1, seed=0, rank=rank, world=2)))
        ranks_clips[index]
        video = ranks_clips.windows[index][0]
        video_file = (Path(paths[video]) / "rgb.mp4") if kind == "sample" else tmp_path / "vipe" / "rgb" / f"{'abc'[video]}.mp4"
        assert decoded == [video_file], (rank, decoded)


def test_a_video_whose_frames_are_refused_is_refused_when_its_first_clip_is_made(sample_dir, tmp_path, monkeypatch):
    """What only a video's frames tell is checked when a clip first reads them, in one line naming
    the data.paths entry; before, every video was read whole at the start for it (hours for a real
    data set). Its notes are said on that first read, once: not again for its other clips."""
    import warnings

    import numpy as np
    from layouts import scene, write_sample

    from gen3c.errors import Gen3cInputError
    from gen3c.io import gen3c_sample
    from gen3c.training import data

    monkeypatch.setattr(gen3c_sample, "check_depth_conventions", lambda *args, **kwargs: None)  # (2 s a read; tests/test_conventions.py)
    monkeypatch.setattr(data, "RESIDENT_BYTES", 0)  # each clip reads its own frames
    rgb, depth, _, w2c, K = scene(n=12, h=72, w=128)
    depth[:, :4] = np.nan  # the top 4 rows (9 · 4 · 128 = 4608 pixels of a clip): said in a note, placed far away
    holed = write_sample(tmp_path / "holed", rgb, depth, np.ones_like(depth, dtype=bool), w2c, K)
    narrow = write_sample(tmp_path / "narrow", rgb, depth[:, :, :96], np.ones_like(depth[:, :, :96], dtype=bool), w2c, K)
    cfg = config_from_dict({"data": {"kind": "sample", "paths": [str(holed), str(narrow)], "resolution": [H, W], "num_frames": 9,
                                     "clip_stride": 3}}).data  # fmt: skip
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        clips = data.make_dataset(cfg)
    assert said == [] and clips.windows == [(0, 0), (0, 3), (1, 0), (1, 3)]
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        clips[0], clips[1]
    assert len(said) == 1 and re.match(r"sample directory '.*holed' depth\.npz: 4608 pixels .* of NaN/inf depth sit far away", str(said[0].message)), [str(w.message) for w in said]
    with pytest.raises(Gen3cInputError) as caught:
        clips[2]
    assert str(caught.value).startswith(f"data.paths[1] {str(narrow)!r}: sample directory {str(narrow)!r} rgb.mp4 is 72×128 but depth.npz is 72×96")
    assert "\n" not in str(caught.value)


def test_a_dataloader_worker_keeps_its_share_of_the_memory_budget(sample_dir, monkeypatch):
    """Videos are read whole into memory as clips first need them, in the process that makes the
    clip: data.num_workers workers share RESIDENT_BYTES, so a run holds no more than one budget of frames."""
    from dataclasses import replace
    from types import SimpleNamespace

    from gen3c.io import gen3c_sample
    from gen3c.training import data

    monkeypatch.setattr(gen3c_sample, "check_depth_conventions", lambda *args, **kwargs: None)  # (2 s a read; tests/test_conventions.py)
    cfg = config_from_dict({"data": {"kind": "sample", "paths": [str(sample_dir)], "resolution": [H, W], "num_frames": 9}}).data
    monkeypatch.setattr(data, "RESIDENT_BYTES", 12 * H * W * 8)  # the video's 12 frames, whole
    alone = data.make_dataset(cfg)
    alone[0]
    assert list(alone.resident) == [0]
    # The main process of a run whose workers make the clips keeps none (it makes the held-out clip
    # and the tokenizer's statistics clips, once each): before, it kept one budget beside theirs.
    beside_workers = data.make_dataset(replace(cfg, num_workers=2))
    beside_workers[0]
    assert beside_workers.resident == {}
    monkeypatch.setattr(data, "get_worker_info", lambda: SimpleNamespace(num_workers=2, id=0))
    worker = data.make_dataset(cfg)
    worker[0]
    assert worker.resident == {}


def test_a_video_read_again_that_changed_since_the_run_started_is_named_by_its_data_path(sample_dir, tmp_path, monkeypatch):
    """Before: the reader's own line (sample video … cannot be read) from inside a training step,
    not saying it is one of data.paths that changed after the run had read it whole."""
    from gen3c.errors import Gen3cInputError
    from gen3c.io import gen3c_sample
    from gen3c.training import data

    monkeypatch.setattr(gen3c_sample, "check_depth_conventions", lambda *args, **kwargs: None)  # (2 s a read; tests/test_conventions.py)
    monkeypatch.setattr(data, "RESIDENT_BYTES", 0)
    folder = shutil.copytree(sample_dir, tmp_path / "sample")
    clips = data.make_dataset(config_from_dict({"data": {"kind": "sample", "paths": [str(folder)], "resolution": [H, W], "num_frames": 9}}).data)
    (folder / "rgb.mp4").write_bytes(b"not a video")
    with pytest.raises(Gen3cInputError, match=r"^data\.paths\[0\] '.*sample' changed since the run read it at its start: sample video .*rgb\.mp4' cannot be read"):
        clips[0]


@pytest.mark.parametrize("resident", [True, False], ids=["read_whole", "read_per_clip"])
def test_a_video_cut_shorter_since_the_run_started_is_refused_when_its_clip_is_read(resident, sample_dir, tmp_path, monkeypatch):
    """The readers give the frames a video has: one re-exported with fewer frames since the run's
    start (12 frames then, 10 now) gave its later windows fewer frames than data.num_frames, read
    whole at its first clip or per clip (a 7-frame clip, trained on, or an IndexError from inside a
    training step). Now it is refused in one line naming the data.paths entry."""
    import numpy as np
    from layouts import scene, write_sample

    from gen3c.errors import Gen3cInputError
    from gen3c.io import gen3c_sample
    from gen3c.training import data

    monkeypatch.setattr(gen3c_sample, "check_depth_conventions", lambda *args, **kwargs: None)  # (2 s a read; tests/test_conventions.py)
    if not resident:
        monkeypatch.setattr(data, "RESIDENT_BYTES", 0)
    folder = shutil.copytree(sample_dir, tmp_path / "sample")
    clips = data.make_dataset(config_from_dict({"data": {"kind": "sample", "paths": [str(folder)], "resolution": [H, W], "num_frames": 9,
                                                         "clip_stride": 1}}).data)  # fmt: skip
    assert clips.windows == [(0, 0), (0, 1), (0, 2), (0, 3)]
    rgb, depth, _, w2c, K = scene(n=10, h=72, w=128)
    write_sample(folder, rgb, depth, np.ones_like(depth, dtype=bool), w2c, K)
    with pytest.raises(Gen3cInputError) as caught:
        clips[3]
    message = r"^data\.paths\[0\] '.*sample' changed since the run read it at its start: it has 10 frames now, 12 then; put it back as it was, or start"
    assert re.match(message, str(caught.value)) and "\n" not in str(caught.value), str(caught.value)
    assert clips.resident == {}


def test_a_window_refused_of_a_video_that_did_not_change_is_not_called_changed(sample_dir, tmp_path, monkeypatch):
    """A window read again refused for what the video was all along (its depth conventions,
    checked on the window's frames, here) was said to have "changed since the run read it at its
    start"; now the reader's own line, naming the data.paths entry."""
    from gen3c.errors import Gen3cInputError
    from gen3c.io import gen3c_sample
    from gen3c.training import data

    monkeypatch.setattr(gen3c_sample, "check_depth_conventions", lambda *args, **kwargs: None)  # (2 s a read; tests/test_conventions.py)
    monkeypatch.setattr(data, "RESIDENT_BYTES", 0)
    folder = shutil.copytree(sample_dir, tmp_path / "sample")
    clips = data.make_dataset(config_from_dict({"data": {"kind": "sample", "paths": [str(folder)], "resolution": [H, W], "num_frames": 9}}).data)

    def refuse(*args, **kwargs):
        raise Gen3cInputError("sample depth looks like disparity in frames 0-8: convert it to z-depth")

    monkeypatch.setattr(gen3c_sample, "check_depth_conventions", refuse)
    with pytest.raises(Gen3cInputError) as caught:
        clips[0]
    assert str(caught.value) == f"data.paths[0] {str(folder)!r}: sample depth looks like disparity in frames 0-8: convert it to z-depth"
    (folder / "camera.npz").write_bytes((folder / "camera.npz").read_bytes() + b"\0")  # now it did change
    with pytest.raises(Gen3cInputError, match=r"^data\.paths\[0\] '.*sample' changed since the run read it at its start: "):
        clips[0]


def test_packaged_tiny_model_runs_on_the_cpu(tmp_path, box_scene):
    from gen3c.io.video import read_video
    from gen3c.models.packaged import packaged_model_dir, packaged_model_info

    info = packaged_model_info("tiny")
    h, w = info["resolution"]
    sizes = [p.stat().st_size for p in packaged_model_dir("tiny").rglob("*") if p.is_file()]
    assert sum(sizes) <= 10e6
    image_path, depth_path, _, _ = box_scene
    res = runner.invoke(app, ["generate", "--generator", "gen3c", "--model", "tiny", "--input_image_path", str(image_path),
                              "--depth_path", str(depth_path), "--fov", "60", "--resolution", f"{h}x{w}", "--num_steps", "2",
                              "--num_video_frames", str(info["chunk_frames"]), "--video_save_folder", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 0, res.output
    frames, _ = read_video(tmp_path / "output.mp4")
    assert frames.shape == (info["chunk_frames"], h, w, 3)
    both = runner.invoke(app, ["generate", "--generator", "gen3c", "--model", "tiny", "--checkpoint_dir", "x", "--num_video_frames", "17",
                               "--input_image_path", str(image_path), "--depth_path", str(depth_path)])  # fmt: skip
    assert both.exit_code == 2 and "pass one of them" in " ".join(both.output.split())
    folder = runner.invoke(app, ["generate", "--generator", "gen3c", "--model", str(tmp_path), "--num_video_frames", "17",
                                 "--input_image_path", str(image_path), "--depth_path", str(depth_path)])  # fmt: skip
    assert folder.exit_code == 2 and "with --checkpoint_dir instead" in " ".join(folder.output.split()), folder.output


def test_a_runs_output_folder_given_for_its_model_or_adapter_names_the_folder_inside(tmp_path):
    """Before: `--checkpoint_dir OUT` said OUT was no converted checkpoint and told to fetch
    GEN3C's 7B weights; `--lora OUT` said OUT/pytorch_lora_weights.safetensors does not exist."""
    from gen3c.errors import Gen3cModelError
    from gen3c.pipelines.loading import check_checkpoint_dir
    from gen3c.training.lora import WEIGHTS_NAME, lora_weights_file

    run = tmp_path / "run"
    for part in ("checkpoints/step_0000004", "model", "lora", "logs"):
        (run / part).mkdir(parents=True)
    (run / "model" / "model_index.json").write_text("{}")
    (run / "lora" / WEIGHTS_NAME).write_bytes(b"")
    with pytest.raises(Gen3cModelError, match=rf"^checkpoint '{re.escape(str(run))}' has no model_index.json: it holds a training run: pass its model, '{re.escape(str(run / 'model'))}'$"):
        check_checkpoint_dir(run)
    with pytest.raises(Gen3cModelError, match=rf"^LoRA folder '{re.escape(str(run))}' has no {WEIGHTS_NAME}: it holds a training run: pass its adapter, '{re.escape(str(run / 'lora'))}'$"):
        lora_weights_file(run)
    assert lora_weights_file(run / "lora") == run / "lora" / WEIGHTS_NAME
    with pytest.raises(Gen3cModelError, match=r"has no model_index.json, so it is not a converted gen3c checkpoint"):
        check_checkpoint_dir(run / "logs")  # nothing inside: as before


def test_saving_a_lora_logs_nothing_and_keeps_the_users_log_level(tmp_path):
    """diffusers' ``save_lora_adapter`` warns "There are modules in CosmosTransformer3DModel that
    should be kept in float32" (its no-op ``.to(dtype=None)``) at every save; gen3c's save logs
    nothing, and the user's diffusers log level holds after it. (Records are read off diffusers'
    logger: its own handler keeps the stderr it found at import, which pytest may have swapped.)"""
    import logging

    from diffusers.utils import logging as diffusers_logging

    from gen3c.training import lora

    trained = tiny_components(0, with_text_encoder=False)["transformer"].eval()
    lora.add_lora(trained, rank=4, alpha=4.0, targets=["to_q"])
    records: list[logging.LogRecord] = []
    collect = logging.Handler()
    collect.emit = records.append
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_info()
    logging.getLogger("diffusers").addHandler(collect)
    try:
        lora.save_lora(trained, tmp_path / "adapter")
        assert [r.getMessage() for r in records] == []
        assert diffusers_logging.get_verbosity() == logging.INFO
    finally:
        logging.getLogger("diffusers").removeHandler(collect)
        diffusers_logging.set_verbosity(level)
    assert (tmp_path / "adapter" / lora.WEIGHTS_NAME).is_file()


def test_a_lora_alpha_other_than_its_rank_survives_save_and_load(tmp_path):
    """The loader was given the file's path alone, so diffusers inferred alpha = rank: an adapter
    trained with lora.alpha 32 at rank 4 (scale 8) loaded at scale 1, an eighth of its effect."""
    from gen3c.training import lora

    def block_linear(net):
        return net.transformer_blocks[0].attn1.to_q

    trained = tiny_components(0, with_text_encoder=False)["transformer"].eval()
    lora.add_lora(trained, rank=4, alpha=32.0, targets=["to_q"])
    torch.manual_seed(0)
    for name, p in trained.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.05)
    lora.save_lora(trained, tmp_path / "adapter")
    loaded = tiny_components(0, with_text_encoder=False)["transformer"].eval()
    lora.load_lora(loaded, tmp_path / "adapter")
    x = torch.randn(5, block_linear(trained).in_features)
    with torch.no_grad():
        base = block_linear(tiny_components(0, with_text_encoder=False)["transformer"])(x)
        want, got = block_linear(trained)(x), block_linear(loaded)(x)
    assert float((want - base).abs().max()) > 1e-3  # the adapter changes the output
    torch.testing.assert_close(got, want)

    # On a model of other sizes: the first mismatch, not torch's header line ("Error(s) in loading
    # state_dict for CosmosTransformer3DModel:"), and no adapter left half-loaded.
    from gen3c.errors import Gen3cModelError
    from gen3c.models.packaged import packaged_model_dir
    from gen3c.pipelines.loading import load_pipeline

    other = load_pipeline(packaged_model_dir("tiny"), dtype=torch.float32).transformer
    with pytest.raises(Gen3cModelError, match=r"does not fit this model \(size mismatch for transformer_blocks\.0\.attn1\.to_q"):
        lora.load_lora(other, tmp_path / "adapter")
    assert not getattr(other, "peft_config", {})


def test_a_lora_save_stopped_midway_leaves_the_previous_adapter_whole(tmp_path, monkeypatch):
    """save_lora published the weights, then gen3c_lora.json, as two renames: a save stopped
    between them left the new weights beside the previous save's rank, alpha and targets. The
    folder now holds one save or the other, whole, and nothing of the stopped save is left."""
    from safetensors import safe_open

    from gen3c.training import lora

    def adapter(rank: int, targets: list[str]):
        net = tiny_components(0, with_text_encoder=False)["transformer"].eval()
        lora.add_lora(net, rank=rank, alpha=2.0 * rank, targets=targets)
        return net

    def contents(folder):
        return {p.name: p.read_bytes() for p in folder.iterdir()}

    folder = tmp_path / "lora"
    lora.save_lora(adapter(4, ["to_q"]), folder)
    before = contents(folder)

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(lora, "write_text_atomic", stopped)  # stopped between the weights and the record
        with pytest.raises(KeyboardInterrupt):
            lora.save_lora(adapter(8, ["to_k"]), folder)
    assert contents(folder) == before and [p.name for p in tmp_path.iterdir()] == ["lora"]

    lora.save_lora(adapter(8, ["to_k"]), folder)
    info = json.loads((folder / lora.META_NAME).read_text())
    with safe_open(str(folder / lora.WEIGHTS_NAME), "pt") as f:
        ranks = {f.get_slice(k).get_shape()[0] for k in f.keys() if "lora_A" in k}
        names = list(f.keys())
    assert (info["rank"], info["alpha"], ranks) == (8, 16.0, {8})
    assert all(".to_k." in name for name in names) and all(t.endswith("to_k") for t in info["targets"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lora"]


def test_a_damaged_lora_record_is_refused_not_taken_as_absent(tmp_path):
    """lora_base_checkpoint returned None for a gen3c_lora.json it could not read, as for none at
    all: `gen3c generate --lora` then skipped the check of the base model the adapter was trained
    on. A record that is there but damaged (cut short, a list, a link whose target is gone) is
    now refused in one line naming it; no record, or one naming no base, is still None."""
    from gen3c.errors import Gen3cModelError
    from gen3c.training import lora

    folder = tmp_path / "lora"
    folder.mkdir()
    (folder / lora.WEIGHTS_NAME).write_bytes(b"")
    record = folder / lora.META_NAME
    assert lora.lora_base_checkpoint(folder) is None  # an adapter made elsewhere: no record
    record.write_text('{"rank": 4}')
    assert lora.lora_base_checkpoint(folder / lora.WEIGHTS_NAME) is None
    record.write_text('{"rank": 4, "base_checkpoint": "tiny"}')
    assert lora.lora_base_checkpoint(folder) == "tiny"
    for content, why in (('{"rank": 4, "base_che', r"cannot be read \(Unterminated string"), ("[1, 2]", "holds a JSON list, not the JSON object")):
        record.write_text(content)
        with pytest.raises(Gen3cModelError, match=rf"^LoRA record '{re.escape(str(record))}' {why}.*: copy the adapter folder again") as info:
            lora.lora_base_checkpoint(folder)
        assert "\n" not in str(info.value)
    record.unlink()
    record.symlink_to(tmp_path / "gone.json")
    with pytest.raises(Gen3cModelError, match=r"cannot be read \(a link to .*gone\.json', which does not exist here\)"):
        lora.lora_base_checkpoint(folder)


def test_a_fine_tuned_distilled_student_keeps_its_sampling_defaults_and_scheduler(tmp_path, sample_dir):
    """A full fine-tune of a distilled student exported a model/ without the student's num_steps and
    guidance, so `gen3c generate` on it sampled 35 steps with guidance, twice the forwards per step;
    nor did a fine-tuned small model keep its float32 (it ran in bf16 on a GPU)."""
    from gen3c.pipelines.gen3c import Gen3cPipeline

    student = tmp_path / "student"
    pipe = tiny_pipeline(seed=0)
    pipe.scheduler.register_to_config(sigma_max=70.0)  # not the default, so a replaced scheduler shows
    pipe.save_pretrained(student)
    info = {"chunk_frames": 9, "resolution": [H, W], "dtype": "float32", "num_steps": 4, "guidance": 0.0}
    (student / "gen3c_model.json").write_text(json.dumps(info))
    config = config_from_dict(
        tiny_config(tmp_path, model={"checkpoint": str(student)}, data={"kind": "sample", "paths": [str(sample_dir)]}, run={"max_steps": 1})
    )  # fmt: skip
    exported = train(config, tmp_path / "run").exported
    meta = json.loads((exported / "gen3c_model.json").read_text())
    assert (meta["num_steps"], meta["guidance"]) == (4, 0.0)
    assert meta["dtype"] == "float32"  # a small model: it ran in float32 everywhere, and so does its fine-tune
    tuned = Gen3cPipeline.from_pretrained(exported)
    assert tuned.sampling_defaults == {"num_steps": 4, "guidance": 0.0}
    assert tuned.scheduler.config.sigma_max == 70.0


def test_the_lr_follows_the_step_counter(tmp_path, base_checkpoint, sample_dir):
    """losses.jsonl (and TensorBoard) logged the LR of the *next* step, read from the LR scheduler
    after it had stepped: the first warm-up step showed the second's LR."""
    from gen3c.training.loop import lr_factor

    config = config_from_dict(
        tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)}, data={"kind": "sample", "paths": [str(sample_dir)]},
                    train={"lr_schedule": "cosine", "warmup_steps": 2, "lr": 1e-3}, run={"max_steps": 4})
    )  # fmt: skip
    train(config, tmp_path / "run")
    logged = [json.loads(line)["lr"] for line in (tmp_path / "run" / "losses.jsonl").read_text().splitlines()]
    # warm-up 1/2, 2/2, then cosine from 1 over the 2 remaining steps: 1, 0.5
    assert logged == pytest.approx([5e-4, 1e-3, 1e-3, 5e-4])
    assert logged == pytest.approx([1e-3 * lr_factor(config, s, 4) for s in range(4)])


def test_an_optimizer_step_averages_its_micro_batches_seeds_each_and_clips(tmp_path):
    """One optimiser step of `gen3c train` and of distillation, on w (1 weight, 0), loss
    x0 + buffers · w: micro-batches (1, 3) and (2, 5) give losses 1 and 2 and gradients 3 and 5,
    averaged to 4; SGD at the step's lr 0.5 moves w by −2, or by −0.5 once the gradient norm is
    clipped to 1. Micro-step s of the run draws from seed (seed · 1000003 + s) · 64 + rank."""
    from gen3c.training.loop import _accelerator, _optimizer_step

    for clip, moved in ((0.0, -2.0), (1.0, -0.5)):
        config = config_from_dict({"run": {"seed": 7}, "train": {"gradient_accumulation_steps": 2, "grad_clip": clip}})
        accelerator = _accelerator(config, tmp_path)
        weight = torch.nn.Linear(1, 1, bias=False)
        weight.weight.data.zero_()
        model, optimizer = accelerator.prepare(weight, torch.optim.SGD(weight.parameters(), lr=123.0))
        seeds = []

        def loss_of(x0, buffers, generator, model=model, seeds=seeds):
            seeds.append(generator.initial_seed())
            return x0 + buffers * model.weight.sum()

        batches = iter([(torch.tensor(1.0), torch.tensor(3.0)), (torch.tensor(2.0), torch.tensor(5.0))])
        loss = _optimizer_step(accelerator, model, optimizer, list(model.parameters()), config, 3, 0.5, batches, loss_of)
        assert loss == pytest.approx(1.5)
        assert float(model.weight.detach()) == pytest.approx(moved)
        assert optimizer.param_groups[0]["lr"] == 0.5
        assert seeds == [(7 * 1_000_003 + 6) * 64, (7 * 1_000_003 + 7) * 64]  # step 3 of 2 micro-steps: 6, 7


def test_dropout_in_a_step_does_not_depend_on_draws_before_it(tmp_path):
    """LoRA dropout draws from torch's global generator; a resumed run drew a different number
    from it before its first step (its DataLoader's base seed, after the checkpoint's RNG state
    was restored), so its masks, losses and weights were not an uninterrupted run's. Each
    micro-step now seeds it: step 3 updates alike whatever drew from it before."""
    from gen3c.training.loop import _accelerator, _optimizer_step

    config = config_from_dict({"train": {"gradient_accumulation_steps": 2}})
    moved = []
    for before in (0, 1):
        accelerator = _accelerator(config, tmp_path)
        weight = torch.nn.Linear(64, 1, bias=False)
        weight.weight.data.fill_(0.5)
        model, optimizer = accelerator.prepare(weight, torch.optim.SGD(weight.parameters(), lr=1.0))
        torch.manual_seed(0)
        torch.rand(before, device=accelerator.device)  # what ran before the step: nothing, or one draw (where dropout draws)
        batches = iter([(torch.ones(64, device=accelerator.device), None)] * 2)

        def loss_of(x0, buffers, generator, model=model):
            return model(torch.nn.functional.dropout(x0, 0.5)).sum()

        _optimizer_step(accelerator, model, optimizer, list(model.parameters()), config, 3, 1.0, batches, loss_of)
        moved.append(model.weight.detach().clone())
    torch.testing.assert_close(moved[0], moved[1], rtol=0, atol=0)


def test_a_loss_that_is_not_finite_stops_the_run_before_its_step(tmp_path):
    """A diverged run (a NaN loss) went on: NaN weights were stepped into, checkpointed and
    exported as the trained model. It now stops in one line naming the step, the weights those
    of the step before (on every process: the check is on the loss all of them reduce)."""
    from gen3c.errors import Gen3cInputError
    from gen3c.training.loop import _accelerator, _optimizer_step

    config = config_from_dict({"train": {"gradient_accumulation_steps": 2}})
    accelerator = _accelerator(config, tmp_path)
    weight = torch.nn.Linear(1, 1, bias=False)
    weight.weight.data.fill_(0.25)
    model, optimizer = accelerator.prepare(weight, torch.optim.SGD(weight.parameters(), lr=1.0))
    batches = iter([(torch.tensor(1.0), torch.tensor(3.0)), (torch.tensor(float("nan")), torch.tensor(5.0))])

    def loss_of(x0, buffers, generator):
        return x0 + buffers * model.weight.sum()

    with pytest.raises(Gen3cInputError, match=r"^step 8: the loss is nan \(training diverged\): the run stops, its checkpoints before this step kept: lower train\.lr"):
        _optimizer_step(accelerator, model, optimizer, list(model.parameters()), config, 7, 0.5, batches, loss_of)
    assert float(model.weight.detach()) == 0.25


@pytest.mark.parametrize("clip", [0.0, 1.0])
def test_a_gradient_that_is_not_finite_stops_the_run_before_its_step(tmp_path, clip):
    """A finite loss with an infinite gradient (here d√w/dw at w = 0) was stepped into: the
    weights became NaN, and a checkpoint written after that step held them (the NaN loss of
    the next step stopped the run, its newest checkpoint unusable, the good one maybe deleted
    by log.keep_checkpoints). It now stops before the optimiser step, weights unchanged."""
    from gen3c.errors import Gen3cInputError
    from gen3c.training.loop import _accelerator, _optimizer_step

    config = config_from_dict({"train": {"grad_clip": clip}})
    accelerator = _accelerator(config, tmp_path)
    weight = torch.nn.Linear(1, 1, bias=False)
    weight.weight.data.zero_()
    model, optimizer = accelerator.prepare(weight, torch.optim.SGD(weight.parameters(), lr=1.0))
    batches = iter([(torch.tensor(1.0), None)])

    def loss_of(x0, buffers, generator):
        return x0 * model.weight.sum().sqrt()

    with pytest.raises(Gen3cInputError, match=r"^step 8: the gradient norm is not finite \(training diverged\): the run stops, its checkpoints before this step kept"):
        _optimizer_step(accelerator, model, optimizer, list(model.parameters()), config, 7, 0.5, batches, loss_of)
    assert float(model.weight.detach()) == 0.0


def test_a_run_after_another_in_one_process_starts_from_clean_accelerate_state(tmp_path):
    """accelerate keeps its settings and gradient-sync flag process-wide. A run stopped between
    micro-batches (a NaN loss here; Ctrl-C in a notebook) left the flag off, and every optimiser
    step of the next run's tokenizer stage (plain steps) was skipped, silently; a next run with
    another train.mixed_precision ended in accelerate's "restart your runtime" ValueError."""
    from gen3c.errors import Gen3cInputError
    from gen3c.training.loop import _accelerator, _optimizer_step

    config = config_from_dict({"train": {"gradient_accumulation_steps": 2}})
    accelerator = _accelerator(config, tmp_path)
    weight = torch.nn.Linear(1, 1, bias=False)
    model, optimizer = accelerator.prepare(weight, torch.optim.SGD(weight.parameters(), lr=1.0))
    batches = iter([(torch.tensor(float("nan")), torch.tensor(1.0))])
    with pytest.raises(Gen3cInputError, match="the loss is nan"):
        _optimizer_step(accelerator, model, optimizer, list(model.parameters()), config, 0, 1.0, batches, lambda x0, b, g: x0 + b * model.weight.sum())
    try:
        accelerator = _accelerator(config_from_dict({"train": {"mixed_precision": "bf16"}}), tmp_path)
        assert accelerator.mixed_precision == "bf16"
        weight = torch.nn.Linear(1, 1, bias=False)
        weight.weight.data.fill_(1.0)
        model, optimizer = accelerator.prepare(weight, torch.optim.SGD(weight.parameters(), lr=1.0))
        accelerator.backward(model.weight.sum())  # the tokenizer stage's step: gradient 1
        optimizer.step()
        assert float(weight.weight.detach()) == 0.0
    finally:
        _accelerator(config_from_dict({}), tmp_path)  # later tests' Accelerator() asks for mixed_precision "no"


def test_micro_batches_of_encoded_clips_are_the_sampled_rows():
    """With the clips' latents in memory, micro-batch k is the rows the sampler picks k-th."""
    from gen3c.training.loop import _micro_batches

    config = config_from_dict({"train": {"batch_size": 2}})
    latents = (torch.arange(5.0)[:, None], -torch.arange(5.0)[:, None])
    batches = _micro_batches(config, [4, 0, 3, 3, 1, 2], None, latents, None, 0.5, "cpu")
    for rows in ([4, 0], [3, 3], [1, 2]):
        x0, buffers = next(batches)
        assert x0[:, 0].tolist() == rows and buffers[:, 0].tolist() == [-r for r in rows]


def test_prompt_embedding_is_cut_or_zero_padded_never_replaced():
    """A max_sequence_length other than the cached length gave zeros in place of the checkpoint's
    embedding (the empty prompt, and in distillation GEN3C's long negative prompt)."""
    from gen3c.errors import Gen3cInputError
    from gen3c.models.prompt_cache import PromptEmbeddingCache
    from gen3c.training.loop import prompt_embedding

    short = torch.zeros(6, 4)
    short[:2] = torch.randn(2, 4)  # two tokens, then T5's zeros
    cache = PromptEmbeddingCache.from_embeddings({"": short})
    torch.testing.assert_close(prompt_embedding(cache, "", 3)[0], short[:3])
    padded = prompt_embedding(cache, "", 9)[0]
    torch.testing.assert_close(padded[:6], short)
    assert padded.shape == (9, 4) and not padded[6:].any()
    with pytest.raises(Gen3cInputError, match=r"max_sequence_length = 1 cuts the cached prompt '', which has 2 tokens: set it to at least 2"):
        prompt_embedding(cache, "", 1)


def test_config_values_from_python_are_named_by_type_and_shape_not_their_repr():
    """config_from_dict given arrays (a notebook's): one short line. Before: the whole repr, over
    lines ("data.resolution = array([[0., 0., …],\n [0., …"), at any size."""
    import numpy as np

    from gen3c.errors import Gen3cInputError
    from gen3c.training.config import config_from_dict

    for data, expected in [
        ({"data": {"resolution": np.zeros((100, 100))}},
         "config: data.resolution = a numpy array of shape (100, 100) must be a list of whole numbers (default [64, 112])"),
        ({"train": {"lr": torch.ones(3)}}, "config: train.lr = a torch tensor of shape (3,) must be a number (default 0.0001)"),
        ({"model": {"weights_dtype": torch.int8}}, "config: model.weights_dtype = dtype 'torch.int8': choose one of float32, bfloat16 (a name or a torch dtype)"),
        ({"data": {"paths": [1] * 100}}, "config: data.paths = a list of 100 items must be a list of strings (default [])"),
        ({"data": {"resolution": [64.0, 112]}}, "config: data.resolution = [64.0, 112] must be a list of whole numbers (default [64, 112])"),
        ({"model": {"checkpoint": "tiny", "transformer": {"w": np.ones((50, 50))}}},
         "config: model.transformer = a dict of 1 item would do nothing in this run: it is used with a run from scratch "),
    ]:  # fmt: skip
        with pytest.raises(Gen3cInputError) as caught:
            config_from_dict(data)
        assert str(caught.value).startswith(expected), str(caught.value)


@pytest.mark.parametrize(("student", "sample_steps", "expected"), [(True, None, 3), (True, 7, 7), (False, None, 20)])
def test_samples_of_a_fine_tuned_student_use_its_own_steps(tmp_path, sample_dir, monkeypatch, student, sample_steps, expected):
    """The samples of a fine-tuned 3-step student ran log.sample_steps (20) steps, a sampler it was
    not made for; now its own 3, unless log.sample_steps is set. A model that states no steps: 20."""
    import types

    from gen3c.pipelines.gen3c import Gen3cPipeline

    folder = tmp_path / "base"
    tiny_pipeline(seed=0).save_pretrained(folder)
    meta = {"chunk_frames": 9, "resolution": [H, W], "dtype": "float32", **({"num_steps": 3, "guidance": 0.0} if student else {})}
    (folder / "gen3c_model.json").write_text(json.dumps(meta))
    steps = []

    def sample(pipe, num_steps, **kwargs):  # the steps asked, not the sampling (the same code at any count)
        steps.append(num_steps)
        return types.SimpleNamespace(frames=torch.zeros(9, 3, H, W))

    monkeypatch.setattr(Gen3cPipeline, "__call__", sample)
    log = {"sample_every": 0} | ({"sample_steps": sample_steps} if sample_steps else {})
    config = tiny_config(tmp_path, model={"checkpoint": str(folder)}, run={"max_steps": 1}, log=log,
                         data={"kind": "sample", "paths": [str(sample_dir)]})  # fmt: skip
    train(config_from_dict(config), tmp_path / "run")
    assert steps == [expected]


def test_a_broken_moviepy_leaves_tensorboard_videos_out_with_a_note(tmp_path, monkeypatch):
    """TensorBoard videos need moviepy where it is installed; one that fails to import (an
    AttributeError as it is imported) is said in a note and the sample still written. Before: the
    AttributeError's traceback stopped the training run at its first sample."""
    import sys
    import types

    from gen3c.errors import collect_notes
    from gen3c.training import loop

    (tmp_path / "moviepy").mkdir()
    (tmp_path / "moviepy" / "__init__.py").write_text("raise AttributeError(\"module 'numpy' has no attribute 'fake'\")\n")
    monkeypatch.delitem(sys.modules, "moviepy", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    frames = torch.zeros(9, 3, 16, 16)
    monkeypatch.setattr(loop, "_pipeline", lambda *args: lambda **kwargs: types.SimpleNamespace(frames=frames))
    logged = []
    writer = types.SimpleNamespace(add_image=lambda tag, *args: logged.append(tag), add_video=lambda tag, *args, **kw: logged.append(tag))
    clip = {"video": torch.zeros(3, 9, 16, 16), "buffer_colors": torch.zeros(9, 2, 3, 16, 16), "buffer_masks": torch.zeros(9, 2, 1, 16, 16)}
    with collect_notes() as notes:
        path = loop._log_sample(torch.nn.Linear(1, 1), None, None, clip, config_from_dict({}), tmp_path, 1, writer, 2)
    assert path.is_file() and logged == ["sample/truth_buffer_sample"]
    assert notes == ["TensorBoard's sample videos left out: moviepy fails to import (AttributeError: module 'numpy' has no attribute 'fake'): "
                     "pip install --force-reinstall 'moviepy'"]  # fmt: skip


def test_a_preview_sample_that_diverges_stops_the_run_in_train_s_words(tmp_path):
    """A preview sample whose latents diverged (the trained weights blown up) stopped the run with
    gen3c generate's words: "sampling diverged at step 1 of 2 (--guidance 0) … check the model's
    weights (--verify_checksums)", flags train has not (its samples run unguided). It now says
    the step, that training diverged, and train's own way out, as a loss that is not finite does."""
    from gen3c.errors import Gen3cInputError
    from gen3c.training import loop

    pipe = tiny_pipeline(seed=0)
    pipe.transformer.register_forward_hook(lambda module, args, out: (out[0] * 1e8, *out[1:]))  # a diverged DiT
    T, H, W = 17, 32, 32
    clip = {"video": torch.zeros(3, T, H, W), "buffer_colors": torch.zeros(T, 2, 3, H, W), "buffer_masks": torch.ones(T, 2, 1, H, W)}
    with pytest.raises(Gen3cInputError) as caught:
        loop._log_sample(pipe.transformer, pipe.vae, pipe.prompt_cache, clip, config_from_dict({}), tmp_path, 8, None, 2)
    assert str(caught.value) == (
        "step 8: the preview sample (log.sample_every) diverged at its sampler step 1 of 2: its latents passed ±10000 or became NaN with "
        "this step's weights (training diverged): the run stops, its checkpoints before this step kept: lower train.lr (or set "
        "train.grad_clip, train.warmup_steps) and --resume from one (the run records the change), or start a new --out"
    )
    assert not (tmp_path / "samples").exists()


def test_config_whole_numbers_from_python_may_be_numpy_integers_and_are_stored_as_ints():
    """config_from_dict takes whole numbers by gen3c's one rule (errors.is_whole_number): numpy
    integers too (a notebook's np.arange), stored as Python ints so config.json can be written;
    a bool or a float, even 2.0, stays refused. Before: "run.max_steps = int64 '5' must be a whole number"."""
    import numpy as np

    from gen3c.errors import Gen3cInputError
    from gen3c.training.config import config_from_dict

    config = config_from_dict({"run": {"max_steps": np.int64(5)}, "data": {"resolution": [np.int32(32), np.int64(48)]},
                               "train": {"lr": np.int64(1)}})  # fmt: skip
    assert (config.run.max_steps, config.data.resolution, config.train.lr) == (5, [32, 48], 1.0)
    stored = (config.run.max_steps, *config.data.resolution, config.train.lr)
    assert [type(v) for v in stored] == [int, int, int, float]
    assert json.loads(config.to_json())["data"]["resolution"] == [32, 48]  # as the run saves it
    for value in (2.0, np.float64(2.0), True):
        refusal = r"^config: run\.max_steps = .* must be a whole number \(default 1000\)$"
        with pytest.raises(Gen3cInputError, match=refusal):
            config_from_dict({"run": {"max_steps": value}})


def test_config_numbers_from_python_may_be_numpy_floats_and_are_stored_as_floats():
    """A float setting takes numpy's floats (a notebook's np.float32 learning rate), stored as
    Python floats, as its whole numbers take numpy integers; a bool stays refused. Before:
    "train.lr = float32 '0.0001' must be a number"."""
    import numpy as np

    from gen3c.errors import Gen3cInputError
    from gen3c.training.config import config_from_dict

    config = config_from_dict({"train": {"lr": np.float32(0.25), "grad_clip": np.float16(0.5)},
                               "data": {"movement_distance": [np.float32(0.125), np.float64(0.5)]}})  # fmt: skip
    stored = (config.train.lr, config.train.grad_clip, *config.data.movement_distance)
    assert stored == (0.25, 0.5, 0.125, 0.5) and [type(v) for v in stored] == [float] * 4
    assert json.loads(config.to_json())["train"]["lr"] == 0.25
    for value in (True, np.bool_(True), "0.1"):
        with pytest.raises(Gen3cInputError, match=r"^config: train\.lr = .* must be a number \(default 0\.0001\)$"):
            config_from_dict({"train": {"lr": value}})
    with pytest.raises(Gen3cInputError, match=r"^config: train\.lr = nan must be finite$"):
        config_from_dict({"train": {"lr": np.float32("nan")}})


def test_config_switches_from_python_may_be_numpy_bools_and_are_stored_as_bools():
    """A true-or-false setting took only Python's bool: numpy's (a notebook's ``mask.any()``,
    ``np.bool_(True)``) was refused as "train.gradient_checkpointing = a numpy array of shape ()
    must be true or false", though numpy's numbers were taken for numbers. Now it is taken and
    stored as Python's bool (config.json writes true); a number or a text is still refused."""
    import numpy as np

    from gen3c.errors import Gen3cInputError
    from gen3c.training.config import config_from_dict

    config = config_from_dict({"train": {"gradient_checkpointing": np.bool_(True)}, "data": {"cache_clips": np.array(1) > 0}})
    assert config.train.gradient_checkpointing is True and config.data.cache_clips is True
    assert json.loads(config.to_json())["train"]["gradient_checkpointing"] is True
    for value in (1, np.int64(1), "true"):
        with pytest.raises(Gen3cInputError, match=r"^config: train\.gradient_checkpointing = .* must be true or false \(default False\)$"):
            config_from_dict({"train": {"gradient_checkpointing": value}})


def test_stop_after_from_python_is_a_whole_number_of_steps(tmp_path, monkeypatch):
    """train(stop_after=…) took any value that was not below 1: True ran 1 step, 2.5 ran 3 (and a
    progress bar of 2.5 steps), "2" was a TypeError. Refused now in one line, before anything
    starts, by gen3c's one rule for whole numbers; a numpy integer is taken."""
    import numpy as np

    from gen3c.errors import Gen3cInputError
    from gen3c.training import loop

    class Started(Exception):
        pass

    def started(*args, **kwargs):
        raise Started

    monkeypatch.setattr(loop, "check_devices", started)  # the run's first check: past the refusals
    for bad in ("2", True, 2.5, 0):
        with pytest.raises(Gen3cInputError, match=rf"^--stop_after {re.escape(repr(bad))} must be 1 or more, a whole number \(steps"):  # fmt: skip
            train(config_from_dict({}), tmp_path / "out", stop_after=bad)
    with pytest.raises(Started):
        train(config_from_dict({}), tmp_path / "out", stop_after=np.int64(2))
    assert not (tmp_path / "out").exists()


def test_config_tables_from_python_are_stored_as_config_json_holds_them():
    """model.transformer / tokenizer.config (kwargs tables) from Python: a numpy integer there was
    kept, and the run's config.json could not be written (TypeError: Object of type int64 is not
    JSON serializable, a traceback once the model was built); a tuple was kept, so a --resume
    found it differing from the list config.json holds. Now they are stored as TOML gives them, and
    a value config.json cannot hold is refused in one line naming it."""
    import numpy as np

    from gen3c.errors import Gen3cInputError

    table = {"num_layers": np.int64(2), "max_size": (np.int64(4), 8, 8), "scale": {"x": np.float32(0.5), "on": np.bool_(True)}}  # fmt: skip
    config = config_from_dict({"model": {"transformer": table}})
    stored = {"num_layers": 2, "max_size": [4, 8, 8], "scale": {"x": 0.5, "on": True}}
    assert config.model.transformer == stored and type(config.model.transformer["num_layers"]) is int
    written = json.loads(config.to_json())["model"]["transformer"]
    assert written == config.to_dict()["model"]["transformer"]  # as a resume compares them
    refusal = r"^config: tokenizer\.config\.kwargs\[1\] = a set of 2 items must be a number, a string, true or false, a list or a table"  # fmt: skip
    with pytest.raises(Gen3cInputError, match=refusal):
        config_from_dict({"tokenizer": {"config": {"kwargs": [1, {2, 3}]}}})


def test_config_dtypes_from_python_are_taken_as_their_names():
    """model.weights_dtype / export_dtype given torch dtypes (as gen3c.generate takes dtype) are
    their names. Before: "model.weights_dtype = dtype 'torch.bfloat16' must be a string"."""
    from gen3c.errors import Gen3cInputError
    from gen3c.training.config import config_from_dict

    config = config_from_dict({"model": {"weights_dtype": torch.bfloat16, "export_dtype": torch.float32}})
    assert (config.model.weights_dtype, config.model.export_dtype) == ("bfloat16", "float32")
    assert config.to_dict()["model"]["weights_dtype"] == "bfloat16"  # JSON, as the run saves it
    with pytest.raises(Gen3cInputError, match=r"^config: model\.export_dtype = 'float16': choose one of float32, bfloat16$"):
        config_from_dict({"model": {"export_dtype": torch.float16}})  # a dtype generation takes, training does not


@pytest.mark.parametrize(
    ("toml", "match"),
    [
        ("[data]\nresolution = [64.0, 112]\n", r"data\.resolution = \[64\.0, 112\] must be a list of whole numbers"),
        ("[data]\nkind = 'sample'\npaths = [1]\n", r"data\.paths = \[1\] must be a list of strings"),
        ("[train]\nlr = 'fast'\n", r"config '.*c\.toml': train\.lr = 'fast' must be a number"),
        ("[data]\nnum_workers = -1\n", r"data\.num_workers = -1 must be at least 0"),
        # A mistyped key listed every key of its section; the nearest one is named now (all of them when none is near).
        ("[train]\nlrr = 1e-4\n", r"^config '.*c\.toml': unknown key 'lrr' in \[train\]: did you mean 'lr'\?$"),
        ("[train]\nzzzqq = 1\n", r"^config '.*c\.toml': unknown key 'zzzqq' in \[train\]: use batch_size, buffer_dropout, .*, weight_decay$"),
        ("[train]\nmax_steps = 10\n", r"^config '.*c\.toml': unknown key 'max_steps' in \[train\]: it belongs under \[run\]$"),
        ("[trian]\nlr = 1e-4\n", r"^config '.*c\.toml': unknown section \[trian\]: did you mean \[train\]\?$"),
        ("[train]\nwarmup_steps = -3\n", r"train\.warmup_steps = -3 must be at least 0"),
        ("[train]\ngrad_clip = -1.0\n", r"train\.grad_clip = -1\.0 must be at least 0"),
        ("[log]\nkeep_checkpoints = 0\n", r"log\.keep_checkpoints = 0 must be at least 1"),
        # A key above every section header (TOML's root table) was called an unknown section.
        ("max_steps = 10\n[train]\nlr = 1e-4\n", r"config '.*c\.toml': max_steps = 10 stands above every section: put it under \[run\]$"),
        ("steps_max = 10\n", r"config '.*c\.toml': steps_max = 10 stands above every section and no section has that key: "
                              r"keys go under one of \[run\], \[data\]"),
        # A seed past 2**32 - 1 was refused by the first sample video, mid-run; from ~3e11 torch's step generators overflowed (a traceback).
        ("[run]\nseed = 4294967296\n", r"run\.seed = 4294967296 must be at most 4294967295$"),
        ("[log]\nsample_every = -5\n", r"log\.sample_every = -5 must be at least -1"),
        # An empty file ran every default (a from-scratch run of hours), as `gen3c train default` does.
        ("", r"^config '.*c\.toml' is empty: write its settings \(.*default\.toml shows every key\), or pass the shipped config 'default' for every default$"),
        ("\n  \n", r"^config '.*c\.toml' is empty: write its settings"),
        # 10⁸ sampler steps for the sample videos filled the memory with the schedule, at the end of the run.
        ("[log]\nsample_steps = 100000000\n", r"^config '.*c\.toml': log\.sample_steps = 100000000 must be at most 10000 \(0: the model's own\)$"),
        ("[lora]\ndropout = 2.0\n[train]\nmode = 'lora'\n[model]\ncheckpoint = 'tiny'\n", r"lora\.dropout = 2\.0 must lie in \[0, 1\)"),
        ("[tokenizer]\nlr = 0.0\n", r"tokenizer\.lr = 0\.0 must be positive"),
        ("[tokenizer]\nmax_minutes = -1.0\n", r"tokenizer\.max_minutes = -1\.0 must be ≥ 0 \(0: no time budget\)"),
        # A LoRA over a fresh DiT that is never saved: an adapter with no base to load it on.
        ("[train]\nmode = 'lora'\n", r'train\.mode = "lora" needs model\.checkpoint \(the base model the adapter is for.*"full"'),
        ("[data]\nscenes = ['moon']\n", r"data\.scenes = \['moon'\]: list presets among room"),
        # Values that would do nothing in the run they are in:
        ("[lora]\nrank = 4\n", r"lora\.rank = 4 would do nothing in this run: it is used with train\.mode = \"lora\"; remove it"),
        ("[model]\ncheckpoint = 'tiny'\n[tokenizer]\nsteps = 5\n", r"tokenizer\.steps = 5 would do nothing .*\(model\.checkpoint = \"\""),
        ("[model]\ncheckpoint = 'tiny'\ntransformer = {num_layers = 2}\n", r"model\.transformer = .* would do nothing"),
        ("[data]\nkind = 'sample'\npaths = ['x']\nnum_clips = 10\n", r"data\.num_clips = 10 would do nothing .* data\.kind = \"procedural\""),
        ("[data]\nclip_stride = 4\n", r"data\.clip_stride = 4 would do nothing .* data\.kind = \"sample\" or \"vipe\""),
        ("[tokenizer]\ninit = 'tok'\nconfig = {num_layers = 2}\n", r"tokenizer\.config = .* would do nothing .*\(tokenizer\.init = \"\"\)"),
        ("[train]\nmode = 'lora'\n[model]\ncheckpoint = 'tiny'\nexport_dtype = 'bfloat16'\n", r"model\.export_dtype = 'bfloat16' would do nothing"),
        ("[train]\nmode = 'distill'\nbuffer_dropout = 0.5\n[model]\ncheckpoint = 'tiny'\n", r"train\.buffer_dropout = 0\.5 would do nothing"),
        ("[train]\nmode = 'distill'\n[model]\ncheckpoint = 'tiny'\n[run]\nmax_steps = 9\n[distill]\nstage_max_steps = [1, 1, 1, 1]\n",
         r"run\.max_steps = 9 would do nothing"),
        # A cosine schedule whose warm-up lasts the whole run never decays:
        ("[run]\nmax_steps = 10\n[train]\nlr_schedule = 'cosine'\nwarmup_steps = 10\n",
         r"train\.lr_schedule = 'cosine' would do nothing in this run: it is used with train\.warmup_steps < run\.max_steps"),
        # Sampler steps of samples that are never made (log.sample_every = -1); no parentheses in parentheses:
        ("[log]\nsample_every = -1\nsample_steps = 5\n", r"^config '.*c\.toml': log\.sample_steps = 5 would do nothing in this run: it is used with "
         r"log\.sample_every ≥ 0 \(-1 makes no samples\); remove it or change that setting$"),
    ],
)
def test_bad_config_values_are_refused_in_one_line(tmp_path, toml, match):
    """Each of these was accepted: negative counts crashed later or were clamped silently, a list of
    the wrong element type passed, and settings the run never reads did nothing, silently."""
    from gen3c.errors import Gen3cInputError

    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(Gen3cInputError, match=match) as caught:
        load_config(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("c.yaml", "train:\n  lr: 1e-4\n", r"^config '.*c\.yaml' is not valid TOML \(.*line 1.*\): gen3c train reads TOML, not YAML: write it as TOML"),
        ("c.json", '{"train": {"lr": 1e-4}}\n', r"^config '.*c\.json' is not valid TOML \(.*\): gen3c train reads TOML, not JSON"),
        ("c.toml", "[train\nlr = 1e-4\n", r"^config '.*c\.toml' is not valid TOML \(.*line 1, column 7\)\): fix that line; .*default\.toml shows every key$"),
    ],
)
def test_a_config_that_is_no_toml_says_how_to_fix_it(tmp_path, name, text, match):
    """A TOML syntax error, or a YAML or JSON config, said only where TOML's reader stopped; now also the fix."""
    from gen3c.errors import Gen3cInputError

    (tmp_path / name).write_text(text)
    with pytest.raises(Gen3cInputError, match=match) as caught:
        load_config(tmp_path / name)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be"])
def test_a_config_with_a_byte_order_mark_is_read(tmp_path, encoding):
    """A config saved with a UTF-8 byte-order mark (Windows editors) was "not valid TOML (Invalid
    statement (at line 1, column 1))", one in UTF-16 (PowerShell 5's `>`) "is not UTF-8 text"; one
    in a Windows code page was "not UTF-8 text", now with the line to mend."""
    from gen3c.errors import Gen3cInputError

    text = "[train]\r\nlr = 3e-4\r\n"
    (tmp_path / "c.toml").write_bytes((b"\xfe\xff" if encoding == "utf-16-be" else b"") + text.encode(encoding))
    assert load_config(tmp_path / "c.toml").train.lr == 3e-4
    (tmp_path / "c.toml").write_bytes(b"[train]\r\n# lr for the caf\xe9 scenes\r\nlr = 3e-4\r\n")
    with pytest.raises(Gen3cInputError, match=r"^config '.*c\.toml' is not UTF-8 text \(line 2 holds the byte 0xe9\): save it as UTF-8$"):
        load_config(tmp_path / "c.toml")


@pytest.mark.parametrize(
    "case", ["vipe_as_sample", "sample_as_vipe", "upper_case_sample_as_vipe", "parent_folder", "parent_of_upper_case_sample", "empty_folder", "pickled_pt", "missing_checkpoint", "bad_transformer", "transformer_list", "distill_teacher", "hub_id",
             "batch_over_videos", "batch_over_procedural", "tokenizer_batch", "distill_batch"]
)
def test_bad_inputs_of_a_run_leave_no_output_folder(tmp_path, sample_dir, monkeypatch, case):
    """A wrong data folder or model was found after the output folder had config.json and a
    TensorBoard log in it; now it is refused first, naming the setting and the fix."""
    from layouts import scene, write_vipe

    rgb, depth, _, w2c, K = scene(n=10, h=72, w=128)
    vipe = write_vipe(tmp_path / "vipe", "clip", rgb, depth, w2c, K)
    (tmp_path / "empty").mkdir()
    upper = shutil.copytree(sample_dir, tmp_path / "parent" / "upper")  # rgb.MP4, which the reader takes
    (upper / "rgb.mp4").rename(upper / "rgb.MP4")
    import argparse

    pickled = tmp_path / "sample.pt"  # a legacy .pt that only full unpickling loads
    torch.save((torch.zeros(9, 3, H, W), torch.ones(9, 1, H, W), torch.ones(9, 1, H, W), w2c[:9], argparse.Namespace(K=K)), pickled)
    sample = {"kind": "sample", "resolution": [H, W], "num_frames": 9}
    cfg, match = {
        # The reader's advice was generate's ("pass it as --vipe_path") beside the config's.
        "vipe_as_sample": ({"data": {**sample, "paths": [str(vipe)]}}, r'^error: data\.paths\[0\] \S+ is a vipe folder, not a sample one: set data\.kind = "vipe"$'),
        "sample_as_vipe": ({"data": {**sample, "kind": "vipe", "paths": [str(sample_dir)]}},
                           r'^error: data\.paths\[0\] \S+ is a sample folder, not a vipe one: set data\.kind = "sample"$'),
        # Before: the reader's own refusal, then no hint: the marks were looked for as rgb.mp4 only.
        "upper_case_sample_as_vipe": ({"data": {**sample, "kind": "vipe", "paths": [str(upper)]}},
                                      r'^error: data\.paths\[0\] \S+ is a sample folder, not a vipe one: set data\.kind = "sample"$'),
        "parent_of_upper_case_sample": ({"data": {**sample, "paths": [str(upper.parent)]}},
                                        r"data\.paths\[0\] .*\(it holds 1 sample folders, e\.g\. 'upper': list those in data\.paths"),
        "parent_folder": ({"data": {**sample, "paths": [str(sample_dir.parent)]}},
                          r"data\.paths\[0\] .*\(it holds 1 sample folders, e\.g\. 'batch_0000': list those in data\.paths"),
        "empty_folder": ({"data": {**sample, "paths": [str(tmp_path / "empty")]}}, r"data\.paths\[0\] .* lacks rgb\.mp4"),
        # The advice was "pass --trust_checkpoint", a flag gen3c train does not have.
        "pickled_pt": ({"data": {**sample, "paths": [str(pickled)]}},
                       r"data\.paths\[0\] .* which can run code: convert it to a sample directory \(rgb\.mp4, depth\.npz, mask\.npz, camera\.npz\), which is read without unpickling$"),
        "missing_checkpoint": ({"model": {"checkpoint": str(tmp_path / "nowhere")}}, r"nowhere"),
        "bad_transformer": ({"model": {"transformer": {"num_layerz": 2}}}, r"model\.transformer = .* does not make a CosmosTransformer3DModel .*num_layerz"),
        # A number where the DiT takes a list ended in a TypeError traceback.
        "transformer_list": ({"model": {"transformer": {"patch_size": 2}}},
                             r"model\.transformer = \{'patch_size': 2\} does not make a CosmosTransformer3DModel \('int' object is not iterable\)"),
        "distill_teacher": ({"train": {"mode": "distill"}, "model": {"checkpoint": str(tmp_path / "nowhere")}}, r"nowhere"),
        # The loader's advice was generate's ("leave out --checkpoint_dir"), for a config key.
        "hub_id": ({"train": {"mode": "distill"}, "model": {"checkpoint": "nobody/no-such-model"}},
                   r"model\.checkpoint 'nobody/no-such-model' is not a folder here .*: convert GEN3C's weights with `gen3c convert"),
        # A batch of more clips than the data holds trained, each step repeating clips.
        "batch_over_videos": ({"data": {**sample, "paths": [str(sample_dir)]}, "model": {"checkpoint": "tiny"}, "train": {"batch_size": 2}},
                              r"train\.batch_size = 2 is more than the 1 clips of the data: .*lower it to 1, or add videos to data\.paths or lower data\.clip_stride"),
        "batch_over_procedural": ({"data": {"num_clips": 3}, "model": {"checkpoint": "tiny"}, "train": {"batch_size": 4}},
                                  r"train\.batch_size = 4 is more than the 3 clips .*lower it to 3, or raise data\.num_clips"),
        "tokenizer_batch": ({"data": {"num_clips": 3}, "tokenizer": {"batch_size": 4}}, r"tokenizer\.batch_size = 4 is more than the 3 clips"),
        "distill_batch": ({"data": {"num_clips": 3}, "model": {"checkpoint": "tiny"}, "train": {"mode": "distill", "batch_size": 4}},
                          r"train\.batch_size = 4 is more than the 3 clips"),
    }[case]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never the real hub from a test
    path = _write_toml({"run": {"max_steps": 1}, **cfg}, tmp_path / "c.toml")
    if case in ("bad_transformer", "transformer_list"):  # an inline table (json.dumps writes none)
        table = {"bad_transformer": "num_layerz = 2", "transformer_list": "patch_size = 2"}[case]
        path.write_text(f"[run]\nmax_steps = 1\n[model]\ntransformer = {{ {table} }}\n")
    out = tmp_path / "out"
    res = runner.invoke(app, ["train", str(path), "--out", str(out)])
    assert res.exit_code == 2, res.output
    import re

    assert re.search(match, " ".join(res.output.split())), res.output
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="refused only without GPUs")
@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"train": {"mixed_precision": "fp16"}}, r'train\.mixed_precision = "fp16" needs a GPU .* use "bf16" or "no"'),
        ({"model": {"weights_dtype": "bfloat16"}, "train": {"mode": "lora"}}, r'model\.weights_dtype = "bfloat16" needs a GPU .* use "float32"'),
    ],
)
def test_settings_a_cpu_cannot_run_are_refused(tmp_path, base_checkpoint, sample_dir, change, match):
    """accelerate has no fp16 autocast on CPUs: the run trained in float32 (the same losses as
    mixed_precision = "no") and said nothing. A bfloat16 tokenizer crashed at the first step with
    PyTorch's traceback (no bfloat16 avg_pool3d on CPUs)."""
    from gen3c.errors import Gen3cInputError

    if "weights_dtype" in change.get("model", {}):
        try:
            torch.nn.functional.avg_pool3d(torch.zeros(1, 1, 1, 2, 2, dtype=torch.bfloat16), (1, 2, 2))
            pytest.skip("this PyTorch pools bfloat16 on CPUs")
        except NotImplementedError:
            pass
    cfg = tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)}, data={"kind": "sample", "paths": [str(sample_dir)]})
    for name, table in change.items():
        cfg[name] = {**cfg.get(name, {}), **table}
    with pytest.raises(Gen3cInputError, match=match):
        train(config_from_dict(cfg), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["missing_checkpoint", "lora_targets", "lora_target_misspelt"])
def test_a_wrong_model_is_refused_before_the_clips_are_made(tmp_path, base_checkpoint, sample_dir, monkeypatch, case):
    """With data.cache_clips every clip was made (minutes for a real config) before a missing
    model.checkpoint or a lora.targets that matches nothing was found, the latter after the
    output folder was written."""
    from gen3c.errors import Gen3cInputError
    from gen3c.training import data

    def made(*args, **kwargs):
        raise AssertionError("the clips were made before the model was checked")

    monkeypatch.setattr(data, "CachedClips", made)
    sections, match = {
        "missing_checkpoint": ({"model": {"checkpoint": str(tmp_path / "nowhere")}},
                               r"model\.checkpoint '.*nowhere' does not exist: give a checkpoint folder .* or a packaged model \(tiny"),
        "lora_targets": ({"model": {"checkpoint": str(base_checkpoint)}, "train": {"mode": "lora"}, "lora": {"targets": ["nope"]}},
                         r"no linear of the DiT's blocks matches the LoRA targets \['nope'\]: check lora\.targets"),
        # One misspelt beside others that match was left out silently (an adapter on fewer linears).
        "lora_target_misspelt": ({"model": {"checkpoint": str(base_checkpoint)}, "train": {"mode": "lora"}, "lora": {"targets": ["to_q", "to_vv"]}},
                                 r"^lora\.targets 'to_vv' matches no linear of the DiT's blocks \(they end in to_q, to_k, to_v, to_out\.0, "
                                 r"ff\.net\.0\.proj, ff\.net\.2\): correct or remove it$"),
    }[case]  # fmt: skip
    cfg = tiny_config(tmp_path, data={"kind": "sample", "paths": [str(sample_dir)], "cache_clips": True}, **sections)
    with pytest.raises(Gen3cInputError, match=match):
        train(config_from_dict(cfg), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_cannot_be_made_is_refused_before_the_model_loads(tmp_path, base_checkpoint, sample_dir, monkeypatch):
    """--out under a file (or on a read-only disk) was found after the base model had loaded (a
    7B pipeline: minutes) and the clips had been read."""
    from gen3c.errors import Gen3cInputError
    from gen3c.training import loop

    def loaded(*args, **kwargs):
        raise AssertionError("the model loaded before the output folder was checked")

    monkeypatch.setattr(loop, "load_base_pipeline", loaded)
    (tmp_path / "file").write_text("x")
    cfg = tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)}, data={"kind": "sample", "paths": [str(sample_dir)]})
    with pytest.raises(Gen3cInputError, match=r"training output folder '.*file/run' cannot be created: '.*file' is a file"):
        train(config_from_dict(cfg), tmp_path / "file" / "run")


def test_a_disk_that_fills_up_while_a_checkpoint_is_written_is_one_line_naming_the_one_kept(tmp_path, base_checkpoint, sample_dir, monkeypatch):
    """Before: safetensors' 'No space left on device (os error 28)' came out as a traceback and
    'an unexpected SafetensorError … a bug in gen3c', the partial checkpoint left taking space."""
    import accelerate
    from safetensors import SafetensorError

    from gen3c.errors import Gen3cInputError

    config = config_from_dict(tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)}, run={"max_steps": 2},
                                          data={"kind": "sample", "paths": [str(sample_dir)]}, log={"checkpoint_every": 1}))  # fmt: skip
    out = tmp_path / "run"
    save_state = accelerate.Accelerator.save_state

    def disk_full_at_step_2(self, folder, **kwargs):
        if folder.endswith("step_0000002.part"):
            Path(folder, "model.safetensors").parent.mkdir(parents=True)
            Path(folder, "model.safetensors").write_bytes(b"half a checkpoint")
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return save_state(self, folder, **kwargs)

    monkeypatch.setattr(accelerate.Accelerator, "save_state", disk_full_at_step_2)
    kept = out / "checkpoints" / "step_0000001"
    with pytest.raises(Gen3cInputError) as refused:
        train(config, out)
    assert str(refused.value) == (
        f"the disk filled up while the run was writing into {str(out)!r} (No space left on device): free some space there; "
        f"the run stopped; the newest checkpoint is {str(kept)!r}: continue with --resume auto (the steps after it run again)"
    )
    assert sorted(p.name for p in kept.parent.iterdir()) == ["step_0000001"]  # the partial one is gone, its space freed
    assert {"model.safetensors", "optimizer.bin", "custom_checkpoint_0.pkl"} <= {p.name for p in kept.iterdir()}


@pytest.mark.slow
def test_a_checkpoint_is_written_whole_or_not_at_all(tmp_path, base_checkpoint, sample_dir, monkeypatch):
    """A run stopped while accelerate wrote a checkpoint left a step folder without its step
    counter; --resume auto then picked that folder and refused it as "not a checkpoint of
    gen3c train". Ctrl-C also said "no partial output was kept", and --resume auto in a folder
    without a checkpoint restarted from step 0 without a word."""
    import accelerate.accelerator

    from gen3c.errors import Gen3cInputError

    config = config_from_dict(tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)}, run={"max_steps": 3},
                                          data={"kind": "sample", "paths": [str(sample_dir)]}))  # fmt: skip
    out = tmp_path / "run"
    said: list[str] = []
    first = train(config, out, stop_after=1, resume="auto", echo=said.append)
    assert said[0] == f"--resume auto: {str(out)!r} holds no checkpoint yet: training starts at step 0"
    assert first.checkpoint == out / "checkpoints" / "step_0000001"

    def stopped_while_saving(*args, **kwargs):  # Ctrl-C before the step counter is written
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(accelerate.accelerator, "save_custom_state", stopped_while_saving)
        with pytest.raises(KeyboardInterrupt, match=r"stopped; the newest checkpoint is '.*step_0000001': continue with --resume auto"):
            train(config, out, resume="auto", stop_after=1)
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == ["step_0000001"]
    second = train(config, out, resume="auto")
    assert second.steps == 3 and (out / "model").is_dir()
    assert not list((out / "checkpoints").glob(".*"))  # the stopped save's folder is gone

    # A checkpoint damaged by hand (or by an older gen3c) is one line, not accelerate's traceback.
    (second.checkpoint / "optimizer.bin").unlink()
    with pytest.raises(Gen3cInputError, match=r"--resume: checkpoint '.*step_0000003' is incomplete or damaged .*: pass an earlier one"):
        train(replace_steps(config, 4), out, resume=str(second.checkpoint))


def test_a_rewind_stopped_while_setting_aside_moves_the_rest_when_run_again(tmp_path, base_checkpoint, sample_dir, monkeypatch):
    """A rewind moved the later checkpoints aside, then the model and card exported from them: a
    run stopped in between left no later checkpoint, so the same --resume again saw no rewind and
    left the abandoned history's model/ and MODEL_CARD.md beside the new one. The checkpoints now
    go last, the card before the model."""
    import pathlib

    config = config_from_dict(tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)}, run={"max_steps": 3},
                                          log={"checkpoint_every": 1, "keep_checkpoints": 3},
                                          data={"kind": "sample", "paths": [str(sample_dir)]}))  # fmt: skip
    out = tmp_path / "run"
    train(config, out)
    first = str(out / "checkpoints" / "step_0000001")
    replace, moves = pathlib.Path.replace, []

    def stopped_after_two_moves(self, target):
        if len(moves) == 2:
            raise KeyboardInterrupt
        moves.append(self.name)
        return replace(self, target)

    with monkeypatch.context() as patch:
        patch.setattr(pathlib.Path, "replace", stopped_after_two_moves)
        with pytest.raises(KeyboardInterrupt):
            train(config, out, resume=first, stop_after=1)
    train(config, out, resume=first, stop_after=1)
    aside = out / "checkpoints" / "superseded"
    assert not (out / "model").exists() and not (out / "MODEL_CARD.md").exists()
    assert sorted(p.name for p in aside.iterdir()) == ["MODEL_CARD.md", "model", "step_0000002", "step_0000003"]


def test_resuming_from_an_earlier_checkpoint_sets_the_later_ones_aside(tmp_path, base_checkpoint, sample_dir):
    """--resume OUT/checkpoints/step_2 while step_4 existed left step_4 in place, and pruning
    then kept it over step_2: the next --resume auto went back to step_4, whose steps
    losses.jsonl (cut to step 3) no longer held. The samples of later steps, model/ and
    MODEL_CARD.md of the abandoned history stayed beside the new one, and so did its TensorBoard
    events past step 2."""
    from dataclasses import replace

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gen3c.training.loop import checkpoints

    config = config_from_dict(tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)},
                                          log={"checkpoint_every": 2, "sample_every": 2, "sample_steps": 1},
                                          data={"kind": "sample", "paths": [str(sample_dir)]}))  # fmt: skip
    out = tmp_path / "run"
    train(config, out)
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_0000002.mp4", "step_0000004.mp4"]
    said: list[str] = []
    # [log] may change on resume: steps logged every 2 leave step 3 unlogged, so only the purge hides 3 and 4.
    every_2 = replace(config, log=replace(config.log, every=2))
    rewound = train(every_2, out, resume=str(out / "checkpoints" / "step_0000002"), stop_after=1, echo=said.append)
    assert rewound.steps == 3
    assert [p.name for p in checkpoints(out)] == ["step_0000002", "step_0000003"]
    aside = out / "checkpoints" / "superseded"
    assert (aside / "step_0000004" / "custom_checkpoint_0.pkl").is_file()
    assert said[0] == (f"--resume from step 2: what later steps made (step_0000004, 1 sample video(s), model, MODEL_CARD.md) is moved to "
                       f"{str(aside)!r}, since those steps run again (delete it to free the space)")  # fmt: skip
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_0000002.mp4", "step_0000003.mp4"]
    assert (aside / "samples" / "step_0000004.mp4").is_file()
    assert not (out / "model").exists() and not (out / "MODEL_CARD.md").exists()
    assert (aside / "model" / "transformer").is_dir() and "- **Steps**: 4 " in (aside / "MODEL_CARD.md").read_text()
    logs = EventAccumulator(str(out / "logs"))
    logs.Reload()
    assert [e.step for e in logs.Scalars("train/loss")] == [1, 2]

    def logged_steps() -> list[int]:
        return [json.loads(line)["step"] for line in (out / "losses.jsonl").read_text().splitlines()]

    assert logged_steps() == [1, 2, 3]
    resumed = train(config, out, resume="auto")
    assert (resumed.steps, len(resumed.losses), logged_steps()) == (4, 1, [1, 2, 3, 4])
    assert (out / "model" / "transformer").is_dir() and "- **Steps**: 4 " in (out / "MODEL_CARD.md").read_text()

    # A superseded checkpoint resumes into its run: --resume OUT/checkpoints/superseded/step_4 was
    # refused as another run's ("resume OUT/checkpoints with --out OUT/checkpoints"). It goes back
    # among the checkpoints, the run's own step_4 of the history it leaves takes its place aside,
    # and losses.jsonl is the checkpoint's own history.
    (out / "checkpoints" / "step_0000004" / "mark").write_text("the history left")
    with (out / "losses.jsonl").open("a") as f:
        f.write(json.dumps({"step": 4, "loss": 123.0, "lr": 0.0}) + "\n")
    back = train(config, out, resume=str(aside / "step_0000004"), echo=said.append)
    assert back.steps == 4 and (aside / "step_0000004" / "mark").is_file()
    assert [p.name for p in checkpoints(out)][-1] == "step_0000004" and not (out / "checkpoints" / "step_0000004" / "mark").exists()
    assert logged_steps() == [1, 2, 3, 4] and 123.0 not in [json.loads(line)["loss"] for line in (out / "losses.jsonl").read_text().splitlines()]
    assert (out / "model" / "transformer").is_dir()


def test_checkpoints_are_kept_and_resumed_by_step_number(tmp_path):
    """Checkpoints were pruned and --resume auto picked by name: past step 9 999 999 (8 digits)
    step_10000000 sorted before step_9999999, so the newest was deleted and an older one resumed."""
    from gen3c.training.loop import _latest_checkpoint, _save_checkpoint

    class Saver:  # the part of accelerate's Accelerator a checkpoint uses, one process
        is_main_process = True

        def wait_for_everyone(self) -> None:
            pass

        def save_state(self, folder: str, safe_serialization: bool) -> None:
            Path(folder).mkdir(parents=True)

    for step in (9_999_998, 9_999_999):
        _save_checkpoint(Saver(), tmp_path, step, keep=2)
    _save_checkpoint(Saver(), tmp_path, 10_000_000, keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_10000000", "step_9999999"]
    assert _latest_checkpoint(tmp_path).name == "step_10000000"


def replace_steps(config, max_steps: int):
    from dataclasses import replace

    return replace(config, run=replace(config.run, max_steps=max_steps))


def test_stop_message_says_what_is_kept(tmp_path):
    """It nested parentheses ("(written at the end only (log.checkpoint_every = 0; …))") and told a
    run stopped after some steps that "the next run starts at step 0", which the same command then
    refused (the folder holds the run's losses: --resume auto starts it again); a distillation's
    finished stages went unmentioned."""
    from gen3c.training.loop import stopped_message

    scratch, out = config_from_dict({}), tmp_path / "run"  # its tokenizer stage writes no checkpoint
    assert stopped_message(scratch, out) == ("stopped before the tokenizer stage's end (it writes no checkpoint; tokenizer.max_minutes bounds it): "
                                             "nothing to resume; the same command starts it again from step 0")  # fmt: skip
    config = config_from_dict({"model": {"checkpoint": "tiny"}})
    assert stopped_message(config, out) == ("stopped before the first checkpoint (log.checkpoint_every = 0 writes one at the end only: "
                                            "set it to make a long run resumable): nothing to resume; the same command starts it again from step 0")  # fmt: skip
    (out / "stages" / "cfg_33" / "transformer").mkdir(parents=True)
    (out / "stages" / "cfg_33" / "transformer" / "config.json").write_text("{}")
    (out / "losses.jsonl").write_text('{"step": 1}\n')
    every = config_from_dict({"model": {"checkpoint": "tiny"}, "log": {"checkpoint_every": 50}})
    assert stopped_message(every, out) == (f"stopped before the first checkpoint (one is written every 50 steps); the finished stages' students "
                                           f"are kept in {str(out / 'stages' / 'cfg_33')!r}: nothing to resume; --resume auto starts the run again from step 0")  # fmt: skip
    (out / "tokenizer").mkdir()
    assert "--resume auto trains the DiT from step 0 with it" in stopped_message(config, out)
    (out / "checkpoints" / "step_0000002").mkdir(parents=True)
    assert stopped_message(config, out) == (f"stopped; the newest checkpoint is {str(out / 'checkpoints' / 'step_0000002')!r}: "
                                            "continue with --resume auto (the steps after it run again)")  # fmt: skip


def test_gen3c_train_says_notes_in_one_line(tmp_path, monkeypatch):
    """gen3c train printed its notes (a video too short for a clip) and torch's as Python's
    warnings: the file and line of the code, the source line under it."""
    import gen3c.training
    from gen3c.errors import note

    def noted(*args, **kwargs):
        note("data.paths[0] 'v' has 9 frames, fewer than data.num_frames = 17: no clip is cut from it")
        raise KeyboardInterrupt("stopped")

    monkeypatch.setattr(gen3c.training, "run_training", noted)
    res = runner.invoke(app, ["train", "small_procedural", "--out", str(tmp_path / "run")])
    assert res.exit_code == 130 and res.output.splitlines() == [
        "note: data.paths[0] 'v' has 9 frames, fewer than data.num_frames = 17: no clip is cut from it", "interrupted: stopped"], res.output


def test_more_workers_than_cpus_is_one_note_naming_the_setting(tmp_path, monkeypatch):
    """small_procedural's 14 workers on a 2-CPU machine: torch's warning, twice (once per loader),
    in its own words and naming no setting."""
    import os
    import warnings

    import gen3c.training.loop as loop

    class Ran(Exception):
        pass

    def run(*args, **kwargs):  # as torch's DataLoader warns when its iterator starts
        warnings.warn("This DataLoader will create 3 worker processes in total. Our suggested max number of worker in current system is 2, …", stacklevel=2)
        raise Ran

    monkeypatch.setattr(loop, "_start_run", run)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    with warnings.catch_warnings(record=True) as said, pytest.raises(Ran):
        warnings.simplefilter("always")
        train(config_from_dict(tiny_config(tmp_path, data={"num_workers": 3})), tmp_path / "run")
    assert [str(w.message) for w in said if issubclass(w.category, UserWarning)] == [
        "data.num_workers = 3 is more than the 2 CPUs this process may use: clips are made more slowly than with 2 or fewer; lower it"]


def _clips_raise_in_workers(monkeypatch, error: Exception) -> None:
    """gen3c.training.data.make_dataset's datasets raise ``error`` for every clip a DataLoader
    worker makes (data.num_workers > 0); clips made in the main process are as they were."""
    from torch.utils.data import Dataset, get_worker_info

    import gen3c.training.data as data

    class RaisingInWorkers(Dataset):
        def __init__(self, dataset):
            self.dataset = dataset

        def __len__(self):
            return len(self.dataset)

        def __getitem__(self, index):
            if get_worker_info() is not None:
                raise error
            return self.dataset[index]

    made = data.make_dataset
    monkeypatch.setattr(data, "make_dataset", lambda config: RaisingInWorkers(made(config)))


def test_a_clip_refused_in_a_dataloader_worker_is_its_own_line(tmp_path, monkeypatch):
    """data.num_workers = 1 and a clip refused as it is made (a video changed on disk): the CLI
    said torch's "Caught Gen3cInputError in DataLoader worker process 0. Original Traceback …"
    over many lines; now the worker's own line and exit code 2, and its type through train()."""
    from gen3c.errors import Gen3cModelError

    said = "data.paths[0] 'v' changed since the run read it at its start: run again"
    _clips_raise_in_workers(monkeypatch, Gen3cModelError(said))
    path = _write_toml(tiny_config(tmp_path, data={"num_workers": 1}), tmp_path / "tiny.toml")
    res = runner.invoke(app, ["train", str(path), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines()[-1] == f"error: {said}", res.output
    assert "Traceback" not in res.output and "worker process" not in res.output
    with pytest.raises(Gen3cModelError) as caught:
        train(config_from_dict(tiny_config(tmp_path, data={"num_workers": 1})), tmp_path / "api")
    assert str(caught.value) == said


@pytest.fixture(params=["fork", "spawn"])
def start_method(request):
    """DataLoader workers started as Linux does by default (fork) and as macOS and Windows do (spawn)."""
    import multiprocessing

    before = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method(request.param, force=True)
    yield request.param
    multiprocessing.set_start_method(before, force=True)


def _write_12_frames(folder, holed_rows: int = 0, depth_width: int = 128) -> Path:
    """A 72×128 sample directory of 12 frames, its depth NaN in its top ``holed_rows`` rows (said in a
    note when its frames are read) and ``depth_width`` wide (narrower: refused when they are read)."""
    import numpy as np
    from layouts import scene, write_sample

    rgb, depth, _, w2c, K = scene(n=12, h=72, w=128)
    depth = depth[:, :, :depth_width].copy()
    depth[:, :holed_rows] = np.nan
    return write_sample(folder, rgb, depth, np.ones_like(depth, dtype=bool), w2c, K)


def test_the_notes_of_a_videos_frames_read_by_dataloader_workers_are_said_once_as_notes(start_method, tmp_path, base_checkpoint, capfd, monkeypatch):
    """data.num_workers workers making clips of one video: each worker said the notes of
    its first read of the video itself, so they came once per worker, under fork from a copy of
    the CLI's console (lost where that is not the terminal), under spawn as Python's raw warnings
    ("…/data.py:256: UserWarning: …", the source line under it), and from every rank. Now the main
    process says them once, as a "note:" line (a rank's other than 0 is silenced by the CLI)."""
    from gen3c.io import gen3c_sample

    monkeypatch.setattr(gen3c_sample, "check_depth_conventions", lambda *args, **kwargs: None)  # (2 s a read; forked workers only)
    video = _write_12_frames(tmp_path / "holed", holed_rows=4)
    # (One spawned worker: spawned ones start slowly and run the depth check the patch above cannot
    # reach, and what spawn adds, raw warnings, shows with one. Two forked ones each read the video.)
    workers = 1 if start_method == "spawn" else 2
    cfg = tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)}, run={"max_steps": 2}, train={"batch_size": 1},
                      data={"kind": "sample", "paths": [str(video)], "num_workers": workers})  # fmt: skip
    res = runner.invoke(app, ["train", str(_write_toml(cfg, tmp_path / "tiny.toml")), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    # A clip a step (with two workers, one from each): each worker reads the video whole (4 rows ×
    # 128 × 12 frames) as its first clip is made, its notes carried with that clip.
    said = f"note: sample directory {str(video)!r} depth.npz: 6144 pixels (5.6%) of NaN/inf depth sit far away"
    assert [line.startswith(said) for line in res.output.splitlines() if "NaN/inf" in line] == [True], res.output
    workers_said = capfd.readouterr()
    assert "Warning" not in workers_said.err + workers_said.out, workers_said


def test_video_clips_batched_by_a_dataloader_of_ones_own_hold_only_their_tensors(tmp_path, monkeypatch):
    """gen3c.training.data's clips in a DataLoader of one's own (torch's default collate, workers):
    a worker's first clip of a video with notes held a 'frame_notes' entry its other clips lacked,
    so a batch of 2 was a KeyError in the collate, and a batch of 1 handed the entry on beside the
    tensors. Only gen3c's own batches (clip_batches) carry the notes now; the clips are the tensors."""
    from torch.utils.data import DataLoader

    from gen3c.io import gen3c_sample
    from gen3c.training import data

    monkeypatch.setattr(gen3c_sample, "check_depth_conventions", lambda *args, **kwargs: None)  # (2 s a read)
    video = _write_12_frames(tmp_path / "holed", holed_rows=4)
    table = {"kind": "sample", "paths": [str(video)], "resolution": [H, W], "num_frames": 9, "clip_stride": 1}
    clips = data.make_dataset(config_from_dict({"data": table}).data)
    tensors = ["buffer_colors", "buffer_masks", "video"]
    for batch_size in (2, 1):  # (its worker says the notes)
        batch = next(iter(DataLoader(clips, batch_size=batch_size, num_workers=1)))
        assert sorted(batch) == tensors and len(batch["video"]) == batch_size


def test_a_video_refused_for_its_frames_in_a_dataloader_worker_is_one_line_naming_its_data_path(tmp_path, base_checkpoint, monkeypatch):
    """What only a video's frames tell (here depth narrower than its frames) is refused as its
    first clip is made, in a DataLoader worker: the line named the video as "data.paths entry
    '…'", not which entry; now "data.paths[1] '…'", the worker's one line, exit code 2."""
    from gen3c.io import gen3c_sample

    monkeypatch.setattr(gen3c_sample, "check_depth_conventions", lambda *args, **kwargs: None)  # (2 s a read)
    good, narrow = _write_12_frames(tmp_path / "good"), _write_12_frames(tmp_path / "narrow", depth_width=96)
    cfg = tiny_config(tmp_path, model={"checkpoint": str(base_checkpoint)},
                      data={"kind": "sample", "paths": [str(good), str(narrow)], "num_workers": 2})  # fmt: skip
    res = runner.invoke(app, ["train", str(_write_toml(cfg, tmp_path / "tiny.toml")), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2, res.output
    said = f"error: data.paths[1] {str(narrow)!r}: sample directory {str(narrow)!r} rgb.mp4 is 72×128 but depth.npz is 72×96"
    assert res.output.strip().splitlines()[-1].startswith(said), res.output
    assert "Traceback" not in res.output and "worker process" not in res.output


@pytest.mark.parametrize("raised", [
    "unable to write to file </torch_4242_2661379403_0>: No space left on device (28)",
    "DataLoader worker (pid 4242) is killed by signal: Bus error. It is possible that dataloader's workers are out of "
    "shared memory. Please try to raise your shared memory limit.",
], ids=["no space in /dev/shm", "SIGBUS"])  # fmt: skip
def test_shared_memory_the_workers_fill_is_one_line_naming_num_workers_and_shm_size(raised, tmp_path, monkeypatch):
    """Docker's 64 MB /dev/shm fills as DataLoader workers pass clips: torch's RuntimeError (in a
    worker, wrapped as "Caught RuntimeError in DataLoader worker process 0 …") was the CLI's
    catch-all with its traceback, "an unexpected RuntimeError … a bug in gen3c"."""
    _clips_raise_in_workers(monkeypatch, RuntimeError(raised))
    path = _write_toml(tiny_config(tmp_path, data={"num_workers": 1}), tmp_path / "tiny.toml")
    res = runner.invoke(app, ["train", str(path), "--out", str(tmp_path / "run")])
    assert res.exit_code == 2, res.output
    last = res.output.strip().splitlines()[-1]
    assert re.fullmatch(r"error: the data loader's workers ran out of shared memory \(/dev/shm\) passing clips to the run \((No space left on device|a worker was killed by SIGBUS)\): "
                        r"set data\.num_workers lower \(0 passes none\), or give the machine or container more \(docker run --shm-size 8g\); the run stopped.*", last), res.output  # fmt: skip
    assert "Traceback" not in res.output


def test_a_resumed_run_notes_no_learning_rate_of_a_tokenizer_it_trained_already(tmp_path, monkeypatch):
    """A from-scratch run resumed with its tokenizer/ trained still got the note of tokenizer.lr,
    a setting it no longer uses; a fresh run, which trains its tokenizer, still gets it."""
    import gen3c.training.loop as loop
    from gen3c.errors import collect_notes
    from gen3c.training.tokenizer import build_tokenizer

    class Started(Exception):
        pass

    def start(*args, **kwargs):
        raise Started

    monkeypatch.setattr(loop, "_start_run", start)
    config = config_from_dict(tiny_config(tmp_path, tokenizer={"lr": 0.5}))
    with collect_notes() as notes, pytest.raises(Started):
        train(config, tmp_path / "fresh")
    assert len(notes) == 1 and notes[0].startswith("tokenizer.lr = 0.5 is far above"), notes
    build_tokenizer(config.tokenizer.config).save_pretrained(tmp_path / "run" / "tokenizer")  # as the tokenizer stage leaves it
    with collect_notes() as notes, pytest.raises(Started):
        train(config, tmp_path / "run", resume="auto")
    assert notes == []


def test_ctrl_c_of_gen3c_train_says_what_is_kept_wherever_it_stops(tmp_path, monkeypatch):
    """Ctrl-C before the run's own handler (the packages loading, the config read, CUDA starting in
    the device check) said the generic "interrupted: no partial output was kept", though a
    --resume's folder kept its checkpoints; one as the progress bars closed after the last step
    said so of a finished run; a second Ctrl-C as the first unwound lost the first's message."""
    import contextlib

    import gen3c.cli
    import gen3c.training.config
    import gen3c.training.loop
    from gen3c.training.loop import TrainResult

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    def interrupted(argv=("train", "small_procedural", "--out", str(out))):
        res = runner.invoke(app, list(argv))
        assert res.exit_code == 130 and "Traceback" not in res.output, (res.exit_code, res.output, res.exception)
        return " ".join(res.output.split())

    with monkeypatch.context() as patch:  # as the config is read
        patch.setattr(gen3c.training.config, "load_config", stopped)
        assert interrupted() == f"interrupted: stopped before training began: nothing was written to --out {str(out)!r}; run the same command again"
    assert not out.exists()
    (out / "checkpoints" / "step_0000002").mkdir(parents=True)
    with monkeypatch.context() as patch:  # as CUDA starts, resuming
        patch.setattr(gen3c.training.loop, "check_devices", stopped)
        said = interrupted(("train", "small_procedural", "--out", str(out), "--resume", "auto"))
        assert said == f"interrupted: stopped; the newest checkpoint is {str(out / 'checkpoints' / 'step_0000002')!r}: continue with --resume auto (the steps after it run again)"

    @contextlib.contextmanager
    def bars_stopped_as_they_close(*args):
        yield None
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # as the bars close after the last step
        patch.setattr(gen3c.cli, "progress_bars", bars_stopped_as_they_close)
        patch.setattr(gen3c.training.loop, "train", lambda *a, **k: TrainResult(out, 3, exported=out / "model"))
        assert interrupted() == f"interrupted: stopped as the run ended, after its last step: {str(out / 'model')!r} is written"

        def said_then_stopped_again(*args, **kwargs):
            raise KeyboardInterrupt("stopped; the newest checkpoint is 'x': continue with --resume auto")

        patch.setattr(gen3c.training.loop, "train", said_then_stopped_again)  # and a second Ctrl-C as the bars close
        assert interrupted() == "interrupted: stopped; the newest checkpoint is 'x': continue with --resume auto"


def test_a_trained_tokenizer_belongs_to_its_run(tmp_path):
    """A fresh run into a folder holding OUT/tokenizer (a run stopped after its tokenizer stage)
    used that tokenizer and skipped the stage: its [tokenizer] settings did nothing. A resumed
    run with other tokenizer settings did the same."""
    from gen3c.errors import Gen3cInputError
    from gen3c.training.loop import check_run_folder

    config = config_from_dict(tiny_config(tmp_path))
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "config.json").write_text(config.to_json())
    with pytest.raises(Gen3cInputError, match=r"already holds a training run \(checkpoints/, losses\.jsonl, tokenizer/\)"):
        check_run_folder(config, tmp_path, None)
    check_run_folder(config, tmp_path, "auto")
    changed = config_from_dict(tiny_config(tmp_path, tokenizer={"steps": 5}))
    with pytest.raises(Gen3cInputError, match=r"--resume: tokenizer\.steps = 5 differs from the run's 2"):
        check_run_folder(changed, tmp_path, "auto")


def test_a_run_never_replaces_what_no_training_run_wrote_in_its_out(tmp_path):
    """`gen3c train my.toml --out .` in a project folder replaced its config.json with the run's and
    deleted all its model/ held (the run's export took its place). Refused now, before anything is
    written; a folder holding only other files, or a gen3c run stopped before its first checkpoint
    (its config.json alone), is written into as before."""
    from gen3c.errors import Gen3cInputError
    from gen3c.training.loop import check_run_folder, train

    config = config_from_dict(tiny_config(tmp_path))
    project = tmp_path / "project"
    (project / "model").mkdir(parents=True)
    (project / "model" / "mine.txt").write_text("keep")
    (project / "config.json").write_text('{"my": "settings"}')
    before = sorted((p.relative_to(project), p.read_bytes() if p.is_file() else None) for p in project.rglob("*"))
    for resume in (None, "auto"):
        with pytest.raises(Gen3cInputError) as refused:
            train(config, project, resume=resume)
        assert str(refused.value) == (f"--out '{project}' holds config.json, model/, which no gen3c training run wrote and a run "
                                      "would replace: choose a new or empty --out")  # fmt: skip
    assert sorted((p.relative_to(project), p.read_bytes() if p.is_file() else None) for p in project.rglob("*")) == before
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "notes.txt").write_text("mine")
    check_run_folder(config, tmp_path / "notes", None)
    (tmp_path / "stopped").mkdir()
    (tmp_path / "stopped" / "config.json").write_text(config.to_json())
    check_run_folder(config, tmp_path / "stopped", None)


def test_a_checkpoint_of_another_run_does_not_resume_into_a_folder_holding_a_run(tmp_path):
    """--resume A/checkpoints/step_… --out B, B holding a run of its own, mixed the two (B's
    losses.jsonl, checkpoints and card); into an empty B it continues A's run there."""
    from gen3c.errors import Gen3cInputError
    from gen3c.training.loop import check_run_folder

    config = config_from_dict(tiny_config(tmp_path))
    for run in ("a", "b"):
        (tmp_path / run / "checkpoints" / "step_0000002").mkdir(parents=True)
        (tmp_path / run / "config.json").write_text(config.to_json())
    checkpoint = str(tmp_path / "a" / "checkpoints" / "step_0000002")
    with pytest.raises(Gen3cInputError, match=r"--out '.*b' already holds a training run, not the one of --resume .*: resume .*a' with --out .*a', or pass a new --out to continue it there"):
        check_run_folder(config, tmp_path / "b", checkpoint)
    check_run_folder(config, tmp_path / "a", checkpoint)
    check_run_folder(config, tmp_path / "c", checkpoint)


@pytest.mark.slow
def test_a_tokenizer_is_written_whole_or_not_at_all(tmp_path, sample_dir, monkeypatch):
    """OUT/tokenizer was written in place: a run stopped while writing it left a config without
    weights, and --resume auto (which reads OUT/tokenizer instead of training one) then failed
    in diffusers' from_pretrained with a traceback."""
    from diffusers import AutoencoderKLCosmos

    def stopped_while_saving(self, folder, *args, **kwargs):  # the config written, not the weights
        self.save_config(folder)
        raise KeyboardInterrupt

    config = config_from_dict(tiny_config(tmp_path, run={"max_steps": 1}, data={"kind": "sample", "paths": [str(sample_dir)]}))
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(AutoencoderKLCosmos, "save_pretrained", stopped_while_saving)
        with pytest.raises(KeyboardInterrupt, match="stopped before the tokenizer stage's end"):
            train(config, out)
    assert not (out / "tokenizer").exists()
    result = train(config, out, resume="auto")
    assert result.steps == 1 and result.tokenizer is not None
    assert (out / "tokenizer" / "diffusion_pytorch_model.safetensors").is_file() and not list(out.glob(".tokenizer*"))


def test_a_loss_line_cut_short_is_dropped_on_resume(tmp_path):
    """A run killed (or a disk full) while writing losses.jsonl left a torn last line; --resume
    then stopped with json's traceback (JSONDecodeError) instead of training on."""
    from gen3c.training.loop import trim_losses

    lines = [json.dumps({"step": s, "loss": 0.5, "lr": 1e-3}) for s in (1, 2, 3)]
    (tmp_path / "losses.jsonl").write_text("\n".join(lines) + '\n{"step": 4, "lo')
    trim_losses(tmp_path, 2)
    assert (tmp_path / "losses.jsonl").read_text() == "\n".join(lines[:2]) + "\n"


def test_more_ranks_per_host_than_gpus_is_refused_before_nccl(tmp_path, monkeypatch):
    """`torchrun --nproc_per_node 2 -m gen3c train` on a host with one GPU: each rank takes
    cuda:LOCAL_RANK, and accelerate put both on one GPU, where NCCL failed with "Duplicate GPU
    detected" in a many-line traceback from each rank. Every rank now refuses in one line."""
    from gen3c.errors import Gen3cInputError
    from gen3c.training.loop import check_devices

    config = config_from_dict(tiny_config(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for key, value in (("WORLD_SIZE", "2"), ("LOCAL_WORLD_SIZE", "2"), ("LOCAL_RANK", "1")):
        monkeypatch.setenv(key, value)
    with pytest.raises(Gen3cInputError, match=r"^torchrun started 2 processes on this host, which has 1 visible GPU: "
                       r"launch at most 1 per host \(--nproc_per_node 1\) or check CUDA_VISIBLE_DEVICES; "
                       r"or hide the GPUs \(CUDA_VISIBLE_DEVICES=\) to train on the CPUs$"):  # fmt: skip
        check_devices(config)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")  # two hosts of one GPU each: fine
    for key, value in (("RANK", "1"), ("MASTER_ADDR", "host0"), ("MASTER_PORT", "29500")):  # (as torchrun sets them)
        monkeypatch.setenv(key, value)
    check_devices(config)


@pytest.mark.parametrize(
    "changed, message",
    [
        ({"RANK": None, "MASTER_ADDR": None, "MASTER_PORT": None},
         "joining torchrun's process group needs RANK, MASTER_ADDR, MASTER_PORT in the environment, which are not set: "
         "launch with `torchrun --nproc_per_node=2 -m gen3c train CONFIG`, which sets them"),
        ({"WORLD_SIZE": "two"}, "the environment's WORLD_SIZE='two' is not a whole number of at least 1: launch with torchrun, which sets it, or unset it"),
    ],
)  # fmt: skip
def test_a_hand_made_launch_of_training_missing_torchrun_variables_is_one_line(tmp_path, monkeypatch, changed, message):
    """`WORLD_SIZE=2 gen3c train …` (a launch by hand, or a scheduler's variables half set): accelerate
    stopped on a ValueError ("`MASTER_ADDR` env was not set"), its traceback called a bug in gen3c,
    as a WORLD_SIZE of no number did (int()'s ValueError). Now one line naming the variables, before
    anything is written (as gen3c generate --num_gpus says it)."""
    from typer.testing import CliRunner

    from gen3c.cli import app

    path = _write_toml(tiny_config(tmp_path), tmp_path / "tiny.toml")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    env = {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", **changed}
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    res = CliRunner().invoke(app, ["train", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == f"error: {message}"
    assert not (tmp_path / "out").exists()


def test_a_run_that_recorded_relative_folders_resumes_from_its_config_file(tmp_path, monkeypatch):
    """Runs started before a config file's relative folders were taken relative to its folder
    recorded them as written (relative to the working directory) in config.json; the same config
    file now gives them absolute, and --resume was refused ("data.paths … differs from the run's")."""
    from gen3c.errors import Gen3cInputError
    from gen3c.training.loop import check_run_folder

    project = tmp_path / "project"
    for folder in ("data/batch_0000", "base", "other"):
        (project / folder).mkdir(parents=True)
    monkeypatch.chdir(project)
    old = config_from_dict({"data": {"kind": "sample", "paths": ["data/batch_0000"]}, "model": {"checkpoint": "./base"}})
    out = project / "run"
    (out / "checkpoints" / "step_0000002").mkdir(parents=True)
    (out / "config.json").write_text(old.to_json())  # an old run's record: the folders as written
    assert json.loads((out / "config.json").read_text())["data"]["paths"] == ["data/batch_0000"]
    path = project / "c.toml"
    path.write_text("[data]\nkind = 'sample'\npaths = ['data/batch_0000']\n[model]\ncheckpoint = 'base'\n")
    now = load_config(path)
    assert now.data.paths == [str(project / "data" / "batch_0000")]
    check_run_folder(now, out, "auto")
    check_run_folder(now, out, str(out / "checkpoints" / "step_0000002"))
    # Other folders are still another run's.
    path.write_text("[data]\nkind = 'sample'\npaths = ['other']\n[model]\ncheckpoint = 'base'\n")
    with pytest.raises(Gen3cInputError, match=r"--resume: data\.paths = \[.*other'\] differs from the run's \['data/batch_0000'\]"):
        check_run_folder(load_config(path), out, "auto")
    path.write_text("[data]\nkind = 'sample'\npaths = ['data/batch_0000']\n[model]\ncheckpoint = 'other'\n")
    with pytest.raises(Gen3cInputError, match=r"--resume: model\.checkpoint = '.*other' differs from the run's './base'"):
        check_run_folder(load_config(path), out, "auto")


def test_a_video_too_short_for_a_clip_is_named_beside_those_that_give_clips(sample_dir, tmp_path):
    """Before: it was dropped silently (a run trained on fewer videos than data.paths lists)."""
    import numpy as np
    from layouts import scene, write_sample

    from gen3c.training.data import make_dataset

    rgb, depth, _, w2c, K = scene(n=5, h=72, w=128)
    short = write_sample(tmp_path / "short", rgb, depth, np.ones_like(depth, dtype=bool), w2c, K)
    cfg = config_from_dict({"data": {"kind": "sample", "paths": [str(sample_dir), str(short)], "resolution": [H, W], "num_frames": 9,
                                     "clip_stride": 2}}).data  # fmt: skip
    with pytest.warns(UserWarning, match=r"^data\.paths\[1\] '.*short' has 5 frames, fewer than data\.num_frames = 9: no clip is cut from it$"):
        clips = make_dataset(cfg)
    assert clips.windows == [(0, 0), (0, 2)]


def test_a_data_path_whose_accents_are_spelled_otherwise_on_disk_is_read_with_a_note(sample_dir, tmp_path, monkeypatch):
    """Before: 'sample '…/vidéo' does not exist' for a folder that ls shows with that very name: copied
    from a Mac, its é is e + a combining accent (NFD) where the config typed on Linux has one code point."""
    import unicodedata

    from gen3c.io import gen3c_sample
    from gen3c.training.data import make_dataset

    monkeypatch.setattr(gen3c_sample, "check_depth_conventions", lambda *args, **kwargs: None)  # (2 s a video; tests/test_conventions.py)
    on_disk = tmp_path / unicodedata.normalize("NFD", "vidéos") / unicodedata.normalize("NFD", "clip_é")
    shutil.copytree(sample_dir, on_disk)
    typed = str(tmp_path / "vidéos" / "clip_é")
    assert typed == unicodedata.normalize("NFC", typed) and not Path(typed).exists()
    cfg = config_from_dict({"data": {"kind": "sample", "paths": [typed], "resolution": [H, W], "num_frames": 9, "clip_stride": 2}}).data
    with pytest.warns(UserWarning, match=r"^data\.paths\[0\] '.*' is read as '.*', its name on disk: the same letters in other Unicode"):
        clips = make_dataset(cfg)
    assert clips.windows == [(0, 0), (0, 2)] and clips.sources == [(str(on_disk), None)]


def test_a_sample_listed_twice_in_data_paths_is_named_in_a_note(sample_dir, tmp_path, monkeypatch):
    """Before: its clips were trained twice as often without a word (a line pasted twice, or a symlink to it)."""
    from gen3c.io import gen3c_sample
    from gen3c.training.data import make_dataset

    monkeypatch.setattr(gen3c_sample, "check_depth_conventions", lambda *args, **kwargs: None)  # (2 s a video; tests/test_conventions.py)

    (tmp_path / "link").symlink_to(sample_dir)
    cfg = config_from_dict({"data": {"kind": "sample", "paths": [str(sample_dir), str(tmp_path / "link")], "resolution": [H, W],
                                     "num_frames": 9, "clip_stride": 2}}).data  # fmt: skip
    with pytest.warns(UserWarning, match=r"^data\.paths\[1\] '.*link' is the folder of data\.paths\[0\]: its clips are trained twice as often"):
        clips = make_dataset(cfg)
    assert clips.windows == [(0, 0), (0, 2), (1, 0), (1, 2)]  # still both: a weighting may be meant


@pytest.mark.parametrize("stopped_after", [1, 2])
def test_a_resume_stopped_while_swapping_a_superseded_checkpoint_is_undone_by_the_next(tmp_path, stopped_after):
    """--resume OUT/checkpoints/superseded/step_N swaps it with the run's own step_N in three
    renames (via superseded/.step_N.swap). Stopped after the first (or second), the superseded
    checkpoint stayed in .step_N.swap, which nothing cleaned: the same --resume was refused as no
    checkpoint, and --resume auto went back to an earlier one (the run's own step_N was aside)."""
    from gen3c.errors import Gen3cInputError

    out = tmp_path / "run"
    own, aside = out / "checkpoints" / "step_0000004", out / "checkpoints" / "superseded" / "step_0000004"
    swap = aside.with_name(".step_0000004.swap")
    swap.mkdir(parents=True)
    (swap / "mark").write_text("superseded")
    (aside if stopped_after == 2 else own).mkdir(parents=True)
    ((aside if stopped_after == 2 else own) / "mark").write_text("own")
    said: list[str] = []
    # Stand-in folders (no step counter): refused as checkpoints, once the swap is undone.
    with pytest.raises(Gen3cInputError, match=r"superseded/step_0000004' is not a checkpoint of `gen3c train` \(no custom_checkpoint_0\.pkl\)"):
        train(config_from_dict({}), out, resume=str(aside), echo=said.append)
    assert not swap.exists()
    assert (aside / "mark").read_text() == "superseded" and (own / "mark").read_text() == "own"
    assert said == [f"{str(aside)!r} is back where it was: a stopped --resume left it halfway through its move among the checkpoints"]


def test_another_rank_waits_until_the_main_process_has_undone_a_stopped_swap(tmp_path):
    """Off the main process, --resume waits while superseded/.step_N.swap exists (the main process,
    holding the folder's lock, puts it back), then goes on; it gives up after its time limit."""
    import threading
    import time

    from gen3c.training.loop import wait_for_swaps

    out = tmp_path / "run"
    aside = out / "checkpoints" / "superseded"
    swap = aside / ".step_0000004.swap"
    swap.mkdir(parents=True)
    start = time.monotonic()  # (before the timer starts: a busy machine may run its thread before this line)
    threading.Timer(0.5, lambda: swap.rename(aside / "step_0000004")).start()
    wait_for_swaps(out, seconds=30)
    assert 0.45 <= time.monotonic() - start < 10 and (aside / "step_0000004").is_dir() and not swap.exists()
    swap.mkdir()  # never put back: the wait ends at its limit
    start = time.monotonic()
    wait_for_swaps(out, seconds=0.3)
    assert 0.3 <= time.monotonic() - start < 5 and swap.is_dir()


def test_a_second_rewind_keeps_what_the_first_set_aside(tmp_path):
    """Two rewinds to the same step: the second set the first's later checkpoint, samples and
    exports aside under the same names, and deleted what was there (a rmtree of the earlier
    checkpoint, a replace of the earlier card), though setting aside promises the user keeps them."""
    from gen3c.training.loop import set_aside_superseded

    out = tmp_path / "run"

    def history(tag: str) -> None:
        for step in (2, 4):
            (out / "checkpoints" / f"step_000000{step}").mkdir(parents=True, exist_ok=True)
        (out / "checkpoints" / "step_0000004" / "which").write_text(tag)
        (out / "samples").mkdir(exist_ok=True)
        (out / "samples" / "step_0000004.mp4").write_text(tag)
        (out / "model").mkdir(exist_ok=True)
        (out / "model" / "which").write_text(tag)
        (out / "MODEL_CARD.md").write_text(tag)

    history("first")
    set_aside_superseded(out, 2)
    history("second")
    set_aside_superseded(out, 2)
    aside = out / "checkpoints" / "superseded"
    for newer, older in (("step_0000004/which", "step_0000004.earlier1/which"), ("samples/step_0000004.mp4", "samples/step_0000004.earlier1.mp4"),
                         ("model/which", "model.earlier1/which"), ("MODEL_CARD.md", "MODEL_CARD.earlier1.md")):  # fmt: skip
        assert (aside / newer).read_text() == "second" and (aside / older).read_text() == "first", (newer, older)
    assert [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("step_")] == ["step_0000002"]
    # The first history's checkpoint resumes into the run as step_0000004, the run's own (a third
    # history's) taking its name aside; a swap stopped midway is put back as it was.
    from gen3c.training.loop import _restore_superseded, undo_interrupted_swaps

    (out / "checkpoints" / "step_0000004").mkdir()
    (out / "checkpoints" / "step_0000004" / "which").write_text("third")
    (aside / "step_0000004.earlier1").rename(aside / ".step_0000004.earlier1.swap")  # stopped after the first rename
    assert undo_interrupted_swaps(out) == [aside / "step_0000004.earlier1"]
    assert (out / "checkpoints" / "step_0000004" / "which").read_text() == "third"
    restored = _restore_superseded(out, aside / "step_0000004.earlier1")
    assert restored == out / "checkpoints" / "step_0000004" and (restored / "which").read_text() == "first"
    assert (aside / "step_0000004.earlier1" / "which").read_text() == "third" and (aside / "step_0000004" / "which").read_text() == "second"


def test_ctrl_c_while_the_stop_message_is_made_or_the_last_line_printed_says_what_is_kept(tmp_path, monkeypatch):
    """A second Ctrl-C while the stop message was made lost it ("stopped before training began:
    nothing was written", beside the run's checkpoints); one during the last line ("trained …")
    said "no partial output was kept" of a finished run."""
    import gen3c.cli
    import gen3c.training
    import gen3c.training.loop
    from gen3c.training.loop import TrainResult

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    (out / "checkpoints" / "step_0000002").mkdir(parents=True)
    made = gen3c.training.loop.stopped_message
    calls = []

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    def pressed_again_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return made(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(gen3c.training.loop, "check_devices", stopped)
        patch.setattr(gen3c.training.loop, "stopped_message", pressed_again_once)
        res = runner.invoke(app, ["train", "small_procedural", "--out", str(out), "--resume", "auto"])
    assert res.exit_code == 130 and " ".join(res.output.split()) == (
        f"interrupted: stopped; the newest checkpoint is {str(out / 'checkpoints' / 'step_0000002')!r}: continue with --resume auto "
        "(the steps after it run again)"), res.output  # fmt: skip

    printed = gen3c.cli.console.print

    def stopped_on_the_last_line(text, *args, **kwargs):
        if str(text).startswith("[green]trained"):
            raise KeyboardInterrupt
        return printed(text, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(gen3c.training, "run_training", lambda *a, **k: TrainResult(out, 3, exported=out / "model"))
        patch.setattr(gen3c.cli.console, "print", stopped_on_the_last_line)
        res = runner.invoke(app, ["train", "small_procedural", "--out", str(out), "--resume", "auto"])
    assert res.exit_code == 130 and " ".join(res.output.split()) == (
        f"interrupted: stopped as the run ended, after its last step: {str(out / 'model')!r} is written"), res.output  # fmt: skip


def test_the_cards_loss_ends_are_the_means_of_a_tenth_of_the_steps_at_each_end():
    """The training and distillation cards give the mean loss of the first and the last k steps,
    k a tenth of them, at least 1 and at most 50."""
    assert loss_ends([4.0, 2.0, 1.0]) == (1, 4.0, 1.0)
    assert loss_ends([float(i) for i in range(30)]) == (3, 1.0, 28.0)
    k, first, last = loss_ends([1.0] * 600 + [3.0] * 400)
    assert (k, first, last) == (50, 1.0, 3.0)
    k, first, last = loss_ends([])
    assert k == 1 and math.isnan(first) and math.isnan(last)
