"""Choosing a memory mode for a GPU budget, --low_memory, and running out of memory as a clear error."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
import torch
from tiny_model import tiny_pipeline

from gen3c.errors import Gen3cInputError, Gen3cMemoryError, Gen3cModelError
from gen3c.models import memory
from gen3c.models.memory import BUDGET_FILL, ModelSize, choose_memory_plan, estimate_peak_gb, memory_plan
from gen3c.pipelines.loading import load_generator

GiB = 2**30

# A made-up model with round numbers: 28 GiB DiT of 14 blocks of 1 GiB (+14 GiB outside the blocks),
# half of it in float8, 1 GiB tokenizer, a chunk of 17 frames at 64×64 with 1000 tokens of width 1024.
SIZE = ModelSize(
    dit_bytes=28 * GiB, dit_block_bytes=1 * GiB, dit_fp8_bytes=14 * GiB, dit_block_fp8_bytes=GiB // 2, dit_num_blocks=14, vae_bytes=1 * GiB, tokens=1000, hidden=1024,
    frames=17, height=64, width=64, encoder_channels=128, decoder_channels=256, temporal_compression=8, dtype_bytes=2,
)  # fmt: skip


@pytest.fixture
def coefficients(monkeypatch):
    """Round activation coefficients, so each stage's activations are a whole number of GiB."""
    monkeypatch.setattr(memory, "DIT_ACTIVATION_BYTES", 3 * GiB / (1000 * 1024))  # 3 GiB
    monkeypatch.setattr(memory, "VAE_ENCODE_BYTES", 17 * GiB / (17 * 64 * 64 * 128))  # 1 GiB per frame
    monkeypatch.setattr(memory, "VAE_DECODE_BYTES", 17 * GiB / (17 * 64 * 64 * 256))  # 1 GiB per frame
    monkeypatch.setattr(memory, "VAE_ENCODE_VIDEO_BYTES", 0.0)
    monkeypatch.setattr(memory, "VAE_DECODE_VIDEO_BYTES", 0.0)
    monkeypatch.setattr(memory, "RENDER_BYTES", GiB / (17 * 64 * 64))  # 1 GiB per buffer's renders


def test_the_whole_video_term_is_paid_once_per_tokenizer_pass(coefficients, monkeypatch):
    monkeypatch.setattr(memory, "VAE_ENCODE_VIDEO_BYTES", 2 * GiB / (17 * 64 * 64))  # 2 GiB for the video
    # model offload, 1-latent chunks: encode 1 + 2 + 9 = 12; sampling 28 + 3 = 31.
    assert estimate_peak_gb(memory_plan("model_offload", vae_chunk_frames=1), SIZE) == pytest.approx(31)
    # group offload + float8, 1-latent chunks: sampling 11 < encode 12.
    assert estimate_peak_gb(memory_plan("group_offload", fp8=True, vae_chunk_frames=1), SIZE) == pytest.approx(12)


def test_estimate_adds_the_weights_on_the_gpu_to_each_stage(coefficients):
    # resident: the renders (2 buffers, 1 GiB each) stay on the GPU; sampling 28 + 1 + 3 + 2 = 34;
    # encode of 17 frames 28 + 1 + 17 + 1 (the buffer not being encoded) = 47; decode 28 + 1 + 17 + 2 = 48.
    assert estimate_peak_gb(memory_plan(), SIZE) == pytest.approx(48)
    # tokenizer in chunks of 1 latent frame (9 frames): encode 28 + 1 + 9 = 38 > sampling 32.
    assert estimate_peak_gb(memory_plan(vae_chunk_frames=1), SIZE) == pytest.approx(38)
    # float8 storage halves the DiT: encode 14 + 1 + 9 = 24.
    assert estimate_peak_gb(memory_plan(fp8=True, vae_chunk_frames=1), SIZE) == pytest.approx(24)
    # model offload: one model at a time: sampling 28 + 3 = 31 > encode 1 + 17 = 18.
    assert estimate_peak_gb(memory_plan("model_offload", vae_chunk_frames=0), SIZE) == pytest.approx(31)
    # group offload: 14 GiB outside the blocks + 2 blocks + 3 = 19; encode (2-frame chunks → 17) 1 + 17 = 18.
    assert estimate_peak_gb(memory_plan("group_offload"), SIZE) == pytest.approx(19)
    # ... with float8 and 1-latent chunks: sampling (14 + 2)/2 + 3 = 11 > encode 1 + 9 = 10.
    assert estimate_peak_gb(memory_plan("group_offload", fp8=True, vae_chunk_frames=1), SIZE) == pytest.approx(11)


def test_float32_doubles_the_weights_and_activations_but_not_the_renders(coefficients):
    """--dtype float32 holds 4 bytes per element: the estimate took the bf16 coefficients as they are
    (half of every activation), so --max_gpu_memory could pick a plan that does not fit."""
    f32 = dataclasses.replace(SIZE, dit_bytes=56 * GiB, dit_block_bytes=2 * GiB, vae_bytes=2 * GiB, dtype_bytes=4)  # float8 bytes the same
    # resident: decode 56 + 2 + 2·17 + 2 renders (float32 either way) = 94 (bf16: 28 + 1 + 17 + 2 = 48).
    assert estimate_peak_gb(memory_plan(), f32) == pytest.approx(94)
    # group offload: 28 outside the blocks + 2 blocks of 2 + 2·3 = 38 (bf16: 19).
    assert estimate_peak_gb(memory_plan("group_offload"), f32) == pytest.approx(38)
    # float8 stores 1 byte per element whatever the dtype: (28 + 4)/4 + 6 = 14, encode 2 + 2·9 = 20 (bf16: 11).
    assert estimate_peak_gb(memory_plan("group_offload", fp8=True, vae_chunk_frames=1), f32) == pytest.approx(20)
    # A budget between the two: bf16 keeps the DiT resident in float8 (32 GiB); float32's float8 plan
    # encodes 14 + 2 + 2·17 = 50 > 36, so its DiT streams (38 > 36 too): --low_memory's 2 + 2·17 = 36.
    assert choose_memory_plan(40, SIZE)[1] == memory_plan(offload_text_encoder_model=True, fp8=True, vae_chunk_frames=2)
    label, plan, peak = choose_memory_plan(40, f32)
    assert plan == memory_plan(**memory.LOW_MEMORY) and peak == pytest.approx(36)


