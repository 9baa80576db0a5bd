"""gen3c's progress bars: one rich bar per stage of a run ("Reading video", "Loading gen3c model", "Rendering 3D
cache", "Generating (gen3c)", a training's steps), the same for the command line and
``gen3c.generate(progress=True)``.

Long work takes a :data:`ProgressFactory`, ``progress(stage, total) -> advance(n=1)``, and
knows nothing of how it is drawn; :func:`progress_bars` draws it. The bars go to stderr (in a
notebook, rich shows them in the cell's output): stdout stays the program's own. Where stderr
is no terminal (a log file, a pipe, CI) each stage prints plain lines instead, now and then
(:data:`LINE_SECONDS`). rich is imported on first use, so modules that only name
:data:`ProgressFactory` stay light.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from gen3c.errors import Gen3cInputError, describe_value, raise_if_interrupted

if TYPE_CHECKING:
    from rich.console import Console

#: How progress is shown: ``progress(stage, total)`` returns a function to call with the number
#: of steps just done (default 1).
ProgressFactory = Callable[[str, int], Callable[[int], None]]

#: Where the output is no terminal, a stage prints a line as it starts, then at most one every
#: this many seconds as it advances, and one as it ends ("Generating (gen3c): 41/121 (33%),
#: 0:02:01 elapsed, ETA 0:03:56"); a live bar would be printed only once the run ends.
LINE_SECONDS = 30.0
_clock = time.monotonic


def check_progress_factory(progress: object) -> None:
    """Refuse a ``progress`` argument that is neither None nor a :data:`ProgressFactory` (True, as
    ``gen3c.generate`` takes it, failed later as "'bool' object is not callable"; a function of
    one argument as "<lambda>() takes 1 positional argument but 2 were given")."""
    if progress is not None and not callable_as(progress, "stage", 1):
        raise Gen3cInputError(
            f"progress is {describe_progress(progress, 'progress(stage, total)')}: pass a progress factory, progress(stage, total) -> advance(n) "
            "(`with gen3c.progress.progress_bars() as progress:` draws gen3c's bars), or None for none"
        )


def check_step_progress(progress: object) -> None:
    """Refuse a generator's ``progress`` that is neither None nor a function of the frames done."""
    if progress is not None and not callable_as(progress, 1):
        raise Gen3cInputError(
            f"progress is {describe_progress(progress, 'progress(n)')}: pass a function called with the frames each step makes, progress(n), or None for none"
        )


def callable_as(function: object, *arguments: object) -> bool:
    """Whether ``function`` can be called with ``arguments`` (by its signature; one that cannot be
    read, as some builtins', is taken as it is)."""
    if not callable(function):
        return False
    try:
        inspect.signature(function).bind(*arguments)
    except TypeError:
        return False
    except ValueError:  # no signature to read
        return True
    return True


def describe_progress(progress: object, call: str) -> str:
    """``progress`` as a refusal names it: a function by the call it cannot take, anything else by
    :func:`~gen3c.errors.describe_value`."""
    return f"a function that cannot be called as {call}" if callable(progress) else describe_value(progress)


@contextlib.contextmanager
def progress_bars(console: Console | None = None) -> Iterator[ProgressFactory]:
    """A :data:`ProgressFactory` drawing a rich bar per stage on ``console`` (default: a console
    on stderr), left on screen when its stage ends.

    The display starts with the first bar, so an error raised before any work is its one line.
    In a notebook rich draws live bars in the cell with ipywidgets; without it they are printed
    as text (rich would warn and draw none). Where ``console`` is no terminal (a file, a pipe, a
    dumb terminal) rich would print the bars only as the display ends: each stage prints plain
    lines instead, as it starts, every :data:`LINE_SECONDS` at most and as it ends.
    A print to stdout while the bars show goes to stdout (rich's default would move it to the
    bars' stream). Each step raises a Ctrl-C that Python dropped in a finalizer
    (:func:`~gen3c.errors.raise_if_interrupted`)."""
    console = console if console is not None else _stderr_console()
    if not console.is_interactive and not console.is_jupyter:
        with _progress_lines(console) as factory:
            yield factory
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    progress = Progress(*columns, console=console, transient=False, redirect_stdout=False)

    def factory(stage: str, total: int) -> Callable[[int], None]:
        if not progress.live.is_started:
            progress.start()
        task = progress.add_task(stage, total=total)

        def advance(n: int = 1) -> None:
            raise_if_interrupted()
            progress.advance(task, n)

        return advance

    try:
        yield factory
    finally:
        if progress.live.is_started:
            progress.stop()


@contextlib.contextmanager
def _progress_lines(console: Console) -> Iterator[ProgressFactory]:
    """A :data:`ProgressFactory` printing each stage's progress on ``console`` as plain lines; a
    stage not shown as it stood when the display ends (an error, fewer steps than its total) is
    printed then."""
    stages: list[_StageLines] = []

    def factory(stage: str, total: int) -> Callable[[int], None]:
        stages.append(_StageLines(console, stage, total))
        return stages[-1].advance

    try:
        yield factory
    finally:
        for stage in stages:
            stage.flush()


class _StageLines:
    """One stage printed as lines: as it starts, at most every :data:`LINE_SECONDS` as it
    advances, and as it reaches its total."""

    def __init__(self, console: Console, stage: str, total: int):
        self.console, self.stage, self.total = console, stage.strip(), total
        self.done = 0
        self.lock = threading.Lock()
        self.started = self.shown_at = _clock()
        self.shown = -1  # the count last printed
        self.show(self.started)

    def advance(self, n: int = 1) -> None:
        raise_if_interrupted()
        with self.lock:
            self.done += n
            now = _clock()
            if (self.done >= self.total > self.shown) or now - self.shown_at >= LINE_SECONDS:
                self.show(now)

    def flush(self) -> None:
        with self.lock:
            if self.done != self.shown:
                self.show(_clock())

    def show(self, now: float) -> None:
        elapsed = now - self.started
        line = f"{self.stage}: {self.done}/{self.total}"
        if self.total > 0:
            line += f" ({min(100, int(100 * self.done / self.total))}%)"
        if self.done >= self.total:
            line += f" in {_hms(elapsed)}"
        elif self.done > 0:  # 0: the line as the stage starts
            line += f", {_hms(elapsed)} elapsed, ETA {_hms(elapsed / self.done * (self.total - self.done))}"
        self.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)
        self.shown, self.shown_at = self.done, now


def _hms(seconds: float) -> str:
    """``seconds`` as rich's bars show times: "0:02:01"."""
    return str(datetime.timedelta(seconds=round(seconds)))


def _stderr_console():
    """A rich console on stderr; in a notebook without ipywidgets (rich's live display there
    needs it), or with one that fails to import (said in a note), one that writes text to the
    cell's stderr instead."""
    from gen3c.dependencies import optional

    console_class = _rich_console_class()
    console = console_class(stderr=True)
    if console.is_jupyter and optional("ipywidgets", "progress bars as text") is None:
        console = console_class(stderr=True, force_jupyter=False)
    return console


def _rich_console_class() -> type[Console]:
    """rich's Console, imported leaving Python's ``random`` as the caller left it: importing
    rich.style draws its first style id from the global generator (``getrandbits(24)``), which
    moved a script's seeded ``random`` stream on gen3c's first bar. Only that first import is
    wrapped: put back on every bar, the state rewound under another thread that drew meanwhile,
    which then drew the same numbers again."""
    if "rich.console" in sys.modules:
        from rich.console import Console

        return Console
    state = random.getstate()
    try:
        from rich.console import Console
    finally:
        random.setstate(state)
    return Console
