"""gen3c: camera-controlled video generation guided by a 3D cache (GEN3C, CVPR 2025).

The short path (the diffusion parts load on first use, so ``import gen3c`` stays light)::

    import gen3c
    out = gen3c.generate("photo.png", trajectory="left", movement_distance=0.3)   # writes outputs/photo.mp4
    pipe = gen3c.Gen3cPipeline.from_pretrained("nvidia/Gen3C-Cosmos-7B")          # the diffusers pipeline
"""

from __future__ import annotations

from typing import Any

from gen3c.errors import Gen3cInputError, Gen3cModelError

__version__ = "0.1.0"

#: Names imported on first use: they need the diffusion extra (diffusers, transformers).
_LAZY = {
    "Gen3cPipeline": ("gen3c.pipelines.gen3c", "Gen3cPipeline"),
    "generate": ("gen3c.pipelines.request", "generate"),
}

__all__ = ["Gen3cInputError", "Gen3cModelError", "Gen3cPipeline", "__version__", "generate"]


def __dir__() -> list[str]:
    # The lazy names too, so tab completion and dir(gen3c) show what __all__ promises.
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'gen3c' has no attribute {name!r}")
    from gen3c.dependencies import require
    from gen3c.errors import Gen3cDependencyError, Gen3cImportError

    module, attribute = _LAZY[name]
    try:  # without the diffusion extra: one line naming the pip install, not diffusers' ModuleNotFoundError
        value = getattr(require(module, f"gen3c.{name}"), attribute)
    except Gen3cDependencyError as exc:  # still an ImportError, as `try: from gen3c import Gen3cPipeline` expects
        raise Gen3cImportError(str(exc)) from None
    globals()[name] = value
    return value
