"""face-vid2vid's 3-D dense motion (Wang et al. 2021, Sec. 3.2).

FOMM's construction one dimension up (`faceanim.warping.dense_motion.DenseMotionBase`): the source feature
volume, compressed to a few channels, is warped by each keypoint's transform T_k(z) = x_k^S + J_k (z - x_k^D)
(and the identity), an hourglass sees those volumes beside the keypoint heatmap differences and predicts
soft masks that blend the transforms into one backward 3-D flow, and an occlusion map for the 2-D features
that follow.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.blocks import Hourglass3d
from ...nn.precision import full_precision
from ...warping.dense_motion import DenseMotion, DenseMotionBase
from ...warping.keypoints import Keypoints
from .config import FaceVidConfig


class DenseMotionNetwork(DenseMotionBase):
    """(source feature volume, driving keypoints, source keypoints) -> DenseMotion at the volume's size:
    deformation (B, d, h, w, 3), mask (B, K+1, d, h, w), occlusion_map (B, 1, h, w) or None."""

    def __init__(self, config: FaceVidConfig):
        super().__init__()
        motion, num_kp = config.generator.dense_motion, config.num_kp
        self.hourglass = Hourglass3d(motion.block_expansion, in_features=(num_kp + 1) * (motion.compress + 1),
                                     num_blocks=motion.num_blocks, max_features=motion.max_features)
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(config.feature_channel, motion.compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(motion.compress, affine=True)
        self.occlusion = None
        if config.generator.estimate_occlusion_map:
            # reads the prediction's depth planes as channels
            self.occlusion = nn.Conv2d(self.hourglass.out_filters * motion.reshape_depth, 1, kernel_size=7,
                                       padding=3)
        self.num_kp = num_kp
        self.kp_variance = motion.kp_variance

    def compress_features(self, feature: torch.Tensor) -> torch.Tensor:
        """The source volume compressed to `compress` channels (source-only: callers may keep it, and give
        it to `motion_from`)."""
        with full_precision(feature):
            return F.relu(self.norm(self.compress(feature.to(self.mask.weight.dtype))))

    def forward(self, feature: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> DenseMotion:
        return self.motion_from(self.compress_features(feature), kp_driving, kp_source)
