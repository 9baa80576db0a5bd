"""The depth interface, user depth, the geometric prior and the kind → trajectory-scale contract."""

import json
import math
import re
import struct
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from gen3c.cameras import make_intrinsics
from gen3c.depth import (
    DepthEstimate,
    DepthEstimator,
    GeometricPriorEstimator,
    image_to_tensor,
    image_to_uint8,
    load_depth_estimator,
    load_depth_estimator_or_prior,
    load_user_depth,
    median_depth,
    parse_intrinsics,
)
from gen3c.errors import Gen3cInputError, Gen3cModelError
from gen3c.io.depth import FAR_DEPTH, load_depth
from gen3c.trajectories import center_depth_for


def make_estimate(depth, mask=None, kind="metric"):
    h, w = depth.shape
    mask = torch.ones(h, w, dtype=torch.bool) if mask is None else mask
    return DepthEstimate(depth, make_intrinsics(50.0, 50.0, w / 2, h / 2), mask, kind, "test")


def test_the_package_offers_what_its_all_lists_and_nothing_else():
    """``gen3c.depth``'s public names are its ``__all__``, each of which resolves. Before: it also
    offered is_moge_name and four names of gen3c.depth.names (left from when the package's own
    loaders used them) that ``__all__``, the docs and every caller left out."""
    import types

    import gen3c.depth

    public = {n for n in dir(gen3c.depth) if not n.startswith("_") and not isinstance(getattr(gen3c.depth, n), types.ModuleType)}
    assert public - {"Any", "annotations"} == set(gen3c.depth.__all__)


def test_estimate_validates_and_resizes():
    est = make_estimate(torch.arange(1, 13, dtype=torch.float32).reshape(3, 4))
    # Each was a bare ValueError (a traceback from the command line), a numpy array an AttributeError,
    # and a complex depth lost its imaginary part without a word: one Gen3cInputError line now.
    for args, match in (((est.depth, est.intrinsics, est.mask, "absolute"), r"DepthEstimate kind must be one of metric, relative, got 'absolute'$"),
                        ((est.depth, est.intrinsics, est.mask[:2], "metric"), r"DepthEstimate mask \(2, 4\) and depth \(3, 4\) differ in shape"),
                        ((est.depth[None], est.intrinsics, est.mask, "metric"), r"DepthEstimate depth must be \(H, W\), got \(1, 3, 4\)$"),
                        ((est.depth.to(torch.complex64), est.intrinsics, est.mask, "metric"), r"DepthEstimate depth holds complex64 values: pass real numbers")):  # fmt: skip
        with pytest.raises(Gen3cInputError, match=rf"^{match}"):
            DepthEstimate(*args, "x")
    from_numpy = DepthEstimate(est.depth.numpy(), est.intrinsics.double().numpy(), est.mask.numpy(), "metric", "x")
    assert torch.equal(from_numpy.depth, est.depth) and from_numpy.intrinsics.dtype == torch.float32 and torch.equal(from_numpy.mask, est.mask)
    small = est.resized((6, 2))
    assert small.depth.shape == (6, 2) and small.mask.shape == (6, 2)
    assert torch.allclose(small.intrinsics[0], torch.tensor([25.0, 0.0, 1.0]))
    assert torch.allclose(small.intrinsics[1], torch.tensor([0.0, 100.0, 3.0]))
    # user holes (depth 0) stay holes instead of blending into their neighbours
    holed = est.depth.clone()
    holed[1, 1] = 0
    assert (make_estimate(holed).resized((6, 8)).depth[2:4, 2:4] == 0).all()


@pytest.mark.parametrize("size", [(8, 8), (6, 10), (3, 3)])
def test_resized_user_depth_has_no_points_pulled_towards_a_hole(size):
    """A flat wall at depth 2 with one hole (a 16-bit PNG's 0): resized, every pixel is the wall
    or a hole, and a hole is untrusted. Neighbours of the hole used to blend with its 0 (1.5,
    1.0, …: points floating in front of the wall), trusted."""
    depth = torch.full((4, 4), 2.0)
    depth[1, 1] = 0.0
    out = make_estimate(depth).resized(size)
    hole = out.depth == 0
    assert hole.any() and torch.allclose(out.depth[~hole], torch.tensor(2.0))
    assert not out.mask[hole].any() and out.mask[~hole].all()


def test_median_depth_uses_trusted_pixels():
    depth = torch.tensor([[1.0, 2.0, 3.0, 1000.0, 1000.0, 1000.0]])
    mask = torch.tensor([[True, True, True, False, False, False]])
    assert median_depth(make_estimate(depth, mask)) == 2.0
    assert median_depth(make_estimate(depth, torch.zeros_like(mask))) == 3.0  # empty mask: all positive pixels
    with pytest.raises(Gen3cInputError, match="no finite positive"):
        median_depth(make_estimate(torch.zeros(2, 2)))
    # A depth map is no estimate (before: AttributeError "'Tensor' object has no attribute 'depth'").
    for value in (depth, depth.numpy()):
        with pytest.raises(Gen3cInputError, match=r"^median_depth takes a DepthEstimate \(an estimator's \.estimate\(image\)\), got a .* of shape \(1, 6\): for a depth map, gen3c\.io\.depth\.median_scene_depth\(torch\.as_tensor\(depth\)\)$"):
            median_depth(value)
    from gen3c.io.depth import median_scene_depth

    assert median_scene_depth(torch.as_tensor(depth.numpy())) == 3.0  # the fix it names works (no mask: every positive pixel)


def test_median_depth_leaves_the_far_fill_out_as_a_run_does(tmp_path):
    """A user's depth with NaN (sky) pixels: ``median_depth`` of its DepthEstimate and the run's
    source view (``--trajectory_scale median_depth``) take the same pixels and the same (lower)
    median. A mask that lets the far fill in used to count it in ``median_depth`` only."""
    from gen3c.pipelines.request import GenerationRequest, load_source

    far = torch.tensor([[1.0, 2.0, 3.0, 8.0, FAR_DEPTH, FAR_DEPTH]])
    assert median_depth(make_estimate(far)) == 2.0  # was 3.0: the lower median of all six
    depth = np.full((16, 16), np.nan, np.float32)
    depth[:8] = np.repeat([[1.0, 2.0, 3.0, 8.0]], 32, axis=0).reshape(8, 16)  # 128 valid pixels, 32 of each
    np.save(tmp_path / "d.npy", depth)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "i.png")
    with pytest.warns(UserWarning, match="NaN/inf depth sit far away"):
        estimate = load_user_depth(tmp_path / "d.npy", (16, 16), fov=60.0)
    request = GenerationRequest(input_image_path=str(tmp_path / "i.png"), depth_path=str(tmp_path / "d.npy"), fov=60.0, resolution="16x16")
    with pytest.warns(UserWarning, match="NaN/inf depth sit far away"):
        source = load_source(request)
    assert median_depth(estimate) == source.median_depth() == 2.0  # numpy's median: 2.5


def test_kind_decides_what_movement_distance_means():
    """relative (MoGe) → GEN3C's exact units (centre depth 1); metric/user → the median depth."""
    depth = torch.full((4, 4), 7.0)
    relative, metric = make_estimate(depth, kind="relative"), make_estimate(depth, kind="metric")
    assert center_depth_for("auto", median_depth(relative), relative.kind) == 1.0
    assert center_depth_for("auto", median_depth(metric), metric.kind) == median_depth(metric) == 7.0
    assert center_depth_for("gen3c", median_depth(metric), metric.kind) == 1.0


def test_image_forms():
    arr = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    as_float = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    for form in (arr, Image.fromarray(arr), as_float, torch.from_numpy(arr).permute(2, 0, 1), arr / 255.0):
        assert np.array_equal(image_to_uint8(form), arr)
    assert torch.allclose(image_to_tensor(Image.fromarray(arr)), as_float)
    with pytest.raises(Gen3cInputError, match=r"\(image \+ 1\) / 2"):
        image_to_uint8(as_float * 2 - 1)
    with pytest.raises(Gen3cInputError, match="shape"):
        image_to_uint8(torch.rand(4, 5, 7))


def test_prior_needs_no_weights_and_has_median_one():
    estimator = load_depth_estimator("prior")
    assert isinstance(estimator, GeometricPriorEstimator) and isinstance(estimator, DepthEstimator)
    est = estimator.estimate(torch.rand(3, 48, 64))
    assert est.depth.shape == (48, 64) and est.kind == "relative" and est.intrinsics_from == "default"
    assert median_depth(est) == 1.0
    assert est.depth[-1, 0].item() == pytest.approx(0.5)  # ground at the bottom row
    assert torch.all(est.depth[:-1] >= est.depth[1:])  # the ground recedes towards the horizon
    assert (est.depth[:24] == 1.0).all()  # wall above the horizon


@pytest.mark.parametrize("size", [(0, 64), (-48, 64), (48.0, 64), (48,), "48x64", (True, 64)])
def test_an_estimate_size_that_is_no_h_w_is_one_line(size):
    """estimate(image, size=...) in Python: before, torch's own errors ("Input and output sizes should
    be greater than 0", "expected size to be one of int or Tuple[int]…"), after the work was done."""
    with pytest.raises(Gen3cInputError, match=r"^depth estimate size .* must be \(H, W\), two whole numbers > 0, e.g. \(704, 1280\)$"):
        GeometricPriorEstimator().estimate(torch.rand(3, 48, 64), size=size)
    assert GeometricPriorEstimator().estimate(torch.rand(3, 48, 64), size=[24, np.int64(32)]).size == (24, 32)


def test_fallback_to_prior_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    estimator, notice = load_depth_estimator_or_prior()  # the default, MoGe: no estimator named
    assert isinstance(estimator, GeometricPriorEstimator)
    assert "not in the local Hugging Face cache" in notice and "geometric prior" in notice and "--depth_path" in notice
    estimator, notice = load_depth_estimator_or_prior("prior")
    assert notice is None


def test_prior_median_depth_is_the_wall_for_any_principal_point_below_the_top_row():
    """The module docstring said "median depth 1", true of a centred principal point; it holds for
    any cy ≥ 1 (the wall fills rows v ≤ cy + ½(47 − cy) of 48, more than half), not for cy < 1:
    half the rows are ground and the lower middle value is row 24's, 0.5·47/24."""
    from gen3c.depth.prior import ground_and_wall_depth

    for cy in (1.0, 5.0, 23.5, 40.0, 47.0, 48.0):
        estimate = GeometricPriorEstimator().estimate(torch.rand(3, 48, 64), intrinsics=make_intrinsics(60.0, 60.0, 31.5, cy))
        assert median_depth(estimate) == 1.0
    top = GeometricPriorEstimator().estimate(torch.rand(3, 48, 64), intrinsics=make_intrinsics(60.0, 60.0, 31.5, 0.0))
    assert median_depth(top) == pytest.approx(0.5 * 47 / 24)
    # another near / far: the wall past about cy = 47·(far − 2·near) / (2·(far − near)) = 17.6
    assert float(ground_and_wall_depth(48, 8, make_intrinsics(60.0, 60.0, 31.5, 18.5), near=0.2).median()) == 1.0
    assert float(ground_and_wall_depth(48, 8, make_intrinsics(60.0, 60.0, 31.5, 16.5), near=0.2).median()) < 1.0


