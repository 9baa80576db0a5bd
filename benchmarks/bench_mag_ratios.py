"""MagCache's ratios at fewer steps: measured there, against those resampled from a longer run.

A magnitude ratio is the change of the DiT's block-stack residual over one step
(:class:`gen3c.models.step_cache.MagCalibration`). This measures them on the shipped small model
with Euler at ``--measured`` steps and at each of ``--steps``, on the evaluation's held-out cases
(the geometric mean over the cases, conditional branch), and prints, per step count, the measured
ratios, gen3c's resampling of the longer run's (:func:`gen3c.models.step_cache.resample_ratios`)
and diffusers' nearest-neighbour one, each with the rms of its log ratio's error (docs/benchmarks.md).

    python benchmarks/bench_mag_ratios.py --cases room-left,corridor-zoom_in,street-left,objects-zoom_in
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import bench_video  # noqa: E402
from bench_common import run  # noqa: E402

from gen3c.models.step_cache import StepCache, StepCacheSpec, resample_ratios  # noqa: E402
from gen3c.pipelines.presets import speed_settings  # noqa: E402


def measure(models: bench_video.Models, cases: list, steps: int, device: torch.device) -> list[float]:
    """The ratios a calibration run measures at ``steps`` Euler steps, geometric mean over ``cases``."""
    pipe = models.pipeline(speed_settings("exact", num_steps=steps))
    logs = [0.0] * steps
    for _, source, cameras in cases:
        pipe.step_cache = StepCache(StepCacheSpec.parse("magcache"))  # no ratios, no store: it measures them
        bench_video.run_case(pipe, None, source, cameras, device, steps)
        logs = [total + math.log(r) for total, r in zip(logs, pipe.step_cache.mag_ratios, strict=True)]
        pipe.step_cache = None
    return [math.exp(total / len(cases)) for total in logs]


def rms_log_error(ratios: list[float], measured: list[float]) -> float:
    """The rms over steps 1… of log(ratio / measured) (step 0's ratio is 1 by definition)."""
    return math.sqrt(sum(math.log(a / b) ** 2 for a, b in zip(ratios[1:], measured[1:], strict=True)) / (len(measured) - 1))


def step_counts(text: str) -> list[int]:
    """``--steps``: comma-separated step counts."""
    try:
        return [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated step counts (e.g. 18,8)") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    parser.add_argument("--measured", type=int, default=35, help="the step count the ratios are resampled from (GEN3C's 35)")
    parser.add_argument("--steps", type=step_counts, default="18,8", help="comma-separated step counts to compare at (the presets' 18 and 8)")
    parser.add_argument("--cases", type=bench_video.parse_cases, default=None, help="comma-separated SCENE-PRESET cases (default: the 8)")
    args = parser.parse_args(argv)
    args.counts = args.steps
    if args.measured < 2 or any(n < 2 for n in args.counts):
        parser.error("--measured and --steps need 2 steps or more (one step has no ratio)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from diffusers.hooks.mag_cache import nearest_interp
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    video_args = bench_video.parse_args(["--model", "tiny", "--device", "cpu"])
    video_args.frames, video_args.height, video_args.width = 17, 64, 112
    video_args.cases = args.cases or video_args.cases
    device = torch.device("cpu")
    models = bench_video.Models(video_args, device)
    cases = bench_video.make_cases(video_args, device)
    fine = measure(models, cases, args.measured, device)
    print(f"measured at {args.measured} steps: {' '.join(f'{r:.3f}' for r in fine)}")
    for steps in args.counts:
        measured = measure(models, cases, steps, device)
        composed = resample_ratios(fine, steps)
        nearest = nearest_interp(torch.tensor(fine, dtype=torch.float64), steps).tolist()
        print(f"{steps} steps, measured:  {' '.join(f'{r:.3f}' for r in measured)}")
        for name, ratios in (("composed", composed), ("nearest", nearest)):
            print(f"{steps} steps, {name:9s} {' '.join(f'{r:.3f}' for r in ratios)}  rms log error {rms_log_error(ratios, measured):.4f}")


if __name__ == "__main__":
    run(main)
