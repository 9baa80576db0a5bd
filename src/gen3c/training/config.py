"""The training configuration: dataclasses with a default for every field, read from TOML.

``gen3c train CONFIG.toml`` reads a file whose sections and keys are the fields below; a key
left out keeps its default. The commented example of every field is
``gen3c/training/configs/default.toml`` (shipped in the package); the from-scratch proof run is
``configs/small_procedural.toml``. Unknown sections or keys and values of the wrong type are
refused with one line naming them. Relative folders in a config file (``data.paths``,
``model.checkpoint``, ``model.tokenizer``, ``tokenizer.init``) are relative to the file's folder
(:func:`resolve_paths`); in a shipped config named by name, to the working directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from gen3c.errors import Gen3cInputError, describe_value, is_whole_number, quoted_path
from gen3c.io.paths import exists, refuse_special_file
from gen3c.io.text import user_text
from gen3c.models import configs

#: First seed of procedural training scenes: far above the small held-out seed lists of
#: benchmarks (gen3c eval), so no evaluation scene is ever trained on.
PROCEDURAL_SEED_BASE = 1_000_000


@dataclass
class RunConfig:
    seed: int = 0  # seeds everything: data order, sigma/noise draws, initial weights
    max_steps: int = 1000  # optimiser steps of the DiT stage (distill: of each stage, unless distill.stage_max_steps)
    max_minutes: float = 0.0  # training-time budget of the DiT stage (distill: of each stage) (0: none); whichever of the two ends first; both are the run's: a resumed run goes on counting from its checkpoint


@dataclass
class DataConfig:
    kind: str = "procedural"  # procedural | sample (GEN3C sample directories) | vipe (ViPE output directories)
    paths: list[str] = field(default_factory=list)  # sample/vipe: the directories to read
    scenes: list[str] = field(default_factory=lambda: ["room", "corridor", "street", "objects"])  # procedural scene presets
    num_clips: int = 1000  # procedural: distinct clips (clip i: scene seed PROCEDURAL_SEED_BASE + i, its own trajectory)
    resolution: list[int] = field(default_factory=lambda: [64, 112])  # [H, W] of training clips, multiples of 16
    num_frames: int = 17  # frames per clip, 1 + 8k
    clip_stride: int = 8  # sample/vipe: frames between the starts of consecutive clips of one video
    source_frames: int = 1  # 1: cache from the clip's first frame; 2: from its first and last frame (two buffers)
    movement_distance: list[float] = field(default_factory=lambda: [0.1, 0.5])  # procedural: range of GEN3C's distance, × median depth
    filter_points_threshold: float = 0.05  # GEN3C's edge filter of the cache
    foreground_masking: bool = False  # GEN3C's curtain test when rendering the buffers
    num_workers: int = 0  # DataLoader worker processes making clips
    cache_clips: bool = False  # make every clip once, keep it in memory (8-bit) and encode it once (small procedural runs)


@dataclass
class ModelConfig:
    checkpoint: str = ""  # gen3c checkpoint folder to fine-tune or distil (`gen3c convert` output, a `gen3c train` model/, or a packaged model: tiny); "" trains from scratch
    transformer: dict[str, Any] = field(default_factory=dict)  # from scratch: CosmosTransformer3DModel kwargs over the tiny config
    tokenizer: str = ""  # from scratch: a tokenizer folder (AutoencoderKLCosmos); "" trains one first ([tokenizer])
    weights_dtype: str = "float32"  # storage dtype of frozen weights (tokenizer; the DiT's base weights under LoRA): float32 | bfloat16
    max_sequence_length: int = 512  # text tokens the DiT sees (the cached empty prompt)
    tokenizer_chunk_frames: int = 0  # latent frames per tokenizer chunk when encoding clips (0: whole clip; 7B at 704×1280: 4 saves memory)
    export_dtype: str = "float32"  # dtype of the weights written to model/: float32 | bfloat16 (half the size)


@dataclass
class TokenizerConfig:
    config: dict[str, Any] = field(default_factory=dict)  # AutoencoderKLCosmos kwargs over the tiny tokenizer config (a fresh tokenizer)
    init: str = ""  # a tokenizer folder (e.g. an earlier run's OUT/tokenizer) to continue training from; "" starts fresh (and ignores config)
    steps: int = 200  # optimiser steps of the tokenizer stage (from scratch without model.tokenizer)
    max_minutes: float = 0.0  # training-time budget of the tokenizer stage (0: none); it has no checkpoint: stopped before its end, it starts over
    lr: float = 1e-3  # AdamW peak learning rate
    warmup_steps: int = 50  # linear learning-rate warm-up from lr / warmup_steps to lr (0: none)
    batch_size: int = 4  # clips per step


@dataclass
class TrainConfig:
    mode: str = "full"  # full: every DiT weight trains; lora: only a LoRA adapter ([lora]) over model.checkpoint; distill: a few-step student of model.checkpoint ([distill])
    batch_size: int = 1  # clips per step and process
    gradient_accumulation_steps: int = 1  # steps whose gradients add up before an optimiser step
    lr: float = 1e-4  # AdamW peak learning rate
    weight_decay: float = 0.0  # AdamW weight decay
    lr_schedule: str = "constant"  # constant | cosine (to 0 at max_steps), after warmup
    warmup_steps: int = 0  # linear warm-up steps
    grad_clip: float = 1.0  # gradient-norm clip (0: none)
    mixed_precision: str = "no"  # no | bf16 | fp16 (accelerate's autocast; master weights stay float32)
    gradient_checkpointing: bool = False  # recompute block activations in backward (the 7B needs it)
    distributed: str = "ddp"  # ddp | fsdp (GPUs only) when launched on several processes (torchrun / accelerate launch)
    ema_decay: float = 0.0  # EMA of the trained weights (0: none): ema ← decay·ema + (1 − decay)·θ after every optimiser step; model/, lora/ (distill: each stage's student) and the samples then hold the EMA, the checkpoints both (e.g. 0.999)
    # full/lora only (distill draws σ on the sampler's grid and keeps every clip's buffers):
    p_mean: float = 0.0  # log-normal sigma: ln σ ~ N(p_mean, p_std²); Cosmos-Predict1's EDMSDE values (EDM paper: -1.2, 1.2)
    p_std: float = 1.0  # (see p_mean)
    sigma_min: float = 0.0002  # sigma range of training draws (GEN3C's sampler: 0.0002 … 80)
    sigma_max: float = 80.0  # (see sigma_min)
    buffer_dropout: float = 0.1  # probability of zeroing a clip's 64 buffer channels (the unconditional branch of guidance)
    condition_augment_sigma: float = 0.001  # noise on the conditioned first latent frame, as GEN3C at inference


@dataclass
class LoraSettings:
    rank: int = 16  # adapter rank r
    alpha: float = 16.0  # scaling alpha (the update is alpha/r · B·A)
    targets: list[str] = field(default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"])  # block linears
    dropout: float = 0.0  # dropout on the adapter's input


@dataclass
class DistillConfig:
    guidance: float = 1.0  # the teacher's guidance g the student absorbs: cond + g·(cond − uncond) (GEN3C: 1); 0: an unguided teacher
    guidance_stage: bool = True  # first stage: one forward learns the guided output on the teacher's grid (needs guidance ≠ 0); false: the first halving stage learns from the guided teacher
    teacher_steps: int = 33  # sampler steps of the teacher's grid (Karras, as the sampler); 33 nests into 17, 9, 5 (GEN3C samples 35)
    student_steps: list[int] = field(default_factory=lambda: [17, 9, 5])  # steps after each progressive-distillation stage; each N: (previous − 1) = 2·(N − 1)
    stage_max_steps: list[int] = field(default_factory=list)  # optimiser steps of each stage in order (guidance stage first); [] = run.max_steps each; a resume may change the entries of the stages not yet finished
    teacher_memory: str = "resident"  # resident | fp8 (teacher weights stored in float8, computed in their dtype) | offload (teacher blocks streamed from CPU memory)


@dataclass
class LogConfig:
    """Logs, sample videos and checkpoints.

    A sample samples as the model is meant to: ``sample_steps = 0`` (the default) takes the
    checkpoint's own step count, so a fine-tuned distilled student (whose ``gen3c_model.json``
    states ``num_steps``) is previewed with the few steps it was trained for and any other model
    with :data:`gen3c.training.loop.PREVIEW_STEPS`; a value set here is used as it is. A
    distillation run samples each stage's student with its own steps (``sample_steps`` stays 0).
    """

    every: int = 10  # log the loss to TensorBoard (and the console) every this many steps
    sample_every: int = 0  # log a sample video of a held-out clip every this many steps (0: only at the end; -1: never; distill: also at each stage's end)
    sample_steps: int = 0  # sampler steps of those samples (0: the model's own: a distilled student's num_steps, else 20; distill: the stage's student steps)
    checkpoint_every: int = 0  # write a resumable checkpoint every this many steps (0: only at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    distill: DistillConfig = field(default_factory=DistillConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


_CHOICES = {
    ("data", "kind"): ("procedural", "sample", "vipe"),
    ("model", "weights_dtype"): ("float32", "bfloat16"),
    ("model", "export_dtype"): ("float32", "bfloat16"),
    ("train", "mode"): ("full", "lora", "distill"),
    ("train", "lr_schedule"): ("constant", "cosine"),
    ("train", "mixed_precision"): ("no", "bf16", "fp16"),
    ("train", "distributed"): ("ddp", "fsdp"),
    ("distill", "teacher_memory"): ("resident", "fp8", "offload"),
}
#: Keys that name a dtype (among :data:`gen3c.models.configs.DTYPE_NAMES`): a torch dtype from Python is taken as its name.
_DTYPE_KEYS = (("model", "weights_dtype"), ("model", "export_dtype"))


def _field_types(section) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(type(section))


def _type_name(kind: Any) -> str:
    args = getattr(kind, "__args__", ())
    origin = getattr(kind, "__origin__", kind)
    if origin is list and args:
        return "a list of " + {int: "whole numbers", float: "numbers", str: "strings"}.get(args[0], str(args[0]))
    if origin is dict:
        return "a table"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(origin, getattr(origin, "__name__", str(origin)))


def _shown(value: Any) -> str:
    """``value`` as an error quotes it: as TOML wrote it where that is one short line (a string,
    number, list or table), else :func:`~gen3c.errors.describe_value` (an array from Python by its
    shape: its repr runs over lines, every number)."""
    text = repr(value)
    plain = isinstance(value, str | int | float | list | dict) and len(text) <= 80 and "\n" not in text
    return text if plain else describe_value(value)


def _coerce(where: str, value: Any, kind: Any, default: Any) -> Any:
    """``value`` as the field's type ``kind`` (whole numbers where floats are asked; no bool for a
    number, no float for a whole number, even 2.0), in Python's own types: a dict from Python may
    hold numpy integers and floats, which a config's JSON could not be written with."""
    import numpy as np

    def fits(v: Any, k: Any) -> bool:
        origin = getattr(k, "__origin__", k)
        if origin is bool:  # (numpy's too: a mask's .any() from Python is np.True_)
            return isinstance(v, bool | np.bool_)
        if origin is int:
            return is_whole_number(v)
        if origin is float:  # (np.float64 is a float; np.float32 and np.float16 are not)
            return is_whole_number(v) or isinstance(v, float | np.floating)
        if origin is str:
            return isinstance(v, str)
        if origin is list:
            (item,) = k.__args__
            return isinstance(v, list) and all(fits(x, item) for x in v)
        if origin is dict:
            return isinstance(v, dict)
        return True  # pragma: no cover - every field has one of the types above

    if not fits(value, kind):
        raise Gen3cInputError(f"{where} = {_shown(value)} must be {_type_name(kind)} (default {default!r})")
    if kind is float or kind is int or kind is bool:  # config.json is written with Python's
        return kind(value)
    if getattr(kind, "__origin__", None) is dict:
        return _json_value(value)
    if getattr(kind, "__args__", None) in ((float,), (int,)):
        (item,) = kind.__args__
        return [item(v) for v in value]
    return value


