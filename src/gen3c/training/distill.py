"""Distilling GEN3C into a few-step student: guidance distillation, then progressive distillation.

Everything here is the sampler's own arithmetic (:meth:`gen3c.pipelines.gen3c.Gen3cPipeline.denoise`:
EDM Euler on the Karras grid of ``EDMEulerScheduler``, GEN3C's first-frame replacement), batched
over clips with one σ per clip, so a target is exactly what the teacher's sampler would compute:

- :func:`denoised` — the sampler's denoised estimate ``D(x, σ)`` at one step: on the conditioned
  latent frame the state is the clean latent with condition-augmentation noise (rescaled to σ)
  and ``D`` is the clean latent, as long as σ is above the augmentation σ (0.001); the DiT sees
  ``[c_in·x | indicator | 64 buffer channels]``; with guidance g the output is
  ``F = F_cond + g·(F_cond − F_uncond)`` (the unconditional branch: zeroed buffers and the
  negative prompt, as GEN3C);
- :func:`euler_step` — ``x' = x + (σ' − σ)·(x − D)/σ`` (``EDMEulerScheduler.step``);
- **guidance distillation** (Meng et al. 2023, "On distillation of guided diffusion models",
  stage one): the student's single conditional forward learns the teacher's guided ``D`` at the
  same ``(x_σ, σ, conditions)``, σ drawn from the teacher's sampling grid
  (:func:`guidance_target`);
- **progressive distillation** (Salimans & Ho 2022) in EDM terms: one student Euler step from
  σ_a to σ_c must land where two teacher Euler steps σ_a → σ_b → σ_c land, x_c. The Euler step's
  ``D`` that does so is ``D̃ = x_a − σ_a·(x_c − x_a)/(σ_c − σ_a)`` (``x_c`` itself when σ_c = 0)
  (:func:`halving_target`). Karras grids nest when ``N_teacher − 1 = 2·(N_student − 1)``
  (the ramp positions ``2j/(N_t − 1)`` and ``j/(N_s − 1)`` coincide), so the student runs the
  plain sampler with its own ``num_steps``: 33 → 17 → 9 → 5 steps; the last step (σ_min → 0)
  is one step for both;
- the loss is EDM's ``λ(σ)·‖D_student − D_target‖²`` with ``λ(σ) = (σ² + σ_d²)/(σ·σ_d)²``, which
  is the plain squared error of the network outputs ``F`` (λ·c_out² = 1), over the latent
  frames the sampler leaves to the model.

Inputs ``x_σ = x₀ + σ·n`` come from the training clips (as both papers do), one grid step per
clip drawn uniformly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from gen3c.errors import Gen3cInputError, quoted_path
from gen3c.models import configs
from gen3c.pipelines.gen3c import condition_channels, condition_indicator
from gen3c.training.objective import loss_weight


def sampler_sigmas(scheduler, num_steps: int) -> Tensor:
    """(num_steps + 1,) float32: the σ grid the sampler steps through with ``num_steps`` steps
    (Karras σ_max … σ_min, then 0), from a copy of ``scheduler``'s config."""
    grid = type(scheduler).from_config(scheduler.config)
    grid.set_timesteps(num_steps)
    return grid.sigmas.float().clone()


#: The finest teacher grid: the float32 arithmetic of a halving target divides the gap of two grid
#: points' states by the gap of their σ, and its rounding error grows as about the square of the
#: steps (measured against float64 on a toy teacher: a mean squared error of 2e-5 at 10,001 steps,
#: 6e-5 extrapolated at 16,385, ~1e-3 at 65,537 — the size of the losses a halving stage trains down
#: to, 5e-4 and up). 2^14 + 1 nests down to 2 steps and is finer than progressive distillation's
#: 8192-step teachers.
MAX_TEACHER_STEPS = 2**14 + 1


