"""The Python entry points as a script or notebook calls them: the forms each documented argument
takes, one-line Gen3cInputErrors for the others, and gen3c.generate run twice in one process."""

from __future__ import annotations

import re
from contextlib import nullcontext

import numpy as np
import pytest
import torch
from PIL import Image

import gen3c
from gen3c.cameras import intrinsics_from_fov
from gen3c.errors import Gen3cInputError
from gen3c.pipelines.camera_video import (
    build_cache,
    generate_video,
    prepare_source,
    preset_cameras,
    save_outputs,
)
from gen3c.pipelines.preview import PreviewGenerator

SIZE = (32, 48)


@pytest.fixture
def scene(box_scene):
    _, _, image, depth = box_scene
    return image, depth, intrinsics_from_fov(60, *image.shape[-2:])


def test_dir_of_gen3c_lists_what_all_promises_without_loading_it():
    """Tab completion (``gen3c.<TAB>``) and ``dir(gen3c)`` show the lazy entry points. Before:
    ``generate`` and ``Gen3cPipeline`` were missing until first used."""
    import subprocess
    import sys

    code = "import gen3c, sys; print(sorted(set(gen3c.__all__) - set(dir(gen3c))), 'diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["[]", "False"]


def test_gen3c_pipeline_without_the_diffusion_extra_names_the_pip_install():
    """``gen3c.Gen3cPipeline`` where diffusers is not installed: gen3c's one line naming
    ``pip install 'gen3c[diffusion]'``. Before: diffusers' ModuleNotFoundError from inside
    gen3c.pipelines.gen3c. ``gen3c.generate`` (the preview needs no diffusers) still imports."""
    import subprocess
    import sys

    from child_env import child_env

    code = (
        "import sys; sys.modules['diffusers'] = None\n"
        "import gen3c; gen3c.generate\n"
        "try:\n    from gen3c import Gen3cPipeline\nexcept ImportError as e:\n"
        "    print(type(e).__name__, isinstance(e, gen3c.Gen3cInputError), e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=child_env()).stdout
    assert out == "Gen3cImportError True gen3c.Gen3cPipeline needs diffusers (diffusers is missing): pip install 'gen3c[diffusion]'\n"


def test_prepare_source_takes_the_image_forms_the_depth_estimators_take(scene):
    image, depth, K = scene
    uint8 = ((image + 1) * 127.5).round().to(torch.uint8)
    reference = prepare_source(image, depth, K, SIZE)
    array = uint8.permute(1, 2, 0).numpy()
    for form in (uint8, array, Image.fromarray(array)):
        # Before: a uint8 tensor was clamped to [-1, 1] (a white image); an array or PIL image crashed.
        got = prepare_source(form, depth.numpy(), K.numpy(), SIZE)
        assert torch.allclose(got.image, reference.image, atol=1e-5)
        assert torch.equal(got.depth, reference.depth) and torch.equal(got.K, reference.K)


def test_a_float_tensor_in_0_1_is_noted(scene):
    """An image in [0, 1] (torchvision's to_tensor, kornia, what the depth estimators take) is
    read as [-1, 1], which washes it out; it is noted with the fix. Before: taken without a word."""
    import warnings

    image, depth, K = scene
    with pytest.warns(UserWarning, match=r"prepare_source image has no value below 0.*pass image \* 2 - 1"):
        washed = prepare_source((image + 1) / 2, depth, K, SIZE)
    assert float(washed.image.min()) >= 0  # still what was asked: the note does not change the image
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepare_source(image, depth, K, SIZE)


def test_a_bright_photo_is_not_taken_for_a_0_1_tensor_and_a_0_1_tensor_is_noted_once(tmp_path):
    """The [0, 1] note is for tensors a caller hands in. Before: a photo file whose darkest pixel
    is ≥ 128 got "prepare_source image has no value below 0 … pass image * 2 - 1" from the CLI
    (an API it never called), and a [0, 1] tensor given to gen3c.generate was noted twice."""
    import warnings

    bright = np.random.default_rng(0).integers(140, 256, (32, 48, 3), dtype=np.uint8)
    Image.fromarray(bright).save(tmp_path / "bright.png")
    np.save(tmp_path / "depth.npy", np.full((32, 48), 2.0, np.float32))
    common = {"fov": 60, "resolution": "32x48", "num_video_frames": 3, "generator": "preview", "progress": False}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gen3c.generate(tmp_path / "bright.png", depth=tmp_path / "depth.npy", video_save_folder=tmp_path / "a", **common)
    unit = torch.from_numpy(bright).permute(2, 0, 1).float() / 255
    with pytest.warns(UserWarning) as caught:
        gen3c.generate(unit, depth=np.full((32, 48), 2.0), video_save_folder=tmp_path / "b", **common)
    notes = [str(w.message) for w in caught if "no value below 0" in str(w.message)]
    assert len(notes) == 1 and notes[0].startswith("gen3c.generate() image has no value below 0"), notes


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda i, d, K: ("photo.png", d, K), "is a path .*load_image"),
        (lambda i, d, K: (i.permute(1, 2, 0), d, K), r"looks like \(H, W, 3\), pass image.permute\(2, 0, 1\)"),
        (lambda i, d, K: (i[None], d, K), r"pass one \(3, H, W\) RGB image"),
        (lambda i, d, K: (i * 127.5 + 127.5, d, K), r"expected \[-1, 1\] \(0–255 values: pass image / 127.5 - 1\)"),
        (lambda i, d, K: (i, d.expand(2, -1, -1), K), r"depth is \(2, 96, 160\) but the image is \(96, 160\)"),
        (lambda i, d, K: (i, d, torch.eye(4)), r"K has shape \(4, 4\): pass one \(3, 3\) matrix"),
        (lambda i, d, K: (i, d, K[None]), r"K has shape \(1, 3, 3\): pass one \(3, 3\)"),
        (lambda i, d, K: (i, d, "60"), "K is str '60'"),
    ],
)
def test_prepare_source_refuses_wrong_arguments_in_one_line(scene, change, match):
    with pytest.raises(Gen3cInputError, match=match):
        prepare_source(*change(*scene), SIZE)


def test_prepare_source_takes_a_depth_models_1_h_w_output_as_its_h_w_map(scene):
    """prepare_source refused a (1, H, W) depth ('depth is (1, 96, 160) but the image is (96, 160)'),
    the shape depth models return, where gen3c.generate(depth=) took the same array; sides of 1 are
    now dropped, making the source the (H, W) map makes."""
    image, depth, K = scene
    want = prepare_source(image, depth, K, SIZE)
    for form in (depth[None], depth[None, None], depth[..., None], depth[None].numpy()):
        got = prepare_source(image, form, K, SIZE)
        assert torch.equal(got.depth, want.depth) and torch.equal(got.valid, want.valid) and torch.equal(got.image, want.image)


