"""`gen3c eval --resume`: a stopped run's finished cases reused when everything that makes their numbers is the same."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace

import pytest
import torch
from typer.testing import CliRunner

from gen3c.cli import app
from gen3c.errors import Gen3cInputError
from gen3c.evaluation.resume import weights_identity
from gen3c.evaluation.run import make_config, run_eval
from gen3c.pipelines.preview import PreviewGenerator

CONFIG = dict(scenes="room,corridor", presets="left,right", resolution="32x48", num_frames=3)


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _interrupt_after(cases, rows):
    """A progress factory whose benchmark bar raises Ctrl-C once ``cases`` cases are done (ground truth + ``rows`` each)."""

    def factory(stage, total):
        ticks = []

        def tick(n=1):
            ticks.append(n)
            if stage.startswith("Benchmark") and sum(ticks) == cases * (rows + 1) + 1:  # in the next case, after its ground truth
                raise KeyboardInterrupt

        return tick

    return factory


def _stopped_run(folder, config, **kwargs):
    with pytest.raises(KeyboardInterrupt, match="the 2 finished cases of 4 are kept"):
        rows = len(kwargs["methods"]) + ("generator" in kwargs)
        run_eval(config, folder, plots=False, progress=_interrupt_after(2, rows), **kwargs)


def test_a_resumed_eval_equals_an_uninterrupted_one_and_runs_only_the_cases_left(tmp_path, monkeypatch):
    """Stopped after 2 of 4 cases, then resumed: the report's per-case scores and contact sheets are
    the uninterrupted run's to the last digit (the preview is deterministic), the generator made
    only the 2 cases left, the report says which cases were reused, and their times stay out of the
    speed means (this run's first made case is its warm-up)."""
    config = make_config(**CONFIG)
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run_eval(config, whole, methods=["still"], generator=PreviewGenerator(), plots=False)
    _stopped_run(resumed, config, methods=["still"], generator=PreviewGenerator())
    partial = json.loads((resumed / "partial" / "results.json").read_text())
    assert partial["fingerprint"]["cpu_threads"] == torch.get_num_threads() and partial["fingerprint"]["rows"]["preview"]["attributes"] == {
        "margin": 0.5, "reach": PreviewGenerator().reach
    }  # fmt: skip

    made = []
    generate = PreviewGenerator.generate
    monkeypatch.setattr(PreviewGenerator, "generate", lambda self, *a, **k: made.append(1) or generate(self, *a, **k))
    result, _ = run_eval(config, resumed, methods=["still"], generator=PreviewGenerator(), plots=False, resume=True)
    assert len(made) == 2  # cases 3 and 4, one video each
    assert [c.reused for c in result.cases] == [True, True, False, False]
    a, b = (json.loads((f / "results.json").read_text()) for f in (whole, resumed))
    assert [c["scores"] for c in b["cases"]] == [c["scores"] for c in a["cases"]]
    assert b["reused"] == ["room-left", "room-right"] and [c["reused"] for c in b["cases"]] == [True, True, False, False]
    assert b["fingerprint"] == a["fingerprint"] == partial["fingerprint"] and b["complete"] is True
    assert [c["seconds"] for c in b["cases"][:2]] == [c["seconds"] for c in partial["cases"]]  # the earlier run's, as they were
    for row, scores in b["summary"].items():
        assert {k: v for k, v in scores.items() if "seconds" not in k} == {k: v for k, v in a["summary"][row].items() if "seconds" not in k}
    # Speed: the first case this run made (corridor-left) is its warm-up, the later one its s/video.
    assert b["summary"]["preview"]["first_seconds"] == b["cases"][2]["seconds"]["preview"]
    assert b["summary"]["preview"]["seconds"] == b["cases"][3]["seconds"]["preview"]
    files_a, files_b = _files(whole), _files(resumed)
    assert sorted(files_b) == sorted(files_a)  # the partial report is gone
    assert all(files_b[k] == files_a[k] for k in files_a if k.startswith("contact_sheets/"))
    report = files_b["report.md"].decode()
    assert "**Resumed** (`--resume`): 2 cases reused from the partial report of an earlier run" in report
    assert ": room-left, room-right." in report and "the 2 cases reused from the partial run (`--resume`) kept that run's times" in report
    assert report.index("contact_sheets/room-left.png") < report.index("contact_sheets/corridor-left.png")  # grid order


def test_a_resumed_run_stopped_again_keeps_the_reused_cases_too(tmp_path):
    config = make_config(**CONFIG)
    _stopped_run(tmp_path, config, methods=["still", "cache"])
    with pytest.raises(KeyboardInterrupt, match="the 3 finished cases of 4 are kept"):
        run_eval(config, tmp_path, methods=["still", "cache"], plots=False, progress=_interrupt_after(3, 2), resume=True)
    partial = json.loads((tmp_path / "partial" / "results.json").read_text())
    assert partial["stopped"]["finished"] == ["room-left", "room-right", "corridor-left"] and partial["reused"] == ["room-left", "room-right"]
    assert sorted(p.name for p in (tmp_path / "partial" / "contact_sheets").iterdir()) == ["corridor-left.png", "room-left.png", "room-right.png"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(config=dict(contact_frames=2)), "--resume: the benchmark's settings differ from the partial run's (contact_frames 5 → 2): "),
        (dict(methods=["still", "cache"]), "--resume: the rows differ from the partial run's (still, preview → still, cache, preview)"),
        (dict(generator=PreviewGenerator(margin=0.25)), "--resume: the preview row's generator differs from the partial run's (margin 0.5 → 0.25)"),
        (dict(threads=True), "--resume: the number of CPU threads differs from the partial run's ("),
        # before: a partial run of another machine was resumed, its scores and times mixed with this one's
        (
            dict(cpu="Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz (AVX2)"),
            "--resume: the CPU differs from the partial run's (",
        ),
    ],
)
def test_resume_refuses_a_partial_run_made_otherwise_naming_what_differs(
    tmp_path, monkeypatch, change, message
):
    from gen3c.evaluation import resume

    config = make_config(**CONFIG)
    _stopped_run(tmp_path, config, methods=["still"], generator=PreviewGenerator())
    before = _files(tmp_path)
    if "cpu" in change:  # the partial run's CPU is this machine's: this run's another
        message = f"{message}{resume.cpu_kind()!r} → {change['cpu']!r}): resume on the partial run's machine"
        monkeypatch.setattr(resume, "cpu_kind", lambda: change["cpu"])
    threads = torch.get_num_threads()
    if change.get("threads"):
        torch.set_num_threads(threads + 1)
    try:
        with pytest.raises(Gen3cInputError) as refused:
            run_eval(replace(config, **change.get("config", {})), tmp_path, methods=change.get("methods", ["still"]),
                     generator=change.get("generator", PreviewGenerator()), plots=False, resume=True)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    assert str(refused.value).startswith(message) and str(refused.value).endswith(", or without --resume to run every case again")
    assert "\n" not in str(refused.value) and _files(tmp_path) == before  # refused before any work


