"""FADM's diffusion renderer: the conditional denoiser and its schedule, laid out as the official
`DiffusionGenerator` (`diffusion.denoise_fn.*` and the schedule buffers `diffusion.betas`, ...,
`diffusion.ddim_c1`), so `diffusion.pth` loads unchanged.

Data are frames in [0, 1] (never mapped to [−1, 1]); the denoiser predicts ε; the official sampler is DDIM
with η = 1 over all T steps, x0 unclipped, with caller-supplied noise (`faceanim.diffusion`). The schedule
used for sampling is the one in the buffers, so a released checkpoint samples with its own float32 arrays.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ...diffusion import NoiseSchedule, NoiseSource, SamplerOutput, ddim_sample, epsilon_loss, sample_timesteps
from ...diffusion.samplers import StepCallback
from .conditioning import Condition
from .config import FADMConfig
from .unet import UNet

KEEP_EVERY_DIVISOR = 10     # the official sampler keeps x_T and every (1 | T//10)-th state


def fadm_schedule(timesteps: int, beta_schedule: str = "linear") -> NoiseSchedule:
    """FADM's schedule: betas in float64 (linear scaled by 1000/T, or cosine), arrays stored float32, the
    posterior log-variance floored at 1e-20."""
    recipe = "scaled_linear_by_T" if beta_schedule == "linear" else "cosine"
    return NoiseSchedule.from_recipe(recipe, timesteps, dtype=torch.float64, storage_dtype=torch.float32,
                                     posterior_log_variance="floor")


class GaussianDiffusion(nn.Module):
    """The denoiser (`denoise_fn`) plus the schedule as buffers under the official names."""

    def __init__(self, denoise_fn: UNet, timesteps: int, beta_schedule: str = "linear", loss_type: str = "l1"):
        super().__init__()
        self.denoise_fn = denoise_fn
        self.num_timesteps = timesteps
        self.loss_type = loss_type
        for name, value in fadm_schedule(timesteps, beta_schedule).buffers(fadm_names=True).items():
            self.register_buffer(name, value)

    def schedule(self) -> NoiseSchedule:
        """The schedule exactly as stored in the buffers (a loaded checkpoint's own float32 arrays)."""
        names = NoiseSchedule.from_betas(self.betas.cpu()).buffers(fadm_names=True)
        return NoiseSchedule.from_buffers({name: getattr(self, name) for name in names}).to(self.betas.device)

    def losses(self, x0: torch.Tensor, condition: Condition, *, t: torch.Tensor | None = None,
               noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """One training step on real frames `x0`, the official `p_losses`: t ~ U{0, .., T−1} and then
        ε ~ N(0, I) (in that order, from `generator` or the global RNG, as the official `torch.randint` then
        `torch.randn_like`) unless given; x_t = q_sample(x0, t, ε); (ε̂, colour loss) = denoise_fn(x_t, t,
        condition). Returns the losses `norm` (|ε − ε̂| summed over batch, channels and pixels) and `color`
        (the condition network's mean colour-feature L1), and the step's `t`, `noise`, `x_t` and `eps` (ε̂)."""
        if t is None:
            t = sample_timesteps(x0.shape[0], self.num_timesteps, device=x0.device, generator=generator)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = self.schedule().q_sample(x0, t, noise)
        eps, color = self.denoise_fn(x_t, t, condition)
        return {"norm": epsilon_loss(eps, noise, kind=self.loss_type, reduction="sum"), "color": color,
                "t": t, "noise": noise, "x_t": x_t, "eps": eps}


class FADMModel(nn.Module):
    """Official `DiffusionGenerator`: `diffusion` holds the denoiser and the schedule."""

    def __init__(self, config: FADMConfig = FADMConfig()):
        super().__init__()
        self.config = config
        self.diffusion = GaussianDiffusion(UNet(config.unet), config.timesteps, config.beta_schedule,
                                           config.loss_type)

    @property
    def image_size(self) -> int:
        return self.config.unet.image_size

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, condition: Condition) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε̂, colour loss) for noisy frames at integer timesteps."""
        return self.diffusion.denoise_fn(x_t, t, condition)

    def sample(self, x_T: torch.Tensor, condition: Condition, noise: NoiseSource, *, steps: int | None = None,
               eta: float = 1.0, keep_intermediates: bool = False,
               callback: StepCallback | None = None) -> SamplerOutput:
        """Refined frames from x_T (one per condition; a single x_T is shared by all of them).

        steps None: the official sampler (DDIM over all T steps, η = 1); fewer steps respace the schedule
        (every visited step still uses the stored arrays between kept steps)."""
        schedule = self.diffusion.schedule()
        timesteps = None if steps is None or steps >= schedule.num_steps else _evenly_spaced(schedule.num_steps, steps)
        x_T = x_T.expand(len(condition), *x_T.shape[1:]) if x_T.shape[0] == 1 else x_T
        keep_every = (1 | (schedule.num_steps // KEEP_EVERY_DIVISOR)) if keep_intermediates else None

        def denoiser(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.denoise(x, t, condition)[0]

        return ddim_sample(denoiser, x_T, schedule, timesteps=timesteps, eta=eta, noise=noise,
                           keep_every=keep_every, callback=callback)


def _evenly_spaced(num_steps: int, steps: int) -> Sequence[int]:
    """`steps` schedule indices spread over [0, num_steps), always including 0 and num_steps − 1."""
    if steps < 2:
        raise ValueError(f"at least 2 sampling steps are needed, got {steps}")
    from ...diffusion import space_timesteps

    return space_timesteps(num_steps, str(steps))
