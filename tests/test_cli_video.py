"""`gen3c generate` end to end on video (sample directory, ViPE), multi-view and long
(autoregressive) inputs with the preview generator, and bad input → one line, exit 2."""

import json
import re

import numpy as np
import pytest
import torch
from layouts import render, scene, write_multiview, write_sample, write_vipe
from typer.testing import CliRunner

from gen3c.cli import app
from gen3c.io.camera_files import load_camera_file
from gen3c.io.video import read_video

runner = CliRunner()
H, W, T = 72, 128, 10
RES = "64x128"  # GEN3C's 720×1280 → 704×1280 crop, at a tenth of the size


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # (conftest.py)


@pytest.fixture(scope="module")
def clip():
    return scene(T, H, W)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, clip):
    rgb, depth, ids, w2c, K = clip
    root = tmp_path_factory.mktemp("inputs")
    keys = [0, 5, 9]
    still, still_depth, _ = render(w2c, K, H, W, times=np.zeros(T))  # multi-view input is of a static scene
    return {
        "sample": write_sample(root / "batch_0000", rgb, depth, depth > 0, w2c, K),
        "vipe": write_vipe(root / "vipe", "walk", rgb, depth, w2c, K, ids),
        "multiview": write_multiview(
            root / "mv.npz", still[keys], still_depth[keys], still_depth[keys] > 0, K[keys], w2c[keys], w2c
        ),
        "static": still,
    }


def invoke(*args):
    return runner.invoke(app, ["generate", *(str(a) for a in args)])


def psnr(a, b):
    return float(10 * np.log10(255.0**2 / max(np.mean((a.astype(float) - b.astype(float)) ** 2), 1e-10)))


def test_sample_directory_video_to_video(inputs, clip, tmp_path):
    res = invoke("--input_image_path", inputs["sample"], "--resolution", RES, "--num_video_frames", 9,
                 "--trajectory", "right", "--movement_distance", 0.5, "--video_save_folder", tmp_path)  # fmt: skip
    assert res.exit_code == 0, res.output
    frames, _ = read_video(tmp_path / "output.mp4")
    assert frames.shape == (9, 64, 128, 3)
    source = clip[0][:, 4:68]
    assert psnr(frames[0], source[0]) > 30  # the first frame is the first source frame
    # The camera moves away from the source cameras, so frames drift from the source frames.
    assert psnr(frames[8], source[8]) < psnr(frames[0], source[0]) - 5
    cams = load_camera_file(tmp_path / "output_cameras.json")
    assert len(cams) == 9 and (cams.height, cams.width) == (64, 128)
    run = json.loads((tmp_path / "output_run.json").read_text())
    assert run["input_image_path"] == str(inputs["sample"])


def test_a_video_input_plays_at_its_own_frame_rate(clip, tmp_path):
    """One output frame per input frame: a 30 fps clip was written at GEN3C's 24, playing 25 % slow."""
    rgb, depth, ids, w2c, K = clip
    sample = write_sample(tmp_path / "s", rgb[:5], depth[:5], depth[:5] > 0, w2c[:5], K[:5], fps=30)
    vipe = write_vipe(tmp_path / "v", "walk", rgb[:5], depth[:5], w2c[:5], K[:5], fps=12.5)
    for args, fps in ((["--input_image_path", sample], 30), (["--vipe_path", vipe], 12.5), (["--vipe_path", vipe, "--fps", 20], 20)):
        out = tmp_path / f"out{fps}"
        res = invoke(*args, "--resolution", RES, "--num_video_frames", 5, "--movement_distance", 0, "--video_save_folder", out)
        assert res.exit_code == 0, res.output
        assert read_video(out / "output.mp4")[1] == pytest.approx(fps)
        assert json.loads((out / "output_run.json").read_text())["fps"] == fps  # and a re-run keeps it
        assert json.loads((out / "output_cameras.json").read_text())["fps"] == pytest.approx(fps)


