"""``gen3c env``: what this machine offers gen3c, as a table and as JSON for bug reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from gen3c import environment
from gen3c.cli import app
from gen3c.dependencies import PACKAGES

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
    environ = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_CACHE": str(cache_dir / "hub")}
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
    assert found["torch"]["version"] == torch.__version__ and found["python"]["executable"] == sys.executable
    assert found["cpu_threads"] == os.cpu_count() and found["ram"]["total_gb"] > 0
    assert found["gpus"] == [] and list(found["devices"]) == ["cpu"]
    cpu = found["devices"]["cpu"]
    assert cpu["attention"]["auto"] == cpu["attention"]["auto_fp8"] == "sdpa"
    assert cpu["attention"]["kernels"] == {"sdpa": "available", "flash4": "flash4 needs a CUDA GPU", "cudnn_fp8": "cudnn_fp8 needs a CUDA GPU"}
    assert cpu["fp8_matmuls"].startswith("fp8 matmuls need a CUDA GPU")
    assert cpu["gen3c_7b"] == "no CUDA GPU: the preview generator and the shipped small models run on the CPU"
    assert found["weights_cache"] == {"folder": str(tmp_path), "items": []}


def test_a_module_that_cannot_be_imported_is_missing_and_its_extra_incomplete(tmp_path):
    found = env_json("viser,scipy", cache_dir=tmp_path)
    extras = found["extras"]
    assert [p["module"] for group in extras.values() for p in group["packages"]] == list(PACKAGES)  # every package, once
    for extra, module in (("gui", "viser"), ("depth", "scipy")):
        (entry,) = [p for p in extras[extra]["packages"] if p["module"] == module]
        assert entry["version"] is None and entry["usable"] is False
        assert extras[extra]["complete"] is False and extras[extra]["install"] == f"pip install 'gen3c[{extra}]'"
    # The rest as an interpreter without the block sees them (both are installed here).
    assert metadata.version("viser") and metadata.version("scipy")
    assert extras["core"]["complete"] is True and extras["core"]["install"] == "pip install gen3c"


def test_versions_are_the_installed_distributions():
    extras = environment.report()["extras"]
    for extra, group in extras.items():
        for entry in group["packages"]:
            requirement, declared = PACKAGES[entry["module"]]
            assert (declared or environment.CORE) == extra and entry["requirement"] == requirement
            if entry["version"] is not None and entry["installed_from"] == entry["distribution"]:
                assert entry["version"] == metadata.version(entry["distribution"]), entry
        assert group["complete"] == all(entry["usable"] for entry in group["packages"])


def test_an_old_version_is_not_usable():
    assert environment._meets("diffusers>=0.42", "0.42.1")
    assert not environment._meets("diffusers>=0.42", "0.41.0")
    assert environment._meets("flash-attn-4>=4.0.0b40", "4.0.0b41")


def test_gen3c_7b_plan_is_the_one_max_gpu_memory_picks():
    """docs/gen3c_model.md's examples for GEN3C-7B at 121×704×1280: 24 GB → resident with the
    tokenizer in chunks, 16 GB → group_offload; 8 GB fits nothing."""
    plan = environment._gen3c_7b_plan(24.0)
    assert plan["plan"] == "resident, tokenizer in chunks" and plan["estimated_peak_gb"] <= 0.9 * 24
    assert environment._gen3c_7b_plan(16.0)["plan"] == "group_offload"
    tight = environment._gen3c_7b_plan(8.0)
    assert tight["plan"] is None and tight["why"].startswith("--max_gpu_memory 8 GB is too little")


def test_cached_weights_are_listed_and_a_failing_probe_is_unknown(tmp_path):
    (tmp_path / "Gen3C-Cosmos-7B-v1").mkdir()  # a converted folder without its manifest
    (tmp_path / "Gen3C-Cosmos-7B-v1" / "model.safetensors").write_bytes(b"x" * 1000)
    items = environment.report(tmp_path)["weights_cache"]["items"]
    converted = [item for item in items if item["kind"] == "converted"]
    assert [(i["name"], i["size"]) for i in converted] == [("Gen3C-Cosmos-7B-v1", "1.0 kB")]
    assert converted[0]["detail"].startswith("damaged")
    a_file = tmp_path / "not_a_folder"
    a_file.write_text("")
    cache = environment.report(a_file)["weights_cache"]
    assert cache.startswith("unknown (Gen3cInputError: the folder of converted weights") and "is a file" in cache


@no_gpu
def test_table_shows_each_section(tmp_path):
    result = CliRunner().invoke(app, ["env", "--cache_dir", str(tmp_path)], env={"COLUMNS": "140"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("gen3c env", torch.__version__, "diffusion complete", "viser", metadata.version("viser"),
                 "--attention_backend auto ", "flash4 needs a CUDA GPU", "no CUDA GPU: the preview generator", str(tmp_path), "nothing cached"):  # fmt: skip
        assert text in out, text
    if not all(environment.package(m)["usable"] for m, (_, extra) in PACKAGES.items() if extra == "fast"):
        assert "fast incomplete" in out and "to complete: pip install 'gen3c[fast]'" in out


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
    console = Console(width=200, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(*_environment_tables(found))
    out = console.export_text()
    assert "cuda:0: NVIDIA H100" in out and "compute capability 9.0, 79.1 GB, 78.5 GB free" in out
    assert "--max_gpu_memory 78.5 (the free memory): resident, estimated peak" in out
    assert out.count(unknown) >= 8
