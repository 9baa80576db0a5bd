"""Wall time of `gen3c demo` (the embedded default) as a user runs it: a fresh process each
time, imports and video encoding included. Prints a table; not a test.

    python benchmarks/bench_demo.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resolutions", nargs="+", default=["352x640", "704x1280"])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # Baseline in the same run: the bare interpreter + `import gen3c.cli` start-up cost.
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import gen3c.cli, torch"], check=True)
        startup = time.perf_counter() - start
        for res in args.resolutions:
            times = []
            for i in range(args.repeats):
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "gen3c", "demo", "--video_save_folder", tmp, "--video_save_name", f"d{i}", "--resolution", res],
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                times.append(time.perf_counter() - start)
            rows.append((res, statistics.median(times), min(times)))
    print(f"device: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads default")
    print(f"{'resolution':>12} {'median s':>10} {'min s':>8} {'× start-up':>11}")
    for res, med, best in rows:
        print(f"{res:>12} {med:10.1f} {best:8.1f} {med / startup:11.1f}")
    print(f"{'start-up':>12} {startup:10.1f}")


if __name__ == "__main__":
    main()
