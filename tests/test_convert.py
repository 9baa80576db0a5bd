"""Checkpoint conversion: a synthetic checkpoint in GEN3C's official layout (official key names,
random weights, tiny configuration) converts to a gen3c checkpoint whose models compute exactly
what the same weights placed by hand into the diffusers models compute."""

from __future__ import annotations

import collections
import copy
import json
import os
import re
from pathlib import Path

import pytest
import torch
from tiny_model import tiny_components, tiny_tokenizer
from torch import Tensor, nn

from gen3c.errors import Gen3cInputError, Gen3cModelError
from gen3c.models import configs
from gen3c.models.convert import (
    DIT_FILE,
    T5_DIR,
    TOKENIZER_DIR,
    convert_checkpoint,
    dit_key,
    load_torch_file,
    tokenizer_key,
)
from gen3c.pipelines.spelling import keyword_spelling

TINY = {"transformer_config": configs.TRANSFORMER_TINY, "vae_config": configs.VAE_TINY, "log": None}

# -- official names, written from GEN3C's module structure (general_dit.py, blocks.py,
# -- attention.py, tokenizer/modules/layers3d.py), independently of gen3c.models.convert ------


def official_dit_name(key: str) -> str:
    """GEN3C's name (``net.``…) of a diffusers CosmosTransformer3DModel key."""
    fixed = {
        "patch_embed.proj.weight": "x_embedder.proj.1.weight",
        "time_embed.t_embedder.linear_1.weight": "t_embedder.1.linear_1.weight",
        "time_embed.t_embedder.linear_2.weight": "t_embedder.1.linear_2.weight",
        "time_embed.norm.weight": "affline_norm.weight",
        "norm_out.linear_1.weight": "final_layer.adaLN_modulation.1.weight",
        "norm_out.linear_2.weight": "final_layer.adaLN_modulation.2.weight",
        "proj_out.weight": "final_layer.linear.weight",
    }
    if key in fixed:
        return "net." + fixed[key]
    if key.startswith("learnable_pos_embed."):
        return "net.extra_pos_embedder." + key.split(".", 1)[1]
    m = re.match(r"transformer_blocks\.(\d+)\.(.*)", key)
    i, rest = m[1], m[2]
    block = f"net.blocks.block{i}.blocks"
    m = re.match(r"norm([123])\.linear_([12])\.weight", rest)
    if m:
        return f"{block}.{int(m[1]) - 1}.adaLN_modulation.{m[2]}.weight"
    m = re.match(r"attn([12])\.(\w+)(\.0)?\.weight", rest)
    if m:
        j = int(m[1]) - 1
        inner = {
            "to_q": "to_q.0",
            "norm_q": "to_q.1",
            "to_k": "to_k.0",
            "norm_k": "to_k.1",
            "to_v": "to_v.0",
            "to_out": "to_out.0",
        }
        return f"{block}.{j}.block.attn.{inner[m[2]]}.weight"
    inner = {"ff.net.0.proj.weight": "layer1.weight", "ff.net.2.weight": "layer2.weight"}
    return f"{block}.2.block.{inner[rest]}"


