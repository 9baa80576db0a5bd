"""DiT forward speed: stock diffusers Cosmos transformer vs gen3c's speed settings, in one run.

Full size: the 7B GEN3C DiT (81 input channels), random bf16 weights, one 121-frame 704×1280
chunk (16 × 88 × 160 latents = 56,320 tokens), batch 1. Rows, each on the same inputs:

- ``stock`` — ``CosmosTransformer3DModel`` as diffusers ships it, eager (the baseline);
- ``stock_compiled`` — the whole model under ``torch.compile``;
- ``eager_KERNEL`` — eager, self-attention on a gen3c kernel (``sdpa``, ``flash4``, ``cudnn_fp8``);
- ``regional_KERNEL`` — gen3c's ``compile_blocks`` (regional compile) with that kernel
  (``regional_flash4`` is gen3c's exact path with ``--compile`` on Hopper);
- ``regional_fp8mm_KERNEL`` — plus fp8 matmuls (``use_fp8_matmuls``); ``regional_fp8mm_cudnn_fp8``
  is the whole fp8 path (GEMMs and attention).

Each row reports the median forward time, ratios against the stock rows, MFU against the bf16
peak, peak memory, and the PSNR of its output against the stock eager output (the quality cost
of fp8; against the first row's output when ``--rows`` has no ``stock``). Not a test.

    python benchmarks/bench_speed.py --device cuda
    python benchmarks/bench_speed.py --tiny          # CPU smoke test
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import check_writable, device_or_exit, run, write_json  # noqa: E402
from bench_dit import BF16_PEAK_TFLOPS, build_module, sync  # noqa: E402

from gen3c.models import configs  # noqa: E402
from gen3c.models.flops import dit_forward_flops  # noqa: E402
from gen3c.models.speed import compile_blocks, set_attention_backend, use_fp8_matmuls  # noqa: E402


def inputs(tcfg: dict, latent_shape, device, dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    T, h, w = latent_shape
    extra = tcfg["in_channels"] - 16
    make = lambda *s: torch.randn(*s, generator=g).to(device=device, dtype=dtype)  # noqa: E731
    return dict(
        hidden_states=make(1, 16, T, h, w),
        timestep=torch.tensor([0.5], device=device, dtype=dtype),
        encoder_hidden_states=make(1, configs.MAX_SEQUENCE_LENGTH, tcfg["text_embed_dim"]) * 0.1,
        fps=24,
        condition_mask=make(1, extra, T, h, w),
        padding_mask=torch.zeros(1, 1, h * 8, w * 8, device=device, dtype=dtype),
        return_dict=False,
    )


def time_model(model, kwargs, device, iters: int, warmup: int) -> tuple[float, torch.Tensor, float | None]:
    """Median seconds of ``iters`` forwards after ``warmup`` untimed ones, the last output, and
    the peak GPU memory (GB) over them all (None on the CPU)."""
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad():
        for i in range(warmup + iters):
            sync(device)
            start = time.perf_counter()
            out = model(**kwargs)[0]
            sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return statistics.median(times), out.float().cpu(), peak


KERNEL_KINDS = (
    ("attention", ("flash", "fmha", "sdpa", "attention", "fprop_fort")),
    ("gemm", ("gemm", "cutlass", "xmma", "nvjet", "cublas", "scaled_mm", "sm90_", "sm100_")),
    ("fused (triton)", ("triton",)),
)


def kernel_kind(name: str) -> str:
    low = name.lower()
    return next((kind for kind, marks in KERNEL_KINDS if any(m in low for m in marks)), "other")


def profile_forward(model, kwargs, top: int) -> dict:
    """One forward under torch.profiler: GPU time per kernel kind and the ``top`` kernels."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CUDA]) as prof:
        model(**kwargs)
        torch.cuda.synchronize()
    kernels = {}
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            ms, count = kernels.get(event.name, (0.0, 0))
            kernels[event.name] = (ms + event.time_range.elapsed_us() / 1e3, count + 1)
    kinds: dict[str, float] = {}
    for name, (ms, _) in kernels.items():
        kinds[kernel_kind(name)] = kinds.get(kernel_kind(name), 0.0) + ms
    ranked = sorted(kernels.items(), key=lambda kv: -kv[1][0])[:top]
    return {"by_kind_ms": kinds, "top": [{"kernel": n[:110], "ms": ms, "calls": c} for n, (ms, c) in ranked]}


def print_profile(row: str, prof: dict) -> None:
    total = sum(prof["by_kind_ms"].values())
    kinds = ", ".join(f"{k} {v:.0f} ms" for k, v in sorted(prof["by_kind_ms"].items(), key=lambda kv: -kv[1]))
    print(f"\n{row}: GPU kernels {total:.0f} ms — {kinds}")
    for k in prof["top"]:
        print(f"  {k['ms']:9.1f} ms {k['calls']:5d}×  {kernel_kind(k['kernel']):<15} {k['kernel']}")


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of ``a`` against reference ``b``, with the reference's dynamic range as peak."""
    mse = torch.mean((a - b) ** 2).item()
    peak = (b.max() - b.min()).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(peak**2 / mse)).item()


