"""`gen3c eval` end to end at a tiny size: report files, table contents, errors, the gen3c generator."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from gen3c.cli import app
from gen3c.errors import Gen3cInputError
from gen3c.evaluation.suite import baseline_methods, preview_methods

runner = CliRunner()
METHOD_NAMES = tuple(m.name for m in baseline_methods() + preview_methods())
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
    assert "gen3c eval: 4 cases, mean" in res.output and "4 cases (2 scenes × 2 presets)" in report
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


def test_plots_of_videos_identical_to_the_ground_truth_print_no_library_warnings(tmp_path):
    """A row identical to the ground truth (every PSNR +∞, SSIM 1): its bars say so and its lines
    are named so; no bar, line or scale is made up. Before: matplotlib's "Tight layout not
    applied" (the ∞ marks outside an axis of no bars) and numpy's "Mean of empty slice". (The
    command line made one with --movement_distance 0, refused now: a result stands for it.)"""
    import math
    import warnings

    from rich.console import Console

    from gen3c.evaluation.report import summary_table, write_report

    pytest.importorskip("matplotlib")
    infinite = dict.fromkeys(("psnr", "psnr_seen", "psnr_disoccluded"), math.inf)
    result = one_case_result(**infinite, ssim=1.0, psnr_per_frame=[math.inf] * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paths = write_report(result, tmp_path)
    console = Console(width=200, record=True)
    console.print(summary_table(result))
    assert "│still        │    ∞ │    ∞ │      ∞ │ 1.000 │" in console.export_text()
    for name in ("image_quality.png", "psnr_per_preset.png", "psnr_over_time.png"):
        assert tmp_path / name in paths["plots"]
        with Image.open(tmp_path / name) as img:
            assert img.format == "PNG" and img.size[0] > 300


def test_a_movement_distance_of_0_is_refused_by_eval_and_taken_by_generate(box_scene, tmp_path):
    """gen3c eval --movement_distance 0 ran: every camera stayed at the source view, `still` was
    the ground truth and the camera errors measured no motion, a report of nothing. Refused now,
    in one line, before any case runs. gen3c generate still takes 0 (a video input's own
    cameras, unmoved; an image held still)."""
    res = invoke("eval", "--scenes", "objects", "--presets", "up", "--resolution", "32x48", "--num_video_frames", 3,
                 "--methods", "still", "--movement_distance", 0, "--output_folder", tmp_path / "eval")  # fmt: skip
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (
        "error: --movement_distance 0 keeps every camera at the source view, so the camera-control scores have no motion "
        "to measure: pass a distance other than 0 (the benchmark's default: 0.15)"
    )
    assert not (tmp_path / "eval").exists()
    image, depth, _, _ = box_scene
    res = invoke("generate", "--input_image_path", image, "--depth_path", depth, "--intrinsics", "120,120,80,48", "--resolution", "48x80",
                 "--num_video_frames", 3, "--movement_distance", 0, "--video_save_folder", tmp_path / "video")  # fmt: skip
    assert res.exit_code == 0, res.output


def test_eval_without_psutil_says_how_to_fix(tmp_path, monkeypatch):
    """psutil, which the memory check of each case needs, is one of gen3c's own dependencies: an
    install that lacks it is told to install it (not the diffusion extra), before any case."""
    monkeypatch.setitem(sys.modules, "psutil", None)  # importing it now raises ImportError
    res = invoke(*TINY, "--no_plots", "--output_folder", tmp_path)
    assert res.exit_code == 2, res.output
    assert "checking the free CPU memory needs psutil (psutil is missing): pip install 'psutil" in res.output, res.output
    assert "gen3c[" not in res.output and not (tmp_path / "report.md").exists()


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
        # (no "or pass a camera file": the benchmark takes none)
        (("--presets", "sideways"), "error: unknown preset 'sideways' in --presets: choose from left, right, up, down, zoom_in, zoom_out, clockwise, counterclockwise "),
        (("--methods", "magic"), "unknown method 'magic'"),
        (("--num_video_frames", "2"), "at least 3 frames"),
        (("--seed", "3"), "--seed applies to --generator gen3c only"),
        (("--num_steps", "3"), "--num_steps applies to --generator gen3c only"),
        (("--generator", "gen3c"), "HF_HUB_OFFLINE=1 forbids fetching them"),  # no checkpoint: GEN3C's weights would be fetched
    ],
)
def test_eval_user_errors(tmp_path, args, message, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # never the real hub from a test
    monkeypatch.setenv("GEN3C_CACHE_DIR", str(tmp_path / "weights"))
    res = invoke("eval", "--output_folder", tmp_path, "--no_plots", *args)
    assert res.exit_code == 2, res.output
    assert message in res.output.replace("\n", " ")


def test_a_case_larger_than_the_machine_is_refused_before_anything_is_written(tmp_path):
    """100000 frames at 704×1280 hold terabytes per case: one line, exit 2, no folder (it was
    a MemoryError traceback from the ray caster after the report folder had been made)."""
    out = tmp_path / "report"
    res = invoke("eval", "--full", "--num_video_frames", "100000", "--output_folder", out, "--no_plots")
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: --num_video_frames 100000 at 704x1280 holds at least")
    assert "pass fewer frames or a smaller --resolution" in res.output.replace("\n", " ")
    assert not out.exists()


def test_an_unusable_report_folder_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    """A file where the report folder should be is the error, before GEN3C's weights are looked
    for (it was found only after every model had loaded); a folder made for a failed run goes again."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("GEN3C_CACHE_DIR", str(tmp_path / "weights"))
    blocker = tmp_path / "taken"
    blocker.write_text("")
    res = invoke("eval", "--generator", "gen3c", "--output_folder", blocker, "--no_plots")
    assert res.exit_code == 2 and res.output.startswith("error: --output_folder") and "is a file, not a folder" in res.output
    res = invoke("eval", "--generator", "gen3c", "--output_folder", tmp_path / "new" / "report", "--no_plots")
    assert res.exit_code == 2 and "HF_HUB_OFFLINE=1 forbids fetching them" in res.output.replace("\n", " ")
    assert not (tmp_path / "new").exists()


def test_eval_runs_the_gen3c_generator(tmp_path, monkeypatch):
    pytest.importorskip("diffusers")
    from tiny_model import tiny_pipeline

    from gen3c.pipelines import loading as loading_module

    ckpt = tmp_path / "ckpt"
    tiny_pipeline(seed=0).save_pretrained(ckpt)
    real = loading_module.generator_from_options
    seen = {}

    def tiny(options, seed=1, resolution=None, progress=None):
        seen.update(options, seed=seed, resolution=resolution)
        return real({**options, "chunk_frames": 9, "device": "cpu", "dtype": "float32"}, seed, resolution, progress)

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
    report = (out / "report.md").read_text()
    assert "`gen3c`" in report and "Model loading, before the first video and in neither: `gen3c` " in report
    assert set(json.loads((out / "results.json").read_text())["load_seconds"]) == {"gen3c"}
    # Which model and settings made the row, and which gen3c (before: "the gen3c generator over GEN3C's default
    # cache …, 2 steps × 1 forward", neither its weights nor its seed; the version and code in results.json only).
    line = next(x for x in report.splitlines() if x.startswith("- `gen3c`: "))
    assert f"2 steps × 1 forward, weights `{ckpt}`, seed 4, guidance 0.0, sampler " in line and line.endswith(", float32 on cpu"), line
    made = json.loads((out / "results.json").read_text())["fingerprint"]
    assert f"gen3c {made['gen3c']} (code sha256 {made['gen3c_code'][:12]})." in report


def test_a_repeated_name_counts_once():
    from gen3c.evaluation.run import make_config, parse_list

    assert parse_list("room, street,room", "--scenes") == ["room", "street"]
    config = make_config(scenes="room,room", presets="left,zoom_in,left")
    assert config.scenes == ("room",) and config.presets == ("left", "zoom_in")


def test_bars_for_missing_values_are_not_drawn_as_zero():
    """A score that does not exist (NaN, e.g. `still`'s direction error) gets no bar: a bar of
    height 0 would read as a perfect score. Nor a flat "—" on the axis in the bar's colour,
    which read as a bar of about 0 too: upright words say there is no value."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gen3c.evaluation.report import _bars

    fig, ax = plt.subplots()
    _bars(ax, ["a", "b", "c"], {"rotation": [1.5, 2.0, 0.5], "direction": [3.0, float("nan"), 4.0]}, "degrees", "Camera error")
    heights = sorted(p.get_height() for p in ax.patches)
    assert heights == [0.5, 1.5, 2.0, 3.0, 4.0]
    assert [(t.get_text(), t.get_rotation()) for t in ax.texts] == [("no value", 90.0)]
    plt.close(fig)



def one_case_result(**scores):
    """A benchmark result of one case (room, left) and one method ("still"), every score 0.5 but
    those given, the ground truth's row alike."""
    from gen3c.evaluation.suite import (
        GROUND_TRUTH,
        SCORE_NAMES,
        BenchmarkConfig,
        BenchmarkResult,
        Case,
        CaseResult,
        Method,
    )

    row = dict.fromkeys(SCORE_NAMES, 0.5) | scores
    case = CaseResult(Case("room", "left", 1000), {GROUND_TRUTH: dict(row), "still": dict(row)}, {"still": 0.1})
    return BenchmarkResult(BenchmarkConfig(scenes=("room",), presets=("left",)), [Method("still", "held still", None)], [case])


