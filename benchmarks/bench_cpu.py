"""Where a CPU run's time goes, stage by stage: `gen3c demo` (the preview generator) and `gen3c
generate` with the shipped small models (`--model tiny`, 35 steps × 2 forwards; `--model
tiny_fast`, its 5-step student), each a fresh process as a user runs it. Prints a table; not a test.

    OMP_NUM_THREADS=2 python benchmarks/bench_cpu.py --repeats 3 --baseline_commit f35ded7

Each run is ``python -m gen3c …`` in a child process whose functions are timed from outside: the
child wraps ``builtins.__import__`` and, as the modules load, the functions of each stage (nothing
in ``src/`` knows about it). A stage's time is its own: a stage that runs inside another (the DiT
inside the sampler, imports inside model loading) is taken out of the outer one. "other" is the
rest of the process (the interpreter's start and exit, argument parsing, checks). "CPU s" is the user +
system time of the process and its ffmpeg.

With ``--baseline_commit`` the same runs are made with that commit's ``src/`` (``git archive``,
nothing checked out), interleaved (baseline, this tree, baseline, …) so that the load of a shared
machine slows both alike; the two versions' videos are compared frame by frame (decoded).

On a GPU host the same script times the GPU path (``--workloads tiny gen3c_7b``; ``gen3c_7b`` is
GEN3C-7B at 704×1280, its weights fetched on first use). There a forward returns before the GPU
has finished, so the DiT's time shows partly under "sampler"; their sum and the wall are exact.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import time

# -- the child: one timed `python -m gen3c …` (stdlib only up to the command's own imports) -----

#: module → (attribute path, stage) timed once the module has loaded.
STAGE_FUNCTIONS = {
    "gen3c.scenes": [("load_demo_sample", "input, depth, cache")],
    "gen3c.pipelines.request": [("load_scene", "input, depth, cache"), ("make_generator", "model load")],
    "gen3c.pipelines.camera_video": [
        ("prepare_source", "input, depth, cache"),
        ("OutputWriter.write", "video write"),
        ("OutputWriter.finish", "video write"),
    ],
    "gen3c.cache": [("Cache3D.render", "cache render")],
    "gen3c.pipelines.preview": [("PreviewGenerator.generate", "preview generator")],
    "gen3c.pipelines.gen3c": [
        ("Gen3cPipeline.encode_conditions", "tokenizer encode"),
        ("Gen3cPipeline.denoise", "sampler (outside the DiT)"),
        ("decode_latents", "tokenizer decode"),
    ],
    "diffusers.models.transformers.transformer_cosmos": [("CosmosTransformer3DModel.forward", "DiT forwards")],
}
STAGES = [
    "imports", "input, depth, cache", "model load", "cache render", "preview generator", "tokenizer encode",
    "DiT forwards", "sampler (outside the DiT)", "tokenizer decode", "video write", "other",
]  # fmt: skip


class StageClock:
    """Exclusive seconds per stage: entering a stage pauses the one it runs in."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.stack: list[list] = []  # [stage, started]

    def enter(self, stage: str) -> None:
        now = time.perf_counter()
        if self.stack:
            outer = self.stack[-1]
            self.seconds[outer[0]] += now - outer[1]
        self.stack.append([stage, now])

    def leave(self) -> None:
        now = time.perf_counter()
        stage, started = self.stack.pop()
        self.seconds[stage] += now - started
        if self.stack:
            self.stack[-1][1] = now


def _timed(clock: StageClock, stage: str, function):
    def timed(*args, **kwargs):
        clock.enter(stage)
        try:
            return function(*args, **kwargs)
        finally:
            clock.leave()

    timed.__wrapped__ = function
    return timed


def _patch_loaded(clock: StageClock, patched: set[str]) -> None:
    for module_name, targets in STAGE_FUNCTIONS.items():
        module = sys.modules.get(module_name)
        if module is None or module_name in patched:
            continue
        patched.add(module_name)
        for path, stage in targets:
            *owner_path, name = path.split(".")
            owner = module
            for part in owner_path:
                owner = getattr(owner, part)
            setattr(owner, name, _timed(clock, stage, getattr(owner, name)))


def child(argv: list[str], report: str) -> None:
    """Run ``gen3c *argv`` here, timing its stages; write them to ``report`` (JSON)."""
    clock, patched, depth = StageClock(), set(), [0]
    real_import = builtins.__import__

    def timed_import(name, globals=None, locals=None, fromlist=(), level=0):
        if depth[0]:
            return real_import(name, globals, locals, fromlist, level)
        depth[0] += 1
        clock.enter("imports")
        try:
            return real_import(name, globals, locals, fromlist, level)
        finally:
            clock.leave()
            depth[0] -= 1
            _patch_loaded(clock, patched)

    builtins.__import__ = timed_import
    from gen3c.cli import main

    sys.argv = ["gen3c", *argv]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
    builtins.__import__ = real_import
    with open(report, "w") as f:
        json.dump({"seconds": clock.seconds}, f)
    sys.exit(code)


