"""face-vid2vid's configuration and the pieces the parity fixtures do not reach: the keypoint Jacobians,
the head-pose decoding and rotation, and config validation."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from faceanim.errors import InputError
from faceanim.methods.facevid.config import FaceVidConfig, tiny, vox256
from faceanim.methods.facevid.head_pose import HeadPose, bins_to_degrees, rotation_matrix, transform_keypoints
from faceanim.methods.facevid.model import FaceVidModel
from faceanim.warping.keypoints import Keypoints


def test_config_round_trip_and_validation():
    for config in (vox256(), tiny()):
        assert FaceVidConfig.from_dict(config.to_dict()) == config
    with pytest.raises(InputError, match="unknown kp_detector settings: colour"):
        FaceVidConfig.from_dict({"kp_detector": {"colour": 1}})
    with pytest.raises(InputError, match="reshape_channel"):
        dataclasses.replace(vox256(), kp_detector=dataclasses.replace(vox256().kp_detector, reshape_channel=1000))
    with pytest.raises(InputError, match="feature_channel"):
        dataclasses.replace(vox256(), feature_channel=16)
    official = {"common": {"num_kp": 10, "estimate_jacobian": True}, "he": {"max_features": 2048},
                "gen": {"dense_motion_params": {"block_expansion": 16, "max_features": 256}}}
    config = FaceVidConfig.from_official(official)
    assert (config.num_kp, config.estimate_jacobian) == (10, True)
    assert (config.generator.dense_motion.block_expansion, config.generator.dense_motion.compress) == (16, 4)


def test_jacobians_start_at_identity_and_rotate():
    model = FaceVidModel(dataclasses.replace(tiny(), estimate_jacobian=True)).eval()
    with torch.no_grad():
        canonical = model.canonical_keypoints(torch.rand(2, 3, 64, 64))
    assert canonical.jacobian.shape == (2, 4, 3, 3)
    assert torch.allclose(canonical.jacobian, torch.eye(3).expand(2, 4, 3, 3), atol=1e-5)
    pose = _pose(yaw=30, pitch=-15, roll=6, batch=2)
    moved = transform_keypoints(canonical, pose)
    rotation = rotation_matrix(*(bins_to_degrees(x) for x in (pose.yaw, pose.pitch, pose.roll)))
    assert torch.allclose(moved.jacobian, rotation[:, None] @ canonical.jacobian, atol=1e-6)


def _pose(yaw: float, pitch: float, roll: float, batch: int = 1, num_kp: int = 4) -> HeadPose:
    """A head pose whose bin logits pick the bins of the given angles (multiples of 3 degrees)."""
    def logits(degrees: float) -> torch.Tensor:
        out = torch.full((batch, 66), -50.0)
        out[:, round((degrees + 99) / 3)] = 50.0
        return out
    return HeadPose(logits(yaw), logits(pitch), logits(roll), torch.zeros(batch, 3), torch.zeros(batch, 3 * num_kp))


def test_head_pose_decoding_and_rotation_order():
    assert torch.allclose(bins_to_degrees(_pose(30, 0, 0).yaw), torch.tensor([30.0]), atol=1e-4)
    # yaw turns about y, pitch about x, roll about z; applied as R_x(pitch) R_y(yaw) R_z(roll), with the
    # official code's 3.14 for pi
    angle = 90 * 3.14 / 180
    point = Keypoints(torch.tensor([[[1.0, 0.0, 0.0]]]))
    turned = transform_keypoints(point, _pose(yaw=90, pitch=0, roll=0, num_kp=1)).value
    assert torch.allclose(turned, torch.tensor([[[math.cos(angle), 0.0, -math.sin(angle)]]]), atol=1e-4)
    rolled = transform_keypoints(point, _pose(yaw=0, pitch=0, roll=90, num_kp=1)).value
    assert torch.allclose(rolled, torch.tensor([[[math.cos(angle), math.sin(angle), 0.0]]]), atol=1e-4)
    pitched = transform_keypoints(Keypoints(torch.tensor([[[0.0, 1.0, 0.0]]])), _pose(0, 90, 0, num_kp=1)).value
    assert torch.allclose(pitched, torch.tensor([[[0.0, math.cos(angle), math.sin(angle)]]]), atol=1e-4)
