"""Batch manifests: one job per JSONL line or CSV row, each a :class:`GenerationRequest`.

A row holds the request's fields under their flag names (``input_image_path``, ``trajectory``,
``num_video_frames``, …), the gen3c generator's options either flat (``checkpoint_dir``,
``num_steps``, …) or as a ``generator_options`` object, and ``name``, the output name. The batch
sets ``video_save_folder`` and ``video_save_name`` itself. Relative paths resolve against the
manifest's folder, so a manifest can travel with its inputs. The whole manifest is checked
before any job runs: a typo in row 900 is reported at once, not after hours of work.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import functools
import hashlib
import io
import json
import os
from collections.abc import Collection
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from gen3c.errors import Gen3cInputError, describe_value, note, path_to_copy, quoted_path, spelled_notes
from gen3c.io.atomic import check_output_name
from gen3c.io.formats import json_default, json_kind, loads_json
from gen3c.io.paths import exists, one_file_key, one_file_note, refuse_special_file, windows_name_problem
from gen3c.io.text import user_text
from gen3c.pipelines.camera_video import OUTPUT_FILES as RUN_FILES
from gen3c.pipelines.options import GENERATOR_OPTIONS as GEN3C_OPTION_NAMES
from gen3c.pipelines.options import refuse_gen3c_only, refuse_unknown_options
from gen3c.pipelines.request import (
    GENERATORS,
    MAYBE_PATH_FIELDS,
    OPTION_PATH_FIELDS,
    PATH_FIELDS,
    RECORD_KEYS,
    GenerationRequest,
    check_generator,
    check_request,
    check_unused_settings,
    may_name_no_path,
    resolve_paths,
)
from gen3c.pipelines.resume import INPUT_FIELDS, MOVABLE_FIELDS, with_paths_moved
from gen3c.pipelines.spelling import row_spelling

#: ``.json``: one run record (``NAME_run.json``), a manifest of the one job it records.
MANIFEST_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".json": "record"}
#: Settings the batch owns.
BATCH_OWNED = ("video_save_folder", "video_save_name")
REQUEST_FIELDS = {f.name: f for f in fields(GenerationRequest)}
#: The keys a row may hold besides the gen3c generator's options.
ROW_KEYS = ("name", *(key for key in REQUEST_FIELDS if key not in BATCH_OWNED))
#: The files a job named NAME may write (see :class:`~gen3c.pipelines.camera_video.OutputWriter`)
#: and its status file: two jobs must not share one.
OUTPUT_FILES = (*RUN_FILES.values(), "{}_status.json")
#: Bumped when the meaning of a stored request hash changes (2: input paths inside the manifest's
#: folder hashed relative to it; 3: every path, ``checkpoint_dir``, ``cache_dir`` and
#: ``depth_estimator`` too); a status of an earlier version still matches its job, :attr:`Job.earlier_hashes`.
HASH_VERSION = 3


@dataclass(frozen=True)
class Job:
    """One manifest row, checked.

    Attributes:
        name: output name (files ``NAME.mp4``, ``NAME_status.json``, … in the batch folder).
        line: where the row is in the manifest (JSONL line / CSV line), for messages.
        settings: the request's settings with paths resolved, without the batch-owned fields.
        request_hash: sha256 of ``settings`` (and ``name``): a changed row re-runs.
        manifest: the manifest's absolute path (its status file records it: another manifest's
            job of the same name in the same folder is told apart).
        earlier_hashes: the request hashes earlier gen3c versions wrote (version 2: only input
            paths and ``lora`` relative; 1: every path absolute): a status file of those is this
            job's too, not a changed row.
    """

    name: str
    line: int
    settings: dict[str, Any]
    request_hash: str
    manifest: str = ""
    earlier_hashes: tuple[str, ...] = ()

    def same_request(self, status: dict[str, Any] | None) -> bool:
        """Whether a status file records this job's request: by its hash (or an earlier one), or by
        its settings (:meth:`same_settings`)."""
        recorded = (status or {}).get("request_sha256")
        return (isinstance(recorded, str) and recorded in (self.request_hash, *self.earlier_hashes)) or self.same_settings(status)

    def same_settings(self, status: dict[str, Any] | None) -> bool:
        """Whether a status file records this very job, its paths absolute: a copy of the manifest
        in another folder naming the same files (whose request hash, paths inside the manifest's
        folder relative to it, differs) is the same job; a moved project folder is not."""
        recorded = (status or {}).get("settings")
        return isinstance(recorded, dict) and _normalized(recorded) == _normalized(json.loads(json.dumps(self.settings, default=json_default)))

    def request(self, folder: str | Path) -> GenerationRequest:
        """The job's request, writing into ``folder``."""
        data = {**self.settings, "video_save_folder": str(folder), "video_save_name": self.name}
        return GenerationRequest.from_dict(data, name=f"job {self.name!r}")


