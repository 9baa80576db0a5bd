"""Videos as phones and editors write them — rotated, trimmed, 10-bit, 4:4:4, with alpha, at
29.97 fps, anamorphic, cut short — made with the ffmpeg that imageio-ffmpeg ships and read
back through gen3c's readers: content where gen3c reads them, one line where it refuses."""

import collections.abc
import enum
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from child_env import child_env
from layouts import scene, write_sample, write_vipe
from typer.testing import CliRunner

from gen3c.cli import app
from gen3c.errors import Gen3cInputError
from gen3c.io.gen3c_sample import read_sample
from gen3c.io.video import probe_video, read_video
from gen3c.io.vipe import read_vipe

H, W, T = 32, 48, 5
RED, GREEN, GREY = (255, 0, 0), (0, 255, 0), (128, 128, 128)


def ffmpeg(*args) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *map(str, args)], check=True)


def pattern(h: int = H, w: int = W) -> np.ndarray:
    """Red top-left corner, green top-right, grey elsewhere; the bottom-left block numbers the frame."""
    frames = np.full((T, h, w, 3), GREY, np.uint8)
    frames[:, :8, :8] = RED
    frames[:, :8, -8:] = GREEN
    for t in range(T):
        frames[t, -8:, :8] = 40 * t
    return frames


def encode(path, frames: np.ndarray, *args, rate: str = "24"):
    """``frames`` (T, H, W, 3) uint8 through ffmpeg with the output options ``args``."""
    raw = path.with_suffix(".rgb")
    raw.write_bytes(frames.tobytes())
    h, w = frames.shape[1:3]
    ffmpeg("-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", rate, "-i", raw, *args, path)
    return path


def shown_upright(path, stored: np.ndarray, degrees: int):
    """An mp4 of ``stored`` frames that players show turned ``degrees`` counter-clockwise (a
    display matrix, as phones write for portrait video)."""
    plain = encode(path.with_name("stored.mp4"), stored, "-c:v", "libx264", "-pix_fmt", "yuv444p", "-qp", "0")
    ffmpeg("-display_rotation", degrees, "-i", plain, "-c", "copy", path)
    plain.unlink()  # (a ViPE rgb/ folder holds one video per clip)
    return path


def corners(frame: np.ndarray) -> list[tuple[int, ...]]:
    """The colours at the centres of the marked corners: top-left, top-right."""
    return [tuple(int(c) for c in frame[3, 3]), tuple(int(c) for c in frame[3, -4])]


