"""Seconds per video: a GEN3C teacher against its distilled students, in one run.

Every model makes the same videos — held-out benchmark cases (``gen3c eval``'s seeds), GEN3C's
default cache, each model with its own step count and guidance (``gen3c_model.json``) — and the
runs are interleaved (teacher, student, teacher, …) so that a machine shared with other jobs
slows them alike. Rows: DiT forwards per video (counted with a hook), median seconds per video
(the whole generation: tokenizer encoding, sampling, decoding), the sampling loop alone (the time
between sampler-step callbacks, × steps / (steps − 1)), and the speed-ups against the teacher.
Not a test.

    python benchmarks/bench_distill.py --teacher tiny --students tiny_fast --resolution 64x112
    python benchmarks/bench_distill.py --teacher CKPT_7B --students runs/distill_7b/model --device cuda \\
        --resolution 704x1280 --frames 121
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import device_or_exit, resolution, run  # noqa: E402
from bench_dit import sync  # noqa: E402

from gen3c.evaluation.suite import BenchmarkConfig, benchmark_cases, render_ground_truth  # noqa: E402
from gen3c.io.resolution import parse_resolution  # noqa: E402
from gen3c.models.packaged import PACKAGED_MODELS  # noqa: E402
from gen3c.pipelines.camera_video import build_cache  # noqa: E402
from gen3c.pipelines.loading import generator_from_options  # noqa: E402


def load(entry: str, device: str):
    where = {"model": entry} if entry in PACKAGED_MODELS else {"checkpoint_dir": entry}
    return generator_from_options({**where, "device": device})


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="tiny", help="packaged model name or checkpoint folder")
    parser.add_argument("--students", default="tiny_fast", help="comma-separated packaged names or checkpoint folders")
    parser.add_argument("--resolution", type=resolution, default="64x112")
    parser.add_argument("--frames", type=int, default=None, help="frames per video: the models' chunk (default: the teacher's)")
    parser.add_argument("--cases", type=int, default=2, help="held-out cases (scene-major, presets left and zoom_in)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.cases < 1 or args.repeats < 1:
        parser.error("--cases and --repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = device_or_exit(args.device, smoke_flag="--device cpu")
    names = [args.teacher, *[s for s in args.students.split(",") if s]]
    models = {name: load(name, args.device) for name in names}
    teacher = models[args.teacher]
    frames = args.frames or teacher.chunk_frames
    for name, model in models.items():  # generate() makes one chunk
        if frames != model.chunk_frames:
            raise SystemExit(f"--frames {frames}: {name} makes videos of one {model.chunk_frames}-frame chunk: "
                             f"pass --frames {model.chunk_frames}{' or leave it out' if model is teacher else ''}")  # fmt: skip
    config = BenchmarkConfig(presets=("left", "zoom_in"), resolution=parse_resolution(args.resolution), num_frames=frames)
    work = []
    for case in benchmark_cases(config)[: args.cases]:
        truth = render_ground_truth(case, config, args.device)
        cache = build_cache([truth.source], 0.05, False)
        work.append((truth.source.image, cache.render(truth.cameras, depth=False)))

    forwards: dict[str, int] = {}
    seconds: dict[str, list[float]] = {n: [] for n in names}
    sampling: dict[str, list[float]] = {n: [] for n in names}
    for name, model in models.items():  # warm-up and forward counts
        calls = []
        hook = model.pipeline.transformer.register_forward_pre_hook(lambda *a, calls=calls: calls.append(1))
        model.generate(None, None, work[0][0], buffers=work[0][1], progress=lambda f: None)
        hook.remove()
        forwards[name] = len(calls)
    for _ in range(args.repeats):
        for name, model in models.items():
            for image, buffers in work:
                marks = []

                def step_done(fraction: float, marks: list[float] = marks) -> None:
                    sync(device)  # the step's kernels have finished, not only been queued
                    marks.append(time.perf_counter())

                sync(device)
                t0 = time.perf_counter()
                model.generate(None, None, image, buffers=buffers, progress=step_done)
                sync(device)
                seconds[name].append(time.perf_counter() - t0)
                steps = len(marks)
                sampling[name].append((marks[-1] - marks[0]) * steps / (steps - 1) if steps > 1 else float("nan"))

    base = statistics.median(seconds[args.teacher])
    base_sampling = statistics.median(sampling[args.teacher])
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{args.resolution}, {frames} frames, {len(work)} cases × {args.repeats} rounds, {device}")
    print("| model | steps × forwards | DiT forwards/video | s/video (median) | sampling s | speed-up | sampling speed-up |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, model in models.items():
        s, smp = statistics.median(seconds[name]), statistics.median(sampling[name])
        per_step = 1 if model.guidance == 0 else 2
        print(f"| {name} | {model.num_steps} × {per_step} | {forwards[name]} | {s:.3f} | {smp:.3f} | {base / s:.2f}× | {base_sampling / smp:.2f}× |")


if __name__ == "__main__":
    run(main)
