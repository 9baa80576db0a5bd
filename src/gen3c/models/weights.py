"""GEN3C's official weights in one call: fetched from the Hugging Face Hub, checked, converted
once, and kept in a versioned cache folder.

:func:`prepare_weights` is what ``gen3c generate --generator gen3c`` without ``--checkpoint_dir``,
``gen3c download`` and ``Gen3cPipeline.from_pretrained("nvidia/Gen3C-Cosmos-7B")`` run:

1. **Reuse.** The converted checkpoint lives in ``CACHE/Gen3C-Cosmos-7B-v<FORMAT_VERSION>``
   (CACHE: ``--cache_dir``, else ``$GEN3C_CACHE_DIR``, else ``$XDG_CACHE_HOME/gen3c``, else
   ``~/.cache/gen3c``). When it is there and its manifest holds (file sizes), nothing else
   happens: no network request, no hashing.
2. **Fetch** what the run needs and the hub cache lacks, with huggingface_hub (so ``HF_HOME``,
   ``HF_HUB_CACHE``, ``HF_TOKEN``, ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` apply, and its
   progress bars show; where stderr is not a terminal, gen3c's lines instead,
   :class:`_FetchProgress`): GEN3C's DiT (``model.pt``) and tokenizer (``encoder.jit``,
   ``decoder.jit``, ``mean_std.pt``) for the conversion, and T5-11B only to compute the prompt
   cache (the T5 embeddings of the empty prompt and of GEN3C's default negative prompt, made
   once) or to encode a prompt outside it. Sizes come from the hub's file listing and are
   checked against the free disk space before the first byte.
3. **Check** each fetched file once: its size, the sha256 the hub lists for LFS files, and the
   MD5 sum GEN3C's ``scripts/download_gen3c_checkpoints.py`` publishes for it; a mismatch
   fetches that file again, once. Checked files are recorded in ``CACHE/downloads.json`` (size,
   modification time, sha256), so they are not hashed again; one whose modification time
   changed, or in a hub cache that moved, is checked again (offline: against the record,
   :class:`_Record`).
4. **Convert** with :func:`gen3c.models.convert.convert_components` (the conversion report
   must account for every key) into ``CACHE/.incomplete-*/``, add the manifest
   ``gen3c_weights.json``, and rename into place: a conversion killed half-way leaves only the
   temporary folder, which the next run removes and redoes.

One process prepares at a time (a lock file in CACHE, taken only when something must be written:
reusing a finished conversion needs no write access); others wait for it, then reuse. A process
that prepared weights holds what it reads (the checkpoint, T5's hub repository) with a shared
lock until it ends, so ``gen3c cache remove`` refuses to delete them under it
(:func:`hold_for_reading`). Within a
run huggingface_hub continues a dropped connection from the last byte (HTTP Range); files
already complete are kept. A file a stopped run left half-way is fetched again from its start
(huggingface_hub from :data:`HUB_NO_RESUME_VERSION`; before it, over HTTP, the next fetch
continued it); the partial files killed runs leave are deleted by the next fetch of their
repository (:func:`_remove_stale_downloads`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gen3c.errors import (
    Gen3cInputError,
    Gen3cModelError,
    disk_full_reason,
    first_line,
    is_disk_full,
    path_to_copy,
    quoted_path,
)
from gen3c.io.atomic import try_flock
from gen3c.io.hashing import update_from_file
from gen3c.io.paths import nearest_existing
from gen3c.library_output import libraries_quiet
from gen3c.models import configs

#: Environment variable naming the folder of converted weights.
CACHE_ENV = "GEN3C_CACHE_DIR"
#: Version of the converted layout: a change makes a new cache folder (``gen3c cache remove`` deletes old ones).
FORMAT_VERSION = 1
MANIFEST_FILE = "gen3c_weights.json"
RECORD_FILE = "downloads.json"
TEMP_PREFIX = ".incomplete-"
LOCK_FILE = ".lock"
#: Free space kept in reserve beyond the estimate (logs, temporary files, rounding).
DISK_RESERVE_BYTES = 256 << 20
#: Seconds between the lines that say how far a fetch got where stderr is not a terminal (a log
#: file, CI, ``nohup``, a batch job): there huggingface_hub draws no progress bars.
PROGRESS_EVERY = 30.0

Log = Callable[[str], None]


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class HubRepo:
    """A hub repository holding part of GEN3C's weights, and the files gen3c takes from it.

    Attributes:
        files: the files needed; each entry lists alternatives, and the first one the
            repository has is fetched.
        optional: files fetched when the repository has them.
        md5: MD5 sums GEN3C's download script publishes, by file name.
    """

    repo_id: str
    files: tuple[tuple[str, ...], ...]
    optional: tuple[str, ...] = ()
    md5: dict[str, str] = field(default_factory=dict, hash=False)

    def page(self, endpoint: str) -> str:
        """The repository's page on the hub (where its license is accepted)."""
        return f"{endpoint.rstrip('/')}/{self.repo_id}"


@dataclass(frozen=True)
class OfficialWeights:
    """What GEN3C's weights are: the three repositories and the configs the converter builds."""

    name: str
    dit: HubRepo
    tokenizer: HubRepo
    text_encoder: HubRepo
    transformer_config: dict = field(hash=False)
    vae_config: dict = field(hash=False)
    #: What the network was made for, written as the converted folder's ``gen3c_model.json``
    #: (:func:`gen3c.models.packaged.checkpoint_info`).
    model_info: dict = field(hash=False, default_factory=dict)


#: Where GEN3C's weights come from (for error messages).
WEIGHTS_HELP = (
    "leave out --checkpoint_dir and gen3c fetches GEN3C's weights (nvidia/Gen3C-Cosmos-7B, nvidia/Cosmos-Tokenize1-CV8x8x8-720p, "
    "google-t5/t5-11b) and converts them itself (`gen3c download` does it up front), or convert the folder of GEN3C's "
    "scripts/download_gen3c_checkpoints.py with `gen3c convert CHECKPOINTS_DIR OUT_DIR`"
)
#: The hub repository of GEN3C's DiT: ``Gen3cPipeline.from_pretrained`` of this id fetches and converts the official weights.
OFFICIAL_REPO = "nvidia/Gen3C-Cosmos-7B"


def is_official_repo(name: str | os.PathLike | None) -> bool:
    """Whether ``name`` is :data:`OFFICIAL_REPO`, spelt in any case as the hub takes repository ids
    (``NVIDIA/gen3c-cosmos-7b``). The exact id is always the official weights; another spelling
    that is a local path stays that path, as any folder does."""
    if name is None:
        return False
    text = str(name)
    if text == OFFICIAL_REPO:
        return True
    return text.casefold() == OFFICIAL_REPO.casefold() and not Path(text).expanduser().exists()


#: GEN3C-Cosmos-7B as GEN3C's ``scripts/download_gen3c_checkpoints.py`` fetches it (the files the
#: conversion reads; for T5 the safetensors weights, which nothing has to unpickle).
GEN3C_7B = OfficialWeights(
    name="Gen3C-Cosmos-7B",
    dit=HubRepo(OFFICIAL_REPO, files=(("model.pt",),), md5={"model.pt": "38644bf823aa5272acef60cfad8bc0f7"}),
    tokenizer=HubRepo(
        "nvidia/Cosmos-Tokenize1-CV8x8x8-720p",
        files=(("encoder.jit",), ("decoder.jit",), ("mean_std.pt",)),
        md5={"mean_std.pt": "f07680ad7eefae57d698778e2a0c7c96", "image_mean_std.pt": "9f19fd3312fc1198e4905ada02e68bce"},
    ),
    text_encoder=HubRepo(
        "google-t5/t5-11b",
        files=(("config.json",), ("tokenizer.json",), ("model.safetensors", "pytorch_model.bin")),
        optional=("tokenizer_config.json", "special_tokens_map.json", "spiece.model"),
        md5={"pytorch_model.bin": "f890878d8a162e0045a25196e27089a3"},
    ),
    transformer_config=configs.TRANSFORMER_7B,
    vae_config=configs.VAE_CV8X8X8,
    model_info={"chunk_frames": configs.CHUNK_FRAMES, "resolution": list(configs.RESOLUTION)},
)
#: The weights :func:`prepare_weights` fetches unless given others.
OFFICIAL = GEN3C_7B


@dataclass
class PreparedWeights:
    """A converted checkpoint ready to load, and where everything came from.

    Attributes:
        checkpoint: the converted folder (``gen3c convert``'s layout, T5 left out).
        text_encoder: the T5 folder (a hub snapshot) for prompts outside the prompt cache, when
            the run asked for one; else None.
        has_prompt_cache: whether the checkpoint holds the prompt cache (without it only
            ``disable_prompt_encoder`` runs work).
        sources: repository id → (revision, snapshot folder) of the hub files used or fetched.
        to_fetch: (repository id, file, bytes) still to fetch (a dry run) or fetched now.
        converted: whether this call converted the checkpoint (or, in a dry run, would).
        added_prompt_cache: whether this call added the prompt cache to a checkpoint converted
            without it (or, in a dry run, would).
        copy_bytes: what that addition copies (or would), where the file system has no hard links.
    """

    checkpoint: Path
    text_encoder: Path | None = None
    has_prompt_cache: bool = False
    sources: dict[str, tuple[str, Path]] = field(default_factory=dict)
    to_fetch: list[tuple[str, str, int]] = field(default_factory=list)
    converted: bool = False
    added_prompt_cache: bool = False
    copy_bytes: int = 0

    @property
    def fetch_bytes(self) -> int:
        return sum(size for _, _, size in self.to_fetch)


