"""gen3c as a pip-installed package: what the wheel must carry, and a newcomer's first commands.

A wheel holds only the files pyproject's package-data names; a file the code loads that no glob
covers works from a clone and breaks after ``pip install gen3c``. A command whose extra is not
installed ends in one line naming the extra, exit code 2, and leaves no output behind.
"""

from __future__ import annotations

import glob
import json
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest
from child_env import child_env
from typer.testing import CliRunner

import gen3c
import gen3c.dependencies
from gen3c import cli
from gen3c.cli import app
from gen3c.errors import Gen3cInputError
from gen3c.training.config import load_config, shipped_config, shipped_config_names

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "gen3c"
runner = CliRunner()


def packaged_files() -> set[Path]:
    """The files of src/gen3c that pyproject's package-data globs put into the wheel (setuptools' glob rules)."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gen3c"]
    files = set()
    for pattern in patterns:
        matched = {PACKAGE / name for name in glob.glob(pattern, root_dir=PACKAGE, recursive=True)}
        assert matched, f"package-data glob {pattern!r} matches nothing"
        files |= {path for path in matched if path.is_file()}
    return files


def test_package_data_covers_every_file_the_package_loads():
    data = {p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    assert any(p.name == "diffusion_pytorch_model.safetensors" for p in data) and shipped_config("default.toml") in data
    missing = sorted(str(p.relative_to(PACKAGE)) for p in data - packaged_files())
    assert not missing, f"not in the wheel: {missing}"


def sdist_template_files(root: Path) -> set[str]:
    """The files MANIFEST.in adds to the sdist beside the package (setuptools' own template
    rules), as paths relative to ``root``."""
    from setuptools._distutils.filelist import FileList

    files = FileList()
    files.allfiles = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".git" not in p.parts]
    for line in (root / "MANIFEST.in").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            files.process_template_line(line)
    return set(files.files)


def test_the_sdist_holds_what_the_tests_read():
    """The README runs the tests "in a clone or the sdist": the sdist carries every folder beside
    src/ that the tests read — benchmarks/ (docs/ names its scripts and flags), scripts/ (the demo
    sample's maker), .ci/run (the README's test command) — not only tests/ and docs/."""
    shipped = sdist_template_files(ROOT)
    needed = {str(p.relative_to(ROOT)) for folder in ("tests", "docs", "benchmarks", "scripts", ".ci")
              for p in (ROOT / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts}  # fmt: skip
    assert any(n.startswith("benchmarks/") for n in needed) and (ROOT / ".ci" / "run").is_file()
    assert not sorted(needed - shipped)


def test_import_gen3c_is_light_and_names_pyprojects_version():
    """``import gen3c`` loads no torch, numpy or diffusers (gen3c/__init__.py imports its pipeline
    on first use), and its ``__version__`` (run records, ``gen3c env``) is the one pip installs."""
    done = subprocess.run(
        [sys.executable, "-c", "import gen3c, json, sys; print(json.dumps([gen3c.__version__, sorted(sys.modules)]))"],
        capture_output=True, text=True, env=child_env(), check=True,
    )  # fmt: skip
    version, modules = json.loads(done.stdout)
    assert not {"torch", "numpy", "diffusers", "transformers", "cv2", "rich", "typer"} & set(modules)
    assert version == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_the_declared_license_ships_with_its_text():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text


def test_a_shipped_config_loads_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert {"default", "small_procedural", "distill_small", "lora_7b", "distill_7b"} <= set(shipped_config_names())
    assert load_config("default") == load_config(shipped_config("default.toml"))
    assert load_config("small_procedural.toml") == load_config(shipped_config("small_procedural.toml"))
    # A file of that name in the working directory is the user's own config and wins.
    Path("default.toml").write_text("[run]\nmax_steps = 7\n")
    assert load_config("default.toml").run.max_steps == 7
    with pytest.raises(Gen3cInputError, match=r"'nope' cannot be read .* shipped config by name \(default, .*small_procedural; the files to copy are in "):
        load_config("nope")
    # A shipped config's name mistyped: the nearest one named, not the list.
    with pytest.raises(Gen3cInputError, match=r"^config 'defualt' cannot be read \(No such file or directory\): did you mean the shipped config 'default'\? \(or pass a TOML file; the files to copy are in "):
        load_config("defualt")


def one_line_error(res, extra: str) -> str:
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = res.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and f"pip install 'gen3c[{extra}]'" in lines[0], res.output
    return lines[0]


@pytest.mark.parametrize("module", ["diffusers", "accelerate", "peft", "tensorboard"])
def test_train_without_the_train_extra_says_so(tmp_path, monkeypatch, module):
    monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    out = tmp_path / "run"
    line = one_line_error(runner.invoke(app, ["train", "default", "--out", str(out)]), "train")
    assert f"({module} is missing)" in line
    assert not out.exists()


def test_batch_on_ray_without_ray_says_so_before_any_output(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({"name": "a", "input_image_path": str(PACKAGE / "assets" / "demo_image.png")}) + "\n")
    out = tmp_path / "out"
    for flag in (["--ray"], ["--ray_address", "auto"]):
        one_line_error(runner.invoke(app, ["batch", str(manifest), "--output_folder", str(out), *flag]), "batch")
        assert not out.exists()


#: Runs gen3c commands in a fresh interpreter where viser and diffusers cannot be imported. Hiding a
#: package in this process would not do: gen3c modules that earlier tests imported (gen3c.gui.app,
#: gen3c.pipelines.loading) already hold it, and the command would run (the GUI would serve forever).
WITHOUT_EXTRAS = """
import json, sys
for name in ("viser", "diffusers"):
    sys.modules[name] = None  # importing it now raises ImportError, as in an install without it
