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

import contextlib
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from ...errors import InputError
from ...nn.device import resolve_device
from ...media.convert import crops_to_tensor, from_tensor
from ...nn.precision import backend_flags, check_precision, compute_context
from ...warping.animator import MotionOptions
from ...warping.keypoints import Keypoints
from ...warping.motion import normalize_keypoints
from .config import DaGANModelConfig
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


class DaGANPipeline:
    """DaGAN on `crop_size` face crops (256 for the released model).

    The pipeline takes `model` over: it moves it to `device` (default: cuda if available, else cpu) in
    the channels-last layout and keeps it in eval mode. relative / adapt_scale: the default motion
    transfer (the official README's `--relative --adapt_scale`); batch_size: driving frames per forward
    pass; precision: "exact" (float32) or "fast" (autocast, see the module docstring)."""

    name = "dagan"

    def __init__(self, model: DaGANModel, *, device: str | torch.device | None = None, precision: str = "exact",
                 batch_size: int = 8, relative: bool = True, adapt_scale: bool = True):
        if int(batch_size) < 1:
            raise InputError(None, f"batch size must be >= 1, got {batch_size}")
        self.precision = check_precision(precision)
        self.device = resolve_device(device)
        # channels-last suits oneDNN's and cuDNN's convolutions (about 1.2x on CPU here); the crops arrive
        # in that layout already (HWC arrays)
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()
        self.batch_size = int(batch_size)
        self.motion = MotionOptions(relative=relative, adapt_scale=adapt_scale)

    @property
    def config(self) -> DaGANModelConfig:
        return self.model.config

    @property
    def crop_size(self) -> int:
        return self.model.config.image_size

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
        image = self._tensor([crop])
        with self._backend_flags():
            depth, _ = self.model.depth(image)
            keypoints = self.model.keypoints(image, depth)
            features = self.model.encode_source(image, depth)
        return DaGANSource(image, depth, keypoints, features)

    # -- per frame -----------------------------------------------------------------------------------
    def animate_crops(self, source: DaGANSource, driving_crops: Iterable[np.ndarray], initial: np.ndarray,
                      motion: MotionOptions | None = None) -> Iterator[np.ndarray]:
        """One uint8 output crop per driving crop, in order, computed `batch_size` frames at a time;
        `initial` is the driving crop that relative motion is measured from."""
        kp_initial = next(self._keypoint_batches([initial]))
        for kp_driving in self._keypoint_batches(driving_crops):
            yield from self._render(source, kp_driving, kp_initial, motion or self.motion)

    def driving_motion(self, frames: Iterable[np.ndarray]) -> Iterator[Keypoints]:
        """The keypoints (with Jacobians) of each driving crop, streamed (computed in batches)."""
        for batch in self._keypoint_batches(frames):
            for index in range(batch.value.shape[0]):
                yield batch[index]

    def animate(self, source: DaGANSource, driving: Keypoints, initial: Keypoints,
                options: MotionOptions | None = None) -> np.ndarray:
        """One output crop: the source moved like the `driving` keypoints (relative to `initial`)."""
        return self._render(source, driving, initial, options or self.motion)[0]

    def _keypoint_batches(self, crops: Iterable[np.ndarray]) -> Iterator[Keypoints]:
        iterator = iter(crops)
        while batch := list(itertools.islice(iterator, self.batch_size)):
            yield self.keypoints(batch)

    @torch.inference_mode()
    def keypoints(self, crops: list[np.ndarray]) -> Keypoints:
        """Keypoints (float32, with Jacobians) of a batch of crops, from their depth and RGB."""
        image = self._tensor(crops)
        with self._backend_flags():  # float32 in both modes: keypoint positions steer every sampling grid
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
        with self._compute_context():
            return self.model.generate_from(source.features, source.keypoints, kp_target)

    def _render(self, source: DaGANSource, kp_driving: Keypoints, kp_initial: Keypoints,
                motion: MotionOptions) -> np.ndarray:
        """(B, S, S, 3) uint8 frames for a batch of driving keypoints."""
        logits = self.generate(source, kp_driving, kp_initial, motion)["prediction_logits"]
        # the sigmoid in float32: near 0 and 1 a half-precision prediction is a whole grey level coarse
        return from_tensor(torch.sigmoid(logits.float()))

    # -- tensors and numerics ------------------------------------------------------------------------
    def _tensor(self, crops: list[np.ndarray]) -> torch.Tensor:
        # channels-last, the layout the model was moved to
        return crops_to_tensor(crops, self.crop_size, (0.0, 1.0), self.device, model="DaGAN").contiguous(
            memory_format=torch.channels_last)

    def _backend_flags(self) -> contextlib.AbstractContextManager:
        return backend_flags(self.device, self.precision)

    def _compute_context(self) -> contextlib.AbstractContextManager:
        return compute_context(self.device, self.precision)
