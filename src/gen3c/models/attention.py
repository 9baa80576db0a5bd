"""Attention of GEN3C's DiT: one Cosmos attention processor, and the kernels its self-attention runs on.

Two thirds of a GEN3C DiT forward is self-attention over the 56,320 video tokens of a
121-frame 704×1280 chunk (32 heads × 128, non-causal). The kernels, fastest first on an H200
(docs/benchmarks.md has the measured rows):

- ``cudnn_fp8`` — cuDNN's fp8 (e4m3) flash attention through ``nvidia-cudnn-frontend``'s
  Python graph API: q, k and v are quantised per tensor on the fly (k first centred over the
  tokens, which leaves the softmax unchanged and shrinks its range, as SageAttention does), the
  probabilities and the output are e4m3 too (Hopper's kernel writes fp8 only); with fp8
  matmuls that e4m3 output is the output projection's GEMM input as it is. An
  approximation: its cost is measured, and it is opt-in.
- ``flash4`` — FlashAttention-4 (``flash-attn-4``, CuTe DSL kernels for Hopper and Blackwell) in
  bf16: exact attention, faster than cuDNN's bf16 SDPA at this shape (on Hopper with a tile of
  192 queries, :data:`HOPPER_TILE_HEAD_DIM_128`).
- ``sdpa`` — PyTorch's ``scaled_dot_product_attention`` (cuDNN / FlashAttention-2 / math, as
  PyTorch picks): every device, the fallback.

``auto`` takes the fastest exact kernel the device and the installed packages offer
(``flash4`` on Hopper and Blackwell GPUs with ``gen3c[fast]`` installed, else ``sdpa``);
``auto_fp8`` (the ``fastest`` speed preset's) takes ``cudnn_fp8`` where it runs, else what
``auto`` takes.
A kernel asked for that cannot run here falls back to ``sdpa`` with one warning line, never an
error. Both external kernels are registered as PyTorch custom ops (``gen3c::flash4_attention``,
``gen3c::cudnn_sdpa_fp8``) with shape-only fake implementations, so regional ``torch.compile``
traces through them without a graph break.

Cross-attention (512 text tokens) always runs through diffusers' dispatcher.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import inspect
import math
import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn

from gen3c.errors import first_line, note
from gen3c.models.choices import AUTO_ORDER, KERNELS
from gen3c.models.speed import FP8_MAX, Fp8Linear

# -- the processor ----------------------------------------------------------------------------


class CosmosAttnProcessor:
    """Cosmos attention (QK RMS-norm, RoPE on self-attention) with a choice of self-attention kernel.

    Computes what diffusers' ``CosmosAttnProcessor2_0`` computes for GEN3C's DiT (equal heads for
    q, k and v). Self-attention runs on ``self_attention`` (a kernel of :data:`KERNELS`,
    ``(B, S, H, D)`` in and out) unless the tokens are split across GPUs; cross-attention and
    context-parallel self-attention go through diffusers' dispatcher, which is also told the
    diffusers attention backend and the parallel config (set by diffusers'
    ``set_attention_backend`` / ``enable_parallelism``).

    ``self_attention_e4m3`` is the same kernel with its output left in e4m3 with one scale per
    tensor (``(out, scale)``, as :func:`cudnn_fp8_attention_e4m3`). When the output projection is
    an fp8 linear (:class:`gen3c.models.speed.Fp8Linear`), that output goes into its GEMM as it
    is — one per-tensor scale is a row-wise scale with every row equal — instead of being
    dequantised to bf16 and quantised again per row: a pass over the (tokens, hidden)
    activations and a rounding fewer.
    """

    def __init__(
        self,
        self_attention: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None,
        self_attention_e4m3: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
    ) -> None:
        self.self_attention = self_attention
        self.self_attention_e4m3 = self_attention_e4m3
        # Set by diffusers' set_attention_backend / enable_parallelism.
        self._attention_backend = None
        self._parallel_config = None

    def __call__(
        self,
        attn: nn.Module,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        image_rotary_emb: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """hidden_states (B, S, C); encoder_hidden_states (B, L, C_text) for cross-attention;
        image_rotary_emb (cos, sin) each (S, head_dim). Returns (B, S, C)."""
        from diffusers.models.attention_dispatch import dispatch_attention_fn
        from diffusers.models.embeddings import apply_rotary_emb

        cross = encoder_hidden_states is not None
        context = encoder_hidden_states if cross else hidden_states
        # (B, S, heads, head_dim): the layout every kernel here takes
        query = attn.norm_q(attn.to_q(hidden_states).unflatten(2, (attn.heads, -1)))
        key = attn.norm_k(attn.to_k(context).unflatten(2, (attn.heads, -1)))
        value = attn.to_v(context).unflatten(2, (attn.heads, -1))
        if image_rotary_emb is not None:
            query = apply_rotary_emb(query, image_rotary_emb, use_real=True, use_real_unbind_dim=-2, sequence_dim=1)
            key = apply_rotary_emb(key, image_rotary_emb, use_real=True, use_real_unbind_dim=-2, sequence_dim=1)
        projection = attn.to_out[0]
        own_kernel = self.self_attention is not None and not cross and self._parallel_config is None and attention_mask is None
        if own_kernel and self.self_attention_e4m3 is not None and isinstance(projection, Fp8Linear):
            out8, scale = self.self_attention_e4m3(query, key, value)
            rows = out8.shape[0] * out8.shape[1]
            row_scales = scale.reshape(1, 1).expand(rows, 1).contiguous()
            out = projection.matmul_quantized(out8.reshape(rows, -1), row_scales, query.dtype)
            return attn.to_out[1](out.reshape(*out8.shape[:2], -1))
        if own_kernel:
            out = self.self_attention(query, key, value)
        else:
            out = dispatch_attention_fn(
                query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False,
                backend=self._attention_backend, parallel_config=None if cross else self._parallel_config,
            )  # fmt: skip
        out = out.flatten(2, 3).type_as(query)
        return attn.to_out[1](projection(out))


# diffusers' ``Attention.forward`` reads ``inspect.signature(processor.__call__)`` at every call (to
# drop keyword arguments the processor does not take). ``inspect`` returns a function's
# ``__signature__`` when it has one, instead of building it from the code object: ~4 µs a call
# instead of ~12, 12 calls per forward of a 6-block DiT (docs/benchmarks.md).
CosmosAttnProcessor.__call__.__signature__ = inspect.signature(CosmosAttnProcessor.__call__)


# -- kernels ------------------------------------------------------------------------------------


def sdpa_attention(query: Tensor, key: Tensor, value: Tensor) -> Tensor:
    """PyTorch SDPA on (B, S, H, D) tensors; returns (B, S, H, D)."""
    out = torch.nn.functional.scaled_dot_product_attention(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2))
    return out.transpose(1, 2)


def flash4_attention(query: Tensor, key: Tensor, value: Tensor) -> Tensor:
    """FlashAttention-4 (bf16/fp16, CUDA) on (B, S, H, D) tensors; returns (B, S, H, D)."""
    return torch.ops.gen3c.flash4_attention(query, key, value, 1.0 / math.sqrt(query.shape[-1]))


def quantize_fp8(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-tensor e4m3 quantisation: ``(x / s).to(e4m3), s`` with ``s = amax(|x|) / 448`` as a (1, 1, 1, 1) float32 tensor."""
    scale = (x.detach().abs().amax().float() / FP8_MAX).clamp(min=1e-12).reshape(1, 1, 1, 1)
    return (x.float() / scale.reshape(())).to(torch.float8_e4m3fn), scale


