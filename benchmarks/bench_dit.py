"""GEN3C generator benchmark: sampler step time, peak accelerator memory per memory mode,
end-to-end time of one video, MFU; beside it the stock diffusers Cosmos Video2World DiT.

Full size (default): the 7B network with random bfloat16 weights, one 121-frame 704×1280 video
(16 × 88 × 160 latents), two buffers, GEN3C's defaults (35 steps, guidance 1 = two DiT
forwards per step). No checkpoint is needed; T5 is not loaded (the empty prompt and the default
negative prompt come from the prompt cache, as in real runs).

    python benchmarks/bench_dit.py --device cuda                      # all modes + e2e in the first, 'resident'
    python benchmarks/bench_dit.py --device cuda --modes group_offload --e2e_mode group_offload
    python benchmarks/bench_dit.py --tiny                             # CPU smoke test, seconds

Per mode it runs the whole pipeline with ``--steps`` sampler steps (the first is a warm-up and not
timed) and reports: tokenizer encode time, median step time, decode time, peak memory
(``torch.cuda.max_memory_allocated`` over the run; reserved memory beside it), the estimated
end-to-end time for ``--e2e_steps`` steps, and MFU = DiT FLOPs per step / step time / bf16 peak.
``--e2e_mode`` additionally runs one full video in that mode and times it end to end.
DiT FLOPs are counted analytically (:func:`gen3c.models.flops.dit_forward_flops`; its matmul
part is checked against PyTorch's FlopCounterMode in the tests).
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import check_writable, device_or_exit, run, write_json  # noqa: E402

from gen3c.models import configs  # noqa: E402
from gen3c.models.flops import dit_forward_flops  # noqa: E402
from gen3c.models.memory import memory_plan  # noqa: E402

#: Dense bf16 tensor-core peaks (TFLOP/s) by device name fragment, most specific first.
BF16_PEAK_TFLOPS = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM (HBM3)
    ("H200", 989.4),
    ("H20", 148.0),
    ("GH200", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("A10G", 70.0),
    ("L4", 121.0),
]

MODES = {
    "resident": {},
    "fp8": {"fp8": True},
    "model_offload": {"memory_mode": "model_offload"},
    "group_offload": {"memory_mode": "group_offload"},
    "group_offload+fp8": {"memory_mode": "group_offload", "fp8": True},
}


def bf16_peak(device: torch.device, override: float | None) -> tuple[float | None, str]:
    if override:
        return override * 1e12, f"{override:g} TFLOP/s (given)"
    if device.type != "cuda":
        return None, "unknown (pass --peak_tflops)"
    name = torch.cuda.get_device_name(device)
    for fragment, tflops in BF16_PEAK_TFLOPS:
        if fragment in name:
            return tflops * 1e12, f"{tflops:g} TFLOP/s ({name})"
    return None, f"unknown for {name} (pass --peak_tflops)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_init_(module: torch.nn.Module, std: float = 0.02) -> torch.nn.Module:
    """Random weights: N(0, std) for matrices, 1 for norm scales, 0 for biases."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1 and ("norm" in name or name.endswith("weight")):
                p.fill_(1.0)
            elif p.ndim == 1:
                p.zero_()
            else:
                p.normal_(0.0, std)
    return module


