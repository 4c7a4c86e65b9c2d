"""FADM network settings: the attribute-guided denoiser (an SR3-style UNet with FADM's condition network),
its diffusion schedule, and DECA's coarse encoder.

Presets: `released()` is the configuration of the official `diffusion.pth` (64 channels, multipliers
1,2,4,4,8,8 at 256 px, attention at 16 px, T = 100); `tiny()` has small widths for fast CPU tests.
`from_official(unet_kwargs)` takes the keyword arguments of the official `UNet` (the parity fixtures'
`unet_kwargs`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ...errors import InputError

# DECA's code layout (decalib/utils/config.py): the order in which E_flame's 236 outputs are split.
DECA_CODES = (("shape", 100), ("tex", 50), ("exp", 50), ("pose", 6), ("cam", 3), ("light", 27))
ATTRIBUTE_CODES = ("exp", "pose")   # the attribute is exp ⊕ pose of the source minus the driving frame


def _check(checks: list[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise InputError(None, f"fadm config: {message}")


@dataclass(frozen=True)
class UNetConfig:
    in_channel: int = 6                # condition image (3) ⊕ noisy frame (3)
    out_channel: int = 3
    inner_channel: int = 64
    norm_groups: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 4, 4, 8, 8)
    attn_res: tuple[int, ...] = (16,)
    res_blocks: int = 3
    dropout: float = 0.0
    image_size: int = 256
    condition_dim: int = 56            # exp (50) + pose (6)
    condition_channels: int = 32       # the condition network's width (fixed in the official code)

    def __post_init__(self):
        widths = [self.inner_channel * m for m in self.channel_mults]
        _check([(self.in_channel == 6, "the denoiser sees the condition image and the noisy frame: in_channel 6"),
                (all(w % self.norm_groups == 0 for w in widths), "every width must divide into norm_groups"),
                (self.image_size % 2 ** (len(self.channel_mults) - 1) == 0,
                 f"image_size {self.image_size} must halve {len(self.channel_mults) - 1} times"),
                (self.res_blocks >= 1, "res_blocks must be >= 1"),
                (self.condition_channels % 32 == 0, "condition_channels must be a multiple of 32"),
                (0 <= self.dropout < 1, "dropout must be in [0, 1)")])


@dataclass(frozen=True)
class FADMModelConfig:
    unet: UNetConfig = field(default_factory=UNetConfig)
    timesteps: int = 100
    beta_schedule: str = "linear"      # FADM's linear schedule scaled by 1000/T (0.001 .. 0.2 for T = 100)
    loss_type: str = "l1"              # ε loss, summed over the batch and the pixels

    def __post_init__(self):
        _check([(self.timesteps >= 2, "timesteps must be >= 2"),
                (self.beta_schedule in ("linear", "cosine"), "beta_schedule must be 'linear' or 'cosine'"),
                (self.loss_type in ("l1", "l2"), "loss_type must be 'l1' or 'l2'")])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FADMModelConfig":
        data = dict(data)
        unet = dict(data.pop("unet", {}))
        for key in ("channel_mults", "attn_res"):
            if key in unet:
                unet[key] = tuple(unet[key])
        try:
            return cls(unet=UNetConfig(**unet), **data)
        except TypeError as error:
            raise InputError(None, f"fadm config: {error}") from None

    @classmethod
    def from_official(cls, unet_kwargs: Mapping[str, Any] | None = None, *, timesteps: int = 100,
                      beta_schedule: str = "linear") -> "FADMModelConfig":
        """The official `UNet(**unet_kwargs)` inside `DiffusionGenerator(timesteps=...)`."""
        return cls.from_dict({"unet": dict(unet_kwargs or {}), "timesteps": timesteps,
                              "beta_schedule": beta_schedule})


def released() -> FADMModelConfig:
    return FADMModelConfig()


def tiny() -> FADMModelConfig:
    """A few MB: for tests and CPU smoke runs (64 px, widths 32)."""
    return FADMModelConfig(unet=UNetConfig(inner_channel=32, channel_mults=(1, 1, 2), attn_res=(16,),
                                           res_blocks=1, image_size=64))


PRESETS = {"released": released, "tiny": tiny}