def smooth_keys(key: Tensor) -> Tensor:
    """Keys centred over the tokens, per sample and head: (B, S, H, D) → same.

    Subtracting one vector ``m`` from every key adds ``q·m`` to all of a query's scores, which the
    softmax cancels: attention is unchanged, and the keys' shared offset no longer eats the e4m3
    range (SageAttention's K smoothing, Zhang et al. 2025).
    """
    return key - key.mean(dim=1, keepdim=True)


def cudnn_fp8_attention_e4m3(query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
    """cuDNN fp8 flash attention on (B, S, H, D) tensors, its output left as the kernel writes it.

    Returns:
        ``(out, scale)``: out (B, S, H, D) e4m3, contiguous, and scale (1, 1, 1, 1) float32;
        the attention is ``out · scale``.
    """
    q8, descale_q = quantize_fp8(query)
    k8, descale_k = quantize_fp8(smooth_keys(key))
    v8, descale_v = quantize_fp8(value)
    # The output is a convex combination of the values: |o| ≤ amax(|v|), so v's scale fits o.
    out = torch.ops.gen3c.cudnn_sdpa_fp8(q8, k8, v8, descale_q, descale_k, descale_v, 1.0 / math.sqrt(query.shape[-1]))
    return out, descale_v


def cudnn_fp8_attention(query: Tensor, key: Tensor, value: Tensor) -> Tensor:
    """cuDNN fp8 flash attention on (B, S, H, D) bf16 tensors; returns (B, S, H, D) in the input's dtype."""
    out, scale = cudnn_fp8_attention_e4m3(query, key, value)
    return (out.float() * scale.reshape(())).to(query.dtype)


_KERNEL_FUNCTIONS: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "sdpa": sdpa_attention,
    "flash4": flash4_attention,
    "cudnn_fp8": cudnn_fp8_attention,
}
#: Kernels that can hand their output over in e4m3 with a per-tensor scale, for an fp8 output projection.
_E4M3_KERNEL_FUNCTIONS: dict[str, Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]] = {
    "cudnn_fp8": cudnn_fp8_attention_e4m3,
}


