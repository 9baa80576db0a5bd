"""The values the gen3c model's settings may take, and the checks that refuse the others, without torch.

The modules that implement the settings (:mod:`gen3c.models.memory`, :mod:`gen3c.models.attention`,
:mod:`gen3c.models.speed`, :mod:`gen3c.models.step_cache`, :mod:`gen3c.models.context_parallel`)
import torch; their names and checks live here, and those modules import them back, so that
:mod:`gen3c.pipelines.options` refuses a mistyped gen3c generator option before torch is imported
(seconds on a small machine).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from gen3c.errors import Gen3cInputError, is_whole_number, quoted, shown_value

#: The memory modes of the gen3c pipeline (:func:`gen3c.models.memory.memory_plan`).
MEMORY_MODES = ("resident", "model_offload", "group_offload")


def check_gpu_budget(max_gpu_memory: object) -> float:
    """Refuse a ``--max_gpu_memory`` that is not a positive, finite number of GB (0, negative, NaN,
    infinite, a string, a bool), before any model is loaded or fetched to plan for it; return it
    as a Python float (numpy's numbers are taken: a notebook's ``np.float32(24)``)."""
    number = isinstance(max_gpu_memory, numbers.Real) and not isinstance(max_gpu_memory, bool)
    if not (number and math.isfinite(max_gpu_memory) and max_gpu_memory > 0):
        raise Gen3cInputError(f"--max_gpu_memory {repr(max_gpu_memory)[:40]} must be a positive number of GB (e.g. 24)")
    return float(max_gpu_memory)


def check_vae_chunk_frames(vae_chunk_frames: int | None) -> None:
    """Refuse a ``vae_chunk_frames`` (latent frames per tokenizer chunk; 0: no chunking) that is
    negative or no whole number (True, 2.5 from Python)."""
    if vae_chunk_frames is not None and (not is_whole_number(vae_chunk_frames) or vae_chunk_frames < 0):
        raise Gen3cInputError(f"--vae_chunk_frames {vae_chunk_frames!r} must be a whole number ≥ 1 (or 0 for no chunking)")


#: The self-attention kernels gen3c selects between (plus "auto").
KERNELS = ("sdpa", "flash4", "cudnn_fp8")
#: What "auto" and "auto_fp8" try, fastest first: exact kernels only, or fp8 allowed.
AUTO_ORDER = {"auto": ("flash4", "sdpa"), "auto_fp8": ("cudnn_fp8", "flash4", "sdpa")}

#: Why fp8 matmuls and a LoRA are refused together (:func:`gen3c.models.speed.use_fp8_matmuls`).
FP8_MATMULS_WITH_LORA = "--fp8_matmul cannot run a LoRA's layers (they adapt the bf16 linears it replaces): drop --fp8_matmul or --lora"

#: Step-cache kinds → (what the number after ':' is, its default).
STEP_CACHE_KINDS: dict[str, tuple[str, float]] = {
    "fbc": ("threshold", 0.05),
    "taylorseer": ("interval", 3),
    "magcache": ("threshold", 0.06),
}


@dataclass(frozen=True)
class StepCacheSpec:
    """A parsed ``--step_cache`` value: ``kind`` (a key of :data:`STEP_CACHE_KINDS`) and its number."""

    kind: str
    value: float

    @classmethod
    def parse(cls, text: str | None) -> StepCacheSpec | None:
        """``"none"``/None → None; ``"fbc"``, ``"fbc:0.1"``, ``"taylorseer:4"``, ``"magcache:0.06"`` → a spec."""
        if text is None or text.strip().lower() in ("", "none"):
            return None
        kind, _, number = text.strip().lower().partition(":")
        if kind not in STEP_CACHE_KINDS:
            raise Gen3cInputError(
                f"--step_cache {quoted(text, 40)}: unknown kind {quoted(kind, 40)}; use none, {', '.join(k + '[:' + STEP_CACHE_KINDS[k][0].upper() + ']' for k in STEP_CACHE_KINDS)}"
            )
        what, default = STEP_CACHE_KINDS[kind]
        try:
            value = float(number) if number else float(default)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise Gen3cInputError(f"--step_cache {quoted(text, 40)}: the {what} after ':' must be a finite number (default {default:g})")
        if what == "interval" and (value != int(value) or value < 2):
            raise Gen3cInputError(f"--step_cache {quoted(text, 40)}: the interval must be a whole number ≥ 2 (1 caches nothing)")
        if what == "threshold" and not 0 < value < 10:
            raise Gen3cInputError(f"--step_cache {quoted(text, 40)}: the threshold must be above 0 and below 10 (default {default:g})")
        return cls(kind, value)

    def __str__(self) -> str:
        return f"{self.kind}:{self.value:g}"


def check_step_cache_guidance(spec: StepCacheSpec | None, guidance_every: int, guidance_batch: bool) -> None:
    """Refuse a step cache with a guidance schedule that misaligns it: each branch's cache counts
    its own calls, so MagCache (a per-step ratio table) and the batched pair ``cfg`` (the
    conditional branch runs alone on the steps in between) need the unconditional branch at every step."""
    if spec is not None and guidance_every > 1 and (spec.kind == "magcache" or guidance_batch):
        what = "--step_cache magcache" if spec.kind == "magcache" else "--guidance_batch with a step cache"
        raise Gen3cInputError(f"{what} needs the unconditional branch at every step: drop --guidance_every {guidance_every} (or the cache)")


def check_attention_backend(backend: str) -> None:
    """Refuse an ``attention_backend`` that names no gen3c kernel and no diffusers backend (checked
    before any weights load; whether it can run here is known only on the device)."""
    if backend in AUTO_ORDER or backend in KERNELS:
        return  # without importing diffusers' list (seconds)
    from diffusers.models.attention_dispatch import AttentionBackendName

    diffusers_names = [name.value for name in AttentionBackendName]
    if backend not in diffusers_names:
        public = [name for name in diffusers_names if not name.startswith("_") and not name.endswith("_hub")]
        raise Gen3cInputError(
            f"--attention_backend {shown_value(backend)} is unknown: use {', '.join((*AUTO_ORDER, *KERNELS))}, or a diffusers "
            f"attention backend ({', '.join(public[:6])}, …)"
        )


def check_token_split(num_heads: int, degree: int, latent_frames: int | None = None, model: str | None = None) -> None:
    """Refuse a split the DiT cannot make: its heads and (when given) T′ latent frames must divide by N.

    Args:
        model: how to name the model when no count above 1 works (e.g. "the shipped tiny model
            (its 17-frame chunks have 3 latent frames)"): the message then says it cannot be split.

    Raises:
        Gen3cInputError: naming the counts and the GPU counts that would work.
    """
    if degree <= 1:
        return
    # The counts that work divide both the heads and (when known) the latent frames.
    common = num_heads if latent_frames is None else math.gcd(num_heads, latent_frames)
    ok = [n for n in range(1, common + 1) if common % n == 0]
    if model is not None and ok == [1]:
        raise Gen3cInputError(
            f"--num_gpus {degree}: {model} cannot be split across GPUs (no count above 1 divides both its {num_heads} attention heads "
            f"and its {latent_frames} latent frames per chunk): run it with --num_gpus 1, or test a multi-GPU launch with GEN3C's "
            "weights (121-frame chunks, 16 latent frames: 2, 4 or 8 GPUs)"
        )
    if num_heads % degree:
        raise Gen3cInputError(
            f"--num_gpus {degree}: the DiT's {num_heads} attention heads do not split across {degree} GPUs; use one of {ok}"
        )
    if latent_frames is not None and latent_frames % degree:
        raise Gen3cInputError(
            f"--num_gpus {degree}: a chunk of {latent_frames} latent frames does not split evenly across {degree} GPUs; "
            f"use --num_gpus in {ok} (GEN3C's 121-frame chunks have 16 latent frames)"
        )


def check_context_parallel_attention(requested: str | None, num_gpus: int) -> None:
    """Refuse an explicit gen3c kernel with ``--num_gpus`` > 1 before any weight loads: the tokens
    are split through diffusers' attention backends, and flash4 / cudnn_fp8 are not among them."""
    if num_gpus != 1 and requested in KERNELS and requested != "sdpa":
        raise Gen3cInputError(
            f"--attention_backend {requested} cannot split the tokens across GPUs (--num_gpus {num_gpus}): "
            "pass --attention_backend auto or sdpa (PyTorch SDPA), or a diffusers backend that can (native, flash, sage, …)"
        )