def test_depth_in_memory_is_taken_as_the_same_depth_in_a_file(scene, tmp_path):
    """A depth array with NaN sky and an integer depth map make the source a depth file makes
    (the command line's path). Before: NaN pixels became holes (not GEN3C's far backdrop) and
    the bilinear resize spread them to their neighbours; a uint16 map raised torch's
    NotImplementedError; an all-NaN map made an empty cache without a word; normalised
    intrinsics were taken as pixels."""
    from gen3c.pipelines.request import GenerationRequest, load_source

    image, depth, K = scene
    sky = depth.clone()
    sky[:20] = float("nan")
    Image.fromarray(((image + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()).save(tmp_path / "photo.png")
    np.save(tmp_path / "sky.npy", sky.numpy())
    request = GenerationRequest(input_image_path=str(tmp_path / "photo.png"), depth_path=str(tmp_path / "sky.npy"), fov=60, resolution="32x48")
    with pytest.warns(UserWarning, match=r"of NaN/inf depth sit far away"):
        from_file = load_source(request)
    with pytest.warns(UserWarning, match=r"prepare_source depth: 3200 pixels \(21%\) of NaN/inf depth sit far away"):
        in_memory = prepare_source(image, sky.numpy(), K, SIZE)
    assert torch.equal(in_memory.depth, from_file.depth) and torch.equal(in_memory.valid, from_file.valid)
    assert bool(in_memory.valid.all()) and float(in_memory.depth[0].min()) > 100  # the sky: a far backdrop
    millimetres = prepare_source(image, (depth * 1000).numpy().astype(np.uint16), K, SIZE)
    assert torch.equal(millimetres.depth, prepare_source(image, depth * 1000, K, SIZE).depth)
    mistakes = [
        ((image, torch.full_like(depth, float("nan")), K), r"prepare_source depth has no valid pixel \(all NaN/inf/≤ 0\)"),
        ((image, depth, K / torch.tensor([[160.0, 1, 160], [1, 96, 96], [1, 1, 1]])), r"prepare_source K \(fx=0.866025.*\) look normalised"),
        ((image, depth, 60), r"K is the number 60: .*cameras.intrinsics_from_fov\(60, 96, 160\)"),
        # as gen3c.generate() says them (before: "is torch.bool: pass z-depth as real numbers", complex too)
        ((image, depth > 3, K), r"^prepare_source depth holds bool values: depth must be a numeric array$"),
        ((image, depth * 1j, K), r"^prepare_source depth holds complex64 values: pass real numbers \(its \.real, where the imaginary part is 0\)$"),
    ]
    for args, match in mistakes:
        with pytest.raises(Gen3cInputError, match=match):
            prepare_source(*args, SIZE)


def test_intrinsics_made_with_height_and_width_swapped_are_noted_once(box_scene, tmp_path, recwarn):
    """intrinsics_from_fov(60, *pil_image.size) (PIL's size is (W, H)) put a 96×160 image's principal
    point at (48, 80), far from its centre yet inside it: the video was made from that camera without
    a word. prepare_source notes it; a run whose --intrinsics reader said it already (a turned
    photo's calibration) says it once; the image's own camera says nothing."""
    image_path, depth_path, image, depth = box_scene
    pil = Image.open(image_path)
    swapped = intrinsics_from_fov(60, *pil.size)
    recwarn.clear()
    prepare_source(pil, depth, swapped, SIZE)
    assert [str(w.message) for w in recwarn.list] == [
        "prepare_source K (cx=48, cy=80) put the principal point at the centre of a 96×160 image, not of this 160×96 one: made with "
        "height and width swapped (PIL's image.size is (W, H); intrinsics_from_fov takes (fov, H, W))? then pass this image's, "
        "e.g. intrinsics_from_fov(fov, 96, 160)"
    ]  # fmt: skip
    assert {w.filename for w in recwarn.list} == {__file__}  # said at the call
    recwarn.clear()
    prepare_source(pil, depth, intrinsics_from_fov(60, pil.height, pil.width), SIZE)
    assert not recwarn.list
    spec = ",".join(f"{float(v):g}" for v in (swapped[0, 0], swapped[1, 1], swapped[0, 2], swapped[1, 2]))
    gen3c.generate(image_path, depth=depth_path, intrinsics=spec, generator="preview", num_video_frames=3, resolution="32x48",
                   video_save_folder=tmp_path, progress=False)  # fmt: skip
    said = [str(w.message) for w in recwarn.list if "put the principal point at the centre of a 96×160 image" in str(w.message)]
    assert len(said) == 1 and "made for the photo turned a quarter" in said[0], said


def test_prepare_source_checks_pose_and_resolution(scene):
    with pytest.raises(Gen3cInputError, match="w2c must be 4×4"):
        prepare_source(*scene, SIZE, w2c=torch.eye(4)[:3])  # before: kept as given, failing later
    with pytest.raises(Gen3cInputError, match=r"resolution '32x48' must be \(H, W\)"):
        prepare_source(*scene, "32x48")
    # A resolution as a tensor or array of two sides was refused as no (H, W), though a tuple of numpy ints was taken.
    expected = prepare_source(*scene, SIZE)
    for resolution in (torch.tensor(SIZE), np.array(SIZE)):
        assert torch.equal(prepare_source(*scene, resolution).image, expected.image)
    for resolution in (torch.tensor([True, True]), torch.tensor([32.5, 48.0]), np.array([[32, 48]])):
        with pytest.raises(Gen3cInputError, match=r"^prepare_source resolution .* must be \(H, W\), two positive whole numbers"):
            prepare_source(*scene, resolution)


def test_generate_video_refuses_mismatched_arguments_before_rendering(scene):
    source = prepare_source(*scene, SIZE)
    cameras = preset_cameras(source, "left", "center_facing", num_frames=5)
    cache = build_cache([source])
    preview = PreviewGenerator()
    mistakes = [
        # Before: RuntimeErrors about tensor sizes from inside the preview generator.
        ((cache, cameras, preview, scene[0]), r"first_frame is \(3, 96, 160\) but the cameras make 32×48 frames"),
        ((cache, cameras, preview, source.image.permute(1, 2, 0)), r"pass a \(3, 32, 48\) tensor"),
        ((cache, cameras.resized(16, 24), preview, source.image), "the cameras make 16×24 frames"),
        ((cache, [cameras], preview, source.image), "cameras is a list"),
        ((cache, cameras, PreviewGenerator, source.image), "the class PreviewGenerator, not an instance"),
        ((source, cameras, preview, source.image), "cache is a SourceView"),
    ]
    for args, match in mistakes:
        with pytest.raises(Gen3cInputError, match=match):
            generate_video(*args)
    with pytest.raises(Gen3cInputError, match=r"a list of SourceView .*pass \[source\]"):
        build_cache(source)
    with pytest.raises(Gen3cInputError, match="whole number ≥ 1, got 5.0"):
        preset_cameras(source, "left", "center_facing", num_frames=5.0)


def test_generate_video_and_the_generators_refuse_a_progress_that_cannot_be_called(scene):
    """``progress=True``, as gen3c.generate takes it, ended in "'bool' object is not callable" from
    inside generate_video's chunk loop, or from a generator's generate() after its first frame or
    sampler step; now one line naming progress and what to pass (a factory, to generate_video, a
    function of the frames done, to a generator; the one in the other's place too). A first frame that is no tensor
    is named so (before: "first_frame is a numpy array of shape (3, 32, 48) but the cameras make
    32×48 frames", the very size asked for)."""
    from types import SimpleNamespace

    from gen3c.pipelines.gen3c import Gen3cGenerator

    source = prepare_source(*scene, SIZE)
    cameras = preset_cameras(source, "left", "center_facing", num_frames=5)
    cache = build_cache([source])
    # A function of the other kind (a step's advance(n) as the factory, a factory as a step's
    # progress) was the TypeError "<lambda>() takes 1 positional argument but 2 were given", or the
    # reverse, once the work was under way.
    def factory(stage, total):
        return lambda n=1: None

    kinds = {"factory": "a function that cannot be called as progress(stage, total)", "step": "a function that cannot be called as progress(n)"}
    def step(n):
        pass

    cases = [(True, "bool 'True'", "bool 'True'"), (False, "bool 'False'", "bool 'False'"), ("bars", "str 'bars'", "str 'bars'"),
             (step, kinds["factory"], None), (factory, None, kinds["step"])]  # fmt: skip
    for progress, as_factory, as_step in cases:
        with pytest.raises(Gen3cInputError) if as_factory else nullcontext() as refused:
            generate_video(cache, cameras, PreviewGenerator(), source.image, progress=progress)
        assert not as_factory or str(refused.value) == (
            f"progress is {as_factory}: pass a progress factory, progress(stage, total) -> advance(n) "
            "(`with gen3c.progress.progress_bars() as progress:` draws gen3c's bars), or None for none"
        )
        if as_step:
            for generator in (PreviewGenerator(), Gen3cGenerator(SimpleNamespace(), chunk_frames=5)):
                with pytest.raises(Gen3cInputError) as refused:
                    generator.generate(cache, cameras, source.image, progress=progress)
                assert str(refused.value) == f"progress is {as_step}: pass a function called with the frames each step makes, progress(n), or None for none"
    assert PreviewGenerator().generate(cache, cameras, source.image, progress=step).shape == (5, 3, *SIZE)
    with pytest.raises(Gen3cInputError) as refused:
        generate_video(cache, cameras, PreviewGenerator(), source.image.numpy())
    assert str(refused.value) == (
        "first_frame is a numpy array of shape (3, 32, 48), not a tensor: pass a (3, 32, 48) tensor in [-1, 1] (the prepared source's image)"
    )


def test_frame_count_refusals_of_generate_video_and_the_gen3c_generator_name_their_arguments(scene):
    """generate_video and a loaded generator's generate() were refused in the command line's flags
    ("--chunk_frames 1 is too small", "--num_video_frames 12 is not possible", "pass --num_video_frames
    17, 33"), which neither call has: now its chunk_frames= and its cameras' count."""
    from types import SimpleNamespace

    from gen3c.cameras import Cameras
    from gen3c.pipelines.gen3c import Gen3cGenerator

    class NinePerCall(PreviewGenerator):
        name, chunk_frames = "nine", 9

    source = prepare_source(*scene, SIZE)
    cache = build_cache([source])
    cameras = preset_cameras(source, "left", "center_facing", num_frames=12)
    too_many = Cameras(cameras.w2c[:1].expand(100_001, 4, 4), source.K, *SIZE)
    refusals = {
        "chunk_frames=1 is too small: chunks overlap by one frame, so pass 2 or more": (cameras, PreviewGenerator(), 1),
        "chunk_frames=5: the nine generator makes 9 frames per chunk; leave it out": (cameras, NinePerCall(), 5),
        "len(cameras) == 12 is not possible with the nine generator, which makes 9 frames per chunk with one frame of overlap: "
        "pass 8·N+1 frames (9, 17, 25, …)": (cameras, NinePerCall(), None),
        "len(cameras) == 100001 is impossible: pass a count between 1 and 100000": (too_many, PreviewGenerator(), None),
    }
    for message, (path, generator, chunk_frames) in refusals.items():
        with pytest.raises(Gen3cInputError) as refused:
            generate_video(cache, path, generator, source.image, chunk_frames=chunk_frames)
        assert str(refused.value) == message
    gen = Gen3cGenerator(SimpleNamespace(), chunk_frames=17)  # (refused before its pipeline is used: none loaded)
    buffers = SimpleNamespace(colors=torch.zeros(12, 1, 3, 16, 16), masks=torch.zeros(12, 1, 1, 16, 16))
    with pytest.raises(Gen3cInputError) as refused:
        gen.generate(None, None, torch.zeros(3, 16, 16), buffers=buffers)
    assert str(refused.value) == ("a gen3c chunk has 17 frames, not 12: pass 17 cameras (or buffers of 17 frames); a longer path "
                                  "(33, 49, … cameras) goes to generate_video, which makes it chunk by chunk")  # fmt: skip
    # Its first_frame is named as its call names it (before: the pipeline's "image must be a (3, H, W) tensor").
    buffers = SimpleNamespace(colors=torch.zeros(17, 1, 3, 16, 16), masks=torch.zeros(17, 1, 1, 16, 16))
    for first_frame, message in (
        (torch.zeros(1, 3, 16, 16), "first_frame is (1, 3, 16, 16) but the cameras make 16×16 frames: pass a (3, 16, 16) tensor in [-1, 1] (the prepared source's image)"),
        (np.zeros((3, 16, 16)), "first_frame is a numpy array of shape (3, 16, 16), not a tensor: pass a (3, 16, 16) tensor in [-1, 1] (the prepared source's image)"),
        (torch.full((3, 16, 16), 200, dtype=torch.uint8), "first_frame holds uint8 values in [200, 200]: pass floats in [-1, 1] (the prepared source's image; a uint8 image as image / 127.5 - 1)"),
    ):  # fmt: skip
        with pytest.raises(Gen3cInputError) as refused:
            gen.generate(None, None, first_frame, buffers=buffers)
        assert str(refused.value) == message


def test_save_outputs_refuses_a_name_ending_in_mp4(scene, tmp_path):
    source = prepare_source(*scene, SIZE)
    cameras = preset_cameras(source, "left", "center_facing", num_frames=3)
    result = generate_video(build_cache([source]), cameras, PreviewGenerator(), source.image)
    with pytest.raises(Gen3cInputError, match="ends in .mp4, which gen3c adds itself: pass 'clip'"):
        save_outputs(result, tmp_path, "clip.mp4")  # before: wrote clip.mp4.mp4
    assert save_outputs(result, tmp_path, "clip")["video"].name == "clip.mp4"


def test_a_run_records_numpy_numbers_as_json_numbers(scene, tmp_path):
    """save_outputs(metadata=…) from Python wrote numpy's numbers into NAME_run.json as text
    ("0.5", "3"), which a reader of the record (or gen3c batch, running it again) takes for
    strings: they are JSON numbers and booleans now; what JSON has no type for stays its text."""
    import json

    source = prepare_source(*scene, SIZE)
    cameras = preset_cameras(source, "left", "center_facing", num_frames=3)
    result = generate_video(build_cache([source]), cameras, PreviewGenerator(), source.image)
    metadata = {"strength": np.float32(0.5), "steps": np.int64(3), "flip": np.bool_(True), "where": tmp_path}
    save_outputs(result, tmp_path, "clip", metadata=metadata)
    record = json.loads((tmp_path / "clip_run.json").read_text())
    assert {k: record[k] for k in metadata} == {"strength": 0.5, "steps": 3, "flip": True, "where": str(tmp_path)}
    assert [type(record[k]) for k in ("strength", "steps", "flip")] == [float, int, bool]
    from gen3c.io.formats import (
        json_default,  # (every record gen3c writes: run.json, a batch's status, gen3c_lora.json)
    )

    assert json.dumps([np.float16(0.25), np.uint8(7), torch.float16], default=json_default) == '[0.25, 7, "torch.float16"]'
    # A 0-d array (np.array(0.5), np.median(...) of an array kept as one) was its text "0.5" too.
    zero_d = [np.array(0.5), np.array(3, dtype=np.int16), np.array(True)]
    assert json.dumps(zero_d, default=json_default) == "[0.5, 3, true]"
    # An array or tensor of more dimensions was its print, "[[1. 0.]\n [0. 1.]]" (cut with "..." past 1000 numbers).
    arrays = {"K": np.eye(2), "mask": np.array([True, False]), "pose": torch.tensor([[1, 2]], dtype=torch.int32), "big": np.zeros(1001)}
    save_outputs(result, tmp_path, "arrays", metadata=arrays)
    record = json.loads((tmp_path / "arrays_run.json").read_text())
    assert {k: record[k] for k in arrays} == {"K": [[1.0, 0.0], [0.0, 1.0]], "mask": [True, False], "pose": [[1, 2]], "big": [0.0] * 1001}


def test_generate_refuses_what_it_would_ignore_or_cannot_read(box_scene, tmp_path):
    image_path, depth_path, image, _ = box_scene
    common = {"depth": depth_path, "fov": 60, "resolution": "32x48", "num_video_frames": 3, "video_save_folder": tmp_path}
    mistakes = [
        ({"trajectroy": "right"}, "unknown setting 'trajectroy': did you mean 'trajectory'"),
        # before: "unknown setting 'generator_options': did you mean 'generator'?"
        ({"generator_options": {"num_steps": 4}}, r"^gen3c.generate\(\) takes the generator's settings as keyword arguments of their own, "
                                                   r"not as generator_options: pass them one by one \(num_steps=35, guidance=7.0, …\) or unpacked \(\*\*generator_options\)$"),
        ({"seed": 3}, 'seed= applies to generator="gen3c" only'),  # before: ignored by the preview, silently
        ({"num_steps": 4}, 'num_steps= applies to generator="gen3c" only'),
        ({"png_depth_scale": 0.01}, "png_depth_scale= applies to a 16-bit PNG or TIFF depth= only"),
        # before: overwritten by the image / depth arguments, silently
        ({"input_image_path": "other.png"}, "setting 'input_image_path' is what the `image` argument gives: pass the file as `image`"),
        ({"depth_path": "other.npy"}, "setting 'depth_path' is what the `depth` argument gives: pass the file as `depth`"),
    ]
    for extra, match in mistakes:
        with pytest.raises(Gen3cInputError, match=match) as caught:
            gen3c.generate(image_path, generator="preview", **common, **extra)
        assert "--" not in str(caught.value)  # the call's keyword arguments, not gen3c generate's flags
    with pytest.raises(Gen3cInputError, match=r"^generator='gen3cc' is unknown: choose one of preview, gen3c$"):  # it named no setting
        gen3c.generate(image_path, generator="gen3cc", **common)
    # It said "out of range" for a size off the 8-pixel stride, and offered none.
    with pytest.raises(Gen3cInputError, match=r"^resolution='30x50': the height and width must be multiples of 8 .*: pass resolution='24x48' or '32x56'$"):
        gen3c.generate(image_path, generator="preview", **{**common, "resolution": "30x50"})
    # For the gen3c generator, the sizes its model takes (multiples of 16), not the preview's '24x48' or '32x56'.
    with pytest.raises(Gen3cInputError, match=r"^resolution='30x50': this model takes heights and widths that are multiples of 16 .*: pass resolution='16x48' or '32x64'$"):
        gen3c.generate(image_path, generator="gen3c", model="tiny", **{**common, "resolution": "30x50"})
    assert not any(tmp_path.iterdir())


def test_a_long_gen3c_generate_that_stopped_resumes_from_its_kept_chunks(box_scene, tmp_path, monkeypatch):
    """gen3c.generate() of 3 chunks failing in chunk 3 keeps 2 and says how a Python caller goes on:
    the next call is refused with resume=True (not gen3c generate's --resume), and with it makes the
    uninterrupted call's video. (It had no resume: the kept chunks could only be deleted.)"""
    image_path, depth_path, _, _ = box_scene
    common = {"depth": depth_path, "generator": "preview", "fov": 60, "resolution": "32x48", "num_video_frames": 25, "chunk_frames": 9,
              "progress": False}  # fmt: skip
    whole = gen3c.generate(image_path, video_save_folder=tmp_path / "a", **common)
    generate, calls = PreviewGenerator.generate, []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Gen3cInputError("stop")
        return generate(self, *args, **kwargs)

    monkeypatch.setattr(PreviewGenerator, "generate", failing)
    kept = repr(str(tmp_path / "b" / "image.partial"))
    with pytest.raises(Gen3cInputError, match=f"^stop; 2 of 3 chunks are kept in {re.escape(kept)}: call gen3c.generate\\(\\) again with resume=True to continue$"):
        gen3c.generate(image_path, video_save_folder=tmp_path / "b", **common)
    monkeypatch.undo()
    with pytest.raises(Gen3cInputError, match=r"holds 2 finished chunks of an interrupted run of 'image': pass resume=True to continue it"):
        gen3c.generate(image_path, video_save_folder=tmp_path / "b", **common)
    with pytest.raises(Gen3cInputError, match=r"^gen3c.generate\(\): resume is str 'yes': pass True or False$"):
        gen3c.generate(image_path, video_save_folder=tmp_path / "b", resume="yes", **common)
    resumed = gen3c.generate(image_path, video_save_folder=tmp_path / "b", resume=True, **common)
    assert resumed.paths["video"].read_bytes() == whole.paths["video"].read_bytes()


def test_a_preset_paths_refusal_and_note_name_its_settings_as_the_call_spells_them(box_scene, tmp_path):
    """A preset path that reaches or passes its look-at point named the settings as a batch row does
    (camera_rotation center_facing and movement_distance 2) to gen3c.generate()'s caller."""
    image_path, depth_path, _, _ = box_scene
    common = {"depth": depth_path, "fov": 60, "resolution": "32x48", "num_video_frames": 4, "trajectory": "zoom_in",
              "camera_rotation": "center_facing", "generator": "preview", "video_save_folder": tmp_path, "progress": False}  # fmt: skip
    with pytest.raises(Gen3cInputError) as refused:
        gen3c.generate(image_path, movement_distance=2, **common)
    assert str(refused.value) == (
        'the zoom_in path with camera_rotation="center_facing" and movement_distance=2 puts the camera on the point it looks at '
        "in frame 2 of 4, where it has no view direction: pass another movement_distance= (one below 1 never gets there)"
    )
    with pytest.warns(UserWarning, match=r'^the zoom_in path with camera_rotation="center_facing" and movement_distance=1\.9 passes the point'):
        gen3c.generate(image_path, movement_distance=1.9, **common)


@pytest.mark.parametrize(
    "settings, flags, keywords",
    [
        ({"fov": 500.0}, "--fov 500.0 is impossible", "fov=500.0 is impossible: pass degrees between 0.01 and 179"),
        ({"chunk_frames": 1}, "--chunk_frames 1 is too small", "chunk_frames=1 is too small: chunks overlap by one frame, so pass 2 or more"),
        ({"num_video_frames": 0}, "--num_video_frames 0 is impossible", "num_video_frames=0 is impossible: pass a count between 1 and"),
        ({"generator": "gen3c", "model": "tiny", "low_memory": True, "fp8": True}, "--low_memory and --fp8 each choose",
         "low_memory=True and fp8=True each choose the memory mode: pass only one of them"),
        ({"generator": "gen3c", "model": "tiny", "chunk_frames": 9}, "--chunk_frames 9: the gen3c generator makes 17",
         "chunk_frames=9: the gen3c generator makes 17 frames per chunk; leave it out"),
        # before: "num_video_frames 20 is not possible" on both, neither the flag nor the keyword
        ({"generator": "gen3c", "model": "tiny", "num_video_frames": 20}, "--num_video_frames 20 is not possible with the gen3c generator",
         "num_video_frames=20 is not possible with the gen3c generator, which makes 17 frames per chunk"),
    ],
    ids=["fov", "chunk_frames", "num_video_frames", "memory", "gen3c_chunk", "gen3c_count"],
)  # fmt: skip
def test_generates_refusals_name_its_keyword_arguments_and_the_clis_its_flags(box_scene, tmp_path, settings, flags, keywords):
    """gen3c.generate() shares gen3c generate's checks, each told in the caller's words: ``fov=``,
    not ``--fov``, which no Python call has (before: the command line's flags); the CLI keeps its own."""
    from typer.testing import CliRunner

    from gen3c.cli import app

    image_path, depth_path, _, _ = box_scene
    settings = {"fov": 60.0, "resolution": "32x48", "num_video_frames": 17, **settings}
    with pytest.raises(Gen3cInputError) as caught:
        gen3c.generate(image_path, depth=depth_path, video_save_folder=tmp_path / "out", progress=False, **settings)
    assert str(caught.value).startswith(keywords) and "--" not in str(caught.value), caught.value
    argv = ["generate", "--input_image_path", str(image_path), "--depth_path", str(depth_path), "--video_save_folder", str(tmp_path / "cli")]
    argv += [x for key, value in settings.items() for x in ((f"--{key}",) if value is True else (f"--{key}", str(value)))]
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == 2 and flags in " ".join(res.output.split()), res.output
    assert not (tmp_path / "out").exists()


def test_a_preset_setting_beside_a_camera_file_is_refused_naming_the_camera_file_keyword(box_scene, tmp_path):
    """Before: 'which camera_file="replaces"': the sentence's verb was taken for the setting's value."""
    from gen3c.io.camera_files import save_cameras
    from gen3c.scenes import source_camera

    image_path, depth_path, _, _ = box_scene
    save_cameras(tmp_path / "path.json", source_camera(32, 48))
    with pytest.raises(Gen3cInputError) as caught:
        gen3c.generate(image_path, depth=depth_path, fov=60, camera_file=tmp_path / "path.json", trajectory="right", generator="preview",
                       video_save_folder=tmp_path / "out", progress=False)  # fmt: skip
    assert str(caught.value) == "gen3c.generate(): trajectory= shapes a preset path, which camera_file= replaces: drop it"
    assert not (tmp_path / "out").exists()


def test_an_empty_output_name_is_refused_as_the_command_line_refuses_it(box_scene, tmp_path):
    """Before: ``video_save_name=""`` was taken for no name and wrote the image's stem, over any run of that name."""
    image_path, depth_path, _, _ = box_scene
    with pytest.raises(Gen3cInputError, match="^video_save_name='' must be a plain file name"):
        gen3c.generate(image_path, depth=depth_path, fov=60, video_save_name="", generator="preview", resolution="32x48",
                       num_video_frames=3, video_save_folder=tmp_path, progress=False)  # fmt: skip
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("setting, message", [
    ({"video_save_folder": " "}, "video_save_folder= is empty: pass a folder, or leave it out"),
    ({"video_save_name": "  "}, "video_save_name='  ' is only spaces: pass a name"),
])  # fmt: skip
def test_an_output_folder_or_name_of_spaces_alone_is_refused(box_scene, tmp_path, monkeypatch, setting, message):
    """Before: ``video_save_folder=" "`` made a folder named by a space and wrote the run there;
    ``video_save_name=" "`` wrote `` .mp4`` and its companions, there but invisible in a listing."""
    image_path, depth_path, _, _ = box_scene
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Gen3cInputError) as caught:
        gen3c.generate(image_path, depth=depth_path, fov=60, generator="preview", resolution="32x48", num_video_frames=3,
                       progress=False, **{"video_save_folder": tmp_path, **setting})  # fmt: skip
    assert str(caught.value) == message
    assert not any(tmp_path.iterdir())


def test_keyword_spelling_names_keywords_and_leaves_quoted_values_command_lines_and_other_flags_alone():
    from gen3c.pipelines.spelling import keyword_spelling

    assert keyword_spelling("--seed 3 and --no_compile: pass --generator gen3c") == 'seed=3 and compile=False: pass generator="gen3c"'
    assert keyword_spelling("--model tiny and --checkpoint_dir both name a model") == 'model="tiny" and checkpoint_dir= both name a model'
    assert keyword_spelling("--memory_mode 'x' is unknown; pass --fov DEGREES") == "memory_mode='x' is unknown; pass fov=DEGREES"
    assert keyword_spelling("--png_depth_scale applies to a 16-bit PNG or TIFF --depth_path only") == "png_depth_scale= applies to a 16-bit PNG or TIFF depth= only"
    # (before: intrinsics="/" fov=, disable_prompt_encoder=T5, intrinsics= fx,fy,cx,cy, device="cuda":1, resolution=704x1280, drop fp8=)
    assert keyword_spelling("no --intrinsics / --fov: using") == "no intrinsics= / fov=: using"
    assert keyword_spelling("with --disable_prompt_encoder T5 never loads: drop --fp8") == "with disable_prompt_encoder=True T5 never loads: drop fp8=True"
    assert keyword_spelling("pass --intrinsics fx,fy,cx,cy or --fov DEGREES") == 'pass intrinsics="fx,fy,cx,cy" or fov=DEGREES'
    assert keyword_spelling("--device cuda:1, --resolution 704x1280, --lora ./a.safetensors.") == 'device="cuda:1", resolution="704x1280", lora="./a.safetensors".'
    assert keyword_spelling("--guidance nan is impossible; --lora \"it's.safetensors\" too") == 'guidance=nan is impossible; lora="it\'s.safetensors" too'
    # (before: intrinsics="if" you know it, in the note on a default camera)
    assert keyword_spelling("none was estimated; --fov or --intrinsics if you know it") == "none was estimated; fov= or intrinsics= if you know it"
    kept = "path 'a --seed.png', `torchrun -m gen3c generate … --num_gpus N` and --output_folder"
    assert keyword_spelling(kept) == kept


def test_keyword_spelling_respells_nothing_it_wrote():
    """Spelled twice, a message reads as spelled once: a flag written right after another's
    ``name=`` (``--generator--dtype``) was taken for a flag on the second pass (``generator=dtype=``)."""
    from gen3c.pipelines.spelling import keyword_spelling, row_spelling

    for message in ("--generator--dtype", "pass --lora--no_mask_invalid_depth", "--seed 3 and --no_compile: pass --generator gen3c", "", "--", "é"):
        for spell in (keyword_spelling, row_spelling):
            assert spell(spell(message)) == spell(message), (spell.__name__, message)
    assert keyword_spelling("--generator--dtype") == "generator=--dtype"


def test_gen3c_generates_notes_name_its_keyword_arguments_and_its_record_the_rows_keys(box_scene, tmp_path):
    """gen3c.generate() warned its notes in gen3c generate's flags (``--chunk_frames 30``); they
    name its keyword arguments, as its refusals do. The run record, one format whichever surface
    ran it (a manifest row: gen3c batch runs it again), names the record's keys."""
    import json
    import warnings

    image_path, depth_path, _, _ = box_scene
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = gen3c.generate(image_path, depth=depth_path, fov=60, resolution="32x48", num_video_frames=5, chunk_frames=30, generator="preview",
                             video_save_folder=tmp_path, progress=False, save_buffer=False, save_point_cloud=False)  # fmt: skip
    said = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert said == ["chunk_frames=30: the run has only 5 frames; making them in one chunk"], said
    assert json.loads(out.paths["run"].read_text())["notes"] == ["chunk_frames 30: the run has only 5 frames; making them in one chunk"]


@pytest.mark.parametrize("given", ["a generator", "none"])
def test_a_preview_request_with_gen3c_options_is_refused_naming_them(box_scene, tmp_path, given):
    """run_request with the preview and gen3c generator options (as a GUI or a script builds one):
    one line naming them all and the fix, before anything is written. Before: run, options ignored."""
    from gen3c.pipelines.request import GenerationRequest, run_request

    image_path, depth_path, _, _ = box_scene
    options = {"lora": str(tmp_path / "adapter"), "num_steps": 4, "speed": "fast", "fp8": True, "guidance": None}
    request = GenerationRequest(input_image_path=str(image_path), depth_path=str(depth_path), fov=60, resolution="32x48",
                                num_video_frames=3, generator="preview", generator_options=options, video_save_folder=str(tmp_path / "out"))  # fmt: skip
    generator = PreviewGenerator() if given == "a generator" else None
    expected = '^lora, num_steps, speed, fp8 apply to generator="gen3c" only; drop them or pass generator="gen3c"$'
    with pytest.raises(Gen3cInputError, match=expected):  # guidance=None is unset: not named
        run_request(request, generator=generator)
    assert not (tmp_path / "out").exists()
    with pytest.raises(Gen3cInputError, match='^num_steps=, speed= apply to generator="gen3c" only'):  # gen3c.generate: its keywords
        gen3c.generate(image_path, depth=depth_path, fov=60, resolution="32x48", num_video_frames=3, generator="preview",
                       num_steps=4, speed="fast", lora=None, video_save_folder=tmp_path / "out", progress=False)  # fmt: skip


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"trajectory": "right"}, "--trajectory shapes a preset path, which --camera_file replaces: drop it"),
        ({"seed": 5}, "--seed applies to --generator gen3c only (the preview is deterministic): drop it"),
    ],
    ids=["preset_with_camera_file", "preview_seed"],
)
def test_run_request_refuses_a_setting_its_run_would_ignore(box_scene, tmp_path, change, expected):
    """A GenerationRequest built in Python and run with run_request (docs/inputs.md) is checked as
    gen3c generate's is. Before: the trajectory beside a camera file, the preview's seed, silently ignored."""
    from gen3c.io.camera_files import save_cameras
    from gen3c.pipelines.request import GenerationRequest, run_request
    from gen3c.scenes import source_camera

    image_path, depth_path, _, _ = box_scene
    save_cameras(tmp_path / "path.json", source_camera(32, 48))
    request = GenerationRequest(input_image_path=str(image_path), depth_path=str(depth_path), fov=60, resolution="32x48",
                                camera_file=str(tmp_path / "path.json"), video_save_folder=str(tmp_path / "out"), **change)  # fmt: skip
    with pytest.raises(Gen3cInputError) as caught:
        run_request(request)
    assert str(caught.value) == expected
    assert not (tmp_path / "out").exists()


