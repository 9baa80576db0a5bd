"""What this machine offers gen3c, for a bug report or before a first run: ``gen3c env``.

:func:`report` gathers it as plain data (JSON-ready): gen3c (its version, the sha256 of its code
as run records name it, where it is installed), Python, the OS, CPU threads,
RAM and swap and the memory limit of the process's cgroup (a container's, a job's), torch and
its CUDA/cuDNN, each CUDA GPU; each gen3c extra's packages as gen3c's installed metadata
declares them (pyproject.toml's, ``train`` with ``diffusion``'s), each with its installed version and whether it meets the extra's requirement; the attention kernels each device can run
(:func:`gen3c.models.attention.kernel_unavailable_reason`) and what ``--attention_backend auto``
/ ``auto_fp8`` take there; whether fp8 matmuls run; the memory plan ``--max_gpu_memory`` would
choose for GEN3C-7B at its full 121×704×1280 chunk on each GPU's free memory; and the folder of
converted weights with what it holds, and the free space and write permission there and in the
Hugging Face hub cache (where downloads land).

Versions come from the installed distributions' metadata, without importing the packages
(diffusers and transformers take seconds to import). A probe that fails is reported as
``"unknown (why)"`` in its place: the report itself never raises.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: What the report says in place of a per-GPU section on a machine without a CUDA GPU.
NO_GPU = "no CUDA GPU: the preview generator and the shipped small models run on the CPU"


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity, as taskset or a cluster's scheduler (SLURM's
    ``--cpus-per-task``) sets it, where the system tells it; else the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@functools.cache  # (the code a process runs does not change under it; a run asks more than once)
def code_digest() -> str | None:
    """sha256 of gen3c's own Python files (relative names and bytes), as eval's ``results.json``
    and a run record (``NAME_run.json``) list it: the version alone does not change when a
    source install's code does, and the code makes the numbers and frames. None where gen3c is
    installed without its Python sources (byte-compiled only): the sha256 of no file would name
    no code."""
    root = Path(__file__).resolve().parent
    digest, hashed = hashlib.sha256(), False
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
        hashed = True
    return digest.hexdigest() if hashed else None


def utc_timestamp() -> str:
    """Now in UTC, to the second, as the records of a run date it (ISO 8601:
    ``2026-12-07T23:40:12+00:00``): one clock for every machine of a batch or a cluster."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def device_kind(device: str | torch.device | None = None) -> str:
    """A device as the records of a run name it (eval's fingerprint, a run record): ``cpu``, or
    ``cuda (GPU name)``; None: the GPU if there is one, else the CPU."""
    import torch

    if device is None:
        return f"cuda ({torch.cuda.get_device_name()})" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else device.type


@functools.cache  # (a process's CPU does not change under it)
def cpu_kind() -> str:
    """The CPU as the records of a run name it: its model (:func:`cpu_model`) and the vector
    instructions torch's CPU kernels use there (``torch.backends.cpu.get_cpu_capability()``, e.g.
    "AMD EPYC (AVX512)"; a virtual machine may name only the maker). Another CPU moves a CPU
    computation's last bits (eval's scores, and through them its camera columns by tenths of a
    degree; a model's frames made on the CPU)."""
    import torch

    return f"{cpu_model()} ({torch.backends.cpu.get_cpu_capability()})"


def made_with() -> str:
    """When and with which software a record is made, as a model card says it: the date in UTC,
    gen3c's version and code (the first 12 hex digits of :func:`code_digest`, as git shortens a
    commit; the version alone where there is no code to hash) and torch's version, e.g.
    "2026-12-07 23:40:12 UTC with gen3c 0.1.0 (code sha256 f6e9a63349ce), torch 2.14.1"."""
    import torch

    from gen3c import __version__

    digest = code_digest()
    code = f" (code sha256 {digest[:12]})" if digest else ""
    when = utc_timestamp().replace("T", " ").replace("+00:00", " UTC")
    return f"{when} with gen3c {__version__}{code}, torch {torch.__version__}"


