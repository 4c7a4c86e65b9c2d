"""The video backbone: the SD-1.5 UNet made temporal, with reference, audio, temporal and speed attention.

Layout and parameter names are those of Hallo's `UNet3DConditionModel` (`denoising_unet.*` in `net.pth`), whose
temporal modules are AnimateDiff v2's (`mm_sd_v15_v2.ckpt` loads into them unchanged). Every layer but the
temporal ones works frame by frame, so hidden states travel as (B*F, C, H, W) with the frames of one video
adjacent ((b f) order), and the temporal modules regroup them per pixel.

What runs is what Hallo runs at inference and in training (its UNet is left in training mode with gradient
checkpointing on, so its blocks take the checkpointed branch): in every cross-attention block and the middle
block the order is resnet -> spatial attention (self-attention extended with ReferenceNet's tokens, then
cross-attention to the identity tokens) -> audio attention -> temporal module over the motion frames'
ReferenceNet features followed by the clip's frames (the motion frames are dropped again); the plain
down/up blocks run their resnets only (`motion_in_plain_blocks` turns their temporal modules on, as EMO
puts temporal layers at every resolution).

Reference tokens: `ReferenceBank` holds, per transformer block path, ReferenceNet's `norm1` output for the
reference image and the motion frames of each bank copy. Frame row k of the (B*F)-row batch attends to the
reference of copy k mod copies (Hallo tiles the copies over the rows); the first `plain_batches` videos (the
unconditional half under classifier-free guidance) use plain self-attention instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.resnet import ResnetBlock2D, Upsample2D
from torch import nn

from .config import EMOConfig


@dataclass
class ReferenceBank:
    """ReferenceNet's tokens per transformer block path: (copies, 1 + motion frames, tokens, C)."""

    features: dict[str, torch.Tensor]

    @property
    def copies(self) -> int:
        return next(iter(self.features.values())).shape[0]


@dataclass
class Conditions:
    """Everything the backbone attends to besides the noisy latents, for a batch of B videos of F frames.

    context: (B, T, C) identity (or null) tokens for the spatial cross-attention.
    audio: (B, F, tokens, C_audio) audio tokens per frame.
    bank: ReferenceNet's tokens (reference and motion frames).
    face: (B, C0, H, W) face-locator features added after conv_in (the same on every frame), or None.
    masks: {"full"|"face"|"lip": [per level (B*F, H_l*W_l)]} for masked audio attention, or None.
    motion_scale: (3,) weights of the full / face / lip audio attention, or None (plain sum).
    speed: (B, n + F, tokens, C_speed) speed tokens for the temporal layers, or None.
    plain_batches: leading videos that use plain self-attention (the unconditional CFG half).
    """

    context: torch.Tensor
    audio: torch.Tensor
    bank: ReferenceBank
    face: torch.Tensor | None = None
    masks: dict[str, list[torch.Tensor]] | None = None
    motion_scale: torch.Tensor | None = None
    speed: torch.Tensor | None = None
    plain_batches: int = 0


class _Frames:
    """What every layer needs to know about the current call: the video batch and frame count, and the
    conditions mapped to the (B*F)-row layout."""

    def __init__(self, cond: Conditions, batch: int, frames: int):
        self.cond, self.batch, self.frames = cond, batch, frames
        self.context = cond.context.repeat_interleave(frames, 0)            # (B*F, T, C)
        self.audio = cond.audio.flatten(0, 1)                               # (B*F, tokens, C)


# --------------------------------------------------------------------------------------------- spatial
class ReferenceTransformerBlock(nn.Module):
    """SD's BasicTransformerBlock whose self-attention also sees the reference tokens."""

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads=heads, dim_head=head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, cross_attention_dim=context_dim, heads=heads, dim_head=head_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")

    def forward(self, h: torch.Tensor, context: torch.Tensor, reference: torch.Tensor | None,
                plain_rows: int) -> torch.Tensor:
        """reference: the reference tokens of rows plain_rows.. (the rows before use plain self-attention)."""
        n = self.norm1(h)
        if reference is None:
            a = self.attn1(n)
        else:
            parts = [self.attn1(n[:plain_rows])] if plain_rows else []
            ref_n = n[plain_rows:]
            parts.append(self.attn1(ref_n, encoder_hidden_states=torch.cat([ref_n, reference], 1)))
            a = torch.cat(parts) if len(parts) > 1 else parts[0]
        h = a + h
        h = self.attn2(self.norm2(h), encoder_hidden_states=context) + h
        return self.ff(self.norm3(h)) + h


