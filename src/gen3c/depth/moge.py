"""MoGe v1 — GEN3C's depth estimator — and GEN3C's post-processing of its output.

GEN3C (``gen3c_single_image.py``) resizes the input image plainly to 720×1280, runs MoGe v1
(``Ruicheng/moge-vitl``, file ``model.pt``) with its default settings, and keeps the depth, the
normalised intrinsics and the validity mask. :func:`gen3c_moge_postprocess` then fills invalid
pixels with depth 1000, scales the intrinsics to pixels and to the working size, resizes the
depth bilinearly, maps NaN to 1e4 and clamps to [0, 1e4].

Two back ends run the network:

- the official ``moge`` package (``pip install git+https://github.com/microsoft/MoGe.git``),
  used when it is importable — exactly what GEN3C runs;
- otherwise :class:`MoGeV1`, our own implementation of the architecture, which loads the
  official ``model.pt`` with its exact key names: a DINOv2 ViT backbone (its last 4 blocks
  feed the head), a convolutional head that predicts an affine-invariant point map and a mask
  logit at the image resolution, and :func:`recover_focal_shift`, which turns the point map
  into depth and intrinsics.

Checkpoints are read with ``torch.load(weights_only=True)`` only.

One difference from the official code: MoGe solves its 1-D focal/shift problem with SciPy's
Levenberg–Marquardt at a loose tolerance (ftol 1e-3); :func:`solve_focal_shift` runs the same
least-squares problem to convergence, so shifts agree to that tolerance, not bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gen3c.cameras import make_intrinsics, resize_intrinsics, whole_image_size
from gen3c.dependencies import optional, require
from gen3c.depth.base import (
    DepthEstimate,
    camera_for,
    estimate_size,
    fov_from_intrinsics,
    note_half_on_cpu,
    refuse_non_finite,
    resize_mask,
)
from gen3c.depth.hub import hub_file
from gen3c.depth.names import CHECKPOINT_SUFFIXES, MOGE_NAMES
from gen3c.errors import (
    Gen3cInputError,
    Gen3cModelError,
    complex_refusal,
    describe_value,
    first_line,
    meta_refusal,
    note,
    quoted_path,
)
from gen3c.io.formats import PICKLE_MAGIC, ZIP_MAGICS, describe_head, file_head
from gen3c.io.images import image_to_uint8
from gen3c.io.paths import expand_home, is_dir, is_file, looks_like_path

MOGE_DEFAULT_REPO = "Ruicheng/moge-vitl"
MOGE_CHECKPOINT_NAME = "model.pt"
#: GEN3C runs MoGe on the image plainly resized to this (H, W).
GEN3C_MOGE_SIZE = (720, 1280)
#: GEN3C's working resolution (H, W).
GEN3C_WORKING_SIZE = (704, 1280)
#: How far (a share) an image's aspect ratio may be from :data:`GEN3C_MOGE_SIZE`'s and still be
#: stretched to it, as GEN3C does: 704×1280 (GEN3C's working size and frames, 2.27 % off) is;
#: 1.85:1 (4.1 % off) and 4:3 are not, as the stretch squeezes the scene MoGe rebuilds by as much
#: (fx ≠ fy by as much in its camera).
GEN3C_STRETCH_TOLERANCE = 0.025
GEN3C_INVALID_DEPTH = 1000.0
GEN3C_MAX_DEPTH = 1e4

_IMAGE_MEAN = (0.485, 0.456, 0.406)
_IMAGE_STD = (0.229, 0.224, 0.225)
_MOGE_PATCH = 14  # the head assumes DINOv2's 14-pixel patches
_HEAD_DIM = 64  # every DINOv2 variant (S/B/L/g) has 64-dim attention heads


# --------------------------------------------------------------------------------------------
# GEN3C's post-processing
# --------------------------------------------------------------------------------------------


def gen3c_moge_postprocess(
    depth: Tensor,
    intrinsics: Tensor,
    mask: Tensor,
    size: tuple[int, int] = GEN3C_WORKING_SIZE,
) -> tuple[Tensor, Tensor, Tensor]:
    """GEN3C's treatment of MoGe's output (``gen3c_single_image.py``).

    Args:
        depth: (h, w) MoGe depth at its input resolution (720×1280 in GEN3C); may hold inf/NaN.
        intrinsics: (3, 3) MoGe's *normalised* intrinsics (fx, cx in image widths; fy, cy in heights).
        mask: (h, w) bool validity.
        size: the working (H, W); GEN3C: 704×1280.
    Returns:
        ``(depth (H, W), intrinsics (3, 3) in pixels of H × W, mask (H, W) bool)``: invalid
        pixels get depth 1000, depth is resized bilinearly, NaN → 1e4, clamped to [0, 1e4];
        the mask is resized by nearest neighbour.

    >>> d, K, m = gen3c_moge_postprocess(torch.ones(4, 8), torch.tensor([[0.5, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1]]), torch.ones(4, 8, dtype=torch.bool), (2, 4))
    >>> K[0, 0].item(), K[1, 2].item(), tuple(d.shape)
    (2.0, 1.0, (2, 4))
    """
    _check_map("gen3c_moge_postprocess depth", depth, "(h, w)")
    _check_map("gen3c_moge_postprocess intrinsics", intrinsics, "(3, 3)")
    _check_map("gen3c_moge_postprocess mask", mask, "(h, w)")
    if intrinsics.shape != (3, 3) or mask.shape != depth.shape or depth.ndim != 2:
        raise Gen3cInputError(
            f"gen3c_moge_postprocess depth {tuple(depth.shape)}, intrinsics {tuple(intrinsics.shape)} and mask {tuple(mask.shape)}: "
            "pass one (h, w) depth map, its (3, 3) normalised intrinsics and an (h, w) mask"
        )
    size = whole_image_size(size, "gen3c_moge_postprocess size")
    h, w = depth.shape
    mask = mask.bool()
    depth = torch.where(mask, depth.float(), torch.full_like(depth.float(), GEN3C_INVALID_DEPTH))
    K = intrinsics.detach().clone().float()
    K[0, 0] *= w
    K[1, 1] *= h
    K[0, 2] *= w
    K[1, 2] *= h
    sy, sx = size[0] / h, size[1] / w
    K[1, 1] *= sy
    K[1, 2] *= sy
    K[0, 0] *= sx
    K[0, 2] *= sx
    depth = F.interpolate(depth[None, None], size=tuple(size), mode="bilinear", align_corners=False)[0, 0]
    depth = torch.nan_to_num(depth, nan=GEN3C_MAX_DEPTH).clamp(0.0, GEN3C_MAX_DEPTH)
    return depth, K, resize_mask(mask, size)


# --------------------------------------------------------------------------------------------
# Point map → depth + intrinsics
# --------------------------------------------------------------------------------------------


def _check_map(name: str, value: object, shape: str) -> None:
    """Refuse what the MoGe post-processing cannot compute with, naming ``name``: no tensor (None,
    a numpy array: Python's "has no attribute 'shape'"), a meta tensor, complex values."""
    if not isinstance(value, Tensor):
        raise Gen3cInputError(f"{name} is {describe_value(value)}: pass a {shape} tensor")
    if value.is_meta:
        raise Gen3cInputError(meta_refusal(name))
    if value.is_complex():
        raise Gen3cInputError(complex_refusal(name, value.dtype))


def normalized_view_plane_uv(
    width: int, height: int, aspect_ratio: float | None = None, dtype: torch.dtype = torch.float32, device=None
) -> Tensor:
    """MoGe's view-plane coordinates of pixel centres, (H, W, 2).

    The image spans [−a/d, a/d] × [−1/d, 1/d] with a = aspect ratio and d = √(1 + a²), so the
    half diagonal is 1; pixel centres sit at ((i + ½)/W · 2 − 1) · a/d. A point (x, y, z) of a
    camera with focal length f (in half diagonals) projects to f · (x, y) / z.
    """
    a = width / height if aspect_ratio is None else aspect_ratio
    span_x = a / math.sqrt(1 + a * a)
    span_y = 1 / math.sqrt(1 + a * a)
    u = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, width, dtype=dtype, device=device)
    v = torch.linspace(-span_y * (height - 1) / height, span_y * (height - 1) / height, height, dtype=dtype, device=device)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu, vv], dim=-1)


