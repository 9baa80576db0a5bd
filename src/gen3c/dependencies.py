"""Third-party packages a feature needs: imported (or checked) where that feature starts, and
named with the ``pip install`` that fixes their absence in one line
(:class:`~gen3c.errors.Gen3cDependencyError`, exit code 2 on the command line).
"""

from __future__ import annotations

import importlib
import importlib.util
import traceback
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from gen3c.errors import Gen3cDependencyError, first_line, note

#: Import name → (the distribution that installs it, as pyproject.toml spells it; the gen3c extra a
#: missing-package error suggests, None for a dependency of gen3c itself, named with its
#: requirement). Which packages each extra installs, and at which versions, is gen3c's metadata
#: (:func:`declared_extras`); tests/test_packaging.py checks that these distributions are exactly
#: pyproject's.
PACKAGES: dict[str, tuple[str, str | None]] = {
    "numpy": ("numpy", None),
    "torch": ("torch", None),
    "PIL": ("pillow", None),
    "cv2": ("opencv-python-headless", None),
    "imageio_ffmpeg": ("imageio-ffmpeg", None),
    "av": ("av", None),
    "typer": ("typer", None),
    "rich": ("rich", None),
    "plyfile": ("plyfile", None),
    "safetensors": ("safetensors", None),
    "packaging": ("packaging", None),
    "psutil": ("psutil", None),
    "diffusers": ("diffusers", "diffusion"),
    "transformers": ("transformers", "diffusion"),
    "accelerate": ("accelerate", "diffusion"),
    "huggingface_hub": ("huggingface_hub", "diffusion"),
    "filelock": ("filelock", "diffusion"),
    "sentencepiece": ("sentencepiece", "diffusion"),
    "tokenizers": ("tokenizers", "diffusion"),
    "torchvision": ("torchvision", "diffusion"),
    "scipy": ("scipy", "depth"),
    "OpenEXR": ("OpenEXR", "exr"),
    "pillow_heif": ("pillow-heif", "heic"),
    "viser": ("viser", "gui"),
    "flash_attn": ("flash-attn-4", "fast"),
    "cudnn": ("nvidia-cudnn-frontend", "fast"),
    "peft": ("peft", "train"),
    "tensorboard": ("tensorboard", "train"),
    "ray": ("ray", "batch"),
    "matplotlib": ("matplotlib", "eval"),
    "pytest": ("pytest", "test"),
    "xdist": ("pytest-xdist", "test"),
    "hypothesis": ("hypothesis", "test"),
    "playwright": ("playwright", "test"),
    "skimage": ("scikit-image", "test"),
}

#: The extra :func:`declared_extras` files gen3c's own dependencies under.
CORE = "core"
#: What stands for gen3c's extras where its metadata cannot be read.
NOT_INSTALLED = "unknown (gen3c is not installed: pip install -e .)"

#: What the gen3c generator imports as it loads and samples (diffusers' Cosmos models need
#: transformers, accelerate and torchvision, the last one only once sampling starts).
DIFFUSION_MODULES = ("diffusers", "transformers", "accelerate", "huggingface_hub", "tokenizers", "torchvision", "filelock")


def distribution(module: str) -> str:
    """The distribution (what ``pip install`` names) of ``module``, a :data:`PACKAGES` key."""
    return PACKAGES[module][0]


def module_of(distribution: str) -> str | None:
    """The :data:`PACKAGES` key installed by ``distribution`` (any spelling pip accepts), or None."""
    from packaging.utils import canonicalize_name

    wanted = canonicalize_name(distribution)
    return next((module for module, (name, _) in PACKAGES.items() if canonicalize_name(name) == wanted), None)


def gen3c_metadata() -> tuple[list[str], list[str]] | None:
    """gen3c's installed metadata: its extras (``Provides-Extra``) and requirements
    (``Requires-Dist``, an extra's marked ``extra == "NAME"``), as pyproject.toml declared them
    when gen3c was installed; None where it is not installed (a source tree on the path)."""
    from importlib import metadata

    try:
        found = metadata.metadata("gen3c")
    except metadata.PackageNotFoundError:
        return None
    return found.get_all("Provides-Extra") or [], found.get_all("Requires-Dist") or []


