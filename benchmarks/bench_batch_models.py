"""Model loads of `gen3c batch` on a manifest alternating models: the jobs run in manifest order
(what the batch did before it grouped them; the baseline, same process) against `run_batch`,
which runs them grouped by the generator they load. Prints a table; not a test.

The manifest is the packaged demo sample, one job per row, its `model` cycling through
``--models`` (packaged models: ``tiny``, ``tiny_fast``, both run on the CPU in seconds). Both
ways run the same jobs in one worker (this process), each into a fresh folder, after a warm-up
that imports and loads every model once; the videos are checked to be byte-identical.

    python benchmarks/bench_batch_models.py --jobs 6 --models tiny,tiny_fast --repeats 2
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


def write_manifest(folder: Path, jobs: int, models: list[str], frames: int, resolution: str) -> Path:
    assets = resources.files("gen3c") / "assets"
    common = {"input_image_path": str(assets / "demo_image.png"), "depth_path": str(assets / "demo_depth.npz"),
              "intrinsics": str(assets / "demo_camera.json"), "resolution": resolution, "num_video_frames": frames,
              "generator": "gen3c"}  # fmt: skip
    rows = [{"name": f"job{i:03d}", "model": models[i % len(models)], "seed": i, **common} for i in range(jobs)]
    path = folder / "models.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def manifest_order(manifest: Path, out: Path) -> tuple[int, float]:
    """Loads and seconds of the jobs run one after another in manifest order, one worker."""
    from gen3c.batch import load_manifest
    from gen3c.batch.local import run_sequential

    out.mkdir(parents=True)
    start = time.perf_counter()
    outcomes = list(run_sequential(load_manifest(manifest), out))
    seconds = time.perf_counter() - start
    _check_done(outcomes)
    return sum(o.loaded_generator for o in outcomes), seconds


def batch(manifest: Path, out: Path) -> tuple[int, float]:
    """Loads and seconds of ``run_batch`` (grouped by generator), one worker."""
    from gen3c.batch import run_batch

    start = time.perf_counter()
    summary = run_batch(manifest, out)
    seconds = time.perf_counter() - start
    _check_done(summary.outcomes)
    return sum(o.loaded_generator for o in summary.outcomes), seconds


def load_seconds(manifest: Path, repeats: int) -> dict[str, float]:
    """Seconds one load of each model's generator takes (best of ``repeats``): what each load the
    grouping saves costs."""
    from gen3c.batch import load_manifest
    from gen3c.pipelines.request import make_generator

    best: dict[str, float] = {}
    for job in load_manifest(manifest):
        model = job.settings["generator_options"]["model"]
        if model in best:
            continue
        request = job.request(manifest.parent)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            make_generator(request)
            times.append(time.perf_counter() - start)
        best[model] = min(times)
    return best


def _check_done(outcomes) -> None:
    failed = [o.error for o in outcomes if o.state != "done"]
    if failed:
        raise SystemExit(f"jobs failed: {failed[:3]}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--models", default="tiny,tiny_fast", help="comma-separated packaged models the rows cycle through")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--resolution", type=resolution, default="64x112")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each way; the fastest is shown")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.jobs < 1 or args.repeats < 1 or not args.models:
        parser.error("--jobs and --repeats must be at least 1, --models must name a model")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifest = write_manifest(folder, args.jobs, args.models, args.frames, args.resolution)
        # Warm-up: imports and a first load of each model (file cache), counted by neither row.
        (folder / "warm").mkdir()
        manifest_order(write_manifest(folder / "warm", len(args.models), args.models, args.frames, args.resolution), folder / "warm" / "out")
        rows = {"manifest order (before)": [], "gen3c batch, grouped": []}
        for i in range(args.repeats):  # interleaved, so a change in the machine's load hits both
            rows["manifest order (before)"].append(manifest_order(manifest, folder / f"ordered{i}"))
            rows["gen3c batch, grouped"].append(batch(manifest, folder / f"grouped{i}"))
        per_load = load_seconds(manifest, max(3, args.repeats))
        for job in range(args.jobs):
            name = f"job{job:03d}.mp4"
            if (folder / "ordered0" / name).read_bytes() != (folder / "grouped0" / name).read_bytes():
                raise SystemExit(f"{name} differs between the two orders")
    print(f"device: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads {__import__('torch').get_num_threads()}; "
          f"{args.jobs} jobs cycling {', '.join(args.models)}, {args.frames} frames at {args.resolution}; one worker; videos identical")  # fmt: skip
    base = min(s for _, s in rows["manifest order (before)"])
    print(f"{'order':<26} {'model loads':>11} {'seconds (best)':>15} {'× before':>9}")
    for name, runs in rows.items():
        loads, seconds = runs[0][0], min(s for _, s in runs)
        print(f"{name:<26} {loads:11d} {seconds:15.2f} {seconds / base:9.2f}")
    print("one load (best of 3): " + ", ".join(f"{model} {seconds:.3f} s" for model, seconds in per_load.items()))


if __name__ == "__main__":
    run(main)