def test_results_json_tells_an_infinite_score_from_a_missing_one(tmp_path):
    """results.json wrote +∞ (the PSNR of identical videos) and NaN (no disoccluded pixel) both as
    null, so a reader could not tell them apart. ∞ is "Infinity" now, NaN null, the file strict
    JSON, and read_results gives back what was written."""
    import math

    from gen3c.evaluation.report import read_results, results_json, write_report

    def strict(constant):
        raise AssertionError(f"results.json holds {constant}, which is not JSON")

    result = one_case_result(psnr=math.inf, psnr_disoccluded=math.nan, center_error=-math.inf, psnr_per_frame=[math.inf, 30.0])
    path = write_report(result, tmp_path, plots=False)["results"]
    raw = json.loads(path.read_text(), parse_constant=strict)
    still, summary = raw["cases"][0]["scores"]["still"], raw["summary"]["still"]
    assert still["psnr"] == summary["psnr"] == "Infinity" and still["center_error"] == summary["center_error"] == "-Infinity"
    assert still["psnr_disoccluded"] is None and summary["psnr_disoccluded"] is None and summary["seconds"] is None  # one case: no later video
    assert still["psnr_per_frame"] == ["Infinity", 30.0] and still["psnr_seen"] == 0.5
    back = read_results(path)
    assert back["cases"][0]["scores"]["still"]["psnr"] == math.inf and math.isnan(back["summary"]["still"]["psnr_disoccluded"])
    assert json.dumps(back) == json.dumps(results_json(result))  # every value as written, ±∞ and NaN included


def test_the_terminal_table_and_the_report_name_their_units_and_directions():
    """The terminal's "warp" column shows warp_error ×100 and PSNR is in dB: both are said (the
    table showed 5.16 for a warp error of 0.0516 with no word of the scale, report.md never said dB).
    Every score's header in report.md names its unit and its better direction (↑ / ↓: none did, so a
    reader of a published table had to guess that 0.54 rot err is good and 0.54 SSIM is not), and
    results.json, whose values are unscaled, says each one's unit and direction."""
    from rich.console import Console

    from gen3c.evaluation.report import markdown, results_json, summary_table
    from gen3c.evaluation.suite import SCORE_NAMES

    result = one_case_result(psnr=21.25, warp_error=0.0516, psnr_per_frame=[21.25])
    console = Console(width=200, record=True)
    console.print(summary_table(result))
    text = console.export_text()
    assert "mean over cases (PSNR in dB, warp error ×100; PSNR, SSIM ↑ better, the rest ↓)" in " ".join(text.split())
    row = next(line for line in text.splitlines() if line.startswith("│still"))
    assert [c.strip() for c in row.split("│")][2] == "21.25" and "5.16" in row
    report = markdown(result, plots=False, sheets=[])
    assert "**PSNR** (dB)" in report and "↑ higher is better, ↓ lower" in report
    header = report.split("## Summary (mean over cases)")[1].strip().splitlines()[0]
    assert header == ("| method | PSNR dB ↑ | PSNR seen dB ↑ | PSNR disocc. dB ↑ | SSIM ↑ | SSIM seen ↑ | SSIM disocc. ↑ | warp err ×100 ↓ | "
                      "rot err ° ↓ | dir err ° ↓ | centre err % ↓ | pose fail % ↓ | s/video | 1st video s |")
    units = results_json(result)["units"]
    assert units["psnr"] == {"unit": "dB", "better": "higher"} and units["ssim_disoccluded"]["better"] == "higher"
    assert units["warp_error"] == {"unit": "mean absolute colour difference on the [0, 1] scale", "better": "lower"}
    assert units["center_error"]["unit"] == "share of the source view's median depth" and set(SCORE_NAMES) <= set(units)


def test_every_number_of_a_case_in_results_json_has_its_unit():
    """A case's disoccluded_share had no entry in results.json's units (a reader of 0.31 could not
    tell a share from a percentage); it is no score, so neither direction is better."""
    from gen3c.evaluation.report import results_json

    data = results_json(one_case_result())
    case = data["cases"][0]
    numbers = {k for k, v in case.items() if isinstance(v, float)} | {s for row in case["scores"].values() for s in row}
    assert numbers <= set(data["units"]), numbers - set(data["units"])
    assert data["units"]["disoccluded_share"] == {
        "unit": "share of the pixels of frames 1 … T−1 the source view's cache does not see", "better": "neither"}


def test_the_tables_per_scene_and_per_preset_say_what_they_average():
    """"PSNR dB ↑ per scene" did not say that each value is the mean over the presets."""
    from gen3c.evaluation.report import markdown

    headings = [line for line in markdown(one_case_result(), plots=False, sheets=[]).splitlines() if " per " in line and line.startswith("## ")]
    assert headings == ["## PSNR dB ↑ per scene (mean over presets)", "## PSNR dB ↑ per preset (mean over scenes)",
                        "## rot err ° ↓ per preset (mean over scenes)"]  # fmt: skip


def test_the_rotation_table_per_preset_shows_the_share_of_frames_its_means_leave_out():
    """The rotation error per preset is a mean over the frames whose pose was recovered; the table
    showed it alone, so 0.40° over the half of a video that could be tracked read like 0.40° over
    all of it. Each cell now gives the share of failed frames beside it (the mean over the preset's
    cases, which hold the same number of frames), a case that lost every frame included."""
    from gen3c.evaluation.report import markdown
    from gen3c.evaluation.suite import GROUND_TRUTH, Case

    result = one_case_result(rotation_error=1.0, pose_failures=0.25)
    room = result.cases[0]
    street = replace(room, case=Case("street", "left", 1016), scores={k: dict(v, rotation_error=3.0, pose_failures=0.0) for k, v in room.scores.items()})
    lost = replace(room, case=Case("room", "up", 1002), scores={k: dict(v, rotation_error=math.nan, pose_failures=1.0) for k, v in room.scores.items()})
    result.cases = [room, street, lost]
    result.config = replace(result.config, scenes=("room", "street"), presets=("left", "up"))
    table = markdown(result, plots=False, sheets=[]).split("## rot err ° ↓ per preset (mean over scenes)")[1].strip().splitlines()
    assert table[0] == ("Each cell: the mean over the frames whose camera was recovered, and in brackets the share of frames "
                        "1 … T−1 whose pose failed, which that mean leaves out (pose fail %).")  # fmt: skip
    assert table[2:5] == ["| method | left | up |", "|---|---|---|", f"| `{GROUND_TRUTH}` | 2.00 (12.5 % failed) | — (100.0 % failed) |"]
    assert table[5] == "| `still` | 2.00 (12.5 % failed) | — (100.0 % failed) |"
    # The PSNR tables stay as they were: a PSNR leaves out no frame.
    assert "failed" not in markdown(result, plots=False, sheets=[]).split("## PSNR dB ↑ per preset")[1].split("## rot err")[0]


@pytest.mark.parametrize(("error", "interrupted", "case", "says"), [
    ("interrupted (Ctrl-C)", True, "room-left", "the benchmark was interrupted (Ctrl-C) in case room-left. The tables"),
    ("terminated (SIGTERM)", True, None, "the benchmark was terminated (SIGTERM) after its last case, before the report was written. The"),
    ("RuntimeError: out of luck.", False, "room-left", "the benchmark failed in case room-left: RuntimeError: out of luck. The tables"),
])  # fmt: skip
def test_a_partial_reports_heading_says_why_without_nested_brackets(error, interrupted, case, says):
    """It read "stopped in case room-down (interrupted (Ctrl-C))"."""
    from gen3c.evaluation.report import incomplete_markdown
    from gen3c.evaluation.suite import Stopped

    result = one_case_result()
    result.config = replace(result.config, presets=("left", "right"))
    result.stopped = Stopped(case, error, interrupted)
    assert incomplete_markdown(result)[0].startswith(f"**Incomplete**: {says}")


def test_the_bar_plots_legends_cover_no_bar():
    """With 2 or 3 series the legend sat inside the axes, where matplotlib found the least
    crowded place: with many rows of tall bars there is none, and it covered bars. It is above
    the axes now, under the title."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gen3c.evaluation.report import _bars

    names = [f"row{k}" for k in range(9)]
    for series in ({"rotation": [3.0] * 9, "direction": [3.2] * 9}, {"all": [21.0] * 9, "seen": [23.0] * 9, "disoccluded": [22.0] * 9}):
        fig, ax = plt.subplots(figsize=(6, 4.2))
        _bars(ax, names, series, "degrees ↓", "Camera error")
        fig.tight_layout()
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legend, title = ax.get_legend().get_window_extent(renderer), ax.title.get_window_extent(renderer)
        assert not any(legend.overlaps(bar.get_window_extent(renderer)) for bar in ax.patches)
        assert not legend.overlaps(title) and legend.y0 >= ax.bbox.y1 - 1  # above the axes, under the title
        plt.close(fig)


def test_the_plots_axes_say_which_way_is_better(tmp_path, monkeypatch):
    """Every plotted score's axis label ends in ↑ (higher is better: PSNR, SSIM) or ↓ (lower: the
    errors), as the report's headers do; the axes named only the unit."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from gen3c.evaluation.report import write_plots

    labels, close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda fig: labels.extend(ax.get_ylabel() for ax in fig.axes) or close(fig))
    write_plots(one_case_result(psnr_per_frame=[20.0] * 24), tmp_path)
    assert labels == ["PSNR dB ↑", "SSIM ↑", "mean abs. error ×100 ↓", "degrees ↓", "% of median depth ↓", "PSNR dB ↑", "PSNR dB ↑"]


