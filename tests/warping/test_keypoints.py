"""Keypoints, dense motion, the FOMM generator and the discriminator on hand-made inputs."""
from __future__ import annotations

import math

import pytest
import torch

from faceanim.warping.dense_motion import DenseMotionNetwork, sparse_motions
from faceanim.warping.discriminator import MultiScaleDiscriminator
from faceanim.warping.generator import OcclusionAwareGenerator, deform_input
from faceanim.warping.keypoints import KPDetector, Keypoints, heatmap_mean, kp2gaussian, make_coordinate_grid


def test_coordinate_grid():
    grid = make_coordinate_grid((3, 5))
    assert grid.shape == (3, 5, 2)
    assert grid[0, 0].tolist() == [-1, -1] and grid[2, 4].tolist() == [1, 1]
    assert grid[1, 2].tolist() == [0, 0]
    assert grid[0, 1].tolist() == [-0.5, -1]  # x first, then y


def test_kp2gaussian_peaks_at_the_keypoint():
    value = torch.tensor([[[0.0, 0.0], [-1.0, 1.0]]])
    heat = kp2gaussian(value, (5, 5), kp_variance=0.01)
    assert heat.shape == (1, 2, 5, 5)
    assert heat[0, 0, 2, 2] == 1 and heat[0, 1, 4, 0] == 1
    assert math.isclose(heat[0, 0, 2, 3].item(), math.exp(-0.5 * 0.25 / 0.01), rel_tol=1e-5)


def test_soft_argmax_of_a_peaked_heatmap():
    heatmap = torch.zeros(1, 2, 9, 9)
    heatmap[0, 0, 2, 6] = 1                      # row 2, column 6
    heatmap[0, 1, 4, 4] = heatmap[0, 1, 4, 8] = 0.5  # two equal peaks: the mean lies between them
    value = heatmap_mean(heatmap)
    assert torch.allclose(value[0, 0], torch.tensor([0.5, -0.5]))
    assert torch.allclose(value[0, 1], torch.tensor([0.5, 0.0]))


def test_kp_detector_outputs_and_identity_jacobian():
    torch.manual_seed(0)
    detector = KPDetector(block_expansion=8, num_kp=4, num_channels=4, max_features=32, num_blocks=3,
                          temperature=0.1, estimate_jacobian=True, scale_factor=0.25).eval()
    assert detector.down.weight.shape == (4, 1, 13, 13)
    kp = detector(torch.rand(2, 4, 64, 64))
    assert kp.value.shape == (2, 4, 2) and kp.jacobian.shape == (2, 4, 2, 2)
    assert kp.value.abs().max() <= 1
    # zero weights + bias [1, 0, 0, 1]: every heatmap averages the identity
    assert torch.allclose(kp.jacobian, torch.eye(2).expand(2, 4, 2, 2), atol=1e-6)
    no_jacobian = KPDetector(8, 4, 3, 32, 3, 0.1, estimate_jacobian=False, scale_factor=0.25)
    assert no_jacobian(torch.rand(1, 3, 64, 64)).jacobian is None and "jacobian.weight" not in no_jacobian.state_dict()


def test_kp_detector_follows_a_bright_spot():
    """Heatmap logits that are the input itself: the keypoint is the spot's position."""
    detector = KPDetector(block_expansion=2, num_kp=1, num_channels=1, max_features=4, num_blocks=1,
                          temperature=0.01, pad=3)
    detector.predictor = torch.nn.Identity()
    detector.kp = torch.nn.Conv2d(1, 1, 1, bias=False)
    torch.nn.init.ones_(detector.kp.weight)
    image = torch.zeros(1, 1, 33, 33)
    image[0, 0, 8, 24] = 1
    assert torch.allclose(detector(image).value[0, 0], torch.tensor([0.5, -0.5]), atol=1e-3)


def test_sparse_motion_is_the_first_order_transform():
    identity_jacobian = torch.eye(2).expand(1, 1, 2, 2)
    kp_source = Keypoints(torch.tensor([[[0.2, -0.1]]]), 2 * identity_jacobian)
    kp_driving = Keypoints(torch.tensor([[[0.0, 0.0]]]), identity_jacobian)
    motions = sparse_motions((5, 5), kp_driving, kp_source)
    grid = make_coordinate_grid((5, 5))
    assert motions.shape == (1, 2, 5, 5, 2)
    assert torch.equal(motions[0, 0], grid)                      # background: identity
    assert torch.allclose(motions[0, 1], 2 * grid + torch.tensor([0.2, -0.1]))  # p_S + J (z - p_D)


