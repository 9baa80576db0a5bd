"""MoGe v1 (GEN3C's depth): checkpoint layout, inference, focal/shift recovery, GEN3C's post-processing."""

import math

import numpy as np
import pytest
import torch
from moge_layout import VITL_CONFIG, official_moge_v1_shapes, random_state_dict

from gen3c.cameras import make_intrinsics
from gen3c.depth import gen3c_moge_postprocess, load_depth_estimator, median_depth
from gen3c.depth.moge import (
    MoGeEstimator,
    MoGeV1,
    focal_to_normalized_intrinsics,
    load_checkpoint,
    normalized_view_plane_uv,
    recover_focal_shift,
    solve_focal_shift,
)
from gen3c.errors import Gen3cInputError, Gen3cModelError

# The released ViT-L architecture at a tiny width: 2 heads of 64, 4 blocks.
TINY = {**VITL_CONFIG, "encoder": "dinov2_vitl14", "dim_proj": 32, "dim_upsample": [32, 32, 32], "last_conv_channels": 8}
EMBED, DEPTH = 128, 4


def tiny_checkpoint(mask_bias: float = 10.0, seed: int = 0) -> dict:
    """Random weights, except that the point head is steered towards a pinhole camera (focal 1 in
    half diagonals) looking at a slanted surface (depth 2·exp(v/2), ≈ 2 in the middle row) seen
    through small random features, so that MoGe's camera
    recovery has a positive focal length to find, as it has with trained weights."""
    state = random_state_dict(official_moge_v1_shapes(TINY, EMBED, DEPTH), seed)
    c = TINY["dim_upsample"][-1]  # the two view-plane channels follow the features
    w0 = state["head.output_block.0.0.weight"].mul_(0.01)
    state["head.output_block.0.0.bias"].zero_()
    for ch, (src, sign) in enumerate([(c, 1.0), (c, -1.0), (c + 1, 1.0), (c + 1, -1.0)]):
        w0[ch, src, 1, 1] = sign  # ReLU(±u), ReLU(±v)
    w1 = state["head.output_block.0.2.weight"].zero_()
    w1[0, 0], w1[0, 1], w1[1, 2], w1[1, 3] = 1.0, -1.0, 1.0, -1.0  # x = u, y = v (then × exp(z))
    w1[2, 2], w1[2, 3] = 0.5, -0.5  # z = 2·exp(v / 2): a slanted surface, so focal and shift are well defined
    state["head.output_block.0.2.bias"] = torch.tensor([0.0, 0.0, math.log(2.0)])
    state["head.output_block.1.2.bias"] = torch.full((1,), mask_bias)  # mask logit: valid everywhere (or nowhere)
    return {"model_config": dict(TINY), "model": state}


@pytest.fixture(scope="module")
def checkpoint_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("moge") / "model.pt"
    torch.save(tiny_checkpoint(), path)
    return path


def test_synthetic_official_checkpoint_loads_with_no_missing_or_unexpected_keys(checkpoint_path):
    ckpt = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    model = MoGeV1.from_checkpoint(ckpt)  # strict: raises on any missing/unexpected key
    ours = model.state_dict()
    assert set(ours) == set(ckpt["model"])
    assert all(ours[k].shape == ckpt["model"][k].shape for k in ours)
    assert model.backbone.shape.num_heads == 2 and len(model.backbone.blocks) == DEPTH
    assert torch.equal(ours["backbone.blocks.3.mlp.fc2.weight"], ckpt["model"]["backbone.blocks.3.mlp.fc2.weight"])


def test_missing_or_extra_keys_are_one_line_errors():
    ckpt = tiny_checkpoint()
    del ckpt["model"]["head.projects.0.bias"]
    with pytest.raises(Gen3cModelError, match=r"missing \['head.projects.0.bias'\]"):
        MoGeV1.from_checkpoint(ckpt)
    ckpt = tiny_checkpoint()
    ckpt["model"]["head.extra.weight"] = torch.zeros(1)
    with pytest.raises(Gen3cModelError, match="unexpected"):
        MoGeV1.from_checkpoint(ckpt)
    ckpt = tiny_checkpoint()
    ckpt["model"]["head.projects.0.weight"] = torch.zeros(3, 3, 1, 1)
    with pytest.raises(Gen3cModelError, match="does not fit MoGe v1"):
        MoGeV1.from_checkpoint(ckpt)
    with pytest.raises(Gen3cModelError, match="model_config"):
        MoGeV1.from_checkpoint(ckpt["model"])


