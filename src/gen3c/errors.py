"""Error types for mistakes a user can make, and notes for what a user may want to know.

Every error a user can cause (a missing file, a malformed camera file, an impossible frame
count) is raised as a :class:`Gen3cInputError` subclass with a one-line message that names the
input, what is wrong with it and how to fix it. The CLI prints the message and exits with
code 2; internal bugs raise ordinary exceptions.

What is not an error but changes the result (a depth map resized, a camera assumed, a kernel
unavailable) is a :func:`note`: a ``UserWarning`` (the CLI prints it as "note:"), or collected
by :func:`collect_notes` where a caller shows notes itself (the GUI beside the input they
concern).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import numbers
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import NoReturn


class Gen3cInputError(ValueError):
    """A user-supplied input is missing, malformed or out of range."""

    exit_code = 2


class Gen3cSettingError(Gen3cInputError):
    """A setting made the run fail partway (a guidance that makes sampling diverge): the fix
    changes the run's output, so a long run's chunks kept so far could never be resumed (a run
    with the same settings fails the same way, one with the fixed setting is another run)."""


class Gen3cModelError(Gen3cInputError):
    """Model weights are absent, incomplete or do not match the expected layout."""


class Gen3cDependencyError(Gen3cInputError):
    """A third-party package a feature needs is not installed or fails to import; the message
    names the ``pip install`` that fixes it (:mod:`gen3c.dependencies`)."""


class Gen3cImportError(Gen3cDependencyError, ImportError):
    """A name of ``gen3c`` (``gen3c.Gen3cPipeline``, ``from gen3c import Gen3cPipeline``) whose extra
    is not installed: :class:`Gen3cDependencyError`'s one line, caught by ``except ImportError`` as
    a missing module's import is."""