# -- custom ops ---------------------------------------------------------------------------------


#: FlashAttention-4's forward tile for heads of 128 on Hopper: 192 queries × 128 keys on three
#: warpgroups, P·V from registers, no intra-warpgroup overlap. FA4 picks 128 × 128 with overlap;
#: at GEN3C's 56,320 tokens this tile is 2.5 % faster (73.9 vs 75.8 ms on an H200; the DiT
#: forward 3.39 vs 3.45 s, docs/benchmarks.md) and gives the same output bit for bit (same key
#: tile, so the same reduction order).
HOPPER_TILE_HEAD_DIM_128 = {"tile_mn": (192, 128), "mma_pv_is_rs": True, "intra_wg_overlap": False}
# Cleared when the installed flash-attn-4 does not take the tile request (its own choice is used then).
_hopper_tile_accepted = [True]


def _flash4_hopper_tiled(query: Tensor, key: Tensor, value: Tensor, softmax_scale: float) -> Tensor | None:
    """FlashAttention-4 with :data:`HOPPER_TILE_HEAD_DIM_128` where it applies (None elsewhere)."""
    if not (_hopper_tile_accepted[0] and query.shape[-1] == 128 and torch.cuda.get_device_capability(query.device)[0] == 9):
        return None
    try:
        from flash_attn.cute.interface import _flash_attn_fwd

        return _flash_attn_fwd(query, key, value, softmax_scale=softmax_scale, causal=False, **HOPPER_TILE_HEAD_DIM_128)[0]
    except torch.OutOfMemoryError:
        raise  # says nothing about the tile: keep asking for it once memory is freed
    except Exception:  # any refusal of the request (another flash-attn-4): its own choice; a real error recurs there
        _hopper_tile_accepted[0] = False
        return None


@torch.library.custom_op("gen3c::flash4_attention", mutates_args=())
def _flash4_op(query: Tensor, key: Tensor, value: Tensor, softmax_scale: float) -> Tensor:
    from flash_attn.cute import flash_attn_func

    # FA4 reads the architecture of, and launches on, the current CUDA device: make it the inputs'.
    with torch.cuda.device(query.device), warnings.catch_warnings():
        # The CuTe DSL says, at each first compile, that one argument is not a JIT argument; not ours to act on.
        warnings.filterwarnings("ignore", message="Argument aux_data", category=UserWarning)
        out = _flash4_hopper_tiled(query, key, value, softmax_scale)
        if out is None:
            out = flash_attn_func(query, key, value, softmax_scale=softmax_scale, causal=False)
    return out[0] if isinstance(out, tuple) else out