def declared_extras() -> dict[str, dict[str, Any]] | None:
    """What each gen3c extra installs, from :func:`gen3c_metadata` (None where that is missing).

    Returns:
        :data:`CORE` (gen3c's own dependencies), then each extra in pyproject's order → ``includes``:
        the extras it names (``gen3c[diffusion]`` in ``train``), and ``requirements``: every
        requirement it installs, those of the extras it includes too, as strings
        (``transformers>=4.56``); a distribution required twice has both specifiers
        (``transformers>=4.45,>=4.56`` where two extras' floors differ). Requirements whose markers exclude this
        machine are left out, as pip leaves them.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    declared = gen3c_metadata()
    if declared is None:
        return None
    names, lines = declared
    requirements = [Requirement(line) for line in lines]

    def applies(requirement: Requirement, extra: str) -> bool:
        return requirement.marker is None or requirement.marker.evaluate({"extra": extra})

    core = [r for r in requirements if applies(r, "")]
    direct = {extra: [r for r in requirements if not applies(r, "") and applies(r, extra)] for extra in names}

    def collect(extra: str, seen: set[str]) -> list[Requirement]:
        """``extra``'s requirements, its self-references replaced by theirs."""
        seen.add(extra)
        out = []
        for requirement in direct.get(extra, []):
            if canonicalize_name(requirement.name) != "gen3c":
                out.append(requirement)
                continue
            for included in sorted(requirement.extras - seen):
                out += collect(included, seen)
        return out

    def merged(found: list[Requirement]) -> list[str]:
        """One requirement per distribution, in first-seen order, the specifiers of all of them."""
        by_name: dict[str, Requirement] = {}
        for requirement in found:
            key = canonicalize_name(requirement.name)
            if key in by_name:
                by_name[key].specifier &= requirement.specifier
            else:
                by_name[key] = Requirement(f"{requirement.name}{requirement.specifier}")
        return [str(r) for r in by_name.values()]

    out: dict[str, dict[str, Any]] = {CORE: {"includes": [], "requirements": merged(core)}}
    for extra in names:
        includes = sorted({e for r in direct[extra] if canonicalize_name(r.name) == "gen3c" for e in r.extras})
        out[extra] = {"includes": includes, "requirements": merged(collect(extra, set()))}
    return out


