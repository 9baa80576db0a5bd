"""Wall time of `gen3c demo` (the embedded default) as a user runs it: a fresh process each
time, imports and video encoding included. Prints a table; not a test.

    python benchmarks/bench_demo.py --repeats 3
    python benchmarks/bench_demo.py --repeats 3 --baseline_commit 9da8953

With ``--baseline_commit`` the same runs are made with that commit's ``src/`` (unpacked with
``git archive`` into a temporary folder, nothing checked out), interleaved with this tree's
(baseline, this tree, baseline, …) so that the load of a shared machine slows both alike, and
the table gives the speed-up; the two runs' videos are compared frame by frame (decoded).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_common import child_env, resolution  # noqa: E402


def unpack_src(commit: str, into: Path) -> Path:
    """``src/`` of ``commit`` unpacked under ``into``; returns that ``src`` folder."""
    archive = into / "src.tar"
    with archive.open("wb") as f:
        done = subprocess.run(["git", "-C", str(REPO), "archive", commit, "src"], stdout=f, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"--baseline_commit {commit}: git archive failed: {done.stderr.strip()[:200]}")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def run_demo(src: Path, folder: str, name: str, resolution: str) -> float:
    """Seconds of one `gen3c demo` in a fresh process with ``src`` first on the path."""
    env = child_env(src)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "gen3c", "demo", "--video_save_folder", folder, "--video_save_name", name, "--resolution", resolution],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
        raise SystemExit(f"gen3c demo with {src} at {resolution} failed (exit {done.returncode}): {last}")
    return seconds


def same_video(a: Path, b: Path) -> str:
    """'identical' when the two videos decode to the same frames, else the largest difference."""
    import numpy as np

    from gen3c.io.video import read_video

    fa, fb = read_video(a)[0], read_video(b)[0]
    if fa.shape != fb.shape:
        return f"shapes differ {fa.shape} vs {fb.shape}"
    diff = np.abs(fa.astype(np.int16) - fb.astype(np.int16))
    return "identical" if not diff.any() else f"max |diff| {diff.max()} at {np.count_nonzero(diff)} values"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resolutions", type=resolution, nargs="+", default=["352x640", "704x1280"])
    parser.add_argument("--baseline_commit", default=None, help="also time this commit's src/, interleaved (e.g. HEAD~3)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        versions = {"this tree": REPO / "src"}
        if args.baseline_commit:
            base = Path(tmp) / "baseline"
            base.mkdir()
            versions = {f"baseline {args.baseline_commit}": unpack_src(args.baseline_commit, base), **versions}
        # Baseline in the same run: the bare interpreter + `import gen3c.cli` start-up cost.
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import gen3c.cli, torch"], check=True, env=child_env(REPO / "src"))
        startup = time.perf_counter() - start
        for res in args.resolutions:
            times: dict[str, list[float]] = {label: [] for label in versions}
            for i in range(args.repeats):
                for v, (label, src) in enumerate(versions.items()):
                    times[label].append(run_demo(src, tmp, f"d{v}_{res}_{i}", res))
            check = same_video(*(Path(tmp) / f"d{v}_{res}_0.mp4" for v in range(2))) if len(versions) == 2 else ""
            first = statistics.median(next(iter(times.values())))
            for label, ts in times.items():
                rows.append((res, label, statistics.median(ts), min(ts), first / statistics.median(ts), check if label == "this tree" else ""))
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(f"device: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, OMP_NUM_THREADS={threads}, {args.repeats} runs each")
    print(f"{'resolution':>12} {'version':>22} {'median s':>9} {'min s':>7} {'speed-up':>9} {'× start-up':>11}  videos")
    for res, label, med, best, speedup, check in rows:
        print(f"{res:>12} {label:>22} {med:9.1f} {best:7.1f} {speedup:8.2f}× {med / startup:11.1f}  {check}")
    print(f"{'start-up':>12} {'':>22} {startup:9.1f}")


if __name__ == "__main__":
    main()
