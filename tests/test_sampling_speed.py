"""The sampling side of speed: batched and reused guidance, higher-order samplers, DiT step
caching through diffusers' hooks, and the ``--speed`` presets (tiny models, CPU)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import warnings

import numpy as np
import pytest
import torch
from child_env import child_env
from tiny_model import tiny_components, tiny_pipeline
from torch import nn

from gen3c.errors import Gen3cInputError, Gen3cModelError
from gen3c.models import configs
from gen3c.models.step_cache import MagRatioStore, StepCache, StepCacheSpec
from gen3c.pipelines.gen3c import Gen3cPipeline
from gen3c.pipelines.loading import configure_sampling
from gen3c.pipelines.presets import SPEED_PRESETS, SpeedPreset, forwards_per_video, speed_settings
from gen3c.schedulers import SAMPLERS, make_scheduler, sampler_name

T, H, W = 17, 32, 32  # 3 latent frames of 4 × 4


@pytest.fixture(scope="module")
def pipe() -> Gen3cPipeline:
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def conditions(pipe):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, H, W, generator=g) * 2 - 1
    colors = torch.rand(T, 2, 3, H, W, generator=g) * 2 - 1
    masks = (torch.rand(T, 2, 1, H, W, generator=g) > 0.4).float()
    image_latent, buffer_latents = pipe.encode_conditions(image, colors, masks)
    # 16 of the 512 text tokens: the cross-attention over all of them is most of a tiny forward's time
    text, negative = (pipe.encode_prompt(p)[:, :16] for p in ("", configs.DEFAULT_NEGATIVE_PROMPT))
    return image_latent, buffer_latents, text, negative


def sample(pipe, conditions, steps=6, guidance=1.0, **kw):
    with torch.no_grad():
        return pipe.denoise(*conditions, guidance=guidance, num_steps=steps, seed=3, **kw)


class Calls:
    """Each DiT call's batch and branches (True: buffers given, the conditional branch)."""

    def __init__(self, transformer: nn.Module) -> None:
        self.branches: list[list[bool]] = []
        self.handle = transformer.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs):
        buffers = kwargs["condition_mask"][:, 1:].flatten(1).abs().amax(dim=1) > 0
        self.branches.append(buffers.tolist())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


