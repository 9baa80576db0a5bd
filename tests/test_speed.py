"""Speed settings of the DiT: errors on CPU, and exactness checks that run where a GPU is."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from gen3c.errors import Gen3cInputError
from gen3c.models import configs
from gen3c.models.speed import Fp8Linear, fp8_supported, set_attention_backend, use_fp8_matmuls


def tiny_transformer(device="cpu", dtype=torch.float32):
    from diffusers import CosmosTransformer3DModel

    torch.manual_seed(0)
    return CosmosTransformer3DModel(**configs.TRANSFORMER_TINY).to(device=device, dtype=dtype).eval()


def dit_inputs(device, dtype, T=3, h=4, w=6):
    """Random inputs of one forward of a TRANSFORMER_TINY-shaped DiT."""
    make = lambda *shape: torch.randn(*shape, device=device, dtype=dtype)  # noqa: E731
    return dict(
        hidden_states=make(1, 16, T, h, w),
        timestep=torch.tensor([0.5], device=device, dtype=dtype),
        encoder_hidden_states=make(1, 8, configs.TRANSFORMER_TINY["text_embed_dim"]),
        fps=24,
        condition_mask=make(1, configs.TRANSFORMER_TINY["in_channels"] - 16, T, h, w),
        padding_mask=torch.zeros(1, 1, h * 8, w * 8, device=device, dtype=dtype),
        return_dict=False,
    )


def test_fp8_needs_a_capable_gpu(monkeypatch):
    """A DiT on the CPU is refused with our error, also on a host with an fp8 GPU (where
    torch.cuda.get_device_capability would raise for the CPU device)."""
    with pytest.raises(Gen3cInputError, match="fp8 matmuls need"):
        use_fp8_matmuls(tiny_transformer())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert fp8_supported("cuda") and fp8_supported(torch.device("cuda", 0)) and fp8_supported()
    assert not fp8_supported("cpu") and not fp8_supported(torch.device("cpu"))
    with pytest.raises(Gen3cInputError, match="fp8 matmuls need"):
        use_fp8_matmuls(tiny_transformer())
    # A capable device but a float32 DiT: refused in words, not by _scaled_mm at the first forward.
    from gen3c.models import speed

    monkeypatch.setattr(speed, "fp8_supported", lambda device=None: True)
    with pytest.raises(Gen3cInputError, match="bfloat16 or float16, not float32: pass --dtype bfloat16"):
        use_fp8_matmuls(tiny_transformer().float())


def test_fp8_matmuls_and_a_compile_that_cannot_run_on_a_cpu_are_refused_before_anything_loads(monkeypatch, box_scene, tmp_path):
    """--fp8_matmul where no CUDA GPU computes (a CPU run) was refused by use_fp8_matmuls, after
    the input was read and the weights loaded; --compile on a CPU without a C++ compiler died in
    inductor's traceback at the first step. Now each in one line, before either."""
    from torch._inductor import cpp_builder, exc
    from typer.testing import CliRunner

    from gen3c.cli import app
    from gen3c.models.speed import FP8_MATMULS_NEED
    from gen3c.pipelines import loading, request

    def loaded(*args, **kwargs):
        raise AssertionError("loaded before the refusal")

    def no_compiler():
        raise exc.InvalidCxxCompiler

    monkeypatch.setattr(loading, "checkpoint_folder", loaded)
    monkeypatch.setattr(loading, "load_pipeline", loaded)
    monkeypatch.setattr(request, "load_scene", loaded)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU machine, also on a GPU host
    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    no_cxx = r"^compile=True on a CPU needs a C\+\+ compiler, which inductor builds the DiT's kernels with \(No working C\+\+ compiler .*\): install g\+\+"
    for device in (None, "cpu"):
        with pytest.raises(Gen3cInputError) as refused:
            loading.load_generator("tiny", fp8_matmul=True, device=device)
        assert str(refused.value) == FP8_MATMULS_NEED
        with pytest.raises(Gen3cInputError, match=no_cxx):
            loading.load_generator("tiny", compile=True, device=device)
    image, depth, _, _ = box_scene
    common = ["generate", "--input_image_path", str(image), "--depth_path", str(depth), "--fov", "60",
              "--video_save_folder", str(tmp_path), "--generator", "gen3c", "--model", "tiny"]  # fmt: skip
    res = CliRunner().invoke(app, [*common, "--fp8_matmul"])
    assert res.exit_code == 2 and res.output.strip() == f"error: {FP8_MATMULS_NEED}", res.output
    res = CliRunner().invoke(app, [*common, "--compile"])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1 and "--compile on a CPU needs a C++ compiler" in res.output
    # With a compiler, --compile on a CPU is honoured (a slow first step, as --help says): not refused.
    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", lambda: "g++")
    with pytest.raises(AssertionError, match="loaded before the refusal"):
        loading.load_generator("tiny", compile=True, device="cpu")
    # With CUDA here (device None or "cuda") the GPU's fp8 tensor cores are asked once the DiT is placed: not refused now.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for device in (None, "cuda"):
        with pytest.raises(AssertionError, match="loaded before the refusal"):
            loading.load_generator("tiny", fp8_matmul=True, device=device, num_gpus=2)
    with pytest.raises(Gen3cInputError, match="fp8 matmuls need a CUDA GPU"):  # a torchrun launch's ranks on CPUs (gloo)
        loading.load_generator("tiny", fp8_matmul=True, device="cpu", num_gpus=2)


