"""Kill a long ``gen3c generate`` run after its first chunk, ``--resume`` it, and compare the
result with an uninterrupted run of the same command (frames and bytes), with the disk the kept
chunks took. Any generator and device; e.g. on a GPU with the real model::

    python benchmarks/resume_check.py --out /tmp/resume -- --input_image_path photo.png \\
        --generator gen3c --checkpoint_dir CKPT --num_video_frames 241

On a GPU, kernels that are not deterministic make two *uninterrupted* runs differ too; the
script then also reports how much two uninterrupted runs differ (``--twice``), which is the
bar a resumed run is held to.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from gen3c.io.video import read_video
from gen3c.pipelines.resume import partial_dir

#: What this script writes under --out, the only things it empties there.
OWN = ("whole", "again", "killed")


def run(args: list[str], folder: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gen3c", "generate", *args, "--video_save_folder", str(folder)])
    if done.returncode != 0:
        sys.exit(f"gen3c generate failed (exit {done.returncode}); its error is above")
    return time.perf_counter() - started


def differences(a: np.ndarray, b: np.ndarray) -> str:
    """Whether two decoded videos have the same frames, and their largest difference."""
    if a.shape != b.shape:
        return f"frames identical False (shapes {a.shape} and {b.shape})"
    return f"frames identical {np.array_equal(a, b)}, max |diff| {np.abs(a.astype(int) - b).max()}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="scratch folder (emptied first)")
    parser.add_argument("--twice", action="store_true", help="also run the uninterrupted command a second time")
    parser.add_argument("generate_args", nargs=argparse.REMAINDER, help="-- then the arguments of gen3c generate")
    opts = parser.parse_args(argv)
    if "--video_save_folder" in opts.generate_args or "--resume" in opts.generate_args:
        parser.error("leave --video_save_folder and --resume out of the gen3c generate arguments: this script sets them")
    return opts


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    args = [a for a in opts.generate_args if a != "--"]
    name = args[args.index("--video_save_name") + 1] if "--video_save_name" in args else "output"
    foreign = sorted(p.name for p in opts.out.iterdir() if p.name not in OWN) if opts.out.is_dir() else []
    if foreign:
        raise SystemExit(f"--out {opts.out} holds {', '.join(foreign[:3])}, which this script did not write: pass an empty or new folder")
    shutil.rmtree(opts.out, ignore_errors=True)
    whole, killed = opts.out / "whole", opts.out / "killed"

    seconds = run(args, whole)
    reference = read_video(whole / f"{name}.mp4")[0]
    print(f"uninterrupted: {len(reference)} frames in {seconds:.1f} s")
    if opts.twice:
        run(args, opts.out / "again")
        again = read_video(opts.out / "again" / f"{name}.mp4")[0]
        print(f"two uninterrupted runs: {differences(again, reference)}")

    chunk = partial_dir(killed, name) / "chunk_0000"
    proc = subprocess.Popen([sys.executable, "-m", "gen3c", "generate", *args, "--video_save_folder", str(killed)])
    while not chunk.is_dir():
        if proc.poll() is not None:
            sys.exit("the run finished before its first chunk was kept: use more frames")
        time.sleep(0.01)
    kept = sum(p.stat().st_size for p in chunk.rglob("*"))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    seconds = run([*args, "--resume"], killed)
    resumed = read_video(killed / f"{name}.mp4")[0]
    same_bytes = (killed / f"{name}.mp4").read_bytes() == (whole / f"{name}.mp4").read_bytes()
    print(f"killed after chunk 1 (kept {kept / 2**20:.0f} MiB), resumed in {seconds:.1f} s: "
          f"{differences(resumed, reference)}, mp4 identical {same_bytes}")  # fmt: skip


if __name__ == "__main__":
    main()