class Gen3cMemoryError(Gen3cInputError):
    """The accelerator ran out of memory; the message names the setting that makes the run fit.
    ``stranded``: part of the model was left on the accelerator (moving it back failed too), so
    the loaded model must be loaded again before it runs."""

    stranded: bool = False


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, a batch scheduler's stop before its kill), raised where Ctrl-C's
    KeyboardInterrupt would be, so a run unwinds the same way: temporary files removed, a long
    run's finished chunks kept for ``--resume``. Raised only where :func:`terminate_like_ctrl_c`
    was called (the command line)."""


#: The interrupt (KeyboardInterrupt or Terminated) :func:`terminate_like_ctrl_c`'s handler raised,
#: until the process ends: see :func:`raise_if_interrupted`.
_INTERRUPTED: list[type[KeyboardInterrupt]] = []
#: Non-empty once :func:`exit_command_line` settles the exit code: from then on an interrupt is
#: only counted in ``_IGNORED``, neither raised nor remembered in ``_INTERRUPTED``.
_EXITING: list[bool] = []
_IGNORED: list[int] = []


def terminate_like_ctrl_c() -> None:
    """From now on SIGTERM raises :class:`Terminated` in the main thread, and both it and Ctrl-C
    (SIGINT) are remembered for :func:`raise_if_interrupted` (call this in the main thread of a
    process that ends when interrupted: the command line). Once :func:`exit_command_line` has
    the exit code, an interrupt no longer raises; a second one then ends the process at once
    (killed by the signal), for an exit that hangs."""
    import signal

    def interrupt(signum, frame):
        if not _EXITING:
            kind = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
            _INTERRUPTED.append(kind)
            raise kind()
        _IGNORED.append(signum)
        if len(_IGNORED) > 1:  # asked twice: stop waiting for the exit
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


LAUNCHER_GONE_GRACE = 30.0
"""Seconds a worker whose launcher died has to end on its SIGTERM before it is killed, as
torchrun gives its workers between its own SIGTERM and SIGKILL."""


def stop_when_the_launcher_is_gone(poll: float = 1.0) -> None:
    """Stop this process as its launcher (torchrun's agent, its parent) would, once that launcher
    is gone: a SIGTERM (:func:`terminate_like_ctrl_c`: a long run keeps and names its finished
    chunks), then, :data:`LAUNCHER_GONE_GRACE` seconds later, SIGKILL, for a rank blocked in a
    collective whose Python never runs the handler. torchrun killed outright (SIGKILL, the
    out-of-memory killer) passes on no signal: its workers went on without it, and a rank left
    waiting on a peer that failed meanwhile waited for gloo's 30-minute timeout. Told by the
    parent's pid changing (the orphan is re-parented), checked every ``poll`` seconds by a daemon
    thread; unlike ``PR_SET_PDEATHSIG`` it does not fire when only the thread that started the
    process ends, and it works on macOS. A wait however long (a model loading for minutes) is
    never cut short while the launcher lives."""
    import signal

    parent = os.getppid()

    def watch() -> None:
        import time

        while os.getppid() == parent:
            time.sleep(poll)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(LAUNCHER_GONE_GRACE)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="gen3c-launcher-watch", daemon=True).start()


def exit_command_line(run: Callable[[], object]) -> NoReturn:
    """Run a command line (``run``, e.g. a typer app, which ends in ``SystemExit``) and exit with
    its code, or 130 (143) when Ctrl-C (SIGTERM) came before that code was settled, wherever it
    came: while the modules load, as the command's exit unwinds through typer and click. An
    interrupt raised there replaced the ``SystemExit`` under way, and Python then ends a process
    whose main code leaves with ``KeyboardInterrupt`` by killing it with SIGINT (status −2
    instead of 130, with a traceback). Once the code is settled an interrupt is ignored (a
    second one ends the process at once, see :func:`terminate_like_ctrl_c`).

    Two windows remain outside Python's signal handling, killed by the signal: the
    interpreter's own start-up, before it handles SIGINT, and the last moments of its shutdown,
    after it has restored the default handlers.
    """
    terminate_like_ctrl_c()
    code: int | str | None = 0
    try:
        try:
            run()
        finally:
            # First thing: CPython runs Python signal handlers only on entering a function, after
            # a call of a C function and at loop jumps, so none can raise before this append.
            _EXITING.append(True)
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt as exc:  # raised outside the command: as typer loaded, or its exit unwound
        code = 143 if isinstance(exc, Terminated) else 130
    if _INTERRUPTED and code not in (130, 143):
        code = 143 if _INTERRUPTED[0] is Terminated else 130
    sys.exit(code)


def interrupt_arrived() -> bool:
    """Whether Ctrl-C or SIGTERM has reached this process since :func:`terminate_like_ctrl_c`,
    raised or (once the exit code was settled) ignored: a wait at exit stops on it."""
    return bool(_INTERRUPTED or _IGNORED)


def raise_if_interrupted() -> None:
    """Raise again a Ctrl-C or SIGTERM that already arrived. Python drops an exception raised
    while it runs a finalizer (``__del__``, e.g. of a regex or tensor object freed in passing:
    "Exception ignored in …"), so an interrupt arriving then was lost and the run went on to the
    end; long runs call this as they go (each progress step) and before they publish outputs.
    Does nothing unless :func:`terminate_like_ctrl_c` was called."""
    if _INTERRUPTED:
        raise _INTERRUPTED[-1]()


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of ``exc``'s message (at most ``limit`` characters), or its type's name:
    what a one-line user error quotes of a library's (often multi-line) exception."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the user's quota on it) is full: an ``OSError`` (ENOSPC,
    EDQUOT), or a library's error that quotes the operating system's, as safetensors' writer does
    (``SafetensorError('… No space left on device (os error 28)')``, no OSError)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return any(f"(os error {code})" in str(exc) for code in (errno.ENOSPC, errno.EDQUOT))


def disk_full_reason(exc: BaseException) -> str:
    """What a full-disk error (:func:`is_disk_full`) says, without the path it names: the system's
    words (``No space left on device``), else its first line."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = first_line(exc, 200)
    return text.rsplit(": ", 1)[-1].split(" (os error")[0] if "(os error" in text else first_line(exc, 80)


def describe_value(value: object, limit: int = 40) -> str:
    """What a one-line error says it got: a string or number as its type and value (``str 'x'``,
    ``float '2.5'``); an array or tensor by its type and shape (``a numpy array of shape (3, 3)``),
    a list, tuple or dict by its length, anything else by its type, and its text where that is one
    short line (``dtype 'torch.float16'``): a repr may run over lines, or quote a whole array."""
    if value is None or isinstance(value, (str, bytes, numbers.Number)):
        return f"{type(value).__name__} {str(value)[:limit]!r}"
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):  # torch.Size is one too
        kind = {"numpy": "numpy array", "torch": "torch tensor"}.get(type(value).__module__.split(".")[0], type(value).__name__)
        return f"{with_article(kind)} of shape {tuple(shape)}"
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return f"{with_article(type(value).__name__)} of {counted(len(value), 'item')}"
    text = str(value)
    plain = len(text) <= limit and "\n" not in text and not text.startswith("<")  # not object's "<… at 0x…>"
    return f"{type(value).__name__} {text!r}" if plain else with_article(type(value).__name__)


