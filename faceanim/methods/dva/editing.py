"""DVA's edits of the video-level identity, and the blend of an edited face over its crop.

Official `editing_classifier.py`: the identity is the ArcFace feature averaged over the video; a classifier
edit moves it along the attribute's weight row of the linear CelebA classifier, in the z-normalised identity
space (`latent.pkl` statistics; `--normalize`, on by default), by `scale · sqrt(512)` along the unit
direction, then maps it back and re-projects it onto the unit sphere ArcFace features live on. Without the
statistics the raw weight row is added in the identity space itself (the official `--normalize` off path).
The decoded face replaces the crop only on the parser's video foreground mask.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class IdentityStats:
    """Mean and standard deviation (512,) of the ArcFace identities of a dataset (z-normalisation)."""

    mean: torch.Tensor
    std: torch.Tensor

    def normalize(self, identity: torch.Tensor) -> torch.Tensor:
        return (identity - self.mean.to(identity)) / self.std.to(identity)

    def denormalize(self, identity: torch.Tensor) -> torch.Tensor:
        return identity * self.std.to(identity) + self.mean.to(identity)


def classifier_edit(identity: torch.Tensor, direction: torch.Tensor, scale: float,
                    stats: IdentityStats | None = None) -> torch.Tensor:
    """The edited identity (B, 512) of `identity` (B, 512) along `direction` (512,), the classifier's weight
    row of the attribute; `stats` the identity space's mean and spread, or None for the unnormalised edit."""
    width = identity.shape[-1]
    direction = direction.to(identity).reshape(1, width)
    if stats is None:
        return F.normalize(identity + scale * math.sqrt(width) * direction, dim=1)
    moved = stats.normalize(identity) + scale * math.sqrt(width) * F.normalize(direction, dim=1)
    return F.normalize(stats.denormalize(moved), dim=1)


def blend_face(decoded: torch.Tensor, crop: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The decoded face (B, 3, S, S) in [-1, 1] over the crop (same range) where `mask` (B, 1, S, S) is 1,
    in [0, 1] as the official paste: decoded01·mask + crop01·(1 - mask)."""
    return (decoded + 1) / 2 * mask + (crop + 1) / 2 * (1 - mask)
