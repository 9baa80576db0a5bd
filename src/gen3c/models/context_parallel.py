"""Context parallelism of GEN3C's DiT: its video tokens split across GPUs (Ulysses attention).

With N ranks, each holds ``S / N`` of the ``S = T'·H'·W'`` patch tokens (GEN3C: 16·44·80 =
56,320) through every block. Everything per token (linears, norms, AdaLN, MLP, cross-attention
to the full text) runs on the local tokens alone; self-attention needs all of them, so
diffusers' Ulysses attention exchanges heads for tokens with two all-to-alls: each rank then
attends over the whole sequence for ``heads / N`` heads (GEN3C: 32 heads, so N ∈ {1, 2, 4, 8}
on one host) and the result is exchanged back.

This is diffusers' own machinery (``ModelMixin.enable_parallelism``, ``_cp_plan`` hooks,
``TemplatedUlyssesAttention``); ``CosmosTransformer3DModel`` ships no ``_cp_plan`` and its
attention processor does not pass a parallel config to the dispatcher, so this module adds both:

- :func:`cosmos_cp_plan` splits, on the outputs of the modules that make them, the patch
  tokens (``patch_embed``, along T′ — contiguous blocks of the flattened T′·H′·W′ sequence),
  the RoPE cos/sin (``rope``, along the sequence) and the learnable positional embedding
  (``learnable_pos_embed``), all cut at the same token boundaries; the condition and padding
  mask channels are inside the patch tokens already. The output is gathered after ``proj_out``,
  before unpatchifying. So T′ must divide by N (GEN3C's 16 latent frames: N ∈ {1, 2, 4, 8, 16}),
  as in GEN3C, which also splits its DiT along time.
- :class:`gen3c.models.attention.CosmosAttnProcessor` hands the parallel config to
  ``dispatch_attention_fn`` for self-attention only (cross-attention keys are the text, whole on
  every rank).

The timestep must be one value per sample (the GEN3C pipeline's), not per frame.

Ring attention (diffusers' other template) needs a backend that returns the softmax's
log-sum-exp — CUDA-only ones (``_native_cudnn``, ``flash``) — so it could not run in the CPU
test; Ulysses covers GEN3C's 32 heads on up to 8 GPUs and is what this module uses.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gen3c.dependencies import require
from gen3c.errors import Gen3cInputError, note
from gen3c.models.attention import AUTO_ORDER, CosmosAttnProcessor, resolve_kernel
from gen3c.models.choices import check_context_parallel_attention, check_token_split


def cosmos_cp_plan(transformer: nn.Module) -> dict[str, Any]:
    """The ``_cp_plan`` of a ``CosmosTransformer3DModel``: where tokens are split and gathered."""
    from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput

    split = lambda dim, ndim: ContextParallelInput(split_dim=dim, expected_dims=ndim, split_output=True)  # noqa: E731
    plan: dict[str, Any] = {
        # (B, T', H', W', C): split along T' = contiguous runs of the flattened sequence
        "patch_embed": {0: split(1, 5)},
        # (cos, sin), each (T'·H'·W', head_dim)
        "rope": {0: split(0, 2), 1: split(0, 2)},
        # (B, S, C) -> gathered back to the whole sequence
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }
    if getattr(transformer, "learnable_pos_embed", None) is not None:
        plan["learnable_pos_embed"] = {0: split(1, 3)}  # (B, S, C)
    return plan


def context_parallel_degree(transformer: nn.Module) -> int:
    """Ranks the transformer's tokens are split across (1 when it is not context-parallel)."""
    config = getattr(transformer, "_parallel_config", None)
    cp = getattr(config, "context_parallel_config", None)
    return 1 if cp is None else cp.ring_degree * cp.ulysses_degree


