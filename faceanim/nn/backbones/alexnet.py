"""AlexNet convolutional features with torchvision's parameter names, the default LPIPS trunk.

The layers sit in `features` at torchvision's indices (convolutions at 0, 3, 6, 8 and 10), so torchvision's
`alexnet-owt-7be5be79.pth` loads with `load_alexnet`: its `features.*` entries fill the model strictly and
its `classifier.*` entries (the fully connected head, never run for features) are dropped before loading.
No torchvision import and no download: the file is local.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
from torch import nn

from .vgg import load_features_only, run_to_taps

# Indices in `features` of the ReLUs after each of the five convolutions (LPIPS's relu1..relu5: its
# slices [0:2], [2:5], [5:8], [8:10], [10:12] end on them).
ALEXNET_LPIPS_TAPS = (1, 4, 7, 9, 11)


def _alexnet_layers() -> list[nn.Module]:
    """torchvision's `AlexNet.features` (the "one weird trick" variant: 64-192-384-256-256 channels).

    ReLUs are not in-place here: a tapped activation must not be overwritten by the next layer."""
    return [
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
    ]


class AlexNetFeatures(nn.Module):
    """The convolutional part of AlexNet (`features`, 13 layers); `forward` returns chosen activations
    (by default LPIPS's relu1 ... relu5). The input normalisation is the caller's (LPIPS has its own)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*_alexnet_layers())

    def forward(self, x: torch.Tensor, taps: Sequence[int] = ALEXNET_LPIPS_TAPS) -> list[torch.Tensor]:
        """Outputs of the layers at indices `taps` (ascending); layers after the last tap are not run."""
        return run_to_taps(self.features, x, taps)


def load_alexnet(path: str | os.PathLike) -> AlexNetFeatures:
    """AlexNet features from a local torchvision-format file (`.pth` or `.safetensors`), in eval mode.

    Only `features.*` entries are used; a file without all of them raises CheckpointError."""
    return load_features_only(AlexNetFeatures(), path)
