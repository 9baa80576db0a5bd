"""The names a depth estimator goes by, and the check that refuses a mistyped one.

Kept here without torch, so that a run's settings (:func:`gen3c.pipelines.settings.check_request`,
which ``gen3c generate`` runs before torch is imported) and batch planning refuse ``mogee`` before
anything loads; the loaders (:mod:`gen3c.depth.moge`, :mod:`gen3c.depth.prior`,
:mod:`gen3c.depth.hf`, :func:`gen3c.depth.load_depth_estimator`) read the same names.
"""

from __future__ import annotations

import difflib
import os
import re

from gen3c.errors import Gen3cInputError, describe_value, quoted, quoted_path
from gen3c.io.paths import CHECKPOINT_SUFFIXES as CHECKPOINT_SUFFIXES
from gen3c.io.paths import exists, looks_like_path

DEFAULT_DEPTH_ESTIMATOR = "moge"
#: Short names of GEN3C's MoGe (:data:`gen3c.depth.moge.MOGE_DEFAULT_REPO`), taken before any file of that name.
MOGE_NAMES = ("moge", "moge-v1", "moge-vitl")
PRIOR_NAME = "prior"
#: Short names of the transformers depth models (:mod:`gen3c.depth.hf`).
HF_ALIASES = {
    "depth_pro": "apple/DepthPro-hf",
    "depth-pro": "apple/DepthPro-hf",
    "depth_anything_v2": "depth-anything/Depth-Anything-V2-Large-hf",
    "depth-anything-v2": "depth-anything/Depth-Anything-V2-Large-hf",
    "zoedepth": "Intel/zoedepth-nyu-kitti",
}
#: The names :func:`gen3c.depth.load_depth_estimator` takes besides hub ids and paths.
ESTIMATOR_NAMES = (*MOGE_NAMES, PRIOR_NAME, *HF_ALIASES)
#: A Hugging Face repository id, "owner/name": letters, digits, '-', '_' and '.'.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def check_estimator_name(name: str, what: str = "depth estimator") -> None:
    """Refuse a depth estimator name that can only be a mistake: none of
    :data:`ESTIMATOR_NAMES`, no existing file or folder, and no hub id ("owner/name").

    Unlike weights that cannot be fetched (offline: the preview falls back to the prior), a typo
    is no reason to run on made-up depth, so it is a :class:`~gen3c.errors.Gen3cInputError`,
    not a :class:`~gen3c.errors.Gen3cModelError`. ``what`` names the setting in the message
    (``--depth_estimator`` for a run's).
    """
    aliases = dict.fromkeys(k.replace("-", "_") for k in HF_ALIASES)
    choices = f"pass {', '.join(('moge', PRIOR_NAME, *aliases))}, a hub id OWNER/NAME or a local model.pt or model folder"
    if isinstance(name, os.PathLike):  # a pathlib.Path of a model: its text
        name = os.fspath(name)
    if not isinstance(name, str):  # (None or a number was "'NoneType' object has no attribute 'lower'"; the loader's str() made it the name 'None')
        raise Gen3cInputError(f"{what} is {describe_value(name)}: {choices}")
    if name and (name.lower() in (*MOGE_NAMES, PRIOR_NAME) or name in HF_ALIASES or exists(name)):  # as the loaders match them
        return
    path = looks_like_path(name)
    if name and not path and HUB_ID.fullmatch(name):
        return
    if not name:
        raise Gen3cInputError(f"{what} is empty: {choices}")
    if path:
        raise Gen3cInputError(f"{what} path {quoted_path(name)} does not exist: check the path, or {choices}")
    close = difflib.get_close_matches(name.lower(), ESTIMATOR_NAMES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise Gen3cInputError(f"{what} {quoted(name, 200)} is unknown{hint}: {choices}")


__all__ = [
    "CHECKPOINT_SUFFIXES",
    "DEFAULT_DEPTH_ESTIMATOR",
    "ESTIMATOR_NAMES",
    "HF_ALIASES",
    "HUB_ID",
    "MOGE_NAMES",
    "PRIOR_NAME",
    "check_estimator_name",
]
