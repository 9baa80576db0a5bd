"""Nothing executed from files: pickles are refused (and never run) unless trusted; converted
checkpoints are checked — names, shapes, dtypes against the configs, sha256 manifest — before use."""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_model import tiny_pipeline
from typer.testing import CliRunner

from gen3c.cli import app
from gen3c.errors import Gen3cInputError, Gen3cModelError
from gen3c.models.verify import CHECKSUMS_FILE, verify_checksums, verify_weights, write_checksums
from gen3c.pipelines.loading import load_pipeline

SRC = Path(__file__).resolve().parents[1] / "src" / "gen3c"
DIT = "transformer/diffusion_pytorch_model.safetensors"


class Evil:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# -- pickles --------------------------------------------------------------------------------


def test_malicious_pickles_are_refused_and_never_run(tmp_path):
    from gen3c.depth.moge import load_checkpoint
    from gen3c.io.depth import load_depth
    from gen3c.io.gen3c_sample import read_sample
    from gen3c.io.multiview import read_multiview
    from gen3c.models.convert import load_torch_file, read_torchscript_tensors

    marker = tmp_path / "pwned"
    pt = tmp_path / "evil.pt"
    torch.save({"model": {"net.x": torch.zeros(1)}, "payload": Evil(marker)}, pt)
    npy = tmp_path / "evil.npy"
    np.save(npy, np.array([Evil(marker)], dtype=object), allow_pickle=True)
    npz = tmp_path / "evil.npz"
    keys = ("depth_key_frames", "mask_key_frames", "K_key_frames", "w2cs_key_frames", "w2cs_all")
    np.savez(npz, images_key_frames=np.array([Evil(marker)], dtype=object), **{k: np.zeros(1) for k in keys})
    jit = tmp_path / "encoder.jit"  # a TorchScript-shaped zip whose data.pkl carries the payload
    with zipfile.ZipFile(jit, "w") as archive:
        archive.writestr("encoder/data.pkl", pickle.dumps(Evil(marker), protocol=2))
        archive.writestr("encoder/version", "3\n")
    attempts = [
        (Gen3cModelError, "trust_checkpoint", lambda: load_torch_file(pt)),
        (Gen3cModelError, "without running it", lambda: read_torchscript_tensors(jit)),
        (Gen3cInputError, "trust_checkpoint", lambda: read_sample(pt, (32, 48))),
        (Gen3cModelError, "never unpickled", lambda: load_checkpoint(pt)),
        (Gen3cInputError, "never unpickled", lambda: load_depth(npy)),
        (Gen3cInputError, "never unpickled", lambda: read_multiview(npz, (32, 48))),
    ]
    for error, message, attempt in attempts:
        with pytest.raises(error, match=message):
            attempt()
        assert not marker.exists()
    # The explicit trust flag is the only way in: then (and only then) the file's code runs.
    load_torch_file(pt, trust_checkpoint=True)
    assert marker.exists()


def test_every_load_in_the_library_is_pickle_free():
    """Each torch.load passes weights_only=True, except the two guarded by trust_checkpoint;
    numpy never allows pickles; nothing calls pickle.load."""
    trusted = 0
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        assert "allow_pickle=True" not in text and "pickle.load" not in text, path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            if "weights_only=False" in call:
                trusted += 1
                assert "trust_checkpoint" in text, path
            else:
                assert "weights_only=True" in call, (path, call)
    assert trusted == 2
    jit_loads = [p.name for p in SRC.rglob("*.py") if "torch.jit.load(" in p.read_text()]
    assert jit_loads == ["convert.py"]  # behind trust_checkpoint; read_torchscript_tensors otherwise


# -- checkpoint structure and checksums -----------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_ckpt")
    tiny_pipeline(seed=0).save_pretrained(folder)
    write_checksums(folder)
    return folder


@pytest.fixture
def copy(checkpoint, tmp_path):
    import shutil

    shutil.copytree(checkpoint, tmp_path / "ckpt")
    return tmp_path / "ckpt"


def _edit_dit(folder: Path, edit) -> None:
    state = load_file(str(folder / DIT))
    edit(state)
    save_file(state, str(folder / DIT))


def test_a_good_checkpoint_loads_and_verifies(checkpoint):
    verify_weights(checkpoint)
    files = json.loads((checkpoint / CHECKSUMS_FILE).read_text())["files"]
    assert DIT in files and verify_checksums(checkpoint) == len(files) == 12
    assert load_pipeline(checkpoint, dtype="float32", verify_checksums=True).transformer is not None