# -- the parent: runs, table -----------------------------------------------------------------


def workloads() -> dict[str, list[str]]:
    assets = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "gen3c", "assets")
    image, depth = os.path.join(assets, "demo_image.png"), os.path.join(assets, "demo_depth.npz")
    model = ["generate", "--generator", "gen3c", "--input_image_path", image, "--depth_path", depth, "--fov", "60"]
    return {
        "demo": ["demo"],
        "tiny": [*model, "--model", "tiny"],
        "tiny_fast": [*model, "--model", "tiny_fast"],
        "gen3c_7b": model,  # GEN3C-Cosmos-7B (fetched and converted on first use): for a GPU host
    }


def run_child(src, argv: list[str], folder: str, name: str) -> dict:
    """One timed run in a fresh process with ``src`` first on the path: stage seconds, wall, CPU."""
    import resource
    import subprocess

    report = os.path.join(folder, f"{name}.json")
    here = os.path.dirname(os.path.abspath(__file__))  # the caller's PYTHONPATH stays behind: packages may be on it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(src), here, os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-c", "import sys, bench_cpu; bench_cpu.child(sys.argv[2:], sys.argv[1])", report,
               *argv, "--video_save_folder", folder, "--video_save_name", name]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or not os.path.exists(report):
        last = (done.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
        raise SystemExit(f"gen3c {argv[0]} with {src} failed (exit {done.returncode}): {last}")
    with open(report) as f:
        result = json.load(f)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    seconds = result["seconds"]
    seconds["other"] = wall - sum(t for stage, t in seconds.items() if stage != "other")  # the interpreter's start and exit too
    return {**result, "wall": wall, "cpu": cpu}


def parse_args(argv: list[str] | None = None):
    import argparse

    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workloads", nargs="+", choices=list(workloads()), default=["demo", "tiny", "tiny_fast"])
    parser.add_argument("--baseline_commit", default=None, help="also time this commit's src/, interleaved (e.g. HEAD~3)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    import platform
    import statistics
    import tempfile
    from pathlib import Path

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_demo import REPO, same_video, unpack_src

    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        versions = {"new": REPO / "src"}
        if args.baseline_commit:
            base = Path(tmp) / "baseline"
            base.mkdir()
            versions = {"old": unpack_src(args.baseline_commit, base), **versions}
        runs = {(w, v): [] for w in args.workloads for v in versions}
        commands = workloads()
        for i in range(args.repeats):
            for w in args.workloads:
                for v, src in versions.items():
                    runs[w, v].append(run_child(src, commands[w], tmp, f"{w}_{v}_{i}"))
                    print(f"  {w:9} {v:3} run {i + 1}: {runs[w, v][-1]['wall']:6.1f} s wall", file=sys.stderr, flush=True)
        videos = {w: same_video(*(Path(tmp) / f"{w}_{v}_0.mp4" for v in versions)) for w in args.workloads} if len(versions) == 2 else {}
    import torch

    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(f"device: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, OMP_NUM_THREADS={threads}, "
          f"{args.repeats} runs each, baseline {args.baseline_commit or '(none)'}")  # fmt: skip
    labels = list(versions)
    head = "".join(f" {label + ' s':>9}" for label in labels) + (f" {'ratio':>7}" if len(labels) == 2 else "")
    for w in args.workloads:
        print(f"\n{w}: stage medians over {args.repeats} runs" + (f"; videos old vs new: {videos[w]}" if videos else ""))
        print(f"{'stage':>28}{head}")

        def row(name: str, values: list[float]) -> None:
            ratio = f" {values[0] / values[1]:6.2f}×" if len(values) == 2 and values[1] > 0 else ""
            print(f"{name:>28}" + "".join(f" {x:9.2f}" for x in values) + ratio)

        for stage in STAGES:
            values = [statistics.median(r["seconds"][stage] for r in runs[w, v]) for v in labels]
            if any(x >= 0.005 for x in values):
                row(stage, values)
        row("wall, median", [statistics.median(r["wall"] for r in runs[w, v]) for v in labels])
        row("wall, min", [min(r["wall"] for r in runs[w, v]) for v in labels])
        row("wall, max", [max(r["wall"] for r in runs[w, v]) for v in labels])
        row("CPU s, median", [statistics.median(r["cpu"] for r in runs[w, v]) for v in labels])


if __name__ == "__main__":
    main()
