"""Model configurations as data: GEN3C's 7B network, its tokenizer, its sampler, and a tiny
configuration of the same architecture for tests and smoke runs.

Every dict here is the keyword arguments of the diffusers / transformers class named beside it.
GEN3C's sources: ``faditv2_7b`` in ``config/base/net.py`` and ``cosmos-1-diffusion-gen3c.py``
(the network), ``model_t2w.py`` (the scheduler), ``pretrained_vae.py`` (the tokenizer).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from gen3c.errors import Gen3cInputError, Gen3cModelError

#: Latent channels of the Cosmos CV8x8x8 tokenizer.
LATENT_CHANNELS = 16
#: Buffers (3D-cache renders) the model takes: GEN3C's ``frame_buffer_max``.
NUM_BUFFERS = 2
#: Channels of the buffer conditioning: per buffer, 16 for the colour video and 16 for the mask video.
BUFFER_CHANNELS = 2 * LATENT_CHANNELS * NUM_BUFFERS
#: Input channels of GEN3C's DiT: noisy latent + condition mask + buffers (the padding mask is added inside).
GEN3C_IN_CHANNELS = LATENT_CHANNELS + 1 + BUFFER_CHANNELS  # 81

#: ``CosmosTransformer3DModel`` kwargs of GEN3C-Cosmos-7B (Cosmos-Predict1-7B Video2World, "faditv2_7b",
#: 81 input channels, RoPE extrapolation t=2, h=w=1, learnable extra positional embedding).
TRANSFORMER_7B: dict[str, Any] = {
    "in_channels": GEN3C_IN_CHANNELS,
    "out_channels": LATENT_CHANNELS,
    "num_attention_heads": 32,
    "attention_head_dim": 128,
    "num_layers": 28,
    "mlp_ratio": 4.0,
    "text_embed_dim": 1024,
    "adaln_lora_dim": 256,
    "max_size": (128, 240, 240),
    "patch_size": (1, 2, 2),
    "rope_scale": (2.0, 1.0, 1.0),
    "concat_padding_mask": True,
    "extra_pos_embed_type": "learnable",
}

#: A tiny network of the same architecture (same channel layout, 81 inputs) for tests.
TRANSFORMER_TINY: dict[str, Any] = {
    **TRANSFORMER_7B,
    "num_attention_heads": 2,
    "attention_head_dim": 12,
    "num_layers": 2,
    "mlp_ratio": 2.0,
    "text_embed_dim": 16,
    "adaln_lora_dim": 8,
    "max_size": (8, 16, 16),
}

#: ``AutoencoderKLCosmos`` kwargs of Cosmos-Tokenize1-CV8x8x8-720p (the latent statistics come
#: from the checkpoint's ``mean_std.pt`` at conversion time).
VAE_CV8X8X8: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": LATENT_CHANNELS,
    "encoder_block_out_channels": (128, 256, 512, 512),
    "decode_block_out_channels": (256, 512, 512, 512),
    "attention_resolutions": (32,),
    "resolution": 1024,
    "num_layers": 2,
    "patch_size": 4,
    "patch_type": "haar",
    "scaling_factor": 1.0,
    "spatial_compression_ratio": 8,
    "temporal_compression_ratio": 8,
    "latents_mean": None,
    "latents_std": None,
}

#: A tiny tokenizer with the same compression (8× in time and space, 16 latent channels).
VAE_TINY: dict[str, Any] = {
    **VAE_CV8X8X8,
    "encoder_block_out_channels": (8, 16, 16, 16),
    "decode_block_out_channels": (8, 16, 16, 16),
    "num_layers": 1,
}

#: ``EDMEulerScheduler`` kwargs exactly as GEN3C builds its scheduler (``model_t2w.py``):
#: ``EDMEulerScheduler(sigma_max=80, sigma_min=0.0002, sigma_data=0.5)`` with diffusers' defaults
#: (Karras schedule, rho 7, final sigma 0, epsilon prediction). GEN3C samples with this
#: scheduler's ``set_timesteps``, so sigma_min 0.0002 is the one in use (diffusers' own
#: Cosmos-1.0 port uses 0.002, which matches NVIDIA's older sampler, not GEN3C's).
SCHEDULER_GEN3C: dict[str, Any] = {
    "sigma_min": 0.0002,
    "sigma_max": 80.0,
    "sigma_data": 0.5,
    "sigma_schedule": "karras",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "rho": 7.0,
    "final_sigmas_type": "zero",
}

#: ``T5Config`` kwargs of a tiny text encoder for tests (the real one is google-t5/t5-11b, d_model 1024).
T5_TINY: dict[str, Any] = {
    "vocab_size": 72,
    "d_model": TRANSFORMER_TINY["text_embed_dim"],
    "d_kv": 8,
    "d_ff": 32,
    "num_layers": 1,
    "num_heads": 2,
    "relative_attention_num_buckets": 8,
    "decoder_start_token_id": 0,
    "pad_token_id": 0,
    "eos_token_id": 1,
}

#: Frames of one generated chunk (GEN3C's ``chunk_size``); autoregressive chunks overlap by one frame.
CHUNK_FRAMES = 121
#: Working resolution (H, W).
RESOLUTION = (704, 1280)
#: Frame rate the network is conditioned on (GEN3C's ``--fps`` default).
FPS = 24
#: Text tokens (T5 sequence length).
MAX_SEQUENCE_LENGTH = 512
#: Condition-augmentation sigma of the input frame (GEN3C's ``DEFAULT_AUGMENT_SIGMA``).
CONDITION_AUGMENT_SIGMA = 0.001
#: Seeds numpy's RandomState takes (GEN3C draws its condition-augmentation noise with it).
MAX_SEED = 2**32 - 1
#: Sampler steps (GEN3C's ``--num_steps``).
NUM_STEPS = 35
#: The most sampler steps a run (or a training run's sample video) may take: far past where more
#: steps change the video, and a bound on the schedule's memory (10⁸ steps filled it, minutes in).
MAX_NUM_STEPS = 10_000

#: GEN3C's default ``--negative_prompt`` (``inference_utils.py``). GEN3C's pipeline passes it for
#: the unconditional branch of classifier-free guidance whenever guidance runs.
DEFAULT_NEGATIVE_PROMPT = (
    "The video captures a series of frames showing ugly scenes, static with no motion, motion blur, "
    "over-saturation, shaky footage, low resolution, grainy texture, pixelated images, poorly lit areas, "
    "underexposed and overexposed scenes, poor color balance, washed out colors, choppy sequences, "
    "jerky movements, low frame rate, artifacting, color banding, unnatural transitions, outdated special "
    "effects, fake elements, unconvincing visuals, poorly edited content, jump cuts, visual noise, and "
    "flickering. Overall, the video is of poor quality."
)
#: The prompts a checkpoint's prompt cache holds (T5 embeddings computed once): the empty prompt
#: and GEN3C's default negative prompt. A run with only these never loads T5.
CACHED_PROMPTS = ("", DEFAULT_NEGATIVE_PROMPT)

#: The dtypes gen3c runs and stores its models in (``--dtype``; GEN3C: bfloat16), by their torch
#: names, and the short names that stand for them. The one list: loading, generation's settings,
#: their run records and the training configuration take these.
DTYPE_NAMES = ("bfloat16", "float16", "float32")
DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
#: The names above as an error lists them.
DTYPES_HELP = f"{', '.join(DTYPE_NAMES[:-1])} or {DTYPE_NAMES[-1]} (or {', '.join(DTYPE_ALIASES)})"


def dtype_name(dtype: Any) -> str | None:
    """``dtype`` (a torch dtype, or a name of one: ``torch.bfloat16``, ``"torch.bfloat16"``,
    ``"bf16"``) as :data:`DTYPE_NAMES` names it (``"bfloat16"``); None for another dtype or value.
    A torch dtype exists only once torch is imported, so a name is told without importing it."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(dtype, torch.dtype):
        name = str(dtype).removeprefix("torch.")
    elif isinstance(dtype, str):
        name = dtype.removeprefix("torch.")
        name = DTYPE_ALIASES.get(name, name)
    else:
        return None
    return name if name in DTYPE_NAMES else None


