"""The face-vid2vid part of the FADM parity fixtures (../shared/parity/fadm or $FACEANIM_PARITY_DIR/fadm):
discovery, and a model built from a fixture's json `facevid` entry with its weights loaded strictly."""
from __future__ import annotations

import functools
import importlib
import json
import os
import sys
from pathlib import Path

import pytest

from faceanim.warping.facevid import FaceVidConfig, FaceVidModel, load_official
from faceanim.warping.facevid.model import COMPONENTS

REPO = Path(__file__).resolve().parents[3]
PARITY_DIR = Path(os.environ.get("FACEANIM_PARITY_DIR", REPO.parent / "shared" / "parity"))
FIXTURES = PARITY_DIR / "fadm"
PREFIX = "facevid_"   # fixture keys are `facevid_<component>.<official key>`


def stems() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("fadm_*.json")) if FIXTURES.is_dir() else []


def stem_params() -> list:
    """Every fixture stem, or one skipped parameter when there is none."""
    return stems() or [pytest.param(None, marks=pytest.mark.skip(reason=f"no FADM parity fixtures in {FIXTURES}"))]


def procedural():
    """shared/parity/procedural.py, which rebuilds the weights a fixture does not store."""
    if str(PARITY_DIR) not in sys.path:
        sys.path.insert(0, str(PARITY_DIR))
    return importlib.import_module("procedural")


def config_from_meta(meta: dict) -> FaceVidConfig:
    return FaceVidConfig.from_official(meta["facevid"], image_size=meta["io_shapes"]["source"][-1])


@functools.lru_cache(maxsize=4)
def fixture(stem: str) -> tuple[dict, dict, dict]:
    """(json meta, the official Facevid.pth layout {component: state dict}, io tensors)."""
    from safetensors.torch import load_file

    meta = json.loads((FIXTURES / f"{stem}.json").read_text())
    weights = procedural().load_fixture_weights(str(FIXTURES / f"{stem}_weights.safetensors"), meta)
    checkpoint = {name: {key[len(PREFIX + name) + 1:]: value for key, value in weights.items()
                         if key.startswith(f"{PREFIX}{name}.")}
                  for name in COMPONENTS}
    return meta, checkpoint, load_file(str(FIXTURES / f"{stem}_io.safetensors"))


def fixture_model(stem: str) -> FaceVidModel:
    meta, checkpoint, _ = fixture(stem)
    model = FaceVidModel(config_from_meta(meta))
    load_official(model, checkpoint, source=FIXTURES / f"{stem}_weights.safetensors")
    return model.eval()