class AttentionEvals:
    """Evaluations (× batch) of the last block's self-attention: what step caching skips."""

    def __init__(self, transformer: nn.Module) -> None:
        self.count = 0
        self.handle = transformer.transformer_blocks[-1].attn1.to_q.register_forward_pre_hook(self.hook)

    def hook(self, module, args):
        self.count += args[0].shape[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


# -- guidance ------------------------------------------------------------------------------


def test_batched_guidance_equals_two_forwards(pipe, conditions):
    reference = sample(pipe, conditions)
    with Calls(pipe.transformer) as calls:
        batched = sample(pipe, conditions, guidance_batch=True)
    assert calls.branches == [[True, False]] * 6  # one batch-2 forward per step: cond, then uncond
    torch.testing.assert_close(batched, reference, atol=1e-5, rtol=1e-5)


def test_guidance_every_runs_the_unconditional_branch_on_every_kth_step(pipe, conditions):
    with Calls(pipe.transformer) as calls:
        sample(pipe, conditions, steps=7, guidance_every=3)
    # steps 0, 3 and 6 run both branches; the others the conditional branch alone
    expected = [[True], [False], [True], [True], [True], [False], [True], [True], [True], [False]]
    assert calls.branches == expected
    assert forwards_per_video(SpeedPreset(num_steps=7, guidance_every=3)) == 10
    assert torch.equal(sample(pipe, conditions, guidance_every=1), sample(pipe, conditions))


def test_guidance_every_on_a_run_of_one_step_says_it_changes_nothing(pipe, conditions):
    """One step runs both branches at step 0 whatever guidance_every is: guidance_every 3 with
    num_steps 1 gave guidance_every 1's video without a word; now a note says so."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reused = sample(pipe, conditions, steps=1, guidance_every=3)
        sample(pipe, conditions, steps=2, guidance_every=3)  # step 1 reuses step 0's direction: no note
    assert torch.equal(reused, sample(pipe, conditions, steps=1))
    assert [str(w.message) for w in caught if "guidance_every" in str(w.message)] == [
        "--guidance_every 3: a run of 1 step runs both branches at its one step, as 1 does: it changes nothing; "
        "sample more steps, or drop --guidance_every"
    ]


# -- a DiT with a closed-form answer ---------------------------------------------------------


class GaussianDenoiser(nn.Module):
    """The exact EDM denoiser of data x ~ N(mu, s²) per element, in the DiT's call convention:
    input c_in·x and c_noise = ¼·ln σ, output F with D = c_skip·x + c_out·F. With the buffers
    present (the conditional branch) the denoised estimate is shifted by ``offset``, a constant,
    so the guidance direction D_cond − D_uncond is the same at every σ."""

    def __init__(self, mu: float = 0.3, s: float = 0.7, offset: float = 0.0, sigma_data: float = 0.5) -> None:
        super().__init__()
        self.mu, self.s, self.offset, self.sigma_data = mu, s, offset, sigma_data
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)  # a device for the pipeline

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def forward(self, hidden_states, timestep, encoder_hidden_states, fps, condition_mask, padding_mask, return_dict):
        sigma = torch.exp(4 * timestep.double()).view(-1, 1, 1, 1, 1)
        sd2 = self.sigma_data**2
        x = hidden_states.double() * torch.sqrt(sigma**2 + sd2)
        denoised = self.mu + self.s**2 / (self.s**2 + sigma**2) * (x - self.mu)
        buffers = (condition_mask[:, 1:].flatten(1).abs().amax(dim=1) > 0).double().view(-1, 1, 1, 1, 1)
        denoised = denoised + self.offset * buffers
        c_skip, c_out = sd2 / (sigma**2 + sd2), sigma * self.sigma_data / torch.sqrt(sigma**2 + sd2)
        return ((denoised - c_skip * x) / c_out).float(), None


def gaussian_pipeline(denoiser: GaussianDenoiser, sampler: str) -> Gen3cPipeline:
    parts = tiny_components(0, with_text_encoder=False)
    pipe = Gen3cPipeline(denoiser, parts["vae"], make_scheduler(sampler))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def gaussian_conditions(frames: int = 3):
    g = torch.Generator().manual_seed(1)
    latent = torch.zeros(1, 16, frames, 4, 4)
    latent[:, :, :1] = torch.randn(1, 16, 1, 4, 4, generator=g) * 0.5
    buffers = torch.randn(1, configs.BUFFER_CHANNELS, frames, 4, 4, generator=g)
    return latent, buffers, torch.zeros(1, 8, 16), torch.zeros(1, 8, 16)


def exact_ode_solution(denoiser: GaussianDenoiser, seed: int, shape) -> torch.Tensor:
    """x(σ=0) of the probability-flow ODE from the pipeline's start x_T = noise·√(σ_max² + 1)
    at σ_max: for Gaussian data x(σ) − mu = √(s² + σ²) / √(s² + σ_max²) · (x_T − mu)."""
    noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32).double()
    x_t = noise * math.sqrt(80.0**2 + 1)
    return denoiser.mu + denoiser.s / math.sqrt(denoiser.s**2 + 80.0**2) * (x_t - denoiser.mu)


@pytest.mark.parametrize("sampler, order", [("euler", 1), ("dpmpp_2m", 2)])
def test_sampler_error_falls_with_its_order(sampler, order):
    denoiser = GaussianDenoiser()
    pipe = gaussian_pipeline(denoiser, sampler)
    conditions = gaussian_conditions()
    truth = exact_ode_solution(denoiser, 3, conditions[0].shape)[:, :, 1:]  # frame 0 is the condition
    errors = []
    for steps in (20, 40, 80):
        out = sample(pipe, conditions, steps=steps, guidance=0.0)[:, :, 1:].double()
        errors.append(float((out - truth).abs().max()))
    # halving the step size divides the error by 2^order (GEN3C's 35 Euler steps: ~0.09 here)
    rates = [math.log2(a / b) for a, b in zip(errors, errors[1:], strict=False)]
    assert all(abs(r - order) < 0.35 for r in rates), (errors, rates)


def test_dpm_solver_runs_too_short_for_its_second_order_say_they_sample_as_euler():
    """DPM-Solver++(2M)'s first step and its last (to σ 0) are first order, which is Euler's step
    in GEN3C's parametrisation: --sampler dpmpp_2m with 1 or 2 steps gave Euler's video (to float
    rounding) without a word; now a note says so. 3 steps take one second-order step: no note."""
    conditions = gaussian_conditions()
    for steps in (1, 2, 3):
        euler = sample(gaussian_pipeline(GaussianDenoiser(offset=0.2), "euler"), conditions, steps=steps)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dpm = sample(gaussian_pipeline(GaussianDenoiser(offset=0.2), "dpmpp_2m"), conditions, steps=steps)
        said = [str(w.message) for w in caught if "--sampler" in str(w.message)]
        if steps <= 2:
            torch.testing.assert_close(dpm, euler, atol=1e-4, rtol=1e-4)  # (float32 rounding)
            assert said == [
                f"--sampler dpmpp_2m: a run of {steps} step{'s' if steps > 1 else ''} samples as euler does (its first step and its last, "
                "to σ 0, are first order, which is Euler's step): sample 3 steps or more, or pass --sampler euler"
            ]
        else:
            assert float((dpm - euler).abs().max()) > 1e-3 and said == []


def test_a_dpm_solver_of_another_algorithm_is_not_taken_for_dpmpp_2m():
    """A checkpoint's EDMDPMSolverMultistepScheduler of order 2 that is another sampler (the SDE
    variant, or second order to the end) is not named "dpmpp_2m", so configure_sampling replaces
    it by GEN3C's DPM-Solver++(2M) on its schedule. Before: only the class and solver order were
    compared, and a run asking for dpmpp_2m sampled with the stochastic solver, recorded as dpmpp_2m."""
    import diffusers

    cls = diffusers.EDMDPMSolverMultistepScheduler
    sde = cls(**{**SAMPLERS["dpmpp_2m"][1], "algorithm_type": "sde-dpmsolver++", "sigma_max": 40.0})
    assert sampler_name(sde) == "EDMDPMSolverMultistepScheduler"
    assert sampler_name(cls(**{**SAMPLERS["dpmpp_2m"][1], "lower_order_final": False})) == "EDMDPMSolverMultistepScheduler"
    replaced = make_scheduler("dpmpp_2m", dict(sde.config))
    assert sampler_name(replaced) == "dpmpp_2m" and replaced.config.sigma_max == 40.0  # its schedule kept
    assert sampler_name(diffusers.EDMEulerScheduler(**{**SAMPLERS["euler"][1], "sigma_max": 40.0})) == "euler"


def test_dpm_solver_keeps_gen3cs_schedule_and_the_conditioned_frame():
    scheduler = make_scheduler("dpmpp_2m")
    scheduler.set_timesteps(12)
    assert float(scheduler.sigmas[0]) == pytest.approx(80.0) and float(scheduler.sigmas[-2]) == pytest.approx(0.0002)
    assert float(scheduler.sigmas[-1]) == 0.0 and scheduler.config.sigma_data == 0.5 and scheduler.config.rho == 7.0
    assert sampler_name(scheduler) == "dpmpp_2m" and sampler_name(make_scheduler("euler")) == "euler"
    # The denoised estimate of the first latent frame is the clean latent at every step above
    # σ 0.001, so the frame stays on the (augmented) image latent, as with Euler.
    pipe = gaussian_pipeline(GaussianDenoiser(), "dpmpp_2m")
    conditions = gaussian_conditions()
    out = sample(pipe, conditions, steps=12, guidance=0.0)
    torch.testing.assert_close(out[:, :, :1], conditions[0][:, :, :1], atol=2e-3, rtol=0)


class VPredictionDenoiser(GaussianDenoiser):
    """The same denoiser for a scheduler with ``prediction_type="v_prediction"``, which reads the
    output as D = c_skip·x − c_out·F."""

    def forward(self, *args, **kwargs):
        return -super().forward(*args, **kwargs)[0], None


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_a_v_prediction_scheduler_gives_the_epsilon_samples(sampler):
    """A checkpoint's v-prediction scheduler (make_scheduler keeps its prediction_type) reads the
    DiT's output with −c_out; the conditioned frame's replacement output and the guidance
    direction must be read the same way, so the same denoiser gives the same samples. Before, the
    replacement used +c_out: the first frame's denoised estimate was 2·c_skip·x − latent, not the
    latent, and the frame ended 7e-3 off it."""
    conditions = gaussian_conditions()
    v_scheduler = make_scheduler(sampler, {**configs.SCHEDULER_GEN3C, "prediction_type": "v_prediction"})
    v_pipe = Gen3cPipeline(VPredictionDenoiser(offset=0.2), tiny_components(0, with_text_encoder=False)["vae"], v_scheduler)
    v_pipe.set_progress_bar_config(disable=True)
    epsilon = sample(gaussian_pipeline(GaussianDenoiser(offset=0.2), sampler), conditions, steps=12, guidance_every=3)
    torch.testing.assert_close(sample(v_pipe, conditions, steps=12, guidance_every=3), epsilon, atol=1e-5, rtol=1e-5)


def test_reused_guidance_direction_is_exact_when_it_does_not_change():
    """The direction is reused as a difference of denoised estimates: with one that is the same
    at every σ (a constant shift), reusing it is exact (a difference of the DiT's outputs, which
    scale by 1/c_out, would not carry over between σ)."""
    denoiser = GaussianDenoiser(offset=0.2)
    pipe = gaussian_pipeline(denoiser, "euler")
    conditions = gaussian_conditions()
    every_step = sample(pipe, conditions, steps=12, guidance=1.0)
    reused = sample(pipe, conditions, steps=12, guidance=1.0, guidance_every=4)
    torch.testing.assert_close(reused, every_step, atol=1e-5, rtol=1e-5)
    unguided = sample(pipe, conditions, steps=12, guidance=0.0)
    assert float((reused - unguided)[:, :, 1:].abs().min()) > 0.1  # and guidance did act


# -- step caching ---------------------------------------------------------------------------


def with_cache(pipe, text: str, **kw) -> StepCache:
    pipe.step_cache = StepCache(StepCacheSpec.parse(text), **kw)
    return pipe.step_cache


def sample_with_cache(pipe, conditions, text: str, steps: int, **kw) -> tuple[StepCache, list[str]]:
    """One run with the step cache ``text`` (taken off after it): the cache and the text of every UserWarning (its notes)."""
    cache = with_cache(pipe, text, **kw)
    try:
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            sample(pipe, conditions, steps=steps)
    finally:
        pipe.step_cache = None  # (takes the cache's hooks off)
    return cache, [str(w.message) for w in said if issubclass(w.category, UserWarning)]


def test_step_cache_parsing():
    assert StepCacheSpec.parse("none") is None and StepCacheSpec.parse(None) is None
    assert StepCacheSpec.parse("fbc") == StepCacheSpec("fbc", 0.05)
    assert StepCacheSpec.parse("taylorseer:4") == StepCacheSpec("taylorseer", 4)
    assert str(StepCacheSpec.parse("magcache:0.1")) == "magcache:0.1"
    for bad, match in (("teacache", "unknown kind"), ("fbc:x", "must be a finite number"), ("taylorseer:1", "≥ 2"),
                       ("fbc:-1", "above 0 and below 10"), ("magcache:10", "above 0 and below 10"),
                       # before: OverflowError / ValueError tracebacks from int(inf) / int(nan)
                       ("taylorseer:inf", "finite number"), ("taylorseer:nan", "finite number"), ("fbc:nan", "finite number")):  # fmt: skip
        with pytest.raises(Gen3cInputError, match=match):
            StepCacheSpec.parse(bad)


def test_first_block_cache_skips_the_other_blocks_per_branch(pipe, conditions):
    exact = sample(pipe, conditions)
    cache = with_cache(pipe, "fbc:9")  # any change is "small": after one full forward per branch, skip
    try:
        with AttentionEvals(pipe.transformer) as evals, Calls(pipe.transformer) as calls:
            skipping = sample(pipe, conditions)
        assert len(calls.branches) == 12 and evals.count == 2  # 6 steps × 2 branches; the tail ran once per branch
        assert not torch.allclose(skipping, exact)
        pipe.step_cache = with_cache(pipe, "fbc:1e-9")  # never small: every block runs, same result
        cache.remove()
        cache = pipe.step_cache
        with AttentionEvals(pipe.transformer) as evals:
            torch.testing.assert_close(sample(pipe, conditions), exact, atol=0, rtol=0)
        assert evals.count == 12
    finally:
        cache.remove()
        pipe.step_cache = None
    assert torch.equal(sample(pipe, conditions), exact)  # hooks removed: exactly as before


def test_taylorseer_computes_attention_on_its_schedule(pipe, conditions):
    cache = with_cache(pipe, "taylorseer:3")
    try:
        with AttentionEvals(pipe.transformer) as evals:
            approx = sample(pipe, conditions, steps=7)
    finally:
        cache.remove()
        pipe.step_cache = None
    # per branch: the first 3 calls, then every 3rd from the 5th: calls 0, 1, 2 and 4 of 7
    assert evals.count == 2 * 4
    exact = sample(pipe, conditions, steps=7)
    assert 0 < float((approx - exact).abs().max()) < float(exact.abs().max())


def test_magcache_measures_its_ratios_once_then_skips(pipe, conditions, tmp_path, monkeypatch):
    monkeypatch.setenv("GEN3C_CACHE_DIR", str(tmp_path / "cache"))
    checkpoint = tmp_path / "ckpt"
    (checkpoint / "transformer").mkdir(parents=True)
    (checkpoint / "transformer" / "config.json").write_text("{}")
    store = MagRatioStore(checkpoint)
    exact = sample(pipe, conditions, steps=8)
    cache = with_cache(pipe, "magcache:0.5", ratio_store=store)
    try:
        with AttentionEvals(pipe.transformer) as evals, pytest.warns(UserWarning, match="magnitude ratios"):
            calibrated = sample(pipe, conditions, steps=8)
        assert evals.count == 16 and torch.equal(calibrated, exact)  # the calibration run computes every step
        saved = json.loads(store.user_file.read_text())["euler"]
        assert saved["num_steps"] == 8 and len(saved["ratios"]) == 8 and saved["ratios"][0] == 1.0
        assert set(saved["branches"]) == {"cond", "uncond"} and saved["ratios"] == saved["branches"]["cond"]
        assert all(r > 0 for r in saved["ratios"])
        with AttentionEvals(pipe.transformer) as evals:
            sample(pipe, conditions, steps=8)
        assert evals.count < 16  # now it skips
        # a fresh cache of the same checkpoint finds the stored ratios
        assert MagRatioStore(checkpoint).load("euler") == saved["ratios"] and MagRatioStore(checkpoint).load("dpmpp_2m") is None
    finally:
        cache.remove()
        pipe.step_cache = None


def test_only_the_main_process_of_a_multi_gpu_run_stores_and_notes_the_ratios(pipe, conditions, tmp_path, monkeypatch):
    """Every rank of a context-parallel run measures the same ratios; rank 0 alone writes the file
    and says so (before: every rank printed the note and wrote the file)."""
    monkeypatch.setenv("GEN3C_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WORLD_SIZE", "2")  # a torchrun launch, before (or without) a process group
    store = MagRatioStore(tmp_path / "hub-id-like")
    for rank in ("1", "0"):
        monkeypatch.setenv("RANK", rank)
        cache, said = sample_with_cache(pipe, conditions, "magcache:0.5", 4, ratio_store=store)
        notes = [text for text in said if "magnitude ratios" in text]
        assert len(cache.mag_ratios) == 4  # kept for this process's next runs on every rank
        assert (len(notes), store.user_file.exists()) == ((1, True) if rank == "0" else (0, False))


def test_magcache_reads_the_ratios_of_each_runs_sampler(pipe, conditions, tmp_path, monkeypatch):
    """The ratios are per sampler: a run after ``pipe.scheduler`` was swapped (diffusers' way) reads
    its sampler's, or measures them (before: it skipped steps with the first sampler's ratios)."""
    monkeypatch.setenv("GEN3C_CACHE_DIR", str(tmp_path / "cache"))
    checkpoint = tmp_path / "ckpt"
    (checkpoint / "transformer").mkdir(parents=True)
    (checkpoint / "mag_ratios.json").write_text(json.dumps({"euler": {"num_steps": 8, "ratios": [1.0] * 8}}))
    euler, dpmpp = pipe.scheduler, make_scheduler("dpmpp_2m", dict(pipe.scheduler.config))
    pipe.register_modules(scheduler=dpmpp)
    exact = sample(pipe, conditions, steps=8)
    pipe.register_modules(scheduler=euler)
    cache = with_cache(pipe, "magcache:0.5", ratio_store=MagRatioStore(checkpoint))
    try:
        with AttentionEvals(pipe.transformer) as evals:
            sample(pipe, conditions, steps=8)
        assert evals.count < 16  # euler's ratios: it skips
        pipe.register_modules(scheduler=dpmpp)
        with AttentionEvals(pipe.transformer) as evals, pytest.warns(UserWarning, match=r"magnitude ratios \(dpmpp_2m, 8 steps\)"):
            calibrated = sample(pipe, conditions, steps=8)
        assert evals.count == 16 and torch.equal(calibrated, exact)  # none stored for it: measured, nothing skipped
        pipe.register_modules(scheduler=euler)
        with AttentionEvals(pipe.transformer) as evals:
            sample(pipe, conditions, steps=8)
        assert evals.count < 16 and list(cache.mag_ratios) == [1.0] * 8  # euler's again
        cache.mag_ratios = [9.0] * 8  # ratios set by hand are the ones used (these never allow a skip)
        with AttentionEvals(pipe.transformer) as evals:
            sample(pipe, conditions, steps=8)
        assert evals.count == 16
    finally:
        cache.remove()
        pipe.step_cache = None
        pipe.register_modules(scheduler=euler)


def test_magcache_ratios_of_another_step_count_compose_over_each_step(pipe, conditions):
    """A coarser run's step spans several measured ones: its ratio is their product (before:
    diffusers' nearest-neighbour pick of one measured ratio, so 0.97 per step read as a change of
    3 % where it is 18 %, and MagCache skipped what its threshold did not allow)."""
    fine = [1.0] + [0.97] * 34  # measured at 35 steps: the norm falls 3 % per step
    # 6 steps at threshold 0.06: each step changes the residual by 19 % — nothing may be skipped
    cache = with_cache(pipe, "magcache", mag_ratios=fine)
    try:
        with AttentionEvals(pipe.transformer) as evals:
            sample(pipe, conditions, steps=6)
    finally:
        cache.remove()
        pipe.step_cache = None
    assert evals.count == 12
    from gen3c.models.step_cache import resample_ratios

    assert resample_ratios(fine, 35) == fine
    assert resample_ratios(fine, 8) == pytest.approx([1.0] + [0.97 ** (34 / 7)] * 7)  # 34/7 measured steps each
    assert resample_ratios(fine, 69) == pytest.approx([1.0] + [0.97**0.5] * 68)  # finer: half a step each
    varying = [1.0, 0.9, 0.8, 1.2, 1.1]
    assert resample_ratios(varying, 3) == pytest.approx([1.0, 0.9 * 0.8, 1.2 * 1.1])
    assert math.prod(resample_ratios(varying, 4)) == pytest.approx(math.prod(varying))  # the whole change is kept
    assert resample_ratios(varying, 1) == [1.0]


def test_a_step_cache_that_cannot_skip_at_the_runs_step_count_says_so(pipe, conditions, tmp_path, monkeypatch):
    """TaylorSeer computes its first 3 steps, First Block Cache and MagCache the first one: with no
    more steps than that the cache does nothing, and a note says so (before: silently); a MagCache
    run of one step measures no ratios (before: it stored [1.0], read later as "nothing changes")."""
    monkeypatch.setenv("GEN3C_CACHE_DIR", str(tmp_path / "cache"))
    exact = sample(pipe, conditions, steps=1)
    store = MagRatioStore(tmp_path / "hub-id-like")
    for text, steps, match in (("taylorseer:2", 3, "a run of 3 steps skips nothing \\(taylorseer computes its first 3 steps in full\\)"),
                               ("fbc:9", 1, "a run of 1 step skips nothing \\(fbc computes the first step in full\\)"),
                               ("magcache:0.5", 1, "magcache:0.5: a run of 1 step skips nothing")):  # fmt: skip
        cache = with_cache(pipe, text, ratio_store=store)
        try:
            with pytest.warns(UserWarning, match=match):
                approx = sample(pipe, conditions, steps=steps)
            if steps == 1:
                assert torch.equal(approx, exact)
        finally:
            cache.remove()
            pipe.step_cache = None
    assert cache.mag_ratios is None and not store.user_file.exists()
    _, said = sample_with_cache(pipe, conditions, "taylorseer:2", 4)  # 4 steps: the 4th is extrapolated, no note
    assert not [text for text in said if "skips nothing" in text]


def test_replacing_the_pipelines_step_cache_takes_its_hooks_off(pipe, conditions):
    """``pipe.step_cache = None`` (or another cache) leaves no hooks of the old one on the DiT
    (before: MagCache's kept skipping steps unasked, First Block Cache's and TaylorSeer's raised
    diffusers' "No cache context is set", and a new First Block Cache "already exists")."""
    exact = sample(pipe, conditions)
    for text in ("magcache:0.5", "fbc:9", "taylorseer:2"):
        with_cache(pipe, text, mag_ratios=[1.0] * 6)
        assert not torch.equal(sample(pipe, conditions), exact)
        pipe.step_cache = None
        with AttentionEvals(pipe.transformer) as evals:
            assert torch.equal(sample(pipe, conditions), exact)
        assert evals.count == 12
    with_cache(pipe, "fbc:9")
    sample(pipe, conditions)
    try:
        with AttentionEvals(pipe.transformer) as evals:
            with_cache(pipe, "fbc:1e-9")  # replaced: the new one runs (every block, as its threshold says)
            assert torch.equal(sample(pipe, conditions), exact)
        assert evals.count == 12
    finally:
        pipe.step_cache = None


def test_an_interrupted_calibration_stores_nothing_and_bad_ratio_files_are_named(pipe, conditions, tmp_path, monkeypatch):
    monkeypatch.setenv("GEN3C_CACHE_DIR", str(tmp_path / "cache"))
    store = MagRatioStore(tmp_path / "hub-id-like")  # not a folder: the user cache only
    cache = with_cache(pipe, "magcache", ratio_store=store)

    def stop(step, sigma, latents):
        if step == 2:
            raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            sample(pipe, conditions, steps=6, callback=stop)
    finally:
        cache.remove()
        pipe.step_cache = None
    assert cache.mag_ratios is None and not store.user_file.exists()
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "mag_ratios.json").write_text('{"euler": {"ratios": "many"}}')
    with pytest.raises(Gen3cModelError, match="malformed: delete the file"):
        MagRatioStore(checkpoint).load("euler")
    # booleans, NaN, infinities, ratios ≤ 0 and no ratios (before: all but the last taken as ratios)
    for bad in ("[1.0, true]", "[1.0, NaN]", "[1.0, Infinity]", "[1.0, -0.9]", "[1.0, 0]", "[]"):
        (checkpoint / "mag_ratios.json").write_text(f'{{"euler": {{"num_steps": 2, "ratios": {bad}}}}}')
        with pytest.raises(Gen3cModelError, match=r"mag_ratios.json': the 'euler' MagCache ratios are malformed: delete the file .* positive, finite numbers"):
            MagRatioStore(checkpoint).load("euler")
    (checkpoint / "mag_ratios.json").write_text("[1, 2")
    with pytest.raises(Gen3cModelError, match="unreadable"):
        MagRatioStore(checkpoint).load("euler")