def cpu_model() -> str:
    """This machine's CPU as its system names it ("AMD EPYC 7B13", "Apple M2"; an Arm Linux
    machine without a model name: its implementer and part codes), else the processor or machine
    type Python knows ("x86_64")."""
    if sys.platform.startswith("linux"):
        try:
            fields: dict[str, str] = {}
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
                for line in cpuinfo:
                    key, sep, value = line.partition(":")
                    if sep and value.strip():
                        fields.setdefault(key.strip().lower(), " ".join(value.split()))
        except OSError:
            fields = {}
        if "model name" in fields:
            return fields["model name"]
        if "cpu implementer" in fields and "cpu part" in fields:  # (Arm: no model name)
            return f"{platform.machine()} implementer {fields['cpu implementer']} part {fields['cpu part']}"
    elif sys.platform == "darwin":
        import subprocess

        try:
            brand = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            brand = ""
        if brand:
            return brand
    return platform.processor() or platform.machine() or "unknown"


def report(cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """This machine as gen3c sees it, as JSON-ready data (keys: ``gen3c``, ``python``, ``platform``,
    ``cpu_threads``, ``ram`` (with a cgroup's memory limit), ``torch``, ``gpus``, ``extras``,
    ``devices``, ``weights_cache``).

    ``devices`` has one entry per CUDA GPU (``cuda:0``, …), or one for ``cpu`` without a GPU:
    its attention kernels, fp8 matmuls and GEN3C-7B's memory plan. ``cache_dir``: the folder of
    converted weights, as ``--cache_dir`` names it (default: ``gen3c cache list``'s);
    ``weights_cache`` has its ``disk`` (``free_gb``, ``writable``), what is cached, and the same of
    the ``hub_cache``. Any value
    may be a string ``"unknown (why)"`` where its probe failed.
    """
    gpus = _probe(_gpus)
    devices = {f"cuda:{i}": _device(f"cuda:{i}", gpu) for i, gpu in enumerate(gpus)} if isinstance(gpus, list) else {}
    return {
        "gen3c": _probe(_gen3c),
        "python": _probe(lambda: {"version": platform.python_version(), "implementation": platform.python_implementation(), "executable": sys.executable}),
        "platform": _probe(platform.platform),
        "cpu_threads": _probe(os.cpu_count),
        "ram": _probe(_ram),
        "torch": _probe(_torch),
        "gpus": gpus,
        "extras": _probe(_extras),
        "devices": devices or {"cpu": _device("cpu", None)},
        "weights_cache": _probe(lambda: _weights_cache(cache_dir)),
    }


def _probe(function: Callable[[], Any]) -> Any:
    """``function()``, or ``"unknown (why)"`` when it raises."""
    try:
        return function()
    except Exception as exc:  # a report for a bug must not be stopped by a second one
        from gen3c.errors import first_line

        return f"unknown ({type(exc).__name__}: {first_line(exc)})"


def _gen3c() -> dict[str, str]:
    import gen3c

    # (its code's sha256 as a run record and eval's results.json name it: a report's gen3c is told from a record's)
    return {"version": gen3c.__version__, "code_sha256": code_digest(), "location": str(Path(gen3c.__file__).resolve().parent)}


def _ram() -> dict[str, Any]:
    """The machine's RAM, what of it is available and its swap, as psutil tells them, and the
    memory limit of this process's cgroup (:func:`cgroup_memory`: a container's, a SLURM job's)
    with what is left of it and the swap it allows, None where none is set; in GB (2³⁰ bytes)."""
    from gen3c.dependencies import require

    # (an install that lost psutil, one of gen3c's own dependencies, is told its pip install here, as by the memory checks)
    psutil = require("psutil", "measuring the RAM")

    gib = 2**30
    machine, cgroup = psutil.virtual_memory(), cgroup_memory()
    return {
        "total_gb": round(machine.total / gib, 1),
        "available_gb": round(machine.available / gib, 1),
        "swap_gb": round(psutil.swap_memory().total / gib, 1),
        "cgroup_limit_gb": None if cgroup is None else round(cgroup.limit / gib, 1),
        "cgroup_available_gb": None if cgroup is None else round(cgroup.available / gib, 1),
        "cgroup_swap_gb": None if cgroup is None or cgroup.swap is None else round(cgroup.swap / gib, 1),
    }


#: Where Linux says which cgroups this process is in, and where their files are mounted.
PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_MOUNT = Path("/sys/fs/cgroup")
#: A cgroup's memory files, v2's then v1's: its limit, its use (its processes' and the page cache
#: charged to it), the key of ``memory.stat`` that tells how much of that use is inactive file
#: cache, which the kernel reclaims before it kills (v1's ``total_`` counts the cgroups below too),
#: and its swap limit (v2: of swap alone; v1: of memory and swap together, where swap is accounted).
_CGROUP_V2_FILES = ("memory.max", "memory.current", "inactive_file", "memory.swap.max")
_CGROUP_V1_FILES = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file", "memory.memsw.limit_in_bytes")


@dataclass(frozen=True)
class CgroupMemory:
    """The memory limit of this process's cgroup in bytes (``limit``: the least of its cgroup's
    and those above it), and what can still be added before one of those limits is reached
    (``available``: each limited cgroup's limit less what all its processes use now, other than
    inactive file cache, the least of them); ``swap``: the most swap those cgroups let it use on
    top of ``limit``, None where they set no limit on it (a container's often allows none)."""

    limit: int
    available: int
    swap: int | None = None


def cgroup_memory() -> CgroupMemory | None:
    """The memory limit of this process's cgroup and what is left of it (:class:`CgroupMemory`):
    the least ``memory.max`` (cgroup v2) or ``memory.limit_in_bytes`` (v1) of its cgroup and those
    above it, as a container (``docker --memory``), a Kubernetes pod or a SLURM job (``--mem``)
    sets it. Past it the kernel's out-of-memory killer stops the process, however much RAM the
    machine has (psutil tells the machine's), and what the other processes of the cgroup use (a
    job's other tasks, a container's other programs) counts against it too. None where none is set
    or none can be read."""
    try:
        lines = PROC_CGROUP.read_text().splitlines()
    except OSError:
        return None
    limits: list[tuple[int, int]] = []  # (limit, available) of each limited cgroup
    swaps: list[int] = []  # the swap each cgroup with a swap limit allows
    for line in lines:
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "-", "")
        if controllers == "":  # (v2: one hierarchy, mounted at the mount itself)
            base, files = CGROUP_MOUNT, _CGROUP_V2_FILES
        elif "memory" in controllers.split(","):
            base, files = CGROUP_MOUNT / "memory", _CGROUP_V1_FILES
        else:
            continue
        limit_file, usage_file, inactive_key, swap_file = files
        # Up to the mount: a limit above applies below, and inside a container the path named
        # may not exist (its own cgroup is mounted as the root).
        folder = base / path.strip("/")
        own = True  # (the first cgroup found is the process's own)
        for level in [folder, *folder.parents]:
            text = _read(level / limit_file)
            # A v1 cgroup with use_hierarchy 0 (older kernels' default) holds its own processes
            # to its limit, not those of the cgroups below it.
            counts = own or files is _CGROUP_V2_FILES or _read(level / "memory.use_hierarchy") != "0"
            own = own and text is None
            limit = int(text) if _is_limit(text) else None
            if counts and limit is not None:
                limits.append((limit, limit - _cgroup_working_set(level, usage_file, inactive_key)))
            swap = _read(level / swap_file)
            if counts and _is_limit(swap):  # (v1's is of memory and swap: the swap is what it adds to the memory limit)
                memory = (limit or 0) if files is _CGROUP_V1_FILES else 0
                swaps.append(max(0, int(swap) - memory))
            if level == base:
                break
    if not limits:
        return None
    return CgroupMemory(
        limit=min(limit for limit, _ in limits), available=max(0, min(available for _, available in limits)), swap=min(swaps, default=None)
    )


