"""How audio time maps onto video frames: the frame count for a duration, and per-frame context windows."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    import torch


def frame_count(duration_s: float, fps: float) -> int:
    """The number of video frames that cover `duration_s` seconds of audio at `fps`.

    Rule: the nearest whole number of frames, halves rounding up (`floor(duration * fps + 0.5)`), so a
    video and its soundtrack of the same length agree, and 1.234 s at 25 fps (30.85 frames) gives 31.
    Frame t stands for the audio around time t / fps."""
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(None, f"frame rate must be a positive number, got {fps}")
    if not (math.isfinite(duration_s) and duration_s >= 0):
        raise InputError(None, f"audio duration must be a non-negative number of seconds, got {duration_s}")
    # the tiny epsilon keeps exact halves (0.02 s at 25 fps) from rounding down through float error
    return int(math.floor(duration_s * fps + 0.5 + 1e-9))


def context_windows(features: np.ndarray | torch.Tensor, m: int = 2) -> np.ndarray | torch.Tensor:
    """Stack each frame's neighbours: (T, ...) -> (T, 2m+1, ...), row t holding frames t-m .. t+m.

    Indices past either end are clamped to the first / last frame (the edge frame repeats), as in
    Diffused Heads, whose sampler pads the audio-embedding ids with 0 at the start and T-1 at the end.
    EMO uses the same m=2 window. Works on numpy arrays and torch tensors (kept on their device)."""
    if not isinstance(features, np.ndarray):
        import torch  # already loaded by whoever made a tensor

        if not isinstance(features, torch.Tensor):
            raise TypeError(f"context_windows takes a numpy array or a torch tensor, not {type(features).__name__}")
    if m < 0:
        raise ValueError(f"context half-width m must be >= 0, got {m}")
    if features.ndim < 1:
        raise ValueError("features need a leading time axis")
    count = features.shape[0]
    offsets = np.arange(-m, m + 1)
    rows = np.clip(np.arange(count)[:, None] + offsets[None, :], 0, max(count - 1, 0))
    if isinstance(features, np.ndarray):
        return features[rows]
    return features[torch.from_numpy(rows).to(features.device)]
