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
    # The package's own files as the installed package names them (gen3c/assets/…), and tests
    # named alone (`test_camera_dicts`, test_encoder_failures.py).
    package_files = {n for doc in DOCS for n in re.findall(r"(?<![\w/.])(gen3c/[\w./-]*\w/?)", doc.read_text())}
    assert package_files and not sorted(n for n in package_files if not (ROOT / "src" / n).exists())
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").glob("*.py"))
    named = {n for doc in DOCS for n in re.findall(r"`(test_\w+)`", doc.read_text())}
    assert len(named) > 20 and not sorted(n for n in named if not re.search(rf"def {n}\b", tests))
    files = {n for doc in DOCS for n in re.findall(r"(?<![\w/.])(test_\w+\.py)\b", doc.read_text())}
    assert not sorted(n for n in files if not (ROOT / "tests" / n).is_file())


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
def test_readme_step_by_step_python_runs(tmp_path, monkeypatch, capsys):
    """README, "Python": the steps one by one, at 64×112 and 9 frames instead of 704×1280 and 121.
    Its video shows progress on stderr (before: none, for minutes at full size)."""
    from gen3c.io.video import count_video_frames

    (code,) = [b for b in code_blocks((ROOT / "README.md").read_text(), "python") if "prepare_source" in b]
    monkeypatch.chdir(tmp_path)
    exec(shrunk(code, {"resolution=(704, 1280)": "resolution=(64, 112)", "num_frames=121": "num_frames=9"}), {})
    assert count_video_frames(tmp_path / "outputs" / "my_video.mp4") == 9
    assert (tmp_path / "outputs" / "my_video_buffer_masks.mp4").is_file() and (tmp_path / "outputs" / "my_video_cameras.json").is_file()
    err = capsys.readouterr().err
    assert "Rendering 3D cache: 9/9 (100%)" in err and "Generating (preview): 9/9 (100%)" in err, err


@pytest.mark.slow
def test_inputs_vipe_python_runs(tmp_path, monkeypatch):
    """docs/inputs.md, "Python": a ViPE result re-rendered along a preset, at 64×112 and 9 frames
    asked of a clip of 7 (the snippet's 121 cameras for a shorter clip stopped with a shape error)."""
    pytest.importorskip("OpenEXR")
    from layouts import scene, write_vipe

    from gen3c.io.video import count_video_frames

    rgb, depth, _, w2c, K = scene(7, 72, 128)
    write_vipe(tmp_path / "vipe_out", "clip", rgb, depth, w2c, K, fps=30)
    (code,) = code_blocks((ROOT / "docs" / "inputs.md").read_text(), "python")
    monkeypatch.chdir(tmp_path)
    exec(shrunk(code, {"(704, 1280)": "(64, 112)", "num_frames=121": "num_frames=9", "frames.K, 704, 1280": "frames.K, 64, 112"}), {})
    assert count_video_frames(tmp_path / "outputs" / "vipe_left.mp4") == 7
    # at the clip's rate, as gen3c generate writes it (before: 24 for this 30 fps clip, played slower)
    import av

    with av.open(str(tmp_path / "outputs" / "vipe_left.mp4")) as written:
        assert written.streams.video[0].average_rate == 30


# -- the docs' flags, values and defaults against the command line's own --------------------------


def gen3c_commands():
    """(words, command) of every gen3c command, subcommands included."""
    todo = [((), typer.main.get_command(app))]
    while todo:
        words, command = todo.pop()
        yield words, command
        todo += [((*words, name), sub) for name, sub in getattr(command, "commands", {}).items()]


def flags_of(command) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}


