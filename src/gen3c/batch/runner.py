"""``gen3c batch``: run every job of a manifest into one folder, resumably.

    manifest → :func:`~gen3c.batch.manifest.load_manifest` (all rows checked first)
    → plan: finished jobs whose outputs and input files verify are skipped, failed ones wait
      for ``retry_failed`` (or an input file changed since)
    → an engine runs the rest grouped by the generator they load (in this process, a process
      per GPU, or Ray actors)
    → ``batch_summary.csv``: one row per job of the manifest, in manifest order.

Re-running the same command is safe and cheap: it redoes only what is missing, changed or was in
flight when a previous run stopped.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

from gen3c.batch.jobs import (
    BatchStopped,
    JobOutcome,
    cannot_write,
    changed_input,
    check_finished,
    outcome_row,
    read_status,
    recorded_inputs,
    remove_cut_short,
    status_path,
)
from gen3c.batch.manifest import OUTPUT_FILES, Job, check_no_input_replaced, load_manifest
from gen3c.errors import Gen3cInputError, first_few, is_whole_number, note, quoted_path
from gen3c.io.atomic import ensure_writable_dir, replaced_spelling, write_text_atomic
from gen3c.io.paths import one_file_key, one_form
from gen3c.pipelines.request import GeneratorPool
from gen3c.pipelines.resume import partial_dir
from gen3c.progress import ProgressFactory

SUMMARY_NAME = "batch_summary.csv"
LOCK_NAME = ".gen3c_batch.lock"
STATES = ("done", "skipped", "failed", "failed_earlier", "not_run")


@dataclass
class BatchSummary:
    """One outcome per manifest job, in manifest order, and where the summary table went."""

    outcomes: list[JobOutcome]
    folder: Path
    summary_path: Path
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.counts = {state: sum(o.state == state for o in self.outcomes) for state in STATES}

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if o.state in ("failed", "failed_earlier")]


def default_output_folder(manifest: str | Path) -> Path:
    return Path("outputs") / Path(manifest).stem


def batch_label(num_jobs: int, num_to_run: int) -> str:
    """The batch bar's label: "Batch of 3 jobs", or with the jobs an earlier run settled
    ("Batch: 2 of 5 jobs to run, 3 finished or failed earlier")."""
    settled = num_jobs - num_to_run
    if not settled:
        return f"Batch of {num_jobs} job{'s' if num_jobs != 1 else ''}"
    return f"Batch: {num_to_run} of {num_jobs} jobs to run, {settled} finished or failed earlier"


def run_batch(
    manifest: str | Path,
    output_folder: str | Path | None = None,
    *,
    retry_failed: bool = False,
    workers: int | None = None,
    ray: bool = False,
    ray_address: str | None = None,
    gpus_per_job: float | None = None,
    cpus_per_job: float = 1.0,
    trust_checkpoint: bool = False,
    progress: ProgressFactory | None = None,
    on_outcome: Callable[[JobOutcome], None] | None = None,
) -> BatchSummary:
    """Run a manifest's jobs into ``output_folder`` (default ``outputs/<manifest name>``).

    Args:
        retry_failed: run jobs that failed in an earlier run again (default: report them).
        workers: local: processes (default 1: in this process); Ray: actors (default: what fits).
        ray / ray_address: run on Ray (a local instance, or the cluster at the address).
        gpus_per_job: GPUs per worker (default 1 when there are GPUs, else 0); Ray takes fractions.
        cpus_per_job: CPUs each Ray actor reserves.
        trust_checkpoint: let rows set ``trust_checkpoint`` (:func:`~gen3c.batch.manifest.load_manifest`).
        progress: ``progress(stage, total)`` → advance callback, advanced as jobs finish.
        on_outcome: called with each job's outcome as it finishes (skipped ones included).
    """
    from gen3c.batch.local import exit_if_spawned_from_unguarded_script
    from gen3c.parallel import refuse_several_processes

    exit_if_spawned_from_unguarded_script()  # a worker process running the calling script again
    # (before the manifest's inputs are read: every rank would read them and say its mistakes)
    refuse_several_processes("gen3c batch", "run every job", " (--workers N runs N jobs at once, each on its own GPU)")
    # 1. Read and check the whole manifest before anything runs
    jobs = load_manifest(manifest, check_inputs=True, trust_checkpoint=trust_checkpoint)
    _check_one_process_per_job(jobs)
    _check_engine(workers, ray or bool(ray_address), gpus_per_job, cpus_per_job, ray_address)
    folder = ensure_writable_dir(
        output_folder or default_output_folder(manifest), "--output_folder"
    ).resolve()
    with batch_lock(folder):
        _check_no_file_spelled_otherwise(jobs, folder)  # (before a status is read: it would be another's)
        # 2. Plan: skip verified jobs, hold back earlier failures unless asked to retry them
        outcomes: dict[str, JobOutcome] = {}
        to_run: list[Job] = []
        notes: dict[str, str] = {}
        digests: dict[str, str] = {}  # sha256 of each input file and adapter, read once for all jobs naming it
        planned: dict[str, dict | None] = {}  # each job's status before this run
        for job in jobs:
            status = planned[job.name] = read_status(folder, job.name)
            if status is not None and status.get("state") == "running":  # cut short: what its run left goes now
                remove_cut_short(folder, job.name)
            remarks: list[str] = []
            why = check_finished(job, folder, status, digests, remarks)
            if why is None:
                outputs = status["outputs"]
                outcomes[job.name] = JobOutcome(
                    job.name,
                    "skipped",
                    seconds=_number(status.get("seconds")),
                    frames=int(_number(outputs["video"].get("frames"))),
                    video=outputs["video"]["file"],
                    note="; ".join([*_earlier_notes(status), *remarks]),
                )
                continue
            failed_before = bool(status) and status.get("state") == "failed" and job.same_request(status)
            # A failure on input files changed since (the fix) runs again without being asked.
            fixed = changed_input(job, status.get("inputs_sha256"), digests) if failed_before else None
            if failed_before and not retry_failed and not fixed:
                outcomes[job.name] = JobOutcome(
                    job.name,
                    "failed_earlier",
                    error=str(status.get("error", "")),
                    note="rerun with --retry_failed",
                )
                continue
            to_run.append(job)
            if fixed:
                notes[job.name] = f"re-ran: {fixed.replace('since it ran', 'since it failed')}"
            elif status is not None and status.get("state") != "failed":
                notes[job.name] = f"re-ran: {why}"
        _check_not_another_manifests(to_run, planned, folder, digests)
        check_no_input_replaced(jobs, to_run, folder)
        to_run = grouped_by_generator(to_run, folder, digests)
        for outcome in outcomes.values():
            if on_outcome:
                on_outcome(outcome)
        # 3. Run the rest, recording each outcome as it arrives
        advance = progress(batch_label(len(jobs), len(to_run)), len(to_run)) if progress and to_run else None
        interrupted: KeyboardInterrupt | BatchStopped | None = None
        try:
            for outcome in _engine(to_run, folder, workers, ray, ray_address, gpus_per_job, cpus_per_job, digests):
                if outcome.name in notes:
                    outcome.note = "; ".join(filter(None, [notes[outcome.name], outcome.note]))
                outcomes[outcome.name] = outcome
                if on_outcome:
                    on_outcome(outcome)
                if advance:
                    advance(1)
        except (KeyboardInterrupt, BatchStopped) as exc:  # Ctrl-C, SIGTERM (errors.Terminated), dying workers
            interrupted = exc
        finally:
            # 4. The summary table, also after an interrupt (jobs not reached are listed as such)
            ordered = [outcomes.get(job.name) or _not_run(job, folder, planned[job.name]) for job in jobs]
            summary_path = folder / SUMMARY_NAME
            try:
                write_summary(summary_path, ordered)
            except OSError as exc:
                raise cannot_write(summary_path, exc) from None
    summary = BatchSummary(ordered, folder, summary_path)
    if interrupted is not None:
        counts = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in summary.counts.items() if n)
        cut = sum(o.note.startswith("interrupted") for o in ordered)
        # A BatchStopped says what to do itself.
        stopped, fix = (("the batch stopped", ": run the same command again to continue") if isinstance(interrupted, KeyboardInterrupt)
                        else (str(interrupted), ""))  # fmt: skip
        raise type(interrupted)(
            f"{stopped} ({counts}{f'; {cut} cut short while running' if cut else ''}); {quoted_path(summary_path)} lists every job{fix}"
        ) from None
    return summary


def _check_no_file_spelled_otherwise(jobs: list[Job], folder: Path) -> None:
    """Refuse a batch of which a job's file (``NAME.mp4``, ``NAME_status.json``, …) is, to this file
    system, one the folder holds under another spelling (:func:`~gen3c.io.atomic.replaced_spelling`):
    on macOS and Windows job ``room`` after an earlier batch's job ``Room`` read ``Room_status.json``
    as its own status (a finished ``Room`` could pass for it, a ``running`` one had the chunks of
    ``Room.partial`` removed) and wrote its own over it. The folder is listed once; only a name
    found in it in another spelling is asked of the file system."""
    held: dict[str, set[str]] = {}  # one_file_key → the names of that key the folder holds, in NFC
    try:
        for entry in os.listdir(folder):
            held.setdefault(one_file_key(entry), set()).add(one_form(entry))
    except OSError:
        return
    for job in jobs:
        for mine in (*(pattern.format(job.name) for pattern in OUTPUT_FILES), partial_dir(folder, job.name).name):  # (its kept chunks too)
            names = held.get(one_file_key(mine), ())
            if not names or one_form(mine) in names:  # none, or its own (as spelled)
                continue
            other = replaced_spelling(folder / mine)
            if other is not None:
                raise Gen3cInputError(
                    f"manifest {quoted_path(job.manifest)} line {job.line}: job {job.name!r} would write {mine} over {other!r} in "
                    f"{quoted_path(folder)}, the same file to this file system (it ignores case, as macOS and Windows do): rename "
                    "the job or pass another --output_folder, or spell its name as that file's is, to replace it"
                )


def _check_not_another_manifests(jobs: list[Job], planned: dict[str, dict | None], folder: Path, digests: dict[str, str]) -> None:
    """Refuse to run jobs over the outputs of another manifest's jobs of the same names: two
    manifests of one file name share the default folder (``outputs/<manifest name>``), and their
    rows named by number (``job_00001``) would overwrite each other's videos. A status file names
    the manifest and the folder it was written for; one of a manifest that is gone (moved or
    renamed) or wrote the same job (the same settings, or the same row on the same input contents:
    a copy of the manifest or of its project folder), or written in another folder (this one is a
    copy), is no other manifest's work to keep. ``digests``: the plan's (:func:`changed_input`)."""
    theirs: dict[str, list[str]] = {}  # the other manifest → its jobs this batch would overwrite
    for job in jobs:
        status = planned[job.name] or {}
        other = status.get("manifest")
        if (not isinstance(other, str) or not other or other == job.manifest or job.same_settings(status)
                or status.get("output_folder") != str(folder)):  # fmt: skip
            continue
        # The same row, paths inside the manifest's folder relative to it, is another project's
        # when it read other files there (two projects of one layout, jobs.jsonl each).
        if job.same_request(status) and changed_input(job, recorded_inputs(folder, status), digests) is None:
            continue
        try:
            if not Path(other).is_file() or Path(other).samefile(job.manifest):
                continue
        except OSError:
            continue
        theirs.setdefault(other, []).append(job.name)
    if not theirs:
        return

    names = [name for mine in theirs.values() for name in mine]
    files = ", ".join(status_path("", name).name for name in names[:3]) + (" …" if len(names) > 3 else "")
    several = len(names) > 1
    whose = "those jobs' status files" if several else "that job's status file"
    # (two manifests of one file name: most likely both wrote to the default folder)
    default = (" (the default, outputs/<manifest name>, is one folder for manifests of one file name)"
               if any(Path(other).name == Path(jobs[0].manifest).name for other in theirs) else "")  # fmt: skip
    if len(theirs) == 1:
        held = f"job{'s' if several else ''} {first_few(names)} of another manifest, {quoted_path(next(iter(theirs)))},"
    else:  # every other manifest named (the first 3), not only the first
        each = [f"{first_few(mine)} of {quoted_path(other)}" for other, mine in list(theirs.items())[:3]]
        more = f"; and jobs of {len(theirs) - 3} more" if len(theirs) > 3 else ""
        held = f"jobs of {len(theirs)} other manifests: {'; '.join(each)}{more},"
    raise Gen3cInputError(
        f"{quoted_path(folder)} holds the outputs of {held} which this manifest's jobs of those names would overwrite: pass another "
        f"--output_folder{default}, or delete {whose} {files} there to replace {'their' if several else 'its'} outputs"
    )


def _earlier_notes(status: dict) -> list[str]:
    """The notes of the run that made a skipped job's outputs, as its status file keeps them (a
    hand edit may have made them anything: only text is shown)."""
    notes = status.get("notes")
    return [text for text in notes if isinstance(text, str) and text] if isinstance(notes, list) else []


def _number(value: object) -> float:
    """A number of a status file (a hand edit may have made it anything), else 0."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else 0.0