def test_a_step_cache_on_the_pipeline_is_checked_against_the_calls_guidance(pipe, conditions):
    """speed_settings refuses MagCache, or a batched pair with a cache, under --guidance_every; a
    step cache set on the pipeline met those arguments of the call unchecked (before: MagCache ran
    misaligned, the unconditional branch's ratio table counting only every k-th step)."""
    for text, kwargs, match in (("magcache:0.5", {"guidance_every": 2}, "--step_cache magcache needs the unconditional branch"),
                                ("fbc", {"guidance_every": 2, "guidance_batch": True}, "--guidance_batch with a step cache needs")):  # fmt: skip
        cache = with_cache(pipe, text)
        cache.mag_ratios = [1.0] * 6
        try:
            with Calls(pipe.transformer) as calls, pytest.raises(Gen3cInputError, match=match):
                sample(pipe, conditions, **kwargs)
            assert calls.branches == []  # refused before the first forward
            sample(pipe, conditions, steps=2, guidance=0.0, **kwargs)  # one branch: nothing to misalign
        finally:
            cache.remove()
            pipe.step_cache = None

@pytest.mark.parametrize(
    "cache, kwargs",
    [("fbc:0.2", {}), ("taylorseer:2", {}), ("magcache:0.5", {}), ("fbc:0.2", {"guidance_every": 2}),
     ("none", {"guidance_batch": True}), ("none", {"sampler": "dpmpp_2m"})],
)  # fmt: skip
def test_each_approximation_gives_the_same_video_twice(pipe, conditions, cache, kwargs):
    """A cache's state is reset between videos: the same settings give the same video again,
    bit for bit (the second video starts from no cached residual or Taylor factors)."""
    kwargs = dict(kwargs)
    configure_sampling(pipe, speed_settings(step_cache=cache, sampler=kwargs.pop("sampler", None)))
    if pipe.step_cache is not None and pipe.step_cache.spec.kind == "magcache":
        pipe.step_cache.mag_ratios = [1.0, 1.05, 1.02, 1.0, 0.98, 0.9]  # as measured ratios would be: no calibration run
    try:
        first, second = sample(pipe, conditions, **kwargs), sample(pipe, conditions, **kwargs)
    finally:
        configure_sampling(pipe, speed_settings())
    assert torch.equal(first, second)
    if not kwargs.get("guidance_batch"):  # (batched guidance is exact up to rounding)
        assert not torch.equal(first, sample(pipe, conditions))  # an approximation: not the exact video


