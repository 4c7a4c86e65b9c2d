"""The base of every pipeline of face-crop models (DaGAN, FOMM, face-vid2vid, FADM, and the talking-head
and editing models to come): what they share, so that each method writes only its own steps.

It owns the device (default: CUDA when available), the precision mode ("exact" float32, or "fast":
autocast with float32 islands, `faceanim.nn.precision`), batching of streamed crops, the conversion of
uint8 crops to the model's tensors and back, and the model's placement (eval mode, optionally
channels-last). Pipelines take crops in and give crops out; `faceanim.tasks` cuts and pastes them.
"""
from __future__ import annotations

import contextlib
import itertools
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..media.convert import crops_to_tensor, from_tensor
from .device import resolve_device
from .precision import backend_flags, check_precision, compute_context


class CropPipeline:
    """Shared machinery of face-crop pipelines; subclasses set the class attributes and add their steps.

    model_name: how errors name the model; value_range: the model's pixel range; channels_last: run
    the convolutions in the channels-last layout (oneDNN's and cuDNN's faster one for 2-D models; it has
    no form for 3-D convolution weights); crop_style: how tasks cut the face ("fomm" square VoxCeleb-style
    crops, or "ffhq" alignment)."""

    name: str = ""
    model_name: str = "the model"
    value_range: tuple[float, float] = (0.0, 1.0)
    channels_last: bool = False
    crop_style: str = "fomm"

    def __init__(self, model: nn.Module, *, device: str | torch.device | None = None, precision: str = "exact",
                 batch_size: int = 8):
        if int(batch_size) < 1:
            raise InputError(None, f"batch size must be >= 1, got {batch_size}")
        self.precision = check_precision(precision)
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self.model = self.place(model)

    def place(self, module: nn.Module) -> nn.Module:
        """`module` on the pipeline's device, in its layout, in eval mode."""
        if self.channels_last:
            return module.to(self.device, memory_format=torch.channels_last).eval()
        return module.to(self.device).eval()

    @property
    def crop_size(self) -> int:
        return int(self.model.config.image_size)

    # -- batching and tensors ----------------------------------------------------------------------------
    def batches(self, crops: Iterable[np.ndarray]) -> Iterator[list[np.ndarray]]:
        """Streamed crops in lists of at most `batch_size`."""
        iterator = iter(crops)
        while batch := list(itertools.islice(iterator, self.batch_size)):
            yield batch

    def to_tensor(self, crops: list[np.ndarray]) -> torch.Tensor:
        """(B, 3, S, S) float32 tensor in `value_range` on the device (checked: uint8 (S, S, 3) crops)."""
        tensor = crops_to_tensor(crops, self.crop_size, self.value_range, self.device, model=self.model_name)
        return tensor.contiguous(memory_format=torch.channels_last) if self.channels_last else tensor

    def to_crops(self, images: torch.Tensor) -> list[np.ndarray]:
        """uint8 (S, S, 3) crops of images (B, 3, S, S) in `value_range`."""
        low, high = self.value_range
        return list(from_tensor((images.float() - low) / (high - low)))

    # -- numerics ---------------------------------------------------------------------------------------
    def backend_flags(self) -> contextlib.AbstractContextManager:
        """The backend settings of the precision mode (float32 islands stay float32; see nn.precision)."""
        return backend_flags(self.device, self.precision)

    def compute_context(self) -> contextlib.AbstractContextManager:
        """`backend_flags` plus, in fast mode, autocast (bfloat16 on CPU, float16 on CUDA)."""
        return compute_context(self.device, self.precision)
