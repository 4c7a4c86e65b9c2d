"""LSGAN and feature-matching values on inputs whose answers are known."""
from __future__ import annotations

import pytest
import torch

from faceanim.losses import feature_matching_loss, lsgan_discriminator_loss, lsgan_generator_loss


def test_generator_loss_values():
    assert lsgan_generator_loss(torch.full((2, 1, 4, 4), 0.5)).item() == pytest.approx(0.25)
    assert lsgan_generator_loss(torch.ones(2, 1, 4, 4)).item() == 0.0
    assert lsgan_generator_loss(torch.zeros(1, 1, 3, 3), weight=2.0).item() == pytest.approx(2.0)
    # several scales add up
    maps = [torch.zeros(1, 1, 4, 4), torch.full((1, 1, 2, 2), 0.5)]
    assert lsgan_generator_loss(maps).item() == pytest.approx(1.25)


def test_discriminator_loss_values():
    ones, zeros = torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    assert lsgan_discriminator_loss(ones, zeros).item() == 0.0          # perfect discriminator
    assert lsgan_discriminator_loss(zeros, ones).item() == pytest.approx(2.0)
    assert lsgan_discriminator_loss(ones * 0.5, ones * 0.5, weight=4).item() == pytest.approx(2.0)
    real, fake = torch.tensor([[[[1.0, 0.0]]]]), torch.tensor([[[[0.0, 1.0]]]])
    assert lsgan_discriminator_loss(real, fake).item() == pytest.approx((0 + 0 + 1 + 1) / 2)
    with pytest.raises(ValueError):
        lsgan_discriminator_loss([ones, ones], [zeros])


def test_feature_matching_values_and_zero_weights():
    real = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 1, 1)]
    fake = [torch.full((1, 2, 4, 4), 0.5), torch.ones(1, 2, 2, 2), torch.full((1, 2, 1, 1), 100.0)]
    assert feature_matching_loss(real, fake, [10, 1, 0]).item() == pytest.approx(10 * 0.5 + 1)
    with pytest.raises(ValueError):
        feature_matching_loss(real, fake, [1, 1])


def test_gradients_flow_to_the_fake_side():
    fake = torch.full((1, 1, 2, 2), 0.5, requires_grad=True)
    lsgan_generator_loss(fake).backward()
    assert torch.allclose(fake.grad, torch.full_like(fake, -2 * 0.5 / 4))
