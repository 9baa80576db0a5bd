"""Large photos (48–200 MP phone photos) are brought down once, as they are read: ``gen3c depth``
writes at most :data:`gen3c.io.images.LARGE_IMAGE_PIXELS` unless told ``--full_size``, and
generation carries no more than the working resolution can use. Normal-size inputs are untouched.

The tests lower the limit to a few thousand pixels so that small images stand for large ones."""

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from typer.testing import CliRunner

import gen3c.io.images as images
from gen3c.cameras import intrinsics_from_fov, resize_crop_intrinsics, resize_intrinsics
from gen3c.cli import app
from gen3c.depth import GeometricPriorEstimator
from gen3c.errors import Gen3cInputError
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
    with Image.open(tmp_path / "out" / "p_mask.png") as mask, Image.open(tmp_path / "out" / "p_depth.png") as picture:
        assert mask.size == picture.size == (w, h)
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


# --- JPEGs over the pixel limit (a 200 MP phone photo): decoded reduced, as small stand-ins ---
JPEG_LIMIT = 20_000  # pixels decoded at most: a 192×256 JPEG (49 152) is over it, decoded at 1/2 (96×128)


def smooth_photo(height, width):
    """A smooth synthetic photo (what a camera's optics deliver) with a red top-left corner."""
    yy, xx = np.mgrid[:height, :width] / width
    rgb = np.stack([128 + 100 * np.sin(6 * xx + 2 * yy), 128 + 100 * np.cos(4 * yy - 3 * xx * yy), 255 * (xx + yy) / 2], -1)
    rgb = rgb.clip(0, 255).astype(np.uint8)
    rgb[: height // 10, : width // 8] = (255, 0, 0)
    return rgb


def save_jpeg(path, kind="RGB", orientation=None, size=(192, 256)):
    image = Image.fromarray(smooth_photo(*size))
    kw = {"quality": 92}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif.tobytes()
    if kind == "progressive":
        kw["progressive"] = True
    if kind == "MPO":  # a camera's JPEG with a second picture (a stereo view, a preview)
        kw.update(save_all=True, append_images=[image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)])
    (image.convert(kind) if kind in ("L", "CMYK") else image).save(path, format="MPO" if kind == "MPO" else "JPEG", **kw)
    return path


def psnr(a, b):
    """In dB, of two images in [-1, 1]."""
    return 10 * np.log10(4.0 / float((a - b).pow(2).mean()))


@pytest.fixture
def decoded(monkeypatch):
    """The (H, W) of the 8-bit pixels each read decodes, before they are brought down."""
    sizes = []
    shrink = images._shrink_uint8

    def spy(array, size):
        sizes.append(tuple(array.shape[:2]))
        return shrink(array, size)

    monkeypatch.setattr(images, "_shrink_uint8", spy)
    return sizes


@pytest.mark.parametrize("kind", ["RGB", "L", "CMYK", "progressive", "MPO"])
def test_a_jpeg_over_the_pixel_limit_is_decoded_reduced_within_it(tmp_path, monkeypatch, low_limit, decoded, kind):
    """A 200 MP phone JPEG was refused ("above the 100 MP limit"); now the JPEG decoder brings it
    down by 1/2 as it decodes it (never more pixels than the limit) and the result is within
    45 dB of a full decode brought down alike (measured: 55–58 dB for these, 65 dB at 12 MP)."""
    path = save_jpeg(tmp_path / "p.jpg", kind)
    full, stored_full = read_photo(path)  # the limit at 100 MP: decoded whole, as before
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", JPEG_LIMIT)
    image, stored = read_photo(path)
    assert decoded == [(192, 256), (96, 128)]  # the second read decoded at 1/2: 12 288 pixels
    assert stored == stored_full == (192, 256)  # the photo's own size, which --intrinsics are pixels of
    assert tuple(image.shape) == tuple(full.shape) == (3, *large_image_size((192, 256))) == (3, 93, 124)
    assert psnr(image, full) > 45
    assert torch.allclose(image[:, 2, 2], full[:, 2, 2], atol=0.05)  # the red corner stays top left
    grey = kind == "L"
    assert torch.allclose(image[:, 2, 2], torch.tensor([-0.4, -0.4, -0.4] if grey else [1.0, -1.0, -1.0]), atol=0.1)


