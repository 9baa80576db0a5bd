"""The from-scratch tokenizer stage (gen3c.training.tokenizer): its learning-rate warm-up."""

from __future__ import annotations

import torch
from accelerate import Accelerator

from gen3c.training.config import TokenizerConfig
from gen3c.training.tokenizer import build_tokenizer, set_latent_statistics, train_tokenizer


def _cpu_accelerator(**kwargs) -> Accelerator:
    """An accelerate Accelerator on the CPU, also in a process where an earlier test made one on the
    GPU (accelerate keeps its device process-wide and refuses cpu=True after it: "restart your runtime")."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return Accelerator(cpu=True, **kwargs)


def _first_step_size(lr: float, warmup_steps: int) -> float:
    """Largest parameter change of one AdamW step on a fresh tiny tokenizer."""
    torch.manual_seed(0)
    vae = build_tokenizer({})
    before = [p.detach().clone() for p in vae.parameters()]
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    config = TokenizerConfig(steps=1, lr=lr, warmup_steps=warmup_steps, batch_size=1)
    summary = train_tokenizer(vae, iter([video]), config, _cpu_accelerator())
    assert summary["steps"] == 1
    return max(float((p - b).abs().max()) for p, b in zip(vae.parameters(), before, strict=True))


def test_warmup_scales_the_first_steps():
    # Adam's first step moves every parameter with a gradient by the current rate (|m̂ / √v̂| = 1),
    # plus weight decay lr·0.01·|p| (small): step 1 of a 10-step warm-up runs at lr / 10.
    assert abs(_first_step_size(1e-2, 10) / 1e-3 - 1) < 0.05
    assert abs(_first_step_size(1e-2, 0) / 1e-2 - 1) < 0.05


@torch.no_grad()
def test_fresh_tokenizer_output_depends_on_its_input():
    # Two different videos must give clearly different reconstructions before any training; with
    # PyTorch's default conv biases the output is mostly a constant (relative difference ~0.05).
    torch.manual_seed(0)
    vae = build_tokenizer(
        {"encoder_block_out_channels": [16, 32, 32, 32], "decode_block_out_channels": [16, 32, 32, 32]}
    )
    a, b = torch.rand(2, 1, 3, 9, 32, 32) * 2 - 1
    ra, rb = vae(a).sample, vae(b).sample
    assert float((ra - rb).norm() / ra.norm()) > 0.5


def test_a_tokenizer_step_does_not_depend_on_the_dits_gradient_accumulation():
    """accelerate divided the tokenizer's loss by train.gradient_accumulation_steps (the DiT
    stage's setting), so with 3 its gradient norm clip of 1.0 acted as one of 3 and the
    tokenizer trained differently."""
    weights = {}
    videos = [torch.rand(2, 3, 9, 16, 16) * 2 - 1 for _ in range(2)]
    config = TokenizerConfig(steps=2, lr=5e-3, warmup_steps=0, batch_size=2)
    for accumulation in (1, 3):
        torch.manual_seed(0)
        vae = build_tokenizer({})
        train_tokenizer(vae, iter(videos), config, _cpu_accelerator(gradient_accumulation_steps=accumulation))
        weights[accumulation] = torch.cat([p.detach().flatten() for p in vae.parameters()])
    torch.testing.assert_close(weights[3], weights[1], rtol=0, atol=1e-6)


def test_latent_statistics_advance_a_progress_bar_per_clip_as_each_is_made():
    """The latent statistics of a fresh tokenizer took up to 16 clips, each rendered then (without
    data.cache_clips), before any was encoded, and showed no progress."""
    torch.manual_seed(0)
    vae = build_tokenizer({})
    videos = [torch.rand(1, 3, 9, 32, 48) * 2 - 1 for _ in range(3)]
    events: list[str] = []

    def made():
        for i, video in enumerate(videos):
            events.append(f"made {i}")
            yield video

    set_latent_statistics(vae, made(), lambda n: events.append(f"advanced {n}"))
    assert events == ["made 0", "advanced 1", "made 1", "advanced 1", "made 2", "advanced 1"]
    with torch.no_grad():
        raw = torch.cat([vae._encode(v) for v in videos]).transpose(0, 1).reshape(16, -1)
    torch.testing.assert_close(torch.tensor(vae.config.latents_mean), raw.mean(dim=1))
    torch.testing.assert_close(torch.tensor(vae.config.latents_std), raw.std(dim=1))
