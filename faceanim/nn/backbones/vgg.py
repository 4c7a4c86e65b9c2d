"""VGG-19 convolutional features with torchvision's parameter names, for perceptual losses.

The layers sit in `features` at torchvision's indices (`features.0.weight` ... `features.34.bias`), so a
torchvision-format file such as `vgg19-dcbb9e9d.pth` loads as it is; its `classifier.*` entries are not
needed for features and are ignored. No torchvision import and no download: the file is local.
"""
from __future__ import annotations

import os
from typing import Sequence

import torch
from torch import nn

from ...checkpoints import load_into, load_state_dict

# Configuration "E" (VGG-19): output channels of each 3x3 conv, "M" a 2x2 max pooling.
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                512, 512, 512, 512, "M")

# Indices in `features` of relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1 (the FOMM/DaGAN slices
# [0:2], [2:7], [7:12], [12:21], [21:30] end on them).
PERCEPTUAL_TAPS = (1, 6, 11, 20, 29)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg_layers(layout: Sequence[int | str]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    channels = 3
    for item in layout:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU()]
            channels = int(item)
    return layers


class VGG19Features(nn.Module):
    """The convolutional part of VGG-19 (`features`, 37 layers); `forward` returns chosen activations.

    Input is an ImageNet-normalised `(N, 3, H, W)` tensor (see `imagenet_normalize`)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*_vgg_layers(VGG19_LAYOUT))

    def forward(self, x: torch.Tensor, taps: Sequence[int] = PERCEPTUAL_TAPS) -> list[torch.Tensor]:
        """Outputs of the layers at indices `taps` (ascending); layers after the last tap are not run."""
        if list(taps) != sorted(set(taps)) or not taps or taps[-1] >= len(self.features):
            raise ValueError(f"taps must be distinct ascending indices below {len(self.features)}, got {taps}")
        outputs = []
        wanted = iter(taps)
        next_tap = next(wanted)
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index == next_tap:
                outputs.append(x)
                next_tap = next(wanted, None)
                if next_tap is None:
                    break
        return outputs


def imagenet_normalize(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] -> ImageNet mean/std normalised, the input torchvision's VGG weights expect."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def load_vgg19(path: str | os.PathLike) -> VGG19Features:
    """VGG-19 features from a local torchvision-format weights file (`.pth` pickle or `.safetensors`).

    Only `features.*` entries are used; a file without all of them raises CheckpointError."""
    state = load_state_dict(path)
    features = {name: tensor for name, tensor in state.items() if name.startswith("features.")}
    model = VGG19Features()
    load_into(model, features, strict=True, source=path)
    return model.eval()
