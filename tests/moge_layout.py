"""The layout of an official MoGe v1 ``model.pt``, written down independently of our model.

``official_moge_v1_shapes`` lists every state-dict key with its shape, as the official code
(microsoft/MoGe, ``moge/model/v1.py`` + its vendored DINOv2) names them. It was checked once
against the official code at the released ViT-L configuration (421 keys, all shapes equal).
Tests fill it with random numbers to make a synthetic checkpoint at a tiny width.
"""

from __future__ import annotations

import torch

#: model_config of the released Ruicheng/moge-vitl checkpoint's architecture (train config v1).
VITL_CONFIG = {
    "encoder": "dinov2_vitl14",
    "remap_output": "exp",
    "intermediate_layers": 4,
    "dim_upsample": [256, 128, 64],
    "dim_times_res_block_hidden": 2,
    "num_res_blocks": 2,
    "num_tokens_range": [1200, 2500],
    "last_conv_channels": 32,
    "last_conv_size": 1,
}


def official_moge_v1_shapes(config: dict, embed_dim: int, depth: int, patch: int = 14, pos_grid: int = 37) -> dict[str, tuple]:
    dim_proj = config.get("dim_proj", 512)
    ups = list(config.get("dim_upsample", [256, 128, 128]))
    times = config.get("dim_times_res_block_hidden", 1)
    n_res = config.get("num_res_blocks", 1)
    last_res = config.get("last_res_blocks", 0)
    lc = config.get("last_conv_channels", 32)
    ks = config.get("last_conv_size", 1)
    n_feat = config.get("intermediate_layers", 4)
    n_feat = n_feat if isinstance(n_feat, int) else len(n_feat)
    D = embed_dim
    s: dict[str, tuple] = {"image_mean": (1, 3, 1, 1), "image_std": (1, 3, 1, 1)}
    b = "backbone."
    s[b + "cls_token"] = (1, 1, D)
    s[b + "pos_embed"] = (1, pos_grid * pos_grid + 1, D)
    s[b + "mask_token"] = (1, D)
    s[b + "patch_embed.proj.weight"] = (D, 3, patch, patch)
    s[b + "patch_embed.proj.bias"] = (D,)
    for i in range(depth):
        k = f"{b}blocks.{i}."
        for norm in ("norm1", "norm2"):
            s[k + norm + ".weight"] = s[k + norm + ".bias"] = (D,)
        s[k + "attn.qkv.weight"], s[k + "attn.qkv.bias"] = (3 * D, D), (3 * D,)
        s[k + "attn.proj.weight"], s[k + "attn.proj.bias"] = (D, D), (D,)
        s[k + "ls1.gamma"] = s[k + "ls2.gamma"] = (D,)
        s[k + "mlp.fc1.weight"], s[k + "mlp.fc1.bias"] = (4 * D, D), (4 * D,)
        s[k + "mlp.fc2.weight"], s[k + "mlp.fc2.bias"] = (D, 4 * D), (D,)
    s[b + "norm.weight"] = s[b + "norm.bias"] = (D,)

    def res_block(k: str, c: int) -> None:
        hid = times * c
        s[k + "layers.0.weight"] = s[k + "layers.0.bias"] = (c,)
        s[k + "layers.2.weight"], s[k + "layers.2.bias"] = (hid, c, 3, 3), (hid,)
        s[k + "layers.3.weight"] = s[k + "layers.3.bias"] = (hid,)
        s[k + "layers.5.weight"], s[k + "layers.5.bias"] = (c, hid, 3, 3), (c,)

    for i in range(n_feat):
        s[f"head.projects.{i}.weight"], s[f"head.projects.{i}.bias"] = (dim_proj, D, 1, 1), (dim_proj,)
    for i, (c_in, c_out) in enumerate(zip([dim_proj, *ups[:-1]], ups, strict=True)):
        k = f"head.upsample_blocks.{i}."
        s[k + "0.0.weight"], s[k + "0.0.bias"] = (c_in + 2, c_out, 2, 2), (c_out,)  # ConvTranspose2d
        s[k + "0.1.weight"], s[k + "0.1.bias"] = (c_out, c_out, 3, 3), (c_out,)
        for j in range(n_res):
            res_block(f"{k}{1 + j}.", c_out)
    for o, dim_out in enumerate((3, 1)):
        k = f"head.output_block.{o}."
        s[k + "0.weight"], s[k + "0.bias"] = (lc, ups[-1] + 2, 3, 3), (lc,)
        for j in range(last_res):
            res_block(f"{k}{1 + j}.", lc)
        last = 2 + last_res
        s[f"{k}{last}.weight"], s[f"{k}{last}.bias"] = (dim_out, lc, ks, ks), (dim_out,)
    return s


def random_state_dict(shapes: dict[str, tuple], seed: int = 0, scale: float = 0.05) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(shape, generator=g) * scale for k, shape in shapes.items()}
    state["image_mean"] = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    state["image_std"] = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    for k in state:
        if k.endswith(("ls1.gamma", "ls2.gamma")) or (".norm" in k and k.endswith(".weight")) or k.endswith("norm.weight"):
            state[k] = 1.0 + state[k]
    return state
