"""Convert GEN3C's official checkpoint folder into a gen3c (diffusers-format) checkpoint.

Input (what GEN3C's ``scripts/download_gen3c_checkpoints.py`` writes)::

    CHECKPOINTS/Gen3C-Cosmos-7B/model.pt                  the DiT, keys under ``net.``
    CHECKPOINTS/Cosmos-Tokenize1-CV8x8x8-720p/encoder.jit  tokenizer encoder (TorchScript)
    CHECKPOINTS/Cosmos-Tokenize1-CV8x8x8-720p/decoder.jit  tokenizer decoder (TorchScript)
    CHECKPOINTS/Cosmos-Tokenize1-CV8x8x8-720p/mean_std.pt  latent statistics
    CHECKPOINTS/google-t5/t5-11b/                          T5 (Hugging Face layout)

Output: a folder ``Gen3cPipeline.from_pretrained`` loads — ``transformer/``, ``vae/``,
``scheduler/``, ``text_encoder/``, ``tokenizer/``, ``prompt_cache/`` (T5 embeddings of the
empty prompt and GEN3C's default negative prompt), all weights as safetensors, plus
``conversion_report.txt`` and ``checksums.json`` (sha256 of every file, :mod:`gen3c.models.verify`).

:func:`convert_checkpoint` reads that folder; :func:`convert_components` takes the three parts
wherever they are (hub snapshots: :mod:`gen3c.models.weights`), T5 optional.

Every source key is accounted for: renamed to exactly one diffusers key, or dropped under a
documented rule (:data:`DIT_DROPS`, :data:`TOKENIZER_DROPS`); anything else, and any diffusers
parameter left without a source, is an error.

Safety: ``model.pt`` and ``mean_std.pt`` are read with ``torch.load(weights_only=True)``, which
rebuilds tensors and plain containers only and runs no code from the file; a file that needs
full unpickling is refused unless ``trust_checkpoint=True``. The ``.jit`` files are TorchScript
archives; their tensors are read by :func:`read_torchscript_tensors`, an unpickler that builds
tensors and plain attribute holders only, so the archive's code is never compiled or run
(``torch.jit.load`` would compile it and run any ``__setstate__``; it is used only with
``trust_checkpoint=True``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import re
import shutil
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gen3c.errors import (
    Gen3cModelError,
    disk_full_reason,
    first_line,
    is_disk_full,
    path_to_copy,
    quoted,
    quoted_path,
)
from gen3c.io.atomic import check_writable_place, replace_folder, try_flock
from gen3c.io.paths import nearest_existing
from gen3c.library_output import libraries_quiet
from gen3c.models import configs
from gen3c.models.verify import CHECKSUMS_FILE, unreadable_file, write_checksums

DIT_FILE = Path("Gen3C-Cosmos-7B") / "model.pt"
#: The ``_class_name`` of a gen3c checkpoint's model_index.json.
PIPELINE_CLASS = "Gen3cPipeline"
TOKENIZER_DIR = Path("Cosmos-Tokenize1-CV8x8x8-720p")
T5_DIR = Path("google-t5") / "t5-11b"
HUB_SOURCES = "nvidia/Gen3C-Cosmos-7B, nvidia/Cosmos-Tokenize1-CV8x8x8-720p and google-t5/t5-11b"
#: ``model_index.json`` entry of the prompt cache component.
PROMPT_CACHE_COMPONENT = ("gen3c.models.prompt_cache", "PromptEmbeddingCache")

class DiskFullError(Gen3cModelError):
    """The disk filled up while the converted checkpoint was written (nothing was kept);
    ``reason``: the system's words (``No space left on device``)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


#: Source keys of ``model.pt`` that are not network weights, with the reason they are dropped.
DIT_DROPS: list[tuple[str, str]] = [
    (r"^logvar\.", "training-only log-variance head (outside the network)"),
    (r"^net\.pos_embedder\.", "RoPE buffers, recomputed by the diffusers model"),
    (r"^net\.accum_", "training counters"),
    (r"\._extra_state$", "Transformer Engine runtime metadata"),
]
#: Source keys of the tokenizer's TorchScript state dicts that are dropped.
TOKENIZER_DROPS: list[tuple[str, str]] = [
    (r"\.(wavelets|_arange|patch_size_buffer)$", "fixed wavelet buffers, rebuilt by the diffusers model"),
]

