"""Multi-GPU runs: how torchrun launched us, the process group, and which rank writes.

GEN3C runs on N GPUs as ``torchrun --nproc_per_node=N … --num_gpus N``: one process per GPU,
every process running the same sampling loop with the same seed while the DiT splits its video
tokens across them (:mod:`gen3c.models.context_parallel`), and rank 0 writing the outputs.

This module knows nothing of models: :func:`check_launch` compares ``--num_gpus`` with the
processes torchrun started (``WORLD_SIZE``), :func:`init_parallel` joins the process group
(NCCL on ``cuda:LOCAL_RANK`` when CUDA is available, else gloo on the CPU), and
:func:`is_main_process` says whether this process writes outputs and shows progress.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from gen3c.errors import Gen3cInputError, is_whole_number


@dataclass(frozen=True)
class ParallelContext:
    """This process's place in a multi-GPU run.

    Attributes:
        rank: global rank (0 writes the outputs).
        world_size: number of processes (= ``--num_gpus``).
        local_rank: rank on this host; picks the GPU.
        device: the device this rank computes on (``cuda:LOCAL_RANK`` or the CPU).
        backend: the process group's backend ("nccl" or "gloo").
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, minimum: int) -> int | None:
    """torchrun's whole-number environment variable ``name`` (e.g. ``LOCAL_RANK``), None when unset.

    Raises:
        Gen3cInputError: it is set to something else than a whole number of at least ``minimum``.
    """
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise Gen3cInputError(
            f"the environment's {name}={value!r} is not a whole number of at least {minimum}: "
            "launch with torchrun, which sets it, or unset it"
        )
    return number


def launched_world_size() -> int | None:
    """The number of processes torchrun started (its ``WORLD_SIZE``), or None outside torchrun."""
    return _env_int("WORLD_SIZE", 1)


#: How to remove WORLD_SIZE from the environment, in the shells of Linux, macOS and Windows.
UNSET_WORLD_SIZE = "`unset WORLD_SIZE`; PowerShell: `Remove-Item Env:WORLD_SIZE`; cmd: `set WORLD_SIZE=`"


def refuse_several_processes(command: str, work: str, alternative: str = "") -> None:
    """Refuse a launch of several processes (``WORLD_SIZE`` above 1, or srun's tasks:
    :func:`srun_tasks`) for ``command``, which runs in one: each process would ``work`` (e.g.
    "run every job") into the same outputs. ``WORLD_SIZE`` is torchrun's, but also what a
    scheduler sets in every process it starts (Kubeflow's PyTorchJob, accelerate, DeepSpeed), a
    shell opened in one of them included: the fix names both. ``alternative`` follows "launch it
    without torchrun" (how to use several GPUs).

    Raises:
        Gen3cInputError: ``WORLD_SIZE`` is above 1, or not a whole number ≥ 1; srun started
            several tasks of the command.
    """
    world = launched_world_size()
    if world is not None and world > 1:
        raise Gen3cInputError(
            f"{command} was launched as one of {world} processes (WORLD_SIZE={world} in the environment, as torchrun sets it), "
            f"each of which would {work}: launch it without torchrun{alternative}, or, where something else left WORLD_SIZE set, "
            f"remove it from the environment first ({UNSET_WORLD_SIZE})"
        )
    refuse_srun_tasks(command, work, lambda tasks: f"start it as one task (`srun --ntasks=1 {command} …`){alternative}")


def srun_tasks() -> int | None:
    """How many copies of this command SLURM's ``srun`` started (``SLURM_STEP_NUM_TASKS``, which
    srun sets in each task of its step; not ``SLURM_NTASKS``, the job's, also set in a batch
    script that runs gen3c once), or None: not started by srun, or under a launcher of its own
    (``WORLD_SIZE`` set: torchrun started by ``srun --ntasks-per-node=1``, whose ranks are
    torchrun's). srun's tasks are independent processes, each running the whole command: gen3c
    does not make a process group of them (torchrun does, per node)."""
    if "WORLD_SIZE" in os.environ:
        return None
    return _env_int("SLURM_STEP_NUM_TASKS", 1)