def test_fp8_matmuls_on_float32_weights_name_the_dtype_setting(monkeypatch):
    """--fp8_matmul with --dtype float32 on an fp8 GPU told the command line to load the model
    "with dtype=torch.bfloat16", a Python argument; each surface is now told its own setting."""
    from gen3c.models import speed
    from gen3c.pipelines import loading

    monkeypatch.setattr(speed, "fp8_supported", lambda device=None: True)  # an fp8 GPU, pretended on the CPU
    monkeypatch.setattr(speed, "check_kernels_device", lambda *args, **kwargs: None)
    with pytest.raises(Gen3cInputError) as refused:
        loading.generator_from_options({"model": "tiny", "fp8_matmul": True, "dtype": "float32", "device": "cpu"})
    assert str(refused.value) == "--fp8_matmul needs the DiT in bfloat16 or float16, not float32: pass --dtype bfloat16"
    with pytest.raises(Gen3cInputError) as refused:
        loading.load_generator("tiny", fp8_matmul=True, dtype="float32", device="cpu")
    assert str(refused.value) == 'fp8_matmul=True needs the DiT in bfloat16 or float16, not float32: pass dtype="bfloat16"'


def test_compile_help_says_what_it_does_on_a_cpu():
    """--compile is an explicit opt-in that a CPU honours (no preset compiles there): --help says
    so, and what it costs and needs, instead of only the GPU's ~10 s."""
    import typer.main

    from gen3c.cli import app

    helps = {p.name: " ".join((p.help or "").split()) for p in typer.main.get_command(app).commands["generate"].params}
    assert "--compile on a CPU is honoured: inductor builds C++ kernels (a C++ compiler is needed)" in helps["compile"]


def test_fp8_matmuls_take_a_resident_dit_beside_an_offloaded_tokenizer_and_t5(monkeypatch):
    """GEN3C's --offload_tokenizer / --offload_text_encoder_model leave the DiT resident: its
    matmuls run in fp8 (before: refused once the weights had loaded, "drop ... the DiT offloading",
    though the DiT was not offloaded); an offloaded or float8-stored DiT is still refused."""
    from tiny_model import tiny_pipeline

    from gen3c.models import speed
    from gen3c.models.memory import memory_plan
    from gen3c.pipelines.loading import apply_speed_settings
    from gen3c.pipelines.presets import speed_settings

    replaced = []
    monkeypatch.setattr(speed, "use_fp8_matmuls", replaced.append)  # the GPU's part (tests above)
    pipe = tiny_pipeline(seed=0, with_text_encoder=False)
    settings = speed_settings("exact", fp8_matmul=True, compile=False)
    apply_speed_settings(pipe.configure_memory(memory_plan(offload_tokenizer=True, offload_text_encoder_model=True), "cpu"), settings)
    assert replaced == [pipe.transformer]
    for plan in (memory_plan(offload_diffusion_transformer=True), memory_plan("model_offload"), memory_plan(fp8=True)):
        pipe.memory = plan  # (placing a float8 copy is not needed to be refused)
        with pytest.raises(Gen3cInputError, match="--fp8_matmul needs the DiT resident in GPU memory in bf16"):
            apply_speed_settings(pipe, settings)
    assert len(replaced) == 1


