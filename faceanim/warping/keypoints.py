"""Unsupervised keypoints with local affine Jacobians (FOMM, Siarohin et al. 2019, Sec. 3.1), in 2-D
(FOMM, DaGAN) and 3-D (face-vid2vid's canonical keypoints).

A network predicts one heatmap per keypoint; a softmax with temperature turns each into a distribution
whose mean is the keypoint p_k (soft-argmax), and the same distribution weights a per-location n x n
prediction into the Jacobian J_k (`soft_keypoints`, for n = 2 or 3 spatial axes). Coordinates are in
[-1, 1], x first, as `grid_sample` expects. `HeatmapKeypointDetector` is that detector around any predictor;
`KPDetector` is FOMM's, whose input may be RGB (FOMM, 3 channels) or RGB-D (DaGAN, 4 channels).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.blocks import CONV, AntiAliasInterpolation2d, Hourglass
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


def soft_keypoints(logits: torch.Tensor, temperature: float,
                   jacobian_maps: torch.Tensor | None = None) -> Keypoints:
    """Keypoints from heatmap logits (B, K, *spatial), n = 2 or 3 spatial axes: the softmax with
    `temperature` over each heatmap, its mean (soft-argmax), and, given per-location Jacobian predictions
    `jacobian_maps` (B, M * n * n, *spatial) with M = K maps or 1 shared, their heatmap-weighted sums
    (B, K, n, n)."""
    b, k, *spatial = logits.shape
    heatmap = F.softmax(logits.view(b, k, -1) / temperature, dim=2).view(b, k, *spatial)
    value = heatmap_mean(heatmap)
    if jacobian_maps is None:
        return Keypoints(value)
    n = len(spatial)
    per_location = jacobian_maps.reshape(b, -1, n * n, *spatial)
    jacobian = (heatmap.unsqueeze(2) * per_location).view(b, k, n * n, -1).sum(dim=-1)
    return Keypoints(value, jacobian.view(b, k, n, n))


class HeatmapKeypointDetector(nn.Module):
    """Image (B, num_channels, H, W) in [0, 1] -> Keypoints, around a `predictor` whose output has
    `predictor.out_filters` channels and `dims` spatial axes (2: a feature map, 3: a feature volume).

    `kp` (and `jacobian`) are convolutions with `kernel_size` and `padding` on the predictor's output;
    the input is band-limited to `scale_factor` of its size first (`down`). The Jacobian head predicts
    `num_jacobian_maps` (num_kp, or 1 shared) maps and starts at the identity (zero weights, identity bias),
    as in the official code."""

    def __init__(self, predictor: nn.Module, *, dims: int, num_kp: int, num_channels: int, temperature: float,
                 estimate_jacobian: bool, scale_factor: float, kernel_size: int | tuple[int, ...],
                 padding: int | tuple[int, ...], num_jacobian_maps: int | None = None):
        super().__init__()
        conv = CONV[dims]
        self.predictor = predictor
        self.kp = conv(predictor.out_filters, num_kp, kernel_size=kernel_size, padding=padding)
        self.num_jacobian_maps = num_kp if num_jacobian_maps is None else num_jacobian_maps
        self.jacobian = None
        if estimate_jacobian:
            self.jacobian = conv(predictor.out_filters, dims * dims * self.num_jacobian_maps,
                                 kernel_size=kernel_size, padding=padding)
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.eye(dims).flatten().repeat(self.num_jacobian_maps))
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
        return soft_keypoints(logits, self.temperature, None if self.jacobian is None else self.jacobian(features))


class KPDetector(HeatmapKeypointDetector):
    """FOMM's detector: an Hourglass on the image (B, num_channels, H, W), 7x7 heads, 2x2 Jacobians."""

    def __init__(self, block_expansion: int, num_kp: int, num_channels: int, max_features: int,
                 num_blocks: int, temperature: float, estimate_jacobian: bool = False, scale_factor: float = 1,
                 single_jacobian_map: bool = False, pad: int = 0):
        predictor = Hourglass(block_expansion, in_features=num_channels, max_features=max_features,
                              num_blocks=num_blocks)
        super().__init__(predictor, dims=2, num_kp=num_kp, num_channels=num_channels, temperature=temperature,
                         estimate_jacobian=estimate_jacobian, scale_factor=scale_factor, kernel_size=(7, 7),
                         padding=pad, num_jacobian_maps=1 if single_jacobian_map else num_kp)