def weights_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder of converted weights: ``cache_dir``, else ``$GEN3C_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/gen3c``, else ``~/.cache/gen3c``, made absolute (a relative one is said as
    the folder it is, wherever a later run starts); refused when it is a file."""
    if cache_dir:
        root = Path(cache_dir).expanduser()
    elif os.environ.get(CACHE_ENV):
        root = Path(os.environ[CACHE_ENV]).expanduser()
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "gen3c"
    root = root.absolute()
    if root.exists() and not root.is_dir():
        raise Gen3cInputError(f"the folder of converted weights (--cache_dir / {CACHE_ENV}) {quoted_path(root)} is a file: choose a folder")
    return root


def converted_dir(root: Path, weights: OfficialWeights | None = None) -> Path:
    """The converted checkpoint's folder in the cache ``root``."""
    return root / f"{(weights or OFFICIAL).name}-v{FORMAT_VERSION}"


def converted_official(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder of GEN3C's official weights converted in the cache (``--cache_dir``), None
    while they are not: what the gen3c generator runs when no model is named, readable before
    anything is fetched."""
    folder = converted_dir(weights_cache_dir(cache_dir))
    return folder if folder.is_dir() else None


def holds_text_encoder(folder: str | os.PathLike) -> bool:
    """Whether a folder holds T5: a converted checkpoint's ``text_encoder/``, or a T5 folder in
    transformers' layout (its ``config.json`` at the top)."""
    folder = Path(folder)
    return (folder / "config.json").is_file() or (folder / "text_encoder").is_dir()


def prompts_of(prompt: str = "", negative_prompt: str | None = None, guidance: float = 1.0) -> tuple[str, ...]:
    """The prompts a run encodes (as :meth:`Gen3cPipeline.__call__`): the prompt, and with guidance
    the negative prompt (None: GEN3C's default; "": the prompt again)."""
    prompts = [prompt]
    if guidance != 0:
        prompts.append(configs.DEFAULT_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt or prompt)
    return tuple(dict.fromkeys(prompts))


def prepare_weights(
    *,
    prompts: Iterable[str] = configs.CACHED_PROMPTS,
    text_encoder: bool = False,
    cache_dir: str | os.PathLike | None = None,
    hub_cache_dir: str | os.PathLike | None = None,
    endpoint: str | None = None,
    weights: OfficialWeights | None = None,
    dry_run: bool = False,
    log: Log | None = _to_stderr,
) -> PreparedWeights:
    """Make GEN3C's converted checkpoint ready: reuse it, or fetch, check and convert what is missing.

    Args:
        prompts: the prompts the run will encode (:func:`prompts_of`); empty for a run with
            ``disable_prompt_encoder``, which then needs neither T5 nor the prompt cache.
        text_encoder: also fetch T5 (and build the prompt cache) whatever the prompts.
        cache_dir: the folder of converted weights (:func:`weights_cache_dir`).
        hub_cache_dir: huggingface_hub's cache (default: its own, after ``HF_HOME``/``HF_HUB_CACHE``).
        endpoint: the hub (default: huggingface_hub's, after ``HF_ENDPOINT``).
        weights: what to fetch and how to convert it (default :data:`OFFICIAL`).
        dry_run: stop after the listing and the disk check; nothing is fetched or written.
        log: receives progress lines (default: stderr; None: silent).

    Raises:
        Gen3cModelError: one line naming what went wrong and the fix: a gated repository or a
            missing token, offline with files missing, not enough disk, a file that stays corrupt.
    """
    weights = weights or OFFICIAL
    say = log or (lambda _line: None)
    prompts = tuple(dict.fromkeys(prompts))
    for _attempt in range(3):
        prepared = _prepare_weights(weights, prompts, text_encoder, cache_dir, hub_cache_dir, endpoint, dry_run, say)
        gone = None if dry_run else _not_held_for_reading(prepared)
        if gone is None:
            return prepared
        # (`gen3c cache remove` in another process deleted it between the check and the hold: made again)
    raise Gen3cModelError(
        f"{gone} was removed three times while this run was about to read it (`gen3c cache remove` in "
        "another process?): run again once those removals end"
    )


def _prepare_weights(
    weights: OfficialWeights,
    prompts: tuple[str, ...],
    text_encoder: bool,
    cache_dir: str | os.PathLike | None,
    hub_cache_dir: str | os.PathLike | None,
    endpoint: str | None,
    dry_run: bool,
    say: Log,
) -> PreparedWeights:
    """:func:`prepare_weights` once, without the hold of what it returns."""
    root = weights_cache_dir(cache_dir)
    from gen3c.io.atomic import check_writable_place, ensure_writable_dir

    what = "the folder of converted weights (--cache_dir / GEN3C_CACHE_DIR)"
    if dry_run:  # refused as the run would be, without creating anything
        try:
            check_writable_place(root, what)
        except Gen3cInputError as exc:  # (what only records T5 may record it elsewhere: _record_elsewhere)
            why = _what_to_write(weights, prompts, text_encoder, root)
            if why is not None:
                raise type(exc)(f"{why}, but {exc}") from None
    # Reusing a finished conversion, and a dry run, write nothing: they need neither write access
    # nor the lock (an admin's read-only shared cache serves its users as it is).
    prepared = _prepare(weights, prompts, text_encoder, root, hub_cache_dir, endpoint, say, dry_run=dry_run, write=False)
    if prepared is not None:
        return prepared
    try:
        ensure_writable_dir(root, what)
    except Gen3cInputError as exc:  # (a read-only shared cache serves as long as nothing is to write to it)
        elsewhere = _record_elsewhere(weights, prompts, text_encoder, root, exc)
        with _locked(elsewhere, say):
            prepared = _prepare(weights, prompts, text_encoder, root, hub_cache_dir, endpoint, say, dry_run=False, write=True, record_root=elsewhere)
            assert prepared is not None
            return prepared
    with _locked(root, say):
        _remove_leftovers(root)
        prepared = _prepare(weights, prompts, text_encoder, root, hub_cache_dir, endpoint, say, dry_run=False, write=True)
        assert prepared is not None
        return prepared


#: The cache folders this process reads from (a converted checkpoint, T5's hub repository): real
#: path → the open folder, on which the process holds a shared ``flock`` until it ends.
_READING: dict[str, int] = {}
_READING_GUARD = threading.Lock()


def _not_held_for_reading(prepared: PreparedWeights) -> Path | None:
    """Hold what ``prepared`` names for reading (:func:`hold_for_reading`): its checkpoint, and
    the hub repository of its T5 (loaded when a prompt is first encoded). The first of them that
    was removed meanwhile; None when all are held."""
    folders = [prepared.checkpoint]
    if prepared.text_encoder is not None:  # (HUB/models--ORG--NAME/snapshots/REVISION: the repository goes whole)
        folders.append(prepared.text_encoder.parent.parent)
    return next((folder for folder in folders if not hold_for_reading(folder)), None)


def hold_for_reading(folder: str | os.PathLike) -> bool:
    """Hold a shared lock (``flock``) on ``folder`` for the rest of this process, released however
    it ends: `gen3c cache remove` refuses to delete the folder meanwhile, naming this process
    (:func:`remove_cached`). A run loads its checkpoint, then reads T5 from the hub cache when a
    prompt is first encoded, and a kept model (the GUI, a batch) adds what later prompts need: a
    folder deleted under it failed those reads half-way. Waits only while a removal of ``folder``
    is under way; False when ``folder`` is gone, or was replaced, once the lock is held (removed
    meanwhile: the caller prepares it again). Where the file system cannot lock, it is not held."""
    try:
        import fcntl
    except ImportError:  # (no flock: nothing held, nothing refused)
        return True
    key = os.path.realpath(folder)
    with _READING_GUARD:
        fd = _READING.get(key)
        if fd is not None:
            if _same_folder(fd, key):
                return True
            os.close(fd)  # (replaced since: the prompt cache was added to the checkpoint)
            del _READING[key]
    try:
        fd = os.open(key, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        # (held exclusively only by a removal deleting it now; waited for outside the guard, so
        # this process's other threads go on meanwhile, its own removals included)
        fcntl.flock(fd, fcntl.LOCK_SH)
    except OSError:  # (ENOLCK, EOPNOTSUPP: some network file systems)
        os.close(fd)
        return True
    if not _same_folder(fd, key):
        os.close(fd)
        return False
    with _READING_GUARD:
        held = _READING.get(key)
        if held is not None and _same_folder(held, key):  # (another thread held it meanwhile)
            os.close(fd)
            return True
        if held is not None:
            os.close(held)
        _READING[key] = fd
    return True


def _same_folder(fd: int, path: str | os.stat_result) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), path if isinstance(path, os.stat_result) else os.stat(path))
    except OSError:
        return False


def _own_holds(folder: Path) -> list[str]:
    """The keys of :data:`_READING` that hold ``folder`` (by what they hold, not by its path: the
    folder may have been moved, or linked, since); call under the guard."""
    try:
        st = os.stat(folder)
    except OSError:
        return []
    return [key for key, fd in _READING.items() if _same_folder(fd, st)]


def _let_go(folder: Path) -> None:
    """Release this process's own hold on ``folder`` (:func:`hold_for_reading`): it removes the folder itself."""
    with _READING_GUARD:
        for key in _own_holds(folder):
            os.close(_READING.pop(key))


def _lock_holders(path: Path) -> list[int]:
    """The processes other than this one that hold a ``flock`` on ``path``, as Linux's
    ``/proc/locks`` lists them (empty elsewhere, or where it cannot be told)."""
    try:
        st = os.stat(path)
        lines = Path("/proc/locks").read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    exact, inode_only = [], []
    for line in lines:
        parts = line.split()
        if len(parts) < 6 or parts[1] != "FLOCK" or not parts[4].isdigit():  # ("->" lines: processes waiting)
            continue
        try:
            major, minor, inode = parts[5].split(":")
            same_device = (int(major, 16), int(minor, 16)) == (os.major(st.st_dev), os.minor(st.st_dev))
            if int(inode) != st.st_ino:
                continue
        except ValueError:
            continue
        pid = int(parts[4])
        if pid not in (0, os.getpid()):
            (exact if same_device else inode_only).append(pid)
    return sorted(set(exact or inode_only))


