"""`FaceVidModel`: face-vid2vid's three networks under their official names, and reading `Facevid.pth`.

The official checkpoint holds one state dict per network (`kp_detector`, `he_estimator`, `generator`),
saved without DataParallel prefixes; FADM loads it strictly and so does `load_official`. A model's
`state_dict()` is the checkpoint's dicts joined with `<network>.` prefixes.
"""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ...checkpoints import LoadReport, load_checkpoint, load_into, state_dict_from
from ...warping.keypoints import Keypoints
from .config import FaceVidConfig
from .generator import OcclusionAwareGenerator, SourceVolume
from .head_pose import HEEstimator, HeadPose, transform_keypoints
from .keypoints import KPDetector

COMPONENTS = ("kp_detector", "he_estimator", "generator")


class FaceVidModel(nn.Module):
    """The canonical-keypoint detector, head-pose/expression estimator and occlusion-aware generator."""

    def __init__(self, config: FaceVidConfig):
        super().__init__()
        self.config = config
        self.kp_detector = KPDetector(config)
        self.he_estimator = HEEstimator(config)
        self.generator = OcclusionAwareGenerator(config)

    def canonical_keypoints(self, image: torch.Tensor) -> Keypoints:
        """Identity-specific, pose-free keypoints (B, K, 3) of images (B, C, H, W) in [0, 1]."""
        return self.kp_detector(image)

    def head_pose(self, image: torch.Tensor) -> HeadPose:
        """Head pose (angle bin logits, translation) and expression deltas of images in [0, 1]."""
        return self.he_estimator(image)

    @staticmethod
    def posed_keypoints(canonical: Keypoints, pose: HeadPose) -> Keypoints:
        """Canonical keypoints moved by a head pose and expression (see `head_pose.transform_keypoints`)."""
        return transform_keypoints(canonical, pose)

    def encode_source(self, source_image: torch.Tensor) -> SourceVolume:
        return self.generator.encode_source(source_image)

    def generate_from(self, source: SourceVolume, kp_source: Keypoints, kp_driving: Keypoints) -> dict:
        return self.generator.generate_from(source, kp_driving, kp_source)

    def animate(self, source_image: torch.Tensor, driving_image: torch.Tensor) -> dict:
        """One call of FADM's coarse stage with absolute motion: the source's canonical keypoints take the
        driving frames' pose and expression. Returns the generator's outputs plus `kp_source`/`kp_driving`."""
        canonical = self.canonical_keypoints(source_image)
        kp_source = self.posed_keypoints(canonical, self.head_pose(source_image))
        kp_driving = self.posed_keypoints(canonical, self.head_pose(driving_image))
        output = self.generate_from(self.encode_source(source_image), kp_source, kp_driving)
        return {**output, "kp_source": kp_source, "kp_driving": kp_driving}


def load_official(model: FaceVidModel, checkpoint: str | os.PathLike | Any, *, strict: bool = True,
                  source: str | os.PathLike | None = None) -> dict[str, LoadReport]:
    """Load an official `Facevid.pth` (a path, or its already-read contents with `source` naming it) into
    `model`: each network from its entry, no prefix stripping. With strict=True a file that does not fit
    raises CheckpointError naming it."""
    if isinstance(checkpoint, (str, os.PathLike)):
        source, checkpoint = checkpoint, load_checkpoint(checkpoint)
    path = source if source is not None else "checkpoint"
    return {name: load_into(getattr(model, name), state_dict_from(checkpoint, name, path=path, strip_prefixes=()),
                            strict=strict, source=path)
            for name in COMPONENTS}