@_flash4_op.register_fake
def _(query: Tensor, key: Tensor, value: Tensor, softmax_scale: float) -> Tensor:
    # FA4 allocates its output contiguous, (B, S, H, D_v), whatever the inputs' strides.
    return query.new_empty((*query.shape[:-1], value.shape[-1]))


@torch.library.custom_op("gen3c::cudnn_sdpa_fp8", mutates_args=())
def _cudnn_fp8_op(
    q8: Tensor, k8: Tensor, v8: Tensor, descale_q: Tensor, descale_k: Tensor, descale_v: Tensor, attn_scale: float
) -> Tensor:
    graph = _cudnn_fp8_graph_if_supported(
        tuple(q8.shape), tuple(q8.stride()), tuple(k8.stride()), tuple(v8.stride()), attn_scale, q8.device
    )
    if graph is None:
        return _fp8_attention_by_sdpa(q8, k8, v8, descale_q, descale_k, descale_v, attn_scale)
    out = torch.empty(q8.shape, dtype=torch.float8_e4m3fn, device=q8.device)  # (B, S, H, D), contiguous
    amax_s = torch.empty(1, 1, 1, 1, dtype=torch.float32, device=q8.device)
    amax_o = torch.empty_like(amax_s)
    one = torch.ones(1, 1, 1, 1, dtype=torch.float32, device=q8.device)
    # P lies in [0, 1] (flash attention's unnormalised exp(s − rowmax)): scale it to e4m3's range.
    p_scale = torch.full((1, 1, 1, 1), FP8_MAX, dtype=torch.float32, device=q8.device)
    tensors = dict(q=q8, k=k8, v=v8, descale_q=descale_q, descale_k=descale_k, descale_v=descale_v,
                   descale_s=one / p_scale, scale_s=p_scale, scale_o=one / descale_v, o=out, amax_s=amax_s, amax_o=amax_o)  # fmt: skip
    with torch.cuda.device(q8.device):  # the graph's cuDNN handle belongs to that device
        graph.run(tensors)
    return out


@_cudnn_fp8_op.register_fake
def _(q8: Tensor, k8: Tensor, v8: Tensor, descale_q: Tensor, descale_k: Tensor, descale_v: Tensor, attn_scale: float) -> Tensor:
    return torch.empty(q8.shape, dtype=torch.float8_e4m3fn, device=q8.device)


#: Graph keys (shape, strides, scale, device) cuDNN built no fp8 graph for: SDPA computes those.
_cudnn_fp8_refused: set[tuple] = set()


def _cudnn_fp8_graph_if_supported(*key) -> _CudnnGraph | None:
    """:func:`_cudnn_fp8_graph` for ``key``, or None — with one note per key — when cuDNN has no
    fp8 plan for it here (its support check refuses some sequence lengths and GPUs)."""
    if key in _cudnn_fp8_refused:
        return None
    try:
        return _cudnn_fp8_graph(*key)
    except Exception as exc:  # cuDNN's "not supported" comes as several exception types
        _cudnn_fp8_refused.add(key)
        note(
            f"cudnn_fp8: cuDNN built no fp8 attention for (B, S, H, D) = {key[0]} ({first_line(exc, 120)}); "
            "these attentions run on PyTorch SDPA from the same fp8 inputs"
        )
        return None


def _fp8_attention_by_sdpa(
    q8: Tensor, k8: Tensor, v8: Tensor, descale_q: Tensor, descale_k: Tensor, descale_v: Tensor, attn_scale: float
) -> Tensor:
    """What the cuDNN graph computes — attention of the dequantised e4m3 inputs, (B, S, H, D) e4m3
    in v's scale — through PyTorch SDPA (bf16 on a GPU, float32 elsewhere)."""
    dtype = torch.bfloat16 if q8.is_cuda else torch.float32
    q, k, v = (x.to(dtype) * s.reshape(()).to(dtype) for x, s in ((q8, descale_q), (k8, descale_k), (v8, descale_v)))
    out = torch.nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale=attn_scale)
    return (out.transpose(1, 2).float() / descale_v.reshape(())).to(torch.float8_e4m3fn).contiguous()