def requirement(module: str, extra: str | None = None) -> str:
    """``module``'s requirement (a :data:`PACKAGES` key) as gen3c's metadata declares it for
    ``extra`` (None: gen3c's own dependencies), or its bare distribution where none is declared."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    extras = declared_extras() or {}
    wanted = canonicalize_name(distribution(module))
    for line in extras.get(extra or CORE, {}).get("requirements", []):
        if canonicalize_name(Requirement(line).name) == wanted:
            return line
    return distribution(module)


def missing_error(module: str, needed_for: str, extra: str | None = None) -> Gen3cDependencyError:
    """The error for ``module`` (a :data:`PACKAGES` key) not being installed; ``extra`` overrides
    the extra that installs it (transformers: ``depth`` for the depth estimators)."""
    extra = extra or PACKAGES[module][1]
    fix = f"'gen3c[{extra}]'" if extra else f"'{requirement(module)}'"
    return Gen3cDependencyError(f"{needed_for} needs {distribution(module)} ({module} is missing): pip install {fix}")


def dependency_error(exc: BaseException, needed_for: str, extra: str | None = None) -> Gen3cDependencyError | None:
    """The one-line error for ``exc`` when it is an ImportError of a :data:`PACKAGES` module (also
    as the cause of diffusers' lazy-import ``RuntimeError``), else None. An installed package
    that fails to import (a broken or too old install) is named with a reinstall.

    An ImportError of a module gen3c does not know (transformers without its ``regex``) names the
    known package whose code imported it, the innermost in the traceback, with a reinstall too:
    that restores the package's own dependencies, missing or broken alike, where ``pip install``
    of the missing module would need its distribution's name (``yaml`` is PyYAML).
    """
    chain: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in chain):
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    failed = [link for link in chain if isinstance(link, ImportError) and link.name]
    for link in failed:  # the first ImportError of a known package in the chain
        module = link.name.partition(".")[0]
        if module in PACKAGES:
            if isinstance(link, ModuleNotFoundError) and not installed(module):
                return missing_error(module, needed_for, extra)
            return _broken_error(module, link, needed_for, extra)
    for link in failed:  # one of a known package's own dependencies (not a gen3c module: our bug)
        importer = _importing_package(link)
        if importer is not None and link.name.partition(".")[0] != "gen3c":
            return _broken_error(importer, link, needed_for, extra)
    for link in chain:  # another error as a known package is imported: a broken install, or versions that do not match
        module = None if isinstance(link, ImportError) else _failed_import(link)
        if module is not None:
            return _broken_error(module, link, needed_for, extra)
    return None


def _gen3c_frame(frame) -> bool:
    """Whether ``frame`` runs gen3c's own code (not its import hook, :func:`gen3c.cli.imports_without_collection`)."""
    name = str(frame.f_globals.get("__name__", ""))
    return name.partition(".")[0] == "gen3c" and not (name == "gen3c.cli" and frame.f_code.co_name == "import_paused")


def _failed_import(exc: BaseException) -> str | None:
    """The :data:`PACKAGES` module whose import raised ``exc`` (an AttributeError of a transformers
    built for another torch, say): the innermost known package whose module body is running in
    ``exc``'s traceback, with no gen3c code run inside it (gen3c's bug, not theirs); None where no
    known package was being imported (an error of one at run time is no broken install)."""
    importing = None
    for frame, _ in traceback.walk_tb(exc.__traceback__):  # outermost first
        module = str(frame.f_globals.get("__name__", "")).partition(".")[0]
        if _gen3c_frame(frame):
            importing = None
        elif module in PACKAGES and frame.f_code.co_name == "<module>":
            importing = module
    return importing


def _importing_package(exc: ImportError) -> str | None:
    """The :data:`PACKAGES` module whose code raised ``exc``: the innermost frame of its
    traceback that belongs to one, past importlib's, gen3c's import hook's
    (:func:`gen3c.cli.imports_without_collection`) and those of packages gen3c does not know; None
    where gen3c's own code comes first (its import, called from torch's ``Module.__call__`` or
    diffusers' loading, is gen3c's bug, not theirs)."""
    for frame, _ in reversed(list(traceback.walk_tb(exc.__traceback__))):
        module = str(frame.f_globals.get("__name__", "")).partition(".")[0]
        if module in PACKAGES:
            return module
        if _gen3c_frame(frame):
            return None
    return None


def _broken_error(module: str, exc: BaseException, needed_for: str, extra: str | None = None) -> Gen3cDependencyError:
    """An installed package that fails to import: a broken install, one too old for our imports,
    or (an error other than ImportError) one built for other versions of the packages it imports."""
    version = _installed_version(distribution(module))
    which = "which" if version is None else f"whose installed {version}"
    if isinstance(exc, ImportError):
        what, versions = first_line(exc), ""
    else:  # the type says more than the message alone ("has no attribute …")
        what, versions = f"{type(exc).__name__}: {first_line(exc)}", " (`pip check` names installed versions that do not match)"
    return Gen3cDependencyError(
        f"{needed_for} needs {distribution(module)}, {which} fails to import ({what}): "
        f"pip install --force-reinstall '{requirement(module, extra or PACKAGES[module][1])}'{versions}"
    )


def _installed_version(dist: str) -> str | None:
    """The version of distribution ``dist`` as its metadata says, None where there is none."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except (metadata.PackageNotFoundError, ValueError):
        return None


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
    except Exception as exc:  # ImportError, diffusers' lazy imports' RuntimeError, a broken install's AttributeError & co.
        error = dependency_error(exc, needed_for, extra)
        top = module.partition(".")[0]
        if error is None and isinstance(exc, ImportError) and top in PACKAGES:  # it fails to import for a reason of its own (a missing library, say)
            error = _broken_error(top, exc, needed_for, extra)
        if error is None:
            raise
        raise error from None


def optional(module: str, left_out: str) -> ModuleType | None:
    """Import ``module``, a package gen3c uses where it is installed and goes without otherwise
    (ipywidgets for notebook bars), or None. Missing: None, silently, as documented. Installed
    but failing to import (a broken install, or one built for other versions): None too, said in
    a note (``left_out``: what goes without it) naming it, its version, the error and the
    reinstall, since who installed it expects it used, but a traceback would stop a run over
    an extra."""
    top = module.partition(".")[0]
    try:
        return importlib.import_module(module)
    except Exception as exc:  # ImportError, or anything a broken install raises as it is imported
        if not installed(top):
            return None
        dist = distribution(top) if top in PACKAGES else top
        version = _installed_version(dist)
        which = dist if version is None else f"{dist} {version}"
        fix = requirement(top, PACKAGES[top][1]) if top in PACKAGES else dist
        note(f"{left_out}: {which} fails to import ({type(exc).__name__}: {first_line(exc)}): pip install --force-reinstall '{fix}'")
        return None


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
