"""Precomputed T5 embeddings of the prompts almost every run uses.

GEN3C's scripts run with an empty prompt, and with its default negative prompt whenever
classifier-free guidance runs. Their embeddings are computed once (at conversion time, with the
real T5) and stored as a pipeline component, so the common case never loads the 11B text encoder.
"""

from __future__ import annotations

import torch
from diffusers import ModelMixin  # noqa: F401  (diffusers finds the load method through this name)
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import Tensor


class PromptEmbeddingCache(ModelMixin, ConfigMixin):
    """T5 embeddings of fixed prompts, saved and loaded like any diffusers model.

    Args:
        prompts: the cached prompt strings (exact match).
        max_sequence_length: tokens per embedding.
        embed_dim: channels per token (1024 for T5-11B).
    """

    @register_to_config
    def __init__(
        self, prompts: list[str] | tuple[str, ...] = (), max_sequence_length: int = 512, embed_dim: int = 1024
    ):
        super().__init__()
        self.register_buffer("embeddings", torch.zeros(len(prompts), max_sequence_length, embed_dim))

    @classmethod
    def from_embeddings(cls, embeddings: dict[str, Tensor]) -> PromptEmbeddingCache:
        """A cache holding ``{prompt: (L, D) embedding}``."""
        if not embeddings:
            raise ValueError("the prompt cache needs at least one embedding")
        shapes = {tuple(e.shape[-2:]) for e in embeddings.values()}
        if len(shapes) != 1:
            raise ValueError(
                f"cached embeddings must share one (tokens, channels) shape, got {sorted(shapes)}"
            )
        (length, dim) = shapes.pop()
        cache = cls(prompts=list(embeddings), max_sequence_length=length, embed_dim=dim)
        stacked = torch.stack([e.reshape(length, dim) for e in embeddings.values()])
        cache.embeddings = stacked.to(torch.float32).clone()
        return cache

    @property
    def prompts(self) -> list[str]:
        return list(self.config.prompts)

    def lookup(self, prompt: str) -> Tensor | None:
        """(1, L, D) embedding of ``prompt``, or None when it is not cached."""
        try:
            index = self.prompts.index(prompt)
        except ValueError:
            return None
        return self.embeddings[index : index + 1]

    def forward(self, prompt: str) -> Tensor | None:  # pragma: no cover - lookups go through lookup()
        return self.lookup(prompt)
