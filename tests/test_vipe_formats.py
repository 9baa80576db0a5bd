"""ViPE result directories as ViPE's releases write them (``vipe/utils/io.py`` ``save_artifacts``,
the same in 1.0.0, 1.1.0 and its history since August 2025), read back value for value, and the
runs gen3c cannot use (no depth, a non-pinhole camera, an unreleased branch's depth file)
refused in one line that names the directory and the fix."""

import json
import re
import struct
import zlib

import numpy as np
import pytest
import torch
from layouts import write_vipe
from typer.testing import CliRunner

from gen3c.cli import app
from gen3c.errors import Gen3cInputError
from gen3c.io.video import read_video
from gen3c.io.vipe import read_vipe

H, W, T = 16, 24, 4


def closed_form_clip():
    """Frames whose depth, poses and intrinsics are exact in float16 / float32.

    Depth ``16 − t + x/4 + y/2`` (quarter steps below 32: exact halves), nearer by 1 a frame as
    the camera steps forward by 1 (depth that recedes as it nears fits the poses only read as
    inverse depth, and is refused: gen3c.io.conventions); camera t turned 90°
    about +y and standing at (t, 2, −3), so its world-to-camera pose is the integer matrix
    ``[[0, 0, −1, −3], [0, 1, 0, −2], [1, 0, 0, −t]]``; fx = 20 + t, fy = 22.5, cx = 11.5, cy = 7.5.
    """
    y, x = np.mgrid[:H, :W]
    depth = np.stack([16 - t + x / 4 + y / 2 for t in range(T)]).astype(np.float32)
    c2w = np.zeros((T, 4, 4), np.float32)
    w2c = torch.zeros(T, 4, 4)
    for t in range(T):
        c2w[t] = [[0, 0, 1, t], [0, 1, 0, 2], [-1, 0, 0, -3], [0, 0, 0, 1]]
        w2c[t] = torch.tensor([[0, 0, -1, -3], [0, 1, 0, -2], [1, 0, 0, -t], [0, 0, 0, 1.0]])
    intrinsics = np.array([[20 + t, 22.5, 11.5, 7.5] for t in range(T)], np.float32)
    K = torch.tensor([[[20.0 + t, 0, 11.5], [0, 22.5, 7.5], [0, 0, 1]] for t in range(T)])
    ids = ((x // 8) + 3 * (y // 8)).astype(np.uint8)[None].repeat(T, 0)  # instances 0 … 5
    rgb = np.zeros((T, H, W, 3), np.uint8)
    rgb[..., 0] = (x * 10)[None]
    rgb[..., 1] = (y * 15)[None]
    rgb[..., 2] = np.arange(T)[:, None, None] * 60
    return rgb, depth, c2w, w2c, intrinsics, K, ids


def write_release(root, clip="cat", *, with_mask=True, camera="PINHOLE", depth=True, intrinsics=None):
    """A ViPE result of the closed-form clip; the pose file holds the hand-written camera-to-world."""
    rgb, d, c2w, _, intr, K, ids = closed_form_clip()
    write_vipe(root, clip, rgb, d if depth else None, torch.zeros(T, 4, 4) + torch.eye(4), K,
               ids if with_mask else None, camera=camera, intrinsics=intr if intrinsics is None else intrinsics)  # fmt: skip
    np.savez(root / "pose" / f"{clip}.npz", data=c2w, inds=np.arange(T))
    return root


@pytest.mark.parametrize(
    "layout",
    ["default", "static_vda", "no_camera_file"],  # default / lyra / dav3 / no_vda; no instances; dataset downloads
)
def test_release_layout_reads_back_exactly(layout, tmp_path):
    _, depth, c2w, w2c, _, K, ids = closed_form_clip()
    root = write_release(tmp_path / "vipe", with_mask=layout != "static_vda", camera=None if layout == "no_camera_file" else "PINHOLE")
    stored = dict(np.load(root / "pose" / "cat.npz"))
    assert stored["data"].dtype == np.float32 and stored["inds"].dtype == np.int64  # as ViPE's np.savez
    stack = read_vipe(root, (H, W), start=1)
    assert stack.frame_indices == [1, 2, 3] and stack.size == (H, W) and stack.depth_kind == "metric"
    assert torch.equal(stack.depth, torch.from_numpy(depth[1:]))
    assert torch.equal(stack.w2c, w2c[1:])
    assert torch.equal(stack.K, K[1:])
    assert bool(stack.valid.all())
    if layout == "static_vda":
        assert stack.instance_ids is None
    else:
        assert torch.equal(stack.instance_ids, torch.from_numpy(ids[1:]))


def write_bin_zlib(path, depth):
    """Depth as the unmerged branch of nv-tlabs/vipe pull request 63 (commit 0f84d1a) writes it:
    a uint32 JSON length, the JSON (shape [T, H, W], float16) and zlib of the float16 frames."""
    meta = json.dumps({"format": "fp16_zlib", "shape": list(depth.shape), "dtype": "float16"}).encode()
    path.write_bytes(struct.pack("<I", len(meta)) + meta + zlib.compress(depth.astype("<f2").tobytes()))


@pytest.mark.parametrize(
    "case, match",
    [
        ("pose_only", r"has no depth/cat\.zip: ViPE ran without depth \(pipeline\.post\.depth_align_model=null\): re-run 'vipe infer' with a preset that writes it \(default, lyra"),
        ("wide_angle", r"has ViPE's MEI wide-angle camera \(the wide_angle preset\) \(intrinsics/cat_camera\.txt line 1\), but gen3c renders pinhole cameras only: re-run 'vipe infer' with a pinhole preset"),
        ("wide_angle_no_camera_file", r"MEI wide-angle camera .*\(intrinsics/cat\.npz holds 5 values a frame\)"),
        ("panorama", r"has 360° panorama frames \(the panorama preset\) .*run 'vipe infer' on a perspective video"),
        ("panorama_no_camera_file", r"360° panorama .*\(intrinsics/cat\.npz is all 0\)"),
        ("branch_bin_zlib", r"has depth/cat\.bin\.zlib but no depth/cat\.zip, the zipped EXR depth every ViPE release writes: re-run 'vipe infer' with a released ViPE .*unmerged ViPE branch"),
        ("unzipped_depth", r"has depth/cat/ but no depth/cat\.zip.*zip that folder's \.exr files, without the folder, into depth/cat\.zip"),
        ("bad_camera_file", r"intrinsics/cat_camera\.txt line 2 is '1 PINHOLE', not '<frame>: <camera>'"),
        ("dataset_without_rgb", r"lacks rgb/: 'vipe infer' writes rgb/, pose/, intrinsics/, depth/ \(a ViPE dataset download needs --rgb --depth\)"),
    ],
)
def test_runs_gen3c_cannot_use_are_refused_with_the_fix(case, match, tmp_path):
    import shutil
    import zipfile

    root = tmp_path / "vipe"
    if case == "pose_only":
        write_release(root, depth=False)
    elif case.startswith("wide_angle"):  # ViPE's wide_angle preset: MEI camera, no depth
        mei = np.array([[20, 20, 11.5, 7.5, 0.8]] * T, np.float32)
        write_release(root, depth=False, camera="MEI" if case == "wide_angle" else None, intrinsics=mei)
    elif case.startswith("panorama"):  # intrinsics all 0, distance depth
        write_release(root, camera="PANORAMA" if case == "panorama" else None, intrinsics=np.zeros((T, 4), np.float32))
    elif case == "branch_bin_zlib":
        write_release(root, depth=False)
        (root / "depth").mkdir()
        write_bin_zlib(root / "depth" / "cat.bin.zlib", closed_form_clip()[1])
    elif case == "unzipped_depth":
        write_release(root)
        zipfile.ZipFile(root / "depth" / "cat.zip").extractall(root / "depth" / "cat")
        (root / "depth" / "cat.zip").unlink()
    elif case == "bad_camera_file":
        write_release(root)
        (root / "intrinsics" / "cat_camera.txt").write_text("0: PINHOLE\n1 PINHOLE\n")
    elif case == "dataset_without_rgb":  # scripts/download_dataset.py without --rgb
        write_release(root)
        shutil.rmtree(root / "rgb")
    with pytest.raises(Gen3cInputError, match=match) as err:
        read_vipe(root, (H, W))
    message = str(err.value)
    assert "\n" not in message and str(root) in message


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_a_camera_txt_saved_again_by_a_windows_editor_is_read(tmp_path, encoding):
    """ViPE's ``<clip>_camera.txt`` saved again with a byte order mark and CRLF line ends (Notepad;
    UTF-16: PowerShell 5's `>`) was "cannot be read ('ascii' codec can't decode …)"; a non-pinhole
    camera in it is still told, and bytes of no text are one line naming the file."""
    root = write_release(tmp_path / "vipe")
    camera = root / "intrinsics" / "cat_camera.txt"
    camera.write_bytes("".join(f"{i}: PINHOLE\r\n" for i in range(T)).encode(encoding))
    assert read_vipe(root, (H, W)).K.shape == (T, 3, 3)
    camera.write_bytes("0: PINHOLE\r\n1: MEI\r\n".encode(encoding))
    with pytest.raises(Gen3cInputError, match=r"has ViPE's MEI wide-angle camera \(the wide_angle preset\) \(intrinsics/cat_camera\.txt line 2\)"):
        read_vipe(root, (H, W))
    camera.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    with pytest.raises(Gen3cInputError, match=r"^ViPE directory '.*' intrinsics/cat_camera\.txt is a PNG image, not text: re-run 'vipe infer'$"):
        read_vipe(root, (H, W))


def test_a_pinhole_camera_file_with_the_wrong_number_of_values_is_still_refused(tmp_path):
    """The camera file says PINHOLE but the npz holds 5 values a frame: the shape is the error."""
    root = write_release(tmp_path / "vipe", intrinsics=np.ones((T, 5), np.float32))
    with pytest.raises(Gen3cInputError, match=r"intrinsics/cat\.npz 'data' has shape \(4, 5\): expected \(N, 4\)$"):
        read_vipe(root, (H, W))


def test_cli_generates_from_a_release_layout(tmp_path):
    """``gen3c generate --vipe_path`` on a ViPE 1.x result with the preview generator: one output
    frame per frame asked for, the first the source frame; a MEI run ends in exit 2, one line."""
    root = write_release(tmp_path / "vipe")
    runner = CliRunner()
    out = tmp_path / "out"
    res = runner.invoke(app, ["generate", "--vipe_path", str(root), "--vipe_starting_frame_idx", "1", "--num_video_frames", "3",
                              "--resolution", f"{H}x{W}", "--movement_distance", "0", "--video_save_folder", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    frames, _ = read_video(out / "output.mp4")
    assert frames.shape == (3, H, W, 3)
    source = closed_form_clip()[0][1]
    assert np.abs(frames[0].astype(int) - source).mean() < 12  # H.264 twice over a 16×24 gradient

    mei = write_release(tmp_path / "mei", depth=False, camera="MEI", intrinsics=np.ones((T, 5), np.float32))
    res = runner.invoke(app, ["generate", "--vipe_path", str(mei), "--resolution", f"{H}x{W}", "--video_save_folder", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert re.search(r"MEI wide-angle camera .*pinhole cameras only", " ".join(res.output.split())), res.output
