"""Where `diffusers` schedulers reproduce our samplers and where they cannot reproduce the official
numerics, which is why faceanim.diffusion implements its own (skipped when diffusers is absent)."""
from __future__ import annotations

import pytest
import torch

from faceanim.diffusion import (NoiseSchedule, SeededNoise, ddim_sample, ddpm_sample, make_betas,
                                space_timesteps)

from .parity_schedules import diffused_heads_io, diffused_heads_stems, fadm_buffers, fadm_stems
from .test_samplers import toy_denoiser, toy_learned_range

diffusers = pytest.importorskip("diffusers")

SD = dict(beta_start=0.00085, beta_end=0.012)


def sd_scheduler(prediction_type: str):
    scheduler = diffusers.DDIMScheduler(beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=True,
                                        steps_offset=1, prediction_type=prediction_type, **SD)
    scheduler.set_timesteps(20)
    return scheduler


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / (b - b.mean()).norm()).item()


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_ddim_eta0_equals_diffusers_step_for_step_on_a_float32_schedule(prediction):
    schedule = NoiseSchedule.from_betas(make_betas("scaled_linear", 1000, **SD))
    scheduler = sd_scheduler({"eps": "epsilon", "v": "v_prediction"}[prediction])
    assert torch.equal(scheduler.alphas_cumprod, schedule.alphas_cumprod)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    ours = []
    ddim_sample(toy_denoiser, x, schedule, timesteps=scheduler.timesteps.tolist(), prediction=prediction,
                callback=lambda step: ours.append(step.x))
    for state, t in zip(ours, scheduler.timesteps):
        x = scheduler.step(toy_denoiser(x, t.expand(2)), t, x).prev_sample
        assert torch.equal(state, x)


def test_stochastic_ddim_agrees_with_diffusers_only_to_rounding():
    """diffusers computes the DDIM variance in another order and adds the noise last."""
    schedule = NoiseSchedule.from_betas(make_betas("scaled_linear", 1000, **SD))
    scheduler = sd_scheduler("epsilon")
    noise = SeededNoise(lambda i: 10 + i)
    x_T = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    x = x_T
    for t in scheduler.timesteps:
        x = scheduler.step(toy_denoiser(x, t.expand(2)), t, x, eta=1.0, variance_noise=noise(int(t), x)).prev_sample
    ours = ddim_sample(toy_denoiser, x_T, schedule, timesteps=scheduler.timesteps.tolist(), eta=1.0, noise=noise)
    assert rel(ours.sample, x) < 1e-4


@pytest.mark.parametrize("stem", fadm_stems())
def test_diffusers_cannot_hold_fadm_buffers_exactly(stem):
    """FADM's alphas_cumprod is a float64 cumprod stored float32; diffusers recomputes it in float32."""
    buffers = fadm_buffers(stem)
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=len(buffers["betas"]),
                                        trained_betas=buffers["betas"].numpy(), clip_sample=False)
    assert not torch.equal(scheduler.alphas_cumprod, buffers["alphas_cumprod"])
    assert torch.allclose(scheduler.alphas_cumprod, buffers["alphas_cumprod"], rtol=1e-6, atol=0)
    # ours uses the buffers as given, so it matches FADM's sampler bit for bit (test_samplers)
    assert torch.equal(NoiseSchedule.from_buffers(buffers).alphas_cumprod, buffers["alphas_cumprod"])


@pytest.mark.parametrize("stem", diffused_heads_stems())
def test_diffusers_learned_range_ddpm_differs_from_diffused_heads(stem):
    """diffusers respaces from the original alpha_bar instead of the cumprod of the respaced betas, and
    takes x0 with another formula, so the 10-step sampler moves by more than rounding."""
    io = diffused_heads_io(stem)
    kept = space_timesteps(len(io["schedule_betas_1000"]), len(io["sample_betas"]))
    schedule = NoiseSchedule.from_recipe("cosine", len(io["schedule_betas_1000"]), dtype=torch.float32).respace(kept)
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=len(io["schedule_betas_1000"]),
                                        trained_betas=io["schedule_betas_1000"].numpy(),
                                        variance_type="learned_range", clip_sample=True)
    scheduler.set_timesteps(timesteps=kept[::-1])
    x_T = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    x = x_T
    for k, t in enumerate(scheduler.timesteps):
        index = len(kept) - 1 - k
        x = scheduler.step(toy_learned_range(x, t.view(1)), t, x,
                           generator=torch.Generator().manual_seed(index)).prev_sample
    ours = ddpm_sample(toy_learned_range, x_T, schedule, SeededNoise(lambda i: i), variance="learned_range").sample
    assert not torch.equal(scheduler.alphas_cumprod[kept], schedule.alphas_cumprod)
    assert 1e-6 < rel(ours, x) < 1e-2
