"""Third-party packages a feature needs: imported (or checked) where that feature starts, and
named with the ``pip install`` that fixes their absence in one line
(:class:`~gen3c.errors.Gen3cDependencyError`, exit code 2 on the command line).

torch and numpy are left out: nothing of gen3c imports without them.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from types import ModuleType

from gen3c.errors import Gen3cDependencyError, first_line

#: Import name → (the requirement as pyproject.toml writes it, the gen3c extra that installs it;
#: None for a dependency of gen3c itself). tests/test_packaging.py checks these against pyproject.
PACKAGES: dict[str, tuple[str, str | None]] = {
    "av": ("av>=12", None),
    "imageio_ffmpeg": ("imageio-ffmpeg>=0.5", None),
    "cv2": ("opencv-python-headless>=4.8", None),
    "PIL": ("pillow>=10", None),
    "plyfile": ("plyfile>=1.0", None),
    "safetensors": ("safetensors>=0.4", None),
    "diffusers": ("diffusers>=0.42", "diffusion"),
    "transformers": ("transformers>=4.45", "diffusion"),
    "accelerate": ("accelerate>=0.34", "diffusion"),
    "huggingface_hub": ("huggingface_hub>=0.34", "diffusion"),
    "filelock": ("filelock>=3.12", "diffusion"),
    "psutil": ("psutil>=5.9", "diffusion"),
    "sentencepiece": ("sentencepiece", "diffusion"),
    "tokenizers": ("tokenizers>=0.19", "diffusion"),
    "torchvision": ("torchvision", "diffusion"),
    "scipy": ("scipy>=1.10", "depth"),
    "OpenEXR": ("OpenEXR>=3.2", "exr"),
    "viser": ("viser>=1.1", "gui"),
    "peft": ("peft>=0.17", "train"),
    "tensorboard": ("tensorboard>=2.14", "train"),
    "ray": ("ray>=2.9", "batch"),
    "matplotlib": ("matplotlib>=3.7", "eval"),
    "flash_attn": ("flash-attn-4>=4.0.0b40", "fast"),
    "cudnn": ("nvidia-cudnn-frontend>=1.32", "fast"),
}

#: What the gen3c generator imports as it loads and samples (diffusers' Cosmos models need
#: transformers, accelerate and torchvision, the last one only once sampling starts).
DIFFUSION_MODULES = ("diffusers", "transformers", "accelerate", "huggingface_hub", "tokenizers", "torchvision", "filelock", "psutil")


def distribution(module: str) -> str:
    """The distribution (what ``pip install`` names) of ``module``, a :data:`PACKAGES` key."""
    requirement = PACKAGES[module][0]
    return requirement.split(">")[0].split("=")[0]


def missing_error(module: str, needed_for: str, extra: str | None = None) -> Gen3cDependencyError:
    """The error for ``module`` (a :data:`PACKAGES` key) not being installed; ``extra`` overrides
    the extra that installs it (transformers: ``depth`` for the depth estimators)."""
    requirement, default_extra = PACKAGES[module]
    extra = extra or default_extra
    fix = f"'gen3c[{extra}]'" if extra else f"'{requirement}'"
    return Gen3cDependencyError(f"{needed_for} needs {distribution(module)} ({module} is missing): pip install {fix}")


def dependency_error(exc: BaseException, needed_for: str, extra: str | None = None) -> Gen3cDependencyError | None:
    """The one-line error for ``exc`` when it is an ImportError of a :data:`PACKAGES` module (also
    as the cause of diffusers' lazy-import ``RuntimeError``), else None. An installed package
    that fails to import (a broken or too old install) is named with a reinstall."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:  # the first ImportError of a known package in the chain
        seen.add(id(exc))
        if isinstance(exc, ImportError) and (exc.name or "").partition(".")[0] in PACKAGES:
            break
        exc = exc.__cause__ or exc.__context__
    else:
        return None
    module = exc.name.partition(".")[0]
    if isinstance(exc, ModuleNotFoundError) and not installed(module):
        return missing_error(module, needed_for, extra)
    return _broken_error(module, exc, needed_for)


def _broken_error(module: str, exc: BaseException, needed_for: str) -> Gen3cDependencyError:
    """An installed package that fails to import: a broken install, or one too old for our imports."""
    return Gen3cDependencyError(
        f"{needed_for} needs {distribution(module)}, which fails to import ({first_line(exc)}): "
        f"pip install --force-reinstall '{PACKAGES[module][0]}'"
    )


def installed(module: str) -> bool:
    """Whether ``module`` can be found, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: in sys.modules without a spec
        return False


def require(module: str, needed_for: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` (a :data:`PACKAGES` package or a module of one; or a gen3c module that
    imports them), or raise one line naming ``needed_for``, the package and the ``pip install``
    that fixes it.

    Raises:
        Gen3cDependencyError: the package (or one it imports) is missing or fails to import.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        error = dependency_error(exc, needed_for, extra)
        top = module.partition(".")[0]
        if error is None and top in PACKAGES:  # it fails to import for a reason of its own (a missing library, say)
            error = _broken_error(top, exc, needed_for)
        if error is None:
            raise
        raise error from None


def check_installed(modules: Iterable[str], needed_for: str, extra: str | None = None) -> None:
    """Refuse a run up front when one of ``modules`` is not installed (nothing is imported, so
    this costs milliseconds; an installed package that fails to import is named where it is
    imported, by :func:`require` or the command line's catch of :func:`dependency_error`).

    Raises:
        Gen3cDependencyError: for the first module missing.
    """
    for module in modules:
        if not installed(module):
            raise missing_error(module, needed_for, extra)
