"""The gen3c generator's options and their checks, without torch.

A request's ``generator_options`` (the CLI's gen3c flags) are checked here before any model is
loaded or fetched (:func:`check_generator_options`, :func:`check_generator`), and resolved into
the speed settings and guidance a generator samples with (:func:`sampling_settings`). Like
:mod:`gen3c.pipelines.settings`, this module imports no torch (the values the model's settings
take are :mod:`gen3c.models.choices`'), so ``gen3c generate`` refuses a mistyped gen3c option in
a fraction of a second; :mod:`gen3c.pipelines.loading`, which loads the model, and
:mod:`gen3c.pipelines.request` import these names back.
"""

from __future__ import annotations

import difflib
import inspect
import json
import math
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from gen3c.errors import Gen3cInputError, describe_value, note, quoted_path
from gen3c.models import configs
from gen3c.models.choices import (
    FP8_MATMULS_WITH_LORA,
    MEMORY_MODES,
    check_context_parallel_attention,
    check_gpu_budget,
    check_token_split,
    check_vae_chunk_frames,
)
from gen3c.models.weights import OFFICIAL_REPO, holds_text_encoder, is_official_repo
from gen3c.pipelines.presets import SpeedPreset, speed_settings
from gen3c.pipelines.settings import (
    GENERATORS,
    GenerationRequest,
    _coerce,
    fixed_chunk_frames,
    official_chunk_frames,
)


def check_generator(request: GenerationRequest, given: Collection[str] = ()) -> dict[str, Any]:
    """Refuse a generator, gen3c generator options, a working resolution its model cannot take, a
    ``chunk_frames`` other than its model's or a ``num_gpus`` its DiT cannot split across, before
    the input is read and anything is loaded (:func:`check_generator_options`, :func:`model_configs`, :func:`check_model_split`).
    ``gen3c generate``, the GUI, ``gen3c.generate`` and batch manifests (as they are read) check here.
    ``given``: the options the user typed, refused where they would change nothing also at their
    default value (:func:`check_memory_settings`).

    Returns:
        The gen3c generator's options as :func:`check_generator_options`
        returns them (coerced, the unset ones left out); {} for another generator.
    """
    if request.generator not in GENERATORS:
        raise Gen3cInputError(f"--generator {str(request.generator)[:40]!r} is unknown: choose one of {', '.join(GENERATORS)}")
    check_gen3c_only(request)
    checked: dict[str, Any] = {}
    if request.generator == "gen3c":
        from gen3c.dependencies import DIFFUSION_MODULES, check_installed, require

        check_installed(DIFFUSION_MODULES, "the gen3c generator", extra="diffusion")  # nothing imported: milliseconds
        checked = check_generator_options(request.generator_options, given)
        found = model_configs(request.generator_options)
        if found is not None:
            from gen3c.models.weights import WEIGHTS_HELP

            named = request.generator_options.get("model") or request.generator_options.get("checkpoint_dir")
            configs.check_model_channels(found[0], "GEN3C's model" if named is None else f"checkpoint {quoted_path(named)}", WEIGHTS_HELP)
        check_resolution(request.resolution, found)
        if request.chunk_frames is not None:
            from gen3c.models.packaged import model_chunk_frames

            options = request.generator_options
            own = model_chunk_frames(options) or official_chunk_frames(options.get("cache_dir"))
            if request.chunk_frames != own:  # what resolve_chunk_frames says once the model has loaded
                raise Gen3cInputError(f"--chunk_frames {request.chunk_frames}: the gen3c generator makes {own} frames per chunk; leave it out")
        num_gpus = checked.get("num_gpus", 1)
        if found is not None and num_gpus != 1:  # what load_generator says once the input is read (a depth estimate: minutes)
            options = request.generator_options
            check_model_split(found, num_gpus, fixed_chunk_frames(request), options.get("model") or options.get("checkpoint_dir"))
        refuse_prompts_without_text_encoder(request.generator_options)
        # The settings are refused above without diffusers (seconds to import); what loading the
        # model imports is checked here, still before the input is read (a broken transformers, say).
        require("gen3c.pipelines.gen3c", "the gen3c generator", extra="diffusion")
        if found is not None and checked.get("max_gpu_memory") is not None:  # (else refused once the weights have loaded)
            from gen3c.pipelines.loading import check_budget_holds_model

            check_budget_holds_model(found, checked, fixed_chunk_frames(request), check_resolution(request.resolution, found))
    return checked


