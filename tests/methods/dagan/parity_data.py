"""DaGAN rebuilt from a parity fixture (../shared/parity/dagan, or $FACEANIM_PARITY_DIR/dagan: see
tests/parity.py), the configuration read from the fixture's json and the weights loaded strictly."""
from __future__ import annotations

import re

from faceanim.checkpoints import load_into
from faceanim.methods.dagan import DaGANModel, DaGANConfig

from ...parity import fixture, fixture_dir

SYSTEM = "dagan"


def config_from_meta(meta: dict) -> DaGANConfig:
    """The fixture json's official `config` plus its free-text component descriptions."""
    kp_text = meta["kp_detector_input"].lower()
    kp_input = "rgbd" if "rgb" in kp_text and "depth" in kp_text else ("depth" if "depth" in kp_text else "rgb")
    layers = int(re.search(r"num_layers=(\d+)", meta["depth_encoder"]).group(1))
    image_size = meta["io_shapes"]["source"][-1]
    return DaGANConfig.from_official(meta["config"], generator=meta["generator_class"], kp_input=kp_input,
                                     depth_layers=layers, image_size=image_size)


def fixture_model(stem: str) -> DaGANModel:
    meta, weights, _ = fixture(SYSTEM, stem)
    model = DaGANModel(config_from_meta(meta))
    load_into(model, weights, strict=True, source=fixture_dir(SYSTEM) / f"{stem}_weights.safetensors")
    return model.eval()