def check_halving(teacher_steps: int, student_steps: list[int], source: str = "config") -> None:
    """Refuse a chain of step counts whose Karras grids do not nest (each N: (previous − 1) = 2·(N − 1)),
    or a teacher grid finer than :data:`MAX_TEACHER_STEPS`."""
    if teacher_steps < 2:
        raise Gen3cInputError(f"{source}: distill.teacher_steps = {teacher_steps} must be at least 2")
    if teacher_steps > MAX_TEACHER_STEPS:
        raise Gen3cInputError(
            f"{source}: distill.teacher_steps = {teacher_steps} must be at most {MAX_TEACHER_STEPS}: on a finer grid the float32 "
            "rounding of the halving targets nears the losses they teach, and every student video takes its steps in DiT forwards "
            f"(GEN3C samples {configs.NUM_STEPS})"
        )
    previous = teacher_steps
    for n in student_steps:
        if n < 1 or previous - 1 != 2 * (n - 1):
            fit = (previous - 1) // 2 + 1
            hint = f"{fit}" if (previous - 1) % 2 == 0 else f"none (make the previous count odd, e.g. {previous + 1})"
            raise Gen3cInputError(
                f"{source}: distill.student_steps {student_steps}: {n} steps do not halve {previous} "
                f"((previous − 1) = 2·(N − 1) nests the Karras grids): the stage after {previous} takes {hint}"
            )
        previous = n


def check_teacher(distill, info: dict, checkpoint: str) -> None:
    """Refuse a ``[distill]`` config that does not fit a teacher which is itself a distilled
    student (``info``: its ``gen3c_model.json``, which records the distillation): it has absorbed
    guidance (guiding it again doubles it) and was trained on its own ``num_steps`` grid only."""
    from gen3c.models.packaged import distilled_steps

    n = distilled_steps(info)
    if n is None:
        return
    student = f"model.checkpoint {quoted_path(checkpoint)} is a distilled student ({n} steps, guidance absorbed)"
    if distill.guidance != 0:
        raise Gen3cInputError(
            f"distill.guidance = {distill.guidance:g}: {student}, which samples without guidance: "
            "set distill.guidance = 0 and distill.guidance_stage = false"
        )
    if distill.teacher_steps != n:
        raise Gen3cInputError(
            f"distill.teacher_steps = {distill.teacher_steps}: {student}, which was trained on its {n}-step grid only: "
            f"set distill.teacher_steps = {n}"
        )


def note_other_clips(data, info: dict, checkpoint: str) -> None:
    """Say (a note) where the clips are not of the size and chunk the teacher states in its
    ``gen3c_model.json`` (``info``): the student learns what the teacher makes at a size it was
    not trained for, and is written as a model of the clips' size and chunk."""
    from gen3c.errors import note

    others = [
        f"data.{key} = {mine} is not the teacher's {theirs}"
        for key, mine, theirs in (("resolution", list(data.resolution), info.get("resolution")),
                                  ("num_frames", data.num_frames, info.get("chunk_frames")))
        if theirs is not None and mine != (list(theirs) if key == "resolution" else theirs)
    ]  # fmt: skip
    if others:
        note(
            f"{' and '.join(others)} (model.checkpoint {quoted_path(checkpoint)}, its gen3c_model.json): the student learns what the teacher "
            "makes at a size it was not trained for, and is written as a model of the clips' size; set them to the teacher's "
            "to distil the model as it samples"
        )


def note_long_samples(config) -> None:
    """Say (a note) where the students sample with more DiT forwards than GEN3C's own sampler
    (35 steps × 2 forwards): a large ``distill.teacher_steps`` does not make a training step dearer
    (one grid point per clip, whatever the grid), but every sample video of a stage's student takes
    its steps in forwards (a 7B's 10,000 take hours each), and the student written last samples with
    its steps by default."""
    from gen3c.errors import note

    stages = distill_stages(config.distill, config.run.max_steps)
    bound = 2 * configs.NUM_STEPS
    longest, last = max(s.student_steps for s in stages), stages[-1].student_steps
    if longest <= bound:
        return
    costs = []
    if config.log.sample_every >= 0:
        when = "at each stage's end" + (", every log.sample_every steps" if config.log.sample_every > 0 else "")
        costs.append(f"its sample videos ({when}) take up to {longest} DiT forwards each (log.sample_every = -1 makes none)")
    if last > bound:
        costs.append(f"the student it writes samples with {last} steps unless --num_steps says otherwise")
    if costs:
        note(
            f"distill.teacher_steps = {config.distill.teacher_steps}: the students sample with up to {longest} steps, more DiT forwards "
            f"than GEN3C's sampler ({configs.NUM_STEPS} steps × 2): {'; '.join(costs)}; a training step costs the same on any grid"
        )