def official_tokenizer_name(key: str, levels: int) -> str:
    """GEN3C's tokenizer name of a diffusers AutoencoderKLCosmos key."""
    m = re.match(r"(quant_conv|post_quant_conv)\.(\w+)$", key)
    if m:
        return f"{m[1]}.conv3d.{m[2]}"
    part, rest = key.split(".", 1)
    conv = {"conv_s": "0.conv3d", "conv_t": "1.conv3d"}

    def resnet(tail: str) -> str:
        m = re.match(r"(conv[12])\.(conv_[st])\.(\w+)$", tail)
        if m:
            return f"{m[1]}.{conv[m[2]]}.{m[3]}"
        if tail.startswith("conv_shortcut."):
            return "nin_shortcut.conv3d." + tail.split(".", 1)[1]
        return tail  # norm1.norm.*, norm2.norm.*

    def attention(tail: str) -> str:
        names = {"to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}
        m = re.match(r"(to_q|to_k|to_v|to_out)(\.0)?\.(\w+)$", tail)
        return f"{names[m[1]]}.conv3d.{m[3]}" if m else tail

    m = re.match(r"(conv_in|conv_out)\.(conv_[st])\.(\w+)$", rest)
    if m:
        return f"{part}.{m[1]}.{conv[m[2]]}.{m[3]}"
    if rest.startswith("norm_out."):
        return f"{part}.{rest}"
    m = re.match(r"mid_block\.resnets\.([01])\.(.*)", rest)
    if m:
        return f"{part}.mid.block_{int(m[1]) + 1}.{resnet(m[2])}"
    m = re.match(r"mid_block\.(attentions|temp_attentions)\.0\.(.*)", rest)
    if m:
        return f"{part}.mid.attn_1.{0 if m[1] == 'attentions' else 1}.{attention(m[2])}"
    m = re.match(r"(down|up)_blocks\.(\d+)\.(.*)", rest)
    level = int(m[2]) if m[1] == "down" else levels - 1 - int(m[2])  # GEN3C: up.0 is the finest level
    tail = m[3]
    n = re.match(r"resnets\.(\d+)\.(.*)", tail)
    if n:
        return f"{part}.{m[1]}.{level}.block.{n[1]}.{resnet(n[2])}"
    n = re.match(r"(down|up)samplers\.0\.(conv[123])\.(\w+)$", tail)
    return f"{part}.{m[1]}.{level}.{n[1]}sample.{n[2]}.conv3d.{n[3]}"


class _Holder(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


def torchscript_archive(state: dict[str, Tensor], path: Path) -> None:
    """Save a TorchScript module whose state dict is ``state``."""
    root = _Holder()
    for key, value in state.items():
        *path_parts, leaf = key.split(".")
        module = root
        for part in path_parts:
            if part not in module._modules:
                module.add_module(part, _Holder())
            module = module._modules[part]
        if leaf in ("wavelets", "_arange"):
            module.register_buffer(leaf, value.clone())
        else:
            module.register_parameter(leaf, nn.Parameter(value.clone(), requires_grad=False))
    torch.jit.save(torch.jit.script(root), str(path))


def write_official_checkpoint(
    root: Path, parts: dict, *, extra_dit: dict | None = None, drop_dit: str | None = None
) -> None:
    """GEN3C's checkpoint folder for the models in ``parts`` (see tiny_components)."""
    dit = {official_dit_name(k): v.clone() for k, v in parts["transformer"].state_dict().items()}
    leftovers = {
        "logvar.0.freqs": torch.randn(128),
        "logvar.0.phases": torch.randn(128),
        "logvar.1.weight": torch.randn(1, 128),
        "net.pos_embedder.seq": torch.arange(16.0),
        "net.accum_video_sample_counter": torch.tensor(7),
        "net.blocks.block0.blocks.0.block.attn.attn_op._extra_state": torch.zeros(0, dtype=torch.uint8),
    }
    dit.update(leftovers)
    dit.update(extra_dit or {})
    if drop_dit:
        del dit[drop_dit]
    (root / DIT_FILE).parent.mkdir(parents=True)
    torch.save({"model": collections.OrderedDict(dit), "optimizer": {}, "iteration": 3}, root / DIT_FILE)

    levels = len(configs.VAE_TINY["encoder_block_out_channels"]) - 1
    tok = root / TOKENIZER_DIR
    tok.mkdir(parents=True)
    vae_state = {official_tokenizer_name(k, levels): v for k, v in parts["vae"].state_dict().items()}
    wavelets = {"wavelets": torch.tensor([0.7071, 0.7071]), "_arange": torch.arange(2)}
    enc = {k: v for k, v in vae_state.items() if k.startswith(("encoder.", "quant_conv."))}
    enc.update({f"encoder.patcher3d.{k}": v for k, v in wavelets.items()})
    dec = {k: v for k, v in vae_state.items() if k.startswith(("decoder.", "post_quant_conv."))}
    dec.update({f"decoder.unpatcher3d.{k}": v for k, v in wavelets.items()})
    assert len(enc) + len(dec) == len(vae_state) + 4
    torchscript_archive(enc, tok / "encoder.jit")
    torchscript_archive(dec, tok / "decoder.jit")
    g = torch.Generator().manual_seed(5)
    torch.save(
        (torch.randn(16 * 24, generator=g) * 0.1, torch.rand(16 * 24, generator=g) + 0.5), tok / "mean_std.pt"
    )

    t5 = root / T5_DIR
    from transformers import T5Config, T5ForConditionalGeneration

    full = T5ForConditionalGeneration(T5Config(**configs.T5_TINY))
    full.encoder.load_state_dict(parts["text_encoder"].encoder.state_dict())
    full.shared.load_state_dict(parts["text_encoder"].shared.state_dict())
    full.save_pretrained(t5)
    parts["tokenizer"].save_pretrained(t5)


def as_stored(transformer: nn.Module) -> nn.Module:
    """A float32 copy with the weights rounded as the conversion stores them (bfloat16, except
    the learnable positional embedding which stays float32)."""
    copied = copy.deepcopy(transformer).float()
    for name, p in copied.named_parameters():
        if not name.startswith("learnable_pos_embed"):
            p.data = p.data.to(torch.bfloat16).float()
    return copied


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    parts = tiny_components(seed=3)
    write_official_checkpoint(root, parts)
    out = root.parent / (root.name + "_converted")
    report = convert_checkpoint(root, out, **TINY)
    return parts, root, out, report


def test_every_key_is_accounted_for(converted):
    parts, root, out, report = converted
    assert report.ok
    dit = report.component("transformer")
    assert len(dit.mapped) == len(parts["transformer"].state_dict())
    assert {k for k, _ in dit.dropped} == {
        "logvar.0.freqs", "logvar.0.phases", "logvar.1.weight", "net.pos_embedder.seq",
        "net.accum_video_sample_counter", "net.blocks.block0.blocks.0.block.attn.attn_op._extra_state",
    }  # fmt: skip
    vae = report.component("vae")
    assert len(vae.mapped) == len(parts["vae"].state_dict())
    assert len(vae.dropped) == 4
    text = (out / "conversion_report.txt").read_text()
    assert (
        "net.blocks.block1.blocks.2.block.layer1.weight -> transformer_blocks.1.ff.net.0.proj.weight" in text
    )
    assert (
        "decoder.up.0.block.0.conv1.0.conv3d.weight -> decoder.up_blocks.2.resnets.0.conv1.conv_s.weight"
        in text
    )


def test_transformer_engine_extra_state_saved_as_bytes_io_converts_without_trust(tmp_path):
    # Older Transformer Engine versions saved _extra_state as io.BytesIO, which weights_only=True
    # refused: GEN3C's weights fetched by `gen3c generate` could then not convert at all (only
    # `gen3c convert --trust_checkpoint` has the flag).
    import io

    parts = tiny_components(seed=3)
    key = "net.blocks.block0.blocks.0.block.attn.attn_op._extra_state"
    write_official_checkpoint(tmp_path / "src", parts, extra_dit={key: io.BytesIO(b"te metadata")})
    report = convert_checkpoint(tmp_path / "src", tmp_path / "out", **TINY)
    assert report.ok
    assert key in {k for k, _ in report.component("transformer").dropped}
    # (Anything else that needs full unpickling is still refused: the test below.)


def test_converted_transformer_matches_weights_placed_by_hand(converted):
    from diffusers import CosmosTransformer3DModel

    parts, _, out, _ = converted
    reference = parts["transformer"].float()
    loaded = CosmosTransformer3DModel.from_pretrained(out / "transformer").float()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 3, 4, 6, generator=g)
    cond = torch.randn(1, 65, 3, 4, 6, generator=g)
    text = torch.randn(1, 7, configs.TRANSFORMER_TINY["text_embed_dim"], generator=g)
    kwargs = dict(hidden_states=x, timestep=torch.tensor([0.3]), encoder_hidden_states=text, fps=24,
                  condition_mask=cond, padding_mask=torch.zeros(1, 1, 4, 6), return_dict=False)  # fmt: skip
    with torch.no_grad():
        expected = reference(**kwargs)[0]
        got = loaded(**kwargs)[0]
    # bfloat16 storage is the only difference from the hand-placed float32 weights.
    bf16 = as_stored(reference)
    with torch.no_grad():
        expected_bf16 = bf16(**kwargs)[0]
    assert torch.equal(got, expected_bf16)
    assert torch.allclose(got, expected, atol=0.05 * expected.abs().max())


def test_converted_tokenizer_matches_weights_placed_by_hand(converted):
    from diffusers import AutoencoderKLCosmos

    parts, _, out, _ = converted
    reference = parts["vae"]
    loaded = AutoencoderKLCosmos.from_pretrained(out / "vae")
    video = torch.rand(1, 3, 9, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded._encode(video), reference._encode(video))
        z = reference._encode(video)
        assert torch.equal(loaded._decode(z).sample, reference._decode(z).sample)
    # GEN3C's mean_std.pt, viewed as (16, frames), keeps one chunk's 16 latent frames.
    stats = torch.load(Path(out.parent / out.name.replace("_converted", "")) / TOKENIZER_DIR / "mean_std.pt")
    expected_mean = stats[0].reshape(16, -1)[:, :16].flatten()
    assert torch.allclose(torch.tensor(loaded.config.latents_mean), expected_mean)


def test_converted_pipeline_reproduces_the_hand_built_one(converted):
    from gen3c.pipelines.gen3c import Gen3cPipeline
    from gen3c.pipelines.loading import load_pipeline

    parts, _, out, _ = converted
    loaded = load_pipeline(out, dtype=torch.float32)
    vae = copy.deepcopy(parts["vae"])
    vae.register_to_config(
        latents_mean=loaded.vae.config.latents_mean, latents_std=loaded.vae.config.latents_std
    )
    reference = Gen3cPipeline(**{**parts, "transformer": as_stored(parts["transformer"]), "vae": vae})
    reference.set_progress_bar_config(disable=True)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.text_encoder is None  # the cached prompts do not need T5
    g = torch.Generator().manual_seed(2)
    image = torch.rand(3, 32, 32, generator=g) * 2 - 1
    colors = torch.rand(9, 1, 3, 32, 32, generator=g) * 2 - 1
    masks = (torch.rand(9, 1, 1, 32, 32, generator=g) > 0.5).float()
    a = reference(image, colors, masks, num_steps=3).frames
    b = loaded(image, colors, masks, num_steps=3).frames
    assert loaded.text_encoder is None
    assert torch.allclose(a, b, atol=1e-4)
    # A prompt that is not cached loads T5 from the converted checkpoint on demand.
    c = loaded(image, colors, masks, num_steps=2, prompt="a cat").frames
    d = reference(image, colors, masks, num_steps=2, prompt="a cat").frames
    assert loaded.text_encoder is not None
    assert torch.allclose(c, d, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_convert_load_save_load_round_trips(converted, tmp_path, dtype):
    """A converted checkpoint loaded, saved with save_pretrained and loaded again gives the same
    tensors (values and dtypes) and the same configs, for every component."""
    from gen3c.pipelines.loading import load_pipeline

    out = converted[2]
    first = load_pipeline(out, dtype=dtype, load_text_encoder=True)
    first.save_pretrained(tmp_path / "saved")
    second = load_pipeline(tmp_path / "saved", dtype=dtype, load_text_encoder=True)
    for name in ("transformer", "vae", "text_encoder", "prompt_cache"):
        a, b = getattr(first, name).state_dict(), getattr(second, name).state_dict()
        assert a.keys() == b.keys(), name
        assert all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a), name
    for name in ("transformer", "vae", "scheduler"):
        a, b = dict(getattr(first, name).config), dict(getattr(second, name).config)
        a.pop("_name_or_path", None), b.pop("_name_or_path", None)
        assert a == b, name
    indexes = [json.loads((folder / "model_index.json").read_text()) for folder in (out, tmp_path / "saved")]
    components = [{k: v for k, v in index.items() if not k.startswith("_")} for index in indexes]  # (not _name_or_path)
    assert components[0] == components[1]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"drop_dit": "net.blocks.block1.blocks.1.block.attn.to_k.0.weight"},
            "missing key transformer_blocks.1.attn2.to_k.weight",
        ),
        (
            {"extra_dit": {"net.blocks.block0.blocks.0.block.attn.to_w.0.weight": torch.zeros(3)}},
            "unexpected key net.blocks.block0",
        ),
        (
            {"extra_dit": {"net.x_embedder.proj.1.weight": torch.zeros(24, 5)}},
            "shape of net.x_embedder.proj.1.weight",
        ),
        ({"extra_dit": {"ema_weights.something": torch.zeros(2)}}, "unexpected key ema_weights.something"),
    ],
)
def test_mismatched_keys_are_errors(tmp_path, change, message):
    write_official_checkpoint(tmp_path / "src", tiny_components(seed=4, with_text_encoder=True), **change)
    lines: list[str] = []
    with pytest.raises(Gen3cModelError, match="does not match GEN3C's layout"):
        convert_checkpoint(tmp_path / "src", tmp_path / "out", **{**TINY, "log": lines.append})
    assert message in "\n".join(lines)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("stored", [torch.int64, torch.complex64, "int key"])
