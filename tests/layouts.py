"""A procedural dynamic scene and writers of the input layouts other tools produce (ViPE, GEN3C's
sample directory, GEN3C's multi-view npz), with the real encoders: H.264 mp4, half-float
OpenEXR with channel Z, PNG, npz. Tests read them back through gen3c's public entry points."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gen3c.cameras import invert_pose, look_at, make_intrinsics
from gen3c.io.video import write_video

WALL_Z = 6.0
FLOOR_Y = 1.2


def scene_cameras(
    n: int, h: int, w: int, step: float = 0.04, fov_px: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` cameras sliding right along x, looking down +z: (n, 4, 4) w2c and (n, 3, 3) K."""
    f = fov_px or 0.9 * w
    eyes = torch.stack([torch.tensor([step * i, -0.1, 0.0]) for i in range(n)])
    w2c = look_at(eyes, eyes + torch.tensor([0.0, 0.05, 5.0]))
    K = make_intrinsics(f, f, (w - 1) / 2.0, (h - 1) / 2.0).expand(n, 3, 3).clone()
    return w2c, K


def sphere_center(t: float) -> np.ndarray:
    """The sphere moves: the scene is dynamic."""
    return np.array([0.3 * np.sin(0.7 * t), 0.15, 3.4])


def render(
    w2c: torch.Tensor, K: torch.Tensor, h: int, w: int, times=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray-cast the scene: a back wall, a floor and a moving sphere, smoothly textured.

    Returns:
        ``(rgb (T, h, w, 3) uint8, depth (T, h, w) float32 z-depth, ids (T, h, w) uint8)``;
        ids are 1 on the sphere (an "instance"), 0 elsewhere.
    """
    T = len(w2c)
    times = np.arange(T, dtype=np.float64) if times is None else np.asarray(times, dtype=np.float64)
    v, u = np.mgrid[:h, :w].astype(np.float64)
    pix = np.stack([u, v, np.ones_like(u)], -1)
    rgb = np.empty((T, h, w, 3), np.uint8)
    depth = np.empty((T, h, w), np.float32)
    ids = np.zeros((T, h, w), np.uint8)
    for i in range(T):
        Kinv = np.linalg.inv(K[i].double().numpy())
        c2w = invert_pose(w2c[i].double()).numpy()
        d_cam = pix @ Kinv.T  # z = 1: ray length s equals z-depth
        d = d_cam @ c2w[:3, :3].T
        o = c2w[:3, 3]
        best = np.full((h, w), np.inf)
        col = np.zeros((h, w, 3))
        s_wall = (WALL_Z - o[2]) / d[..., 2]
        p = o + s_wall[..., None] * d
        hit = s_wall > 0
        wall = np.stack([0.5 + 0.3 * np.sin(1.3 * p[..., 0] + 0.4) * np.cos(1.1 * p[..., 1]),
                         0.45 + 0.25 * np.cos(0.9 * p[..., 0] - 0.7 * p[..., 1]),
                         0.5 + 0.2 * np.sin(0.8 * p[..., 1] + 1.0)], -1)  # fmt: skip
        best, col = _closer(hit, s_wall, wall, best, col)
        with np.errstate(divide="ignore", invalid="ignore"):
            s_floor = np.where(d[..., 1] > 1e-6, (FLOOR_Y - o[1]) / d[..., 1], np.inf)
        p = o + np.where(np.isfinite(s_floor), s_floor, 0)[..., None] * d
        floor = np.stack(
            [
                0.35 + 0.2 * np.cos(1.7 * p[..., 0]),
                0.55 + 0.2 * np.sin(0.9 * p[..., 2]),
                np.full((h, w), 0.3),
            ],
            -1,
        )
        best, col = _closer(np.isfinite(s_floor) & (s_floor > 0), s_floor, floor, best, col)
        c = sphere_center(times[i])
        oc = o - c
        b = (d * oc).sum(-1)
        a = (d * d).sum(-1)
        disc = b * b - a * ((oc * oc).sum() - 0.7**2)
        s_sph = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / a, np.inf)
        n = (o + np.where(np.isfinite(s_sph), s_sph, 0)[..., None] * d - c) / 0.7
        sphere = np.stack([0.75 + 0.2 * n[..., 0], 0.3 + 0.15 * n[..., 1], 0.25 - 0.1 * n[..., 2]], -1)
        on_sphere = np.isfinite(s_sph) & (s_sph > 0) & (s_sph < best)
        best, col = _closer(on_sphere, s_sph, sphere, best, col)
        rgb[i] = np.clip(col * 255.0 + 0.5, 0, 255).astype(np.uint8)
        depth[i] = best.astype(np.float32)
        ids[i] = on_sphere
    return rgb, depth, ids


def _closer(hit, s, color, best, col):
    closer = hit & (s < best)
    return np.where(closer, s, best), np.where(closer[..., None], color, col)


def scene(n: int = 10, h: int = 72, w: int = 128):
    """A dynamic clip: (rgb, depth, ids, w2c, K)."""
    w2c, K = scene_cameras(n, h, w)
    rgb, depth, ids = render(w2c, K, h, w)
    return rgb, depth, ids, w2c, K


# --------------------------------------------------------------------------------------------
# Layout writers
# --------------------------------------------------------------------------------------------


def exr_bytes(depth: np.ndarray, channel: str = "Z") -> bytes:
    """One depth frame as ViPE writes it (``vipe/utils/io.py`` ``save_depth_artifacts``): through
    OpenEXR's ``OutputFile`` with a default ``Header(width, height)`` (scanlines, ZIP
    compression) holding one half-float channel."""
    import tempfile

    import pytest

    Imath = pytest.importorskip("Imath")  # gen3c[exr]: OpenEXR installs Imath
    OpenEXR = pytest.importorskip("OpenEXR")

    header = OpenEXR.Header(depth.shape[1], depth.shape[0])
    header["channels"] = {channel: Imath.Channel(Imath.PixelType(Imath.PixelType.HALF))}
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "depth.exr")
        exr = OpenEXR.OutputFile(path, header)
        exr.writePixels({channel: np.ascontiguousarray(depth, dtype=np.float16).tobytes()})
        exr.close()
        return Path(path).read_bytes()


def png_bytes(ids: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(ids.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_vipe(
    root: Path, clip: str, rgb, depth, w2c, K, ids=None, fps: float = 24, camera: str | None = "PINHOLE", intrinsics=None
) -> Path:
    """One clip as every ViPE release writes it (``vipe/utils/io.py`` ``save_artifacts``).

    ``pose/<clip>.npz`` float32 camera-to-world and ``intrinsics/<clip>.npz`` float32 fx, fy, cx,
    cy (or ``intrinsics``, (T, D), as given), both with int64 ``inds``, by ``np.savez``;
    ``intrinsics/<clip>_camera.txt`` names ``camera`` for each frame (None: no file); depth and
    instance ids as deflated zips of ``{frame:05d}.exr`` / ``.png``, ``mask/<clip>.txt`` the
    instances' phrases. ``depth=None`` is a run without depth (``depth_align_model=null``).
    """
    T = len(rgb)
    inds = np.arange(T)
    for sub in ("rgb", "pose", "intrinsics"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    write_video(root / "rgb" / f"{clip}.mp4", rgb, fps=fps, quality=10)
    np.savez(root / "pose" / f"{clip}.npz", data=invert_pose(w2c.double()).numpy().astype(np.float32), inds=inds)
    if intrinsics is None:
        intrinsics = torch.stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]], 1).numpy()
    np.savez(root / "intrinsics" / f"{clip}.npz", data=np.asarray(intrinsics, dtype=np.float32), inds=inds)
    if camera is not None:
        (root / "intrinsics" / f"{clip}_camera.txt").write_text("".join(f"{i}: {camera}\n" for i in range(T)))
    if depth is not None:
        (root / "depth").mkdir(exist_ok=True)
        with zipfile.ZipFile(root / "depth" / f"{clip}.zip", "w", zipfile.ZIP_DEFLATED) as z:
            for i in range(T):
                z.writestr(f"{i:05d}.exr", exr_bytes(depth[i]))
    if ids is not None:
        (root / "mask").mkdir(exist_ok=True)
        with zipfile.ZipFile(root / "mask" / f"{clip}.zip", "w", zipfile.ZIP_DEFLATED) as z:
            for i in range(T):
                z.writestr(f"{i:05d}.png", png_bytes(ids[i]))
        (root / "mask" / f"{clip}.txt").write_text("".join(f"{i}: thing {i}\n" for i in np.unique(ids) if i))
    return root


def write_h264(path: Path, rgb: np.ndarray, gop: int = 4, bframes: int = 2, codec: str = "libx264", **options: str) -> Path:
    """(T, H, W, 3) uint8 as an mp4 with a keyframe every ``gop`` frames and B-frames (PyAV's
    encoder): libx264 makes each keyframe an IDR frame unless ``x264-params="open-gop=1"``."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24, options={"g": str(gop), "bf": str(bframes), "crf": "18", **options})
        stream.width, stream.height, stream.pix_fmt = rgb.shape[2], rgb.shape[1], "yuv420p"
        for image in rgb:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(stream.encode())
    return path


