"""Official DaGAN weight files: `*.pth.tar` with DDP `module.` prefixes, Monodepth2 `encoder.pth`
(with height/width/use_stereo) and `depth.pth`, written with torch.save and reloaded exactly."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from faceanim.errors import CheckpointError
from faceanim.methods.dagan import DaGANModel
from faceanim.methods.dagan.config import tiny
from faceanim.methods.dagan.weights import load_official

from ...parity import component, fixture, stem_params
from .parity_data import SYSTEM, config_from_meta


def save_official_layout(folder: Path, state: dict) -> dict[str, Path]:
    """Write `state` (keys prefixed by component) as the official code's files."""
    paths = {"checkpoint": folder / "00000149-checkpoint.pth.tar", "depth_encoder": folder / "encoder.pth",
             "depth_decoder": folder / "depth.pth"}
    wrapped = {name: {f"module.{k}": v for k, v in component(state, f"{name}.").items()}
               for name in ("generator", "kp_detector", "discriminator")}
    torch.save({**wrapped, "optimizer_generator": {"state": {}, "param_groups": [{"lr": 2e-4, "params": [0]}]},
                "epoch": np.int64(149)}, paths["checkpoint"])
    torch.save({**component(state, "depth_encoder."), "height": 224, "width": 224, "use_stereo": False},
               paths["depth_encoder"])
    torch.save(component(state, "depth_decoder."), paths["depth_decoder"])
    return paths


def _assert_same_weights(model: DaGANModel, state: dict) -> None:
    ours = model.state_dict()
    assert set(ours) == set(state)
    assert [k for k in ours if not torch.equal(ours[k], state[k].to(ours[k].dtype))] == []


def _randomised(model: DaGANModel) -> dict:
    generator = torch.Generator().manual_seed(3)
    return {k: torch.randn(v.shape, generator=generator) if v.is_floating_point() else v + 7
            for k, v in model.state_dict().items()}


def test_tiny_model_round_trip(tmp_path):
    state = _randomised(DaGANModel(tiny(), discriminator=True))
    paths = save_official_layout(tmp_path, state)
    model = DaGANModel(tiny(), discriminator=True)
    reports = load_official(model, paths["checkpoint"], depth_encoder=paths["depth_encoder"],
                            depth_decoder=paths["depth_decoder"])
    assert sorted(reports) == ["depth_decoder", "depth_encoder", "discriminator", "generator", "kp_detector"]
    assert all(report.ok for report in reports.values())
    _assert_same_weights(model, state)


@pytest.mark.parametrize("stem", stem_params(SYSTEM))
def test_fixture_weights_in_official_layout(stem, tmp_path):
    meta, weights, _ = fixture(SYSTEM, stem)
    paths = save_official_layout(tmp_path, weights)
    model = DaGANModel(config_from_meta(meta))
    load_official(model, paths["checkpoint"], depth_encoder=paths["depth_encoder"],
                  depth_decoder=paths["depth_decoder"])
    _assert_same_weights(model, weights)


def test_files_that_do_not_fit_are_refused(tmp_path):
    state = _randomised(DaGANModel(tiny()))
    paths = save_official_layout(tmp_path, state)
    bigger = DaGANModel(dataclasses.replace(tiny(), num_kp=6))
    with pytest.raises(CheckpointError, match="checkpoint.pth.tar.*shape mismatch"):
        load_official(bigger, paths["checkpoint"])
    torch.save({"generator": {}, "kp_detector": {}}, tmp_path / "partial.pth.tar")
    with pytest.raises(CheckpointError, match="missing"):
        load_official(DaGANModel(tiny()), tmp_path / "partial.pth.tar")
    with pytest.raises(CheckpointError, match="encoder.pth"):
        load_official(DaGANModel(tiny()), depth_encoder=paths["depth_decoder"].with_name("encoder.pth"),
                      depth_decoder=paths["depth_encoder"])  # decoder weights where the encoder's belong
    reports = load_official(DaGANModel(tiny()), tmp_path / "partial.pth.tar", strict=False)
    assert not reports["generator"].ok and reports["generator"].missing
    torch.save({"generator": {}}, tmp_path / "no_kp.pth.tar")
    with pytest.raises(CheckpointError, match="no entry 'kp_detector'"):
        load_official(DaGANModel(tiny()), tmp_path / "no_kp.pth.tar", strict=False)
