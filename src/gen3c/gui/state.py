"""The GUI's state as plain Python, testable without a browser.

:class:`GuiState` holds what the page shows and edits: the loaded source view, the run's
settings (a :class:`~gen3c.pipelines.request.GenerationRequest`), the camera path (a preset, a
keyframed spline or an imported camera file) and the 3D cache built from the input. The input
is any that ``gen3c generate`` takes: an image with its depth file, an image alone (depth
estimated as the CLI does, falling back to the geometric prior with the same note), a GEN3C
sample directory, a ViPE result or a multi-view npz. Each action calls the library the CLI
calls: :func:`~gen3c.pipelines.request.input_kind`, :func:`~gen3c.pipelines.request.read_input`,
:func:`~gen3c.pipelines.request.scene_plan`, :func:`~gen3c.pipelines.request.scene_cameras`,
:func:`~gen3c.pipelines.request.run_request`. :class:`JobRunner` runs one generation at a time in
a worker thread and cancels it cooperatively.

Keyframes are OpenCV world-to-camera poses with a time in seconds (frame i plays at i / fps).
The path through them, its file and its replay are the library's:
:func:`gen3c.trajectories.keyframe_trajectory` (``smoothness`` 0: straight segments at constant
speed, 1: Catmull–Rom), :func:`gen3c.io.camera_files.read_keyframe_path` and
:func:`~gen3c.io.camera_files.cameras_to_nerfstudio_path`. Intrinsics stay the source camera's,
as in GEN3C.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import numbers
import os
import re
import secrets
import shutil
import socket
import threading
import traceback
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import fcntl
except ImportError:  # Windows: no flock (a run marker there is freed once its pid runs no process: process_alive)
    fcntl = None

import numpy as np
import torch
from torch import Tensor

from gen3c.cameras import Cameras, validate_poses
from gen3c.dependencies import dependency_error
from gen3c.errors import (
    Gen3cInputError,
    Gen3cMemoryError,
    collect_notes,
    describe_value,
    disk_full_reason,
    first_line,
    is_disk_full,
    is_whole_number,
    quoted,
    quoted_path,
    record_notes,
    unusable_path_error,
)
from gen3c.io.atomic import ensure_writable_dir, process_alive, remove_abandoned_parts, write_bytes_atomic
from gen3c.io.camera_files import (
    camera_dict_fps,
    cameras_from_dict,
    cameras_to_nerfstudio_path,
    fit_cameras,
    parse_camera_json,
    read_keyframe_path,
    save_cameras,
)
from gen3c.pipelines.camera_video import SourceView, prepare_source
from gen3c.pipelines.options import check_gen3c_only, check_generator_options
from gen3c.pipelines.request import (
    AXES_MIX_UP,
    GenerationRequest,
    RunOutput,
    check_frame_count,
    check_noise_aug_strength,
    check_request,
    check_unused_settings,
    first_camera_away,
    first_view,
    has_depth,
    input_kind,
    intrinsics_fit,
    read_input,
    run_request,
    scene_cameras,
    scene_plan,
)
from gen3c.pipelines.resume import partial_dir
from gen3c.pipelines.settings import PRESET_SETTINGS, check_camera_file_fps
from gen3c.trajectories import DEFAULT_SMOOTHNESS, PRESETS, ROTATION_MODES, TRAJECTORY_SCALES, KeyframePath

if TYPE_CHECKING:
    from gen3c.pipelines.request import SceneInput

PATH_MODES = ("preset", "keyframes", "file")
#: The preset path's choices (the page's dropdowns), checked when set: another client can send any
#: text, which the CLI's choices would have refused and the camera path would report only later.
PRESET_CHOICES = {"trajectory": PRESETS, "camera_rotation": ROTATION_MODES, "trajectory_scale": TRAJECTORY_SCALES}
#: How a GUI user allows a legacy pickled ``.pt`` sample (full unpickling can run code): the page
#: never unpickles, the CLI does when told.
GRANT_TRUST = "run it with `gen3c generate --trust_checkpoint`"
#: Uploads larger than this are refused (an image, a depth map or a camera file).
MAX_UPLOAD_BYTES = 256 * 1024 * 1024
#: The file ``outputs/NAME.running`` holds a run's name while it runs: made exclusively (a second
#: ``gen3c gui`` on the same work folder, which sees no output of the run yet, takes the next number).
RUNNING_SUFFIX = ".running"


def _pid_namespace() -> str:
    """Linux's name of the pid namespace this process runs in (``pid:[4026531836]``): a container's
    processes are numbered apart from the machine's, though it may share its name (docker
    ``--network host``); "unknown" where it cannot be told."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "unknown"


#: What a run marker holds: who made it. ``process`` tells this process from an earlier one given
#: the same pid; ``locked``: its maker holds a lock on it until the run ends, which the system
#: drops when that process ends, whatever pid namespace it ran in (a container restarted after
#: its GUI was killed runs in a new one, whose pids cannot tell the old one's).
_PROCESS_TAG = secrets.token_hex(4)
_PID_NAMESPACE = _pid_namespace()
_MARKER_TEXT = "a gen3c gui run, {host} pid {pid}, process {tag}, pid namespace " + _PID_NAMESPACE + "{locked}\n"
_MARKER_LOCKED = ", locked while it runs"
_MARKER_OWNER = re.compile(
    r"a gen3c gui run, (\S+) pid (\d+)(?:, process ([0-9a-f]+))?(?:, pid namespace ([^\s,]+))?(" + re.escape(_MARKER_LOCKED) + r")?\n?"
)
#: The open run markers this process holds locked (by real path), closed as their holds end.
_HELD_MARKERS: dict[str, int] = {}
_HELD_LOCK = threading.Lock()


def running_marker(folder: str | Path, name: str) -> Path:
    """The file that holds the run name ``name`` in the outputs ``folder`` while its run runs."""
    return Path(folder) / f"{name}{RUNNING_SUFFIX}"


