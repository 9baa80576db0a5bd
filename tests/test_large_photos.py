"""Large photos (48–200 MP phone photos) are brought down once, as they are read: ``gen3c depth``
writes at most :data:`gen3c.io.images.LARGE_IMAGE_PIXELS` unless told ``--full_size``, and
generation carries no more than the working resolution can use. Normal-size inputs are untouched.

The tests lower the limit to a few thousand pixels so that small images stand for large ones."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import gen3c.io.images as images
from gen3c.cameras import intrinsics_from_fov, resize_crop_intrinsics, resize_intrinsics
from gen3c.cli import app
from gen3c.depth import GeometricPriorEstimator
from gen3c.io.images import large_image_size, load_image, read_photo

runner = CliRunner()
LIMIT = 12_000  # pixels: a 96×160 image (15 360) is "large" under it


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def low_limit(monkeypatch):
    monkeypatch.setattr(images, "LARGE_IMAGE_PIXELS", LIMIT)


@pytest.fixture
def seen(monkeypatch):
    """The (H, W) of every image the prior estimator is given."""
    sizes = []
    estimate = GeometricPriorEstimator.estimate

    def spy(self, image, **kwargs):
        sizes.append(tuple(image.shape[-2:]))
        return estimate(self, image, **kwargs)

    monkeypatch.setattr(GeometricPriorEstimator, "estimate", spy)
    return sizes


def textured(path, height, width):
    yy, xx = np.mgrid[:height, :width]
    rgb = np.stack([(xx * 7 + yy) % 256, (yy * 5) % 256, (xx * yy) % 256], -1).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def test_large_image_size_keeps_the_aspect_ratio_within_the_limit():
    assert large_image_size((6000, 8000)) == (1731, 2308)  # 48 MP 4:3 → 4.0 MP, exactly 3:4
    assert large_image_size((12240, 16320)) == (1731, 2308)  # 200 MP
    assert large_image_size((12000, 9000)) == (2308, 1731)  # 108 MP portrait
    assert large_image_size((2160 * 2, 3840 * 2)) == (1494, 2656)  # 8K video frame: exactly 9:16
    assert large_image_size((5999, 8000)) == (1731, 2309)  # no small common ratio: sides rounded down
    for size in ((704, 1280), (720, 1280), (1080, 1920), (2000, 2000)):  # up to 4 MP: as it is
        assert large_image_size(size) == size
    # never below what covers the working resolution: a 1:10 strip keeps 704 rows
    assert large_image_size((1000, 10000), cover=(704, 1280)) == (704, 7040)


@pytest.mark.parametrize("size", [(704, 1280), (720, 1280)])
def test_normal_photos_are_read_bit_for_bit_as_before(tmp_path, size):
    path = textured(tmp_path / "p.png", *size)
    image, stored = read_photo(path, cover=(704, 1280))
    assert stored == size and torch.equal(image, load_image(path))


@pytest.mark.parametrize("size", [(704, 1280), (720, 1280)])
def test_normal_photos_generate_exactly_as_before(tmp_path, size):
    """GEN3C's own sizes go through load_source as they always did: the image read as it is, the
    estimate at its size, then prepare_source to the working resolution."""
    from gen3c.pipelines.camera_video import prepare_source
    from gen3c.pipelines.request import GenerationRequest, load_source

    path = textured(tmp_path / "p.png", *size)
    request = GenerationRequest(input_image_path=str(path), depth_estimator="prior", generator="preview", intrinsics="900,880,640,352")
    source = load_source(request)
    image = load_image(path)
    estimate = GeometricPriorEstimator().estimate((image + 1) / 2, intrinsics=torch.tensor([[900.0, 0, 640], [0, 880, 352], [0, 0, 1]]))
    old = prepare_source(image, estimate.depth, estimate.intrinsics, (704, 1280), "crop", valid=estimate.depth > 0, depth_kind="relative",
                         note_unit_range=False, note_invalid_depth=False)  # fmt: skip
    assert torch.equal(source.image, old.image) and torch.equal(source.depth, old.depth) and torch.equal(source.K, old.K)


def test_depth_of_a_large_photo_is_written_at_the_limit_with_its_camera_scaled(tmp_path, low_limit):
    """The depth, mask, points and record are at the brought-down size and K is the --intrinsics
    (pixels of the stored photo) scaled to it; before, everything was written at the photo's size."""
    path = textured(tmp_path / "p.png", 96, 160)
    res = invoke("depth", path, "--depth_estimator", "prior", "--output_folder", tmp_path / "out", "--intrinsics", "150,140,80,48")
    assert res.exit_code == 0, res.output
    h, w = large_image_size((96, 160))
    assert (h, w) == (84, 140)
    assert np.load(tmp_path / "out" / "p_depth.npy").shape == (h, w)
    assert Image.open(tmp_path / "out" / "p_mask.png").size == Image.open(tmp_path / "out" / "p_depth.png").size == (w, h)
    info = json.loads((tmp_path / "out" / "p_depth.json").read_text())
    assert (info["height"], info["width"]) == (h, w)
    K = torch.tensor([[150.0, 0, 80], [0, 140, 48], [0, 0, 1]])
    assert torch.allclose(torch.tensor(info["intrinsics"]), resize_intrinsics(K, (96, 160), (h, w)))
    assert torch.allclose(torch.tensor(info["intrinsics"])[0], torch.tensor([150 * w / 160, 0, 80 * w / 160]))
    assert "160×96 (0 MP): its depth is written at 140×84" in res.output and "--full_size" in res.output
    assert "UserWarning" not in res.output  # a plain note line


