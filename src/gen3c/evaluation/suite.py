"""The benchmark: fixed, seeded procedural scenes with ground truth, run through generators.

A *case* is one scene (:mod:`gen3c.scenes`, randomised by a held-out seed) seen from the
presets' source camera and moved along one of GEN3C's 8 preset trajectories. Its ground truth
— RGB, depth and the cameras — comes from the ray caster, and so does the source view every
method starts from (image + exact depth): the benchmark measures the generator, not a depth
estimator. Every *method* (a generator plus the cache settings it runs with) makes the video
through :func:`~gen3c.pipelines.camera_video.generate_video`, as ``gen3c generate`` does, and
:func:`score_video` measures it.

Held-out seeds: case (scene i, preset j) of the full grid uses ``HELD_OUT_SEEDS[8·i + j]``
(1000–1031). No test and no tuned default uses a seed ≥ 1000, so the benchmark's numbers are
never fitted to; a subset of scenes or presets keeps each case's seed, so subsets compare.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from gen3c.cache import reliable_depth_mask
from gen3c.cameras import Cameras
from gen3c.environment import utc_timestamp
from gen3c.errors import Gen3cInputError, Gen3cMemoryError, collect_notes, is_whole_number, quoted
from gen3c.evaluation import metrics
from gen3c.evaluation.baselines import CacheRenderGenerator, HomographyGenerator, StillGenerator
from gen3c.models.memory import HostMemory
from gen3c.pipelines.autoregressive import plan_chunks
from gen3c.pipelines.camera_video import (
    MAX_FRAMES,
    SourceView,
    _preset_cameras,  # worded for gen3c benchmark's flags, as its own refusals are
    build_cache,
    check_num_frames,
    generate_video,
    resolve_chunk_frames,
    takes_chunk_keyword,
)
from gen3c.pipelines.preview import PreviewGenerator
from gen3c.scenes import SCENE_PRESETS, make_scene, render, source_camera
from gen3c.summary import dataclass_repr
from gen3c.trajectories import PRESETS, _preset_offset_matrices, check_preset

SCENES: tuple[str, ...] = tuple(SCENE_PRESETS)
HELD_OUT_SEEDS: tuple[int, ...] = tuple(range(1000, 1000 + len(SCENES) * len(PRESETS)))
#: Name of the reference row: the ground-truth frames themselves (the floor of the warp and camera errors).
GROUND_TRUTH = "ground_truth"


@dataclass(frozen=True)
class BenchmarkConfig:
    """What the benchmark runs.

    Attributes:
        scenes, presets: the grid (default: all 4 scenes × all 8 presets).
        camera_rotation: GEN3C's rotation mode for every case.
        resolution: (H, W) of every frame.
        num_frames: frames per video (frame 0 is the source view).
        movement_distance, trajectory_scale: as ``gen3c generate``; the default moves the camera
            by 15 % of the scene's median depth, which keeps every preset inside the rooms.
        supersample: antialiasing of the rendered colour (rays per pixel per axis).
        fov_degrees: horizontal field of view of the cameras.
        contact_frames: frames per method shown in each case's contact sheet.
    """

    scenes: tuple[str, ...] = SCENES
    presets: tuple[str, ...] = PRESETS
    camera_rotation: str = "center_facing"
    resolution: tuple[int, int] = (176, 320)
    num_frames: int = 25
    movement_distance: float = 0.15
    trajectory_scale: str = "median_depth"
    supersample: int = 1
    fov_degrees: float = 60.0
    contact_frames: int = 5

    @classmethod
    def full(cls, **changes) -> BenchmarkConfig:
        """GEN3C's working size: 704×1280, 121 frames, antialiased ground truth."""
        return replace(cls(resolution=(704, 1280), num_frames=121, supersample=2), **changes)

    def check(self) -> None:
        """Raise :class:`Gen3cInputError` for settings the benchmark cannot run."""
        for scene in self.scenes:
            if scene not in SCENE_PRESETS:
                raise Gen3cInputError(f"unknown scene {quoted(scene, 40)} in --scenes: choose from {', '.join(SCENES)}")
        for preset in self.presets:
            if preset not in PRESETS:  # (check_preset's message offers a camera file, which the benchmark takes none of)
                raise Gen3cInputError(f"unknown preset {quoted(preset, 40)} in --presets: choose from {', '.join(PRESETS)}")
            check_preset(preset, self.camera_rotation)
        if not self.scenes or not self.presets:
            raise Gen3cInputError("the benchmark needs at least one scene and one preset")
        for flag, names in (("--scenes", self.scenes), ("--presets", self.presets)):
            twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
            if twice is not None:  # its cases would weigh twice in every mean
                raise Gen3cInputError(f"{flag} names {twice!r} twice: name each once")
        H, W = self.resolution
        if not (is_whole_number(H) and is_whole_number(W)):  # (48.5 failed in the renderer, once the first case came)
            raise Gen3cInputError(f"--resolution {H!r}x{W!r} must be whole numbers of pixels: pass at least 16 a side")
        if min(H, W) < 16:
            raise Gen3cInputError(f"--resolution {H}x{W} is too small to measure: pass at least 16 pixels a side")
        if not is_whole_number(self.num_frames) or not 3 <= self.num_frames <= MAX_FRAMES:
            raise Gen3cInputError(f"--num_video_frames {self.num_frames!r}: the benchmark needs at least 3 frames and at most {MAX_FRAMES}, a whole number")
        if not math.isfinite(self.movement_distance):
            raise Gen3cInputError(f"--movement_distance {self.movement_distance} is impossible: pass a finite number")
        # (gen3c generate takes 0: a video input's own cameras, unmoved, are a path)
        if self.movement_distance == 0:
            raise Gen3cInputError(
                "--movement_distance 0 keeps every camera at the source view, so the camera-control scores have no motion to "
                f"measure: pass a distance other than 0 (the benchmark's default: {BenchmarkConfig.movement_distance})"
            )
        with collect_notes():  # a path onto the point it looks at, refused now, not when its case comes (its notes come then)
            for preset in self.presets:
                _preset_offset_matrices(preset, self.camera_rotation, self.num_frames, self.movement_distance)
        if not is_whole_number(self.supersample) or self.supersample < 1:
            # else render's ValueError (0) or TypeError (2.5) once the first case is rendered
            raise Gen3cInputError(f"supersample {self.supersample!r} must be a whole number ≥ 1 (rays per pixel per axis; 1: none)")
        if not is_whole_number(self.contact_frames) or self.contact_frames < 1:  # (True showed 1 frame, 2.5 failed in the report)
            raise Gen3cInputError(f"--contact_frames {self.contact_frames!r} must be 1 or more, a whole number (frames per row of each contact sheet)")
        self.check_memory()

    def case_bytes(self) -> int:
        """CPU memory one case holds at the least: its ground truth (colour, depth, the seen mask)
        and one method's video, all frames at once (float32 colour and depth, bool mask). Scoring
        adds only per-chunk work (8 frames at a time, :func:`score_video`, :func:`metrics.warp_error`)."""
        H, W = self.resolution
        return self.num_frames * H * W * (3 * 4 + 4 + 1 + 3 * 4)

    def check_memory(self, memory: HostMemory | None = None) -> None:
        """Raise :class:`Gen3cMemoryError` when one case cannot fit in this machine's memory (RAM
        and swap), before anything is allocated or written."""
        memory = memory or HostMemory.now()
        need = self.case_bytes()
        if need > memory.total:
            H, W = self.resolution
            raise Gen3cMemoryError(
                f"--num_video_frames {self.num_frames} at {H}x{W} holds at least {need / 2**30:.1f} GB per case (ground truth and "
                f"one video); {memory.capacity()}: pass fewer frames or a smaller --resolution"
            )


