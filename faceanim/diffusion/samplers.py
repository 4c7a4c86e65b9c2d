"""Samplers of a trained denoiser: DDIM (any eta, any subset of steps), its deterministic inversion, and
DDPM ancestral sampling with fixed or learned-range variance.

A denoiser is any callable ``(x_t, timesteps) -> output`` where ``timesteps`` is a (B,) int64 tensor of
*original* timesteps (``schedule.timestep_map``); callers close over their conditioning. Samplers run in
the caller's grad mode (wrap them in ``torch.inference_mode()`` for plain generation) on the state's
device and dtype; schedule coefficients are computed in the schedule's dtype and then cast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Sequence

import torch

from .noise import NoiseSource
from .schedules import NoiseSchedule

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PREDICTIONS = ("eps", "x0", "v")
VARIANCES = ("beta", "posterior", "learned_range")


@dataclass(frozen=True)
class SamplerStep:
    """What a sampler reports after each step: ``position`` of ``total`` steps, the schedule ``index``
    and original ``timestep`` the denoiser was evaluated at, the new state ``x`` and the x0 estimate."""

    position: int
    total: int
    index: int
    timestep: int
    x: torch.Tensor
    x0: torch.Tensor


StepCallback = Callable[[SamplerStep], None]


class SamplerOutput(NamedTuple):
    """The final sample and, when ``keep_every`` was given, the kept states: the starting state, then
    the state after every step whose schedule index is a multiple of ``keep_every`` (FADM keeps x_T and
    every 11th of 100 states: 11 tensors)."""

    sample: torch.Tensor
    intermediates: tuple[torch.Tensor, ...] = ()


def ddim_sample(denoiser: Denoiser, x_T: torch.Tensor, schedule: NoiseSchedule,
                timesteps: Sequence[int] | None = None, eta: float = 0.0, noise: NoiseSource | None = None,
                keep_every: int | None = None, clip_x0: tuple[float, float] | None = None,
                prediction: str = "eps", callback: StepCallback | None = None) -> SamplerOutput:
    """DDIM (Song et al., eq. 12) from ``x_T`` down the schedule indices ``timesteps`` (default: all).

    Per step from index i to the next visited index p (abar_p = 1 after the last):
    x0 = (x - sqrt(1-abar_i)·eps) / sqrt(abar_i) (optionally clamped, eps then re-derived),
    sigma = eta·sqrt((1-abar_i/abar_p)(1-abar_p)/(1-abar_i)) (the schedule's stored ``ddim_sigma`` when p =
    i-1, so FADM's buffer is used as is), x = sqrt(abar_p)·x0 + sigma·z + sqrt(1-abar_p-sigma²)·eps.
    ``noise(i, x)`` supplies z; it is not called when sigma is 0 (eta = 0, or the last step)."""
    _check_prediction(prediction)
    visited = _visited_indices(schedule, timesteps, descending=True)
    x, kept = x_T, [x_T] if keep_every else []
    for position, index in enumerate(visited):
        previous = visited[position + 1] if position + 1 < len(visited) else None
        output = denoiser(x, _timesteps(schedule, index, x))
        alpha_bar = schedule.alphas_cumprod[index]
        x0, eps = _x0_and_eps(output, x, alpha_bar, prediction, clip_x0)
        alpha_bar_prev, sigma = _ddim_targets(schedule, index, previous, eta)
        x = _cast(alpha_bar_prev.sqrt(), x) * x0
        if bool(sigma != 0):
            if noise is None:
                raise ValueError("a stochastic DDIM step (eta != 0) needs a noise source")
            x = x + _cast(sigma, x) * noise(index, x)
        x = x + _cast((1 - alpha_bar_prev - sigma ** 2).sqrt(), x) * eps
        _report(callback, kept, keep_every, position, len(visited), schedule, index, x, x0)
    return SamplerOutput(x, tuple(kept))


def ddim_invert(denoiser: Denoiser, x0: torch.Tensor, schedule: NoiseSchedule,
                timesteps: Sequence[int] | None = None, clip_x0: tuple[float, float] | None = None,
                prediction: str = "eps", callback: StepCallback | None = None) -> torch.Tensor:
    """Deterministic DDIM inversion (eta = 0): walk *up* the visited indices, treating ``x0`` as the
    state at the first one; each step evaluates the denoiser at the index it leaves and moves to the next:
    x = sqrt(abar_next)·x0_pred + sqrt(1-abar_next)·eps. With n visited indices this takes n-1 steps and
    returns the state at the last index (as DiffAE / DVA's reverse loop), the start of :func:`ddim_sample`."""
    _check_prediction(prediction)
    visited = _visited_indices(schedule, timesteps, descending=False)
    x = x0
    for position, (index, following) in enumerate(zip(visited[:-1], visited[1:])):
        output = denoiser(x, _timesteps(schedule, index, x))
        x0_pred, eps = _x0_and_eps(output, x, schedule.alphas_cumprod[index], prediction, clip_x0)
        alpha_bar_next = schedule.alphas_cumprod[following]
        x = _cast(alpha_bar_next.sqrt(), x) * x0_pred + _cast((1 - alpha_bar_next).sqrt(), x) * eps
        _report(callback, [], None, position, len(visited) - 1, schedule, index, x, x0_pred)
    return x


def ddpm_sample(denoiser: Denoiser, x_T: torch.Tensor, schedule: NoiseSchedule, noise: NoiseSource,
                variance: str = "beta", clip_x0: tuple[float, float] | None = (-1.0, 1.0),
                keep_every: int | None = None, callback: StepCallback | None = None) -> SamplerOutput:
    """Ancestral DDPM over every index of ``schedule`` (respace it first for fewer steps), eps-prediction.

    x0 = sqrt(1/abar)·x - sqrt(1/abar - 1)·eps, clamped to ``clip_x0``; mean = posterior mean from x0;
    log-variance ``"beta"`` = log beta, ``"posterior"`` = clipped log beta-tilde, ``"learned_range"``: the
    denoiser returns [eps, v] on the channel axis and logvar = nu·log beta + (1-nu)·log beta-tilde with
    nu = (v+1)/2 (improved DDPM; no clamp, so nu outside [0, 1] extrapolates as in the official code).
    No noise is added at index 0."""
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
    visited = list(range(schedule.num_steps - 1, -1, -1))
    x, kept = x_T, [x_T] if keep_every else []
    for position, index in enumerate(visited):
        output = denoiser(x, _timesteps(schedule, index, x))
        eps, log_variance = _ddpm_log_variance(output, schedule, index, variance, x)
        x0 = schedule.x0_from_eps(x, index, eps)
        if clip_x0 is not None:
            x0 = x0.clamp(*clip_x0)
        mean, _, _ = schedule.q_posterior(x0, x, index)
        x = mean if index == 0 else mean + noise(index, x) * torch.exp(log_variance / 2)
        _report(callback, kept, keep_every, position, len(visited), schedule, index, x, x0)
    return SamplerOutput(x, tuple(kept))


def _ddpm_log_variance(output: torch.Tensor, schedule: NoiseSchedule, index: int, variance: str,
                       x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    log_beta = _cast(torch.log(schedule.betas[index]), x)
    log_beta_tilde = _cast(schedule.posterior_log_variance_clipped[index], x)
    if variance != "learned_range":
        return output, (log_beta if variance == "beta" else log_beta_tilde)
    if output.shape[1] != 2 * x.shape[1]:
        raise ValueError(f"learned-range variance needs {2 * x.shape[1]} output channels, got {output.shape[1]}")
    eps, v = output.chunk(2, dim=1)
    nu = (v + 1) / 2
    return eps, nu * log_beta + (1 - nu) * log_beta_tilde


def _x0_and_eps(output: torch.Tensor, x: torch.Tensor, alpha_bar: torch.Tensor, prediction: str,
                clip_x0: tuple[float, float] | None) -> tuple[torch.Tensor, torch.Tensor]:
    sqrt_ab, sqrt_one_minus_ab = _cast(alpha_bar.sqrt(), x), _cast((1 - alpha_bar).sqrt(), x)
    if prediction == "eps":
        eps, x0 = output, (x - output * sqrt_one_minus_ab) / sqrt_ab
    elif prediction == "x0":
        x0, eps = output, (x - sqrt_ab * output) / sqrt_one_minus_ab
    else:
        x0, eps = sqrt_ab * x - sqrt_one_minus_ab * output, sqrt_ab * output + sqrt_one_minus_ab * x
    if clip_x0 is not None:
        # the step must stay consistent with the clamped x0, so eps is re-derived from it
        x0 = x0.clamp(*clip_x0)
        eps = (x - sqrt_ab * x0) / sqrt_one_minus_ab
    return x0, eps


def _ddim_targets(schedule: NoiseSchedule, index: int, previous: int | None, eta: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """abar at the target index and the step's noise std, both in the schedule's dtype."""
    alpha_bar = schedule.alphas_cumprod[index]
    if previous is None:
        alpha_bar_prev = torch.ones((), dtype=schedule.dtype, device=schedule.device)
    else:
        alpha_bar_prev = schedule.alphas_cumprod[previous]
    if previous == index - 1:
        sigma = schedule.ddim_sigma[index]
    else:
        sigma = ((1 - alpha_bar / alpha_bar_prev) * (1 - alpha_bar_prev) / (1 - alpha_bar)).sqrt()
    return alpha_bar_prev, eta * sigma


def _visited_indices(schedule: NoiseSchedule, timesteps: Sequence[int] | None, descending: bool) -> list[int]:
    if timesteps is None:
        indices = list(range(schedule.num_steps))
    else:
        indices = sorted(set(int(i) for i in timesteps))
        if not indices or indices[0] < 0 or indices[-1] >= schedule.num_steps:
            raise ValueError(f"timesteps must be schedule indices in [0, {schedule.num_steps})")
    return indices[::-1] if descending else indices


def _timesteps(schedule: NoiseSchedule, index: int, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), int(schedule.timestep_map[index]), dtype=torch.long, device=x.device)


def _cast(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return value.to(device=like.device, dtype=like.dtype)


def _check_prediction(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def _report(callback: StepCallback | None, kept: list, keep_every: int | None, position: int, total: int,
            schedule: NoiseSchedule, index: int, x: torch.Tensor, x0: torch.Tensor) -> None:
    if keep_every and index % keep_every == 0:
        kept.append(x)
    if callback is not None:
        callback(SamplerStep(position, total, index, int(schedule.timestep_map[index]), x, x0))