def test_a_sideways_jpeg_over_the_limit_comes_out_upright_at_its_upright_size(tmp_path, monkeypatch, low_limit, decoded):
    """EXIF orientation 6 (a phone held upright, stored turned): decoded reduced as stored (128×96),
    then turned; brought to the size of the upright photo (192 wide, 256 high), not of the stored one."""
    path = save_jpeg(tmp_path / "p.jpg", orientation=6, size=(192, 256))
    full, _ = read_photo(path)
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", JPEG_LIMIT)
    image, stored = read_photo(path, cover=(32, 24))
    assert decoded == [(256, 192), (128, 96)]
    assert stored == (256, 192) and tuple(image.shape) == (3, *large_image_size((256, 192))) == (3, 124, 93)
    assert psnr(image, full) > 45
    assert torch.allclose(image[:, 2, -3], torch.tensor([1.0, -1.0, -1.0]), atol=0.1)  # the stored top left is now top right


def test_a_jpeg_past_pils_own_limit_is_read_reduced_and_refused_at_full_size(tmp_path, monkeypatch, low_limit):
    """PIL refuses to open an image over twice its own limit (179 MP: every 200 MP photo): a JPEG
    that size is opened by PIL's JPEG reader, and gen3c's limit decides. load_image, which reads
    full size, refuses it in one line naming the way to read it reduced."""
    path = save_jpeg(tmp_path / "p.jpg")
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", JPEG_LIMIT)
    reduced, stored = read_photo(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # raises from 20 000 pixels
    image, stored_past_pil = read_photo(path)
    assert stored == stored_past_pil == (192, 256) and torch.equal(image, reduced)
    full_size = r"^input image '.*p\.jpg' is 256×192 = 0 MP, above the 0 MP limit at full size: downscale it first, or read it reduced \(.*read_photo.*--full_size\)$"
    with pytest.raises(Gen3cInputError, match=full_size):
        load_image(path)
    monkeypatch.undo()
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", JPEG_LIMIT)
    with pytest.raises(Gen3cInputError, match=full_size):  # within PIL's limit: gen3c's own refusal
        load_image(path)


def test_the_pixel_limit_still_refuses_what_cannot_be_decoded_reduced(tmp_path, monkeypatch):
    """The decompression-bomb guard stays for a PNG (no reduced decoding) and for a JPEG over the
    limit even at 1/8 of each side (at 100 MP, none: a JPEG's sides stop at 65535, 67 MP at 1/8)."""
    path = save_jpeg(tmp_path / "p.jpg")
    Image.fromarray(smooth_photo(192, 256)).save(tmp_path / "p.png")
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 32 * 24 - 1)  # 1/8: 32×24
    with pytest.raises(Gen3cInputError, match=r"^input image '.*p\.jpg' is 256×192 = 0 MP, above the 0 MP limit even decoded at 1/8 of its size: downscale it first$"):
        read_photo(path)
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", JPEG_LIMIT)
    with pytest.raises(Gen3cInputError, match=r"^input image '.*p\.png' is 256×192 = 0 MP, above the 0 MP limit: downscale it first$"):
        read_photo(tmp_path / "p.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # past PIL's own limit: refused as it opens
    with pytest.raises(Gen3cInputError, match=r"^input image '.*p\.png' claims 0 MP, above the 0 MP limit \(or a decompression bomb\): downscale it first$"):
        read_photo(tmp_path / "p.png")


@pytest.mark.parametrize("kind", ["RGB", "L", "CMYK"])
@pytest.mark.parametrize("orientation", [None, 6])
def test_a_jpeg_within_the_limit_is_decoded_whole_as_before(tmp_path, monkeypatch, low_limit, kind, orientation):
    """Under the pixel limit nothing changes: the whole JPEG decoded, turned upright, brought down
    by PIL's bilinear to large_image_size, bit for bit."""
    path = save_jpeg(tmp_path / "p.jpg", kind, orientation)
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 192 * 256)  # at the limit: not over it
    image, stored = read_photo(path)
    with Image.open(path) as im:
        upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    h, w = large_image_size(upright.shape[:2])
    expected = np.array(Image.fromarray(upright).resize((w, h), Image.Resampling.BILINEAR))
    assert stored == upright.shape[:2] and torch.equal(image, torch.from_numpy(expected).permute(2, 0, 1).float() / 127.5 - 1)
