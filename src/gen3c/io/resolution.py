"""The working resolution as a user writes it: ``"HxW"`` (``704x1280``), without torch, so that the
settings' checks (:mod:`gen3c.pipelines.settings`, :mod:`gen3c.pipelines.options`) read it before
torch is imported."""

from __future__ import annotations

from gen3c.errors import Gen3cInputError


def parse_resolution(text: str) -> tuple[int, int]:
    """Parse ``"HxW"`` (e.g. ``704x1280``) into (H, W), multiples of 8 (the tokenizer's stride)."""
    try:
        h, w = (int(v) for v in text.lower().replace("×", "x").split("x"))
    except ValueError:
        raise Gen3cInputError(f"resolution {text!r} is not of the form HEIGHTxWIDTH, e.g. 704x1280") from None
    if h < 16 or w < 16 or h > 4320 or w > 7680 or h % 8 or w % 8:
        raise Gen3cInputError(
            f"resolution {text!r} is out of range: height and width must be multiples of 8, the height 16 … 4320 and the width 16 … 7680"
        )
    return h, w