def _json_value(value: Any) -> Any:
    """``value``, a table's entry from Python (``model.transformer``'s kwargs), as TOML gives it and
    the run's config.json holds it: numpy's numbers as Python's (``np.int64(2)`` was a TypeError
    when the run wrote config.json), a tuple as a list (a resume compares the config with that
    file's). Any other value is kept as it is, for :func:`_check_table` to refuse."""
    import numpy as np

    if isinstance(value, np.number | np.bool_):
        return value.item()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def _check_table(where: str, value: Any) -> None:
    """Refuse an entry of a table (``where``, e.g. ``model.transformer``) that config.json cannot
    hold (a set, a dtype, an array), in one line naming it."""
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_table(f"{where}[{i}]", v)
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_table(f"{where}.{k}", v)
    elif value is not None and not isinstance(value, bool | int | float | str):
        raise Gen3cInputError(f"{where} = {_shown(value)} must be a number, a string, true or false, a list or a table (config.json holds it)")  # fmt: skip


def config_from_dict(data: dict[str, Any], source: str = "config", base: str | os.PathLike | None = None) -> Config:
    """A :class:`Config` from nested dicts (TOML tables), validated; relative folders in it
    (:func:`resolve_paths`) are taken relative to ``base`` (a config file's folder), or, without
    it, to the working directory."""
    config = Config()
    sections = {f.name: f for f in dataclasses.fields(Config)}
    for name, table in data.items():
        if name not in sections and not isinstance(table, dict):  # a key above every [section] header
            owners = [s for s in sections if name in _field_types(getattr(config, s))]
            where = (f"put it under {' or '.join(f'[{s}]' for s in owners)}" if owners
                     else f"no section has that key: keys go under one of {', '.join(f'[{s}]' for s in sections)}")  # fmt: skip
            raise Gen3cInputError(f"{source}: {name} = {_shown(table)} stands above every section{':' if owners else ' and'} {where}")
        if name not in sections:
            close = difflib.get_close_matches(name, sections, n=1)
            hint = f"did you mean [{close[0]}]?" if close else f"use {', '.join(f'[{s}]' for s in sections)}"
            raise Gen3cInputError(f"{source}: unknown section [{name}]: {hint}")
        if not isinstance(table, dict):
            raise Gen3cInputError(f"{source}: [{name}] must be a table of keys")
        section = getattr(config, name)
        types = _field_types(section)
        for key, value in table.items():
            if key not in types:
                owners = [f"[{s}]" for s in sections if s != name and key in _field_types(getattr(config, s))]  # `max_steps` under [train]
                close = difflib.get_close_matches(key, types, n=1)
                hint = (f"it belongs under {' or '.join(owners)}" if owners else f"did you mean {close[0]!r}?" if close
                        else f"use {', '.join(sorted(types))}")  # fmt: skip
                raise Gen3cInputError(f"{source}: unknown key {key!r} in [{name}]: {hint}")
            if (name, key) in _DTYPE_KEYS and not isinstance(value, str):  # torch.bfloat16 from Python, as gen3c.generate takes it
                dtype = configs.dtype_name(value)
                if dtype is None:
                    choices = ", ".join(_CHOICES[name, key])
                    raise Gen3cInputError(f"{source}: {name}.{key} = {_shown(value)}: choose one of {choices} (a name or a torch dtype)")
                value = dtype
            setattr(section, key, _coerce(f"{source}: {name}.{key}", value, types[key], getattr(section, key)))
    if base is not None:
        resolve_paths(config, Path(base))
    check_config(config, source)
    return config


