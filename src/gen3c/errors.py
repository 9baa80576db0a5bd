"""Error types for mistakes a user can make.

Every error a user can cause (a missing file, a malformed camera file, an impossible frame
count) is raised as a :class:`Gen3cInputError` subclass with a one-line message that names the
input, what is wrong with it and how to fix it. The CLI prints the message and exits with
code 2; internal bugs raise ordinary exceptions.
"""

from __future__ import annotations


class Gen3cInputError(ValueError):
    """A user-supplied input is missing, malformed or out of range."""

    exit_code = 2


class Gen3cModelError(Gen3cInputError):
    """Model weights are absent, incomplete or do not match the expected layout."""


class Gen3cMemoryError(Gen3cInputError):
    """The accelerator ran out of memory; the message names the setting that makes the run fit."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of ``exc``'s message (at most ``limit`` characters), or its type's name:
    what a one-line user error quotes of a library's (often multi-line) exception."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__
