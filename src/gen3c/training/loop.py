"""``gen3c train``: the training run on ``accelerate`` (DDP / FSDP, mixed precision, checkpoints).

A run, numbered as it happens:

1. components — fine-tuning loads a gen3c checkpoint (:func:`gen3c.pipelines.loading.load_pipeline`);
   from scratch builds a DiT of the 7B's class from ``model.transformer`` and takes the
   tokenizer from ``model.tokenizer`` or trains one first (:mod:`gen3c.training.tokenizer`);
2. the DiT is made trainable (every weight, or a LoRA adapter: :mod:`gen3c.training.lora`),
   with gradient checkpointing if asked, then prepared by ``Accelerator`` with AdamW (the LR of
   each step is :func:`lr_factor` of the step counter);
3. a resumed run restores model/adapter weights, optimiser, RNG states and the step from an
   ``accelerator.save_state`` folder;
4. each step draws clips (:mod:`gen3c.training.data`; the sampler continues where the run
   stopped), encodes video and buffers with the frozen tokenizer and takes a step on the GEN3C
   objective (:mod:`gen3c.training.objective`); every random draw of a step comes from a
   generator seeded by (seed, step, rank), so a resumed run repeats an uninterrupted one;
5. loss and LR go to TensorBoard every ``log.every`` steps, a sample video of a held-out clip
   every ``log.sample_every`` (PNG frame strip in TensorBoard + mp4 under ``samples/``),
   checkpoints every ``log.checkpoint_every``;
6. at the end: a last checkpoint, the trained model (``model/``: a checkpoint folder
   ``load_generator`` reads) or adapter (``lora/``), ``MODEL_CARD.md``, ``losses.jsonl``.

Output folder: ``config.json``, ``losses.jsonl``, ``config_changes.jsonl`` (settings a resume
changed, :func:`record_changes`), ``logs/`` (TensorBoard), ``samples/``,
``checkpoints/step_XXXXXXX/``, ``tokenizer/`` (from scratch), ``model/`` or ``lora/``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from gen3c.dependencies import optional
from gen3c.environment import made_with
from gen3c.errors import (
    Gen3cInputError,
    disk_full_reason,
    first_line,
    is_disk_full,
    is_whole_number,
    note,
    path_to_copy,
    quoted_path,
    shown_value,
)
from gen3c.io.atomic import (
    atomic_paths,
    check_writable_place,
    ensure_writable_dir,
    publish,
    replace_folder,
    try_flock,
    write_text_atomic,
)
from gen3c.models import configs
from gen3c.parallel import (
    check_host_gpus,
    check_rendezvous_env,
    is_main_process,
    launched_world_size,
    refuse_srun_tasks,
    torchrun_per_node,
)
from gen3c.progress import ProgressFactory
from gen3c.training.config import Config
from gen3c.training.ema import EMA_FILE, WeightEma, ema_weights

#: The tokenizer stage's summary, kept in ``OUT/tokenizer/`` for the model card of a resumed run.
TOKENIZER_SUMMARY = "gen3c_tokenizer_training.json"


@dataclass
class TrainResult:
    """What a run did."""

    out: Path
    steps: int  # optimiser steps done in total (including those before a resume)
    losses: list[float] = field(default_factory=list)  # loss of each step of this invocation
    seconds: float = 0.0  # training time of the DiT stage over all invocations (what run.max_minutes counts); distill: of all stages
    tokenizer: dict | None = None  # the tokenizer stage's summary (from scratch)
    exported: Path | None = None  # model/ or lora/
    checkpoint: Path | None = None  # the last checkpoint written
    processes: int = 1  # data-parallel processes (torchrun / accelerate launch)
    parallel: str = ""  # "DDP" or "FSDP" when processes > 1
    stages: list[dict] = field(default_factory=list)  # distill: each stage's summary (gen3c.training.distill_loop)


class _StepState:
    """The step counter and the training time spent (``run.max_minutes`` counts it across
    invocations, as ``run.max_steps`` counts steps), saved and restored with the checkpoint
    (accelerate custom object)."""

    def __init__(self) -> None:
        self.step = 0
        self.seconds = 0.0  # time in the DiT stage's steps, up to this checkpoint

    def state_dict(self) -> dict:
        return {"step": self.step, "seconds": self.seconds}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.seconds = float(state.get("seconds", 0.0))  # checkpoints of older versions lack it


def _dtype(name: str) -> torch.dtype:
    """A dtype the configuration names (checked there: :data:`gen3c.models.configs.DTYPE_NAMES`) as torch's."""
    return getattr(torch, name)


def _step_seed(seed: int, micro_step: int, rank: int) -> int:
    return (seed * 1_000_003 + micro_step) * 64 + rank  # < 2**58 (run.seed < 2**32)