def resolve_paths(config: Config, base: Path) -> None:
    """Make the relative folders of ``config`` relative to ``base`` (the config file's folder), so
    a config means the same data and models from any working directory: ``data.paths``,
    ``model.tokenizer``, ``tokenizer.init`` and ``model.checkpoint`` (unless it names a packaged
    model, or a hub id ``owner/name`` that is no folder under ``base``). ``~`` is expanded."""
    from gen3c.models.packaged import PACKAGED_MODELS

    def resolved(value: str) -> str:
        return value and str(base / Path(value).expanduser())  # an absolute path stays as it is

    config.data.paths = [resolved(p) for p in config.data.paths]
    config.model.tokenizer = resolved(config.model.tokenizer)
    config.tokenizer.init = resolved(config.tokenizer.init)
    checkpoint = config.model.checkpoint
    hub_id = checkpoint.count("/") == 1 and not checkpoint.startswith((".", "/", "~")) and not (base / checkpoint).exists()
    if checkpoint not in PACKAGED_MODELS and not hub_id:
        config.model.checkpoint = resolved(checkpoint)


def check_config(config: Config, source: str = "config") -> None:
    """Refuse values no run can use, naming the key."""
    for part in dataclasses.fields(config):  # TOML allows nan and inf; no setting takes them
        for f in dataclasses.fields(getattr(config, part.name)):
            value = getattr(getattr(config, part.name), f.name)
            if any(isinstance(v, float) and not math.isfinite(v) for v in (value if isinstance(value, list | tuple) else [value])):
                raise Gen3cInputError(f"{source}: {part.name}.{f.name} = {value} must be finite")
    for (section, key), choices in _CHOICES.items():
        value = getattr(getattr(config, section), key)
        if value not in choices:
            raise Gen3cInputError(f"{source}: {section}.{key} = {_shown(value)}: choose one of {', '.join(choices)}")
    d = config.data
    if len(d.resolution) != 2 or any(v <= 0 or v % 16 for v in d.resolution):
        raise Gen3cInputError(f"{source}: data.resolution = {d.resolution} must be [H, W], both positive multiples of 16")
    if d.num_frames < 1 or (d.num_frames - 1) % 8:
        raise Gen3cInputError(f"{source}: data.num_frames = {d.num_frames} must be 1 + 8k (9, 17, …, 121)")
    if d.source_frames not in (1, 2):
        raise Gen3cInputError(f"{source}: data.source_frames = {d.source_frames} must be 1 or 2")
    if d.kind != "procedural" and not d.paths:
        raise Gen3cInputError(f"{source}: data.kind = {d.kind!r} needs data.paths (the directories to read)")
    if len(d.movement_distance) != 2 or not 0 <= d.movement_distance[0] <= d.movement_distance[1]:
        raise Gen3cInputError(f"{source}: data.movement_distance = {d.movement_distance} must be [low, high] with 0 ≤ low ≤ high")
    if d.kind == "procedural":
        from gen3c.scenes import SCENE_PRESETS

        unknown = [name for name in d.scenes if name not in SCENE_PRESETS]
        if unknown or not d.scenes:
            raise Gen3cInputError(f"{source}: data.scenes = {d.scenes}: list presets among {', '.join(SCENE_PRESETS)}")
    t, tk, log = config.train, config.tokenizer, config.log
    at_least = {
        1: {"run.max_steps": config.run.max_steps, "train.batch_size": t.batch_size,
            "train.gradient_accumulation_steps": t.gradient_accumulation_steps, "data.num_clips": d.num_clips,
            "data.clip_stride": d.clip_stride, "tokenizer.steps": tk.steps, "tokenizer.batch_size": tk.batch_size,
            "lora.rank": config.lora.rank, "log.every": log.every,
            "log.keep_checkpoints": log.keep_checkpoints, "model.max_sequence_length": config.model.max_sequence_length},
        0: {"run.seed": config.run.seed, "data.num_workers": d.num_workers, "model.tokenizer_chunk_frames": config.model.tokenizer_chunk_frames,
            "tokenizer.warmup_steps": tk.warmup_steps, "train.warmup_steps": t.warmup_steps, "train.weight_decay": t.weight_decay,
            "train.grad_clip": t.grad_clip, "train.condition_augment_sigma": t.condition_augment_sigma,
            "data.filter_points_threshold": d.filter_points_threshold, "log.checkpoint_every": log.checkpoint_every,
            "log.sample_steps": log.sample_steps},
        -1: {"log.sample_every": log.sample_every},
    }  # fmt: skip
    for low, values in at_least.items():
        for key, value in values.items():
            if value < low:
                raise Gen3cInputError(f"{source}: {key} = {value} must be at least {low}")
    if log.sample_steps > configs.MAX_NUM_STEPS:
        raise Gen3cInputError(f"{source}: log.sample_steps = {log.sample_steps} must be at most {configs.MAX_NUM_STEPS} (0: the model's own)")
    # The sample videos' seed takes no more (refused mid-run), and far past it the step generators' seeds overflow (a traceback).
    if config.run.seed > configs.MAX_SEED:
        raise Gen3cInputError(f"{source}: run.seed = {config.run.seed} must be at most {configs.MAX_SEED}")
    if not 0 <= t.ema_decay < 1:
        raise Gen3cInputError(f"{source}: train.ema_decay = {t.ema_decay} must lie in [0, 1) (0: no EMA; e.g. 0.999 averages ~1000 steps)")
    if not 0 <= t.buffer_dropout <= 1:
        raise Gen3cInputError(f"{source}: train.buffer_dropout = {t.buffer_dropout} must lie in [0, 1]")
    if not 0 < t.sigma_min < t.sigma_max:
        raise Gen3cInputError(f"{source}: train.sigma_min/sigma_max = {t.sigma_min}/{t.sigma_max} need 0 < min < max")
    for key, value in {"train.p_std": t.p_std, "train.lr": t.lr, "tokenizer.lr": tk.lr, "lora.alpha": config.lora.alpha}.items():
        if value <= 0:
            raise Gen3cInputError(f"{source}: {key} = {value} must be positive")
    if not 0 <= config.lora.dropout < 1:
        raise Gen3cInputError(f"{source}: lora.dropout = {config.lora.dropout} must lie in [0, 1)")
    for key, minutes in {"run.max_minutes": config.run.max_minutes, "tokenizer.max_minutes": config.tokenizer.max_minutes}.items():
        if minutes < 0:
            raise Gen3cInputError(f"{source}: {key} = {minutes} must be ≥ 0 (0: no time budget)")
    if t.mode == "lora" and not config.model.checkpoint:
        raise Gen3cInputError(
            f'{source}: train.mode = "lora" needs model.checkpoint (the base model the adapter is for; a fresh DiT is never saved, '
            'so its adapter could not be used): set it, or train a model from scratch with train.mode = "full"'
        )
    if t.mode == "distill":
        _check_distill(config, source)
    _refuse_unused(config, source)  # (first: a table the run does not use is refused whole)
    for section, key in (("model", "transformer"), ("tokenizer", "config")):
        _check_table(f"{source}: {section}.{key}", getattr(getattr(config, section), key))