def _process_words(pid: int) -> str:
    """``process PID (COMMAND LINE…)``, the command line shortened; just ``process PID`` where it cannot be read."""
    try:
        argv = [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    except OSError:
        argv = []
    words = [os.path.basename(a) if i < 2 and os.sep in a else a for i, a in enumerate(argv)]  # (the interpreter, the script)
    line = " ".join(" ".join(words).split())  # (one line, whatever the arguments hold)
    if len(line) > 70:
        line = line[:69] + "…"
    return f"process {pid} ({line})" if line else f"process {pid}"


def _reader_of(folder: Path) -> str | None:
    """Who holds ``folder`` for reading (:func:`hold_for_reading`) in another process: its words
    (:func:`_process_words`, or "another process" where Linux cannot name it); None when none
    does, or it cannot be told."""
    holders = None
    with _READING_GUARD:
        mine = bool(_own_holds(folder))
    if mine:  # (this process's own shared lock stands in the way of the probe: only Linux tells of others)
        holders = _lock_holders(folder)
        if not holders:
            return None
    else:
        with contextlib.ExitStack() as probe:
            if _lock_if_free(folder, probe):
                return None
    holders = holders or _lock_holders(folder)
    return ", ".join(_process_words(pid) for pid in holders[:2]) if holders else "another process"


def _lock_if_free(folder: Path, held: contextlib.ExitStack) -> bool:
    """Take ``folder``'s exclusive ``flock`` into ``held`` (kept until it closes); False when another
    process holds it (a lock that cannot be taken otherwise, or a folder gone, counts as taken)."""
    busy = RuntimeError()
    try:
        held.enter_context(try_flock(folder, missing=True, held=busy))
    except RuntimeError as exc:
        if exc is not busy:
            raise
        return False
    return True


def _in_use(item: CachedItem, who: str) -> Gen3cModelError:
    return Gen3cModelError(
        f"{item.name} is in use by {who}, which loaded it or reads from it ({quoted_path(item.path)}): let that run end, or stop it, "
        f"then run `gen3c cache remove {item.name}` again; nothing was removed"
    )


def _what_to_write(weights: OfficialWeights, prompts: tuple[str, ...], text_encoder: bool, root: Path) -> str | None:
    """Why :func:`prepare_weights` must write in the cache folder ``root`` (the reading pass found
    no reuse); None when only T5 is to be fetched (into the hub cache) and recorded."""
    target = converted_dir(root, weights)
    if not target.exists():
        return f"GEN3C's weights are not converted in {quoted_path(root)} yet"
    manifest, problem = read_manifest(target)
    if problem is not None:
        return f"{quoted_path(target)} is damaged ({problem}) and must be converted again"
    if (prompts or text_encoder) and not manifest.get("prompt_cache"):
        return f"{quoted_path(target)} has no prompt cache yet, which this run needs (--disable_prompt_encoder runs without it)"
    return None


def user_record_dir() -> Path:
    """Where a user's gen3c keeps its record of checked downloads when the folder of converted
    weights is read-only: the default cache folder, ``$XDG_CACHE_HOME/gen3c`` else
    ``~/.cache/gen3c`` (whatever ``GEN3C_CACHE_DIR`` says)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "gen3c"


def _record_elsewhere(
    weights: OfficialWeights, prompts: tuple[str, ...], text_encoder: bool, root: Path, refusal: Gen3cInputError
) -> Path:
    """The folder for ``downloads.json`` when the cache folder ``root`` cannot be written
    (``refusal``) and nothing but that record would be written there: T5, fetched into the hub
    cache for a prompt outside the prompt cache, is recorded in :func:`user_record_dir`. Raises
    ``refusal`` with what had to be written where more is (a conversion, the prompt cache) or that
    folder cannot be written either."""
    from gen3c.io.atomic import ensure_writable_dir

    why = _what_to_write(weights, prompts, text_encoder, root)
    if why is None:
        folder = user_record_dir()
        with contextlib.suppress(Gen3cInputError):  # (root itself, when it is the default folder)
            return ensure_writable_dir(folder, "gen3c's own cache folder")
        why = (
            f"T5 ({weights.text_encoder.repo_id}) must be fetched for a prompt outside the prompt cache and recorded in "
            f"{quoted_path(root / RECORD_FILE)} or {quoted_path(folder / RECORD_FILE)}"
        )
    raise type(refusal)(f"{why}, but {refusal}") from None


def _prepare(
    weights: OfficialWeights,
    prompts: tuple[str, ...],
    text_encoder: bool,
    root: Path,
    hub_cache_dir: str | os.PathLike | None,
    endpoint: str | None,
    say: Log,
    *,
    dry_run: bool,
    write: bool,
    record_root: Path | None = None,
) -> PreparedWeights | None:
    """:func:`prepare_weights`' work; without ``write`` (and not a dry run) None as soon as
    something would have to be fetched, converted, added or removed. ``record_root``: the folder
    whose ``downloads.json`` is written, when not ``root`` (read-only; its record is read too)."""
    target = converted_dir(root, weights)
    quiet = not (write or dry_run)  # (the writing pass that follows says it)
    manifest = _usable_manifest(target, root, (lambda _line: None) if quiet else say, remove=write)
    if manifest is None and quiet:
        return None
    has_cache = bool(manifest and manifest.get("prompt_cache"))
    build_cache = (bool(prompts) or text_encoder) and not has_cache
    if build_cache and quiet:
        return None
    runtime_t5 = any(p not in configs.CACHED_PROMPTS for p in prompts)
    repos = [weights.dit, weights.tokenizer] if manifest is None else []
    if text_encoder or build_cache or runtime_t5:
        repos.append(weights.text_encoder)
    prepared = PreparedWeights(target, has_prompt_cache=has_cache, converted=manifest is None, added_prompt_cache=build_cache and manifest is not None)
    if not repos:
        return prepared  # the usual second run: no hub access at all

    hub_cache, endpoint = _hub_settings(hub_cache_dir, endpoint)
    existing = nearest_existing(hub_cache.absolute())
    if not existing.is_dir():  # (else huggingface_hub's NotADirectoryError read as "cannot reach the hub")
        where = "is" if existing == hub_cache.absolute() else f"lies under {quoted_path(existing)}, which is"
        raise Gen3cInputError(f"huggingface_hub's cache {quoted_path(hub_cache)} (HF_HUB_CACHE, else HF_HOME/hub) {where} a file: point HF_HOME or HF_HUB_CACHE at a folder")
    record = _Record(record_root or root, hub_cache, also=root)
    local = {repo.repo_id: record.local(repo.repo_id) for repo in repos}
    missing = [repo for repo in repos if local[repo.repo_id] is None]
    if missing and quiet:
        return None
    plans = []
    if missing and _offline():  # files changed on disk since they were checked are checked again here
        local.update({repo.repo_id: record.recheck(repo, say, save=not dry_run) for repo in missing})
        missing = [repo for repo in repos if local[repo.repo_id] is None]
    if missing:
        if _offline():  # (files another program fetched are there, but unchecked: said so, not "not fetched yet")
            there = {repo.repo_id for repo in missing if _in_hub_cache(repo, hub_cache)}
            names = ", ".join(repo.repo_id for repo in missing)
            states = [f"{repo.repo_id} {'in the hub cache but not checked by gen3c yet' if repo.repo_id in there else 'not fetched yet'}" for repo in missing]
            fix = "unset HF_HUB_OFFLINE" + (" (a run online checks what the hub cache holds and fetches only what is missing or damaged)" if there else "")
            if manifest is not None:  # converted: only T5 is missing, and a run without prompts needs none
                state = "is in the hub cache but not checked by gen3c yet" if there else "is not fetched yet"
                forbids = f"HF_HUB_OFFLINE=1 forbids {'checking' if there else 'fetching'} it"
                if not (build_cache or runtime_t5):  # (only asked for: the checkpoint and its prompt cache run without it)
                    raise Gen3cModelError(
                        f"GEN3C's weights are converted in {quoted_path(target)} with the prompt cache, but T5 ({names}), which "
                        f"--text_encoder asks for, {state} and {forbids}: {fix}, or leave out --text_encoder (runs with the cached "
                        "prompts need no T5)"
                    )
                need = "the prompt cache" if build_cache else "a prompt outside the prompt cache"
                raise Gen3cModelError(
                    f"GEN3C's weights are converted in {quoted_path(target)}, but T5 ({names}), which {need} needs, "
                    f"{state} and {forbids}: {fix}, or run with --disable_prompt_encoder (`gen3c download`: --no_text_encoder)"
                )
            # Only T5 missing: the DiT and the tokenizer convert offline without it.
            way = (
                "run with --disable_prompt_encoder (`gen3c download`: --no_text_encoder), which converts the rest without it"
                if [repo.repo_id for repo in missing] == [weights.text_encoder.repo_id]
                else "give `gen3c generate` --checkpoint_dir a converted checkpoint"
            )
            raise Gen3cModelError(
                f"GEN3C's weights are not all here ({', '.join(states)}) and HF_HUB_OFFLINE=1 forbids fetching them: {fix}, or {way}"
            )
        offline_serves = all(record.serves_offline(repo) for repo in missing)  # (said when the hub cannot be reached)
        plans = [_plan(repo, hub_cache, endpoint, offline_serves) for repo in missing]
        prepared.to_fetch = [(p.repo.repo_id, name, size) for p in plans for name, size in p.missing.items()]
    # Before the first byte: room for what is fetched (hub cache) and what is written in CACHE.
    needs = {hub_cache: (prepared.fetch_bytes, [f"{format_bytes(prepared.fetch_bytes)} to fetch"] if prepared.to_fetch else [])}
    written = None
    if manifest is None:
        written = (conversion_bytes(weights), "converted")
    elif build_cache and not _hard_links_work(target, root):  # (_add_prompt_cache copies the checkpoint; a dry run too: one probe link, removed at once)
        prepared.copy_bytes = sum(manifest["files"].values())
        written = (prepared.copy_bytes, f"to copy {target.name} (its file system has no hard links)")
    if written is not None:
        size, what = written
        if prepared.to_fetch and _same_disk(root, hub_cache):
            total, said = needs[hub_cache]
            needs[hub_cache] = (total + size, [*said, f"{format_bytes(size)} {what}"])
        else:
            needs[root] = (size, [f"{format_bytes(size)} {what}"])
    _check_disk(needs)
    if dry_run:
        return prepared
    for plan in plans:
        if plan.missing:
            _remove_stale_downloads(plan.repo.repo_id, hub_cache, say)
        local[plan.repo.repo_id] = _fetch(plan, hub_cache, endpoint, record, say)
    prepared.sources = {repo_id: (rev, _snapshot(files)) for repo_id, (rev, files) in local.items()}
    t5_dir = prepared.sources[weights.text_encoder.repo_id][1] if weights.text_encoder.repo_id in local else None
    from gen3c.models.convert import DiskFullError

    try:
        if manifest is None:
            dit_files, tok_files = local[weights.dit.repo_id][1], local[weights.tokenizer.repo_id][1]
            _convert(weights, dit_files, _snapshot(tok_files), t5_dir if build_cache else None, prepared.sources, root, target, say)
        elif build_cache:
            t5_revision = prepared.sources[weights.text_encoder.repo_id][0]
            _add_prompt_cache(target, manifest, t5_dir, (weights.text_encoder.repo_id, t5_revision), root, say)
    except Exception as exc:  # (safetensors' own error is no OSError)
        if not (isinstance(exc, DiskFullError) or is_disk_full(exc)):
            raise
        # Named by the folder the user chose, not the temporary one inside it that filled up.
        why = exc.reason if isinstance(exc, DiskFullError) else disk_full_reason(exc)
        raise Gen3cModelError(
            f"the disk of the folder of converted weights {quoted_path(root)} filled up while converting GEN3C's weights ({why}); nothing "
            "half-written was kept: free some space, or choose a folder on a larger disk with --cache_dir (GEN3C_CACHE_DIR), "
            "then run again (the downloads are kept)"
        ) from None
    prepared.has_prompt_cache = has_cache or build_cache
    prepared.text_encoder = t5_dir if runtime_t5 else None
    return prepared


# -- the cache folder --------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(root: Path, say: Log) -> Iterator[None]:
    try:
        from filelock import FileLock, Timeout
    except ImportError:  # a core install (`gen3c cache remove`): the same flock, taken directly
        with _flocked(root / LOCK_FILE, say):
            yield
        return
    lock = FileLock(str(root / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(f"waiting for another gen3c process that is preparing weights in {root} …")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def _flocked(path: Path, say: Log) -> Iterator[None]:
    """:func:`_locked` without filelock: ``flock`` on the same file, which filelock takes on POSIX."""
    try:
        import fcntl
    except ImportError:  # (Windows)
        from gen3c.dependencies import missing_error

        raise missing_error("filelock", f"locking {quoted_path(path.parent)}") from None
    path.parent.mkdir(parents=True, exist_ok=True)  # (as filelock makes it)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another gen3c process that is preparing weights in {path.parent} …")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _temporary(root: Path, what: str = "") -> Path:
    """A fresh temporary name in ``root``; the caller creates it inside its ``try`` so that an
    interrupt can never leave it behind unnoticed (the next run removes any that remain)."""
    return root / f"{TEMP_PREFIX}{what}{uuid.uuid4().hex[:12]}"


def _delete_at_once(folder: Path, root: Path, what: str) -> None:
    """Delete a converted folder: renamed to a temporary name first, so it is gone at once (a
    deletion interrupted half-way leaves only a temporary folder, which the next run removes)."""
    aside = _temporary(root, what)
    os.replace(folder, aside)
    _delete_folder(aside, ignore_errors=True)


def _delete_folder(path: Path, ignore_errors: bool = False) -> None:
    """``shutil.rmtree``, and for a symbolic link to a folder (a cached folder moved to another disk
    and linked back) the folder it names, then the link: rmtree refused the link (or, ignoring
    errors, left it and everything it named, though `gen3c cache remove` said it freed that size)."""
    if not path.is_symlink():
        shutil.rmtree(path, ignore_errors=ignore_errors)
        return
    target = path.resolve()
    if target.is_dir() and not path.parent.resolve().is_relative_to(target):  # (never the folder holding the link)
        shutil.rmtree(target, ignore_errors=ignore_errors)
    try:
        path.unlink()
    except OSError:
        if not ignore_errors:
            raise


def _remove_leftovers(root: Path) -> None:
    """Temporary folders of a conversion that was killed (only ever written under the lock)."""
    for path in root.glob(TEMP_PREFIX + "*"):
        _delete_folder(path, ignore_errors=True)


def _usable_manifest(target: Path, root: Path, say: Log, remove: bool = True) -> dict | None:
    """The converted folder's manifest when the folder is whole; None when it is absent or damaged
    (a damaged one is moved aside and deleted, so it is converted again)."""
    if not target.exists():
        return None
    if not made_by_gen3c(target):
        raise Gen3cModelError(
            f"{quoted_path(target)} was not made by gen3c (it has no {MANIFEST_FILE}), so gen3c leaves it alone: give a converted checkpoint "
            "to `gen3c generate` with --checkpoint_dir, or move it away and gen3c fetches and converts GEN3C's weights there"
        )
    manifest, problem = read_manifest(target)
    if problem is None:
        return manifest
    say(f"{target} is damaged ({problem}): " + ("converting again" if remove else "a run converts it again"))  # (not removed: a dry run)
    if remove:
        _delete_at_once(target, root, "damaged-")
    return None


def made_by_gen3c(folder: Path) -> bool:
    """Whether ``folder`` is a converted checkpoint gen3c put in its cache, whole or damaged since:
    it appears only by a rename, with its manifest (a folder without one is someone else's, e.g.
    the output of ``gen3c convert``, and is never deleted)."""
    return folder.is_dir() and (folder / MANIFEST_FILE).is_file()


def read_manifest(folder: Path) -> tuple[dict | None, str | None]:
    """``(manifest, None)`` when ``folder`` is a whole converted checkpoint — its manifest reads,
    is of this format, every file it lists has its size, and ``checksums.json`` holds the
    manifest's own sha256 — else ``(None, what is wrong)``. Cost: a stat per file."""
    from gen3c.models.verify import CHECKSUMS_FILE

    path = folder / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = manifest["files"]
        if manifest.get("format") != FORMAT_VERSION:
            return None, f"format {manifest.get('format')}, this gen3c writes {FORMAT_VERSION}"
        listed = json.loads((folder / CHECKSUMS_FILE).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"no readable {MANIFEST_FILE} and {CHECKSUMS_FILE}: {first_line(exc, 80)}"
    if listed.get(MANIFEST_FILE) != hashlib.sha256(path.read_bytes()).hexdigest():
        return None, f"{MANIFEST_FILE} differs from its sha256 in {CHECKSUMS_FILE}"
    for name, size in files.items():
        try:
            actual = (folder / name).stat().st_size
        except OSError:
            return None, f"{name} is missing"
        if actual != size:
            return None, f"{name} has {actual} bytes, {size} were written"
    return manifest, None


def _write_manifest(folder: Path, name: str, sources: dict[str, str], prompt_cache: bool, added: tuple[str, ...] = ()) -> None:
    """Write the manifest (every file's size; the revision of each source repository) and add its
    sha256, and those of the files ``added`` since the checksums were written, to ``checksums.json``."""
    from gen3c import __version__
    from gen3c.io.atomic import write_text_atomic
    from gen3c.models.verify import CHECKSUMS_FILE, add_checksums

    files = {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in (MANIFEST_FILE, CHECKSUMS_FILE)
    }
    manifest = {
        "format": FORMAT_VERSION,
        "name": name,
        "gen3c_version": __version__,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "prompt_cache": prompt_cache,
        "sources": dict(sorted(sources.items())),
        "files": files,
    }
    write_text_atomic(folder / MANIFEST_FILE, json.dumps(manifest, indent=1) + "\n")
    add_checksums(folder, [*added, MANIFEST_FILE])


def conversion_bytes(weights: OfficialWeights | None = None) -> int:
    """Bytes the converted checkpoint takes: the DiT in bfloat16, the tokenizer in float32 and the
    prompt cache (counted on models built on the meta device)."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLCosmos, CosmosTransformer3DModel

    weights = weights or OFFICIAL
    with init_empty_weights():
        dit = CosmosTransformer3DModel(**weights.transformer_config)
        vae = AutoencoderKLCosmos(**weights.vae_config)
    count = lambda model: sum(t.numel() for t in model.state_dict().values())  # noqa: E731
    prompt_cache = len(configs.CACHED_PROMPTS) * configs.MAX_SEQUENCE_LENGTH * weights.transformer_config["text_embed_dim"] * 4
    return 2 * count(dit) + 4 * count(vae) + prompt_cache + (1 << 20)


def _convert(
    weights: OfficialWeights,
    dit_files: dict[str, Path],
    tokenizer_dir: Path,
    t5_dir: Path | None,
    sources: dict[str, tuple[str, Path]],
    root: Path,
    target: Path,
    say: Log,
) -> None:
    from gen3c.io.atomic import publish
    from gen3c.models.convert import convert_components

    staging = _temporary(root)
    try:
        staging.mkdir()
        out = staging / target.name
        convert_components(
            next(iter(dit_files.values())), tokenizer_dir, t5_dir, out, transformer_config=weights.transformer_config,
            vae_config=weights.vae_config, keep_text_encoder=False, full_report=False,
            t5_elsewhere=f"the Hugging Face cache ({weights.text_encoder.repo_id}, fetched again if removed)",
            log=lambda line: say(line.replace(str(out), str(target))),  # (said as where it appears, once whole)
        )  # fmt: skip
        from gen3c.models.packaged import META_NAME

        (out / META_NAME).write_text(json.dumps(weights.model_info, indent=1) + "\n")
        used = {k: rev for k, (rev, _) in sources.items() if t5_dir is not None or k != weights.text_encoder.repo_id}
        _write_manifest(out, weights.name, used, prompt_cache=t5_dir is not None, added=(META_NAME,))
        publish(out, target)  # (flushed to the disk, gen3c_model.json included, before it is renamed)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _add_prompt_cache(target: Path, manifest: dict, t5_dir: Path, t5_source: tuple[str, str], root: Path, say: Log) -> None:
    """Add the prompt cache to a checkpoint converted without T5. The new checkpoint is made beside
    it, from hard links to its files (copies where the file system has none: :func:`_prepare` checks
    the room for them first), flushed to the disk, and put in its place by one swap: a run stopped
    at any step leaves the old checkpoint whole, and the next run adds the cache again (changed in
    place, a run stopped between the index and the manifest left a folder that read as damaged, so
    the whole DiT was converted again). Runs that reuse the checkpoint take no lock: during the
    swap's two renames its folder is missing for them (a run about to start waits for the lock,
    then reuses it; one loading it then stops, saying so)."""
    from gen3c.io.atomic import publish, replace_folder, write_text_atomic
    from gen3c.models.convert import PROMPT_CACHE_COMPONENT, prompt_cache_from_t5
    from gen3c.models.verify import add_checksums

    say(f"computing the prompt cache (T5 embeddings of the empty and the default negative prompt) with {t5_dir}")
    cache = prompt_cache_from_t5(t5_dir)
    staging = _temporary(root)
    try:
        staging.mkdir()
        out = staging / target.name
        # Every file changed below is replaced by a new one (a rename), never written through a link.
        shutil.copytree(target, out, copy_function=_link_or_copy)
        cache.save_pretrained(staging / "prompt_cache", safe_serialization=True)
        replace_folder(staging / "prompt_cache", out / "prompt_cache")
        index_path = out / "model_index.json"
        index = json.loads(index_path.read_text())
        index["prompt_cache"] = list(PROMPT_CACHE_COMPONENT)
        write_text_atomic(index_path, json.dumps(index, indent=2) + "\n")
        added = sorted(p.relative_to(out).as_posix() for p in (out / "prompt_cache").rglob("*") if p.is_file())
        add_checksums(out, ["model_index.json", *added])
        repo_id, revision = t5_source
        _write_manifest(out, manifest["name"], {**manifest["sources"], repo_id: revision}, prompt_cache=True)
        # Flushed before the swap, whose own flush then finds nothing left to write: else the
        # checkpoint was missing while a copied one (no hard links) was written to the disk.
        ready = staging / "ready"
        publish(out, ready)
        replace_folder(ready, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _hard_links_work(target: Path, root: Path) -> bool:
    """Whether the files of ``target`` can be hard-linked into ``root`` (tried once, on its manifest)."""
    probe = _temporary(root, "link-")
    try:
        os.link(target / MANIFEST_FILE, probe)
    except OSError:  # as _link_or_copy, which then copies
        return False
    with contextlib.suppress(OSError):
        probe.unlink()
    return True


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


# -- the hub -----------------------------------------------------------------------------------


@dataclass
class _RepoPlan:
    repo: HubRepo
    revision: str
    files: dict[str, tuple[int, str | None]]  # name -> (bytes, the hub's sha256 for LFS files)
    blobs: dict[str, str | None]  # name -> its blob in the hub cache: an LFS file's sha256, another's git blob id
    missing: dict[str, int]  # name -> bytes, not in the hub cache yet


def _hub_settings(hub_cache_dir: str | os.PathLike | None, endpoint: str | None) -> tuple[Path, str]:
    from gen3c.dependencies import require

    constants = require("huggingface_hub.constants", "fetching GEN3C's weights")
    return Path(hub_cache_dir or constants.HF_HUB_CACHE).expanduser(), (endpoint or constants.ENDPOINT).rstrip("/")


def _hub_cache(hub_cache_dir: str | os.PathLike | None) -> Path:
    """huggingface_hub's cache folder, also where huggingface_hub is not installed (``gen3c cache
    list`` and ``remove`` fetch nothing): then found as huggingface_hub finds it, from
    ``HF_HUB_CACHE``, else ``HUGGINGFACE_HUB_CACHE``, else ``HF_HOME/hub``, else
    ``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``."""
    if hub_cache_dir:
        return Path(hub_cache_dir).expanduser()
    try:
        from huggingface_hub import constants
    except ImportError:
        env = os.environ.get
        home = env("HF_HOME") or os.path.join(env("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
        folder = env("HF_HUB_CACHE") or env("HUGGINGFACE_HUB_CACHE") or os.path.join(os.path.expanduser(os.path.expandvars(home)), "hub")
        return Path(os.path.expandvars(folder)).expanduser()
    return Path(constants.HF_HUB_CACHE).expanduser()


def _offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return bool(constants.HF_HUB_OFFLINE) or flag


def _hub_error(exc: Exception, repo: HubRepo, endpoint: str, offline_serves: bool = False, name: str | None = None) -> Gen3cModelError:
    """One line for a failed hub request (``name``: the file being fetched); ``offline_serves``:
    HF_HUB_OFFLINE=1 would run with what the hub cache holds (:meth:`_Record.serves_offline`), so
    the line suggests it."""
    from huggingface_hub.utils import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    # hf_hub_download reports a failed metadata request as "cannot find the requested files"
    # (LocalEntryNotFoundError; with force_download a ValueError) raised from the hub's own answer.
    if isinstance(exc, (LocalEntryNotFoundError, ValueError)) and exc.__cause__ is not None:
        exc = exc.__cause__
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    server_message = (response.headers.get("X-Error-Message") if response is not None else None) or getattr(exc, "server_message", None) or ""
    if status == 401 and "invalid credentials" in server_message.lower():  # (the hub's answer to any request with a bad token)
        return Gen3cModelError(
            f"{endpoint} refused the token huggingface_hub sent for {repo.repo_id} (HTTP 401: {server_message}): it is invalid or "
            "expired: set a valid one (`hf auth login`, or HF_TOKEN), or send none (unset HF_TOKEN, `hf auth logout`)"
        )
    if isinstance(exc, RepositoryNotFoundError) and not isinstance(exc, GatedRepoError):  # (the hub answers 401 for a private or missing repository)
        return Gen3cModelError(
            f"{repo.repo_id} was not found at {endpoint} (HTTP {status}): check HF_ENDPOINT, or give `gen3c generate` --checkpoint_dir a converted checkpoint"
        )
    if isinstance(exc, GatedRepoError) or status in (401, 403):
        return Gen3cModelError(
            f"{repo.repo_id} is gated and the hub refused access (HTTP {status}): accept its license at {repo.page(endpoint)} "
            "while logged in, then run `hf auth login` here (or set HF_TOKEN)"
        )
    gone = isinstance(exc, RevisionNotFoundError) or (isinstance(exc, EntryNotFoundError) and not isinstance(exc, LocalEntryNotFoundError))
    if gone and name is not None:  # (fetched at the commit just listed: it was force-pushed away, or the file removed)
        what = "the commit it listed" if isinstance(exc, RevisionNotFoundError) else f"{name}, which it listed,"
        return Gen3cModelError(
            f"{repo.repo_id} no longer has {what} at {endpoint} (HTTP {status}; the repository changed while gen3c fetched it): "
            "run again, which lists it anew"
        )
    if status == 404:
        return Gen3cModelError(f"{repo.repo_id} was not found at {endpoint} (HTTP 404): check HF_ENDPOINT, or give `gen3c generate` --checkpoint_dir a converted checkpoint")
    if isinstance(exc, OfflineModeIsEnabled):
        return Gen3cModelError(f"{repo.repo_id} must be fetched but HF_HUB_OFFLINE=1 forbids it: unset HF_HUB_OFFLINE")
    if status is not None:
        return Gen3cModelError(f"{endpoint} answered HTTP {status} for {repo.repo_id} ({first_line(exc, 100)}): try again later")
    offline = ", or set HF_HUB_OFFLINE=1 to use what is already fetched" if offline_serves else " (or HF_ENDPOINT), then run again"
    return Gen3cModelError(
        f"cannot reach {endpoint} to fetch {repo.repo_id} ({type(exc).__name__}: {first_line(exc, 100)}): check the network{offline}"
    )


def _plan(repo: HubRepo, hub_cache: Path, endpoint: str, offline_serves: bool = False) -> _RepoPlan:
    """The files to take from ``repo`` at its current revision, their sizes, and which the hub cache
    lacks (``offline_serves``: as :func:`_hub_error` takes it)."""
    from huggingface_hub import HfApi, try_to_load_from_cache

    try:
        info = HfApi(endpoint=endpoint).model_info(repo.repo_id, files_metadata=True)
    except Exception as exc:  # the hub's many error types: classified by _hub_error
        raise _hub_error(exc, repo, endpoint, offline_serves) from None
    listing = {s.rfilename: s for s in info.siblings or []}
    names = []
    for alternatives in repo.files:
        name = next((n for n in alternatives if n in listing), None)
        if name is None:
            raise Gen3cModelError(
                f"{repo.repo_id} at revision {info.sha[:7]} has no {' or '.join(alternatives)}: its layout changed; "
                "give `gen3c generate` --checkpoint_dir a checkpoint converted with `gen3c convert`"
            )
        names.append(name)
    names += [n for n in repo.optional if n in listing]
    files = {}
    for name in names:
        sibling = listing[name]
        lfs = sibling.lfs
        files[name] = (int(lfs.size if lfs else sibling.size or 0), lfs.sha256 if lfs else None)
    blob_names = {name: files[name][1] or listing[name].blob_id for name in names}
    # A file whose blob is in the hub cache under another revision (the repository got a commit
    # since) is only linked by huggingface_hub: nothing to fetch, no room to find for it.
    blobs = hub_cache / f"models--{repo.repo_id.replace('/', '--')}" / "blobs"

    def stored(name: str) -> bool:
        return blob_names[name] is not None and (blobs / blob_names[name]).is_file()

    missing = {
        name: size
        for name, (size, _) in files.items()
        if not isinstance(try_to_load_from_cache(repo.repo_id, name, cache_dir=hub_cache, revision=info.sha), str) and not stored(name)
    }
    return _RepoPlan(repo, info.sha, files, blob_names, missing)


def _in_hub_cache(repo: HubRepo, hub_cache: Path) -> bool:
    """Whether a snapshot of ``repo`` in the hub cache holds a file of every kind it needs, whoever
    fetched it (gen3c fetches by commit, which leaves no ``refs/main`` to look it up by)."""
    snapshots = hub_cache / f"models--{repo.repo_id.replace('/', '--')}" / "snapshots"
    return any(all(any((snapshot / name).is_file() for name in names) for names in repo.files) for snapshot in snapshots.glob("*"))


def _fetch(plan: _RepoPlan, hub_cache: Path, endpoint: str, record: _Record, say: Log) -> tuple[str, dict[str, Path]]:
    """Fetch the plan's missing files and check every file of it; returns (revision, {name: path})."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    repo = plan.repo
    if plan.missing:
        say(f"fetching {repo.repo_id} ({plan.revision[:7]}): {', '.join(plan.missing)} ({format_bytes(sum(plan.missing.values()))})")
    paths: dict[str, Path] = {}
    progress = _FetchProgress(repo.repo_id, hub_cache, plan.missing, say)
    for name, (size, sha256) in plan.files.items():
        cached = try_to_load_from_cache(repo.repo_id, name, cache_dir=hub_cache, revision=plan.revision)
        path = Path(cached) if isinstance(cached, str) else None
        for attempt in (1, 2):
            if path is None or attempt == 2:
                try:
                    # Its bars stay (the fetch's progress); its "Error while downloading … Trying to resume
                    # download…" lines do not: it resumes by itself, and a fetch that fails is gen3c's one line.
                    with libraries_quiet(("huggingface_hub",)), progress.downloading(name, size, plan.blobs[name]):
                        path = Path(hf_hub_download(
                            repo.repo_id, name, revision=plan.revision, cache_dir=hub_cache, endpoint=endpoint, force_download=attempt == 2,
                        ))  # fmt: skip
                except Exception as exc:  # the hub's many error types: classified by _hub_error
                    if is_disk_full(exc):  # not the network's fault: a full disk (or quota) under the hub cache
                        raise Gen3cModelError(
                            f"the disk of {quoted_path(hub_cache)} filled up while fetching {repo.repo_id}/{name} ({disk_full_reason(exc)}): "
                            "free some space, or put the hub cache on a larger disk (HF_HOME), then run again (files already fetched are kept)"
                        ) from None
                    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):  # nor is this
                        where = f": {quoted_path(exc.filename)}" if exc.filename else ""
                        raise Gen3cModelError(
                            f"the hub cache {quoted_path(hub_cache)} cannot be written ({exc.strerror}{where}) while fetching {repo.repo_id}/{name}: "
                            "fix its permissions, or point HF_HOME (or HF_HUB_CACHE) at a writable folder"
                        ) from None
                    raise _hub_error(exc, repo, endpoint, name=name) from None
            problem = None if record.checked(repo.repo_id, plan.revision, name, path) else _file_problem(path, size, sha256, repo.md5.get(name))
            if problem is None:
                record.add(repo.repo_id, plan.revision, name, path, sha256)
                break
            if attempt == 1:
                say(f"{repo.repo_id}/{name}: {problem}: fetching it again")
                continue
            _discard(path)
            raise Gen3cModelError(
                f"{repo.repo_id}/{name} is still corrupt after fetching it again ({problem}): check the disk and the network, then run again"
            )
        paths[name] = path
    record.complete(repo.repo_id, paths)
    return plan.revision, paths


