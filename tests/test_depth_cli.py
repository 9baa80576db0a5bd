"""Depth on the command line: ``gen3c depth IMAGE`` and ``generate`` without ``--depth_path``."""

import json

import numpy as np
import pytest
import torch
from test_depth_moge import tiny_checkpoint
from typer.testing import CliRunner

from gen3c.cli import app
from gen3c.io.ply import read_ply
from gen3c.io.video import read_video

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def moge_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("moge_cli") / "model.pt"
    torch.save(tiny_checkpoint(), path)
    return path


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty Hugging Face cache: the default estimator cannot load."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def test_depth_command_writes_png_npy_ply_json(box_scene, tmp_path):
    image, _, _, _ = box_scene
    res = invoke("depth", image, "--depth_estimator", "prior", "--output_folder", tmp_path, "--fov", "70")
    assert res.exit_code == 0, res.output
    depth = np.load(tmp_path / "image_depth.npy")
    assert depth.shape == (96, 160) and depth.dtype == np.float32
    points, colors = read_ply(tmp_path / "image_points.ply")
    assert points.shape == (96 * 160, 3) and colors.shape == (96 * 160, 3)
    assert torch.allclose(points[:, 2], torch.from_numpy(depth).reshape(-1))  # z-depth
    info = json.loads((tmp_path / "image_depth.json").read_text())
    assert info["kind"] == "relative" and info["source"] == "prior" and info["intrinsics_from"] == "user"
    from PIL import Image

    with Image.open(tmp_path / "image_depth.png") as picture:
        assert picture.size == (160, 96)


def test_the_depth_picture_given_as_depth_names_the_npy_beside_it(box_scene, tmp_path):
    """gen3c depth's NAME_depth.png is false colour, not depth: --depth_path with it (the name says
    depth) is one line naming NAME_depth.npy beside it. Before: "depth PNGs must be single-channel
    16-bit", no word of where the depth is."""
    image, _, _, _ = box_scene
    assert invoke("depth", image, "--depth_estimator", "prior", "--output_folder", tmp_path, "--fov", "70").exit_code == 0
    res = invoke("generate", "--input_image_path", image, "--depth_path", tmp_path / "image_depth.png", "--generator", "preview",
                 "--num_video_frames", 3, "--resolution", "32x48", "--video_save_folder", tmp_path / "out")  # fmt: skip
    assert res.exit_code == 2 and "Traceback" not in res.output and not (tmp_path / "out").exists()
    npy = str(tmp_path / "image_depth.npy")
    assert f"is a PNG of mode RGB, a picture of depth, not its values (depth PNGs are single-channel 16-bit): pass {npy!r} beside it" in res.output


def test_depth_command_with_moge_checkpoint_at_a_resolution(box_scene, tmp_path, moge_path):
    image, _, _, _ = box_scene
    res = invoke("depth", image, "--depth_estimator", moge_path, "--output_folder", tmp_path, "--resolution", "64x112", "--name", "m")
    assert res.exit_code == 0, res.output
    assert np.load(tmp_path / "m_depth.npy").shape == (64, 112)
    info = json.loads((tmp_path / "m_depth.json").read_text())
    assert info["kind"] == "relative" and info["source"].startswith("moge:") and info["median_depth"] == pytest.approx(2.0, rel=0.02)




