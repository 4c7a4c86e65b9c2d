"""`DaGANPipeline`: DaGAN inference on face crops, behind `faceanim reenact --method dagan`.

Work done once per video is kept apart from work done per frame. `prepare_source` computes the source
tensor, its depth, its keypoints and the generator's source-side features (RGB encoder output and the
attention queries from the source depth); `animate_crops` then streams the driving crops in batches,
each batch getting its driving depth, keypoints and generation in one pass, with the source side
expanded rather than recomputed. Motion transfer follows the official demo's `normalize_kp`.

Precision "exact" is float32 throughout. "fast" runs the per-frame generator under autocast (bfloat16
on CPU, float16 on CUDA) while everything that becomes a position stays float32: the depth and
keypoint networks, the dense-motion network (it makes the sampling grid) and the attention logits and
softmax (`faceanim.nn.precision`); the source side is computed once, in float32. On CUDA, cuDNN's
TF32 is kept off in both modes, so float32 means float32.

The pipeline is a `CropAnimator` (crops in, crops out) and offers the `CoarseAnimator` view as well
(`driving_motion` gives keypoints, `animate` renders one frame) for FADM's refinement stage.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...warping.animator import MotionCropPipeline, MotionOptions
from ...warping.keypoints import Keypoints
from ...warping.motion import normalize_keypoints
from .config import DaGANConfig
from .model import DaGANModel, SourceFeatures
from .weights import load_model, save_converted


@dataclass
class DaGANSource:
    """A prepared source crop: image (1, 3, S, S) in [0, 1], disparity (1, 1, S, S), keypoints, and the
    generator's source-side features."""

    image: torch.Tensor
    depth: torch.Tensor
    keypoints: Keypoints
    features: SourceFeatures


class DaGANPipeline(MotionCropPipeline):
    """DaGAN on `crop_size` face crops (256 for the released model).

    The pipeline takes `model` over: it moves it to `device` (default: cuda if available, else cpu) in
    the channels-last layout and keeps it in eval mode. relative / adapt_scale: the default motion
    transfer (the official README's `--relative --adapt_scale`); batch_size: driving frames per forward
    pass; precision: "exact" (float32) or "fast" (autocast, see the module docstring)."""

    name = "dagan"
    model_name = "DaGAN"
    # channels-last suits oneDNN's and cuDNN's convolutions (about 1.2x on CPU here); the crops arrive in
    # that layout already (HWC arrays)
    channels_last = True

    def __init__(self, model: DaGANModel, *, device: str | torch.device | None = None, precision: str = "exact",
                 batch_size: int = 8, relative: bool = True, adapt_scale: bool = True):
        super().__init__(model, device=device, precision=precision, batch_size=batch_size, relative=relative,
                         adapt_scale=adapt_scale)

    @property
    def config(self) -> DaGANConfig:
        return self.model.config

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *, checkpoint: str | os.PathLike | None = None,
                        depth_encoder: str | os.PathLike | None = None,
                        depth_decoder: str | os.PathLike | None = None, config: str | os.PathLike | None = None,
                        kp_num: int | None = None, generator: str | None = None,
                        device: str | torch.device | None = None, precision: str = "exact", batch_size: int = 8,
                        relative: bool = True, adapt_scale: bool = True) -> "DaGANPipeline":
        """Load a converted folder (config.json + model.safetensors) or an official `*.pth.tar` with the
        depth network's `encoder.pth` and `depth.pth` (see `weights.load_model` for the rules, the
        environment-variable fallbacks and the official `--config`/`--kp_num`/`--generator`)."""
        model = load_model(path, checkpoint=checkpoint, depth_encoder=depth_encoder, depth_decoder=depth_decoder,
                           config=config, kp_num=kp_num, generator=generator)
        return cls(model, device=device, precision=precision, batch_size=batch_size, relative=relative,
                   adapt_scale=adapt_scale)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the model as a converted folder (loadable with `from_pretrained(folder)`)."""
        return save_converted(self.model, folder)

    # -- once per video ------------------------------------------------------------------------------
    @torch.inference_mode()
    def prepare_source(self, crop: np.ndarray) -> DaGANSource:
        """Depth, keypoints and generator features of the source crop (uint8 (S, S, 3) RGB), in float32."""
        image = self.to_tensor([crop])
        with self.backend_flags():
            depth, _ = self.model.depth(image)
            keypoints = self.model.keypoints(image, depth)
            features = self.model.encode_source(image, depth)
        return DaGANSource(image, depth, keypoints, features)

    # -- per frame -----------------------------------------------------------------------------------
    def motion_of(self, crops: list[np.ndarray]) -> Keypoints:
        return self.keypoints(crops)

    @torch.inference_mode()
    def keypoints(self, crops: list[np.ndarray]) -> Keypoints:
        """Keypoints (float32, with Jacobians) of a batch of crops, from their depth and RGB."""
        image = self.to_tensor(crops)
        with self.backend_flags():  # float32 in both modes: keypoint positions steer every sampling grid
            depth, _ = self.model.depth(image)
            return self.model.keypoints(image, depth)

    @torch.inference_mode()
    def generate(self, source: DaGANSource, kp_driving: Keypoints, kp_initial: Keypoints,
                 motion: MotionOptions | None = None) -> dict:
        """The generator's outputs (`prediction`, `prediction_logits`, `deformed`, ...) for a batch of
        driving keypoints, after the motion transfer (official `normalize_kp`)."""
        motion = motion or self.motion
        kp_target = normalize_keypoints(source.keypoints, kp_driving, kp_initial, relative=motion.relative,
                                        adapt_scale=motion.adapt_scale)
        with self.compute_context():
            return self.model.generate_from(source.features, source.keypoints, kp_target)

    def render_motion(self, source: DaGANSource, kp_driving: Keypoints, kp_initial: Keypoints,
                      motion: MotionOptions) -> list[np.ndarray]:
        """uint8 (S, S, 3) frames for a batch of driving keypoints."""
        logits = self.generate(source, kp_driving, kp_initial, motion)["prediction_logits"]
        # the sigmoid in float32: near 0 and 1 a half-precision prediction is a whole grey level coarse
        return self.to_crops(torch.sigmoid(logits.float()))