def grouped_by_generator(jobs: list[Job], folder: Path, digests: dict[str, str] | None = None) -> list[Job]:
    """The jobs in the order to run them: grouped by the generator they load
    (:meth:`~gen3c.pipelines.request.GeneratorPool.key`: the model and the options that shape its
    weights, memory plan and kernels), each group where its first job is in the manifest, the
    jobs of a group in manifest order.

    A worker keeps one generator loaded (one model in memory: a 7B model is never held twice on
    a GPU) and loads another only when its next job needs one; run in manifest order, a manifest
    alternating two models would load a model for every job. Grouped, one worker loads each
    model once, and each of N workers (taking jobs from one queue in this order) at most once.
    ``digests``: the plan's (:func:`~gen3c.pipelines.request.lora_digest`).
    """
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(GeneratorPool.key(job.request(folder), digests), []).append(job)
    return [job for group in groups.values() for job in group]


def _not_run(job: Job, folder: Path, planned: dict | None) -> JobOutcome:
    """A job this run did not finish: not reached, or cut short while it ran (its status file
    says running, and is not the one ``planned`` read before the run: that may be an earlier
    batch's). Compared by content, not by time: a shared file system's clock is not this one's."""
    status = read_status(folder, job.name)
    running = status is not None and status.get("state") == "running" and status != planned
    return JobOutcome(job.name, "not_run", note="interrupted while running; it runs again next time" if running else "")


