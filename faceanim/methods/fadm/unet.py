"""FADM's denoiser: an SR3-style UNet whose first input channels are the condition image that FADM's
condition network makes from the coarse frame, the DECA attribute and the timestep.

Parameter names follow the official `UNet` (`modules/diffusion/core_net.py`) and `condition_net`
(`condition_deal.py`), so `diffusion.pth` loads unchanged under `diffusion.denoise_fn.`.
"""
from __future__ import annotations

import torch
from torch import nn

from ...nn.unet_blocks import Block, Downsample, ResnetBlocWithAttn, Swish, TimeEmbedding, Upsample
from .condition import ConditionNetwork
from .config import UNetConfig


class UNet(nn.Module):
    """ε̂ = UNet(condition image ⊕ x_t, t); the integer timestep is embedded as is (0 .. T−1)."""

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = config
        channels, groups, dropout = config.inner_channel, config.norm_groups, config.dropout
        self.time_mlp = nn.Sequential(TimeEmbedding(channels), nn.Linear(channels, channels * 4), Swish(),
                                      nn.Linear(channels * 4, channels))
        self.condition_conv = ConditionNetwork(time_dim=channels, condition_dim=config.condition_dim,
                                               inner_channel=config.condition_channels)
        downs, skips, width, resolution = [nn.Conv2d(config.in_channel, channels, 3, padding=1)], [channels], \
            channels, config.image_size
        for level, mult in enumerate(config.channel_mults):
            for _ in range(config.res_blocks):
                downs.append(ResnetBlocWithAttn(width, channels * mult, time_emb_dim=channels, norm_groups=groups,
                                                dropout=dropout, with_attn=resolution in config.attn_res))
                width = channels * mult
                skips.append(width)
            if level < len(config.channel_mults) - 1:
                downs.append(Downsample(width))
                skips.append(width)
                resolution //= 2
        self.downs = nn.ModuleList(downs)
        self.mid = nn.ModuleList([
            ResnetBlocWithAttn(width, width, time_emb_dim=channels, norm_groups=groups, dropout=dropout,
                               with_attn=True),
            ResnetBlocWithAttn(width, width, time_emb_dim=channels, norm_groups=groups, dropout=dropout)])
        ups = []
        for level, mult in reversed(list(enumerate(config.channel_mults))):
            for _ in range(config.res_blocks + 1):
                ups.append(ResnetBlocWithAttn(width + skips.pop(), channels * mult, time_emb_dim=channels,
                                              dropout=dropout, norm_groups=groups,
                                              with_attn=resolution in config.attn_res))
                width = channels * mult
            if level > 0:
                ups.append(Upsample(width))
                resolution *= 2
        self.ups = nn.ModuleList(ups)
        self.final_conv = Block(width, config.out_channel, groups=groups)

    def forward(self, x: torch.Tensor, time: torch.Tensor, condition) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε̂, colour loss) for noisy frames `x` at integer timesteps `time` under `condition`
        (a `faceanim.methods.fadm.conditioning.Condition`, prepared or not)."""
        prepared = condition.prepared(self.condition_conv)
        t = self.time_mlp(time)
        h = torch.cat((self.condition_conv(prepared, condition.attribute, t), x), dim=1)
        skips = []
        for layer in self.downs:
            h = layer(h, t) if isinstance(layer, ResnetBlocWithAttn) else layer(h)
            skips.append(h)
        for layer in self.mid:
            h = layer(h, t)
        for layer in self.ups:
            h = layer(torch.cat((h, skips.pop()), dim=1), t) if isinstance(layer, ResnetBlocWithAttn) else layer(h)
        return self.final_conv(h), prepared.color_loss
