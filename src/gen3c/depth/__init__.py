"""Depth and intrinsics from a single image: one interface over MoGe (GEN3C's default), the
transformers depth models, a zero-download geometric prior, and the user's own depth.

>>> from gen3c.depth import load_depth_estimator, median_depth   # doctest: +SKIP
>>> estimator = load_depth_estimator("moge")                      # doctest: +SKIP
>>> est = estimator.estimate(image, size=(704, 1280))             # doctest: +SKIP
>>> est.depth.shape, est.intrinsics, est.kind, median_depth(est)  # doctest: +SKIP

See :mod:`gen3c.depth.base` for the conventions of :class:`DepthEstimate`.
"""

from __future__ import annotations

import difflib
import functools
import re
from pathlib import Path

import torch

from gen3c.depth.base import (
    DEFAULT_FOV_DEGREES,
    DEPTH_KINDS,
    DepthEstimate,
    DepthEstimator,
    camera_for,
    median_depth,
)
from gen3c.depth.hf import HF_ALIASES
from gen3c.depth.moge import (
    CHECKPOINT_SUFFIXES,
    GEN3C_MOGE_SIZE,
    GEN3C_WORKING_SIZE,
    MOGE_DEFAULT_REPO,
    MOGE_NAMES,
    MoGeEstimator,
    gen3c_moge_postprocess,
    is_moge_name,
    recover_focal_shift,
)
from gen3c.depth.prior import PRIOR_NAME, GeometricPriorEstimator, prior_notice
from gen3c.depth.user import load_user_depth
from gen3c.errors import Gen3cDependencyError, Gen3cInputError, Gen3cModelError
from gen3c.io.images import image_to_tensor, image_to_uint8
from gen3c.io.intrinsics import parse_intrinsics

DEFAULT_DEPTH_ESTIMATOR = "moge"
#: The names :func:`load_depth_estimator` takes besides hub ids and paths.
ESTIMATOR_NAMES = (*MOGE_NAMES, PRIOR_NAME, *HF_ALIASES)
# A Hugging Face repository id, "owner/name": letters, digits, '-', '_' and '.'.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


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
    name = str(name_or_path).strip()
    check_estimator_name(name)
    if name.lower() == PRIOR_NAME:
        return GeometricPriorEstimator(**options)
    if is_moge_name(name):
        return MoGeEstimator(name, device=device, dtype=dtype, **options)
    p = Path(name).expanduser()
    if p.exists() and not (p.is_dir() and (p / "config.json").is_file()):
        raise Gen3cModelError(
            f"depth estimator {name!r} is neither a MoGe model.pt nor a transformers folder with config.json: check the path"
        )
    from gen3c.depth.hf import TransformersDepthEstimator

    return TransformersDepthEstimator(name, device=device, dtype=dtype, **options)


def check_estimator_name(name: str) -> None:
    """Refuse a depth estimator name that can only be a mistake: none of
    :data:`ESTIMATOR_NAMES`, no existing file or folder, and no hub id ("owner/name").

    Unlike weights that cannot be fetched (offline: the preview falls back to the prior), a typo
    is no reason to run on made-up depth, so it is a :class:`~gen3c.errors.Gen3cInputError`,
    not a :class:`~gen3c.errors.Gen3cModelError`.
    """
    p = Path(name).expanduser()
    if name and (name.lower() in (*MOGE_NAMES, PRIOR_NAME) or name in HF_ALIASES or p.exists()):  # as the loaders match them
        return
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or p.suffix.lower() in CHECKPOINT_SUFFIXES
    if name and not looks_like_path and _HUB_ID.fullmatch(name):
        return
    aliases = dict.fromkeys(k.replace("-", "_") for k in HF_ALIASES)
    choices = f"pass {', '.join(('moge', PRIOR_NAME, *aliases))}, a hub id OWNER/NAME or a local model.pt or model folder"
    if not name:
        raise Gen3cInputError(f"the depth estimator name is empty: {choices}")
    if looks_like_path:
        raise Gen3cInputError(f"depth estimator path {name!r} does not exist: check the path, or {choices}")
    close = difflib.get_close_matches(name.lower(), ESTIMATOR_NAMES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise Gen3cInputError(f"depth estimator {name!r} is unknown{hint}: {choices}")


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
    name_or_path: str = DEFAULT_DEPTH_ESTIMATOR,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    **options,
) -> tuple[DepthEstimator, str | None]:
    """:func:`load_depth_estimator`, falling back to the geometric prior when loading fails.

    Returns:
        ``(estimator, notice)``: ``notice`` is None on success, else the line to show the user
        (:func:`~gen3c.depth.prior.prior_notice`: what failed, that the prior is used, how to
        get real depth).
    """
    try:
        return load_depth_estimator(name_or_path, device=device, dtype=dtype, **options), None
    except Gen3cModelError as exc:
        return GeometricPriorEstimator(), prior_notice(str(exc))


__all__ = [
    "DEFAULT_DEPTH_ESTIMATOR",
    "DEFAULT_FOV_DEGREES",
    "DEPTH_KINDS",
    "ESTIMATOR_NAMES",
    "GEN3C_MOGE_SIZE",
    "GEN3C_WORKING_SIZE",
    "MOGE_DEFAULT_REPO",
    "DepthEstimate",
    "DepthEstimator",
    "GeometricPriorEstimator",
    "MoGeEstimator",
    "cached_depth_estimator",
    "check_estimator_name",
    "camera_for",
    "gen3c_moge_postprocess",
    "image_to_tensor",
    "image_to_uint8",
    "load_depth_estimator",
    "load_depth_estimator_or_prior",
    "load_user_depth",
    "median_depth",
    "parse_intrinsics",
    "prior_notice",
    "recover_focal_shift",
]
