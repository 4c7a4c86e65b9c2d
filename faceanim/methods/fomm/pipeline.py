"""`FOMMPipeline`: FOMM inference on face crops (a `CropAnimator`).

The source keypoints are computed once per video; driving crops are processed in batches (keypoints,
motion transfer as FOMM's `normalize_kp`, generation). Weights: FOMM's `vox-cpk.pth.tar` or FADM's
`FOMM.pth` (`kp_detector` + `generator`), with the official YAML when not the vox-256 layout.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch

from ...errors import InputError
from ...fileio import read_official_model_params
from ...nn.device import resolve_device
from ...media.convert import crops_to_tensor, from_tensor
from ...registry import get_method
from ...warping.animator import MotionOptions
from ...warping.fomm import FOMMConfig, FOMMModel, load_fomm
from ...warping.keypoints import Keypoints


@dataclass
class FOMMSource:
    image: torch.Tensor         # (1, 3, S, S) in [0, 1]
    keypoints: Keypoints


class FOMMPipeline:
    """FOMM on `crop_size` crops; relative / adapt_scale: the default motion transfer (FOMM's demo
    `--relative --adapt_scale`); FADM's training uses absolute motion."""

    name = "fomm"

    def __init__(self, model: FOMMModel, *, device: str | torch.device | None = None, batch_size: int = 8,
                 relative: bool = True, adapt_scale: bool = True):
        if int(batch_size) < 1:
            raise InputError(None, f"batch size must be >= 1, got {batch_size}")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = int(batch_size)
        self.motion = MotionOptions(relative=relative, adapt_scale=adapt_scale)

    @property
    def crop_size(self) -> int:
        return self.model.config.image_size

    @classmethod
    def from_pretrained(cls, checkpoint: str | os.PathLike | None = None, *, config: str | os.PathLike | None = None,
                        **settings) -> "FOMMPipeline":
        """`checkpoint` (or FACEANIM_FOMM_CHECKPOINT); `config`: the official YAML it was trained with."""
        spec = next(weight for weight in get_method("fomm").weights if weight.name == "checkpoint")
        return cls(load_fomm(spec.resolve(checkpoint), read_official_config(config) if config else None), **settings)

    @torch.inference_mode()
    def prepare_source(self, crop: np.ndarray) -> FOMMSource:
        image = self._tensor([crop])
        return FOMMSource(image, self.model.keypoints(image))

    def animate_crops(self, source: FOMMSource, driving_crops: Iterable[np.ndarray], initial: np.ndarray,
                      motion: MotionOptions | None = None) -> Iterator[np.ndarray]:
        with torch.inference_mode():
            kp_initial = self.model.keypoints(self._tensor([initial]))
        iterator = iter(driving_crops)
        while batch := list(itertools.islice(iterator, self.batch_size)):
            yield from self._render(source, batch, kp_initial, motion or self.motion)

    @torch.inference_mode()
    def _render(self, source: FOMMSource, batch: list[np.ndarray], kp_initial: Keypoints,
                motion: MotionOptions) -> list[np.ndarray]:
        kp_driving = self.model.keypoints(self._tensor(batch))
        frames = self.model.animate(source.image, source.keypoints, kp_driving, kp_initial, motion)
        return list(from_tensor(frames))

    def _tensor(self, crops: list[np.ndarray]) -> torch.Tensor:
        return crops_to_tensor(crops, self.crop_size, (0.0, 1.0), self.device, model="FOMM")


def read_official_config(path: str | os.PathLike) -> FOMMConfig:
    model_params, frame_size = read_official_model_params(path, "FOMM")
    try:
        return FOMMConfig.from_official(model_params, image_size=frame_size)
    except InputError as err:
        raise InputError(path, err.problem) from None
