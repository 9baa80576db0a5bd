"""`gen3c eval` end to end at a tiny size: report files, table contents, errors, the gen3c generator."""

from __future__ import annotations

import json
import sys

import pytest
from PIL import Image
from typer.testing import CliRunner

from gen3c.cli import app
from gen3c.evaluation.suite import METHOD_NAMES

runner = CliRunner()
TINY = ("eval", "--scenes", "room,street", "--presets", "left,zoom_out", "--resolution", "48x80", "--num_video_frames", "5")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_eval_writes_the_report(tmp_path):
    res = invoke(*TINY, "--output_folder", tmp_path, "--no_plots", "--contact_frames", 3)
    assert res.exit_code == 0, res.output
    # The terminal table has one row per method plus the ground-truth reference.
    for name in ("ground_truth", *METHOD_NAMES):
        assert f"│{name} " in res.output
    results = json.loads((tmp_path / "results.json").read_text())
    cases = {(c["scene"], c["preset"]): c for c in results["cases"]}
    # Held-out seeds: scene-major grid, 8 presets per scene (left = 0, zoom_out = 5; street is scene 2).
    assert {k: c["seed"] for k, c in cases.items()} == {
        ("room", "left"): 1000, ("room", "zoom_out"): 1005, ("street", "left"): 1016, ("street", "zoom_out"): 1021
    }  # fmt: skip
    for case in cases.values():
        assert set(case["scores"]) == {"ground_truth", *METHOD_NAMES}
        scores = case["scores"]
        assert len(scores["preview"]["psnr_per_frame"]) == 4
        # The cache reproduces what the source saw far better than a still image, and fills
        # nothing: the preview's hole filling beats it on disoccluded pixels.
        assert scores["cache"]["psnr_seen"] > scores["still"]["psnr_seen"] + 3
        assert scores["preview"]["psnr_disoccluded"] > scores["cache"]["psnr_disoccluded"]
        assert 0 < case["disoccluded_share"] < 1
    report = (tmp_path / "report.md").read_text()
    assert "## Summary (mean over cases)" in report and "room-left 1000" in report
    assert report.count("\n| `") >= 3 * len(METHOD_NAMES)  # summary, per-scene and per-preset rows
    assert "## Plots" not in report
    sheets = sorted((tmp_path / "contact_sheets").iterdir())
    assert [p.name for p in sheets] == ["room-left.png", "room-zoom_out.png", "street-left.png", "street-zoom_out.png"]
    with Image.open(sheets[0]) as sheet:
        # Rows: ground truth, mask, 7 methods; columns: 3 frames of 80 px after the label column.
        assert sheet.size[1] >= 9 * 48 and sheet.size[0] >= 3 * 80


def test_eval_plots(tmp_path):
    pytest.importorskip("matplotlib")
    res = invoke("eval", "--scenes", "objects", "--presets", "up", "--resolution", "48x80", "--num_video_frames", "4",
                 "--methods", "still,preview", "--output_folder", tmp_path)  # fmt: skip
    assert res.exit_code == 0, res.output
    for name in ("image_quality.png", "consistency.png", "psnr_per_preset.png", "psnr_over_time.png"):
        with Image.open(tmp_path / name) as img:
            assert img.format == "PNG" and img.size[0] > 300
        assert f"]({name})" in (tmp_path / "report.md").read_text()


def test_eval_without_matplotlib_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # importing it now raises ImportError
    res = invoke(*TINY, "--output_folder", tmp_path)
    assert res.exit_code == 2
    assert "gen3c[eval]" in res.output and "--no_plots" in res.output
    assert not (tmp_path / "report.md").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--scenes", "kitchen"), "unknown scene 'kitchen'"),
        (("--presets", "sideways"), "unknown trajectory 'sideways'"),
        (("--methods", "magic"), "unknown method 'magic'"),
        (("--num_video_frames", "2"), "at least 3 frames"),
        (("--seed", "3"), "--seed applies to --generator gen3c only"),
        (("--num_steps", "3"), "--num_steps apply to --generator gen3c only"),
        (("--generator", "gen3c"), "HF_HUB_OFFLINE=1 forbids fetching them"),  # no checkpoint: GEN3C's weights would be fetched
    ],
)
def test_eval_user_errors(tmp_path, args, message, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never the real hub from a test
    monkeypatch.setenv("GEN3C_CACHE_DIR", str(tmp_path / "weights"))
    res = invoke("eval", "--output_folder", tmp_path, "--no_plots", *args)
    assert res.exit_code == 2, res.output
    assert message in res.output.replace("\n", " ")


def test_eval_runs_the_gen3c_generator(tmp_path, monkeypatch):
    pytest.importorskip("diffusers")
    from gen3c.models.tiny import tiny_pipeline
    from gen3c.pipelines import loading as loading_module

    ckpt = tmp_path / "ckpt"
    tiny_pipeline(seed=0).save_pretrained(ckpt)
    real = loading_module.generator_from_options
    seen = {}

    def tiny(options, seed=1, resolution=None):
        seen.update(options, seed=seed, resolution=resolution)
        return real({**options, "chunk_frames": 9, "device": "cpu", "dtype": "float32"}, seed, resolution)

    monkeypatch.setattr(loading_module, "generator_from_options", tiny)
    out = tmp_path / "report"
    res = invoke("eval", "--generator", "gen3c", "--checkpoint_dir", ckpt, "--num_steps", 2, "--guidance", 0, "--seed", 4,
                 "--scenes", "corridor", "--presets", "right", "--resolution", "32x48", "--methods", "still",
                 "--output_folder", out, "--no_plots")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert seen["num_steps"] == 2 and seen["seed"] == 4 and seen["resolution"] == (32, 48)
    case = json.loads((out / "results.json").read_text())["cases"][0]
    # Without --num_video_frames the benchmark takes the generator's chunk (here 9 frames).
    assert set(case["scores"]) == {"ground_truth", "still", "gen3c"}
    assert len(case["scores"]["gen3c"]["psnr_per_frame"]) == 8
    assert "`gen3c`" in (out / "report.md").read_text()