#: Fields a run uses only in some settings: (section, keys or None for all, whether this run uses
#: them, the setting that does). A value other than the default where it is not used is refused:
#: it would do nothing, silently.
_USED_ONLY = (
    ("lora", None, lambda c: c.train.mode == "lora", 'train.mode = "lora"'),
    ("distill", None, lambda c: c.train.mode == "distill", 'train.mode = "distill"'),
    ("tokenizer", None, lambda c: not c.model.checkpoint and not c.model.tokenizer,
     'a run from scratch that trains its tokenizer (model.checkpoint = "" and model.tokenizer = "")'),
    ("tokenizer", ("config",), lambda c: not c.tokenizer.init, 'a fresh tokenizer (tokenizer.init = "")'),
    ("model", ("transformer", "tokenizer"), lambda c: not c.model.checkpoint, 'a run from scratch (model.checkpoint = "")'),
    ("model", ("export_dtype",), lambda c: c.train.mode != "lora", 'train.mode = "full" or "distill" (a LoRA run writes its adapter)'),
    ("data", ("scenes", "num_clips", "movement_distance"), lambda c: c.data.kind == "procedural", 'data.kind = "procedural"'),
    ("data", ("paths", "clip_stride"), lambda c: c.data.kind != "procedural", 'data.kind = "sample" or "vipe"'),
    ("train", ("p_mean", "p_std", "sigma_min", "sigma_max", "buffer_dropout"), lambda c: c.train.mode != "distill",
     'train.mode = "full" or "lora" (distillation draws σ on the sampler\'s grid)'),
    ("log", ("sample_steps",), lambda c: c.train.mode != "distill", 'train.mode = "full" or "lora" (a student samples with its own steps)'),
    ("log", ("sample_steps",), lambda c: c.log.sample_every != -1, "log.sample_every ≥ 0 (-1 makes no samples)"),
    ("run", ("max_steps",), lambda c: c.train.mode != "distill" or not c.distill.stage_max_steps,
     "distill.stage_max_steps = [] (a list there sets each stage's steps)"),
    ("train", ("lr_schedule",), lambda c: c.train.mode == "distill" or c.train.warmup_steps < c.run.max_steps,
     "train.warmup_steps < run.max_steps (the cosine decay follows the warm-up)"),
)  # fmt: skip


