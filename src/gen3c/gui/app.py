"""The viser app: layout and callbacks over :class:`~gen3c.gui.state.GuiState`.

The world frame is the input's: for an image, its camera's (OpenCV: x right, y down, z forward;
the source pose is the identity), so the scene's up direction is −y; for a video or multi-view
input, the frame its cameras are given in (drawn as frusta). viser's frusta, transform controls
and client cameras use the same OpenCV camera convention with camera-to-world ``wxyz`` /
``position``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gc
import html
import io
import math
import numbers
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from gen3c.cameras import Cameras, invert_pose, matrix_to_quaternion, quaternion_to_matrix
from gen3c.constants import RESIZE_MODES, SCALED_DEPTH_SUFFIXES, SPLAT_MODES
from gen3c.dependencies import require
from gen3c.depth.names import DEFAULT_DEPTH_ESTIMATOR
from gen3c.errors import (
    Gen3cInputError,
    Gen3cMemoryError,
    collect_notes,
    counted,
    first_line,
    path_to_copy,
    quoted,
    quoted_path,
    record_notes,
)
from gen3c.gui.state import (
    MAX_UPLOAD_BYTES,
    GuiState,
    JobResult,
    JobRunner,
    Keyframe,
    page_run_note,
    unexpected_error,
)
from gen3c.io.resolution import parse_resolution
from gen3c.pipelines.camera_video import run_fraction
from gen3c.pipelines.request import (
    GenerationRequest,
    GeneratorPool,
    RunStage,
    check_frame_size,
    make_generator,
    out_of_memory_as_error,
)
from gen3c.trajectories import PRESETS, ROTATION_MODES, TRAJECTORY_SCALES

# The GUI is viser's: importing it without viser, or with a broken one, is one line (the CLI exits 2 with it).
viser = require("viser", "the gen3c GUI")

# Videos larger than this are not embedded in the page (the websocket caps messages at 50 MB).
MAX_EMBED_BYTES = 32 * 1024 * 1024
MAX_PATH_FRUSTA = 9
MAX_INPUT_FRUSTA = 24
#: Seconds :meth:`Gen3cApp.stop` waits for a generator still loading (a preview's is instant;
#: a model's, minutes, goes on in its thread, showing nothing).
LOADER_STOP_WAIT = 5.0
#: A keyframe's gizmo: its arrows' length, as a fraction of the scene scale.
GIZMO_SIZE = 0.15
#: A keyframe's gizmo is hidden from a viewer whose camera is within this many gizmo sizes of the
#: keyframe (from that viewer only): seen from there (right after "Add from current view", or
#: "View"), its rotation arcs run from the middle of the view to its edges, where an orbit drag
#: starts, and take the drag.
GIZMO_CLEARANCE = 2.0
#: The Resolution dropdown's sizes (with the start's); once the generator has loaded, each it refuses
#: gives way to the sizes its refusal offers (:meth:`Gen3cApp._fit_resolutions`).
RESOLUTIONS = ("704x1280", "528x960", "352x640", "176x320")
#: The sizes a frame size refusal offers, as :func:`~gen3c.io.resolution.fitting_sizes` words them
#: after its fix: "pass --resolution '64x112' or '80x128'".
OFFERED_SIZES = re.compile(r"\bpass --resolution ('\d+x\d+'(?: or '\d+x\d+')*)")
#: The cache render's panel while no path can be rendered.
BLANK_FRAME = np.full((90, 320, 3), 235, np.uint8)
PATH_COLOR = (232, 110, 20)
KEYFRAME_COLOR = (200, 30, 60)
SOURCE_COLOR = (40, 40, 40)
INPUT_COLOR = (150, 80, 200)
INPUT_KIND_LABELS = {"image": "image", "sample": "GEN3C sample", "vipe": "ViPE video", "multiview": "multi-view input"}
#: The input controls each Load button reads; they take effect when it is pressed.
LOAD_CONTROLS = {
    "Load image": ("image_path", "depth_path", "png_depth_scale", "depth_is_disparity", "depth_estimator", "set_fov", "fov", "intrinsics"),
    "Load video input": ("video_path", "start_frame"),
}
BEGIN = "Load the demo sample, an image, or a video input to begin."
PATH_MODE_LABELS = {"preset": "Preset", "keyframes": "Keyframes", "file": "Imported file"}
#: Request settings (the CLI's flag names), and the selected keyframe's time, → the control that sets
#: them (a Gen3cApp attribute): the library's checks name the flag, the page names the control
#: (:meth:`Gen3cApp._page_words`).
SETTING_CONTROLS = {
    "input_image_path": "image_path", "depth_path": "depth_path", "png_depth_scale": "png_depth_scale", "depth_is_disparity": "depth_is_disparity",
    "depth_estimator": "depth_estimator", "fov": "fov", "mask_invalid_depth": "mask_invalid",
    "intrinsics": "intrinsics", "vipe_path": "video_path", "multiview_npz": "video_path", "vipe_starting_frame_idx": "start_frame",
    "resolution": "resolution", "resize_mode": "resize_mode", "filter_points_threshold": "filter_threshold",
    "foreground_masking": "foreground", "splat": "splat", "num_video_frames": "num_frames", "fps": "fps",
    "trajectory": "trajectory", "camera_rotation": "rotation", "movement_distance": "distance", "trajectory_scale": "scale",
    "seed": "seed", "prompt": "prompt", "noise_aug_strength": "noise_aug", "save_buffer": "save_buffer", "keyframe_time": "keyframe_time",
    "smoothness": "smoothness",
}  # fmt: skip


#: The number settings the page's controls set (by CLI name) → whether they are whole numbers.
NUMBER_SETTINGS = {"num_video_frames": True, "seed": True, "fps": False, "filter_points_threshold": False, "movement_distance": False}


def _keyframe_id(label) -> int:
    """The keyframe id of a "Keyframe" dropdown choice (``#3 at 0.50 s``); one no list offers
    (another client's text) is one line, not a ValueError from int()."""
    match = re.fullmatch(r"#(\d+) at .*", label) if isinstance(label, str) else None
    if match is None:
        raise Gen3cInputError(f'"Keyframe" {quoted(str(label))} is no keyframe of the list: pick one')
    return int(match[1])


def _control_number(value, key: str, whole: bool = False) -> int | float:
    """A number control's value for setting ``key`` (a CLI name, which the page words as its
    control). viser's page sends nothing for an emptied number field and casts what it receives to
    the control's type, so None or NaN should not come; one that does (another client, an older
    viser) is one line naming the control, not a TypeError. A NaN for a real number is left to the
    library's checks, which name it."""
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Gen3cInputError(f"--{key} is empty: enter a number")
    if not whole:
        return float(value)
    if not (math.isfinite(value) and value == int(value)):
        raise Gen3cInputError(f"--{key} {value} is not a whole number: enter one")
    return int(value)


def offered_sizes(refusal: str) -> list[str]:
    """The sizes a frame size ``refusal`` offers (:data:`OFFERED_SIZES`), in its order; none
    where it offers none."""
    match = OFFERED_SIZES.search(refusal)
    return re.findall(r"'([^']*)'", match[1]) if match else []


def _is_png(depth_path: str) -> bool:
    """Whether a Depth path names a 16-bit PNG or TIFF, the depth files PNG depth scale applies to (as
    :func:`~gen3c.pipelines.settings.check_unused_settings` tells it)."""
    return str(depth_path).strip().lower().endswith(SCALED_DEPTH_SUFFIXES)


def _pose_to_wxyz_position(w2c: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    c2w = invert_pose(w2c.to(torch.float64))
    return matrix_to_quaternion(c2w[:3, :3]).numpy(), c2w[:3, 3].numpy()


def _gizmo_pose(keyframe_id: int, wxyz, position) -> torch.Tensor:
    """The w2c of keyframe ``keyframe_id``'s gizmo as a client sent it (rotation ``wxyz``,
    ``position``); one that is no pose, as another client than the page may send (NaN, infinite,
    a zero rotation, not 4 and 3 numbers), is one line naming the keyframe (the library's
    "quaternion_to_matrix q has …" named none)."""
    try:
        q = np.asarray(wxyz, dtype=np.float64).reshape(4)
        t = np.asarray(position, dtype=np.float64).reshape(3)
    except (TypeError, ValueError):
        raise Gen3cInputError(f"keyframe #{keyframe_id}'s gizmo sent no pose (a rotation w, x, y, z and a position x, y, z): drag it again") from None
    if not (np.isfinite(q).all() and np.isfinite(t).all()) or float(np.linalg.norm(q)) < 1e-12:
        shown = f"rotation ({', '.join(f'{v:g}' for v in q)}) and position ({', '.join(f'{v:g}' for v in t)})"
        raise Gen3cInputError(f"keyframe #{keyframe_id}'s gizmo sent {shown}, no pose (a NaN, an infinite number or a zero rotation): drag it again")
    return _wxyz_position_to_w2c(q, t)


def _wxyz_position_to_w2c(wxyz, position) -> torch.Tensor:
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = quaternion_to_matrix(torch.as_tensor(np.asarray(wxyz), dtype=torch.float64))
    c2w[:3, 3] = torch.as_tensor(np.asarray(position), dtype=torch.float64)
    return invert_pose(c2w)


def check_listen_address(host: str, port: int) -> None:
    """Refuse a port outside 0–65535 or a host this machine cannot listen on, which viser would
    retry port after port and then wait on for ever, silently."""
    if not 0 <= port <= 65535:
        raise Gen3cInputError(f"--port {port} is impossible: pass a port between 0 and 65535 (0: any free one)")
    if host == "":
        return
    fix = "pass 127.0.0.1 (this machine only) or 0.0.0.0 (every network interface)"
    try:
        family, _, _, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind(address)
    except (OSError, UnicodeError) as exc:  # an unknown name, an address of another machine
        reason = getattr(exc, "strerror", None) or first_line(exc)
        raise Gen3cInputError(f"--host {quoted(host, 100)} cannot be listened on here ({reason}): {fix}") from None


class Gen3cApp:
    """The GUI server. ``Gen3cApp(work_dir).serve_forever()`` runs it; tests start it on a free
    port (``port=0``) and call :meth:`stop`.

    Args:
        work_dir: the only folder the app writes to (uploads, camera paths, outputs).
        host, port: where to listen (localhost by default; port 0 picks a free one).
        request: initial settings (generator, resolution, frames, …).
        demo: "auto": the packaged demo sample, loaded from its files as ``gen3c demo`` runs it
            (:meth:`GuiState.load_demo`, so a run's ``NAME_run.json`` names them); or a loader of
            an in-memory sample ``() -> (image, depth, K)`` (a run's record then names no input);
            None hides the button.
        generator: a generator to run (e.g. a model already loaded); by default the request's
            generator is made once and kept (loaded in the background at start with ``preload``).
            Seed, prompt and buffer noise are set on it before each run, so changing them reloads nothing
            (but a generator the app loaded under ``--max_gpu_memory`` loads again for a Resolution, or
            a prompt needing T5, its memory plan was not chosen for: :meth:`_misfit`).
        fps_given: whether the request's fps is the user's, kept when a video is loaded
            (:class:`GuiState`; None: when it differs from the default).
    """

    def __init__(
        self,
        work_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = 8080,
        request: GenerationRequest | None = None,
        demo: Callable | None | str = "auto",
        generator=None,
        preload: bool = True,
        max_display_points: int = 150_000,
        verbose: bool = False,
        fps_given: bool | None = None,
    ) -> None:
        check_listen_address(host, port)
        self.state = GuiState(work_dir, request, fps_given)
        self.jobs = JobRunner()
        self.demo = demo
        self.max_display_points = max_display_points
        self._lock = threading.RLock()
        self._sync = threading.local()  # set while controls are updated from the state
        self._generator = generator
        # GeneratorPool.key of the request the loaded generator was loaded for (None: given to the app,
        # run as it is), that request's resolution and prompt, and the LoRA digests the keys read.
        self._generator_key: str | None = None
        self._generator_made_for: tuple = ()
        # What the last load noted (the memory mode --max_gpu_memory chose, …), shown with the next run's end.
        self._load_notes: list[str] = []
        self._run_load_notes: list[str] = []
        self._digests: dict[str, str] = {}
        self._last_output: dict[str, Path] | None = None
        self._run_path: tuple[str | None, str] = (None, "preset")  # the last run's path file and path mode
        self._run_input = ""  # the last run's input (its file name), which the page may have replaced since
        # Keyframes are drawn in each viewer's own scene (viser's client.scene), so that a gizmo
        # hidden for one viewer (its camera at the keyframe) stays for the others: per client id,
        # keyframe id → its root node, and the keyframes drawn without their gizmo.
        self._keyframe_nodes: dict[int, dict[int, object]] = {}
        self._gizmos_hidden: dict[int, frozenset[int]] = {}
        # What the drawn keyframes are: their centres and the hiding distance (replaced whole, read
        # by camera callbacks without the lock).
        self._keyframe_centres: tuple[float, dict[int, np.ndarray]] = (0.0, {})
        self._path_nodes: list = []
        self._input_nodes: list = []
        self._verbose = verbose
        with self._viser_output():  # viser prints a banner
            self.server = viser.ViserServer(host=host, port=port, label="gen3c", verbose=verbose)
        # No public share tunnels: the share button is hidden and a client's request is ignored.
        self.server.request_share_url = lambda *args, **kwargs: None
        self.server.gui.configure_theme(control_width="large", show_share_button=False, brand_color=(232, 110, 20))
        self.server.scene.set_up_direction("-y")
        self._loader: threading.Thread | None = None
        self._loading = False  # while the loader loads (until it has shown how it went)
        self._start_pending = False  # while a Generate press waits for the loader (Cancel clears it)
        self._path_notes: list[str] = []  # the notes the drawn camera path gave
        self._path_notes_status: str | None = None  # the status that says them
        self._stopped = False  # set by stop(): the loader and a run's end touch the page no more
        with self._lock:  # a client may connect, and press, once the controls exist
            self._build_gui()
            if self._generator is None and preload:
                self._start_loader()
            self._fit_resolutions()  # a generator given

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = self.server.get_host()
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
        return f"http://{host}:{self.server.get_port()}"  # an IPv6 address in brackets (RFC 3986)

    def serve_forever(self) -> None:
        try:
            while True:
                time.sleep(3600)
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop the server. A run is cancelled and waited for; a model still loading after
        :data:`LOADER_STOP_WAIT` seconds (a load cannot be cut short) ends in its own time, and
        neither touches the page once stop has begun, nor does a press (it starts nothing)."""
        with self._lock:  # a page update under way ends first
            self._stopped = True
        self.jobs.cancel()
        self.jobs.wait(30)
        if self._loader is not None:
            self._loader.join(LOADER_STOP_WAIT)
        # viser's server thread prints "(viser) Server stopped" as it ends, whatever its verbose; its
        # stop() waits up to 6 s for that thread, so the line comes inside the block (before, it was
        # printed after gen3c's own lines, or on a busy machine amid what the program printed next).
        with self._viser_output():
            self.server.stop()

    def _viser_output(self) -> contextlib.AbstractContextManager:
        """viser's console lines (its banner, its "Server stopped") kept off stdout unless ``verbose``."""
        return contextlib.nullcontext() if self._verbose else contextlib.redirect_stdout(io.StringIO())

    # -- layout ---------------------------------------------------------------------------

    def _build_gui(self) -> None:
        gui = self.server.gui
        r = self.state.request
        self.status = gui.add_markdown(BEGIN)
        self._settled, self._problem_shown, self._problems = BEGIN, None, 0
        tabs = gui.add_tab_group()

        with tabs.add_tab("Input", viser.Icon.PHOTO):
            self.demo_button = gui.add_button("Load demo sample", icon=viser.Icon.CUBE, visible=self.demo is not None)
            with gui.add_folder("Image"):
                self.upload_image = gui.add_upload_button("Upload image", icon=viser.Icon.UPLOAD, mime_type="image/*")
                self.image_path = gui.add_text("Image path", "", hint="A path on the server, or upload a file above.")
                self.upload_depth = gui.add_upload_button("Upload depth (optional)", icon=viser.Icon.UPLOAD)
                self.depth_path = gui.add_text("Depth path", "", hint="z-depth: .npy, .npz (key 'depth'), 16-bit PNG, 32-bit float TIFF or .exr; empty: estimated")
                # Shown while the depth path names a PNG: the only depth file it scales. viser takes as many
                # typed decimals as min or step has: min 1e-7 lets in 7 (KITTI's 1/256 to within 1e-7), step's 4 alone not.
                self.png_depth_scale = gui.add_number(
                    "PNG depth scale", r.png_depth_scale, min=1e-7, step=0.0001, visible=False,
                    hint="Depth = 16-bit PNG or TIFF value × this (0.001: millimetres → metres)",
                )  # fmt: skip
                self.depth_is_disparity = gui.add_checkbox(
                    "Depth is disparity", False,
                    hint="The depth file holds disparity (larger = nearer), as MiDaS, DPT and Depth Anything save it: read as relative depth, 1 / disparity",
                )  # fmt: skip
                self.depth_estimator = gui.add_text(
                    "Depth estimator", r.depth_estimator or "",
                    hint="Without a depth file: moge (GEN3C's), a transformers depth model, a path, or prior; empty: moge, the prior standing in where its weights cannot load",
                )
                # Off: no FOV is passed, as `gen3c generate` without --fov (GEN3C's MoGe camera for an image alone).
                self.set_fov = gui.add_checkbox(
                    "Set FOV", True, hint="Off: the camera recorded with a `gen3c depth` file, else the depth estimator's, as gen3c generate without --fov"
                )
                self.fov = gui.add_number("Horizontal FOV (°)", 60.0, min=1.0, max=179.0, step=0.5)
                self.intrinsics = gui.add_text("Intrinsics", "", hint="fx,fy,cx,cy in pixels of the image; overrides the FOV")
                self.load_button = gui.add_button("Load image", icon=viser.Icon.FOLDER_OPEN)
                self.image_pending = gui.add_markdown("", visible=False)
                gui.add_markdown(
                    "<small>Without a depth file the depth is estimated, as by <code>gen3c generate</code>; when the "
                    "default estimator (moge) cannot load, a geometric prior (ground plane + wall) stands in and a note says so. "
                    f"Uploads up to {MAX_UPLOAD_BYTES >> 20} MiB.</small>"
                )
            with gui.add_folder("Video or multi-view"):
                self.upload_video = gui.add_upload_button("Upload multi-view .npz", icon=viser.Icon.UPLOAD, mime_type=".npz")
                self.video_path = gui.add_text(
                    "Input path", "", hint="GEN3C sample directory (rgb.mp4, depth.npz, mask.npz, camera.npz) or .pt, ViPE result, multi-view .npz"
                )
                self.start_frame = gui.add_number("Start frame", 0, min=0, step=1, hint="First frame of a video input")
                self.load_video_button = gui.add_button("Load video input", icon=viser.Icon.VIDEO)
                self.video_pending = gui.add_markdown("", visible=False)
                gui.add_markdown(
                    "<small>Depth and cameras come with the input; its cameras are drawn in purple. A video renders "
                    "frame by frame from a 4D cache; a multi-view input renders its own trajectory (or your path).</small>"
                )
            with gui.add_folder("3D cache", expand_by_default=False):
                self._resolutions = tuple(dict.fromkeys((r.resolution, *RESOLUTIONS)))
                self.resolution = gui.add_dropdown("Resolution", self._resolutions, initial_value=r.resolution, hint="Working resolution HxW; GEN3C: 704x1280")
                self.resize_mode = gui.add_dropdown("Resize", RESIZE_MODES, initial_value=r.resize_mode)
                self.filter_threshold = gui.add_number("Edge filter", r.filter_points_threshold, min=0.0, max=max(1.0, r.filter_points_threshold), step=0.01)
                self.foreground = gui.add_checkbox("Foreground masking", r.foreground_masking)
                # Enabled once an input whose depth comes with it is loaded (_sync_controls): an estimate has no invalid pixels.
                self.mask_invalid = gui.add_checkbox(
                    "Mask invalid depth", r.mask_invalid_depth, disabled=True,
                    hint="Leave out the depth pixels the input marks invalid (NaN/inf, an estimate's untrusted sky) instead of placing them far "
                    "away; for depth given with the input (a depth file, a video or multi-view input)",
                )  # fmt: skip
                self.splat = gui.add_dropdown("Splatting", SPLAT_MODES, initial_value=r.splat)
                self.point_size = gui.add_slider("Point size", 0.1, 4.0, step=0.1, initial_value=1.0)

        with tabs.add_tab("Camera path", viser.Icon.ROUTE):
            self.path_mode = gui.add_dropdown("Path", tuple(PATH_MODE_LABELS.values()), initial_value="Preset")
            self.num_frames = gui.add_number("Frames", r.num_video_frames, min=1, max=100_000, step=1)
            self.fps = gui.add_number("FPS", r.fps, min=1.0, max=240.0, step=1.0)
            with gui.add_folder("Preset") as self.preset_folder:
                self.trajectory = gui.add_dropdown("Trajectory", PRESETS, initial_value=r.trajectory)
                self.rotation = gui.add_dropdown("Rotation", ROTATION_MODES, initial_value=r.camera_rotation)
                self.distance = gui.add_slider("Distance", 0.0, 2.0, step=0.01, initial_value=r.movement_distance)
                self.scale = gui.add_dropdown("Distance unit", TRAJECTORY_SCALES, initial_value=r.trajectory_scale)
            with gui.add_folder("Keyframes"):
                self.add_keyframe = gui.add_button("Add from current view", icon=viser.Icon.PLUS)
                self.add_source_keyframe = gui.add_button(
                    "Add input camera", icon=viser.Icon.CAMERA_PLUS,
                    hint="A keyframe at the input's camera, first on the path: the video's first frame is the input's view, so a path starting elsewhere jumps after it",
                )  # fmt: skip
                self.keyframe_list = gui.add_markdown("<small>No keyframes.</small>")
                self.keyframe_pick = gui.add_dropdown("Keyframe", ("—",))
                self.keyframe_time = gui.add_number("Time (s)", 0.0, min=0.0, step=0.05, disabled=True)  # until a keyframe is added
                self.keyframe_actions = gui.add_button_group("Selected", ("Earlier", "Later", "View", "Delete"))
                self.auto_time = gui.add_checkbox("Even timing", True, hint="Spread keyframes evenly over the video")
                self.smoothness = gui.add_slider("Smoothness", 0.0, 1.0, step=0.05, initial_value=self.state.smoothness)
                self.show_gizmos = gui.add_checkbox(
                    "Gizmos", True, hint="Drag keyframes in the 3D view; a keyframe's gizmo shows once the view is away from it"
                )
            with gui.add_folder("Camera file"):
                self.import_path = gui.add_upload_button("Import camera_path.json", icon=viser.Icon.FILE_UPLOAD, mime_type=".json,application/json")
                self.export_path = gui.add_button("Download camera_path.json", icon=viser.Icon.DOWNLOAD)

        with tabs.add_tab("Generate", viser.Icon.MOVIE):
            gui.add_markdown(f"Generator: **{html.escape(r.generator)}**")
            # Hidden where no run reads it (the preview; --disable_prompt_encoder's zero embeddings for every text).
            self.prompt = gui.add_text("Prompt", str(r.generator_options.get("prompt") or ""), visible=self.state.takes_prompt, hint="GEN3C's scripts use none")
            # The preview draws no random numbers: a seed there would change nothing.
            self.seed = gui.add_number("Seed", r.seed, step=1, visible=r.generator == "gen3c")
            # The gen3c generator's only; enabled where a run takes it, a single image (_sync_controls).
            self.noise_aug = gui.add_number(
                "Buffer noise", self.state.noise_aug_strength, min=0.0, step=0.01, visible=r.generator == "gen3c",
                hint="GEN3C's --noise_aug_strength: noise on the newer cache render's colour from chunk 2 on (0: none); a single image only",
            )  # fmt: skip
            self.save_buffer = gui.add_checkbox("Show cache renders", r.save_buffer, hint="GEN3C's --save_buffer layout")
            self.generate = gui.add_button("Generate", icon=viser.Icon.PLAYER_PLAY, color="green")
            self.cancel = gui.add_button("Cancel", icon=viser.Icon.PLAYER_STOP, color="red", disabled=True)
            self.progress = gui.add_progress_bar(0.0, color="orange")
            self.progress_text = gui.add_markdown("")

        preview = gui.add_panel()
        with preview.add_tab("Cache render", viser.Icon.EYE):
            self.frame = gui.add_slider("Frame", 0, max(1, r.num_video_frames - 1), step=1, initial_value=0)
            self.frame_image = gui.add_image(BLANK_FRAME, label="cache render (chequered: not seen by the cache)")
            self.frame_note = gui.add_markdown("", visible=False)  # what the render noted (e.g. no point lands in the frame)
        result = gui.add_panel()
        with result.add_tab("Result", viser.Icon.MOVIE):
            self.video = gui.add_html("<p style='color:#868e96;font-size:0.85em'>No video yet: press Generate.</p>")
            self.download_video = gui.add_button("Download mp4", icon=viser.Icon.DOWNLOAD, disabled=True)
        gui.main_panel.dock_right()
        gui.main_panel.set_width(380)
        preview.dock_left()
        preview.set_width(380)
        result.dock_below(preview)
        self._connect()

    def _connect(self) -> None:
        on = self._callback
        self.demo_button.on_click(on(self._on_demo))
        self.upload_image.on_upload(on(functools.partial(self._on_upload, self.image_path, "image")))
        self.upload_depth.on_upload(on(functools.partial(self._on_upload, self.depth_path, "depth file")))
        self.load_button.on_click(on(self._on_load_files))
        self.upload_video.on_upload(on(functools.partial(self._on_upload, self.video_path, "multi-view npz")))
        self.load_video_button.on_click(on(self._on_load_video))
        self._loaded_with = {button: self._load_controls(button) for button in LOAD_CONTROLS}
        for name in (name for names in LOAD_CONTROLS.values() for name in names):
            getattr(self, name).on_update(on(lambda _: self._show_pending_loads()))
        for handle, key in (
            (self.resolution, "resolution"), (self.resize_mode, "resize_mode"), (self.filter_threshold, "filter_points_threshold"),
            (self.foreground, "foreground_masking"), (self.splat, "splat"), (self.mask_invalid, "mask_invalid_depth"),
        ):  # fmt: skip
            handle.on_update(on(functools.partial(self._on_setting, key, redraw_cache=True)))
        for handle, key in (
            (self.num_frames, "num_video_frames"), (self.fps, "fps"), (self.trajectory, "trajectory"),
            (self.rotation, "camera_rotation"), (self.distance, "movement_distance"), (self.scale, "trajectory_scale"),
        ):  # fmt: skip
            handle.on_update(on(functools.partial(self._on_setting, key, redraw_cache=False)))
        self.seed.on_update(on(functools.partial(self._on_setting, "seed", redraw_cache=None)))
        self.prompt.on_update(on(self._on_prompt))
        self.noise_aug.on_update(on(self._on_noise_aug))
        self.save_buffer.on_update(on(functools.partial(self._on_setting, "save_buffer", redraw_cache=None)))
        self.point_size.on_update(on(lambda _: self._draw_cache()))
        self.path_mode.on_update(on(self._on_path_mode))
        self.add_keyframe.on_click(on(self._on_add_keyframe))
        self.add_source_keyframe.on_click(on(self._on_add_source_keyframe))
        self.keyframe_pick.on_update(on(lambda _: self._sync_keyframe_fields()))
        self.keyframe_time.on_update(on(self._on_keyframe_time))
        self.keyframe_actions.on_click(on(self._on_keyframe_action))
        self.auto_time.on_update(on(self._on_auto_time))
        self.smoothness.on_update(on(self._on_smoothness))
        self.show_gizmos.on_update(on(lambda _: self._draw_keyframes()))
        self.import_path.on_upload(on(self._on_import))
        self.export_path.on_click(on(self._on_export))
        self.frame.on_update(on(lambda _: self._draw_frame()))
        self.generate.on_click(on(self._on_generate))
        self.cancel.on_click(on(self._on_cancel))
        self.download_video.on_click(on(self._on_download_video))
        self.server.on_client_connect(self._on_connect)
        self.server.on_client_disconnect(self._on_disconnect)

    def _callback(self, func: Callable) -> Callable:
        """Run a GUI callback under the state lock; show user errors in the page."""

        @functools.wraps(func)
        def wrapper(event) -> None:
            if getattr(self._sync, "on", False):
                return
            with self._lock:
                if self._stopped:  # a press arriving while stop() waits: a run started now would outlive the server
                    return
                problems = self._problems
                try:
                    func(event)
                    if self._problem_shown == "error" and self._problems == problems:  # it went well: the error is past
                        self._info(self._settled)
                except Gen3cInputError as exc:
                    self._error(str(exc), getattr(event, "client", None))
                except Exception as exc:  # a bug: say so in the page, keep the traceback in the log
                    self._error(unexpected_error(exc, log=False), getattr(event, "client", None))
                    raise  # (viser prints its traceback)

        return wrapper

    def _info(self, text: str, transient: bool = False, problem: str | None = None) -> None:
        """Show ``text`` as the page's status. A ``problem`` ("error": an action failed; "path": the
        camera path cannot be made) stays until the next action goes well, or the path can be
        made again; then the last settled (neither transient nor problem) status shows again."""
        self.status.content = text
        self._problem_shown = problem
        if problem:
            self._problems += 1
        elif not transient:
            self._settled = text

    def _page_words(self, text: str) -> str:
        """``text`` (a library message) with the settings it names by CLI flag (``--movement_distance``)
        or by field (``movement_distance 1e40``) named by the page's control ("Distance")."""
        labels = {key: f'"{getattr(self, attr).label}"' for key, attr in SETTING_CONTROLS.items()}
        text = text.replace("pass a smaller --resolution", "pick a smaller --resolution")  # (a dropdown: picked, as elsewhere on the page)
        # The page hands a run its path as a file it writes, of Frames cameras (build_request): a fix
        # by a --camera_file is a Frames count, or a path of the page's own instead of a multi-view input's.
        # An imported path keeps its file's count (another Frames is refused), so there it is another file.
        if self.state.path_mode == "file":
            text = re.sub(r"\bpass (?:a --camera_file of (\d+) cameras|--num_video_frames (\d+)) to stay within it\b",
                          lambda m: f"import a camera file of {m[1] or m[2]} cameras to stay within it", text)
        text = re.sub(r"\ba --camera_file of (\d+) cameras\b", r"--num_video_frames \1", text)
        text = re.sub(r"\ba --camera_file with (\d+) cameras\b", r"a keyframe path or an imported camera file of \1 frames", text)
        # A camera file's rate is the page's FPS once imported, so FPS cannot stand in for a faulty one.
        text = re.sub(r",? or pass --fps\b", "", text)
        text = re.sub(r"(?<![\w-])--([a-z]\w*)", lambda m: labels.get(m[1], m[0]), text)
        # A field name alone, where it has an underscore (a plain word such as "fps" may be just a word).
        return re.sub(r"(?<![\w/.'\"-])([a-z]+_\w+)\b(?![/.'\"])", lambda m: labels.get(m[1], m[0]), text)

    def _error(self, text: str, client=None, notes=()) -> None:
        text = self._page_words(text)
        self._info(f"<span style='color:#c92a2a'>**Error:** {html.escape(text)}</span>{self._notes_html(notes)}", problem="error")
        if client is not None:
            client.add_notification("gen3c", text, color="red", auto_close_seconds=10.0)

    # -- input ----------------------------------------------------------------------------

    def _on_demo(self, _event) -> None:
        if self.demo == "auto":
            self.state.load_demo()
        else:
            self.state.load_sample(*self.demo(), "demo sample")
        self._loaded()

    def _on_upload(self, target, kind: str, event) -> None:
        file = event.target.value
        path = self.state.save_upload(file.name, file.content, kind)
        target.value = str(path)
        self._info(f"Uploaded {html.escape(file.name)} ({len(file.content) / 1024:.0f} KiB).")

    def _on_load_files(self, _event) -> None:
        intr = self.intrinsics.value.strip() or None
        depth = self.depth_path.value.strip()
        estimator = self.depth_estimator.value.strip() or None  # empty: the default, as without --depth_estimator
        if not depth:
            self._info(f"Estimating depth with {html.escape(estimator or DEFAULT_DEPTH_ESTIMATOR)}…", transient=True)
        # The scale of a PNG depth of z-depth only (the control is hidden for another file, and for
        # disparity, whose depth is brought to median 1: it would scale nothing).
        png = {"png_depth_scale": _control_number(self.png_depth_scale.value, "png_depth_scale")} if self._scales_png_depth() else {}
        # Ticked without a depth file it is refused (an estimator's depth is z-depth), naming the box.
        disparity = {"depth_is_disparity": True} if self.depth_is_disparity.value else {}
        self.state.load_files(
            self.image_path.value.strip(), depth, fov=_control_number(self.fov.value, "fov") if self.set_fov.value and not intr else None, intrinsics=intr,
            depth_estimator=estimator, **png, **disparity,
        )  # fmt: skip
        self._loaded_with["Load image"] = self._load_controls("Load image")
        self._loaded()

    def _on_load_video(self, _event) -> None:
        self._info("Reading the video input…", transient=True)
        self.state.load_video(self.video_path.value, _control_number(self.start_frame.value, "vipe_starting_frame_idx", whole=True))
        self._loaded_with["Load video input"] = self._load_controls("Load video input")
        self._loaded()

    def _load_controls(self, button: str) -> dict[str, object]:
        """The values of the controls that ``button`` reads, by control name."""
        return {name: getattr(self, name).value for name in LOAD_CONTROLS[button]}

    def _show_pending_loads(self) -> None:
        """Beside each Load button, the controls it reads that changed since it last loaded (or
        since the page opened): they apply when it is pressed. They are not applied on change, as
        viser sends text fields key by key (a path or intrinsics half typed is no input, and every
        prefix of an estimator name would be loaded)."""
        self.png_depth_scale.visible = self._scales_png_depth()
        self.fov.disabled = not self.set_fov.value
        for button, notice in (("Load image", self.image_pending), ("Load video input", self.video_pending)):
            before, now = self._loaded_with[button], self._load_controls(button)
            intrinsics = str(now.get("intrinsics", "")).strip()
            if intrinsics or not now.get("set_fov", True):
                now.pop("fov")  # intrinsics override the FOV, and an unset one is not passed: a changed FOV would change nothing
            if intrinsics:
                now.pop("set_fov")
            if str(now.get("depth_path", "")).strip() and (intrinsics or now.get("set_fov")):
                now.pop("depth_estimator")  # a depth file with its camera given is not estimated
            if "png_depth_scale" in now and not self._scales_png_depth():
                now.pop("png_depth_scale")  # it scales a PNG depth of z-depth only
            changed = [getattr(self, name).label for name, value in now.items() if value != before[name]]
            notice.content = f"<small>Changed: {html.escape(', '.join(changed))}. Press **{button}** to apply.</small>" if changed else ""
            notice.visible = bool(changed)

    def _scales_png_depth(self) -> bool:
        """Whether the "PNG depth scale" control applies: a 16-bit PNG depth file not read as disparity."""
        return _is_png(self.depth_path.value) and not self.depth_is_disparity.value

    def _loaded(self) -> None:
        self._show_pending_loads()
        self._sync_controls()  # the frames a multi-view input sets, a camera path another input cleared
        self._draw_keyframes()
        self._draw_cache()
        self._set_initial_view()
        self._draw_path()
        path_problem = self.status.content if self._problem_shown == "path" else None
        self._show_loaded(self.state.path_note)  # after drawing: tests wait on it
        if path_problem is not None:  # said under what loaded, until the path can be made (then what loaded shows alone)
            self._info(f"{self.status.content}<br>{path_problem}", problem="path")
        elif self._path_notes:  # said under what loaded too
            self._say_path_notes(self.status.content)

    def _say_path_notes(self, status: str) -> None:
        """Show ``status`` with the notes the drawn camera path gave (:attr:`_path_notes`), until a
        path without notes is drawn."""
        self._info(f"{status}{self._notes_html(self._path_notes)}", transient=True)
        self._path_notes_status = self.status.content

    def _show_loaded(self, path_note: str = "") -> None:
        """The status of the loaded input: what it is, its size, the notes reading it gave and
        ``path_note`` (what loading it did to the camera path)."""
        H, W = self.state.require_source().size
        what = INPUT_KIND_LABELS[self.state.kind]
        cams = self.state.input_cameras()
        if cams is not None:
            what += f", {counted(len(cams), 'frame' if self.state.kind != 'multiview' else 'key view')} with cameras"
        elif self.state.request.input_image_path is not None and self.state.request.depth_path is None:
            what += ", depth estimated"
        notes = self._notes_html(self.state.notes)
        if path_note:
            notes += f"<br><small>Camera path: {html.escape(path_note)}.</small>"
        self._info(f"Loaded **{html.escape(self.state.source_label)}** ({what}) at {H}×{W}.{notes}")

    def _notes_html(self, notes) -> str:
        """Notes the library gave (reading an input, a run), each on its own small line."""
        return "".join(f"<br><small>Note: {html.escape(self._page_words(note))}</small>" for note in notes)

    def _set_initial_view(self) -> None:
        """Look at the scene from behind and above the first camera, as for an image at the origin."""
        d = self.state.scene_scale()
        c2w = invert_pose(self.state.require_source().w2c.double())
        R, t = c2w[:3, :3], c2w[:3, 3]
        points = torch.tensor([[0.3 * d, -0.35 * d, -0.6 * d], [0.0, 0.0, 0.8 * d]], dtype=torch.float64) @ R.T + t
        position, look_at = tuple(points[0].tolist()), tuple(points[1].tolist())
        up = tuple((R @ torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64)).tolist())
        self.server.initial_camera.position = position
        self.server.initial_camera.look_at = look_at
        self.server.initial_camera.up = up
        for client in self.server.get_clients().values():
            with client.atomic():
                client.camera.position = position
                client.camera.look_at = look_at
                client.camera.up_direction = up

    def _on_setting(self, key: str, event, redraw_cache: bool | None) -> None:
        value = event.target.value
        notes = self.state.notes
        try:
            if key in NUMBER_SETTINGS:
                value = _control_number(value, key, whole=NUMBER_SETTINGS[key])
            if key == "resolution":
                self._check_frame_size(value)
            self.state.update(**{key: value})
        except Gen3cInputError:
            self._sync_controls()
            raise
        if key in ("num_video_frames", "fps"):
            self._sync_controls()
        if key == "resolution":
            self._fit_resolutions()  # a refused size set before is listed no more
        if self.state.source is not None and self.state.notes is not notes:
            # The input was read again (its size, a video's frames, its invalid depth): the page's
            # notes are this reading's (before the path is drawn: a path that cannot be made shows over them).
            self._show_loaded()
        if redraw_cache is None or self.state.source is None:
            return
        if redraw_cache:
            self._draw_cache()
        self._draw_path()

    # -- camera path ----------------------------------------------------------------------

    def _on_path_mode(self, event) -> None:
        modes = {v: k for k, v in PATH_MODE_LABELS.items()}
        try:
            if event.target.value not in modes:  # not the page's (another client's)
                raise Gen3cInputError(f'"{self.path_mode.label}" {quoted(event.target.value)} is unknown: choose one of {", ".join(modes)}')
            self.state.set_path_mode(modes[event.target.value])
        except Gen3cInputError:
            self._sync_controls()
            raise
        self.preset_folder.visible = self._preset_shown()
        self._draw_path()

    def _preset_shown(self) -> bool:
        """The preset's controls, where they shape the path: a multi-view input's path is its own
        trajectory (``w2cs_all``), which a preset does not change."""
        return self.state.path_mode == "preset" and self.state.kind != "multiview"

    def _client_w2c(self, client) -> torch.Tensor:
        return _wxyz_position_to_w2c(client.camera.wxyz, client.camera.position)

    def _on_add_keyframe(self, event) -> None:
        if event.client is None:
            raise Gen3cInputError("no browser view to take the keyframe from")
        self.state.require_source()
        self._keyframe_added(self.state.add_keyframe(self._client_w2c(event.client)))

    def _on_add_source_keyframe(self, _event) -> None:
        self._keyframe_added(self.state.add_source_keyframe())

    def _keyframe_added(self, kf: Keyframe) -> None:
        if self.state.path_mode != "keyframes":
            self.state.set_path_mode("keyframes")
        self._sync_controls(select=kf.id)
        self._draw_keyframes()
        self._draw_path()

    def _selected_keyframe(self) -> int:
        label = self.keyframe_pick.value
        if not self.state.keyframes or label == "—":
            raise Gen3cInputError("no keyframe selected: add one with 'Add from current view'")
        return _keyframe_id(label)

    def _on_keyframe_time(self, event) -> None:
        if not self.state.keyframes:
            return
        kid = self._selected_keyframe()
        try:
            self.state.set_keyframe_time(kid, _control_number(event.target.value, "keyframe_time"))
        except Gen3cInputError:
            self._sync_keyframe_fields()  # the field shows the time the keyframe keeps, not the refused one
            raise
        self._sync_controls(select=kid)
        self._draw_path()

    def _on_keyframe_action(self, event) -> None:
        kid = self._selected_keyframe()
        action = event.target.value
        if action == "View":
            wxyz, position = _pose_to_wxyz_position(self.state.keyframes[self.state.keyframe_index(kid)].w2c)
            if event.client is not None:
                with event.client.atomic():
                    event.client.camera.wxyz = wxyz
                    event.client.camera.position = position
                self._update_gizmos(event.client)  # the camera is at the keyframe now
            return
        if action == "Delete":
            self.state.delete_keyframe(kid)
            kid = None
        else:
            index = self.state.keyframe_index(kid) + (-1 if action == "Earlier" else 1)
            if not 0 <= index < len(self.state.keyframes):
                raise Gen3cInputError(f"keyframe #{kid} is already the {'first' if index < 0 else 'last'} of the path: select another to move")
            self.state.reorder_keyframe(kid, index)
        self._sync_controls(select=kid)
        self._draw_keyframes()
        self._draw_path()

    def _on_auto_time(self, event) -> None:
        self.state.set_auto_time(bool(event.target.value))
        self._sync_controls()
        self._draw_path()

    def _on_smoothness(self, event) -> None:
        try:
            self.state.set_smoothness(_control_number(event.target.value, "smoothness"))
        except Gen3cInputError:
            self._sync_controls()  # the slider shows the smoothness kept, not the refused value
            raise
        self._draw_path()

    def _on_gizmo(self, keyframe_id: int, event) -> None:
        try:
            self.state.move_keyframe(keyframe_id, _gizmo_pose(keyframe_id, event.target.wxyz, event.target.position))
        except Gen3cInputError:
            kept = next((kf for kf in self.state.keyframes if kf.id == keyframe_id), None)
            if kept is not None:  # the gizmo shows the pose the keyframe kept, not the refused one
                event.target.wxyz, event.target.position = _pose_to_wxyz_position(kept.w2c)
            raise
        for nodes in self._keyframe_nodes.values():  # the other viewers' copies follow the drag
            node = nodes.get(keyframe_id)
            if node is not None and node is not event.target:
                node.wxyz, node.position = event.target.wxyz, event.target.position
        # Its centre follows the drag, but hiding is decided only when a view moves: a gizmo dragged
        # up to the camera stays in the hand.
        clearance, centres = self._keyframe_centres
        self._keyframe_centres = (clearance, {**centres, keyframe_id: np.asarray(event.target.position, np.float64)})
        self._draw_path(render=event.phase != "update")
        if event.phase != "update":  # the list says whether the path starts at the input's camera
            self._sync_controls()

    def _on_import(self, event) -> None:
        file = event.target.value
        self.state.import_camera_path(file.content, f"camera file {quoted_path(file.name)}")
        self._sync_controls()
        self._draw_keyframes()
        if self.state.source is not None:
            self._draw_path()
        path = f"{len(self.state.keyframes)} keyframes" if self.state.path_mode == "keyframes" else "a fixed path (no keyframes)"
        self._info(f"Imported **{html.escape(file.name)}**: {self.state.request.num_video_frames} frames, {path}.")

    def _on_export(self, event) -> None:
        data = self.state.camera_path_json()
        if event.client is not None:
            event.client.send_file_download("camera_path.json", data, save_immediately=True)

    # -- generation -----------------------------------------------------------------------

    def _start_loader(self, then_generate: bool = False, why: str = "") -> None:
        """Load the request's generator in a thread (called under the page's lock, which the
        thread takes only once the load has ended). A Generate press meanwhile waits for this load
        (:meth:`_wait_for_loader`; ``then_generate``: the press that started it) and is pressed
        again once it has loaded, unless Cancel calls that run off (:meth:`_on_cancel`; the load
        goes on, for a later run). ``why``: why the generator loaded before is loaded again."""
        self._loading = True
        again = f" again ({html.escape(self._page_words(why))})" if why else ""
        self._loading_line = f"Loading the {html.escape(self.state.request.generator)} generator{again}…"
        self._info(self._loading_line, transient=True)  # until the load ends (:meth:`_preload_generator`)
        self._wait_for_loader(then_generate)
        self._loader = threading.Thread(target=self._preload_generator, args=(self.state.request,), name="gen3c-gui-load", daemon=True)
        self._loader.start()

    def _wait_for_loader(self, pending: bool) -> None:
        """Whether a run waits for the generator loading (``pending``): Cancel calls it off
        meanwhile; else Generate asks for one."""
        if pending:
            self._info(self._loading_line, transient=True)
        self._start_pending = pending
        self.generate.disabled, self.cancel.disabled = pending, not pending
        self.progress_text.content = self._loading_line + (" The run starts once it has loaded: Cancel calls it off." if pending else "")

    def _preload_generator(self, request: GenerationRequest) -> None:
        """In the loader thread: the model loads without the lock (callbacks go on meanwhile); the
        page is updated under it, as by a callback."""
        if self._stopped:
            return
        with self._lock:  # the press that dropped the generator loaded before has returned: its memory is freed
            pass
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        key, out_of_memory = None, False
        try:
            # (running out of GPU memory outside the model's move there too: torch's error was an "internal error")
            with record_notes() as notes, out_of_memory_as_error(RunStage(f"loading the {request.generator} model", request)):
                key, generator, error = GeneratorPool.key(request, self._digests), make_generator(request), None
        except Gen3cMemoryError as exc:  # its weights do not fit the GPU: the fix is a flag it loads with
            generator, error, out_of_memory = None, str(exc), True
        except Gen3cInputError as exc:
            generator, error = None, str(exc)
        except Exception as exc:  # a broken install or a bug: say so in the page (Generate tries again)
            generator, error = None, unexpected_error(exc)
        with self._lock:
            if self._stopped:  # the server is closed: what loaded is dropped, nothing is shown
                return
            self._generator, self._generator_key, self._loading = generator, key, False
            self._generator_made_for = (request.resolution, request.generator_options.get("prompt"))
            self._load_notes = notes if generator is not None else []
            then_generate, self._start_pending = self._start_pending, False
            self.generate.disabled, self.cancel.disabled = False, True
            self.progress_text.content = ""
            loading_shown = self.status.content == self._loading_line  # not replaced by an action meanwhile
            shown = self._memory_words(error, at_load=True) if out_of_memory else error
            if error is None:
                self._fit_resolutions()
                try:
                    check_frame_size(self.state.request.resolution, generator)  # the page's now: picked while it loaded, it was not checked
                except Gen3cInputError as exc:
                    error, shown = str(exc), self._resolution_words(str(exc))  # the log in the command line's words
            elif offered_sizes(error):  # the size it loaded for, refused before the weights load (gen3c gui --model tiny --resolution 704x1280)
                self._offer_resolutions(request.resolution, offered_sizes(error))
                shown = self._resolution_words(error)
            if error is not None:
                print(f"gen3c gui: {error}", file=sys.stderr, flush=True)
                self._error(shown)
            elif then_generate:
                self._callback(self._on_generate)(None)  # as the press that asked for it
            elif loading_shown:
                self._info(self._settled)

    def _check_frame_size(self, resolution: str) -> None:
        """Refuse a working resolution the loaded generator cannot take (the gen3c model's size
        limits) when it is picked, not after Generate has rendered the cache."""
        if self._generator is not None and not self._loading:
            try:
                check_frame_size(resolution, self._generator)
            except Gen3cInputError as exc:
                raise Gen3cInputError(self._resolution_words(str(exc))) from None

    def _fit_resolutions(self) -> None:
        """The Resolution dropdown's sizes, once the generator has loaded: those of
        :data:`RESOLUTIONS` and the start's it takes, each it refuses replaced by those its refusal
        offers (the library's nearest fitting sizes), so that what a refusal tells the user to pick
        is there to pick; the size set is listed even if refused (the dropdown shows it)."""
        if self._generator is None or self._loading:
            return
        sizes = []
        for size in self._resolutions:
            try:
                check_frame_size(size, self._generator)
                sizes.append(size)
            except Gen3cInputError as exc:
                sizes += offered_sizes(str(exc))
        current = self.state.request.resolution
        options = list(dict.fromkeys(sizes if current in sizes else [current, *sizes]))
        if options != list(self.resolution.options):
            self._sync.on = True
            try:
                self.resolution.options = options
            finally:
                self._sync.on = False

    def _offer_resolutions(self, refused: str, sizes: list[str]) -> None:
        """Add to the Resolution dropdown, after the ``refused`` size, the ``sizes`` its refusal
        offers (before any generator has loaded, when :meth:`_fit_resolutions` cannot ask it)."""
        options = list(self.resolution.options)
        at = options.index(refused) + 1 if refused in options else len(options)
        new = [size for size in dict.fromkeys(sizes) if size not in options]
        self._sync.on = True
        try:
            self.resolution.options = options[:at] + new + options[at:]
        finally:
            self._sync.on = False

    def _resolution_words(self, text: str) -> str:
        """A frame size refusal (worded for ``--resolution``) in the page's words, its fix a pick
        in the Resolution dropdown, and where that is (it starts folded)."""
        text = self._page_words(text)
        label, where = f'"{self.resolution.label}"', "(Input → 3D cache)"
        fixed = re.sub(rf"\bpass {re.escape(label)} ('[^']*'(?: or '[^']*')*)", rf"pick \1 for {label} {where}", text)
        return fixed if fixed != text else f"{text} ({label} is under Input → 3D cache)"

    def _generator_for(self, request: GenerationRequest):
        """The loaded generator with this run's seed, prompt and buffer noise (plain attributes of the gen3c
        generator); None when none is loaded, or the loaded one does not fit the run (:meth:`_misfit`):
        the run then waits for the load under way, else (a failed start-up load, said then, none asked
        for, or one that does not fit, dropped) for one started in the background, as at start-up, not
        under the page's lock; it starts once it has loaded."""
        if self._loading:  # the generator this run needs (the page's is one, for every run): no second load
            self._wait_for_loader(True)
            return None
        if self._generator is None:
            self._start_loader(then_generate=True)
            return None
        gen = self._generator
        if hasattr(gen, "seed"):
            gen.seed = request.seed
        if hasattr(gen, "prompt") and "prompt" in request.generator_options:
            gen.prompt = request.generator_options["prompt"]
        if hasattr(gen, "noise_aug_strength"):  # loaded with the start's: the page's may differ (0 for a video input)
            gen.noise_aug_strength = float(request.generator_options.get("noise_aug_strength") or 0.0)
        why = self._misfit(request, gen)
        if why is not None:  # loaded again for this run, in the background; the old one is dropped first
            self._generator = gen = None
            self._start_loader(then_generate=True, why=why)
        return gen

    def _misfit(self, request: GenerationRequest, gen) -> str | None:
        """Why the loaded generator (with this run's prompt) does not fit ``request``, which a new
        load does: its model settings, or the memory plan ``--max_gpu_memory`` chose for the
        load's frame size and prompts (:meth:`~gen3c.pipelines.gen3c.Gen3cGenerator.memory_plan_misfit`),
        as :class:`~gen3c.pipelines.request.GeneratorPool` tells them; None where it fits, or was
        given to the app (run as it is)."""
        if self._generator_key is None:
            return None
        same = GeneratorPool.key(request, self._digests) == self._generator_key
        if same and self._generator_made_for == (request.resolution, request.generator_options.get("prompt")):
            return None  # loaded for this size and prompt: its plan was chosen for them
        plan_misfit = getattr(gen, "memory_plan_misfit", None)
        why = plan_misfit(*parse_resolution(request.resolution)) if callable(plan_misfit) else None
        return "the model settings changed" if why is None and not same else why

    def _on_prompt(self, event) -> None:
        self.state.set_prompt(str(event.target.value))

    def _on_noise_aug(self, event) -> None:
        try:
            self.state.set_noise_aug_strength(_control_number(event.target.value, "noise_aug_strength"))
        except Gen3cInputError:
            self._sync_controls()  # the control shows the strength a run uses, not the refused one
            raise

    def _on_generate(self, _event) -> None:
        self.jobs.check_idle()
        request = self.state.build_request()  # (its name held until the run ends, or released here where it does not start)
        started = False
        try:
            started = self._start_run(request)
        finally:
            if not started:  # (refused, or waiting for the generator: the press that starts it writes it again)
                self.state.discard_path_file(request.camera_file)
                self.state.release_output_name(request.video_save_name)

    def _start_run(self, request: GenerationRequest) -> bool:
        """Start the run of ``request`` (:meth:`GuiState.build_request`'s); False where it waits
        for the generator to load."""
        source = self.state.run_source
        generator = self._generator_for(request)
        if generator is None:  # loading: the loader presses Generate again once it has loaded
            return False
        self._check_frame_size(request.resolution)  # a start size it refuses (a generator given): in the page's words
        last, made = [0.0], [0.0]

        def on_progress(stage: str, done: float, total: int) -> None:
            # The bar is the whole run's, the video's share made (each stage's own count restarted
            # it, rendering and generating each chunk): the line names the stage with its count.
            fraction = run_fraction(stage, int(done), total)
            made[0] = made[0] if fraction is None else max(made[0], fraction)
            now = time.monotonic()
            if done not in (0, total) and now - last[0] < 0.1:
                return
            # From the worker thread: the page is the callbacks' too. A callback holding the lock
            # (an input loading) must not stall the run: this update is skipped, a later one shows.
            if not self._lock.acquire(blocking=False):
                return
            try:
                if self._stopped:
                    return
                last[0] = now
                self.progress.value = 100.0 * made[0]
                self.progress_text.content = f"{html.escape(stage)}: {done:.0f}/{total} ({100 * made[0]:.0f}% of the video made)"
            finally:
                self._lock.release()

        notes = self.state.notes if source is not None else ()  # a video input is read again by the run, which notes for itself
        self._run_path = (request.camera_file, self.state.path_mode)  # what the run's notes name the path file it reads
        # Said with its end: another input may be loaded meanwhile (its "Loaded" replaces this line).
        self._run_input = html.escape(self.state.source_label)
        self.jobs.start(request, source, on_progress, self._on_job_done, generator=generator, source_notes=notes)
        self._run_load_notes, self._load_notes = self._load_notes, []  # said with this run's end
        self.generate.disabled, self.cancel.disabled = True, False
        self.progress.value, self.progress.animated = 0.0, True
        self.progress_text.content = ""  # the last run's line, until this run's first stage says its own
        self._info(f"Generating **{request.video_save_name}** from **{self._run_input}** ({request.num_video_frames} frames)…")
        return True

    def _on_cancel(self, _event) -> None:
        if self._start_pending:  # Generate waits for the generator to load: that run is called off
            self._wait_for_loader(False)
            name = html.escape(self.state.request.generator)
            self.progress_text.content = f"Cancelled: no run starts. The {name} generator goes on loading, for the next Generate."
            self._info("Generation cancelled before it started.")
            return
        if not self.jobs.running:  # a click sent before the run ended disabled Cancel: its end is shown
            return
        self.jobs.cancel()
        self.progress_text.content = "Cancelling…"

    def _on_job_done(self, result: JobResult) -> None:
        """Called from the worker thread: it waits for the lock, as a callback does (a run that ends
        while Generate's callback is still updating the page then comes after it, not before)."""
        with self._lock:
            if result.output is None:  # no outputs: the path file written for it is no run's (even once stopped)
                self.state.discard_path_file(self._run_path[0])
            if not self._stopped:  # (a run that outlived stop's wait: the page is closed)
                self._show_job_result(result)

    def _show_job_result(self, result: JobResult) -> None:
        self.generate.disabled, self.cancel.disabled = False, True
        notes = [*self._run_load_notes, *(page_run_note(note, *self._run_path) for note in result.notes)]
        self.progress.animated = False
        if result.cancelled:
            self.progress.value = 0.0
            self.progress_text.content = "Cancelled: no output was written."
            self._info("Generation cancelled.")
            return
        if result.error is not None:
            self.progress.value = 0.0
            self.progress_text.content = ""
            error = result.error
            if result.stranded and self._generator_key is not None:  # loaded by the page: the next Generate loads it again
                self._generator = None
                error = error.replace(": load the pipeline again", ": the next Generate loads the generator again")
            self._error(self._memory_words(error) if result.out_of_memory else error, notes=notes)
            return
        out = result.output
        self._last_output = out.paths
        video = out.paths["video"]
        self.progress.value = 100.0
        self.progress_text.content = f"Done in {out.seconds:.1f} s: `{video.name}`"
        self._info(f"Generated **{video.name}** from **{self._run_input}**.{self._notes_html(notes)}")
        self.download_video.disabled = False
        try:  # its size first: a video too large to embed is not read
            size = video.stat().st_size
            data = video.read_bytes() if size <= MAX_EMBED_BYTES else None
        except OSError as exc:  # e.g. removed meanwhile: one line, not a traceback that ends the worker thread
            self._error(f"{video.name} was written but cannot be read to play here ({exc.strerror or first_line(exc)}): find it at {path_to_copy(video)}")
            return
        if data is None:
            self.video.content = f"<p>{html.escape(video.name)} is {size >> 20} MiB, too large to play here: download it.</p>"
            return
        src = "data:video/mp4;base64," + base64.b64encode(data).decode("ascii")
        self.video.content = (
            f'<video id="gen3c-result" src="{src}" controls autoplay loop muted playsinline '
            'style="width:100%;border-radius:6px;background:#000"></video>'
        )

    def _memory_words(self, text: str, at_load: bool = False) -> str:
        """A run (or, ``at_load``, the model's load) out of GPU memory (``text``, the library's
        line): the flags its fix names (``--low_memory``, ``--max_gpu_memory``) set how the model
        loads, which no control of the page sets: they are given to ``gen3c gui`` when it starts.
        A run's other fix, the page's own, is a smaller size."""
        if all(flag in SETTING_CONTROLS for flag in re.findall(r"(?<![\w-])--([a-z]\w*)", text)):  # a fix the page sets: where
            return text.replace("pass a smaller --resolution", "pick a smaller --resolution (Input → 3D cache)")
        text += " (flags of gen3c gui: start it again with one)"
        return text if at_load else f'{text}, or pick a smaller "{self.resolution.label}" (Input → 3D cache)'

    def _on_download_video(self, event) -> None:
        if self._last_output is None:
            raise Gen3cInputError("no video generated yet: press Generate first")
        video = self._last_output["video"]
        if event.client is not None:
            try:
                data = video.read_bytes()
            except OSError as exc:
                raise Gen3cInputError(f"{video.name} cannot be read ({exc.strerror or first_line(exc)}): was it moved? It was written to {path_to_copy(video)}") from None
            event.client.send_file_download(video.name, data, save_immediately=True)

    # -- drawing --------------------------------------------------------------------------

    def _draw_cache(self) -> None:
        if self.state.source is None:
            return
        scene = self.server.scene
        points, colors = self.state.display_points(self.max_display_points)
        s = self.state.source
        H, W = s.size
        fy = float(s.K[1, 1])
        scale = self.state.scene_scale()
        pixel = scale / fy  # one source pixel at the median depth
        scene.add_point_cloud("/cache", points, colors, point_size=pixel * 1.5 * self.point_size.value, point_shape="square")
        thumb = self._thumbnail(s.image)
        wxyz, position = _pose_to_wxyz_position(s.w2c)
        scene.add_camera_frustum(
            "/source", fov=2 * np.arctan(0.5 * H / fy), aspect=W / H, scale=0.12 * scale, image=thumb,
            color=SOURCE_COLOR, thickness=2.0, thickness_units="screen", wxyz=wxyz, position=position,
        )  # fmt: skip
        self._draw_input_cameras(scale)

    def _draw_input_cameras(self, scale: float) -> None:
        """The cameras of a video's frames (evenly picked) or of every key view, as frusta."""
        for node in self._input_nodes:
            node.remove()
        self._input_nodes = []
        cams = self.state.input_cameras()
        if cams is None:
            return
        fov, aspect = self._fov_aspect(cams)
        picks = np.unique(np.linspace(0, len(cams) - 1, min(MAX_INPUT_FRUSTA, len(cams))).round().astype(int))
        frames = self.state.input.keys if self.state.kind == "multiview" else None
        for i in picks:
            wxyz, position = _pose_to_wxyz_position(cams.w2c[i])
            image = self._thumbnail(frames.image(int(i)), 96) if frames is not None else None
            self._input_nodes.append(
                self.server.scene.add_camera_frustum(
                    f"/input/cam_{i}", fov=fov, aspect=aspect, scale=0.08 * scale, color=INPUT_COLOR, image=image,
                    thickness=1.5, thickness_units="screen", wxyz=wxyz, position=position,
                )
            )  # fmt: skip

    @staticmethod
    def _thumbnail(image: torch.Tensor, width: int = 160) -> np.ndarray:
        from gen3c.io.images import resize_image, to_uint8

        H, W = image.shape[-2:]
        return to_uint8(resize_image(image, (max(8, round(H * width / W)), width), "stretch"))

    def _draw_path(self, render: bool = True) -> None:
        for node in self._path_nodes:
            node.remove()
        self._path_nodes = []
        if self.state.source is None:
            return
        try:
            with collect_notes() as notes:  # the page's (with the path), not the server log's as Python warnings
                cams = self.state.cameras()
        except Gen3cInputError as exc:
            if not (self._loading or self.jobs.running):  # a past run's line (the line of one under way or waiting stays)
                self.progress_text.content = ""
            self._info(f"Camera path: {html.escape(self._page_words(str(exc)))}", problem="path")
            self.frame_image.image, self.frame_note.visible = BLANK_FRAME, False  # not the last path's frame
            return
        if self._problem_shown == "path" or self.status.content == self._path_notes_status:  # (the notes of a path no longer drawn)
            self._info(self._settled)
        self._path_notes = notes
        self._path_notes_status = None
        if notes:  # (e.g. fewer Frames than a multi-view input's cameras: said as Frames is set, not only as a run ends)
            self._say_path_notes(self._settled)
        scene = self.server.scene
        scale = self.state.scene_scale()
        centers = cams.centers.double().numpy()
        if len(cams) > 1:
            self._path_nodes.append(
                scene.add_spline_catmull_rom("/path/line", points=centers, color=PATH_COLOR, thickness=3.0, thickness_units="screen", segments=len(centers))
            )
        picks = np.unique(np.linspace(0, len(cams) - 1, min(MAX_PATH_FRUSTA, len(cams))).round().astype(int))
        fov, aspect = self._fov_aspect(cams)
        for i in picks:
            wxyz, position = _pose_to_wxyz_position(cams.w2c[i])
            self._path_nodes.append(
                scene.add_camera_frustum(f"/path/cam_{i}", fov=fov, aspect=aspect, scale=0.05 * scale, color=PATH_COLOR,
                                         thickness=1.5, thickness_units="screen", wxyz=wxyz, position=position)
            )  # fmt: skip
        n = len(cams)
        self._sync.on = True
        try:
            self.frame.max = max(1, n - 1)
            if self.frame.value > n - 1:
                self.frame.value = n - 1
        finally:
            self._sync.on = False
        if render:
            self._draw_frame(cams)

    @staticmethod
    def _fov_aspect(cams: Cameras) -> tuple[float, float]:
        return float(2 * np.arctan(0.5 * cams.height / float(cams.K[0, 1, 1]))), cams.width / cams.height

    def _draw_frame(self, cams: Cameras | None = None) -> None:
        if self.state.source is None:
            return
        try:
            with collect_notes():  # (said as the path was drawn)
                cams = cams or self.state.cameras()
        except Gen3cInputError:
            return
        i = min(int(self.frame.value), len(cams) - 1)
        with collect_notes() as notes:  # the page's, not the server log's: the frame shows why it is empty
            self.frame_image.image = self._fit_width(self._overlay(*self.state.render_frame(i)))
        self.frame_note.content = self._notes_html(notes).removeprefix("<br>")
        self.frame_note.visible = bool(notes)
        fov, aspect = self._fov_aspect(cams)
        wxyz, position = _pose_to_wxyz_position(cams.w2c[i])
        scale = self.state.scene_scale()
        self.server.scene.add_camera_frustum(
            "/frame", fov=fov, aspect=aspect, scale=0.06 * scale, color=(30, 140, 255), thickness=2.0, thickness_units="screen",
            wxyz=wxyz, position=position, variant="filled",
        )  # fmt: skip

    @staticmethod
    def _overlay(color: torch.Tensor, mask: torch.Tensor, cell: int = 8) -> np.ndarray:
        """The warped colour where the cache sees the frame, a grey chequer where it does not."""
        from gen3c.io.images import to_uint8

        rgb = to_uint8(color)
        H, W = rgb.shape[:2]
        yy, xx = np.mgrid[:H, :W]
        checker = np.where(((yy // cell + xx // cell) % 2 == 0)[..., None], 200, 150).astype(np.uint8)
        return np.where(mask[0].cpu().numpy()[..., None] > 0, rgb, checker)

    @staticmethod
    def _fit_width(image: np.ndarray, width: int = 640) -> np.ndarray:
        """Scale a panel image to a fixed width so small working resolutions stay legible."""
        import cv2

        h, w = image.shape[:2]
        if w == width:
            return image
        interp = cv2.INTER_AREA if w > width else cv2.INTER_LINEAR
        return cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=interp)

    def _draw_keyframes(self) -> None:
        look = self._keyframe_look()
        centres = {kf.id: _pose_to_wxyz_position(kf.w2c)[1] for kf in self.state.keyframes}
        self._keyframe_centres = (GIZMO_CLEARANCE * GIZMO_SIZE * look[0], centres)
        for client in self.server.get_clients().values():
            self._draw_keyframes_for(client, look)

    def _keyframe_look(self) -> tuple[float, float, float]:
        """``(scale, fov, aspect)`` of the keyframes' gizmos and frusta: the scene scale (a median
        over the depth map, so computed once per redraw, not per keyframe), the source camera's
        vertical field of view (radians) and aspect."""
        source = self.state.source
        if source is None:
            return 1.0, 1.0, 16 / 9
        H, W = source.size
        return self.state.scene_scale(), float(2 * np.arctan(0.5 * H / float(source.K[1, 1]))), W / H

    def _draw_keyframes_for(self, client, look: tuple[float, float, float] | None = None) -> None:
        """Every keyframe, in ``client``'s scene (``look``: :meth:`_keyframe_look`, computed when None)."""
        for node in self._keyframe_nodes.pop(client.client_id, {}).values():
            node.remove()  # children (frustum, label) go with their parent
        self._keyframe_nodes[client.client_id] = {}
        self._gizmos_hidden[client.client_id] = self._keyframes_at_view(client)
        look = look or self._keyframe_look()
        for k, kf in enumerate(self.state.keyframes):
            self._draw_keyframe(client, k, kf, look)

    def _draw_keyframe(self, client, index: int, kf: Keyframe, look: tuple[float, float, float]) -> None:
        """Keyframe ``kf``, the path's ``index``-th, in ``client``'s scene: its frustum and number,
        on its gizmo when gizmos are on and that viewer's camera is not at it (``look``:
        :meth:`_keyframe_look`)."""
        nodes = self._keyframe_nodes.setdefault(client.client_id, {})
        if kf.id in nodes:
            nodes.pop(kf.id).remove()
        scale, fov, aspect = look
        wxyz, position = _pose_to_wxyz_position(kf.w2c)
        name = f"/keyframes/{kf.id}"
        scene = client.scene
        if self.show_gizmos.value and kf.id not in self._gizmos_hidden.get(client.client_id, frozenset()):
            root = scene.add_transform_controls(name, scale=GIZMO_SIZE * scale, wxyz=wxyz, position=position, disable_sliders=True)
            root.on_update(self._callback(functools.partial(self._on_gizmo, kf.id)))
        else:
            root = scene.add_frame(name, show_axes=False, wxyz=wxyz, position=position)
        scene.add_camera_frustum(
            f"{name}/frustum", fov=fov, aspect=aspect, scale=0.06 * scale, color=KEYFRAME_COLOR, thickness=2.0,
            thickness_units="screen",
        )  # fmt: skip
        scene.add_label(f"{name}/label", f"{index + 1}")
        nodes[kf.id] = root

    def _keyframes_at_view(self, client) -> frozenset[int]:
        """The drawn keyframes that ``client``'s camera is within the gizmo clearance of."""
        clearance, centres = self._keyframe_centres
        view = client.camera.position
        return frozenset(kid for kid, centre in centres.items() if np.linalg.norm(view - centre) < clearance)

    def _on_connect(self, client) -> None:
        client.camera.on_update(self._on_view_moved)
        with self._lock:
            # viser runs this and the disconnect callback on its pool: both may have waited for the
            # lock, and the client be gone already (its scene too, and no disconnect comes after).
            if client.client_id in self.server.get_clients():
                self._draw_keyframes_for(client)

    def _on_disconnect(self, client) -> None:
        with self._lock:  # its scene went with it
            self._keyframe_nodes.pop(client.client_id, None)
            self._gizmos_hidden.pop(client.client_id, None)

    def _on_view_moved(self, camera) -> None:
        """A viewer's camera moved: hide the gizmos it came to, show those it left, for that viewer
        only. Called for every camera message, so the common case, no change, takes no lock."""
        client = camera.client
        if self.show_gizmos.value and self._keyframes_at_view(client) != self._gizmos_hidden.get(client.client_id):
            with self._lock:
                self._update_gizmos(client)

    def _update_gizmos(self, client) -> None:
        """Redraw, in ``client``'s scene, the keyframes whose gizmo should appear or go (only those:
        that viewer may be dragging another)."""
        if client.client_id not in self._keyframe_nodes:  # gone, or not drawn yet
            return
        hidden = self._keyframes_at_view(client)
        changed = hidden ^ self._gizmos_hidden.get(client.client_id, frozenset())
        self._gizmos_hidden[client.client_id] = hidden
        if not changed:
            return
        look = self._keyframe_look()
        for k, kf in enumerate(self.state.keyframes):
            if kf.id in changed:
                self._draw_keyframe(client, k, kf, look)

    # -- syncing controls from the state -------------------------------------------------

    def _sync_controls(self, select: int | None = None) -> None:
        r, s = self.state.request, self.state
        self._sync.on = True
        try:
            self.resolution.value = r.resolution
            self.resize_mode.value = r.resize_mode
            self.filter_threshold.value = r.filter_points_threshold
            self.foreground.value = r.foreground_masking
            self.mask_invalid.value = r.mask_invalid_depth
            self.mask_invalid.disabled = not s.depth_given
            self.splat.value = r.splat
            self.num_frames.value = r.num_video_frames
            self.fps.value = r.fps
            self.trajectory.value = r.trajectory
            self.rotation.value = r.camera_rotation
            self.distance.value = r.movement_distance
            self.scale.value = r.trajectory_scale
            self.seed.value = r.seed
            self.noise_aug.value = s.noise_aug_strength
            self.noise_aug.disabled = not s.takes_noise_aug
            self.path_mode.value = PATH_MODE_LABELS[s.path_mode]
            self.preset_folder.visible = self._preset_shown()
            self.auto_time.value = s.auto_time
            self.smoothness.value = s.smoothness
            labels = [f"#{kf.id} at {kf.time:.2f} s" for kf in s.keyframes] or ["—"]
            current = self.keyframe_pick.value
            self.keyframe_pick.options = labels
            if select is not None:
                current = next((lab for lab in labels if lab.startswith(f"#{select} ")), labels[0])
            elif current.split(" ")[0] not in {lab.split(" ")[0] for lab in labels}:
                current = labels[0]
            else:
                current = next(lab for lab in labels if lab.split(" ")[0] == current.split(" ")[0])
            self.keyframe_pick.value = current
            # A keyframe timed after the last frame shapes the spline but is never reached: say so.
            end = (r.num_video_frames - 1) / r.fps
            late = f" — after the last frame ({end:.2f} s): not reached"
            rows = [f"{k + 1}. `#{kf.id}` at {kf.time:.2f} s{late if kf.time > end + 1e-6 else ''}" for k, kf in enumerate(s.keyframes)]
            if len(rows) == 1:  # a path, but a still one: say so rather than let Generate surprise
                rows.append("One keyframe: the camera holds still. Add another to move it.")
            if s.starts_away_from_input:  # as the run's note would say, after it
                rows.append("Keyframe 1 is not at the input's camera: the video jumps after its first frame (the input's view). "
                            "**Add input camera** starts the path there.")  # fmt: skip
            self.keyframe_list.content = "<small>" + ("<br>".join(rows) if rows else "No keyframes.") + "</small>"
            self.keyframe_time.disabled = not s.keyframes  # a time with no keyframe to give it to
        finally:
            self._sync.on = False
        self._sync_keyframe_fields()

    def _sync_keyframe_fields(self) -> None:
        if not self.state.keyframes or self.keyframe_pick.value == "—":
            return
        kid = _keyframe_id(self.keyframe_pick.value)
        kf = self.state.keyframes[self.state.keyframe_index(kid)]
        self._sync.on = True
        try:
            self.keyframe_time.value = round(kf.time, 3)
        finally:
            self._sync.on = False