# -- presets --------------------------------------------------------------------------------


def test_presets_are_data_and_flags_override_them():
    assert speed_settings() == SPEED_PRESETS["exact"] == SpeedPreset()
    assert forwards_per_video(SPEED_PRESETS["exact"]) == 70 and forwards_per_video(SPEED_PRESETS["exact"], guidance=0) == 35
    for name in ("fast", "fastest"):
        assert forwards_per_video(SPEED_PRESETS[name]) < 70
    fast = speed_settings("fast", num_steps=30, step_cache="fbc")
    assert fast.num_steps == 30 and fast.step_cache == "fbc" and fast.sampler == SPEED_PRESETS["fast"].sampler
    assert speed_settings("fastest", guidance_every=None) == SPEED_PRESETS["fastest"]  # None: the preset's
    for kwargs, match in (({"speed": "ludicrous"}, "--speed 'ludicrous'"), ({"sampler": "heun"}, "--sampler"),
                          ({"num_steps": 0}, "--num_steps"), ({"num_steps": 2.5}, "whole number"), ({"guidance_every": 0}, "--guidance_every"),
                          ({"step_cache": "magcache", "guidance_every": 2}, "magcache"),
                          # from Python (before: an AttributeError traceback, or "yes" taken as on)
                          ({"step_cache": 0.1}, "step_cache must be str, got float"), ({"guidance_batch": "yes"}, "must be bool"),
                          ({"num_steps": True}, "num_steps must be a whole number, got bool"), ({"compile": 1}, "bool or None"),
                          ({"step_cache": "fbc", "guidance_every": 2, "guidance_batch": True}, "--guidance_batch")):  # fmt: skip
        with pytest.raises(Gen3cInputError, match=match):
            speed_settings(**kwargs)