def row_list(text: str) -> list[str]:
    """``--rows``: comma-separated ``stock``, ``stock_compiled``, ``eager_KERNEL``, ``regional_KERNEL``,
    ``eager_fp8mm_KERNEL`` or ``regional_fp8mm_KERNEL`` (KERNEL: gen3c's or a diffusers backend)."""
    from diffusers.models.attention_dispatch import AttentionBackendName

    from gen3c.models.attention import KERNELS

    kernels = (*KERNELS, *(b.value for b in AttentionBackendName))
    rows = [r.strip() for r in text.split(",") if r.strip()]
    for row in rows:
        mode, _, kernel = row.partition("_")
        kernel = kernel.removeprefix("fp8mm_")
        if row not in ("stock", "stock_compiled") and not (mode in ("eager", "regional") and kernel in kernels):
            raise argparse.ArgumentTypeError(
                f"unknown row {row!r}: stock, stock_compiled, or eager_/regional_[fp8mm_]KERNEL with KERNEL one of {', '.join(KERNELS)} "
                "or a diffusers attention backend"
            )
    if not rows:
        raise argparse.ArgumentTypeError("no rows")
    twice = next((row for row in rows if rows.count(row) > 1), None)
    if twice is not None:  # outputs are kept by row name: the second would replace the first
        raise argparse.ArgumentTypeError(f"row {twice!r} is given twice: list each row once")
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="the tiny configuration (CPU smoke test)")
    parser.add_argument("--iters", type=int, default=3, help="timed forwards per row, after the warm-up; the median is reported")
    parser.add_argument(
        "--rows",
        type=row_list,
        default="stock,stock_compiled,regional_sdpa,regional_flash4,regional_fp8mm_flash4,regional_fp8mm_cudnn_fp8",
        help="comma-separated rows (see above); the PSNR column is against the stock row's output (the first row's without one)",
    )
    parser.add_argument("--compile_mode", default=None, help="torch.compile mode for the compiled rows")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile one more forward per row (CUDA): GPU time per kernel kind and the N costliest kernels")
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error("--iters must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = device_or_exit(args.device, full_size=not args.tiny)
    if args.profile and device.type != "cuda":
        raise SystemExit("--profile times GPU kernels: it needs --device cuda")
    check_writable(args.json)
    dtype = torch.float32 if args.tiny else torch.bfloat16
    tcfg = configs.TRANSFORMER_TINY if args.tiny else configs.TRANSFORMER_7B
    latent = (3, 4, 6) if args.tiny else (16, 88, 160)
    from diffusers import CosmosTransformer3DModel
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    kwargs = inputs(tcfg, latent, device, dtype)
    flops = dit_forward_flops(tcfg, latent)["total"]
    peak_flops = None
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak_flops = next((t * 1e12 for frag, t in BF16_PEAK_TFLOPS if frag in name), None)
    # Every row's output is kept (on the CPU) until all have run: the PSNR column compares each
    # with the stock row's, wherever that row comes in --rows.
    rows, outputs, results = args.rows, {}, []
    for row in rows:
        torch.manual_seed(0)
        model = build_module(CosmosTransformer3DModel, tcfg, device if device.type == "cuda" else torch.device("cpu"), dtype)
        model = model.to(device)
        warmup = 1
        if row == "stock_compiled":
            model = torch.compile(model, mode=args.compile_mode, dynamic=False)
            warmup = 2
        elif row.startswith(("regional_", "eager_")):
            mode, _, rest = row.partition("_")
            fp8mm = rest.startswith("fp8mm_")
            kernel = rest.removeprefix("fp8mm_")
            if set_attention_backend(model, kernel, device) != kernel:
                print(json.dumps({"row": row, "skipped": f"attention kernel {kernel} cannot run here"}), flush=True)
                continue
            if fp8mm:
                use_fp8_matmuls(model)
            if mode == "regional":
                compile_blocks(model, mode=args.compile_mode)
                warmup = 2
        compile_start = time.perf_counter()
        seconds, out, peak = time_model(model, kwargs, device, args.iters, warmup)
        total = time.perf_counter() - compile_start
        outputs[row] = out
        result = {
            "row": row,
            "forward_s": seconds,
            "warmup_and_timing_s": total,
            "mfu": flops / seconds / peak_flops if peak_flops else None,
            "peak_gb": peak,
        }
        if args.profile and device.type == "cuda":
            result["profile"] = profile_forward(model, kwargs, args.profile)
            print_profile(row, result["profile"])
        results.append(result)
        print(json.dumps({k: v for k, v in result.items() if k != "profile"}), flush=True)
        del model, out
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        torch._dynamo.reset()
    reference_row = "stock" if "stock" in outputs else next(iter(outputs), None)
    for r in results:
        r["psnr_db"] = psnr(outputs[r["row"]], outputs[reference_row])
        r["psnr_reference"] = reference_row
    base = {r["row"]: r["forward_s"] for r in results}
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"\nDiT forward, {'tiny' if args.tiny else '7B'} config, latents {latent}, {flops / 1e12:.0f} TFLOP — {dev}, torch {torch.__version__}")
    print(f"PSNR of each row's output against the {reference_row} row's")
    print(f"{'row':<24}{'s/forward':>10}{'× stock':>9}{'× stock compiled':>18}{'MFU':>7}{'peak GB':>9}{'PSNR dB':>9}")
    for r in results:
        vs = base.get("stock", float("nan")) / r["forward_s"]
        vsc = base.get("stock_compiled", float("nan")) / r["forward_s"]
        mfu = f"{100 * r['mfu']:.0f}%" if r["mfu"] else "—"
        peak = "—" if r["peak_gb"] is None else f"{r['peak_gb']:.1f}"
        print(f"{r['row']:<24}{r['forward_s']:>10.3f}{vs:>9.2f}{vsc:>18.2f}{mfu:>7}{peak:>9}{r['psnr_db']:>9.1f}")
    if args.json:
        write_json(args.json, {"device": dev, "torch": torch.__version__, "psnr_reference": reference_row, "rows": results})


if __name__ == "__main__":
    run(main)