def test_weights_that_are_no_floats_and_keys_that_are_no_names_are_reported(tmp_path, stored):
    """A DiT weight stored as integers was cast to bfloat16 silently (a complex one lost its
    imaginary part with only a torch warning); a key that is no string (a pickle can hold any)
    was a TypeError traceback from sorting the keys. Now each is an ERROR line of the report."""
    parts = tiny_components(seed=4, with_text_encoder=True)
    weight = "net.x_embedder.proj.1.weight"
    shape = parts["transformer"].state_dict()["patch_embed.proj.weight"].shape
    extra = {1: torch.zeros(2)} if stored == "int key" else {weight: torch.ones(shape, dtype=stored)}
    write_official_checkpoint(tmp_path / "src", parts, extra_dit=extra)
    lines: list[str] = []
    with pytest.raises(Gen3cModelError, match="does not match GEN3C's layout"):
        convert_checkpoint(tmp_path / "src", tmp_path / "out", **{**TINY, "log": lines.append})
    told = "ERROR unexpected key 1 " if stored == "int key" else f"ERROR unexpected key {weight} (stored as {str(stored)[6:]}, not floating point)"
    assert told in "\n".join(lines)
    assert not (tmp_path / "out").exists()


def test_key_tables_reject_strangers():
    assert dit_key("net.blocks.block0.blocks.2.block.attn.to_q.0.weight") is None  # the MLP has no attention
    assert dit_key("blocks.block0.blocks.0.adaLN_modulation.1.weight") is None  # outside net.
    assert tokenizer_key("encoder.up.0.block.0.norm1.norm.weight", 3) is None  # the encoder goes down
    assert tokenizer_key("decoder.up.3.block.0.norm1.norm.weight", 3) is None  # no such level


