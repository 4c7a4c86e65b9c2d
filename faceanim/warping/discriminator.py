"""The pix2pix-style patch discriminator of FOMM and DaGAN, optionally at several image scales.

With `use_kp` the image is concatenated with one Gaussian heatmap per keypoint (variance 0.01), so the
discriminator judges the image where the keypoints say the parts are. Blocks are 4x4 convs without
padding, LeakyReLU(0.2), InstanceNorm (all but the first) and 2x2 average pooling (all but the last);
`sn` wraps the convs in spectral norm (official keys `weight_orig`/`weight_u`/`weight_v`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .keypoints import Keypoints, kp2gaussian


@dataclass
class DiscriminatorOutput:
    """feature_maps: every block's output (for feature matching); prediction_map: (B, 1, h, w)."""

    feature_maps: list[torch.Tensor]
    prediction_map: torch.Tensor


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_features: int, out_features: int, norm: bool = False, kernel_size: int = 4,
                 pool: bool = False, sn: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size)
        if sn:
            self.conv = nn.utils.spectral_norm(self.conv)
        self.norm = nn.InstanceNorm2d(out_features, affine=True) if norm else None
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.norm is not None:
            out = self.norm(out)
        out = F.leaky_relu(out, 0.2)
        return F.avg_pool2d(out, (2, 2)) if self.pool else out


class Discriminator(nn.Module):
    def __init__(self, num_channels: int = 3, block_expansion: int = 64, num_blocks: int = 4,
                 max_features: int = 512, sn: bool = False, use_kp: bool = False, num_kp: int = 10,
                 kp_variance: float = 0.01):
        super().__init__()
        widths = [min(max_features, block_expansion * 2 ** (i + 1)) for i in range(num_blocks)]
        inputs = [num_channels + num_kp * use_kp] + widths[:-1]
        self.down_blocks = nn.ModuleList(
            DiscriminatorBlock(inputs[i], widths[i], norm=i != 0, kernel_size=4, pool=i != num_blocks - 1, sn=sn)
            for i in range(num_blocks))
        self.conv = nn.Conv2d(widths[-1], 1, kernel_size=1)
        if sn:
            self.conv = nn.utils.spectral_norm(self.conv)
        self.use_kp = use_kp
        self.kp_variance = kp_variance

    def forward(self, x: torch.Tensor, kp: Keypoints | None = None) -> DiscriminatorOutput:
        out = x
        if self.use_kp:
            out = torch.cat([out, kp2gaussian(kp.value, x.shape[2:], self.kp_variance)], dim=1)
        feature_maps = []
        for block in self.down_blocks:
            out = block(out)
            feature_maps.append(out)
        return DiscriminatorOutput(feature_maps, self.conv(out))


def scale_key(scale: float) -> str:
    """The official ModuleDict key of a scale: 1 -> '1', 0.5 -> '0-5' (dots are not allowed in names)."""
    return str(scale).replace(".", "-")


class MultiScaleDiscriminator(nn.Module):
    """One Discriminator per image scale; input is a pyramid {scale: image}, output {scale: result}."""

    def __init__(self, scales: tuple[float, ...] = (1,), **discriminator_kwargs):
        super().__init__()
        self.scales = tuple(scales)
        self.discs = nn.ModuleDict({scale_key(s): Discriminator(**discriminator_kwargs) for s in self.scales})

    def forward(self, pyramid: dict[float, torch.Tensor],
                kp: Keypoints | None = None) -> dict[float, DiscriminatorOutput]:
        return {scale: self.discs[scale_key(scale)](pyramid[scale], kp) for scale in self.scales}