def benchmark_flags() -> set[str]:
    return {f for p in BENCHMARKS.glob("*.py") for f in re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", p.read_text())}


#: Flags of other programs the docs show, and the program that must stand right before them.
OTHER_PROGRAMS = {"--nproc_per_node": "torchrun", "--standalone": "torchrun", "--head": "ray start", "--address": "ray start",
                  "--port": "ray start", "--output": "vipe infer", "--logdir": "tensorboard", "--hypothesis-show-statistics": "pytest",
                  "--rgb": "download_dataset.py", "--depth": "download_dataset.py", "--force-reinstall": "pip install",
                  "--shm-size": "docker run", "--ntasks": "srun", "--ntasks-per-node": "srun", "--nodes": "srun",
                  "--gpus-per-node": "srun", "--gpus-per-task": "srun", "--multi-prog": "srun"}  # fmt: skip
FLAG = re.compile(r"(?<![\w-])--[a-zA-Z][\w-]*")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_flag_the_docs_name_exists(doc):
    """Every ``--flag`` in a doc (prose or code) is a flag of a gen3c command or of a benchmark
    script, or of the other program its line names (torchrun, ray, …): a flag renamed or removed
    in the code cannot stay in the docs. (Inline code naming ``gen3c SUB`` is held to SUB's own
    flags by test_every_documented_command_parses.)"""
    known = set().union(*(flags_of(c) for _, c in gen3c_commands())) | benchmark_flags()
    lines = doc.read_text().splitlines()
    unknown = []
    for i, line in enumerate(lines):
        for m in FLAG.finditer(line):
            before = " ".join(lines[max(0, i - 1) : i]) + " " + line[: m.start()]  # the program may end the line above
            if m.group(0) not in known and OTHER_PROGRAMS.get(m.group(0), "\0") not in before:
                unknown.append(f"line {i + 1}: {m.group(0)} in {line.strip()!r}")
    assert not unknown, unknown


#: Flags a command's help names that belong to another program or command, on purpose.
HELP_NAMES_OTHERS = {("generate", "--nproc_per_node"), ("train", "--nproc_per_node"),  # torchrun's
                     ("download", "--disable_prompt_encoder")}  # what the runs (gen3c generate) then need  # fmt: skip


def test_each_commands_help_names_only_its_own_flags():
    """The help of a command names only flags it takes (a shared help text must not send a user of
    ``gen3c demo`` to a --camera_file it does not have)."""
    wrong = []
    for words, command in gen3c_commands():
        name = " ".join(words)
        for param, text in [("", command.help or ""), *((p.name, getattr(p, "help", None) or "") for p in command.params)]:
            wrong += [f"gen3c {name} {param}: {f}" for f in FLAG.findall(text) if f not in flags_of(command) and (name, f) not in HELP_NAMES_OTHERS]
    assert not wrong, wrong


def gui_flag_mistakes(readme: str, generate: set[str], gui: set[str]) -> list[str]:
    """README's "GUI" says which flags `gen3c gui` takes (from "It takes" to "not the input's flags") and lists
    the `gen3c generate` flags it does not take (from there to "It listens"): every flag of the
    first part must be the GUI's, and the second part must name exactly generate's flags the GUI
    lacks (a flag added to one command but not the other cannot leave the list stale)."""
    section = readme.split("\n## GUI", 1)[1].split("\n## ", 1)[0]
    takes, rest = section.split("It takes", 1)[1].split("not the input's flags", 1)
    lacks = set(FLAG.findall(rest.split("It listens", 1)[0])) & generate
    return ([f"said to be taken by gen3c gui, which has no {f}" for f in sorted(set(FLAG.findall(takes)) - gui)]
            + [f"said not to be taken by gen3c gui, which takes {f}" for f in sorted(lacks & gui)]
            + [f"gen3c gui lacks {f}, which the list of flags it does not take leaves out" for f in sorted(generate - gui - lacks)])  # fmt: skip


def test_the_readme_lists_the_generate_flags_the_gui_lacks():
    commands = typer.main.get_command(app).commands
    generate, gui = flags_of(commands["generate"]), flags_of(commands["gui"])
    assert not gui_flag_mistakes((ROOT / "README.md").read_text(), generate, gui)
    broken = "\n## GUI\n\n`gen3c gui --host`. It takes `--seed`, `--lora`; not the input's flags (`--fov`, `--seed`). It listens\n## Batch\n"
    assert gui_flag_mistakes(broken, {"--fov", "--seed", "--lora", "--depth_path"}, {"--host", "--seed"}) == [
        "said to be taken by gen3c gui, which has no --lora",
        "said not to be taken by gen3c gui, which takes --seed",
        "gen3c gui lacks --depth_path, which the list of flags it does not take leaves out",
        "gen3c gui lacks --lora, which the list of flags it does not take leaves out",
    ]  # fmt: skip


def inline_code(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S).replace("\n", " "))


def option_choices(flag: str) -> set[str] | None:
    """The values a flag takes, where the command line or the library lists them (None: any)."""
    from gen3c.models.memory import MEMORY_MODES
    from gen3c.models.packaged import PACKAGED_MODELS
    from gen3c.pipelines.presets import SPEED_PRESETS
    from gen3c.schedulers import SAMPLERS

    listed = {"--speed": SPEED_PRESETS, "--sampler": SAMPLERS, "--memory_mode": MEMORY_MODES, "--model": PACKAGED_MODELS}
    if flag in listed:
        return set(listed[flag])
    each = [_param_choices(p) for _, c in gen3c_commands() for p in c.params if flag in p.opts]
    if each and all(choices is not None for choices in each):
        return set().union(*each)
    return None


def _param_choices(param) -> set[str] | None:
    """An option's choices: typer ≥ 0.28 describes its annotation (an Enum), older typer hands
    its (vendored or real) click a choice type with ``choices``."""
    import enum

    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {e.value for e in annotation}
    choices = getattr(getattr(param, "type", None), "choices", None)
    if choices is not None:
        return {str(getattr(choice, "value", choice)) for choice in choices}
    return None


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_values_the_docs_give_flags_are_valid(doc):
    """``--flag VALUE`` in the prose's inline code names a value the flag takes (a preset, a
    trajectory, a memory mode, a packaged model …)."""
    wrong = []
    for span in inline_code(doc.read_text()):
        for flag, value in re.findall(r"(?<![\w-])(--[a-z]\w*)[ =]([a-z_0-9]\w*)\b", span):
            choices = option_choices(flag)
            if choices is not None and value not in choices:
                wrong.append(f"`{span}`: {value!r} is not one of {sorted(choices)}")
    assert not wrong, wrong


def cli_defaults(flag: str) -> set[str]:
    """The defaults of ``flag`` over the commands that take it, as text (None left out)."""
    import enum

    values = set()
    for _, command in gen3c_commands():
        for p in command.params:
            if flag in p.opts and p.default is not None:
                d = p.default.value if isinstance(p.default, enum.Enum) else p.default
                values.add(f"{d:g}" if isinstance(d, float) else str(d))
    return values


