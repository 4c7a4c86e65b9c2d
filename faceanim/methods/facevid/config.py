"""face-vid2vid network settings: typed, validated, convertible from the official `model_params`, and read
from an official YAML.

`vox256()` is the released model (config/vox-256.yaml of the zhanglonghao1992 re-implementation, as
vendored by FADM), with the dense-motion settings its generator hard-codes; `tiny()` has small widths for
fast CPU tests. `from_official` reads the YAML's `model_params` or the short form of the parity fixtures
(`common`, `kp`, `he`, `gen`); `read_official_config` reads the YAML file itself.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from ...errors import InputError
from ...fileio import read_official_model_params
from ...nn.blocks import hourglass_width
from ...settings import NestedSettings, official_section, settings_builder, settings_checker

OWNER = "facevid config"
_check, _build = settings_checker(OWNER), settings_builder(OWNER)


@dataclass(frozen=True)
class KeypointDetectorConfig:
    """The canonical-keypoint detector: a 2-D encoder, a 1x1 conv to `reshape_channel` channels viewed
    as (reshape_channel / reshape_depth) x reshape_depth volumes, and a 3-D decoder."""

    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    reshape_channel: int = 16384
    reshape_depth: int = 16
    temperature: float = 0.1          # softmax temperature of the keypoint heatmaps
    scale_factor: float = 0.25        # the detector runs at this fraction of the image size

    def __post_init__(self):
        bottom = hourglass_width(self.block_expansion, self.num_blocks, self.max_features)
        _check([(min(self.block_expansion, self.max_features, self.num_blocks) >= 1, "kp sizes must be >= 1"),
                (self.temperature > 0, "kp temperature must be > 0"),
                (0 < self.scale_factor <= 1, "kp scale_factor must be in (0, 1]"),
                (self.reshape_depth >= 1 and self.reshape_channel == bottom * self.reshape_depth,
                 f"kp reshape_channel must be reshape_depth * {bottom} (the encoder's last width)")])


@dataclass(frozen=True)
class HeadPoseConfig:
    """The head-pose and expression estimator (a ResNet-50-like bottleneck net). The official constructor
    fixes its four stage widths at 256, 512, 1024, 2048 (`from_official` keeps them); smaller ones serve
    tests."""

    block_expansion: int = 64         # the stem's width
    num_bins: int = 66                # yaw/pitch/roll classes of 3 degrees each, from -99 degrees
    stage_widths: tuple[int, int, int, int] = (256, 512, 1024, 2048)

    def __post_init__(self):
        object.__setattr__(self, "stage_widths", tuple(int(w) for w in self.stage_widths))
        _check([(self.block_expansion >= 1 and self.num_bins >= 1, "he sizes must be >= 1"),
                (len(self.stage_widths) == 4 and all(w >= 4 and w % 4 == 0 for w in self.stage_widths),
                 "he stage_widths must be 4 multiples of 4 (the bottlenecks work at a quarter width)")])


@dataclass(frozen=True)
class DenseMotionConfig:
    """The 3-D dense-motion network. The released generator builds it with these values whatever its
    YAML says; the reduced parity fixture uses smaller widths."""

    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    reshape_depth: int = 16           # the feature volume's depth (the occlusion conv flattens it)
    compress: int = 4                 # channels the source features are compressed to before warping
    kp_variance: float = 0.01

    def __post_init__(self):
        _check([(min(self.block_expansion, self.max_features, self.num_blocks, self.compress) >= 1,
                 "dense motion sizes must be >= 1"),
                (self.kp_variance > 0, "dense motion kp_variance must be > 0")])


@dataclass(frozen=True)
class GeneratorConfig:
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    reshape_channel: int = 32         # the encoder output is viewed as reshape_channel x reshape_depth volumes
    reshape_depth: int = 16
    num_resblocks: int = 6
    estimate_occlusion_map: bool = True
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)

    def __post_init__(self):
        _check([(min(self.block_expansion, self.num_down_blocks, self.reshape_depth) >= 1
                 and self.num_resblocks >= 0, "generator sizes must be >= 1"),
                (self.max_features == self.reshape_channel * self.reshape_depth,
                 "generator max_features must be reshape_channel * reshape_depth"),
                (self.dense_motion.reshape_depth == self.reshape_depth,
                 "dense motion reshape_depth must equal the generator's")])

    @property
    def decoder_width(self) -> int:
        """Channels of the 2-D features the decoder starts from (not capped by max_features)."""
        return self.block_expansion * 2 ** self.num_down_blocks


@dataclass(frozen=True)
class FaceVidConfig(NestedSettings):
    settings_owner = OWNER

    num_kp: int = 15
    image_channel: int = 3
    feature_channel: int = 32         # channels of the generator's 3-D features (= its reshape_channel)
    estimate_jacobian: bool = False
    image_size: int = 256
    kp_detector: KeypointDetectorConfig = field(default_factory=KeypointDetectorConfig)
    he_estimator: HeadPoseConfig = field(default_factory=HeadPoseConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)

    def __post_init__(self):
        kp, gen = self.kp_detector, self.generator
        kp_size = self.image_size * kp.scale_factor
        feature_size = self.image_size // 2 ** gen.num_down_blocks
        _check([(self.num_kp >= 1 and self.image_channel >= 1, "num_kp and image_channel must be >= 1"),
                (self.feature_channel == gen.reshape_channel, "feature_channel must equal generator reshape_channel"),
                (abs(kp_size - round(kp_size)) < 1e-9 and round(kp_size) % 2 ** kp.num_blocks == 0
                 and round(1 / kp.scale_factor) * round(kp_size) == self.image_size,
                 "image_size * kp scale_factor must be an integer divisible by 2**kp num_blocks"),
                (self.image_size % 2 ** gen.num_down_blocks == 0
                 and feature_size % 2 ** gen.dense_motion.num_blocks == 0,
                 "image_size / 2**num_down_blocks must be divisible by 2**dense motion num_blocks"),
                (self.image_size % 32 == 0, "image_size must be a multiple of 32 (the head-pose net's stride)")])

    @classmethod
    def from_official(cls, model_params: Mapping[str, Any], *, image_size: int = 256) -> "FaceVidConfig":
        """From the official YAML `model_params` (`common_params`, `kp_detector_params`,
        `he_estimator_params`, `generator_params`) or the fixtures' short names (`common`, `kp`, `he`, `gen`).

        `dense_motion_params` is honoured when given (the released YAML's equal the values the released
        generator hard-codes); the discriminator's settings are not needed here and are ignored."""
        common = official_section(model_params, "common")
        he = official_section(model_params, "he_estimator")
        he.pop("max_features", None)   # taken by the official constructor, which never uses it
        gen = official_section(model_params, "generator")
        gen["dense_motion"] = _build(DenseMotionConfig, gen.pop("dense_motion_params", None) or {},
                                     "dense_motion_params")
        return cls(num_kp=common.get("num_kp", 15), image_channel=common.get("image_channel", 3),
                   feature_channel=common.get("feature_channel", 32),
                   estimate_jacobian=common.get("estimate_jacobian", False), image_size=image_size,
                   kp_detector=_build(KeypointDetectorConfig, official_section(model_params, "kp_detector"),
                                      "kp_detector"),
                   he_estimator=_build(HeadPoseConfig, he, "he_estimator"),
                   generator=_build(GeneratorConfig, gen, "generator"))