class SpatialTransformer(nn.Module):
    """Per-frame GroupNorm, 1x1 conv in, one reference transformer block, 1x1 conv out, residual."""

    def __init__(self, channels: int, heads: int, context_dim: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.transformer_blocks = nn.ModuleList(
            [ReferenceTransformerBlock(channels, heads, channels // heads, context_dim)])
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, run: _Frames, bank: torch.Tensor | None) -> torch.Tensor:
        n, c, hh, ww = x.shape
        h = self.proj_in(self.norm(x)).permute(0, 2, 3, 1).reshape(n, hh * ww, c)
        reference = None
        plain_rows = run.cond.plain_batches * run.frames
        if bank is not None:
            copies = bank.shape[0]
            rows = torch.arange(plain_rows, n, device=x.device) % copies  # Hallo tiles the copies over rows
            reference = bank[:, 0].to(h.dtype)[rows]
        h = self.transformer_blocks[0](h, run.context, reference, plain_rows)
        h = h.reshape(n, hh, ww, c).permute(0, 3, 1, 2)
        return self.proj_out(h) + x


# ----------------------------------------------------------------------------------------------- audio
class AudioTransformerBlock(nn.Module):
    """Self-attention, then cross-attention to the frame's audio tokens: one plain attention (EMO) or three
    region-masked ones (Hallo: background, face, lips), each through a zero-initialised 1x1 conv."""

    def __init__(self, dim: int, heads: int, head_dim: int, audio_dim: int, masked: bool, level: int):
        super().__init__()
        self.level, self.masked = level, masked
        if masked:
            for name in ("full", "face", "lip"):
                conv = nn.Conv2d(dim, dim, 1)
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
                setattr(self, f"zero_conv_{name}", conv)
        self.attn1 = Attention(dim, heads=heads, dim_head=head_dim)
        self.norm1 = nn.LayerNorm(dim)
        if masked:
            self.attn2_0, self.attn2_1, self.attn2_2 = (
                Attention(dim, cross_attention_dim=audio_dim, heads=heads, dim_head=head_dim) for _ in range(3))
        else:
            self.attn2 = Attention(dim, cross_attention_dim=audio_dim, heads=heads, dim_head=head_dim)
            nn.init.zeros_(self.attn2.to_out[0].weight)  # a new layer on the image backbone starts silent
            nn.init.zeros_(self.attn2.to_out[0].bias)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, h: torch.Tensor, run: _Frames, grid: tuple[int, int]) -> torch.Tensor:
        h = self.attn1(self.norm1(h)) + h
        n = self.norm2(h)
        if not self.masked:
            h = self.attn2(n, encoder_hidden_states=run.audio) + h
        else:
            masks = run.cond.masks
            if masks is None:
                raise ValueError("this model's audio attention is region-masked: pass full/face/lip masks")
            scale = run.cond.motion_scale
            total = h
            for i, name in enumerate(("full", "face", "lip")):
                attn = getattr(self, f"attn2_{i}")
                x = attn(n, encoder_hidden_states=run.audio) * masks[name][self.level][:, :, None].to(n.dtype)
                x = x.unflatten(1, grid).permute(0, 3, 1, 2)
                x = getattr(self, f"zero_conv_{name}")(x).permute(0, 2, 3, 1).flatten(1, 2)
                total = total + (x if scale is None else scale[i] * x)
            h = total
        return self.ff(self.norm3(h)) + h


class AudioTransformer(nn.Module):
    """Per-frame GroupNorm, 1x1 conv to the audio width, one audio block, 1x1 conv back, residual.

    The audio width is heads * (width_arg // heads), where width_arg is the block's first resnet input
    (down blocks) or its skip width (up blocks), as Hallo builds it: not always the block width."""

    def __init__(self, channels: int, width_arg: int, heads: int, audio_dim: int, groups: int, masked: bool,
                 level: int):
        super().__init__()
        head_dim = width_arg // heads
        inner = heads * head_dim
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [AudioTransformerBlock(inner, heads, head_dim, audio_dim, masked, level)])
        self.proj_out = nn.Conv2d(inner, channels, 1)
        if not masked:
            # EMO's audio layers are new on a trained image backbone: they start as the identity (as
            # AnimateDiff's temporal modules do). Hallo's masked modules keep Hallo's own initialisation.
            nn.init.zeros_(self.proj_out.weight)
            nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, run: _Frames) -> torch.Tensor:
        n, _, hh, ww = x.shape
        h = self.proj_in(self.norm(x))
        inner = h.shape[1]
        h = h.permute(0, 2, 3, 1).reshape(n, hh * ww, inner)
        h = self.transformer_blocks[0](h, run, (hh, ww))
        return self.proj_out(h.reshape(n, hh, ww, inner).permute(0, 3, 1, 2)) + x


