"""One whole video per speed preset, beside stock diffusers, in one run: seconds per stage,
DiT forwards, peak GPU memory and the fidelity of each preset's video against the exact one.

Rows (``--rows``, ';'-separated): ``stock`` — GEN3C's sampler on diffusers' stock eager
``CosmosTransformer3DModel`` (default attention, no gen3c speed setting: the baseline); a
preset name (``exact``, ``fast``, ``fastest``, :data:`gen3c.pipelines.presets.SPEED_PRESETS`);
or a preset with overrides, e.g. ``exact guidance_batch=1`` or ``fast step_cache=fbc:0.1``; and
``fp8_weights=1``: the DiT's weights stored in float8, as ``gen3c generate --fp8`` (and
``--low_memory``) store them.
Every row makes the same video from the same inputs and seed: a procedural scene
(:mod:`gen3c.scenes`) lifted into the 3D cache, rendered along the case's camera preset
(``render``: the cache kept on the CPU, splatted on the GPU that samples, the renders left there
in the resident memory plan, as ``gen3c generate`` does), encoded by the tokenizer
(``encode``), sampled (``sample``) and decoded (``decode``); T5 is not needed (the empty
prompt and the default negative prompt come from the prompt cache). Columns: seconds per stage and in total, DiT forwards (batch-1 equivalents:
a batch-2 forward counts 2), self-attention evaluations of the last block (what step caching
leaves to compute; "—" under ``--compile``, whose graphs hide the hooks), peak GPU memory
(``torch.cuda.max_memory_allocated`` over the row), and PSNR / SSIM of the decoded video against
the ``exact`` row's (``--reference_row``; frames in [0, 1], all frames, PSNR of the mean squared
error pooled over the cases; "∞": identical).

Three sizes:

- default (``--device cuda``): GEN3C-Cosmos-7B with *random* bf16 weights, one 121-frame
  704×1280 chunk, DiT and tokenizer resident. Random weights make meaningless videos: PSNR
  against exact is then only a consistency measure of the approximations (their fidelity on
  the real 7B can only be estimated from the small model's); the adaptive caches (fbc,
  magcache) also skip differently than on trained weights.
- ``--model tiny``: the shipped small model (trained) on the evaluation's held-out scenes
  (``--cases``, default the 8 of ``gen3c eval --presets left,zoom_in``) at 64×112, 17 frames:
  fidelity of a trained model (CPU, a few minutes).
- ``--tiny``: a tiny random model, one 17-frame 64×112 case: a CPU smoke test of the script.

To fit a GPU time limit, rows named in ``--extrapolate`` (default ``stock``) run only
``--probe_steps`` sampler steps of a schedule of that length; their sample time is the median
step time (first step excluded) × their full step count, marked "(extrapolated)", with no
fidelity. The reference row (``--reference_row``) runs in full and first, whatever its place
in ``--rows``, after one untimed one-step video (so the first row timed does not pay the
process's first render, encode and decode); ``--reference FILE`` stores its latents (or, when
the row is not run, loads them), so rows can be split over several runs.

    python benchmarks/bench_video.py --device cuda --json video.json --markdown video.md
    python benchmarks/bench_video.py --model tiny
    python benchmarks/bench_video.py --tiny
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench_common import check_writable, device_or_exit, run, write_json  # noqa: E402
from bench_dit import build_module, sync  # noqa: E402

from gen3c.io.atomic import write_text_atomic  # noqa: E402
from gen3c.models import configs  # noqa: E402
from gen3c.models.packaged import PACKAGED_MODELS  # noqa: E402
from gen3c.pipelines.presets import SPEED_PRESETS, SpeedPreset, forwards_per_video, speed_settings  # noqa: E402

GiB = 2**30


# -- rows ---------------------------------------------------------------------------------------


def row_label(text: str) -> str:
    """A row's label: its words, one space apart (as ``--reference_row`` and ``--extrapolate`` name it)."""
    return " ".join(text.split())


