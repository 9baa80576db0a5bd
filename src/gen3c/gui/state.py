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
The path through them is a cardinal spline on camera centres and a squad spline on camera
orientations (:func:`interpolate_poses`); ``smoothness`` 0 gives straight segments and plain
slerp, 1 gives a Catmull–Rom spline. Intrinsics stay the source camera's, as in GEN3C.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from gen3c.cameras import Cameras, invert_pose, opencv_to_opengl, opengl_to_opencv, validate_poses
from gen3c.errors import Gen3cInputError, collect_notes
from gen3c.io.atomic import ensure_writable_dir, write_bytes_atomic
from gen3c.io.camera_files import (
    cameras_from_dict,
    cameras_to_nerfstudio_path,
    fit_cameras,
    parse_camera_json,
    save_cameras,
)
from gen3c.pipelines.camera_video import MAX_FRAMES, SourceView, prepare_source
from gen3c.pipelines.request import (
    MAX_FPS,
    MIN_FPS,
    GenerationRequest,
    RunOutput,
    check_request,
    first_view,
    input_kind,
    intrinsics_fit,
    read_input,
    run_request,
    scene_cameras,
    scene_plan,
)
from gen3c.pipelines.resume import partial_dir

if TYPE_CHECKING:
    from gen3c.pipelines.request import SceneInput

PATH_MODES = ("preset", "keyframes", "file")
#: Uploads larger than this are refused (an image, a depth map or a camera file).
MAX_UPLOAD_BYTES = 256 * 1024 * 1024
DEFAULT_SMOOTHNESS = 0.5


class GenerationCancelled(Exception):
    """Raised from the progress callback when the user cancels a generation."""


# --------------------------------------------------------------------------------------------
# Quaternions (w, x, y, z), float64, batched over leading dimensions
# --------------------------------------------------------------------------------------------