def test_from_pretrained_and_load_pipeline_check_a_checkpoint_alike(checkpoint, copy):
    """``load_pipeline`` is ``Gen3cPipeline.from_pretrained`` with gen3c's defaults (bfloat16, no
    T5): a broken DiT is the same one-line error from both, and ``verify_checksums`` works in both.
    ``from_pretrained`` used to skip the checks (diffusers' own error came through) and had no
    ``verify_checksums``."""
    from gen3c.pipelines.gen3c import Gen3cPipeline

    assert Gen3cPipeline.from_pretrained(checkpoint, verify_checksums=True).transformer.dtype == torch.float32  # diffusers' default
    assert load_pipeline(checkpoint).transformer.dtype == torch.bfloat16  # GEN3C's
    data = bytearray((copy / DIT).read_bytes())
    data[-1] ^= 0xFF  # one byte of the DiT's data, shapes untouched: only the checksum sees it
    (copy / DIT).write_bytes(bytes(data))
    for load in (Gen3cPipeline.from_pretrained, load_pipeline):
        with pytest.raises(Gen3cModelError, match="does not match its sha256"):
            load(copy, dtype="float32", verify_checksums=True)
    _edit_dit(copy, lambda s: s.update({"proj_out.weight": s["proj_out.weight"][:, :-1].contiguous()}))
    errors = []
    for load in (Gen3cPipeline.from_pretrained, load_pipeline):
        with pytest.raises(Gen3cModelError, match="key 'proj_out.weight' has shape") as caught:
            load(copy, dtype="float32")
        errors.append(str(caught.value))
    assert errors[0] == errors[1]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.update({"proj_out.weight": s["proj_out.weight"][:, :-1].contiguous()}), r"key 'proj_out.weight' has shape"),
        (lambda s: s.pop("proj_out.weight"), r"lacks 'proj_out.weight' that transformer/config.json needs"),
        (lambda s: s.update({"evil.weight": torch.zeros(2)}), r"holds 'evil.weight', which transformer/config.json has no place for"),
        (lambda s: s.update({"proj_out.weight": s["proj_out.weight"].to(torch.int32)}), r"is stored as I32, the model needs F32"),
    ],
    ids=["shape", "missing", "unexpected", "dtype"],
)
def test_weights_that_do_not_fit_the_config_name_file_and_key(copy, edit, message):
    _edit_dit(copy, edit)
    with pytest.raises(Gen3cModelError, match=rf"diffusion_pytorch_model.safetensors.*{message}|{message}") as info:
        load_pipeline(copy, dtype="float32")
    assert "\n" not in str(info.value) and "transformer" in str(info.value)


@pytest.mark.parametrize(
    "config, text, message",
    [
        ("transformer/config.json", "[1]", r"transformer/config.json is unreadable \(a JSON list, not an object\)"),
        ("vae/config.json", '"vae"', r"vae/config.json is unreadable \(a JSON string, not an object\)"),
        ("vae/config.json", "null", r"vae/config.json is unreadable \(a JSON null, not an object\)"),
        ("scheduler/scheduler_config.json", "[]", r"scheduler/scheduler_config.json is unreadable \(a JSON list, not an object\)"),
        ("scheduler/scheduler_config.json", "sigma_max", r"scheduler/scheduler_config.json does not describe an EDMEulerScheduler \(unsupported operand"),
    ],
    ids=["transformer-list", "vae-string", "vae-null", "scheduler-list", "scheduler-value"],
)
def test_a_config_that_is_no_json_object_or_holds_a_wrong_value_is_one_line(copy, config, text, message):
    """transformer/config.json holding a JSON list was an AttributeError traceback ('list' object
    has no attribute 'get'); scheduler_config.json holding one made diffusers look the folder up on
    the hub ("We couldn't connect to 'https://huggingface.co'"); a scheduler setting of the wrong
    type ("sigma_max": "big") was a TypeError traceback from inside diffusers."""
    path = copy / config
    if text == "sigma_max":
        path.write_text(json.dumps({**json.loads(path.read_text()), "sigma_max": "big"}))
    else:
        path.write_text(text)
    with pytest.raises(Gen3cModelError, match=rf"^checkpoint '.*ckpt': {message}.*: convert again$") as info:
        load_pipeline(copy, dtype="float32")
    assert "\n" not in str(info.value)


