"""GEN3C's training objective: EDM denoising of a video latent, conditioned as at inference.

For a clip with clean latent x₀ (B, 16, T', h, w) and buffer latents b (B, 64, T', h, w):

1. σ is drawn log-normally, ``ln σ ~ N(p_mean, p_std²)``, clamped to [σ_min, σ_max]; the noisy
   latent is ``x_σ = x₀ + σ·n``.
2. The DiT input is built exactly as :meth:`gen3c.pipelines.gen3c.Gen3cPipeline.denoise` builds it:
   ``c_in(σ)·x_σ`` on the generated frames, and on the first latent frame (the condition mask's
   frame) the clean latent with condition-augmentation noise, ``c_in(σ_aug)·(x₀ + σ_aug·n')``;
   the timestep is ``c_noise(σ) = ¼ ln σ``; ``condition_mask = [indicator | b]``
   (:func:`~gen3c.pipelines.gen3c.condition_channels`).
3. Buffer dropout: with probability ``buffer_dropout`` a clip's 64 buffer channels are zeroed —
   the input the unconditional branch of guidance gives the model.
4. ``D = c_skip(σ)·x_σ + c_out(σ)·F`` (the scheduler's EDM preconditioning, σ_data 0.5), and the
   loss is ``λ(σ)·‖D − x₀‖²`` with ``λ(σ) = (σ² + σ_d²)/(σ·σ_d)²``, averaged over the generated
   latent frames (the conditioned frame is replaced by the clean latent at inference, so it
   carries no loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from gen3c.models import configs
from gen3c.pipelines.gen3c import condition_channels, condition_indicator
from gen3c.training.config import TrainConfig


def sample_sigma(batch: int, generator: torch.Generator, config: TrainConfig, device: torch.device | str = "cpu") -> Tensor:
    """(B,) log-normal noise levels, clamped to [sigma_min, sigma_max]."""
    n = torch.randn(batch, generator=generator, device=generator.device).to(device)
    return (config.p_mean + config.p_std * n).exp().clamp(config.sigma_min, config.sigma_max)


def loss_weight(sigma: Tensor, sigma_data: float = 0.5) -> Tensor:
    """EDM's λ(σ) = (σ² + σ_d²)/(σ·σ_d)²."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def drop_buffers(buffer_latents: Tensor, p: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Zero the 64 buffer channels of each clip with probability ``p``.

    Returns ``(buffer latents (B, 64, T', h, w), kept (B,) bool)``.
    """
    B = buffer_latents.shape[0]
    kept = (torch.rand(B, generator=generator, device=generator.device) >= p).to(buffer_latents.device)
    return buffer_latents * kept.view(B, 1, 1, 1, 1).to(buffer_latents.dtype), kept


@dataclass
class ModelInput:
    """Everything one DiT forward of the objective takes, and what its loss needs."""

    hidden_states: Tensor  # (B, 16, T', h, w) c_in-scaled noisy latent, conditioned frame replaced
    timestep: Tensor  # (B,) c_noise(σ)
    condition_mask: Tensor  # (B, 65, T', h, w) [indicator | buffers (maybe dropped)]
    noisy: Tensor  # (B, 16, T', h, w) x_σ (as the sampler holds it)
    sigma: Tensor  # (B,)
    indicator: Tensor  # (B, 1, T', 1, 1)
    kept: Tensor  # (B,) bool, buffers kept


def build_model_input(
    x0: Tensor, buffer_latents: Tensor, scheduler, config: TrainConfig, generator: torch.Generator
) -> ModelInput:
    """Noise a batch and build the DiT input as the sampler does (module docstring, steps 1–3)."""
    B, _, T = x0.shape[:3]
    device = x0.device
    sigma = sample_sigma(B, generator, config, device)
    noise = torch.randn(x0.shape, generator=generator, device=generator.device).to(device)
    aug_noise = torch.randn(x0.shape, generator=generator, device=generator.device).to(device)
    s = sigma.view(B, 1, 1, 1, 1)
    noisy = x0 + s * noise
    indicator = condition_indicator(B, T, device=device)
    aug = torch.tensor(config.condition_augment_sigma, device=device)
    conditioned = scheduler.precondition_inputs(x0 + aug * aug_noise, aug)
    hidden = indicator * conditioned + (1 - indicator) * scheduler.precondition_inputs(noisy, s)
    buffers, kept = drop_buffers(buffer_latents, config.buffer_dropout, generator)
    return ModelInput(
        hidden_states=hidden, timestep=scheduler.precondition_noise(sigma), condition_mask=condition_channels(indicator, buffers),
        noisy=noisy, sigma=sigma, indicator=indicator, kept=kept,
    )  # fmt: skip


def gen3c_loss(
    transformer, scheduler, x0: Tensor, buffer_latents: Tensor, text: Tensor, config: TrainConfig, generator: torch.Generator,
    fps: float = configs.FPS,
) -> tuple[Tensor, ModelInput]:
    """The weighted denoising loss of one batch (a scalar) and the input it used.

    Args:
        x0: (B, 16, T', h, w) clean normalised latents; buffer_latents: (B, 64, T', h, w).
        text: (B, L, D) prompt embeddings (the cached empty prompt).
    """
    inp = build_model_input(x0.float(), buffer_latents.float(), scheduler, config, generator)
    dtype = next(transformer.parameters()).dtype
    h, w = x0.shape[-2:]
    out = transformer(
        hidden_states=inp.hidden_states.to(dtype), timestep=inp.timestep.to(dtype), encoder_hidden_states=text.to(dtype),
        fps=fps, condition_mask=inp.condition_mask.to(dtype), padding_mask=torch.zeros(1, 1, h, w, device=x0.device, dtype=dtype),
        return_dict=False,
    )[0].float()  # fmt: skip
    s = inp.sigma.view(-1, 1, 1, 1, 1)
    denoised = scheduler.precondition_outputs(inp.noisy, out, s)
    sigma_data = scheduler.config.sigma_data
    per_element = loss_weight(s, sigma_data) * (denoised - x0.float()) ** 2
    generated = (1 - inp.indicator).expand_as(per_element)
    loss = (per_element * generated).sum() / generated.sum().clamp_min(1)
    return loss, inp
