"""The Cosmos CV8x8x8 tokenizer (diffusers' ``AutoencoderKLCosmos``): latent normalisation as
GEN3C does it, and exact encode/decode in chunks of latent frames.

The tokenizer is causal in time: every temporal convolution pads with the first frame, the
temporal attention is masked to the past, and normalisation is per frame. So a video can be
run through it a few latent frames at a time, each layer carrying the frames it needs from the
previous chunk (the last ``k − 1`` inputs of a causal convolution, the keys and values of the
causal attention), and the result equals the one-shot encode/decode up to float rounding while
the activations of only one chunk are alive. :func:`causal_chunking` switches a tokenizer into
that mode; :func:`encode_video` and :func:`decode_latents` use it when given ``chunk_frames``.

Frame counts: ``1 + 8·k`` pixel frames ↔ ``1 + k`` latent frames. A chunk of ``c`` latent frames
is ``1 + 8·(c − 1)`` pixel frames for the first chunk and ``8·c`` for the following ones.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLCosmos
from diffusers.models.autoencoders import autoencoder_kl_cosmos as _cosmos
from torch import Tensor, nn

from gen3c.errors import Gen3cInputError, is_whole_number


def latent_frames(num_frames: int, temporal_compression: int = 8) -> int:
    """Latent frames of a ``1 + 8·k``-frame video."""
    if num_frames < 1 or (num_frames - 1) % temporal_compression:
        fit = max(1, num_frames - (num_frames - 1) % temporal_compression)
        raise Gen3cInputError(
            f"the tokenizer takes 1 + {temporal_compression}·k frames, got {num_frames}: "
            f"pass {fit} or {fit + temporal_compression} frames"
        )
    return (num_frames - 1) // temporal_compression + 1


def _check_chunk_frames(chunk_frames: int | None) -> None:
    if chunk_frames is not None and (not is_whole_number(chunk_frames) or chunk_frames < 1):
        raise Gen3cInputError(f"tokenizer chunk_frames {chunk_frames!r} must be a whole number ≥ 1 of latent frames (None: no chunking)")


def _check_video(vae: AutoencoderKLCosmos, video: Tensor) -> None:
    """Refuse a video the tokenizer cannot round-trip: a size that is not a multiple of its
    spatial compression is padded inside, so its latents decode to another size."""
    cfg = vae.config
    if video.ndim != 5 or video.shape[1] != cfg.in_channels:
        raise Gen3cInputError(
            f"the tokenizer takes a 5-D video (B, {cfg.in_channels} channels, T, H, W), got shape {tuple(video.shape)}"
        )
    s = cfg.spatial_compression_ratio
    for name, size in (("height", video.shape[3]), ("width", video.shape[4])):
        if size % s:
            raise Gen3cInputError(
                f"the tokenizer takes a video {name} that is a multiple of {s}, got {name} {size}: "
                f"resize or crop it to {size - size % s or s}"
            )


def statistics_frames(vae: AutoencoderKLCosmos) -> int | None:
    """Latent frames the tokenizer's per-frame latent statistics cover (GEN3C's ``mean_std.pt``:
    one 121-frame chunk's 16), so the most it can encode or decode at once; None when it has
    none or one per channel (any length)."""
    mean = vae.config.latents_mean
    if mean is None:
        return None
    frames = len(mean) // vae.config.latent_channels
    return None if frames == 1 else frames


def _latent_stats(
    vae: AutoencoderKLCosmos, num_latent_frames: int, like: Tensor
) -> tuple[Tensor, Tensor] | None:
    mean, std = vae.config.latents_mean, vae.config.latents_std
    if mean is None or std is None:
        return None
    C = vae.config.latent_channels
    mean = torch.tensor(mean, dtype=torch.float32).view(1, C, -1, 1, 1)
    std = torch.tensor(std, dtype=torch.float32).view(1, C, -1, 1, 1)
    covered = statistics_frames(vae)
    if covered is not None and covered < num_latent_frames:
        tc = vae.config.temporal_compression_ratio
        raise Gen3cInputError(
            f"the video has {num_latent_frames} latent frames ({(num_latent_frames - 1) * tc + 1} frames) but the tokenizer's "
            f"latent statistics cover {covered}: pass at most {(covered - 1) * tc + 1} frames at a time"
        )
    mean, std = mean[:, :, :num_latent_frames], std[:, :, :num_latent_frames]
    return mean.to(like.device, like.dtype), std.to(like.device, like.dtype)


def normalize_latents(vae: AutoencoderKLCosmos, raw: Tensor, sigma_data: float = 0.5) -> Tensor:
    """Tokenizer output → diffusion latents: ``(z − mean) / std · sigma_data`` (GEN3C's
    ``encode``: the JIT tokenizer's normalisation, then ``× sigma_data``)."""
    stats = _latent_stats(vae, raw.shape[2], raw)
    if stats is not None:
        raw = (raw - stats[0]) / stats[1]
    return raw * sigma_data


def denormalize_latents(vae: AutoencoderKLCosmos, latents: Tensor, sigma_data: float = 0.5) -> Tensor:
    """The inverse of :func:`normalize_latents`."""
    latents = latents / sigma_data
    stats = _latent_stats(vae, latents.shape[2], latents)
    if stats is not None:
        latents = latents * stats[1] + stats[0]
    return latents


@torch.no_grad()
def encode_video(
    vae: AutoencoderKLCosmos, video: Tensor, *, sigma_data: float = 0.5, chunk_frames: int | None = None
) -> Tensor:
    """Encode ``video`` (B, 3, 1 + 8·k, H, W) in [−1, 1] to normalised latents (B, 16, 1 + k, H/8, W/8).

    Args:
        chunk_frames: latent frames per chunk (exact chunked encoding); None encodes at once.
    """
    _check_chunk_frames(chunk_frames)
    _check_video(vae, video)
    dtype = next(vae.parameters()).dtype
    video = video.to(dtype)
    T = video.shape[2]
    n_latent = latent_frames(T, vae.config.temporal_compression_ratio)
    if chunk_frames is None or chunk_frames >= n_latent:
        raw = vae._encode(video)
    else:
        tc = vae.config.temporal_compression_ratio
        bounds = [0, 1 + tc * (chunk_frames - 1)]
        while bounds[-1] < T:
            bounds.append(min(T, bounds[-1] + tc * chunk_frames))
        raw = _run_in_chunks(vae, vae._encode, video, bounds)
    return normalize_latents(vae, raw.float(), sigma_data)


@torch.no_grad()
def decode_latents(
    vae: AutoencoderKLCosmos, latents: Tensor, *, sigma_data: float = 0.5, chunk_frames: int | None = None
) -> Tensor:
    """Decode normalised latents (B, 16, 1 + k, h, w) to a video (B, 3, 1 + 8·k, 8h, 8w), not clamped.

    Args:
        chunk_frames: latent frames per chunk (exact chunked decoding); None decodes at once.
    """
    _check_chunk_frames(chunk_frames)
    C = vae.config.latent_channels
    if latents.ndim != 5 or latents.shape[1] != C:
        raise Gen3cInputError(
            f"the tokenizer decodes 5-D latents (B, {C} channels, T, h, w), got shape {tuple(latents.shape)}"
        )
    dtype = next(vae.parameters()).dtype
    z = denormalize_latents(vae, latents.float(), sigma_data).to(dtype)
    n = z.shape[2]
    if chunk_frames is None or chunk_frames >= n:
        return vae._decode(z).sample
    return _run_in_chunks(vae, lambda chunk: vae._decode(chunk).sample, z, [*range(0, n, chunk_frames), n])


def _run_in_chunks(vae: AutoencoderKLCosmos, run: Callable[[Tensor], Tensor], x: Tensor, bounds: list[int]) -> Tensor:
    """``run`` (``vae``'s encode or decode) over the consecutive temporal chunks
    ``x[:, :, bounds[i] : bounds[i + 1]]`` of one video (B, C, T, H, W), under
    :func:`causal_chunking` so each chunk carries on from the last; the outputs joined in time."""
    with causal_chunking(vae) as stream:
        parts = []
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            parts.append(run(x[:, :, start:stop]))
            stream.next_chunk()
    return torch.cat(parts, dim=2)


class _Stream:
    """State of a chunked pass: which chunk runs, and what each layer carries over."""

    def __init__(self) -> None:
        self.chunk = 0
        self.carry: dict[int, object] = {}

    @property
    def first(self) -> bool:
        return self.chunk == 0

    def next_chunk(self) -> None:
        self.chunk += 1

    def reset(self) -> None:
        self.chunk = 0
        self.carry.clear()


@contextmanager
def causal_chunking(vae: AutoencoderKLCosmos) -> Iterator[_Stream]:
    """Within this context, ``vae._encode`` / ``vae._decode`` take consecutive temporal chunks of
    one video and carry state between them; call ``stream.next_chunk()`` after each chunk.

    Use one context per video and per direction (encode or decode).
    """
    stream = _Stream()
    patched: list[tuple[nn.Module, str, object, bool]] = []

    def patch(module: nn.Module, name: str, value: object) -> None:
        had = name in module.__dict__
        patched.append((module, name, module.__dict__.get(name), had))
        setattr(module, name, value)

    for module in vae.modules():
        if isinstance(module, _cosmos.CosmosCausalGroupNorm) and module.num_groups != 1:
            raise NotImplementedError("chunked tokenizer passes need per-frame group norms (num_groups=1)")
        if isinstance(module, _cosmos.CosmosCausalConv3d):
            patch(module, "forward", types.MethodType(_make_conv_forward(stream), module))
        elif isinstance(module, _cosmos.CosmosDownsample3d):
            patch(module, "forward", types.MethodType(_make_downsample_forward(stream), module))
        elif isinstance(module, _cosmos.CosmosUpsample3d):
            patch(module, "forward", types.MethodType(_make_upsample_forward(stream), module))
        elif isinstance(module, _cosmos.CosmosPatchEmbed3d):
            patch(module, "forward", types.MethodType(_make_patch_forward(stream), module))
        elif isinstance(module, _cosmos.CosmosUnpatcher3d):
            patch(module, "forward", types.MethodType(_make_unpatch_forward(stream), module))
        elif isinstance(module, _cosmos.CosmosCausalAttention) and isinstance(
            module.processor, _cosmos.CosmosTemporalAttentionProcessor2_0
        ):
            patch(module, "processor", _StreamingTemporalAttention(stream))
    try:
        yield stream
    finally:
        for module, name, old, had in reversed(patched):
            if had:
                setattr(module, name, old)
            else:
                delattr(module, name)


def _make_conv_forward(stream: _Stream):
    def forward(self: _cosmos.CosmosCausalConv3d, x: Tensor) -> Tensor:
        pad = self.temporal_pad
        if pad > 0:
            prev = stream.carry.get(id(self))
            if prev is None:
                prev = x[:, :, :1].expand(-1, -1, pad, -1, -1)
            x = torch.cat([prev, x], dim=2)
            stream.carry[id(self)] = x[:, :, -pad:]
        x = F.pad(x, (*self.spatial_pad, 0, 0), mode=self.pad_mode, value=0.0)
        return nn.Conv3d.forward(self, x)

    return forward


def _make_downsample_forward(stream: _Stream):
    def forward(self: _cosmos.CosmosDownsample3d, x: Tensor) -> Tensor:
        if not self.spatial_downsample and not self.temporal_downsample:
            return x
        if self.spatial_downsample:
            x = F.pad(x, (0, 1, 0, 1, 0, 0), mode="constant", value=0)
            x = self.conv1(x) + F.avg_pool3d(x, kernel_size=(1, 2, 2), stride=(1, 2, 2))
        if self.temporal_downsample:
            # The whole video starts with its first frame doubled; later chunks start on a pair.
            if stream.first:
                x = torch.cat([x[:, :, :1], x], dim=2)
            x = self.conv2(x) + F.avg_pool3d(x, kernel_size=(2, 1, 1), stride=(2, 1, 1))
        return self.conv3(x)

    return forward


def _make_upsample_forward(stream: _Stream):
    def forward(self: _cosmos.CosmosUpsample3d, x: Tensor) -> Tensor:
        if not self.spatial_upsample and not self.temporal_upsample:
            return x
        if self.temporal_upsample:
            if stream.first:
                factor = 2 if x.shape[2] > 1 else 1
                x = x.repeat_interleave(factor, dim=2)[:, :, factor - 1 :]
            else:
                x = x.repeat_interleave(2, dim=2)
            x = self.conv1(x) + x
        if self.spatial_upsample:
            x = x.repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)
            x = self.conv2(x) + x
        return self.conv3(x)

    return forward