# -------------------------------------------------------------------------------------------- temporal
class PositionalEncoding(nn.Module):
    """AnimateDiff's frame-position table, a stored buffer `pe` (1, max_len, C) (released files hold it)."""

    def __init__(self, dim: int, max_len: int):
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float32)[:, None]
        frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        pe = torch.zeros(1, max_len, dim)
        pe[0, :, 0::2] = torch.sin(position * frequency)
        pe[0, :, 1::2] = torch.cos(position * frequency)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:, :x.shape[1]].to(x.dtype)


class TemporalAttention(Attention):
    """Self-attention over frames with the position table added to its input (AnimateDiff `VersatileAttention`)."""

    def __init__(self, dim: int, heads: int, head_dim: int, max_len: int):
        super().__init__(dim, heads=heads, dim_head=head_dim)
        self.pos_encoder = PositionalEncoding(dim, max_len)


class TemporalTransformerBlock(nn.Module):
    """Two temporal self-attentions and a GEGLU feed-forward, pre-LayerNorm and residual; EMO's speed layers add
    a cross-attention to the per-frame speed tokens (zero-initialised output, so it starts as a no-op)."""

    def __init__(self, dim: int, heads: int, head_dim: int, max_len: int, speed_dim: int | None):
        super().__init__()
        self.attention_blocks = nn.ModuleList([TemporalAttention(dim, heads, head_dim, max_len) for _ in range(2)])
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(2)])
        if speed_dim is not None:
            self.speed_norm = nn.LayerNorm(dim)
            self.speed_attention = Attention(dim, cross_attention_dim=speed_dim, heads=heads, dim_head=head_dim)
            nn.init.zeros_(self.speed_attention.to_out[0].weight)
            nn.init.zeros_(self.speed_attention.to_out[0].bias)
        self.ff = FeedForward(dim, activation_fn="geglu")
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, h: torch.Tensor, speed: torch.Tensor | None) -> torch.Tensor:
        """h: (B*H*W, F, C) tokens of one pixel over frames; speed: (B*H*W, F*tokens, C_speed) or None."""
        for attn, norm in zip(self.attention_blocks, self.norms):
            h = attn(attn.pos_encoder(norm(h))) + h
        if speed is not None and hasattr(self, "speed_attention"):
            h = self.speed_attention(self.speed_norm(h), encoder_hidden_states=speed) + h
        return self.ff(self.ff_norm(h)) + h


class TemporalTransformer(nn.Module):
    def __init__(self, channels: int, heads: int, max_len: int, dim_div: int, speed_dim: int | None):
        super().__init__()
        head_dim = channels // heads // dim_div
        inner = heads * head_dim
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            [TemporalTransformerBlock(inner, heads, head_dim, max_len, speed_dim)])
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor, batch: int, speed: torch.Tensor | None) -> torch.Tensor:
        """x: (B*F, C, H, W) with the frames of a video adjacent -> the same shape."""
        n, c, hh, ww = x.shape
        frames = n // batch
        h = self.proj_in(self.norm(x).permute(0, 2, 3, 1).reshape(n, hh * ww, c))
        inner = h.shape[-1]
        h = h.reshape(batch, frames, hh * ww, inner).transpose(1, 2).reshape(batch * hh * ww, frames, inner)
        if speed is not None:  # (B, F, tokens, C_s) -> every pixel of a video sees its frames' speed tokens
            speed = speed.flatten(1, 2).repeat_interleave(hh * ww, 0)
        h = self.transformer_blocks[0](h, speed)
        h = h.reshape(batch, hh * ww, frames, inner).transpose(1, 2).reshape(n, hh * ww, inner)
        h = self.proj_out(h).reshape(n, hh, ww, c).permute(0, 3, 1, 2)
        return h + x