def test_weights_are_told_apart_by_their_checksums_or_their_files(tmp_path):
    """A converted checkpoint (checksums.json) counts by that file's sha256, wherever it lies; a folder
    without one by its weight files' names, sizes and times: retrained in place, it differs."""
    converted = tmp_path / "converted"
    (converted / "transformer").mkdir(parents=True)
    (converted / "checksums.json").write_text('{"algorithm": "sha256", "files": {"transformer/w.safetensors": "aa"}}')
    first = weights_identity(str(converted))
    assert first.startswith("checksums.json sha256 ") and weights_identity(str(converted.rename(tmp_path / "moved"))) == first
    (tmp_path / "moved" / "checksums.json").write_text('{"algorithm": "sha256", "files": {"transformer/w.safetensors": "bb"}}')
    assert weights_identity(str(tmp_path / "moved")) != first
    trained = tmp_path / "trained"
    (trained / "transformer").mkdir(parents=True)
    weights = trained / "transformer" / "w.safetensors"
    weights.write_bytes(b"1234")
    os.utime(weights, ns=(10**18, 10**18))
    before = weights_identity(str(trained))
    assert before.startswith("files sha256 ") and weights_identity(str(trained)) == before
    weights.write_bytes(b"5678")  # retrained: same size, a new time
    assert weights_identity(str(trained)) != before
    assert weights_identity("nvidia/Gen3C-Cosmos-7B") == "name nvidia/Gen3C-Cosmos-7B" and weights_identity(None) is None