DEFAULT_STATED = [
    re.compile(r"`(?P<flag>--[a-z]\w*) (?P<value>[\w.]+)` \((?:the )?default\b"),  # `--speed exact` (the default …
    re.compile(r"`(?P<flag>--[a-z]\w*)`(?:,| \() ?default:? `?(?P<value>[\w./]+)`?(?! when)"),  # `--work_dir` (default `gen3c_gui/`
]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_defaults_the_docs_state_are_the_cli_defaults(doc):
    """"`--flag VALUE` (default)", "`--flag`, default VALUE" and "`--flag` (default `VALUE`)" say
    what the command line's own default is."""
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S).replace("\n", " ")
    wrong = []
    for pattern in DEFAULT_STATED:
        for m in pattern.finditer(text):
            value = m["value"].rstrip("/")
            value = f"{float(value):g}" if re.fullmatch(r"[\d.]+", value) else value
            defaults = cli_defaults(m["flag"])
            if defaults and value not in defaults:
                wrong.append(f"{m.group(0)!r}: the command line's default is {' or '.join(sorted(defaults))}")
    assert not wrong, wrong


def undocumented_flags(pages: dict[str, str], commands: list[tuple[str, set[str]]], shared: dict[str, str]) -> list[str]:
    """The flags of each command (name, flags) that no page naming ``gen3c NAME`` mentions; a
    command's flags that ``shared`` says it shares with another (gui → generate) count where that
    command's do."""
    def pages_of(name: str) -> list[str]:
        return [t for t in pages.values() if re.search(rf"\bgen3c {re.escape(name)}\b", t)]

    def named(flag: str, texts: list[str]) -> bool:
        return any(re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", t) for t in texts)

    flags = dict(commands)
    missing = []
    for name, own in commands:
        for flag in sorted(f for f in own if f.startswith("--") and f != "--help"):
            other = shared.get(name)
            if not named(flag, pages_of(name)) and not (other and flag in flags[other] and named(flag, pages_of(other))):
                missing.append(f"gen3c {name} {flag}")
    return missing


def test_every_flag_is_documented_where_its_command_is():
    """A user looking up a flag of `gen3c X` finds it on a page about `gen3c X`: a flag added to a
    command lands in the docs with it. `gen3c gui` takes generate's generator flags, which the
    README sends to `gen3c gui --help` (a flag of both counts where generate's are)."""
    pages = {d.name: d.read_text() for d in DOCS}
    commands = [(" ".join(words), flags_of(c)) for words, c in gen3c_commands() if words and not getattr(c, "commands", None)]
    assert len(commands) > 10 and not undocumented_flags(pages, commands, {"gui": "generate"})
    example = {"a.md": "`gen3c generate --seed 1`, `gen3c gui --host`", "b.md": "--fps, of `gen3c demo` (--fps)"}
    assert undocumented_flags(example, [("generate", {"--seed", "--fps"}), ("gui", {"--host", "--seed", "--fps", "--port"})], {"gui": "generate"}) == [
        "gen3c generate --fps", "gen3c gui --fps", "gen3c gui --port"
    ]  # fmt: skip


def test_every_extra_is_named_in_the_readme():
    """Each extra of pyproject.toml (but the tests') is named in the README as `gen3c[EXTRA]`, so a
    newcomer learns what to install for a feature before a run names it."""
    import tomllib

    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]) - {"test"}
    readme = (ROOT / "README.md").read_text()
    named = {e for group in re.findall(r"gen3c\[([\w,]+)\]", readme) for e in group.split(",")}
    assert len(extras) > 8 and not sorted(extras - named)


def test_a_documented_flag_drift_is_caught():
    """The checks above can fail: a flag no command has, a value a flag does not take, a wrong default."""
    known = set().union(*(flags_of(c) for _, c in gen3c_commands()))
    assert "--num_video_frame" not in known and "--speed" in known
    assert "fastest" in option_choices("--speed") and "faster" not in option_choices("--speed")
    assert "left" in option_choices("--trajectory") and "sideways" not in option_choices("--trajectory")
    assert option_choices("--fps") is None
    m = DEFAULT_STATED[0].search("the `--resize_mode stretch` (default) resize")
    assert m["value"] == "stretch" and cli_defaults("--resize_mode") == {"crop"}
    m = DEFAULT_STATED[1].search("(× `--png_depth_scale`, default 0.001)")
    assert m["value"] == "0.001" and cli_defaults("--png_depth_scale") == {"0.001"}


def test_readme_test_command_is_what_ci_runs():
    """The README's second set-up command (tests) is .ci/run's last line, word for word."""
    (setup,) = [b for b in code_blocks((ROOT / "README.md").read_text(), "bash") if "pytest" in b]
    demo, tests = [line for line in setup.splitlines() if line and not line.startswith("#")]
    assert demo.endswith("&& gen3c demo") and "pip install" in demo
    assert (ROOT / ".ci" / "run").read_text().rstrip().splitlines()[-1] == tests


def test_every_benchmark_table_names_its_device_and_date():
    """In docs/benchmarks.md the paragraph right above each table (its command left aside) names
    the machine (H100, H200, the 2-core CPU …) and the day of the measurement."""
    blocks = re.split(r"\n\s*\n", re.sub(r"```.*?```", "", (ROOT / "docs" / "benchmarks.md").read_text(), flags=re.S))
    unlabelled, lead, tables = [], "", 0
    for block in blocks:
        if block.lstrip().startswith("|"):
            tables += 1
            if not (re.search(r"\b20\d\d-\d\d-\d\d\b", lead) and re.search(r"H100|H200|2-core|2 cores|CPU", lead)):
                unlabelled.append(block.strip().splitlines()[0])
            lead = ""
        else:
            lead = block
    assert tables > 15 and not unlabelled, unlabelled