def test_unknown_attention_backend_is_a_clear_error():
    from gen3c.pipelines.presets import speed_settings

    # before: "not available here", diffusers' list of names cut at 120 characters, after the weights loaded
    unknown = r"--attention_backend 'warp_drive' is unknown: use auto, auto_fp8, sdpa, flash4, cudnn_fp8, or a diffusers attention backend \(flash, "
    with pytest.raises(Gen3cInputError, match=unknown):
        set_attention_backend(tiny_transformer(), "warp_drive")
    with pytest.raises(Gen3cInputError, match=unknown):
        speed_settings("fast", attention_backend="warp_drive")  # refused before a model loads
    assert speed_settings(attention_backend="native").attention_backend == "native"  # a diffusers backend name


def _cpu_scaled_mm_takes_row_scales() -> bool:
    """Whether this torch's CPU ``_scaled_mm`` takes row-wise scales (2.11's took per-tensor ones only)."""
    a = torch.ones(16, 16).to(torch.float8_e4m3fn)
    try:
        torch._scaled_mm(a, a.t(), scale_a=torch.ones(16, 1), scale_b=torch.ones(1, 16), out_dtype=torch.bfloat16)
    except RuntimeError:
        return False
    return True


CPU_ROWWISE = pytest.mark.skipif(not _cpu_scaled_mm_takes_row_scales(), reason="this torch's CPU _scaled_mm takes per-tensor scales only")
FP8_DEVICES = [
    pytest.param("cpu", marks=CPU_ROWWISE),
    pytest.param("cuda", marks=pytest.mark.skipif(not fp8_supported(), reason="needs fp8 tensor cores")),
]


@pytest.mark.parametrize("device", FP8_DEVICES)
def test_fp8_linear_close_to_bf16(device):
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 512).to(device=device, dtype=torch.bfloat16)
    x = torch.randn(4, 100, 256, device=device, dtype=torch.bfloat16)
    ref = lin(x).float()
    out = Fp8Linear(lin)(x).float()
    rel = ((out - ref).norm() / ref.norm()).item()
    assert out.shape == ref.shape and rel < 0.05


def test_gelu_fp8_rowwise_kernel_matches_its_definition():
    """The fused GELU + row-wise e4m3 kernel of the fp8 MLP, run in Triton's interpreter on the CPU
    (chosen at import, hence a subprocess): rows of a width that is not a power of two, a zero row."""
    pytest.importorskip("triton")
    code = textwrap.dedent(
        """
        import torch
        from gen3c.models.speed import gelu_fp8_rowwise_reference, gelu_fp8_rowwise_triton
        torch.manual_seed(0)
        x = (torch.randn(6, 300) * torch.tensor([0.01, 0.5, 1, 3, 8, 0]).unsqueeze(1)).to(torch.bfloat16)
        out, scale = gelu_fp8_rowwise_triton(x)
        ref_out, ref_scale = gelu_fp8_rowwise_reference(x)
        y = torch.nn.functional.gelu(x.float())
        assert out.dtype == torch.float8_e4m3fn and out.shape == (6, 300) and scale.shape == (6, 1)
        torch.testing.assert_close(scale, ref_scale, rtol=1e-5, atol=0)
        assert scale[5].item() == (torch.tensor(1e-12) / 448).item() and not out[5].float().any()
        # each row's largest |gelu| lands on e4m3's largest value; e4m3 keeps 3 mantissa bits
        # Triton's interpreter (not the GPU) rounds float32 -> e4m3 wrongly where the rounding carries
        # into the next power of two, and for subnormals: compare the values everywhere else
        # (checked everywhere on the GPU by test_fp8_feed_forward_close_to_bf16_and_to_unfused_fp8).
        ref = ref_out.float().abs()
        fair = (ref >= 2**-6) & (torch.frexp(ref).mantissa != 0.5)
        assert fair[:5].float().mean() > 0.7  # row 5 is all zeros
        assert torch.equal(out.float()[fair], ref_out.float()[fair])
        error = (out.float() * scale - y).abs()[fair]
        assert (error <= y.abs()[fair] / 16).all(), error.max()
        print("ok")
        """
    )
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]


