"""The benchmark's report: ``report.md``, ``results.json``, PNG plots and contact sheets.

Files in the report folder (each written atomically):

- ``report.md`` — settings, seeds, what each metric means, the summary table (mean over cases),
  the models compared (rows with a reference row: steps × forwards, PSNR against the
  reference's video), tables per scene and per preset, the plots inline;
- ``results.json`` — every score of every method on every case (strict JSON: ∞ as
  ``"Infinity"``, a score that does not exist as ``null``; :func:`read_results` reads it back);
- ``image_quality.png``, ``consistency.png``, ``psnr_per_preset.png``, ``psnr_over_time.png``
  — matplotlib plots (the ``eval`` extra);
- ``contact_sheets/CASE.png`` — per case, frames spread over the video: ground truth, the
  seen (white) / disoccluded (black) mask, then every method.

A run that fails or is interrupted midway writes the cases it finished as a partial report in
``partial/`` (:data:`PARTIAL`: ``report.md`` and ``results.json`` marked incomplete, with which
cases finished, failed (or interrupted) and never ran, and their contact sheets; no plots), beside the earlier
complete report, which it leaves as it was; the next complete run removes it. ``gen3c eval
--resume`` reuses its cases when its ``fingerprint`` is the new run's (:mod:`gen3c.evaluation.resume`).
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from rich.table import Table
from torch import Tensor

from gen3c.errors import Gen3cDependencyError, Gen3cInputError, counted, quoted_path
from gen3c.evaluation.metrics import nanmean
from gen3c.evaluation.suite import (
    GROUND_TRUTH,
    REFERENCE_SCORE,
    SCORE_NAMES,
    BenchmarkConfig,
    BenchmarkResult,
    GroundTruth,
    benchmark_cases,
)
from gen3c.io.atomic import atomic_path, ensure_writable_dir, write_text_atomic
from gen3c.io.paths import writer_path

#: Sub-folder of the report folder where a run that stopped early keeps its finished cases.
PARTIAL = "partial"
PLOTS = ("image_quality.png", "consistency.png", "psnr_per_preset.png", "psnr_over_time.png")

#: How each score is shown: header (name and unit; :func:`_header` adds whether higher ↑ or lower ↓
#: is better, from :data:`SCORE_UNITS`), scale factor, decimals. results.json holds the unscaled values.
_SHOWN = {
    "psnr": ("PSNR dB", 1.0, 2),
    "psnr_seen": ("PSNR seen dB", 1.0, 2),
    "psnr_disoccluded": ("PSNR disocc. dB", 1.0, 2),
    "ssim": ("SSIM", 1.0, 3),
    "ssim_seen": ("SSIM seen", 1.0, 3),
    "ssim_disoccluded": ("SSIM disocc.", 1.0, 3),
    "warp_error": ("warp err ×100", 100.0, 2),
    "rotation_error": ("rot err °", 1.0, 2),
    "translation_error": ("dir err °", 1.0, 2),
    "center_error": ("centre err %", 100.0, 1),
    "pose_failures": ("pose fail %", 100.0, 1),  # (1 decimal: one failed frame in 32 cases of 25 frames is 0.13 %, not "0")
    REFERENCE_SCORE: ("PSNR vs reference dB", 1.0, 2),
}

#: The unit of each score as results.json holds it (unscaled) and which way is better ("neither"
#: for a case's ``disoccluded_share``, no score), written into results.json so that a reader of
#: the numbers alone does not take 0.0066 for a percentage.
SCORE_UNITS = {
    "psnr": ("dB", "higher"),
    "psnr_seen": ("dB", "higher"),
    "psnr_disoccluded": ("dB", "higher"),
    "ssim": ("", "higher"),
    "ssim_seen": ("", "higher"),
    "ssim_disoccluded": ("", "higher"),
    "warp_error": ("mean absolute colour difference on the [0, 1] scale", "lower"),
    "rotation_error": ("degrees", "lower"),
    "translation_error": ("degrees", "lower"),
    "center_error": ("share of the source view's median depth", "lower"),
    "pose_failures": ("share of frames 1 … T−1", "lower"),
    REFERENCE_SCORE: ("dB", "higher"),
    "psnr_per_frame": ("dB", "higher"),
    "seconds": ("seconds", "lower"),
    "first_seconds": ("seconds", "lower"),
    # (each case's, not a score: how much of the video the cache cannot show, how hard the case is)
    "disoccluded_share": ("share of the pixels of frames 1 … T−1 the source view's cache does not see", "neither"),
}


def require_matplotlib() -> None:
    """Raise :class:`Gen3cInputError` (before any work) when the plots cannot be drawn."""
    from gen3c.dependencies import require

    try:
        require("matplotlib", "drawing the report's plots")
    except Gen3cDependencyError as exc:
        raise Gen3cDependencyError(f"{exc}, or pass --no_plots") from None


def method_names(result: BenchmarkResult) -> list[str]:
    """Rows in table order: the ground-truth reference, then the methods as run."""
    return [GROUND_TRUTH] + [m.name for m in result.methods]


def compared_rows(result: BenchmarkResult) -> dict[str, str]:
    """Rows scored against another row's video: ``{row: reference row}``."""
    return {m.name: m.reference for m in result.methods if m.reference}