def test_only_what_a_wrong_scheduler_value_raises_is_called_a_wrong_scheduler_config(copy, monkeypatch):
    """Every Exception raised as the scheduler was built was called a malformed scheduler_config.json
    with the advice to convert again: a MemoryError (or an optional package missing, a failing disk)
    too, which converting again does not fix. Now only what a value of the wrong type or range
    raises is ("sigma_schedule": "linear", a ValueError, still is); the others go on as themselves."""
    import diffusers

    path = copy / "scheduler" / "scheduler_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "sigma_schedule": "linear"}))
    with pytest.raises(Gen3cModelError, match=r"scheduler_config\.json does not describe an EDMEulerScheduler \(Wrong value .*: convert again$"):
        load_pipeline(copy, dtype="float32")

    def exhausted(cls, *args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(diffusers.EDMEulerScheduler, "from_config", classmethod(exhausted))
    with pytest.raises(MemoryError):
        load_pipeline(copy, dtype="float32")


@pytest.mark.parametrize("denied", [DIT, "transformer/config.json", "model_index.json"])
def test_a_file_this_user_may_not_read_says_so_and_how_to_fix_it(copy, monkeypatch, denied):
    """A checkpoint file without read permission for this user (another user's conversion with a
    strict umask): the weights said "is not a readable safetensors file (No such file or directory:
    …): download or convert it again" (safetensors' words for EACCES), a config "is unreadable
    ([Errno 13] Permission denied …): convert again"; converting again is no fix. (Simulated: the
    tests run as root, whom permissions do not stop.)"""
    import builtins
    import io

    import safetensors

    path = str(copy / denied)
    real_open, real_safe_open = io.open, safetensors.safe_open

    def guarded_open(file, *args, **kwargs):
        if str(file) == path:
            raise PermissionError(13, "Permission denied", path)
        return real_open(file, *args, **kwargs)

    def guarded_safe_open(file, *args, **kwargs):
        if str(file) == path:  # what safetensors says of a file it may not open
            raise safetensors.SafetensorError(f"No such file or directory: {path}")
        return real_safe_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(safetensors, "safe_open", guarded_safe_open)
    with pytest.raises(Gen3cModelError) as info:
        load_pipeline(copy, dtype="float32")
    assert str(info.value) == f"{str(path)!r} cannot be read (Permission denied): make it readable to this user (chmod a+r) or run as its owner"


@pytest.mark.parametrize(
    "component, entry",
    [("transformer", ["diffusers", "UNet2DConditionModel"]), ("vae", [None, None]), ("scheduler", None)],
    ids=["another-class", "none", "not-a-pair"],
)
def test_a_model_index_declaring_another_model_is_one_line(copy, component, entry):
    """model_index.json naming another model's class for a component (a Stable Diffusion index
    copied in), or none: diffusers' own error came through cut short after 120 characters
    ("At the moment it is not possible to define the number of attention heads via ...")."""
    index = copy / "model_index.json"
    index.write_text(json.dumps({**json.loads(index.read_text()), component: entry}))
    with pytest.raises(Gen3cModelError, match=rf"^checkpoint '.*ckpt': model_index.json declares {component} as .*, gen3c loads .*, so it is not a gen3c checkpoint: ") as info:
        load_pipeline(copy, dtype="float32")
    assert "\n" not in str(info.value)


def test_truncated_weights_are_a_clear_error(copy):
    data = (copy / DIT).read_bytes()
    (copy / DIT).write_bytes(data[: len(data) // 2])
    with pytest.raises(Gen3cModelError, match="not a readable safetensors file"):
        verify_weights(copy)


@pytest.mark.parametrize("tamper", ["flip", "add", "drop", "traversal", "manifest"])
def test_checksums_catch_changed_files(copy, tamper):
    manifest = copy / CHECKSUMS_FILE
    if tamper == "flip":  # one byte of the DiT's data, shapes untouched: only the checksum sees it
        data = bytearray((copy / DIT).read_bytes())
        data[-1] ^= 0xFF
        (copy / DIT).write_bytes(bytes(data))
        verify_weights(copy)
        message = "does not match its sha256"
    elif tamper == "add":
        (copy / "transformer" / "extra.safetensors").write_bytes(b"x")
        message = "is not in checksums.json"
    elif tamper == "drop":
        (copy / "vae" / "config.json").unlink()
        message = "lacks vae/config.json"
    elif tamper == "traversal":
        doc = json.loads(manifest.read_text())
        doc["files"]["../../etc/passwd"] = "0" * 64
        manifest.write_text(json.dumps(doc))
        message = "outside the checkpoint"
    else:
        manifest.write_text("[1, 2")
        message = "is malformed"
    with pytest.raises(Gen3cModelError, match=message):
        verify_checksums(copy)


def test_a_malformed_checksums_file_in_a_deep_folder_is_named_by_its_start_and_its_end(tmp_path):
    """The malformed manifest of a checkpoint in a folder of over 200 characters was named raw and
    whole: a line as long as the path, unquoted. It is now quoted and cut around '…', as every
    path that names the input."""
    from gen3c.errors import quoted_path

    checkpoint = tmp_path / ("d" * 220)
    checkpoint.mkdir()
    (checkpoint / CHECKSUMS_FILE).write_text("[1, 2")
    with pytest.raises(Gen3cModelError) as refused:
        verify_checksums(checkpoint)
    message = str(refused.value)
    assert message.startswith(f"{quoted_path(checkpoint / CHECKSUMS_FILE)} is malformed (")
    assert str(checkpoint) not in message and len(message) < 300, message


def test_verify_checksums_flag_on_the_command_line(copy, box_scene, tmp_path):
    image, depth, _, _ = box_scene
    base = ["generate", "--input_image_path", str(image), "--depth_path", str(depth), "--fov", "60", "--resolution", "32x48",
            "--video_save_folder", str(tmp_path / "out"), "--generator", "gen3c", "--checkpoint_dir", str(copy)]  # fmt: skip
    (copy / CHECKSUMS_FILE).unlink()
    res = CliRunner().invoke(app, [*base, "--verify_checksums"])
    assert res.exit_code == 2 and "has no checksums.json" in " ".join(res.output.split())
    res = CliRunner().invoke(app, [*base, "--verify_checksums", "--checkpoint_dir", "nvidia/not-local"])
    assert res.exit_code == 2 and "local checkpoint folder" in " ".join(res.output.split())
    assert not (tmp_path / "out" / "output.mp4").exists()


@pytest.mark.parametrize("channels", [16, 17])
def test_a_checkpoint_of_another_model_family_is_refused_before_the_input_is_read(copy, box_scene, tmp_path, channels):
    """A Cosmos text-to-world (16 input channels) or video-to-world (17) DiT, whole and consistent
    with its config, given as GEN3C's (81). Before: it loaded, and the first sampler step stopped
    on "mat1 and mat2 shapes cannot be multiplied" with a traceback, after the input was read."""
    from diffusers import CosmosTransformer3DModel

    from gen3c.pipelines.gen3c import Gen3cPipeline

    config = CosmosTransformer3DModel.load_config(copy / "transformer")
    CosmosTransformer3DModel.from_config({**config, "in_channels": channels}).save_pretrained(copy / "transformer")
    message = (f"checkpoint {str(copy)!r}: transformer/config.json has in_channels {channels}, GEN3C's DiT takes 81 "
               "(16 latent + 1 condition mask + 64 for two cache buffers), so it is not a GEN3C checkpoint: ")  # fmt: skip
    with pytest.raises(Gen3cModelError) as caught:
        Gen3cPipeline.from_pretrained(copy)
    assert str(caught.value).startswith(message)
    image, depth, _, _ = box_scene
    args = ["generate", "--input_image_path", str(tmp_path / "missing.png"), "--depth_path", str(depth), "--fov", "60",
            "--resolution", "32x48", "--video_save_folder", str(tmp_path / "out"), "--generator", "gen3c", "--checkpoint_dir", str(copy)]  # fmt: skip
    res = CliRunner().invoke(app, args)  # refused before the (missing) input is looked at
    assert res.exit_code == 2 and " ".join(res.output.split()).startswith(f"error: {message}"), res.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["tiny", "tiny_fast"])
def test_the_packaged_models_ship_checksums_that_match_them(name):
    """A run record names its checkpoint by the sha256 of its checksums.json
    (``generator_settings.checkpoint_checksums_sha256``); the packaged models ship one that lists
    every file as it is (new weights need ``write_checksums`` again), so ``--verify_checksums``
    works on them too."""
    from gen3c.models.packaged import packaged_model_dir

    folder = packaged_model_dir(name)
    files = json.loads((folder / CHECKSUMS_FILE).read_text())["files"]
    assert "transformer/diffusion_pytorch_model.safetensors" in files and verify_checksums(folder) == len(files)


def test_a_failure_while_writing_checksums_leaves_the_old_manifest_whole(tmp_path, monkeypatch):
    """write_checksums wrote checksums.json in place: a write that failed part-way (a full disk)
    left a truncated manifest, which --verify_checksums then refused as malformed. It now
    writes a temporary file beside it and renames it."""
    import errno
    import hashlib
    import os

    (tmp_path / "config.json").write_text("{}")
    write_checksums(tmp_path)
    old = (tmp_path / CHECKSUMS_FILE).read_bytes()
    (tmp_path / "model_index.json").write_text('{"_class_name": "Gen3cPipeline"}')  # a file added since

    def half_then_disk_full(self, data, *args, **kwargs):
        with open(self, "wb") as f:
            f.write((data.encode() if isinstance(data, str) else data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patched:
        patched.setattr(Path, "write_text", half_then_disk_full)
        patched.setattr(Path, "write_bytes", half_then_disk_full)
        with pytest.raises(OSError, match="No space left on device"):
            write_checksums(tmp_path)
    assert (tmp_path / CHECKSUMS_FILE).read_bytes() == old  # the old manifest, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKSUMS_FILE, "config.json", "model_index.json"]  # no .part file left
    assert write_checksums(tmp_path) == tmp_path / CHECKSUMS_FILE
    files = json.loads((tmp_path / CHECKSUMS_FILE).read_text())["files"]
    assert files == {name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() for name in ("config.json", "model_index.json")}
