"""The Diffused Heads denoiser: a guided-diffusion UNet conditioned on the timestep, a window of audio
embeddings and the identity frame, with the previous frames (motion frames) as extra input channels.

Written from the train branch's `models/unet.py` / `models/blocks.py` (commit 2838e57a); module and
parameter names are the official ones, so a Lightning checkpoint's `unet.*` tensors and the tensors of a
traced `crema_script.pt` load by name. Every conditioning variant of the official code is here:

- identity (`id_condition_type`): "frame" concatenates the identity frame to the input (released);
  "pre_gn" / "post_gn" encode it with `IdentityEncoder` and add it to the time embedding, or multiply the
  normalised features by it.
- audio (`audio_condition_type`): "pre_gn" adds the audio embedding to the time embedding; "post_gn"
  multiplies the normalised features; "double_pre_gn" (released) applies a second scale-and-shift after
  the time embedding's; "attention" replaces the self-attention blocks by attention to the audio.

Quirk kept: the time embedding's frequencies are exp(-ln(1e4)·k/(2C)) for k < C/2 (divisor 2C where
guided-diffusion has C/2), ordered [cos, sin].
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ...nn.guided_diffusion import (AttentionBlock, head_count, legacy_qkv_attention, upsampled_conv3x3,
                                     zero_module)
from .config import DiffusedHeadsConfig, UNetConfig


class Embeddings(NamedTuple):
    """What the residual blocks are conditioned on (None where the configuration does not use it)."""

    time: torch.Tensor            # (B, 4C); with "pre_gn" conditioning the audio/identity are added in
    audio: torch.Tensor | None    # (B, 4C)
    identity: torch.Tensor | None  # (B, 4C), "post_gn" identity conditioning only


class TimestepEmbedding(nn.Module):
    def __init__(self, channels: int, max_period: float = 1e4):
        super().__init__()
        self.channels, self.max_period = channels, max_period
        self.fc = nn.Sequential(nn.Linear(channels, 4 * channels), nn.SiLU(), nn.Linear(4 * channels, 4 * channels))

    def sinusoid(self, timesteps: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        # frequencies in float32 from an integer range, as the official code builds them
        k = torch.arange(self.channels // 2, device=timesteps.device)
        freqs = torch.exp(-math.log(self.max_period) * k / (self.channels * 2)).to(dtype)
        args = timesteps[:, None].to(dtype) * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, timesteps: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self.fc(self.sinusoid(timesteps, dtype))


def _resample(up: bool, down: bool) -> nn.Module:
    if up:
        return nn.Upsample(scale_factor=2, mode="nearest")
    return nn.AvgPool2d(2) if down else nn.Identity()


class ResBlock(nn.Module):
    """The identity encoder's unconditioned residual block."""

    def __init__(self, channels: int, dropout: float, out_channels: int | None = None, up: bool = False,
                 down: bool = False):
        super().__init__()
        out_channels = out_channels or channels
        self.in_layers = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.updown = up or down
        self.h_upd, self.x_upd = _resample(up, down), _resample(up, down)
        self.out_layers = nn.Sequential(nn.GroupNorm(32, out_channels), nn.SiLU(), nn.Dropout(dropout),
                                        zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1)))
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def _input(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.updown:
            return self.in_layers(x), x
        h = self.in_layers[:-1](x)                  # resample between the activation and the convolution
        if isinstance(self.h_upd, nn.Upsample) and not torch.is_grad_enabled():
            return upsampled_conv3x3(h, self.in_layers[-1]), self.x_upd(x)   # the same, 2.25x fewer FLOPs
        return self.in_layers[-1](self.h_upd(h)), self.x_upd(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, x = self._input(x)
        return self.skip_connection(x) + self.out_layers(h)


class CondResBlock(ResBlock):
    """ResBlock whose normalised features are modulated by the time (and audio / identity) embeddings."""

    conditioned = True

    def __init__(self, channels: int, emb_channels: int, dropout: float, out_channels: int | None = None,
                 up: bool = False, down: bool = False, id_condition_type: str = "frame",
                 audio_condition_type: str = "double_pre_gn"):
        super().__init__(channels, dropout, out_channels, up, down)
        out_channels = out_channels or channels
        self.id_condition_type, self.audio_condition_type = id_condition_type, audio_condition_type
        self.t_emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels))
        if id_condition_type == "post_gn":
            self.x_emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        if audio_condition_type in ("post_gn", "double_pre_gn"):
            width = 2 * out_channels if audio_condition_type == "double_pre_gn" else out_channels
            self.audio_emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, width))

    def modulation(self, emb: Embeddings) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b), each (B, C): the normalised features times a plus b equal the official chain
        GroupNorm affine -> time scale-shift -> audio scale-shift / products (one pass instead of five)."""
        norm = self.out_layers[0]
        t_scale, t_shift = self.t_emb_layers(emb.time).chunk(2, dim=1)
        scale, shift = norm.weight * (1 + t_scale), norm.bias * (1 + t_scale) + t_shift
        if self.audio_condition_type == "post_gn":
            factor = self.audio_emb_layers(emb.audio)
            scale, shift = scale * factor, shift * factor
        elif self.audio_condition_type == "double_pre_gn":
            audio_scale, audio_shift = self.audio_emb_layers(emb.audio).chunk(2, dim=1)
            scale, shift = scale * (1 + audio_scale), shift * (1 + audio_scale) + audio_shift
        if self.id_condition_type == "post_gn":
            factor = self.x_emb_layers(emb.identity)
            scale, shift = scale * factor, shift * factor
        return scale, shift

    def forward(self, x: torch.Tensor, emb: Embeddings) -> torch.Tensor:
        h, x = self._input(x)
        norm = self.out_layers[0]
        scale, shift = self.modulation(emb)
        h = F.group_norm(h, norm.num_groups, eps=norm.eps)
        h = torch.addcmul(shift.to(h.dtype)[..., None, None], h, scale.to(h.dtype)[..., None, None])
        return self.skip_connection(x) + self.out_layers[1:](h)


class CondAttentionBlock(nn.Module):
    """Attention from the features to the audio embedding projected onto the spatial grid (the "attention"
    audio conditioning). The query/key-value concatenation goes through the legacy per-head split as in
    the official code, heads and all."""

    conditioned = True

    def __init__(self, channels: int, audio_dim: int, spatial_dim: int, num_heads: int = 1,
                 num_head_channels: int = -1):
        super().__init__()
        self.heads = head_count(channels, num_heads, num_head_channels)
        self.audio_emb_proj = nn.Linear(audio_dim, spatial_dim ** 2)
        self.norm_x = nn.GroupNorm(32, channels)
        self.norm_emb = nn.GroupNorm(32, channels)
        self.q = nn.Conv1d(channels, channels, 1)
        self.kv = nn.Conv1d(channels, channels * 2, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor, emb: Embeddings) -> torch.Tensor:
        batch, channels, *spatial = x.shape
        flat = x.reshape(batch, channels, -1)
        audio = self.audio_emb_proj(emb.audio).unsqueeze(1).expand(-1, channels, -1)
        qkv = torch.cat([self.q(self.norm_x(flat)), self.kv(self.norm_emb(audio))], dim=1)
        return (flat + self.proj_out(legacy_qkv_attention(qkv, self.heads))).reshape(batch, channels, *spatial)


class CondSequential(nn.Sequential):
    """Layers in order; the conditioned ones also get the embeddings."""

    def forward(self, x: torch.Tensor, emb: Embeddings) -> torch.Tensor:
        for layer in self:
            x = layer(x, emb) if getattr(layer, "conditioned", False) else layer(x)
        return x


class IdentityEncoder(nn.Module):
    """The identity frame -> one (4C) vector: an unconditioned UNet encoder, pooled (non-"frame" variants)."""

    def __init__(self, c: UNetConfig, out_dim: int):
        super().__init__()
        ch = int(c.channel_mult[0] * c.model_channels)
        attention_ds = [c.image_size // r for r in c.attention_resolutions]
        blocks: list[nn.Module] = [nn.Sequential(nn.Conv2d(c.in_channels, ch, 3, padding=1))]
        ds = 1
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                layers = [ResBlock(ch, c.dropout, int(mult * c.model_channels))]
                ch = int(mult * c.model_channels)
                if ds in attention_ds:
                    layers.append(AttentionBlock(ch, c.num_heads, c.num_head_channels))
                blocks.append(nn.Sequential(*layers))
            if level != len(c.channel_mult) - 1:
                blocks.append(nn.Sequential(ResBlock(ch, c.dropout, ch, down=True)) if c.resblock_updown
                              else nn.AvgPool2d(2))
                ds *= 2
        self.input_blocks = nn.ModuleList(blocks)
        self.middle_block = nn.Sequential(ResBlock(ch, c.dropout), AttentionBlock(ch, c.num_heads, c.num_head_channels),
                                          ResBlock(ch, c.dropout))
        self.out = nn.Sequential(nn.GroupNorm(32, ch), nn.SiLU(), nn.AdaptiveAvgPool2d((1, 1)),
                                 zero_module(nn.Conv2d(ch, out_dim, 1)), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.input_blocks:
            x = block(x)
        return self.out(self.middle_block(x))


class DiffusedHeadsUNet(nn.Module):
    """eps and variance interpolation (B, 6, S, S) of x_t, given the identity frame (B, 3, S, S), the motion
    frames (B, n·3 or n·1, S, S; oldest first) and the audio window (B, 2m+1, C), all in [-1, 1]."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        c = self.config = config
        emb_dim = 4 * c.model_channels
        self.identity_encoder = IdentityEncoder(c, emb_dim) if c.id_condition_type != "frame" else None
        self.time_embed = TimestepEmbedding(c.model_channels)
        self.audio_embed = nn.Sequential(nn.Linear(c.audio_dim * c.audio_window, emb_dim), nn.SiLU(),
                                         nn.Linear(emb_dim, emb_dim))
        self._attention_ds = [c.image_size // r for r in c.attention_resolutions]
        ch = int(c.channel_mult[0] * c.model_channels)
        self.input_blocks = nn.ModuleList([CondSequential(nn.Conv2d(c.input_channels, ch, 3, padding=1))])
        skip_channels, ds = [ch], 1
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                out = int(mult * c.model_channels)
                self.input_blocks.append(CondSequential(self._res(ch, out), *self._attention(out, ds)))
                ch = out
                skip_channels.append(ch)
            if level != len(c.channel_mult) - 1:
                self.input_blocks.append(CondSequential(self._res(ch, ch, down=True) if c.resblock_updown
                                                        else nn.AvgPool2d(2)))
                skip_channels.append(ch)
                ds *= 2
        self.middle_block = CondSequential(self._res(ch, ch), *self._attention(ch, ds), self._res(ch, ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mult))):
            for i in range(c.num_res_blocks + 1):
                out = int(mult * c.model_channels)
                layers = [self._res(ch + skip_channels.pop(), out), *self._attention(out, ds)]
                ch = out
                if level and i == c.num_res_blocks:
                    layers.append(self._res(ch, ch, up=True) if c.resblock_updown else nn.Upsample(scale_factor=2))
                    ds //= 2
                self.output_blocks.append(CondSequential(*layers))
        self.out = nn.Sequential(nn.GroupNorm(32, ch), nn.SiLU(), zero_module(nn.Conv2d(ch, c.out_channels, 3, padding=1)))

    def _res(self, channels: int, out: int, up: bool = False, down: bool = False) -> CondResBlock:
        c = self.config
        return CondResBlock(channels, 4 * c.model_channels, c.dropout, out, up=up, down=down,
                            id_condition_type=c.id_condition_type, audio_condition_type=c.audio_condition_type)

    def _attention(self, channels: int, ds: int) -> list[nn.Module]:
        c = self.config
        if ds not in self._attention_ds:
            return []
        if c.audio_condition_type == "attention":
            return [CondAttentionBlock(channels, 4 * c.model_channels, c.image_size // ds, c.num_heads,
                                       c.num_head_channels)]
        return [AttentionBlock(channels, c.num_heads, c.num_head_channels)]

    def embeddings(self, timesteps: torch.Tensor, x_cond: torch.Tensor, audio_emb: torch.Tensor | None,
                   dtype: torch.dtype) -> Embeddings:
        """The blocks' conditioning: time, audio window and (non-"frame" variants) identity embeddings."""
        c = self.config
        time = self.time_embed(timesteps, dtype=dtype)
        audio = None if audio_emb is None else self.audio_embed(audio_emb.reshape(audio_emb.shape[0], -1))
        if audio is None and c.audio_condition_type != "pre_gn":
            raise ValueError(f"audio_condition_type {c.audio_condition_type!r} needs audio embeddings")
        identity = self.identity_encoder(x_cond) if self.identity_encoder is not None else None
        if c.audio_condition_type == "pre_gn":
            time = time + (audio if audio is not None else 0)
        if c.id_condition_type == "pre_gn":
            time = identity + time
        return Embeddings(time, audio, identity if c.id_condition_type == "post_gn" else None)

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, x_cond: torch.Tensor,
                motion_frames: torch.Tensor | None = None, audio_emb: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embeddings(timesteps, x_cond, audio_emb, x.dtype)
        parts = [x] + ([motion_frames] if motion_frames is not None else [])
        parts += [x_cond] if self.config.id_condition_type == "frame" else []
        return self.run_blocks(torch.cat(parts, dim=1), emb)

    def run_blocks(self, h: torch.Tensor, emb: Embeddings) -> torch.Tensor:
        skips = []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)


def build_unet(config: DiffusedHeadsConfig | UNetConfig) -> DiffusedHeadsUNet:
    return DiffusedHeadsUNet(config.unet if isinstance(config, DiffusedHeadsConfig) else config)