def _step_generator(seed: int, micro_step: int, rank: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(_step_seed(seed, micro_step, rank))


def _seed_global_rng(seed: int, micro_step: int, rank: int) -> None:
    """Seed torch's global generator for a micro-step, on a stream apart from
    :func:`_step_generator`'s: what draws from it in a step (LoRA dropout) then repeats on resume
    whatever drew from it before (a DataLoader draws its base seed from it when a run, or a
    resumed one, starts iterating), instead of depending on the run's history."""
    torch.manual_seed(_step_seed(seed, micro_step, rank) ^ (1 << 62))


def _diverged(step: int, what: str) -> Gen3cInputError:
    """The refusal of optimiser step ``step`` (from 0) whose ``what`` shows the training diverged."""
    return Gen3cInputError(
        f"step {step + 1}: {what} (training diverged): the run stops, its checkpoints before this step kept: "
        "lower train.lr (or set train.grad_clip, train.warmup_steps) and --resume from one (the run records the change), or start a new --out"
    )


def lr_factor(config: Config, step: int, total: int) -> float:
    """The LR factor of optimiser step ``step`` of ``total``: linear warm-up over
    ``train.warmup_steps``, then constant or cosine to 0 at ``total`` (``train.lr_schedule``)."""
    t = config.train
    if t.warmup_steps and step < t.warmup_steps:
        return (step + 1) / t.warmup_steps
    if t.lr_schedule == "cosine":
        progress = min(1.0, (step - t.warmup_steps) / max(1, total - t.warmup_steps))
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


def check_devices(config: Config) -> None:
    """Refuse settings accelerate would quietly ignore without a GPU, and a torchrun launch of
    more processes per host than GPUs (each takes one; two on one fail inside NCCL), and a launch
    whose torchrun variables are missing or malformed (``WORLD_SIZE=2`` alone: accelerate's
    ValueError traceback, called a bug in gen3c)."""
    world = launched_world_size()  # (a malformed WORLD_SIZE: one line)
    refuse_srun_tasks(  # each would train alone into the same --out
        "gen3c train", "train alone into the same --out",
        lambda tasks: f"{torchrun_per_node('train CONFIG', tasks)}, or one task (`srun --ntasks=1 gen3c train CONFIG`)",
    )
    if config.train.ema_decay and config.train.distributed == "fsdp" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Each process holds a shard of the weights, so an average of one process's would be a shard.
        raise Gen3cInputError('train.ema_decay needs whole weights on each process: use train.distributed = "ddp" with it, or set ema_decay = 0')
    if torch.cuda.is_available():
        if world is not None:
            check_host_gpus("; or hide the GPUs (CUDA_VISIBLE_DEVICES=) to train on the CPUs")
    else:
        _check_cpu_settings(config)
    if world is not None and world > 1:  # (after the settings: a mistake in the config is said first)
        check_rendezvous_env(world, f"`torchrun --nproc_per_node={world} -m gen3c train CONFIG`")


def _check_cpu_settings(config: Config) -> None:
    """:func:`check_devices`' refusals on a machine without CUDA."""
    if config.train.mixed_precision == "fp16":  # accelerate has fp16 autocast on GPUs only: float32 instead
        raise Gen3cInputError('train.mixed_precision = "fp16" needs a GPU (accelerate has no fp16 autocast on CPUs): use "bf16" or "no"')
    if config.train.distributed == "fsdp" and int(os.environ.get("WORLD_SIZE", "1")) > 1:  # it would run DDP instead
        raise Gen3cInputError('train.distributed = "fsdp" needs GPUs (accelerate shards across GPUs only): use "ddp" on CPUs')
    if config.model.weights_dtype == "bfloat16":
        try:  # the tokenizer's pooling; PyTorch's CPU kernels lack it in bfloat16 (2.14), a traceback at the first step
            torch.nn.functional.avg_pool3d(torch.zeros(1, 1, 1, 2, 2, dtype=torch.bfloat16), (1, 2, 2))
        except (NotImplementedError, RuntimeError):
            raise Gen3cInputError(
                'model.weights_dtype = "bfloat16" needs a GPU (the tokenizer\'s avg_pool3d has no bfloat16 CPU kernel in this PyTorch): use "float32"'
            ) from None


def note_workers(config: Config) -> None:
    """Note a ``data.num_workers`` beyond the CPUs this process may use (a shipped config's 14 on
    a small machine): said once, naming the setting, where torch warns at every loader in its
    own words (:func:`train` leaves those unsaid)."""
    from gen3c.environment import usable_cpus

    cpus = usable_cpus()
    workers = config.data.num_workers
    if workers > cpus and is_main_process():
        note(f"data.num_workers = {workers} is more than the {cpus} CPUs this process may use: clips are made more slowly than "
             f"with {cpus} or fewer; lower it")  # fmt: skip


#: AdamW learning rates from this on move every weight by about as much as a DiT's weights are in size
#: (~0.02 to 0.1) each step: the loss diverges. DiTs train at 1e-5 to 1e-3 (the shipped configs' tokenizers: up to 2e-3).
IMPLAUSIBLE_LR = 0.1
#: Below this much in all (lr × steps), AdamW moves no weight by more than the bfloat16 resolution of a
#: weight of 0.02 (8e-5): the run trains nothing visible.
NEGLIGIBLE_TRAVEL = 1e-5


def note_settings(config: Config, tokenizer_trains: bool) -> None:
    """:func:`note_workers` and :func:`note_learning_rates`: what a run (fine-tune, LoRA, from
    scratch or distillation) notes once its own refusals are behind it, before it starts, so a
    run refused says only why."""
    note_workers(config)
    note_learning_rates(config, tokenizer_trains)


def note_learning_rates(config: Config, tokenizer_trains: bool) -> None:
    """Note a learning rate no AdamW run of a DiT (or of the tokenizer, where ``tokenizer_trains``:
    not one a resumed run already trained) can use: so large that each step moves every weight by
    more than its size (``train.lr = 1``), or so small that the whole run moves none visibly
    (``train.lr = 1e-12``). A note, not a refusal: the value is the user's to try (diffusers-style
    trainers take any), and a number cannot know every model."""
    if not is_main_process():
        return
    if config.train.mode == "distill":
        steps = max(config.distill.stage_max_steps or [config.run.max_steps])
    else:
        steps = config.run.max_steps
    count = "the longest of distill.stage_max_steps" if config.train.mode == "distill" and config.distill.stage_max_steps else "run.max_steps"
    rates = [("train.lr", config.train.lr, steps, count, "a DiT", "1e-5 to 1e-3")]
    if tokenizer_trains:  # the tokenizer trains first
        rates.append(("tokenizer.lr", config.tokenizer.lr, config.tokenizer.steps, "tokenizer.steps", "a tokenizer", "1e-4 to 5e-3"))
    for key, lr, steps, count, what, usual in rates:
        if lr >= IMPLAUSIBLE_LR:
            note(f"{key} = {lr:g} is far above what AdamW trains {what} with ({usual}): each step moves every weight by about "
                 f"{lr:g}, more than the weights are in size, and the loss will diverge; lower it")  # fmt: skip
        elif lr * steps < NEGLIGIBLE_TRAVEL:
            note(f"{key} = {lr:g} over {steps} steps ({count}) moves no weight by more than about {lr * steps:.0e} (AdamW moves a "
                 f"weight by about lr a step): nothing visible trains; AdamW trains {what} at {usual}")  # fmt: skip


def _accelerator(config: Config, out: Path):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import ProjectConfiguration

    check_devices(config)
    # accelerate keeps its settings and gradient-sync flag process-wide; a run after another in
    # this process (gen3c.training.run_training twice) starts from its own: with another
    # mixed_precision accelerate refuses ("restart your runtime"), and after a run stopped between
    # micro-batches the flag stays off, so the tokenizer stage's plain optimiser steps are skipped.
    # (The process group, in PartialState, is kept.)
    AcceleratorState._reset_state()
    GradientState._reset_state()
    kwargs = {}
    if config.train.distributed == "fsdp" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import FullyShardedDataParallelPlugin

        kwargs["fsdp_plugin"] = FullyShardedDataParallelPlugin(
            auto_wrap_policy="transformer_based_wrap", transformer_cls_names_to_wrap=["CosmosTransformerBlock"],
            use_orig_params=True,
        )  # fmt: skip
    return Accelerator(
        # Without CUDA, accelerate only forms a process group (gloo) when told it runs on CPUs;
        # otherwise each process of `torchrun -m gen3c train` would train alone into one folder.
        cpu=not torch.cuda.is_available(),
        mixed_precision=config.train.mixed_precision,
        gradient_accumulation_steps=config.train.gradient_accumulation_steps,
        project_config=ProjectConfiguration(project_dir=str(out), automatic_checkpoint_naming=False),
        **kwargs,
    )


def _start_run(config: Config, out: Path, resume: str | None, echo: Callable[[str], None] | None):
    """The accelerator, TensorBoard (main process only), ``log(tag, value, step)`` and
    config.json: what a training run and a distillation run begin with, in the output folder
    :func:`train` made and locked (:func:`hold_run_folder`), with a resumed run's changes of
    :func:`recorded_keys` (:func:`record_changes`).

    A resumed run's TensorBoard hides the events of the steps past its checkpoint (``purge_step``):
    those of an abandoned history (a rewind) or of steps run after the last checkpoint, which run
    again; the tokenizer stage logs to ``logs/tokenizer/``, out of the purge's reach.

    Returns:
        ``(out, accelerator, writer, log)``; ``writer`` is None off the main process.
    """
    from torch.utils.tensorboard import SummaryWriter

    out = ensure_writable_dir(out, "training output folder")  # (made by the main process, which may come later)
    accelerator = _accelerator(config, out)
    purge_step = None if resume is None else resumed_step(out, resume) + 1
    writer = SummaryWriter(str(out / "logs"), purge_step=purge_step) if accelerator.is_main_process else None

    def log(tag: str, value: float, step: int) -> None:
        if writer is not None:
            writer.add_scalar(tag, value, step)

    if accelerator.is_main_process:
        record_changes(config, out, resume, echo)
    return out, accelerator, writer, log


#: The changes of :func:`recorded_keys` a run was resumed with, a JSON line each: the first
#: step that used the new value, the key, the value before and after.
CHANGES_FILE = "config_changes.jsonl"


def record_changes(config: Config, out: Path, resume: str | None, echo: Callable[[str], None] | None = None) -> list[dict]:
    """Write ``OUT/config.json`` (what the run uses now: a later resume compares with it) and
    ``OUT/config_changes.jsonl``: the settings of :func:`recorded_keys` that ``config`` changes
    from the config the checkpoint ``resume`` names (a folder or "auto"; None: a fresh run, which
    changes nothing) was made with, appended to the history kept before them, and said on ``echo``.

    The two are published as one set (:func:`~gen3c.io.atomic.atomic_paths`): a run stopped while
    writing them leaves both as they were, never a change beside the config it changes from (a
    later resume would record it again, or the card state a change the run did not make). The
    history kept is the checkpoint's own (a copy in each checkpoint, as ``losses.jsonl``): a
    rewind drops the changes of the steps it leaves. Checkpoints of older versions hold neither
    copy: the run's ``config.json`` and the lines up to the resumed steps stand in. Returns the
    changes now in force (the whole history)."""
    checkpoint = None if resume is None else _latest_checkpoint(out) if resume == "auto" else Path(resume)
    history, changed = [], []
    if checkpoint is not None:  # (none: no step done, the run uses the config from step 1)
        step = resumed_step(out, str(checkpoint)) + 1  # the first step with the new values
        if (checkpoint / "config.json").is_file():
            before, history = recorded_config(checkpoint), recorded_changes(checkpoint)
        else:
            before, history = recorded_config(out), [c for c in recorded_changes(out) if c["step"] <= step]
        now = config.to_dict()
        changed = [
            {"step": step, "key": f"{section}.{key}", "from": before[section][key], "to": now[section][key]}
            for section, key in recorded_keys(config)
            if key in before.get(section, {}) and before[section][key] != now[section][key]
        ]
        history += changed
    if not history:  # removed first: a run stopped before config.json is replaced then records no change, as it makes none
        (out / CHANGES_FILE).unlink(missing_ok=True)
    with atomic_paths({"config": out / "config.json", **({"changes": out / CHANGES_FILE} if history else {})}) as tmp:
        tmp["config"].write_text(config.to_json())
        if history:
            tmp["changes"].write_text("".join(json.dumps(c) + "\n" for c in history))
    if changed and echo is not None:
        echo(f"--resume: {describe_changes(changed)}; {quoted_path(out / 'config.json')} records the new values")
    return history


def recorded_keys(config: Config) -> tuple[tuple[str, str], ...]:
    """The settings whose change on resume :func:`record_changes` records for ``config``:
    :data:`RECOVERY_CHANGES`, and ``run.max_steps`` under the cosine schedule, where it is the
    step the cosine reaches 0 at (:func:`lr_factor`), so it changes the LR of every step left;
    with the constant one it is a budget as ``run.max_minutes`` is, and left out (so is
    ``distill.stage_max_steps``, each stage's ``run.max_steps``)."""
    budgets = (("run", "max_steps"), ("distill", "stage_max_steps"))
    return (*RECOVERY_CHANGES, *budgets) if config.train.lr_schedule == "cosine" else RECOVERY_CHANGES


def describe_changes(changes: list[dict]) -> str:
    """``train.lr 0.0001 → 5e-05 from step 301; …`` of :data:`CHANGES_FILE` lines."""
    return "; ".join(f"{c['key']} {json.dumps(c['from'])} → {json.dumps(c['to'])} from step {c['step']}" for c in changes)


def recorded_changes(folder: Path) -> list[dict]:
    """The lines of ``config_changes.jsonl`` in a run or checkpoint folder (none without it)."""
    path = folder / CHANGES_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def changes_used(out: Path, steps: int) -> list[dict]:
    """The recorded changes (:func:`recorded_changes`) some of a run's ``steps`` used: a resume
    that changed a setting while lowering ``run.max_steps`` to the step reached ran no step with
    the new value (``config_changes.jsonl`` keeps it: a later resume's steps use it)."""
    return [c for c in recorded_changes(out) if c["step"] <= steps]


def config_used(config: Config, out: Path, steps: int) -> Config:
    """``config`` with the recorded changes none of a run's ``steps`` used (:func:`changes_used`)
    taken back: the settings its last steps ran with, which the model card states."""
    from dataclasses import replace

    for c in reversed([c for c in recorded_changes(out) if c["step"] > steps]):  # the earliest's "from" last
        section, key = c["key"].split(".")
        config = replace(config, **{section: replace(getattr(config, section), **{key: c["from"]})})
    return config


def resumed_step(out: Path, resume: str) -> int:
    """The step a run resumed with ``resume`` (a checkpoint folder or "auto") goes on from: the
    checkpoint's step counter (read as plain values, :func:`check_checkpoint`), 0 without one."""
    checkpoint = _latest_checkpoint(out) if resume == "auto" else Path(resume)
    if checkpoint is None:
        return 0
    check_checkpoint(checkpoint)
    return int(torch.load(checkpoint / "custom_checkpoint_0.pkl", map_location="cpu", weights_only=True)["step"])


def _run_result(accelerator, out: Path, steps: int, **fields) -> TrainResult:
    """A run's :class:`TrainResult` at its start (``steps`` done before), with its processes and
    how they share the work (DDP or FSDP)."""
    result = TrainResult(out=out, steps=steps, processes=accelerator.num_processes, **fields)
    if result.processes > 1:
        result.parallel = "FSDP" if accelerator.distributed_type.value == "FSDP" else "DDP"
    return result


def _end_run(accelerator, writer) -> None:
    """Close what :func:`_start_run` opened, once every process is done."""
    if writer is not None:
        writer.close()
    accelerator.wait_for_everyone()
    accelerator.end_training()


def _components(config: Config, out: Path):
    """What a run trains from, read before anything is written: ``(transformer, vae, scheduler,
    prompt_cache, tokenizer_trains, kept_meta)``. Fine-tuning: the checkpoint's parts and what of
    its ``gen3c_model.json`` the fine-tuned model keeps (a distilled student's ``num_steps`` and
    guidance, a small model's float32 ``dtype``; none from scratch). From scratch: a fresh
    DiT and the tokenizer of ``model.tokenizer``, of a resumed run (``OUT/tokenizer``), of
    ``tokenizer.init`` or a fresh one; ``tokenizer_trains`` says the tokenizer stage still has to
    run (:func:`_train_tokenizer`)."""
    from diffusers import AutoencoderKLCosmos, CosmosTransformer3DModel, EDMEulerScheduler

    from gen3c.models.prompt_cache import PromptEmbeddingCache

    m = config.model
    if m.checkpoint:
        base_dtype = _dtype(m.weights_dtype) if config.train.mode == "lora" else torch.float32
        pipe = load_base_pipeline(m.checkpoint, base_dtype)
        vae = pipe.vae if pipe.vae.dtype == _dtype(m.weights_dtype) else pipe.vae.to(_dtype(m.weights_dtype))
        cache = pipe.prompt_cache
        if cache is None or cache.lookup("") is None:
            raise Gen3cInputError(
                f"checkpoint {quoted_path(m.checkpoint)} has no cached empty-prompt embedding (prompt_cache/): convert it again with `gen3c convert`"
            )
        kept_meta = {**pipe.sampling_defaults, **{key: pipe.model_info[key] for key in ("dtype",) if key in pipe.model_info}}
        return pipe.transformer, vae, pipe.scheduler, cache, False, kept_meta
    scheduler = EDMEulerScheduler(**configs.SCHEDULER_GEN3C)
    torch.manual_seed(config.run.seed)
    kwargs = {**configs.TRANSFORMER_TINY, **config.model.transformer}
    if kwargs["in_channels"] != configs.GEN3C_IN_CHANNELS:
        raise Gen3cInputError(f"model.transformer.in_channels must be {configs.GEN3C_IN_CHANNELS} (GEN3C's channel layout)")
    try:
        for key in ("max_size", "patch_size", "rope_scale"):
            kwargs[key] = tuple(kwargs[key])
        transformer = CosmosTransformer3DModel(**kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise Gen3cInputError(
            f"model.transformer = {config.model.transformer} does not make a CosmosTransformer3DModel ({first_line(exc)}): fix those arguments"
        ) from None
    # The cached empty prompt of a model without T5: zero embeddings (GEN3C's --disable_prompt_encoder
    # input); the negative prompt gets the same, so guidance differs by the buffers alone.
    zeros = torch.zeros(m.max_sequence_length, kwargs["text_embed_dim"])
    cache = PromptEmbeddingCache.from_embeddings({"": zeros, configs.DEFAULT_NEGATIVE_PROMPT: zeros})
    trains = False
    if m.tokenizer:
        vae = _read_tokenizer(m.tokenizer, "model.tokenizer")
        if vae.config.latents_mean is None:
            raise Gen3cInputError(f"tokenizer {quoted_path(m.tokenizer)} has no latents_mean/latents_std: use one written by `gen3c train`")
    elif (out / "tokenizer" / "config.json").is_file():
        vae = AutoencoderKLCosmos.from_pretrained(out / "tokenizer")  # a resumed run keeps its tokenizer
    elif config.tokenizer.init:
        vae, trains = _read_tokenizer(config.tokenizer.init, "tokenizer.init").float(), True
    else:
        from gen3c.training.tokenizer import build_tokenizer

        torch.manual_seed(config.run.seed + 1)
        try:
            vae, trains = build_tokenizer(config.tokenizer.config), True
        except (TypeError, ValueError, RuntimeError) as exc:
            raise Gen3cInputError(
                f"tokenizer.config = {config.tokenizer.config} does not make an AutoencoderKLCosmos ({first_line(exc)}): fix those arguments"
            ) from None
    if not trains and vae.dtype != _dtype(m.weights_dtype):
        vae = vae.to(_dtype(m.weights_dtype))
    return transformer, vae, scheduler, cache, trains, {}


def load_base_pipeline(checkpoint: str, dtype: torch.dtype):
    """The pipeline of ``model.checkpoint`` (the model to fine-tune, or the teacher), on the CPU."""
    from gen3c.errors import Gen3cModelError
    from gen3c.models.packaged import PACKAGED_MODELS, resolve_checkpoint
    from gen3c.pipelines.loading import load_pipeline
    from gen3c.training.lora import META_NAME as LORA_META

    folder = Path(checkpoint).expanduser()
    if checkpoint not in PACKAGED_MODELS and folder.is_dir() and not (folder / "model_index.json").is_file():
        # The loader's advice is generate's (--checkpoint_dir); say what the folder is instead.
        if (folder / "model" / "model_index.json").is_file():
            fix = f"it holds a training run: set model.checkpoint to its model, {path_to_copy(folder / 'model')}"
        elif (folder / LORA_META).is_file():
            fix = "it is a LoRA adapter (`gen3c train` OUT/lora), not a model: set model.checkpoint to the model it adapts"
        else:
            fix = (f"convert GEN3C's weights with `gen3c convert CHECKPOINTS_DIR OUT_DIR` and set model.checkpoint to OUT_DIR, "
                   f"or give a `gen3c train` OUT/model or a packaged model ({', '.join(PACKAGED_MODELS)})")  # fmt: skip
        raise Gen3cModelError(f"model.checkpoint {quoted_path(checkpoint)} is not a gen3c checkpoint folder (no model_index.json): {fix}")
    try:
        return load_pipeline(resolve_checkpoint(checkpoint), dtype=dtype)
    except Gen3cModelError as exc:
        if checkpoint in PACKAGED_MODELS or Path(checkpoint).expanduser().exists():
            raise  # the folder's own fault, which the message names
        # The loader's advice is generate's (--checkpoint_dir); a training run needs a folder or hub id.
        cause = first_line(exc.__context__ or exc, 240)
        raise Gen3cModelError(
            f"model.checkpoint {quoted_path(checkpoint)} is not a folder here and did not load as a hub id ({cause}): convert GEN3C's "
            "weights with `gen3c convert CHECKPOINTS_DIR OUT_DIR` and set model.checkpoint to OUT_DIR"
        ) from None


def check_clips_fit(config: Config, transformer, vae) -> None:
    """Refuse ``data.resolution`` and ``data.num_frames`` the DiT cannot take (past its position
    embeddings, or not whole latent patches), before any clip is made: the first step would end
    in a raw tensor-size error, after every clip was made and encoded."""
    d, t = config.data, transformer.config
    model = f"the model of model.checkpoint {quoted_path(config.model.checkpoint)}" if config.model.checkpoint else "the DiT of model.transformer"
    sc, tc = int(vae.config.spatial_compression_ratio), int(vae.config.temporal_compression_ratio)
    max_h, max_w = (int(v) * sc for v in t.max_size[1:])
    multiple = sc * int(t.patch_size[1])
    H, W = d.resolution
    if H > max_h or W > max_w:
        raise Gen3cInputError(f"data.resolution = {d.resolution} is larger than {model} takes ([{max_h}, {max_w}] at most): lower it")
    if H % multiple or W % multiple:
        raise Gen3cInputError(f"data.resolution = {d.resolution} must be multiples of {multiple} for {model}")
    max_latent = int(t.max_size[0]) // int(t.patch_size[0])
    if (d.num_frames - 1) // tc + 1 > max_latent:
        raise Gen3cInputError(
            f"data.num_frames = {d.num_frames} is more than {model} takes ({(max_latent - 1) * tc + 1} at most per clip): lower it"
        )


def _read_tokenizer(folder: str, key: str):
    from diffusers import AutoencoderKLCosmos

    if not Path(folder).is_dir():  # (diffusers would try the hub, then blame the connection)
        what = "is a file, not a folder" if Path(folder).exists() else "does not exist"
        raise Gen3cInputError(f"{key} {quoted_path(folder)} {what}: give an OUT/tokenizer of `gen3c train`, or \"\" to train one")
    try:
        return AutoencoderKLCosmos.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise Gen3cInputError(f"{key} {quoted_path(folder)} is not a tokenizer folder ({first_line(exc)}): give an OUT/tokenizer of `gen3c train`") from None


def _train_tokenizer(vae, config: Config, out: Path, accelerator, progress, dataset):
    """Train ``vae`` (fresh or ``tokenizer.init``) as ``[tokenizer]`` says; write ``OUT/tokenizer``.

    Returns ``(vae, summary)``."""
    from torch.utils.tensorboard import SummaryWriter

    from gen3c.training.data import StepSampler, clip_batches, held_out_clip
    from gen3c.training.tokenizer import reconstruction_psnr, set_latent_statistics, train_tokenizer

    sampler = StepSampler(len(dataset), config.tokenizer.batch_size, config.run.seed + 1, 0,
                          accelerator.process_index, accelerator.num_processes)  # fmt: skip
    workers = 0 if config.data.cache_clips else config.data.num_workers
    videos = (batch["video"] for batch in clip_batches(dataset, config.tokenizer.batch_size, sampler, workers))
    advance = progress("Tokenizer", config.tokenizer.steps) if progress is not None else None
    # Its own TensorBoard run: its step numbers are not the DiT's (which a resume purges past its step).
    writer = SummaryWriter(str(out / "logs" / "tokenizer")) if accelerator.is_main_process else None
    log = writer.add_scalar if writer is not None else None
    summary = train_tokenizer(vae, videos, config.tokenizer, accelerator, log, advance)
    # Up to 16 clips, each made now unless data.cache_clips: long enough to show.
    count = min(len(dataset), 16)
    advance = progress("Latent statistics", count) if progress is not None else None
    set_latent_statistics(vae, (dataset[i]["video"][None] for i in range(count)), advance)
    # The number that says whether the tokenizer is usable (a mean-colour one scores ~14 dB).
    summary["heldout_psnr"] = reconstruction_psnr(vae, held_out_clip(dataset)["video"][None])
    if writer is not None:
        writer.add_scalar("tokenizer/heldout_psnr", summary["heldout_psnr"], summary["steps"])
        writer.close()
    if accelerator.is_main_process:
        # Written whole or not at all: a resumed run reads OUT/tokenizer instead of training one.
        tmp = out / ".tokenizer.part"
        shutil.rmtree(tmp, ignore_errors=True)
        vae.save_pretrained(tmp)
        write_text_atomic(tmp / TOKENIZER_SUMMARY, json.dumps(summary, indent=2) + "\n")
        publish(tmp, out / "tokenizer")
    accelerator.wait_for_everyone()
    if vae.dtype != _dtype(config.model.weights_dtype):
        vae = vae.to(_dtype(config.model.weights_dtype))
    return vae, summary


def _encode_batch(vae, batch: dict[str, Tensor], sigma_data: float, device, chunk: int = 0) -> tuple[Tensor, Tensor]:
    """Clean latents (B, 16, T', h, w) and buffer latents (B, 64, T', h, w) of a batch of clips."""
    from gen3c.models.tokenizer import encode_video
    from gen3c.pipelines.gen3c import encode_buffers

    chunk_frames = chunk or None
    x0 = encode_video(vae, batch["video"].to(device), sigma_data=sigma_data, chunk_frames=chunk_frames)
    buffers = torch.cat(
        [
            encode_buffers(vae, batch["buffer_colors"][b], batch["buffer_masks"][b], sigma_data=sigma_data, chunk_frames=chunk_frames)
            for b in range(x0.shape[0])
        ]
    )
    return x0.float(), buffers.float()


@torch.no_grad()
def _encode_all(vae, dataset, sigma_data: float, device, chunk: int, progress: ProgressFactory | None) -> tuple[Tensor, Tensor]:
    """Latents of every clip of a cached dataset (the tokenizer is frozen from here on), on ``device``."""
    advance = progress("Latents", len(dataset)) if progress is not None else None
    xs, bs = [], []
    for start in range(0, len(dataset), 16):
        items = [dataset[i] for i in range(start, min(len(dataset), start + 16))]
        batch = {k: torch.stack([item[k] for item in items]) for k in items[0]}
        x0, buffers = _encode_batch(vae, batch, sigma_data, device, chunk)
        xs.append(x0)
        bs.append(buffers)
        if advance is not None:
            advance(len(items))
    return torch.cat(xs), torch.cat(bs)


def _micro_batches(
    config: Config, sampler, dataset, latents: tuple[Tensor, Tensor] | None, vae, sigma_data: float, device
) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless ``(x0, buffers)`` — clean latents (B, 16, T', h, w) and buffer latents
    (B, 64, T', h, w) — of the micro-batches of clips ``sampler`` picks (B = ``train.batch_size``):
    rows of ``latents`` when the clips were encoded once (``data.cache_clips``), else clips of
    ``dataset`` loaded by a DataLoader and encoded by the frozen ``vae`` on ``device``."""
    from gen3c.training.data import clip_batches

    B = config.train.batch_size
    if latents is not None:
        indices = iter(sampler)
        while True:
            idx = torch.tensor([next(indices) for _ in range(B)], device=latents[0].device)
            yield latents[0][idx], latents[1][idx]
    workers = config.data.num_workers
    for batch in clip_batches(dataset, B, sampler, workers, persistent_workers=workers > 0):
        with torch.no_grad():  # closed before the yield: the caller's step needs gradients
            encoded = _encode_batch(vae, batch, sigma_data, device, config.model.tokenizer_chunk_frames)
        yield encoded


def _optimizer_step(
    accelerator,
    model,
    optimizer,
    params: list[torch.nn.Parameter],
    config: Config,
    step: int,
    lr: float,
    batches: Iterator[tuple[Tensor, Tensor]],
    loss_of: Callable[[Tensor, Tensor, torch.Generator], Tensor],
    ema: WeightEma | None = None,
) -> float:
    """Optimiser step ``step`` (counted over the run) at learning rate ``lr``: for each of the
    ``train.gradient_accumulation_steps`` micro-batches ``(x0, buffers)`` of ``batches``, the
    scalar loss ``loss_of(x0, buffers, generator)`` — every random draw from ``generator``, seeded
    by (seed, micro-step, rank), and torch's global generator (dropout) seeded by them too
    (:func:`_seed_global_rng`) — backpropagated under ``accelerator``'s accumulation and
    autocast; gradients of ``params`` clipped to ``train.grad_clip`` (0: not clipped). ``ema``
    then averages the new weights in, unless fp16's grad scaler skipped the step (gradients not
    finite): the weights did not change, and an update would count them again.

    Returns:
        The loss, averaged over the micro-batches and the processes.

    Raises:
        Gen3cInputError: a loss that is not finite (on any process), before its backward, or a
        gradient norm that is not finite (without fp16's grad scaler), before the optimiser step:
        the weights stay those of the step before, and the run stops before a checkpoint holds NaNs.
    """
    accum, device = config.train.gradient_accumulation_steps, accelerator.device
    for group in optimizer.param_groups:
        group["lr"] = lr
    step_loss = 0.0
    for micro in range(accum):
        x0, buffers = next(batches)
        generator = _step_generator(config.run.seed, step * accum + micro, accelerator.process_index, device)
        _seed_global_rng(config.run.seed, step * accum + micro, accelerator.process_index)
        with accelerator.accumulate(model), accelerator.autocast():
            loss = loss_of(x0, buffers, generator)
            reduced = float(accelerator.reduce(loss.detach().float(), "mean"))  # every process sees the same
            if not math.isfinite(reduced):
                raise _diverged(step, f"the loss is {reduced}")
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                # The norm over every process (grad_clip 0: an infinite bound, which leaves finite gradients as they are).
                norm = float(accelerator.clip_grad_norm_(params, config.train.grad_clip or math.inf))
                # A finite loss can still give an infinite gradient; fp16's grad scaler skips such steps itself.
                # Decided for every process at once (a norm of parameter shards may differ), so none waits on one that stopped.
                diverged = torch.tensor(0.0 if math.isfinite(norm) else 1.0, device=device)
                if accelerator.scaler is None and float(accelerator.reduce(diverged, "max")) > 0:
                    raise _diverged(step, "the gradient norm is not finite")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        step_loss += reduced / accum
    if ema is not None and not optimizer.step_was_skipped:
        ema.update(params)
    return step_loss


def prompt_embedding(prompt_cache, prompt: str, length: int) -> Tensor:
    """(1, length, D) cached embedding of ``prompt``, cut or zero-padded to ``length`` tokens.

    GEN3C's T5 embeddings are zero past the prompt's own tokens, so this is what T5 would give at
    ``length`` — unless cutting would drop a token that is not zero, which is refused.
    """
    text = prompt_cache.lookup(prompt)
    if text is None:
        raise Gen3cInputError(f"the checkpoint's prompt cache lacks {prompt[:40]!r}: convert it again with `gen3c convert`")
    text = text.float()
    cached = text.shape[1]
    if length < cached:
        if text[:, length:].abs().amax() > 0:
            used = int(text.abs().amax(dim=-1)[0].nonzero().max()) + 1
            raise Gen3cInputError(
                f"model.max_sequence_length = {length} cuts the cached prompt {prompt[:40]!r}, which has {used} tokens: "
                f"set it to at least {used} (the checkpoint caches {cached})"
            )
        text = text[:, :length]
    elif length > cached:
        text = torch.cat([text, text.new_zeros(1, length - cached, text.shape[-1])], dim=1)
    return text


def check_checkpoint(checkpoint: Path) -> None:
    """Refuse a ``--resume`` folder that is not a `gen3c train` checkpoint, or whose step counter
    files (``custom_checkpoint_*.pkl``) hold more than plain values: accelerate reads those with
    full unpickling, which can run code from the file, so each is read first with
    ``torch.load(weights_only=True)``, which accepts plain values only."""
    if not checkpoint.exists():  # (a mistyped path: not "no custom_checkpoint_0.pkl" in a folder that is not there)
        raise Gen3cInputError(f"--resume {quoted_path(checkpoint)} does not exist: pass OUT/checkpoints/step_… or 'auto'")
    if not (checkpoint / "custom_checkpoint_0.pkl").is_file():
        raise Gen3cInputError(
            f"--resume {quoted_path(checkpoint)} is not a checkpoint of `gen3c train` (no custom_checkpoint_0.pkl): pass OUT/checkpoints/step_… or 'auto'"
        )
    for path in sorted(checkpoint.glob("custom_checkpoint_*.pkl")):
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # an UnpicklingError for anything but plain values, or a damaged file
            raise Gen3cInputError(
                f"--resume {quoted_path(checkpoint)}: {path.name} is not the plain step counter `gen3c train` writes "
                f"({first_line(exc, 80)}); it is never unpickled: resume from a checkpoint you made"
            ) from None


def load_checkpoint(accelerator, checkpoint: Path) -> None:
    """Restore an ``accelerator.save_state`` folder of `gen3c train` after :func:`check_checkpoint`."""
    check_checkpoint(checkpoint)
    try:
        accelerator.load_state(str(checkpoint))
    except Gen3cInputError:  # a load hook's own refusal (_make_ema's), which says what to do
        raise
    except (OSError, KeyError, RuntimeError, ValueError) as exc:  # a file missing or damaged
        raise Gen3cInputError(
            f"--resume: checkpoint {quoted_path(checkpoint)} is incomplete or damaged ({first_line(exc, 120)}): "
            "pass an earlier one (--resume OUT/checkpoints/step_…) or delete it"
        ) from None


def checkpoints(out: Path) -> list[Path]:
    """The ``step_N`` folders of ``OUT/checkpoints``, oldest first by step number (by name,
    ``step_10000000`` came before ``step_9999999``)."""
    found = [p for p in (out / "checkpoints").glob("step_*") if p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def _latest_checkpoint(out: Path) -> Path | None:
    found = checkpoints(out)
    return found[-1] if found else None


def _resume(
    accelerator, out: Path, resume: str | None, state, echo: Callable[[str], None] | None = None,
    outputs: Callable[[], tuple[str, ...]] | None = None,
) -> int:
    """Restore the checkpoint ``resume`` names (a folder, "auto": the newest in ``out`` if any,
    None: none) into the prepared objects and the registered ``state``, and drop what ``out``
    holds past it: the lines of ``losses.jsonl``, and (moved aside, said on ``echo``) later
    checkpoints, samples of later steps and, on a rewind, the exported ``outputs()`` (paths in
    ``out``, asked once the state is restored; :data:`EXPORTS` without it; see
    :func:`set_aside_superseded`). Returns the step the run goes on from (``state.step``)."""
    checkpoint = _latest_checkpoint(out) if resume == "auto" else (Path(resume) if resume else None)
    if checkpoint is not None:
        load_checkpoint(accelerator, checkpoint)
    if accelerator.is_main_process:
        if checkpoint is not None and checkpoint.parent.name == "superseded" and checkpoint_run(checkpoint).resolve() == out.resolve():
            checkpoint = _restore_superseded(out, checkpoint)
        set_aside_superseded(out, state.step, echo, outputs() if outputs is not None else EXPORTS)
        if checkpoint is not None and (checkpoint / "losses.jsonl").is_file():
            write_text_atomic(out / "losses.jsonl", (checkpoint / "losses.jsonl").read_text())  # its own history
        else:  # a checkpoint of an older version, or none
            trim_losses(out, state.step)
    accelerator.wait_for_everyone()
    return state.step


def checkpoint_run(checkpoint: Path) -> Path:
    """The run folder of a checkpoint: ``OUT`` of ``OUT/checkpoints/step_N`` and of
    ``OUT/checkpoints/superseded/step_N`` (set aside by a rewind)."""
    parent = checkpoint.parent
    return parent.parent.parent if parent.name == "superseded" and parent.parent.name == "checkpoints" else parent.parent


def _restore_superseded(out: Path, checkpoint: Path) -> Path:
    """Move ``OUT/checkpoints/superseded/step_N``, which a run resumes from, back among the run's
    checkpoints (it is the run's history again; the rest of ``superseded/`` stays); the run's own
    ``step_N`` of the history it leaves, if any, takes its place there (under the name it had:
    ``step_N.earlierK`` of a second rewind, :func:`_earlier_name`). Returns its new path."""
    target = out / "checkpoints" / checkpoint.name.split(".")[0]
    if target.exists():
        # Three renames; a run stopped between them leaves the swap folder, which the next one
        # puts back where it came from (undo_interrupted_swaps).
        swap = checkpoint.with_name(f".{checkpoint.name}.swap")
        checkpoint.rename(swap)
        target.rename(checkpoint)
        swap.rename(target)
    else:
        checkpoint.rename(target)
    return target


def undo_interrupted_swaps(out: Path) -> list[Path]:
    """Put back the checkpoints of a :func:`_restore_superseded` that was stopped midway: the
    superseded ``step_N`` it was moving, held in ``superseded/.step_N.swap``, returns to
    ``superseded/step_N``, and the run's own ``step_N``, if already moved aside, back among the
    checkpoints. That is the folder as it was before the stopped resume (whose ``losses.jsonl``
    and later checkpoints it had not yet touched), from which the same ``--resume`` works again;
    nothing is deleted. Safe on every process of a launch at once (a rename another process made
    first fails here and is skipped). Returns the superseded checkpoints put back."""
    aside = out / "checkpoints" / "superseded"
    restored = []
    for swap in sorted(aside.glob(".step_*.swap")) if aside.is_dir() else []:
        name = swap.name[1:-len(".swap")]
        own, superseded = out / "checkpoints" / name.split(".")[0], aside / name
        try:
            if not own.exists() and superseded.exists():  # the run's own step_N was moved aside: back
                superseded.rename(own)
            if not superseded.exists():
                swap.rename(superseded)
                restored.append(superseded)
        except OSError:  # another process did it first
            continue
    return restored


#: What a run exports at its end, from the step of its last checkpoint.
EXPORTS = ("model", "lora", "MODEL_CARD.md")


def set_aside_superseded(
    out: Path, step: int, echo: Callable[[str], None] | None = None, outputs: tuple[str, ...] = EXPORTS
) -> list[Path]:
    """Move what belongs to steps past ``step`` to ``OUT/checkpoints/superseded/``: a run resumed
    from an earlier checkpoint does those steps again, so the later checkpoints, the samples of
    later steps (``samples/step_*.mp4``, to ``superseded/samples/``) and — when there were later
    checkpoints: a rewind — ``outputs`` (the model and card exported from the last one) belong to
    a history ``losses.jsonl`` no longer holds; ``--resume auto`` (the newest) would go back to
    it, and an invocation that stops early would leave them beside the new history. Moved, not
    deleted: they are the user's, who may want one back. Returns their new paths."""

    def later_step(path: Path) -> bool:
        number = path.name.split(".")[0][5:]
        return number.isdigit() and int(number) > step

    later = [p for p in checkpoints(out) if later_step(p)]
    samples = sorted(p for p in (out / "samples").glob("step_*.mp4") if later_step(p))
    exported = [out / name for name in outputs if (out / name).exists()] if later else []
    if not (later or samples or exported):
        return []
    aside = out / "checkpoints" / "superseded"
    moved = []
    # The later checkpoints go last: while one is left, the same --resume sees the rewind and
    # moves the rest (a run stopped after moving them left the exports beside the new history);
    # the card before the model it describes, so none is left describing a model that is gone.
    for path in [*sorted(exported, key=lambda p: p.name != "MODEL_CARD.md"), *samples, *later]:
        target = aside / path.relative_to(out / "checkpoints" if path in later else out)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # set aside by an earlier rewind: kept too, under the next free name
            target.replace(_earlier_name(target))
        moved.append(path.replace(target))
    if echo is not None:
        what = [*(p.name for p in later), f"{len(samples)} sample video(s)" if samples else "", *(p.name for p in exported)]
        echo(f"--resume from step {step}: what later steps made ({', '.join(w for w in what if w)}) is moved to "
             f"{quoted_path(aside)}, since those steps run again (delete it to free the space)")  # fmt: skip
    return moved


def _earlier_name(path: Path) -> Path:
    """The first free ``NAME.earlierK`` (``NAME.earlierK.SUFFIX`` for a file) beside ``path``: where
    something a later rewind sets aside under ``path``'s name keeps what an earlier one put there."""
    stem, suffix = (path.stem, path.suffix) if path.is_file() else (path.name, "")
    k = 1
    while (path.parent / f"{stem}.earlier{k}{suffix}").exists():
        k += 1
    return path.parent / f"{stem}.earlier{k}{suffix}"


#: Settings a resumed run may change: budgets, logging, worker processes (nothing a step computes).
RESUMABLE_CHANGES = {
    ("run", "max_steps"), ("run", "max_minutes"), ("tokenizer", "max_minutes"), ("data", "num_workers"),
    ("distill", "stage_max_steps"),  # (but not a finished stage's entry: distill_loop.check_finished_budgets)
}
#: Settings a resumed run may change to recover a run that diverged (:func:`_diverged`'s advice),
#: recorded (:func:`record_changes`) and stated in the model card. The LR is a function of the
#: step counter and these (:func:`lr_factor`; no scheduler state is saved), so the resumed steps
#: get the LR an uninterrupted run of the new config would have had at them, the warm-up counted
#: from step 0 as always; train.lr_schedule with them, as "cosine" is the usual way to lower the
#: LR for the rest of a run (it changes the LR from the resumed step as run.max_steps does).
RECOVERY_CHANGES = (("train", "lr"), ("train", "grad_clip"), ("train", "warmup_steps"), ("train", "lr_schedule"))


def check_nothing_replaced(out: Path) -> None:
    """Refuse a run into a folder ``out`` holding no training run whose ``config.json`` or exports
    (:data:`EXPORTS`: ``model/``, ``lora/``, ``MODEL_CARD.md``) a run would replace, but a gen3c
    run's own: ``--out .`` in a project folder replaced its config.json and deleted all its
    model/ held. A run stopped before its first checkpoint left its config.json: the same command
    goes on there."""
    record = recorded_config(out)
    if isinstance(record.get("run"), dict) and isinstance(record.get("train"), dict):  # a gen3c run's
        return
    taken = [name + ("/" if (out / name).is_dir() else "") for name in ("config.json", *EXPORTS) if os.path.lexists(out / name)]
    if taken:
        raise Gen3cInputError(
            f"--out {quoted_path(out)} holds {', '.join(taken)}, which no gen3c training run wrote and a run would replace: "
            "choose a new or empty --out"
        )


def recorded_config(run: Path) -> dict:
    """The config a run recorded (``RUN/config.json``) as nested dicts; {} without a readable one."""
    try:
        before = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return before if isinstance(before, dict) else {}


#: Settings that name folders: a run started before config files' relative folders were taken
#: relative to the file's folder recorded them relative to the working directory.
PATH_KEYS = {("data", "paths"), ("model", "checkpoint"), ("model", "tokenizer"), ("tokenizer", "init")}


def same_folders(recorded, value) -> bool:
    """Whether ``recorded`` (a folder setting of a run's ``config.json``, or a list of them) and
    ``value`` (the same setting now) name the same folders: a relative one is resolved against the
    working directory, as runs that recorded relative folders read them; ``~`` is expanded, links
    followed. Names that are no folders (a packaged model, a hub id) must be equal."""
    if isinstance(recorded, list) and isinstance(value, list):
        return len(recorded) == len(value) and all(same_folders(a, b) for a, b in zip(recorded, value, strict=True))
    if not isinstance(recorded, str) or not isinstance(value, str) or not recorded or not value:
        return recorded == value
    a, b = Path(recorded).expanduser().resolve(), Path(value).expanduser().resolve()
    return recorded == value or (a == b and a.exists())


def check_run_folder(config: Config, out: Path, resume: str | None) -> None:
    """Refuse, before anything is written, a fresh run into a folder that holds another run's
    checkpoints or losses (they would mix: the model card would average both runs' losses and
    ``--resume auto`` would pick the newest checkpoint of either), and a resumed run whose config
    differs from the run's own ``config.json`` in anything but :data:`RESUMABLE_CHANGES`,
    :data:`RECOVERY_CHANGES` and ``[log]``."""
    # A tokenizer a run trained counts as its progress: a resumed run reads it instead of training one.
    trained_tokenizer = (out / "tokenizer").exists()
    losses = out / "losses.jsonl"
    holds_run = _latest_checkpoint(out) is not None or (losses.is_file() and losses.stat().st_size > 0) or trained_tokenizer
    if not holds_run:
        check_nothing_replaced(out)
    if resume is None:
        if holds_run:
            raise Gen3cInputError(
                f"--out {quoted_path(out)} already holds a training run (checkpoints/, losses.jsonl, tokenizer/): "
                "continue it with --resume auto, or choose a new --out"
            )
        return
    run = out if resume == "auto" else checkpoint_run(Path(resume))
    if holds_run and run.resolve() != out.resolve():  # the two runs' losses and checkpoints would mix
        raise Gen3cInputError(
            f"--out {quoted_path(out)} already holds a training run, not the one of --resume {quoted_path(resume)}: "
            f"resume {path_to_copy(run)} with --out {path_to_copy(run)}, or pass a new --out to continue it there"
        )
    stored = run / "config.json"
    if (resume == "auto" and _latest_checkpoint(out) is None and not trained_tokenizer) or not stored.is_file():
        return
    before = recorded_config(run)
    now = config.to_dict()
    for section, table in now.items():
        if section == "log":
            continue
        for key, value in table.items():
            old = before.get(section, {}).get(key, value)
            if (section, key) in PATH_KEYS and same_folders(old, value):
                continue
            if (section, key) not in RESUMABLE_CHANGES and (section, key) not in RECOVERY_CHANGES and old != value:
                raise Gen3cInputError(
                    f"--resume: {section}.{key} = {value!r} differs from the run's {old!r} ({quoted_path(stored)}): "
                    "resume with the run's own config, or start a new --out"
                )
    _check_warmup_change(config, before.get("train", {}).get("warmup_steps", config.train.warmup_steps), out, resume)


def _check_warmup_change(config: Config, old: int, out: Path, resume: str) -> None:
    """Refuse a changed ``train.warmup_steps`` that would change no LR: the warm-up counts from
    step 0, so with the constant schedule one the run is past (before and after) does nothing.
    (A distillation stage's warm-up counts from the stage's start: a later stage uses it.)"""
    new = config.train.warmup_steps
    if new == old or config.train.mode == "distill" or config.train.lr_schedule != "constant":
        return
    checkpoint = _latest_checkpoint(out) if resume == "auto" else Path(resume)
    step = resumed_step(out, str(checkpoint)) if checkpoint is not None else 0
    if max(old, new) <= step:
        raise Gen3cInputError(
            f"--resume: train.warmup_steps = {new} would change no LR: the warm-up counts from step 0 and the run goes on from "
            f"step {step + 1}: keep the run's {old}, or lower train.lr for the steps from here"
        )


def trim_losses(out: Path, step: int) -> None:
    """Drop the lines of ``losses.jsonl`` past ``step`` (those of steps an interrupted run did after
    its last checkpoint: the resumed run does them again)."""
    from gen3c.io.atomic import write_text_atomic

    path = out / "losses.jsonl"
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if _loss_line_step(line) <= step]
    if len(kept) != len(lines):
        write_text_atomic(path, "".join(line + "\n" for line in kept))


def _loss_line_step(line: str) -> float:
    """The step of a ``losses.jsonl`` line; a line cut short (a process killed, or a disk full,
    while writing it) is past every checkpoint: infinity."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


def train(
    config: Config,
    out: str | os.PathLike,
    *,
    resume: str | None = None,
    stop_after: int | None = None,
    progress: ProgressFactory | None = None,
    echo: Callable[[str], None] | None = None,
) -> TrainResult:
    """Run ``config`` into the folder ``out`` (see the module docstring).

    Args:
        resume: a checkpoint folder (``out/checkpoints/step_…``) or "auto" (the newest in ``out``, if any).
        stop_after: end this invocation after this many steps (checkpointed), e.g. before a job's time limit.
        progress: progress-bar factory; echo: prints one line (losses).
    """
    # Refused before the output folder, the clips and the model are made.
    if stop_after is not None and (not is_whole_number(stop_after) or stop_after < 1):  # (True was 1 step, 2.5 three)
        raise Gen3cInputError(f"--stop_after {shown_value(stop_after)} must be 1 or more, a whole number (steps to run in this invocation)")  # fmt: skip
    stop_after = None if stop_after is None else int(stop_after)
    try:  # (from the first check on: starting CUDA takes seconds)
        check_devices(config)
        check_model_checkpoint(config.model.checkpoint)
        check_writable_place(out, "training output folder")
        if config.train.mode == "distill":
            from gen3c.training.distill_loop import distill as run
        else:
            run = _train
        with contextlib.ExitStack() as held:  # the output folder's lock, however the run ends
            # Every write to OUT (a swap's repair, the set-aside moves, losses.jsonl, config.json) and
            # the checks of what it holds come after the lock: a second invocation changes nothing.
            hold_run_folder(Path(out), held)
            if resume is not None and not is_main_process():
                wait_for_swaps(Path(out))  # the main process puts them back and says so
            elif resume is not None:  # before anything looks for the checkpoint to resume
                for back in undo_interrupted_swaps(Path(out)):
                    if echo is not None:
                        echo(f"{quoted_path(back)} is back where it was: a stopped --resume left it halfway through its move among the checkpoints")
            if resume not in (None, "auto"):
                check_checkpoint(Path(resume))
            check_run_folder(config, Path(out), resume)
            if resume == "auto" and _latest_checkpoint(Path(out)) is None and echo is not None:
                kept = " (with the tokenizer/ it trained)" if (Path(out) / "tokenizer").exists() else ""
                echo(f"--resume auto: {quoted_path(out)} holds no checkpoint yet: training starts at step 0{kept}")
            with warnings.catch_warnings():  # (said once by note_workers, naming the setting; each run's note_settings)
                warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)
                return run(config, out, resume=resume, stop_after=stop_after, progress=progress, echo=echo)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (gen3c.errors.Terminated): say what is kept
        while True:  # on exc itself: a Ctrl-C after this finds it as its __context__ (the CLI says it)
            try:
                exc.args = (stopped_message(config, Path(out)),)
                break
            except KeyboardInterrupt:  # pressed again while it was made: made again
                continue
        raise exc from None
    except Gen3cInputError as exc:
        from gen3c.training.data import raised_in_worker

        # A clip's refusal in a DataLoader worker (data.num_workers > 0): its own line, not torch's
        # "Caught Gen3cInputError in DataLoader worker process 0" and the worker's traceback.
        original = raised_in_worker(exc)
        if original is None:
            raise
        raise original from None
    except Exception as exc:
        if _shared_memory_full(exc):
            raise Gen3cInputError(
                f"the data loader's workers ran out of shared memory (/dev/shm) passing clips to the run ({_shared_memory_words(exc)}): "
                "set data.num_workers lower (0 passes none), or give the machine or container more (docker run --shm-size 8g); "
                f"the run {stopped_message(config, Path(out))}"
            ) from None
        if not is_disk_full(exc):
            raise
        # A checkpoint, export or log write ran out of space (safetensors' writer says so in a
        # SafetensorError, no OSError): each is written under a temporary name, so what is kept is
        # as after a Ctrl-C; the next save removes the partial folder.
        where = f"writing {quoted_path(exc.filename)}" if isinstance(exc, OSError) and exc.filename else f"writing into {quoted_path(out)}"
        raise Gen3cInputError(
            f"the disk filled up while the run was {where} ({disk_full_reason(exc)}): free some space there; the run {stopped_message(config, Path(out))}"
        ) from None


def _shared_memory_full(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's word that the DataLoader's workers found shared memory full: a
    clip's tensors written into ``/dev/shm`` ("unable to write to file </torch_…>: No space left on
    device (28)", in a worker, as torch's copy "Caught RuntimeError in DataLoader worker …"), or a
    worker killed by SIGBUS there ("… out of shared memory"). Docker's default /dev/shm is 64 MB."""
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        ("unable to write to file </torch_" in text and f"({errno.ENOSPC})" in text) or "out of shared memory" in text
    )


def _shared_memory_words(exc: BaseException) -> str:
    text = str(exc)
    return "No space left on device" if f"({errno.ENOSPC})" in text and "</torch_" in text else "a worker was killed by SIGBUS"


def hold_run_folder(out: Path, held: contextlib.ExitStack) -> None:
    """On the main process: make the output folder ``out`` (if missing) and take its lock
    (``flock``) in ``held``, before anything in it is read or written. A second run into the
    folder while this one goes (a ``--resume`` of it, e.g. a job started again before the first
    ended) is refused in one line, instead of the two interleaving their checkpoints, losses and
    config.json or repairing a checkpoint swap the first is making. A folder made here and left
    empty (the run refused before it wrote) is removed again, under the lock. Where the file
    system cannot lock, the run goes on unlocked. Other processes of a launch take no lock:
    they write nothing into ``out`` before the main process's accelerator joins them."""
    if not is_main_process():
        return
    made = [p for p in (out, *out.parents) if not p.exists()]  # deepest first
    ensure_writable_dir(out, "training output folder")
    busy = Gen3cInputError(
        f"--out {quoted_path(out)} is held by another `gen3c train` or `gen3c eval` still going (a --resume of a run not yet ended?): "
        "wait for it to end, or choose another --out"
    )
    held.enter_context(try_flock(out, held=busy))

    @held.callback
    def _drop_if_empty() -> None:  # (runs before the lock is let go)
        for folder in made:
            with contextlib.suppress(OSError):  # not empty: the run wrote there
                folder.rmdir()


def wait_for_swaps(out: Path, seconds: float = 60.0) -> None:
    """Off the main process: wait (up to ``seconds``) until the main process, which holds the
    folder's lock, has put back the checkpoints of a stopped swap (:func:`undo_interrupted_swaps`),
    so this process's checks see them where they belong."""
    aside = out / "checkpoints" / "superseded"
    deadline = time.monotonic() + seconds
    while aside.is_dir() and any(aside.glob(".step_*.swap")) and time.monotonic() < deadline:
        time.sleep(0.2)


def check_model_checkpoint(value: str) -> None:
    """Refuse a ``model.checkpoint`` that names no packaged model, no existing folder and no hub
    id (``owner/name``), before any clip is made."""
    from gen3c.models.packaged import PACKAGED_MODELS

    if not value or value in PACKAGED_MODELS or Path(value).expanduser().exists():
        return
    if value.count("/") == 1 and not value.startswith((".", "/", "~")):
        return  # a hub id: the loader fetches it or says why not
    raise Gen3cInputError(
        f"model.checkpoint {quoted_path(value)} does not exist: give a checkpoint folder (`gen3c convert` output or a `gen3c train` "
        f"OUT/model), a hub id (owner/name) or a packaged model ({', '.join(PACKAGED_MODELS)})"
    )


def stopped_message(config: Config, out: Path) -> str:
    """What an interrupted run keeps and how to continue it (the CLI prints it on Ctrl-C): the
    newest checkpoint, else a trained tokenizer, else nothing to resume (a from-scratch run's
    tokenizer stage writes no checkpoint); the way on is the one :func:`check_run_folder` takes
    (a folder holding the run's losses wants ``--resume auto``)."""
    latest = _latest_checkpoint(out) if out.is_dir() else None
    if latest is not None:
        return f"stopped; the newest checkpoint is {quoted_path(latest)}: continue with --resume auto (the steps after it run again)"
    if (out / "tokenizer").exists():
        return f"stopped before the first checkpoint; {quoted_path(out / 'tokenizer')} is kept: --resume auto trains the DiT from step 0 with it"
    if not config.model.checkpoint and not config.model.tokenizer:  # from scratch: the tokenizer stage comes first
        return ("stopped before the tokenizer stage's end (it writes no checkpoint; tokenizer.max_minutes bounds it): "
                "nothing to resume; the same command starts it again from step 0")  # fmt: skip
    every = config.log.checkpoint_every
    end, run = ("each stage's end", "stage") if config.train.mode == "distill" else ("the end", "run")
    when = (f"one is written every {every} steps" if every
            else f"log.checkpoint_every = 0 writes one at {end} only: set it to make a long {run} resumable")  # fmt: skip
    students = sorted(str(p.parent.parent) for p in (out / "stages").glob("*/transformer/config.json")) if out.is_dir() else []
    kept = f"; the finished stages' students are kept in {', '.join(map(repr, students))}" if students else ""
    losses = out / "losses.jsonl"
    again = "--resume auto starts the run again" if losses.is_file() and losses.stat().st_size else "the same command starts it again"
    return f"stopped before the first checkpoint ({when}){kept}: nothing to resume; {again} from step 0"


def _train(
    config: Config,
    out: str | os.PathLike,
    *,
    resume: str | None,
    stop_after: int | None,
    progress: ProgressFactory | None,
    echo: Callable[[str], None] | None,
) -> TrainResult:
    """:func:`train` of ``train.mode`` full or lora, after its checks, with the output folder locked."""
    from gen3c.training import lora as lora_mod
    from gen3c.training.data import CachedClips, StepSampler, check_batch_fits, held_out_clip, make_dataset
    from gen3c.training.objective import gen3c_loss

    # 1. Clips and components: read (and refused) before the output folder is written to, and
    # before the slow part (every clip made once, with data.cache_clips)
    dataset = make_dataset(config.data)
    check_batch_fits(config, len(dataset))  # before a checkpoint loads
    transformer, vae, scheduler, prompt_cache, tokenizer_trains, kept_meta = _components(config, Path(out))
    check_clips_fit(config, transformer, vae)
    if tokenizer_trains:  # known once the tokenizer is found (a resumed run keeps its own); nothing written yet
        check_batch_fits(config, len(dataset), tokenizer_trains=True)
    text = prompt_embedding(prompt_cache, "", config.model.max_sequence_length)
    lora_mode = config.train.mode == "lora"
    if lora_mode:
        lora_mod.target_modules(transformer, config.lora.targets)
    note_settings(config, tokenizer_trains)  # after the refusals: a run refused says only why
    out, accelerator, writer, log = _start_run(config, out, resume, echo)
    main = accelerator.is_main_process
    if config.data.cache_clips:
        dataset = CachedClips(dataset, config.data.num_workers, progress("Clips", len(dataset)) if progress is not None else None)
    tok_summary = None
    if tokenizer_trains:
        vae, tok_summary = _train_tokenizer(vae, config, out, accelerator, progress, dataset)
    elif not config.model.checkpoint and not config.model.tokenizer and (out / "tokenizer" / TOKENIZER_SUMMARY).is_file():
        tok_summary = json.loads((out / "tokenizer" / TOKENIZER_SUMMARY).read_text())  # trained by an earlier invocation
    device = accelerator.device
    vae.to(device).eval().requires_grad_(False)
    sigma_data = scheduler.config.sigma_data

    # 2. What trains
    if lora_mode:
        torch.manual_seed(config.run.seed)  # peft draws the adapter's A matrices from torch's global generator
        lora_mod.add_lora(transformer, config.lora.rank, config.lora.alpha, config.lora.targets, config.lora.dropout)
    else:
        transformer.requires_grad_(True)
    if config.train.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()
    params = [p for p in transformer.parameters() if p.requires_grad]
    if lora_mode:
        for p in params:  # adapters train in float32 over frozen (possibly bf16) base weights
            p.data = p.data.float()
    optimizer = torch.optim.AdamW(params, lr=config.train.lr, weight_decay=config.train.weight_decay)
    # The LR is set from the step counter at every step (no LR scheduler object): accelerate's
    # prepared scheduler advances once per process per step, so on N processes the warm-up and
    # the cosine would run N times too fast.
    model, optimizer = accelerator.prepare(transformer, optimizer)
    state = _StepState()
    accelerator.register_for_checkpointing(state)  # custom_checkpoint_0.pkl (resumed_step reads it)
    ema = _make_ema(accelerator, config, params)
    if lora_mode:
        _register_lora_hooks(accelerator, lora_mod)

    # 3. Resume
    start_step = _resume(accelerator, out, resume, state, echo)

    # 4. Data
    accum = config.train.gradient_accumulation_steps
    sampler = StepSampler(
        len(dataset), config.train.batch_size, config.run.seed, start_step * accum, accelerator.process_index, accelerator.num_processes
    )
    # With the clips in memory, their latents are computed once: steps then run the DiT only.
    latents = _encode_all(vae, dataset, sigma_data, device, config.model.tokenizer_chunk_frames, progress) if config.data.cache_clips else None
    batches = _micro_batches(config, sampler, dataset, latents, vae, sigma_data, device)
    sample_clip = held_out_clip(dataset) if main and config.log.sample_every >= 0 else None
    # A fine-tuned student is sampled with the steps it was distilled for (unless log.sample_steps says).
    sample_steps = config.log.sample_steps or int(kept_meta.get("num_steps", PREVIEW_STEPS))

    # 5. Steps
    end_step = config.run.max_steps if stop_after is None else min(config.run.max_steps, start_step + stop_after)
    result = _run_result(accelerator, out, start_step, tokenizer=tok_summary)
    if end_step < start_step and echo is not None and main:  # (a resume may lower run.max_steps)
        echo(f"step {start_step} reached, run.max_steps = {config.run.max_steps}: nothing left to train, the run ends")
    advance = progress("Training", max(0, end_step - start_step)) if progress is not None and main else None
    losses_file = (out / "losses.jsonl").open("a") if main else None
    # The time budget is the run's, as max_steps: the count goes on from the checkpoint's (a resumed
    # run does not get a fresh budget); it counts the steps' time (samples included), not loading,
    # clip making or checkpoint writing.
    budget = 60 * config.run.max_minutes
    spent, started = state.seconds, time.monotonic()
    out_of_time = bool(budget) and spent >= budget
    last_echo = -math.inf
    step = start_step
    sampled = None  # the step last sampled in this invocation
    from gen3c.training.tokenizer import out_of_time_everywhere

    def loss_of(x0: Tensor, buffers: Tensor, generator: torch.Generator) -> Tensor:
        return gen3c_loss(model, scheduler, x0, buffers, text.to(device).expand(x0.shape[0], -1, -1), config.train, generator)[0]

    while step < end_step and not out_of_time:
        lr = config.train.lr * lr_factor(config, step, config.run.max_steps)
        step_loss = _optimizer_step(accelerator, model, optimizer, params, config, step, lr, batches, loss_of, ema)
        step += 1
        state.step = step
        result.losses.append(step_loss)
        if losses_file is not None:
            losses_file.write(json.dumps({"step": step, "loss": step_loss, "lr": lr}) + "\n")
            losses_file.flush()
        if step % config.log.every == 0:
            log("train/loss", step_loss, step)
            log("train/lr", lr, step)
            if echo is not None and main and time.monotonic() - last_echo >= 10:  # a line every 10 s at most
                last_echo = time.monotonic()
                echo(f"step {step}: loss {step_loss:.4f}")
        if sample_clip is not None and config.log.sample_every > 0 and step % config.log.sample_every == 0:
            with ema_weights(ema, params):  # a preview of what the run exports
                _log_sample(accelerator.unwrap_model(model), vae, prompt_cache, sample_clip, config, out, step, writer, sample_steps, scheduler=scheduler)
            sampled = step
        spent = state.seconds + time.monotonic() - started
        out_of_time = bool(budget) and out_of_time_everywhere(accelerator, spent >= budget)
        if config.log.checkpoint_every and step % config.log.checkpoint_every == 0 and step < end_step and not out_of_time:
            state.seconds = spent
            result.checkpoint = _save_checkpoint(accelerator, out, step, config.log.keep_checkpoints)
            started = time.monotonic()
        if advance is not None:
            advance(1)
    state.seconds = result.seconds = spent
    result.steps = step
    if out_of_time and echo is not None and main:
        echo(f"the time budget (run.max_minutes = {config.run.max_minutes:g}) is spent after step {step} ({spent / 60:.2f} min of training): the run ends")
    if losses_file is not None:
        losses_file.close()

    # 6. Outputs
    if step > start_step or result.checkpoint is None:
        result.checkpoint = _save_checkpoint(accelerator, out, step, config.log.keep_checkpoints)
    with ema_weights(ema, params):  # the exported model and its sample: the EMA (the checkpoint keeps both)
        unwrapped = _full_model(accelerator, model) if not lora_mode else accelerator.unwrap_model(model)
        if main:
            finished = step >= config.run.max_steps or out_of_time
            if finished or stop_after is None:
                # A fine-tuned distilled student samples as the student did (its steps, no guidance), a
                # fine-tuned small model runs in float32 as it did; a LoRA's base keeps them in its own gen3c_model.json.
                drop_model_card(out)
                result.exported = _export(unwrapped, vae, prompt_cache, config, out, lora_mode, extra_meta=kept_meta, scheduler=scheduler)
                write_model_card(out, config, result, _all_losses(out))
            # After the export, so nothing the sample needs (e.g. a video encoder) can cost the trained model.
            if sample_clip is not None and sampled != step:
                _log_sample(unwrapped, vae, prompt_cache, sample_clip, config, out, step, writer, sample_steps, scheduler=scheduler)
    _end_run(accelerator, writer)
    return result


def _make_ema(
    accelerator, config: Config, params: list[torch.nn.Parameter], equal_to_weights: Callable[[Path], bool] | None = None
) -> WeightEma | None:
    """The EMA of the trained ``params`` (``train.ema_decay``; None at 0), started from their
    weights now and saved in each checkpoint as safetensors, as its model weights (``ema.safetensors``).

    ``equal_to_weights(folder)``: whether a checkpoint folder is one where the average equals the
    weights (a distillation stage's start, which restarts it): it holds no copy of it, and a load
    restarts it from the weights (restored by a hook registered before this one)."""
    if not config.train.ema_decay:
        return None
    ema = WeightEma(params, config.train.ema_decay)

    def save_hook(models, weights, output_dir):
        if equal_to_weights is not None and equal_to_weights(Path(output_dir)):
            return
        if accelerator.is_main_process:  # (the same average on every process)
            ema.save(Path(output_dir))

    def load_hook(models, input_dir):
        if equal_to_weights is not None and equal_to_weights(Path(input_dir)):
            ema.reset(params)
            return
        # Without the file, a checkpoint that records no EMA was made without one (damaged otherwise: ema.load says so).
        if not (Path(input_dir) / EMA_FILE).is_file() and not recorded_config(Path(input_dir)).get("train", {}).get("ema_decay"):
            raise Gen3cInputError(
                f"--resume: checkpoint {quoted_path(input_dir)} holds no {EMA_FILE}: its run trained without train.ema_decay, and an "
                "average cannot start midway: resume with ema_decay = 0 (the run's setting), or start a new --out"
            )
        ema.load(Path(input_dir))

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)
    return ema


def _full_model(accelerator, model):
    """The trained DiT as one module on the main process (FSDP shards are gathered first)."""
    from accelerate.utils import DistributedType

    unwrapped = accelerator.unwrap_model(model)
    if accelerator.distributed_type != DistributedType.FSDP:
        return unwrapped
    state = accelerator.get_state_dict(model)  # full state dict, on the main process
    if not accelerator.is_main_process:
        return unwrapped
    from diffusers import CosmosTransformer3DModel

    full = CosmosTransformer3DModel.from_config(unwrapped.config)
    full.load_state_dict(state)
    return full


def _register_lora_hooks(accelerator, lora_mod) -> None:
    """Checkpoints of a LoRA run hold the adapter only (safetensors), not the frozen base model."""

    def save_hook(models, weights, output_dir):
        if accelerator.is_main_process:
            for model in models:
                lora_mod.save_lora(accelerator.unwrap_model(model), Path(output_dir) / "lora")
        weights.clear()  # nothing else: the base weights come from model.checkpoint

    def load_hook(models, input_dir):
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        while models:
            model = accelerator.unwrap_model(models.pop())
            weights = load_file(lora_mod.lora_weights_file(Path(input_dir) / "lora"))
            set_peft_model_state_dict(model, weights, adapter_name=lora_mod.ADAPTER_NAME)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def _save_checkpoint(accelerator, out: Path, step: int, keep: int) -> Path:
    """``OUT/checkpoints/step_XXXXXXX``, written whole or not at all: every process writes its
    part into ``.step_XXXXXXX.part``, which the main process then renames (a run stopped while
    saving leaves the newest complete checkpoint the newest ``step_*``)."""
    folder = out / "checkpoints" / f"step_{step:07d}"
    tmp = folder.parent / f".{folder.name}.part"
    if accelerator.is_main_process:
        for stale in [*folder.parent.glob(".step_*.part"), *folder.parent.glob(".step_*.old")]:  # of runs stopped while saving
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp), safe_serialization=True)
    except BaseException:  # a full disk, a Ctrl-C: the partial files' space is freed at once
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        # The history up to this step: a resume from it restores it (a rewind too), and compares its config with this one.
        for name in ("losses.jsonl", "config.json", CHANGES_FILE):
            if (out / name).is_file():
                shutil.copyfile(out / name, tmp / name)
        replace_folder(tmp, folder)  # (the same step saved again: a resumed run that had nothing left to do)
        older = checkpoints(out)[: -max(1, keep)]
        for old in older:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return folder