def in_memory_forms(box_scene, *names: str):
    """The box scene's image and depth in each in-memory form ``generate`` takes (those ``names``,
    or all), as (image, depth). The PIL image is made only when asked for: Image.open reads the
    file when the pixels are first needed, and one never used leaves the file open."""
    image_path, depth_path, _, _ = box_scene
    rgb, depth = np.array(Image.open(image_path).convert("RGB")), np.load(depth_path)
    chw = torch.from_numpy(rgb).permute(2, 0, 1)
    forms = {
        "PIL": lambda: (Image.open(image_path), depth),
        "numpy": lambda: (rgb, depth.astype(np.float64)),
        "uint8 tensor": lambda: (chw, torch.from_numpy(depth)),
        "float tensor": lambda: (chw.float() / 127.5 - 1, torch.from_numpy(depth)),
    }
    return {name: make() for name, make in forms.items() if not names or name in names}


def test_an_image_in_memory_makes_what_its_png_makes(box_scene, tmp_path):
    """Before: "image is a Tensor, not a path: save it to a file first". Now each in-memory form
    runs the file's way: the same frames, cameras and notes; the record says what was in memory."""
    import hashlib
    import json

    image_path, depth_path, _, _ = box_scene
    common = {"fov": 60, "resolution": "32x48", "num_video_frames": 5, "trajectory": "right", "generator": "preview", "progress": False}
    files = gen3c.generate(image_path, depth=depth_path, video_save_folder=tmp_path / "file", **common)
    file_record = json.loads(files.paths["run"].read_text())
    for form, (image, depth) in in_memory_forms(box_scene).items():
        out = gen3c.generate(image, depth=depth, video_save_folder=tmp_path / form.replace(" ", "_"), **common)
        assert out.paths["video"].name == "output.mp4"
        assert torch.equal(out.result.frames, files.result.frames), form
        assert torch.equal(out.result.cameras.w2c, files.result.cameras.w2c)
        record = json.loads(out.paths["run"].read_text())
        assert record["input_image_path"] is None and record["depth_path"] is None
        assert record["notes"] == file_record["notes"] and record["inputs_sha256"] == {}
        memory = record["in_memory_inputs"]
        array = np.asarray(image) if form != "uint8 tensor" and form != "float tensor" else image.numpy()
        assert memory["input_image_path"]["shape"] == list(array.shape)
        assert memory["input_image_path"]["dtype"] == str(array.dtype)
        assert memory["input_image_path"]["sha256"] == hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
        assert memory["depth_path"]["shape"] == [96, 160]
    # without depth: estimated from the image in memory as from the file
    rgb = np.asarray(Image.open(image_path).convert("RGB"))
    kw = {**common, "depth_estimator": "prior"}
    estimated = gen3c.generate(rgb, video_save_folder=tmp_path / "est_memory", **kw)
    assert torch.equal(estimated.result.frames, gen3c.generate(image_path, video_save_folder=tmp_path / "est_file", **kw).result.frames)


def test_an_image_and_its_depth_mix_files_and_memory(box_scene, tmp_path):
    """Before: a path image with a depth in memory was refused ("pass the image in memory too").
    Either mix now runs the files' way; the record names only the in-memory one, the file keeps
    its absolute path and sha256."""
    import hashlib
    import json

    image_path, depth_path, _, _ = box_scene
    common = {"fov": 60, "resolution": "32x48", "num_video_frames": 5, "trajectory": "right", "generator": "preview", "progress": False}
    files = gen3c.generate(image_path, depth=depth_path, video_save_folder=tmp_path / "file", **common)
    rgb, depth_array = in_memory_forms(box_scene, "numpy")["numpy"]
    sha256 = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in (image_path, depth_path)}
    for image, depth, in_memory, on_disk, path in [
        (rgb, depth_path, "input_image_path", "depth_path", depth_path),
        (image_path, depth_array, "depth_path", "input_image_path", image_path),
    ]:
        mixed = gen3c.generate(image, depth=depth, video_save_folder=tmp_path / in_memory, **common)
        assert torch.equal(mixed.result.frames, files.result.frames), in_memory
        record = json.loads(mixed.paths["run"].read_text())
        assert record[in_memory] is None and record[on_disk] == str(path.resolve())
        assert list(record["in_memory_inputs"]) == [in_memory]
        assert record["inputs_sha256"] == {on_disk: sha256[path]}
        assert record["notes"] == json.loads(files.paths["run"].read_text())["notes"]
    assert mixed.paths["video"].name == "image.mp4"  # named after the image file, as the files' run


def test_a_depth_in_memory_beside_a_sample_directory_is_refused_as_a_depth_file_is(tmp_path):
    """A GEN3C sample directory carries its own depth: a depth in memory beside it would go
    unused, so it is refused as a depth file is (not run without it), named as the call's ``depth=``."""
    from layouts import scene, write_sample

    rgb, depth, _, w2c, K = scene(n=3, h=16, w=24)
    sample = write_sample(tmp_path / "batch_0000", rgb, depth, depth > 0, w2c, K)
    match = r"^depth= applies to a single image; this sample input carries its own depth and cameras: leave it out$"
    with pytest.raises(Gen3cInputError, match=match):
        gen3c.generate(sample, depth=depth[0], resolution="16x24", num_video_frames=3, generator="preview",
                       video_save_folder=tmp_path / "out")  # fmt: skip
    assert not (tmp_path / "out").exists()
    # A folder that is no sample (an image's folder given by mistake) is told so, not that it carries its own cameras.
    (tmp_path / "photos").mkdir()
    with pytest.raises(Gen3cInputError, match=r"^sample directory '.*photos' lacks rgb\.mp4, depth\.npz, mask\.npz, camera\.npz"):
        gen3c.generate(tmp_path / "photos", fov=60, resolution="16x24", num_video_frames=3, generator="preview",
                       video_save_folder=tmp_path / "out")  # fmt: skip


def test_an_image_in_memory_gets_the_size_limits_of_an_image_file(box_scene, tmp_path, monkeypatch):
    """Before: an image file under 8×8 or over the megapixel limit was refused, the same pixels in
    memory were not: a 4×6 array ran (stretched to the working size), and so did one over the limit."""
    import gen3c.io.images

    tiny = np.full((4, 6, 3), 128, np.uint8)
    Image.fromarray(tiny).save(tmp_path / "tiny.png")
    kw = {"fov": 60, "resolution": "32x48", "num_video_frames": 3, "generator": "preview", "depth_estimator": "prior"}
    with pytest.raises(Gen3cInputError, match=r"^input image '.*tiny.png' is only 6×4 pixels: pass an image of at least 8×8$"):
        gen3c.generate(tmp_path / "tiny.png", video_save_folder=tmp_path / "file", **kw)
    for form in (tiny, Image.fromarray(tiny), torch.from_numpy(tiny).permute(2, 0, 1).float() / 127.5 - 1):
        with pytest.raises(Gen3cInputError, match=r"^gen3c.generate\(\) image is only 6×4 pixels: pass an image of at least 8×8$"):
            gen3c.generate(form, video_save_folder=tmp_path / "memory", **kw)
    # the megapixel limit, lowered below the box scene's 160×96 so that the test stays small
    monkeypatch.setattr(gen3c.io.images, "MAX_IMAGE_PIXELS", 160 * 96 - 1)
    image_path = box_scene[0]
    with pytest.raises(Gen3cInputError, match=r"^input image '.*image.png' is 160×96 = 0 MP, above the 0 MP limit: downscale it first$"):
        gen3c.generate(image_path, video_save_folder=tmp_path / "file", **kw)
    with pytest.raises(Gen3cInputError, match=r"^gen3c.generate\(\) image is 160×96 = 0 MP, above the 0 MP limit: downscale it first$"):
        with Image.open(image_path) as opened:
            gen3c.generate(opened, video_save_folder=tmp_path / "memory", **kw)
    assert not any(tmp_path.glob("*/*.mp4"))



def test_a_huge_image_in_memory_is_refused_from_its_shape(tmp_path):
    """An image in memory over the 100 MP limit is refused from its shape (PIL: its size), as a
    file is from its header. Before: only after it was hashed for the run record and converted to
    float (~12 bytes a pixel); here a trillion-pixel view that takes no memory, whose copy this
    machine cannot hold (before: a RuntimeError / MemoryError from the allocator)."""
    import io
    import struct
    import warnings
    import zlib

    side = 1_000_000
    views = (
        torch.zeros(3, 1, 1).expand(3, side, side),
        torch.zeros(3, 1, 1, dtype=torch.uint8).expand(3, side, side),
        np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (side, side, 3)),
        np.broadcast_to(np.zeros((1, 1), np.float32), (side, side)),  # grey
    )
    one_line = rf"^gen3c.generate\(\) image is {side}×{side} = 1000000 MP, above the 100 MP limit: downscale it first$"
    kw = {"fov": 60, "resolution": "32x48", "num_video_frames": 3, "generator": "preview", "depth_estimator": "prior"}
    for view in views:
        with pytest.raises(Gen3cInputError, match=one_line):
            gen3c.generate(view, video_save_folder=tmp_path, **kw)
    with pytest.raises(Gen3cInputError, match=rf"^prepare_source image is {side}×{side} = 1000000 MP"):
        prepare_source(views[0], torch.ones(1, 1).expand(side, side), intrinsics_from_fov(60, side, side), SIZE)
    # A PIL image opened from a PNG whose header says 12000×9000 (108 MP) over 8×8 pixels of data:
    # refused from its size, not decoded (before: decoded, a raw OSError "image file is truncated").
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    data = bytearray(png.getvalue())
    data[16:24] = struct.pack(">II", 12000, 9000)  # the IHDR chunk's width and height, then its CRC
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # PIL's own, softer limit (89 MP)
        claimed = Image.open(io.BytesIO(bytes(data)))
    with pytest.raises(Gen3cInputError, match=r"^gen3c.generate\(\) image is 12000×9000 = 108 MP, above the 100 MP limit"):
        gen3c.generate(claimed, video_save_folder=tmp_path, **kw)
    assert not any(tmp_path.iterdir())

