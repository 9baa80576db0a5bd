"""Third-party console output kept out of gen3c's: diffusers' and transformers' raw tqdm bars
("Loading pipeline components...: 100%|…| 4/4 [00:00<00:00, 103.03it/s]") do not print beside
gen3c's rich bars, and the user's own settings of those libraries hold after gen3c's calls."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from child_env import child_env

import gen3c

ASSETS = Path(gen3c.__file__).parent / "assets"
RAW_BAR = ("Loading pipeline components", "it/s]", "Loading weights", "Loading checkpoint shards")

diffusers_logging = pytest.importorskip("diffusers.utils.logging")
transformers_logging = pytest.importorskip("transformers.utils.logging")


def settings() -> tuple:
    return tuple((m.get_verbosity(), m.is_progress_bar_enabled()) for m in (diffusers_logging, transformers_logging))


@pytest.fixture
def user_settings():
    """The user's: both libraries logging INFO with their bars on (not their defaults), put back after."""
    before = settings()
    for library in (diffusers_logging, transformers_logging):
        library.set_verbosity(logging.INFO)
        library.enable_progress_bar()
    yield settings()
    for library, (level, bars) in zip((diffusers_logging, transformers_logging), before, strict=True):
        library.set_verbosity(level)
        (library.enable_progress_bar if bars else library.disable_progress_bar)()


def run_tiny(folder: Path, progress: bool):
    return gen3c.generate(
        ASSETS / "demo_image.png", depth=ASSETS / "demo_depth.npz", fov=60, model="tiny", num_steps=2,
        video_save_folder=folder, progress=progress, keep_loaded=False,
    )  # fmt: skip