class Row(NamedTuple):
    label: str
    settings: SpeedPreset | None  # None: the stock row
    fp8_weights: bool = False  # the DiT's weights stored in float8 (``gen3c generate --fp8``)


def parse_row(text: str) -> Row:
    """``stock`` → (stock, None); ``fast step_cache=fbc guidance_batch=1 fp8_weights=1`` → (label, settings, True).

    Raises:
        argparse.ArgumentTypeError: not a row.
    """
    from gen3c.errors import Gen3cInputError

    words = text.split()
    if not words:
        raise argparse.ArgumentTypeError("empty row in --rows")
    if words[0] == "stock":
        if len(words) > 1:
            raise argparse.ArgumentTypeError("the stock row takes no overrides")
        return Row("stock", None)
    if words[0] not in SPEED_PRESETS:
        raise argparse.ArgumentTypeError(f"unknown row {words[0]!r}: stock or one of {', '.join(SPEED_PRESETS)}")
    fields = {f.name: f.type for f in dataclasses.fields(SpeedPreset)} | {"fp8_weights": "bool"}
    overrides = {}
    for word in words[1:]:
        key, _, value = word.partition("=")
        if key not in fields:
            raise argparse.ArgumentTypeError(f"row {text!r}: {key!r} is not a speed setting or fp8_weights ({', '.join(fields)})")
        kind = str(fields[key])
        try:
            if "bool" in kind:
                if value.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                    raise ValueError(f"{key}={value} is not a yes/no value (1 or 0)")
                overrides[key] = value.lower() in ("1", "true", "yes", "on")
            elif "int" in kind:
                overrides[key] = int(value)
            else:
                overrides[key] = None if value in ("", "none", "None") and key == "attention_backend" else value
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"row {text!r}: {exc}") from None
    fp8_weights = overrides.pop("fp8_weights", False)
    try:
        return Row(row_label(text), speed_settings(words[0], **overrides), fp8_weights)
    except Gen3cInputError as exc:
        raise argparse.ArgumentTypeError(f"row {text!r}: {exc}") from None


def parse_rows(text: str) -> list[Row]:
    """``--rows``: ';'-separated rows (:func:`parse_row`)."""
    rows = [parse_row(r) for r in text.split(";") if r.strip()]
    if not rows:
        raise argparse.ArgumentTypeError("no rows")
    labels = [row.label for row in rows]
    twice = next((label for label in labels if labels.count(label) > 1), None)
    if twice is not None:  # the table and the JSON key rows by label: the second run would replace the first
        raise argparse.ArgumentTypeError(f"row {twice!r} is given twice: list each row once")
    return rows


def parse_cases(text: str) -> list[str]:
    """``--cases``: comma-separated SCENE-PRESET names of the evaluation's grid."""
    from gen3c.evaluation.suite import PRESETS, SCENES

    names = [c.strip() for c in text.split(",") if c.strip()]
    for name in names:
        scene, _, preset = name.partition("-")
        if scene not in SCENES or preset not in PRESETS:
            raise argparse.ArgumentTypeError(f"case {name!r}: SCENE-PRESET with SCENE one of {', '.join(SCENES)} and PRESET one of {', '.join(PRESETS)}")
    return names


def row_steps(settings: SpeedPreset | None) -> int:
    return configs.NUM_STEPS if settings is None else settings.num_steps


# -- the model ----------------------------------------------------------------------------------