def test_float8_bytes_keep_what_layerwise_casting_leaves_in_full_precision():
    """Float8 storage halved the whole bf16 DiT in the estimate, but diffusers' layerwise casting
    leaves the norms (each block's three adaLN modulations: 12.6 M parameters), the embeddings and the
    output layer in bf16: GEN3C-7B holds 7.60 GB, not 7.24 (the estimate of the resident float8
    plan was 14.65 GB against 15.05 measured)."""
    pipe = tiny_pipeline()
    for dtype in (torch.float32, torch.bfloat16):
        dit = pipe.transformer.to(dtype)
        size = ModelSize.of(dit, pipe.vae.to(dtype), 9, 64, 64)
        memory.enable_fp8_weights(dit, dtype)
        assert (size.dit_fp8_bytes, size.dit_block_fp8_bytes) == (memory.module_bytes(dit), memory.module_bytes(dit.transformer_blocks[0]))
        pipe = tiny_pipeline()
    # GEN3C-7B by hand: a block's attention (4·4096², cross 2·4096² + 2·1024·4096) and MLP (2·4096·16384)
    # in float8, its adaLN (3·(4096·256 + 256·3·4096)) and q/k norms (4·128) in bf16; outside the blocks the
    # time embedding (4096² + 4096·3·4096) in float8, in bf16 the patch embedding (82·2·2·4096, 81
    # channels and the padding mask), the learnable positions ((128 + 120 + 120)·4096), the output
    # norm (4096·256 + 256·2·4096), the output layer (4096·64) and the time embedding's norm (4096).
    block = (4 * 4096**2 + 2 * 4096**2 + 2 * 1024 * 4096 + 2 * 4096 * 16384) + 2 * (3 * (4096 * 256 + 256 * 3 * 4096) + 4 * 128)
    outside = (4096**2 + 4096 * 3 * 4096) + 2 * (82 * 4 * 4096 + 368 * 4096 + 4096 * 256 + 256 * 2 * 4096 + 4096 * 64 + 4096)
    assert memory.GEN3C_7B_SIZE.dit_block_fp8_bytes == block
    assert memory.GEN3C_7B_SIZE.dit_fp8_bytes == 28 * block + outside
    plan = memory_plan(fp8=True, vae_chunk_frames=2)  # encodes with the DiT resident: +0.33 GB
    assert estimate_peak_gb(plan, memory.GEN3C_7B_SIZE) == pytest.approx(15.05, abs=0.1)


def test_model_size_reads_the_dtype_of_the_loaded_model():
    """ModelSize.of, what load_generator's --max_gpu_memory estimates with: 2 bytes per element for
    a bf16 model, 4 for float32, and its weights' bytes as stored."""
    pipe = tiny_pipeline()
    sizes = {dtype: ModelSize.of(pipe.transformer.to(dtype), pipe.vae.to(dtype), 9, 64, 64) for dtype in (torch.bfloat16, torch.float32)}
    assert sizes[torch.bfloat16].dtype_bytes == 2 and sizes[torch.float32].dtype_bytes == 4
    assert sizes[torch.float32].dit_bytes == 2 * sizes[torch.bfloat16].dit_bytes


def test_renders_stay_on_the_gpu_in_the_resident_whole_video_plan_only():
    assert memory.renders_stay_on_gpu(memory_plan())
    assert memory.renders_stay_on_gpu(memory_plan(fp8=True))
    for lean in (
        memory_plan(vae_chunk_frames=2), memory_plan("model_offload"), memory_plan("group_offload"),
        memory_plan(offload_tokenizer=True), memory_plan(**memory.LOW_MEMORY),
    ):  # fmt: skip
        assert not memory.renders_stay_on_gpu(lean), lean


def test_t5_counts_where_it_encodes_a_prompt(coefficients):
    """A prompt the prompt cache lacks runs T5 (GEN3C's T5-11B encoder: 9.1 GB in bf16) on the GPU
    beside what stays there: the estimate left it out, so --low_memory's ~8 GB plan was chosen for
    a run that needs T5's 9 GB first."""
    t5 = dataclasses.replace(SIZE, text_encoder_bytes=12 * GiB)
    # --low_memory with 1-latent chunks: sampling (14 + 2)/2 + 3 = 11, encode 1 + 9 = 10; T5 alone 12.
    lean = memory_plan("group_offload", fp8=True, vae_chunk_frames=1)
    assert (estimate_peak_gb(lean, SIZE), estimate_peak_gb(lean, t5)) == (pytest.approx(11), pytest.approx(12))
    # resident, T5 offloaded after the prompt: 28 + 1 + 12 = 41 < the decode's 48; kept there, every stage holds it: 48 + 12.
    assert estimate_peak_gb(memory_plan(offload_text_encoder_model=True), t5) == pytest.approx(48)
    assert estimate_peak_gb(memory_plan(), t5) == pytest.approx(60)
    with pytest.raises(Gen3cModelError, match=r"peak of 20\.0 GB .*; T5 takes 20\.0 GB of it to encode the prompt, which a prompt in the prompt cache would not$"):
        choose_memory_plan(12, dataclasses.replace(t5, text_encoder_bytes=20 * GiB))


