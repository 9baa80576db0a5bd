"""The console output of the libraries gen3c calls, kept out of gen3c's own.

diffusers ("Loading pipeline components...") and transformers ("Loading weights") draw raw tqdm
bars and log lines of their own while gen3c loads a model; beside gen3c's rich bars they are
noise (in a log file a run of ``\\r`` segments). :func:`libraries_quiet` turns them off around
gen3c's calls with the libraries' own switches and puts the user's settings back afterwards:
a library must not change the logging of other libraries for the rest of the user's program.
huggingface_hub's download bars are left on: a download is long, and they are its only progress.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def libraries_quiet() -> Iterator[None]:
    """diffusers' and transformers' progress bars off, and their log lines below errors, inside
    the block; each setting as it was after it (also after an error). A library that is not
    installed is skipped."""
    with contextlib.ExitStack() as stack:
        for name in ("diffusers", "transformers"):
            try:
                module = __import__(f"{name}.utils.logging", fromlist=["logging"])
            except ImportError:
                continue
            stack.enter_context(_quiet(module))
        yield


@contextlib.contextmanager
def _quiet(library_logging) -> Iterator[None]:
    """One library's ``utils.logging`` (diffusers and transformers share its functions) quiet inside the block."""
    level, bars = library_logging.get_verbosity(), library_logging.is_progress_bar_enabled()
    library_logging.set_verbosity(logging.ERROR)
    library_logging.disable_progress_bar()
    try:
        yield
    finally:
        library_logging.set_verbosity(level)
        if bars:
            library_logging.enable_progress_bar()