def test_the_report_says_where_its_fingerprint_says_the_run_ran():
    """report.md said "(CUDA)" or "(CPU)" from whether this process sees a GPU, not from where the
    ground truth was ray-cast (run_benchmark(device="cpu") on a GPU machine read CUDA), and not the
    CPU threads, which move the scores' last bits (docs/eval.md): both from the fingerprint now."""
    from dataclasses import replace as changed

    from gen3c.evaluation.report import markdown

    result = one_case_result(psnr_per_frame=[20.0])
    result.fingerprint = {"device": "cuda (NVIDIA H100 80GB HBM3)", "cpu_threads": 3, "torch": "2.14.1"}
    text = markdown(changed(result, seconds=12.0), plots=False, sheets=[])
    assert "Run time 12 s on " in text and ", ground truth ray-cast on cuda (NVIDIA H100 80GB HBM3), 3 CPU threads, torch 2.14.1.\n" in text, text
    result.fingerprint["cpu"] = "AMD EPYC 7B13 (AVX2)"  # and the CPU, which moves them too (a fingerprint before it had none)
    text = markdown(changed(result, seconds=12.0), plots=False, sheets=[])
    assert ", ground truth ray-cast on cuda (NVIDIA H100 80GB HBM3), 3 CPU threads on AMD EPYC 7B13 (AVX2), torch 2.14.1.\n" in text, text


def test_the_report_names_no_code_digest_it_does_not_have():
    """A fingerprint with gen3c's version but no code digest (one made by hand, or a gen3c without
    its Python sources to hash) read "gen3c 0.1.0 (code sha256 None)"; now the version alone."""
    from dataclasses import replace as changed

    from gen3c.evaluation.report import markdown

    result = one_case_result(psnr_per_frame=[20.0])
    result.fingerprint = {"device": "cpu", "cpu_threads": 2, "torch": "2.14.1", "gen3c": "0.1.0"}
    text = markdown(changed(result, seconds=3.0), plots=False, sheets=[])
    assert "None" not in text and ", 2 CPU threads, torch 2.14.1, gen3c 0.1.0.\n" in text, text
    result.fingerprint["gen3c_code"] = "ab" * 32
    text = markdown(changed(result, seconds=3.0), plots=False, sheets=[])
    assert ", gen3c 0.1.0 (code sha256 abababababab).\n" in text, text


def test_the_code_digest_is_none_without_python_sources(tmp_path, monkeypatch):
    """gen3c installed byte-compiled only (no .py files) was given the sha256 of no file at all
    (e3b0c442…), the same for every such install, as if it named the code."""
    from gen3c import environment

    package = tmp_path / "gen3c"
    (package / "models").mkdir(parents=True)
    (package / "models" / "attention.pyc").write_bytes(b"compiled")
    monkeypatch.setattr(environment, "__file__", str(package / "environment.pyc"))
    environment.code_digest.cache_clear()
    try:
        assert environment.code_digest() is None
        (package / "models" / "attention.py").write_text("x = 1\n")
        environment.code_digest.cache_clear()
        assert environment.code_digest() == hashlib.sha256(b"models/attention.py\0x = 1\n").hexdigest()
    finally:
        environment.code_digest.cache_clear()


def test_the_report_and_results_json_are_dated(tmp_path):
    """report.md and results.json said when nothing was run: a report on paper, or two in one
    folder's history, could not be told apart by date. Both give when the run ended, in UTC."""
    from datetime import UTC, datetime

    before = datetime.now(UTC).replace(microsecond=0)
    res = invoke("eval", "--scenes", "objects", "--presets", "up", "--resolution", "32x48", "--num_video_frames", 3,
                 "--methods", "still", "--output_folder", tmp_path, "--no_plots")  # fmt: skip
    assert res.exit_code == 0, res.output
    ended = json.loads((tmp_path / "results.json").read_text())["ended_at"]
    assert before <= datetime.fromisoformat(ended) <= datetime.now(UTC) and ended.endswith("+00:00"), ended
    shown = ended.replace("T", " ").removesuffix("+00:00")
    assert f"\nEnded {shown} UTC.\n" in (tmp_path / "report.md").read_text()


def test_a_few_failed_poses_do_not_round_to_none():
    """pose fail % had no decimal: one failed frame among the default benchmark's 32 cases of 24
    scored frames (0.13 %) read "0", as if every pose had been recovered."""
    from rich.console import Console

    from gen3c.evaluation.report import markdown, summary_table

    result = one_case_result(pose_failures=1 / 24 / 32, psnr_per_frame=[20.0])
    row = next(line for line in markdown(result, plots=False, sheets=[]).splitlines() if line.startswith("| `still`"))
    assert row.split("|")[12].strip() == "0.1", row
    console = Console(width=200, record=True)
    console.print(summary_table(result))
    line = next(line for line in console.export_text().splitlines() if line.startswith("│still"))
    assert [c.strip() for c in line.split("│")][10] == "0.1", line


def test_the_models_compared_table_shows_the_pose_failures_beside_the_camera_errors():
    """The "Models compared" table showed rot / dir / centre err, means over the frames whose pose
    was recovered, without the share left out: a student whose video lost 6 % of its poses read
    as the teacher's better on camera error, the frames it failed on not counted."""
    from gen3c.evaluation.report import markdown
    from gen3c.evaluation.suite import (
        GROUND_TRUTH,
        SCORE_NAMES,
        BenchmarkConfig,
        BenchmarkResult,
        Case,
        CaseResult,
        Method,
    )

    row = dict.fromkeys(SCORE_NAMES, 0.5) | {"psnr_per_frame": [20.0]}
    scores = {GROUND_TRUTH: dict(row), "gen3c": dict(row), "gen3c:fast": row | {"pose_failures": 0.0625, "psnr_vs_reference": 30.0}}
    methods = [Method("gen3c", "teacher", None, sampling="35 steps × 2 forwards"),
               Method("gen3c:fast", "student", None, reference="gen3c", sampling="5 steps × 1 forward")]  # fmt: skip
    result = BenchmarkResult(BenchmarkConfig(scenes=("room",), presets=("left",)), methods, [CaseResult(Case("room", "left", 1000), scores, {})])
    section = markdown(result, plots=False, sheets=[]).split("## Models compared (mean over cases)")[1].strip().splitlines()
    header = [c.strip() for c in section[0].strip("|").split("|")]
    student = [c.strip() for c in section[3].strip("|").split("|")]
    assert header[-2:] == ["pose fail % ↓", "PSNR vs `gen3c` dB ↑"] and student[-2:] == ["6.2", "30.00"], (header, student)


class _Model:
    """A stand-in for a diffusion model: the source image held still, with a model's plain
    attributes and :meth:`settings`, as :class:`~gen3c.pipelines.gen3c.Gen3cGenerator` has them."""

    def __init__(self, name, num_steps, guidance, negative_prompt=None, lora_sha256=None):
        self.name, self.num_steps, self.guidance, self.negative_prompt = name, num_steps, guidance, negative_prompt
        self.lora_sha256 = lora_sha256

    def settings(self):
        return {"sampler": "euler", "num_steps": self.num_steps, "guidance": self.guidance, "lora_sha256": self.lora_sha256, "checkpoint": None}

    def generate(self, cache, cameras, first_frame, *, buffers=None, progress=None):
        return first_frame[None].expand(len(cameras), -1, -1, -1).clone()


def _compared_section(reference, compared):
    from gen3c.evaluation.report import markdown
    from gen3c.evaluation.suite import BenchmarkConfig, run_benchmark, select_methods

    config = BenchmarkConfig(scenes=("room",), presets=("left",), resolution=(32, 48), num_frames=3)
    result = run_benchmark(config, select_methods(["still"], reference, {m.name: m for m in compared}), device="cpu")
    return markdown(result, plots=False, sheets=[]).split("## Models compared (mean over cases)")[1].split("\nMetrics")[0]


def test_the_models_compared_section_says_which_settings_differ():
    """A compared model samples with its own defaults, without the first model's --negative_prompt
    and --lora: two checkpoints of 35 steps × 2 forwards, one at guidance 7 with a negative prompt
    and an adapter, the other at guidance 1 with neither, read as alike in the report (its table
    shows steps × forwards only). It names every setting that differs, and says when none does."""
    teacher = _Model("gen3c", 35, 7.0, negative_prompt="blurry", lora_sha256="ab12")
    other = _Model("gen3c:other", 35, 1.0)
    section = _compared_section(teacher, [other])
    line = next(line for line in section.splitlines() if line.startswith("**Settings that differ between these models**"))
    assert line.endswith(
        "guidance `7.0` (`gen3c`), `1.0` (`gen3c:other`); lora_sha256 `ab12` (`gen3c`), none (`gen3c:other`); "
        "negative_prompt `blurry` (`gen3c`), none (`gen3c:other`)."
    ), line
    assert not any(f" {key} " in line for key in ("num_steps", "sampler", "checkpoint", "name"))  # alike, or the row's own name
    alike = _compared_section(_Model("gen3c", 35, 7.0), [_Model("gen3c:copy", 35, 7.0)])
    assert "**Settings**: the models ran with the same generator settings; only their weights differ." in alike
    assert "differ between" not in alike


