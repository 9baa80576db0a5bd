"""Memory modes of the GEN3C pipeline.

- ``resident``: every component on the accelerator (fastest, ~30 GB for the 7B in bf16 with T5 idle).
- ``model_offload``: each component lives in CPU memory and moves to the accelerator only for its
  stage (prompt encoding, tokenizer encoding, sampling, decoding) — GEN3C's three
  ``--offload_*`` flags together.
- ``group_offload``: the diffusion transformer stays in CPU memory and its blocks stream to the
  accelerator one group at a time through diffusers' group offloading, overlapped with
  compute on a separate CUDA stream; the other components as in ``model_offload``.

Orthogonal to the mode: ``fp8`` stores the transformer's weights in float8 (e4m3) and casts each
layer to the compute dtype as it runs (diffusers' layerwise casting; norms, embeddings and
the output layer stay in full precision), and ``vae_chunk_frames`` runs the tokenizer a few
latent frames at a time (exact, see :mod:`gen3c.models.tokenizer`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gen3c.errors import Gen3cInputError

MEMORY_MODES = ("resident", "model_offload", "group_offload")
#: Stage names of the pipeline's components, as GEN3C's flags call them.
COMPONENTS = ("transformer", "vae", "text_encoder")


@dataclass(frozen=True)
class MemoryPlan:
    """How a pipeline places its components.

    Attributes:
        offload: components kept in CPU memory between their stages.
        group_offload: stream the transformer's blocks (diffusers group offloading).
        fp8: float8 storage of the transformer's weights.
        vae_chunk_frames: latent frames per tokenizer chunk (None: whole video at once).
    """

    offload: frozenset[str] = frozenset()
    group_offload: bool = False
    fp8: bool = False
    vae_chunk_frames: int | None = None


def memory_plan(
    memory_mode: str = "resident",
    *,
    offload_diffusion_transformer: bool = False,
    offload_tokenizer: bool = False,
    offload_text_encoder_model: bool = False,
    fp8: bool = False,
    vae_chunk_frames: int | None = None,
) -> MemoryPlan:
    """Combine a memory mode with GEN3C's per-component offload flags.

    ``group_offload`` defaults the tokenizer to chunks of 2 latent frames unless
    ``vae_chunk_frames`` says otherwise (0 turns chunking off).
    """
    if memory_mode not in MEMORY_MODES:
        raise Gen3cInputError(
            f"memory_mode {memory_mode!r} is not one of {', '.join(MEMORY_MODES)}: pick one of them"
        )
    if vae_chunk_frames is not None and vae_chunk_frames < 0:
        raise Gen3cInputError(f"vae_chunk_frames {vae_chunk_frames} must be ≥ 1 (or 0 for no chunking)")
    offload = set()
    if offload_diffusion_transformer:
        offload.add("transformer")
    if offload_tokenizer:
        offload.add("vae")
    if offload_text_encoder_model:
        offload.add("text_encoder")
    if memory_mode in ("model_offload", "group_offload"):
        offload.update(COMPONENTS)
    if memory_mode == "group_offload" and vae_chunk_frames is None:
        vae_chunk_frames = 2
    return MemoryPlan(
        offload=frozenset(offload),
        group_offload=memory_mode == "group_offload",
        fp8=fp8,
        vae_chunk_frames=vae_chunk_frames or None,
    )


def enable_fp8_weights(transformer: torch.nn.Module, compute_dtype: torch.dtype) -> None:
    """Store the transformer's weights in float8 e4m3, computing in ``compute_dtype``."""
    transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute_dtype)
    transformer._gen3c_compute_dtype = compute_dtype


def enable_group_offload(transformer: torch.nn.Module, device: torch.device) -> None:
    """Stream the transformer block by block from CPU memory to ``device``.

    On CUDA the copies run on a side stream and overlap the previous block's compute
    (``use_stream``); elsewhere the blocks are moved synchronously.
    """
    cuda = torch.device(device).type == "cuda"
    transformer.enable_group_offload(
        onload_device=torch.device(device),
        offload_device=torch.device("cpu"),
        offload_type="block_level",
        num_blocks_per_group=1,
        non_blocking=cuda,
        use_stream=cuda,
        record_stream=cuda,
    )
    transformer._gen3c_group_offloaded = True


def has_hook(module: torch.nn.Module, name: str) -> bool:
    """Whether diffusers registered hook ``name`` (e.g. "group_offloading", "layerwise_casting") on
    ``module`` or one of its submodules."""
    for sub in module.modules():
        registry = getattr(sub, "_diffusers_hook", None)
        if registry is not None and registry.get_hook(name) is not None:
            return True
    return False