def test_unknown_local_paths_are_clear_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(Gen3cModelError, match="neither a MoGe model.pt nor a transformers folder"):
        load_depth_estimator(str(tmp_path / "notes.txt"))
    with pytest.raises(Gen3cInputError, match="does not exist: check the path, or pass moge, prior, depth_pro"):
        load_depth_estimator("./no/such/model")


@pytest.mark.parametrize(
    "name, said",
    [("mogee", "unknown (did you mean 'moge'?)"), ("Depth_Pro", "unknown (did you mean 'depth_pro'?)"),
     ("zoe depth", "unknown (did you mean 'zoedepth'?)"), ("midas", "unknown: pass"), ("", "empty"),
     ("checkpoints/model.pt", "does not exist"), ("a/b/c", "does not exist"),
     # no file can have these names: a RuntimeError (unknown ~user) and an OSError traceback before
     ("~no-such-user-gen3c/model.pt", "does not exist"), ("x" * 5000, "unknown: pass")],
)  # fmt: skip
def test_a_mistyped_estimator_is_refused_not_replaced_by_the_prior(tmp_path, monkeypatch, name, said):
    """A name that is no estimator, no existing path and no hub id ("owner/name") is a typo: one
    line naming the choices (and the closest), never a preview on the prior's made-up depth. It
    used to be taken for weights that cannot be fetched (a missing MoGe checkpoint, a hub id to
    try), so the preview fell back to the prior with a note, as when offline."""
    from gen3c.pipelines.request import GenerationRequest, load_source

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "i.png")
    with pytest.raises(Gen3cInputError, match=re.escape(said)) as caught:
        load_depth_estimator_or_prior(name)
    assert not isinstance(caught.value, Gen3cModelError) and "\n" not in str(caught.value)
    assert "pass moge, prior, depth_pro, depth_anything_v2, zoedepth, a hub id OWNER/NAME or a local model.pt" in str(caught.value)
    with pytest.raises(Gen3cInputError, match=re.escape(said)):
        load_source(GenerationRequest(input_image_path="i.png", depth_estimator=name, resolution="16x16", generator="preview"))
    # The default's weights that cannot be fetched (offline) still fall back, the note saying why.
    estimator, notice = load_depth_estimator_or_prior(None)
    assert isinstance(estimator, GeometricPriorEstimator) and "not in the local Hugging Face cache" in notice


@pytest.mark.parametrize("name", ["someone/moge-weights", "someone/depth-model", "other-model", "moge", "Ruicheng/moge-vitl"])
def test_a_named_estimator_that_cannot_load_is_refused_not_replaced_by_the_prior(tmp_path, monkeypatch, name):
    """Only the default (GEN3C's MoGe, whose weights a first offline run lacks) falls back to the
    prior. An estimator the user named — a hub id not cached, a folder of another model, MoGe
    itself by name — used to be replaced by the prior's made-up depth with a notice, the preview
    running anyway (MoGe named could not be told from the default)."""
    from gen3c.pipelines.request import GenerationRequest, load_source

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    (tmp_path / "other-model").mkdir()
    (tmp_path / "other-model" / "notes.txt").write_text("not a model")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "i.png")
    with pytest.raises(Gen3cModelError) as caught:
        load_depth_estimator_or_prior(name)
    assert name in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(Gen3cModelError, match=re.escape(name)):
        load_source(GenerationRequest(input_image_path="i.png", depth_estimator=name, resolution="16x16", generator="preview"))


def test_a_missing_checkpoint_file_is_not_looked_up_on_the_hub(tmp_path, monkeypatch):
    """`--depth_estimator checkpoints/model.pt` with a typo: the file does not exist. It used to be
    taken for a hub id (one '/'), so the error said it was not in the Hugging Face cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("checkpoints/model.pt", "weights/moge.PTH"):
        with pytest.raises(Gen3cInputError, match=rf"{name.replace('.', '[.]')}' does not exist"):
            load_depth_estimator(name)


def test_a_name_no_file_can_have_is_one_line_from_the_depth_loaders(tmp_path, monkeypatch):
    """Called from Python without the request's checks: an OWNER/NAME whose name is too long for
    the file system raised OSError (File name too long) from is_moge_name, the transformers
    loader's existence check; ~user of no user raised RuntimeError from resolve_moge_checkpoint.
    Long names are quoted by their start and their end (200 characters)."""
    from gen3c.depth.moge import is_moge_name, resolve_moge_checkpoint

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for name in ("someone/" + "x" * 5000, "someone/" + "moge" * 1000):
        with pytest.raises(Gen3cModelError, match=r"^depth model '.*|^MoGe '.*") as refused:
            load_depth_estimator(name)
        message = str(refused.value)
        assert len(message) < 400 and re.search(r"'someone/[xmoge]{42}…[xmoge]{149}' is not in the local Hugging Face cache", message), message
    assert not is_moge_name("someone/" + "x" * 5000)
    with pytest.raises(Gen3cInputError, match=r"^MoGe checkpoint '~no_such_user_x/model.pt' starts with ~no_such_user_x, .*no user"):
        resolve_moge_checkpoint("~no_such_user_x/model.pt")
    with pytest.raises(Gen3cInputError, match=r"^depth estimator '~no_such_user_x/m.pt' starts with ~no_such_user_x"):
        is_moge_name("~no_such_user_x/m.pt")
    with pytest.raises(Gen3cModelError, match=r"^MoGe checkpoint 'x{50}…x{146}\.pt' does not exist"):
        resolve_moge_checkpoint("x" * 5000 + ".pt")


# ---- user depth ------------------------------------------------------------------------------


@pytest.fixture
def depth_map():
    rng = np.random.default_rng(1)
    return (1.0 + 4.0 * rng.random((24, 32))).astype(np.float32)


def test_user_depth_formats(tmp_path, depth_map):
    np.save(tmp_path / "d.npy", depth_map)
    np.savez(tmp_path / "d.npz", depth=depth_map, other=np.zeros(3))
    np.savez(tmp_path / "only.npz", anything=depth_map)
    Image.fromarray((depth_map * 1000).round().astype(np.uint16)).save(tmp_path / "d.png")
    for name in ("d.npy", "d.npz", "only.npz", "d.png"):
        est = load_user_depth(tmp_path / name, (24, 32), intrinsics="30,30,16,12")
        assert est.kind == "metric" and est.intrinsics_from == "user" and est.source == f"user:{name}"
        assert np.allclose(est.depth.numpy(), depth_map, atol=1e-3 if name.endswith("png") else 0)
        assert est.intrinsics[0, 0] == 30.0


def test_an_8_bit_depth_png_is_refused_as_a_picture_of_depth(tmp_path, depth_map):
    """An 8-bit grey PNG (a viewer's normalised depth, near bright) ran, with a note on its
    precision, as depth 0 to 0.255: its 256 levels × 0.001 are no metric depth."""
    Image.fromarray(np.round(255 / depth_map).astype(np.uint8)).save(tmp_path / "d.png")
    with pytest.raises(Gen3cInputError, match=(
        r"^depth file '[^']*d\.png' is an 8-bit grey PNG, a picture of depth \(256 levels hold no metric depth\), not its values "
        r"\(depth PNGs are single-channel 16-bit\): pass the depth values \(\.npy, or a single-channel 16-bit PNG\)$"
    )):
        load_user_depth(tmp_path / "d.png", (24, 32), fov=60.0)
    np.save(tmp_path / "d.npy", depth_map)  # gen3c depth writes its values beside its picture
    with pytest.raises(Gen3cInputError, match=r"^depth file '[^']*d\.png' is an 8-bit grey PNG, .*: pass '[^']*d\.npy' beside it$"):
        load_user_depth(tmp_path / "d.png", (24, 32), fov=60.0)


def test_a_float_tiff_depth_is_read_as_it_is_and_a_16_bit_one_as_a_png(tmp_path, depth_map):
    """A single-channel 32-bit float TIFF, as depth tools write it, was refused as "an unsupported
    format"; a 16-bit TIFF is scaled as a 16-bit PNG is, an 8-bit one refused as a PNG's is."""
    holes = depth_map.copy()
    holes[0, :3] = (np.nan, np.inf, 0.0)
    Image.fromarray(holes).save(tmp_path / "d.tif")
    assert np.array_equal(load_depth(tmp_path / "d.tif").numpy(), holes, equal_nan=True)
    with pytest.warns(UserWarning, match=r"d\.tif': 2 pixels \(0\.26%\) of NaN/inf depth sit far away .*; 1 pixels \(0\.13%\) of ≤ 0 depth are left out"):
        est = load_user_depth(tmp_path / "d.tif", (24, 32), fov=60.0)
    assert est.kind == "metric" and est.source == "user:d.tif" and np.array_equal(est.depth[1:].numpy(), depth_map[1:])
    with pytest.raises(Gen3cInputError, match=(
        r"^depth file '[^']*d\.tif' holds 32-bit float depth, read as it is: the PNG depth scale 0\.01 scales 16-bit integer depth only; "
        r"drop --png_depth_scale$"
    )):
        load_depth(tmp_path / "d.tif", png_scale=0.01)
    millimetres = (depth_map * 1000).round().astype(np.uint16)
    Image.fromarray(millimetres).save(tmp_path / "d16.tiff")
    assert np.array_equal(load_depth(tmp_path / "d16.tiff").numpy(), millimetres.astype(np.float32) * np.float32(0.001))
    assert np.array_equal(load_depth(tmp_path / "d16.tiff", png_scale=1.0).numpy(), millimetres.astype(np.float32))
    Image.fromarray(np.round(255 / depth_map).astype(np.uint8)).save(tmp_path / "d8.tif")
    with pytest.raises(Gen3cInputError, match=(
        r"^depth file '[^']*d8\.tif' is an 8-bit grey TIFF, a picture of depth \(256 levels hold no metric depth\), not its values "
        r"\(depth TIFFs are single-channel 32-bit float or 16-bit\): pass the depth values \(\.npy, or a single-channel 32-bit float or 16-bit TIFF\)$"
    )):
        load_depth(tmp_path / "d8.tif")
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(tmp_path / "rgb.tif")
    with pytest.raises(Gen3cInputError, match=r"^depth file '[^']*rgb\.tif' is a TIFF of mode RGB, a picture of depth, not its values"):
        load_depth(tmp_path / "rgb.tif")
    (tmp_path / "photo.tif").write_bytes((tmp_path / "rgb.tif").read_bytes()[:4] + b"garbage")  # a TIFF Pillow cannot read
    with pytest.raises(Gen3cInputError, match=(
        r"^depth file '[^']*photo\.tif' is a TIFF that cannot be read \(64- or 16-bit floats, several channels, or damaged\?\): "
        r"save the depth as a single-channel 32-bit float TIFF or a \.npy$"
    )):
        load_depth(tmp_path / "photo.tif")
    with open(tmp_path / "npy.tif", "wb") as f:  # a renamed file: said what it is
        np.save(f, depth_map)
    with pytest.raises(Gen3cInputError, match=r"^depth file '[^']*npy\.tif' is a NumPy \.npy array, not a TIFF: give the file its real suffix"):
        load_depth(tmp_path / "npy.tif")


@pytest.mark.parametrize("size", [None, 12, (12,), (12.5, 16), (0, 16), "12,16", (True, 16)])  # (True was a 1-pixel side)
def test_load_user_depth_and_parse_intrinsics_refuse_an_image_size_that_is_none(tmp_path, size):
    """image_size, the (H, W) the depth and intrinsics belong to, was unpacked unchecked: None,
    12 or (12,) were Python's "cannot unpack" errors, "12,16" parse_intrinsics' "invalid literal
    for int()", (12.5, 16) truncated by int() to 12 without a word, (0, 16) an aspect-ratio or
    principal-point refusal that blamed the depth file or the intrinsics. One line names the
    argument now; numpy integers still work."""
    np.save(tmp_path / "d.npy", np.full((12, 16), 2.0, np.float32))
    for call, name in ((lambda s: load_user_depth(tmp_path / "d.npy", s, "20,20,8,6"), "load_user_depth"), (lambda s: parse_intrinsics("20,20,8,6", s), "parse_intrinsics")):
        with pytest.raises(Gen3cInputError, match=rf"^{name} image_size {re.escape(repr(size))} must be the image's \(height, width\), two whole numbers of pixels ≥ 1$"):
            call(size)
    assert load_user_depth(tmp_path / "d.npy", np.array([12, 16]), "20,20,8,6").depth.shape == (12, 16)


def test_parse_intrinsics_refuses_a_spec_that_is_no_text_or_path():
    """parse_intrinsics(K, size) with a K tensor (as load_user_depth takes one) took its repr for a
    file name: "--intrinsics 'tensor([[20.,  0.,  8.],\\n …' is neither 'fx,fy,cx,cy' nor an
    existing file"; a list of four numbers the same. One line says what it takes now."""
    for spec, got in ((make_intrinsics(20.0, 20.0, 8.0, 6.0), "a torch tensor of shape (3, 3)"), ([20, 20, 8, 6], "a list of 4 items")):
        with pytest.raises(Gen3cInputError, match=rf"^--intrinsics is {re.escape(got)}: pass 'fx,fy,cx,cy' or a camera file's path"):
            parse_intrinsics(spec, (12, 16))


def test_a_depth_estimator_name_that_is_no_text_is_refused_and_a_path_object_is_its_path(tmp_path):
    """check_estimator_name(None) was "'NoneType' object has no attribute 'strip'", a number or a
    pathlib.Path "… has no attribute 'lower'"; load_depth_estimator(None) made None the name
    'None' ("depth estimator 'None' is unknown"). None and numbers are refused as what they are
    now, and a Path is the path it names, for both."""
    from gen3c.depth import check_estimator_name

    for value, got in ((None, "NoneType 'None'"), (5, "int '5'")):
        for call in (check_estimator_name, load_depth_estimator):
            with pytest.raises(Gen3cInputError, match=rf"^depth estimator is {got}: pass moge, prior, "):
                call(value)
    for call in (check_estimator_name, load_depth_estimator):
        with pytest.raises(Gen3cInputError, match=r"^depth estimator path '.*nowhere\.pt' does not exist: check the path"):
            call(tmp_path / "nowhere.pt")
    check_estimator_name(tmp_path)  # an existing folder passes the name check


@pytest.mark.parametrize("scale", [0, -0.001, math.nan, math.inf, "mm", True])
def test_load_user_depth_refuses_an_impossible_png_scale_by_name(tmp_path, depth_map, scale):
    """Python's png_scale is checked as --png_depth_scale is. Before: 0 or a negative scale made
    every pixel a hole ("has no valid pixel … check its values and their unit"), NaN and inf the
    same; a word was "cannot be read (could not convert string to float: 'mm'): save a plain float
    array", the file blamed; True was a scale of 1."""
    Image.fromarray((depth_map * 1000).round().astype(np.uint16)).save(tmp_path / "d.png")
    with pytest.raises(Gen3cInputError, match=r"^png_scale .* for depth file '[^']*d\.png' is impossible: pass a number > 0 \(depth = PNG value × png_scale"):
        load_user_depth(tmp_path / "d.png", (24, 32), fov=60.0, png_scale=scale)


def read_with_peak(path):
    """``load_depth(path)`` and the peak of the Python-allocated memory while it read."""
    import tracemalloc

    tracemalloc.start()
    try:
        read = load_depth(path)
        return read, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_depth_file_is_held_once_while_read(tmp_path):
    """load_depth copied the array it had just read (float32_array's copy): a 48 MP float32 .npy
    peaked at 384 MB, twice the map. The values are the file's, bit for bit."""
    depth = np.random.default_rng(0).random((1000, 1000), dtype=np.float32) + 1
    np.save(tmp_path / "d.npy", depth)
    read, peak = read_with_peak(tmp_path / "d.npy")
    assert torch.equal(read, torch.from_numpy(depth))
    assert peak < 1.5 * depth.nbytes, peak


def test_user_depth_exr(tmp_path, depth_map):
    OpenEXR = pytest.importorskip("OpenEXR")
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, {"Z": depth_map}) as f:
        f.write(str(tmp_path / "d.exr"))
    est = load_user_depth(tmp_path / "d.exr", (24, 32), fov=60.0)
    assert np.allclose(est.depth.numpy(), depth_map)


