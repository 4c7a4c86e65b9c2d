"""Frames <-> model tensors: the one place where the uint8 RGB convention meets a model's input range.

Each model states the range it expects (DaGAN: (0, 1); diffusion models: (-1, 1)); these functions do
the scaling, channel order (HWC <-> CHW) and batching, so no model code repeats it.
"""
from __future__ import annotations

import numpy as np
import torch

ValueRange = tuple[float, float]


def _checked_range(value_range: ValueRange) -> tuple[float, float]:
    low, high = (float(v) for v in value_range)
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range!r}")
    return low, high


def to_tensor(frames: np.ndarray, value_range: ValueRange = (0.0, 1.0), device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 RGB frames, `(H, W, 3)` or `(N, H, W, 3)`, as an `(N, 3, H, W)` tensor spanning `value_range`.

    0 maps to low and 255 to high. The uint8 data is moved to `device` before the conversion, which
    moves a quarter of the bytes a float tensor would."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise TypeError(f"frames must be a uint8 numpy array, got {getattr(frames, 'dtype', type(frames).__name__)}")
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (H, W, 3) or (N, H, W, 3), got shape {frames.shape}")
    low, high = _checked_range(value_range)
    pixels = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    tensor = pixels.permute(0, 3, 1, 2).to(dtype)
    return (tensor * ((high - low) / 255.0) + low).contiguous()


def from_tensor(tensor: torch.Tensor, value_range: ValueRange = (0.0, 1.0)) -> np.ndarray:
    """A `(N, 3, H, W)` or `(3, H, W)` tensor spanning `value_range` as uint8 `(N, H, W, 3)` RGB frames
    (clamped to the range, then rounded)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.ndim == 3:
        tensor = tensor[None]
    if tensor.ndim != 4 or tensor.shape[1] != 3:
        raise ValueError(f"tensor must be (N, 3, H, W) or (3, H, W), got shape {tuple(tensor.shape)}")
    low, high = _checked_range(value_range)
    scaled = (tensor.detach().float() - low) * (255.0 / (high - low))
    pixels = scaled.clamp_(0.0, 255.0).round_().to(torch.uint8)
    return np.ascontiguousarray(pixels.permute(0, 2, 3, 1).cpu().numpy())


def crops_to_tensor(crops: list[np.ndarray], size: int, value_range: ValueRange = (0.0, 1.0),
                    device: torch.device | str | None = None, *, model: str = "the model") -> torch.Tensor:
    """A batch of face crops, each uint8 (size, size, 3) RGB, as an (N, 3, size, size) tensor; a crop of
    another kind raises InputError saying what `model` takes."""
    from ..errors import InputError

    for crop in crops:
        if not (isinstance(crop, np.ndarray) and crop.dtype == np.uint8 and crop.shape == (size, size, 3)):
            raise InputError(None, f"{model} takes uint8 ({size}, {size}, 3) RGB crops, got "
                                   f"{getattr(crop, 'dtype', type(crop).__name__)} {getattr(crop, 'shape', None)}")
    return to_tensor(np.stack(crops), value_range, device)
