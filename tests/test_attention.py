"""The DiT's attention processor and kernel choice (gen3c.models.attention)."""

import math
import warnings

import pytest
import torch

from gen3c.models import attention as attn_mod
from gen3c.models import configs
from gen3c.models.attention import (
    CosmosAttnProcessor,
    quantize_fp8,
    resolve_kernel,
    sdpa_attention,
    set_attention_kernel,
    smooth_keys,
)
from gen3c.models.speed import set_attention_backend


def tiny_transformer(device="cpu", dtype=torch.float32, **changes):
    from diffusers import CosmosTransformer3DModel

    torch.manual_seed(0)
    return CosmosTransformer3DModel(**{**configs.TRANSFORMER_TINY, **changes}).to(device=device, dtype=dtype).eval()


def dit_inputs(device="cpu", dtype=torch.float32, T=3, h=8, w=12):
    g = torch.Generator().manual_seed(1)
    make = lambda *s: torch.randn(*s, generator=g).to(device=device, dtype=dtype)  # noqa: E731
    extra = configs.TRANSFORMER_TINY["in_channels"] - 16
    return dict(
        hidden_states=make(1, 16, T, h, w),
        timestep=torch.tensor([0.5], device=device, dtype=dtype),
        encoder_hidden_states=make(1, 12, configs.TRANSFORMER_TINY["text_embed_dim"]),
        fps=24,
        condition_mask=make(1, extra, T, h, w),
        padding_mask=torch.zeros(1, 1, h * 8, w * 8, device=device, dtype=dtype),
        return_dict=False,
    )


def test_processor_computes_what_diffusers_cosmos_attention_does():
    model = tiny_transformer()
    kwargs = dit_inputs()
    with torch.no_grad():
        stock = model(**kwargs)[0]
        for kernel in (None, sdpa_attention):
            for block in model.transformer_blocks:
                block.attn1.set_processor(CosmosAttnProcessor(kernel))
                block.attn2.set_processor(CosmosAttnProcessor())
            assert torch.equal(model(**kwargs)[0], stock)


def test_diffusers_reads_the_processors_signature_without_building_it_at_every_call(monkeypatch):
    """diffusers' Attention.forward asks inspect.signature(processor.__call__) at every call; the
    processor's signature is built once, at import, and that call returns it (the same parameters,
    so the keyword arguments diffusers passes on are the same)."""
    import inspect

    model = tiny_transformer()
    set_attention_kernel(model, "sdpa")
    asked, built = [], []
    real_signature, real_build = inspect.signature, inspect._signature_from_function

    def signature(obj, *args, **kwargs):
        asked.append(getattr(obj, "__func__", None) is CosmosAttnProcessor.__call__)
        return real_signature(obj, *args, **kwargs)

    def build(sigcls, func, *args, **kwargs):
        built.append(func)
        return real_build(sigcls, func, *args, **kwargs)

    monkeypatch.setattr(inspect, "signature", signature)
    monkeypatch.setattr(inspect, "_signature_from_function", build)
    with torch.no_grad():
        model(**dit_inputs())
    assert asked.count(True) == 2 * len(model.transformer_blocks)  # diffusers still asks, once per attention
    assert CosmosAttnProcessor.__call__ not in built
    assert list(real_signature(model.transformer_blocks[0].attn1.processor.__call__).parameters) == [
        "attn", "hidden_states", "encoder_hidden_states", "attention_mask", "image_rotary_emb",
    ]  # fmt: skip


def test_auto_on_a_cpu_is_pytorch_sdpa_and_changes_nothing():
    assert resolve_kernel("auto_fp8", "cpu") == ("sdpa", None)
    model = tiny_transformer()
    kwargs = dit_inputs()
    with torch.no_grad():
        stock = model(**kwargs)[0]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # auto finding nothing faster is not worth a warning
            assert set_attention_backend(model, "auto") == "sdpa"
        assert torch.equal(model(**kwargs)[0], stock)
    assert isinstance(model.transformer_blocks[0].attn1.processor, CosmosAttnProcessor)
    assert model.transformer_blocks[0].attn1.processor.self_attention is sdpa_attention
    assert model.transformer_blocks[0].attn2.processor.self_attention is None  # cross-attention: the dispatcher


