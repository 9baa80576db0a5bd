"""Memory of the GEN3C generator: calibrate the estimate behind ``--max_gpu_memory`` and check it.

Full size: GEN3C-Cosmos-7B with random bfloat16 weights, one 121-frame 704×1280 chunk.

1. Each network stage alone, from the weights already on the GPU: one DiT forward, the tokenizer's
   encode of the conditions (first frame + 2 buffers × colour and mask, as the pipeline does) and
   its decode, whole-video and in chunks of 2 latent frames. Its activation memory (peak allocated
   minus what was allocated before) gives the coefficients of :mod:`gen3c.models.memory`: the DiT's
   per token and hidden unit; the tokenizer's two terms (the whole video held during a pass, and
   one chunk's activations) from the whole-video and the chunked measurement.
2. Each plan ``--max_gpu_memory`` chooses from, run end to end (encode, ``--steps`` sampler steps at
   guidance 1, decode): measured peak beside the estimate made with the shipped coefficients and
   with the ones just measured, with the step, encode and decode times.

    python benchmarks/bench_memory.py                # CUDA GPU, ~5 minutes
    python benchmarks/bench_memory.py --tiny         # CPU smoke test of the script
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_common import check_writable, device_or_exit, run, write_json  # noqa: E402
from bench_dit import build_module, build_pipeline, make_inputs, run_pipeline, sync  # noqa: E402

from gen3c.models import configs, memory  # noqa: E402
from gen3c.models.memory import BUDGET_PLANS, ModelSize, estimate_peak_gb, memory_plan  # noqa: E402
from gen3c.models.tokenizer import decode_latents  # noqa: E402

GiB = 2**30


def allocated(device: torch.device) -> int:
    return torch.cuda.memory_allocated(device) if device.type == "cuda" else 0


def stage_peak(device: torch.device, fn) -> tuple[float, float | None]:
    """(seconds, bytes allocated at the peak of ``fn`` beyond what was allocated before it; None
    off a GPU, where it is not measured)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    before = allocated(device)
    sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        fn()
    sync(device)
    seconds = time.perf_counter() - start
    if device.type != "cuda":
        return seconds, None
    return seconds, torch.cuda.max_memory_allocated(device) - before


def calibrate(args, device: torch.device) -> dict:
    """Activation bytes of each stage alone and the coefficients they give (None off a GPU)."""
    from diffusers import AutoencoderKLCosmos, CosmosTransformer3DModel, EDMEulerScheduler

    from gen3c.pipelines.gen3c import Gen3cPipeline

    dtype = torch.float32 if args.tiny else torch.bfloat16
    tcfg = configs.TRANSFORMER_TINY if args.tiny else configs.TRANSFORMER_7B
    vcfg = configs.VAE_TINY if args.tiny else configs.VAE_CV8X8X8
    dit = build_module(CosmosTransformer3DModel, tcfg, device, dtype)
    vae = build_module(AutoencoderKLCosmos, vcfg, device, dtype)
    size = ModelSize.of(dit, vae, args.frames, args.height, args.width)
    pipe = Gen3cPipeline(dit, vae, EDMEulerScheduler(**configs.SCHEDULER_GEN3C))
    image, colors, masks = make_inputs(args)
    out: dict = {"size": size.__dict__}

    latent_t = (args.frames - 1) // 8 + 1
    h, w = args.height // 8, args.width // 8
    x = torch.randn(1, 16, latent_t, h, w, device=device, dtype=dtype)
    cond = torch.randn(1, 1 + configs.BUFFER_CHANNELS, latent_t, h, w, device=device, dtype=dtype)
    text = torch.randn(1, configs.MAX_SEQUENCE_LENGTH, tcfg["text_embed_dim"], device=device, dtype=dtype)
    pad = torch.zeros(1, 1, h, w, device=device, dtype=dtype)
    t = torch.tensor([0.5], device=device, dtype=dtype)

    def forward():
        dit(hidden_states=x, timestep=t, encoder_hidden_states=text, fps=24, condition_mask=cond,
            padding_mask=pad, return_dict=False)  # fmt: skip

    with torch.no_grad():
        forward()  # warm-up (kernels, workspaces)
    seconds, act = stage_peak(device, forward)
    out["dit_forward"] = {"s": seconds, "activation_gb": gb(act)}
    out["DIT_ACTIVATION_BYTES"] = None if act is None else act / (size.tokens * size.hidden)

    latents = torch.randn(1, 16, latent_t, h, w)
    video = args.frames * args.height * args.width
    chunked_frames = min(args.frames, 2 * 8 + 1)
    for chunk in (None, 2):
        pipe.memory = memory_plan(vae_chunk_frames=chunk or 0)
        key = "whole" if chunk is None else "chunks_of_2"
        seconds, act = stage_peak(device, lambda: pipe.encode_conditions(image, colors, masks))
        out[f"encode_{key}"] = {"s": seconds, "activation_gb": gb(act)}
        seconds, act = stage_peak(
            device, lambda: decode_latents(vae, latents.to(device), sigma_data=0.5, chunk_frames=chunk)  # noqa: B023
        )
        out[f"decode_{key}"] = {"s": seconds, "activation_gb": gb(act)}
    # activation = video_bytes · (frames·pixels) + chunk_bytes · (chunk frames·pixels·channels): two
    # measurements, two unknowns.
    for stage, channels in (("ENCODE", size.encoder_channels), ("DECODE", size.decoder_channels)):
        if out["dit_forward"]["activation_gb"] is None:
            out[f"VAE_{stage}_BYTES"] = out[f"VAE_{stage}_VIDEO_BYTES"] = None
            continue
        whole = out[f"{stage.lower()}_whole"]["activation_gb"] * GiB
        part = out[f"{stage.lower()}_chunks_of_2"]["activation_gb"] * GiB
        per_chunk = (whole - part) / (args.height * args.width * channels * (args.frames - chunked_frames))
        out[f"VAE_{stage}_BYTES"] = per_chunk
        out[f"VAE_{stage}_VIDEO_BYTES"] = (part - per_chunk * chunked_frames * args.height * args.width * channels) / video
    gc.collect()
    return out