def test_load_generator_counts_t5_for_a_prompt_the_cache_lacks(tiny_checkpoint):
    """T5's bytes, before it is loaded (lazily, from the checkpoint's text_encoder/), read off its
    config: what the loaded T5 holds; none for the cached empty prompt."""
    pipe = tiny_pipeline(seed=0)
    loaded = memory.module_bytes(pipe.text_encoder)
    generator = load_generator(tiny_checkpoint, device="cpu", dtype="float32")
    assert generator.pipeline.text_encoder is None  # not loaded yet
    assert generator.pipeline.text_encoder_bytes(["", "a street at night"]) == loaded > 0
    assert generator.pipeline.text_encoder_bytes([""]) == 0
    with pytest.warns(UserWarning, match=r"estimated peak .* at 128x128, T5 encoding the prompt first\)$"):
        load_generator(tiny_checkpoint, max_gpu_memory=1000, device="cpu", dtype="float32", prompt="a street at night")


def test_a_loaded_generator_says_when_its_budget_plan_does_not_fit_a_run(tiny_checkpoint):
    """The plan max_gpu_memory chose at load is for its frame size and, without T5, for prompts the
    prompt cache holds: a run at another size or with a prompt T5 must encode needs a new load (the GUI's runs)."""
    with pytest.warns(UserWarning, match="memory mode"):
        generator = load_generator(tiny_checkpoint, max_gpu_memory=1000, device="cpu", dtype="float32", resolution=(128, 128))
    assert generator.memory_planned_for == ((128, 128), False) and generator.memory_plan_misfit(128, 128) is None
    assert generator.memory_plan_misfit(64, 128) == "--max_gpu_memory chose the memory plan for 128x128 frames, not 64x128"
    generator.prompt = "a street at night"
    assert generator.memory_plan_misfit(128, 128) == "--max_gpu_memory chose the memory plan for prompts the prompt cache holds, and T5 must encode this one"
    with pytest.warns(UserWarning, match="T5 encoding the prompt first"):
        generator = load_generator(tiny_checkpoint, max_gpu_memory=1000, device="cpu", dtype="float32", resolution=(128, 128), prompt="a street at night")
    assert generator.memory_planned_for == ((128, 128), True) and generator.memory_plan_misfit(128, 128) is None
    generator.prompt = ""
    assert generator.memory_plan_misfit(128, 128) is None  # a plan counting T5 fits a run without it
    assert load_generator(tiny_checkpoint, device="cpu", dtype="float32").memory_plan_misfit(64, 128) is None  # no plan chosen


def test_configure_refuses_a_prompt_t5_must_encode_beside_a_budget_plan_without_it(tiny_checkpoint):
    """Gen3cGenerator.configure from Python took a prompt outside the prompt cache for a generator whose
    max_gpu_memory plan left T5 out, and the run loaded T5 onto the GPU beside it (where gen3c.generate,
    a batch and the GUI load again: GeneratorPool and memory_plan_misfit). It cannot load again: it
    refuses in one line, changing nothing; a cached prompt, a plan that counted T5, and the CPU pass."""
    with pytest.warns(UserWarning, match="memory mode"):
        generator = load_generator(tiny_checkpoint, max_gpu_memory=1000, device="cpu", dtype="float32", resolution=(128, 128), num_steps=3)
    generator.configure({"prompt": "a street at night"})  # on the CPU no plan holds anything on a GPU
    generator.configure({"prompt": "", "num_steps": 3})
    generator.pipeline.compute_device = torch.device("cuda")  # a GPU this CPU test only pretends to have
    with pytest.raises(Gen3cInputError) as refused:
        generator.configure({"prompt": "a street at night", "num_steps": 2})
    assert str(refused.value) == (
        "configure: max_gpu_memory=1000 chose the memory plan for prompts the prompt cache holds, and T5 must encode this run's "
        "on the GPU beside it: load a new generator with them (load_generator(..., prompt=...)), whose plan counts T5"
    )
    assert (generator.prompt, generator.num_steps, generator.pipeline.text_encoder) == ("", 3, None)
    generator.configure({"prompt": "", "num_steps": 2})  # in the prompt cache
    assert generator.num_steps == 2
    with pytest.warns(UserWarning, match="T5 encoding the prompt first"):
        counted = load_generator(tiny_checkpoint, max_gpu_memory=1000, device="cpu", dtype="float32", resolution=(128, 128), prompt="a street")
    counted.pipeline.compute_device = torch.device("cuda")
    counted.configure({"prompt": "a street at night"})
    assert counted.prompt == "a street at night"
    plain = load_generator(tiny_checkpoint, device="cpu", dtype="float32")  # no plan chosen
    plain.pipeline.compute_device = torch.device("cuda")
    plain.configure({"prompt": "a street at night"})
    assert plain.prompt == "a street at night"


def test_every_budget_plan_sends_t5_back_to_cpu_memory():
    """T5 (GEN3C's T5-11B encoder: 9.1 GB in bf16) counts in the prompt's stage only, but the resident plans
    that --max_gpu_memory picks kept T5 on the GPU once a prompt missing from the prompt cache had
    run it: sampling then held it beside the DiT (--max_gpu_memory 24: ~30 GB)."""
    for label, options in memory.BUDGET_PLANS:
        assert "text_encoder" in memory_plan(**options).offload, label
    assert memory.renders_stay_on_gpu(memory_plan(**memory.BUDGET_PLANS[0][1]))  # T5's offloading leaves them there