def _normalized(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with each absolute path as :func:`os.path.normpath` writes it: a manifest's
    ``../inputs/a.png`` resolves to ``FOLDER/../inputs/a.png``, the file another's ``inputs/a.png`` names."""

    def norm(key: str, value: Any) -> Any:
        path_like = key in (*MOVABLE_FIELDS, *OPTION_PATH_FIELDS) and isinstance(value, str) and os.path.isabs(value)
        return os.path.normpath(value) if path_like else value

    out = {key: norm(key, value) for key, value in settings.items()}
    if isinstance(out.get("generator_options"), dict):
        out["generator_options"] = {key: norm(key, value) for key, value in out["generator_options"].items()}
    return out


def load_manifest(path: str | Path, *, check_inputs: bool = False, trust_checkpoint: bool = False) -> list[Job]:
    """Read and check a JSONL or CSV manifest.

    Every row is checked, and every mistake found is reported at once (by line), so one run
    of the check shows all there is to fix.

    Args:
        check_inputs: also check that each row names one input and that the files its rows name
            (``input_image_path``, ``depth_path``, ``camera_file``, …) exist, as ``gen3c batch``
            does before running anything.
        trust_checkpoint: let rows set ``trust_checkpoint`` (full unpickling of a legacy ``.pt``
            input, which can run code). A manifest — or a run record someone sent — cannot grant
            that itself: ``gen3c batch --trust_checkpoint`` does.
    Raises:
        Gen3cInputError: unreadable file, malformed rows, unknown settings, values of the wrong
            type, duplicate or invalid names, missing input files (naming the lines).
    """
    p = Path(path)
    kind = MANIFEST_FORMATS.get(p.suffix.lower())
    if kind is None:
        raise Gen3cInputError(f"manifest {quoted_path(p)} must end in .jsonl or .csv (one job per line or row), or be a run record NAME_run.json")
    refuse_special_file(p, "manifest")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise Gen3cInputError(f"manifest {quoted_path(p)} does not exist: check the path") from None
    except IsADirectoryError:
        raise Gen3cInputError(f"manifest {quoted_path(p)} is a folder: pass the manifest file in it") from None
    except OSError as exc:
        raise Gen3cInputError(f"manifest {quoted_path(p)} cannot be read ({exc}): write it as UTF-8 text") from None
    # (a byte order mark, UTF-16 as PowerShell 5's `>` writes it, CRLF line ends: gen3c.io.text)
    text = user_text(data, f"manifest {quoted_path(p)}", "pass a .jsonl or .csv manifest (one job per line or row)", "a manifest")
    problems: list[tuple[int, str]] = []  # (line, message) of every mistake found
    rows = {"jsonl": _jsonl_rows, "csv": _csv_rows, "record": _record_rows}[kind](text, p, problems)
    if not rows and not problems:
        raise Gen3cInputError(
            f"manifest {quoted_path(p)} lists no jobs: add one JSON object per line (or CSV rows under a header)"
        )
    # A record's paths are absolute; one written before they were names them as typed where the run started.
    base = Path.cwd() if kind == "record" else p.resolve().parent
    jobs: list[Job] = []
    seen: dict[str, int] = {}
    files: dict[str, Job] = {}  # output file name → the job writing it
    for index, (line, row) in enumerate(rows, start=1):
        try:
            # (a record's paths are hashed as they are: its base is the current folder, not where it lies)
            job = make_job(row, line, index, base, str(p), relocatable=kind != "record", record=kind == "record")
            job = dataclasses.replace(job, manifest=str(p.resolve()))
            if kind != "record":  # (a record's name is the one its run wrote here)
                _refuse_unportable_name(job.name, f"manifest {quoted_path(p)} line {line}")
            if job.settings.get("trust_checkpoint") and not trust_checkpoint:
                raise Gen3cInputError(
                    f"manifest {quoted_path(p)} line {line}: trust_checkpoint lets a legacy .pt input be unpickled, which can run code, "
                    "and a manifest cannot grant that itself: if you trust this row's inputs, pass --trust_checkpoint to gen3c batch"
                )
            if check_inputs:
                check_job_inputs(job, f"manifest {quoted_path(p)} line {line}", "the current folder" if kind == "record" else "the manifest's folder")
        except Gen3cInputError as exc:
            problems.append((line, str(exc)))
            continue
        except OSError as exc:  # checking a path no file can have (a name too long for the file system)
            shown = quoted_path(exc.filename if exc.filename is not None else "", 60)
            problems.append((line, f"manifest {quoted_path(p)} line {line}: path {shown} cannot be used ({exc.strerror or exc}): fix it"))
            continue
        if job.name in seen:
            problems.append((line, f"manifest {quoted_path(p)} line {line}: name {job.name!r} is already used on line {seen[job.name]}: names must be unique"))
            continue
        seen[job.name] = line
        clash = None
        for pattern in OUTPUT_FILES:  # "a_buffer_masks".mp4 is also job "a"'s buffer video
            other = files.setdefault(one_file_key(pattern.format(job.name)), job)
            if other is not job and clash is None:
                theirs, mine = pattern.format(other.name), pattern.format(job.name)
                also = "" if theirs == mine else f" ({one_file_note(mine, theirs)})"
                clash = (f"manifest {quoted_path(p)} line {line}: name {job.name!r} writes {pattern.format(job.name)}, which job "
                         f"{other.name!r} (line {other.line}) writes too{also}: rename one of them")  # fmt: skip
        if clash:
            problems.append((line, clash))
            continue
        jobs.append(job)
    if problems:
        raise Gen3cInputError(_all_problems(problems, p))
    return jobs


def check_no_input_replaced(jobs: list[Job], writing: list[Job], folder: Path) -> None:
    """Refuse a batch in which a job of ``writing`` (those that run) would write one of its
    outputs over an input file a job of ``jobs`` names: an input kept in the output folder under
    a job's output name (``shot_cameras.json`` of job ``shot``) was replaced, and lost. Names are
    compared as :func:`~gen3c.io.paths.one_file_key` does (one file on macOS and Windows)."""
    writes: dict[str, tuple[Job, str]] = {}  # an output file's key → the job writing it, the file's name
    for job in writing:
        for pattern in OUTPUT_FILES:
            writes.setdefault(one_file_key(pattern.format(job.name)), (job, pattern.format(job.name)))
    same_folder: dict[str, bool] = {}  # an input's folder → whether it is the output folder
    for job in jobs:
        for key, value in _path_settings(job):
            path = Path(os.path.abspath(Path(value).expanduser()))  # (a record's relative paths start here)
            hit = writes.get(one_file_key(path.name))
            if hit is None or not path.is_file():
                continue
            parent = str(path.parent)
            if parent not in same_folder:
                try:
                    same_folder[parent] = os.path.samefile(parent, folder)
                except OSError:
                    same_folder[parent] = False
            if same_folder[parent]:
                other, file = hit
                also = "" if file == path.name else f" ({one_file_note(path.name, file)})"
                raise Gen3cInputError(
                    f"manifest {quoted_path(job.manifest)} line {job.line}: {key} {quoted_path(value)} is a file that job {other.name!r} "
                    f"(line {other.line}) writes{also} into the output folder, replacing it: pass another --output_folder, "
                    "or move that file"
                )


#: At most this many mistakes are listed in one message (then how many more there are).
MAX_LISTED_PROBLEMS = 10


def _all_problems(problems: list[tuple[int, str]], p: Path) -> str:
    """One message for every mistake: a single one as it is, several in line order, each
    without the repeated manifest name."""
    problems = sorted(problems, key=lambda item: item[0])
    if len(problems) == 1:
        return problems[0][1]
    prefix = f"manifest {quoted_path(p)} "
    listed = [message.removeprefix(prefix) for _, message in problems[:MAX_LISTED_PROBLEMS]]
    more = len(problems) - len(listed)
    return (f"manifest {quoted_path(p)} has {len(problems)} mistakes, so no job ran: " + "; ".join(listed)
            + (f"; … and {more} more" if more else ""))  # fmt: skip


def check_job_inputs(job: Job, where: str, base: str = "the manifest's folder") -> None:
    """Refuse a job whose inputs are missing: no input or two, a named file that does not
    exist, image settings on a video input (:func:`~gen3c.pipelines.request.input_kind`'s
    checks), an ``intrinsics`` that is neither 'fx,fy,cx,cy' nor a readable file, a relative
    name kept as a name (a hub id) that the run would read from the current folder instead —
    mistakes found now rather than when the job comes up. ``base``: where the row's relative
    paths start, in words (a run record's: the current folder)."""
    from gen3c.pipelines.request import input_kind

    for key, value in _path_settings(job):
        if key in PATH_FIELDS or not may_name_no_path(key, value):
            if key != "cache_dir" and not exists(value):  # a cache folder is made when needed
                raise Gen3cInputError(
                    f"{where}: {key} {quoted_path(value)} does not exist: fix the path (a relative one starts at {base})"
                )
        elif not Path(value).expanduser().is_absolute() and _taken_from_here(key, value):
            # Not beside the manifest (resolve_paths would have taken it), so kept as a name or hub
            # id; yet the run would read this file or folder of the current folder instead.
            raise Gen3cInputError(
                f"{where}: {key} {quoted_path(value)} is not in the manifest's folder, but is in the current folder ({quoted_path(Path.cwd())}), "
                "which a manifest's relative paths do not start from: give its path from the manifest's folder, or an absolute one"
            )
    try:
        input_kind(job.request("."))
        if job.settings.get("intrinsics") is not None:  # a typo'd file name or 3 numbers, not when the row comes up
            from gen3c.io.intrinsics import check_intrinsics_spec

            check_intrinsics_spec(job.settings["intrinsics"], "intrinsics")
    except Gen3cInputError as exc:
        raise Gen3cInputError(f"{where}: {row_spelling(str(exc), cells=csv_manifest(job.manifest))}") from None


def _path_settings(job: Job) -> list[tuple[str, str]]:
    """(field, value) of every setting of the job that names or may name a file or folder."""
    options = job.settings.get("generator_options") or {}
    pairs = [(key, job.settings.get(key)) for key in (*PATH_FIELDS, *MAYBE_PATH_FIELDS)]
    pairs += [(key, options.get(key)) for key in OPTION_PATH_FIELDS]
    return [(key, value) for key, value in pairs if isinstance(value, str) and value]


def _taken_from_here(key: str, value: str) -> bool:
    """Whether a relative ``value`` kept as a name or hub id is read from the current folder when
    the job runs: it exists here and is not a name its loader takes before the file system."""
    from gen3c.depth.names import MOGE_NAMES, PRIOR_NAME
    from gen3c.models.weights import OFFICIAL_REPO

    if (key == "depth_estimator" and value.strip().lower() in (PRIOR_NAME, *MOGE_NAMES)) or (
        key == "checkpoint_dir" and value == OFFICIAL_REPO
    ):
        return False
    return exists(value)


def _jsonl_rows(text: str, p: Path, problems: list[tuple[int, str]]) -> list[tuple[int, dict[str, Any]]]:
    """The JSON object of each line; a line that is none goes to ``problems``."""
    rows = []
    # Lines end at "\n" only (read_text made "\r\n" one): str.splitlines would also cut at U+2028,
    # form feeds and other characters JSON strings may hold raw, and miscount the lines.
    for line, raw in enumerate(text.split("\n"), start=1):
        stripped = raw.strip().removeprefix("\ufeff")  # (files saved with one, joined by cat: one starts a line inside)
        if not stripped or stripped.startswith("#"):  # blank lines and comments
            continue
        try:
            row = loads_json(stripped, f"manifest {quoted_path(p)} line {line}", "row of settings", "write one flat object per line",
                             object_pairs_hook=_once_each)  # fmt: skip
        except Gen3cInputError as exc:
            problems.append((line, str(exc)))
            continue
        except _RepeatedKey as exc:  # json keeps the last silently; a CSV's repeated column is refused too
            problems.append((line, f"manifest {quoted_path(p)} line {line}: {exc.args[0]!r} appears twice in the row: keep one"))
            continue
        except json.JSONDecodeError as exc:
            problems.append((line, f"manifest {quoted_path(p)} line {line} is not JSON ({exc.msg} at column {exc.colno}): write one object per line"))
            continue
        if not isinstance(row, dict):
            problems.append((line, f"manifest {quoted_path(p)} line {line} must be a JSON object of settings ({{\"name\": …, …}}), not {json_kind(row)}"))
            continue
        rows.append((line, row))
    return rows


class _RepeatedKey(ValueError):
    """A key given twice in one JSON object (its name)."""


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``' object hook: the object, refusing a key given twice (:class:`_RepeatedKey`)."""
    row: dict[str, Any] = {}
    for key, value in pairs:
        if key in row:
            raise _RepeatedKey(key)
        row[key] = value
    return row


def _record_rows(text: str, p: Path, problems: list[tuple[int, str]]) -> list[tuple[int, dict[str, Any]]]:
    """A run record (``NAME_run.json``, :func:`~gen3c.pipelines.request.run_record`) as the row of
    the job it records: its settings under its name (``video_save_name``), without the folder it
    wrote to (the batch's) and what the run found and wrote (:data:`RECORD_KEYS`)."""
    try:
        record = loads_json(text, f"run record {quoted_path(p)}", "run record", "pass the NAME_run.json that gen3c wrote")
    except json.JSONDecodeError as exc:
        raise Gen3cInputError(f"manifest {quoted_path(p)} is not JSON ({exc.msg} at line {exc.lineno}): pass a run record NAME_run.json") from None
    if not isinstance(record, dict) or not isinstance(record.get("outputs"), dict) or "video_save_name" not in record:
        if isinstance(record, dict) and ("camera_path" in record or isinstance(record.get("frames"), list)):
            # NAME_cameras.json, a camera_path.json or transforms.json: a path to replay, not a run to repeat
            raise Gen3cInputError(
                f"manifest {quoted_path(p)} is a camera file, not a run record: replay it with gen3c generate --camera_file {path_to_copy(p)}, "
                "or pass the run's NAME_run.json"
            )
        if isinstance(record, list):  # jobs as one JSON array
            raise Gen3cInputError(
                f"manifest {quoted_path(p)} is a JSON list: a manifest of jobs is JSONL, one JSON object per line, in a .jsonl file "
                "(or pass a run record NAME_run.json)"
            )
        raise Gen3cInputError(
            f"manifest {quoted_path(p)} is no run record (a NAME_run.json that gen3c generate, demo or the GUI writes, listing its outputs): "
            "pass one, or a .jsonl / .csv manifest"
        )
    in_memory = record.get("in_memory_inputs")
    if in_memory:
        what = ", ".join(map(str, in_memory)) if isinstance(in_memory, dict) else "its inputs"
        raise Gen3cInputError(
            f"run record {quoted_path(p)} cannot be run again: its inputs ({what}) were in memory (gen3c.generate() with arrays), "
            "not files: save them to files and pass their paths"
        )
    row = {"name": record["video_save_name"]}
    row.update((key, value) for key, value in record.items() if key not in (*RECORD_KEYS, *BATCH_OWNED))
    recorded = record.get("inputs_sha256")
    if isinstance(recorded, dict):
        from gen3c.pipelines.resume import counted_before, input_digests

        now = input_digests(row)
        for key in sorted(set(recorded) & set(now)):
            if recorded[key] != now[key] and not counted_before(key, row[key], recorded[key]):
                note(f"run record {quoted_path(p)}: {key} {quoted_path(row[key])} changed since that run (its sha256 is not the recorded one): "
                     "the job reads it as it is now, so its video may differ")  # fmt: skip
    return [(1, row)]


def _csv_rows(text: str, p: Path, problems: list[tuple[int, str]]) -> list[tuple[int, dict[str, Any]]]:
    """The settings of each row, as their types; a malformed row goes to ``problems``. Blank lines
    and lines starting with '#' are skipped, as in JSONL (above the header too: csv would take the
    first for the header); a quoted cell starting with '#' starts no comment."""
    lines = text.split("\n")  # (read_text made "\r\n" one)
    above = next((index for index, raw in enumerate(lines) if raw.strip() and not raw.lstrip().startswith("#")), len(lines))
    reader = csv.DictReader(io.StringIO("\n".join(lines[above:])))
    if not reader.fieldnames:
        if above:  # comments only
            return []
        raise Gen3cInputError(f"manifest {quoted_path(p)} has no header row: start the CSV with the setting names")
    header = [key.strip() for key in reader.fieldnames]
    for key in header:  # no setting name holds one: a spreadsheet's export with another separator (Excel's ';' in many locales)
        sep = next((sep for sep in (";", "\t") if sep in key), None)
        if sep:
            raise Gen3cInputError(
                f"manifest {quoted_path(p)} line {above + 1}: header cell {key[:40]!r} holds {sep!r}: a CSV manifest's cells are separated by commas; "
                "save it with ',' as the separator"
            )
    twice = sorted({key for key in header if key and header.count(key) > 1})
    if twice:  # DictReader would keep only the last of them
        raise Gen3cInputError(f"manifest {quoted_path(p)} line {above + 1}: column {twice[0]!r} appears twice in the header: keep one")
    # Columns with an empty header cell, keyed by their index: a spreadsheet's export of empty columns
    # past the table (",," ending every line); their cells must be empty.
    unnamed = [index for index, key in enumerate(header) if not key]
    reader.fieldnames = [key or index for index, key in enumerate(header)]
    rows = []
    for record in reader:
        # Where the row starts: line_num is its last line, past the newlines of quoted cells (a prompt).
        cells = [*record.values(), *(record.get(None) or [])]
        line = above + reader.line_num - sum(cell.count("\n") for cell in cells if isinstance(cell, str))
        if lines[line - 1].lstrip().startswith("#"):  # a row commented out (its cells may be any number)
            continue
        if any(cell.strip() for cell in record.pop(None, None) or ()):  # (empty cells past the header end hold nothing)
            problems.append((line, f"manifest {quoted_path(p)} line {line} has more cells than the header: quote cells holding commas"))
            continue
        stray = next((index for index in unnamed if (record.get(index) or "").strip()), None)
        if stray is not None:
            problems.append((line, f"manifest {quoted_path(p)} line {line}: cell {record[stray].strip()[:40]!r} is in column {stray + 1}, "
                                   "whose header cell is empty: write its setting's name in the header, or delete the cell"))  # fmt: skip
            continue
        for index in unnamed:
            record.pop(index, None)
        if any(value is None for value in record.values()) and any(record.values()):
            problems.append((line, f"manifest {quoted_path(p)} line {line} has fewer cells than the header: leave a cell empty (,,) for a default"))
            continue
        # Spaces around a cell (", left") are layout, not part of a path or a preset name.
        try:
            row = {key: _csv_value(key, value.strip(), p, line) for key, value in record.items() if value and value.strip()}
        except Gen3cInputError as exc:
            problems.append((line, str(exc)))
            continue
        if row:
            rows.append((line, row))
    return rows


def _csv_value(key: str, text: str, p: Path, line: int) -> Any:
    """A CSV cell as the type its setting takes (CSV cells are all text)."""
    kind = _setting_type(key)
    where = f"manifest {quoted_path(p)} line {line}: {key!r}"
    try:
        if kind == "int":
            try:
                return int(text)
            except ValueError:  # "25.0": how pandas writes an int column that has gaps
                number = float(text)
                if not number.is_integer():
                    raise
                return int(number)
        if kind == "float":
            return float(text)
        if kind == "bool":
            value = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}.get(
                text.strip().lower()
            )
            if value is None:
                raise ValueError(text)
            return value
        if kind == "dict":
            value = loads_json(text, where, "setting", "write a flat JSON object")
            if not isinstance(value, dict):
                raise ValueError(text)
            return value
    except Gen3cInputError:  # loads_json's (a ValueError too)
        raise
    except (ValueError, json.JSONDecodeError):
        shown = {"bool": "true or false", "dict": "a JSON object"}.get(kind, kind)
        raise Gen3cInputError(f"{where} must be {shown}, got {text[:40]!r}") from None
    return text


