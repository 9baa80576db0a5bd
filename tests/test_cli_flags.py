"""No flag silently does nothing: a gen3c generator setting that a combination leaves without an
effect is refused in one line before any input is read or model loaded, and the help shows flags
without a value placeholder."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from gen3c.cli import app
from gen3c.errors import Gen3cInputError
from gen3c.pipelines.loading import check_generator_options, check_memory_settings

runner = CliRunner()


def invoke(*args, **env):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200", **env})


def one_line(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def generate_gen3c(tmp_path, *extra):
    # The input does not exist: a setting refused before the input is read never gets to say so.
    return invoke("generate", "--input_image_path", tmp_path / "missing.png", "--video_save_folder", tmp_path / "out",
                  "--generator", "gen3c", *extra, GEN3C_CACHE_DIR=str(tmp_path / "weights"), HF_HUB_OFFLINE="1")  # fmt: skip


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--memory_mode", "group_offload", "--offload_tokenizer"),
         "--offload_tokenizer would change nothing: --memory_mode group_offload already keeps every model in CPU memory outside its stage; drop it"),
        (("--memory_mode", "model_offload", "--offload_diffusion_transformer", "--offload_text_encoder_model"),
         "--offload_diffusion_transformer and --offload_text_encoder_model would change nothing: --memory_mode model_offload"),
        (("--low_memory", "--offload_diffusion_transformer"),
         "--offload_diffusion_transformer would change nothing: --low_memory already keeps every model in CPU memory"),
        (("--max_gpu_memory", "8", "--offload_tokenizer"),
         "--offload_tokenizer would change nothing: --max_gpu_memory chooses what stays in CPU memory; drop it"),
        (("--disable_prompt_encoder", "--prompt", "a red car"),
         "--prompt would change nothing: --disable_prompt_encoder gives zero text embeddings for every text"),
        (("--disable_prompt_encoder", "--negative_prompt", "blurry"), "--negative_prompt would change nothing: --disable_prompt_encoder"),
        (("--guidance", "0", "--negative_prompt", "blurry"),
         "--negative_prompt shapes guidance's two branches, but --guidance 0 runs without guidance, one branch per step: drop it"),
    ],
)
def test_settings_without_effect_are_refused(tmp_path, extra, message):
    res = generate_gen3c(tmp_path, "--model", "tiny", *extra)
    assert res.exit_code == 2, res.output
    assert message in one_line(res.output)
    assert not (tmp_path / "out").exists()


def test_a_distilled_students_own_guidance_refuses_a_negative_prompt_before_it_loads(tmp_path):
    """tiny_fast samples without guidance (its gen3c_model.json): its negative prompt would be unused."""
    res = generate_gen3c(tmp_path, "--model", "tiny_fast", "--negative_prompt", "blurry")
    assert res.exit_code == 2, res.output
    assert "--negative_prompt shapes guidance's two branches, but this model samples without guidance (a distilled student)" in one_line(res.output)
    # an explicit guidance gives the unconditional branch back its text
    check_generator_options({"model": "tiny_fast", "negative_prompt": "blurry", "guidance": 1.0})


def test_memory_settings_are_refused_before_gen3c_weights_are_fetched(tmp_path):
    """Without a model named the run would fetch GEN3C's weights first (here: refused offline)."""
    res = generate_gen3c(tmp_path, "--memory_mode", "huge")
    assert res.exit_code == 2, res.output
    out = one_line(res.output)
    assert "--memory_mode 'huge' is unknown: pick one of resident, model_offload, group_offload" in out and "HF_HUB_OFFLINE" not in out
    res = generate_gen3c(tmp_path, "--low_memory", "--fp8")
    assert "--low_memory and --fp8 each choose the memory mode: pass only one of them" in one_line(res.output)


def test_a_gpu_budget_that_is_no_positive_number_is_refused_before_weights_are_fetched(tmp_path):
    """--max_gpu_memory 0, -5, nan or inf was refused only once the model had loaded (for GEN3C's
    weights: after fetching them); a batch manifest's, only when its job ran."""
    for bad in ("0", "-5", "nan", "inf"):
        res = generate_gen3c(tmp_path, "--max_gpu_memory", bad)
        out = one_line(res.output)
        assert res.exit_code == 2 and "must be a positive number of GB (e.g. 24)" in out and "HF_HUB_OFFLINE" not in out, out
    for bad in (0.0, -5.0, float("nan")):
        with pytest.raises(Gen3cInputError, match=r"^--max_gpu_memory .* must be a positive number of GB"):
            check_generator_options({"model": "tiny", "max_gpu_memory": bad})
    assert check_generator_options({"model": "tiny", "max_gpu_memory": 0.5})["max_gpu_memory"] == 0.5