from typer.testing import CliRunner
from gen3c.cli import app
results = [CliRunner().invoke(app, args) for args in json.loads(sys.argv[1])]
print(json.dumps([[res.exit_code, res.output] for res in results]))
"""


def test_gui_and_the_gen3c_generator_without_their_extras_say_so(box_scene, tmp_path):
    image, depth, *_ = box_scene
    out = tmp_path / "out"
    commands = [
        ["gui", "--work_dir", str(tmp_path / "gui")],
        ["generate", "--generator", "gen3c", "--model", "tiny", "--input_image_path", str(image), "--depth_path", str(depth),
         "--fov", "60", "--video_save_folder", str(out)],
    ]  # fmt: skip
    env = child_env()
    done = subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS, json.dumps(commands)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    (gui_code, gui_output), (generate_code, generate_output) = json.loads(done.stdout.splitlines()[-1])
    for (code, output), extra in (((gui_code, gui_output), "gui"), ((generate_code, generate_output), "diffusion")):
        assert code == 2 and len(output.splitlines()) == 1 and f"pip install 'gen3c[{extra}]'" in output, output
    assert not (tmp_path / "gui").exists() and (not out.exists() or not any(out.iterdir()))


def test_notes_keep_their_square_brackets():
    """A note's install hint is text, not console markup: 'gen3c[depth]' stays whole."""
    with cli.console.capture() as captured, warnings.catch_warnings(), cli.console_warnings():
        warnings.simplefilter("always")
        warnings.warn("no depth estimator: pip install 'gen3c[depth]' [/]", UserWarning, stacklevel=1)
    assert "note: no depth estimator: pip install 'gen3c[depth]' [/]" in captured.get()