def test_a_truncated_image_in_memory_is_one_line(tmp_path):
    """A PIL image opened lazily from a file cut short decodes only when used: that was a raw
    OSError ("image file is truncated") out of gen3c.generate; now one line naming the image."""
    import io

    png = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(png, "PNG")
    cut = Image.open(io.BytesIO(png.getvalue()[: len(png.getvalue()) // 2]))
    kw = {"fov": 60, "resolution": "32x48", "num_video_frames": 3, "generator": "preview", "depth_estimator": "prior"}
    with pytest.raises(Gen3cInputError, match=r"^gen3c.generate\(\) image PIL image could not be decoded \(.*truncated.*\): pass a complete image$"):
        gen3c.generate(cut, video_save_folder=tmp_path, **kw)
    assert not any(tmp_path.iterdir())


def test_an_image_in_memory_is_read_as_its_file_upright_and_on_white(tmp_path):
    """Before: a PIL image in memory skipped what reading its file does: its EXIF orientation
    (a portrait phone photo came in sideways, refusing its upright depth) and the white under
    transparent pixels (their hidden colours showed, in an RGBA array too)."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (24, 40, 4), dtype=np.uint8)
    rgba[:, :20, 3] = 0  # left half transparent, over random colours
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: viewers rotate it 90° clockwise
    Image.fromarray(rgba).save(tmp_path / "turned.png", exif=exif)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.save(tmp_path / "upright.npy", np.linspace(2, 3, 40 * 24, dtype=np.float32).reshape(40, 24))  # upright: 40×24
    np.save(tmp_path / "flat.npy", np.full((24, 40), 2.5, np.float32))
    kw = {"fov": 60, "resolution": "32x48", "num_video_frames": 3, "generator": "preview", "progress": False}
    depth = tmp_path / "upright.npy"
    turned = gen3c.generate(tmp_path / "turned.png", depth=depth, video_save_folder=tmp_path / "a", **kw)
    memory = gen3c.generate(Image.open(tmp_path / "turned.png"), depth=depth, video_save_folder=tmp_path / "b", **kw)
    assert torch.equal(memory.result.frames, turned.result.frames)
    on_white = gen3c.generate(tmp_path / "rgba.png", depth=tmp_path / "flat.npy", video_save_folder=tmp_path / "c", **kw)
    for form in (Image.open(tmp_path / "rgba.png"), rgba):
        memory = gen3c.generate(form, depth=tmp_path / "flat.npy", video_save_folder=tmp_path / "d", **kw)
        assert torch.equal(memory.result.frames, on_white.result.frames), type(form)
    assert float(on_white.result.frames[0, :, :, :5].min()) == 1.0  # the transparent left edge: white


def test_a_depth_in_memory_is_read_as_the_same_npy(box_scene, tmp_path):
    """Before: a depth array of another size than the image was refused, where the same array
    saved as .npy is resized (nearest, same aspect ratio) with a note; and a (1, H, W) one too."""
    import warnings

    image_path, _, _, depth = box_scene
    half = depth[::2, ::2].numpy()[None]  # (1, 48, 80)
    np.save(tmp_path / "half.npy", half)
    kw = {"fov": 60, "resolution": "32x48", "num_video_frames": 3, "generator": "preview", "progress": False}
    with warnings.catch_warnings(record=True) as file_notes:
        warnings.simplefilter("always")
        from_file = gen3c.generate(image_path, depth=tmp_path / "half.npy", video_save_folder=tmp_path / "a", **kw)
    for form in (half, torch.from_numpy(half).to(torch.float16)):
        with warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("always")
            memory = gen3c.generate(image_path, depth=form, video_save_folder=tmp_path / "b", **kw)
        assert torch.equal(memory.result.frames, from_file.result.frames)
        said = [str(n.message) for n in notes if issubclass(n.category, UserWarning)]
        assert said == [str(n.message).replace(f"depth file {str(tmp_path / 'half.npy')!r}", "gen3c.generate() depth")
                        for n in file_notes if issubclass(n.category, UserWarning)]
        assert said == ["gen3c.generate() depth is 48×80 but the image is 96×160: resizing the depth (nearest)"]


def test_the_notes_of_a_quiet_call_are_silenced_by_a_filter_on_gen3c_as_docs_python_md_says(box_scene, tmp_path, capfd):
    """docs/python.md: with progress=False only gen3c's notes print, as UserWarnings that
    ``warnings.filterwarnings("ignore", category=UserWarning, module="gen3c")`` silences (each is
    said from gen3c's own modules, not the caller's line) and the run record lists."""
    import json
    import warnings

    image_path, _, _, depth = box_scene
    kw = {"fov": 60, "resolution": "32x48", "num_video_frames": 3, "generator": "preview", "progress": False}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="gen3c")
        out = gen3c.generate(image_path, depth=depth[::2, ::2].numpy(), video_save_folder=tmp_path, **kw)
    assert capfd.readouterr() == ("", "")
    notes = json.loads(out.paths["run"].read_text())["notes"]
    assert notes == ["gen3c.generate() depth is 48×80 but the image is 96×160: resizing the depth (nearest)"]


def test_a_quiet_preview_call_does_not_import_diffusers(box_scene, tmp_path):
    """gen3c.generate(generator="preview", progress=False) imported diffusers (only to turn its
    bars off; the preview never uses it): ~170 MB and ~3 s more than progress=True on the first
    call, and diffusers' import set TORCHINDUCTOR_CACHE_DIR in the script's environment."""
    import subprocess
    import sys
    from pathlib import Path

    from child_env import child_env

    image_path, _, _, depth = box_scene
    np.save(tmp_path / "depth.npy", depth.numpy())
    code = (
        "import os, sys, gen3c\n"
        f"gen3c.generate({str(image_path)!r}, depth={str(tmp_path / 'depth.npy')!r}, fov=60, resolution='32x48', num_video_frames=3, "
        f"generator='preview', progress=False, video_save_folder={str(tmp_path / 'out')!r})\n"
        "print('diffusers' in sys.modules, 'TORCHINDUCTOR_CACHE_DIR' in os.environ)\n"
    )
    env = child_env(Path(gen3c.__file__).parents[1])  # (this gen3c's)
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["False", "False"]
    assert (tmp_path / "out" / "output.mp4").is_file() or (tmp_path / "out" / f"{Path(image_path).stem}.mp4").is_file()


@pytest.mark.parametrize(
    ("image", "depth", "match"),
    [
        (np.zeros((3, 96, 160), np.uint8), None, r"gen3c.generate\(\) image array has shape \(3, 96, 160\).*transpose\(1, 2, 0\)"),
        (torch.zeros(96, 160, 3), None, r"gen3c.generate\(\) image has shape \(96, 160, 3\).*permute\(2, 0, 1\)"),
        (torch.full((3, 96, 160), 200.0), None, r"gen3c.generate\(\) image values span \[200, 200\], expected \[-1, 1\].*/ 127.5 - 1"),
        (np.full((96, 160, 3), 1.5), None, r"gen3c.generate\(\) image .*\[0, 1\]"),
        ("rgb", np.ones((48, 100)), r"gen3c.generate\(\) depth is 48×100 \(H×W\) but the image is 96×160: their aspect ratios differ"),
        ("rgb", np.ones((96, 160), bool), r"gen3c.generate\(\) depth holds bool values: depth must be a numeric array"),
        ("rgb", np.ones((96, 160), np.complex128), r"gen3c.generate\(\) depth holds complex128 values: pass real numbers \(its \.real, where"),
        ("rgb", "depth list", r"gen3c.generate\(\) depth is a dict of 0 items: pass a tensor or a numpy array"),
        ("rgb", np.ones((2, 96, 160)), r"gen3c.generate\(\) depth has shape \(2, 96, 160\): depth must be a 2-D \(H, W\) array"),
        ("rgb", np.full((96, 160), np.nan), r"gen3c.generate\(\) depth has no valid pixel"),
    ],
)
def test_bad_input_in_memory_is_one_line_naming_it(box_scene, tmp_path, image, depth, match):
    image_path = box_scene[0]
    image = {"rgb": np.asarray(Image.open(image_path).convert("RGB")), "path": image_path}.get(image, image) if isinstance(image, str) else image
    depth = {} if isinstance(depth, str) else depth
    with pytest.raises(Gen3cInputError, match=match) as info:
        gen3c.generate(image, depth=depth, fov=60, resolution="32x48", num_video_frames=3, generator="preview",
                       depth_estimator="prior" if depth is None else None, video_save_folder=tmp_path / "out")  # fmt: skip
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_a_setting_of_the_wrong_type_is_named_with_what_was_given_not_its_repr(tmp_path):
    """An array, tensor or list where a setting takes a string or a number is described by its
    type and shape (length), in one line. Before: a cut-off repr with its escaped newlines,
    "setting 'intrinsics' must be str, got ndarray '[[1. 0. 0.]\\n [0. 1. 0.]\\n [0. 0. 1.]]'"."""
    mistakes = [
        ({"intrinsics": np.ones((2, 3))}, r"gen3c.generate\(\): setting 'intrinsics' has shape \(2, 3\): pass one \(3, 3\) K in pixels of the input image, the four numbers \(fx, fy, cx, cy\), or the text 'fx,fy,cx,cy'$"),
        ({"seed": np.ones(3)}, r"setting 'seed' must be int, got a numpy array of shape \(3,\)$"),
        ({"trajectory": torch.ones(2, 3)}, r"setting 'trajectory' must be str, got a torch tensor of shape \(2, 3\)$"),
        ({"resolution": [32, 48, 3]}, r"setting 'resolution' is a list of 3 items: pass \(H, W\), two whole numbers, e.g. \(704, 1280\), or 'HxW'$"),
        ({"fov": torch.ones(3)}, r"setting 'fov' must be float, got a torch tensor of shape \(3,\)$"),
        ({"seed": 2.5}, r"setting 'seed' must be int, got float '2.5'$"),  # a number or string: its value, as before
    ]
    for setting, match in mistakes:
        with pytest.raises(Gen3cInputError, match=match) as info:
            gen3c.generate(tmp_path / "missing.png", **setting)  # refused before any input or model is read
        assert "\n" not in str(info.value) and "\\n" not in str(info.value)
    from gen3c.errors import describe_value

    assert describe_value(torch.float16) == "dtype 'torch.float16'"  # short, one line: its text
    assert describe_value(object()) == "an object" and describe_value(np.float32(0.5)) == "float32 '0.5'"


def test_torch_dtypes_and_devices_are_taken_as_their_names_and_recorded_as_them(box_scene, tmp_path, monkeypatch):
    """dtype=torch.float16 and device=torch.device("cpu") run as "float16" and "cpu" do, with the
    same run record (JSON). Before: "setting 'dtype' must be str, got dtype 'torch.float16'"."""
    import json

    from gen3c.pipelines import request as request_module

    image_path, depth_path, _, _ = box_scene
    taken = []
    monkeypatch.setattr(request_module, "run_request", lambda request, **kwargs: taken.append(request))
    common = {"depth": depth_path, "fov": 60, "resolution": "32x48", "video_save_folder": tmp_path, "generator": "gen3c", "model": "tiny"}
    gen3c.generate(image_path, dtype=torch.float16, device=torch.device("cpu"), **common)
    gen3c.generate(image_path, dtype="float16", device="cpu", **common)
    as_torch, as_text = taken
    assert as_torch.generator_options == {"model": "tiny", "dtype": "float16", "device": "cpu"}
    assert request_module.check_generator(as_torch) == request_module.check_generator(as_text)  # what the run checks first
    records = [json.dumps(request_module.run_record(request)) for request in taken]
    assert records[0] == records[1]
    for dtype in (torch.int8, torch.float64):
        with pytest.raises(Gen3cInputError, match=rf"^gen3c.generate\(\): setting 'dtype' is {dtype}: pass torch.bfloat16, torch.float16, torch.float32 or its name$"):
            gen3c.generate(image_path, dtype=dtype, **common)
    assert len(taken) == 2


def test_intrinsics_and_resolution_in_memory_forms_are_taken_as_their_text(box_scene, tmp_path, monkeypatch):
    """intrinsics= a (3, 3) K (tensor, array, nested list) or (fx, fy, cx, cy), and resolution=
    (H, W) as prepare_source takes it, run as "fx,fy,cx,cy" and "HxW" do, recorded as that text
    (a float32 K exactly). Before: "setting 'intrinsics' must be str, got a torch tensor of shape
    (3, 3)", "setting 'resolution' must be str, got a tuple of 2 items"."""
    import json

    from gen3c.pipelines import request as request_module

    image_path, depth_path, _, _ = box_scene
    taken = []
    monkeypatch.setattr(request_module, "run_request", lambda request, **kwargs: taken.append(request))
    K = intrinsics_from_fov(60, 32, 48)  # float32: fx = 41.56921… is no short decimal
    text = ",".join(repr(float(v)) for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2]))
    common = {"depth": depth_path, "video_save_folder": tmp_path, "generator": "preview"}
    for intrinsics in (K, K.numpy(), K.tolist(), [K[0, 0], K[1, 1], K[0, 2], K[1, 2]], text):
        gen3c.generate(image_path, intrinsics=intrinsics, resolution=(32, 48), **common)
    gen3c.generate(image_path, intrinsics=text, resolution="32x48", **common)
    assert {(r.intrinsics, r.resolution) for r in taken} == {(text, "32x48")}
    assert len({json.dumps(request_module.run_record(r)) for r in taken}) == 1
    assert torch.equal(parse_intrinsics_text(text), K)  # the text reads back as the K given
    # A K with float noise where its zeros are (a product through a rotation): its four numbers, not
    # "has skew (K[0, 1] = -8.95809e-14 …)".
    rotation = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0]
    noisy = K.double() @ rotation @ rotation.T
    assert noisy[0, 1] != 0 and noisy[1, 0] != 0
    gen3c.generate(image_path, intrinsics=noisy, resolution=(32, 48), **common)
    assert taken[-1].intrinsics == ",".join(repr(float(v)) for v in (noisy[0, 0], noisy[1, 1], noisy[0, 2], noisy[1, 2]))
    del taken[-1]
    skewed = K.clone()
    skewed[0, 1] = 0.5
    for bad, match in ((skewed, r"has skew \(K\[0, 1\] = 0.5, K\[1, 0\] = 0\): gen3c's cameras have none"),
                       (K.T, r"must have \[0, 0, 1\] as their last row: they have it as their last column"),
                       (K[None], r"has shape \(1, 3, 3\): pass one \(3, 3\) K")):  # fmt: skip
        with pytest.raises(Gen3cInputError, match=r"^gen3c.generate\(\): setting 'intrinsics' " + match):
            gen3c.generate(image_path, intrinsics=bad, **common)
    assert len(taken) == 6
    # Python's floats were made float32 first: (55.4, …) was recorded as '55.400001525878906,…'.
    gen3c.generate(image_path, intrinsics=(55.4, 55.4, 80, 48), **common)
    assert taken[-1].intrinsics == "55.4,55.4,80.0,48.0"


