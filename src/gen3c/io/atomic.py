"""Atomic file output: write to a temporary file beside the target, then rename over it, so a
crash or Ctrl-C never leaves a half-written output."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from gen3c.errors import Gen3cInputError, path_to_copy, quoted_path, raise_if_interrupted
from gen3c.io.paths import nearest_existing, on_windows, one_form, other_spelling, windows_name_problem

#: Longest base name of an output, in bytes: file systems allow 255, and an output's suffix
#: (``_buffer_masks.mp4``) and its temporary name (``.NAME….part.mp4``) take up to 32 more.
MAX_NAME_BYTES = 200


def _windows_problem(name: str, kind: str = "file") -> str | None:
    """Why Windows holds no ``kind`` ("file" or "folder") named ``name``
    (:func:`~gen3c.io.paths.windows_name_problem`), where gen3c runs on Windows; None elsewhere,
    where such a name is a name like any other."""
    return windows_name_problem(name, kind) if on_windows() else None


def check_output_name(name: str, what: str, patterns: Iterable[str] = ("{}",)) -> None:
    """Refuse a base name of output files (``what``, e.g. ``--video_save_name``) that is not one
    plain file name: empty or spaces alone, with a folder, ``.``/``..``, control characters, or too long; on
    Windows also one that makes a file name it holds no file under
    (:func:`~gen3c.io.paths.windows_name_problem`: ``nul.mp4`` opens the null device, and what is
    written there is lost; ``a:b.mp4`` writes a hidden stream of ``a``). ``patterns`` are the
    names of the files written under ``name`` (``"{}_depth.png"``); by default ``name`` followed by
    a suffix (``NAME.mp4``). Only those names count: ``gen3c depth --name nul`` writes
    ``nul_depth.png``, a name Windows holds. Elsewhere such names are file names like any other,
    kept: a run's outputs are not meant to travel as a batch's are (:mod:`gen3c.batch.manifest`
    refuses them everywhere)."""
    written = [pattern.format(name) for pattern in patterns] if isinstance(name, str) else []
    problem = next(filter(None, map(_windows_problem, written)), None)
    if problem is not None:  # (before the check for folders: Windows takes "a:b" for a drive's path)
        raise Gen3cInputError(f"{what} {name[:40]!r} {problem}: choose another name")
    if isinstance(name, str) and name and not name.strip():  # (files named " .mp4": there, but invisible in a listing)
        raise Gen3cInputError(f"{what} {name[:40]!r} is only spaces: pass a name")
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", "..") or any(ord(c) < 32 for c in name):
        raise Gen3cInputError(f"{what} {str(name)[:40]!r} must be a plain file name (no folders or control characters)")
    size = len(name.encode("utf-8", "surrogateescape"))
    if size > MAX_NAME_BYTES:
        raise Gen3cInputError(f"{what} {name[:20]!r}… is {size} bytes long: pass a name of at most {MAX_NAME_BYTES} bytes")


def check_video_name(name: str, what: str) -> None:
    """:func:`check_output_name` for the base name of a video, to which gen3c adds ``.mp4`` itself
    (a name ending in it would make ``NAME.mp4.mp4``)."""
    check_output_name(name, what)
    if name.lower().endswith(".mp4"):
        raise Gen3cInputError(f"{what} {name[:40]!r} ends in .mp4, which gen3c adds itself: pass {name[:-4][:40]!r}")


def check_output_targets(paths: Iterable[str | os.PathLike], hint: str) -> None:
    """Refuse to start writing outputs when one of their ``paths`` is taken by a folder (a file
    there is replaced), or, on Windows, where their names are none it holds a file under
    (:func:`~gen3c.io.paths.windows_name_problem`: ``con.json`` opens the console there); ``hint``
    says how to choose other names, e.g. "pass another --name"."""
    for path in map(Path, paths):
        problem = _windows_problem(path.name)
        if problem is not None:
            raise Gen3cInputError(f"output {quoted_path(path)}: {path.name[:40]!r} {problem}: {hint}")
        try:
            taken = path.is_dir()
        except OSError as exc:  # a name too long for the file system
            raise _cannot_write(path, exc) from None
        if taken:
            raise Gen3cInputError(f"output {quoted_path(path)} is a folder: move it away, or {hint}")


def check_output_spelling(paths: Iterable[str | os.PathLike], hint: str) -> None:
    """Refuse outputs named by the user (a run's, ``gen3c depth``'s) where the file system takes one
    of their ``paths`` for an entry of its folder spelled in another case (:func:`~gen3c.io.paths.other_spelling`:
    on macOS and Windows ``demo.mp4`` is the ``Demo.mp4`` there): writing it would replace another
    run's file, or the user's, under a name they did not ask for. An entry that differs only in its
    Unicode form is the same name, written as it was asked for (HFS+ lists ``café`` with é as e and
    a combining accent however it was typed), and is replaced. ``hint`` as :func:`check_output_targets`'."""
    for path in map(Path, paths):
        other = replaced_spelling(path)
        if other is not None:
            raise Gen3cInputError(
                f"output {quoted_path(path)} would replace {other!r} there, the same file to this file system (it ignores case, "
                f"as macOS and Windows do): {hint}, or spell the name as that file's is, to replace it"
            )