def refuse_prompts_without_text_encoder(options: dict[str, Any]) -> None:
    """Refuse a prompt (or negative prompt, where guidance encodes it) outside the prompt cache of a
    local model without T5 (a packaged model, a checkpoint of ``gen3c train`` from one), before the
    input is read: it was refused only as the model sampled, after the depth estimate, the load and
    the cache's renders. GEN3C's weights and hub checkpoints fetch T5 when a prompt needs it."""
    from gen3c.models.packaged import model_info, packaged_model_dir
    from gen3c.models.weights import prompts_of

    if options.get("disable_prompt_encoder"):
        return
    if options.get("model"):
        folder, named = packaged_model_dir(str(options["model"])), "--model"
    elif options.get("checkpoint_dir") and not is_official_repo(options["checkpoint_dir"]):
        try:
            folder = Path(str(options["checkpoint_dir"])).expanduser()
            if not (folder / "model_index.json").is_file():
                return  # (a hub id, or a folder loading refuses with its reason)
        except (OSError, RuntimeError):  # (RuntimeError: an unknown ~user, refused where the path is read)
            return
        named = "--checkpoint_dir"
    else:
        return
    if holds_text_encoder(folder):
        return
    info = model_info(options)
    guidance = options.get("guidance")
    guidance = float(info.get("guidance", 1.0)) if guidance is None else float(guidance)
    try:
        cached = json.loads((folder / "prompt_cache" / "config.json").read_text()).get("prompts", [])
    except (OSError, ValueError, AttributeError):
        cached = []
    for prompt in prompts_of(options.get("prompt") or "", options.get("negative_prompt"), guidance):
        if prompt not in cached:
            which = "prompt" if prompt == (options.get("prompt") or "") else "negative_prompt"
            keep = "leave out --prompt" if which == "prompt" else "leave out --negative_prompt (GEN3C's default negative prompt is cached)"
            raise Gen3cInputError(
                f"--{which} {prompt[:40]!r}: {named} {quoted_path(options.get('model') or options['checkpoint_dir'])} has no T5 text encoder, "
                f"so it encodes only the prompts its prompt cache holds (the empty prompt, GEN3C's default negative prompt): "
                f"{keep}, or run a model with T5 (GEN3C's own: leave out {named})"
            )


def check_resolution(resolution: str, found: tuple[dict, dict] | None) -> tuple[int, int]:
    """The gen3c generator's working ``resolution`` ("HxW") as (H, W), refused with the sizes the
    model of configs ``found`` (:func:`model_configs`) takes where they are known (GEN3C's:
    multiples of 16), else as any generator's (multiples of 8; the model checks it once loaded)."""
    from gen3c.io.resolution import parse_resolution

    if found is None:
        return parse_resolution(resolution)
    return parse_resolution(resolution, lambda h, w: configs.check_model_frame_size(*found, h, w))


def check_gen3c_only(request: GenerationRequest) -> None:
    """Refuse gen3c generator options (set, not None) in a request for another generator, which
    reads none of them: the Python API's :func:`~gen3c.pipelines.request.run_request`, and the GUI's
    requests, come here (through :func:`check_generator`, or directly where a generator is given)."""
    if request.generator != "gen3c" and isinstance(request.generator_options, dict):
        refuse_gen3c_only([str(key) for key, value in request.generator_options.items() if value is not None], 'generator="gen3c"')