def refuse_srun_tasks(command: str, work: str, fix: Callable[[int], str]) -> None:
    """Refuse ``command`` started by srun as several tasks (:func:`srun_tasks`), each of which
    would ``work`` into the same outputs; ``fix(tasks)``: what to run instead. Tasks meant to run
    separate jobs (``srun --multi-prog``, ``$SLURM_PROCID`` in each task's outputs) are told how to
    say so: gen3c cannot see the other tasks' commands.

    Raises:
        Gen3cInputError: srun started several tasks, or ``SLURM_STEP_NUM_TASKS`` is no whole number ≥ 1.
    """
    tasks = srun_tasks()
    if tasks is not None and tasks > 1:
        raise Gen3cInputError(
            f"{command} was started by srun as one of {tasks} tasks (SLURM_STEP_NUM_TASKS={tasks}), each of which would {work}: {fix(tasks)}; "
            f"where each task runs its own job into its own outputs (srun --multi-prog, $SLURM_PROCID in the paths), start each without the variable (`env -u SLURM_STEP_NUM_TASKS {command} …`)"
        )


def torchrun_per_node(command: str, gpus: int) -> str:
    """The fix for a multi-process command started by srun's tasks: torchrun, one per node, starts the GPUs' processes."""
    return f"start one task per node and torchrun in it, which starts a process per GPU (`srun --ntasks-per-node=1 torchrun --nproc_per_node={gpus} -m gen3c {command}`)"