class _CudnnGraph:
    """A built cuDNN graph and the handles of its named tensors."""

    def __init__(self, graph, handles: dict, handle) -> None:
        self.graph, self.handles, self.handle = graph, handles, handle
        self.workspace_size = graph.get_workspace_size()

    def run(self, tensors: dict[str, Tensor]) -> None:
        import cudnn

        device = tensors["q"].device
        cudnn.set_stream(handle=self.handle, stream=torch.cuda.current_stream(device).cuda_stream)
        workspace = torch.empty(max(self.workspace_size, 1), dtype=torch.uint8, device=device)
        self.graph.execute({self.handles[name]: t for name, t in tensors.items()}, workspace, handle=self.handle)


@functools.lru_cache(maxsize=16)
def _cudnn_fp8_graph(shape: tuple, q_stride: tuple, k_stride: tuple, v_stride: tuple, attn_scale: float, device: torch.device) -> _CudnnGraph:
    """The fp8 SDPA graph for (B, S, H, D) operands with these strides (described to cuDNN as BHSD)."""
    import cudnn

    B, S, H, D = shape
    bhsd = lambda st: [st[0], st[2], st[1], st[3]]  # noqa: E731 — the same memory seen as (B, H, S, D)
    with torch.cuda.device(device):
        handle = cudnn.create_handle()
    e4m3, fp32 = cudnn.data_type.FP8_E4M3, cudnn.data_type.FLOAT
    g = cudnn.pygraph(io_data_type=e4m3, intermediate_data_type=fp32, compute_data_type=fp32, handle=handle)
    dims = [B, H, S, D]
    handles = {
        "q": g.tensor(name="q", dim=dims, stride=bhsd(q_stride), data_type=e4m3),
        "k": g.tensor(name="k", dim=dims, stride=bhsd(k_stride), data_type=e4m3),
        "v": g.tensor(name="v", dim=dims, stride=bhsd(v_stride), data_type=e4m3),
    }
    for name in ("descale_q", "descale_k", "descale_v", "descale_s", "scale_s", "scale_o"):
        handles[name] = g.tensor(name=name, dim=[1, 1, 1, 1], stride=[1, 1, 1, 1], data_type=fp32)
    o, _, amax_s, amax_o = g.sdpa_fp8(
        q=handles["q"], k=handles["k"], v=handles["v"], descale_q=handles["descale_q"], descale_k=handles["descale_k"],
        descale_v=handles["descale_v"], descale_s=handles["descale_s"], scale_s=handles["scale_s"],
        scale_o=handles["scale_o"], attn_scale=attn_scale, use_causal_mask=False, generate_stats=False, name="gen3c_sdpa_fp8",
    )  # fmt: skip
    o.set_output(True).set_dim(dims).set_stride([S * H * D, D, H * D, 1]).set_data_type(e4m3)
    for amax in (amax_s, amax_o):
        amax.set_output(True).set_dim([1, 1, 1, 1]).set_stride([1, 1, 1, 1]).set_data_type(fp32)
    handles.update(o=o, amax_s=amax_s, amax_o=amax_o)
    g.validate()
    g.build_operation_graph()
    g.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
    g.check_support()
    g.build_plans()
    return _CudnnGraph(g, handles, handle)


# nanobind reports each cuDNN graph object still alive at interpreter teardown as a leak (a
# screenful after every fp8 run): free the built graphs before the teardown starts.
atexit.register(_cudnn_fp8_graph.cache_clear)


# -- choosing a kernel -------------------------------------------------------------------------


