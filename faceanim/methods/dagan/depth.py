"""DaGAN's frozen face-depth network, in Monodepth2's layout (Godard et al. 2019).

`DepthEncoder` is a ResNet whose parameters sit under `encoder.*` (torchvision names); it normalises its
[0, 1] input with (x - 0.45) / 0.225 and returns five feature maps. `DepthDecoder` upsamples them back
with skip connections; its parameters are `decoder.N.conv.conv.*` (3x3 ConvBlocks with reflection
padding and ELU) and `decoder.N.conv.*` (the disparity heads), N in Monodepth2's construction order.
DaGAN uses only the full-resolution disparity ("disp", 0) = sigmoid(logits), but all four heads are kept
so that Monodepth2 checkpoints load unchanged.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.backbones.resnet import RESNETS

DECODER_WIDTHS = (16, 32, 64, 128, 256)   # per level 0 (full resolution) .. 4
NUM_LEVELS = 5
NUM_SCALES = 4                            # disparity heads, scales 0..3


class DepthEncoder(nn.Module):
    """Image (B, 3, H, W) in [0, 1] -> five features at strides 2, 4, 8, 16, 32 (H, W multiples of 32)."""

    def __init__(self, num_layers: int = 18):
        super().__init__()
        if num_layers not in RESNETS:
            raise ValueError(f"no ResNet-{num_layers} (choose {', '.join(map(str, RESNETS))})")
        self.encoder = RESNETS[num_layers](num_classes=1000)  # `fc` is unused but part of encoder.pth
        self.num_ch_enc = self.encoder.stage_channels

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder.stages((image - 0.45) / 0.225)


class Conv3x3(nn.Module):
    """Reflection padding then a 3x3 conv (keeps the size without zero borders)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(in_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class ConvBlock(nn.Module):
    """Conv3x3 then ELU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = Conv3x3(in_channels, out_channels)
        self.nonlin = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlin(self.conv(x))


class DepthDecoder(nn.Module):
    """Encoder features -> full-resolution disparity logits (B, 1, H, W); disparity = sigmoid(logits)."""

    def __init__(self, num_ch_enc: tuple[int, ...] = (64, 64, 128, 256, 512)):
        super().__init__()
        # Monodepth2 order: per level 4..0 two blocks (upconv i,0 and i,1), then heads for scales 0..3
        blocks = []
        for i in reversed(range(NUM_LEVELS)):
            below = num_ch_enc[-1] if i == NUM_LEVELS - 1 else DECODER_WIDTHS[i + 1]
            blocks.append(ConvBlock(below, DECODER_WIDTHS[i]))
            skip = num_ch_enc[i - 1] if i > 0 else 0
            blocks.append(ConvBlock(DECODER_WIDTHS[i] + skip, DECODER_WIDTHS[i]))
        heads = [Conv3x3(DECODER_WIDTHS[s], 1) for s in range(NUM_SCALES)]
        self.decoder = nn.ModuleList(blocks + heads)

    def _levels(self, features: list[torch.Tensor]) -> Iterator[tuple[int, torch.Tensor]]:
        """(level, decoded features) for levels 4 (1/16 resolution) down to 0 (full resolution)."""
        x = features[-1]
        for step, level in enumerate(reversed(range(NUM_LEVELS))):
            x = F.interpolate(self.decoder[2 * step](x), scale_factor=2, mode="nearest")
            if level > 0:
                x = torch.cat([x, features[level - 1]], dim=1)
            x = self.decoder[2 * step + 1](x)
            yield level, x

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        for _, x in self._levels(features):
            pass
        return self.decoder[2 * NUM_LEVELS](x)  # the scale-0 head (scales 1-3 only serve depth training)

    def forward_scales(self, features: list[torch.Tensor], num_scales: int = NUM_SCALES) -> list[torch.Tensor]:
        """Disparity logits at scales 0 .. num_scales-1 (full, 1/2, 1/4, 1/8 resolution): depth training's
        multi-scale outputs."""
        logits = {level: self.decoder[2 * NUM_LEVELS + level](x)
                  for level, x in self._levels(features) if level < num_scales}
        return [logits[scale] for scale in range(num_scales)]