def test_settings_of_guidance_are_refused_without_guidance():
    """guidance 0 runs one branch: reusing or batching the unconditional branch would do nothing
    (before: accepted silently, also for the distilled student, whose own guidance is 0)."""
    from gen3c.pipelines.loading import load_generator

    for checkpoint, kwargs, match in (
        ("tiny", {"guidance": 0.0, "guidance_every": 2}, "^guidance_every= shapes guidance's two branches, but guidance=0"),
        ("tiny", {"guidance": 0.0, "guidance_batch": True}, "^guidance_batch=True shapes"),
        ("tiny_fast", {"guidance_batch": True, "guidance_every": 3}, "^guidance_every= and guidance_batch=True shape guidance's two "
         "branches, but this model samples without guidance"),
    ):  # fmt: skip
        with pytest.raises(Gen3cInputError, match=match):
            load_generator(checkpoint, **kwargs)
    student = load_generator("tiny_fast", guidance=1.0, guidance_every=2)  # guidance asked for: its branches may be shaped
    assert student.guidance == 1.0 and student.guidance_every == 2


def test_speed_settings_are_checked_before_gens_weights_are_fetched(monkeypatch):
    """Without --checkpoint_dir / --model GEN3C's weights (~60 GB) are fetched first: a mistyped
    speed setting must be refused before that (before: after the download, when the model loaded)."""
    from gen3c.models import weights
    from gen3c.pipelines.loading import generator_from_options

    def fetch(*args, **kwargs):
        raise AssertionError("fetched GEN3C's weights before checking the settings")

    monkeypatch.setattr(weights, "prepare_weights", fetch)
    for options, match in (({"speed": "warp"}, "--speed 'warp' is unknown"), ({"step_cache": "teacache"}, "unknown kind"),
                           ({"sampler": "heun"}, "--sampler 'heun'"), ({"attention_backend": "flsh4"}, "'flsh4' is unknown"),
                           ({"num_steps": 0}, "--num_steps 0"), ({"guidance": 0.0, "guidance_every": 2}, "--guidance 0")):  # fmt: skip
        with pytest.raises(Gen3cInputError, match=match):
            generator_from_options(options)