def summarize(result: BenchmarkResult) -> dict[str, dict[str, float]]:
    """Mean of every score over the cases, per method; NaN-valued cases (no
    disoccluded pixel, no measurable direction) are left out of a mean, not counted as 0.
    With compared rows, every row also has ``psnr_vs_reference`` (NaN where it has no reference).

    Times: ``seconds`` is the mean time per video over the cases after the benchmark's first one
    (NaN with one case), ``first_seconds`` the first case's, which holds the method's warm-up
    (a model's first call: memory allocation, kernel selection, compilation). Cases reused from
    an earlier run (``--resume``) are in neither: their times are that run's, its warm-up elsewhere."""
    cases = result.cases
    scores = SCORE_NAMES + ((REFERENCE_SCORE,) if compared_rows(result) else ())
    made = [c for c in result.cases if not c.reused]
    first = made[0] if made else None
    out = {}
    for name in method_names(result):
        out[name] = {score: nanmean([c.scores[name].get(score, math.nan) for c in cases]) for score in scores}
        later = [c.seconds[name] for c in cases if name in c.seconds and c is not first and not c.reused]
        out[name]["seconds"] = nanmean(later) if later else math.nan
        out[name]["first_seconds"] = first.seconds.get(name, math.nan) if first is not None else math.nan
    return out