def is_whole_number(value: object) -> bool:
    """Whether ``value`` is a whole number a setting takes: an int or a numpy integer, not a bool
    (True is an int to Python, and a count of True is a mistake) nor a float, even a whole one."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def shown_value(value: object, limit: int = 80) -> str:
    """What a one-line error shows it got, as Python writes it: ``value``'s repr where that is one
    line of at most ``limit`` characters (a number, a name, a short tuple), a longer text cut
    (:func:`quoted`), anything else as :func:`describe_value` says it (an array by its shape: its
    repr runs over lines and quotes a whole array)."""
    text = repr(value)
    if len(text) <= limit and "\n" not in text:
        return text
    return quoted(value, limit) if isinstance(value, str) else describe_value(value)


def with_article(noun: str) -> str:
    """``noun`` after "a" or "an" as it is said: "an object", "an Image", "a tuple"; "a UUID",
    "a UserDict" (a "you" sound)."""
    lower = noun.lower()
    vowel = lower[:1] in ("a", "e", "i", "o", "u") and not lower.startswith(("uni", "use", "usa", "uu"))
    return f"{'an' if vowel else 'a'} {noun}"


def quoted(value: object, limit: int = 100) -> str:
    """``value``'s text quoted as a one-line error shows a setting, cut to its first ``limit``
    characters and "…" where it is longer: a 5000-character path would make a 5000-character line."""
    text = str(value)
    return repr(text if len(text) <= limit else f"{text[:limit]}…")


def _path_text(path: object) -> str:
    """A str, bytes or path-like path as text (bytes decoded as the file system does); anything
    else as its text."""
    return os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)


def quoted_path(path: object, limit: int = 200) -> str:
    """A path quoted as a one-line error names a file: whole where it has at most ``limit``
    characters, else its start and its end around "…" (``'/home/me/…/shots/take_07.png'``), so
    that the line stays short and still shows what finds the file, its name and the folders just
    above it (a 5000-character path made a 5000-character line). ``path``: a str, bytes or
    path-like; anything else is quoted as its text."""
    text = _path_text(path)
    if len(text) <= limit:
        return repr(text)
    head = limit // 4  # (where the path starts: which disk or home folder)
    return repr(f"{text[:head]}…{text[len(text) - (limit - head - 1):]}")


#: The longest path Linux takes (PATH_MAX); macOS and Windows take shorter ones.
MAX_PATH_CHARS = 4096


def path_to_copy(path: object) -> str:
    """A path quoted as the fix an error line offers, for the user to copy: whole (cut by
    :func:`quoted_path`, it would be no path), unless longer than any path a system takes."""
    text = _path_text(path)
    return repr(text) if len(text) <= MAX_PATH_CHARS else quoted_path(text)


def unusable_path_error(exc: BaseException) -> Gen3cInputError | None:
    """A path the user gave that no file can have (a name too long for the file system, a loop of
    symbolic links), met where a reader did not check for it first, as one line naming the path;
    None for any other error."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENAMETOOLONG, errno.ELOOP) and exc.filename is not None:
        return Gen3cInputError(f"path {quoted_path(os.fsdecode(exc.filename))} cannot be used ({exc.strerror}): check the paths given")
    return None