def test_speed_preset_names_are_read_as_step_cache_kinds_are():
    """Case and surrounding spaces do not matter (as for --step_cache); anything else is one line."""
    from gen3c.pipelines.presets import SPEED_PRESETS, speed_name, speed_settings

    assert speed_name(None) == "exact" and speed_name(" Fast") == "fast"
    assert speed_settings("FASTEST") == SPEED_PRESETS["fastest"]
    with pytest.raises(Gen3cInputError, match="--speed 'fast est' is unknown: use one of exact, fast, fastest"):
        speed_name("fast est")


def test_a_speed_preset_says_when_a_distilled_student_keeps_its_own_steps():
    from gen3c.errors import collect_notes
    from gen3c.pipelines.loading import load_generator

    with collect_notes() as notes:
        student = load_generator("tiny_fast", speed="fast")
    assert student.num_steps == 5
    assert notes == ['speed="fast": this model is a distilled student and samples with its own 5 steps, not the preset\'s 18 '
                     "(num_steps= sets them)"]  # load_generator's keywords  # fmt: skip
    with collect_notes() as notes:
        assert load_generator("tiny_fast", speed="fast", num_steps=3).num_steps == 3  # asked for: no note
        assert load_generator("tiny", speed="fast").num_steps == 18
    assert notes == []


def test_configure_sampling_swaps_the_scheduler_and_cache(pipe):
    configure_sampling(pipe, speed_settings("exact", sampler="dpmpp_2m", step_cache="fbc"))
    try:
        assert type(pipe.scheduler).__name__ == "EDMDPMSolverMultistepScheduler"
        assert pipe.scheduler.config.sigma_min == 0.0002 and pipe.step_cache.spec.kind == "fbc"
    finally:
        configure_sampling(pipe, speed_settings("exact"))
    assert type(pipe.scheduler).__name__ == "EDMEulerScheduler" and pipe.step_cache is None


# -- the command line -----------------------------------------------------------------------


def invoke(*args):
    from typer.testing import CliRunner

    from gen3c.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.slow