def _all_losses(out: Path) -> list[float]:
    path = out / "losses.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["loss"] for line in path.read_text().splitlines() if line.strip()]


def _pipeline(transformer, vae, prompt_cache, scheduler=None):
    """A pipeline of the trained parts, with a copy of ``scheduler`` (the run's: a distilled
    student samples on its teacher's grid) or GEN3C's."""
    from diffusers import EDMEulerScheduler

    from gen3c.pipelines.gen3c import Gen3cPipeline

    scheduler = EDMEulerScheduler(**configs.SCHEDULER_GEN3C) if scheduler is None else type(scheduler).from_config(scheduler.config)
    pipe = Gen3cPipeline(transformer=transformer, vae=vae, scheduler=scheduler, prompt_cache=prompt_cache)
    pipe.set_progress_bar_config(disable=True)
    return pipe


#: Sampler steps of the samples of a model that states none (``log.sample_steps = 0``).
PREVIEW_STEPS = 20


@torch.no_grad()
def _log_sample(
    transformer, vae, prompt_cache, clip: dict[str, Tensor], config: Config, out: Path, step: int, writer, num_steps: int,
    *, scheduler=None,
) -> Path:
    """Sample the held-out clip (``num_steps`` sampler steps, one forward each); write
    ``samples/step_XXXXXXX.mp4`` (truth | buffer 0 | sample) and a TensorBoard frame strip."""
    from gen3c.io.video import write_video
    from gen3c.pipelines.gen3c import SamplingDivergedError

    was_training = transformer.training
    transformer.eval()
    pipe = _pipeline(transformer, vae, prompt_cache, scheduler)
    pipe.compute_device = next(transformer.parameters()).device
    video = clip["video"].permute(1, 0, 2, 3)  # (T, 3, H, W)
    try:
        frames = pipe(
            image=video[0], buffer_colors=clip["buffer_colors"], buffer_masks=clip["buffer_masks"], guidance=0.0,
            num_steps=num_steps, seed=config.run.seed,
        ).frames  # fmt: skip
    except SamplingDivergedError as exc:  # (worded for gen3c generate: its --guidance and --verify_checksums are no train settings)
        raise _diverged(
            step - 1, f"the preview sample (log.sample_every) diverged at its sampler step {exc.step} of {exc.num_steps}: its latents "
            f"passed ±{exc.limit:g} or became NaN with this step's weights",
        ) from None  # fmt: skip
    transformer.train(was_training)
    panel = torch.cat([video.cpu(), clip["buffer_colors"][:, 0].cpu(), frames.cpu()], dim=-1)  # side by side
    (out / "samples").mkdir(exist_ok=True)
    path = write_video(out / "samples" / f"step_{step:07d}.mp4", panel.clamp(-1, 1))
    if writer is not None:
        strip = torch.cat(list(panel[:: max(1, len(panel) // 4)]), dim=-2)  # a few frames stacked vertically
        writer.add_image("sample/truth_buffer_sample", ((strip + 1) / 2).clamp(0, 1), step)
        # TensorBoard's add_video needs moviepy, used where installed (docs/training.md); the video is in samples/ anyway.
        if optional("moviepy", "TensorBoard's sample videos left out") is not None:
            writer.add_video("sample/video", ((panel[None] + 1) / 2).clamp(0, 1), step, fps=configs.FPS)
    return path


def _export(
    transformer, vae, prompt_cache, config: Config, out: Path, lora_mode: bool, *, folder: str = "model", extra_meta: dict | None = None,
    scheduler=None,
) -> Path:
    """``lora/`` (the adapter) or ``model/`` (a checkpoint folder :func:`load_generator` reads; ``folder``
    names another one under ``out``, ``extra_meta`` adds to its ``gen3c_model.json``)."""
    from gen3c.models.packaged import META_NAME
    from gen3c.training import lora as lora_mod

    if lora_mode:
        # The targets as configured (peft stores them shortened to suffixes such as "2" and "0.proj").
        meta = {"targets": list(config.lora.targets), "base_checkpoint": config.model.checkpoint}
        return lora_mod.save_lora(transformer, out / "lora", meta=meta)
    target = out / folder
    tmp = target.parent / f".{target.name}.part"
    shutil.rmtree(tmp, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    pipe = _pipeline(transformer, vae, prompt_cache, scheduler)
    pipe.save_pretrained(tmp, safe_serialization=True)
    export_dtype = _dtype(config.model.export_dtype)
    if export_dtype != torch.float32:
        from diffusers import AutoencoderKLCosmos, CosmosTransformer3DModel

        # Re-save the weights in the smaller dtype (loading casts them back to the dtype asked for), as
        # diffusers loads in it: the modules it keeps in float32 (the DiT's learnable position embedding) stay so.
        for name, cls in (("transformer", CosmosTransformer3DModel), ("vae", AutoencoderKLCosmos)):
            cls.from_pretrained(tmp / name, torch_dtype=export_dtype).save_pretrained(tmp / name, safe_serialization=True)
    _name_components_by_folder(tmp)
    meta = {"chunk_frames": config.data.num_frames, "resolution": config.data.resolution, "trained_on": config.data.kind}
    if not config.model.checkpoint:
        meta["dtype"] = "float32"  # a small model from scratch: float32 wherever it runs (bf16 buys nothing)
    meta.update(extra_meta or {})
    write_text_atomic(tmp / META_NAME, json.dumps(meta, indent=2) + "\n")
    replace_folder(tmp, target)  # an earlier export's model/ stays until this one is in place
    return target


def _name_components_by_folder(folder: Path) -> None:
    """Set each component config's ``_name_or_path`` (diffusers records where a model was loaded
    from, here the temporary folder or a teacher's location) to the component's folder name, so a
    shared model does not carry the paths of the machine that made it."""
    for path in sorted(folder.glob("*/config.json")):
        config = json.loads(path.read_text())
        if "_name_or_path" in config:
            config["_name_or_path"] = path.parent.name
            write_text_atomic(path, json.dumps(config, indent=2, sort_keys=True) + "\n")


def folder_megabytes(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def drop_model_card(out: Path) -> None:
    """Remove ``OUT/MODEL_CARD.md`` before a new export replaces the model it describes, so a
    run stopped before the new card is written leaves no card rather than the previous model's
    (its steps and losses) beside the new one; ``--resume auto`` writes both again."""
    (out / "MODEL_CARD.md").unlink(missing_ok=True)


def loss_ends(losses: list[float]) -> tuple[int, float, float]:
    """``(k, first, last)``: the mean loss of the first and of the last k steps, k a tenth of
    them (1 to 50), as the model cards give them (NaN where there are none)."""
    k = max(1, min(50, len(losses) // 10 or 1))

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs) if xs else float("nan")

    return k, mean(losses[:k]), mean(losses[-k:])


def write_model_card(out: Path, config: Config, result: TrainResult, losses: list[float]) -> Path:
    """``MODEL_CARD.md`` in ``out`` (and in ``model/``): data, steps, measured losses, limits."""
    import platform

    k, first_loss, last_loss = loss_ends(losses)
    config = config_used(config, out, result.steps)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"
    d, t = config.data, config.train
    lines = [
        "# Model card: gen3c " + ("model fine-tuned" if config.model.checkpoint else "small model trained") + " with `gen3c train`",
        "",
        "- **Architecture**: diffusers `CosmosTransformer3DModel` (GEN3C's DiT class, 81 input channels) "
        "+ `AutoencoderKLCosmos` tokenizer (8×8×8 compression, 16 latent channels).",
        f"- **Mode**: {t.mode}; base: {config.model.checkpoint or 'from scratch'}.",
        f"- **Data**: {d.kind} clips"
        + (f" (scenes {', '.join(d.scenes)}, {d.num_clips} clips, seeds from 1000000)" if d.kind == "procedural" else f" from {len(d.paths)} folders")
        + f", {d.resolution[0]}×{d.resolution[1]}, {d.num_frames} frames, cache from {d.source_frames} source frame(s).",
        f"- **Objective**: EDM denoising, ln σ ~ N({t.p_mean}, {t.p_std}²), buffer dropout {t.buffer_dropout}, "
        f"condition augmentation σ {t.condition_augment_sigma}.",
        f"- **Optimisation**: AdamW lr {t.lr} ({t.lr_schedule}, warm-up {t.warmup_steps}), batch {t.batch_size}"
        f" × accumulation {t.gradient_accumulation_steps}, mixed precision {t.mixed_precision}"
        + (f"; the weights are an EMA of decay {t.ema_decay:g}." if t.ema_decay else "."),
        *([f"- **Changed on resume**: {describe_changes(changes)}."] if (changes := changes_used(out, result.steps)) else []),
        f"- **Steps**: {result.steps} in {result.seconds / 60:.1f} min of training on {device}"
        + (f" × {result.processes} processes ({result.parallel})." if result.processes > 1 else "."),
        f"- **Loss** (weighted EDM, per element): first {k} steps {first_loss:.4f}, last {k} steps {last_loss:.4f}, "
        f"min {min(losses) if losses else float('nan'):.4f}.",
        f"- **Made**: {made_with()}.",
    ]
    if result.tokenizer:
        tk = result.tokenizer
        lines.append(
            f"- **Tokenizer**: trained {tk['steps']} steps in {tk['seconds'] / 60:.1f} min, reconstruction loss (L1 + MSE) "
            f"{tk['first_loss']:.4f} → {tk['final_loss']:.4f}; held-out clip encode → decode "
            f"{tk.get('heldout_psnr', float('nan')):.2f} dB PSNR."
        )
    if result.exported is not None and result.exported.is_dir():
        lines.append(f"- **Size**: {folder_megabytes(result.exported):.2f} MB ({result.exported.name}/).")
    lines += [
        "",
        "## Limits",
        "",
        f"- Trained only at {d.resolution[0]}×{d.resolution[1]} and {d.num_frames} frames; other sizes run but are out of distribution.",
    ]
    if config.model.checkpoint:  # the checkpoint's own text embeddings (T5's for GEN3C-7B)
        lines.append("- Trained with the empty prompt only (the checkpoint's cached embedding of \"\").")
    else:
        lines += [
            "- The empty prompt only (zero text embeddings); prompts have no effect.",
            "- A proof that the objective and the code train a GEN3C model end to end, not a replacement for GEN3C-Cosmos-7B.",
        ]
    lines.append("")
    text = "\n".join(lines)
    write_text_atomic(out / "MODEL_CARD.md", text)
    if result.exported is not None and result.exported.is_dir() and not (out / "model" / "adapter").exists():
        write_text_atomic(result.exported / "MODEL_CARD.md", text)
    return out / "MODEL_CARD.md"