def test_gelu_fp8_rowwise_op_registration():
    """The op's fake (what torch.compile traces with) agrees with its kernel in shapes, dtypes
    and strides, also for a strided input, for which the Triton kernel writes contiguous outputs."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    x = torch.randn(300, 6, dtype=torch.bfloat16).t()  # (6, 300), not contiguous
    torch.library.opcheck(torch.ops.gen3c.gelu_fp8_rowwise.default, (x,))
    with FakeTensorMode() as mode:
        out, scale = torch.ops.gen3c.gelu_fp8_rowwise(mode.from_tensor(x))
        assert out.shape == (6, 300) and out.dtype == torch.float8_e4m3fn and out.is_contiguous()
        assert scale.shape == (6, 1) and scale.dtype == torch.float32


@pytest.mark.parametrize("device", FP8_DEVICES)
def test_fp8_feed_forward_close_to_bf16_and_to_unfused_fp8(device):
    """The fp8 MLP (fused GELU + row quantisation; on the CPU its reference, on a GPU the Triton
    kernel): two e4m3 GEMMs cost ~5 % relative error against bf16, and fusing changes only which
    values round where (the unfused path quantises the bf16-rounded GELU)."""
    from diffusers.models.attention import FeedForward

    from gen3c.models.speed import Fp8FeedForward

    torch.manual_seed(0)
    ff = FeedForward(256, mult=4, activation_fn="gelu", bias=False).to(device=device, dtype=torch.bfloat16).eval()
    x = torch.randn(3, 100, 256, device=device, dtype=torch.bfloat16)
    with torch.no_grad():
        ref = ff(x).float()
        fused = Fp8FeedForward(ff.net[0].proj, ff.net[2])(x)
        unfused = Fp8Linear(ff.net[2])(torch.nn.functional.gelu(Fp8Linear(ff.net[0].proj)(x))).float()
    assert fused.dtype == torch.bfloat16 and fused.shape == ref.shape
    assert ((fused.float() - ref).norm() / ref.norm()).item() < 0.08
    assert ((fused.float() - unfused).norm() / unfused.norm()).item() < 0.03


@pytest.mark.skipif(torch.cuda.device_count() < 2 or not fp8_supported(), reason="needs two CUDA GPUs with fp8 tensor cores")
def test_fused_gelu_kernel_runs_on_a_gpu_that_is_not_the_current_one():
    """Triton launches on the current device: the op must make it the input's (a DiT on cuda:1)."""
    from gen3c.models.speed import gelu_fp8_rowwise_reference

    x = torch.randn(64, 1000, device="cuda:1", dtype=torch.bfloat16)
    with torch.cuda.device(0):
        out, scale = torch.ops.gen3c.gelu_fp8_rowwise(x)
    ref, ref_scale = gelu_fp8_rowwise_reference(x)
    assert out.device == scale.device == x.device
    torch.testing.assert_close(scale, ref_scale, rtol=1e-5, atol=0)
    # e4m3 keeps 3 mantissa bits: every value within one step of the reference's
    assert ((out.float() - ref.float()).abs() <= ref.float().abs() / 8 + 2**-9).all()


