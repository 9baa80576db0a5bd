"""The samplers GEN3C's DiT can run with: diffusers' EDM schedulers on GEN3C's noise schedule.

All of them share GEN3C's EDM parametrisation (``model_t2w.py``): Karras σ from 80 to 0.0002
with ρ 7 then a final σ 0, σ_data 0.5, and the DiT's output ``F`` turned into the denoised
estimate ``D = c_skip·x + c_out·F``. So :meth:`gen3c.pipelines.gen3c.Gen3cPipeline.denoise`
drives any of them the same way (``scale_model_input`` → DiT → ``step``), and its first-frame
replacement — an ``F`` whose ``D`` is the clean image latent — means the same to each.

- ``euler`` — ``EDMEulerScheduler``, exactly GEN3C's sampler (first order, one DiT evaluation
  per step);
- ``dpmpp_2m`` — ``EDMDPMSolverMultistepScheduler`` with ``solver_order=2``, ``dpmsolver++``:
  DPM-Solver++(2M) (Lu et al. 2022), second order from the previous step's denoised estimate,
  still one evaluation per step; the first and the last step (to σ 0) are first order, which
  is Euler's step, so 1 or 2 steps sample as ``euler`` does (a note says so). Approximate: it
  follows the same probability-flow ODE as Euler, with a smaller error per step, so fewer steps
  reach a given accuracy.
"""

from __future__ import annotations

from typing import Any

from gen3c.errors import Gen3cInputError, note, shown_value
from gen3c.models import configs

#: Sampler name → (diffusers scheduler class name, its kwargs).
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "euler": ("EDMEulerScheduler", configs.SCHEDULER_GEN3C),
    "dpmpp_2m": (
        "EDMDPMSolverMultistepScheduler",
        {**configs.SCHEDULER_GEN3C, "solver_order": 2, "algorithm_type": "dpmsolver++", "lower_order_final": True},
    ),
}


def make_scheduler(name: str, base_config: dict[str, Any] | None = None):
    """A fresh scheduler for sampler ``name``.

    Args:
        name: a key of :data:`SAMPLERS`.
        base_config: a loaded scheduler's config (its σ range, σ_data, last σ and how it reads
            the model's output are kept, so a checkpoint's own schedule and parametrisation carry
            over); default GEN3C's.
    """
    import diffusers

    if name not in SAMPLERS:
        raise Gen3cInputError(f"unknown sampler {shown_value(name)}: use one of {', '.join(SAMPLERS)}")
    cls_name, kwargs = SAMPLERS[name]
    cls = getattr(diffusers, cls_name)
    kwargs = dict(kwargs)
    if base_config is not None:
        for key in ("sigma_min", "sigma_max", "sigma_data", "rho", "sigma_schedule", "final_sigmas_type", "prediction_type"):
            if key in base_config:
                kwargs[key] = base_config[key]
    return cls(**kwargs)


def sampler_name(scheduler: Any) -> str:
    """The :data:`SAMPLERS` name of a scheduler instance: its class and the settings that make the
    sampler (solver order, algorithm, last step), not its schedule, which a checkpoint's config
    may set (:func:`make_scheduler` keeps it); else its class name."""
    cls_name = type(scheduler).__name__
    for name, (cls, kwargs) in SAMPLERS.items():
        solver = {key: value for key, value in kwargs.items() if key not in configs.SCHEDULER_GEN3C}
        if cls == cls_name and all(getattr(scheduler.config, key, None) == value for key, value in solver.items()):
            return name
    return cls_name


def note_first_order_run(scheduler: Any, num_steps: int, stacklevel: int = 2) -> None:
    """Note a run of a multistep sampler too short for any step above first order: DPM-Solver++(2M)'s
    first step has no previous estimate and its last (to σ 0) is first order, and its first-order
    step is Euler's in GEN3C's parametrisation (``x ← σ'/σ·x + (1 − σ'/σ)·D`` both), so 1 or 2
    steps sample exactly as ``euler`` does (to float rounding)."""
    name, order = sampler_name(scheduler), getattr(scheduler.config, "solver_order", 1)
    if name not in SAMPLERS or name == "euler" or order < 2 or num_steps > order:
        return
    note(
        f"--sampler {name}: a run of {num_steps} step{'s' if num_steps > 1 else ''} samples as euler does "
        f"(its first step and its last, to σ 0, are first order, which is Euler's step): sample {order + 1} steps or more, "
        "or pass --sampler euler",
        stacklevel=stacklevel + 1,
    )
