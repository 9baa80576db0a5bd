"""Loading GEN3C checkpoints: a converted folder or hub id → :class:`Gen3cPipeline` / :class:`Gen3cGenerator`.

- :func:`check_checkpoint_dir` — what a local converted checkpoint lacks, in one message
  (:func:`check_local_checkpoint`: the same for a checkpoint as a run names it, before its input is read);
  :func:`check_checkpoint` — every check a load runs first (layout, tensors, memory, checksums);
- :func:`load_pipeline` — :meth:`Gen3cPipeline.from_pretrained` (the one loader) with gen3c's
  run-time defaults: on the CPU in bfloat16, T5 left out until a prompt needs it;
- :func:`load_generator` — the pipeline with a memory mode and speed settings, as a generator;
- :func:`generator_from_options` — the same from a request's ``generator_options`` (CLI flags);
  without a checkpoint, GEN3C's official weights, fetched and converted once
  (:func:`gen3c.models.weights.prepare_weights`).

The gen3c generator's options are checked by :mod:`gen3c.pipelines.options`, which imports no
torch (and this module, no diffusers: :mod:`gen3c.pipelines.gen3c` is imported where a model is
loaded), so a mistyped setting is refused in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gen3c.errors import (
    Gen3cInputError,
    Gen3cModelError,
    first_line,
    note,
    path_to_copy,
    quoted_path,
    spelled,
    with_article,
)
from gen3c.io.formats import json_kind
from gen3c.models import configs
from gen3c.models.choices import check_gpu_budget
from gen3c.models.context_parallel import (
    check_context_parallel_attention,
    context_parallel_attention,
    enable_context_parallel,
)
from gen3c.models.memory import (
    MemoryPlan,
    ModelSize,
    check_host_memory,
    choose_memory_plan,
    float8_bytes,
    format_gb,
    module_bytes,
    requested_memory_plan,
)
from gen3c.models.packaged import is_hub_id as is_hub_id  # (where checkpoint_folder fetches)
from gen3c.models.step_cache import MagRatioStore, StepCache, StepCacheSpec
from gen3c.models.weights import WEIGHTS_HELP, holds_text_encoder, is_official_repo, prompts_of
from gen3c.parallel import init_parallel

# The gen3c generator's options and their checks (no torch); those of its names used elsewhere are re-exported here.
from gen3c.pipelines.options import GENERATOR_OPTIONS as GENERATOR_OPTIONS
from gen3c.pipelines.options import (
    _check_guidance_settings,
    check_generator_options,
    check_memory_settings,
    check_model_split,
    check_speed_device,
    checkpoint_configs,
    model_sampling_defaults,
    sampling_settings,
)
from gen3c.pipelines.options import model_configs as model_configs
from gen3c.pipelines.presets import SPEED_PRESETS, SpeedPreset, speed_name, speed_settings
from gen3c.pipelines.request import (
    MODEL_GENERATOR_SETTINGS,
    MODEL_NAMING_SETTINGS,
    PER_JOB_GENERATOR_SETTINGS,
    SAMPLING_GENERATOR_SETTINGS,
    model_source,
)
from gen3c.pipelines.spelling import keyword_spelling, loader_spelling
from gen3c.progress import ProgressFactory
from gen3c.schedulers import make_scheduler, sampler_name

if TYPE_CHECKING:
    from gen3c.pipelines.gen3c import Gen3cGenerator, Gen3cPipeline

REQUIRED_COMPONENTS = ("transformer", "vae", "scheduler")


#: diffusers' ``from_pretrained`` arguments that say how to fetch a hub checkpoint (:func:`checkpoint_folder`).
HUB_OPTIONS = ("revision", "cache_dir", "token", "local_files_only", "force_download")


def checkpoint_folder(checkpoint: str | os.PathLike, *, skip: Sequence[str] = (), **hub_options: Any) -> Path:
    """The local folder of a converted checkpoint named by ``checkpoint``: an existing path as it
    is; a model shipped in the package (``"tiny"``, ``"tiny_fast"``) → its folder; else a hub id,
    whose files are fetched into huggingface_hub's cache (``HF_HOME``; unchanged files are not
    fetched again) but for the folders of the components in ``skip`` and of those its
    ``model_index.json`` leaves out (``[null, null]``), as diffusers fetches a pipeline.
    ``hub_options``: those of :data:`HUB_OPTIONS`.

    Raises:
        Gen3cModelError: a path that does not exist, or a hub id that cannot be fetched, in one line.
    """
    from gen3c.models.packaged import PACKAGED_MODELS, check_checkpoint_path, packaged_model_dir

    source = str(checkpoint)
    local = Path(source).expanduser()
    if local.exists():
        return local
    if source in PACKAGED_MODELS:
        return packaged_model_dir(source)
    check_checkpoint_path(source)
    from huggingface_hub import hf_hub_download, snapshot_download

    from gen3c.depth.hub import hub_offline_reason

    # Where the hub cannot be reached, its cache alone is read: huggingface_hub would retry each
    # request for half a minute, printing every retry, before saying it cannot.
    offline = None if hub_options.get("local_files_only") else hub_offline_reason()
    if offline is not None:
        hub_options = {**hub_options, "local_files_only": True}
    try:
        index = json.loads(Path(hf_hub_download(source, "model_index.json", **hub_options)).read_text())
        absent = [name for name, value in index.items() if isinstance(value, list) and value[:1] == [None]]
        return Path(snapshot_download(source, ignore_patterns=[f"{name}/*" for name in (*skip, *absent)], **hub_options))
    except (OSError, ValueError, AttributeError) as exc:  # huggingface_hub's (HTTP: OSError; offline; a bad id), a bad model_index.json
        error = _hub_checkpoint_error(source, exc, hub_options.get("revision"), offline)
        if offline is None:
            raise error from None
    raise error  # (outside the except: no huggingface_hub words as its context, which a caller quoting one would quote)


def _hub_checkpoint_error(source: str, exc: Exception, revision: str | None, offline: str | None = None) -> Gen3cModelError:
    """One line for a hub id :func:`checkpoint_folder` could not fetch: the repository, the
    revision or model_index.json missing (the hub says 404 to all three), not in the cache while
    the hub cannot be reached (``offline``: why, :func:`~gen3c.depth.hub.hub_offline_reason`), else
    huggingface_hub's words."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"checkpoint {quoted_path(source)} is no local folder"
    if isinstance(exc, GatedRepoError):
        return Gen3cModelError(
            f"{where}, and its hub repository is gated: accept its terms at {constants.ENDPOINT}/{source} while logged in, "
            "then run `hf auth login` here (or set HF_TOKEN)"
        )
    if isinstance(exc, RepositoryNotFoundError):
        from gen3c.models.packaged import PACKAGED_MODELS
        from gen3c.models.weights import OFFICIAL_REPO

        # A typo of a name gen3c itself knows (GEN3C's own weights, a shipped model) is named.
        known = {name.casefold(): name for name in (OFFICIAL_REPO, *PACKAGED_MODELS)}
        near = difflib.get_close_matches(source.casefold(), known, n=1, cutoff=0.8)
        hint = f"did you mean {known[near[0]]!r}? " if near else ""
        return Gen3cModelError(
            f"{where} and no repository on the hub ({constants.ENDPOINT}): {hint}check the path or the repository id "
            "(a private repository needs `hf auth login`)"
        )
    if isinstance(exc, RevisionNotFoundError):
        return Gen3cModelError(f"{where}, and its hub repository has no revision {revision!r}: pass a branch, tag or commit it has")
    if isinstance(exc, LocalEntryNotFoundError) and constants.HF_HUB_OFFLINE:
        return Gen3cModelError(f"{where}, its hub repository is not in huggingface_hub's cache, and HF_HUB_OFFLINE=1 forbids fetching it: unset HF_HUB_OFFLINE")
    if isinstance(exc, LocalEntryNotFoundError) and offline is not None:
        return Gen3cModelError(
            f"{where}, its hub repository is not in huggingface_hub's cache, and the hub cannot be used ({offline}): "
            "check the path, or the network (or HF_ENDPOINT)"
        )
    if isinstance(exc, EntryNotFoundError) and not isinstance(exc, LocalEntryNotFoundError):
        return Gen3cModelError(f"{where}, and its hub repository has no model_index.json, so it is not a converted gen3c checkpoint: {WEIGHTS_HELP}")
    return Gen3cModelError(
        f"{where} and could not be fetched from the hub ({first_line(exc, 160)}): check the path or the repository id"
    )


