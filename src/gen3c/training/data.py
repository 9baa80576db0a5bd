"""Training clips for the GEN3C objective: a target video, and the renders of a 3D cache built
from one or two of its frames into the clip's own cameras (GEN3C's training recipe).

Sources:

- :class:`ProceduralClips` — procedural scenes (:mod:`gen3c.scenes`) with exact RGB and depth
  for any camera: clip ``i`` is scene preset ``scenes[i % len(scenes)]`` with seed
  ``PROCEDURAL_SEED_BASE + i``, seen along one of GEN3C's preset trajectories (preset, rotation
  mode and distance drawn from ``i``), so the same index is always the same clip.
- :class:`VideoClips` — GEN3C sample directories or ViPE outputs (per-frame RGB, depth, w2c,
  K, read by :mod:`gen3c.io.gen3c_sample` / :mod:`gen3c.io.vipe`), cut into windows of
  ``num_frames`` frames every ``clip_stride`` frames. The run's start checks every video as far as
  that reads no frame (and refuses it then); a clip's frames are read when it is made: the video
  whole where it fits in :data:`RESIDENT_BYTES` (then kept for its other clips), else its window.

A clip is a dict of tensors (batched by :func:`clip_batches`):

- ``video``: (3, T, H, W) in [−1, 1], the frames to reproduce;
- ``buffer_colors``: (T, NB, 3, H, W) in [−1, 1] and ``buffer_masks``: (T, NB, 1, H, W) in
  {0, 1}: the cache rendered into the clip's cameras, newest view first (NB = source frames).

:func:`clip_batches` has the notes of a video's first read in a DataLoader worker said once, by
the main process (the clips carry them there under :data:`FRAME_NOTES`, which it takes out).
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate, get_worker_info

from gen3c.cameras import Cameras
from gen3c.errors import Gen3cInputError, collect_notes, note, quoted_path, record_notes
from gen3c.io.frames import FrameStack
from gen3c.pipelines.camera_video import SourceView, build_cache, preset_cameras
from gen3c.scenes import SCENE_PRESETS, make_scene, render, source_camera
from gen3c.training.config import PROCEDURAL_SEED_BASE, Config, DataConfig
from gen3c.trajectories import PRESETS, ROTATION_MODES


def make_clip(
    frames: Tensor, views: list[SourceView], cameras: Cameras, config: DataConfig
) -> dict[str, Tensor]:
    """A training clip: ``frames`` (T, 3, H, W) in [−1, 1] and the renders of the cache of ``views``
    (oldest first; the last ends up as buffer 0) into ``cameras`` (T)."""
    # (views from checked clips or procedural scenes: no convention check per training clip)
    cache = build_cache(views, config.filter_points_threshold, config.foreground_masking, check_conventions=False)
    buffers = cache.render(cameras, depth=False)
    return {
        "video": frames.permute(1, 0, 2, 3).contiguous().float(),
        "buffer_colors": buffers.colors.float(),
        "buffer_masks": buffers.masks.float(),
    }


class ProceduralClips(Dataset):
    """``num_clips`` procedural clips (see the module docstring); index ``num_clips`` and beyond
    are valid too and never trained on (the held-out sample clip uses them)."""

    def __init__(self, config: DataConfig) -> None:
        unknown = [s for s in config.scenes if s not in SCENE_PRESETS]
        if unknown or not config.scenes:
            raise Gen3cInputError(f"data.scenes {config.scenes} must name presets among {', '.join(SCENE_PRESETS)}")
        self.config = config

    def __len__(self) -> int:
        return self.config.num_clips

    def describe(self, index: int) -> dict:
        """Scene, seed and trajectory of clip ``index``."""
        c = self.config
        rng = random.Random(PROCEDURAL_SEED_BASE + index)
        return {
            "scene": c.scenes[index % len(c.scenes)],
            "seed": PROCEDURAL_SEED_BASE + index,
            "trajectory": rng.choice(PRESETS),
            "camera_rotation": rng.choice(ROTATION_MODES),
            "movement_distance": rng.uniform(*c.movement_distance),
        }

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        c, d = self.config, self.describe(index)
        H, W = c.resolution
        scene = make_scene(d["scene"], d["seed"])
        src = source_camera(H, W)
        first = render(scene, src)
        source = _view(first.rgb[0], first.depth[0], first.mask[0], src.K[0], src.w2c[0])
        # Distance in units of the scene's median depth: the same motion whatever the scene's scale.
        cameras = preset_cameras(source, d["trajectory"], d["camera_rotation"], c.num_frames, d["movement_distance"], "median_depth")
        truth = render(scene, cameras)
        views = [source]
        if c.source_frames == 2:
            views.append(_view(truth.rgb[-1], truth.depth[-1], truth.mask[-1], cameras.K[-1], cameras.w2c[-1]))
        return make_clip(truth.rgb.float(), views, cameras, c)


def _view(image: Tensor, depth: Tensor, hit: Tensor, K: Tensor, w2c: Tensor) -> SourceView:
    valid = hit & torch.isfinite(depth) & (depth > 0)
    depth = torch.where(valid, depth, torch.zeros_like(depth)).float()
    return SourceView(image=image.float(), depth=depth, K=K.float(), w2c=w2c.float(), valid=valid, depth_kind="metric")


#: Bytes of video frames (at the training resolution: 8 a pixel, colour, depth and validity) a
#: :class:`VideoClips` keeps in memory in all, per rank: a video that fits is read whole when a clip
#: first needs it, and its clips are cut from memory then; the windows of the others are read as
#: clips need them (the same frames). With ``data.num_workers`` DataLoader workers, each keeps its
#: share and the main process none (:meth:`VideoClips._fits_in_memory`). (Whole, 200 GEN3C samples
#: of 121 frames at 704×1280 were 170 GB in every process of a run.)
RESIDENT_BYTES = 2 << 30

#: Bytes a frame of a :class:`~gen3c.io.frames.FrameStack` takes per pixel: colour (3 × uint8), depth (float32), validity (bool).
_BYTES_A_PIXEL = 8


def _stack_bytes(stack: FrameStack) -> int:
    return sum(part.numel() * part.element_size() for part in (stack.images, stack.depth, stack.valid))


class VideoClips(Dataset):
    """Windows of ``num_frames`` frames of GEN3C sample directories or ViPE outputs.

    Made, it has checked every video as far as that reads no frame (its files, frame counts,
    container, cameras: :func:`~gen3c.io.gen3c_sample.sample_length`,
    :func:`~gen3c.io.vipe.vipe_length`) and cut the windows from their lengths. A clip's frames are
    read when the clip is made, in the process that makes it, so each process of a multi-process
    run reads the videos of its own clips only; what only the frames tell is refused then, naming the
    video's ``data.paths`` entry. The notes of a video's first read are said once, by the main
    process (:meth:`say_notes`): a DataLoader worker's clip carries them to it (:func:`clip_batches`).
    """

    def __init__(self, config: DataConfig) -> None:
        self.config = config
        length_of = self._length_reader()
        self.lengths: list[int] = []
        self.sources: list[tuple[str, str | None]] = []  # each video's data.paths entry and ViPE clip
        # The files of each video as they were when the run started: a clip's refusal says "changed"
        # only when they differ now.
        self.read_state: list[tuple] = []
        self.names: list[str] = []  # each video's data.paths entry (and ViPE clip), as notes and refusals name it
        first_of: dict[str, int] = {}
        with record_notes() as said:
            for i, path in enumerate(config.paths):
                found = _spelled_on_disk(os.path.expanduser(path))
                if found is not None:
                    note(f"data.paths[{i}] {quoted_path(path)} is read as {quoted_path(found)}, its name on disk: the same letters in other Unicode code points "
                         "(as macOS writes accents); copy the name from disk into the config to silence this")  # fmt: skip
                    path = found
                same = first_of.setdefault(os.path.realpath(os.path.expanduser(path)), i)
                if same != i:  # (a deliberate weighting is allowed; a pasted line twice is the likelier cause)
                    note(f"data.paths[{i}] {quoted_path(path)} is the folder of data.paths[{same}]: its clips are trained twice as often; remove one if that is not meant")
                for clip in _vipe_clips(path) if config.kind == "vipe" else [None]:
                    try:
                        length = length_of(path) if clip is None else length_of(path, clip=clip)
                    except Gen3cInputError as exc:
                        other = _other_layout(path, config.kind)
                        if other:  # (the reader's own advice names generate's flags, --vipe_path or --input_image_path)
                            raise Gen3cInputError(f'data.paths[{i}] {quoted_path(path)} is a {other} folder, not a {config.kind} one: set data.kind = "{other}"') from None
                        raise Gen3cInputError(f"data.paths[{i}] (data.kind = {config.kind!r}): {exc}{_layout_hint(path, config.kind)}") from None
                    self.names.append(f"data.paths[{i}] {quoted_path(path)}" + (f" clip {clip!r}" if clip is not None else ""))
                    self.sources.append((path, clip))
                    self.lengths.append(length)
                    self.read_state.append(_files_state(config.kind, path, clip))
        self.said = set(said)  # the notes said as the run started: a clip's read does not say them again
        self.windows: list[tuple[int, int]] = []
        for v, length in enumerate(self.lengths):
            starts = range(0, length - config.num_frames + 1, max(1, config.clip_stride))
            self.windows += [(v, s) for s in starts]
        for v, length in enumerate(self.lengths):  # (none at all is refused below)
            if self.windows and length < config.num_frames:
                note(f"{self.names[v]} has {length} frames, fewer than data.num_frames = {config.num_frames}: no clip is cut from it")
        if not self.windows:
            longest = max(self.lengths)
            raise Gen3cInputError(
                f"data.paths hold no clip of data.num_frames = {config.num_frames} frames (the longest video has {longest}): "
                "lower num_frames or add longer videos"
            )
        self._forget_frames()

    def _forget_frames(self) -> None:
        """Hold no video's frames (as made, and in a copy sent to another process, which reads its own)."""
        self.resident: dict[int, FrameStack] = {}  # videos read whole, in memory within RESIDENT_BYTES
        self.read_before: set[int] = set()  # videos this process has read (the notes of the first read are said)
        self.noted: set[int] = set()  # videos whose notes this process has said (the main process)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["resident"], state["read_before"], state["noted"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._forget_frames()

    def __len__(self) -> int:
        return len(self.windows)

    def _length_reader(self) -> Callable[..., int]:
        from gen3c.io.gen3c_sample import sample_length
        from gen3c.io.vipe import vipe_length

        # gen3c train has no way to grant unpickling: a legacy .pt's refusal says to convert it.
        return functools.partial(sample_length, grant_trust=None) if self.config.kind == "sample" else vipe_length

    def _reader(self) -> Callable[..., FrameStack]:
        from gen3c.io.gen3c_sample import read_sample
        from gen3c.io.vipe import read_vipe

        return functools.partial(read_sample, grant_trust=None) if self.config.kind == "sample" else read_vipe

    def _fits_in_memory(self, v: int) -> bool:
        """Whether video ``v`` whole fits beside those in memory, in this process's share of
        :data:`RESIDENT_BYTES`: a DataLoader worker's is the budget over the number of workers; the
        main process's all of it where it makes the clips (``data.num_workers = 0``), else none
        (it makes the held-out clip and the tokenizer's statistics clips only, each once)."""
        worker = get_worker_info()
        if worker is not None:
            budget = RESIDENT_BYTES // worker.num_workers
        else:
            budget = RESIDENT_BYTES if self.config.num_workers == 0 else 0
        H, W = self.config.resolution
        held = sum(_stack_bytes(stack) for stack in self.resident.values())
        return held + self.lengths[v] * H * W * _BYTES_A_PIXEL <= budget

    def window(self, v: int, start: int) -> tuple[FrameStack, list[str]]:
        """Frames ``start`` … ``start + num_frames − 1`` of video ``v``: a slice of the video in
        memory, else read (the whole video where it fits in memory, kept for its other clips); and
        the notes of this process's first read of the video (those the run's start said aside),
        none where it read the video before."""
        T = self.config.num_frames
        notes = []
        if v not in self.resident and self._fits_in_memory(v):
            self.resident[v], notes = self._read(v, 0, self.lengths[v])
        stack = self.resident.get(v)
        if stack is None:
            return self._read(v, start, T)
        return FrameStack(stack.images[start : start + T], stack.depth[start : start + T], stack.valid[start : start + T],
                          stack.w2c[start : start + T], stack.K[start : start + T], stack.fps,
                          stack.frame_indices[start : start + T], stack.depth_kind), notes  # fmt: skip

    def _read(self, v: int, start: int, num_frames: int) -> tuple[FrameStack, list[str]]:
        """Frames ``start`` … ``start + num_frames − 1`` of video ``v`` from its files, refused in one
        line naming its data.paths entry; and the notes of the read where it is this process's
        first of the video (those the run's start said aside), else none."""
        path, clip = self.sources[v]
        extra = {} if clip is None else {"clip": clip}
        name = self.names[v]
        again = "put it back as it was, or start the run again (--resume auto) to read the data anew"
        try:
            with collect_notes() as notes:
                stack = self._reader()(path, tuple(self.config.resolution), start=start, num_frames=num_frames, **extra)
        except Gen3cInputError as exc:
            if _files_state(self.config.kind, path, clip) == self.read_state[v]:  # refused for what it was all along
                raise Gen3cInputError(f"{name}: {exc}") from None
            raise Gen3cInputError(f"{name} changed since the run read it at its start: {exc}; {again}") from None  # fmt: skip
        if len(stack) < num_frames:  # (a reader gives the frames there are: a video cut shorter since the start)
            now = f"it has {start + len(stack)} frames now, {self.lengths[v]} then"
            raise Gen3cInputError(f"{name} changed since the run read it at its start: {now}; {again}")
        stack.instance_ids = None  # (ViPE's: training does not use them)
        if v in self.read_before:  # (later reads' notes are of other frames of the same video)
            return stack, []
        self.read_before.add(v)
        return stack, [message for message in notes if message not in self.said]

    def say_notes(self, v: int, notes: list[str]) -> None:
        """Say ``notes``, those of a first read of video ``v`` in this process or a DataLoader
        worker, unless this process has said video ``v``'s: each worker reads a video anew, and its
        notes are said once, here in the main process, whose warnings the run shows as its notes
        (a worker's would be said once per worker, and under spawn as Python's raw warnings)."""
        if v in self.noted:
            return
        self.noted.add(v)
        for message in notes:
            note(message)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Clip ``index``. The notes of its video's first read in this process are said here: in a
        DataLoader of its own, by each worker (:func:`clip_batches` has the main process say them once)."""
        v, made, notes = self.clip_and_notes(index)
        if notes:
            self.say_notes(v, notes)
        return made

    def clip_and_notes(self, index: int) -> tuple[int, dict[str, Tensor], list[str]]:
        """Clip ``index``'s video, the clip, and the notes of this process's first read of that
        video (:meth:`window`), not yet said."""
        c = self.config
        v, s = self.windows[index % len(self.windows)]
        (stack, notes), s = self.window(v, s), 0
        T = c.num_frames
        H, W = stack.size
        cameras = Cameras(stack.w2c[s : s + T], stack.K[s : s + T], H, W)
        picks = [s] if c.source_frames == 1 else [s, s + T - 1]
        views = [
            SourceView(image=stack.image(f), depth=stack.depth[f], K=stack.K[f], w2c=stack.w2c[f], valid=stack.valid[f] & (stack.depth[f] > 0))
            for f in picks
        ]  # fmt: skip
        return v, make_clip(stack.image(s, s + T), views, cameras, c), notes


#: The key of a clip of :class:`_NotesCarried` that holds ``(video, notes)``, the notes of the
#: first read of the video in the process that made it, for the main process to say (:func:`clip_batches`).
FRAME_NOTES = "frame_notes"


class _NotesCarried(Dataset):
    """The clips of ``clips`` (a :class:`VideoClips`), each with the notes of its video's first read
    in the process that made it (a DataLoader worker) under :data:`FRAME_NOTES`, where there are
    any: :func:`clip_batches` takes them out and says them. (A clip of ``clips`` itself never holds
    the key: another DataLoader's collate would find it in some clips of a batch only.)"""

    def __init__(self, clips: VideoClips) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        v, made, notes = self.clips.clip_and_notes(index)
        if notes:
            made[FRAME_NOTES] = (v, notes)
        return made


def collate_clips(clips: list[dict]) -> dict:
    """A batch of ``clips`` (torch's default collate), the notes some carry under
    :data:`FRAME_NOTES` as a list of ``(video, notes)`` there (where any does)."""
    carried = [clip.pop(FRAME_NOTES) for clip in clips if FRAME_NOTES in clip]
    batch = default_collate(clips)
    if carried:
        batch[FRAME_NOTES] = carried
    return batch


def clip_batches(
    dataset: Dataset,
    batch_size: int,
    sampler: Sampler | None = None,
    num_workers: int = 0,
    persistent_workers: bool = False,
) -> Iterator[dict[str, Tensor]]:
    """Batches of ``dataset``'s clips (a DataLoader's, of the ``sampler``'s indices, by
    ``num_workers`` workers), the notes about a video's frames its workers' clips carry said here,
    in the main process, as each batch arrives (:meth:`VideoClips.say_notes`)."""
    source = _NotesCarried(dataset) if isinstance(dataset, VideoClips) else dataset
    loader = DataLoader(source, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                        persistent_workers=persistent_workers, collate_fn=collate_clips)  # fmt: skip
    for batch in loader:
        for v, notes in batch.pop(FRAME_NOTES, ()):
            dataset.say_notes(v, notes)
        yield batch


def _files_state(kind: str, path: str, clip: str | None) -> tuple:
    """Size, modification time and inode of each file the reader of ``kind`` reads for ``path`` (and
    ViPE ``clip``), None for one that is not there: a sample folder's files (in any letter case)
    or its ``.pt``, a ViPE clip's files."""
    from gen3c.io.gen3c_sample import SAMPLE_FILES
    from gen3c.io.vipe import clip_files, resolve_vipe

    where = Path(os.path.expanduser(path))
    if kind == "vipe":
        try:
            files = clip_files(*resolve_vipe(where, clip))
        except (Gen3cInputError, OSError) as exc:  # (its reader says why)
            return (str(where), clip, type(exc).__name__, str(exc))
    elif where.is_dir():
        try:
            files = sorted(f for f in where.iterdir() if f.name.lower() in SAMPLE_FILES)
        except OSError as exc:
            return (str(where), type(exc).__name__, str(exc))
    else:
        files = [where]
    state = []
    for f in files:
        try:
            st = f.stat()
            state.append((str(f), st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            state.append((str(f), None))
    return tuple(state)


def _spelled_on_disk(path: str) -> str | None:
    """``path`` as spelled on disk where it is not there as written but is in another Unicode
    normalisation (``é`` as one code point, or as ``e`` + a combining accent: a config typed on
    Linux naming a folder copied from a Mac); None where it is there or nothing matches it alone."""
    import unicodedata

    if os.path.lexists(path) or path.isascii():
        return None
    key = functools.partial(unicodedata.normalize, "NFC")
    given = Path(path)
    current = Path(given.anchor) if given.is_absolute() else Path()
    for part in given.parts[1:] if given.is_absolute() else given.parts:
        if not (current / part).exists():
            try:
                matches = [entry for entry in os.listdir(current) if key(entry) == key(part)]
            except OSError:
                return None
            if len(matches) != 1:
                return None
            part = matches[0]
        current = current / part
    return str(current) if os.path.lexists(current) else None


def _vipe_clips(path: str) -> list[str | None]:
    """The clips to read of the ``data.paths`` entry ``path`` (``kind = "vipe"``): every clip of a
    ViPE output that holds several (one `vipe infer` run over a folder of videos), by name; else
    ``[None]``, the one clip its reader finds (or refuses)."""
    from gen3c.io.vipe import clip_videos

    root = Path(path).expanduser()
    if root.suffix.lower() == ".mp4" or not (root / "rgb").is_dir():
        return [None]
    clips = sorted(clip_videos(root))
    return clips if len(clips) > 1 else [None]


#: What marks a folder of each layout (gen3c.io.gen3c_sample, gen3c.io.vipe).
_LAYOUTS = {"sample": ("rgb.mp4", "camera.npz"), "vipe": ("rgb", "pose")}


def _is_layout(folder, kind: str) -> bool:
    """Whether ``folder`` holds ``kind``'s marks, as its reader finds them: a sample's files in
    any letter case (``rgb.MP4``: :func:`~gen3c.io.gen3c_sample.sample_file`)."""
    from gen3c.io.gen3c_sample import sample_file

    if kind != "sample":
        return all((folder / m).exists() for m in _LAYOUTS[kind])
    try:
        return all(sample_file(folder, m).is_file() for m in _LAYOUTS[kind])
    except Gen3cInputError:  # two files of one name in other cases (rgb.MP4, RGB.mp4): a sample's, which its reader names
        return True


def _other_layout(path: str, kind: str) -> str | None:
    """The other layout (``sample`` or ``vipe``) the folder ``path`` is of, if any."""
    folder = Path(path).expanduser()
    return next((other for other in _LAYOUTS if other != kind and _is_layout(folder, other)), None)


def _layout_hint(path: str, kind: str) -> str:
    """How to fix a ``data.paths`` entry that is not of ``kind``'s layout, when it holds such folders."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return ""
    inside = [p.name for p in sorted(folder.iterdir()) if p.is_dir() and _is_layout(p, kind)]
    if inside:
        return f" (it holds {len(inside)} {kind} folders, e.g. {inside[0]!r}: list those in data.paths)"
    return ""


class CachedClips(Dataset):
    """Every clip of ``dataset`` made once and kept in memory as 8-bit colour and boolean masks
    (about 0.5 MB per 64×112×17 clip), so training is not bound by rendering. ``source`` is the
    wrapped dataset (its held-out clips are still made on demand)."""

    def __init__(self, dataset: Dataset, num_workers: int = 0, progress: Callable[[int], None] | None = None) -> None:
        self.source = dataset
        videos, colors, masks = [], [], []
        for batch in clip_batches(dataset, batch_size=8, num_workers=num_workers):
            videos.append(_to_uint8(batch["video"]))
            colors.append(_to_uint8(batch["buffer_colors"]))
            masks.append(batch["buffer_masks"] > 0.5)
            if progress is not None:
                progress(len(batch["video"]))
        self.videos, self.colors, self.masks = torch.cat(videos), torch.cat(colors), torch.cat(masks)

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {
            "video": self.videos[index].float() / 127.5 - 1,
            "buffer_colors": self.colors[index].float() / 127.5 - 1,
            "buffer_masks": self.masks[index].float(),
        }


def _to_uint8(x: Tensor) -> Tensor:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def raised_in_worker(exc: Gen3cInputError) -> Gen3cInputError | None:
    """The error a DataLoader worker raised, with its own one-line message, when ``exc`` is
    torch's copy of it in the main process (of the same type, its message "Caught X in
    DataLoader worker process N." then the worker's whole traceback); None for any other error.
    Notes the worker's error carried are notes of the one returned."""
    text = str(exc)
    kind = type(exc)
    if not text.startswith(f"Caught {kind.__name__} in DataLoader worker process "):
        return None
    # The traceback's last lines: "module.Name: message", then the error's notes (one a line).
    name = kind.__qualname__ if kind.__module__ in ("__main__", "builtins") else f"{kind.__module__}.{kind.__qualname__}"
    head = f"\n{name}: "
    at = text.rfind(head)
    if at < 0:
        return None
    message, *notes = text[at + len(head) :].rstrip("\n").split("\n")
    original = kind(message)
    for line in notes:
        original.add_note(line)
    return original


def make_dataset(config: DataConfig) -> Dataset:
    """The clip dataset ``config.kind`` names, its folders read (and refused) now and its clips made
    on demand (a run then wraps it in :class:`CachedClips` when ``config.cache_clips``)."""
    return ProceduralClips(config) if config.kind == "procedural" else VideoClips(config)


def check_batch_fits(config: Config, num_clips: int, tokenizer_trains: bool = False) -> None:
    """Refuse a batch of more clips than the data holds (over all processes): each step would
    hold the same clip more than once, which a batch size is never meant to ask for."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    sizes = {"train.batch_size": config.train.batch_size}
    if tokenizer_trains:
        sizes["tokenizer.batch_size"] = config.tokenizer.batch_size
    more = "raise data.num_clips" if config.data.kind == "procedural" else "add videos to data.paths or lower data.clip_stride"
    for key, size in sizes.items():
        if size * world > num_clips:
            processes = f" × {world} processes" if world > 1 else ""
            fits = f"lower it to {num_clips // world}" if num_clips >= world else f"run on at most {num_clips} processes"
            raise Gen3cInputError(
                f"{key} = {size}{processes} is more than the {num_clips} clips of the data: every step would repeat clips; "
                f"{fits}, or {more}"
            )


def held_out_clip(dataset: Dataset) -> dict[str, Tensor]:
    """A clip for sample videos: a procedural index past the training range, else the first clip."""
    dataset = getattr(dataset, "source", dataset)
    if isinstance(dataset, ProceduralClips):
        return dataset[len(dataset)]
    return dataset[0]


class StepSampler(Sampler[int]):
    """Clip indices for micro-batches ``start, start + 1, …`` of one process, endlessly.

    The global stream is a fresh seeded permutation of the dataset per epoch; micro-batch ``s``
    takes its ``world · batch`` entries and process ``rank`` its own slice, so a resumed run
    (``start`` = micro-batches done) sees exactly the clips an uninterrupted one would.
    """

    def __init__(self, length: int, batch_size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1) -> None:
        self.length, self.batch_size, self.seed = length, batch_size, seed
        self.start, self.rank, self.world = start, rank, world

    def _perm(self, epoch: int) -> Tensor:
        return torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))

    def __iter__(self) -> Iterator[int]:
        per_step = self.batch_size * self.world
        step = self.start
        epoch, perm = -1, None
        while True:
            for k in range(self.rank * self.batch_size, (self.rank + 1) * self.batch_size):
                g = step * per_step + k
                if g // self.length != epoch:
                    epoch = g // self.length
                    perm = self._perm(epoch)
                yield int(perm[g % self.length])
            step += 1