def test_a_tokenizer_chunks_refusal_is_worded_as_generate_takes_it(tmp_path):
    """gen3c.generate()'s refusal said "vae_chunk_frames 4" beside "max_gpu_memory=": its flag had no
    "--", so the keyword spelling (vae_chunk_frames=4) never reached it."""
    import gen3c

    for settings, message in (({"vae_chunk_frames": 4, "max_gpu_memory": 24.0}, "vae_chunk_frames=4 would change nothing: max_gpu_memory= chooses"),
                              ({"vae_chunk_frames": -1}, "vae_chunk_frames=-1 must be a whole number ≥ 1 (or 0 for no chunking)")):  # fmt: skip
        with pytest.raises(Gen3cInputError) as caught:
            gen3c.generate(tmp_path / "never_read.png", model="tiny", video_save_folder=tmp_path / "out", **settings)
        assert str(caught.value).startswith(message)
    assert not (tmp_path / "out").exists()


def test_tokenizer_chunks_beside_a_gpu_budget_are_refused():
    """--max_gpu_memory's plan sets the tokenizer's chunks; a vae_chunk_frames beside it was dropped
    without a word."""
    with pytest.raises(Gen3cInputError, match=r"^--vae_chunk_frames 4 would change nothing: --max_gpu_memory chooses the tokenizer's chunks"):
        check_generator_options({"model": "tiny", "vae_chunk_frames": 4, "max_gpu_memory": 24.0})
    with pytest.raises(Gen3cInputError, match=r"^--vae_chunk_frames -1 must be a whole number ≥ 1 \(or 0 for no chunking\)"):
        check_generator_options({"model": "tiny", "vae_chunk_frames": -1})  # not only once the model loads
    for bad in (True, 2.5):  # from load_generator(vae_chunk_frames=…) directly: True chunked by 1, 2.5 failed in the tokenizer
        with pytest.raises(Gen3cInputError, match=rf"^--vae_chunk_frames {bad!r} must be a whole number ≥ 1 \(or 0 for no chunking\)$"):
            check_memory_settings(vae_chunk_frames=bad)
    for options in ({"vae_chunk_frames": 4}, {"vae_chunk_frames": 0}, {"vae_chunk_frames": 4, "low_memory": True}, {"max_gpu_memory": 24.0}):
        check_generator_options({"model": "tiny", **options})  # (--low_memory's plan takes the chunks given)


def test_batch_and_python_settings_are_checked_alike():
    """gen3c batch and gen3c.generate() pass generator_options through the same checker."""
    with pytest.raises(Gen3cInputError, match="--prompt would change nothing: --disable_prompt_encoder"):
        check_generator_options({"model": "tiny", "disable_prompt_encoder": True, "prompt": "a red car"})
    with pytest.raises(Gen3cInputError, match="--offload_tokenizer would change nothing: --memory_mode group_offload"):
        check_generator_options({"model": "tiny", "memory_mode": "group_offload", "offload_tokenizer": True})
    # the combinations where they do change something stay accepted
    for options in ({"offload_tokenizer": True, "fp8": True}, {"memory_mode": "group_offload", "fp8": True},
                    {"disable_prompt_encoder": True, "prompt": ""}, {"guidance": 0.0, "prompt": "a red car"},
                    {"offload_text_encoder_model": True, "prompt": "a red car"}):  # fmt: skip
        check_generator_options({"model": "tiny", **options})


def test_gen3cs_flags_for_parts_gen3c_lacks_are_named_in_a_note(tmp_path):
    res = generate_gen3c(tmp_path, "--model", "tiny", "--disable_guardrail", "--offload_prompt_upsampler")
    out = one_line(res.output)
    assert res.exit_code == 2 and "missing.png" in out  # the run went on to read its input
    assert ("note: --offload_prompt_upsampler, --disable_guardrail: accepted for GEN3C command lines; gen3c has no prompt upsampler "
            "and no guardrail models, so nothing changes") in out  # fmt: skip


def test_a_note_of_the_gen3c_options_is_said_once_per_run():
    """run_request checks the options before the input is read, and they are checked again as the
    model loads (make_generator, generator_from_options): a full `gen3c generate --disable_guardrail`
    said its note twice. A note already said in the run (record_notes) is not said again, and
    recorded once."""
    import warnings

    from gen3c.errors import record_notes
    from gen3c.pipelines.options import check_generator
    from gen3c.pipelines.settings import GenerationRequest

    request = GenerationRequest(generator="gen3c", generator_options={"model": "tiny", "disable_guardrail": True})
    with warnings.catch_warnings(record=True) as said, record_notes() as notes:
        warnings.simplefilter("always")  # (any catch_warnings in between, an image read's, resets "once")
        check_generator(request)
        check_generator_options(request.generator_options)
    lines = [str(w.message) for w in said if "--disable_guardrail: accepted for GEN3C command lines" in str(w.message)]
    assert len(lines) == 1 and notes == lines


