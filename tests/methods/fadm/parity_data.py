"""FADM's renderer and DECA encoder rebuilt from a parity fixture (../shared/parity/fadm), weights loaded
strictly under the official names."""
from __future__ import annotations

from faceanim.checkpoints import load_into
from faceanim.methods.fadm import DECAEncoder, FADMModel, FADMConfig

from ...parity import component, fixture, fixture_dir

SYSTEM = "fadm"


def renderer(stem: str) -> FADMModel:
    meta, weights, _ = fixture(SYSTEM, stem)
    model = FADMModel(FADMConfig.from_official(meta["unet_kwargs"], timesteps=meta_timesteps(meta)))
    load_into(model, component(weights, "diffusion."), strict=True, source=fixture_dir(SYSTEM) / stem)
    return model.eval()


def deca(stem: str) -> DECAEncoder:
    _, weights, _ = fixture(SYSTEM, stem)
    encoder = DECAEncoder()
    load_into(encoder, component(weights, "deca_E_flame."), strict=True, source=fixture_dir(SYSTEM) / stem)
    return encoder.eval()


def meta_timesteps(meta: dict) -> int:
    return int(meta["diffusion"]["timesteps"])