def read_official_config(path: str | os.PathLike) -> FaceVidConfig:
    """The model of an official YAML (config/vox-256.yaml of the re-implementation or of FADM); the frame
    size comes from `dataset_params.frame_shape`."""
    model_params, frame_size = read_official_model_params(path, "face-vid2vid")
    try:
        return FaceVidConfig.from_official(model_params, image_size=frame_size)
    except InputError as err:
        raise InputError(path, err.problem) from None
    except TypeError as err:
        raise InputError(path, f"invalid setting ({err})") from None


def vox256() -> FaceVidConfig:
    """The released face-vid2vid (config/vox-256.yaml, `Facevid.pth`)."""
    return FaceVidConfig()


def tiny() -> FaceVidConfig:
    """Small widths at 64x64 for fast CPU tests (same structure as vox256)."""
    return FaceVidConfig(
        num_kp=4, feature_channel=4, image_size=64,
        kp_detector=KeypointDetectorConfig(block_expansion=4, max_features=16, num_blocks=2, reshape_channel=32,
                                           reshape_depth=2, scale_factor=0.5),
        he_estimator=HeadPoseConfig(block_expansion=8, stage_widths=(16, 32, 64, 128)),
        generator=GeneratorConfig(block_expansion=4, max_features=16, reshape_channel=4, reshape_depth=4,
                                  num_resblocks=1,
                                  dense_motion=DenseMotionConfig(block_expansion=4, max_features=16, num_blocks=2,
                                                                 reshape_depth=4, compress=2)))


PRESETS = {"vox256": vox256, "tiny": tiny}