@dataclass(frozen=True)
class Case:
    scene: str
    preset: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.scene}-{self.preset}"


def benchmark_cases(config: BenchmarkConfig) -> list[Case]:
    """The cases of ``config``'s grid, scene-major, each with its held-out seed."""
    return [
        Case(scene, preset, HELD_OUT_SEEDS[SCENES.index(scene) * len(PRESETS) + PRESETS.index(preset)])
        for scene in config.scenes
        for preset in config.presets
    ]


@dataclass
class GroundTruth:
    """One case's ground truth.

    Attributes:
        source: the source view (image, exact depth, K, identity pose), as methods receive it.
        cameras: the T commanded cameras (frame 0 is the source camera).
        rgb: (T, 3, H, W) in [−1, 1]; depth: (T, H, W), +inf where no surface.
        seen: (T, H, W) bool, pixels the source view's cache sees (the rest is disoccluded).
        reliable: (H, W) bool, source pixels the cache keeps (away from depth edges).
        median_depth: the source view's median depth (:meth:`SourceView.median_depth`), the scene's scale:
            what a `median_depth` path is scaled by.
    """

    case: Case
    source: SourceView
    cameras: Cameras
    rgb: Tensor
    depth: Tensor
    seen: Tensor
    reliable: Tensor
    median_depth: float

    __repr__ = dataclass_repr


