"""ArcFace IR-SE50: the face-recognition backbone (improved residual units with squeeze-and-excitation)
of TreB1eN's InsightFace_Pytorch, which pSp, e4e, STIT and Diffusion Video Autoencoders load from
`model_ir_se50.pth` as their identity network.

Module and parameter names follow that code (`input_layer.*`, `body.N.shortcut_layer.*`,
`body.N.res_layer.*` with the SE module's `fc1`/`fc2`, `output_layer.*`), so the published file loads
with `load_state_dict(strict=True)`. Input: (N, 3, 112, 112) RGB in [-1, 1]; output: (N, 512) unit vectors.
"""
from __future__ import annotations

import os
from typing import NamedTuple

import torch
from torch import nn

from ...errors import CheckpointError

INPUT_SIZE = 112
EMBEDDING_SIZE = 512


class UnitSpec(NamedTuple):
    in_channels: int
    depth: int
    stride: int


# Residual units per stage of the 50/100/152-layer variants; each stage starts with a stride-2 unit.
STAGE_UNITS = {50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 152: (3, 8, 36, 3)}
STAGE_DEPTHS = (64, 128, 256, 512)


def unit_specs(num_layers: int = 50) -> list[UnitSpec]:
    """The residual units of the body, in order (what `body.N` is)."""
    if num_layers not in STAGE_UNITS:
        raise ValueError(f"IR-SE has 50, 100 or 152 layers, not {num_layers}")
    specs, in_channels = [], 64
    for depth, count in zip(STAGE_DEPTHS, STAGE_UNITS[num_layers]):
        specs.append(UnitSpec(in_channels, depth, 2))
        specs += [UnitSpec(depth, depth, 1)] * (count - 1)
        in_channels = depth
    return specs


class SqueezeExcite(nn.Module):
    """Channel gating: global average -> 1x1 reduce -> ReLU -> 1x1 expand -> sigmoid, times the input."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))
        return x * gate


class IRUnit(nn.Module):
    """BN -> 3x3 conv -> PReLU -> 3x3 conv (strided) -> BN [-> SE], plus a shortcut: a strided 1x1
    subsampling where the width stays (the official code writes it as MaxPool2d(1, stride), which has
    no parameters) or a strided 1x1 conv + BN where it grows."""

    def __init__(self, spec: UnitSpec, squeeze_excite: bool = True):
        super().__init__()
        in_channels, depth, stride = spec
        if in_channels == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_channels, depth, 1, stride, bias=False),
                                                nn.BatchNorm2d(depth))
        layers: list[nn.Module] = [nn.BatchNorm2d(in_channels),
                                   nn.Conv2d(in_channels, depth, 3, 1, 1, bias=False),
                                   nn.PReLU(depth),
                                   nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
                                   nn.BatchNorm2d(depth)]
        if squeeze_excite:
            layers.append(SqueezeExcite(depth, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRSEBackbone(nn.Module):
    """The ArcFace backbone for 112x112 faces. `mode` "ir_se" (with SE, the pSp/DVA identity net) or
    "ir"; `drop_ratio` only matters in training (pSp's IDLoss builds it with 0.6); `affine=False` drops
    the scale and shift of the last BatchNorm1d (the IR_50/IR_SE_50 helpers do; model_ir_se50.pth has them)."""

    def __init__(self, num_layers: int = 50, mode: str = "ir_se", drop_ratio: float = 0.6, affine: bool = True):
        super().__init__()
        if mode not in ("ir", "ir_se"):
            raise ValueError(f"mode is 'ir' or 'ir_se', not {mode!r}")
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        self.body = nn.Sequential(*[IRUnit(spec, mode == "ir_se") for spec in unit_specs(num_layers)])
        final_side = INPUT_SIZE // 16  # four stride-2 stages: 112 -> 7
        self.output_layer = nn.Sequential(nn.BatchNorm2d(512), nn.Dropout(drop_ratio), nn.Flatten(),
                                          nn.Linear(512 * final_side * final_side, EMBEDDING_SIZE),
                                          nn.BatchNorm1d(EMBEDDING_SIZE, affine=affine))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 112, 112) in [-1, 1] -> (N, 512) l2-normalised embeddings."""
        features = self.output_layer(self.body(self.input_layer(x)))
        return features / features.norm(dim=1, keepdim=True)


def ir_se50() -> IRSEBackbone:
    """IR-SE50 as pSp's IDLoss and DVA's IDnet build it: Backbone(112, 50, drop_ratio=0.6, mode='ir_se')."""
    return IRSEBackbone(50, "ir_se", drop_ratio=0.6, affine=True)


def load_ir_se50(path: str | os.PathLike, device: str | torch.device = "cpu") -> IRSEBackbone:
    """IR-SE50 in eval mode with the weights of `path` (model_ir_se50.pth or a converted .safetensors).

    Loads strictly; only `num_batches_tracked` counters may be absent (files written before PyTorch 0.4.1
    lack them, and BatchNorm fills them in). CheckpointError naming the file when the keys do not fit."""
    from ...checkpoints import load_state_dict

    model = ir_se50()
    state = load_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(path, f"is not an ArcFace IR-SE50 state dict ({_first_line(err)})") from None
    return model.to(device).eval()


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return " ".join(lines[:2])[:300]