def test_settings_given_as_0_d_tensors_or_arrays_are_taken_as_their_numbers(box_scene, tmp_path, monkeypatch):
    """A setting that is a 0-d tensor or array (K[0, 0], np.median(...), torch.tensor(60.0)) was refused
    as "setting 'fov' must be float, got a torch tensor of shape ()", and resolution= as a tensor or
    array of two sides as "must be str", though numpy's numbers and an (H, W) tuple were taken."""
    from gen3c.pipelines import request as request_module

    image_path, depth_path, _, _ = box_scene
    taken = []
    monkeypatch.setattr(request_module, "run_request", lambda request, **kwargs: taken.append(request))
    common = {"depth": depth_path, "video_save_folder": tmp_path, "generator": "preview"}
    gen3c.generate(image_path, fov=60.0, num_video_frames=3, movement_distance=0.5, resolution=(32, 48), **common)
    gen3c.generate(image_path, fov=torch.tensor(60.0), num_video_frames=np.array(3), movement_distance=np.array(0.5),
                   resolution=torch.tensor([32, 48]), **common)  # fmt: skip
    gen3c.generate(image_path, fov=np.float64(60.0), num_video_frames=torch.tensor(3), movement_distance=torch.tensor(0.5, dtype=torch.float64),
                   resolution=np.array([32, 48]), **common)  # fmt: skip
    plain = [(r.fov, r.num_video_frames, r.movement_distance, r.resolution) for r in taken]
    assert plain == [(60.0, 3, 0.5, "32x48")] * 3 and all(type(r.num_video_frames) is int and type(r.fov) is float for r in taken)
    for bad, match in ((torch.tensor([60.0]), r"must be float, got a torch tensor of shape \(1,\)"), (torch.tensor(True), "must be float, got bool 'True'")):
        with pytest.raises(Gen3cInputError, match=r"^gen3c.generate\(\): setting 'fov' " + match):
            gen3c.generate(image_path, fov=bad, **common)


def parse_intrinsics_text(text: str) -> torch.Tensor:
    fx, fy, cx, cy = (float(v) for v in text.split(","))
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def test_a_dtype_name_no_model_runs_in_is_refused_before_the_model_loads(box_scene, tmp_path, monkeypatch):
    """dtype="int8" is one line naming the accepted names, from the options' check, as
    dtype=torch.int8 is. Before: the inputs were read and the 3D cache built, and only loading
    (resolve_dtype) refused it."""
    from gen3c.pipelines import loading

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(loading, "_load_generator", no_loading)
    image_path, depth_path, _, _ = box_scene
    common = {"depth": depth_path, "fov": 60, "resolution": "32x48", "video_save_folder": tmp_path, "generator": "gen3c", "model": "tiny"}
    for name in ("int8", "torch.float64", "half"):
        with pytest.raises(Gen3cInputError, match=rf"^dtype={name!r} is unknown: pass bfloat16, float16 or float32 \(or bf16, fp16, fp32\)$"):
            gen3c.generate(image_path, dtype=name, **common)
    for name in ("bf16", "torch.float16", "float32"):  # the names loading takes
        assert loading.check_generator_options({"model": "tiny", "dtype": name})["dtype"] == name
        assert loading.resolve_dtype(name) in (torch.bfloat16, torch.float16, torch.float32)


def test_a_torch_dtype_gen3c_does_not_run_in_is_refused_by_the_loaders(monkeypatch):
    """torch.float64 from Python is refused as "float64" is by the CLI and the settings, in one line
    naming the dtypes gen3c runs in, before any weights load or are fetched. Before: resolve_dtype
    passed any torch dtype through, and the tiny model loaded in float64."""
    from gen3c import Gen3cPipeline
    from gen3c.models import weights
    from gen3c.pipelines import loading

    def no_fetching(*args, **kwargs):
        raise AssertionError("GEN3C's weights were fetched")

    monkeypatch.setattr(weights, "prepare_weights", no_fetching)
    message = r"^dtype 'torch.float64' is not one gen3c runs in: pass bfloat16, float16 or float32 \(or bf16, fp16, fp32\), as a name or a torch dtype$"
    with pytest.raises(Gen3cInputError, match=message):
        Gen3cPipeline.from_pretrained("tiny", torch_dtype=torch.float64)
    with pytest.raises(Gen3cInputError, match=message):
        loading.load_pipeline("tiny", dtype=torch.float64)
    with pytest.raises(Gen3cInputError, match=message):
        Gen3cPipeline.from_pretrained(dtype=torch.float64)
    with pytest.raises(Gen3cInputError, match=r"^dtype 'torch.int8' is not one gen3c runs in: "):
        loading.resolve_dtype(torch.int8)
    assert [loading.resolve_dtype(d) for d in (torch.float16, "bf16", "torch.float32")] == [torch.float16, torch.bfloat16, torch.float32]


def test_generate_twice_in_one_process_is_quiet_and_takes_numpy_numbers(box_scene, tmp_path, capfd):
    image_path, depth_path, _, _ = box_scene
    common = {"depth": depth_path, "resolution": "32x48", "video_save_folder": tmp_path, "generator": "preview", "progress": False}
    # numpy numbers, as a notebook computes them (before: "must be int, got int64").
    first = gen3c.generate(image_path, num_video_frames=np.int64(5), fov=np.float32(60.0), video_save_name="a", **common)
    second = gen3c.generate(image_path, num_video_frames=5, fov=60.0, video_save_name="b", **common)
    assert first.result.frames.shape == (5, 3, *SIZE)
    assert torch.equal(first.result.frames, second.result.frames)
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == ["a.mp4", "b.mp4"]
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_results_print_as_a_line_with_their_shapes(scene, tmp_path):
    """A notebook cell ending in a result shows what it holds, not every pixel. Before: the
    dataclasses' own reprs printed every tensor (RunOutput: over 100 kB for 5 frames of 32×48)."""
    import doctest

    import gen3c.summary
    from gen3c.depth import load_depth_estimator

    source = prepare_source(*scene, SIZE)
    cameras = preset_cameras(source, "left", "center_facing", num_frames=5)
    cache = build_cache([source])
    result = generate_video(cache, cameras, PreviewGenerator(), source.image)
    from gen3c.pipelines.request import RunOutput

    out = RunOutput(result, {"video": tmp_path / "a.mp4"}, 1.5)
    estimate = load_depth_estimator("prior").estimate((source.image + 1) / 2)
    for value, expected in [
        (source, "SourceView(image=tensor(3, 32, 48; float32), depth=tensor(32, 48; float32), K=tensor(3, 3; float32), "
                 "w2c=tensor(4, 4; float32), valid=tensor(32, 48; bool), depth_kind='metric', reference_depth=None)"),
        (result.buffers, "BufferRenders(colors=tensor(5, 1, 3, 32, 48; float32), masks=tensor(5, 1, 1, 32, 48; float32), "
                         "depths=tensor(5, 1, 1, 32, 48; float32), views=(0,))"),
        (out, f"RunOutput(result=VideoResult(frames=tensor(5, 3, 32, 48; float32), buffers={result.buffers!r}, "
              f"cameras=Cameras(N=5, height=32, width=48, device=cpu), num_frames=5, chunks=[(0, 5)], last_frame=tensor(3, 32, 48; float32)), "
              f"paths={{'video': {tmp_path / 'a.mp4'!r}}}, seconds=1.5, generator_settings=None)"),
        (cache.views[0], "CacheView(points=tensor(1, 32, 48, 3; float32), colors=tensor(1, 32, 48, 3; float32), valid=tensor(1, 32, 48; bool), "
                         "edge=tensor(1, 32, 48; bool), w2c=tensor(1, 4, 4; float32), K=tensor(1, 3, 3; float32), filtered=tensor(1, 32, 48; bool))"),
        (estimate, "DepthEstimate(depth=tensor(32, 48; float32), intrinsics=tensor(3, 3; float32), mask=tensor(32, 48; bool), kind='relative', "
                   "source='prior', intrinsics_from='default')"),
    ]:  # fmt: skip
        assert repr(value) == expected
    assert doctest.testmod(gen3c.summary).failed == 0


def test_the_other_public_results_print_as_a_line_with_their_shapes(scene):
    """Before: forward_warp's WarpResult, a camera file's KeyframePath, a multi-view FrameStack, a
    scene render, a depth export's record and the benchmark's camera errors and ground truth
    printed every number of their tensors (WarpResult of one 5×5 view: 25 lines)."""
    from gen3c.cache import forward_warp
    from gen3c.cameras import make_intrinsics
    from gen3c.depth.user import DepthRecord
    from gen3c.evaluation.metrics import CameraErrors
    from gen3c.evaluation.suite import GroundTruth
    from gen3c.io.frames import FrameStack
    from gen3c.scenes import SceneRender
    from gen3c.trajectories import KeyframePath

    K = make_intrinsics(10.0, 10.0, 2.0, 2.0)
    source = prepare_source(*scene, SIZE)
    cameras = preset_cameras(source, "left", "center_facing", num_frames=2)
    two = torch.ones(2, 4, 6)
    for value, expected in [
        (forward_warp(torch.tensor([[0.0, 0.0, 2.0]]), torch.ones(1, 3), torch.eye(4)[None], K[None], 5, 5),
         "WarpResult(color=tensor(1, 3, 5, 5; float32), mask=tensor(1, 1, 5, 5; float32), depth=tensor(1, 1, 5, 5; float32))"),
        (KeyframePath(torch.eye(4)[None].repeat(2, 1, 1), [0.0, 1.0], 0.5, 25, 24.0),
         "KeyframePath(w2c=tensor(2, 4, 4; float64), times=tensor(2; float64), smoothness=0.5, num_frames=25, fps=24.0)"),
        (FrameStack(torch.zeros(2, 3, 4, 6, dtype=torch.uint8), two, two.bool(), torch.eye(4).repeat(2, 1, 1), K.repeat(2, 1, 1), fps=24.0),
         "FrameStack(images=tensor(2, 3, 4, 6; uint8), depth=tensor(2, 4, 6; float32), valid=tensor(2, 4, 6; bool), w2c=tensor(2, 4, 4; float32), "
         "K=tensor(2, 3, 3; float32), fps=24.0, frame_indices=[0, 1], depth_kind='metric', instance_ids=None)"),
        (SceneRender(torch.zeros(2, 3, 4, 6), two, two.bool(), two.long()),
         "SceneRender(rgb=tensor(2, 3, 4, 6; float32), depth=tensor(2, 4, 6; float32), mask=tensor(2, 4, 6; bool))"),
        (DepthRecord("metric", K, (4, 6), "user", None),
         "DepthRecord(kind='metric', intrinsics=tensor(3, 3; float32), size=(4, 6), source='user', path=None, mask=None, intrinsics_from='model')"),
        (CameraErrors(torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.zeros(3, dtype=torch.bool), 10),
         "CameraErrors(rotation=tensor(3; float32), translation=tensor(3; float32), center=tensor(3; float32), failed=tensor(3; bool), points=10)"),
        (GroundTruth(None, source, cameras, torch.zeros(2, 3, *SIZE), torch.ones(2, *SIZE), torch.ones(2, *SIZE).bool(), torch.ones(2, *SIZE).bool(), 3.0),
         f"GroundTruth(case=None, source={source!r}, cameras=Cameras(N=2, height=32, width=48, device=cpu), rgb=tensor(2, 3, 32, 48; float32), "
         "depth=tensor(2, 32, 48; float32), seen=tensor(2, 32, 48; bool), reliable=tensor(2, 32, 48; bool), median_depth=3.0)"),
    ]:  # fmt: skip
        assert repr(value) == expected


def test_the_depth_estimator_and_the_run_plan_print_as_a_line_of_their_settings(scene):
    """``load_depth_estimator("prior")`` and ``result.plan`` (whose ``point_cloud()`` docs/python.md
    shows) printed as "<gen3c.depth.prior.GeometricPriorEstimator object at 0x7f…>" in a notebook."""
    from gen3c.depth import load_depth_estimator
    from gen3c.io.frames import FrameStack
    from gen3c.pipelines.autoregressive import FixedCache, VideoCache

    source = prepare_source(*scene, SIZE)
    cache = build_cache([source])
    result = generate_video(cache, preset_cameras(source, "left", "center_facing", num_frames=3), PreviewGenerator(), source.image)
    two = torch.ones(2, 4, 6)
    frames = FrameStack(torch.zeros(2, 3, 4, 6, dtype=torch.uint8), two, two.bool(), torch.eye(4).repeat(2, 1, 1), torch.eye(3).repeat(2, 1, 1))
    for value, expected in [
        (load_depth_estimator("prior"), "GeometricPriorEstimator(near=0.5, far=1.0)"),
        (result.plan, f"GrowingCache(cache={result.plan.cache!r}, depth_estimator=None, align_steps=100)"),
        (FixedCache(cache), f"FixedCache(cache={cache!r})"),
        (VideoCache(frames), f"VideoCache(frames={frames!r}, filter_points_threshold=0.05, foreground_masking=False, splat='bilinear')"),
    ]:  # fmt: skip
        assert repr(value) == expected
    assert repr(result.plan.cache).startswith("Cache3D(views=[1×32×48]")


def test_short_repr_shows_arrays_at_any_depth_by_shape_and_a_tuple_of_one_as_a_tuple():
    """Before: a list of lists (or of dicts) of tensors printed every number, as it was only
    looked into one level deep; a tuple of one tensor printed as "(tensor(…))", no tuple."""
    from gen3c.summary import short_repr

    t = torch.zeros(2)
    assert short_repr((t,)) == "(tensor(2; float32),)"
    assert short_repr([[t, 1], [np.zeros((2, 3), np.uint8)]]) == "[[tensor(2; float32), 1], [array(2, 3; uint8)]]"
    assert short_repr([{"a": t}]) == "[{'a': tensor(2; float32)}]"
    assert short_repr([(0, 5)]) == "[(0, 5)]" and short_repr((0,)) == "(0,)"  # without arrays: the repr


@pytest.mark.slow
def test_generate_with_the_small_model_is_seeded_and_silenced_by_progress_false(box_scene, tmp_path, capfd):
    from gen3c.pipelines.request import GENERATE_POOL

    image_path, depth_path, _, _ = box_scene
    common = {"depth": depth_path, "fov": 60, "resolution": "32x48", "video_save_folder": tmp_path, "model": "tiny", "num_steps": 2}
    GENERATE_POOL.clear()
    loads = GENERATE_POOL.loads
    a = gen3c.generate(image_path, seed=5, video_save_name="a", progress=False, **common)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # before: diffusers' loading bar and the sampler's bar, no way to turn them off
    b = gen3c.generate(image_path, seed=5, video_save_name="b", **common)
    out, err = capfd.readouterr()  # by default the command's bars on stderr; the model was loaded already
    assert out == "" and "Generating (gen3c)" in err and "Loading gen3c model" not in err
    c = gen3c.generate(image_path, seed=6, video_save_name="c", progress=False, keep_loaded=False, **common)
    # One load for the three calls (before: one per call, minutes each for GEN3C-7B); the model
    # takes each call's seed; keep_loaded=False let it go.
    assert GENERATE_POOL.loads == loads + 1 and GENERATE_POOL._generator is None
    assert a.result.frames.shape == (17, 3, *SIZE)
    assert torch.equal(a.result.frames, b.result.frames)
    assert (a.result.frames - c.result.frames).abs().max() > 1e-3


@pytest.mark.slow
def test_an_image_in_memory_makes_what_its_png_makes_with_the_small_model(box_scene, tmp_path):
    image_path, depth_path, _, _ = box_scene
    common = {"fov": 60, "resolution": "32x48", "model": "tiny", "num_steps": 2, "progress": False}
    files = gen3c.generate(image_path, depth=depth_path, video_save_folder=tmp_path / "file", **common)
    image, depth = in_memory_forms(box_scene, "PIL")["PIL"]
    memory = gen3c.generate(image, depth=depth, video_save_folder=tmp_path / "memory", **common)
    assert memory.result.frames.shape == (17, 3, *SIZE)
    assert torch.equal(memory.result.frames, files.result.frames)


def test_cameras_from_float64_arrays_make_the_same_video(scene):
    """A path built in numpy (float64, as np.eye makes it) renders and generates as the same
    path in float32 does. Before: the preview generator stopped with torch's "expected m1 and
    m2 to have the same dtype" in its first chunk."""
    from gen3c.cameras import Cameras

    source = prepare_source(*scene, SIZE)
    cameras = preset_cameras(source, "right", "center_facing", num_frames=5)
    from_numpy = Cameras(cameras.w2c.double().numpy(), cameras.K.double().numpy(), *SIZE)
    videos = [generate_video(build_cache([source]), c, PreviewGenerator(), source.image).frames for c in (cameras, from_numpy)]
    assert torch.equal(videos[0], videos[1])