# -- every Python block of the docs runs (shrunk), or says why it cannot here ----------------------

#: Each Python block of README/docs, by a line of it: the test that runs it, or why none can here.
PYTHON_BLOCKS = {
    ("README.md", 'gen3c.generate("photo.png", depth="photo_depth.npy", fov=60, model="tiny"'): "test_readme_python_api_runs",
    ("README.md", "prepare_source(image, depth, K"): "test_readme_step_by_step_python_runs",
    ("cameras.md", "KeyframePath("): "test_the_keyframe_example_runs",
    ("inputs.md", "read_vipe("): "test_inputs_vipe_python_runs",
    ("depth.md", "load_depth_estimator("): "test_depth_python_runs",
    ("batch.md", "print(summary.counts)"): "test_batch_python_runs",
    ("eval.md", "run_benchmark("): "test_eval_python_runs",
    ("gen3c_model.md", 'memory_mode="group_offload")   # as `gen3c generate`'): None,  # GEN3C-7B's weights, from the hub
    ("gen3c_model.md", "load_generator("): "test_gen3c_model_python_runs",
    ("gen3c_model.md", "callback_on_step_end=stop_early"): "test_gen3c_model_python_runs",
    ("multi_gpu.md", "num_gpus=N"): None,  # under torchrun on GPUs; tests/test_context_parallel.py runs 2 CPU ranks
    ("python.md", 'for path in ("left", "zoom_in", "clockwise")'): "test_python_one_call_per_video_runs",
    ("python.md", "prepare_source(image, depth, K"): "test_python_arrays_in_arrays_out_runs",
    ("python.md", 'gen3c.generate(image, depth=np.load'): "test_python_image_in_memory_runs",
}


def test_every_python_block_is_run_or_excused():
    """A Python block added to the docs gets a test here (or a reason it cannot run on a CPU)."""
    blocks = [(doc.name, block) for doc in DOCS for block in code_blocks(doc.read_text(), "python")]
    for name, block in blocks:
        keys = [k for k in PYTHON_BLOCKS if k[0] == name and k[1] in block]
        assert len(keys) == 1, f"{name}: a Python block with no entry in PYTHON_BLOCKS:\n{block[:300]}"
    assert len(blocks) == len(PYTHON_BLOCKS)
    assert all(test is None or test in globals() for test in PYTHON_BLOCKS.values())


def python_block(doc: str, line: str) -> str:
    (block,) = [b for b in code_blocks((ROOT / doc).read_text() if doc == "README.md" else (ROOT / "docs" / doc).read_text(), "python") if line in b]
    return block


def write_photo(folder: Path) -> None:
    """photo.png and photo_depth.npy as the README names them: the shipped demo sample."""
    import shutil

    import numpy as np

    assets = ROOT / "src" / "gen3c" / "assets"
    shutil.copy(assets / "demo_image.png", folder / "photo.png")
    np.save(folder / "photo_depth.npy", np.load(assets / "demo_depth.npz")["depth"].astype(np.float32))


@pytest.mark.slow
def test_readme_python_api_runs(tmp_path, monkeypatch):
    """README, "Python": ``gen3c.generate`` with the shipped small model and the diffusers pipeline
    (the lines that fetch GEN3C-7B's weights left out, the pipeline loaded from the small model)."""
    code = python_block("README.md", 'model="tiny"')
    write_photo(tmp_path)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(shrunk(code, {
        'out = gen3c.generate("photo.png", trajectory="left", movement_distance=0.3)': "pass",
        'gen3c.generate("photo.png", depth="photo_depth.npy", fov=60, low_memory=True, prompt="a quiet street")': "pass",
        'from_pretrained("nvidia/Gen3C-Cosmos-7B"': 'from_pretrained("tiny"',
    }), ns)  # fmt: skip
    assert ns["out"].paths["video"] == Path("outputs/photo.mp4") and (tmp_path / "outputs" / "photo.mp4").is_file()
    assert tuple(ns["out"].result.frames.shape) == (17, 3, 64, 112)  # the small model's chunk
    assert ns["pipe"].transformer.dtype == ns["torch"].bfloat16


def test_depth_python_runs():
    """docs/depth.md, "Python": with the weight-free prior instead of MoGe."""
    from gen3c.io.images import load_image

    image = (load_image(ROOT / "src" / "gen3c" / "assets" / "demo_image.png") + 1) / 2
    ns = {"image": image}
    exec(shrunk(python_block("depth.md", "load_depth_estimator("), {'"moge"': '"prior"'}), ns)
    est = ns["est"]
    assert tuple(est.depth.shape) == (704, 1280) and tuple(est.intrinsics.shape) == (3, 3) and est.kind == "relative"