def replaced_spelling(path: str | os.PathLike) -> str | None:
    """The name of the entry of ``path``'s folder that writing ``path`` would replace though it is
    spelled in another case (:func:`~gen3c.io.paths.other_spelling`, on a file system that ignores
    case); None where there is none, or it differs only in its Unicode form (the same name)."""
    other = other_spelling(path)
    if other is None or one_form(other) == one_form(Path(path).name):
        return None
    return other


def _cannot_write(target: Path, exc: OSError) -> Gen3cInputError:
    """The refusal of an output ``target`` whose file could not be made, with the fix for its cause."""
    fix = {
        errno.ENOENT: f"create the folder {quoted_path(target.parent)} first, or choose one that exists",
        errno.ENOTDIR: "a part of that path is a file, not a folder: choose a folder",
        errno.ENAMETOOLONG: "choose a shorter name",
    }.get(exc.errno, "choose a writable folder")
    return Gen3cInputError(f"output {quoted_path(target)} cannot be written ({exc.strerror}): {fix}")


#: What to do about an output that the system refused to write or flush, by the error's cause.
_WRITE_ADVICE = {
    errno.ENOSPC: "free some space in {folder} (or write elsewhere) and run again",
    errno.EDQUOT: "the disk quota for {folder} is used up: free some space or write elsewhere, and run again",
    errno.EIO: "the disk reported a write error: check the disk of {folder}, or write elsewhere, and run again",
    errno.EROFS: "{folder} is on a read-only file system: write elsewhere",
    errno.EACCES: "check the permissions of {folder} and run again",
    errno.EPERM: "check the permissions of {folder} and run again",
    errno.ENOENT: "the folder {folder} was removed while the outputs were written: run again",
}


def write_failure(what: str, folder: str | os.PathLike, exc: BaseException) -> Gen3cInputError | None:
    """The one-line refusal of outputs (``what``, e.g. ``"video 'out/a.mp4'"``) that the system
    would not write or flush into ``folder`` (a full disk, a quota, a write error, a folder made
    read-only or removed meanwhile), naming the cause and what to do; None for any other error."""
    if not isinstance(exc, OSError) or exc.errno not in _WRITE_ADVICE:
        return None
    advice = _WRITE_ADVICE[exc.errno].format(folder=path_to_copy(folder))
    return Gen3cInputError(f"{what} could not be written ({exc.strerror or os.strerror(exc.errno)}): {advice}")


def _refuse_windows_folder(path: Path, what: str) -> None:
    """Refuse, on Windows, an output folder ``path`` (``what``, e.g. ``--output_folder``) whose last
    part is a name Windows holds no folder under (``out/nul``: the null device, ``a:b``: a hidden
    stream of ``a``). Only the last part, the folder the option names: the parts above it are
    where the user keeps things (an existing ``aux.d`` made elsewhere is not questioned)."""
    problem = _windows_problem(path.name, "folder")
    if problem is not None:
        name = path.name[:40]
        raise Gen3cInputError(f"{what} {quoted_path(path)}: {name!r} {problem}: choose another folder")


