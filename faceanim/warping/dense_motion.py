"""Dense motion from sparse keypoint motion (FOMM Sec. 3.2, Eq. 4-8), on images and, for face-vid2vid,
on feature volumes.

For every keypoint k the first-order approximation T_k(z) = p_k^S + J_k (z - p_k^D), with
J_k = J_k^S (J_k^D)^-1, maps driving coordinates to source coordinates; the identity is added as a
background transform. An hourglass sees the source warped by each T_k beside the keypoint heatmap
differences and predicts soft masks M_k (softmax over K+1) that blend the transforms into one
backward flow, plus an occlusion map (sigmoid) telling the generator where the source has no content.
`DenseMotionBase` does this for 2 or 3 spatial axes; `DenseMotionNetwork` is FOMM's 2-D network.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.blocks import AntiAliasInterpolation2d, Hourglass
from ..nn.precision import full_precision
from .keypoints import Keypoints, broadcast_points, kp2gaussian, make_coordinate_grid


@dataclass
class DenseMotion:
    """deformation: (B, *spatial, n) source coordinates per driving location (a `grid_sample` grid), with
    spatial (h, w) and n = 2 for images, (d, h, w) and n = 3 for volumes; mask: (B, K+1, *spatial);
    sparse_deformed: (B, K+1, C, *spatial); occlusion_map: (B, 1, h, w) or None."""

    deformation: torch.Tensor
    mask: torch.Tensor
    sparse_deformed: torch.Tensor
    occlusion_map: torch.Tensor | None = None


def warp(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear (trilinear for (B, C, D, H, W) volumes) backward warp with zero padding; align_corners=False
    is PyTorch's default, which the official code gets by not passing it."""
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def heatmap_representation(spatial_size: tuple[int, ...], kp_driving: Keypoints,
                           kp_source: Keypoints, kp_variance: float) -> torch.Tensor:
    """H_k = G(p_k^D) - G(p_k^S) with a zero background channel first: (B, K+1, 1, *spatial_size) (Eq. 6)."""
    heatmap = (kp2gaussian(kp_driving.value, spatial_size, kp_variance)
               - kp2gaussian(kp_source.value, spatial_size, kp_variance))
    background = heatmap.new_zeros(heatmap.shape[0], 1, *spatial_size)
    return torch.cat([background, heatmap], dim=1).unsqueeze(2)


def sparse_motions(spatial_size: tuple[int, ...], kp_driving: Keypoints, kp_source: Keypoints) -> torch.Tensor:
    """T_k(z) for the identity background and every keypoint: (B, K+1, *spatial_size, n), n = 2 or 3 (Eq. 4)."""
    ndim = len(spatial_size)
    grid = make_coordinate_grid(spatial_size, kp_source.value.dtype, kp_source.value.device)
    identity = grid.view(1, 1, *grid.shape)
    offset = identity - broadcast_points(kp_driving.value, ndim)
    if kp_driving.jacobian is not None:
        jacobian = torch.matmul(kp_source.jacobian, torch.inverse(kp_driving.jacobian))
        jacobian = jacobian.reshape(*jacobian.shape[:2], *(1,) * ndim, ndim, ndim)
        offset = torch.matmul(jacobian, offset.unsqueeze(-1)).squeeze(-1)
    driving_to_source = offset + broadcast_points(kp_source.value, ndim)
    batch = driving_to_source.shape[0]
    return torch.cat([identity.expand(batch, *identity.shape[1:]), driving_to_source], dim=1)


def deform_by_each(image: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
    """The image (B, C, *spatial) warped by each of the K+1 transforms: (B, K+1, C, *spatial) (Eq. 7)."""
    b, c, *spatial = image.shape
    count = motions.shape[1]
    repeated = image.unsqueeze(1).expand(b, count, c, *spatial).reshape(b * count, c, *spatial)
    deformed = warp(repeated, motions.reshape(b * count, *motions.shape[2:]))
    return deformed.view(b, count, c, *spatial)


class DenseMotionBase(nn.Module):
    """The dense motion of a source (B or 1, C, *spatial), 2 or 3 spatial axes, at its own size.

    Subclasses provide `hourglass` (input (K+1) * (C+1) channels), `mask` (a conv to K+1 masks), `occlusion`
    (a 2-D conv to one map, reading a volume's depth planes as channels; None without occlusion) and
    `kp_variance`."""

    hourglass: nn.Module
    mask: nn.Module
    occlusion: nn.Module | None
    kp_variance: float

    def motion_from(self, source: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> DenseMotion:
        """`forward` for a source already prepared (at the flow's resolution, or compressed).

        Its output is a sampling grid, which bfloat16/float16 rounding would move by pixels, so under
        autocast it runs in float32 (it is a small part of a generator's work)."""
        with full_precision(source):
            return self._motion(source.to(self.mask.weight.dtype), kp_driving, kp_source)

    def _motion(self, source: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> DenseMotion:
        spatial = tuple(source.shape[2:])
        heatmaps = heatmap_representation(spatial, kp_driving, kp_source, self.kp_variance)
        motions = sparse_motions(spatial, kp_driving, kp_source)
        deformed = deform_by_each(source.expand(motions.shape[0], *source.shape[1:]), motions)
        # per transform: its heatmap channel, then its warped image channels
        prediction = self.hourglass(torch.cat([heatmaps, deformed], dim=2).flatten(1, 2))
        mask = F.softmax(self.mask(prediction), dim=1)
        deformation = (motions * mask.unsqueeze(-1)).sum(dim=1)
        occlusion = None
        if self.occlusion is not None:   # (B, C, [d,] h, w) -> (B, C [* d], h, w)
            occlusion = torch.sigmoid(self.occlusion(prediction.flatten(1, -3)))
        return DenseMotion(deformation, mask, deformed, occlusion)


class DenseMotionNetwork(DenseMotionBase):
    """(source image, driving keypoints, source keypoints) -> DenseMotion at `scale_factor` resolution."""

    def __init__(self, block_expansion: int, num_blocks: int, max_features: int, num_kp: int,
                 num_channels: int, estimate_occlusion_map: bool = False, scale_factor: float = 1,
                 kp_variance: float = 0.01):
        super().__init__()
        self.hourglass = Hourglass(block_expansion=block_expansion, in_features=(num_kp + 1) * (num_channels + 1),
                                   max_features=max_features, num_blocks=num_blocks)
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, kernel_size=(7, 7), padding=(3, 3))
        self.occlusion = None
        if estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=(7, 7), padding=(3, 3))
        self.num_kp = num_kp
        self.scale_factor = scale_factor
        self.kp_variance = kp_variance
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def downsample(self, source_image: torch.Tensor) -> torch.Tensor:
        """The source at the flow's resolution (it depends on the source only, so callers may keep it)."""
        return self.down(source_image) if self.scale_factor != 1 else source_image

    def forward(self, source_image: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints) -> DenseMotion:
        return self.motion_from(self.downsample(source_image), kp_driving, kp_source)
