"""DaGAN network settings: typed, validated, and convertible from the official YAML `model_params`.

Presets: `vox256()` is the released model (vox-adv-256 with `--kp_num 15 --rgbd`, DepthAwareGenerator,
ResNet-18 depth network); `tiny()` has small widths for fast CPU tests.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ...errors import InputError

GENERATORS = ("DepthAwareGenerator", "SPADEDepthAwareGenerator")
KP_INPUT_CHANNELS = {"rgb": 3, "depth": 1, "rgbd": 4}   # what the keypoint detector sees
DEPTH_LAYERS = (18, 50)


def _check(checks: list[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise InputError(None, f"dagan config: {message}")


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
class DaGANModelConfig:
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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DaGANModelConfig":
        """Inverse of `to_dict`; unknown keys raise InputError."""
        data = dict(data)
        sub = {"kp_detector": KeypointDetectorConfig, "discriminator": DiscriminatorConfig}
        for name, sub_cls in sub.items():
            if name in data:
                data[name] = _build(sub_cls, data[name], name)
        if "generator" in data:
            generator = dict(data["generator"])
            if "dense_motion" in generator:
                generator["dense_motion"] = _build(DenseMotionConfig, generator["dense_motion"], "dense_motion")
            data["generator"] = _build(GeneratorConfig, generator, "generator")
        return _build(cls, data, "model")

    @classmethod
    def from_official(cls, model_params: Mapping[str, Any], *, generator: str = "DepthAwareGenerator",
                      kp_input: str = "rgbd", depth_layers: int = 18, image_size: int = 256,
                      num_kp: int | None = None) -> "DaGANModelConfig":
        """From the official YAML `model_params` (`common_params`, `kp_detector_params`,
        `generator_params`, `discriminator_params`; the short names `common`, `kp`, `gen`, `disc` too),
        plus what the official CLI sets: `--generator`, `--rgbd`/`--use_depth` (kp_input), `--kp_num`."""
        def section(*names: str) -> dict:
            return dict(next((model_params[n] for n in names if n in model_params), {}))

        common = section("common_params", "common")
        generator_params = section("generator_params", "gen")
        dense_motion = generator_params.pop("dense_motion_params", {})
        generator_params = {**generator_params, "kind": generator,
                            "dense_motion": _build(DenseMotionConfig, dense_motion, "dense_motion_params")}
        discriminator = section("discriminator_params", "disc")
        discriminator = {k: v for k, v in discriminator.items() if k not in ("num_kp", "num_channels")}
        return cls(num_kp=num_kp if num_kp is not None else common.get("num_kp", 15),
                   num_channels=common.get("num_channels", 3), kp_input=kp_input,
                   estimate_jacobian=common.get("estimate_jacobian", True), image_size=image_size,
                   depth_layers=depth_layers,
                   kp_detector=_build(KeypointDetectorConfig, section("kp_detector_params", "kp"), "kp_detector"),
                   generator=_build(GeneratorConfig, generator_params, "generator_params"),
                   discriminator=_build(DiscriminatorConfig, discriminator, "discriminator_params"))


def _build(cls, values: Mapping[str, Any], where: str):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(None, f"dagan config: unknown {where} settings: {', '.join(unknown)}")
    return cls(**values)


def vox256() -> DaGANModelConfig:
    """The released DaGAN (vox-adv-256 with --kp_num 15 --rgbd, DepthAwareGenerator, ResNet-18 depth)."""
    return DaGANModelConfig()


def tiny() -> DaGANModelConfig:
    """Small widths at 64x64 for fast CPU tests (same structure as vox256)."""
    return DaGANModelConfig(
        num_kp=5, image_size=64,
        kp_detector=KeypointDetectorConfig(block_expansion=8, max_features=32, num_blocks=3),
        generator=GeneratorConfig(block_expansion=8, max_features=32, num_bottleneck_blocks=1,
                                  dense_motion=DenseMotionConfig(block_expansion=8, max_features=32, num_blocks=3)),
        discriminator=DiscriminatorConfig(block_expansion=8, max_features=32, num_blocks=3))