class MotionModule(nn.Module):
    """AnimateDiff v2's `VanillaTemporalModule` (its only child is `temporal_transformer`)."""

    def __init__(self, channels: int, config: EMOConfig):
        super().__init__()
        speed_dim = config.speed.embed_dim if config.speed is not None else None
        self.temporal_transformer = TemporalTransformer(channels, config.motion_heads, config.motion_max_len,
                                                        config.motion_attention_dim_div, speed_dim)
        nn.init.zeros_(self.temporal_transformer.proj_out.weight)
        nn.init.zeros_(self.temporal_transformer.proj_out.bias)

    def forward(self, x: torch.Tensor, run: _Frames, motion: torch.Tensor | None) -> torch.Tensor:
        """x: (B*F, C, H, W); motion: (B, n, H*W, C) ReferenceNet tokens of the motion frames, put before the
        clip's frames on the frame axis and dropped again after the module."""
        b, f = run.batch, run.frames
        speed = run.cond.speed
        if motion is None or motion.shape[1] == 0:
            if speed is not None:
                speed = speed[:, -f:]
            return self.temporal_transformer(x, b, speed)
        n_motion = motion.shape[1]
        c, hh, ww = x.shape[1:]
        motion_maps = motion.to(x.dtype).transpose(2, 3).reshape(b, n_motion, c, hh, ww)
        joined = torch.cat([motion_maps, x.unflatten(0, (b, f))], 1).flatten(0, 1)
        if speed is not None and speed.shape[1] != n_motion + f:
            raise ValueError(f"speed tokens cover {speed.shape[1]} frames, the temporal layers {n_motion + f}")
        out = self.temporal_transformer(joined, b, speed)
        return out.unflatten(0, (b, n_motion + f))[:, n_motion:].flatten(0, 1)


# ---------------------------------------------------------------------------------------------- blocks
class Downsample(nn.Module):
    """A stride-2 3x3 conv (diffusers' `Downsample2D` registers its conv under two names; one here)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _resnet(c_in: int, c_out: int, config: EMOConfig) -> ResnetBlock2D:
    return ResnetBlock2D(in_channels=c_in, out_channels=c_out, temb_channels=config.time_embed_dim,
                         eps=config.norm_eps, groups=config.norm_num_groups)


class _Block(nn.Module):
    """One resolution of the backbone: resnets, and (cross-attention blocks) spatial, audio and temporal
    attention after each resnet. `path` is the block's name (`down_blocks.1`), used to find its bank entries."""

    def __init__(self, path: str, config: EMOConfig, widths: Sequence[tuple[int, int]], audio_width: Sequence[int],
                 channels: int, attention: bool, level: int):
        super().__init__()
        self.path, self.has_attention = path, attention
        self.resnets = nn.ModuleList([_resnet(c_in, c_out, config) for c_in, c_out in widths])
        heads, groups = config.heads, config.norm_num_groups
        if attention:
            self.attentions = nn.ModuleList([SpatialTransformer(channels, heads, config.cross_attention_dim, groups)
                                             for _ in widths])
            self.audio_modules = nn.ModuleList([
                AudioTransformer(channels, w, heads, config.audio_attention_dim, groups,
                                 config.audio_attention == "masked", level) for w in audio_width])
        self.motion_modules = nn.ModuleList([MotionModule(channels, config) for _ in widths])
        self.run_plain_motion = config.motion_in_plain_blocks

    def layer(self, i: int, h: torch.Tensor, temb: torch.Tensor, run: _Frames) -> torch.Tensor:
        h = self.resnets[i](h, temb)
        if self.has_attention:
            bank = run.cond.bank.features.get(f"{self.path}.attentions.{i}.transformer_blocks.0")
            h = self.attentions[i](h, run, bank)
            h = self.audio_modules[i](h, run)
            motion = bank[:, 1:] if bank is not None else None
            h = self.motion_modules[i](h, run, motion)
        elif self.run_plain_motion:
            h = self.motion_modules[i](h, run, None)
        return h


class DownBlock(_Block):
    def __init__(self, index: int, config: EMOConfig, attention: bool):
        widths = config.block_out_channels
        c_in = widths[index - 1] if index else widths[0]
        c_out = widths[index]
        pairs = [(c_in if i == 0 else c_out, c_out) for i in range(config.layers_per_block)]
        super().__init__(f"down_blocks.{index}", config, pairs, [p[0] for p in pairs], c_out, attention, index)
        if index < len(widths) - 1:
            self.downsamplers = nn.ModuleList([Downsample(c_out)])
        else:
            self.downsamplers = None

    def forward(self, h, temb, run):
        skips = []
        for i in range(len(self.resnets)):
            h = self.layer(i, h, temb, run)
            skips.append(h)
        if self.downsamplers is not None:
            h = self.downsamplers[0](h)
            skips.append(h)
        return h, skips