class Models:
    """The tokenizer and prompt cache shared by every row, and a fresh DiT per row (the same
    random weights each time, or the shipped model's)."""

    def __init__(self, args, device: torch.device) -> None:
        from diffusers import AutoencoderKLCosmos

        from gen3c.models.prompt_cache import PromptEmbeddingCache

        self.args, self.device = args, device
        self.dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}.get(
            args.dtype, torch.float32 if (args.tiny or args.model) else torch.bfloat16
        )
        self.tcfg = configs.TRANSFORMER_TINY if args.tiny else configs.TRANSFORMER_7B
        if args.model:
            from gen3c.models.packaged import packaged_model_dir
            from gen3c.pipelines.loading import load_pipeline

            self.checkpoint = packaged_model_dir(args.model)
            shipped = load_pipeline(self.checkpoint, dtype=self.dtype)
            self.vae, self.prompt_cache = shipped.vae.to(device), shipped.prompt_cache
            self._shipped_state = {k: v.clone() for k, v in shipped.transformer.state_dict().items()}
            self.tcfg = dict(shipped.transformer.config)
            return
        self.checkpoint = None
        make_on = device if device.type == "cuda" else torch.device("cpu")
        torch.manual_seed(1)
        self.vae = build_module(AutoencoderKLCosmos, configs.VAE_TINY if args.tiny else configs.VAE_CV8X8X8, make_on, self.dtype).to(device)
        g = torch.Generator().manual_seed(0)
        dim = self.tcfg["text_embed_dim"]
        self.prompt_cache = PromptEmbeddingCache.from_embeddings(
            {p: torch.randn(configs.MAX_SEQUENCE_LENGTH, dim, generator=g) * 0.1 for p in ("", configs.DEFAULT_NEGATIVE_PROMPT)}
        )

    def transformer(self):
        from diffusers import CosmosTransformer3DModel

        if self.args.model:
            model = CosmosTransformer3DModel.from_config(self.tcfg)
            model.load_state_dict(self._shipped_state)
            return model.to(self.device, self.dtype).eval()
        torch.manual_seed(0)  # the same random weights for every row
        make_on = self.device if self.device.type == "cuda" else torch.device("cpu")
        return build_module(CosmosTransformer3DModel, self.tcfg, make_on, self.dtype).to(self.device)

    def pipeline(self, settings: SpeedPreset | None, fp8_weights: bool = False):
        """A pipeline with a fresh DiT: stock (``settings`` None) or with ``settings`` applied as
        :func:`gen3c.pipelines.loading.load_generator` applies them; ``fp8_weights``: the DiT's
        weights stored in float8 (as ``--fp8``)."""
        from diffusers import EDMEulerScheduler

        from gen3c.models.memory import memory_plan
        from gen3c.pipelines.gen3c import Gen3cPipeline
        from gen3c.pipelines.loading import apply_speed_settings

        transformer = self.transformer()
        pipe = Gen3cPipeline(transformer, self.vae, EDMEulerScheduler(**configs.SCHEDULER_GEN3C), prompt_cache=self.prompt_cache)
        pipe.configure_memory(memory_plan("resident", fp8=fp8_weights, vae_chunk_frames=self.args.vae_chunk_frames), self.device)
        pipe.set_progress_bar_config(disable=True)
        if settings is not None:
            apply_speed_settings(pipe, settings, self.checkpoint)
        return pipe


# -- the inputs ---------------------------------------------------------------------------------


def make_cases(args, device: torch.device) -> list[tuple[str, object, object]]:
    """(name, source view, cameras) per case; the scene is ray-cast on ``device``."""
    from gen3c.evaluation.suite import HELD_OUT_SEEDS, PRESETS, SCENES, BenchmarkConfig, Case
    from gen3c.pipelines.camera_video import SourceView, preset_cameras
    from gen3c.scenes import make_scene, render, source_camera

    config = BenchmarkConfig(resolution=(args.height, args.width), num_frames=args.frames)
    names = args.cases
    out = []
    for name in names:
        scene_name, _, preset = name.partition("-")
        seed = HELD_OUT_SEEDS[SCENES.index(scene_name) * len(PRESETS) + PRESETS.index(preset)]
        case = Case(scene_name, preset, seed)
        cam = source_camera(args.height, args.width, config.fov_degrees)
        src = render(make_scene(case.scene, case.seed), cam.to(device))
        hit = src.mask[0].cpu()
        depth = torch.where(hit, src.depth[0].cpu(), torch.zeros_like(src.depth[0].cpu())).float()
        source = SourceView(image=src.rgb[0].cpu().float(), depth=depth, K=cam.K[0], w2c=torch.eye(4), valid=hit)
        cameras = preset_cameras(source, preset, config.camera_rotation, args.frames, config.movement_distance, config.trajectory_scale)
        out.append((case.name, source, cameras))  # on the CPU, where `gen3c generate` keeps the cache
    return out


