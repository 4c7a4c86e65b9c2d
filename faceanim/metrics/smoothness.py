"""Temporal smoothness of a generated video, as Diffused Heads measures it (its `smoothness_eval.py`):
OFM from Farneback optical flow and F-MSE from the difference of consecutive frames.

The official script works on the whole frame resized to 128x128 (OpenCV bilinear, BGR as OpenCV
decodes it). Its arithmetic, reproduced here so that our numbers compare with the paper's:

* OFM: the flow magnitude of each consecutive pair is min-max normalised *per pair* to [0, 255],
  truncated to uint8 and coloured with OpenCV's JET map; OFM and its std are the mean and std of all
  those colour values (every pixel and channel of every pair). So a still video does not score 0: its
  all-zero magnitude maps to JET's dark blue (128, 0, 0), mean 42.67.
* F-MSE: the script squares the difference of two uint8 frames in uint8 arithmetic, so both the
  difference and its square wrap modulo 256; F-MSE and its std are the mean and std of those values.

Because both official numbers are mostly artefacts of that arithmetic, each metric also reports the
plain quantity: `flow_px`, the mean flow magnitude in pixels of the 128x128 frames, and `frame_mse`,
the true mean squared difference of consecutive 128x128 frames on the 0-255 scale.
"""
from __future__ import annotations

import math
from abc import abstractmethod
from typing import Mapping

import numpy as np

from .base import EvalContext, FrameView, StreamingMetric

SIZE = 128  # the script compares frames at 128x128
# cv.calcOpticalFlowFarneback's arguments in the script: pyr_scale, levels, winsize, iterations, poly_n,
# poly_sigma, flags
FARNEBACK = (0.5, 7, 5, 15, 5, 1.2, 0)


def smoothness_frame(image: np.ndarray) -> np.ndarray:
    """An RGB uint8 frame as the script compares it: resized to 128x128 (OpenCV's default bilinear)."""
    import cv2

    return cv2.resize(np.ascontiguousarray(image), (SIZE, SIZE))


def grey(frame: np.ndarray) -> np.ndarray:
    """The luma OpenCV's BGR2GRAY gives for the same frame in BGR order."""
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def flow_magnitude(previous_grey: np.ndarray, grey_frame: np.ndarray) -> np.ndarray:
    """(H, W) float32 magnitude of the Farneback flow from one grey frame to the next."""
    import cv2

    flow = cv2.calcOpticalFlowFarneback(previous_grey, grey_frame, None, *FARNEBACK)
    magnitude, _ = cv2.cartToPolar(flow[..., 0], flow[..., 1])
    return magnitude


def jet_magnitude_map(magnitude: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: the magnitude min-max normalised to [0, 255] (all zeros when it is constant),
    truncated to uint8 and coloured with the JET colour map: what the official OFM averages."""
    import cv2

    normalised = cv2.normalize(magnitude, None, 0, 255, cv2.NORM_MINMAX)
    return cv2.applyColorMap(normalised.astype(np.uint8), cv2.COLORMAP_JET)


def wrapped_squared_difference(frame: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """(frame - previous) ** 2 in uint8 arithmetic, wrapping modulo 256 as the official F-MSE does."""
    difference = frame.astype(np.uint8) - previous.astype(np.uint8)
    return difference * difference  # uint8 times uint8 stays uint8: the square wraps too


def squared_difference(frame: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """The true squared difference of two frames (float64, 0-255 scale)."""
    return (frame.astype(np.float64) - previous.astype(np.float64)) ** 2


class IntegerMoments:
    """Exact running mean and (population) std of many small non-negative integers, as np.mean/np.std
    of all of them together would give, without keeping them."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0
        self.total_squares = 0

    def add(self, values: np.ndarray) -> None:
        values = values.astype(np.int64).ravel()
        self.count += values.size
        self.total += int(values.sum())
        self.total_squares += int((values * values).sum())

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")

    @property
    def std(self) -> float:
        if not self.count:
            return float("nan")
        # exact in integers: n^2 var = n sum(x^2) - (sum x)^2
        return math.sqrt(self.count * self.total_squares - self.total ** 2) / self.count


class _ConsecutiveFrames(StreamingMetric):
    """Feeds (previous, current) 128x128 frame pairs of the prediction to `pair`."""

    needs = frozenset()

    def __init__(self, context: EvalContext):
        super().__init__(context)
        self._previous: np.ndarray | None = None

    def update(self, pred: FrameView, ref: FrameView | None) -> Mapping[str, float]:
        frame = smoothness_frame(pred.image)
        previous, self._previous = self._previous, frame
        return {} if previous is None else self.pair(previous, frame)

    @abstractmethod
    def pair(self, previous: np.ndarray, frame: np.ndarray) -> Mapping[str, float]:
        """Take one consecutive pair; return its per-frame values."""


class OFMMetric(_ConsecutiveFrames):
    """Optical-flow magnitude (Diffused Heads): `ofm`, `ofm_std` on the script's JET scale and
    `flow_px`, the mean flow magnitude in 128-px pixels; per frame t >= 1 the same for frames t-1, t.
    NaN for a video of fewer than two frames."""

    name = "ofm"
    higher_is_better = {"ofm": False, "ofm_std": False, "flow_px": False}

    def __init__(self, context: EvalContext):
        super().__init__(context)
        self._jet = IntegerMoments()
        self._flow_sum = 0.0
        self._pairs = 0

    def pair(self, previous: np.ndarray, frame: np.ndarray) -> Mapping[str, float]:
        magnitude = flow_magnitude(grey(previous), grey(frame))
        colours = jet_magnitude_map(magnitude)
        self._jet.add(colours)
        flow_px = float(magnitude.mean(dtype=np.float64))
        self._flow_sum += flow_px
        self._pairs += 1
        return {"ofm": float(colours.mean(dtype=np.float64)), "flow_px": flow_px}

    def compute(self) -> dict[str, float]:
        flow_px = self._flow_sum / self._pairs if self._pairs else float("nan")
        return {"ofm": self._jet.mean, "ofm_std": self._jet.std, "flow_px": flow_px}


class FMSEMetric(_ConsecutiveFrames):
    """Frame-difference MSE (Diffused Heads): `fmse`, `fmse_std` with the script's uint8 wrap-around
    and `frame_mse`, the true mean squared difference; per frame t >= 1 the same for frames t-1, t.
    NaN for a video of fewer than two frames."""

    name = "fmse"
    higher_is_better = {"fmse": False, "fmse_std": False, "frame_mse": False}

    def __init__(self, context: EvalContext):
        super().__init__(context)
        self._wrapped = IntegerMoments()
        self._true_sum = 0.0
        self._pairs = 0

    def pair(self, previous: np.ndarray, frame: np.ndarray) -> Mapping[str, float]:
        wrapped = wrapped_squared_difference(frame, previous)
        self._wrapped.add(wrapped)
        frame_mse = float(squared_difference(frame, previous).mean())
        self._true_sum += frame_mse
        self._pairs += 1
        return {"fmse": float(wrapped.mean(dtype=np.float64)), "frame_mse": frame_mse}

    def compute(self) -> dict[str, float]:
        frame_mse = self._true_sum / self._pairs if self._pairs else float("nan")
        return {"fmse": self._wrapped.mean, "fmse_std": self._wrapped.std, "frame_mse": frame_mse}
