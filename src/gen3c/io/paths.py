"""What a setting's text names on disk, told without torch and without a traceback: whether it
can only be a path (:func:`looks_like_path`), the path with its ``~`` expanded
(:func:`expand_home`; a file reader's or writer's argument checked too: :func:`reader_path`,
:func:`writer_path`), and whether it is a folder or a file where the text is one no file can
have (:func:`is_dir`, :func:`is_file`: a name too long for the file system, a NUL byte); where a
path not made yet would be created (:func:`nearest_existing`); the names that macOS and Windows
take for one file (:func:`one_file_key`), and the file a folder holds under another spelling of
a name (:func:`other_spelling`); why Windows can hold no file of a name (:func:`windows_name_problem`)."""

from __future__ import annotations

import os
import stat
import unicodedata
from pathlib import Path

from gen3c.errors import Gen3cInputError, describe_value, quoted_path

#: A name ending so is a checkpoint file (``model.pt``), never a hub id.
CHECKPOINT_SUFFIXES = (".pt", ".pth")


def looks_like_path(value: str) -> bool:
    """Whether ``value`` of a setting that takes a name, a hub id ("owner/name") or a path
    (``depth_estimator``, ``checkpoint_dir``) can only be a path: it starts with '.', '/' or '~',
    has two '/' or more, or ends in a checkpoint suffix (``model.pt``). Blank space around it is
    no part of it; an empty value is no path."""
    text = value.strip()
    return text.startswith((".", "/", "~")) or text.count("/") > 1 or text.rstrip("/").lower().endswith(CHECKPOINT_SUFFIXES)


def expand_home(value: str | os.PathLike, what: str = "path") -> Path:
    """``value`` as a path with a leading ``~`` or ``~user`` expanded, as a shell does.

    Raises:
        Gen3cInputError: ``~user`` of no user on this machine, or ``~`` with no HOME (``what``
            names the setting).
    """
    try:
        return Path(value).expanduser()
    except RuntimeError:  # Path.expanduser's "Could not determine home directory"
        text = os.fspath(value)
        user = str(text)[1:].replace("\\", "/").split("/", 1)[0]
        whose = f"the home folder of {user!r}, no user on this machine" if user else "the home folder, which this machine does not define (no HOME)"
        raise Gen3cInputError(f"{what} {quoted_path(text)} starts with ~{user}, {whose}: write the path out in full") from None


def reader_path(value: object, name: str, kind: str, fix: str = "") -> Path:
    """The path a public reader was given (``load_depth``, ``read_video``, ``read_camera_file``), its
    ``~`` expanded (:func:`expand_home`) as the command line and ``gen3c.generate`` expand it.

    Args:
        name: what the file is called in errors ("depth file"); ``kind``: what to pass instead,
            with its article ("a depth file"); ``fix``: added to the refusal of a value that is no path.
    Raises:
        Gen3cInputError: ``value`` is no path (a number, None, a dict, an array: Path's raw
            TypeError before), or starts with ``~user`` of no user.
    """
    if not isinstance(value, (str, os.PathLike)):
        raise Gen3cInputError(f"{name} is {describe_value(value)}: pass the path to {kind} (a str or a pathlib.Path){fix}")
    return expand_home(value, name)


def writer_path(value: object, name: str, kind: str, suffix: str | None = None, writes: str = "") -> Path:
    """The path a public writer was given (``write_video``, ``save_image``, ``save_cameras``,
    ``save_outputs``' folder), checked and expanded as :func:`reader_path` does a reader's: without
    it ``"~/out.mp4"`` went into a folder named ``~`` in the current one.

    Args:
        name: the argument in errors ("write_video path"); ``kind``: what is written there, with
            its article ("the video").
        suffix: the one file type the writer writes (".png"), any case, or None for any name;
            ``writes``: what it writes, for the refusal ("save_image writes PNG").
    Raises:
        Gen3cInputError: ``value`` is no path, starts with ``~user`` of no user, or does not end
            in ``suffix`` (a camera file saved as "cams.png" is misread by whatever goes by its name).
    """
    target = reader_path(value, name, f"write {kind} to")
    if suffix is not None and target.suffix.lower() != suffix:
        raise Gen3cInputError(f"{name} {quoted_path(target)} does not end in {suffix}: {writes}; pass a name ending in {suffix}")
    return target