def test_a_result_without_any_case_still_writes_a_whole_report(tmp_path):
    """A benchmark result with no case (write_report from Python, e.g. of a run stopped before its
    first case) writes report.md, results.json and every plot, each score "—" / null; the PSNR-over-
    time plot failed with an IndexError (no frame axis) and left no report at all."""
    pytest.importorskip("matplotlib")
    from gen3c.evaluation.report import PLOTS, read_results, write_report
    from gen3c.evaluation.suite import BenchmarkConfig, BenchmarkResult, Method

    result = BenchmarkResult(BenchmarkConfig(scenes=("room",), presets=("left",), num_frames=4), [Method("still", "held still", None)], [])
    paths = write_report(result, tmp_path)
    assert sorted(p.name for p in paths["plots"]) == sorted(PLOTS)
    for name in PLOTS:
        with Image.open(tmp_path / name) as img:
            assert img.format == "PNG"
    back = read_results(tmp_path / "results.json")
    assert back["cases"] == [] and np.isnan(back["summary"]["still"]["psnr"])
    report = (tmp_path / "report.md").read_text()
    assert "| `still` | — | — |" in report and "no case ran, so neither" in report and "with one case" not in report


def test_one_case_is_counted_in_the_singular():
    """The table's title and report.md say "1 case", not "1 cases"."""
    from rich.console import Console

    from gen3c.evaluation.report import markdown, summary_table

    result = one_case_result(psnr_per_frame=[20.0])
    console = Console(width=200, record=True)
    console.print(summary_table(result))
    assert console.export_text().startswith("gen3c eval: 1 case, mean over cases")
    assert "\n1 case (1 scene × 1 preset), " in markdown(result, plots=False, sheets=[])