# -- one row ------------------------------------------------------------------------------------


class Counter:
    """DiT forwards (× batch) and the last block's self-attention evaluations (× batch)."""

    def __init__(self, transformer, count_attention: bool) -> None:
        self.forwards = self.attention = 0
        self.handles = [transformer.register_forward_pre_hook(self._forward, with_kwargs=True)]
        if count_attention:
            to_q = transformer.transformer_blocks[-1].attn1.to_q
            self.handles.append(to_q.register_forward_pre_hook(self._attention))
        self.count_attention = count_attention

    def _forward(self, module, args, kwargs):
        self.forwards += kwargs["hidden_states"].shape[0]

    def _attention(self, module, args):
        self.attention += args[0].shape[0]

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def warm_up(pipe, device: torch.device, latent_shape, batch_sizes, steps: int) -> None:
    """One DiT forward per batch size the row uses, with the pipeline's input shapes and its step
    cache's hooks in place (so a ``--compile`` row compiles its graphs here, not while timed)."""
    from gen3c.schedulers import sampler_name

    T, h, w = latent_shape
    extra = pipe.transformer.config.in_channels - 16
    dtype = pipe.transformer_dtype
    cache = pipe.step_cache
    if cache is not None:
        cache.begin(pipe.transformer, steps, sampler_name(pipe.scheduler))
    try:
        for b in batch_sizes:
            with torch.no_grad(), pipe._branch("cond" if b == 1 else "cfg"):
                pipe.transformer(
                    hidden_states=torch.zeros(b, 16, T, h, w, device=device, dtype=dtype),
                    timestep=torch.zeros(b, device=device, dtype=dtype),
                    encoder_hidden_states=torch.zeros(b, configs.MAX_SEQUENCE_LENGTH, pipe.transformer.config.text_embed_dim, device=device, dtype=dtype),
                    fps=configs.FPS, condition_mask=torch.zeros(b, extra, T, h, w, device=device, dtype=dtype),
                    padding_mask=torch.zeros(1, 1, h, w, device=device, dtype=dtype), return_dict=False,
                )  # fmt: skip
    finally:
        if cache is not None:
            cache.end()
    sync(device)


def run_case(pipe, settings: SpeedPreset | None, source, cameras, device: torch.device, steps: int) -> dict:
    """One video: stage times, per-step times and the decoded frames / clean latents."""
    from gen3c.pipelines.camera_video import build_cache
    from gen3c.pipelines.gen3c import Gen3cGenerator

    marks: dict[str, float] = {}
    step_marks: list[float] = []
    original_denoise = pipe.denoise
    kept: dict[str, torch.Tensor] = {}

    def timed_denoise(*a, **k):
        sync(device)
        marks["encoded"] = time.perf_counter()
        out = original_denoise(*a, **k)
        sync(device)
        marks["sampled"] = time.perf_counter()
        kept["latents"] = out.detach().float().cpu()
        return out

    def on_step(i, sigma, latents):
        sync(device)
        step_marks.append(time.perf_counter())

    sync(device)
    start = time.perf_counter()
    cache = build_cache([source])
    generator = Gen3cGenerator(pipe)
    buffers = cache.render(cameras, depth=False, device=generator.render_device, output_device=generator.render_output_device)
    sync(device)
    marks["rendered"] = time.perf_counter()
    pipe.denoise = timed_denoise
    try:
        frames = pipe(
            image=source.image, buffer_colors=buffers.colors, buffer_masks=buffers.masks, seed=1, num_steps=steps,
            guidance=1.0, guidance_every=1 if settings is None else settings.guidance_every,
            guidance_batch=False if settings is None else settings.guidance_batch, callback=on_step,
        ).frames  # fmt: skip
    finally:
        del pipe.denoise
    sync(device)
    end = time.perf_counter()
    steps_s = [b - a for a, b in zip([marks["encoded"], *step_marks[:-1]], step_marks, strict=True)]
    return {
        "render_s": marks["rendered"] - start,
        "encode_s": marks["encoded"] - marks["rendered"],
        "sample_s": marks["sampled"] - marks["encoded"],
        "decode_s": end - marks["sampled"],
        "step_s": steps_s,
        "frames": frames,
        "latents": kept["latents"],
    }