# DiT: official module path → diffusers module path (after removing ``net.``), tried in order.
_DIT_RULES: list[tuple[str, str]] = [
    (r"^x_embedder\.proj\.1\.", "patch_embed.proj."),
    (r"^t_embedder\.1\.", "time_embed.t_embedder."),
    (r"^affline_norm\.", "time_embed.norm."),
    (r"^extra_pos_embedder\.", "learnable_pos_embed."),
    (r"^final_layer\.adaLN_modulation\.1\.", "norm_out.linear_1."),
    (r"^final_layer\.adaLN_modulation\.2\.", "norm_out.linear_2."),
    (r"^final_layer\.linear\.", "proj_out."),
]
# Inside ``blocks.block{i}.blocks.{j}``: j = 0 self-attention, 1 cross-attention, 2 MLP.
_DIT_BLOCK_RULES: list[tuple[str, str]] = [
    (r"^adaLN_modulation\.1\.", "norm{n}.linear_1."),
    (r"^adaLN_modulation\.2\.", "norm{n}.linear_2."),
    (r"^block\.attn\.to_q\.0\.", "attn{a}.to_q."),
    (r"^block\.attn\.to_q\.1\.", "attn{a}.norm_q."),
    (r"^block\.attn\.to_k\.0\.", "attn{a}.to_k."),
    (r"^block\.attn\.to_k\.1\.", "attn{a}.norm_k."),
    (r"^block\.attn\.to_v\.0\.", "attn{a}.to_v."),
    (r"^block\.attn\.to_out\.0\.", "attn{a}.to_out.0."),
    (r"^block\.layer1\.", "ff.net.0.proj."),
    (r"^block\.layer2\.", "ff.net.2."),
]


def dit_key(key: str) -> str | None:
    """The diffusers key of an official DiT key (without drops), or None when it has no place."""
    if not key.startswith("net."):
        return None
    rest = key[len("net.") :]
    m = re.match(r"^blocks\.block(\d+)\.blocks\.([012])\.(.*)$", rest)
    if m:
        i, j, tail = int(m[1]), int(m[2]), m[3]
        for pattern, target in _DIT_BLOCK_RULES:
            if re.match(pattern, tail):
                if "attn{a}" in target and j == 2 or "ff." in target and j != 2:
                    return None
                new = re.sub(pattern, target.format(n=j + 1, a=j + 1), tail)
                return f"transformer_blocks.{i}.{new}"
        return None
    for pattern, target in _DIT_RULES:
        if re.match(pattern, rest):
            return re.sub(pattern, target, rest)
    return None


def _resnet_key(tail: str) -> str | None:
    m = re.match(r"^(norm[12])\.norm\.(\w+)$", tail)
    if m:
        return f"{m[1]}.norm.{m[2]}"
    m = re.match(r"^(conv[12])\.([01])\.conv3d\.(\w+)$", tail)
    if m:
        return f"{m[1]}.{'conv_s' if m[2] == '0' else 'conv_t'}.{m[3]}"
    m = re.match(r"^nin_shortcut\.conv3d\.(\w+)$", tail)
    if m:
        return f"conv_shortcut.{m[1]}"
    return None


