"""Making the DiT fast: attention backend, regional compilation, fp8 matmuls.

Each function changes a loaded :class:`diffusers.CosmosTransformer3DModel` in place and is an
opt-in speed setting of :func:`gen3c.pipelines.loading.load_generator`:

- :func:`set_attention_backend` — the self-attention kernel (:mod:`gen3c.models.attention`:
  ``auto``, ``flash4``, ``cudnn_fp8``, ``sdpa``) or one of diffusers' dispatcher backends
  ("native", "_native_cudnn", "flash", …); two thirds of a GEN3C DiT forward is attention.
- :func:`compile_blocks` — ``torch.compile`` of the 28 identical transformer blocks (regional
  compilation: one compile reused by every block), which fuses the norms, AdaLN modulation, RoPE
  and gating between the matmuls.
- :func:`use_fp8_matmuls` — every block linear runs as a float8 (e4m3) matmul with row-wise
  scales (``torch._scaled_mm``) on GPUs that have fp8 tensor cores (Hopper and newer), the MLP's
  GELU and the quantisation of its output fused into one Triton kernel. Unlike
  ``fp8`` weight *storage* (layerwise casting, a memory mode), this changes the arithmetic; its
  quality cost is measured in ``benchmarks/bench_speed.py`` as the PSNR of the DiT output
  against bf16 on the same inputs.

CUDA graphs are not used: at GEN3C's size one forward takes seconds and launches ~1,500
kernels, so launch overhead is well under 1 % (see docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import Tensor, nn

from gen3c.errors import Gen3cInputError, caught_warnings, first_line
from gen3c.models.choices import FP8_MATMULS_WITH_LORA, check_attention_backend

FP8_MAX = 448.0  # largest finite float8_e4m3fn
#: Why fp8 matmuls cannot run where :func:`fp8_supported` says no.
FP8_MATMULS_NEED = "fp8 matmuls need a CUDA GPU with fp8 tensor cores (compute capability 8.9+, e.g. H100)"


def set_attention_backend(transformer: nn.Module, backend: str | None = "auto", device: torch.device | str | None = None) -> str:
    """Choose how the transformer computes attention.

    Args:
        backend: "auto" (the fastest exact kernel here), "auto_fp8" (fp8 attention where it
            runs, else as auto), a gen3c kernel ("flash4", "cudnn_fp8",
            "sdpa"; one that cannot run here falls back to "sdpa" with a warning line), a
            diffusers attention backend name ("native", "_native_cudnn", "flash", …), or None
            (all attention through diffusers' dispatcher, as diffusers' own processor computes
            it; a gen3c kernel set earlier is dropped).
        device: where the transformer will compute (default: its parameters' device).
    Returns:
        What now computes self-attention ("diffusers" when left to diffusers' processor).
    """
    from diffusers.models.attention_dispatch import AttentionBackendName, _AttentionBackendRegistry
    from diffusers.utils.constants import DIFFUSERS_ATTN_BACKEND

    from gen3c.models.attention import CosmosAttnProcessor, set_attention_kernel
    from gen3c.models.choices import AUTO_ORDER, KERNELS

    if backend is not None:
        check_attention_backend(backend)
    if backend is None or backend in AUTO_ORDER or backend in KERNELS:
        # diffusers' dispatcher (cross-attention; all of it under None) computes with the process's
        # active backend, which a diffusers backend chosen earlier, for any model, left set: its default again.
        _AttentionBackendRegistry.set_active_backend(AttentionBackendName(DIFFUSERS_ATTN_BACKEND))
        if backend is not None:
            return set_attention_kernel(transformer, backend, device)
        for block in transformer.transformer_blocks:
            for attn in (block.attn1, block.attn2):
                if isinstance(attn.processor, CosmosAttnProcessor):  # (it keeps the parallel config)
                    attn.processor.self_attention = attn.processor.self_attention_e4m3 = None
        transformer._gen3c_attention_kernel = "diffusers"
        return "diffusers"

    from gen3c.library_output import libraries_quiet

    # diffusers also makes the backend the process's active one (Cosmos' processor dispatches to that)
    active = _AttentionBackendRegistry.get_active_backend()[0]
    try:
        with libraries_quiet():  # not diffusers' "experimental feature" line at every run
            transformer.set_attention_backend(backend)
    except (ValueError, ImportError, RuntimeError) as exc:
        raise Gen3cInputError(
            f"attention backend {backend!r} is not available here ({first_line(exc)}): use 'auto', one of "
            f"{', '.join(KERNELS)}, or leave it unset"
        ) from None
    try:
        _probe_attention_backend(transformer, backend, device)
    except (RuntimeError, ValueError) as exc:
        with libraries_quiet():  # back to the backend before: the transformer still computes
            transformer.reset_attention_backend()
        _AttentionBackendRegistry.set_active_backend(active)
        raise Gen3cInputError(
            f"attention backend {backend!r} cannot run here ({first_line(exc)}): use 'auto', one of {', '.join(KERNELS)}, "
            "or leave it unset"
        ) from None
    transformer._gen3c_attention_kernel = backend  # what computes attention now (diffusers' dispatcher)
    return backend


def _probe_attention_backend(transformer: nn.Module, backend: str, device: torch.device | str | None) -> None:
    """One tiny attention through diffusers' ``backend`` on the transformer's device, head size
    and compute dtype: diffusers checks only that a backend's package is installed, so one that
    cannot run on this device or dtype (``_native_cudnn`` on a CPU) would otherwise fail at the
    first forward, after the inputs were prepared."""
    from diffusers.models.attention_dispatch import dispatch_attention_fn

    weight = next(transformer.parameters())
    config = transformer.config
    dtype = getattr(transformer, "_gen3c_compute_dtype", None) or weight.dtype  # float8-stored weights compute in bf16
    shape = (1, 8, config.num_attention_heads, config.attention_head_dim)  # (batch, tokens, heads, head size)
    q = torch.zeros(shape, dtype=dtype, device=weight.device if device is None else device)
    # PyTorch warns once per kernel it rules out ("cuDNN attention kernel not used because: …",
    # six lines on a GPU) before it raises: the refusal is said in one line instead
    # (this thread's warnings only: another thread's, a GUI reading an image, go on as they came)
    with torch.no_grad(), caught_warnings():
        dispatch_attention_fn(q, q, q, backend=backend)


def compile_blocks(transformer: nn.Module, mode: str | None = None, fullgraph: bool = True) -> None:
    """Regional ``torch.compile``: each transformer block is compiled (one graph, reused by all
    28 blocks) while the small embedding and output layers stay eager. ``fullgraph``: a graph
    break is an error (hooks that decide in Python, as the step caches' do, need False)."""
    if not getattr(transformer, "_repeated_blocks", None):
        transformer._repeated_blocks = [type(transformer.transformer_blocks[0]).__name__]
    transformer.compile_repeated_blocks(fullgraph=fullgraph, dynamic=False, mode=mode)
    transformer._gen3c_compile = {"mode": mode, "fullgraph": fullgraph}


def allow_graph_breaks(transformer: nn.Module) -> None:
    """Recompile blocks that :func:`compile_blocks` compiled as one graph each so that hooks may
    break their graphs (a step cache's), in place: no reload, the same weights (the blocks are traced again on their next call)."""
    compiled = getattr(transformer, "_gen3c_compile", None)
    if compiled is not None and compiled["fullgraph"]:
        compile_blocks(transformer, mode=compiled["mode"], fullgraph=False)


def fp8_supported(device: torch.device | str | None = None) -> bool:
    """Whether ``torch._scaled_mm`` with row-wise scales runs on ``device`` (default: the current
    CUDA device): a CUDA GPU of compute capability ≥ 8.9."""
    if not torch.cuda.is_available() or (device is not None and torch.device(device).type != "cuda"):
        return False  # (torch.cuda.get_device_capability raises for a CPU device)
    return torch.cuda.get_device_capability(device) >= (8, 9)


def check_kernels_device(device: torch.device | str | None = None, *, fp8_matmul: bool = False, compile: bool = False) -> None:
    """Refuse, before any weight is fetched or loaded, DiT kernels that cannot run where the DiT
    will compute, when that is not a CUDA GPU (``device`` of another type, or None, CUDA when
    available, on a machine without CUDA): fp8 matmuls (:data:`FP8_MATMULS_NEED`), and a compile
    without the C++ compiler that inductor builds CPU kernels with (else a traceback at the first
    step). Whether a GPU has fp8 tensor cores is asked by :func:`use_fp8_matmuls` once the DiT is
    placed: asking now would start CUDA (each torchrun rank on cuda:0). A device that is no device
    name is left to the loading's own message (:func:`gen3c.pipelines.gen3c.compute_device`).

    Raises:
        Gen3cInputError: the first of them, in one line.
    """
    try:
        on_cuda = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
    except (RuntimeError, TypeError):
        return
    if on_cuda:
        return
    if fp8_matmul:
        raise Gen3cInputError(FP8_MATMULS_NEED)
    if compile:
        from torch._inductor import cpp_builder

        try:
            cpp_builder.get_cpp_compiler()
        except RuntimeError as exc:  # inductor's InvalidCxxCompiler
            raise Gen3cInputError(
                f"--compile on a CPU needs a C++ compiler, which inductor builds the DiT's kernels with ({first_line(exc, 120)}): "
                "install g++ (or set CXX), or drop --compile"
            ) from None


def quantize_rows_fp8(x: Tensor) -> tuple[Tensor, Tensor]:
    """Row-wise e4m3 quantisation, x (M, N) → (x / s as e4m3 (M, N), s (M, 1) float32) with
    ``s = max|x_row| / 448``: what ``torch._scaled_mm`` takes as row-scaled activations."""
    scale = x.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12) / FP8_MAX
    return (x.float() / scale).to(torch.float8_e4m3fn), scale


class Fp8Linear(nn.Module):
    """A linear layer computing in float8: weights quantised once per output row, activations
    per token on the fly, products summed in the tensor cores' own precision and returned in the
    input's dtype.

    Args:
        linear: the bf16/fp32 layer to replace (its weight is quantised, then dropped).
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight_fp8, scale = quantize_rows_fp8(linear.weight.detach())  # one scale per output row, (N, 1)
        self.register_buffer("weight_fp8", weight_fp8)
        self.register_buffer("weight_scale", scale.t().contiguous())  # (1, N) for _scaled_mm
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        a, a_scale = quantize_rows_fp8(x.reshape(-1, shape[-1]))
        return self.matmul_quantized(a, a_scale, x.dtype).reshape(*shape[:-1], self.out_features)

    def matmul_quantized(self, a: Tensor, a_scale: Tensor, out_dtype: torch.dtype) -> Tensor:
        """The layer on activations already quantised per row: a (M, in) e4m3, a_scale (M, 1) float32 → (M, out)."""
        return torch._scaled_mm(
            a, self.weight_fp8.t(), scale_a=a_scale, scale_b=self.weight_scale, bias=self.bias, out_dtype=out_dtype,
            # Summing in the tensor cores' own precision (no promotion to fp32 along K): 11 % faster
            # at K = 4,096 on an H200 and the same error against fp32 (the e4m3 inputs dominate it);
            # the DiT forward's PSNR against bf16 is unchanged (docs/benchmarks.md).
            use_fast_accum=True,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8 e4m3 row-wise"


class Fp8FeedForward(nn.Module):
    """GEN3C's MLP (linear → exact GELU → linear) with both GEMMs as in :class:`Fp8Linear`, and
    the GELU and the row-wise quantisation of its output done in one pass over the
    (tokens, 4 × hidden) activations (``gen3c::gelu_fp8_rowwise``) — the largest activation of a
    block, which a GELU, a row maximum and a scaled cast would otherwise each read again.

    Args:
        up, down: the MLP's two linear layers (quantised as :class:`Fp8Linear` quantises them).
    """

    def __init__(self, up: nn.Linear, down: nn.Linear) -> None:
        super().__init__()
        self.up, self.down = Fp8Linear(up), Fp8Linear(down)

    def forward(self, x: Tensor) -> Tensor:
        """x (..., hidden) → (..., hidden)."""
        hidden = self.up(x).reshape(-1, self.up.out_features)
        a, a_scale = torch.ops.gen3c.gelu_fp8_rowwise(hidden)
        return self.down.matmul_quantized(a, a_scale, x.dtype).reshape(*x.shape[:-1], self.down.out_features)


def gelu_fp8_rowwise_reference(x: Tensor) -> tuple[Tensor, Tensor]:
    """What ``gen3c::gelu_fp8_rowwise`` computes: ``y = gelu(x)`` (exact, in float32) quantised per
    row to e4m3, x (M, N) → (y / s as e4m3 (M, N), s (M, 1) float32) with ``s = max|y_row| / 448``.
    (The kernel's erf is within 1.5 × 10⁻⁷ of the exact one: an e4m3 value can differ where y
    lies on a rounding boundary, 4 in 10⁵ elements at GEN3C's size.)"""
    return quantize_rows_fp8(torch.nn.functional.gelu(x.float()))


@functools.cache
def _gelu_fp8_rowwise_kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def gelu_fp8_rowwise(x_ptr, out_ptr, scale_ptr, n_cols, BLOCK: tl.constexpr):
        # One program per row: the whole row is read once, kept in registers, written once.
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        inside = cols < n_cols
        x = tl.load(x_ptr + row * n_cols + cols, mask=inside, other=0.0).to(tl.float32)
        # gelu(x) = x·Φ(x) with Φ(x) = erfc(|x|/√2)/2 for x < 0 and 1 − erfc(|x|/√2)/2 otherwise
        # (no cancellation on the negative side). erfc(a), a ≥ 0, by Abramowitz & Stegun 7.1.26:
        # absolute error ≤ 1.5e-7, far below e4m3's resolution, in a quarter of the instructions
        # of libdevice's erf, which made this kernel compute-bound (1.40 → 1.13 ms on an H200).
        a = tl.abs(x) * 0.7071067811865476
        t = 1.0 / (1.0 + 0.3275911 * a)
        poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
        half_erfc = 0.5 * poly * tl.exp(-a * a)
        y = x * tl.where(x < 0, half_erfc, 1.0 - half_erfc)
        scale = tl.maximum(tl.max(tl.abs(y), axis=0), 1e-12) / 448.0
        tl.store(out_ptr + row * n_cols + cols, (y / scale).to(tl.float8e4nv), mask=inside)
        tl.store(scale_ptr + row, scale)

    return gelu_fp8_rowwise


def gelu_fp8_rowwise_triton(x: Tensor) -> tuple[Tensor, Tensor]:
    """The Triton kernel of ``gen3c::gelu_fp8_rowwise`` (CUDA; any device under ``TRITON_INTERPRET=1``)."""
    import triton

    x = x.contiguous()
    rows, cols = x.shape
    out = torch.empty(rows, cols, dtype=torch.float8_e4m3fn, device=x.device)
    scale = torch.empty(rows, 1, dtype=torch.float32, device=x.device)
    block = triton.next_power_of_2(cols)
    # Triton launches on the current CUDA device, which need not be x's (a DiT on cuda:1).
    with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():
        # 8 warps: at GEN3C's rows of 16,384 the kernel ran 1.71 ms with 16 warps, 1.13 ms with 8
        # (H200; docs/benchmarks.md).
        _gelu_fp8_rowwise_kernel()[(rows,)](x, out, scale, cols, BLOCK=block, num_warps=max(4, min(8, block // 1024)))
    return out, scale


@torch.library.custom_op("gen3c::gelu_fp8_rowwise", mutates_args=())
def _gelu_fp8_rowwise_op(x: Tensor) -> tuple[Tensor, Tensor]:
    if x.is_cuda:
        return gelu_fp8_rowwise_triton(x)
    return gelu_fp8_rowwise_reference(x.contiguous())  # laid out as the kernel writes it


@_gelu_fp8_rowwise_op.register_fake
def _(x: Tensor) -> tuple[Tensor, Tensor]:
    # Both outputs contiguous, as the Triton kernel writes them, whatever x's strides.
    return x.new_empty(x.shape, dtype=torch.float8_e4m3fn), x.new_empty((x.shape[0], 1), dtype=torch.float32)


def _plain_gelu_mlp(ff: nn.Module) -> tuple[nn.Linear, nn.Linear] | None:
    """The (up, down) linears of a diffusers ``FeedForward`` that is linear → exact GELU → linear (else None)."""
    from diffusers.models.activations import GELU

    net = getattr(ff, "net", None)
    if net is None or len(net) != 3:
        return None
    act, drop, down = net
    plain = isinstance(act, GELU) and act.approximate == "none" and isinstance(drop, nn.Dropout) and drop.p == 0
    if plain and isinstance(act.proj, nn.Linear) and isinstance(down, nn.Linear):
        return act.proj, down
    return None


def use_fp8_matmuls(transformer: nn.Module) -> int:
    """Replace every ``nn.Linear`` inside the transformer blocks by :class:`Fp8Linear`, and each
    block's MLP by :class:`Fp8FeedForward`.

    The patch embedding, time embedding and final projection stay in bf16 (small, and the
    most sensitive). Returns the number of linear layers replaced.
    """
    weight = next(transformer.parameters())
    if not fp8_supported(weight.device):
        raise Gen3cInputError(FP8_MATMULS_NEED)
    if weight.dtype not in (torch.bfloat16, torch.float16):
        # torch._scaled_mm writes bf16/fp16 (float32 on Hopper only): one rule for every GPU.
        raise Gen3cInputError(
            f"--fp8_matmul needs the DiT in bfloat16 or float16, not {str(weight.dtype).removeprefix('torch.')}: pass --dtype bfloat16"
        )
    if any(hasattr(module, "base_layer") for module in transformer.transformer_blocks.modules()):  # peft's LoRA layers
        # (they read their base layer's weight, which an Fp8Linear no longer has: an AttributeError at the first forward)
        raise Gen3cInputError(FP8_MATMULS_WITH_LORA)
    fits = lambda layer: layer.in_features % 16 == 0 and layer.out_features % 16 == 0  # noqa: E731 — _scaled_mm's rule
    count = 0
    for block in transformer.transformer_blocks:
        mlp = _plain_gelu_mlp(getattr(block, "ff", None))
        if mlp is not None and all(fits(layer) for layer in mlp):
            block.ff = Fp8FeedForward(*mlp)
            count += 2
        for _, module in list(block.named_modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, nn.Linear) and fits(child):
                    setattr(module, child_name, Fp8Linear(child))
                    count += 1
    return count