def _check_one_process_per_job(jobs: list[Job]) -> None:
    """Refuse what a batch cannot run: each job runs in one process (a worker takes whole GPUs,
    ``--gpus_per_job``), so a row's ``num_gpus`` above 1 — a torchrun launch of its own — failed
    every such job with "launch with torchrun"."""
    # (a null num_gpus is unset, one GPU, as the run reads it)
    split = [job for job in jobs if (job.settings.get("generator_options") or {}).get("num_gpus") not in (None, 1)]
    if split:
        lines = ", ".join(str(job.line) for job in split)
        raise Gen3cInputError(
            f"manifest line{'s' if len(split) > 1 else ''} {lines} set{'' if len(split) > 1 else 's'} num_gpus above 1, which needs a "
            "torchrun launch of its own: a batch job runs in one process; drop num_gpus (--workers N runs N jobs at once, "
            "each on its own GPU), or run that job alone with `torchrun --nproc_per_node=N -m gen3c generate … --num_gpus N`"
        )


def _check_engine(
    workers: int | None, use_ray: bool, gpus_per_job: float | None, cpus_per_job: float, ray_address: str | None = None
) -> None:
    """Refuse impossible engine settings (a ``ray_address`` of no form, or where nothing answers)
    before the output folder is made, the plan and the progress bar."""
    if workers is not None and (not is_whole_number(workers) or workers < 1):  # (True ran 1 worker, 2.5 failed in the pool)
        raise Gen3cInputError(f"--workers {workers!r} must be 1 or more, a whole number")
    for flag, value in (("--gpus_per_job", gpus_per_job), ("--cpus_per_job", cpus_per_job)):
        if value is not None and not math.isfinite(value):
            raise Gen3cInputError(f"{flag} {value} is impossible: pass a number of 0 or more")
    if use_ray:
        if (gpus_per_job or 0) < 0 or cpus_per_job < 0:
            raise Gen3cInputError("--gpus_per_job and --cpus_per_job must be 0 or more")
        from gen3c.batch.ray_engine import check_reachable, import_ray

        ray = import_ray()  # the batch extra: missing, it is one line before the output folder is made
        if not ray.is_initialized():  # (a process already joined to Ray runs there, whatever the address: run_ray)
            check_reachable(ray_address)
    elif (workers or 1) > 1 or gpus_per_job is not None:
        from gen3c.batch.local import worker_devices

        worker_devices(workers or 1, gpus_per_job)  # whole GPUs, no more than are visible


