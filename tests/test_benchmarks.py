"""The benchmark scripts' plumbing: where they refuse to run, how they write results, and that
their CPU modes run to the end and compare with the right row. No timings are asserted."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch
from test_docs import benchmark_module

common = benchmark_module("bench_common")


def test_result_files_are_strict_json_written_atomically(tmp_path):
    path = tmp_path / "r.json"
    common.write_json(path, {"psnr": math.inf, "peak": math.nan, "rows": [(1.5, -math.inf)], "device": torch.device("cpu")})
    assert json.loads(path.read_text()) == {"psnr": "inf", "peak": None, "rows": [[1.5, "-inf"]], "device": "cpu"}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary left beside it


def test_result_paths_are_checked_before_the_measurement(tmp_path):
    common.check_writable(None, tmp_path / "new.json")
    with pytest.raises(SystemExit, match="does not exist"):
        common.check_writable(tmp_path / "missing" / "r.json")
    with pytest.raises(SystemExit, match="is a folder"):
        common.check_writable(tmp_path)


def test_benchmarks_refuse_in_one_line_where_they_cannot_run():
    assert common.device_or_exit("cpu") == torch.device("cpu")
    with pytest.raises(SystemExit, match="'gpu' is not a device"):
        common.device_or_exit("gpu")
    with pytest.raises(SystemExit, match="full-size measurement needs a CUDA GPU.*--tiny"):
        common.device_or_exit("cpu", full_size=True)
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA GPU"):
            common.device_or_exit("cuda")


def test_argument_mistakes_fail_while_parsing(capsys):
    """Cross-argument mistakes that used to surface after minutes of measuring (or never)."""
    cases = [
        ("bench_dit", ["--modes", "fp8", "--e2e_mode", "resident"], "not among --modes"),
        ("bench_video", ["--rows", "exact;fast", "--extrapolate", "exact compile=1"], "not a row of --rows"),
        ("bench_video", ["--rows", "exact compile=maybe"], "not a yes/no value"),
        ("bench_video", ["--rows", "exact fp8_weights=maybe"], "not a yes/no value"),
        ("bench_video", ["--rows", "exact;fast;exact"], "row 'exact' is given twice"),
        ("bench_speed", ["--rows", "stock,regional_flash5"], "unknown row 'regional_flash5'"),
        ("bench_speed", ["--rows", "stock,eager_sdpa,stock"], "row 'stock' is given twice"),
        ("bench_dit", ["--modes", "fp8,resident,fp8"], "mode 'fp8' is given twice"),
        ("bench_memory", ["--plans", "0,9"], "indices 0 …"),
        ("bench_memory", ["--steps", "1"], "at least 2"),
        ("bench_memory", ["--inputs", "--starts", "0,600"], "--starts 600 lies past the clip's 600 frames"),
        ("bench_memory", ["--inputs", "--starts", "0,-4"], "frame indices ≥ 0"),
        ("bench_load", ["--rows", "stored,cuda"], "unknown rows ['cuda']"),
        ("bench_attention", ["--iters", "0"], "--iters must be at least 1"),
        ("bench_mag_ratios", ["--steps", "18,x"], "--steps: '18,x' is not comma-separated step counts"),
    ]
    for script, argv, message in cases:
        with pytest.raises(SystemExit):
            benchmark_module(script).parse_args(argv)
        assert message in capsys.readouterr().err, (script, argv)
    assert benchmark_module("bench_dit").parse_args(["--modes", "fp8,resident"]).e2e_mode == "fp8"  # the first mode run
    assert benchmark_module("bench_video").parse_args(["--extrapolate", "none"]).extrapolate == set()


def test_bench_attention_table_fits_its_longest_label_and_leaves_untimed_rows_blank():
    table = benchmark_module("bench_attention").format_table(
        [("SDPA cuDNN", 0.07912, 657.4), ("gen3c cudnn_fp8 without key centring, rel. L2 error 6.57e-02", math.nan, math.nan)]
    )
    lines = table.strip().splitlines()
    assert len({len(line) for line in lines}) == 1  # every row as wide as the header: the columns line up
    assert lines[2].split("|")[2:4] == ["    79.12 ", "      657 "]
    assert lines[3].split("|")[2:4] == [" " * 10, " " * 10] and "nan" not in table


def test_bench_speed_psnr_is_against_the_stock_row_wherever_it_comes(tmp_path):
    speed = benchmark_module("bench_speed")
    speed.main(["--tiny", "--device", "cpu", "--iters", "1", "--rows", "eager_sdpa,stock", "--json", str(tmp_path / "s.json")])
    result = json.loads((tmp_path / "s.json").read_text())
    assert result["psnr_reference"] == "stock" and [r["row"] for r in result["rows"]] == ["eager_sdpa", "stock"]
    assert all(r["peak_gb"] is None and r["psnr_reference"] == "stock" for r in result["rows"])


@pytest.mark.slow
def test_bench_video_compares_rows_listed_before_the_reference(tmp_path):
    """The reference row runs first, so a row before it in --rows still gets its PSNR; the table
    keeps the order given, and the JSON and markdown files parse. A row with ``fp8_weights=1``
    stores the DiT's weights in float8 (``--fp8``): the same sampler, a slightly different video."""
    video = benchmark_module("bench_video")
    summary = video.main(["--tiny", "--device", "cpu", "--rows", "fastest;exact;exact fp8_weights=1", "--extrapolate", "none",
                          "--json", str(tmp_path / "v.json"), "--markdown", str(tmp_path / "v.md")])  # fmt: skip
    fastest, exact, fp8 = summary["rows"]
    assert (fastest["row"], exact["row"], fp8["row"]) == ("fastest", "exact", "exact fp8_weights=1")
    assert exact["psnr_vs_reference"] == math.inf and 20 < fastest["psnr_vs_reference"] < math.inf
    assert (fastest["forwards"], exact["forwards"], fp8["forwards"]) == (16, 70, 70)
    assert fp8["fp8_weights"] and not exact["fp8_weights"] and 20 < fp8["psnr_vs_reference"] < math.inf
    assert json.loads((tmp_path / "v.json").read_text())["rows"][1]["psnr_vs_reference"] == "inf"
    lines = (tmp_path / "v.md").read_text().splitlines()
    assert len(lines) == 5 and lines[2].startswith("| fastest |") and "| ∞ |" in lines[3]


