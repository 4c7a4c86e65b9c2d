"""DECA's coarse encoder (`E_flame`): a ResNet-50 and a two-layer MLP mapping a 224 px face image to
FLAME's 236 codes (shape 100, tex 50, exp 50, pose 6, cam 3, light 27).

FADM uses only the expression and pose codes: its attribute is exp ⊕ pose of the source minus that of the
driving frame. As in FADM's DECA wrapper, the whole 256 px frame is resized to 224 (bilinear, antialiased),
with no face crop. Parameter names match `E_flame` in DECA's `deca_model.tar`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.backbones.resnet import resnet50
from .config import ATTRIBUTE_CODES, DECA_CODES

DECA_INPUT_SIZE = 224
DECA_CODE_SIZE = sum(size for _, size in DECA_CODES)


class DECAEncoder(nn.Module):
    def __init__(self, outsize: int = DECA_CODE_SIZE):
        super().__init__()
        self.encoder = resnet50(num_classes=None)     # pooled 2048-d features (DECA drops the classifier)
        self.layers = nn.Sequential(nn.Linear(2048, 1024), nn.ReLU(), nn.Linear(1024, outsize))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Codes (B, 236) of images (B, 3, 224, 224) in [0, 1]."""
        return self.layers(self.encoder(images))

    def encode(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """The named codes of frames (B, 3, H, W) in [0, 1], resized to DECA's input first."""
        return split_codes(self(deca_input(frames)))


def deca_input(frames: torch.Tensor) -> torch.Tensor:
    if frames.shape[-2:] == (DECA_INPUT_SIZE, DECA_INPUT_SIZE):
        return frames
    return F.interpolate(frames, size=(DECA_INPUT_SIZE, DECA_INPUT_SIZE), mode="bilinear", align_corners=False,
                         antialias=True)


def split_codes(codes: torch.Tensor) -> dict[str, torch.Tensor]:
    named, start = {}, 0
    for name, size in DECA_CODES:
        named[name] = codes[:, start:start + size]
        start += size
    return named


def expression_pose(codes: dict[str, torch.Tensor]) -> torch.Tensor:
    """exp ⊕ pose (B, 56)."""
    return torch.cat([codes[name] for name in ATTRIBUTE_CODES], dim=1)


def attribute(source: dict[str, torch.Tensor], driving: dict[str, torch.Tensor]) -> torch.Tensor:
    """FADM's attribute: the source's exp ⊕ pose minus the driving frame's (broadcast over driving frames)."""
    return expression_pose(source) - expression_pose(driving)