def _hold_locked(fd: int) -> bool:
    """Lock the run marker open as ``fd`` for as long as this process keeps it open (False where
    its file system or platform has no locks)."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _marker_locked(marker: Path) -> bool:
    """Whether a process still holds the lock of the run marker ``marker`` (True where that
    cannot be told)."""
    if fcntl is None:
        return True
    try:
        fd = os.open(marker, os.O_RDONLY)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # (released as it is closed)
    except OSError:  # held (BlockingIOError), or no locks here
        return True
    finally:
        os.close(fd)
    return False


def _end_hold(marker: Path) -> None:
    """Remove the run marker ``marker`` this process made, then drop its lock."""
    marker.unlink(missing_ok=True)
    with _HELD_LOCK:
        fd = _HELD_MARKERS.pop(os.path.realpath(marker), None)
    if fd is not None:
        os.close(fd)


def _marker_abandoned(marker: Path) -> bool:
    """Whether the run marker ``marker`` was left by a gen3c gui that is gone (killed mid-run, it
    could not remove it): made on this machine by a process that no longer holds its lock (in
    any pid namespace: a restarted container's GUI runs in a new one), or, where it was not
    locked (an earlier gen3c's; a file system without locks), by a process of this pid namespace
    that no longer runs or an earlier process given this one's pid. One of another machine (a
    shared work folder: its locks may not be seen from here), of this process, or that cannot be
    read or is not written yet, is held; an unlocked one of another pid namespace (a container
    of this machine: their processes cannot be seen from here) too, and one naming no namespace
    (an earlier gen3c's) is taken for this namespace's. Windows has no flock: its markers are
    unlocked, freed once their pid runs no process (:func:`~gen3c.io.atomic.process_alive`)."""
    with _HELD_LOCK:  # this process's own, not opened: where flock is emulated by fcntl locks (NFS), closing any file of it drops them
        if os.path.realpath(marker) in _HELD_MARKERS:
            return False
    try:
        match = _MARKER_OWNER.fullmatch(marker.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return False
    if match is None or match[1] != socket.gethostname():
        return False
    pid = int(match[2])
    if pid == os.getpid() and match[3] == _PROCESS_TAG:  # (first: a lock taken again in this process may not conflict, as on NFS)
        return False
    if match[5]:
        return not _marker_locked(marker)
    if match[4] not in (None, _PID_NAMESPACE):
        return False
    return pid == os.getpid() or not process_alive(pid)


def _free_abandoned_name(marker: Path) -> None:
    """End the hold of a gen3c gui gone mid-run (:func:`_marker_abandoned`) on its run's name, and
    drop the chunks that run kept (``NAME.partial``: the GUI does not resume). The marker is first
    moved to a hidden name of this thread's, which only one server can do: two servers freeing it
    at once would else remove the marker a third made for the name once the first had freed it."""
    taken = marker.with_name(f".{marker.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        os.rename(marker, taken)
    except OSError:  # another server moved it first
        return
    if _marker_abandoned(taken):
        shutil.rmtree(partial_dir(marker.parent, marker.name.removesuffix(RUNNING_SUFFIX)), ignore_errors=True)
    else:  # a running server's, made after the gone one's was read: given back
        with contextlib.suppress(OSError):
            os.link(taken, marker)
    taken.unlink(missing_ok=True)


class GenerationCancelled(Exception):
    """Raised from the progress callback when the user cancels a generation."""


@dataclass
class Keyframe:
    """A camera-path keyframe: an OpenCV world-to-camera pose (4, 4) and its time in seconds."""

    id: int
    w2c: Tensor
    time: float


def _read_settings(request: GenerationRequest, kind: str) -> tuple:
    """The settings whose change means reading the input again: the working size, whether the
    depth's invalid pixels are left out (where the depth comes with the input: an estimate is not
    made again for a setting it ignores), and for a video the frames read."""
    read = (request.resolution, request.resize_mode, (kind != "image" or has_depth(request)) and request.mask_invalid_depth)
    return (*read, request.num_video_frames) if kind in ("sample", "vipe") else read


def unexpected_error(exc: Exception, log: bool = True) -> str:
    """The page's one line for an exception that no check raised (call it in the ``except``): a
    package that fails to import (missing or broken) as ``gen3c`` commands word it
    (:func:`~gen3c.dependencies.dependency_error`), a path no file can have
    (:func:`~gen3c.errors.unusable_path_error`), a full disk (the user frees space); else a bug,
    "internal error: …" with the first line of its message (torch's CUDA errors run over several),
    its traceback printed to the log where ``log`` (False: the caller re-raises it, and the
    traceback is printed there)."""
    error = dependency_error(exc, "the gen3c GUI") or unusable_path_error(exc)
    if error is not None:
        return str(error)
    if log:
        traceback.print_exc()
    if is_disk_full(exc):
        return f"the disk is full ({disk_full_reason(exc)}): free space on the disk of the GUI's work folder, then try again"
    return f"internal error: {type(exc).__name__}: {first_line(exc)} (the server's log has its traceback)"


#: What a run's note names the path file the page wrote (``paths/NAME_path.json``), by path mode.
PATH_SUBJECTS = {"keyframes": "Keyframe 1", "file": "The imported camera path"}
#: The tail of the run's note on a path starting away from the input's camera, and the page's fix for keyframes.
_JUMP = " so the video jumps onto the file's path after it: "
KEYFRAME_JUMP_FIX = ' so the video jumps onto the keyframe path after it: "Add input camera" (Camera path → Keyframes) starts the path there'
#: The page's fix for a path whose poses are in the other axes: the file the page wrote was converted from the one imported.
IMPORTED_AXES_FIX = "mend the poses of the camera file imported (docs/cameras.md, \"Camera files\", gives each format's axes) and import it again"


def page_run_note(note: str, camera_file: str | None, path_mode: str) -> str:
    """A run's ``note`` as the page says it: the path file the page wrote for the run
    (``camera_file``, which the user never chose) named as what made it (``path_mode``), a
    keyframe path's jump onto it fixed with the page's "Add input camera" rather than by editing
    the file, and poses in the other axes (OpenCV for OpenGL) by mending the file imported, not
    the one the page wrote in its own format. Other notes are returned as they are."""
    prefix = f"camera file {quoted_path(camera_file)}"
    subject = PATH_SUBJECTS.get(path_mode)
    if camera_file is None or subject is None or not note.startswith(prefix):
        return note
    note = subject + note[len(prefix):]
    head, mix_up, _ = note.partition(AXES_MIX_UP)
    if mix_up:
        return head + mix_up + IMPORTED_AXES_FIX
    head, jump, _ = note.partition(_JUMP)
    return head + KEYFRAME_JUMP_FIX if jump and path_mode == "keyframes" else note


def _check_number(value: Any, what: str) -> None:
    """Refuse a ``value`` for ``what`` that is no real number (text, None or a bool from another
    client) in one line, before a comparison or ``float()`` raises a TypeError on it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Gen3cInputError(f"{what} {describe_value(value)} is not a number: enter one")


def _keyframe_pose(w2c: Any, name: str = "keyframe pose") -> Tensor:
    """A keyframe's pose as a float64 (4, 4) copy, checked as a rigid transform whose numbers
    float32 (what cameras are rendered in) holds: one larger became inf in the path, refused
    later as "Cameras.w2c contain NaN or infinite values" naming no keyframe. ``name``: the pose
    in refusals ("keyframe #3's pose", where it is a keyframe's already)."""
    try:
        pose = torch.as_tensor(w2c, dtype=torch.float64).clone()
    except (TypeError, ValueError, RuntimeError):  # text, None, a ragged list
        raise Gen3cInputError(f"{name} {describe_value(w2c)} is no 4×4 matrix of numbers") from None
    validate_poses(pose, name)
    largest = float(pose.abs().max())
    if largest > torch.finfo(torch.float32).max:
        raise Gen3cInputError(f"{name} holds {largest:g}, beyond float32's ±{torch.finfo(torch.float32).max:.3g}, the precision cameras are rendered in: move it nearer the scene")
    return pose


def _safe_name(name: str) -> str:
    """An uploaded file's ``name`` as the uploads folder keeps it: its last part (no folder), in
    ASCII letters, digits and ``._-`` (accents dropped, café → cafe; other characters → ``_``), at
    most 100 characters, with its suffix, which tells a depth file's format: ``深度.npy`` was kept
    as ``npy``, which the depth reader refused as "an unsupported format". A name left with no
    letter or digit before its suffix is ``upload``; one Windows takes for a device
    (:func:`~gen3c.io.paths.windows_name_problem`: ``con.png``, ``NUL.npy``) gets ``upload_`` before
    it, so the work folder holds no file that is lost when it is copied there, or served from it."""
    from gen3c.io.paths import windows_name_problem

    plain = unicodedata.normalize("NFKD", Path(name).name).encode("ascii", "ignore").decode("ascii")
    stem, dot, suffix = plain.rpartition(".")
    if not (dot and re.fullmatch(r"[A-Za-z0-9]{1,10}", suffix)):  # no suffix (a folder's, a dotfile's tail is none)
        stem, suffix = plain, ""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "upload"
    if windows_name_problem(stem) is not None:  # (only a device name is left: the characters are replaced above)
        stem = f"upload_{stem}"
    suffix = f".{suffix}" if suffix else ""
    return stem[: 100 - len(suffix)] + suffix


# --------------------------------------------------------------------------------------------
# The state
# --------------------------------------------------------------------------------------------


class GuiState:
    """Everything the page edits, as data, with the actions the page triggers.

    Args:
        work_dir: the app's folder; uploads, camera paths and outputs are written only here. The
            hidden temporary files a server killed mid-write left in its uploads and paths are
            removed as the state is made (those of a server still running are kept).
        request: initial settings; its ``video_save_folder`` is replaced by ``work_dir/outputs``.
        fps_given: whether ``request.fps`` is the user's (``gen3c gui --fps``) rather than the
            default; None: when it differs from the default.
    """

    def __init__(self, work_dir: str | Path, request: GenerationRequest | None = None, fps_given: bool | None = None) -> None:
        request = request or GenerationRequest()
        check_request(request)  # the page's controls start from these values (frame count included)
        self.work_dir = ensure_writable_dir(work_dir, "GUI work folder").resolve()
        for folder in ("uploads", "paths"):  # a server killed while writing a file there left its hidden temporary file
            if (self.work_dir / folder).is_dir():
                remove_abandoned_parts(self.work_dir / folder)
        self.request = dataclasses.replace(request, video_save_folder=str(self.work_dir / "outputs"))
        #: Whether the FPS is the user's (set on the page, or another than the default at start, e.g.
        #: ``gen3c gui --fps 12``) or came with an imported camera path; else it follows the input as
        #: in ``gen3c generate`` (:func:`~gen3c.pipelines.settings.default_fps`: a video's own rate).
        self.fps_given = request.fps != dataclasses.replace(request, fps=None).fps if fps_given is None else fps_given
        self.kind = "image"  # one of gen3c.pipelines.request.INPUT_KINDS
        self.input: SceneInput | None = None  # what read_input read (or the prepared in-memory sample)
        self.source: SourceView | None = None  # the input's first view: sizes, intrinsics, scale, thumbnail
        self.source_label = ""
        self.notes: list[str] = []  # what the library noted while reading the input (e.g. the prior fallback)
        self._sample: tuple[Tensor, Tensor, Tensor] | None = None  # an in-memory source, re-prepared on resize
        self.path_mode = "preset"
        self.keyframes: list[Keyframe] = []
        self.smoothness = DEFAULT_SMOOTHNESS
        self.auto_time = True
        self.imported: Cameras | None = None
        #: What loading the input did to the camera path, for the page: "" or why it was cleared.
        self.path_note = ""
        self._scene: tuple | None = None  # the input the keyframes and imported path are poses in
        self._next_id = 0
        self._plan = None
        self._plan_key: tuple | None = None
        #: The Frames count a multi-view input lowered to its trajectory's length, and the count it
        #: replaced (the user's, or the start's): the next input loaded gets that back, unless Frames
        #: was set since (then the count is the user's). None: the count is no input's.
        self._frames_forced: tuple[int, int] | None = None

    # -- input ----------------------------------------------------------------------------

    def load_files(self, image_path: str, depth_path: str = "", fov: float | None = None, intrinsics: str | None = None, **depth_options: Any) -> SourceView:
        """Load an image as ``gen3c generate`` does (same checks, same errors): with its depth
        file, or alone, its depth then coming from ``request.depth_estimator`` (the geometric
        prior stands in when the default, MoGe, cannot load, with the CLI's note in :attr:`notes`).
        ``depth_options``: the depth's settings (``depth_estimator``; ``png_depth_scale`` for a
        16-bit PNG depth file; ``depth_is_disparity`` for a file of disparity)."""
        if not image_path:
            raise Gen3cInputError("no input image: upload one or give its path")
        # The kind of the path alone: the page always sends a FOV, which a video input refuses, and
        # may hold a buffer noise, which one refuses too.
        if input_kind(dataclasses.replace(self._with_input(input_image_path=image_path), generator_options={})) != "image":
            raise Gen3cInputError(f"{quoted_path(image_path)} is a folder or .pt file, not an image: load it as a video input below")
        request = self._with_input(input_image_path=image_path, depth_path=depth_path or None, fov=fov,
                                   intrinsics=intrinsics or None, **depth_options)  # fmt: skip
        return self._load(request, "image", Path(image_path).name)

    def load_video(self, path: str, start: int = 0) -> SourceView:
        """Load a video or multi-view input as ``gen3c generate`` does: a GEN3C sample directory
        or ``.pt``, a ViPE result (its folder or the mp4 under its ``rgb/``) or a multi-view
        ``.npz``; ``start`` is the first frame of a video."""
        from gen3c.io.paths import exists, expand_home
        from gen3c.io.vipe import is_vipe

        text = str(path).strip()
        if not text:
            raise Gen3cInputError("no video input: give the path of a sample directory, a ViPE result or a multi-view .npz")
        where = expand_home(text, "video input")  # "~/…" as the request reads it (and a shell)
        if not exists(where):  # (or a name no file can have: too long, a NUL byte)
            raise Gen3cInputError(f"video input {quoted_path(text, 100)} does not exist: check the path")
        if text.lower().endswith(".npz"):
            fields = {"multiview_npz": text}
        elif is_vipe(where):
            fields = {"vipe_path": text}
        else:
            fields = {"input_image_path": text}
        if not is_whole_number(start):  # (int() would fail on NaN or text, or cut 2.5 to 2)
            raise Gen3cInputError(f"--vipe_starting_frame_idx {describe_value(start)} is not a whole number: enter one")
        # The kind first: the Start frame box keeps a video's start for the next input, which the
        # request's check refuses for any other kind without saying what the box holds or its fix.
        kind = input_kind(self._with_input(**fields))
        if kind == "image":
            raise Gen3cInputError(f"{quoted_path(text, 100)} is not a video input (a sample directory, a ViPE result or a multi-view .npz): load images above")
        if kind == "multiview" and start:
            raise Gen3cInputError(f"--vipe_starting_frame_idx {int(start)} picks the first frame of a video; {quoted_path(text, 100)} is a multi-view .npz, which has none: set it to 0")
        request = self._with_input(**fields, vipe_starting_frame_idx=int(start))
        return self._load(request, kind, Path(text.rstrip("/")).name)

    def load_demo(self) -> SourceView:
        """Load the packaged demo sample from its files (:func:`gen3c.scenes.demo_sample_files`),
        as ``gen3c demo`` runs it: a run's ``NAME_run.json`` names them, so it runs again."""
        from gen3c.scenes import demo_sample_files

        return self._load(self._with_input(**demo_sample_files()), "image", "demo sample")

    def load_sample(self, image: Tensor, depth: Tensor, K: Tensor, label: str = "demo sample") -> SourceView:
        """Use an in-memory image (3, H, W) in [−1, 1], depth (H, W) and intrinsics (3, 3). A run's
        ``NAME_run.json`` then names no input file: save the sample to files and load those
        (:meth:`load_files`) for a record that runs again."""
        previous, self._sample = self._sample, (image, depth, K)
        try:
            source = self._prepare_sample()
        except Exception:  # refused: the loaded input stays, as a refused file does
            self._sample = previous
            raise
        old = self.request
        self.request, self._frames_forced = self._frames_restored(self._with_input()), None
        self.kind, self.input, self.notes = "image", source, []
        if self.auto_time and self.request.num_video_frames != old.num_video_frames:
            self._retime()
        self._enter_scene(("memory", label), label)
        self.source, self.source_label = self.input, label
        self._plan = None
        return self.source

    def _with_input(self, **fields: Any) -> GenerationRequest:
        """The request with one input (``fields``), every other input setting cleared; the frame
        rate the input's (None: the request fills in its default) unless :attr:`fps_given`."""
        cleared = {"input_image_path": None, "vipe_path": None, "vipe_clip": None, "vipe_starting_frame_idx": 0,
                   "multiview_npz": None, "depth_path": None, "png_depth_scale": GenerationRequest.png_depth_scale,
                   "depth_is_disparity": False,
                   "fov": None, "intrinsics": None,
                   "fps": self.request.fps if self.fps_given else None}  # fmt: skip
        return dataclasses.replace(self.request, **{**cleared, **fields})

    def _frames_restored(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` (another input's) with the Frames count a multi-view input lowered given
        back (:attr:`_frames_forced`), where the user has not set it since."""
        if self._frames_forced is None or request.num_video_frames != self._frames_forced[0]:
            return request
        return dataclasses.replace(request, num_video_frames=self._frames_forced[1])

    def _load(self, request: GenerationRequest, kind: str, label: str) -> SourceView:
        # The frames read from a video depend on the count: given back before the input is read.
        request = self._frames_restored(request)
        check_request(request)  # as the CLI, before the input is read (e.g. a PNG depth scale ≤ 0, which would read as no depth)
        data, notes = self._read(request, kind)
        old = self.request
        self.request, self.kind, self.input, self.notes, self._sample = request, kind, data, notes, None
        self._frames_forced = None
        self._enter_scene((kind, request.input_image_path, request.vipe_path, request.vipe_clip, request.multiview_npz), label)
        if self.auto_time and (request.fps, request.num_video_frames) != (old.fps, old.num_video_frames):  # the video's seconds changed
            self._retime()
        self.source, self.source_label = first_view(kind, data), label
        self._plan = None
        if kind == "multiview" and len(data.trajectory) < request.num_video_frames:
            self.update(num_video_frames=len(data.trajectory))  # the npz's trajectory is the path
            self._frames_forced = (len(data.trajectory), request.num_video_frames)
        return self.source

    def _enter_scene(self, scene: tuple, label: str) -> None:
        """Keyframes and an imported path are poses in the world of the input they were made in
        (as a nerfstudio camera path belongs to its scene): another input clears them, the same one
        loaded again (another FOV, depth or start frame) keeps them. A path imported before any
        input is the first input's. :attr:`path_note` says what was cleared."""
        self.path_note = ""
        if self._scene is not None and scene != self._scene and (self.keyframes or self.imported is not None):
            what = f"{len(self.keyframes)} keyframe{'s' * (len(self.keyframes) != 1)}" if self.keyframes else "imported camera path"
            self.path_note = (
                f"cleared the {what} made for {self.source_label}: its poses are in that input's world, not {label}'s "
                "(import a saved camera_path.json to use them here)"
            )
            self.keyframes, self.imported, self.path_mode, self.auto_time = [], None, "preset", True
        self._scene = scene

    @staticmethod
    def _read(request: GenerationRequest, kind: str) -> tuple[SceneInput, list[str]]:
        """:func:`read_input`, with the notes the library gives (the CLI prints them as "note:");
        only this thread's, so a generation running meanwhile keeps its own."""
        with collect_notes() as notes:
            data = read_input(request, kind, grant_trust=GRANT_TRUST)
        return data, notes

    def _prepare_sample(self) -> SourceView:
        from gen3c.io.resolution import parse_resolution

        image, depth, K = self._sample
        return prepare_source(image, depth, K, parse_resolution(self.request.resolution), self.request.resize_mode, depth_kind="metric")

    def save_upload(self, name: str, content: bytes, kind: str = "file") -> Path:
        """Store an uploaded file in ``work_dir/uploads`` and return its path; the loaders then
        check it like any CLI input. Another file uploaded under a name already there gets the
        next free name (``photo_2.png``): the input loaded from the first, and the runs' records
        naming it, keep their file (the same file uploaded again keeps its name)."""
        if len(content) == 0:
            raise Gen3cInputError(f"uploaded {kind} {quoted_path(name)} is empty (0 bytes): choose another file")
        if len(content) > MAX_UPLOAD_BYTES:
            raise Gen3cInputError(
                f"uploaded {kind} {quoted_path(name)} is {len(content) / 2**20:.0f} MiB, above the {MAX_UPLOAD_BYTES >> 20} MiB upload limit: pass a path on the server instead"
            )
        folder = self._work_folder("uploads", "keeps uploads")
        path = first = folder / _safe_name(name)
        k = 1
        while path.exists() and (path.stat().st_size != len(content) or path.read_bytes() != content):
            k += 1
            path = first.with_name(f"{first.stem}_{k}{first.suffix}")
        if not path.exists():
            write_bytes_atomic(path, content)
        return path

    def _work_folder(self, name: str, does: str, make: bool = True) -> Path:
        """``work_dir/name``, made where ``make``; refused in the page's words where it is no
        folder (a file, a link to nothing: ``ensure_writable_dir`` called it an "output folder" to
        choose, which the page cannot)."""
        folder = self.work_dir / name
        if folder.is_symlink() and not folder.exists() or folder.exists() and not folder.is_dir():
            what = "a file" if folder.exists() else "a link to nothing"
            raise Gen3cInputError(f"{quoted_path(str(folder))} is {what}, where the GUI {does}: move or remove it")
        return ensure_writable_dir(folder, f"the GUI's {name} folder") if make else folder

    def require_source(self) -> SourceView:
        if self.source is None:
            raise Gen3cInputError("no input loaded: load the demo sample, an image, or a video input first")
        return self.source

    @property
    def run_source(self) -> SourceView | None:
        """What :func:`run_request` gets as ``source``: the prepared image (a run then reads no
        file again), or None for video inputs, which a run reads from the request's paths."""
        return self.source if self.kind == "image" else None

    @property
    def depth_given(self) -> bool:
        """Whether the loaded input's depth came with it (a depth file, a video or multi-view
        input), not estimated nor handed over in memory: what ``mask_invalid_depth`` applies to."""
        return self.source is not None and (self.kind != "image" or self.request.depth_path is not None)

    @property
    def takes_prompt(self) -> bool:
        """Whether a run reads the page's prompt: the gen3c generator's, unless
        ``disable_prompt_encoder`` gives every text zero embeddings (the page hides the prompt otherwise)."""
        return self.request.generator == "gen3c" and not self.request.generator_options.get("disable_prompt_encoder")

    def input_cameras(self) -> Cameras | None:
        """The cameras of a video's frames or of the multi-view key views (None for an image)."""
        if self.kind == "image" or self.input is None:
            return None
        frames = self.input.keys if self.kind == "multiview" else self.input
        H, W = frames.size
        return Cameras(frames.w2c, frames.K, H, W)

    # -- settings -------------------------------------------------------------------------

    def update(self, **settings: Any) -> None:
        """Change request settings by their CLI names; re-prepares the source when the working
        resolution changes and drops the cache when its settings change. A preset choice no
        dropdown offers (:data:`PRESET_CHOICES`) is refused here, not left to the camera path."""
        for key in settings.keys() & PRESET_CHOICES.keys():
            if settings[key] not in PRESET_CHOICES[key]:
                raise Gen3cInputError(f"--{key} {quoted(settings[key])} is unknown: choose one of {', '.join(PRESET_CHOICES[key])}")
        request = GenerationRequest.from_dict({**self.request.to_dict(), **settings}, "GUI settings")
        check_request(request)  # the CLI's checks (frames, fps, a seed out of range), when set, not at Generate
        old, self.request = self.request, request
        try:
            if self.input is not None and _read_settings(old, self.kind) != _read_settings(request, self.kind):
                if self._sample is not None:
                    self.input = self._prepare_sample()
                else:
                    self.input, self.notes = self._read(request, self.kind)
                self.source, self._plan = first_view(self.kind, self.input), None
        except Exception:
            self.request = old
            raise
        if "fps" in settings:
            self.fps_given = True
        if "num_video_frames" in settings:  # the user's count now, which another input keeps
            self._frames_forced = None
        if self.auto_time and (old.num_video_frames, old.fps) != (request.num_video_frames, request.fps):
            self._retime()

    def set_prompt(self, prompt: str) -> None:
        """Set the gen3c generator's prompt. The page sends it key by key: :meth:`update`'s
        :func:`check_request` (which reads a LoRA's record from disk) checks nothing a prompt
        changes, so only the prompt is checked (any text) and the rest stays as checked."""
        if not isinstance(prompt, str):
            raise Gen3cInputError(f"the prompt must be text, got {describe_value(prompt)}")
        self.request = dataclasses.replace(self.request, generator_options={**self.request.generator_options, "prompt": prompt})

    @property
    def noise_aug_strength(self) -> float:
        """GEN3C's ``--noise_aug_strength`` of the gen3c generator's runs (0: none)."""
        return float(self.request.generator_options.get("noise_aug_strength") or 0.0)

    @property
    def takes_noise_aug(self) -> bool:
        """Whether a run can use ``noise_aug_strength``: the gen3c generator's, on a single image
        (:func:`~gen3c.pipelines.request.check_noise_aug_strength` refuses it above 0 for a video or
        multi-view input); before any input is loaded, the image an input may be."""
        return self.request.generator == "gen3c" and (self.source is None or self.kind == "image")

    def set_noise_aug_strength(self, strength: float) -> None:
        """Set the gen3c generator's ``noise_aug_strength`` as ``gen3c generate`` checks it: a
        finite number ≥ 0, and 0 for a loaded video or multi-view input."""
        _check_number(strength, "--noise_aug_strength")  # (None was dropped as unset, then a KeyError)
        check_gen3c_only(dataclasses.replace(self.request, generator_options={"noise_aug_strength": strength}))
        strength = check_generator_options({"noise_aug_strength": strength})["noise_aug_strength"]
        if self.source is not None:
            check_noise_aug_strength(self.kind, strength)
        options = {**self.request.generator_options, "noise_aug_strength": strength}
        self.request = dataclasses.replace(self.request, generator_options=options)

    def set_path_mode(self, mode: str) -> None:
        if mode not in PATH_MODES:
            raise Gen3cInputError(f"unknown path mode {mode!r}: choose one of {', '.join(PATH_MODES)}")
        if mode == "file" and self.imported is None:
            raise Gen3cInputError("no camera file imported: import a camera_path.json first")
        self.path_mode = mode

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.request.num_video_frames - 1) / self.request.fps

    # -- keyframes ------------------------------------------------------------------------

    def keyframe_index(self, keyframe_id: int) -> int:
        for i, kf in enumerate(self.keyframes):
            if kf.id == keyframe_id:
                return i
        raise Gen3cInputError(f"keyframe {keyframe_id} does not exist (it may have been deleted)")

    def add_keyframe(self, w2c: Tensor, time: float | None = None) -> Keyframe:
        """Append a keyframe (OpenCV w2c). Without a time, and with auto timing off, it goes one
        second after the last keyframe."""
        w2c = _keyframe_pose(w2c)
        if time is None:
            time = self.keyframes[-1].time + 1.0 if self.keyframes else 0.0
        elif not self.auto_time:  # (even timing gives it its time)
            self._check_time(time)
        else:
            _check_number(time, "keyframe time")
        kf = Keyframe(self._next_id, w2c, float(time))
        self._next_id += 1
        self.keyframes.append(kf)
        if self.auto_time:
            self._retime()
        else:
            self._sort()
        return kf

    def add_source_keyframe(self) -> Keyframe:
        """A keyframe at the input's first camera, first on the path (at 0 s): the video's first
        frame is that view's image (GEN3C conditions on it), so a path starting elsewhere jumps
        after it, and a view in the page can come near that camera but not onto it."""
        source = self.require_source()
        pose = _keyframe_pose(source.w2c)
        # A second press: the camera would hold still at the start (with even timing, for a whole
        # step), where manual timing refused it as a time clash. Refused in both, saying so.
        if self.keyframes and torch.allclose(self.keyframes[0].w2c, pose, rtol=0.0, atol=1e-6):
            first = self.keyframes[0]
            raise Gen3cInputError(
                f"the path already starts at the input's camera (keyframe #{first.id} at {first.time:.2f} s): another keyframe "
                "there would only hold the camera still"
            )
        if not self.auto_time and any(kf.time < 1e-6 for kf in self.keyframes):
            raise Gen3cInputError("another keyframe is already at 0 s: give it a later time, or turn on even timing, to start the path at the input's camera")
        kf = self.add_keyframe(pose, 0.0)
        self.reorder_keyframe(kf.id, 0)  # (sorted first already without even timing)
        return kf

    @property
    def starts_away_from_input(self) -> bool:
        """Whether the first keyframe is as far from the input's camera as a run notes a jump after
        the first frame (:func:`~gen3c.pipelines.request.first_camera_away`); False without
        keyframes or input."""
        return bool(self.keyframes and self.source is not None and first_camera_away(self.keyframes[0].w2c, self.source)[2])

    def move_keyframe(self, keyframe_id: int, w2c: Tensor) -> None:
        """Give a keyframe a new pose (e.g. dragged with its gizmo)."""
        keyframe = self.keyframes[self.keyframe_index(keyframe_id)]
        keyframe.w2c = _keyframe_pose(w2c, f"keyframe #{keyframe_id}'s pose")

    def delete_keyframe(self, keyframe_id: int) -> None:
        del self.keyframes[self.keyframe_index(keyframe_id)]
        if self.auto_time:
            self._retime()

    def reorder_keyframe(self, keyframe_id: int, new_index: int) -> None:
        """Move a keyframe to position ``new_index`` of the path. Times stay with the positions
        (the path still visits its times in order); only the order of the poses changes."""
        i = self.keyframe_index(keyframe_id)
        if not is_whole_number(new_index):  # checked before the keyframe leaves its place
            raise Gen3cInputError(f"keyframe position {describe_value(new_index)} must be a whole number (0 is the first)")
        new_index = max(0, min(len(self.keyframes) - 1, int(new_index)))
        times = [kf.time for kf in self.keyframes]
        self.keyframes.insert(new_index, self.keyframes.pop(i))
        for kf, t in zip(self.keyframes, times, strict=True):
            kf.time = t

    def set_keyframe_time(self, keyframe_id: int, time: float) -> None:
        """Set a keyframe's time (seconds); turns auto timing off. Keyframes stay sorted by time."""
        self._check_time(time, keyframe_id)
        self.keyframes[self.keyframe_index(keyframe_id)].time = float(time)
        self.auto_time = False
        self._sort()

    def _check_time(self, time: float, keyframe_id: int | None = None) -> None:
        """Refuse a keyframe time that is no number of seconds ≥ 0, or another keyframe's (than
        ``keyframe_id``'s): the spline needs its times strictly increasing."""
        _check_number(time, "keyframe time")
        if not np.isfinite(time) or time < 0:
            raise Gen3cInputError(f"keyframe time {time} must be a number of seconds ≥ 0")
        others = [kf.time for kf in self.keyframes if kf.id != keyframe_id]
        if any(abs(t - time) < 1e-6 for t in others):
            raise Gen3cInputError(f"another keyframe is already at {time:g} s: give each keyframe its own time")

    def set_auto_time(self, enabled: bool) -> None:
        if not isinstance(enabled, (bool, np.bool_)):  # bool("false") would be True
            raise Gen3cInputError(f"even timing must be on or off (True or False), got {describe_value(enabled)}")
        self.auto_time = bool(enabled)
        if self.auto_time:
            self._retime()

    def set_smoothness(self, value: float) -> None:
        _check_number(value, "smoothness")
        if not 0.0 <= value <= 1.0:
            raise Gen3cInputError(f"smoothness {value} must be between 0 and 1")
        self.smoothness = float(value)

    def _retime(self) -> None:
        """Spread the keyframes evenly from the first frame to the last."""
        n = len(self.keyframes)
        for k, kf in enumerate(self.keyframes):
            kf.time = self.duration * k / (n - 1) if n > 1 else 0.0

    def _sort(self) -> None:
        self.keyframes.sort(key=lambda kf: kf.time)

    def keyframe_data(self) -> KeyframePath:
        """The keyframes as the library takes them: poses, times, smoothness and the frames."""
        if not self.keyframes:
            raise Gen3cInputError("the keyframe path is empty: add keyframes (e.g. 'Add from current view') first")
        if self.auto_time and len(self.keyframes) > 1 and self.duration == 0:  # even timing put them all at 0 s
            raise Gen3cInputError(
                f"a 1-frame video has no time to spread {len(self.keyframes)} keyframes over: set Frames to 2 or more, or keep one keyframe"
            )
        w2c = torch.stack([kf.w2c for kf in self.keyframes])
        times = torch.tensor([kf.time for kf in self.keyframes], dtype=torch.float64)
        return KeyframePath(w2c, times, self.smoothness, self.request.num_video_frames, self.request.fps)

    def keyframe_path(self) -> Cameras:
        """The keyframes' spline sampled at every frame, with the source's intrinsics
        (:func:`gen3c.trajectories.keyframe_trajectory`, as ``--camera_file`` replays it)."""
        source = self.require_source()
        H, W = source.size
        return self.keyframe_data().cameras(source.K, H, W)

    # -- cameras and cache ----------------------------------------------------------------

    def cameras(self) -> Cameras:
        """The current camera path at the working resolution."""
        source = self.require_source()
        if self.path_mode == "keyframes":
            return self.keyframe_path()
        if self.path_mode == "file":
            H, W = source.size
            fit = intrinsics_fit(self.kind, self.request.resize_mode)
            return fit_cameras(self.imported, self.request.num_video_frames, H, W, name="imported camera file", fit=fit)
        return scene_cameras(dataclasses.replace(self.request, camera_file=None), self.kind, self.input)

    def plan(self):
        """The input's cache plan under the current cache settings (built once per setting):
        :func:`~gen3c.pipelines.request.scene_plan`, as a run builds it."""
        self.require_source()
        r = self.request
        key = (id(self.input), r.filter_points_threshold, r.foreground_masking, r.splat)
        if self._plan is None or self._plan_key != key:
            self._plan = scene_plan(r, self.kind, self.input)
            self._plan_key = key
        return self._plan

    def display_points(self, max_points: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
        """The cache's points (N, 3) float32 and colours (N, 3) uint8, evenly subsampled (a
        video's: those of its first frame)."""
        points, colors = self.plan().point_cloud()
        if len(points) > max_points:
            keep = torch.randperm(len(points), generator=torch.Generator().manual_seed(0))[:max_points]
            points, colors = points[keep], colors[keep]
        rgb = ((colors.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return points.float().numpy(), rgb.numpy()

    def scene_scale(self) -> float:
        """The first view's median depth (:meth:`~gen3c.pipelines.camera_video.SourceView.median_depth`,
        what ``--trajectory_scale median_depth`` scales a path by): a length for frusta and the
        initial view; 1 when no pixel has a valid depth."""
        median = self.require_source().median_depth()
        return 1.0 if median is None else median

    def render_frame(self, index: int) -> tuple[Tensor, Tensor]:
        """The cache rendered into frame ``index`` of the path as a run renders it (a video's
        frame ``index``; the key views that see it best): colour (3, H, W) in [−1, 1] and mask
        (1, H, W) in {0, 1}, of buffer 0."""
        if not is_whole_number(index):
            raise Gen3cInputError(f"frame {describe_value(index)} is not a whole number: pick a frame of the path (0 is the first)")
        cams = self.cameras()
        if not 0 <= index < len(cams):
            raise Gen3cInputError(f"frame {index} is outside the path's {len(cams)} frames")
        camera = cams[index]
        cache, offset = self.plan().cache_for_chunk(0, index, camera, None, None, "")
        out = cache.render(camera, frame_offset=offset, depth=False)
        return out.colors[0, 0], out.masks[0, 0]

    # -- camera files ---------------------------------------------------------------------

    def camera_path_dict(self) -> dict:
        """The current path as a nerfstudio ``camera_path.json`` object, keyframes included
        (:func:`~gen3c.io.camera_files.cameras_to_nerfstudio_path`), with the page's own
        settings under ``"gen3c"``."""
        cams = self.cameras()
        keyframes = self.keyframe_data() if self.path_mode == "keyframes" else None
        data = cameras_to_nerfstudio_path(cams, self.request.fps, keyframes)
        data["gen3c"] = {**data.get("gen3c", {}), "path_mode": self.path_mode, "auto_time": self.auto_time}
        return data

    def camera_path_json(self) -> bytes:
        return json.dumps(self.camera_path_dict(), indent=1).encode("utf-8")

    def import_camera_path(self, text: bytes | str, name: str = "camera file") -> None:
        """Load a nerfstudio ``camera_path.json`` (its keyframes become editable keyframes:
        :func:`~gen3c.io.camera_files.read_keyframe_path`) or any camera file ``--camera_file``
        reads (used as a fixed path, as is the ``camera_path`` of a file with keyframes)."""
        data = parse_camera_json(text.encode("utf-8") if isinstance(text, str) else text, name)
        cams = cameras_from_dict(data, name, follow_keyframes=False)
        path = read_keyframe_path(data, name)
        fps = path.fps if path is not None else camera_dict_fps(data, name)
        if fps is not None:  # the file's rate, not the FPS box's (update would blame that)
            check_camera_file_fps(fps, name)
        self.update(num_video_frames=len(cams), **({} if fps is None else {"fps": fps}))  # the path's own rate, where it has one
        self.imported = cams
        if path is None:
            self.path_mode = "file"
            return
        self.keyframes = []
        for w2c, t in zip(path.w2c, path.times.tolist(), strict=True):
            self.keyframes.append(Keyframe(self._next_id, w2c.clone(), t))
            self._next_id += 1
        self.smoothness = path.smoothness
        extra = data.get("gen3c")
        self.auto_time = bool(extra.get("auto_time", False)) if isinstance(extra, dict) else False
        self.path_mode = "keyframes"

    # -- generation -----------------------------------------------------------------------

    def next_output_name(self) -> str:
        """The first ``gui_NNN`` no file in the outputs folder is named by (``NAME.mp4``,
        ``NAME_run.json``, ``NAME.partial``, a running run's ``NAME.running``, …): a run replaces
        the files of its name. Names are compared as macOS and Windows take them
        (:func:`~gen3c.io.paths.one_file_key`): there ``GUI_003.mp4`` is ``gui_003.mp4``, and a
        folder made on Linux may be copied there. :meth:`reserve_output_name` takes it. The
        ``NAME.running`` of a gen3c gui killed mid-run is removed first, with the chunks its run
        kept (:func:`_free_abandoned_name`): that name is free again."""
        from gen3c.io.paths import one_file_key

        folder = self.work_dir / "outputs"  # (where every run writes: a request's own video_save_folder is not used)
        try:
            entries = list(folder.iterdir()) if folder.is_dir() else []
            abandoned = [p for p in entries if re.fullmatch(rf"gui_[0-9]+{re.escape(RUNNING_SUFFIX)}", p.name) and _marker_abandoned(p)]
            for marker in abandoned:
                _free_abandoned_name(marker)
            names = [re.match(r"gui_[0-9]+(?=[._]|$)", one_file_key(p.name)) for p in (folder.iterdir() if abandoned else entries)]
        except OSError as exc:  # (a folder that can be written but not read: mode 0300, an ACL)
            raise Gen3cInputError(
                f"the GUI's outputs folder {quoted_path(folder)} cannot be listed ({exc.strerror or exc}) to find a free gui_NNN name: "
                "give gen3c permission to read it, or start gen3c gui with another --work_dir"
            ) from None
        taken = {m[0] for m in names if m}
        k = 1
        while f"gui_{k:03d}" in taken:
            k += 1
        return f"gui_{k:03d}"

    def reserve_output_name(self) -> str:
        """The next free ``gui_NNN`` (:meth:`next_output_name`), held for a run by creating
        ``outputs/NAME.running`` exclusively until :meth:`release_output_name`: two ``gen3c gui``
        sharing a work folder both found the same free number (a run's outputs are written as it
        ends) and replaced each other's outputs; the one that finds the file made takes the next."""
        folder = self._work_folder("outputs", "writes its videos")
        for _ in range(1000):  # (each try another number: only as many as other servers reserve meanwhile)
            name = self.next_output_name()
            try:
                fd = os.open(running_marker(folder, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            except OSError as exc:
                raise Gen3cInputError(f"the GUI's outputs folder {quoted_path(folder)} cannot be written ({exc.strerror or exc}): fix its permissions or free space on its disk") from None
            locked = _hold_locked(fd)  # (before its text says so: a marker read meanwhile is not written yet, so held)
            with os.fdopen(fd, "w", closefd=not locked) as fh:  # (who holds it, for whoever lists the folder)
                fh.write(_MARKER_TEXT.format(host=socket.gethostname(), pid=os.getpid(), tag=_PROCESS_TAG, locked=_MARKER_LOCKED * locked))
            if locked:
                with _HELD_LOCK:
                    _HELD_MARKERS[os.path.realpath(running_marker(folder, name))] = fd
            return name
        raise Gen3cInputError(f"no free run name in {quoted_path(folder)}: another program keeps creating gui_NNN files there")

    def release_output_name(self, name: str) -> None:
        """End :meth:`reserve_output_name`'s hold on ``name`` where its run does not start (a
        :class:`JobRunner` ends it as the run ends): a run that wrote its outputs keeps the name by
        them, one that wrote none frees it."""
        _end_hold(running_marker(self.work_dir / "outputs", name))

    def build_request(self, name: str | None = None) -> GenerationRequest:
        """The request for a run of the current settings and path. Custom paths are written to
        ``work_dir/paths`` (keyframes as the downloadable camera_path.json, an imported path as a
        gen3c cameras file) and passed as ``camera_file``, so the run reads them exactly like
        ``gen3c generate --camera_file``. Without ``name`` the run is named by
        :meth:`reserve_output_name`, whose hold :class:`JobRunner` ends as the run ends, or the
        caller (:meth:`release_output_name`) where it does not start it."""
        self.require_source()
        self._work_folder("outputs", "writes its videos", make=False)  # (the run would name it --video_save_folder, no control of the page)
        if name is not None:
            return self._request_named(name)
        name = self.reserve_output_name()
        try:
            return self._request_named(name)
        except BaseException:
            self.release_output_name(name)
            raise

    def _request_named(self, name: str) -> GenerationRequest:
        """:meth:`build_request`'s request, its outputs named ``name``."""
        request = dataclasses.replace(self.request, video_save_name=name, video_save_folder=str(self.work_dir / "outputs"), camera_file=None)
        # The page's Frames sets the count of any path (the run's own check would name the path
        # file written below, which the user did not choose): checked here, before it is written.
        check_frame_count(request)
        if self.path_mode != "preset":
            path = self._work_folder("paths", "writes camera paths") / f"{name}_path.json"
            if self.path_mode == "keyframes":  # the keyframes themselves: the run samples them as the CLI does
                write_bytes_atomic(path, self.camera_path_json())
            else:
                save_cameras(path, self.cameras(), request.fps)
            request = dataclasses.replace(request, camera_file=str(path))
        # The page keeps every control's value, used or not; the run's record (NAME_run.json, which
        # `gen3c batch` runs again) holds the settings this run uses, as `gen3c generate` takes them.
        defaults = {f.name: f.default for f in dataclasses.fields(GenerationRequest)}
        unused = []
        if request.camera_file is not None or self.kind == "multiview":  # the path is given: no preset
            unused += PRESET_SETTINGS
        if self.kind != "image" or (has_depth(request) and (request.fov is not None or request.intrinsics is not None)):
            unused.append("depth_estimator")  # nothing is estimated
        if not self.depth_given:
            unused.append("mask_invalid_depth")  # an estimate or an in-memory depth has no invalid pixels to leave out
        request = dataclasses.replace(request, **{key: defaults[key] for key in unused})
        if not self.takes_prompt and "prompt" in request.generator_options:  # the hidden prompt box's: the preview reads no generator options
            request = dataclasses.replace(request, generator_options={k: v for k, v in request.generator_options.items() if k != "prompt"})
        check_unused_settings(request)
        return request

    def discard_path_file(self, path: str | Path | None) -> None:
        """Remove a camera path file :meth:`build_request` wrote (``path``: the request's
        ``camera_file``), for a run that wrote no outputs (failed, cancelled, or never started):
        the next run takes its number (no file in the outputs folder has it) and would replace it.
        A path elsewhere (none the page wrote) is left alone."""
        if path is not None and Path(path).parent == self.work_dir / "paths":
            Path(path).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------


@dataclass
class JobResult:
    """How a job ended: ``output`` on success, ``error`` (a message) on failure, or ``cancelled``;
    ``notes``: what the run noted (the CLI prints them as "note:"), for the page; ``out_of_memory``:
    the error is the accelerator's running out of memory (:class:`~gen3c.errors.Gen3cMemoryError`),
    whose fix is a flag of how the model loads; ``stranded``: that left part of the model on the
    accelerator, and the generator must be loaded again."""

    output: RunOutput | None = None
    error: str | None = None
    cancelled: bool = False
    notes: list[str] = dataclasses.field(default_factory=list)
    out_of_memory: bool = False
    stranded: bool = False


class JobRunner:
    """Runs one :func:`run_request` at a time in a worker thread; a second start is refused.

    Cancelling is cooperative: the next progress call raises :class:`GenerationCancelled`, which
    unwinds the run before anything is written (outputs are written atomically at the end); the
    chunks a long run kept for ``--resume`` are dropped too, since the GUI does not resume.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._ended = threading.Event()  # the running job's on_done has returned (its thread may not have exited yet)

    @property
    def running(self) -> bool:
        """Whether a job runs: until its ``on_done`` has returned (the page has shown its end and
        enabled Generate), not until its thread has exited, which comes a moment later."""
        return self._thread is not None and self._thread.is_alive() and not self._ended.is_set()

    def check_idle(self) -> None:
        """Refuse a second run while one runs, in the words of where it is (cancelled, or not)."""
        if self.running and self._cancel.is_set():
            raise Gen3cInputError("the cancelled generation has not stopped yet: press Generate again once the page says it was cancelled")
        if self.running:
            raise Gen3cInputError("a generation is already running: wait for it to finish or cancel it")

    def start(
        self,
        request: GenerationRequest,
        source: SourceView,
        on_progress: Callable[[str, int, int], None],
        on_done: Callable[[JobResult], None],
        generator=None,
        source_notes: Sequence[str] = (),
    ) -> None:
        """Start ``request`` on ``source``; ``on_progress(stage, done, total)`` and ``on_done``
        are called from the worker thread. ``source_notes``: those made reading ``source``, for
        the run's record (:func:`run_request`)."""
        with self._lock:
            self.check_idle()
            self._cancel.clear()
            cancel, ended = self._cancel, threading.Event()
            self._ended = ended

            def factory(stage: str, total: int) -> Callable[[int], None]:
                if cancel.is_set():
                    raise GenerationCancelled()
                done = 0
                on_progress(stage, 0, total)

                def advance(n: int = 1) -> None:
                    nonlocal done
                    if cancel.is_set():
                        raise GenerationCancelled()
                    done += n
                    on_progress(stage, done, total)

                return advance

            def work() -> None:
                with record_notes() as notes:  # this thread's: the page shows them, and the server's log as before
                    try:
                        result = JobResult(output=run_request(request, source=source, generator=generator, progress=factory, source_notes=source_notes, resume_with=None))
                    except GenerationCancelled:
                        result = JobResult(cancelled=True)
                    except Gen3cInputError as exc:
                        memory = isinstance(exc, Gen3cMemoryError)
                        result = JobResult(error=str(exc), out_of_memory=memory, stranded=memory and exc.stranded)
                    except Exception as exc:  # a broken install or a bug: reported in the page, not lost with the thread
                        result = JobResult(error=unexpected_error(exc))
                result.notes = notes
                if result.output is None:  # the GUI has no --resume: drop a long run's kept chunks
                    shutil.rmtree(partial_dir(request.video_save_folder, request.video_save_name), ignore_errors=True)
                # Its outputs hold its name now, or it wrote none: the next run may take it.
                _end_hold(running_marker(request.video_save_folder, request.video_save_name))
                try:
                    on_done(result)
                finally:
                    ended.set()

            self._thread = threading.Thread(target=work, name="gen3c-gui-job", daemon=True)
            self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running job; True when none is running afterwards."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running