def test_output_and_source_mistakes_are_input_errors(scene, tmp_path):
    # Before: ValueError (save_outputs), AttributeError (save_cameras of a tuple), and a depth_kind
    # typo taken as "metric" without a word.
    from gen3c.io.camera_files import save_cameras

    source = prepare_source(*scene, SIZE)
    cameras = preset_cameras(source, "left", "center_facing", num_frames=3)
    result = generate_video(build_cache([source]), cameras, PreviewGenerator(), source.image)
    with pytest.raises(Gen3cInputError, match="save_outputs' cache is a tuple of 2 items: pass a gen3c.cache.Cache3D"):
        save_outputs(result, tmp_path, "clip", cache=result.plan.point_cloud(), save_point_cloud=True)
    with pytest.raises(Gen3cInputError, match=r"takes the VideoResult of generate_video, got a torch tensor of shape \(3, 3, 32, 48\)$"):
        save_outputs(result.frames, tmp_path, "clip")
    with pytest.raises(Gen3cInputError, match="cameras is a tuple of 2 items: pass gen3c.cameras.Cameras"):
        save_cameras(tmp_path / "c.json", (cameras.w2c, cameras.K))
    assert not any(tmp_path.iterdir())
    with pytest.raises(Gen3cInputError, match=r"preset_cameras takes the SourceView of prepare_source, got a torch tensor of shape \(3, 32, 48\)$"):
        preset_cameras(source.image, "left", "center_facing", num_frames=3)  # before: AttributeError
    with pytest.raises(Gen3cInputError, match="depth_kind 'relativ' is unknown: pass one of metric, relative"):
        prepare_source(*scene, SIZE, depth_kind="relativ")
    assert prepare_source(*scene, (np.int64(32), np.int64(48))).size == SIZE  # numpy sizes, as numpy gives them


def test_a_chunked_run_saves_the_point_cloud_the_command_writes(box_scene, tmp_path):
    """save_outputs writes the cache the run rendered from, as the run left it: after a chunked
    run, the source and the generated frames it took, as --save_point_cloud writes. Before: the
    run grew a copy of the caller's cache, and save_outputs(cache=cache) wrote the source alone."""
    from gen3c.io.ply import read_ply

    image_path, depth_path, _, _ = box_scene
    run = dict(resolution="32x48", num_video_frames=17, chunk_frames=9, trajectory="right", generator="preview", progress=False)
    cli = gen3c.generate(image_path, depth=depth_path, fov=60, save_point_cloud=True, video_save_folder=tmp_path / "cli", **run)
    source = prepare_source(Image.open(image_path), np.load(depth_path), intrinsics_from_fov(60, 96, 160), SIZE)
    cameras = preset_cameras(source, "right", "center_facing", num_frames=17)
    cache = build_cache([source])
    result = generate_video(cache, cameras, PreviewGenerator(), source.image, chunk_frames=9)
    api = save_outputs(result, tmp_path / "api", "image", save_point_cloud=True)
    points, colors = read_ply(api["point_cloud"])
    expected, expected_colors = read_ply(cli.paths["point_cloud"])
    assert len(points) > len(cache.point_cloud()[0])  # the generated frame joined the source's points
    assert torch.equal(points, expected) and torch.equal(colors, expected_colors)
    # cache= names another cache to write, as it is: the caller's stays as built, the source alone
    alone = save_outputs(result, tmp_path / "alone", "image", cache=cache, save_point_cloud=True)
    assert torch.equal(read_ply(alone["point_cloud"])[0], cache.point_cloud()[0])
    with pytest.raises(Gen3cInputError, match="cache= names the point cloud to write: pass save_point_cloud=True"):
        save_outputs(result, tmp_path / "none", "image", cache=cache)


#: A sweep over sampling-only settings, last back to the model's own (tiny_fast: 5 steps, guidance 0).
SAMPLING_SWEEP = (
    {"num_steps": 2, "guidance": 1.0},
    {"num_steps": 3, "guidance": 2.0, "sampler": "dpmpp_2m", "guidance_every": 2},
    {"num_steps": 3, "step_cache": "fbc"},
    {},
)


@pytest.mark.slow
def test_a_sweep_over_sampling_settings_loads_once_and_makes_what_fresh_loads_make(box_scene, tmp_path):
    """num_steps, guidance, sampler, guidance_every and step_cache change on the loaded model,
    through gen3c.generate and a batch manifest alike (before: each change reloaded the whole
    model); every video equals a fresh load's with those settings, and NAME_run.json records the
    call's own settings."""
    import json

    from gen3c.batch import load_manifest
    from gen3c.batch.jobs import run_job
    from gen3c.io.video import read_video
    from gen3c.pipelines.request import GENERATE_POOL, GenerationRequest, GeneratorPool, run_request

    image_path, depth_path, _, _ = box_scene
    common = {"fov": 60, "resolution": "32x48", "model": "tiny_fast"}
    GENERATE_POOL.clear()
    loads = GENERATE_POOL.loads
    swept = [gen3c.generate(image_path, depth=depth_path, video_save_folder=tmp_path / "swept", video_save_name=f"v{i}",
                            progress=False, **common, **options) for i, options in enumerate(SAMPLING_SWEEP)]  # fmt: skip
    assert GENERATE_POOL.loads == loads + 1
    GENERATE_POOL.clear()
    expected = [(2, 1.0, "euler", 1, "none"), (3, 2.0, "dpmpp_2m", 2, "none"), (3, 0.0, "euler", 1, "fbc"), (5, 0.0, "euler", 1, "none")]
    for i, (options, out, want) in enumerate(zip(SAMPLING_SWEEP, swept, expected, strict=True)):
        request = GenerationRequest(
            input_image_path=str(image_path), depth_path=str(depth_path), fov=60, resolution="32x48", generator="gen3c",
            video_save_folder=str(tmp_path / "fresh"), video_save_name=f"v{i}", generator_options={"model": "tiny_fast", **options},
        )  # fmt: skip
        fresh = run_request(request, generators=GeneratorPool())
        assert torch.equal(out.result.frames, fresh.result.frames), options
        recorded = json.loads(out.paths["run"].read_text())["generator_settings"]
        got = tuple(recorded[k] for k in ("num_steps", "guidance", "sampler", "guidance_every", "step_cache"))
        assert got[:4] == want[:4] and got[4].startswith(want[4]) and recorded == fresh.generator_settings, options
    rows = [{"name": f"v{i}", "input_image_path": str(image_path), "depth_path": str(depth_path), "generator": "gen3c", **common, **options}
            for i, options in enumerate(SAMPLING_SWEEP)]  # fmt: skip
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    pool = GeneratorPool()
    (tmp_path / "batch").mkdir()
    outcomes = [run_job(job, tmp_path / "batch", pool) for job in load_manifest(tmp_path / "m.jsonl")]
    assert [o.state for o in outcomes] == ["done"] * len(rows) and pool.loads == 1
    for i in range(len(rows)):
        assert np.array_equal(read_video(tmp_path / "batch" / f"v{i}.mp4")[0], read_video(tmp_path / "fresh" / f"v{i}.mp4")[0])


def npy_data(array: np.ndarray) -> bytes:
    """The data of ``array`` saved as ``.npy`` in C order: what a run record's sha256 of an array in memory hashes."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array))
    return buffer.getvalue()[len(buffer.getvalue()) - array.nbytes :]


@pytest.mark.parametrize(
    "value, as_numpy",
    [
        (np.arange(24, dtype=np.float32).reshape(4, 6), None),
        (np.asfortranarray(np.arange(24, dtype=">f8").reshape(4, 6)), None),  # another order, another byte order
        (np.arange(48, dtype=np.uint8).reshape(4, 4, 3)[:, ::2], None),  # a strided view
        (torch.arange(24, dtype=torch.float32).reshape(4, 6).T, lambda t: t.numpy()),  # not contiguous
        (torch.arange(6, dtype=torch.bfloat16), lambda t: t.view(torch.int16).numpy()),  # no numpy dtype: its bits
        (torch.tensor(True), lambda t: t.numpy()),
    ],
)
def test_in_memory_digests_are_those_of_the_npy_data(value, as_numpy):
    """The digest a run record keeps for an array in memory is the sha256 of its bytes in C order
    (those of a ``.npy`` of it, after the header), as records written before this change keep."""
    import hashlib

    from gen3c.pipelines.request import describe_array

    array = value if as_numpy is None else as_numpy(value)
    described = describe_array(value)
    assert described["sha256"] == hashlib.sha256(npy_data(array)).hexdigest()
    assert described["shape"] == list(value.shape)


@pytest.mark.parametrize("make", [lambda: np.ones((1024, 2048), np.float32), lambda: torch.ones(1024, 2048)])
def test_hashing_an_input_in_memory_does_not_copy_it(make):
    """An 8 MB contiguous input is hashed in place. Before: ``.tobytes()`` made an 8 MB copy."""
    import tracemalloc

    from gen3c.pipelines.request import describe_array

    value = make()
    tracemalloc.start()
    try:
        describe_array(value)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak


def test_odd_tensors_and_a_huge_depth_in_memory_are_one_line_or_their_values(tmp_path):
    """Before: a depth in memory over the image limit was converted (and hashed) first: a broadcast
    trillion-pixel view raised numpy's MemoryError, a real 400 MP one took a minute before its
    aspect ratio was refused; a sparse, quantized, meta or complex32 tensor raised torch's
    TypeError / RuntimeError, and a tensor with a lazy negation (x.conj().imag) a RuntimeError
    though its values are plain numbers."""
    import json
    import time

    from gen3c.io.depth import depth_map

    side = 1_000_000
    kw = {"fov": 60, "resolution": "32x48", "num_video_frames": 3, "generator": "preview", "video_save_folder": tmp_path}
    image = np.full((32, 48, 3), 128, np.uint8)
    # A first call imports what a run needs (1.5-1.8 s on this project's 2-core box, idle or at load
    # 7, against the bound of 5 s): refused before the huge depths, so that only their refusals are timed.
    with pytest.raises(Gen3cInputError, match=r"^gen3c.generate\(\) depth has shape \(2, 3, 4, 5\): "):
        gen3c.generate(image, depth=np.ones((2, 3, 4, 5)), **kw)
    started = time.monotonic()
    for huge in (torch.ones(1, 1).expand(side, side), np.broadcast_to(np.ones((1, 1, 1), np.float16), (1, side, side))):
        with pytest.raises(Gen3cInputError, match=rf"^gen3c.generate\(\) depth is {side}×{side} = 1000000 MP, above the 100 MP limit: downscale it first$"):
            gen3c.generate(image, depth=huge, **kw)
    assert time.monotonic() - started < 5
    depth = torch.linspace(1, 2, 32 * 48).reshape(32, 48)
    grey = torch.zeros(3, 32, 48)
    odd = {  # depth, image, what is said of them
        "sparse": (depth.to_sparse(), grey.to_sparse(), r"is a sparse_coo tensor: pass tensor.to_dense\(\)$"),
        "quantized": (torch.quantize_per_tensor(depth, 0.01, 0, torch.quint8), torch.quantize_per_tensor(grey, 0.01, 0, torch.quint8),
                      r"is a quantized tensor: pass tensor.dequantize\(\)$"),
        "meta": (depth.to("meta"), grey.to("meta"), r"is a meta tensor, which holds no values: pass one on the CPU or a GPU$"),
        "complex32": (depth.to(torch.complex32), None, r"holds complex32 values: pass real numbers \(its \.real, where the imaginary part is 0\)$"),
    }  # fmt: skip
    for depth_tensor, image_tensor, match in odd.values():
        with pytest.raises(Gen3cInputError, match=rf"^d {match}"):
            depth_map(depth_tensor, "d")
        if image_tensor is not None:  # an image's tensor is read the same way
            with pytest.raises(Gen3cInputError, match=rf"^gen3c.generate\(\) image {match}"):
                gen3c.generate(image_tensor, **kw)
    lazy = torch.complex(torch.zeros_like(depth), -depth).conj().imag  # depth's values, negated lazily
    assert lazy.is_neg() and torch.equal(lazy, depth) and torch.equal(depth_map(lazy, "d"), depth)
    ran = gen3c.generate(image, depth=depth, **{**kw, "video_save_name": "plain"})
    lazy_run = gen3c.generate(image, depth=lazy, **{**kw, "video_save_name": "lazy"})
    assert torch.equal(ran.result.frames, lazy_run.result.frames)
    records = [json.loads(out.paths["run"].read_text())["in_memory_inputs"]["depth_path"] for out in (ran, lazy_run)]
    assert records[0] == records[1]


@pytest.mark.slow
def test_a_step_cache_on_a_compiled_dit_takes_no_reload(box_scene, tmp_path, monkeypatch):
    """On a GPU the DiT's blocks are compiled as one graph each, which a step cache's hooks would
    break. Turning a step cache on and off between calls recompiles the blocks in place (before:
    each switch on reloaded the whole model, so a sweep over step caches on a GPU loaded it again
    and again); the cached video equals an uncompiled fresh load's, the uncached one is the same
    before and after. Dynamo's eager backend stands in for inductor: the graph-break rules are
    dynamo's, the same under any backend. TaylorSeer: its hooks break the graph as First Block
    Cache's do (a fullgraph compile refuses both), in half of FBC's tracing time."""
    from gen3c.pipelines.request import GENERATE_POOL

    compile_module = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **kw: compile_module(self, *a, **{**kw, "backend": "eager"}))
    image_path, depth_path, _, _ = box_scene
    common = {"fov": 60, "resolution": "32x48", "model": "tiny_fast", "num_steps": 5, "progress": False}
    sweep = ("none", "taylorseer:2", "none")  # after its 3 warm-up steps, step 4 is predicted
    GENERATE_POOL.clear()
    loads = GENERATE_POOL.loads
    compiled = [gen3c.generate(image_path, depth=depth_path, video_save_folder=tmp_path / "c", video_save_name=f"v{i}",
                               compile=True, step_cache=cache, **common).result.frames for i, cache in enumerate(sweep)]  # fmt: skip
    assert GENERATE_POOL.loads == loads + 1
    GENERATE_POOL.clear()
    eager = gen3c.generate(image_path, depth=depth_path, video_save_folder=tmp_path / "e", compile=False, step_cache=sweep[1], **common)
    GENERATE_POOL.clear()
    assert not torch.equal(compiled[0], compiled[1])  # the step cache skipped work
    assert torch.equal(compiled[1], eager.result.frames)
    assert torch.equal(compiled[2], compiled[0])  # its hooks are gone


def test_a_masked_depth_in_memory_is_invalid_where_masked_and_a_masked_image_is_refused(tmp_path):
    """Before: a numpy masked array's mask was dropped (np.asarray), its masked pixels' raw values
    taken as depth; a masked image's masked pixels taken as colours."""
    from gen3c.io.depth import FAR_DEPTH, depth_map
    from gen3c.io.images import image_to_uint8
    from gen3c.pipelines.request import describe_array

    kw = {"fov": 60, "resolution": "32x48", "num_video_frames": 3, "generator": "preview", "video_save_folder": tmp_path}
    image = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    depth = np.linspace(1, 2, 32 * 48).reshape(32, 48)
    hidden = np.zeros((32, 48), bool)
    hidden[:8, :12] = True
    for dtype in (np.float64, np.float16, np.uint16):  # integers: NaN needs a float copy
        raw = np.where(hidden, 5, depth * 100 if dtype == np.uint16 else depth).astype(dtype)
        taken = depth_map(np.ma.masked_array(raw, hidden), "d")
        assert taken.dtype == torch.float32 and bool(torch.isnan(taken[:8, :12]).all())
        assert torch.equal(taken[~torch.from_numpy(hidden)], torch.from_numpy(raw[~hidden].astype(np.float32)))
    masked = np.ma.masked_array(np.where(hidden, 5.0, depth), hidden)
    as_nan = np.where(hidden, np.nan, depth)
    for mask_invalid in (False, True):  # the same as NaN depth, placed far away or left out
        runs = [gen3c.generate(image, depth=d, mask_invalid_depth=mask_invalid, video_save_name=f"{i}{mask_invalid}", **kw)
                for i, d in enumerate((masked, as_nan))]  # fmt: skip
        assert torch.equal(runs[0].result.frames, runs[1].result.frames)
    # prepare_source, the other road in: masked pixels sit far away, as NaN does
    K = intrinsics_from_fov(60, 32, 48)
    source = prepare_source(image, masked, K, (32, 48))
    assert bool((source.depth[:8, :12] == FAR_DEPTH).all()) and torch.allclose(source.depth[8:], torch.from_numpy(depth[8:]).float())
    # the run record tells two masks apart
    other = np.ma.masked_array(masked.data, np.roll(hidden, 1))
    assert describe_array(masked)["sha256"] != describe_array(other)["sha256"]
    # a masked image: refused while any pixel is masked, its data taken when none is
    with pytest.raises(Gen3cInputError, match=r"^gen3c.generate\(\) image is a masked array with 288 masked values: .* pass image.filled"):
        gen3c.generate(np.ma.masked_array(image, np.repeat(hidden[..., None], 3, -1)), depth=depth, **kw)
    assert np.array_equal(image_to_uint8(np.ma.masked_array(image, False)), image)