def _seconds(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "—"


def _header(score: str) -> str:
    """A score's header in the report: its name and unit, and ↑ (higher is better) or ↓."""
    return f"{_SHOWN[score][0]} {'↑' if SCORE_UNITS[score][1] == 'higher' else '↓'}"


def timing_note(result: BenchmarkResult) -> str:
    """What the report's times are, and each model's loading time (one paragraph of ``report.md``)."""
    loads = ", ".join(f"`{name}` {seconds:.1f} s" for name, seconds in result.load_seconds.items())
    made = sum(not c.reused for c in result.cases)
    reused = len(result.cases) - made
    return (
        "*s/video*: the mean time to make one video over the cases after the first; *1st video s*: the first case's, which "
        "holds each method's warm-up (a model's first call: memory allocation, kernel selection, compilation)"
        + (f" — over the {counted(made, 'case')} this run made: the {counted(reused, 'case')} reused from the partial run "
           "(`--resume`) kept that run's times (results.json, per case), not mixed in here" if reused else "")
        + (" — with one case there is no later video, so no s/video" if made == 1 else "")
        + (" — no case ran, so neither" if not result.cases else " — this run made no case, so neither" if not made else "")
        + (f". Model loading, before the first video and in neither: {loads}." if loads else ".")
    )


def grouped(result: BenchmarkResult, key: str, score: str) -> dict[str, dict[str, float]]:
    """``{method: {group: mean score}}`` with groups the cases' ``key`` ("scene" or "preset")."""
    groups = list(dict.fromkeys(getattr(c.case, key) for c in result.cases))
    return {
        name: {g: nanmean([c.scores[name].get(score, math.nan) for c in result.cases if getattr(c.case, key) == g]) for g in groups}
        for name in method_names(result)
    }


def _fmt(value: float, score: str) -> str:
    _, scale, decimals = _SHOWN[score]
    if value is None or math.isnan(value):
        return "—"
    if math.isinf(value):  # e.g. the PSNR of identical videos
        return "∞" if value > 0 else "−∞"
    return f"{value * scale:.{decimals}f}"


#: The terminal table's columns: score and short header.
_COMPACT = (("psnr", "PSNR"), ("psnr_seen", "seen"), ("psnr_disoccluded", "disocc"), ("ssim", "SSIM"),
            ("warp_error", "warp"), ("rotation_error", "rot°"), ("translation_error", "dir°"),
            ("center_error", "ctr%"), ("pose_failures", "fail%"))  # fmt: skip


def summary_table(result: BenchmarkResult) -> Table:
    """The compact terminal table: one row per method, the mean of the main scores (PSNR of all /
    seen / disoccluded pixels, SSIM, warp error ×100, rotation / direction error, centre error %,
    pose failures %, seconds per video after the first case and of the first (warm-up included);
    with compared rows, PSNR against the reference's video)."""
    summary = summarize(result)
    # The headers are too short for units and directions: the title says them.
    title = f"gen3c eval: {counted(len(result.cases), 'case')}, mean over cases (PSNR in dB, warp error ×100; PSNR, SSIM ↑ better, the rest ↓)"
    table = Table(title=title, title_justify="left", pad_edge=False)
    table.add_column("method", no_wrap=True)
    for _, header in _COMPACT:
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("s/video", justify="right", no_wrap=True)  # after the first case
    table.add_column("1st s", justify="right", no_wrap=True)  # the first case's, warm-up included
    compared = bool(compared_rows(result))
    if compared:
        table.add_column("vs ref", justify="right", no_wrap=True)  # PSNR against the reference row's video
    for name, row in summary.items():
        cells = [_fmt(row[score], score) for score, _ in _COMPACT]
        cells += [_seconds(row["seconds"]), _seconds(row["first_seconds"])]
        if compared:
            cells.append(_fmt(row[REFERENCE_SCORE], REFERENCE_SCORE))
        table.add_row(name, *cells)
    return table


def comparison_markdown(result: BenchmarkResult) -> list[str]:
    """The "models compared" section of ``report.md`` (lines; none without compared rows): per
    model row, its sampling cost, seconds per video, the image and camera scores (pose failures
    included) and its PSNR against the reference row's video."""
    compared = compared_rows(result)
    if not compared:
        return []
    reference = next(iter(compared.values()))
    summary = summarize(result)
    rows = [m for m in result.methods if m.name == reference or m.name in compared]
    # pose fail beside the camera errors: those are means over the recovered frames only, so they
    # compare between models only with the share each left out
    shown = ("psnr", "psnr_seen", "psnr_disoccluded", "ssim_seen", "ssim_disoccluded", "rotation_error", "translation_error",
             "center_error", "pose_failures")  # fmt: skip
    header = ["model", "steps × forwards", "s/video", "1st video s", *(_header(s) for s in shown), f"PSNR vs `{reference}` dB ↑"]
    body = []
    for m in rows:
        row = summary[m.name]
        body.append([f"`{m.name}`", m.sampling or "—", _seconds(row["seconds"]), _seconds(row["first_seconds"]), *(_fmt(row[s], s) for s in shown),
                     "(reference)" if m.name == reference else _fmt(row[REFERENCE_SCORE], REFERENCE_SCORE)])  # fmt: skip
    return [
        "## Models compared (mean over cases)",
        "",
        _markdown_table(header, body),
        "",
        f"*PSNR vs `{reference}`*: each model's video against `{reference}`'s own video of the same case (frames 1 … T−1, "
        "all pixels) — how closely it reproduces that model, apart from how either matches the ground truth.",
        "",
        *settings_markdown(result, [m.name for m in rows]),
    ]


def differing_settings(result: BenchmarkResult, rows: list[str]) -> dict[str, dict[str, object]] | None:
    """``{setting: {row: value}}`` of the generator settings in which ``rows`` differ (their
    plain attributes and a model's sampling settings, as the fingerprint records them: guidance,
    negative prompt, sampler, LoRA adapter…; not their weights), None when the result records
    none of them (a result built by hand)."""
    recorded = (result.fingerprint or {}).get("rows") or {}
    if not all(isinstance(recorded.get(row), dict) for row in rows):
        return None
    merged = {row: {**(recorded[row].get("attributes") or {}), **(recorded[row].get("settings") or {})} for row in rows}
    keys = dict.fromkeys(key for row in rows for key in merged[row] if key != "name")  # (the row's name: its own by nature)
    return {key: {row: merged[row].get(key) for row in rows} for key in keys
            if len({json.dumps(merged[row].get(key), sort_keys=True, default=str) for row in rows}) > 1}  # fmt: skip


def settings_markdown(result: BenchmarkResult, rows: list[str]) -> list[str]:
    """The lines under the "models compared" table that say in which settings the models ran
    differently (a compared model samples with its own defaults and without the first model's
    guidance flags and adapter), or that they ran alike but for their weights."""
    differ = differing_settings(result, rows)
    if differ is None:
        return []
    if not differ:
        return ["**Settings**: the models ran with the same generator settings; only their weights differ.", ""]

    def shown(value: object) -> str:
        return "none" if value is None else f"`{value}`"

    items = [f"{key} " + ", ".join(f"{shown(values[row])} (`{row}`)" for row in rows) for key, values in differ.items()]
    return [
        "**Settings that differ between these models** (besides their weights), so their scores compare these "
        f"settings too: {'; '.join(items)}.",
        "",
    ]


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _where(result: BenchmarkResult) -> str:
    """What the run ran on, as its fingerprint recorded it (the ground truth's device, the CPU and
    torch's CPU threads, which move the scores' last bits, torch's version, gen3c's version and
    code); without one, this process's."""
    made = result.fingerprint or {}
    if "device" in made and "cpu_threads" in made:
        cpu = f" on {made['cpu']}" if "cpu" in made else ""
        # (the version alone does not tell a source install's code apart: its digest does, shortened as git shortens commits;
        # none where gen3c has no Python sources to hash, environment.code_digest, or a fingerprint made by hand lacks it)
        digest = made.get("gen3c_code")
        hashed = f" (code sha256 {digest[:12]})" if isinstance(digest, str) and digest else ""
        code = f", gen3c {made['gen3c']}{hashed}" if "gen3c" in made else ""
        return (
            f", ground truth ray-cast on {made['device']}, {counted(made['cpu_threads'], 'CPU thread')}{cpu}, "
            f"torch {made.get('torch', torch.__version__)}{code}"
        )
    return f" ({'CUDA' if torch.cuda.is_available() else 'CPU'}), torch {torch.__version__}"


def markdown(result: BenchmarkResult, plots: bool, sheets: list[str]) -> str:
    """The text of ``report.md``."""
    cfg = result.config
    H, W = cfg.resolution
    summary = summarize(result)
    descriptions = {GROUND_TRUTH: "the ground-truth frames (floor of the warp and camera errors)"}
    descriptions.update({m.name: m.description for m in result.methods})
    seeds = ", ".join(f"{c.name} {c.seed}" for c in benchmark_cases(cfg))
    ran = counted(len(result.cases), "case")
    if result.stopped:  # (a partial report)
        ran = f"{len(result.cases)} of {counted(len(benchmark_cases(cfg)), 'case')}"
    reused = [c.case.name for c in result.cases if c.reused]
    parts = [
        "# gen3c eval report" + (" — INCOMPLETE" if result.stopped else ""),
        "",
        *incomplete_markdown(result),
        *([f"**Resumed** (`--resume`): {counted(len(reused), 'case')} reused from the partial report of an earlier run with the "
           f"same settings, code, model weights, device, CPU and CPU threads (their scores as that run made them): {', '.join(reused)}.", ""]
          if reused else []),  # fmt: skip
        f"{ran} ({counted(len(cfg.scenes), 'scene')} × {counted(len(cfg.presets), 'preset')}), {H}×{W}, "
        f"{cfg.num_frames} frames, camera rotation {cfg.camera_rotation}, movement distance {cfg.movement_distance} "
        f"({cfg.trajectory_scale}), {cfg.fov_degrees:g}° horizontal field of view, ground truth supersampled "
        f"{cfg.supersample}×{cfg.supersample}. Run time {result.seconds:.0f} s on {platform.machine()}{_where(result)}.",
        "",
        f"{'Stopped' if result.stopped else 'Ended'} {result.ended_at.replace('T', ' ').replace('+00:00', ' UTC')}.",
        "",
        f"Held-out seeds (scene-preset seed): {seeds}.",
        "",
        "## Summary (mean over cases)",
        "",
        _markdown_table(
            ["method", *(_header(s) for s in SCORE_NAMES), "s/video", "1st video s"],
            [[f"`{name}`", *(_fmt(row[s], s) for s in SCORE_NAMES), _seconds(row["seconds"]), _seconds(row["first_seconds"])]
             for name, row in summary.items()],
        ),  # fmt: skip
        "",
        timing_note(result),
        "",
        "Methods:",
        "",
        *[f"- `{name}`: {descriptions[name]}" for name in summary],
        "",
        *comparison_markdown(result),
        "Metrics (frames 1 … T−1; frame 0 is the source view; ↑ higher is better, ↓ lower; means over cases leave out "
        "a case without the score, —):",
        "",
        "- **PSNR** (dB) **/ SSIM** against the ground truth on the [0, 1] scale (SSIM: 11-tap Gaussian window, σ 1.5), over all "
        "pixels, the pixels the source view's cache sees (*seen*: the surface point is visible from the source camera "
        "and kept by the edge filter, decided from ground-truth depth) and the rest (*disocc.*), pooled over each case: "
        "a case's PSNR is that of its frames' mean squared error, at most the mean of its per-frame PSNRs (results.json "
        "has those as `psnr_per_frame`), and its SSIM the mean of the SSIM map, mirrored borders included.",
        "- **warp err**: mean absolute colour difference between each frame and the next one warped back through the "
        "ground-truth depth and the commanded cameras (pixels hidden or outside in the next frame left out).",
        "- **rot err / dir err / centre err**: each frame's camera recovered from the video alone — corners of frame 0 "
        "lifted to 3D with the source depth (the cache), tracked by Lucas–Kanade, PnP + RANSAC — against the commanded "
        "camera: rotation angle, angle between the directions of motion from frame 0 (displacements under 2 % of the "
        "median depth left out), and centre distance as a share of the median depth. **pose fail**: frames whose camera "
        "could not be recovered (too few tracked points); means are over the recovered ones.",
        "",
    ]
    for key, score in (("scene", "psnr"), ("preset", "psnr"), ("preset", "rotation_error")):
        table = grouped(result, key, score)
        groups = list(next(iter(table.values())).keys())
        # A camera error is a mean over the frames whose pose was recovered: each cell says how many it dropped.
        failed = grouped(result, key, "pose_failures") if score == "rotation_error" else None
        rows = [[f"`{name}`", *(_fmt(vals[g], score) + (f" ({_fmt(failed[name][g], 'pose_failures')} % failed)" if failed else "") for g in groups)]
                for name, vals in table.items() if score != "psnr" or name != GROUND_TRUTH]  # fmt: skip
        over = "presets" if key == "scene" else "scenes"
        parts += [f"## {_header(score)} per {key} (mean over {over})", ""]
        if failed:
            parts += ["Each cell: the mean over the frames whose camera was recovered, and in brackets the share of frames "
                      "1 … T−1 whose pose failed, which that mean leaves out (pose fail %).", ""]  # fmt: skip
        parts += [_markdown_table(["method", *groups], rows), ""]
    if plots:
        parts += ["## Plots", ""] + [f"![{p[:-4]}]({p})" for p in PLOTS] + [""]
    if sheets:
        parts += ["## Contact sheets", "", "Rows: ground truth, seen (white) / disoccluded (black), then each method; columns: frames.", ""]
        parts += [f"- [{Path(s).stem}]({s})" for s in sheets] + [""]
    return "\n".join(parts)


def case_status(result: BenchmarkResult) -> dict[str, list[str]]:
    """The cases of ``result``'s grid by what became of them: ``finished`` (scored, in the report),
    ``failed`` (the one running when an error stopped the benchmark), ``interrupted`` (the one
    running when Ctrl-C or SIGTERM stopped it; both empty for a complete result) and ``not_run``."""
    done = [c.case.name for c in result.cases]
    stopped = result.stopped
    running = [stopped.case] if stopped and stopped.case else []
    rest = [c.name for c in benchmark_cases(result.config) if c.name not in done and c.name not in running]
    interrupted = bool(stopped and stopped.interrupted)
    return {"finished": done, "failed": [] if interrupted else running, "interrupted": running if interrupted else [], "not_run": rest}


def incomplete_markdown(result: BenchmarkResult) -> list[str]:
    """The opening paragraph of a partial report (lines; none for a complete one): which cases
    finished, which one failed (or was interrupted) and why, which never ran."""
    if result.stopped is None:
        return []
    status = case_status(result)
    cut = "interrupted" if result.stopped.interrupted else "failed"  # (the case it stopped in)
    total = len(benchmark_cases(result.config))
    where = f"in case {result.stopped.case}" if result.stopped.case else "after its last case, before the report was written"
    # "was interrupted (Ctrl-C) in case room-down", "failed in case room-down: ValueError: …"
    why = f"was {result.stopped.error} {where}" if result.stopped.interrupted else f"failed {where}: {result.stopped.error.rstrip('.')}"
    return [
        f"**Incomplete**: the benchmark {why}. The tables below "
        f"hold the {counted(len(status['finished']), 'finished case')} of {total} only, so their means are not comparable "
        "with a complete report's.",
        "",
        f"- finished: {', '.join(status['finished']) or 'none'}",
        f"- {cut}: {', '.join(status[cut]) or 'none'}",
        f"- not run: {', '.join(status['not_run']) or 'none'}",
        "",
    ]


def results_json(result: BenchmarkResult) -> dict:
    cfg = result.config
    stopped = {"stopped": {"error": result.stopped.error, **case_status(result)}} if result.stopped else {}
    return {
        "complete": result.stopped is None,
        "ended_at": result.ended_at,
        **stopped,
        **({"fingerprint": result.fingerprint} if result.fingerprint is not None else {}),
        "reused": [c.case.name for c in result.cases if c.reused],
        "config": {**cfg.__dict__, "resolution": list(cfg.resolution)},
        "methods": {m.name: m.description for m in result.methods},
        "units": {score: {"unit": unit, "better": better} for score, (unit, better) in SCORE_UNITS.items()},
        "seconds": result.seconds,
        "load_seconds": result.load_seconds,
        "summary": summarize(result),
        "cases": [
            {"scene": c.case.scene, "preset": c.case.preset, "seed": c.case.seed, "disoccluded_share": c.disoccluded_share,
             "seconds": c.seconds, "reused": c.reused, "scores": c.scores}
            for c in result.cases
        ],  # fmt: skip
    }


#: How ``results.json`` writes the floats strict JSON has no number for, so that a reader tells
#: an infinite score from a missing one: +∞ (the PSNR of identical videos) as the string
#: ``"Infinity"``, −∞ as ``"-Infinity"`` (Python's ``float()`` and JavaScript's ``Number()`` read
#: both), and a score that does not exist (NaN: no disoccluded pixel, no direction of motion)
#: as ``null``. :func:`read_results` restores them.
_INFINITIES = {"Infinity": math.inf, "-Infinity": -math.inf}


def json_safe(value):
    """``value`` with its non-finite floats written as :data:`_INFINITIES` says (as ``results.json`` holds them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _from_json(value):
    if value is None:  # results.json holds no other null than a missing score (its fingerprint aside: read_results)
        return math.nan
    if isinstance(value, str):
        return _INFINITIES.get(value, value)
    if isinstance(value, dict):
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def read_results(path: str | Path) -> dict:
    """A ``results.json`` as written, its ``"Infinity"`` / ``"-Infinity"`` strings back to ±∞ and
    its ``null``s (scores that do not exist) back to NaN; its ``fingerprint`` (settings, not
    scores: a ``null`` there is None) as written."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        return _from_json(data)
    return {key: value if key == "fingerprint" else _from_json(value) for key, value in data.items()}


# --------------------------------------------------------------------------------------------
# Contact sheets
# --------------------------------------------------------------------------------------------


def _to_uint8(frames: Tensor) -> np.ndarray:
    """(K, 3, H, W) in [−1, 1] → (K, H, W, 3) uint8."""
    return ((frames.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


#: The contact sheet's mask row: which colour is which (the sheet is looked at without the report).
MASK_LABEL = "seen (white) / disocc. (black)"


def contact_sheet(truth: GroundTruth, sheet: dict[str, Tensor], shown: list[int], max_width: int = 320) -> Image.Image:
    """One case's frames as a grid: rows ground truth, seen mask, then each method in ``sheet``;
    columns the frames ``shown``, each at most ``max_width`` pixels wide, labelled."""
    H, W = truth.rgb.shape[-2:]
    scale = min(1.0, max_width / W)
    h, w = max(1, round(H * scale)), max(1, round(W * scale))
    mask = truth.seen[shown].float()[:, None].expand(-1, 3, -1, -1) * 2 - 1
    rows = [(GROUND_TRUTH, sheet[GROUND_TRUTH]), (MASK_LABEL, mask)]
    rows += [(name, frames) for name, frames in sheet.items() if name != GROUND_TRUTH]
    font = ImageFont.load_default()
    # As wide as the longest row name (a compared model's folder can be long), else the frames cover its end.
    longest = max(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(name, font=font) for name, _ in rows)
    label_w, header_h, pad = max(130, int(longest) + 12), 16, 2
    canvas = Image.new("RGB", (label_w + len(shown) * (w + pad), header_h + len(rows) * (h + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for x, text in _frame_labels(shown, w + pad, font, label_w, canvas.width):
        draw.text((x, 2), text, fill=(0, 0, 0), font=font)
    for i, (name, frames) in enumerate(rows):
        y = header_h + i * (h + pad)
        draw.text((4, y + h // 2 - 6), name, fill=(0, 0, 0), font=font)
        for j, img in enumerate(_to_uint8(frames)):
            canvas.paste(Image.fromarray(img).resize((w, h), Image.BILINEAR), (label_w + j * (w + pad), y))
    return canvas


def _frame_labels(shown: list[int], step: int, font, left: int, right: int) -> list[tuple[int, str]]:
    """Where the contact sheet's column headers go and what they say: "frame N" over each column
    ``step`` pixels wide, from ``left``; where one does not fit every column, "frame" in the row
    names' column and the bare numbers, a number that would run into the one before it (or past
    ``right``) left out."""
    length = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength
    if all(length(f"frame {t}", font=font) + 4 <= step for t in shown):
        return [(left + j * step + 2, f"frame {t}") for j, t in enumerate(shown)]
    labels, end = [(4, "frame")], left
    for j, t in enumerate(shown):
        x, width = left + j * step + 2, length(str(t), font=font)
        if x >= end and x + width <= right:
            labels.append((x, str(t)))
            end = x + width + 4
    return labels


def save_png(image: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


#: How a bar plot marks a score that does not exist (NaN) in place of its bar.
MISSING = "no value"


def _bars(ax, names: list[str], series: dict[str, list[float]], ylabel: str, title: str) -> None:
    """Grouped bars, one group per name; a value that does not exist (NaN: no disoccluded
    pixel, no direction of motion) gets no bar but an upright :data:`MISSING` at 0, since a 0
    bar would read as a perfect score; an infinite one (the PSNR of identical videos) gets an
    upright "∞ (identical)" there. With no finite value at all the axis has no scale to show."""
    x = np.arange(len(names))
    width = 0.8 / max(len(series), 1)
    any_bar = False
    for k, (label, values) in enumerate(series.items()):
        at = x + (k - (len(series) - 1) / 2) * width
        finite = np.array([v is not None and math.isfinite(v) for v in values], dtype=bool)
        any_bar |= bool(finite.any())
        ax.bar(at[finite], np.asarray(values, dtype=np.float64)[finite], width, label=label, color=f"C{k}")
        for pos, value in zip(at[~finite], np.asarray(values, dtype=object)[~finite], strict=True):
            if value is not None and math.isinf(value) and value > 0:
                ax.text(pos, 0.0, "∞ (identical)", ha="center", va="bottom", rotation=90, fontsize=8, color=f"C{k}")
            else:  # upright words: a "—" on the axis read as a bar of about 0 (a perfect error score)
                ax.text(pos, 0.0, MISSING, ha="center", va="bottom", rotation=90, fontsize=8, color=f"C{k}")
    # Every group in view whether or not it has a bar (text does not widen the axes: marks
    # outside them left tight_layout no room).
    ax.set_xlim(-0.5, len(names) - 0.5)
    if not any_bar:
        _no_scale(ax)
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    # With 2 or 3 series, their legend in one row between the title and the axes: inside them it
    # covered bars (the top right ones with many rows, whatever place matplotlib chose).
    ax.set_title(title, pad=20 if len(series) > 1 else None)
    if len(series) > 1:  # patches of the series' colours: a series with no bar has none to show
        from matplotlib.patches import Patch

        handles = [Patch(color=f"C{k}", label=label) for k, label in enumerate(series)]
        ax.legend(handles=handles, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(series),
                  frameon=False, borderaxespad=0.2)  # fmt: skip
    ax.grid(axis="y", alpha=0.3)


#: How an infinite PSNR (identical videos) is drawn on a line plot: at this label's ceiling.
INFINITE = "∞ (identical)"


def _lines(ax, series: dict[str, tuple[list, np.ndarray]], **style) -> None:
    """One line per name over ``(x, y)``; a +∞ value (the PSNR of identical videos) is drawn on a
    dotted ceiling above every finite value, labelled :data:`INFINITE`, so the line has no gap;
    a value that does not exist (NaN) is a gap, and a line with no value at all is named "—"
    in the legend. Past 10 lines the colours come again, dashed. With no finite value at all the axis has no scale to show."""
    values = [y for _, y in series.values()]
    finite = np.concatenate([y[np.isfinite(y)] for y in values]) if values else np.zeros(0)
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        ceiling = hi + 0.15 * max(hi - lo, 1.0)
    else:
        _no_scale(ax)
        ceiling = 0.8
    infinite = any(np.isposinf(y).any() for y in values)
    if infinite:
        ax.axhline(ceiling, color="0.5", linestyle=":", linewidth=1)
        # Inside the axes (a mark outside them leaves tight_layout no room), above the ceiling.
        ax.text(0.01, ceiling, INFINITE, transform=ax.get_yaxis_transform(), va="bottom", ha="left", fontsize=8, color="0.3")
    for k, (name, (x, y)) in enumerate(series.items()):
        shown = np.where(np.isposinf(y), ceiling, np.where(np.isfinite(y), y, np.nan))
        # 10 colours, then the same colours dashed: an 11th row (all rows, gen3c and 3 compared models) is no 1st's twin
        look = {"color": f"C{k % 10}", "linestyle": ("-", "--", "-.")[k // 10 % 3]}
        ax.plot(x, shown, label=name if not np.isnan(shown).all() else f"{name}: —", **look, **style)
    if infinite and finite.size:  # after the lines: set_ylim stops autoscaling, the bottom frozen where the data put it
        ax.set_ylim(top=ceiling + 0.12 * max(hi - lo, 1.0))


def _no_scale(ax) -> None:
    """An axis with nothing drawn on it (every value ∞ or missing) shows no made-up scale."""
    ax.set_ylim(0.0, 1.0)
    ax.set_yticks([])


def write_plots(result: BenchmarkResult, folder: Path) -> list[Path]:
    """The four PNG plots (see the module docstring); needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(result)
    methods = [m.name for m in result.methods]
    everyone = [GROUND_TRUTH, *methods]
    paths = []

    def save(fig, name: str) -> None:
        path = folder / name
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        paths.append(path)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, metric, unit in ((axes[0], "psnr", "dB"), (axes[1], "ssim", "")):
        series = {part: [summary[n][f"{metric}{suffix}"] for n in methods] for part, suffix in
                  (("all", ""), ("seen", "_seen"), ("disoccluded", "_disoccluded"))}  # fmt: skip
        _bars(ax, methods, series, f"{metric.upper()} {unit}".strip() + " ↑", f"{metric.upper()} against ground truth")
    save(fig, PLOTS[0])

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    _bars(axes[0], everyone, {"warp": [summary[n]["warp_error"] * 100 for n in everyone]}, "mean abs. error ×100 ↓", "Reprojection warp error")
    # The camera errors are means over the frames whose pose was recovered: each bar's label says how many failed.
    posed = pose_labels(summary, everyone)
    _bars(axes[1], posed, {"rotation": [summary[n]["rotation_error"] for n in everyone],
                           "direction": [summary[n]["translation_error"] for n in everyone]}, "degrees ↓", "Camera error (recovered poses)")  # fmt: skip
    _bars(axes[2], posed, {"centre": [summary[n]["center_error"] * 100 for n in everyone]}, "% of median depth ↓", "Camera centre error (recovered poses)")
    save(fig, PLOTS[1])

    fig, ax = plt.subplots(figsize=(9, 4.2))
    plot_psnr_per_preset(ax, result)
    save(fig, PLOTS[2])

    fig, ax = plt.subplots(figsize=(9, 4.2))
    plot_psnr_over_time(ax, result)
    save(fig, PLOTS[3])
    return paths


def pose_labels(summary: dict[str, dict[str, float]], names: list[str]) -> list[str]:
    """The camera-error bars' labels: each name and the share of frames 1 … T−1 whose pose failed,
    which the bars' means leave out (as the report's tables say it)."""
    return [f"{n}\n({_fmt(summary[n]['pose_failures'], 'pose_failures')} % of poses failed)" for n in names]


def plot_psnr_per_preset(ax, result: BenchmarkResult) -> None:
    """Each method's PSNR per preset (mean over scenes, as the report's table), ∞ as :func:`_lines` draws it."""
    per_preset = grouped(result, "preset", "psnr")
    _lines(ax, {n: (list(per_preset[n]), np.array(list(per_preset[n].values()), dtype=np.float64)) for n in (m.name for m in result.methods)},
           marker="o")  # fmt: skip
    ax.set_ylabel("PSNR dB ↑")
    ax.set_title("PSNR per preset (mean over scenes)")
    ax.tick_params(axis="x", rotation=30)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_psnr_over_time(ax, result: BenchmarkResult) -> None:
    """Each method's PSNR per frame, the mean over cases by the tables' rule (:func:`nanmean`:
    one case's +∞ makes the frame's mean +∞), ∞ as :func:`_lines` draws it."""
    series = {}
    for name in (m.name for m in result.methods):
        per_frame = np.array([c.scores[name]["psnr_per_frame"] for c in result.cases], dtype=np.float64)
        if not result.cases:  # a frame axis all the same, with no value on it
            per_frame = np.empty((0, result.config.num_frames - 1))
        mean = np.array([nanmean(per_frame[:, t]) for t in range(per_frame.shape[1])], dtype=np.float64)
        series[name] = (np.arange(1, per_frame.shape[1] + 1), mean)
    _lines(ax, series)
    ax.set_xlim(0.5, result.config.num_frames - 0.5)  # frames 1 … T−1 in view, with or without a point
    ax.set_xlabel("frame")
    ax.set_ylabel("PSNR dB ↑")
    ax.set_title("PSNR over the video (mean over cases)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _output_names() -> list[str]:
    """The names ``gen3c eval`` writes under in its folder, contact sheets of any case of the full grid."""
    return ["report.md", "results.json", *PLOTS, *(f"contact_sheets/{c.name}.png" for c in benchmark_cases(BenchmarkConfig()))]


def previous_outputs(folder: str | Path) -> list[Path]:
    """The files a previous ``gen3c eval`` left in ``folder`` under the names it writes
    (``report.md``, ``results.json``, the plots, ``contact_sheets/SCENE-PRESET.png`` of any
    case of the full grid); nothing else."""
    folder = Path(folder)
    return [folder / n for n in _output_names() if (folder / n).is_file()]


def check_output_names(folder: str | Path) -> None:
    """Raise :class:`Gen3cInputError` when something other than a file holds a name the report
    is written under in ``folder`` or its :data:`PARTIAL` (a folder named ``report.md``, a file named
    ``contact_sheets``): the report could not be moved into place, so it is refused before the
    benchmark runs."""
    folder = Path(folder)
    partial = folder / PARTIAL
    if partial.exists() and not partial.is_dir():
        raise Gen3cInputError(f"--output_folder {quoted_path(folder)} holds a file named {PARTIAL} where a stopped run keeps its "
                              "finished cases: move it away or choose another --output_folder")  # fmt: skip
    _check_names(folder)
    if partial.is_dir():  # (a stopped run's partial report is written there)
        _check_names(partial)
    _check_ours(folder)


def _check_ours(folder: Path) -> None:
    """Refuse a folder holding files under the names the report is written under (:func:`previous_outputs`,
    which a run replaces or deletes) beside no ``results.json`` of ``gen3c eval``: ``--output_folder .``
    in a project folder replaced its own results.json and report.md, and deleted a consistency.png."""
    found = previous_outputs(folder)
    if not found:
        return
    try:
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        results = None
    if isinstance(results, dict) and isinstance(results.get("config"), dict) and isinstance(results.get("cases"), list):  # an eval's
        return
    names = [path.relative_to(folder).as_posix() for path in found]
    raise Gen3cInputError(
        f"--output_folder {quoted_path(folder)} holds {', '.join(names[:4])}{' …' if len(names) > 4 else ''}, which no gen3c eval wrote "
        "and its report would replace: choose a new or empty --output_folder"
    )


def _check_names(folder: Path) -> None:
    sheets = folder / "contact_sheets"
    if sheets.exists() and not sheets.is_dir():
        raise Gen3cInputError(f"--output_folder {quoted_path(folder)} holds a file named contact_sheets where the contact sheets' "
                              "folder goes: move it away or choose another --output_folder")  # fmt: skip
    for name in _output_names():
        path = folder / name
        if path.exists() and not path.is_file():
            raise Gen3cInputError(f"--output_folder {quoted_path(folder)} holds a folder (or other non-file) named {name} where the "
                                  "report writes that file: move it away or choose another --output_folder")  # fmt: skip


def clear_previous_outputs(folder: str | Path) -> list[Path]:
    """Remove :func:`previous_outputs`, so that a new run's folder holds no plot or contact
    sheet of an older run (other cases or rows, or plots beside a ``--no_plots`` report)
    and no older ``report.md`` beside the new run's sheets if it stops midway."""
    removed = previous_outputs(folder)
    for path in removed:
        path.unlink()
    return removed


def write_report(result: BenchmarkResult, folder: str | Path, *, plots: bool = True, sheets: list[str] | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``results.json`` and (with ``plots``) the PNG plots into ``folder``,
    then remove what an earlier report left there under the names ``gen3c eval`` writes
    (:func:`previous_outputs`: plots beside a report without them, contact sheets not in
    ``sheets``), as ``gen3c eval`` does; other files stay. A leading ``~`` in ``folder`` is the
    home folder.

    Args:
        sheets: contact sheet paths relative to ``folder``, to link from the report (kept).
    Returns:
        ``{"report": …, "results": …, "plots": [...]}`` paths.
    """
    folder = ensure_writable_dir(writer_path(folder, "write_report folder", "the report"), "--output_folder")
    paths: dict = {"plots": write_plots(result, folder) if plots else []}
    paths["results"] = folder / "results.json"
    write_text_atomic(paths["results"], json.dumps(json_safe(results_json(result)), indent=1, allow_nan=False))
    paths["report"] = folder / "report.md"
    write_text_atomic(paths["report"], markdown(result, plots, sheets or []))
    current = {paths["results"], paths["report"], *paths["plots"], *(folder / s for s in sheets or [])}
    for path in previous_outputs(folder):
        if path not in current:
            path.unlink()
    return paths


def sheet_writer(folder: str | Path, written: list[str]) -> Callable[[GroundTruth, dict[str, Tensor], list[int]], None]:
    """An ``on_case`` callback for :func:`~gen3c.evaluation.suite.run_benchmark` that saves each
    case's contact sheet as ``folder/contact_sheets/CASE.png`` and records its relative path."""
    sub = ensure_writable_dir(Path(folder) / "contact_sheets", "--output_folder")

    def write(truth: GroundTruth, sheet: dict[str, Tensor], shown: list[int]) -> None:
        name = f"{truth.case.name}.png"
        save_png(contact_sheet(truth, sheet, shown), sub / name)
        written.append(f"contact_sheets/{name}")

    return write
