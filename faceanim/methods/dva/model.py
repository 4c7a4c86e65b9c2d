"""The DVA denoiser: DiffAE's BeatGANs autoencoding UNet, conditioned on the timestep and the 512-d
semantic code z_face (identity + landmark features from `encoder.py`).

Written from the official `model/unet.py` (`BeatGANsUNetModel`), `model/unet_autoenc.py`
(`BeatGANsAutoencModel`, `TimeStyleSeperateEmbed`), `model/blocks.py` (`ResBlock`, `apply_conditions`,
`AttentionBlock`) and `model/nn.py` (`timestep_embedding`, `normalization`). Module and parameter names are
the official ones, so the `model.*` / `ema_model.*` tensors of the released Lightning checkpoint (without
`encoder.*`, which `encoder.py` holds) load by name.

DVA's residual block differs from upstream DiffAE: its output branch is
GN -> (1+s_t)·h+b_t -> SiLU -> conv3x3 -> GN -> (1+s_c)·h+b_c -> SiLU -> dropout -> zero-init conv3x3,
i.e. an extra convolution and GroupNorm between the time and the semantic modulation
(`out_layers.{0,2,3,6}`), and the semantic code gives a scale **and** a shift (`cond_emb_layers`:
SiLU -> Linear(512 -> 2·C)).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.guided_diffusion import AttentionBlock, upsampled_conv3x3, zero_module
from .config import DVAConfig, UNetConfig, _groups
from .encoder import DVAEncoder


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """DiffAE's sinusoid: frequencies exp(-ln(max_period)·k/(dim/2)), k < dim/2, in float32 from an
    integer range, ordered [cos, sin] (a zero column appended for odd `dim`). Timesteps may be float."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = timesteps[:, None].float() * freqs.to(timesteps.device)[None]
    embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        embedding = torch.cat([embedding, torch.zeros_like(embedding[:, :1])], dim=-1)
    return embedding