class _NotAWeight:
    pass


def test_files_that_need_unpickling_are_refused_unless_trusted(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"model": {"net.x": torch.zeros(1)}, "extra": _NotAWeight()}, path)
    with pytest.raises(Gen3cModelError, match="trust_checkpoint") as refused:
        load_torch_file(path)
    # The fix is gen3c convert's, whichever surface converted (gen3c.generate's trust_checkpoint= is
    # for legacy .pt inputs): the command is named whole, and the API's rewording leaves it so.
    assert "`gen3c convert SRC OUT --trust_checkpoint`" in str(refused.value)
    assert keyword_spelling(str(refused.value)) == str(refused.value)
    assert set(load_torch_file(path, trust_checkpoint=True)) == {"model", "extra"}


@pytest.mark.parametrize("trust", [False, True])
def test_a_file_that_is_no_torch_file_is_to_fetch_again_not_to_trust(tmp_path, trust):
    """An HTML error page saved as model.pt (a download the hub refused). Before: it read as a file
    that "holds Python objects that only full unpickling can load" and the fix offered was
    --trust_checkpoint; with it, pickle's own UnpicklingError came through with a traceback."""
    path = tmp_path / "model.pt"
    path.write_bytes(b"<html>404 Not Found</html>\n")
    with pytest.raises(Gen3cModelError) as caught:
        load_torch_file(path, trust_checkpoint=trust)
    assert str(caught.value).startswith(f"{str(path)!r} is not a readable torch file (") and str(caught.value).endswith("): download it again")
    assert "trust" not in str(caught.value)