def test_packages_names_exactly_the_distributions_pyproject_declares():
    """Every package pyproject.toml installs has its import name in PACKAGES, and PACKAGES names
    nothing else; the extra each suggests is one that installs it."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from gen3c.dependencies import PACKAGES

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {None: project["dependencies"], **project["optional-dependencies"]}
    installs = {extra: {canonicalize_name(Requirement(r).name) for r in requirements} for extra, requirements in groups.items()}
    declared = set().union(*installs.values()) - {"gen3c"}
    named = [canonicalize_name(name) for name, _ in PACKAGES.values()]
    assert sorted(named) == sorted(declared)  # each once
    for module, (name, extra) in PACKAGES.items():
        assert canonicalize_name(name) in installs[extra], (module, name, extra)


def test_the_cpu_memory_checks_need_only_gen3cs_own_dependencies():
    """The CPU memory checks (HostMemory.now: renders, preview chunks, eval cases, checkpoint loads)
    measure with psutil, which came with gen3c[diffusion] only: off Linux (no /proc/meminfo to read
    instead) a base install's renders went unchecked, and `gen3c eval` asked for the diffusion
    extra. Now psutil is one of gen3c's own dependencies, and a missing one is named as such."""
    from packaging.requirements import Requirement

    from gen3c.dependencies import PACKAGES, missing_error

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "psutil" in {Requirement(r).name for r in project["dependencies"]}
    assert PACKAGES["psutil"][1] is None
    assert "pip install 'psutil" in str(missing_error("psutil", "checking the free CPU memory"))


def test_every_extra_with_transformers_requires_one_that_takes_dtype():
    """gen3c loads T5 (pipelines/gen3c.py, models/convert.py) and the depth models with
    ``from_pretrained(dtype=...)``, a keyword transformers 4.56 introduced (``torch_dtype`` before):
    an older one ignores it and loads T5-11B in float32, twice the memory of the bfloat16 asked for."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for extra, requirements in project["optional-dependencies"].items():
        for line in requirements:
            requirement = Requirement(line)
            if requirement.name == "transformers":
                assert not requirement.specifier.contains("4.55.4"), (extra, line)
                assert requirement.specifier.contains("4.56.0"), (extra, line)


def test_the_pyav_floor_is_one_that_decodes_colour_right():
    """With PyAV 12.0, 12.1 and 12.2, gen3c's reader (io/video.py's ``_rgb24``) gets the colours
    of a limited-range video wrong, red (236, 13, 17) for (255, 0, 0), and tests/test_video_files.py
    fails 16 or 17 of its 33 tests; with 12.3 it passes all but two that need a newer PyAV in the
    test itself (``add_stream_from_template``) or for BT.2020 (no such matrix in PyAV 14.0.1 or older:
    converted as BT.601, as io/video.py notes)."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (av,) = [Requirement(line) for line in project["dependencies"] if Requirement(line).name == "av"]
    assert not any(av.specifier.contains(v) for v in ("12.0.0", "12.1.0", "12.2.0")) and av.specifier.contains("12.3.0"), str(av)


#: ``python -c`` this, then the blocked module names (comma-separated), then gen3c's arguments: the
#: command line as installed, in an interpreter where those modules cannot be imported.
BLOCKED_COMMAND = (
    "import runpy, sys\n"
    "for name in filter(None, sys.argv.pop(1).split(',')):\n"
    "    sys.modules[name] = None  # importing it now raises ImportError, as in an install without it\n"
    "runpy.run_module('gen3c', run_name='__main__')\n"
)

