"""``gen3c env``: what this machine offers gen3c, as a table and as JSON for bug reports."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import torch
from child_env import child_env
from typer.testing import CliRunner

from gen3c import dependencies, environment
from gen3c.cli import app

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"gen3c", "python", "platform", "cpu_threads", "ram", "torch", "gpus", "extras", "devices", "weights_cache"}
no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without a CUDA GPU is told")

#: ``python -c`` this with the modules to block (comma-separated), then gen3c's arguments: the command
#: line in an interpreter where those modules cannot be imported, as in an install without them.
BLOCKED = (
    "import runpy, sys\n"
    "for name in filter(None, sys.argv.pop(1).split(',')):\n"
    "    sys.modules[name] = None\n"
    "runpy.run_module('gen3c', run_name='__main__')\n"
)


def env_json(blocked: str = "", *args: str, cache_dir: Path) -> dict:
    """``gen3c env --json`` in a fresh interpreter: stdout must be the JSON and nothing else."""
    environ = child_env(HF_HUB_CACHE=str(cache_dir / "hub"))
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED, blocked, "env", "--json", "--cache_dir", str(cache_dir), *args],
        capture_output=True, text=True, env=environ, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@no_gpu
def test_json_names_the_machine_and_a_cpu_runs_sdpa_and_no_gen3c_7b(tmp_path):
    found = env_json(cache_dir=tmp_path)
    assert set(found) == KEYS
    assert found["gen3c"]["location"] == str(ROOT / "src" / "gen3c")
    assert found["gen3c"]["code_sha256"] == environment.code_digest()  # as a run record names the code (the version alone did)
    assert found["torch"]["version"] == torch.__version__ and found["python"]["executable"] == sys.executable
    assert found["cpu_threads"] == os.cpu_count() and found["ram"]["total_gb"] > 0
    assert found["gpus"] == [] and list(found["devices"]) == ["cpu"]
    cpu = found["devices"]["cpu"]
    assert cpu["attention"]["auto"] == cpu["attention"]["auto_fp8"] == "sdpa"
    assert cpu["attention"]["kernels"] == {"sdpa": "available", "flash4": "flash4 needs a CUDA GPU", "cudnn_fp8": "cudnn_fp8 needs a CUDA GPU"}
    assert cpu["fp8_matmuls"].startswith("fp8 matmuls need a CUDA GPU")
    assert cpu["gen3c_7b"] == "no CUDA GPU: the preview generator and the shipped small models run on the CPU"
    cache = found["weights_cache"]
    assert cache["folder"] == str(tmp_path) and cache["items"] == [] and cache["disk"]["writable"] is True
    assert cache["hub_cache"]["folder"] == str(tmp_path / "hub")  # HF_HUB_CACHE: where downloads land
    free_gb = shutil.disk_usage(tmp_path).free / 1e9
    for disk in (cache["disk"], cache["hub_cache"]["disk"]):  # the hub folder does not exist yet: its parent's disk
        assert abs(disk["free_gb"] - free_gb) < 0.5


def test_cache_folders_report_free_space_and_write_permission_at_their_nearest_parent(tmp_path, monkeypatch):
    """A folder that does not exist yet is judged where a download would create it; one gen3c may
    not write to is said in the table (as root, permission bits do not stop writes: os.access is
    faked for the folder)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path) != locked and real_access(path, mode, **kw))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub" / "not" / "yet"))  # read at import: HF_HUB_CACHE would be too late
    found = environment.report(locked / "gen3c")["weights_cache"]
    assert found["folder"] == str(locked / "gen3c") and found["disk"]["writable"] is False
    assert found["hub_cache"]["disk"]["writable"] is True and found["hub_cache"]["folder"] == str(tmp_path / "hub" / "not" / "yet")
    assert abs(found["disk"]["free_gb"] - shutil.disk_usage(tmp_path).free / 1e9) < 0.5
    result = CliRunner().invoke(app, ["env", "--cache_dir", str(locked / "gen3c")], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert f"{locked / 'gen3c'} ({found['disk']['free_gb']} GB free, not writable)" in result.stdout
    assert f"hub cache     │ {tmp_path / 'hub' / 'not' / 'yet'} (" in result.stdout


def test_free_disk_space_is_said_in_the_unit_of_the_weights_sizes(tmp_path, monkeypatch):
    """`gen3c env` said free disk in GiB, named "GB", beside the weights' sizes and the disk check's
    refusals in decimal GB: 45.2 GB free (the size of T5-11B) read as 42.1 GB, too little for it."""
    from gen3c.models.weights import format_bytes

    monkeypatch.setattr(environment.shutil, "disk_usage", lambda _path: type("usage", (), {"free": 45_200_000_000})())
    assert environment._disk(tmp_path)["free_gb"] == 45.2 and format_bytes(45_200_000_000) == "45.2 GB"


def test_a_module_that_cannot_be_imported_is_missing_and_its_extra_incomplete(tmp_path):
    found = env_json("viser,scipy", cache_dir=tmp_path)
    extras = found["extras"]
    declared = dependencies.declared_extras()
    assert {name: [p["requirement"] for p in group["packages"]] for name, group in extras.items()} == {
        name: group["requirements"] for name, group in declared.items()
    }
    for extra, module in (("gui", "viser"), ("depth", "scipy")):
        (entry,) = [p for p in extras[extra]["packages"] if p["module"] == module]
        assert entry["version"] is None and entry["usable"] is False
        assert extras[extra]["complete"] is False and extras[extra]["install"] == f"pip install 'gen3c[{extra}]'"
    # The rest as an interpreter without the block sees them (both are installed here).
    for name in ("viser", "scipy"):
        if importlib.util.find_spec(name) is not None:  # (viser may be absent, e.g. on a GPU host)
            assert metadata.version(name)
    assert extras["core"]["complete"] is True and extras["core"]["install"] == "pip install gen3c"


def test_versions_are_the_installed_distributions():
    extras = environment.report()["extras"]
    for group in extras.values():
        for entry in group["packages"]:
            assert dependencies.PACKAGES[entry["module"]][0] == entry["distribution"]
            if entry["version"] is not None and entry["installed_from"] == entry["distribution"]:
                assert entry["version"] == metadata.version(entry["distribution"]), entry
        assert group["complete"] == all(entry["usable"] for entry in group["packages"])


def install_fake(site: Path, name: str, version: str, *lines: str) -> None:
    """A distribution's metadata (as pip writes it) in ``site``, a folder first on sys.path."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("\n".join(["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", *lines]) + "\n")


#: gen3c's metadata as pip writes it for a pyproject.toml whose depth extra needs a newer
#: transformers than its diffusion extra, and whose train extra includes diffusion.
FAKE_GEN3C = (
    "Provides-Extra: diffusion", "Provides-Extra: depth", "Provides-Extra: train",
    "Requires-Dist: plyfile>=1.0",
    'Requires-Dist: transformers>=4.45; extra == "diffusion"',
    'Requires-Dist: transformers>=4.56; extra == "depth"',
    'Requires-Dist: scipy>=1.10; extra == "depth"',
    'Requires-Dist: gen3c[diffusion]; extra == "train"',
    'Requires-Dist: peft>=0.17; extra == "train"',
)  # fmt: skip


def test_an_extra_is_complete_only_with_its_own_requirements_met(tmp_path, monkeypatch):
    """transformers 4.50 is enough for diffusion (>=4.45) and not for depth (>=4.56); train counts
    diffusion's packages as its own."""
    install_fake(tmp_path, "gen3c", "0.1.0", *FAKE_GEN3C)
    install_fake(tmp_path, "transformers", "4.50.0")
    monkeypatch.syspath_prepend(str(tmp_path))
    extras = environment.report()["extras"]
    assert list(extras) == ["core", "diffusion", "depth", "train"]
    versions = {name: [(p["requirement"], p["version"], p["usable"]) for p in group["packages"]] for name, group in extras.items()}
    assert versions["diffusion"] == [("transformers>=4.45", "4.50.0", True)]
    assert versions["depth"] == [("transformers>=4.56", "4.50.0", False), ("scipy>=1.10", metadata.version("scipy"), True)]
    assert versions["train"] == [("transformers>=4.45", "4.50.0", True), ("peft>=0.17", metadata.version("peft"), True)]
    assert extras["train"]["includes"] == ["diffusion"]
    assert [(name, group["complete"]) for name, group in extras.items()] == [("core", True), ("diffusion", True), ("depth", False), ("train", True)]
    # The missing-package errors name the requirement of the extra they suggest.
    assert dependencies.requirement("transformers", "depth") == "transformers>=4.56"
    assert str(dependencies.missing_error("plyfile", "writing points")).endswith("pip install 'plyfile>=1.0'")

    result = CliRunner().invoke(app, ["env", "--cache_dir", str(tmp_path / "cache")], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "depth incomplete" in result.stdout and "to complete: pip install 'gen3c[depth]'" in result.stdout
    assert "train complete" in result.stdout and "gen3c[diffusion] (above)" in result.stdout


def test_extras_are_pyprojects(tmp_path, monkeypatch):
    """gen3c's metadata written from this pyproject.toml, as pip writes it, reads back as its
    extras: ``train`` with ``diffusion``'s packages, ``all`` with every extra's but ``fast``'s."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    lines = [f"Provides-Extra: {name}" for name in optional] + [f"Requires-Dist: {r}" for r in project["dependencies"]]
    lines += [f'Requires-Dist: {r}; extra == "{name}"' for name, requirements in optional.items() for r in requirements]
    install_fake(tmp_path, "gen3c", "0.1.0", *lines)
    monkeypatch.syspath_prepend(str(tmp_path))
    extras = dependencies.declared_extras()
    assert extras["core"] == {"includes": [], "requirements": project["dependencies"]}
    assert extras["depth"] == {"includes": [], "requirements": ["transformers>=4.56", "huggingface_hub>=0.34", "scipy>=1.10"]}
    assert extras["train"]["includes"] == ["diffusion"]
    assert extras["train"]["requirements"] == optional["diffusion"] + [r for r in optional["train"] if not r.startswith(("gen3c", "accelerate"))]
    names = lambda rs: {r.split(">")[0].split(",")[0] for r in rs}  # noqa: E731
    assert names(extras["all"]["requirements"]) == set().union(*(names(optional[e]) for e in optional if e not in ("fast", "all"))) - {"gen3c[diffusion]"}
    assert "transformers>=4.56" in extras["all"]["requirements"]  # diffusion's and depth's floor, once


def test_without_gen3c_metadata_extras_are_unknown(monkeypatch):
    """From a source tree that was never installed nothing says what the extras need: the report
    says so, and a missing package's error names its distribution alone."""
    monkeypatch.setattr(dependencies, "gen3c_metadata", lambda: None)
    found = environment.report()
    assert found["extras"] == "unknown (gen3c is not installed: pip install -e .)"
    assert str(dependencies.missing_error("av", "the video")) == "the video needs av (av is missing): pip install 'av'"
    from rich.console import Console

    from gen3c.cli import _environment_tables

    console = Console(width=200, record=True, file=io.StringIO())
    console.print(*_environment_tables(found))
    assert "extras: unknown (gen3c is not installed: pip install -e .)" in console.export_text()


def test_gen3c_7b_plan_is_the_one_max_gpu_memory_picks():
    """docs/gen3c_model.md's examples for GEN3C-7B at 121×704×1280: 24 GB → resident with the
    tokenizer in chunks, 16 GB → group_offload; 8 GB fits nothing."""
    plan = environment._gen3c_7b_plan(24.0)
    assert plan["plan"] == "resident, tokenizer in chunks" and plan["estimated_peak_gb"] <= 0.9 * 24
    assert environment._gen3c_7b_plan(16.0)["plan"] == "group_offload"
    tight = environment._gen3c_7b_plan(8.0)
    assert tight["plan"] is None and tight["why"].startswith("--max_gpu_memory 8 GB is too little")


def test_cached_weights_are_listed_and_a_failing_probe_is_unknown(tmp_path):
    (tmp_path / "Gen3C-Cosmos-7B-v1").mkdir()  # a converted folder whose manifest is damaged
    (tmp_path / "Gen3C-Cosmos-7B-v1" / "model.safetensors").write_bytes(b"x" * 1000)
    (tmp_path / "Gen3C-Cosmos-7B-v1" / "gen3c_weights.json").write_text("{")
    (tmp_path / "Gen3C-Cosmos-7B-v2").mkdir()  # one without it: not gen3c's
    items = environment.report(tmp_path)["weights_cache"]["items"]
    converted = {item["name"]: item for item in items if item["kind"] == "converted"}
    assert converted["Gen3C-Cosmos-7B-v1"]["size"] == "1.0 kB" and converted["Gen3C-Cosmos-7B-v1"]["detail"].startswith("damaged")
    assert converted["Gen3C-Cosmos-7B-v2"]["detail"].startswith("not made by gen3c")
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("")
    cache = environment.report(a_file)["weights_cache"]
    assert cache.startswith("unknown (Gen3cInputError: the folder of converted weights") and "is a file" in cache


@no_gpu
def test_table_shows_each_section(tmp_path):
    result = CliRunner().invoke(app, ["env", "--cache_dir", str(tmp_path)], env={"COLUMNS": "140"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("gen3c env", f"(code sha256 {environment.code_digest()[:12]}) at ", torch.__version__, "diffusion complete", "viser", metadata.version("viser"),
                 "--attention_backend auto ", "flash4 needs a CUDA GPU", "no CUDA GPU: the preview generator", str(tmp_path), "nothing cached"):  # fmt: skip
        assert text in out, text
    if not all(environment.package(r)["usable"] for r in dependencies.declared_extras()["fast"]["requirements"]):
        assert "fast incomplete" in out and "to complete: pip install 'gen3c[fast]'" in out


def test_the_cgroups_memory_limit_is_reported(tmp_path, monkeypatch):
    """In a container or a SLURM job the kernel kills a process at its cgroup's memory limit,
    whatever RAM the machine has; gen3c env showed the machine's RAM alone, so a bug report from
    there could not tell why a run was refused or killed. Now the limit and what is left of it
    are in the JSON and the table (v2 here: the job's 6 GiB, 4.5 GiB of it in use), and none where
    none is set."""
    import psutil

    (tmp_path / "proc_cgroup").write_text("0::/job/task\n")
    (tmp_path / "mount" / "job" / "task").mkdir(parents=True)
    (tmp_path / "mount" / "job" / "memory.max").write_text(f"{6 * 2**30}\n")
    (tmp_path / "mount" / "job" / "memory.current").write_text(f"{9 * 2**29}\n")
    (tmp_path / "mount" / "job" / "task" / "memory.max").write_text("max\n")
    (tmp_path / "mount" / "job" / "memory.swap.max").write_text("0\n")
    monkeypatch.setattr(environment, "PROC_CGROUP", tmp_path / "proc_cgroup")
    monkeypatch.setattr(environment, "CGROUP_MOUNT", tmp_path / "mount")
    ram = environment.report(tmp_path / "weights")["ram"]
    assert (ram["cgroup_limit_gb"], ram["cgroup_available_gb"], ram["cgroup_swap_gb"]) == (6.0, 1.5, 0.0)
    assert ram["total_gb"] == round(psutil.virtual_memory().total / 2**30, 1) and ram["swap_gb"] == round(psutil.swap_memory().total / 2**30, 1)
    result = CliRunner().invoke(app, ["env", "--cache_dir", str(tmp_path / "weights")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "GB swap; this process's cgroup allows 6.0 GB, 1.5 GB of it available, and 0.0 GB swap" in result.stdout, result.stdout
    monkeypatch.setattr(environment, "PROC_CGROUP", tmp_path / "absent")  # (not Linux, or no limit)
    ram = environment.report(tmp_path / "weights")["ram"]
    assert ram["cgroup_limit_gb"] is None and ram["cgroup_available_gb"] is None and ram["cgroup_swap_gb"] is None


def test_the_ram_row_without_psutil_names_its_pip_install(tmp_path, monkeypatch):
    """psutil is one of gen3c's own dependencies; an install that lost it had gen3c env's RAM row read
    "unknown (ModuleNotFoundError: No module named 'psutil')", where the memory checks of a run name
    the pip install that mends it. The row now names it too."""
    monkeypatch.setitem(sys.modules, "psutil", None)  # importing it now raises ImportError
    ram = environment.report(tmp_path / "weights")["ram"]
    assert ram.startswith("unknown (Gen3cDependencyError: measuring the RAM needs psutil (psutil is missing): pip install 'psutil"), ram


def test_table_renders_a_gpu_and_probes_that_failed():
    """The renderer takes what a GPU machine reports, and "unknown (…)" in place of any section."""
    from rich.console import Console

    from gen3c.cli import _environment_tables

    unknown = "unknown (RuntimeError: boom)"
    gpu = {"device": "cuda:0", "name": "NVIDIA H100", "compute_capability": "9.0", "total_gb": 79.1, "free_gb": 78.5}
    found = {key: unknown for key in KEYS} | {
        "gpus": [gpu, unknown],
        "devices": {
            "cuda:0": {
                "attention": {"auto": "flash4", "auto_fp8": unknown, "kernels": {"sdpa": "available", "flash4": "available", "cudnn_fp8": unknown}},
                "fp8_matmuls": "available",
                "gen3c_7b": environment._gen3c_7b_plan(78.5),
            },
            "cuda:1": {"attention": unknown, "fp8_matmuls": unknown, "gen3c_7b": unknown},
        },
    }
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(*_environment_tables(found))
    out = console.export_text()
    assert "cuda:0: NVIDIA H100" in out and "compute capability 9.0, 79.1 GB, 78.5 GB free" in out
    assert "--max_gpu_memory 78.5 (the free memory): resident, estimated peak" in out
    assert out.count(unknown) >= 8


def test_gpus_cuda_cannot_start_is_said_not_none(monkeypatch):
    """A GPU whose driver is too old for torch's CUDA: torch.cuda.is_available() warns and says
    False, and the report said "GPUs: none", as on a machine without one. Now the reason, as
    CUDA_VISIBLE_DEVICES hiding every GPU is."""
    import warnings

    warned = []

    def old_driver():  # torch warns once, on its first look at the driver
        if warned:
            return False
        warned.append(True)
        warnings.warn("CUDA initialization: The NVIDIA driver on your system is too old (found version 11040).\nPlease update.", UserWarning, stacklevel=2)
        return False

    monkeypatch.setattr(torch.cuda, "is_available", old_driver)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    found = environment.report()
    assert found["gpus"] == "unknown (CUDA does not start: CUDA initialization: The NVIDIA driver on your system is too old (found version 11040).)"
    assert list(found["devices"]) == ["cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert environment._gpus() == "unknown (CUDA_VISIBLE_DEVICES='' hides every GPU)"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert environment._gpus() == []


def test_gpus_takes_no_other_threads_warning_for_cudas(monkeypatch):
    """A warning another thread raised while torch looked for CUDA was recorded by the
    process-wide warnings.catch_warnings: "GPUs: unknown (CUDA does not start: <that warning>)" on
    a machine without CUDA, and the warning never shown where it was raised."""
    import threading
    import warnings

    def no_cuda():  # meanwhile, another thread warns
        other = threading.Thread(target=lambda: warnings.warn("another thread's", UserWarning, stacklevel=1))
        other.start()
        other.join()
        return False

    monkeypatch.setattr(torch.cuda, "is_available", no_cuda)
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        assert environment._gpus() == []
    assert [str(w.message) for w in shown if issubclass(w.category, UserWarning)] == ["another thread's"]


def test_gpus_takes_no_collectors_or_imports_warning_for_cudas(monkeypatch):
    """torch says why CUDA does not start in a UserWarning. A ResourceWarning the garbage collector
    raised while torch looked (a file another part of the program left open, collected then), or
    an import's DeprecationWarning, was said as that reason: "GPUs: unknown (CUDA does not start:
    unclosed file <…>)" on a machine without CUDA. Now that machine's GPUs are none."""
    import warnings

    def no_cuda():
        warnings.warn("unclosed file <_io.FileIO name='/tmp/walk.npz' mode='rb' closefd=True>", ResourceWarning, stacklevel=1)
        warnings.warn("pkg_resources is deprecated as an API", DeprecationWarning, stacklevel=1)
        return False

    monkeypatch.setattr(torch.cuda, "is_available", no_cuda)
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert environment._gpus() == []
