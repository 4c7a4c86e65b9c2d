"""The DaGAN parity fixtures of ../shared/parity/dagan (or $FACEANIM_PARITY_DIR/dagan): discovery, and
a model rebuilt from a fixture's json with its weights loaded strictly."""
from __future__ import annotations

import functools
import importlib
import json
import os
import re
import sys
from pathlib import Path

import pytest

from faceanim.checkpoints import load_into
from faceanim.methods.dagan import DaGANModel, DaGANModelConfig

REPO = Path(__file__).resolve().parents[3]
PARITY_DIR = Path(os.environ.get("FACEANIM_PARITY_DIR", REPO.parent / "shared" / "parity"))
FIXTURES = PARITY_DIR / "dagan"


def stems() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("dagan_*.json")) if FIXTURES.is_dir() else []


def stem_params() -> list:
    """Every fixture stem, or one skipped parameter when there is none."""
    return stems() or [pytest.param(None, marks=pytest.mark.skip(reason=f"no DaGAN parity fixtures in {FIXTURES}"))]


def procedural():
    """shared/parity/procedural.py, which rebuilds the weights a fixture does not store."""
    if str(PARITY_DIR) not in sys.path:
        sys.path.insert(0, str(PARITY_DIR))
    return importlib.import_module("procedural")


def config_from_meta(meta: dict) -> DaGANModelConfig:
    """The fixture json's official `config` plus its free-text component descriptions."""
    kp_text = meta["kp_detector_input"].lower()
    kp_input = "rgbd" if "rgb" in kp_text and "depth" in kp_text else ("depth" if "depth" in kp_text else "rgb")
    layers = int(re.search(r"num_layers=(\d+)", meta["depth_encoder"]).group(1))
    image_size = meta["io_shapes"]["source"][-1]
    return DaGANModelConfig.from_official(meta["config"], generator=meta["generator_class"], kp_input=kp_input,
                                          depth_layers=layers, image_size=image_size)


@functools.lru_cache(maxsize=4)
def fixture(stem: str) -> tuple[dict, dict, dict]:
    """(json meta, all official weights keyed with component prefixes, io tensors)."""
    from safetensors.torch import load_file

    meta = json.loads((FIXTURES / f"{stem}.json").read_text())
    weights = procedural().load_fixture_weights(str(FIXTURES / f"{stem}_weights.safetensors"), meta)
    return meta, weights, load_file(str(FIXTURES / f"{stem}_io.safetensors"))


def fixture_model(stem: str) -> DaGANModel:
    meta, weights, _ = fixture(stem)
    model = DaGANModel(config_from_meta(meta))
    load_into(model, weights, strict=True, source=FIXTURES / f"{stem}_weights.safetensors")
    return model.eval()
