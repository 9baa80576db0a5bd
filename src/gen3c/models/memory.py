"""Memory modes of the GEN3C pipeline.

- ``resident``: every component on the accelerator (fastest; GEN3C-7B in bf16 peaks at 46.0 GB for a
  121-frame 704×1280 chunk without T5, the 3D cache's renders on the GPU, docs/benchmarks.md).
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

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from gen3c.errors import Gen3cInputError, Gen3cModelError
from gen3c.models.choices import MEMORY_MODES, check_gpu_budget, check_vae_chunk_frames
from gen3c.models.configs import NUM_BUFFERS

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
    check_vae_chunk_frames(vae_chunk_frames)
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


def requested_memory_plan(options: Mapping[str, Any]) -> MemoryPlan:
    """The plan a gen3c generator's memory options ask for (``memory_mode``, ``low_memory``: that of
    :data:`LOW_MEMORY`, ``fp8``, GEN3C's offload flags, ``vae_chunk_frames``), before
    ``max_gpu_memory`` chooses one (:func:`choose_memory_plan`)."""
    low = bool(options.get("low_memory"))
    return memory_plan(
        LOW_MEMORY["memory_mode"] if low else options.get("memory_mode") or "resident",
        offload_diffusion_transformer=bool(options.get("offload_diffusion_transformer")),
        offload_tokenizer=bool(options.get("offload_tokenizer")),
        offload_text_encoder_model=bool(options.get("offload_text_encoder_model")),
        fp8=LOW_MEMORY["fp8"] if low else bool(options.get("fp8")),
        vae_chunk_frames=options.get("vae_chunk_frames"),
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
    transformer._gen3c_group_offloaded = torch.device(device)  # where its blocks stream to


# -- choosing a mode for a memory budget ------------------------------------------------------

#: ``--low_memory``: the leanest plan (the DiT streamed block by block, stored in float8; the
#: tokenizer in chunks of 2 latent frames). 7.96 GB peak at full size on an H100, at the
#: resident mode's step time (docs/benchmarks.md).
LOW_MEMORY = {"memory_mode": "group_offload", "fp8": True}

# Activation memory of the network stages, measured with benchmarks/bench_memory.py at full size
# (121 frames, 704×1280, bf16) on an H200 as the peak allocated memory of each stage minus the
# weights. The tokenizer's passes hold the whole video (input or output, float32 and casts) plus
# the activations of one chunk; their two terms come from the whole-video and the 2-latent-chunk
# measurements. They belong to the architecture family (Cosmos DiT, CV8x8x8 tokenizer), scale
# with width and video size as written below, and with the bytes per element of the model's dtype
# (ModelSize.dtype_bytes; they are for bf16's 2, float32 holds twice as many bytes).
#: Bytes per (token × hidden unit) of one DiT forward.
DIT_ACTIVATION_BYTES = 28.25
#: Bytes per (pixel × frame) of the whole video during the encode, and per (pixel × frame × first
#: encoder channel) of one encoded chunk.
VAE_ENCODE_VIDEO_BYTES = 38.0
VAE_ENCODE_BYTES = 2.11
#: The same for the decode (output pixels; first decoder channel).
VAE_DECODE_VIDEO_BYTES = 29.4
VAE_DECODE_BYTES = 1.02


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes a module holds: its parameters and all its buffers, as they are stored now."""
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def float8_bytes(transformer: torch.nn.Module) -> tuple[int, int]:
    """Bytes the DiT and its first block would hold with float8 storage (:func:`enable_fp8_weights`):
    diffusers' layerwise casting stores the linear layers' weights in 1 byte and leaves the norms
    (the blocks' adaLN modulation among them), embeddings and output layer as they are. Which
    tensors it casts is read off a twin on the meta device (nothing allocated)."""
    with torch.device("meta"):
        twin = type(transformer).from_config(transformer.config)
    twin.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    cast = {name for name, t in (*twin.named_parameters(), *twin.named_buffers()) if t.dtype == torch.float8_e4m3fn}

    def stored(module: torch.nn.Module, prefix: str) -> int:
        tensors = (*module.named_parameters(prefix), *module.named_buffers(prefix))
        return sum(t.numel() * (1 if name in cast else t.element_size()) for name, t in tensors)

    return stored(transformer, ""), stored(transformer.transformer_blocks[0], "transformer_blocks.0")


