"""Models shipped inside the package (``--model NAME``), found without importing diffusers.

A packaged model is a gen3c checkpoint folder (the layout :func:`gen3c.pipelines.loading.load_pipeline`
reads) under ``gen3c/assets/<name>_model/`` with a ``gen3c_model.json`` that states what it was
trained for (``chunk_frames``, ``resolution``) and a ``MODEL_CARD.md``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from gen3c.errors import Gen3cInputError, Gen3cModelError

#: Packaged model names → folder under gen3c/assets.
PACKAGED_MODELS = {"tiny": "tiny_model", "tiny_fast": "tiny_fast_model"}  # tiny_fast: tiny's 5-step distilled student
META_NAME = "gen3c_model.json"


def packaged_model_dir(name: str) -> Path:
    """The folder of the packaged model ``name``."""
    if name not in PACKAGED_MODELS:
        raise Gen3cInputError(
            f"unknown --model {name!r}: the package ships {', '.join(PACKAGED_MODELS)}; "
            "pass a checkpoint folder (e.g. OUT/model of `gen3c train`) with --checkpoint_dir instead"
        )
    folder = Path(str(resources.files("gen3c") / "assets" / PACKAGED_MODELS[name]))
    if not (folder / "model_index.json").is_file():
        raise Gen3cModelError(f"the packaged model {name!r} is missing from this install ({folder}): reinstall gen3c")
    return folder


def packaged_model_name(checkpoint: str | Path) -> str | None:
    """The name of the packaged model that ``checkpoint`` names (by its name or its folder), else None."""
    source = str(checkpoint)
    if source in PACKAGED_MODELS:
        return source
    folder = Path(source).expanduser().resolve()
    assets = Path(str(resources.files("gen3c") / "assets")).resolve()
    return next((name for name, sub in PACKAGED_MODELS.items() if folder == assets / sub), None)


def resolve_checkpoint(value: str) -> str:
    """A training config's ``model.checkpoint``: a packaged model's name (``tiny``) → its folder;
    anything else (a checkpoint folder, a hub id, "") as given."""
    return str(packaged_model_dir(value)) if value in PACKAGED_MODELS else value


def packaged_model_info(name: str) -> dict[str, Any]:
    """``gen3c_model.json`` of the packaged model ``name`` (chunk_frames, resolution, …)."""
    path = packaged_model_dir(name) / META_NAME
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise Gen3cModelError(f"the packaged model {name!r} has no readable {META_NAME} ({exc}): reinstall gen3c") from None


def checkpoint_info(folder: str | None) -> dict[str, Any]:
    """``gen3c_model.json`` of a local checkpoint folder written by ``gen3c train`` ({} when absent)."""
    if not folder:
        return {}
    path = Path(folder).expanduser() / META_NAME
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise Gen3cModelError(f"checkpoint {folder!r}: {META_NAME} is unreadable ({exc}): train or copy it again") from None


def model_chunk_frames(options: dict[str, Any]) -> int | None:
    """Frames per chunk a gen3c generator's options imply: ``chunk_frames``, else the packaged
    model's or the checkpoint's ``gen3c_model.json``, else None (GEN3C's 121)."""
    if options.get("chunk_frames"):
        return int(options["chunk_frames"])
    info = packaged_model_info(options["model"]) if options.get("model") else checkpoint_info(options.get("checkpoint_dir"))
    return int(info["chunk_frames"]) if "chunk_frames" in info else None


def model_resolution(options: dict[str, Any]) -> tuple[int, int] | None:
    """The (H, W) a gen3c generator's model was trained at: the packaged model's or the
    checkpoint's ``gen3c_model.json`` ``resolution``, else None (GEN3C's 704×1280)."""
    info = packaged_model_info(options["model"]) if options.get("model") else checkpoint_info(options.get("checkpoint_dir"))
    size = info.get("resolution")
    if size is None:
        return None
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        where = options.get("model") or options.get("checkpoint_dir")
        raise Gen3cModelError(f"model {where!r}: {META_NAME}'s 'resolution' must be [height, width] in pixels, got {str(size)[:40]}: fix or remove it")
    return int(size[0]), int(size[1])
