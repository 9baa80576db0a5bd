"""Context-parallel scaling of the GEN3C DiT: seconds per sampler step on 1, 2, 4, 8 GPUs.

Full size: the 7B GEN3C DiT (81 input channels), random bf16 weights, one 121-frame 704×1280
chunk (16 × 88 × 160 latents = 56,320 tokens), GEN3C's default guidance 1, i.e. two DiT
forwards per sampler step. Each count N is one ``torchrun`` launch whose ranks split the tokens
(:mod:`gen3c.models.context_parallel`, Ulysses); each launch appends one JSON row to
``--results`` and rank 0 prints the table of every row there so far:

    GPUs | s/step | speed-up | efficiency = t₁ / (N · t_N) | peak GB per GPU | rel. error vs 1 GPU

The 1-GPU launch saves its output so later launches report their relative L2 error against it
(bf16: expect ~1e-2 from reordered sums, not 1). Not a test.

    R=cp_results.jsonl
    for n in 1 2 4 8; do torchrun --standalone --nproc_per_node=$n benchmarks/bench_context_parallel.py --results $R; done
    python benchmarks/bench_context_parallel.py --results $R --table     # the table again

    torchrun --standalone --nproc_per_node=2 benchmarks/bench_context_parallel.py --tiny --results /tmp/r.jsonl  # CPU smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import check_writable, json_text, run  # noqa: E402
from bench_dit import build_module, sync  # noqa: E402
from bench_speed import inputs  # noqa: E402

from gen3c.models import configs  # noqa: E402


def measure(args: argparse.Namespace) -> dict:
    """Time ``args.iters`` sampler steps on this launch's ranks; returns rank 0's row (others: {})."""
    import torch.distributed as dist
    from diffusers import CosmosTransformer3DModel
    from diffusers.utils import logging as diffusers_logging

    from gen3c.models.context_parallel import check_token_split, enable_context_parallel
    from gen3c.models.speed import compile_blocks, set_attention_backend
    from gen3c.parallel import init_parallel

    diffusers_logging.set_verbosity_error()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    ctx = init_parallel(world, "cpu" if args.tiny else None)
    device = ctx.device
    dtype = torch.float32 if args.tiny else torch.bfloat16
    tcfg = configs.TRANSFORMER_TINY if args.tiny else configs.TRANSFORMER_7B
    latent = (4, 4, 6) if args.tiny else (16, 88, 160)
    check_token_split(tcfg["num_attention_heads"], world, latent[0])
    torch.manual_seed(0)  # the same weights on every rank and in every launch
    model = build_module(CosmosTransformer3DModel, tcfg, device, dtype)
    set_attention_backend(model, args.attention_backend)
    if world > 1:
        enable_context_parallel(model, device)
    if args.compile:
        compile_blocks(model)
    kwargs = inputs(tcfg, latent, device, dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    with torch.no_grad():
        for i in range(args.warmup + args.iters):
            dist.barrier()
            sync(device)
            start = time.perf_counter()
            for _ in range(args.forwards_per_step):
                out = model(**kwargs)[0]
            sync(device)
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
    # The slowest rank sets the pace of a step.
    step = torch.tensor([statistics.median(times)], dtype=torch.float64, device=device)
    peak = torch.tensor(
        [torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0],
        dtype=torch.float64,
        device=device,
    )
    dist.all_reduce(step, op=dist.ReduceOp.MAX)
    dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    if not ctx.is_main:
        return {}
    reference = args.results.with_suffix(".reference.safetensors")
    out = out.float().cpu()
    from safetensors.torch import load_file, save_file

    rel_error = None
    if world == 1:
        from gen3c.io.atomic import atomic_path

        with atomic_path(reference) as tmp:
            save_file({"out": out.contiguous()}, str(tmp))
    elif reference.is_file():
        ref = load_file(str(reference))["out"]
        rel_error = ((out - ref).norm() / ref.norm()).item()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (gloo)"
    return {
        "gpus": world,
        "s_per_step": step.item(),
        "forwards_per_step": args.forwards_per_step,
        "peak_gb_per_gpu": peak.item() if device.type == "cuda" else None,
        "rel_error_vs_1_gpu": rel_error,
        "config": "tiny" if args.tiny else "7B",
        "latents": list(latent),
        "attention_backend": args.attention_backend or "native",
        "compile": args.compile,
        "device": name,
        "torch": torch.__version__,
    }


def print_table(rows: list[dict]) -> None:
    if not rows:
        raise SystemExit("no rows yet: launch the benchmark with torchrun first (see --help)")
    rows = sorted(rows, key=lambda r: r["gpus"])
    base = next((r["s_per_step"] for r in rows if r["gpus"] == 1), None)
    first = rows[0]
    print(
        f"\nGEN3C DiT, {first['config']} config, latents {tuple(first['latents'])}, {first['forwards_per_step']} forwards per step, "
        f"attention {first['attention_backend']}{', compiled' if first['compile'] else ''} — {first['device']}, torch {first['torch']}"
    )
    print(f"{'GPUs':>4} {'s/step':>8} {'speed-up':>9} {'efficiency':>11} {'peak GB/GPU':>12} {'rel. err vs 1':>14}")
    for r in rows:
        speedup = base / r["s_per_step"] if base else float("nan")
        eff = f"{100 * speedup / r['gpus']:.0f}%" if base else "—"
        err = "—" if r["rel_error_vs_1_gpu"] is None else f"{r['rel_error_vs_1_gpu']:.1e}"
        peak = "—" if r["peak_gb_per_gpu"] is None else f"{r['peak_gb_per_gpu']:.1f}"
        print(f"{r['gpus']:>4} {r['s_per_step']:>8.3f} {speedup:>9.2f} {eff:>11} {peak:>12} {err:>14}")


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    latest: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            latest[row["gpus"]] = row  # a rerun of a count replaces its row
    return list(latest.values())


def setup_text(config: str, backend: str, forwards: int, compiled: bool) -> str:
    return f"config {config}, attention {backend}, {forwards} forward{'s' * (forwards != 1)} per step" + (", compiled" if compiled else "")


def check_same_setup(args: argparse.Namespace) -> None:
    """Exit before measuring when ``--results`` holds rows of another setup: the table's speed-ups
    and errors compare each row with the 1-GPU row of the file."""
    this = setup_text("tiny" if args.tiny else "7B", args.attention_backend or "native", args.forwards_per_step, args.compile)
    held = {setup_text(r["config"], r["attention_backend"], r["forwards_per_step"], r["compile"]) for r in read_rows(args.results)}
    if held - {this}:
        raise SystemExit(f"{args.results} holds rows of {'; '.join(sorted(held))}; this launch is {this}: pass another --results")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path("cp_results.jsonl"), help="JSON lines, one per GPU count")
    parser.add_argument("--table", action="store_true", help="only print the table of --results")
    parser.add_argument("--tiny", action="store_true", help="tiny config on the CPU with gloo (smoke test)")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--forwards_per_step", type=int, default=2, help="2 = GEN3C's guidance 1; 1 = guidance 0")
    parser.add_argument("--attention_backend", default=None, help="diffusers backend, e.g. _native_cudnn, flash")
    parser.add_argument("--compile", action="store_true", help="regional torch.compile of the blocks")
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0 or args.forwards_per_step < 1:
        parser.error("--iters and --forwards_per_step must be at least 1, --warmup at least 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.table:
        print_table(read_rows(args.results))
        return
    if "WORLD_SIZE" not in os.environ:
        sys.exit("launch with torchrun: torchrun --standalone --nproc_per_node=N benchmarks/bench_context_parallel.py (see --help)")
    if not args.tiny and not torch.cuda.is_available():
        sys.exit("the full-size measurement needs CUDA GPUs (one per rank); --tiny runs a CPU smoke test with gloo")
    check_writable(args.results)
    check_same_setup(args)
    row = measure(args)
    if row:
        with args.results.open("a") as f:  # one line appended per launch
            f.write(json_text(row, indent=None) + "\n")
        print(json_text(row, indent=None), flush=True)
        print_table(read_rows(args.results))


if __name__ == "__main__":
    run(main)