class _FetchProgress:
    """Where stderr is not a terminal, one line every :data:`PROGRESS_EVERY` seconds while a file of
    a repository downloads, saying how much of the repository's fetch is done ("fetching REPO: 3.2 GB
    of 14.5 GB (22 %), 48.0 MB/s, ~4 min left"): the files finished, plus the partial file
    huggingface_hub is writing for the file being fetched (``blobs/<blob>.incomplete``, or
    ``blobs/<blob>.<8 hex>.incomplete`` from huggingface_hub 1.18; ``<blob>`` the file's etag, the
    sha256 the hub lists for an LFS file, git's blob id for a file the hub keeps in git). Partial
    files of other blobs (another process's fetch, a stale one) are not counted. Tells a slow fetch
    from a stalled one in a log; on a terminal huggingface_hub's bars do."""

    def __init__(self, repo_id: str, hub_cache: Path, sizes: dict[str, int], say: Log) -> None:
        self.repo_id, self.say = repo_id, say
        self.blobs = hub_cache / f"models--{repo_id.replace('/', '--')}" / "blobs"
        self.sizes = dict(sizes)  # the files to fetch: name -> bytes
        self.finished: set[str] = set()
        self.current: tuple[str, str | None] | None = None  # the file being fetched, and its blob (sha256) where known

    @contextlib.contextmanager
    def downloading(self, name: str, size: int, blob: str | None) -> Iterator[None]:
        """Lines while the block fetches ``name`` (its partial file found by ``blob``, its name in
        the hub cache; None: not counted); none once it ends, also by an error."""
        self.sizes.setdefault(name, size)  # (a file already fetched that is fetched again counts too)
        self.finished.discard(name)
        self.current = (name, blob)
        stop = threading.Event()
        thread = None if _stderr_is_terminal() else threading.Thread(target=self._tell, args=(stop,), name="gen3c-fetch-progress", daemon=True)
        if thread is not None:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join()
            self.current = None
        self.finished.add(name)

    def _done(self) -> int:
        done = sum(self.sizes[n] for n in self.finished)
        if self.current is not None and self.current[1]:
            name, blob = self.current
            partial = [*self.blobs.glob(f"{blob}.incomplete"), *self.blobs.glob(f"{blob}.*.incomplete")]
            # (the largest: a second process fetching the same blob writes its own copy of it)
            done += min(max((_size(p) for p in partial), default=0), self.sizes[name])
        return done

    def _tell(self, stop: threading.Event) -> None:
        try:
            first = last = self._done()
            started = changed = time.monotonic()
            while not stop.wait(PROGRESS_EVERY):
                done, now = self._done(), time.monotonic()
                total = sum(self.sizes.values())
                line = f"fetching {self.repo_id}: {format_bytes(done)} of {format_bytes(total)}"
                if total:
                    line += f" ({100 * done // total} %)"
                if done != last:
                    changed, last = now, done
                speed = (done - first) / (now - started)  # (this file's, since its fetch began)
                if now - changed >= PROGRESS_EVERY:  # (huggingface_hub writes 10 MB at a time: on a slow link a line may see none)
                    line += f", nothing new for {now - changed:.0f} s"
                elif speed > 0:
                    line += f", {format_bytes(int(speed))}/s, ~{_duration((total - done) / speed)} left"
                self.say(line)
        except (OSError, ValueError):  # a line not said (stderr closed or its pipe gone), never the fetch stopped
            return  # (another error is a bug of these lines: the thread's traceback shows it, the fetch goes on)