def test_a_renamed_or_damaged_exr_depth_says_what_it_is(tmp_path, depth_map):
    """A PNG or an npy named .exr was "not a readable OpenEXR file (Unable to open '…' for read)",
    as if it could not be opened; a PNG or npy so renamed says what it is. A cut EXR says so."""
    OpenEXR = pytest.importorskip("OpenEXR")
    Image.fromarray((depth_map * 1000).astype(np.uint16)).save(tmp_path / "d.exr", format="PNG")
    with pytest.raises(Gen3cInputError, match=r"^depth file '[^']*d\.exr' is a PNG image, not an OpenEXR file: give the file its real suffix \(\.npy, \.npz, \.png, \.tif, \.tiff, \.exr\)$"):
        load_depth(tmp_path / "d.exr")
    with OpenEXR.File({"type": OpenEXR.scanlineimage}, {"Z": depth_map}) as f:
        f.write(str(tmp_path / "whole.exr"))
    data = (tmp_path / "whole.exr").read_bytes()
    (tmp_path / "cut.exr").write_bytes(data[: len(data) // 2])
    with pytest.raises(Gen3cInputError, match=r"^depth file '[^']*cut\.exr' is a damaged OpenEXR file, cut short or corrupt \(.*\): export or copy it again$"):
        load_depth(tmp_path / "cut.exr")


def test_an_exr_depth_is_read_without_copying_its_other_channels(tmp_path):
    """Every channel of an EXR was copied (np.array) to pick one: a render's RGBA beside its Z
    held ten maps' worth of memory for one depth map (12 MP: 462 MB), now six (the file's five,
    its depth as float32)."""
    OpenEXR = pytest.importorskip("OpenEXR")
    depth = np.random.default_rng(0).random((500, 600), dtype=np.float32) + 1
    channels = {**{c: np.zeros_like(depth) for c in "RGBA"}, "Z": depth}
    with OpenEXR.File({"type": OpenEXR.scanlineimage}, channels) as f:
        f.write(str(tmp_path / "render.exr"))
    read, peak = read_with_peak(tmp_path / "render.exr")
    assert torch.equal(read, torch.from_numpy(depth))
    assert peak < 7 * depth.nbytes, peak / depth.nbytes


def test_user_depth_shapes_and_invalid_values(tmp_path, depth_map):
    np.save(tmp_path / "half.npy", depth_map[::2, ::2])
    with pytest.warns(UserWarning, match="resizing"):
        est = load_user_depth(tmp_path / "half.npy", (24, 32))
    assert est.depth.shape == (24, 32) and est.intrinsics_from == "default"
    np.save(tmp_path / "square.npy", depth_map[:, :24])
    with pytest.raises(Gen3cInputError, match="aspect ratios differ"):
        load_user_depth(tmp_path / "square.npy", (24, 32))
    bad = depth_map.copy()
    bad[0, 0], bad[1, 1] = np.nan, -1
    np.save(tmp_path / "bad.npy", bad)
    with pytest.warns(UserWarning, match="far away"):
        est = load_user_depth(tmp_path / "bad.npy", (24, 32))
    # NaN sits far away (in the cache, out of the trusted mask), −1 is a hole; the median ignores both.
    assert est.depth[0, 0] == FAR_DEPTH and est.depth[1, 1] == 0 and not est.mask[0, 0] and not est.mask[1, 1]
    assert median_depth(est) == float(torch.from_numpy(np.delete(depth_map.reshape(-1), [0, 33])).median())
    with pytest.warns(UserWarning, match="left out"):
        est = load_user_depth(tmp_path / "bad.npy", (24, 32), mask_invalid=True)
    assert not est.mask[0, 0] and not est.mask[1, 1] and est.depth[0, 0] == 0 and est.mask.sum() == 24 * 32 - 2
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(Gen3cInputError, match="never unpickled"):
        load_user_depth(tmp_path / "obj.npy", (24, 32))


def test_user_depth_takes_the_camera_of_an_estimate(tmp_path, depth_map):
    np.save(tmp_path / "d.npy", depth_map)
    moge_like = DepthEstimate(torch.ones(12, 16), make_intrinsics(20.0, 20.0, 8.0, 6.0), torch.ones(12, 16, dtype=torch.bool), "relative", "x")
    est = load_user_depth(tmp_path / "d.npy", (24, 32), camera_estimate=moge_like)
    assert est.intrinsics_from == "model" and est.intrinsics[0, 0] == 40.0 and est.intrinsics[1, 2] == 12.0


def test_an_intrinsics_json_nested_thousands_deep_is_one_line(tmp_path):
    """json's RecursionError was shown as "cannot be read (maximum recursion depth exceeded …)"."""
    (tmp_path / "K.json").write_text("[" * 100_000)
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*K\.json' nests its JSON lists or objects thousands deep, as no intrinsics file does: write "):
        parse_intrinsics(str(tmp_path / "K.json"), (480, 640), name="--intrinsics")


def test_an_intrinsics_json_is_decoded_and_parsed_as_a_camera_file_is(tmp_path):
    """An intrinsics JSON with a UTF-8 byte order mark (Notepad's) was refused as "cannot be read
    (Unexpected UTF-8 BOM …)", a UTF-16 one (PowerShell 5's) as "cannot be read ('utf-8' codec …)";
    a 400-digit integer was an OverflowError (a gen3c bug, not one line); a key given twice kept
    its last value without a word. A camera file's JSON is read so (gen3c.io.camera_files)."""
    camera = '{"fx": 500, "fy": 510, "cx": 320, "cy": 240}'
    for name, data in (("bom8.json", b"\xef\xbb\xbf" + camera.encode()), ("bom16.json", camera.encode("utf-16"))):
        (tmp_path / name).write_bytes(data)
        assert torch.equal(parse_intrinsics(str(tmp_path / name), (480, 640)), make_intrinsics(500.0, 510.0, 320.0, 240.0)), name
    (tmp_path / "huge.json").write_text('{"fx": 5' + "0" * 400 + ', "fy": 510, "cx": 320, "cy": 240}')
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*huge\.json' holds the integer 5000…000 \(401 digits\), beyond any floating-point number: check that number$"):
        parse_intrinsics(str(tmp_path / "huge.json"), (480, 640))
    (tmp_path / "twice.json").write_text('{"fx": 500, "fy": 510, "cx": 320, "cy": 240, "fx": 520}')
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*twice\.json' gives 'fx' twice in one object \(500, then 520\): a JSON reader keeps the last"):
        parse_intrinsics(str(tmp_path / "twice.json"), (480, 640))
    (tmp_path / "bad.json").write_bytes(b"\xef\xbb\xbf{fx: 500}")  # not JSON after its mark: still worded as before
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*bad\.json' cannot be read \(Expecting property name .*\): write 'fx fy cx cy' or a 3×3 matrix$"):
        parse_intrinsics(str(tmp_path / "bad.json"), (480, 640))


def test_parse_intrinsics(tmp_path):
    expected = make_intrinsics(500.0, 510.0, 320.0, 240.0)
    (tmp_path / "k.json").write_text(json.dumps({"fx": 500, "fy": 510, "cx": 320, "cy": 240}))
    (tmp_path / "K.json").write_text(json.dumps({"K": expected.tolist()}))
    (tmp_path / "k.txt").write_text("500 510 320 240\n")
    np.save(tmp_path / "k.npy", expected.numpy())
    for spec in ("500,510,320,240", "500, 510, 320, 240", *(str(tmp_path / n) for n in ("k.json", "K.json", "k.txt", "k.npy"))):
        assert torch.allclose(parse_intrinsics(spec, (480, 640)), expected), spec
    with pytest.raises(Gen3cInputError, match="4 numbers"):
        parse_intrinsics("500,510,320", (480, 640))
    with pytest.raises(Gen3cInputError, match="neither"):
        parse_intrinsics("cam.txt", (480, 640))
    with pytest.raises(Gen3cInputError, match="focal length"):
        parse_intrinsics("-5,5,1,1", (480, 640))
    # NaN or inf named the input (before make_intrinsics refused them under its own name "make_intrinsics fx")
    (tmp_path / "nan.txt").write_text("nan 510 320 240\n")
    for spec, shown in (("500,inf,320,240", "'500,inf,320,240'"), (str(tmp_path / "nan.txt"), ".*nan.txt'")):
        with pytest.raises(Gen3cInputError, match=rf"^--intrinsics {shown} contain NaN or infinite values: pass finite fx, fy, cx, cy$"):
            parse_intrinsics(spec, (480, 640))
    assert parse_intrinsics(None, (480, 640)) is None  # no camera given


def test_an_intrinsics_txt_reads_a_matrix_as_printed_and_skips_comments(tmp_path):
    """A .txt holding K as numpy prints it or as a Python list, with a "#" comment line, or numbers
    apart by semicolons (as '--intrinsics 500;510;320;240' is taken) was refused as not holding
    "4 numbers … or a 3×3 matrix"."""
    K = make_intrinsics(500.0, 510.0, 320.0, 240.0)
    texts = {
        "numpy.txt": str(K.numpy()),  # [[500.   0. 320.]\n [  0. 510. 240.]\n [  0.   0.   1.]]
        "list.txt": str(K.tolist()),
        "comment.txt": "# fx fy cx cy (pixels)\n500 510 320 240\n",
        "semicolons.txt": "500;510;320;240",
    }
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
        assert torch.equal(parse_intrinsics(str(tmp_path / name), (480, 640)), K), name
    (tmp_path / "words.txt").write_text("fx=500 fy=510 cx=320 cy=240")
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics '.*words\.txt' must hold 4 numbers 'fx,fy,cx,cy'"):
        parse_intrinsics(str(tmp_path / "words.txt"), (480, 640))


def test_an_intrinsics_npy_of_many_values_is_refused_from_its_header(tmp_path):
    """A depth stack given as --intrinsics by mistake was read whole and made a list of Python
    floats (121 frames at 704×1280: ~3 GB) before "must hold 4 numbers". This file holds only a
    header claiming (121, 704, 1280): read whole it was "cannot be read"."""
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (121, 704, 1280), }"
    header += b" " * (64 - 10 - 1 - len(header) % 64) + b"\n"
    (tmp_path / "stack.npy").write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header)
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*stack\.npy' holds a \(121, 704, 1280\) array: it must hold 4 numbers 'fx,fy,cx,cy', a 3×3 matrix"):
        parse_intrinsics(str(tmp_path / "stack.npy"), (704, 1280))
    np.save(tmp_path / "K.npy", np.array([[500.0, 0, 640], [0, 500, 352], [0, 0, 1]]))
    assert torch.equal(parse_intrinsics(str(tmp_path / "K.npy"), (704, 1280)), make_intrinsics(500.0, 500.0, 640.0, 352.0))


