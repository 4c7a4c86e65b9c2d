"""face-vid2vid's 3-D dense motion (Wang et al. 2021, Sec. 3.2).

FOMM's construction one dimension up: the source feature volume, compressed to a few channels, is
warped by each keypoint's transform T_k(z) = x_k^S + J_k (z - x_k^D) (and the identity), an hourglass
sees those volumes beside the keypoint heatmap differences and predicts soft masks that blend the
transforms into one backward 3-D flow, and an occlusion map for the 2-D features that follow.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.precision import full_precision
from ..dense_motion import deform_by_each, heatmap_representation, sparse_motions
from ..keypoints import Keypoints
from .blocks import Hourglass3d
from .config import FaceVidConfig


@dataclass
class DenseMotion3d:
    """deformation: (B, d, h, w, 3) source coordinates per driving voxel (a `grid_sample` grid);
    mask: (B, K+1, d, h, w); occlusion_map: (B, 1, h, w) or None."""

    deformation: torch.Tensor
    mask: torch.Tensor
    occlusion_map: torch.Tensor | None = None


class DenseMotionNetwork(nn.Module):
    """(source feature volume, driving keypoints, source keypoints) -> DenseMotion3d at the volume's size."""

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
            self.occlusion = nn.Conv2d(self.hourglass.out_filters * motion.reshape_depth, 1, kernel_size=7,
                                       padding=3)
        self.num_kp = num_kp
        self.kp_variance = motion.kp_variance

    def compress_features(self, feature: torch.Tensor) -> torch.Tensor:
        """The source volume compressed to `compress` channels (source-only: callers may keep it)."""
        with full_precision(feature):
            return F.relu(self.norm(self.compress(feature.to(self.mask.weight.dtype))))

    def forward(self, feature: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> DenseMotion3d:
        return self.motion_from(self.compress_features(feature), kp_driving, kp_source)

    def motion_from(self, compressed: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> DenseMotion3d:
        """`forward` from `compress_features`' output. Its result is a sampling grid, which half-precision
        rounding would move by voxels, so it runs in float32 under autocast."""
        with full_precision(compressed):
            return self._motion(compressed.to(self.mask.weight.dtype), kp_driving, kp_source)

    def _motion(self, compressed: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> DenseMotion3d:
        b, _, d, h, w = compressed.shape
        motions = sparse_motions((d, h, w), kp_driving, kp_source)
        compressed = compressed.expand(motions.shape[0], *compressed.shape[1:])
        deformed = deform_by_each(compressed, motions)
        heatmaps = heatmap_representation((d, h, w), kp_driving, kp_source, self.kp_variance)
        # per transform: its heatmap channel, then its warped feature channels
        prediction = self.hourglass(torch.cat([heatmaps, deformed], dim=2).flatten(1, 2))
        mask = F.softmax(self.mask(prediction), dim=1)
        deformation = (motions * mask.unsqueeze(-1)).sum(dim=1)
        occlusion = None
        if self.occlusion is not None:
            occlusion = torch.sigmoid(self.occlusion(prediction.flatten(1, 2)))
        return DenseMotion3d(deformation, mask, occlusion)