def test_resume_refuses_a_partial_report_without_a_fingerprint(tmp_path):
    config = make_config(**CONFIG)
    _stopped_run(tmp_path, config, methods=["still"])
    path = tmp_path / "partial" / "results.json"
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "fingerprint"}))
    with pytest.raises(Gen3cInputError, match=r"was written by a gen3c that did not record what makes its numbers: run without --resume"):
        run_eval(config, tmp_path, methods=["still"], plots=False, resume=True)


CLI = ("eval", "--scenes", "room,corridor", "--presets", "left,right", "--resolution", "32x48", "--num_video_frames", 3, "--methods", "still", "--no_plots")


def test_the_cli_resumes_and_refuses_in_one_line(tmp_path, monkeypatch):
    runner = CliRunner()
    _stopped_run(tmp_path, make_config(**CONFIG), methods=["still"])
    # Other settings than the partial run's are refused before a model loads (minutes for GEN3C-7B).
    from gen3c.pipelines import request

    monkeypatch.setattr(request, "make_generator", lambda *a, **k: pytest.fail("the model loaded"))
    model = runner.invoke(app, [str(a) for a in (*CLI[:-4], 17, "--methods", "still", "--no_plots", "--generator", "gen3c", "--model", "tiny",
                                                 "--output_folder", tmp_path, "--resume")])  # fmt: skip
    assert model.exit_code == 2, model.output
    assert "--resume: the benchmark's settings differ from the partial run's (num_frames 3 → 17)" in " ".join(model.output.split())
    # … and presets that leave out a finished case (room-right)
    fewer = runner.invoke(app, [str(a) for a in (*CLI[:3], "--presets", "left", *CLI[5:], "--output_folder", tmp_path, "--resume")])
    assert fewer.exit_code == 2 and "leave out (room-right): add their scenes and presets" in " ".join(fewer.output.split()), fewer.output
    refused = runner.invoke(app, [str(a) for a in (*CLI, "--contact_frames", 3, "--output_folder", tmp_path, "--resume")])
    assert refused.exit_code == 2, refused.output
    assert "--resume: the benchmark's settings differ from the partial run's (contact_frames 5 → 3)" in " ".join(refused.output.split())
    done = runner.invoke(app, [str(a) for a in (*CLI, "--output_folder", tmp_path, "--resume")])
    assert done.exit_code == 0, done.output
    # The time is this run's, said before the reused cases (not "reused from the partial run in 3 s").
    assert re.search(r"\(4 cases in \d+ s, 2 of them reused from the partial run\)", " ".join(done.output.split()))
    assert not (tmp_path / "partial").exists()
    # No partial report: said, and every case runs.
    fresh = runner.invoke(app, [str(a) for a in (*CLI, "--output_folder", tmp_path / "new", "--resume")])
    assert fresh.exit_code == 0, fresh.output
    said = " ".join(fresh.output.split())
    assert "--resume: no partial report in" in said and "(4 cases in " in said


def test_a_models_changed_weights_or_steps_are_named_once():
    from gen3c.evaluation.resume import difference

    row = {"generator": "Gen3cGenerator", "attributes": {"num_steps": 2}, "settings": {"num_steps": 2}, "weights": "checksums.json sha256 aa"}
    stored = {"rows": {"still": {"generator": "Still"}, "gen3c": row}, "cpu_threads": 2}
    assert difference(stored, stored) is None
    weights = {"rows": {**stored["rows"], "gen3c": {**row, "weights": "files sha256 bb"}}}
    assert difference(stored, weights) == ("the gen3c row's model weights differ from the partial run's (checksums.json sha256 aa → "
                                           "files sha256 bb): run with the partial run's model")  # fmt: skip
    steps = {"rows": {**stored["rows"], "gen3c": {**row, "attributes": {"num_steps": 3}, "settings": {"num_steps": 3}}}}
    assert difference(stored, steps) == "the gen3c row's generator differs from the partial run's (num_steps 2 → 3): run with the partial run's settings"
    assert difference(stored, {"cpu_threads": 1}) == (
        "the number of CPU threads differs from the partial run's (2 → 1): set the partial run's thread count (OMP_NUM_THREADS)"
    )


