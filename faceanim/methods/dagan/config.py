"""DaGAN network settings: typed, validated, and convertible from the official YAML `model_params`.

Presets: `vox256()` is the released model (vox-adv-256 with `--kp_num 15 --rgbd`, DepthAwareGenerator,
ResNet-18 depth network); `tiny()` has small widths for fast CPU tests.

Training settings: `DaGANTrainConfig` (the official train_params/dataset_params) and `DepthTrainConfig`
(the self-supervised depth stage), read by `load_train_config` from our YAML layout, from the packaged
`configs/*.yaml` (vox256, tiny, depth, depth_tiny) or from an official DaGAN YAML.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from ... import fileio
from ...errors import InputError
from ...settings import (AugmentationParams, NestedSettings, config_section, official_section, settings_builder,
                          settings_checker)

GENERATORS = ("DepthAwareGenerator", "SPADEDepthAwareGenerator")
KP_INPUT_CHANNELS = {"rgb": 3, "depth": 1, "rgbd": 4}   # what the keypoint detector sees
DEPTH_LAYERS = (18, 50)
OWNER = "dagan config"


_check, _build = settings_checker(OWNER), settings_builder(OWNER)


def _downsamples_cleanly(size: int, scale: float, num_blocks: int) -> bool:
    """True when `size` scaled by 1/int(1/scale) is an integer divisible by 2**num_blocks."""
    step = round(1 / scale)
    return abs(1 / scale - step) < 1e-9 and size % step == 0 and (size // step) % 2 ** num_blocks == 0


@dataclass(frozen=True)
class KeypointDetectorConfig:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    temperature: float = 0.1          # softmax temperature of the keypoint heatmaps
    scale_factor: float = 0.25        # the detector runs at this fraction of the image size
    single_jacobian_map: bool = False
    pad: int = 0                      # padding of the 7x7 heatmap/Jacobian convs (0: 64 -> 58 heatmaps)

    def __post_init__(self):
        _check([(self.block_expansion >= 1 and self.max_features >= 1, "kp widths must be >= 1"),
                (self.num_blocks >= 1, "kp num_blocks must be >= 1"),
                (self.temperature > 0, "kp temperature must be > 0"),
                (0 < self.scale_factor <= 1, "kp scale_factor must be in (0, 1]"),
                (0 <= self.pad <= 3, "kp pad must be in [0, 3]")])


@dataclass(frozen=True)
class DenseMotionConfig:
    block_expansion: int = 64
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 0.25        # flow resolution as a fraction of the image size
    kp_variance: float = 0.01         # variance of the keypoint Gaussians, in [-1, 1] units

    def __post_init__(self):
        _check([(self.block_expansion >= 1 and self.max_features >= 1, "dense motion widths must be >= 1"),
                (self.num_blocks >= 1, "dense motion num_blocks must be >= 1"),
                (0 < self.scale_factor <= 1, "dense motion scale_factor must be in (0, 1]"),
                (self.kp_variance > 0, "kp_variance must be > 0")])


@dataclass(frozen=True)
class GeneratorConfig:
    kind: str = "DepthAwareGenerator"
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 6
    estimate_occlusion_map: bool = True
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)

    def __post_init__(self):
        bottleneck = min(self.max_features, self.block_expansion * 2 ** self.num_down_blocks)
        _check([(self.kind in GENERATORS, f"generator kind must be one of {', '.join(GENERATORS)}"),
                (self.num_down_blocks >= 1 and self.num_bottleneck_blocks >= 0, "generator block counts"),
                (bottleneck >= 8, "generator bottleneck width must be >= 8 (attention uses width // 8)"),
                (self.kind != "SPADEDepthAwareGenerator" or self.num_down_blocks == 2,
                 "SPADEDepthAwareGenerator needs num_down_blocks 2 (its decoder upsamples twice)")])

    @property
    def bottleneck_width(self) -> int:
        return min(self.max_features, self.block_expansion * 2 ** self.num_down_blocks)


@dataclass(frozen=True)
class DiscriminatorConfig:
    scales: tuple[float, ...] = (1,)
    block_expansion: int = 32
    max_features: int = 512
    num_blocks: int = 4
    sn: bool = False                  # spectral norm on every conv
    use_kp: bool = True               # concatenate keypoint heatmaps to the image
    kp_variance: float = 0.01

    def __post_init__(self):
        object.__setattr__(self, "scales", tuple(self.scales))
        _check([(len(self.scales) >= 1 and all(0 < s <= 1 for s in self.scales),
                 "discriminator scales must be in (0, 1]"),
                (self.num_blocks >= 1, "discriminator num_blocks must be >= 1")])


@dataclass(frozen=True)
class DaGANConfig(NestedSettings):
    settings_owner = OWNER

    num_kp: int = 15
    num_channels: int = 3             # image channels of the generator (and of the discriminator)
    kp_input: str = "rgbd"            # keypoint detector input: "rgbd" (released), "rgb" or "depth"
    estimate_jacobian: bool = True
    image_size: int = 256             # the square frame size the model works at
    depth_layers: int = 18            # ResNet depth encoder: 18 (released weights_19) or 50 (training HEAD)
    kp_detector: KeypointDetectorConfig = field(default_factory=KeypointDetectorConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self):
        kp, motion = self.kp_detector, self.generator.dense_motion
        _check([(self.num_kp >= 1 and self.num_channels >= 1, "num_kp and num_channels must be >= 1"),
                (self.kp_input in KP_INPUT_CHANNELS, f"kp_input must be one of {', '.join(KP_INPUT_CHANNELS)}"),
                (self.depth_layers in DEPTH_LAYERS, "depth_layers must be 18 or 50"),
                (self.image_size % 32 == 0, "image_size must be a multiple of 32 (the depth ResNet's stride)"),
                (self.image_size % 2 ** self.generator.num_down_blocks == 0,
                 "image_size must be divisible by 2**generator.num_down_blocks"),
                (_downsamples_cleanly(self.image_size, kp.scale_factor, kp.num_blocks),
                 "image_size * kp scale_factor must be divisible by 2**kp num_blocks (scale 1/integer)"),
                (self.image_size * kp.scale_factor - 6 + 2 * kp.pad >= 1, "keypoint heatmaps would be empty"),
                (_downsamples_cleanly(self.image_size, motion.scale_factor, motion.num_blocks),
                 "image_size * dense motion scale_factor must be divisible by 2**num_blocks (scale 1/integer)")])

    @property
    def kp_channels(self) -> int:
        return KP_INPUT_CHANNELS[self.kp_input]

    @classmethod
    def from_official(cls, model_params: Mapping[str, Any], *, generator: str = "DepthAwareGenerator",
                      kp_input: str = "rgbd", depth_layers: int = 18, image_size: int = 256,
                      num_kp: int | None = None) -> "DaGANConfig":
        """From the official YAML `model_params` (`common_params`, `kp_detector_params`,
        `generator_params`, `discriminator_params`; the short names `common`, `kp`, `gen`, `disc` too),
        plus what the official CLI sets: `--generator`, `--rgbd`/`--use_depth` (kp_input), `--kp_num`."""
        common = official_section(model_params, "common")
        generator_params = official_section(model_params, "generator")
        dense_motion = generator_params.pop("dense_motion_params", {})
        generator_params = {**generator_params, "kind": generator,
                            "dense_motion": _build(DenseMotionConfig, dense_motion, "dense_motion_params")}
        discriminator = {k: v for k, v in official_section(model_params, "discriminator").items()
                         if k not in ("num_kp", "num_channels")}
        return cls(num_kp=num_kp if num_kp is not None else common.get("num_kp", 15),
                   num_channels=common.get("num_channels", 3), kp_input=kp_input,
                   estimate_jacobian=common.get("estimate_jacobian", True), image_size=image_size,
                   depth_layers=depth_layers,
                   kp_detector=_build(KeypointDetectorConfig, official_section(model_params, "kp_detector"),
                                      "kp_detector"),
                   generator=_build(GeneratorConfig, generator_params, "generator_params"),
                   discriminator=_build(DiscriminatorConfig, discriminator, "discriminator_params"))


def vox256() -> DaGANConfig:
    """The released DaGAN (vox-adv-256 with --kp_num 15 --rgbd, DepthAwareGenerator, ResNet-18 depth)."""
    return DaGANConfig()


def tiny() -> DaGANConfig:
    """Small widths at 64x64 for fast CPU tests (same structure as vox256)."""
    return DaGANConfig(
        num_kp=5, image_size=64,
        kp_detector=KeypointDetectorConfig(block_expansion=8, max_features=32, num_blocks=3),
        generator=GeneratorConfig(block_expansion=8, max_features=32, num_bottleneck_blocks=1,
                                  dense_motion=DenseMotionConfig(block_expansion=8, max_features=32, num_blocks=3)),
        discriminator=DiscriminatorConfig(block_expansion=8, max_features=32, num_blocks=3))


# ------------------------------------------------------------------------------------- training

KP_DISTANCE_MODES = ("hinge", "official")
PRESETS = {"vox256": vox256, "tiny": tiny}


@dataclass(frozen=True)
class LossWeights:
    """The official `train_params.loss_weights` (0 turns a term off). `kp_prior` and `kp_scale`, which
    the released setup leaves at 0, are not offered."""

    generator_gan: float = 1.0
    discriminator_gan: float = 1.0
    feature_matching: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0)   # one per discriminator block
    perceptual: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0, 10.0)   # VGG-19 relu1_1 .. relu5_1
    equivariance_value: float = 10.0
    equivariance_jacobian: float = 10.0
    kp_distance: float = 10.0
    depth_constraint: float = 0.0      # L1 between the driving depth and the prediction's depth

    def __post_init__(self):
        for name in ("feature_matching", "perceptual"):
            object.__setattr__(self, name, tuple(float(w) for w in getattr(self, name)))
        scalars = [v for v in dataclasses.astuple(self) if not isinstance(v, tuple)]
        _check([(len(self.perceptual) == 5, "loss_weights.perceptual needs 5 values (relu1_1 .. relu5_1)"),
                (min(scalars + list(self.feature_matching) + list(self.perceptual)) >= 0,
                 "loss weights must be >= 0")])


@dataclass(frozen=True)
class WarpParams:
    """The random affine + thin-plate-spline warp of the equivariance losses (`transform_params`)."""

    sigma_affine: float = 0.05
    sigma_tps: float = 0.005
    points_tps: int = 5

    def __post_init__(self):
        _check([(self.sigma_affine >= 0 and self.sigma_tps >= 0, "transform sigmas must be >= 0"),
                (self.points_tps >= 2, "transform points_tps must be >= 2")])


@dataclass(frozen=True)
class WeightFiles:
    """Local weight files a training run reads (None: from the command line or environment).

    DaGAN stage: depth_encoder/depth_decoder (the frozen Monodepth2 `encoder.pth`/`depth.pth`), vgg19
    (torchvision-format VGG-19 for the perceptual loss) and init (a converted DaGAN folder or official
    `*.pth.tar` to start from). Depth stage: resnet (a torchvision-format ImageNet ResNet that both
    encoders start from, as the released depth network did; None starts from random weights).
    Relative paths are relative to the working directory."""

    depth_encoder: str | None = None
    depth_decoder: str | None = None
    vgg19: str | None = None
    init: str | None = None
    resnet: str | None = None


def _positive(config: Any, names: tuple[str, ...]) -> list[tuple[bool, str]]:
    return [(getattr(config, name) > 0, f"{name} must be > 0") for name in names]


@dataclass(frozen=True)
class DaGANTrainConfig:
    """How DaGAN is trained: the official `train_params`, `dataset_params` and run.py flags.

    Schedules are in epochs, as the official ones: an epoch is one pass over the dataset (identities or
    videos, times `num_repeats`) in batches of `batch_size` per process. The training module turns
    epochs into trainer steps. `trainer` holds further `TrainerConfig` settings (log_every, sample_every,
    mixed_precision, num_workers, ema_decay, seed, ...); a `checkpoint_every` there (steps) wins over
    `checkpoint_freq` (epochs). kp_distance_mode "official" is the released code's sign() form, whose
    gradient is zero; "hinge" (the default) penalises the same keypoint pairs with a gradient."""

    model: DaGANConfig = field(default_factory=vox256)
    loss_weights: LossWeights = field(default_factory=LossWeights)
    transform_params: WarpParams = field(default_factory=WarpParams)
    scales: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)   # perceptual pyramid
    kp_distance_mode: str = "hinge"
    kp_distance_margin: float = 0.2     # keypoints closer than this are pushed apart
    lr_generator: float = 2e-4
    lr_discriminator: float = 2e-4
    lr_kp_detector: float = 2e-4
    adam_betas: tuple[float, float] = (0.5, 0.999)
    epoch_milestones: tuple[int, ...] = ()   # learning rates x0.1 at these epochs
    num_epochs: int = 150
    num_repeats: int = 75
    batch_size: int = 4                 # per process
    checkpoint_freq: float = 10         # epochs between checkpoints
    id_sampling: bool = True
    augmentation: AugmentationParams = field(default_factory=AugmentationParams)
    trainer: dict = field(default_factory=dict)
    weights: WeightFiles = field(default_factory=WeightFiles)

    def __post_init__(self):
        for name in ("scales", "adam_betas", "epoch_milestones"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "trainer", dict(self.trainer))
        weights, model = self.loss_weights, self.model
        _check(_positive(self, ("lr_generator", "lr_discriminator", "lr_kp_detector", "num_epochs",
                                "num_repeats", "batch_size", "checkpoint_freq", "kp_distance_margin"))
               + [(self.kp_distance_mode in KP_DISTANCE_MODES,
                   f"kp_distance_mode must be one of {', '.join(KP_DISTANCE_MODES)}"),
                  (bool(self.scales) and all(0 < s <= 1 for s in self.scales), "scales must be in (0, 1]"),
                  (not any(weights.perceptual) or model.image_size * min(self.scales) >= 16,
                   "the perceptual pyramid's smallest image must be at least 16 pixels (VGG-19 pools 4 times "
                   "before relu5_1)"),
                  (len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas),
                   "adam_betas must be two values in [0, 1)"),
                  (all(m >= 0 for m in self.epoch_milestones), "epoch_milestones must be >= 0"),
                  (not weights.generator_gan or len(weights.feature_matching) == model.discriminator.num_blocks,
                   f"loss_weights.feature_matching needs one value per discriminator block "
                   f"({model.discriminator.num_blocks})"),
                  (model.estimate_jacobian or not weights.equivariance_jacobian,
                   "equivariance_jacobian needs estimate_jacobian")])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DaGANTrainConfig":
        """From our YAML layout: sections `model` (a `preset` plus overrides), `train`, `dataset`,
        `trainer` and `weights`."""
        _known_sections(data, ("stage", "model", "train", "dataset", "trainer", "weights"))
        train = _section(data, "train", ("loss_weights", "transform_params", "scales", "kp_distance_mode",
                                         "kp_distance_margin", "lr_generator", "lr_discriminator",
                                         "lr_kp_detector", "adam_betas", "epoch_milestones", "num_epochs",
                                         "num_repeats", "batch_size", "checkpoint_freq"))
        dataset = _section(data, "dataset", ("id_sampling", "augmentation"))
        nested = {"loss_weights": LossWeights, "transform_params": WarpParams, "augmentation": AugmentationParams}
        values = {**train, **dataset}
        for name, sub_cls in nested.items():
            if name in values:
                values[name] = _build(sub_cls, values[name] or {}, name)
        return cls(model=model_from_dict(data.get("model") or {}), trainer=dict(data.get("trainer") or {}),
                   weights=_build(WeightFiles, data.get("weights") or {}, "weights"), **values)

    @classmethod
    def from_official(cls, data: Mapping[str, Any], *, num_kp: int | None = None) -> "DaGANTrainConfig":
        """From an official YAML (config/vox-adv-256.yaml) as run.py trains it with `--rgbd --generator
        DepthAwareGenerator` (`num_kp` is its `--kp_num`; None keeps the file's value)."""
        train = dict(data.get("train_params") or {})
        dataset = dict(data.get("dataset_params") or {})
        frame_shape = dataset.get("frame_shape") or [256]
        model = DaGANConfig.from_official(data.get("model_params") or {}, kp_input="rgbd",
                                          image_size=int(frame_shape[0]), num_kp=num_kp)
        loss_weights = dict(train.pop("loss_weights", None) or {})
        unsupported = [name for name in ("kp_prior", "kp_scale") if loss_weights.pop(name, 0)]
        _check([(not unsupported, f"loss_weights {', '.join(unsupported)} are not supported (set them to 0)")])
        augmentation = dict(dataset.get("augmentation_params") or {})
        flips, jitter = augmentation.get("flip_param") or {}, augmentation.get("jitter_param") or {}
        return cls(model=model, loss_weights=_build(LossWeights, loss_weights, "loss_weights"),
                   transform_params=_build(WarpParams, train.pop("transform_params", None) or {}, "transform_params"),
                   id_sampling=bool(dataset.get("id_sampling", True)),
                   augmentation=_build(AugmentationParams, {**flips, **jitter}, "augmentation_params"),
                   **_official_train_params(train))


def _official_train_params(train: Mapping[str, Any]) -> dict:
    names = ("num_epochs", "num_repeats", "epoch_milestones", "lr_generator", "lr_discriminator",
             "lr_kp_detector", "batch_size", "scales", "checkpoint_freq")
    unknown = sorted(set(train) - set(names))
    _check([(not unknown, f"unknown train_params settings: {', '.join(unknown)}")])
    return dict(train)


def _known_sections(data: Mapping[str, Any], sections: tuple[str, ...]) -> None:
    unknown = sorted(set(data) - set(sections))
    _check([(not unknown, f"unknown sections {', '.join(unknown)} (expected {', '.join(sections)})")])


def _section(data: Mapping[str, Any], name: str, keys: tuple[str, ...]) -> dict:
    return config_section(data, name, keys, owner="dagan config")


def _merged(base: dict, overrides: Mapping[str, Any]) -> dict:
    """`base` with `overrides` applied, nested mappings merged key by key."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def model_from_dict(section: Mapping[str, Any]) -> DaGANConfig:
    """A model config from a `preset` name (vox256 unless given) with nested overrides."""
    section = dict(section)
    preset = section.pop("preset", "vox256")
    _check([(preset in PRESETS, f"unknown model preset {preset!r} (choose {', '.join(PRESETS)})")])
    return DaGANConfig.from_dict(_merged(PRESETS[preset]().to_dict(), section))


@dataclass(frozen=True)
class DepthTrainConfig:
    """Self-supervised training of the face-depth network (Face-Depth-Network: Monodepth2 whose pose
    network also predicts the camera intrinsics).

    Defaults are the released network's options (DaGAN's `depth/models/opt.json`): ResNet-18, 224x224
    frames, frames (0, -1, +1), 4 scales, batch 64, learning rate 1e-5 (Monodepth2's own default is
    1e-4), 20 epochs of 100000 samples, learning rate x0.1 after 15 epochs, smoothness 1e-3, depth range
    0.1-100, auto-masking and SSIM on; colour jitter (0.2, 0.2, 0.2, 0.1) on half the items, as
    Monodepth2."""

    num_layers: int = 18
    image_size: int = 224
    num_scales: int = 4
    min_depth: float = 0.1
    max_depth: float = 100.0
    frame_stride: int = 1              # frames between the target frame and each neighbour
    disparity_smoothness: float = 1e-3
    ssim_weight: float = 0.85
    automask: bool = True
    learning_rate: float = 1e-5
    scheduler_step_size: int = 15      # epochs
    num_epochs: int = 20
    samples_per_epoch: int = 100_000   # FDN's sample_num
    batch_size: int = 64               # per process
    checkpoint_freq: float = 1         # epochs
    augmentation: AugmentationParams = field(default_factory=lambda: AugmentationParams(
        time_flip=False, brightness=0.2, contrast=0.2, saturation=0.2, hue=0.1))
    jitter_probability: float = 0.5
    trainer: dict = field(default_factory=dict)
    weights: WeightFiles = field(default_factory=WeightFiles)

    def __post_init__(self):
        object.__setattr__(self, "trainer", dict(self.trainer))
        _check(_positive(self, ("image_size", "num_scales", "min_depth", "frame_stride", "learning_rate",
                                "scheduler_step_size", "num_epochs", "samples_per_epoch", "batch_size",
                                "checkpoint_freq"))
               + [(self.num_layers in (18, 34, 50), "depth num_layers must be 18, 34 or 50"),
                  (self.image_size % 32 == 0, "depth image_size must be a multiple of 32"),
                  (self.num_scales <= 4, "depth num_scales must be at most 4"),
                  (self.max_depth > self.min_depth, "max_depth must exceed min_depth"),
                  (0 <= self.ssim_weight <= 1 and 0 <= self.jitter_probability <= 1,
                   "ssim_weight and jitter_probability must be in [0, 1]")])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DepthTrainConfig":
        """From our YAML layout: sections `model`, `train`, `dataset`, `trainer`, `weights`."""
        _known_sections(data, ("stage", "model", "train", "dataset", "trainer", "weights"))
        values = {**_section(data, "model", ("num_layers", "image_size", "num_scales", "min_depth", "max_depth")),
                  **_section(data, "train", ("disparity_smoothness", "ssim_weight", "automask", "learning_rate",
                                             "scheduler_step_size", "num_epochs", "samples_per_epoch",
                                             "batch_size", "checkpoint_freq")),
                  **_section(data, "dataset", ("frame_stride", "augmentation", "jitter_probability"))}
        if "augmentation" in values:
            values["augmentation"] = _build(AugmentationParams, values["augmentation"] or {}, "augmentation")
        return cls(trainer=dict(data.get("trainer") or {}),
                   weights=_build(WeightFiles, data.get("weights") or {}, "weights"), **values)


TrainConfig = DaGANTrainConfig | DepthTrainConfig


def packaged_configs() -> list[str]:
    """Names of the DaGAN training configs shipped with faceanim (`configs/*.yaml`)."""
    return fileio.packaged_configs(__package__)


def load_train_config(source: str | os.PathLike) -> TrainConfig:
    """A training config from a YAML file or a packaged name (`tiny.yaml`, `vox256`, `depth.yaml`, ...).

    Our layout says `stage: dagan` (the default) or `stage: depth`; an official DaGAN YAML
    (`model_params`/`train_params`, e.g. vox-adv-256.yaml) is recognised and mapped."""
    data = fileio.read_yaml_mapping(fileio.config_file(source, __package__), name=source)
    try:
        if "model_params" in data or "train_params" in data:
            return DaGANTrainConfig.from_official(data)
        stage = data.get("stage", "dagan")
        if stage not in ("dagan", "depth"):
            raise InputError(None, f"stage must be dagan or depth, not {stage!r}")
        return (DepthTrainConfig if stage == "depth" else DaGANTrainConfig).from_dict(data)
    except InputError as err:
        raise InputError(source, err.problem) from None
    except (TypeError, ValueError) as err:
        raise InputError(source, f"invalid setting ({err})") from None