#: GEN3C's README: "For GPUs with limited memory, you can fully offload all models by appending the
#: following flags to your command".
GEN3C_FULL_OFFLOAD = ("--offload_diffusion_transformer", "--offload_tokenizer", "--offload_text_encoder_model", "--offload_prompt_upsampler",
                      "--offload_guardrail_models", "--disable_guardrail", "--disable_prompt_encoder")  # fmt: skip


def test_gen3cs_full_offload_flags_are_accepted_with_notes(tmp_path):
    """GEN3C's command line for GPUs with limited memory offloads T5 and disables it at once: the
    offload of a T5 that never loads is said, not refused."""
    res = generate_gen3c(tmp_path, "--model", "tiny", "--guidance", "1", "--foreground_masking", *GEN3C_FULL_OFFLOAD)
    out = one_line(res.output)
    assert res.exit_code == 2 and "input image" in out and "missing.png" in out, out  # the run went on to read its input
    assert "note: --offload_text_encoder_model: accepted for GEN3C command lines; T5 never loads with --disable_prompt_encoder" in out
    assert "would change nothing" not in out


def _commands(group, path=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield path + (name,), command
            yield from _commands(command, path + (name,))
        else:
            yield path + (name,), command


def test_help_shows_flags_without_a_value_placeholder():
    """`--resume`, `--compile --no_compile` and `--help` take no value: their rows show none,
    while options that take one keep theirs (`--seed <int>`)."""
    root = typer.main.get_command(app)
    helps = {(): invoke("--help").output}
    helps.update({path: invoke(*path, "--help").output for path, _ in _commands(root)})
    assert len(helps) >= 12
    for path, text in helps.items():
        assert "<bool>" not in text, f"gen3c {' '.join(path)} --help shows <bool>"
        assert re.search(r"--help\s+Show this message", text), path
    generate = helps[("generate",)]
    assert re.search(r"--compile\s+--no_compile\s+gen3c generator: torch.compile", generate)
    assert re.search(r"--resume\s+Continue an interrupted", generate)
    assert re.search(r"--seed\s+<int>\s+Random seed", generate)


def test_generate_gui_and_eval_take_the_gen3c_flags_alike(tmp_path):
    """The commands that run a generator take the gen3c generator's flags (GEN3C_FLAGS; --num_gpus
    generate's only) as one declaration: the same option names, default and help in each, and a
    path flag among them refused empty in each, as a flag a command declares itself is."""
    from gen3c.cli import GEN3C_FLAGS

    root = typer.main.get_command(app)
    options = {}
    for name in ("generate", "gui", "eval"):
        params = {p.name: p for p in root.commands[name].params}
        flags = [f for f in GEN3C_FLAGS if name == "generate" or f != "num_gpus"]
        assert set(flags) <= set(params), (name, sorted(set(flags) - set(params)))
        options[name] = {f: (params[f].opts, params[f].secondary_opts, params[f].default, params[f].help) for f in flags}
    assert options["gui"] == options["eval"] == {f: o for f, o in options["generate"].items() if f != "num_gpus"}
    for name in ("generate", "gui", "eval"):
        for flag in ("--cache_dir", "--lora"):
            res = invoke(name, flag, "")
            assert res.exit_code == 2 and f"error: {flag} is empty (an unset shell variable?)" in one_line(res.output), (name, res.output)


def test_the_commands_taking_the_shared_flags_are_called_from_python_as_they_declare(capsys):
    """generate, gui and eval called from Python (as a wrapper script or a test may) take their
    arguments as their signature declares them: a misspelt keyword is Python's TypeError (said by
    the command's catch-all, exit code 1), as it was when each command listed the gen3c flags
    itself, not swallowed by ``**generator_flags`` while the command ran on; a flag left out
    reaches the command as its declared default."""
    import inspect

    from gen3c import cli

    for command in (cli.generate, cli.gui, cli.eval_command):
        with pytest.raises(typer.Exit) as stopped:
            command(no_such_flag=1)
        assert stopped.value.exit_code == 1, command
        assert "unexpected keyword argument 'no_such_flag'" in capsys.readouterr().err, command
        assert "generator_flags" not in inspect.signature(command).parameters
    seen = {}

    def options(generator, params):
        seen.update(params)
        raise Gen3cInputError("stop here")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli, "_generator_options", options)
        with pytest.raises(typer.Exit):
            cli.eval_command()
    assert seen["memory_mode"] == "resident" and seen["fp8"] is False and seen["checkpoint_dir"] is None
