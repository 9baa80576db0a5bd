"""``gen3c eval --resume``: reuse the finished cases of a stopped run's partial report.

A case's numbers are exact to reuse only if everything that makes them is the same: the
benchmark's settings, the rows and their generators, gen3c's code, torch, the device, the CPU
and the number of CPU threads. :func:`fingerprint` records that in every ``results.json`` (complete and
partial); :func:`load_partial` reads the partial report of ``OUTPUT/partial/`` back, refusing it
in one line that names what differs when its fingerprint is not this run's.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from gen3c.environment import code_digest, cpu_kind, device_kind
from gen3c.errors import Gen3cInputError, counted, first_few, first_line, note, quoted_path
from gen3c.evaluation.report import PARTIAL, json_safe, read_results
from gen3c.evaluation.suite import (
    CONSISTENCY_SCORES,
    GROUND_TRUTH,
    PRESETS,
    REFERENCE_SCORE,
    SCENES,
    SCORE_NAMES,
    BenchmarkConfig,
    CaseResult,
    Method,
    benchmark_cases,
)
from gen3c.io.formats import json_default, python_scalar

#: Generator settings (:meth:`~gen3c.pipelines.gen3c.Gen3cGenerator.settings`) left out of a row's
#: fingerprint: where the DiT's weights wait between forwards (the same arithmetic, so a run that ran
#: out of memory may resume with offloading), and the checkpoint's folder (its weights count by
#: :func:`weights_identity`: a moved copy is the same model).
RUN_ONLY_SETTINGS = ("dit_memory", "checkpoint", "checkpoint_checksums_sha256")


def weights_identity(checkpoint: str | None) -> str | None:
    """The identity of a model's weights, cheap to compute: the sha256 of its checkpoint folder's
    ``checksums.json`` (:func:`~gen3c.models.verify.checksums_sha256`: converted GEN3C weights, the
    packaged models), else the sha256 of its weight and config files' names, sizes and modification
    times (a folder ``gen3c train`` wrote: retrained in place, it differs; a copy differs too), or the
    name given when it is no folder."""
    from gen3c.models.verify import CHECKSUMS_FILE, checksums_sha256, covered_files

    if checkpoint is None:
        return None
    folder = Path(checkpoint).expanduser()
    if not folder.is_dir():
        return f"name {checkpoint}"
    listed = checksums_sha256(folder)
    if listed is not None:
        return f"{CHECKSUMS_FILE} sha256 {listed}"
    digest = hashlib.sha256()
    for name in covered_files(folder):
        stat = (folder / name).stat()
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return f"files sha256 {digest.hexdigest()}"


#: What :func:`_plain_value` gives for an attribute that is no plain value (a model, a tensor).
_NOT_PLAIN = object()


def _plain_value(value: Any) -> Any:
    """``value`` where it is a plain value (None, a string, a number, a bool), numpy's numbers and
    bools as Python's (a margin set to ``np.float32(0.1)`` counts, as a JSON number); else
    :data:`_NOT_PLAIN`."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    plain = python_scalar(value)  # (not np.datetime64; np.str_ is a str already)
    return plain if isinstance(plain, (int, float, bool)) else _NOT_PLAIN


def row_identity(method: Method) -> dict[str, Any]:
    """What makes a row's videos: its generator's class and plain attributes (numbers, numpy's
    too, strings: the preview's margins, a model's prompt, seed, steps), a model's settings and
    the identity of its weights, and the cache the row runs on."""
    generator = method.generator
    kind = type(generator)
    attributes = {k: _plain_value(v) for k, v in sorted(getattr(generator, "__dict__", {}).items())
                  if not k.startswith("_") and _plain_value(v) is not _NOT_PLAIN and k != "checkpoint"}  # fmt: skip
    identity = {
        "generator": f"{kind.__module__}.{kind.__qualname__}",
        "attributes": attributes,
        "cache": {"splat": method.splat, "foreground_masking": method.foreground_masking, "filter_points_threshold": method.filter_points_threshold},
        "reference": method.reference,
    }
    settings = getattr(generator, "settings", None)
    if callable(settings):  # a diffusion model (:meth:`Gen3cGenerator.settings`): what it samples with, on which weights
        told = settings()
        identity["settings"] = {k: v for k, v in told.items() if k not in RUN_ONLY_SETTINGS}
        identity["weights"] = weights_identity(told.get("checkpoint"))
    return identity


