"""Blocks of guided-diffusion-style UNets (Dhariwal & Nichol 2021), as Diffused Heads and DiffAE/DVA use
them: the multi-head self-attention block with the "legacy" QKV channel order, and zero initialisation.
Parameter names follow guided-diffusion (`norm`, `qkv`, `proj_out`), so official checkpoints load by name.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def zero_module(module: nn.Module) -> nn.Module:
    """Zero a module's parameters (output layers start as identity maps of their residual branch)."""
    for parameter in module.parameters():
        parameter.detach().zero_()
    return module


def legacy_qkv_attention(qkv: torch.Tensor, heads: int) -> torch.Tensor:
    """Self-attention of a (B, 3·H·C, T) projection whose channels are ordered per head as [q, k, v]
    (guided-diffusion's `QKVAttentionLegacy`) -> (B, H·C, T).

    softmax(qᵀk/√C)·v through `scaled_dot_product_attention`: the official code scales q and k by C^-1/4
    each and materialises the (T, T) weights; the result agrees to float rounding, with fused kernels."""
    batch, width, length = qkv.shape
    if width % (3 * heads):
        raise ValueError(f"qkv width {width} is not a multiple of 3 x {heads} heads")
    channels = width // (3 * heads)
    # contiguous (3, B, H, T, C) blocks: strided q/k/v views would send SDPA to its slow math kernel
    q, k, v = qkv.reshape(batch, heads, 3, channels, length).permute(2, 0, 1, 4, 3).contiguous()
    attended = F.scaled_dot_product_attention(q, k, v)          # (B, H, T, C)
    return attended.transpose(2, 3).reshape(batch, heads * channels, length)


def _phase_kernels(weight: torch.Tensor) -> torch.Tensor:
    """(Co, Ci, 3, 3) -> (4·Co, Ci, 2, 2): for each output phase (row parity p, column parity q) of a 3x3
    convolution over a nearest-2x upsampled input, the taps that land on the same low-resolution pixel
    summed (p = 0 sees low rows i-1, i, i as [w0, w1 + w2]; p = 1 sees i, i, i+1 as [w0 + w1, w2])."""
    def fold(w: torch.Tensor, dim: int) -> list[torch.Tensor]:
        a, b, c = w.unbind(dim)
        return [torch.stack([a, b + c], dim), torch.stack([a + b, c], dim)]
    return torch.cat([q for p in fold(weight, 2) for q in fold(p, 3)], dim=0)


def upsampled_conv3x3(h: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """`conv(F.interpolate(h, scale_factor=2, mode="nearest"))` for a 3x3, stride-1, padding-1 `conv`,
    computed at the low resolution: each output phase is a 2x2 convolution with folded taps, 16 instead of
    36 multiply-adds per low-resolution pixel (2.25x fewer), equal up to float rounding."""
    batch, _, height, width = h.shape
    out_channels = conv.out_channels
    phases = F.conv2d(F.pad(h, (1, 1, 1, 1)), _phase_kernels(conv.weight).to(h.dtype))   # (B, 4·Co, H+1, W+1)
    phases = phases.view(batch, 2, 2, out_channels, height + 1, width + 1)
    out = h.new_empty(batch, out_channels, height, 2, width, 2)
    for p in (0, 1):
        for q in (0, 1):
            out[:, :, :, p, :, q] = phases[:, p, q, :, p:p + height, q:q + width]
    out = out.view(batch, out_channels, 2 * height, 2 * width)
    return out if conv.bias is None else out + conv.bias.to(h.dtype)[:, None, None]


def head_count(channels: int, num_heads: int, num_head_channels: int) -> int:
    """guided-diffusion's rule: `num_head_channels` (if not -1) fixes the head width, else `num_heads`."""
    if num_head_channels == -1:
        return num_heads
    if channels % num_head_channels:
        raise ValueError(f"{channels} channels do not split into heads of {num_head_channels}")
    return channels // num_head_channels


class AttentionBlock(nn.Module):
    """GroupNorm -> 1x1 qkv -> multi-head self-attention over all positions -> zero-init 1x1 proj, residual."""

    def __init__(self, channels: int, num_heads: int = 1, num_head_channels: int = -1, groups: int = 32):
        super().__init__()
        self.heads = head_count(channels, num_heads, num_head_channels)
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, *spatial = x.shape
        flat = x.reshape(batch, channels, -1)
        attended = legacy_qkv_attention(self.qkv(self.norm(flat)), self.heads)
        return (flat + self.proj_out(attended)).reshape(batch, channels, *spatial)
