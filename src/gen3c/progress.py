"""gen3c's progress bars: one rich bar per stage of a run ("Loading gen3c model", "Rendering 3D
cache", "Generating (gen3c)", a training's steps), the same for the command line and
``gen3c.generate(progress=True)``.

Long work takes a :data:`ProgressFactory`, ``progress(stage, total) -> advance(n=1)``, and
knows nothing of how it is drawn; :func:`progress_bars` draws it. The bars go to stderr (in a
notebook, rich shows them in the cell's output): stdout stays the program's own. rich is
imported on first use, so modules that only name :data:`ProgressFactory` stay light.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from gen3c.errors import raise_if_interrupted

if TYPE_CHECKING:
    from rich.console import Console

#: How progress is shown: ``progress(stage, total)`` returns a function to call with the number
#: of steps just done (default 1).
ProgressFactory = Callable[[str, int], Callable[[int], None]]


@contextlib.contextmanager
def progress_bars(console: Console | None = None) -> Iterator[ProgressFactory]:
    """A :data:`ProgressFactory` drawing a rich bar per stage on ``console`` (default: a console
    on stderr), left on screen when its stage ends.

    The display starts with the first bar, so an error raised before any work is its one line.
    In a notebook rich draws live bars in the cell with ipywidgets; without it they are printed
    as text when they end (rich would warn and draw none).
    A print to stdout while the bars show goes to stdout (rich's default would move it to the
    bars' stream). Each step raises a Ctrl-C that Python dropped in a finalizer
    (:func:`~gen3c.errors.raise_if_interrupted`)."""
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
    console = console if console is not None else _stderr_console()
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


def _stderr_console():
    """A rich console on stderr; in a notebook without ipywidgets (rich's live display there
    needs it), or with one that fails to import (said in a note), one that writes text to the
    cell's stderr instead."""
    from rich.console import Console

    from gen3c.dependencies import optional

    console = Console(stderr=True)
    if console.is_jupyter and optional("ipywidgets", "progress bars as text") is None:
        console = Console(stderr=True, force_jupyter=False)
    return console
