"""LoRA adapters on the GEN3C DiT, through peft as diffusers does (``PeftAdapterMixin``).

The adapter wraps the linears of every transformer block: self- and cross-attention
projections (``to_q``, ``to_k``, ``to_v``, ``to_out.0``) and the MLP (``ff.net.0.proj``,
``ff.net.2``). The patch embedding, time embedding, AdaLN modulations and the output layer stay
frozen (our choice: they are small and shared by every token, so the adapter's budget goes to
the blocks).

Files: a LoRA folder holds ``pytorch_lora_weights.safetensors`` (diffusers'
``save_lora_adapter`` layout, peft's LoraConfig in the safetensors metadata) and
``gen3c_lora.json`` (rank, alpha, targets, the base checkpoint it was trained on).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from gen3c.errors import Gen3cModelError, first_line, path_to_copy, quoted_path
from gen3c.io.atomic import replace_folder, write_text_atomic
from gen3c.io.formats import json_default, json_kind
from gen3c.io.hashing import sha256_file
from gen3c.io.paths import is_dir, refuse_special_file

if TYPE_CHECKING:  # torch is imported where a model is adapted: the adapter's files are checked without it
    from torch import nn

#: Linears of each CosmosTransformerBlock the adapter wraps (suffixes of module names).
DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2")
#: Name of the adapter inside the model.
ADAPTER_NAME = "gen3c_lora"
WEIGHTS_NAME = "pytorch_lora_weights.safetensors"
META_NAME = "gen3c_lora.json"


def target_modules(transformer: nn.Module, targets: tuple[str, ...] | list[str] = DEFAULT_TARGETS) -> list[str]:
    """Full names of the block linears whose names end with one of ``targets``."""
    from torch import nn

    names = [
        name
        for name, module in transformer.named_modules()
        if name.startswith("transformer_blocks.") and isinstance(module, nn.Linear)
        and any(name == t or name.endswith("." + t) for t in targets)
    ]  # fmt: skip
    if not names:
        raise Gen3cModelError(f"no linear of the DiT's blocks matches the LoRA targets {list(targets)}: check lora.targets")
    unmatched = [t for t in targets if not any(name == t or name.endswith("." + t) for name in names)]
    if unmatched:  # (a typo beside targets that match was left out silently: an adapter on fewer linears)
        raise Gen3cModelError(
            f"lora.targets {unmatched[0]!r} matches no linear of the DiT's blocks (they end in {', '.join(DEFAULT_TARGETS)}): "
            "correct or remove it"
        )
    return names


def add_lora(
    transformer: nn.Module,
    rank: int = 16,
    alpha: float | None = None,
    targets: tuple[str, ...] | list[str] = DEFAULT_TARGETS,
    dropout: float = 0.0,
    adapter_name: str = ADAPTER_NAME,
) -> list[str]:
    """Add a trainable LoRA adapter to ``transformer`` (its other weights are frozen).

    Returns the wrapped module names. peft initialises B to zero, so the adapted model starts
    equal to the base one.
    """
    from peft import LoraConfig

    names = target_modules(transformer, targets)
    transformer.requires_grad_(False)
    config = LoraConfig(
        r=rank, lora_alpha=float(alpha if alpha is not None else rank), lora_dropout=dropout,
        target_modules=names, init_lora_weights=True,
    )  # fmt: skip
    transformer.add_adapter(config, adapter_name=adapter_name)
    return names


def save_lora(transformer: nn.Module, folder: str | os.PathLike, meta: dict | None = None, adapter_name: str = ADAPTER_NAME) -> Path:
    """Write the adapter of ``transformer`` to ``folder`` (see the module docstring), whole: its
    weights and ``gen3c_lora.json`` are made in ``.NAME.part`` beside it, which then replaces
    ``folder`` (:func:`~gen3c.io.atomic.replace_folder`), so a save stopped midway leaves the
    previous adapter as it was, never new weights beside the previous rank, alpha and targets."""
    import shutil

    from gen3c.library_output import libraries_quiet

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.part")
    shutil.rmtree(tmp, ignore_errors=True)  # of a save stopped midway
    tmp.mkdir()
    try:
        with libraries_quiet():  # diffusers' no-op `.to(None)` warns about float32 modules
            transformer.save_lora_adapter(tmp, adapter_name=adapter_name, weight_name=WEIGHTS_NAME)
        config = transformer.peft_config[adapter_name]
        info = {"rank": config.r, "alpha": config.lora_alpha, "targets": sorted(config.target_modules), **(meta or {})}
        write_text_atomic(tmp / META_NAME, json.dumps(info, indent=2, default=json_default) + "\n")
        replace_folder(tmp, folder)  # (flushed to the disk, both files, before it is renamed)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def lora_weights_file(path: str | os.PathLike) -> Path:
    """The adapter's safetensors file: ``path`` itself or ``path/pytorch_lora_weights.safetensors``."""
    path = Path(path).expanduser()
    if is_dir(path):
        path = path / WEIGHTS_NAME
    refuse_special_file(path, "LoRA")
    try:
        path.is_file()
    except OSError as exc:  # the file system's refusal of the path itself (a name too long)
        raise Gen3cModelError(f"LoRA {quoted_path(path)} cannot be read ({exc.strerror}): check --lora") from None
    if not path.is_file():
        run = path.parent
        if path.name == WEIGHTS_NAME and (run / "lora" / WEIGHTS_NAME).is_file():  # `gen3c train --out OUT` given as OUT
            raise Gen3cModelError(f"LoRA folder {quoted_path(run)} has no {WEIGHTS_NAME}: it holds a training run: pass its adapter, {path_to_copy(run / 'lora')}")
        raise Gen3cModelError(
            f"LoRA {quoted_path(path)} does not exist: pass a folder written by `gen3c train` (mode lora) or its {WEIGHTS_NAME}"
        )
    if path.suffix != ".safetensors":
        raise Gen3cModelError(f"LoRA {quoted_path(path)} is not a .safetensors file: gen3c loads adapters from safetensors only")
    return path


