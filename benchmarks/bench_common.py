"""What the benchmark scripts share: where they may run, and how they write their result files.

A benchmark that cannot run here says so in one line before it builds anything (a full-size
measurement on a machine without CUDA would otherwise build GEN3C-7B on the CPU for an hour), and
a result file is checked before the measurement and written atomically after it, so minutes of
GPU time are not lost to a missing folder and no half-written file is left behind.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from gen3c.dependencies import dependency_error  # noqa: E402
from gen3c.errors import Gen3cInputError, first_line  # noqa: E402
from gen3c.io.atomic import write_text_atomic  # noqa: E402
from gen3c.io.resolution import parse_resolution  # noqa: E402


def device_or_exit(name: str, *, full_size: bool = False, smoke_flag: str = "--tiny") -> torch.device:
    """``torch.device(name)``, or exit with one line when the benchmark cannot run there.

    Args:
        name: the ``--device`` argument ("cpu", "cuda", "cuda:1", …).
        full_size: whether the run is GEN3C-7B at 704×1280, which is measured on a GPU only.
        smoke_flag: the script's CPU mode, named in the message.
    """
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SystemExit(f"--device {name!r} is not a device: pass cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: this machine has no CUDA GPU; {smoke_flag} runs a CPU smoke test")
    if device.type != "cuda" and full_size:
        raise SystemExit(f"the full-size measurement needs a CUDA GPU (--device {name}); {smoke_flag} runs a CPU smoke test")
    return device


def child_env(*first: str | os.PathLike) -> dict[str, str]:
    """``os.environ`` for a child Python with ``first`` at the head of PYTHONPATH, ahead of the
    caller's own (packages installed onto PYTHONPATH, as on a GPU host without pip, stay importable)."""
    paths = [*map(str, first), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def resolution(text: str) -> str:
    """An argparse type: ``HxW`` as gen3c takes it (checked), kept as text."""
    try:
        parse_resolution(text)
    except Gen3cInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def check_writable(*paths: Path | None) -> None:
    """Exit now, not after the measurement, when a result file could not be written."""
    for path in paths:
        if path is None:
            continue
        folder = path.absolute().parent
        if path.is_dir():
            raise SystemExit(f"{path} is a folder: pass a file name for the results")
        if not folder.is_dir():
            raise SystemExit(f"{path}: the folder {folder} does not exist: create it or pass another path")


def strict(value):
    """``value`` with non-finite floats made strict JSON: NaN → None, ±∞ → "inf" / "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def json_text(data, indent: int | None = 1) -> str:
    """Strict JSON of ``data`` (see :func:`strict`; anything else json cannot write as its str)."""
    return json.dumps(strict(data), indent=indent, default=str, allow_nan=False)


def write_json(path: Path, data) -> None:
    """``data`` as strict JSON, written atomically."""
    write_text_atomic(path, json_text(data) + "\n")


def run(main: Callable[[], object]) -> None:
    """Call a script's ``main``; gen3c's one-line input errors end it with that line (exit 2), and
    so does a package it needs that is missing or broken (diffusers, ray, …: the ``pip install``)."""
    try:
        main()
    except Gen3cInputError as exc:
        print(f"error: {first_line(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as exc:
        error = dependency_error(exc, f"benchmarks/{Path(main.__code__.co_filename).name}")
        if error is None:
            raise
        print(f"error: {first_line(error)}", file=sys.stderr)
        raise SystemExit(2) from None