def _stderr_is_terminal() -> bool:
    try:
        return bool(sys.stderr is not None and sys.stderr.isatty())
    except (AttributeError, ValueError, OSError):  # replaced by an object without it, or closed
        return False


def _duration(seconds: float) -> str:
    """``seconds`` as "9 min" or "1 h 05 min" (under a minute: "1 min")."""
    minutes = max(1, round(seconds / 60))
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _file_problem(path: Path, size: int, sha256: str | None, md5: str | None) -> str | None:
    """What is wrong with a fetched file (size, the hub's sha256, GEN3C's MD5), or None."""
    actual = path.stat().st_size
    if size and actual != size:
        return f"{actual} bytes, the hub lists {size}"
    if sha256 is None and md5 is None:
        return None
    sha, md = hashlib.sha256(), hashlib.md5()
    bar = _hash_progress(path.name, actual)
    update_from_file(tuple(d for d, want in ((sha, sha256), (md, md5)) if want), path, bar)
    bar(None)
    problems = []
    if sha256 and sha.hexdigest() != sha256.lower():
        problems.append(f"sha256 {sha.hexdigest()}, the hub lists {sha256.lower()}")
    if md5 and md.hexdigest() != md5.lower():
        problems.append(f"MD5 {md.hexdigest()}, GEN3C publishes {md5}")
    return "; ".join(problems) or None


