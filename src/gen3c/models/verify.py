"""Checking a converted checkpoint before it is used.

- :func:`verify_weights` (always, for a local folder): every tensor of ``transformer/`` and
  ``vae/`` — name, shape and dtype, read from the safetensors headers without loading a weight —
  against the model its ``config.json`` describes (built on the meta device). A mismatch is a
  :class:`~gen3c.errors.Gen3cModelError` naming the file and the key. Cost: about a second for
  the 7B DiT (reading headers and building an empty model).
- :func:`verify_checksums` (``--verify_checksums``): every file against the sha256 manifest
  ``checksums.json`` that ``gen3c convert`` writes (:func:`write_checksums`). Cost: reading every
  byte once, ~1–2 GB/s: 15–40 s for the 7B DiT, the tokenizer and T5 in bfloat16.

Weights are safetensors: nothing in a checkpoint is unpickled or executed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch

from gen3c.errors import Gen3cInputError, Gen3cModelError, first_line, quoted_path, with_article
from gen3c.io.atomic import write_text_atomic
from gen3c.io.hashing import sha256_file
from gen3c.io.paths import is_dir, reader_path

CHECKSUMS_FILE = "checksums.json"
#: Components whose weights are checked against their config, and their diffusers classes.
CHECKED_COMPONENTS = {"transformer": "CosmosTransformer3DModel", "vae": "AutoencoderKLCosmos"}
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}
_ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_TORCH_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
                 "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}  # fmt: skip
#: File types a manifest must cover (anything else, e.g. an editor's backup, is ignored).
_COVERED_SUFFIXES = (".safetensors", ".json", ".bin", ".pt", ".model", ".txt")


def covered_files(root: Path) -> list[str]:
    """The files under ``root`` that checksums.json covers (weights, configs, tokenizer files), as
    sorted POSIX paths relative to it; hidden files and checksums.json itself are not."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != CHECKSUMS_FILE and p.suffix in _COVERED_SUFFIXES and not p.name.startswith(".")
    )


def write_checksums(folder: str | os.PathLike) -> Path:
    """Write ``checksums.json`` (sha256 of every weight, config and tokenizer file) into ``folder``
    (a leading ``~`` is the home folder); returns its path.

    Raises:
        Gen3cInputError: ``folder`` is no path or no folder.
    """
    root = reader_path(folder, "write_checksums folder", "the checkpoint folder")
    if not is_dir(root):  # (was FileNotFoundError on writing checksums.json, after an empty listing)
        raise Gen3cInputError(f"write_checksums folder {quoted_path(root)} is no folder (missing, or a file): pass the checkpoint folder")
    files = {name: sha256_file(root / name) for name in covered_files(root)}
    path = root / CHECKSUMS_FILE
    # Replaced whole (temp file + rename): a write cut short (a full disk) left half a manifest.
    write_text_atomic(path, json.dumps({"algorithm": "sha256", "files": files}, indent=1) + "\n")
    return path


