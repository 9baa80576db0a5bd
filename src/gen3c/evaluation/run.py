"""``gen3c eval`` as one function: run the benchmark, write the contact sheets and the report."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

from gen3c.errors import Gen3cInputError, Terminated, first_line, note, quoted_path, raise_if_interrupted
from gen3c.evaluation.report import (
    PARTIAL,
    check_output_names,
    clear_previous_outputs,
    counted,
    require_matplotlib,
    sheet_writer,
    write_report,
)
from gen3c.evaluation.resume import fingerprint, load_partial
from gen3c.evaluation.suite import (
    SCENES,
    BenchmarkConfig,
    BenchmarkResult,
    CaseResult,
    Stopped,
    benchmark_cases,
    run_benchmark,
    select_methods,
    video_units,
)
from gen3c.io.atomic import (
    ensure_writable_dir,
    make_staging_dir,
    publish,
    remove_abandoned_staging,
    signals_deferred,
    try_flock,
)
from gen3c.io.resolution import parse_resolution
from gen3c.progress import ProgressFactory
from gen3c.trajectories import PRESETS


def parse_list(text: str | None, name: str, all_values: tuple[str, ...] | None = None) -> list[str] | None:
    """A comma-separated list flag; ``"all"`` (or nothing) means every value. A name given twice
    counts once (a repeated scene or preset would otherwise weigh its cases twice in every mean)."""
    if text is None or text.strip() == "all":
        return None if all_values is None else list(all_values)
    items = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not items:
        raise Gen3cInputError(f"{name} {text!r} names nothing: pass comma-separated names or 'all'")
    return items


def make_config(
    *,
    full: bool = False,
    scenes: str | None = None,
    presets: str | None = None,
    resolution: str | None = None,
    num_frames: int | None = None,
    chunk_frames: int | None = None,
    **settings,
) -> BenchmarkConfig:
    """The benchmark's settings from the CLI's values: the default size (176×320, 25 frames) or
    ``full`` (704×1280, 121 frames); a generator that makes fixed chunks (``chunk_frames``,
    GEN3C: 121) gets that many frames unless ``num_frames`` says otherwise."""
    config = BenchmarkConfig.full() if full else BenchmarkConfig()
    changes = dict(settings)
    if scenes is not None:
        changes["scenes"] = tuple(parse_list(scenes, "--scenes", SCENES))
    if presets is not None:
        changes["presets"] = tuple(parse_list(presets, "--presets", PRESETS))
    if resolution is not None:
        changes["resolution"] = parse_resolution(resolution)
    if num_frames is not None:
        changes["num_frames"] = num_frames
    elif chunk_frames is not None:
        changes["num_frames"] = chunk_frames
    config = replace(config, **changes)
    config.check()
    return config


#: The report folders this thread holds (:func:`report_folder_held`), by their real path (``.folders``).
_HELD = threading.local()


@contextlib.contextmanager
def report_folder_held(folder: str | Path):
    """Hold ``folder``'s lock (the operating system's ``flock``, released however the process
    ends) while a ``gen3c eval`` writes its report there: a second eval into the same folder while
    one runs is refused in one line, instead of both running every case and their reports (and
    partial reports) replacing each other's files. Taken again in this thread (the CLI holds it
    while its models load, then :func:`run_eval`), it is already held. Where the file system cannot
    lock (some network file systems), the run goes on unlocked."""
    key = os.path.realpath(folder)
    held = _HELD.__dict__.setdefault("folders", set())
    if key in held:
        yield
        return
    busy = Gen3cInputError(
        f"--output_folder {quoted_path(folder)} is being written by another `gen3c eval` or `gen3c train` still going: "
        "wait for it to end, or choose another --output_folder"
    )
    with try_flock(folder, held=busy):
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)


def _publish_files(files: list[Path], staging: Path, folder: Path) -> None:
    """Move ``files`` made under ``staging`` to the same relative paths under ``folder`` (folders
    made for them flushed into their parents, :func:`~gen3c.io.atomic.ensure_writable_dir`)."""
    for file in files:
        target = folder / file.relative_to(staging)
        ensure_writable_dir(target.parent, "report folder")
        publish(file, target)


def _remove_partial(folder: Path) -> None:
    """Remove the partial report in ``folder``/:data:`PARTIAL` (only the names a partial report is
    written under; its folders if that leaves them empty)."""
    partial = folder / PARTIAL
    clear_previous_outputs(partial)
    for sub in (partial / "contact_sheets", partial):
        with contextlib.suppress(OSError):  # absent, or holding files of someone else's
            sub.rmdir()


def _grid_order(config: BenchmarkConfig):
    """Sort key of contact sheet paths: their cases' order in the grid."""
    order = {f"contact_sheets/{c.name}.png": i for i, c in enumerate(benchmark_cases(config))}
    return lambda sheet: order.get(sheet, len(order))