def test_odd_image_dtypes_and_pil_modes_in_memory_are_their_colours_or_one_line(tmp_path):
    """Before: a bool array was refused though a bool tensor was taken (0/255); a complex tensor
    was said to span [0, 255] (and one in [0, 1] taken, its imaginary part dropped); an integer
    tensor of 0/1 was taken as black/white and one of 0–255 said to be out of [0, 1]; a float8
    tensor raised torch's NotImplementedError; a 16-bit PIL image (I;16, a 16-bit PNG file too) and
    a 32-bit one (I) came out white (PIL clips at 255), a float one (F) in [0, 1] black."""
    from gen3c.io.images import image_to_uint8, load_image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    grey = rgb[..., 0]
    bw = rgb > 127
    for form in (bw, torch.from_numpy(bw).permute(2, 0, 1)):  # black and white, as PIL's mode 1
        assert np.array_equal(image_to_uint8(form), bw.astype(np.uint8) * 255)
    complex_ones = [np.ones((32, 48, 3), np.complex64), torch.ones(3, 32, 48, dtype=torch.complex64) / 2]
    for form in complex_ones:  # as depth says it (before: "an image must be a numeric array", which complex is)
        with pytest.raises(Gen3cInputError, match=r"^img holds complex64 values: pass real numbers \(its \.real, where the imaginary part is 0\)$"):
            image_to_uint8(form, "img")
    ones = torch.ones(3, 32, 48, dtype=torch.int64)
    with pytest.raises(Gen3cInputError, match=r"^img tensor is int64: pass a uint8 tensor or a float one \(its values fit 0–255: tensor.to\(torch.uint8\)\)$"):
        image_to_uint8(ones, "img")
    with pytest.raises(Gen3cInputError, match=r"^img array is uint16: pass uint8 or float in \[0, 1\] \(16-bit colours: array / 65535\)$"):
        image_to_uint8(rgb.astype(np.uint16) * 257, "img")
    kw = {"fov": 60, "resolution": "32x48", "num_video_frames": 3, "generator": "preview", "video_save_folder": tmp_path}
    with pytest.raises(Gen3cInputError, match=r"^gen3c.generate\(\) image values span \[3, 3\], expected \[-1, 1\]"):
        gen3c.generate(torch.full((3, 32, 48), 3.0).to(torch.float8_e4m3fn), **kw)
    sixteen = Image.fromarray(grey.astype(np.uint16) * 257)
    assert sixteen.mode == "I;16"
    assert np.array_equal(image_to_uint8(sixteen), np.repeat(grey[..., None], 3, -1))
    sixteen.save(tmp_path / "grey16.png")
    assert torch.equal(load_image(tmp_path / "grey16.png"), load_image_of(grey, tmp_path / "grey8.png"))
    assert np.array_equal(image_to_uint8(Image.fromarray(grey / np.float32(255))), np.repeat(grey[..., None], 3, -1))
    with pytest.raises(Gen3cInputError, match=r"^img holds integer colours of unknown range \(PIL mode I, 32-bit\): .*\(16-bit colours: array / 65535\)$"):
        image_to_uint8(Image.fromarray(grey.astype(np.int32) * 257), "img")


def test_float_and_32_bit_image_files_are_read_as_the_same_pil_image_in_memory(tmp_path):
    """A float TIFF (PIL mode F) in [0, 1] came out black and a 32-bit integer one (mode I) white:
    PIL's own RGB conversion clips.
    Now the file is read as the PIL image in memory is (image_to_uint8): F as [0, 1] floats, I
    refused in one line. And an image without pixels came back as an empty array (uint8) or
    torch's error on its min() (float): one line, as the other inputs without pixels."""
    from gen3c.io.images import image_to_uint8, load_image

    grey = np.random.default_rng(0).integers(0, 256, (12, 16), dtype=np.uint8)
    grey[0, :2] = 0, 255
    Image.fromarray(grey / np.float32(255)).save(tmp_path / "f.tif")
    assert torch.equal(load_image(tmp_path / "f.tif"), load_image_of(grey, tmp_path / "grey8.png"))
    Image.fromarray(grey * np.float32(3 / 255)).save(tmp_path / "hdr.tif")
    with pytest.raises(Gen3cInputError, match=r"^input image '.*hdr\.tif' \(PIL mode F\) values span \[0, 3\], expected \[0, 1\]$"):
        load_image(tmp_path / "hdr.tif")
    Image.fromarray(grey.astype(np.int32) * 257).save(tmp_path / "i.tif")
    with Image.open(tmp_path / "i.tif") as im:
        assert im.mode == "I"
    with pytest.raises(Gen3cInputError, match=r"^input image '.*i\.tif' holds integer colours of unknown range \(PIL mode I, 32-bit\): save it as an 8- or 16-bit PNG"):
        load_image(tmp_path / "i.tif")
    for empty in (np.zeros((0, 16, 3), np.uint8), np.zeros((12, 0), np.float32), torch.zeros(3, 0, 16), Image.new("RGB", (0, 0))):
        with pytest.raises(Gen3cInputError, match=r"^img is empty \(\d+×\d+ pixels\): pass an image with pixels$"):
            image_to_uint8(empty, "img")