def test_an_intrinsics_file_too_large_for_a_camera_is_refused_by_its_size(tmp_path):
    """A COLMAP points3D.txt picked beside cameras.txt was read whole, every number a Python string
    (72 MB took 1.4 GB), to be told it "must hold 4 numbers" (a points3D.txt is now named as such
    from its head: tests/test_cli_bad_input.py; any other large text is refused by its size)."""
    (tmp_path / "points.txt").write_text("1.0 2.0 3.0 4.0\n" * 5000)  # 80 kB
    with pytest.raises(Gen3cInputError, match=(
        r"^--intrinsics file '.*points\.txt' is 0\.08 MB, more than an intrinsics file holds \(64 KiB at most\): "
        r"pass the camera's own file or 'fx,fy,cx,cy'$"
    )):
        parse_intrinsics(str(tmp_path / "points.txt"), (480, 640))
    with open(tmp_path / "big.json", "wb") as f:  # sparse: refused before a byte past its head is read
        f.write(b"{")
        f.truncate(65 << 20)
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*big\.json' is 68\.2 MB, more than a camera file holds \(64 MiB at most\)"):
        parse_intrinsics(str(tmp_path / "big.json"), (480, 640))
    (tmp_path / "K.txt").write_text("500 500 320 240\n" + " " * 60_000)  # within the limit: read
    assert torch.equal(parse_intrinsics(str(tmp_path / "K.txt"), (480, 640)), make_intrinsics(500.0, 500.0, 320.0, 240.0))


def test_a_video_or_image_given_as_intrinsics_is_named_from_its_first_bytes(tmp_path):
    """`--intrinsics clip.mp4` (or a depth PNG) was read whole as text — gigabytes for a video —
    to fail at its first non-UTF-8 byte: "cannot be read ('utf-8' codec can't decode …)"."""
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x20ftypisom" + bytes(range(256)))
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*clip\.mp4' is an MP4/MOV video, not a camera: pass 'fx,fy,cx,cy' or a \.txt, \.json or \.npy file of 4 numbers"):
        parse_intrinsics(str(tmp_path / "clip.mp4"), (704, 1280))
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(tmp_path / "K.txt", format="PNG")  # a PNG misnamed
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*K\.txt' is a PNG image, not a camera"):
        parse_intrinsics(str(tmp_path / "K.txt"), (704, 1280))
    # np.save's K renamed: it was told to pass "a .npy file", which it is
    np.save(tmp_path / "K.npy", np.eye(3))
    (tmp_path / "K.npy").rename(tmp_path / "K.txt")
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*K\.txt' is a NumPy \.npy array under another suffix: rename it to end in \.npy$"):
        parse_intrinsics(str(tmp_path / "K.txt"), (704, 1280))
    # UTF-8 text whose 16 first bytes end inside a character is still read as text.
    (tmp_path / "K.json").write_text('{"note": "Kamerä", "fx": 500, "fy": 500, "cx": 640, "cy": 352}', encoding="utf-8")
    assert torch.equal(parse_intrinsics(str(tmp_path / "K.json"), (704, 1280)), make_intrinsics(500.0, 500.0, 640.0, 352.0))


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
@pytest.mark.parametrize("kind", ["numbers", "colmap"])
def test_an_intrinsics_text_file_as_windows_tools_save_it_reads(tmp_path, kind, encoding):
    """A .txt of 4 numbers or a COLMAP cameras.txt saved with a byte order mark (Notepad's UTF-8)
    was "must hold 4 numbers …" (the mark glued to its first word), one in UTF-16 (PowerShell 5's
    `>`) "cannot be read ('utf-8' codec …)"; CRLF line ends and tabs read as ever."""
    text = {"numbers": "# K of the photo\r\n500 510\t320 240\r\n", "colmap": "1 PINHOLE 640 480 500 510 320.5 240.5\r\n# end\r\n"}[kind]
    path = tmp_path / ("cameras.txt" if kind == "colmap" else "K.txt")
    path.write_bytes((b"\xfe\xff" if encoding == "utf-16-be" else b"") + text.encode(encoding))
    assert torch.equal(parse_intrinsics(str(path), (480, 640)), make_intrinsics(500.0, 510.0, 320.0, 240.0))


def test_an_intrinsics_file_of_no_text_is_one_line_saying_what_it_is(tmp_path):
    """A text file in a Windows code page (é as 0xe9) or bytes of no known format were "cannot be
    read ('utf-8' codec can't decode byte … in position …)": Python's words, not what to do."""
    (tmp_path / "K.txt").write_bytes("# caméra\n500 510 320 240\n".encode("cp1252"))
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*K\.txt' is not UTF-8 text \(line 1 holds the byte 0xe9\): save it as UTF-8$"):
        parse_intrinsics(str(tmp_path / "K.txt"), (480, 640))
    (tmp_path / "cameras.txt").write_bytes("# Caméra\n# \n1 PINHOLE 640 480 500 510 320 240\n# é\n".encode("cp1252"))
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*cameras\.txt' is not UTF-8 text \(line 1 holds the byte 0xe9\): save it as UTF-8$"):
        parse_intrinsics(str(tmp_path / "cameras.txt"), (480, 640))
    (tmp_path / "K.json").write_bytes(b"\x01\x02\xfe\xfe\x00" * 20)
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*K\.json' is of an unknown binary format, not a camera: pass 'fx,fy,cx,cy' or a \.txt"):
        parse_intrinsics(str(tmp_path / "K.json"), (480, 640))


def test_parse_intrinsics_takes_a_scannet_4x4_and_refuses_one_not_padded_with_the_identity(tmp_path):
    # Before: 16 numbers were refused as "must hold 4 numbers 'fx,fy,cx,cy' or a 3×3 matrix".
    (tmp_path / "intrinsic_color.txt").write_text(  # as ScanNet writes it
        "1170.187988 0.000000 647.750000 0.000000\n0.000000 1170.187988 483.750000 0.000000\n"
        "0.000000 0.000000 1.000000 0.000000\n0.000000 0.000000 0.000000 1.000000\n"
    )
    K = parse_intrinsics(str(tmp_path / "intrinsic_color.txt"), (968, 1296))
    assert torch.equal(K, make_intrinsics(1170.187988, 1170.187988, 647.75, 483.75))
    np.save(tmp_path / "K44.npy", np.pad(K.numpy(), ((0, 1), (0, 1))) + np.diag([0, 0, 0, 1.0]))  # .npy, JSON: the same reader
    assert torch.equal(parse_intrinsics(str(tmp_path / "K44.npy"), (968, 1296)), K)
    (tmp_path / "P.txt").write_text("500 0 320 7\n0 500 240 0\n0 0 1 0\n0 0 0 1\n")  # a projection with a translation
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics '.*P\.txt' is a 4×4 matrix whose last row \[0\.0, 0\.0, 0\.0, 1\.0\] and column \[7\.0, 0\.0, 0\.0, 1\.0\] are not \[0, 0, 0, 1\] \(not intrinsics padded to 4×4\): write its 3×3 intrinsics$"):
        parse_intrinsics(str(tmp_path / "P.txt"), (480, 640))