def stop_reason(exc: BaseException) -> str:
    """One line on why a benchmark stopped: the interrupt, or the error's type and first line (and
    the row and case :func:`~gen3c.evaluation.suite.run_benchmark` noted on it)."""
    if isinstance(exc, Terminated):
        return "terminated (SIGTERM)"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    return " ".join([f"{type(exc).__name__}: {first_line(exc)}", *getattr(exc, "__notes__", [])])


#: Why a partial report written as the run went says it stopped: it is replaced by the real reason
#: if the run stops otherwise, and removed when it completes, so it is read only after a run killed outright.
KILLED = "killed outright, with no chance to say why (kill -9, out of memory, a power cut; this report was written as its last finished case ended)"


def _publish_partial(
    result: BenchmarkResult, staging: Path, sheets: list[str], folder: Path, *, move: bool, published: set[str] | None = None
) -> None:
    """Write ``result`` (``stopped`` set) as the partial report in ``folder``/:data:`PARTIAL`,
    replacing an earlier one in one step; its finished cases' contact sheets are taken from
    ``staging`` (moved, or copied while the run goes on and still needs them). ``published``: the
    sheets earlier calls of this run put there (updated), which are not written again; the first
    call (none yet) clears the earlier partial report. Rewriting every sheet after every case cost
    one fsync per sheet, quadratic in the cases."""
    build = staging / PARTIAL
    shutil.rmtree(build, ignore_errors=True)  # (an earlier checkpoint's)
    done_sheets = {f"contact_sheets/{c.case.name}.png" for c in result.cases}
    kept_sheets = [s for s in sheets if s in done_sheets]  # (a sheet written just before its case failed is left out)
    new_sheets = [s for s in kept_sheets if not published or s not in published]
    (build / "contact_sheets").mkdir(parents=True, exist_ok=True)
    for sheet in new_sheets:
        (os.replace if move else shutil.copyfile)(staging / sheet, build / sheet)
    written = write_report(result, build, plots=False, sheets=kept_sheets)
    files = [written["results"], written["report"], *(build / s for s in new_sheets)]
    with signals_deferred():  # the earlier partial report out and this one in, as one step
        if not published:
            clear_previous_outputs(folder / PARTIAL)
        _publish_files(files, build, folder / PARTIAL)
    if published is not None:
        published.update(new_sheets)


def _first_not_done(config: BenchmarkConfig, done: set[str]) -> str | None:
    """The first case of the grid not in ``done`` (the cases run in the grid's order: the one running)."""
    return next((c.name for c in benchmark_cases(config) if c.name not in done), None)


