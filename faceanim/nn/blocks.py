"""Convolution blocks of the FOMM family (FOMM, DaGAN, face-vid2vid, FADM's coarse stage).

Parameter names follow the official code (`conv`, `norm`, `norm1`, `encoder.down_blocks.N`,
`decoder.up_blocks.N`, ...) so that official checkpoints load without renaming. The official code uses
SynchronizedBatchNorm2d; `torch.nn.BatchNorm2d` has the same state-dict keys and numerics on one device
(the trainer converts it to SyncBatchNorm under DDP).

Every resampling call passes the argument values that the official calls get by default, so the
numerics are the same and PyTorch prints no deprecation warnings.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IntPair = int | tuple[int, int]


class SameBlock2d(nn.Module):
    """conv -> BatchNorm -> ReLU, resolution kept."""

    def __init__(self, in_features: int, out_features: int, groups: int = 1, kernel_size: IntPair = 3,
                 padding: IntPair = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding, groups=groups)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock2d(SameBlock2d):
    """conv -> BatchNorm -> ReLU -> 2x2 average pooling (half resolution)."""

    def __init__(self, in_features: int, out_features: int, kernel_size: IntPair = 3, padding: IntPair = 1,
                 groups: int = 1):
        super().__init__(in_features, out_features, groups=groups, kernel_size=kernel_size, padding=padding)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(super().forward(x))


class UpBlock2d(SameBlock2d):
    """Nearest x2 upsampling -> conv -> BatchNorm -> ReLU (double resolution)."""

    def __init__(self, in_features: int, out_features: int, kernel_size: IntPair = 3, padding: IntPair = 1,
                 groups: int = 1):
        super().__init__(in_features, out_features, groups=groups, kernel_size=kernel_size, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResBlock2d(nn.Module):
    """Pre-activation residual block: x + conv2(relu(norm2(conv1(relu(norm1(x))))))."""

    def __init__(self, in_features: int, kernel_size: IntPair, padding: IntPair):
        super().__init__()
        self.conv1 = nn.Conv2d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm2d(in_features, affine=True)
        self.norm2 = nn.BatchNorm2d(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


def hourglass_width(block_expansion: int, level: int, max_features: int) -> int:
    """Channels after `level` halvings of the hourglass: block_expansion * 2**level, capped."""
    return min(max_features, block_expansion * 2 ** level)


class HourglassEncoder(nn.Module):
    """`num_blocks` DownBlock2d; returns the input and every block's output (the skips)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(in_features if i == 0 else hourglass_width(block_expansion, i, max_features),
                        hourglass_width(block_expansion, i + 1, max_features), kernel_size=3, padding=1)
            for i in range(num_blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class HourglassDecoder(nn.Module):
    """`num_blocks` UpBlock2d, each followed by concatenation with the matching encoder skip."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256):
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            skip_factor = 1 if i == num_blocks - 1 else 2  # every block but the first also gets a skip
            blocks.append(UpBlock2d(skip_factor * hourglass_width(block_expansion, i + 1, max_features),
                                    hourglass_width(block_expansion, i, max_features), kernel_size=3, padding=1))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        out = skips[-1]
        for block, skip in zip(self.up_blocks, reversed(skips[:-1])):
            out = torch.cat([block(out), skip], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net without a bottleneck; output has `out_filters` = block_expansion + in_features channels at
    the input resolution (the input itself is the last skip)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256):
        super().__init__()
        self.encoder = HourglassEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = HourglassDecoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur then subsampling by 1/scale (band-limited downsampling).

    The kernel is a buffer named `weight`: it is part of the official state dicts, and a checkpoint's
    kernel replaces the one computed here."""

    def __init__(self, channels: int, scale: float):
        super().__init__()
        sigma = (1 / scale - 1) / 2
        kernel_size = 2 * round(sigma * 4) + 1
        self.ka = kernel_size // 2
        self.kb = self.ka - 1 if kernel_size % 2 == 0 else self.ka
        self.register_buffer("weight", _gaussian_kernel(kernel_size, sigma).repeat(channels, 1, 1, 1))
        self.groups = channels
        self.scale = scale
        self.int_inv_scale = int(1 / scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return x
        out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        out = F.conv2d(out, weight=self.weight, groups=self.groups)
        return out[:, :, ::self.int_inv_scale, ::self.int_inv_scale]


def _gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    """(1, 1, size, size) normalised 2-D Gaussian, the product of two 1-D ones."""
    if size == 1:  # scale 1: no blur (and sigma 0 would divide by zero)
        return torch.ones(1, 1, 1, 1)
    rows, cols = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                                torch.arange(size, dtype=torch.float32), indexing="ij")
    centre = (size - 1) / 2
    kernel = torch.exp(-(rows - centre) ** 2 / (2 * sigma ** 2)) * torch.exp(-(cols - centre) ** 2 / (2 * sigma ** 2))
    return (kernel / kernel.sum()).view(1, 1, size, size)