def test_intrinsics_of_a_nerfstudio_transforms_json(tmp_path):
    """--intrinsics transforms.json (ns-process-data's) was refused: "needs keys fx, fy, cx, cy or
    a 3×3 'K'". It is read as --camera_file reads it: nerfstudio's pixel centres at half-integers
    (cx = w / 2 is gen3c's (w − 1) / 2), scaled from its w × h to the image with a note."""
    pose = np.eye(4).tolist()
    camera = {"camera_model": "OPENCV", "fl_x": 500.0, "fl_y": 510.0, "cx": 320.0, "cy": 240.0, "w": 640, "h": 480, "k1": 0.0}
    path = tmp_path / "transforms.json"
    path.write_text(json.dumps({**camera, "frames": [{"file_path": "images/frame_00001.png", "transform_matrix": pose}]}))
    assert torch.equal(parse_intrinsics(path, (480, 640)), make_intrinsics(500.0, 510.0, 319.5, 239.5))
    with pytest.warns(UserWarning, match=r"^--intrinsics '.*transforms\.json' was made for a 640×480 image: scaled to the 320×240 input"):
        assert torch.equal(parse_intrinsics(path, (240, 320)), make_intrinsics(250.0, 255.0, 159.75, 119.75))
    (tmp_path / "camera.json").write_text(json.dumps(camera))  # its camera alone, no frames
    assert torch.equal(parse_intrinsics(tmp_path / "camera.json", (480, 640)), make_intrinsics(500.0, 510.0, 319.5, 239.5))
    per_frame = [{"file_path": f"images/{i}.png", "transform_matrix": pose, **camera} for i in range(2)]
    (tmp_path / "same.json").write_text(json.dumps({"frames": per_frame}))  # every frame its own, the same camera
    assert torch.equal(parse_intrinsics(tmp_path / "same.json", (480, 640)), make_intrinsics(500.0, 510.0, 319.5, 239.5))
    per_frame[1]["fl_x"] = 400.0
    (tmp_path / "two.json").write_text(json.dumps({"frames": per_frame}))
    with pytest.raises(Gen3cInputError, match=(
        r"^--intrinsics file '.*two\.json' holds cameras of different intrinsics \(fx, fy, cx, cy = 500, 510, 319\.5, 239\.5 and "
        r"400, 510, 319\.5, 239\.5\): an image has one; pass the input image's own as 'fx,fy,cx,cy'$"
    )):
        parse_intrinsics(tmp_path / "two.json", (480, 640))
    (tmp_path / "fisheye.json").write_text(json.dumps({**camera, "camera_model": "OPENCV_FISHEYE"}))
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*fisheye\.json': 'camera_model' 'OPENCV_FISHEYE' is a fisheye camera: gen3c renders pinhole") as caught:
        parse_intrinsics(tmp_path / "fisheye.json", (480, 640))
    assert "camera path" not in str(caught.value)  # it said "write a pinhole camera path", for one camera
    (tmp_path / "no_fl.json").write_text(json.dumps({key: v for key, v in camera.items() if key != "fl_x"}))
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*no_fl\.json': the file has no 'fl_x': give the focal length in pixels as 'fl_x'"):
        parse_intrinsics(tmp_path / "no_fl.json", (480, 640))
    (tmp_path / "K_wh.json").write_text(json.dumps({"K": [[500, 0, 320], [0, 510, 240], [0, 0, 1]], "w": 640, "h": 480}))  # not nerfstudio's
    assert torch.equal(parse_intrinsics(tmp_path / "K_wh.json", (480, 640)), make_intrinsics(500.0, 510.0, 320.0, 240.0))
    (tmp_path / "lens.json").write_text(json.dumps({**camera, "k1": -0.2}))  # moves pixels by tens of px: not a pinhole camera
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*lens\.json': lens distortion 'k1' -0\.2 moves pixels up to"):
        parse_intrinsics(tmp_path / "lens.json", (480, 640))


COLMAP_HEADER = "# Camera list with one line of data per camera:\n#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n# Number of cameras: 1\n"


def test_intrinsics_of_a_colmap_cameras_txt(tmp_path):
    """--intrinsics sparse/0/cameras.txt was refused: "must hold 4 numbers 'fx,fy,cx,cy', a 3×3
    matrix …" (its model's name is no number). COLMAP puts pixel centres at (u + ½, v + ½), as
    nerfstudio does: its cx = 320 is gen3c's 319.5; WIDTH × HEIGHT scales it to the image with a note."""
    path = tmp_path / "cameras.txt"

    def read(lines: str, size: tuple[int, int] = (480, 640)) -> torch.Tensor:
        path.write_text(COLMAP_HEADER + lines)
        return parse_intrinsics(path, size)

    assert torch.equal(read("1 PINHOLE 640 480 500 510 320 240\n"), make_intrinsics(500.0, 510.0, 319.5, 239.5))
    # made for 1280×960: gen3c's (1000, 1000, 639.5, 479.5) halved, as a transforms.json's is
    with pytest.warns(UserWarning, match=r"^--intrinsics '.*cameras\.txt' was made for a 1280×960 image: scaled to the 640×480 input \(fx, cx × 0\.5; fy, cy × 0\.5\)$"):
        assert torch.equal(read("1 SIMPLE_PINHOLE 1280 960 1000 640 480\n"), make_intrinsics(500.0, 500.0, 319.75, 239.75))
    # distortion at 0 (or moving no pixel ½ px: k 1e-4 moves a corner f·k·r^1.5 = 500e-4·0.64·0.8 = 0.026 px) is a pinhole camera
    for line in ("1 SIMPLE_RADIAL 640 480 500 320 240 0\n", "1 SIMPLE_RADIAL 640 480 500 320 240 1e-4\n",
                 "1 OPENCV 640 480 500 500 320 240 0 0 0 0\n", "1 FULL_OPENCV 640 480 500 500 320 240 0 0 0 0 0 0 0 0\n",
                 "1 PINHOLE 640 480 500 500 320 240\n2 PINHOLE 640 480 500 500 320 240\n"):  # two cameras, equal: one  # fmt: skip
        assert torch.equal(read(line), make_intrinsics(500.0, 500.0, 319.5, 239.5)), line
    undistort = r"undistort the images first \(colmap image_undistorter writes their PINHOLE camera in sparse/cameras\.txt\) and pass that camera with an undistorted image$"
    # k 0.05 moves the corner (x, y) = (320, 240) / 500, r = 0.64, by f·k·r·√r = 500·0.05·0.64·0.8 = 12.8 px
    for line, refusal in (
        ("1 SIMPLE_RADIAL 640 480 500 320 240 0.05", r"line 4: lens distortion k 0\.05 moves pixels up to 12\.8 px from the pinhole camera gen3c renders: "
                                                      r"pass the PINHOLE camera of the same fx, fy, cx, cy, or " + undistort),
        ("1 OPENCV_FISHEYE 640 480 500 500 320 240 0 0 0 0", r"line 4: model OPENCV_FISHEYE is a fisheye camera: gen3c renders pinhole cameras; " + undistort),
        ("1 FULL_OPENCV 640 480 500 500 320 240 0 0 0 0 0 0.1 0 0", r"line 4: FULL_OPENCV's lens distortion k4 0\.1 is not a pinhole camera's: " + undistort),
        ("1 PINHOL 640 480 500 500 320 240", r"line 4: model 'PINHOL' is none of COLMAP's camera models: give one of SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL"),
        ("1 PINHOLE 640 480 500 500 320", r"line 4: PINHOLE takes WIDTH HEIGHT and 4 parameters \(fx, fy, cx, cy\), got 3 after WIDTH HEIGHT$"),
        ("1 PINHOLE 640 480 500 500 320 240\n2 PINHOLE 640 480 400 400 320 240\n3 SIMPLE_PINHOLE 640 480 500 320 240",
         r"holds 3 cameras of different intrinsics \(CAMERA_ID 1, 2, 3\): an image has one; pass a cameras\.txt of the input image's camera alone "
         r"\(images\.txt names each image's CAMERA_ID\) or its 'fx,fy,cx,cy'$"),
    ):  # fmt: skip
        with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*cameras\.txt' " + refusal):
            read(line + "\n")
    # A camera per image of a large capture is read (beyond the 64 KiB of an intrinsics text), refused as several.
    with pytest.raises(Gen3cInputError, match=r"holds 3000 cameras of different intrinsics \(CAMERA_ID 1, 2, 3, 4, 5, …\)"):
        read("".join(f"{i} PINHOLE 640 480 {500 + i} 500 320 240\n" for i in range(1, 3001)))
    # COLMAP's binary model: a camera count, then CAMERA_ID, MODEL (1: PINHOLE), WIDTH, HEIGHT, its parameters
    (tmp_path / "cameras.bin").write_bytes(struct.pack("<QiiQQ4d", 1, 1, 1, 640, 480, 500.0, 500.0, 320.0, 240.0))
    with pytest.raises(Gen3cInputError, match=r"^--intrinsics file '.*cameras\.bin' is binary, not text \(COLMAP's cameras\.bin\?\): convert it with colmap model_converter"):
        parse_intrinsics(tmp_path / "cameras.bin", (480, 640))


def test_intrinsics_of_a_gen3c_cameras_json(tmp_path):
    """The cameras gen3c writes beside a video hold K per frame, with the size they are pixels of:
    refused before as "needs keys fx, fy, cx, cy or a 3×3 'K'"."""
    from gen3c.cameras import Cameras
    from gen3c.io.camera_files import save_cameras

    K = make_intrinsics(60.0, 60.0, 32.0, 24.0)
    save_cameras(tmp_path / "run_cameras.json", Cameras(torch.eye(4).repeat(3, 1, 1), K.repeat(3, 1, 1), 48, 64))
    assert torch.equal(parse_intrinsics(tmp_path / "run_cameras.json", (48, 64)), K)
    with pytest.warns(UserWarning, match="was made for a 64×48 image: scaled to the 128×96 input"):
        assert torch.equal(parse_intrinsics(tmp_path / "run_cameras.json", (96, 128)), make_intrinsics(120.0, 120.0, 64.0, 48.0))


def test_one_parse_intrinsics_for_every_caller():
    """The CLI, the request (GUI, batch, ``gen3c.generate``) and ``gen3c.depth`` read
    ``--intrinsics`` / ``--fov`` with one function: ``gen3c.depth.parse_intrinsics`` used to take
    no field of view and, without an image size, skip the check against the image."""
    import gen3c.depth
    import gen3c.depth.user
    import gen3c.io.intrinsics
    import gen3c.pipelines.request

    one = gen3c.io.intrinsics.parse_intrinsics
    assert gen3c.depth.parse_intrinsics is one and gen3c.depth.user.parse_intrinsics is one
    assert gen3c.pipelines.request.parse_intrinsics is one
    with pytest.raises(Gen3cInputError, match="either --intrinsics or --fov, not both"):
        gen3c.depth.parse_intrinsics("60,60,32,24", (48, 64), fov=60.0)
    # 90° over 64 px: f = 32 by hand
    assert torch.allclose(gen3c.depth.parse_intrinsics(None, (48, 64), fov=90.0), make_intrinsics(32.0, 32.0, 32.0, 24.0), atol=1e-4)


def test_default_fov_is_60_degrees_horizontal():
    est = GeometricPriorEstimator().estimate(torch.rand(3, 30, 40))
    assert est.intrinsics[0, 0].item() == pytest.approx(20 / math.tan(math.radians(30)))
    assert est.intrinsics[1, 1].item() == est.intrinsics[0, 0].item()


# ---- intrinsics against the image they belong to ---------------------------------------------