def build_module(cls, config: dict, device: torch.device, dtype: torch.dtype, std: float = 0.02):
    """``cls(**config)`` with random weights made directly on ``device`` (no CPU init of 7B)."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        module = cls(**config)
    buffers = {name: buf.clone() for name, buf in module.named_buffers()}  # real values, not meta
    module.to_empty(device=device)
    for name, buf in buffers.items():
        owner, _, leaf = name.rpartition(".")
        module.get_submodule(owner)._buffers[leaf] = buf.to(device)
    return random_init_(module, std).to(dtype).eval()


def build_pipeline(args, device: torch.device, mode_opts: dict):
    from diffusers import AutoencoderKLCosmos, CosmosTransformer3DModel, EDMEulerScheduler

    from gen3c.models.prompt_cache import PromptEmbeddingCache
    from gen3c.pipelines.gen3c import Gen3cPipeline

    dtype = torch.bfloat16 if not args.tiny else torch.float32
    tcfg = configs.TRANSFORMER_TINY if args.tiny else configs.TRANSFORMER_7B
    vcfg = configs.VAE_TINY if args.tiny else configs.VAE_CV8X8X8
    make_on = device if device.type == "cuda" else torch.device("cpu")
    transformer = build_module(CosmosTransformer3DModel, tcfg, make_on, dtype)
    vae = build_module(AutoencoderKLCosmos, vcfg, make_on, dtype)
    g = torch.Generator().manual_seed(0)
    dim, length = tcfg["text_embed_dim"], configs.MAX_SEQUENCE_LENGTH
    cache = PromptEmbeddingCache.from_embeddings(
        {p: torch.randn(length, dim, generator=g) * 0.1 for p in ("", configs.DEFAULT_NEGATIVE_PROMPT)}
    )
    pipe = Gen3cPipeline(transformer, vae, EDMEulerScheduler(**configs.SCHEDULER_GEN3C), prompt_cache=cache)
    if args.attention_backend:
        transformer.set_attention_backend(args.attention_backend)
    plan = memory_plan(**{k: v for k, v in mode_opts.items()}, vae_chunk_frames=args.vae_chunk_frames)
    if plan.offload and device.type == "cuda":
        for name in plan.offload:
            if name != "text_encoder" and getattr(pipe, name, None) is not None:
                getattr(pipe, name).to("cpu")
    pipe.configure_memory(plan, device)
    pipe.set_progress_bar_config(disable=True)
    return pipe, tcfg


def make_inputs(args):
    g = torch.Generator().manual_seed(0)
    T, H, W = args.frames, args.height, args.width
    image = torch.rand(3, H, W, generator=g) * 2 - 1
    colors = torch.rand(T, 2, 3, H, W, generator=g) * 2 - 1
    masks = (torch.rand(T, 2, 1, H, W, generator=g) > 0.3).float()
    return image, colors, masks


def run_pipeline(pipe, inputs, device: torch.device, steps: int, guidance: float) -> dict:
    """One pipeline call with stage timestamps (encode, each step, decode) and peak memory."""
    marks: list[float] = []
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    original = pipe.denoise

    def timed_denoise(*a, **k):
        sync(device)
        marks.append(time.perf_counter())  # end of encoding
        out = original(*a, **k)
        return out

    def on_step(i, sigma, latents):
        sync(device)
        marks.append(time.perf_counter())

    pipe.denoise = timed_denoise
    try:
        sync(device)
        start = time.perf_counter()
        pipe(*inputs, num_steps=steps, guidance=guidance, callback=on_step)
        sync(device)
        end = time.perf_counter()
    finally:
        del pipe.denoise
    step_times = [b - a for a, b in zip(marks[:-1], marks[1:], strict=True)]
    result = {
        "encode_s": marks[0] - start,
        "step_times_s": step_times,
        "decode_s": end - marks[-1],
        "total_s": end - start,
    }
    if device.type == "cuda":
        result["peak_allocated_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        result["peak_reserved_gb"] = torch.cuda.max_memory_reserved(device) / 2**30
    return result


def time_forward(
    model, device, dtype, latent_shape, in_channels_extra: int, text_dim: int, iters: int
) -> float:
    """Median seconds of one DiT forward at ``latent_shape`` (batch 1)."""
    T, h, w = latent_shape
    x = torch.randn(1, 16, T, h, w, device=device, dtype=dtype)
    cond = torch.randn(1, in_channels_extra, T, h, w, device=device, dtype=dtype)
    text = torch.randn(1, configs.MAX_SEQUENCE_LENGTH, text_dim, device=device, dtype=dtype)
    pad = torch.zeros(1, 1, h, w, device=device, dtype=dtype)
    t = torch.tensor([0.5], device=device, dtype=dtype)
    times = []
    with torch.no_grad():
        for i in range(iters + 1):
            sync(device)
            start = time.perf_counter()
            model(hidden_states=x, timestep=t, encoder_hidden_states=text, fps=24, condition_mask=cond,
                  padding_mask=pad, return_dict=False)  # fmt: skip
            sync(device)
            if i:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def fmt(value, spec: str = ".2f", missing: str = "—") -> str:
    return (
        missing if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)
    )


def mode_list(text: str) -> list[str]:
    """``--modes``: comma-separated names of :data:`MODES`."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"unknown modes {unknown}; pick from {list(MODES)}")
    twice = next((mode for mode in modes if modes.count(mode) > 1), None)
    if twice is not None:  # results are kept by mode: the second run would replace the first
        raise argparse.ArgumentTypeError(f"mode {twice!r} is given twice: list each mode once")
    return modes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--tiny", action="store_true", help="tiny random model, 17 frames of 32×48: a CPU smoke test"
    )
    parser.add_argument("--modes", type=mode_list, default=list(MODES), help=f"comma-separated, from {', '.join(MODES)}")
    parser.add_argument(
        "--steps", type=int, default=3, help="sampler steps per mode run (the first is a warm-up)"
    )
    parser.add_argument(
        "--guidance", type=float, default=1.0, help="GEN3C's guidance (1: two forwards per step; 0: one)"
    )
    parser.add_argument(
        "--e2e_steps", type=int, default=configs.NUM_STEPS, help="steps of a full video (GEN3C: 35)"
    )
    parser.add_argument(
        "--e2e_mode", default=None, help="mode of the full end-to-end run, one of --modes (default: the first; 'none' to skip)"
    )
    parser.add_argument(
        "--vae_chunk_frames", type=int, default=None, help="tokenizer chunk in latent frames (mode default)"
    )
    parser.add_argument(
        "--attention_backend", default=None, help="diffusers attention backend, e.g. flash, _native_cudnn"
    )
    parser.add_argument(
        "--forward_iters", type=int, default=3, help="timed iterations of the bare DiT forwards"
    )
    parser.add_argument("--skip_stock", action="store_true", help="skip the stock Video2World forward")
    parser.add_argument(
        "--peak_tflops", type=float, default=None, help="bf16 peak of the device, if not in the table"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (one warm-up step)")
    if args.forward_iters < 1:
        parser.error("--forward_iters must be at least 1")
    if args.e2e_mode is None:
        args.e2e_mode = args.modes[0]
    elif args.e2e_mode != "none" and args.e2e_mode not in args.modes:
        parser.error(f"--e2e_mode {args.e2e_mode!r} is not among --modes {','.join(args.modes)}: add it there, or pass 'none'")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = device_or_exit(args.device, full_size=not args.tiny)
    check_writable(args.json)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    if args.tiny:
        args.frames, args.height, args.width = 17, 32, 48
        args.e2e_steps = min(args.e2e_steps, 35)
    else:
        args.frames, args.height, args.width = configs.CHUNK_FRAMES, *configs.RESOLUTION
    modes = args.modes

    peak, peak_text = bf16_peak(device, args.peak_tflops)
    tcfg = configs.TRANSFORMER_TINY if args.tiny else configs.TRANSFORMER_7B
    latent = ((args.frames - 1) // 8 + 1, args.height // 8, args.width // 8)
    flops = dit_forward_flops(tcfg, latent, configs.MAX_SEQUENCE_LENGTH)
    forwards_per_step = 1 if args.guidance == 0 else 2
    inputs = make_inputs(args)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    results: dict = {
        "device": device_name,
        "torch": torch.__version__,
        "config": "tiny" if args.tiny else "GEN3C-Cosmos-7B (random bf16 weights)",
        "video": f"{args.frames} frames {args.height}x{args.width}, latents {latent}",
        "dit_tflop_per_forward": flops["total"] / 1e12,
        "bf16_peak": peak_text,
        "guidance": args.guidance,
        "modes": {},
    }
    print(f"device: {device_name} | bf16 peak: {peak_text} | {results['video']}", flush=True)
    print(f"DiT forward: {flops['total'] / 1e12:.1f} TFLOP ({flops['attention'] / flops['total']:.0%} attention); "
          f"{forwards_per_step} forward(s) per step at guidance {args.guidance:g}", flush=True)  # fmt: skip

    for mode in modes:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        print(f"[{mode}] building…", flush=True)
        pipe, _ = build_pipeline(args, device, MODES[mode])
        try:
            run = run_pipeline(pipe, inputs, device, args.steps, args.guidance)
        except torch.OutOfMemoryError as exc:  # report and go on
            results["modes"][mode] = {"error": f"out of memory: {str(exc).splitlines()[0]}"}
            print(f"[{mode}] out of memory", flush=True)
            del pipe
            continue
        step = statistics.median(run["step_times_s"][1:])
        run["step_s"] = step
        run["e2e_estimate_s"] = run["encode_s"] + args.e2e_steps * step + run["decode_s"]
        run["mfu"] = (flops["total"] * forwards_per_step / step / peak) if peak else None
        results["modes"][mode] = run
        print(f"[{mode}] step {step:.3f} s, peak {fmt(run.get('peak_allocated_gb'))} GB, "
              f"encode {run['encode_s']:.1f} s, decode {run['decode_s']:.1f} s, MFU {fmt(run['mfu'], '.1%')}", flush=True)  # fmt: skip
        if mode == args.e2e_mode:
            print(f"[{mode}] full video: {args.e2e_steps} steps…", flush=True)
            full = run_pipeline(pipe, inputs, device, args.e2e_steps, args.guidance)
            results["e2e"] = {"mode": mode, **{k: v for k, v in full.items() if k != "step_times_s"}}
            print(f"[{mode}] end to end {full['total_s']:.1f} s", flush=True)
        del pipe

    if not args.skip_stock:
        from diffusers import CosmosTransformer3DModel

        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        dtype = torch.float32 if args.tiny else torch.bfloat16
        stock_cfg = {**tcfg, "in_channels": configs.LATENT_CHANNELS + 1}
        rows = {}
        for name, cfg, extra in (
            ("gen3c_dit_81ch", tcfg, 1 + configs.BUFFER_CHANNELS),
            ("stock_video2world_17ch", stock_cfg, 1),
        ):
            model = build_module(CosmosTransformer3DModel, cfg, device, dtype)
            if args.attention_backend:
                model.set_attention_backend(args.attention_backend)
            seconds = time_forward(
                model, device, dtype, latent, extra, cfg["text_embed_dim"], args.forward_iters
            )
            f = dit_forward_flops(cfg, latent, configs.MAX_SEQUENCE_LENGTH)["total"]
            rows[name] = {"forward_s": seconds, "mfu": f / seconds / peak if peak else None}
            print(f"[{name}] forward {seconds:.3f} s, MFU {fmt(rows[name]['mfu'], '.1%')}", flush=True)
            del model
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        results["forwards"] = rows

    print_table(results, args)
    if args.json:
        write_json(args.json, results)
    return results


def print_table(results: dict, args) -> None:
    print()
    print(f"GEN3C generator — {results['config']} — {results['video']} — {results['device']}")
    print(f"guidance {results['guidance']:g}; MFU against bf16 peak {results['bf16_peak']}")
    head = f"{'mode':<20} {'s/step':>8} {'MFU':>7} {'peak GB':>8} {'resv GB':>8} {'encode s':>9} {'decode s':>9} {'e2e est s':>10}"
    print(head)
    print("-" * len(head))
    for mode, r in results["modes"].items():
        if "error" in r:
            print(f"{mode:<20} {r['error']}")
            continue
        print(f"{mode:<20} {r['step_s']:>8.3f} {fmt(r['mfu'], '.1%'):>7} {fmt(r.get('peak_allocated_gb')):>8} "
              f"{fmt(r.get('peak_reserved_gb')):>8} {r['encode_s']:>9.1f} {r['decode_s']:>9.1f} {r['e2e_estimate_s']:>10.1f}")  # fmt: skip
    if "e2e" in results:
        e = results["e2e"]
        print(
            f"end to end ({e['mode']}, {args.e2e_steps} steps): {e['total_s']:.1f} s, peak {fmt(e.get('peak_allocated_gb'))} GB"
        )
    for name, r in results.get("forwards", {}).items():
        print(f"{name:<24} forward {r['forward_s']:.3f} s   MFU {fmt(r['mfu'], '.1%')}")


if __name__ == "__main__":
    run(main)
