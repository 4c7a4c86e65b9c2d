"""The pyramid perceptual loss of FOMM and DaGAN: VGG-19 feature L1 at several image scales.

For each scale of an image pyramid (anti-aliased downsampling), both images go through VGG-19
(ImageNet-normalised) and the mean absolute difference of the relu1_1 ... relu5_1 activations is
weighted per layer and summed over layers and scales. The target's features carry no gradient.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..nn.backbones.vgg import PERCEPTUAL_TAPS, VGG19Features, imagenet_normalize
from ..nn.blocks import AntiAliasInterpolation2d

DEFAULT_SCALES = (1.0, 0.5, 0.25, 0.125)
DEFAULT_LAYER_WEIGHTS = (10.0, 10.0, 10.0, 10.0, 10.0)


class ImagePyramid(nn.Module):
    """An image and its anti-aliased downsamplings `{scale: image}` (what a multi-scale discriminator reads).

    Module names follow the official `ImagePyramide` (`downs.1`, `downs.0-5`, ...)."""

    def __init__(self, scales: Sequence[float], num_channels: int = 3):
        super().__init__()
        self.scales = tuple(float(s) for s in scales)
        self.downs = nn.ModuleDict({f"{s:g}".replace(".", "-"): AntiAliasInterpolation2d(num_channels, s)
                                    for s in self.scales})

    def forward(self, image: torch.Tensor) -> dict[float, torch.Tensor]:
        return {scale: down(image) for scale, down in zip(self.scales, self.downs.values())}


class PyramidPerceptualLoss(nn.Module):
    """sum over scales and layers of `layer_weights[i] * mean|VGG_i(prediction) - VGG_i(target)|`.

    Images are `(N, 3, H, W)` in [0, 1]. The VGG network is frozen (no parameter gradients) and kept in
    eval mode; gradients flow to `prediction` only."""

    def __init__(self, vgg: VGG19Features, scales: Sequence[float] = DEFAULT_SCALES,
                 layer_weights: Sequence[float] = DEFAULT_LAYER_WEIGHTS):
        super().__init__()
        if len(layer_weights) != len(PERCEPTUAL_TAPS):
            raise ValueError(f"layer_weights needs {len(PERCEPTUAL_TAPS)} values (relu1_1..relu5_1), "
                             f"got {len(layer_weights)}")
        self.vgg = vgg.eval().requires_grad_(False)
        self.pyramid = ImagePyramid(scales, 3)
        self.layer_weights = tuple(float(w) for w in layer_weights)

    def train(self, mode: bool = True) -> "PyramidPerceptualLoss":
        super().train(mode)
        self.vgg.eval()  # a fixed feature extractor, whatever mode the caller's models are in
        return self

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        predicted_levels = self.pyramid(prediction)
        with torch.no_grad():
            target_levels = self.pyramid(target)
        total = prediction.new_zeros(())
        for scale, predicted in predicted_levels.items():
            predicted_features = self.vgg(imagenet_normalize(predicted))
            with torch.no_grad():
                target_features = self.vgg(imagenet_normalize(target_levels[scale]))
            for weight, a, b in zip(self.layer_weights, predicted_features, target_features):
                total = total + weight * torch.abs(a - b).mean()
        return total