def test_fov_is_horizontal_closed_form():
    """90° horizontal over 200 px: f = 100 by hand; the principal point at the centre."""
    K = parse_intrinsics(None, (100, 200), fov=90.0)
    assert torch.allclose(K, make_intrinsics(100.0, 100.0, 100.0, 50.0), atol=1e-4)


def test_normalised_or_wrong_size_intrinsics_are_refused(tmp_path):
    """MoGe-style normalised intrinsics, or pixels of another image size, used to pass and give a
    ~170° camera (or one looking past the image's edge)."""
    with pytest.raises(Gen3cInputError, match=r"look normalised .*the 64×48 \(W×H\) image, i\.e\. fx, cx × 64 and fy, cy × 48"):
        parse_intrinsics("0.8,1.4,0.5,0.5", (48, 64))
    with pytest.raises(Gen3cInputError, match="principal point outside the 64×48"):
        parse_intrinsics("500,500,640,360", (48, 64))
    np.save(tmp_path / "d.npy", np.ones((48, 64), np.float32))
    with pytest.raises(Gen3cInputError, match="look normalised"):
        load_user_depth(tmp_path / "d.npy", (48, 64), intrinsics=make_intrinsics(0.8, 1.4, 0.5, 0.5))
    assert parse_intrinsics("60,60,32,24", (48, 64))[0, 2] == 32.0  # a sensible camera passes


def test_recorded_intrinsics_json_is_scaled_to_the_image(tmp_path):
    """`gen3c depth --resolution` records K at the depth's size; fed back as --intrinsics for the
    full-size photo it used to be taken as pixels of the photo (a camera twice too wide here)."""
    K = make_intrinsics(40.0, 41.0, 32.0, 24.0)
    (tmp_path / "cam.json").write_text(json.dumps({"height": 48, "width": 64, "intrinsics": K.tolist()}))
    with pytest.warns(UserWarning, match="made for a 64×48 image: scaled to the 128×96"):
        scaled = parse_intrinsics(tmp_path / "cam.json", (96, 128))
    assert torch.allclose(scaled, make_intrinsics(80.0, 82.0, 64.0, 48.0))
    assert torch.allclose(parse_intrinsics(tmp_path / "cam.json", (48, 64)), K)  # the size it was made for: as written


def test_square_pixel_camera_of_the_turned_image_is_refused(tmp_path):
    """A landscape 80×60 calibration (square pixels) given for the photo read upright, 60×80, was
    scaled per axis with a note: fx × 0.75, fy × 1.333, a silently stretched camera. It is refused,
    with the upright camera (pixel centres at integers: clockwise (x, y) → (59 − y, x)), from every
    file that records its size. A non-square camera recorded for the turned shape (`gen3c depth
    --resolution 60,80` of the 80×60 photo) is a stretch, still scaled back."""
    from gen3c.cameras import Cameras
    from gen3c.io.camera_files import save_cameras

    upright = r"pass the upright image's camera, fx and fy swapped and the principal point turned with it: '70\.5,70,29,30\.5' if the photo was turned clockwise \(EXIF orientation 6\), '70\.5,70,30,48\.5' if anticlockwise \(8\)$"
    (tmp_path / "cam.json").write_text(json.dumps({"height": 60, "width": 80, "fx": 70, "fy": 70.5, "cx": 30.5, "cy": 30}))
    nerfstudio = {"camera_model": "OPENCV", "fl_x": 70.0, "fl_y": 70.5, "cx": 31.0, "cy": 30.5, "w": 80, "h": 60}  # cx = w/2 is gen3c's 30.5
    (tmp_path / "transforms.json").write_text(json.dumps(nerfstudio))
    save_cameras(tmp_path / "run_cameras.json", Cameras(torch.eye(4)[None], make_intrinsics(70.0, 70.5, 30.5, 30.0)[None], 60, 80))
    for name in ("cam.json", "transforms.json", "run_cameras.json"):
        with pytest.raises(Gen3cInputError, match=(
            rf"^--intrinsics '.*{name}' was made for a 80×60 image, the 60×80 input turned a quarter \(a photo read upright by its EXIF "
            rf"orientation\?\): scaled to it, its square pixels \(fx=70, fy=70\.5\) would be stretched; " + upright
        )) as caught:
            parse_intrinsics(tmp_path / name, (80, 60))
    # the camera it says to pass sees each pixel's ray turned with the photo: stored (x, y) = (10, 20) is upright (59 − 20, 10)
    fx, fy, cx, cy = (float(v) for v in re.search(r"'([\d.,]+)' if the photo was turned clockwise", str(caught.value))[1].split(","))
    assert ((39 - cx) / fx, (10 - cy) / fy) == pytest.approx((-(20 - 30) / 70.5, (10 - 30.5) / 70))
    fx, fy, cx, cy = (float(v) for v in re.search(r"'([\d.,]+)' if anticlockwise", str(caught.value))[1].split(","))
    assert ((20 - cx) / fx, (79 - 10 - cy) / fy) == pytest.approx(((20 - 30) / 70.5, -(10 - 30.5) / 70))  # (x, y) → (y, 79 − x)
    stretched = make_intrinsics(60.0, 106.0, 29.5, 39.5)  # a square camera's depth written at 60×80 for an 80×60 photo
    (tmp_path / "depth.json").write_text(json.dumps({"height": 80, "width": 60, "intrinsics": stretched.tolist()}))
    with pytest.warns(UserWarning, match="made for a 60×80 image: scaled to the 80×60 input"):
        back = parse_intrinsics(tmp_path / "depth.json", (60, 80))
    assert torch.allclose(back, make_intrinsics(80.0, 79.5, 29.5 * 4 / 3, 39.5 * 0.75))


def test_camera_of_the_turned_image_given_without_its_size_is_noted(tmp_path):
    """A 4032×3024 calibration (cx, cy = 2015.5, 1511.5) given as numbers, .txt or .npy for the photo
    read upright, 3024×4032, put the principal point 500 px off its centre, inside the image:
    taken silently. It is noted with the upright camera (its centred point is the same turned
    either way); a camera centred on the upright image, or of non-square pixels, is not."""
    said = (
        "(cx=2015.5, cy=1511.5) put the principal point at the centre of a 4032×3024 image, not of this 3024×4032 one: made for the photo "
        "turned a quarter (as stored, read upright by its EXIF orientation)? then pass the upright image's camera, fx and fy swapped and "
        "the principal point turned with it: '3010,3000,1511.5,2015.5' (turned either way)"
    )
    (tmp_path / "K.txt").write_text("3000 0 2015.5\n0 3010 1511.5\n0 0 1\n")
    np.save(tmp_path / "K.npy", np.array([3000, 3010, 2015.5, 1511.5]))
    for spec in ("3000,3010,2015.5,1511.5", str(tmp_path / "K.txt"), str(tmp_path / "K.npy")):
        with pytest.warns(UserWarning) as caught:
            K = parse_intrinsics(spec, (4032, 3024))
        assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == [f"--intrinsics {spec!r} {said}"]
        assert torch.equal(K, make_intrinsics(3000.0, 3010.0, 2015.5, 1511.5))  # as given: a note, a crop may put it there
    (tmp_path / "cam.json").write_text(json.dumps({"height": 3024, "width": 4032, "fx": 3000, "fy": 3010, "cx": 2015.5, "cy": 1511.5}))
    with pytest.raises(Gen3cInputError, match=r"would be stretched; pass the upright image's camera, .*: '3010,3000,1511\.5,2015\.5' \(turned either way\)$"):
        parse_intrinsics(tmp_path / "cam.json", (4032, 3024))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parse_intrinsics("3000,3010,1511.5,2015.5", (4032, 3024))  # the upright camera
        parse_intrinsics("2250,4000,2015.5,1511.5", (4032, 3024))  # non-square: not a calibration turned


def test_intrinsics_of_the_photo_before_it_was_resized_are_noted(tmp_path):
    """--intrinsics of the photo at 96×72 (cx, cy = 47.5, 35.5) given with the photo resized to
    64×48 put the principal point at 3/4 of each side, inside the image: the video readers said
    so, the single-image reader did not. A JSON that records its size is scaled, with nothing more."""
    with pytest.warns(UserWarning) as caught:
        parse_intrinsics("60,60,47.5,35.5", (48, 64))
    assert [str(w.message) for w in caught if issubclass(w.category, UserWarning)] == [
        "--intrinsics '60,60,47.5,35.5' (cx=47.5, cy=35.5) put the principal point at the centre of a 96×72 image, not of this "
        "64×48 one: made for the image before it was resized? then scale fx, fy, cx, cy by 0.6667"
    ]
    (tmp_path / "cam.json").write_text(json.dumps({"height": 72, "width": 96, "fx": 60, "fy": 60, "cx": 47.5, "cy": 35.5}))
    with pytest.warns(UserWarning) as caught:
        parse_intrinsics(tmp_path / "cam.json", (48, 64))
    (said,) = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert "was made for a 96×72 image: scaled to the 64×48 input" in said
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # centred on this image (GEN3C's W/2, H/2 too), or a fov: nothing to say
        parse_intrinsics("60,60,31.5,23.5", (48, 64))
        parse_intrinsics("60,60,32,24", (48, 64))
        parse_intrinsics(None, (48, 64), fov=60.0)


@pytest.mark.parametrize("mode, size", [("crop", (150, 200)), ("crop", (100, 300)), ("stretch", (100, 300))])
def test_plane_with_known_camera_unprojects_to_its_depth_at_the_working_size(mode, size):
    """A fronto-parallel plane at D = 3 seen with K (pixels of the 300×400 photo): after the
    resize/crop to the working size, every pixel lifts to z = D and each working pixel's ray is
    the photo's ray through the same scene point (x = D·(u − cx)/fx by hand)."""
    from gen3c.cameras import resize_crop_plan, unproject_depth
    from gen3c.pipelines.camera_video import prepare_source

    D, (H, W), K = 3.0, (300, 400), make_intrinsics(350.0, 340.0, 200.0, 150.0)
    source = prepare_source(torch.zeros(3, H, W), torch.full((H, W), D), K, size, mode)
    points = unproject_depth(source.depth, source.K)
    assert torch.allclose(points[..., 2], torch.full(size, D))
    if mode == "stretch":
        sx, sy, left, top = size[1] / W, size[0] / H, 0, 0
    else:
        (rh, rw), top, left = resize_crop_plan((H, W), size)
        sx, sy = rw / W, rh / H
    # Working pixel (u, v) sits at photo pixel ((u + left) / sx, (v + top) / sy) under GEN3C's plain scaling of K.
    u, v = torch.tensor(7.0), torch.tensor(5.0)
    x_photo = D * ((u + left) / sx - 200.0) / 350.0
    y_photo = D * ((v + top) / sy - 150.0) / 340.0
    assert torch.allclose(points[5, 7, :2], torch.stack([x_photo, y_photo]), atol=1e-4)


def test_depth_outputs_are_written_as_one_set(tmp_path, monkeypatch):
    """A failure while the point cloud is written (a full disk) leaves none of the five files,
    not a depth map and picture without their record; a run that succeeds writes all five."""
    from gen3c.depth import export

    est = GeometricPriorEstimator().estimate(torch.rand(3, 24, 32), intrinsics=make_intrinsics(30.0, 30.0, 16.0, 12.0))

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(export, "write_ply", disk_full)
        with pytest.raises(OSError, match="No space left"):
            export.save_depth_outputs(est, torch.rand(3, 24, 32), tmp_path, "scene")
    assert list(tmp_path.iterdir()) == []
    paths = export.save_depth_outputs(est, torch.rand(3, 24, 32), tmp_path, "scene")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