@pytest.mark.slow
def test_generate_cli_prints_gen3c_bars_only(tmp_path):
    """Before: diffusers' own tqdm bar (\\r segments in a log) printed before gen3c's; now the
    loading is gen3c's "Loading gen3c model" stage."""
    env = child_env(COLUMNS="120")
    args = ["--generator", "gen3c", "--model", "tiny", "--num_steps", "2", "--input_image_path", ASSETS / "demo_image.png",
            "--depth_path", ASSETS / "demo_depth.npz", "--fov", "60", "--video_save_folder", tmp_path]  # fmt: skip
    res = subprocess.run([sys.executable, "-m", "gen3c", "generate", *map(str, args)], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    output = res.stdout + res.stderr
    assert not [text for text in RAW_BAR if text in output], output
    assert "\r" not in output  # no terminal: rich prints each bar once, tqdm rewrote its line
    assert "Loading gen3c model" in output and "Generating (gen3c)" in output and "wrote" in output


def test_progress_false_prints_nothing_and_keeps_the_users_settings(tmp_path, capfd, user_settings):
    """``progress=False`` is silent on both streams, also with diffusers and transformers set to
    INFO with their bars on; those settings are the user's again after the call."""
    out = run_tiny(tmp_path / "quiet", progress=False)
    assert out.paths["video"].is_file()
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    assert settings() == user_settings


def test_progress_true_shows_no_raw_loading_bar_and_keeps_the_users_settings(tmp_path, capfd, user_settings):
    """``progress=True`` shows no raw bar of diffusers' component loading ("Loading pipeline
    components", before); the user's settings hold after the call."""
    run_tiny(tmp_path / "shown", progress=True)
    err = capfd.readouterr().err
    assert "Loading pipeline components" not in err
    assert settings() == user_settings


def test_progress_true_shows_the_clis_stages_on_stderr_only(tmp_path, capfd, user_settings):
    """``gen3c.generate(progress=True)`` draws the command line's stages (before: no loading or
    rendering bar, and sampling only as diffusers' raw tqdm bar "…| 2/2 [00:00<00:00, 9.1it/s]"),
    on stderr; stdout stays empty."""
    run_tiny(tmp_path / "bars", progress=True)
    captured = capfd.readouterr()
    assert captured.out == ""
    for stage in ("Loading gen3c model", "Rendering 3D cache", "Generating (gen3c)"):
        assert stage in captured.err, captured.err
    assert not [text for text in (*RAW_BAR, "s/it]", "%|") if text in captured.err], captured.err


def test_in_a_notebook_without_ipywidgets_the_bars_are_printed(monkeypatch, capsys):
    """rich's live display in a notebook needs ipywidgets; without it rich warns 'install
    "ipywidgets" for Jupyter support' and draws nothing. gen3c's bars are then printed as text."""
    import warnings

    from gen3c.progress import progress_bars

    monkeypatch.setattr("rich.console._is_jupyter", lambda: True)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # not installed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with progress_bars() as progress:
            progress("Generating (gen3c)", 3)(3)
    captured = capsys.readouterr()
    assert "Generating (gen3c)" in captured.err and "3/3" in captured.err and captured.out == ""


def test_in_a_notebook_with_a_broken_ipywidgets_the_bars_are_printed_with_a_note(monkeypatch, capsys, tmp_path):
    """ipywidgets installed but failing to import (an AttributeError as it is imported): text bars,
    as without it, and a note naming it. Before: the AttributeError's traceback, no run."""
    from gen3c.errors import collect_notes
    from gen3c.progress import progress_bars

    (tmp_path / "ipywidgets").mkdir()
    (tmp_path / "ipywidgets" / "__init__.py").write_text("raise AttributeError(\"module 'traitlets' has no attribute 'fake'\")\n")
    monkeypatch.setattr("rich.console._is_jupyter", lambda: True)
    monkeypatch.delitem(sys.modules, "ipywidgets", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with collect_notes() as notes, progress_bars() as progress:
        progress("Generating (gen3c)", 3)(3)
    captured = capsys.readouterr()
    assert "Generating (gen3c)" in captured.err and "3/3" in captured.err and captured.out == ""
    assert notes == ["progress bars as text: ipywidgets fails to import (AttributeError: module 'traitlets' has no attribute 'fake'): "
                     "pip install --force-reinstall 'ipywidgets'"]  # fmt: skip


def test_the_users_settings_come_back_after_an_error(user_settings):
    from gen3c.library_output import libraries_quiet

    with pytest.raises(KeyError), libraries_quiet():
        assert not diffusers_logging.is_progress_bar_enabled() and transformers_logging.get_verbosity() == logging.ERROR
        raise KeyError("x")
    assert settings() == user_settings


def test_huggingface_hubs_bar_setting_is_the_users_after_gen3cs_calls(user_settings):
    """transformers' progress-bar switch turns huggingface_hub's bars off and on with its own: the
    hub's setting is put back as the user had it. Before: a user who had turned the hub's bars off
    (with transformers' on) had them on again after any gen3c call that loads a model."""
    from huggingface_hub import constants
    from huggingface_hub import utils as hub

    from gen3c.library_output import libraries_quiet

    if constants.HF_HUB_DISABLE_PROGRESS_BARS:
        pytest.skip("HF_HUB_DISABLE_PROGRESS_BARS=1 holds the hub's bars off whatever is set")
    try:
        for user_turned_off in (True, False):
            (hub.disable_progress_bars if user_turned_off else hub.enable_progress_bars)()
            with libraries_quiet():
                assert hub.are_progress_bars_disabled()  # inside: quiet, as transformers' own
            assert hub.are_progress_bars_disabled() is user_turned_off
            with pytest.raises(KeyError), libraries_quiet():
                raise KeyError("x")
            assert hub.are_progress_bars_disabled() is user_turned_off
            assert transformers_logging.is_progress_bar_enabled()  # transformers' own: the user's too
    finally:
        hub.enable_progress_bars()


def test_a_broken_install_is_one_line_naming_it_and_the_users_settings_come_back(user_settings, tmp_path, monkeypatch):
    """transformers installed but failing to import (built for another torch: an AttributeError as
    it is imported). Before: the AttributeError's traceback (only an ImportError was caught)."""
    from importlib import metadata

    from gen3c.dependencies import requirement
    from gen3c.errors import Gen3cDependencyError
    from gen3c.library_output import libraries_quiet

    (tmp_path / "transformers").mkdir()
    (tmp_path / "transformers" / "__init__.py").write_text("raise AttributeError(\"module 'torch' has no attribute 'fake_op'\\nmore\")\n")
    for name in [name for name in sys.modules if name.partition(".")[0] == "transformers"]:
        monkeypatch.delitem(sys.modules, name)  # put back after the test
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(Gen3cDependencyError) as raised, libraries_quiet():
        raise AssertionError("entered")
    assert str(raised.value) == (
        f"turning off the progress bars of transformers needs transformers, whose installed {metadata.version('transformers')} fails to import "
        f"(AttributeError: module 'torch' has no attribute 'fake_op'): pip install --force-reinstall '{requirement('transformers', 'diffusion')}' "
        "(`pip check` names installed versions that do not match)"
    )
    assert settings() == user_settings  # diffusers', quieted first, put back