def test_a_long_row_name_is_shown_whole_on_the_contact_sheet():
    """A compared model's row is named after its folder ("gen3c:RUN/model"): a long one was cut
    off under the first frame (a 130-pixel label column)."""
    import numpy as np
    import torch
    from PIL import ImageDraw, ImageFont

    from gen3c.evaluation.report import contact_sheet
    from gen3c.evaluation.suite import GROUND_TRUTH, GroundTruth

    name = "gen3c:distill_7b_lr1e-5_batch8_stage2/model"
    truth = GroundTruth(None, None, None, torch.ones(3, 3, 16, 24), None, torch.ones(3, 16, 24, dtype=torch.bool), None, 1.0)
    frames = -torch.ones(2, 3, 16, 24)  # black frames: they would hide the name's end
    sheet = np.asarray(contact_sheet(truth, {GROUND_TRUTH: frames, name: frames}, [1, 2]).convert("L"))
    # The name alone, drawn where the sheet draws it (row 4: ground truth, mask, gen3c…).
    alone = Image.new("L", (600, 16), 255)
    ImageDraw.Draw(alone).text((4, 16 // 2 - 6), name, fill=0, font=ImageFont.load_default())
    y = 16 + 2 * (16 + 2)
    left = int(np.argmax(sheet[y, :] < 5))  # the first black frame of that row
    ink = np.asarray(alone) < 128
    assert ink[:, left:].sum() == 0 and (sheet[y : y + 16, :left] < 128).sum() == ink.sum()

def test_the_contact_sheets_mask_row_says_which_colour_is_which(monkeypatch):
    """The mask row was labelled "seen / disoccluded": a sheet opened by itself did not say that
    white is seen and black disoccluded."""
    import torch
    from PIL import ImageDraw

    from gen3c.evaluation.report import contact_sheet
    from gen3c.evaluation.suite import GROUND_TRUTH, GroundTruth

    drawn, text = [], ImageDraw.ImageDraw.text
    monkeypatch.setattr(ImageDraw.ImageDraw, "text", lambda self, xy, label, *a, **k: (drawn.append(label), text(self, xy, label, *a, **k))[1])
    truth = GroundTruth(None, None, None, torch.ones(3, 3, 16, 48), None, torch.ones(3, 16, 48, dtype=torch.bool), None, 1.0)
    contact_sheet(truth, {GROUND_TRUTH: torch.ones(2, 3, 16, 48), "still": torch.ones(2, 3, 16, 48)}, [1, 2])
    assert drawn == ["frame 1", "frame 2", GROUND_TRUTH, "seen (white) / disocc. (black)", "still"]


def _sheet_header(width, shown):
    """The header band of a contact sheet of frames ``width`` pixels wide showing ``shown`` (grey
    frames), as ink (True) per pixel, and where each frame's column starts."""
    import torch

    from gen3c.evaluation.report import contact_sheet
    from gen3c.evaluation.suite import GROUND_TRUTH, GroundTruth

    T = max(shown) + 1
    truth = GroundTruth(None, None, None, torch.zeros(T, 3, 16, width), None, torch.ones(T, 16, width, dtype=torch.bool), None, 1.0)
    frames = torch.zeros(len(shown), 3, 16, width)
    sheet = np.asarray(contact_sheet(truth, {GROUND_TRUTH: frames, "still": frames}, shown).convert("L"))
    starts = [int(x) for x in np.flatnonzero(np.diff(np.isin(sheet[20], (127, 128)).astype(int)) == 1) + 1]  # the grey frames' left edges
    return sheet[:16] < 128, starts


@pytest.mark.parametrize("width", [16, 24, 32])
def test_the_contact_sheets_frame_numbers_do_not_run_into_each_other(width):
    """"frame N" is 35 pixels or more wide: over frames narrower than that (--resolution 16x24) the
    headers ran into each other, an unreadable "frameframefra…". Each header now stays over its own
    column (the bare numbers, "frame" over the row names), one that cannot is left out."""
    shown = [1, 2, 3, 4, 9, 10, 11, 12]
    ink, starts = _sheet_header(width, shown)
    assert len(starts) == len(shown)
    for start in starts[1:]:  # nothing in the 2 pixels before a column: the header to its left ends there
        assert not ink[:, start - 2 : start].any(), start
    assert not ink[:, starts[-1] + width :].any()  # nor past the last column
    labelled = [bool(ink[:, a : a + width].any()) for a in starts]
    assert all(labelled)  # (2 digits fit over 16 pixels)
    assert ink[:, : starts[0]].any()  # "frame", over the row names


def test_wide_frames_keep_their_frame_n_headers():
    ink, starts = _sheet_header(48, [1, 12])
    assert ink[:, : starts[0]].sum() == 0 and all(ink[:, a : a + 48].sum() > 60 for a in starts)  # (a number alone: under 40 pixels)


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_an_interrupted_rerun_leaves_the_earlier_report_as_it_was_and_keeps_its_finished_cases_apart(tmp_path):
    """Ctrl-C during a rerun's benchmark: the earlier report, plots and contact sheets stay
    untouched, and the case finished before the interrupt is kept as a partial report in
    partial/, marked incomplete (it was lost), named by the interrupt's message."""
    from gen3c.evaluation.run import make_config, run_eval

    config = make_config(scenes="room,corridor", presets="left", resolution="32x48", num_frames=3)
    run_eval(config, tmp_path, methods=["still"], plots=False)
    before = _files(tmp_path)
    assert sorted(before) == ["contact_sheets/corridor-left.png", "contact_sheets/room-left.png", "report.md", "results.json"]

    def interrupt_in_the_second_case(stage, total):
        ticks = []

        def tick(n=1):
            ticks.append(n)
            if len(ticks) == 3:  # case 1 done (ground truth + 1 method), its sheet written
                raise KeyboardInterrupt

        return tick

    with pytest.raises(KeyboardInterrupt) as stop:
        run_eval(config, tmp_path, methods=["still"], plots=False, progress=interrupt_in_the_second_case)
    assert f"the 1 finished case of 2 is kept as a partial report in {str(tmp_path / 'partial' / 'report.md')!r}" in str(stop.value)
    after = _files(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("partial/")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["contact_sheets", "partial", "report.md", "results.json"]
    assert sorted(k for k in after if k.startswith("partial/")) == ["partial/contact_sheets/room-left.png", "partial/report.md", "partial/results.json"]
    partial = json.loads(after["partial/results.json"])
    assert partial["complete"] is False and json.loads(before["results.json"])["complete"] is True
    # The case Ctrl-C cut short is no failure: it is listed as interrupted.
    assert partial["stopped"] == {"error": "interrupted (Ctrl-C)", "finished": ["room-left"], "failed": [], "interrupted": ["corridor-left"], "not_run": []}
    assert "- finished: room-left\n- interrupted: corridor-left\n- not run: none" in after["partial/report.md"].decode()
    # The finished case's scores are those of the complete run.
    assert partial["cases"][0]["scores"] == json.loads(before["results.json"])["cases"][0]["scores"]
    # Interrupted in the first case: nothing finished, nothing kept, the message as before.
    with pytest.raises(KeyboardInterrupt) as stop:
        run_eval(replace(config, scenes=("room",)), tmp_path / "first", methods=["still"], plots=False, progress=lambda s, t: _raise)
    assert str(stop.value) == "" and not (tmp_path / "first" / "partial").exists()


def test_an_eval_interrupted_while_its_report_is_written_keeps_every_case(tmp_path, monkeypatch):
    """Ctrl-C while the finished benchmark's report and plots are written (seconds, with plots):
    every case was lost; they are kept as a partial report that says it stopped after its last
    case, and the earlier report stays as it was."""
    from gen3c.evaluation import run

    config = run.make_config(scenes="room,corridor", presets="left", resolution="32x48", num_frames=3)
    run.run_eval(config, tmp_path, methods=["still"], plots=False)
    before = _files(tmp_path)
    real_write_report = run.write_report

    def interrupted_once(result, folder, **kwargs):
        if result.stopped is None:  # the complete report's, not the partial one's
            raise KeyboardInterrupt
        return real_write_report(result, folder, **kwargs)

    monkeypatch.setattr(run, "write_report", interrupted_once)
    with pytest.raises(KeyboardInterrupt, match=r"^the 2 finished cases of 2 are kept as a partial report in "):
        run.run_eval(config, tmp_path, methods=["still"], plots=False)
    after = _files(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("partial/")} == before
    partial = json.loads(after["partial/results.json"])
    assert partial["stopped"] == {"error": "interrupted (Ctrl-C)", "finished": ["room-left", "corridor-left"], "failed": [], "interrupted": [], "not_run": []}
    assert "was interrupted (Ctrl-C) after its last case, before the report was written." in after["partial/report.md"].decode()


def _raise(n=1):
    raise KeyboardInterrupt


class _FailingOnCall:
    """The still image, but its ``fail_on``-th video raises ``error`` (a generator's own failure)."""

    name = "flaky"

    def __init__(self, fail_on, error):
        from gen3c.evaluation.baselines import StillGenerator

        self.calls, self.fail_on, self.error, self.still = 0, fail_on, error, StillGenerator()

    def generate(self, cache, cameras, first_frame=None, *, buffers=None, progress=None, chunk=0):
        self.calls += 1
        if self.calls == self.fail_on:
            raise self.error
        return self.still.generate(cache, cameras, first_frame, buffers=buffers, progress=progress)


def test_a_generator_failing_in_the_third_case_keeps_the_first_two_as_a_partial_report(tmp_path):
    """A generator that raises in case 3 of 4: cases 1 and 2 are written as partial/report.md and
    partial/results.json (which cases finished, failed and why, and never ran; their contact
    sheets) beside the earlier complete report, which stays as it was; the error names the
    partial report; a later complete run removes it (only the files it wrote)."""
    from gen3c.evaluation.run import make_config, run_eval

    config = make_config(scenes="room,corridor", presets="left,right", resolution="32x48", num_frames=3)
    run_eval(config, tmp_path, methods=["still"], plots=False)
    before = _files(tmp_path)
    with pytest.raises(RuntimeError, match="out of luck") as failed:
        run_eval(config, tmp_path, methods=["still"], generator=_FailingOnCall(3, RuntimeError("out of luck")), plots=False)
    assert f"the 2 finished cases of 4 are kept as a partial report in {str(tmp_path / 'partial' / 'report.md')!r}" in failed.value.__notes__[-1]
    after = _files(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith("partial/")} == before
    partial = json.loads(after["partial/results.json"])
    assert partial["complete"] is False
    assert partial["stopped"] == {
        "error": "RuntimeError: out of luck (while making the flaky row's video of case corridor-left)",
        "finished": ["room-left", "room-right"], "failed": ["corridor-left"], "interrupted": [], "not_run": ["corridor-right"],
    }  # fmt: skip
    assert [(c["scene"], c["preset"]) for c in partial["cases"]] == [("room", "left"), ("room", "right")]
    complete = json.loads(before["results.json"])["cases"]
    for kept, whole in zip(partial["cases"], complete[:2], strict=True):
        assert kept["scores"]["still"] == whole["scores"]["still"] and kept["scores"]["flaky"] == whole["scores"]["still"]
    assert set(partial["summary"]) == {"ground_truth", "still", "flaky"}
    report = after["partial/report.md"].decode()
    assert report.startswith("# gen3c eval report — INCOMPLETE\n")
    assert "- finished: room-left, room-right\n- failed: corridor-left\n- not run: corridor-right" in report
    assert "2 of 4 cases (2 scenes × 2 presets)" in report and "## Plots" not in report
    assert sorted(k for k in after if k.startswith("partial/contact_sheets/")) == [
        "partial/contact_sheets/room-left.png", "partial/contact_sheets/room-right.png"
    ]  # fmt: skip
    # A complete run removes the partial report, and only what a partial report holds.
    (tmp_path / "partial" / "notes.txt").write_text("mine")
    run_eval(config, tmp_path, methods=["still"], plots=False)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "partial").rglob("*")) == ["partial/notes.txt"]
    (tmp_path / "partial" / "notes.txt").unlink()
    with pytest.raises(RuntimeError):  # a second stopped run replaces the first's partial report
        run_eval(config, tmp_path, methods=["still"], generator=_FailingOnCall(2, RuntimeError("again")), plots=False)
    assert json.loads((tmp_path / "partial" / "results.json").read_text())["stopped"]["finished"] == ["room-left"]
    run_eval(config, tmp_path, methods=["still"], plots=False)
    assert not (tmp_path / "partial").exists()


def test_a_first_eval_that_stops_names_no_earlier_report(tmp_path):
    """A first run into a folder stops in case 2: its note named "an earlier complete report in
    FOLDER", which was not there; a rerun's names the one left as it was."""
    from gen3c.evaluation.run import make_config, run_eval

    config = make_config(scenes="room", presets="left,right", resolution="32x48", num_frames=3)
    kept = f"the 1 finished case of 2 is kept as a partial report in {str(tmp_path / 'partial' / 'report.md')!r}"
    with pytest.raises(RuntimeError, match="out of luck") as failed:
        run_eval(config, tmp_path, methods=["still"], generator=_FailingOnCall(2, RuntimeError("out of luck")), plots=False)
    assert failed.value.__notes__[-1] == kept
    run_eval(config, tmp_path, methods=["still"], plots=False)
    with pytest.raises(RuntimeError, match="out of luck") as failed:
        run_eval(config, tmp_path, methods=["still"], generator=_FailingOnCall(2, RuntimeError("out of luck")), plots=False)
    assert failed.value.__notes__[-1] == f"{kept} (an earlier complete report in {str(tmp_path)!r} is left as it was)"


def test_a_partial_report_that_cannot_be_written_leaves_the_error_as_it_was(tmp_path, monkeypatch):
    """Writing the partial report fails (a full disk, say): the generator's own error is raised,
    with a note on why nothing was kept, and no partial file is left."""
    from gen3c.evaluation import run

    config = run.make_config(scenes="room", presets="left,right", resolution="32x48", num_frames=3)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run, "write_report", disk_full)
    # The finished case could not be kept as the run went either: said once, and the run went on to its error.
    kept_as_it_goes = r"^the finished cases could not be kept as the run goes \(OSError: \[Errno 28\] No space left on device\): a run killed"
    with pytest.raises(RuntimeError, match="out of luck") as failed, pytest.warns(UserWarning, match=kept_as_it_goes):
        run.run_eval(config, tmp_path, methods=["still"], generator=_FailingOnCall(2, RuntimeError("out of luck")), plots=False)
    assert failed.value.__notes__[-1] == "the finished cases could not be kept (OSError: [Errno 28] No space left on device)"
    assert list(tmp_path.iterdir()) == []


def test_eval_names_the_partial_report_in_its_one_line_error(tmp_path, monkeypatch):
    """`gen3c eval` whose generator makes NaN frames in case 3: exit 2, one line naming the row,
    the case and where the two finished cases are kept."""
    from gen3c.evaluation.baselines import StillGenerator

    still = StillGenerator.generate
    calls = []

    def nan_in_the_third(self, *args, **kwargs):
        calls.append(1)
        frames = still(self, *args, **kwargs)
        return frames * math.nan if len(calls) == 3 else frames

    monkeypatch.setattr(StillGenerator, "generate", nan_in_the_third)
    res = invoke(*TINY, "--resolution", "32x48", "--num_video_frames", 3, "--methods", "still", "--output_folder", tmp_path, "--no_plots")
    assert res.exit_code == 2, res.output
    line = " ".join(res.output.split("error: ", 1)[1].split())  # (after the progress bars)
    assert line.startswith("the still row's video of case street-left: the still generator returned NaN")
    assert f"the 2 finished cases of 4 are kept as a partial report in {str(tmp_path / 'partial' / 'report.md')!r}" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["partial"]