def test_ctrl_c_as_the_depth_outputs_go_into_place_leaves_one_whole_set(tmp_path, monkeypatch):
    """Ctrl-C between the renames of a rerun's five files waits for the last one: never a new
    depth map beside an earlier run's picture, point cloud or record."""
    import os
    import signal
    from pathlib import Path

    import gen3c.io.atomic
    from gen3c.depth import export

    est = GeometricPriorEstimator().estimate(torch.rand(3, 24, 32), intrinsics=make_intrinsics(30.0, 30.0, 16.0, 12.0))
    export.save_depth_outputs(est, torch.rand(3, 24, 32), tmp_path, "scene")
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    renamed = []

    def replace(src, dst):
        if not Path(dst).name.startswith("."):
            if not renamed:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the first file goes into place
            renamed.append(Path(dst).name)
        os.rename(src, dst)

    monkeypatch.setattr(gen3c.io.atomic.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        export.save_depth_outputs(est, torch.rand(3, 24, 32), tmp_path, "scene")
    assert sorted(renamed) == sorted(before) and len(before) == 5
    assert all(p.stat().st_mtime_ns != before[p.name] for p in tmp_path.iterdir())


def test_user_depth_reads_the_record_gen3c_depth_wrote(tmp_path):
    """`save_depth_outputs` (what `gen3c depth` writes) → `load_user_depth`: the kind and camera
    come back with the depth; a stale record (another size than the depth) is ignored."""
    from gen3c.depth.export import save_depth_outputs

    est = GeometricPriorEstimator().estimate(torch.rand(3, 24, 32), intrinsics=make_intrinsics(30.0, 30.0, 16.0, 12.0))
    paths = save_depth_outputs(est, torch.rand(3, 24, 32), tmp_path, "scene")
    back = load_user_depth(paths["npy"], (24, 32))
    assert back.kind == "relative" and back.intrinsics_from == est.intrinsics_from == "user" and torch.equal(back.depth, est.depth)
    assert torch.allclose(back.intrinsics, est.intrinsics)
    with pytest.warns(UserWarning, match="resizing"):
        big = load_user_depth(paths["npy"], (48, 64))
    assert torch.allclose(big.intrinsics, make_intrinsics(60.0, 60.0, 32.0, 24.0))
    assert load_user_depth(paths["npy"], (24, 32), kind="metric").kind == "metric"  # the caller's word wins
    np.save(paths["npy"], np.ones((12, 16), np.float32))  # replaced by a depth of another size
    with pytest.warns(UserWarning, match="resizing"):
        stale = load_user_depth(paths["npy"], (24, 32))
    assert stale.kind == "metric" and stale.intrinsics_from == "default"


@pytest.mark.parametrize("camera_from", ["default", "user", "model"])
def test_the_recorded_cameras_source_comes_back_with_it(box_scene, tmp_path, camera_from):
    """`gen3c depth` writes where its camera came from ("intrinsics_from"); read back (the file, the
    estimate in memory, an estimate lending its camera) it is that source, and the note of a run
    fed the depth calls a default camera one. Before: "model" every time, so the 60° guess of an
    estimate without a camera (MoGe's all-sky image, the prior) was reported as the estimator's."""
    from gen3c.depth.export import save_depth_outputs
    from gen3c.depth.user import DepthRecord
    from gen3c.pipelines.request import GenerationRequest, InMemoryInput, load_scene

    image_path, _, image, _ = box_scene
    h, w = image.shape[-2:]
    estimate = replace(SkyEstimator().estimate((image + 1) / 2), intrinsics_from=camera_from)
    assert DepthRecord.of_estimate(estimate).intrinsics_from == camera_from
    paths = save_depth_outputs(estimate, (image + 1) / 2, tmp_path, "photo")
    assert json.loads(paths["json"].read_text())["intrinsics_from"] == camera_from
    back = load_user_depth(paths["npy"], (h, w))
    assert back.intrinsics_from == camera_from and torch.equal(back.intrinsics, estimate.intrinsics)
    np.save(tmp_path / "bare.npy", estimate.depth.numpy())  # no record: the camera of an estimate handed over
    assert load_user_depth(tmp_path / "bare.npy", (h, w), camera_estimate=estimate).intrinsics_from == camera_from
    said = {"default": r"the default camera \(64\.0° horizontal: none was estimated; --fov or --intrinsics if you know it\)",
            "user": r"the camera it was given \(64\.0° horizontal\)", "model": r"its camera \(64\.0° horizontal\)"}[camera_from]  # fmt: skip
    common = {"input_image_path": str(image_path), "resolution": "48x80", "num_video_frames": 5}
    with pytest.warns(UserWarning, match=f"relative depth from sky and {said}, as recorded in photo_depth.json"):
        load_scene(GenerationRequest(**common, depth_path=str(paths["npy"])))
    request = GenerationRequest(**common)
    request.in_memory = InMemoryInput.from_arrays(None, estimate, "gen3c.generate()")
    with pytest.warns(UserWarning, match=f"relative depth from sky and {said}, as held by the DepthEstimate"):
        load_scene(request)


def test_an_unknown_depth_kind_for_user_depth_is_one_line(tmp_path, depth_map):
    """load_user_depth(kind=...) takes "metric", "relative" or None; another word was a ValueError
    from DepthEstimate after the file had been read."""
    np.save(tmp_path / "d.npy", depth_map)
    with pytest.raises(Gen3cInputError, match=r"^depth kind 'absolute' for depth file '.*d\.npy' is unknown: pass one of metric, relative"):
        load_user_depth(tmp_path / "d.npy", depth_map.shape, kind="absolute", fov=60.0)
    assert load_user_depth(tmp_path / "d.npy", depth_map.shape, kind="relative", fov=60.0).kind == "relative"


class SkyEstimator:
    """A MoGe-like estimator: relative depth of a slanted floor (2 → 3 from the top row to the
    bottom one) under a sky, its top 40 % of rows, that it does not trust and fills at GEN3C's
    1000."""

    name, kind = "sky", "relative"

    def estimate(self, image, size=None, intrinsics=None, fov=None):
        h, w = image_to_tensor(image).shape[-2:] if size is None else size
        depth = (2.0 + torch.arange(h, dtype=torch.float32) / h)[:, None].expand(h, w).clone()
        mask = torch.ones(h, w, dtype=torch.bool)
        mask[: int(0.4 * h)] = False
        depth[~mask] = 1000.0
        return DepthEstimate(depth, make_intrinsics(0.8 * w, 0.8 * w, w / 2, h / 2), mask, "relative", "sky")


@pytest.mark.parametrize("scale", ["auto", "gen3c", "median_depth"])
def test_exported_depth_with_untrusted_pixels_fed_back_reproduces_the_run(box_scene, tmp_path, monkeypatch, scale):
    """`gen3c depth`'s files fed back (`--depth_path NAME_depth.npy`) give the direct run's camera
    path and cache whatever the trajectory scale. The sky MoGe does not trust is written at its
    far fill of 1000, which read back counted for the median depth: `--trajectory_scale
    median_depth` (and the GUI's scale) took a path hundreds of times longer."""
    import gen3c.depth
    from gen3c.depth.export import save_depth_outputs
    from gen3c.pipelines.request import GenerationRequest, load_scene

    image_path, _, image, _ = box_scene
    monkeypatch.setattr(gen3c.depth, "cached_depth_estimator", lambda *args, **kwargs: SkyEstimator())
    estimate = SkyEstimator().estimate((image + 1) / 2)
    paths = save_depth_outputs(estimate, (image + 1) / 2, tmp_path, "photo")
    common = {"input_image_path": str(image_path), "resolution": "48x80", "num_video_frames": 5, "trajectory_scale": scale}
    direct = load_scene(GenerationRequest(**common))
    with pytest.warns(UserWarning, match="as recorded in photo_depth.json"):
        fed = load_scene(GenerationRequest(**common, depth_path=str(paths["npy"])))
    assert torch.equal(fed.cameras.w2c, direct.cameras.w2c) and torch.equal(fed.cameras.K, direct.cameras.K)
    for fed_part, direct_part in zip(fed.plan.point_cloud(), direct.plan.point_cloud(), strict=True):
        assert torch.equal(fed_part, direct_part)
    back = load_user_depth(paths["npy"], estimate.size)
    assert torch.equal(back.mask, estimate.mask) and median_depth(back) == median_depth(estimate) < 3


@pytest.mark.parametrize("resolution", ["48x80", "40x96"])
def test_depth_exported_at_the_working_size_of_a_stretch_run_reproduces_it_bit_for_bit(box_scene, tmp_path, monkeypatch, resolution):
    """Under --resize_mode stretch the direct run estimates at the working size; exported there
    (`gen3c depth --resolution`) and fed back, the cache and cameras are the run's, bit for bit.
    The depth was resized (nearest) to the 96×160 photo and back (bilinear): close, not equal; at
    another aspect ratio than the photo's (40×96) it was refused."""
    import gen3c.depth
    from gen3c.depth.export import save_depth_outputs
    from gen3c.io.resolution import parse_resolution
    from gen3c.pipelines.request import GenerationRequest, load_scene

    image_path, _, image, _ = box_scene
    monkeypatch.setattr(gen3c.depth, "cached_depth_estimator", lambda *args, **kwargs: SkyEstimator())
    estimate = SkyEstimator().estimate((image + 1) / 2, size=parse_resolution(resolution))
    paths = save_depth_outputs(estimate, (image + 1) / 2, tmp_path, "photo")
    common = {"input_image_path": str(image_path), "resolution": resolution, "num_video_frames": 5, "resize_mode": "stretch",
              "trajectory_scale": "median_depth"}  # fmt: skip
    direct = load_scene(GenerationRequest(**common))
    with pytest.warns(UserWarning, match="as recorded in photo_depth.json"):
        fed = load_scene(GenerationRequest(**common, depth_path=str(paths["npy"])))
    assert torch.equal(fed.cameras.w2c, direct.cameras.w2c) and torch.equal(fed.cameras.K, direct.cameras.K)
    assert torch.equal(fed.first_frame, direct.first_frame)
    for fed_part, direct_part in zip(fed.plan.point_cloud(), direct.plan.point_cloud(), strict=True):
        assert torch.equal(fed_part, direct_part)


@pytest.mark.parametrize("scale", ["auto", "median_depth"])
def test_an_estimate_in_memory_runs_as_its_export_fed_back(box_scene, tmp_path, scale):
    """`gen3c.generate(image, depth=estimate)` with a `DepthEstimate` in memory makes the cameras
    and cache that `--depth_path NAME_depth.npy` of its export makes: its kind, camera and trusted
    pixels come with it. Before: refused ("is a DepthEstimate: pass a tensor"); its bare depth
    array, the only way in, is metric depth whose sky (the far fill 1000) counts for the median."""
    from gen3c.depth.export import save_depth_outputs
    from gen3c.pipelines.request import GenerationRequest, InMemoryInput, load_scene

    image_path, _, image, _ = box_scene
    estimate = SkyEstimator().estimate((image + 1) / 2)
    paths = save_depth_outputs(estimate, (image + 1) / 2, tmp_path, "photo")
    common = {"input_image_path": str(image_path), "resolution": "48x80", "num_video_frames": 5, "trajectory_scale": scale}
    with pytest.warns(UserWarning, match="as recorded in photo_depth.json"):
        fed = load_scene(GenerationRequest(**common, depth_path=str(paths["npy"])))

    def in_memory(depth, **camera):
        request = GenerationRequest(**common, **camera)
        request.in_memory = InMemoryInput.from_arrays(None, depth, "gen3c.generate()")
        return load_scene(request)

    with pytest.warns(UserWarning, match="relative depth from sky and its camera .*, as held by the DepthEstimate"):
        memory = in_memory(estimate)
    assert torch.equal(memory.cameras.w2c, fed.cameras.w2c) and torch.equal(memory.cameras.K, fed.cameras.K)
    for memory_part, fed_part in zip(memory.plan.point_cloud(), fed.plan.point_cloud(), strict=True):
        assert torch.equal(memory_part, fed_part)
    fx, fy, cx, cy = (float(estimate.intrinsics[i, j]) for i, j in ((0, 0), (1, 1), (0, 2), (1, 2)))
    bare = in_memory(estimate.depth.numpy().copy(), intrinsics=f"{fx},{fy},{cx},{cy}")  # the same camera: metric, the sky in its median
    assert torch.equal(bare.cameras.K, fed.cameras.K) and not torch.allclose(bare.cameras.w2c, fed.cameras.w2c)


def test_mask_invalid_depth_leaves_out_the_pixels_an_exported_estimate_does_not_trust(box_scene, tmp_path):
    """`gen3c depth` writes the sky its estimator does not trust at the far fill (1000), not NaN,
    and marks it in NAME_mask.png. `--mask_invalid_depth` leaves out what a raw saved estimate
    holds as NaN/inf: fed back, the sky now leaves the cache as the mask says (and a note counts
    it), from the file and from the estimate in memory alike. Before: the flag did nothing to it:
    the sky stayed in the cache at depth 100."""
    from gen3c.depth.export import save_depth_outputs
    from gen3c.pipelines.request import GenerationRequest, InMemoryInput, load_scene

    image_path, _, image, _ = box_scene
    estimate = SkyEstimator().estimate((image + 1) / 2)
    paths = save_depth_outputs(estimate, (image + 1) / 2, tmp_path, "photo")
    common = {"input_image_path": str(image_path), "resolution": "48x80", "num_video_frames": 5, "mask_invalid_depth": True}
    with pytest.warns(UserWarning, match=r"--mask_invalid_depth leaves out 6080 pixels \(40%\) the estimator did not trust, as recorded in photo_depth.json"):
        fed = load_scene(GenerationRequest(**common, depth_path=str(paths["npy"])))
    points, _ = fed.plan.point_cloud()
    assert float(points[:, 2].min()) >= 2 and float(points[:, 2].max()) <= 3  # the floor (depth 2 → 3), no sky
    with pytest.warns(UserWarning, match="as recorded in photo_depth.json"):
        kept = load_scene(GenerationRequest(**{**common, "mask_invalid_depth": False}, depth_path=str(paths["npy"])))
    sky = kept.plan.point_cloud()[0][:, 2] >= 100  # without the flag the sky is in, at the cache's clamp, as GEN3C's
    assert int(sky.sum()) > 0.3 * 48 * 80 and torch.equal(kept.plan.point_cloud()[0][~sky], points)
    request = GenerationRequest(**common)
    request.in_memory = InMemoryInput.from_arrays(None, estimate, "gen3c.generate()")
    with pytest.warns(UserWarning, match="as held by the DepthEstimate"):
        memory = load_scene(request)
    assert torch.equal(memory.plan.point_cloud()[0], points) and torch.equal(memory.cameras.w2c, fed.cameras.w2c)
    with pytest.warns(UserWarning, match="leaves out 6080 pixels"):
        back = load_user_depth(paths["npy"], estimate.size, mask_invalid=True)
    assert torch.equal(back.depth > 0, estimate.mask) and torch.equal(back.mask, estimate.mask)


def test_a_depth_record_without_its_mask_reads_as_before_and_a_broken_one_is_refused(tmp_path):
    """A record written before `gen3c depth` wrote NAME_mask.png (no "mask" entry) reads as it did:
    every pixel short of the far fill counts. A mask named but missing, or of another size, is
    one line saying how to mend it, not a run that silently differs from the estimating one."""
    from gen3c.depth.export import save_depth_outputs

    est = SkyEstimator().estimate(torch.rand(3, 20, 32))
    paths = save_depth_outputs(est, torch.rand(3, 20, 32), tmp_path, "scene")
    assert np.array_equal(np.asarray(Image.open(paths["mask"])) == 255, est.mask.numpy())
    info = json.loads(paths["json"].read_text())
    assert info["mask"] == "scene_mask.png"
    paths["mask"].unlink()
    with pytest.raises(Gen3cInputError, match=r"mask .*scene_mask\.png.* cannot be read .*delete the 'mask' entry"):
        load_user_depth(paths["npy"], (20, 32))
    Image.fromarray(np.zeros((10, 16), np.uint8)).save(paths["mask"])
    with pytest.raises(Gen3cInputError, match="is 10×16 but its depth is 20×32"):
        load_user_depth(paths["npy"], (20, 32))
    del info["mask"]
    paths["json"].write_text(json.dumps(info))
    old = load_user_depth(paths["npy"], (20, 32))
    assert old.kind == "relative" and old.mask.all() and median_depth(old) > median_depth(est)  # the far fill counts, as it did


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_a_depth_record_edited_and_saved_by_a_windows_editor_is_still_read(tmp_path, encoding):
    """A depth file's JSON record re-saved with a byte order mark and CRLF line ends (Notepad) was
    not read at all, without a word: its depth then loaded as of no recorded kind, camera or mask."""
    from gen3c.depth.export import save_depth_outputs

    est = SkyEstimator().estimate(torch.rand(3, 20, 32))
    paths = save_depth_outputs(est, torch.rand(3, 20, 32), tmp_path, "scene")
    text = json.dumps(json.loads(paths["json"].read_text()), indent=2).replace("\n", "\r\n")
    paths["json"].write_bytes(text.encode(encoding))
    with pytest.warns(UserWarning, match=r"leaves out 256 pixels \(40%\) the estimator did not trust, as recorded in scene_depth\.json"):
        back = load_user_depth(paths["npy"], (20, 32), mask_invalid=True)
    assert back.kind == "relative" and torch.equal(back.mask, est.mask)


def test_invalid_depth_is_noted_once_and_truly(tmp_path, monkeypatch):
    """A run says once what it did with invalid depth. NaN sky in a depth file was noted as "far
    away" when the file was read, then again by prepare_source, which saw its fill (1e4) and
    called it "depth ≥ 10000, far background": the file holds none. An estimator's own fill of
    1e4 (MoGe's NaN, as GEN3C) was noted as "prepare_source depth" in a run given no depth."""
    import warnings

    import gen3c.depth
    from gen3c.pipelines.request import GenerationRequest, load_source

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "i.png")

    def notes(**fields):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load_source(GenerationRequest(input_image_path=str(tmp_path / "i.png"), resolution="16x16", **fields))
        return [str(w.message) for w in caught if issubclass(w.category, UserWarning)]

    for name, sky, said in (("nan.npy", np.nan, "NaN/inf depth sit far away"), ("blender.npy", 1e10, "depth ≥ 10000 are far background")):
        depth = np.full((16, 16), 2.0, np.float32)
        depth[:8] = sky
        np.save(tmp_path / name, depth)
        (only,) = notes(depth_path=str(tmp_path / name), fov=60.0)
        assert only.startswith(f"depth file '{tmp_path / name}': 128 pixels (50%) of ") and said in only and only.count("pixels") == 1

    class FarFillEstimator(SkyEstimator):
        def estimate(self, image, size=None, intrinsics=None, fov=None):
            estimate = super().estimate(image, size)
            estimate.depth[~estimate.mask] = FAR_DEPTH
            return estimate

    monkeypatch.setattr(gen3c.depth, "cached_depth_estimator", lambda *args, **kwargs: FarFillEstimator())
    assert notes() == []


