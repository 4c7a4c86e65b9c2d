"""Parity with the official FADM renderer and DECA encoder: every `fadm_*` fixture stem, every renderer /
DECA io output, one at a time and batched (face-vid2vid's outputs: tests/methods/facevid).

rel = ||ours - expected|| / ||expected - mean(expected)|| must stay <= 1e-3 (float32, CPU).
The fixture's condition is built from its first driving frame (official 'direct' mode) with the io
`attribute`; its noise is reseeded as the README says (x_T: SEED*1000+999, step i: SEED*1000+i).
"""
from __future__ import annotations

import pytest
import torch

from faceanim.diffusion import SeededNoise
from faceanim.methods.fadm import FADMModel, coarse_condition
from faceanim.methods.fadm.config import vox256
from faceanim.methods.fadm.deca import DECAEncoder, deca_input

from ...parity import TOLERANCE, fixture, full_keys, key_table, relative_error, stem_params
from .parity_data import SYSTEM, deca, renderer

NOISE_SHAPE = (1, 3)


def _check(errors: dict[str, float], label: str) -> None:
    print(f"\n{label}: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    failing = {k: v for k, v in errors.items() if not v <= TOLERANCE}
    assert not failing, f"rel > {TOLERANCE}: {failing}"


def _condition(io: dict, frames: list[int]):
    return coarse_condition(io["driving"][frames], io["attribute"])


@pytest.mark.parametrize("stem", stem_params(SYSTEM))
@torch.no_grad()
def test_denoiser(stem):
    """One denoiser call, alone and as the first row of a batch of three different frames."""
    _, _, io = fixture(SYSTEM, stem)
    model = renderer(stem)
    t = io["denoise_t"].long()
    eps, _ = model.denoise(io["denoise_x_t"], t, _condition(io, [0]))
    batch = io["denoise_x_t"].expand(3, -1, -1, -1)
    eps_batched, _ = model.denoise(batch, t.expand(3), _condition(io, [0, 1, 2]))
    assert relative_error(eps_batched[1], eps_batched[0]) > 1e-2   # the rows really are different frames
    errors = {"denoise_eps": relative_error(eps, io["denoise_eps"]),
              "denoise_eps (batched)": relative_error(eps_batched[:1], io["denoise_eps"])}
    _check(errors, stem)
    # No colour-loss check here: in these fixtures' 'direct' mode both colour references are the same frame,
    # so any network gives 0. The training-time colour loss (the real driving frame as the second
    # reference), its gradients and the inference value are checked in test_training_parity.py.


@pytest.mark.parametrize("stem", stem_params(SYSTEM))
@torch.no_grad()
def test_deca_encoder(stem):
    _, _, io = fixture(SYSTEM, stem)
    encoder = deca(stem)
    frames = torch.cat([io["source"], io["driving"]])
    assert relative_error(deca_input(frames), io["deca_input_224"]) <= TOLERANCE
    one_by_one = torch.cat([encoder(image[None]) for image in io["deca_input_224"]])
    _check({"deca_params": relative_error(one_by_one, io["deca_params"]),
            "deca_params (batched)": relative_error(encoder(io["deca_input_224"]), io["deca_params"])}, stem)


@pytest.mark.slow
@pytest.mark.parametrize("stem", stem_params(SYSTEM))
@torch.no_grad()
def test_sampler(stem):
    """The official sampler (DDIM, eta 1, all T steps, supplied noise shared by the batch), run on a batch
    of two frames: the fixture's frame and another; the first row must reproduce every kept state."""
    meta, _, io = fixture(SYSTEM, stem)
    seed = int(meta["seed"])
    model = renderer(stem)
    shape = tuple(io["sample_x_T"].shape)
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(seed * 1000 + 999))
    assert torch.equal(x_T, io["sample_x_T"])
    noise = SeededNoise(lambda i: seed * 1000 + i, shape=shape)
    out = model.sample(x_T, _condition(io, [0, 1]), noise, keep_intermediates=True)
    kept = torch.cat([state[:1] for state in out.intermediates])
    _check({"sample_final": relative_error(out.sample[:1], io["sample_final"]),
            "sample_intermediates": relative_error(kept, io["sample_intermediates"])}, stem)
    assert relative_error(out.sample[1:], out.sample[:1]) > 1e-2


def test_released_key_set():
    """The released configuration has exactly the official keys, shapes and dtypes of `diffusion.pth`
    and of DECA's E_flame."""
    table = full_keys(SYSTEM, {"diffusion", "deca_E_flame"})
    assert key_table(FADMModel(vox256()).state_dict()) == table["diffusion"]
    assert key_table(DECAEncoder().state_dict()) == table["deca_E_flame"]
