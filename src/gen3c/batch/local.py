"""The embedded engines: jobs one after another in this process, or a process per GPU.

Both yield each job's :class:`~gen3c.batch.jobs.JobOutcome` as it finishes. Worker processes
are started with ``spawn`` (safe with CUDA), each sees only its own GPUs through
``CUDA_VISIBLE_DEVICES`` and keeps its generator loaded across jobs. A worker that dies under a
job (killed, out of memory) costs that job only: it is recorded as failed and a new worker takes
the remaining jobs. Workers exit by themselves when the batch process goes away.

``spawn`` starts each worker by running the calling script again (as ``__mp_main__``); a script
that calls ``run_batch`` outside ``if __name__ == "__main__":`` would start a batch in every
worker. The worker notices (:func:`exit_if_spawned_from_unguarded_script`) and exits with
:data:`UNGUARDED_EXIT`, and the batch stops with one line saying so.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from gen3c.batch.jobs import BatchStopped, GeneratorPool, JobOutcome, lost_job, run_job
from gen3c.batch.manifest import Job
from gen3c.errors import Gen3cInputError, quoted_path, terminate_like_ctrl_c

#: Seconds the workers of an interrupted batch get to end by themselves before it sends them SIGTERM.
STOP_GRACE_S = 2.0
#: Exit code of a worker whose start ran the calling script into ``run_batch`` (sysexits' EX_CONFIG).
UNGUARDED_EXIT = 78


def exit_if_spawned_from_unguarded_script() -> None:
    """In a worker process that is still starting — running the calling script again, as spawn
    does — a call of ``run_batch`` is the script's own, unguarded one: end the worker quietly
    with :data:`UNGUARDED_EXIT` (the batch process says why) instead of starting a batch in it."""
    # multiprocessing marks a process that is still unpickling its start-up data (its main script
    # included) with _inheriting, and refuses to start processes from there for the same reason.
    if getattr(mp.current_process(), "_inheriting", False):
        raise SystemExit(UNGUARDED_EXIT)


def _unguarded_script_error(workers: int) -> Gen3cInputError:
    import sys

    script = getattr(sys.modules["__main__"], "__file__", None) or "the calling script"
    return Gen3cInputError(
        f"run_batch(workers={workers}) runs at the top level of {quoted_path(script)}, which every worker process runs again as it starts "
        '(multiprocessing\'s spawn): call it under `if __name__ == "__main__":` (or use one worker, or `gen3c batch`)'
    )


def run_sequential(jobs: Sequence[Job], folder: Path, digests: dict[str, str] | None = None) -> Iterator[JobOutcome]:
    """Run the jobs in this process, one after another, sharing one generator (``digests``: :class:`GeneratorPool`'s)."""
    pool = GeneratorPool(digests)
    for job in jobs:
        yield run_job(job, folder, pool)


def worker_devices(workers: int, gpus_per_job: float | None) -> list[str | None]:
    """``CUDA_VISIBLE_DEVICES`` of each worker process (None: leave it as it is).

    ``gpus_per_job`` None means 1 when CUDA is available, else 0.
    """
    import torch

    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus_per_job is None:
        gpus_per_job = 1 if available else 0
    if gpus_per_job != int(gpus_per_job) or gpus_per_job < 0:
        raise Gen3cInputError(
            f"--gpus_per_job {gpus_per_job}: local workers take whole GPUs (0, 1, 2, …); fractions need --ray"
        )
    per = int(gpus_per_job)
    if per == 0:
        return ["" if available else None] * workers  # "": hide the GPUs, run on the CPU
    if workers * per > available:
        raise Gen3cInputError(
            f"--workers {workers} × --gpus_per_job {per} needs {workers * per} GPUs but {available} are visible: "
            "lower --workers (or --gpus_per_job 0 to run on the CPU)"
        )
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [d.strip() for d in visible.split(",")] if visible else [str(i) for i in range(available)]
    return [",".join(ids[i * per : (i + 1) * per]) for i in range(workers)]


def worker_threads(workers: int) -> int:
    """Torch's CPU threads in each worker process: workers split the CPUs this process may use —
    its affinity, as taskset or a cluster's scheduler (SLURM's --cpus-per-task) sets it, not the
    machine's count, which made each of 4 workers given 8 of 128 cores run 32 threads — and none
    takes more than this process would (OMP_NUM_THREADS=1, torch.set_num_threads: a worker set
    its own count over them)."""
    import torch

    from gen3c.environment import usable_cpus

    return max(1, min(torch.get_num_threads(), usable_cpus() // workers))


def run_processes(
    jobs: Sequence[Job], folder: Path, workers: int, gpus_per_job: float | None = None, digests: dict[str, str] | None = None
) -> Iterator[JobOutcome]:
    """Run the jobs on ``workers`` processes (each on its own GPUs when there are GPUs; each
    starting with ``digests``: :class:`GeneratorPool`'s)."""
    devices = worker_devices(workers, gpus_per_job)
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    by_name = {job.name: job for job in jobs}
    for job in jobs:
        tasks.put(job)
    for _ in range(workers):
        tasks.put(None)  # one stop marker per worker
    threads = worker_threads(workers)

    def start(index: int):
        proc = ctx.Process(
            target=_worker_main,
            args=(devices[index], threads, str(folder), tasks, results, os.getpid(), digests),
            daemon=True,
        )
        with _children_ignore_ctrl_c():
            proc.start()
        return proc

    procs = {i: start(i) for i in range(workers)}
    in_flight: dict[int, Job] = {}
    unreported = dict(by_name)
    restarts = 0
    try:
        while unreported:
            try:
                kind, pid, payload = results.get(timeout=0.5)
            except queue.Empty:
                for i, proc in list(procs.items()):
                    if proc.is_alive() or proc.exitcode == 0:
                        continue
                    if proc.exitcode == UNGUARDED_EXIT:
                        raise _unguarded_script_error(workers) from None
                    job = in_flight.pop(proc.pid, None)
                    if job is not None:
                        unreported.pop(job.name, None)
                        yield lost_job(
                            job,
                            folder,
                            f"its worker process died (exit code {proc.exitcode}); rerun with --retry_failed",
                        )
                    restarts += 1
                    if restarts > len(jobs) + workers:
                        raise BatchStopped(
                            f"gen3c batch stopped: its worker processes keep dying as they start or run: "
                            f"{restarts} died, the last with exit code {proc.exitcode}{_exit_meaning(proc.exitcode)}: "
                            "find why (memory, the GPU driver), then rerun with --retry_failed"
                        ) from None
                    procs[i] = start(i)  # takes over the dead worker's share of the queue and its stop marker
                if not any(proc.is_alive() for proc in procs.values()):
                    # Every worker stopped normally, yet jobs are unreported: their messages were lost.
                    for job in list(unreported.values()):
                        yield lost_job(
                            job, folder, "its worker stopped without reporting it; rerun the batch"
                        )
                    unreported.clear()
                continue
            if kind == "stop":  # a worker that cannot go on, nor could any other (its BatchStopped)
                raise BatchStopped(payload)
            if kind == "start":
                in_flight[pid] = by_name[payload]
            else:
                in_flight.pop(pid, None)
                unreported.pop(payload.name, None)
                yield payload
    finally:
        # Every job reported: the workers are taking their stop markers. Else (Ctrl-C, a stop) the
        # workers that saw the Ctrl-C too (it reaches the whole process group) are unwinding, removing
        # their temporary files, which a SIGTERM would cut short: they get STOP_GRACE_S, together;
        # the rest (starting, which ignores Ctrl-C, or busy with a job) are then ended with SIGTERM.
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in procs.values():
            proc.join(timeout=5 if not unreported else max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        tasks.cancel_join_thread()


@contextlib.contextmanager
def _children_ignore_ctrl_c() -> Iterator[None]:
    """Processes started in the block ignore Ctrl-C (SIGINT) until they handle it themselves
    (:func:`_worker_main`): a spawned worker inherits SIG_IGN, and Python then sets no
    KeyboardInterrupt handler, so one still starting (importing torch and CUDA takes seconds) no
    longer dies of Ctrl-C with a traceback; the batch ends it with SIGTERM. (A Ctrl-C pressed in the
    milliseconds of a start is not seen.) Only the main thread may set a signal's handler."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _exit_meaning(code: int | None) -> str:
    """What a worker's exit code says, for the message: a signal's name (SIGKILL: often the
    out-of-memory killer)."""
    import signal

    if code is None or code >= 0:
        return ""
    try:
        name = signal.Signals(-code).name
    except ValueError:
        return ""
    return f" ({name}: often the out-of-memory killer)" if name == "SIGKILL" else f" ({name})"


def _worker_main(device: str | None, threads: int, folder: str, tasks, results, parent: int, digests: dict[str, str] | None) -> None:
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device  # before torch touches CUDA
    # The batch stops its workers with SIGTERM: unwind as on Ctrl-C, removing temporary files.
    terminate_like_ctrl_c()
    try:
        import torch

        torch.set_num_threads(threads)
        threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
        pool = GeneratorPool(digests)
        while (job := tasks.get()) is not None:
            results.put(("start", os.getpid(), job.name))
            results.put(("end", os.getpid(), run_job(job, folder, pool)))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the batch process reports it
        pass
    except BatchStopped as exc:  # one line for the batch process to stop with, not a worker's traceback
        results.put(("stop", os.getpid(), str(exc)))
    finally:
        # Its work is over: the batch's SIGTERM (ending it after a Ctrl-C) ends it at once, not inside
        # Python's exit clean-up with an "Exception ignored" traceback; another Ctrl-C is the batch's.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _exit_with_parent(parent: int) -> None:
    """End this worker when the batch process is gone (e.g. killed), so no orphan keeps running."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)