def test_speed_preset_on_the_command_line(box_scene, tmp_path, monkeypatch):
    """`--speed fastest` with the shipped small model: the preset reaches the generator, flags
    given on their own override its settings, and the video has every frame."""
    from gen3c.io.video import read_video
    from gen3c.pipelines import loading

    made = []
    real = loading._load_generator  # (what generator_from_options calls)

    def spy(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(loading, "_load_generator", spy)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # what runs on a CPU, also on a GPU host
    image, depth, _, _ = box_scene
    res = invoke("generate", "--input_image_path", image, "--depth_path", depth, "--fov", "60", "--resolution", "64x112",
                 "--num_video_frames", 17, "--video_save_folder", tmp_path, "--generator", "gen3c", "--model", "tiny",
                 "--speed", "fastest", "--num_steps", 3, "--sampler", "dpmpp_2m", "--step_cache", "fbc:0.2",
                 "--guidance_batch")  # fmt: skip
    assert res.exit_code == 0, res.output
    generator = made[0]
    fastest = SPEED_PRESETS["fastest"]
    assert generator.num_steps == 3 and generator.guidance_every == fastest.guidance_every
    assert generator.guidance_batch is True and sampler_name(generator.pipeline.scheduler) == "dpmpp_2m"
    assert generator.pipeline.step_cache.spec == StepCacheSpec("fbc", 0.2)
    # fastest's fp8 attention and matmuls and the compile are for GPUs: on a CPU, plain kernels
    from gen3c.models.speed import Fp8Linear

    transformer = generator.pipeline.transformer
    assert fastest.attention_backend == "auto_fp8" and transformer._gen3c_attention_kernel == "sdpa"
    assert fastest.fp8_matmul is None and not any(isinstance(m, Fp8Linear) for m in transformer.modules())
    assert fastest.compile is None  # nn.Module.compile sets _compiled_call_impl
    assert all(getattr(b, "_compiled_call_impl", None) is None for b in transformer.transformer_blocks)
    assert "not available" not in res.output  # no fallback note for a preset's choice
    frames, _ = read_video(tmp_path / "output.mp4")
    assert frames.shape == (17, 64, 112, 3)


def test_the_presets_compile_and_fp8_matmuls_can_be_turned_off(box_scene, tmp_path, monkeypatch):
    """Every preset compiles on a GPU and `fastest` takes fp8 matmuls there: --no_compile and
    --no_fp8_matmul turn them off (before: no flag could, and --help said "start from exact",
    which compiles too)."""
    from gen3c.pipelines import loading

    asked = []
    real = loading._load_generator  # (what generator_from_options calls)
    monkeypatch.setattr(loading, "_load_generator", lambda *args, **kwargs: asked.append(kwargs) or real(*args, **kwargs))
    image, depth, _, _ = box_scene
    common = ("generate", "--input_image_path", image, "--depth_path", depth, "--fov", "60", "--resolution", "32x48",
              "--video_save_folder", tmp_path)  # fmt: skip
    res = invoke(*common, "--generator", "gen3c", "--model", "tiny", "--speed", "fastest", "--num_steps", 1, "--no_compile", "--no_fp8_matmul")
    assert res.exit_code == 0, res.output
    assert asked[-1]["compile"] is False and asked[-1]["fp8_matmul"] is False
    assert speed_settings("fastest", compile=False, fp8_matmul=False) == dataclasses.replace(SPEED_PRESETS["fastest"], compile=False, fp8_matmul=False)
    res = invoke(*common, "--no_compile")  # the preview: named as typed
    assert res.exit_code == 2 and "--no_compile applies to --generator gen3c only" in " ".join(res.output.split())


@pytest.mark.slow
def test_the_run_record_says_what_ran(box_scene, tmp_path, monkeypatch):
    """NAME_run.json and the last line of `gen3c generate` name the settings in effect: the preset
    with the flags applied, and the kernel chosen after a fallback (before: only the flags as
    typed, e.g. "num_steps": null and "attention_backend": "cudnn_fp8" for a run on SDPA)."""
    import gen3c
    from gen3c.models.packaged import packaged_model_dir
    from gen3c.models.verify import checksums_sha256

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the record of a CPU run, also on a GPU host
    image, depth, _, _ = box_scene
    res = invoke("generate", "--input_image_path", image, "--depth_path", depth, "--fov", "60", "--resolution", "32x48",
                 "--video_save_folder", tmp_path, "--generator", "gen3c", "--model", "tiny", "--speed", "fastest",
                 "--num_steps", 2, "--step_cache", "fbc:0.1", "--guidance_every", 2, "--attention_backend", "cudnn_fp8")  # fmt: skip
    assert res.exit_code == 0, res.output
    run = json.loads((tmp_path / "output_run.json").read_text())
    assert run["generator_options"]["num_steps"] == 2 and run["generator_options"]["attention_backend"] == "cudnn_fp8"
    assert run["generator_settings"] == {
        "speed": "fastest", "sampler": "euler", "num_steps": 2, "guidance": 1.0, "guidance_every": 2, "guidance_batch": False,
        "step_cache": "fbc:0.1", "attention": "sdpa", "compile": False, "fp8_matmul": False, "dit_memory": "resident",
        "fp8_weights": False, "device": "cpu", "dtype": "float32", "num_gpus": 1,
        "checkpoint": str(packaged_model_dir("tiny")), "checkpoint_checksums_sha256": checksums_sha256(packaged_model_dir("tiny")),
        "lora_sha256": None, "noise_aug_strength": 0.0,
    }  # fmt: skip
    assert "cudnn_fp8' is not available" in res.output  # the fallback, said once
    assert ("ran with --speed fastest: euler 2 steps, guidance 1, unconditional branch every 2 steps, step cache fbc:0.1; "
            "attention sdpa, compile off, fp8 matmuls off; DiT resident; cpu float32") in res.output  # fmt: skip
    # --fp8 is named too (the line said only "fp8 matmuls off", as if --fp8 had done nothing)
    res = invoke("generate", "--input_image_path", image, "--depth_path", depth, "--fov", "60", "--resolution", "32x48",
                 "--video_save_folder", tmp_path, "--video_save_name", "fp8", "--generator", "gen3c", "--model", "tiny",
                 "--speed", "fastest", "--num_steps", 1, "--fp8", "--memory_mode", "model_offload")  # fmt: skip
    assert res.exit_code == 0, res.output
    ran = json.loads((tmp_path / "fp8_run.json").read_text())["generator_settings"]
    # on the CPU a memory mode offloads nothing (the load's note says so): the record said "offloaded"
    # (and --low_memory's "streamed") for a DiT that never left the memory it computes in
    assert (ran["dit_memory"], ran["fp8_weights"]) == ("resident", True)
    assert "fp8 matmuls off; DiT resident, float8 weights; cpu float32" in " ".join(res.output.split())
    assert "nothing is offloaded or streamed" in " ".join(res.output.split())
    # the Python API: the same record, the preset's defaults (a distilled student: its own steps, no guidance)
    out = gen3c.generate(image, depth=depth, fov=60, resolution="32x48", model="tiny_fast", video_save_folder=tmp_path,
                         video_save_name="student", progress=False)  # fmt: skip
    assert out.generator_settings == {**run["generator_settings"], "speed": "exact", "num_steps": 5, "guidance": 0.0,
                                      "guidance_every": 1, "step_cache": "none", "checkpoint": str(packaged_model_dir("tiny_fast")),
                                      "checkpoint_checksums_sha256": checksums_sha256(packaged_model_dir("tiny_fast"))}  # fmt: skip
    assert out.generator_settings["checkpoint_checksums_sha256"] != run["generator_settings"]["checkpoint_checksums_sha256"]
    assert json.loads((tmp_path / "student_run.json").read_text())["generator_settings"] == out.generator_settings
    preview = gen3c.generate(image, depth=depth, fov=60, resolution="32x48", num_video_frames=3, generator="preview",
                             video_save_folder=tmp_path, video_save_name="preview", progress=False)  # fmt: skip
    assert preview.generator_settings is None and "generator_settings" not in json.loads(preview.paths["run"].read_text())


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--speed", "warp"), "--speed 'warp' is unknown"),
        (("--sampler", "heun"), "--sampler 'heun' is unknown"),
        (("--step_cache", "teacache"), "unknown kind 'teacache'"),
        (("--speed", "fast", "--guidance_every", 0), "--guidance_every 0"),
    ],
)
def test_speed_flag_errors_exit_2(box_scene, tmp_path, extra, message):
    image, depth, _, _ = box_scene
    res = invoke("generate", "--input_image_path", image, "--depth_path", depth, "--fov", "60", "--resolution", "64x112",
                 "--num_video_frames", 17, "--video_save_folder", tmp_path, "--generator", "gen3c", "--model", "tiny", *extra)  # fmt: skip
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    res = invoke("generate", "--input_image_path", image, "--depth_path", depth, "--video_save_folder", tmp_path, *extra)
    assert res.exit_code == 2 and re.search(r"appl(y|ies) to --generator gen3c only", " ".join(res.output.split()))


