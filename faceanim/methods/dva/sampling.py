"""DVA's diffusion process and its deterministic DDIM loops, on `faceanim.diffusion`.

Official behaviour (`config.py` `_make_diffusion_conf`, `diffusion/base.py`, `diffusion/diffusion.py`):

- betas: DiffAE's `get_named_beta_schedule("linear", T)` (1e-4..0.02 for T = 1000), every array derived
  in float64 and cast to float32 only when multiplied into the float32 state;
- `N` steps: `space_timesteps(T, "ddimN")` (range(0, T, T/N): 0, 100, ..., 900 for N = 10) and the
  respaced betas 1 - abar[k]/abar[previous kept];
- the UNet sees the *original* integer timestep of the respaced index (`_WrappedModel`, with
  `rescale_timesteps False`, so no 1000/T scaling);
- eps prediction; x0 = sqrt(1/abar)·x - sqrt(1/abar - 1)·eps, clamped to [-1, 1] (`clip_denoised` is
  True by default in both loops), eps re-derived from the clamped x0;
- generation (`ddim_sample_loop`, eta 0) visits the N indices downwards, the last step going to abar = 1;
- encoding (`ddim_reverse_sample_loop`, used by `encode_stochastic`) starts from x0 *as the state at index
  0* and takes N - 1 steps, index i -> i + 1 (`indices[:-1]`), so x_T sits at the last kept index
  (timestep 900 for N = 10), where generation starts.
"""
from __future__ import annotations

import torch
from torch import nn

from ...diffusion import NoiseSchedule, ddim_invert, ddim_sample, space_timesteps
from .config import DVAConfig

CLIP = (-1.0, 1.0)


def base_schedule(config: DVAConfig | None = None) -> NoiseSchedule:
    """The T-step training process (float64 arrays, as DiffAE's numpy ones)."""
    config = config or DVAConfig()
    # DiffAE's "linear" scales the end points by 1000/T; for T = 1000 it is the plain linspace
    recipe = "linear" if config.T == 1000 else "scaled_linear_by_T"
    return NoiseSchedule.from_recipe(recipe, config.T)


def ddim_schedule(steps: int, config: DVAConfig | None = None) -> NoiseSchedule:
    """The respaced process of `steps` DDIM steps (`space_timesteps(T, "ddim<steps>")`)."""
    config = config or DVAConfig()
    return base_schedule(config).respace(space_timesteps(config.T, f"ddim{steps}"))


def _denoiser(unet: nn.Module, cond: torch.Tensor | None):
    def denoise(x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        return unet(x, timesteps, cond)
    return denoise


def ddim_reconstruct(unet: nn.Module, x_T: torch.Tensor, cond: torch.Tensor | None, steps: int = 10, *,
                     config: DVAConfig | None = None, clip_denoised: bool = True) -> torch.Tensor:
    """Decode: deterministic DDIM (eta 0) from the noise map `x_T` with the semantic code `cond`
    (`render` / `sample` with `gen_type ddim`)."""
    schedule = ddim_schedule(steps, config)
    return ddim_sample(_denoiser(unet, cond), x_T, schedule, eta=0.0,
                       clip_x0=CLIP if clip_denoised else None).sample


def ddim_encode(unet: nn.Module, x0: torch.Tensor, cond: torch.Tensor | None, steps: int = 10, *,
                config: DVAConfig | None = None, clip_denoised: bool = True) -> torch.Tensor:
    """Encode: the noise map x_T of the images `x0` ([-1, 1]) by deterministic DDIM inversion
    (`encode_stochastic` -> `ddim_reverse_sample_loop`)."""
    schedule = ddim_schedule(steps, config)
    return ddim_invert(_denoiser(unet, cond), x0, schedule, clip_x0=CLIP if clip_denoised else None)