def kernel_unavailable_reason(
    kernel: str, device: torch.device | str, head_dim: int = 128, dtype: torch.dtype = torch.bfloat16
) -> str | None:
    """Why ``kernel`` cannot run on ``device`` for heads of ``head_dim`` computed in ``dtype`` here (None: it can)."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown attention kernel {kernel!r}")
    if kernel == "sdpa":
        return None
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return f"{kernel} needs a CUDA GPU"
    multiple = 8 if kernel == "flash4" else 16
    if head_dim % multiple or not 8 <= head_dim <= 256:
        return f"{kernel} takes heads of 8 to 256 channels in multiples of {multiple}, not {head_dim}"
    major, minor = torch.cuda.get_device_capability(device)
    if kernel == "flash4":
        if dtype not in (torch.bfloat16, torch.float16):
            return f"flash4 computes in bfloat16 or float16, not {str(dtype).removeprefix('torch.')}"
        if major not in (9, 10, 11):
            return f"flash4 runs on Hopper and Blackwell GPUs (compute capability 9.x, 10.x or 11.x), not {major}.{minor}"
        if importlib.util.find_spec("flash_attn") is None or importlib.util.find_spec("flash_attn.cute") is None:
            return "flash4 needs the flash-attn-4 package: pip install 'gen3c[fast]'"
        return None
    if major not in (9, 10):
        # cuDNN has fp8 attention kernels for Hopper and the data-centre Blackwells only; Ada
        # (8.9) and the other Blackwells have fp8 tensor cores but no such kernel, and the graph
        # would fail its support check at the first forward.
        return f"cudnn_fp8 runs on Hopper and Blackwell data-centre GPUs (compute capability 9.0/10.x), not {major}.{minor}"
    if importlib.util.find_spec("cudnn") is None:
        return "cudnn_fp8 needs the nvidia-cudnn-frontend package: pip install 'gen3c[fast]'"
    return None


def resolve_kernel(
    requested: str, device: torch.device | str, head_dim: int = 128, dtype: torch.dtype = torch.bfloat16
) -> tuple[str, str | None]:
    """The kernel to run for ``requested`` ("auto", "auto_fp8" or one of :data:`KERNELS`) on
    ``device`` for heads of ``head_dim`` channels (GEN3C: 128) computed in ``dtype``.

    Returns:
        ``(kernel, note)``: ``note`` is one line saying why a requested kernel was replaced by
        ``sdpa`` (None when the request is met, or when "auto…" took the best there is).
    """
    if requested in AUTO_ORDER:
        for kernel in AUTO_ORDER[requested]:
            if kernel_unavailable_reason(kernel, device, head_dim, dtype) is None:
                return kernel, None
    reason = kernel_unavailable_reason(requested, device, head_dim, dtype)
    if reason is None:
        return requested, None
    return "sdpa", f"attention kernel {requested!r} is not available ({reason}); using PyTorch SDPA"


def set_attention_kernel(transformer: nn.Module, requested: str = "auto", device: torch.device | str | None = None) -> str:
    """Route the self-attention of every transformer block through a kernel of :data:`KERNELS`.

    Args:
        requested: "auto", "auto_fp8" or a kernel name; a kernel that cannot run here falls
            back to ``sdpa`` with one warning line.
        device: where the transformer will compute (default: its parameters' device).
    Returns:
        The kernel installed.
    """
    if device is None:
        device = next(transformer.parameters()).device
    # The dtype it computes in (its weights may be stored in float8).
    dtype = getattr(transformer, "_gen3c_compute_dtype", None) or next(transformer.parameters()).dtype
    kernel, fallback = resolve_kernel(requested, device, transformer.config.attention_head_dim, dtype)
    if fallback is not None:
        note(fallback, stacklevel=2)
    function, function_e4m3 = _KERNEL_FUNCTIONS[kernel], _E4M3_KERNEL_FUNCTIONS.get(kernel)
    for block in transformer.transformer_blocks:
        for attn in (block.attn1, block.attn2):
            current = attn.processor
            own = attn is block.attn1
            processor = CosmosAttnProcessor(function if own else None, function_e4m3 if own else None)
            processor._attention_backend = getattr(current, "_attention_backend", None)
            processor._parallel_config = getattr(current, "_parallel_config", None)
            attn.set_processor(processor)
    transformer._gen3c_attention_kernel = kernel
    return kernel
