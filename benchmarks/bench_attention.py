"""Attention and GEMM throughput at the 7B DiT's shapes, per backend and memory layout.

    python benchmarks/bench_attention.py [--tokens 56320] [--iters 5]

Two thirds of a GEN3C DiT forward is self-attention over 56,320 tokens (121 frames at
704×1280: 16 latent frames × 44 × 80 patches), 32 heads of 128; the rest is mostly GEMMs of
56,320 × 4,096 by 4,096 (× 4 for the MLP). This measures, in the same run, TFLOP/s of
``F.scaled_dot_product_attention`` on each SDPA backend with q/k/v given as (B, H, S, D)
contiguous tensors or as transposed views of (B, S, H, D) (the layout diffusers' processors
hand over), of gen3c's own kernels (``flash4``: FlashAttention-4; ``cudnn_fp8``: cuDNN fp8
attention with on-the-fly per-tensor scales, :mod:`gen3c.models.attention`) with their error
against an fp32 reference on the same inputs, and of the GEMMs in bf16 and in fp8 (row-wise
scaled ``torch._scaled_mm``), so the ceiling each DiT setting can reach is known. CUDA only;
not a test.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gen3c.models import attention  # noqa: E402


def _time(fn, iters: int) -> float:
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=56_320, help="sequence length (GEN3C-7B's 121 frames at 704×1280: 56,320)")
    parser.add_argument("--heads", type=int, default=32)
    parser.add_argument("--head_dim", type=int, default=128)
    parser.add_argument("--iters", type=int, default=5, help="timed runs per row after a warm-up; the median is reported")
    args = parser.parse_args(argv)
    if min(args.tokens, args.heads, args.head_dim, args.iters) < 1:
        parser.error("--tokens, --heads, --head_dim and --iters must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("CUDA is not available: this benchmark measures GPU kernels")
    dev, dt = torch.device("cuda"), torch.bfloat16
    S, H, D = args.tokens, args.heads, args.head_dim
    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | cuDNN {torch.backends.cudnn.version()}")
    attn_flop = 4 * S * S * H * D  # QKᵀ and PV, 2 FLOP per multiply-add
    rows = []
    bshd = [torch.randn(1, S, H, D, device=dev, dtype=dt) for _ in range(3)]
    bhsd = [t.transpose(1, 2).contiguous() for t in bshd]
    views = [t.transpose(1, 2) for t in bshd]
    for name, backend in (("cuDNN", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
        for layout, qkv in (("(B,H,S,D) contiguous", bhsd), ("(B,S,H,D) viewed", views)):
            try:
                with sdpa_kernel(backend):
                    s = _time(lambda: F.scaled_dot_product_attention(*qkv), args.iters)  # noqa: B023
                rows.append((f"SDPA {name}, {layout}", s, attn_flop / s / 1e12))
            except RuntimeError as exc:
                rows.append((f"SDPA {name}, {layout}: {str(exc).splitlines()[0][:60]}", float("nan"), float("nan")))
    # gen3c's kernels on (B, S, H, D), with keys that share an offset (as real keys do after
    # RoPE), each against an fp32 reference on the same inputs.
    q, k, v = bshd[0], bshd[1] + 1.0, bshd[2]
    with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
        reference = attention.sdpa_attention(q.float(), k.float(), v.float())
    for kernel in ("sdpa", "flash4", "cudnn_fp8"):
        reason = attention.kernel_unavailable_reason(kernel, dev)
        if reason:
            rows.append((f"gen3c {kernel}: {reason[:50]}", float("nan"), float("nan")))
            continue
        fn = attention._KERNEL_FUNCTIONS[kernel]
        out = fn(q, k, v).float()
        err = ((out - reference).norm() / reference.norm()).item()
        s = _time(lambda fn=fn, qkv=(q, k, v): fn(*qkv), args.iters)
        rows.append((f"gen3c {kernel} (B,S,H,D), rel. L2 error {err:.2e}", s, attn_flop / s / 1e12))
        del out
    if attention.kernel_unavailable_reason("flash4", dev) is None and torch.cuda.get_device_capability(dev)[0] == 9:
        # What gen3c's Hopper tile (attention.HOPPER_TILE_HEAD_DIM_128) buys over FA4's own choice.
        from flash_attn.cute import flash_attn_func

        s = _time(lambda qkv=(q, k, v): flash_attn_func(*qkv, softmax_scale=D**-0.5, causal=False), args.iters)
        rows.append(("FlashAttention-4 with its own tile choice (128×128)", s, attn_flop / s / 1e12))
    if attention.kernel_unavailable_reason("cudnn_fp8", dev) is None:
        # The same fp8 kernel without centring the keys: what the smoothing buys.
        def fp8_unsmoothed(q, k, v):
            (q8, sq), (k8, sk), (v8, sv) = (attention.quantize_fp8(t) for t in (q, k, v))
            out = torch.ops.gen3c.cudnn_sdpa_fp8(q8, k8, v8, sq, sk, sv, q.shape[-1] ** -0.5)
            return out.float() * sv.reshape(())

        err = ((fp8_unsmoothed(q, k, v) - reference).norm() / reference.norm()).item()
        rows.append((f"gen3c cudnn_fp8 without key centring, rel. L2 error {err:.2e}", float("nan"), float("nan")))
    del bshd, bhsd, views, reference, q, k, v
    x = torch.randn(S, 4096, device=dev, dtype=dt)
    for n_out in (4096, 16384):
        w = torch.randn(n_out, 4096, device=dev, dtype=dt)
        flop = 2 * S * 4096 * n_out
        s = _time(lambda: x @ w.T, args.iters)  # noqa: B023
        rows.append((f"GEMM bf16 {S}×4096 · 4096×{n_out}", s, flop / s / 1e12))
        xq, wq = x.to(torch.float8_e4m3fn), w.to(torch.float8_e4m3fn)
        sx = torch.ones(S, 1, device=dev, dtype=torch.float32)
        sw = torch.ones(1, n_out, device=dev, dtype=torch.float32)
        try:
            for fast in (False, True):  # gen3c's Fp8Linear sums in the tensor cores' precision (fast)
                operands = dict(scale_a=sx, scale_b=sw, out_dtype=dt, use_fast_accum=fast)
                s = _time(lambda a=xq, b=wq.T, kw=operands: torch._scaled_mm(a, b, **kw), args.iters)
                label = ", fast accumulation" if fast else ""
                rows.append((f"GEMM fp8 row-wise {S}×4096 · 4096×{n_out}{label}", s, flop / s / 1e12))
        except RuntimeError as exc:
            rows.append((f"GEMM fp8: {str(exc).splitlines()[0][:60]}", float("nan"), float("nan")))
    print(format_table(rows))


def format_table(rows: list[tuple[str, float, float]]) -> str:
    """A Markdown table of (label, seconds, TFLOP/s) rows; a row that was not timed (NaN: a
    kernel missing, or an error-only row) leaves its numbers blank."""
    width = max(len("kernel"), *(len(name) for name, _, _ in rows))
    lines = [f"\n| {'kernel':<{width}} | {'ms':>8} | {'TFLOP/s':>8} |", f"|{'-' * (width + 2)}|{'-' * 10}|{'-' * 10}|"]
    for name, s, tflops in rows:
        ms, rate = ("", "") if math.isnan(s) else (f"{s * 1e3:.2f}", f"{tflops:.0f}")
        lines.append(f"| {name:<{width}} | {ms:>8} | {rate:>8} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