@dataclass(frozen=True)
class Stage:
    """One distillation stage.

    Attributes:
        index: position in the run (0, 1, …).
        kind: "guidance" (one forward learns the guided output on the teacher's grid) or
            "halving" (one student step learns two teacher steps).
        teacher_steps: sampler steps of the teacher's grid; student_steps: the student's
            (the same for "guidance").
        teacher_guidance: g of the teacher's output (0: one forward).
        max_steps: optimiser steps of the stage.
    """

    index: int
    kind: str
    teacher_steps: int
    student_steps: int
    teacher_guidance: float
    max_steps: int

    @property
    def name(self) -> str:
        """Folder name under ``OUT/stages/``."""
        if self.kind == "guidance":
            return f"{self.index}_guidance_{self.student_steps}steps"
        return f"{self.index}_{self.teacher_steps}to{self.student_steps}steps"

    @property
    def label(self) -> str:
        """What the stage does, in a few words (its progress bar and loss lines): the guidance stage
        folds guidance's two forwards into one on the same grid; a halving stage halves the steps."""
        if self.kind == "guidance":
            return f"guidance, {self.student_steps} steps × 2 forwards → × 1"
        return f"halving, {self.teacher_steps}→{self.student_steps} steps" + (" (guided teacher)" if self.teacher_guidance else "")

    def describe(self) -> str:
        teacher = f"{self.teacher_steps} steps × " + ("2 forwards" if self.teacher_guidance else "1 forward")
        if self.kind == "guidance":
            return f"guidance distillation: {teacher} (g = {self.teacher_guidance:g}) → {self.student_steps} × 1"
        return f"progressive distillation: {teacher} → {self.student_steps} × 1"


def distill_stages(distill, default_max_steps: int) -> list[Stage]:
    """The stages of a ``[distill]`` config (:class:`gen3c.training.config.DistillConfig`):
    a guidance stage (if asked) on the teacher's grid, then one halving stage per
    ``student_steps`` entry. The original teacher (with its guidance) teaches the first stage;
    each later stage is taught by the previous stage's student (one forward)."""
    plan: list[tuple[str, int, int]] = []
    if distill.guidance_stage:
        plan.append(("guidance", distill.teacher_steps, distill.teacher_steps))
    previous = distill.teacher_steps
    for n in distill.student_steps:
        plan.append(("halving", previous, n))
        previous = n
    lengths = list(distill.stage_max_steps) or [default_max_steps] * len(plan)
    return [
        Stage(i, kind, t, s, distill.guidance if i == 0 else 0.0, lengths[i])
        for i, (kind, t, s) in enumerate(plan)
    ]


@dataclass
class Conditioning:
    """The conditions of a batch of clips, laid out as the sampler lays them out.

    Attributes:
        clean: (B, 16, T', h, w) clean latents (the conditioned frame's target).
        augmented: (B, 16, T', h, w) ``c_in(σ_aug)·(x₀ + σ_aug·n')``: the conditioned frame as the DiT sees it.
        indicator: (B, 1, T', 1, 1) 1 on the conditioned latent frame.
        condition: (B, 65, T', h, w) ``[indicator | buffers]``; uncondition: the same, buffers zeroed.
        text, negative_text: (B, L, D) prompt embeddings of the two branches.
        augment_sigma: σ of the condition augmentation (GEN3C: 0.001).
    """

    clean: Tensor
    augmented: Tensor
    indicator: Tensor
    condition: Tensor
    uncondition: Tensor
    text: Tensor
    negative_text: Tensor
    augment_sigma: float
    sigma_data: float = 0.5
    fps: float = configs.FPS


def make_conditioning(
    x0: Tensor,
    buffer_latents: Tensor,
    text: Tensor,
    negative_text: Tensor,
    generator: torch.Generator,
    *,
    augment_sigma: float = configs.CONDITION_AUGMENT_SIGMA,
    sigma_data: float = 0.5,
) -> Conditioning:
    """:class:`Conditioning` of clean latents ``x0`` (B, 16, T', h, w) and buffer latents (B, 64, T', h, w)."""
    B, _, T = x0.shape[:3]
    aug_noise = torch.randn(x0.shape, generator=generator, device=generator.device).to(x0.device)
    c_in_aug = 1.0 / (augment_sigma**2 + sigma_data**2) ** 0.5
    indicator = condition_indicator(B, T, device=x0.device)
    return Conditioning(
        clean=x0, augmented=c_in_aug * (x0 + augment_sigma * aug_noise), indicator=indicator,
        condition=condition_channels(indicator, buffer_latents), uncondition=condition_channels(indicator, torch.zeros_like(buffer_latents)),
        text=text.expand(B, -1, -1), negative_text=negative_text.expand(B, -1, -1), augment_sigma=augment_sigma, sigma_data=sigma_data,
    )  # fmt: skip


