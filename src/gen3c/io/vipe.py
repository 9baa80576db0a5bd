"""ViPE result directories (``vipe infer VIDEO --output DIR``), read as GEN3C's ``vipe_utils.py`` reads them.

Every ViPE release (1.0.0, 1.1.0, and its git history back to August 2025; ``vipe/utils/io.py``
``save_artifacts``) writes one layout, one entry per clip ``<clip>``::

    rgb/<clip>.mp4                 the video (H.264)
    pose/<clip>.npz                "data" (N, 4, 4) OpenCV camera-to-world, "inds" (N,) frame indices
    intrinsics/<clip>.npz          "data" (N, 4) fx, fy, cx, cy in pixels, "inds" (N,)
    intrinsics/<clip>_camera.txt   optional: "{frame}: PINHOLE" per frame (MEI, PANORAMA are refused)
    depth/<clip>.zip               one "{frame:05d}.exr" per frame: half-float channel "Z", metric z-depth
    mask/<clip>.zip                optional: one "{frame:05d}.png" per frame of instance ids

What a ViPE run may leave out or write otherwise is refused with the run that fixes it: no
``depth/`` (``pipeline.post.depth_align_model=null``, the ``wide_angle`` preset), the
``wide_angle`` preset's MEI camera ("data" (N, 5): fx, fy, cx, cy and the distortion ξ), the
``panorama`` preset's equirectangular frames (intrinsics all 0), and depth files other than the
zip (e.g. ``depth/<clip>.bin.zlib`` of an unmerged ViPE branch). ViPE's ``mask/<clip>.txt``
(instance phrases) and ``vipe/`` (run info, visualisation) are not needed.

Poses are inverted to world-to-camera (gen3c's convention). The instance masks are read and
checked but, as in GEN3C, do not remove points from the cache; they are kept for the caller in
the narrowest integer type that holds them (:attr:`gen3c.io.frames.FrameStack.instance_ids`).
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from gen3c.cameras import (
    check_intrinsics_fit,
    invert_pose,
    note_scaled_intrinsics,
    validate_poses,
)
from gen3c.errors import Gen3cDependencyError, Gen3cInputError, note, quoted_path
from gen3c.io.conventions import check_depth_conventions
from gen3c.io.depth import InvalidDepthTally, fill_invalid_depth
from gen3c.io.formats import EXR_MAGIC, PNG_MAGIC, describe_head
from gen3c.io.frames import (
    FrameFitter,
    FrameStack,
    absent_note,
    check_array,
    check_decoded,
    check_frame_size,
    complete_pose_rows,
    float32_array,
    frame_range,
    validate_intrinsics_frames,
)
from gen3c.io.npz import ZIP_READ_ERRORS, damage, load_npz_array
from gen3c.io.paths import exists, is_dir, is_file, reader_path
from gen3c.io.text import user_text
from gen3c.io.video import H264_SUFFIXES, VideoIndex, iter_video_frames, probe_video, turned_hint

if TYPE_CHECKING:
    from gen3c.progress import ProgressFactory

#: The folders every ViPE result has; ``depth/`` is looked for per clip, as a run may lack it.
VIPE_FOLDERS = ("rgb", "pose", "intrinsics")
#: ViPE's pipeline presets (``configs/pipeline/*.yaml``) that write pinhole cameras and depth.
_DEPTH_PRESETS = "default, lyra, dav3, no_vda, static_vda"
#: ViPE's camera models (``vipe/utils/cameras.py`` ``CameraType``) other than PINHOLE: what a
#: clip of each is, and the run that gives gen3c a pinhole one.
_NOT_PINHOLE = {
    "MEI": ("ViPE's MEI wide-angle camera (the wide_angle preset)", "re-run 'vipe infer' with a pinhole preset (-p default)"),
    "PANORAMA": ("360° panorama frames (the panorama preset)", "run 'vipe infer' on a perspective video (-p default)"),
    "SIMPLE_DIVISIONAL": ("ViPE's SIMPLE_DIVISIONAL distortion camera", "re-run 'vipe infer' with a pinhole preset (-p default)"),
}


def is_vipe(path: str | os.PathLike) -> bool:
    """True for a directory with ``rgb/`` and ``pose/`` or an mp4 inside such a ``rgb/``."""
    p = Path(path)
    root = p.parent.parent if _names_video(p) else p
    return is_dir(root / "rgb") and is_dir(root / "pose")


def _names_video(p: Path) -> bool:
    """Whether ``--vipe_path p`` names a clip's video (``rgb/<clip>.mp4``), not a ViPE directory:
    by its suffix, unless it is a ViPE directory itself (``--output walk.mp4`` names one so)."""
    return p.suffix.lower() == ".mp4" and not (is_dir(p / "rgb") and is_dir(p / "pose"))


def resolve_vipe(path: str | os.PathLike, clip: str | None = None) -> tuple[Path, str]:
    """The ViPE root and clip name that ``path`` (the root or ``rgb/<clip>.mp4``; a leading ``~`` is
    the home folder) and ``clip`` name."""
    # (None or a number was Path's "expected str, bytes or os.PathLike object"; "~/walk" went unexpanded)
    p = reader_path(path, "ViPE directory", "a ViPE output directory (the folder given to 'vipe infer --output')")
    if _names_video(p):
        if not is_file(p):
            why = "is a folder, not a video" if is_dir(p) else "does not exist"
            raise Gen3cInputError(f"ViPE video {quoted_path(p)} {why}: check --vipe_path")
        if p.parent.name != "rgb":
            raise Gen3cInputError(
                f"--vipe_path {quoted_path(p)} is an mp4 outside a ViPE rgb/ folder: pass the ViPE output directory"
            )
        if clip is not None and clip != p.stem:
            raise Gen3cInputError(
                f"--vipe_clip {clip!r} contradicts --vipe_path {quoted_path(p)}: pass one of them"
            )
        root, clip = p.parent.parent, p.stem
    else:
        root = p
        if not is_dir(root):
            why = "is a file, not a folder" if exists(root) else "does not exist"
            raise Gen3cInputError(f"ViPE directory {quoted_path(root)} {why}: pass the folder given to 'vipe infer --output'")
    name = f"ViPE directory {quoted_path(root)}"
    missing = [f"{d}/" + absent_note(root / d) for d in VIPE_FOLDERS if not (root / d).is_dir()]
    if missing:
        from gen3c.io.gen3c_sample import SAMPLE_FILES, sample_file

        if all(sample_file(root, f).is_file() for f in SAMPLE_FILES):
            raise Gen3cInputError(f"{name} is a GEN3C sample directory ({', '.join(SAMPLE_FILES)}), not a ViPE result: pass it as --input_image_path")
        raise Gen3cInputError(
            f"{name} lacks {', '.join(missing)}: 'vipe infer' writes rgb/, pose/, intrinsics/, depth/ (a ViPE dataset download needs --rgb --depth)"
        )
    clips = [clip] if _named_video(root, clip) else sorted(clip_videos(root))
    if not clips:
        links = sorted(f for f in (root / "rgb").iterdir() if f.suffix.lower() == ".mp4" and f.is_symlink() and not f.exists())
        if links:
            raise Gen3cInputError(f"{name} has no video in rgb/: rgb/{links[0].name}" + absent_note(links[0]))
        folders = sorted(f.name for f in (root / "rgb").iterdir() if f.suffix.lower() == ".mp4" and f.is_dir())
        if folders:  # a copy that made the video a folder (an unpacked archive, a sync tool's conflict)
            raise Gen3cInputError(
                f"{name} has a folder rgb/{folders[0]}/ where ViPE writes the clip's video: put the video file rgb/{folders[0]} there"
            )
        others = sorted(f.name for f in (root / "rgb").iterdir() if f.suffix.lower() in H264_SUFFIXES and f.is_file())
        if others:  # ViPE writes .mp4 only: another container here was put there by hand (gen3c reads it by its content)
            raise Gen3cInputError(
                f"{name} has no .mp4 in rgb/, only {_listing(others)}: ViPE names its videos rgb/<clip>.mp4; "
                f"rename it rgb/{Path(others[0]).stem}.mp4"
            )
        raise Gen3cInputError(f"{name} has no video in rgb/: run 'vipe infer' on a video first")
    if clip is None:
        if len(clips) > 1:
            raise Gen3cInputError(
                f"{name} holds {len(clips)} clips ({_listing(clips)}): choose one with --vipe_clip NAME"
            )
        clip = clips[0]
    elif clip not in clips:
        raise Gen3cInputError(f"{name} has no clip {clip!r}: its clips are {_listing(clips)}")
    return root, clip


def clip_videos(root: Path) -> dict[str, Path]:
    """The clips of a ViPE result by name: the ``.mp4`` files of ``root/rgb``, the suffix in any case
    (``walk.MP4``, as cameras and Windows copies name it; is_vipe and resolve_vipe take it too).
    Hidden files are none: ``._walk.mp4`` is the AppleDouble metadata macOS writes beside a copy."""
    videos: dict[str, Path] = {}
    for f in sorted((root / "rgb").iterdir(), key=lambda f: (f.name.lower(), f.suffix != ".mp4")):  # walk.mp4 before walk.MP4
        if f.suffix.lower() == ".mp4" and not f.name.startswith(".") and f.is_file():
            videos.setdefault(f.stem, f)
    return videos


def _named_video(root: Path, clip: str | None) -> Path | None:
    """``rgb/<clip>.mp4`` where that file is there, the video :func:`clip_videos` gives ``clip``,
    found without listing ``rgb/`` (a folder of 100,000 clips took seconds per clip, twice a read)."""
    if clip is None or clip.startswith(".") or "/" in clip or "\\" in clip:
        return None
    path = root / "rgb" / f"{clip}.mp4"
    return path if path.is_file() else None


def clip_video(root: Path, clip: str) -> Path:
    """The video of ``clip`` in ``root/rgb`` (:func:`clip_videos`); ``rgb/<clip>.mp4`` where there is none."""
    return _named_video(root, clip) or clip_videos(root).get(clip, root / "rgb" / f"{clip}.mp4")


def clip_files(root: Path, clip: str) -> list[Path]:
    """The files ViPE writes for ``clip`` (the layout above), there or not: those :func:`read_vipe`
    reads, and the mask's phrases ``mask/<clip>.txt`` beside its zip. Another clip's are not among them."""
    return [clip_video(root, clip), root / "pose" / f"{clip}.npz", root / "intrinsics" / f"{clip}.npz",
            root / "intrinsics" / f"{clip}_camera.txt", root / "depth" / f"{clip}.zip", root / "mask" / f"{clip}.zip",
            root / "mask" / f"{clip}.txt"]  # fmt: skip


def _listing(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def read_vipe(
    path: str | os.PathLike,
    resolution: tuple[int, int],
    *,
    clip: str | None = None,
    start: int = 0,
    num_frames: int | None = None,
    resize_mode: str = "crop",
    mask_invalid_depth: bool = False,
    progress: ProgressFactory | None = None,
) -> FrameStack:
    """Read frames ``start`` … ``start + num_frames − 1`` of a ViPE clip at the working resolution.

    Only those frames are decoded (from the last H.264 IDR frame before ``start``: a late start
    does not decode the whole clip before it), each brought to the working resolution as it is
    decoded with its depth, so memory holds the working-size frames and one source-size frame.

    Args:
        path: the ViPE output directory, or ``rgb/<clip>.mp4`` inside it.
        clip: the clip's name, needed when the directory holds several.
        start: first frame (GEN3C's ``--vipe_starting_frame_idx``); ``num_frames``: how many
            (None: to the end; fewer when the clip ends first).
        resolution, resize_mode: see :func:`gen3c.io.frames.fit_frames`.
        mask_invalid_depth: leave NaN/inf depth out of the cache instead of placing it far away
            (GEN3C's treatment, :func:`gen3c.io.depth.fill_invalid_depth`).
        progress: shows the frames read as a stage (:class:`~gen3c.io.frames.FrameFitter`).
    Raises:
        Gen3cInputError: a missing folder, file or frame (no depth: the ViPE run that writes it);
            a camera model other than pinhole; counts that disagree; unreadable mp4, npz, EXR or
            PNG; non-rigid poses; bad intrinsics or depth; ``start`` past the end.
    """
    vipe = _open_clip(path, clip)
    root, clip, files, rel, video = vipe.root, vipe.clip, vipe.files, vipe.rel, vipe.video
    total = video.frames
    stop = frame_range(start, num_frames, total, f"ViPE {rel['rgb']}")
    needed = list(range(start, stop))
    w2c, K = _clip_cameras(vipe, needed)

    depth_name = f"ViPE {rel['depth']}"
    mask_zip = root / "mask" / f"{clip}.zip"
    fitter = FrameFitter(len(needed), resolution, resize_mode, progress)
    tally = InvalidDepthTally()
    with contextlib.ExitStack() as open_files:
        depths = open_files.enter_context(_ZipFrames(files["depth"], rel["depth"], needed, total, ".exr", _decode_exr, files["rgb"]))
        masks = None
        if mask_zip.is_symlink() and not mask_zip.exists():  # optional and not used for the cache: a note, not a refusal
            note(
                f"ViPE directory {quoted_path(root)} mask/{clip}.zip{absent_note(mask_zip)}: "
                "read without its instance ids (FrameStack.instance_ids is None)",
                stacklevel=2,
            )
        if mask_zip.is_file():
            masks = open_files.enter_context(_ZipFrames(mask_zip, f"mask/{clip}.zip", needed, total, ".png", _decode_png, files["rgb"]))
        rgb = iter_video_frames(files["rgb"], "ViPE video", start, len(needed), video)
        for frame, image in zip(needed, rgb, strict=False):
            size = check_frame_size(image, fitter, f"ViPE {rel['rgb']}", frame)
            if frame == start:
                check_intrinsics_fit(K, *size, f"ViPE {rel['intrinsics']} intrinsics", frame_offset=start)
                note_scaled_intrinsics(K, *size, f"ViPE {rel['intrinsics']} intrinsics", frame_offset=start)
            depth, valid = fill_invalid_depth(
                torch.from_numpy(depths.read(frame, size))[None], depth_name, mask_invalid_depth, frame_offset=frame, tally=tally
            )
            ids = None if masks is None else torch.from_numpy(masks.read(frame, size))
            fitter.add(torch.from_numpy(image).permute(2, 0, 1), depth[0], valid[0], ids)
    check_decoded(fitter.added, len(needed), f"ViPE {rel['rgb']}")
    tally.note(depth_name, mask_invalid_depth, stacklevel=2)
    stack = fitter.stack(w2c.float(), K, fps=video.fps, frame_indices=needed, depth_kind="metric")
    check_depth_conventions(
        stack.depth, stack.valid, stack.K, stack.w2c, poses_name=f"ViPE {rel['pose']} poses", depth_name=depth_name, images=stack.images,
        poses_fix="ViPE writes camera-to-world poses: save each matrix's inverse (np.linalg.inv)", inverted_is="world-to-camera",
        depth_fix="ViPE writes z-depth: save 1 / disparity, in the poses' units, as channel Z",
    )  # fmt: skip
    return stack


def vipe_length(path: str | os.PathLike, clip: str | None = None) -> int:
    """How many frames a ViPE clip has, checked as far as that reads no frame: its files, the
    video's container (one cut short), its camera model, every frame's pose and intrinsics, and
    that its depth zip (and instance-id zip, where there is one) holds a file for every frame.
    What only the frames tell (a frame that does not decode, sizes, depth values, the poses' and
    depth's conventions) is checked by :func:`read_vipe` as it reads them. Arguments and refusals
    as :func:`read_vipe`'s."""
    vipe = _open_clip(path, clip)
    every = list(range(vipe.video.frames))
    _clip_cameras(vipe, every)
    with _ZipFrames(vipe.files["depth"], vipe.rel["depth"], every, vipe.video.frames, ".exr", _decode_exr, vipe.files["rgb"]):
        pass
    mask_zip = vipe.root / "mask" / f"{vipe.clip}.zip"
    if mask_zip.is_file():
        with _ZipFrames(mask_zip, f"mask/{vipe.clip}.zip", every, vipe.video.frames, ".png", _decode_png, vipe.files["rgb"]):
            pass
    return vipe.video.frames


@dataclass(frozen=True)
class _OpenClip:
    """A ViPE clip's files, checked as far as that reads no frame (:func:`_open_clip`): the video's
    index, the intrinsics' rows as saved, ``files`` and ``rel`` (their paths inside ``root``) by kind."""

    root: Path
    clip: str
    files: dict[str, Path]
    rel: dict[str, str]
    video: VideoIndex
    intrinsics: tuple[np.ndarray, np.ndarray]


def _open_clip(path: str | os.PathLike, clip: str | None) -> _OpenClip:
    """The clip ``clip`` of the ViPE output ``path`` (:func:`resolve_vipe`), its files there, its
    camera model pinhole and its video's packets whole."""
    root, clip = resolve_vipe(path, clip)
    files = {
        "rgb": clip_video(root, clip),
        "pose": root / "pose" / f"{clip}.npz",
        "intrinsics": root / "intrinsics" / f"{clip}.npz",
    }
    lacking = [f for f in files.values() if not f.is_file()]
    if lacking:
        # A link whose target is gone has its fix in its note (copy the target); the rest, ViPE's run.
        unwritten = [str(f.relative_to(root)) for f in lacking if not (f.is_symlink() and not f.exists())]
        rerun = "" if not unwritten else ": re-run 'vipe infer'" if len(unwritten) == len(lacking) else f": re-run 'vipe infer' for {', '.join(unwritten)}"
        listed = ", ".join(str(f.relative_to(root)) + absent_note(f) for f in lacking)
        raise Gen3cInputError(f"ViPE directory {quoted_path(root)} lacks {listed} for clip {clip!r}{rerun}")
    rel = {key: str(f.relative_to(root)) for key, f in files.items()}
    intrinsics = _load_rows(files["intrinsics"], rel["intrinsics"])
    _check_pinhole(root, clip, intrinsics[0])
    files["depth"] = _depth_zip(root, clip)
    rel["depth"] = f"depth/{clip}.zip"
    return _OpenClip(root, clip, files, rel, probe_video(files["rgb"], "ViPE video"), intrinsics)


def _clip_cameras(vipe: _OpenClip, needed: list[int]) -> tuple[Tensor, Tensor]:
    """The checked w2c (N, 4, 4) and intrinsics (N, 3, 3) of the frames ``needed`` (consecutive)."""
    rel, total, start = vipe.rel, vipe.video.frames, needed[0]
    c2w = _select_rows(*_load_rows(vipe.files["pose"], rel["pose"]), rel["pose"], needed, total, (4, 4), "poses")
    w2c = invert_pose(validate_poses(torch.from_numpy(c2w), f"ViPE {rel['pose']} poses (camera-to-world)", frame_offset=start))
    intr = _select_rows(*vipe.intrinsics, rel["intrinsics"], needed, total, (4,), "intrinsics")
    K = torch.zeros(len(needed), 3, 3)
    K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2] = (torch.from_numpy(intr[:, i]) for i in range(4))
    K[:, 2, 2] = 1.0
    return w2c, validate_intrinsics_frames(K, f"ViPE {rel['intrinsics']} intrinsics", frame_offset=start)


def _load_rows(path: Path, rel: str) -> tuple[np.ndarray, np.ndarray]:
    """``data`` and ``inds`` of a ViPE npz (``np.savez``; never unpickled)."""
    return load_npz_array(path, "data", f"ViPE {rel}"), load_npz_array(path, "inds", f"ViPE {rel}")


def _select_rows(
    data: np.ndarray, inds: np.ndarray, rel: str, needed: list[int], total: int, item_shape: tuple[int, ...], what: str
) -> np.ndarray:
    """Rows of ``data`` for the ``needed`` frames, looked up through ``inds``."""
    name = f"ViPE {rel}"
    if data.ndim == 2 and data.shape[1] == 16 and item_shape == (4, 4):
        data = data.reshape(-1, 4, 4)
    if item_shape == (4, 4):
        data = complete_pose_rows(data)  # (N, 3, 4) [R | t] → (N, 4, 4)
    if data.shape in ((3, 3), (4,)) and item_shape == (4,):  # one camera for all frames, where ViPE keeps a row per frame
        raise Gen3cInputError(
            f"{name} 'data' has shape {data.shape}, one camera: ViPE keeps fx, fy, cx, cy a frame, listed by 'inds': save "
            + ("np.tile([K[0, 0], K[1, 1], K[0, 2], K[1, 2]], (N, 1))" if data.shape == (3, 3) else "np.tile(data, (N, 1))")
            + " with inds=np.arange(N) for the video's N frames"
        )
    if data.ndim == 3 and data.shape[1:] == (3, 3) and item_shape == (4,):  # 3×3 matrices → fx, fy, cx, cy
        data = np.stack([data[:, 0, 0], data[:, 1, 1], data[:, 0, 2], data[:, 1, 2]], axis=1)
    check_array(data, f"{name} 'data'", ("N", *item_shape), kinds="fi")
    check_array(inds, f"{name} 'inds'", (len(data),), kinds="iu")
    if len(inds) and int(inds.min()) < 0:
        raise Gen3cInputError(
            f"{name} 'inds' lists frame {int(inds.min())}: frame indices start at 0 (saved counting from another frame?); re-run 'vipe infer'"
        )
    if len(inds) and int(inds.max()) >= total:
        raise Gen3cInputError(
            f"{name} has {what} for frames up to {int(inds.max())} but the video has {total} frames: frame counts disagree (files of different clips?)"
        )
    rows = {int(i): r for r, i in enumerate(inds)}
    if len(rows) != len(inds):  # ViPE writes each frame once: which row holds the frame is unknown
        values, counts = np.unique(inds, return_counts=True)
        twice = int(values[counts > 1][0])
        raise Gen3cInputError(
            f"{name} 'inds' lists frame {twice} more than once ({len(inds) - len(rows)} repeats in all): each frame needs one row; re-run 'vipe infer'"
        )
    absent = [f for f in needed if f not in rows]
    if absent:
        raise Gen3cInputError(
            f"{name} has no {what} for frame {absent[0]} ({len(absent)} of the {len(needed)} frames asked for are missing; it covers {len(rows)} of the video's {total})"
        )
    return float32_array(data[[rows[f] for f in needed]])


def _check_pinhole(root: Path, clip: str, intrinsics: np.ndarray) -> None:
    """Refuse a clip ViPE solved with another camera model than the pinhole gen3c renders.

    ``intrinsics/<clip>_camera.txt`` ("{frame}: PINHOLE" a line) names the model. Without it
    (ViPE's own reader then takes pinhole) the intrinsics still tell the other two models ViPE
    writes: 5 values a frame are MEI's fx, fy, cx, cy, ξ; all-zero ones are the panorama's.
    """
    rel = f"intrinsics/{clip}_camera.txt"
    models: dict[str, str] = {}
    if (root / rel).is_file():
        models = _camera_models(root, rel)
    elif intrinsics.ndim == 2 and intrinsics.shape[1] == 5:
        models = {"MEI": f"intrinsics/{clip}.npz holds 5 values a frame"}
    elif intrinsics.size and intrinsics.dtype.kind in "fi" and not intrinsics.any():
        models = {"PANORAMA": f"intrinsics/{clip}.npz is all 0"}
    other = sorted(set(models) - {"PINHOLE"})
    if other:
        why, fix = _NOT_PINHOLE[other[0]]
        raise Gen3cInputError(
            f"ViPE directory {quoted_path(root)} clip {clip!r} has {why} ({models[other[0]]}), but gen3c renders pinhole cameras only: {fix}"
        )


def _camera_models(root: Path, rel: str) -> dict[str, str]:
    """The camera models ViPE's ``<clip>_camera.txt`` names, each with where it is first named."""
    name = f"ViPE directory {quoted_path(root)} {rel}"
    try:
        content = (root / rel).read_bytes()
    except OSError as exc:
        raise Gen3cInputError(f"{name} cannot be read ({exc}): re-run 'vipe infer'") from None
    text = user_text(content, name, "re-run 'vipe infer'")
    models: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        frame, colon, model = line.partition(":")
        model = model.strip()
        if not colon or not frame.strip().isdigit() or model not in ("PINHOLE", *_NOT_PINHOLE):
            raise Gen3cInputError(
                f"{name} line {number} is {line.strip()[:60]!r}, not '<frame>: <camera>' with a ViPE camera (PINHOLE, {', '.join(_NOT_PINHOLE)}): re-run 'vipe infer'"
            )
        models.setdefault(model, f"{rel} line {number}")
    return models


def _depth_zip(root: Path, clip: str) -> Path:
    """``depth/<clip>.zip``, or an error saying why a ViPE result has none and how to get it."""
    path = root / "depth" / f"{clip}.zip"
    if path.is_file():
        return path
    name = f"ViPE directory {quoted_path(root)}"
    if path.is_symlink() and not path.exists():  # not a run without depth: a copy of links
        raise Gen3cInputError(f"{name} has no readable depth/{clip}.zip" + absent_note(path))
    # Other files of this clip's name; a zip is another clip's depth (clips "a" and "a.b").
    found = sorted(p for p in (root / "depth").glob(f"{glob.escape(clip)}.*") if p.suffix != ".zip")
    if (root / "depth" / clip).is_dir():
        found.insert(0, root / "depth" / clip)
    if path.exists() and not path.is_file():
        found.insert(0, path)
    if found:
        first = found[0]
        shown = f"depth/{first.name}" + ("/" if first.is_dir() else "")
        hint = ""
        if first.is_dir() and any(first.glob("*.exr")):
            hint = f" (or zip that folder's .exr files, without the folder, into depth/{clip}.zip)"
        elif first.name.endswith(".bin.zlib"):
            hint = " (.bin.zlib depth comes from an unmerged ViPE branch, not a release)"
        raise Gen3cInputError(
            f"{name} has {shown} but no depth/{clip}.zip, the zipped EXR depth every ViPE release writes: re-run 'vipe infer' with a released ViPE (pip install nvidia-vipe){hint}"
        )
    raise Gen3cInputError(
        f"{name} has no depth/{clip}.zip: ViPE ran without depth (pipeline.post.depth_align_model=null): re-run 'vipe infer' with a preset that writes it ({_DEPTH_PRESETS}), or download a ViPE dataset with --depth"
    )


class _ZipFrames:
    """The per-frame files ``{frame:05d}{suffix}`` of a ViPE zip, each decoded when read.

    Opening checks that the zip holds every frame asked for and none past the video's end.
    """

    def __init__(self, path: Path, rel: str, needed: list[int], total: int, suffix: str, decode, video: Path | None = None) -> None:
        """``video``: the clip's video, named in a refusal of frames turned a quarter (:func:`turned_hint`)."""
        self.name, self.suffix, self.decode, self.video = f"ViPE {rel}", suffix, decode, video
        try:
            self.archive = zipfile.ZipFile(path)
        except ZIP_READ_ERRORS as exc:
            raise Gen3cInputError(f"{self.name} is not a readable zip file ({damage(exc)}): it is cut short or damaged, copy it again or re-run 'vipe infer'") from None
        members = set(self.archive.namelist())
        # Each frame's file by its number: ViPE writes 00012.exr, a zip made by hand may say 12.exr
        # or 000012.exr (read alike); two files of one frame are refused, as which to read is unknown.
        self.members: dict[int, str] = {}
        for m in sorted(members):
            stem = m[: -len(suffix)]
            if m.endswith(suffix) and stem.isascii() and stem.isdigit():
                other = self.members.setdefault(int(stem), m)
                if other != m:
                    self.archive.close()
                    raise Gen3cInputError(
                        f"{self.name} holds {other} and {m}, two files of frame {int(stem)}: keep one, named {int(stem):05d}{suffix} as ViPE names it"
                    )
        indices = sorted(self.members)
        if indices and indices[-1] >= total:
            self.archive.close()
            raise Gen3cInputError(
                f"{self.name} has frames up to {indices[-1]} but the video has {total} frames: frame counts disagree (files of different clips?)"
            )
        absent = next((f for f in needed if f not in self.members), None)
        # None at the top level but some under a folder: a zip of the folder (zip -r, a file manager's "Compress").
        nested = [] if indices else sorted(
            m for m in members
            if m.endswith(suffix) and "/" in m and m.rsplit("/", 1)[1][: -len(suffix)].isdigit()
        )  # fmt: skip
        if nested:
            self.archive.close()
            raise Gen3cInputError(
                f"{self.name} holds its frames in a folder ({nested[0]}, …), not at its top level as ViPE writes them: "
                f"zip the files without their folder (zip -j {path.name} {nested[0].rsplit('/', 1)[0]}/*{suffix})"
            )
        if absent is not None:
            self.archive.close()
            held = ""
            if not indices:  # files of another kind (depth saved as .npy or .png by another tool), or none
                files = sorted(m for m in members if not m.endswith("/"))
                held = f" (its files: {_listing(files, 3)}): ViPE writes one {{frame:05d}}{suffix} a frame" if files else " (it is empty)"
            raise Gen3cInputError(
                f"{self.name} has no {absent:05d}{suffix} (frame {absent}); it holds {len(indices)} of the video's {total} frames{held}"
            )

    def __enter__(self) -> _ZipFrames:
        return self

    def __exit__(self, *exc) -> None:
        self.archive.close()

    def read(self, frame: int, size: tuple[int, int]) -> np.ndarray:
        """Frame ``frame``'s (H, W) array, which must be of the video's ``size``."""
        member = self.members[frame]
        try:
            array = self.decode(self.archive.read(member))
        except Gen3cDependencyError:  # OpenEXR missing: its own line, not said of the member as if it were the file's fault
            raise
        except Gen3cInputError as exc:
            raise Gen3cInputError(f"{self.name} {member} {exc}") from None
        except (*ZIP_READ_ERRORS, ValueError) as exc:
            raise Gen3cInputError(f"{self.name} {member} cannot be read ({damage(exc)}): the zip is damaged, re-run 'vipe infer'") from None
        if array.shape != tuple(size):
            raise Gen3cInputError(
                f"{self.name} {member} is {array.shape[0]}×{array.shape[1]} but the video is {size[0]}×{size[1]}: they must match"
                + turned_hint(size, array.shape, self.video)
            )
        return array


def _not_the_image(data: bytes, kind: str) -> str:
    """What a zip member that is not ``kind`` holds: another file zipped under ViPE's name, or
    none at all (a run stopped as it wrote it; describe_head would call nothing "text")."""
    return "is empty (0 bytes)" if not data else f"is {describe_head(data[:64])}, not {kind}"


_EXR_FIX = "re-run 'vipe infer', or write each frame as ViPE does: OpenEXR, its z-depth in one half-float channel Z"


def _decode_exr(data: bytes) -> np.ndarray:
    from gen3c.dependencies import require

    OpenEXR = require("OpenEXR", "reading ViPE depth")
    try:
        with OpenEXR.File(io.BytesIO(data)) as f:
            channels = f.channels()
            if "Z" not in channels:
                raise Gen3cInputError(
                    f"has no channel 'Z' (it has {sorted(channels)}): ViPE writes depth as channel Z"
                )
            pixels = np.array(channels["Z"].pixels)
    except Gen3cInputError:
        raise
    except Exception as exc:  # OpenEXR raises plain Exceptions for bad files ("Unable to open … for read" for any other format)
        if not data.startswith(EXR_MAGIC):
            raise Gen3cInputError(f"{_not_the_image(data, 'an OpenEXR image')}: {_EXR_FIX}") from None
        raise Gen3cInputError(f"is a damaged OpenEXR image, cut short or corrupt ({exc}): {_EXR_FIX}") from None
    if pixels.ndim != 2:
        raise Gen3cInputError(f"has a channel Z of shape {pixels.shape}, not (H, W): {_EXR_FIX}")
    return pixels.astype(np.float32)


def _decode_png(data: bytes) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            array = np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        fix = "re-run 'vipe infer', which writes each frame's instance ids as an 8-bit PNG"
        if not data.startswith(PNG_MAGIC):
            raise Gen3cInputError(f"{_not_the_image(data, 'a PNG image')}: {fix}") from None
        raise Gen3cInputError(f"is a damaged PNG image, cut short or corrupt ({exc}): {fix}") from None
    if array.ndim == 3:
        array = array[..., 0]
    return array.astype(np.int32)
