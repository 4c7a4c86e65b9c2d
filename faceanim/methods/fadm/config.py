"""FADM settings: the networks (the attribute-guided denoiser, an SR3-style UNet with FADM's condition
network, its diffusion schedule, and DECA's coarse encoder) and the renderer's training.

Presets: `vox256()` is the configuration of the official `diffusion.pth` (64 channels, multipliers
1,2,4,4,8,8 at 256 px, attention at 16 px, T = 100); `tiny()` has small widths for fast CPU tests.
`from_official(unet_kwargs)` takes the keyword arguments of the official `UNet` (the parity fixtures'
`unet_kwargs`).

Training (`FADMTrainConfig`, the packaged YAML files `configs/*.yaml`).

The official `train.py` trains the diffusion renderer alone, on the coarse frames of a frozen FOMM
(FOMM.pth with `config/vox-256_fomm.yaml`) and the attribute of a frozen DECA: Adam(2e-4, betas (0, 0.9)),
no scheduler, loss `norm + color`, `DatasetRepeater(dataset, 75)` over `config/vox-256.yaml`'s data
(id sampling, flips, jitter 0.1) in batches of 5 per GPU.

YAML layout: `model` (a preset, `vox256` or `tiny`, plus overrides), `coarse` (the FOMM
animator: `FOMMConfig` fields, or `official_config: PATH` of an official FOMM YAML), `train`, `dataset`,
`trainer` (further `TrainerConfig` settings) and `weights` (coarse, deca, init).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ... import fileio
from ...errors import InputError
from ...settings import AugmentationParams, config_section, settings_builder, settings_checker
from ...warping.fomm import FOMMConfig

# DECA's code layout (decalib/utils/config.py): the order in which E_flame's 236 outputs are split.
DECA_CODES = (("shape", 100), ("tex", 50), ("exp", 50), ("pose", 6), ("cam", 3), ("light", 27))
ATTRIBUTE_CODES = ("exp", "pose")   # the attribute is exp ⊕ pose of the source minus the driving frame


_check = settings_checker("fadm config")


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
class FADMConfig:
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
    def from_dict(cls, data: Mapping[str, Any]) -> "FADMConfig":
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
                      beta_schedule: str = "linear") -> "FADMConfig":
        """The official `UNet(**unet_kwargs)` inside `DiffusionGenerator(timesteps=...)`."""
        return cls.from_dict({"unet": dict(unet_kwargs or {}), "timesteps": timesteps,
                              "beta_schedule": beta_schedule})


def vox256() -> FADMConfig:
    return FADMConfig()


def tiny() -> FADMConfig:
    """A few MB: for tests and CPU smoke runs (64 px, widths 32)."""
    return FADMConfig(unet=UNetConfig(inner_channel=32, channel_mults=(1, 1, 2), attn_res=(16,),
                                      res_blocks=1, image_size=64))


PRESETS = {"vox256": vox256, "tiny": tiny}
PRESET_ALIASES = {"released": "vox256"}   # the earlier name of vox256


COLOUR_REFERENCES = ("driving", "coarse")


_check_training = settings_checker("fadm training config")
_build = settings_builder("fadm training config")


@dataclass(frozen=True)
class LossWeights:
    """Weights of the official terms: `norm` (ε L1 summed over batch and pixels) and `color`."""

    norm: float = 1.0
    color: float = 1.0

    def __post_init__(self):
        _check_training([(self.norm >= 0 and self.color >= 0, "loss weights must be >= 0"),
                (self.norm > 0, "the norm (ε) loss weight must be > 0")])


@dataclass(frozen=True)
class WeightFiles:
    """Local weight files of a run (None: from the command line or the environment): `coarse` the
    FOMM checkpoint (FOMM.pth), `deca` DECA's deca_model.tar, `init` an official diffusion.pth or a
    converted FADM folder to fine-tune. Relative paths are relative to the working directory."""

    coarse: str | None = None
    deca: str | None = None
    init: str | None = None


@dataclass(frozen=True)
class FADMTrainConfig:
    """How FADM's renderer is trained (see the module docstring). Schedules are in epochs: one pass over
    the identities (or videos) times `num_repeats`, in batches of `batch_size` per process.

    `colour_reference`: "driving" is the official behaviour, the colour condition taken from the real
    driving frame (the ground truth leaks into the condition and the colour loss pulls the coarse
    colours towards it); "coarse" takes it from the coarse frame, as inference does (the colour loss is
    then 0). `sample_steps`: respaced DDIM steps of the sample grids."""

    model: FADMConfig = field(default_factory=vox256)
    coarse: FOMMConfig = field(default_factory=FOMMConfig)
    loss_weights: LossWeights = field(default_factory=LossWeights)
    colour_reference: str = "driving"
    learning_rate: float = 2e-4
    adam_betas: tuple[float, float] = (0.0, 0.9)
    num_epochs: int = 100
    num_repeats: int = 75
    batch_size: int = 5
    checkpoint_freq: float = 1
    sample_steps: int = 10
    id_sampling: bool = True
    augmentation: AugmentationParams = field(default_factory=AugmentationParams)
    trainer: dict = field(default_factory=dict)
    weights: WeightFiles = field(default_factory=WeightFiles)

    def __post_init__(self):
        object.__setattr__(self, "adam_betas", tuple(self.adam_betas))
        object.__setattr__(self, "trainer", dict(self.trainer))
        positive = ("learning_rate", "num_epochs", "num_repeats", "batch_size", "checkpoint_freq")
        _check_training([(getattr(self, name) > 0, f"{name} must be > 0") for name in positive]
               + [(self.colour_reference in COLOUR_REFERENCES,
                   f"colour_reference must be one of {', '.join(COLOUR_REFERENCES)}"),
                  (len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas),
                   "adam_betas must be two values in [0, 1)"),
                  (self.sample_steps >= 2, "sample_steps must be >= 2"),
                  (self.coarse.image_size == self.model.unet.image_size,
                   f"the coarse animator's image_size ({self.coarse.image_size}) must be the renderer's "
                   f"({self.model.unet.image_size})")])

    @property
    def image_size(self) -> int:
        return self.model.unet.image_size

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: str | os.PathLike = ".") -> "FADMTrainConfig":
        """From the YAML layout; relative `coarse.official_config` paths are relative to `base`."""
        unknown = sorted(set(data) - {"model", "coarse", "train", "dataset", "trainer", "weights"})
        _check_training([(not unknown, f"unknown sections {', '.join(unknown)}")])
        model = model_from_dict(data.get("model") or {})
        values = {**_section(data, "train", ("loss_weights", "colour_reference", "learning_rate", "adam_betas",
                                             "num_epochs", "num_repeats", "batch_size", "checkpoint_freq",
                                             "sample_steps")),
                  **_section(data, "dataset", ("id_sampling", "augmentation"))}
        for name, sub_cls in (("loss_weights", LossWeights), ("augmentation", AugmentationParams)):
            if name in values:
                values[name] = _build(sub_cls, values[name] or {}, name)
        coarse = coarse_from_dict(data.get("coarse") or {}, model.unet.image_size, base)
        return cls(model=model, coarse=coarse, trainer=dict(data.get("trainer") or {}),
                   weights=_build(WeightFiles, data.get("weights") or {}, "weights"), **values)


def _section(data: Mapping[str, Any], name: str, keys: tuple[str, ...]) -> dict:
    return config_section(data, name, keys, owner="fadm training config")


def model_from_dict(section: Mapping[str, Any]) -> FADMConfig:
    """A renderer config from a `preset` (vox256 unless given) with overrides (`timesteps`, `unet: {...}`)."""
    section = dict(section)
    preset = section.pop("preset", "vox256")
    preset = PRESET_ALIASES.get(preset, preset)
    _check_training([(preset in PRESETS, f"unknown model preset {preset!r} (choose {', '.join(PRESETS)})")])
    values = PRESETS[preset]().to_dict()
    values["unet"].update(section.pop("unet", None) or {})
    values.update(section)
    return FADMConfig.from_dict(values)


def coarse_from_dict(section: Mapping[str, Any], image_size: int, base: str | os.PathLike = ".") -> FOMMConfig:
    """FOMM's settings: `official_config` (an official FOMM YAML) or `FOMMConfig` fields; at the
    renderer's image size."""
    section = dict(section)
    official = section.pop("official_config", None)
    if official is not None:
        _check_training([(not section, "coarse: give official_config or FOMM settings, not both")])
        return read_fomm_config(Path(base) / official, image_size)
    return _build(FOMMConfig, {"image_size": image_size, **section}, "coarse")


def read_fomm_config(path: str | os.PathLike, image_size: int) -> FOMMConfig:
    """The FOMM animator of an official YAML (`model_params`, as config/vox-256_fomm.yaml)."""
    data = fileio.read_yaml_mapping(path)
    if "model_params" not in data:
        raise InputError(path, "is not an official FOMM config (no model_params)")
    try:
        return FOMMConfig.from_official(data["model_params"], image_size=image_size)
    except InputError as err:
        raise InputError(path, err.problem) from None


def packaged_configs() -> list[str]:
    """Names of the FADM training configs shipped with faceanim (`configs/*.yaml`)."""
    return fileio.packaged_configs(__package__)


def load_train_config(source: str | os.PathLike) -> FADMTrainConfig:
    """A training config from a YAML file or a packaged name (`tiny.yaml`, `vox256`)."""
    # a file the config names (an official FOMM YAML) keeps the blame for its own errors
    return fileio.load_config(source, __package__,
                              lambda data: FADMTrainConfig.from_dict(data, base=Path(source).parent))
