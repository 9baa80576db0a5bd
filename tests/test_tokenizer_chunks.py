"""The tokenizer run a few latent frames at a time gives the one-shot result."""

from __future__ import annotations

import re

import pytest
import torch
from diffusers import AutoencoderKLCosmos

from gen3c.errors import Gen3cInputError
from gen3c.models import configs
from gen3c.models.tokenizer import decode_latents, encode_video, latent_frames, statistics_frames


@pytest.fixture(scope="module")
def vae() -> AutoencoderKLCosmos:
    torch.manual_seed(0)
    model = AutoencoderKLCosmos(
        **{**configs.VAE_TINY, "latents_mean": [0.1] * 16, "latents_std": [2.0] * 16}
    ).eval()
    for name, p in model.named_parameters():
        if "norm" not in name:
            p.data.normal_(0, 0.2)
    return model


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_encode_and_decode_are_exact(vae, chunk):
    video = torch.rand(1, 3, 33, 16, 24, generator=torch.Generator().manual_seed(1)) * 2 - 1
    full = encode_video(vae, video)
    assert full.shape == (1, 16, 5, 2, 3)
    assert torch.allclose(encode_video(vae, video, chunk_frames=chunk), full, atol=1e-5 * full.abs().max())
    decoded = decode_latents(vae, full)
    assert decoded.shape == video.shape
    assert torch.allclose(
        decode_latents(vae, full, chunk_frames=chunk), decoded, atol=1e-5 * decoded.abs().max()
    )


def test_first_latent_depends_on_the_first_frame_only(vae):
    """GEN3C encodes the source image padded with zero frames to 121; the tokenizer is causal,
    so encoding the image alone gives the same first latent frame."""
    image = torch.rand(1, 3, 1, 16, 24, generator=torch.Generator().manual_seed(2)) * 2 - 1
    padded = torch.cat([image, torch.zeros(1, 3, 16, 16, 24)], dim=2)
    assert torch.allclose(encode_video(vae, image), encode_video(vae, padded)[:, :, :1], atol=1e-5)


def test_a_video_longer_than_the_per_frame_statistics_is_an_input_error():
    torch.manual_seed(0)
    vae = AutoencoderKLCosmos(**{**configs.VAE_TINY, "latents_mean": [0.0] * 32, "latents_std": [1.0] * 32}).eval()
    assert statistics_frames(vae) == 2
    assert encode_video(vae, torch.zeros(1, 3, 9, 16, 16)).shape == (1, 16, 2, 2, 2)
    with pytest.raises(Gen3cInputError, match="pass at most 9 frames"):
        encode_video(vae, torch.zeros(1, 3, 17, 16, 16))
    with pytest.raises(Gen3cInputError, match="pass at most 9 frames"):
        decode_latents(vae, torch.zeros(1, 16, 3, 2, 2))


def test_frame_counts():
    assert latent_frames(121) == 16 and latent_frames(1) == 1
    with pytest.raises(ValueError):
        latent_frames(120)


def test_dit_flop_count_matches_pytorch_counter():
    from diffusers import CosmosTransformer3DModel
    from torch.utils.flop_counter import FlopCounterMode

    from gen3c.models.flops import dit_forward_flops

    model = CosmosTransformer3DModel(**configs.TRANSFORMER_TINY).eval()
    x, cond = torch.randn(1, 16, 3, 8, 12), torch.randn(1, 65, 3, 8, 12)
    text = torch.randn(1, 20, configs.TRANSFORMER_TINY["text_embed_dim"])
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(hidden_states=x, timestep=torch.tensor([0.1]), encoder_hidden_states=text, fps=24,
              condition_mask=cond, padding_mask=torch.zeros(1, 1, 8, 12))  # fmt: skip
    mm = sum(v for k, v in counter.get_flop_counts()["Global"].items() if "mm" in str(k))
    assert dit_forward_flops(configs.TRANSFORMER_TINY, (3, 8, 12), 20)["linear"] == mm
    full = dit_forward_flops(configs.TRANSFORMER_7B, (16, 88, 160))
    assert 2.0e15 < full["total"] < 2.5e15  # ~2.2 PFLOP per 7B forward at 121 x 704 x 1280


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((1, 3, 9, 12, 16), "height 12"),  # would encode to 2 latent rows and decode to 16
        ((1, 3, 9, 16, 20), "width 20"),
        ((1, 3, 8, 16, 16), "1 \\+ 8·k frames, got 8"),
        ((3, 9, 16, 16), "5-D"),
        ((1, 4, 9, 16, 16), "3 channels"),
    ],
)
def test_encode_refuses_a_video_it_cannot_round_trip(vae, shape, match):
    with pytest.raises(Gen3cInputError, match=match):
        encode_video(vae, torch.zeros(shape))


def test_decode_refuses_latents_of_the_wrong_layout(vae):
    with pytest.raises(Gen3cInputError, match="16 channels"):
        decode_latents(vae, torch.zeros(1, 8, 2, 2, 2))
    with pytest.raises(Gen3cInputError, match="5-D"):
        decode_latents(vae, torch.zeros(16, 2, 2, 2))


@pytest.mark.parametrize("chunk", [0, -1, True, 1.5])
def test_chunk_frames_below_one_is_refused_not_an_endless_loop(vae, chunk):
    # encode's chunk bounds never reached the end with chunk_frames ≤ 0 (the list grew forever);
    # True ran as 1 latent frame, 1.5 made fractional chunk bounds.
    refusal = rf"^tokenizer chunk_frames {re.escape(repr(chunk))} must be a whole number ≥ 1 of latent frames \(None: no chunking\)$"
    with pytest.raises(Gen3cInputError, match=refusal):
        encode_video(vae, torch.zeros(1, 3, 9, 16, 16), chunk_frames=chunk)
    with pytest.raises(Gen3cInputError, match=refusal):
        decode_latents(vae, torch.zeros(1, 16, 2, 2, 2), chunk_frames=chunk)
