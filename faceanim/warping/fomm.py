"""FOMM (Siarohin et al. 2019): keypoint detector with Jacobians + occlusion-aware generator, built from
the shared blocks, and loading of FOMM checkpoints (`FOMM.pth` as FADM ships it, or FOMM's own
`vox-cpk.pth.tar`: state dicts under `kp_detector` and `generator`).

FADM trains its renderer on FOMM's coarse frames (absolute motion: the driving keypoints as they are);
`FOMMModel.animate` also offers FOMM's relative motion for inference.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import torch
from torch import nn

from ..checkpoints import load_checkpoint, load_into, state_dict_from
from ..errors import InputError
from .animator import MotionOptions
from .generator import OcclusionAwareGenerator
from .keypoints import Keypoints, KPDetector
from .motion import normalize_keypoints


@dataclass(frozen=True)
class FOMMConfig:
    """FOMM's `model_params` (defaults: `vox-256.yaml`, 10 keypoints with Jacobians)."""

    num_kp: int = 10
    num_channels: int = 3
    estimate_jacobian: bool = True
    kp_detector: dict = field(default_factory=lambda: dict(temperature=0.1, block_expansion=32, max_features=1024,
                                                           scale_factor=0.25, num_blocks=5))
    generator: dict = field(default_factory=lambda: dict(
        block_expansion=64, max_features=512, num_down_blocks=2, num_bottleneck_blocks=6,
        estimate_occlusion_map=True,
        dense_motion_params=dict(block_expansion=64, max_features=1024, num_blocks=5, scale_factor=0.25)))
    image_size: int = 256

    @classmethod
    def from_official(cls, model_params: Mapping[str, Any], image_size: int = 256) -> "FOMMConfig":
        """From an official YAML's `model_params` (common_params, kp_detector_params, generator_params)."""
        try:
            common = dict(model_params["common_params"])
            return cls(num_kp=int(common["num_kp"]), num_channels=int(common.get("num_channels", 3)),
                       estimate_jacobian=bool(common.get("estimate_jacobian", True)),
                       kp_detector=dict(model_params["kp_detector_params"]),
                       generator=dict(model_params["generator_params"]), image_size=image_size)
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(None, f"FOMM config: missing or bad entry {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FOMMModel(nn.Module):
    def __init__(self, config: FOMMConfig = FOMMConfig()):
        super().__init__()
        self.config = config
        common = dict(num_kp=config.num_kp, num_channels=config.num_channels,
                      estimate_jacobian=config.estimate_jacobian)
        self.kp_detector = KPDetector(**config.kp_detector, **common)
        self.generator = OcclusionAwareGenerator(**config.generator, **common)

    def keypoints(self, images: torch.Tensor) -> Keypoints:
        return self.kp_detector(images)

    def animate(self, source: torch.Tensor, kp_source: Keypoints, kp_driving: Keypoints,
                kp_initial: Keypoints | None = None, motion: MotionOptions = MotionOptions(relative=False)
                ) -> torch.Tensor:
        """Frames (B, 3, S, S) in [0, 1]: `source` (1 or B images) moved like `kp_driving`; relative
        motion is measured from `kp_initial` (FOMM's `normalize_kp`)."""
        if motion.relative or motion.adapt_scale:
            if kp_initial is None:
                raise ValueError("relative motion / adapt-scale need the initial driving keypoints")
            kp_driving = normalize_keypoints(kp_source, kp_driving, kp_initial, relative=motion.relative,
                                             adapt_scale=motion.adapt_scale)
        return self.generator(source, kp_driving=kp_driving, kp_source=kp_source)["prediction"]


def build_fomm(config: FOMMConfig) -> FOMMModel:
    """`FOMMModel(config)`, or InputError when the config's network parameters are not FOMM's (an official
    YAML of another model, a misspelt key, a value of the wrong type)."""
    try:
        return FOMMModel(config)
    except (TypeError, ValueError) as error:
        raise InputError(None, f"FOMM config: its networks cannot be built from these parameters ({error})") from None


def load_fomm(path: str | os.PathLike, config: FOMMConfig | None = None, *, strict: bool = True) -> FOMMModel:
    """A FOMM model with the `kp_detector` and `generator` of checkpoint `path` (weights-only loading;
    `module.` prefixes of DataParallel checkpoints are stripped)."""
    model = build_fomm(config or FOMMConfig())
    contents = load_checkpoint(path)
    for name in ("kp_detector", "generator"):
        load_into(getattr(model, name), state_dict_from(contents, name, path=path), strict=strict, source=path)
    return model.eval()