def _attention_key(tail: str) -> str | None:
    m = re.match(r"^norm\.norm\.(\w+)$", tail)
    if m:
        return f"norm.norm.{m[1]}"
    m = re.match(r"^(q|k|v|proj_out)\.conv3d\.(\w+)$", tail)
    if m:
        return {"q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}[m[1]] + f".{m[2]}"
    return None


def tokenizer_key(key: str, num_levels: int) -> str | None:
    """The diffusers ``AutoencoderKLCosmos`` key of an official tokenizer key (encoder.jit and
    decoder.jit state dicts), or None when it has no place. ``num_levels``: resolution levels
    of the official encoder (``len(channels_mult)``; 3 for CV8x8x8)."""
    m = re.match(r"^(quant_conv|post_quant_conv)\.conv3d\.(\w+)$", key)
    if m:
        return f"{m[1]}.{m[2]}"
    m = re.match(r"^(encoder|decoder)\.(.*)$", key)
    if not m:
        return None
    part, rest = m[1], m[2]

    def mapped(prefix: str, tail: str | None) -> str | None:
        return None if tail is None else f"{part}.{prefix}{tail}"

    m = re.match(r"^(conv_in|conv_out)\.([01])\.conv3d\.(\w+)$", rest)
    if m:
        return f"{part}.{m[1]}.{'conv_s' if m[2] == '0' else 'conv_t'}.{m[3]}"
    m = re.match(r"^norm_out\.norm\.(\w+)$", rest)
    if m:
        return f"{part}.norm_out.norm.{m[1]}"
    m = re.match(r"^mid\.block_([12])\.(.*)$", rest)
    if m:
        return mapped(f"mid_block.resnets.{int(m[1]) - 1}.", _resnet_key(m[2]))
    m = re.match(r"^mid\.attn_1\.([01])\.(.*)$", rest)
    if m:
        return mapped(
            f"mid_block.{'attentions' if m[1] == '0' else 'temp_attentions'}.0.", _attention_key(m[2])
        )
    m = re.match(r"^(down|up)\.(\d+)\.(.*)$", rest)
    if not m or (m[1] == "down") != (part == "encoder"):
        return None
    level, tail = int(m[2]), m[3]
    if level >= num_levels:
        return None
    # GEN3C indexes decoder levels by resolution (up.0 = finest); diffusers by processing order.
    block = f"down_blocks.{level}" if m[1] == "down" else f"up_blocks.{num_levels - 1 - level}"
    m = re.match(r"^block\.(\d+)\.(.*)$", tail)
    if m:
        return mapped(f"{block}.resnets.{m[1]}.", _resnet_key(m[2]))
    m = re.match(r"^attn\.(\d+)\.([01])\.(.*)$", tail)
    if m:
        kind = "attentions" if m[2] == "0" else "temp_attentions"
        return mapped(f"{block}.{kind}.{m[1]}.", _attention_key(m[3]))
    m = re.match(r"^(downsample|upsample)\.(conv[123])\.conv3d\.(\w+)$", tail)
    if m:
        return f"{part}.{block}.{m[1]}rs.0.{m[2]}.{m[3]}"
    return None


# -- the report ------------------------------------------------------------------------------


@dataclass
class ComponentReport:
    """What happened to each source key of one component."""

    name: str
    source: str
    mapped: list[tuple[str, str, tuple[int, ...]]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.unexpected or self.missing or self.mismatched)

    def lines(self) -> list[str]:
        out = [f"== {self.name} ({self.source})"]
        out += [f"  {old} -> {new} {list(shape)}" for old, new, shape in self.mapped]
        out += [f"  {old} dropped: {why}" for old, why in self.dropped]
        out += [f"  ERROR unexpected key {k} (no place in the diffusers model)" for k in self.unexpected]
        out += [f"  ERROR missing key {k} (no source key maps to it)" for k in self.missing]
        out += [f"  ERROR shape of {k}: checkpoint {list(a)}, model {list(b)}" for k, a, b in self.mismatched]
        out += [f"  note: {n}" for n in self.notes]
        out.append(
            f"  {len(self.mapped)} mapped, {len(self.dropped)} dropped, {len(self.unexpected)} unexpected, "
            f"{len(self.missing)} missing, {len(self.mismatched)} mismatched"
        )
        return out


@dataclass
class ConversionReport:
    components: list[ComponentReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.components)

    def format(self) -> str:
        return "\n".join(line for c in self.components for line in c.lines())

    def component(self, name: str) -> ComponentReport:
        return next(c for c in self.components if c.name == name)


def map_state_dict(
    name: str,
    source: str,
    state: dict[str, Any],
    expected: dict[str, tuple[int, ...]],
    key_fn: Callable[[str], str | None],
    drops: list[tuple[str, str]],
) -> tuple[dict[str, Tensor], ComponentReport]:
    """Rename ``state`` with ``key_fn`` against the ``expected`` shapes; report every key."""
    report = ComponentReport(name, source)
    out: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    for key in sorted(state, key=str):
        if not isinstance(key, str):  # (a pickle may hold any key)
            report.unexpected.append(repr(key))
            continue
        reason = next((why for pattern, why in drops if re.search(pattern, key)), None)
        if reason is not None:
            report.dropped.append((key, reason))
            continue
        value = state[key]
        new = key_fn(key)
        if new is None or new not in expected or not isinstance(value, Tensor):
            report.unexpected.append(key)
            continue
        if new in origin:
            report.unexpected.append(f"{key} (maps to {new}, already filled by {origin[new]})")
            continue
        if not value.is_floating_point():  # (every weight is: an int would be cast to a float silently, a complex's imaginary part dropped)
            report.unexpected.append(f"{key} (stored as {str(value.dtype).removeprefix('torch.')}, not floating point)")
            continue
        if tuple(value.shape) != tuple(expected[new]):
            report.mismatched.append((key, tuple(value.shape), tuple(expected[new])))
            continue
        origin[new] = key
        out[new] = value
        report.mapped.append((key, new, tuple(value.shape)))
    report.missing = sorted(set(expected) - set(out))
    return out, report


# -- loading the sources ---------------------------------------------------------------------


def load_torch_file(path: Path, trust_checkpoint: bool = False) -> Any:
    """``torch.load`` with ``weights_only=True``; full unpickling only when trusted."""
    mmap = zipfile.is_zipfile(path)  # only the zip format can be memory-mapped
    try:
        # Older Transformer Engine versions save a layer's ``_extra_state`` (which the conversion
        # drops) as an ``io.BytesIO``, newer ones as a uint8 tensor. Rebuilding a BytesIO from its
        # bytes runs no code, so it is let in: such a checkpoint converts without --trust_checkpoint.
        with torch.serialization.safe_globals([io.BytesIO]):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        # Only a class outside weights_only's list needs full unpickling; other failures (an HTML
        # error page saved as model.pt, a damaged file) are a file to fetch again, not to trust.
        reason = exc.__context__ or exc
        if "Unsupported global" not in str(reason):
            raise _unreadable(path, reason) from None
        if not trust_checkpoint:
            raise Gen3cModelError(
                f"{quoted_path(path)} holds Python objects that only full unpickling can load, which can run code from the file: "
                "if you trust it, convert it with `gen3c convert SRC OUT --trust_checkpoint` (Python: `convert_checkpoint(..., trust_checkpoint=True)`)"
            ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise _unreadable(path, exc) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None


def _unreadable(path: Path, exc: BaseException) -> Gen3cModelError:
    if isinstance(exc, PermissionError):  # (fetching it again is no fix)
        return unreadable_file(path, exc)
    return Gen3cModelError(f"{quoted_path(path)} is not a readable torch file ({first_line(exc)}): download it again")


class _ScriptObject:
    """A TorchScript module's attributes as plain data: its class is never looked up or run."""

    def __init__(self, *args: Any) -> None:
        self.attributes: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("a module with its own __setstate__ (TorchScript code would have to run)")
        self.attributes = state


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}  # fmt: skip


class _ArchiveUnpickler(pickle.Unpickler):
    """Reads a TorchScript archive's ``data.pkl`` allowing tensors, storages and plain module
    holders only (as ``weights_only`` does for torch.save files)."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return _ScriptObject
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return torch._utils._rebuild_tensor_v2
        if (module, name) == ("collections", "OrderedDict"):
            import collections

            return collections.OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"{module}.{name} is neither a tensor nor a module")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], torch.dtype)):
            raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:60]}")
        data = bytearray(self.archive.read(f"{self.prefix}/data/{pid[2]}"))
        untyped = torch.frombuffer(data, dtype=torch.uint8).untyped_storage() if data else torch.UntypedStorage(0)
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=pid[1], _internal=True)


def read_torchscript_tensors(path: Path) -> dict[str, Tensor]:
    """Every tensor attribute of a TorchScript archive's modules by dotted name (its state dict),
    read without ``torch.jit.load``: the archive's code is neither compiled nor run."""

    def walk(obj: _ScriptObject, prefix: str, out: dict[str, Tensor]) -> dict[str, Tensor]:
        for name, value in obj.attributes.items():
            if isinstance(value, Tensor):
                out[prefix + name] = value
            elif isinstance(value, _ScriptObject):
                walk(value, f"{prefix}{name}.", out)
        return out

    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise ValueError("no data.pkl")
            prefix = pickles[0].split("/")[0]
            root = _ArchiveUnpickler(archive.read(pickles[0]), archive, prefix).load()
        if not isinstance(root, _ScriptObject):
            raise ValueError("the archive does not hold a module")
        return walk(root, "", {})
    except (pickle.UnpicklingError, TypeError) as exc:  # a whole archive holding what only TorchScript's own loader builds
        raise Gen3cModelError(
            f"{quoted_path(path)} is not a TorchScript archive gen3c can read without running it ({first_line(exc)}): download it again, "
            "or if you trust it, convert it with `gen3c convert SRC OUT --trust_checkpoint` (loads it with torch.jit.load)"
        ) from None
    except PermissionError as exc:
        raise unreadable_file(path, exc) from None
    except (zipfile.BadZipFile, KeyError, ValueError, RuntimeError, EOFError, OSError) as exc:  # (a damaged member: BadZipFile, bad CRC)
        # Damaged, cut short or no archive at all: torch.jit.load could not read it either, so --trust_checkpoint is no way out.
        raise Gen3cModelError(
            f"{quoted_path(path)} is not a TorchScript archive gen3c can read without running it ({first_line(exc)}): it is damaged or "
            "another kind of file: download it again"
        ) from None


def dit_state_dict(obj: Any) -> tuple[dict[str, Any], str]:
    """The network state dict inside a loaded ``model.pt`` and where it was found."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        return obj["model"], "model.pt['model']"
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        return obj["state_dict"], "model.pt['state_dict']"
    if isinstance(obj, dict) and isinstance(obj.get("ema"), dict):
        return {k.replace("-", "."): v for k, v in obj["ema"].items()}, "model.pt['ema'] ('-' read as '.')"
    if isinstance(obj, dict) and any(isinstance(k, str) and k.startswith("net.") for k in obj):
        return obj, "model.pt"
    raise Gen3cModelError(
        "model.pt holds no network state dict (no 'model' entry and no 'net.' keys): download it again"
    )


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise Gen3cModelError(
            f"{what} is missing: expected {quoted_path(path)}. GEN3C's weights come from {HUB_SOURCES} "
            "(GEN3C's scripts/download_gen3c_checkpoints.py --checkpoint_dir CHECKPOINTS puts them in one folder)"
        )
    return path


# -- the conversion --------------------------------------------------------------------------


def convert_transformer(path: Path, config: dict, dtype: torch.dtype, trust_checkpoint: bool = False):
    """(model, report) of the DiT at ``path``; the report lists every key."""
    from accelerate import init_empty_weights
    from diffusers import CosmosTransformer3DModel

    state, where = dit_state_dict(load_torch_file(path, trust_checkpoint))
    with init_empty_weights():
        model = CosmosTransformer3DModel(**config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    mapped, report = map_state_dict("transformer", f"{path} :: {where}", state, expected, dit_key, DIT_DROPS)
    if report.ok:
        # diffusers keeps the learnable positional embedding in float32; so do we.
        keep = tuple(model._keep_in_fp32_modules or ())
        cast = {k: v.float() if k.startswith(keep) else v.to(dtype) for k, v in mapped.items()}
        model.load_state_dict(cast, strict=True, assign=True)
    return model, report


def convert_tokenizer(folder: Path, config: dict, trust_checkpoint: bool = False):
    """(model, report) of the Cosmos tokenizer in ``folder`` (encoder.jit, decoder.jit, mean_std.pt)."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLCosmos

    state: dict[str, Tensor] = {}
    for name in ("encoder.jit", "decoder.jit"):
        path = _require(folder / name, f"the tokenizer's {name}")
        if trust_checkpoint:
            try:
                tensors = torch.jit.load(str(path), map_location="cpu").state_dict()
            except (RuntimeError, ValueError) as exc:
                raise Gen3cModelError(
                    f"{quoted_path(path)} is not a TorchScript archive ({first_line(exc)}): download it again"
                ) from None
        else:
            tensors = read_torchscript_tensors(path)
        for key, value in tensors.items():
            if key in state:
                raise Gen3cModelError(f"{quoted_path(path)}: key {key} also appears in the other tokenizer file")
            state[key] = value.detach().clone()
    mean, std = _latent_statistics(
        _require(folder / "mean_std.pt", "the tokenizer's mean_std.pt"),
        config,
        trust_checkpoint,
    )
    config = {**config, "latents_mean": mean, "latents_std": std}
    with init_empty_weights():
        model = AutoencoderKLCosmos(**config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    levels = len(config["encoder_block_out_channels"]) - 1
    mapped, report = map_state_dict(
        "vae",
        f"{folder}/{{encoder,decoder}}.jit",
        state,
        expected,
        lambda k: tokenizer_key(k, levels),
        TOKENIZER_DROPS,
    )
    report.notes.append(f"latent statistics from mean_std.pt: {len(mean)} values per statistic")
    if report.ok:
        model.load_state_dict({k: v.float() for k, v in mapped.items()}, strict=True, assign=True)
    return model, report


def _latent_statistics(path: Path, config: dict, trust_checkpoint: bool) -> tuple[list[float], list[float]]:
    obj = load_torch_file(path, trust_checkpoint)
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2 and all(isinstance(t, Tensor) for t in obj)):
        raise Gen3cModelError(f"{quoted_path(path)} should hold (mean, std) tensors: download it again")
    C = config["latent_channels"]
    n = (configs.CHUNK_FRAMES - 1) // config["temporal_compression_ratio"] + 1
    sizes = [t.numel() for t in obj]
    if sizes[0] != sizes[1] or sizes[0] == 0 or sizes[0] % C:
        raise Gen3cModelError(
            f"{quoted_path(path)} holds {sizes[0]} means and {sizes[1]} standard deviations, not the same whole number of "
            f"values for each of the tokenizer's {C} latent channels: download it again"
        )
    # As GEN3C's tokenizer wrapper: view as (channels, frames), keep one chunk's latent frames.
    mean, std = (t.float().reshape(C, -1)[:, :n] for t in obj)
    if not torch.isfinite(mean).all() or not torch.isfinite(std).all() or (std <= 0).any():
        raise Gen3cModelError(
            f"{quoted_path(path)} holds non-finite means or non-positive standard deviations: download it again"
        )
    return mean.flatten().tolist(), std.flatten().tolist()


def convert_checkpoint(
    official_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    transformer_config: dict | None = None,
    vae_config: dict | None = None,
    dtype: torch.dtype = torch.bfloat16,
    text_encoder_dtype: torch.dtype = torch.bfloat16,
    keep_text_encoder: bool = True,
    trust_checkpoint: bool = False,
    overwrite: bool = False,
    max_shard_size: str = "5GB",
    log: Callable[[str], None] | None = print,
) -> ConversionReport:
    """Convert GEN3C's checkpoint folder ``official_dir`` into a gen3c checkpoint at ``out_dir``.

    Args:
        transformer_config, vae_config: diffusers configs (default: the 7B network and CV8x8x8).
        dtype: storage dtype of the DiT (GEN3C runs it in bfloat16); the tokenizer keeps float32.
        text_encoder_dtype: storage dtype of T5. The cached prompt embeddings are computed in
            float32, as GEN3C runs T5.
        keep_text_encoder: False leaves T5 out of the output (then only the cached prompts work).
        trust_checkpoint: allow full unpickling of ``.pt`` files that need it.
        overwrite: replace an existing ``out_dir`` that is a gen3c checkpoint (one holding anything
            else is refused, never deleted).
        log: receives the key-by-key report and progress lines (None: silent).

    Returns:
        The report. Raises :class:`Gen3cModelError` (after logging the report) when keys are
        missing, unexpected or of the wrong shape; nothing is written then.
    """
    src = Path(official_dir).expanduser()
    if not src.is_dir():
        why = "is a file, not a folder" if src.exists() else "does not exist"
        raise Gen3cModelError(f"checkpoint folder {quoted_path(src)} {why}: pass the folder holding Gen3C-Cosmos-7B/ ({HUB_SOURCES})")
    _check_out_dir(Path(out_dir).expanduser(), overwrite, [src])
    hint = None if (src / DIT_FILE).exists() else _right_folder(src)
    if hint:
        raise Gen3cModelError(f"checkpoint folder {quoted_path(src)} is not GEN3C's checkpoints folder: {hint}")
    return convert_components(
        _require(src / DIT_FILE, "the GEN3C DiT (Gen3C-Cosmos-7B/model.pt)"),
        _require(src / TOKENIZER_DIR, "the Cosmos tokenizer folder (Cosmos-Tokenize1-CV8x8x8-720p/)"),
        _require(src / T5_DIR, "the T5 text encoder folder (google-t5/t5-11b/)"),
        out_dir,
        transformer_config=transformer_config,
        vae_config=vae_config,
        dtype=dtype,
        text_encoder_dtype=text_encoder_dtype,
        keep_text_encoder=keep_text_encoder,
        trust_checkpoint=trust_checkpoint,
        overwrite=overwrite,
        max_shard_size=max_shard_size,
        log=log,
    )


def _right_folder(src: Path) -> str | None:
    """What ``src`` is, when it is a folder given by mistake for GEN3C's checkpoints folder, and
    which folder to pass instead; None when it cannot be told."""
    if (src / "model_index.json").is_file():
        return "it is already a converted gen3c checkpoint (it has model_index.json): give it to `gen3c generate --checkpoint_dir` as it is"
    for parent in Path(os.path.abspath(src)).parents[:2]:  # Gen3C-Cosmos-7B/, google-t5/t5-11b/, …
        if (parent / DIT_FILE).is_file():
            return f"it is a part of GEN3C's checkpoints folder {quoted_path(parent)}: pass {path_to_copy(parent)}"
    inside = sorted(p.parent.parent for p in src.glob(f"*/{DIT_FILE.as_posix()}"))
    if inside:
        return f"it holds GEN3C's checkpoints folder {quoted_path(inside[0])}: pass {path_to_copy(inside[0])}"
    if any((src / name).is_file() for name in ("model.pt", "encoder.jit", "decoder.jit", "mean_std.pt")):
        return (
            f"it holds one part of GEN3C's weights; `gen3c convert` reads the folder holding all three ({DIT_FILE.parent}/, "
            f"{TOKENIZER_DIR}/, {T5_DIR}/) that GEN3C's scripts/download_gen3c_checkpoints.py writes; "
            "`gen3c download` fetches the three from the Hugging Face Hub and converts them itself"
        )
    return None


def _check_out_dir(out: Path, overwrite: bool, sources: list[Path]) -> None:
    """Refuse an output folder that is a file, a symbolic link to nothing, is not empty (unless
    ``overwrite``), or holds one of the ``sources`` being converted (``overwrite`` would delete them)."""
    if out.is_symlink() and not out.exists():  # (dangling or looping: found only when the output was put in place)
        raise Gen3cModelError(
            f"output folder {quoted_path(out)} is a symbolic link to {quoted_path(os.readlink(out))}, which does not exist or loops: "
            "remove the link or choose another folder"
        )
    if out.exists() and not out.is_dir():
        raise Gen3cModelError(f"output folder {quoted_path(out)} is a file, not a folder: choose a folder path")
    for source in sources:
        if out.resolve() == source.resolve() or out.resolve() in source.resolve().parents:
            raise Gen3cModelError(
                f"output folder {quoted_path(out)} holds the checkpoint being converted ({quoted_path(source)}): choose a folder outside it"
            )
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise Gen3cModelError(
            f"output folder {quoted_path(out)} exists and is not empty: pick a new folder or pass overwrite"
        )
    not_ours = _not_a_gen3c_checkpoint(out) if overwrite and out.exists() and any(out.iterdir()) else None
    if not_ours is not None:
        # (overwrite deletes the whole folder: a mistyped OUT, a home folder, a project's folder,
        # another diffusers model's checkpoint)
        raise Gen3cModelError(
            f"output folder {quoted_path(out)} is not a gen3c checkpoint ({not_ours}), and overwrite would delete all it holds: "
            "pick a new folder, or empty that one yourself"
        )
    check_writable_place(out, "output folder", beside=True)  # before the minutes of reading and converting


def _not_a_gen3c_checkpoint(out: Path) -> str | None:
    """Why the folder ``out`` is not a gen3c checkpoint (which ``overwrite`` may replace), or None:
    no ``model_index.json``, or one of another pipeline (a Stable Diffusion checkpoint's)."""
    index = out / "model_index.json"
    if not index.is_file():
        return "no model_index.json"
    try:
        declared = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"its model_index.json is unreadable: {first_line(exc, 80)}"
    name = declared.get("_class_name") if isinstance(declared, dict) else None
    if name is None:
        return "its model_index.json names no pipeline (_class_name)"
    if name != PIPELINE_CLASS:
        return f"its model_index.json declares the pipeline {quoted(name, 60)}, not {PIPELINE_CLASS!r}"
    return None


def convert_components(
    dit_file: str | os.PathLike,
    tokenizer_dir: str | os.PathLike,
    text_encoder_dir: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    transformer_config: dict | None = None,
    vae_config: dict | None = None,
    dtype: torch.dtype = torch.bfloat16,
    text_encoder_dtype: torch.dtype = torch.bfloat16,
    keep_text_encoder: bool = True,
    trust_checkpoint: bool = False,
    overwrite: bool = False,
    max_shard_size: str = "5GB",
    log: Callable[[str], None] | None = print,
    full_report: bool = True,
    t5_elsewhere: str | None = None,
) -> ConversionReport:
    """:func:`convert_checkpoint` from the three parts wherever they are (e.g. hub snapshots):
    GEN3C's ``model.pt``, the tokenizer folder and the T5 folder.

    ``full_report=False`` says one line of counts per component instead of the key-by-key report
    (a thousand lines at GEN3C's size; it is kept in ``conversion_report.txt`` either way), unless
    the conversion fails.

    ``t5_elsewhere``: where runs find T5 when ``keep_text_encoder`` is False, for the report (None:
    nowhere, so only the cached prompts can be used).

    ``text_encoder_dir=None`` converts the DiT and the tokenizer only: the output has neither T5
    nor the prompt cache (:func:`prompt_cache_from_t5` makes one later), so until then it runs
    with ``disable_prompt_encoder`` only. The output appears only when complete (written to a
    temporary folder beside it, then renamed).
    """
    from diffusers import EDMEulerScheduler

    say = log or (lambda _line: None)
    out = Path(out_dir).expanduser()
    dit_path, tok_dir = Path(dit_file), Path(tokenizer_dir)
    _check_out_dir(out, overwrite, [dit_path, tok_dir] + ([Path(text_encoder_dir)] if text_encoder_dir is not None else []))
    report = ConversionReport()
    say(f"reading {dit_path}")
    transformer, rep = convert_transformer(
        dit_path, transformer_config or configs.TRANSFORMER_7B, dtype, trust_checkpoint
    )
    report.components.append(rep)
    say(f"reading {tok_dir}")
    vae, rep = convert_tokenizer(tok_dir, vae_config or configs.VAE_CV8X8X8, trust_checkpoint)
    report.components.append(rep)
    if not report.ok:
        say(report.format())
        bad = [c.name for c in report.components if not c.ok]
        raise Gen3cModelError(
            f"the checkpoint ({quoted_path(dit_path)}, {quoted_path(tok_dir)}) does not match GEN3C's layout ({', '.join(bad)}: see the report above): "
            f"check the download ({HUB_SOURCES})"
        )

    cache = text_encoder = tokenizer = None
    if text_encoder_dir is not None:
        t5_dir = Path(text_encoder_dir)
        say(f"reading {t5_dir}")
        text_encoder, tokenizer = _load_t5(t5_dir)
        cache = _prompt_cache(text_encoder, tokenizer)
        t5_report = ComponentReport("text_encoder", str(t5_dir))
        t5_report.notes.append(
            f"T5 encoder loaded with transformers ({sum(p.numel() for p in text_encoder.parameters()):,} parameters)"
        )
        t5_report.notes.append(
            "prompt_cache: float32 T5 embeddings of the empty prompt and GEN3C's default negative prompt"
        )
        if not keep_text_encoder:
            where = f"other prompts load it from {t5_elsewhere}" if t5_elsewhere else "only the cached prompts can be used"
            t5_report.notes.append(f"T5 left out of the output: {where}")
        report.components.append(t5_report)
    if full_report:
        say(report.format())
    else:
        for component in report.components:  # (T5 maps no key: what was loaded)
            said = component.notes[0] if component.notes and not (component.mapped or component.dropped) else component.lines()[-1].strip()
            say(f"{component.name}: {said}")
        say(f"(key by key in {out / 'conversion_report.txt'})")

    out.parent.mkdir(parents=True, exist_ok=True)
    kept_t5 = text_encoder if keep_text_encoder else None
    _remove_stale_staging(out, say)  # before the free space is counted: what they took is free again
    _check_free_space(out, _stored_bytes(transformer, vae, cache) + _stored_bytes(kept_t5, dtype=text_encoder_dtype))
    staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}"
    held = contextlib.ExitStack()
    try:
        staging.mkdir()  # inside the try: an interrupt leaves nothing behind
        held.enter_context(try_flock(staging))  # a later convert to OUT tells it from one a killed run left
        say(f"writing {out}")
        transformer.save_pretrained(
            staging / "transformer", safe_serialization=True, max_shard_size=max_shard_size
        )
        vae.save_pretrained(staging / "vae", safe_serialization=True)
        EDMEulerScheduler(**configs.SCHEDULER_GEN3C).save_pretrained(staging / "scheduler")
        components = {
            "transformer": ["diffusers", "CosmosTransformer3DModel"],
            "vae": ["diffusers", "AutoencoderKLCosmos"],
            "scheduler": ["diffusers", "EDMEulerScheduler"],
            "prompt_cache": [None, None],
            "text_encoder": [None, None],
            "tokenizer": [None, None],
        }
        if cache is not None:
            cache.save_pretrained(staging / "prompt_cache", safe_serialization=True)
            components["prompt_cache"] = list(PROMPT_CACHE_COMPONENT)
        if text_encoder is not None and keep_text_encoder:
            with libraries_quiet(("transformers",)):  # nor its "Writing model shards" bar
                text_encoder.to(text_encoder_dtype).save_pretrained(
                    staging / "text_encoder", safe_serialization=True, max_shard_size=max_shard_size
                )
                tokenizer.save_pretrained(staging / "tokenizer")
            components["text_encoder"] = ["transformers", "T5EncoderModel"]
            components["tokenizer"] = ["transformers", type(tokenizer).__name__]
        _write_model_index(staging, components)
        (staging / "conversion_report.txt").write_text(report.format() + "\n")
        say(f"writing {CHECKSUMS_FILE} (sha256 of every file, checked by --verify_checksums)")
        write_checksums(staging)
        replace_folder(staging, out)  # --overwrite: the old checkpoint stays until the new one is in place
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        held.close()
        if is_disk_full(exc):  # the disk filled up meanwhile (another process writing)
            raise DiskFullError(
                f"the disk filled up while writing the converted checkpoint {quoted_path(out)} ({first_line(exc, 80)}); nothing was kept: "
                "free some space or choose a folder on a larger disk, then convert again",
                disk_full_reason(exc),
            ) from None
        raise
    held.close()
    say(f"done: {out}")
    return report


