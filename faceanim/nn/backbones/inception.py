"""The Inception-v3 that FID is defined with (TensorFlow's 2015-12-05 graph as pytorch-fid ports it).

This network is not torchvision's Inception-v3: it has 1008 classes and its pooling branches behave like
TensorFlow's. Every average-pooling branch leaves the zero padding out of its mean
(`count_include_pad=False`), and the last block (`Mixed_7c`) pools with a max instead of a mean. The
parameter names are those of pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (`Conv2d_1a_3x3.conv.weight`,
`Mixed_5b.branch_pool.bn.running_var`, ..., `fc.weight`), so that file loads strictly. FID uses the
2048-d output of the final global average pooling ("pool3"), taken from 299x299 input scaled to [-1, 1]
(`fid_preprocess`).
"""
from __future__ import annotations

import os
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ...checkpoints import load_into, load_state_dict

FID_INPUT_SIZE = 299          # pytorch-fid resizes every image to 299x299 before the network
POOL3_FEATURES = 2048
FID_CLASSES = 1008            # the 2015 TensorFlow graph's classifier (1000 ImageNet classes + 8 unused)
MIN_INPUT_SIZE = 75           # smallest input whose last feature map is still at least 1x1


class ConvBN2d(nn.Module):
    """Convolution without bias, batch norm (TensorFlow's epsilon 1e-3) and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_average_pool(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's 3x3 'SAME' average pooling divides by the number of real pixels under the window.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b..5d): 1x1, 5x5, double 3x3 and pooled branches."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = ConvBN2d(in_channels, 64, 1)
        self.branch5x5_1 = ConvBN2d(in_channels, 48, 1)
        self.branch5x5_2 = ConvBN2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN2d(96, 96, 3, padding=1)
        self.branch_pool = ConvBN2d(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        five = self.branch5x5_2(self.branch5x5_1(x))
        double = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pooled = self.branch_pool(_tf_average_pool(x))
        return torch.cat([self.branch1x1(x), five, double, pooled], dim=1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = ConvBN2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBN2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        double = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), double, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (Mixed_6b..6e)."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = ConvBN2d(in_channels, 192, 1)
        self.branch7x7_1 = ConvBN2d(in_channels, c7, 1)
        self.branch7x7_2 = ConvBN2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = ConvBN2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = layer(double)
        pooled = self.branch_pool(_tf_average_pool(x))
        return torch.cat([self.branch1x1(x), single, double, pooled], dim=1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = ConvBN2d(in_channels, 192, 1)
        self.branch3x3_2 = ConvBN2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN2d(in_channels, 192, 1)
        self.branch7x7x3_2 = ConvBN2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3_2(self.branch3x3_1(x))
        seven = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            seven = layer(seven)
        return torch.cat([three, seven, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3 / 3x1 outputs (Mixed_7b, Mixed_7c).

    `pool` is "avg" for Mixed_7b and "max" for Mixed_7c: the 2015 graph max-pools in its last block, and
    FID features depend on reproducing that."""

    def __init__(self, in_channels: int, pool: Literal["avg", "max"]):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = ConvBN2d(in_channels, 320, 1)
        self.branch3x3_1 = ConvBN2d(in_channels, 384, 1)
        self.branch3x3_2a = ConvBN2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = ConvBN2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3_1(x)
        three = torch.cat([self.branch3x3_2a(three), self.branch3x3_2b(three)], dim=1)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        double = torch.cat([self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double)], dim=1)
        if self.pool == "max":
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _tf_average_pool(x)
        return torch.cat([self.branch1x1(x), three, double, self.branch_pool(pooled)], dim=1)


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3. `forward` maps (N, 3, H, W) input in [-1, 1] (H, W >= 75; 299 for FID, see
    `fid_preprocess`) to the (N, 2048) pool3 features; `classify` applies the 1008-class `fc` to them.

    No auxiliary classifier and no dropout: the file has no aux head and features are taken in eval mode."""

    def __init__(self, num_classes: int = FID_CLASSES):
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN2d(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN2d(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(POOL3_FEATURES, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < MIN_INPUT_SIZE:
            raise ValueError(f"Inception input must be at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}, got {tuple(x.shape)}")
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return x.mean(dim=(2, 3))   # global average pooling: "pool3"

    def classify(self, pool3: torch.Tensor) -> torch.Tensor:
        """(N, 2048) pool3 features -> (N, 1008) class logits."""
        return self.fc(pool3)


def fid_preprocess(images: torch.Tensor, size: int = FID_INPUT_SIZE) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> the network input: bilinear resize to size x size (align_corners=False,
    no antialiasing, as pytorch-fid does) and scaling to [-1, 1]."""
    if images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return 2 * images - 1


def with_batchnorm_counters(state: dict, model: nn.Module) -> dict:
    """`state` plus the BatchNorm `num_batches_tracked` counters the model has and the file lacks.

    Files written by PyTorch < 0.4.1 have no such counters; they only matter for training (eval-mode
    batch norm never reads them), so filling them in keeps the load strict for every real weight."""
    counters = {name: tensor for name, tensor in model.state_dict().items()
                if name.endswith(".num_batches_tracked") and name not in state}
    return {**state, **counters}


def load_fid_inception(path: str | os.PathLike) -> FIDInceptionV3:
    """The FID Inception from a local `pt_inception-2015-12-05-6726825d.pth` (or a safetensors copy), in
    eval mode; every parameter must be present and of the right shape (CheckpointError otherwise)."""
    model = FIDInceptionV3()
    load_into(model, with_batchnorm_counters(load_state_dict(path), model), strict=True, source=path)
    return model.eval()