def exists(path: str | os.PathLike) -> bool:
    """Whether ``path`` (its ``~`` expanded) exists; False for a name no file can have (too long,
    a NUL byte, an unknown ~user)."""
    try:
        return Path(path).expanduser().exists()
    except (OSError, ValueError, RuntimeError):  # RuntimeError: expanduser's unknown home
        return False


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` are one file (a link, another spelling); False where either is
    missing or cannot be looked at."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def is_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder; False for a name no folder can have (too long, a NUL byte)."""
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def special_file(path: str | os.PathLike) -> str | None:
    """What ``path`` is where it is neither a file nor a folder, which no reader may open: "a named
    pipe" (opening one blocks until something writes to it: ``mkfifo``, a shell's ``<(…)``), "a
    socket", "a device"; None for a file, a folder, or a path that is none."""
    try:
        mode = os.stat(Path(path).expanduser()).st_mode
    except (OSError, ValueError, RuntimeError):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else None


def refuse_special_file(path: str | os.PathLike, what: str) -> None:
    """Refuse ``what`` at ``path`` where it is a named pipe, a socket or a device
    (:func:`special_file`): a reader that opened a pipe would wait for ever."""
    kind = special_file(path)
    if kind is not None:
        raise Gen3cInputError(f"{what} {quoted_path(os.fspath(path))} is {kind}, not a file: write its contents to a file and pass that")


def nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing parent: where a file or folder to be
    made at ``path`` (and the folders above it) would be created, so whose disk and permissions count."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def is_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file; False for a name no file can have (too long, a NUL byte)."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


#: Characters Windows takes in no file name (besides control characters, refused for every system).
WINDOWS_FORBIDDEN = '<>:"\\|?*'
#: Windows' device names: no file there can be one of them, with any extension (``CON.mp4`` is CON).
WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", *(f"{port}{n}" for port in ("COM", "LPT") for n in "123456789\u00b9\u00b2\u00b3")}
)


def on_windows() -> bool:
    """Whether gen3c runs on Windows, where an output name of :func:`windows_name_problem` is refused."""
    return os.name == "nt"


def windows_name_problem(name: str, kind: str = "file") -> str | None:
    """Why Windows can hold no file named ``name``, or ``name`` followed by a suffix (an output's
    base name: ``NAME.mp4``), in words ("holds ':', which …"); None where it can. ``kind``: what
    the name is for, as the words say it ("file", or "folder" for an output folder). ``name`` holds one
    of ``<>:"\\|?*`` (``:`` names a file's hidden stream there, ``\\`` a folder), or the part of it
    before its first dot, trailing spaces dropped, is a device name (``con``, ``nul.v2``, ``COM1``):
    the system's device is opened instead, and what is written to it lost. (A trailing dot or
    space, which Windows drops, is left alone: gen3c's outputs all end in their suffix.)"""
    bad = next((c for c in name if c in WINDOWS_FORBIDDEN), None)
    if bad is not None:
        return f"holds {bad!r}, which Windows takes in no {kind} name ({' '.join(WINDOWS_FORBIDDEN)})"
    device = name.split(".")[0].rstrip(" ")
    if device.upper() not in WINDOWS_DEVICES:
        return None
    what = "is" if device == name else f"starts with {device!r},"
    return f"{what} a device name on Windows (CON, PRN, AUX, NUL, CONIN$, CONOUT$, COM1…9, LPT1…9), which no {kind} there can have"


def _windows_case(text: str) -> str:
    """``text`` with each character in its upper case where that is one character, as Windows
    compares names (NTFS's table of upper cases maps a character to one): ``a`` is ``A``, but ``ß``
    (upper case "SS") stays ``ß`` and ``ẞ`` ``ẞ``: ``straße.mp4`` and ``strasse.mp4`` are two files there."""
    return "".join(upper if len(upper := c.upper()) == 1 else c for c in text)


def one_file_key(name: str) -> str:
    """``name`` as file systems that take two spellings for one file compare it: case-folded in
    full (macOS's APFS: A.mp4 is a.mp4, and straße.mp4 is STRASSE.mp4, as ß folds to ss; Windows
    folds fewer, one character to one) and in one Unicode normal form (macOS: "café" with é as one
    character or as e and a combining accent). Two names that are one file on macOS or Windows
    have one key; names of one key may be two files on Windows (ß, ss)."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())


def one_form(name: str) -> str:
    """``name`` in one Unicode normal form (NFC): "café" written with é as one character and as e
    and a combining accent is one name (macOS lists it in the second however it was typed), which
    a run writes and replaces as it was asked for. Case still counts (:func:`one_file_key` not)."""
    return unicodedata.normalize("NFC", name)


def one_file_note(mine: str, theirs: str) -> str:
    """Why ``mine`` and ``theirs`` (of one :func:`one_file_key`, spelled differently) are one file,
    in words: "as THEIRS: one file on macOS and Windows" (they differ in case), "as THEIRS: one
    file on macOS" (in a case Windows keeps apart: ß and ss), or "as THEIRS, in another Unicode
    form: one file on macOS" (the same letters, one written as a letter and a combining accent)."""
    if _windows_case(mine) == _windows_case(theirs):
        return f"as {theirs}: one file on macOS and Windows"
    if mine.casefold() == theirs.casefold():
        return f"as {theirs}: one file on macOS"
    return f"as {theirs}, in another Unicode form: one file on macOS"


def _found_as_spelled(path: Path) -> bool:
    """Whether the file system finds an entry at ``path``, under whatever spelling it takes for
    ``path``'s name (a case-insensitive one finds ``Demo.mp4`` at ``demo.mp4``)."""
    return os.path.lexists(path)


def other_spelling(path: str | os.PathLike) -> str | None:
    """The name of the entry of ``path``'s folder that the file system takes ``path`` for though it
    is spelled otherwise: on macOS and Windows (case-insensitive, and on macOS blind to Unicode
    forms) ``out/demo.mp4`` is the ``Demo.mp4`` already there, which writing ``demo.mp4`` replaces.
    None where the folder holds ``path`` as spelled, or nothing under that name (a case-sensitive
    system: ``Demo.mp4`` and ``demo.mp4`` are two files), or cannot be listed.

    The folder is listed only where the file system finds ``path`` under its ASCII letters' other
    case too (it ignores case): on Linux a name used before (a run's outputs made again) costs two
    lookups, not a listing of an output folder that may hold many thousands of files. (Where the
    file system tells case but not Unicode forms, APFS's case-sensitive volumes, an entry spelled
    in another Unicode form only is not looked for: it is the same name.)

    Of the folder's names, the one that is ``path``'s file (the same device and inode) is told:
    where it holds two of one :func:`one_file_key` (``k.mp4`` and ``K.mp4`` with the Kelvin sign,
    two files on NTFS, for ``K.mp4``) the first listed was told before, which may be the other.
    Where no name of the key is the file by its inode (a file system that tells no inode, 0, or
    numbers a file by the name it was looked up by: some network shares) the first name of the
    key is told; only where the folder holds no name of the key (a file system folding beyond it)
    are all its names stat'ed, to find the file's."""
    path = Path(path)
    swapped = "".join(c.swapcase() if c.isascii() else c for c in path.name)
    try:
        if not _found_as_spelled(path):  # (one lookup: the common case, a new name, lists nothing)
            return None
        if swapped != path.name and not _found_as_spelled(path.with_name(swapped)):
            return None  # this folder tells case: what was found is ``path`` itself
        names = os.listdir(path.parent)
    except (OSError, ValueError):
        return None
    if path.name in names:
        return None
    key = one_file_key(path.name)
    spelled = [name for name in names if one_file_key(name) == key]
    mine = _file_id(path)
    if mine is not None:
        found = next((name for name in spelled or names if _file_id(path.parent / name) == mine), None)
        if found is not None or not spelled:
            return found
    return spelled[0] if spelled else None


def _file_id(path: Path) -> tuple[int, int] | None:
    """The device and inode of the entry at ``path`` (a link itself, not what it points to); None
    where there is none, or the file system tells no inode (0: some network and FAT volumes)."""
    try:
        info = os.lstat(path)
    except (OSError, ValueError):
        return None
    return (info.st_dev, info.st_ino) if info.st_ino else None


__all__ = [
    "CHECKPOINT_SUFFIXES",
    "WINDOWS_DEVICES",
    "WINDOWS_FORBIDDEN",
    "exists",
    "expand_home",
    "is_dir",
    "is_file",
    "looks_like_path",
    "on_windows",
    "one_file_key",
    "one_form",
    "one_file_note",
    "other_spelling",
    "reader_path",
    "refuse_special_file",
    "special_file",
    "windows_name_problem",
    "writer_path",
]