def refuse_unknown_options(names: Any) -> None:
    """Refuse the names among ``names`` that are no gen3c generator option, the first one's
    nearest option named (a typo) or else the list of them."""
    unknown = [key for key in names if key not in GENERATOR_OPTIONS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), GENERATOR_OPTIONS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"use {', '.join(GENERATOR_OPTIONS)}"
        raise Gen3cInputError(f"unknown gen3c generator options {', '.join(repr(k)[:40] for k in unknown[:3])}: {hint}")


def refuse_gen3c_only(names: list[str], switch: str) -> None:
    """The one refusal of gen3c generator options given while another generator runs (it would
    change nothing): ``names`` as the caller spells them (``--lora`` on the command line, ``lora``
    in Python), ``switch`` what chooses the gen3c generator there ("--generator gen3c")."""
    if names:
        verb, them = ("applies", "it") if len(names) == 1 else ("apply", "them")
        raise Gen3cInputError(f"{', '.join(names)} {verb} to {switch} only; drop {them} or pass {switch}")


#: Settings of the gen3c generator in a request's ``generator_options`` (CLI flag names) and their types.
GENERATOR_OPTIONS: dict[str, type] = {
    "checkpoint_dir": str,
    "model": str,
    "cache_dir": str,
    "lora": str,
    "prompt": str,
    "negative_prompt": str,
    "guidance": float,
    "num_steps": int,
    "offload_diffusion_transformer": bool,
    "offload_tokenizer": bool,
    "offload_text_encoder_model": bool,
    "memory_mode": str,
    "fp8": bool,
    "vae_chunk_frames": int,
    "low_memory": bool,
    "max_gpu_memory": float,
    "disable_prompt_encoder": bool,
    "speed": str,
    "sampler": str,
    "guidance_every": int,
    "guidance_batch": bool,
    "noise_aug_strength": float,
    "step_cache": str,
    "compile": bool,
    "attention_backend": str,
    "fp8_matmul": bool,
    "device": str,
    "dtype": str,
    "chunk_frames": int,
    "num_gpus": int,
    "verify_checksums": bool,
    # GEN3C flags for parts this library does not have (no prompt upsampler, no guardrails):
    # accepted so GEN3C command lines carry over, without effect.
    "offload_prompt_upsampler": bool,
    "offload_guardrail_models": bool,
    "disable_guardrail": bool,
    "disable_prompt_upsampler": bool,
}
NO_EFFECT_OPTIONS = (
    "offload_prompt_upsampler",
    "offload_guardrail_models",
    "disable_guardrail",
    "disable_prompt_upsampler",
)


#: The options that name a file or folder, and what to pass (an empty one is refused).
_PATH_OPTIONS = {
    "checkpoint_dir": f"a checkpoint folder or hub id ({OFFICIAL_REPO} runs GEN3C's weights, as no --checkpoint_dir does)",
    "lora": "a LoRA adapter written by gen3c train (its lora/ folder or safetensors file)",
    "cache_dir": "a folder for gen3c's converted GEN3C weights (default $GEN3C_CACHE_DIR, else ~/.cache/gen3c)",
}


