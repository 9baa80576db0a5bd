"""GEN3C's networks on diffusers: configurations, checkpoint conversion, tokenizer helpers.

- :mod:`gen3c.models.configs` — the 7B configuration, a tiny one of the same architecture, the sampler settings.
- :mod:`gen3c.models.convert` — official GEN3C checkpoint directory → diffusers-format safetensors.
- :mod:`gen3c.models.weights` — GEN3C's weights fetched from the hub, checked, converted once and cached.
- :mod:`gen3c.models.tokenizer` — latent normalisation; exact chunked encode/decode.
- :mod:`gen3c.models.prompt_cache` — precomputed T5 embeddings (empty and default negative prompt).
- :mod:`gen3c.models.memory` — memory modes (CPU offload, group offloading, fp8 weights).
- :mod:`gen3c.models.choices` — the values the model's settings take and their checks, without torch.
"""