def first_few(names: list[str], limit: int = 3) -> str:
    """``names`` for a message: the first ``limit`` of them, and how many more ("a, b, c and 2 more")."""
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless one: "1 case", "4 cases"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def complex_refusal(name: str, dtype: object) -> str:
    """The one line that refuses complex values (an image, a depth, a camera matrix) as ``name``,
    its numpy or torch dtype named."""
    return f"{name} holds {str(dtype).removeprefix('torch.')} values: pass real numbers (its .real, where the imaginary part is 0)"


def meta_refusal(name: str) -> str:
    """The one line that refuses a meta tensor (shapes only, no values: ``torch.device("meta")``,
    a model built empty) as ``name``."""
    return f"{name} is a meta tensor, which holds no values: pass one on the CPU or a GPU"


# Per thread (and per asyncio task): a new thread starts with no collector, so notes of a
# generation running in another thread never land among those of an input being read here.
_NOTE_SINK: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("gen3c_note_sink", default=None)
_NOTE_RECORDS: contextvars.ContextVar[tuple[list[str], ...]] = contextvars.ContextVar("gen3c_note_records", default=())
_NOTE_SPELLING: contextvars.ContextVar[Callable[[str], str] | None] = contextvars.ContextVar("gen3c_note_spelling", default=None)


def note(message: str, stacklevel: int = 1) -> None:
    """Tell the user ``message``: appended to the innermost :func:`collect_notes` of this thread,
    else warned as a ``UserWarning`` attributed ``stacklevel`` frames above the caller (as
    :func:`warnings.warn` counts them from the caller). Each :func:`record_notes` around the
    call keeps a copy; one said already inside any of them (a run's) is not said again: a
    check that a later stage repeats (:func:`gen3c.pipelines.request.make_generator`'s, inside
    the record a generator pool keeps of its loading) notes once.
    Records keep ``message`` as written; it is said (collected or warned) as the innermost
    :func:`spelled_notes` spells it."""
    records = _NOTE_RECORDS.get()
    if any(message in record for record in records):
        return
    for record in records:
        record.append(message)
    spell = _NOTE_SPELLING.get()
    said = message if spell is None else spell(message)
    sink = _NOTE_SINK.get()
    if sink is not None:
        sink.append(said)
    else:
        warnings.warn(said, UserWarning, stacklevel=stacklevel + 1)


def noted(words: str) -> bool:
    """Whether a note holding ``words`` was said already inside a :func:`record_notes` around the
    call (a run's): a later check of the same cause stays silent. False outside any record."""
    return any(words in message for record in _NOTE_RECORDS.get() for message in record)


@contextlib.contextmanager
def spelled_notes(spell: Callable[[str], str]) -> Iterator[None]:
    """Say the :func:`note` calls made in this thread inside the block as ``spell`` rewrites them:
    notes are worded for ``gen3c generate``'s flags, and a surface that names its settings otherwise
    (a manifest row's keys, ``gen3c.generate()``'s keyword arguments: :mod:`gen3c.pipelines.spelling`)
    says them in its own words, as it does its refusals. :func:`record_notes` keeps them as written."""
    token = _NOTE_SPELLING.set(spell)
    try:
        yield
    finally:
        _NOTE_SPELLING.reset(token)


