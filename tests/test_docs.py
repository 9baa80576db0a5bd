"""The README and docs/ as a new user meets them: their commands parse, their examples load, their
Python runs (shrunk where the text says 704×1280 and 121 frames), and the files they name exist."""

from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path

import pytest
import typer.main

from gen3c.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"\bgen3c ((?:cache )?[a-z]+)\b")


def code_blocks(text: str, language: str | None = None) -> list[str]:
    """The fenced code blocks of a markdown text (of one language, or all)."""
    return [body for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S) if language is None or lang == language]


def subcommand(words: list[str]):
    command = typer.main.get_command(app)
    for word in words:
        command = getattr(command, "commands", {}).get(word)
        if command is None:
            return None
    return command


def documented_commands(text: str, fenced: bool):
    """(subcommand words, the arguments that follow them) of every ``gen3c SUB …`` in the
    fenced code blocks (``fenced``) or in the inline code of the prose."""
    if fenced:
        lines = [line for block in code_blocks(text) for line in block.replace("\\\n", " ").splitlines()]
        lines = [re.split(r"\s#", line)[0] for line in lines]  # shell comments (and Python's) are no arguments
    else:
        lines = re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S).replace("\n", " "))
    for line in lines:
        for match in COMMAND.finditer(line):
            words = match.group(1).split()
            if subcommand(words) is not None:
                yield words, re.split(r"&&|;|\|", line[match.end():])[0]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_documented_command_parses(doc):
    """Each ``gen3c …`` line of a code block parses as that subcommand's arguments (its flags,
    their choices and types, its positional arguments); ``...``, ``…`` and ``[optional]``
    brackets are the text's own shorthand. Inline code in the prose names flags of the
    subcommand it follows."""
    text = doc.read_text()
    for words, rest in documented_commands(text, fenced=True):
        args = [a for a in shlex.split(rest.replace("[", " ").replace("]", " ")) if a not in ("...", "…")]
        command = subcommand(words)
        try:
            command.make_context(" ".join(words), args)
        except Exception as exc:  # click's usage errors; --help exits
            if type(exc).__name__ != "Exit":
                pytest.fail(f"{doc.name}: gen3c {' '.join(words)} {rest.strip()!r}: {exc}")
    for words, rest in documented_commands(text, fenced=False):
        flags = {o for p in subcommand(words).params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
        unknown = [f for f in re.findall(r"(?<![\w-])--[a-z][a-z0-9_]*", rest) if f not in flags]
        assert not unknown, f"{doc.name}: `gen3c {' '.join(words)}{rest}` names {unknown}, not flags of gen3c {' '.join(words)}"


BENCHMARKS = ROOT / "benchmarks"
BENCHMARK_SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "bench_common")
BENCHMARK_COMMAND = re.compile(r"(?:\bbenchmarks/|(?<![\w/.-]))(" + "|".join(BENCHMARK_SCRIPTS) + r")\.py\b")


@functools.cache
def benchmark_module(name: str):
    """A script of benchmarks/, imported by path (it is no package; it puts its folder on sys.path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_docs_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def benchmark_commands(text: str, fenced: bool) -> list[tuple[str, str]]:
    """(script, the arguments that follow it) of every ``python benchmarks/X.py …`` (or torchrun)
    in the fenced code blocks (``fenced``), or of every ``X.py --flag …`` in the prose's inline code."""
    if fenced:
        lines = [line for block in code_blocks(text) for line in block.replace("\\\n", "").splitlines()]
        starts = [(line, m) for line in lines for m in BENCHMARK_COMMAND.finditer(line)]
    else:
        spans = re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S).replace("\n", " "))
        starts = [(span, m) for span in spans for m in BENCHMARK_COMMAND.finditer(span) if span[m.end():].strip()]
    return [(m.group(1), line[m.end():]) for line, m in starts]