def check_checkpoint_dir(path: str | os.PathLike, skip: Sequence[str] = ()) -> None:
    """Raise :class:`Gen3cModelError` naming what a local converted checkpoint lacks (but the
    components in ``skip``, passed to ``from_pretrained`` as objects): a file, GEN3C's original
    layout, no ``model_index.json``, a component's missing files. Reads no weights (milliseconds)."""
    from gen3c.models.verify import CHECKED_COMPONENTS, unreadable_file

    root = Path(path)
    if root.exists() and not root.is_dir():
        raise Gen3cModelError(f"checkpoint {quoted_path(root)} is a file: pass the checkpoint's folder (the one holding model_index.json)")
    if (root / "model.pt").is_file() and root.name != "Gen3C-Cosmos-7B" and not (root / "Gen3C-Cosmos-7B").is_dir():
        # GEN3C's DiT on its own (a hub snapshot of nvidia/Gen3C-Cosmos-7B, a renamed folder):
        # `gen3c convert` of it is refused in turn, as it needs the tokenizer and T5 beside it.
        raise Gen3cModelError(
            f"checkpoint {quoted_path(root)} holds GEN3C's DiT in its original layout (model.pt), not a converted checkpoint, "
            f"and `gen3c convert` needs GEN3C's tokenizer and T5 beside it: {WEIGHTS_HELP}"
        )
    if (root / "Gen3C-Cosmos-7B").is_dir() or (root / "model.pt").is_file():
        # Gen3C-Cosmos-7B/ itself (model.pt inside): `gen3c convert` reads the folder above it,
        # which also holds the tokenizer and T5.
        above = Path(os.path.abspath(root)).parent
        source = above if (root / "model.pt").is_file() and root.name == "Gen3C-Cosmos-7B" else root
        raise Gen3cModelError(
            f"checkpoint {quoted_path(root)} is GEN3C's original layout, not a converted one: "
            f"run `gen3c convert {path_to_copy(source)} OUT_DIR` and pass OUT_DIR"
        )
    index = root / "model_index.json"
    if not index.is_file():
        if (root / "model" / "model_index.json").is_file():  # `gen3c train --out OUT` given as OUT
            raise Gen3cModelError(f"checkpoint {quoted_path(root)} has no model_index.json: it holds a training run: pass its model, {path_to_copy(root / 'model')}")
        raise Gen3cModelError(
            f"checkpoint {quoted_path(root)} has no model_index.json, so it is not a converted gen3c checkpoint: {WEIGHTS_HELP}"
        )
    try:
        declared = json.loads(index.read_text())
        if not isinstance(declared, dict):
            raise ValueError(f"{json_kind(declared)}, not an object")
    except PermissionError as exc:
        raise unreadable_file(index, exc) from None
    except (OSError, ValueError) as exc:
        raise Gen3cModelError(
            f"checkpoint {quoted_path(root)}: model_index.json is unreadable ({first_line(exc)}): convert again"
        ) from None
    missing = []
    for name in REQUIRED_COMPONENTS:
        if name in skip:
            continue
        folder = root / name
        if name not in declared or not folder.is_dir():
            missing.append(f"{name}/")
            continue
        if name == "scheduler":
            if not (folder / "scheduler_config.json").is_file():
                missing.append(f"{name}/scheduler_config.json")
            continue
        if not (folder / "config.json").is_file():
            missing.append(f"{name}/config.json")
        if not any(folder.glob("*.safetensors")):
            missing.append(f"{name}/*.safetensors")
        index_files = list(folder.glob("*.safetensors.index.json"))
        for idx in index_files:
            try:
                shards = set(json.loads(idx.read_text())["weight_map"].values())
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                missing.append(f"{name}/{idx.name} (unreadable)")
                continue
            missing += [f"{name}/{s}" for s in sorted(shards) if not (folder / s).is_file()]
    if missing:
        raise Gen3cModelError(
            f"checkpoint {quoted_path(root)} is incomplete, missing {', '.join(missing)}: {WEIGHTS_HELP}"
        )
    for name in REQUIRED_COMPONENTS:  # another model's classes (or none) declared: diffusers' error came through, cut short
        if name in skip:
            continue
        entry, wanted = declared[name], CHECKED_COMPONENTS.get(name)
        named = isinstance(entry, list) and len(entry) == 2 and all(isinstance(v, str) for v in entry)
        if not named or (wanted is not None and entry != ["diffusers", wanted]):
            needs = json.dumps(["diffusers", wanted]) if wanted else "a diffusers scheduler"
            raise Gen3cModelError(
                f"checkpoint {quoted_path(root)}: model_index.json declares {name} as {json.dumps(entry)[:80]}, gen3c loads {needs}, "
                f"so it is not a gen3c checkpoint: {WEIGHTS_HELP}"
            )
    for name in REQUIRED_COMPONENTS:  # a config that is no JSON object: an AttributeError traceback, or diffusers looking it up on the hub
        if name in skip:
            continue
        config = Path(name) / ("scheduler_config.json" if name == "scheduler" else "config.json")
        try:
            read = json.loads((root / config).read_text())
            if not isinstance(read, dict):
                raise ValueError(f"{json_kind(read)}, not an object")
        except PermissionError as exc:
            raise unreadable_file(root / config, exc) from None
        except (OSError, ValueError) as exc:
            raise Gen3cModelError(
                f"checkpoint {quoted_path(root)}: {config.as_posix()} is unreadable ({first_line(exc)}): convert again"
            ) from None


def check_local_checkpoint(checkpoint: str | os.PathLike) -> None:
    """Refuse, in the words its load would, a checkpoint named by a local path (or a packaged
    model's name) that cannot load, without reading a weight (:func:`check_checkpoint_dir`).
    A hub id and GEN3C's own weights pass (fetched as they load)."""
    if is_official_repo(checkpoint) or is_hub_id(checkpoint):
        return
    folder = checkpoint_folder(checkpoint)  # (a local path or a packaged model: nothing is fetched)
    check_checkpoint_dir(folder, skip=("text_encoder", "tokenizer"))  # as load_pipeline loads it, T5 left out


