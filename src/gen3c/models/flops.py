"""Floating-point operations of one forward of the Cosmos DiT, for MFU figures."""

from __future__ import annotations


def dit_forward_flops(
    config: dict, latent_shape: tuple[int, int, int], text_tokens: int = 512
) -> dict[str, int]:
    """FLOPs (multiply-adds × 2) of one ``CosmosTransformer3DModel`` forward, batch 1.

    Args:
        config: the model's kwargs (see :mod:`gen3c.models.configs`).
        latent_shape: (T', h, w) latent frames and latent height/width.
        text_tokens: length of the text context (512 for T5 in GEN3C).

    Returns:
        ``{"linear": …, "attention": …, "total": …}``; "linear" counts every matrix product
        of the weights (the figure PyTorch's FlopCounterMode gives for ``aten.mm``),
        "attention" the two products of self- and cross-attention (QKᵀ and AV).
    """
    pt, ph, pw = config["patch_size"]
    T, h, w = latent_shape
    N = (T // pt) * (h // ph) * (w // pw)
    D = config["num_attention_heads"] * config["attention_head_dim"]
    L = config["num_layers"]
    F = int(D * config["mlp_ratio"])
    Dt = config["text_embed_dim"]
    A = config["adaln_lora_dim"]
    M = text_tokens
    patch = pt * ph * pw
    c_in = config["in_channels"] + (1 if config.get("concat_padding_mask", True) else 0)
    per_block = (
        2 * N * (4 * D * D)  # self-attention q, k, v, out
        + 2 * N * (2 * D * D)  # cross-attention q, out
        + 2 * M * (2 * Dt * D)  # cross-attention k, v on the text
        + 2 * N * (2 * D * F)  # MLP
        + 3 * 2 * (D * A + A * 3 * D)  # AdaLN-LoRA of the three sub-blocks (one token)
    )
    linear = (
        L * per_block
        + 2 * N * c_in * patch * D  # patch embedding
        + 2 * N * D * patch * config["out_channels"]  # output projection
        + 2 * (D * D + D * 3 * D)  # timestep embedding
        + 2 * (D * A + A * 2 * D)  # final AdaLN-LoRA
    )
    attention = L * (4 * N * N * D + 4 * N * M * D)
    return {"linear": linear, "attention": attention, "total": linear + attention}
