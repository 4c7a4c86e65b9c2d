"""VGG-19 and VGG-16 convolutional features with torchvision's parameter names, for perceptual losses
(VGG-19) and the LPIPS metric (VGG-16).

The layers sit in `features` at torchvision's indices (`features.0.weight` ... `features.34.bias` for
VGG-19, ... `features.28.bias` for VGG-16), so a torchvision-format file such as `vgg19-dcbb9e9d.pth` or
`vgg16-397923af.pth` loads as it is; its `classifier.*` entries are not needed for features and are
ignored. No torchvision import and no download: the file is local.
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

# Configuration "D" (VGG-16).
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

# Indices in `features` of relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1 (the FOMM/DaGAN slices
# [0:2], [2:7], [7:12], [12:21], [21:30] end on them).
PERCEPTUAL_TAPS = (1, 6, 11, 20, 29)

# Indices in VGG-16's `features` of relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3: the LPIPS slices
# [0:4], [4:9], [9:16], [16:23], [23:30] end on them.
VGG16_LPIPS_TAPS = (3, 8, 15, 22, 29)

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
        return run_to_taps(self.features, x, taps)


class VGG16Features(nn.Module):
    """The convolutional part of VGG-16 (`features`, 31 layers); `forward` returns chosen activations
    (by default LPIPS's relu1_2 ... relu5_3). The input normalisation is the caller's (LPIPS has its own)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*_vgg_layers(VGG16_LAYOUT))

    def forward(self, x: torch.Tensor, taps: Sequence[int] = VGG16_LPIPS_TAPS) -> list[torch.Tensor]:
        """Outputs of the layers at indices `taps` (ascending); layers after the last tap are not run."""
        return run_to_taps(self.features, x, taps)


def run_to_taps(layers: nn.Sequential, x: torch.Tensor, taps: Sequence[int]) -> list[torch.Tensor]:
    """Run `layers` in order on `x` and keep the outputs of those at indices `taps` (distinct, ascending);
    stop after the last tap, since nothing later is asked for."""
    if list(taps) != sorted(set(taps)) or not taps or taps[-1] >= len(layers):
        raise ValueError(f"taps must be distinct ascending indices below {len(layers)}, got {taps}")
    outputs = []
    wanted = iter(taps)
    next_tap = next(wanted)
    for index, layer in enumerate(layers):
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
    return load_features_only(VGG19Features(), path)


def load_vgg16(path: str | os.PathLike) -> VGG16Features:
    """VGG-16 features from a local torchvision-format weights file (e.g. `vgg16-397923af.pth`, which
    LPIPS's vgg trunk uses); only `features.*` entries are used, missing ones raise CheckpointError."""
    return load_features_only(VGG16Features(), path)


def load_features_only(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Fill `model` (whose parameters all live under `features.`) from a torchvision-format file, strictly,
    dropping the file's other entries (the classifier head, which feature extraction never runs)."""
    state = load_state_dict(path)
    features = {name: tensor for name, tensor in state.items() if name.startswith("features.")}
    load_into(model, features, strict=True, source=path)
    return model.eval()
