"""face-vid2vid's canonical 3-D keypoints (Wang et al. 2021, Sec. 3.1).

A 2-D encoder downsamples the (band-limited, quarter-size) image; a 1x1 conv lifts its output to
`reshape_channel` channels, viewed as a stack of `reshape_depth` feature planes; a 3-D decoder upsamples
that volume, and a 3x3x3 conv gives one heatmap volume per keypoint. FOMM's soft-argmax one dimension up
(`faceanim.warping.keypoints.HeatmapKeypointDetector`) gives identity-specific, pose-free keypoints in
[-1, 1]^3 (x, y, z), optionally with 3x3 Jacobians weighted by the same distribution.
"""
from __future__ import annotations

import torch
from torch import nn

from ...nn.blocks import DownBlock2d, UpBlock3d, hourglass_width
from ...warping.keypoints import HeatmapKeypointDetector
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


class KPDetector(HeatmapKeypointDetector):
    """Image (B, C, H, W) in [0, 1] -> canonical Keypoints: value (B, K, 3), jacobian (B, K, 3, 3) or None.

    The Jacobian head starts at the identity (zero weights, identity bias), as in the official code."""

    def __init__(self, config: FaceVidConfig):
        kp = config.kp_detector
        predictor = KPHourglass(kp.block_expansion, in_features=config.image_channel,
                                reshape_features=kp.reshape_channel, reshape_depth=kp.reshape_depth,
                                num_blocks=kp.num_blocks, max_features=kp.max_features)
        super().__init__(predictor, dims=3, num_kp=config.num_kp, num_channels=config.image_channel,
                         temperature=kp.temperature, estimate_jacobian=config.estimate_jacobian,
                         scale_factor=kp.scale_factor, kernel_size=3, padding=1)