@pytest.mark.slow
def test_batch_python_runs(tmp_path, monkeypatch, capsys):
    """docs/batch.md, "Python": the shipped example manifest as jobs.jsonl, one worker, run as a
    script runs it (the spawned workers are tests/test_batch.py's). The block is guarded, as a
    script with workers needs (before, its first form stopped a script at once), and the counts
    its comment shows have the keys ``summary.counts`` has."""
    import ast

    examples = ROOT / "docs" / "examples"
    manifest = (examples / "batch_manifest.jsonl").read_text().replace("../../src/gen3c/assets/", f"{ROOT}/src/gen3c/assets/")
    (tmp_path / "jobs.jsonl").write_text(manifest)
    (tmp_path / "batch_diagonal_cameras.json").write_text((examples / "batch_diagonal_cameras.json").read_text())
    monkeypatch.chdir(tmp_path)
    code = python_block("batch.md", "print(summary.counts)")
    assert 'if __name__ == "__main__":' in code.split("run_batch(", 1)[0]  # the guard comes before the call
    ns: dict = {"__name__": "__main__"}
    exec(shrunk(code, {"workers=2": "workers=1"}), ns)
    assert ns["summary"].counts["done"] == 4 and not ns["summary"].failed
    assert "'done': 4" in capsys.readouterr().out and (tmp_path / "outputs" / "jobs" / "batch_summary.csv").is_file()
    (shown,) = re.findall(r"print\(summary\.counts\)\s*# (\{.*\})", code)
    assert list(ast.literal_eval(shown)) == list(ns["summary"].counts)


@pytest.mark.slow
def test_eval_python_runs(tmp_path, monkeypatch):
    """docs/eval.md, "Python": a generator of one's own beside two rows, at 64×112 and 9 frames."""
    pytest.importorskip("matplotlib")
    from gen3c.pipelines.preview import PreviewGenerator

    my_generator = PreviewGenerator()
    my_generator.name = "my_generator"  # a row of its own, beside the preview's
    monkeypatch.chdir(tmp_path)
    ns = {"my_generator": my_generator}
    code = shrunk(python_block("eval.md", "run_benchmark("), {'presets=("left", "clockwise"))': 'presets=("left", "clockwise"), resolution=(64, 112), num_frames=9)'})
    exec(code, ns)
    assert set(ns["summarize"](ns["result"])) >= {"still", "preview", "my_generator"}
    assert (tmp_path / "my_eval" / "report.md").is_file() and (tmp_path / "my_eval" / "results.json").is_file()


@pytest.mark.slow
def test_gen3c_model_python_runs(tmp_path, monkeypatch):
    """docs/gen3c_model.md, "The parts" and "diffusers' call arguments": with the shipped small
    model for GEN3C-7B and the CPU for CUDA, on the demo sample's cache at 64×112, 17 frames."""
    import torch

    from gen3c.pipelines.camera_video import build_cache, prepare_source, preset_cameras
    from gen3c.scenes import load_demo_sample

    source = prepare_source(*load_demo_sample(), resolution=(64, 112))
    cameras = preset_cameras(source, "left", "center_facing", num_frames=17, movement_distance=0.3)
    cache = build_cache([source])
    buffers = cache.render(cameras)
    ns = {"torch": torch, "cache": cache, "cameras": cameras, "first_frame": source.image, "image": source.image,
          "buffer_colors": buffers.colors, "buffer_masks": buffers.masks}  # fmt: skip
    monkeypatch.chdir(tmp_path)
    parts = python_block("gen3c_model.md", "load_generator(")
    exec(shrunk(parts, {'"gen3c-7b/"': '"tiny"', 'load_pipeline("tiny")': 'load_pipeline("tiny", dtype=torch.float32)', '"cuda")': '"cpu")'}), ns)
    assert tuple(ns["frames"].shape) == (17, 3, 64, 112) and tuple(ns["out"].frames.shape) == (17, 3, 64, 112)
    exec(shrunk(python_block("gen3c_model.md", "callback_on_step_end=stop_early"), {'torch.Generator("cuda")': 'torch.Generator("cpu")'}), ns)
    assert ns["out"].frames.shape == (1, 17, 64, 112, 3) and (tmp_path / "video.mp4").is_file()


# -- the prose: cross-references, numbers quoted from docs/benchmarks.md, GUI labels, names -------


def test_every_doc_is_listed_in_the_readme():
    """README's "Documentation" list names every page of docs/, and only those."""
    listing = (ROOT / "README.md").read_text().split("## Documentation", 1)[1]
    listed = set(re.findall(r"^- `docs/(\w+\.md)`", listing, re.M))
    assert listed == {p.name for p in (ROOT / "docs").glob("*.md")}


def headings_and_leads(text: str) -> list[str]:
    """What a reference to a section of a page can name: its headings and bold lead-ins."""
    return [*re.findall(r"^#+ (.+)$", text, re.M), *re.findall(r"\*\*([^*\n]+)\*\*", text)]


def broken_references(doc_name: str, text: str, pages: dict[str, str]) -> list[str]:
    """The cross-references of ``text`` that name nothing: a relative link whose file is missing,
    `docs/X.md` ("Section") or `docs/X.md`, "Section" whose page has no such heading, and
    "Section" above / below, or see "Section", within the page itself."""
    broken = []
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" not in target and not (ROOT / "docs" / target if doc_name != "README.md" else ROOT / target).exists():
            broken.append(f"link {target}")
    named = [(page, section) for page, section in re.findall(r"(?:docs/)?(\w+\.md)`?,?\s*\(?\"([^\"\n]+)\"", text)]
    named += [(doc_name, s) for s in re.findall(r"\"([^\"\n]+)\" (?:above|below)|[Ss]ee \"([^\"\n]+)\"", text) for s in s if s]
    for page, section in named:
        if page not in pages:
            broken.append(f"{page} (no such page)")
        elif not any(h.startswith(section) for h in headings_and_leads(pages[page])):
            broken.append(f'{page}, "{section}"')
    return broken


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_cross_references_resolve(doc):
    """A link or a "see docs/X.md, "Section"" names a file, page and section that exist."""
    pages = {p.name: p.read_text() for p in DOCS}
    assert not broken_references(doc.name, doc.read_text(), pages)