def solve_focal_shift(
    uv: Tensor, xyz: Tensor, focal: float | None = None, method: str = "auto", max_iters: int = 100
) -> tuple[float, float]:
    """Least-squares focal f and z-shift s with f · xy / (z + s) ≈ uv.

    For a fixed s the best f is closed-form, f(s) = Σ p·uv / Σ p·p with p = xy / (z + s), so
    the problem is 1-D in s, started from s = 0.

    Args:
        uv: (N, 2) view-plane coordinates (:func:`normalized_view_plane_uv`).
        xyz: (N, 3) points, z shifted by an unknown constant.
        focal: a known f; then only s is solved.
        method: ``"scipy"`` — SciPy's Levenberg–Marquardt with MoGe's settings (ftol 1e-3), so
            results match MoGe's; ``"lm"`` — our own Levenberg–Marquardt on the exact
            variable-projection derivative, run to convergence; ``"auto"`` — scipy if importable.
    Returns:
        ``(focal, shift)``.
    """
    if uv.reshape(-1, 2).shape[0] < 2:
        return (1.0 if focal is None else float(focal)), 0.0
    if method == "auto":  # a broken scipy too: the depth comes all the same, and a note says why it may differ from MoGe's
        method = "lm" if optional("scipy.optimize", "MoGe's focal and shift solved by gen3c's own solver") is None else "scipy"
    if method == "scipy":
        return _solve_focal_shift_scipy(uv, xyz, focal)
    if method != "lm":
        raise ValueError(f"method must be auto, scipy or lm, got {method!r}")
    uv = uv.reshape(-1, 2).double()
    xy = xyz.reshape(-1, 3)[:, :2].double()
    z = xyz.reshape(-1, 3)[:, 2].double()

    def residual(s: float) -> tuple[Tensor, Tensor, float] | None:
        zs = z + s
        if float(zs.abs().min()) < 1e-12:
            return None
        p = xy / zs[:, None]
        q = -p / zs[:, None]  # dp/ds
        pp = (p * p).sum()
        if focal is None:
            f = float((p * uv).sum() / pp)
            df = float(((q * uv).sum() - 2.0 * f * (p * q).sum()) / pp)
        else:
            f, df = float(focal), 0.0
        r = f * p - uv
        J = df * p + f * q
        return r, J, f

    s, lam = 0.0, 1e-3
    current = residual(s)
    if current is None:
        return (1.0 if focal is None else float(focal)), 0.0
    for _ in range(max_iters):
        r, J, _f = current
        cost = float((r * r).sum())
        g, H = float((J * r).sum()), float((J * J).sum())
        if H <= 0 or not math.isfinite(H):
            break
        accepted = None
        for _ in range(30):  # raise the damping until a step lowers the cost
            step = -g / (H * (1.0 + lam))
            trial = residual(s + step)
            if trial is not None:
                trial_cost = float((trial[0] * trial[0]).sum())
                if math.isfinite(trial_cost) and trial_cost <= cost:
                    accepted = (step, trial, trial_cost)
                    break
            lam *= 10.0
        if accepted is None:
            break
        step, current, new_cost = accepted
        s += step
        lam = max(lam / 10.0, 1e-12)
        if abs(step) <= 1e-12 * (1.0 + abs(s)) or cost - new_cost <= 1e-15 * max(cost, 1e-30):
            break
    return current[2], s


def _solve_focal_shift_scipy(uv: Tensor, xyz: Tensor, focal: float | None) -> tuple[float, float]:
    """The same least-squares problem through ``scipy.optimize.least_squares(method="lm", ftol=1e-3)``,
    on float32 arrays from s = 0 — MoGe's choices, so its (loosely converged) answers are reproduced."""
    least_squares = require("scipy.optimize", "MoGe's focal and shift solver (method 'scipy')").least_squares
    c = uv.reshape(-1, 2).detach().cpu().numpy().astype(np.float32)
    p = xyz.reshape(-1, 3).detach().cpu().numpy().astype(np.float32)
    xy, z = p[:, :2], p[:, 2]

    def residual(shift: np.ndarray) -> np.ndarray:
        proj = xy / (z + shift)[:, None]
        f = (proj * c).sum() / np.square(proj).sum() if focal is None else focal
        return (f * proj - c).ravel()

    shift = float(np.asarray(least_squares(residual, x0=0, ftol=1e-3, method="lm")["x"]).squeeze().astype(np.float32))
    if focal is not None:
        return float(focal), shift
    proj = xy / (z + np.float32(shift))[:, None]
    return float((proj * c).sum() / np.square(proj).sum()), shift