def _is_limit(text: str | None) -> bool:
    """Whether ``text``, a cgroup's limit, is one: "max" (v2) and v1's 2^63 rounded down to pages are none."""
    return text is not None and text.isdigit() and int(text) < 2**60


def _cgroup_working_set(folder: Path, usage_file: str, inactive_key: str) -> int:
    """What the processes of the cgroup at ``folder`` use now, in bytes, less the inactive file
    cache charged to it (as ``docker stats`` counts it); 0 where it cannot be read."""
    usage = _read(folder / usage_file)
    if usage is None or not usage.isdigit():
        return 0
    inactive = 0
    for line in (_read(folder / "memory.stat") or "").splitlines():
        key, _, value = line.partition(" ")
        if key == inactive_key and value.strip().isdigit():
            inactive = int(value)
    return max(0, int(usage) - inactive)


def _read(path: Path) -> str | None:
    """The text of ``path``, stripped; None where it cannot be read."""
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _torch() -> dict[str, Any]:
    import torch

    return {
        "version": torch.__version__,
        "cuda": torch.version.cuda,  # None for a CPU build
        "cudnn": _probe(torch.backends.cudnn.version),
        "threads": torch.get_num_threads(),
    }


def _gpus() -> list[dict[str, Any] | str] | str:
    """Each CUDA GPU's :func:`_gpu`; none on a machine without one; ``"unknown (why)"`` where GPUs
    may be there but CUDA does not start: torch's warning (a driver too old for this build, say),
    or ``CUDA_VISIBLE_DEVICES`` hiding every one, which "none" would hide."""
    import torch

    from gen3c.errors import caught_warnings, first_line

    with caught_warnings() as caught:  # (this thread's only: another's is not CUDA's reason)
        available = torch.cuda.is_available()
    # torch says why CUDA does not start in a UserWarning; a ResourceWarning the collector raised
    # meanwhile ("unclosed file …") or an import's DeprecationWarning is no reason of CUDA's.
    reasons = [w for w in caught if issubclass(w.category, UserWarning)]
    if not available:
        hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
        if reasons:
            return f"unknown (CUDA does not start: {first_line(reasons[0].message)})"
        if torch.version.cuda is not None and hidden is not None and hidden.strip() in ("", "-1"):
            return f"unknown (CUDA_VISIBLE_DEVICES={hidden!r} hides every GPU)"
        return []
    return [_probe(lambda i=i: _gpu(i)) for i in range(torch.cuda.device_count())]