def render_ground_truth(case: Case, config: BenchmarkConfig, device: str | torch.device = "cpu") -> GroundTruth:
    """Render a case's source view and ground-truth video (on ``device``; results on the CPU)."""
    H, W = config.resolution
    scene = make_scene(case.scene, case.seed)
    src_cam = source_camera(H, W, config.fov_degrees)
    src = render(scene, src_cam.to(device), supersample=config.supersample)
    hit = src.mask[0].cpu()
    depth = torch.where(hit, src.depth[0].cpu(), torch.zeros_like(src.depth[0].cpu())).float()
    source = SourceView(image=src.rgb[0].cpu().float(), depth=depth, K=src_cam.K[0], w2c=torch.eye(4), valid=hit, depth_kind="metric")
    cameras = _preset_cameras(
        source, case.preset, config.camera_rotation, config.num_frames, config.movement_distance, config.trajectory_scale
    )
    truth = render(scene, cameras.to(device), supersample=config.supersample)
    gt_depth = truth.depth.cpu().float()
    reliable = reliable_depth_mask(depth) & hit
    seen = metrics.source_visibility(gt_depth, cameras, depth, src_cam.K[0], source.w2c, reliable)
    return GroundTruth(
        case, source, cameras, truth.rgb.cpu().float(), gt_depth, seen, reliable, source.median_depth()
    )


# --------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------


@dataclass
class Method:
    """A row of the benchmark: a generator and the cache it runs on.

    Attributes:
        name: short name in tables and plots.
        description: one line for the report.
        generator: any generator of :mod:`gen3c.pipelines.camera_video`.
        splat, foreground_masking, filter_points_threshold: the cache settings (see ``gen3c generate``).
        reference: the row whose video this row's is also scored against (``psnr_vs_reference``),
            e.g. a distilled student against its teacher.
        sampling: for a diffusion model, "steps × DiT forwards per step" (empty otherwise).
    """

    name: str
    description: str
    generator: object
    splat: str = "bilinear"
    foreground_masking: bool = False
    filter_points_threshold: float = 0.05
    reference: str | None = None
    sampling: str = ""


def baseline_methods() -> list[Method]:
    """The baselines without hole filling by a model: no cache, one homography, the raw cache."""
    return [
        Method("still", "the source image held still (no camera motion, no cache)", StillGenerator()),
        Method("homography", "the source image warped by one plane homography at the median depth (no cache)", HomographyGenerator()),
        Method("cache", "the 3D cache's render, holes left black (bilinear splat)", CacheRenderGenerator()),
    ]


def preview_methods() -> list[Method]:
    """The preview generator over the cache variants: bilinear or z-buffer splatting, each with
    and without GEN3C's foreground masking."""
    out = []
    for splat in ("bilinear", "zbuffer"):
        for fg in (False, True):
            name = "preview" + ("" if splat == "bilinear" else "_zbuffer") + ("_fg" if fg else "")
            what = f"preview hole filling over the {splat} cache render" + (" with foreground masking" if fg else "")
            out.append(Method(name, what, PreviewGenerator(), splat, fg))
    return out


def video_units(config: BenchmarkConfig, methods: list[Method]) -> int:
    """The frames the benchmark's generators make in all: per case and method, the frames of
    each chunk (chunks share their first frame), what :func:`run_benchmark`'s ``video_progress``
    counts to."""
    return sum(_video_units(config.num_frames, m.generator) for m in methods) * len(benchmark_cases(config))


def _video_units(num_frames: int, generator: object) -> int:
    return sum(stop - start for start, stop in plan_chunks(num_frames, resolve_chunk_frames(num_frames, generator)))