@CPU_ROWWISE
def test_use_fp8_matmuls_fuses_each_blocks_mlp(monkeypatch):
    """Every block's MLP becomes one Fp8FeedForward and every other block linear an Fp8Linear,
    and the DiT still computes what it did up to fp8 rounding (the capability check is bypassed:
    _scaled_mm also runs on the CPU)."""
    from diffusers import CosmosTransformer3DModel

    from gen3c.models import speed

    monkeypatch.setattr(speed, "fp8_supported", lambda device=None: True)
    # widths in multiples of 16, as _scaled_mm needs (hidden 32, AdaLN-LoRA 16, MLP 64)
    torch.manual_seed(0)
    model = CosmosTransformer3DModel(**{**configs.TRANSFORMER_TINY, "attention_head_dim": 16, "adaln_lora_dim": 16})
    model = model.to(torch.bfloat16).eval()
    kw = dit_inputs("cpu", torch.bfloat16)
    with torch.no_grad():
        ref = model(**kw)[0].float()
        linears = sum(isinstance(m, torch.nn.Linear) for b in model.transformer_blocks for m in b.modules())
        assert speed.use_fp8_matmuls(model) == linears
        out = model(**kw)[0].float()
    for block in model.transformer_blocks:
        assert isinstance(block.ff, speed.Fp8FeedForward)
        assert not any(isinstance(m, torch.nn.Linear) for m in block.modules())
    assert 0 < ((out - ref).norm() / ref.norm()).item() < 0.1



def test_fp8_matmuls_and_a_lora_are_refused_together(monkeypatch, tmp_path):
    """peft's LoRA layers read their base layer's weight, which an Fp8Linear has not: --fp8_matmul
    with --lora replaced them anyway and the first forward died in an AttributeError traceback
    (on the GPU, after the weights loaded). Now one line, before any model loads too."""
    from diffusers import CosmosTransformer3DModel
    from peft import LoraConfig

    from gen3c.models import speed
    from gen3c.pipelines.options import check_generator_options

    monkeypatch.setattr(speed, "fp8_supported", lambda device=None: True)
    torch.manual_seed(0)
    model = CosmosTransformer3DModel(**{**configs.TRANSFORMER_TINY, "attention_head_dim": 16, "adaln_lora_dim": 16})
    model.add_adapter(LoraConfig(r=16, target_modules=["to_q", "to_v"]))
    model = model.to(torch.bfloat16).eval()
    with pytest.raises(Gen3cInputError, match="--fp8_matmul cannot run a LoRA's layers"):
        speed.use_fp8_matmuls(model)
    assert not any(isinstance(m, Fp8Linear) for m in model.modules())  # nothing replaced
    with pytest.raises(Gen3cInputError, match=r"--fp8_matmul cannot run a LoRA's layers \(.*\): drop --fp8_matmul or --lora"):
        check_generator_options({"model": "tiny", "lora": str(tmp_path / "adapter"), "fp8_matmul": True})

@CPU_ROWWISE
def test_fp8_attention_output_goes_into_the_fp8_out_projection_as_is(monkeypatch):
    """With fp8 linears, the cuDNN fp8 kernel's e4m3 output and its per-tensor scale are the
    output projection's GEMM input as they are (no dequantise + row-wise requantise): the block
    computes exactly that GEMM, and lands closer to fp32 attention (one rounding fewer). On this
    CPU the kernel is SDPA from the same e4m3 inputs, in the kernel's output format."""
    import copy
    import warnings

    from diffusers import CosmosTransformer3DModel

    from gen3c.models import attention as attn_mod
    from gen3c.models import speed

    monkeypatch.setattr(speed, "fp8_supported", lambda device=None: True)
    torch.manual_seed(0)
    model = CosmosTransformer3DModel(**{**configs.TRANSFORMER_TINY, "attention_head_dim": 16, "adaln_lora_dim": 16})
    model = model.to(torch.bfloat16).eval()
    exact = copy.deepcopy(model.transformer_blocks[0].attn1).float()
    speed.use_fp8_matmuls(model)
    attn = model.transformer_blocks[0].attn1
    hidden = torch.randn(1, 140, attn.to_q.in_features, dtype=torch.bfloat16)
    direct_processor = attn_mod.CosmosAttnProcessor(attn_mod.cudnn_fp8_attention, attn_mod.cudnn_fp8_attention_e4m3)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="cudnn_fp8: cuDNN built no fp8 attention")
        direct = direct_processor(attn, hidden)
        requantised = attn_mod.CosmosAttnProcessor(attn_mod.cudnn_fp8_attention)(attn, hidden)
        reference = attn_mod.CosmosAttnProcessor(attn_mod.sdpa_attention)(exact, hidden.float())
        # By hand: q, k, v as the processor makes them, the kernel's (e4m3, scale), one fp8 GEMM.
        q = attn.norm_q(attn.to_q(hidden).unflatten(2, (attn.heads, -1)))
        k = attn.norm_k(attn.to_k(hidden).unflatten(2, (attn.heads, -1)))
        v = attn.to_v(hidden).unflatten(2, (attn.heads, -1))
        out8, scale = attn_mod.cudnn_fp8_attention_e4m3(q, k, v)
        assert out8.dtype == torch.float8_e4m3fn and out8.shape == (1, 140, attn.heads, 16) and scale.shape == (1, 1, 1, 1)
        by_hand = attn.to_out[0].matmul_quantized(out8.reshape(140, -1), scale.reshape(1, 1).expand(140, 1).contiguous(), torch.bfloat16)
    assert torch.equal(direct, by_hand[None])
    error = lambda out: ((out.float() - reference).norm() / reference.norm()).item()  # noqa: E731
    assert error(direct) < error(requantised) < 0.1