def test_16_bit_pgm_and_signed_16_bit_tiff_images_are_16_bit_images_as_a_16_bit_png_is(tmp_path):
    """PIL opens a 16-bit PGM and a TIFF of signed 16-bit samples as mode I (32-bit integers), which
    was refused as 'integer colours of unknown range'. Now both are read as the same samples' 16-bit
    PNG (÷ 257), from a file (the command line too) or as a PIL image in memory, turned by their
    EXIF orientation; negative samples, which no colour has, are refused in one line."""
    from typer.testing import CliRunner

    from gen3c.cli import app
    from gen3c.io.images import image_to_uint8, load_image

    grey = np.random.default_rng(0).integers(0, 65536, (12, 16), dtype=np.uint16)
    grey[0, :2] = 0, 65535
    half = (grey // 2).astype(np.int16)  # non-negative signed samples
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(grey).save(tmp_path / "grey.pgm")
    Image.fromarray(half.astype(np.uint16)).save(tmp_path / "half.png")
    Image.fromarray(np.rot90(half, k=-1).astype(np.uint16)).save(tmp_path / "upright.png")  # Orientation 6: turned clockwise
    Image.fromarray(half.view(np.uint16)).save(tmp_path / "half.tif", tiffinfo={339: 2})  # SampleFormat: signed
    Image.fromarray(half.view(np.uint16)).save(tmp_path / "turned.tif", tiffinfo={339: 2, 274: 6})
    negative = half.copy()
    negative[3, 4] = -7
    Image.fromarray(negative.view(np.uint16)).save(tmp_path / "negative.tif", tiffinfo={339: 2})
    for name in ("grey.pgm", "half.tif", "negative.tif"):
        with Image.open(tmp_path / name) as im:
            assert im.mode == "I"
    for name, same in (("grey.pgm", "grey.png"), ("half.tif", "half.png"), ("turned.tif", "upright.png")):
        assert torch.equal(load_image(tmp_path / name), load_image(tmp_path / same)), name
        with Image.open(tmp_path / name) as im, Image.open(tmp_path / same) as png:
            assert np.array_equal(image_to_uint8(im), image_to_uint8(png)), name
    refusal = r"holds negative colours \(signed 16-bit samples, down to -7\): save it as an unsigned 16-bit PNG, or pass its values as float in \[0, 1\]$"
    with pytest.raises(Gen3cInputError, match=r"^input image '.*negative\.tif' " + refusal):
        load_image(tmp_path / "negative.tif")
    with Image.open(tmp_path / "negative.tif") as im, pytest.raises(Gen3cInputError, match=r"^gen3c.generate\(\) image " + refusal):
        gen3c.generate(im, depth=np.ones((12, 16)), fov=60, generator="preview", video_save_folder=tmp_path / "none")
    np.save(tmp_path / "depth.npy", np.ones((12, 16)))
    runner = CliRunner()
    for name, code in (("grey.pgm", 0), ("negative.tif", 2)):
        args = ["generate", "--input_image_path", tmp_path / name, "--depth_path", tmp_path / "depth.npy", "--fov", "60",
                "--resolution", "32x48", "--num_video_frames", "3", "--generator", "preview", "--video_save_folder", tmp_path / "out"]  # fmt: skip
        res = runner.invoke(app, [str(a) for a in args])
        assert res.exit_code == code and "Traceback" not in res.output, res.output
    assert len([line for line in res.output.splitlines() if line.strip()]) <= 3 and "holds negative colours" in " ".join(res.output.split())
    assert [p.name for p in (tmp_path / "out").glob("*.mp4")] == ["output.mp4"]  # the PGM's video


def load_image_of(grey: np.ndarray, path):
    from gen3c.io.images import load_image

    Image.fromarray(grey).save(path)
    return load_image(path)


def test_prepare_source_takes_flipped_big_endian_and_long_double_arrays_as_their_numbers():
    """Before: a flipped view (negative strides), a big-endian or a long double depth array (and
    such a valid mask or K) was refused as 'is a ndarray: pass a tensor or a numpy array', though
    gen3c.generate() took it; torch.as_tensor takes none of them."""
    image = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    depth = np.linspace(1, 2, 32 * 48).reshape(32, 48)
    valid = np.ones((32, 48), bool)
    valid[:, :5] = False
    K = intrinsics_from_fov(60, 32, 48).numpy().astype(np.float64)
    plain = prepare_source(image, depth, K, (32, 48), valid=valid)
    odd = prepare_source(image, depth.astype(">f8"), K.astype(">f4"), (32, 48), valid=valid)  # big-endian
    assert torch.equal(odd.depth, plain.depth) and torch.equal(odd.valid, plain.valid) and torch.equal(odd.K, plain.K)
    flipped = prepare_source(image[::-1], depth[::-1].astype(np.longdouble), K, (32, 48), valid=valid[::-1])
    assert torch.equal(flipped.depth, plain.depth.flip(0)) and torch.equal(flipped.valid, plain.valid.flip(0))


def test_masked_and_complex_cameras_and_valid_masks_are_refused_or_taken_as_a_masked_depth_is():
    """A masked K or w2c has no meaning (a matrix has no missing entry) and a complex one no real
    camera: refused in one line naming it, as images are. A masked valid mask is invalid where
    masked, as a masked depth is. Before: the mask and the imaginary part were dropped silently
    (the raw values under the mask taken; .float() of complex), a masked valid pixel kept valid."""
    from gen3c.cameras import Cameras

    image, depth = np.zeros((32, 48, 3), np.uint8), np.ones((32, 48))
    K, pose = intrinsics_from_fov(60, 32, 48).numpy(), np.eye(4)
    masked_K, masked_pose = np.ma.masked_array(K, np.eye(3, dtype=bool)), np.ma.masked_array(pose, np.eye(4, dtype=bool))
    masked = r" is a masked array with {} masked values: a camera matrix has no missing entries, pass the whole matrix \(value.filled\(...\)\)$"
    complex_ = r" holds complex128 values: pass real numbers \(its \.real, where the imaginary part is 0\)$"
    mistakes = [
        ({"K": masked_K}, "^prepare_source K" + masked.format(3)),
        ({"w2c": masked_pose}, "^prepare_source w2c" + masked.format(4)),
        ({"K": K.astype(np.complex128)}, "^prepare_source K" + complex_),  # imaginary part 0: refused all the same
        ({"K": torch.as_tensor(K + 1e-3j)}, "^prepare_source K" + complex_.replace("complex128", "complex64")),
        ({"w2c": pose + 0j}, "^prepare_source w2c" + complex_),
        ({"valid": np.ones((32, 48), complex)}, "^prepare_source valid" + complex_),
    ]
    for change, match in mistakes:
        with pytest.raises(Gen3cInputError, match=match):
            prepare_source(image, depth, change.pop("K", K), (32, 48), **change)
    with pytest.raises(Gen3cInputError, match="^Cameras.w2c" + masked.format(4)):
        Cameras([pose, masked_pose], K, 32, 48)
    with pytest.raises(Gen3cInputError, match="^Cameras.K" + masked.format(3)):
        Cameras(pose[None], masked_K, 32, 48)
    # nothing masked: its data, as for images
    unmasked = prepare_source(image, depth, np.ma.masked_array(K), (32, 48), w2c=np.ma.masked_array(pose))
    assert torch.equal(unmasked.K, torch.as_tensor(K)) and torch.equal(unmasked.w2c, torch.eye(4))
    valid = np.ma.masked_array(np.ones((32, 48), bool), np.zeros((32, 48), bool))
    valid[:, :10] = np.ma.masked
    taken = prepare_source(image, depth, K, (32, 48), valid=valid)
    assert not taken.valid[:, :10].any() and bool(taken.valid[:, 10:].all())
    assert torch.equal(prepare_source(image, depth, K, (32, 48), valid=valid.astype(np.uint8)).valid, taken.valid)


def test_meta_cameras_and_source_tensors_are_one_line():
    """A meta tensor (shapes, no values) as a camera matrix or a depth was torch's "Tensor.item()
    cannot be called on meta tensors" (Cameras, prepare_source K, a keyframe path) or "Cannot copy
    out of meta tensor; no data!" (prepare_source depth); an image's was one line already."""
    from gen3c.cameras import Cameras
    from gen3c.trajectories import KeyframePath

    image, depth = np.zeros((32, 48, 3), np.uint8), torch.ones(32, 48)
    K, pose = intrinsics_from_fov(60, 32, 48), torch.eye(4)
    meta = " is a meta tensor, which holds no values: pass one on the CPU or a GPU$"
    for change, match in (({"depth": depth.to("meta")}, "depth"), ({"K": K.to("meta")}, "K"), ({"w2c": pose.to("meta")}, "w2c"),
                          ({"valid": torch.ones(32, 48, dtype=torch.bool, device="meta")}, "valid")):  # fmt: skip
        args = {"depth": depth, "K": K, **change}
        with pytest.raises(Gen3cInputError, match=f"^prepare_source {match}{meta}"):
            prepare_source(image, args.pop("depth"), args.pop("K"), (32, 48), **args)
    with pytest.raises(Gen3cInputError, match="^Cameras.w2c" + meta):
        Cameras(pose[None].to("meta"), K, 32, 48)
    with pytest.raises(Gen3cInputError, match="^Cameras.K" + meta):
        Cameras(pose[None], K.to("meta"), 32, 48)
    with pytest.raises(Gen3cInputError, match="^keyframe poses" + meta):
        KeyframePath(pose.repeat(2, 1, 1).to("meta"), times=[0.0, 1.0], num_frames=3, fps=2).cameras(K, 32, 48)
    # A meta first frame, or a render onto the meta device: the same torch "Tensor.item()" error.
    source = prepare_source(image, depth, K, (32, 48))
    cameras, cache = preset_cameras(source, "left", "center_facing", num_frames=3), build_cache([source])
    with pytest.raises(Gen3cInputError, match="^first_frame" + meta):
        generate_video(cache, cameras, PreviewGenerator(), source.image.to("meta"))
    for key in ("device", "output_device"):
        with pytest.raises(Gen3cInputError, match=f"^{key} 'meta' holds no values to render into: pass 'cuda', 'cpu' or None"):
            cache.render(cameras, **{key: "meta"})


def test_prepare_source_refuses_ragged_lists_and_non_numeric_arrays_in_one_line():
    """Before: a ragged nested list (K of rows of different lengths) raised numpy's ValueError
    ("setting an array element with a sequence"), and an array of objects, strings or dates was
    'is a ndarray: pass a tensor or a numpy array', though it is one."""
    image = np.zeros((32, 48, 3), np.uint8)
    depth = np.ones((32, 48))
    K = intrinsics_from_fov(60, 32, 48)
    with pytest.raises(Gen3cInputError, match=r"^prepare_source K is a list of 3 items whose rows differ in length: pass a tensor or a numpy array$"):
        prepare_source(image, depth, [[1.0, 0.0, 24.0], [0.0, 1.0], [0.0, 0.0, 1.0]], (32, 48))
    for name, args in (("depth", (depth.astype(object), K)), ("depth", (depth.astype(str), K)), ("K", (depth, K.numpy().astype(object)))):
        with pytest.raises(Gen3cInputError, match=rf"^prepare_source {name} holds (object|<U32) values: pass numbers$"):
            prepare_source(image, *args, (32, 48))
    with pytest.raises(Gen3cInputError, match=r"^prepare_source valid holds datetime64\[s\] values: pass numbers$"):
        prepare_source(image, depth, K, (32, 48), valid=np.ones((32, 48), "M8[s]"))


def test_premultiplied_pil_images_in_memory_sit_over_white_as_rgba_does():
    """Before: an RGBa image's transparent pixels came out black (PIL's RGBa → RGB), not white as
    RGBA's do; an La one was refused as 'could not be decoded … pass a complete image'."""
    from gen3c.io.images import image_to_uint8

    rgba = np.random.default_rng(0).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    rgba[0, 0, 3], rgba[0, 1, 3] = 0, 255
    straight = Image.fromarray(rgba, "RGBA")
    expected = image_to_uint8(straight)
    assert expected[0, 0].tolist() == [255, 255, 255]
    premultiplied = image_to_uint8(straight.convert("RGBa")).astype(int)
    assert np.abs(premultiplied - expected).max() <= 1  # premultiplying rounds
    la = Image.fromarray(rgba[..., [0, 3]], "LA")
    grey = image_to_uint8(la)
    assert grey[0, 0].tolist() == [255, 255, 255] and np.abs(image_to_uint8(la.convert("La")).astype(int) - grey).max() <= 1


def test_generate_takes_a_depth_estimate_as_its_export_fed_back(box_scene, tmp_path):
    """`gen3c.generate(image, depth=estimate)` makes the frames of `depth="NAME_depth.npy"`, the
    estimate exported by `gen3c depth` (its relative kind and camera kept); the run record says
    what was in memory. Before: "depth is a DepthEstimate: pass a tensor or a numpy array"."""
    import json

    from gen3c.depth import GeometricPriorEstimator
    from gen3c.depth.export import save_depth_outputs

    image_path, _, image, _ = box_scene
    estimate = GeometricPriorEstimator().estimate((image + 1) / 2)
    paths = save_depth_outputs(estimate, (image + 1) / 2, tmp_path, "photo")
    common = {"resolution": "32x48", "num_video_frames": 5, "generator": "preview", "progress": False}
    with pytest.warns(UserWarning, match="as recorded in photo_depth.json"):
        fed = gen3c.generate(image_path, depth=paths["npy"], video_save_folder=tmp_path / "file", **common)
    with pytest.warns(UserWarning, match="relative depth from prior and the default camera .*, as held by the DepthEstimate"):
        memory = gen3c.generate(image_path, depth=estimate, video_save_folder=tmp_path / "memory", **common)
    assert torch.equal(memory.result.frames, fed.result.frames) and torch.equal(memory.result.cameras.w2c, fed.result.cameras.w2c)
    described = json.loads(memory.paths["run"].read_text())["in_memory_inputs"]["depth_path"]
    assert described["in_memory"] == "gen3c.depth.base.DepthEstimate" and described["kind"] == "relative"
    assert described["shape"] == [96, 160] and described["source"] == estimate.source


def test_configure_gives_the_generator_the_prompts_its_pipeline_is_called_with(monkeypatch):
    """configure takes ``prompt`` and ``negative_prompt`` (left out: the defaults, as at load and as
    the pool gives a job without them); a prompt for a generator loaded with disable_prompt_encoder,
    or a negative prompt for a run without guidance, is refused in one line. Before: configure
    dropped both without a word (only GeneratorPool set them)."""
    from types import SimpleNamespace

    from gen3c.pipelines.gen3c import Gen3cPipeline
    from gen3c.pipelines.loading import load_generator

    calls: list[dict] = []
    monkeypatch.setattr(Gen3cPipeline, "__call__", lambda self, **kw: calls.append(kw) or SimpleNamespace(frames=torch.zeros(1, 3, 16, 16)))
    gen = load_generator("tiny", device="cpu", dtype="float32")
    buffers = SimpleNamespace(colors=torch.zeros(gen.chunk_frames, 1, 3, 16, 16), masks=torch.zeros(gen.chunk_frames, 1, 1, 16, 16))

    def called_with(options: dict) -> tuple:
        gen.configure(options)
        gen.generate(None, None, torch.zeros(3, 16, 16), buffers=buffers)
        return calls[-1]["prompt"], calls[-1]["negative_prompt"], calls[-1]["num_steps"]

    assert called_with({"prompt": "a cat", "negative_prompt": "blur", "num_steps": 3}) == ("a cat", "blur", 3)
    assert called_with({"num_steps": 2}) == ("", None, 2)
    with pytest.raises(Gen3cInputError, match=r"^negative_prompt= .*guidance=0"):
        gen.configure({"negative_prompt": "blur", "guidance": 0})
    gen.pipeline.disable_prompt_encoder = True
    with pytest.raises(Gen3cInputError, match=r"^prompt= would change nothing: disable_prompt_encoder=True"):
        gen.configure({"prompt": "a cat"})


def test_a_step_count_whose_schedule_fills_the_memory_is_refused_before_anything_runs(tmp_path):
    """--num_steps 100000000 (a few zeros too many) ran until the out-of-memory killer ended it,
    minutes in, leaving a temporary video behind: the sampler's schedule alone took gigabytes."""
    from typer.testing import CliRunner

    from gen3c.cli import app
    from gen3c.pipelines.presets import speed_settings

    assert speed_settings(num_steps=10_000).num_steps == 10_000
    with pytest.raises(Gen3cInputError) as refused:
        speed_settings(num_steps=100_000_000)
    assert str(refused.value) == "--num_steps 100000000 is more than the 10000 steps a run may take (GEN3C: 35): pass fewer"
    res = CliRunner().invoke(app, ["generate", "--generator", "gen3c", "--model", "tiny", "--num_steps", "10001", "--input_image_path",
                                   str(tmp_path / "photo.png"), "--video_save_folder", str(tmp_path / "out")])  # fmt: skip
    assert res.exit_code == 2 and res.output == "error: --num_steps 10001 is more than the 10000 steps a run may take (GEN3C: 35): pass fewer\n", res.output
    assert not (tmp_path / "out").exists()


def test_configure_words_its_refusals_in_the_options_keys(monkeypatch):
    """gen.configure({...}) in Python was refused in the command line's flags (--num_steps 0,
    --sampler), which its caller has none of; the pool, under the CLI and batches, keeps them."""
    from gen3c.pipelines.loading import configure_generator, load_generator
    from gen3c.pipelines.request import GenerationRequest, GeneratorPool

    gen = load_generator("tiny", device="cpu", dtype="float32")
    with pytest.raises(Gen3cInputError) as refused:
        gen.configure({"num_steps": 0})
    assert str(refused.value) == "num_steps=0 must be a whole number ≥ 1 (GEN3C: 35)"
    with pytest.raises(Gen3cInputError) as refused:
        gen.configure({"sampler": "eulr"})
    assert str(refused.value) == "sampler='eulr' is unknown: use one of euler, dpmpp_2m"
    with pytest.raises(Gen3cInputError) as refused:
        configure_generator(gen, {"num_steps": 0})
    assert str(refused.value) == "--num_steps 0 must be a whole number ≥ 1 (GEN3C: 35)"
    pool = GeneratorPool()
    request = GenerationRequest(generator="gen3c", generator_options={"model": "tiny", "num_steps": 0})
    pool._generator, pool._key = gen, GeneratorPool.key(request)
    with pytest.raises(Gen3cInputError) as refused:
        pool.get(request)
    assert str(refused.value) == "--num_steps 0 must be a whole number ≥ 1 (GEN3C: 35)"


def test_configure_and_the_pool_take_one_model_however_it_is_named(tmp_path, monkeypatch):
    """A model named by its folder (relative, absolute, with a trailing slash or ~) or, when
    packaged, by its name is one model: configure takes it and the pool's key is the same; another
    model is refused in one line. Before: compared as spelt, so the same folder was refused."""
    import shutil

    from gen3c.models.packaged import packaged_model_dir
    from gen3c.pipelines.loading import generator_from_options, load_generator
    from gen3c.pipelines.request import GenerationRequest, GeneratorPool

    shutil.copytree(packaged_model_dir("tiny"), tmp_path / "ckpt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for variable in ("GEN3C_CACHE_DIR", "XDG_CACHE_HOME"):  # GEN3C's weights' folder: ~/.cache/gen3c
        monkeypatch.delenv(variable, raising=False)
    gen = load_generator("ckpt", device="cpu", dtype="float32")
    spellings = ["ckpt/", "./ckpt", str(tmp_path / "ckpt"), "~/ckpt", "sub/../ckpt"]
    (tmp_path / "sub").mkdir()
    for name in spellings:
        gen.configure({"checkpoint_dir": name, "num_steps": 2})
    with pytest.raises(Gen3cInputError, match=r"^configure: model 'tiny' names another model than '.*ckpt', which the generator was loaded from"):
        gen.configure({"model": "tiny"})
    packaged = generator_from_options({"model": "tiny", "device": "cpu", "dtype": "float32"})
    for options in ({"checkpoint_dir": str(packaged_model_dir("tiny")) + "/"}, {"checkpoint_dir": "tiny"}, {"model": "tiny"}):
        packaged.configure(options)
    with pytest.raises(Gen3cInputError, match=r"^configure: model 'tiny_fast' names another model"):
        packaged.configure({"model": "tiny_fast"})

    def key(**options) -> str:
        return GeneratorPool.key(GenerationRequest(generator="gen3c", generator_options=options))

    assert len({key(checkpoint_dir=name) for name in spellings}) == 1 and key(checkpoint_dir="ckpt") != key(model="tiny")
    assert key(model="tiny") == key(checkpoint_dir=str(packaged_model_dir("tiny"))) != key(model="tiny_fast")
    assert key() == key(checkpoint_dir="nvidia/GEN3C-Cosmos-7B") == key(cache_dir=str(tmp_path / ".cache" / "gen3c")) != key(cache_dir="elsewhere")


def test_configure_takes_one_lora_adapter_however_it_is_named(tmp_path, monkeypatch):
    """An adapter named ./adapter, adapter/ or by its absolute path is the one loaded; another is
    refused. Before: compared as spelt, so the same adapter was refused."""
    from diffusers import CosmosTransformer3DModel

    from gen3c.models.packaged import packaged_model_dir
    from gen3c.pipelines.loading import load_generator
    from gen3c.training import lora

    transformer = CosmosTransformer3DModel.from_config(CosmosTransformer3DModel.load_config(packaged_model_dir("tiny") / "transformer"))
    lora.add_lora(transformer, rank=2, targets=["to_q"])
    lora.save_lora(transformer, tmp_path / "adapter")
    lora.save_lora(transformer, tmp_path / "other")
    monkeypatch.chdir(tmp_path)
    gen = load_generator("tiny", device="cpu", dtype="float32", lora="adapter")
    for name in ("./adapter", "adapter/", str(tmp_path / "adapter")):
        gen.configure({"model": "tiny", "lora": name, "num_steps": 2})
    with pytest.raises(Gen3cInputError, match=r"^configure: lora 'other' differs from the 'adapter' the generator was loaded with"):
        gen.configure({"model": "tiny", "lora": "other"})


def test_checking_and_no_effect_options_load_no_new_model(tmp_path):
    """verify_checksums checks the files, it does not shape the model: asked of a generator loaded
    without it, configure checks the checkpoint's files now (a changed file is refused) and the
    pool keeps the model; GEN3C's flags without effect here (guardrails, prompt upsampler) change
    nothing. Before: each was a model setting, refused by configure and reloaded by the pool."""
    import shutil

    from gen3c.errors import Gen3cModelError
    from gen3c.models.packaged import packaged_model_dir
    from gen3c.pipelines.loading import load_generator
    from gen3c.pipelines.request import GenerationRequest, GeneratorPool

    def key(**options) -> str:
        return GeneratorPool.key(GenerationRequest(generator="gen3c", generator_options={"model": "tiny", **options}))

    assert key() == key(verify_checksums=True) == key(offload_guardrail_models=True, disable_guardrail=True, disable_prompt_upsampler=True)
    shutil.copytree(packaged_model_dir("tiny"), tmp_path / "ckpt")
    gen = load_generator(tmp_path / "ckpt", device="cpu", dtype="float32")
    gen.configure({"verify_checksums": False})
    config = tmp_path / "ckpt" / "transformer" / "config.json"
    config.write_text(config.read_text() + " ")
    with pytest.raises(Gen3cModelError, match="config.json"):
        gen.configure({"verify_checksums": True})
    config.write_text(config.read_text()[:-1])
    gen.configure({"verify_checksums": True})
    assert gen.loaded_with["verify_checksums"]
    config.write_text(config.read_text() + " ")  # checked once: a later run asking again reads nothing
    gen.configure({"verify_checksums": True})


def test_short_repr_of_a_container_that_holds_itself_ends_as_repr_does():
    """Was RecursionError (a notebook printing a result whose notes dict held itself)."""
    from gen3c.summary import short_repr

    d = {"frames": torch.zeros(2, 3)}
    d["self"] = d
    assert short_repr(d) == "{'frames': tensor(2, 3; float32), 'self': {...}}"
    items = [torch.zeros(1)]
    items.append(items)
    assert short_repr(items) == "[tensor(1; float32), [...]]"
    assert short_repr([1, 2]) == "[1, 2]"  # no array inside: Python's own repr


def test_generate_calls_a_progress_callable_and_refuses_what_is_no_progress(box_scene, tmp_path, capsys):
    """Before: a progress callable was taken for True (the command line's bars drawn, the callable
    never called), and ``progress="false"`` drew bars too."""
    image_path, depth_path, _, _ = box_scene
    seen: dict[str, int] = {}

    def progress(stage: str, total: int):
        seen[stage] = 0

        def advance(n: int = 1) -> None:
            seen[stage] += n

        return advance

    gen3c.generate(image_path, depth=depth_path, fov=60, generator="preview", resolution="32x48", num_video_frames=3,
                   video_save_folder=tmp_path, progress=progress)  # fmt: skip
    assert seen == {"Rendering 3D cache": 3, "Generating (preview)": 3}, seen
    assert capsys.readouterr().err == ""  # no bar beside the callable's
    with pytest.raises(Gen3cInputError, match=r"^gen3c.generate\(\): progress is str 'false': pass True \(bars\), False \(quiet\) or a callable"):
        gen3c.generate(image_path, depth=depth_path, fov=60, generator="preview", video_save_folder=tmp_path / "no", progress="false")
    # A step's advance(n) handed over as the factory: was "<lambda>() takes 1 positional argument but 2 were given".
    with pytest.raises(Gen3cInputError, match=r"^gen3c.generate\(\): progress is a function that cannot be called as progress\(stage, total\): pass True"):
        gen3c.generate(image_path, depth=depth_path, fov=60, generator="preview", video_save_folder=tmp_path / "no", progress=lambda n: None)
    assert not (tmp_path / "no").exists()


def test_the_pipelines_output_prints_as_a_line_of_shapes():
    """docs/python.md: results print as a line of shapes; Gen3cPipelineOutput printed every pixel."""
    from gen3c.pipelines.gen3c import Gen3cPipelineOutput

    assert repr(Gen3cPipelineOutput(frames=torch.zeros(17, 3, 64, 112))) == "Gen3cPipelineOutput(frames=tensor(17, 3, 64, 112; float32))"


def test_generate_into_a_folder_starting_with_tilde_writes_there_and_nowhere_else(tmp_path, monkeypatch):
    """gen3c.generate(video_save_folder="~/outs") made an empty ./~/outs (the writable-folder check,
    on the path as given) and wrote the video into the home folder's outs (the writers expand ~):
    the request expands it, as it does the input paths and the command line does."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    Image.fromarray(np.full((64, 112, 3), 128, np.uint8)).save(tmp_path / "photo.png")
    out = gen3c.generate("photo.png", generator="preview", depth_estimator="prior", video_save_folder="~/outs", num_video_frames=3,
                         resolution="64x112", progress=False)  # fmt: skip
    assert out.paths["video"] == tmp_path / "home" / "outs" / "photo.mp4" and out.paths["video"].is_file()
    assert not (tmp_path / "~").exists()
