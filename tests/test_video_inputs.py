"""Video, ViPE and multi-view inputs: layouts written with the real encoders from a procedural
scene, read back through the public readers — values, conventions, resizing and errors."""

import pickle
import re
import warnings
import zipfile

import numpy as np
import pytest
import torch
from layouts import (
    damage_zip,
    exr_bytes,
    render,
    scene,
    scene_cameras,
    write_multiview,
    write_sample,
    write_vipe,
)

from gen3c.cache import Cache3D
from gen3c.cameras import Cameras, camera_centers, make_intrinsics
from gen3c.errors import Gen3cInputError
from gen3c.io.depth import FAR_DEPTH
from gen3c.io.frames import FrameFitter, FrameStack, fit_frames, fit_intrinsics, fit_plan
from gen3c.io.gen3c_sample import read_sample
from gen3c.io.multiview import read_multiview
from gen3c.io.vipe import read_vipe, resolve_vipe

H, W, T = 72, 128, 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # (conftest.py)


@pytest.fixture(scope="module")
def clip():
    return scene(T, H, W)


@pytest.fixture(scope="module")
def vipe_dir(tmp_path_factory, clip):
    rgb, depth, ids, w2c, K = clip
    return write_vipe(tmp_path_factory.mktemp("vipe"), "walk", rgb, depth, w2c, K, ids)


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory, clip):
    rgb, depth, ids, w2c, K = clip
    return write_sample(tmp_path_factory.mktemp("sample") / "batch_0000", rgb, depth, depth > 0, w2c, K)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / max(np.mean((a.astype(float) - b.astype(float)) ** 2), 1e-10)))


def test_vipe_round_trip_and_conventions(vipe_dir, clip):
    rgb, depth, ids, w2c, K = clip
    stack = read_vipe(vipe_dir, (64, 128), start=2, num_frames=5)
    assert len(stack) == 5 and stack.size == (64, 128) and stack.frame_indices == [2, 3, 4, 5, 6]
    # ViPE stores camera-to-world; gen3c holds world-to-camera.
    assert torch.allclose(stack.w2c, w2c[2:7], atol=1e-5)
    assert torch.allclose(
        camera_centers(stack.w2c)[:, 0], torch.tensor([0.04 * i for i in range(2, 7)]), atol=1e-5
    )
    # 72×128 → 64×128 is GEN3C's 720×1280 → 704×1280: a centre crop of 4 rows, cy shifts by 4.
    assert torch.allclose(stack.K[0], K[0] - torch.tensor([[0, 0, 0], [0, 0, 4.0], [0, 0, 0]]))
    assert torch.allclose(stack.depth[0], torch.from_numpy(depth[2, 4:68]), rtol=1e-3)  # half-float EXR
    assert psnr(stack.images[0].permute(1, 2, 0).numpy(), rgb[2, 4:68]) > 33  # H.264
    assert stack.instance_ids is not None and bool(
        (stack.instance_ids[0] == torch.from_numpy(ids[2, 4:68].astype(np.int32))).all()
    )
    assert stack.instance_ids.dtype == torch.uint8  # 8-bit PNG ids: 1 byte a pixel, not int32's 4
    assert stack.fps == pytest.approx(24)


def test_vipe_cache_reproduces_ground_truth_at_source_cameras(vipe_dir, clip):
    rgb = clip[0]
    stack = read_vipe(vipe_dir / "rgb" / "walk.mp4", (64, 128))  # the mp4 under rgb/ works too
    cams = Cameras(stack.w2c, stack.K, 64, 128)
    cache = Cache3D()  # a 4D cache: one point cloud per frame, target frame t renders frame t
    cache.add_view(stack.image(0, len(stack)), stack.depth, stack.K, stack.w2c, stack.valid)
    renders = cache.render(cams)
    valid = renders.masks[:, 0, 0].numpy() > 0
    colors = ((renders.colors[:, 0] + 1) * 127.5).permute(0, 2, 3, 1).numpy()
    assert valid.mean() > 0.6
    gt = rgb[:, 4:68].astype(float)
    assert psnr(colors[valid], gt[valid]) >= 35.0


def test_fit_frames_adjusts_intrinsics_to_the_resized_frames(vipe_dir):
    """Frames read at another working size equal the scene ray-cast with the adjusted intrinsics."""
    stack = read_vipe(vipe_dir, (48, 80), num_frames=3)  # 72×128 → cover 48×85.3 → crop
    assert stack.size == (48, 80)
    truth, _, _ = render(stack.w2c, stack.K, 48, 80)
    assert psnr(stack.images.permute(0, 2, 3, 1).numpy(), truth) > 25
    assert fit_plan((72, 128), (64, 128), "stretch") == ((65, 128), 0, 0)  # GEN3C: 720/704 of the height
    K = scene_cameras(1, 72, 128)[1]
    assert torch.allclose(fit_intrinsics(K, (72, 128), (72, 128)), K)


def test_vipe_clip_choice_and_start(tmp_path, clip, vipe_dir):
    rgb, depth, ids, w2c, K = clip
    root = write_vipe(tmp_path / "two", "a", rgb[:4], depth[:4], w2c[:4], K[:4])
    write_vipe(root, "b", rgb[:6], depth[:6], w2c[:6], K[:6])
    with pytest.raises(Gen3cInputError, match=r"2 clips \(a, b\).*--vipe_clip"):
        read_vipe(root, (64, 128))
    with pytest.raises(Gen3cInputError, match="no clip 'c'.*a, b"):
        read_vipe(root, (64, 128), clip="c")
    assert len(read_vipe(root, (64, 128), clip="b")) == 6
    assert resolve_vipe(root / "rgb" / "a.mp4") == (root, "a")
    assert len(read_vipe(vipe_dir, (64, 128), start=8, num_frames=121)) == 2  # the clip ends first
    with pytest.raises(Gen3cInputError, match=r"^--vipe_starting_frame_idx 10 is outside ViPE rgb/.*, which has 10 frames: pass 0 … 9$"):
        read_vipe(vipe_dir, (64, 128), start=10)


def test_a_vipe_clip_whose_suffix_is_upper_case_is_read(tmp_path, clip):
    """rgb/walk.MP4 (a camera's, a Windows copy's suffix) was "has no video in rgb/", though
    --vipe_path rgb/walk.MP4 was taken for a ViPE clip; the output's rate, the clip's, fell back to 24.
    Another container there is named, with the rename that fixes it."""
    from gen3c.pipelines.request import GenerationRequest
    from gen3c.pipelines.settings import default_fps

    rgb, depth, ids, w2c, K = clip
    root = write_vipe(tmp_path / "v", "walk", rgb[:3], depth[:3], w2c[:3], K[:3], fps=12)
    expected = read_vipe(root, (64, 128))
    (root / "rgb" / "walk.mp4").rename(root / "rgb" / "walk.MP4")
    for path in (root, root / "rgb" / "walk.MP4"):
        stack = read_vipe(path, (64, 128))
        assert torch.equal(stack.images, expected.images) and torch.equal(stack.depth, expected.depth)
        assert default_fps(GenerationRequest(vipe_path=str(path))) == 12
    (root / "rgb" / "walk.MP4").rename(root / "rgb" / "walk.mov")
    with pytest.raises(Gen3cInputError) as err:
        read_vipe(root, (64, 128))
    assert str(err.value) == (
        f"ViPE directory {str(root)!r} has no .mp4 in rgb/, only walk.mov: ViPE names its videos rgb/<clip>.mp4; rename it rgb/walk.mp4"
    )


def test_a_vipe_directory_named_like_a_video_is_read_as_a_directory(tmp_path, vipe_dir):
    """'vipe infer walk.mp4 --output out/walk.mp4' makes a directory named walk.mp4, which was
    taken for the clip's video: "ViPE video '…/walk.mp4' does not exist: check --vipe_path"."""
    from gen3c.io.gen3c_sample import check_sample_dir

    root = _copy_vipe(vipe_dir, tmp_path / "walk.mp4")
    assert resolve_vipe(root) == (root, "walk")
    assert len(read_vipe(root, (64, 128), num_frames=2)) == 2
    with pytest.raises(Gen3cInputError, match=r"is a ViPE result \(rgb/, pose/\), not a GEN3C sample: pass it as --vipe_path$"):
        check_sample_dir(root)
    (root / "rgb" / "walk.mp4").unlink()
    (root / "rgb" / "walk.mp4").mkdir()  # the clip's video a folder: named so, where it said "does not exist"
    with pytest.raises(Gen3cInputError, match=r"^ViPE video '.*rgb/walk\.mp4' is a folder, not a video: check --vipe_path$"):
        read_vipe(root / "rgb" / "walk.mp4", (64, 128))