def test_a_broken_cross_reference_is_caught():
    pages = {"a.md": "# A\n\n## Speed presets: one video\n\n- **End to end** …", "b.md": ""}
    text = 'see docs/a.md, "Speed presets" and (`docs/a.md` ("Speed modes"); "End to end" above, see "Nothing"; [x](missing.md)'
    assert broken_references("a.md", text, pages) == ["link missing.md", 'a.md, "Speed modes"', 'a.md, "Nothing"']


def command_help_texts() -> str:
    return "\n".join(sorted({t for _, c in gen3c_commands() for t in (c.help or "", *(getattr(p, "help", None) or "" for p in c.params))}))


#: A measured quantity as the text quotes it: a number with a decimal point, or of 100 and more
#: (smaller whole numbers would match some number of docs/benchmarks.md by chance), and its unit;
#: "~", "≈" and ranges are estimates, not quotes.
QUOTED_NUMBER = re.compile(r"(?<![\w.,~≈–+×/-])(\d+\.\d+|[1-9]\d{2,}) ?(dB|s|ms|GB)(?![\w/])")
#: Pages with measurements of their own (docs/eval.md's and docs/training.md's runs), not quotes.
OWN_MEASUREMENTS = {"benchmarks.md", "eval.md", "training.md"}
#: Numbers with units that are no measurement of docs/benchmarks.md: sizes of files.
NOT_FROM_BENCHMARKS = {("README.md", "14.9 GB")}  # the converted checkpoint's size


