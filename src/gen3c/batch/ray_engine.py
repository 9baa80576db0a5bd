"""The Ray engine: the same jobs on a Ray cluster (or a local Ray instance).

A pool of actors, each reserving ``cpus_per_job`` CPUs and ``gpus_per_job`` GPUs, keeps its
generator loaded across jobs (models load once per worker); each job is one actor task, handed
out as actors come free, so the queue stays in this process and killing the batch loses only
the jobs in flight (the actors belong to this driver and end with it). Outputs and status files
are written by the actors straight into the batch folder, which must therefore be at the same
path on every node (a shared file system), as must the inputs.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path

from gen3c.batch.jobs import GeneratorPool, JobOutcome, lost_job, run_job
from gen3c.batch.manifest import Job
from gen3c.errors import Gen3cInputError, first_few, first_line, note, quoted_path


class BatchActor:
    """A Ray actor's state: one generator pool for every job it runs."""

    def __init__(self, folder: str, digests: dict[str, str] | None = None) -> None:
        self.folder = Path(folder)
        self.pool = GeneratorPool(digests)

    def ready(self) -> bool:
        """Answers once the actor is up (placed on a node with the resources it reserves)."""
        return True

    def run(self, job: Job) -> JobOutcome:
        return run_job(job, self.folder, self.pool)


def import_ray():
    from gen3c.dependencies import require

    return require("ray", "gen3c batch --ray (or --ray_address)")


def check_reachable(address: str | None) -> None:
    """Fail at once on a ``host:port`` address where nothing listens (Ray itself retries for minutes)."""
    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise Gen3cInputError(f"--ray_address {address!r} must be 'auto', 'HOST:PORT' or 'ray://HOST:PORT'")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        raise Gen3cInputError(
            f"--ray_address {address!r}: nothing answers at {host}:{port} ({exc.strerror or exc}): start the cluster (ray start --head) or fix the address"
        ) from None


