"""Check up front that an image has a usable face, with a one-line error naming the file if not."""
from __future__ import annotations

import os

import numpy as np

from ..errors import NoFaceError
from ._image import as_rgb_image
from .detect import Box, FaceDetector, HOGDetector, make_detector
from .landmarks import LandmarkPredictor, box_from_landmarks


def largest_face(image: np.ndarray, detector: str | FaceDetector = "hog", *,
                 path: str | os.PathLike | None = None) -> tuple[Box, np.ndarray]:
    """The largest face in `image`: (its box, as `box_from_landmarks` makes it, with the detector's score;
    its (68, 2) landmarks). Raises `NoFaceError(path, ...)` when there is none; pass the image's file
    path so the message names it. With "hog", a second pass at 2x finds faces down to about 40 px."""
    image = as_rgb_image(image, "image" if path is None else os.fspath(path))
    passes = [make_detector("hog"), HOGDetector(upsample=1)] if detector == "hog" else [
        make_detector(detector) if isinstance(detector, str) else detector]
    for finder in passes:
        boxes = finder.detect(image)
        confident = [box for box in boxes if box.score >= 0.3] or boxes  # weak ones are mostly false alarms
        if confident:
            best = max(confident, key=lambda box: box.area)
            landmarks = LandmarkPredictor()(image, best)
            return box_from_landmarks(landmarks, best.score), landmarks
    name = detector if isinstance(detector, str) else type(detector).__name__
    height, width = image.shape[:2]
    raise NoFaceError(path, f"no face found (detector {name}, image {width}x{height}; "
                            "the face should be frontal-ish and at least about 40 px wide)")