@pytest.mark.slow
@CPU_ROWWISE
@pytest.mark.filterwarnings("ignore:cudnn_fp8. cuDNN built no fp8 attention")
@pytest.mark.parametrize("kernel", ["sdpa", "cudnn_fp8"])
def test_fp8_blocks_with_gen3c_attention_compile_as_one_graph(monkeypatch, kernel):
    """The blocks as the speed presets leave them (gen3c's attention processor, fp8 linears, the
    fused GELU op; with cudnn_fp8 its e4m3 output straight into the fp8 output projection) trace
    into one graph each (fullgraph: a graph break is an error) and compute what they compute
    eagerly (AOT autograd's eager backend: the CPU has no fp8 Triton; the cuDNN op runs its SDPA
    fallback here)."""
    from diffusers import CosmosTransformer3DModel

    from gen3c.models import attention as attn_mod
    from gen3c.models import speed

    monkeypatch.setattr(speed, "fp8_supported", lambda device=None: True)
    monkeypatch.setattr(attn_mod, "kernel_unavailable_reason", lambda *args, **kwargs: None)
    torch.manual_seed(0)
    model = CosmosTransformer3DModel(**{**configs.TRANSFORMER_TINY, "attention_head_dim": 16, "adaln_lora_dim": 16})
    model = model.to(torch.bfloat16).eval()
    kw = dit_inputs("cpu", torch.bfloat16)
    assert attn_mod.set_attention_kernel(model, kernel) == kernel
    hands_e4m3 = attn_mod.cudnn_fp8_attention_e4m3 if kernel == "cudnn_fp8" else None
    assert all(block.attn1.processor.self_attention_e4m3 is hands_e4m3 for block in model.transformer_blocks)
    assert all(block.attn2.processor.self_attention_e4m3 is None for block in model.transformer_blocks)
    speed.use_fp8_matmuls(model)
    with torch.no_grad():
        eager = model(**kw)[0]
        for block in model.transformer_blocks:
            block.compile(backend="aot_eager", fullgraph=True, dynamic=False)
        compiled = model(**kw)[0]
    assert torch.equal(compiled, eager)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on the device)")
def test_regional_compile_matches_eager():
    from gen3c.models.speed import compile_blocks

    model = tiny_transformer("cuda", torch.bfloat16)
    kw = dit_inputs("cuda", torch.bfloat16)
    with torch.no_grad():
        ref = model(**kw)[0].float()
        compile_blocks(model)
        out = model(**kw)[0].float()
    assert torch.allclose(out, ref, atol=3e-2, rtol=3e-2)


def test_a_diffusers_backend_is_set_without_diffusers_experimental_warning(capfd):
    """Choosing a diffusers backend printed diffusers' "experimental feature" line at every run; the
    user's diffusers log level is left as it was."""
    from diffusers.utils import logging as diffusers_logging

    model = tiny_transformer()
    level = diffusers_logging.get_verbosity()
    capfd.readouterr()
    assert set_attention_backend(model, "native") == "native"
    assert "experimental" not in capfd.readouterr().err
    assert diffusers_logging.get_verbosity() == level