def gb(n_bytes: float | None) -> float | None:
    return None if n_bytes is None else n_bytes / GiB


COEFFICIENTS = (
    "DIT_ACTIVATION_BYTES", "VAE_ENCODE_VIDEO_BYTES", "VAE_ENCODE_BYTES", "VAE_DECODE_VIDEO_BYTES", "VAE_DECODE_BYTES",
)  # fmt: skip


def estimate_with(coefs: dict, plan, size: ModelSize) -> float:
    """The estimate with the coefficients ``coefs`` in place of the shipped ones."""
    saved = {k: getattr(memory, k) for k in COEFFICIENTS}
    for k in COEFFICIENTS:
        setattr(memory, k, coefs[k])
    try:
        return estimate_peak_gb(plan, size)
    finally:
        for k, v in saved.items():
            setattr(memory, k, v)


def plan_indices(text: str) -> list[int]:
    """``--plans``: 'all' or comma-separated indices into :data:`BUDGET_PLANS`."""
    if text == "all":
        return list(range(len(BUDGET_PLANS)))
    try:
        picks = [int(i) for i in text.split(",")]
    except ValueError:
        picks = [-1]
    if not picks or any(not 0 <= i < len(BUDGET_PLANS) for i in picks):
        raise argparse.ArgumentTypeError(f"{text!r}: 'all' or comma-separated indices 0 … {len(BUDGET_PLANS) - 1} of BUDGET_PLANS")
    return picks


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny random model, 33 frames of 32×48 (CPU smoke test)")
    parser.add_argument("--steps", type=int, default=2, help="sampler steps per plan (the first is a warm-up)")
    parser.add_argument("--plans", type=plan_indices, default="all", help="comma-separated indices into BUDGET_PLANS, or 'all'")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first is a warm-up, not timed)")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = device_or_exit(args.device, full_size=not args.tiny)
    check_writable(args.json)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    args.frames, args.height, args.width = (33, 32, 48) if args.tiny else (configs.CHUNK_FRAMES, *configs.RESOLUTION)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name} | torch {torch.__version__} | {args.frames} frames {args.height}x{args.width}", flush=True)
    if device.type != "cuda":
        print("(no GPU: memory is not measured here; the coefficients and peaks print as —)", flush=True)

    cal = calibrate(args, device)
    shipped = {k: getattr(memory, k) for k in COEFFICIENTS}
    print("\nstage activations (peak allocated − allocated before):")
    for key in ("dit_forward", "encode_whole", "encode_chunks_of_2", "decode_whole", "decode_chunks_of_2"):
        print(f"  {key:<20} {fmt(cal[key]['activation_gb'], '7.2f'):>7} GB  {cal[key]['s']:6.2f} s")
    print("coefficients   measured   shipped")
    for key, value in shipped.items():
        print(f"  {key:<24} {fmt(cal[key], '8.3f'):>8} {value:8.3f}")

    size = ModelSize(**cal["size"])
    picks = args.plans
    rows = []
    inputs = make_inputs(args)
    for i in picks:
        label, options = BUDGET_PLANS[i]
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        opts = dict(options)
        chunk = opts.pop("vae_chunk_frames", None)
        bench_args = SimpleNamespace(tiny=args.tiny, attention_backend=None, vae_chunk_frames=chunk)
        pipe, _ = build_pipeline(bench_args, device, opts)
        run = run_pipeline(pipe, inputs, device, args.steps, 1.0)
        del pipe
        plan = memory_plan(**options)
        row = {
            "plan": label,
            "measured_gb": run.get("peak_allocated_gb"),
            "estimate_shipped_gb": estimate_peak_gb(plan, size),
            "estimate_measured_gb": estimate_with(cal, plan, size) if cal["DIT_ACTIVATION_BYTES"] is not None else None,
            "step_s": statistics.median(run["step_times_s"][1:]),
            "encode_s": run["encode_s"],
            "decode_s": run["decode_s"],
        }
        rows.append(row)
        print(f"[{label}] measured {fmt(row['measured_gb'], '.2f')} GB, estimate {row['estimate_shipped_gb']:.2f} GB", flush=True)

    print(f"\n{'tiny model' if args.tiny else 'GEN3C-7B'} memory plans — {args.frames} frames {args.height}x{args.width} — {name}")
    head = (f"{'plan':<52} {'peak GB':>8} {'est. GB':>8} {'est./peak':>9} {'refit GB':>9} {'s/step':>7} "
            f"{'enc s':>6} {'dec s':>6}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for r in rows:
        ratio = r["estimate_shipped_gb"] / r["measured_gb"] if r["measured_gb"] else None
        print(f"{r['plan']:<52} {fmt(r['measured_gb'], '8.2f'):>8} {r['estimate_shipped_gb']:>8.2f} {fmt(ratio, '9.2f'):>9} "
              f"{fmt(r['estimate_measured_gb'], '9.2f'):>9} {r['step_s']:>7.2f} {r['encode_s']:>6.1f} {r['decode_s']:>6.1f}")  # fmt: skip
    result = {"device": name, "torch": torch.__version__, "calibration": cal, "shipped": shipped, "plans": rows}
    if args.json:
        write_json(args.json, result)
    return result


def fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


if __name__ == "__main__":
    run(main)