class _Reporting:
    """``generator`` with its generate()'s step callback (``progress``) advancing ``tick`` — a
    diffusion model's sampler steps move the caller's bar while a video is made — and every
    other attribute its own. It counts what it reported, capped at each call's frames."""

    def __init__(self, generator: object, tick: Callable[[int], None]) -> None:
        self._generator, self._tick, self.reported = generator, tick, 0

    def __getattr__(self, name: str):
        return getattr(self._generator, name)

    def generate(self, cache, cameras, first_frame=None, *, buffers=None, progress=None, chunk=0) -> Tensor:
        room = [len(cameras)]

        def step(n: int = 1) -> None:
            n = min(n, room[0])
            room[0] -= n
            self.reported += n
            if n:
                self._tick(n)

        told = {"chunk": chunk} if takes_chunk_keyword(self._generator) else {}
        return self._generator.generate(cache, cameras, first_frame, buffers=buffers, progress=step, **told)


def sampling_of(generator: object) -> str:
    """"N steps × F forwards" of a generator that samples a diffusion model (``num_steps``,
    ``guidance``: two DiT forwards per step unless 0), else ""."""
    steps = getattr(generator, "num_steps", None)
    if steps is None:
        return ""
    forwards = 1 if getattr(generator, "guidance", 0) == 0 else 2
    return f"{steps} steps × {forwards} forward{'s' if forwards > 1 else ''}"


def model_of(generator: object) -> str:
    """For a generator that samples a diffusion model (one with ``settings()``, as
    :meth:`~gen3c.pipelines.gen3c.Gen3cGenerator.settings`): the folder its weights came from, its
    sampler seed, guidance, sampler, dtype and device, in words, so that a report says which model
    and settings made the row; "" for any other generator."""
    settings = getattr(generator, "settings", None)
    if not callable(settings):
        return ""
    told = settings()
    seed = getattr(generator, "seed", None)
    return ", ".join(
        [f"weights `{told.get('checkpoint')}`", *([f"seed {seed}"] if seed is not None else []), f"guidance {told.get('guidance')}",
         f"sampler {told.get('sampler')}", f"{told.get('dtype')} on {told.get('device')}"]
    )  # fmt: skip


def select_methods(
    names: list[str] | None = None, generator: object | None = None, compared: dict[str, object] | None = None
) -> list[Method]:
    """The benchmark's rows: the named baselines and preview variants (default: all), then
    ``generator`` (e.g. the GEN3C model) on GEN3C's default cache when one is given, then the
    ``compared`` generators (row name → generator, e.g. a distilled student) on the same cache,
    each also scored against ``generator``'s video."""
    known = {m.name: m for m in baseline_methods() + preview_methods()}
    if names is None:
        names = list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise Gen3cInputError(f"unknown method {quoted(unknown[0], 40)} in --methods: choose from {', '.join(known)}")
    methods = [known[n] for n in dict.fromkeys(names)]
    default_cache = "over GEN3C's default cache (bilinear splat, edge filter 0.05)"
    if generator is not None:
        name = getattr(generator, "name", "generator")
        if name == GROUND_TRUTH:  # its scores would overwrite the ground truth's (the camera floor), shown twice
            raise Gen3cInputError(
                f"the generator's row is named {name!r}, like the ground-truth row: give the generator another name attribute"
            )
        if name in names:  # its scores would overwrite the baseline row's of that name
            raise Gen3cInputError(
                f"the generator's row is named {name!r}, like the {name!r} row of the methods: drop {name!r} from "
                "the methods or give the generator another name attribute"
            )
        sampling = sampling_of(generator)
        note = "".join(f", {words}" for words in (sampling, model_of(generator)) if words)
        methods.append(Method(name, f"the {name} generator {default_cache}{note}", generator, sampling=sampling))
    if compared:
        if generator is None:
            raise Gen3cInputError("models to compare need a first model to compare with: pass --generator gen3c with --model or --checkpoint_dir")
        reference = methods[-1].name
        for row, other in compared.items():
            if row in {GROUND_TRUTH, *(m.name for m in methods)}:
                raise Gen3cInputError(f"two benchmark rows are named {row!r}: give the compared models distinct names")
            sampling = sampling_of(other)
            note = "".join(f", {words}" for words in (sampling, model_of(other)) if words)
            methods.append(Method(row, f"{row} {default_cache}{note}; also scored against `{reference}`'s video", other,
                                  reference=reference, sampling=sampling))  # fmt: skip
    if not methods:
        raise Gen3cInputError("no method to run: name at least one in --methods or choose a generator")
    return methods


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------

