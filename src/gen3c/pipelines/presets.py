"""Speed presets of the gen3c generator (``--speed``): named combinations of the speed settings.

Each preset is data (:class:`SpeedPreset`); a flag given on its own (``--num_steps``,
``--sampler``, …) overrides the preset's value. ``exact`` is GEN3C's sampler as GEN3C runs it
and the default; the others trade fidelity for time, at the costs measured in
docs/benchmarks.md ("Speed presets").
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any

from gen3c.errors import Gen3cInputError, describe_value, shown_value
from gen3c.models import configs
from gen3c.models.choices import StepCacheSpec, check_attention_backend, check_step_cache_guidance
from gen3c.schedulers import SAMPLERS


@dataclass(frozen=True)
class SpeedPreset:
    """The speed settings of one run of the gen3c generator.

    Attributes:
        sampler: a :data:`gen3c.schedulers.SAMPLERS` name.
        num_steps: sampler steps.
        guidance_every: the unconditional branch runs every k-th step (1: every step).
        guidance_batch: both branches in one batch-2 forward (exact up to rounding).
        step_cache: a ``--step_cache`` value (:mod:`gen3c.models.step_cache`), "none" for none.
        attention_backend, fp8_matmul, compile: the DiT's kernels (:mod:`gen3c.models.speed`);
            ``fp8_matmul`` and ``compile`` None: on where they pay — compile when the DiT is
            resident on a CUDA GPU, fp8 matmuls when it is also bf16 on a GPU with fp8 tensor cores
            (:func:`gen3c.pipelines.loading.apply_speed_settings` decides).
    """

    sampler: str = "euler"
    num_steps: int = configs.NUM_STEPS
    guidance_every: int = 1
    guidance_batch: bool = False
    step_cache: str = "none"
    attention_backend: str | None = "auto"
    fp8_matmul: bool | None = False
    compile: bool | None = None

    def check(self) -> SpeedPreset:
        """Raise :class:`Gen3cInputError` for settings that cannot run together; returns self."""
        for name, kinds in _FIELD_TYPES.items():  # (from Python: the command line parses its own)
            value = getattr(self, name)
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                what = " or ".join({type(None): "None", numbers.Integral: "a whole number"}.get(kind, kind.__name__) for kind in kinds)
                raise Gen3cInputError(f"speed setting {name} must be {what}, got {describe_value(value)}")
        if self.sampler not in SAMPLERS:
            raise Gen3cInputError(f"--sampler {shown_value(self.sampler)} is unknown: use one of {', '.join(SAMPLERS)}")
        if int(self.num_steps) != self.num_steps or self.num_steps < 1:
            raise Gen3cInputError(f"--num_steps {self.num_steps} must be a whole number ≥ 1 (GEN3C: 35)")
        if self.num_steps > configs.MAX_NUM_STEPS:  # (10⁸ steps: the sampler's schedule alone filled the memory, minutes in)
            raise Gen3cInputError(f"--num_steps {self.num_steps} is more than the {configs.MAX_NUM_STEPS} steps a run may take (GEN3C: 35): pass fewer")
        if int(self.guidance_every) != self.guidance_every or self.guidance_every < 1:
            raise Gen3cInputError(f"--guidance_every {self.guidance_every} must be a whole number ≥ 1 (1: every step, GEN3C's)")
        if self.attention_backend is not None:
            check_attention_backend(self.attention_backend)
        check_step_cache_guidance(StepCacheSpec.parse(self.step_cache), self.guidance_every, self.guidance_batch)
        return self


#: The types each setting takes (numbers.Integral: numpy's integers too).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "sampler": (str,), "num_steps": (numbers.Integral,), "guidance_every": (numbers.Integral,), "guidance_batch": (bool,),
    "step_cache": (str,), "attention_backend": (str, type(None)), "fp8_matmul": (bool, type(None)), "compile": (bool, type(None)),
}  # fmt: skip

#: The presets; ``exact`` is the default and GEN3C's own sampler on exact kernels. On the
#: shipped small model, fewer Euler steps kept closer to the exact video than any other way of
#: spending the same number of DiT forwards (DPM-Solver++(2M), reused guidance, step caches;
#: docs/benchmarks.md), so the faster presets take fewer steps of GEN3C's own sampler;
#: ``fastest`` also computes in fp8 (GEMMs and attention) where the GPU can.
SPEED_PRESETS: dict[str, SpeedPreset] = {
    "exact": SpeedPreset(),
    "fast": SpeedPreset(num_steps=18),
    "fastest": SpeedPreset(num_steps=8, attention_backend="auto_fp8", fp8_matmul=None),
}


def speed_name(speed: str | None) -> str:
    """The preset ``speed`` names (None: ``exact``), read as ``--step_cache`` is: case and
    surrounding spaces ignored.

    Raises:
        Gen3cInputError: no such preset.
    """
    name = "exact" if speed is None else str(speed).strip().lower()
    if name not in SPEED_PRESETS:
        raise Gen3cInputError(f"--speed {shown_value(speed)} is unknown: use one of {', '.join(SPEED_PRESETS)}")
    return name


def speed_settings(speed: str | None = None, **overrides: Any) -> SpeedPreset:
    """The preset ``speed`` (default ``exact``; :func:`speed_name`) with every non-None
    ``overrides`` value in place of its own, checked."""
    name = speed_name(speed)
    fields = {f.name for f in dataclasses.fields(SpeedPreset)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"not speed settings: {unknown}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(SPEED_PRESETS[name], **given).check()


def forwards_per_video(preset: SpeedPreset, guidance: float = 1.0) -> int:
    """DiT forwards (batch-1 equivalents, before step caching) one chunk costs with ``preset``."""
    steps = preset.num_steps
    if guidance == 0:
        return steps
    return steps + len(range(0, steps, preset.guidance_every))