def keep_partial(result: BenchmarkResult, exc: BaseException, staging: Path, sheets: list[str], folder: Path) -> str | None:
    """Publish the finished cases of a benchmark stopped by ``exc`` as a partial report in
    ``folder``/:data:`PARTIAL` (replacing an earlier one; the complete report in ``folder`` is not
    touched), its contact sheets taken from ``staging``. Returns one line saying where it is,
    for the error message (or that it could not be written, and why: ``exc`` is raised either
    way, not this error), or None when no case finished (nothing is written then)."""
    cases = benchmark_cases(result.config)
    if not result.cases:
        return None
    # None running: Ctrl-C just after the last case.
    running = _first_not_done(result.config, {c.case.name for c in result.cases})
    result.stopped = Stopped(running, stop_reason(exc), isinstance(exc, KeyboardInterrupt))  # (Terminated is one)
    try:
        _publish_partial(result, staging, sheets, folder, move=True)
    except Exception as error:
        return f"the finished cases could not be kept ({type(error).__name__}: {first_line(error)})"
    earlier = f" (an earlier complete report in {quoted_path(folder)} is left as it was)" if (folder / "report.md").is_file() else ""
    return (
        f"the {counted(len(result.cases), 'finished case')} of {len(cases)} {'is' if len(result.cases) == 1 else 'are'} kept as a partial report in "
        f"{quoted_path(folder / PARTIAL / 'report.md')}{earlier}"
    )


def run_eval(
    config: BenchmarkConfig,
    folder: str | Path,
    *,
    methods: list[str] | None = None,
    generator: object | None = None,
    compared: dict[str, object] | None = None,
    load_seconds: dict[str, float] | None = None,
    plots: bool = True,
    progress: ProgressFactory | None = None,
    resume: bool = False,
) -> tuple[BenchmarkResult, dict]:
    """Run the benchmark and write its report into ``folder`` (see :mod:`gen3c.evaluation.report`).

    The report is written into a hidden folder inside ``folder`` while the benchmark runs and
    moved into place when complete, replacing what an earlier run wrote there
    (:func:`~gen3c.evaluation.report.clear_previous_outputs`) and the partial report of an
    earlier stopped run: an interrupted or failed run leaves the earlier report as it was and
    keeps the cases it finished as a partial report in ``folder/partial`` (:func:`keep_partial`;
    its error's message says where), and a finished one leaves no file of the earlier one. That
    partial report is also written after each finished case (its heading: :data:`KILLED`), so a
    run killed outright, which can write nothing as it stops, leaves its finished cases too.
    The hidden folders of runs killed outright (``kill -9``) are removed at the start
    (:func:`~gen3c.io.atomic.remove_abandoned_staging`; those of runs still going are kept).

    Args:
        methods: baselines / preview variants to run (default: all).
        generator: a further generator to evaluate (e.g. the GEN3C model).
        compared: more generators (row name → generator, e.g. distilled students), each also
            scored against ``generator``'s video (``psnr_vs_reference``).
        load_seconds: the time spent loading these generators (row name → seconds), reported
            apart from the time per video.
        progress: a progress factory; one bar advances per (case, method) run, a second with
            the frames the generators make (:func:`~gen3c.evaluation.suite.video_units`), step
            by step where a generator reports its steps (GEN3C: each sampler step).
        resume: reuse the finished cases of the partial report in ``folder/partial`` when it was
            made with this run's :func:`~gen3c.evaluation.resume.fingerprint` (their scores,
            times and contact sheets), running only the others; a partial report made otherwise
            is refused (:func:`~gen3c.evaluation.resume.load_partial`), none there is noted.
    Returns:
        The result and the written paths (``report``, ``results``, ``plots``, ``contact_sheets``).
    """
    if plots:
        require_matplotlib()
    config.check()
    rows = select_methods(methods, generator, compared)
    folder = ensure_writable_dir(folder, "--output_folder")
    with report_folder_held(folder):
        return _run_eval(config, folder, rows, load_seconds, plots, progress, resume)