def _refuse_unused(config: Config, source: str) -> None:
    defaults = Config()
    for section, keys, used, where in _USED_ONLY:
        if used(config):
            continue
        for key in keys or [f.name for f in dataclasses.fields(getattr(config, section))]:
            value = getattr(getattr(config, section), key)
            if value != getattr(getattr(defaults, section), key):
                raise Gen3cInputError(
                    f"{source}: {section}.{key} = {_shown(value)} would do nothing in this run: it is used with {where}; remove it or change that setting"
                )


def _check_distill(config: Config, source: str) -> None:
    from gen3c.training.distill import check_halving

    d = config.distill
    if not config.model.checkpoint:
        raise Gen3cInputError(f"{source}: train.mode = \"distill\" needs model.checkpoint (the teacher: a gen3c checkpoint folder)")
    if d.guidance_stage and d.guidance == 0:
        raise Gen3cInputError(f"{source}: distill.guidance_stage needs distill.guidance ≠ 0 (there is no guidance to distil): set guidance_stage = false")
    if not d.guidance_stage and not d.student_steps:
        raise Gen3cInputError(f"{source}: [distill] has no stage: keep guidance_stage = true or list student_steps")
    check_halving(d.teacher_steps, d.student_steps, source)
    stages = int(d.guidance_stage) + len(d.student_steps)
    counts = d.stage_max_steps
    if counts and (len(counts) != stages or not all(is_whole_number(n) and n >= 1 for n in counts)):
        raise Gen3cInputError(
            f"{source}: distill.stage_max_steps = {d.stage_max_steps} must list {stages} positive step counts "
            f"(guidance stage first, then one per student_steps entry), or be [] (run.max_steps each)"
        )


