"""Whole-video face tracks for offline work (datasets, the `track` command): two streamed passes.

Pass 1 tracks the face and keeps only its landmarks (68 points a frame, never the frames). Frames
without a face get landmarks interpolated between their neighbours (held at the ends), so every frame
has a crop and the timing of the clip is kept. The crop windows are then smoothed over the whole clip
(zero lag, nothing to wait for) and pass 2 decodes the video again and cuts the crops.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Iterable, Iterator

import numpy as np

from ..errors import InputError, NoFaceError
from ..progress import progress
from .crop import (FOMM_INCREASE, CropTransform, quad_from_center_axis, box_crop_matrix, ffhq_quad, fomm_box,
                   quad_crop_matrix, sda_quad, warp_to_crop)
from .detect import Box
from .smoothing import smooth_sequence
from .track import FaceTracker

SQUARE_CROP, FFHQ_CROP = "fomm", "ffhq"   # VoxCeleb/FOMM-style square crops; FFHQ alignment
SDA_CROP = "sda"                          # face-processor alignment (SDA, Diffused Heads on CREMA)
CROP_KINDS = (SQUARE_CROP, FFHQ_CROP, SDA_CROP)
_QUADS = {FFHQ_CROP: (ffhq_quad, "reflect"), SDA_CROP: (sda_quad, "replicate")}  # aligned kinds: quad, border


@dataclasses.dataclass
class CropPlan:
    """One crop transform per frame of a video."""

    transforms: list[CropTransform]
    border: str = "replicate"

    def matrices(self) -> np.ndarray:
        """(N, 2, 3) frame -> crop matrices."""
        return np.stack([t.matrix for t in self.transforms]).astype(np.float64)

    def boxes(self) -> np.ndarray:
        """(N, 4) bounds (left, top, right, bottom) of each crop window in frame pixels."""
        size = self.transforms[0].crop_size
        corners = np.array([[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
        out = [np.concatenate([(p := t.to_frame(corners)).min(axis=0), p.max(axis=0)]) for t in self.transforms]
        return np.stack(out)

    def crop(self, frame: np.ndarray, index: int) -> np.ndarray:
        """The crop of frame `index` (bicubic, anti-aliased when shrinking, borders padded)."""
        transform = self.transforms[index]
        return warp_to_crop(frame, transform.matrix, transform.crop_size, self.border)

    def landmarks_in_crops(self, landmarks: np.ndarray) -> np.ndarray:
        """(N, 68, 2) frame landmarks mapped into their crops."""
        return np.stack([t.to_crop(points) for t, points in zip(self.transforms, landmarks)])


@dataclasses.dataclass
class FaceTrack:
    """The face over a whole video: landmarks (N, 68, 2) in frame pixels (interpolated where `found`
    is False), the frame rate and the frame size (h, w)."""

    landmarks: np.ndarray
    found: np.ndarray
    fps: float
    frame_size: tuple[int, int]

    def missing_ranges(self) -> list[str]:
        """Runs of frames without a face, e.g. ["12-30", "77"]."""
        ranges, start = [], None
        for index, ok in enumerate([*self.found.tolist(), True]):
            if not ok and start is None:
                start = index
            elif ok and start is not None:
                ranges.append(str(start) if index - 1 == start else f"{start}-{index - 1}")
                start = None
        return ranges

    def crop_plan(self, kind: str = "fomm", size: int = 256, *, smoothing: float = 2.0,
                  motion: str = "smooth", increase: float = FOMM_INCREASE) -> CropPlan:
        return plan_crops(self.landmarks, self.frame_size, kind, size, smoothing=smoothing, motion=motion,
                          increase=increase)


def track_video(path: str | os.PathLike, *, fps: float | None = None,
                tracker: FaceTracker | None = None) -> FaceTrack:
    """Pass 1: track the face through a video file. NoFaceError when no frame has a face."""
    from ..media import VideoReader

    tracker = tracker or FaceTracker()
    found_landmarks: list[np.ndarray | None] = []
    with VideoReader(path, fps=fps) as reader:
        frames = progress(tracker.track(reader), total=reader.frame_count, desc="tracking")
        for _, observation in frames:
            found_landmarks.append(observation.landmarks if observation.found else None)
        frame_size, rate = (reader.height, reader.width), reader.fps
    found = np.array([lm is not None for lm in found_landmarks], dtype=bool)
    if not found.any():
        raise NoFaceError(path, f"no face found in any of its {len(found)} frames (HOG detector; faces must be "
                                f"roughly frontal and at least ~{tracker.min_face} px wide)")
    return FaceTrack(fill_missing(found_landmarks), found, float(rate), frame_size)


def fill_missing(landmarks: list[np.ndarray | None]) -> np.ndarray:
    """(N, 68, 2) landmarks with the None frames interpolated linearly in time (held at the ends)."""
    known = [i for i, lm in enumerate(landmarks) if lm is not None]
    stacked = np.stack([landmarks[i] for i in known]).reshape(len(known), -1).astype(np.float64)
    times = np.arange(len(landmarks))
    filled = np.stack([np.interp(times, known, stacked[:, j]) for j in range(stacked.shape[1])], axis=1)
    return filled.reshape(len(landmarks), -1, 2)


def plan_crops(landmarks: np.ndarray, frame_size: tuple[int, int], kind: str, size: int, *,
               smoothing: float = 2.0, motion: str = "smooth", increase: float = FOMM_INCREASE) -> CropPlan:
    """Crop transforms for every frame. kind "fomm": square VoxCeleb-style boxes; "ffhq": FFHQ quads;
    "sda": face-processor alignment (similarity of five stable landmarks to a mean face, see `sda_quad`).
    motion "smooth": the window follows the face, smoothed with sigma `smoothing` frames (for the aligned
    kinds the square's centre and its rotated, scaled half-side; face-processor itself averages the
    stable points over the next 7 frames, a box filter that lags by 3 frames, where ours is centred);
    "fixed": one window for the whole clip (fomm only: the union of the boxes, as FOMM's crop-video.py
    does per segment, so head motion stays inside the crop)."""
    if kind not in CROP_KINDS:
        raise InputError(None, f"unknown crop kind {kind!r} (choose {', '.join(CROP_KINDS)})")
    if motion not in ("smooth", "fixed") or (motion == "fixed" and kind != "fomm"):
        raise InputError(None, f"crop motion {motion!r} is not available for {kind} crops")
    if kind in _QUADS:
        quad_of, border = _QUADS[kind]
        values = [np.concatenate([(q := quad_of(lm)).mean(axis=0), (q[3] - q[0]) / 2]) for lm in landmarks]
        values = _smooth(values, smoothing)
        matrices = [quad_crop_matrix(quad_from_center_axis(v[:2], v[2:]), size) for v in values]
        return CropPlan([CropTransform(m, size, frame_size) for m in matrices], border=border)
    boxes = [fomm_box(lm, frame_size, increase) for lm in landmarks]
    if motion == "fixed":
        boxes = [_union_square(boxes)] * len(boxes)
    else:
        values = _smooth([np.array([*b.center, math.log(b.width)]) for b in boxes], smoothing)
        boxes = [Box.square((v[0], v[1]), math.exp(v[2])) for v in values]
    return CropPlan([CropTransform(box_crop_matrix(b, size), size, frame_size) for b in boxes])


def _smooth(values: list[np.ndarray], sigma: float) -> list[np.ndarray]:
    return values if sigma <= 0 else smooth_sequence(values, sigma)


def _union_square(boxes: list[Box]) -> Box:
    left, top = min(b.left for b in boxes), min(b.top for b in boxes)
    right, bottom = max(b.right for b in boxes), max(b.bottom for b in boxes)
    return Box.square(((left + right) / 2, (top + bottom) / 2), max(right - left, bottom - top))


def crop_video_frames(frames: Iterable[np.ndarray], plan: CropPlan) -> Iterator[np.ndarray]:
    """Pass 2: the crops of a video's frames, one per transform of `plan`."""
    for index, frame in enumerate(frames):
        if index >= len(plan.transforms):
            break
        yield plan.crop(frame, index)