def _hash_progress(name: str, total: int) -> Callable[[int | None], None]:
    """A progress bar for checking a large file (None closes it)."""
    if total < 256 << 20:
        return lambda _n: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"checking {name}")
    return lambda n: bar.close() if n is None else bar.update(n)


def _discard(path: Path) -> None:
    """Remove a corrupt file from the hub cache (the snapshot link and the blob it points to)."""
    blob = path.resolve()
    for p in {path, blob}:
        with contextlib.suppress(OSError):
            p.unlink()


def _snapshot(files: dict[str, Path]) -> Path:
    return next(iter(files.values())).parent


class _Record:
    """``CACHE/downloads.json``: per repository, the revision gen3c fetched and the files it
    checked (size, modification time and the hub's sha256), for one hub cache. Lets a later run
    use them without the network and without hashing them again.

    A file whose modification time changed since (copied without it, touched, restored from a
    backup), or that was checked in a hub cache since moved, is checked again: online against
    the hub's listing, offline (``HF_HUB_OFFLINE=1``) against its size and the sha256 recorded
    here (and GEN3C's MD5), so that a whole file still serves offline and a changed one is
    named, not reported as "not fetched yet"."""

    def __init__(self, root: Path, hub_cache: Path, also: Path | None = None) -> None:
        """The record in ``root``, with the entries for ``hub_cache`` it lacks taken from the one
        in ``also`` (a read-only cache folder whose record this one stands in for)."""
        self.path, self.hub_cache = root / RECORD_FILE, str(hub_cache.resolve())
        self.data = self._read(self.path)
        self.stands_in = also is not None and also != root
        if self.stands_in:
            for repo_id, entry in self._read(also / RECORD_FILE)["repos"].items():
                if self._entry(repo_id) is None and isinstance(entry, dict) and entry.get("hub_cache") == self.hub_cache:
                    self.data["repos"][repo_id] = entry

    @staticmethod
    def _read(path: Path) -> dict:
        """The record at ``path``, without the entries not of its form (edited by hand, or by
        another program): those files are checked again, as for a missing record."""
        try:
            data = json.loads(path.read_text())
            if not isinstance(data.get("repos"), dict):
                raise ValueError("no repos")
        except (OSError, ValueError, AttributeError):
            return {"repos": {}}

        def whole(entry: object) -> bool:
            if not (isinstance(entry, dict) and isinstance(entry.get("revision"), str) and isinstance(entry.get("files"), dict)):
                return False
            return all(
                isinstance(v, list) and len(v) in (2, 3) and all(type(n) is int for n in v[:2]) and (v[2:] in ([], [None]) or isinstance(v[2], str))
                for v in entry["files"].values()
            )

        data["repos"] = {repo_id: entry for repo_id, entry in data["repos"].items() if whole(entry)}
        return data

    def _entry(self, repo_id: str) -> dict | None:
        entry = self.data["repos"].get(repo_id)
        return entry if isinstance(entry, dict) and entry.get("hub_cache") == self.hub_cache else None

    def local(self, repo_id: str) -> tuple[str, dict[str, Path]] | None:
        """(revision, {name: path}) of a repository fetched and checked before, when all its files are still there."""
        from huggingface_hub import try_to_load_from_cache

        entry = self._entry(repo_id)
        if entry is None or not entry.get("complete"):
            return None
        paths = {}
        for name in entry["files"]:
            found = try_to_load_from_cache(repo_id, name, cache_dir=self.hub_cache, revision=entry["revision"])
            if not isinstance(found, str) or not self.checked(repo_id, entry["revision"], name, Path(found)):
                return None
            paths[name] = Path(found)
        return entry["revision"], paths

    def checked(self, repo_id: str, revision: str, name: str, path: Path) -> bool:
        entry = self._entry(repo_id)
        if entry is None or entry.get("revision") != revision or name not in entry["files"]:
            return False
        stat = path.stat()
        return entry["files"][name][:2] == [stat.st_size, stat.st_mtime_ns]

    def recheck(self, repo: HubRepo, say: Log, save: bool = True) -> tuple[str, dict[str, Path]] | None:
        """:meth:`local` for a run that cannot reach the hub: files changed on disk since they were
        checked, or that were checked in another hub cache (one moved, ``HF_HOME`` changed), are
        checked again against what was recorded (and, with ``save``, recorded anew). None when a
        file is not in the hub cache; raises when one changed and no longer matches, or was
        recorded by a gen3c that kept no sha256 to check it against."""
        from huggingface_hub import try_to_load_from_cache

        entry = self.data["repos"].get(repo.repo_id)
        if not isinstance(entry, dict) or not entry.get("complete"):
            return None
        moved = entry.get("hub_cache") != self.hub_cache
        revision, paths = entry["revision"], {}
        for name, recorded in entry["files"].items():
            found = try_to_load_from_cache(repo.repo_id, name, cache_dir=self.hub_cache, revision=revision)
            if not isinstance(found, str):
                return None
            path = paths[name] = Path(found)
            if not moved and self.checked(repo.repo_id, revision, name, path):
                continue
            what = f"{repo.repo_id}/{name} ({quoted_path(path)}) " + (
                f"was checked by gen3c in another hub cache ({quoted_path(entry.get('hub_cache'))})" if moved else "changed since gen3c checked it (its modification time)"
            )
            if len(recorded) < 3:  # (recorded before the sha256 was)
                raise Gen3cModelError(
                    f"{what}, and HF_HUB_OFFLINE=1 forbids checking it against the hub: unset HF_HUB_OFFLINE for one run, "
                    "which checks it again (and fetches it again only if it is damaged)"
                )
            say(f"{what}: checking it again")
            problem = _file_problem(path, recorded[0], recorded[2], repo.md5.get(name))
            if problem is not None:
                raise Gen3cModelError(
                    f"{what} and no longer matches ({problem}), and HF_HUB_OFFLINE=1 forbids fetching it again: "
                    "unset HF_HUB_OFFLINE, and gen3c fetches it again"
                )
            if save:
                self.add(repo.repo_id, revision, name, path, recorded[2])
        if moved and save:
            self.complete(repo.repo_id, paths)
        return revision, paths

    def serves_offline(self, repo: HubRepo) -> bool:
        """Whether a run with ``HF_HUB_OFFLINE=1`` would take ``repo`` from the hub cache
        (:meth:`recheck`: recorded whole, every file still there), its files unchanged or not."""
        from huggingface_hub import try_to_load_from_cache

        entry = self.data["repos"].get(repo.repo_id)
        if not isinstance(entry, dict) or not entry.get("complete"):
            return False
        return all(
            isinstance(try_to_load_from_cache(repo.repo_id, name, cache_dir=self.hub_cache, revision=entry["revision"]), str)
            and len(recorded) == 3
            for name, recorded in entry["files"].items()
        )

    def add(self, repo_id: str, revision: str, name: str, path: Path, sha256: str | None = None) -> None:
        entry = self._entry(repo_id)
        if entry is None or entry.get("revision") != revision:
            entry = self.data["repos"][repo_id] = {"hub_cache": self.hub_cache, "revision": revision, "files": {}}
        stat = path.stat()
        entry["files"][name] = [stat.st_size, stat.st_mtime_ns, sha256]
        self.save()

    def complete(self, repo_id: str, names: Iterable[str]) -> None:
        entry = self._entry(repo_id)
        if entry is not None and set(names) <= set(entry["files"]):
            entry["complete"] = True
            self.save()

    def forget(self, repo_id: str) -> None:
        if self.data["repos"].pop(repo_id, None) is not None:
            self.save()

    def save(self) -> None:
        """Write the record whole (a temporary file renamed over it), or raise one line saying why
        not; the record on the disk is then left as it was."""
        from gen3c.io.atomic import write_text_atomic

        try:
            write_text_atomic(self.path, json.dumps(self.data, indent=1) + "\n")
        except (OSError, Gen3cInputError) as exc:  # (the temporary file not made: an input error caused by an OSError)
            cause = exc if isinstance(exc, OSError) else exc.__context__
            if not isinstance(cause, OSError):
                raise
            folder = self.path.parent
            what, option = ("gen3c's own cache folder", "XDG_CACHE_HOME") if self.stands_in else ("the folder of converted weights", "--cache_dir (GEN3C_CACHE_DIR)")
            if is_disk_full(cause):
                raise Gen3cModelError(
                    f"the disk of {what} {quoted_path(folder)} filled up while writing {RECORD_FILE} ({disk_full_reason(cause)}); it was "
                    f"left as it was: free some space, or choose a folder on a larger disk with {option}, then run again "
                    "(the downloads are kept)"
                ) from None
            raise Gen3cModelError(
                f"{quoted_path(self.path)} cannot be written ({cause.strerror or cause}); it was left as it was: fix the permissions of "
                f"{path_to_copy(folder)}, or choose another folder with {option}, then run again (the downloads are kept)"
            ) from None


