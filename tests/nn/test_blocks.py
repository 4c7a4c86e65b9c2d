"""FOMM-family blocks: official parameter names, shapes, and the behaviour each block promises."""
from __future__ import annotations

import pytest
import torch

from faceanim.nn.blocks import (AntiAliasInterpolation2d, DownBlock2d, Hourglass, ResBlock2d, SameBlock2d,
                                UpBlock2d)
from faceanim.nn.normalization import SPADE, SPADEResnetBlock


def test_block_shapes_and_names():
    x = torch.randn(2, 4, 16, 16)
    assert SameBlock2d(4, 8, kernel_size=7, padding=3)(x).shape == (2, 8, 16, 16)
    assert DownBlock2d(4, 8)(x).shape == (2, 8, 8, 8)
    assert UpBlock2d(4, 8)(x).shape == (2, 8, 32, 32)
    assert ResBlock2d(4, kernel_size=3, padding=1)(x).shape == x.shape
    assert set(SameBlock2d(4, 8).state_dict()) == {
        "conv.weight", "conv.bias", "norm.weight", "norm.bias", "norm.running_mean", "norm.running_var",
        "norm.num_batches_tracked"}
    assert {k.split(".")[0] for k in ResBlock2d(4, 3, 1).state_dict()} == {"conv1", "conv2", "norm1", "norm2"}


def test_same_down_up_blocks_end_in_relu():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    for block in (SameBlock2d(3, 5), DownBlock2d(3, 5), UpBlock2d(3, 5)):
        assert block(x).min() >= 0


def test_resblock_is_identity_when_its_last_conv_is_zero():
    block = ResBlock2d(6, kernel_size=3, padding=1)
    torch.nn.init.zeros_(block.conv2.weight)
    torch.nn.init.zeros_(block.conv2.bias)
    x = torch.randn(1, 6, 9, 9)
    assert torch.equal(block(x), x)


def test_hourglass_keys_widths_and_output():
    hourglass = Hourglass(block_expansion=8, in_features=5, num_blocks=3, max_features=16)
    keys = hourglass.state_dict()
    assert "encoder.down_blocks.2.conv.weight" in keys and "decoder.up_blocks.2.norm.running_var" in keys
    # widths: 5 -> 16 -> 16 (capped) -> 16; decoder in: 16, 32, 32; out 16, 16, 8
    assert keys["encoder.down_blocks.0.conv.weight"].shape == (16, 5, 3, 3)
    assert keys["decoder.up_blocks.0.conv.weight"].shape == (16, 16, 3, 3)
    assert keys["decoder.up_blocks.1.conv.weight"].shape == (16, 32, 3, 3)
    assert keys["decoder.up_blocks.2.conv.weight"].shape == (8, 32, 3, 3)
    x = torch.randn(2, 5, 32, 32)
    out = hourglass(x)
    assert hourglass.out_filters == 13 and out.shape == (2, 13, 32, 32)
    assert torch.equal(out[:, 8:], x)  # the input is the last skip connection


def test_antialias_downsampling():
    down = AntiAliasInterpolation2d(3, 0.25)
    assert down.weight.shape == (3, 1, 13, 13) and "weight" in down.state_dict()
    assert torch.allclose(down.weight.sum(dim=(2, 3)), torch.ones(3, 1))
    constant = torch.full((1, 3, 64, 64), 0.7)
    out = down(constant)
    assert out.shape == (1, 3, 16, 16)
    assert torch.allclose(out[..., 2:-2, 2:-2], torch.full_like(out[..., 2:-2, 2:-2], 0.7), atol=1e-6)
    assert out[0, 0, 0, 0] < 0.7  # zero padding darkens the border, as in the official code
    x = torch.randn(1, 3, 8, 8)
    assert AntiAliasInterpolation2d(3, 1.0)(x) is x


def test_antialias_removes_aliasing():
    """A checkerboard (Nyquist frequency) subsampled by 4 without a filter aliases to all black; the
    band-limited version keeps its true mean, 0.5."""
    checker = ((torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2).float().expand(1, 1, 64, 64)
    assert checker[..., ::4, ::4].max() == 0
    filtered = AntiAliasInterpolation2d(1, 0.25)(checker)[..., 2:-2, 2:-2]
    assert torch.allclose(filtered, torch.full_like(filtered, 0.5), atol=0.01)


def test_spade_modulates_instance_norm():
    spade = SPADE(norm_nc=4, label_nc=3, hidden=16)
    assert {k.rsplit(".", 1)[0] for k in spade.state_dict()} == {"mlp_shared.0", "mlp_gamma", "mlp_beta"}
    for conv in (spade.mlp_gamma, spade.mlp_beta):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    x = torch.randn(2, 4, 8, 8) * 3 + 1
    out = spade(x, torch.randn(2, 3, 4, 4))  # the label is resized to x's size
    assert torch.allclose(out.mean(dim=(2, 3)), torch.zeros(2, 4), atol=1e-5)
    assert torch.allclose(out.std(dim=(2, 3), unbiased=False), torch.ones(2, 4), atol=1e-3)
    with torch.no_grad():
        spade.mlp_beta.bias.fill_(0.5)
    assert torch.allclose(spade(x, torch.randn(2, 3, 8, 8)).mean(dim=(2, 3)), torch.full((2, 4), 0.5), atol=1e-5)


@pytest.mark.parametrize("fin,fout", [(8, 8), (8, 4)])
def test_spade_resnet_block(fin, fout):
    block = SPADEResnetBlock(fin, fout, label_nc=3)
    keys = set(block.state_dict())
    assert "conv_0.weight_orig" in keys and "conv_0.weight_u" in keys  # spectral norm, official keys
    assert ("conv_s.weight_orig" in keys) == (fin != fout) and ("norm_s.mlp_gamma.weight" in keys) == (fin != fout)
    out = block(torch.randn(2, fin, 8, 8), torch.randn(2, 3, 16, 16))
    assert out.shape == (2, fout, 8, 8) and torch.isfinite(out).all()