def fidelity(frames: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """MSE (on [0, 1]) and mean SSIM of a (T, 3, H, W) video against the reference, all frames."""
    from gen3c.evaluation import metrics

    mse = metrics.squared_error_map(frames, reference).mean().item()
    ssim = float(torch.cat([metrics.ssim(frames[i : i + 8], reference[i : i + 8]) for i in range(0, len(frames), 8)]).mean())
    return mse, ssim


def psnr_db(mse: float) -> float:
    from gen3c.evaluation import metrics

    return float(metrics.psnr_from_mse(mse))


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--tiny", action="store_true", help="tiny random model, one 17-frame 64x112 case (CPU smoke test)")
    size.add_argument("--model", default=None, choices=PACKAGED_MODELS, help="a shipped model ('tiny'): real fidelity on the evaluation's scenes")
    parser.add_argument("--rows", type=parse_rows, default="stock;exact;fast;fastest", help="';'-separated rows (see the module docstring)")
    parser.add_argument("--extrapolate", default=None, help="comma-separated row labels timed on --probe_steps steps only (default: stock; 'none': no row)")
    parser.add_argument("--probe_steps", type=int, default=3, help="steps of an extrapolated row (the first is not timed)")
    parser.add_argument("--cases", type=parse_cases, default=None, help="comma-separated SCENE-PRESET cases (default: room-left; --model: 8 cases)")
    parser.add_argument("--vae_chunk_frames", type=int, default=None, help="tokenizer chunk in latent frames (default: whole video)")
    parser.add_argument("--reference_row", type=row_label, default="exact", help="the row the others' videos are compared with")
    parser.add_argument("--reference", type=Path, default=None, help="the reference row's latents: written when it runs, else read")
    parser.add_argument(
        "--dtype", choices=("bfloat16", "float32"), default=None,
        help="weights' dtype (default: float32 for --tiny/--model, as the shipped models run; bfloat16 for the 7B)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table as markdown rows here")
    args = parser.parse_args(argv)
    if args.probe_steps < 2:
        parser.error("--probe_steps must be at least 2 (the first step is not timed)")
    labels = [row.label for row in args.rows]
    if args.extrapolate is None:
        args.extrapolate = {"stock"}
    else:
        args.extrapolate = {row_label(r) for r in args.extrapolate.split(",") if r.strip()} - {"none"}
        unknown = sorted(args.extrapolate - set(labels))
        if unknown:
            parser.error(f"--extrapolate {', '.join(unknown)}: not a row of --rows ({'; '.join(labels)}); 'none' extrapolates no row")
    if args.cases is None:
        args.cases = [f"{s}-{p}" for s in ("room", "corridor", "street", "objects") for p in ("left", "zoom_in")] if args.model else ["room-left"]
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = device_or_exit(args.device, full_size=not (args.tiny or args.model))
    rows, extrapolated = args.rows, args.extrapolate
    runs_reference = any(row.label == args.reference_row and row.label not in extrapolated for row in rows)
    if args.reference is not None and not runs_reference and not args.reference.is_file():
        raise SystemExit(f"--reference {args.reference} does not exist and the {args.reference_row!r} row is not run in full here: "
                         "run it (add it to --rows) to write that file")  # fmt: skip
    check_writable(args.json, args.markdown, args.reference if runs_reference else None)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    if args.tiny or args.model:
        args.frames, args.height, args.width = 17, 64, 112
    else:
        args.frames, (args.height, args.width) = configs.CHUNK_FRAMES, configs.RESOLUTION

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    what = ("tiny random model" if args.tiny else f"shipped model '{args.model}'" if args.model
            else "GEN3C-Cosmos-7B, random bf16 weights")  # fmt: skip
    print(f"device: {device_name} | {what} | {args.frames} frames {args.height}x{args.width} | cases: {','.join(args.cases)}", flush=True)
    models = Models(args, device)
    print(f"weights and activations in {str(models.dtype).removeprefix('torch.')}", flush=True)
    cases = make_cases(args, device)
    latent_shape = ((args.frames - 1) // 8 + 1, args.height // 8, args.width // 8)
    reference: dict[str, torch.Tensor] = {}
    if args.reference is not None and args.reference.is_file() and not runs_reference:
        from safetensors.torch import load_file

        latents = load_file(str(args.reference))
        with torch.no_grad():
            from gen3c.models.tokenizer import decode_latents

            for name, lat in latents.items():
                video = decode_latents(models.vae, lat.to(device), sigma_data=0.5)
                reference[name] = video[0].permute(1, 0, 2, 3).float().clamp(-1, 1).cpu()
        print(f"reference: the {args.reference_row!r} row's latents from {args.reference}", flush=True)

    if not reference and not runs_reference:
        print(f"(no {args.reference_row!r} row runs in full and no --reference file: no PSNR / SSIM column)", flush=True)
    # The reference row runs first, so that every row is compared with it; the table keeps --rows' order.
    order = sorted(rows, key=lambda row: not (row[0] == args.reference_row and row[0] not in extrapolated))
    results = {}
    warmed = False
    for label, settings, fp8_weights in order:
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        full_steps = row_steps(settings)
        probe = label in extrapolated
        steps = args.probe_steps if probe else full_steps
        print(f"[{label}] building…", flush=True)
        pipe = models.pipeline(settings, fp8_weights)
        uses_batch2 = settings is not None and settings.guidance_batch
        batch_sizes = [2] if uses_batch2 and settings.guidance_every == 1 else [1, 2] if uses_batch2 else [1]
        counter, per_case, saved = None, [], {}
        try:
            warm_up(pipe, device, latent_shape, batch_sizes, steps)
            if not warmed:
                # One untimed one-step video, so that the first row does not pay for every row the
                # process's first render, tokenizer encode and decode (kernel selection, lazy set-up).
                run_case(pipe, settings, *cases[0][1:], device, 1)
                warmed = True
            counter = Counter(pipe.transformer, count_attention=not (settings is not None and settings.compile))
            for name, source, cameras in cases:
                run = run_case(pipe, settings, source, cameras, device, steps)
                print(f"[{label}] {name}: {sum(run[k] for k in ('render_s', 'encode_s', 'sample_s', 'decode_s')):.1f} s", flush=True)
                if probe:
                    run["sample_s"] = statistics.median(run["step_s"][1:]) * full_steps
                if label == args.reference_row and not probe:
                    reference[name] = run["frames"]
                    saved[name] = run["latents"]
                mse, ssim = fidelity(run["frames"], reference[name]) if name in reference and not probe else (None, None)
                per_case.append({**{k: v for k, v in run.items() if k.endswith("_s") and k != "step_s"},
                                 "mse": mse, "psnr": None if mse is None else psnr_db(mse), "ssim": ssim})  # fmt: skip
        except torch.OutOfMemoryError as exc:
            print(f"[{label}] out of memory: {str(exc).splitlines()[0]}", flush=True)
            results[label] = {"row": label, "error": "out of memory"}
            if counter is not None:
                counter.close()
            del pipe
            continue
        counter.close()
        if saved and args.reference is not None:
            from safetensors.torch import save_file

            from gen3c.io.atomic import atomic_path

            with atomic_path(args.reference) as tmp:
                save_file({k: v.contiguous() for k, v in saved.items()}, str(tmp))
        n = len(cases)
        scored = [c for c in per_case if c["mse"] is not None]
        result = {
            "row": label,
            "settings": None if settings is None else dataclasses.asdict(settings),
            "fp8_weights": fp8_weights,
            "extrapolated_from_steps": steps if probe else None,
            **{k: sum(c[k] for c in per_case) / n for k in ("render_s", "encode_s", "sample_s", "decode_s")},
            "forwards": counter.forwards / n * (full_steps / steps if probe else 1),
            "forwards_planned": forwards_per_video(settings or speed_settings("exact")),
            "attention_evals": counter.attention / n * (full_steps / steps if probe else 1) if counter.count_attention else None,
            "peak_gb": torch.cuda.max_memory_allocated(device) / GiB if device.type == "cuda" else None,
            # PSNR of the mean squared error over all cases' frames (pooled), SSIM the mean.
            "psnr_vs_reference": psnr_db(sum(c["mse"] for c in scored) / len(scored)) if scored else None,
            "ssim_vs_reference": sum(c["ssim"] for c in scored) / len(scored) if scored else None,
            "cases": per_case,
        }  # fmt: skip
        result["total_s"] = sum(result[k] for k in ("render_s", "encode_s", "sample_s", "decode_s"))
        results[label] = result
        print(f"[{label}] total {result['total_s']:.1f} s (sample {result['sample_s']:.1f} s), forwards {result['forwards']:.0f}, "
              f"PSNR {fmt(result['psnr_vs_reference'], '.2f')} dB", flush=True)  # fmt: skip
        del pipe
    results = [results[row.label] for row in rows if row.label in results]
    summary = {"device": device_name, "torch": torch.__version__, "model": what,
               "video": f"{args.frames} frames {args.height}x{args.width}", "cases": ",".join(args.cases), "rows": results}  # fmt: skip
    table = markdown_table(results, args.reference_row)
    print()
    print(f"{what} — {summary['video']} — {device_name}, torch {torch.__version__}; seconds per video (mean over {len(cases)} case(s))")
    print(table)
    if args.json:
        write_json(args.json, summary)
    if args.markdown:
        write_text_atomic(args.markdown, table + "\n")
    return summary


def fmt(value, spec: str = ".1f", missing: str = "—") -> str:
    if value is None:
        return missing
    if value == float("inf"):
        return "∞"
    return format(value, spec)


def markdown_table(results: list[dict], reference_row: str = "exact") -> str:
    head = ["row", "render s", "encode s", "sample s", "decode s", "total s", "× stock", "forwards", "self-attn evals",
            "peak GB", f"PSNR vs {reference_row} dB", f"SSIM vs {reference_row}"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    stock = next((r["total_s"] for r in results if r["row"] == "stock" and "total_s" in r), None)
    for r in results:
        if "error" in r:
            lines.append(f"| {r['row']} | {r['error']} |" + " |" * (len(head) - 2))
            continue
        sample = fmt(r["sample_s"]) + (f" (extrapolated from {r['extrapolated_from_steps']} steps)" if r["extrapolated_from_steps"] else "")
        cells = [r["row"], fmt(r["render_s"], ".2f"), fmt(r["encode_s"]), sample, fmt(r["decode_s"]), fmt(r["total_s"]),
                 fmt(stock / r["total_s"] if stock else None, ".2f"), fmt(r["forwards"], ".0f"), fmt(r["attention_evals"], ".0f"),
                 fmt(r["peak_gb"]), fmt(r["psnr_vs_reference"], ".2f"), fmt(r["ssim_vs_reference"], ".4f")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    run(main)
