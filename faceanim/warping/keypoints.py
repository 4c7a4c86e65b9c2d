"""Unsupervised keypoints with local affine Jacobians (FOMM, Siarohin et al. 2019, Sec. 3.1).

An hourglass predicts one heatmap per keypoint; a softmax with temperature turns each into a
distribution whose mean is the keypoint p_k (soft-argmax), and the same distribution weights a per-pixel
2x2 prediction into the Jacobian J_k. Coordinates are in [-1, 1], x first, as `grid_sample` expects.
The input may be RGB (FOMM, 3 channels) or RGB-D (DaGAN, 4 channels): `num_channels` decides.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.blocks import AntiAliasInterpolation2d, Hourglass
from ..nn.precision import full_precision


@dataclass
class Keypoints:
    """value: (B, K, 2) positions in [-1, 1] (x, y), or (B, K, 3) (x, y, z) for face-vid2vid's 3-D
    keypoints; jacobian: (B, K, n, n) or None."""

    value: torch.Tensor
    jacobian: torch.Tensor | None = None

    def __getitem__(self, index) -> "Keypoints":
        """The keypoints of some batch elements (an int keeps the batch axis)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return Keypoints(self.value[index], None if self.jacobian is None else self.jacobian[index])

    def expand(self, batch: int) -> "Keypoints":
        """Batch-1 keypoints repeated to `batch` (a view, no copy)."""
        value = self.value.expand(batch, *self.value.shape[1:])
        jacobian = None if self.jacobian is None else self.jacobian.expand(batch, *self.jacobian.shape[1:])
        return Keypoints(value, jacobian)


def make_coordinate_grid(spatial_size: tuple[int, ...], dtype: torch.dtype = torch.float32,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """(*spatial_size, n) grid of pixel-centre coordinates spanning [-1, 1] corner to corner, for n = 2
    axes (H, W) or 3 (D, H, W); coordinates are ordered x, y(, z), the last axis first, as `grid_sample`
    expects."""
    axes = [2 * (torch.arange(size, dtype=dtype, device=device) / (size - 1)) - 1 for size in spatial_size]
    return torch.stack(torch.meshgrid(*axes, indexing="ij")[::-1], dim=-1)


def broadcast_points(value: torch.Tensor, ndim: int) -> torch.Tensor:
    """(..., K, n) keypoints viewed as (..., K, 1 x ndim, n), to broadcast against a coordinate grid."""
    return value.reshape(*value.shape[:-1], *(1,) * ndim, value.shape[-1])


def kp2gaussian(value: torch.Tensor, spatial_size: tuple[int, ...], kp_variance: float) -> torch.Tensor:
    """Gaussian bumps exp(-|z - p_k|^2 / (2 var)) at keypoints `value` (..., K, n) -> (..., K, *spatial_size)."""
    grid = make_coordinate_grid(spatial_size, value.dtype, value.device)
    offset = grid - broadcast_points(value, len(spatial_size))
    return torch.exp(-0.5 * (offset ** 2).sum(-1) / kp_variance)


def heatmap_mean(heatmap: torch.Tensor) -> torch.Tensor:
    """Mean position (B, K, n) of normalised heatmaps (B, K, *spatial) with n = 2 or 3 spatial axes:
    the soft-argmax."""
    grid = make_coordinate_grid(heatmap.shape[2:], heatmap.dtype, heatmap.device)
    return (heatmap.unsqueeze(-1) * grid).sum(dim=tuple(range(2, heatmap.dim())))


class KPDetector(nn.Module):
    """Image (B, num_channels, H, W) in [0, 1] -> Keypoints (value, jacobian).

    The Jacobian head starts at the identity (zero weights, bias [1, 0, 0, 1]), as in FOMM."""

    def __init__(self, block_expansion: int, num_kp: int, num_channels: int, max_features: int,
                 num_blocks: int, temperature: float, estimate_jacobian: bool = False, scale_factor: float = 1,
                 single_jacobian_map: bool = False, pad: int = 0):
        super().__init__()
        self.predictor = Hourglass(block_expansion, in_features=num_channels, max_features=max_features,
                                   num_blocks=num_blocks)
        self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=(7, 7), padding=pad)
        self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
        self.jacobian = None
        if estimate_jacobian:
            self.jacobian = nn.Conv2d(self.predictor.out_filters, 4 * self.num_jacobian_maps,
                                      kernel_size=(7, 7), padding=pad)
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(self.num_jacobian_maps))
        self.temperature = temperature
        self.scale_factor = scale_factor
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def forward(self, x: torch.Tensor) -> Keypoints:
        # Keypoints are positions that steer every sampling grid, and the temperature-0.1 softmax amplifies
        # rounding tenfold, so under autocast the (small) detector still runs in float32.
        with full_precision(x):
            return self._detect(x.to(self.kp.weight.dtype))

    def _detect(self, x: torch.Tensor) -> Keypoints:
        if self.scale_factor != 1:
            x = self.down(x)
        features = self.predictor(x)
        logits = self.kp(features)
        b, k, h, w = logits.shape
        heatmap = F.softmax(logits.view(b, k, -1) / self.temperature, dim=2).view(b, k, h, w)
        value = heatmap_mean(heatmap)
        if self.jacobian is None:
            return Keypoints(value)
        per_pixel = self.jacobian(features).reshape(b, self.num_jacobian_maps, 4, h, w)
        jacobian = (heatmap.unsqueeze(2) * per_pixel).view(b, k, 4, -1).sum(dim=-1)
        return Keypoints(value, jacobian.view(b, k, 2, 2))