def test_bench_cache_render_cpu_mode_renders_what_numpy_renders(capsys):
    """The CPU mode of the render benchmark runs through Cache3D's checked API (add_view, render with
    device and output_device), its torch render matches the plain numpy splat of the same points,
    and it runs the GPU's fixed-point sum on the CPU."""
    benchmark_module("bench_cache_render").main(["--device", "cpu", "--frames", "2", "--height", "48", "--width", "80", "--repeats", "1"])
    out = capsys.readouterr().out
    difference = float(out.split("max colour difference ")[1].split()[0])
    assert difference < 1e-3 and "torch (cpu), colour + mask" in out and "numpy (bincount)" in out
    # The GPU's fixed-point sum runs here too: its row, and two of its renders compared bit for bit.
    assert "torch (cpu), fixed-point sum (the GPU's), + depth" in out
    assert "cpu: two renders with the fixed-point sum are bit-identical; scatter_add_: max |Δ colour| " in out


def test_bench_cache_render_tells_a_pixel_one_render_fills_alone_apart_from_the_colours(capsys, monkeypatch):
    """A point within float32's rounding of the 1e-3 snap reaches one pixel more in numpy's float64
    splat than in torch's (at 704×1280 on the room scene: frame 8 of the default 24, pixel (698, 804),
    v = 697.0010165 in float64 and 697.0009766 in float32). Alone on that pixel it showed filled
    against empty, and the one number printed, the largest colour difference, read 1.56 where the
    colours agree to 1e-3. Such a pixel is now counted apart."""
    render = benchmark_module("bench_cache_render")
    splat = render.numpy_bilinear_splat

    def one_more_pixel(*args):
        color, mask = splat(*args)
        y, x = np.argwhere(~mask)[0]  # an empty pixel, filled as if a point reached it
        color[:, y, x], mask[y, x] = 1.0, True
        return color, mask

    monkeypatch.setattr(render, "numpy_bilinear_splat", one_more_pixel)
    render.main(["--device", "cpu", "--frames", "2", "--height", "48", "--width", "80", "--repeats", "1"])
    line = capsys.readouterr().out.split("numpy vs torch: ")[1].splitlines()[0]
    assert float(line.split("max colour difference ")[1].split()[0]) < 1e-3, line
    assert line.endswith("where both have a point; 2 of 7,680 pixels filled by one only"), line