def _setting_type(key: str) -> str:
    """The type ("int", "float", "bool", "dict" or "str") of a request field or gen3c generator option."""
    if key == "name":
        return "str"
    if key in REQUEST_FIELDS:
        annotation = str(REQUEST_FIELDS[key].type).replace(" | None", "")
        return "dict" if annotation.startswith("dict") else annotation
    kind = _generator_option_types().get(key)
    return {int: "int", float: "float", bool: "bool"}.get(kind, "str")


def _generator_option_types() -> dict[str, type]:
    """The gen3c generator's options (empty when the diffusion extra is not installed, or fails to
    import: a gen3c job's check imports it again through :func:`gen3c.dependencies.require`, which names it)."""
    try:
        from gen3c.pipelines.loading import GENERATOR_OPTIONS
    except Exception:
        return {}
    return GENERATOR_OPTIONS


def make_job(
    row: dict[str, Any], line: int, index: int, base: Path, manifest: str = "manifest", relocatable: bool = True, record: bool = False
) -> Job:
    """Check one row and resolve its paths against ``base`` (the manifest's folder); a refusal
    names the row's keys (:func:`row_spelling`), and so does a note. ``relocatable``: hash its
    paths inside ``base`` relative to it (:func:`_relative_paths`), so a folder moved with
    its manifest, inputs and outputs keeps its jobs. ``record``: the row is a run record's, which
    holds every setting, defaults too (else the row's settings are the ones its author wrote,
    refused where the job would ignore them even at their default value)."""
    where = f"manifest {quoted_path(manifest)} line {line}"
    spell = functools.partial(row_spelling, cells=csv_manifest(manifest))
    try:
        with spelled_notes(spell):
            return _make_job(row, line, index, base, where, relocatable, record)
    except Gen3cInputError as exc:
        raise Gen3cInputError(f"{where}: {spell(str(exc).removeprefix(f'{where}: '))}") from None


