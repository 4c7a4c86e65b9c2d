"""Training losses: hand-computed values, reductions, and the VLB term against a direct computation."""
from __future__ import annotations

import math

import pytest
import torch

from faceanim.diffusion import (NoiseSchedule, discretized_gaussian_log_likelihood, epsilon_loss, normal_kl,
                                sample_timesteps, space_timesteps, vlb_term)


def test_epsilon_loss_values_and_reductions():
    predicted = torch.tensor([[1.0, -2.0], [3.0, 4.0]])
    target = torch.zeros(2, 2)
    assert epsilon_loss(predicted, target, "l1", "sum") == 10
    assert epsilon_loss(predicted, target, "l1", "mean") == 2.5
    assert torch.equal(epsilon_loss(predicted, target, "l1", "per_sample"), torch.tensor([1.5, 3.5]))
    assert epsilon_loss(predicted, target, "l2", "sum") == 30
    assert epsilon_loss(predicted, target, "l2", "mean") == 7.5
    assert torch.equal(epsilon_loss(predicted, target, "l2", "per_sample"), torch.tensor([2.5, 12.5]))
    with pytest.raises(ValueError):
        epsilon_loss(predicted, target, "huber")
    with pytest.raises(ValueError):
        epsilon_loss(predicted, target, reduction="max")


def test_normal_kl_matches_the_closed_form():
    m1, m2, s1, s2 = 0.3, -0.4, 0.7, 1.9
    expected = math.log(s2 / s1) + (s1 ** 2 + (m1 - m2) ** 2) / (2 * s2 ** 2) - 0.5
    got = normal_kl(torch.tensor(m1), torch.tensor(2 * math.log(s1)), torch.tensor(m2), torch.tensor(2 * math.log(s2)))
    assert math.isclose(got.item(), expected, rel_tol=1e-6)
    assert normal_kl(torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.zeros(3)).abs().max() == 0


def test_discretized_likelihood_is_the_bin_mass():
    x = torch.tensor([-1.0, -0.2, 0.5, 1.0])
    mean = torch.tensor([-0.9, -0.25, 0.45, 0.8])
    log_scale = torch.log(torch.tensor([0.1, 0.05, 0.2, 0.3]))
    normal = torch.distributions.Normal(mean, log_scale.exp())
    exact = torch.stack([normal.cdf(x + 1 / 255)[0], normal.cdf(x + 1 / 255)[1] - normal.cdf(x - 1 / 255)[1],
                         normal.cdf(x + 1 / 255)[2] - normal.cdf(x - 1 / 255)[2], 1 - normal.cdf(x - 1 / 255)[3]])
    got = discretized_gaussian_log_likelihood(x, mean, log_scale)
    # the tanh CDF approximation of improved DDPM is within ~1e-3 of the exact CDF
    assert torch.allclose(got.exp(), exact, rtol=2e-2, atol=1e-3)


def direct_vlb(schedule, x0, x_t, t, eps, v):
    """One sample, element by element, from the definitions (float64)."""
    i = int(t)
    b, ab, abp = (float(schedule.betas[i]), float(schedule.alphas_cumprod[i]), float(schedule.alphas_cumprod_prev[i]))
    log_bt = float(schedule.posterior_log_variance_clipped[i])
    total = 0.0
    columns = (x0.flatten().tolist(), x_t.flatten().tolist(), eps.flatten().tolist(), v.flatten().tolist())
    for x0e, xte, ee, ve in zip(*columns):
        true_mean = (b * math.sqrt(abp) * x0e + (1 - abp) * math.sqrt(1 - b) * xte) / (1 - ab)
        x0_pred = min(max(xte / math.sqrt(ab) - math.sqrt(1 / ab - 1) * ee, -1), 1)
        model_mean = (b * math.sqrt(abp) * x0_pred + (1 - abp) * math.sqrt(1 - b) * xte) / (1 - ab)
        nu = (ve + 1) / 2
        model_logvar = nu * math.log(b) + (1 - nu) * log_bt
        if i > 0:
            total += 0.5 * (-1 + model_logvar - log_bt + math.exp(log_bt - model_logvar)
                            + (true_mean - model_mean) ** 2 * math.exp(-model_logvar))
        else:
            std = math.exp(0.5 * model_logvar)
            cdf = lambda z: 0.5 * (1 + math.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))  # noqa: E731
            upper, lower = cdf((x0e - model_mean + 1 / 255) / std), cdf((x0e - model_mean - 1 / 255) / std)
            mass = upper if x0e < -0.999 else (1 - lower if x0e > 0.999 else upper - lower)
            total -= math.log(max(mass, 1e-12))
    return total / x0.numel() / math.log(2)


def test_vlb_term_against_a_direct_computation():
    schedule = NoiseSchedule.from_recipe("cosine", 1000).respace(space_timesteps(1000, 50))
    g = torch.Generator().manual_seed(0)
    x0 = (torch.randint(0, 256, (3, 2, 3, 3), generator=g).double() / 127.5 - 1)
    t = torch.tensor([0, 17, 49])
    noise = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
    x_t = schedule.q_sample(x0, t, noise)
    eps = noise + 0.1 * torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
    v = torch.rand(3, 2, 3, 3, generator=g, dtype=torch.float64) * 2 - 1
    got = vlb_term(schedule, x0, x_t, t, eps, v)
    expected = [direct_vlb(schedule, x0[k], x_t[k], t[k], eps[k], v[k]) for k in range(3)]
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float64), rtol=1e-9)


def test_vlb_term_trains_only_the_variance_output():
    schedule = NoiseSchedule.from_recipe("cosine", 100, dtype=torch.float32)
    x0 = torch.rand(2, 3, 4, 4) * 2 - 1
    t = torch.tensor([0, 50])
    eps = torch.randn(2, 3, 4, 4, requires_grad=True)
    v = torch.zeros(2, 3, 4, 4, requires_grad=True)
    vlb_term(schedule, x0, schedule.q_sample(x0, t, torch.randn_like(x0)), t, eps, v).sum().backward()
    assert eps.grad is None and v.grad is not None and v.grad.abs().sum() > 0


def test_sample_timesteps():
    a = sample_timesteps(1000, 7, generator=torch.Generator().manual_seed(0))
    b = sample_timesteps(1000, 7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.dtype == torch.int64
    assert a.min() == 0 and a.max() == 6