def test_depth_outputs_agree_points_are_the_npy_unprojected_with_the_json_camera(box_scene, tmp_path, moge_path):
    """The five files of `gen3c depth` describe one depth: the .ply holds, in row-major order, the
    pixels the mask trusts, each at (u − cx, v − cy) · z / (fx, fy) and z of the .npy, with the
    camera and size of the .json (closed form, not gen3c's unprojection; at a --resolution of another
    aspect ratio, so fx ≠ fy), and the json's median is that of the trusted depth (torch's lower
    middle value)."""
    from PIL import Image

    image, _, _, _ = box_scene
    res = invoke("depth", image, "--depth_estimator", moge_path, "--output_folder", tmp_path, "--resolution", "64x112")
    assert res.exit_code == 0, res.output
    depth = np.load(tmp_path / "image_depth.npy").astype(np.float64)
    info = json.loads((tmp_path / "image_depth.json").read_text())
    with Image.open(tmp_path / info["mask"]) as im:
        mask = np.asarray(im) == 255
    assert depth.shape == mask.shape == (info["height"], info["width"]) == (64, 112)
    (fx, _, cx), (_, fy, cy), _ = info["intrinsics"]
    assert abs(fx / fy - 1) > 0.01  # the stretched camera: x and y scales are told apart
    v, u = np.nonzero(mask)  # row-major, as the points are written
    z = depth[v, u]
    expected = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], -1)
    points, _ = read_ply(tmp_path / "image_points.ply")
    assert 0 < len(expected) and points.shape == expected.shape
    np.testing.assert_allclose(points.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert info["median_depth"] == pytest.approx(float(np.sort(z)[(len(z) - 1) // 2]), rel=1e-6)
    assert info["valid_fraction"] == pytest.approx(mask.mean())


def test_depth_command_offline_is_one_line_exit_2(box_scene, tmp_path, offline):
    image, _, _, _ = box_scene
    res = invoke("depth", image, "--output_folder", tmp_path)
    assert res.exit_code == 2
    assert "Ruicheng/moge-vitl" in res.output and "not in the local Hugging Face cache" in res.output
    # The fix names where the downloaded file goes (it said "pass its path", to no flag).
    assert res.output.rstrip().endswith("on a machine with internet and pass its path as --depth_estimator")
    assert not list(tmp_path.glob("*_depth.*"))


def test_depth_command_refuses_an_unusable_output_folder_before_the_model_loads(box_scene, tmp_path, offline):
    """A file where the folder should be is the error, not the estimator that could not load (it
    was found only after the model had loaded and run); a folder made for a failed run goes again."""
    image, _, _, _ = box_scene
    blocker = tmp_path / "taken"
    blocker.write_text("")
    res = invoke("depth", image, "--output_folder", blocker)
    assert res.exit_code == 2 and res.output.startswith("error: --output_folder") and "is a file, not a folder" in res.output
    res = invoke("depth", image, "--output_folder", tmp_path / "new" / "deeper")
    assert res.exit_code == 2 and "not in the local Hugging Face cache" in res.output
    assert not (tmp_path / "new").exists()


def test_generate_without_depth_falls_back_to_the_prior_and_says_so(box_scene, tmp_path, offline):
    image, _, _, _ = box_scene
    res = invoke("generate", "--input_image_path", image, "--resolution", "96x160", "--num_video_frames", 9,
                 "--video_save_folder", tmp_path)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "geometric prior" in res.output and "--depth_path" in res.output
    frames, _ = read_video(tmp_path / "output.mp4")
    assert frames.shape == (9, 96, 160, 3)
    # The record names no estimator, as none was asked (run again, it falls back again); its notes say the prior ran.
    run = json.loads((tmp_path / "output_run.json").read_text())
    assert run["depth_estimator"] is None and len(run["notes"]) == 1 and "geometric prior" in run["notes"][0]


@pytest.mark.parametrize("named", ["moge", "Ruicheng/moge-vitl"])
def test_generate_with_moge_named_offline_is_refused_not_replaced_by_the_prior(box_scene, tmp_path, offline, named):
    """`--depth_estimator moge` typed out was the default itself: offline, the preview ran on the
    geometric prior's made-up depth with a note, as without the flag. Named, it is the user's
    choice: one line, exit 2, no output. Without the flag the preview still falls back."""
    image, _, _, _ = box_scene
    common = ("--input_image_path", image, "--resolution", "96x160", "--num_video_frames", 9, "--video_save_folder", tmp_path / "out")
    res = invoke("generate", *common, "--depth_estimator", named)
    assert res.exit_code == 2, res.output
    (line,) = res.output.splitlines()
    assert line == (
        "error: MoGe 'Ruicheng/moge-vitl' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: download model.pt on a machine "
        f"with internet and pass its path as --depth_estimator (--depth_estimator '{named}' was asked for by name, so the preview does not fall back to the "
        "geometric prior: leave it out for that)"
    )
    assert not (tmp_path / "out").exists()
    res = invoke("generate", *common)
    assert res.exit_code == 0 and "using a flat geometric prior" in res.output and (tmp_path / "out" / "output.mp4").is_file()


def test_generate_with_a_mistyped_estimator_is_one_line_exit_2(box_scene, tmp_path, offline):
    """`--depth_estimator mogee` is a typo, not weights that cannot be fetched: refused in one line
    naming the choices, where the preview used to run on the geometric prior with a note."""
    image, _, _, _ = box_scene
    res = invoke("generate", "--input_image_path", image, "--depth_estimator", "mogee", "--resolution", "96x160",
                 "--num_video_frames", 9, "--video_save_folder", tmp_path / "out")  # fmt: skip
    assert res.exit_code == 2, res.output
    (line,) = res.output.splitlines()
    assert line.startswith("error: --depth_estimator 'mogee' is unknown (did you mean 'moge'?): pass moge, prior,")
    assert not (tmp_path / "out").exists()


def test_gen3c_generate_refuses_a_mistyped_estimator_before_the_model_or_the_input(box_scene, tmp_path, monkeypatch):
    """The typo is a setting's (check_request's), refused before the gen3c generator's modules are
    imported and the input read: it used to be found only when the estimator loaded, after
    check_generator had imported the diffusion model's modules."""
    import gen3c.depth
    import gen3c.pipelines.options

    def loaded(*args, **kwargs):
        raise AssertionError("loaded before the typo was refused")

    monkeypatch.setattr(gen3c.pipelines.options, "check_generator", loaded)
    monkeypatch.setattr(gen3c.depth, "cached_depth_estimator", loaded)
    image, _, _, _ = box_scene
    res = invoke("generate", "--generator", "gen3c", "--model", "tiny", "--input_image_path", image, "--depth_estimator", "mogee",
                 "--video_save_folder", tmp_path / "out")  # fmt: skip
    assert res.exit_code == 2, res.output
    (line,) = res.output.splitlines()
    assert line.startswith("error: --depth_estimator 'mogee' is unknown (did you mean 'moge'?): pass moge, prior,")
    assert not (tmp_path / "out").exists()


def test_generate_with_a_moge_checkpoint_gen3c_resize(box_scene, tmp_path, moge_path):
    image, _, _, _ = box_scene
    res = invoke("generate", "--input_image_path", image, "--depth_estimator", moge_path, "--resize_mode", "stretch",
                 "--resolution", "96x160", "--num_video_frames", 9, "--video_save_folder", tmp_path)  # fmt: skip
    assert res.exit_code == 0, res.output
    run = json.loads((tmp_path / "output_run.json").read_text())
    assert run["depth_estimator"] == str(moge_path)
    assert read_video(tmp_path / "output.mp4")[0].shape == (9, 96, 160, 3)


def test_user_depth_without_camera_uses_the_estimators(box_scene, tmp_path):
    image, depth, _, _ = box_scene
    res = invoke("generate", "--input_image_path", image, "--depth_path", depth, "--depth_estimator", "prior",
                 "--resolution", "96x160", "--num_video_frames", 9, "--video_save_folder", tmp_path)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "default camera" in res.output


@pytest.mark.slow
def test_exported_depth_fed_back_reproduces_the_run(box_scene, tmp_path, moge_path):
    """`gen3c depth` then `generate --depth_path NAME_depth.npy --intrinsics NAME_depth.json` gives
    the video the estimator gave. MoGe's depth is relative; read back it used to be taken as
    metric, so the preset path was scaled by its median depth (≈ 2): twice as far."""
    image, _, _, _ = box_scene
    common = ("--input_image_path", image, "--resolution", "48x80", "--num_video_frames", 5, "--video_save_folder", tmp_path)
    res = invoke("generate", *common, "--depth_estimator", moge_path, "--video_save_name", "direct")
    assert res.exit_code == 0, res.output
    res = invoke("depth", image, "--depth_estimator", moge_path, "--output_folder", tmp_path / "d")
    assert res.exit_code == 0, res.output
    npy, record = tmp_path / "d" / "image_depth.npy", tmp_path / "d" / "image_depth.json"
    res = invoke("generate", *common, "--depth_path", npy, "--intrinsics", record, "--video_save_name", "fed")
    assert res.exit_code == 0, res.output
    assert "relative depth from moge:" in res.output and "as recorded in image_depth.json" in res.output
    # Without --intrinsics the recorded camera is used; a --depth_estimator would do nothing, so it is refused.
    res = invoke("generate", *common, "--depth_path", npy, "--depth_estimator", "prior", "--video_save_name", "bare")
    assert res.exit_code == 2 and "--depth_estimator is not used" in res.output and "image_depth.json" in res.output
    assert not (tmp_path / "bare.mp4").exists()
    res = invoke("generate", *common, "--depth_path", npy, "--video_save_name", "bare")
    assert res.exit_code == 0, res.output
    direct = read_video(tmp_path / "direct.mp4")[0]
    for name in ("fed", "bare"):
        assert np.array_equal(read_video(tmp_path / f"{name}.mp4")[0], direct), name
        assert json.loads((tmp_path / f"{name}_cameras.json").read_text())["frames"] == json.loads(
            (tmp_path / "direct_cameras.json").read_text()
        )["frames"]


def test_depth_exported_at_a_resolution_keeps_its_camera_for_the_full_size_photo(box_scene, tmp_path, moge_path):
    """The record of `gen3c depth --resolution 48x80` holds K at 48×80; given with the 96×160 photo
    it is scaled to the photo (it was taken as the photo's pixels: a camera with twice the FOV)."""
    image, _, _, _ = box_scene
    res = invoke("depth", image, "--depth_estimator", moge_path, "--output_folder", tmp_path, "--resolution", "48x80")
    assert res.exit_code == 0, res.output
    small = torch.tensor(json.loads((tmp_path / "image_depth.json").read_text())["intrinsics"])
    res = invoke("generate", "--input_image_path", image, "--depth_path", tmp_path / "image_depth.npy", "--intrinsics",
                 tmp_path / "image_depth.json", "--resolution", "48x80", "--num_video_frames", 3, "--video_save_folder", tmp_path)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "made for a 80×48 image: scaled to the 160×96 input" in res.output
    K = torch.tensor(json.loads((tmp_path / "output_cameras.json").read_text())["frames"][0]["K"])
    assert torch.allclose(K, small, atol=1e-4)  # back at 48×80, the camera is the one recorded there


@pytest.mark.parametrize("command", ["generate", "depth"])
def test_a_missing_depth_package_stops_with_the_pip_line_and_names_the_prior(box_scene, tmp_path, monkeypatch, command):
    """A missing package (huggingface_hub, from gen3c[depth]) is not weights that cannot load: even
    the preview stops, with the pip line, and it now names the weight-free way to a preview."""
    import sys

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # importing it now raises ImportError
    image, _, _, _ = box_scene
    if command == "generate":
        res = invoke("generate", "--input_image_path", image, "--resolution", "96x160", "--video_save_folder", tmp_path)
    else:
        res = invoke("depth", image, "--output_folder", tmp_path)
    assert res.exit_code == 2, res.output
    (line,) = res.output.splitlines()
    assert line.startswith("error: downloading MoGe") and "(huggingface_hub is missing): pip install 'gen3c[depth]'" in line
    assert line.endswith("; or --depth_estimator prior: no weights or packages, a plausible parallax for previews, not the photo's depth")
    assert list(tmp_path.iterdir()) == []


def test_generate_reads_a_float_tiff_depth_and_a_16_bit_one_with_its_scale(box_scene, tmp_path):
    """`--depth_path depth.tif` (32-bit float, as depth tools write it) was refused as an unsupported
    format; a 16-bit TIFF takes --png_depth_scale as a 16-bit PNG does. Both make the .npy's video."""
    from PIL import Image

    image, depth, _, values = box_scene
    Image.fromarray(values.numpy()).save(tmp_path / "d.tif")
    Image.fromarray((values.numpy() * 2).astype(np.uint16)).save(tmp_path / "d16.tiff")  # half units: 2 → 4
    common = ("--input_image_path", image, "--fov", 60, "--resolution", "96x160", "--num_video_frames", 9, "--video_save_folder", tmp_path)
    for name, args in (("npy", ("--depth_path", depth)), ("tif", ("--depth_path", tmp_path / "d.tif")),
                       ("tiff16", ("--depth_path", tmp_path / "d16.tiff", "--png_depth_scale", 0.5))):  # fmt: skip
        res = invoke("generate", *common, *args, "--video_save_name", name)
        assert res.exit_code == 0, res.output
    frames = [read_video(tmp_path / f"{name}.mp4")[0] for name in ("npy", "tif", "tiff16")]
    assert np.array_equal(frames[0], frames[1]) and np.array_equal(frames[0], frames[2])
    res = invoke("generate", *common, "--depth_path", tmp_path / "d.tif", "--png_depth_scale", 0.5, "--video_save_name", "scaled")
    assert res.exit_code == 2 and res.output.startswith("error: depth file ") and "holds 32-bit float depth, read as it is" in res.output
    assert res.output.rstrip().endswith("drop --png_depth_scale") and "\n" not in res.output.rstrip()


def test_disparity_given_with_depth_is_disparity_is_read_as_relative_depth(box_scene, tmp_path):
    """MiDaS writes 16-bit PNGs of disparity; read as millimetres of depth, the box (2 m) came out
    behind the wall (4 m). With --depth_is_disparity, depth = 1 / disparity scaled to median 1: the
    box scene's depth ÷ 4, relative (GEN3C's units), the video of that depth under --trajectory_scale
    gen3c. The PNG scale cancels out. Before, the flag was an unknown option."""
    from PIL import Image

    image, _, _, depth = box_scene
    disparity = (40000 / depth.numpy()).astype(np.uint16)  # 10000 at the wall, 20000 on the box: exact
    Image.fromarray(disparity).save(tmp_path / "midas.png")
    np.save(tmp_path / "quarter.npy", depth.numpy() / 4)
    common = ("--input_image_path", image, "--fov", 60, "--resolution", "32x48", "--num_video_frames", 2, "--video_save_folder", tmp_path)
    res = invoke("generate", *common, "--depth_path", tmp_path / "midas.png", "--depth_is_disparity", "--video_save_name", "disparity")
    assert res.exit_code == 0, res.output
    assert "midas.png': read as disparity: depth = 1 / disparity up to scale (shift taken as 0), its median 1 (relative depth)\n" in res.output
    for name, args in (("relative", ("--depth_path", tmp_path / "quarter.npy", "--trajectory_scale", "gen3c")),
                       ("as_depth", ("--depth_path", tmp_path / "midas.png"))):  # fmt: skip
        assert invoke("generate", *common, *args, "--video_save_name", name).exit_code == 0
    frames = {name: read_video(tmp_path / f"{name}.mp4")[0] for name in ("disparity", "relative", "as_depth")}
    assert np.array_equal(frames["disparity"], frames["relative"]) and not np.array_equal(frames["as_depth"], frames["relative"])
    assert json.loads((tmp_path / "disparity_run.json").read_text())["depth_is_disparity"] is True


def test_depth_is_disparity_refusals_are_one_line(box_scene, tmp_path):
    """The flag without depth to read, on gen3c depth's z-depth export, on a map with no
    disparity > 0, or beside --png_depth_scale (even typed at its default), which the median 1
    cancels out: one line naming the fix, nothing written. Before, the scale was taken and did nothing."""
    from PIL import Image

    image, _, _, depth = box_scene
    assert invoke("depth", image, "--depth_estimator", "prior", "--output_folder", tmp_path, "--fov", 60).exit_code == 0
    np.save(tmp_path / "negative.npy", -depth.numpy())
    Image.fromarray((40000 / depth.numpy()).astype(np.uint16)).save(tmp_path / "midas.png")
    scale_refusal = "error: --png_depth_scale does nothing with --depth_is_disparity: the disparity's depth is scaled to median 1, so its PNG scale cancels out: drop it"
    common = ("--input_image_path", image, "--fov", 60, "--resolution", "32x48", "--num_video_frames", 2, "--video_save_folder", tmp_path / "out")
    cases = {
        (): "error: --depth_is_disparity applies to the depth given for a single image (--depth_path): ",
        ("--depth_path", tmp_path / "image_depth.npy"): "image_depth.npy' is z-depth (relative, from prior, recorded in image_depth.json), not disparity: drop --depth_is_disparity",
        ("--depth_path", tmp_path / "negative.npy"): "negative.npy' has no disparity > 0 (all NaN/inf/≤ 0), read as disparity (--depth_is_disparity, larger = nearer): ",
        ("--depth_path", tmp_path / "midas.png", "--png_depth_scale", 0.5): scale_refusal,
        ("--depth_path", tmp_path / "midas.png", "--png_depth_scale", 0.001): scale_refusal,
    }  # fmt: skip
    for args, message in cases.items():
        res = invoke("generate", *common, *args, "--depth_is_disparity")
        assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output, res.output
        assert [line for line in res.output.splitlines() if line.startswith("error")] == [res.output.splitlines()[-1]]
    assert not (tmp_path / "out").exists()


def test_the_disparity_note_says_where_the_untrusted_pixels_go(box_scene, tmp_path):
    """Disparity below 1 % of its peak (a far band) is untrusted: the note says it sits at 100 × the
    nearest depth, and with --mask_invalid_depth that it is left out of the cache, as the z-depth
    note of NaN pixels says. Before, the note with the flag still said they sat far away and that
    the flag (given) would leave them out."""
    image, _, _, depth = box_scene
    disparity = 1 / depth.numpy()
    disparity[:8] = 1e-4  # a far band: 8 rows of 96 (8.3 %)
    np.save(tmp_path / "disparity.npy", disparity)
    common = ("--input_image_path", image, "--fov", 60, "--resolution", "32x48", "--num_video_frames", 2, "--video_save_folder", tmp_path)
    said = "disparity.npy': read as disparity: depth = 1 / disparity up to scale (shift taken as 0), its median 1 (relative depth); "
    said += "1280 pixels (8.3%) of disparity below 1% of its peak (or NaN/inf/≤ 0) are untrusted and "
    for flags, where in (((), "sit at 100 × the nearest depth (--mask_invalid_depth leaves them out)\n"),
                         (("--mask_invalid_depth",), "left out of the cache\n")):  # fmt: skip
        res = invoke("generate", *common, "--depth_path", tmp_path / "disparity.npy", "--depth_is_disparity", *flags, "--video_save_name", "v")
        assert res.exit_code == 0, res.output
        assert said + where in res.output, res.output