def normalization(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(_groups(channels), channels)


class TimeStyleSeperateEmbed(nn.Module):
    """Time: Linear -> SiLU -> Linear on the sinusoid; style: identity on the semantic code
    (official spelling of the class name kept)."""

    def __init__(self, time_channels: int, time_out_channels: int):
        super().__init__()
        self.time_embed = nn.Sequential(nn.Linear(time_channels, time_out_channels), nn.SiLU(),
                                        nn.Linear(time_out_channels, time_out_channels))
        self.style = nn.Identity()

    def forward(self, time_emb: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.time_embed(time_emb), (None if cond is None else self.style(cond))


class ResBlock(nn.Module):
    """Two-condition residual block, optionally resampling (nearest 2x up / 2x2 average-pool down between
    the input block's SiLU and its convolution, and on the skip path)."""

    def __init__(self, channels: int, emb_channels: int, cond_channels: int, dropout: float,
                 out_channels: int | None = None, up: bool = False, down: bool = False,
                 has_lateral: bool = False, use_zero_module: bool = True):
        super().__init__()
        out_channels = out_channels or channels
        self.out_channels, self.has_lateral, self.up, self.down = out_channels, has_lateral, up, down
        self.in_layers = nn.Sequential(normalization(channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels))
        self.cond_emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(cond_channels, 2 * out_channels))
        last = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.out_layers = nn.Sequential(
            normalization(out_channels), nn.SiLU(), nn.Conv2d(out_channels, out_channels, 3, padding=1),
            normalization(out_channels), nn.SiLU(), nn.Dropout(p=dropout),
            zero_module(last) if use_zero_module else last)
        self.skip_connection = (nn.Identity() if out_channels == channels
                                else nn.Conv2d(channels, out_channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor, cond: torch.Tensor | None,
                lateral: torch.Tensor | None = None) -> torch.Tensor:
        if self.has_lateral:
            if lateral is None:
                raise ValueError("this decoder block needs its encoder skip connection")
            x = torch.cat([x, lateral], dim=1)
        norm, act, conv = self.in_layers
        h = act(norm(x))
        if self.up:
            h = upsampled_conv3x3(h, conv)
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        elif self.down:
            h = conv(F.avg_pool2d(h, 2))
            x = F.avg_pool2d(x, 2)
        else:
            h = conv(h)
        return self.skip_connection(x) + self._modulated(h, emb, cond)

    def _modulated(self, h: torch.Tensor, emb: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        norm1, act1, conv1, norm2, act2, drop, conv2 = self.out_layers
        scale, shift = self.emb_layers(emb).to(h.dtype)[..., None, None].chunk(2, dim=1)
        h = conv1(act1(norm1(h) * (1 + scale) + shift))
        h = norm2(h)
        if cond is not None:
            # without a semantic code the official block skips its modulation (single-condition mode)
            scale, shift = self.cond_emb_layers(cond).to(h.dtype)[..., None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return conv2(drop(act2(h)))


class TimestepEmbedSequential(nn.Sequential):
    """Passes the embeddings (and the skip connection) to the residual blocks among its layers."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, cond: torch.Tensor | None,
                lateral: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb, cond, lateral)
            else:
                x = layer(x)
        return x


class BeatGANsAutoencUNet(nn.Module):
    """eps = UNet(x_t, t, z_face). `t` holds original (training-scale) timesteps, one per sample."""

    def __init__(self, config: UNetConfig | DVAConfig | None = None):
        super().__init__()
        config = config or DVAConfig()
        conf = config.make_model_conf() if isinstance(config, DVAConfig) else config
        self.conf = conf
        heads_up = conf.num_heads if conf.num_heads_upsample == -1 else conf.num_heads_upsample
        self.time_embed = TimeStyleSeperateEmbed(conf.time_channels, conf.embed_channels)

        def resblock(ch_in, ch_out=None, **kw):
            return ResBlock(ch_in, conf.embed_channels, conf.cond_channels, conf.dropout, ch_out,
                            use_zero_module=conf.resnet_use_zero_module, **kw)

        def attention(ch, heads):
            return AttentionBlock(ch, num_heads=heads, num_head_channels=conf.num_head_channels,
                                  groups=_groups(ch))

        levels = len(conf.channel_mult)
        ch = input_ch = int(conf.channel_mult[0] * conf.model_channels)
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(nn.Conv2d(conf.in_channels, ch, 3, padding=1))])
        skip_channels: list[list[int]] = [[] for _ in range(levels)]
        skip_channels[0].append(ch)
        self.input_num_blocks = [0] * levels
        self.input_num_blocks[0] = 1
        resolution = conf.image_size
        for level, mult in enumerate(conf.channel_mult):
            for _ in range(conf.input_res_blocks):
                width = int(mult * conf.model_channels)
                layers = [resblock(ch, width)]
                ch = width
                if resolution in conf.attention_resolutions:
                    layers.append(attention(ch, conf.num_heads))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_channels[level].append(ch)
                self.input_num_blocks[level] += 1
            if level != levels - 1:
                resolution //= 2
                self.input_blocks.append(TimestepEmbedSequential(self._resample(ch, conf, down=True, make=resblock)))
                skip_channels[level + 1].append(ch)
                self.input_num_blocks[level + 1] += 1

        self.middle_block = TimestepEmbedSequential(resblock(ch), attention(ch, conf.num_heads), resblock(ch))

        self.output_blocks = nn.ModuleList()
        self.output_num_blocks = [0] * levels
        for level, mult in reversed(list(enumerate(conf.channel_mult))):
            for i in range(conf.num_res_blocks + 1):
                skip = skip_channels[level].pop() if skip_channels[level] else 0
                width = int(conf.model_channels * mult)
                layers = [resblock(ch + skip, width, has_lateral=skip > 0)]
                ch = width
                if resolution in conf.attention_resolutions:
                    layers.append(attention(ch, heads_up))
                if level and i == conf.num_res_blocks:
                    resolution *= 2
                    layers.append(self._resample(ch, conf, down=False, make=resblock))
                self.output_blocks.append(TimestepEmbedSequential(*layers))
                self.output_num_blocks[level] += 1

        last = nn.Conv2d(input_ch, conf.out_channels, 3, padding=1)
        self.out = nn.Sequential(normalization(ch), nn.SiLU(),
                                 zero_module(last) if conf.resnet_use_zero_module else last)

    @staticmethod
    def _resample(ch: int, conf: UNetConfig, *, down: bool, make) -> nn.Module:
        if conf.resblock_updown:
            return make(ch, ch, down=down, up=not down)
        if down:
            return Downsample(ch, conf.conv_resample)
        return Upsample(ch, conf.conv_resample)

    def embed(self, t: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(time embedding, semantic code) as the residual blocks receive them."""
        return self.time_embed(timestep_embedding(t, self.conf.time_channels), cond)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        emb, cond = self.embed(t, cond)
        if cond is not None:
            cond = cond.to(emb.dtype)
        skips: list[list[torch.Tensor]] = [[] for _ in self.input_num_blocks]
        h = x_t
        blocks = iter(self.input_blocks)
        for level, count in enumerate(self.input_num_blocks):
            for _ in range(count):
                h = next(blocks)(h, emb, cond)
                skips[level].append(h)
        h = self.middle_block(h, emb, cond)
        blocks = iter(self.output_blocks)
        for level in reversed(range(len(self.output_num_blocks))):
            for _ in range(self.output_num_blocks[level]):
                lateral = skips[level].pop() if skips[level] else None
                h = next(blocks)(h, emb, cond, lateral)
        return self.out(h)


class DVAModel(BeatGANsAutoencUNet):
    """Official `BeatGANsAutoencModel`: the autoencoding UNet plus its semantic `encoder` (frozen ArcFace,
    landmark and parser nets and the trained Linear(614, 512)). Its state dict has exactly the names and
    shapes of the released checkpoint's `model.*` / `ema_model.*` tensors (prefix removed).

    `config.img_size` is the UNet's resolution; the encoder always reads 256 px frames (its crops are fixed
    pixel windows), so a smaller UNet (the tiny preset) gets the frames resized (`to_unet_size`)."""

    def __init__(self, config: DVAConfig | None = None):
        config = config or DVAConfig()
        super().__init__(config)
        self.config = config
        self.encoder = DVAEncoder()

    def to_unet_size(self, frames: torch.Tensor) -> torch.Tensor:
        """256 px encoder frames (N, 3, 256, 256) in [-1, 1] at the UNet's resolution (area-averaged)."""
        size = self.config.img_size
        if frames.shape[-1] == size:
            return frames
        return F.interpolate(frames, (size, size), mode="area" if frames.shape[-1] > size else "bicubic",
                             **({} if frames.shape[-1] > size else {"align_corners": False}))

    def to_frame_size(self, images: torch.Tensor, size: int) -> torch.Tensor:
        """UNet-resolution images back at the encoder's frame size `size` (bicubic when enlarging)."""
        if images.shape[-1] == size:
            return images
        if images.shape[-1] > size:
            return F.interpolate(images, (size, size), mode="area")
        return F.interpolate(images, (size, size), mode="bicubic", align_corners=False)


class Upsample(nn.Module):
    """Nearest 2x, optionally followed by a 3x3 convolution (only used without `resblock_updown`)."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        if use_conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.use_conv = use_conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_conv:
            return upsampled_conv3x3(x, self.conv)
        return F.interpolate(x, scale_factor=2, mode="nearest")


class Downsample(nn.Module):
    """Stride-2 3x3 convolution, or 2x2 average pooling (only used without `resblock_updown`)."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)