def _run_eval(
    config: BenchmarkConfig, folder: Path, rows: list, load_seconds: dict[str, float] | None, plots: bool,
    progress: ProgressFactory | None, resume: bool,
) -> tuple[BenchmarkResult, dict]:
    """:func:`run_eval` in its folder, held."""
    check_output_names(folder)  # else the finished report could not go into place
    current = fingerprint(config, rows)
    reused = load_partial(folder, current, config) if resume else []  # (refused before any work)
    remove_abandoned_staging(folder, "eval")  # of evals killed before they could clean up
    staging = make_staging_dir(folder, "eval")
    try:
        sheets: list[str] = []
        finished: list[CaseResult] = []
        on_case = sheet_writer(staging, sheets)
        for case in reused:  # their sheets as the earlier run drew them
            sheet = f"contact_sheets/{case.case.name}.png"
            shutil.copyfile(folder / PARTIAL / sheet, staging / sheet)
            sheets.append(sheet)
        total = len(benchmark_cases(config)) * (len(rows) + 1)
        tick = progress("Benchmark (cases × methods)", total) if progress else None
        # A second bar moves with the generators' steps: a GEN3C video at full size takes minutes.
        frames = progress("  frames generated", video_units(config, rows)) if progress else None
        started = time.perf_counter()
        unsaved: list[str] = []
        published: set[str] = set()  # the sheets the checkpoints put into partial/

        def checkpoint(_: CaseResult) -> None:
            # The finished cases kept on disk as the run goes: a run killed outright (kill -9, the
            # out-of-memory killer, a lost machine) can say nothing when it stops, and --resume
            # would otherwise find none of them. Not kept, the run goes on, said once.
            done = {r.case.name: r for r in [*reused, *finished]}
            kept_cases = [done[c.name] for c in benchmark_cases(config) if c.name in done]
            so_far = BenchmarkResult(config, rows, kept_cases, time.perf_counter() - started, dict(load_seconds or {}), fingerprint=current)
            so_far.stopped = Stopped(_first_not_done(config, set(done)), KILLED, interrupted=True)
            try:
                _publish_partial(so_far, staging, sorted(sheets, key=_grid_order(config)), folder, move=False, published=published)
            except Exception as error:
                if not unsaved:
                    note(f"the finished cases could not be kept as the run goes ({type(error).__name__}: {first_line(error)}): "
                         "a run killed outright will leave none for --resume")  # fmt: skip
                unsaved.append(str(error))

        try:
            result = run_benchmark(
                config, rows, progress=tick, video_progress=frames, on_case=on_case, finished=finished, reused=reused, scored=checkpoint
            )
            result.load_seconds, result.fingerprint = dict(load_seconds or {}), current
            sheets.sort(key=_grid_order(config))  # (the reused cases' sheets came first)
            written = write_report(result, staging, plots=plots, sheets=sheets)  # (its plots take seconds: a Ctrl-C may come)
            raise_if_interrupted()  # a Ctrl-C that Python dropped in a finalizer publishes nothing
        except (Exception, KeyboardInterrupt) as exc:  # the finished cases kept apart, the complete report left as it was
            # (with the reused cases not reached yet: a case that runs again, its sheet gone, may come before them)
            done = {r.case.name: r for r in [*reused, *finished]}
            kept_cases = [done[c.name] for c in benchmark_cases(config) if c.name in done]
            stopped = BenchmarkResult(config, rows, kept_cases, time.perf_counter() - started, dict(load_seconds or {}), fingerprint=current)
            sheets.sort(key=_grid_order(config))
            kept = keep_partial(stopped, exc, staging, sheets, folder)
            if kept is None:
                raise
            if isinstance(exc, (Gen3cInputError, KeyboardInterrupt)):  # one line: the CLI prints the message
                message = f"{exc}; {kept}" if str(exc) else kept
                raise type(exc)(message) from None
            exc.add_note(kept)  # shown below the traceback
            raise
        files = [written["results"], written["report"], *written["plots"], *(staging / s for s in sheets)]
        with signals_deferred():  # the earlier report out and this one in, as one step
            clear_previous_outputs(folder)
            _publish_files(files, staging, folder)
            _remove_partial(folder)  # a stopped run's partial report, superseded by this complete one
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    paths = {key: folder / written[key].name for key in ("report", "results")}
    paths["plots"] = [folder / p.name for p in written["plots"]]
    paths["contact_sheets"] = [folder / s for s in sheets]
    return result, paths
