"""Diffusion Video Autoencoders settings: the BeatGANs autoencoding UNet and its diffusion process.

Two levels, as in the official code (DiffAE code base):

- `DVAConfig` carries the training-config names (`config.py` `TrainConfig`: `net_ch`, `net_ch_mult`,
  `net_attn`, `net_beatgans_*`, `style_ch`, `T`, `beta_scheduler`, ...); `make_model_conf()` turns them
  into the UNet's arguments exactly as the official `make_model_conf` does for `beatgans_autoenc`
  (one head, `num_head_channels -1`, conv resampling, 3 output channels).
- `UNetConfig` carries the UNet's own names (`model/unet.py` `BeatGANsUNetConfig` /
  `model/unet_autoenc.py` `BeatGANsAutoencConfig`).

Presets: `vox256()` is the released model (`templates.py` `diffusion_video_autoencoder`: 256 px,
128 channels, multipliers 1,1,2,2,4,4, attention at 16 px and in the middle, 2 residual blocks per encoder
level and 3 per decoder level, 512-d time/semantic embeddings, dropout 0.1, residual-block resampling,
two conditions with scale and shift); `tiny()` has small widths for fast CPU tests.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from ...settings import settings_checker

_check = settings_checker("dva config")


def _groups(channels: int) -> int:
    """The official `normalization`: GroupNorm with min(32, C) groups."""
    return min(32, channels)


@dataclass(frozen=True)
class UNetConfig:
    """`BeatGANsAutoencConfig`'s fields that shape the UNet. `attention_resolutions` are in pixels."""

    image_size: int = 256
    in_channels: int = 3
    model_channels: int = 128
    out_channels: int = 3
    num_res_blocks: int = 2                  # per encoder level; the decoder has one more
    num_input_res_blocks: int | None = None  # None: num_res_blocks
    embed_channels: int = 512
    attention_resolutions: tuple[int, ...] = (16,)
    time_embed_channels: int | None = None   # sinusoid width; None: model_channels
    dropout: float = 0.1
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4)
    num_heads: int = 1
    num_head_channels: int = -1
    num_heads_upsample: int = -1
    resblock_updown: bool = True
    conv_resample: bool = True
    resnet_two_cond: bool = True
    resnet_cond_channels: int | None = None  # width of the semantic code; None: embed_channels
    resnet_use_zero_module: bool = True
    enc_out_channels: int = 512              # style channels (z_face)

    def __post_init__(self):
        object.__setattr__(self, "attention_resolutions", tuple(int(r) for r in self.attention_resolutions))
        object.__setattr__(self, "channel_mult", tuple(self.channel_mult))
        widths = [int(m * self.model_channels) for m in self.channel_mult]
        cond = self.resnet_cond_channels or self.embed_channels
        _check([(self.resnet_two_cond,
                 "the autoencoder UNet needs resnet_two_cond (the official forward raises otherwise)"),
                (all(w % _groups(w) == 0 for w in widths + [self.model_channels]),
                 "every width must be divisible by its GroupNorm group count min(32, C)"),
                (self.image_size % 2 ** (len(self.channel_mult) - 1) == 0,
                 f"image_size {self.image_size} must halve {len(self.channel_mult) - 1} times"),
                (self.num_res_blocks >= 1 and (self.num_input_res_blocks or self.num_res_blocks) >= 1,
                 "num_res_blocks must be >= 1"),
                (cond == self.enc_out_channels,
                 f"the semantic code has {self.enc_out_channels} channels but the blocks expect {cond}"),
                (0 <= self.dropout < 1, "dropout must be in [0, 1)")])

    @property
    def input_res_blocks(self) -> int:
        return self.num_input_res_blocks or self.num_res_blocks

    @property
    def time_channels(self) -> int:
        return self.time_embed_channels or self.model_channels

    @property
    def cond_channels(self) -> int:
        return self.resnet_cond_channels or self.embed_channels

    def replace(self, **changes: Any) -> "UNetConfig":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class DVAConfig:
    """The official `TrainConfig` fields DVA sets (`templates.py` `diffusion_video_autoencoder`, other
    values the `config.py` defaults) that define the network and the diffusion process."""

    img_size: int = 256
    net_ch: int = 128
    net_ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4)
    net_attn: tuple[int, ...] = (16,)
    net_num_res_blocks: int = 2
    net_num_input_res_blocks: int | None = None
    net_beatgans_attn_head: int = 1
    net_beatgans_embed_channels: int = 512
    net_resblock_updown: bool = True
    net_beatgans_resnet_two_cond: bool = True
    net_beatgans_resnet_use_zero_module: bool = True
    net_beatgans_resnet_cond_channels: int | None = None
    style_ch: int = 512
    dropout: float = 0.1
    # diffusion (`_make_diffusion_conf`): eps prediction, fixed_large variance, integer timesteps
    T: int = 1000
    T_eval: int = 20
    beta_scheduler: str = "linear"
    beatgans_rescale_timesteps: bool = False

    def __post_init__(self):
        object.__setattr__(self, "net_ch_mult", tuple(self.net_ch_mult))
        object.__setattr__(self, "net_attn", tuple(self.net_attn))
        _check([(self.beta_scheduler == "linear", "only the 'linear' beta schedule is implemented"),
                (not self.beatgans_rescale_timesteps, "DVA uses integer timesteps (rescale_timesteps False)"),
                (self.T >= 1 and self.T_eval >= 1, "T and T_eval must be >= 1")])

    def make_model_conf(self) -> UNetConfig:
        return UNetConfig(
            image_size=self.img_size, in_channels=3, model_channels=self.net_ch, out_channels=3,
            num_res_blocks=self.net_num_res_blocks, num_input_res_blocks=self.net_num_input_res_blocks,
            embed_channels=self.net_beatgans_embed_channels, attention_resolutions=self.net_attn,
            dropout=self.dropout, channel_mult=self.net_ch_mult, num_heads=self.net_beatgans_attn_head,
            num_head_channels=-1, num_heads_upsample=-1, resblock_updown=self.net_resblock_updown,
            conv_resample=True, resnet_two_cond=self.net_beatgans_resnet_two_cond,
            resnet_cond_channels=self.net_beatgans_resnet_cond_channels,
            resnet_use_zero_module=self.net_beatgans_resnet_use_zero_module, enc_out_channels=self.style_ch)

    @classmethod
    def from_parity(cls, model_conf: Mapping[str, Any]) -> "DVAConfig":
        """The settings of a parity fixture's json `model_conf` (short names: `embed_channels`,
        `two_cond`), the other fields at the release values."""
        # the fixtures' short names, and the UNet's own (`BeatGANsUNetConfig`) for settings a fixture may add
        names = {"embed_channels": "net_beatgans_embed_channels", "two_cond": "net_beatgans_resnet_two_cond",
                 "image_size": "img_size", "model_channels": "net_ch", "channel_mult": "net_ch_mult",
                 "attention_resolutions": "net_attn", "num_res_blocks": "net_num_res_blocks",
                 "num_input_res_blocks": "net_num_input_res_blocks", "num_heads": "net_beatgans_attn_head",
                 "attn_head": "net_beatgans_attn_head", "resblock_updown": "net_resblock_updown",
                 "resnet_two_cond": "net_beatgans_resnet_two_cond",
                 "resnet_use_zero_module": "net_beatgans_resnet_use_zero_module",
                 "resnet_cond_channels": "net_beatgans_resnet_cond_channels", "enc_out_channels": "style_ch"}
        known = {f.name for f in dataclasses.fields(cls)}
        values = {names.get(k, k): v for k, v in model_conf.items()}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown DVA model_conf fields: {sorted(unknown)}")
        return cls(**values)

    def replace(self, **changes: Any) -> "DVAConfig":
        return dataclasses.replace(self, **changes)


def vox256() -> DVAConfig:
    """The released VoxCeleb 256 px model (`epoch=51-step=1000000.ckpt`)."""
    return DVAConfig()


def tiny() -> DVAConfig:
    """A small network of the release's structure (64 px, 4 levels, attention at 16 px and in the middle,
    one residual block per encoder level) for CPU tests; the 512-d semantic code is kept, so the
    encoder's z_face fits it."""
    return DVAConfig(img_size=64, net_ch=32, net_ch_mult=(1, 1, 2, 2), net_attn=(16,),
                     net_num_res_blocks=1, dropout=0.0)