def check_generator_options(options: dict[str, Any], given: Collection[str] = ()) -> dict[str, Any]:
    """A request's ``generator_options`` (see :data:`GENERATOR_OPTIONS`) checked without loading or
    fetching anything: names and types, the memory settings (:func:`check_memory_settings`), the
    speed settings (and their fit with ``num_gpus``, and with the packaged or local model's own
    guidance), at most one model named, a LoRA file that exists; a setting that would change
    nothing is refused (a prompt under ``disable_prompt_encoder``, the empty one too where
    ``given`` names it, a negative prompt without guidance), GEN3C's flags for parts gen3c does
    not have are named in a note. The one checker of them: the CLI, the Python API and batch
    manifests (when a manifest is read) all come here.

    Returns:
        The options without the unset (None) ones and GEN3C's flags that have no effect here,
        each coerced as the request's own settings are (``GenerationRequest.from_dict``: a whole
        number for a float option becomes a float, numpy numbers become Python's).
    Raises:
        Gen3cInputError: the first mistake, in one line.
    """
    from gen3c.models.packaged import checkpoint_info, packaged_model_info

    if not isinstance(options, dict):
        raise Gen3cInputError(f"generator_options must be an object of gen3c generator options, got {describe_value(options)}")
    refuse_unknown_options(options)
    opts = {key: _coerce(key, value, f"{GENERATOR_OPTIONS[key].__name__} | None", "gen3c generator") for key, value in options.items()}
    accepted = [f"--{key}" for key in NO_EFFECT_OPTIONS if opts.get(key)]
    if accepted:  # said once per process (the same line each time), not once per check
        note(f"{', '.join(accepted)}: accepted for GEN3C command lines; gen3c has no prompt upsampler and no guardrail models, so nothing changes")
    opts = {key: value for key, value in opts.items() if value is not None and key not in NO_EFFECT_OPTIONS}
    for key, what in _PATH_OPTIONS.items():  # "" would run as if unset (GEN3C's weights, no LoRA): a setting doing nothing
        if key in opts and not opts[key].strip():
            raise Gen3cInputError(f"--{key} is empty: pass {what}, or leave it out")
    if "dtype" in opts and configs.dtype_name(opts["dtype"]) is None:  # not only once the model loads (resolve_dtype)
        raise Gen3cInputError(f"--dtype {opts['dtype'][:40]!r} is unknown: pass {configs.DTYPES_HELP}")
    if not math.isfinite(opts.get("guidance", 1.0)):
        raise Gen3cInputError(f"--guidance {opts['guidance']} is impossible: pass a finite number (GEN3C: 1; 0 runs one pass per step)")
    strength = opts.get("noise_aug_strength", 0.0)
    if not (math.isfinite(strength) and strength >= 0):
        raise Gen3cInputError(f"--noise_aug_strength {strength} is impossible: pass a finite number ≥ 0 (GEN3C: 0, no noise)")
    if opts.get("num_gpus", 1) < 1:  # (as parallel.check_launch words it at run time: a manifest's row is refused when read)
        raise Gen3cInputError(f"--num_gpus must be a whole number of at least 1, got {opts['num_gpus']!r}")
    check_memory_settings(**{key: opts[key] for key in inspect.signature(check_memory_settings).parameters if key in opts}, given=given)
    if opts.get("disable_prompt_encoder"):
        # (an empty prompt is GEN3C's default: refused where it was given, as a typed no-op)
        prompt = bool(opts.get("prompt")) or ("prompt" in given and opts.get("prompt") is not None)
        texts = [flag for flag, on in (("--prompt", prompt), ("--negative_prompt", opts.get("negative_prompt") is not None)) if on]
        if texts:
            raise Gen3cInputError(
                f"{' and '.join(texts)} would change nothing: --disable_prompt_encoder gives zero text embeddings for every text; "
                f"drop {'it' if len(texts) == 1 else 'them'} or --disable_prompt_encoder"
            )
    model, checkpoint = opts.get("model"), opts.get("checkpoint_dir")
    if model is not None and checkpoint:
        raise Gen3cInputError(f"--model {model} and --checkpoint_dir both name a model: pass one of them")
    # A packaged model's or a local checkpoint's own sampling settings (a distilled student's
    # guidance 0) are known now; a hub checkpoint's once it loads (load_generator checks them then).
    info = packaged_model_info(model) if model is not None else checkpoint_info(checkpoint)
    settings, _ = sampling_settings(opts.get("speed"), model_sampling_defaults(info), opts)
    if opts.get("num_gpus", 1) != 1:
        check_context_parallel_attention(settings.attention_backend, opts["num_gpus"])
    if opts.get("cache_dir") is not None and ((checkpoint and not is_official_repo(checkpoint)) or model is not None):
        raise Gen3cInputError(
            f"--cache_dir is where GEN3C's own weights are kept: it applies without --checkpoint_dir and --model, or with --checkpoint_dir {OFFICIAL_REPO}"
        )
    if opts.get("lora") and settings.fp8_matmul:  # (the presets' "where it pays" leaves a LoRA'd DiT in bf16)
        raise Gen3cInputError(FP8_MATMULS_WITH_LORA)
    if opts.get("lora"):
        from gen3c.training.lora import lora_weights_file

        lora_weights_file(opts["lora"])  # a LoRA that is not there, before the model loads
    return opts