def test_an_eval_removes_the_hidden_folders_of_killed_evals_only(tmp_path):
    """``kill -9`` leaves an eval's hidden staging folder; the next eval into the folder removes
    it once its process is gone, and keeps those of a running eval, of another machine and of
    other names (they used to pile up)."""
    import os
    import subprocess
    import sys

    from gen3c.evaluation.run import make_config, run_eval
    from gen3c.io.atomic import _host, make_staging_dir

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    dead = int(gone.stdout)
    live = make_staging_dir(tmp_path, "eval")  # this process's: an eval running beside the new one
    assert live.name.startswith(f".eval.{os.getpid()}@{_host()}.")
    killed = tmp_path / f".eval.{dead}@{_host()}.k1ll3d.part"
    others = [tmp_path / f".eval.{dead}@other-host.abc.part", tmp_path / ".eval.abc.part", tmp_path / f".evals.{dead}@{_host()}.x.part"]
    for path in [killed, *others]:
        (path / "contact_sheets").mkdir(parents=True)
        (path / "contact_sheets" / "room-left.png").write_bytes(b"half")
    config = make_config(scenes="room", presets="left", resolution="32x48", num_frames=3)
    run_eval(config, tmp_path, methods=["still"], plots=False)
    assert not killed.exists() and live.is_dir() and all(p.is_dir() for p in others)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["contact_sheets", "report.md", "results.json"]


@pytest.mark.parametrize("theirs", [["report.md", "results.json"], ["consistency.png"]])
def test_a_folder_holding_files_no_eval_wrote_under_its_names_is_refused(tmp_path, theirs):
    """`gen3c eval --output_folder .` in a project folder replaced its own results.json and report.md
    with the benchmark's, and deleted a consistency.png (a plot name an earlier report would leave),
    though no gen3c eval had written them. Refused now, before the benchmark runs; nothing changes."""
    for name in theirs:
        (tmp_path / name).write_text("mine")
    res = invoke("eval", "--scenes", "room", "--presets", "left", "--resolution", "32x48", "--num_video_frames", 3,
                 "--methods", "still", "--output_folder", tmp_path, "--no_plots")  # fmt: skip
    assert res.exit_code == 2 and len(res.output.splitlines()) == 1, res.output
    assert res.output == (f"error: --output_folder '{tmp_path}' holds {', '.join(theirs)}, which no gen3c eval wrote and its report "
                          "would replace: choose a new or empty --output_folder\n")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(theirs) and all((tmp_path / n).read_text() == "mine" for n in theirs)


def test_a_rerun_leaves_no_output_of_the_previous_run(tmp_path):
    """Plots and contact sheets of an earlier run into the same folder (other cases, or plots
    beside a --no_plots report) are removed; files the eval does not write are kept."""
    (tmp_path / "contact_sheets").mkdir()
    old = [tmp_path / "image_quality.png", tmp_path / "contact_sheets" / "street-up.png", tmp_path / "report.md"]
    for path in old:
        path.write_bytes(b"old")
    (tmp_path / "results.json").write_text(json.dumps({"config": {}, "cases": []}))  # the earlier run's, beside its report
    mine = tmp_path / "notes.txt"
    mine.write_text("keep")
    res = invoke("eval", "--scenes", "room", "--presets", "left", "--resolution", "32x48", "--num_video_frames", 3,
                 "--methods", "still", "--output_folder", tmp_path, "--no_plots")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert not old[0].exists() and not old[1].exists() and old[2].read_bytes() != b"old"
    assert mine.read_text() == "keep"
    assert sorted(p.name for p in (tmp_path / "contact_sheets").iterdir()) == ["room-left.png"]
    # The report's summary table shows the numbers of results.json, scaled and rounded as headed.
    summary = json.loads((tmp_path / "results.json").read_text())["summary"]
    lines = (tmp_path / "report.md").read_text().split("## Summary (mean over cases)")[1].strip().splitlines()
    header = [h.strip() for h in lines[0].strip("|").split("|")]
    for line in lines[2:4]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        row = summary[cells[0].strip("`")]
        shown = dict(zip(header, cells, strict=True))
        for score, head, scale, decimals in (("psnr_seen", "PSNR seen dB ↑", 1, 2), ("ssim", "SSIM ↑", 1, 3), ("warp_error", "warp err ×100 ↓", 100, 2),
                                             ("center_error", "centre err % ↓", 100, 1), ("rotation_error", "rot err ° ↓", 1, 2)):  # fmt: skip
            value = row[score]
            assert shown[head] == ("—" if value is None else f"{value * scale:.{decimals}f}"), (cells[0], score)
    assert shown["PSNR seen dB ↑"] != "—" and lines[2].startswith("| `ground_truth`")



@pytest.mark.parametrize(("blocker", "message"), [("report.md", "holds a folder (or other non-file) named report.md"),
                                                  ("contact_sheets", "holds a file named contact_sheets"),
                                                  ("partial", "holds a file named partial where a stopped run keeps")])  # fmt: skip
def test_a_report_name_taken_by_something_else_is_refused_before_the_benchmark(tmp_path, blocker, message):
    """A folder named report.md (or a file named contact_sheets) in --output_folder: one line and
    exit 2 before any case runs; it was an IsADirectoryError (FileExistsError) traceback after the
    whole benchmark, with results.json published beside no report.md."""
    (tmp_path / "report.md").mkdir() if blocker == "report.md" else (tmp_path / blocker).write_text("")
    res = invoke("eval", "--scenes", "room", "--presets", "left", "--resolution", "32x48", "--num_video_frames", 3,
                 "--methods", "still", "--output_folder", tmp_path, "--no_plots")  # fmt: skip
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: --output_folder") and message in res.output.replace("\n", " ")
    assert "move it away or choose another --output_folder" in res.output.replace("\n", " ")
    assert sorted(p.name for p in tmp_path.iterdir()) == [blocker]

class _WarmingUp:
    """A generator whose first video takes 3 s, as a model's first call costs more (allocations,
    kernel selection, compilation), and every later one 1 s: seconds of ``clock``, the benchmark's
    clock in the test (the machine's own time would make the numbers what a loaded machine makes
    them). Its videos are the still image."""

    name = "warming"

    def __init__(self, clock):
        from gen3c.evaluation.baselines import StillGenerator

        self.calls, self.still, self.clock = 0, StillGenerator(), clock

    def generate(self, cache, cameras, first_frame=None, *, buffers=None, progress=None, chunk=0):
        self.calls += 1
        self.clock.now += 3.0 if self.calls == 1 else 1.0
        return self.still.generate(cache, cameras, first_frame, buffers=buffers, progress=progress)


def test_the_report_keeps_warm_up_and_loading_out_of_seconds_per_video(tmp_path, monkeypatch):
    """s/video is the mean over the cases after the first; the first video (warm-up included) and
    the model's loading are reported apart (the first call's warm-up made s/video noisy)."""
    from types import SimpleNamespace

    import gen3c.evaluation.suite as suite
    from gen3c.evaluation.run import run_eval
    from gen3c.evaluation.suite import BenchmarkConfig

    clock = SimpleNamespace(now=0.0)  # the benchmark's clock: only the generator moves it
    monkeypatch.setattr(suite, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    config = BenchmarkConfig(scenes=("room",), presets=("left", "right", "up"), resolution=(32, 48), num_frames=3)
    result, paths = run_eval(config, tmp_path, methods=["still"], generator=_WarmingUp(clock), plots=False, load_seconds={"warming": 12.5})
    saved = json.loads(paths["results"].read_text())
    row = saved["summary"]["warming"]
    assert row["first_seconds"] == 3.0 and row["seconds"] == 1.0
    assert saved["load_seconds"] == {"warming": 12.5} and [len(c["seconds"]) for c in saved["cases"]] == [2, 2, 2]
    report = paths["report"].read_text()
    assert "| s/video | 1st video s |" in report and "Model loading" in report and "`warming` 12.5 s" in report
    line = next(r for r in report.splitlines() if r.startswith("| `warming` |"))
    assert line.split("|")[-3:-1] == [" 1.00 ", " 3.00 "]
    # One case: no video after the first, so no s/video (—), the first one's time only.
    one = BenchmarkConfig(scenes=("room",), presets=("left",), resolution=(32, 48), num_frames=3)
    _, paths = run_eval(one, tmp_path / "one", methods=["still"], plots=False)
    line = next(r for r in paths["report"].read_text().splitlines() if r.startswith("| `still` |"))
    assert line.split("|")[-3].strip() == "—" and float(line.split("|")[-2]) >= 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--model", "tiny", "--num_video_frames", "5"), "num_video_frames 5 is not possible with the gen3c generator, which makes 17 frames per chunk"),
        (("--model", "tiny", "--compare_models", "NINE"), "num_video_frames 17 is not possible with the compared model gen3c:nine, which makes 25 frames"),
    ],
)
def test_a_frame_count_a_model_cannot_make_is_refused_before_any_model_loads(tmp_path, monkeypatch, args, message):
    """It was refused by the benchmark, after every model had loaded (minutes for GEN3C-7B) and its bar had started."""
    pytest.importorskip("diffusers")
    from gen3c.pipelines import loading as loading_module

    def never(*args, **kwargs):
        raise AssertionError("a model loaded")

    monkeypatch.setattr(loading_module, "generator_from_options", never)
    nine = tmp_path / "nine"
    nine.mkdir()
    (nine / "gen3c_model.json").write_text(json.dumps({"chunk_frames": 25}))
    args = [str(nine) if a == "NINE" else a for a in args]
    res = invoke("eval", "--generator", "gen3c", *args, "--scenes", "room", "--presets", "left", "--resolution", "32x48",
                 "--methods", "still", "--output_folder", tmp_path / "report", "--no_plots")  # fmt: skip
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split()) and "a model loaded" not in res.output
    assert not (tmp_path / "report").exists()