def test_a_source_file_this_user_may_not_read_says_so_not_to_fetch_it_again(converted, monkeypatch):
    """model.pt or encoder.jit without read permission for this user said "is not a readable torch
    file ([Errno 13] Permission denied …): download it again" (resp. "damaged or another kind of
    file"); fetching 30 GB again is no fix. (Simulated: the tests run as root.)"""
    import builtins
    import io

    from gen3c.models.convert import read_torchscript_tensors

    root = converted[1]
    dit, jit = root / DIT_FILE, root / TOKENIZER_DIR / "encoder.jit"
    real_open = io.open

    def guarded_open(file, *args, **kwargs):
        if str(file) in (str(dit), str(jit)):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", guarded_open)
    monkeypatch.setattr(builtins, "open", guarded_open)
    for path, read in ((dit, load_torch_file), (jit, read_torchscript_tensors)):
        with pytest.raises(Gen3cModelError) as info:
            read(path)
        assert str(info.value) == f"{str(path)!r} cannot be read (Permission denied): make it readable to this user (chmod a+r) or run as its owner"


def test_missing_parts_name_what_and_where(tmp_path):
    (tmp_path / "src").mkdir()
    with pytest.raises(Gen3cModelError, match=r"Gen3C-Cosmos-7B/model.pt.*nvidia/Gen3C-Cosmos-7B"):
        convert_checkpoint(tmp_path / "src", tmp_path / "out", **TINY)
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "x").write_text("x")
    with pytest.raises(Gen3cModelError, match="not empty"):
        convert_checkpoint(tmp_path / "src", tmp_path / "out2", **TINY)