DEMO_INPUT = ["--input_image_path", str(PACKAGE / "assets" / "demo_image.png"), "--depth_path", str(PACKAGE / "assets" / "demo_depth.npz"), "--fov", "60"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "blocked, command, expected",
    [
        # The video's frame counter (PyAV) was imported only after the generation: refused before it now.
        ("av", ["generate", *DEMO_INPUT, "--num_video_frames", "9", "--resolution", "48x80"], "needs av (av is missing): pip install 'av>=12.3'"),
        # diffusers' Cosmos DiT imports torchvision only once sampling starts (a NameError there).
        ("torchvision", ["generate", *DEMO_INPUT, "--generator", "gen3c", "--model", "tiny", "--num_video_frames", "17", "--resolution", "48x80"],
         "the gen3c generator needs torchvision (torchvision is missing): pip install 'gen3c[diffusion]'"),
        # NAME_points.ply was written after the estimate.
        ("plyfile", ["depth", str(PACKAGE / "assets" / "demo_image.png"), "--depth_estimator", "prior", "--fov", "60"],
         "needs plyfile (plyfile is missing): pip install 'plyfile>=1.0'"),
        # Imported as the command starts (gen3c.evaluation.metrics): the command line's own catch.
        ("cv2", ["eval", "--scenes", "room", "--presets", "left", "--resolution", "32x48", "--num_video_frames", "3", "--no_plots"],
         "gen3c eval needs opencv-python-headless (cv2 is missing): pip install 'opencv-python-headless>=4.8'"),
        # Installed but broken (a shared library gone): reinstall it.
        ("", ["generate", *DEMO_INPUT, "--num_video_frames", "9", "--resolution", "48x80"],
         "fails to import (libavformat.so.61: cannot open shared object file): pip install --force-reinstall 'av>=12.3'"),
        # transformers' own dependency missing, met inside diffusers' lazy import (a RuntimeError
        # whose ImportError names only regex): the package that imported it is named.
        ("regex", ["generate", *DEMO_INPUT, "--generator", "gen3c", "--model", "tiny", "--num_video_frames", "17", "--resolution", "48x80"],
         "fails to import (import of regex halted; None in sys.modules): "
         "pip install --force-reinstall 'transformers"),
    ],
    ids=["av", "torchvision", "plyfile", "cv2", "broken-av", "regex-of-transformers"],
)
def test_a_missing_or_broken_dependency_is_one_line_before_any_output(tmp_path, blocked, command, expected):
    paths = []
    if not blocked:  # an av package that fails to import, ahead of the real one
        (tmp_path / "broken" / "av").mkdir(parents=True)
        (tmp_path / "broken" / "av" / "__init__.py").write_text('raise ImportError("libavformat.so.61: cannot open shared object file")\n')
        paths.append(tmp_path / "broken")
    env = child_env(*paths)
    out = tmp_path / "out"
    folder = "--output_folder" if command[0] in ("depth", "eval") else "--video_save_folder"
    done = subprocess.run([sys.executable, "-c", BLOCKED_COMMAND, blocked, *command, folder, str(out)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)  # fmt: skip
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], done.stdout + done.stderr
    assert not out.exists() or not any(out.iterdir())


def test_a_known_packages_own_dependency_failing_names_the_package_that_imported_it(tmp_path, monkeypatch):
    from gen3c.dependencies import dependency_error

    # Fakes of two known packages that are not installed here: cudnn imports flash_attn, whose
    # submodule imports a module gen3c does not know.
    for path, text in {"cudnn/__init__.py": "import flash_attn\n", "flash_attn/__init__.py": "from flash_attn import kernels\n",
                       "flash_attn/kernels.py": "import not_there_xyz\n"}.items():  # fmt: skip
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    # As if not installed, also on a GPU host that has the real flash-attn-4 (its version would be named).
    monkeypatch.setattr(gen3c.dependencies, "_installed_version", lambda dist: None)

    def raised(module: str, message: str = "") -> BaseException:
        """What importing ``module`` raises, wrapped as diffusers' lazy imports do."""
        for name in ("cudnn", "flash_attn", "flash_attn.kernels"):
            monkeypatch.delitem(sys.modules, name, raising=False)
        if message:
            (tmp_path / "flash_attn" / "kernels.py").write_text(f"raise ImportError({message!r})\n")
        try:
            try:
                __import__(module)
            except ImportError as exc:
                raise RuntimeError(f"Failed to import {module} because of the following error") from exc
        except RuntimeError as exc:
            return exc
        raise AssertionError(f"{module} imported")

    error = dependency_error(raised("cudnn"), "the fast attention")
    assert error is not None and str(error).startswith(
        "the fast attention needs flash-attn-4, which fails to import (No module named 'not_there_xyz'): pip install --force-reinstall 'flash-attn-4"
    ), error
    # A package's own message with no module named (an optional feature it refuses) is left as it is.
    assert dependency_error(raised("cudnn", "flash_attn needs a GPU"), "x") is None
    # A gen3c module missing is gen3c's bug, not a package's.
    (tmp_path / "flash_attn" / "kernels.py").write_text("import gen3c.not_there_xyz\n")
    assert dependency_error(raised("cudnn"), "x") is None