def fingerprint(config: BenchmarkConfig, methods: list[Method] | None = None, device: str | torch.device | None = None) -> dict[str, Any]:
    """What makes a case's numbers, as ``results.json`` records it (JSON values): the benchmark's
    settings, the rows (:func:`row_identity`; left out without ``methods``, to check the settings
    before the models load), gen3c's version and code (:func:`code_digest`), torch's version, the
    device the ground truth is ray-cast on (``device``, :func:`device_kind`), the CPU
    (:func:`cpu_kind`) and torch's CPU threads (the scores are summed and a model's frames
    computed in threads: their number can change the last bits)."""
    from gen3c import __version__

    out: dict[str, Any] = {"benchmark": {**config.__dict__, "resolution": list(config.resolution)}}
    if methods is not None:
        out["rows"] = {m.name: row_identity(m) for m in methods}
    out.update(gen3c=__version__, gen3c_code=code_digest(), torch=torch.__version__, device=device_kind(device), cpu=cpu_kind(),
               cpu_threads=torch.get_num_threads())
    # As results.json writes it (±∞ as "Infinity", NaN as null): compared with the stored one on resume.
    return json.loads(json.dumps(json_safe(out), default=json_default))


#: How :func:`difference` names each part of a fingerprint, and how to get it back.
_PARTS = {
    "gen3c": ("gen3c's version", "install the partial run's gen3c"),
    "gen3c_code": ("gen3c's code", "run the partial run's code"),
    "torch": ("torch's version", "install the partial run's torch"),
    "device": ("the device", "run on the partial run's device"),
    "cpu": ("the CPU", "resume on the partial run's machine"),
    "cpu_threads": ("the number of CPU threads", "set the partial run's thread count (OMP_NUM_THREADS)"),
}