class Denoised(NamedTuple):
    """One sampler step's view of a state: ``state`` (B, 16, T', h, w) with the conditioned frame
    replaced, the denoised estimate ``denoised`` and ``replaced`` (B, 1, T', 1, 1), 1 where the
    sampler replaced the frame (those frames are not the model's)."""

    state: Tensor
    denoised: Tensor
    replaced: Tensor


def _compute_dtype(net) -> torch.dtype:
    return getattr(net, "_gen3c_compute_dtype", None) or next(net.parameters()).dtype


def network_output(net, hidden: Tensor, sigma: Tensor, text: Tensor, condition: Tensor, fps: float = configs.FPS) -> Tensor:
    """The DiT's raw output F (B, 16, T', h, w) in float32 for c_in-scaled input ``hidden`` at per-clip σ (B,)."""
    dtype = _compute_dtype(net)
    h, w = hidden.shape[-2:]
    out = net(
        hidden_states=hidden.to(dtype), timestep=(0.25 * sigma.log()).to(dtype), encoder_hidden_states=text.to(dtype), fps=fps,
        condition_mask=condition.to(dtype), padding_mask=torch.zeros(1, 1, h, w, device=hidden.device, dtype=dtype), return_dict=False,
    )[0]  # fmt: skip
    return out.float()


def denoised(net, x: Tensor, sigma: Tensor, cond: Conditioning, guidance: float = 0.0) -> Denoised:
    """The sampler's denoised estimate at state ``x`` (B, 16, T', h, w) and σ (B,), σ > 0.

    As :meth:`~gen3c.pipelines.gen3c.Gen3cPipeline.denoise` at one step: above the augmentation σ
    the conditioned frame's state is ``augmented / c_in(σ)`` and its estimate the clean latent;
    with ``guidance`` g ≠ 0 the output is ``F_cond + g·(F_cond − F_uncond)``.
    """
    sd = cond.sigma_data
    s = sigma.view(-1, 1, 1, 1, 1).float()
    replaced = cond.indicator * (s > cond.augment_sigma).float()
    c_in = 1.0 / (s**2 + sd**2).sqrt()
    state = replaced * (cond.augmented / c_in) + (1 - replaced) * x
    out = network_output(net, c_in * state, sigma, cond.text, cond.condition, cond.fps)
    if guidance != 0:
        out_uncond = network_output(net, c_in * state, sigma, cond.negative_text, cond.uncondition, cond.fps)
        out = out + guidance * (out - out_uncond)
    c_skip = sd**2 / (s**2 + sd**2)
    c_out = s * sd / (s**2 + sd**2).sqrt()
    estimate = replaced * cond.clean + (1 - replaced) * (c_skip * state + c_out * out)
    return Denoised(state, estimate, replaced)


def euler_step(state: Tensor, estimate: Tensor, sigma: Tensor, sigma_next: Tensor) -> Tensor:
    """One EDM Euler step from σ to σ_next (per clip, (B,)): ``x + (σ_next − σ)·(x − D)/σ``."""
    s, s_next = sigma.view(-1, 1, 1, 1, 1), sigma_next.view(-1, 1, 1, 1, 1)
    return state + (s_next - s) * (state - estimate) / s


def guidance_target(teacher, x: Tensor, sigma: Tensor, cond: Conditioning, guidance: float) -> Denoised:
    """The teacher's guided estimate at ``(x, σ)``: what the student's one forward must give."""
    return denoised(teacher, x, sigma, cond, guidance)