def context_parallel_attention(requested: str | None, transformer: nn.Module, device: torch.device | str) -> str | None:
    """The attention backend to give a DiT whose tokens are split across GPUs, for ``requested``
    (an ``--attention_backend`` value): "auto"/"auto_fp8" become "sdpa" — with a note when they
    would have taken flash4 or cudnn_fp8 on one GPU, since under context parallelism they do not;
    an explicit flash4 / cudnn_fp8 is refused (:func:`check_context_parallel_attention`)."""
    check_context_parallel_attention(requested, 2)
    if requested not in AUTO_ORDER:
        return requested
    dtype = getattr(transformer, "_gen3c_compute_dtype", None) or next(transformer.parameters()).dtype
    kernel, _ = resolve_kernel(requested, device, transformer.config.attention_head_dim, dtype)
    if kernel != "sdpa":
        note(f"--num_gpus: self-attention runs on PyTorch SDPA, which splits tokens across GPUs ({kernel}, what "
             f"--attention_backend {requested} takes on one GPU, does not)")  # fmt: skip
    return "sdpa"


def enable_context_parallel(transformer: nn.Module, device: torch.device) -> int:
    """Split ``transformer``'s tokens across every rank of the (initialised) default process group.

    Installs :class:`~gen3c.models.attention.CosmosAttnProcessor` (self-attention through the
    dispatcher) in every block, then applies
    :func:`cosmos_cp_plan` with a Ulysses ``ContextParallelConfig`` of the world size.
    Returns the degree N.

    Raises:
        Gen3cInputError: the heads do not divide by N, or the active attention backend cannot
            run context-parallel.
        Gen3cDependencyError: diffusers lacks context parallelism (older than gen3c's
            requirement) or fails to import.
    """
    import warnings

    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    # Failing here means a diffusers older than gen3c's requirement (gen3c installed without it)
    # or a broken one: require names it, its version and the reinstall of the requirement.
    needed_for = "--num_gpus above 1 (diffusers' context parallelism)"
    apply_context_parallel = require("diffusers.hooks.context_parallel", needed_for).apply_context_parallel
    parallel = require("diffusers.models._modeling_parallel", needed_for)
    ContextParallelConfig, ParallelConfig = parallel.ContextParallelConfig, parallel.ParallelConfig
    dispatch = require("diffusers.models.attention_dispatch", needed_for)
    AttentionBackendName, _AttentionBackendRegistry = dispatch.AttentionBackendName, dispatch._AttentionBackendRegistry

    world = dist.get_world_size()
    if world == 1:
        return 1
    check_token_split(transformer.config.num_attention_heads, world)
    if getattr(transformer.config, "img_context_dim_in", None):
        raise Gen3cInputError("context parallelism supports GEN3C's DiT, not Cosmos models with an image context")
    chosen = getattr(transformer.transformer_blocks[0].attn1.processor, "_attention_backend", None)
    backend = AttentionBackendName(chosen) if chosen is not None else _AttentionBackendRegistry.get_active_backend()[0]
    if not _AttentionBackendRegistry._is_context_parallel_available(backend):
        ok = ", ".join(sorted(_AttentionBackendRegistry._supports_context_parallel))
        raise Gen3cInputError(
            f"attention backend {backend.value!r} cannot split tokens across GPUs: pick --attention_backend from {ok}"
        )
    processors = []
    for block in transformer.transformer_blocks:
        for attn in (block.attn1, block.attn2):
            processor = CosmosAttnProcessor()
            processor._attention_backend = chosen
            attn.set_processor(processor)
            processors.append(processor)
    # diffusers 0.42's gather calls a torch collective that torch 2.14 deprecates; nothing for users to act on.
    warnings.filterwarnings("ignore", message=r".*all_gather_tensor.* is deprecated", category=FutureWarning)
    mesh = init_device_mesh(device.type, (1, world), mesh_dim_names=("ring", "ulysses"))
    cp = ContextParallelConfig(ulysses_degree=world, mesh=mesh)
    plan = cosmos_cp_plan(transformer)
    if torch.accelerator.device_count() > 0:
        transformer.enable_parallelism(config=cp, cp_plan=plan)
    else:
        # diffusers 0.42's enable_parallelism picks the device as rank % accelerator count, which
        # divides by zero on a host without one; these are its steps for the CPU (gloo).
        config = ParallelConfig(context_parallel_config=cp)
        config.setup(dist.get_rank(), world, device, mesh=mesh)
        transformer._parallel_config = config
        for processor in processors:
            processor._parallel_config = config
        apply_context_parallel(transformer, cp, plan)
    return world
