"""Samplers against small references written from the official equations (FADM's generalized_steps,
Diffused Heads' respaced learned-range sample loop), plus analytic properties."""
from __future__ import annotations

import pytest
import torch

from faceanim.diffusion import (GeneratorNoise, NoiseList, NoiseSchedule, SeededNoise, ddim_invert, ddim_sample,
                                ddpm_sample, space_timesteps)

from .parity_schedules import diffused_heads_io, diffused_heads_stems, fadm_buffers, fadm_stems


def toy_denoiser(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Elementwise and batch-independent, so batched and per-sample runs agree bit for bit."""
    phase = t.to(x.dtype).view(-1, *([1] * (x.ndim - 1))) / 37.0
    return 0.6 * torch.tanh(x + torch.sin(phase)) + 0.2 * torch.cos(3 * x - phase)


def toy_learned_range(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """[eps, v] with v in (-1.2, 1.2): slight extrapolation beyond the [beta-tilde, beta] range."""
    return torch.cat([toy_denoiser(x, t), 1.2 * torch.tanh(2 * x + 0.3)], dim=1)


def true_eps_denoiser(schedule: NoiseSchedule, x0: torch.Tensor):
    """The exact eps for data concentrated at x0: eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar)."""
    inverse_map = {int(t): i for i, t in enumerate(schedule.timestep_map)}

    def denoise(x, t):
        index = torch.tensor([inverse_map[int(v)] for v in t])
        a = schedule.gather(schedule.alphas_cumprod, index, x)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()
    return denoise


def seeded_noise(count: int, shape, offset: int = 0) -> list[torch.Tensor]:
    return [torch.randn(shape, generator=torch.Generator().manual_seed(offset + i)) for i in range(count)]


# ---------------------------------------------------------------- references from the official equations
def fadm_reference(denoise, x, buffers, noise_list, keep_every):
    """FADM generalized_steps: DDIM over all steps with c1 = ddim_c1, x0 unclipped."""
    kept = [x]
    for i in reversed(range(len(buffers["betas"]))):
        t = torch.full((x.shape[0],), i, dtype=torch.long)
        at = buffers["alphas_cumprod"][t].view(-1, 1, 1, 1)
        at_next = buffers["alphas_cumprod_prev"][t].view(-1, 1, 1, 1)
        et = denoise(x, t)
        x0 = (x - et * (1 - at).sqrt()) / at.sqrt()
        c1 = 1.0 * buffers["ddim_c1"][t].view(-1, 1, 1, 1)
        c2 = ((1 - at_next) - c1 ** 2).sqrt()
        x = at_next.sqrt() * x0 + c1 * noise_list[i] + c2 * et
        if i % keep_every == 0:
            kept.append(x)
    return x, kept


def diffused_heads_reference(denoise, x, betas, timesteps, noise_of):
    """Diffused Heads sample_loop after space(): float32 arrays recomputed from the respaced betas."""
    alpha = 1 - betas
    abar = torch.cumprod(alpha, 0)
    abar_prev = torch.cat([torch.ones(1), abar[:-1]])
    beta_tilde = betas * (1 - abar_prev) / (1 - abar)
    log_bt = torch.log(torch.cat([beta_tilde[1, None], beta_tilde[1:]]))
    c1x, c2x = torch.sqrt(1 / abar), torch.sqrt(1 / abar - 1)
    c1q, c2q = betas * torch.sqrt(abar_prev) / (1 - abar), (1 - abar_prev) * torch.sqrt(alpha) / (1 - abar)
    for i, t in reversed(list(enumerate(timesteps))):
        out = denoise(x, torch.tensor([t] * x.shape[0]))
        eps, nu = out.chunk(2, 1)
        nu = (nu + 1) / 2
        logvar = nu * torch.log(betas[i]).view(1, 1, 1, 1) + (1 - nu) * log_bt[i].view(1, 1, 1, 1)
        x0 = (c1x[i].view(1, 1, 1, 1) * x - c2x[i].view(1, 1, 1, 1) * eps).clamp(-1, 1)
        mean = c1q[i].view(1, 1, 1, 1) * x0 + c2q[i].view(1, 1, 1, 1) * x
        noise = noise_of(i) if t > 0 else torch.zeros_like(x)
        x = mean + noise * torch.exp(logvar / 2)
    return x


def fadm_schedule_buffers(stem) -> dict[str, torch.Tensor]:
    if stem is not None:
        return fadm_buffers(stem)
    return NoiseSchedule.from_recipe("scaled_linear_by_T", 100, dtype=torch.float64, storage_dtype=torch.float32,
                                     posterior_log_variance="floor").buffers(fadm_names=True)


# ---------------------------------------------------------------- DDIM
@pytest.mark.parametrize("stem", fadm_stems())
def test_ddim_eta1_equals_fadm_generalized_steps_bit_for_bit(stem):
    buffers = fadm_buffers(stem)
    steps = len(buffers["betas"])
    x_T = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(999))
    noise_list = seeded_noise(steps, (1, 3, 16, 16))
    keep = 1 | (steps // 10)
    expected, expected_kept = fadm_reference(toy_denoiser, x_T, buffers, noise_list, keep)
    out = ddim_sample(toy_denoiser, x_T, NoiseSchedule.from_buffers(buffers), eta=1.0,
                      noise=NoiseList(noise_list), keep_every=keep)
    assert torch.equal(out.sample, expected)
    assert len(out.intermediates) == len(expected_kept) == 11
    assert all(torch.equal(a, b) for a, b in zip(out.intermediates, expected_kept))
    assert torch.equal(out.intermediates[-1], out.sample)


def test_shared_noise_over_a_batch_equals_per_frame_runs():
    """FADM reuses one x_T and one noise list for every frame: a batch-1 noise broadcasts."""
    schedule = NoiseSchedule.from_buffers(fadm_schedule_buffers(None))
    noise = NoiseList(seeded_noise(100, (1, 3, 8, 8)))
    frames = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    batched = ddim_sample(toy_denoiser, frames, schedule, eta=1.0, noise=noise).sample
    for k in range(3):
        single = ddim_sample(toy_denoiser, frames[k:k + 1], schedule, eta=1.0, noise=noise).sample
        assert torch.equal(batched[k:k + 1], single)


def test_ddim_eta0_with_the_true_eps_recovers_x0():
    schedule = NoiseSchedule.from_recipe("linear", 1000).respace(space_timesteps(1000, "ddim20"))
    x0 = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    x_T = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = ddim_sample(true_eps_denoiser(schedule, x0), x_T, schedule, eta=0.0)
    assert torch.allclose(out.sample, x0, atol=1e-10, rtol=0)


def test_ddim_inversion_then_reconstruction_round_trips():
    schedule = NoiseSchedule.from_recipe("linear", 1000)
    x0 = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2 - 1
    exact = true_eps_denoiser(schedule.respace(space_timesteps(1000, "ddim10")), x0)
    coarse = schedule.respace(space_timesteps(1000, "ddim10"))
    x_T = ddim_invert(exact, x0, coarse)
    assert torch.allclose(ddim_sample(exact, x_T, coarse).sample, x0, atol=1e-10, rtol=0)
    # a generic denoiser: the ODE round trip error shrinks as the steps get finer (over the first 300
    # timesteps; near T the steps in sqrt(1/abar - 1) are too coarse for a denoiser that is not a score)
    errors = []
    for count in (10, 100):
        fine = schedule.respace(space_timesteps(300, count))
        latent = ddim_invert(toy_denoiser, x0, fine)
        errors.append((ddim_sample(toy_denoiser, latent, fine).sample - x0).abs().max().item())
    assert errors[1] < errors[0] / 5 and errors[1] < 2e-2


def test_ddim_over_a_subset_equals_ddim_on_the_respaced_schedule():
    full = NoiseSchedule.from_recipe("linear", 1000)
    kept = space_timesteps(1000, 25)
    respaced = full.respace(kept)
    x_T = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    seen: dict[str, list[int]] = {"subset": [], "respaced": []}

    def recording(name):
        def denoise(x, t):
            seen[name].append(int(t[0]))
            return toy_denoiser(x, t)
        return denoise

    noise = SeededNoise(lambda i: 100 + i)
    by_subset = ddim_sample(recording("subset"), x_T, full, timesteps=kept, eta=0.5,
                            noise=NoiseList({k: noise(i, x_T) for i, k in enumerate(kept)}))
    by_respacing = ddim_sample(recording("respaced"), x_T, respaced, eta=0.5, noise=noise)
    assert seen["subset"] == seen["respaced"] == kept[::-1]
    assert torch.allclose(by_subset.sample, by_respacing.sample, atol=1e-10, rtol=0)


def test_ddim_clipping_and_parameterisations():
    schedule = NoiseSchedule.from_recipe("cosine", 100)
    x_T = 3 * torch.randn(1, 2, 4, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    clipped = ddim_sample(toy_denoiser, x_T, schedule, timesteps=range(0, 100, 10), clip_x0=(-0.5, 0.5))
    assert clipped.sample.abs().max() <= 0.5 + 1e-12  # the last step returns the clamped x0
    # the same model expressed as a v-predictor gives the same trajectory
    def as_v(x, t):
        a = schedule.gather(schedule.alphas_cumprod, t, x)
        eps = toy_denoiser(x, t)
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        return a.sqrt() * eps - (1 - a).sqrt() * x0
    eps_run = ddim_sample(toy_denoiser, x_T, schedule, timesteps=range(0, 100, 10)).sample
    v_run = ddim_sample(as_v, x_T, schedule, timesteps=range(0, 100, 10), prediction="v").sample
    assert torch.allclose(eps_run, v_run, atol=1e-9)
    with pytest.raises(ValueError):
        ddim_sample(toy_denoiser, x_T, schedule, eta=1.0)  # stochastic without a noise source


def test_callback_reports_every_step_and_dtype_is_kept():
    schedule = NoiseSchedule.from_recipe("cosine", 1000, dtype=torch.float32).respace(space_timesteps(1000, 8))
    steps = []
    x_T = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    out = ddpm_sample(toy_learned_range, x_T, schedule, GeneratorNoise(torch.Generator().manual_seed(0)),
                      variance="learned_range", callback=steps.append)
    assert out.sample.dtype == torch.float64 and out.intermediates == ()
    assert [s.index for s in steps] == list(range(7, -1, -1)) and [s.position for s in steps] == list(range(8))
    assert [s.timestep for s in steps] == [999, 856, 714, 571, 428, 285, 143, 0] and steps[-1].total == 8
    assert torch.equal(steps[-1].x, out.sample)


# ---------------------------------------------------------------- DDPM
def diffused_heads_respaced(stem) -> tuple[NoiseSchedule, torch.Tensor]:
    io = diffused_heads_io(stem) if stem is not None else None
    steps = len(io["sample_betas"]) if io is not None else 10
    schedule = NoiseSchedule.from_recipe("cosine", 1000, dtype=torch.float32).respace(space_timesteps(1000, steps))
    return schedule, (io["sample_betas"] if io is not None else schedule.betas)


@pytest.mark.parametrize("stem", diffused_heads_stems())
def test_learned_range_ddpm_equals_the_diffused_heads_loop_bit_for_bit(stem):
    schedule, official_betas = diffused_heads_respaced(stem)
    x_T = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(999))
    noise = SeededNoise(lambda i: i, shape=(1, 3, 16, 16))
    expected = diffused_heads_reference(toy_learned_range, x_T, official_betas, schedule.timestep_map.tolist(),
                                        lambda i: noise(i, x_T))
    out = ddpm_sample(toy_learned_range, x_T, schedule, noise, variance="learned_range")
    assert torch.equal(out.sample, expected)
    assert out.sample.abs().max() <= 1  # the last step returns the clamped x0


@pytest.mark.parametrize("v, fixed", [(1.0, "beta"), (-1.0, "posterior")])
def test_learned_range_at_its_ends_is_fixed_variance_sampling(v, fixed):
    schedule, _ = diffused_heads_respaced(None)
    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    noise = SeededNoise(lambda i: 50 + i)
    learned = ddpm_sample(lambda x, t: torch.cat([toy_denoiser(x, t), torch.full_like(x, v)], 1),
                          x_T, schedule, noise, variance="learned_range", keep_every=1)
    fixed_run = ddpm_sample(toy_denoiser, x_T, schedule, noise, variance=fixed, keep_every=1)
    assert all(torch.equal(a, b) for a, b in zip(learned.intermediates, fixed_run.intermediates))
    assert len(learned.intermediates) == schedule.num_steps + 1


def test_noise_sources_are_reproducible_and_seed_dependent():
    schedule, _ = diffused_heads_respaced(None)
    x_T = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(8))
    run = lambda source: ddpm_sample(toy_denoiser, x_T, schedule, source).sample  # noqa: E731
    assert torch.equal(run(SeededNoise(lambda i: i)), run(SeededNoise(lambda i: i)))
    assert not torch.allclose(run(SeededNoise(lambda i: i)), run(SeededNoise(lambda i: 1000 + i)))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(run(GeneratorNoise(g1)), run(GeneratorNoise(g2)))
    with pytest.raises(ValueError):
        NoiseList([torch.zeros(2, 3, 8, 8)])(0, torch.zeros(3, 3, 8, 8))
    with pytest.raises(IndexError):
        NoiseList([])(0, x_T)


def guided_reference(denoise, x, schedule, clip, invert):
    """DiffAE / DVA (guided-diffusion): float64 arrays cast to float32 per coefficient, x0 from the
    reciprocal coefficients and clamped, eps re-derived from x0; eta = 0."""
    f32 = lambda a, i: a[i].float()  # noqa: E731
    order = range(schedule.num_steps - 1) if invert else reversed(range(schedule.num_steps))
    for i in order:
        eps = denoise(x, torch.tensor([int(schedule.timestep_map[i])] * x.shape[0]))
        x0 = f32(schedule.sqrt_recip_alphas_cumprod, i) * x - f32(schedule.sqrt_recipm1_alphas_cumprod, i) * eps
        x0 = x0.clamp(*clip)
        eps = (f32(schedule.sqrt_recip_alphas_cumprod, i) * x - x0) / f32(schedule.sqrt_recipm1_alphas_cumprod, i)
        target = schedule.alphas_cumprod[i + 1] if invert else schedule.alphas_cumprod_prev[i]
        x = x0 * target.sqrt().float() + (1 - target).sqrt().float() * eps
    return x


def test_ddim_and_inversion_follow_the_dva_loops_with_clipping():
    schedule = NoiseSchedule.from_recipe("linear", 1000).respace(space_timesteps(1000, "ddim10"))
    x0 = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(9)) * 2 - 1
    x_T = ddim_invert(toy_denoiser, x0, schedule, clip_x0=(-1, 1))
    expected_T = guided_reference(toy_denoiser, x0, schedule, (-1, 1), invert=True)
    recon = ddim_sample(toy_denoiser, x_T, schedule, clip_x0=(-1, 1)).sample
    expected_recon = guided_reference(toy_denoiser, expected_T, schedule, (-1, 1), invert=False)
    for ours, ref in ((x_T, expected_T), (recon, expected_recon)):
        assert ours.dtype == torch.float32
        assert ((ours - ref).norm() / (ref - ref.mean()).norm()) < 1e-5


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_samplers_run_on_the_state_device_with_a_cpu_schedule(device):
    schedule = NoiseSchedule.from_recipe("linear", 1000).respace(space_timesteps(1000, "ddim10"))
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    noise = SeededNoise(lambda i: i)
    expected = ddim_sample(toy_denoiser, x, schedule, eta=1.0, noise=noise).sample
    got = ddim_sample(toy_denoiser, x.to(device), schedule, eta=1.0, noise=noise).sample
    assert got.device.type == device and torch.allclose(got.cpu(), expected, atol=1e-5)
    latent = ddim_invert(toy_denoiser, x.to(device), schedule.to(device))
    assert latent.device.type == device