def benchmark_argv(rest: str) -> list[str]:
    """The words of a shell command line up to its end (``;``, ``&&``, ``|``, a ``#`` comment);
    ``[optional]`` brackets and ``...`` are the text's own shorthand."""
    lexer = shlex.shlex(rest.replace("[", " ").replace("]", " "), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    argv = []
    for word in lexer:
        if word in (";", "&&", "|", "||", "&", ";;"):
            break
        if word not in ("...", "…"):
            argv.append(word)
    return argv


def benchmark_parse_errors(text: str, where: str, capsys) -> list[str]:
    errors = []
    for fenced in (True, False):
        for script, rest in benchmark_commands(text, fenced):
            try:
                benchmark_module(script).parse_args(benchmark_argv(rest))
            except SystemExit as exc:  # argparse's usage errors; --help exits 0
                if exc.code not in (0, None):
                    message = capsys.readouterr().err.strip().splitlines()[-1:]
                    errors.append(f"{where}: benchmarks/{script}.py {rest.strip()!r}: {message}")
    return errors


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_documented_benchmark_command_parses(doc, capsys):
    """Each ``python benchmarks/X.py …`` of README/docs parses with that script's own argument
    parser (flags, their types and choices, the rows and modes they name); inline code in the
    prose that names a script with flags is held to the same. Nothing is run."""
    assert not benchmark_parse_errors(doc.read_text(), doc.name, capsys)


@pytest.mark.parametrize("script", BENCHMARK_SCRIPTS)
def test_each_benchmark_script_parses_its_own_usage_lines(script, capsys):
    """The usage lines of each script's docstring parse too; every script exposes ``parse_args``."""
    import ast

    doc = ast.get_docstring(ast.parse((BENCHMARKS / f"{script}.py").read_text()))
    assert callable(benchmark_module(script).parse_args)
    assert not benchmark_parse_errors(f"```\n{doc}\n```", f"{script}.py docstring", capsys)


def test_a_documented_benchmark_typo_is_caught(capsys):
    """The check above can fail: a misspelt flag, a row or mode that does not exist."""
    text = """```bash
python benchmarks/bench_dit.py --device cuda --mode resident   # --modes
python benchmarks/bench_video.py --rows "exact;fats" --json v.json
OMP_NUM_THREADS=1 python benchmarks/bench_dit.py --modes resident --e2e_mode fp8; echo done
python benchmarks/bench_speed.py --rows stock,regional_flash4 --iters 2 && echo fine
```
and in the prose `bench_memory.py --plans 7`."""
    errors = benchmark_parse_errors(text, "example", capsys)
    assert [e.split(":")[1].split()[0] for e in errors] == [
        "benchmarks/bench_dit.py", "benchmarks/bench_video.py", "benchmarks/bench_dit.py", "benchmarks/bench_memory.py"
    ]  # fmt: skip
    assert "unrecognized arguments: --mode" in errors[0] and "'fats'" in errors[1] and "--e2e_mode 'fp8'" in errors[2]


def test_the_files_the_docs_name_exist():
    names = set()
    for doc in DOCS:
        names |= set(re.findall(r"\b((?:benchmarks|tests|scripts|src/gen3c|docs)/[\w./-]+\.(?:py|toml|jsonl|json|md|png))", doc.read_text()))
    assert len(names) > 20
    assert not sorted(n for n in names if not (ROOT / n).exists())
    for doc in DOCS:
        for path, test in re.findall(r"(tests/\w+\.py)::(\w+)", doc.read_text()):
            assert re.search(rf"def {test}\b", (ROOT / path).read_text()), f"{doc.name}: {path}::{test}"


def test_the_camera_file_example_loads():
    from gen3c.io.camera_files import cameras_from_dict, parse_camera_json

    (example,) = code_blocks((ROOT / "docs" / "cameras.md").read_text(), "json")
    cameras = cameras_from_dict(parse_camera_json(example.encode()))
    assert (len(cameras), cameras.height, cameras.width) == (1, 704, 1280)
    assert cameras.K[0, 0, 0] == 1000 and cameras.K[0, 1, 2] == 352


def test_the_keyframe_example_runs(tmp_path, monkeypatch):
    """docs/cameras.md, "Keyframe paths": at 64×112 and 9 frames at 1.6 fps (the same 5 s), the
    path starts at the source camera, ends on the last keyframe, and its file replays it."""
    import torch

    from gen3c.io.camera_files import load_camera_file
    from gen3c.io.video import count_video_frames

    (code,) = [b for b in code_blocks((ROOT / "docs" / "cameras.md").read_text(), "python") if "KeyframePath" in b]
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(shrunk(code, {"(704, 1280)": "(64, 112)", "num_frames=121, fps=24": "num_frames=9, fps=1.6"}), scope)
    cameras = scope["cameras"]
    assert len(cameras) == 9 and (cameras.height, cameras.width) == (64, 112)
    assert torch.allclose(cameras.w2c[0], torch.eye(4), atol=1e-6) and torch.allclose(cameras.w2c[8], scope["w2c"][2], atol=1e-6)
    assert count_video_frames(tmp_path / "outputs" / "keyframed.mp4") == 9
    assert torch.allclose(load_camera_file(tmp_path / "camera_path.json").w2c, cameras.w2c, atol=1e-6)


def test_the_batch_manifest_examples_load(tmp_path):
    from gen3c.batch import load_manifest

    text = (ROOT / "docs" / "batch.md").read_text()
    (csv,) = code_blocks(text, "csv")
    gen3c_jobs = code_blocks(text, "json")[-1]
    (tmp_path / "jobs.csv").write_text(csv)
    (tmp_path / "jobs.jsonl").write_text(gen3c_jobs)
    rows = load_manifest(tmp_path / "jobs.csv")
    assert [job.name for job in rows] == ["room_left", "room_orbit"]
    room_left = rows[0].request(tmp_path / "out")
    assert room_left.fov == 60 and room_left.num_video_frames == 121 and room_left.save_buffer is True
    assert room_left.depth_path == str(tmp_path / "images" / "room_depth.npy")  # relative to the manifest
    street, clip = (job.request(tmp_path / "out") for job in load_manifest(tmp_path / "jobs.jsonl"))
    assert street.generator == "gen3c" and street.generator_options == {"checkpoint_dir": "/ckpt/gen3c"} and street.seed == 3
    assert clip.vipe_path == str(tmp_path / "vipe" / "clip7")


def shrunk(code: str, changes: dict[str, str]) -> str:
    for old, new in changes.items():
        assert old in code, f"the example no longer says {old!r}: update this test"
        code = code.replace(old, new)
    return code


@pytest.mark.slow
def test_readme_step_by_step_python_runs(tmp_path, monkeypatch):
    """README, "Python": the steps one by one, at 64×112 and 9 frames instead of 704×1280 and 121."""
    from gen3c.io.video import count_video_frames

    (code,) = [b for b in code_blocks((ROOT / "README.md").read_text(), "python") if "prepare_source" in b]
    monkeypatch.chdir(tmp_path)
    exec(shrunk(code, {"resolution=(704, 1280)": "resolution=(64, 112)", "num_frames=121": "num_frames=9"}), {})
    assert count_video_frames(tmp_path / "outputs" / "my_video.mp4") == 9
    assert (tmp_path / "outputs" / "my_video_buffer_masks.mp4").is_file() and (tmp_path / "outputs" / "my_video_cameras.json").is_file()


@pytest.mark.slow
def test_inputs_vipe_python_runs(tmp_path, monkeypatch):
    """docs/inputs.md, "Python": a ViPE result re-rendered along a preset, at 64×112 and 9 frames."""
    pytest.importorskip("OpenEXR")
    from layouts import scene, write_vipe

    from gen3c.io.video import count_video_frames

    rgb, depth, _, w2c, K = scene(12, 72, 128)
    write_vipe(tmp_path / "vipe_out", "clip", rgb, depth, w2c, K)
    (code,) = code_blocks((ROOT / "docs" / "inputs.md").read_text(), "python")
    monkeypatch.chdir(tmp_path)
    exec(shrunk(code, {"(704, 1280)": "(64, 112)", "num_frames=121": "num_frames=9", "121, frames.w2c, frames.K, 704, 1280": "9, frames.w2c, frames.K, 64, 112"}), {})
    assert count_video_frames(tmp_path / "outputs" / "vipe_left.mp4") == 9
