"""face-vid2vid's occlusion-aware generator (Wang et al. 2021, Sec. 3.2; the re-implementation's layout).

The source is encoded in 2-D (SameBlock2d, DownBlock2d, 1x1 conv), viewed as a (reshape_channel,
reshape_depth, h, w) feature volume and refined by 3-D residual blocks; everything up to there depends on
the source only (`encode_source`). Per driving frame the volume is warped by the 3-D dense motion,
flattened back to 2-D, projected (leaky SameBlock2d, 1x1 conv), masked by the occlusion map and decoded
(ResBlock2d, UpBlock2d, 7x7 conv, sigmoid).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.blocks import ResBlock2d, ResBlock3d, SameBlock2d, UpBlock2d
from ...warping.dense_motion import warp
from ...warping.generator import make_down_blocks, occlude, run_chain
from ...warping.keypoints import Keypoints
from .config import FaceVidConfig
from .dense_motion import DenseMotionNetwork


class LeakySameBlock2d(SameBlock2d):
    """conv -> BatchNorm -> LeakyReLU(0.01): the generator's `third` block (official `lrelu=True`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), negative_slope=0.01)


@dataclass
class SourceVolume:
    """What the generator computes from the source alone: `features` (B, C, D, h, w), the 3-D feature
    volume, and `compressed`, its dense-motion compression. A batch-1 source serves any driving batch."""

    features: torch.Tensor
    compressed: torch.Tensor


def trilinear_resize(flow: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """A (B, d, h, w, 3) flow resized to `size` (trilinear, align_corners=False as the official default)."""
    if tuple(flow.shape[1:4]) == tuple(size):
        return flow
    volume = F.interpolate(flow.permute(0, 4, 1, 2, 3), size=tuple(size), mode="trilinear", align_corners=False)
    return volume.permute(0, 2, 3, 4, 1)


class OcclusionAwareGenerator(nn.Module):
    """(source image, driving keypoints, source keypoints) -> dict with `prediction` in [0, 1], its
    pre-sigmoid `prediction_logits`, and the dense motion's `mask`, `deformation`, `occlusion_map`."""

    def __init__(self, config: FaceVidConfig):
        super().__init__()
        gen, width = config.generator, config.generator.decoder_width
        self.dense_motion_network = DenseMotionNetwork(config)
        self.first = SameBlock2d(config.image_channel, gen.block_expansion, kernel_size=(7, 7), padding=(3, 3))
        self.down_blocks = make_down_blocks(gen.block_expansion, gen.max_features, gen.num_down_blocks)
        encoded = min(gen.max_features, gen.block_expansion * 2 ** gen.num_down_blocks)
        self.second = nn.Conv2d(encoded, gen.max_features, kernel_size=1)
        self.reshape_channel, self.reshape_depth = gen.reshape_channel, gen.reshape_depth
        self.resblocks_3d = nn.Sequential()
        for i in range(gen.num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(gen.reshape_channel, kernel_size=3, padding=1))
        self.third = LeakySameBlock2d(gen.max_features, width, kernel_size=(3, 3), padding=(1, 1))
        self.fourth = nn.Conv2d(width, width, kernel_size=1)
        self.resblocks_2d = nn.Sequential()
        for i in range(gen.num_resblocks):
            self.resblocks_2d.add_module(f"2dr{i}", ResBlock2d(width, kernel_size=3, padding=1))
        # the decoder halves the width per block but never below block_expansion, and ignores max_features
        self.up_blocks = nn.ModuleList(
            UpBlock2d(max(gen.block_expansion, width >> i), max(gen.block_expansion, width >> (i + 1)),
                      kernel_size=(3, 3), padding=(1, 1))
            for i in range(gen.num_down_blocks))
        self.final = nn.Conv2d(gen.block_expansion, config.image_channel, kernel_size=(7, 7), padding=(3, 3))

    def encode_source(self, source_image: torch.Tensor) -> SourceVolume:
        """The source's 3-D feature volume and its compression: done once per source."""
        out = self.second(run_chain(source_image, self.first, self.down_blocks))
        b, _, h, w = out.shape
        volume = self.resblocks_3d(out.view(b, self.reshape_channel, self.reshape_depth, h, w))
        return SourceVolume(volume, self.dense_motion_network.compress_features(volume))

    def generate_from(self, source: SourceVolume, kp_driving: Keypoints, kp_source: Keypoints) -> dict:
        """The per-frame work for a batch of driving keypoints (source keypoints of batch 1 or the same)."""
        motion = self.dense_motion_network.motion_from(source.compressed, kp_driving, kp_source)
        batch = motion.deformation.shape[0]
        features = source.features.expand(batch, *source.features.shape[1:])
        warped = warp(features, trilinear_resize(motion.deformation, features.shape[2:]))
        out = self.fourth(self.third(warped.flatten(1, 2)))
        output = {"mask": motion.mask, "deformation": motion.deformation}
        out = occlude(out, motion, output)
        del motion   # its per-transform warped volumes (`sparse_deformed`) are not needed while decoding
        logits = self.final(run_chain(out, self.resblocks_2d, self.up_blocks))
        output.update(prediction_logits=logits, prediction=torch.sigmoid(logits))
        return output

    def forward(self, source_image: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> dict:
        return self.generate_from(self.encode_source(source_image), kp_driving, kp_source)