def test_budget_picks_the_fastest_plan_that_fits(coefficients):
    assert choose_memory_plan(80, SIZE)[0] == "resident"
    # Resident with 2-latent chunks (17 frames) encodes at 28 + 1 + 17 = 46; in float8, 14 + 1 + 17 = 32.
    label, plan, peak = choose_memory_plan(40, SIZE)
    assert plan == memory_plan(offload_text_encoder_model=True, fp8=True, vae_chunk_frames=2) and peak == pytest.approx(32)
    label, plan, peak = choose_memory_plan(25, SIZE)  # streamed DiT: 14 + 2 + 3 = 19
    assert plan == memory_plan("group_offload") and peak == pytest.approx(19)
    label, plan, peak = choose_memory_plan(20.5, SIZE)  # 18 fits 90 % of 20.5, the streamed DiT's 19 does not
    assert plan == memory_plan(**memory.LOW_MEMORY) and "--low_memory" in label and peak == pytest.approx(18)
    with pytest.raises(Gen3cModelError, match=r"--max_gpu_memory 10 GB is too little for the leanest mode's estimated peak of 18\.0 GB \(\+11% headroom\)"):
        choose_memory_plan(10, SIZE)
    # The line names the least budget that fits (18 / 0.9 = 20, as the 20.5 above), not only the peak.
    with pytest.raises(Gen3cModelError, match=r"for 17 frames at 64×64: it needs --max_gpu_memory 20 or more \(a GPU with that much free\), or a lower --resolution$"):
        choose_memory_plan(19.9, SIZE)
    assert choose_memory_plan(20, SIZE)[1] == memory_plan(**memory.LOW_MEMORY)
    for bad in (0, -3, float("nan"), "24"):
        with pytest.raises(Gen3cInputError, match="must be a positive number of GB"):
            choose_memory_plan(bad, SIZE)


def test_a_budget_for_a_lora_leaves_out_the_float8_plans(coefficients):
    """A LoRA adapts bf16/fp32 weights: --max_gpu_memory with --lora picked a float8 plan, and the
    run was refused once the model had loaded, though a plan without float8 fitted."""
    label, plan, peak = choose_memory_plan(40, SIZE, float8=False)  # float8 + chunks (32) left out: streamed DiT, 19
    assert plan == memory_plan("group_offload") and peak == pytest.approx(19)
    with pytest.raises(Gen3cModelError, match=r"estimated peak of 19\.0 GB .*\(with --lora the modes storing the DiT in float8 are left out\)$"):
        choose_memory_plan(20.5, SIZE, float8=False)


def test_gen3c_7b_at_full_size_fits_24_gb_and_keeps_the_dit_resident():
    """The shipped coefficients against the peaks measured on an H200 (docs/benchmarks.md): GEN3C-7B
    (bf16) at 121×704×1280 needs 45.6 GB resident, 21.5 GB with the tokenizer in chunks, 15.1 GB with
    float8 weights too, 7.96 GB streamed; each estimate within 5 %."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLCosmos, CosmosTransformer3DModel

    from gen3c.models import configs

    with init_empty_weights():
        dit = CosmosTransformer3DModel(**configs.TRANSFORMER_7B).to(torch.bfloat16)
        vae = AutoencoderKLCosmos(**configs.VAE_CV8X8X8).to(torch.bfloat16)
    size = ModelSize.of(dit, vae, 121, 704, 1280)
    assert size.tokens == 16 * 44 * 80 and size.hidden == 4096 and size.dit_num_blocks == 28
    assert size == memory.GEN3C_7B_SIZE  # what `gen3c env` estimates with, not loading the model
    measured = [45.57, 21.46, 15.05, 7.96, 7.96]
    for (label, options), peak in zip(memory.BUDGET_PLANS, measured, strict=True):
        assert estimate_peak_gb(memory_plan(**options), size) == pytest.approx(peak, rel=0.05), label
    label, plan, peak = choose_memory_plan(24, size)
    assert plan == memory_plan(offload_text_encoder_model=True, vae_chunk_frames=2) and peak <= 0.9 * 24
    # docs/gen3c_model.md's other examples: float8 weights need 17 GB (14.98 > 90 % of 16), then the streamed DiT.
    assert choose_memory_plan(17, size)[1] == memory_plan(offload_text_encoder_model=True, fp8=True, vae_chunk_frames=2)
    assert choose_memory_plan(16, size)[1] == choose_memory_plan(12, size)[1] == memory_plan("group_offload")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_ckpt")
    tiny_pipeline(seed=0).save_pretrained(folder)
    return folder


def test_low_memory_and_budget_reach_the_pipeline(tiny_checkpoint):
    lean = load_generator(tiny_checkpoint, low_memory=True, device="cpu", dtype="float32").pipeline
    assert lean.memory == memory_plan(**memory.LOW_MEMORY)
    with pytest.warns(UserWarning, match=r"^max_gpu_memory=1000: memory mode 'resident' \(estimated peak"):  # (its keyword)
        roomy = load_generator(tiny_checkpoint, max_gpu_memory=1000, device="cpu", dtype="float32").pipeline
    assert roomy.memory == memory_plan(offload_text_encoder_model=True)
    with pytest.raises(Gen3cInputError, match="low_memory=True and max_gpu_memory= each choose the memory mode"):
        load_generator(tiny_checkpoint, low_memory=True, max_gpu_memory=24, device="cpu")


def test_the_budget_is_estimated_at_a_size_the_model_takes():
    """load_generator("tiny", max_gpu_memory=...) without resolution estimated (and said) GEN3C's
    704x1280, larger than the tiny model takes: now the largest it takes, 384x640 (its DiT's
    max_size 48x80 latents × 8), GEN3C's 704x1280 for models that take more."""
    from gen3c.errors import collect_notes
    from gen3c.models import configs

    with collect_notes() as notes:
        load_generator("tiny", max_gpu_memory=1000, device="cpu")
    assert notes[0].startswith("max_gpu_memory=1000: memory mode 'resident' (estimated peak ") and notes[0].endswith(" for 17 frames at 384x640)"), notes
    with collect_notes() as notes:
        load_generator("tiny", max_gpu_memory=1000, device="cpu", resolution=(64, 112))
    assert notes[0].endswith(" for 17 frames at 64x112)"), notes
    assert configs.largest_frame_size({"max_size": [128, 240, 240]}, {"spatial_compression_ratio": 8}) == (1920, 1920)