#: Scores that need no ground-truth image (:func:`score_consistency`): all the ground-truth row has.
CONSISTENCY_SCORES = ("warp_error", "rotation_error", "translation_error", "center_error", "pose_failures")
#: Scores of one video, in the order tables show them.
SCORE_NAMES = ("psnr", "psnr_seen", "psnr_disoccluded", "ssim", "ssim_seen", "ssim_disoccluded", *CONSISTENCY_SCORES)
#: Score of a row that has a reference row (:attr:`Method.reference`): PSNR of its video against the reference's.
REFERENCE_SCORE = "psnr_vs_reference"


def check_video(frames: Tensor, truth: GroundTruth, name: str = "the video") -> None:
    """Raise :class:`Gen3cInputError` naming ``name`` when ``frames`` cannot be scored against
    ``truth``: another shape, or NaN / infinite values (every score of such a video would read
    as NaN, a score that does not exist, and drop out of the means over cases unseen)."""
    if tuple(frames.shape) != tuple(truth.rgb.shape):
        raise Gen3cInputError(
            f"{name} has shape {tuple(frames.shape)} but its ground truth {tuple(truth.rgb.shape)}: "
            "a generator returns one (3, H, W) frame in [−1, 1] per camera"
        )
    bad = ~torch.isfinite(frames).flatten(1).all(dim=1)
    if bool(bad.any()):
        raise Gen3cInputError(
            f"{name} holds NaN or infinite values in {int(bad.sum())} of its {len(bad)} frames (the first: frame "
            f"{int(bad.nonzero()[0, 0])}), which cannot be scored: check the generator (its precision, its weights)"
        )


def score_video(frames: Tensor, truth: GroundTruth, chunk: int = 8, name: str = "the video") -> dict:
    """Every score of one video against its ground truth (:func:`check_video` first).

    Image scores use frames 1 … T−1 (frame 0 is the source view), pooled over the case:
    ``psnr_seen`` is the PSNR of all seen pixels of all those frames together, and so on;
    a case without disoccluded pixels has NaN there. ``warp_error`` averages the consecutive
    pairs; the camera scores average frames 1 … T−1 over the poses that could be recovered
    (``pose_failures`` is the share that could not); ``center_error`` is relative to the
    scene's median depth.

    Args:
        frames: (T, 3, H, W) in [−1, 1].
        name: what the video is, for the errors (e.g. "the preview row's video of case room-left").
    Returns:
        ``{score: float}`` for :data:`SCORE_NAMES`, plus ``"psnr_per_frame"`` (T − 1 floats).
    """
    check_video(frames, truth, name)
    T = truth.rgb.shape[0]
    # Sums per pixel set, accumulated chunk by chunk: the maps of only one chunk are held at a time
    # (all frames' maps at once cost 10 bytes per pixel and frame on top of the case).
    parts = ("", "_seen", "_disoccluded")
    squared, structure, count = dict.fromkeys(parts, 0.0), dict.fromkeys(parts, 0.0), dict.fromkeys(parts, 0.0)
    per_frame = []
    for start in range(1, T, chunk):
        sl = slice(start, min(T, start + chunk))
        pred, gt = frames[sl].float(), truth.rgb[sl]
        sq, ss = metrics.squared_error_map(pred, gt), metrics.ssim_map(pred, gt)
        seen = truth.seen[sl]
        for part, mask in zip(parts, (torch.ones_like(seen), seen, ~seen), strict=True):
            squared[part] += float((sq * mask).sum())
            structure[part] += float((ss * mask).sum())
            count[part] += float(mask.sum())
        per_frame.append(sq.flatten(1).mean(dim=1))
        del sq, ss
    scores = {}
    for part in parts:
        scores[f"psnr{part}"] = float(metrics.psnr_from_mse(squared[part] / count[part] if count[part] else math.nan))
    for part in parts:
        scores[f"ssim{part}"] = structure[part] / count[part] if count[part] else math.nan
    scores.update(score_consistency(frames, truth))
    scores["psnr_per_frame"] = metrics.psnr_from_mse(torch.cat(per_frame)).tolist()
    return scores


