"""The console output of the libraries gen3c calls, kept out of gen3c's own.

diffusers ("Loading pipeline components...") and transformers ("Loading weights") draw raw tqdm
bars and log lines of their own while gen3c loads a model; beside gen3c's rich bars they are
noise (in a log file a run of ``\\r`` segments). :func:`libraries_quiet` turns them off around
gen3c's calls with the libraries' own switches and puts the user's settings back afterwards:
a library must not change the logging of other libraries for the rest of the user's program.
transformers' switch turns huggingface_hub's bars off with its own, so inside the block those are
off too, and afterwards the hub's setting is put back as the user had it (transformers' switch
back on would turn the hub's bars on whatever the user had set).

huggingface_hub's own log lines ("Error while downloading … Trying to resume download…",
"HTTP Error 503 thrown while requesting …", "Retrying in 1s") are noise too while gen3c fetches:
the hub retries a dropped connection or a busy server by itself, and what still fails reaches
gen3c as an exception it says in one line. ``libraries_quiet(("huggingface_hub",))`` turns only
those below errors; the hub's bars, a fetch's progress on a terminal, stay as they are.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def libraries_quiet(libraries: tuple[str, ...] = ("diffusers", "transformers")) -> Iterator[None]:
    """diffusers' and transformers' (or only those of ``libraries``) progress bars off, and their
    log lines below errors, inside the block; each setting as it was after it (also after an
    error). "huggingface_hub" in ``libraries``: its log lines below errors, its bars kept. A library that is not installed is skipped; one that fails to import is named in one
    line (:func:`_installed_module`): a transformers depth model passes ("transformers",), so that
    a broken diffusers it never uses does not stop it."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(_hub_bars_kept())  # entered first: put back last, after transformers'
        for name in libraries:
            module = _installed_module(name, "utils.logging")
            if module is not None:
                stack.enter_context(_quiet(module, bars=name != "huggingface_hub"))
        yield


def _installed_module(package: str, submodule: str):
    """``package.submodule``, None where ``package`` is not installed.

    Raises:
        Gen3cDependencyError: the package is installed but fails to import (a broken install, or one
            built for another torch): :func:`gen3c.dependencies.require`'s one line.
    """
    from gen3c.dependencies import installed, require

    if not installed(package):
        return None
    return require(f"{package}.{submodule}", f"turning off the progress bars of {package}")


@contextlib.contextmanager
def _hub_bars_kept() -> Iterator[None]:
    """huggingface_hub's global progress-bar setting as it was before the block, after it (if installed)."""
    hub = _installed_module("huggingface_hub", "utils")
    if hub is None:
        yield
        return
    off = hub.are_progress_bars_disabled()
    try:
        yield
    finally:
        if off and not hub.are_progress_bars_disabled():
            hub.disable_progress_bars()
        elif not off and hub.are_progress_bars_disabled():
            hub.enable_progress_bars()


@contextlib.contextmanager
def _quiet(library_logging, bars: bool = True) -> Iterator[None]:
    """One library's ``utils.logging`` quiet inside the block: its log lines, and with ``bars`` its
    progress bars (diffusers and transformers share these functions; huggingface_hub's module has
    the verbosity ones only)."""
    level = library_logging.get_verbosity()
    bars_on = bars and library_logging.is_progress_bar_enabled()
    library_logging.set_verbosity(logging.ERROR)
    if bars:
        library_logging.disable_progress_bar()
    try:
        yield
    finally:
        library_logging.set_verbosity(level)
        if bars_on:
            library_logging.enable_progress_bar()
