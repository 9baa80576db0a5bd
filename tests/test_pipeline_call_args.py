"""Gen3cPipeline.__call__ with diffusers' arguments (generator, callback_on_step_end, interrupt,
output_type "np" / "pil"), on the tiny random-weight model; and the seed path kept as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.callbacks import PipelineCallback
from test_gen3c_pipeline import Recorder, gen3c_reference_loop, inputs
from tiny_model import tiny_pipeline

from gen3c.errors import Gen3cInputError
from gen3c.pipelines.gen3c import Gen3cPipeline

T, H, W = 17, 32, 32  # as inputs(): 3 latent frames of 4 × 4


@pytest.fixture(scope="module")
def pipe() -> Gen3cPipeline:
    pipe = tiny_pipeline(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def latents(pipe, **kwargs):
    return pipe(*inputs(), output_type="latent", **kwargs).frames


def test_seed_path_gives_the_videos_it_gave_before_generator_existed(pipe):
    got = latents(pipe, num_steps=3, seed=5)
    # Golden numbers: this call on main at ab1b811, before `generator=` was added.
    assert got[0, :3, 1, 1, 1].tolist() == pytest.approx([0.0106078, -0.0377359, 0.1715701], abs=2e-5)
    assert got[0, 5, 2, 3, :2].tolist() == pytest.approx([-0.1602413, 0.0101020], abs=2e-5)
    assert float(got.abs().sum()) == pytest.approx(82.19035, abs=2e-3)
    # A larger first-frame augmentation makes its numpy noise visible (±2e-4 here for other noise).
    augmented = latents(pipe, num_steps=3, seed=5, condition_augment_sigma=0.5)
    assert augmented[0, :3, 0, 1, 1].tolist() == pytest.approx([-0.0002162, 0.0227839, 0.0040143], abs=2e-5)
    # ... and GEN3C's loop written out (torch CPU noise + numpy RandomState noise of the seed).
    image, colors, masks = inputs()
    image_latent, buffer_latents = pipe.encode_conditions(image, colors, masks)
    from gen3c.models import configs

    text, neg = pipe.encode_prompt(""), pipe.encode_prompt(configs.DEFAULT_NEGATIVE_PROMPT)
    with torch.no_grad():
        ref = gen3c_reference_loop(pipe, image_latent, buffer_latents, text, neg, 1.0, 3, 5)
    assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4)
    assert torch.equal(latents(pipe, num_steps=2), latents(pipe, num_steps=2, seed=1))  # no seed: 1, as before


def test_a_numpy_seed_gives_the_video_of_the_same_int(pipe):
    """``for seed in np.arange(4): pipe(…, seed=seed)``: check_inputs took numpy's integers, but the
    noise stream's torch.Generator.manual_seed then raised "TypeError: an integer is required"."""
    assert torch.equal(latents(pipe, num_steps=1, seed=np.int64(5)), latents(pipe, num_steps=1, seed=5))
    assert torch.equal(latents(pipe, num_steps=1, seed=np.uint32(7), noise_aug_strength=0.5), latents(pipe, num_steps=1, seed=7, noise_aug_strength=0.5))


def test_colours_in_0_1_are_noted_as_washed_out(pipe, recwarn):
    """diffusers' and torchvision's [0, 1] images pass the [-1, 1] range check: the video came out
    washed out (black as mid-grey) without a word. Each such argument is now noted with its fix;
    [-1, 1] inputs, or note_unit_range=False (a bright photo known to be [-1, 1]), say nothing."""
    image, colors, masks = inputs()
    latents_of = {}
    for flag in ({}, {"note_unit_range": False}):  # by default, noted
        recwarn.clear()
        latents_of[bool(flag)] = pipe((image + 1) / 2, (colors + 1) / 2, masks, num_steps=1, output_type="latent", **flag).frames
        said = [str(w.message) for w in recwarn.list if w.category is UserWarning]
        if not flag:
            assert said == [
                f"{name} has no value below 0, so its darkest pixel is mid-grey in [-1, 1]: if it holds [0, 1] colours "
                f"(torchvision's to_tensor, kornia, gen3c.depth.image_to_tensor), pass {name} * 2 - 1"
                for name in ("image", "buffer_colors")
            ]  # fmt: skip
            assert {w.filename for w in recwarn.list} == {__file__}  # said at the call
        else:
            assert not said
    assert torch.equal(latents_of[False], latents_of[True])  # a note, not a change
    recwarn.clear()
    latents(pipe, num_steps=1)
    assert not [w for w in recwarn.list if w.category is UserWarning]