def test_help_states_each_approximations_measured_cost():
    """Each opt-in approximation states its measured cost in --help, and every PSNR quoted there is
    one of docs/benchmarks.md's (rounded to 0.1 dB)."""
    from pathlib import Path

    import typer.main

    from gen3c.cli import app

    text = " ".join(invoke("generate", "--help").output.split())
    for flag in ("--speed", "--sampler", "--guidance_every", "--step_cache", "--no_compile", "--no_fp8_matmul"):
        assert flag in text
    generate = typer.main.get_command(app).commands["generate"]
    helps = {p.name: p.help for p in generate.params}
    psnr = re.compile(r"(\d+\.\d) dB")
    # fast and fastest; DPM-Solver++; reusing guidance at 2 and 3; fbc at its default and 0.1, taylorseer, magcache; fp8 kernels;
    # float8 weights (--fp8, and --low_memory, which stores them so)
    least = {"speed": 2, "sampler": 1, "guidance_every": 2, "step_cache": 4, "attention_backend": 1, "fp8_matmul": 1, "fp8": 1, "low_memory": 1}
    for name, count in least.items():
        assert len(psnr.findall(helps[name])) >= count, name
    assert "same video up to float rounding" in helps["guidance_batch"]  # exact: no cost to state
    docs = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
    measured = {f"{float(n):.1f}" for n in re.findall(r"\d+\.\d+", docs.read_text())}
    quoted = [n for name in least for n in psnr.findall(helps[name])]
    assert quoted and not [n for n in quoted if n not in measured]


# -- step caches on a DiT whose tokens are split across ranks ---------------------------------

CP_STEP_CACHE_WORKER = '''
import copy, faulthandler, json, os, sys
import torch
from diffusers import CosmosTransformer3DModel
from diffusers.utils import logging
from gen3c.models import configs
from gen3c.models.context_parallel import enable_context_parallel
from gen3c.models.step_cache import StepCache, StepCacheSpec
from gen3c.parallel import init_parallel

faulthandler.dump_traceback_later(90, exit=True)  # ranks that wait on each other forever end (the test fails)
logging.set_verbosity_error()
ctx = init_parallel(int(os.environ["WORLD_SIZE"]))
torch.manual_seed(0)
split = CosmosTransformer3DModel(**configs.TRANSFORMER_TINY).eval()
for name, p in split.named_parameters():
    if "norm" not in name:
        p.data.normal_(0.0, 0.05)
whole = copy.deepcopy(split)
enable_context_parallel(split, ctx.device)
g = torch.Generator().manual_seed(1)
T, h, w = 4, 4, 6  # 4 latent frames: the first 2 are rank 0's tokens, the last 2 rank 1's
x = torch.randn(1, 16, T, h, w, generator=g)
bump = torch.zeros_like(x)
bump[:, :, :2] = torch.randn(1, 16, 2, h, w, generator=g)  # the steps change rank 0's tokens only
kwargs = dict(timestep=torch.tensor([0.7]), encoder_hidden_states=torch.randn(1, 8, configs.TRANSFORMER_TINY["text_embed_dim"], generator=g),
              condition_mask=torch.randn(1, configs.TRANSFORMER_TINY["in_channels"] - 16, T, h, w, generator=g),
              padding_mask=torch.zeros(1, 1, h * 8, w * 8), fps=24, return_dict=False)


def run(model, text, steps=3):
    cache, tails, ran = StepCache(StepCacheSpec.parse(text)), [], []
    handle = model.transformer_blocks[-1].attn1.to_q.register_forward_pre_hook(lambda m, a: tails.append(1))
    cache.begin(model, steps, "euler")
    with torch.no_grad():
        for k in range(steps):
            before = len(tails)
            with cache.branch("cond"):
                model(hidden_states=x + 3 * k * bump, **kwargs)
            ran.append(len(tails) > before)
    cache.end()
    cache.remove()
    handle.remove()
    return ran, cache.mag_ratios


result = {"magcache": [run(m, "magcache")[1] for m in (split, whole)]}
for i in range(12):  # thresholds 4^-i: one between the ranks' own changes, wherever they are
    threshold = 4.0**-i
    result[f"fbc:{threshold:g}"] = [run(m, f"fbc:{threshold:g}")[0] for m in (split, whole)]
(open(sys.argv[1] + f"/rank{ctx.rank}.json", "w")).write(json.dumps(result))
'''


@pytest.mark.slow
def test_step_caches_decide_alike_on_every_rank_of_a_split_dit(tmp_path):
    """With the DiT's tokens split across ranks, First Block Cache decides and MagCache measures
    on all the tokens, as one GPU does (before: each rank on its own, so ranks could skip
    different steps — one left waiting in the attention's all-to-all — and measure different ratios)."""
    import subprocess
    import sys


    worker = tmp_path / "worker.py"
    worker.write_text(CP_STEP_CACHE_WORKER)
    env = child_env(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(worker), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    (split0, whole), (split1, _) = ranks[0]["magcache"], ranks[1]["magcache"]
    assert split0 == split1 and split0 == pytest.approx(whole, rel=1e-4)  # the whole sequence's ratios, on both ranks
    assert ranks[0]["magcache"] != [None, None] and len(split0) == 3
    decisions = {key: value for key, value in ranks[0].items() if key.startswith("fbc")}
    for key, (split_ran, whole_ran) in decisions.items():
        assert split_ran == ranks[1][key][0] == whole_ran, key
    assert any(not all(ran) for ran, _ in decisions.values()) and any(all(ran) for ran, _ in decisions.values())


def test_ratios_given_by_hand_are_checked_kept_whole_and_used_with_every_sampler(pipe, conditions, tmp_path, monkeypatch):
    """mag_ratios set by hand: a ratio ≤ 0 or NaN is one line (was a bare math ValueError once
    resampled); a list changed in place afterwards cannot be half-applied (a tuple is kept); they
    are used with any sampler (a calibration's sampler tag no longer drops them)."""
    cache = StepCache(StepCacheSpec.parse("magcache:0.5"))
    for bad in ([1.0, 0.0], [1.0, float("nan")], [], "1.0", [True, 1.0]):
        with pytest.raises(Gen3cInputError, match=r"^mag_ratios must be a list of finite numbers > 0, one per step"):
            cache.mag_ratios = bad
    given = [1.0, 0.9, 0.8]
    cache.mag_ratios = given
    given[1] = -5.0  # the caller's list changes: the cache's does not
    assert cache.mag_ratios == (1.0, 0.9, 0.8)
    cache.mag_ratios = np.array([1.0, 0.5], np.float32)  # a numpy array or a tensor of them, as measured ones often are
    assert cache.mag_ratios == (1.0, 0.5)
    cache.mag_ratios = torch.tensor([1.0, 0.25])
    assert cache.mag_ratios == (1.0, 0.25)
    cache._ratios_sampler = "euler"  # as after a calibration run with euler ...
    cache.mag_ratios = [1.0, 0.9, 0.8]  # ... then set by hand: no longer euler's alone
    assert cache._ratios_sampler is None