def check_rendezvous_env(world: int, launch: str | None = None) -> None:
    """Refuse, before joining, a process group whose variables (torchrun sets them) are missing
    or disagree: torch's own failure is a traceback, or a wait for ranks that never come.
    ``launch``: the torchrun command line to suggest (default: ``gen3c generate``'s)."""
    launch = _launch_hint(world) if launch is None else launch
    missing = [name for name in ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise Gen3cInputError(
            f"joining torchrun's process group needs {', '.join(missing)} in the environment, which "
            f"{'is' if len(missing) == 1 else 'are'} not set: launch with {launch}, which sets them"
        )
    rank = _env_int("RANK", 0)
    if rank >= world:
        raise Gen3cInputError(f"the environment's RANK={rank} is not below its WORLD_SIZE={world}: launch with {launch}")
    port = os.environ["MASTER_PORT"]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise Gen3cInputError(f"the environment's MASTER_PORT={port!r} is not a port number (1 to 65535): launch with torchrun")


def _local_rank() -> int:
    """This process's rank on its host (``LOCAL_RANK``; 0 when unset), which picks its GPU."""
    local_rank = _env_int("LOCAL_RANK", 0) or 0
    per_host = _env_int("LOCAL_WORLD_SIZE", 1)
    if per_host is not None and local_rank >= per_host:
        raise Gen3cInputError(
            f"the environment's LOCAL_RANK={local_rank} is not below its LOCAL_WORLD_SIZE={per_host}: launch with torchrun"
        )
    return local_rank


def _launch_hint(n: int) -> str:
    return f"`torchrun --nproc_per_node={n} -m gen3c generate … --num_gpus {n}`"


def check_launch(num_gpus: int) -> None:
    """Refuse a ``--num_gpus`` that disagrees with how the processes were launched.

    Raises:
        Gen3cInputError: ``num_gpus`` < 1; ``num_gpus`` > 1 without torchrun; or torchrun's
            world size ≠ ``num_gpus``.
    """
    if not is_whole_number(num_gpus) or num_gpus < 1:
        raise Gen3cInputError(f"--num_gpus must be a whole number of at least 1, got {num_gpus!r}")
    def instead(tasks: int) -> str:
        if num_gpus > 1:  # (asked for N GPUs: the gen3c model split by torchrun's ranks)
            return f"{torchrun_per_node(f'generate … --num_gpus {num_gpus}', num_gpus)}, or one task for one GPU (`srun --ntasks=1 gen3c generate …`)"
        # (one process asked for: the preview cannot split; the gen3c model can, one GPU per task srun was asked for)
        return f"start it as one task (`srun --ntasks=1 gen3c generate …`), or, to split --generator gen3c across GPUs, {torchrun_per_node(f'generate … --num_gpus {tasks}', tasks)}"

    refuse_srun_tasks("gen3c generate", "make the whole video into the same outputs", instead)
    world = launched_world_size()
    if world is None or (world == 1 and num_gpus > 1):
        if num_gpus > 1:
            raise Gen3cInputError(
                f"--num_gpus {num_gpus} needs one process per GPU: launch with {_launch_hint(num_gpus)}"
            )
        return
    if world != num_gpus:
        # One process (no --num_gpus, or a generator other than gen3c, which refuses it): torchrun is not for it.
        fix = " with --generator gen3c, or run without torchrun" if num_gpus == 1 else f", or launch with {_launch_hint(num_gpus)}"
        raise Gen3cInputError(f"torchrun started {world} processes but --num_gpus is {num_gpus}: pass --num_gpus {world}{fix}")


def check_host_gpus(alternative: str = "") -> None:
    """Refuse a torchrun launch of more processes on this host than it has visible CUDA GPUs
    (every rank refuses alike): each takes ``cuda:LOCAL_RANK``, and two ranks on one GPU fail in
    NCCL ("Duplicate GPU detected") or share its memory. ``alternative`` ends the message (e.g.
    how to run on the CPUs instead)."""
    per_host = _env_int("LOCAL_WORLD_SIZE", 1) or _local_rank() + 1
    visible = torch.cuda.device_count()
    if per_host > visible:
        raise Gen3cInputError(
            f"torchrun started {per_host} processes on this host, which has {visible} visible GPU{'' if visible == 1 else 's'}: "
            f"launch at most {visible} per host (--nproc_per_node {visible}) or check CUDA_VISIBLE_DEVICES{alternative}"
        )


def init_parallel(num_gpus: int, device_type: str | None = None) -> ParallelContext:
    """Join the process group of a ``torchrun`` launch of ``num_gpus`` processes.

    Args:
        num_gpus: ``--num_gpus``; must equal torchrun's ``WORLD_SIZE`` (:func:`check_launch`).
        device_type: "cuda" or "cpu" to force one; default CUDA when available.
    Returns:
        The :class:`ParallelContext`; the process group is destroyed at interpreter exit.
    """
    check_launch(num_gpus)
    if device_type not in (None, "cuda", "cpu"):
        raise Gen3cInputError(
            f"device {device_type!r} with --num_gpus {num_gpus}: each rank uses cuda:LOCAL_RANK; pass 'cuda', 'cpu' or nothing"
        )
    if not dist.is_initialized():
        check_rendezvous_env(num_gpus)
    local_rank = _local_rank()
    use_cuda = device_type != "cpu" and torch.cuda.is_available()
    if device_type == "cuda" and not torch.cuda.is_available():
        raise Gen3cInputError("device 'cuda' was asked for but this machine has no CUDA GPU: leave --device out to run on the CPU")
    if use_cuda:
        if num_gpus > 1 and "LOCAL_RANK" not in os.environ:
            # Without it every rank would take cuda:0, and NCCL fails in a traceback ("Duplicate GPU detected").
            raise Gen3cInputError(
                f"each rank takes the GPU cuda:LOCAL_RANK, but the environment has no LOCAL_RANK: launch with {_launch_hint(num_gpus)}, which sets it"
            )
        check_host_gpus()
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        _wait_for_every_rank(num_gpus)
        dist.init_process_group(backend, device_id=device if use_cuda else None)
        atexit.register(_destroy)
    elif dist.get_world_size() != num_gpus:
        raise Gen3cInputError(
            f"this process group has {dist.get_world_size()} ranks but --num_gpus is {num_gpus}: pass --num_gpus {dist.get_world_size()}"
        )
    return ParallelContext(dist.get_rank(), dist.get_world_size(), local_rank, device, str(dist.get_backend()))


def _wait_for_every_rank(world: int) -> None:
    """Wait, in Python, until all ``world`` ranks of torchrun's launch are about to join the
    process group, counted in torchrun's own store (``TORCHELASTIC_USE_AGENT_STORE``: its agent
    hosts it, so it is there before any rank is). torch's joining waits in C++, where Python's
    signal handlers do not run: a rank waiting there for one that had stopped on a mistake of
    its own (an input only it cannot read) ignored torchrun's SIGTERM and was killed 30 s later.
    Here SIGTERM raises at once. A hand-made launch (its rank 0 hosts the store) is not waited;
    after torch's own joining timeout the joining is left to fail on it."""
    import time

    from torch.distributed.constants import default_pg_timeout

    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return
    run = f"{os.environ.get('TORCHELASTIC_RUN_ID', '')}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False, timeout=timedelta(seconds=60))
    key = f"gen3c/joining/{run}"
    store.add(key, 1)
    give_up = time.monotonic() + default_pg_timeout.total_seconds()
    while store.add(key, 0) < world and time.monotonic() < give_up:
        time.sleep(0.05)


EXIT_WAIT = timedelta(minutes=2)
"""How long a rank waits at exit for the others (rank 0 may still be writing outputs)."""

_leaving_on_error = False


def leave_without_waiting() -> None:
    """Tell the exit hook this rank is leaving on an error (the CLI's one-line errors, Ctrl-C):
    its peers may be blocked in a collective that will never complete, so it must not wait for
    them (torchrun stops them once this rank has exited)."""
    global _leaving_on_error
    _leaving_on_error = True


def _all_ranks_at_exit(timeout: timedelta) -> bool:
    """Whether every rank reached interpreter exit within ``timeout``; counted in the launch's
    store, so a peer that died or hangs in a collective costs ``timeout``, never a hang. The
    wait ends early, False, when a rank leaves on an error (:func:`_destroy` says so in the
    store) or Ctrl-C / SIGTERM arrives: it polls in Python, since a wait in torch's C++ runs no
    signal handler (a rank done while rank 0 failed or was interrupted writing the outputs
    ignored torchrun's SIGTERM until its SIGKILL, 30 s later)."""
    import time

    from gen3c.errors import interrupt_arrived

    store = dist.distributed_c10d._get_default_store()
    give_up = time.monotonic() + timeout.total_seconds()
    try:  # (the store may be gone already: its host, rank 0 of a hand-made launch, left after its wait)
        if store.add("gen3c/at_exit", 1) == dist.get_world_size():
            store.set("gen3c/all_at_exit", "1")
        while not store.check(["gen3c/all_at_exit"]):
            if store.check(["gen3c/left_on_error"]) or interrupt_arrived() or time.monotonic() > give_up:
                return False
            time.sleep(0.05)
    except RuntimeError:  # DistStoreError: the store is gone with its host
        return False
    return True


def _destroy() -> None:
    """Leave the process group together with the other ranks (atexit).

    A rank may reach exit with collectives it never waited on still running in gloo's worker
    threads (e.g. the gather of an output only rank 0 reads); destroying the group under them
    aborted the process ("terminate called without an active exception"). So once every rank
    is here, each group is barriered (a gloo barrier first waits for this rank's earlier work
    in that group), then destroyed. A rank leaving on an uncaught exception (which it tells the
    waiting ranks, through the store), or whose peers do not all arrive within
    :data:`EXIT_WAIT`, destroys at once: exiting beats an orderly leave.
    """
    if not dist.is_initialized():
        return
    # sys.last_value: set when an uncaught exception was printed.
    failed = _leaving_on_error or getattr(sys, "last_value", None) is not None
    if dist.get_world_size() > 1 and failed:
        try:  # the ranks waiting for this one at exit stop waiting
            dist.distributed_c10d._get_default_store().set("gen3c/left_on_error", "1")
        except RuntimeError:
            pass
    if dist.get_world_size() > 1 and not failed and _all_ranks_at_exit(EXIT_WAIT):
        groups = dist.distributed_c10d._world.pg_names
        # Subgroups first, the world last; every rank walks the same order, so no barrier waits on another.
        for group in sorted(groups, key=lambda g: groups[g], reverse=True):
            try:
                dist.barrier(group=group)
            except RuntimeError:  # a peer's connection broke after all: nothing left to wait for
                break
    dist.destroy_process_group()


_PEER_GONE = ("Connection closed by peer", "Connection reset by peer")
"""How gloo's collectives (and the launch's store) fail when another rank's process has exited
(gloo's "Broken pipe" too, told from an encoder's by gloo's name in the message)."""


def left_by_a_peer(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective of a multi-process run failing because another rank left
    (its process exited: its own error, Ctrl-C, a kill): that rank's failure, said by it or by
    torchrun's summary, not this rank's."""
    if not isinstance(exc, RuntimeError) or not (dist.is_available() and dist.is_initialized()):
        return False
    text = str(exc)
    return dist.get_world_size() > 1 and (any(gone in text for gone in _PEER_GONE) or ("gloo" in text and "Broken pipe" in text))


def is_main_process() -> bool:
    """Whether this process writes outputs and shows progress: rank 0 of the process group,
    or of torchrun's launch before the group exists; always True in a plain run (no
    ``WORLD_SIZE``: a ``RANK`` left in the environment by something else does not silence it)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    if launched_world_size() is None:
        return True
    return (_env_int("RANK", 0) or 0) == 0


def broadcast_from_main(*tensors: torch.Tensor) -> None:
    """Overwrite ``tensors`` (in place, on this rank's device) with rank 0's copies.

    Every rank computes the DiT's conditions itself, and the sharded DiT must see one input: the
    cache's splat sums in integers (the same in any order), but other GPU kernels need not be deterministic,
    so ranks could differ in the last bits.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for t in tensors:
        if not t.is_contiguous():
            raise ValueError("broadcast_from_main needs contiguous tensors")
        dist.broadcast(t, src=0)


def objects_from_main(*objects: object) -> tuple[object, ...]:
    """Rank 0's ``objects`` on every rank (pickled through the process group; the other ranks'
    own are placeholders), or ``objects`` as given outside a multi-process run. For what rank 0
    alone reads, such as the kept chunks of a resumed run."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return objects
    shared = list(objects)
    dist.broadcast_object_list(shared, src=0)
    return tuple(shared)