def test_a_damaged_checkpoint_of_moge_layout_is_one_line_naming_the_file(tmp_path):
    """A model.pt of MoGe's layout whose backbone entries are not weights (a list, a 1-d or empty
    position table, another key under blocks.) stopped on an AttributeError, IndexError or
    ValueError with a traceback; "model" a list was "expected keys 'model_config' and 'model',
    found ['model_config', 'model']"; and the messages named no file ("MoGe checkpoint lacks")."""
    path = tmp_path / "model.pt"
    damage = {
        "backbone.cls_token": ([1, 2], "holds a list of 2 items at 'backbone.cls_token', not a MoGe weight: the file is damaged or another model; re-download it"),
        "backbone.pos_embed": (torch.zeros(5), "holds a 1-d tensor at 'backbone.pos_embed', not a MoGe weight: "),
        "backbone.blocks.0.mlp.fc1.weight": (None, r"lacks 'backbone.blocks.0.mlp.fc1.weight': it is not a MoGe v1 model.pt \(re-download it\)$"),
    }
    for key, (value, message) in damage.items():
        ckpt = tiny_checkpoint()
        if value is None:
            del ckpt["model"][key]
        else:
            ckpt["model"][key] = value
        torch.save(ckpt, path)
        with pytest.raises(Gen3cModelError, match=rf"^MoGe checkpoint '{path}' {message}"):
            load_depth_estimator(str(path), backend="gen3c")
    ckpt = tiny_checkpoint()
    ckpt["model"]["backbone.pos_embed"] = torch.zeros(1, 1, EMBED)  # no position but the class token's
    with pytest.raises(Gen3cModelError, match=r"^MoGe checkpoint 'x' has 0 backbone positions, not a square grid: the file is damaged$"):
        MoGeV1.from_checkpoint(ckpt, "MoGe checkpoint 'x'")
    ckpt = tiny_checkpoint()
    ckpt["model"]["backbone.blocks.notes"] = torch.zeros(1)  # reported by the strict load, as any extra key
    with pytest.raises(Gen3cModelError, match=r"^MoGe checkpoint does not match MoGe v1: missing \[\], unexpected \['backbone.blocks.notes'\]"):
        MoGeV1.from_checkpoint(ckpt)
    ckpt = tiny_checkpoint()
    ckpt["model"] = list(ckpt["model"])
    with pytest.raises(Gen3cModelError, match=r"^MoGe checkpoint is not a MoGe model.pt \(expected dicts under 'model_config' and 'model', found 'model_config' a dict of \d+ items, 'model' a list of \d+ items\): re-download it$"):
        MoGeV1.from_checkpoint(ckpt)


def test_moge_v2_checkpoint_asks_for_the_official_package():
    ckpt = {"model_config": {"encoder": {"backbone": "dinov2_vitl14"}, "neck": {}}, "model": {}}
    with pytest.raises(Gen3cModelError, match="MoGe v2"):
        MoGeV1.from_checkpoint(ckpt)