def load_config(path: str | os.PathLike) -> Config:
    """Read a TOML training config (see the module docstring), or a shipped one by name (``default``)."""
    path = Path(path)
    base = path.parent.absolute()  # relative folders in a config file are relative to its folder
    if not exists(path) and path.name == str(path) and path.stem in shipped_config_names() and path.suffix in ("", ".toml"):
        path = shipped_config(f"{path.stem}.toml")  # a pip install has no src/gen3c/training/configs to point at
        base = Path.cwd()  # a shipped config by name: to the working directory (the package's folder holds none of the user's)
    refuse_special_file(path, "config")
    try:
        content = path.read_bytes()
    except OSError as exc:
        names = shipped_config_names()
        # A bare name that is no file: a shipped config's name mistyped (`gen3c train defualt`).
        close = difflib.get_close_matches(path.stem, names, n=1) if path.name == str(path) and not exists(path) else []
        fix = (f"did you mean the shipped config {close[0]!r}? (or pass a TOML file; the files to copy are in {shipped_config('')})" if close
               else f"pass a TOML file, or a shipped config by name ({', '.join(names)}; the files to copy are in {shipped_config('')})")  # fmt: skip
        raise Gen3cInputError(f"config {quoted_path(path)} cannot be read ({exc.strerror}): {fix}") from None
    # (an editor's byte-order mark was "Invalid statement" at line 1; UTF-16, PowerShell 5's `>`: gen3c.io.text)
    text = user_text(content, f"config {quoted_path(path)}", f"pass a training config; {shipped_config('default.toml')} shows every key", "a TOML file")
    if not text.strip():  # (a file cut to nothing, or not yet written, ran every default: a from-scratch run of hours)
        raise Gen3cInputError(
            f"config {quoted_path(path)} is empty: write its settings ({shipped_config('default.toml')} shows every key), "
            "or pass the shipped config 'default' for every default"
        )
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        other = {".yaml": "YAML", ".yml": "YAML", ".json": "JSON"}.get(path.suffix.lower())
        fix = (f"gen3c train reads TOML, not {other}: write it as TOML ([section] headers, key = value)" if other
               else "fix that line")
        raise Gen3cInputError(f"config {quoted_path(path)} is not valid TOML ({exc}): {fix}; {shipped_config('default.toml')} shows every key") from None
    return config_from_dict(data, source=f"config {quoted_path(path)}", base=base)


def shipped_config(name: str) -> Path:
    """Path of a config shipped in ``gen3c/training/configs`` (e.g. ``small_procedural.toml``)."""
    return Path(str(resources.files("gen3c.training") / "configs" / name))


def shipped_config_names() -> list[str]:
    """Names of the configs shipped in ``gen3c/training/configs`` (``default``, ``small_procedural``, …)."""
    return sorted(p.stem for p in shipped_config("").glob("*.toml"))