def run_ray(
    jobs: Sequence[Job],
    folder: Path,
    *,
    address: str | None = None,
    workers: int | None = None,
    gpus_per_job: float | None = None,
    cpus_per_job: float = 1.0,
    digests: dict[str, str] | None = None,
) -> Iterator[JobOutcome]:
    """Run the jobs on Ray actors, yielding each outcome as it finishes.

    Args:
        address: the cluster to join ("auto", "ray://host:10001", "host:6379"); None starts a
            local Ray instance (or joins the one ``RAY_ADDRESS`` names). When this process is
            already connected to Ray (``ray.init`` was called), that connection is used.
        workers: actors to start; default: as many as the cluster's resources fit.
        gpus_per_job: GPUs each actor reserves (fractions share a GPU); default 1 when the
            cluster has GPUs, else 0.
        digests: each actor's generator pool starts with these (:class:`~gen3c.pipelines.request.GeneratorPool`).
    """
    ray = import_ray()
    connected_here = not ray.is_initialized()
    if connected_here:
        check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise Gen3cInputError(f"--ray_address {address!r}: cannot join the Ray cluster ({exc})") from None
    actors: list = []
    in_flight: dict = {}  # a job's task → (its actor, the job)
    try:
        resources = ray.cluster_resources()
        if gpus_per_job is None:
            gpus_per_job = 1.0 if resources.get("GPU", 0) > 0 else 0.0
        if workers is None:
            fits = [resources.get("CPU", 0) / cpus_per_job if cpus_per_job else float("inf")]
            if gpus_per_job:
                fits.append(resources.get("GPU", 0) / gpus_per_job)
            workers = max(1, int(min(fits)) if min(fits) != float("inf") else 1)
        workers = max(1, min(workers, len(jobs)))
        actor_class = ray.remote(num_cpus=cpus_per_job, num_gpus=gpus_per_job)(BatchActor)
        pending = deque(jobs)
        # An actor gets a job once it is up: one the cluster has no room for yet (--workers beyond
        # what fits) would hold its job back for ever (the batch hung at its end); it stays idle instead.
        starting: dict = {}  # an actor's ready() task → the actor

        def start() -> None:
            actor = actor_class.remote(str(folder), digests)
            actors.append(actor)
            starting[actor.ready.remote()] = actor

        def submit(actor) -> None:
            if pending:
                job = pending.popleft()
                in_flight[actor.run.remote(job)] = (actor, job)

        for _ in range(workers):
            start()
        while in_flight or (pending and starting):
            ready, _ = ray.wait([*in_flight, *(starting if pending else ())], num_returns=1)
            if ready[0] in starting:
                actor = starting.pop(ready[0])
                try:
                    ray.get(ready[0])
                except ray.exceptions.RayError as exc:  # it died as it started: the job it would take fails (each death costs one)
                    actors.remove(actor)
                    yield lost_job(pending.popleft(), folder, f"its Ray worker died as it started ({first_line(exc)}); rerun with --retry_failed")
                    if pending:
                        start()
                    continue
                submit(actor)
                continue
            actor, job = in_flight.pop(ready[0])
            try:
                outcome = ray.get(ready[0])
            except ray.exceptions.RayActorError as exc:
                outcome = lost_job(
                    job,
                    folder,
                    f"its Ray worker died ({first_line(exc)}); rerun with --retry_failed",
                )
                actors.remove(actor)
                actor = None
                if pending:
                    start()
            except ray.exceptions.RayTaskError as exc:
                # run_job records a job's own failures; what escapes it stops the batch, as in the
                # local engine: a status no job could write (a full disk: BatchStopped), or an interrupt
                if isinstance(getattr(exc, "cause", None), Gen3cInputError):
                    raise exc.cause from None
                outcome = lost_job(job, folder, f"Ray could not run it ({first_line(exc)})")
            except ray.exceptions.RayError as exc:
                outcome = lost_job(job, folder, f"Ray could not run it ({first_line(exc)})")
            yield outcome
            if actor is not None:
                submit(actor)
    finally:
        for actor in actors:
            ray.kill(actor)
        if in_flight:  # stopped (Ctrl-C, an error) with jobs under way
            _remove_cut_short(ray, in_flight, folder)
        if connected_here:
            ray.shutdown()


def _remove_cut_short(ray, in_flight: dict, folder: Path) -> None:
    """Remove the temporary files of the jobs a stopped batch cut short. Ray's workers never see
    Ctrl-C (they block SIGINT) and ``ray.kill`` ends them at once, so they cannot remove their
    half-written output and chunk (as the local engine's workers do: ``STOP_GRACE_S``): once a
    job's actor is gone (its task answers; at most ``STOP_GRACE_S``, together) its ``.part``
    files and its half-kept ``NAME.partial/.chunk_*`` go (:func:`~gen3c.batch.jobs.remove_cut_short`);
    its finished chunks stay for the next run. An actor not seen to end by then (a remote node slow
    to answer) leaves its job's to the next batch into this folder, which removes them as it starts
    (its status still says running); a note says so. The batch lock keeps any other batch from writing them."""
    from gen3c.batch.jobs import remove_cut_short
    from gen3c.batch.local import STOP_GRACE_S

    refs = list(in_flight)
    try:
        ended, _ = ray.wait(refs, num_returns=len(refs), timeout=STOP_GRACE_S)
    except ray.exceptions.RayError:
        ended = []
    for ref in ended:
        try:
            ray.get(ref)  # (its error retrieved: Ray prints no "unhandled error" for it later)
        except ray.exceptions.RayError:
            pass
        remove_cut_short(folder, in_flight[ref][1].name)
    left = [in_flight[ref][1].name for ref in refs if ref not in ended]
    if left:
        shown = first_few(left)
        note(f"the Ray worker{'s' if len(left) > 1 else ''} of job{'s' if len(left) > 1 else ''} {shown} did not end within "
             f"{STOP_GRACE_S:g} s, so {'their' if len(left) > 1 else 'its'} temporary files stay in {quoted_path(folder)} until the "
             "next gen3c batch into that folder removes them as it starts")  # fmt: skip