def test_no_backend_after_a_kernel_leaves_attention_to_diffusers(monkeypatch):
    """``set_attention_backend(model, None)`` says "diffusers" and means it: a gen3c kernel set
    before no longer computes, and the run record's attention says so (before: the kernel stayed,
    and the record named it)."""
    from gen3c.models import attention

    calls = []
    monkeypatch.setitem(attention._KERNEL_FUNCTIONS, "sdpa", lambda q, k, v: calls.append(1) or sdpa_attention(q, k, v))
    model = tiny_transformer()
    kwargs = dit_inputs()
    with torch.no_grad():
        stock = model(**kwargs)[0]
        set_attention_backend(model, "sdpa")
        model(**kwargs)
        assert calls and model._gen3c_attention_kernel == "sdpa"
        calls.clear()
        assert set_attention_backend(model, None) == "diffusers"
        assert torch.equal(model(**kwargs)[0], stock)
    assert calls == [] and model._gen3c_attention_kernel == "diffusers"


@pytest.mark.parametrize("kernel", ["flash4", "cudnn_fp8"])
def test_a_kernel_that_cannot_run_falls_back_with_one_line(kernel):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    model = tiny_transformer()
    with pytest.warns(UserWarning, match=rf"^attention kernel '{kernel}' is not available \({kernel} needs a CUDA GPU\); using PyTorch SDPA$"):
        assert set_attention_kernel(model, kernel) == "sdpa"


def test_auto_prefers_flash4_on_hopper_only_when_installed(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    capability = {"value": (9, 0)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability["value"])
    installed = {"flash_attn": True, "flash_attn.cute": True, "cudnn": True}
    monkeypatch.setattr(attn_mod.importlib.util, "find_spec", lambda name: object() if installed.get(name) else None)

    assert resolve_kernel("auto", "cuda") == ("flash4", None)
    assert resolve_kernel("cudnn_fp8", "cuda") == ("cudnn_fp8", None)  # fp8 is never chosen by auto
    assert resolve_kernel("auto_fp8", "cuda") == ("cudnn_fp8", None)  # … but by auto_fp8
    installed["cudnn"] = False
    assert resolve_kernel("auto_fp8", "cuda") == ("flash4", None)  # no cuDNN frontend: the best exact kernel, quietly
    installed["cudnn"] = True
    installed["flash_attn.cute"] = False  # FlashAttention-2's flash_attn alone is not FA4
    assert resolve_kernel("auto", "cuda") == ("sdpa", None)
    kernel, note = resolve_kernel("flash4", "cuda")
    assert kernel == "sdpa" and "pip install 'gen3c[fast]'" in note
    installed["flash_attn.cute"] = True
    capability["value"] = (8, 0)  # an A100: no FA4 kernels, no fp8 tensor cores
    assert resolve_kernel("auto", "cuda") == ("sdpa", None)
    assert "(compute capability 9.0/10.x), not 8.0" in resolve_kernel("cudnn_fp8", "cuda")[1]
    # the message names every capability the check accepts (before: "9.0/10.x", though 11.x runs it)
    assert "(compute capability 9.x, 10.x or 11.x), not 8.0" in resolve_kernel("flash4", "cuda")[1]
    capability["value"] = (11, 0)  # a Blackwell of capability 11 (Thor): FA4's kernels run there
    assert resolve_kernel("flash4", "cuda") == ("flash4", None)
    capability["value"] = (8, 0)
    # Ada (L40S, RTX 4090) and the RTX Blackwells have fp8 tensor cores but no cuDNN fp8
    # attention kernel: auto_fp8 (the fastest preset) quietly takes what auto takes there.
    for cc in ((8, 9), (12, 0)):
        capability["value"] = cc
        assert resolve_kernel("auto_fp8", "cuda") == ("sdpa", None)
        assert f"not {cc[0]}.{cc[1]}" in resolve_kernel("cudnn_fp8", "cuda")[1]
    capability["value"] = (10, 0)  # B200: both
    assert resolve_kernel("auto_fp8", "cuda") == ("cudnn_fp8", None)
    assert resolve_kernel("auto", "cuda") == ("flash4", None)
    capability["value"] = (9, 0)
    assert resolve_kernel("auto", "cuda", head_dim=12) == ("sdpa", None)  # FA4 takes multiples of 8
    assert "multiples of 16, not 24" in resolve_kernel("cudnn_fp8", "cuda", head_dim=24)[1]
    assert resolve_kernel("cudnn_fp8", "cuda", head_dim=32) == ("cudnn_fp8", None)
    assert resolve_kernel("auto", "cuda", dtype=torch.float32) == ("sdpa", None)  # FA4 takes bf16/fp16 only
    assert resolve_kernel("cudnn_fp8", "cuda", dtype=torch.float32) == ("cudnn_fp8", None)  # it quantises anyway


def test_centring_the_keys_leaves_attention_unchanged():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 50, 3, 16, generator=g, dtype=torch.float64) for _ in range(3))
    k = k + 5.0 * torch.randn(2, 1, 3, 16, generator=g, dtype=torch.float64)  # a large shared offset per head
    smoothed = smooth_keys(k)
    assert smoothed.mean(dim=1).abs().max() < 1e-12
    assert smoothed.abs().max() < k.abs().max() / 2  # the offset no longer takes the range
    torch.testing.assert_close(sdpa_attention(q, smoothed, v), sdpa_attention(q, k, v), rtol=1e-10, atol=1e-10)


