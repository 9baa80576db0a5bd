"""Loading a converted checkpoint: seconds and peak CPU memory until the pipeline is ready.

Each row runs in a fresh Python process, so its peak resident set (RSS) is its own; the first
row, the checkpoint loaded in the dtype it is stored in, is the baseline of the ratios:

- ``as stored`` — :func:`gen3c.pipelines.loading.load_pipeline` in the stored dtype (bfloat16 for
  GEN3C-7B): safetensors are memory-mapped, so weights are read from the file as they are used;
- ``cast to float32`` — what the CPU computes in: every weight is copied into memory (refused in
  one line, before anything is allocated, when RAM and swap cannot hold it);
- on a CUDA GPU: ``load_generator`` resident (every weight moved to the GPU) and with
  ``--low_memory`` (the DiT kept in CPU memory in float8, streamed to the GPU block by block).

    python benchmarks/bench_load.py --build /tmp/gen3c_7b     # writes GEN3C-7B with random bf16 weights once (14 GB), then measures
    python benchmarks/bench_load.py --checkpoint DIR          # any converted checkpoint
    python benchmarks/bench_load.py --tiny                    # CPU smoke test
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_common import check_writable, run, write_json  # noqa: E402

from gen3c.models import configs  # noqa: E402

GiB = 2**30
ROWS = {
    "stored": "as stored",
    "float32": "cast to float32",
    "cuda_resident": "load_generator, resident on the GPU",
    "cuda_low_memory": "load_generator --low_memory",
}


def build_checkpoint(folder: Path, tiny: bool) -> None:
    """A converted checkpoint (transformer, tokenizer, scheduler, prompt cache) with random weights,
    made in the stored dtype (the 7B in float32 would need 28 GB of memory to write 14)."""
    from accelerate import init_empty_weights
    from bench_dit import random_init_
    from diffusers import AutoencoderKLCosmos, CosmosTransformer3DModel, EDMEulerScheduler

    from gen3c.models.prompt_cache import PromptEmbeddingCache
    from gen3c.pipelines.gen3c import Gen3cPipeline

    dtype = torch.float32 if tiny else torch.bfloat16

    def build(cls, config):
        with init_empty_weights():
            module = cls(**config).to(dtype)  # weights still on the meta device: nothing allocated yet
        buffers = {name: buf.clone() for name, buf in module.named_buffers()}  # real values, not meta
        module.to_empty(device="cpu")
        for name, buf in buffers.items():
            owner, _, leaf = name.rpartition(".")
            module.get_submodule(owner)._buffers[leaf] = buf
        return random_init_(module).eval()

    torch.manual_seed(0)
    transformer = build(CosmosTransformer3DModel, configs.TRANSFORMER_TINY if tiny else configs.TRANSFORMER_7B)
    vae = build(AutoencoderKLCosmos, configs.VAE_TINY if tiny else configs.VAE_CV8X8X8)
    dim = transformer.config.text_embed_dim
    cache = PromptEmbeddingCache.from_embeddings({p: torch.randn(configs.MAX_SEQUENCE_LENGTH, dim) * 0.1 for p in configs.CACHED_PROMPTS})
    pipe = Gen3cPipeline(transformer=transformer, vae=vae, scheduler=EDMEulerScheduler(**configs.SCHEDULER_GEN3C), prompt_cache=cache)
    pipe.save_pretrained(folder)


def check_kept(folder: Path, tiny: bool) -> None:
    """Exit when the checkpoint kept in ``folder`` (``--build``) is of the other configuration."""
    held = json.loads((folder / "transformer" / "config.json").read_text())
    sizes = {name: {k: config[k] for k in ("num_layers", "num_attention_heads")}
             for name, config in (("tiny", configs.TRANSFORMER_TINY), ("GEN3C-7B", configs.TRANSFORMER_7B))}  # fmt: skip
    wanted = "tiny" if tiny else "GEN3C-7B"
    held_name = next((name for name, size in sizes.items() if {k: held.get(k) for k in size} == size), None)
    if held_name != wanted:
        which = "a checkpoint of neither configuration" if held_name is None else f"the {held_name} configuration's checkpoint"
        fix = "" if held_name is None else "--tiny, or " if held_name == "tiny" else "no --tiny, or "
        raise SystemExit(f"--build {folder} holds {which}: pass {fix}another folder to write {wanted} in")


def measure(row: str, checkpoint: str, stored: str) -> dict:
    """One row, in this process: seconds to a ready pipeline, peak RSS, GPU memory allocated."""
    from gen3c.errors import Gen3cMemoryError
    from gen3c.pipelines.loading import load_generator, load_pipeline

    start = time.perf_counter()
    try:
        if row == "stored":
            pipe = load_pipeline(checkpoint, dtype=stored)
        elif row == "float32":
            pipe = load_pipeline(checkpoint, dtype=torch.float32)
        else:
            options = {"low_memory": True} if row == "cuda_low_memory" else {}
            pipe = load_generator(checkpoint, device="cuda", dtype=stored, compile=False, attention_backend=None, **options).pipeline
            torch.cuda.synchronize()
        status = "loaded"
    except Gen3cMemoryError as exc:
        pipe, status = None, f"refused: {str(exc).split(';')[0]}"
    seconds = time.perf_counter() - start
    weights = sum(p.numel() for p in pipe.transformer.parameters()) if pipe is not None else 0
    return {
        "row": row,
        "status": status,
        "seconds": seconds,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GiB,
        "gpu_gb": torch.cuda.max_memory_allocated() / GiB if row.startswith("cuda") else None,
        "dit_parameters": weights,
    }


def row_list(text: str) -> list[str]:
    """``--rows``: comma-separated names of :data:`ROWS`."""
    rows = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown or not rows:
        raise argparse.ArgumentTypeError(f"unknown rows {unknown}: use {', '.join(ROWS)}")
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--checkpoint", default=None, help="a converted checkpoint folder")
    where.add_argument("--build", type=Path, default=None, help="write a random-weight checkpoint here first (kept for later runs)")
    parser.add_argument("--tiny", action="store_true", help="the tiny configuration (CPU smoke test)")
    parser.add_argument("--rows", type=row_list, default=None, help=f"comma-separated rows ({', '.join(ROWS)}; default: those this machine can run)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    stored = "float32" if args.tiny else "bfloat16"
    if args.child:
        print(json.dumps(measure(args.child, args.checkpoint, stored)))
        return []
    rows = args.rows or [r for r in ROWS if torch.cuda.is_available() or not r.startswith("cuda")]
    if not torch.cuda.is_available() and any(r.startswith("cuda") for r in rows):
        raise SystemExit(f"rows {', '.join(r for r in rows if r.startswith('cuda'))} load onto a CUDA GPU: this machine has none")
    if args.checkpoint is not None and not (Path(args.checkpoint) / "model_index.json").is_file():
        raise SystemExit(f"--checkpoint {args.checkpoint}: not a converted checkpoint (no model_index.json); --build DIR writes one")
    check_writable(args.json)
    scratch = None
    try:
        if args.checkpoint is None:
            folder = args.build or Path(scratch := tempfile.mkdtemp(prefix="gen3c_bench_load_")) / "checkpoint"
            if (folder / "model_index.json").is_file():
                check_kept(folder, args.tiny)
            else:
                print(f"writing a {'tiny' if args.tiny else 'GEN3C-7B'} checkpoint with random weights to {folder} …", flush=True)
                build_checkpoint(folder, args.tiny)
            args.checkpoint = str(folder)
        results = []
        for row in rows:
            cmd = [sys.executable, __file__, "--child", row, "--checkpoint", args.checkpoint] + (["--tiny"] if args.tiny else [])
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:  # e.g. killed by the system for want of memory
                results.append({"row": row, "status": f"failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}",
                                "seconds": None, "peak_rss_gb": None, "gpu_gb": None})  # fmt: skip
            else:
                results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print_table(results, args.checkpoint)
        if args.json:
            write_json(args.json, results)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return results


def print_table(results: list[dict], checkpoint: str) -> None:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(f"\nLoading {checkpoint} — {device}, torch {torch.__version__}")
    base = results[0]
    print(f"{'row':<40}{'seconds':>9}{'× base':>8}{'peak RSS GB':>13}{'GPU GB':>8}  status")
    for r in results:
        ratio = r["seconds"] / base["seconds"] if r["seconds"] and base["seconds"] else None
        fmt = lambda v, spec: "—" if v is None else format(v, spec)  # noqa: E731
        print(f"{ROWS[r['row']]:<40}{fmt(r['seconds'], '.1f'):>9}{fmt(ratio, '.2f'):>8}{fmt(r['peak_rss_gb'], '.2f'):>13}"
              f"{fmt(r['gpu_gb'], '.1f'):>8}  {r['status']}")  # fmt: skip


if __name__ == "__main__":
    run(main)
