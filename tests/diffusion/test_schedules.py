"""Beta recipes, derived arrays, respacing and parameterisation conversions, checked against the
official schedule tensors stored in the parity fixtures."""
from __future__ import annotations

import math

import pytest
import torch

from faceanim.diffusion import NoiseSchedule, make_betas, space_timesteps

from .parity_schedules import diffused_heads_io, diffused_heads_stems, fadm_buffers, fadm_stems


def fadm_recipe(num_timesteps: int) -> NoiseSchedule:
    return NoiseSchedule.from_recipe("scaled_linear_by_T", num_timesteps, dtype=torch.float64,
                                     storage_dtype=torch.float32, posterior_log_variance="floor")


@pytest.mark.parametrize("stem", fadm_stems())
def test_fadm_recipe_reproduces_every_stored_buffer_exactly(stem):
    official = fadm_buffers(stem)
    ours = fadm_recipe(len(official["betas"])).buffers(fadm_names=True)
    assert set(official) <= set(ours)
    for name, tensor in official.items():
        assert ours[name].dtype == torch.float32
        assert torch.equal(ours[name], tensor), name


@pytest.mark.parametrize("stem", fadm_stems())
def test_schedule_from_buffers_uses_them_as_given(stem):
    official = fadm_buffers(stem)
    # perturb one buffer: a schedule built from buffers must not re-derive it
    nudged = dict(official, ddim_c1=official["ddim_c1"] * 0.5)
    schedule = NoiseSchedule.from_buffers(nudged)
    assert torch.equal(schedule.ddim_sigma, nudged["ddim_c1"])
    assert torch.equal(schedule.alphas_cumprod, official["alphas_cumprod"])
    assert schedule.dtype == torch.float32 and torch.equal(schedule.timestep_map, torch.arange(len(official["betas"])))


@pytest.mark.parametrize("stem", diffused_heads_stems())
def test_diffused_heads_cosine_and_respaced_betas_match_exactly(stem):
    io = diffused_heads_io(stem)
    schedule = NoiseSchedule.from_recipe("cosine", len(io["schedule_betas_1000"]), dtype=torch.float32)
    assert torch.equal(schedule.betas, io["schedule_betas_1000"])
    for prefix in ("sample", "ar"):
        kept = space_timesteps(schedule.num_steps, len(io[f"{prefix}_betas"]))
        respaced = schedule.respace(kept)
        assert torch.equal(respaced.timestep_map.float(), io[f"{prefix}_timesteps"])
        assert torch.equal(respaced.betas, io[f"{prefix}_betas"])


def test_float64_cosine_schedule_differs_from_the_float32_one_in_the_respaced_tail():
    """Why the dtype is a choice: the last respaced alpha_bar is a few float32 ulps of 1 - beta'."""
    kept = space_timesteps(1000, 10)
    single = NoiseSchedule.from_recipe("cosine", 1000, dtype=torch.float32).respace(kept)
    double = NoiseSchedule.from_recipe("cosine", 1000, dtype=torch.float64).respace(kept)
    assert not torch.equal(single.alphas_cumprod.double(), double.alphas_cumprod)
    assert single.dtype == torch.float32 and double.dtype == torch.float64


def test_space_timesteps_follows_the_guided_diffusion_rules():
    assert space_timesteps(1000, 10) == [0, 111, 222, 333, 444, 555, 666, 777, 888, 999]
    assert space_timesteps(1000, "10") == space_timesteps(1000, [10])
    assert space_timesteps(1000, "ddim10") == list(range(0, 1000, 100))
    assert space_timesteps(100, "2,3") == [0, 49, 50, 74, 99]
    assert space_timesteps(10, "ddim10") == list(range(10))
    with pytest.raises(ValueError):
        space_timesteps(10, "ddim9")  # no integer stride gives 9 of 10
    with pytest.raises(ValueError):
        space_timesteps(10, 11)


