"""`FOMMPipeline`: FOMM inference on face crops (a `CropAnimator`, with the `CoarseAnimator` view).

The source keypoints are computed once per video; driving crops are processed in batches (keypoints,
motion transfer as FOMM's `normalize_kp`, generation). Weights: FOMM's `vox-cpk.pth.tar` or FADM's
`FOMM.pth` (`kp_detector` + `generator`), with the official YAML when not the vox-256 layout.
Precision "fast" runs the generator under autocast with the shared float32 islands (keypoints, dense
motion), as DaGAN does.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from ...errors import InputError
from ...registry import get_method
from ...warping.animator import MotionCropPipeline, MotionOptions
from ...warping.fomm import FOMMModel, load_fomm
from ...warping.keypoints import Keypoints
from ...warping.motion import normalize_keypoints
from .config import read_official_config


@dataclass
class FOMMSource:
    image: torch.Tensor         # (1, 3, S, S) in [0, 1]
    keypoints: Keypoints


class FOMMPipeline(MotionCropPipeline):
    """FOMM on `crop_size` crops; relative / adapt_scale: the default motion transfer (FOMM's demo
    `--relative --adapt_scale`); FADM's training uses absolute motion."""

    name = "fomm"
    model_name = "FOMM"

    def __init__(self, model: FOMMModel, *, device: str | torch.device | None = None, precision: str = "exact",
                 batch_size: int = 8, relative: bool = True, adapt_scale: bool = True):
        super().__init__(model, device=device, precision=precision, batch_size=batch_size, relative=relative,
                         adapt_scale=adapt_scale)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *, config: str | os.PathLike | None = None,
                        **settings) -> "FOMMPipeline":
        """`path`: the checkpoint (else FACEANIM_FOMM_CHECKPOINT); `config`: the official YAML it was trained
        with (default: vox-256); `settings` as the constructor's."""
        spec = get_method("fomm").weight("checkpoint")
        model_config = read_official_config(config) if config else None
        try:
            model = load_fomm(spec.resolve(path), model_config)
        except InputError as error:
            if error.path is None and config:   # the YAML's networks cannot be built: name the YAML
                raise InputError(config, error.problem) from None
            raise
        return cls(model, **settings)

    @torch.inference_mode()
    def prepare_source(self, crop: np.ndarray) -> FOMMSource:
        image = self.to_tensor([crop])
        with self.backend_flags():
            return FOMMSource(image, self.model.keypoints(image))

    @torch.inference_mode()
    def motion_of(self, crops: list[np.ndarray]) -> Keypoints:
        with self.backend_flags():
            return self.model.keypoints(self.to_tensor(crops))

    @torch.inference_mode()
    def render_motion(self, source: FOMMSource, kp_driving: Keypoints, kp_initial: Keypoints,
                      motion: MotionOptions) -> list[np.ndarray]:
        # the motion transfer in float32 (outside autocast): its Jacobians are inverted by the dense motion
        kp_target = normalize_keypoints(source.keypoints, kp_driving, kp_initial, relative=motion.relative,
                                        adapt_scale=motion.adapt_scale)
        with self.compute_context():
            frames = self.model.generator(source.image, kp_driving=kp_target, kp_source=source.keypoints)
        return self.to_crops(frames["prediction"].float())