def test_generator_fixes_the_video_and_draws_all_the_noise(pipe):
    a = latents(pipe, num_steps=2, generator=torch.Generator().manual_seed(3))
    b = latents(pipe, num_steps=2, generator=torch.Generator().manual_seed(3))
    c = latents(pipe, num_steps=2, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3
    shared = torch.Generator().manual_seed(3)  # diffusers: a generator's state moves on with each call
    assert torch.equal(latents(pipe, num_steps=2, generator=shared), a)
    assert not torch.equal(latents(pipe, num_steps=2, generator=shared), a)

    shape = (1, 16, 3, 4, 4)
    g_initial, g_augment = pipe.prepare_noise(shape, torch.device("cpu"), generator=torch.Generator().manual_seed(3))
    expected = torch.randn((2, *shape), generator=torch.Generator().manual_seed(3))  # initial first, then augmentation
    assert torch.equal(g_initial, expected[0]) and torch.equal(g_augment, expected[1])
    s_initial, s_augment = pipe.prepare_noise(shape, torch.device("cpu"), seed=3)
    assert torch.equal(s_augment, torch.from_numpy(np.random.RandomState(3).standard_normal(shape).astype(np.float32)))
    # The same seed's initial noise, but not GEN3C's numpy augmentation noise: not GEN3C's stream.
    assert torch.equal(s_initial, g_initial) and not torch.equal(s_augment, g_augment)


def test_callback_on_step_end_sees_every_step_before_the_old_callback(pipe):
    seen, order = [], []

    def on_step_end(p, step, timestep, kwargs):
        assert p is pipe and p.num_timesteps == 4 and torch.equal(p.current_timestep, timestep)
        seen.append((step, float(timestep), sorted(kwargs), kwargs["latents"].clone()))
        order.append("on_step_end")
        return kwargs

    def old(step, sigma, x):
        order.append("callback")

    out = latents(pipe, num_steps=4, seed=2, callback_on_step_end=on_step_end, callback=old)
    assert [s[0] for s in seen] == [0, 1, 2, 3]
    assert [s[1] for s in seen] == pipe.scheduler.timesteps.tolist()  # EDM: ¼·ln σ, from 80 down
    assert seen[0][1] == pytest.approx(0.25 * np.log(80.0))
    assert all(s[2] == ["latents"] for s in seen)
    assert torch.equal(seen[-1][3], out)  # the last step's latents are what gets decoded
    assert order == ["on_step_end", "callback"] * 4
    assert pipe.current_timestep is None and pipe.num_timesteps == 4
    assert torch.equal(out, latents(pipe, num_steps=4, seed=2))  # a callback that changes nothing changes nothing


def test_latents_returned_by_the_callback_replace_the_samplers(pipe):
    def zero_at(step_to_zero):
        def on_step_end(p, step, timestep, kwargs):
            return {"latents": torch.zeros_like(kwargs["latents"])} if step == step_to_zero else kwargs

        return on_step_end

    assert not latents(pipe, num_steps=3, callback_on_step_end=zero_at(2)).any()  # the last step's: exactly zero
    plain = latents(pipe, num_steps=3)
    zeroed = latents(pipe, num_steps=3, callback_on_step_end=zero_at(1))
    assert torch.equal(zeroed, latents(pipe, num_steps=3, callback_on_step_end=zero_at(1)))
    assert (zeroed - plain).abs().max() > 1e-3
    # the old callback sees the replaced latents
    after = []
    latents(pipe, num_steps=3, callback_on_step_end=zero_at(0), callback=lambda i, s, x: after.append(bool(x.any())))
    assert after == [False, True, True]


def test_prompt_embeddings_returned_by_the_callback_reach_the_dit(pipe):
    received = []

    def on_step_end(p, step, timestep, kwargs):
        received.append(kwargs["negative_prompt_embeds"])
        return {"prompt_embeds": torch.zeros_like(kwargs["prompt_embeds"])}

    with Recorder(pipe.transformer) as rec:
        pipe(*inputs(), num_steps=2, guidance=0.0, output_type="latent", callback_on_step_end=on_step_end,
             callback_on_step_end_tensor_inputs=["prompt_embeds", "negative_prompt_embeds"])  # fmt: skip
    assert len(rec.calls) == 2 and received == [None, None]  # guidance 0: no unconditional branch
    first, second = (c["encoder_hidden_states"] for c in rec.calls)
    assert first.any() and not second.any()


def test_a_diffusers_pipeline_callback_brings_its_tensor_inputs(pipe):
    class ZeroLatents(PipelineCallback):
        tensor_inputs = ["latents"]

        def callback_fn(self, pipeline, step_index, timestep, callback_kwargs):
            if step_index == self.config.cutoff_step_index:
                callback_kwargs["latents"] = torch.zeros_like(callback_kwargs["latents"])
            return callback_kwargs

    out = latents(pipe, num_steps=2, callback_on_step_end=ZeroLatents(cutoff_step_ratio=None, cutoff_step_index=1),
                  callback_on_step_end_tensor_inputs=["prompt_embeds"])  # fmt: skip
    assert not out.any()


def test_interrupt_stops_sampling_and_decodes_the_latents_so_far(pipe):
    seen = []

    def stop_after_1(p, step, timestep, kwargs):
        seen.append(kwargs["latents"].clone())
        if step == 1:
            p._interrupt = True
        return kwargs

    with Recorder(pipe.transformer) as rec:
        out = latents(pipe, num_steps=5, guidance=0.0, callback_on_step_end=stop_after_1)
    assert len(seen) == 2 and len(rec.calls) == 2  # steps 2 … 4 never ran
    assert torch.equal(out, seen[1])
    assert pipe.interrupt
    frames = pipe(*inputs(), num_steps=5, guidance=0.0, callback_on_step_end=stop_after_1).frames
    assert frames.shape == (T, 3, H, W)  # a partial result decodes like any other
    with Recorder(pipe.transformer) as rec:
        latents(pipe, num_steps=3, guidance=0.0)
    assert len(rec.calls) == 3 and not pipe.interrupt  # the next call starts afresh


def test_output_types_follow_diffusers_layouts(pipe):
    pt = pipe(*inputs(), num_steps=1, seed=4).frames
    as_np = pipe(*inputs(), num_steps=1, seed=4, output_type="np").frames
    pil = pipe(*inputs(), num_steps=1, seed=4, output_type="pil").frames
    assert pt.shape == (T, 3, H, W) and pt.dtype == torch.float32 and -1 <= pt.min() < pt.max() <= 1
    assert isinstance(as_np, np.ndarray) and as_np.shape == (1, T, H, W, 3) and as_np.dtype == np.float32
    assert 0 <= as_np.min() < as_np.max() <= 1
    np.testing.assert_allclose(as_np[0], ((pt + 1) / 2).permute(0, 2, 3, 1).numpy(), atol=1e-6)
    assert isinstance(pil, list) and len(pil) == 1 and len(pil[0]) == T
    assert pil[0][0].size == (W, H) and pil[0][0].mode == "RGB"
    np.testing.assert_array_equal(np.asarray(pil[0][5]), (as_np[0, 5] * 255).round().astype(np.uint8))
    (tuple_np,) = pipe(*inputs(), num_steps=1, seed=4, output_type="np", return_dict=False)
    np.testing.assert_array_equal(tuple_np, as_np)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"seed": 3, "generator": torch.Generator()}, "seed and generator were both given: pass seed=N .* not both"),
        ({"generator": [torch.Generator(), torch.Generator()]}, "generator is a list of 2 items: a call makes one video"),
        ({"generator": 3}, "generator must be a torch.Generator, got int '3': .* or seed=n"),
        ({"callback": "print"}, "callback must be a function, got str 'print'"),
        ({"callback_on_step_end": 1}, "callback_on_step_end must be a function, got int '1'"),
        ({"callback_on_step_end_tensor_inputs": ["latents", "noise_pred"]}, r"\['noise_pred'\] cannot be passed .* choose from"),
        ({"callback_on_step_end_tensor_inputs": "latents"}, "must be a list of names from"),
        ({"output_type": "numpy"}, "output_type must be one of 'pt', 'np', 'pil', 'latent', got 'numpy'"),
        ({"callback_on_step_end": lambda p, i, t, kw: None}, "callback_on_step_end returned NoneType 'None': return a dict"),
        ({"callback_on_step_end": lambda p, i, t, kw: {"latents": kw["latents"][:, :4]}},
         r"returned latents as a tensor of shape \(1, 4, 3, 4, 4\): return a tensor of its shape \(1, 16, 3, 4, 4\)"),
    ],
)  # fmt: skip
def test_unusable_diffusers_arguments_are_one_line_input_errors(pipe, kwargs, match):
    with pytest.raises(Gen3cInputError, match=match) as info:
        pipe(*inputs(), num_steps=1, **kwargs)
    assert "\n" not in str(info.value)