def test_recipes():
    assert torch.allclose(make_betas("linear", 5, beta_start=0.1, beta_end=0.5),
                          torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], dtype=torch.float64))
    by_t = make_betas("scaled_linear_by_T", 100)
    assert by_t.dtype == torch.float64 and math.isclose(by_t[0], 1e-3) and math.isclose(by_t[-1], 0.2)
    sd = make_betas("scaled_linear", 1000, beta_start=0.00085, beta_end=0.012)
    assert sd.dtype == torch.float32 and torch.allclose(sd.sqrt().diff(), sd.sqrt().diff()[0].expand(999))
    cosine = make_betas("cosine", 1000)
    alpha_bar = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert math.isclose(cosine[10], 1 - alpha_bar(11 / 1000) / alpha_bar(10 / 1000), rel_tol=1e-12)
    assert cosine.max() == 0.999
    with pytest.raises(ValueError):
        make_betas("quadratic", 10)


def test_derived_arrays_satisfy_their_definitions():
    s = NoiseSchedule.from_recipe("linear", 50, beta_start=1e-3, beta_end=0.3)
    alphas = 1 - s.betas
    assert torch.allclose(s.alphas_cumprod, torch.tensor([alphas[: i + 1].prod() for i in range(50)],
                                                         dtype=torch.float64))
    assert s.alphas_cumprod_prev[0] == 1 and torch.equal(s.alphas_cumprod_prev[1:], s.alphas_cumprod[:-1])
    # improved-DDPM clipping: index 0 takes index 1's log posterior variance
    assert s.posterior_variance[0] == 0
    assert s.posterior_log_variance_clipped[0] == s.posterior_log_variance_clipped[1]
    assert torch.allclose(s.posterior_log_variance_clipped[1:], s.posterior_variance[1:].log())
    assert torch.allclose(s.ddim_sigma ** 2, s.posterior_variance)  # eta = 1 DDIM is DDPM's posterior std


def test_respace_composes_timestep_maps_and_keeps_cumulative_products():
    base = NoiseSchedule.from_recipe("linear", 1000)
    once = base.respace(space_timesteps(1000, 100))
    twice = once.respace(space_timesteps(100, 10))
    direct = [int(once.timestep_map[i]) for i in space_timesteps(100, 10)]
    assert twice.timestep_map.tolist() == direct
    assert torch.allclose(twice.alphas_cumprod, base.alphas_cumprod[twice.timestep_map], rtol=1e-12)
    with pytest.raises(ValueError):
        base.respace([1000])


def test_q_sample_and_parameterisation_round_trips():
    s = NoiseSchedule.from_recipe("cosine", 200)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 57, 199])
    x_t = s.q_sample(x0, t, eps)
    a = s.alphas_cumprod[t].view(-1, 1, 1, 1)
    assert torch.allclose(x_t, a.sqrt() * x0 + (1 - a).sqrt() * eps)
    assert torch.allclose(s.x0_from_eps(x_t, t, eps), x0, atol=1e-9)
    assert torch.allclose(s.eps_from_x0(x_t, t, x0), eps, atol=1e-9)
    v = s.v_from_eps(x0, t, eps)
    x0_v, eps_v = s.x0_eps_from_v(x_t, t, v)
    assert torch.allclose(x0_v, x0, atol=1e-9) and torch.allclose(eps_v, eps, atol=1e-9)
    mean, variance, _ = s.q_posterior(x0, x_t, t)
    assert mean.shape == x0.shape and variance.shape == (3, 1, 1, 1)


def test_schedule_moves_between_devices_without_changing_dtype():
    s = NoiseSchedule.from_recipe("linear", 10).to("cpu")
    assert s.dtype == torch.float64 and s.device.type == "cpu"
    x = torch.zeros(2, 3, dtype=torch.float32)
    assert s.gather(s.betas, torch.tensor([1, 2]), x).dtype == torch.float32
