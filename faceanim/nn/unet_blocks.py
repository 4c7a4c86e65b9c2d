"""Blocks of SR3-style diffusion UNets (Saharia et al. 2021; the layout FADM's denoiser and condition
network use): sinusoidal time embedding, GroupNorm-Swish-conv blocks, residual blocks with a time
embedding, single-head self-attention, resampling. Parameter names follow the official FADM
`modules/diffusion/util.py` (`block.N`, `mlp.1`, `res_conv`, `qkv`, ...), so its checkpoints load as they are."""
from __future__ import annotations

import math
import torch
import torch.nn.functional as F
from torch import nn


class Swish(nn.Module):
    """x·sigmoid(x), as one fused op (`F.silu`): the official `x * torch.sigmoid(x)` reads and writes the
    activation twice, about 10 % of a FADM denoiser step on a CPU; the two agree to within one float ulp."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x)


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of the raw integer timestep, [sin, cos] halves."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.register_buffer("inv_freq", torch.exp(torch.arange(0, dim, 2, dtype=torch.float32)
                                                   * (-math.log(10000) / dim)))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = torch.outer(t.reshape(-1).float(), self.inv_freq)
        return torch.cat([angles.sin(), angles.cos()], dim=-1).reshape(*t.shape, self.dim)


class Block(nn.Module):
    """GroupNorm → Swish → (dropout) → 3x3 conv."""

    def __init__(self, dim: int, dim_out: int, groups: int = 32, dropout: float = 0.0):
        super().__init__()
        self.block = nn.Sequential(nn.GroupNorm(groups, dim), Swish(),
                                   nn.Dropout(dropout) if dropout else nn.Identity(),
                                   nn.Conv2d(dim, dim_out, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class ResnetBlock(nn.Module):
    """Two Blocks with a residual; the time embedding (if any) is added after the first."""

    def __init__(self, dim: int, dim_out: int, time_emb_dim: int | None = None, dropout: float = 0.0,
                 norm_groups: int = 32):
        super().__init__()
        self.mlp = nn.Sequential(Swish(), nn.Linear(time_emb_dim, dim_out)) if time_emb_dim else None
        self.block1 = Block(dim, dim_out, groups=norm_groups)
        self.block2 = Block(dim_out, dim_out, groups=norm_groups, dropout=dropout)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.block1(x)
        if self.mlp is not None:
            h = h + self.mlp(time_emb)[:, :, None, None]
        return self.block2(h) + self.res_conv(x)


class SelfAttention(nn.Module):
    """Single-head self-attention over all positions, GroupNorm first, residual (scaled by 1/sqrt(C))."""

    def __init__(self, channels: int, norm_groups: int = 32):
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, channels)
        self.qkv = nn.Conv2d(channels, channels * 3, 1, bias=False)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        query, key, value = self.qkv(self.norm(x)).reshape(batch, 3 * channels, height * width).chunk(3, dim=1)
        weights = torch.softmax(query.transpose(1, 2) @ key / math.sqrt(channels), dim=-1)   # (B, HW, HW)
        attended = (value @ weights.transpose(1, 2)).reshape(batch, channels, height, width)
        return self.out(attended) + x


class ResnetBlocWithAttn(nn.Module):
    def __init__(self, dim: int, dim_out: int, *, time_emb_dim: int | None = None, norm_groups: int = 32,
                 dropout: float = 0.0, with_attn: bool = False):
        super().__init__()
        self.res_block = ResnetBlock(dim, dim_out, time_emb_dim, norm_groups=norm_groups, dropout=dropout)
        self.attn = SelfAttention(dim_out, norm_groups=norm_groups) if with_attn else None

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor) -> torch.Tensor:
        x = self.res_block(x, time_emb)
        return x if self.attn is None else self.attn(x)


class Downsample(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
