"""The samplers against GEN3C's EDM closed forms, and what a sampler switch keeps of a loaded schedule."""

from __future__ import annotations

import math

import diffusers
import pytest
import torch

from gen3c.models import configs
from gen3c.schedulers import SAMPLERS, make_scheduler, sampler_name


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_karras_schedule_and_edm_preconditioning_in_closed_form(name):
    """σ_i = (σ_max^(1/ρ) + i/(n−1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ, σ 80 → 0.0002, ρ 7, then 0;
    c_in = 1/√(σ² + σ_d²), c_noise = ¼·ln σ, D = c_skip·x + c_out·F with c_skip = σ_d²/(σ² + σ_d²)
    and c_out = σ·σ_d/√(σ² + σ_d²), σ_d 0.5 (GEN3C's model_t2w.py)."""
    scheduler = make_scheduler(name)
    n = 35
    scheduler.set_timesteps(n)
    sigmas = scheduler.sigmas.double()
    a, b = 80.0 ** (1 / 7), 0.0002 ** (1 / 7)
    expected = [(a + i / (n - 1) * (b - a)) ** 7 for i in range(n)] + [0.0]
    assert len(sigmas) == n + 1
    torch.testing.assert_close(sigmas, torch.tensor(expected, dtype=torch.float64), rtol=2e-6, atol=0)
    assert expected[1] == pytest.approx(67.1260, abs=1e-4)  # the first step, by hand

    sigma, x, out = 1.5, torch.tensor([2.0]), torch.tensor([3.0])
    norm = math.sqrt(sigma**2 + 0.25)
    assert scheduler.precondition_inputs(x, torch.tensor(sigma)).item() == pytest.approx(2.0 / norm, rel=1e-6)
    assert scheduler.precondition_noise(torch.tensor(80.0)).item() == pytest.approx(0.25 * math.log(80.0), rel=1e-6)
    denoised = scheduler.precondition_outputs(x, out, torch.tensor(sigma)).item()
    assert denoised == pytest.approx(0.25 / norm**2 * 2.0 + sigma * 0.5 / norm * 3.0, rel=1e-6)


def test_a_sampler_switch_keeps_the_loaded_models_output_type_and_last_sigma():
    """make_scheduler(name, loaded.config) keeps what the checkpoint's scheduler says of its
    model and schedule: how the DiT's output is read (prediction_type) and the last σ
    (final_sigmas_type), as it keeps the σ range. Before, both fell back to GEN3C's defaults,
    so switching sampler read a v-prediction model as ε and ran a σ_min-terminated schedule to 0."""
    loaded = diffusers.EDMEulerScheduler(
        **{**configs.SCHEDULER_GEN3C, "prediction_type": "v_prediction", "final_sigmas_type": "sigma_min"}
    )
    for name in SAMPLERS:
        switched = make_scheduler(name, dict(loaded.config))
        assert sampler_name(switched) == name
        assert switched.config.prediction_type == "v_prediction"
        switched.set_timesteps(4)
        assert float(switched.sigmas[-1]) == pytest.approx(0.0002, rel=1e-5)
