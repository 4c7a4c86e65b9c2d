"""face-vid2vid's canonical 3-D keypoints (Wang et al. 2021, Sec. 3.1).

A 2-D encoder downsamples the (band-limited, quarter-size) image; a 1x1 conv lifts its output to
`reshape_channel` channels, viewed as a stack of `reshape_depth` feature planes; a 3-D decoder upsamples
that volume, and a 3x3x3 conv gives one heatmap volume per keypoint. A softmax with temperature over
each volume and its mean (soft-argmax) give identity-specific, pose-free keypoints in [-1, 1]^3
(x, y, z), optionally with 3x3 Jacobians weighted by the same distribution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.blocks import AntiAliasInterpolation2d, DownBlock2d, hourglass_width
from ...nn.precision import full_precision
from ..keypoints import Keypoints, heatmap_mean
from .blocks import UpBlock3d
from .config import FaceVidConfig


class KPHourglass(nn.Module):
    """2-D encoder -> 1x1 conv to `reshape_features` -> (C/depth, depth, h, w) volume -> 3-D decoder.

    Blocks are named down0.., up0.. (official `add_module` names); no skips between the halves."""

    def __init__(self, block_expansion: int, in_features: int, reshape_features: int, reshape_depth: int,
                 num_blocks: int = 3, max_features: int = 256):
        super().__init__()
        self.down_blocks = nn.Sequential()
        for i in range(num_blocks):
            self.down_blocks.add_module(f"down{i}", DownBlock2d(
                in_features if i == 0 else hourglass_width(block_expansion, i, max_features),
                hourglass_width(block_expansion, i + 1, max_features), kernel_size=3, padding=1))
        self.conv = nn.Conv2d(hourglass_width(block_expansion, num_blocks, max_features), reshape_features,
                              kernel_size=1)
        self.up_blocks = nn.Sequential()
        for i in range(num_blocks):
            level = num_blocks - i
            self.up_blocks.add_module(f"up{i}", UpBlock3d(hourglass_width(block_expansion, level, max_features),
                                                          hourglass_width(block_expansion, level - 1, max_features)))
        self.reshape_depth = reshape_depth
        self.out_filters = hourglass_width(block_expansion, 0, max_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(self.down_blocks(x))
        b, c, h, w = out.shape
        return self.up_blocks(out.view(b, c // self.reshape_depth, self.reshape_depth, h, w))


class KPDetector(nn.Module):
    """Image (B, C, H, W) in [0, 1] -> canonical Keypoints: value (B, K, 3), jacobian (B, K, 3, 3) or None.

    The Jacobian head starts at the identity (zero weights, identity bias), as in the official code."""

    def __init__(self, config: FaceVidConfig):
        super().__init__()
        kp = config.kp_detector
        self.predictor = KPHourglass(kp.block_expansion, in_features=config.image_channel,
                                     reshape_features=kp.reshape_channel, reshape_depth=kp.reshape_depth,
                                     num_blocks=kp.num_blocks, max_features=kp.max_features)
        self.kp = nn.Conv3d(self.predictor.out_filters, config.num_kp, kernel_size=3, padding=1)
        self.jacobian = None
        if config.estimate_jacobian:
            self.jacobian = nn.Conv3d(self.predictor.out_filters, 9 * config.num_kp, kernel_size=3, padding=1)
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.eye(3).flatten().repeat(config.num_kp))
        self.temperature = kp.temperature
        self.scale_factor = kp.scale_factor
        if kp.scale_factor != 1:
            self.down = AntiAliasInterpolation2d(config.image_channel, kp.scale_factor)

    def forward(self, x: torch.Tensor) -> Keypoints:
        # keypoints steer every sampling grid and the temperature-0.1 softmax amplifies rounding tenfold,
        # so under autocast the detector stays float32
        with full_precision(x):
            return self._detect(x.to(self.kp.weight.dtype))

    def _detect(self, x: torch.Tensor) -> Keypoints:
        if self.scale_factor != 1:
            x = self.down(x)
        features = self.predictor(x)
        logits = self.kp(features)
        b, k, *volume = logits.shape
        heatmap = F.softmax(logits.view(b, k, -1) / self.temperature, dim=2).view(b, k, *volume)
        value = heatmap_mean(heatmap)
        if self.jacobian is None:
            return Keypoints(value)
        per_voxel = self.jacobian(features).reshape(b, k, 9, *volume)
        jacobian = (heatmap.unsqueeze(2) * per_voxel).view(b, k, 9, -1).sum(dim=-1)
        return Keypoints(value, jacobian.view(b, k, 3, 3))
