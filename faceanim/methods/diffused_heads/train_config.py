"""How Diffused Heads is trained: `DiffusedHeadsTrainConfig`, read from the YAML files `configs/*.yaml`.

The official training (train branch, `train.py`, `configs/config.yaml`, `lightning_modules/model.py`):
Adam(5e-5) over the UNet, StepLR(step_size = n_epochs // 18, gamma 0.8) stepped once per epoch, batches
of 10 per GPU, seed 2137, loss L_simple + 1e-4 L_vlb + 0.2 L_lip, one random frame of every training
video per epoch (`identity_frame: random`: the identity frame another random frame of the same video).

YAML layout (as FADM's): `model` (a preset, `crema`, `train_default` or `tiny`, plus overrides:
`audio_features`, `n_timesteps`, `fps`, `unet: {...}`), `train`, `dataset`, `trainer` (further
`TrainerConfig` settings) and `weights` (init, audio_encoder, wav2vec2).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from ... import fileio
from ...settings import config_section, settings_builder, settings_checker
from .config import PRESETS, DiffusedHeadsConfig, crema

IDENTITY_FRAMES = ("random", "first")      # official `identity_frame`
LIP_LANDMARKS = ("identity", "target")     # whose mouth box the lip loss uses (official: the identity frame's)
SECTIONS = ("model", "train", "dataset", "trainer", "weights")
OWNER = "diffused_heads training config"

_check = settings_checker(OWNER)
_build = settings_builder(OWNER)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the official terms next to L_simple (weight 1): `vlb` (improved DDPM's variational
    bound, training the variance output) and `lip` (the ε error inside the mouth box; 0 turns it off)."""

    vlb: float = 1e-4
    lip: float = 0.2

    def __post_init__(self):
        _check([(self.vlb >= 0 and self.lip >= 0, "loss weights must be >= 0")])


@dataclass(frozen=True)
class WeightFiles:
    """Local files of a run (None: from the command line or the environment): `init` weights to start
    from (a converted folder, crema_script.pt, a Lightning .ckpt or a state dict), `audio_encoder` the SDA
    speech encoder (for `audio_features: sda`), `wav2vec2` a wav2vec2 model folder (for `wav2vec2`)."""

    init: str | None = None
    audio_encoder: str | None = None
    wav2vec2: str | None = None


@dataclass(frozen=True)
class DiffusedHeadsTrainConfig:
    """How the UNet is trained (see the module docstring). Schedules are in epochs: one pass over the
    clips times `num_repeats` (1 officially: one random frame per video per epoch), in batches of
    `batch_size` per process.

    `lr_step_epochs`: epochs between learning-rate decays by `lr_gamma` (None: num_epochs // 18, the
    official rule, at least 1). `lip_landmarks`: whose mouth box the lip loss crops: "identity" is the
    official dataset's (it reads the landmarks of the identity frame, not of the frame being denoised),
    "target" the frame being denoised. `sample_steps`: DDPM steps of the sample grids' frames."""

    model: DiffusedHeadsConfig = field(default_factory=crema)
    loss_weights: LossWeights = field(default_factory=LossWeights)
    learning_rate: float = 5e-5
    lr_step_epochs: int | None = None
    lr_gamma: float = 0.8
    num_epochs: int = 3000
    batch_size: int = 10
    checkpoint_freq: float = 50
    sample_steps: int = 8
    lip_landmarks: str = "identity"
    identity_frame: str = "random"
    num_repeats: int = 1
    trainer: dict = field(default_factory=dict)
    weights: WeightFiles = field(default_factory=WeightFiles)

    def __post_init__(self):
        object.__setattr__(self, "trainer", dict(self.trainer))
        positive = ("learning_rate", "num_epochs", "batch_size", "checkpoint_freq", "num_repeats")
        _check([(getattr(self, name) > 0, f"{name} must be > 0") for name in positive]
               + [(self.lr_step_epochs is None or self.lr_step_epochs >= 1, "lr_step_epochs must be >= 1 or null"),
                  (0 < self.lr_gamma <= 1, "lr_gamma must be in (0, 1]"),
                  (self.identity_frame in IDENTITY_FRAMES,
                   f"identity_frame must be one of {', '.join(IDENTITY_FRAMES)}"),
                  (self.lip_landmarks in LIP_LANDMARKS, f"lip_landmarks must be one of {', '.join(LIP_LANDMARKS)}"),
                  (2 <= self.sample_steps <= self.model.n_timesteps,
                   f"sample_steps must be between 2 and n_timesteps ({self.model.n_timesteps})"),
                  (self.model.unet.out_channels == 6,
                   "model.unet.out_channels must be 6 (eps and the learned-range variance the sampler needs)")])

    @property
    def image_size(self) -> int:
        return self.model.unet.image_size

    @property
    def lr_step(self) -> int:
        """Epochs between learning-rate decays."""
        return self.lr_step_epochs or max(1, self.num_epochs // 18)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DiffusedHeadsTrainConfig":
        """From the YAML layout."""
        unknown = sorted(set(data) - set(SECTIONS))
        _check([(not unknown, f"unknown sections {', '.join(unknown)}")])
        values = {**config_section(data, "train", ("loss_weights", "learning_rate", "lr_step_epochs", "lr_gamma",
                                                   "num_epochs", "batch_size", "checkpoint_freq", "sample_steps",
                                                   "lip_landmarks"), owner=OWNER),
                  **config_section(data, "dataset", ("identity_frame", "num_repeats"), owner=OWNER)}
        if "loss_weights" in values:
            values["loss_weights"] = _build(LossWeights, values["loss_weights"] or {}, "loss_weights")
        trainer = data.get("trainer") or {}
        _check([(isinstance(trainer, Mapping), "section trainer must be a mapping")])
        return cls(model=model_from_dict(data.get("model") or {}), trainer=dict(trainer),
                   weights=_build(WeightFiles, data.get("weights") or {}, "weights"), **values)


def model_from_dict(section: Mapping[str, Any]) -> DiffusedHeadsConfig:
    """A model config from a `preset` (crema unless given) with overrides (`audio_features`, `unet: {...}`)."""
    _check([(isinstance(section, Mapping), "section model must be a mapping")])
    section = dict(section)
    preset = section.pop("preset", "crema")
    _check([(preset in PRESETS, f"unknown model preset {preset!r} (choose {', '.join(PRESETS)})")])
    values = PRESETS[preset]().to_dict()
    unet = section.pop("unet", None) or {}
    _check([(isinstance(unet, Mapping), "model.unet must be a mapping")])
    unknown = sorted(set(unet) - set(values["unet"]))
    _check([(not unknown, f"unknown model.unet settings: {', '.join(unknown)}")])
    values["unet"].update(unet)
    unknown = sorted(set(section) - set(values))
    _check([(not unknown, f"unknown model settings: {', '.join(unknown)}")])
    values.update(section)
    return DiffusedHeadsConfig.from_dict(values)


def packaged_configs() -> list[str]:
    """Names of the Diffused Heads training configs shipped with faceanim (`configs/*.yaml`)."""
    return fileio.packaged_configs(__package__)


def load_train_config(source: str | os.PathLike) -> DiffusedHeadsTrainConfig:
    """A training config from a YAML file or a packaged name (`tiny.yaml`, `crema`)."""
    return fileio.load_config(source, __package__, DiffusedHeadsTrainConfig.from_dict)