def _copy_vipe(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def _rezip(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


@pytest.mark.parametrize(
    "case, match",
    [
        ("no_depth_folder", r"has no depth/walk\.zip: ViPE ran without depth .*depth_align_model=null"),
        ("no_pose_file", r"lacks pose/walk\.npz"),
        ("pose_count", "frame counts disagree"),
        ("pose_missing_frame", "no poses for frame 3"),
        # Before: "no poses for frame 3", or with every frame there the last row of a repeat, silently.
        ("pose_repeated_frame", r"pose/walk\.npz 'inds' lists frame 2 more than once \(1 repeats in all\): each frame needs one row; re-run 'vipe infer'$"),
        ("non_rigid", r"not rigid \(frame 1\)"),
        ("non_rigid_after_start", r"not rigid \(frame 5\)"),  # the file's frame, not the 4th read from frame 2
        # Before: "intrinsics have a focal length ≤ 0", no frame named (a pose's error names it).
        ("bad_intrinsics", r"intrinsics/walk\.npz intrinsics \(frame 0\) have a focal length ≤ 0: fx and fy must be positive pixels$"),
        ("nan_intrinsics_after_start", r"intrinsics/walk\.npz intrinsics \(frame 4\) contain NaN or infinite values: pass finite fx, fy, cx, cy$"),
        ("intrinsics_of_another_size", r"intrinsics \(frame 3\) \(fx=.*principal point outside the 128×72"),
        # Before: "00001.exr: not a readable OpenEXR image (Unable to open '<python_buffer>' for read)", no fix.
        ("exr_garbage", r"depth/walk\.zip 00001\.exr is text, not an OpenEXR image: re-run 'vipe infer', or write each frame as ViPE does: OpenEXR, its z-depth in one half-float channel Z$"),
        ("exr_cut_short", r"depth/walk\.zip 00001\.exr is a damaged OpenEXR image, cut short or corrupt \(.*\): re-run 'vipe infer', or write each frame as ViPE does: OpenEXR, its z-depth in one half-float channel Z$"),
        ("exr_no_z", r"depth/walk\.zip 00001\.exr has no channel 'Z' \(it has \['R'\]\): ViPE writes depth as channel Z$"),
        # Before: "00002.png: not a readable PNG (cannot identify image file …)", no fix.
        # Before: "is text, not an OpenEXR image" / "not a PNG image", of a member of 0 bytes.
        ("exr_empty", r"depth/walk\.zip 00001\.exr is empty \(0 bytes\): re-run 'vipe infer', or write each frame as ViPE does: OpenEXR, its z-depth in one half-float channel Z$"),
        ("mask_png_empty", r"mask/walk\.zip 00002\.png is empty \(0 bytes\): re-run 'vipe infer', which writes each frame's instance ids as an 8-bit PNG$"),
        ("mask_png_garbage", r"mask/walk\.zip 00002\.png is a NumPy \.npy array, not a PNG image: re-run 'vipe infer', which writes each frame's instance ids as an 8-bit PNG$"),
        ("exr_missing", "no 00004.exr"),
        ("depth_all_nan", r"no valid pixel \(frame 2\) \(all NaN/inf/≤ 0\)"),
        ("depth_all_nan_after_start", r"no valid pixel \(frame 2\) \(all NaN/inf/≤ 0\)"),
        ("mp4_garbage", r"ViPE video .*rgb/walk.mp4. cannot be read"),
        ("pickled_npz", "never unpickled"),
        # Before: zlib.error and NotImplementedError tracebacks.
        ("depth_zip_garbled", r"depth/walk\.zip 00001\.exr cannot be read \(Error -3 while decompressing data.*\): the zip is damaged, re-run 'vipe infer'$"),
        # Before: "has no 00000.exr (frame 0); it holds 0 of the video's 10 frames", with no word of the folder.
        ("depth_zip_of_its_folder", r"depth/walk\.zip holds its frames in a folder \(walk/00000\.exr, …\), not at its top level as ViPE writes them: zip the files without their folder \(zip -j walk\.zip walk/\*\.exr\)$"),
        ("mask_zip_unknown_method", r"mask/walk\.zip 00002\.png cannot be read \(.*compression.*\): the zip is damaged"),
        ("depth_zip_cut_short", r"depth/walk\.zip is not a readable zip file \(File is not a zip file\): it is cut short or damaged, copy it again or re-run 'vipe infer'$"),
        # Before: "has no .mp4 in rgb/, only walk.mp4: … rename it rgb/walk.mp4", the name it has.
        ("video_a_folder", r"has a folder rgb/walk\.mp4/ where ViPE writes the clip's video: put the video file rgb/walk\.mp4 there$"),
        # Before: "lacks pose/walk.npz", which is there, as a folder.
        ("pose_a_folder", r"lacks pose/walk\.npz \(a folder, not a file\) for clip 'walk': re-run 'vipe infer'$"),
        # Before: frame 3 read from 00003.exr, the 3.exr beside it unsaid (now both are read by number).
        ("exr_twice", r"depth/walk\.zip holds 00003\.exr and 3\.exr, two files of frame 3: keep one, named 00003\.exr as ViPE names it$"),
        # Before: "has poses for frames up to 8 but the video has 10 frames", of indices counted from −1.
        # Before: "has no 00000.exr (frame 0); it holds 0 of the video's 10 frames", not what it holds.
        ("depth_zip_of_npy", r"depth/walk\.zip has no 00000\.exr \(frame 0\); it holds 0 of the video's 10 frames \(its files: 00000\.npy, 00001\.npy, 00002\.npy, … \(10 in all\)\): ViPE writes one \{frame:05d\}\.exr a frame$"),
        ("pose_inds_negative", r"pose/walk\.npz 'inds' lists frame -1: frame indices start at 0 \(saved counting from another frame\?\); re-run 'vipe infer'$"),
        # Links whose targets stayed on another machine. Before: "has no depth/walk.zip: ViPE ran
        # without depth (pipeline.post.depth_align_model=null) …", "has no video in rgb/", "lacks pose/walk.npz".
        ("depth_link_dangling", r"has no readable depth/walk\.zip \(a link to '/gone/walk\.zip', which does not exist here: copy what it points to, not the link\)$"),
        ("video_link_dangling", r"has no video in rgb/: rgb/walk\.mp4 \(a link to '/gone/walk\.mp4', which does not exist here: copy what it points to, not the link\)$"),
        # Before: "… not the link) for clip 'walk': re-run 'vipe infer'", which makes no file the link points to.
        ("pose_link_dangling", r"lacks pose/walk\.npz \(a link to '/gone/walk\.npz', which does not exist here: copy what it points to, not the link\) for clip 'walk'$"),
        # A link gone and a file never written: each its own fix.
        ("pose_link_dangling_intrinsics_absent", r"lacks pose/walk\.npz \(a link to .*not the link\), intrinsics/walk\.npz for clip 'walk': re-run 'vipe infer' for intrinsics/walk\.npz$"),
        # One camera for every frame. Before: "'data' has shape (3, 3): expected (N, 4)", no fix.
        ("intrinsics_one_matrix", r"intrinsics/walk\.npz 'data' has shape \(3, 3\), one camera: ViPE keeps fx, fy, cx, cy a frame, listed by 'inds': save np\.tile\(\[K\[0, 0\], K\[1, 1\], K\[0, 2\], K\[1, 2\]\], \(N, 1\)\) with inds=np\.arange\(N\) for the video's N frames$"),
        ("intrinsics_one_row", r"intrinsics/walk\.npz 'data' has shape \(4,\), one camera: .* save np\.tile\(data, \(N, 1\)\) with inds=np\.arange\(N\)"),
    ],
)
def test_vipe_bad_input(case, match, vipe_dir, tmp_path, clip):
    root = _copy_vipe(vipe_dir, tmp_path / "v")
    depth = clip[1]
    pose = root / "pose" / "walk.npz"
    start = 1 if case == "depth_all_nan_after_start" else 2 if case in ("non_rigid_after_start", "nan_intrinsics_after_start") else 0
    if case == "no_depth_folder":
        import shutil

        shutil.rmtree(root / "depth")
    elif case == "no_pose_file":
        pose.unlink()
    elif case == "pose_count":
        # Read whole and closed at once: an np.load left in this frame (which the traceback that
        # pytest.raises keeps holds in a cycle) kept the file open until the collector closed it,
        # with a ResourceWarning "unclosed file …pose/walk.npz" in whatever test ran then.
        data = dict(np.load(pose))
        np.savez(pose, data=np.concatenate([data["data"]] * 2), inds=np.arange(2 * T))
    elif case == "pose_repeated_frame":  # every frame present, frame 2 twice with another pose
        data = dict(np.load(pose))
        np.savez(pose, data=np.concatenate([data["data"], data["data"][:1]]), inds=np.append(data["inds"], 2))
    elif case == "pose_missing_frame":
        data = dict(np.load(pose))
        keep = np.arange(T) != 3
        np.savez(pose, data=data["data"][keep], inds=data["inds"][keep])
    elif case in ("non_rigid", "non_rigid_after_start"):
        data = dict(np.load(pose))
        data["data"] = data["data"].copy()
        data["data"][1 if case == "non_rigid" else 5, :3, :3] *= 2.0
        np.savez(pose, **data)
    elif case == "intrinsics_of_another_size":  # e.g. ViPE run on the full-size video, the frames resized since
        intr = dict(np.load(root / "intrinsics" / "walk.npz"))
        intr["data"] = intr["data"].copy()
        intr["data"][3:] *= 4
        np.savez(root / "intrinsics" / "walk.npz", **intr)
    elif case == "nan_intrinsics_after_start":  # the file's frame, read from frame 2
        intr = dict(np.load(root / "intrinsics" / "walk.npz"))
        intr["data"] = intr["data"].copy()
        intr["data"][4, 2] = np.nan
        np.savez(root / "intrinsics" / "walk.npz", **intr)
    elif case == "bad_intrinsics":
        intr = dict(np.load(root / "intrinsics" / "walk.npz"))
        intr["data"] = intr["data"].copy()
        intr["data"][0, 0] = -5
        np.savez(root / "intrinsics" / "walk.npz", **intr)
    elif case in ("exr_garbage", "exr_empty", "exr_cut_short", "exr_no_z", "exr_missing", "depth_all_nan", "depth_all_nan_after_start", "depth_zip_of_its_folder"):
        members = {f"{i:05d}.exr": exr_bytes(depth[i]) for i in range(T)}
        if case == "depth_zip_of_its_folder":  # zip -r walk.zip walk/, with macOS's resource forks
            members = {path: data for name, data in members.items() for path in (f"walk/{name}", f"__MACOSX/walk/._{name}")}
        elif case == "exr_garbage":
            members["00001.exr"] = b"not an exr at all"
        elif case == "exr_empty":
            members["00001.exr"] = b""
        elif case == "exr_cut_short":
            members["00001.exr"] = exr_bytes(depth[1])[:300]
        elif case == "exr_no_z":
            members["00001.exr"] = exr_bytes(depth[1], channel="R")
        elif case == "exr_missing":
            del members["00004.exr"]
        else:
            members["00002.exr"] = exr_bytes(np.full_like(depth[2], np.nan))
        _rezip(root / "depth" / "walk.zip", members)
    elif case == "video_a_folder":  # a sync tool or an unpacked archive made the video a folder
        (root / "rgb" / "walk.mp4").unlink()
        (root / "rgb" / "walk.mp4").mkdir()
    elif case == "pose_a_folder":
        pose.unlink()
        pose.mkdir()
    elif case == "exr_twice":
        with zipfile.ZipFile(root / "depth" / "walk.zip", "a") as z:
            z.writestr("3.exr", exr_bytes(depth[3] * 2))
    elif case == "depth_zip_of_npy":  # depth saved by another tool
        _rezip(root / "depth" / "walk.zip", {f"{i:05d}.npy": depth[i].tobytes() for i in range(T)})
    elif case == "pose_inds_negative":
        data = dict(np.load(pose))
        np.savez(pose, data=data["data"], inds=data["inds"] - 1)
    elif "_link_dangling" in case:
        file = {"depth": root / "depth" / "walk.zip", "video": root / "rgb" / "walk.mp4", "pose": pose}[case.split("_")[0]]
        file.unlink()
        file.symlink_to(f"/gone/{file.name}")
        if case.endswith("_intrinsics_absent"):
            (root / "intrinsics" / "walk.npz").unlink()
    elif case in ("intrinsics_one_matrix", "intrinsics_one_row"):
        intr = np.load(root / "intrinsics" / "walk.npz")["data"][0]
        one = np.array([[intr[0], 0, intr[2]], [0, intr[1], intr[3]], [0, 0, 1]], np.float32) if case == "intrinsics_one_matrix" else intr
        np.savez(root / "intrinsics" / "walk.npz", data=one, inds=np.arange(len(one)))
    elif case == "mp4_garbage":
        (root / "rgb" / "walk.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 300)
    elif case == "pickled_npz":
        np.savez(pose, data=np.array([{"a": 1}], dtype=object), inds=np.arange(1))
    elif case == "depth_zip_garbled":
        damage_zip(root / "depth" / "walk.zip", "00001.exr", "stream")
    elif case == "mask_zip_unknown_method":
        damage_zip(root / "mask" / "walk.zip", "00002.png", "method")
    elif case in ("mask_png_garbage", "mask_png_empty"):  # ids saved by another tool under ViPE's names, or none
        with zipfile.ZipFile(root / "mask" / "walk.zip") as z:
            members = {name: z.read(name) for name in z.namelist()}
        members["00002.png"] = b"\x93NUMPY" + bytes(100) if case == "mask_png_garbage" else b""
        _rezip(root / "mask" / "walk.zip", members)
    elif case == "depth_zip_cut_short":
        data = (root / "depth" / "walk.zip").read_bytes()
        (root / "depth" / "walk.zip").write_bytes(data[: len(data) - 40])
    with pytest.raises(Gen3cInputError, match=match) as err:
        read_vipe(root, (64, 128), start=start)
    assert "\n" not in str(err.value)


def test_a_vipe_mask_zip_that_is_a_dead_link_is_noted_and_read_without_instance_ids(vipe_dir, tmp_path):
    """mask/<clip>.zip, optional and not used for the cache, as a link whose target is gone (a folder
    copied with its links) was skipped without a word: instance_ids None as if ViPE wrote none."""
    root = _copy_vipe(vipe_dir, tmp_path / "v")
    mask = root / "mask" / "walk.zip"
    mask.unlink()
    mask.symlink_to("/gone/walk.zip")
    with pytest.warns(UserWarning) as caught:
        stack = read_vipe(root, (64, 128), num_frames=2)
    assert stack.instance_ids is None and [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == [
        f"ViPE directory {str(root)!r} mask/walk.zip (a link to '/gone/walk.zip', which does not exist here: copy what it points to, "
        "not the link): read without its instance ids (FrameStack.instance_ids is None)"]
    mask.unlink()  # no mask zip at all (ViPE run with init.instance=null): nothing to say
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_vipe(root, (64, 128), num_frames=2).instance_ids is None


def test_vipe_poses_of_three_rows_are_completed(vipe_dir, tmp_path):
    """ViPE poses saved as (N, 3, 4) [R | t] were refused ("'data' has shape (10, 3, 4): expected
    (N, 4, 4)"): the row they lack is the constant [0 0 0 1] of every rigid pose, so they are read
    as the (N, 4, 4) they are the top of."""
    root = _copy_vipe(vipe_dir, tmp_path / "v")
    pose = root / "pose" / "walk.npz"
    data = dict(np.load(pose))
    np.savez(pose, data=data["data"][:, :3, :], inds=data["inds"])
    assert torch.equal(read_vipe(root, (64, 128), num_frames=4).w2c, read_vipe(vipe_dir, (64, 128), num_frames=4).w2c)


def test_a_depth_zip_whose_files_are_numbered_otherwise_is_read_by_their_numbers(vipe_dir, tmp_path, clip):
    """A depth or mask zip made again by hand (0.exr … or 000000.exr …, not ViPE's 00000.exr) was
    refused as "has no 00000.exr (frame 0); it holds 10 of the video's 10 frames": each file is
    now the frame its number names, as ViPE's own 5 digits are."""
    root = _copy_vipe(vipe_dir, tmp_path / "v")
    expected = read_vipe(vipe_dir, (64, 128), start=2, num_frames=4)
    for sub, suffix in (("depth", ".exr"), ("mask", ".png")):
        with zipfile.ZipFile(vipe_dir / sub / "walk.zip") as z:
            members = {name: z.read(name) for name in z.namelist()}
        digits = {"depth": "{}", "mask": "{:06d}"}[sub]
        _rezip(root / sub / "walk.zip", {digits.format(int(name[: -len(suffix)])) + suffix: data for name, data in members.items()})
    stack = read_vipe(root, (64, 128), start=2, num_frames=4)
    assert torch.equal(stack.depth, expected.depth) and torch.equal(stack.instance_ids, expected.instance_ids)
    assert stack.frame_indices == [2, 3, 4, 5]


def test_sample_directory_round_trip(sample_dir, clip):
    rgb, depth, ids, w2c, K = clip
    stack = read_sample(sample_dir, (64, 128), num_frames=6)
    assert len(stack) == 6 and stack.size == (64, 128)
    assert torch.allclose(stack.w2c, w2c[:6], atol=1e-6)
    assert torch.allclose(stack.depth[3], torch.from_numpy(depth[3, 4:68]), rtol=1e-3)  # float16 in depth.npz
    assert psnr(stack.images.permute(0, 2, 3, 1).numpy(), rgb[:6, 4:68]) > 33


def test_sample_depth_and_mask_of_one_channel_read_as_the_pt_holds_them(tmp_path, sample_dir, clip):
    """(T, 1, H, W) depth and mask, the legacy .pt's layout kept when converting it to a sample
    directory, read as (T, H, W) ones (they were refused: "has shape (10, 1, 72, 128): expected (*, *, *)")."""
    import shutil

    depth = clip[1]
    folder = shutil.copytree(sample_dir, tmp_path / "s")
    np.savez_compressed(folder / "depth.npz", depth=depth[:, None].astype(np.float16))
    np.savez_compressed(folder / "mask.npz", mask=(depth > 4.0)[:, None])
    stack = read_sample(folder, (64, 128), start=1, num_frames=4)
    plain = read_sample(sample_dir, (64, 128), start=1, num_frames=4)
    assert torch.equal(stack.valid, torch.from_numpy(depth[1:5, 4:68] > 4.0))
    assert torch.equal(stack.depth[stack.valid], plain.depth[stack.valid]) and torch.equal(stack.images, plain.images)


def test_a_sample_whose_video_suffix_is_upper_case_is_read(tmp_path, clip):
    """rgb.MP4 (a camera's, a Windows copy's suffix) made the folder "lack rgb.mp4", and the
    output's rate, the video's, fell back to 24. Two such files are named, not one taken."""
    from gen3c.pipelines.request import GenerationRequest
    from gen3c.pipelines.settings import default_fps

    rgb, depth, ids, w2c, K = clip
    folder = write_sample(tmp_path / "s", rgb[:3], depth[:3], depth[:3] > 0, w2c[:3], K[:3], fps=12)
    expected = read_sample(folder, (64, 128))
    (folder / "rgb.mp4").rename(folder / "rgb.MP4")
    stack = read_sample(folder, (64, 128))
    assert torch.equal(stack.images, expected.images) and torch.equal(stack.depth, expected.depth) and stack.fps == 12
    assert default_fps(GenerationRequest(input_image_path=str(folder))) == 12
    with pytest.raises(Gen3cInputError, match=r"^sample '.*rgb\.MP4' is one file of a GEN3C sample: pass its folder"):
        read_sample(folder / "rgb.MP4", (64, 128))
    with pytest.raises(Gen3cInputError, match=r"is a GEN3C sample directory \(rgb\.mp4, .*\), not a ViPE result: pass it as --input_image_path$"):
        resolve_vipe(folder)
    (folder / "RGB.mp4").write_bytes((folder / "rgb.MP4").read_bytes())
    with pytest.raises(Gen3cInputError, match=(
        rf"^sample directory '{re.escape(str(folder))}' holds RGB\.mp4 and rgb\.MP4, none named rgb\.mp4: "
        r"keep the one that belongs to the sample, renamed rgb\.mp4$"
    )):
        read_sample(folder, (64, 128))


def test_a_vipe_result_given_as_a_sample_says_to_pass_vipe_path(vipe_dir):
    with pytest.raises(Gen3cInputError, match="is a ViPE result .*--vipe_path"):
        read_sample(vipe_dir, (64, 128))


def test_a_file_of_a_sample_names_its_folder(sample_dir, tmp_path):
    with pytest.raises(Gen3cInputError, match=rf"is one file of a GEN3C sample: pass its folder, '{sample_dir}'"):
        read_sample(sample_dir / "rgb.mp4", (64, 128))
    (tmp_path / "clip.mp4").write_bytes(b"")
    with pytest.raises(Gen3cInputError, match="is a file but not a .pt sample"):
        read_sample(tmp_path / "clip.mp4", (64, 128))
    with pytest.raises(Gen3cInputError, match="does not exist"):
        read_sample(tmp_path / "missing", (64, 128))


def test_sample_mask_leaves_pixels_out(tmp_path, clip):
    rgb, depth, ids, w2c, K = clip
    folder = write_sample(tmp_path / "s", rgb[:3], depth[:3], ids[:3] == 0, w2c[:3], K[:3])
    stack = read_sample(folder, (72, 128))
    assert not bool(stack.valid[torch.from_numpy(ids[:3] > 0)].any())


def test_every_reader_lets_in_the_pixels_whose_mask_is_above_0_as_gen3c_splats_them(tmp_path, clip):
    """GEN3C multiplies each point's splatting weight by its mask value and draws a pixel where
    the weights sum > 0 (``forward_warp_utils_pytorch.py``): a mask > 0 (a fraction too) lets a
    point in, ≤ 0 (−1 too) does not. The sample folder, the ``.pt`` sample and the multi-view npz
    read the same mask alike (they used to differ: −1 was in for one, 0.25 out for the others;
    and a float mask.npz was refused as "holds float32 values: expected booleans or …")."""
    rgb, depth, ids, w2c, K = clip
    n = 3
    columns = np.arange(W)
    int_values, float_values = np.array([-1, 0, 1, 2], np.int8), np.array([-1, 0, 0.25, 1, 2], np.float32)
    int_mask = np.broadcast_to(int_values[columns % 4], (n, H, W))
    float_mask = np.broadcast_to(float_values[columns % 5], (n, H, W))
    depth_ok = torch.from_numpy(np.isfinite(depth[:n]) & (depth[:n] > 0))
    assert bool(depth_ok.all())  # the wall is behind every pixel: the mask alone decides

    folder = write_sample(tmp_path / "s", rgb[:n], depth[:n], depth[:n] > 0, w2c[:n], K[:n])
    np.savez_compressed(folder / "mask.npz", mask=int_mask)  # integer masks are accepted
    image = torch.from_numpy(rgb[:n]).permute(0, 3, 1, 2).float() / 127.5 - 1
    torch.save((image, torch.from_numpy(depth[:n])[:, None], torch.from_numpy(float_mask.copy())[:, None], w2c[:n], K[:n]), tmp_path / "s.pt")
    mv = write_multiview(tmp_path / "mv.npz", rgb[:n], depth[:n], float_mask, K[:n], w2c[:n], w2c)

    int_in = torch.from_numpy(np.broadcast_to(columns % 4 >= 2, (n, H, W)).copy())  # 1 and 2
    float_in = torch.from_numpy(np.broadcast_to(columns % 5 >= 2, (n, H, W)).copy())  # 0.25, 1 and 2
    assert torch.equal(read_sample(folder, (H, W)).valid, int_in)
    assert torch.equal(read_sample(tmp_path / "s.pt", (H, W)).valid, float_in)
    assert torch.equal(read_multiview(mv, (H, W)).keys.valid, float_in)
    np.savez_compressed(folder / "mask.npz", mask=float_mask)
    assert torch.equal(read_sample(folder, (H, W)).valid, float_in)


def test_a_mask_that_lets_no_pixel_of_a_frame_in_is_refused_naming_the_mask_and_frame(tmp_path, clip):
    """A frame whose own mask drops every pixel with depth would enter the cache as nothing (its
    target frame rendered black, or, at frame 0, a "no valid depth" error that blames the depth):
    each reader refuses it, naming the mask and the frame. Most likely the mask means "drop"."""
    rgb, depth, ids, w2c, K = clip
    n = 3
    mask = np.ones((n, H, W), bool)
    mask[1] = False
    folder = write_sample(tmp_path / "s", rgb[:n], depth[:n], mask, w2c[:n], K[:n])
    with pytest.raises(Gen3cInputError, match=r"depth.npz: mask.npz lets in no pixel of frame 1 that has a valid depth") as err:
        read_sample(folder, (H, W))
    assert "\n" not in str(err.value)
    assert len(read_sample(folder, (H, W), num_frames=1)) == 1  # frame 0 alone is fine
    image = torch.from_numpy(rgb[:n]).permute(0, 3, 1, 2).float() / 127.5 - 1
    torch.save((image, torch.from_numpy(depth[:n])[:, None], torch.from_numpy(mask)[:, None], w2c[:n], K[:n]), tmp_path / "s.pt")
    with pytest.raises(Gen3cInputError, match=r"s.pt' depth: its mask lets in no pixel of frame 1"):
        read_sample(tmp_path / "s.pt", (H, W))
    mv = write_multiview(tmp_path / "mv.npz", rgb[:n], depth[:n], mask, K[:n], w2c[:n], w2c)
    with pytest.raises(Gen3cInputError, match=r"mask_key_frames lets in no pixel of frame 1"):
        read_multiview(mv, (H, W))
    # Pixels the mask lets in whose depth is NaN (sky, placed far away) are enough.
    sky = depth[:n].copy()
    sky[1, : H // 2] = np.nan
    mask[1, : H // 2] = True
    valid = read_multiview(write_multiview(tmp_path / "sky.npz", rgb[:n], sky, mask, K[:n], w2c[:n], w2c), (H, W)).keys.valid
    assert torch.equal(valid[1], torch.from_numpy(mask[1]))


def test_nan_and_inf_depth_sit_far_away_as_in_gen3c(tmp_path, vipe_dir, clip):
    """ViPE and samples with NaN/inf depth (sky) are read as GEN3C treats them, with a note."""
    rgb, depth, ids, w2c, K = clip
    root = _copy_vipe(vipe_dir, tmp_path / "v")
    bad = depth[2].copy()
    bad[5, 5], bad[6, 6] = np.nan, np.inf
    _rezip(root / "depth" / "walk.zip", {**{f"{i:05d}.exr": exr_bytes(depth[i]) for i in range(T)}, "00002.exr": exr_bytes(bad)})
    with pytest.warns(UserWarning, match=r"2 pixels .* of NaN/inf depth sit far away"):
        stack = read_vipe(root, (H, W))
    assert stack.depth[2, 5, 5] == stack.depth[2, 6, 6] == FAR_DEPTH and stack.valid[2, 5, 5] and stack.valid[2, 6, 6]
    with pytest.warns(UserWarning, match="left out"):
        masked = read_vipe(root, (H, W), mask_invalid_depth=True)
    assert masked.depth[2, 5, 5] == 0 and not masked.valid[2, 5, 5]
    # A sample's own mask already leaves its NaN pixels out: no note about them.
    nan_depth = depth[:3].copy()
    nan_depth[:, :4] = np.nan
    folder = write_sample(tmp_path / "s", rgb[:3], nan_depth, ~np.isnan(nan_depth), w2c[:3], K[:3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stack = read_sample(folder, (H, W))
    assert not stack.valid[:, :4].any() and stack.valid[:, 4:].all()


def test_legacy_pt_weights_only_and_trust(tmp_path, clip):
    rgb, depth, ids, w2c, K = clip
    image = torch.from_numpy(rgb[:3]).permute(0, 3, 1, 2).float() / 127.5 - 1
    tensors = (image, torch.from_numpy(depth[:3])[:, None], torch.ones(3, 1, H, W), w2c[:3], K[:3])
    torch.save(tensors, tmp_path / "sample.pt")
    stack = read_sample(tmp_path / "sample.pt", (64, 128))
    assert len(stack) == 3 and torch.allclose(stack.w2c, w2c[:3])
    torch.save((*tensors[:4], Opaque(K[:3])), tmp_path / "pickled.pt")
    with pytest.raises(Gen3cInputError, match=r"convert it to a sample directory \(rgb\.mp4, .*\), or pass trust_checkpoint=True if you trust its source$"):
        read_sample(tmp_path / "pickled.pt", (64, 128))
    with pytest.raises(Gen3cInputError, match=r", or pass --trust_checkpoint if you trust its source$"):
        read_sample(tmp_path / "pickled.pt", (64, 128), grant_trust="pass --trust_checkpoint")



def test_a_pt_samples_poses_of_three_rows_are_completed(tmp_path, clip):
    """A .pt sample's w2c saved as (T, 3, 4) [R | t] was refused ("w2c has shape (3, 3, 4)"), while a
    sample directory's camera.npz and ViPE's poses of that shape were completed with [0 0 0 1]: now
    the .pt's are too; a w2c of another shape is still refused."""
    rgb, depth, ids, w2c, K = clip
    image = torch.from_numpy(rgb[:3]).permute(0, 3, 1, 2).float() / 127.5 - 1
    rest = (torch.from_numpy(depth[:3])[:, None], torch.ones(3, 1, H, W))
    torch.save((image, *rest, w2c[:3], K[:3]), tmp_path / "full.pt")
    torch.save((image, *rest, w2c[:3, :3].clone(), K[:3]), tmp_path / "rows.pt")
    assert torch.equal(read_sample(tmp_path / "rows.pt", (64, 128)).w2c, read_sample(tmp_path / "full.pt", (64, 128)).w2c)
    for bad in (w2c[:3, :2].clone(), w2c[:3, :3, :3].clone(), w2c[:2, :3].clone()):
        torch.save((image, *rest, bad, K[:3]), tmp_path / "bad.pt")
        with pytest.raises(Gen3cInputError, match=rf"bad\.pt' w2c has shape \({bad.shape[0]}, {bad.shape[1]}, {bad.shape[2]}\): expected .*\(T, 4, 4\) or \(T, 3, 4\)"):
            read_sample(tmp_path / "bad.pt", (64, 128))


def test_a_pt_sample_that_is_no_torch_file_says_what_it_is(tmp_path, clip):
    """Before: an HTML page or a .npy saved as .pt was said to hold "Python objects that only full
    unpickling can load", with the advice to trust it; trusting it then failed anyway."""
    rgb, depth, ids, w2c, K = clip
    image = torch.from_numpy(rgb[:2]).permute(0, 3, 1, 2).float() / 127.5 - 1
    tensors = (image, torch.from_numpy(depth[:2])[:, None], torch.ones(2, 1, H, W), w2c[:2], K[:2])
    torch.save(tensors, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)  # a pickle, torch < 1.6's format
    assert torch.allclose(read_sample(tmp_path / "legacy.pt", (64, 128)).w2c, w2c[:2])
    (tmp_path / "page.pt").write_text("<!DOCTYPE html><html>Access denied</html>")
    np.save(tmp_path / "array.npy", np.zeros(3))
    (tmp_path / "array.npy").rename(tmp_path / "array.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    for stem, what in (("page", "text"), ("array", r"a NumPy \.npy array"), ("empty", "empty")):
        with pytest.raises(Gen3cInputError, match=rf"^sample '.*{stem}\.pt' is {what}, not a PyTorch \.pt file: pass a GEN3C sample directory \(rgb\.mp4, .*\) or a \.pt saved with torch\.save$"):
            read_sample(tmp_path / f"{stem}.pt", (64, 128))

def test_legacy_pt_errors_name_the_files_frame(tmp_path, clip):
    """A .pt sample read from a starting frame reads only the frames used, and an error names the
    file's frame (frame 4 read from frame 3 is frame 4, not the second frame read)."""
    rgb, depth, ids, w2c, K = clip
    image = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 127.5 - 1
    bad_depth = torch.from_numpy(depth)[:, None].clone()
    bad_depth[4] = float("inf")
    torch.save((image, bad_depth, torch.ones(T, 1, H, W), w2c, K), tmp_path / "depth.pt")
    with pytest.raises(Gen3cInputError, match=r"depth has no valid pixel \(frame 4\)"):
        read_sample(tmp_path / "depth.pt", (64, 128), start=3)
    assert read_sample(tmp_path / "depth.pt", (64, 128), start=5).frame_indices == list(range(5, T))  # frame 4 is not read
    bright = image.clone()
    bright[6] = 3.0
    torch.save((bright, torch.from_numpy(depth)[:, None], torch.ones(T, 1, H, W), w2c, K), tmp_path / "image.pt")
    with pytest.raises(Gen3cInputError, match=r"image \(frame 6\) must be finite and in \[−1, 1\]"):
        read_sample(tmp_path / "image.pt", (64, 128), start=2, num_frames=6)


def test_a_pt_samples_image_in_0_1_is_noted(tmp_path, clip):
    """[0, 1] colours (torchvision's to_tensor) in a .pt, whose image is [−1, 1]: within its range,
    so read silently as a washed-out video whose black is mid-grey. Now noted; [−1, 1] is not."""
    rgb, depth, ids, w2c, K = clip
    unit = torch.from_numpy(rgb[:4]).permute(0, 3, 1, 2).float() / 255
    tensors = (torch.from_numpy(depth[:4])[:, None], torch.ones(4, 1, H, W), w2c[:4], K[:4])
    torch.save((unit, *tensors), tmp_path / "unit.pt")
    with pytest.warns(UserWarning) as caught:
        read_sample(tmp_path / "unit.pt", (64, 128), start=1)
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == [
        f"sample {str(tmp_path / 'unit.pt')!r} image has no value below 0 in frames 1…3, so its darkest pixel is mid-grey in [−1, 1]: "
        "if it holds [0, 1] colours, save image * 2 - 1"
    ]
    torch.save((unit * 2 - 1, *tensors), tmp_path / "signed.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_sample(tmp_path / "signed.pt", (64, 128), start=1)


class Opaque:
    """A pickled object that ``weights_only`` loading refuses."""

    def __init__(self, value):
        self.value = value


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing_depth", "lacks depth.npz"),
        ("count_mismatch", r"frame counts that disagree \(rgb.mp4 10, depth.npz 9"),
        ("wrong_key", "no key 'depth'"),
        ("wrong_shape", r"camera.npz 'w2c' has shape \(10, 3, 3\): expected \(T, 4, 4\)$"),  # it said (*, 4, 4)
        ("inf_frame", r"depth.npz has no valid pixel \(frame 4\)"),
        ("inf_frame_after_start", r"depth.npz has no valid pixel \(frame 4\)"),  # the file's frame, read from frame 3
        ("non_rigid_after_start", r"camera.npz w2c are not rigid \(frame 6\)"),
        ("normalised_intrinsics", r"camera.npz intrinsics \(frame 0\) \(fx=.*look normalised.*fx, cx × 128 and fy, cy × 72"),
        ("intrinsics_of_another_size", r"camera.npz intrinsics \(frame 7\) \(fx=.*principal point outside the 128×72"),
        ("size_mismatch", "rgb.mp4 is 72×128 but depth.npz is 36×64"),
        ("start_past_end", "--vipe_starting_frame_idx 12 is outside"),
        # Before: "holds uint16 values: expected floats", without the conversion.
        # Before: "lacks depth.npz", which is there, as a link to another machine's file.
        ("nan_intrinsics_after_start", r"camera\.npz intrinsics \(frame 5\) contain NaN or infinite values: pass finite fx, fy, cx, cy$"),
        ("depth_link_dangling", r"lacks depth\.npz \(a link to '/gone/depth\.npz', which does not exist here: copy what it points to, not the link\): a GEN3C sample holds"),
        ("millimetre_depth", r"depth\.npz 'depth' holds uint16 values, not float z-depth: save it as floats in the poses' units \(integer millimetres: depth\.astype\(np\.float32\) / 1000 for metres\)$"),
        # Before: "is not a readable .npz file (File is not a zip file)", with no word of the fix.
        ("truncated_camera", r"camera\.npz' is not a readable \.npz file \(File is not a zip file\): it is cut short or damaged, save it again \(numpy\.savez\) or copy it again$"),
        # Before: "has no key 'w2c' (it holds ['c2w', 'intrinsics']): save the array under 'w2c'", which
        # saved camera-to-world poses as world-to-camera ones.
        # Before: "has shape (10, 4): expected (T, 3, 3)" and "(10, 72, 128, 1): expected (T, H, W)", no fix.
        ("intrinsics_rows", r"camera\.npz 'intrinsics' has shape \(10, 4\), rows of fx, fy, cx, cy as ViPE saves them: save \(T, 3, 3\) matrices \[\[fx, 0, cx\], \[0, fy, cy\], \[0, 0, 1\]\] in pixels of the frames$"),
        # Before: "has shape (4,): expected (T, 3, 3)", no word of the row it is.
        ("intrinsics_one_row", r"camera\.npz 'intrinsics' has shape \(4,\), one row of fx, fy, cx, cy: save the matrix \[\[fx, 0, cx\], \[0, fy, cy\], \[0, 0, 1\]\] in pixels of the frames, \(3, 3\) for every frame or \(T, 3, 3\) one a frame$"),
        # Before: "rows of fx, fy, cx, cy as ViPE saves them", for one 4×4 matrix of a 10-frame sample.
        ("intrinsics_4x4", r"camera\.npz 'intrinsics' has shape \(4, 4\): expected \(T, 3, 3\)$"),
        ("depth_trailing_axis", r"depth\.npz 'depth' has shape \(10, 72, 128, 1\): expected \(T, H, W\): save it without its last axis of 1 \(np\.squeeze\(array, -1\)\)$"),
        ("c2w_key", r"camera\.npz' has no key 'w2c' but 'c2w' \(it holds \['c2w', 'intrinsics'\]\): gen3c reads world-to-camera poses, save their inverse \(np\.linalg\.inv\(c2w\)\) under 'w2c'$"),
        # Before: "np.linalg.inv(c2w)", which refuses 3×4 [R | t] rows (camera.npz takes them for w2c).
        ("c2w_key_rows", r"camera\.npz' has no key 'w2c' but 'c2w' \(it holds \['c2w', 'intrinsics'\]\): gen3c reads world-to-camera poses, save their inverse \(each 3×4 \[R \| t\] of 'c2w' with the row \[0, 0, 0, 1\] added, np\.linalg\.inv of the 4×4\) under 'w2c'$"),
    ],
)
def test_sample_bad_input(case, match, tmp_path, sample_dir, clip):
    import shutil

    folder = shutil.copytree(sample_dir, tmp_path / "s")
    depth = clip[1]
    start = 0
    if case == "missing_depth":
        (folder / "depth.npz").unlink()
    elif case == "count_mismatch":
        np.savez(folder / "depth.npz", depth=depth[:9].astype(np.float16))
    elif case == "wrong_key":
        np.savez(folder / "depth.npz", z=depth.astype(np.float16))
    elif case == "intrinsics_rows":
        cam = dict(np.load(folder / "camera.npz"))
        K = cam["intrinsics"]
        np.savez(folder / "camera.npz", w2c=cam["w2c"], intrinsics=np.stack([K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]], 1))
    elif case == "intrinsics_one_row":
        cam = dict(np.load(folder / "camera.npz"))
        K = cam["intrinsics"][0]
        np.savez(folder / "camera.npz", w2c=cam["w2c"], intrinsics=np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2]]))
    elif case == "intrinsics_4x4":
        cam = dict(np.load(folder / "camera.npz"))
        K = np.eye(4)
        K[:3, :3] = cam["intrinsics"][0]
        np.savez(folder / "camera.npz", w2c=cam["w2c"], intrinsics=K)
    elif case == "depth_trailing_axis":
        np.savez(folder / "depth.npz", depth=depth[..., None].astype(np.float16))
    elif case == "c2w_key":
        cam = dict(np.load(folder / "camera.npz"))
        np.savez(folder / "camera.npz", c2w=np.linalg.inv(cam["w2c"]), intrinsics=cam["intrinsics"])
    elif case == "c2w_key_rows":
        cam = dict(np.load(folder / "camera.npz"))
        np.savez(folder / "camera.npz", c2w=np.linalg.inv(cam["w2c"])[:, :3], intrinsics=cam["intrinsics"])
    elif case == "wrong_shape":
        cam = dict(np.load(folder / "camera.npz"))
        np.savez(folder / "camera.npz", w2c=cam["w2c"][:, :3, :3], intrinsics=cam["intrinsics"])  # rotations alone
    elif case in ("inf_frame", "inf_frame_after_start"):
        bad = depth.copy()
        bad[4] = np.inf
        np.savez(folder / "depth.npz", depth=bad)
        start = 3 if case == "inf_frame_after_start" else 0
    elif case == "non_rigid_after_start":
        cam = dict(np.load(folder / "camera.npz"))
        cam["w2c"][6, :3, :3] *= 0.5
        np.savez(folder / "camera.npz", **cam)
        start = 3
    elif case in ("normalised_intrinsics", "intrinsics_of_another_size"):
        cam = dict(np.load(folder / "camera.npz"))
        if case == "normalised_intrinsics":  # fractions of the image size, as MoGe returns them
            cam["intrinsics"][:, 0] /= W
            cam["intrinsics"][:, 1] /= H
        else:
            cam["intrinsics"][7:, :2] *= 4
        np.savez(folder / "camera.npz", **cam)
    elif case == "size_mismatch":
        np.savez(folder / "depth.npz", depth=depth[:, ::2, ::2])
        np.savez(folder / "mask.npz", mask=depth[:, ::2, ::2] > 0)
    elif case == "start_past_end":
        start = 12
    elif case == "nan_intrinsics_after_start":
        cam = dict(np.load(folder / "camera.npz"))
        cam["intrinsics"][5, 0, 0] = np.nan
        np.savez(folder / "camera.npz", **cam)
        start = 3
    elif case == "depth_link_dangling":
        (folder / "depth.npz").unlink()
        (folder / "depth.npz").symlink_to("/gone/depth.npz")
    elif case == "millimetre_depth":  # a depth camera's 16-bit millimetres
        np.savez(folder / "depth.npz", depth=(depth * 1000).astype(np.uint16))
    elif case == "truncated_camera":  # a copy cut short: the zip's directory at its end is missing
        data = (folder / "camera.npz").read_bytes()
        (folder / "camera.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(Gen3cInputError, match=match) as err:
        read_sample(folder, (64, 128), start=start)
    assert "\n" not in str(err.value)


def test_a_samples_poses_of_three_rows_are_completed(tmp_path, sample_dir):
    """camera.npz 'w2c' saved as (T, 3, 4) [R | t] was refused ("has shape (10, 3, 4): expected
    (T, 4, 4)"), while ViPE's poses and --camera_file read 3×4: the row they lack is the constant
    [0 0 0 1] of every rigid pose, so they are read as the (T, 4, 4) they are the top of."""
    import shutil

    folder = shutil.copytree(sample_dir, tmp_path / "s")
    cam = dict(np.load(folder / "camera.npz"))
    np.savez(folder / "camera.npz", w2c=cam["w2c"][:, :3], intrinsics=cam["intrinsics"])
    stack, expected = read_sample(folder, (64, 128), start=2, num_frames=3), read_sample(sample_dir, (64, 128), start=2, num_frames=3)
    assert torch.equal(stack.w2c, expected.w2c) and torch.equal(stack.K, expected.K)
    np.savez(folder / "camera.npz", w2c=cam["w2c"][:9, :3], intrinsics=cam["intrinsics"])
    with pytest.raises(Gen3cInputError, match=r"frame counts that disagree \(rgb\.mp4 10, depth\.npz 10, mask\.npz 10, camera\.npz w2c 9, "):
        read_sample(folder, (64, 128))


def test_a_samples_one_shared_intrinsics_matrix_is_each_frames(tmp_path, sample_dir):
    """camera.npz 'intrinsics' of shape (3, 3), one lens for the whole video, was refused ("has
    shape (3, 3): expected (T, 3, 3)"), with no fix: it is each frame's K, unambiguously, and read
    as such, to the frame counts' check and the intrinsics' own."""
    import shutil

    folder = shutil.copytree(sample_dir, tmp_path / "s")
    cam = dict(np.load(folder / "camera.npz"))
    np.savez(folder / "camera.npz", w2c=cam["w2c"], intrinsics=cam["intrinsics"][0])
    stack, expected = read_sample(folder, (64, 128), start=2, num_frames=3), read_sample(sample_dir, (64, 128), start=2, num_frames=3)
    assert torch.equal(stack.K, expected.K[:1].expand(3, 3, 3)) and torch.equal(stack.w2c, expected.w2c)
    bad = cam["intrinsics"][0].copy()
    bad[0, 0] = -1
    np.savez(folder / "camera.npz", w2c=cam["w2c"][:9], intrinsics=bad)
    with pytest.raises(Gen3cInputError, match=r"frame counts that disagree \(rgb\.mp4 10, depth\.npz 10, mask\.npz 10, camera\.npz w2c 9\)"):
        read_sample(folder, (64, 128))
    np.savez(folder / "camera.npz", w2c=cam["w2c"], intrinsics=bad)
    with pytest.raises(Gen3cInputError, match=r"camera\.npz intrinsics \(frame 0\) have a focal length ≤ 0"):
        read_sample(folder, (64, 128))


def test_intrinsics_of_the_video_before_it_was_resized_are_noted(tmp_path, sample_dir, vipe_dir):
    """Intrinsics made for 192×108 frames (cx, cy = 95.5, 53.5) on the same video at 128×72 put
    the principal point at 3/4 of each side: inside the image, so nothing said so (only 2× and
    more, outside or at the corner, is refused). A note names the file, the size and the factor."""
    import shutil

    folder = shutil.copytree(sample_dir, tmp_path / "s")
    cam = dict(np.load(folder / "camera.npz"))
    cam["intrinsics"][:, :2] = np.array([[115.2 * 1.5, 0, 95.5], [0, 115.2 * 1.5, 53.5]], np.float32)
    np.savez(folder / "camera.npz", **cam)
    with pytest.warns(UserWarning) as caught:
        read_sample(folder, (64, 128), start=2, num_frames=3)
    assert [str(w.message) for w in caught if w.category is UserWarning] == [  # (not a ResourceWarning the collector raises meanwhile)
        f"sample directory {str(folder)!r} camera.npz intrinsics (frame 2) (cx=95.5, cy=53.5) put the principal point at the centre "
        "of a 192×108 image, not of this 128×72 one: made for the video before it was resized? then scale fx, fy, cx, cy by 0.6667"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the clips' own centred intrinsics: nothing to say
        read_sample(sample_dir, (64, 128), num_frames=3)
        read_vipe(vipe_dir, (64, 128), num_frames=3)


def test_multiview_intrinsics_of_the_views_before_they_were_resized_are_noted(tmp_path, clip):
    """K_key_frames (and Ks_all) made for 192×108 key views given with the views at 128×72: the
    video readers noted it, the multi-view reader did not. Ks_all absent: noted once, as the key views'."""
    rgb, depth, ids, w2c, K = clip
    big = K[:2].clone()
    big[:, :2] = torch.tensor([[115.2 * 1.5, 0, 95.5], [0, 115.2 * 1.5, 53.5]])
    name = f"multi-view npz {str(tmp_path / 'mv.npz')!r}"
    said = ("(cx=95.5, cy=53.5) put the principal point at the centre of a 192×108 image, not of this 128×72 one: "
            "made for the key views before they were resized? then scale fx, fy, cx, cy by 0.6667")  # fmt: skip
    for keys_K, path_K, expected in (
        (big, None, [f"{name} K_key_frames (frame 0) {said}"]),
        (K[:2], big[[1]].expand(T, 3, 3), [f"{name} Ks_all (frame 0) {said}"]),
    ):
        path = write_multiview(tmp_path / "mv.npz", rgb[:2], depth[:2], depth[:2] > 0, keys_K, w2c[:2], w2c, path_K)
        with pytest.warns(UserWarning) as caught:
            read_multiview(path, (64, 128))
        assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == expected
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the clip's own centred intrinsics: nothing to say
        read_multiview(write_multiview(tmp_path / "mv.npz", rgb[:2], depth[:2], depth[:2] > 0, K[:2], w2c[:2], w2c, K), (64, 128))


def test_multiview_npz_round_trip(tmp_path, clip):
    rgb, depth, ids, w2c, K = clip
    keys = [0, 5, 9]
    path = write_multiview(
        tmp_path / "mv.npz", rgb[keys], depth[keys], depth[keys] > 0, K[keys], w2c[keys], w2c
    )
    mv = read_multiview(path, (64, 128))
    assert len(mv.keys) == 3 and mv.keys.size == (64, 128) and len(mv.trajectory) == T
    assert torch.allclose(mv.keys.w2c, w2c[keys]) and torch.allclose(mv.trajectory.w2c, w2c)
    # Without Ks_all every frame takes the last key view's intrinsics, adjusted like the images.
    assert torch.allclose(mv.trajectory.K, mv.keys.K[-1].expand(T, 3, 3))
    assert psnr(mv.keys.images[1].permute(1, 2, 0).numpy(), rgb[5, 4:68]) > 45  # no video codec here


@pytest.mark.parametrize(
    "override, match",
    [
        ({"w2cs_all": None}, "lacks w2cs_all"),
        # Before: "lacks w2cs_all: GEN3C's multi-view input holds … w2cs_all …", camera-to-world poses
        # saved under it renamed.
        ({"w2cs_all": None, "c2ws_all": "inverse"},
         r"has no key 'w2cs_all' but 'c2ws_all' \(it holds \[.*\]\): gen3c reads world-to-camera poses, save their inverse \(np\.linalg\.inv\(c2ws_all\)\) under 'w2cs_all'$"),
        ({"images_key_frames": np.full((3, 3, H, W), 2.0, np.float32)}, r"in \[−1, 1\]"),
        (
            {"depth_key_frames": np.ones((2, 1, H, W), np.float32)},
            r"depth_key_frames has shape \(2, 72, 128\)",
        ),
        ({"K_key_frames": np.zeros((3, 3, 3), np.float32)}, r"K_key_frames \(frame 0\) have a focal length ≤ 0"),
        ({"Ks_all": "nan in frame 6"}, r"Ks_all \(frame 6\) contain NaN or infinite values: pass finite fx, fy, cx, cy$"),
        ({"Ks_all": np.ones((4, 3, 3), np.float32)}, r"Ks_all has shape \(4, 3, 3\)"),
        ({"K_key_frames": "times 4"}, r"K_key_frames \(frame 0\) .*principal point outside the 128×72"),
        ({"Ks_all": "normalised"}, r"Ks_all \(frame 0\) .*look normalised"),
        ({"mask_key_frames": np.array([pickle.dumps(1)] * 3, dtype=object)}, "never unpickled"),
        # Before: "holds uint16 values: expected floats", without the conversion (nor for 8-bit colours
        # and channels-last images, "expected (*, 3, *, *)").
        ({"depth_key_frames": np.full((3, 1, H, W), 3000, np.uint16)},
         r"depth_key_frames holds uint16 values, not float z-depth: save it as floats in the poses' units \(integer millimetres: depth\.astype\(np\.float32\) / 1000 for metres\)$"),
        ({"images_key_frames": np.zeros((3, 3, H, W), np.uint8)},
         r"images_key_frames holds uint8 values: GEN3C's are floats in \[−1, 1\]; save images / 127\.5 - 1 \(for 0 … 255\)$"),
        ({"images_key_frames": np.zeros((3, H, W, 3), np.float32)},
         r"images_key_frames has shape \(3, 72, 128, 3\), \(N, H, W, 3\): GEN3C's are \(N, 3, H, W\); save images\.transpose\(0, 3, 1, 2\)$"),
    ],
)
def test_multiview_bad_input(override, match, tmp_path, clip):
    rgb, depth, ids, w2c, K = clip
    keys = [0, 5, 9]
    if isinstance(override.get("K_key_frames"), str):  # of the key frames at 4× their size
        override = {"K_key_frames": K[keys].numpy() * np.array([[4.0], [4.0], [1.0]], np.float32)}
    elif isinstance(override.get("Ks_all"), str) and override["Ks_all"] == "nan in frame 6":
        Ks = K.numpy().copy()
        Ks[6, 1, 2] = np.nan
        override = {"Ks_all": Ks}
    elif isinstance(override.get("Ks_all"), str):
        override = {"Ks_all": K.numpy() / np.array([[W], [H], [1.0]], np.float32)}
    elif "c2ws_all" in override:
        override = {**override, "c2ws_all": np.linalg.inv(w2c.numpy())}
    if "mask_key_frames" in override:  # object arrays need allow_pickle when saving
        data = {
            "images_key_frames": np.zeros((3, 3, H, W), np.float32),
            "mask_key_frames": override["mask_key_frames"],
        }
        np.savez(tmp_path / "mv.npz", **data, depth_key_frames=np.ones((3, H, W)), K_key_frames=K[keys].numpy(),
                 w2cs_key_frames=w2c[keys].numpy(), w2cs_all=w2c.numpy())  # fmt: skip
        path = tmp_path / "mv.npz"
    else:
        path = write_multiview(
            tmp_path / "mv.npz",
            rgb[keys],
            depth[keys],
            depth[keys] > 0,
            K[keys],
            w2c[keys],
            w2c,
            overrides=override,
        )
    with pytest.raises(Gen3cInputError, match=match) as err:
        read_multiview(path, (64, 128))
    assert "\n" not in str(err.value)


def test_multiview_key_views_in_0_1_are_noted_as_the_pt_samples_are(tmp_path, clip):
    """Key views saved in [0, 1] (torchvision's) were read silently as [−1, 1]: every colour washed
    out to mid-grey and above. As for the legacy .pt sample, a note now says how to save them."""
    rgb, depth, ids, w2c, K = clip
    keys = [0, 5]
    path = write_multiview(tmp_path / "mv.npz", rgb[keys], depth[keys], depth[keys] > 0, K[keys], w2c[keys], w2c,
                           overrides={"images_key_frames": rgb[keys].transpose(0, 3, 1, 2).astype(np.float32) / 255.0})  # fmt: skip
    with pytest.warns(UserWarning, match=r"images_key_frames has no value below 0, so its darkest pixel is mid-grey in \[−1, 1\]: if it holds \[0, 1\] colours, save images \* 2 - 1$"):
        read_multiview(path, (64, 128))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # [−1, 1] views: no note
        read_multiview(write_multiview(tmp_path / "ok.npz", rgb[keys], depth[keys], depth[keys] > 0, K[keys], w2c[keys], w2c), (64, 128))


def test_instance_ids_are_kept_in_the_narrowest_type_that_holds_them():
    """ViPE's ids were held as int32 (436 MB for 121 frames at 704×1280) though its PNGs are
    8-bit: now uint8, widened to int16 / int32 only when a later frame's ids need it."""

    def frame(value):
        ids = torch.zeros(1, 8, 12, dtype=torch.int32)
        ids[0, 4, 6] = value
        return torch.zeros(1, 3, 8, 12, dtype=torch.uint8), torch.ones(1, 8, 12), torch.ones(1, 8, 12, dtype=torch.bool), ids

    for values, dtypes in (((3, 255), (torch.uint8, torch.uint8)), ((7, 300, 70_000), (torch.uint8, torch.int16, torch.int32)),
                           ((-1, 5), (torch.int16, torch.int16))):  # fmt: skip
        for size in ((8, 12), (4, 6)):  # kept as they are; resized (nearest)
            fitter = FrameFitter(len(values), size)
            for v, dtype in zip(values, dtypes, strict=True):
                fitter.add(*frame(v))
                assert fitter._out["instance_ids"].dtype == dtype, (values, size)
            ids = fitter.stack(torch.eye(4).expand(len(values), 4, 4), torch.eye(3).expand(len(values), 3, 3)).instance_ids
            assert ids.dtype == dtypes[-1] and ids.amax((1, 2)).tolist() == [max(v, 0) for v in values], (values, size)
    stack = FrameStack(*frame(0)[:3], torch.eye(4)[None], torch.eye(3)[None], instance_ids=frame(40_000)[3].long())
    assert stack.instance_ids.dtype == torch.int32 and int(stack.instance_ids.max()) == 40_000


def test_resized_instance_ids_keep_every_value_exactly():
    """Ids were resized through float32 (exact only to 2**24): 2**24 + 1 came out as 2**24 and
    2**31 − 1 as −2**31. Now nearest neighbour in the ids' own integer type, picking the pixels
    the float resize picked (checked below on ids that float32 holds)."""
    picks = torch.arange(6 * 10, dtype=torch.int32).reshape(1, 6, 10)  # every pixel its own id
    for size, mode in (((4, 6), "crop"), ((8, 8), "crop"), ((4, 10), "stretch"), ((16, 24), "crop")):
        small = fit_frames(_id_stack(picks), size, mode).instance_ids.long()
        (rh, rw), top, left = fit_plan((6, 10), size, mode)
        float_nearest = torch.nn.functional.interpolate(picks[:, None].float(), size=(rh, rw), mode="nearest")
        assert torch.equal(small, float_nearest[:, 0, top : top + size[0], left : left + size[1]].long()), size
        for big in (2**24 + 1, 2**31 - 1):
            ids = fit_frames(_id_stack(picks + (big - 59)), size, mode).instance_ids
            assert ids.dtype == torch.int32 and torch.equal(ids.long(), small + (big - 59)), (size, big)
    # Frame by frame through the FrameFitter, a uint8 frame after an int32 one, as a reader adds them.
    fitter = FrameFitter(2, (4, 6))
    for value in (2**31 - 1, 7):
        stack = _id_stack(torch.full((1, 6, 10), value, dtype=torch.int32))
        fitter.add(stack.images, stack.depth, stack.valid, stack.instance_ids)
    ids = fitter.stack(torch.eye(4).expand(2, 4, 4), torch.eye(3).expand(2, 3, 3)).instance_ids
    assert ids.dtype == torch.int32 and ids[0].unique().tolist() == [2**31 - 1] and ids[1].unique().tolist() == [7]


def _id_stack(ids: torch.Tensor) -> FrameStack:
    """A one-frame (6×10) stack carrying ``ids``."""
    return FrameStack(torch.zeros(1, 3, 6, 10, dtype=torch.uint8), torch.ones(1, 6, 10), torch.ones(1, 6, 10, dtype=torch.bool),
                      torch.eye(4)[None], torch.eye(3)[None], instance_ids=ids)  # fmt: skip


def test_fit_frames_keeps_holes_out_of_the_depth():
    from gen3c.io.frames import FrameStack

    depth = torch.full((1, 8, 16), 2.0)
    depth[0, :, 8:] = 0.0
    stack = FrameStack(
        torch.zeros(1, 3, 8, 16, dtype=torch.uint8),
        depth,
        depth > 0,
        torch.eye(4)[None],
        torch.eye(3)[None] * 10,
    )
    fitted = fit_frames(stack, (4, 8))
    assert bool((fitted.depth[fitted.valid] == 2.0).all()) and not bool(fitted.valid[0, :, 4:].any())
    assert bool((fitted.depth[~fitted.valid] == 0).all())


# --------------------------------------------------------------------------------------------
# Camera files through every reader: conventions and sizes
# --------------------------------------------------------------------------------------------


def _camera_file(path, w2c, K, h, w):
    from gen3c.io.camera_files import save_cameras

    save_cameras(path, Cameras(w2c.float(), K.float(), h, w))
    return str(path)


def _inputs_of(kind, folder, rgb, depth, w2c, K):
    """A request's input of ``kind`` holding ``rgb`` (T, h, w, 3), ``depth``, ``w2c``, ``K``."""
    from PIL import Image

    if kind == "image":
        Image.fromarray(rgb[0]).save(folder / "image.png")
        np.save(folder / "depth.npy", depth[0])
        k = K[0]
        return {"input_image_path": str(folder / "image.png"), "depth_path": str(folder / "depth.npy"),
                "intrinsics": f"{k[0, 0]},{k[1, 1]},{k[0, 2]},{k[1, 2]}"}  # fmt: skip
    if kind == "sample":
        return {"input_image_path": str(write_sample(folder / "sample", rgb, depth, depth > 0, w2c, K))}
    if kind == "vipe":
        return {"vipe_path": str(write_vipe(folder / "vipe", "c", rgb, depth, w2c, K))}
    return {"multiview_npz": str(write_multiview(folder / "mv.npz", rgb[:1], depth[:1], depth[:1] > 0, K[:1], w2c[:1], w2c))}


@pytest.mark.parametrize("resize_mode", ["crop", "stretch"])
@pytest.mark.parametrize("kind", ["image", "sample", "vipe", "multiview"])
def test_camera_file_at_the_inputs_size_gets_the_inputs_intrinsics(tmp_path, kind, resize_mode):
    """A camera file holding the input's own cameras at the input's own (4:3) size describes the
    input's cameras after both are brought to 64×128: with --resize_mode stretch the file used to
    be resized-and-cropped while the frames were stretched (fy 115 instead of 78 for a video)."""
    from gen3c.pipelines.request import GenerationRequest, read_input, scene_cameras

    h, w, n = 96, 128, 3
    rgb, depth, _, w2c, K = scene(n, h, w)
    if kind == "image":  # single-image input: the source camera is the world origin
        w2c = torch.eye(4).expand(n, 4, 4)
    settings = {"resolution": "64x128", "resize_mode": resize_mode, "num_video_frames": n}
    inputs = _inputs_of(kind, tmp_path, rgb, depth, w2c, K)
    data = read_input(GenerationRequest(**settings, **inputs), kind)
    source_K = (data.K if kind == "image" else (data.keys if kind == "multiview" else data).K[0]).expand(n, 3, 3)
    request = GenerationRequest(**settings, **inputs, camera_file=_camera_file(tmp_path / "cams.json", w2c, K, h, w))
    cams = scene_cameras(request, kind, data)
    assert (cams.height, cams.width) == (64, 128)
    assert torch.allclose(cams.K, source_K, atol=1e-4)
    assert torch.allclose(cams.w2c, w2c.float(), atol=1e-6)


@pytest.mark.parametrize("file_scale", [1, 2])
@pytest.mark.parametrize("kind", ["image", "sample", "vipe", "multiview"])
def test_camera_file_translation_moves_the_cache_by_fx_tx_over_depth(tmp_path, kind, file_scale):
    """Closed form through each reader: a textured wall at depth D seen by a camera moved right by
    tx (a world-to-camera file, OpenCV, pixels) slides left by exactly fx·tx/D = 8 pixels, also
    when the file's intrinsics are for twice the size."""
    from gen3c.pipelines.request import GenerationRequest, load_scene

    h, w, n, D, f, shift = 64, 128, 2, 4.0, 100.0, 8
    texture = (np.random.default_rng(0).random((h, w // 4, 3)) * 255).astype(np.uint8).repeat(4, axis=1)
    rgb, depth = np.repeat(texture[None], n, 0), np.full((n, h, w), D, np.float32)
    K = torch.tensor([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]]).expand(n, 3, 3)
    inputs = _inputs_of(kind, tmp_path, rgb, depth, torch.eye(4).expand(n, 4, 4), K)
    moved = torch.eye(4).repeat(n, 1, 1)
    moved[1, 0, 3] = -shift * D / f  # camera centre at x = +tx
    s = file_scale
    file_K = torch.tensor([[s * f, 0, (s * w - 1) / 2], [0, s * f, (s * h - 1) / 2], [0, 0, 1]]).expand(n, 3, 3)
    request = GenerationRequest(resolution=f"{h}x{w}", num_video_frames=n, filter_points_threshold=0, **inputs,
                                camera_file=_camera_file(tmp_path / "cams.json", moved, file_K, s * h, s * w))  # fmt: skip
    scene_ = load_scene(request)
    cache, offset = scene_.plan.cache_for_chunk(0, 0, scene_.cameras, None, None, "")
    colors = cache.render(scene_.cameras, frame_offset=offset).colors[:, 0]
    seen, moved_view = colors[0][..., shift : w - 2], colors[1][..., : w - shift - 2]
    assert torch.allclose(moved_view, seen, atol=2e-3 * s)  # the file at twice the size: cx off by 1/4 px
    assert (colors[1][..., : w - shift - 2] - colors[0][..., shift - 1 : w - 3]).abs().mean() > 0.05  # 7 px is wrong


@pytest.mark.parametrize("kind", ["image", "sample"])
def test_a_camera_file_that_starts_away_from_the_first_frames_camera_is_noted(tmp_path, kind):
    """The video's first frame is the input's first image whatever the file's first camera says: a
    path in another world frame (a COLMAP scene's: 20 units behind) jumped after frame 0, silently."""
    from gen3c.errors import collect_notes
    from gen3c.pipelines.request import GenerationRequest, read_input, scene_cameras

    h, w, n = 48, 64, 3
    rgb, depth, _, w2c, K = scene(n, h, w)
    if kind == "image":
        w2c = torch.eye(4).expand(n, 4, 4)
    settings = {"resolution": f"{h}x{w}", "num_video_frames": n}
    inputs = _inputs_of(kind, tmp_path, rgb, depth, w2c, K)
    data = read_input(GenerationRequest(**settings, **inputs), kind)
    elsewhere = w2c.clone()
    elsewhere[:, 2, 3] += 20.0
    for poses, said in ((w2c, False), (elsewhere, True)):
        request = GenerationRequest(**settings, **inputs, camera_file=_camera_file(tmp_path / "cams.json", poses, K, h, w))
        with collect_notes() as notes:
            scene_cameras(request, kind, data)
        assert any("starts 20 units" in n and "the video jumps onto the file's path" in n for n in notes) == said, notes
        if said:  # the output's first frame is the input's own (before, for a video: "the video's first frame is the video's first frame itself")
            what = "the input image" if kind == "image" else "the input video's first frame"
            assert any(f"away from the camera of {what}, but the video's first frame is {what} itself" in n for n in notes), notes


def test_a_multiview_path_that_starts_away_from_the_first_key_view_is_noted(tmp_path):
    """GEN3C seeds frame 0 with the first key view and renders w2cs_all[0] for it: a w2cs_all in
    another world frame (20 units behind), or a Ks_all of another zoom, jumped after frame 0 without
    a word, where a camera file's did get a note. Without Ks_all the path takes the last key view's
    K (GEN3C's default), which is not the npz's mistake: nothing said."""
    from gen3c.errors import collect_notes
    from gen3c.pipelines.request import GenerationRequest, read_input, scene_cameras

    h, w, n = 48, 64, 3
    rgb, depth, _, w2c, K = scene(n, h, w)
    elsewhere, wider, other_keys = w2c.clone(), K.clone(), K[:2].clone()
    elsewhere[:, 2, 3] += 20.0
    wider[:, :2, :2] *= 0.8
    other_keys[1, :2, :2] *= 0.8
    npz = tmp_path / "mv.npz"
    name = f"multi-view npz {str(npz)!r}"
    for path, keys_K, path_K, said in (
        (w2c, K[:2], None, []),
        (w2c, other_keys, None, []),
        (elsewhere, K[:2], None, [f"{name} w2cs_all starts 20 units"]),
        (w2c, K[:2], wider, [f"{name} Ks_all: its first camera's intrinsics (fx="]),
    ):
        write_multiview(npz, rgb[:2], depth[:2], depth[:2] > 0, keys_K, w2c[:2], path, path_K)
        request = GenerationRequest(resolution=f"{h}x{w}", num_video_frames=n, multiview_npz=str(npz))
        with collect_notes() as notes:
            scene_cameras(request, "multiview", read_input(request, "multiview"))
        assert [part for note in notes for part in said if note.startswith(part)] == said, notes
        assert len(notes) == len(said), notes
    assert notes[0].endswith(
        "are not those of the first key view (fx=57.6, fy=57.6, cx=31.5, cy=23.5), but the video's first frame is the first key view itself, "
        "so the view jumps after it: give Ks_all[0] the first key view's K_key_frames[0]"
    )


def test_a_camera_file_whose_first_camera_has_other_intrinsics_is_noted(tmp_path):
    """A path made in nerfstudio's viewer has its fov, not the photo's: the first frame (the photo)
    zoomed into the file's path at frame 1, silently."""
    from gen3c.errors import collect_notes
    from gen3c.pipelines.request import GenerationRequest, read_input, scene_cameras

    h, w, n = 48, 64, 2
    rgb, depth, _, _, _ = scene(n, h, w)
    w2c, K = torch.eye(4).expand(n, 4, 4), make_intrinsics(60.0, 60.0, 31.5, 23.5).expand(n, 3, 3)
    settings = {"resolution": f"{h}x{w}", "num_video_frames": n}
    inputs = _inputs_of("image", tmp_path, rgb, depth, w2c, K)
    data = read_input(GenerationRequest(**settings, **inputs), "image")
    wider = K.clone()
    wider[:, :2, :2] *= 0.8
    for intrinsics, said in ((K, []), (wider, ["fx=48, fy=48, cx=31.5, cy=23.5 at the working 64×48) are not those of the input image (fx=60, fy=60, "
                                             "cx=31.5, cy=23.5), but the video's first frame is the input image itself, so the view jumps after it"])):
        request = GenerationRequest(**settings, **inputs, camera_file=_camera_file(tmp_path / "cams.json", w2c, intrinsics, h, w))
        with collect_notes() as notes:
            scene_cameras(request, "image", data)
        assert [part for note in notes for part in said if part in note] == said, notes


def test_a_multiview_path_longer_than_the_frames_asked_for_is_noted(tmp_path):
    """GEN3C's multi-view example has 361 cameras in w2cs_all; without --num_video_frames 361 a run
    rendered the first 121 and dropped the rest of the path without a word."""
    from gen3c.errors import collect_notes
    from gen3c.pipelines.request import GenerationRequest, read_input, scene_cameras

    h, w = 48, 64
    rgb, depth, _, w2c, K = scene(9, h, w)
    inputs = _inputs_of("multiview", tmp_path, rgb, depth, w2c, K)
    for frames, said in ((5, [f"multi-view npz {inputs['multiview_npz']!r} has 9 cameras in w2cs_all; the first 5 are rendered "
                              "(--num_video_frames 5): pass --num_video_frames 9 to render all of them"]), (9, [])):
        request = GenerationRequest(resolution=f"{h}x{w}", num_video_frames=frames, **inputs)
        with collect_notes() as notes:
            cams = scene_cameras(request, "multiview", read_input(request, "multiview"))
        assert notes == said and torch.allclose(cams.w2c, w2c[:frames].float(), atol=1e-6)


# --------------------------------------------------------------------------------------------
# Streaming: the readers decode a frame at a time and equal reading the whole clip first
# --------------------------------------------------------------------------------------------

LONG = 14  # frames; keyframes (IDR) every 4 with B-frames, so late starts seek


@pytest.fixture(scope="module")
def long_inputs(tmp_path_factory):
    """One clip with sky (NaN/inf) and holes (0) in its depth, in every video layout."""
    from layouts import write_h264

    rgb, depth, ids, w2c, K = scene(LONG, H, W)
    depth = depth.copy()
    depth[3, :6, :9], depth[6, 10:12], depth[9, 20:30, 40:50] = np.nan, np.inf, 0.0
    folder = tmp_path_factory.mktemp("long")
    vipe = write_vipe(folder / "vipe", "c", rgb, depth, w2c, K, ids)
    write_h264(vipe / "rgb" / "c.mp4", rgb, gop=4, bframes=2)
    sample = write_sample(folder / "sample", rgb, depth, ids != 1, w2c, K)
    write_h264(sample / "rgb.mp4", rgb, gop=4, bframes=2)
    image = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 127.5 - 1
    torch.save((image, torch.from_numpy(depth)[:, None], torch.from_numpy(ids != 1)[:, None].float(), w2c, K), folder / "s.pt")
    mv = write_multiview(folder / "mv.npz", rgb[::3], depth[::3], ids[::3] != 1, K[::3], w2c[::3], w2c)
    return {"vipe": vipe, "sample": sample, "pt": folder / "s.pt", "multiview": mv}


def _decode_all(path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])])


def _whole_then_fit(images, depth, valid_mask, w2c, K, picks, resolution, mode, mask_invalid, name, **fields):
    """The straightforward reader: everything at the source size, then the frames picked, their
    invalid depth filled as one stack, and the stack fitted to the working size."""
    from gen3c.io.depth import fill_invalid_depth
    from gen3c.io.frames import FrameStack, images_to_uint8

    mask = None if valid_mask is None else torch.from_numpy(valid_mask[picks])
    depth_t, valid = fill_invalid_depth(torch.from_numpy(depth[picks].astype(np.float32)), name, mask_invalid, mask=mask, frame_offset=picks.start)
    colours = images[picks]
    colours = images_to_uint8(colours) if colours.dtype.is_floating_point else colours
    stack = FrameStack(colours, depth_t, valid, w2c[picks].float(), K[picks].float(), frame_indices=list(picks), **fields)
    return fit_frames(stack, resolution, mode)


def _reference(kind, path, resolution, start, count, mode, mask_invalid):
    import io

    import OpenEXR
    from PIL import Image

    from gen3c.cameras import invert_pose

    if kind == "vipe":
        rgb = _decode_all(path / "rgb" / "c.mp4")
        picks = range(start, min(len(rgb), start + count))
        with zipfile.ZipFile(path / "depth" / "c.zip") as z:
            depth = np.stack([np.array(OpenEXR.File(io.BytesIO(z.read(f"{i:05d}.exr"))).channels()["Z"].pixels, np.float32) for i in range(len(rgb))])
        with zipfile.ZipFile(path / "mask" / "c.zip") as z:
            ids = np.stack([np.asarray(Image.open(io.BytesIO(z.read(f"{i:05d}.png")))).astype(np.int32) for i in range(len(rgb))])
        w2c = invert_pose(torch.from_numpy(np.load(path / "pose" / "c.npz")["data"].astype(np.float32)))
        fx, fy, cx, cy = torch.from_numpy(np.load(path / "intrinsics" / "c.npz")["data"].astype(np.float32)).T
        K = torch.zeros(len(rgb), 3, 3)
        K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = fx, fy, cx, cy, 1.0
        stack = _whole_then_fit(torch.from_numpy(rgb).permute(0, 3, 1, 2), depth, None, w2c, K, picks, resolution, mode, mask_invalid,
                                "ViPE depth/c.zip", fps=24.0, instance_ids=torch.from_numpy(ids[picks]))  # fmt: skip
        return stack
    if kind == "sample":
        rgb = _decode_all(path / "rgb.mp4")
        picks = range(start, min(len(rgb), start + count))
        camera = dict(np.load(path / "camera.npz"))
        return _whole_then_fit(torch.from_numpy(rgb).permute(0, 3, 1, 2), np.load(path / "depth.npz")["depth"], np.load(path / "mask.npz")["mask"],
                               torch.from_numpy(camera["w2c"]), torch.from_numpy(camera["intrinsics"]), picks, resolution, mode, mask_invalid,
                               f"sample directory {str(path)!r} depth.npz", fps=24.0)  # fmt: skip
    if kind == "pt":
        image, depth, mask, w2c, K = torch.load(path, weights_only=True)
        picks = range(start, min(len(image), start + count))
        return _whole_then_fit(image, depth[:, 0].numpy(), mask[:, 0].numpy() > 0, w2c, K, picks, resolution, mode, mask_invalid,
                               f"sample {str(path)!r} depth")  # fmt: skip
    data = dict(np.load(path))
    keys = torch.from_numpy(data["images_key_frames"])
    picks = range(len(keys))
    return _whole_then_fit(keys, data["depth_key_frames"][:, 0], data["mask_key_frames"][:, 0] > 0, torch.from_numpy(data["w2cs_key_frames"]),
                           torch.from_numpy(data["K_key_frames"]), picks, resolution, mode, mask_invalid,
                           f"multi-view npz {str(path)!r} depth_key_frames")  # fmt: skip


@pytest.mark.parametrize(
    "resolution, mode, start, count, mask_invalid",
    [
        ((64, 128), "crop", 0, 121, False),  # the whole clip, GEN3C's 720×1280 → 704×1280 crop
        ((48, 80), "stretch", 5, 6, True),  # a late start (decoding from the IDR frame at 4), shrunk
        ((72, 128), "crop", 9, 3, False),  # at the source size: nothing resized
        ((144, 256), "crop", 13, 121, True),  # the clip ends first; enlarged
    ],
)
@pytest.mark.parametrize("kind", ["vipe", "sample", "pt", "multiview"])
def test_streamed_reading_equals_reading_the_whole_clip_first(long_inputs, kind, resolution, mode, start, count, mask_invalid):
    """Every reader hands the pipeline the frames, depth, validity, instance ids, cameras and
    notes that decoding the whole clip at its source size and fitting it afterwards gives, bit
    for bit, while it holds one source-size frame at a time."""
    from gen3c.errors import collect_notes

    path = long_inputs[kind]
    options = {"resize_mode": mode, "mask_invalid_depth": mask_invalid}
    if kind == "multiview":
        start, count = 0, None
    with collect_notes() as notes:
        if kind == "vipe":
            got = read_vipe(path, resolution, start=start, num_frames=count, **options)
        elif kind == "multiview":
            got = read_multiview(path, resolution, **options).keys
        else:
            got = read_sample(path, resolution, start=start, num_frames=count, **options)
    with collect_notes() as expected_notes:
        want = _reference(kind, path, resolution, start, count, mode, mask_invalid)
    assert got.size == resolution and got.frame_indices == want.frame_indices and got.fps == want.fps
    for field in ("images", "depth", "valid", "w2c", "K", "instance_ids"):
        a, b = getattr(got, field), getattr(want, field)
        assert (a is None and b is None) or (a.dtype == b.dtype and torch.equal(a, b)), field
    assert notes == expected_notes and bool(notes) == bool({3, 6, 9} & set(want.frame_indices if kind != "multiview" else range(0, LONG, 3)))


@pytest.mark.parametrize("kind", ["sample", "vipe"])
def test_a_static_scene_rerendered_along_its_own_cameras_reproduces_its_frames(tmp_path, kind):
    """Closed form: a video of a static procedural scene (gen3c.scenes) with its exact depth and
    cameras, written as a sample directory or a ViPE result at 144×256 and read at 64×128 (a
    resize and a crop, intrinsics adjusted), rendered by the pipeline's 4D cache along the same
    cameras, gives back the frames as read and the scene ray-cast at those cameras."""
    from gen3c.cache import reliable_depth_mask
    from gen3c.pipelines.autoregressive import VideoCache
    from gen3c.scenes import make_scene, source_camera
    from gen3c.scenes import render as render_scene
    from gen3c.trajectories import preset_trajectory

    h, w, n = 144, 256, 6
    scene = make_scene("room", seed=0)
    src = source_camera(h, w)
    cams = preset_trajectory("left", "center_facing", n, src.w2c[0], src.K[0], h, w)
    truth = render_scene(scene, cams)
    rgb = ((truth.rgb + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    depth = truth.depth.numpy()
    assert np.isfinite(depth).all()  # a closed room: every pixel has depth
    if kind == "sample":
        stack = read_sample(write_sample(tmp_path / "s", rgb, depth, depth > 0, cams.w2c, cams.K), (64, 128))
    else:
        stack = read_vipe(write_vipe(tmp_path / "v", "room", rgb, depth, cams.w2c, cams.K), (64, 128))
    assert len(stack) == n and torch.allclose(stack.w2c, cams.w2c, atol=1e-5)
    work = Cameras(stack.w2c, stack.K, 64, 128)
    cache, offset = VideoCache(stack).cache_for_chunk(0, 0, work, None, None, "")
    assert offset == 0
    out = cache.render(work)
    seen = out.masks[:, 0, 0] > 0
    # Every point kept lands on its own pixel (GEN3C's edge filter drops the floor's steep rows at this size).
    assert torch.equal(seen, stack.valid & reliable_depth_mask(stack.depth)) and seen.float().mean() > 0.5
    rendered = ((out.colors[:, 0] + 1) * 127.5).permute(0, 2, 3, 1).numpy()
    as_read = stack.images.permute(0, 2, 3, 1).numpy()
    assert psnr(rendered[seen.numpy()], as_read[seen.numpy()]) >= 45.0  # exact but for float rounding
    at_work = render_scene(scene, work)  # the scene at the adjusted cameras: resize and crop agree with K
    truth_work = ((at_work.rgb + 1) * 127.5).permute(0, 2, 3, 1).numpy()
    assert psnr(rendered[seen.numpy()], truth_work[seen.numpy()]) >= 26.0  # H.264 and an antialiased resize
    rel = (out.depths[:, 0, 0] - at_work.depth).abs() / at_work.depth
    assert rel[seen].median() < 0.01


def test_a_frame_range_from_python_is_in_whole_frames():
    """read_vipe / read_sample's start and num_frames from Python are whole numbers by gen3c's one
    rule: True read 1 frame (or started at frame 1), 2.5 failed in range() with a TypeError; numpy
    integers are taken."""
    import numpy as np

    from gen3c.io.frames import frame_range

    assert frame_range(np.int64(2), np.int64(3), 10, "clip") == 5 and frame_range(0, None, 10, "clip") == 10
    for bad in (True, 2.5):
        with pytest.raises(Gen3cInputError, match=rf"^{bad!r} frames of clip asked for: ask for a whole number, at least 1$"):
            frame_range(0, bad, 10, "clip")
        with pytest.raises(Gen3cInputError, match=rf"^--vipe_starting_frame_idx {bad!r} is no frame of clip: pass a whole number, 0 … 9$"):
            frame_range(bad, 3, 10, "clip")


def test_sample_and_vipe_readers_take_a_home_path_and_refuse_what_is_no_path(vipe_dir, sample_dir, monkeypatch):
    """read_sample, sample_length, read_vipe and vipe_length passed their path to Path() as it came:
    None or a number was Path's "expected str, bytes or os.PathLike object, not NoneType", and
    "~/walk" was looked for in a folder named "~" ("does not exist"). As every other reader,
    they expand the home folder now and refuse what is no path in one line."""
    from gen3c.io.gen3c_sample import sample_length
    from gen3c.io.vipe import vipe_length

    monkeypatch.setenv("HOME", str(vipe_dir.parent))
    assert vipe_length(f"~/{vipe_dir.name}") == T and len(read_vipe(f"~/{vipe_dir.name}", (32, 48), num_frames=2).w2c) == 2
    monkeypatch.setenv("HOME", str(sample_dir.parent))
    assert sample_length(f"~/{sample_dir.name}") == T and len(read_sample(f"~/{sample_dir.name}", (32, 48), num_frames=2).w2c) == 2
    for call, name in ((lambda p: read_sample(p, (32, 48)), "sample"), (sample_length, "sample"),
                       (lambda p: read_vipe(p, (32, 48)), "ViPE directory"), (vipe_length, "ViPE directory")):  # fmt: skip
        for value, got in ((None, "NoneType 'None'"), (5, "int '5'")):
            with pytest.raises(Gen3cInputError, match=rf"^{name} is {got}: pass the path to a .* \(a str or a pathlib\.Path\)$"):
                call(value)


def _stage_counts() -> tuple[dict[str, int], object]:
    """A progress factory recording, per stage, its total and the steps advanced (a stage started
    twice, as a video read twice would be, fails the test)."""
    seen: dict[str, list[int]] = {}

    def progress(stage: str, total: int):
        assert stage not in seen, f"stage {stage!r} started twice"
        seen[stage] = [total, 0]

        def advance(n: int = 1) -> None:
            seen[stage][1] += n

        return advance

    return seen, progress


def test_vipe_depth_without_openexr_is_the_dependency_refusal(vipe_dir, monkeypatch):
    """Before: "ViPE depth/walk.zip 00000.exr reading ViPE depth needs OpenEXR …", the missing
    package said of the first EXR as if the file were at fault, and no Gen3cDependencyError."""
    import sys

    from gen3c.errors import Gen3cDependencyError

    monkeypatch.setitem(sys.modules, "OpenEXR", None)  # importing it now raises ImportError
    with pytest.raises(Gen3cDependencyError, match=r"^reading ViPE depth needs OpenEXR \(OpenEXR is missing\): pip install 'gen3c\[exr\]'$"):
        read_vipe(vipe_dir, (32, 64))


def test_a_video_inputs_frames_are_read_as_a_progress_stage(vipe_dir, sample_dir, tmp_path):
    """Before: nothing was shown while a video input was read, a minute for a 1080p clip's 121
    frames on a 2-core CPU, before the first bar ("Rendering 3D cache")."""
    import shutil

    from gen3c.pipelines.request import GenerationRequest, run_request

    for name, given in (("vipe", {"vipe_path": str(vipe_dir)}), ("sample", {"input_image_path": str(sample_dir), "vipe_starting_frame_idx": 4})):
        seen, progress = _stage_counts()
        request = GenerationRequest(**given, generator="preview", resolution="32x64", num_video_frames=5,
                                    video_save_folder=str(tmp_path), video_save_name=name)  # fmt: skip
        run_request(request, progress=progress)
        assert seen == {"Reading video": [5, 5], "Rendering 3D cache": [5, 5], "Generating (preview)": [5, 5]}, (name, seen)
    # A long run (chunks of 4 frames) reads its video once, before its first chunk.
    seen, progress = _stage_counts()
    request = GenerationRequest(vipe_path=str(vipe_dir), generator="preview", resolution="32x64", num_video_frames=10, chunk_frames=4,
                                video_save_folder=str(tmp_path), video_save_name="long")  # fmt: skip
    run_request(request, progress=progress)
    assert list(seen)[0] == "Reading video" and seen["Reading video"] == [10, 10] and "Chunk 3/3: generating (preview)" in seen, seen
    # The clip ending first: the frames there are, the stage's whole count.
    seen, progress = _stage_counts()
    read_vipe(vipe_dir, (32, 64), start=7, num_frames=5, progress=progress)
    assert seen == {"Reading video": [3, 3]}
    # A refusal at the first frame, where most are found, comes before the stage starts; one at a
    # later frame leaves the stage at the frames read before it.
    seen, progress = _stage_counts()
    with pytest.raises(Gen3cInputError, match="resize mode"):
        read_sample(sample_dir, (32, 64), resize_mode="squash", progress=progress)
    assert seen == {}
    for bad, want in ((0, {}), (3, {"Reading video": [T, 3]})):
        folder = tmp_path / f"bad_depth_{bad}"
        shutil.copytree(sample_dir, folder)
        depth = np.load(folder / "depth.npz")["depth"]
        depth[bad] = -1.0
        np.savez(folder / "depth.npz", depth=depth)
        seen, progress = _stage_counts()
        with pytest.raises(Gen3cInputError, match=rf"has no valid pixel \(frame {bad}\)"):
            read_sample(folder, (32, 64), progress=progress)
        assert seen == want, bad