def check_speed_device(speed: str | None, device: Any = None, *, fp8_matmul: bool | None = None, compile: bool | None = None) -> None:
    """Refuse speed settings that the machine about to run them cannot run, before anything
    heavy is read, fetched or loaded: fp8 matmuls or a compile asked for (by their flags or the
    ``speed`` preset) where no CUDA GPU would compute (:func:`gen3c.models.speed.check_kernels_device`;
    ``device`` None: CUDA when available). Not part of :func:`check_generator`: a batch manifest is
    checked where it is read, which need not be where its jobs run (a Ray head node). Imports torch."""
    settings = speed_settings(speed, fp8_matmul=fp8_matmul, compile=compile)
    if settings.fp8_matmul or settings.compile:  # (None: "where it pays", never on a CPU)
        from gen3c.models.speed import check_kernels_device

        check_kernels_device(device, fp8_matmul=bool(settings.fp8_matmul), compile=bool(settings.compile))


def check_memory_settings(
    *,
    memory_mode: str = "resident",
    fp8: bool = False,
    low_memory: bool = False,
    max_gpu_memory: float | None = None,
    offload_diffusion_transformer: bool = False,
    offload_tokenizer: bool = False,
    offload_text_encoder_model: bool = False,
    disable_prompt_encoder: bool = False,
    vae_chunk_frames: int | None = None,
    lora: str | None = None,
    given: Collection[str] = (),
) -> None:
    """Refuse memory settings (:func:`~gen3c.pipelines.loading.load_generator`'s) that contradict
    each other or would change nothing: two that each choose the memory mode; GEN3C's offload flags where the mode already
    keeps every model in CPU memory outside its stage (``model_offload``, ``group_offload``,
    ``low_memory``) or where ``max_gpu_memory`` chooses the plan (the tokenizer's chunks too,
    ``vae_chunk_frames``); T5's where T5 never loads
    (``disable_prompt_encoder``, only a note: GEN3C's README passes both); float8 weights
    (``fp8``, ``low_memory``) under a ``lora``, which adapts bf16/fp32 weights. ``given``: the
    settings the user typed; ``memory_mode`` among them chooses the mode even as "resident"."""
    if memory_mode not in MEMORY_MODES:
        raise Gen3cInputError(f"--memory_mode {str(memory_mode)[:40]!r} is unknown: pick one of {', '.join(MEMORY_MODES)}")
    if max_gpu_memory is not None:  # not only once the model has loaded (choose_memory_plan)
        check_gpu_budget(max_gpu_memory)
    chosen = [name for name, on in (("--low_memory", low_memory), ("--max_gpu_memory", max_gpu_memory is not None),
                                    ("--memory_mode", memory_mode != "resident" or "memory_mode" in given), ("--fp8", fp8)) if on]  # fmt: skip
    if len(chosen) > 1 and ("--low_memory" in chosen or "--max_gpu_memory" in chosen):
        raise Gen3cInputError(f"{' and '.join(chosen)} each choose the memory mode: pass only one of them")
    offloads = [f"--{name}" for name, on in (("offload_diffusion_transformer", offload_diffusion_transformer),
                                             ("offload_tokenizer", offload_tokenizer),
                                             ("offload_text_encoder_model", offload_text_encoder_model)) if on]  # fmt: skip
    if offloads and (max_gpu_memory is not None or low_memory or memory_mode != "resident"):
        if max_gpu_memory is not None:
            why = "--max_gpu_memory chooses what stays in CPU memory"
        else:
            why = f"{'--low_memory' if low_memory else f'--memory_mode {memory_mode}'} already keeps every model in CPU memory outside its stage"
        raise Gen3cInputError(f"{' and '.join(offloads)} would change nothing: {why}; drop {'it' if len(offloads) == 1 else 'them'}")
    check_vae_chunk_frames(vae_chunk_frames)  # (a batch manifest's, when it is read)
    if vae_chunk_frames is not None and max_gpu_memory is not None:  # the chosen plan's chunks replace it
        raise Gen3cInputError(
            f"--vae_chunk_frames {vae_chunk_frames} would change nothing: --max_gpu_memory chooses the tokenizer's chunks; drop one of them"
        )
    if lora and (fp8 or low_memory):  # (--max_gpu_memory leaves the float8 plans out for a LoRA)
        flag, fix = ("--fp8", "drop --fp8") if fp8 else ("--low_memory", "use --memory_mode group_offload, the leanest mode without float8")
        raise Gen3cInputError(f"--lora needs the DiT's weights in bf16/fp32, but {flag} stores them in float8: {fix}")
    if offload_text_encoder_model and disable_prompt_encoder:
        # GEN3C's README passes both (its flags for GPUs with limited memory): said, not refused.
        note("--offload_text_encoder_model: accepted for GEN3C command lines; T5 never loads with --disable_prompt_encoder, so nothing changes")