def test_a_wrong_folder_is_told_apart_and_the_right_one_named(converted, tmp_path):
    """The folders a user gives by mistake all got 'Gen3C-Cosmos-7B/model.pt is missing: expected
    SRC/Gen3C-Cosmos-7B/model.pt' (GEN3C's DiT folder itself: .../Gen3C-Cosmos-7B/Gen3C-Cosmos-7B/model.pt),
    which names neither the folder to pass nor that a converted checkpoint needs no conversion."""
    root, out = converted[1], converted[2]
    outer = tmp_path / "downloads"
    outer.mkdir()
    (outer / "checkpoints").symlink_to(root)
    cases = {
        root / "Gen3C-Cosmos-7B": f"pass {str(root)!r}",
        root / T5_DIR: f"pass {str(root)!r}",
        outer: f"pass {str(outer / 'checkpoints')!r}",
        out: "already a converted gen3c checkpoint",
    }
    for src, told in cases.items():
        with pytest.raises(Gen3cModelError, match=r"is not GEN3C's checkpoints folder") as err:
            convert_checkpoint(src, tmp_path / "out", **TINY)
        assert told in str(err.value) and "\n" not in str(err.value), str(err.value)
    (tmp_path / "snapshot").mkdir()
    (tmp_path / "snapshot" / "model.pt").write_bytes(b"the DiT alone, as the hub's nvidia/Gen3C-Cosmos-7B holds it")
    with pytest.raises(Gen3cModelError, match=r"holds one part of GEN3C's weights.*`gen3c download`"):
        convert_checkpoint(tmp_path / "snapshot", tmp_path / "out", **TINY)
    assert not (tmp_path / "out").exists()


def test_an_output_that_cannot_be_made_is_refused_before_the_weights_are_read(converted, tmp_path):
    """OUT under a file (or on a read-only disk) was found when the converted checkpoint was to be
    written, after minutes of reading and converting the 7B weights, as an OSError traceback."""
    _, root, _, _ = converted
    (tmp_path / "file").write_text("x")
    lines: list[str] = []
    with pytest.raises(Gen3cInputError, match=r"output folder '.*file/out' cannot be created: '.*file' is a file"):
        convert_checkpoint(root, tmp_path / "file" / "out", **{**TINY, "log": lines.append})
    assert lines == []  # nothing was read


@pytest.mark.parametrize("link", ["dangling", "loop"])
def test_an_output_that_is_a_link_to_nothing_is_refused_before_the_weights_are_read(converted, tmp_path, link):
    """OUT a symbolic link to nothing: a dangling one failed after the whole conversion, when the
    checkpoint was put in place (NotADirectoryError traceback); one that points at itself was a
    RuntimeError traceback ('Symlink loop')."""
    _, root, _, _ = converted
    out = tmp_path / "out"
    out.symlink_to(tmp_path / ("gone" if link == "dangling" else "out"))
    lines: list[str] = []
    with pytest.raises(Gen3cModelError, match=r"^output folder '.*out' is a symbolic link to '.*', which does not exist or loops: remove the link") as err:
        convert_checkpoint(root, out, **{**TINY, "log": lines.append})
    assert lines == [] and "\n" not in str(err.value)  # nothing was read
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("stats", [(torch.zeros(10), torch.ones(10)), (torch.zeros(32), torch.ones(48)), (torch.zeros(0), torch.ones(0))], ids=["not-per-channel", "unequal", "empty"])
def test_latent_statistics_of_the_wrong_size_are_one_line(converted, tmp_path, stats):
    """A mean_std.pt whose tensors do not split into the tokenizer's latent channels was a
    RuntimeError traceback ("shape '[16, -1]' is invalid for input of size 10")."""
    import shutil

    _, root, _, _ = converted
    shutil.copytree(root, tmp_path / "src")
    torch.save(stats, tmp_path / "src" / TOKENIZER_DIR / "mean_std.pt")
    with pytest.raises(Gen3cModelError, match=r"mean_std.pt' holds \d+ means and \d+ standard deviations, not the same whole number of values for each of the tokenizer's 16 latent channels: download it again"):
        convert_checkpoint(tmp_path / "src", tmp_path / "out", **TINY)
    assert not (tmp_path / "out").exists()


def test_overwrite_replaces_a_checkpoint_but_never_deletes_a_folder_that_is_none(converted, tmp_path):
    """--overwrite replaced OUT whatever it was: `gen3c convert SRC ~ --overwrite` (or a mistyped
    OUT) deleted every file the folder held. Now only a gen3c checkpoint (model_index.json) is
    replaced; an empty folder is written into as before."""
    import shutil

    _, root, out, _ = converted
    home = tmp_path / "home"
    (home / "thesis").mkdir(parents=True)
    (home / "thesis" / "draft.tex").write_text("years of work")
    lines: list[str] = []
    with pytest.raises(Gen3cModelError, match=r"^output folder '.*home' is not a gen3c checkpoint \(no model_index.json\), and overwrite would delete all it holds: pick a new folder"):
        convert_checkpoint(root, home, overwrite=True, **{**TINY, "log": lines.append})
    assert (home / "thesis" / "draft.tex").read_text() == "years of work" and lines == []
    shutil.copytree(out, tmp_path / "old_ckpt")
    (tmp_path / "old_ckpt" / "stale.txt").write_text("x")
    convert_checkpoint(root, tmp_path / "old_ckpt", overwrite=True, **TINY)
    assert not (tmp_path / "old_ckpt" / "stale.txt").exists() and (tmp_path / "old_ckpt" / "model_index.json").is_file()