def test_vipe_video_to_video_starting_frame_and_buffers(inputs, clip, tmp_path):
    res = invoke("--vipe_path", inputs["vipe"], "--vipe_starting_frame_idx", 2, "--resolution", RES, "--num_video_frames", 12,
                 "--movement_distance", 0, "--save_buffer", "--video_save_folder", tmp_path)  # fmt: skip
    assert res.exit_code == 0, res.output
    frames, _ = read_video(tmp_path / "output.mp4")
    assert frames.shape == (12, 64, 256, 3)  # the 4D cache's one buffer, left of the frame
    generated, buffer = frames[..., 128:, :], frames[..., :128, :]
    assert psnr(generated[0], clip[0][2, 4:68]) > 30  # frame 0 = source frame 2
    # The sphere moves in the source video and moves in the output too (a 4D cache).
    assert psnr(buffer[0], buffer[7]) < 30
    # Source frames 2 … 9 fill outputs 0 … 7; the outputs past the clip's end hold its last frame …
    assert psnr(buffer[7], buffer[11]) > 45 and psnr(buffer[6], buffer[7]) < 40
    # … which the run says, with the count that ends with the video
    assert "output frames 8…11 render its last frame (9), frozen; pass --num_video_frames 8 to stay within it" in " ".join(res.output.split())


def test_a_short_video_names_the_count_the_generator_can_make_within_it(inputs):
    """The note offers the most frames within the video that the generator makes: any count for
    the preview; none for the tiny model (16·N+1 frames) from a 10-frame clip, and it says why."""
    from gen3c.pipelines.request import GenerationRequest, load_scene

    def note_for(**settings):
        request = GenerationRequest(input_image_path=str(inputs["sample"]), resolution=RES, **settings)
        with pytest.warns(UserWarning, match="render its last frame") as caught:
            load_scene(request)
        return " ".join(str(w.message) for w in caught if issubclass(w.category, UserWarning))

    assert note_for(num_video_frames=12).endswith("frozen; pass --num_video_frames 10 to stay within it")
    assert note_for(num_video_frames=3, vipe_starting_frame_idx=9).startswith("the video has 1 frame from frame 9 on,")  # (was "1 frames")
    tiny = {"generator": "gen3c", "generator_options": {"model": "tiny"}}
    assert note_for(num_video_frames=17, **tiny).endswith("frozen (the gen3c generator makes at least 17 frames)")


def test_multiview_npz(inputs, clip, tmp_path):
    res = invoke("--multiview_npz", inputs["multiview"], "--resolution", RES, "--num_video_frames", 10,
                 "--save_buffer", "--video_save_folder", tmp_path)  # fmt: skip
    assert res.exit_code == 0, res.output
    frames, _ = read_video(tmp_path / "output.mp4")
    assert frames.shape == (10, 64, 384, 3)  # 2 selected key views + the frame
    generated = frames[..., 256:, :]
    masks, _ = read_video(tmp_path / "output_buffer_masks.mp4")
    seen = (masks[..., :128, 0] > 128) | (masks[..., 128:, 0] > 128)  # pixels either buffer covers
    assert seen.mean() > 0.6
    truth = inputs["static"][:, 4:68]  # the trajectory passes the key views' cameras (frames 0, 5, 9)
    for t, floor in ((0, 30), (4, 25), (9, 25)):  # reprojection at 64×128 blurs a little
        assert psnr(generated[t][seen[t]], truth[t][seen[t]]) > floor, t
    assert psnr(generated[0], generated[9]) < 25  # the camera travels across the scene


