"""Diffused Heads settings: the conditional UNet and its diffusion process.

Field names are the keyword arguments of the official `UNet` (train branch `models/unet.py`), so the
parity fixtures' `unet_kwargs` and a Lightning checkpoint's hyper-parameters map onto them one to one.

Presets: `crema()` is the released CREMA model (`crema_script.pt`: 256 channels, multipliers 1,2,3 at
128 px, attention at 32 px and in the middle, 64 channels per head, `double_pre_gn` audio conditioning,
the identity frame concatenated, **RGB** motion frames, so the first convolution sees 12 channels);
`tiny()` has small widths for fast CPU tests. The train-branch default config differs from the release
in one field: grayscale motion frames (`train_default()`, 8 input channels).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ...errors import InputError
from ...settings import settings_checker

ID_CONDITIONS = ("frame", "pre_gn", "post_gn")
AUDIO_CONDITIONS = ("pre_gn", "post_gn", "double_pre_gn", "attention")
AUDIO_FEATURES = ("sda", "wav2vec2", "logmel")

_check = settings_checker("diffused_heads config")


@dataclass(frozen=True)
class UNetConfig:
    """The official UNet's arguments. `attention_resolutions` are in pixels (32 -> the 32x32 level)."""

    image_size: int = 128
    in_channels: int = 3
    model_channels: int = 256
    out_channels: int = 6              # eps (3) + learned-range variance interpolation (3)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (32,)
    dropout: float = 0.1
    channel_mult: tuple[int, ...] = (1, 2, 3)
    num_heads: int = 4
    num_head_channels: int = 64        # overrides num_heads when not -1
    resblock_updown: bool = True
    id_condition_type: str = "frame"
    audio_condition_type: str = "double_pre_gn"
    n_motion_frames: int = 2
    grayscale_motion: bool = False
    n_audio_motion_embs: int = 2       # audio window = frames i-m .. i+m
    audio_channels: int | None = None  # width of one audio embedding; None: model_channels (the official tie)

    def __post_init__(self):
        object.__setattr__(self, "attention_resolutions", tuple(int(r) for r in self.attention_resolutions))
        object.__setattr__(self, "channel_mult", tuple(self.channel_mult))
        widths = [int(m * self.model_channels) for m in self.channel_mult]
        attended = [w for level, w in enumerate(widths) if self.image_size // 2 ** level in self.attention_resolutions]
        attended.append(widths[-1])      # the middle block always attends
        heads_ok = self.num_head_channels == -1 or all(w % self.num_head_channels == 0 for w in attended)
        _check([(self.id_condition_type in ID_CONDITIONS, f"id_condition_type must be one of {ID_CONDITIONS}"),
                (self.audio_condition_type in AUDIO_CONDITIONS,
                 f"audio_condition_type must be one of {AUDIO_CONDITIONS}"),
                (all(w % 32 == 0 for w in widths), "every width must be a multiple of 32 (GroupNorm(32))"),
                (heads_ok, "the widths that attend must be multiples of num_head_channels"),
                (self.image_size % 2 ** (len(self.channel_mult) - 1) == 0,
                 f"image_size {self.image_size} must halve {len(self.channel_mult) - 1} times"),
                (self.num_res_blocks >= 1, "num_res_blocks must be >= 1"),
                (self.n_motion_frames >= 0 and self.n_audio_motion_embs >= 0, "frame counts must be >= 0"),
                (0 <= self.dropout < 1, "dropout must be in [0, 1)")])

    @property
    def motion_channels(self) -> int:
        return 1 if self.grayscale_motion else 3

    @property
    def input_channels(self) -> int:
        """Channels of the first convolution: x_t, the motion frames, the identity frame if concatenated."""
        identity = self.in_channels if self.id_condition_type == "frame" else 0
        return self.in_channels + self.motion_channels * self.n_motion_frames + identity

    @property
    def audio_window(self) -> int:
        return 2 * self.n_audio_motion_embs + 1

    @property
    def audio_dim(self) -> int:
        """Width of one audio embedding: model_channels in the official code (its audio_embed layer ties
        them); other features (wav2vec2, log-mel) set `audio_channels`."""
        return self.audio_channels or self.model_channels


@dataclass(frozen=True)
class DiffusedHeadsConfig:
    unet: UNetConfig = field(default_factory=UNetConfig)
    n_timesteps: int = 1000            # cosine schedule, built in float32 as the official code does
    fps: float = 25.0                  # one audio embedding per video frame
    audio_features: str = "sda"        # what the audio embeddings are: "sda" (released), "wav2vec2", "logmel"

    def __post_init__(self):
        _check([(self.n_timesteps >= 2, "n_timesteps must be >= 2"), (self.fps > 0, "fps must be > 0"),
                (self.audio_features in AUDIO_FEATURES, f"audio_features must be one of {AUDIO_FEATURES}")])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DiffusedHeadsConfig":
        data = dict(data)
        unet = dict(data.pop("unet", {}))
        try:
            return cls(unet=UNetConfig(**unet), **data)
        except TypeError as error:
            raise InputError(None, f"diffused_heads config: {error}") from None

    @classmethod
    def from_official(cls, unet_kwargs: Mapping[str, Any], *, n_timesteps: int = 1000) -> "DiffusedHeadsConfig":
        """The official `UNet(**unet_kwargs)` (its `precision` argument is a runtime choice here: dropped)."""
        kwargs = {k: v for k, v in unet_kwargs.items() if k != "precision"}
        return cls.from_dict({"unet": kwargs, "n_timesteps": n_timesteps})


def crema() -> DiffusedHeadsConfig:
    """The released CREMA checkpoint (`config_crema.yaml` + `configs/config.yaml` with RGB motion)."""
    return DiffusedHeadsConfig()


def train_default() -> DiffusedHeadsConfig:
    """The train branch's `configs/config.yaml` as written: grayscale motion frames."""
    return DiffusedHeadsConfig(unet=UNetConfig(grayscale_motion=True))


def tiny() -> DiffusedHeadsConfig:
    """A few MB: for tests and CPU smoke runs (64 px, width 32)."""
    return DiffusedHeadsConfig(unet=UNetConfig(image_size=64, model_channels=32, channel_mult=(1, 2),
                                               num_res_blocks=1, attention_resolutions=(32,), dropout=0.0))


PRESETS = {"crema": crema, "train_default": train_default, "tiny": tiny}
