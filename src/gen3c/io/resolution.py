"""The working resolution as a user writes it: ``"HxW"`` (``704x1280``), without torch, so that the
settings' checks (:mod:`gen3c.pipelines.settings`, :mod:`gen3c.pipelines.options`) read it before
torch is imported."""

from __future__ import annotations

import math
from collections.abc import Callable

from gen3c.errors import Gen3cInputError, quoted

#: The sizes :func:`parse_resolution` takes: (height, width) at least and at most, and their stride.
MIN_SIZE, MAX_SIZE, STRIDE = (16, 16), (4320, 7680), 8


def parse_resolution(text: str, model_check: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Parse ``"HxW"`` (e.g. ``704x1280``) into (H, W), multiples of 8 (the tokenizer's stride).

    ``model_check``: the check of the model the size is for, where it is known
    (:func:`gen3c.models.configs.check_model_frame_size`: GEN3C's multiples of 16, its largest
    size), run first, so that a size it cannot take is refused with sizes it can, in one step
    (not the tokenizer's multiples of 8, which it then refuses in turn)."""
    try:
        h, w = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise Gen3cInputError(f"--resolution {quoted(text, 40)} is not of the form HEIGHTxWIDTH, e.g. 704x1280") from None
    if model_check is not None:
        model_check(h, w)
    fits = f"pass --resolution {fitting_sizes(h, w, STRIDE, MAX_SIZE, MIN_SIZE)}"
    if not (MIN_SIZE[0] <= h <= MAX_SIZE[0] and MIN_SIZE[1] <= w <= MAX_SIZE[1]):
        raise Gen3cInputError(
            f"--resolution {quoted(text, 40)} is out of range: the height must be {MIN_SIZE[0]} … {MAX_SIZE[0]} and the width "
            f"{MIN_SIZE[1]} … {MAX_SIZE[1]}, multiples of {STRIDE}: {fits}"
        )
    if h % STRIDE or w % STRIDE:
        raise Gen3cInputError(f"--resolution {quoted(text, 40)}: the height and width must be multiples of {STRIDE} (the tokenizer's stride): {fits}")
    return h, w


def fitting_sizes(height: int, width: int, multiple: int, max_size: tuple[int, int], min_size: tuple[int, int] = (1, 1)) -> str:
    """The sizes nearest ``height`` × ``width`` whose sides are multiples of ``multiple`` within
    ``min_size`` … ``max_size``, as a refusal offers them: ``"'64x112' or '72x120'"`` (each side
    rounded down, then up), of the same aspect ratio where the size is too large (``"'352x640'"``).
    Quoted, so that each reads as a value on every surface (:mod:`gen3c.pipelines.spelling`)."""
    lo = [math.ceil(v / multiple) * multiple for v in min_size]
    hi = [v // multiple * multiple for v in max_size]
    scale = min([1.0] + [top / v for top, v in zip(max_size, (height, width), strict=True) if v > top])
    sides = [v * scale for v in (height, width)]
    down = tuple(min(max(math.floor(v / multiple) * multiple, a), b) for v, a, b in zip(sides, lo, hi, strict=True))
    up = tuple(min(max(math.ceil(v / multiple) * multiple, a), b) for v, a, b in zip(sides, lo, hi, strict=True))
    return " or ".join(dict.fromkeys(f"'{h}x{w}'" for h, w in (down, up)))
