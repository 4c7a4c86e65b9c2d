"""Follow one face through a video, streaming: a detector now and then, landmark tracking in between.

Per frame the tracker re-fits dlib's 68 landmarks (about 1 ms) in the box the previous frame's
landmarks give, and checks the result: same size and place as before, and the face still looks like
the face of the previous frame (normalised correlation of a small grey patch between the eyes and
the mouth). A detector runs on a shrunk copy of the frame every `detect_every` frames, and at once
when the check fails: a cut, the face leaving, a blank frame. Frames without the face are reported
(`found=False`), never raised.

Only the head's rigid motion (position, scale, in-plane angle) is smoothed, with the zero-lag centred
smoother of `smoothing.py`, so boxes and crops neither jitter nor lag; the expression (mouth, eyes) is
kept as measured, so lip motion is not damped. The tracker holds `lookahead` frames for that.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Iterator

import cv2
import numpy as np

from ..errors import InputError
from ._image import as_rgb_image
from .detect import Box, FaceDetector, make_detector
from .landmarks import FaceEmbedder, LandmarkPredictor, box_from_landmarks, embedding_distance, head_frame
from .smoothing import TemporalSmoother

_CHIP = 32  # side of the grey appearance patch, pixels
_MIN_CHIP_STD = 2.0  # a flatter patch (blank frame, wall) is not a face
_KEEP_IOU = 0.5  # a detection this close to the tracked box confirms the tracked landmarks as they are
_MATCH_IOU = 0.3  # ...this close: same face, landmarks re-fitted in the detector's box
_STRONG_SCORE = 0.3  # when such detections exist, weaker ones (mostly false positives) are ignored


@dataclasses.dataclass
class FaceObservation:
    """The tracked face on one frame. `detected`: a detector ran on this frame and found this face;
    `found`: the face is on this frame (detected or tracked). box and landmarks are smoothed; box is
    derived from the landmarks (`box_from_landmarks`) so it is the same kind of box on every frame."""

    index: int
    box: Box | None
    landmarks: np.ndarray | None
    detected: bool
    found: bool
    raw_landmarks: np.ndarray | None = None  # as fitted on this frame, before smoothing


@dataclasses.dataclass
class TrackSummary:
    """How a tracking run went: frames seen, frames with the face, and the runs of frames without it."""

    frames: int
    found: int
    missing: list[tuple[int, int]]

    @property
    def missing_text(self) -> str:
        """The missing frames as ranges, e.g. "12-30, 77" ("" when none)."""
        return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in self.missing)

    def __str__(self) -> str:
        text = f"face found in {self.found} of {self.frames} frames"
        return text + (f"; missing: {self.missing_text}" if self.missing else "")


@dataclasses.dataclass
class _Fit:
    """One frame's raw result, before smoothing."""

    landmarks: np.ndarray | None
    detected: bool
    segment: int


def _rigid_vector(landmarks: np.ndarray | None) -> np.ndarray | None:
    """What is smoothed: centroid x, y, log spread, and the angle as (cos, sin) so it never wraps."""
    if landmarks is None:
        return None
    center, spread, angle = head_frame(landmarks)
    return np.array([center[0], center[1], math.log(spread), math.cos(angle), math.sin(angle)])


def _apply_rigid(landmarks: np.ndarray, smoothed: np.ndarray) -> np.ndarray:
    """`landmarks` moved so that their rigid frame is `smoothed`; their shape (expression) is kept."""
    center, spread, angle = head_frame(landmarks)
    turn = math.atan2(smoothed[4], smoothed[3]) - angle
    scale = math.exp(smoothed[2]) / spread
    rotation = scale * np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
    return ((landmarks - center) @ rotation.T + smoothed[:2]).astype(np.float32)