def test_241_frames_autoregressive_preview_is_continuous(box_scene, tmp_path):
    image, depth, _, _ = box_scene
    # (Below ~48×80 the 5×5 depth-edge filter eats so much of the new buffer that the boundary shows.)
    res = invoke("--input_image_path", image, "--depth_path", depth, "--fov", 60, "--resolution", "64x112",
                 "--num_video_frames", 241, "--movement_distance", 0.6, "--save_buffer", "--video_save_folder", tmp_path)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Chunk 2/2: generating (preview)" in res.output and "241 frames in 2 chunks" in res.output
    frames, _ = read_video(tmp_path / "output.mp4")
    assert frames.shape == (241, 64, 112 * 3, 3)  # chunk 2 renders 2 buffers (source + frame 120)
    video = frames[..., 224:, :].astype(float)
    steps = np.abs(np.diff(video, axis=0)).mean(axis=(1, 2, 3))
    # No jumps anywhere … (frame 0 is the source image itself; the preview inpaints the depth-edge
    # rim from frame 1 on, a step of its own that single-chunk runs show too)
    assert steps[1:].max() < 4
    assert steps[120] <= 2 * np.median(steps[100:140]) + 0.5  # … in particular not at the chunk boundary
    assert np.abs(video[240] - video[0]).mean() > 5  # and the camera did move
    cams = load_camera_file(tmp_path / "output_cameras.json")
    moves = (cams.centers[1:] - cams.centers[:-1]).norm(dim=-1)
    assert len(cams) == 241 and torch.allclose(moves[119:121], moves[100], rtol=0.02)


def test_a_long_videos_path_is_one_preset_over_all_its_frames(box_scene, tmp_path):
    """GEN3C builds the path for all --num_video_frames and cuts each chunk's 121 cameras from it
    (gen3c_single_image.py): left, no rotation, d = 0.3, look-at depth 1 (--trajectory_scale
    gen3c) puts camera i at x = −0.3·i/241 (divisor n = 241, not 121 or 240), looking along +z."""
    image, depth, _, _ = box_scene
    res = invoke("--input_image_path", image, "--depth_path", depth, "--fov", 60, "--resolution", "16x24", "--num_video_frames", 241,
                 "--camera_rotation", "no_rotation", "--trajectory_scale", "gen3c", "--video_save_folder", tmp_path)  # fmt: skip
    assert res.exit_code == 0, res.output
    cams = load_camera_file(tmp_path / "output_cameras.json")
    i = torch.arange(241, dtype=torch.float64)
    expected = torch.stack([-0.3 * i / 241, 0 * i, 0 * i], dim=1)
    assert torch.allclose(cams.centers.double(), expected, atol=1e-6)
    assert cams.centers[120, 0] == pytest.approx(-36 / 241) and cams.centers[240, 0] == pytest.approx(-72 / 241)
    assert torch.allclose(cams.w2c[:, :3, :3], torch.eye(3).expand(241, 3, 3), atol=1e-6)


def test_chunked_preview_when_asked(box_scene, tmp_path):
    image, depth, _, _ = box_scene
    res = invoke("--input_image_path", image, "--depth_path", depth, "--fov", 60, "--resolution", "32x56",
                 "--num_video_frames", 20, "--chunk_frames", 8, "--video_save_folder", tmp_path)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Chunk 3/3" in res.output
    assert read_video(tmp_path / "output.mp4")[0].shape[0] == 20