def check_checkpoint(
    folder: str | os.PathLike, dtype: torch.dtype, *, verify_checksums: bool = False, skip: Sequence[str] = ()
) -> None:
    """What every load of a converted checkpoint checks before a weight is read
    (:meth:`Gen3cPipeline.from_pretrained`, and so :func:`load_pipeline` and :func:`load_generator`):
    the local ``folder``'s layout (:func:`check_checkpoint_dir`), every tensor's name, shape and
    dtype against the configs (:func:`gen3c.models.verify.verify_weights`), that weights cast to
    ``dtype`` fit this machine's memory, and with ``verify_checksums`` every file's sha256 against
    the ``checksums.json`` that ``gen3c convert`` wrote. ``skip``: components passed as objects.

    Raises:
        Gen3cModelError: what is wrong with the checkpoint, in one line (Gen3cMemoryError: too big).
    """
    from gen3c.models import verify

    folder = Path(folder)
    check_checkpoint_dir(folder, skip)
    found = checkpoint_configs(folder)
    if found is not None and "transformer" not in skip:  # (an unreadable config: verify_weights says so)
        configs.check_model_channels(found[0], f"checkpoint {quoted_path(folder)}", WEIGHTS_HELP)
    if "scheduler" not in skip:
        _check_scheduler(folder)
    sizes = verify.verify_weights(folder, skip)
    copied = sum(size.loaded_bytes(dtype) for size in sizes.values() if size.copied_on_load(dtype))
    if copied:  # a cast copies the weights into memory; as stored they are read from the file
        check_host_memory(
            copied, f"checkpoint {quoted_path(folder)} in {str(dtype).removeprefix('torch.')}",
            "run it where it computes in the dtype it is stored in (GEN3C-7B: bfloat16 on a CUDA GPU), "
            "or run the small model (--model tiny) or the preview generator on this machine",
        )  # fmt: skip
    if verify_checksums:
        verify.verify_checksums(folder)


def _check_scheduler(folder: Path) -> None:
    """Refuse, in one line, a scheduler config with values its diffusers scheduler cannot be built
    from (``"sigma_max": "big"`` was a TypeError traceback from inside diffusers)."""
    import diffusers

    declared = json.loads((folder / "model_index.json").read_text()).get("scheduler")
    name = declared[1] if isinstance(declared, list) and len(declared) == 2 and declared[0] == "diffusers" else None
    cls = getattr(diffusers, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
        return  # (diffusers' load names what it cannot load)
    path = folder / "scheduler" / "scheduler_config.json"
    try:
        cls.from_config(cls.load_config(str(path.parent)))
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError, RuntimeError) as exc:
        # What a value of the wrong type or range raises as diffusers and torch compute with it (the
        # file is a readable JSON object: check_checkpoint_dir); a MemoryError, an ImportError of an
        # optional package or a failing disk is no malformed config, and goes on as itself.
        raise Gen3cModelError(f"checkpoint {quoted_path(folder)}: scheduler/scheduler_config.json does not describe {with_article(name)} ({first_line(exc, 120)}): convert again") from None


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """One of :data:`~gen3c.models.configs.DTYPE_NAMES`, as a torch dtype or a name ("bfloat16"/"bf16",
    "float16"/"fp16", "float32"/"fp32"), as a torch dtype. Another torch dtype (float64, int8) is
    refused, as the CLI and a request's settings refuse it: gen3c runs in none of them."""
    name = configs.dtype_name(dtype)
    if name is None:
        raise Gen3cInputError(f"dtype {str(dtype)[:40]!r} is not one gen3c runs in: pass {configs.DTYPES_HELP}, as a name or a torch dtype")
    return getattr(torch, name)


def refuse_checksums_of_hub(source: str) -> None:
    raise Gen3cInputError(f"--verify_checksums checks a local checkpoint folder; {quoted_path(source)} is not one (hub downloads are checked by the hub)")


def load_pipeline(
    checkpoint: str | os.PathLike,
    *,
    dtype: torch.dtype | str = torch.bfloat16,
    load_text_encoder: bool = False,
    verify_checksums: bool = False,
    text_encoder_dir: str | os.PathLike | None = None,
) -> Gen3cPipeline:
    """A converted checkpoint (folder, packaged model name or hub id) on the CPU with gen3c's
    run-time defaults: :meth:`Gen3cPipeline.from_pretrained` (the same checks, the same errors)
    in GEN3C's bfloat16 and without T5, which loads on the first prompt outside the prompt cache
    (from the checkpoint, or from ``text_encoder_dir``, a T5 folder in transformers' layout, when
    the checkpoint has none: :class:`~gen3c.models.weights.PreparedWeights`). ``from_pretrained``
    is diffusers' entry point, with diffusers' defaults (every stored component, float32) and
    diffusers' loading bar; here it is off (:func:`gen3c.library_output.libraries_quiet`).

    ``load_text_encoder``: load T5 now; ``verify_checksums``: check every file's sha256 first.
    """
    from gen3c.library_output import libraries_quiet
    from gen3c.pipelines.gen3c import Gen3cPipeline

    dtype = resolve_dtype(dtype)
    skip = {} if load_text_encoder else {"text_encoder": None, "tokenizer": None}
    with libraries_quiet():  # not diffusers' raw "Loading pipeline components" bar beside gen3c's
        pipe = Gen3cPipeline.from_pretrained(checkpoint, dtype=dtype, verify_checksums=verify_checksums, **skip)
    if text_encoder_dir is not None:
        pipe.text_encoder_source = str(text_encoder_dir)
    return pipe


def load_official_pipeline(
    *,
    dtype: torch.dtype | str = torch.bfloat16,
    prompts: tuple[str, ...] | None = None,
    text_encoder: bool = False,
    cache_dir: str | os.PathLike | None = None,
    verify_checksums: bool = False,
) -> Gen3cPipeline:
    """GEN3C's official weights as a :class:`Gen3cPipeline` on the CPU: fetched, checked and
    converted on first use, then loaded from gen3c's cache (:mod:`gen3c.models.weights`).

    Args:
        prompts: the prompts that will be used; one outside the prompt cache fetches T5 up front
            (default: the empty prompt and GEN3C's negative prompt; another later gets T5 when
            first encoded, :func:`prepare_prompts`). ``()``: no prompt encoder.
        text_encoder: fetch T5 (and build the prompt cache) whatever the prompts.
        cache_dir: the folder of converted weights (default ``$GEN3C_CACHE_DIR`` or ``~/.cache/gen3c``).
    """
    from gen3c.models.weights import prepare_weights

    dtype = resolve_dtype(dtype)  # refused before anything is fetched
    prompts = configs.CACHED_PROMPTS if prompts is None else tuple(prompts)
    prepared = prepare_weights(prompts=prompts, text_encoder=text_encoder, cache_dir=cache_dir)
    pipe = load_pipeline(prepared.checkpoint, dtype=dtype, verify_checksums=verify_checksums, text_encoder_dir=prepared.text_encoder)
    pipe.disable_prompt_encoder = not prompts
    pipe.official_cache = str(prepared.checkpoint.parent)
    return pipe


