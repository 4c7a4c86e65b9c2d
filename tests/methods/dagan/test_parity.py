"""Parity with the official DaGAN: every fixture stem, every io output, frame by frame and batched.

rel = ||ours - expected|| / ||expected - mean(expected)|| must stay <= 1e-3 (float32, CPU).
"""
from __future__ import annotations

import pytest
import torch

from faceanim.methods.dagan import DaGANModel
from faceanim.methods.dagan.config import vox256
from faceanim.warping.motion import normalize_keypoints

from ...parity import TOLERANCE, fixture, flat_full_keys, key_table, relative_error, stem_params
from .parity_data import SYSTEM, fixture_model

INPUTS = ("source", "driving")


def _animate(model: DaGANModel, source: torch.Tensor, driving: torch.Tensor, kp_initial, animation: dict,
             source_depth: torch.Tensor, kp_source) -> dict:
    depth, depth_logits = model.depth(driving)
    kp_norm = normalize_keypoints(kp_source, model.keypoints(driving, depth), kp_initial,
                                  relative=animation["relative"], relative_jacobian=animation["relative_jacobian"],
                                  adapt_scale=animation["adapt_movement_scale"])
    out = model.generate(source, kp_source, kp_norm, source_depth)
    return dict(driving_depth=depth, driving_depth_logits=depth_logits, kp_norm_value=kp_norm.value,
                kp_norm_jacobian=kp_norm.jacobian, occlusion_map=out["occlusion_map"], deformed=out["deformed"],
                prediction=out["prediction"], prediction_logits=out["prediction_logits"])


@torch.no_grad()
def _reproduce(stem: str, batched: bool) -> dict:
    """The official demo's `make_animation` with the fixture's options, driving frames one at a time
    or all at once."""
    meta, _, io = fixture(SYSTEM, stem)
    animation = meta["animation"]
    assert animation["kp_driving_initial"] == "first driving frame", "unknown initial-frame rule"
    model = fixture_model(stem)
    source, driving = io["source"], io["driving"]
    source_depth, source_logits = model.depth(source)
    kp_source = model.keypoints(source, source_depth)
    kp_initial = model.keypoints(driving[:1], model.depth(driving[:1])[0])
    chunks = [driving] if batched else [driving[i:i + 1] for i in range(driving.shape[0])]
    frames = [_animate(model, source, chunk, kp_initial, animation, source_depth, kp_source) for chunk in chunks]
    ours = {key: torch.cat([frame[key] for frame in frames]) for key in frames[0]}
    ours.update(source_depth=source_depth, source_depth_logits=source_logits, kp_source_value=kp_source.value,
                kp_source_jacobian=kp_source.jacobian)
    return ours


@pytest.mark.parametrize("mode", ["frame_by_frame", "batched"])
@pytest.mark.parametrize("stem", stem_params(SYSTEM))
def test_parity(stem, mode, record_property):
    _, _, io = fixture(SYSTEM, stem)
    ours = _reproduce(stem, batched=mode == "batched")
    outputs = sorted(set(io) - set(INPUTS))
    assert set(outputs) <= set(ours), f"outputs not reproduced: {sorted(set(outputs) - set(ours))}"
    errors = {}
    for key in outputs:
        assert ours[key].shape == io[key].shape, key
        errors[key] = relative_error(ours[key], io[key])
        record_property(f"rel_{key}", errors[key])
    print(f"\n{stem} {mode}: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    failing = {k: v for k, v in errors.items() if not v <= TOLERANCE}
    assert not failing, f"rel > {TOLERANCE}: {failing}"


def test_full_keys():
    """The released configuration has exactly the official keys, shapes and dtypes."""
    expected = flat_full_keys(SYSTEM)
    ours = key_table(DaGANModel(vox256()).state_dict())
    assert sorted(set(expected) - set(ours)) == [] and sorted(set(ours) - set(expected)) == []
    assert {k: v for k, v in ours.items() if expected[k] != v} == {}
