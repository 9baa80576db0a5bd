"""gen3c.errors.describe_value: what a one-line refusal says it got, worded as English is."""

from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

from gen3c.errors import describe_value, with_article


def test_a_type_name_starting_with_a_vowel_sound_takes_an():
    # Before: "a object", "a Image", "a OrderedDict of 2 items".
    assert describe_value(object()) == "an object"
    assert describe_value(Image.new("RGB", (2, 2))) == "an Image"
    assert describe_value(OrderedDict(a=1, b=2)) == "an OrderedDict of 2 items"
    assert [with_article(noun) for noun in ("object", "Image", "tuple", "numpy array", "UUID", "UserDict", "Event")] == [
        "an object", "an Image", "a tuple", "a numpy array", "a UUID", "a UserDict", "an Event"
    ]  # fmt: skip


def test_one_item_is_one_item():
    # Before: "a list of 1 items".
    assert describe_value([1]) == "a list of 1 item"
    assert describe_value({"frames": []}) == "a dict of 1 item"
    assert describe_value(()) == "a tuple of 0 items" and describe_value({1, 2, 3}) == "a set of 3 items"


def test_arrays_numbers_and_text_are_worded_as_before():
    assert describe_value(np.zeros((32, 48))) == "a numpy array of shape (32, 48)"
    assert describe_value(torch.ones(1, 4, 4)) == "a torch tensor of shape (1, 4, 4)"
    assert describe_value(5) == "int '5'" and describe_value(None) == "NoneType 'None'" and describe_value("60") == "str '60'"
    assert describe_value(torch.float16) == "dtype 'torch.float16'"


def test_refusals_name_what_they_got_as_describe_value_says(tmp_path):
    """Refusals that named a value's type by hand said "got int", "got NoneType", "got Tensor",
    "got list", "is one Sphere", "generator is a list of 2", "got str 'x'" with its repr; they
    now say what describe_value says."""
    import pytest

    from gen3c.errors import Gen3cInputError
    from gen3c.gui.state import GuiState
    from gen3c.io.gen3c_sample import read_sample
    from gen3c.pipelines.camera_video import build_cache, prepare_source, preset_cameras, save_outputs
    from gen3c.pipelines.options import check_generator_options
    from gen3c.pipelines.presets import SpeedPreset
    from gen3c.pipelines.settings import GenerationRequest
    from gen3c.scenes import Checker, Scene, Sphere

    torch.save([torch.zeros(1), torch.zeros(1)], tmp_path / "two.pt")
    ragged_K = [[1.0, 0.0, 4.0], [0.0, 1.0], [0.0, 0.0, 1.0]]
    refusals = {
        "the prompt must be text, got int '5'": lambda: GuiState(tmp_path / "work").set_prompt(5),
        "speed setting num_steps must be a whole number, got a list of 1 item": lambda: SpeedPreset(num_steps=[5]).check(),
        "request must be an object of settings, got a list of 2 items": lambda: GenerationRequest.from_dict([1, 2]),
        "generator_options must be an object of gen3c generator options, got NoneType 'None'": lambda: check_generator_options(None),
        "Scene primitives is a Sphere: pass a list of them, [primitive]": lambda: Scene(Sphere((0.0, 0.0, 3.0), 1.0, Checker())),
        f"sample {str(tmp_path / 'two.pt')!r} must hold 5 tensors (image, depth, mask, w2c, intrinsics), got a list of 2 items":
            lambda: read_sample(tmp_path / "two.pt", (8, 8)),
        "build_cache takes a list of SourceView (prepare_source), got a torch tensor of shape (3,): pass [source]": lambda: build_cache(torch.zeros(3)),
        "preset_cameras takes the SourceView of prepare_source, got NoneType 'None'": lambda: preset_cameras(None, "left", "center_facing", 3),
        "save_outputs takes the VideoResult of generate_video, got str 'clip'": lambda: save_outputs("clip", tmp_path, "clip"),
        "prepare_source K is a list of 3 items whose rows differ in length: pass a tensor or a numpy array":
            lambda: prepare_source(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8)), ragged_K, (8, 8)),
    }  # fmt: skip
    for message, call in refusals.items():
        with pytest.raises(Gen3cInputError) as refused:
            call()
        assert str(refused.value) == message
    assert not (tmp_path / "clip.mp4").exists()


def test_the_gen3c_pipeline_names_its_arguments_as_describe_value_says():
    """Gen3cPipeline said "generator is a list of 2", "got int", "got str" and "returned NoneType"."""
    import pytest

    pytest.importorskip("diffusers")
    from gen3c.errors import Gen3cInputError
    from gen3c.pipelines.gen3c import Gen3cPipeline

    def check(generator=None, callback=None):  # refused before the pipeline itself is used
        Gen3cPipeline.check_call_arguments(None, None, generator, callback, None, [], "pt")

    refusals = {
        "generator is a tuple of 2 items: a call makes one video, so pass one torch.Generator (one call per generator for several)":
            lambda: check(generator=(torch.Generator(), torch.Generator())),
        "generator must be a torch.Generator, got int '3': pass torch.Generator().manual_seed(n), or seed=n": lambda: check(generator=3),
        "callback must be a function, got str 'print'": lambda: check(callback="print"),
        "negative_prompt must be a string, got a list of 1 item": lambda: Gen3cPipeline._encode_prompts(None, [(["a cat"], True)], 8),
        "callback_on_step_end returned NoneType 'None': return a dict (the callback_kwargs it was given, changed or not)":
            lambda: Gen3cPipeline._call_step_end(None, lambda *args: None, [], 0, torch.tensor(1.0), {}),
    }  # fmt: skip
    for message, call in refusals.items():
        with pytest.raises(Gen3cInputError) as refused:
            call()
        assert str(refused.value) == message


