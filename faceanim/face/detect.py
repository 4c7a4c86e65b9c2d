"""Face boxes and face detectors (dlib HOG and dlib MMOD CNN).

Coordinates are pixel coordinates of the image the box belongs to (x right, y down, the centre of the
top-left pixel at (0, 0)), as dlib and OpenCV use them. Detectors may run on a shrunk copy of the image
(`max_side`) for speed; the boxes they return are always in the coordinates of the image passed in.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import InputError
from . import _models
from ._image import as_rgb_image, downscaled


@dataclasses.dataclass(frozen=True)
class Box:
    """An axis-aligned box (left, top, right, bottom) in pixels, with the detector's score."""

    left: float
    top: float
    right: float
    bottom: float
    score: float = 1.0

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def center(self) -> tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def scale(self, s: float) -> "Box":
        """The same box in an image resized by `s` (all coordinates times `s`)."""
        return Box(self.left * s, self.top * s, self.right * s, self.bottom * s, self.score)

    def expand(self, ratio: float) -> "Box":
        """The box with the same centre and its width and height multiplied by `ratio`."""
        cx, cy = self.center
        half_w, half_h = self.width * ratio / 2, self.height * ratio / 2
        return Box(cx - half_w, cy - half_h, cx + half_w, cy + half_h, self.score)

    def as_array(self) -> np.ndarray:
        """[left, top, right, bottom] as float64."""
        return np.array([self.left, self.top, self.right, self.bottom], dtype=np.float64)

    def iou(self, other: "Box") -> float:
        """Intersection over union with `other` (0 when they do not overlap)."""
        inter = Box(max(self.left, other.left), max(self.top, other.top),
                    min(self.right, other.right), min(self.bottom, other.bottom))
        if inter.width <= 0 or inter.height <= 0:
            return 0.0
        return inter.area / (self.area + other.area - inter.area)

    @classmethod
    def square(cls, center: tuple[float, float], side: float, score: float = 1.0) -> "Box":
        """A square box of `side` pixels centred on `center`."""
        return cls(center[0] - side / 2, center[1] - side / 2, center[0] + side / 2, center[1] + side / 2, score)


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces: `detect(image)` returns boxes sorted largest first."""

    def detect(self, image: np.ndarray) -> list[Box]: ...


def _to_full(rect: Any, factors: tuple[float, float], score: float) -> Box:
    """A dlib rectangle found on the shrunk image, in the original image's pixel coordinates."""
    fx, fy = factors
    return Box((rect.left() + 0.5) / fx - 0.5, (rect.top() + 0.5) / fy - 0.5,
               (rect.right() + 0.5) / fx - 0.5, (rect.bottom() + 0.5) / fy - 0.5, float(score))


def _largest_first(boxes: list[Box]) -> list[Box]:
    return sorted(boxes, key=lambda box: box.area, reverse=True)


class HOGDetector:
    """dlib's HOG + linear SVM frontal face detector (fast on CPU; finds faces of about 80 px and up
    in the image it runs on, so shrinking by `max_side` raises the smallest face it can find;
    `upsample` lowers it at four times the cost per step)."""

    name = "hog"

    def __init__(self, upsample: int = 0, max_side: int | None = None, threshold: float = 0.0):
        self.upsample = int(upsample)
        self.max_side = max_side
        self.threshold = float(threshold)

    def detect(self, image: np.ndarray) -> list[Box]:
        small, factors = downscaled(as_rgb_image(image), self.max_side)
        rects, scores, _ = _models.hog_detector().run(small, self.upsample, self.threshold)
        return _largest_first([_to_full(rect, factors, score) for rect, score in zip(rects, scores)])


class MMODDetector:
    """dlib's MMOD CNN face detector: finds more (turned, small, dim) faces than HOG, but takes
    about a second per 1080p frame on a CPU - shrink with `max_side`."""

    name = "mmod"

    def __init__(self, upsample: int = 0, max_side: int | None = None,
                 model_path: str | os.PathLike | None = None):
        self.upsample = int(upsample)
        self.max_side = max_side
        self._model = _models.load_model("mmod", _models.MMOD_DETECTOR, model_path)

    def detect(self, image: np.ndarray) -> list[Box]:
        small, factors = downscaled(as_rgb_image(image), self.max_side)
        found = self._model(small, self.upsample)
        return _largest_first([_to_full(det.rect, factors, det.confidence) for det in found])


def make_detector(name: str = "hog", *, upsample: int = 0, max_side: int | None = None) -> FaceDetector:
    """A detector by name: "hog" (default, fast) or "mmod" (CNN, slower, finds harder faces)."""
    kinds = {"hog": HOGDetector, "mmod": MMODDetector}
    if name not in kinds:
        raise InputError(None, f"unknown face detector {name!r}; choose one of {', '.join(kinds)}")
    return kinds[name](upsample=upsample, max_side=max_side)
