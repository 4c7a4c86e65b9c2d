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

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import InputError
from ...registry import get_method
from ...warping.animator import MotionCropPipeline, MotionOptions
from ...warping.keypoints import Keypoints
from ...warping.motion import normalize_keypoints
from .config import FaceVidConfig
from .generator import SourceVolume
from .head_pose import HeadPose, transform_keypoints
from .model import FaceVidModel
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


class FaceVidPipeline(MotionCropPipeline):
    """face-vid2vid on `crop_size` face crops (256 for the released model); a `CropAnimator`.

    The pipeline takes `model` over: it moves it to `device` (default: cuda if available, else cpu) and
    keeps it in eval mode. relative / adapt_scale: the default motion transfer (absolute, as FADM);
    free_view: fixed driving head angles; batch_size: driving frames per forward pass; precision: "exact" or "fast"."""

    name = "facevid"
    model_name = "face-vid2vid"
    channels_last = False   # no channels-last form exists for the 3-D convolutions' weights

    def __init__(self, model: FaceVidModel, *, device: str | torch.device | None = None, precision: str = "exact",
                 batch_size: int = 4, relative: bool = False, adapt_scale: bool = False,
                 free_view: FreeView = FreeView()):
        super().__init__(model, device=device, precision=precision, batch_size=batch_size, relative=relative,
                         adapt_scale=adapt_scale)
        self.free_view = free_view

    @property
    def config(self) -> FaceVidConfig:
        return self.model.config

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *,
                        config: str | os.PathLike | FaceVidConfig | None = None,
                        device: str | torch.device | None = None, precision: str = "exact", batch_size: int = 4,
                        relative: bool = False, adapt_scale: bool = False,
                        free_view: FreeView = FreeView()) -> "FaceVidPipeline":
        """Load a converted folder (config.json + model.safetensors) or the official `Facevid.pth`
        (`config`: the official YAML or a FaceVidConfig when it is not the released vox256 layout);
        `path` None: FACEANIM_FACEVID_CHECKPOINT."""
        spec = get_method("facevid").weight("checkpoint")
        return cls(load_model(spec.resolve(path), config=config), device=device, precision=precision,
                   batch_size=batch_size, relative=relative, adapt_scale=adapt_scale, free_view=free_view)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the model as a converted folder (loadable with `from_pretrained(folder)`)."""
        return save_converted(self.model, folder)

    # -- once per video ------------------------------------------------------------------------------
    @torch.inference_mode()
    def prepare_source(self, crop: np.ndarray) -> FaceVidSource:
        """Keypoints, head pose and generator features of the source crop (uint8 (S, S, 3) RGB), in float32."""
        image = self.to_tensor([crop])
        with self.backend_flags():
            canonical = self.model.canonical_keypoints(image)
            pose = self.model.head_pose(image)
            volume = self.model.encode_source(image)
        return FaceVidSource(image, canonical, pose, transform_keypoints(canonical, pose), volume)

    # -- per frame -----------------------------------------------------------------------------------
    def motion_of(self, crops: list[np.ndarray]) -> HeadPose:
        return self.head_poses(crops)

    def needs_initial(self, options: MotionOptions) -> bool:
        return options.relative   # absolute motion takes the driving pose as it is

    @torch.inference_mode()
    def head_poses(self, crops: list[np.ndarray]) -> HeadPose:
        """Head poses (float32) of a batch of crops."""
        with self.backend_flags():
            return self.model.head_pose(self.to_tensor(crops))

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
        with self.compute_context():
            output = self.model.generate_from(source.volume, source.keypoints, kp_target)
        return {**output, "kp_driving": kp_target}

    def render_motion(self, source: FaceVidSource, poses: HeadPose, pose_initial: HeadPose | None,
                      motion: MotionOptions) -> list[np.ndarray]:
        """uint8 (S, S, 3) frames for a batch of driving head poses."""
        logits = self.generate(source, poses, pose_initial, motion)["prediction_logits"]
        # the sigmoid in float32: near 0 and 1 a half-precision prediction is a whole grey level coarse
        return self.to_crops(torch.sigmoid(logits.float()))