def test_a_generators_numpy_setting_counts_in_its_row(tmp_path):
    """A generator attribute set to a numpy number (a notebook's np.float32 margin) is part of the
    row's identity, as the Python number: changing it is named on resume, not silently reused."""
    import numpy as np

    from gen3c.evaluation.resume import difference, row_identity
    from gen3c.evaluation.suite import Method

    def identity(margin):
        generator = PreviewGenerator()
        generator.margin = margin
        return json.loads(json.dumps(row_identity(Method("preview", "", generator))))

    stored = {"rows": {"preview": identity(np.float32(0.25))}}
    assert stored["rows"]["preview"]["attributes"]["margin"] == 0.25
    assert identity(np.int64(0))["attributes"]["margin"] == 0 and identity(np.bool_(True))["attributes"]["margin"] is True
    assert difference(stored, {"rows": {"preview": identity(np.float32(0.25))}}) is None
    assert difference(stored, {"rows": {"preview": identity(np.float32(0.5))}}) == (
        "the preview row's generator differs from the partial run's (margin 0.25 → 0.5): run with the partial run's settings"
    )


def test_a_run_stopped_while_its_report_was_written_resumes_without_making_a_video(tmp_path, monkeypatch):
    """Every case finished before the stop: the resumed run makes no video, and its report says it has no time of its own."""
    from gen3c.evaluation import run
    from gen3c.evaluation.baselines import StillGenerator

    config = make_config(scenes="room", presets="left,right", resolution="32x48", num_frames=3)
    real_write_report = run.write_report

    def interrupted(result, folder, **kwargs):
        if result.stopped is None:
            raise KeyboardInterrupt
        return real_write_report(result, folder, **kwargs)

    monkeypatch.setattr(run, "write_report", interrupted)
    with pytest.raises(KeyboardInterrupt, match="the 2 finished cases of 2 are kept"):
        run_eval(config, tmp_path, methods=["still"], plots=False)
    monkeypatch.setattr(run, "write_report", real_write_report)
    monkeypatch.setattr(StillGenerator, "generate", lambda *a, **k: pytest.fail("a video was made"))
    result, paths = run_eval(config, tmp_path, methods=["still"], plots=False, resume=True)
    assert [c.reused for c in result.cases] == [True, True] and not (tmp_path / "partial").exists()
    assert "this run made no case, so neither" in paths["report"].read_text()


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        (lambda scores: scores.pop("still"), "it has no scores of the still row"),
        (lambda scores: scores.update(still=3), "the still row's scores are no mapping"),
        (lambda scores: scores["still"].update(psnr="abc"), "the still row's psnr is no number"),
        (lambda scores: scores["still"].update(psnr_per_frame=[1.0]), "the still row's psnr_per_frame holds 1 values, not 2 (frames 1 … T−1)"),
        # a score gone would read as one that does not exist and leave the case out of that mean unseen
        (lambda scores: scores["still"].pop("psnr"), "the still row has no psnr"),
        (lambda scores: scores["ground_truth"].pop("rotation_error"), "the ground_truth row has no rotation_error"),
    ],
)
def test_resume_refuses_a_hand_edited_case_in_one_line_before_any_work(tmp_path, edit, what):
    """A partial report edited by hand (a row's scores gone or no numbers) is refused naming the case
    and what is wrong, not a KeyError or a report that fails to draw after the other cases ran."""
    config = make_config(**CONFIG)
    _stopped_run(tmp_path, config, methods=["still"])
    path = tmp_path / "partial" / "results.json"
    data = json.loads(path.read_text())
    edit(data["cases"][1]["scores"])
    path.write_text(json.dumps(data))
    before = _files(tmp_path)
    with pytest.raises(Gen3cInputError) as refused:
        run_eval(config, tmp_path, methods=["still"], plots=False, resume=True)
    assert str(refused.value) == (f"--resume: case room-right of {str(path)!r} cannot be read ({what}): "
                                  "delete it, or run without --resume to run every case again")  # fmt: skip
    assert _files(tmp_path) == before