#: :func:`~gen3c.pipelines.loading.load_generator`'s options that override a speed preset's settings.
_SPEED_OPTIONS = ("sampler", "num_steps", "guidance_every", "guidance_batch", "step_cache", "attention_backend", "fp8_matmul", "compile")


def model_sampling_defaults(info: dict[str, Any]) -> dict[str, Any]:
    """A model's own sampling settings from its ``gen3c_model.json`` (``info``): a distilled
    student's ``num_steps`` and ``guidance``."""
    return {key: kind(info[key]) for key, kind in (("num_steps", int), ("guidance", float)) if key in info}


def sampling_settings(speed: str, model_defaults: dict[str, Any], options: dict[str, Any]) -> tuple[SpeedPreset, float | None]:
    """The speed settings and the guidance a generator samples with: each of ``options``' (a
    request's generator options; None or absent: unset) first, then the model's own
    (``model_defaults``: its ``gen3c_model.json``'s ``num_steps`` and ``guidance``, a distilled
    student's), then the ``speed`` preset's. The one resolution of them, at load
    (:func:`~gen3c.pipelines.loading.load_generator`) and per run
    (:func:`~gen3c.pipelines.loading.configure_generator`).

    Raises:
        Gen3cInputError: settings of guidance's two branches (``options``' ``negative_prompt`` too)
            for a run without guidance.
    """
    given = {key: options.get(key) for key in _SPEED_OPTIONS}
    if given["num_steps"] is None:
        given["num_steps"] = model_defaults.get("num_steps")
    guidance = options.get("guidance")
    models_own = guidance is None and "guidance" in model_defaults
    if models_own:
        guidance = model_defaults["guidance"]
    settings = speed_settings(speed, **given)
    _check_guidance_settings(settings, guidance, models_own, options.get("negative_prompt"), options.get("guidance_every"))
    return settings, guidance