def matrix_to_quaternion(R: Tensor) -> Tensor:
    """Rotation matrices (*B, 3, 3) → unit quaternions (*B, 4) as (w, x, y, z) with w ≥ 0."""
    R = R.to(torch.float64)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    # Shepperd: take the largest of 4w², 4x², 4y², 4z² to divide by, for accuracy.
    candidates = torch.stack(
        [
            torch.stack([1 + m00 + m11 + m22, R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1),
            torch.stack([R[..., 2, 1] - R[..., 1, 2], 1 + m00 - m11 - m22, R[..., 0, 1] + R[..., 1, 0], R[..., 0, 2] + R[..., 2, 0]], -1),
            torch.stack([R[..., 0, 2] - R[..., 2, 0], R[..., 0, 1] + R[..., 1, 0], 1 - m00 + m11 - m22, R[..., 1, 2] + R[..., 2, 1]], -1),
            torch.stack([R[..., 1, 0] - R[..., 0, 1], R[..., 0, 2] + R[..., 2, 0], R[..., 1, 2] + R[..., 2, 1], 1 - m00 - m11 + m22], -1),
        ],
        -2,
    )  # (*B, 4, 4): row k is 4·q_k·q
    best = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1).argmax(-1)
    q = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    q = torch.nn.functional.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Quaternions (*B, 4) (w, x, y, z), normalised first → rotation matrices (*B, 3, 3)."""
    w, x, y, z = torch.nn.functional.normalize(q.to(torch.float64), dim=-1).unbind(-1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def _qmul(a: Tensor, b: Tensor) -> Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
         aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1
    )  # fmt: skip


def _qconj(q: Tensor) -> Tensor:
    return q * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=q.dtype)


def _qlog(q: Tensor) -> Tensor:
    """Log of unit quaternions (*B, 4) → rotation vectors / 2, (*B, 3)."""
    v = q[..., 1:]
    norm = v.norm(dim=-1, keepdim=True)
    angle = torch.atan2(norm, q[..., :1])
    return torch.where(norm > 1e-12, v / norm.clamp(min=1e-12) * angle, v)


def _qexp(r: Tensor) -> Tensor:
    angle = r.norm(dim=-1, keepdim=True)
    axis = torch.where(angle > 1e-12, r / angle.clamp(min=1e-12), r)
    return torch.cat([torch.cos(angle), torch.where(angle > 1e-12, torch.sin(angle) * axis, r)], -1)


def quaternion_slerp(q0: Tensor, q1: Tensor, t: Tensor | float) -> Tensor:
    """Spherical linear interpolation along the shorter arc; returns unit quaternions.

    Args:
        q0, q1: (*B, 4) quaternions (normalised here).
        t: (*B) or a float in [0, 1].
    """
    q0 = torch.nn.functional.normalize(q0.to(torch.float64), dim=-1)
    q1 = torch.nn.functional.normalize(q1.to(torch.float64), dim=-1)
    t = torch.as_tensor(t, dtype=torch.float64)[..., None]
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.arccos(dot)
    sin = torch.sin(theta)
    close = sin < 1e-6
    safe = torch.where(close, torch.ones_like(sin), sin)
    w0 = torch.where(close, 1 - t, torch.sin((1 - t) * theta) / safe)
    w1 = torch.where(close, t, torch.sin(t * theta) / safe)
    return torch.nn.functional.normalize(w0 * q0 + w1 * q1, dim=-1)


# --------------------------------------------------------------------------------------------
# Keyframe splines
# --------------------------------------------------------------------------------------------


def interpolate_poses(c2w: Tensor, times: Tensor, query: Tensor, smoothness: float = DEFAULT_SMOOTHNESS) -> Tensor:
    """Interpolate camera-to-world poses given at keyframe times.

    Camera centres follow a cubic Hermite (cardinal) spline whose tangents are ``smoothness``
    times the Catmull–Rom tangents for non-uniform times (one-sided at the ends); rotations follow
    squad, whose inner control quaternions are pulled toward the keyframes by ``1 − smoothness``
    (0: plain slerp). The path passes through every keyframe at its time; before the first and
    after the last keyframe the pose is held.

    Args:
        c2w: (K, 4, 4) keyframe poses, rigid.
        times: (K,) strictly increasing keyframe times.
        query: (T,) times to evaluate.
        smoothness: in [0, 1].
    Returns:
        (T, 4, 4) float64 camera-to-world poses.
    """
    if not 0.0 <= smoothness <= 1.0:
        raise Gen3cInputError(f"smoothness {smoothness} must be between 0 and 1")
    c2w, times, query = c2w.to(torch.float64), times.to(torch.float64), query.to(torch.float64)
    K = c2w.shape[0]
    if K == 0:
        raise Gen3cInputError("the camera path has no keyframes: add at least one")
    if K > 1 and not (times[1:] > times[:-1]).all():
        raise Gen3cInputError("keyframe times must be strictly increasing: give each keyframe its own time")
    out = torch.zeros(len(query), 4, 4, dtype=torch.float64)
    out[:, 3, 3] = 1.0
    if K == 1:
        out[:] = c2w[0]
        return out
    p = c2w[:, :3, 3]
    q = matrix_to_quaternion(c2w[:, :3, :3])
    for k in range(1, K):  # one hemisphere along the path: no long-way-round flips
        if (q[k] * q[k - 1]).sum() < 0:
            q[k] = -q[k]
    # Position tangents (per second), Catmull–Rom for non-uniform knots, scaled by smoothness.
    m = torch.empty_like(p)
    m[1:-1] = (p[2:] - p[:-2]) / (times[2:] - times[:-2])[:, None]
    m[0] = (p[1] - p[0]) / (times[1] - times[0])
    m[-1] = (p[-1] - p[-2]) / (times[-1] - times[-2])
    m = m * smoothness
    # Squad inner quaternions a_k = q_k · exp(−s/4 · (log(q_k⁻¹ q_{k+1}) + log(q_k⁻¹ q_{k−1}))).
    a = q.clone()
    if K > 2:
        inv = _qconj(q[1:-1])
        tangent = _qlog(_qmul(inv, q[2:])) + _qlog(_qmul(inv, q[:-2]))
        a[1:-1] = _qmul(q[1:-1], _qexp(-smoothness / 4.0 * tangent))

    tq = query.clamp(times[0], times[-1])
    seg = (torch.searchsorted(times, tq, right=True) - 1).clamp(0, K - 2)
    h = times[seg + 1] - times[seg]
    u = ((tq - times[seg]) / h)[:, None]
    h00, h10, h01, h11 = 2 * u**3 - 3 * u**2 + 1, u**3 - 2 * u**2 + u, -2 * u**3 + 3 * u**2, u**3 - u**2
    out[:, :3, 3] = h00 * p[seg] + h10 * h[:, None] * m[seg] + h01 * p[seg + 1] + h11 * h[:, None] * m[seg + 1]
    u = u[:, 0]
    outer = quaternion_slerp(q[seg], q[seg + 1], u)
    inner = quaternion_slerp(a[seg], a[seg + 1], u)
    out[:, :3, :3] = quaternion_to_matrix(quaternion_slerp(outer, inner, 2 * u * (1 - u)))
    return out


@dataclass
class Keyframe:
    """A camera-path keyframe: an OpenCV world-to-camera pose (4, 4) and its time in seconds."""

    id: int
    w2c: Tensor
    time: float


def _read_settings(request: GenerationRequest, kind: str) -> tuple:
    """The settings whose change means reading the input again: the working size, and for a
    video the frames read."""
    size = (request.resolution, request.resize_mode)
    return (*size, request.num_video_frames) if kind in ("sample", "vipe") else size


def _safe_name(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "upload"
    return stem[-100:]


# --------------------------------------------------------------------------------------------
# The state
# --------------------------------------------------------------------------------------------


class GuiState:
    """Everything the page edits, as data, with the actions the page triggers.

    Args:
        work_dir: the app's folder; uploads, camera paths and outputs are written only here.
        request: initial settings; its ``video_save_folder`` is replaced by ``work_dir/outputs``.
    """

    def __init__(self, work_dir: str | Path, request: GenerationRequest | None = None) -> None:
        request = request or GenerationRequest()
        check_request(request)  # the page's controls start from these values (frame count included)
        self.work_dir = ensure_writable_dir(work_dir, "GUI work folder").resolve()
        self.request = dataclasses.replace(request, video_save_folder=str(self.work_dir / "outputs"))
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
        self._next_id = 0
        self._plan = None
        self._plan_key: tuple | None = None

    # -- input ----------------------------------------------------------------------------

    def load_files(self, image_path: str, depth_path: str = "", fov: float | None = None, intrinsics: str | None = None, **depth_options: Any) -> SourceView:
        """Load an image as ``gen3c generate`` does (same checks, same errors): with its depth
        file, or alone, its depth then coming from ``request.depth_estimator`` (the geometric
        prior stands in when that cannot load, with the CLI's note in :attr:`notes`)."""
        if not image_path:
            raise Gen3cInputError("no input image: upload one or give its path")
        # The kind of the path alone: the page always sends a FOV, which a video input refuses.
        if input_kind(self._with_input(input_image_path=image_path)) != "image":
            raise Gen3cInputError(f"{image_path!r} is a folder or .pt file, not an image: load it as a video input below")
        request = self._with_input(input_image_path=image_path, depth_path=depth_path or None, fov=fov,
                                   intrinsics=intrinsics or None, **depth_options)  # fmt: skip
        return self._load(request, "image", Path(image_path).name)

    def load_video(self, path: str, start: int = 0) -> SourceView:
        """Load a video or multi-view input as ``gen3c generate`` does: a GEN3C sample directory
        or ``.pt``, a ViPE result (its folder or the mp4 under its ``rgb/``) or a multi-view
        ``.npz``; ``start`` is the first frame of a video."""
        from gen3c.io.vipe import is_vipe

        text = str(path).strip()
        if not text:
            raise Gen3cInputError("no video input: give the path of a sample directory, a ViPE result or a multi-view .npz")
        if text.lower().endswith(".npz"):
            fields = {"multiview_npz": text}
        elif is_vipe(text):
            fields = {"vipe_path": text}
        else:
            fields = {"input_image_path": text}
        request = self._with_input(**fields, vipe_starting_frame_idx=int(start))
        kind = input_kind(request)
        if kind == "image":
            raise Gen3cInputError(f"{text!r} is not a video input (a sample directory, a ViPE result or a multi-view .npz): load images above")
        return self._load(request, kind, Path(text.rstrip("/")).name)

    def load_sample(self, image: Tensor, depth: Tensor, K: Tensor, label: str = "demo sample") -> SourceView:
        """Use an in-memory image (3, H, W) in [−1, 1], depth (H, W) and intrinsics (3, 3)."""
        self._sample = (image, depth, K)
        self.request = self._with_input()
        self.kind, self.input, self.notes = "image", self._prepare_sample(), []
        self.source, self.source_label = self.input, label
        self._plan = None
        return self.source

    def _with_input(self, **fields: Any) -> GenerationRequest:
        """The request with one input (``fields``), every other input setting cleared."""
        cleared = {"input_image_path": None, "vipe_path": None, "vipe_clip": None, "vipe_starting_frame_idx": 0,
                   "multiview_npz": None, "depth_path": None, "fov": None, "intrinsics": None}  # fmt: skip
        return dataclasses.replace(self.request, **{**cleared, **fields})

    def _load(self, request: GenerationRequest, kind: str, label: str) -> SourceView:
        data, notes = self._read(request, kind)
        self.request, self.kind, self.input, self.notes, self._sample = request, kind, data, notes, None
        self.source, self.source_label = first_view(kind, data), label
        self._plan = None
        if kind == "multiview" and len(data.trajectory) < request.num_video_frames:
            self.update(num_video_frames=len(data.trajectory))  # the npz's trajectory is the path
        return self.source

    @staticmethod
    def _read(request: GenerationRequest, kind: str) -> tuple[SceneInput, list[str]]:
        """:func:`read_input`, with the notes the library gives (the CLI prints them as "note:");
        only this thread's, so a generation running meanwhile keeps its own."""
        with collect_notes() as notes:
            data = read_input(request, kind)
        return data, notes

    def _prepare_sample(self) -> SourceView:
        from gen3c.io.images import parse_resolution

        image, depth, K = self._sample
        return prepare_source(image, depth, K, parse_resolution(self.request.resolution), self.request.resize_mode, depth_kind="metric")

    def save_upload(self, name: str, content: bytes, kind: str = "file") -> Path:
        """Store an uploaded file in ``work_dir/uploads`` and return its path; the loaders then
        check it like any CLI input."""
        if len(content) == 0:
            raise Gen3cInputError(f"uploaded {kind} {name!r} is empty (0 bytes): choose another file")
        if len(content) > MAX_UPLOAD_BYTES:
            raise Gen3cInputError(
                f"uploaded {kind} {name!r} is {len(content) / 2**20:.0f} MiB, above the {MAX_UPLOAD_BYTES >> 20} MiB upload limit: pass a path on the server instead"
            )
        folder = ensure_writable_dir(self.work_dir / "uploads")
        path = folder / _safe_name(name)
        write_bytes_atomic(path, content)
        return path

    def require_source(self) -> SourceView:
        if self.source is None:
            raise Gen3cInputError("no input loaded: load the demo sample, an image, or a video input first")
        return self.source

    @property
    def run_source(self) -> SourceView | None:
        """What :func:`run_request` gets as ``source``: the prepared image (a run then reads no
        file again), or None for video inputs, which a run reads from the request's paths."""
        return self.source if self.kind == "image" else None

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
        resolution changes and drops the cache when its settings change."""
        request = GenerationRequest.from_dict({**self.request.to_dict(), **settings}, "GUI settings")
        if "num_video_frames" in settings and not 1 <= int(request.num_video_frames) <= MAX_FRAMES:
            raise Gen3cInputError(f"num_video_frames {request.num_video_frames} must be between 1 and {MAX_FRAMES}")
        if "fps" in settings and not MIN_FPS <= float(request.fps) <= MAX_FPS:
            raise Gen3cInputError(f"fps {request.fps} must be in [{MIN_FPS:g}, {MAX_FPS:g}]")
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
        if self.auto_time and (old.num_video_frames, old.fps) != (request.num_video_frames, request.fps):
            self._retime()

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
        validate_poses(torch.as_tensor(w2c, dtype=torch.float64), "keyframe pose")
        if time is None:
            time = self.keyframes[-1].time + 1.0 if self.keyframes else 0.0
        kf = Keyframe(self._next_id, torch.as_tensor(w2c, dtype=torch.float64).clone(), float(time))
        self._next_id += 1
        self.keyframes.append(kf)
        if self.auto_time:
            self._retime()
        else:
            self._sort()
        return kf

    def move_keyframe(self, keyframe_id: int, w2c: Tensor) -> None:
        """Give a keyframe a new pose (e.g. dragged with its gizmo)."""
        validate_poses(torch.as_tensor(w2c, dtype=torch.float64), "keyframe pose")
        self.keyframes[self.keyframe_index(keyframe_id)].w2c = torch.as_tensor(w2c, dtype=torch.float64).clone()

    def delete_keyframe(self, keyframe_id: int) -> None:
        del self.keyframes[self.keyframe_index(keyframe_id)]
        if self.auto_time:
            self._retime()

    def reorder_keyframe(self, keyframe_id: int, new_index: int) -> None:
        """Move a keyframe to position ``new_index`` of the path. Times stay with the positions
        (the path still visits its times in order); only the order of the poses changes."""
        i = self.keyframe_index(keyframe_id)
        new_index = max(0, min(len(self.keyframes) - 1, new_index))
        times = [kf.time for kf in self.keyframes]
        self.keyframes.insert(new_index, self.keyframes.pop(i))
        for kf, t in zip(self.keyframes, times, strict=True):
            kf.time = t

    def set_keyframe_time(self, keyframe_id: int, time: float) -> None:
        """Set a keyframe's time (seconds); turns auto timing off. Keyframes stay sorted by time."""
        if not np.isfinite(time) or time < 0:
            raise Gen3cInputError(f"keyframe time {time} must be a number of seconds ≥ 0")
        others = [kf.time for kf in self.keyframes if kf.id != keyframe_id]
        if any(abs(t - time) < 1e-6 for t in others):
            raise Gen3cInputError(f"another keyframe is already at {time:g} s: give each keyframe its own time")
        self.keyframes[self.keyframe_index(keyframe_id)].time = float(time)
        self.auto_time = False
        self._sort()

    def set_auto_time(self, enabled: bool) -> None:
        self.auto_time = bool(enabled)
        if self.auto_time:
            self._retime()

    def set_smoothness(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise Gen3cInputError(f"smoothness {value} must be between 0 and 1")
        self.smoothness = float(value)

    def clear_keyframes(self) -> None:
        self.keyframes.clear()

    def _retime(self) -> None:
        """Spread the keyframes evenly from the first frame to the last."""
        n = len(self.keyframes)
        for k, kf in enumerate(self.keyframes):
            kf.time = self.duration * k / (n - 1) if n > 1 else 0.0

    def _sort(self) -> None:
        self.keyframes.sort(key=lambda kf: kf.time)

    def keyframe_path(self) -> Cameras:
        """The keyframes' spline sampled at every frame, with the source's intrinsics."""
        source = self.require_source()
        if not self.keyframes:
            raise Gen3cInputError("the keyframe path is empty: add keyframes (e.g. 'Add from current view') first")
        c2w = invert_pose(torch.stack([kf.w2c for kf in self.keyframes]))
        times = torch.tensor([kf.time for kf in self.keyframes], dtype=torch.float64)
        frame_times = torch.arange(self.request.num_video_frames, dtype=torch.float64) / self.request.fps
        w2c = invert_pose(interpolate_poses(c2w, times, frame_times, self.smoothness))
        H, W = source.size
        return Cameras(w2c.float(), source.K.float(), H, W)

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
        cams = self.cameras()
        if not 0 <= index < len(cams):
            raise Gen3cInputError(f"frame {index} is outside the path's {len(cams)} frames")
        camera = cams[index]
        cache, offset = self.plan().cache_for_chunk(0, index, camera, None, None, "")
        out = cache.render(camera, frame_offset=offset, depth=False)
        return out.colors[0, 0], out.masks[0, 0]

    def frame_panel(self, index: int, axis: int = 1) -> np.ndarray:
        """Warped colour and validity mask (white = seen by the cache) side by side (``axis`` 1:
        (H, 2W, 3)) or stacked (``axis`` 0: (2H, W, 3)), uint8."""
        from gen3c.io.images import to_uint8

        color, mask = self.render_frame(index)
        return np.concatenate([to_uint8(color), to_uint8(mask.expand(3, -1, -1) * 2 - 1)], axis=axis)

    # -- camera files ---------------------------------------------------------------------

    def camera_path_dict(self) -> dict:
        """The current path as a nerfstudio ``camera_path.json`` object, keyframes included.

        Keyframes carry nerfstudio's ``matrix`` (row-major OpenGL camera-to-world), ``fov``
        (vertical, degrees), ``aspect`` and ``override_transition_sec`` (seconds to the next
        keyframe), plus ``time`` (seconds), which gen3c reads back exactly.
        """
        cams = self.cameras()
        fps = self.request.fps
        keyframes = []
        if self.path_mode == "keyframes":
            fov = float(np.degrees(2 * np.arctan(0.5 * cams.height / float(cams.K[0, 1, 1]))))
            for k, kf in enumerate(self.keyframes):
                nxt = self.keyframes[k + 1].time - kf.time if k + 1 < len(self.keyframes) else None
                keyframes.append(
                    {
                        "matrix": opencv_to_opengl(kf.w2c).reshape(-1).tolist(),
                        "fov": fov,
                        "aspect": cams.width / cams.height,
                        "override_transition_enabled": nxt is not None,
                        "override_transition_sec": nxt,
                        "time": kf.time,
                    }
                )
        data = cameras_to_nerfstudio_path(cams, fps, keyframes)
        data["smoothness_value"] = self.smoothness
        data["default_transition_sec"] = self.duration / max(1, len(keyframes) - 1)
        data["gen3c"] = {"path_mode": self.path_mode, "auto_time": self.auto_time}
        return data

    def camera_path_json(self) -> bytes:
        return json.dumps(self.camera_path_dict(), indent=1).encode("utf-8")

    def import_camera_path(self, text: bytes | str, name: str = "camera file") -> None:
        """Load a nerfstudio ``camera_path.json`` (its keyframes become editable keyframes) or any
        camera file ``--camera_file`` reads (used as a fixed path)."""
        data = parse_camera_json(text.encode("utf-8") if isinstance(text, str) else text, name)
        cams = cameras_from_dict(data, name)
        fps = float(data.get("fps", self.request.fps)) if isinstance(data.get("fps"), int | float) else self.request.fps
        keyframes = data.get("keyframes") if isinstance(data, dict) else None
        parsed = self._parse_keyframes(keyframes, data, name) if keyframes else None
        self.update(num_video_frames=len(cams), fps=fps)
        self.imported = cams
        if parsed is None:
            self.path_mode = "file"
            return
        self.keyframes = []
        for w2c, t in parsed:
            self.keyframes.append(Keyframe(self._next_id, w2c, t))
            self._next_id += 1
        smooth = data.get("smoothness_value", self.smoothness)
        self.smoothness = min(1.0, max(0.0, float(smooth))) if isinstance(smooth, int | float) else self.smoothness
        self.auto_time = bool(data.get("gen3c", {}).get("auto_time", False)) if isinstance(data.get("gen3c"), dict) else False
        self.path_mode = "keyframes"

    def _parse_keyframes(self, keyframes: Any, data: dict, name: str) -> list[tuple[Tensor, float]]:
        if not isinstance(keyframes, list) or not all(isinstance(k, dict) for k in keyframes):
            raise Gen3cInputError(f"{name}: 'keyframes' must be a list of objects")
        out, t = [], 0.0
        default = data.get("default_transition_sec")
        for i, kf in enumerate(keyframes):
            try:
                matrix = torch.tensor(kf["matrix"], dtype=torch.float64).reshape(4, 4)
            except (KeyError, TypeError, ValueError, RuntimeError):
                raise Gen3cInputError(f"{name}: keyframes[{i}] needs 'matrix', 16 numbers (OpenGL camera-to-world, row-major)") from None
            validate_poses(matrix, f"{name} keyframes[{i}] matrix")
            if isinstance(kf.get("time"), int | float):
                t = float(kf["time"])
            elif i > 0:  # nerfstudio: the previous keyframe's transition, else the default
                prev = keyframes[i - 1]
                step = prev.get("override_transition_sec") if prev.get("override_transition_enabled") else default
                t += float(step) if isinstance(step, int | float) and step > 0 else 1.0
            out.append((opengl_to_opencv(matrix), t))
        times = [t for _, t in out]
        if any(b <= a for a, b in zip(times, times[1:], strict=False)):
            raise Gen3cInputError(f"{name}: keyframe times must be strictly increasing")
        return out

    # -- generation -----------------------------------------------------------------------

    def next_output_name(self) -> str:
        folder = Path(self.request.video_save_folder)
        taken = {p.name.split(".")[0] for p in folder.glob("gui_*")} if folder.is_dir() else set()
        k = 1
        while f"gui_{k:03d}" in taken:
            k += 1
        return f"gui_{k:03d}"

    def build_request(self, name: str | None = None) -> GenerationRequest:
        """The request for a run of the current settings and path. Custom paths are written to
        ``work_dir/paths`` as gen3c camera files and passed as ``camera_file``, so the run reads
        them exactly like ``gen3c generate --camera_file``."""
        self.require_source()
        name = name or self.next_output_name()
        request = dataclasses.replace(self.request, video_save_name=name, video_save_folder=str(self.work_dir / "outputs"))
        if self.path_mode == "preset":
            return dataclasses.replace(request, camera_file=None)
        path = ensure_writable_dir(self.work_dir / "paths") / f"{name}_path.json"
        save_cameras(path, self.cameras(), request.fps)
        return dataclasses.replace(request, camera_file=str(path))


# --------------------------------------------------------------------------------------------
# Jobs
# --------------------------------------------------------------------------------------------


@dataclass
class JobResult:
    """How a job ended: ``output`` on success, ``error`` (a message) on failure, or ``cancelled``."""

    output: RunOutput | None = None
    error: str | None = None
    cancelled: bool = False


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

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(
        self,
        request: GenerationRequest,
        source: SourceView,
        on_progress: Callable[[str, int, int], None],
        on_done: Callable[[JobResult], None],
        generator=None,
    ) -> None:
        """Start ``request`` on ``source``; ``on_progress(stage, done, total)`` and ``on_done``
        are called from the worker thread."""
        with self._lock:
            if self.running:
                raise Gen3cInputError("a generation is already running: wait for it to finish or cancel it")
            self._cancel.clear()
            cancel = self._cancel

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
                try:
                    result = JobResult(output=run_request(request, source=source, generator=generator, progress=factory))
                except GenerationCancelled:
                    result = JobResult(cancelled=True)
                except Gen3cInputError as exc:
                    result = JobResult(error=str(exc))
                except Exception as exc:  # a bug: report it in the page rather than lose it
                    result = JobResult(error=f"internal error: {type(exc).__name__}: {exc}")
                if result.output is None:  # the GUI has no --resume: drop a long run's kept chunks
                    shutil.rmtree(partial_dir(request.video_save_folder, request.video_save_name), ignore_errors=True)
                on_done(result)

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