@pytest.mark.parametrize(
    ("seconds", "what"),
    [("fast", "its seconds are no mapping"), ({"still": "fast"}, "the still row's seconds 'fast' is no time"), ({}, "the still row's seconds None is no time")],
)
def test_resume_refuses_a_case_whose_times_are_no_numbers(tmp_path, seconds, what):
    """A reused case's times go back into results.json as they are: a hand-edited one that is no number is
    refused naming the case, not written on as a string where a reader expects seconds."""
    config = make_config(**CONFIG)
    _stopped_run(tmp_path, config, methods=["still"])
    path = tmp_path / "partial" / "results.json"
    data = json.loads(path.read_text())
    data["cases"][0]["seconds"] = seconds
    path.write_text(json.dumps(data))
    with pytest.raises(Gen3cInputError) as refused:
        run_eval(config, tmp_path, methods=["still"], plots=False, resume=True)
    assert str(refused.value) == (f"--resume: case room-left of {str(path)!r} cannot be read ({what}): "
                                  "delete it, or run without --resume to run every case again")  # fmt: skip


def test_a_resumed_run_stopped_before_a_reused_case_keeps_it(tmp_path):
    """A case runs again (its sheet deleted) and the resumed run stops in it: the later cases the
    partial report held are kept, not dropped with the cases that had yet to come."""
    config = make_config(**CONFIG)
    with pytest.raises(KeyboardInterrupt, match="the 3 finished cases of 4 are kept"):
        run_eval(config, tmp_path, methods=["still"], plots=False, progress=_interrupt_after(3, 1))
    (tmp_path / "partial" / "contact_sheets" / "room-right.png").unlink()
    with pytest.raises(KeyboardInterrupt, match="the 2 finished cases of 4 are kept"), pytest.warns(UserWarning, match=r"room-right \(its contact sheet is gone\)"):
        run_eval(config, tmp_path, methods=["still"], plots=False, progress=_interrupt_after(1, 1), resume=True)
    partial = json.loads((tmp_path / "partial" / "results.json").read_text())
    assert partial["stopped"]["finished"] == ["room-left", "corridor-left"] and partial["stopped"]["interrupted"] == ["room-right"]
    assert partial["reused"] == ["room-left", "corridor-left"] and partial["stopped"]["not_run"] == ["corridor-right"]
    assert sorted(p.name for p in (tmp_path / "partial" / "contact_sheets").iterdir()) == ["corridor-left.png", "room-left.png"]
    result, _ = run_eval(config, tmp_path, methods=["still"], plots=False, resume=True)
    assert [c.reused for c in result.cases] == [True, False, True, False]


class _FarPreview(PreviewGenerator):
    """A generator with a plain attribute strict JSON has no number for."""

    name = "far_preview"

    def __init__(self):
        super().__init__()
        self.far = float("inf")


def test_a_generator_with_an_infinite_attribute_resumes(tmp_path):
    """results.json writes ∞ as "Infinity": the fingerprint compared on resume is the one written, so
    the same generator is not refused as differing from itself (inf → 'Infinity')."""
    config = make_config(**CONFIG)
    _stopped_run(tmp_path, config, methods=["still"], generator=_FarPreview())
    result, _ = run_eval(config, tmp_path, methods=["still"], generator=_FarPreview(), plots=False, resume=True)
    assert [c.reused for c in result.cases] == [True, True, False, False]