def _remove_stale_staging(out: Path, say: Callable[[str], None]) -> None:
    """Delete the temporary folders (``.OUT.<12 hex>``) that conversions to ``out`` killed before
    the end left beside it, and the replaced checkpoints (``.OUT.<12 hex>.old``) that an
    ``--overwrite`` stopped while deleting them left; one a running conversion holds (its staging
    folder's lock) is left alone and named."""
    from gen3c.models.weights import format_bytes

    pattern = re.compile(re.escape(f".{out.name}.") + r"[0-9a-f]{12}(\.old)?")
    freed, count = 0, 0
    for path in sorted(out.parent.iterdir()) if out.parent.is_dir() else []:
        if not (pattern.fullmatch(path.name) and path.is_dir() and not path.is_symlink()):
            continue
        # an old checkpoint moved aside is locked through its staging folder while that is being swapped in
        with try_flock(path.with_suffix("") if path.suffix == ".old" else path, missing=True) as free:
            if not free:
                say(f"{path} is being written by another conversion to {out} (or its lock cannot be checked): left alone")
                continue
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
            shutil.rmtree(path, ignore_errors=True)
            freed, count = freed + size, count + 1
    if count:
        say(f"removed {count} temporary folder{'s' if count > 1 else ''} ({format_bytes(freed)}) that a stopped conversion to {out} left")


