"""EMO settings: the SD-1.5 UNet widths shared by ReferenceNet and the video backbone, and what EMO and Hallo add.

`EMOConfig` keeps diffusers' / Hallo's own setting names (`block_out_channels`, `attention_head_dim`, which
for SD-1.5 is the number of heads, `audio_attention_dim`, `motion_module_kwargs`' `num_attention_heads`, ...)
so that a released `unet/config.json` or Hallo's `configs/unet/unet.yaml` maps onto it one to one.

Presets:
- `hallo()`: Hallo's released `net.pth` (fudan-generative-vision/hallo): three masked audio cross-attentions
  (full / face / lip), an identity embedding (insightface, 512-d) through `ImageProjModel` as the
  cross-attention context, 2 motion frames, 16-frame clips, motion modules only where Hallo calls them.
- `emo()`: the paper's design on the same backbone: one audio cross-attention per layer (no region masks),
  no identity embedding (the cross-attention context is a learned null token set), 4 motion frames,
  12-frame clips, temporal modules at every resolution and the speed layers.
- `tiny()`: small widths of either design, for tests on CPU.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from ...settings import settings_checker

_check = settings_checker("emo config")

AudioAttention = Literal["masked", "plain"]


@dataclass(frozen=True)
class SpeedConfig:
    """EMO's speed layers: head-rotation speed per frame -> `buckets` soft bucket scores s = tanh(3(w - c)/r),
    a window of +-`window` frames through an MLP, used as cross-attention keys/values in the temporal layers."""

    buckets: int = 9                         # d; Emote-hack's stage-3 setting (the paper does not give it)
    centers: tuple[float, ...] = ()          # c_d in degrees per frame; () -> evenly spaced over [0, max_speed]
    radii: tuple[float, ...] = ()            # r_d; () -> the spacing of the centres
    max_speed: float = 8.0
    window: int = 2
    embed_dim: int = 64                      # MLP hidden width
    tokens: int = 1                          # tokens per frame the MLP emits

    def bucket_centers(self) -> tuple[float, ...]:
        if self.centers:
            return tuple(self.centers)
        step = self.max_speed / max(self.buckets - 1, 1)
        return tuple(step * i for i in range(self.buckets))

    def bucket_radii(self) -> tuple[float, ...]:
        if self.radii:
            return tuple(self.radii)
        step = self.max_speed / max(self.buckets - 1, 1)
        return (step,) * self.buckets


@dataclass(frozen=True)
class EMOConfig:
    # --- the SD-1.5 UNet (ReferenceNet and backbone share these) ---
    in_channels: int = 4
    out_channels: int = 4
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    layers_per_block: int = 2
    attention_head_dim: int = 8              # SD-1.5's legacy name: the number of heads
    cross_attention_dim: int = 768
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    sample_size: int = 64
    # --- temporal (AnimateDiff v2) modules ---
    motion_heads: int = 8
    motion_max_len: int = 32
    motion_attention_dim_div: int = 1
    motion_in_plain_blocks: bool = False     # Hallo never calls DownBlock3D / UpBlock3D motion modules
    # --- audio ---
    audio_attention: AudioAttention = "masked"
    audio_attention_dim: int = 768
    audio_window: int = 5                    # 2m + 1 frames of wav2vec features per video frame
    audio_blocks: int = 12                   # wav2vec hidden states kept per frame (hidden_states[1:])
    audio_channels: int = 768
    audio_intermediate_dim: int = 512
    audio_context_tokens: int = 32
    # --- conditions ---
    face_locator_channels: tuple[int, ...] = (16, 32, 64, 128)
    identity_dim: int | None = 512           # insightface embedding; None: no identity (EMO)
    identity_tokens: int = 4
    speed: SpeedConfig | None = None
    # --- clip layout ---
    clip_length: int = 16
    motion_frames: int = 2
    image_size: int = 512
    latent_scale: float = 0.18215
    extras: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "block_out_channels", tuple(int(c) for c in self.block_out_channels))
        object.__setattr__(self, "face_locator_channels", tuple(int(c) for c in self.face_locator_channels))
        if isinstance(self.speed, Mapping):
            object.__setattr__(self, "speed", SpeedConfig(**self.speed))
        widths = self.block_out_channels
        _check([(len(widths) == 4, "block_out_channels must have 4 entries (the SD-1.5 layout)"),
                (all(w % self.norm_num_groups == 0 for w in widths),
                 f"every width must be divisible by norm_num_groups {self.norm_num_groups}"),
                (all(w % self.attention_head_dim == 0 for w in widths),
                 "every width must be divisible by attention_head_dim (the number of heads)"),
                (all(w % self.motion_heads == 0 for w in widths), "every width must be divisible by motion_heads"),
                (self.audio_attention in ("masked", "plain"), "audio_attention must be 'masked' or 'plain'"),
                (self.clip_length >= 1 and self.motion_frames >= 0, "clip_length >= 1 and motion_frames >= 0"),
                (self.clip_length + self.motion_frames <= self.motion_max_len,
                 f"clip_length + motion_frames must not exceed the motion modules' {self.motion_max_len} positions"),
                (self.image_size % 8 == 0, "image_size must be a multiple of 8"),
                (self.audio_window % 2 == 1, "audio_window must be odd (2m + 1)")])

    @property
    def heads(self) -> int:
        return self.attention_head_dim

    @property
    def latent_size(self) -> int:
        return self.image_size // 8

    @property
    def time_embed_dim(self) -> int:
        return self.block_out_channels[0] * 4

    @property
    def audio_margin(self) -> int:
        return self.audio_window // 2

    def replace(self, **changes: Any) -> EMOConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("extras")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EMOConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        _check([(not unknown, f"unknown settings {unknown}")])
        values = dict(data)
        for key in ("block_out_channels", "face_locator_channels"):
            if key in values:
                values[key] = tuple(values[key])
        if values.get("speed") is not None:
            speed = dict(values["speed"])
            for key in ("centers", "radii"):
                speed[key] = tuple(speed.get(key, ()))
            values["speed"] = SpeedConfig(**speed)
        return cls(**values)

    @classmethod
    def from_hallo(cls, configs: Mapping[str, Any], **overrides: Any) -> EMOConfig:
        """From Hallo's constructor settings as the parity fixtures record them (json `configs`: the
        `denoising_unet` UNet config with `unet_additional_kwargs`, `face_locator`, `imageproj`, `audioproj`)."""
        unet = configs["denoising_unet"]
        motion = unet.get("motion_module_kwargs", {})
        audio = configs["audioproj"]
        image = configs.get("imageproj")
        values: dict[str, Any] = dict(
            in_channels=unet["in_channels"], out_channels=unet["out_channels"],
            block_out_channels=tuple(unet["block_out_channels"]), layers_per_block=unet["layers_per_block"],
            attention_head_dim=unet["attention_head_dim"], cross_attention_dim=unet["cross_attention_dim"],
            norm_num_groups=unet["norm_num_groups"], norm_eps=unet["norm_eps"], sample_size=unet["sample_size"],
            motion_heads=motion.get("num_attention_heads", 8),
            motion_max_len=motion.get("temporal_position_encoding_max_len", 32),
            motion_attention_dim_div=motion.get("temporal_attention_dim_div", 1),
            audio_attention_dim=unet["audio_attention_dim"], audio_window=audio["seq_len"],
            audio_blocks=audio["blocks"], audio_channels=audio["channels"],
            audio_intermediate_dim=audio["intermediate_dim"], audio_context_tokens=audio["context_tokens"],
            face_locator_channels=tuple(configs["face_locator"]["block_out_channels"]),
            identity_dim=image["clip_embeddings_dim"] if image else None,
            identity_tokens=image["clip_extra_context_tokens"] if image else 4)
        values.update(overrides)
        return cls(**values)


def hallo() -> EMOConfig:
    """Hallo's released model: SD-1.5 widths, `configs/unet/unet.yaml`, `configs/inference/default.yaml`."""
    return EMOConfig()


def emo() -> EMOConfig:
    """The paper's configuration on the SD-1.5 backbone (no released weights: train it with `faceanim train`)."""
    return EMOConfig(audio_attention="plain", identity_dim=None, motion_in_plain_blocks=True,
                     speed=SpeedConfig(), clip_length=12, motion_frames=4)


def tiny(design: Literal["hallo", "emo"] = "hallo") -> EMOConfig:
    """Small widths (as the parity fixtures: 32/64/64/64, 4 heads) for CPU tests."""
    base = hallo() if design == "hallo" else emo()
    speed = SpeedConfig(embed_dim=16) if base.speed else None
    return base.replace(block_out_channels=(32, 64, 64, 64), attention_head_dim=4, cross_attention_dim=40,
                        motion_heads=2, audio_attention_dim=48, audio_blocks=3, audio_channels=32,
                        audio_intermediate_dim=64, audio_context_tokens=8, sample_size=16, image_size=128,
                        clip_length=4 if design == "hallo" else 4, motion_frames=2 if design == "hallo" else 4,
                        speed=speed)


PRESETS = {"hallo": hallo, "emo": emo}