def test_dense_motion_network_outputs():
    torch.manual_seed(0)
    network = DenseMotionNetwork(block_expansion=4, num_blocks=2, max_features=16, num_kp=3, num_channels=3,
                                 estimate_occlusion_map=True, scale_factor=0.5).eval()
    kp = Keypoints(torch.rand(2, 3, 2) * 2 - 1, torch.eye(2).expand(2, 3, 2, 2))
    motion = network(torch.rand(2, 3, 32, 32), kp, kp)
    assert motion.deformation.shape == (2, 16, 16, 2) and motion.mask.shape == (2, 4, 16, 16)
    assert motion.sparse_deformed.shape == (2, 4, 3, 16, 16) and motion.occlusion_map.shape == (2, 1, 16, 16)
    assert torch.allclose(motion.mask.sum(1), torch.ones(2, 16, 16), atol=1e-5)
    # same source and driving keypoints: every transform is the identity, so the blend is too
    assert torch.allclose(motion.deformation, make_coordinate_grid((16, 16)).expand(2, 16, 16, 2), atol=1e-5)


def test_deform_input_identity_shift_and_flow_resize():
    """grid_sample runs with align_corners=False (the official default): pixel centres sit at
    (2i + 1) / n - 1, so that grid is the identity."""
    image = torch.rand(1, 3, 8, 8)
    centres = (2 * torch.arange(8) + 1) / 8 - 1
    identity = torch.stack([centres.view(1, 8).expand(8, 8), centres.view(8, 1).expand(8, 8)], dim=2)[None]
    assert torch.allclose(deform_input(image, identity), image, atol=1e-6)
    shifted = identity + torch.tensor([2 / 8, 0.0])  # one pixel to the right
    assert torch.allclose(deform_input(image, shifted)[..., :-1], image[..., 1:], atol=1e-6)
    centre_flow = torch.zeros(1, 4, 4, 2)  # a coarser flow is resized to the image first
    expected = image[..., 3:5, 3:5].mean(dim=(2, 3))[..., None, None].expand(1, 3, 8, 8)
    assert torch.allclose(deform_input(image, centre_flow), expected, atol=1e-6)


def test_occlusion_aware_generator():
    torch.manual_seed(0)
    generator = OcclusionAwareGenerator(
        num_channels=3, num_kp=3, block_expansion=8, max_features=32, num_down_blocks=2, num_bottleneck_blocks=1,
        estimate_occlusion_map=True,
        dense_motion_params=dict(block_expansion=4, max_features=16, num_blocks=2, scale_factor=0.25)).eval()
    assert "bottleneck.r0.conv1.weight" in generator.state_dict()
    kp_source = Keypoints(torch.rand(1, 3, 2) * 2 - 1, torch.eye(2).expand(1, 3, 2, 2))
    kp_driving = Keypoints(torch.rand(3, 3, 2) * 2 - 1, torch.eye(2).expand(3, 3, 2, 2))
    out = generator(torch.rand(1, 3, 32, 32), kp_driving, kp_source)  # batch-1 source, 3 driving frames
    assert out["prediction"].shape == (3, 3, 32, 32) and out["occlusion_map"].shape == (3, 1, 8, 8)
    assert torch.equal(out["prediction"], torch.sigmoid(out["prediction_logits"]))
    assert out["deformed"].shape == (3, 3, 32, 32)


@pytest.mark.parametrize("sn", [False, True])
def test_multiscale_discriminator(sn):
    disc = MultiScaleDiscriminator(scales=(1, 0.5), num_channels=3, block_expansion=8, num_blocks=3,
                                   max_features=32, sn=sn, use_kp=True, num_kp=4)
    keys = set(disc.state_dict())
    assert "discs.1.down_blocks.0.conv." + ("weight_orig" if sn else "weight") in keys
    assert "discs.0-5.down_blocks.1.norm.weight" in keys and "discs.1.down_blocks.0.norm.weight" not in keys
    assert disc.discs["1"].down_blocks[0].conv.in_channels == 3 + 4
    kp = Keypoints(torch.rand(2, 4, 2) * 2 - 1)
    out = disc({1: torch.rand(2, 3, 64, 64), 0.5: torch.rand(2, 3, 32, 32)}, kp)
    assert len(out[1].feature_maps) == 3 and out[1].prediction_map.shape == (2, 1, 10, 10)
    assert out[0.5].prediction_map.shape == (2, 1, 2, 2)
