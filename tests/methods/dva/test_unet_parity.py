"""Parity of the DVA autoencoding UNet and its DDIM loops with every DVA fixture ($FACEANIM_PARITY_DIR/dva,
made by the official code with random weights at a reduced width): one UNet call, the 10-step DDIM
inversion (`ddim_reverse_sample_loop`) of the frames and the reconstruction from the fixture's x_T, each as
a batch and frame by frame; and the released checkpoint's `model.*` key table (encoder excluded).

The fixture's UNet call and both loops are conditioned on `cond_avg_id` (z_face built from the
batch-averaged identity, as in editing), not on the per-frame `cond`: with `cond` the UNet call is off by
a relative 0.4, with `cond_avg_id` it agrees to 2e-6."""
from __future__ import annotations

import functools
import re

import pytest
import torch

from faceanim.methods.dva.config import DVAConfig, tiny, vox256
from faceanim.methods.dva.model import BeatGANsAutoencUNet
from faceanim.methods.dva.sampling import ddim_encode, ddim_reconstruct, ddim_schedule
from tests.parity import (TOLERANCE, component, fixture, flat_full_keys, key_table, relative_error,
                          stem_params)

SYSTEM = "dva"
STEMS = stem_params(SYSTEM)
COND = "cond_avg_id"       # the conditioning the fixture's UNet call and loops used
UNET_TOLERANCE = 1e-4


def _steps(meta) -> int:
    """The DDIM step count the fixture's json names ("ddim10: ..."; 10 when it names none)."""
    found = re.search(r"ddim(\d+)", str(meta.get("sampler", "")))
    return int(found.group(1)) if found else 10


@functools.lru_cache(maxsize=1)
def _model(stem: str):
    meta, weights, io = fixture(SYSTEM, stem)
    config = DVAConfig.from_parity(meta["model_conf"])
    unet = BeatGANsAutoencUNet(config).eval()
    state = {k: v for k, v in component(weights, "model.").items() if not k.startswith("encoder.")}
    unet.load_state_dict(state, strict=True)
    return meta, config, unet, io


def _close(ours: torch.Tensor, expected: torch.Tensor, tolerance: float) -> float:
    assert ours.shape == expected.shape
    assert torch.isfinite(ours).all()
    error = relative_error(ours, expected)
    assert error < tolerance, error
    return error


def _frames(fn, *tensors, rows=None):
    """`fn` applied to each batch row (or to `rows`) on its own (batch 1), the results stacked."""
    rows = range(tensors[0].shape[0]) if rows is None else rows
    return torch.cat([fn(*(t[i:i + 1] for t in tensors)) for i in rows])


def _ends(tensor: torch.Tensor) -> list[int]:
    """The first and the last row: the loops' frame-by-frame check (each row costs a whole loop)."""
    return sorted({0, tensor.shape[0] - 1})


def test_key_table_is_the_released_models():
    expected = {k[len("model."):]: v for k, v in flat_full_keys(SYSTEM).items()
                if k.startswith("model.") and not k.startswith("model.encoder.")}
    assert key_table(BeatGANsAutoencUNet(vox256()).state_dict()) == expected


def test_the_whole_model_has_the_released_keys_and_shapes():
    """UNet and semantic encoder together (`DVAModel`): every `model.*` name and shape of the release."""
    from faceanim.methods.dva.model import DVAModel

    expected = {k[len("model."):]: v for k, v in flat_full_keys(SYSTEM).items() if k.startswith("model.")}
    assert key_table(DVAModel(vox256()).state_dict()) == expected


def test_tiny_preset_runs():
    config = tiny()
    unet = BeatGANsAutoencUNet(config).eval()
    x = torch.randn(2, 3, config.img_size, config.img_size)
    with torch.no_grad():
        out = unet(x, torch.tensor([0, 999]), torch.randn(2, config.style_ch))
    assert out.shape == x.shape


@pytest.mark.parametrize("stem", STEMS)
def test_schedule_timesteps(stem):
    meta, config, _, _ = _model(stem)
    steps = _steps(meta)
    schedule = ddim_schedule(steps, config)
    assert schedule.timestep_map.tolist() == list(range(0, config.T, config.T // steps))
    assert schedule.dtype == torch.float64


@pytest.mark.parametrize("stem", STEMS)
def test_unet_call(stem):
    _, _, unet, io = _model(stem)
    with torch.no_grad():
        batched = unet(io["unet_x_t"], io["unet_t"], io[COND])
        frames = _frames(lambda x, t, c: unet(x, t, c), io["unet_x_t"], io["unet_t"], io[COND])
    _close(batched, io["unet_eps"], UNET_TOLERANCE)
    _close(frames, io["unet_eps"], UNET_TOLERANCE)


@pytest.mark.parametrize("stem", STEMS)
def test_ddim_inversion(stem):
    meta, config, unet, io = _model(stem)
    with torch.no_grad():
        batched = ddim_encode(unet, io["x0"], io[COND], _steps(meta), config=config)
        rows = _ends(io["x0"])
        frames = _frames(lambda x, c: ddim_encode(unet, x, c, _steps(meta), config=config), io["x0"], io[COND],
                         rows=rows)
    _close(batched, io["ddim_xT"], UNET_TOLERANCE)
    _close(frames, io["ddim_xT"][rows], UNET_TOLERANCE)


@pytest.mark.parametrize("stem", STEMS)
def test_ddim_reconstruction(stem):
    meta, config, unet, io = _model(stem)
    with torch.no_grad():
        batched = ddim_reconstruct(unet, io["ddim_xT"], io[COND], _steps(meta), config=config)
        rows = _ends(io["ddim_xT"])
        frames = _frames(lambda x, c: ddim_reconstruct(unet, x, c, _steps(meta), config=config), io["ddim_xT"],
                         io[COND], rows=rows)
    _close(batched, io["ddim_recon"], TOLERANCE)
    _close(frames, io["ddim_recon"][rows], TOLERANCE)
