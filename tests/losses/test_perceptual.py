"""Pyramid perceptual loss: zero on equal images, the official sum over layers and scales, gradients."""
from __future__ import annotations

import pytest
import torch

from faceanim.losses import ImagePyramid, PyramidPerceptualLoss
from faceanim.nn.backbones import VGG19Features, imagenet_normalize
from faceanim.nn.blocks import AntiAliasInterpolation2d


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return VGG19Features()


def test_zero_on_identical_images_positive_otherwise(vgg):
    loss = PyramidPerceptualLoss(vgg, scales=(1, 0.5))
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    assert loss(a, a).item() == 0.0
    assert loss(a, b).item() > 0
    assert loss(a, (a + 0.05).clamp(0, 1)).item() < loss(a, b).item()


def test_value_is_the_weighted_sum_over_layers_and_scales(vgg):
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    weights, scales = (1.0, 2.0, 0.0, 3.0, 0.5), (1, 0.5)
    expected = 0.0
    for scale in scales:
        down = AntiAliasInterpolation2d(3, scale)
        fa, fb = vgg(imagenet_normalize(down(a))), vgg(imagenet_normalize(down(b)))
        expected += sum(w * (x - y).abs().mean() for w, x, y in zip(weights, fa, fb))
    got = PyramidPerceptualLoss(vgg, scales=scales, layer_weights=weights)(a, b)
    assert torch.allclose(got, expected, rtol=1e-5)


def test_gradients_reach_the_prediction_only(vgg):
    loss = PyramidPerceptualLoss(vgg, scales=(1, 0.5))
    prediction = torch.rand(1, 3, 64, 64, requires_grad=True)
    target = torch.rand(1, 3, 64, 64, requires_grad=True)
    loss(prediction, target).backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
    assert target.grad is None
    assert all(p.grad is None and not p.requires_grad for p in loss.vgg.parameters())


def test_vgg_stays_in_eval_mode(vgg):
    loss = PyramidPerceptualLoss(vgg).train()
    assert loss.training and not loss.vgg.training


def test_layer_weights_must_cover_the_five_layers(vgg):
    with pytest.raises(ValueError, match="5 values"):
        PyramidPerceptualLoss(vgg, layer_weights=(1, 1))


def test_image_pyramid_levels_and_official_module_names():
    pyramid = ImagePyramid((1, 0.5, 0.25, 0.125))
    assert list(pyramid.downs) == ["1", "0-5", "0-25", "0-125"]
    levels = pyramid(torch.rand(2, 3, 64, 64))
    assert {scale: tuple(x.shape[2:]) for scale, x in levels.items()} == {
        1: (64, 64), 0.5: (32, 32), 0.25: (16, 16), 0.125: (8, 8)}
    constant = pyramid(torch.full((1, 3, 64, 64), 0.3))
    assert torch.allclose(constant[0.25][..., 4:-4, 4:-4], torch.tensor(0.3))  # a blur keeps constants (inside)