#: Room for what is written besides the weights (configs, T5's tokenizer files, the report).
_OUTPUT_SLACK_BYTES = 16 << 20


def _stored_bytes(*models, dtype: torch.dtype | None = None) -> int:
    """Bytes the safetensors files of ``models`` take (their tensors as they are, or in ``dtype``)."""
    return sum(
        t.numel() * (dtype.itemsize if dtype is not None and t.is_floating_point() else t.element_size())
        for model in models if model is not None for t in model.state_dict().values()
    )  # fmt: skip


def _check_free_space(out: Path, size: int) -> None:
    """Refuse, before the first byte is written, when the disk of ``out`` cannot take ``size``
    bytes (with --overwrite the old checkpoint stays until the new one is in place, so it counts)."""
    from gen3c.models.weights import format_bytes

    free = shutil.disk_usage(nearest_existing(out.parent)).free
    if size + _OUTPUT_SLACK_BYTES > free:
        raise Gen3cModelError(
            f"not enough free disk space for the converted checkpoint {quoted_path(out)}: about {format_bytes(size + _OUTPUT_SLACK_BYTES)} "
            f"needed, {format_bytes(free)} free: free some space or choose a folder on a larger disk"
        )


def prompt_cache_from_t5(text_encoder_dir: str | os.PathLike):
    """The :class:`~gen3c.models.prompt_cache.PromptEmbeddingCache` of the empty prompt and
    GEN3C's default negative prompt, computed with the T5 in ``text_encoder_dir`` (float32)."""
    return _prompt_cache(*_load_t5(Path(text_encoder_dir)))