def csv_manifest(manifest: str | os.PathLike) -> bool:
    """Whether ``manifest`` is a CSV one, whose rows drop a setting by leaving its cell empty
    (:func:`~gen3c.pipelines.spelling.row_spelling`'s ``cells``)."""
    return MANIFEST_FORMATS.get(Path(manifest).suffix.lower()) == "csv"


def _make_job(row: dict[str, Any], line: int, index: int, base: Path, where: str, relocatable: bool, record: bool) -> Job:
    row = dict(row)
    row_options = row.get("generator_options") if isinstance(row.get("generator_options"), dict) else {}
    written = () if record else {key for key, value in (*row.items(), *row_options.items()) if value is not None}
    name = row.pop("name", f"job_{index:05d}")
    if not isinstance(name, str):  # {"name": 7}: the fix is quotes, not another name
        number = isinstance(name, (int, float)) and not isinstance(name, bool)
        fix = f'quote it ("name": "{name}")' if number else "give a text name, or leave the key out for job_NNNNN"
        raise Gen3cInputError(f"{where}: name must be text, got {describe_value(name)}: {fix}")
    if name != name.strip():  # "  pad  " wrote "  pad  .mp4", a file no one finds by its name
        raise Gen3cInputError(f"{where}: name {name!r} starts or ends with spaces: remove them")
    if (
        not name
        or Path(name).name != name
        or name in (".", "..")
        or name.startswith(".")
    ):
        raise Gen3cInputError(
            f"{where}: name {name!r} must be a plain file name (no folders, not starting with '.')"
        )
    check_output_name(name, f"{where}: name")
    row = _whole_numbers(row)
    owned = [key for key in BATCH_OWNED if key in row]
    if owned:
        raise Gen3cInputError(
            f"{where}: {', '.join(owned)} are set by gen3c batch (--output_folder and 'name'): leave them out"
        )
    settings = {key: value for key, value in row.items() if key in REQUEST_FIELDS}
    extra = {key: value for key, value in row.items() if key not in REQUEST_FIELDS}
    if extra:
        # A gen3c row's options are checked by the diffusion extra's names (None without it); another
        # row's gen3c options are known by name (torch-free) and refused below, null ones left out.
        options = _generator_option_types() if row.get("generator") == "gen3c" else GEN3C_OPTION_NAMES
        unknown = [key for key in extra if key not in options]
        if unknown:
            # (a gen3c row without the diffusion extra knows none of its options: no guess then)
            close = difflib.get_close_matches(str(unknown[0]), [*ROW_KEYS, *GEN3C_OPTION_NAMES], n=1) if options else []
            gen3c_row = row.get("generator") == "gen3c"
            gen3c_only = ' (gen3c generator options need "generator": "gen3c")'
            if close:
                hint = f"did you mean {close[0]!r}?{gen3c_only if close[0] in GEN3C_OPTION_NAMES and not gen3c_row else ''}"
            elif not gen3c_row:
                hint = f"use GenerationRequest's fields{gen3c_only}"
            elif not options:
                hint = "use GenerationRequest's fields (gen3c generator options need the diffusion extra: pip install 'gen3c[diffusion]')"
            else:
                hint = f"use GenerationRequest's fields or the gen3c generator's options ({', '.join(options)})"
            raise Gen3cInputError(f"{where}: unknown settings {', '.join(repr(str(key))[:40] for key in unknown[:3])}: {hint}")
        nested = settings.get("generator_options") or {}
        if not isinstance(nested, dict):
            raise Gen3cInputError(
                f"{where}: 'generator_options' must be an object of options, got {nested!r:.40}"
            )
        twice = [key for key in extra if key in nested]
        if twice:
            raise Gen3cInputError(
                f"{where}: {', '.join(twice)} given both flat and in generator_options: give each once"
            )
        settings["generator_options"] = {**nested, **extra}
    options = settings.get("generator_options")
    for key in OPTION_PATH_FIELDS if isinstance(options, dict) else ():
        if options.get(key) is not None and not isinstance(options[key], str):  # checked before anything reads it as a path
            raise Gen3cInputError(f"{where}: {key} must be text (a path), got {describe_value(options[key])}")
    # Type-check every setting now (the request's own check), not when the job comes up.
    try:
        # Paths first: building the request may read one (a camera file's count of cameras).
        settings = resolve_paths(settings, base)
        request = GenerationRequest.from_dict({**settings, "video_save_name": name}, name=where)
    except Gen3cInputError as exc:
        raise Gen3cInputError(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") from None
    check_unused_settings(request, where, given=written)
    _check_values(request, where)
    if request.generator in GENERATORS and request.generator != "gen3c":  # (an unknown one: check_generator names it)
        given = sorted(str(key) for key, value in request.generator_options.items() if value is not None)
        try:
            refuse_unknown_options(given)  # a typo, named as such: not "set gen3c", which would refuse it next
            refuse_gen3c_only([f"--{key}" for key in given], "--generator gen3c")  # the request's own refusal (null is unset): row_spelling words it
        except Gen3cInputError as exc:
            raise Gen3cInputError(f"{where}: {exc}") from None
    # The request's coerced values (60 → 60.0 for a float), so JSONL and CSV rows hash alike.
    settings = {key: getattr(request, key) for key in settings}
    options = _checked_generator(request, where, written)
    if "generator_options" in settings:  # another generator's are nulls (refused above otherwise), which no run reads
        settings["generator_options"] = options if request.generator == "gen3c" else {}

    def digest(version: int, hashed: dict[str, Any]) -> str:
        text = json.dumps({"v": version, "name": name, **hashed}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    hashed = _relative_paths(settings, base) if relocatable else settings
    hashed_before = _relative_paths(settings, base, INPUT_FIELDS, ("lora",)) if relocatable else settings  # (version 2)
    return Job(name=name, line=line, settings=settings, request_hash=digest(HASH_VERSION, hashed),
               earlier_hashes=(digest(2, hashed_before), digest(1, settings)))  # fmt: skip


def _refuse_unportable_name(name: str, where: str) -> None:
    """Refuse a job name whose files Windows cannot hold (:func:`~gen3c.io.paths.windows_name_problem`),
    though this system can: a batch's output folder is meant to be copied anywhere (a share, a
    laptop), and such a job's files would be lost or renamed there."""
    problem = windows_name_problem(name)
    if problem is not None:
        raise Gen3cInputError(f"{where}: name {name[:40]!r} {problem}: rename it (outputs are meant to be copied to any system)")


def _relative_paths(
    settings: dict[str, Any], base: Path, keys: tuple[str, ...] = MOVABLE_FIELDS, options: tuple[str, ...] = OPTION_PATH_FIELDS
) -> dict[str, Any]:
    """``settings`` with each path inside ``base`` (an input, ``depth_estimator``, ``checkpoint_dir``,
    ``lora``, ``cache_dir``: ``keys`` and ``options``) as ``<manifest folder>/`` and its path from
    there, for the request hash: a moved folder keeps it. What inputs and an adapter hold is checked
    apart, the inputs' by the run record's ``inputs_sha256`` and the adapter's by its
    ``lora_sha256``, so one changed under a moved folder still re-runs; a checkpoint or depth
    estimator replaced at its path is not told, moved or not."""
    return with_paths_moved(settings, keys, base, lambda inside: f"<manifest folder>/{inside.as_posix()}", options)


def _whole_numbers(row: dict[str, Any]) -> dict[str, Any]:
    """The row with each exact whole-number float of an integer setting as its int (25.0: how pandas
    writes an int column that has gaps), flat or in ``generator_options``; 25.5 is left to the
    request's check, which refuses it as ``gen3c.generate`` does ("must be int, got float '25.5'")."""
    def whole(key: str, value: Any, kind: str) -> Any:
        # (nan and inf are no whole numbers either)
        return int(value) if kind == "int" and isinstance(value, float) and value.is_integer() else value

    row = {key: whole(key, value, _setting_type(key)) for key, value in row.items()}
    nested = row.get("generator_options")
    if isinstance(nested, dict):
        types = _generator_option_types()
        row["generator_options"] = {key: whole(key, value, "int" if types.get(key) is int else "")
                                    for key, value in nested.items()}  # fmt: skip
    return row


def _check_values(request: GenerationRequest, where: str) -> None:
    """Refuse values no run can use (a preset or resolution typo, a name ending in .mp4) now,
    not when the job comes up; what depends on the input files is left to the run."""
    from gen3c.io.resolution import parse_resolution
    from gen3c.trajectories import PRESETS, ROTATION_MODES, TRAJECTORY_SCALES

    try:
        check_request(request)
        if request.generator != "gen3c" or not _generator_option_types():  # (else check_generator: by its model's sizes)
            parse_resolution(request.resolution)
        for key, choices in (("trajectory", PRESETS), ("camera_rotation", ROTATION_MODES),
                             ("trajectory_scale", TRAJECTORY_SCALES)):  # fmt: skip
            value = getattr(request, key)
            if value not in choices:
                raise Gen3cInputError(f"{key} {str(value)[:40]!r} is unknown: choose one of {', '.join(choices)}")
    except Gen3cInputError as exc:
        raise Gen3cInputError(f"{where}: {exc}") from None


def _checked_generator(request: GenerationRequest, where: str, written: Collection[str] = ()) -> dict[str, Any]:
    """The row's generator and its options checked now, not when the job comes up, by the checker
    ``gen3c generate`` runs (:func:`~gen3c.pipelines.request.check_generator`: the same mistakes
    refused for the same reason). Returns the options as given, each coerced as that checker
    coerces it (a whole number for a float option becomes a float, so rows hash alike). Without
    the diffusion extra (a Ray head node, say) the gen3c generator's options are unknown here;
    the run then says what to install. ``written``: the settings the row's author wrote (its
    gen3c options among them; none of a run record's)."""
    if request.generator == "gen3c" and not _generator_option_types():
        return dict(request.generator_options)
    try:
        checked = check_generator(request, written)
    except Gen3cInputError as exc:
        raise Gen3cInputError(f"{where}: {exc}") from None
    return {key: checked.get(key, value) for key, value in request.generator_options.items()}
