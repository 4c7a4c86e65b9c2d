"""Least-squares GAN losses and discriminator feature matching (pix2pixHD style, as FOMM and DaGAN use).

A discriminator gives one prediction map per scale; the losses below take one map or a sequence of
them (one per scale) and sum the per-scale terms, each a mean over the map.
"""
from __future__ import annotations

from typing import Sequence

import torch

Maps = torch.Tensor | Sequence[torch.Tensor]


def _as_list(maps: Maps) -> list[torch.Tensor]:
    return [maps] if isinstance(maps, torch.Tensor) else list(maps)


def lsgan_generator_loss(fake_maps: Maps, weight: float = 1.0) -> torch.Tensor:
    """`weight * mean((1 - D(fake))^2)`, summed over scales: the generator wants fakes scored 1."""
    maps = _as_list(fake_maps)
    return sum(weight * ((1 - fake) ** 2).mean() for fake in maps)


def lsgan_discriminator_loss(real_maps: Maps, fake_maps: Maps, weight: float = 1.0) -> torch.Tensor:
    """`weight * mean((1 - D(real))^2 + D(fake)^2)`, summed over scales: reals scored 1, fakes 0."""
    reals, fakes = _as_list(real_maps), _as_list(fake_maps)
    if len(reals) != len(fakes):
        raise ValueError(f"{len(reals)} real maps but {len(fakes)} fake maps")
    return sum(weight * ((1 - real) ** 2 + fake ** 2).mean() for real, fake in zip(reals, fakes))


def feature_matching_loss(real_features: Sequence[torch.Tensor], fake_features: Sequence[torch.Tensor],
                          weights: Sequence[float]) -> torch.Tensor:
    """`sum_i weights[i] * mean|real_i - fake_i|` over one discriminator's intermediate feature maps.

    Layers with weight 0 are skipped. Neither side is detached (as in the official code): freeze the
    discriminator where it must not learn from this loss."""
    if not len(real_features) == len(fake_features) == len(weights):
        raise ValueError(f"need as many weights as feature maps: {len(weights)} weights, "
                         f"{len(real_features)} real and {len(fake_features)} fake maps")
    total = fake_features[0].new_zeros(())
    for weight, real, fake in zip(weights, real_features, fake_features):
        if weight != 0:
            total = total + weight * torch.abs(real - fake).mean()
    return total