def psnr_between(frames: Tensor, reference: Tensor) -> float:
    """PSNR of ``frames`` against ``reference`` (both (T, 3, H, W) in [−1, 1]) over frames 1 … T−1."""
    mse = float(metrics.squared_error_map(frames[1:].float(), reference[1:].float()).mean())
    return float(metrics.psnr_from_mse(mse))


def score_consistency(frames: Tensor, truth: GroundTruth) -> dict:
    """The scores that need no ground-truth image: warp error and camera accuracy."""
    warp, _ = metrics.warp_error(frames, truth.depth, truth.cameras)
    cam = metrics.camera_errors(
        frames, truth.cameras, truth.source.depth, truth.reliable, min_baseline=0.02 * truth.median_depth
    )
    return {
        "warp_error": metrics.nanmean(warp),
        "rotation_error": metrics.nanmean(cam.rotation),
        "translation_error": metrics.nanmean(cam.translation),
        "center_error": metrics.nanmean(cam.center) / truth.median_depth,
        "pose_failures": float(cam.failed.float().mean()),
    }


def contact_indices(num_frames: int, count: int) -> list[int]:
    """``count`` frames spread evenly from 1 to the last (frame 0 is the source); one is the last,
    the farthest from the source view, as the spread always ends there."""
    count = max(1, min(count, num_frames - 1))
    if count == 1:
        return [num_frames - 1]
    return sorted({round(1 + i * (num_frames - 2) / (count - 1)) for i in range(count)})


@dataclass
class CaseResult:
    """The scores of every method on one case (``scores[method][score]``) and their run times;
    ``reused``: taken from an earlier run's partial report (``gen3c eval --resume``), its times
    that run's."""

    case: Case
    scores: dict[str, dict] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    disoccluded_share: float = 0.0
    reused: bool = False


@dataclass(frozen=True)
class Stopped:
    """Why a benchmark ended early: the case it was running (its name; None when it was past its
    last case), the error or interrupt, one line, and whether it was an interrupt (Ctrl-C,
    SIGTERM: the case was cut short, not failed)."""

    case: str | None
    error: str
    interrupted: bool = False


@dataclass
class BenchmarkResult:
    """Every case's scores and times; ``seconds`` is the benchmark's run time and ``load_seconds``
    the time the caller spent loading each row's model (row → seconds), before the first video.
    ``stopped`` is set on the result of a benchmark that ended early: ``cases`` then holds only
    the cases finished before it (a partial report). ``fingerprint``: what makes its numbers
    (:func:`gen3c.evaluation.resume.fingerprint`; :func:`run_benchmark` sets it), recorded in
    ``results.json`` when set. ``ended_at``: when the benchmark ended or stopped, in UTC
    (:func:`~gen3c.environment.utc_timestamp`; the result is made then), the report's date."""

    config: BenchmarkConfig
    methods: list[Method]
    cases: list[CaseResult]
    seconds: float = 0.0
    load_seconds: dict[str, float] = field(default_factory=dict)
    stopped: Stopped | None = None
    fingerprint: dict | None = None
    ended_at: str = field(default_factory=utc_timestamp)


class _Frames:
    """A :func:`generate_video` sink that keeps the video's frames on the CPU, none of its buffers."""

    def __init__(self) -> None:
        self.chunks: list[Tensor] = []

    def write(self, frames: Tensor, buffers: object) -> None:
        self.chunks.append(frames.detach().float().cpu())

    def frames(self) -> Tensor:
        return self.chunks[0] if len(self.chunks) == 1 else torch.cat(self.chunks)


CaseCallback = Callable[[GroundTruth, dict[str, Tensor], list[int]], None]