def close(colours, expected, tol: int = 8) -> bool:
    return all(abs(int(a) - b) <= tol for got, want in zip(colours, expected, strict=True) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_phones_rotated_video_is_read_as_players_show_it(tmp_path, degrees):
    shown = pattern()
    path = shown_upright(tmp_path / "phone.mp4", np.rot90(shown, -degrees // 90, axes=(1, 2)), degrees)
    # The same turn as ffmpeg's own (auto-rotating) decoder gives.
    out = subprocess.run(
        [__import__("imageio_ffmpeg").get_ffmpeg_exe(), "-loglevel", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    frames, _ = read_video(path)
    assert frames.shape == (T, H, W, 3)
    assert np.array_equal(frames, np.frombuffer(out, np.uint8).reshape(T, H, W, 3))
    assert close(corners(frames[0]), [RED, GREEN], tol=2) and all(abs(int(f[-4, 3, 0]) - 40 * t) <= 2 for t, f in enumerate(frames))
    # The seeking reader (a later start) turns its frames too.
    assert np.array_equal(read_video(path, start=3)[0], frames[3:])


@pytest.mark.parametrize("degrees", [90, 180])
def test_a_rotated_samples_depth_lines_up_with_the_frame_as_shown(tmp_path, degrees):
    """Depth and intrinsics are made for the frames as shown (ViPE reads video with OpenCV, which
    turns them upright): gen3c pairs them with the turned frames."""
    rgb, depth, _, w2c, K = scene(3, 32, 48)
    folder = write_sample(tmp_path / "upright", rgb, depth, depth > 0, w2c, K)
    phone = shutil.copytree(folder, tmp_path / "phone")
    shown_upright(phone / "rgb.mp4", np.ascontiguousarray(np.rot90(rgb, -degrees // 90, axes=(1, 2))), degrees)
    upright, turned = read_sample(folder, (32, 48)), read_sample(phone, (32, 48))
    assert torch.equal(turned.depth, upright.depth) and torch.equal(turned.K, upright.K)
    difference = (turned.images.float() - torch.from_numpy(rgb).permute(0, 3, 1, 2).float()).abs().mean()
    assert difference < 1.0, difference  # lossless H.264 (RGB → YUV rounding)


@pytest.mark.parametrize("layout", ["sample", "vipe"])
def test_depth_made_for_a_phone_videos_stored_frames_is_refused_with_the_reason(tmp_path, layout):
    rgb, depth, ids, w2c, K = scene(3, 32, 48)
    if layout == "sample":
        folder = write_sample(tmp_path / "phone", rgb, depth, depth > 0, w2c, K)
        video, read, sizes = folder / "rgb.mp4", read_sample, "rgb.mp4 is 48×32 but depth.npz is 32×48"
    else:
        folder = write_vipe(tmp_path / "phone", "walk", rgb, depth, w2c, K, ids)
        video, read, sizes = folder / "rgb" / "walk.mp4", read_vipe, "00000.exr is 32×48 but the video is 48×32"
    shown_upright(video, rgb, 90)  # shown 48×32: the depth is for the stored 32×48
    with pytest.raises(Gen3cInputError, match=sizes + r": .*; the video's display matrix turns it 90° .* is read as shown, .*: make it for the frames as shown, or re-encode the video upright"):
        read(folder, (32, 48))


def test_depth_saved_transposed_for_an_upright_video_is_not_blamed_on_a_display_matrix(tmp_path):
    """Frames whose size is the depth's turned a quarter, in a video without a display matrix:
    the depth was saved width × height, and the refusal says that, not that the video is turned."""
    rgb, depth, ids, w2c, K = scene(3, 32, 48)
    folder = write_sample(tmp_path / "s", rgb, depth, depth > 0, w2c, K)
    np.savez_compressed(folder / "depth.npz", depth=np.ascontiguousarray(depth.transpose(0, 2, 1)).astype(np.float16))
    np.savez_compressed(folder / "mask.npz", mask=depth.transpose(0, 2, 1) > 0)
    with pytest.raises(Gen3cInputError, match=r"rgb.mp4 is 32×48 but depth.npz is 48×32: .*; the video carries no quarter-turn display matrix, so it looks saved transposed \(width × height\): save it as height × width of the frames$"):
        read_sample(folder, (32, 48))


def test_a_trimmed_clips_edit_list_hides_the_frames_before_its_start(tmp_path):
    """An editor's cut without re-encoding keeps the frames back to the previous keyframe and an
    edit list that hides them (negative times): players and decoders start at the cut."""
    plain = encode(tmp_path / "plain.mp4", pattern(), "-c:v", "libx264", "-pix_fmt", "yuv444p", "-qp", "0", "-bf", "2", "-g", "10")
    cut = tmp_path / "cut.mp4"
    ffmpeg("-ss", "0.05", "-i", plain, "-c", "copy", cut)  # from frame 2 (1/24 s each)
    frames, _ = read_video(cut)
    assert probe_video(cut).frames == len(frames) == 3
    assert [int(f[-4, 3, 0]) for f in frames] == [80, 120, 160]
    assert np.array_equal(read_video(cut, start=1)[0], frames[1:])


@pytest.mark.parametrize(
    "case, suffix, args",
    [
        ("10-bit", "mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p10le"]),
        ("4:4:4", "mp4", ["-c:v", "libx264", "-pix_fmt", "yuv444p"]),
        ("B-frames", "mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-bf", "3"]),
        ("29.97 fps", "mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p"]),
        ("VP9 with alpha", "webm", ["-c:v", "libvpx-vp9", "-pix_fmt", "yuva420p"]),
        ("ProRes 4444", "mov", ["-c:v", "prores_ks", "-profile:v", "4444", "-pix_fmt", "yuva444p10le"]),
        ("PNG in mov with alpha", "mov", ["-c:v", "png", "-pix_fmt", "rgba"]),
        ("variable frame rate", "mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-fps_mode", "vfr", "-vf", "setpts='(N+gte(N,2)*12)/(24*TB)'"]),
    ],
)
def test_formats_from_cameras_and_editors_read_as_the_frames_they_hold(tmp_path, case, suffix, args):
    """Colour as shown (alpha, not used by GEN3C or ViPE either, is dropped), every frame in order."""
    rate = "30000/1001" if case == "29.97 fps" else "24"
    path = encode(tmp_path / f"v.{suffix}", pattern(), *args, rate=rate)
    frames, fps = read_video(path)
    assert frames.shape == (T, H, W, 3) and probe_video(path).frames == T
    assert close(corners(frames[0]), [RED, GREEN]) and close([tuple(frames[0][H // 2, W // 2])], [GREY])
    assert all(abs(int(f[-4, 3, 0]) - 40 * t) <= 8 for t, f in enumerate(frames))
    if case == "29.97 fps":
        assert Fraction(fps).limit_denominator(1001) == Fraction(30000, 1001)


def starts_mid_stream(video, tmp_path) -> None:
    """``video``: the pattern's frames 1 … 4 of an H.264 stream whose keyframes are frames 0 and
    4, copied without its first frame (as a recording that starts between keyframes holds them)."""
    import av

    whole = encode(tmp_path / "gop.mp4", pattern(), "-c:v", "libx264", "-pix_fmt", "yuv444p", "-qp", "0", "-bf", "0", "-g", "4", "-x264-params", "scenecut=0")
    with av.open(str(whole)) as source, av.open(str(tmp_path / "mid.mp4"), "w") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        packets = [p for p in source.demux(source.streams.video[0]) if p.size]
        assert [p.is_keyframe for p in packets] == [True, False, False, False, True]
        for packet in packets[1:]:
            packet.stream = stream
            out.mux(packet)
    shutil.copy(tmp_path / "mid.mp4", video)


@pytest.mark.parametrize(
    "case, match",
    [
        ("anamorphic", r"has non-square pixels \(sample aspect ratio 2:1: stored 48×32, shown 96×32\): re-encode it with square pixels"),
        ("anamorphic in its H.264 stream only", r"has non-square pixels \(sample aspect ratio 2:1 in its video stream, 1:1 in its container: "
         r"stored 48×32, shown 96×32\): re-encode it with square pixels"),
        ("audio only", r"has no video stream \(only audio\): pass a video file"),
        ("no frames", r"has no streams: it holds no frames, or it is truncated or damaged"),
        ("cut before its index", r"(has no streams: it holds no frames, or|cannot be read \(.*\): it) is truncated"),
        ("cut in its frames", r"is truncated: its index lists 5 frames but the file holds [0-4] whole: copy or export it again"),
        ("cut in its last frame", r"is truncated: its index lists 5 frames but the file holds 4 whole: copy or export it again"),
        ("cut in its first frame", r"is truncated: its index lists 5 frames but the file holds 0 whole: copy or export it again"),
        ("turned 45°", r"is shown with a rotation of 45.0°: re-encode it upright \(ffmpeg -i IN OUT applies it\)"),
        ("mirrored", r"is shown with a mirrored display matrix: re-encode it upright"),
        ("a PNG renamed .mp4", r"is a PNG image, not a video \(renamed\?\): pass a video file; a single picture is an image input"),
        ("starts mid-stream", r"starts mid-stream \(a recording cut between keyframes\): its first keyframe is frame 3 \(from 0\), the frames "
         r"before it refer to frames that are not in the file; re-encode it, which drops them \(ffmpeg -i IN -c:v libx264 OUT\)"),
    ],
)
def test_videos_gen3c_cannot_use_are_refused_in_one_line(tmp_path, case, match):
    rgb, depth, _, w2c, K = scene(T, H, W)
    folder = write_sample(tmp_path / "batch_0000", rgb, depth, depth > 0, w2c, K)
    video = folder / "rgb.mp4"
    if case == "anamorphic":
        encode(video, pattern(), "-c:v", "libx264", "-vf", "setsar=2/1")
    elif case == "anamorphic in its H.264 stream only":  # the container (mp4's pasp) says 1:1, the frames 2:1
        ffmpeg("-i", folder / "rgb.mp4", "-c", "copy", "-bsf:v", "h264_metadata=sample_aspect_ratio=2/1", "-aspect", f"{W}:{H}", tmp_path / "vui.mp4")
        shutil.copy(tmp_path / "vui.mp4", video)
    elif case == "audio only":
        ffmpeg("-f", "lavfi", "-i", "sine=d=0.2", "-c:a", "aac", video)
    elif case == "no frames":
        ffmpeg("-f", "lavfi", "-i", f"color=s={W}x{H}:d=1", "-c:v", "libx264", "-frames:v", "0", video)
    elif case == "cut before its index":  # ffmpeg writes the index last, unless told +faststart (as gen3c's writer is)
        ffmpeg("-i", folder / "rgb.mp4", "-c", "copy", tmp_path / "last.mp4")
        data = (tmp_path / "last.mp4").read_bytes()
        assert data.find(b"mdat") < data.find(b"moov")
        video.write_bytes(data[: len(data) // 2])
    elif case == "a PNG renamed .mp4":  # read as a 1-frame video at 25 fps before
        shutil.copy(encode(tmp_path / "still.png", pattern()[:1]), video)
    elif case == "starts mid-stream":  # its first frame, a keyframe, left out: 1 frame of 4 was dropped unseen
        starts_mid_stream(video, tmp_path)
    elif case in ("turned 45°", "mirrored"):
        flag = ["-display_rotation", "45"] if case == "turned 45°" else ["-display_hflip"]
        ffmpeg(*flag, "-i", folder / "rgb.mp4", "-c", "copy", tmp_path / "shown.mp4")
        shutil.copy(tmp_path / "shown.mp4", video)
    else:  # the index first (-movflags +faststart, as for streaming), the frames cut short
        ffmpeg("-i", folder / "rgb.mp4", "-c", "copy", "-movflags", "+faststart", tmp_path / "fast.mp4")
        data = (tmp_path / "fast.mp4").read_bytes()
        keep = {"cut in its frames": len(data) * 2 // 3, "cut in its first frame": data.find(b"mdat") + 200}.get(case, len(data) - 1)
        video.write_bytes(data[:keep])  # (a first frame cut short loses its keyframe flag: not read as a mid-stream start)
    with pytest.raises(Gen3cInputError, match=match):
        read_sample(folder, (H, W))
    res = CliRunner().invoke(app, ["generate", "--input_image_path", str(folder), "--resolution", f"{H}x{W}",
                                   "--num_video_frames", "3", "--video_save_folder", str(tmp_path / "out")])  # fmt: skip
    assert res.exit_code == 2 and "Traceback" not in res.output and str(video) in res.output, res.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("case", ["a PNG renamed .mp4", "starts mid-stream"])
def test_read_video_refuses_a_picture_and_a_stream_that_starts_between_keyframes(tmp_path, case):
    """Read before as a 1-frame video at 25 fps, and as 3 frames (the first, undecodable, dropped
    unseen) of the 4 that probe_video counted: depth for its frames paired with the wrong ones."""
    video = tmp_path / "clip.mp4"
    if case == "a PNG renamed .mp4":
        shutil.copy(encode(tmp_path / "still.png", pattern()[:1]), video)
    else:
        starts_mid_stream(video, tmp_path)
    for read in (probe_video, read_video):
        with pytest.raises(Gen3cInputError, match=r"^video '.*clip\.mp4' (is a PNG image, not a video|starts mid-stream)"):
            read(video)


@pytest.mark.parametrize("suffix, codec", [("mkv", ["-c:v", "libx264", "-pix_fmt", "yuv444p", "-qp", "0"]), ("webm", ["-c:v", "libvpx-vp9", "-lossless", "1"])])
def test_a_matroska_or_webm_copy_cut_short_is_refused_and_a_whole_one_read(tmp_path, suffix, codec):
    """Matroska lists no frame count, so a copy cut short read as the frames it still held
    (4 of 20, silently); the size of the whole that its header gives tells."""
    frames = np.concatenate([pattern()] * 4)
    whole = encode(tmp_path / f"whole.{suffix}", frames, *codec)
    assert np.abs(read_video(whole)[0].astype(int) - frames).max() <= 1 and probe_video(whole).frames == 20
    data = whole.read_bytes()
    for cut, holds in ((len(data) * 2 // 3, r"1?[0-9] whole frames?"), (len(data) - 1, "20 whole frames")):
        (tmp_path / f"cut.{suffix}").write_bytes(data[:cut])
        with pytest.raises(Gen3cInputError, match=rf"^video '.*cut\.{suffix}' is truncated: it ends {len(data) - cut} bytes? before the end its "
                           rf"header gives \(it holds ({holds})\): copy or export it again$"):  # fmt: skip
            read_video(tmp_path / f"cut.{suffix}")
    # Written to a pipe (a live recording), the size is unknown: the file is read as it is.
    import imageio_ffmpeg

    (tmp_path / "raw.rgb").write_bytes(frames.tobytes())
    with open(tmp_path / f"streamed.{suffix}", "wb") as out:
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-r", "24",
                        "-i", str(tmp_path / "raw.rgb"), *codec, "-f", "matroska" if suffix == "mkv" else "webm", "-"], stdout=out, check=True)  # fmt: skip
    assert np.abs(read_video(tmp_path / f"streamed.{suffix}")[0].astype(int) - frames).max() <= 1


def test_empty_packets_are_no_frames_and_do_not_end_the_decoding(tmp_path):
    """A container may keep an empty packet where a capture dropped a frame (NUT does): it is no
    frame, and libavcodec takes an empty packet for the end of the stream, so every frame after
    one was refused ('cannot be decoded: re-encode it') though the count left it out."""
    import av

    plain = encode(tmp_path / "plain.mp4", pattern(), "-c:v", "libx264", "-pix_fmt", "yuv444p", "-qp", "0")
    video = tmp_path / "gaps.mp4"
    with av.open(str(plain)) as source, av.open(str(video), "w", format="nut") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for i, packet in enumerate(p for p in source.demux(source.streams.video[0]) if p.size):
            packet.stream = stream
            out.mux(packet)
            if i in (1, 3):  # an empty packet after frames 1 and 3
                empty = av.Packet(0)
                empty.pts, empty.dts, empty.time_base = packet.pts + 1, packet.dts + 1, packet.time_base
                empty.stream = stream
                out.mux(empty)
    with av.open(str(video)) as container:
        assert [p.size for p in container.demux(video=0) if p.pts is not None].count(0) == 2  # they are in the file
    assert probe_video(video).frames == T
    frames = read_video(video)[0]
    assert np.array_equal(frames, read_video(plain)[0])
    assert np.array_equal(read_video(video, start=2, max_frames=3)[0], frames[2:])


@pytest.mark.parametrize(
    "matrix, args",
    [
        ("BT.709 full range", ["-pix_fmt", "yuv420p", "-vf", "scale=out_color_matrix=bt709:out_range=full", "-colorspace", "bt709", "-color_range", "pc"]),
        ("BT.2020 10-bit", ["-pix_fmt", "yuv420p10le", "-vf", "scale=out_color_matrix=bt2020", "-colorspace", "bt2020nc", "-color_primaries", "bt2020"]),
    ],
)
def test_colour_is_decoded_with_the_matrix_and_range_the_file_names(tmp_path, matrix, args):
    """Phones tag BT.709 (often full range) or BT.2020: colours come out as ffmpeg shows them."""
    frames = pattern()
    frames[:, 12:20, 16:32] = (30, 60, 200)  # a saturated blue, far from its BT.601 reading
    path = encode(tmp_path / "tagged.mp4", frames, "-c:v", "libx264", "-qp", "0", *args)
    import imageio_ffmpeg

    shown = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    read, _ = read_video(path)
    inside = np.s_[:, [3, 3, 16, 24], [3, -4, 24, 40]]  # inside the red, green, blue, grey areas (4:2:0
    # chroma is interpolated differently at their edges)
    difference = np.abs(read[inside].astype(int) - np.frombuffer(shown, np.uint8).reshape(T, H, W, 3)[inside]).max()
    assert difference <= 2, difference
    assert close([tuple(read[0][16, 24])], [(30, 60, 200)], tol=3)


def test_colour_follows_the_files_tags_with_pyav_16s_conversion_defaults(tmp_path, monkeypatch):
    """PyAV ≤ 16 (gen3c takes PyAV ≥ 12.3) converts to RGB with swscale's default, BT.601 limited
    range, whatever the file names, unless told the matrix and range: a BT.709 phone video's red
    came out as 230. Its default is put in PyAV 18's place; gen3c names both itself."""
    import av.video.reformatter

    real = av.video.reformatter.VideoReformatter

    class Pyav16:  # what PyAV 12 … 16 do with src_colorspace / src_color_range left out
        def __init__(self):
            self.real = real()

        def reformat(self, frame, *args, src_colorspace=None, src_color_range=None, **kwargs):
            if src_colorspace is None and frame.format.name.startswith("yuv"):
                src_colorspace, src_color_range = 5, 2 if frame.format.name.startswith("yuvj") else 1
            return self.real.reformat(frame, *args, src_colorspace=src_colorspace, src_color_range=src_color_range, **kwargs)

    frames = pattern()
    tagged = ["-vf", "scale=out_color_matrix=bt709:out_range=tv", "-colorspace", "bt709", "-color_range", "tv"]
    path = encode(tmp_path / "bt709.mp4", frames, "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", *tagged)
    monkeypatch.setattr(av.video.reformatter, "VideoReformatter", Pyav16)
    read, _ = read_video(path)
    assert close(corners(read[0]), [RED, GREEN], tol=3), corners(read[0])


SideDataType = enum.Enum("Type", "SEI_UNREGISTERED DISPLAYMATRIX")  # PyAV's av.sidedata.sidedata.Type, in part


class _Matrix:
    """A display matrix side datum: nine int32 in 16.16 fixed point, as libavutil's display.h."""

    def __init__(self, degrees: float):
        c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
        self.values = np.array([c, -s, 0, s, c, 0, 0, 0, 1 / 65536], np.float64) * 65536
        self.type = SideDataType.DISPLAYMATRIX

    def __bytes__(self) -> bytes:
        return np.round(self.values).astype(np.int32).tobytes()


class _SideDataByType(collections.abc.Mapping):
    """A frame's side data as PyAV ≤ 18 (``by_type=False``: iterating gives the side data) or
    PyAV 19, which pip installs on Python ≥ 3.12 (iterating gives their types), keeps them; both
    look one up by its type's name."""

    def __init__(self, entries, by_type: bool):
        self.entries, self.by_type = {e.type: e for e in entries}, by_type

    def __iter__(self):
        return iter(self.entries if self.by_type else self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key):
        return self.entries[SideDataType[key] if isinstance(key, str) else key]


@pytest.mark.parametrize("by_type", [False, True], ids=["pyav18", "pyav19"])
def test_the_display_matrix_is_found_as_pyav_18_and_19_keep_side_data(by_type):
    """PyAV 19 (what pip installs on Python 3.12+) iterates a frame's side data by type: looking
    for the matrix by iterating failed on every video read there ('Type' object has no attribute
    'type'), found on a GPU host; both layouts are looked up by name."""
    from types import SimpleNamespace

    from gen3c.io.video import _display_turns

    sei = SimpleNamespace(type=SideDataType.SEI_UNREGISTERED)
    for degrees, turns in ((90, 1), (180, 2), (-90, 3)):
        frame = SimpleNamespace(side_data=_SideDataByType([sei, _Matrix(degrees)], by_type))
        assert _display_turns(frame, Path("v.mp4"), "video") == turns
    assert _display_turns(SimpleNamespace(side_data=_SideDataByType([sei], by_type)), Path("v.mp4"), "video") == 0


READ_IN_A_THREAD_THEN_WRITE = """
import sys, threading
import av
import numpy as np
from gen3c.io.video import read_video, write_video

read, stop = threading.Event(), threading.Event()

def reader():  # a worker that stays alive after reading (the GUI's job threads do)
    if sys.argv[3] == "gen3c":
        read_video(sys.argv[1])
    else:  # the caller's own PyAV code
        with av.open(sys.argv[1]) as container:
            [frame.to_ndarray(format="rgb24") for frame in container.decode(container.streams.video[0])]
    read.set()
    stop.wait()

threading.Thread(target=reader, daemon=True).start()
read.wait()
write_video(sys.argv[2], np.zeros((2, 16, 16, 3), np.uint8))  # forks ffmpeg
print("written")
"""


@pytest.mark.parametrize("reader", ["gen3c", "pyav"])
def test_a_video_is_written_while_another_thread_that_read_one_lives(tmp_path, reader):
    """PyAV 19 (Python ≥ 3.12) keeps ``frame.to_ndarray``'s converter, with swscale's worker
    threads, in a thread-local: ffmpeg started from another thread with a preexec_fn (as
    imageio-ffmpeg's write_frames does) then hung forever in the forked child, freeing it. gen3c's
    own reading (every GUI generation on Python 3.12 waited for ever) and the caller's PyAV code
    (a script or test that decoded with ``to_ndarray`` on its main thread) both left one."""
    import os
    import signal
    import sys

    video = encode(tmp_path / "in.mp4", pattern(), "-c:v", "libx264", "-pix_fmt", "yuv420p")
    out = tmp_path / "out.mp4"
    env = child_env(OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", READ_IN_A_THREAD_THEN_WRITE, video, out, reader], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the script and its stuck forked child
        proc.communicate()
        pytest.fail("writing a video hung after another thread had read one")
    assert proc.returncode == 0, stderr
    assert stdout.strip() == "written" and read_video(out)[0].shape == (2, 16, 16, 3)


def test_read_video_refuses_what_is_no_path_and_expands_the_home_folder(tmp_path, monkeypatch):
    """read_video(123) was Path's TypeError "expected str, bytes or os.PathLike object, not int",
    and read_video("~/clip.mp4") looked for "./~/clip.mp4"."""
    with pytest.raises(Gen3cInputError, match=r"^video is int '123': pass the path to a video file \(a str or a pathlib\.Path\)$"):
        read_video(123)
    monkeypatch.setenv("HOME", str(tmp_path))
    encode(tmp_path / "clip.mp4", pattern(), "-c:v", "libx264", "-pix_fmt", "yuv444p", "-qp", "0")
    frames, fps = read_video("~/clip.mp4")
    assert frames.shape == (T, H, W, 3) and fps == 24.0 and close(corners(frames[0]), [RED, GREEN])