def write_sample(folder: Path, rgb, depth, mask, w2c, K, fps: float = 24) -> Path:
    """GEN3C's sample directory ("distributed format")."""
    folder.mkdir(parents=True, exist_ok=True)
    write_video(folder / "rgb.mp4", rgb, fps=fps, quality=10)
    np.savez_compressed(folder / "depth.npz", depth=depth.astype(np.float16))
    np.savez_compressed(folder / "mask.npz", mask=mask.astype(bool))
    np.savez(
        folder / "camera.npz", w2c=w2c.numpy().astype(np.float32), intrinsics=K.numpy().astype(np.float32)
    )
    return folder


def write_multiview(
    path: Path, rgb, depth, mask, K, w2c, w2cs_all, Ks_all=None, overrides: dict | None = None
) -> Path:
    """GEN3C's multi-view npz; ``overrides`` replace or (with None) drop keys."""
    data = {
        "images_key_frames": rgb.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0,
        "depth_key_frames": depth[:, None].astype(np.float32),
        "mask_key_frames": mask[:, None].astype(np.float32),
        "K_key_frames": K.numpy().astype(np.float32),
        "w2cs_key_frames": w2c.numpy().astype(np.float32),
        "w2cs_all": w2cs_all.numpy().astype(np.float32),
    }
    if Ks_all is not None:
        data["Ks_all"] = Ks_all.numpy().astype(np.float32)
    data.update(overrides or {})
    np.savez(path, **{k: v for k, v in data.items() if v is not None})
    return path


def damage_zip(path: Path, member: str, how: str) -> Path:
    """Damage one member of a deflated zip in place, as files get damaged: ``"stream"`` garbles its
    deflate stream (zlib.error when read), ``"method"`` names a compression method Python does not
    read (NotImplementedError: a flipped bit, or the Deflate64 of another zipper)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(member)
    if how == "stream":  # the first deflate block: final, of the reserved type 3
        at = info.header_offset
        name_len, extra_len = (int.from_bytes(data[at + i : at + i + 2], "little") for i in (26, 28))
        data[at + 30 + name_len + extra_len] = 0xFF
    else:  # the central directory's method field, which zipfile reads
        entry = _central_entry(data, member)
        data[entry + 10 : entry + 12] = (9).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    return path


def _central_entry(data: bytearray, member: str) -> int:
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_len = int.from_bytes(data[at + 28 : at + 30], "little")
        if data[at + 46 : at + 46 + name_len] == member.encode():
            return at
        at = data.find(b"PK\x01\x02", at + 4)
    raise KeyError(member)