def test_a_path_onto_its_look_at_point_is_refused_before_the_first_case(tmp_path):
    """zoom_in facing the centre with --movement_distance n/(n−1) reaches the point it looks at in
    the last frame: that was refused when the zoom_in case came, after the cases before it had run
    (left behind as a partial report); the settings alone decide it."""
    res = invoke("eval", "--scenes", "room", "--presets", "left,zoom_in", "--movement_distance", 25 / 24, "--resolution", "32x48",
                 "--methods", "still", "--output_folder", tmp_path / "report", "--no_plots")  # fmt: skip
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == ("error: the zoom_in path with --camera_rotation center_facing and --movement_distance 1.04167 puts "
                                            "the camera on the point it looks at in frame 24 of 25, where it has no view direction: pass "
                                            "another --movement_distance (one below 1 never gets there)")  # fmt: skip
    assert not (tmp_path / "report").exists()  # (was: room-left's partial report)


def test_two_compared_models_of_one_row_name_are_refused_before_any_model_loads(tmp_path, monkeypatch):
    """--compare_models runs/a/ckpt,runs/b/ckpt made one row, gen3c:ckpt: both models loaded, the
    second replaced the first in the report and nothing said that one model was never scored."""
    from gen3c.pipelines import loading as loading_module

    def never(*args, **kwargs):
        raise AssertionError("a model loaded")

    monkeypatch.setattr(loading_module, "generator_from_options", never)
    from gen3c.models.packaged import packaged_model_dir

    for run, model in (("a", "tiny_fast"), ("b", "tiny")):  # two real checkpoints, each a run's ckpt/
        (tmp_path / run).mkdir()
        (tmp_path / run / "ckpt").symlink_to(packaged_model_dir(model), target_is_directory=True)
    res = invoke("eval", "--generator", "gen3c", "--model", "tiny", "--compare_models", f"{tmp_path / 'a' / 'ckpt'},{tmp_path / 'b' / 'ckpt'}",
                 "--scenes", "room", "--presets", "left", "--resolution", "32x48", "--methods", "still",
                 "--output_folder", tmp_path / "report", "--no_plots")  # fmt: skip
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (f"error: --compare_models '{tmp_path / 'b' / 'ckpt'}' makes the row gen3c:ckpt, as an earlier entry "
                                            "does: compare folders of different names (a symbolic link of another name will do)")  # fmt: skip
    assert not (tmp_path / "report").exists()
    # A folder named as a packaged model, then that model, alike.
    (tmp_path / "tiny_fast").symlink_to(packaged_model_dir("tiny"), target_is_directory=True)
    res = invoke("eval", "--generator", "gen3c", "--model", "tiny", "--compare_models", f"{tmp_path / 'tiny_fast'},tiny_fast",
                 "--scenes", "room", "--presets", "left", "--resolution", "32x48", "--methods", "still",
                 "--output_folder", tmp_path / "report", "--no_plots")  # fmt: skip
    assert res.exit_code == 2 and "error: --compare_models 'tiny_fast' makes the row gen3c:tiny_fast, as an earlier entry does" in " ".join(res.output.split())


@pytest.mark.slow
def test_a_compared_model_keeps_its_own_guidance_settings(tmp_path, monkeypatch):
    """--guidance_every / --guidance_batch (and --negative_prompt) shape the first model's guidance;
    a compared distilled student samples without guidance, so they were shared into its options
    and refused there, after the first model had loaded."""
    pytest.importorskip("diffusers")
    from gen3c.pipelines import loading as loading_module

    loaded, real = [], loading_module.generator_from_options
    monkeypatch.setattr(loading_module, "generator_from_options", lambda options, **kw: loaded.append(dict(options)) or real(options, **kw))
    res = invoke("eval", "--generator", "gen3c", "--model", "tiny", "--num_steps", 1, "--guidance_every", 2, "--guidance_batch",
                 "--compare_models", "tiny_fast", "--scenes", "room", "--presets", "left", "--resolution", "32x48",
                 "--methods", "still", "--output_folder", tmp_path / "report", "--no_plots")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert [o.get("model") for o in loaded] == ["tiny", "tiny_fast"]
    assert loaded[0]["guidance_every"] == 2 and loaded[0]["guidance_batch"] is True
    assert "guidance_every" not in loaded[1] and "guidance_batch" not in loaded[1]


@pytest.mark.slow
def test_notes_while_the_model_loads_are_one_line(tmp_path):
    """A note made while eval loads its gen3c model (here --max_gpu_memory's choice) is one
    "note:" line as generate prints it; it was a raw UserWarning line with a file path."""
    pytest.importorskip("diffusers")
    res = invoke("eval", "--generator", "gen3c", "--model", "tiny", "--max_gpu_memory", 1000, "--num_steps", 1, "--guidance", 0, "--scenes", "room", "--presets", "left",
                 "--resolution", "32x48", "--methods", "still", "--output_folder", tmp_path, "--no_plots")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "note: --max_gpu_memory 1000: memory mode 'resident' (estimated peak" in res.output
    assert "UserWarning" not in res.output and "loading.py" not in res.output


def test_write_report_from_python_leaves_no_output_of_an_earlier_report(tmp_path):
    """write_report called directly left an earlier run's plots and contact sheets beside the new
    report (only the CLI removed them); it removes them too, keeping the sheets it links and
    files the eval does not write."""
    from gen3c.evaluation.report import write_report

    (tmp_path / "contact_sheets").mkdir()
    old = [tmp_path / "image_quality.png", tmp_path / "psnr_over_time.png", tmp_path / "contact_sheets" / "street-up.png"]
    linked, mine = tmp_path / "contact_sheets" / "room-left.png", tmp_path / "notes.txt"
    for path in [*old, linked, mine]:
        path.write_bytes(b"old")
    paths = write_report(one_case_result(psnr_per_frame=[20.0]), tmp_path, plots=False, sheets=["contact_sheets/room-left.png"])
    assert not any(p.exists() for p in old) and linked.read_bytes() == mine.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["contact_sheets", "notes.txt", "report.md", "results.json"]
    assert paths["plots"] == [] and "contact_sheets/room-left.png" in paths["report"].read_text()