def test_load_generator_words_its_refusals_and_notes_in_its_keyword_arguments(tiny_checkpoint):
    """A Python caller of load_generator was told the command line's flags (--max_gpu_memory,
    --low_memory), which it has none of; gen3c.generate() says max_gpu_memory=. The command line's
    path (generator_from_options) keeps its flags."""
    from gen3c.errors import collect_notes
    from gen3c.pipelines.loading import generator_from_options

    with pytest.raises(Gen3cInputError) as refused:
        load_generator(tiny_checkpoint, low_memory=True, max_gpu_memory=24, device="cpu")
    assert str(refused.value) == "low_memory=True and max_gpu_memory= each choose the memory mode: pass only one of them"
    with pytest.raises(Gen3cInputError) as refused:
        load_generator("tiny", device="cuda:0", num_gpus=2)
    assert str(refused.value) == "device 'cuda:0' with num_gpus=2: each rank picks cuda:LOCAL_RANK; pass 'cuda', 'cpu' or nothing"
    with collect_notes() as notes:
        load_generator(tiny_checkpoint, max_gpu_memory=1000, device="cpu", dtype="float32")
    assert notes[0].startswith("max_gpu_memory=1000: memory mode 'resident' (estimated peak "), notes
    assert notes[1].startswith("max_gpu_memory=: the model computes on the CPU"), notes
    with collect_notes() as notes:
        generator_from_options({"checkpoint_dir": str(tiny_checkpoint), "max_gpu_memory": 1000, "device": "cpu", "dtype": "float32"})
    assert notes[0].startswith("--max_gpu_memory 1000: memory mode 'resident' (estimated peak "), notes
    assert notes[1].startswith("--max_gpu_memory: the model computes on the CPU"), notes