def halving_target(
    teacher, x: Tensor, step: Tensor, teacher_sigmas: Tensor, cond: Conditioning, guidance: float = 0.0
) -> tuple[Tensor, Tensor, Tensor]:
    """The target of one student step that replaces two teacher steps.

    Args:
        x: (B, 16, T', h, w) states at the student's σ_a = ``teacher_sigmas[2·step]``.
        step: (B,) the student's step index j per clip.
        teacher_sigmas: (N_t + 1,) the teacher's grid (:func:`sampler_sigmas`).
    Returns:
        ``(D̃, x_c, σ_c)``: the estimate whose Euler step from σ_a lands on the teacher's two-step
        result x_c at σ_c = ``teacher_sigmas[2j + 2]`` (one step when ``2j + 1`` is the final σ = 0).
    """
    last = len(teacher_sigmas) - 1
    ia = 2 * step
    ib = ia + 1
    ic = (ia + 2).clamp(max=last)
    grid = teacher_sigmas.to(x.device)
    s_a, s_b, s_c = grid[ia], grid[ib], grid[ic]
    first = denoised(teacher, x, s_a, cond, guidance)
    x_b = euler_step(first.state, first.denoised, s_a, s_b)
    x_c = x_b.clone()
    two = s_b > 0  # clips whose second teacher step exists (not the final σ_min → 0 step)
    if bool(two.any()):
        sub = _subset(cond, two)
        second = denoised(teacher, x_b[two], s_b[two], sub, guidance)
        x_c[two] = euler_step(second.state, second.denoised, s_b[two], s_c[two])
    s_c = torch.where(two, s_c, s_b)
    sa, sc = s_a.view(-1, 1, 1, 1, 1), s_c.view(-1, 1, 1, 1, 1)
    target = first.state - sa * (x_c - first.state) / (sc - sa)
    return target, x_c, s_c


def _subset(cond: Conditioning, keep: Tensor) -> Conditioning:
    return Conditioning(
        clean=cond.clean[keep], augmented=cond.augmented[keep], indicator=cond.indicator[keep], condition=cond.condition[keep],
        uncondition=cond.uncondition[keep], text=cond.text[keep], negative_text=cond.negative_text[keep],
        augment_sigma=cond.augment_sigma, sigma_data=cond.sigma_data, fps=cond.fps,
    )  # fmt: skip


def weighted_error(student: Denoised, target: Tensor, sigma: Tensor, sigma_data: float = 0.5) -> Tensor:
    """``λ(σ)·(D_student − D_target)²`` averaged over the frames the sampler leaves to the model (a scalar)."""
    s = sigma.view(-1, 1, 1, 1, 1)
    per_element = loss_weight(s, sigma_data) * (student.denoised - target) ** 2
    free = (1 - student.replaced).expand_as(per_element)
    return (per_element * free).sum() / free.sum().clamp_min(1)


@dataclass
class StageLoss:
    """The loss of a batch and what it was computed on (for logs and tests)."""

    loss: Tensor
    sigma: Tensor  # (B,) the student's σ per clip
    step: Tensor  # (B,) grid index per clip


def stage_loss(
    student, teacher, stage: Stage, x0: Tensor, buffer_latents: Tensor, text: Tensor, negative_text: Tensor,
    scheduler, generator: torch.Generator, *, augment_sigma: float = configs.CONDITION_AUGMENT_SIGMA,
) -> StageLoss:
    """The distillation loss of one batch in ``stage``.

    Args:
        x0: (B, 16, T', h, w) clean latents; buffer_latents: (B, 64, T', h, w).
        text, negative_text: (1, L, D) prompt embeddings (the cached empty and negative prompts).
    """
    sigma_data = scheduler.config.sigma_data
    x0, buffer_latents = x0.float(), buffer_latents.float()
    B, device = x0.shape[0], x0.device
    sigmas = sampler_sigmas(scheduler, stage.teacher_steps).to(device)
    student_points = stage.student_steps  # grid points where the student is asked (its steps)
    step = torch.randint(student_points, (B,), generator=generator, device=generator.device).to(device)
    noise = torch.randn(x0.shape, generator=generator, device=generator.device).to(device)
    cond = make_conditioning(x0, buffer_latents, text, negative_text, generator, augment_sigma=augment_sigma, sigma_data=sigma_data)
    sigma = sigmas[step] if stage.kind == "guidance" else sigmas[2 * step]
    x = x0 + sigma.view(-1, 1, 1, 1, 1) * noise
    with torch.no_grad():
        if stage.kind == "guidance":
            target = guidance_target(teacher, x, sigma, cond, stage.teacher_guidance).denoised
        else:
            target = halving_target(teacher, x, step, sigmas, cond, stage.teacher_guidance)[0]
    prediction = denoised(student, x, sigma, cond)
    return StageLoss(weighted_error(prediction, target, sigma, sigma_data), sigma, step)