class _Stepping:
    """A generator that makes the still video in 4 "sampler steps", reporting each as GEN3C does
    (its share of the frames), and records the bars' counts at each step."""

    name = "stepping"

    def __init__(self, bars):
        from gen3c.evaluation.baselines import StillGenerator

        self.bars, self.still, self.seen = bars, StillGenerator(), []

    def generate(self, cache, cameras, first_frame=None, *, buffers=None, progress=None, chunk=0):
        T = len(cameras)
        for step in range(4):
            progress(T * (step + 1) // 4 - T * step // 4)
            self.seen.append(dict(self.bars))
        return self.still.generate(cache, cameras, first_frame, buffers=buffers)


def test_a_generators_steps_move_a_bar_while_its_video_is_made(tmp_path):
    """The benchmark's only bar counted cases × methods, and generators' own bars were off: a
    GEN3C video at full size showed minutes of no progress. A second bar counts the frames
    generated, advanced by each sampler step; it ends at its total, also for rows that report
    no steps (still) or more than their frames."""
    from gen3c.evaluation.run import run_eval
    from gen3c.evaluation.suite import BenchmarkConfig

    totals, bars = {}, {}

    def factory(stage, total):
        totals[stage], bars[stage] = total, 0

        def advance(n=1):
            bars[stage] += n

        return advance

    generator = _Stepping(bars)
    config = BenchmarkConfig(scenes=("room",), presets=("left", "up"), resolution=(32, 48), num_frames=5)
    run_eval(config, tmp_path, methods=["still"], generator=generator, plots=False, progress=factory)
    frames = next(stage for stage in totals if "frames" in stage)
    assert totals[frames] == 2 * 2 * 5 and bars[frames] == totals[frames]  # 2 cases × 2 rows × 5 frames
    assert bars == totals
    # Case 1: still (5 frames at its end), then 1, 2, 3, 5 frames of the stepping row's video, the case not done yet.
    assert [s[frames] for s in generator.seen[:4]] == [6, 7, 8, 10]
    assert {s["Benchmark (cases × methods)"] for s in generator.seen[:4]} == {2}


def test_line_plots_draw_an_infinite_psnr_at_a_labelled_ceiling_by_the_tables_rule():
    """psnr_over_time averaged each frame over the cases' finite PSNRs (one case's +∞ skipped,
    unlike the tables, where it makes the mean ∞), and psnr_per_preset left a preset whose mean
    is ∞ as an unlabelled gap. Both take the tables' mean now and draw ∞ on a labelled ceiling
    above every finite value."""
    pytest.importorskip("matplotlib")
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gen3c.evaluation.report import INFINITE, plot_psnr_over_time, plot_psnr_per_preset
    from gen3c.evaluation.suite import SCORE_NAMES, BenchmarkConfig, BenchmarkResult, Case, CaseResult, Method

    def case(preset, seed, psnr, per_frame):
        row = dict.fromkeys(SCORE_NAMES, 0.5) | {"psnr": psnr, "psnr_per_frame": per_frame}
        return CaseResult(Case("room", preset, seed), {"ground_truth": dict(row), "still": dict(row)}, {"still": 0.1})

    config = BenchmarkConfig(scenes=("room",), presets=("left", "up"), num_frames=3)
    result = BenchmarkResult(config, [Method("still", "held still", None)],
                             [case("left", 1000, math.inf, [math.inf, 20.0]), case("up", 1002, 25.0, [30.0, 22.0])])  # fmt: skip
    for plot, finite, at_ceiling in ((plot_psnr_over_time, [21.0], 0), (plot_psnr_per_preset, [25.0], 0)):
        fig, ax = plt.subplots()
        plot(ax, result)
        y = np.asarray(ax.lines[-1].get_ydata(), dtype=np.float64)
        ceiling = next(line for line in ax.lines if line.get_linestyle() == ":").get_ydata()[0]
        label = next(t for t in ax.texts if t.get_text() == INFINITE)
        assert label.get_position()[1] == ceiling and ceiling > max(finite) and ax.get_ylim()[1] > ceiling
        assert y[at_ceiling] == ceiling and list(np.delete(y, at_ceiling)) == finite, plot.__name__
        plt.close(fig)


def test_a_line_plot_with_an_infinite_psnr_keeps_every_finite_value_in_view():
    """_lines set the top of the y axis for the ∞ ceiling before drawing the lines, which froze
    the bottom at the ceiling's own autoscaled margin: every finite value (the `still` row's
    frames before the circle closes, every other row) fell below the axis and only the ∞ points
    showed, in psnr_over_time.png of any run with a circle preset."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gen3c.evaluation.report import plot_psnr_over_time
    from gen3c.evaluation.suite import SCORE_NAMES, BenchmarkConfig, BenchmarkResult, Case, CaseResult, Method

    row = dict.fromkeys(SCORE_NAMES, 0.5)
    scores = {"ground_truth": dict(row), "still": row | {"psnr_per_frame": [14.0, 12.0, math.inf]},
              "preview": row | {"psnr_per_frame": [20.0, 19.0, 18.0]}}  # fmt: skip
    config = BenchmarkConfig(scenes=("room",), presets=("clockwise",), num_frames=4)
    result = BenchmarkResult(config, [Method("still", "held still", None), Method("preview", "filled", None)],
                             [CaseResult(Case("room", "clockwise", 1006), scores, {})])  # fmt: skip
    fig, ax = plt.subplots()
    plot_psnr_over_time(ax, result)
    fig.canvas.draw()
    bottom, top = ax.get_ylim()
    assert bottom < 12.0 and top > 20.0, (bottom, top)
    plt.close(fig)


def test_line_plots_tell_eleven_rows_apart():
    """matplotlib's colour cycle has 10 colours: the 11th row of a line plot (every baseline,
    gen3c and 3 compared models) was drawn like the 1st, and the legend could not tell them apart."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gen3c.evaluation.report import plot_psnr_per_preset
    from gen3c.evaluation.suite import SCORE_NAMES, BenchmarkConfig, BenchmarkResult, Case, CaseResult, Method

    names = [f"row{k}" for k in range(11)]
    scores = {n: dict.fromkeys(SCORE_NAMES, 0.5) | {"psnr": 20.0 + k} for k, n in enumerate(["ground_truth", *names])}
    result = BenchmarkResult(BenchmarkConfig(scenes=("room",), presets=("left",)), [Method(n, n, None) for n in names],
                             [CaseResult(Case("room", "left", 1000), scores, {})])  # fmt: skip
    fig, ax = plt.subplots()
    plot_psnr_per_preset(ax, result)
    looks = [(matplotlib.colors.to_hex(line.get_color()), line.get_linestyle()) for line in ax.lines]
    assert len(looks) == 11 and len(set(looks)) == 11, looks
    handles, labels = ax.get_legend_handles_labels()
    assert labels == names and len({(matplotlib.colors.to_hex(h.get_color()), h.get_linestyle()) for h in handles}) == 11
    plt.close(fig)


def test_eval_takes_noise_aug_strength_as_generate_does(tmp_path):
    """eval declares the gen3c generator's flags as generate and gui do (GEN3C_FLAGS); it lacked
    --noise_aug_strength, which an eval of the tiny models (chunks of 17 frames, 25 by default) uses."""
    res = runner.invoke(app, ["eval", "--generator", "preview", "--noise_aug_strength", "0.2", "--output_folder", str(tmp_path / "r")])
    assert res.exit_code == 2 and "--noise_aug_strength applies to --generator gen3c only" in " ".join(res.output.split()), res.output
    res = runner.invoke(app, ["eval", "--help"])
    assert "--noise_aug_strength" in res.output


def test_a_report_subfolder_is_on_the_disk_before_its_files_are(tmp_path, monkeypatch):
    """Publishing a report made contact_sheets/ (and partial/) with a bare mkdir: the sheets were
    flushed, but not the new folder's entry, so a power cut soon after could lose them all."""
    import os

    from gen3c.evaluation.run import _publish_files

    staging = tmp_path / "staging"
    (staging / "contact_sheets").mkdir(parents=True)
    (staging / "contact_sheets" / "room-left.png").write_bytes(b"png")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    _publish_files([staging / "contact_sheets" / "room-left.png"], staging, tmp_path / "report" / "partial")
    assert (tmp_path / "report" / "partial" / "contact_sheets" / "room-left.png").read_bytes() == b"png"
    assert {str(tmp_path), str(tmp_path / "report"), str(tmp_path / "report" / "partial")} <= set(synced)


def test_the_camera_error_bars_say_the_share_of_frames_whose_pose_failed(tmp_path, monkeypatch):
    """consistency.png drew the camera errors (means over the frames whose pose was recovered)
    without the share that failed, which the report's table gives: each camera bar's label says it now."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from gen3c.evaluation.report import write_plots

    drawn, close = {}, plt.close
    ticks = lambda fig: {ax.get_title(): [t.get_text() for t in ax.get_xticklabels()] for ax in fig.axes}  # noqa: E731
    monkeypatch.setattr(plt, "close", lambda fig: drawn.update(ticks(fig)) or close(fig))
    write_plots(one_case_result(pose_failures=0.25, psnr_per_frame=[20.0] * 24), tmp_path)
    expected = ["ground_truth\n(25.0 % of poses failed)", "still\n(25.0 % of poses failed)"]
    assert drawn["Camera error (recovered poses)"] == drawn["Camera centre error (recovered poses)"] == expected
    assert drawn["Reprojection warp error"] == ["ground_truth", "still"]  # (no pose in it)


class _Waiting:
    """The still image, its first video made only once ``go`` is set (an eval still going)."""

    name = "waiting"

    def __init__(self):
        import threading

        from gen3c.evaluation.baselines import StillGenerator

        self.started, self.go, self.still = threading.Event(), threading.Event(), StillGenerator()

    def generate(self, cache, cameras, first_frame=None, *, buffers=None, progress=None, chunk=0):
        self.started.set()
        assert self.go.wait(60)
        return self.still.generate(cache, cameras, first_frame, buffers=buffers, progress=progress)


def _no_model_loads(*args, **kwargs):
    raise AssertionError("a model loaded")


def test_a_second_eval_into_a_folder_one_is_writing_is_refused_in_one_line(tmp_path, monkeypatch):
    """Two evals into one --output_folder at once both ran every case, each then replacing the
    other's report files (and partial reports) as it finished; now the second is refused in one
    line while the first runs (from Python, and from the CLI before any model loads), and the
    first writes its whole report. The folder's lock is the operating system's: a killed eval
    leaves none, and one after the first has ended runs."""
    import threading

    from gen3c.evaluation.run import make_config, run_eval

    config = make_config(scenes="room", presets="left", resolution="32x48", num_frames=3)
    waiting, outcome = _Waiting(), {}

    def first():
        outcome["result"] = run_eval(config, tmp_path, methods=["still"], generator=waiting, plots=False)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert waiting.started.wait(60)
        busy = f"--output_folder {str(tmp_path)!r} is being written by another `gen3c eval` or `gen3c train` still going: wait for it to end, or choose another --output_folder"
        with pytest.raises(Gen3cInputError) as refused:
            run_eval(config, tmp_path, methods=["still"], plots=False)
        assert str(refused.value) == busy
        monkeypatch.setattr("gen3c.pipelines.request.make_generator", _no_model_loads)
        res = invoke("eval", "--scenes", "room", "--presets", "left", "--resolution", "64x112", "--generator", "gen3c",
                     "--model", "tiny", "--output_folder", tmp_path, "--no_plots")  # fmt: skip
        assert res.exit_code == 2 and res.output.replace("\n", " ").strip() == f"error: {busy}", res.output
    finally:
        waiting.go.set()
        thread.join(60)
    result, paths = outcome["result"]
    assert [c.case.name for c in result.cases] == ["room-left"] and set(result.cases[0].scores) == {"ground_truth", "still", "waiting"}
    assert json.loads(paths["results"].read_text())["complete"] is True
    run_eval(config, tmp_path, methods=["still"], plots=False)  # the first has ended: the folder is free