def recover_focal_shift(
    points: Tensor,
    mask: Tensor | None = None,
    focal: Tensor | None = None,
    downsample_size: tuple[int, int] = (64, 64),
    method: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Focal length and z-shift that turn MoGe's affine-invariant point map into a camera.

    Assumes the principal point at the image centre, no distortion and square pixels. As in
    MoGe, the map is subsampled (nearest) to ``downsample_size`` before solving.

    Args:
        points: (*B, H, W, 3).
        mask: (*B, H, W) bool, the points to fit (default: all).
        focal: (*B,) known focal lengths (relative to the half diagonal), or None.
        method: the 1-D solver (:func:`solve_focal_shift`).
    Returns:
        ``(focal (*B,), shift (*B,))``; depth = z + shift, and with a = W / H,
        fx = focal / 2 · √(1 + a²) / a (image widths), fy = focal / 2 · √(1 + a²) (heights).
    """
    _check_map("recover_focal_shift points", points, "(*B, H, W, 3)")
    if points.ndim < 3 or points.shape[-1] != 3 or 0 in points.shape[-3:-1]:
        raise Gen3cInputError(f"recover_focal_shift points have shape {tuple(points.shape)}: pass an (*B, H, W, 3) point map")
    if mask is not None:
        _check_map("recover_focal_shift mask", mask, "(*B, H, W)")
        if mask.shape != points.shape[:-1]:  # (was torch's "shape '[-1, 1, 8, 8]' is invalid for input of size 16")
            raise Gen3cInputError(f"recover_focal_shift mask has shape {tuple(mask.shape)} for points {tuple(points.shape)}: pass one of {tuple(points.shape[:-1])}")
    downsample_size = whole_image_size(downsample_size, "recover_focal_shift downsample_size")
    if method not in ("auto", "scipy", "lm"):
        raise Gen3cInputError(f"recover_focal_shift method {method!r} is unknown: pass 'auto', 'scipy' or 'lm'")
    batch = points.shape[:-3]
    height, width = points.shape[-3], points.shape[-2]
    pts = points.reshape(-1, height, width, 3).float()
    uv = normalized_view_plane_uv(width, height, dtype=pts.dtype, device=pts.device)
    pts_lr = F.interpolate(pts.permute(0, 3, 1, 2), downsample_size, mode="nearest").permute(0, 2, 3, 1)
    uv_lr = F.interpolate(uv.permute(2, 0, 1)[None], downsample_size, mode="nearest")[0].permute(1, 2, 0)
    if mask is not None:
        mask_lr = F.interpolate(mask.reshape(-1, 1, height, width).float(), downsample_size, mode="nearest")[:, 0] > 0
    focals = None if focal is None else torch.as_tensor(focal).reshape(-1)
    out_f, out_s = [], []
    for i in range(pts.shape[0]):
        p, c = pts_lr[i].reshape(-1, 3), uv_lr.reshape(-1, 2)
        if mask is not None:
            keep = mask_lr[i].reshape(-1)
            p, c = p[keep], c[keep]
        f, s = solve_focal_shift(c.cpu(), p.detach().cpu(), None if focals is None else float(focals[i]), method)
        out_f.append(f)
        out_s.append(s)
    as_t = lambda v: torch.tensor(v, dtype=points.dtype, device=points.device).reshape(batch)  # noqa: E731
    return as_t(out_f), as_t(out_s)


def square_camera(
    intrinsics: Tensor, seen: tuple[int, int], image_size: tuple[int, int], target: tuple[int, int]
) -> Tensor:
    """MoGe's camera of an image shown to it at its own aspect ratio, in pixels of ``target`` (H, W).

    MoGe's camera has square pixels of what it saw (``seen``), whose sides are the image's
    rounded to whole pixels: 4:3 at 720×1280's pixel count is 831×1109, 1.3345:1, and a strip
    300×10 at 4704 pixels is 376×13, 3.6 % wider. Scaled per axis from there, the camera had
    fx ≠ fy by as much. The image's own pixels are square, so its focal length is MoGe's in half
    diagonals (its unit) times the image's half diagonal, with the principal point at its centre;
    brought to ``target`` it has fx / fy = the image → target stretch exactly (1 at the image's
    own shape).

    Args:
        intrinsics: (3, 3) MoGe's normalised intrinsics (fx, cx in widths of ``seen``; fy, cy in heights).
        seen, image_size, target: (H, W) of what MoGe saw, of the image, of the estimate.
    """
    (hs, ws), (h0, w0), (th, tw) = seen, image_size, target
    # fx·ws = fy·hs: one focal in pixels of `seen` (their geometric mean absorbs float rounding)
    focal_seen = math.sqrt(float(intrinsics[0, 0]) * ws * float(intrinsics[1, 1]) * hs)
    focal = focal_seen * math.hypot(h0, w0) / math.hypot(hs, ws)
    return make_intrinsics(focal * tw / w0, focal * th / h0, tw / 2.0, th / 2.0)


def focal_to_normalized_intrinsics(focal: Tensor, aspect_ratio: float) -> Tensor:
    """(*B,) focal (half diagonals) → (*B, 3, 3) intrinsics normalised by width / height, centre (½, ½)."""
    d = math.sqrt(1 + aspect_ratio**2)
    fx, fy = focal / 2 * d / aspect_ratio, focal / 2 * d
    K = torch.zeros(*focal.shape, 3, 3, dtype=focal.dtype, device=focal.device)
    K[..., 0, 0], K[..., 1, 1] = fx, fy
    K[..., 0, 2], K[..., 1, 2], K[..., 2, 2] = 0.5, 0.5, 1.0
    return K


# --------------------------------------------------------------------------------------------
# The network: DINOv2 backbone (key names of the official checkpoint)
# --------------------------------------------------------------------------------------------


class _PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class _LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, num_heads)
        self.ls1 = _LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, mlp_hidden)
        self.ls2 = _LayerScale(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


@dataclass
class DinoV2Shape:
    """The size of a DINOv2 ViT (ViT-L/14: 1024, 24 blocks, 16 heads, MLP 4096, 37×37 positions)."""

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_hidden: int = 4096
    patch_size: int = 14
    pos_grid: int = 37  # DINOv2 is trained at 518 px: 37 × 37 patch positions
    num_register_tokens: int = 0

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor], prefix: str = "backbone.", name: str = "MoGe checkpoint") -> DinoV2Shape:
        """Read the backbone's size from its weights (the checkpoint only names the encoder);
        ``name`` is the checkpoint in messages."""
        sizes = {"cls_token": -1, "patch_embed.proj.weight": -1, "pos_embed": 1, "blocks.0.mlp.fc1.weight": 0}
        read = {}
        for key, dim in sizes.items():
            value = state.get(prefix + key)
            if value is None:
                if any(k.startswith(prefix + "blocks.0.mlp.w12") for k in state):
                    raise Gen3cModelError(
                        f"{name} uses a SwiGLU DINOv2 (ViT-g), which our implementation does not cover: pip install git+https://github.com/microsoft/MoGe.git"
                    )
                raise Gen3cModelError(f"{name} lacks {prefix + key!r}: it is not a MoGe v1 model.pt (re-download it)")
            if not isinstance(value, Tensor) or value.ndim < (2 if dim == 1 else 1):
                what = f"a {value.ndim}-d tensor" if isinstance(value, Tensor) else describe_value(value)
                raise Gen3cModelError(f"{name} holds {what} at {prefix + key!r}, not a MoGe weight: the file is damaged or another model; re-download it")
            read[key] = value.shape[dim]
        embed_dim, patch, mlp_hidden = read["cls_token"], read["patch_embed.proj.weight"], read["blocks.0.mlp.fc1.weight"]
        n_pos = read["pos_embed"] - 1
        blocks = {k[len(prefix) + 7 :].split(".")[0] for k in state if k.startswith(prefix + "blocks.")}
        blocks = {int(b) for b in blocks if b.isdigit()}  # another key there is reported by the strict load
        registers = state.get(prefix + "register_tokens")
        grid = math.isqrt(max(n_pos, 0))
        if n_pos < 1 or grid * grid != n_pos:
            raise Gen3cModelError(f"{name} has {n_pos} backbone positions, not a square grid: the file is damaged")
        return cls(
            embed_dim=embed_dim,
            depth=len(blocks),
            num_heads=max(1, embed_dim // _HEAD_DIM),
            mlp_hidden=mlp_hidden,
            patch_size=patch,
            pos_grid=grid,
            num_register_tokens=registers.shape[1] if isinstance(registers, Tensor) and registers.ndim >= 2 else 0,  # else: the strict load says
        )


class DinoV2Backbone(nn.Module):
    """DINOv2 ViT as MoGe builds it (LayerScale, MLP FFN, qkv bias, no chunking) — inference only."""

    def __init__(self, shape: DinoV2Shape) -> None:
        super().__init__()
        d = shape.embed_dim
        self.shape = shape
        self.patch_size = shape.patch_size
        self.patch_embed = _PatchEmbed(shape.patch_size, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, shape.pos_grid**2 + 1, d))
        if shape.num_register_tokens:
            self.register_tokens = nn.Parameter(torch.zeros(1, shape.num_register_tokens, d))
        else:
            self.register_tokens = None
        self.blocks = nn.ModuleList(_Block(d, shape.num_heads, shape.mlp_hidden) for _ in range(shape.depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.mask_token = nn.Parameter(torch.zeros(1, d))  # unused at inference; kept for the keys

    def _pos_embed(self, height: int, width: int) -> Tensor:
        """Positional embedding for an image of ``height`` × ``width`` pixels: DINOv2's bicubic
        resampling of its M × M grid (with its 0.1 offset), or the grid as is for a square image
        with M × M patches, as DINOv2 decides."""
        M = self.shape.pos_grid
        h_patches, w_patches = height // self.patch_size, width // self.patch_size
        if h_patches * w_patches == M * M and height == width:
            return self.pos_embed
        pos = self.pos_embed.float()
        grid = pos[:, 1:].reshape(1, M, M, -1).permute(0, 3, 1, 2)
        # DINOv2 passes a scale factor (not a size) nudged by 0.1; the sampling positions follow it.
        scale = ((h_patches + 0.1) / M, (w_patches + 0.1) / M)
        grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
        assert grid.shape[-2:] == (h_patches, w_patches)
        grid = grid.permute(0, 2, 3, 1).flatten(1, 2)
        return torch.cat([pos[:, :1], grid], dim=1)

    def get_intermediate_layers(self, x: Tensor, n: int | Sequence[int]) -> list[tuple[Tensor, Tensor]]:
        """Normalised (patch tokens (B, N, D), class token (B, D)) after the chosen blocks.

        ``n``: the last ``n`` blocks (an int) or block indices.
        """
        B, _, h, w = x.shape
        tokens = self.patch_embed(x)
        # As DINOv2: concatenating the float32 class token promotes the (autocast float16) patch
        # tokens, so the residual stream stays float32 under autocast.
        tokens = torch.cat([self.cls_token.expand(B, -1, -1), tokens], dim=1)
        pos = self._pos_embed(h, w)
        tokens = tokens + (pos if pos is self.pos_embed else pos.to(tokens.dtype))
        if self.register_tokens is not None:
            tokens = torch.cat([tokens[:, :1], self.register_tokens.expand(B, -1, -1), tokens[:, 1:]], dim=1)
        take = range(len(self.blocks) - n, len(self.blocks)) if isinstance(n, int) else list(n)
        outputs = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i in take:
                outputs.append(tokens)
        skip = 1 + self.shape.num_register_tokens
        return [(self.norm(t)[:, skip:], self.norm(t)[:, 0]) for t in outputs]


# --------------------------------------------------------------------------------------------
# The network: MoGe v1 head
# --------------------------------------------------------------------------------------------


class _ResidualConvBlock(nn.Module):
    def __init__(self, channels: int, hidden: int, norm: str = "group_norm") -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.GroupNorm(1, channels),
            nn.ReLU(),
            nn.Conv2d(channels, hidden, kernel_size=3, padding=1, padding_mode="replicate"),
            nn.GroupNorm(hidden // 32 if norm == "group_norm" else 1, hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, kernel_size=3, padding=1, padding_mode="replicate"),
        )
        self.skip_connection = nn.Identity()  # MoGe's blocks keep the width, so the skip is identity

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x) + self.skip_connection(x)


def _with_uv(x: Tensor, aspect_ratio: float) -> Tensor:
    uv = normalized_view_plane_uv(x.shape[-1], x.shape[-2], aspect_ratio, dtype=x.dtype, device=x.device)
    return torch.cat([x, uv.permute(2, 0, 1)[None].expand(x.shape[0], -1, -1, -1)], dim=1)


class MoGeHead(nn.Module):
    """Sum of projected backbone features → 3 × (2× upsampling + residual blocks) → per-pixel outputs.

    View-plane coordinates (2 channels) are appended before every upsampling stage and before
    the output convolutions so the head knows the aspect ratio. Outputs: points (3) and mask (1).
    """

    def __init__(self, cfg: MoGeV1Config, dim_in: int) -> None:
        super().__init__()
        num_features = cfg.intermediate_layers if isinstance(cfg.intermediate_layers, int) else len(cfg.intermediate_layers)
        self.projects = nn.ModuleList(nn.Conv2d(dim_in, cfg.dim_proj, kernel_size=1) for _ in range(num_features))
        widths_in = [cfg.dim_proj, *cfg.dim_upsample[:-1]]
        self.upsample_blocks = nn.ModuleList(
            nn.Sequential(
                nn.Sequential(
                    nn.ConvTranspose2d(c_in + 2, c_out, kernel_size=2, stride=2),
                    nn.Conv2d(c_out, c_out, kernel_size=3, padding=1, padding_mode="replicate"),
                ),
                *(
                    _ResidualConvBlock(c_out, cfg.dim_times_res_block_hidden * c_out, cfg.res_block_norm)
                    for _ in range(cfg.num_res_blocks)
                ),
            )
            for c_in, c_out in zip(widths_in, cfg.dim_upsample, strict=True)
        )
        c_last = cfg.last_conv_channels
        self.output_block = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(cfg.dim_upsample[-1] + 2, c_last, kernel_size=3, padding=1, padding_mode="replicate"),
                *(
                    _ResidualConvBlock(c_last, cfg.dim_times_res_block_hidden * c_last, cfg.res_block_norm)
                    for _ in range(cfg.last_res_blocks)
                ),
                nn.ReLU(),
                nn.Conv2d(c_last, dim_out, kernel_size=cfg.last_conv_size, padding=cfg.last_conv_size // 2, padding_mode="replicate"),
            )
            for dim_out in (3, 1)
        )

    def forward(self, features: list[tuple[Tensor, Tensor]], image: Tensor) -> list[Tensor]:
        img_h, img_w = image.shape[-2:]
        ph, pw = img_h // _MOGE_PATCH, img_w // _MOGE_PATCH
        aspect = img_w / img_h
        x = torch.stack(
            [proj(feat.permute(0, 2, 1).unflatten(2, (ph, pw)).contiguous()) for proj, (feat, _) in zip(self.projects, features, strict=True)],
            dim=1,
        ).sum(dim=1)
        for block in self.upsample_blocks:
            x = block(_with_uv(x, aspect))
        x = F.interpolate(x, (img_h, img_w), mode="bilinear", align_corners=False)
        x = _with_uv(x, aspect)
        return [block(x) for block in self.output_block]


# --------------------------------------------------------------------------------------------
# The network: MoGe v1
# --------------------------------------------------------------------------------------------

_LEGACY_KEYS = {"output_mask", "split_head", "trained_diagonal_size_range"}


@dataclass
class MoGeV1Config:
    """``model_config`` of a MoGe v1 ``model.pt`` (defaults are MoGe's constructor defaults)."""

    encoder: str = "dinov2_vitb14"
    intermediate_layers: int | list[int] = 4
    dim_proj: int = 512
    dim_upsample: list[int] = field(default_factory=lambda: [256, 128, 128])
    dim_times_res_block_hidden: int = 1
    num_res_blocks: int = 1
    remap_output: str | bool = "linear"
    res_block_norm: str = "group_norm"
    num_tokens_range: list[int] = field(default_factory=lambda: [1200, 2500])
    last_res_blocks: int = 0
    last_conv_channels: int = 32
    last_conv_size: int = 1
    mask_threshold: float = 0.5

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> MoGeV1Config:
        known = {f.name for f in fields(cls)}
        config = dict(config)
        if "trained_area_range" in config:  # early releases stored the area in pixels
            lo, hi = config.pop("trained_area_range")
            config.setdefault("num_tokens_range", [int(lo) // _MOGE_PATCH**2, int(hi) // _MOGE_PATCH**2])
        unknown = sorted(set(config) - known - _LEGACY_KEYS)
        if unknown:
            note(f"MoGe model_config keys ignored: {unknown}", stacklevel=3)
        cfg = cls(**{k: v for k, v in config.items() if k in known})
        if cfg.remap_output not in ("linear", "sinh", "exp", "sinh_exp", False):
            raise Gen3cModelError(f"MoGe checkpoint has remap_output={cfg.remap_output!r}, which MoGe v1 does not define")
        return cfg


def _resize_antialiased(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """MoGe's antialiased resize of the input image, computed in float32 and returned in ``x``'s
    dtype: PyTorch has no antialiased float16 / bfloat16 resize on the CPU, and float32 input
    (GEN3C's model, autocast or not) is resized exactly as before."""
    return F.interpolate(x.float(), size, mode=mode, align_corners=False, antialias=True).to(x.dtype)


class MoGeV1(nn.Module):
    """MoGe v1: image → affine-invariant point map + mask, and :meth:`infer` → depth + intrinsics.

    State-dict keys are those of the official ``model.pt`` (``backbone.*``, ``head.*``,
    ``image_mean``, ``image_std``).
    """

    image_mean: Tensor
    image_std: Tensor

    def __init__(self, config: MoGeV1Config, backbone: DinoV2Shape | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = DinoV2Backbone(backbone or DinoV2Shape())
        self.head = MoGeHead(config, self.backbone.shape.embed_dim)
        self.register_buffer("image_mean", torch.tensor(_IMAGE_MEAN).view(1, 3, 1, 1))
        self.register_buffer("image_std", torch.tensor(_IMAGE_STD).view(1, 3, 1, 1))

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any], name: str = "MoGe checkpoint") -> MoGeV1:
        """Build from a loaded ``model.pt`` (``{"model_config": ..., "model": state_dict}``), strictly."""
        check_moge_layout(checkpoint, name)
        config = checkpoint["model_config"]
        if is_moge_v2_checkpoint(checkpoint):
            raise Gen3cModelError(
                f"{name} is a MoGe v2 checkpoint; our own implementation covers MoGe v1 (GEN3C's): pip install git+https://github.com/microsoft/MoGe.git"
            )
        state = checkpoint["model"]
        model = cls(MoGeV1Config.from_dict(config), DinoV2Shape.from_state_dict(state, name=name))
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches
            first = str(exc).split("\n\t")[1] if "\n\t" in str(exc) else str(exc)
            raise Gen3cModelError(f"{name} does not fit MoGe v1 ({first.strip()}): the file is damaged or another model") from None
        if result.missing_keys or result.unexpected_keys:
            raise Gen3cModelError(
                f"{name} does not match MoGe v1: missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}"
                f" ({len(result.missing_keys)} / {len(result.unexpected_keys)} in all): re-download it"
            )
        return model.eval()

    @property
    def device(self) -> torch.device:
        return self.image_mean.device

    @property
    def dtype(self) -> torch.dtype:
        return self.head.projects[0].weight.dtype

    def _remap_points(self, points: Tensor) -> Tensor:
        mode = self.config.remap_output
        if mode in ("linear", False):
            return points
        if mode == "sinh":
            return torch.sinh(points)
        xy, z = points.split([2, 1], dim=-1)
        if mode == "exp":
            z = torch.exp(z)
            return torch.cat([xy * z, z], dim=-1)
        return torch.cat([torch.sinh(xy), torch.exp(z)], dim=-1)  # sinh_exp

    def forward(self, image: Tensor, num_tokens: int) -> dict[str, Tensor]:
        """Args: image (B, 3, H, W) in [0, 1]. Returns points (B, H, W, 3) and mask logits (B, H, W)."""
        H, W = image.shape[-2:]
        factor = ((num_tokens * _MOGE_PATCH**2) / (H * W)) ** 0.5
        rw, rh = int(W * factor), int(H * factor)
        x = _resize_antialiased(image, (rh, rw), "bicubic")
        x = (x - self.image_mean) / self.image_std
        x14 = _resize_antialiased(x, (rh // _MOGE_PATCH * _MOGE_PATCH, rw // _MOGE_PATCH * _MOGE_PATCH), "bilinear")
        features = self.backbone.get_intermediate_layers(x14, self.config.intermediate_layers)
        points, mask = self.head(features, x)
        # MoGe finishes under autocast(float32): on CUDA the resize keeps the head's dtype and
        # exp() runs in float32; CPU autocast has no float32 mode, so it is simply off there.
        tail = torch.autocast("cuda", dtype=torch.float32) if x.device.type == "cuda" else torch.autocast(x.device.type, enabled=False)
        with tail:
            points = F.interpolate(points, (H, W), mode="bilinear", align_corners=False)
            mask = F.interpolate(mask, (H, W), mode="bilinear", align_corners=False)
            return {"points": self._remap_points(points.permute(0, 2, 3, 1)), "mask": mask[:, 0]}

    @torch.inference_mode()
    def infer(
        self,
        image: Tensor,
        fov_x: float | None = None,
        resolution_level: int = 9,
        num_tokens: int | None = None,
        use_fp16: bool = True,
    ) -> dict[str, Tensor]:
        """MoGe's ``infer`` with its defaults (as GEN3C calls it).

        Args:
            image: (3, H, W) or (B, 3, H, W) in [0, 1].
            fov_x: known horizontal field of view in degrees (then only the shift is solved).
            resolution_level: 0–9, picks the token count in the model's range (9 = most).
            use_fp16: half-precision autocast (on whatever device the model is), as MoGe does.
        Returns:
            ``depth`` (*B, H, W) with inf where invalid, ``intrinsics`` (*B, 3, 3) normalised,
            ``mask`` (*B, H, W) bool, ``points`` (*B, H, W, 3) (the raw affine-invariant map).
        """
        single = image.ndim == 3
        x = (image[None] if single else image).to(device=self.device, dtype=self.dtype)
        H, W = x.shape[-2:]
        aspect = W / H
        if num_tokens is None:
            lo, hi = self.config.num_tokens_range
            num_tokens = int(lo + (resolution_level / 9) * (hi - lo))
        autocast = use_fp16 and self.dtype != torch.float16
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=autocast):
            out = self.forward(x, num_tokens)
        points, logits = out["points"].float(), out["mask"].float()
        refuse_broken_output(points, logits, torch.float16 if autocast or self.dtype == torch.float16 else self.dtype)
        mask = logits > self.config.mask_threshold
        known = None
        if fov_x is not None:
            f = aspect / math.sqrt(1 + aspect**2) / math.tan(math.radians(fov_x) / 2)
            known = torch.full(points.shape[:1], f)
        focal, shift = recover_focal_shift(points, mask, focal=known)
        intrinsics = focal_to_normalized_intrinsics(focal, aspect)
        depth = points[..., 2] + shift[:, None, None]
        depth = torch.where(mask, depth, torch.full_like(depth, math.inf))
        result = {"depth": depth, "intrinsics": intrinsics, "mask": mask, "points": points}
        return {k: v[0] for k, v in result.items()} if single else result


# --------------------------------------------------------------------------------------------
# Loading and the estimator
# --------------------------------------------------------------------------------------------


def refuse_broken_output(points: Tensor, mask_logits: Tensor | None, compute_dtype: torch.dtype) -> None:
    """Refuse MoGe's raw output (points (…, H, W, 3), mask logits (…, H, W), None for a MoGe v2
    without a mask head) unless finite at every pixel (:func:`~gen3c.depth.base.refuse_non_finite`),
    for either back end; ``compute_dtype`` is the precision the network ran in (float16 under
    MoGe's autocast)."""
    finite = torch.isfinite(points).all(dim=-1)
    if mask_logits is not None:
        finite &= torch.isfinite(mask_logits)
    reduced = compute_dtype if compute_dtype in (torch.float16, torch.bfloat16) else None
    refuse_non_finite("MoGe", finite, "re-download model.pt", reduced, "in Python: use_fp16=False, dtype float32")


def is_moge_name(name_or_path: str) -> bool:
    """Whether ``name_or_path`` names MoGe: ``moge``, a hub id with "moge" in it, or a local
    ``.pt`` file / a folder holding ``model.pt`` without a transformers ``config.json``."""
    if name_or_path.lower() in MOGE_NAMES:
        return True
    # Guarded (gen3c.io.paths): ~user of no user, or a name too long for the file system, is one line.
    p = expand_home(name_or_path, "depth estimator")
    if is_dir(p):
        return is_file(p / MOGE_CHECKPOINT_NAME) and not is_file(p / "config.json")
    # A missing checkpoint file too: resolve_moge_checkpoint says it does not exist (not a hub id)
    return p.suffix.lower() in CHECKPOINT_SUFFIXES or (not is_file(p) and "moge" in name_or_path.lower())


def resolve_moge_checkpoint(name_or_path: str) -> Path:
    """The local ``model.pt`` for ``moge`` (= ``Ruicheng/moge-vitl``), a hub id, a file or a folder.

    Hub ids are looked up in the local Hugging Face cache first, then downloaded.

    Raises:
        Gen3cModelError: missing file, no network, unknown repository.
    """
    if name_or_path.lower() in MOGE_NAMES:
        name_or_path = MOGE_DEFAULT_REPO
    p = expand_home(name_or_path, "MoGe checkpoint")
    if is_file(p):
        return p
    if is_dir(p):
        if is_file(p / MOGE_CHECKPOINT_NAME):
            return p / MOGE_CHECKPOINT_NAME
        raise Gen3cModelError(f"MoGe folder {quoted_path(p)} has no {MOGE_CHECKPOINT_NAME}: download it from huggingface.co/{MOGE_DEFAULT_REPO}")
    if looks_like_path(name_or_path) or name_or_path.count("/") != 1:  # "checkpoints/model.pt": a file, not a hub id
        raise Gen3cModelError(f"MoGe checkpoint {quoted_path(name_or_path)} does not exist: pass a model.pt file or a hub id like {MOGE_DEFAULT_REPO}")
    return hub_file(name_or_path, MOGE_CHECKPOINT_NAME, "MoGe")


def load_checkpoint(path: Path, what: str = "MoGe checkpoint") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with one-line errors; never full unpickling."""
    name = f"{what} {quoted_path(path)}"
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise Gen3cModelError(f"{name} does not exist: check the path") from None
    except Exception as exc:
        text = str(exc)
        if "Unsupported global" in text:
            raise Gen3cModelError(f"{name} holds Python objects that are never unpickled: use the official model.pt") from None
        head = file_head(path)
        if not head:  # what an interrupted download or a full disk leaves: not "text"
            raise Gen3cModelError(f"{name} is empty (0 bytes): re-download it") from None
        if not head.startswith((ZIP_MAGICS[0], PICKLE_MAGIC)):  # torch's zip format, or a legacy pickle
            raise Gen3cModelError(f"{name} is {describe_head(head)}, not a PyTorch checkpoint: pass the official model.pt") from None
        raise Gen3cModelError(f"{name} is corrupt or truncated ({type(exc).__name__}): re-download it") from None


def check_moge_layout(checkpoint: Any, name: str = "MoGe checkpoint") -> None:
    """Refuse a loaded file that is not a MoGe ``model.pt`` (``{"model_config": dict, "model": state dict}``)."""
    if (
        not isinstance(checkpoint, dict)
        or not isinstance(checkpoint.get("model_config"), dict)
        or not isinstance(checkpoint.get("model"), dict)
    ):
        if isinstance(checkpoint, dict) and {"model_config", "model"} <= set(checkpoint):
            kinds = f"'model_config' {describe_value(checkpoint['model_config'])}, 'model' {describe_value(checkpoint['model'])}"
            found = f"dicts under 'model_config' and 'model', found {kinds}"
        else:
            found = f"keys 'model_config' and 'model', found {list(checkpoint)[:5] if isinstance(checkpoint, dict) else describe_value(checkpoint)}"
        raise Gen3cModelError(f"{name} is not a MoGe model.pt (expected {found}): re-download it")


def is_moge_v2_checkpoint(checkpoint: Any) -> bool:
    """MoGe v2 configs describe their parts as dicts (``encoder``, ``neck``, ``points_head``, …)."""
    config = checkpoint.get("model_config", {}) if isinstance(checkpoint, dict) else {}
    return isinstance(config, dict) and (isinstance(config.get("encoder"), dict) or "neck" in config)


def _official_moge_class(version: int = 1):
    """The official package's MoGeModel, its raw output checked (:func:`refuse_broken_output`) as our
    :class:`MoGeV1` checks it: the package has no such check, and its infer read an all-NaN output
    as all sky (its mask is False for a NaN logit) and died in its solver on a partial one."""
    try:
        if version == 2:
            from moge.model.v2 import MoGeModel
        else:
            from moge.model.v1 import MoGeModel
    except Exception:  # not installed, or its dependencies (utils3d) are missing
        return None

    class CheckedMoGeModel(MoGeModel):
        def forward(self, *args, **kwargs):
            out = super().forward(*args, **kwargs)  # its infer calls self.forward before any post-processing
            weight = next(self.parameters())
            autocast = torch.is_autocast_enabled(weight.device.type)
            dtype = torch.get_autocast_dtype(weight.device.type) if autocast else weight.dtype
            refuse_broken_output(out["points"], out.get("mask"), dtype)
            return out

    return CheckedMoGeModel


class MoGeEstimator:
    """MoGe v1 as GEN3C runs it, returning a :class:`DepthEstimate` (``kind="relative"``).

    Args:
        name_or_path: ``"moge"``, a hub id (``Ruicheng/moge-vitl``), a ``model.pt`` or a folder.
        device, dtype: where and in which precision the network runs.
        backend: ``"auto"`` (official package if importable, else ours), ``"official"``, ``"gen3c"``.
        inference_size: (H, W) MoGe sees — GEN3C: 720×1280; None runs at the image's size. An
            image of another aspect ratio that is wanted at its own (:meth:`moge_input_size`)
            is seen at this pixel count, its aspect ratio kept.
        use_fp16: half-precision autocast; None (default): on CUDA (MoGe's default, so GEN3C's), not on CPU.
    """

    kind = "relative"

    def __init__(
        self,
        name_or_path: str = "moge",
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        backend: str = "auto",
        inference_size: tuple[int, int] | None = GEN3C_MOGE_SIZE,
        use_fp16: bool | None = None,
    ) -> None:
        if backend not in ("auto", "official", "gen3c"):
            raise ValueError(f"backend must be auto, official or gen3c, got {backend!r}")
        self.name = f"moge:{MOGE_DEFAULT_REPO if name_or_path.lower() in MOGE_NAMES else name_or_path}"
        self.inference_size = inference_size
        self.use_fp16 = torch.device(device).type == "cuda" if use_fp16 is None else use_fp16
        path = resolve_moge_checkpoint(name_or_path)
        checkpoint = load_checkpoint(path)
        where = f"MoGe checkpoint {quoted_path(path)}"
        check_moge_layout(checkpoint, where)  # before either back end reads it
        v2 = is_moge_v2_checkpoint(checkpoint)
        official = _official_moge_class(2 if v2 else 1) if backend in ("auto", "official") or v2 else None
        if (backend == "official" or v2) and official is None:
            raise Gen3cModelError(
                f"{where} needs the official moge package ({'MoGe v2' if v2 else 'backend official'}): pip install git+https://github.com/microsoft/MoGe.git"
            )
        if official is not None:
            self.backend = "official"
            try:
                model = official(**checkpoint["model_config"])
                model.load_state_dict(checkpoint["model"])
            except (TypeError, ValueError, KeyError, RuntimeError) as exc:  # unknown config keys, mismatched weights
                text = first_line(exc, 160)
                raise Gen3cModelError(
                    f"{where} does not fit the official MoGe {'v2' if v2 else 'v1'} model ({type(exc).__name__}: {text}): "
                    "the file is damaged or another model; re-download it"
                ) from None
            # MoGe v2 with a scale head predicts metric depth; v1 is up to scale.
            self.kind = "metric" if v2 and "scale_head" in checkpoint["model_config"] else "relative"
        else:
            self.backend = "gen3c"
            model = MoGeV1.from_checkpoint(checkpoint, where)
        self.model = model.to(device=device, dtype=dtype).eval()
        tokens = checkpoint["model_config"].get("num_tokens_range")
        #: The most DINOv2 tokens MoGe sees an image in (its infer's default, resolution level 9).
        self.max_tokens = int(max(tokens)) if isinstance(tokens, (list, tuple)) and tokens else 2500
        half = [f"dtype {str(dtype).removeprefix('torch.')}"] if dtype in (torch.float16, torch.bfloat16) else []
        half += ["use_fp16=True"] if self.use_fp16 and dtype != torch.float16 else []  # autocast, as MoGe's infer enables it
        note_half_on_cpu(self.name, device, " and ".join(half) or None)

    def __repr__(self) -> str:
        weight = next(self.model.parameters())
        return (
            f"MoGeEstimator(name={self.name!r}, backend={self.backend!r}, kind={self.kind!r}, device={weight.device}, "
            f"dtype={str(weight.dtype).removeprefix('torch.')}, inference_size={self.inference_size}, use_fp16={self.use_fp16})"
        )

    def moge_input_size(self, image_size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
        """The (H, W) MoGe sees for an ``image_size`` image whose estimate is wanted at ``target``.

        GEN3C's plain resize to :attr:`inference_size` (720×1280) where the image has about its
        aspect ratio (:data:`GEN3C_STRETCH_TOLERANCE`) or the estimate is wanted stretched (a
        ``target`` of another aspect ratio than the image's: ``--resize_mode stretch``). Otherwise
        (a 4:3 or portrait photo wanted at its own shape) the same pixel count at the image's
        aspect ratio: MoGe takes any aspect ratio and its camera assumes square pixels, so a
        stretched photo came back with fx ≠ fy (4:3: fx = 0.75 fy; portrait 3:4: 0.42 fy) and
        geometry stretched to match.
        """
        (h0, w0) = image_size
        if self.inference_size is None:
            return (h0, w0)
        hi, wi = self.inference_size
        if self.sees_as_gen3c(image_size, target):
            return (hi, wi)
        pixels = hi * wi
        return (max(1, round(math.sqrt(pixels * h0 / w0))), max(1, round(math.sqrt(pixels * w0 / h0))))

    def sees_as_gen3c(self, image_size: tuple[int, int], target: tuple[int, int]) -> bool:
        """Whether MoGe sees an ``image_size`` image wanted at ``target`` as GEN3C shows it, plainly
        resized to :attr:`inference_size` (:meth:`moge_input_size`), rather than at its own aspect ratio."""
        if self.inference_size is None:
            return False
        (h0, w0), (th, tw), (hi, wi) = image_size, target, self.inference_size
        near_gen3c = abs((w0 / h0) / (wi / hi) - 1) <= GEN3C_STRETCH_TOLERANCE
        stretched = abs((tw / th) / (w0 / h0) - 1) > 0.01
        return near_gen3c or stretched

    def check_patch_grid(self, seen: tuple[int, int], image_size: tuple[int, int]) -> None:
        """Refuse an ``image_size`` image that MoGe, shown it at ``seen``, would see in no row (or
        column) of 14-pixel patches.

        MoGe resizes what it sees to :attr:`max_tokens` patches at its aspect ratio, so an image
        more than that many times wider than tall (or taller than wide), 8×20000 say, is less than
        one patch high and MoGe stopped with a RuntimeError deep inside.
        """
        h, w = seen
        factor = math.sqrt(self.max_tokens * _MOGE_PATCH**2 / (h * w))
        if min(int(h * factor), int(w * factor)) >= _MOGE_PATCH:
            return
        h0, w0 = image_size
        raise Gen3cInputError(
            f"an image of {w0}×{h0} pixels (aspect ratio {max(h0, w0) / min(h0, w0):.0f}:1) is too narrow for {self.name}, which sees it "
            f"at its own aspect ratio in {self.max_tokens} patches of {_MOGE_PATCH} pixels: crop it below {self.max_tokens}:1, "
            "have it stretched (gen3c depth --resolution HxW, gen3c generate --resize_mode stretch), or use --depth_estimator prior"
        )

    def predict(self, image: Tensor, fov_x: float | None = None) -> dict[str, Tensor]:
        """Run MoGe on (3, h, w) in [0, 1] as given: depth (inf where invalid), normalised intrinsics, mask."""
        out = self.model.infer(image.to(self.model.device), fov_x=fov_x, use_fp16=self.use_fp16)
        return {k: out[k].float().cpu() for k in ("depth", "intrinsics", "mask")}

    def estimate(
        self,
        image: Any,
        size: tuple[int, int] | None = None,
        intrinsics: Tensor | None = None,
        fov: float | None = None,
    ) -> DepthEstimate:
        """GEN3C's MoGe step: plain resize to 720×1280 (another aspect ratio wanted at its own:
        :meth:`moge_input_size`), MoGe, :func:`gen3c_moge_postprocess` to ``size``.

        ``size`` defaults to the input image's size. ``intrinsics`` / ``fov`` (GEN3C passes
        neither; one or the other) fix MoGe's field of view and replace its intrinsics: a
        ``fov`` gives square pixels of the input image with the principal point at its centre.
        """
        rgb = image_to_uint8(image)
        h0, w0 = rgb.shape[:2]
        target = estimate_size(size) if size is not None else (h0, w0)
        seen = self.moge_input_size((h0, w0), target)
        self.check_patch_grid(seen, (h0, w0))
        if seen != (h0, w0):
            import cv2

            # GEN3C: cv2.resize of the uint8 RGB image (bilinear), then / 255.
            rgb = cv2.resize(rgb, (seen[1], seen[0]), interpolation=cv2.INTER_LINEAR)
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
        fov_x, user = None, intrinsics is not None or fov is not None
        if user:
            # The user's camera, as every estimator reads it (a --fov is square pixels of this
            # image). MoGe's own K for a known FOV assumes square pixels of the 720×1280 resize,
            # which a plain resize of another aspect ratio makes non-square here.
            intrinsics, _ = camera_for(h0, w0, intrinsics, fov)
            fov_x = fov_from_intrinsics(intrinsics, w0)
        out = self.predict(x, fov_x=fov_x)
        source = "user" if user else "model"
        if not user and not bool(out["mask"].any()):
            # Nothing trusted (all sky): MoGe's camera came from no point at all (our solver's
            # placeholder focal), so the camera is the default FOV's, and said to be.
            intrinsics, source = camera_for(h0, w0)
        fx, fy = float(out["intrinsics"][0, 0]), float(out["intrinsics"][1, 1])
        if source == "model" and not (math.isfinite(fx) and math.isfinite(fy) and fx > 0 and fy > 0):
            raise Gen3cModelError(
                f"{self.name} returned an impossible camera (fx={fx:.3g}, fy={fy:.3g} image sizes): check that the weights are MoGe's, or pass --fov"
            )
        depth, K, mask = gen3c_moge_postprocess(out["depth"], out["intrinsics"], out["mask"], target)
        if intrinsics is None and not self.sees_as_gen3c((h0, w0), target):  # seen at the image's own aspect ratio
            K = square_camera(out["intrinsics"], seen, (h0, w0), target)
        if intrinsics is not None:  # the user's (or the default) camera, in pixels of the input image
            K = resize_intrinsics(intrinsics, (h0, w0), target)
        return DepthEstimate(depth, K, mask, self.kind, self.name, source)