def test_a_diffusers_backend_that_cannot_run_here_is_refused_when_set():
    """diffusers checks only that a backend's package is installed: `_native_cudnn` (cuDNN's SDPA)
    on a CPU was accepted, and the first forward, after the inputs were prepared, died in a
    RuntimeError traceback. Now one line when it is set, and the DiT still computes (diffusers' default)."""
    model = tiny_transformer()
    inputs = dit_inputs("cpu", torch.float32)
    with torch.no_grad():
        reference = model(**inputs)[0]
    with pytest.raises(Gen3cInputError, match=r"attention backend '_native_cudnn' cannot run here \(No viable backend"):
        set_attention_backend(model, "_native_cudnn", "cpu")
    assert getattr(model, "_gen3c_attention_kernel", None) is None
    with torch.no_grad():
        assert torch.equal(model(**inputs)[0], reference)
    assert set_attention_backend(model, "native") == "native"  # one that runs here is set (diffusers default: no global change)


def test_a_refused_diffusers_backend_is_one_line_without_pytorch_warnings(monkeypatch, recwarn):
    """On a GPU, PyTorch warns once per SDPA kernel it rules out ("cuDNN attention kernel not used
    because: …", six warnings with their source lines, seen on an H200) before it raises: the
    probe's refusal came after all of them. Simulated here with a dispatcher that does the same."""
    import warnings

    import diffusers.models.attention_dispatch as dispatch

    def ruled_out(*args, **kwargs):
        for kernel in ("Memory efficient", "Flash attention", "cuDNN attention"):
            warnings.warn(f"{kernel} kernel not used because:", UserWarning, stacklevel=1)
        raise RuntimeError("No available kernel. Aborting execution.")

    model = tiny_transformer()
    monkeypatch.setattr(dispatch, "dispatch_attention_fn", ruled_out)
    warnings.simplefilter("always")
    with pytest.raises(Gen3cInputError, match=r"'_native_cudnn' cannot run here \(No available kernel"):
        set_attention_backend(model, "_native_cudnn", "cpu")
    assert [str(w.message) for w in recwarn if "kernel not used" in str(w.message)] == []


def test_a_diffusers_backend_chosen_for_one_model_does_not_stay_for_the_next():
    """diffusers makes a backend it is given the process's active one, which its dispatcher uses
    for every model (gen3c's kernels send cross-attention there): a DiT set to sdpa after another
    was set to _native_math computed its cross-attention with that (before: 2e-7 off the fresh result)."""
    inputs = dit_inputs("cpu", torch.float32)
    model = tiny_transformer()
    set_attention_backend(model, "sdpa")
    with torch.no_grad():
        fresh = model(**inputs)[0]
    set_attention_backend(tiny_transformer(), "_native_math")
    model = tiny_transformer()
    set_attention_backend(model, "sdpa")
    with torch.no_grad():
        assert torch.equal(model(**inputs)[0], fresh)


def test_the_backend_probe_silences_its_own_warnings_not_another_threads(monkeypatch, recwarn):
    """The probe silenced PyTorch's kernel warnings with a process-wide "ignore" filter: a warning
    another thread raised meanwhile (the GUI reading an image) was dropped too."""
    import threading
    import warnings

    import diffusers.models.attention_dispatch as dispatch

    def ruled_out(*args, **kwargs):
        warnings.warn("cuDNN attention kernel not used because:", UserWarning, stacklevel=1)
        other = threading.Thread(target=lambda: warnings.warn("another thread's", UserWarning, stacklevel=1))
        other.start()
        other.join()
        raise RuntimeError("No available kernel. Aborting execution.")

    model = tiny_transformer()
    monkeypatch.setattr(dispatch, "dispatch_attention_fn", ruled_out)
    warnings.simplefilter("always")
    with pytest.raises(Gen3cInputError, match="cannot run here"):
        set_attention_backend(model, "_native_cudnn", "cpu")
    assert [str(w.message) for w in recwarn if "kernel not used" in str(w.message) or "thread" in str(w.message)] == ["another thread's"]
