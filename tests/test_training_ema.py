"""train.ema_decay: an EMA of the trained weights, in closed form, across a resume, for LoRA and distillation."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from test_training import base_checkpoint, sample_dir, tiny_config  # noqa: F401 (fixtures)

from gen3c.errors import Gen3cInputError
from gen3c.training.config import config_from_dict
from gen3c.training.ema import WeightEma
from gen3c.training.loop import train


def test_the_ema_of_known_weights_is_the_closed_form(tmp_path):
    """ema_t = β·ema_{t−1} + (1 − β)·θ_t, ema_0 = θ_0: with β = 0.5 and θ = 0, 1, 3,
    ema_2 = 0.25·0 + 0.25·1 + 0.5·3 = 1.75; applied and given back exactly."""
    p = torch.nn.Parameter(torch.zeros(2))
    ema = WeightEma([p], 0.5)
    for value in (1.0, 3.0):
        p.data.fill_(value)
        ema.update([p])
    torch.testing.assert_close(ema.shadow[0], torch.full((2,), 1.75))
    with ema.applied([p]):
        assert torch.equal(p.data, torch.full((2,), 1.75))
    assert torch.equal(p.data, torch.full((2,), 3.0))
    again = WeightEma([torch.nn.Parameter(torch.zeros(2))], 0.9)
    again.load(ema.save(tmp_path).parent)  # what a checkpoint holds
    assert torch.equal(again.shadow[0], ema.shadow[0]) and again.decay == 0.5
    with pytest.raises(ValueError, match="holds 1 tensors, not this run's 2 trained parameters"):
        WeightEma([p, p], 0.5).load(tmp_path)


def _ema_config(base, sample, **train_keys):
    return config_from_dict(tiny_config(None, model={"checkpoint": str(base)}, run={"max_steps": 2},
                                        data={"kind": "sample", "paths": [str(sample)]},
                                        train={"ema_decay": 0.5, **train_keys},
                                        log={"checkpoint_every": 1, "keep_checkpoints": 3}))  # fmt: skip


def test_the_exported_model_is_the_ema_and_a_resumed_run_averages_as_an_uninterrupted_one(tmp_path, base_checkpoint, sample_dir):  # noqa: F811
    """model/ holds ema_2 = β²θ_0 + (1−β)(β·θ_1 + θ_2) with θ_0 the base checkpoint and θ_1, θ_2
    the raw weights the checkpoints keep; a run stopped after step 1 and resumed exports the same."""
    config = _ema_config(base_checkpoint, sample_dir)
    whole = train(config, tmp_path / "whole")
    name = "diffusion_pytorch_model.safetensors"
    theta0 = load_file(base_checkpoint / "transformer" / name)
    theta1 = load_file(tmp_path / "whole" / "checkpoints" / "step_0000001" / "model.safetensors")
    theta2 = load_file(whole.checkpoint / "model.safetensors")
    exported = load_file(whole.exported / "transformer" / name)
    assert exported.keys() == theta2.keys()
    for key in exported:
        torch.testing.assert_close(exported[key], 0.25 * theta0[key] + 0.25 * theta1[key] + 0.5 * theta2[key])
    assert any(not torch.equal(exported[k], theta2[k]) for k in exported)  # the raw weights stay in the checkpoint
    assert "EMA of decay 0.5" in (tmp_path / "whole" / "MODEL_CARD.md").read_text()
    # Kept as the checkpoint's model weights are (safetensors), not as a pickle beside the step counter.
    assert sorted(p.name for p in whole.checkpoint.glob("custom_checkpoint_*")) == ["custom_checkpoint_0.pkl"]
    assert len(load_file(whole.checkpoint / "ema.safetensors")) == len(theta2)

    train(config, tmp_path / "split", stop_after=1)
    resumed = train(config, tmp_path / "split", resume="auto")
    split = load_file(resumed.exported / "transformer" / name)
    for key in exported:
        torch.testing.assert_close(split[key], exported[key], rtol=1e-5, atol=1e-6)


def test_a_lora_run_averages_its_adapter(tmp_path, base_checkpoint, sample_dir):  # noqa: F811
    """LoRA trains the adapter only: its B matrices start at 0, so lora/ holds B = 0.25·B_1 + 0.5·B_2."""
    from gen3c.training import lora

    config = _ema_config(base_checkpoint, sample_dir, mode="lora", lr=5e-2)
    config.lora.rank = 2
    result = train(config, tmp_path / "run")
    b1 = load_file(lora.lora_weights_file(tmp_path / "run" / "checkpoints" / "step_0000001" / "lora"))
    b2 = load_file(lora.lora_weights_file(result.checkpoint / "lora"))
    exported = load_file(lora.lora_weights_file(result.exported))
    keys = [k for k in exported if "lora_B" in k]
    assert keys and any(b2[k].abs().max() > 0 for k in keys)
    for key in keys:
        torch.testing.assert_close(exported[key], 0.25 * b1[key] + 0.5 * b2[key])


@pytest.mark.parametrize("value", [1.0, -0.1])
def test_an_ema_decay_outside_0_to_1_is_refused_in_one_line(value):
    with pytest.raises(Gen3cInputError, match=rf"^config: train\.ema_decay = {value} must lie in \[0, 1\) \(0: no EMA; e\.g\. 0\.999") as caught:
        config_from_dict({"train": {"ema_decay": value}})
    assert "\n" not in str(caught.value)


def test_ema_under_fsdp_is_refused(monkeypatch):
    from gen3c.training.loop import check_devices

    monkeypatch.setenv("WORLD_SIZE", "2")
    config = config_from_dict({"train": {"ema_decay": 0.9, "distributed": "fsdp"}})
    with pytest.raises(Gen3cInputError, match=r'train\.ema_decay needs whole weights on each process: use train\.distributed = "ddp"'):
        check_devices(config)


def test_a_distillation_stage_exports_its_ema(tmp_path):
    """A stage's student is its EMA (from the stage's first weights θ_0, the teacher's here): after
    one step, β·θ_0 + (1 − β)·θ_1, θ_1 the student the same run without EMA exports; the checkpoint
    after the stage takes its weights from that student (the next stage's student starts from it)."""
    from gen3c.models.packaged import resolve_checkpoint

    cfg = {"run": {"max_steps": 1}, "data": {"resolution": [32, 48], "num_frames": 9, "num_clips": 4, "cache_clips": True},
           "model": {"checkpoint": "tiny"}, "train": {"mode": "distill", "batch_size": 2, "lr": 1e-2},
           "distill": {"teacher_steps": 5, "student_steps": [3], "guidance_stage": False},
           "log": {"every": 1, "sample_every": -1}}  # fmt: skip
    name = "diffusion_pytorch_model.safetensors"
    raw = load_file(train(config_from_dict(cfg), tmp_path / "raw").exported / "transformer" / name)
    cfg["train"]["ema_decay"] = 0.5
    result = train(config_from_dict(cfg), tmp_path / "ema")
    theta0 = load_file(f"{resolve_checkpoint('tiny')}/transformer/{name}")
    student = load_file(result.exported / "transformer" / name)
    stage = load_file(tmp_path / "ema" / "stages" / "0_5to3steps" / "transformer" / name)
    assert any(not torch.equal(raw[k], theta0[k]) for k in raw)  # the step moved the weights
    reference = json.loads((result.checkpoint / "student.json").read_text())
    assert reference["folder"] == "stages/0_5to3steps/transformer" and not list(result.checkpoint.glob("*.safetensors"))
    for key in student:
        torch.testing.assert_close(student[key], 0.5 * theta0[key] + 0.5 * raw[key])
        torch.testing.assert_close(stage[key], student[key])
    assert "each stage's student is its EMA of decay 0.5." in (tmp_path / "ema" / "MODEL_CARD.md").read_text()


def test_a_step_fp16s_grad_scaler_skips_leaves_the_ema_as_it_was(tmp_path):
    """fp16's grad scaler skips an optimiser step whose gradients are not finite (here d√w/dw at
    w = 0), and the weights stay; the EMA still averaged them in: ema 2 → 0.5·2 + 0.5·0 = 1. It now
    waits for a step taken: the next, of gradient −1 (loss −w) at lr 1, moves w to 1 and ema to 1.5."""
    from gen3c.training.loop import _accelerator, _optimizer_step

    config = config_from_dict({"train": {"grad_clip": 0.0}})
    accelerator = _accelerator(config, tmp_path)
    accelerator.scaler = torch.amp.GradScaler("cpu")  # what mixed_precision = "fp16" gives on a GPU
    weight = torch.nn.Linear(1, 1, bias=False)
    weight.weight.data.zero_()
    model, optimizer = accelerator.prepare(weight, torch.optim.SGD(weight.parameters(), lr=1.0))
    params = list(model.parameters())
    ema = WeightEma(params, 0.5)
    ema.shadow[0].fill_(2.0)

    def step(loss_of):
        _optimizer_step(accelerator, model, optimizer, params, config, 0, 1.0, iter([(torch.tensor(1.0), None)]), loss_of, ema)

    step(lambda x0, buffers, generator: x0 * model.weight.sum().sqrt())
    assert optimizer.step_was_skipped and float(model.weight.detach()) == 0.0
    assert float(ema.shadow[0]) == 2.0
    step(lambda x0, buffers, generator: -x0 * model.weight.sum())
    assert not optimizer.step_was_skipped and float(model.weight.detach()) == 1.0
    assert float(ema.shadow[0]) == 1.5


def test_turning_the_ema_on_when_resuming_a_run_made_without_it_is_refused_as_such(tmp_path, base_checkpoint, sample_dir):  # noqa: F811
    """A run of a version before train.ema_decay (its config.json and checkpoint record no
    ema_decay, so the resume's config check lets the key pass) resumed with an EMA: its checkpoint
    has no ema.safetensors, which is no damage: the refusal says to resume without the EMA (it
    said the checkpoint was incomplete or damaged, to be deleted)."""
    import json

    config = _ema_config(base_checkpoint, sample_dir, ema_decay=0.0)
    train(config, tmp_path / "run", stop_after=1)
    for path in [tmp_path / "run" / "config.json", *(tmp_path / "run" / "checkpoints").glob("step_*/config.json")]:
        recorded = json.loads(path.read_text())
        del recorded["train"]["ema_decay"]
        path.write_text(json.dumps(recorded))
    with pytest.raises(Gen3cInputError, match=r"holds no ema\.safetensors: its run trained without train\.ema_decay, .*resume with ema_decay = 0") as caught:
        train(_ema_config(base_checkpoint, sample_dir), tmp_path / "run", resume="auto")
    assert "damaged" not in str(caught.value) and "\n" not in str(caught.value)
