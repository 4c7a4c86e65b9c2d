"""Training augmentation of a clip of frames (FOMM/DaGAN's): flips and colour jitter.

Frames are float32 (H, W, 3) RGB in [0, 1]. Every random choice comes from the numpy Generator passed
in, so an item is the same whenever it is drawn with the same seed (exact resume). All frames of a
clip get the same flip and the same jitter.

Jitter follows torchvision's ColorJitter definitions, computed in float (torchvision goes through
8-bit images): brightness scales, contrast and saturation blend with the grey mean / grey image
(ITU-R 601 luma), hue rotates the HSV hue; the four run in a random order. The official flip draws a
time flip first and skips the horizontal flip when it happens; here the two flips are independent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..settings import AugmentationParams

Frames = list[np.ndarray]
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _grey(image: np.ndarray) -> np.ndarray:
    return image @ LUMA


def adjust_brightness(image: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(image * factor, 0.0, 1.0)


def adjust_contrast(image: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(factor * image + (1 - factor) * _grey(image).mean(), 0.0, 1.0)


def adjust_saturation(image: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(factor * image + (1 - factor) * _grey(image)[..., None], 0.0, 1.0)


def adjust_hue(image: np.ndarray, shift: float) -> np.ndarray:
    """Rotate the hue by `shift` turns (-0.5 .. 0.5)."""
    import cv2

    hsv = cv2.cvtColor(np.ascontiguousarray(image, dtype=np.float32), cv2.COLOR_RGB2HSV)  # hue in degrees
    hsv[..., 0] = np.mod(hsv[..., 0] + 360.0 * shift, 360.0)
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0)


@dataclass(frozen=True)
class ColorJitter:
    """Factors drawn uniformly from [max(0, 1 - x), 1 + x] (hue: shift in [-hue, hue]); 0 turns one off."""

    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.1

    def __post_init__(self):
        if min(self.brightness, self.contrast, self.saturation, self.hue) < 0 or self.hue > 0.5:
            raise ValueError("jitter amounts must be >= 0 (hue at most 0.5)")

    def __call__(self, frames: Frames, rng: np.random.Generator) -> Frames:
        adjustments = []
        for adjust, amount in ((adjust_brightness, self.brightness), (adjust_contrast, self.contrast),
                               (adjust_saturation, self.saturation)):
            if amount > 0:
                adjustments.append((adjust, rng.uniform(max(0.0, 1 - amount), 1 + amount)))
        if self.hue > 0:
            adjustments.append((adjust_hue, rng.uniform(-self.hue, self.hue)))
        order = rng.permutation(len(adjustments))
        out = []
        for frame in frames:
            for position in order:
                adjust, value = adjustments[position]
                frame = adjust(frame, value)
            out.append(frame.astype(np.float32, copy=False))
        return out


@dataclass(frozen=True)
class Augmentation:
    """Horizontal flip (p 0.5), time flip (reversed frame order, p 0.5), colour jitter (None: off)."""

    horizontal_flip: bool = True
    time_flip: bool = True
    jitter: ColorJitter | None = ColorJitter()

    def __call__(self, frames: Frames, rng: np.random.Generator) -> Frames:
        if self.time_flip and rng.random() < 0.5:
            frames = frames[::-1]
        if self.horizontal_flip and rng.random() < 0.5:
            frames = [frame[:, ::-1] for frame in frames]
        if self.jitter is not None:
            frames = self.jitter(frames, rng)
        return [np.ascontiguousarray(frame, dtype=np.float32) for frame in frames]


NO_AUGMENTATION = Augmentation(horizontal_flip=False, time_flip=False, jitter=None)


def frame_augmentation(settings: AugmentationParams) -> Augmentation:
    """The augmentation for a config's flips and jitter amounts (no jitter step when all are 0)."""
    amounts = (settings.brightness, settings.contrast, settings.saturation, settings.hue)
    jitter = ColorJitter(*amounts) if any(amounts) else None
    return Augmentation(horizontal_flip=settings.horizontal_flip, time_flip=settings.time_flip, jitter=jitter)