class UpBlock(_Block):
    def __init__(self, index: int, config: EMOConfig, attention: bool):
        rev = list(reversed(config.block_out_channels))
        c_out = rev[index]
        c_prev = rev[max(index - 1, 0)]
        c_skip_in = rev[min(index + 1, len(rev) - 1)]
        n = config.layers_per_block + 1
        pairs = []
        for i in range(n):
            skip = c_skip_in if i == n - 1 else c_out
            pairs.append(((c_prev if i == 0 else c_out) + skip, c_out))
        super().__init__(f"up_blocks.{index}", config, pairs, [c_skip_in] * n, c_out, attention, 3 - index)
        if index < len(rev) - 1:
            self.upsamplers = nn.ModuleList([Upsample2D(c_out, use_conv=True, out_channels=c_out)])
        else:
            self.upsamplers = None

    def forward(self, h, temb, run, skips: list[torch.Tensor]):
        for i in range(len(self.resnets)):
            h = torch.cat([h, skips.pop()], 1)
            h = self.layer(i, h, temb, run)
        if self.upsamplers is not None:
            h = self.upsamplers[0](h, output_size=skips[-1].shape[-2:] if skips else None)
        return h


class MidBlock(nn.Module):
    """resnet -> spatial -> audio -> temporal (always with the motion frames) -> resnet."""

    def __init__(self, config: EMOConfig):
        super().__init__()
        c = config.block_out_channels[-1]
        heads, groups = config.heads, config.norm_num_groups
        self.resnets = nn.ModuleList([_resnet(c, c, config), _resnet(c, c, config)])
        self.attentions = nn.ModuleList([SpatialTransformer(c, heads, config.cross_attention_dim, groups)])
        self.audio_modules = nn.ModuleList([AudioTransformer(c, c, heads, config.audio_attention_dim, groups,
                                                             config.audio_attention == "masked", 3)])
        self.motion_modules = nn.ModuleList([MotionModule(c, config)])

    def forward(self, h, temb, run):
        h = self.resnets[0](h, temb)
        bank = run.cond.bank.features.get("mid_block.attentions.0.transformer_blocks.0")
        h = self.attentions[0](h, run, bank)
        h = self.audio_modules[0](h, run)
        h = self.motion_modules[0](h, run, bank[:, 1:] if bank is not None else None)
        return self.resnets[1](h, temb)


class DenoisingUNet(nn.Module):
    """The video backbone (`denoising_unet.*`): (B, 4, F, h, w) noisy latents -> (B, 4, F, h, w) v-prediction."""

    def __init__(self, config: EMOConfig):
        super().__init__()
        self.config = config
        widths = config.block_out_channels
        self.conv_in = nn.Conv2d(config.in_channels, widths[0], 3, padding=1)
        self.time_proj = Timesteps(widths[0], flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(widths[0], config.time_embed_dim)
        last = len(widths) - 1
        self.down_blocks = nn.ModuleList([DownBlock(i, config, attention=i < last) for i in range(len(widths))])
        self.up_blocks = nn.ModuleList([UpBlock(i, config, attention=i > 0) for i in range(len(widths))])
        self.mid_block = MidBlock(config)
        self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, widths[0], eps=config.norm_eps)
        self.conv_out = nn.Conv2d(widths[0], config.out_channels, 3, padding=1)

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor | float, cond: Conditions) -> torch.Tensor:
        b, _, f, hh, ww = latents.shape
        run = _Frames(cond, b, f)
        t = torch.as_tensor(timestep, device=latents.device).reshape(-1).expand(b)
        temb = self.time_embedding(self.time_proj(t).to(latents.dtype)).repeat_interleave(f, 0)
        h = self.conv_in(latents.transpose(1, 2).flatten(0, 1))
        if cond.face is not None:
            h = h + cond.face.to(h.dtype).repeat_interleave(f, 0)
        skips = [h]
        for block in self.down_blocks:
            h, block_skips = block(h, temb, run)
            skips += block_skips
        h = self.mid_block(h, temb, run)
        for block in self.up_blocks:
            h = block(h, temb, run, skips)
        h = self.conv_out(F.silu(self.conv_norm_out(h)))
        return h.unflatten(0, (b, f)).transpose(1, 2)