@contextlib.contextmanager
def spelled(spell: Callable[[str], str]) -> Iterator[None]:
    """:func:`spelled_notes`, and a :class:`Gen3cInputError` raised in the block respelled by
    ``spell`` too: a surface's refusals and notes in its own words."""
    try:
        with spelled_notes(spell):
            yield
    except Gen3cInputError as exc:
        exc.args = (spell(str(exc)),)
        raise


@contextlib.contextmanager
def collect_notes() -> Iterator[list[str]]:
    """Collect the :func:`note` calls made in this thread inside the block (in order, each once)
    into the list it yields, instead of warning them; other threads' notes are unaffected."""
    notes: list[str] = []
    token = _NOTE_SINK.set(notes)
    try:
        yield notes
    finally:
        _NOTE_SINK.reset(token)
        notes[:] = list(dict.fromkeys(notes))


@contextlib.contextmanager
def record_notes() -> Iterator[list[str]]:
    """Keep a copy of the :func:`note` calls made in this thread inside the block (in order, each
    once) in the list it yields, while they go on as they come: to the enclosing
    :func:`collect_notes`, else warned. A run's ``NAME_run.json`` lists its notes so."""
    notes: list[str] = []
    token = _NOTE_RECORDS.set((*_NOTE_RECORDS.get(), notes))
    try:
        yield notes
    finally:
        _NOTE_RECORDS.reset(token)
        notes[:] = list(dict.fromkeys(notes))


#: One :func:`caught_warnings` block at a time in the process: ``warnings.catch_warnings`` saves
#: and restores process-wide state, so two that overlap in time (the GUI reads images in
#: background threads) would each restore what the other set, leaving its filters or its
#: recorder in place for good. Re-entrant: a block may run inside another of its thread.
_WARNINGS_LOCK = threading.RLock()


@contextlib.contextmanager
def caught_warnings(*ignored: type[Warning]) -> Iterator[list[warnings.WarningMessage]]:
    """Record every warning this thread raises inside the block (each time, as the "always"
    filter does), except those of the ``ignored`` categories, in the list it yields.

    What ``warnings.catch_warnings(record=True)`` does, safe beside other threads: the blocks
    take turns (:data:`_WARNINGS_LOCK`), so each restores the filters and handler it found, and a
    warning another thread raises meanwhile is not recorded here (nor dropped): it goes on to
    the handler there was, unless the filters there were ignore it ("error" raises it in its
    thread). A filter naming a module is not matched for those (their module is not known
    here), and "once"/"default" show them each time. ``warnings.catch_warnings`` of code outside
    gen3c does not take the lock."""
    caught: list[warnings.WarningMessage] = []
    own = threading.get_ident()
    with _WARNINGS_LOCK, warnings.catch_warnings():
        filters, shown = list(warnings.filters), warnings.showwarning

        def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: object = None, line: str | None = None) -> None:
            if threading.get_ident() == own:
                if not issubclass(category, ignored):
                    caught.append(warnings.WarningMessage(message, category, filename, lineno, file, line))
                return
            action = _filter_action(filters, message, category, filename, lineno)
            if action == "error" and isinstance(message, Warning):
                raise message
            if action != "ignore":
                shown(message, category, filename, lineno, file, line)

        warnings.simplefilter("always")
        warnings.showwarning = show
        yield caught


def _filter_action(filters: list, message: Warning | str, category: type[Warning], filename: str, lineno: int) -> str:
    """The action of the first of ``filters`` (``warnings.filters``' entries) that matches a
    warning, as ``warnings.warn_explicit`` finds it; a filter naming a module matches none."""
    text = str(message)
    for action, pattern, kind, module, line in filters:
        if (pattern is None or pattern.match(text)) and issubclass(category, kind) and module is None and line in (0, lineno):
            return action
    return warnings.defaultaction
