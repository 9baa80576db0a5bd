"""Models shipped inside the package (``--model NAME``), found without importing diffusers.

A packaged model is a gen3c checkpoint folder (the layout :func:`gen3c.pipelines.loading.load_pipeline`
reads) under ``gen3c/assets/<name>_model/`` with a ``gen3c_model.json`` that states what it was
trained for (``chunk_frames``, ``resolution``) and a ``MODEL_CARD.md``.
"""

from __future__ import annotations

import functools
import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

from gen3c.errors import Gen3cInputError, Gen3cModelError, is_whole_number, quoted_path, shown_value
from gen3c.io.formats import json_kind

#: Packaged model names → folder under gen3c/assets.
PACKAGED_MODELS = {"tiny": "tiny_model", "tiny_fast": "tiny_fast_model"}  # tiny_fast: tiny's 5-step distilled student
META_NAME = "gen3c_model.json"


def packaged_model_dir(name: str) -> Path:
    """The folder of the packaged model ``name``."""
    if name not in PACKAGED_MODELS:
        from gen3c.models.weights import is_official_repo

        if is_official_repo(name):  # (the hub id README names: --model is only for the shipped models)
            raise Gen3cInputError(
                f"--model {shown_value(name)} is GEN3C's own weights, not a model shipped in the package: leave out --model "
                "(and --checkpoint_dir) and the gen3c generator fetches and converts them on first use (`gen3c download` does it now)"
            )
        raise Gen3cInputError(
            f"unknown --model {shown_value(name)}: the package ships {', '.join(PACKAGED_MODELS)}; "
            "pass a checkpoint folder (e.g. OUT/model of `gen3c train`) or a hub id with --checkpoint_dir instead"
        )
    folder = Path(str(resources.files("gen3c") / "assets" / PACKAGED_MODELS[name]))
    if not (folder / "model_index.json").is_file():
        raise Gen3cModelError(f"the packaged model {name!r} is missing from this install ({quoted_path(folder)}): reinstall gen3c")
    return folder


def packaged_model_name(checkpoint: str | Path) -> str | None:
    """The name of the packaged model that ``checkpoint`` names (by its name or its folder), else None."""
    source = str(checkpoint)
    if source in PACKAGED_MODELS:
        return source
    folder = Path(source).expanduser().resolve()
    assets = Path(str(resources.files("gen3c") / "assets")).resolve()
    return next((name for name, sub in PACKAGED_MODELS.items() if folder == assets / sub), None)


def names_a_path(source: str) -> bool:
    """Whether ``source`` can only be a local path (``./x``, ``/x``, ``~/x``, ``a/b/c``), not a hub id (``org/name``)."""
    return source.startswith((".", "/", "~")) or os.sep in source.strip("/").replace("/", "", 1)


def check_checkpoint_path(source: str) -> None:
    """Refuse a checkpoint named by a path (:func:`names_a_path`) where nothing is, in one line
    (a missing folder is never a hub id)."""
    from gen3c.io.paths import exists

    if names_a_path(source) and not exists(source) and source not in PACKAGED_MODELS:
        from gen3c.models.weights import WEIGHTS_HELP

        raise Gen3cModelError(f"checkpoint {quoted_path(source)} does not exist: pass a converted checkpoint folder or a hub id; {WEIGHTS_HELP}")


def is_hub_id(checkpoint: str | os.PathLike) -> bool:
    """Whether a checkpoint named ``checkpoint`` is fetched from the hub (no local path, no packaged
    model; a missing path is none either: it is refused as missing)."""
    from gen3c.io.paths import exists

    source = str(checkpoint)
    return not exists(source) and source not in PACKAGED_MODELS and not names_a_path(source)


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


def distilled_steps(info: dict[str, Any]) -> int | None:
    """The steps a distilled student was trained to sample with (``info``: its ``gen3c_model.json``,
    which records the distillation: ``distilled`` for a run's ``model/``, ``distill_stage`` for a
    stage's student), else None (a teacher, a model trained or fine-tuned without distillation)."""
    if ("distilled" not in info and "distill_stage" not in info) or "num_steps" not in info:
        return None
    return int(info["num_steps"])


def checkpoint_info(folder: str | None) -> dict[str, Any]:
    """``gen3c_model.json`` of a checkpoint written by ``gen3c train`` ({} when absent): a local
    folder's, a packaged model's (its name, where no folder of that name is), or a hub id's
    (:func:`_hub_info`)."""
    from gen3c.io.paths import is_file

    if not folder:
        return {}
    path = Path(folder).expanduser() / META_NAME
    if not is_file(path):
        if str(folder) in PACKAGED_MODELS and not Path(folder).expanduser().exists():
            return packaged_model_info(str(folder))  # a packaged model's name, as the load reads it (loading.checkpoint_folder)
        return _checked_info(_hub_info(str(folder)), folder)
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise Gen3cModelError(f"checkpoint {quoted_path(folder)}: {META_NAME} is unreadable ({exc}): train or copy it again") from None
    return _checked_info(info, folder)