def benchmark_numbers() -> list[float]:
    text = (ROOT / "docs" / "benchmarks.md").read_text().replace("**", "")
    return [float(n.replace(",", "")) for n in re.findall(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?", text)]


def unsourced_numbers(text: str, numbers: list[float]) -> list[str]:
    """The quoted numbers of ``text`` that no number of ``numbers`` rounds to (at the quote's digits)."""
    wrong = []
    for m in QUOTED_NUMBER.finditer(text):
        decimals = len(m[1].partition(".")[2])
        if not any(abs(n - float(m[1])) <= 0.5 * 10**-decimals + 1e-9 for n in numbers):
            wrong.append(m[0])
    return wrong


def test_numbers_quoted_from_the_benchmarks_are_in_them():
    """A speed, memory or fidelity figure that --help, the README or a doc page quotes is one that
    docs/benchmarks.md holds (rounded as quoted): a number re-measured there cannot stay behind
    elsewhere, and a number changed elsewhere must come from there."""
    numbers = benchmark_numbers()
    texts = [("--help", command_help_texts())] + [(d.name, d.read_text()) for d in DOCS if d.name not in OWN_MEASUREMENTS]
    wrong = [f"{name}: {q}" for name, text in texts for q in unsourced_numbers(text, numbers) if (name, q) not in NOT_FROM_BENCHMARKS]
    assert not wrong, wrong


def test_an_unsourced_number_is_caught():
    numbers = [49.96, 241.1, 0.9994]
    text = "fast: 36 forwards (132 s); its video 50.0 dB, 51.0 dB; exact 241 s, ~10 s, 15–40 s, 0.9994"
    assert unsourced_numbers(text, numbers) == ["132 s", "51.0 dB"]


def test_the_speed_presets_are_quoted_alike():
    """The seconds, forwards and fidelity of each --speed preset in gen3c_model.md's table are
    what the README and `gen3c generate --help` say."""
    table = (ROOT / "docs" / "gen3c_model.md").read_text()
    readme = (ROOT / "README.md").read_text()
    (speed,) = [p.help for p in subcommand(["generate"]).params if p.name == "speed"]
    presets = {}
    for name, forwards, seconds, fidelity in re.findall(r"^\| `(exact|fast|fastest)`[^|]*\|[^|]*\| (\d+) \| ([\d.]+) \| ([^|]*)\|", table, re.M):
        presets[name] = (forwards, seconds, re.findall(r"([\d.]+) dB", fidelity))
    assert set(presets) == {"exact", "fast", "fastest"}
    for name, (forwards, seconds, decibels) in presets.items():
        assert re.search(rf"`--speed {name}`[^`]*?\b{re.escape(seconds)} s\b", readme), f"README: --speed {name} {seconds} s"
        (said,) = re.findall(rf"\b{name}: (.*?)(?=\b(?:exact|fast|fastest): |$)", speed, re.S)
        assert f"{forwards} " in said and f"{seconds} s" in said, f"--speed help, {name}: {said}"
        assert all(f"{float(db):.1f} dB" in said for db in decibels), f"--speed help, {name}: {said} (the table: {decibels})"


#: `gen3c generate`'s settings that trade fidelity for speed or memory (exact ones, such as
#: --guidance_batch and --compile, are not among them).
APPROXIMATE_SETTINGS = (
    "speed", "num_steps", "sampler", "guidance_every", "step_cache", "attention_backend", "fp8_matmul", "fp8", "low_memory", "model"
)


def test_each_approximation_states_its_cost_in_generate_help():
    """Each approximation's --help says what it costs, in dB against the exact video (--num_steps and
    --model tiny_fast said nothing of the fidelity fewer steps give up)."""
    helps = {p.name: p.help for p in subcommand(["generate"]).params}
    silent = [name for name in APPROXIMATE_SETTINGS if not re.search(r"\d dB", helps[name])]
    assert not silent, silent


def gui_labels() -> set[str]:
    """Every string the GUI's source holds (its buttons', fields' and tabs' labels among them)."""
    import ast

    return {
        node.value
        for path in (ROOT / "src" / "gen3c" / "gui").glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def quoted_gui_labels(text: str) -> list[str]:
    """The "Labels" (capitalised, up to 30 characters) that a paragraph or table row about the GUI
    (naming it, or under a heading that does) quotes."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    quoted, gui_section = [], False
    for paragraph in re.split(r"\n\s*\n|\n(?=\|)", text):
        paragraph = paragraph.replace("\n", " ")
        if paragraph.startswith("#"):
            gui_section = bool(re.search(r"\bGUI\b", paragraph))
        if gui_section or re.search(r"\bGUI\b|gen3c gui", paragraph):
            quoted += re.findall(r"\"([A-Z][\w()° ]{1,29})\"", paragraph)
    return quoted


#: Labels of other programs the docs quote beside the GUI's.
OTHER_PROGRAMS_LABELS = {"Load Path"}  # nerfstudio's viewer


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_gui_labels_the_docs_name_are_the_guis(doc):
    """A button or field the docs name in quotes ("Load demo sample", "Image path") is one the
    GUI shows: a label renamed in src/gen3c/gui cannot stay in the docs."""
    labels = gui_labels()
    assert not [q for q in quoted_gui_labels(doc.read_text()) if q not in labels and q not in OTHER_PROGRAMS_LABELS]


def test_a_renamed_gui_label_is_caught():
    text = ('The GUI\'s "Load demo sample" button and its "Image path"\nfield; "Generate video" (the GUI).\n\nNot about it: "Load Path".'
            '\n\n## GUI\n\nA browser app with a "Stop" button.\n\n## Batch\n\n"Other"')
    assert quoted_gui_labels(text) == ["Load demo sample", "Image path", "Generate video", "Stop"]
    assert "Load demo sample" in gui_labels() and "Generate video" not in gui_labels()


def test_the_names_the_docs_give_resolve():
    """Every `gen3c.module.name` in the docs' inline code imports (a renamed function, class or
    constant cannot stay in the docs)."""
    import importlib

    def resolves(dotted: str) -> bool:
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ModuleNotFoundError:
                continue
            try:
                for attribute in parts[i:]:
                    obj = getattr(obj, attribute)
            except AttributeError:
                return False
            return True
        return False

    names = {(doc.name, n) for doc in DOCS for span in inline_code(doc.read_text()) for n in re.findall(r"(?<![\w./])(gen3c(?:\.\w+)+)", span)}
    assert len(names) > 20
    assert not sorted(f"{doc}: {n}" for doc, n in names if not resolves(n))


def bad_call_arguments(code: str) -> list[str]:
    """The calls of a Python block to gen3c's functions and classes whose arguments the callee does
    not take: a keyword it has no parameter for (for ``gen3c.generate``, no ``gen3c generate``
    setting; for ``load_generator``, no sampling option), or more positional arguments than it has.
    The block's imports run; nothing else does."""
    import ast
    import inspect
    from dataclasses import fields

    from gen3c.pipelines import loading
    from gen3c.pipelines.request import GenerationRequest, generate

    tree = ast.parse(code)
    scope: dict = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            exec(compile(ast.Module([node], []), "<docs>", "exec"), scope)
    # What the callees with **kwargs take through them: gen3c generate's settings, the sampling options.
    extra = {generate: {f.name for f in fields(GenerationRequest)} | set(loading.GENERATOR_OPTIONS),
             loading.load_generator: set(loading._SAMPLING_OPTIONS)}  # fmt: skip
    wrong = []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        try:  # gen3c's own callables only: `gen3c.generate`, `load_generator`, `Cameras`, `pipe.…` left out
            callee = eval(compile(ast.Expression(call.func), "<docs>", "eval"), dict(scope))
        except Exception:
            continue
        if not (getattr(callee, "__module__", "") or "").startswith("gen3c") or any(isinstance(a, ast.Starred) for a in call.args):
            continue
        keywords = [k.arg for k in call.keywords if k.arg is not None]
        try:
            inspect.signature(callee).bind_partial(*call.args, **dict.fromkeys(keywords))
        except TypeError as exc:
            wrong.append(f"{ast.unparse(call)[:80]}: {exc}")
        if callee in extra:
            named = extra[callee] | set(inspect.signature(callee).parameters)
            wrong += [f"{callee.__name__}(…, {k}=…): no such setting" for k in keywords if k not in named]
    return wrong


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_python_blocks_call_gen3c_with_its_arguments(doc):
    """Every call of a Python block to gen3c's functions and classes passes arguments they take —
    also in the blocks, and the lines of blocks, that no test can run here (GEN3C-7B's weights,
    torchrun): a renamed keyword or setting cannot stay in the docs."""
    wrong = [w for block in code_blocks(doc.read_text(), "python") for w in bad_call_arguments(block)]
    assert not wrong, wrong


def test_a_python_block_calling_gen3c_wrongly_is_caught():
    code = """import gen3c
from gen3c.cameras import intrinsics_from_fov
from gen3c.pipelines.camera_video import preset_cameras
from gen3c.pipelines.loading import load_generator
gen3c.generate("photo.png", fov=60, memory_mode="group_offload", low_memroy=True)
K = intrinsics_from_fov(60, 704, 1280, axis="horizontal", degrees=True)
cameras = preset_cameras(source, "left", "center_facing", 121, 0.3, "auto", 24)
gen = load_generator("gen3c-7b/", num_gpu=8)
pipe(image, anything=1)                      # not gen3c's: pipe is no import
"""
    wrong = bad_call_arguments(code)
    assert len(wrong) == 4, wrong
    assert "low_memroy" in wrong[0] and "degrees" in wrong[1] and "too many positional" in wrong[2] and "num_gpu" in wrong[3]


def test_the_progress_line_python_md_quotes_is_one_a_gen3c_run_prints(monkeypatch):
    """docs/python.md's example of the plain progress line is one a GEN3C-7B run writes to a log:
    the "Generating (gen3c)" bar counts the video's frames (121), advancing them over GEN3C's 35
    steps as the generator does. Before, it quoted "12/35 (34%)", a total no gen3c video has."""
    import io

    from rich.console import Console

    import gen3c.progress
    from gen3c.constants import GEN3C_CHUNK_FRAMES
    from gen3c.models.configs import NUM_STEPS

    text = " ".join((ROOT / "docs" / "python.md").read_text().split())
    (quoted,) = re.findall(r'\("(Generating \(gen3c\): [^"]+)"', text)
    done, total, h, m, s = map(int, re.match(r"Generating \(gen3c\): (\d+)/(\d+) \(\d+%\), (\d+):(\d+):(\d+) elapsed", quoted).groups())
    assert total == GEN3C_CHUNK_FRAMES, quoted
    steps = [k for k in range(1, NUM_STEPS) if total * k // NUM_STEPS == done]  # the counts the bar passes through
    assert steps, f"{done}/{total} is no count of the bar after a whole step"
    elapsed, now = 3600 * h + 60 * m + s, [0.0]
    monkeypatch.setattr(gen3c.progress, "_clock", lambda: now[0])
    stream = io.StringIO()
    with gen3c.progress.progress_bars(Console(file=stream, width=80)) as progress:
        advance = progress("Generating (gen3c)", total)
        for step in range(NUM_STEPS):  # as Gen3cGenerator.generate's callback advances it
            now[0] = elapsed * (step + 1) / steps[0]
            advance(total * (step + 1) // NUM_STEPS - total * step // NUM_STEPS)
    assert quoted in stream.getvalue().splitlines(), stream.getvalue()


@pytest.mark.slow
def test_python_one_call_per_video_runs(tmp_path, monkeypatch, capsys):
    """docs/python.md, "One call per video": three paths from one load of the 5-step model, and
    the last run's cameras and frames read back."""
    from gen3c.pipelines.request import GENERATE_POOL

    write_photo(tmp_path)
    monkeypatch.chdir(tmp_path)
    GENERATE_POOL.clear()
    loads = GENERATE_POOL.loads
    ns: dict = {}
    exec(python_block("python.md", 'for path in ("left", "zoom_in", "clockwise")'), ns)
    assert GENERATE_POOL.loads == loads + 1
    assert capsys.readouterr().out.splitlines() == [f"outputs/{p}.mp4 (17, 3, 64, 112)" for p in ("left", "zoom_in", "clockwise")]
    assert len(ns["cameras"]) == 17 and ns["frames"].shape == (17, 64, 112, 3) and ns["fps"] == 24.0
    GENERATE_POOL.clear()


def test_python_arrays_in_arrays_out_runs(tmp_path, monkeypatch):
    """docs/python.md, "Arrays in, arrays out": at 64×112 instead of 352×640."""
    import torch

    write_photo(tmp_path)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(shrunk(python_block("python.md", "prepare_source(image, depth, K"), {"resolution=(352, 640)": "resolution=(64, 112)"}), ns)
    assert ns["frames"].shape == (25, 64, 112, 3) and ns["frames"].dtype.name == "uint8"
    assert ns["buffers"].colors.shape == (25, 1, 3, 64, 112) and torch.equal(ns["buffers"].masks[0, 0, 0] > 0, ns["cache"].views[0].valid[0])  # frame 0: the source camera
    assert torch.allclose(ns["cameras"].w2c[0], torch.eye(4)) and not any(tmp_path.glob("outputs"))


def test_python_image_in_memory_runs(tmp_path, monkeypatch, capsys):
    """docs/python.md, "One call per video", an image and its depth estimate in memory (the
    weight-free prior for MoGe): at 64×112, the frames the command makes estimating the depth."""
    import torch

    import gen3c

    write_photo(tmp_path)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    block = python_block("python.md", "gen3c.generate(image, depth=estimate")
    exec(shrunk(block, {'load_depth_estimator("moge")': 'load_depth_estimator("prior")',
                        "num_video_frames=9,": 'num_video_frames=9, resolution="64x112",'}), ns)  # fmt: skip
    assert capsys.readouterr().out.strip() == "outputs/output.mp4 (9, 3, 64, 112)"
    direct = gen3c.generate("photo.png", depth_estimator="prior", generator="preview", num_video_frames=9, resolution="64x112",
                            progress=False, video_save_name="direct")  # fmt: skip
    assert torch.equal(ns["out"].result.frames, direct.result.frames)
    assert torch.equal(ns["out"].result.cameras.w2c, direct.result.cameras.w2c)
