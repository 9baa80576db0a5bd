"""Throughput of `gen3c batch` (jobs per minute, preview generator): in this process, 2 local
worker processes, and Ray with 2 actors on a local Ray instance. Prints a table; not a test.

Every engine runs the same manifest (the packaged demo sample along cycling presets) into a
fresh folder; times include starting the workers (processes / actors) but not starting Ray
itself, which a cluster does once. "steady" counts jobs/min between the first and the last job
to finish, i.e. without the start-up.

    OMP_NUM_THREADS=1 python benchmarks/bench_batch.py --jobs 16 --frames 25 --resolution 176x320 --repeats 2

(OMP_NUM_THREADS=1 gives every engine one thread per worker, so the table shows how the engines
scale rather than how torch's threads fight over the cores.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import resolution, run  # noqa: E402

TRAJECTORIES = ("left", "right", "up", "down", "zoom_in", "zoom_out", "clockwise", "counterclockwise")


def write_manifest(folder: Path, jobs: int, frames: int, resolution: str) -> Path:
    assets = resources.files("gen3c") / "assets"
    common = {"input_image_path": str(assets / "demo_image.png"), "depth_path": str(assets / "demo_depth.npz"),
              "intrinsics": str(assets / "demo_camera.json"), "resolution": resolution, "num_video_frames": frames}  # fmt: skip
    rows = [
        {"name": f"job{i:03d}", "trajectory": TRAJECTORIES[i % len(TRAJECTORIES)], **common}
        for i in range(jobs)
    ]
    path = folder / "bench.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def timed(manifest: Path, out: Path, repeats: int, **engine) -> tuple[float, float]:
    """Best jobs/min (overall, steady) of ``repeats`` runs, each into a fresh folder."""
    runs = [_run(manifest, out / str(i), **engine) for i in range(repeats)]
    return max(r[0] for r in runs), max(r[1] for r in runs)


def _run(manifest: Path, out: Path, **engine) -> tuple[float, float]:
    from gen3c.batch import run_batch

    finished: list[float] = []
    start = time.perf_counter()
    summary = run_batch(manifest, out, on_outcome=lambda o: finished.append(time.perf_counter()), **engine)
    total = time.perf_counter() - start
    if summary.counts["done"] != len(summary.outcomes):
        raise SystemExit(f"jobs failed: {[o.error for o in summary.failed][:3]}")
    n = len(finished)
    steady = (
        (n - 1) / (finished[-1] - finished[0]) * 60 if n > 1 and finished[-1] > finished[0] else float("nan")
    )
    return n / total * 60, steady


ENGINES = ("sequential", "processes", "ray")


def engine_list(text: str) -> list[str]:
    """``--engines``: comma-separated names of :data:`ENGINES`."""
    engines = [e.strip() for e in text.split(",") if e.strip()]
    if not engines or set(engines) - set(ENGINES):
        raise argparse.ArgumentTypeError(f"{text!r}: choose among {', '.join(ENGINES)}")
    return engines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--resolution", type=resolution, default="176x320")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs per engine; the best is shown (steadier on a busy machine)",
    )
    parser.add_argument("--engines", type=engine_list, default=",".join(ENGINES), help=f"comma-separated subset of {', '.join(ENGINES)}")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.repeats < 1 or args.workers < 1:
        parser.error("--jobs, --repeats and --workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    engines = args.engines
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = write_manifest(folder, args.jobs, args.frames, args.resolution)
        if "sequential" in engines:
            rows.append(("local, this process", *timed(manifest, folder / "seq", args.repeats)))
        if "processes" in engines:
            rows.append(
                (
                    f"local, {args.workers} processes",
                    *timed(manifest, folder / "proc", args.repeats, workers=args.workers, gpus_per_job=0),
                )
            )
        if "ray" in engines:
            import ray

            ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="ERROR")
            try:
                rows.append(
                    (
                        f"Ray, {args.workers} actors",
                        *timed(
                            manifest,
                            folder / "ray",
                            args.repeats,
                            ray=True,
                            workers=args.workers,
                            gpus_per_job=0,
                        ),
                    )
                )
            finally:
                ray.shutdown()
    base = rows[0][1]
    print(f"device: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {args.jobs} jobs of {args.frames} frames "
          f"at {args.resolution}, preview generator")  # fmt: skip
    print(f"{'engine':<24} {'jobs/min':>9} {'steady jobs/min':>16} {'× first':>8}")
    for name, rate, steady in rows:
        print(f"{name:<24} {rate:9.1f} {steady:16.1f} {rate / base:8.2f}")


if __name__ == "__main__":
    run(main)