def test_a_json_camera_records_its_size_as_whole_pixels_or_is_refused(tmp_path):
    """1920.0 is 1920 (was: ignored, so the camera was taken as pixels of the image it was not
    made for); a size that is no whole number, or half of one, is refused naming the file."""
    K = make_intrinsics(40.0, 41.0, 32.0, 24.0)
    (tmp_path / "cam.json").write_text(json.dumps({"height": 48.0, "width": 64.0, "intrinsics": K.tolist()}))
    with pytest.warns(UserWarning, match="made for a 64×48 image: scaled to the 128×96"):
        assert torch.allclose(parse_intrinsics(tmp_path / "cam.json", (96, 128)), make_intrinsics(80.0, 82.0, 64.0, 48.0))
    for size, match in (({"height": 48, "width": "64"}, r"records width '64': write the size .* whole pixels > 0$"),
                        ({"height": 47.5, "width": 64}, r"records height 47\.5"),
                        ({"height": 48, "width": 0}, r"records width 0"),
                        ({"height": 48}, r"records its height but not its width: write both or neither$")):  # fmt: skip
        (tmp_path / "bad.json").write_text(json.dumps({**size, "intrinsics": K.tolist()}))
        with pytest.raises(Gen3cInputError, match=r"bad\.json' " + match):
            parse_intrinsics(tmp_path / "bad.json", (96, 128))


def test_prepare_source_names_its_valid_argument_when_it_lets_in_no_pixel():
    from gen3c.pipelines.camera_video import prepare_source

    with pytest.raises(Gen3cInputError, match=r"prepare_source valid lets in no pixel that has a valid depth.*prepare_source valid must be True"):
        prepare_source(torch.zeros(3, 32, 48), torch.ones(32, 48), make_intrinsics(40.0, 40.0, 24.0, 16.0), (32, 48), valid=torch.zeros(32, 48, dtype=torch.bool))


def test_camera_for_refuses_intrinsics_it_cannot_use_in_one_line(tmp_path):
    """camera_for (and load_user_depth, estimate(intrinsics=…) through it) took any value to
    torch.as_tensor: 'fx,fy,cx,cy' text was torch's "new(): invalid data type 'str'", a (1, 3, 3)
    stack passed and failed DepthEstimate's plain ValueError "intrinsics must be (3, 3)", a bool K
    was "look normalised" (its 0 and 1 taken as pixels). One line each now; arrays and lists of
    numbers work as before."""
    from gen3c.depth import camera_for

    K = make_intrinsics(20.0, 20.0, 8.0, 6.0)
    with pytest.raises(Gen3cInputError, match=r"^intrinsics '20,20,8,6' is text: pass a \(3, 3\) tensor, or read 'fx,fy,cx,cy' or a file with gen3c\.depth\.parse_intrinsics$"):
        camera_for(12, 16, "20,20,8,6")
    np.save(tmp_path / "d.npy", np.full((12, 16), 2.0, np.float32))
    for call in (lambda k: camera_for(12, 16, k), lambda k: load_user_depth(tmp_path / "d.npy", (12, 16), k)):
        with pytest.raises(Gen3cInputError, match=r"^intrinsics must be one \(3, 3\) matrix, got shape \(1, 3, 3\): one camera is intrinsics\[0\]$"):
            call(K[None])
        with pytest.raises(Gen3cInputError, match=r"^intrinsics is torch\.bool: pass real numbers"):
            call(K.bool())
    assert torch.equal(camera_for(12, 16, K.numpy().tolist())[0], K) and torch.equal(camera_for(12, 16, K.double().numpy())[0], K)