def run_benchmark(
    config: BenchmarkConfig,
    methods: list[Method],
    *,
    device: str | torch.device | None = None,
    progress: Callable[[int], None] | None = None,
    video_progress: Callable[[int], None] | None = None,
    on_case: CaseCallback | None = None,
    finished: list[CaseResult] | None = None,
    reused: list[CaseResult] | None = None,
    scored: Callable[[CaseResult], None] | None = None,
) -> BenchmarkResult:
    """Run every method on every case and score it.

    Args:
        device: where the ground truth is ray-cast (default: CUDA when available).
        progress: called with 1 after each (case, method) run, ground truth included.
        video_progress: called with the frames done while each video is made (a generator's
            step callback, e.g. GEN3C's sampler steps; the rest when the video is done), up to
            :func:`video_units` in all: a bar that moves within a long video.
        on_case: called per case with the ground truth, ``{method: (K, 3, H, W)}`` frames at
            :func:`contact_indices` (ground truth under :data:`GROUND_TRUTH`) and those indices,
            e.g. to write a contact sheet while only one case is in memory.
        finished: a list each case's result is appended to as soon as it is scored, so that a
            caller keeps the finished cases when a later one fails or is interrupted.
        reused: results of cases an earlier run made with the same settings (``--resume``): taken
            as they are, in their place in the grid, and not run (nor shown to ``on_case``).
        scored: called with each case's result once it is scored and appended to ``finished``
            (not for reused cases), e.g. to keep the finished cases on disk as the run goes.
    """
    from gen3c.evaluation.resume import fingerprint  # (it imports this module)

    config.check()
    for method in methods:
        check_num_frames(config.num_frames, method.generator)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    made_by = fingerprint(config, methods, device)  # (the CPU threads as the cases run)
    started = time.perf_counter()
    shown = contact_indices(config.num_frames, config.contact_frames)
    results = [] if finished is None else finished  # (the caller's list: it keeps the finished cases when a later one stops the run)
    earlier = {r.case.name: r for r in reused or ()}
    for case in benchmark_cases(config):
        if case.name in earlier:
            results.append(earlier[case.name])
            if progress is not None:
                progress(len(methods) + 1)
            if video_progress is not None:
                video_progress(sum(_video_units(config.num_frames, m.generator) for m in methods))
            continue
        truth = render_ground_truth(case, config, device)
        result = CaseResult(case, disoccluded_share=float((~truth.seen[1:]).float().mean()))
        result.scores[GROUND_TRUTH] = score_consistency(truth.rgb, truth)
        sheet = {GROUND_TRUTH: truth.rgb[shown]}
        if progress is not None:
            progress(1)
        references = {m.reference for m in methods if m.reference}
        kept: dict[str, Tensor] = {}  # videos of this case that other rows are scored against
        for method in methods:
            cache = build_cache([truth.source], method.filter_points_threshold, method.foreground_masking, method.splat)
            t0 = time.perf_counter()
            video = _Frames()  # the frames only: kept, a buffer would add 20 bytes per pixel and frame
            row = f"the {method.name} row's video of case {case.name}"
            try:
                if video_progress is None:
                    # The benchmark's own bar counts cases × methods (without a factory no generator draws one).
                    generate_video(cache, truth.cameras, method.generator, truth.source.image, sink=video, keep=False)
                else:
                    generator = _Reporting(method.generator, video_progress)
                    generate_video(cache, truth.cameras, generator, truth.source.image, sink=video, keep=False)
                    left = _video_units(config.num_frames, method.generator) - generator.reported  # what a generator that reports no steps (or fewer) left unsaid
                    if left > 0:
                        video_progress(left)
            except Gen3cInputError as exc:  # (a generator's NaN or wrongly shaped frames): which row and case
                raise type(exc)(f"{row}: {exc}") from None
            except Exception as exc:  # a generator's own failure: its traceback, and which row and case
                exc.add_note(f"(while making {row})")
                raise
            result.seconds[method.name] = time.perf_counter() - t0
            frames = video.frames()
            result.scores[method.name] = score_video(frames, truth, name=row)
            if method.reference is not None:
                result.scores[method.name][REFERENCE_SCORE] = psnr_between(frames, kept[method.reference])
            if method.name in references:
                kept[method.name] = frames
            sheet[method.name] = frames[shown]
            del video, frames
            if progress is not None:
                progress(1)
        if on_case is not None:
            on_case(truth, sheet, shown)
        results.append(result)
        if scored is not None:
            scored(result)
    return BenchmarkResult(config, methods, results, time.perf_counter() - started, fingerprint=made_by)
