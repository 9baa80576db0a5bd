"""Depth and intrinsics from a single image: one interface over MoGe (GEN3C's default), the
transformers depth models, a zero-download geometric prior, and the user's own depth.

>>> from gen3c.depth import load_depth_estimator, median_depth   # doctest: +SKIP
>>> estimator = load_depth_estimator("moge")                      # doctest: +SKIP
>>> est = estimator.estimate(image, size=(704, 1280))             # doctest: +SKIP
>>> est.depth.shape, est.intrinsics, est.kind, median_depth(est)  # doctest: +SKIP

See :mod:`gen3c.depth.base` for the conventions of :class:`DepthEstimate`. The names of the
estimators and :func:`check_estimator_name` import no torch (:mod:`gen3c.depth.names`), so a run's
settings are checked before torch is; the rest loads on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from gen3c.depth.names import DEFAULT_DEPTH_ESTIMATOR, ESTIMATOR_NAMES, check_estimator_name

#: Names imported on first use (they need torch): name → its module.
_LAZY = {
    "DEFAULT_FOV_DEGREES": "gen3c.depth.base",
    "DEPTH_KINDS": "gen3c.depth.base",
    "DepthEstimate": "gen3c.depth.base",
    "DepthEstimator": "gen3c.depth.base",
    "camera_for": "gen3c.depth.base",
    "median_depth": "gen3c.depth.base",
    "GEN3C_MOGE_SIZE": "gen3c.depth.moge",
    "GEN3C_WORKING_SIZE": "gen3c.depth.moge",
    "MOGE_DEFAULT_REPO": "gen3c.depth.moge",
    "MoGeEstimator": "gen3c.depth.moge",
    "gen3c_moge_postprocess": "gen3c.depth.moge",
    "recover_focal_shift": "gen3c.depth.moge",
    "GeometricPriorEstimator": "gen3c.depth.prior",
    "prior_notice": "gen3c.depth.prior",
    "load_user_depth": "gen3c.depth.user",
    "image_to_tensor": "gen3c.io.images",
    "image_to_uint8": "gen3c.io.images",
    "parse_intrinsics": "gen3c.io.intrinsics",
    "cached_depth_estimator": "gen3c.depth.loading",
    "load_depth_estimator": "gen3c.depth.loading",
    "load_depth_estimator_or_prior": "gen3c.depth.loading",
}


def __dir__() -> list[str]:
    # The lazy names too, so tab completion and dir(gen3c.depth) show what __all__ promises.
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'gen3c.depth' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


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