def test_a_small_estimate_is_not_printed_as_zero():
    """A small model's estimate read "estimated peak of 0.0 GB" and "needs --max_gpu_memory 0.1"."""
    small = dataclasses.replace(SIZE, dit_bytes=GiB // 100, dit_block_bytes=GiB // 1000, dit_fp8_bytes=GiB // 200, dit_block_fp8_bytes=GiB // 2000, vae_bytes=GiB // 1000)
    peak = estimate_peak_gb(memory_plan(**memory.LOW_MEMORY), small)
    assert 0.001 < peak < 0.05
    with pytest.raises(Gen3cModelError) as caught:
        choose_memory_plan(0.001, small)
    text = str(caught.value)
    assert f"estimated peak of {peak * 1024:.1f} MB (+11% headroom)" in text, text
    least = float(text.split("it needs --max_gpu_memory ")[1].split(" ")[0])
    assert BUDGET_FILL * least >= peak and BUDGET_FILL * (least - 10 ** math.floor(math.log10(least) - 1)) < peak  # 2 significant figures
    choose_memory_plan(least, small)  # (fits)
    assert [memory.format_gb(gb) for gb in (20.04, 0.1, 0.09, 0.5 / 1024, 0.3 / 2**20)] == ["20.0 GB", "0.1 GB", "92.2 MB", "0.5 MB", "0.3 kB"]


def test_chunk_frames_none_is_the_default_chunk_under_a_budget(tiny_checkpoint):
    """chunk_frames=None for a checkpoint that states no chunk is GEN3C's chunk, as without a
    budget. Before: a raw TypeError from ModelSize.of (and a generator whose chunk was None)."""
    from gen3c.models import configs

    with pytest.warns(UserWarning, match=rf"estimated peak .* GB for {configs.CHUNK_FRAMES} frames at 128x128"):
        gen = load_generator(tiny_checkpoint, chunk_frames=None, max_gpu_memory=1000, device="cpu", dtype="float32")
    assert gen.chunk_frames == configs.CHUNK_FRAMES


def test_offloading_on_the_cpu_is_said_to_change_nothing(tiny_checkpoint):
    """On the CPU every component already is in CPU memory: an offloading mode was accepted and
    changed nothing without a word."""
    with pytest.warns(UserWarning, match=r'^memory_mode="model_offload": the model computes on the CPU, where every component already is in CPU memory, so nothing is offloaded'):
        gen = load_generator(tiny_checkpoint, memory_mode="model_offload", device="cpu", dtype="float32")
    assert gen.pipeline.memory == memory_plan("model_offload")


def test_float8_weights_under_a_lora_are_refused_before_loading(tiny_checkpoint, monkeypatch):
    """--lora with --fp8 or --low_memory was refused only once the weights had loaded."""
    from gen3c.pipelines import loading

    monkeypatch.setattr(loading, "load_pipeline", lambda *a, **k: pytest.fail("loaded before refusing"))
    with pytest.raises(Gen3cInputError, match=r"^lora= needs the DiT's weights in bf16/fp32, but low_memory=True stores them in float8: use memory_mode=\"group_offload\""):
        load_generator(tiny_checkpoint, lora="adapter", low_memory=True, device="cpu")
    with pytest.raises(Gen3cInputError, match=r"^--lora needs the DiT's weights in bf16/fp32, but --fp8 stores them in float8: drop --fp8"):
        loading.check_generator_options({"model": "tiny", "lora": "adapter", "fp8": True})  # a batch manifest's, when read


def test_budget_is_planned_for_the_resolution_asked_for(tiny_checkpoint):
    """``--max_gpu_memory`` estimates the run at the request's resolution (default the largest
    this tiny pipeline takes, 128x128, under GEN3C's 704x1280)."""
    import re

    peaks = {}
    for resolution in (None, (32, 48)):
        with pytest.warns(UserWarning, match=r"memory mode 'resident'") as caught:
            load_generator(tiny_checkpoint, max_gpu_memory=1000, device="cpu", dtype="float32", resolution=resolution)
        (text,) = [str(w.message) for w in caught if "memory mode 'resident'" in str(w.message)]
        expected = "128x128" if resolution is None else "32x48"
        assert f"for 121 frames at {expected})" in text, text
        value, unit = re.search(r"estimated peak ([0-9.]+) (GB|MB|kB) ", text).groups()
        peaks[expected] = float(value) * {"GB": 2**20, "MB": 2**10, "kB": 1}[unit]
    assert peaks["32x48"] < peaks["128x128"]


def test_running_out_of_memory_names_the_flag_to_try(monkeypatch):
    pipe = tiny_pipeline(seed=0)
    pipe.configure_memory(memory_plan(), "cpu")

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(pipe.transformer, "forward", no_memory)
    image = torch.zeros(3, 32, 48)
    colors, masks = torch.zeros(17, 1, 3, 32, 48), torch.ones(17, 1, 1, 32, 48)
    with pytest.raises(Gen3cMemoryError, match=r"^the GPU ran out of memory while sampling with the DiT: try --low_memory"):
        pipe(image, colors, masks, num_steps=1, guidance=0)
    pipe.configure_memory(memory_plan(**memory.LOW_MEMORY), "cpu")
    with pytest.raises(Gen3cMemoryError, match="already the leanest mode"):
        pipe(image, colors, masks, num_steps=1, guidance=0)


def test_running_out_of_memory_names_the_setting_in_load_generators_words(tiny_checkpoint, monkeypatch):
    """A generator from load_generator() that runs out of memory in generate_video() names the
    setting of that call (low_memory=True), not the command line's flag (--low_memory)."""
    from gen3c.cache import Cache3D
    from gen3c.cameras import Cameras
    from gen3c.pipelines.camera_video import generate_video
    from gen3c.pipelines.loading import _load_generator

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    K = torch.tensor([[40.0, 0, 24], [0, 40, 16], [0, 0, 1]])
    cache = Cache3D()
    cache.add_view(torch.zeros(3, 32, 48), torch.full((32, 48), 3.0), K, torch.eye(4))
    cameras = Cameras(torch.eye(4).expand(17, 4, 4), K.expand(17, 3, 3), 32, 48)
    for load, said in ((load_generator, "try low_memory=True (the leanest mode"), (_load_generator, "try --low_memory (the leanest mode")):
        generator = load(tiny_checkpoint, device="cpu", dtype="float32", num_steps=1, guidance=0, chunk_frames=17)
        monkeypatch.setattr(generator.pipeline.transformer, "forward", no_memory)
        with pytest.raises(Gen3cMemoryError, match=r"^the GPU ran out of memory while sampling with the DiT: " + re.escape(said)):
            generate_video(cache, cameras, generator, torch.zeros(3, 32, 48))


def test_running_out_of_memory_in_t5_is_a_clear_error():
    """A prompt missing from the prompt cache runs T5 (9 GB in bf16 for GEN3C's T5-11B encoder) on
    the GPU beside the resident DiT: running out of memory there was a raw torch traceback."""
    pipe = tiny_pipeline(seed=0).configure_memory(memory_plan(), "cpu")

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    pipe.text_encoder.forward = no_memory
    with pytest.raises(Gen3cMemoryError, match=r"^the GPU ran out of memory while encoding the prompt with T5: try --low_memory"):
        pipe(torch.zeros(3, 32, 48), torch.zeros(17, 1, 3, 32, 48), torch.ones(17, 1, 1, 32, 48), prompt="not cached", num_steps=1, guidance=0)


def test_running_out_of_memory_with_a_lora_names_a_mode_it_can_run_in():
    """--low_memory stores the DiT in float8, which a LoRA cannot adapt: a LoRA run out of memory was
    told to try it (and then refused); group_offload is its leanest mode."""
    hint = memory.out_of_memory_message(memory_plan(), "cpu", "sampling with the DiT", lora=True)
    assert hint.endswith("try --memory_mode group_offload (the leanest mode for a LoRA) or --max_gpu_memory GB to pick a mode that fits")
    assert "already the leanest mode" in memory.out_of_memory_message(memory_plan("group_offload"), "cpu", "decoding", lora=True)
    pipe = tiny_pipeline(seed=0).configure_memory(memory_plan(), "cpu")
    pipe.lora_sha256 = "0" * 64  # what load_lora records

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    pipe.transformer.forward = no_memory
    with pytest.raises(Gen3cMemoryError, match=r"while sampling with the DiT: try --memory_mode group_offload \(the leanest mode for a LoRA\)"):
        pipe(torch.zeros(3, 32, 48), torch.zeros(17, 1, 3, 32, 48), torch.ones(17, 1, 1, 32, 48), num_steps=1, guidance=0)


def test_running_out_of_memory_while_loading_the_model_onto_the_gpu_names_the_flag_to_try(monkeypatch):
    """A plan whose resident components do not fit the GPU ran out of memory in configure_memory
    (load_generator's last step) with torch's traceback (the GUI: "internal error"), not the line a
    run out of memory gives, naming --low_memory and --max_gpu_memory."""
    import gen3c.pipelines.gen3c as gen3c_pipeline

    pipe = tiny_pipeline(seed=0)
    monkeypatch.setattr(gen3c_pipeline, "compute_device", lambda device: torch.device("cuda"))  # a GPU this CPU test only pretends to have
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (GiB, 12 * GiB))

    def to(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(pipe.transformer, "to", to)
    with pytest.raises(Gen3cMemoryError, match=r"^the GPU ran out of memory while moving the model to it \(11\.0 of 12\.0 GB in use\): try --low_memory"):
        pipe.configure_memory(memory_plan(), "cuda")


def test_running_out_of_memory_while_moving_a_component_to_the_gpu_puts_it_back(monkeypatch):
    """Running out of GPU memory inside the tokenizer's move to the GPU left it split between GPU and
    CPU, and the next generation of a process that keeps running (the GUI) started with it so: it
    goes back to CPU memory, whole (all of it moved, not judged by its first tensor); only when that
    fails too does the message say so."""
    pipe = tiny_pipeline(seed=0).configure_memory(memory_plan(offload_tokenizer=True), "cpu")
    pipe.compute_device = torch.device("cuda")  # a GPU this CPU test only pretends to have
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (GiB, 80 * GiB))
    moves, real_to = [], pipe.vae.to
    back_fails = False

    def to(device, *args, **kwargs):
        moves.append(str(device))
        if torch.device(device).type == "cuda":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if back_fails:
            raise RuntimeError("CUDA error: an illegal memory access was encountered\nmore")
        return real_to(device, *args, **kwargs)

    monkeypatch.setattr(pipe.vae, "to", to)
    args = torch.zeros(3, 32, 48), torch.zeros(17, 1, 3, 32, 48), torch.ones(17, 1, 1, 32, 48)
    said = r"^the GPU ran out of memory while encoding the conditions with the tokenizer \(79\.0 of 80\.0 GB in use\): try --low_memory \(the leanest mode, ~8 GB for GEN3C-7B\) or --max_gpu_memory GB to pick a mode that fits"
    with pytest.raises(Gen3cMemoryError, match=said + "$") as raised:
        pipe(*args, num_steps=1, guidance=0)
    assert moves == ["cuda", "cpu"] and not raised.value.stranded
    moves.clear()
    back_fails = True
    with pytest.raises(Gen3cMemoryError, match=said + r"; vae is left partly on cuda, as moving it back failed too \(CUDA error: an illegal memory access was encountered\): load the pipeline again$") as raised:
        pipe(*args, num_steps=1, guidance=0)
    assert moves == ["cuda", "cpu"] and raised.value.stranded  # (a GUI loads it again)


