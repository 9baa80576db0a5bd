"""A small tokenizer of the Cosmos family for models trained from scratch.

The 7B's tokenizer (Cosmos CV8x8x8, ~100M parameters) cannot ship in a 10 MB package, so the
small model gets its own ``AutoencoderKLCosmos``: the same class, compression (8× in time and
space, 16 latent channels, Haar patching, causal in time) and therefore the same latent layout,
at a few hundred thousand parameters. It is trained briefly on the training clips' videos with a
reconstruction loss (L1 + MSE, our choice); afterwards its per-channel latent mean and std over
training clips are stored in its config (``latents_mean``/``latents_std``), so its latents are
normalised like CV8x8x8's (:func:`gen3c.models.tokenizer.normalize_latents`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLCosmos
from torch import Tensor

from gen3c.models import configs
from gen3c.training.config import TokenizerConfig


def build_tokenizer(overrides: dict) -> AutoencoderKLCosmos:
    """A fresh tokenizer: :data:`gen3c.models.configs.VAE_TINY` with ``overrides``, convolution biases at zero.

    With PyTorch's default (uniform) bias initialisation the Haar-patched input, whose detail bands
    are scaled down 8×, is drowned by the biases: a fresh tokenizer's output barely depends on its
    input, and training sits for hundreds of steps on the mean-colour reconstruction
    (docs/training.md, "Tokenizer"). Zero biases keep the input's signal from the first step.
    """
    kwargs = {**configs.VAE_TINY, **overrides, "latents_mean": None, "latents_std": None}
    for key in ("encoder_block_out_channels", "decode_block_out_channels", "attention_resolutions"):
        kwargs[key] = tuple(kwargs[key])
    vae = AutoencoderKLCosmos(**kwargs)
    with torch.no_grad():
        for module in vae.modules():
            if isinstance(module, torch.nn.Conv3d) and module.bias is not None:
                module.bias.zero_()
    return vae


def reconstruction_loss(vae, video: Tensor) -> Tensor:
    """L1 + MSE between ``video`` (B, 3, T, H, W) in [−1, 1] and its reconstruction.

    ``vae`` may be wrapped (DDP): its forward is encode → decode."""
    recon = vae(video, return_dict=False)[0]
    return F.l1_loss(recon, video) + F.mse_loss(recon, video)


def train_tokenizer(
    vae: AutoencoderKLCosmos,
    videos: Iterator[Tensor],
    config: TokenizerConfig,
    accelerator,
    log: Callable[[str, float, int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Train ``vae`` on batches from ``videos`` for ``config.steps`` steps or ``config.max_minutes``.

    Returns ``{"steps", "seconds", "first_loss", "final_loss"}`` (final: mean of the last 10 steps).
    """
    vae.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.lr)
    # Warm-up: the high peak rate this small tokenizer needs to leave its mean-colour plateau
    # (docs/training.md) is unstable on the first steps of a fresh network.
    warmup = max(1, config.warmup_steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    model, optimizer = accelerator.prepare(vae, optimizer)
    started = time.monotonic()
    losses: list[float] = []
    step = 0
    while step < config.steps:
        video = next(videos).to(accelerator.device)
        with accelerator.autocast():
            loss = reconstruction_loss(model, video)
        # accelerate divides a loss by the DiT stage's train.gradient_accumulation_steps; a tokenizer step is one batch.
        accelerator.backward(loss * accelerator.gradient_accumulation_steps)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        losses.append(float(accelerator.reduce(loss.detach(), "mean")))
        if log is not None:
            log("tokenizer/loss", losses[-1], step)
        if progress is not None:
            progress(1)
        if config.max_minutes and out_of_time_everywhere(accelerator, time.monotonic() - started > 60 * config.max_minutes):
            break
    vae = accelerator.unwrap_model(model)
    vae.eval().requires_grad_(False)
    # Forget the tokenizer's prepared objects: checkpoints of the DiT stage hold the DiT only.
    accelerator.free_memory()
    tail = losses[-10:]
    return {
        "steps": step,
        "seconds": time.monotonic() - started,
        "first_loss": losses[0] if losses else float("nan"),
        "final_loss": sum(tail) / max(1, len(tail)),
    }


@torch.no_grad()
def set_latent_statistics(vae: AutoencoderKLCosmos, videos: Iterable[Tensor], progress: Callable[[int], None] | None = None) -> None:
    """Store the per-channel mean and std of ``vae``'s raw latents of ``videos`` in its config;
    ``progress(1)`` after each video (they may be made on demand: rendering is the slow part)."""
    device = next(vae.parameters()).device
    latents = []
    for video in videos:
        latents.append(vae._encode(video.to(device)).float())
        if progress is not None:
            progress(1)
    raw = torch.cat(latents)
    C = raw.shape[1]
    flat = raw.transpose(0, 1).reshape(C, -1)
    mean, std = flat.mean(dim=1), flat.std(dim=1).clamp_min(1e-6)
    vae.register_to_config(latents_mean=[float(m) for m in mean], latents_std=[float(s) for s in std])


@torch.no_grad()
def reconstruction_psnr(vae: AutoencoderKLCosmos, video: Tensor) -> float:
    """PSNR (dB, peak-to-peak 2) of ``video`` (B, 3, T, H, W) in [−1, 1] after encode → decode as
    the DiT stage and inference use them (normalised latents, output clamped to [−1, 1])."""
    from gen3c.models.tokenizer import decode_latents, encode_video

    video = video.to(next(vae.parameters()).device).float()
    recon = decode_latents(vae, encode_video(vae, video)).float().clamp(-1, 1)
    return float(10 * torch.log10(4 / F.mse_loss(recon, video).clamp_min(1e-12)))


def out_of_time_everywhere(accelerator, local: bool) -> bool:
    """One decision for every process (stop as soon as one of them runs out of time)."""
    flag = torch.tensor(1.0 if local else 0.0, device=accelerator.device)
    return bool(accelerator.reduce(flag, "max") > 0)