def appearance_chip(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """A small grey patch of the central face (eyes to mouth), upright and scale-normalised, with zero
    mean and unit spread; None where the patch is flat (no face can be there)."""
    center, spread, angle = head_frame(landmarks)
    work = 4 * _CHIP  # sample at 4x then area-shrink: a 1080p face would alias at 32 px directly
    k = work / (4.0 * spread)
    cos_k, sin_k = k * math.cos(angle), k * math.sin(angle)
    matrix = np.array([[cos_k, sin_k, 0.0], [-sin_k, cos_k, 0.0]])
    matrix[:, 2] = (work - 1) / 2 - matrix[:, :2] @ center
    patch = cv2.warpAffine(frame, matrix, (work, work), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    grey = cv2.resize(cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY), (_CHIP, _CHIP), interpolation=cv2.INTER_AREA)
    grey = grey.astype(np.float32) - grey.mean()
    std = float(grey.std())
    return grey / std if std >= _MIN_CHIP_STD else None


@dataclasses.dataclass
class _Track:
    """The face being followed: its last raw landmarks, appearance patch and motion per frame."""

    landmarks: np.ndarray
    chip: np.ndarray
    velocity: np.ndarray


class FaceTracker:
    """Streaming face tracker; see the module docstring for how it works.

    detector: "hog", "mmod" or any `FaceDetector`; a named one runs on frames shrunk to
      `detect_max_side` (HOG finds faces from about 80 px in the shrunk frame, so at 1080p and 960
      from about 160 px; raise it for smaller faces).
    detect_every: frames between detector runs while tracking holds (it also runs whenever it fails).
    select: which face to follow when there are several: "largest"; an int, counting faces from the
      image's left to right by box centre (0 = leftmost); or a 128-d reference embedding (`FaceEmbedder`):
      the closest face within `match_threshold` (dlib's 0.6), none if no face is that close.
      Once a face is followed it is kept (by overlap) until it is lost; then the rule applies again.
    smoothing: Gaussian sigma, in frames, of the zero-lag smoothing of head motion (0 = off).
    min_face: detections narrower than this (pixels, full frame) are ignored.
    min_similarity: the appearance correlation between consecutive frames below which tracking is
      taken as lost (a cut, a blank or covered face) and the detector decides."""

    def __init__(self, detector: str | FaceDetector = "hog", detect_every: int = 10, detect_max_side: int = 960,
                 select: str | int | np.ndarray = "largest", smoothing: float = 2.0, min_face: int = 40, *,
                 match_threshold: float = 0.6, min_similarity: float = 0.5):
        if detect_every < 1 or min_face < 0 or smoothing < 0:
            raise InputError(None, f"FaceTracker: need detect_every >= 1, min_face >= 0, smoothing >= 0; got "
                                   f"{detect_every}, {min_face}, {smoothing}")
        self.detector = (make_detector(detector, max_side=detect_max_side) if isinstance(detector, str)
                         else detector)
        self.detect_every, self.min_face, self.smoothing = int(detect_every), int(min_face), float(smoothing)
        self.match_threshold, self.min_similarity = float(match_threshold), float(min_similarity)
        self.select = _check_select(select)
        self._predictor = LandmarkPredictor()
        self._embedder = FaceEmbedder() if isinstance(self.select, np.ndarray) else None
        self._reset()

    @property
    def lookahead(self) -> int:
        """How many frames the tracker holds before yielding (the smoothing window ahead)."""
        return TemporalSmoother(self.smoothing).lookahead

    def _reset(self) -> None:
        self._track: _Track | None = None
        self._segment = 0
        self._last_detector_run = -(10 ** 9)
        self._frames, self._found, self._missing = 0, 0, []

    def track(self, frames: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, FaceObservation]]:
        """Yield (frame, observation) for every frame, in order, `lookahead` frames behind the input."""
        self._reset()
        smoother: TemporalSmoother[tuple[int, np.ndarray, _Fit]] = TemporalSmoother(self.smoothing)
        for index, frame in enumerate(frames):
            frame = as_rgb_image(frame, f"frame {index}")
            fit = self._fit(index, frame)
            self._count(index, fit)
            for payload, rigid in smoother.push((index, frame, fit), _rigid_vector(fit.landmarks), fit.segment):
                yield _observation(*payload, rigid)
        for payload, rigid in smoother.flush():
            yield _observation(*payload, rigid)

    def summary(self) -> TrackSummary:
        """Frames seen, frames with the face, and the missing frame ranges of the last `track` run."""
        return TrackSummary(self._frames, self._found, list(self._missing))

    def _count(self, index: int, fit: _Fit) -> None:
        self._frames += 1
        if fit.landmarks is not None:
            self._found += 1
        elif self._missing and self._missing[-1][1] == index - 1:
            self._missing[-1] = (self._missing[-1][0], index)
        else:
            self._missing.append((index, index))

    def _fit(self, index: int, frame: np.ndarray) -> _Fit:
        """This frame's raw landmarks: tracked, confirmed or corrected by the detector, or re-acquired."""
        refit = self._refit(frame) if self._track is not None else None
        if refit is not None and index - self._last_detector_run < self.detect_every:
            return self._keep(refit, detected=False)
        boxes = self._candidates(frame)
        self._last_detector_run = index
        if self._track is not None:
            tracked = box_from_landmarks(refit[0] if refit is not None else self._track.landmarks)
            best = max(boxes, key=tracked.iou, default=None)
            overlap = tracked.iou(best) if best is not None else 0.0
            if refit is not None and overlap >= _KEEP_IOU:
                return self._keep(refit, detected=True)
            if overlap >= _MATCH_IOU:  # same face, but the tracked landmarks had drifted or failed
                corrected = self._checked(frame, self._predictor(frame, best))
                if corrected is not None:
                    return self._keep(corrected, detected=True)
            if refit is not None:  # the detector missed a face that still tracks (e.g. a turned head)
                return self._keep(refit, detected=False)
        return self._acquire(frame, boxes)

    def _refit(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Landmarks re-fitted where the face should be now (moving as it did last frame), with their
        chip, if they pass the checks."""
        dx, dy = self._track.velocity
        before = box_from_landmarks(self._track.landmarks)
        expected = Box(before.left + dx, before.top + dy, before.right + dx, before.bottom + dy)
        landmarks = self._predictor(frame, expected)
        after = box_from_landmarks(landmarks)
        moved = math.dist(expected.center, after.center)
        if not 0.7 < after.width / before.width < 1.4 or moved > 0.5 * before.width:
            return None
        return self._checked(frame, landmarks)

    def _checked(self, frame: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(landmarks, chip) if the face is inside the frame and looks like the tracked one, else None."""
        cx, cy = box_from_landmarks(landmarks).center
        if not (0 <= cx < frame.shape[1] and 0 <= cy < frame.shape[0]):
            return None
        chip = appearance_chip(frame, landmarks)
        if chip is None or float(np.mean(chip * self._track.chip)) < self.min_similarity:
            return None
        return landmarks, chip

    def _keep(self, fitted: tuple[np.ndarray, np.ndarray], detected: bool, new_face: bool = False) -> _Fit:
        landmarks, chip = fitted
        velocity = np.zeros(2)
        if self._track is not None and not new_face:
            velocity = head_frame(landmarks)[0] - head_frame(self._track.landmarks)[0]
        self._track = _Track(landmarks, chip, velocity)
        return _Fit(landmarks, detected, self._segment)

    def _candidates(self, frame: np.ndarray) -> list[Box]:
        """Detections big enough; if some are confident, the weak ones (mostly false positives) go."""
        boxes = [box for box in self.detector.detect(frame) if box.width >= self.min_face]
        if any(box.score >= _STRONG_SCORE for box in boxes):
            boxes = [box for box in boxes if box.score >= _STRONG_SCORE]
        return sorted(boxes, key=lambda box: box.area, reverse=True)

    def _acquire(self, frame: np.ndarray, boxes: list[Box]) -> _Fit:
        """Start following the face that `select` picks among `boxes` (a new smoothing segment)."""
        self._segment += 1
        landmarks = self._pick(frame, boxes)
        chip = appearance_chip(frame, landmarks) if landmarks is not None else None
        if chip is None:
            self._track = None
            return _Fit(None, False, self._segment)
        return self._keep((landmarks, chip), detected=True, new_face=True)

    def _pick(self, frame: np.ndarray, boxes: list[Box]) -> np.ndarray | None:
        if not boxes:
            return None
        if isinstance(self.select, str):  # "largest": boxes come largest first
            return self._predictor(frame, boxes[0])
        if isinstance(self.select, int):
            left_to_right = sorted(boxes, key=lambda box: box.center[0])
            return self._predictor(frame, left_to_right[self.select]) if self.select < len(boxes) else None
        fitted = [self._predictor(frame, box) for box in boxes]
        distances = [embedding_distance(self._embedder(frame, points), self.select) for points in fitted]
        best = int(np.argmin(distances))
        return fitted[best] if distances[best] <= self.match_threshold else None


def _check_select(select: str | int | np.ndarray) -> str | int | np.ndarray:
    if isinstance(select, str):
        if select != "largest":
            raise InputError(None, "FaceTracker: select must be 'largest', a face index or an embedding, "
                                   f"got {select!r}")
        return select
    if isinstance(select, (int, np.integer)) and not isinstance(select, bool):
        if select < 0:
            raise InputError(None, f"FaceTracker: face index must be >= 0 (0 = leftmost), got {select}")
        return int(select)
    reference = np.asarray(select, dtype=np.float32).reshape(-1)
    if reference.shape != (128,) or not np.isfinite(reference).all():
        raise InputError(None, "FaceTracker: a reference embedding must be 128 finite numbers, "
                               f"got shape {reference.shape}")
    return reference


def _observation(index: int, frame: np.ndarray, fit: _Fit, rigid: np.ndarray | None
                 ) -> tuple[np.ndarray, FaceObservation]:
    if fit.landmarks is None or rigid is None:
        return frame, FaceObservation(index, None, None, detected=False, found=False)
    landmarks = _apply_rigid(fit.landmarks.astype(np.float64), rigid)
    return frame, FaceObservation(index, box_from_landmarks(landmarks), landmarks, fit.detected, True,
                                  raw_landmarks=fit.landmarks)