@dataclass(frozen=True)
class ModelSize:
    """What the memory estimate needs to know about the loaded model and the video of one chunk.

    Byte counts are of the weights as loaded (bf16 for GEN3C), before any float8 storage, and
    (``*_fp8_bytes``) with it (:func:`float8_bytes`); ``dtype_bytes`` is the bytes per element of
    the dtype they are loaded and computed in (2 for bfloat16, 4 for float32): the activations
    scale with it. ``text_encoder_bytes``: T5's weights where it will encode a prompt on the
    accelerator (a prompt the prompt cache lacks), else 0.
    """

    dit_bytes: int
    dit_block_bytes: int
    dit_fp8_bytes: int
    dit_block_fp8_bytes: int
    dit_num_blocks: int
    vae_bytes: int
    tokens: int
    hidden: int
    frames: int
    height: int
    width: int
    encoder_channels: int
    decoder_channels: int
    temporal_compression: int
    dtype_bytes: int
    text_encoder_bytes: int = 0

    @classmethod
    def of(
        cls, transformer: torch.nn.Module, vae: torch.nn.Module, frames: int, height: int, width: int, text_encoder_bytes: int = 0
    ) -> ModelSize:
        """Sizes of a loaded ``transformer`` (CosmosTransformer3DModel) and ``vae`` (AutoencoderKLCosmos)
        for one chunk of ``frames`` frames at ``height``×``width``, T5 of ``text_encoder_bytes``
        encoding a prompt first (:meth:`~gen3c.pipelines.gen3c.Gen3cPipeline.text_encoder_bytes`)."""

        tcfg, vcfg = transformer.config, vae.config
        tc, sc = vcfg.temporal_compression_ratio, vcfg.spatial_compression_ratio
        pt, ph, pw = tcfg.patch_size
        latent_t = (frames - 1) // tc + 1
        tokens = math.ceil(latent_t / pt) * (height // sc // ph) * (width // sc // pw)
        blocks = transformer.transformer_blocks
        # The compute dtype: that of the weights as loaded, or float8 storage's compute dtype.
        compute_dtype = getattr(transformer, "_gen3c_compute_dtype", None) or transformer.dtype
        dit_fp8_bytes, dit_block_fp8_bytes = float8_bytes(transformer)
        return cls(
            dit_bytes=module_bytes(transformer),
            dit_block_bytes=module_bytes(blocks[0]),
            dit_fp8_bytes=dit_fp8_bytes,
            dit_block_fp8_bytes=dit_block_fp8_bytes,
            dit_num_blocks=len(blocks),
            vae_bytes=module_bytes(vae),
            tokens=tokens,
            hidden=tcfg.num_attention_heads * tcfg.attention_head_dim,
            frames=frames,
            height=height,
            width=width,
            encoder_channels=vcfg.encoder_block_out_channels[0],
            decoder_channels=vcfg.decode_block_out_channels[0],
            temporal_compression=tc,
            dtype_bytes=compute_dtype.itemsize,
            text_encoder_bytes=text_encoder_bytes,
        )


#: GEN3C-7B in bfloat16 at its full chunk, 121 frames at 704×1280: what :meth:`ModelSize.of` gives for
#: the models of ``configs.TRANSFORMER_7B`` and ``configs.VAE_CV8X8X8`` (tests/test_memory_budget.py
#: builds them on the meta device to check), for estimates made without loading them (``gen3c env``).
GEN3C_7B_SIZE = ModelSize(
    dit_bytes=14_474_514_432, dit_block_bytes=511_706_112, dit_fp8_bytes=7_595_855_872, dit_block_fp8_bytes=268_436_480,
    dit_num_blocks=28, vae_bytes=211_307_432, tokens=56_320,
    hidden=4096, frames=121, height=704, width=1280, encoder_channels=128, decoder_channels=256, temporal_compression=8,
    dtype_bytes=2,
)  # fmt: skip


#: Bytes per (pixel × frame) of one buffer's render as the generator takes it: float32 colour and mask.
RENDER_BYTES = 16


def renders_stay_on_gpu(plan: MemoryPlan) -> bool:
    """Whether the 3D cache's renders stay on the GPU they are splatted on, for the tokenizer to
    encode there (no copy to CPU memory and back: ~1.2 s per 121-frame 704×1280 chunk on an H200,
    docs/benchmarks.md). Only in the resident plan with the tokenizer on the whole video, whose own
    whole-video tensors dwarf them (at most 3.25 GB at full size against ~30 GB); the leaner plans
    keep them in CPU memory. T5, which has run before the renders are encoded, may be offloaded."""
    return not plan.offload - {"text_encoder"} and not plan.group_offload and plan.vae_chunk_frames is None


def estimate_peak_gb(plan: MemoryPlan, size: ModelSize) -> float:
    """Estimated peak accelerator memory (GB, 2³⁰ bytes; as ``torch.cuda.max_memory_allocated``) of
    one chunk under ``plan``: the largest of the stages (prompt, encode, sample, decode), each the
    weights on the accelerator at that time plus the stage's activations, plus the renders where
    they stay on the GPU (:func:`renders_stay_on_gpu`; GEN3C's two buffers, of which the encode
    held one before). T5 counts only where it encodes a prompt the prompt cache lacks
    (``size.text_encoder_bytes``): its weights beside what stays on the accelerator (its activations,
    512 tokens, are too small to count), and in every later stage unless it is offloaded. Weights count as loaded (or as float8 storage keeps them: ``size.dit_fp8_bytes``),
    activations at ``size.dtype_bytes`` per element (the coefficients are bf16's), renders in float32."""
    activations = size.dtype_bytes / 2  # the coefficients were measured in bf16
    dit = size.dit_fp8_bytes if plan.fp8 else size.dit_bytes
    if plan.group_offload:  # blocks stream in one at a time, the next one prefetched
        block = size.dit_block_fp8_bytes if plan.fp8 else size.dit_block_bytes
        dit_sampling = dit - size.dit_num_blocks * block + 2 * block
    else:
        dit_sampling = dit
    dit_idle = 0.0 if "transformer" in plan.offload else dit
    vae_idle = 0.0 if "vae" in plan.offload else size.vae_bytes
    t5 = size.text_encoder_bytes
    t5_idle = 0.0 if "text_encoder" in plan.offload else t5
    chunk = size.frames if plan.vae_chunk_frames is None else min(size.frames, plan.vae_chunk_frames * size.temporal_compression + 1)
    pixels = chunk * size.height * size.width
    video = size.frames * size.height * size.width
    renders = NUM_BUFFERS * RENDER_BYTES * video if renders_stay_on_gpu(plan) else 0
    # The encode's calibrated video term already holds the buffer being encoded.
    encode_renders = max(0, renders - RENDER_BYTES * video)
    encode_act = (VAE_ENCODE_VIDEO_BYTES * video + VAE_ENCODE_BYTES * pixels * size.encoder_channels) * activations
    decode_act = (VAE_DECODE_VIDEO_BYTES * video + VAE_DECODE_BYTES * pixels * size.decoder_channels) * activations
    prompt = dit_idle + vae_idle + t5
    encode = t5_idle + dit_idle + size.vae_bytes + encode_act + encode_renders
    sample = t5_idle + dit_sampling + vae_idle + DIT_ACTIVATION_BYTES * size.tokens * size.hidden * activations + renders
    decode = t5_idle + dit_idle + size.vae_bytes + decode_act + renders
    return max(prompt, encode, sample, decode) / 2**30


#: The plans ``--max_gpu_memory`` chooses from, fastest first (docs/benchmarks.md: the step time is
#: the same in all of them; chunking the tokenizer and streaming the DiT slow encoding/decoding).
#: In each, T5 (where a prompt needs it) goes back to CPU memory after the prompts.
BUDGET_PLANS: tuple[tuple[str, dict], ...] = (
    ("resident", {"offload_text_encoder_model": True}),
    ("resident, tokenizer in chunks", {"offload_text_encoder_model": True, "vae_chunk_frames": 2}),
    ("resident, float8 DiT weights, tokenizer in chunks", {"offload_text_encoder_model": True, "fp8": True, "vae_chunk_frames": 2}),
    ("group_offload", {"memory_mode": "group_offload"}),
    ("group_offload + float8 DiT weights (--low_memory)", LOW_MEMORY),
)


#: Share of the budget the estimated peak may fill: the estimate is within 3 % of the measured peak
#: at full size, and the allocator needs room beyond what is allocated.
BUDGET_FILL = 0.9


def choose_memory_plan(max_gpu_memory_gb: float, size: ModelSize, *, float8: bool = True) -> tuple[str, MemoryPlan, float]:
    """The fastest plan of :data:`BUDGET_PLANS` whose estimated peak fits ``BUDGET_FILL`` of
    ``max_gpu_memory_gb``; ``float8`` False leaves out the plans storing the DiT in float8 (a
    LoRA adapts bf16/fp32 weights).

    Returns:
        (label, plan, estimated peak GB).
    Raises:
        Gen3cInputError: the budget is not a positive number.
        Gen3cModelError: not even the leanest plan fits.
    """
    max_gpu_memory_gb = check_gpu_budget(max_gpu_memory_gb)
    estimates = []
    for label, options in BUDGET_PLANS:
        plan = memory_plan(**options)
        if plan.fp8 and not float8:
            continue
        peak = estimate_peak_gb(plan, size)
        if peak <= BUDGET_FILL * max_gpu_memory_gb:
            return label, plan, peak
        estimates.append(peak)
    need = estimates[-1] / BUDGET_FILL
    digits = 1 if need >= 0.1 else 1 - math.floor(math.log10(need))  # tenths of a GB, or 2 significant figures
    least = round(math.ceil(need * 10**digits) / 10**digits, digits)  # rounded up to one that fits
    while BUDGET_FILL * (least - 10**-digits) >= estimates[-1]:
        least = round(least - 10**-digits, digits)
    raise Gen3cModelError(
        f"--max_gpu_memory {max_gpu_memory_gb:g} GB is too little for the leanest mode's estimated peak of {format_gb(estimates[-1])} "
        f"(+{1 / BUDGET_FILL - 1:.0%} headroom) for {size.frames} frames at {size.height}×{size.width}: it needs --max_gpu_memory "
        f"{least:g} or more (a GPU with that much free), or a lower --resolution"
        + ("" if float8 else " (with --lora the modes storing the DiT in float8 are left out)")
        + (f"; T5 takes {format_gb(size.text_encoder_bytes / 2**30)} of it to encode the prompt, which a prompt in the prompt cache would not"
           if size.text_encoder_bytes else "")  # fmt: skip
    )


def format_gb(gb: float) -> str:
    """``gb`` GB (GiB) for a message: in tenths of a GB, or in MB (kB) below 0.1 GB (0.1 MB), where
    a small model's estimate read "0.0 GB"."""
    for unit, scale in (("GB", 1), ("MB", 2**10)):
        if gb * scale >= 0.1:
            return f"{gb * scale:.1f} {unit}"
    return f"{gb * 2**20:.1f} kB"


def out_of_memory_message(
    plan: MemoryPlan, device: torch.device | str, stage: str, *, lora: bool = False, max_gpu_memory: float | None = None
) -> str:
    """One line for a user whose run ran out of accelerator memory: what was in use and the flag to
    try (with a ``lora`` loaded, one without float8 weights, which a LoRA cannot adapt; where
    ``max_gpu_memory`` chose the plan, a smaller budget or the leanest mode in its place: the two
    cannot be passed together)."""
    device = torch.device(device)
    total = ""
    if device.type == "cuda":
        free, whole = torch.cuda.mem_get_info(device)
        total = f" ({(whole - free) / 2**30:.1f} of {whole / 2**30:.1f} GB in use)"
    leanest = "--memory_mode group_offload (the leanest mode for a LoRA)" if lora else "--low_memory (the leanest mode, ~8 GB for GEN3C-7B)"
    streamed = plan.group_offload and (plan.fp8 or lora)
    if plan.group_offload and plan.vae_chunk_frames is None:  # vae_chunk_frames 0 turned off the mode's tokenizer chunks
        # (a flag the command line lacks, and never sets to 0: as a flag, the API and batch rows respell it, vae_chunk_frames=2)
        chunks = "--vae_chunk_frames 2 (the tokenizer in chunks of 2 latent frames, which --vae_chunk_frames 0 turned off)"
        hint = f"try {chunks}" if streamed else f"try {leanest} with {chunks}"
    elif streamed:
        hint = "this is already the leanest mode: close other programs on the GPU or use one with more memory"
    elif max_gpu_memory is not None:
        hint = f"--max_gpu_memory {max_gpu_memory:g} chose a mode this GPU could not hold: try a smaller budget, or {leanest} in its place"
    else:
        hint = f"try {leanest} or --max_gpu_memory GB to pick a mode that fits"
    return f"the GPU ran out of memory while {stage}{total}: {hint}"


# -- CPU memory -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostMemory:
    """This machine's CPU memory in bytes: ``available`` now (free plus reclaimable page cache:
    Linux's MemAvailable), ``total`` (RAM and swap: more than this can never be held) and
    ``held``, this process's resident memory now (already part of ``total``'s use, not of
    ``available``). ``limited``: ``total`` is this process's cgroup's memory limit with the swap
    it allows (:func:`~gen3c.environment.cgroup_memory`: a container's or a job's), lower than the
    machine's RAM, and ``available`` at most what is left of that limit beside what the cgroup's
    processes (this one and others) use."""

    available: int
    total: int
    held: int = 0
    limited: bool = False

    @classmethod
    def now(cls) -> HostMemory:
        """psutil's figures (the machine's, on Linux, macOS and Windows alike), which a cgroup's
        memory limit lowers."""
        from gen3c.dependencies import require
        from gen3c.environment import cgroup_memory

        psutil = require("psutil", "checking the free CPU memory")
        machine = psutil.virtual_memory()
        ram, swap, available, held = machine.total, psutil.swap_memory().total, machine.available, psutil.Process().memory_info().rss
        cgroup = cgroup_memory()
        if cgroup is not None and cgroup.limit < ram:  # (past it the kernel kills the process, whatever RAM is free)
            # (what this process holds is part of its cgroup's use; where that use cannot be read, it is still there)
            available = min(available, cgroup.available, cgroup.limit - held)
            swap = swap if cgroup.swap is None else min(swap, cgroup.swap)  # (a container's is often none)
            return cls(available=max(0, available), total=cgroup.limit + swap, held=held, limited=True)
        return cls(available=available, total=ram + swap, held=held)

    def capacity(self) -> str:
        """``total`` in words: "this machine has … GB of RAM and swap", or its cgroup's limit."""
        gb = f"{self.total / 2**30:.1f} GB"
        return f"this process's cgroup (a container's or a job's memory limit) allows {gb} with swap" if self.limited else f"this machine has {gb} of RAM and swap"


def check_host_memory(need_bytes: int, what: str, fix: str) -> None:
    """Refuse, before anything is allocated, weights that cannot fit in this machine's CPU memory
    (a process that outgrows RAM and swap is killed by the system without a word); note weights
    that fit only if other programs give memory back.

    Args:
        need_bytes: the bytes ``what`` will hold in CPU memory.
        what: names them, e.g. "checkpoint 'ckpt' in float32 on the CPU".
        fix: what to do instead, e.g. "run it on a CUDA GPU".
    Raises:
        Gen3cMemoryError: ``need_bytes`` is more than RAM and swap together.
    """
    from gen3c.errors import Gen3cMemoryError, note

    memory = HostMemory.now()
    need = f"{what} needs {need_bytes / 2**30:.1f} GB of CPU memory for its weights alone"
    if need_bytes > memory.total:
        raise Gen3cMemoryError(f"{need}; {memory.capacity()}: {fix}")
    if need_bytes > memory.available:
        note(f"{need} and {memory.available / 2**30:.1f} GB are free now: it loads only if other programs give memory back; else {fix}", stacklevel=3)
