"""Training objectives of eps-prediction diffusion: the simple eps loss, the variational-bound term of
improved DDPM (for learned-range variance), and timestep sampling."""
from __future__ import annotations

import math

import torch

from .schedules import NoiseSchedule

REDUCTIONS = ("sum", "mean", "per_sample")


def sample_timesteps(batch_size: int, num_steps: int, *, device: torch.device | str = "cpu",
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform step indices in [0, num_steps), one per sample (int64)."""
    gen_device = generator.device if generator is not None else device
    return torch.randint(0, num_steps, (batch_size,), generator=generator, device=gen_device).to(device)


def epsilon_loss(predicted: torch.Tensor, target: torch.Tensor, kind: str = "l2",
                 reduction: str = "mean") -> torch.Tensor:
    """L1 (``kind="l1"``) or squared L2 error between predicted and true noise.

    ``"sum"`` sums over batch and elements (FADM's L1), ``"mean"`` averages over everything,
    ``"per_sample"`` returns one mean per sample (B,) (guided-diffusion's ``mean_flat``)."""
    if kind not in ("l1", "l2"):
        raise ValueError(f"kind must be 'l1' or 'l2', got {kind!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    error = predicted - target
    error = error.abs() if kind == "l1" else error ** 2
    if reduction == "sum":
        return error.sum()
    if reduction == "mean":
        return error.mean()
    return error.flatten(1).mean(dim=1)


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor,
              logvar2: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """The tanh approximation of the standard normal CDF that improved DDPM's likelihood uses."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor,
                                        log_scales: torch.Tensor) -> torch.Tensor:
    """Elementwise log-probability (nats) of 8-bit data x in [-1, 1] under a Gaussian discretised to
    bins of width 2/255, with the outermost bins extended to ±infinity."""
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def vlb_term(schedule: NoiseSchedule, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
             eps: torch.Tensor, v: torch.Tensor, clip_x0: tuple[float, float] | None = (-1.0, 1.0)
             ) -> torch.Tensor:
    """Improved DDPM's L_vlb term per sample, in bits per dimension, for a learned-range model.

    The model mean is built from ``eps.detach()`` (the hybrid loss: this term trains only the variance
    output v, nu = (v+1)/2). t > 0: KL(q(x_{t-1}|x_t,x0) || p); t = 0: -log p(x0) with the discretised
    decoder. ``clip_x0`` clamps the model's x0 estimate as Diffused Heads does."""
    eps = eps.detach()
    true_mean, _, true_log_variance = schedule.q_posterior(x0, x_t, t)
    x0_pred = schedule.x0_from_eps(x_t, t, eps)
    if clip_x0 is not None:
        x0_pred = x0_pred.clamp(*clip_x0)
    model_mean, _, _ = schedule.q_posterior(x0_pred, x_t, t)
    nu = (v + 1) / 2
    log_beta = schedule.gather(torch.log(schedule.betas), t, x_t)
    model_log_variance = nu * log_beta + (1 - nu) * true_log_variance
    kl = normal_kl(true_mean, true_log_variance, model_mean, model_log_variance).flatten(1).mean(1)
    nll = -discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_variance).flatten(1).mean(1)
    at_start = t.to(x_t.device).reshape(-1) == 0
    return torch.where(at_start, nll, kl) / math.log(2.0)