def test_a_bad_input_is_refused_before_the_model_loads(inputs, tmp_path, monkeypatch):
    """The input is read first: a mistake in it ends the run in a second, not after the minutes
    GEN3C-7B takes to load."""
    import gen3c.pipelines.request as request_module

    loaded = []
    monkeypatch.setattr(request_module, "make_generator", lambda request, progress=None: loaded.append(request.generator))
    broken = tmp_path / "broken"
    (broken / "rgb").mkdir(parents=True)
    (broken / "pose").mkdir()
    res = invoke("--vipe_path", broken, "--generator", "gen3c", "--model", "tiny", "--resolution", RES, "--video_save_folder", tmp_path / "out")
    assert res.exit_code == 2 and "lacks intrinsics/:" in res.output, res.output
    assert loaded == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "case, match",
    [
        ("no_input", "no input"),
        ("two_inputs", "pass one input"),
        ("depth_with_sample", "--depth_path applies to a single image"),
        ("sample_missing_file", "lacks camera.npz"),
        ("empty_folder", "lacks rgb.mp4, depth.npz"),
        ("sample_start_past_end", r"--vipe_starting_frame_idx 10 is outside .*rgb.mp4, which has 10 frames: pass 0 … 9$"),  # it named no flag
        ("vipe_missing_folder", "lacks intrinsics/"),
        ("sample_as_vipe", "is a GEN3C sample directory .*: pass it as --input_image_path"),
        ("multiview_as_image", r"not a readable image .*multi-view key frames go in with --multiview_npz"),
        ("vipe_two_clips", "--vipe_clip"),
        ("vipe_bad_depth", "00003.exr"),
        ("multiview_missing_key", "lacks K_key_frames"),
        ("multiview_too_few_cameras", "10 cameras in w2cs_all"),
        ("gen3c_frame_count", r"121, 241, 361"),
        ("gen3c_camera_file_count", r"camera file .*cams.json' has 9 cameras, a count the gen3c generator cannot make .* camera file of 16·N\+1 cameras \(17, 33"),
        # refused before the video is read: no note first offering "a --camera_file of 10 cameras" (hence ^)
        ("camera_file_count_past_the_video", r"^error: camera file .*cams.json' has 8 cameras but 12 frames were asked for: pass --num_video_frames 8 or a file with 12 cameras$"),
        ("chunk_too_small", "chunk_frames 1"),
        ("legacy_pickle", "--trust_checkpoint"),
        ("estimator_with_video", "--depth_estimator applies to a single image"),
        ("moge_with_video", "--depth_estimator applies to a single image"),  # moge typed out was the default: ignored
    ],
)
def test_bad_video_inputs_are_one_line_exit_2(case, match, inputs, clip, tmp_path):
    import shutil

    out = tmp_path / "out"
    args = {"--resolution": RES, "--num_video_frames": "9", "--video_save_folder": out}
    rgb, depth, ids, w2c, K = clip
    if case == "no_input":
        pass
    elif case == "two_inputs":
        args.update({"--input_image_path": inputs["sample"], "--vipe_path": inputs["vipe"]})
    elif case == "depth_with_sample":
        args.update({"--input_image_path": inputs["sample"], "--depth_path": tmp_path / "d.npy"})
    elif case == "sample_missing_file":
        folder = shutil.copytree(inputs["sample"], tmp_path / "s")
        (folder / "camera.npz").unlink()
        args["--input_image_path"] = folder
    elif case == "empty_folder":
        (tmp_path / "empty").mkdir()
        args["--input_image_path"] = tmp_path / "empty"
    elif case == "sample_start_past_end":
        args.update({"--input_image_path": inputs["sample"], "--vipe_starting_frame_idx": "10"})
    elif case == "vipe_missing_folder":
        root = shutil.copytree(inputs["vipe"], tmp_path / "v")
        shutil.rmtree(root / "intrinsics")
        args["--vipe_path"] = root
    elif case == "sample_as_vipe":
        args["--vipe_path"] = inputs["sample"]
    elif case == "multiview_as_image":
        args["--input_image_path"] = inputs["multiview"]
    elif case == "vipe_two_clips":
        root = shutil.copytree(inputs["vipe"], tmp_path / "v")
        write_vipe(root, "other", rgb[:3], depth[:3], w2c[:3], K[:3])
        args["--vipe_path"] = root
    elif case == "vipe_bad_depth":
        import zipfile

        root = shutil.copytree(inputs["vipe"], tmp_path / "v")
        with zipfile.ZipFile(root / "depth" / "walk.zip") as z:
            members = {n: z.read(n) for n in z.namelist()}
        members["00003.exr"] = b"garbage"
        with zipfile.ZipFile(root / "depth" / "walk.zip", "w") as z:
            for n, data in members.items():
                z.writestr(n, data)
        args["--vipe_path"] = root
    elif case == "multiview_missing_key":
        data = dict(np.load(inputs["multiview"]))
        del data["K_key_frames"]
        np.savez(tmp_path / "mv.npz", **data)
        args["--multiview_npz"] = tmp_path / "mv.npz"
    elif case == "multiview_too_few_cameras":
        args.update({"--multiview_npz": inputs["multiview"], "--num_video_frames": "17"})
    elif case == "gen3c_frame_count":
        args.update({"--vipe_path": inputs["vipe"], "--generator": "gen3c", "--num_video_frames": "200"})
    elif case == "gen3c_camera_file_count":  # the count comes from the file: the fix is another file
        from gen3c.cameras import Cameras
        from gen3c.io.camera_files import save_cameras

        save_cameras(tmp_path / "cams.json", Cameras(w2c[:9], K[:9], H, W))
        del args["--num_video_frames"]
        args.update({"--vipe_path": inputs["vipe"], "--generator": "gen3c", "--model": "tiny", "--camera_file": tmp_path / "cams.json"})
    elif case == "camera_file_count_past_the_video":
        from gen3c.cameras import Cameras
        from gen3c.io.camera_files import save_cameras

        save_cameras(tmp_path / "cams.json", Cameras(w2c[:8], K[:8], H, W))
        args.update({"--input_image_path": inputs["sample"], "--camera_file": tmp_path / "cams.json", "--num_video_frames": "12"})
    elif case == "chunk_too_small":
        args.update({"--vipe_path": inputs["vipe"], "--chunk_frames": "1"})
    elif case == "legacy_pickle":
        torch.save({"frames": [1, 2, 3], "fn": np.random.default_rng}, tmp_path / "old.pt")
        args["--input_image_path"] = tmp_path / "old.pt"
    elif case == "estimator_with_video":  # the video's own depth is used: the flag would do nothing
        args.update({"--vipe_path": inputs["vipe"], "--depth_estimator": "prior"})
    elif case == "moge_with_video":
        args.update({"--vipe_path": inputs["vipe"], "--depth_estimator": "moge"})
    argv = [str(x) for k, v in args.items() for x in (k, v)]
    res = invoke(*argv)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and re.search(match, res.output.strip()), res.output
    assert len([line for line in res.output.splitlines() if line.strip()]) <= 3
    assert not out.exists() or not any(out.iterdir())


