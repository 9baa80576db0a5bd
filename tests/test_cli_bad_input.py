"""User mistakes on every command: exit code 2, one line naming the input and the fix, no
traceback, nothing left in the output folder (an adversarial audit's findings, kept)."""

import re

import numpy as np
import pytest
from typer.testing import CliRunner

from gen3c.cli import app

runner = CliRunner()


def refused(argv, match, out=None):
    """Run ``gen3c ARGV``: exit 2 with one error line matching ``match``; ``out`` left empty."""
    res = runner.invoke(app, [str(a) for a in argv])
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(match, errors[0]), res.output
    if out is not None:
        assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))
    return errors[0]


@pytest.fixture()
def files(tmp_path, box_scene):
    """An image, its depth, and files of the wrong kind under the names users give them."""
    image, depth, _, _ = box_scene
    png = image.read_bytes()
    found = {"image": image, "depth": depth, "afile": tmp_path / "afile"}
    found["afile"].write_text("x")
    for name, data in {"png.npz": png, "png.npy": png, "text.npy": b"fx fy cx cy\n", "K.npy": png}.items():
        (tmp_path / name).write_bytes(data)
        found[name] = tmp_path / name
    np.save(tmp_path / "array.npy", np.ones((4, 4), np.float32))
    found["array.npy"] = tmp_path / "array.npy"
    sample = tmp_path / "sample"
    sample.mkdir()
    for name in ("rgb.mp4", "depth.npz", "mask.npz", "camera.npz"):
        (sample / name).write_bytes(png)
    found["sample"] = sample
    return found


def generate(files, out, **changes):
    args = {"--input_image_path": files["image"], "--depth_path": files["depth"], "--fov": "60", "--resolution": "32x48",
            "--num_video_frames": "5", "--video_save_folder": out, **changes}  # fmt: skip
    return ["generate"] + [x for k, v in args.items() if v is not None for x in (k, v)]


@pytest.mark.parametrize(
    "case, match",
    [
        ("png_as_npz_depth", r"depth file '.*png\.npz' is a PNG image, not a NumPy \.npz file"),
        ("text_as_npy_depth", r"depth file '.*text\.npy' is text, not a NumPy \.npy file"),
        ("npy_as_multiview", r"multi-view npz '.*array\.npy' is a NumPy \.npy array, not a NumPy \.npz file"),
        ("png_in_sample_folder", r"depth\.npz' is a PNG image, not a NumPy \.npz file"),
        ("png_as_npy_intrinsics", r"--intrinsics file '.*K\.npy' is a PNG image, not a NumPy \.npy file"),
    ],
)
def test_a_file_of_another_kind_is_named_for_what_it_is(case, match, files, tmp_path):
    """numpy.load takes any unknown file for a pickle: the error named "Python objects" for a renamed PNG."""
    out = tmp_path / "out"
    changes = {
        "png_as_npz_depth": {"--depth_path": files["png.npz"]},
        "text_as_npy_depth": {"--depth_path": files["text.npy"]},
        "npy_as_multiview": {"--input_image_path": None, "--depth_path": None, "--fov": None, "--multiview_npz": files["array.npy"]},
        "png_in_sample_folder": {"--input_image_path": files["sample"], "--depth_path": None, "--fov": None},
        "png_as_npy_intrinsics": {"--fov": None, "--intrinsics": files["K.npy"]},
    }[case]
    refused(generate(files, out, **changes), match, out)
