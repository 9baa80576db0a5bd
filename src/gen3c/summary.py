"""Short reprs of the objects a script gets back (results, sources, renders): tensors are shown
by shape and dtype, so a notebook cell that ends in ``out`` prints a line, not every pixel.

>>> import torch
>>> from dataclasses import dataclass
>>> @dataclass
... class Result:
...     frames: torch.Tensor
...     fps: float
...     __repr__ = dataclass_repr
>>> Result(torch.zeros(17, 3, 64, 112), 24.0)
Result(frames=tensor(17, 3, 64, 112; float32), fps=24.0)
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
from torch import Tensor


def short_repr(value: object, _open: frozenset[int] = frozenset()) -> str:
    """``value``'s repr with tensors and arrays as their shape and dtype (and a tensor's device
    when it is not the CPU), inside dicts, lists and tuples too (one that holds itself is shown
    as ``{...}`` / ``[...]`` there, as ``repr`` does)."""
    if id(value) in _open:
        return "{...}" if isinstance(value, dict) else "[...]" if isinstance(value, list) else "(...)"
    _open = _open | {id(value)}
    if isinstance(value, Tensor):
        device = "" if value.device.type == "cpu" else f", {value.device}"
        return f"tensor({', '.join(map(str, value.shape))}; {str(value.dtype).removeprefix('torch.')}{device})"
    if isinstance(value, np.ndarray):
        return f"array({', '.join(map(str, value.shape))}; {value.dtype})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key!r}: {short_repr(item, _open)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)) and _holds_arrays(value):
        inner = ", ".join(short_repr(item, _open) for item in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    return repr(value)


def _holds_arrays(value: object, _open: frozenset[int] = frozenset()) -> bool:
    """Whether a tensor or array is in ``value``, a list, tuple or dict, at any depth."""
    if isinstance(value, (Tensor, np.ndarray)):
        return True
    if id(value) in _open:
        return False
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    return any(_holds_arrays(item, _open | {id(value)}) for item in items)


def dataclass_repr(self: object) -> str:
    """A dataclass's repr with its fields by :func:`short_repr` (set ``__repr__ = dataclass_repr``)."""
    shown = ", ".join(f"{f.name}={short_repr(getattr(self, f.name))}" for f in fields(self) if f.repr)
    return f"{type(self).__name__}({shown})"
