"""68-point face landmarks (dlib's iBUG-300W shape predictor) and 128-d identity embeddings (dlib ResNet).

Landmark order is iBUG 300-W: 0-16 jaw (image left to right), 17-21 and 22-26 brows, 27-35 nose,
36-41 and 42-47 eyes (the image-left eye first), 48-59 outer lips, 60-67 inner lips.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import _models
from ._image import as_landmarks, as_rgb_image
from .detect import Box

# Points that move with the head but hardly with expression: nose bridge and tip, the four eye corners.
STABLE_POINTS = [27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45]
# A HOG detector box relative to the stable points (measured on 98 detections in our test media):
# side = 5.45 x their RMS spread, centre 0.30 spreads below their centroid along the face's own axis.
_BOX_SIDE_PER_SPREAD = 5.45
_BOX_DROP_PER_SPREAD = 0.30


def eye_axis(landmarks: np.ndarray) -> np.ndarray:
    """The face's own horizontal direction (unit vector): from the image-left eye's centre to the other's.
    Turned 90 degrees, (-y, x) points towards the chin and (y, -x) towards the forehead."""
    points = np.asarray(landmarks, dtype=np.float64)
    line = points[42:48].mean(axis=0) - points[36:42].mean(axis=0)
    return line / max(float(np.linalg.norm(line)), 1e-9)


def head_frame(landmarks: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The rigid part of a face: (centroid of the stable points, their RMS spread, eye-line angle in
    radians, image y down); expression hardly changes it, head motion does."""
    points = np.asarray(landmarks, dtype=np.float64)
    stable = points[STABLE_POINTS]
    centroid = stable.mean(axis=0)
    spread = float(np.sqrt(((stable - centroid) ** 2).sum(axis=1).mean()))
    eye_line = points[45] - points[36]
    return centroid, spread, float(np.arctan2(eye_line[1], eye_line[0]))


def convex_hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of (N, 2) points (N >= 3, not all on one line): the size measure of FOMM's
    adapt_movement_scale and of find-best-frame, computed as the official code does (scipy, float64)."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        return float(ConvexHull(np.asarray(points, dtype=np.float64)).volume)  # in 2-D "volume" is the area
    except QhullError as err:
        raise ValueError(f"points span no area, so their size is undefined ({str(err).splitlines()[0]})") from None


def box_from_landmarks(landmarks: np.ndarray, score: float = 1.0) -> Box:
    """A square box placed and sized like a dlib detector box, from the head's rigid frame only.

    It is the box the tracker re-fits landmarks in and reports, so it does not move when the mouth
    opens or the eyes blink, and it is the same whether a detector ran on the frame or not."""
    centroid, spread, angle = head_frame(as_landmarks(landmarks))
    down = np.array([-np.sin(angle), np.cos(angle)])  # the face's own "down" axis
    center = centroid + down * _BOX_DROP_PER_SPREAD * spread
    return Box.square((float(center[0]), float(center[1])), _BOX_SIDE_PER_SPREAD * spread, score)


def _dlib_rect(box: Box) -> Any:
    dlib = _models.import_dlib()
    return dlib.rectangle(int(round(box.left)), int(round(box.top)), int(round(box.right)), int(round(box.bottom)))


class LandmarkPredictor:
    """dlib's 68-point shape predictor (about 1 ms a face): `predictor(image, box)` -> (68, 2) float32."""

    def __init__(self, model_path: str | os.PathLike | None = None):
        self._model = _models.load_model("shape", _models.LANDMARKS_68, model_path)

    def __call__(self, image: np.ndarray, box: Box) -> np.ndarray:
        shape = self._model(as_rgb_image(image), _dlib_rect(box))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


class FaceEmbedder:
    """dlib's ResNet face recognition model: a 128-d embedding of the face chip aligned from the
    68 landmarks. Same person: distance below about 0.6 (dlib's threshold)."""

    def __init__(self, model_path: str | os.PathLike | None = None):
        self._model = _models.load_model("recognition", _models.FACE_RECOGNITION, model_path)

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        dlib = _models.import_dlib()
        points = np.rint(as_landmarks(landmarks)).astype(int)
        shape = dlib.full_object_detection(_dlib_rect(Box(*points.min(axis=0), *points.max(axis=0))),
                                           [dlib.point(int(x), int(y)) for x, y in points])
        return np.array(self._model.compute_face_descriptor(as_rgb_image(image), shape), dtype=np.float32)


def embedding_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two face embeddings (dlib / face_recognition convention)."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))