def test_fp8_quantisation_scale_and_round_trip():
    x = torch.tensor([[-3.0, 0.5, 1.25, 2.0]])
    q, scale = quantize_fp8(x)
    assert q.dtype == torch.float8_e4m3fn and scale.shape == (1, 1, 1, 1)
    assert scale.item() == pytest.approx(3.0 / 448)
    assert q.float()[0, 0].item() == -448.0  # the largest magnitude maps to e4m3's largest finite value
    # e4m3 keeps 3 mantissa bits: every value within half a step (2^-4 relative) of itself
    restored = q.float() * scale.reshape(())
    assert torch.all((restored - x).abs() <= x.abs() * 2**-4 + 1e-7)


def test_custom_ops_trace_with_shapes_only():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        q = torch.empty(1, 64, 4, 32, dtype=torch.bfloat16)
        assert torch.ops.gen3c.flash4_attention(q, q, q, 0.1).shape == (1, 64, 4, 32)
        # FA4 writes a contiguous output also for strided inputs (here a (B, H, S, D) tensor's view)
        view = torch.empty(1, 4, 64, 32, dtype=torch.bfloat16).transpose(1, 2)
        assert torch.ops.gen3c.flash4_attention(view, view, view, 0.1).is_contiguous()
        q8 = torch.empty(1, 64, 4, 32, dtype=torch.float8_e4m3fn)
        s = torch.empty(1, 1, 1, 1)
        out = torch.ops.gen3c.cudnn_sdpa_fp8(q8, q8, q8, s, s, s, 0.1)
        assert out.shape == (1, 64, 4, 32) and out.dtype == torch.float8_e4m3fn


def test_hopper_tile_refused_falls_back_but_out_of_memory_is_raised(monkeypatch):
    """An FA4 that refuses the tile request is asked no more (its own tile is used); running out
    of memory is raised as it is and does not turn the tile off for the rest of the process.
    (FA4's entry point is replaced by one that raises: only the handling here is under test.)"""
    import sys
    import types

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(attn_mod, "_hopper_tile_accepted", [True])
    raised = {}

    def refusing_fwd(*args, **kwargs):
        raise raised["error"]

    interface = types.ModuleType("flash_attn.cute.interface")
    interface._flash_attn_fwd = refusing_fwd
    monkeypatch.setitem(sys.modules, "flash_attn.cute.interface", interface)
    q = torch.zeros(1, 8, 2, 128, dtype=torch.bfloat16)
    raised["error"] = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(torch.OutOfMemoryError):
        attn_mod._flash4_hopper_tiled(q, q, q, 0.1)
    assert attn_mod._hopper_tile_accepted[0]
    raised["error"] = TypeError("_flash_attn_fwd() got an unexpected keyword argument 'tile_mn'")
    assert attn_mod._flash4_hopper_tiled(q, q, q, 0.1) is None
    assert not attn_mod._hopper_tile_accepted[0]
    assert attn_mod._flash4_hopper_tiled(q, q, q, 0.1) is None  # not asked again



def test_shapes_cudnn_refuses_run_on_sdpa_from_the_same_fp8_inputs(monkeypatch):
    """A graph cuDNN will not build (no fp8 plan for that sequence length or GPU) is noted once
    and computed by SDPA from the same e4m3 inputs, in the op's output format; it is not tried
    again for that shape. (The graph builder is replaced by one that refuses, as cuDNN's support
    check does: only the handling here is under test.)"""
    tries = []

    def refusing(*key):
        tries.append(key)
        raise RuntimeError("cudnnGraphNotSupportedError: No valid execution plans built.")

    monkeypatch.setattr(attn_mod, "_cudnn_fp8_graph", refusing)
    monkeypatch.setattr(attn_mod, "_cudnn_fp8_refused", set())
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 140, 2, 16, generator=g) for _ in range(3))
    ref = sdpa_attention(q, k, v)
    with pytest.warns(UserWarning, match=r"cuDNN built no fp8 attention for \(B, S, H, D\) = \(1, 140, 2, 16\)"):
        out = attn_mod.cudnn_fp8_attention(q, k + 2.0, v)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert ((out - ref).norm() / ref.norm()).item() < 0.08  # e4m3 inputs and output, as cuDNN's
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second note
        again = attn_mod.cudnn_fp8_attention(q, k + 2.0, v)
    assert torch.equal(again, out) and len(tries) == 1