def _gpu(index: int) -> dict[str, Any]:
    import torch

    properties = torch.cuda.get_device_properties(index)
    free, total = torch.cuda.mem_get_info(index)
    return {
        "device": f"cuda:{index}",
        "name": properties.name,
        "compute_capability": f"{properties.major}.{properties.minor}",
        "total_gb": round(total / 2**30, 1),
        "free_gb": round(free / 2**30, 1),
    }


# -- packages ----------------------------------------------------------------------------------


def package(requirement: str) -> dict[str, Any]:
    """How the distribution ``requirement`` names (``transformers>=4.56``) is installed, without
    importing it.

    Returns:
        ``module`` (its :data:`~gen3c.dependencies.PACKAGES` key; None for a distribution that
        table lacks, found by its metadata alone); ``requirement`` and its ``distribution``;
        ``version`` (None: missing, i.e. the module cannot be found) and ``installed_from``, the
        distribution it came from (another one where e.g. opencv-python provides cv2); ``usable``:
        installed and, where the version can be checked, meeting the requirement.
    """
    from packaging.requirements import Requirement

    from gen3c.dependencies import installed, module_of

    parsed = Requirement(requirement)
    module = module_of(parsed.name)
    entry = {"module": module, "requirement": requirement, "distribution": parsed.name, "version": None, "installed_from": None, "usable": False}
    if module is not None and not installed(module):
        return entry
    try:
        entry.update(version=metadata.version(parsed.name), installed_from=parsed.name)
    except metadata.PackageNotFoundError:
        provided_by = metadata.packages_distributions().get(module, []) if module else []
        if module is None:  # not in PACKAGES, and no metadata: not installed
            return entry
        if not provided_by:  # importable, with no metadata (a source checkout on the path)
            entry.update(version="unknown (no package metadata)", usable=True)
            return entry
        # Another distribution's version says nothing about the requirement's.
        entry.update(version=metadata.version(provided_by[0]), installed_from=provided_by[0], usable=True)
        return entry
    entry["usable"] = parsed.specifier.contains(entry["version"], prereleases=True)
    return entry


def _extras() -> dict[str, dict[str, Any]] | str:
    """Each extra's packages as gen3c's metadata declares them
    (:func:`gen3c.dependencies.declared_extras`; :data:`~gen3c.dependencies.CORE`: gen3c's own
    dependencies), with the extras it ``includes``, ``complete`` and the ``install`` command; or
    :data:`~gen3c.dependencies.NOT_INSTALLED` where gen3c's metadata is missing."""
    from gen3c.dependencies import CORE, NOT_INSTALLED, declared_extras

    extras = declared_extras()
    if extras is None:
        return NOT_INSTALLED
    groups: dict[str, dict[str, Any]] = {}
    for name, declared in extras.items():
        packages = [_probe(lambda r=r: package(r)) for r in declared["requirements"]]
        groups[name] = {
            "install": "pip install gen3c" if name == CORE else f"pip install 'gen3c[{name}]'",
            "includes": declared["includes"],
            "packages": packages,
            "complete": all(isinstance(p, dict) and p["usable"] for p in packages),
        }
    return groups


