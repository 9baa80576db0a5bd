"""A mistyped setting of `gen3c generate` is refused before diffusers is imported (seconds of
import time spent on nothing), and a run's own settings (gen3c.pipelines.settings) and the gen3c
generator's options (gen3c.pipelines.options) before torch is: the refusals run in a fresh
interpreter, which then reports whether each was imported."""

from __future__ import annotations

import json
import subprocess
import sys

from child_env import child_env

#: Refused before torch is imported (check_unused_settings, check_request, check_generator): (flags, message).
#: They run first: once a refusal has imported torch, it stays imported.
TORCH_FREE = (
    (["--fps", "0"], "--fps 0.0 is impossible: pass a frame rate in [1, 240]"),
    (["--num_video_frames", "0"], "--num_video_frames 0 is impossible"),
    (["--movement_distance", "nan"], "--movement_distance nan is impossible"),
    (["--video_save_name", "a/b"], "--video_save_name 'a/b' must be a plain file name"),
    (["--input_image_path", "missing.png", "--png_depth_scale", "2"], "--png_depth_scale applies to a 16-bit PNG or TIFF --depth_path only"),
    (["--speed", "fastst"], "--speed 'fastst' is unknown: use one of exact, fast, fastest"),
    (["--sampler", "eulr"], "--sampler 'eulr' is unknown"),
    (["--memory_mode", "resdent"], "--memory_mode 'resdent' is unknown"),
    (["--step_cache", "fbx"], "--step_cache"),
    (["--num_steps", "0"], "--num_steps 0 must be a whole number ≥ 1"),
    (["--low_memory", "--fp8"], "--low_memory and --fp8 each choose the memory mode"),
    (["--disable_prompt_encoder", "--prompt", "a cat"], "--prompt would change nothing"),
    (["--model", "tiny", "--checkpoint_dir", "x"], "--model tiny and --checkpoint_dir both name a model"),
    # a packaged model's frame size is checked first (gen3c.io.resolution parses it)
    (["--model", "tiny", "--resolution", "72x112"], "--resolution '72x112': this model takes heights and widths that are multiples of 16"),
    (["--model", "tiny", "--num_gpus", "2"], "--num_gpus 2: the shipped tiny model (its 17-frame chunks have 3 latent frames) cannot be split"),
    # the estimator's name (gen3c.depth.names), not when it loads after the model's modules
    (["--input_image_path", "missing.png", "--depth_estimator", "mogee"], "--depth_estimator 'mogee' is unknown (did you mean 'moge'?)"),
)
#: Refused before torch is imported by `gen3c depth` (flags after the command, a part of the one-line message).
DEPTH_TORCH_FREE = ((["missing.png", "--depth_estimator", "mogee"], "--depth_estimator 'mogee' is unknown (did you mean 'moge'?)"),)
#: (flags after `gen3c generate --generator gen3c`, a part of the one-line message).
REFUSALS = TORCH_FREE

SCRIPT = """
import json, sys
from typer.testing import CliRunner
from gen3c.cli import app
out = []
for argv in json.loads(sys.argv[1]):
    result = CliRunner().invoke(app, argv)
    out.append([result.exit_code, result.output, "diffusers" in sys.modules, "torch" in sys.modules])
print(json.dumps(out))
"""


def test_setting_mistakes_are_refused_before_diffusers_or_torch_is_imported(tmp_path):
    out = str(tmp_path / "out")
    argvs = [["generate", "--generator", "gen3c", "--video_save_folder", out, *f] for f, _ in REFUSALS]
    argvs += [["depth", *f, "--output_folder", out] for f, _ in DEPTH_TORCH_FREE]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(argvs)], capture_output=True, text=True, cwd=tmp_path,
        env=child_env(), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for (flag, message), (code, output, diffusers, torch) in zip((*REFUSALS, *DEPTH_TORCH_FREE), json.loads(proc.stdout.splitlines()[-1]), strict=True):
        assert code == 2, (flag, output)
        assert message in output and output.strip().startswith("error:") and len(output.strip().splitlines()) == 1, (flag, output)
        assert not diffusers, f"{flag}: diffusers was imported before the refusal"
        assert not (torch and (flag, message) in (*TORCH_FREE, *DEPTH_TORCH_FREE)), f"{flag}: torch was imported before the refusal"
    assert not (tmp_path / "out").exists()


def test_a_dtype_name_is_told_without_importing_torch():
    """configs.dtype_name checks --dtype's text (check_generator_options) without torch; a torch
    dtype is taken too (tests/test_python_api.py), once torch is imported."""
    script = (
        "import sys\nfrom gen3c.models.configs import dtype_name\n"
        "print([dtype_name(n) for n in ('bf16', 'torch.float16', 'float64', 3)], 'torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=child_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["['bfloat16',", "'float16',", "None,", "None]", "False"]
