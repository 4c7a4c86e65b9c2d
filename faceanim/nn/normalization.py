"""Spatially-adaptive normalisation (SPADE, Park et al. 2019) and its residual block.

gamma(label), beta(label) modulate a parameter-free instance norm: out = norm(x) * (1 + gamma) + beta.
Parameter names follow the SPADE / DaGAN code (`mlp_shared.0`, `mlp_gamma`, `conv_0`, `norm_s`, ...);
spectral norm uses `torch.nn.utils.spectral_norm`, whose `weight_orig`/`weight_u`/`weight_v` keys are the
ones official checkpoints hold.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SPADE(nn.Module):
    """Instance norm whose scale and shift are predicted per pixel from a label map."""

    def __init__(self, norm_nc: int, label_nc: int, hidden: int = 128):
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size=3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        label = F.interpolate(label, size=x.shape[2:], mode="nearest")
        features = self.mlp_shared(label)
        return self.param_free_norm(x) * (1 + self.mlp_gamma(features)) + self.mlp_beta(features)


class SPADEResnetBlock(nn.Module):
    """Residual block of two SPADE -> LeakyReLU(0.2) -> 3x3 conv stages; a learned 1x1 shortcut when
    the width changes."""

    def __init__(self, fin: int, fout: int, label_nc: int, spectral: bool = True, dilation: int = 1):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        wrap = nn.utils.spectral_norm if spectral else (lambda module: module)
        self.conv_0 = wrap(nn.Conv2d(fin, fmiddle, kernel_size=3, padding=dilation, dilation=dilation))
        self.conv_1 = wrap(nn.Conv2d(fmiddle, fout, kernel_size=3, padding=dilation, dilation=dilation))
        self.norm_0 = SPADE(fin, label_nc)
        self.norm_1 = SPADE(fmiddle, label_nc)
        if self.learned_shortcut:
            self.conv_s = wrap(nn.Conv2d(fin, fout, kernel_size=1, bias=False))
            self.norm_s = SPADE(fin, label_nc)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, label)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, label), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, label), 0.2))
        return shortcut + dx
