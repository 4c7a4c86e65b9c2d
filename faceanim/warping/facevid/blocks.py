"""The volumetric (3-D) blocks of face-vid2vid, and its 2-D bottleneck and leaky blocks.

They mirror `faceanim.nn.blocks` (same parameter names, so `Facevid.pth` loads unchanged): a 3-D
block works on (B, C, D, H, W) features and resamples H and W only, never the depth axis. The
official code uses synchronised BatchNorm; `torch.nn.BatchNorm{2,3}d` has the same keys and numerics
on one device.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.blocks import SameBlock2d, hourglass_width


class LeakySameBlock2d(SameBlock2d):
    """conv -> BatchNorm -> LeakyReLU(0.01): the generator's `third` block (official `lrelu=True`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), negative_slope=0.01)


class SameBlock3d(nn.Module):
    """3x3x3 conv -> BatchNorm3d -> ReLU, resolution kept."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm3d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock3d(SameBlock3d):
    """SameBlock3d -> (1, 2, 2) average pooling: half height and width, same depth."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1):
        super().__init__(in_features, out_features, kernel_size, padding)
        self.pool = nn.AvgPool3d(kernel_size=(1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(super().forward(x))


class UpBlock3d(SameBlock3d):
    """Nearest (1, 2, 2) upsampling -> SameBlock3d: double height and width, same depth."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest"))


class ResBlock3d(nn.Module):
    """Pre-activation residual block: x + conv2(relu(norm2(conv1(relu(norm1(x))))))."""

    def __init__(self, in_features: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.conv1 = nn.Conv3d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.conv2 = nn.Conv3d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm3d(in_features, affine=True)
        self.norm2 = nn.BatchNorm3d(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(out))) + x


class ResBottleneck(nn.Module):
    """ResNet bottleneck (1x1 -> 3x3 with `stride` -> 1x1, BatchNorm after each) at constant width; a strided
    block projects its shortcut with a strided 1x1 conv + BatchNorm (`skip`, `norm4`)."""

    def __init__(self, in_features: int, stride: int):
        super().__init__()
        inner = in_features // 4
        self.conv1 = nn.Conv2d(in_features, inner, kernel_size=1)
        self.conv2 = nn.Conv2d(inner, inner, kernel_size=3, padding=1, stride=stride)
        self.conv3 = nn.Conv2d(inner, in_features, kernel_size=1)
        self.norm1 = nn.BatchNorm2d(inner, affine=True)
        self.norm2 = nn.BatchNorm2d(inner, affine=True)
        self.norm3 = nn.BatchNorm2d(in_features, affine=True)
        self.stride = stride
        if stride != 1:
            self.skip = nn.Conv2d(in_features, in_features, kernel_size=1, stride=stride)
            self.norm4 = nn.BatchNorm2d(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = F.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        shortcut = self.norm4(self.skip(x)) if self.stride != 1 else x
        return F.relu(out + shortcut)


class Hourglass3dEncoder(nn.Module):
    """`num_blocks` DownBlock3d; returns the input and every block's output (the skips)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock3d(in_features if i == 0 else hourglass_width(block_expansion, i, max_features),
                        hourglass_width(block_expansion, i + 1, max_features))
            for i in range(num_blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Hourglass3dDecoder(nn.Module):
    """`num_blocks` UpBlock3d, each followed by concatenation with its encoder skip, then a 3x3x3
    conv -> BatchNorm3d -> ReLU over the result (which 2-D FOMM's decoder lacks)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            skip_factor = 1 if i == num_blocks - 1 else 2  # every block but the first also gets a skip
            blocks.append(UpBlock3d(skip_factor * hourglass_width(block_expansion, i + 1, max_features),
                                    hourglass_width(block_expansion, i, max_features)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters, affine=True)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        out = skips[-1]
        for block, skip in zip(self.up_blocks, reversed(skips[:-1])):
            out = torch.cat([block(out), skip], dim=1)
        return F.relu(self.norm(self.conv(out)))


class Hourglass3d(nn.Module):
    """3-D U-Net without a bottleneck: (B, in_features, D, H, W) -> (B, out_filters, D, H, W)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256):
        super().__init__()
        self.encoder = Hourglass3dEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Hourglass3dDecoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