def check_model_channels(transformer_config: Mapping[str, Any], where: str, fix: str) -> None:
    """Refuse a DiT config of another model family (Cosmos text-to-world: 16 input channels,
    video-to-world: 17), which loads but cannot take GEN3C's input: ``where`` names the
    checkpoint, ``fix`` says what to pass instead."""
    for key, want, what in (("in_channels", GEN3C_IN_CHANNELS, f"{LATENT_CHANNELS} latent + 1 condition mask + {BUFFER_CHANNELS} for two cache buffers"),
                            ("out_channels", LATENT_CHANNELS, "the tokenizer's latent channels")):  # fmt: skip
        got = transformer_config.get(key)
        if got != want:
            raise Gen3cModelError(
                f"{where}: transformer/config.json has {key} {got}, GEN3C's DiT takes {want} ({what}), so it is not a GEN3C checkpoint: {fix}"
            )


def largest_frame_size(transformer_config: Mapping[str, Any], vae_config: Mapping[str, Any]) -> tuple[int, int]:
    """The largest (H, W) in pixels a model of these configs takes: its DiT's position embeddings'
    reach (``max_size``) × the tokenizer's spatial compression (GEN3C: 1024×1920; tiny: 384×640)."""
    sc = int(vae_config.get("spatial_compression_ratio", 8))
    max_h, max_w = (int(v) * sc for v in transformer_config["max_size"][1:])
    return max_h, max_w


def check_model_frame_size(
    transformer_config: Mapping[str, Any], vae_config: Mapping[str, Any], height: int, width: int,
    given: str = "--resolution", fix: str = "pass --resolution",
) -> None:
    """Refuse a frame size a model of these configs cannot take: larger than its position
    embeddings reach, or not a whole number of latent patches (GEN3C: 704×1280). The configs are
    the DiT's and the tokenizer's (their ``config.json``; known before the weights load). The
    message names the size as ``given`` and offers the nearest that fit after ``fix`` (the
    command line's words by default; :mod:`gen3c.pipelines.spelling` respells them)."""
    from gen3c.io.resolution import fitting_sizes

    H, W = height, width
    sc = int(vae_config.get("spatial_compression_ratio", 8))
    max_h, max_w = largest_frame_size(transformer_config, vae_config)
    multiple = sc * int(transformer_config["patch_size"][1])
    fits = f"{fix} {fitting_sizes(H, W, multiple, (max_h, max_w), (multiple, multiple))}"
    if H > max_h or W > max_w:
        raise Gen3cInputError(f"{given} '{H}x{W}' is larger than this model takes ({max_h}x{max_w} at most): {fits}")
    if H % multiple or W % multiple:
        raise Gen3cInputError(
            f"{given} '{H}x{W}': this model takes heights and widths that are multiples of {multiple} (GEN3C works at 704x1280): {fits}"
        )