# -- huggingface_hub's unfinished downloads ----------------------------------------------------

#: From this version huggingface_hub writes each download to a file of its own
#: (``blobs/<blob>.<8 hex>.incomplete``), deletes it when the download fails, and never continues
#: one that a killed run left; before it, the next fetch continued ``blobs/<blob>.incomplete``
#: over HTTP (an HTTP Range request; not on Xet storage).
HUB_NO_RESUME_VERSION = (1, 18)


def _hub_resumes_partials() -> bool:
    try:
        from huggingface_hub import __version__
    except ImportError:  # (listing without it: nothing here continues them)
        return False

    return tuple(int(n) for n in re.findall(r"\d+", __version__)[:2]) < HUB_NO_RESUME_VERSION


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # finished or removed meanwhile
        return 0


def _partial_downloads(repo_folder: Path, hub_cache: Path) -> dict[str, list[Path]]:
    """huggingface_hub's partial files in a repository's cache folder: "running" (a process is
    fetching that blob, or it cannot be told), "resumable" (``<blob>.incomplete``, which
    huggingface_hub before :data:`HUB_NO_RESUME_VERSION` continues) and "stale" (left by a killed
    run: nothing continues or removes them)."""
    found: dict[str, list[Path]] = {"running": [], "resumable": [], "stale": []}
    for path in sorted((repo_folder / "blobs").glob("*.incomplete")):
        blob = path.name.split(".", 1)[0]
        with try_flock(hub_cache / ".locks" / repo_folder.name / f"{blob}.lock", missing=True) as free:
            if not free:
                found["running"].append(path)
            elif path.name == f"{blob}.incomplete" and _hub_resumes_partials():
                found["resumable"].append(path)
            else:
                found["stale"].append(path)
    return found


def _remove_stale_downloads(repo_id: str, hub_cache: Path, say: Log) -> None:
    """Delete the partial files of ``repo_id`` that killed runs left and nothing will continue,
    each while holding huggingface_hub's lock on its blob (so none a running fetch writes)."""
    folder = hub_cache / f"models--{repo_id.replace('/', '--')}"
    freed = 0
    for path in sorted((folder / "blobs").glob("*.incomplete")):
        blob = path.name.split(".", 1)[0]
        if path.name == f"{blob}.incomplete" and _hub_resumes_partials():
            continue
        with try_flock(hub_cache / ".locks" / folder.name / f"{blob}.lock", missing=True) as free:
            if free:
                size = _size(path)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    freed += size
    if freed:
        say(f"removed {format_bytes(freed)} of unfinished downloads of {repo_id} that stopped runs left")


# -- disk space --------------------------------------------------------------------------------


