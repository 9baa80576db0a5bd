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
  scales (``torch._scaled_mm``) on GPUs that have fp8 tensor cores (Hopper and newer). Unlike
  ``fp8`` weight *storage* (layerwise casting, a memory mode), this changes the arithmetic; its
  quality cost is measured in ``benchmarks/bench_speed.py`` as the PSNR of the DiT output
  against bf16 on the same inputs.

CUDA graphs are not used: at GEN3C's size one forward takes seconds and launches ~1,500
kernels, so launch overhead is well under 1 % (see docs/benchmarks.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gen3c.errors import Gen3cInputError, first_line

FP8_MAX = 448.0  # largest finite float8_e4m3fn


def set_attention_backend(transformer: nn.Module, backend: str | None = "auto", device: torch.device | str | None = None) -> str:
    """Choose how the transformer computes attention.

    Args:
        backend: "auto" (the fastest exact kernel here), "auto_fp8" (fp8 attention where it
            runs, else as auto), a gen3c kernel ("flash4", "cudnn_fp8",
            "sdpa"; one that cannot run here falls back to "sdpa" with a warning line), a
            diffusers attention backend name ("native", "_native_cudnn", "flash", …), or None
            (leave diffusers' default processor).
        device: where the transformer will compute (default: its parameters' device).
    Returns:
        What now computes self-attention ("diffusers" when left to diffusers' processor).
    """
    from gen3c.models.attention import AUTO_ORDER, KERNELS, set_attention_kernel

    if backend is None:
        return "diffusers"
    if backend in AUTO_ORDER or backend in KERNELS:
        return set_attention_kernel(transformer, backend, device)
    try:
        transformer.set_attention_backend(backend)
    except (ValueError, ImportError, RuntimeError) as exc:
        raise Gen3cInputError(
            f"attention backend {backend!r} is not available here ({first_line(exc)}): use 'auto', one of "
            f"{', '.join(KERNELS)}, or leave it unset"
        ) from None
    return backend


def compile_blocks(transformer: nn.Module, mode: str | None = None, fullgraph: bool = True) -> None:
    """Regional ``torch.compile``: each transformer block is compiled (one graph, reused by all
    28 blocks) while the small embedding and output layers stay eager."""
    if not getattr(transformer, "_repeated_blocks", None):
        transformer._repeated_blocks = [type(transformer.transformer_blocks[0]).__name__]
    transformer.compile_repeated_blocks(fullgraph=fullgraph, dynamic=False, mode=mode)


def fp8_supported(device: torch.device | str | None = None) -> bool:
    """Whether ``torch._scaled_mm`` with row-wise scales runs here (CUDA compute capability ≥ 8.9)."""
    if not torch.cuda.is_available():
        return False
    return torch.cuda.get_device_capability(device) >= (8, 9)


class Fp8Linear(nn.Module):
    """A linear layer computing in float8: weights quantised once per output row, activations
    per token on the fly, products accumulated in fp32 and returned in the input's dtype.

    Args:
        linear: the bf16/fp32 layer to replace (its weight is quantised, then dropped).
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach()
        scale = w.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12) / FP8_MAX  # (N, 1)
        self.register_buffer("weight_fp8", (w.float() / scale).to(torch.float8_e4m3fn))
        self.register_buffer("weight_scale", scale.t().contiguous())  # (1, N) for _scaled_mm
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        a_scale = x2.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12) / FP8_MAX  # (M, 1)
        a = (x2.float() / a_scale).to(torch.float8_e4m3fn)
        out = torch._scaled_mm(
            a, self.weight_fp8.t(), scale_a=a_scale, scale_b=self.weight_scale, bias=self.bias, out_dtype=x.dtype
        )
        return out.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8 e4m3 row-wise"


def use_fp8_matmuls(transformer: nn.Module) -> int:
    """Replace every ``nn.Linear`` inside the transformer blocks by :class:`Fp8Linear`.

    The patch embedding, time embedding and final projection stay in bf16 (small, and the
    most sensitive). Returns the number of layers replaced.
    """
    if not fp8_supported(next(transformer.parameters()).device):
        raise Gen3cInputError("fp8 matmuls need a CUDA GPU with fp8 tensor cores (compute capability 8.9+, e.g. H100)")
    count = 0
    for block in transformer.transformer_blocks:
        for _, module in list(block.named_modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, nn.Linear) and child.in_features % 16 == 0 and child.out_features % 16 == 0:
                    setattr(module, child_name, Fp8Linear(child))
                    count += 1
    return count