def _engine(jobs: list[Job], folder: Path, workers: int | None, ray: bool, ray_address: str | None,
            gpus_per_job: float | None, cpus_per_job: float, digests: dict[str, str]) -> Iterator[JobOutcome]:  # fmt: skip
    # digests: the plan's, so the workers' generator pools do not read an adapter the plan read again
    if not jobs:
        return iter(())
    if ray or ray_address:
        from gen3c.batch.ray_engine import run_ray

        return run_ray(
            jobs,
            folder,
            address=ray_address,
            workers=workers,
            gpus_per_job=gpus_per_job,
            cpus_per_job=cpus_per_job,
            digests=digests,
        )
    from gen3c.batch.local import run_processes, run_sequential

    if (workers or 1) == 1 and gpus_per_job is None:
        return run_sequential(jobs, folder, digests)
    return run_processes(jobs, folder, min(workers or 1, len(jobs)), gpus_per_job, digests)


def write_summary(path: Path, outcomes: list[JobOutcome]) -> None:
    """``batch_summary.csv``: name, state, seconds, frames, video, error, note, worker, loaded_generator."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(JobOutcome)])
    writer.writeheader()
    for outcome in outcomes:
        writer.writerow(outcome_row(outcome))
    write_text_atomic(path, buffer.getvalue())


@contextlib.contextmanager
def batch_lock(folder: Path):
    """Refuse a second batch writing into the same folder at the same time. The lock is the
    operating system's, so a killed batch never leaves a stale lock behind."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (document: one batch per folder)
        yield
        return
    fh = open(folder / LOCK_NAME, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raise Gen3cInputError(
                f"another gen3c batch (pid {fh.read().strip() or '?'}) is writing into {quoted_path(folder)}: wait for it or choose another --output_folder"
            ) from None
        except OSError as exc:  # a file system without flock (Lustre mounted without it, NFS without a lock daemon)
            note(f"{quoted_path(folder)} cannot be locked ({exc.strerror or exc}), so a second gen3c batch writing into it "
                 "at the same time would not be refused: run one batch at a time into this --output_folder")  # fmt: skip
            yield
            return
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fh.close()