def _in_keywords(load: Callable[..., Gen3cGenerator]) -> Callable[..., Gen3cGenerator]:
    """``load`` with its refusals and notes, worded for the command line (``--max_gpu_memory``), in
    its keyword arguments (``max_gpu_memory=``: :func:`~gen3c.pipelines.spelling.loader_spelling`),
    as :func:`gen3c.generate` words its own (``load`` itself, ``__wrapped__``, keeps the command line's)."""

    @functools.wraps(load)
    def in_keywords(*args: Any, **kwargs: Any) -> Gen3cGenerator:
        with spelled(loader_spelling):
            generator = load(*args, **kwargs)
        # and its generations' (running out of memory names a setting of this call: low_memory=True)
        generator.message_spelling = loader_spelling
        return generator

    return in_keywords


@_in_keywords
def load_generator(
    checkpoint: str | os.PathLike,
    *,
    offload_diffusion_transformer: bool = False,
    offload_tokenizer: bool = False,
    offload_text_encoder_model: bool = False,
    memory_mode: str = "resident",
    fp8: bool = False,
    vae_chunk_frames: int | None = None,
    low_memory: bool = False,
    max_gpu_memory: float | None = None,
    disable_prompt_encoder: bool = False,
    speed: str | None = None,
    sampler: str | None = None,
    guidance_every: int | None = None,
    guidance_batch: bool | None = None,
    step_cache: str | None = None,
    compile: bool | None = None,
    attention_backend: str | None = None,
    fp8_matmul: bool | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    num_gpus: int = 1,
    lora: str | os.PathLike | None = None,
    verify_checksums: bool = False,
    text_encoder_dir: str | os.PathLike | None = None,
    resolution: tuple[int, int] | None = None,
    **generator_options: Any,
) -> Gen3cGenerator:
    """Load a converted GEN3C checkpoint as a :class:`Gen3cGenerator`.

    Args:
        checkpoint: a folder written by ``gen3c convert`` or ``gen3c train`` (or a hub id of one);
            the ``gen3c_model.json`` a trained or distilled model carries sets the defaults of
            ``chunk_frames``, ``num_steps``, ``guidance`` and ``dtype`` (a 5-step student runs 5
            steps without guidance unless told otherwise).
        offload_diffusion_transformer, offload_tokenizer, offload_text_encoder_model: GEN3C's
            flags: keep that component in CPU memory except while it runs.
        memory_mode: "resident", "model_offload" or "group_offload" (:mod:`gen3c.models.memory`).
        fp8: store the transformer's weights in float8.
        vae_chunk_frames: latent frames per tokenizer chunk (None: mode default; 0: none).
        low_memory: the leanest plan (:data:`gen3c.models.memory.LOW_MEMORY`).
        max_gpu_memory: a budget in GB: the fastest plan whose estimated peak fits it is chosen
            (:func:`gen3c.models.memory.choose_memory_plan`; with a ``lora``, among those without
            float8 weights) and named in a warning.
        disable_prompt_encoder: use zero text embeddings (GEN3C's flag), never loading T5.
        speed: a speed preset of :data:`gen3c.pipelines.presets.SPEED_PRESETS` (default "exact");
            the settings below (and ``num_steps``), when not None, override its values.
        sampler: a :data:`gen3c.schedulers.SAMPLERS` name ("euler": GEN3C's).
        guidance_every, guidance_batch: how guidance's two branches run (:meth:`Gen3cPipeline.denoise`).
        step_cache: DiT step caching, e.g. "fbc", "taylorseer:3" (:mod:`gen3c.models.step_cache`);
            MagCache's ratios come from (and are measured into) :class:`~gen3c.models.step_cache.MagRatioStore`.
        compile: regional ``torch.compile`` of the transformer blocks (:mod:`gen3c.models.speed`);
            None: the preset's, whose None is "when the DiT is resident on one CUDA GPU".
        attention_backend: the DiT's self-attention (:func:`gen3c.models.speed.set_attention_backend`):
            "auto" (the fastest exact kernel here), "auto_fp8", "flash4", "cudnn_fp8", "sdpa", or a
            diffusers backend name.
        fp8_matmul: run the blocks' linears as float8 matmuls (H100-class GPUs; a quality cost);
            None: the preset's, whose None is "when the DiT is resident in bf16 on such a GPU".
        device: compute device (default CUDA when available).
        dtype: weights' dtype; default bfloat16 (GEN3C's) on a GPU, float32 on the CPU, whose
            tokenizer has no bfloat16 pooling kernel.
        num_gpus: GEN3C's ``--num_gpus``: in a ``torchrun --nproc_per_node=N`` launch, split the
            DiT's tokens across the N ranks (:mod:`gen3c.models.context_parallel`); each rank
            computes on ``cuda:LOCAL_RANK`` (the CPU with gloo when there is no GPU), and
            ``device`` may only name the device type.
        lora: a LoRA adapter written by ``gen3c train`` (folder or safetensors file).
        verify_checksums: check every file against the checkpoint's ``checksums.json`` first. A
            generator loaded without it checks them when :meth:`~Gen3cGenerator.configure` is
            first given ``verify_checksums=True`` (a batch's or ``gen3c.generate``'s run asking
            for it), without loading the model again.
        text_encoder_dir: where T5 is, when the checkpoint has none (see :func:`load_pipeline`).
        resolution: (H, W) of the frames to make, which ``max_gpu_memory``'s estimate is for
            (default GEN3C's 704×1280, or the largest the model takes where that is smaller:
            the tiny model's 384×640).
        generator_options: prompt, negative_prompt, guidance, num_steps, seed, chunk_frames,
            noise_aug_strength (:class:`Gen3cGenerator`).

    ``checkpoint`` may also name a model shipped in the package (``"tiny"``, ``"tiny_fast"``).
    """
    from gen3c.models.packaged import checkpoint_info
    from gen3c.pipelines.gen3c import Gen3cGenerator, compute_device

    loaded_with = {k: v for k, v in locals().items() if k in (*MODEL_GENERATOR_SETTINGS, "verify_checksums")}  # as given, for configure
    loaded_with["model_source"] = model_source({"checkpoint_dir": str(checkpoint)})  # the model, however it is named

    unknown = sorted(set(generator_options) - set(_SAMPLING_OPTIONS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], [*_SAMPLING_OPTIONS, *inspect.signature(load_generator).parameters], n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"the sampling options are {', '.join(_SAMPLING_OPTIONS)}"
        raise Gen3cInputError(f"load_generator got an unknown option {unknown[0]!r}: {hint}")
    if device is not None and num_gpus == 1:
        device = compute_device(device)  # a mistyped or absent device, before the weights load
    # The memory settings are refused before anything is fetched.
    check_memory_settings(
        memory_mode=memory_mode, fp8=fp8, low_memory=low_memory, max_gpu_memory=max_gpu_memory,
        offload_diffusion_transformer=offload_diffusion_transformer, offload_tokenizer=offload_tokenizer,
        offload_text_encoder_model=offload_text_encoder_model, disable_prompt_encoder=disable_prompt_encoder,
        vae_chunk_frames=vae_chunk_frames, lora=None if lora is None else str(lora),
    )  # fmt: skip
    if max_gpu_memory is not None:  # (a numpy number as the float the generator keeps and its notes print)
        max_gpu_memory = check_gpu_budget(max_gpu_memory)
    if num_gpus != 1:  # the attention kernel must split across GPUs, also refused before any fetch
        check_context_parallel_attention(speed_settings(speed, attention_backend=attention_backend).attention_backend, num_gpus)
    check_speed_device(speed, device, fp8_matmul=fp8_matmul, compile=compile)  # fp8 matmuls on a CPU, before any fetch
    if (low_memory or max_gpu_memory is not None) and not torch.cuda.is_initialized():
        # Streaming blocks through the caching allocator fragments it; growable segments keep the
        # reserved memory near the allocated peak the budget is planned for.
        os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    plan = requested_memory_plan(loaded_with)  # (the run's load-stage memory hint plans from the same options: out_of_memory_error)
    if not is_official_repo(checkpoint):
        # A packaged model's name or a hub id → its local folder, so its gen3c_model.json is read
        # here; T5 from a hub checkpoint is fetched only when a prompt needs it.
        hub_id = is_hub_id(checkpoint)
        if hub_id and verify_checksums:
            refuse_checksums_of_hub(str(checkpoint))
        folder = checkpoint_folder(checkpoint, skip=("text_encoder", "tokenizer"))
        if hub_id and text_encoder_dir is None:
            text_encoder_dir = str(checkpoint)
        checkpoint = folder
    # A model trained by `gen3c train` states its chunk (and, when small, the dtype it runs in);
    # a distilled student its own step count and guidance (0: one forward per step). What the
    # caller passes wins; then the model's own; then the speed preset's and GEN3C's.
    info = checkpoint_info(str(checkpoint)) if Path(str(checkpoint)).expanduser().is_dir() else {}
    if generator_options.get("chunk_frames") is None:  # None: the model's own chunk, else GEN3C's (the generator's default)
        generator_options.pop("chunk_frames", None)
        if "chunk_frames" in info:
            generator_options["chunk_frames"] = int(info["chunk_frames"])
    model_defaults = model_sampling_defaults(info)
    if dtype is None and "dtype" in info:
        dtype = str(info["dtype"])
    speed = speed_name(speed)
    given = dict(sampler=sampler, num_steps=generator_options.pop("num_steps", None), guidance=generator_options.pop("guidance", None),
                 guidance_every=guidance_every, guidance_batch=guidance_batch, step_cache=step_cache,
                 attention_backend=attention_backend, fp8_matmul=fp8_matmul, compile=compile,
                 negative_prompt=generator_options.get("negative_prompt"))  # fmt: skip
    settings, guidance = sampling_settings(speed, model_defaults, given)
    preset_steps = SPEED_PRESETS[speed].num_steps
    if given["num_steps"] is None and "num_steps" in model_defaults and speed != "exact" and settings.num_steps != preset_steps:
        note(
            f"--speed {speed}: this model is a distilled student and samples with its own {settings.num_steps} steps, "
            f"not the preset's {preset_steps} (--num_steps sets them)",
            stacklevel=3,  # (the caller of _in_keywords' wrapper)
        )
    parallel = None
    if num_gpus != 1:
        if device is not None and torch.device(device).index is not None:
            raise Gen3cInputError(
                f"device {str(device)!r} with --num_gpus {num_gpus}: each rank picks cuda:LOCAL_RANK; pass 'cuda', 'cpu' or nothing"
            )
        # Refused before any weight is read (check_generator refused it before the input was read, for the
        # CLI and gen3c.generate; a hub checkpoint's configs are known here, once fetched).
        found = checkpoint_configs(checkpoint)
        if found is not None:
            check_model_split(found, num_gpus, generator_options.get("chunk_frames", configs.CHUNK_FRAMES), checkpoint)
        parallel = init_parallel(num_gpus, None if device is None else torch.device(device).type)
        device = parallel.device
    dtype = default_dtype(dtype, device)
    pipe = load_pipeline(checkpoint, dtype=dtype, verify_checksums=verify_checksums, text_encoder_dir=text_encoder_dir)
    pipe.disable_prompt_encoder = disable_prompt_encoder
    # GEN3C's weights by their hub id load for the prompt cache's prompts: T5 for others, fetched as generate's load does.
    if pipe.official_cache is not None:
        prepare_prompts(pipe, _run_prompts(pipe, generator_options, guidance))
    if guidance is None:  # a hub checkpoint's own guidance is known once it is loaded
        _check_guidance_settings(settings, pipe.sampling_defaults.get("guidance"), True, generator_options.get("negative_prompt"), guidance_every)
    if max_gpu_memory is not None:
        frames = generator_options.get("chunk_frames", configs.CHUNK_FRAMES)
        effective = float(pipe.sampling_defaults.get("guidance", 1.0)) if guidance is None else guidance
        prompts = prompts_of(generator_options.get("prompt", ""), generator_options.get("negative_prompt"), effective)
        size = budget_model_size(pipe.transformer, pipe.vae, frames, resolution, pipe.text_encoder_bytes(prompts))
        label, plan, peak = choose_memory_plan(max_gpu_memory, size, float8=lora is None)
        planned_for = ((size.height, size.width), bool(size.text_encoder_bytes))
        note(
            f"--max_gpu_memory {max_gpu_memory:g}: memory mode '{label}' (estimated peak {format_gb(peak)} for "
            f"{frames} frames at {size.height}x{size.width}{', T5 encoding the prompt first' if size.text_encoder_bytes else ''})",
            stacklevel=3,
        )
    if lora is not None:
        pipe.load_lora(lora)
    on_gpu = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
    offloading = [flag for flag, on in (
        ("--low_memory", low_memory), ("--max_gpu_memory", max_gpu_memory is not None),
        (f"--memory_mode {memory_mode}", memory_mode != "resident" and not low_memory),
        ("--offload_diffusion_transformer", offload_diffusion_transformer), ("--offload_tokenizer", offload_tokenizer),
        ("--offload_text_encoder_model", offload_text_encoder_model),
    ) if on]  # fmt: skip
    if offloading and not on_gpu:  # accepted (a command line made for a GPU runs here too), but said
        note(
            f"{', '.join(offloading)}: the model computes on the CPU, where every component already is in CPU memory, so "
            "nothing is offloaded or streamed; only float8 weights and tokenizer chunks, where the plan has them, still apply",
            stacklevel=3,
        )
    _check_offloaded_weights_fit(pipe, plan, device)
    pipe.max_gpu_memory = max_gpu_memory  # (its memory hints name the budget that chose the plan)
    pipe.configure_memory(plan, device)
    apply_speed_settings(pipe, settings, checkpoint, parallel_device=None if parallel is None else parallel.device, lora=lora is not None)
    generator = Gen3cGenerator(
        pipe, num_steps=settings.num_steps, guidance_every=settings.guidance_every,
        guidance_batch=settings.guidance_batch, **({} if guidance is None else {"guidance": guidance}), **generator_options,
    )  # fmt: skip
    generator.speed, generator.model_defaults, generator.checkpoint = speed, model_defaults, str(checkpoint)
    if max_gpu_memory is not None:
        generator.memory_planned_for = planned_for
    generator.loaded_with = {**loaded_with, "speed": speed, "dtype": configs.dtype_name(dtype), "chunk_frames": generator.chunk_frames}
    return generator


def default_dtype(dtype: torch.dtype | str | None, device: str | torch.device | None) -> torch.dtype | str:
    """``dtype`` as given, or the one a model loads in when none is: bfloat16 (GEN3C's) on a GPU,
    float32 on the CPU, whose tokenizer has no bfloat16 pooling kernel."""
    if dtype is not None:
        return dtype
    on_gpu = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
    return torch.bfloat16 if on_gpu else torch.float32


def budget_model_size(
    transformer: torch.nn.Module, vae: torch.nn.Module, frames: int, resolution: tuple[int, int] | None, text_encoder_bytes: int = 0
) -> ModelSize:
    """What ``max_gpu_memory``'s estimate sizes: one chunk of ``frames`` frames at ``resolution``
    (None: GEN3C's 704×1280, or the largest the model takes where that is smaller: tiny's 384×640)."""
    largest = configs.largest_frame_size(transformer.config, vae.config)
    height, width = resolution or tuple(min(a, b) for a, b in zip(configs.RESOLUTION, largest, strict=True))
    return ModelSize.of(transformer, vae, frames, height, width, text_encoder_bytes)


def check_budget_holds_model(
    found: tuple[dict, dict], options: dict[str, Any], frames: int, resolution: tuple[int, int] | None
) -> None:
    """Refuse a gen3c generator's ``max_gpu_memory`` (in ``options``, checked) too small for even
    the leanest memory plan of the model of configs ``found`` (:func:`model_configs`), as
    :func:`load_generator` would once the model has loaded, but before the input's depth is
    estimated and the weights are fetched or loaded: the model is built on the meta device
    (nothing allocated). T5 is left out: a prompt it must encode is counted at the load."""
    from gen3c.models.packaged import model_info

    info = model_info(options)
    dtype = configs.dtype_name(resolve_dtype(default_dtype(options.get("dtype", info.get("dtype")), options.get("device"))))
    size = _configs_model_size(json.dumps(found, sort_keys=True), dtype, frames, resolution)
    choose_memory_plan(options["max_gpu_memory"], size, float8=options.get("lora") is None)


@functools.lru_cache(maxsize=8)
def _configs_model_size(found: str, dtype: str, frames: int, resolution: tuple[int, int] | None) -> ModelSize:
    """:func:`budget_model_size` of the model of configs ``found`` (JSON of the DiT's and the
    tokenizer's) in ``dtype``, built on the meta device (~1 s for GEN3C-7B: once per model, as a
    run's checks come here more than once)."""
    from diffusers import AutoencoderKLCosmos, CosmosTransformer3DModel

    transformer_config, vae_config = json.loads(found)
    with torch.device("meta"):
        transformer = CosmosTransformer3DModel.from_config(transformer_config)
        vae = AutoencoderKLCosmos.from_config(vae_config)
    for module in (transformer, vae):  # (as loaded: every tensor in the dtype; the estimate reads bytes)
        for tensor in (*module.parameters(), *module.buffers()):
            tensor.data = tensor.data.to(resolve_dtype(dtype))
    return budget_model_size(transformer, vae, frames, resolution)


#: :func:`load_generator` in the command line's words (``--max_gpu_memory``), for
#: :func:`generator_from_options`, whose callers word them for their own surface.
_load_generator = load_generator.__wrapped__


def configure_generator(generator: Gen3cGenerator, options: dict[str, Any], *, refuse_plan_misfit: bool = False) -> None:
    """Give a loaded generator the per-run settings of a request's generator options (its
    ``prompt`` and ``negative_prompt``: :data:`~gen3c.pipelines.request.PER_JOB_GENERATOR_SETTINGS`) and the sampling-only
    ones (:data:`SAMPLING_GENERATOR_SETTINGS`), as :func:`load_generator` gives a freshly loaded
    one: a sweep over prompts, steps, guidance or samplers runs on one loaded model. The settings
    left out fall back to their defaults (the empty prompt, GEN3C's negative prompt), the model's
    own and the generator's ``--speed`` preset's, as at load. GEN3C's own weights loaded for the
    prompt cache's prompts get T5 for a prompt outside it, as a fresh load does (:func:`prepare_prompts`).

    A prompt T5 must encode beside the plan ``max_gpu_memory`` chose for cached prompts needs a new
    load (:meth:`~gen3c.pipelines.gen3c.Gen3cGenerator.memory_plan_misfit`, which
    :class:`~gen3c.pipelines.request.GeneratorPool` asks after this); ``refuse_plan_misfit``, for a
    caller that cannot load again (:meth:`~gen3c.pipelines.gen3c.Gen3cGenerator.configure`): refused,
    nothing changed.

    Raises:
        Gen3cInputError: options :func:`check_generator_options` refuses, a prompt for a generator
            loaded with ``disable_prompt_encoder`` (it would change nothing), or a model setting
            other than the generator was loaded with (weights, memory plan, kernels: a new load),
            or (``refuse_plan_misfit``) prompts the memory plan left T5 out for.
        Gen3cModelError: ``verify_checksums`` for a generator loaded without it, whose checkpoint's
            files differ from its ``checksums.json`` (they are checked now: :func:`_verify_loaded_checkpoint`);
            T5 for GEN3C's weights that cannot be fetched (offline, gated: as a fresh run says).
    """
    from gen3c.pipelines.gen3c import Gen3cGenerator

    if generator.pipeline.disable_prompt_encoder:  # refused as a prompt beside the flag is (check_generator_options)
        check_generator_options({**options, "disable_prompt_encoder": True})
    _check_model_settings_unchanged(generator, options)
    if check_generator_options(options).get("verify_checksums") and not generator.loaded_with.get("verify_checksums"):
        _verify_loaded_checkpoint(generator)
    settings, guidance = _requested_sampling(generator, options)
    defaults = inspect.signature(Gen3cGenerator).parameters
    if guidance is None:
        guidance = defaults["guidance"].default
    requested = check_generator_options(options)
    # GEN3C's weights loaded for prompts in the prompt cache: T5 is fetched for others, as a fresh load fetches it.
    prompts = _run_prompts(generator.pipeline, requested, guidance)
    if refuse_plan_misfit:  # (before prepare_prompts: a refused prompt's T5 is not downloaded)
        _check_plan_holds_prompts(generator, prompts)
    prepare_prompts(generator.pipeline, prompts)
    configure_sampling(generator.pipeline, settings, generator.checkpoint)
    generator.prompt = requested.get("prompt", defaults["prompt"].default)
    generator.negative_prompt = requested.get("negative_prompt", defaults["negative_prompt"].default)
    generator.num_steps, generator.guidance = settings.num_steps, guidance
    generator.guidance_every, generator.guidance_batch = settings.guidance_every, settings.guidance_batch
    generator.noise_aug_strength = requested.get("noise_aug_strength", defaults["noise_aug_strength"].default)


def _check_plan_holds_prompts(generator: Gen3cGenerator, prompts: Sequence[str]) -> None:
    """Refuse ``prompts`` that T5 must encode on the GPU beside the plan ``max_gpu_memory`` chose
    at load for prompts the prompt cache holds (its estimate left T5's bytes out). On the CPU
    nothing is on a GPU: they pass."""
    planned, pipe = generator.memory_planned_for, generator.pipeline
    if planned is None or planned[1] or pipe._execution_device.type == "cpu":
        return
    if not (pipe.text_encoder_bytes(prompts) or _fetches_text_encoder(pipe, prompts)):
        return
    budget = generator.loaded_with.get("max_gpu_memory")
    raise Gen3cInputError(
        f"configure: --max_gpu_memory {budget:g} chose the memory plan for prompts the prompt cache holds, and T5 must encode "
        "this run's on the GPU beside it: load a new generator with them (load_generator(..., prompt=...)), whose plan counts T5"
    )


def _run_prompts(pipe: Gen3cPipeline, requested: dict[str, Any], guidance: float | None) -> tuple[str, ...]:
    """The prompts a run with the checked options ``requested`` and ``guidance`` (None: the
    model's own) encodes on ``pipe`` (:func:`~gen3c.models.weights.prompts_of`; none with the
    prompt encoder disabled)."""
    prompt, negative = requested.get("prompt", ""), requested.get("negative_prompt")
    if pipe.disable_prompt_encoder or not isinstance(prompt, str) or not isinstance(negative, str | None):
        return ()  # (a prompt not a string: refused when encoded)
    effective = float(pipe.sampling_defaults.get("guidance", 1.0)) if guidance is None else guidance
    return prompts_of(prompt, negative, effective)


def _needs_text_encoder(pipe: Gen3cPipeline, prompts: Sequence[str]) -> bool:
    """Whether encoding ``prompts`` loads T5: one is outside the prompt cache and T5 is not loaded."""
    if pipe.text_encoder is not None or pipe.disable_prompt_encoder:
        return False
    return any(pipe.prompt_cache is None or pipe.prompt_cache.lookup(p) is None for p in prompts)


def _has_text_encoder_source(pipe: Gen3cPipeline) -> bool:
    """Whether T5 loads for a prompt that needs it: its source is a T5 folder, a checkpoint
    folder holding one, or a hub id (fetched then)."""
    source = pipe.text_encoder_source
    if source is None:
        return False
    folder = Path(source)
    if not folder.exists():
        return bool(is_hub_id(source))
    return holds_text_encoder(folder)


def _fetches_text_encoder(pipe: Gen3cPipeline, prompts: Sequence[str]) -> bool:
    """Whether :func:`prepare_prompts` fetches T5 for ``prompts``: GEN3C's weights loaded
    without it, and a prompt outside the prompt cache."""
    return pipe.official_cache is not None and not _has_text_encoder_source(pipe) and _needs_text_encoder(pipe, prompts)


def prepare_prompts(pipe: Gen3cPipeline, prompts: Sequence[str]) -> None:
    """Give a pipeline of GEN3C's official weights (:attr:`~Gen3cPipeline.official_cache`) loaded
    without T5 (its load's prompts were all in the prompt cache) the T5 that ``prompts`` outside
    the cache need, as a fresh load would (:func:`~gen3c.models.weights.prepare_weights`: from the
    hub cache, else fetched; offline, refused as a fresh run is). Once: later prompts reuse it."""
    from gen3c.models import weights
    from gen3c.parallel import is_main_process

    if not _fetches_text_encoder(pipe, prompts):
        return
    kwargs = {} if is_main_process() else {"log": None}  # (as _official_weights)
    prepared = weights.prepare_weights(prompts=tuple(prompts), cache_dir=pipe.official_cache, **kwargs)
    if prepared.text_encoder is not None:
        pipe.text_encoder_source = str(prepared.text_encoder)


def configure_in_keywords(generator: Gen3cGenerator, options: dict[str, Any]) -> None:
    """:func:`configure_generator` with its refusals and notes in ``options``' keys (``num_steps=``:
    :func:`~gen3c.pipelines.spelling.keyword_spelling`), for :meth:`Gen3cGenerator.configure`'s
    Python callers; the pool (:class:`~gen3c.pipelines.request.GeneratorPool`) calls
    :func:`configure_generator`, whose command-line words each surface respells."""
    with spelled(keyword_spelling):
        configure_generator(generator, options, refuse_plan_misfit=True)  # (it cannot load again, as the pool does)


def _check_model_settings_unchanged(generator: Gen3cGenerator, options: dict[str, Any]) -> None:
    """Refuse a model setting of ``options`` other than the one ``generator`` was loaded with: it
    would be dropped without effect (:class:`~gen3c.pipelines.request.GeneratorPool` passes full
    option dicts whose model settings match)."""
    checked = check_generator_options(options)
    named = [key for key in MODEL_NAMING_SETTINGS if key in checked]
    if named and model_source(checked) != generator.loaded_with.get("model_source"):
        key = named[0]
        raise Gen3cInputError(
            f"configure: {key} {quoted_path(checked[key])} names another model than {quoted_path(generator.loaded_with.get('model_source'))}, which the "
            f"generator was loaded from, and configure changes only per-run settings: load a new generator with load_generator"
        )
    for key, value in checked.items():
        if key not in MODEL_GENERATOR_SETTINGS or key in MODEL_NAMING_SETTINGS:  # (an unset one, None, is not here: the default, as at load)
            continue
        loaded = generator.loaded_with.get(key)
        if _model_setting(key, value) != _model_setting(key, loaded):
            raise Gen3cInputError(
                f"configure: {key} {value!r} differs from the {loaded!r} the generator was loaded with, and configure changes only "
                f"per-run settings ({', '.join((*PER_JOB_GENERATOR_SETTINGS, *SAMPLING_GENERATOR_SETTINGS))}): load a new generator with load_generator(..., {key}={value!r})"
            )


def _verify_loaded_checkpoint(generator: Gen3cGenerator) -> None:
    """``verify_checksums`` asked of a generator loaded without it: its checkpoint's files are
    checked now, as a load checks them, and once (a new load would read every byte to check the
    same files, then load them again)."""
    from gen3c.models.verify import verify_checksums

    source = generator.loaded_with.get("model_source", generator.pipeline.name_or_path)
    if is_hub_id(source):
        refuse_checksums_of_hub(source)
    verify_checksums(generator.pipeline.name_or_path)
    generator.loaded_with = {**generator.loaded_with, "verify_checksums": True}


def _model_setting(key: str, value: Any) -> Any:
    """``value`` of model setting ``key`` as loading reads it (dtype and speed names, a LoRA
    adapter's resolved path: ``./a``, ``a/`` and ``~/a`` are one adapter)."""
    if key == "dtype" and value is not None:
        return configs.dtype_name(value)
    if key == "speed":
        return speed_name(value)
    if key == "lora" and value:
        with contextlib.suppress(OSError, RuntimeError):
            return str(Path(os.fspath(value)).expanduser().resolve())
    return value


def _requested_sampling(generator: Gen3cGenerator, options: dict[str, Any]) -> tuple[SpeedPreset, float | None]:
    """:func:`sampling_settings` of a request's sampling-only options (:data:`SAMPLING_GENERATOR_SETTINGS`,
    checked by :func:`check_generator_options`) on a loaded ``generator``: its ``--speed`` and its model's own defaults
    (``negative_prompt`` too: refused for a run without guidance, as at load)."""
    opts = {key: value for key, value in check_generator_options(options).items() if key in (*SAMPLING_GENERATOR_SETTINGS, "negative_prompt")}
    return sampling_settings(speed_name(generator.speed), generator.model_defaults, opts)


def _check_offloaded_weights_fit(pipe: Gen3cPipeline, plan: MemoryPlan, device: str | torch.device | None) -> None:
    """Refuse an offloading plan whose components cannot be held in this machine's CPU memory
    (:func:`gen3c.models.memory.check_host_memory`), before they are pinned or copied there."""
    on_gpu = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
    if not on_gpu or not plan.offload:
        return

    held = {name: module for name in sorted(plan.offload) if (module := getattr(pipe, name, None)) is not None}
    need = sum(float8_bytes(module)[0] if name == "transformer" and plan.fp8 else module_bytes(module) for name, module in held.items())
    fix = (
        "free CPU memory or add swap (this mode already stores the DiT in float8)"
        if plan.fp8
        else "store the DiT in float8 to halve it (--low_memory), or free CPU memory or add swap"
    )
    check_host_memory(need, f"keeping {', '.join(held)} in CPU memory between stages", fix)


#: :func:`load_generator`'s options for :class:`Gen3cGenerator` (its sampling settings).
_SAMPLING_OPTIONS = ("prompt", "negative_prompt", "guidance", "num_steps", "seed", "chunk_frames", "noise_aug_strength")


def apply_speed_settings(
    pipe: Gen3cPipeline,
    settings: SpeedPreset,
    checkpoint: str | os.PathLike | None = None,
    *,
    parallel_device: torch.device | None = None,
    lora: bool = False,
) -> None:
    """Give a pipeline placed by :meth:`Gen3cPipeline.configure_memory` the DiT kernels and the
    sampler of ``settings``: attention kernel, context parallelism (``parallel_device``: the
    tokens split across the ranks of a torchrun launch), fp8 matmuls, regional compile, then
    :func:`configure_sampling`.

    ``settings.compile`` / ``settings.fp8_matmul`` None mean "where it pays": compile when the DiT
    is resident on one CUDA GPU; fp8 matmuls when it also computes in bf16 on a GPU with fp8
    tensor cores and carries no LoRA.
    """
    from gen3c.models.speed import compile_blocks, fp8_supported, set_attention_backend, use_fp8_matmuls

    plan, device = pipe.memory, pipe._execution_device
    resident_on_gpu = (
        device.type == "cuda" and parallel_device is None
        and "transformer" not in plan.offload and not (plan.group_offload or plan.fp8)
    )  # fmt: skip
    compile = resident_on_gpu if settings.compile is None else settings.compile
    fp8_matmul = settings.fp8_matmul
    if fp8_matmul is None:
        fp8_matmul = resident_on_gpu and pipe.transformer_dtype == torch.bfloat16 and fp8_supported(device) and not lora
    backend = settings.attention_backend
    if parallel_device is not None:
        backend = context_parallel_attention(backend, pipe.transformer, device)
    set_attention_backend(pipe.transformer, backend, device)
    if parallel_device is not None:
        enable_context_parallel(pipe.transformer, parallel_device)
    if fp8_matmul:
        if "transformer" in plan.offload or plan.fp8:  # (an offloaded tokenizer or T5 leaves the DiT resident)
            raise Gen3cInputError("--fp8_matmul needs the DiT resident in GPU memory in bf16: drop --fp8 and the DiT offloading")
        use_fp8_matmuls(pipe.transformer)
    if compile:
        compile_blocks(pipe.transformer)  # lazily: configure_sampling lets a step cache break the graphs
    configure_sampling(pipe, settings, checkpoint)


def configure_sampling(pipe: Gen3cPipeline, settings: SpeedPreset, checkpoint: str | os.PathLike | None = None) -> None:
    """Give ``pipe`` the sampler and step cache of ``settings``; MagCache's ratios are looked up
    for (and measured into the store of) ``checkpoint``. A step cache on blocks compiled as one
    graph each recompiles them to allow its graph breaks (:func:`gen3c.models.speed.allow_graph_breaks`)."""
    from gen3c.models.speed import allow_graph_breaks

    if sampler_name(pipe.scheduler) != settings.sampler:
        pipe.register_modules(scheduler=make_scheduler(settings.sampler, dict(pipe.scheduler.config)))
    if pipe.step_cache is not None:
        pipe.step_cache.remove()
        pipe.step_cache = None
    spec = StepCacheSpec.parse(settings.step_cache)
    if spec is not None:
        allow_graph_breaks(pipe.transformer)  # the cache's skip decisions run in Python
        store = MagRatioStore(checkpoint) if spec.kind == "magcache" and checkpoint is not None else None
        pipe.step_cache = StepCache(spec, ratio_store=store)


def generator_from_options(
    options: dict[str, Any], seed: int = 1, resolution: tuple[int, int] | None = None, progress: ProgressFactory | None = None
) -> Gen3cGenerator:
    """A :class:`Gen3cGenerator` from a request's ``generator_options`` (checked first by
    :func:`check_generator_options`, before GEN3C's weights may be fetched); ``resolution``: the
    request's (H, W), for ``max_gpu_memory``'s estimate. ``progress``: the loading (after any
    fetching, which prints its own progress) as a stage of one step, "Loading gen3c model"
    (tens of seconds for GEN3C-7B)."""
    opts = check_generator_options(options)
    checkpoint = opts.pop("checkpoint_dir", None)
    model = opts.pop("model", None)
    cache_dir = opts.pop("cache_dir", None)
    if model is not None:
        from gen3c.models.packaged import packaged_model_dir

        checkpoint = str(packaged_model_dir(model))
    official = not checkpoint or is_official_repo(checkpoint)
    if official:  # GEN3C's hub id: its converted copy, kept in cache_dir
        checkpoint, opts["text_encoder_dir"] = _official_weights(opts, cache_dir)
    sampling = {
        k: opts.pop(k)
        for k in ("prompt", "negative_prompt", "guidance", "num_steps", "chunk_frames")
        if k in opts
    }
    loaded = progress("Loading gen3c model", 1) if progress is not None else None
    generator = _load_generator(checkpoint, seed=seed, resolution=resolution, **sampling, **opts)
    if official:  # (its T5 was fetched for this load's prompts only: prepare_prompts fetches it for a later run's)
        generator.pipeline.official_cache = str(Path(checkpoint).parent)
    if loaded is not None:
        loaded(1)
    return generator


def _official_weights(opts: dict[str, Any], cache_dir: str | None) -> tuple[str, str | None]:
    """GEN3C's official weights for a run with these options: (checkpoint, T5 folder or None)."""
    from gen3c.models import weights
    from gen3c.parallel import is_main_process

    prompts = () if opts.get("disable_prompt_encoder") else weights.prompts_of(
        opts.get("prompt", ""), opts.get("negative_prompt"), opts.get("guidance", 1.0)
    )  # fmt: skip
    # Under torchrun every rank asks; the lock lets one prepare while the others wait, then reuse.
    kwargs = {} if is_main_process() else {"log": None}
    prepared = weights.prepare_weights(prompts=prompts, cache_dir=cache_dir, **kwargs)
    return str(prepared.checkpoint), None if prepared.text_encoder is None else str(prepared.text_encoder)