def test_a_multiview_npz_of_fewer_cameras_than_the_default_count_says_the_flag_to_pass(inputs, tmp_path):
    """A multi-view npz of 10 cameras run without --num_video_frames (GEN3C's 121 by default) is
    one line naming the npz, its count and the flag that fits (it said "pass at most 10"); the
    gen3c generator's advice is a count it can make, or a camera file where none fits."""
    npz = inputs["multiview"]
    res = invoke("--multiview_npz", npz, "--resolution", RES, "--video_save_folder", tmp_path / "out")
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (
        f"error: multi-view npz {str(npz)!r} has 10 cameras in w2cs_all but --num_video_frames is 121 (the default: GEN3C's chunk): "
        "pass --num_video_frames 10, or a --camera_file with 121 cameras"
    )
    from gen3c.pipelines.request import GenerationRequest, _too_few_cameras

    tiny = {"multiview_npz": str(npz), "generator": "gen3c", "generator_options": {"model": "tiny"}}  # 17 frames per chunk
    assert _too_few_cameras(GenerationRequest(**tiny), 10).endswith(
        "is 17 (the default: the model's chunk): the gen3c generator makes 17 frames per chunk, more than its cameras: "
        "pass a --camera_file with 17 cameras instead"
    )
    assert _too_few_cameras(GenerationRequest(**tiny, num_video_frames=65), 40).endswith(
        "is 65: pass --num_video_frames 33 (the gen3c generator makes 16·N+1 frames), or a --camera_file with 65 cameras"
    )