def _make_patch_forward(stream: _Stream):
    def forward(self: _cosmos.CosmosPatchEmbed3d, x: Tensor) -> Tensor:
        if stream.first:
            # Only the video's first frame is repeated to fill a temporal patch.
            x = torch.cat([x[:, :, :1].repeat_interleave(self.patch_size, dim=2), x[:, :, 1:]], dim=2)
        p = self.patch_size
        if self.patch_method == "haar":
            for _ in range(int(math.log2(p))):
                x = self._dwt(x, rescale=True)
            return x
        B, C, T, H, W = x.shape
        x = x.reshape(B, C, T // p, p, H // p, p, W // p, p)
        return x.permute(0, 1, 3, 5, 7, 2, 4, 6).flatten(1, 4).contiguous()

    return forward


def _make_unpatch_forward(stream: _Stream):
    def forward(self: _cosmos.CosmosUnpatcher3d, x: Tensor) -> Tensor:
        p = self.patch_size
        if self.patch_method == "haar":
            for _ in range(int(math.log2(p))):
                x = self._idwt(x, rescale=True)
        else:
            x = x.unflatten(1, (-1, p, p, p)).permute(0, 1, 5, 2, 6, 3, 7, 4)
            x = x.flatten(6, 7).flatten(4, 5).flatten(2, 3)
        # The first frame of the video was expanded to a whole patch; drop the copies.
        return x[:, :, p - 1 :] if stream.first else x

    return forward


class _StreamingTemporalAttention:
    """Causal attention over time whose keys and values include the previous chunks' frames."""

    def __init__(self, stream: _Stream) -> None:
        self.stream = stream

    def __call__(
        self, attn: _cosmos.CosmosCausalAttention, hidden_states: Tensor, attention_mask: Tensor | None = None
    ) -> Tensor:
        B, C, T, H, W = hidden_states.shape
        residual = hidden_states
        x = attn.norm(hidden_states)

        def tokens(t: Tensor) -> Tensor:  # [B, C, T, H, W] -> [B·H·W, heads, T, C/heads]
            t = t.permute(0, 3, 4, 2, 1).flatten(0, 2)
            return t.unflatten(2, (attn.num_attention_heads, -1)).transpose(1, 2)

        q, k, v = tokens(attn.to_q(x)), tokens(attn.to_k(x)), tokens(attn.to_v(x))
        past = self.stream.carry.get(id(attn))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        self.stream.carry[id(attn)] = (k, v)
        n_past = k.shape[2] - T
        mask = torch.ones(T, k.shape[2], dtype=torch.bool, device=x.device).tril(diagonal=n_past)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 2).flatten(2, 3).type_as(q)
        out = out.unflatten(0, (B, H, W)).permute(0, 4, 3, 1, 2)
        out = attn.to_out[1](attn.to_out[0](out))
        return out + residual
