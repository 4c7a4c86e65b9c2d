"""face-vid2vid rebuilt from the FADM parity fixtures (../shared/parity/fadm, or $FACEANIM_PARITY_DIR/fadm:
see tests/parity.py), the configuration read from the json's `facevid` entry and the weights loaded strictly."""
from __future__ import annotations

from faceanim.methods.facevid.config import FaceVidConfig
from faceanim.methods.facevid.model import COMPONENTS, FaceVidModel, load_official

from ...parity import component, fixture, fixture_dir

SYSTEM = "fadm"
PREFIX = "facevid_"   # fixture keys are `facevid_<component>.<official key>`


def config_from_meta(meta: dict) -> FaceVidConfig:
    return FaceVidConfig.from_official(meta["facevid"], image_size=meta["io_shapes"]["source"][-1])


def checkpoint(weights: dict) -> dict[str, dict]:
    """The official Facevid.pth layout {component: state dict} of a fixture's weights."""
    return {name: component(weights, f"{PREFIX}{name}.") for name in COMPONENTS}


def fixture_model(stem: str) -> FaceVidModel:
    meta, weights, _ = fixture(SYSTEM, stem)
    model = FaceVidModel(config_from_meta(meta))
    load_official(model, checkpoint(weights), source=fixture_dir(SYSTEM) / f"{stem}_weights.safetensors")
    return model.eval()
