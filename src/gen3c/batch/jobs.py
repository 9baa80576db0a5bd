"""Running one batch job, its status file, and the integrity check that lets a re-run skip it.

Each job writes ``NAME_status.json`` beside its outputs, atomically: ``running`` when it starts,
then ``done`` (with the size, sha256 and frame count of every output file) or ``failed`` (with
the error and the sha256 of its input files). A job counts as finished only when its status says
``done`` for the same request hash, every output still has the recorded size and sha256 and its
videos the expected frame count, and its input files still have the sha256 its run record
(``NAME_run.json``, ``inputs_sha256``) lists, and its LoRA adapter the sha256 it lists
(``generator_settings.lora_sha256``), so a killed, truncated or edited output, a changed manifest
row or an input file or adapter changed under the same path runs again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gen3c.batch.manifest import OUTPUT_FILES, Job, csv_manifest
from gen3c.environment import utc_timestamp
from gen3c.errors import Gen3cInputError, collect_notes, first_line, quoted_path, spelled_notes
from gen3c.io import atomic
from gen3c.io.atomic import write_text_atomic
from gen3c.io.formats import json_default, json_kind
from gen3c.io.hashing import sha256_file
from gen3c.pipelines.request import GenerationRequest, GeneratorPool, lora_digest
from gen3c.pipelines.resume import BATCH_RESUMES
from gen3c.pipelines.spelling import row_spelling

STATUS_SUFFIX = OUTPUT_FILES[-1].format("")
#: How a batch's user allows a row's legacy pickled ``.pt`` sample (load_manifest's rule).
#: (gen3c batch's flag quoted: a job's refusal names the row's keys, row_spelling, and this is no row key)
BATCH_GRANTS_TRUST = "set the row's trust_checkpoint to true and pass `--trust_checkpoint` to gen3c batch"


class BatchStopped(Gen3cInputError):
    """The batch cannot go on (its worker processes keep dying under it): one line, and exit code
    1, as for failed jobs, not 2, as for a mistake in the command."""

    exit_code = 1


@dataclass
class JobOutcome:
    """What became of one job in this batch run.

    Attributes:
        state: "done" (ran now), "skipped" (finished before, outputs verified), "failed" (ran now
            and failed), "failed_earlier" (failed before and not retried) or "not_run" (the
            batch stopped before it).
        note: why a finished-looking job ran again, or other remarks.
        worker: ``host:pid`` of the process that ran it.
        loaded_generator: this job had to load its generator (False: reused the worker's).
    """

    name: str
    state: str
    seconds: float = 0.0
    frames: int = 0
    video: str = ""
    error: str = ""
    note: str = ""
    worker: str = ""
    loaded_generator: bool = False


def status_path(folder: str | Path, name: str) -> Path:
    return Path(folder) / f"{name}{STATUS_SUFFIX}"


#: The key :func:`read_status` gives a status file that is no JSON object, with why.
UNREADABLE = "_unreadable"


def read_status(folder: str | Path, name: str) -> dict[str, Any] | None:
    """The job's status record; None when absent; ``{UNREADABLE: why}`` when it is no JSON object
    (an edit gone wrong, a disk error): then the job runs, saying so."""
    path = status_path(folder, name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        why = f"not JSON ({exc.msg})" if isinstance(exc, json.JSONDecodeError) else first_line(exc)
        return {UNREADABLE: why}
    return data if isinstance(data, dict) else {UNREADABLE: f"{json_kind(data)}, not an object"}


def write_status(folder: str | Path, job: Job, state: str, **record: Any) -> dict[str, Any]:
    """Write the job's status file. Raises :class:`BatchStopped` when it cannot be written (a full
    disk, a folder made read-only): no job of the batch could record its work."""
    data = {"name": job.name, "line": job.line, "manifest": job.manifest, "output_folder": str(Path(folder).resolve()),
            "state": state, "request_sha256": job.request_hash, **record,
            "updated_at": utc_timestamp(), "worker": worker_id()}  # fmt: skip
    path = status_path(folder, job.name)
    try:
        write_text_atomic(path, json.dumps(data, indent=1, default=json_default))
    except OSError as exc:
        raise cannot_write(path, exc) from None
    return data


def cannot_write(path: Path, exc: OSError) -> BatchStopped:
    return BatchStopped(
        f"gen3c batch stopped: cannot write {quoted_path(path)} ({exc.strerror or exc}): free space on that disk or fix "
        "the folder's permissions, then run the same command again"
    )


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def file_record(path: Path, folder: Path) -> dict[str, Any]:
    """Size, sha256 and (for videos) the frame count of an output file."""
    from gen3c.io.video import count_video_frames

    record: dict[str, Any] = {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}
    if path.suffix == ".mp4":
        record["frames"] = count_video_frames(path, f"output {path.name}")
    return record


def changed_input(job: Job, recorded: Any, digests: dict[str, str] | None = None) -> str | None:
    """Which of the job's input files is not as ``recorded`` (``inputs_sha256``: by field, the sha256
    a run record or a failed job's status lists), one line; None when all are as recorded, or when
    nothing was recorded (a record from before gen3c wrote ``inputs_sha256``: it cannot tell).
    ``digests``: see :func:`input_sha256`.
    """
    if not isinstance(recorded, dict):
        return None
    from gen3c.pipelines.resume import counted_before

    now = input_sha256(job, digests)
    for key in sorted(set(recorded) | set(now)):
        if recorded.get(key) != now.get(key) and not counted_before(key, job.settings.get(key), recorded.get(key), digests):
            shown = Path(str(job.settings.get(key) or recorded.get(key))).name
            return f"its {key} {shown} changed since it ran (its sha256 is not the recorded one)"
    return None


def recorded_inputs(folder: str | Path, status: dict[str, Any]) -> Any:
    """The ``inputs_sha256`` a job's status lists (a failed job's), or its run record (a finished
    job's); None when neither does (a job cut short, a record of an older gen3c)."""
    if "inputs_sha256" in status:
        return status["inputs_sha256"]
    outputs = status.get("outputs")
    record = outputs.get("run") if isinstance(outputs, dict) else None
    if not isinstance(record, dict):
        return None
    try:
        run = json.loads((Path(folder) / Path(str(record.get("file", ""))).name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return run.get("inputs_sha256") if isinstance(run, dict) else None


def input_sha256(job: Job, digests: dict[str, str] | None = None) -> dict[str, str]:
    """The sha256 of each input file (or folder) the job names, by field, as a run record lists
    them (:func:`~gen3c.pipelines.resume.input_digests`); one that cannot be read is left out.
    ``digests``: sha256 by path, kept across the jobs of one plan (an input many jobs share is read once)."""
    from gen3c.pipelines.resume import INPUT_FIELDS, input_digests

    digests = {} if digests is None else digests
    now = {}
    for key in INPUT_FIELDS:
        value = job.settings.get(key)
        if not isinstance(value, str) or not value:
            continue
        # (a ViPE result counts by the clip read: one per clip)
        clip = job.settings.get("vipe_clip") if key == "vipe_path" else None
        cached = value if clip is None else f"{value}\0vipe_clip={clip}"
        if cached not in digests:
            try:
                digests[cached] = input_digests({key: value, "vipe_clip": clip}).get(key, "")
            except OSError:  # unreadable: the run says so, if it comes to that
                digests[cached] = ""
        if digests[cached]:
            now[key] = digests[cached]
    return now


def check_finished(
    job: Job,
    folder: str | Path,
    status: dict[str, Any] | None,
    digests: dict[str, str] | None = None,
    notes: list[str] | None = None,
) -> str | None:
    """None when the job is finished, its outputs intact and its input files and LoRA adapter as
    its run record lists them; else why it must run (one line). ``digests``: see
    :func:`input_sha256`; ``notes``: remarks on a finished job are added to it (what its record
    cannot tell)."""
    from gen3c.io.video import count_video_frames

    if status is None:
        return "no status file"
    if UNREADABLE in status:
        return f"its status file {status_path(folder, job.name).name} cannot be read ({status[UNREADABLE]})"
    if not job.same_request(status):
        return "its manifest row changed"
    if status.get("state") != "done":
        return "the batch stopped while it ran" if status.get("state") == "running" else "it had not finished"
    outputs = status.get("outputs")
    if not isinstance(outputs, dict) or "video" not in outputs:
        return "its status lists no outputs"
    for key, record in outputs.items():
        # A hand-edited status: each output must be {"file": a name in this folder, "bytes": int, "sha256": str}.
        file = record.get("file") if isinstance(record, dict) else None
        if not (isinstance(file, str) and file and Path(file).name == file and isinstance(record.get("bytes"), int)
                and isinstance(record.get("sha256"), str)):  # fmt: skip
            return f"its status file {status_path(folder, job.name).name} is malformed (output {str(key)[:40]!r} is no file record)"
    request = job.request(folder)
    expected = request.num_video_frames
    for key, record in outputs.items():
        path = Path(folder) / record["file"]
        if not path.is_file():
            return f"its {key} output {path.name} is missing"
        if path.stat().st_size != record.get("bytes") or sha256_file(path) != record.get("sha256"):
            return f"its {key} output {path.name} changed since it was written"
        if path.suffix == ".mp4":
            try:
                frames = count_video_frames(path, f"output {path.name}")
            except Gen3cInputError:
                return f"its {key} output {path.name} cannot be read"
            if frames != expected:
                return f"its {key} output {path.name} has {frames} frames, not {expected}"
    # The run record says what the outputs were made from: an input edited under the same path since.
    record = outputs.get("run")
    if not isinstance(record, dict):
        return None  # a status from before runs were recorded: nothing to compare with
    try:
        run = json.loads((Path(folder) / str(record.get("file", ""))).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        run = None
    if not isinstance(run, dict):
        return f"its run record {record.get('file')} cannot be read"
    return changed_input(job, run.get("inputs_sha256"), digests) or changed_lora(request, run, digests, notes)


def changed_lora(
    request: GenerationRequest, run: dict[str, Any], digests: dict[str, str] | None = None, notes: list[str] | None = None
) -> str | None:
    """Why a finished job whose ``--lora`` adapter is not the one its run record ``run`` lists
    (``generator_settings.lora_sha256``: the sha256 of its weights, :func:`~gen3c.training.lora.lora_sha256`)
    must run again, one line; None when it is, or when the job names no adapter. A record from
    before gen3c wrote that digest cannot tell: the job counts as finished, noted in ``notes``."""
    path = request.generator_options.get("lora")
    if not path:
        return None
    settings = run.get("generator_settings")
    recorded = settings.get("lora_sha256") if isinstance(settings, dict) else None
    if not isinstance(recorded, str):
        if notes is not None:
            status = f"{request.video_save_name}{STATUS_SUFFIX}"
            notes.append(f"its run record does not list its LoRA adapter's sha256 (an older gen3c ran it), so an adapter "
                         f"replaced since cannot be told: delete {status} to run it again")  # fmt: skip
        return None
    # (an adapter counts by its weights file, not as an input folder is hashed; gone: None, the run says so)
    return None if lora_digest(path, digests) == recorded else "its LoRA adapter changed since it ran"


@dataclass
class _Attempt:
    outputs: dict[str, Any] = field(default_factory=dict)
    frames: int = 0
    error: str = ""
    error_type: str = ""
    trace: str = ""
    notes: list[str] = field(default_factory=list)
    loaded: bool = False


def remove_stale_parts(folder: Path, name: str) -> int:
    """Delete the temporary files a killed run of this job left (:func:`gen3c.io.atomic.remove_stale_parts`);
    the batch lock guarantees no other batch writes them."""
    return atomic.remove_stale_parts(folder, [pattern.format(name) for pattern in OUTPUT_FILES])


def remove_cut_short(folder: Path, name: str) -> None:
    """Delete what a run of this job that was cut short left: its temporary output files and the
    chunk it was writing in ``NAME.partial/`` (its finished chunks stay for the next run), the
    latter unless a run still going holds that folder (its lock). Called with the batch lock held,
    so no other batch writes them; a worker of a stopped batch that is still being ended writes
    only files of names no later run takes (its rename then fails, publishing nothing)."""
    from gen3c.pipelines.resume import partial_dir, remove_unfinished_chunk

    remove_stale_parts(folder, name)
    kept = partial_dir(folder, name)
    if kept.is_dir():
        with atomic.try_flock(kept) as free:
            if free:
                remove_unfinished_chunk(kept)


def kept_chunks(folder: Path, request: GenerationRequest) -> bool:
    """Whether an interrupted run of this very request kept finished chunks to resume from
    (``NAME.partial/``, :mod:`gen3c.pipelines.resume`). Chunks of an older version of the job (its
    row or the contents of its input files changed) are deleted: the job starts over (as it does
    from chunks made with other generator settings, which only the loaded generator can tell:
    ``run_request``'s ``restart_changed``).

    Raises:
        Gen3cInputError: the folder is not one gen3c wrote (a user's own of that name, an
            unreadable ``run.json``), or a run still going holds it: it is left alone.
    """
    from gen3c.pipelines.resume import made_by, not_a_run_folder, partial_dir, remove_unheld

    path = partial_dir(folder, request.video_save_name)
    if not path.is_dir():
        return False
    if made_by(path, request.to_dict(), request.read_input_contents()):  # the camera file as the run reads it
        return True
    why = not_a_run_folder(path)
    if why:
        raise Gen3cInputError(
            f"{quoted_path(path)} is where this job keeps its finished chunks, but gen3c did not write it ({why}): "
            "move that folder away or delete it, then run the batch again"
        )
    if not remove_unheld(path):
        raise Gen3cInputError(
            f"{quoted_path(path)} holds chunks of an older version of this job, and a run still going holds that folder (its lock): "
            "let that run end (or stop it), then run the batch again (or the folder cannot be locked here: delete it)"
        )
    return False


def _no_bars(stage: str, total: int):
    """A job's stages drawn nowhere (the batch's bar and lines say how jobs go), yet handed on, not
    None: the run notes the stage each starts, so running out of memory in a job names it
    ("rendering 3D cache for chunk 2/3", :class:`~gen3c.pipelines.request.RunStage`)."""
    return lambda n=1: None


def run_job(job: Job, folder: str | Path, pool: GeneratorPool) -> JobOutcome:
    """Run one job into ``folder``, recording its status; a failure is recorded, not raised.

    Only an interrupt (Ctrl-C, a kill) escapes: its status stays ``running`` and a re-run
    redoes the job.
    """
    from gen3c.pipelines.request import run_request

    folder = Path(folder)
    remove_stale_parts(folder, job.name)
    previous = read_status(folder, job.name)
    attempt = 1
    if (
        previous
        and job.same_request(previous)
        and isinstance(previous.get("attempt"), int)
    ):
        attempt = previous["attempt"] + 1
    write_status(folder, job, "running", attempt=attempt, settings=job.settings)
    started = time.perf_counter()
    result = _Attempt()
    loads = pool.loads
    try:
        # this job's own (a Ray actor may run others in other threads), in the row's keys as its refusals
        with collect_notes() as notes, spelled_notes(functools.partial(row_spelling, cells=csv_manifest(job.manifest))):
            request = job.request(folder)
            # A long job cut short (Ctrl-C, a kill) continues from its kept chunks; chunks made
            # with another checkpoint or sampler (known once it is loaded) are redone.
            resume = kept_chunks(folder, request)
            # The pool's generator is taken inside the run, as gen3c generate loads it: after the
            # input is read, and with what its loading noted in this job's notes and run record.
            out = run_request(request, generators=pool, keep_frames=False, resume=resume, restart_changed=True,
                              grant_trust=BATCH_GRANTS_TRUST, resume_with=BATCH_RESUMES, progress=_no_bars)  # fmt: skip
        result.notes = notes
        result.outputs = {key: file_record(path, folder) for key, path in out.paths.items()}
        for key, record in result.outputs.items():
            if "frames" in record and record["frames"] != request.num_video_frames:
                raise RuntimeError(
                    f"{key} output has {record['frames']} frames, expected {request.num_video_frames}"
                )
        result.frames = result.outputs["video"]["frames"]
    except Gen3cInputError as exc:  # worded for gen3c generate: the row's keys here, as when the manifest was read
        result.error, result.error_type = row_spelling(str(exc), cells=csv_manifest(job.manifest)), type(exc).__name__
    except Exception as exc:  # an internal failure of one job must not stop the batch
        # One line for the summary and the console (a CUDA error runs over several): all of it is in the traceback.
        result.error = f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__
        result.error_type = type(exc).__name__
        result.trace = traceback.format_exc()
    seconds = time.perf_counter() - started
    result.loaded = pool.loads > loads
    state = "failed" if result.error else "done"
    record = {
        "attempt": attempt,
        "seconds": round(seconds, 3),
        "settings": job.settings,
        "notes": result.notes,
    }
    if state == "done":
        record["outputs"] = result.outputs
    else:
        record.update(error=result.error, error_type=result.error_type, traceback=result.trace)
        # What it failed on: a job whose input file is fixed since runs again without --retry_failed.
        record["inputs_sha256"] = input_sha256(job)
    write_status(folder, job, state, **record)
    return JobOutcome(
        name=job.name, state=state, seconds=seconds, frames=result.frames, error=result.error,
        video=result.outputs.get("video", {}).get("file", ""), note="; ".join(result.notes), worker=worker_id(),
        loaded_generator=result.loaded,
    )  # fmt: skip


def lost_job(job: Job, folder: str | Path, why: str) -> JobOutcome:
    """Record a job whose worker died under it (killed, out of memory, a crash in native code)."""
    previous = read_status(folder, job.name) or {}
    with contextlib.suppress(BatchStopped):  # the next job's status says so, if it comes to that
        write_status(
            folder,
            job,
            "failed",
            attempt=previous.get("attempt", 1),
            settings=job.settings,
            error=why,
            error_type="WorkerDied",
            inputs_sha256=input_sha256(job),
        )
    return JobOutcome(name=job.name, state="failed", error=why)


def outcome_row(outcome: JobOutcome) -> dict[str, Any]:
    row = asdict(outcome)
    row["seconds"] = round(outcome.seconds, 2)
    return row