# -- what each device can run -----------------------------------------------------------------


def _device(name: str, gpu: dict[str, Any] | str | None) -> dict[str, Any]:
    """``name``'s attention kernels, fp8 matmuls and GEN3C-7B plan; ``gpu``: its :func:`_gpu` entry
    (a string where that probe failed), None for the CPU."""
    if gpu is None:
        plan = NO_GPU
    elif isinstance(gpu, str):
        plan = f"unknown (its free memory is {gpu})"
    else:
        plan = _probe(lambda: _gen3c_7b_plan(gpu["free_gb"]))
    return {"attention": _probe(lambda: _attention(name)), "fp8_matmuls": _probe(lambda: _fp8_matmuls(name)), "gen3c_7b": plan}


def _attention(device: str) -> dict[str, Any]:
    """Each kernel of :data:`~gen3c.models.attention.KERNELS`: "available" or why not; and what
    "auto" and "auto_fp8" take."""
    from gen3c.models.attention import AUTO_ORDER, KERNELS, kernel_unavailable_reason, resolve_kernel

    out: dict[str, Any] = {requested: _probe(lambda requested=requested: resolve_kernel(requested, device)[0]) for requested in AUTO_ORDER}
    out["kernels"] = {kernel: _probe(lambda kernel=kernel: kernel_unavailable_reason(kernel, device) or "available") for kernel in KERNELS}
    return out


def _fp8_matmuls(device: str) -> str:
    from gen3c.models.speed import FP8_MATMULS_NEED, fp8_supported

    return "available" if fp8_supported(device) else FP8_MATMULS_NEED


def _gen3c_7b_plan(free_gb: float) -> dict[str, Any]:
    """The plan ``--max_gpu_memory FREE`` would choose for GEN3C-7B at 121×704×1280, or why none fits."""
    from gen3c.errors import Gen3cInputError
    from gen3c.models.memory import GEN3C_7B_SIZE, choose_memory_plan

    size = GEN3C_7B_SIZE
    out: dict[str, Any] = {"budget_gb": free_gb, "video": f"{size.frames} frames at {size.height}x{size.width}"}
    try:
        label, _, peak = choose_memory_plan(free_gb, size)
    except Gen3cInputError as exc:  # not even the leanest plan fits (or no memory is free)
        return {**out, "plan": None, "why": str(exc)}
    return {**out, "plan": label, "estimated_peak_gb": round(peak, 1)}


# -- weights ---------------------------------------------------------------------------------------


def _weights_cache(cache_dir: str | os.PathLike | None) -> dict[str, Any]:
    """The folder of converted weights and what gen3c keeps there and in the hub cache (as ``gen3c cache list`` shows them)."""
    from gen3c.models import weights

    def items() -> list[dict[str, str]]:
        return [
            {"name": item.name, "kind": item.kind, "path": str(item.path), "size": weights.format_bytes(item.size), "detail": item.detail}
            for item in weights.cached_items(cache_dir)
        ]

    def hub() -> dict[str, Any]:  # where downloads land before they are converted
        folder = weights._hub_cache(None)
        return {"folder": str(folder), "disk": _probe(lambda: _disk(folder))}

    folder = weights.weights_cache_dir(cache_dir)
    return {"folder": str(folder), "disk": _probe(lambda: _disk(folder)), "items": _probe(items), "hub_cache": _probe(hub)}


def _disk(folder: Path) -> dict[str, Any]:
    """The free space (GB, 10⁹ bytes: the unit of the weights' sizes and disk checks,
    :func:`gen3c.models.weights.format_bytes`) of the disk that holds ``folder``, and whether gen3c may
    write there; ``folder`` may not exist yet: both are read at its nearest existing parent, where
    a download or conversion would create it. Nothing is written."""
    from gen3c.io.paths import nearest_existing

    existing = nearest_existing(folder.expanduser().resolve())
    return {"free_gb": round(shutil.disk_usage(existing).free / 1e9, 1), "writable": os.access(existing, os.W_OK | os.X_OK)}
