"""The guided-diffusion blocks against the official formulations: the legacy QKV attention (einsum with
q, k scaled by C^-1/4, float32 softmax) and a 3x3 convolution after nearest-2x upsampling."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from faceanim.nn.guided_diffusion import AttentionBlock, legacy_qkv_attention, upsampled_conv3x3


def _official_legacy_attention(qkv: torch.Tensor, heads: int) -> torch.Tensor:
    batch, width, length = qkv.shape
    ch = width // (3 * heads)
    q, k, v = qkv.reshape(batch * heads, ch * 3, length).split(ch, dim=1)
    scale = 1 / math.sqrt(math.sqrt(ch))
    weight = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale).float(), dim=-1)
    return torch.einsum("bts,bcs->bct", weight, v).reshape(batch, -1, length)


@pytest.mark.parametrize("batch, heads, channels, length", [(1, 1, 8, 5), (2, 3, 16, 64), (3, 12, 64, 17)])
def test_legacy_attention_matches_the_official_einsum(batch, heads, channels, length):
    qkv = torch.randn(batch, 3 * heads * channels, length, generator=torch.Generator().manual_seed(heads))
    expected = _official_legacy_attention(qkv, heads)
    assert torch.allclose(legacy_qkv_attention(qkv, heads), expected, atol=1e-5, rtol=1e-4)


def test_attention_block_is_an_identity_at_initialisation():
    block = AttentionBlock(64, num_head_channels=32).eval()
    x = torch.randn(2, 64, 4, 4)
    assert torch.equal(block(x), x)     # zero-initialised output projection


@pytest.mark.parametrize("channels, out_channels, height, width, bias", [
    (4, 6, 5, 7, True), (32, 32, 8, 8, False), (3, 8, 1, 1, True)])
def test_upsampled_conv3x3_equals_upsample_then_conv(channels, out_channels, height, width, bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(channels, out_channels, 3, padding=1, bias=bias)
    h = torch.randn(2, channels, height, width)
    expected = conv(F.interpolate(h, scale_factor=2, mode="nearest"))
    with torch.no_grad():
        ours = upsampled_conv3x3(h, conv)
    assert ours.shape == expected.shape
    assert torch.allclose(ours, expected, atol=1e-5, rtol=1e-5)