def format_bytes(n: int) -> str:
    """``n`` bytes in GB, MB or kB (decimal units, as the hub shows sizes); under 100, in bytes
    (not "0.0 kB", which reads as empty)."""
    if n < 100:
        return f"{n} B"
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if n >= scale / 10:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e3:.1f} kB"


def _same_disk(a: Path, b: Path) -> bool:
    return os.stat(nearest_existing(a.resolve())).st_dev == os.stat(nearest_existing(b.resolve())).st_dev


def _check_disk(needs: dict[Path, tuple[int, list[str]]]) -> None:
    """Refuse, before the first byte, when a filesystem has less room than ``needs`` it to take."""
    for folder, (size, what) in needs.items():
        if size <= 0:
            continue
        free = shutil.disk_usage(nearest_existing(folder.resolve())).free
        if size + DISK_RESERVE_BYTES > free:  # (the reserve is in the number said: "1.2 MB needed, 3.1 MB free" read as no reason)
            raise Gen3cModelError(
                f"not enough free disk space in {quoted_path(folder)}: {format_bytes(size + DISK_RESERVE_BYTES)} needed "
                f"({' + '.join(what)} + {format_bytes(DISK_RESERVE_BYTES)} spare), {format_bytes(free)} free: "
                "free some space, or put the caches on a larger disk (HF_HOME for downloads, --cache_dir / GEN3C_CACHE_DIR for converted weights)"
            )


# -- listing and removing ----------------------------------------------------------------------


@dataclass
class CachedItem:
    """Something gen3c keeps on disk: a converted checkpoint or a hub repository it fetched."""

    name: str
    kind: str  # "converted", "download" or "leftover" (a temporary folder a stopped run left in the cache folder)
    path: Path
    size: int
    detail: str = ""


def _folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (each blob once, symlinks followed)."""
    seen, total = set(), 0
    for p in folder.rglob("*"):
        with contextlib.suppress(OSError):
            real = p.resolve()
            if real.is_file() and real not in seen:
                seen.add(real)
                total += real.stat().st_size
    return total


def cached_items(
    cache_dir: str | os.PathLike | None = None,
    hub_cache_dir: str | os.PathLike | None = None,
    weights: OfficialWeights | None = None,
) -> list[CachedItem]:
    """What gen3c keeps: the converted checkpoints in the cache folder (every format version), the
    temporary folders stopped runs left there, and the official repositories in the hub cache."""
    weights = weights or OFFICIAL
    root = weights_cache_dir(cache_dir)
    items = []
    versions = re.compile(re.escape(weights.name) + r"-v\d+")  # what converted_dir names, in any format version
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not (folder.is_dir() and versions.fullmatch(folder.name)):
            continue
        manifest, problem = read_manifest(folder)
        if not made_by_gen3c(folder):
            detail = f"not made by gen3c (no {MANIFEST_FILE}): left alone"
        elif problem:
            detail = "damaged: " + problem
        else:
            sources = ", ".join(f"{r}@{rev[:7]}" for r, rev in manifest.get("sources", {}).items())
            detail = ("prompt cache, " if manifest.get("prompt_cache") else "no prompt cache, ") + "from " + sources
        items.append(CachedItem(folder.name, "converted", folder, _folder_bytes(folder), detail))
    temporary = sorted(root.glob(TEMP_PREFIX + "*")) if root.is_dir() else []
    if temporary:
        with try_flock(root / LOCK_FILE, missing=True) as free:  # held: a run is writing them now
            what = "left by a stopped run: the next run that prepares weights deletes it, as `gen3c cache remove` does"
            detail = what if free else "being written by a running gen3c"
        items += [CachedItem(folder.name, "leftover", folder, _folder_bytes(folder), detail) for folder in temporary]
    hub_cache = _hub_cache(hub_cache_dir)
    for repo in (weights.dit, weights.tokenizer, weights.text_encoder):
        folder = hub_cache / f"models--{repo.repo_id.replace('/', '--')}"
        if folder.is_dir():
            revisions = sorted(p.name[:7] for p in (folder / "snapshots").glob("*")) if (folder / "snapshots").is_dir() else []
            detail = "revisions " + ", ".join(revisions) if revisions else "no file fetched whole yet"
            partial = _partial_downloads(folder, hub_cache)
            for state, what in (
                ("running", "being fetched now"),
                ("resumable", "of unfinished downloads (the next fetch continues them)"),
                ("stale", "of unfinished downloads left by stopped runs (nothing continues them; the next fetch of this "
                          "repository deletes them, as `gen3c cache remove` does)"),
            ):  # fmt: skip
                if partial[state]:
                    detail += f"; {format_bytes(sum(_size(p) for p in partial[state]))} {what}"
            items.append(CachedItem(repo.repo_id, "download", folder, _folder_bytes(folder), detail))
    for item in items:
        who = None if item.kind == "leftover" or (item.kind == "converted" and not made_by_gen3c(item.path)) else _reader_of(item.path)
        if who:
            item.detail += f"; in use by {who}"
    return items


def remove_cached(
    names: Iterable[str],
    cache_dir: str | os.PathLike | None = None,
    hub_cache_dir: str | os.PathLike | None = None,
    weights: OfficialWeights | None = None,
    confirm: Callable[[list[CachedItem]], bool] | None = None,
) -> list[CachedItem]:
    """Delete the cached items named (as :func:`cached_items` names them, or "all"); returns what
    was deleted. Raises :class:`Gen3cModelError` for a name that is not cached, a folder in the
    cache that gen3c did not make (which "all" leaves alone), a hub repository a download is
    being written into, or a folder another process holds for reading (:func:`hold_for_reading`:
    a run that loaded it or reads from it, named where Linux tells which), before anything is
    deleted. While another process prepares weights in the cache, it waits for that one (saying
    so on stderr).

    A hub repository goes whole: its folder in huggingface_hub's cache, shared with every program
    that uses the repository (transformers, diffusers, other projects), which fetch it again
    afterwards. ``confirm`` is asked with those repositories first; False removes nothing."""
    names = [str(n) for n in names]
    items = cached_items(cache_dir, hub_cache_dir, weights)
    # Without regard to case, as the hub takes repository ids (no two cached names differ by case alone).
    wanted = {n.casefold() for n in names}
    unknown = [n for n in names if n != "all" and n.casefold() not in {item.name.casefold() for item in items}]
    if unknown:
        known = ", ".join(item.name for item in items) or "nothing is cached"
        raise Gen3cModelError(f"{unknown[0]!r} is not cached ({known}): name what `gen3c cache list` shows, or 'all'")
    foreign = [item for item in items if item.kind == "converted" and not made_by_gen3c(item.path)]
    chosen = [item for item in items if item not in foreign] if "all" in names else [item for item in items if item.name.casefold() in wanted]
    foreign = [item for item in chosen if item in foreign]  # named: refused; under "all": left alone
    if foreign:
        raise Gen3cModelError(
            f"{quoted_path(foreign[0].path)} was not made by gen3c (it has no {MANIFEST_FILE}), so gen3c does not delete it: "
            "move or delete it yourself if you mean to; nothing was removed"
        )
    root = weights_cache_dir(cache_dir)
    if not chosen:
        return []
    hub_cache = _hub_cache(hub_cache_dir)
    shared = [item for item in chosen if item.kind == "download"]
    for item in shared:
        if _partial_downloads(item.path, hub_cache)["running"]:
            raise Gen3cModelError(
                f"a download into {quoted_path(item.path)} is running (or its lock cannot be checked): wait for it to end, then remove "
                f"{item.name}; nothing was removed"
            )
    for item in chosen:  # (before asking: a removal refused anyway asks nothing)
        if item.kind != "leftover":
            _let_go(item.path)  # (this process's own hold: it asks for the removal itself)
            who = _reader_of(item.path)
            if who:
                raise _in_use(item, who)
    if shared and confirm is not None and not confirm(shared):
        return []
    from gen3c.io.atomic import check_writable_place, ensure_writable_dir

    # Refused before anything goes (a read-only cache was a traceback from the lock file).
    record_root = root
    if all(item.kind == "download" for item in chosen):  # nothing to delete in a read-only shared CACHE:
        try:  # the record is kept in the user's own folder then, as prepare_weights keeps it
            check_writable_place(root, "the cache folder")
        except Gen3cInputError as refusal:
            try:
                record_root = ensure_writable_dir(user_record_dir(), "gen3c's own cache folder")
            except Gen3cInputError:
                raise refusal from None
    for folder in sorted({record_root, *(item.path.parent for item in chosen)}):
        check_writable_place(folder, "the cache folder")
    with _locked(record_root, _to_stderr):  # (a conversion in another process can take minutes: said, not a silent wait)
        record = _Record(record_root, hub_cache, also=root)
        chosen = [item for item in chosen if item.path.exists()]  # (another process may have removed it while this one waited)
        with contextlib.ExitStack() as held:
            for item in chosen:  # each held exclusively until it is deleted: a run about to read it waits, then prepares it again
                if item.kind != "leftover":
                    _let_go(item.path)
                    if not _lock_if_free(item.path, held):
                        raise _in_use(item, _reader_of(item.path) or "another process")
            for done, item in enumerate(chosen):
                try:
                    if item.kind == "converted":
                        _delete_at_once(item.path, root, "removed-")
                    elif item.kind == "leftover":  # (under the lock: no run is writing it)
                        _delete_folder(item.path, ignore_errors=True)
                    else:
                        record.forget(item.name)
                        _delete_folder(item.path)
                except OSError as exc:  # (a folder of a shared hub cache that another user owns, say)
                    where = f" {quoted_path(exc.filename)}" if exc.filename else ""
                    gone = f"; {', '.join(i.name for i in chosen[:done])} removed" if done else ""
                    raise Gen3cModelError(
                        f"{item.name} could not be deleted ({exc.strerror or exc}:{where}){gone}: fix the permissions of {path_to_copy(item.path)}, "
                        f"then run `gen3c cache remove {item.name}` again"
                    ) from None
    return chosen