def test_depth_full_size_keeps_the_photos_size(tmp_path, low_limit):
    path = textured(tmp_path / "p.png", 96, 160)
    res = invoke("depth", path, "--depth_estimator", "prior", "--output_folder", tmp_path / "out", "--fov", "70", "--full_size")
    assert res.exit_code == 0, res.output
    assert np.load(tmp_path / "out" / "p_depth.npy").shape == (96, 160)
    info = json.loads((tmp_path / "out" / "p_depth.json").read_text())
    assert torch.allclose(torch.tensor(info["intrinsics"]), intrinsics_from_fov(70.0, 96, 160))
    res = invoke("depth", path, "--depth_estimator", "prior", "--output_folder", tmp_path / "o2", "--full_size", "--resolution", "48x80")
    assert res.exit_code == 2 and "--full_size and --resolution" in res.output and "Traceback" not in res.output


def test_generate_carries_a_large_photo_brought_down_once(tmp_path, low_limit, seen):
    """The estimator sees the brought-down photo (before: all of it, to be cropped to the working
    size afterwards), and the camera at the working size is the user's, scaled and cropped."""
    from gen3c.pipelines.request import GenerationRequest, load_source

    path = textured(tmp_path / "p.png", 96, 160)
    K = torch.tensor([[150.0, 0, 80], [0, 140, 48], [0, 0, 1]])
    request = GenerationRequest(input_image_path=str(path), depth_estimator="prior", generator="preview", resolution="32x48", intrinsics="150,140,80,48")
    source = load_source(request)
    assert seen == [(84, 140)] and tuple(source.image.shape[-2:]) == (32, 48)
    # K follows the image through both resizes exactly; against one resize of the stored photo it
    # differs only by the rounding of a side (here 54 columns before the crop instead of 53; a
    # 48 MP 4:3 photo at 704×1280 goes through 960×1280 either way).
    assert torch.equal(source.K, resize_crop_intrinsics(resize_intrinsics(K, (96, 160), (84, 140)), (84, 140), (32, 48)))
    assert torch.allclose(source.K, resize_crop_intrinsics(K, (96, 160), (32, 48)), rtol=1 / 48, atol=0.5)


def test_user_depth_of_the_full_photo_comes_down_with_it(tmp_path, low_limit, seen):
    """A depth file of the photo's own size is brought down with the photo (no "resizing the depth"
    note: the sizes matched), and the camera read from the estimator is estimated on the small copy."""
    from gen3c.pipelines.request import GenerationRequest, load_source

    path = textured(tmp_path / "p.png", 96, 160)
    depth = np.full((96, 160), 4.0, np.float32)
    depth[30:66, 60:110] = 2.0
    np.save(tmp_path / "d.npy", depth)
    request = GenerationRequest(input_image_path=str(path), depth_path=str(tmp_path / "d.npy"), depth_estimator="prior", generator="preview", resolution="32x48")
    with pytest.warns(UserWarning, match="default camera") as caught:
        source = load_source(request)
    assert not [w for w in caught if "resizing the depth" in str(w.message)]
    assert seen == [(84, 140)]
    assert float(source.depth.min()) == pytest.approx(2.0) and float(source.depth.max()) == pytest.approx(4.0)
    assert torch.equal(source.K, resize_crop_intrinsics(intrinsics_from_fov(60.0, 84, 140), (84, 140), (32, 48)))


def test_a_large_photo_in_memory_comes_down_as_its_png_does(tmp_path, low_limit):
    """gen3c.generate(image in memory) runs exactly as the same pixels saved as a PNG: a large
    one is brought down the same way too."""
    from gen3c.pipelines.request import GenerationRequest, InMemoryInput, load_source

    path = textured(tmp_path / "p.png", 96, 160)
    common = {"depth_estimator": "prior", "generator": "preview", "resolution": "32x48", "fov": 70.0}
    from_file = load_source(GenerationRequest(input_image_path=str(path), **common))
    request = GenerationRequest(**common)
    request.in_memory = InMemoryInput(image=load_image(path), depth=None, described={})
    in_memory = load_source(request)
    assert torch.equal(in_memory.image, from_file.image) and torch.equal(in_memory.K, from_file.K)
    assert torch.equal(in_memory.depth, from_file.depth)