def _prompt_cache(text_encoder, tokenizer):
    from gen3c.models.prompt_cache import PromptEmbeddingCache

    return PromptEmbeddingCache.from_embeddings({p: _t5_embed(text_encoder, tokenizer, p)[0] for p in configs.CACHED_PROMPTS})


def _write_model_index(folder: Path, components: dict[str, list]) -> None:
    import diffusers

    index = {"_class_name": PIPELINE_CLASS, "_diffusers_version": diffusers.__version__, **components}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def _load_t5(folder: Path):
    from transformers import AutoTokenizer, T5EncoderModel

    try:
        with libraries_quiet(("transformers",)):  # not its raw "Loading weights" bar between gen3c's lines
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            text_encoder = T5EncoderModel.from_pretrained(str(folder), dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise Gen3cModelError(
            f"T5 folder {quoted_path(folder)} could not be loaded ({first_line(exc)}): download google-t5/t5-11b again"
        ) from None
    return text_encoder.eval(), tokenizer


@torch.no_grad()
def _t5_embed(text_encoder, tokenizer, prompt: str, max_length: int = configs.MAX_SEQUENCE_LENGTH) -> Tensor:
    tokens = tokenizer(
        [prompt], padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
    )
    hidden = text_encoder(
        input_ids=tokens.input_ids, attention_mask=tokens.attention_mask
    ).last_hidden_state.float()
    return hidden * tokens.attention_mask[..., None]
