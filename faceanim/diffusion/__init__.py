"""Shared discrete-time diffusion core: noise schedules and respacing, samplers with explicit noise
sources (DDIM, DDIM inversion, DDPM with fixed or learned-range variance), and training losses.

Our own implementations throughout: `diffusers` schedulers differ from the official numerics these
methods need (float32 cumprod, their own DDPM coefficient formulas); tests/diffusion/test_diffusers.py
shows where they agree and where they do not."""
from .losses import (approx_standard_normal_cdf, discretized_gaussian_log_likelihood, epsilon_loss,
                     normal_kl, sample_timesteps, vlb_term)
from .noise import GeneratorNoise, NoiseList, NoiseSource, SeededNoise
from .samplers import (Denoiser, SamplerOutput, SamplerStep, ddim_invert, ddim_sample, ddpm_sample)
from .schedules import BETA_RECIPES, NoiseSchedule, make_betas, space_timesteps

__all__ = [
    "BETA_RECIPES", "NoiseSchedule", "make_betas", "space_timesteps",
    "NoiseSource", "NoiseList", "SeededNoise", "GeneratorNoise",
    "Denoiser", "SamplerOutput", "SamplerStep", "ddim_sample", "ddim_invert", "ddpm_sample",
    "epsilon_loss", "normal_kl", "approx_standard_normal_cdf", "discretized_gaussian_log_likelihood",
    "vlb_term", "sample_timesteps",
]