@pytest.mark.slow
def test_bench_dit_tiny_runs_every_memory_mode():
    """The tiny CPU mode of the generator benchmark builds and steps every memory mode (an API change
    that breaks one shows as its row's error, which the table would print instead of a time)."""
    results = benchmark_module("bench_dit").main(["--tiny", "--steps", "2", "--e2e_mode", "none"])
    assert set(results["modes"]) >= {"resident", "group_offload"}
    assert not [mode for mode, row in results["modes"].items() if "error" in row], results["modes"]
    assert all(row["step_s"] > 0 for row in results["modes"].values())


def test_bench_memory_inputs_baseline_readers_read_what_the_streaming_readers_read(tmp_path):
    """--inputs times each streaming reader against the reader before it, in the same run: both
    baselines must still run on today's gen3c (the ViPE one imported a helper since removed and
    every run printed it as failed) and read the same stack, bit for bit."""
    pytest.importorskip("OpenEXR")  # the synthetic clip's depth is written as EXR (gen3c[exr])
    memory = benchmark_module("bench_memory")
    memory.write_synthetic_inputs(tmp_path, 12, (48, 80))
    for layout in ("vipe", "sample"):
        for start in (0, 5):
            whole, stream = (memory.measure_input_row(layout, row, tmp_path, (32, 48), start, 4) for row in ("whole", "stream"))
            assert whole["frames"] == stream["frames"] == 4 and whole["hash"] == stream["hash"], (layout, start)


def test_bench_memory_inputs_table_gives_no_ratio_against_a_failed_baseline():
    """A streaming row whose baseline failed was its own baseline: "× base 1.00" beside a
    reader that did not run. Its ratios and "same" are now "—"; with a baseline they are its."""
    memory = benchmark_module("bench_memory")
    row = {"layout": "vipe", "start": 0, "frames": 4, "peak_rss_gb": 1.0, "result_gb": 0.1, "hash": "h"}
    rows = [{"layout": "vipe", "row": "whole", "start": 0, "failed": "exit 1: ['ImportError']"},
            {**row, "row": "stream", "seconds": 2.0, "read_gb": 0.5},
            {**row, "row": "whole", "start": 30, "seconds": 4.0, "read_gb": 2.0},
            {**row, "row": "stream", "start": 30, "seconds": 2.0, "read_gb": 0.5}]  # fmt: skip
    lines = memory.input_table(rows)[2:]
    assert "failed (exit 1" in lines[0]
    assert lines[1].split()[-8:] == ["0", "2.0", "—", "1.00", "0.50", "—", "0.10", "—"]
    assert lines[3].split()[-8:] == ["30", "2.0", "0.50", "1.00", "0.50", "0.25", "0.10", "yes"]


def test_bench_cache_render_refuses_bad_arguments_in_one_line(capsys):
    """Mistakes that ended in tracebacks (a TypeError after the renders for --repeats 0, gen3c's
    errors for --frames 0 or an unknown --scene) or in a line that did not name --device."""
    render = benchmark_module("bench_cache_render")
    for argv, message in [(["--repeats", "0"], "--repeats must be at least 1"), (["--frames", "0"], "--frames must be at least 1"),
                          (["--numpy-frames", "0"], "--numpy-frames must be at least 1"), (["--height", "-8"], "--height must be at least 1"),
                          (["--scene", "bogus"], "invalid choice: 'bogus'")]:  # fmt: skip
        with pytest.raises(SystemExit):
            render.parse_args(argv)
        assert message in capsys.readouterr().err, argv
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="--device cuda: this machine has no CUDA GPU; --device cpu"):
            render.main(["--device", "cuda"])


def test_a_missing_extra_is_one_line_naming_its_pip_install(monkeypatch, capsys):
    """diffusers (or ray, flash-attn-4, …) not installed: the script ends with gen3c's one-line
    missing-package error, exit 2, instead of a ModuleNotFoundError traceback."""
    monkeypatch.setitem(sys.modules, "diffusers", None)  # as if not installed
    monkeypatch.setattr(sys, "argv", ["bench_speed.py", "--tiny", "--iters", "1"])
    with pytest.raises(SystemExit) as exit:
        common.run(benchmark_module("bench_speed").main)
    assert exit.value.code == 2
    assert capsys.readouterr().err == "error: benchmarks/bench_speed.py needs diffusers (diffusers is missing): pip install 'gen3c[diffusion]'\n"