def test_checkpoints_are_never_unpickled(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"model_config": TINY, "model": {}, "payload": np.dtype}, path)  # needs full unpickling
    with pytest.raises(Gen3cModelError, match="never unpickled"):
        load_checkpoint(path)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Gen3cModelError, match="is text, not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
    (tmp_path / "image.pt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))  # an image saved under the model's name
    with pytest.raises(Gen3cModelError, match="is a PNG image, not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "image.pt")
    torch.save({"model_config": TINY, "model": {}}, tmp_path / "cut.pt")
    data = (tmp_path / "cut.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])  # an interrupted download
    with pytest.raises(Gen3cModelError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "cut.pt")


def test_estimator_gen3c_path_shapes_and_ranges(checkpoint_path):
    est = load_depth_estimator(str(checkpoint_path), backend="gen3c")
    assert isinstance(est, MoGeEstimator) and est.backend == "gen3c"
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(300, 400, 3), dtype=np.uint8)
    out = est.estimate(image, size=(704, 1280))  # MoGe at 720×1280, then GEN3C's post-processing
    assert out.depth.shape == (704, 1280) and out.mask.shape == (704, 1280)
    assert out.kind == "relative" and out.intrinsics_from == "model"
    assert out.mask.all()
    assert torch.isfinite(out.depth).all() and out.depth.min() >= 0 and out.depth.max() <= 1e4
    K = out.intrinsics
    assert K[0, 2].item() == pytest.approx(640.0) and K[1, 2].item() == pytest.approx(352.0)
    a = 1280 / 720  # the steered head is a pinhole of focal 1 half diagonal, depth 2
    assert K[0, 0].item() == pytest.approx(0.5 * math.sqrt(1 + a * a) / a * 1280, rel=0.02)
    # square pixels at 720×1280 become fy·704/720 at the working size
    assert (K[1, 1] / K[0, 0]).item() == pytest.approx(704 / 720, rel=1e-4)
    assert median_depth(out) == pytest.approx(2.0, rel=0.02)
    # default size: the input image's
    assert est.estimate(torch.rand(3, 30, 40)).depth.shape == (30, 40)


def test_the_estimator_prints_as_a_line_of_its_settings(checkpoint_path):
    """It printed as "<gen3c.depth.moge.MoGeEstimator object at 0x7f…>"."""
    est = MoGeEstimator(str(checkpoint_path), backend="gen3c", inference_size=(56, 84))
    assert repr(est) == (
        f"MoGeEstimator(name='moge:{checkpoint_path}', backend='gen3c', kind='relative', device=cpu, dtype=float32, "
        "inference_size=(56, 84), use_fp16=False)"
    )


def test_invalid_pixels_get_gen3c_far_depth(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(tiny_checkpoint(mask_bias=-10.0), path)
    est = MoGeEstimator(str(path), backend="gen3c", inference_size=(56, 84))
    out = est.estimate(torch.rand(3, 40, 60))
    assert not out.mask.any()
    assert torch.allclose(out.depth, torch.full((40, 60), 1000.0))
    # No trusted point to solve the camera from: the default 60° camera, said to be the default
    # (it was a placeholder focal of one half diagonal, fx ≈ 41.6 px, reported as MoGe's).
    f = 30 / math.tan(math.radians(30))
    assert out.intrinsics_from == "default"
    assert torch.allclose(out.intrinsics, torch.tensor([[f, 0, 30.0], [0, f, 20.0], [0, 0, 1]]), rtol=1e-5)


def test_known_fov_fixes_the_intrinsics(checkpoint_path):
    est = MoGeEstimator(str(checkpoint_path), backend="gen3c", inference_size=(56, 84))
    out = est.estimate(torch.rand(3, 56, 84), fov=60.0)
    assert out.intrinsics[0, 0].item() == pytest.approx(42 / math.tan(math.radians(30)), rel=1e-4)
    assert out.intrinsics_from == "user"


def test_known_fov_of_another_aspect_ratio_gives_the_users_square_camera(checkpoint_path):
    """A 4:3 image run at MoGe's 3:2 size: --fov is the image's own camera (fx = fy, centre), as
    for every other estimator. MoGe's K for that FOV has square pixels of the stretched image, so
    fy came back 9/8 × fx; intrinsics and a FOV together were taken silently (intrinsics won)."""
    est = MoGeEstimator(str(checkpoint_path), backend="gen3c", inference_size=(56, 84))
    out = est.estimate(torch.rand(3, 48, 64), size=(24, 32), fov=60.0)
    f = 16 / math.tan(math.radians(30))
    assert torch.allclose(out.intrinsics, torch.tensor([[f, 0, 16.0], [0, f, 12.0], [0, 0, 1]]), rtol=1e-5)
    with pytest.raises(Gen3cInputError, match="not both"):
        est.estimate(torch.rand(3, 48, 64), intrinsics=make_intrinsics(40.0, 40.0, 32.0, 24.0), fov=60.0)


def test_a_photo_of_another_aspect_ratio_keeps_square_pixels(checkpoint_path):
    """A 4:3 or portrait photo wanted at its own shape (--resize_mode crop, gen3c depth, the camera
    for user depth) is seen by MoGe at its aspect ratio: the steered pinhole's camera has fx = fy.
    Stretched to MoGe's 3:2 size first, it came back with fx = (56/84)·(64/48) fy = 0.89 fy (and
    0.5 fy for the portrait; at GEN3C's 720×1280, 0.75 fy and 0.42 fy)."""
    est = MoGeEstimator(str(checkpoint_path), backend="gen3c", inference_size=(56, 84))
    for shape in ((48, 64), (64, 48)):
        K = est.estimate(torch.rand(3, *shape)).intrinsics
        assert (K[0, 0] / K[1, 1]).item() == pytest.approx(1.0, abs=0.01), shape
        assert K[0, 2].item() == shape[1] / 2 and K[1, 2].item() == shape[0] / 2
    with pytest.raises(Gen3cInputError, match=r"^depth estimate size \(0, 48\) must be \(H, W\)"):
        est.estimate(torch.rand(3, 48, 64), size=(0, 48))  # (it was a ZeroDivisionError here)
    assert est.moge_input_size((64, 48), (64, 48)) == (round(math.sqrt(4704 * 4 / 3)), round(math.sqrt(4704 * 3 / 4)))
    # GEN3C's plain resize to 720×1280 stays where GEN3C makes it: a stretched estimate (the
    # working size of --resize_mode stretch) and a frame at about 16:9 (704×1280, a generated frame).
    est.inference_size = (720, 1280)
    assert est.moge_input_size((300, 400), (704, 1280)) == (720, 1280)
    assert est.moge_input_size((704, 1280), (704, 1280)) == (720, 1280)
    assert est.moge_input_size((1080, 1920), (1080, 1920)) == (720, 1280)
    assert est.moge_input_size((3000, 4000), (3000, 4000)) == (831, 1109)


def test_a_cinema_frame_is_not_squeezed_to_16_9(checkpoint_path):
    """A 1.85:1 frame is 4.1 % wider than 16:9: stretched to MoGe's 16:9 as GEN3C does (the 5 %
    tolerance let it), MoGe rebuilt a scene squeezed by as much and its camera came back with
    fx = (74/128)/(40/72) fy = 1.04 fy. Seen at its own aspect ratio its camera is square; 704×1280
    (2.27 % off, GEN3C's working size and frames) still gets GEN3C's plain resize."""
    est = MoGeEstimator(str(checkpoint_path), backend="gen3c", inference_size=(72, 128))
    K = est.estimate(torch.rand(3, 40, 74)).intrinsics
    assert (K[0, 0] / K[1, 1]).item() == pytest.approx(1.0, rel=1e-6)
    assert est.moge_input_size((40, 74), (40, 74)) == (round(math.sqrt(72 * 128 * 40 / 74)), round(math.sqrt(72 * 128 * 74 / 40)))
    est.inference_size = (720, 1280)
    assert est.moge_input_size((704, 1280), (704, 1280)) == (720, 1280)
    assert est.moge_input_size((692, 1280), (692, 1280)) != (720, 1280)  # 1.85:1


def synthetic_point_map(focal: float, shift: float, height: int = 48, width: int = 80, scale: float = 1.0) -> torch.Tensor:
    """A camera with focal ``focal`` (half diagonals) seeing a slanted, bumpy surface; z shifted by −shift."""
    uv = normalized_view_plane_uv(width, height, dtype=torch.float64)
    u, v = uv[..., 0], uv[..., 1]
    z = 3.0 + 1.5 * v + 0.4 * torch.sin(6 * u) * torch.cos(4 * v)  # true depth, > 0
    xy = uv * z[..., None] / focal
    return (torch.cat([xy, (z - shift)[..., None]], dim=-1) * scale).float()


@pytest.mark.parametrize("method", ["lm", "scipy"])
def test_focal_shift_recovery_closed_form(method):
    if method == "scipy":
        pytest.importorskip("scipy")
    points = synthetic_point_map(focal=1.3, shift=1.7, scale=0.25)  # MoGe is affine-invariant: scale too
    focal, shift = recover_focal_shift(points, method=method)
    tol = 1e-4 if method == "lm" else 2e-2  # MoGe's SciPy settings stop at ftol 1e-3
    assert focal.item() == pytest.approx(1.3, rel=tol)
    assert shift.item() == pytest.approx(1.7 * 0.25, rel=tol)


def test_a_broken_scipy_leaves_auto_on_gen3cs_solver_with_a_note(tmp_path, monkeypatch):
    """scipy installed but failing to import (an AttributeError as it is imported): "auto" solves
    with gen3c's own Levenberg–Marquardt, as without scipy, and says so; "scipy" asked by name is
    one line naming it. Before: the AttributeError's traceback, no depth."""
    import sys
    from importlib import metadata

    from gen3c.dependencies import requirement
    from gen3c.errors import Gen3cDependencyError, collect_notes

    (tmp_path / "scipy").mkdir()
    (tmp_path / "scipy" / "__init__.py").write_text("raise AttributeError(\"module 'numpy' has no attribute 'fake'\")\n")
    for name in [name for name in sys.modules if name.partition(".")[0] == "scipy"]:
        monkeypatch.delitem(sys.modules, name)  # put back after the test
    monkeypatch.syspath_prepend(str(tmp_path))
    points = synthetic_point_map(focal=1.3, shift=1.7)
    with collect_notes() as notes:
        auto = recover_focal_shift(points, method="auto")
    assert [v.item() for v in auto] == [v.item() for v in recover_focal_shift(points, method="lm")]
    broken = f"scipy {metadata.version('scipy')} fails to import (AttributeError: module 'numpy' has no attribute 'fake')"
    assert notes == [f"MoGe's focal and shift solved by gen3c's own solver: {broken}: pip install --force-reinstall '{requirement('scipy', 'depth')}'"]
    with pytest.raises(Gen3cDependencyError, match=r"^MoGe's focal and shift solver \(method 'scipy'\) needs scipy, whose installed .* fails to import \(AttributeError"):
        recover_focal_shift(points, method="scipy")


def test_focal_recovery_gives_pixel_intrinsics():
    # a pixel camera: fx = 70 px on an 80-px-wide image, principal point at the centre
    H, W, fx = 48, 80, 70.0
    a = W / H
    focal = 2 * fx / W * a / math.sqrt(1 + a * a)  # MoGe's focal in half diagonals
    points = synthetic_point_map(focal, shift=0.9, height=H, width=W)
    mask = torch.ones(H, W, dtype=torch.bool)
    mask[:10] = False  # the solver uses only masked points
    points[:10] = 1e3
    f, s = recover_focal_shift(points, mask, method="lm")
    K = focal_to_normalized_intrinsics(f, a)
    assert (K[0, 0] * W).item() == pytest.approx(fx, rel=1e-4)
    assert (K[1, 1] * H).item() == pytest.approx(fx, rel=1e-4)
    assert s.item() == pytest.approx(0.9, rel=1e-4)
    # known focal: only the shift is solved
    assert solve_focal_shift(normalized_view_plane_uv(W, H)[10:].reshape(-1, 2), points[10:].reshape(-1, 3), focal, "lm")[1] == pytest.approx(0.9, rel=1e-4)


def test_gen3c_postprocess_matches_the_spec():
    h, w = 720, 1280
    depth = torch.full((h, w), 2.0)
    mask = torch.ones(h, w, dtype=torch.bool)
    mask[:100] = False  # e.g. sky
    depth[:100] = math.inf  # MoGe puts inf there
    depth[400:, :10] = math.nan
    depth[600:, 1000:] = -3.0
    K_norm = torch.tensor([[0.6, 0.0, 0.5], [0.0, 0.9, 0.5], [0.0, 0.0, 1.0]])
    d, K, m = gen3c_moge_postprocess(depth, K_norm, mask, (704, 1280))
    assert d.shape == m.shape == (704, 1280)
    assert torch.allclose(K, torch.tensor([[0.6 * 1280, 0, 640], [0, 0.9 * 704, 352], [0, 0, 1]]))
    assert d[0, 500].item() == 1000.0 and not m[0, 500]
    assert d[300, 500].item() == 2.0 and m[300, 500]
    assert d[500, 3].item() == 1e4  # NaN → 1e4
    assert d[690, 1200].item() == 0.0  # clamped at 0
    assert d.max() <= 1e4 and d.min() >= 0


def test_hub_id_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(Gen3cModelError, match="not in the local Hugging Face cache"):
        load_depth_estimator("someone/moge-does-not-exist")
    with pytest.raises(Gen3cInputError, match="does not exist"):  # a mistyped path: no fallback to the prior
        load_depth_estimator(str(tmp_path / "nowhere" / "model.pt"))


def test_transformers_offline_is_read_as_huggingface_hub_reads_it(monkeypatch, tmp_path):
    """TRANSFORMERS_OFFLINE=1 keeps huggingface_hub offline as HF_HUB_OFFLINE does, but was not
    read here: the hub's reachability was checked instead (a wait, "cannot reach"), and with the
    network up the download failed on the offline switch with "check the id and the network"."""
    from gen3c.depth.hub import hub_offline_reason

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with pytest.raises(Gen3cModelError, match=r"^MoGe 'someone/moge-x' is not in the local Hugging Face cache and TRANSFORMERS_OFFLINE is set: "):
        load_depth_estimator("someone/moge-x")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # huggingface_hub: HF_HUB_OFFLINE, when set, decides
    assert hub_offline_reason() == "cannot reach 127.0.0.1: Connection refused"
    monkeypatch.setenv("HF_HUB_OFFLINE", "True")
    assert hub_offline_reason() == "HF_HUB_OFFLINE is set"


def official_stand_in(monkeypatch) -> list:
    """Make ``from moge.model.v1 import MoGeModel`` give a stand-in (our MoGeV1 at the tiny size,
    loading strictly as torch does); returns the list of model_configs it is built with."""
    import sys
    import types

    from gen3c.depth.moge import DinoV2Shape, MoGeV1Config

    calls = []

    class OfficialStandIn(MoGeV1):  # what `from moge.model.v1 import MoGeModel` would give
        def __init__(self, **model_config):
            calls.append(model_config)
            super().__init__(MoGeV1Config.from_dict(model_config), DinoV2Shape(embed_dim=EMBED, depth=DEPTH, num_heads=2, mlp_hidden=4 * EMBED))

    module = types.ModuleType("moge.model.v1")
    module.MoGeModel = OfficialStandIn
    for name in ("moge", "moge.model"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "moge.model.v1", module)
    return calls


def test_official_package_is_used_when_importable(monkeypatch, checkpoint_path):
    """The glue to the official ``moge`` package: build from model_config, load the state dict, call infer."""
    calls = official_stand_in(monkeypatch)
    official = MoGeEstimator(str(checkpoint_path), inference_size=(56, 84))
    ours = MoGeEstimator(str(checkpoint_path), backend="gen3c", inference_size=(56, 84))
    assert official.backend == "official" and ours.backend == "gen3c" and calls == [TINY]
    image = torch.rand(3, 40, 60)
    a, b = official.estimate(image), ours.estimate(image)
    assert torch.equal(a.depth, b.depth) and torch.equal(a.intrinsics, b.intrinsics)


def test_official_package_output_with_nan_is_refused(monkeypatch, tmp_path):
    """The official package's infer has no NaN check: an all-NaN output (damaged weights) has a
    False mask everywhere (a NaN logit is not above the threshold), so the estimate came back as
    all sky (depth 1000, the default camera) with no error. Now its raw output is checked as our
    back end checks it, with the same line."""
    import sys

    official_stand_in(monkeypatch)
    checked_class = sys.modules["moge.model.v1"].MoGeModel

    class OfficialInfer(checked_class):  # the official infer's treatment of the mask, without our check
        def infer(self, image, fov_x=None, use_fp16=True):
            out = self.forward(image[None].to(self.dtype), self.config.num_tokens_range[0])
            points, mask = out["points"][0].float(), out["mask"][0].float() > self.config.mask_threshold
            depth = torch.where(mask, points[..., 2], torch.inf)
            return {"depth": depth, "intrinsics": torch.full((3, 3), math.nan), "mask": mask, "points": points}

    monkeypatch.setattr(sys.modules["moge.model.v1"], "MoGeModel", OfficialInfer)
    ckpt = tiny_checkpoint()
    ckpt["model_config"]["num_tokens_range"] = [12, 12]  # a 3×4-patch grid: fast
    ckpt["model"]["backbone.blocks.0.mlp.fc1.weight"][0] = math.nan
    path = tmp_path / "model.pt"
    torch.save(ckpt, path)
    est = load_depth_estimator(str(path), inference_size=(56, 84))
    assert est.backend == "official"
    with pytest.raises(Gen3cModelError, match=r"^MoGe returned NaN/inf at 4704 of 4704 pixels: its weights are damaged \(re-download model\.pt\)$"):
        est.estimate(torch.rand(3, 40, 60))


def test_official_package_with_a_file_that_is_not_its_model_is_a_one_line_error(monkeypatch, tmp_path):
    """With the official package installed (as the docs advise), another model's .pt or a MoGe
    file with mismatched weights is a Gen3cModelError naming the file, as with our back end; it
    was a KeyError / torch's many-line RuntimeError (a traceback from the CLI)."""
    official_stand_in(monkeypatch)
    other = tmp_path / "other.pt"
    torch.save({"model": {"net.x": torch.zeros(1)}}, other)  # e.g. a DiT checkpoint: no model_config
    with pytest.raises(Gen3cModelError, match=r"other\.pt.* is not a MoGe model\.pt"):
        MoGeEstimator(str(other))
    ckpt = tiny_checkpoint()
    del ckpt["model"]["head.projects.0.bias"]
    damaged = tmp_path / "model.pt"
    torch.save(ckpt, damaged)
    with pytest.raises(Gen3cModelError, match=r"model\.pt' does not fit the official MoGe v1 model \(RuntimeError") as err:
        MoGeEstimator(str(damaged))
    assert "\n" not in str(err.value)


def test_half_precision_on_the_cpu_runs(tmp_path):
    """``load_depth_estimator("moge", dtype=torch.bfloat16)`` (or float16) on the CPU: MoGe's
    antialiased resize of the image has no reduced-precision CPU kernel, so estimate() died with
    NotImplementedError ("compute_index_ranges_weights" not implemented for 'BFloat16')."""
    ckpt = tiny_checkpoint()
    ckpt["model_config"]["num_tokens_range"] = [12, 12]  # a 3×4-patch grid: fast in any precision
    path = tmp_path / "model.pt"
    torch.save(ckpt, path)
    image = torch.rand(3, 40, 60)
    ref = load_depth_estimator(str(path), backend="gen3c", inference_size=(56, 84)).estimate(image)
    # Honoured as asked, with a note: half precision is many times slower than float32 on a CPU.
    with pytest.warns(UserWarning, match=r"^depth estimator moge:.*model\.pt runs with dtype bfloat16 on the CPU as asked: much slower"):
        estimator = load_depth_estimator(str(path), backend="gen3c", inference_size=(56, 84), dtype=torch.bfloat16)
    assert estimator.model.dtype == torch.bfloat16
    half = estimator.estimate(image)
    assert half.depth.dtype == torch.float32 and torch.isfinite(half.depth).all()
    assert torch.allclose(half.depth, ref.depth, rtol=0.05)
    assert torch.allclose(half.intrinsics, ref.intrinsics, rtol=0.05)


def test_moge_autocast_on_the_cpu_only_when_asked_and_then_with_a_note(checkpoint_path):
    """MoGe's float16 autocast is off on a CPU by default (use_fp16=None, float32 throughout, no
    note); use_fp16=True there is honoured, and the note says it is slow."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        default = MoGeEstimator(str(checkpoint_path), backend="gen3c")
    assert not default.use_fp16 and default.model.dtype == torch.float32
    with pytest.warns(UserWarning, match=r"runs with use_fp16=True on the CPU as asked: much slower there than float32 \(the default\)"):
        asked = MoGeEstimator(str(checkpoint_path), backend="gen3c", use_fp16=True)
    assert asked.use_fp16


def test_an_empty_checkpoint_is_called_empty(tmp_path):
    """A 0-byte model.pt (a download that never wrote, a full disk) was reported as "is text, not a
    PyTorch checkpoint: pass the official model.pt", though it is the official file's name."""
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(Gen3cModelError, match=r"model\.pt' is empty \(0 bytes\): re-download it$"):
        load_depth_estimator(str(tmp_path / "model.pt"), backend="gen3c")


@pytest.mark.parametrize("weight", ["backbone.blocks.0.mlp.fc1.weight", "head.output_block.0.2.bias"])
def test_a_checkpoint_with_nan_weights_is_refused(tmp_path, weight):
    """A damaged model.pt whose weights hold a NaN: NaN everywhere (the backbone's) came back as an
    estimate of all sky — depth 1000, no trusted pixel, a made-up camera — with no error; NaN points
    under a valid mask (the point head's) died in SciPy ("Residuals are not finite")."""
    ckpt = tiny_checkpoint()
    ckpt["model_config"]["num_tokens_range"] = [12, 12]  # a 3×4-patch grid: fast
    ckpt["model"][weight][0] = math.nan
    path = tmp_path / "model.pt"
    torch.save(ckpt, path)
    est = load_depth_estimator(str(path), backend="gen3c", inference_size=(56, 84))
    with pytest.raises(Gen3cModelError, match=r"^MoGe returned NaN/inf at 4704 of 4704 pixels: its weights are damaged \(re-download model\.pt\)$"):
        est.estimate(torch.rand(3, 40, 60))


def test_an_image_too_narrow_for_moges_patches_is_one_line(tmp_path):
    """MoGe sees an image at its own aspect ratio in at most num_tokens_range[1] patches: a strip
    more than that many times wider than tall is less than one 14-pixel patch high. It was a
    RuntimeError from F.interpolate ("output (H: 0, …)") deep in the network, a traceback from
    `gen3c depth strip.png` (8×20000 at the released 2500 tokens)."""
    ckpt = tiny_checkpoint()
    ckpt["model_config"]["num_tokens_range"] = [12, 12]
    path = tmp_path / "model.pt"
    torch.save(ckpt, path)
    est = MoGeEstimator(str(path), backend="gen3c", inference_size=None)
    with pytest.raises(Gen3cInputError, match=r"^an image of 400×16 pixels \(aspect ratio 25:1\) is too narrow for moge:.* crop it below 12:1, have it stretched \(gen3c depth --resolution HxW, gen3c generate --resize_mode stretch\)"):
        est.estimate(torch.rand(3, 16, 400))
    with pytest.raises(Gen3cInputError, match=r"^an image of 16×400 pixels"):
        est.estimate(torch.rand(3, 400, 16))
    assert est.estimate(torch.rand(3, 16, 160)).size == (16, 160)  # 10:1 is one patch high
    est.inference_size = (56, 84)  # stretched to MoGe's size, as --resolution asks: MoGe sees 56×84
    assert est.estimate(torch.rand(3, 16, 400), size=(56, 84)).size == (56, 84)


@pytest.mark.parametrize(
    ("shape", "target"),
    [((48, 64), (48, 64)), ((10, 300), (10, 300)), ((300, 10), (300, 10)), ((48, 64), (96, 127))],
)
def test_a_photo_seen_at_its_own_aspect_ratio_has_square_pixels_exactly(tmp_path, shape, target):
    """MoGe sees a photo of another aspect ratio at its own, rounded to whole pixels (48×64 at 4704
    pixels: 59×79; a 10×300 strip: 13×376, 3.6 % wider). Its camera, square in those pixels, was
    scaled per axis to the estimate: fx/fy came out 0.996 (4:3) and 0.964 (the strip) where the
    photo's pixels are square. Now fx/fy is the photo → estimate stretch exactly (1 at its own
    shape; 127/128 for 96×127), the principal point the estimate's centre, and the focal MoGe's:
    the steered pinhole's one half diagonal of the photo."""
    checkpoint = tiny_checkpoint()
    checkpoint["model_config"]["num_tokens_range"] = [48, 96]  # MoGe's network on 96 patches, not 2500: fast
    torch.save(checkpoint, tmp_path / "model.pt")
    est = MoGeEstimator(str(tmp_path / "model.pt"), backend="gen3c", inference_size=(56, 84))
    seen = est.moge_input_size(shape, target)
    assert seen != shape and abs((seen[1] / seen[0]) / (shape[1] / shape[0]) - 1) > 3e-3  # rounding that showed before
    K = est.estimate(torch.rand(3, *shape), size=target).intrinsics
    (h0, w0), (th, tw) = shape, target
    assert (K[0, 0] / K[1, 1]).item() == pytest.approx((tw / w0) / (th / h0), rel=1e-6)
    assert (K[0, 2].item(), K[1, 2].item()) == (tw / 2, th / 2)
    assert (K[1, 1] * h0 / th).item() == pytest.approx(math.hypot(h0, w0) / 2, rel=0.05)


@pytest.mark.parametrize(
    ("call", "refusal"),
    [
        (lambda: recover_focal_shift(None), r"recover_focal_shift points is NoneType 'None': pass a \(\*B, H, W, 3\) tensor$"),
        (lambda: recover_focal_shift(np.ones((8, 8, 3))), r"recover_focal_shift points is a numpy array of shape \(8, 8, 3\)"),
        (lambda: recover_focal_shift(torch.ones(8, 8)), r"recover_focal_shift points have shape \(8, 8\): pass an \(\*B, H, W, 3\) point map$"),
        (lambda: recover_focal_shift(torch.ones(8, 8, 3), torch.ones(4, 4, dtype=torch.bool)), r"recover_focal_shift mask has shape \(4, 4\) for points \(8, 8, 3\): pass one of \(8, 8\)$"),
        (lambda: recover_focal_shift(torch.ones(8, 8, 3), downsample_size=None), r"recover_focal_shift downsample_size None must be the image's \(height, width\)"),
        (lambda: recover_focal_shift(torch.ones(8, 8, 3), method=None), r"recover_focal_shift method None is unknown: pass 'auto', 'scipy' or 'lm'$"),
        (lambda: gen3c_moge_postprocess(None, torch.eye(3), torch.ones(4, 8, dtype=torch.bool)), r"gen3c_moge_postprocess depth is NoneType 'None': pass a \(h, w\) tensor$"),
        (lambda: gen3c_moge_postprocess(torch.ones(4, 8), None, torch.ones(4, 8, dtype=torch.bool)), r"gen3c_moge_postprocess intrinsics is NoneType 'None'"),
        (lambda: gen3c_moge_postprocess(torch.ones(4, 8), torch.eye(3), torch.ones(8, 4, dtype=torch.bool)), r"gen3c_moge_postprocess depth \(4, 8\), intrinsics \(3, 3\) and mask \(8, 4\): pass one \(h, w\) depth map"),
        (lambda: gen3c_moge_postprocess(torch.ones(4, 8), torch.eye(3), torch.ones(4, 8, dtype=torch.bool), None), r"gen3c_moge_postprocess size None must be"),
    ],
)
def test_the_moge_post_processing_refuses_what_it_cannot_compute_with(call, refusal):
    """recover_focal_shift and gen3c_moge_postprocess (gen3c.depth's) took their arguments on
    trust: None or a numpy array was "'NoneType' object has no attribute 'shape'" / "'numpy.ndarray'
    object has no attribute 'float'", a mask of another shape torch's "shape '[-1, 1, 8, 8]' is
    invalid for input of size 16", a size of None "'NoneType' object is not subscriptable" or
    interpolate's "either size or scale_factor should be defined". One line each now."""
    with pytest.raises(Gen3cInputError, match=f"^{refusal}"):
        call()