def _whole(value: Any) -> bool:
    return is_whole_number(value) and value >= 1


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


#: The settings of a ``gen3c_model.json`` that runs read (as ints, floats, a name): what each must be.
_INFO_FIELDS = {
    "chunk_frames": (_whole, "a whole number of frames ≥ 1"),
    "num_steps": (_whole, "a whole number of steps ≥ 1"),
    "guidance": (_finite, "a finite number"),
    "dtype": (lambda value: isinstance(value, str), "a dtype's name"),
}


def _checked_info(info: Any, folder: str) -> dict[str, Any]:
    """``info`` read from checkpoint ``folder``'s ``gen3c_model.json``, refused in one line where
    it is no JSON object or a setting a run reads has a value of another kind (it was a ValueError
    traceback where the run converted it)."""
    if not isinstance(info, dict):
        raise Gen3cModelError(f"checkpoint {quoted_path(folder)}: {META_NAME} is unreadable ({json_kind(info)}, not an object): train or copy it again")
    for key, (fits, what) in _INFO_FIELDS.items():
        if key in info and not fits(info[key]):
            raise Gen3cModelError(f"checkpoint {quoted_path(folder)}: {META_NAME}'s {key!r} must be {what}, got {json.dumps(info[key])[:40]}: fix or remove it")
    return info


def model_info(options: dict[str, Any]) -> dict[str, Any]:
    """The ``gen3c_model.json`` of the model a gen3c generator's options name: the packaged model's
    or the checkpoint's ({} where there is none: GEN3C's own weights)."""
    return packaged_model_info(options["model"]) if options.get("model") else checkpoint_info(options.get("checkpoint_dir"))


def model_chunk_frames(options: dict[str, Any]) -> int | None:
    """Frames per chunk a gen3c generator's options imply: ``chunk_frames``, else the packaged
    model's or the checkpoint's ``gen3c_model.json``, else None (GEN3C's 121)."""
    if options.get("chunk_frames"):
        return int(options["chunk_frames"])
    info = model_info(options)
    return int(info["chunk_frames"]) if "chunk_frames" in info else None


def model_resolution(options: dict[str, Any]) -> tuple[int, int] | None:
    """The (H, W) a gen3c generator's model was trained at: the packaged model's or the
    checkpoint's ``gen3c_model.json`` ``resolution``, else None (GEN3C's 704×1280)."""
    size = model_info(options).get("resolution")
    if size is None:
        return None
    if not (isinstance(size, list) and len(size) == 2 and all(is_whole_number(v) and v > 0 for v in size)):
        where = options.get("model") or options.get("checkpoint_dir")
        raise Gen3cModelError(f"model {quoted_path(where)}: {META_NAME}'s 'resolution' must be [height, width] in pixels, got {str(size)[:40]}: fix or remove it")
    return int(size[0]), int(size[1])


@functools.lru_cache(maxsize=8)
def _hub_info(source: str) -> dict[str, Any]:
    """``gen3c_model.json`` of the converted checkpoint a hub id names, so the checks before loading
    know its chunk and size as a local folder's: from huggingface_hub's cache, else fetched into it
    (one small file, as loading fetches the rest) after one request without retries, so a mistyped
    id or no network costs no waiting. {} for no hub id, GEN3C's official weights (their own info:
    :func:`gen3c.pipelines.settings.official_chunk_frames`), or a file that cannot be had (loading
    then says what is wrong)."""
    from gen3c.models.weights import is_official_repo

    if not is_hub_id(source) or is_official_repo(source):
        return {}
    try:
        from huggingface_hub import (
            constants,
            get_hf_file_metadata,
            hf_hub_download,
            hf_hub_url,
            try_to_load_from_cache,
        )

        cached = try_to_load_from_cache(source, META_NAME)
        if not isinstance(cached, str):
            if constants.HF_HUB_OFFLINE:
                return {}
            get_hf_file_metadata(hf_hub_url(source, META_NAME))  # (no retries: hf_hub_download waits ~23 s without a network)
            cached = hf_hub_download(source, META_NAME)
    except Exception:  # the hub's many error types (no such repo or file, no network): loading names them
        return {}
    try:
        return json.loads(Path(cached).read_text())
    except (OSError, ValueError) as exc:
        raise Gen3cModelError(f"checkpoint {quoted_path(source)}: {META_NAME} is unreadable ({exc}): upload it again") from None
