"""Loading a depth estimator by name or path: :func:`load_depth_estimator`, the cached
:func:`cached_depth_estimator` (GUI, batches), and :func:`load_depth_estimator_or_prior` (the
preview's fallback). The names themselves and the check of a typo are in
:mod:`gen3c.depth.names` (no torch)."""

from __future__ import annotations

import functools
import os

import torch

from gen3c.depth.base import DepthEstimator
from gen3c.depth.moge import MoGeEstimator, is_moge_name
from gen3c.depth.names import DEFAULT_DEPTH_ESTIMATOR, PRIOR_NAME, check_estimator_name
from gen3c.depth.prior import GeometricPriorEstimator, prior_notice
from gen3c.errors import Gen3cDependencyError, Gen3cModelError, path_to_copy, quoted_path
from gen3c.io.paths import exists, expand_home, is_dir, is_file


def load_depth_estimator(
    name_or_path: str = DEFAULT_DEPTH_ESTIMATOR,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    **options,
) -> DepthEstimator:
    """The depth estimator named by ``name_or_path``.

    - ``"moge"`` (= ``Ruicheng/moge-vitl``, GEN3C's), a hub id containing "moge", a
      ``model.pt`` file or a folder holding one → :class:`~gen3c.depth.moge.MoGeEstimator`
      (options: ``backend``, ``inference_size``, ``use_fp16``);
    - ``"prior"`` → :class:`~gen3c.depth.prior.GeometricPriorEstimator` (no weights);
    - any other hub id or local folder with a transformers ``config.json`` whose
      ``model_type`` is depth_pro, depth_anything, zoedepth or dpt, and the aliases
      ``depth_pro``, ``depth_anything_v2``, ``zoedepth`` →
      :class:`~gen3c.depth.hf.TransformersDepthEstimator` (option: ``flip_augment``).

    Raises:
        Gen3cInputError: a name that is none of these (a typo: the message names the valid
            choices and the closest one) or a path that does not exist — one line.
        Gen3cModelError: missing or corrupt weights, no network — one line.
        Gen3cDependencyError: a package the estimator needs (``gen3c[depth]``) is missing or
            broken: the pip line, and the prior as the way to a preview without it.
    """
    try:
        return _load_depth_estimator(name_or_path, device, dtype, **options)
    except Gen3cDependencyError as exc:
        # Unlike weights that cannot load, a missing package is no reason for the preview to fall
        # back to the prior on its own (the install is the fix), but the prior needs neither.
        raise Gen3cDependencyError(
            f"{exc}; or --depth_estimator prior: no weights or packages, a plausible parallax for previews, not the photo's depth"
        ) from None


def _load_depth_estimator(name_or_path: str, device: torch.device | str, dtype: torch.dtype, **options) -> DepthEstimator:
    name = os.fspath(name_or_path) if isinstance(name_or_path, os.PathLike) else name_or_path
    check_estimator_name(name.strip() if isinstance(name, str) else name)
    name = name.strip()
    if name.lower() == PRIOR_NAME:
        return GeometricPriorEstimator(**options)
    if is_moge_name(name):
        return MoGeEstimator(name, device=device, dtype=dtype, **options)
    p = expand_home(name, "depth estimator")  # guarded: a name too long for the file system is none of these
    from gen3c.depth.hf import WEIGHT_FILES, TransformersDepthEstimator, not_a_depth_model

    refusal = not_a_depth_model(name)  # a diffusers folder, said as such before transformers loads
    if refusal is not None:
        raise refusal
    if exists(p) and not (is_dir(p) and is_file(p / "config.json")):
        fix = "check the path"
        if not is_dir(p) and is_file(p.parent / "config.json"):  # a file of a transformers model's folder
            fix = f"pass its folder {path_to_copy(p.parent)}, which holds the model's config.json"
        elif is_dir(p) and (weights := [f for f in WEIGHT_FILES if is_file(p / f)]):  # a transformers model saved in part
            fix = f"it holds {weights[0]} but no config.json; save the model into it with save_pretrained, or download it again"
        raise Gen3cModelError(f"depth estimator {quoted_path(name)} is neither a MoGe model.pt nor a transformers folder with config.json: {fix}")
    return TransformersDepthEstimator(name, device=device, dtype=dtype, **options)


@functools.lru_cache(maxsize=2)
def cached_depth_estimator(
    name_or_path: str = DEFAULT_DEPTH_ESTIMATOR, device: str | None = None, dtype: torch.dtype = torch.float32
) -> DepthEstimator:
    """:func:`load_depth_estimator` with the last two estimators kept loaded (GUI, batches).

    ``device`` None picks CUDA when available. Failures are not cached.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_depth_estimator(name_or_path, device=device, dtype=dtype)


def load_depth_estimator_or_prior(
    name_or_path: str | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    **options,
) -> tuple[DepthEstimator, str | None]:
    """:func:`load_depth_estimator`, falling back to the geometric prior when the default
    estimator's (``name_or_path`` None: MoGe's, :func:`falls_back_to_prior`) weights cannot be loaded.

    Raises:
        Gen3cModelError: an estimator named whose weights cannot be loaded (``"moge"`` too, or
            a folder of another model, a hub id that is not cached: the user's choice is
            refused, not replaced by made-up depth).

    Returns:
        ``(estimator, notice)``: ``notice`` is None on success, else the line to show the user
        (:func:`~gen3c.depth.prior.prior_notice`: what failed, that the prior is used, how to
        get real depth).
    """
    try:
        name = DEFAULT_DEPTH_ESTIMATOR if name_or_path is None else name_or_path
        return load_depth_estimator(name, device=device, dtype=dtype, **options), None
    except Gen3cModelError as exc:
        if not falls_back_to_prior(name_or_path):
            raise
        return GeometricPriorEstimator(), prior_notice(str(exc))


def falls_back_to_prior(name_or_path: str | None) -> bool:
    """Whether the preview may stand the geometric prior in for ``name_or_path`` when its
    weights cannot be loaded: only for the default (None: GEN3C's MoGe, no estimator named),
    whose weights a first offline run does not have. An estimator named (``"moge"`` too,
    another model, a path, a hub id) is the user's choice: it not loading is refused instead."""
    return name_or_path is None


__all__ = ["cached_depth_estimator", "load_depth_estimator", "load_depth_estimator_or_prior"]