def lora_sha256(path: str | os.PathLike) -> str:
    """sha256 of the adapter's weights (its safetensors file, :func:`lora_weights_file`), as
    ``sha256sum`` prints it: what a run records, so an adapter replaced under the same path is told."""
    return sha256_file(lora_weights_file(path))


def lora_base_checkpoint(path: str | os.PathLike) -> str | None:
    """The base checkpoint ``gen3c_lora.json`` beside the adapter names (None where there is no
    such record, as for an adapter made elsewhere, or it names none).

    Raises:
        Gen3cModelError: a record that is there but cannot be read or is not a JSON object (cut
            short, damaged, a link whose target is gone): the base it names is what a run is
            checked against, so it is not taken as absent.
    """
    path = Path(path).expanduser()
    record = (path if path.is_dir() else path.parent) / META_NAME
    if not record.exists() and not record.is_symlink():
        return None
    fix = "copy the adapter folder again (or delete the record to load the adapter unchecked)"
    try:
        info = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        why = f"a link to {quoted_path(os.readlink(record))}, which does not exist here" if record.is_symlink() and not record.exists() else first_line(exc, 120)
        raise Gen3cModelError(f"LoRA record {quoted_path(record)} cannot be read ({why}): {fix}") from None
    if not isinstance(info, dict):
        raise Gen3cModelError(f"LoRA record {quoted_path(record)} holds {json_kind(info)}, not the JSON object gen3c writes: {fix}")
    base = info.get("base_checkpoint")
    return str(base) if base else None


def load_lora(transformer: nn.Module, path: str | os.PathLike, adapter_name: str = ADAPTER_NAME, scale: float = 1.0) -> None:
    """Load an adapter saved by :func:`save_lora` into ``transformer`` and activate it."""
    file = lora_weights_file(path)
    if adapter_name in getattr(transformer, "peft_config", {}):
        transformer.delete_adapters(adapter_name)
    try:
        # Folder + weight name: diffusers then reads the safetensors metadata too (rank *and* alpha);
        # given the file's path alone it infers alpha = rank, which loses every lora.alpha ≠ rank.
        transformer.load_lora_adapter(str(file.parent), weight_name=file.name, prefix=None, adapter_name=adapter_name)
    except (ValueError, KeyError, RuntimeError, OSError) as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
        # torch's load_state_dict error starts with a header line; the first mismatch says what.
        first = next((line for line in lines if line.startswith(("size mismatch", "Missing key", "Unexpected key"))), lines[0])[:200]
        raise Gen3cModelError(f"LoRA {quoted_path(file)} does not fit this model ({first}): use an adapter trained on this checkpoint") from None
    if adapter_name not in getattr(transformer, "peft_config", {}):
        raise Gen3cModelError(f"LoRA {quoted_path(file)} holds no weights for this DiT: use an adapter trained on this checkpoint")
    transformer.set_adapters([adapter_name], weights=[scale])


def unload_lora(transformer: nn.Module) -> None:
    """Remove every adapter; the base weights were never changed, so the model is restored exactly."""
    if getattr(transformer, "peft_config", None):
        transformer.unload_lora()