def checksums_sha256(folder: str | os.PathLike | None) -> str | None:
    """The identity of a checkpoint's weights without reading them: the sha256 of its
    ``checksums.json`` (which lists every file's sha256, :func:`write_checksums`); None for a
    folder without one (a hub id, a folder ``gen3c train`` wrote). A run record names it
    (:meth:`~gen3c.pipelines.gen3c.Gen3cGenerator.settings`); ``--verify_checksums`` checks the
    files against it."""
    if folder is None:
        return None
    try:
        return hashlib.sha256((Path(folder) / CHECKSUMS_FILE).read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None


def add_checksums(folder: str | os.PathLike, names: list[str]) -> None:
    """Add (or refresh) the sha256 of the files ``names`` (relative to ``folder``) in its
    ``checksums.json``, for a file added after conversion; the manifest is replaced atomically."""
    root = Path(folder)
    path = root / CHECKSUMS_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    data["files"].update({name: sha256_file(root / name) for name in names})
    data["files"] = dict(sorted(data["files"].items()))
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def verify_checksums(folder: str | os.PathLike, progress: Callable[[int], None] | None = None) -> int:
    """Check every file of ``folder`` against its ``checksums.json``; returns how many were checked.

    Args:
        progress: called with the number of bytes read, as they are read.
    Raises:
        Gen3cModelError: no or a malformed manifest, a listed file missing or different, or a
            weight/config file the manifest does not list.
    """
    root = Path(folder)
    path = root / CHECKSUMS_FILE
    if not path.is_file():
        raise Gen3cModelError(
            f"checkpoint {quoted_path(root)} has no {CHECKSUMS_FILE}: convert it again with `gen3c convert` (which writes one), "
            "or leave out --verify_checksums"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"] if isinstance(data, dict) and data.get("algorithm") == "sha256" else None
        if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise ValueError("expected {'algorithm': 'sha256', 'files': {path: hex digest}}")
    except (OSError, UnicodeDecodeError, ValueError, KeyError) as exc:
        raise Gen3cModelError(f"{quoted_path(path)} is malformed ({first_line(exc, 120)}): convert the checkpoint again") from None
    for name in files:
        pure = PurePosixPath(name)
        if pure.is_absolute() or ".." in pure.parts or "\\" in name or "\x00" in name or not name:
            raise Gen3cModelError(f"{quoted_path(path)} lists {name[:80]!r}, which is outside the checkpoint: convert the checkpoint again")
    unlisted = [name for name in covered_files(root) if name not in files]
    if unlisted:
        raise Gen3cModelError(f"checkpoint {quoted_path(root)}: {unlisted[0]} is not in {CHECKSUMS_FILE}: it was added after conversion")
    for name, expected in sorted(files.items()):
        file = root / name
        if not file.is_file():
            raise Gen3cModelError(f"checkpoint {quoted_path(root)} lacks {name}, listed in {CHECKSUMS_FILE}: download or convert it again")
        got = sha256_file(file, progress)
        if got != expected.lower():
            from gen3c.models.weights import made_by_gen3c

            # gen3c's own cache of GEN3C's weights is redone by removing it; another folder by converting again.
            fix = (f"remove it with `gen3c cache remove {root.name}` and the next run converts it again"
                   if made_by_gen3c(root) else "convert or download it again")  # fmt: skip
            raise Gen3cModelError(
                f"checkpoint {quoted_path(root)}: {name} does not match its sha256 in {CHECKSUMS_FILE} (sha256 {got[:16]}…, "
                f"listed {expected[:16]}…): it is corrupt or was changed: {fix}"
            )
    return len(files)


def unreadable_file(path: Path, exc: PermissionError) -> Gen3cModelError:
    """The one line for a checkpoint file this user may not read (converting it again is no fix)."""
    return Gen3cModelError(f"{quoted_path(path)} cannot be read ({exc.strerror or exc}): make it readable to this user (chmod a+r) or run as its owner")


def safetensors_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{key: (dtype, shape)}`` from a safetensors file's header (no tensor data is read)."""
    from safetensors import SafetensorError, safe_open

    try:
        open(path, "rb").close()  # the system's reason: safetensors says "No such file or directory" of a file this user may not read
    except PermissionError as exc:
        raise unreadable_file(path, exc) from None
    except OSError:
        pass  # (safetensors names it below)
    try:
        with safe_open(str(path), framework="pt") as fh:
            out = {}
            for key in fh.keys():
                sl = fh.get_slice(key)
                out[key] = (str(sl.get_dtype()), tuple(int(n) for n in sl.get_shape()))
            return out
    except (SafetensorError, OSError, ValueError) as exc:
        raise Gen3cModelError(f"{quoted_path(path)} is not a readable safetensors file ({first_line(exc, 120)}): download or convert it again") from None


def _weight_files(folder: Path) -> list[Path]:
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if indexes:
        try:
            shards = sorted(set(json.loads(indexes[0].read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise Gen3cModelError(f"{quoted_path(indexes[0])} is unreadable: convert the checkpoint again") from None
        return [folder / s for s in shards]
    return sorted(folder.glob("*.safetensors"))


def expected_tensors(folder: Path, class_name: str) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{key: (dtype, shape)}`` of the model ``folder/config.json`` describes (built on the meta device)."""
    import diffusers
    from accelerate import init_empty_weights

    cls = getattr(diffusers, class_name)
    try:
        config = cls.load_config(str(folder))
        with init_empty_weights():
            model = cls.from_config(config)
    except Exception as exc:  # any malformed config: the library's many error types
        raise Gen3cModelError(f"{quoted_path(folder / 'config.json')} does not describe {with_article(class_name)} ({first_line(exc, 120)}): convert again") from None
    return {k: (_TORCH_DTYPES.get(str(v.dtype).removeprefix("torch."), str(v.dtype)), tuple(v.shape)) for k, v in model.state_dict().items()}


@dataclass(frozen=True)
class StoredSize:
    """What one component's weights hold, from its safetensors headers.

    Attributes:
        float_elements: elements of its floating-point tensors (cast to the dtype it is loaded in).
        float_bytes: their bytes as stored.
        other_bytes: bytes of its other tensors (integer buffers, kept as stored).
    """

    float_elements: int
    float_bytes: int
    other_bytes: int

    def loaded_bytes(self, dtype: torch.dtype) -> int:
        """Bytes of the component loaded in ``dtype``."""
        return self.float_elements * dtype.itemsize + self.other_bytes

    def copied_on_load(self, dtype: torch.dtype) -> bool:
        """Whether loading in ``dtype`` casts the weights, i.e. copies them into memory instead of
        reading them from the memory-mapped file as they are needed."""
        return self.float_elements * dtype.itemsize != self.float_bytes


def verify_weights(root: str | os.PathLike, skip: Collection[str] = ()) -> dict[str, StoredSize]:
    """Check the tensors of a converted checkpoint's ``transformer/`` and ``vae/`` (but those in
    ``skip``: components passed to ``from_pretrained`` as objects) against their configs: every
    key present, none unknown, shapes equal, floating weights stored as floats.

    Returns:
        ``{component: StoredSize}`` of the checked components.
    """
    root = Path(root)
    sizes = {}
    for component, class_name in CHECKED_COMPONENTS.items():
        if component in skip:
            continue
        folder = root / component
        expected = expected_tensors(folder, class_name)
        stored: dict[str, tuple[str, tuple[int, ...], Path]] = {}
        for file in _weight_files(folder):
            if not file.is_file():
                raise Gen3cModelError(f"checkpoint {quoted_path(root)} lacks {component}/{file.name}: convert it again")
            for key, (dtype, shape) in safetensors_header(file).items():
                stored[key] = (dtype, shape, file)
        where = f"checkpoint {quoted_path(root)}: {component}"
        missing = sorted(set(expected) - set(stored))
        if missing:
            raise Gen3cModelError(
                f"{where} lacks {missing[0]!r}{f' and {len(missing) - 1} more keys' if len(missing) > 1 else ''} "
                f"that {component}/config.json needs: convert it again"
            )
        for key, (dtype, shape, file) in sorted(stored.items()):
            name = f"{component}/{file.name}"
            if key not in expected:
                raise Gen3cModelError(f"{where}: {name} holds {key!r}, which {component}/config.json has no place for: convert it again")
            want_dtype, want_shape = expected[key]
            if shape != want_shape:
                raise Gen3cModelError(
                    f"{where}: {name} key {key!r} has shape {shape}, {component}/config.json needs {want_shape}: convert it again"
                )
            if (dtype in _FLOAT_DTYPES) != (want_dtype in _FLOAT_DTYPES) or (want_dtype not in _FLOAT_DTYPES and dtype != want_dtype):
                raise Gen3cModelError(
                    f"{where}: {name} key {key!r} is stored as {dtype}, the model needs {want_dtype}: convert it again"
                )
        elements = {key: math.prod(shape) for key, (_, shape, _) in stored.items()}
        floats = [key for key, (dtype, _, _) in stored.items() if dtype in _FLOAT_DTYPES]
        sizes[component] = StoredSize(
            float_elements=sum(elements[key] for key in floats),
            float_bytes=sum(elements[key] * _ITEMSIZE[stored[key][0]] for key in floats),
            other_bytes=sum(elements[key] * _ITEMSIZE.get(stored[key][0], 8) for key in stored if key not in floats),
        )
    return sizes
