"""A long run's finished chunks kept on disk, so ``--resume`` continues after a crash or Ctrl-C.

A run of several chunks keeps its work in ``FOLDER/NAME.partial/`` beside its outputs::

    run.json                 the request (and its sha256), the sha256 of each input's
                             contents, the chunk plan, the seed, the generator settings
                             that decide the frames (the identity of its checkpoint
                             and of its LoRA adapter included)
    chunk_0000/              one folder per finished chunk, renamed into place when complete
        video_00000.png …        the frames the video received, lossless (uint8 PNG)
        buffer_masks_00000.png … the mask video's frames (with save_buffer)
        state.safetensors        the chunk's last frame (float32, the next chunk's condition)
                                 and the cache state the next chunk starts from

A resumed run must be the same request on the same inputs: an input file or folder whose
contents changed since (an edited depth map, a re-exported ViPE result) would give a video made
of two different scenes, so it is refused; so is another chunk plan or generator (a swapped
checkpoint, another sampler or step count: :func:`output_settings`). A folder moved or renamed
with its inputs and output is no other request: inputs inside it count by their path from it
(:func:`_moved_with_output`), their contents by sha256 as ever; so do a checkpoint, adapter or
cache folder inside it. It re-reads the request's input (the cache plan is rebuilt from it), restores the
last finished chunk's state, re-encodes the kept frames and generates the rest. Both an
uninterrupted run and a resumed one encode the video from the same uint8 frames, so with a
deterministic generator (the preview; the gen3c model, whose chunk k draws its seed's (k+1)-th
noise, told k when resumed too) the two videos are identical. A run that finishes removes the
folder; nothing is ever unpickled from it. A folder that holds no finished chunk (its run killed
in the first chunk) has nothing to lose: the next run, changed or not, replaces it, unless its
run is still going (it holds the folder's lock while it runs).

Cost: one chunk of 121 frames at 704×1280 is ~90 MB of PNG for the demo scene (up to the raw
327 MB for noisy content; more with ``--save_buffer``), kept until the run finishes, and a few
seconds of PNG encoding per chunk, against minutes of diffusion per chunk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import Tensor

from gen3c.depth.names import DEFAULT_DEPTH_ESTIMATOR
from gen3c.errors import (
    Gen3cInputError,
    counted,
    disk_full_reason,
    first_line,
    is_disk_full,
    note,
    path_to_copy,
    quoted,
    quoted_path,
)
from gen3c.io.atomic import publish, remove_stale_parts, try_flock, write_text_atomic
from gen3c.io.formats import json_default, loads_json
from gen3c.io.hashing import update_from_file
from gen3c.io.paths import exists, expand_home
from gen3c.pipelines.settings import OPTION_PATH_FIELDS

# 2: run.json holds the inputs' sha256; 3: a file's is sha256sum's, as the run record's (one hash serves both);
# 4: the gen3c model's chunk k starts from its seed's (k+1)-th noise draw (every chunk of format 3 started
# from the first): chunks kept by an older run would join a video made otherwise, so they are not resumed.
FORMAT = 4
#: How a run cut short is continued from its kept chunks, as each caller offers it (said with what
#: is kept when a run stops: :meth:`PartialRun.kept_line`): the command line, and ``gen3c batch``
#: (a failed job is skipped until ``--retry_failed``; run again, it resumes from its chunks).
CLI_RESUMES = "run the same command with --resume"
BATCH_RESUMES = "run the batch again with --retry_failed"
_THREADS = min(8, os.cpu_count() or 1)
_CHUNK = re.compile(r"^chunk_(\d{4})$")


#: The request fields that can name an input file or folder (``intrinsics`` may be a file too).
INPUT_FIELDS = ("input_image_path", "vipe_path", "multiview_npz", "depth_path", "camera_file", "intrinsics")
#: The request fields that may name a file or folder, the generator options' :data:`OPTION_PATH_FIELDS`
#: aside: what a folder moved with them maps (:func:`with_paths_moved`).
MOVABLE_FIELDS = (*INPUT_FIELDS, "depth_estimator")


#: Generator settings (:meth:`~gen3c.pipelines.gen3c.Gen3cGenerator.settings`) that say how it
#: runs, not what it computes (the same arithmetic, rounding aside): a resumed run may change them.
#: Any other setting, one added later too, must be the interrupted run's.
RUN_ONLY_SETTINGS = ("guidance_batch", "compile", "dit_memory", "device", "num_gpus")
#: Attention that computes exact softmax attention in the compute dtype (diffusers' own processor,
#: PyTorch SDPA, FlashAttention-4): which one ran changes a frame by rounding only, as a fallback
#: on another GPU does; a quantising kernel (cudnn_fp8) or another diffusers backend counts by name.
EXACT_ATTENTION = ("diffusers", "sdpa", "flash4")
#: Settings an earlier gen3c did not record (the LoRA adapter's sha256: it was told by its path
#: alone): a ``run.json`` without one cannot tell it, so it is resumed, saying so.
LATER_SETTINGS = ("lora_sha256",)
#: Settings an earlier gen3c did not record because it had no such setting: every run it made had
#: this value (GEN3C's default), so a ``run.json`` without one is read as having it.
ADDED_SETTINGS = {"noise_aug_strength": 0.0}


def output_settings(settings: dict[str, Any] | None, default: Callable[[Any], Any] = json_default) -> dict[str, Any] | None:
    """The generator ``settings`` that decide the frames (all but :data:`RUN_ONLY_SETTINGS`, the
    kernels of :data:`EXACT_ATTENTION` as one), as ``run.json`` holds them (JSON values; ``default``:
    ``json.dumps``' for the rest, ``str`` as a gen3c before :func:`~gen3c.io.formats.json_default`
    wrote them); None for a generator that has none (the preview). The
    checkpoint counts by the sha256 of its ``checksums.json`` where it has one (a moved copy is
    the same checkpoint), else by its folder."""
    if settings is None:
        return None
    kept = {key: value for key, value in settings.items() if key not in RUN_ONLY_SETTINGS}
    if kept.get("attention") in EXACT_ATTENTION:
        kept["attention"] = "exact"
    if kept.get("checkpoint_checksums_sha256") is not None:
        kept.pop("checkpoint", None)
    return json.loads(json.dumps(kept, default=default))


def request_fingerprint(request_dict: dict[str, Any]) -> str:
    """sha256 of a request's settings (canonical JSON), with the paths it names made absolute:
    ``out`` and ``./out`` (or the same input by a relative and an absolute path) are one run."""
    settings = dict(request_dict)
    if "depth_estimator" in settings and settings["depth_estimator"] is None:
        # The default (None) runs MoGe, as a gen3c that recorded it by name ran it: the same run
        settings["depth_estimator"] = DEFAULT_DEPTH_ESTIMATOR
    for field in (*INPUT_FIELDS, "video_save_folder"):
        value = settings.get(field)
        if isinstance(value, str) and value and (field != "intrinsics" or exists(value)):
            settings[field] = os.path.abspath(expand_home(value, f"--{field}"))
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def input_digests(request_dict: dict[str, Any], read: dict[str, bytes] | None = None) -> dict[str, str]:
    """sha256 of the contents of each input the request names, by field: a file's bytes (as
    ``sha256sum`` prints it), or a folder's files that its reader reads (relative names and
    bytes, in name order: :func:`input_files`; a ViPE result by the files of the clip read,
    ``vipe_clip`` or its ``rgb/<clip>.mp4``, whose depth and cameras are read with it).
    Fields naming nothing on disk are left out. ``run.json`` and the run record
    (``inputs_sha256``) hold the same digests, so a long run hashes its inputs once.

    ``read``: the bytes of inputs the run has already read, by field (its camera file:
    :meth:`~gen3c.pipelines.request.GenerationRequest.read_input_contents`): hashed as they were
    read, not read again, so the hash is of the very contents the run used.
    """
    read = read or {}
    digests = {}
    for field in INPUT_FIELDS:
        value = request_dict.get(field)
        if field in read and isinstance(value, str) and value:
            digests[field] = _digest([("", read[field])], names=False)
            continue
        if not (isinstance(value, str) and value and exists(value)):
            continue
        files = input_files(field, Path(value).expanduser(), request_dict.get("vipe_clip"))
        digests[field] = _digest(files, names=[name for name, _ in files] != [""])  # (a file alone: sha256sum's)
    return digests


def input_files(field: str, path: Path, clip: str | None = None) -> list[tuple[str, Path]]:
    """The files of the input ``path`` given as ``field`` that its reader reads, by name relative
    to the input's folder, in name order; ``[("", path)]`` for a file read alone. A ViPE result
    (named by its folder, with ``clip``: ``--vipe_clip``, or by its ``rgb/<clip>.mp4``) counts by
    the files ViPE wrote for the clip read (:func:`~gen3c.io.vipe.clip_files`: its video, cameras,
    depth and mask), not by its other clips; all of its ``rgb/``, ``pose/``, ``intrinsics/``,
    ``depth/`` and ``mask/`` where no one clip is named (the reader refuses that); a sample
    directory by its :data:`~gen3c.io.gen3c_sample.SAMPLE_FILES`: files that gen3c writes there
    (a run's outputs and kept chunks, when ``--video_save_folder`` lies inside the input) or that
    no reader reads (ViPE's ``vipe/``) do not change the input. Another folder: all its files."""
    from gen3c.io.gen3c_sample import SAMPLE_FILES, sample_file
    from gen3c.io.vipe import clip_files, resolve_vipe

    if field == "vipe_path":
        try:
            root, clip = resolve_vipe(path, clip)
        except Gen3cInputError:  # (not one clip of a ViPE result: the reader refuses it; all of it counts)
            return _whole_vipe_root(path)
        return sorted((p.relative_to(root).as_posix(), p) for p in clip_files(root, clip) if p.is_file())
    if path.is_file():
        return [("", path)]
    if field == "input_image_path":
        try:
            found = [sample_file(path, name) for name in SAMPLE_FILES]
        except Gen3cInputError:  # two files for one name: the reader refuses the folder; all of it counts
            found = list(path.rglob("*"))
    else:
        found = list(path.rglob("*"))
    return sorted((p.relative_to(path).as_posix(), p) for p in found if p.is_file())


def _whole_vipe_root(path: Path) -> list[tuple[str, Path]]:
    """Every file of the ViPE result ``path`` (its folder, or ``rgb/<clip>.mp4`` in it) in its
    ``rgb/``, ``pose/``, ``intrinsics/``, ``depth/`` and ``mask/``, every clip's: how gen3c counted
    a ViPE input before it counted the clip's files alone (:func:`counted_before`)."""
    from gen3c.io.vipe import VIPE_FOLDERS

    if path.is_file() and path.parent.name == "rgb":
        path = path.parent.parent
    if path.is_file():
        return [("", path)]
    found = [p for folder in (*VIPE_FOLDERS, "depth", "mask") for p in (path / folder).rglob("*")]
    return sorted((p.relative_to(path).as_posix(), p) for p in found if p.is_file())


def counted_before(field: str, value: Any, recorded: Any, digests: dict[str, str] | None = None) -> bool:
    """Whether ``recorded``, the digest an earlier gen3c wrote for the input ``value`` of ``field``,
    is of its contents as they are now, counted as that gen3c counted them: a ViPE result by all
    its clips (a result of one clip as ViPE writes it hashes alike either way). ``digests``: kept
    across calls (a batch's plan), so a root is read once."""
    if field != "vipe_path" or not (isinstance(recorded, str) and isinstance(value, str) and value and exists(value)):
        return False
    digests = {} if digests is None else digests
    key = f"{value}\0every clip"
    if key not in digests:
        files = _whole_vipe_root(Path(value).expanduser())
        digests[key] = _digest(files, names=[name for name, _ in files] != [""])
    return digests[key] == recorded


def _digest(files: list[tuple[str, Path | bytes]], names: bool = True) -> str:
    """sha256 of (relative name, contents) pairs, or of the contents alone without ``names``;
    contents are a file to read or bytes already read."""
    digest = hashlib.sha256()
    for name, contents in files:
        if names:
            digest.update(name.encode("utf-8") + b"\0")
        if isinstance(contents, bytes):
            digest.update(contents)
            continue
        update_from_file(digest, contents)
    return digest.hexdigest()


def partial_dir(folder: str | os.PathLike, name: str) -> Path:
    """Where a run named ``name`` keeps its finished chunks."""
    return Path(folder) / f"{name}.partial"


class PartialRun:
    """The finished chunks of one run (see the module docstring).

    Use :meth:`open`; ``finished`` is the number of chunks already on disk; ``inputs``: the
    sha256 of the run's inputs (:func:`input_digests`), for its run record; ``resume_with``: how
    the caller's user continues the run (:data:`CLI_RESUMES`), None where the caller does not (the
    GUI drops the chunks).
    """

    def __init__(self, path: Path, finished: int, num_chunks: int, inputs: dict[str, str], resume_with: str | None = CLI_RESUMES) -> None:
        self.path = path
        self.finished = finished
        self.num_chunks = num_chunks
        self.inputs = inputs
        self.resume_with = resume_with
        self._told = False  # an error raised here says what is kept and what to do itself (kept_line)
        self._pending: Path | None = None
        self._held = contextlib.ExitStack()  # the folder's lock while this run writes it (_replace_unstarted)

    @classmethod
    def open(
        cls,
        folder: str | os.PathLike,
        name: str,
        request_dict: dict[str, Any],
        chunks: list[tuple[int, int]],
        *,
        resume: bool,
        read: dict[str, bytes] | None = None,
        generator_settings: dict[str, Any] | None = None,
        restart_changed: bool = False,
        resume_with: str | None = CLI_RESUMES,
    ) -> PartialRun:
        """The work folder of the run ``request_dict`` (created, or found and checked with ``resume``);
        ``read``: the inputs the run has read already (:func:`input_digests`);
        ``generator_settings``: what the generator says it runs with (None: it says nothing);
        ``restart_changed``: with ``resume``, chunks of this request made with another chunk plan or
        generator are deleted and the run starts from the first chunk, saying why, instead of being
        refused (``gen3c batch``: a job redoes itself; ``--resume`` refuses); refused still where
        the folder holds files gen3c did not write (:func:`not_a_run_folder`) or a run holds it;
        ``resume_with``: how the caller's user continues a run cut short (:class:`PartialRun`).

        Raises:
            Gen3cInputError: an unfinished run is there and ``resume`` is False; or ``resume`` and
                it was made by a different request, chunk plan or generator, or cannot be read.
        """
        path = partial_dir(folder, name)
        record = run_record(request_dict, chunks, read, generator_settings)
        if path.exists() and not path.is_dir():
            raise Gen3cInputError(
                f"{quoted_path(path)} is a file where a long run keeps its finished chunks: move it away, or pass another --video_save_name"
            )
        if _replace_unstarted(path):
            note(f"{quoted_path(path)} held no finished chunk of an earlier run of {name!r}: replaced it, starting from the first chunk", stacklevel=3)
        elif path.exists():
            _refuse_chunk_files(path)
            finished = _finished_chunks(path)
            if not resume:
                with try_flock(path, held=_held_by_another_run(path, "a run")):  # its run is still going: not interrupted
                    pass
                raise Gen3cInputError(
                    f"{quoted_path(path)} holds {finished} finished chunk{'' if finished == 1 else 's'} of an interrupted run of {name!r}: "
                    "pass --resume to continue it, "
                    "or delete that folder to start over"
                )
            stored = _check_record(path, record)  # (a run.json of gen3c: the folder is ours)
            changed = _changed_output(stored, record, output_settings(generator_settings, default=str))
            if not (changed and restart_changed and not not_a_run_folder(path) and remove_unheld(path)):
                _check_output(path, stored, record, changed)
                # held first: another run still going writes there (its chunk in the making is no stray)
                partial = cls(path, min(finished, len(chunks)), len(chunks), record["inputs"], resume_with)._hold()
                remove_unfinished_chunk(path)  # a chunk that was being written when the run died
                _remove_chunks_past_a_gap(path, partial.finished)
                _remove_stale_outputs(Path(folder), name)
                return partial
            note(f"re-ran from the first chunk: kept chunks were made with other settings ({changed})", stacklevel=3)
        elif resume:
            note(f"--resume: no unfinished run in {quoted_path(path)}; starting from the first chunk", stacklevel=3)
        path.mkdir(parents=True)
        partial = cls(path, 0, len(chunks), record["inputs"], resume_with)._hold()
        write_text_atomic(path / "run.json", json.dumps(record, indent=1, default=json_default))
        # (a run killed earlier, whose kept chunks were deleted to start over, left its video's)
        _remove_stale_outputs(Path(folder), name)
        return partial

    def _hold(self) -> PartialRun:
        """Hold the folder's lock while this run writes it; refuse a folder another run holds. Where
        the file system cannot lock, the run goes on unlocked (as without this check)."""
        self._held.enter_context(try_flock(self.path, held=_held_by_another_run(self.path, "--resume")))
        return self

    # -- writing ----------------------------------------------------------------------------

    def save_frames(self, index: int, arrays: dict[str, np.ndarray]) -> None:
        """Write chunk ``index``'s frames ((T, H, W, 3) uint8 per video) into its pending folder."""
        pending = self._pending = Path(tempfile.mkdtemp(prefix=f".chunk_{index:04d}.", dir=self.path))

        def write(item: tuple[str, int, np.ndarray]) -> None:
            key, t, frame = item
            ok, data = cv2.imencode(".png", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
            if not ok:
                raise OSError(f"could not encode frame {t} of chunk {index} as PNG")
            (pending / f"{key}_{t:05d}.png").write_bytes(data.tobytes())

        try:
            with ThreadPoolExecutor(_THREADS) as pool:  # OpenCV encodes outside the GIL
                list(pool.map(write, [(key, t, frame) for key, array in arrays.items() for t, frame in enumerate(array)]))
        except BaseException as exc:  # (Ctrl-C: map drops the frames not yet started) the half-kept chunk goes
            self._drop_pending(index, exc)
            raise

    def finish_chunk(self, index: int, last_frame: Tensor, plan_state: dict[str, Tensor]) -> None:
        """Add the chunk's state and rename its folder into place: from now on it counts as done."""
        from safetensors.torch import save_file

        if self._pending is None:
            raise RuntimeError(f"chunk {index} has no frames saved")
        tensors = {"last_frame": last_frame.detach().float().cpu().contiguous()}
        tensors.update({f"plan.{k}": v.detach().cpu().contiguous() for k, v in plan_state.items()})
        try:
            save_file(tensors, str(self._pending / "state.safetensors"))
            publish(self._pending, self.path / f"chunk_{index:04d}")  # (mkdtemp and safetensors make owner-only files)
        except BaseException as exc:
            self._drop_pending(index, exc)
            raise
        self._pending = None
        self.finished = index + 1

    def _drop_pending(self, index: int, exc: BaseException) -> None:
        """Remove the half-kept chunk ``index`` after ``exc`` (its space is freed at once); a disk
        that filled up is said in one line: what is kept, and how to go on."""
        if self._pending is not None:
            shutil.rmtree(self._pending, ignore_errors=True)
            self._pending = None
        if not is_disk_full(exc):
            return
        self.recount()  # (a chunk renamed into place before its folder's flush failed counts)
        then = (f"{self._kept_count()} there: free some space, then {self.resume_with or 'run again'}" if self.finished else
                "no chunk was finished: free some space, or pass a --video_save_folder on a larger disk, then run again")  # fmt: skip
        self._told = True
        raise Gen3cInputError(f"the disk of {quoted_path(self.path)} filled up while chunk {index + 1} was kept ({disk_full_reason(exc)}); {then}") from None

    # -- reading ----------------------------------------------------------------------------

    def load_state(self) -> tuple[Tensor, dict[str, Tensor]]:
        """The last finished chunk's last frame (3, H, W) and the plan state it left."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = self.path / f"chunk_{self.finished - 1:04d}" / "state.safetensors"
        try:
            tensors = load_file(str(path))
        except (OSError, SafetensorError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
            raise self.refusal(f"--resume: {quoted_path(path)} is unreadable ({why}): {self._redo(path.parent)}") from None
        state = {k.removeprefix("plan."): v for k, v in tensors.items() if k.startswith("plan.")}
        if "last_frame" not in tensors:
            raise self.refusal(f"--resume: {quoted_path(path)} has no last frame: {self._redo(path.parent)}")
        return tensors["last_frame"], state

    def load_frames(
        self, index: int, keys: list[str], expected: int, sizes: dict[str, tuple[int, ...]] | None = None
    ) -> dict[str, np.ndarray]:
        """Chunk ``index``'s kept frames per video key, (T, H, W, 3) uint8. ``sizes``: the frame
        shape of each key in the chunks read before (filled in from this one's where missing)."""
        folder = self.path / f"chunk_{index:04d}"
        sizes = {} if sizes is None else sizes
        arrays = {}
        for key in keys:
            files = sorted(folder.glob(f"{key}_*.png"))
            if len(files) != expected:
                raise self.refusal(f"--resume: {quoted_path(folder)} holds {len(files)} {key} frames, not {expected}: {self._redo(folder)}")
            with ThreadPoolExecutor(_THREADS) as pool:
                frames = list(pool.map(lambda f: cv2.imread(str(f), cv2.IMREAD_COLOR), files))
            shapes = Counter(frame.shape for frame in frames if frame is not None)
            size = sizes.setdefault(key, shapes.most_common(1)[0][0] if shapes else ())
            bad = next((f for f, frame in zip(files, frames, strict=True) if frame is None or frame.shape != size), None)
            if bad is not None:  # (a damaged file, or one swapped for another image)
                what = "unreadable" if cv2.imread(str(bad), cv2.IMREAD_COLOR) is None else "not the size of the run's other frames"
                raise self.refusal(f"--resume: {quoted_path(bad)} is {what}: {self._redo(folder)}")
            arrays[key] = np.stack([f[..., ::-1] for f in frames])
        return arrays

    def refusal(self, message: str) -> Gen3cInputError:
        """The error for kept chunks that cannot be resumed (``message`` says what to do with them):
        :meth:`kept_line` adds nothing to it."""
        self._told = True
        return Gen3cInputError(message)

    def _redo(self, chunk: Path) -> str:
        """What to do about the damaged kept ``chunk``: delete it alone, which --resume makes again
        with the chunks after it (those before it are kept), or the whole folder."""
        later = self.finished - 1 - int(chunk.name.removeprefix("chunk_"))
        after = " with the chunk after it" if later == 1 else f" with the {later} chunks after it" if later else ""
        return f"delete {path_to_copy(chunk)} and --resume makes it again{after}, or delete {path_to_copy(self.path)} to start over"

    def _kept_count(self) -> str:
        return f"{self.finished} of {counted(self.num_chunks, 'chunk')} {'is' if self.finished == 1 else 'are'} kept"

    def kept_line(self) -> str:
        """What the error or interrupt a run stopped on should add, once its chunks are counted
        (:meth:`recount`): how many are kept where, and how to continue them; "" when none is
        kept, the error raised here says so itself (a full disk, a damaged kept chunk), or the
        caller does not resume."""
        if not self.finished or self._told or self.resume_with is None:
            return ""
        return f"{self._kept_count()} in {quoted_path(self.path)}: {self.resume_with} to continue"

    def recount(self) -> int:
        """Set ``finished`` from the chunk folders on disk and return it: an interrupt can land
        between a chunk's rename into place and :meth:`finish_chunk` counting it."""
        self.finished = min(_finished_chunks(self.path), self.num_chunks) if self.path.is_dir() else 0
        return self.finished

    def release(self) -> None:
        """Let another run take the folder (the run ended, its chunks kept or not); the chunk it was
        keeping, unfinished (the video's writer failed after its frames were kept), goes first."""
        if self._pending is not None:
            shutil.rmtree(self._pending, ignore_errors=True)
            self._pending = None
        self._held.close()

    def remove(self) -> None:
        self.release()
        shutil.rmtree(self.path, ignore_errors=True)
        self.finished = 0  # (none kept: kept_line says nothing)


def _held_by_another_run(path: Path, this_run: str) -> Gen3cInputError:
    """The refusal of a run (``this_run``: "--resume", "a run") of an output whose kept chunks' folder another run still going holds."""
    return Gen3cInputError(
        f"{quoted_path(path)} is held by another gen3c run still going ({this_run} of the same output): wait for it to end, "
        "or pass another --video_save_folder or --video_save_name"
    )


def _replace_unstarted(path: Path) -> bool:
    """Remove ``path`` if it is the folder of a run that finished no chunk (:func:`not_a_run_folder`,
    no ``chunk_NNNN``), not locked by a run still going (:meth:`PartialRun._hold`). Returns whether it did."""
    try:
        unstarted = not not_a_run_folder(path) and not any(_CHUNK.match(p.name) for p in path.iterdir())
    except OSError:  # (gone meanwhile)
        return False
    return unstarted and remove_unheld(path)


def not_a_run_folder(path: Path) -> str:
    """Why the folder ``path`` is not one gen3c wrote for a long run ("" when it is): such a folder
    holds a ``run.json`` of gen3c and nothing but chunk folders and the hidden half-written chunk
    or ``run.json`` a killed run left. Only such a folder is ever deleted; another (a user's own of
    that name) is left alone."""
    try:
        names = [p.name for p in path.iterdir()]
    except OSError as exc:
        return f"it cannot be listed ({exc.strerror or exc})"
    try:
        stored = json.loads((path / "run.json").read_text())
    except FileNotFoundError:
        return "it has no run.json"
    except (OSError, ValueError, RecursionError) as exc:
        return f"its run.json cannot be read ({first_line(exc)})"
    if not (isinstance(stored, dict) and {"format", "sha256", "request"} <= stored.keys()):
        return "its run.json is not one gen3c writes"
    stray = [n for n in sorted(names) if n != "run.json" and not n.startswith((".chunk_", ".run."))
             and not (_CHUNK.match(n) and (path / n).is_dir())]  # fmt: skip
    return f"it holds {quoted_path(stray[0])}, which gen3c does not write there" if stray else ""


def remove_unheld(path: Path) -> bool:
    """Remove the run folder ``path`` unless a run still going holds its lock; returns whether it did."""
    with try_flock(path) as free:
        if free:
            shutil.rmtree(path)
        return free


def _refuse_chunk_files(path: Path) -> None:
    """Refuse a file (or a link to nothing) in the run folder ``path`` named as a finished chunk's
    folder: gen3c writes none, and the run would stop on it with a traceback when it renames that
    chunk into place (or take a chunk folder made into a file for a missing chunk)."""
    found = sorted(p for p in path.iterdir() if _CHUNK.match(p.name) and not p.is_dir())
    if found:
        raise Gen3cInputError(
            f"{quoted_path(found[0])} is where a long run keeps a finished chunk's folder, but it is a file gen3c did not write: "
            f"move it away, or delete {path_to_copy(path)} to start over"
        )


def _finished_chunks(path: Path) -> int:
    """Consecutive finished chunks from chunk 0."""
    done = {int(m.group(1)) for p in path.iterdir() if p.is_dir() and (m := _CHUNK.match(p.name))}
    count = 0
    while count in done:
        count += 1
    return count


def run_record(
    request_dict: dict[str, Any],
    chunks: list[tuple[int, int]] | None = None,
    read: dict[str, bytes] | None = None,
    generator_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What ``run.json`` holds for the run of ``request_dict`` (its chunk plan, where known;
    ``read``: the inputs it has read already, :func:`input_digests`; ``generator_settings``: the
    generator's, of which it keeps :func:`output_settings`)."""
    return {"format": FORMAT, "sha256": request_fingerprint(request_dict), "inputs": input_digests(request_dict, read),
            "chunks": None if chunks is None else [list(c) for c in chunks], "seed": request_dict.get("seed"),
            "generator_settings": output_settings(generator_settings), "request": request_dict}  # fmt: skip


def made_by(path: Path, request_dict: dict[str, Any], read: dict[str, bytes] | None = None) -> bool:
    """Whether the kept chunks in ``path`` are of this very request on these very inputs
    (``read``: those read already, :func:`input_digests`)."""
    try:
        _check_record(path, run_record(request_dict, read=read))
    except Gen3cInputError:
        return False
    return True


def _check_record(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Refuse a ``run.json`` in ``path`` not made by ``record``'s request on its inputs; returns it."""
    try:
        stored = loads_json((path / "run.json").read_text(), f"--resume: {quoted_path(path / 'run.json')}", "run.json of gen3c", f"delete {path_to_copy(path)} to start over")
        if not isinstance(stored, dict):
            raise ValueError("not an object")
    except Gen3cInputError:  # loads_json's (a ValueError too)
        raise
    except (OSError, ValueError) as exc:
        raise Gen3cInputError(f"--resume: {quoted_path(path / 'run.json')} is unreadable ({exc}): delete {path_to_copy(path)} to start over") from None
    if stored.get("format") != FORMAT:
        raise Gen3cInputError(f"--resume: {quoted_path(path)} was written by another gen3c version: delete it to start over")
    if stored.get("sha256") not in (record["sha256"], request_fingerprint(_without_added_defaults(record["request"]))) and not (
        _moved_with_output(stored.get("request"), record["request"]) or _changed_how_it_runs_only(stored, record["request"])
    ):
        old = stored.get("request") if isinstance(stored.get("request"), dict) else {}
        new = record["request"]
        changed = sorted(k for k in set(old) | set(new) if k != "generator_options" and old.get(k) != new.get(k))
        old_options, new_options = (d.get("generator_options") if isinstance(d.get("generator_options"), dict) else {} for d in (old, new))
        old_options = {**{key: value for key, value in ADDED_SETTINGS.items() if key in new_options}, **old_options}
        changed += sorted(k for k in set(old_options) | set(new_options) if old_options.get(k) != new_options.get(k) and k not in RUN_ONLY_SETTINGS)
        relative = [k for k in (*INPUT_FIELDS, "video_save_folder") if _is_relative_path(old.get(k), k)]
        if not changed and relative:  # the same words, run from another folder: its paths lead elsewhere
            named = ", ".join(f"--{k} {old[k]!r}" for k in relative)
            raise Gen3cInputError(
                f"--resume: {quoted_path(path)} was made by a run started in another folder, where {named} led to other files: "
                "run the command from that folder (or give those paths in full), or delete that folder to start over"
            )
        shown = ", ".join(changed[:5]) + (" …" if len(changed) > 5 else "")
        raise Gen3cInputError(
            f"--resume: {quoted_path(path)} was made by a different request (changed: {shown or 'unknown'}): "
            "run the same command as before, or delete that folder to start over"
        )
    stored_inputs = stored.get("inputs") if isinstance(stored.get("inputs"), dict) else {}
    changed = [field for field in INPUT_FIELDS if stored_inputs.get(field) != record["inputs"].get(field)
               and not counted_before(field, record["request"].get(field), stored_inputs.get(field))]  # fmt: skip
    if changed:
        named = " and ".join(f"--{field} {record['request'].get(field)!r}" for field in changed)
        raise Gen3cInputError(
            f"--resume: the contents of {named} changed since the interrupted run in {quoted_path(path)} (its chunks show the old "
            "input): resume with the input as it was, or delete that folder to start over"
        )
    return stored


def _moved_with_output(old: object, new: dict[str, Any]) -> bool:
    """Whether the kept run's request ``old`` is ``new`` in a folder moved (or renamed) with its
    output: some folder above ``old``'s output folder (the project folder), or that folder itself,
    holds it at the same path as a folder of ``new``'s does, and each path (an input, ``depth_estimator``,
    ``checkpoint_dir``, ``lora``, ``cache_dir``) that ``old`` names inside it, by an absolute path,
    ``new`` names at the same path from there; every
    other setting is the same. A run whose output folder was a relative path inside the folder it
    ran from ran from the project folder: its relative paths lead from there still. What the inputs
    hold is checked apart, by their sha256 (as ``gen3c batch`` keeps a moved folder's finished
    jobs: :func:`~gen3c.batch.manifest.make_job`)."""
    old_out = old.get("video_save_folder") if isinstance(old, dict) else None
    new_out = new.get("video_save_folder")
    if not (isinstance(old_out, str) and old_out and isinstance(new_out, str) and new_out):
        return False
    # (as run.json holds it too: a numpy option from Python there as a number, here as text)
    recorded = json.loads(json.dumps(new, default=json_default))
    wanted = {request_fingerprint(form) for request in (new, recorded) for form in (request, _without_added_defaults(request))}
    if not os.path.isabs(old_out):  # its chunks found here: the folder it ran from moved with them (the project folder)
        try:
            return not os.path.normpath(old_out).startswith("..") and request_fingerprint(old) in wanted
        except Gen3cInputError:  # (a ~user path of a user this machine lacks)
            return False
    old_root = Path(os.path.normpath(old_out))
    new_root = Path(os.path.abspath(expand_home(new_out, "--video_save_folder")))
    while old_root != new_root:
        mapped = with_paths_moved(old, (*MOVABLE_FIELDS, "video_save_folder"), old_root, lambda inside, to=new_root: str(to / inside))
        try:
            if request_fingerprint(mapped) in wanted:
                return True
        except Gen3cInputError:  # (as above)
            return False
        if old_root.name != new_root.name or old_root.parent == old_root or new_root.parent == new_root:
            return False
        old_root, new_root = old_root.parent, new_root.parent
    return False


def with_paths_moved(
    request_dict: dict[str, Any],
    keys: Sequence[str],
    root: Path,
    to: Callable[[Path], str],
    options: Sequence[str] = OPTION_PATH_FIELDS,
) -> dict[str, Any]:
    """``request_dict`` with each absolute path of ``keys`` (and of its generator options named in
    ``options``: ``checkpoint_dir``, ``lora``, ``cache_dir``) that lies inside ``root`` as ``to(its
    path from root)``; every other value as it is."""

    def moved(value: Any) -> Any:
        if not (isinstance(value, str) and value and os.path.isabs(value)):
            return value
        path = Path(os.path.normpath(value))  # ("a/../../x" is not inside)
        return to(path.relative_to(root)) if path.is_relative_to(root) else value

    out = {key: moved(value) if key in keys else value for key, value in request_dict.items()}
    generator_options = out.get("generator_options")
    if isinstance(generator_options, dict):
        out["generator_options"] = {key: moved(value) if key in options else value for key, value in generator_options.items()}
    return out


def _changed_how_it_runs_only(stored: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether the kept run (``stored``: its ``run.json``) was made by request ``new`` but for
    generator options of :data:`RUN_ONLY_SETTINGS` (``--num_gpus``, ``--device``, …): a run cut
    short on N GPUs resumes on another count, which the generator settings' own check allows too.
    Its request must fingerprint here as it did when it ran: relative paths run from another
    folder led to other files."""
    old = stored.get("request")
    if not isinstance(old, dict) or not isinstance(old.get("generator_options"), dict):
        return False
    recorded = json.loads(json.dumps(new, default=json_default))  # (as _moved_with_output: run.json's numbers)
    try:
        if request_fingerprint(old) != stored.get("sha256"):
            return False
        wanted = {request_fingerprint(_without_run_only_options(form)) for request in (new, recorded) for form in (request, _without_added_defaults(request))}
        return request_fingerprint(_without_run_only_options(old)) in wanted
    except Gen3cInputError:  # (a ~user path of a user this machine lacks)
        return False


def _without_run_only_options(request_dict: dict[str, Any]) -> dict[str, Any]:
    options = request_dict.get("generator_options")
    if not isinstance(options, dict):
        return request_dict
    return {**request_dict, "generator_options": {key: value for key, value in options.items() if key not in RUN_ONLY_SETTINGS}}


def _without_added_defaults(request_dict: dict[str, Any]) -> dict[str, Any]:
    """``request_dict`` as a gen3c before :data:`ADDED_SETTINGS` wrote it: those of its generator
    options at their default left out (that gen3c ran with the default and had no key for it), so
    its ``run.json``'s fingerprint is this request's."""
    options = request_dict.get("generator_options")
    if not isinstance(options, dict):
        return request_dict
    kept = {key: value for key, value in options.items() if not (key in ADDED_SETTINGS and value == ADDED_SETTINGS[key])}
    return {**request_dict, "generator_options": kept}


def _changed_output(stored: dict[str, Any], record: dict[str, Any], as_text: dict[str, Any] | None = None) -> str:
    """How the chunk plan and generator settings (:func:`output_settings`) of ``record`` differ
    from those ``stored`` by the interrupted run, one line ("" when they do not). ``as_text``: the
    settings as an earlier gen3c recorded them (a numpy number as its text, "0.5"), which its
    interrupted runs hold."""
    changed = []
    if isinstance(stored.get("chunks"), list) and stored["chunks"] != record["chunks"]:
        changed.append(f"chunk plan: recorded {_plan(stored['chunks'])}, now {_plan(record['chunks'])}")
    if "generator_settings" in stored:  # (not in a folder of a gen3c that did not record them)
        old = stored["generator_settings"] if isinstance(stored["generator_settings"], dict) else {}
        new = record["generator_settings"] or {}
        old = {**{key: value for key, value in ADDED_SETTINGS.items() if key in new}, **old}
        keys = (set(old) | set(new)) - {key for key in LATER_SETTINGS if key not in old}
        earlier = as_text or {}
        changed += [f"{key}: recorded {_value(old.get(key))}, now {_value(new.get(key))}" for key in sorted(keys)
                    if not _same_setting(old.get(key), new.get(key)) and not (key in old and key in earlier and old[key] == earlier[key])]  # fmt: skip
    return "; ".join(changed[:3]) + (" …" if len(changed) > 3 else "")


def _same_setting(recorded: object, now: object) -> bool:
    """Whether a generator setting recorded in run.json is ``now``'s: equal, or both NaN (which
    equals nothing, itself included, so a setting of NaN refused every resume)."""
    both_nan = isinstance(recorded, float) and isinstance(now, float) and math.isnan(recorded) and math.isnan(now)
    return both_nan or recorded == now


def _check_output(path: Path, stored: dict[str, Any], record: dict[str, Any], changed: str) -> None:
    """Refuse a resumed run whose chunk plan or generator settings are not those ``stored`` by the
    interrupted run (``changed``: :func:`_changed_output`): its chunks would join a video made otherwise."""
    if changed:
        raise Gen3cInputError(
            f"--resume: {quoted_path(path)} was made with other settings ({changed}): resume with the interrupted run's settings, "
            "or delete that folder to start over"
        )
    if "generator_settings" not in stored:
        note(f"--resume: {quoted_path(path)} does not record the generator's settings (an older gen3c wrote it), so a changed checkpoint "
             "or sampler cannot be told: resuming; delete that folder to start over if they changed", stacklevel=4)  # fmt: skip
        return
    old = stored["generator_settings"] if isinstance(stored["generator_settings"], dict) else {}
    unknown = [key for key in LATER_SETTINGS if key not in old and (record["generator_settings"] or {}).get(key) is not None]
    if unknown:
        note(f"--resume: {quoted_path(path)} does not record the generator's {', '.join(unknown)} (an older gen3c wrote it), so a "
             "LoRA adapter replaced under the same path cannot be told: resuming; delete that folder to start over if it was",
             stacklevel=4)  # fmt: skip


def _value(value: object) -> str:
    """A recorded setting as a one-line message shows it (a long checkpoint path cut short)."""
    return quoted(value) if isinstance(value, str) else repr(value)


def _plan(chunks: list) -> str:
    """"3 chunks of 9 frames" for a chunk plan (as ``run.json`` holds it)."""
    try:
        return f"{len(chunks)} chunks of {chunks[0][1] - chunks[0][0]} frames"
    except (IndexError, TypeError, KeyError):
        return repr(chunks)[:80]


def _is_relative_path(value: object, field: str) -> bool:
    """Whether a request's ``value`` of ``field`` is a relative path (an ``intrinsics`` only when it names a file)."""
    return isinstance(value, str) and bool(value) and not os.path.isabs(value) and (field != "intrinsics" or exists(value))


def remove_unfinished_chunk(path: Path) -> None:
    """Remove from the kept chunk folder ``path`` the chunk a stopped run was writing
    (``.chunk_*``); its finished chunks stay."""
    for stray in path.glob(".chunk_*"):
        shutil.rmtree(stray, ignore_errors=True)


def _remove_chunks_past_a_gap(path: Path, finished: int) -> None:
    """Remove the kept chunks from ``finished`` on (those after a missing one, e.g. a damaged chunk
    deleted by hand): each continues the chunk before it, which is made again, and the run renames
    its new chunks into their places."""
    past = sorted(p for p in path.iterdir() if (m := _CHUNK.match(p.name)) and int(m.group(1)) >= finished and p.is_dir())
    if not past:
        return
    for chunk in past:
        shutil.rmtree(chunk)
    note(f"--resume: {quoted_path(path)} lacks chunk_{finished:04d}: {', '.join(p.name for p in past)}, which continued it, "
         f"{'is' if len(past) == 1 else 'are'} made again too", stacklevel=4)  # fmt: skip


def _remove_stale_outputs(folder: Path, name: str) -> None:
    """Temporary output files a killed run left (atomic writes never got to rename them)."""
    from gen3c.pipelines.camera_video import OUTPUT_FILES

    remove_stale_parts(folder, [pattern.format(name) for pattern in OUTPUT_FILES.values()])


class ChunkKeeper:
    """The sink of a resumable run: each chunk's frames go to the kept chunk folder and to the
    :class:`~gen3c.pipelines.camera_video.OutputWriter`; :meth:`chunk_done` (``generate_video``'s
    ``on_chunk``) then stores the chunk's state and marks it finished."""

    def __init__(self, out, partial: PartialRun, plan) -> None:
        self.out = out
        self.partial = partial
        self.plan = plan
        self._index = partial.finished

    def write(self, frames: Tensor, buffers) -> None:
        arrays = self.out.panels(frames, buffers)
        self.partial.save_frames(self._index, arrays)
        self.out.write_arrays(arrays)

    def chunk_done(self, index: int, last_frame: Tensor) -> None:
        self.partial.finish_chunk(index, last_frame, self.plan.state_dict())
        self._index = index + 1

    def replay(self, chunks: list[tuple[int, int]], progress=None) -> None:
        """Write the finished chunks' kept frames to the outputs again (a resumed run)."""
        keys = ["video"] + (["buffer_masks"] if self.out.save_buffer else [])
        step = progress("Resuming: re-encoding the finished chunks", self.partial.finished) if progress else None
        sizes: dict[str, tuple[int, ...]] = {}  # every chunk's frames the size of chunk 0's
        for k in range(self.partial.finished):
            start, stop = chunks[k]
            self.out.write_arrays(self.partial.load_frames(k, keys, stop - start if k == 0 else stop - start - 1, sizes))
            if step is not None:
                step(1)


def restore(partial: PartialRun, plan) -> Tensor:
    """Put the last finished chunk's cache state into ``plan``; returns the next condition frame."""
    last_frame, state = partial.load_state()
    try:
        plan.load_state_dict(state)
    except (ValueError, KeyError, TypeError) as exc:
        raise partial.refusal(f"--resume: the cache state in {quoted_path(partial.path)} does not fit this run ({exc}): delete it to start over") from None
    return last_frame.to(torch.float32)