def test_running_out_of_memory_with_the_tokenizer_chunks_turned_off_names_them():
    """--low_memory with vae_chunk_frames 0 (the API's, a batch manifest's) ran out of memory and was
    told to try --low_memory, which it had. (Worded as a flag, which each surface respells; the
    command line has no --vae_chunk_frames, so it never sees this.)"""
    plan = memory_plan(**memory.LOW_MEMORY, vae_chunk_frames=0)
    chunks = "try --vae_chunk_frames 2 (the tokenizer in chunks of 2 latent frames, which --vae_chunk_frames 0 turned off)"
    assert memory.out_of_memory_message(plan, "cpu", "decoding with the tokenizer").endswith(f"decoding with the tokenizer: {chunks}")
    lora = memory.out_of_memory_message(memory_plan("group_offload", vae_chunk_frames=0), "cpu", "decoding", lora=True)
    assert lora.endswith(f"decoding: {chunks}")
    plain = memory.out_of_memory_message(memory_plan("group_offload", vae_chunk_frames=0), "cpu", "decoding")
    assert plain.endswith("decoding: try --low_memory (the leanest mode, ~8 GB for GEN3C-7B) with " + chunks[len("try "):])


def test_the_tokenizer_chunks_hint_names_the_setting_as_each_surface_spells_it(box_scene, tmp_path, monkeypatch):
    """The hint said `vae_chunk_frames 2` to every surface: a batch row's spelling, not gen3c.generate()'s
    keyword (vae_chunk_frames=2), so a Python caller was told a setting in another surface's words."""
    import gen3c
    from gen3c.pipelines.gen3c import Gen3cPipeline
    from gen3c.pipelines.request import GENERATE_POOL
    from gen3c.pipelines.spelling import row_spelling

    def no_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(Gen3cPipeline, "encode_conditions", no_memory, raising=True)
    image, depth, _, _ = box_scene
    GENERATE_POOL.clear()
    try:
        with pytest.raises(Gen3cMemoryError) as refused:
            gen3c.generate(image, depth=depth, fov=60, resolution="32x48", generator="gen3c", model="tiny", device="cpu",
                           memory_mode="group_offload", vae_chunk_frames=0, num_steps=1, video_save_folder=tmp_path, progress=False)
    finally:
        GENERATE_POOL.clear()
    assert str(refused.value).endswith(
        "try low_memory=True (the leanest mode, ~8 GB for GEN3C-7B) with vae_chunk_frames=2 (the tokenizer in chunks of 2 "
        "latent frames, which vae_chunk_frames=0 turned off)"
    ), refused.value
    row = row_spelling(memory.out_of_memory_message(memory_plan("group_offload", vae_chunk_frames=0), "cpu", "decoding"))
    assert row.endswith("try low_memory (the leanest mode, ~8 GB for GEN3C-7B) with vae_chunk_frames 2 (the tokenizer in chunks of 2 "
                        "latent frames, which vae_chunk_frames 0 turned off)"), row


# -- CPU memory ---------------------------------------------------------------------------------


def state_bytes(module: torch.nn.Module, dtype: torch.dtype | None = None) -> int:
    """Bytes of ``module``'s state dict, floating tensors counted in ``dtype`` when given."""
    return sum(
        t.numel() * (dtype.itemsize if dtype is not None and t.is_floating_point() else t.element_size())
        for t in module.state_dict().values()
    )