def test_resume_takes_the_same_scenes_presets_and_rows_in_another_order(tmp_path):
    """A case's seed is its place in the full grid, so reordered --scenes, --presets or --methods make
    the same cases: they are reused, and the report follows the new command's order, its scores
    those of an uninterrupted run in that order."""
    _stopped_run(tmp_path / "resumed", make_config(**CONFIG), methods=["still", "cache"])
    reordered = make_config(**{**CONFIG, "scenes": "corridor,room", "presets": "right,left"})
    whole, _ = run_eval(reordered, tmp_path / "whole", methods=["cache", "still"], plots=False)
    result, _ = run_eval(reordered, tmp_path / "resumed", methods=["cache", "still"], plots=False, resume=True)
    assert [c.case.name for c in result.cases] == ["corridor-right", "corridor-left", "room-right", "room-left"]
    assert [c.reused for c in result.cases] == [False, False, True, True]
    a, b = (json.loads((tmp_path / f / "results.json").read_text()) for f in ("whole", "resumed"))
    assert [list(c["scores"]) for c in b["cases"]] == [["ground_truth", "cache", "still"]] * 4
    assert [c["scores"] for c in b["cases"]] == [c["scores"] for c in a["cases"]] and list(b["methods"]) == ["cache", "still"]
    assert b["fingerprint"] == a["fingerprint"] and not (tmp_path / "resumed" / "partial").exists()


def test_resume_with_more_scenes_and_presets_reuses_the_cases_they_share(tmp_path):
    """--resume with other --scenes/--presets was refused as "the benchmark's settings differ",
    though a case's seed is its place in the full grid: more scenes and presets reuse the finished
    cases and run the rest, with the scores of an uninterrupted run of the larger grid; leaving out
    one that holds a finished case is refused (the rewritten partial report would lose it)."""
    _stopped_run(tmp_path / "resumed", make_config(**CONFIG), methods=["still"])  # room-left, room-right finished
    more = make_config(**{**CONFIG, "scenes": "room,corridor,street", "presets": "left,right,up"})
    whole, _ = run_eval(more, tmp_path / "whole", methods=["still"], plots=False)
    result, _ = run_eval(more, tmp_path / "resumed", methods=["still"], plots=False, resume=True)
    assert [c.case.name for c in result.cases if c.reused] == ["room-left", "room-right"] and len(result.cases) == 9
    a, b = (json.loads((tmp_path / f / "results.json").read_text()) for f in ("whole", "resumed"))
    assert [c["scores"] for c in b["cases"]] == [c["scores"] for c in a["cases"]]

    _stopped_run(tmp_path / "again", make_config(**CONFIG), methods=["still"])
    path = tmp_path / "again" / "partial" / "results.json"
    with pytest.raises(Gen3cInputError, match=re.escape(
        f"--resume: {str(path)!r} holds finished cases this run's --scenes and --presets leave out (room-right): add their "
        "scenes and presets, or run without --resume to run every case again"
    )):  # fmt: skip
        run_eval(make_config(**{**CONFIG, "presets": "left"}), tmp_path / "again", methods=["still"], plots=False, resume=True)
    # corridor holds no finished case: left out, the finished room cases are reused
    result, _ = run_eval(make_config(**{**CONFIG, "scenes": "room"}), tmp_path / "again", methods=["still"], plots=False, resume=True)
    assert [(c.case.name, c.reused) for c in result.cases] == [("room-left", True), ("room-right", True)]


def test_run_benchmark_records_the_fingerprint_write_report_writes(tmp_path):
    """run_benchmark + write_report from Python (without run_eval) wrote a results.json with no
    fingerprint, though every results.json is documented to record it."""
    from gen3c.evaluation.report import write_report
    from gen3c.evaluation.resume import fingerprint
    from gen3c.evaluation.suite import run_benchmark, select_methods

    config, rows = make_config(**{**CONFIG, "scenes": "room", "presets": "left"}), select_methods(["still"])
    result = run_benchmark(config, rows, device="cpu")
    write_report(result, tmp_path, plots=False)
    stored = json.loads((tmp_path / "results.json").read_text())["fingerprint"]
    assert stored == result.fingerprint == fingerprint(config, rows, "cpu") and stored["device"] == "cpu"
    assert stored["rows"]["still"]["generator"] == "gen3c.evaluation.baselines.StillGenerator"


