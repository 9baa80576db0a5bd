"""Training and fine-tuning of GEN3C's DiT (``gen3c train CONFIG``); see docs/training.md.

- :mod:`gen3c.training.config` — the TOML config (dataclasses, every field with a default).
- :mod:`gen3c.training.data` — clips: procedural scenes, GEN3C sample directories, ViPE outputs.
- :mod:`gen3c.training.objective` — the GEN3C conditioning objective (EDM loss, buffer dropout).
- :mod:`gen3c.training.loop` — the run on accelerate (DDP/FSDP, checkpoints, TensorBoard).
- :mod:`gen3c.training.lora` — LoRA adapters on the DiT (peft).
- :mod:`gen3c.training.distill` — distillation targets (guidance, progressive) in the sampler's terms.
- :mod:`gen3c.training.distill_loop` — the distillation run (``train.mode = "distill"``): stages, teacher, student.
- :mod:`gen3c.training.tokenizer` — a small Cosmos-family tokenizer for from-scratch models.
"""

from __future__ import annotations

import os


def run_training(config_path: str | os.PathLike, out: str | os.PathLike, *, resume=None, stop_after=None, progress_factory=None, echo=None):
    """Load ``config_path`` and run it into ``out`` (:func:`gen3c.training.loop.train`).

    Args:
        progress_factory: a context manager yielding a progress factory (the CLI's rich bars).
    """
    import contextlib

    from gen3c.training.config import load_config
    from gen3c.training.loop import train

    config = load_config(config_path)
    result = None
    try:
        with progress_factory() if progress_factory is not None else contextlib.nullcontext() as progress:
            result = train(config, out, resume=resume, stop_after=stop_after, progress=progress, echo=echo)
    except KeyboardInterrupt as exc:  # as the progress bars closed: the run had ended, its outputs written
        if result is None:
            raise
        raise type(exc)(ended_message(result)) from None
    return result


def ended_message(result) -> str:
    """What a Ctrl-C after a run's last step (its outputs written) says."""
    from gen3c.errors import quoted_path

    return f"stopped as the run ended, after its last step: {quoted_path(result.exported or result.checkpoint)} is written"