def test_noise_aug_strength_noises_the_newer_buffers_as_gen3c_and_only_them(pipe):
    """GEN3C's --noise_aug_strength (Cache3D_Buffer.render_cache): buffer b of NB gets N(0, 1)
    noise times (NB − 1 − b)·strength on its colour; the oldest buffer, and so a lone buffer, none."""
    from gen3c.pipelines.gen3c import encode_buffers

    image, colors, masks = inputs()
    plain = encode_buffers(pipe.vae, colors, masks)
    noised = encode_buffers(pipe.vae, colors, masks, noise_aug_strength=0.25, noise_generator=torch.Generator().manual_seed(9))
    by_hand = colors.clone()
    noise = torch.randn((1, 3, T, H, W), generator=torch.Generator().manual_seed(9))
    by_hand[:, 0] += 0.25 * noise[0].permute(1, 0, 2, 3)  # (NB − 1 − 0) = 1 for the newest buffer
    assert torch.allclose(noised, encode_buffers(pipe.vae, by_hand, masks), atol=1e-5)
    assert (noised[:, :16] - plain[:, :16]).abs().max() > 1e-3  # buffer 0's colour changed ...
    assert torch.equal(noised[:, 16:], plain[:, 16:])  # ... its mask and buffer 1 did not

    # Through __call__: the seed and chunk fix the noise; one buffer is never noised.
    a = latents(pipe, num_steps=1, seed=5, noise_aug_strength=0.25)
    assert torch.equal(a, latents(pipe, num_steps=1, seed=5, noise_aug_strength=0.25))
    assert not torch.equal(a, latents(pipe, num_steps=1, seed=5))
    assert not torch.equal(a, latents(pipe, num_steps=1, seed=5, noise_aug_strength=0.25, chunk=1))
    one = inputs(num_buffers=1)
    assert torch.equal(
        pipe(*one, num_steps=1, seed=5, output_type="latent", noise_aug_strength=0.25).frames,
        pipe(*one, num_steps=1, seed=5, output_type="latent").frames,
    )
    # The buffer noise has a stream of its own: the sampler's seed noise is GEN3C's either way.
    g = pipe.buffer_noise_generator(seed=5, chunk=0)
    assert not torch.equal(torch.randn(4, generator=g), torch.randn(4, generator=torch.Generator().manual_seed(5)))
    for bad in (-0.1, float("nan"), "0.1", True):
        with pytest.raises(Gen3cInputError, match=r"noise_aug_strength must be a finite number ≥ 0 \(GEN3C: 0\)"):
            pipe(*inputs(), num_steps=1, noise_aug_strength=bad)