def _unusable_path(path: Path, what: str, exc: OSError | ValueError) -> Gen3cInputError:
    """The refusal of ``what`` at ``path``, a name the system refuses to look at: too long (an
    OSError), with a NUL character (a ValueError)."""
    if isinstance(exc, ValueError):
        return Gen3cInputError(f"{what} {quoted_path(path)} holds a NUL character, which no path can: remove it")
    fix = "choose a shorter name" if exc.errno == errno.ENAMETOOLONG else "choose another folder"
    return Gen3cInputError(f"{what} {quoted_path(path)} cannot be used ({exc.strerror or exc}): {fix}")


def ensure_writable_dir(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Create ``folder`` if needed and check that files can be written there. A folder created
    here is on the disk (its parent flushed) before outputs are published into it: else a power
    cut soon after could lose the folder with the outputs that were flushed into it. On Windows a
    last part it holds no folder under (``out/nul``) is refused (:func:`_refuse_windows_folder`)."""
    path = Path(folder)
    _refuse_windows_folder(path, what)  # (first: Windows finds its devices "there", as files)
    try:
        taken = path.exists() and not path.is_dir()
        created = [path] if not taken and not path.exists() else []
        while created and not created[-1].parent.exists() and created[-1].parent != created[-1]:
            created.append(created[-1].parent)  # (deepest first)
    except (OSError, ValueError) as exc:
        raise _unusable_path(path, what, exc) from None
    if taken:
        raise Gen3cInputError(f"{what} {quoted_path(path)} is a file, not a folder: choose a folder path")
    if created and path.is_symlink():  # (exists() follows links: a link to nowhere, or a loop of links)
        raise Gen3cInputError(
            f"{what} {quoted_path(path)} is a symbolic link to {quoted_path(os.readlink(path))}, which is no folder (missing, or a loop of links): "
            "make the folder it points to, or choose another path"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except ValueError as exc:  # a NUL character
        raise _unusable_path(path, what, exc) from None
    except OSError as exc:
        raise Gen3cInputError(f"{what} {quoted_path(path)} cannot be created ({exc.strerror}): choose a writable folder") from None
    if not path.is_dir():
        raise Gen3cInputError(f"{what} {quoted_path(path)} is not a folder: choose a folder path")
    if not os.access(path, os.W_OK | os.X_OK):
        raise Gen3cInputError(f"{what} {quoted_path(path)} is not writable: choose a writable folder or fix its permissions")
    for made in created:
        _fsync(made.parent)
    return path


def check_writable_place(path: str | os.PathLike, what: str, *, beside: bool = False) -> None:
    """Refuse an output ``path`` (a file or folder to be made there, or a folder to write into)
    that cannot be written, without creating anything: the nearest existing folder at or above
    it must be writable (above it with ``beside``: the output is made beside ``path`` under a
    temporary name and renamed onto it), nor, on Windows, a last part it holds none under
    (:func:`_refuse_windows_folder`). For runs that do their slow work (loading a model) before
    they create their output."""
    path = Path(path).expanduser()
    _refuse_windows_folder(path, what)
    try:
        place = nearest_existing(path.parent if beside else path)
    except OSError as exc:  # a name too long for the file system
        raise _unusable_path(path, what, exc) from None
    if not place.is_dir():
        raise Gen3cInputError(f"{what} {quoted_path(path)} cannot be created: {quoted_path(place)} is a file: choose a folder path")
    if not os.access(place, os.W_OK | os.X_OK):
        where = "" if place == path else f" ({quoted_path(place)} is not writable)"
        raise Gen3cInputError(f"{what} {quoted_path(path)} cannot be written{where}: choose a writable folder or fix its permissions")


@contextlib.contextmanager
def removed_if_left_empty(folder: str | os.PathLike | None) -> Iterator[None]:
    """Around a run that may create ``folder`` (and missing parents): if the run fails, the
    folders it created and left empty are removed again, so an early error leaves nothing."""
    missing: list[Path] = []
    try:
        path = Path(folder).absolute() if folder else None
        while path is not None and not path.exists() and path != path.parent:
            missing.append(path)  # deepest first
            path = path.parent
    except (OSError, ValueError, TypeError):  # not a usable path: the run says so itself
        missing = []
    try:
        yield
    except BaseException:
        for path in missing:
            try:
                path.rmdir()  # only an empty folder goes
            except OSError:
                break
        raise


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` (same suffix); on success it replaces ``target``.

    On any exception the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    check_output_targets([target], "choose another output name")
    try:  # (named after this process, so a later run can tell one a killed run left: remove_abandoned_parts)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.{os.getpid()}@{_host()}-", suffix=f".part{target.suffix}", dir=target.parent)
    except OSError as exc:  # a missing or read-only folder, a name too long for the file system
        raise _cannot_write(target, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        publish(tmp_path, target)  # (mkstemp creates 0600 files)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) and SIGTERM back inside the block and act on them after it: around
    the few renames that publish a set of outputs, so that an interrupt leaves either the earlier
    set or the new one, never a mix. Only the main thread receives signals; elsewhere this does
    nothing. Keep the block short: a held-back Ctrl-C waits for it."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig, handler in previous.items():
        if handler is not None:  # (None: a handler not set from Python, left alone)
            signal.signal(sig, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)
        if held:
            signal.raise_signal(held[0])  # now handled as it would have been (KeyboardInterrupt, …)


@contextlib.contextmanager
def atomic_paths(targets: Mapping[str, str | os.PathLike]) -> Iterator[dict[str, Path]]:
    """:func:`atomic_path` for a set of outputs that belong together (by key): the temporary
    paths replace their targets one after the other when the block ends without an error, with
    Ctrl-C held back for those renames (:func:`signals_deferred`), so the folder holds the
    earlier set or the new one, never a mix; on any error every temporary file goes."""
    with contextlib.ExitStack() as stack:
        yield {key: stack.enter_context(atomic_path(path)) for key, path in targets.items()}
        raise_if_interrupted()  # a Ctrl-C that Python dropped in a finalizer publishes nothing
        with signals_deferred():
            stack.close()


def remove_stale_parts(folder: str | os.PathLike, names: Iterable[str]) -> int:
    """Delete the temporary files :func:`atomic_path` made for the outputs ``names`` in ``folder``
    that a killed run left (``.STEM.RANDOM.part.EXT``); returns how many. RANDOM has no dot, so
    output ``a.mp4``'s never match ``a.v2.mp4``'s, which another run may be writing."""
    import glob
    import re

    removed = 0
    for name in names:
        target = Path(name)
        own = re.compile(rf"\.{re.escape(target.stem)}\.[^.]+\.part{re.escape(target.suffix)}")
        for part in Path(folder).glob(f".{glob.escape(target.stem)}.*.part{target.suffix}"):
            if own.fullmatch(part.name):
                with contextlib.suppress(OSError):
                    part.unlink()
                    removed += 1
    return removed


def remove_abandoned_parts(folder: str | os.PathLike, names: Iterable[str] | None = None) -> int:
    """Delete the temporary files :func:`atomic_path` made for the outputs ``names`` in ``folder``
    (None: for any output, as in a folder of uploads, each under its own name) whose process is
    gone (``kill -9``, the out-of-memory killer, a power cut): a run that is killed so never
    removes them, and a video's can be large. Those of a process still running (another run of
    the same name into the same folder), of another machine (a shared file system) or without a
    process in their name (an older gen3c's) are kept; returns how many went."""
    import re

    patterns = [(r".+", r"(?:\.[^.]*)?", ".*.part*")] if names is None else [
        (re.escape(Path(name).stem), re.escape(Path(name).suffix), f".*.part{Path(name).suffix}") for name in names
    ]  # fmt: skip
    removed = 0
    for stem, suffix, pattern in patterns:
        own = re.compile(rf"\.{stem}\.(\d+)@([A-Za-z0-9-]*)-[^.-]+\.part{suffix}")
        for part in Path(folder).glob(pattern):
            match = own.fullmatch(part.name)
            if match and match[2] == _host() and not process_alive(int(match[1])) and not part.is_dir():
                with contextlib.suppress(OSError):
                    part.unlink()
                    removed += 1
    return removed


def make_staging_dir(folder: str | os.PathLike, tag: str) -> Path:
    """A new hidden folder ``.TAG.PID@HOST.RANDOM.part`` in ``folder``, where a run makes outputs
    before it publishes them. Its name says which process made it, so that a later run can tell
    one a killed run left (:func:`remove_abandoned_staging`) from one still in use."""
    return Path(tempfile.mkdtemp(prefix=f".{tag}.{os.getpid()}@{_host()}.", suffix=".part", dir=folder))


def remove_abandoned_staging(folder: str | os.PathLike, tag: str) -> int:
    """Delete the folders :func:`make_staging_dir` made in ``folder`` for ``tag`` whose process is
    gone (a run killed with ``kill -9``, a machine that lost power); returns how many. Folders of
    a process still running (e.g. another run into the same folder), of another machine (a
    shared file system: its processes cannot be seen from here) or of another name are kept."""
    import re
    import shutil

    own = re.compile(rf"\.{re.escape(tag)}\.(\d+)@([A-Za-z0-9-]*)\.[^.]+\.part")
    removed = 0
    for path in Path(folder).glob(f".{tag}.*.part"):
        match = own.fullmatch(path.name)
        if match and match[2] == _host() and not process_alive(int(match[1])) and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            removed += not path.exists()
    return removed


def _host() -> str:
    """This machine's name as it may appear in a file name."""
    import re
    import socket

    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40]


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (True when that cannot be told). On Windows
    the system is asked for the process and its exit code (:func:`_windows_process_alive`):
    ``os.kill(pid, 0)`` there would end it, whatever the signal."""
    if on_windows():
        return _windows_process_alive(pid)
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):  # another user's process; a pid beyond the system's range
        return True
    return True


#: Windows' numbers for :func:`_windows_process_alive`: the right to ask a process's exit code,
#: the exit code of one still running, and OpenProcess's error for a process id no process has.
_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
_STILL_ACTIVE = 259
_ERROR_INVALID_PARAMETER = 87


def _kernel32() -> tuple[Any, Callable[[], int]]:
    """Windows' kernel32, its functions typed for :func:`_windows_process_alive` (a handle is as
    wide as a pointer), and the reader of the error its last call set."""
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = ctypes.c_void_p
    kernel32.OpenProcess.argtypes = (ctypes.c_ulong, ctypes.c_int, ctypes.c_ulong)
    kernel32.GetExitCodeProcess.argtypes = (ctypes.c_void_p, ctypes.POINTER(ctypes.c_ulong))
    kernel32.CloseHandle.argtypes = (ctypes.c_void_p,)
    return kernel32, ctypes.get_last_error


def _windows_process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this Windows machine: one that OpenProcess finds no process
    for (ERROR_INVALID_PARAMETER) or whose exit code is set (ended, its handle still held
    elsewhere) does not; one it may not open (another user's, a protected one) or a number no
    process id can be is taken as running, as anything that cannot be told. (One that ended with
    exit code 259, STILL_ACTIVE's own value, is taken as running too: Python, gen3c and Windows'
    kills end with other codes; telling it apart needs SYNCHRONIZE, which protected processes deny.)"""
    import ctypes

    if not 0 <= pid < 2**32:
        return True
    kernel32, last_error = _kernel32()
    handle = kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid)
    if not handle:
        return last_error() != _ERROR_INVALID_PARAMETER
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == _STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def _umask() -> int:
    """This process's umask. Read from /proc where Linux shows it: setting it to learn it (the
    fallback) leaves it 0 for a moment in every thread, so a file another thread creates
    then (a video writer's, a batch job's) would be writable by anyone."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0)
    os.umask(umask)
    return umask


def publish(finished: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move a finished file or folder into place (``os.replace``), with the permissions a plain
    ``open()`` / ``mkdir()`` here would have given it and everything in it (0666 / 0777 less
    the umask).

    Outputs are made under temporary names and published whole; the tools that make them do not
    all leave plain permissions: ``tempfile`` creates owner-only files and folders, and
    safetensors ≥ 0.8 writes its files 0600 — a converted checkpoint, a trained model or a
    checkpoint would be unreadable to the other users of a shared machine or weights cache.

    Each file's bytes are flushed to the disk (``fsync``) before the rename, and the rename after
    it: else a power cut soon after can leave the new name on an empty file (XFS, btrfs, ext4
    without ``auto_da_alloc``). A folder's entries are flushed the same way, every subfolder's
    after the files in it and the folder's own last, else a power cut can lose a subfolder's
    files though each was flushed; a file or folder whose flush did not reach the disk (a write
    error, a full disk NFS reports only then) raises that ``OSError`` and nothing is published.
    On macOS ``fsync`` ends at the drive, whose own cache only ``F_FULLFSYNC`` empties; on
    Windows nothing is flushed (its flush needs the file opened for writing). A ``target`` that
    is a symbolic link is itself replaced, not the file it points to. On Windows the rename
    fails while another program holds ``target`` open.
    """
    finished = Path(finished)
    umask = _umask()
    paths = [finished, *finished.rglob("*")] if finished.is_dir() and not finished.is_symlink() else [finished]
    paths = [path for path in paths if not path.is_symlink()]
    for path in paths:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)
    for path in reversed(paths):  # (rglob lists a folder before what it holds: flushed after it)
        _fsync(path, before_rename=True)
    os.replace(finished, target)
    _fsync(Path(target).parent)


