"""Property-based fuzzing of every input parser: whatever the bytes, a user gets either a
valid result or a one-line Gen3cInputError — never another exception, never a hang."""

import json
import string

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gen3c.errors import Gen3cInputError
from gen3c.io.camera_files import cameras_from_dict, load_camera_file
from gen3c.io.depth import conform_depth, load_depth
from gen3c.io.images import load_image, parse_resolution
from gen3c.pipelines.request import GenerationRequest, parse_intrinsics

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def one_line(exc: Exception) -> None:
    assert "\n" not in str(exc) and len(str(exc)) < 600


numbers = st.one_of(st.integers(-5, 5000), st.floats(allow_nan=True, allow_infinity=True), st.none(), st.text(max_size=3), st.booleans())
json_values = st.recursive(numbers, lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=6), kids, max_size=4), max_leaves=30)
matrix = st.lists(st.lists(numbers, min_size=0, max_size=5), min_size=0, max_size=5)
frame = st.fixed_dictionaries({}, optional={"w2c": matrix, "c2w": matrix, "K": matrix, "intrinsics": st.lists(numbers, max_size=5)})
gen3c_doc = st.fixed_dictionaries(
    {"frames": st.lists(frame, max_size=4)},
    optional={"width": numbers, "height": numbers, "convention": st.sampled_from(["opencv", "opengl", 3]), "K": matrix},
)
ns_doc = st.fixed_dictionaries(
    {"camera_path": st.lists(st.fixed_dictionaries({}, optional={"camera_to_world": st.lists(numbers, max_size=17), "fov": numbers}), max_size=3)},
    optional={"render_height": numbers, "render_width": numbers, "camera_type": st.sampled_from(["perspective", "fisheye"])},
)


@FUZZ
@given(st.one_of(json_values, gen3c_doc, ns_doc))
def test_camera_dicts(doc):
    try:
        cams = cameras_from_dict(doc)
    except Gen3cInputError as exc:
        one_line(exc)
    else:
        assert len(cams) >= 1 and np.isfinite(cams.w2c.numpy()).all()


@FUZZ
@given(st.binary(max_size=400))
def test_camera_file_bytes(tmp_path, data):
    path = tmp_path / "cams.json"
    path.write_bytes(data)
    with pytest.raises(Gen3cInputError) as info:
        load_camera_file(path)
    one_line(info.value)


@FUZZ
@given(st.binary(max_size=600), st.sampled_from([".png", ".jpg", ".webp", ".bmp", ".tif"]))
def test_image_bytes(tmp_path, data, suffix):
    path = tmp_path / f"img{suffix}"
    path.write_bytes(data)
    try:
        load_image(path)
    except Gen3cInputError as exc:
        one_line(exc)


@FUZZ
@given(st.binary(max_size=600), st.sampled_from([".npy", ".npz", ".png", ".exr"]))
def test_depth_bytes(tmp_path, data, suffix):
    path = tmp_path / f"depth{suffix}"
    path.write_bytes(data)
    try:
        depth = load_depth(path)
        conform_depth(depth, tuple(depth.shape))
    except Gen3cInputError as exc:
        one_line(exc)


@FUZZ
@given(
    st.sampled_from(["f2", "f4", "f8", "i2", "u2", "u1", "c8", "?", "O", "U3"]),
    st.lists(st.integers(0, 6), min_size=0, max_size=4),
    st.floats(allow_nan=True, allow_infinity=True),
)
def test_depth_arrays(tmp_path, dtype, shape, fill):
    path = tmp_path / "d.npy"
    try:
        array = np.full(shape, fill if dtype[0] in "fc" else 1, dtype=dtype)
    except (ValueError, OverflowError, TypeError):
        return
    np.save(path, array, allow_pickle=True)
    try:
        depth = load_depth(path)
        conform_depth(depth, (3, 4))
    except Gen3cInputError as exc:
        one_line(exc)


@FUZZ
@given(st.text(alphabet=string.printable + "×", max_size=20))
def test_resolution_strings(text):
    try:
        h, w = parse_resolution(text)
        assert h % 8 == 0 and w % 8 == 0
    except Gen3cInputError as exc:
        one_line(exc)


@FUZZ
@given(st.one_of(st.none(), st.text(max_size=30)), st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)))
def test_intrinsics_strings(text, fov):
    try:
        parse_intrinsics(text, fov, 48, 64)
    except Gen3cInputError as exc:
        one_line(exc)


@FUZZ
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=4))
def test_request_dicts(data):
    try:
        GenerationRequest.from_dict(data)
    except Gen3cInputError as exc:
        one_line(exc)
    except TypeError:  # pragma: no cover - from_dict must never raise it
        pytest.fail("from_dict raised TypeError")


def test_request_round_trip():
    req = GenerationRequest(input_image_path="a.png", num_video_frames=9)
    assert GenerationRequest.from_dict(json.loads(json.dumps(req.to_dict()))) == req