@pytest.fixture(scope="module")
def bf16_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_bf16")
    pipe = tiny_pipeline(seed=0)
    pipe.transformer.to(torch.bfloat16)
    pipe.vae.to(torch.bfloat16)
    pipe.save_pretrained(folder)
    return folder, pipe


def test_verify_weights_counts_what_each_component_holds(bf16_checkpoint):
    from gen3c.models.verify import verify_weights

    folder, pipe = bf16_checkpoint
    sizes = verify_weights(folder)
    assert set(sizes) == {"transformer", "vae"}
    for name, size in sizes.items():
        module = getattr(pipe, name)
        assert size.loaded_bytes(torch.bfloat16) == state_bytes(module)  # as stored
        assert size.loaded_bytes(torch.float32) == state_bytes(module, torch.float32)
        assert not size.copied_on_load(torch.bfloat16) and size.copied_on_load(torch.float32)


def test_weights_that_cannot_fit_in_cpu_memory_are_refused_before_loading(bf16_checkpoint, monkeypatch):
    """A bf16 checkpoint loaded in float32 is copied into memory: with less RAM + swap than that,
    the load is refused in words (the system would kill the process); as stored, it is read from
    the file and not checked."""
    from gen3c.pipelines.loading import load_pipeline

    folder, pipe = bf16_checkpoint
    need = state_bytes(pipe.transformer, torch.float32) + state_bytes(pipe.vae, torch.float32)
    monkeypatch.setattr(memory.HostMemory, "now", classmethod(lambda cls: cls(available=need - 1, total=need - 1)))
    gb = f"{need / GiB:.1f}"
    with pytest.raises(Gen3cMemoryError, match=rf"^checkpoint '.*' in float32 needs {gb} GB of CPU memory .*this machine has {gb} GB of RAM and swap: run it"):
        load_pipeline(folder, dtype=torch.float32)
    assert load_pipeline(folder, dtype=torch.bfloat16).transformer.dtype == torch.bfloat16
    # Enough in all, but not free now: loaded, with a note.
    monkeypatch.setattr(memory.HostMemory, "now", classmethod(lambda cls: cls(available=need - 1, total=need)))
    with pytest.warns(UserWarning, match=rf"needs {gb} GB of CPU memory for its weights alone and {gb} GB are free now: it loads only if other programs give memory back"):
        assert load_pipeline(folder, dtype=torch.float32).transformer.dtype == torch.float32


def test_an_offloading_plan_needs_its_components_in_cpu_memory(monkeypatch):
    from gen3c.pipelines.loading import _check_offloaded_weights_fit

    pipe = tiny_pipeline(seed=0, with_text_encoder=False)
    # What a module holds: its parameters and all its buffers (the state dict leaves some out).
    dit, vae = (sum(t.nbytes for t in (*m.parameters(), *m.buffers())) for m in (pipe.transformer, pipe.vae))
    monkeypatch.setattr(memory.HostMemory, "now", classmethod(lambda cls: cls(available=dit + vae, total=dit + vae)))
    _check_offloaded_weights_fit(pipe, memory_plan("group_offload"), "cuda")  # exactly fits
    _check_offloaded_weights_fit(pipe, memory_plan("resident"), "cuda")
    dit8 = memory.float8_bytes(pipe.transformer)[0]  # (float32 linears to 1 byte, the rest as they are)
    monkeypatch.setattr(memory.HostMemory, "now", classmethod(lambda cls: cls(available=dit8 + vae - 1, total=dit8 + vae - 1)))
    with pytest.raises(Gen3cMemoryError, match=r"^keeping transformer, vae in CPU memory between stages needs .*this mode already stores the DiT in float8"):
        _check_offloaded_weights_fit(pipe, memory_plan("group_offload", fp8=True), "cuda")
    monkeypatch.setattr(memory.HostMemory, "now", classmethod(lambda cls: cls(available=dit - 1, total=dit - 1)))
    with pytest.raises(Gen3cMemoryError, match=r"^keeping transformer in CPU .*store the DiT in float8 to halve it \(--low_memory\)"):
        _check_offloaded_weights_fit(pipe, memory_plan(offload_diffusion_transformer=True), "cuda")
    _check_offloaded_weights_fit(pipe, memory_plan("group_offload"), "cpu")  # on the CPU nothing moves


def test_a_gpu_budget_from_python_may_be_a_numpy_number(tiny_checkpoint):
    """max_gpu_memory= from Python takes numpy's numbers (a notebook's np.float32(1000)) as the
    float they are, as every other number setting does, and the generator keeps a Python float; a
    bool is no budget. Before: "--max_gpu_memory np.float32(1000.0) must be a positive number of GB"."""
    import numpy as np

    from gen3c.models.choices import check_gpu_budget

    for value in (np.float32(40), np.int64(40), np.float16(40)):
        assert check_gpu_budget(value) == 40.0 and type(check_gpu_budget(value)) is float
        assert choose_memory_plan(value, SIZE) == choose_memory_plan(40.0, SIZE)
    for bad in (True, np.float32("nan"), np.int64(0)):
        with pytest.raises(Gen3cInputError, match=r"^--max_gpu_memory .* must be a positive number of GB \(e\.g\. 24\)$"):
            choose_memory_plan(bad, SIZE)
    with pytest.warns(UserWarning, match=r"^max_gpu_memory=1000: memory mode"):
        generator = load_generator(tiny_checkpoint, max_gpu_memory=np.float32(1000), device="cpu", dtype="float32")
    assert type(generator.pipeline.max_gpu_memory) is float and generator.pipeline.max_gpu_memory == 1000.0