# -- on a GPU (run on the device) ----------------------------------------------------------------


def _gpu_kernel_available(kernel: str) -> bool:
    return torch.cuda.is_available() and attn_mod.kernel_unavailable_reason(kernel, "cuda") is None


def _random_qkv(S=4096, H=8, D=128, device="cuda"):
    g = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(1, S, H, D, device=device, generator=g, dtype=torch.bfloat16) for _ in range(3))
    return q, k + 2.0, v  # keys with a shared offset, as after RoPE on real features


@pytest.mark.skipif(not _gpu_kernel_available("flash4"), reason="needs flash-attn-4 on a Hopper/Blackwell GPU")
def test_flash4_matches_sdpa():
    q, k, v = _random_qkv()
    ref = sdpa_attention(q.float(), k.float(), v.float())
    out = attn_mod.flash4_attention(q, k, v).float()
    assert ((out - ref).norm() / ref.norm()).item() < 1e-2


@pytest.mark.skipif(
    not _gpu_kernel_available("flash4") or torch.cuda.get_device_capability()[0] != 9, reason="needs flash-attn-4 on a Hopper GPU"
)
def test_flash4_hopper_tile_is_taken_and_matches_fa4_bit_for_bit():
    from flash_attn.cute import flash_attn_func

    q, k, v = _random_qkv()
    tiled = attn_mod._flash4_hopper_tiled(q, k, v, q.shape[-1] ** -0.5)
    assert tiled is not None and attn_mod._hopper_tile_accepted[0]
    default = flash_attn_func(q, k, v, softmax_scale=q.shape[-1] ** -0.5, causal=False)
    assert torch.equal(tiled, default[0] if isinstance(default, tuple) else default)


@pytest.mark.skipif(not _gpu_kernel_available("cudnn_fp8"), reason="needs nvidia-cudnn-frontend on an fp8 GPU")
def test_cudnn_fp8_attention_close_to_exact():
    q, k, v = _random_qkv()
    ref = sdpa_attention(q.float(), k.float(), v.float())
    out = attn_mod.cudnn_fp8_attention(q, k, v).float()
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert ((out - ref).norm() / ref.norm()).item() < 0.1
    assert math.isfinite(out.sum().item())


@pytest.mark.skipif(not _gpu_kernel_available("flash4"), reason="needs flash-attn-4 on a Hopper/Blackwell GPU")
def test_compiled_block_with_flash4_has_no_graph_break():
    from gen3c.models.speed import compile_blocks

    model = tiny_transformer("cuda", torch.bfloat16, attention_head_dim=32)  # FA4: multiples of 8 channels
    kwargs = dit_inputs("cuda", torch.bfloat16)
    with torch.no_grad():
        assert set_attention_kernel(model, "flash4") == "flash4"  # not a fallback to SDPA
        eager = model(**kwargs)[0].float()
        compile_blocks(model)  # fullgraph=True: a graph break is an error
        compiled = model(**kwargs)[0].float()
    assert ((compiled - eager).norm() / eager.norm()).item() < 2e-2


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
@pytest.mark.parametrize("kernel", ["flash4", "cudnn_fp8"])
def test_kernels_run_on_a_gpu_that_is_not_the_current_one(kernel):
    """FA4 and cuDNN launch on the current device: the ops must make it the inputs' (a DiT on cuda:1)."""
    if attn_mod.kernel_unavailable_reason(kernel, "cuda:1") is not None:
        pytest.skip(attn_mod.kernel_unavailable_reason(kernel, "cuda:1"))
    q, k, v = _random_qkv(S=1024, device="cuda:1")
    ref = sdpa_attention(q.float(), k.float(), v.float())
    with torch.cuda.device(0):
        out = attn_mod._KERNEL_FUNCTIONS[kernel](q, k, v)
    torch.cuda.synchronize("cuda:1")
    assert out.device == q.device
    assert ((out.float() - ref).norm() / ref.norm()).item() < (1e-2 if kernel == "flash4" else 0.1)