def _check_guidance_settings(
    settings: SpeedPreset, guidance: float | None, models_own: bool, negative_prompt: str | None = None, guidance_every: int | None = None
) -> None:
    """Refuse settings of guidance's two branches (how they run, the unconditional branch's
    ``negative_prompt``) for a run without guidance (``guidance`` 0: one branch; ``models_own``:
    the 0 is the model's default, as a distilled student's). ``guidance_every``: the option as
    given (None: unset), refused even at 1, the preset's value."""
    if guidance is None or guidance != 0:
        return
    every = settings.guidance_every != 1 or guidance_every is not None
    given = [flag for flag, on in (("--guidance_every", every), ("--guidance_batch", settings.guidance_batch),
                                   ("--negative_prompt", negative_prompt is not None)) if on]  # fmt: skip
    if given:
        why = "this model samples without guidance (a distilled student)" if models_own else "--guidance 0 runs without guidance"
        raise Gen3cInputError(
            f"{' and '.join(given)} {'shapes' if len(given) == 1 else 'shape'} guidance's two branches, but {why}, "
            f"one branch per step: drop {'it' if len(given) == 1 else 'them'}"
        )


def check_model_split(configs: tuple[dict, dict], num_gpus: int, chunk_frames: int, checkpoint: str | os.PathLike | None = None) -> None:
    """Refuse a ``--num_gpus`` the model's DiT cannot split its tokens across
    (:func:`~gen3c.models.context_parallel.check_token_split`: its heads and the latent frames of
    its ``chunk_frames``-frame chunk must divide by N), from its configs (:func:`model_configs`,
    :func:`checkpoint_configs`), so before any weight is read or fetched. ``checkpoint``: the
    packaged model's name or folder, or a checkpoint folder, that the message names (None:
    GEN3C's own weights). :meth:`Gen3cPipeline.check_inputs` checks again on the real inputs."""
    from gen3c.models.packaged import packaged_model_name

    if num_gpus == 1:
        return
    dit, vae = configs
    latent = (chunk_frames - 1) // vae.get("temporal_compression_ratio", 8) + 1
    packaged = None if checkpoint is None else packaged_model_name(checkpoint)
    if packaged is not None:  # its chunk is fixed by its gen3c_model.json, so no other --chunk_frames helps
        label = f"the shipped {packaged} model"
    else:
        label = "GEN3C's model" if checkpoint is None else f"checkpoint {quoted_path(checkpoint)}"
    check_token_split(dit.get("num_attention_heads", 32), num_gpus, latent, f"{label} (its {chunk_frames}-frame chunks have {latent} latent frames)")


def checkpoint_configs(folder: str | os.PathLike) -> tuple[dict, dict] | None:
    """The DiT's and the tokenizer's ``config.json`` of a checkpoint folder, read without its
    weights; None when one is missing or unreadable (loading says what is wrong)."""
    try:
        return tuple(json.loads((Path(folder).expanduser() / name / "config.json").read_text()) for name in ("transformer", "vae"))
    except (OSError, ValueError):
        return None


def model_configs(options: dict[str, Any]) -> tuple[dict, dict] | None:
    """The DiT's and the tokenizer's configs of the model a request's ``generator_options`` name,
    read without loading it: a packaged model's or a local checkpoint's ``config.json`` files, or
    GEN3C's official weights' (their converted copy's where the cache holds one), named by no
    checkpoint or by their hub id (:data:`~gen3c.pipelines.gen3c.OFFICIAL_REPO`, which loading
    runs as them too). None for another hub id (not fetched yet) or an incomplete folder
    (loading says what is wrong)."""
    from gen3c.models import weights
    from gen3c.models.packaged import packaged_model_dir

    if options.get("model"):
        folder = packaged_model_dir(options["model"])
    elif options.get("checkpoint_dir") and not is_official_repo(options["checkpoint_dir"]):
        folder = Path(str(options["checkpoint_dir"])).expanduser()
    else:
        folder = weights.converted_official(options.get("cache_dir"))
        if folder is None:
            return dict(weights.OFFICIAL.transformer_config), dict(weights.OFFICIAL.vae_config)
    return checkpoint_configs(folder)
