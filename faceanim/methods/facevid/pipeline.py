"""`FaceVidPipeline`: face-vid2vid inference on face crops, alone or as FADM's coarse stage.

Work done once per video is kept apart from work done per frame. `prepare_source` computes the source's
canonical keypoints, head pose, posed keypoints and the generator's 3-D feature volume (and its
dense-motion compression); `animate_crops` then streams the driving crops in batches: each batch gets its
head poses, keypoints and generation in one pass, with the source side expanded rather than recomputed.

Motion: absolute by default (FADM's demo: the source's canonical keypoints take the driving pose and
expression), or relative (the re-implementation's demo `--relative [--adapt_scale]`: the source keypoints
move by the driving keypoints' change since the initial driving frame, both built from the source's
canonical keypoints; `faceanim.warping.motion.normalize_keypoints`). yaw / pitch / roll (degrees) fix the
driving head's angle (the demo's free view).

Precision "exact" is float32 throughout. "fast" runs the generator under autocast (bfloat16 on CPU,
float16 on CUDA) while what becomes a position stays float32: the keypoint detector, head-pose estimator
and dense-motion network. On CUDA, cuDNN's TF32 is kept off in both modes.
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
from ...registry import get_method
from ...media.convert import crops_to_tensor, from_tensor
from ...nn.precision import backend_flags, check_precision, compute_context
from ...warping.animator import MotionOptions
from ...warping.facevid import FaceVidConfig, FaceVidModel, HeadPose, SourceVolume, transform_keypoints
from ...warping.keypoints import Keypoints
from ...warping.motion import normalize_keypoints
from .weights import load_model, save_converted



@dataclass
class FaceVidSource:
    """A prepared source crop: image (1, 3, S, S) in [0, 1], canonical keypoints, head pose, posed
    keypoints (the canonical ones in the source's pose) and the generator's source volume."""

    image: torch.Tensor
    canonical: Keypoints
    pose: HeadPose
    keypoints: Keypoints
    volume: SourceVolume


@dataclass(frozen=True)
class FreeView:
    """Head angles in degrees that replace the driving frames' (None: follow the driving frame)."""

    yaw: float | None = None
    pitch: float | None = None
    roll: float | None = None


class FaceVidPipeline:
    """face-vid2vid on `crop_size` face crops (256 for the released model); a `CropAnimator`.

    The pipeline takes `model` over: it moves it to `device` (default: cuda if available, else cpu) and
    keeps it in eval mode. relative / adapt_scale: the default motion transfer (absolute, as FADM);
    free_view: fixed driving head angles; batch_size: driving frames per forward pass; precision: "exact" or "fast"."""

    name = "facevid"

    def __init__(self, model: FaceVidModel, *, device: str | torch.device | None = None, precision: str = "exact",
                 batch_size: int = 4, relative: bool = False, adapt_scale: bool = False,
                 free_view: FreeView = FreeView()):
        if int(batch_size) < 1:
            raise InputError(None, f"batch size must be >= 1, got {batch_size}")
        self.precision = check_precision(precision)
        self.device = resolve_device(device)
        # contiguous (not channels-last) layout: channels-last has no form for the 3-D convolutions' weights
        self.model = model.to(self.device).eval()
        self.batch_size = int(batch_size)
        self.motion = MotionOptions(relative=relative, adapt_scale=adapt_scale)
        self.free_view = free_view

    @property
    def config(self) -> FaceVidConfig:
        return self.model.config

    @property
    def crop_size(self) -> int:
        return self.model.config.image_size

    @classmethod
    def from_pretrained(cls, checkpoint: str | os.PathLike | None = None, *,
                        config: str | os.PathLike | FaceVidConfig | None = None, device: str | torch.device | None = None, precision: str = "exact", batch_size: int = 4,
                        relative: bool = False, adapt_scale: bool = False,
                        free_view: FreeView = FreeView()) -> "FaceVidPipeline":
        """Load a converted folder (config.json + model.safetensors) or the official `Facevid.pth`
        (`config`: the official YAML or a FaceVidConfig when it is not the released vox256 layout);
        `checkpoint` None: FACEANIM_FACEVID_CHECKPOINT."""
        spec = next(weight for weight in get_method("facevid").weights if weight.name == "checkpoint")
        return cls(load_model(spec.resolve(checkpoint), config=config), device=device, precision=precision,
                   batch_size=batch_size, relative=relative, adapt_scale=adapt_scale, free_view=free_view)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the model as a converted folder (loadable with `from_pretrained(folder)`)."""
        return save_converted(self.model, folder)

    # -- once per video ------------------------------------------------------------------------------
    @torch.inference_mode()
    def prepare_source(self, crop: np.ndarray) -> FaceVidSource:
        """Keypoints, head pose and generator features of the source crop (uint8 (S, S, 3) RGB), in float32."""
        image = self._tensor([crop])
        with self._backend_flags():
            canonical = self.model.canonical_keypoints(image)
            pose = self.model.head_pose(image)
            volume = self.model.encode_source(image)
        return FaceVidSource(image, canonical, pose, transform_keypoints(canonical, pose), volume)

    # -- per frame -----------------------------------------------------------------------------------
    def animate_crops(self, source: FaceVidSource, driving_crops: Iterable[np.ndarray], initial: np.ndarray,
                      motion: MotionOptions | None = None) -> Iterator[np.ndarray]:
        """One uint8 output crop per driving crop, in order, computed `batch_size` frames at a time;
        `initial` is the driving crop that relative motion is measured from (unused by absolute motion)."""
        motion = motion or self.motion
        pose_initial = self.head_poses([initial]) if motion.relative else None
        for poses in self._pose_batches(driving_crops):
            yield from self._render(source, poses, pose_initial, motion)

    def driving_motion(self, frames: Iterable[np.ndarray]) -> Iterator[HeadPose]:
        """The head pose and expression of each driving crop, streamed (computed in batches)."""
        for batch in self._pose_batches(frames):
            for index in range(batch.t.shape[0]):
                yield batch[index]

    def animate(self, source: FaceVidSource, driving: HeadPose, initial: HeadPose,
                options: MotionOptions | None = None) -> np.ndarray:
        """One output crop: the source moved by the `driving` head pose (relative to `initial`)."""
        return self._render(source, driving, initial, options or self.motion)[0]

    def _pose_batches(self, crops: Iterable[np.ndarray]) -> Iterator[HeadPose]:
        iterator = iter(crops)
        while batch := list(itertools.islice(iterator, self.batch_size)):
            yield self.head_poses(batch)

    @torch.inference_mode()
    def head_poses(self, crops: list[np.ndarray]) -> HeadPose:
        """Head poses (float32) of a batch of crops."""
        with self._backend_flags():
            return self.model.head_pose(self._tensor(crops))

    def target_keypoints(self, source: FaceVidSource, poses: HeadPose, pose_initial: HeadPose | None,
                         motion: MotionOptions | None = None) -> Keypoints:
        """The keypoints the source takes for a batch of driving poses: the source's canonical keypoints in
        the driving pose (absolute), or the source's own moved by the change since `pose_initial` (relative)."""
        motion = motion or self.motion
        view = self.free_view
        kp_driving = transform_keypoints(source.canonical, poses, yaw=view.yaw, pitch=view.pitch, roll=view.roll)
        if not motion.relative:
            return kp_driving
        if pose_initial is None:
            raise InputError(None, "relative motion needs the initial driving frame's head pose")
        kp_initial = transform_keypoints(source.canonical, pose_initial)
        return normalize_keypoints(source.keypoints, kp_driving, kp_initial, relative=True,
                                   adapt_scale=motion.adapt_scale)

    @torch.inference_mode()
    def generate(self, source: FaceVidSource, poses: HeadPose, pose_initial: HeadPose | None = None,
                 motion: MotionOptions | None = None) -> dict:
        """The generator's outputs (`prediction` in [0, 1], `prediction_logits`, `occlusion_map`, ...) and
        `kp_driving`, the target keypoints, for a batch of driving head poses."""
        kp_target = self.target_keypoints(source, poses, pose_initial, motion)
        with self._compute_context():
            output = self.model.generate_from(source.volume, source.keypoints, kp_target)
        return {**output, "kp_driving": kp_target}

    def _render(self, source: FaceVidSource, poses: HeadPose, pose_initial: HeadPose | None,
                motion: MotionOptions) -> np.ndarray:
        """(B, S, S, 3) uint8 frames for a batch of driving head poses."""
        logits = self.generate(source, poses, pose_initial, motion)["prediction_logits"]
        # the sigmoid in float32: near 0 and 1 a half-precision prediction is a whole grey level coarse
        return from_tensor(torch.sigmoid(logits.float()))

    # -- tensors and numerics ------------------------------------------------------------------------
    def _tensor(self, crops: list[np.ndarray]) -> torch.Tensor:
        return crops_to_tensor(crops, self.crop_size, (0.0, 1.0), self.device, model="face-vid2vid")

    def _backend_flags(self) -> contextlib.AbstractContextManager:
        return backend_flags(self.device, self.precision)

    def _compute_context(self) -> contextlib.AbstractContextManager:
        return compute_context(self.device, self.precision)