def test_a_known_package_raising_another_error_as_it_is_imported_is_one_line_and_only_then(tmp_path, monkeypatch):
    """A package installed but broken may raise anything as it is imported (transformers built for
    another torch: an AttributeError): require and the command line's catch name it with a
    reinstall, as an ImportError; also met inside diffusers' lazy import (a RuntimeError from it).
    Before: the AttributeError's traceback. The same error at run time, or from gen3c's code run
    by the package as it is imported, is no broken install: left as it is."""
    from gen3c.dependencies import dependency_error, require
    from gen3c.errors import Gen3cDependencyError

    (tmp_path / "flash_attn").mkdir()
    (tmp_path / "flash_attn" / "ops.py").write_text("import torch\nKERNEL = torch.fake_op_xyz\n")
    (tmp_path / "flash_attn" / "run.py").write_text("def call():\n    raise RuntimeError('CUDA error: out of memory')\n")
    (tmp_path / "cudnn.py").write_text("import gen3c.dependencies\ngen3c.dependencies.distribution('not_there_xyz')\n")  # raised in gen3c
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(gen3c.dependencies, "_installed_version", lambda dist: None)  # as if not installed (see above)
    for name in ("flash_attn", "flash_attn.ops", "flash_attn.run", "cudnn"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    expected = (
        "the fast attention needs flash-attn-4, which fails to import (AttributeError: module 'torch' has no attribute 'fake_op_xyz'): "
        "pip install --force-reinstall 'flash-attn-4"
    )
    with pytest.raises(Gen3cDependencyError) as raised:
        require("flash_attn.ops", "the fast attention")
    assert str(raised.value).startswith(expected) and str(raised.value).endswith("(`pip check` names installed versions that do not match)")
    try:
        try:
            __import__("flash_attn.ops")
        except AttributeError as exc:  # as diffusers' _LazyModule wraps it
            raise RuntimeError("Failed to import flash_attn.ops because of the following error") from exc
    except RuntimeError as exc:
        assert str(dependency_error(exc, "the fast attention")).startswith(expected)
    with pytest.raises(RuntimeError) as raised:
        require("flash_attn.run", "x").call()
    assert dependency_error(raised.value, "x") is None
    with pytest.raises(KeyError):
        require("cudnn", "x")


def test_a_module_gen3c_imports_itself_is_not_blamed_on_the_package_that_called_gen3c():
    """gen3c code run by torch (a module's forward, through ``Module.__call__``) that imports a
    module nobody installed: gen3c's bug, not a broken torch to reinstall."""
    import torch

    from gen3c.dependencies import dependency_error

    namespace = {"__name__": "gen3c.models.fake_layer", "torch": torch}
    exec("class Layer(torch.nn.Module):\n    def forward(self, x):\n        import not_there_xyz\n        return x\n", namespace)
    with pytest.raises(ImportError) as raised:
        namespace["Layer"]()(torch.zeros(1))
    assert dependency_error(raised.value, "gen3c generate") is None


@pytest.mark.slow
def test_gen3c_generate_with_a_dependency_of_transformers_missing_raises_one_line(tmp_path):
    script = (
        "import sys\n"
        "sys.modules['regex'] = None  # transformers' own dependency, gone\n"
        "import gen3c\n"
        "try:\n"
        "    gen3c.generate(sys.argv[1], depth=sys.argv[2], fov=60, model='tiny', num_video_frames=17, resolution='48x80',\n"
        "                   video_save_folder=sys.argv[3])\n"
        "except gen3c.Gen3cInputError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    env = child_env()
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", script, str(PACKAGE / "assets" / "demo_image.png"), str(PACKAGE / "assets" / "demo_depth.npz"), str(out)],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith(
        "Gen3cDependencyError the gen3c generator needs transformers, whose installed "
    ) and "fails to import (import of regex halted" in done.stdout, done.stdout + done.stderr
    assert not out.exists() or not any(out.iterdir())