def test_resume_check_empties_only_its_own_scratch_folder(tmp_path, capsys):
    """--out is "emptied first": a folder holding anything but the script's own runs (a typo'd
    --out ~/videos) is refused in one line, its files left alone, before any run starts."""
    check = benchmark_module("resume_check")
    (tmp_path / "mine.mp4").write_bytes(b"keep")
    with pytest.raises(SystemExit, match=r"--out .* holds mine.mp4, which this script did not write: pass an empty or new folder"):
        check.main(["--out", str(tmp_path), "--", "--model", "tiny"])
    assert (tmp_path / "mine.mp4").read_bytes() == b"keep"
    with pytest.raises(SystemExit):  # --help says what it measures (it stopped at "and compare the")
        check.parse_args(["--help"])
    assert "compare the\nresult with an uninterrupted run" in capsys.readouterr().out


def test_bench_distill_names_its_own_flag_for_a_wrong_frame_count():
    """Each video is one chunk: --frames other than the models' chunk is refused naming --frames
    (it failed after rendering the cases with gen3c generate's "pass --num_video_frames 17")."""
    with pytest.raises(SystemExit, match=r"^--frames 9: tiny makes videos of one 17-frame chunk: pass --frames 17 or leave it out$"):
        benchmark_module("bench_distill").main(["--frames", "9", "--students", "", "--cases", "1", "--repeats", "1"])


def test_bench_memory_inputs_reuses_only_a_finished_clip_of_the_size_asked(tmp_path, capsys):
    """--input_dir keeps the synthetic clip for later runs. A folder whose writing was cut short
    (no marker) is written again, and a kept clip of another length or size is refused: it was
    read while the table named the size asked for."""
    pytest.importorskip("OpenEXR")  # the synthetic clip's depth is written as EXR (gen3c[exr])
    memory = benchmark_module("bench_memory")
    (tmp_path / "sample").mkdir()
    (tmp_path / "sample" / "rgb.mp4").write_bytes(b"cut short")  # what the reuse test looked at
    memory.prepare_inputs(tmp_path, 4, "48x80")
    assert "writing a synthetic clip of 4 frames of 48x80" in capsys.readouterr().out
    assert (tmp_path / "sample" / "rgb.mp4").read_bytes() != b"cut short"
    memory.prepare_inputs(tmp_path, 4, "48x80")
    assert capsys.readouterr().out == ""  # reused
    with pytest.raises(SystemExit, match=r"--input_dir .* holds a clip of 4 frames of 48x80, not 6 frames of 48x80: pass --input_frames 4 --input_size 48x80"):
        memory.prepare_inputs(tmp_path, 6, "48x80")


def test_bench_context_parallel_refuses_to_mix_setups_in_one_results_file(tmp_path):
    """Each launch appends a row to --results and the table divides by the 1-GPU row: a launch
    whose setup differs from the rows there (the --tiny smoke test into the 7B file, another
    backend) is refused before it measures (it mixed them in the speed-ups, or failed comparing
    its output with the other setup's 1-GPU output after the whole measurement)."""
    cp = benchmark_module("bench_context_parallel")
    results = tmp_path / "r.jsonl"
    row = {"gpus": 1, "s_per_step": 1.0, "forwards_per_step": 2, "config": "7B", "attention_backend": "native", "compile": False}
    results.write_text(json.dumps(row) + "\n")
    cp.check_same_setup(cp.parse_args(["--results", str(results)]))
    with pytest.raises(SystemExit, match=r"r.jsonl holds rows of config 7B, attention native, 2 forwards per step; this launch is config tiny, attention native, 2 forwards per step: pass another --results"):
        cp.check_same_setup(cp.parse_args(["--results", str(results), "--tiny"]))
    with pytest.raises(SystemExit, match="this launch is config 7B, attention flash, 2 forwards per step, compiled"):
        cp.check_same_setup(cp.parse_args(["--results", str(results), "--attention_backend", "flash", "--compile"]))


def test_bench_load_does_not_measure_a_kept_checkpoint_of_the_other_size(tmp_path):
    """--build DIR keeps its checkpoint for later runs; a run asking for the other configuration
    (the tiny smoke test's folder without --tiny) is refused instead of timing the wrong model
    under the name of the one asked for."""
    (tmp_path / "transformer").mkdir()
    (tmp_path / "model_index.json").write_text("{}")
    (tmp_path / "transformer" / "config.json").write_text(json.dumps({"num_layers": 2, "num_attention_heads": 2}))
    with pytest.raises(SystemExit, match=r"--build .* holds the tiny configuration's checkpoint: pass --tiny, or another folder to write GEN3C-7B in"):
        benchmark_module("bench_load").main(["--build", str(tmp_path)])