def test_a_whole_number_is_an_int_or_a_numpy_integer_and_never_a_bool_or_a_float():
    import numpy as np

    from gen3c.errors import is_whole_number

    for whole in (0, -3, 10**30, np.int64(7), np.uint8(255), np.int32(-1)):
        assert is_whole_number(whole), whole
    for other in (True, False, np.bool_(True), 2.0, np.float32(3), 2.5, "4", b"4", None, 1 + 0j, [1]):
        assert not is_whole_number(other), other


def test_a_path_is_quoted_whole_up_to_its_limit_then_by_its_start_and_its_end():
    from pathlib import Path

    from gen3c.errors import quoted_path

    assert quoted_path(Path("/data/shots/take_07.png")) == "'/data/shots/take_07.png'"  # as {str(path)!r} quoted it
    assert quoted_path(b"/data/x.png") == "'/data/x.png'" and quoted_path(None) == "'None'"
    long = "/home/me/" + "a" * 300 + "/shots/take_07.png"
    assert quoted_path(long) == f"'/home/me/{'a' * 41}…{'a' * 131}/shots/take_07.png'"
    assert len(quoted_path(long)) == 202 and len(quoted_path(long, 60)) == 62
    assert quoted_path(long, 60) == f"'/home/me/{'a' * 6}…{'a' * 26}/shots/take_07.png'"


def test_a_path_offered_as_the_fix_to_copy_is_quoted_whole():
    from gen3c.errors import MAX_PATH_CHARS, path_to_copy, quoted_path

    long = "/home/me/" + "a" * 300 + "/shots/take_07.png"
    assert path_to_copy(long) == repr(long) != quoted_path(long)  # cut to start…end it would be no path
    assert path_to_copy(b"/data/x.png") == "'/data/x.png'"
    beyond = "/" + "b" * MAX_PATH_CHARS  # longer than any system takes: only then cut
    assert path_to_copy(beyond) == quoted_path(beyond) and len(path_to_copy(beyond)) == 202


def test_a_value_is_shown_as_python_writes_it_where_that_is_one_short_line():
    from gen3c.errors import shown_value

    assert [shown_value(v) for v in (5, 2.5, "left", (0, 0, 0), None)] == ["5", "2.5", "'left'", "(0, 0, 0)", "None"]  # as {value!r}
    assert shown_value("x" * 100) == "'" + "x" * 80 + "…'"
    assert shown_value(np.arange(3000.0)) == "a numpy array of shape (3000,)" and shown_value(list(range(100))) == "a list of 100 items"
    assert shown_value(torch.zeros(2, 2)) == "a torch tensor of shape (2, 2)"  # (its repr runs over two lines)


def test_refusals_of_huge_values_stay_one_short_line():
    """An array, a tensor or a long text passed where a number or a name goes was quoted whole in
    the refusal: every number of a (3000,) array (a line of 20,000 characters, or several lines)."""
    import pytest

    from gen3c.cache import Cache3D
    from gen3c.errors import Gen3cInputError
    from gen3c.pipelines.presets import speed_name
    from gen3c.scenes import Checker, Sphere, make_scene
    from gen3c.trajectories import preset_offsets

    big, text = np.arange(3000.0), "x" * 3000
    refusals = {
        "Sphere center a numpy array of shape (3000,) must be three finite numbers (x, y, z)": lambda: Sphere(big, 1.0, Checker()),
        "Sphere radius must be > 0 and finite, got a torch tensor of shape (30, 100): give it a positive size":
            lambda: Sphere((0.0, 0.0, 3.0), torch.zeros(30, 100), Checker()),
        f"unknown scene '{'x' * 40}…': choose one of room, corridor, street, objects": lambda: make_scene(text),
        f"--speed '{'x' * 80}…' is unknown: use one of ": lambda: speed_name(text),
        "max_buffers a numpy array of shape (3000,) must be a whole number ≥ 1 (GEN3C keeps 2)": lambda: Cache3D(max_buffers=big),
        f"unknown trajectory '{'x' * 80}…': choose one of ": lambda: preset_offsets(text, 5, 0.3),
    }  # fmt: skip
    for said, refuse in refusals.items():
        with pytest.raises(Gen3cInputError) as refused:
            refuse()
        assert str(refused.value).startswith(said) and len(str(refused.value)) < 300, str(refused.value)