def difference(stored: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The first part of ``current`` that ``stored`` does not match, in words (its old and new
    value), or None when every part of ``current`` matches (its rows in any order: they order the
    report, not a case's numbers; its scenes and presets whatever they are: they pick cases of
    the full grid, which :func:`load_partial` matches case by case)."""
    for part, value in current.items():
        old = stored.get(part)
        if part == "benchmark" and isinstance(old, dict):
            value = {k: v for k, v in value.items() if k not in GRID_SELECTION}
            old = {k: v for k, v in old.items() if k not in GRID_SELECTION}
        if old == value:  # (rows: dicts, equal in any order: each case's scores are kept per row)
            continue
        if part == "benchmark":
            keys = [k for k in value if old is None or old.get(k) != value.get(k)]
            shown = ", ".join(f"{k} {(old or {}).get(k)!r} → {value.get(k)!r}" for k in keys[:3])
            return f"the benchmark's settings differ from the partial run's ({shown}): run with the partial run's settings"
        if part == "rows":
            old = old or {}
            if set(old) != set(value):
                return f"the rows differ from the partial run's ({', '.join(old) or 'none'} → {', '.join(value)}): run with the partial run's --methods and models"
            for row, identity in value.items():
                keys = [k for k in identity if old[row].get(k) != identity.get(k)]
                if not keys:
                    continue
                if "weights" in keys:
                    return (f"the {row} row's model weights differ from the partial run's ({old[row].get('weights')} → "
                            f"{identity['weights']}): run with the partial run's model")  # fmt: skip
                # (a model's steps or guidance is both an attribute and a setting: said once)
                inner = dict.fromkeys(f"{sub} {a!r} → {b!r}" for k in keys for sub, a, b in _changed(old[row].get(k), identity[k]))
                shown = ", ".join(list(inner)[:3])
                return f"the {row} row's generator differs from the partial run's ({shown}): run with the partial run's settings"
        what, fix = _PARTS.get(part, (part, "run as the partial run did"))
        return f"{what} differs from the partial run's ({old!r} → {value!r}): {fix}"
    return None


#: Benchmark settings that pick the run's cases: a case's seed is its scene's and preset's place in
#: the full grid (:func:`~gen3c.evaluation.suite.benchmark_cases`), so a run of other (or more, or
#: reordered) scenes and presets makes the cases it shares with the partial run alike.
GRID_SELECTION = ("scenes", "presets")


def _changed(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """(key, old, new) of the keys of two dicts that differ; one entry for other values."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [(k, old.get(k), new.get(k)) for k in dict.fromkeys([*old, *new]) if old.get(k) != new.get(k)]
    return [("value", old, new)]


def read_partial(folder: Path, current: dict[str, Any]) -> dict[str, Any] | None:
    """The partial report's ``results.json`` in ``folder``/:data:`PARTIAL` (:func:`read_results`),
    None when there is none; ``current``: this run's fingerprint, or part of it (the CLI checks the
    settings before the models load, the rows after).

    Raises:
        Gen3cInputError: the partial report cannot be read, is not one gen3c wrote, its
            fingerprint differs from ``current`` (:func:`difference`, one line naming what), or it
            holds finished cases of scenes or presets ``current`` leaves out (its partial report,
            rewritten as the run goes, would lose them).
    """
    path = folder / PARTIAL / "results.json"
    if not path.is_file():
        return None
    fix = "delete it, or run without --resume to run every case again"
    try:
        stored = read_results(path)
    except (OSError, ValueError, RecursionError) as exc:
        raise Gen3cInputError(f"--resume: {quoted_path(path)} cannot be read ({first_line(exc)}): {fix}") from None
    if not isinstance(stored, dict) or stored.get("complete") is not False or not isinstance(stored.get("cases"), list):
        raise Gen3cInputError(f"--resume: {quoted_path(path)} is not a partial report of gen3c eval: {fix}")
    if not isinstance(stored.get("fingerprint"), dict):
        raise Gen3cInputError(
            f"--resume: {quoted_path(path)} was written by a gen3c that did not record what makes its numbers: "
            "run without --resume to run every case again"
        )
    changed = difference(stored["fingerprint"], current)
    if changed:
        raise Gen3cInputError(f"--resume: {changed}, or without --resume to run every case again")
    selected = current.get("benchmark", {})
    left_out = [
        name for i, entry in enumerate(stored["cases"])
        if isinstance(entry, dict) and entry.get("scene") in SCENES and entry.get("preset") in PRESETS
        and (entry["scene"] not in selected.get("scenes", SCENES) or entry["preset"] not in selected.get("presets", PRESETS))
        for name in [_case_name(entry, i)]
    ]  # fmt: skip
    if left_out:
        shown = first_few(left_out)
        raise Gen3cInputError(
            f"--resume: {quoted_path(path)} holds finished cases this run's --scenes and --presets leave out ({shown}): "
            "add their scenes and presets, or run without --resume to run every case again"
        )
    return stored


def _case_name(entry: Any, index: int) -> str:
    """A partial report's case as the grid names it (scene-preset), or by its place there."""
    return f"{entry.get('scene')}-{entry.get('preset')}" if isinstance(entry, dict) else f"entry {index + 1}"


def load_partial(folder: Path, current: dict[str, Any], config: BenchmarkConfig) -> list[CaseResult]:
    """The finished cases of the partial report in ``folder``/:data:`PARTIAL` to reuse (each with
    its contact sheet), in the grid's order, marked ``reused``, once :func:`read_partial` has
    checked it; one note names the cases that run again instead (sheet gone, or, hand-edited, no
    case of the full grid or another seed). With no partial report there, a note
    says so and nothing is reused."""
    stored = read_partial(folder, current)
    if stored is None:
        note(f"--resume: no partial report in {quoted_path(folder / PARTIAL)}; running every case")
        return []
    path, fix = folder / PARTIAL / "results.json", "delete it, or run without --resume to run every case again"
    grid = {c.name: c for c in benchmark_cases(config)}
    kept, skipped = {}, []
    for i, entry in enumerate(stored["cases"]):
        name = _case_name(entry, i)
        case = grid.get(name)
        why = ("no case of the benchmark's grid" if case is None
               else f"seed {entry.get('seed')!r}, not its held-out {case.seed}" if entry.get("seed") != case.seed
               else "its contact sheet is gone" if not (folder / PARTIAL / "contact_sheets" / f"{case.name}.png").is_file()
               else None)  # fmt: skip
        if why is not None:
            skipped.append(f"{name} ({why})")
            continue
        try:
            scores = _checked_scores(entry.get("scores"), _expected_scores(current.get("rows", {})), config.num_frames)
            kept[case.name] = CaseResult(case, scores, _checked_seconds(entry.get("seconds"), current.get("rows", {})),
                                         float(entry["disoccluded_share"]), reused=True)  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise Gen3cInputError(f"--resume: case {case.name} of {quoted_path(path)} cannot be read ({first_line(exc)}): {fix}") from None
    if skipped:
        shown = first_few(skipped)
        note(f"--resume: {counted(len(skipped), 'case')} of {quoted_path(path)} not reused, run again: {shown}")
    return [kept[name] for name in grid if name in kept]


def _expected_scores(rows: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Row → the scores a case holds for it (:func:`~gen3c.evaluation.suite.score_video`), for the
    fingerprint's ``rows`` (a row with a reference also has ``psnr_vs_reference``)."""
    expected = {GROUND_TRUTH: CONSISTENCY_SCORES}
    for row, identity in rows.items():
        reference = isinstance(identity, dict) and identity.get("reference") is not None
        expected[row] = (*SCORE_NAMES, "psnr_per_frame", *((REFERENCE_SCORE,) if reference else ()))
    return expected


def _checked_seconds(seconds: Any, rows: dict[str, Any]) -> dict[str, float]:
    """A reused case's ``seconds`` (row → seconds to make its video), checked to hold a number for
    every row: they are written back into the new ``results.json`` as they are. Raises ValueError."""
    if not isinstance(seconds, dict):
        raise ValueError("its seconds are no mapping")
    for row in rows:
        value = seconds.get(row)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
            raise ValueError(f"the {row} row's seconds {value!r} is no time")
    return {row: float(seconds[row]) for row in rows}


def _checked_scores(scores: Any, rows: dict[str, tuple[str, ...]], num_frames: int) -> dict[str, dict]:
    """A reused case's ``scores`` (row → score → value), checked to be what the report reads from
    it: every row's scores (``rows``: row → score names), each a number (NaN for one that does not
    exist, :func:`read_results`) and ``psnr_per_frame`` one per frame 1 … T−1 (a hand-edited partial
    report would otherwise fail in the report after the other cases ran, or, a score gone, leave the
    case out of that score's mean unseen). Raises ValueError naming what is wrong."""
    if not isinstance(scores, dict):
        raise ValueError("its scores are no mapping")

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    for row in rows:
        if row not in scores:
            raise ValueError(f"it has no scores of the {row} row")
        if not isinstance(scores[row], dict):
            raise ValueError(f"the {row} row's scores are no mapping")
        for name, value in scores[row].items():
            if name == "psnr_per_frame":
                if not isinstance(value, list) or not all(map(number, value)):
                    raise ValueError(f"the {row} row's psnr_per_frame is no list of numbers")
                if len(value) != num_frames - 1:
                    raise ValueError(f"the {row} row's psnr_per_frame holds {len(value)} values, not {num_frames - 1} (frames 1 … T−1)")
            elif not number(value):
                raise ValueError(f"the {row} row's {name} is no number")
        missing = next((name for name in rows[row] if name not in scores[row]), None)
        if missing is not None:
            raise ValueError(f"the {row} row has no {missing}")
    return {row: dict(scores[row]) for row in rows}  # in this run's row order, as its own cases hold them
