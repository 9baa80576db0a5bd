"""``gen3c train`` with ``train.mode = "distill"``: a few-step student of a GEN3C checkpoint.

The run, numbered as it happens (the objective is :mod:`gen3c.training.distill`):

1. the teacher's checkpoint (``model.checkpoint``) gives the student's initial weights, the
   frozen tokenizer and the cached prompts;
2. clips are encoded once when ``data.cache_clips`` and their latents kept in
   ``OUT/latents.safetensors`` (keyed by the data settings and the tokenizer's weights), so a
   resumed run does not render or encode them again; otherwise each step encodes its clips;
3. the student is prepared by ``Accelerator`` (DDP / FSDP, mixed precision, gradient
   checkpointing) with AdamW; a resumed run restores weights, optimiser, RNG states and the
   (stage, step) position;
4. the stages run in order (:func:`gen3c.training.distill.distill_stages`): the first is taught
   by the teacher checkpoint (with its guidance), each later one by the previous stage's student,
   read back from ``OUT/stages/<stage>/``. The teacher is frozen and kept as
   ``distill.teacher_memory`` says (resident, float8 weights, or blocks streamed from CPU
   memory). Every stage starts with a fresh optimiser state and its own warm-up / cosine
   schedule; every random draw of a step is seeded by (seed, step, rank), so a resumed run
   repeats an uninterrupted one;
5. at each stage's end the student is written to ``OUT/stages/<stage>/`` (a checkpoint folder
   whose ``gen3c_model.json`` states its ``num_steps`` and guidance 0, and where its stage ended
   in the run's history, :data:`STAGE_END`), then a resumable checkpoint at the next stage's
   start (whatever ``log.checkpoint_every``), then a sample video. The checkpoint's weights are
   that student as written (``model.export_dtype``): it records the student's files (path and
   sha256, :data:`SHARED_STUDENT`) instead of a copy, except under FSDP. A run stopped between
   the two resumes at the stage's end (:func:`stage_ended_after`), not before it; loss
   and LR go to TensorBoard (``distill/loss``, per stage ``distill/stage_N``, all at the run's
   step, so that a resumed run's ``purge_step`` drops every point of the steps it runs again);
6. at the end ``OUT/model/`` is the last student, ``MODEL_CARD.md`` and ``losses.jsonl`` (step,
   stage, loss, lr).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from accelerate.utils import DistributedType
from torch import Tensor

from gen3c.environment import made_with
from gen3c.errors import Gen3cInputError, counted, quoted_path
from gen3c.io.atomic import write_text_atomic
from gen3c.models import configs
from gen3c.parallel import is_main_process
from gen3c.progress import ProgressFactory
from gen3c.training.config import Config
from gen3c.training.distill import (
    Stage,
    check_teacher,
    distill_stages,
    note_long_samples,
    note_other_clips,
    stage_loss,
)
from gen3c.training.ema import ema_weights
from gen3c.training.loop import (
    EXPORTS,
    RECOVERY_CHANGES,
    TrainResult,
    _dtype,
    _encode_all,
    _end_run,
    _export,
    _full_model,
    _latest_checkpoint,
    _log_sample,
    _make_ema,
    _micro_batches,
    _optimizer_step,
    _resume,
    _run_result,
    _save_checkpoint,
    _start_run,
    changes_used,
    check_clips_fit,
    checkpoint_run,
    config_used,
    describe_changes,
    drop_model_card,
    folder_megabytes,
    load_base_pipeline,
    loss_ends,
    lr_factor,
    note_settings,
    prompt_embedding,
    recorded_config,
    same_folders,
)

LATENTS_FILE = "latents.safetensors"


class _DistillState:
    """Where the run is (saved and restored with the checkpoint, accelerate custom object)."""

    def __init__(self) -> None:
        self.step = 0  # optimiser steps over all stages
        self.stage = 0  # index of the running stage (len(stages): all done)
        self.stage_step = 0  # optimiser steps done in the running stage
        self.stage_seconds = 0.0  # wall time spent in the running stage by earlier invocations

    def state_dict(self) -> dict:
        return {"step": self.step, "stage": self.stage, "stage_step": self.stage_step, "stage_seconds": self.stage_seconds}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.stage, self.stage_step = int(state["step"]), int(state["stage"]), int(state["stage_step"])
        self.stage_seconds = float(state["stage_seconds"])


def stage_folder(out: Path, stage: Stage) -> Path:
    return out / "stages" / stage.name


def holds_student(folder: Path) -> bool:
    """Whether a stage folder holds its student (written whole: the export renames it in place)."""
    return (folder / "transformer" / "config.json").is_file()


def take_finished_stages(
    out: Path, run: Path, finished: list[Stage], echo: Callable[[str], None] | None = None, checkpoint: Path | None = None
) -> list[Path]:
    """Copy into ``out`` the students of the ``finished`` stages that run ``run`` (whose checkpoint
    ``out`` continues) wrote and ``out`` lacks: the next stage's teacher and the model card's rows.
    Each is copied under a temporary name and renamed; with ``checkpoint`` (the one resumed), the
    student of its history (:func:`history_student`). Returns the folders copied."""
    import shutil

    from gen3c.io.atomic import replace_folder

    if run.resolve() == out.resolve():
        return []
    copied, sources = [], set()
    for stage in finished:
        source, target = stage_folder(run, stage), stage_folder(out, stage)
        if checkpoint is not None:
            source = history_student(run, checkpoint, stage) or source
        if holds_student(target) or not holds_student(source):
            continue  # (kept, or missing in both: teacher_of says so)
        tmp = target.with_name(f".{target.name}.part")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp)
        replace_folder(tmp, target)
        copied.append(target)
        sources.add(str(source.parent))
    if copied and echo is not None:  # (from superseded/stages/ too, where a rewind set one aside)
        echo(f"--resume: the students of the finished stages ({', '.join(p.name for p in copied)}) are copied from "
             f"{' and '.join(repr(s) for s in sorted(sources))} into {quoted_path(out / 'stages')}")  # fmt: skip
    return copied


def _missing_teacher(out: Path, run: Path, stages: list[Stage], index: int, checkpoint: Path | None = None) -> str | None:
    """Why stage ``index`` has no teacher, where the student of stage ``index`` − 1 is in neither
    ``out``'s stages/ nor that of ``run``, the run whose checkpoint ``out`` continues (from which
    :func:`take_finished_stages` copies it), nor, for ``checkpoint`` (the one resumed), set aside
    in that run by a rewind (:func:`history_student`); None where it has one, or needs none (stage 0)."""
    if not 0 < index < len(stages):
        return None
    folder = stage_folder(out, stages[index - 1])
    if holds_student(folder):
        return None
    named = source = stage_folder(run, stages[index - 1])
    if checkpoint is not None:  # (set aside by a rewind: restore_history_students or take_finished_stages takes it)
        source = history_student(run, checkpoint, stages[index - 1]) or source
    if holds_student(source):
        return None
    if run.resolve() != out.resolve():
        return (
            f"--resume: {quoted_path(named)}, the student of stage {index - 1} that teaches stage {index}, is missing or incomplete "
            f"in the run the checkpoint comes from: restore it there (or in {quoted_path(folder)}), or start over without --resume"
        )
    return (
        f"--resume: {quoted_path(folder)}, the student of stage {index - 1} that teaches stage {index}, is missing or incomplete: "
        "restore it, or start over in a new --out without --resume"
    )


def _ended_in(folder: Path, history: list[str]) -> bool | None:
    """Whether the stage student in ``folder`` ended in ``history`` (the lines of a ``losses.jsonl``):
    its :data:`STAGE_END` step is in it with the sha256 of the lines up to it; None where it records no end."""
    try:
        end = json.loads((folder / "gen3c_model.json").read_text())[STAGE_END]
        step, digest = int(end["step"]), end["losses_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return step <= len(history) and hashlib.sha256("".join(history[:step]).encode()).hexdigest() == digest


def set_aside_students(run: Path, name: str) -> list[Path]:
    """The students of the stage ``name`` that rewinds of ``run`` set aside (``superseded/stages/NAME`` and
    its ``NAME.earlierK``, :func:`gen3c.training.loop.set_aside_superseded`)."""
    aside = run / "checkpoints" / "superseded" / "stages"
    return sorted(p for p in aside.glob(f"{name}*") if p.name == name or p.name.startswith(f"{name}.earlier"))


def history_student(run: Path, checkpoint: Path, stage: Stage) -> Path | None:
    """The folder of ``stage``'s student in ``run`` that belongs to the history of ``checkpoint``
    (the student its :data:`TEACHER_RECORD` names by sha256, else by its ``losses.jsonl``):
    ``run``'s stages/ one, or, where that is missing or ended in another history (the run was
    rewound past the stage), the one a rewind set aside; None where neither."""
    folder = stage_folder(run, stage)
    record = recorded_teacher(checkpoint)
    if record is not None and record["stage"] == stage.name:
        return next((p for p in (folder, *set_aside_students(run, stage.name)) if _same_student(p / "transformer", record)), None)
    try:
        history = (checkpoint / "losses.jsonl").read_text().splitlines(keepends=True)
    except OSError:  # (a checkpoint of an older version: the stages/ one, as before)
        return folder if holds_student(folder) else None
    if holds_student(folder) and _ended_in(folder, history) is not False:
        return folder
    return next((p for p in set_aside_students(run, stage.name) if holds_student(p) and _ended_in(p, history)), None)


def restore_history_students(
    out: Path, checkpoint: Path, finished: list[Stage], echo: Callable[[str], None] | None = None
) -> list[Path]:
    """Move back into ``out``'s stages/ the students of the ``finished`` stages of ``checkpoint``
    (one of ``out``'s, being resumed) that a rewind set aside (:func:`history_student`); a student
    there of the history the resume leaves takes its place in ``superseded/stages/`` (under the
    next free name). Returns the stage folders moved back."""
    from gen3c.training.loop import _earlier_name

    restored, displaced = [], []
    for stage in finished:
        found, target = history_student(out, checkpoint, stage), stage_folder(out, stage)
        if found is None or found == target:
            continue
        if target.exists():
            aside = out / "checkpoints" / "superseded" / "stages" / stage.name
            displaced.append(target.rename(_earlier_name(aside) if aside.exists() else aside))
        target.parent.mkdir(parents=True, exist_ok=True)
        found.rename(target)
        restored.append(target)
    if restored and echo is not None:
        echo(f"--resume: the students of the finished stages ({', '.join(p.name for p in restored)}) of checkpoint "
             f"{checkpoint.name}'s history are moved back from {quoted_path(out / 'checkpoints' / 'superseded' / 'stages')} into "
             f"{quoted_path(out / 'stages')}" + (f"; those of the history it leaves are set aside as {', '.join(p.name for p in displaced)}" if displaced else ""))  # fmt: skip
    return restored


#: A stage-start checkpoint's record of the stage's student whose weights it takes (it holds no copy).
SHARED_STUDENT = "student.json"
#: A checkpoint's record of the running stage's teacher, the previous stage's student (as :data:`SHARED_STUDENT`).
TEACHER_RECORD = "teacher.json"


_SHA256: dict[tuple[str, int, int, int], str] = {}


def _sha256(path: Path) -> str:
    """The sha256 of ``path``, hashed once per (path, inode, size, mtime): a 7B student is read once per run."""
    from gen3c.io.hashing import sha256_file

    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _SHA256:
        _SHA256[key] = sha256_file(path)
    return _SHA256[key]


def student_reference(out: Path, stage: Stage) -> dict:
    """``stage``'s student in ``out``: its ``transformer/*.safetensors``, by path in the run and sha256."""
    folder = stage_folder(out, stage) / "transformer"
    files = {p.name: _sha256(p) for p in sorted(folder.glob("*.safetensors"))}
    return {"stage": stage.name, "folder": f"stages/{stage.name}/transformer", "sha256": files}


def write_student_reference(checkpoint: Path, out: Path, stage: Stage) -> Path:
    """Record in ``checkpoint`` that its weights are those of ``stage``'s student in ``out``
    (:func:`student_reference`)."""
    write_text_atomic(checkpoint / SHARED_STUDENT, json.dumps(student_reference(out, stage), indent=2) + "\n")
    return checkpoint / SHARED_STUDENT


def recorded_teacher(checkpoint: Path) -> dict | None:
    """The teacher ``checkpoint`` records (:data:`TEACHER_RECORD`); None where it records none
    (stage 0, the run's end, a checkpoint of an older version) or where it cannot be read (its
    history's ``losses.jsonl`` then finds the teacher, as for an older version)."""
    record = _teacher_record(checkpoint)
    return record if record is not None and isinstance(record.get("stage"), str) else None


def _teacher_record(checkpoint: Path) -> dict | None:
    """``checkpoint``'s :data:`TEACHER_RECORD` where it can be read and lists files by sha256, else None."""
    try:
        record = json.loads((checkpoint / TEACHER_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("sha256"), dict) else None


def _first_changed(folder: Path, sha256: dict[str, str]) -> tuple[Path, bool] | None:
    """The first file of ``sha256`` (name → digest) in ``folder`` that is missing (True) or holds
    other bytes (False), or None where all are as recorded."""
    for name, digest in sha256.items():
        path = folder / name
        if not path.is_file() or _sha256(path) != digest:
            return path, not path.is_file()
    return None


def _same_student(folder: Path, record: dict) -> bool:
    """Whether ``folder`` (a ``transformer/``) holds the files of ``record`` with their sha256."""
    return bool(record["sha256"]) and _first_changed(folder, record["sha256"]) is None


def _other_teacher(out: Path, run: Path, checkpoint: Path | None, stages: list[Stage], index: int) -> str | None:
    """Why stage ``index`` of ``checkpoint`` (run ``run``'s, continued in ``out``) cannot resume:
    the student of stage ``index`` − 1 it records as its teacher (:data:`TEACHER_RECORD`) is
    neither ``out``'s nor ``run``'s stages/ one nor one a rewind of ``run`` set aside (another
    history wrote it); None where it is found, or the checkpoint records none."""
    record = None if checkpoint is None or not 0 < index < len(stages) else recorded_teacher(checkpoint)
    if record is None or record["stage"] != stages[index - 1].name or (checkpoint / SHARED_STUDENT).is_file():
        return None  # (a stage's start takes its weights from that student: read_student_reference names the file)
    folder = stage_folder(out, stages[index - 1])
    # (found in run: moved back from superseded/ by restore_history_students, or copied into a new out by take_finished_stages)
    same_run = run.resolve() == out.resolve()
    if _same_student(folder / "transformer", record) or (
        (same_run or not holds_student(folder)) and history_student(run, checkpoint, stages[index - 1]) is not None
    ):
        return None
    named = folder if holds_student(folder) or same_run else stage_folder(run, stages[index - 1])
    if not holds_student(named):
        return None  # (missing: _missing_teacher says so)
    return (
        f"--resume: checkpoint {quoted_path(checkpoint)} trains stage {index} against the student of stage {index - 1} its "
        f"{TEACHER_RECORD} records (by sha256), and {quoted_path(named)} is another (written by another history of the run), nor did "
        f"a rewind set it aside in {quoted_path(run / 'checkpoints' / 'superseded' / 'stages')}: restore that student there, or resume "
        "from a checkpoint of the stage's present history (or start over without --resume)"
    )


def teacher_checkpoint_reference(teacher: str | os.PathLike) -> dict | None:
    """The first stage's teacher, the checkpoint folder ``teacher`` (``model.checkpoint`` resolved):
    its ``transformer/*.safetensors`` by sha256, as a checkpoint of that stage records it
    (:data:`TEACHER_RECORD`, with no ``stage``: no run's student); None for a hub id (no local files)."""
    folder = Path(teacher).expanduser() / "transformer"
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return None
    return {"checkpoint": str(teacher), "folder": str(folder), "sha256": {p.name: _sha256(p) for p in files}}


def changed_teacher_checkpoint(checkpoint: Path, teacher: str | os.PathLike, key: str) -> str | None:
    """Why ``checkpoint`` (of the first stage) cannot resume: the teacher it trained against, the
    checkpoint folder ``teacher`` (``key``: the config's ``model.checkpoint`` as written), has
    other weights now than its :data:`TEACHER_RECORD` records (re-converted, or a run's ``model/``
    written again): the stage's steps so far learnt the teacher as it was. None where they are
    the same, or the checkpoint records none (a hub id, a checkpoint of an older version)."""
    record = _teacher_record(checkpoint)
    changed = None if record is None or "checkpoint" not in record else _first_changed(Path(teacher).expanduser() / "transformer", record["sha256"])
    if changed is None:
        return None
    path, missing = changed
    return (
        f"--resume: checkpoint {quoted_path(checkpoint)} trains stage 0 against the teacher model.checkpoint = {key!r} as it was "
        f"then ({TEACHER_RECORD} records its weights by sha256), and {quoted_path(path)} {'is missing' if missing else 'has other weights'} "
        "now: restore the teacher as it was, or distil the new one in a new --out without --resume (the steps so far learnt the old one)"
    )


def read_student_reference(checkpoint: Path) -> tuple[str, dict[str, Tensor]]:
    """The stage name and the weights of the student a checkpoint of :func:`write_student_reference`
    takes, from the run the checkpoint belongs to; refused where a file is missing or changed."""
    from safetensors.torch import load_file

    record = json.loads((checkpoint / SHARED_STUDENT).read_text())
    run = checkpoint_run(checkpoint)
    folder = run / record["folder"]

    if not _same_student(folder, record):  # set aside by a rewind of the run (another run's: take_finished_stages copies it later)
        folder = next((p / "transformer" for p in set_aside_students(run, record["stage"]) if _same_student(p / "transformer", record)), folder)
    changed = _first_changed(folder, record["sha256"])
    if changed is not None:
        path, missing = changed
        problem = "is missing" if missing else "has changed since (its sha256 is not the one recorded)"
        raise Gen3cInputError(
            f"--resume: checkpoint {quoted_path(checkpoint)} holds no copy of the student's weights, which are {quoted_path(path)} (the student "
            f"of stage {record['stage']}), and that file {problem}: restore the stage's student as it was written, or resume from "
            "an earlier checkpoint"
        )
    tensors: dict[str, Tensor] = {}
    for name in record["sha256"]:
        tensors.update(load_file(folder / name))
    return record["stage"], tensors


#: The key of a stage student's ``gen3c_model.json`` that places its end in the run's history.
STAGE_END = "distill_end"


def _stage_end(out: Path, step: int) -> dict:
    """Where a stage ends: the run's step and the sha256 of ``losses.jsonl`` up to it (its history)."""
    text = (out / "losses.jsonl").read_text() if (out / "losses.jsonl").is_file() else ""
    return {"step": step, "losses_sha256": hashlib.sha256(text.encode()).hexdigest()}


def _stage_end_step(out: Path, stage: Stage) -> int:
    from gen3c.models.packaged import checkpoint_info

    return int(checkpoint_info(str(stage_folder(out, stage)))[STAGE_END]["step"])


def _load_student(net: torch.nn.Module, folder: Path) -> None:
    """Set the trained weights of ``net`` to those of the student in the stage folder ``folder``."""
    from safetensors.torch import load_file

    tensors: dict[str, Tensor] = {}
    for path in sorted((folder / "transformer").glob("*.safetensors")):
        tensors.update(load_file(path))
    _set_weights(net, tensors)


def _set_weights(net: torch.nn.Module, tensors: dict[str, Tensor]) -> None:
    """Copy ``tensors`` (by parameter name) into ``net``'s parameters."""
    with torch.no_grad():
        for key, p in net.named_parameters():
            p.copy_(tensors[key])


def stage_ended_after(out: Path, checkpoint: Path | None, stages: list[Stage], config: Config) -> tuple[Stage, str] | None:
    """The stage a run ended after ``checkpoint`` (its stage) without writing the checkpoint of
    its end: a run stopped between writing the stage's student and that checkpoint. Found where
    ``checkpoint`` is ``out``'s newest, the stage's student records a later end whose history
    (the sha256 of ``losses.jsonl`` up to it) ``out``'s ``losses.jsonl`` holds and continues the
    checkpoint's own, and ``config`` ends the stage there too (its steps, or its spent time budget)
    and changes none of the settings its steps used. Returns the stage and the ``losses.jsonl``
    text up to its end; None otherwise (the run goes on from ``checkpoint`` as always)."""
    from gen3c.models.packaged import checkpoint_info

    if checkpoint is None or checkpoint != _latest_checkpoint(out) or checkpoint_run(checkpoint).resolve() != out.resolve():
        return None
    try:
        saved = torch.load(checkpoint / "custom_checkpoint_0.pkl", weights_only=True)
        index, step = int(saved["stage"]), int(saved["step"])
        if index >= len(stages) or not holds_student(stage_folder(out, stages[index])):
            return None
        stage = stages[index]
        info = checkpoint_info(str(stage_folder(out, stage)))
        end, record = info[STAGE_END], info["distill_stage"]
        lines = (out / "losses.jsonl").read_text().splitlines(keepends=True)
        own = (checkpoint / "losses.jsonl").read_text()
    except Exception:  # (no record: a student of an older version; files missing: the resume says what is wrong)
        return None
    text = "".join(lines[: end["step"]])
    if end["step"] <= step or hashlib.sha256(text.encode()).hexdigest() != end["losses_sha256"] or "".join(lines[:step]) != own:
        return None
    budget = 60 * config.run.max_minutes
    if record["steps"] != stage.max_steps and not (budget and record["steps"] < stage.max_steps and record["seconds"] >= budget):
        return None  # (a budget changed on resume: the stage runs on to it, or ends where the checkpoint is)
    before, now = recorded_config(checkpoint), config.to_dict()
    if any(before.get(section, {}).get(key, now[section][key]) != now[section][key] for section, key in RECOVERY_CHANGES):
        return None  # (the resumed steps take the new values)
    return stage, text


def _saved_stage(checkpoint: Path) -> int | None:
    """The stage a checkpoint resumes at (its :class:`_DistillState`, which accelerate saves as
    ``custom_checkpoint_0.pkl``); None where it cannot be read, which resuming then refuses."""
    try:
        return int(torch.load(checkpoint / "custom_checkpoint_0.pkl", weights_only=True)["stage"])
    except Exception:  # (missing, damaged, another layout: _resume names what is wrong)
        return None


def budget_of(config: Config, stage: Stage) -> str:
    """The setting that gives ``stage`` its steps, with its value (for messages)."""
    if config.distill.stage_max_steps:
        return f"distill.stage_max_steps[{stage.index}] = {stage.max_steps}"
    return f"run.max_steps = {stage.max_steps}"


def check_finished_budgets(config: Config, stages: list[Stage], checkpoint: Path | None, run: Path) -> None:
    """Refuse a resume whose ``distill.stage_max_steps`` changes the steps of a stage the
    ``checkpoint`` (of the run ``run``) has finished: its student is written and taught the next
    stage, so it is not trained again (nor undone). The running and later stages' entries may
    change, as ``run.max_steps`` may (a running stage lowered below its steps ends at once).
    A changed ``run.max_steps`` (one budget for every stage) applies to those stages only, which
    the resume says in a line."""
    if checkpoint is None or not config.distill.stage_max_steps:
        return
    finished = _saved_stage(checkpoint) or 0
    before = recorded_config(checkpoint) or recorded_config(run)  # the config the checkpoint was made with
    old = before.get("distill", {}).get("stage_max_steps") or [before.get("run", {}).get("max_steps", config.run.max_steps)] * len(stages)
    changed = [s for s in stages[:finished] if s.index < len(old) and old[s.index] != s.max_steps]
    if changed:
        s = changed[0]
        rest = f"change only the entries from stage {finished} on" if finished < len(stages) else "every stage is finished"
        raise Gen3cInputError(
            f"--resume: distill.stage_max_steps[{s.index}] = {s.max_steps} changes stage {s.name}, which the checkpoint "
            f"{quoted_path(checkpoint)} has finished with {old[s.index]} (its student is written and taught the stages after it; it is "
            f"not trained again): keep {old[s.index]} ({rest}), or start over in a new --out"
        )


def make_teacher(checkpoint: str | os.PathLike, config: Config, device: torch.device) -> torch.nn.Module:
    """The frozen teacher: the DiT of the checkpoint folder (or hub id) ``checkpoint``, stored in
    ``model.weights_dtype`` and kept as ``distill.teacher_memory`` says."""
    from diffusers import CosmosTransformer3DModel

    from gen3c.models.memory import enable_fp8_weights, enable_group_offload

    dtype = _dtype(config.model.weights_dtype)
    teacher = CosmosTransformer3DModel.from_pretrained(str(checkpoint), subfolder="transformer")
    if teacher.dtype != dtype:  # (a cast to the same dtype only draws diffusers' warning about float32 modules)
        teacher = teacher.to(dtype)
    teacher.eval().requires_grad_(False)
    memory = config.distill.teacher_memory
    if memory == "fp8":
        enable_fp8_weights(teacher, dtype)
    if memory == "offload":
        enable_group_offload(teacher, device)
    else:
        teacher.to(device)
    return teacher


def _latents_key(config: Config, vae, paths: list[str] | None = None) -> str:
    """Identity of a set of clip latents: the data settings (``data.paths`` spelled as ``paths``,
    if given) and every weight of the tokenizer."""
    # data.num_workers says how the clips are made, not what they are (a resumed run may change it).
    data = {key: value for key, value in config.to_dict()["data"].items() if key != "num_workers"}
    if paths is not None:
        data["paths"] = paths
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode())
    digest.update(str(config.model.tokenizer_chunk_frames).encode())
    for name, tensor in sorted(vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


def cached_latents(
    config: Config, dataset, vae, sigma_data: float, out: Path, accelerator, progress: ProgressFactory | None,
    recorded_paths: list[str] | None = None,
) -> tuple[Tensor, Tensor]:
    """Latents (N, 16, T', h, w) and buffer latents (N, 64, T', h, w) of every clip, on the
    accelerator's device: read from ``OUT/latents.safetensors`` when it holds these clips encoded
    by this tokenizer, else made once (by the main process) and written there.

    ``recorded_paths``: ``data.paths`` as the run's ``config.json`` recorded them before this
    invocation; a run that recorded them relative keyed its latents by that spelling, which
    names the same folders (:func:`~gen3c.training.loop.same_folders`): the file is taken and
    keyed again by the spelling recorded now."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from gen3c.io.atomic import atomic_path
    from gen3c.training.data import CachedClips

    path, key = out / LATENTS_FILE, _latents_key(config, vae)

    def stored_key() -> str | None:
        if not path.is_file():
            return None
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("key")

    def save(x0: Tensor, buffers: Tensor) -> None:
        with atomic_path(path) as tmp:
            save_file({"x0": x0.cpu().contiguous(), "buffers": buffers.cpu().contiguous()}, str(tmp), metadata={"key": key})

    if accelerator.is_main_process and (found := stored_key()) != key:
        paths = config.data.paths
        respelled = found is not None and recorded_paths not in (None, paths) and same_folders(recorded_paths, paths)
        if respelled and found == _latents_key(config, vae, recorded_paths):
            tensors = load_file(str(path))  # the same clips: keyed by the paths config.json now records
            save(tensors["x0"], tensors["buffers"])
        else:
            making = progress("Clips", len(dataset)) if progress is not None else None
            clips = CachedClips(dataset, config.data.num_workers, making)
            save(*_encode_all(vae, clips, sigma_data, accelerator.device, config.model.tokenizer_chunk_frames, progress))
    accelerator.wait_for_everyone()
    tensors = load_file(str(path))
    return tensors["x0"].to(accelerator.device), tensors["buffers"].to(accelerator.device)


def distill(
    config: Config,
    out: str | os.PathLike,
    *,
    resume: str | None = None,
    stop_after: int | None = None,
    progress: ProgressFactory | None = None,
    echo: Callable[[str], None] | None = None,
) -> TrainResult:
    """Distil ``model.checkpoint`` into a few-step student in ``out`` (see the module docstring).

    Args: as :func:`gen3c.training.loop.train` (which holds the output folder's lock); ``stop_after``
    counts optimiser steps over stages.
    """
    from gen3c.models.packaged import resolve_checkpoint
    from gen3c.training.data import StepSampler, check_batch_fits, held_out_clip, make_dataset
    from gen3c.training.tokenizer import out_of_time_everywhere

    # 1. The teacher's checkpoint: the student's start, the tokenizer, the prompts; read (and
    # refused, as the clips below) before the output folder is written to
    m = config.model
    dataset = make_dataset(config.data)
    check_batch_fits(config, len(dataset))
    teacher_checkpoint = resolve_checkpoint(m.checkpoint)
    pipe = load_base_pipeline(m.checkpoint, torch.float32)
    student, scheduler, prompt_cache = pipe.transformer, pipe.scheduler, pipe.prompt_cache
    check_clips_fit(config, student, pipe.vae)
    check_teacher(config.distill, pipe.model_info, m.checkpoint)
    if prompt_cache is None:
        raise Gen3cInputError(f"model.checkpoint {quoted_path(m.checkpoint)} has no prompt cache (prompt_cache/): convert it again with `gen3c convert`")
    text = prompt_embedding(prompt_cache, "", m.max_sequence_length)
    negative_text = text  # unused without guidance: only the guided teacher has an unconditional branch
    if config.distill.guidance:
        if prompt_cache.lookup(configs.DEFAULT_NEGATIVE_PROMPT) is None:  # (the empty prompt there would teach another guidance)
            raise Gen3cInputError(
                f"the teacher's prompt cache {quoted_path(Path(teacher_checkpoint) / 'prompt_cache')} lacks GEN3C's negative prompt, the "
                f"unconditional branch of distill.guidance = {config.distill.guidance:g}: convert the checkpoint again with "
                "`gen3c convert` (it caches the empty and the negative prompt)"
            )
        negative_text = prompt_embedding(prompt_cache, configs.DEFAULT_NEGATIVE_PROMPT, m.max_sequence_length)
    stages = distill_stages(config.distill, config.run.max_steps)

    # What the run's config.json holds before _start_run records this config in it.
    recorded_paths = recorded_config(Path(out)).get("data", {}).get("paths") if resume is not None else None
    # The run the resumed checkpoint belongs to (out itself, or another run continued in out).
    run = Path(out) if resume in (None, "auto") else checkpoint_run(Path(resume))
    recorded_run = recorded_config(run).get("run", {}) if resume is not None else {}  # the budgets it recorded
    if resume is not None:  # refused before config.json records the new budgets
        check_finished_budgets(config, stages, _latest_checkpoint(Path(out)) if resume == "auto" else Path(resume), run)
    if resume not in (None, "auto"):  # another run's checkpoint: its stage's teacher, before the new --out is written
        stage = _saved_stage(Path(resume))
        missing = None if stage is None else _missing_teacher(Path(out), run, stages, stage, Path(resume))
        if missing is not None:
            raise Gen3cInputError(missing)
    if resume is not None:  # a stage's teacher of another history (a rewind wrote it anew): refused before out is written
        resumed = _latest_checkpoint(Path(out)) if resume == "auto" else Path(resume)
        stage = None if resumed is None else _saved_stage(resumed)
        other = None if stage is None else _other_teacher(Path(out), run, resumed, stages, stage)
        if stage == 0 and other is None:  # the teacher checkpoint itself, changed on disk since
            other = changed_teacher_checkpoint(resumed, teacher_checkpoint, m.checkpoint)
        if other is not None:
            raise Gen3cInputError(other)
    # (after the refusals: a run refused says only why)
    note_other_clips(config.data, pipe.model_info, m.checkpoint)
    note_settings(config, tokenizer_trains=False)  # (the teacher's tokenizer)
    if is_main_process():
        note_long_samples(config)
    out, accelerator, writer, log = _start_run(config, out, resume, echo)
    main = accelerator.is_main_process
    device = accelerator.device
    vae = pipe.vae if pipe.vae.dtype == _dtype(m.weights_dtype) else pipe.vae.to(_dtype(m.weights_dtype))
    vae = vae.to(device).eval().requires_grad_(False)
    sigma_data = scheduler.config.sigma_data

    # 2. Clips
    if config.data.cache_clips:
        latents = cached_latents(config, dataset, vae, sigma_data, out, accelerator, progress, recorded_paths)
        num_clips = len(latents[0])
    else:
        latents, num_clips = None, len(dataset)
    sample_clip = held_out_clip(dataset) if main and config.log.sample_every >= 0 else None

    # 3. The student trains
    student.requires_grad_(True)
    if config.train.gradient_checkpointing:
        student.enable_gradient_checkpointing()
    student.train()
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.train.lr, weight_decay=config.train.weight_decay)
    model, optimizer = accelerator.prepare(student, optimizer)
    export_dtype = _dtype(m.export_dtype)
    state = _DistillState()
    accelerator.register_for_checkpointing(state)
    # At a stage's start the weights are the student the stage before wrote (in model.export_dtype):
    # its checkpoint records that student (path and sha256) instead of a copy of them (and of the
    # EMA, equal to them). FSDP saves its weights itself: a copy there.
    fsdp = accelerator.distributed_type == DistributedType.FSDP
    written: list[Stage | None] = [None]  # the stage whose written student the weights are (None once a step trains them)

    def save_weights_by_reference(models, weights, output_dir):
        if written[0] is not None and not fsdp:
            weights.clear()
            if main:
                write_student_reference(Path(output_dir), out, written[0])
        if main and 0 < state.stage < len(stages):  # the running stage's teacher: a resume finds it, or refuses
            record = json.dumps(student_reference(out, stages[state.stage - 1]), indent=2) + "\n"
            write_text_atomic(Path(output_dir) / TEACHER_RECORD, record)
        elif main and state.stage == 0 and (first := teacher_checkpoint_reference(teacher_checkpoint)) is not None:
            write_text_atomic(Path(output_dir) / TEACHER_RECORD, json.dumps(first, indent=2) + "\n")  # (hashed once per invocation)

    def load_weights_by_reference(models, input_dir):
        if (Path(input_dir) / SHARED_STUDENT).is_file():
            name, tensors = read_student_reference(Path(input_dir))
            _set_weights(accelerator.unwrap_model(models.pop()), tensors)
            written[0] = next((s for s in stages if s.name == name), None)

    accelerator.register_save_state_pre_hook(save_weights_by_reference)  # (before the EMA's, which they tell)
    accelerator.register_load_state_pre_hook(load_weights_by_reference)
    ema = _make_ema(accelerator, config, params, lambda folder: (folder / SHARED_STUDENT).is_file())  # each stage's average

    def superseded() -> tuple[str, ...]:
        """On a rewind: the exports and the students of stages the resumed run has not finished."""
        return (*EXPORTS, *(f"stages/{s.name}" for s in stages[state.stage :]))

    resumed = None if resume is None else _latest_checkpoint(out) if resume == "auto" else Path(resume)
    if main and resumed is not None and checkpoint_run(resumed).resolve() == out.resolve():  # (before its student.json is read)
        restore_history_students(out, resumed, stages[: _saved_stage(resumed) or 0], echo)
    # (before _resume cuts losses.jsonl to the checkpoint's; FSDP's sharded weights are not set from a student here)
    ended = None if fsdp else stage_ended_after(out, resumed, stages, config)
    accelerator.wait_for_everyone()
    start_step = _resume(accelerator, out, resume, state, echo, superseded)
    if resume not in (None, "auto") and main:  # another run's checkpoint continued in this --out
        take_finished_stages(out, run, stages[: state.stage], echo, Path(resume))
    accelerator.wait_for_everyone()
    ended_checkpoint = None
    if ended is not None:  # a run stopped between a stage's student and its checkpoint: the stage is over
        stage, losses_text = ended
        _load_student(accelerator.unwrap_model(model), stage_folder(out, stage))
        if ema is not None:
            ema.reset(params)
        optimizer.optimizer.state.clear()
        stopped_at = state.step
        state.step, state.stage, state.stage_step, state.stage_seconds = _stage_end_step(out, stage), stage.index + 1, 0, 0.0
        written[0], start_step = stage, state.step
        if main:
            write_text_atomic(out / "losses.jsonl", losses_text)
            for row in (json.loads(line) for line in losses_text.splitlines()[stopped_at:]):  # (TensorBoard purged them)
                if row["step"] % config.log.every == 0:
                    for tag in ("distill/loss", f"distill/stage_{row['stage']}"):
                        log(tag, row["loss"], row["step"])
                    log("distill/lr", row["lr"], row["step"])
        accelerator.wait_for_everyone()
        ended_checkpoint = _save_checkpoint(accelerator, out, state.step, config.log.keep_checkpoints)
        if main and sample_clip is not None:
            _log_sample(accelerator.unwrap_model(model), vae, prompt_cache, sample_clip, config, out, state.step, writer,
                        stage.student_steps, scheduler=scheduler)  # fmt: skip
        if echo is not None and main:
            echo(f"--resume: stage {stage.index} had ended at step {state.step} (its student {quoted_path(stage_folder(out, stage))}) before the "
                 f"run was stopped: checkpoints/{ended_checkpoint.name} is written now, and the run goes on from there")  # fmt: skip

    budgets = [f"run.{key} {recorded_run[key]:g} → {getattr(config.run, key):g}" for key in ("max_steps", "max_minutes")
               if recorded_run.get(key, getattr(config.run, key)) != getattr(config.run, key)]  # fmt: skip
    if budgets and state.stage and echo is not None and main:
        done = ", ".join(s.name for s in stages[: state.stage])
        echo(f"--resume: {' and '.join(budgets)} applies to the stages not yet finished; {done} "
             f"{'is' if state.stage == 1 else 'are'} finished and not trained again")  # fmt: skip

    def teacher_of(index: int) -> torch.nn.Module | None:
        """Stage 0: the teacher checkpoint; stage k: the student stage k − 1 wrote."""
        if index >= len(stages):
            return None
        if index == 0:
            return make_teacher(teacher_checkpoint, config, device)
        missing = _missing_teacher(out, run, stages, index)
        if missing is not None:  # (a resumed run whose stages/ lost it)
            raise Gen3cInputError(missing)
        return make_teacher(stage_folder(out, stages[index - 1]), config, device)

    teacher = teacher_of(state.stage)

    # 4. Data
    accum = config.train.gradient_accumulation_steps
    sampler = StepSampler(
        num_clips, config.train.batch_size, config.run.seed, start_step * accum, accelerator.process_index, accelerator.num_processes
    )
    batches = _micro_batches(config, sampler, dataset, latents, vae, sigma_data, device)

    # 5. Stages and steps
    result = _run_result(accelerator, out, start_step)
    result.checkpoint = ended_checkpoint
    steps_left = math.inf if stop_after is None else stop_after
    # run.max_minutes is each stage's budget, counted as in `gen3c train`: from the checkpoint's
    # record on (a resumed run does not get a fresh budget); the steps' time, samples included.
    budget = 60 * config.run.max_minutes
    losses_file = (out / "losses.jsonl").open("a") if main else None
    last_echo = -math.inf
    sampled = None  # the step last sampled in this invocation

    def loss_of(x0: Tensor, buffers: Tensor, generator: torch.Generator) -> Tensor:
        """The running stage's loss, taught by its teacher."""
        return stage_loss(model, teacher, stages[state.stage], x0, buffers, text.to(device), negative_text.to(device), scheduler,
                          generator, augment_sigma=config.train.condition_augment_sigma).loss  # fmt: skip

    while state.stage < len(stages) and state.step - start_step < steps_left:
        stage = stages[state.stage]
        # The bar counts the steps this invocation runs in the stage (--stop_after may end it sooner);
        # none are left where a resume lowered run.max_steps below the steps the stage has done.
        todo = max(0, int(min(stage.max_steps - state.stage_step, steps_left - (state.step - start_step))))
        if todo == 0 and echo is not None and main:
            echo(f"stage {stage.index}: {counted(state.stage_step, 'step')} done, {budget_of(config, stage)}: "
                 "nothing left to train, the stage ends")  # fmt: skip
        label = f"Stage {stage.index}: {stage.label}"
        advance = progress(label, todo) if progress is not None and main and todo else None
        elapsed, stage_started = state.stage_seconds, time.monotonic()
        out_of_time = bool(budget) and elapsed >= budget
        while state.stage_step < stage.max_steps and state.step - start_step < steps_left and not out_of_time:
            lr = config.train.lr * lr_factor(config, state.stage_step, stage.max_steps)  # each stage its own schedule
            step_loss = _optimizer_step(accelerator, model, optimizer, params, config, state.step, lr, batches, loss_of, ema)
            written[0] = None
            state.step += 1
            state.stage_step += 1
            result.losses.append(step_loss)
            if losses_file is not None:
                losses_file.write(json.dumps({"step": state.step, "stage": stage.index, "loss": step_loss, "lr": lr}) + "\n")
                losses_file.flush()
            if state.step % config.log.every == 0:
                log("distill/loss", step_loss, state.step)
                # At the run's step, as every tag: a resumed run's purge_step (the run's step) then drops
                # the points of steps it runs again (at the stage's own step they stayed, and came twice).
                log(f"distill/stage_{stage.index}", step_loss, state.step)
                log("distill/lr", lr, state.step)
                if echo is not None and main and time.monotonic() - last_echo >= 10:
                    last_echo = time.monotonic()
                    echo(f"stage {stage.index} ({stage.label}) step {state.stage_step}: loss {step_loss:.4f}")
            if sample_clip is not None and config.log.sample_every > 0 and state.step % config.log.sample_every == 0:
                with ema_weights(ema, params):  # a preview of the stage's student
                    _log_sample(accelerator.unwrap_model(model), vae, prompt_cache, sample_clip, config, out, state.step, writer, stage.student_steps, scheduler=scheduler)
                sampled = state.step
            elapsed = state.stage_seconds + time.monotonic() - stage_started
            out_of_time = bool(budget) and out_of_time_everywhere(accelerator, elapsed >= budget)
            stage_done = state.stage_step >= stage.max_steps or out_of_time
            if config.log.checkpoint_every and state.step % config.log.checkpoint_every == 0 and not stage_done and state.step - start_step < steps_left:
                state.stage_seconds = elapsed  # recorded in the checkpoint; its writing is not counted
                result.checkpoint = _save_checkpoint(accelerator, out, state.step, config.log.keep_checkpoints)
                stage_started = time.monotonic()
            if advance is not None:
                advance(1)
        if state.stage_step < stage.max_steps and not out_of_time:
            state.stage_seconds = elapsed  # stopped inside the stage (stop_after)
            break
        # The stage is over: its student is written, then teaches the next stage.
        if out_of_time and echo is not None and main:
            echo(f"stage {stage.index}: the time budget (run.max_minutes = {config.run.max_minutes:g}) is spent after "
                 f"{state.stage_step} of {stage.max_steps} steps ({elapsed / 60:.2f} min of training): the stage ends")  # fmt: skip
        # The stage's student (its EMA, if any) as written (model.export_dtype) teaches the next stage,
        # whose student starts from it (as progressive distillation starts each student from its
        # teacher) and averages anew; its checkpoint then takes the weights from the written student.
        if ema is not None:
            ema.copy_to(params)
        with torch.no_grad():
            for p in params:
                if p.dtype != export_dtype:
                    p.copy_(p.to(export_dtype))
        if ema is not None:
            ema.reset(params)
        unwrapped = _full_model(accelerator, model)
        if main:
            summary = _stage_summary(stage, _stage_losses(out, stage.index), elapsed)
            meta = {"num_steps": stage.student_steps, "guidance": 0.0, "distilled": [s.describe() for s in stages[: stage.index + 1]],
                    "distill_stage": summary, STAGE_END: _stage_end(out, state.step)}  # fmt: skip
            _export(unwrapped, vae, prompt_cache, config, out, False, folder=f"stages/{stage.name}", extra_meta=_meta(config, meta), scheduler=scheduler)
            result.stages.append(summary)
        accelerator.wait_for_everyone()
        written[0] = stage
        state.stage += 1
        state.stage_step, state.stage_seconds = 0, 0.0
        optimizer.optimizer.state.clear()  # a fresh AdamW for the next stage
        # The next stage's start is a checkpoint (the last stage's: the run's end): a run stopped in
        # the next stage resumes there, with this stage's student, not inside this stage.
        result.checkpoint = _save_checkpoint(accelerator, out, state.step, config.log.keep_checkpoints)
        if main and sample_clip is not None and sampled != state.step:  # (after the checkpoint: minutes at 7B)
            _log_sample(unwrapped, vae, prompt_cache, sample_clip, config, out, state.step, writer, stage.student_steps, scheduler=scheduler)
        if echo is not None and main and state.stage < len(stages):
            echo(f"stage {stage.index} done: its {stage.student_steps}-step student is {quoted_path(stage_folder(out, stage))} (a checkpoint "
                 f"folder: --checkpoint_dir); checkpoints/{result.checkpoint.name} resumes at stage {state.stage}")  # fmt: skip
        teacher = teacher_of(state.stage)
    result.steps = state.step
    result.seconds = state.stage_seconds + sum(_stage_seconds(out, s) for s in stages[: state.stage])
    if losses_file is not None:
        losses_file.close()

    # 6. Outputs
    if result.checkpoint != out / "checkpoints" / f"step_{state.step:07d}":  # (not saved at the last stage's end)
        result.checkpoint = _save_checkpoint(accelerator, out, state.step, config.log.keep_checkpoints)
    finished = state.stage >= len(stages)
    if finished:
        unwrapped = _full_model(accelerator, model)
        if main:
            last = stages[-1]
            meta = {"num_steps": last.student_steps, "guidance": 0.0, "distilled": [s.describe() for s in stages]}
            drop_model_card(out)
            result.exported = _export(unwrapped, vae, prompt_cache, config, out, False, extra_meta=_meta(config, meta), scheduler=scheduler)
            write_distill_card(out, config, stages, result)
    _end_run(accelerator, writer)
    return result


def _meta(config: Config, meta: dict) -> dict:
    """A student's ``gen3c_model.json`` additions: its sampling defaults, its teacher (as
    ``model.checkpoint`` names it, and its weights by sha256, where they are local files: a name
    such as ``tiny`` or a folder trained again names other weights over time), the distillation
    of a teacher that is itself a student before this run's stages (``distilled``: the whole
    lineage from the guided model), and the dtype the teacher runs in (a small model runs in float32)."""
    from gen3c.models.packaged import checkpoint_info, resolve_checkpoint

    folder = resolve_checkpoint(config.model.checkpoint)
    teacher = checkpoint_info(folder)
    extra = {**meta, "teacher": config.model.checkpoint, "teacher_guidance": config.distill.guidance}
    if (reference := teacher_checkpoint_reference(folder)) is not None:
        extra["teacher_sha256"] = reference["sha256"]
    if "distilled" in meta and isinstance(teacher.get("distilled"), list):
        extra["distilled"] = [*teacher["distilled"], *meta["distilled"]]
    if "dtype" in teacher:
        extra["dtype"] = teacher["dtype"]
    return extra


def _stage_seconds(out: Path, stage: Stage) -> float:
    """The training time of a finished stage, over all invocations (its student's record)."""
    from gen3c.models.packaged import checkpoint_info

    return float(checkpoint_info(str(stage_folder(out, stage)))["distill_stage"]["seconds"])


def _stage_losses(out: Path, index: int) -> list[float]:
    path = out / "losses.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    return [r["loss"] for r in rows if r.get("stage") == index]


def _stage_summary(stage: Stage, losses: list[float], seconds: float) -> dict:
    _, first_loss, last_loss = loss_ends(losses)
    return {"stage": stage.name, "what": stage.describe(), "steps": len(losses), "seconds": seconds,
            "first_loss": first_loss, "last_loss": last_loss}  # fmt: skip


def write_distill_card(out: Path, config: Config, stages: list[Stage], result: TrainResult) -> Path:
    """``MODEL_CARD.md`` in ``out`` and ``model/``: the teacher, the stages and their losses."""
    import platform

    from gen3c.models.packaged import checkpoint_info

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"
    config = config_used(config, out, result.steps)
    d, t = config.data, config.train
    last = stages[-1]
    student = checkpoint_info(str(out / "model")) if (out / "model").is_dir() else {}
    weights = "; ".join(f"{name} sha256 `{digest}`" for name, digest in student.get("teacher_sha256", {}).items())
    earlier = student.get("distilled", [])[: -len(stages)]  # a teacher that is itself a student: its own distillation
    lines = [
        "# Model card: a few-step gen3c student distilled with `gen3c train` (mode distill)",
        "",
        f"- **Teacher**: `{config.model.checkpoint}`" + (f" (transformer {weights})" if weights else "")
        + f", sampled with {last.teacher_steps if len(stages) == 1 else stages[0].teacher_steps} "
        f"steps and guidance {config.distill.guidance:g} ({'2 DiT forwards' if config.distill.guidance else '1 DiT forward'} per step)"
        + (f"; itself a distilled student ({'; '.join(earlier)})." if earlier else "."),
        f"- **Student**: {last.student_steps} steps × 1 forward (guidance 0), the teacher's architecture and conditioning "
        "(81 input channels, first-frame replacement); its `gen3c_model.json` states `num_steps` and `guidance`.",
        f"- **Data**: {d.kind} clips" + (f" ({d.num_clips} clips, seeds from 1000000)" if d.kind == "procedural" else f" from {len(d.paths)} folders")
        + f", {d.resolution[0]}×{d.resolution[1]}, {d.num_frames} frames.",
        f"- **Optimisation**: AdamW lr {t.lr} ({t.lr_schedule}, warm-up {t.warmup_steps} per stage, fresh state per stage), "
        f"batch {t.batch_size} × accumulation {t.gradient_accumulation_steps}"
        + (f" × {result.processes} processes ({result.parallel})" if result.processes > 1 else "") + f", on {device}"
        + (f"; each stage's student is its EMA of decay {t.ema_decay:g}." if t.ema_decay else "."),
        *([f"- **Changed on resume**: {describe_changes(changes)}."] if (changes := changes_used(out, result.steps)) else []),
        f"- **Made**: {made_with()}.",
        "",
        "| stage | what | steps | minutes | loss first → last |",
        "|---|---|---:|---:|---|",
    ]
    for stage in stages:
        s = checkpoint_info(str(stage_folder(out, stage)))["distill_stage"]
        lines.append(f"| {stage.name} | {s['what']} | {s['steps']} | {s['seconds'] / 60:.1f} | {s['first_loss']:.4f} → {s['last_loss']:.4f} |")
    if result.exported is not None and result.exported.is_dir():
        lines += ["", f"- **Size**: {folder_megabytes(result.exported):.2f} MB ({result.exported.name}/)."]
    lines += [
        "",
        "The loss is EDM's weighted error of the denoised estimate against the teacher's target "
        "(the squared error of the network outputs). Compare teacher and student with "
        "`gen3c eval --generator gen3c --checkpoint_dir TEACHER --compare_models OUT/model`.",
        "",
    ]
    text = "\n".join(lines)
    write_text_atomic(out / "MODEL_CARD.md", text)
    if result.exported is not None and result.exported.is_dir():
        write_text_atomic(result.exported / "MODEL_CARD.md", text)
    return out / "MODEL_CARD.md"
