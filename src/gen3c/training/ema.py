"""An exponential moving average (EMA) of the trained weights (``train.ema_decay``).

With decay β (0 < β < 1), after optimiser step t (t = 1, 2, …, counted over the run; a step
fp16's grad scaler skips, its gradients not finite, changes no weight and is not counted):

    ema_t = β · ema_{t−1} + (1 − β) · θ_t,    ema_0 = θ_0 (the weights before the first step)

so ``ema_n = β^n θ_0 + (1 − β) Σ_{k=1..n} β^(n−k) θ_k``: an average of the last ~1/(1 − β)
steps' weights. This is the constant-decay EMA of Cosmos-Predict1's regular EMA tracker (rate
0.999) and of diffusers' ``EMAModel`` without its warm-up; fine-tuning, the common case, starts
from trained weights, so the weight β^n left on θ_0 does no harm there (a run from scratch wants
n ≫ 1/(1 − β)). It covers the parameters that train (every DiT weight, or only a LoRA adapter's),
kept in float32 beside them, and is saved in each checkpoint as safetensors (``ema.safetensors``,
as the checkpoint's model weights), so a resumed run averages as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

#: The EMA's file in a checkpoint folder (:meth:`WeightEma.save` / :meth:`WeightEma.load`).
EMA_FILE = "ema.safetensors"


class WeightEma:
    """The EMA of ``params``."""

    def __init__(self, params: Sequence[torch.nn.Parameter], decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay {decay} must lie in (0, 1)")
        self.decay = decay
        self.shadow = [p.detach().float().clone() for p in params]

    @torch.no_grad()
    def update(self, params: Sequence[torch.nn.Parameter]) -> None:
        """One optimiser step's update: ema ← β·ema + (1 − β)·θ."""
        for shadow, p in zip(self.shadow, params, strict=True):
            shadow.lerp_(p.detach().float(), 1 - self.decay)

    @torch.no_grad()
    def reset(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Start the average again from ``params`` (ema_0 = θ)."""
        for shadow, p in zip(self.shadow, params, strict=True):
            shadow.copy_(p.detach().float())

    @torch.no_grad()
    def copy_to(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Set ``params`` to the EMA weights (in their own dtype)."""
        for shadow, p in zip(self.shadow, params, strict=True):
            p.copy_(shadow)

    @contextmanager
    def applied(self, params: Sequence[torch.nn.Parameter]) -> Iterator[None]:
        """Inside the block ``params`` hold the EMA weights; their own after it."""
        raw = [p.detach().clone() for p in params]
        self.copy_to(params)
        try:
            yield
        finally:
            with torch.no_grad():
                for saved, p in zip(raw, params, strict=True):
                    p.copy_(saved)

    def save(self, folder: Path) -> Path:
        """Write the average to ``folder/ema.safetensors`` (tensor ``i``: parameter ``i``; the decay in its metadata)."""
        from safetensors.torch import save_file

        tensors = {str(i): shadow.detach().cpu().contiguous() for i, shadow in enumerate(self.shadow)}
        save_file(tensors, str(folder / EMA_FILE), metadata={"decay": repr(self.decay)})
        return folder / EMA_FILE

    @torch.no_grad()
    def load(self, folder: Path) -> None:
        """Read the average :meth:`save` wrote into ``folder`` (a missing or mismatched file: ``ValueError``)."""
        from safetensors import safe_open

        path = folder / EMA_FILE
        if not path.is_file():
            raise ValueError(f"the checkpoint has no {EMA_FILE} (train.ema_decay's average)")
        names = [str(i) for i in range(len(self.shadow))]
        with safe_open(str(path), "pt") as f:
            keys, decay = set(f.keys()), (f.metadata() or {}).get("decay")
            saved = [f.get_tensor(name) for name in names] if keys == set(names) else []
        if decay is None or not saved or any(a.shape != b.shape for a, b in zip(saved, self.shadow, strict=True)):
            raise ValueError(f"the checkpoint's {EMA_FILE} holds {len(keys)} tensors, not this run's {len(self.shadow)} trained parameters")
        for mine, tensor in zip(self.shadow, saved, strict=True):
            mine.copy_(tensor)  # onto the parameters' device
        self.decay = float(decay)


@contextmanager
def ema_weights(ema: WeightEma | None, params: Sequence[torch.nn.Parameter]) -> Iterator[None]:
    """:meth:`WeightEma.applied`, or nothing without an EMA."""
    if ema is None:
        yield
        return
    with ema.applied(params):
        yield
