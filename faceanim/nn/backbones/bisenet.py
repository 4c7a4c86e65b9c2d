"""BiSeNet face parser (Yu et al. 2018) in the variant of zllrunning/face-parsing.PyTorch: 19 CelebAMask-HQ
classes, a ResNet-18 context path whose stride-8 features stand in for the spatial path, as Diffusion Video
Autoencoders builds it in `model/seg_model_2.py` (`BGnet`) and loads it from `79999_iter.pth`.

Parameter names are that code's (`cp.resnet.*` = torchvision ResNet-18 names without `fc`, `cp.arm16/arm32`,
`cp.conv_head32/16`, `cp.conv_avg`, `ffm.convblk/conv1/conv2`, `conv_out`, `conv_out16`, `conv_out32`, each
`ConvBNReLU` as `.conv`/`.bn`), so `79999_iter.pth` loads with `load_state_dict(strict=True)`.

The official constructor downloads torchvision's ImageNet ResNet-18 weights into the context path; those are
overwritten by the parser checkpoint anyway, so nothing is downloaded here.

Class indices: 0 background, 1 skin, 2/3 brows, 4/5 eyes, 6 glasses, 7/8 ears, 9 earring, 10 nose, 11 mouth,
12/13 lips, 14 neck, 15 necklace, 16 cloth, 17 hair, 18 hat.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import resnet18

NUM_CLASSES = 19


class ConvBNReLU(nn.Module):
    """conv (no bias) -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        nn.init.kaiming_normal_(self.conv.weight, a=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class BiSeNetOutput(nn.Module):
    """3x3 ConvBNReLU -> 1x1 conv to the class logits."""

    def __init__(self, in_channels: int, mid_channels: int, num_classes: int):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, mid_channels, 3, 1, 1)
        self.conv_out = nn.Conv2d(mid_channels, num_classes, kernel_size=1, bias=False)
        nn.init.kaiming_normal_(self.conv_out.weight, a=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


class AttentionRefinementModule(nn.Module):
    """3x3 ConvBNReLU, then a channel gate: global mean -> 1x1 conv -> BN -> sigmoid."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels, 3, 1, 1)
        self.conv_atten = nn.Conv2d(out_channels, out_channels, kernel_size=1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_channels)
        nn.init.kaiming_normal_(self.conv_atten.weight, a=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.conv(x)
        gate = torch.sigmoid(self.bn_atten(self.conv_atten(features.mean(dim=(2, 3), keepdim=True))))
        return features * gate


class ContextPath(nn.Module):
    """ResNet-18 (strides 8/16/32) with attention refinement of the stride-16/32 maps and a global-context
    term; returns (stride-8 ResNet features, refined stride-8 map, refined stride-16 map)."""

    def __init__(self):
        super().__init__()
        self.resnet = resnet18(num_classes=None)
        self.arm16 = AttentionRefinementModule(256, 128)
        self.arm32 = AttentionRefinementModule(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, 3, 1, 1)
        self.conv_head16 = ConvBNReLU(128, 128, 3, 1, 1)
        self.conv_avg = ConvBNReLU(512, 128, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat8, feat16, feat32 = self.resnet.stages(x)[2:]
        context = self.conv_avg(feat32.mean(dim=(2, 3), keepdim=True))
        # the official code nearest-upsamples the 1x1 context to the stride-32 size: a broadcast
        sum32 = self.arm32(feat32) + context.expand(-1, -1, *feat32.shape[2:])
        up32 = self.conv_head32(F.interpolate(sum32, feat16.shape[2:], mode="nearest"))
        sum16 = self.arm16(feat16) + up32
        up16 = self.conv_head16(F.interpolate(sum16, feat8.shape[2:], mode="nearest"))
        return feat8, up16, up32


class FeatureFusionModule(nn.Module):
    """concat -> 1x1 ConvBNReLU -> feature + feature * SE-style gate (1x1 conv, ReLU, 1x1 conv, sigmoid)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.convblk = ConvBNReLU(in_channels, out_channels, 1, 1, 0)
        self.conv1 = nn.Conv2d(out_channels, out_channels // 4, kernel_size=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels // 4, out_channels, kernel_size=1, bias=False)
        nn.init.kaiming_normal_(self.conv1.weight, a=1)
        nn.init.kaiming_normal_(self.conv2.weight, a=1)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        features = self.convblk(torch.cat([spatial, context], dim=1))
        gate = torch.sigmoid(self.conv2(F.relu(self.conv1(features.mean(dim=(2, 3), keepdim=True)))))
        return features * gate + features


class BiSeNet(nn.Module):
    """Input: ImageNet-normalised RGB (N, 3, H, W), H and W multiples of 32. `forward` returns the three
    logit maps (main, stride-8 auxiliary, stride-16 auxiliary), each bilinearly upsampled (align_corners)
    to (H, W); inference uses the first."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusionModule(256, 256)
        self.conv_out = BiSeNetOutput(256, 256, num_classes)
        self.conv_out16 = BiSeNetOutput(128, 64, num_classes)
        self.conv_out32 = BiSeNetOutput(128, 64, num_classes)

    def forward(self, x: torch.Tensor, aux: bool = True):
        size = x.shape[2:]
        feat8, context8, context16 = self.cp(x)
        heads = [self.conv_out(self.ffm(feat8, context8))]
        if aux:
            heads += [self.conv_out16(context8), self.conv_out32(context16)]
        outs = tuple(F.interpolate(h, size, mode="bilinear", align_corners=True) for h in heads)
        return outs if aux else outs[0]