def test_resume_names_the_partial_cases_it_does_not_reuse(tmp_path):
    """A case of the partial report that is no case of the grid or has another seed (hand-edited), or
    whose contact sheet is gone, ran again without a word; one note names each and why."""
    config = make_config(**CONFIG)
    _stopped_run(tmp_path, config, methods=["still"])
    path = tmp_path / "partial" / "results.json"
    data = json.loads(path.read_text())
    data["cases"][0]["seed"] = 7
    data["cases"].append({**data["cases"][1], "scene": "attic"})
    path.write_text(json.dumps(data))
    (tmp_path / "partial" / "contact_sheets" / "room-right.png").unlink()
    with pytest.warns(UserWarning) as said:
        result, _ = run_eval(config, tmp_path, methods=["still"], plots=False, resume=True)
    assert [str(w.message) for w in said if "not reused" in str(w.message)] == [
        f"--resume: 3 cases of {str(path)!r} not reused, run again: room-left (seed 7, not its held-out 1000), "
        "room-right (its contact sheet is gone), attic-right (no case of the benchmark's grid)"
    ]
    assert not any(c.reused for c in result.cases)


def test_the_fingerprint_names_the_cpu_by_its_model_and_torchs_vector_instructions(monkeypatch):
    """The CPU moves a case's numbers (docs/eval.md: the same code on another machine moved the
    camera columns) and makes its times; before, a run recorded only "cpu" or the GPU's name."""
    import io
    import sys

    from gen3c import environment
    from gen3c.evaluation.resume import cpu_kind, fingerprint

    made = fingerprint(make_config(**CONFIG), device="cpu")
    capability = torch.backends.cpu.get_cpu_capability()
    assert made["cpu"] == cpu_kind() == f"{environment.cpu_model()} ({capability})"
    assert made["device"] == "cpu" and list(made)[-2:] == ["cpu", "cpu_threads"]
    if sys.platform.startswith("linux") and os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            fields = [line.split(":", 1) for line in cpuinfo if ":" in line]
        names = [value.strip() for key, value in fields if key.strip() == "model name"]
        if names:
            assert environment.cpu_model() == " ".join(names[0].split())
    monkeypatch.setattr(sys, "platform", "linux")
    x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)  Gold 6248 CPU @ 2.50GHz\n\nprocessor\t: 1\nmodel name\t: other\n"
    arm = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n"
    for text, expected in [
        (x86, "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz"),
        (arm, f"{environment.platform.machine()} implementer 0x41 part 0xd0c"),
    ]:
        monkeypatch.setattr(environment, "open", lambda *a, text=text, **k: io.StringIO(text), raising=False)
        assert environment.cpu_model() == expected


class _Killed(BaseException):
    """Stands for kill -9 (the out-of-memory killer, a lost machine): no handler of the run's runs."""


def test_a_run_killed_outright_keeps_its_finished_cases_for_resume(tmp_path, monkeypatch):
    """A run killed with no chance to say why (kill -9) while making its third case: its two
    finished cases were kept in partial/ as each ended, so --resume reuses them and runs only the
    two left (before: the partial report was written only by a run that could still handle its
    stop, so a killed run left nothing and --resume ran every case again)."""
    config = make_config(**CONFIG)
    made = []
    generate = PreviewGenerator.generate

    def killed_in_case_3(self, *args, **kwargs):
        made.append(1)
        if len(made) == 3:
            raise _Killed
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(PreviewGenerator, "generate", killed_in_case_3)
    with pytest.raises(_Killed):
        run_eval(config, tmp_path, methods=["still"], generator=PreviewGenerator(), plots=False)
    partial = json.loads((tmp_path / "partial" / "results.json").read_text())
    assert partial["complete"] is False and partial["stopped"]["finished"] == ["room-left", "room-right"]
    assert partial["stopped"]["interrupted"] == ["corridor-left"] and partial["stopped"]["error"].startswith("killed outright")
    assert sorted(p.name for p in (tmp_path / "partial" / "contact_sheets").iterdir()) == ["room-left.png", "room-right.png"]
    assert "**Incomplete**: the benchmark was killed outright" in (tmp_path / "partial" / "report.md").read_text()

    made.clear()
    monkeypatch.setattr(PreviewGenerator, "generate", lambda self, *a, **k: made.append(1) or generate(self, *a, **k))
    result, _ = run_eval(config, tmp_path, methods=["still"], generator=PreviewGenerator(), plots=False, resume=True)
    assert len(made) == 2 and [c.reused for c in result.cases] == [True, True, False, False]
    assert not (tmp_path / "partial").exists()  # the complete report replaced it