def test_overwrite_never_deletes_another_pipelines_checkpoint(converted, tmp_path):
    """A folder with a model_index.json counted as a gen3c checkpoint: --overwrite deleted a Stable
    Diffusion checkpoint (or any diffusers pipeline's) given as OUT. Only a Gen3cPipeline's is
    replaced."""
    _, root, _, _ = converted
    other = tmp_path / "sd15"
    (other / "unet").mkdir(parents=True)
    (other / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"weights")
    (other / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}')
    with pytest.raises(Gen3cModelError, match=r"^output folder '.*sd15' is not a gen3c checkpoint \(its model_index.json declares the pipeline "
                       r"'StableDiffusionPipeline', not 'Gen3cPipeline'\), and overwrite would delete all it holds: pick a new folder"):
        convert_checkpoint(root, other, overwrite=True, **{**TINY, "log": None})
    (other / "model_index.json").write_text("[]")
    with pytest.raises(Gen3cModelError, match=r"\(its model_index.json names no pipeline \(_class_name\)\)"):
        convert_checkpoint(root, other, overwrite=True, **{**TINY, "log": None})
    assert (other / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == b"weights"


def test_overwrite_keeps_the_old_checkpoint_when_the_new_one_cannot_be_put_in_place(converted, tmp_path, monkeypatch):
    """--overwrite deleted the old checkpoint before the new one went into place: a failure or
    Ctrl-C in between left neither."""
    import shutil

    import gen3c.io.atomic

    _, root, out, _ = converted
    target = tmp_path / "ckpt"
    shutil.copytree(out, target)
    before = sorted(p.relative_to(target).as_posix() for p in target.rglob("*"))

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(gen3c.io.atomic, "publish", interrupted)  # the rename that puts it in place (replace_folder)
    with pytest.raises(KeyboardInterrupt):
        convert_checkpoint(root, target, overwrite=True, **{**TINY, "log": None})
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temporary folder left


def test_a_disk_too_small_is_refused_before_the_first_byte_and_a_full_one_is_one_line(converted, tmp_path, monkeypatch):
    """A conversion onto a disk without room failed half-way through writing, as an OSError
    (ENOSPC) traceback; now the free space is checked against the weights' size first, and a
    disk that fills up meanwhile is one line, with nothing kept."""
    import errno
    import shutil
    from collections import namedtuple

    import gen3c.models.convert as convert_module

    _, root, out, _ = converted
    needed = sum(p.stat().st_size for p in out.rglob("*.safetensors"))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(10**9, 10**9 - needed // 2, needed // 2))
    with pytest.raises(Gen3cModelError, match=r"^not enough free disk space for the converted checkpoint .*ckpt': about .* needed, .* free"):
        convert_checkpoint(root, tmp_path / "ckpt", **TINY)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    def full(_folder):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(convert_module, "write_checksums", full)
    with pytest.raises(Gen3cModelError, match=r"^the disk filled up while writing the converted checkpoint .*ckpt' .*No space left") as err:
        convert_checkpoint(root, tmp_path / "ckpt", **TINY)
    assert "\n" not in str(err.value) and list(tmp_path.iterdir()) == []


def test_tiny_tokenizer_round_trips(tmp_path):
    tok = tiny_tokenizer()
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tmp_path)(["a cat"]).input_ids == tok(["a cat"]).input_ids


def test_conversion_writes_a_checksum_manifest_that_verifies(converted):
    from gen3c.models.verify import CHECKSUMS_FILE, verify_checksums, verify_weights

    _, _, out, _ = converted
    files = json.loads((out / CHECKSUMS_FILE).read_text())["files"]
    assert "transformer/diffusion_pytorch_model.safetensors" in files and "conversion_report.txt" in files
    assert verify_checksums(out) == len(files)
    verify_weights(out)


def test_a_converted_checkpoint_is_readable_by_the_machines_other_users(converted):
    """safetensors >= 0.8 writes its files 0600: a weights cache shared on a server would be
    unreadable to everyone but the user who converted it. Every file and folder has the
    permissions a plain open()/mkdir() gives here."""
    _, _, out, _ = converted
    umask = os.umask(0)
    os.umask(umask)
    modes = {p.relative_to(out).as_posix(): p.stat().st_mode & 0o777 for p in [out, *out.rglob("*")]}
    assert modes["transformer/diffusion_pytorch_model.safetensors"] == 0o666 & ~umask
    assert all(mode == (0o777 if (out / name).is_dir() else 0o666) & ~umask for name, mode in modes.items()), modes


def test_torchscript_tensors_are_read_without_torch_jit_load(tmp_path):
    from gen3c.models.convert import read_torchscript_tensors

    state = {"a.b.weight": torch.rand(2, 3), "a.wavelets": torch.rand(4), "c.bias": torch.zeros(2, dtype=torch.float16)}
    torchscript_archive(state, tmp_path / "x.jit")
    got = read_torchscript_tensors(tmp_path / "x.jit")
    assert sorted(got) == sorted(state) and all(torch.equal(got[k], v) and got[k].dtype == v.dtype for k, v in state.items())
    (tmp_path / "bad.jit").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(Gen3cModelError, match="without running it"):
        read_torchscript_tensors(tmp_path / "bad.jit")


def test_a_damaged_torchscript_archive_is_to_fetch_again_not_to_trust(tmp_path):
    """An encoder.jit cut short (a download stopped). Before: "download it again, or if you trust
    it, convert it with --trust_checkpoint", where torch.jit.load cannot read it either."""
    from gen3c.models.convert import read_torchscript_tensors

    torchscript_archive({"a.weight": torch.rand(64, 64)}, tmp_path / "x.jit")
    data = (tmp_path / "x.jit").read_bytes()
    (tmp_path / "x.jit").write_bytes(data[: len(data) // 2])
    with pytest.raises(Gen3cModelError) as caught:
        read_torchscript_tensors(tmp_path / "x.jit")
    assert str(caught.value).endswith("it is damaged or another kind of file: download it again") and "trust" not in str(caught.value)


def test_temporary_folders_a_killed_conversion_left_are_removed_by_the_next(converted, tmp_path):
    """A `gen3c convert` killed while writing left its hidden .OUT.<12 hex> folder beside OUT for
    ever, and one stopped while deleting the checkpoint it replaced its .OUT.<12 hex>.old; the next
    conversion to OUT removes both, and leaves alone what a running conversion holds."""
    import fcntl
    import os

    _, root, _, _ = converted
    out = tmp_path / "ckpt"
    stale = tmp_path / ".ckpt.0123456789ab"
    (stale / "transformer").mkdir(parents=True)
    (stale / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"h" * 3000)
    replaced = tmp_path / ".ckpt.fedcba987654.old"  # an --overwrite stopped while deleting the old checkpoint
    (replaced / "vae").mkdir(parents=True)
    (replaced / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"v" * 2000)
    running = tmp_path / ".ckpt.ba9876543210"
    running.mkdir()
    (tmp_path / ".ckpt.ba9876543210.old").mkdir()  # the checkpoint it is swapping out: it may still put it back
    unrelated = tmp_path / ".other.0123456789ab"
    unrelated.mkdir()
    fd = os.open(running, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as the conversion writing into it holds it
        lines: list[str] = []
        convert_checkpoint(root, out, **{**TINY, "log": lines.append})
    finally:
        os.close(fd)
    left = [".ckpt.ba9876543210", ".ckpt.ba9876543210.old", ".other.0123456789ab", "ckpt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == left
    assert any("removed 2 temporary folders (5.0 kB) that a stopped conversion to" in line for line in lines)
    assert any(".ckpt.ba9876543210 is being written by another conversion" in line for line in lines)


def test_the_conversion_prints_gen3cs_lines_not_transformers_bars(converted, tmp_path, capfd):
    """`gen3c convert` printed transformers' raw bars between its own lines: "Loading weights:
    0%|…| 0/11 [00:00<?, ?it/s]" as T5 was read, "Writing model shards: …" as it was written."""
    root = converted[1]
    convert_checkpoint(root, tmp_path / "out", **{**TINY, "log": print})
    captured = capfd.readouterr()
    assert f"reading {root / T5_DIR}" in captured.out and f"done: {tmp_path / 'out'}" in captured.out, captured.out
    assert (tmp_path / "out" / "text_encoder").is_dir()  # T5 read and written: what printed the bars
    bars = [text for text in ("Loading weights", "Writing model shards", "it/s]") if text in captured.err + captured.out]
    assert not bars, captured.err
