"""transformers depth models behind gen3c's interface, on tiny random configs saved to disk."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from gen3c.depth import load_depth_estimator, median_depth  # noqa: E402
from gen3c.depth.hf import TransformersDepthEstimator, disparity_to_relative_depth  # noqa: E402
from gen3c.errors import Gen3cModelError  # noqa: E402

DINO = {"model_type": "dinov2", "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2, "intermediate_size": 64}
H, W = 42, 56


def image():
    return np.random.default_rng(0).integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def save(tmp_path, name, model, processor):
    torch.manual_seed(0)
    folder = tmp_path / name
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


def depth_anything(tmp_path, kind):
    config = transformers.DepthAnythingConfig(
        backbone_config={**DINO, "patch_size": 14, "image_size": 28, "out_indices": [1, 2, 3, 4], "reshape_hidden_states": False},
        reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 16, 32], fusion_hidden_size=16, head_hidden_size=8,
        depth_estimation_type=kind, max_depth=20,
    )  # fmt: skip
    processor = transformers.DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14)
    return save(tmp_path, f"da_{kind}", transformers.DepthAnythingForDepthEstimation(config), processor)


def depth_pro(tmp_path, fov_head=True):
    dino = {**DINO, "patch_size": 4, "image_size": 32}
    config = transformers.DepthProConfig(
        patch_size=32, fusion_hidden_size=16, intermediate_hook_ids=[1, 0], intermediate_feature_dims=[8, 8],
        scaled_images_ratios=[0.5, 1.0], scaled_images_overlap_ratios=[0.0, 0.5], scaled_images_feature_dims=[16, 16],
        use_fov_model=fov_head, num_fov_head_layers=1, image_model_config=dino, patch_model_config=dino, fov_model_config=dino,
    )  # fmt: skip
    processor = transformers.DepthProImageProcessor(size={"height": 64, "width": 64})
    return save(tmp_path, f"depth_pro_{fov_head}", transformers.DepthProForDepthEstimation(config), processor)


def zoedepth(tmp_path):
    beit = {
        "model_type": "beit", "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2, "intermediate_size": 64,
        "patch_size": 4, "image_size": 32, "out_indices": [1, 2, 3, 4], "use_relative_position_bias": True,
        "reshape_hidden_states": False,
    }  # fmt: skip
    config = transformers.ZoeDepthConfig(
        backbone_config=beit, backbone_hidden_size=32, neck_hidden_sizes=[8, 16, 16, 32], fusion_hidden_size=16,
        bottleneck_features=16, num_attractors=[4, 4, 4, 4], bin_embedding_dim=16, num_relative_features=8,
    )  # fmt: skip
    processor = transformers.ZoeDepthImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=True, ensure_multiple_of=32)
    return save(tmp_path, "zoedepth", transformers.ZoeDepthForDepthEstimation(config), processor)


def dpt(tmp_path):
    config = transformers.DPTConfig(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8,
        backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 16, 16, 32], fusion_hidden_size=16,
    )  # fmt: skip
    processor = transformers.DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=True, ensure_multiple_of=32)
    return save(tmp_path, "dpt", transformers.DPTForDepthEstimation(config), processor)


def check(est, kind):
    assert est.depth.shape == est.mask.shape == (H, W)
    assert est.kind == kind
    assert torch.isfinite(est.depth).all() and (est.depth > 0).all()
    assert est.intrinsics.shape == (3, 3) and est.intrinsics[0, 0] > 0


@pytest.mark.parametrize("kind", ["relative", "metric"])
def test_depth_anything(tmp_path, kind):
    estimator = load_depth_estimator(depth_anything(tmp_path, kind))
    assert isinstance(estimator, TransformersDepthEstimator) and estimator.kind == kind
    est = estimator.estimate(image())
    check(est, kind)
    # no camera from the model: the default 60° horizontal FOV, principal point at the centre
    assert est.intrinsics_from == "default"
    assert est.intrinsics[0, 0].item() == pytest.approx(W / 2 / math.tan(math.radians(30)), rel=1e-5)
    assert est.intrinsics[0, 2].item() == W / 2 and est.intrinsics[1, 2].item() == H / 2
    if kind == "relative":
        assert median_depth(est) == pytest.approx(1.0, rel=1e-5)
    else:
        assert est.depth.max() <= 20.0 + 1e-4  # sigmoid × max_depth
    # user FOV and output size
    est = estimator.estimate(torch.rand(3, H, W), fov=90.0, size=(21, 28))
    assert est.depth.shape == (21, 28) and est.intrinsics_from == "user"
    assert est.intrinsics[0, 0].item() == pytest.approx(14.0, rel=1e-5)


def test_depth_pro_metric_depth_follows_the_focal_length(tmp_path):
    path = depth_pro(tmp_path)
    estimator = load_depth_estimator(path)
    assert estimator.kind == "metric"
    est = estimator.estimate(image(), fov=60.0)
    check(est, "metric")
    assert est.intrinsics_from == "user"
    # the same numbers as transformers' own post-processing given that field of view
    processor = transformers.AutoImageProcessor.from_pretrained(path)
    model = transformers.AutoModelForDepthEstimation.from_pretrained(path).eval()
    with torch.no_grad():
        outputs = model(**processor(images=image(), return_tensors="pt"))
    outputs.field_of_view = torch.tensor([60.0])
    reference = processor.post_process_depth_estimation(outputs, target_sizes=[(H, W)])[0]
    assert torch.allclose(est.depth, reference["predicted_depth"], rtol=1e-4)
    assert est.intrinsics[0, 0].item() == pytest.approx(float(reference["focal_length"]), rel=1e-5)
    # twice the focal length, twice the depth
    est2 = estimator.estimate(image(), fov=2 * math.degrees(math.atan(0.5 * math.tan(math.radians(30)))))
    inside = est2.mask & est.mask  # away from the 1e4 clamp (random weights predict some negative inverse depth)
    assert inside.float().mean() > 0.3
    assert torch.allclose(est2.depth[inside] / est.depth[inside], torch.tensor(2.0), rtol=1e-3)


def test_depth_pro_without_a_usable_fov_uses_the_default(tmp_path):
    estimator = load_depth_estimator(depth_pro(tmp_path, fov_head=False))
    est = estimator.estimate(image())
    check(est, "metric")
    assert est.intrinsics_from == "default"


def test_zoedepth(tmp_path):
    estimator = load_depth_estimator(zoedepth(tmp_path))
    est = estimator.estimate(image())
    check(est, "metric")


def test_the_estimator_prints_as_a_line_of_its_settings(tmp_path):
    """It printed as "<gen3c.depth.hf.TransformersDepthEstimator object at 0x7f…>"."""
    path = dpt(tmp_path)
    assert repr(load_depth_estimator(path)) == (
        f"TransformersDepthEstimator(name='dpt:{path}', kind='relative', device=cpu, dtype=float32, flip_augment=True)"
    )


def test_dpt_is_relative(tmp_path):
    est = load_depth_estimator(dpt(tmp_path)).estimate(image())
    check(est, "relative")
    assert median_depth(est) == pytest.approx(1.0, rel=1e-5)


def test_half_precision_on_the_cpu_is_honoured_with_one_note(tmp_path):
    """dtype float16 on the CPU ran silently in float16, many times slower than float32 there: it
    still runs so (the user asked), with a note saying why it is slow; float32 says nothing."""
    import warnings

    path = dpt(tmp_path)
    with pytest.warns(UserWarning, match=r"^depth estimator dpt:.* runs with dtype float16 on the CPU as asked: much slower there than float32"):
        est = load_depth_estimator(path, dtype=torch.float16)
    assert next(est.model.parameters()).dtype == torch.float16
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert next(load_depth_estimator(path).model.parameters()).dtype == torch.float32


def test_disparity_to_relative_depth():
    disparity = torch.tensor([[8.0, 4.0, 2.0], [1.0, 0.05, -1.0]])
    depth, mask = disparity_to_relative_depth(disparity)
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    # 1 / disparity, median of the valid ones (1/8, 1/4, 1/2, 1 → lower median 1/4) scaled to 1
    assert torch.allclose(depth[0], torch.tensor([0.5, 1.0, 2.0]))
    assert depth[1, 1].item() == pytest.approx(depth[1, 2].item())  # clamped at 1 % of the peak


def test_unsupported_or_broken_models_are_clear_errors(tmp_path):
    config = transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    config.save_pretrained(tmp_path / "bert")
    with pytest.raises(Gen3cModelError, match="'bert' model: supported are MoGe and depth_pro"):
        load_depth_estimator(str(tmp_path / "bert"))
    folder = tmp_path / "no_weights"
    transformers.DepthAnythingConfig(backbone_config={**DINO, "out_indices": [1, 2, 3, 4]}).save_pretrained(folder)
    with pytest.raises(Gen3cModelError, match=r"^depth model '.*no_weights' lacks preprocessor_config\.json and its weights \(model\.safetensors\)"):
        load_depth_estimator(str(folder))


def test_a_folder_missing_a_file_names_it(tmp_path):
    """A save_pretrained folder without its preprocessor_config.json or its weights: transformers'
    error, cut at 160 characters, ended mid-sentence ("... make sure you don't have )")."""
    folder = Path(dpt(tmp_path))
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(Gen3cModelError, match=rf"^depth model '{folder}' lacks preprocessor_config\.json: save the model and its image processor into the folder with save_pretrained, or download it again$"):
        load_depth_estimator(str(folder))
    (folder / "model.safetensors").unlink()
    with pytest.raises(Gen3cModelError, match=r"lacks preprocessor_config\.json and its weights \(model\.safetensors\): "):
        load_depth_estimator(str(folder))
    weights_only = Path(dpt(tmp_path / "weights_only"))
    (weights_only / "config.json").unlink()
    with pytest.raises(Gen3cModelError, match=r"with config\.json: it holds model\.safetensors but no config\.json; save the model into it with save_pretrained"):
        load_depth_estimator(str(weights_only))


def test_a_file_of_a_model_folder_names_the_folder(tmp_path):
    """A file of a transformers model (its weights or config.json) given instead of its folder was
    told to "check the path", which was right; the fix is the folder."""
    folder = dpt(tmp_path)
    for file in ("model.safetensors", "config.json"):
        with pytest.raises(Gen3cModelError) as err:
            load_depth_estimator(f"{folder}/{file}")
        assert str(err.value) == (
            f"depth estimator '{folder}/{file}' is neither a MoGe model.pt nor a transformers folder with config.json: "
            f"pass its folder '{folder}', which holds the model's config.json"
        )
    assert load_depth_estimator(folder).name == f"dpt:{folder}"
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(Gen3cModelError, match=r"folder with config.json: check the path$"):
        load_depth_estimator(str(tmp_path / "notes.txt"))


def test_a_diffusers_folder_is_said_to_be_one(tmp_path, monkeypatch):
    """A diffusers pipeline or one of its model folders given as --depth_estimator was refused as
    "neither a MoGe model.pt nor a transformers folder" or with transformers' "Unrecognized model
    … Should have a `model_type` key" and a save_pretrained hint: neither says what it is."""
    import json

    takes = (
        r", not a transformers depth model: --depth_estimator takes moge, prior, depth_pro, depth_anything_v2, zoedepth, a MoGe model\.pt, "
        r"or a transformers depth model \(Depth Pro, Depth Anything, ZoeDepth or DPT\) by hub id or save_pretrained folder$"
    )
    pipe = tmp_path / "gen3c_pipe"
    (pipe / "vae").mkdir(parents=True)
    (pipe / "model_index.json").write_text(json.dumps({"_class_name": "Gen3cPipeline", "vae": ["diffusers", "AutoencoderKLWan"]}))
    (pipe / "vae" / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKLWan", "_diffusers_version": "0.35.0"}))
    with pytest.raises(Gen3cModelError, match=r"^depth estimator '.*gen3c_pipe' is a diffusers pipeline folder \(it has model_index\.json\)" + takes):
        load_depth_estimator(str(pipe))
    vae = r"^depth estimator '.*vae' is a diffusers AutoencoderKLWan folder \(its config\.json has _class_name, no model_type\)" + takes
    with pytest.raises(Gen3cModelError, match=vae):
        load_depth_estimator(str(pipe / "vae"))
    with pytest.raises(Gen3cModelError, match=vae):
        TransformersDepthEstimator(str(pipe / "vae"))
    # the same pipeline by hub id, in the local cache: offline it was "not in the local Hugging Face cache"
    import huggingface_hub.constants

    snapshot = tmp_path / "hub" / "models--nvidia--GEN3C-Cosmos-7B" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    (snapshot / "model_index.json").write_text((pipe / "model_index.json").read_text())
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Gen3cModelError, match=r"^depth estimator 'nvidia/GEN3C-Cosmos-7B' is a diffusers pipeline folder \(it has model_index\.json\)" + takes):
        load_depth_estimator("nvidia/GEN3C-Cosmos-7B")
    (pipe / "vae" / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(Gen3cModelError, match=r"^depth estimator '.*vae' is a folder whose config\.json has no model_type" + takes):
        load_depth_estimator(str(pipe / "vae"))


def test_a_model_with_nan_weights_is_refused(tmp_path):
    """Damaged weights that make the network return NaN: the relative path read NaN disparity as
    0 (invalid) and returned depth 1 everywhere with no trusted pixel, the metric path a flat far
    fill — an estimate with no error."""
    path = dpt(tmp_path)
    model = transformers.AutoModelForDepthEstimation.from_pretrained(path)
    with torch.no_grad():
        model.head.head[-2].bias[0] = math.nan  # the last convolution before the output ReLU
    model.save_pretrained(path)
    estimator = load_depth_estimator(path)
    with pytest.raises(Gen3cModelError, match=r"^depth model dpt:.* returned NaN/inf at \d+ of \d+ pixels: its weights are damaged \(download them again\)$"):
        estimator.estimate(image())


def _drop_weights(folder, drop):
    """Rewrite ``folder``'s model.safetensors without the weights whose names ``drop`` accepts."""
    from safetensors.torch import load_file, save_file

    weights = Path(folder) / "model.safetensors"
    kept = {k: v for k, v in load_file(weights).items() if not drop(k)}
    save_file(kept, weights, metadata={"format": "pt"})
    return kept


def test_weights_of_another_model_are_refused_not_made_random(tmp_path):
    """A DPT config.json beside Depth Anything's weights (or weights that lack the head) loaded:
    transformers filled every weight it did not find with random values, in a warning gen3c keeps
    quiet from disk, and the estimator returned made-up depth with no error."""
    folder = Path(dpt(tmp_path))
    other = Path(depth_anything(tmp_path, "relative"))
    (folder / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    lacks = r"lacks \d+ of the \d+ weights of its DPTForDepthEstimation \(e\.g\. '[^']+'\), which would be random, its depth made up: "
    with pytest.raises(Gen3cModelError, match=rf"^depth model '{folder}' {lacks}its folder's weights are another model's or incomplete; "):
        load_depth_estimator(str(folder))
    headless = Path(dpt(tmp_path / "headless"))
    _drop_weights(headless, lambda k: k.startswith("head."))
    with pytest.raises(Gen3cModelError, match=r"lacks \d+ of the \d+ weights of its DPTForDepthEstimation \(e\.g\. 'head\."):
        load_depth_estimator(str(headless))


def test_a_checkpoint_without_the_unused_fusion_residual_loads(tmp_path):
    """The first fusion layer's residual_layer1 never runs (it gets no residual); checkpoints
    converted from the original DPT (Intel/dpt-hybrid-midas) lack it and still load, with the
    same depth as the full checkpoint."""
    original = dpt(tmp_path)
    full = load_depth_estimator(original).estimate(image())
    folder = tmp_path / "converted"
    shutil.copytree(original, folder)
    kept = _drop_weights(folder, lambda k: k.startswith("neck.fusion_stage.layers.0.residual_layer1."))
    assert not any("layers.0.residual_layer1" in k for k in kept)
    assert torch.equal(load_depth_estimator(str(folder)).estimate(image()).depth, full.depth)


def test_an_image_its_processor_cannot_size_is_one_line(tmp_path):
    """DPT / Depth Anything processors keep the aspect ratio and round to patch multiples: a long
    strip (here 8×4000 for a 32-pixel DPT; above about 74:1 for Depth Anything V2's 518) came out
    0 rows high and the processor's ValueError ("Size must contain 'height' and 'width' keys…")
    was a traceback from `gen3c depth strip.png --depth_estimator depth_anything_v2`."""
    from gen3c.errors import Gen3cInputError

    est = load_depth_estimator(dpt(tmp_path))
    strip = np.zeros((8, 4000, 3), dtype=np.uint8)
    with pytest.raises(Gen3cInputError, match=r"^depth model dpt:.* cannot take an image of 4000×8 pixels \(aspect ratio 500:1; its processor: .*\): crop it nearer to square"):
        est.estimate(strip)
    assert est.estimate(image()).size == (H, W)
    # ZoeDepth's processor at Intel/zoedepth-nyu-kitti's size fails with a RuntimeError from 100:1 on.
    zoe = load_depth_estimator(zoedepth(tmp_path))
    zoe.processor = transformers.ZoeDepthImageProcessor(size={"height": 384, "width": 512}, keep_aspect_ratio=True, ensure_multiple_of=32)
    with pytest.raises(Gen3cInputError, match=r"^depth model zoedepth:.* cannot take an image of 4000×40 pixels \(aspect ratio 100:1; "):
        zoe.estimate(np.zeros((40, 4000, 3), dtype=np.uint8))


def test_a_hub_model_cached_in_part_is_downloaded_in_full(tmp_path, monkeypatch):
    """A first download cut short after config.json left the model cached in part: every later
    run loaded it from the cache only and failed with "check the hub id and the network", the hub
    reachable; offline, the message now says the download was cut short and how to finish it."""
    from hub_server import HubServer
    from huggingface_hub import constants, hf_hub_download

    folder = Path(dpt(tmp_path))
    server = HubServer({"someone/tiny-dpt": {p.name: p.read_bytes() for p in folder.iterdir()}})
    try:
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
        monkeypatch.setattr(constants, "ENDPOINT", server.url)  # (as HF_ENDPOINT sets both at import)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        hf_hub_download("someone/tiny-dpt", "config.json")  # the first download, cut short after it
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(Gen3cModelError, match=r"^depth model 'someone/tiny-dpt' is only partly in the local Hugging Face cache \(.*\) and HF_HUB_OFFLINE is set: run once with the hub reachable to finish the download, "):
            load_depth_estimator("someone/tiny-dpt")
        monkeypatch.delenv("HF_HUB_OFFLINE")
        estimator = load_depth_estimator("someone/tiny-dpt")
        assert estimator.name == "dpt:someone/tiny-dpt"
        check(estimator.estimate(image()), "relative")
        assert server.count("GET", "model.safetensors") == 1
    finally:
        server.stop()


def test_loading_from_disk_draws_no_transformers_bar(tmp_path, capfd):
    """`gen3c depth` and `gen3c generate` with a transformers model printed its raw tqdm bar
    ("Loading weights: 100%|███| 193/193") among gen3c's own lines; the library's setting is kept."""
    from transformers.utils import logging as transformers_logging

    folder = dpt(tmp_path)
    capfd.readouterr()
    enabled = transformers_logging.is_progress_bar_enabled()
    load_depth_estimator(folder)
    assert "Loading weights" not in capfd.readouterr().err
    assert transformers_logging.is_progress_bar_enabled() == enabled


def test_a_broken_diffusers_does_not_stop_a_transformers_depth_model(tmp_path, monkeypatch):
    """Quieting the bars must not import diffusers, which a depth model never uses (an old
    diffusers beside a newer huggingface_hub fails to import)."""
    import sys

    folder = dpt(tmp_path)
    broken = tmp_path / "site" / "diffusers"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("from huggingface_hub import cached_download\n")  # removed from huggingface_hub 0.26
    for name in [m for m in sys.modules if m == "diffusers" or m.startswith("diffusers.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(broken.parent))
    assert load_depth_estimator(folder).name == f"dpt:{folder}"


def test_a_saved_disparity_read_with_depth_is_disparity_runs_as_its_estimator_did(tmp_path, monkeypatch):
    """Depth Anything's relative output (MiDaS's, DPT's) is disparity. Saved and given back as
    --depth_path with --depth_is_disparity, it makes the video and cameras the estimator's own run
    made (test_depth_cli.py shows that without the flag it is another). Before, there was no way to
    say so: the flag was an unknown option."""
    from PIL import Image
    from typer.testing import CliRunner

    import gen3c.depth.hf as hf
    from gen3c.cli import app
    from gen3c.io.video import read_video

    Image.fromarray(image()).save(tmp_path / "photo.png")
    model = depth_anything(tmp_path, "relative")
    raw = []

    def keep_raw(disparity, *args):
        raw.append(disparity.clone())
        return disparity_to_relative_depth(disparity, *args)

    monkeypatch.setattr(hf, "disparity_to_relative_depth", keep_raw)
    common = ["--input_image_path", tmp_path / "photo.png", "--fov", "60", "--resolution", "32x48", "--num_video_frames", "2",
              "--video_save_folder", tmp_path / "out"]  # fmt: skip

    def run(*args):
        res = CliRunner().invoke(app, [str(a) for a in ("generate", *common, *args)])
        assert res.exit_code == 0, res.output
        return res.output

    run("--depth_estimator", model, "--video_save_name", "direct")
    (disparity,) = raw
    np.save(tmp_path / "disparity.npy", disparity.numpy())
    out = run("--depth_path", tmp_path / "disparity.npy", "--depth_is_disparity", "--video_save_name", "fed")
    assert "read as disparity: depth = 1 / disparity up to scale" in out
    assert np.array_equal(read_video(tmp_path / "out" / "fed.mp4")[0], read_video(tmp_path / "out" / "direct.mp4")[0])
    cameras = {name: json.loads((tmp_path / "out" / f"{name}_cameras.json").read_text())["frames"] for name in ("direct", "fed")}
    assert cameras["fed"] == cameras["direct"]
