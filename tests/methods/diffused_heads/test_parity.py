"""Parity with every Diffused Heads fixture ($FACEANIM_PARITY_DIR/diffused_heads, produced by the official
train-branch code with random weights): the UNet call and its intermediates, the 10-step sampler, the
3-frame autoregressive sampler (one video, and as a batch of independent videos), the released key layout,
and the traced TorchScript archive read without running it."""
from __future__ import annotations

import functools

import pytest
import torch

from faceanim.methods.diffused_heads.config import DiffusedHeadsConfig, crema
from faceanim.methods.diffused_heads.model import build_unet
from faceanim.methods.diffused_heads.sampling import FrameLoop, FrameNoise, make_schedule, sample_frame, sample_frames
from tests.parity import TOLERANCE, component, fixture, fixture_dir, full_keys, key_table, relative_error, stem_params

SYSTEM = "diffused_heads"
STEMS = stem_params(SYSTEM)


@functools.lru_cache(maxsize=2)
def _model(stem: str):
    meta, weights, io = fixture(SYSTEM, stem)
    unet = build_unet(DiffusedHeadsConfig.from_official(meta["unet_kwargs"])).eval()
    unet.load_state_dict(component(weights, "unet."))
    return meta, unet, io


def _seeded(seed: int, shape=(1, 3, 128, 128)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _close(ours: torch.Tensor, expected: torch.Tensor, tolerance: float = TOLERANCE) -> None:
    assert ours.shape == expected.shape
    assert torch.isfinite(ours).all()
    assert relative_error(ours, expected) < tolerance


@pytest.mark.parametrize("stem", STEMS)
def test_unet_call_and_intermediates(stem):
    meta, unet, io = _model(stem)
    t = io["unet_t"].long()
    with torch.no_grad():
        out = unet(io["unet_x_t"], t, io["unet_x_cond"], io["unet_motion_frames"], io["unet_audio_emb"])
        _close(unet.time_embed.sinusoid(t), io["unet_t_sinusoid"], 1e-6)
        _close(unet.time_embed(t), io["unet_t_emb"], 1e-6)
        audio = io["unet_audio_emb"]
        _close(unet.audio_embed(audio.reshape(audio.shape[0], -1)), io["unet_audio_embed"], 1e-6)
    _close(out, io["unet_out"], 1e-5)


@pytest.mark.parametrize("stem", STEMS)
def test_schedule_is_the_official_float32_schedule(stem):
    _, _, io = fixture(SYSTEM, stem)
    assert torch.equal(make_schedule(1000).betas, io["schedule_betas_1000"])
    for prefix in ("sample", "ar"):
        schedule = make_schedule(1000, len(io[f"{prefix}_betas"]))
        assert torch.equal(schedule.betas, io[f"{prefix}_betas"])
        assert torch.equal(schedule.timestep_map.float(), io[f"{prefix}_timesteps"])


@pytest.mark.parametrize("stem", STEMS)
def test_ten_step_sampler(stem):
    meta, unet, io = _model(stem)
    seed = meta["seed"] * 1000
    schedule = make_schedule(1000, 10)
    states = {}

    def keep(step):
        if step.position in (0, 4, 8):
            states[step.position] = step.x.clone()
    with torch.no_grad():
        final = sample_frame(unet, schedule, _seeded(seed + 999), io["sample_x_cond"], io["sample_motion_frames"],
                             io["sample_audio_emb"], lambda index, like: _seeded(seed + index), callback=keep)
    _close(final, io["sample_final"])
    _close(torch.cat([states[k] for k in (0, 4, 8)]), io["sample_states"])


class _FixtureNoise(FrameNoise):
    """The ar fixture's noise: x_T of all frames in one draw, step noise seeded per frame and index."""

    def __init__(self, seed: int, n_frames: int, batch: int = 1):
        self.seed, self.batch = seed, batch
        self.x_T = _seeded(seed + 998, (1, n_frames, 3, 128, 128))

    def start(self, frame, like):
        return self.x_T[:, frame].expand(self.batch, -1, -1, -1)

    def steps(self, frame):
        return lambda index, like: _seeded(self.seed + 100 * (frame + 1) + index).expand_as(like)


def _ar_loop(unet, io, x_cond, audio):
    return FrameLoop(x_cond, audio, n_motion_frames=unet.config.n_motion_frames,
                     half_window=unet.config.n_audio_motion_embs, grayscale_motion=unet.config.grayscale_motion)


@pytest.mark.parametrize("stem", STEMS)
def test_autoregressive_frames(stem):
    meta, unet, io = _model(stem)
    n_frames = io["ar_audio_emb"].shape[1]
    schedule = make_schedule(1000, len(io["ar_betas"]))
    loop = _ar_loop(unet, io, io["ar_x_cond"], io["ar_audio_emb"])
    windows = []
    original = loop.conditions

    def record(frame):
        motion, audio = original(frame)
        windows.append(audio.clone())
        return motion, audio
    loop.conditions = record
    with torch.no_grad():
        frames = list(sample_frames(unet, schedule, loop, _FixtureNoise(meta["seed"] * 1000, n_frames)))
    _close(torch.stack(frames, dim=1), io["ar_frames"])
    expected_windows = io["ar_audio_emb"][0][io["ar_audio_ids"].long()]
    assert torch.equal(torch.cat(windows), expected_windows)


@pytest.mark.slow
@pytest.mark.parametrize("stem", STEMS)
def test_autoregressive_frames_as_a_batch_of_independent_videos(stem):
    """The fixture's video next to a different one (mirrored identity, reversed audio) in one batch: the
    fixture's row is unchanged; the other row equals its own single-video run."""
    meta, unet, io = _model(stem)
    n_frames = io["ar_audio_emb"].shape[1]
    schedule = make_schedule(1000, len(io["ar_betas"]))
    x_cond = torch.cat([io["ar_x_cond"], io["ar_x_cond"].flip(-1)])
    audio = torch.cat([io["ar_audio_emb"], io["ar_audio_emb"].flip(1)])
    noise = _FixtureNoise(meta["seed"] * 1000, n_frames, batch=2)
    with torch.no_grad():
        batch = torch.stack(list(sample_frames(unet, schedule, _ar_loop(unet, io, x_cond, audio), noise)), dim=1)
        single = torch.stack(list(sample_frames(unet, schedule, _ar_loop(unet, io, x_cond[1:], audio[1:]),
                                                _FixtureNoise(meta["seed"] * 1000, n_frames))), dim=1)
    _close(batch[:1], io["ar_frames"])
    _close(batch[1:], single)   # batch-size-dependent kernels, amplified over frames: ~4e-5


def test_released_configuration_has_the_released_keys_and_shapes():
    expected = full_keys(SYSTEM)["unet"]
    assert key_table(build_unet(crema()).state_dict()) == {k: (shape, dtype) for k, (shape, dtype) in expected.items()}


@pytest.mark.parametrize("stem", STEMS)
def test_traced_archive_reproduces_the_fixture(stem):
    """`<stem>_traced.pt` (torch.jit.trace of the official UNet) read without running its code."""
    archive = fixture_dir(SYSTEM) / f"{stem}_traced.pt"
    if not archive.is_file():
        pytest.skip(f"{archive.name} is not provided for this stem")
    from faceanim.methods.diffused_heads.weights import load_unet

    _, _, io = fixture(SYSTEM, stem)
    unet = load_unet(archive).eval()
    with torch.no_grad():
        out = unet(io["unet_x_t"], io["unet_t"].long(), io["unet_x_cond"], io["unet_motion_frames"],
                   io["unet_audio_emb"])
    _close(out, io["unet_out"], 1e-5)


def test_few_steps_stay_finite():
    """The official float32 `space(n <= 6)` makes the last beta' 1 (NaN samples); ours caps it."""
    official_last = torch.tensor(1.0)
    for steps in (2, 3, 4, 5, 6):
        schedule = make_schedule(1000, steps)
        assert torch.isfinite(schedule.sqrt_recip_alphas_cumprod).all()
        assert bool(schedule.betas[-1] < official_last)
    for steps in (7, 10, 20, 100):
        full = make_schedule(1000)
        respaced = make_schedule(1000, steps)
        index = respaced.timestep_map
        cumprod = full.alphas_cumprod[index]
        previous = torch.cat([torch.ones(1), cumprod[:-1]])
        assert torch.equal(respaced.betas, 1 - cumprod / previous)


def test_few_step_sampling_gives_no_nan():
    from faceanim.methods.diffused_heads.config import tiny

    torch.manual_seed(0)
    unet = build_unet(tiny()).eval()
    for p in unet.parameters():
        torch.nn.init.normal_(p, std=0.05)
    size = unet.config.image_size
    x_cond = torch.rand(1, 3, size, size) * 2 - 1
    audio = torch.randn(1, 4, unet.config.audio_dim)
    for steps in (2, 4, 6):
        loop = FrameLoop(x_cond, audio)
        from faceanim.methods.diffused_heads.sampling import SeededFrameNoise
        noise = SeededFrameNoise(0, 4, (1, 3, size, size))
        with torch.no_grad():
            frames = torch.stack(list(sample_frames(unet, make_schedule(1000, steps), loop, noise)))
        assert torch.isfinite(frames).all() and frames.abs().max() <= 1

