"""The GEN3C pipeline end to end on a tiny random-weight model of the real architecture."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tiny_model import tiny_pipeline

from gen3c.errors import Gen3cInputError, Gen3cModelError
from gen3c.io.images import to_uint8
from gen3c.models import configs
from gen3c.models.memory import memory_plan
from gen3c.models.tokenizer import encode_video
from gen3c.pipelines.gen3c import Gen3cGenerator, Gen3cPipeline
from gen3c.pipelines.loading import load_generator

T, H, W = 17, 32, 32  # 17 frames -> 3 latent frames of 4 x 4


def has_hook(module: torch.nn.Module, name: str) -> bool:
    """Whether diffusers registered hook ``name`` (e.g. "group_offloading", "layerwise_casting") on
    ``module`` or one of its submodules."""
    for sub in module.modules():
        registry = getattr(sub, "_diffusers_hook", None)
        if registry is not None and registry.get_hook(name) is not None:
            return True
    return False


def inputs(num_buffers: int = 2, frames: int = T, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(3, H, W, generator=g) * 2 - 1
    colors = torch.rand(frames, num_buffers, 3, H, W, generator=g) * 2 - 1
    masks = (torch.rand(frames, num_buffers, 1, H, W, generator=g) > 0.4).float()
    return image, colors, masks


@pytest.fixture(scope="module")
def pipe() -> Gen3cPipeline:
    return tiny_pipeline(seed=0)


class Recorder:
    """Records every transformer call's inputs."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.calls: list[dict] = []
        self.handle = module.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs):
        self.calls.append({k: v.detach().clone() if torch.is_tensor(v) else v for k, v in kwargs.items()})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_output_shape_and_frame_count(pipe):
    for frames, nb in ((T, 2), (9, 1)):
        out = pipe(*inputs(nb, frames), num_steps=2)
        assert out.frames.shape == (frames, 3, H, W)
        assert out.frames.dtype == torch.float32
        assert out.frames.min() >= -1 and out.frames.max() <= 1
    latents = pipe(*inputs(), num_steps=2, output_type="latent").frames
    assert latents.shape == (1, 16, 3, H // 8, W // 8)


def test_seed_determines_the_video(pipe):
    a = pipe(*inputs(), num_steps=4, seed=7).frames
    b = pipe(*inputs(), num_steps=4, seed=7).frames
    c = pipe(*inputs(), num_steps=4, seed=8).frames
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


def test_each_condition_reaches_its_channel_slot(pipe):
    image, colors, masks = inputs(num_buffers=2)
    with Recorder(pipe.transformer) as rec:
        pipe(image, colors, masks, num_steps=2, guidance=0.0)
    assert len(rec.calls) == 2  # guidance 0: one forward per step
    cond = rec.calls[0]["condition_mask"].float()
    assert cond.shape == (1, 1 + configs.BUFFER_CHANNELS, 3, H // 8, W // 8)
    assert rec.calls[0]["hidden_states"].shape[1] + cond.shape[1] == configs.GEN3C_IN_CHANNELS

    # Channel 0: the condition mask, 1 on the first latent frame only.
    assert torch.equal(cond[0, 0, 0], torch.ones(H // 8, W // 8))
    assert torch.equal(cond[0, 0, 1:], torch.zeros(2, H // 8, W // 8))
    # Channels 1-64: buffer 0 colour, buffer 0 mask, buffer 1 colour, buffer 1 mask.
    vae = pipe.vae

    def enc(video):  # (T, 3, H, W) -> normalised latents
        return encode_video(vae, video.permute(1, 0, 2, 3)[None])

    expected = [enc(colors[:, 0]), enc((masks[:, 0] * 2 - 1).expand(-1, 3, -1, -1)),
                enc(colors[:, 1]), enc((masks[:, 1] * 2 - 1).expand(-1, 3, -1, -1))]  # fmt: skip
    for slot, latent in enumerate(expected):
        got = cond[:, 1 + 16 * slot : 1 + 16 * (slot + 1)]
        assert torch.allclose(got, latent, atol=1e-5), f"slot {slot}"

    # The first latent frame holds the image latent, augmented with sigma 0.001 and scaled by
    # c_in(0.001) (GEN3C's _augment_noise_with_latent followed by scale_model_input).
    x = rec.calls[0]["hidden_states"].float()
    image_latent = encode_video(vae, image[None, :, None])
    c_in = 1 / (0.001**2 + 0.5**2) ** 0.5
    assert torch.allclose(x[:, :, :1], image_latent * c_in, atol=0.01)
    assert 0.6 < x[:, :, 1:].std() < 1.5  # the rest is noise of sigma ~80 scaled by c_in(80) ~ 1/80


def test_perturbing_one_buffer_changes_only_its_slots(pipe):
    image, colors, masks = inputs(num_buffers=2)
    colors2 = colors.clone()
    colors2[:, 1] = -colors2[:, 1]
    conds = []
    for c in (colors, colors2):
        with Recorder(pipe.transformer) as rec:
            pipe(image, c, masks, num_steps=1, guidance=0.0)
        conds.append(rec.calls[0]["condition_mask"].float())
    changed = (conds[0] - conds[1]).abs().amax(dim=(0, 2, 3, 4)) > 0
    assert changed.nonzero().flatten().tolist() == list(range(33, 49))  # buffer 1 colour only


def test_missing_buffer_is_zeros(pipe):
    with Recorder(pipe.transformer) as rec:
        pipe(*inputs(num_buffers=1), num_steps=1, guidance=0.0)
    cond = rec.calls[0]["condition_mask"]
    assert cond[:, 1:33].abs().max() > 0
    assert torch.equal(cond[:, 33:], torch.zeros_like(cond[:, 33:]))


def test_unconditional_branch_drops_the_buffers_and_uses_the_negative_prompt(pipe):
    with Recorder(pipe.transformer) as rec:
        pipe(*inputs(), num_steps=2, guidance=1.0)
    assert len(rec.calls) == 4  # GEN3C's guidance 1: conditional + unconditional each step
    cond, uncond = rec.calls[0], rec.calls[1]
    assert torch.equal(cond["condition_mask"][:, :1], uncond["condition_mask"][:, :1])
    assert torch.equal(uncond["condition_mask"][:, 1:], torch.zeros_like(uncond["condition_mask"][:, 1:]))
    assert torch.equal(cond["hidden_states"], uncond["hidden_states"])
    negative = pipe.prompt_cache.lookup(configs.DEFAULT_NEGATIVE_PROMPT).to(
        uncond["encoder_hidden_states"].dtype
    )
    assert torch.equal(uncond["encoder_hidden_states"], negative)
    assert torch.equal(cond["encoder_hidden_states"], pipe.prompt_cache.lookup("").to(negative.dtype))
    # An empty negative prompt reuses the prompt (GEN3C passes no negative embedding then).
    with Recorder(pipe.transformer) as rec:
        pipe(*inputs(), num_steps=1, guidance=1.0, negative_prompt="")
    assert torch.equal(rec.calls[0]["encoder_hidden_states"], rec.calls[1]["encoder_hidden_states"])


def gen3c_reference_loop(
    pipe: Gen3cPipeline, image_latent, buffer_latents, text, neg_text, guidance, num_steps, seed
):
    """GEN3C's DiffusionV2WModel.generate_samples_from_batch + _augment_noise_with_latent, step
    by step as written there (float32, same initial noise), as an independent reference."""
    from diffusers import EDMEulerScheduler

    sched = EDMEulerScheduler(sigma_max=80, sigma_min=0.0002, sigma_data=0.5)
    sched.set_timesteps(num_steps)
    shape = image_latent.shape
    xt = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * sched.init_noise_sigma
    cond_in = torch.cat([torch.zeros(1, 1, *shape[2:]), buffer_latents], 1)
    cond_in[:, 0, 0] = 1
    uncond_in = torch.cat([cond_in[:, :1], torch.zeros_like(buffer_latents)], 1)
    pad = torch.zeros(1, 1, *shape[3:])
    for t in sched.timesteps:
        sched._init_step_index(t)
        sigma = sched.sigmas[sched.step_index]
        indicator = torch.zeros(1, 1, shape[2], 1, 1)
        indicator[:, :, 0] = 1
        if 0.001 >= sigma:
            indicator = torch.zeros_like(indicator)
        noise = torch.from_numpy(np.random.RandomState(seed).standard_normal(tuple(shape)).astype(np.float32))
        augment = sched.precondition_inputs(image_latent + noise * 0.001, 0.001)
        augment_unscaled = augment * ((sigma**2 + 0.25) ** 0.5)
        new_xt = indicator * augment_unscaled + (1 - indicator) * xt
        scaled = sched.scale_model_input(new_xt, timestep=t)

        def net(embeds, cond, x=scaled, t=t):
            return pipe.transformer(hidden_states=x, timestep=t.reshape(1), encoder_hidden_states=embeds,
                                    fps=24, condition_mask=cond, padding_mask=pad, return_dict=False)[0]  # fmt: skip

        out_c, out_u = net(text, cond_in), net(neg_text, uncond_in)
        out = out_c + guidance * (out_c - out_u)
        c_skip = 0.25 / (sigma**2 + 0.25)
        c_out = sigma * 0.5 / (sigma**2 + 0.25) ** 0.5
        out = indicator * ((image_latent - c_skip * new_xt) / c_out) + (1 - indicator) * out
        xt = sched.step(out, t, new_xt).prev_sample
    return xt


def test_sampler_matches_gen3c_loop(pipe):
    image, colors, masks = inputs()
    image_latent, buffer_latents = pipe.encode_conditions(image, colors, masks)
    text = pipe.encode_prompt("")
    neg = pipe.encode_prompt(configs.DEFAULT_NEGATIVE_PROMPT)
    steps = 35  # the full schedule, including its last steps below the augmentation sigma
    with torch.no_grad():
        ours = pipe.denoise(image_latent, buffer_latents, text, neg, guidance=1.5, num_steps=steps, seed=3)
        ref = gen3c_reference_loop(pipe, image_latent, buffer_latents, text, neg, 1.5, steps, 3)
    assert torch.allclose(ours, ref, atol=1e-4, rtol=1e-4)
    sigmas = pipe.scheduler.sigmas
    assert float(sigmas[0]) == pytest.approx(80.0) and float(sigmas[-2]) == pytest.approx(0.0002)
    assert float(sigmas[-1]) == 0.0


def test_the_divergence_limit_scales_with_the_schedules_sigma_max(pipe):
    """A checkpoint whose schedule starts noisier than GEN3C's σ 80 (here σ_max 5e4) was refused at
    step 1 as "sampling diverged … passed ±10000": its first steps' noise alone is that large. The
    limit is now 125 σ_max (never below 1e4), so such a schedule samples, and one that does diverge
    (a DiT whose output is 1e8 times too large) is still stopped, its limit named."""
    from gen3c.schedulers import make_scheduler

    image, colors, masks = inputs()
    image_latent, buffer_latents = pipe.encode_conditions(image, colors, masks)
    text = pipe.encode_prompt("")
    default = pipe.scheduler
    pipe.scheduler = make_scheduler("euler", {**default.config, "sigma_max": 5e4})
    try:
        with torch.no_grad():
            latents = pipe.denoise(image_latent, buffer_latents, text, None, guidance=0.0, num_steps=8, seed=3)
        assert float(pipe.scheduler.sigmas[0]) == pytest.approx(5e4) and float(pipe.scheduler.sigmas[1]) > 1e4
        assert bool(torch.isfinite(latents).all())
        handle = pipe.transformer.register_forward_hook(lambda module, args, out: (out[0] * 1e8, *out[1:]))
        try:
            with pytest.raises(Gen3cModelError, match=r"^sampling diverged at step 1 of 8 \(--guidance 0\): its latents passed ±6\.25e\+06 or"):
                pipe.denoise(image_latent, buffer_latents, text, None, guidance=0.0, num_steps=8, seed=3)
        finally:
            handle.remove()
    finally:
        pipe.scheduler = default


def test_the_first_frame_follows_the_image(pipe):
    """With the image latent imposed on the first latent frame, the decoded first frame is
    (up to the last steps' freedom) the tokenizer's reconstruction of the image."""
    image, colors, masks = inputs()
    latents = pipe(image, colors, masks, num_steps=35, output_type="latent").frames
    image_latent = encode_video(pipe.vae, image[None, :, None])
    assert torch.allclose(latents[:, :, :1], image_latent, atol=0.05)


def test_empty_prompt_never_touches_t5(pipe):
    class Forbidden(torch.nn.Module):
        def forward(self, *a, **k):
            raise AssertionError("T5 ran")

    saved = pipe.text_encoder
    pipe.text_encoder = Forbidden()
    try:
        pipe(*inputs(), num_steps=1, guidance=1.0)  # "" and the default negative prompt are cached
        with pytest.raises(AssertionError, match="T5 ran"):
            pipe(*inputs(), num_steps=1, prompt="a cat")
    finally:
        pipe.text_encoder = saved


def test_disable_prompt_encoder_gives_zero_embeddings(pipe):
    pipe.disable_prompt_encoder = True
    try:
        with Recorder(pipe.transformer) as rec:
            pipe(*inputs(), num_steps=1, prompt="anything", guidance=0.0)
    finally:
        pipe.disable_prompt_encoder = False
    assert not rec.calls[0]["encoder_hidden_states"].any()


def test_callback_and_progress(pipe):
    seen = []
    pipe(*inputs(), num_steps=3, callback=lambda i, sigma, x: seen.append((i, sigma, tuple(x.shape))))
    assert [s[0] for s in seen] == [0, 1, 2]
    assert seen[0][1] == pytest.approx(80.0)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda i, c, m: (i, c[:10], m[:10]), "1 \\+ 8·k frames"),
        (lambda i, c, m: (i, torch.cat([c, c[:, :1]], 1), torch.cat([m, m[:, :1]], 1)), "1 or 2 buffers"),
        (lambda i, c, m: (i[:, :24], c[..., :24, :], m[..., :24, :]),
         rf"^the frame size of image and buffer_colors '24x{W}': this model takes heights and widths that are multiples of 16 .*: "
         rf"render the cache and the image at '16x{W}' or '32x{W}'$"),
        (lambda i, c, m: (i * 300, c, m), "image must lie in"),
        (lambda i, c, m: (i, c, m[:, :, :, :8]), "buffer_masks must be"),
        (lambda i, c, m: (i[:, :16], c, m), "image is"),
        (lambda i, c, m: (i, c.masked_fill(c > 0.99, float("nan")), m), "NaN"),
    ],
)
def test_bad_inputs_raise_input_errors(pipe, change, match):
    with pytest.raises(Gen3cInputError, match=match):
        pipe(*change(*inputs()), num_steps=1)


def test_buffers_longer_than_the_tokenizers_latent_statistics_are_an_input_error(pipe):
    """GEN3C's mean_std.pt holds statistics for one chunk's 16 latent frames: a longer video
    cannot be normalised, and is refused up front in one line (was a bare ValueError mid-encode)."""
    config = pipe.vae.config
    mean, std = config.latents_mean, config.latents_std
    pipe.vae.register_to_config(latents_mean=[0.0] * 32, latents_std=[1.0] * 32)  # 2 latent frames
    try:
        with Recorder(pipe.transformer) as rec, pytest.raises(Gen3cInputError, match="at most 9 per chunk"):
            pipe(*inputs(frames=17), num_steps=1)
        assert rec.calls == []
        assert pipe(*inputs(frames=9), num_steps=1).frames.shape == (9, 3, H, W)
    finally:
        pipe.vae.register_to_config(latents_mean=mean, latents_std=std)


def test_a_frame_size_the_model_cannot_take_is_refused_before_the_cache_is_rendered(pipe, tmp_path, room_sample):
    """`gen3c generate`, a batch job and the GUI's Generate say so at once, not after reading the
    input and rendering the cache (minutes at GEN3C's size)."""
    from gen3c.io.resolution import parse_resolution
    from gen3c.pipelines.camera_video import prepare_source
    from gen3c.pipelines.request import GenerationRequest, run_request

    generator = Gen3cGenerator(pipe, num_steps=1, chunk_frames=9)  # the tiny model: 128×128 at most, multiples of 16
    generator.check_frame_size(128, 112)
    with pytest.raises(Gen3cInputError, match=r"^--resolution '120x128': this model takes heights and widths that are multiples of 16 \(GEN3C works at 704x1280\): pass --resolution '112x128' or '128x128'$"):
        generator.check_frame_size(120, 128)
    request = GenerationRequest(resolution="176x320", num_video_frames=9, chunk_frames=9, generator="gen3c", video_save_folder=str(tmp_path / "out"))
    source = prepare_source(*room_sample, parse_resolution(request.resolution), "crop", depth_kind="metric")
    stages = []

    def progress(stage: str, total: int):
        stages.append(stage)
        return lambda n=1: None

    with pytest.raises(Gen3cInputError, match=r"^--resolution '176x320' is larger than this model takes \(128x128 at most\): pass --resolution '64x128' or '80x128'$"):
        run_request(request, source=source, generator=generator, progress=progress)
    assert stages == [] and not (tmp_path / "out").exists()
    # A generator handed over: its sizes offered at once (it was the tokenizer's multiples of 8, '72x104', refused next)
    request = dataclasses.replace(request, resolution="70x100", input_image_path=str(tmp_path / "never_read.png"))
    with pytest.raises(Gen3cInputError, match=r"^--resolution '70x100': this model takes heights and widths that are multiples of 16 .*: pass --resolution '64x96' or '80x112'$"):
        run_request(request, generator=generator, progress=progress)
    assert stages == [] and not (tmp_path / "out").exists()


def test_the_runs_fps_reaches_the_dit_as_gen3cs_fps_does(pipe, tmp_path, room_sample):
    """GEN3C passes --fps to the model (its RoPE places frame t at t / fps · 24) as well as to the
    video writer; a run at 12 fps told the DiT 24 (a different video from GEN3C's)."""
    from gen3c.io.resolution import parse_resolution
    from gen3c.pipelines.camera_video import prepare_source
    from gen3c.pipelines.request import GenerationRequest, run_request

    generator = Gen3cGenerator(pipe, num_steps=1, chunk_frames=9, guidance=0.0)
    request = GenerationRequest(resolution="32x48", num_video_frames=9, chunk_frames=9, generator="gen3c", fps=12,
                                video_save_folder=str(tmp_path / "out"))  # fmt: skip
    source = prepare_source(*room_sample, parse_resolution(request.resolution), "crop", depth_kind="metric")
    with Recorder(pipe.transformer) as rec:
        run_request(request, source=source, generator=generator)
    assert [call["fps"] for call in rec.calls] == [12]


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True])
def test_a_seed_numpy_cannot_take_is_an_input_error(pipe, seed):
    # Before: numpy's "Seed must be between 0 and 2**32 - 1" or torch's "manual_seed expected a long".
    with pytest.raises(Gen3cInputError, match="seed must be a whole number from 0 to 4294967295"):
        pipe(*inputs(), num_steps=1, seed=seed)


@pytest.mark.parametrize(
    "setting, match",
    [
        # Before: TypeError from math.isfinite; "got 2" for the string "2"; True taken as 1 step.
        ({"guidance": "1"}, "guidance must be a finite number, got '1'"),
        ({"num_steps": "2"}, "num_steps must be a positive whole number, got '2'"),
        ({"num_steps": True}, "num_steps must be a positive whole number, got True"),
        ({"guidance_every": 0}, r"guidance_every must be a positive whole number \(1: every step\), got 0"),
    ],
)
def test_sampling_settings_of_the_wrong_type_are_input_errors(pipe, setting, match):
    with pytest.raises(Gen3cInputError, match=match):
        pipe(*inputs(), **{"num_steps": 1, **setting})


@pytest.mark.parametrize(
    "setting, match",
    [
        # Before: NaN frames (fps 0 or NaN, sigma NaN), another video (fps −24, sigma −1, 0 tokens),
        # or a TypeError / OverflowError from deep inside.
        ({"fps": 0}, "fps must be a finite number > 0 \\(GEN3C: 24\\), got 0"),
        ({"fps": float("nan")}, "fps must be a finite number > 0"),
        ({"fps": -24}, "fps must be a finite number > 0"),
        ({"fps": "24"}, "fps must be a finite number > 0 .*, got '24'"),
        ({"condition_augment_sigma": float("nan")}, "condition_augment_sigma must be a finite number ≥ 0"),
        ({"condition_augment_sigma": -1.0}, "condition_augment_sigma must be a finite number ≥ 0 \\(GEN3C: 0.001\\)"),
        ({"max_sequence_length": 0}, "max_sequence_length must be a whole number of T5 tokens ≥ 1 \\(GEN3C: 512\\), got 0"),
        ({"max_sequence_length": -3}, "max_sequence_length must be a whole number"),
    ],
)
def test_conditioning_settings_that_would_give_nan_or_another_video_are_input_errors(pipe, setting, match):
    with Recorder(pipe.transformer) as rec, pytest.raises(Gen3cInputError, match=match):
        pipe(*inputs(), **{"num_steps": 1, **setting})
    assert rec.calls == []


def test_half_precision_on_the_cpu_is_an_input_error():
    # Before: NotImplementedError "avg_pool3d_out_frame" not implemented for 'BFloat16', from the tokenizer.
    half = tiny_pipeline(seed=0).to(torch.bfloat16)
    with pytest.raises(Gen3cInputError, match="cannot run in bfloat16 on the CPU: load with dtype=torch.float32"):
        half(*inputs(), num_steps=1)


def test_either_dtype_keyword_loads_a_folder_without_a_deprecation_warning(tmp_path, pipe):
    import warnings

    pipe.save_pretrained(tmp_path)
    for keyword in ("torch_dtype", "dtype"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)  # diffusers warns on the name it no longer prefers
            loaded = Gen3cPipeline.from_pretrained(tmp_path, **{keyword: torch.float16})
        assert loaded.transformer.dtype == torch.float16


def test_generator_adapter_renders_the_cache_and_reports_progress(pipe):
    image, colors, masks = inputs(num_buffers=1)

    class StandInCache:
        def __init__(self):
            self.rendered = None

        def render(self, cameras, depth=True, device="not given", output_device="not given"):
            self.rendered, self.depth, self.device, self.output_device = cameras, depth, device, output_device
            return SimpleNamespace(colors=colors, masks=masks)

    cache, cameras = StandInCache(), list(range(T))
    gen = Gen3cGenerator(pipe, num_steps=4, guidance=0.0, chunk_frames=T)
    ticks = []
    frames = gen.generate(cache, cameras, image, progress=ticks.append)
    assert cache.rendered is cameras and cache.depth is False  # GEN3C conditions on colour + mask only
    # on a CPU the cache renders where it is, and the renders stay there
    assert cache.device is None and gen.render_device is None
    assert cache.output_device is None and gen.render_output_device is None
    assert frames.shape == (T, 3, H, W)
    assert len(ticks) == 4 and all(isinstance(n, int) for n in ticks) and sum(ticks) == T
    direct = pipe(image, colors, masks, num_steps=4, guidance=0.0).frames
    # GEN3C's video is (1 + x).clamp(0, 2) / 2 · 255 cast to uint8 (truncated, Cosmos'
    # _run_tokenizer_decoding): the generator's frames are those levels, which the video writer
    # keeps exactly. Before, the writer rounded: frames up to one level brighter than GEN3C's.
    levels = ((1.0 + direct).clamp(0, 2) / 2 * 255).to(torch.uint8)
    assert torch.equal(frames, levels.float() / 127.5 - 1)
    assert np.array_equal(to_uint8(frames), levels.permute(0, 2, 3, 1).numpy())
    assert not np.array_equal(to_uint8(direct), levels.permute(0, 2, 3, 1).numpy())
    with pytest.raises(Gen3cInputError, match=r"^a gen3c chunk has 17 frames, not 25: pass 17 cameras"):
        gen.check_num_frames(25)
    with pytest.raises(Gen3cInputError, match="first frame"):
        gen.generate(cache, cameras, None)


def test_generator_progress_fills_its_bar_exactly(pipe):
    """17 frames over 10 steps: shares of 1.7 summed in floats end at 16.999…, which a bar of
    whole frames shows as 16/17 once the video is done."""
    image, colors, masks = inputs(num_buffers=1)
    cache = SimpleNamespace(render=lambda *args, **kwargs: SimpleNamespace(colors=colors, masks=masks))
    ticks = []
    Gen3cGenerator(pipe, num_steps=10, guidance=0.0, chunk_frames=T).generate(cache, list(range(T)), image, progress=ticks.append)
    assert len(ticks) == 10 and sum(ticks) == T and all(isinstance(n, int) for n in ticks)


def test_generator_with_the_checkpoints_own_steps_reports_progress(pipe):
    # Before: num_steps=None (the checkpoint's own, as in the pipeline) failed in the progress
    # callback with "unsupported operand type(s) for /: 'int' and 'NoneType'".
    image, colors, masks = inputs(num_buffers=1)
    gen = Gen3cGenerator(pipe, num_steps=None, guidance=0.0, chunk_frames=T)
    ticks = []
    pipe.sampling_defaults = {"num_steps": 3}  # as a distilled student's gen3c_model.json sets it
    try:
        gen.generate(None, None, image, buffers=SimpleNamespace(colors=colors, masks=masks), progress=ticks.append)
    finally:
        pipe.sampling_defaults = {}
    assert len(ticks) == 3 and sum(ticks) == pytest.approx(T)
    assert repr(gen) == "Gen3cGenerator(speed=None, num_steps=None, guidance=0.0, seed=1, chunk_frames=17, prompt='', device='cpu')"


def test_generator_draws_no_bar_of_its_own_and_keeps_the_users_setting(pipe, capsys):
    """docs/python.md: ``generate_video`` draws nothing unless given a progress factory. Before, the
    gen3c generator drew the pipeline's raw tqdm bar ("2/2 [00:00<00:00, 9.1it/s]") for each chunk
    when given none (the preview drew nothing); and earlier still every generate() reset the
    pipeline's bar to disable=False, undoing the user's call. The pipeline's own call keeps
    diffusers' bar, as the user set it."""
    from gen3c.cache import Cache3D
    from gen3c.cameras import Cameras, look_at, make_intrinsics
    from gen3c.pipelines.camera_video import generate_video

    image = inputs()[0]
    K = make_intrinsics(30.0, 30.0, (W - 1) / 2, (H - 1) / 2)
    cache = Cache3D()
    cache.add_view(image, torch.full((H, W), 3.0), K, torch.eye(4))
    eyes = torch.stack([torch.tensor([0.02 * i, 0.0, 0.0]) for i in range(T)])
    cameras = Cameras(look_at(eyes, eyes + torch.tensor([0.0, 0.0, 1.0])), K, H, W)
    gen = Gen3cGenerator(pipe, num_steps=2, guidance=0.0, chunk_frames=T)
    tiny_default = dict(pipe._progress_bar_config)  # (tiny_pipeline turns the bar off)
    pipe.set_progress_bar_config()  # diffusers' default: on
    try:
        capsys.readouterr()
        generate_video(cache, cameras, gen, image)
        gen.generate(cache, cameras, image)
        assert capsys.readouterr().err == "" and pipe._progress_bar_config == {}
        pipe(*inputs(num_buffers=1), num_steps=2)
        assert "2/2" in capsys.readouterr().err  # the pipeline's own tqdm bar, on by default
        pipe.set_progress_bar_config(disable=True)
        gen.generate(cache, cameras, image)
        gen.generate(cache, cameras, image, progress=lambda n: None)  # the caller's bar
        assert pipe._progress_bar_config == {"disable": True}
    finally:
        pipe.set_progress_bar_config(**tiny_default)


def test_each_chunk_of_a_long_video_starts_from_the_next_draw_of_the_seeds_noise(pipe, monkeypatch):
    """GEN3C seeds once (gen3c_single_image.py) and each chunk's torch.randn (model_v2w.py) continues
    the stream; chunk k's initial noise is the seed's (k+1)-th draw, chunk 0's a one-chunk video's,
    and the augmentation noise (numpy's RandomState(seed)) is the same in every chunk, as GEN3C's.
    Before, every chunk started from the same noise."""
    from gen3c.cache import Cache3D
    from gen3c.cameras import Cameras, look_at, make_intrinsics
    from gen3c.pipelines.camera_video import generate_video

    image = inputs()[0]
    K = make_intrinsics(30.0, 30.0, (W - 1) / 2, (H - 1) / 2)
    cache = Cache3D()
    cache.add_view(image, torch.full((H, W), 3.0), K, torch.eye(4))
    eyes = torch.stack([torch.tensor([0.02 * i, 0.0, 0.0]) for i in range(17)])
    cameras = Cameras(look_at(eyes, eyes + torch.tensor([0.0, 0.0, 1.0])), K, H, W)
    drawn = []
    prepare_noise = Gen3cPipeline.prepare_noise

    def recording(self, *args, **kwargs):
        drawn.append(prepare_noise(self, *args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(Gen3cPipeline, "prepare_noise", recording)
    generator = Gen3cGenerator(pipe, num_steps=1, guidance=0.0, chunk_frames=9, seed=5)
    generate_video(cache, cameras, generator, image)  # 17 frames: chunks (0, 9) and (8, 17)
    (first, first_aug), (second, second_aug) = drawn
    generate_video(cache, cameras[:9], generator, image)  # one chunk
    shape = (1, 16, 2, H // 8, W // 8)
    stream = torch.Generator("cpu").manual_seed(5)
    assert torch.equal(first, torch.randn(shape, generator=stream)) and torch.equal(drawn[2][0], first)
    assert torch.equal(second, torch.randn(shape, generator=stream))
    assert (first - second).abs().max() > 1
    assert torch.equal(first_aug, second_aug) and torch.equal(second_aug, torch.from_numpy(np.random.RandomState(5).standard_normal(shape).astype(np.float32)))
    # the pipeline takes the chunk too; a generator= continues its own stream, so chunk is refused with it
    assert torch.equal(pipe.prepare_noise(shape, torch.device("cpu"), seed=5, chunk=1)[0], second)
    with pytest.raises(Gen3cInputError, match="chunk=1 picks a draw of seed=N's noise stream, but a generator was given"):
        pipe(*inputs(frames=9), num_steps=1, generator=torch.Generator().manual_seed(5), chunk=1)
    with pytest.raises(Gen3cInputError, match="chunk must be a whole number from 0"):
        pipe(*inputs(frames=9), num_steps=1, chunk=-1)


# -- memory modes -------------------------------------------------------------------------------


def test_memory_plan_from_gen3c_flags():
    assert memory_plan().offload == frozenset()
    plan = memory_plan(offload_tokenizer=True, offload_text_encoder_model=True)
    assert plan.offload == {"vae", "text_encoder"} and not plan.group_offload
    assert memory_plan("model_offload").offload == {"transformer", "vae", "text_encoder"}
    plan = memory_plan("group_offload")
    assert plan.group_offload and plan.vae_chunk_frames == 2
    assert memory_plan("group_offload", vae_chunk_frames=0).vae_chunk_frames is None
    with pytest.raises(Gen3cInputError, match="memory_mode"):
        memory_plan("tiny")


def test_offload_flags_send_components_back_after_their_stage():
    pipe = tiny_pipeline(seed=0)
    pipe.configure_memory(memory_plan(offload_tokenizer=True), "cpu")
    pipe.placements.clear()
    pipe(*inputs(), num_steps=1, prompt="a dog")
    # The tokenizer goes to the compute device for each of its stages and back to the CPU
    # after each; the others are placed for their stages and stay.
    vae = [d for name, d in pipe.placements if name == "vae"]
    assert vae == ["cpu", "cpu", "cpu", "cpu"]  # (encode: onload, offload), (decode: onload, offload)
    stays = [d for name, d in pipe.placements if name == "transformer"]
    assert stays == ["cpu"]
    pipe.configure_memory(memory_plan(), "cpu")
    pipe.placements.clear()
    pipe(*inputs(), num_steps=1)
    assert [d for name, d in pipe.placements if name == "vae"] == ["cpu", "cpu"]  # onload only


def test_a_custom_prompt_and_negative_prompt_stage_t5_once():
    """A prompt and a negative prompt missing from the prompt cache each staged T5: an offloaded T5
    (11B in GEN3C) crossed to the GPU and back twice per call. Both now go in one stage, each
    encoded exactly as alone."""
    pipe = tiny_pipeline(seed=0)
    pipe.configure_memory(memory_plan(offload_text_encoder_model=True), "cpu")
    seen = {}

    def grab(pipe, step, timestep, tensors):
        seen.update(tensors)
        return {}

    pipe.placements.clear()
    pipe(*inputs(), num_steps=1, guidance=1, prompt="a dog", negative_prompt="a cat", callback_on_step_end=grab,
         callback_on_step_end_tensor_inputs=("prompt_embeds", "negative_prompt_embeds"))  # fmt: skip
    assert [d for name, d in pipe.placements if name == "text_encoder"] == ["cpu", "cpu"]  # onload, offload: once
    alone = pipe.encode_prompt("a dog"), pipe.encode_prompt("a cat", negative=True)
    assert torch.equal(seen["prompt_embeds"], alone[0]) and torch.equal(seen["negative_prompt_embeds"], alone[1])
    assert not torch.equal(alone[0], alone[1])


def test_group_offload_and_vae_chunks_keep_the_result():
    base = tiny_pipeline(seed=0)
    expected = base(*inputs(), num_steps=2).frames
    pipe = tiny_pipeline(seed=0)
    pipe.configure_memory(memory_plan("group_offload", vae_chunk_frames=1), "cpu")
    assert has_hook(pipe.transformer, "group_offloading")
    assert pipe.memory.vae_chunk_frames == 1
    got = pipe(*inputs(), num_steps=2).frames
    assert torch.allclose(got, expected, atol=1e-5)


def test_fp8_weight_storage():
    pipe = tiny_pipeline(seed=0)
    expected = pipe(*inputs(), num_steps=2, output_type="latent").frames
    pipe.configure_memory(memory_plan(fp8=True), "cpu")
    assert has_hook(pipe.transformer, "layerwise_casting")
    block = pipe.transformer.transformer_blocks[0]
    assert block.attn1.to_q.weight.dtype == torch.float8_e4m3fn
    assert pipe.transformer.patch_embed.proj.weight.dtype == torch.float32  # kept in full precision
    assert pipe.transformer_dtype == torch.float32
    got = pipe(*inputs(), num_steps=2, output_type="latent").frames
    assert (got - expected).abs().max() < 0.1 * expected.abs().max()


def test_a_new_memory_plan_cannot_silently_keep_float8_weights_or_streaming():
    """configure_memory with a plan without fp8 (or group offload) after one with it set the new plan
    while the DiT kept its float8 weights (or its streaming hooks): the plan said what the model was not."""
    pipe = tiny_pipeline(seed=0)
    pipe.configure_memory(memory_plan("group_offload", fp8=True), "cpu")
    with pytest.raises(Gen3cInputError, match=r"^configure_memory: an earlier plan left the DiT with its weights stored in float8 and its blocks streamed to cpu"):
        pipe.configure_memory(memory_plan(), "cpu")
    with pytest.raises(Gen3cInputError, match=r"left the DiT with its blocks streamed to cpu, which a new plan cannot undo"):
        pipe.configure_memory(memory_plan(fp8=True), "cpu")
    assert pipe.memory == memory_plan("group_offload", fp8=True)  # unchanged by the refusals
    pipe.configure_memory(memory_plan("group_offload", fp8=True, vae_chunk_frames=1), "cpu")  # the same DiT: accepted
    assert pipe.memory.vae_chunk_frames == 1


# -- loading ------------------------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path, pipe):
    pipe.save_pretrained(tmp_path / "ckpt")
    gen = load_generator(
        tmp_path / "ckpt", device="cpu", dtype="float32", num_steps=2, guidance=0.0, chunk_frames=T
    )
    assert gen.pipeline.text_encoder is None and gen.pipeline.prompt_cache is not None
    image, colors, masks = inputs()
    a = gen.pipeline(image, colors, masks, num_steps=2, guidance=0.0).frames
    b = pipe(image, colors, masks, num_steps=2, guidance=0.0).frames
    assert torch.allclose(a, b, atol=1e-4)


def test_save_pretrained_gives_plain_permissions_and_replaces_what_it_saves(tmp_path, pipe):
    """safetensors ≥ 0.8 writes owner-only files: a checkpoint saved on a shared machine was
    unreadable to the others (0600). Saved into an existing folder, a component replaces its
    namesake whole (an older save's extra shard goes); other files stay; nothing temporary is left."""
    import os

    old = os.umask(0o027)
    try:
        pipe.save_pretrained(tmp_path / "new" / "ckpt")
        folder = tmp_path / "existing"
        (folder / "transformer").mkdir(parents=True)
        (folder / "transformer" / "diffusion_pytorch_model-00002-of-00002.safetensors").write_bytes(b"old shard")
        (folder / "NOTES.md").write_text("mine")
        pipe.save_pretrained(folder)
    finally:
        os.umask(old)
    ckpt = tmp_path / "new" / "ckpt"
    modes = {p.relative_to(ckpt).as_posix(): p.stat().st_mode & 0o777 for p in [ckpt, *ckpt.rglob("*")]}
    assert modes["transformer/diffusion_pytorch_model.safetensors"] == 0o640
    assert all(mode == (0o750 if (ckpt / name).is_dir() else 0o640) for name, mode in modes.items()), modes
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["ckpt"]
    assert sorted(p.name for p in folder.iterdir()) == sorted([*(p.name for p in ckpt.iterdir()), "NOTES.md"])
    assert sorted(p.name for p in (folder / "transformer").iterdir()) == sorted(p.name for p in (ckpt / "transformer").iterdir())
    assert (folder / "vae" / "diffusion_pytorch_model.safetensors").stat().st_mode & 0o777 == 0o640
    assert Gen3cPipeline.from_pretrained(folder).model_info == pipe.model_info
    with pytest.raises(Gen3cInputError, match="is a file: pass a folder"):
        pipe.save_pretrained(folder / "NOTES.md")


def test_save_pretrained_removes_what_a_killed_save_left(tmp_path, pipe):
    """A save killed outright leaves its hidden staging folder beside the checkpoint (a copy of the
    weights); the next save removes it once its process is gone, and keeps a running save's."""
    import os
    import subprocess
    import sys

    from gen3c.io.atomic import _host

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    killed = tmp_path / f".ckpt.{int(gone.stdout)}@{_host()}.k1ll3d.part"
    running = tmp_path / f".ckpt.{os.getpid()}@{_host()}.running.part"
    for path in (killed, running):
        (path / "transformer").mkdir(parents=True)
        (path / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"half")
    pipe.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ckpt", running.name])


def test_absent_or_incomplete_weights_say_what_and_where(tmp_path, pipe):
    with pytest.raises(Gen3cModelError, match=r"does not exist.*gen3c convert"):
        load_generator(tmp_path / "nowhere")
    # A mistyped folder with --verify_checksums was told that hub downloads are checked by the hub.
    for where in (tmp_path / "nowhere", "./nowhere", "ckpts/gen3c/nowhere"):
        with pytest.raises(Gen3cModelError, match=r"does not exist.*gen3c convert"):
            load_generator(where, verify_checksums=True)
        with pytest.raises(Gen3cModelError, match=r"does not exist.*gen3c convert"):
            Gen3cPipeline.from_pretrained(where, verify_checksums=True)
    (tmp_path / "official" / "Gen3C-Cosmos-7B").mkdir(parents=True)
    with pytest.raises(Gen3cModelError, match=r"original layout.*gen3c convert"):
        load_generator(tmp_path / "official")
    # Its Gen3C-Cosmos-7B/ subfolder given: convert reads the folder above (was told to convert the subfolder).
    (tmp_path / "official" / "Gen3C-Cosmos-7B" / "model.pt").write_bytes(b"")
    with pytest.raises(Gen3cModelError, match=rf"original layout.*`gen3c convert {re.escape(repr(str(tmp_path / 'official')))} OUT_DIR`"):
        load_generator(tmp_path / "official" / "Gen3C-Cosmos-7B")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Gen3cModelError, match=r"no model_index.json.*nvidia/Gen3C-Cosmos-7B.*gen3c convert"):
        load_generator(tmp_path / "empty")
    ckpt = tmp_path / "ckpt"
    pipe.save_pretrained(ckpt)
    for f in (ckpt / "transformer").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(Gen3cModelError, match=r"missing transformer/\*\.safetensors.*gen3c convert"):
        load_generator(ckpt)
    index = json.loads((ckpt / "model_index.json").read_text())
    assert index["prompt_cache"] == ["gen3c.models.prompt_cache", "PromptEmbeddingCache"]


def test_load_generator_takes_a_packaged_models_name_and_refuses_mistakes_before_loading(monkeypatch):
    # Before: "tiny" was looked up on the hub; a typo reached Gen3cGenerator as a TypeError;
    # a device this machine lacks failed inside torch ("Found no NVIDIA driver").
    gen = load_generator("tiny", device="cpu")
    assert gen.chunk_frames == 17  # the packaged model's own chunk, from its gen3c_model.json
    with pytest.raises(Gen3cInputError, match="unknown option 'num_step': did you mean 'num_steps'"):
        load_generator("tiny", num_step=3)
    with pytest.raises(Gen3cInputError, match="'gpu' is not a device name"):
        load_generator("tiny", device="gpu")
    if not torch.backends.mps.is_available():  # (was torch's "PyTorch is not linked with support for mps devices" once loaded)
        with pytest.raises(Gen3cInputError, match="^device 'mps': this machine's torch cannot use mps devices: pass 'cpu' or nothing$"):
            load_generator("tiny", device="mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(Gen3cInputError, match="^device 'cuda': no CUDA GPU is visible here: pass 'cpu' or nothing$"):
        load_generator("tiny", device="cuda")


def test_a_packaged_models_name_as_checkpoint_dir_sets_the_runs_frames_and_size_before_loading(tmp_path, monkeypatch):
    """--checkpoint_dir tiny loads the packaged model (loading.checkpoint_folder), but what the run
    reads of it before loading (chunk, working size) fell back to GEN3C's 121 frames at 704×1280:
    `--num_video_frames 17` was refused as "makes 121 frames per chunk", the default 121 accepted,
    then refused after the load as "makes 17". A folder of that name still wins."""
    from gen3c.pipelines.request import GenerationRequest, check_frame_count
    from gen3c.pipelines.settings import default_resolution, fixed_chunk_frames

    monkeypatch.chdir(tmp_path)
    request = GenerationRequest(input_image_path="x.png", generator="gen3c", generator_options={"checkpoint_dir": "tiny"}, num_video_frames=17)
    assert fixed_chunk_frames(request) == 17
    assert default_resolution(request) == "64x112"
    check_frame_count(request)  # 17 = one chunk of the tiny model: no refusal
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "gen3c_model.json").write_text(json.dumps({"chunk_frames": 9}))
    assert fixed_chunk_frames(request) == 9


def test_configure_refuses_model_settings_other_than_the_loaded_ones():
    """configure takes sampling settings; a model setting (memory mode, dtype, chunk) would be
    dropped without effect, so one other than the loaded one is refused in one line naming it;
    the loaded ones (GeneratorPool's full option dicts) pass. Before: silently dropped."""
    gen = load_generator("tiny", device="cpu", dtype="float32")
    gen.configure({"model": "tiny", "memory_mode": "resident", "dtype": "fp32", "chunk_frames": 17, "device": "cpu", "num_steps": 3})
    assert gen.num_steps == 3
    gen.configure({"chunk_frames": None, "dtype": None, "num_steps": 3})  # None: the default, as at load (the model's own chunk)
    for options, match in [
        ({"memory_mode": "group_offload"}, r"^configure: memory_mode 'group_offload' differs from the 'resident' the generator was loaded with"),
        ({"dtype": "bf16", "num_steps": 2}, r"^configure: dtype 'bf16' differs from the 'float32' .*: load a new generator with load_generator\(\.\.\., dtype='bf16'\)$"),
        ({"chunk_frames": 9}, r"^configure: chunk_frames 9 differs from the 17 "),
    ]:
        with pytest.raises(Gen3cInputError, match=match):
            gen.configure(options)
    assert gen.num_steps == 3 and gen.pipeline.memory == memory_plan()


def test_uncached_prompt_without_t5_is_a_clear_error(pipe):
    bare = Gen3cPipeline(pipe.transformer, pipe.vae, pipe.scheduler, prompt_cache=pipe.prompt_cache)
    bare.set_progress_bar_config(disable=True)
    bare(*inputs(), num_steps=1)
    with pytest.raises(Gen3cModelError, match="^prompt 'a cat' is not in the prompt cache.*or use the empty prompt$"):
        bare(*inputs(), num_steps=1, prompt="a cat")
    # The negative prompt is named as such, with its own cached choice (was "prompt 'blurry' …
    # use the empty prompt", pointing at the wrong argument).
    with pytest.raises(Gen3cModelError, match=r"^negative_prompt 'blurry' is not in the prompt cache.*or use GEN3C's default \(negative_prompt=None\)$"):
        bare(*inputs(), num_steps=1, negative_prompt="blurry")


def test_an_uncached_prompt_for_a_checkpoint_saved_without_t5_says_so(tmp_path, pipe):
    """A pipeline loaded from a checkpoint folder without T5 (the packaged tiny model's) points its
    T5 at that folder; a prompt outside its prompt cache failed with transformers' "Couldn't
    instantiate the backend tokenizer from one of: " and the advice to fetch GEN3C's weights. Now
    it says, as for a pipeline without T5, that the prompt is not in the cache and which is."""
    from gen3c.pipelines.loading import load_pipeline

    pipe.save_pretrained(tmp_path / "ckpt")
    shutil.rmtree(tmp_path / "ckpt" / "text_encoder", ignore_errors=True)
    shutil.rmtree(tmp_path / "ckpt" / "tokenizer", ignore_errors=True)
    bare = load_pipeline(tmp_path / "ckpt", dtype="float32")
    bare.set_progress_bar_config(disable=True)
    with pytest.raises(Gen3cModelError, match="^prompt 'a cat' is not in the prompt cache and this pipeline has no T5 text encoder: .*or use the empty prompt$"):
        bare(*inputs(), num_steps=1, prompt="a cat")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run on the device)")
def test_on_a_gpu_the_renders_stay_there_in_the_resident_plan():
    """The gen3c generator splats the cache on its GPU; in the resident plan the renders stay there
    for the tokenizer (no copy to the CPU and back), in a leaner plan they come back to the CPU;
    the video, and the --save_buffer panels the output writer makes of them, are the same either way."""
    from gen3c.cache import Cache3D
    from gen3c.io.images import to_uint8
    from gen3c.pipelines.camera_video import buffer_panel, generate_video, mask_panel
    from gen3c.scenes import make_scene, render, source_camera
    from gen3c.trajectories import preset_trajectory

    src = source_camera(H, W)
    view = render(make_scene("objects", seed=0), src)
    cache = Cache3D()
    cache.add_view(view.rgb[0], view.depth[0], src.K[0], src.w2c[0])
    cameras = preset_trajectory("left", "center_facing", T, src.w2c[0], src.K[0], H, W)
    gpu = tiny_pipeline(seed=0).configure_memory(memory_plan(), "cuda")
    gen = Gen3cGenerator(gpu, num_steps=2, guidance=0.0, chunk_frames=T)
    seen, encode = [], gpu.encode_conditions

    def recording_encode(image, colors, masks, **noise):
        seen.append(colors.device.type)
        return encode(image, colors, masks, **noise)

    gpu.encode_conditions = recording_encode
    class PanelSink:  # what OutputWriter makes of each chunk with --save_buffer
        def __init__(self):
            self.panels = []

        def write(self, frames, buffers):
            self.panels.append((to_uint8(buffer_panel(frames, buffers, 2)), to_uint8(mask_panel(buffers, 2))))

    assert gen.render_device.type == "cuda" and gen.render_output_device == gen.render_device
    kept_sink, copied_sink = PanelSink(), PanelSink()
    kept = generate_video(cache, cameras, gen, first_frame=view.rgb[0], sink=kept_sink, keep=True).frames
    gpu.configure_memory(memory_plan("model_offload"), "cuda")
    assert gen.render_device.type == "cuda" and gen.render_output_device is None
    copied = generate_video(cache, cameras, gen, first_frame=view.rgb[0], sink=copied_sink, keep=True).frames
    assert seen == ["cuda", "cpu"]
    torch.testing.assert_close(kept, copied, atol=1e-6, rtol=0)
    for (panel_a, masks_a), (panel_b, masks_b) in zip(kept_sink.panels, copied_sink.panels, strict=True):
        assert panel_a.shape == (T, H, 3 * W, 3) and (panel_a == panel_b).mean() > 0.999 and (masks_a == masks_b).all()


def test_save_pretrained_saves_into_a_folder_starting_with_tilde_in_the_home_folder(tmp_path, pipe, monkeypatch):
    """save_pretrained("~/ckpt") saved into "./~/ckpt" (os.path.abspath keeps the ~), though
    from_pretrained and --checkpoint_dir read "~/ckpt" in the home folder; 123 was abspath's TypeError."""
    import os

    home, here = tmp_path / "home", tmp_path / "here"
    home.mkdir()
    here.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(here)
    pipe.save_pretrained("~/ckpt")
    assert os.listdir(here) == [] and os.listdir(home) == ["ckpt"]
    assert Gen3cPipeline.from_pretrained(home / "ckpt").model_info == pipe.model_info
    with pytest.raises(Gen3cInputError, match=r"^save_pretrained folder is int '123': pass the path to write the checkpoint to \(a str or a pathlib\.Path\)$"):
        pipe.save_pretrained(123)