#: What ``fsync`` says when a file's bytes did not reach the disk: a write error, or a full disk or
#: quota that NFS (and thin-provisioned storage) report only then.
_NOT_WRITTEN = (errno.EIO, errno.ENOSPC, errno.EDQUOT)


def _fsync(path: Path, before_rename: bool = False) -> None:
    """Flush ``path`` (a file, or a folder: its entries) to the disk, where the system allows it:
    Windows opens no folder so, some file systems refuse (EINVAL). A file or folder
    ``before_rename`` whose flush did not reach the disk (:data:`_NOT_WRITTEN`) raises, so that it
    is not published; any other refusal leaves it whole, and a folder flushed after the rename
    holds the output already."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if before_rename and exc.errno in _NOT_WRITTEN:
            exc.filename = str(path)  # (fsync's own error names no file)
            raise
    finally:
        os.close(fd)


def flush_files(paths: Iterable[str | os.PathLike]) -> None:
    """Flush files to the disk ahead of publishing them together (:func:`publish` flushes each
    again, then at no cost): the ``OSError`` of one whose bytes did not reach the disk (a full
    disk, a write error) comes before any of them is renamed into place."""
    for path in paths:
        _fsync(Path(path), before_rename=True)


def replace_folder(finished: str | os.PathLike, target: str | os.PathLike) -> None:
    """:func:`publish` a finished folder over ``target``, which may already hold an older one
    (a rename cannot replace a folder): the old one is moved aside to ``.NAME.old`` beside the
    finished one, the new one put in place, then the old one removed — with signals deferred, so
    ``target`` is never missing, and a failed rename puts the old one back."""
    import shutil

    finished, target = Path(finished), Path(target)
    aside = finished.with_name(f"{finished.name}.old")
    shutil.rmtree(aside, ignore_errors=True)  # of a run stopped in here
    with signals_deferred():
        old = target.rename(aside) if target.exists() else None
        try:
            publish(finished, target)
        except BaseException:
            if old is not None:
                old.rename(target)
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


@contextlib.contextmanager
def try_flock(path: str | os.PathLike, missing: bool = False, held: Exception | None = None) -> Iterator[bool]:
    """Take the operating system's exclusive lock (``flock``) on ``path`` (a file or a folder)
    without waiting: True while held (released when the block ends, or when the process ends,
    however it ends), False when another process holds it or it cannot be told (no ``fcntl``, a
    file system without ``flock``, a path that cannot be opened); ``missing``: what a path that
    does not exist gives; ``held``: raised instead of giving False when another process (or
    another open of ``path``) holds the lock, so a caller tells that from a lock that cannot be
    told. Opened read-only, so a read-only file system is no obstacle."""
    try:
        import fcntl
    except ImportError:
        yield False
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield missing
        return
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # held (EWOULDBLOCK)
            if held is not None:
                raise held from None
            yield False
            return
        except OSError:  # flock unsupported (ENOLCK, EOPNOTSUPP: some network file systems)
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock
