"""Face crops and the transforms that map them back: FOMM/VoxCeleb-style boxes, FFHQ-style alignment and
the face-processor alignment of SDA and Diffused Heads (CREMA).

A crop is made by one affine warp of the frame (`CropTransform.matrix`, frame -> crop pixel
coordinates). Shrinking by more than about 1.4x first area-filters the face's neighbourhood, so crops
of 1080p faces do not alias; regions outside the frame are filled by edge replication or reflection,
never black. Box and quad corners map to the crop's outer pixel edges.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Iterator, TypeVar

import cv2
import numpy as np

from ..errors import InputError
from ._image import as_landmarks, as_rgb_image
from .detect import Box
from .landmarks import box_from_landmarks
from .smoothing import TemporalSmoother

P = TypeVar("P")

BORDERS = {"replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101, "constant": cv2.BORDER_CONSTANT}
_AREA_FILTER_BELOW = 0.7  # warp scales under this first shrink the source with an area filter


@dataclasses.dataclass
class CropTransform:
    """Where a crop came from: `matrix` (2, 3) maps frame pixel coordinates to crop pixel coordinates."""

    matrix: np.ndarray
    crop_size: int
    frame_size: tuple[int, int]

    def inverse(self) -> np.ndarray:
        """The (2, 3) matrix mapping crop coordinates back to frame coordinates."""
        return cv2.invertAffineTransform(np.asarray(self.matrix, dtype=np.float64))

    @property
    def scale(self) -> float:
        """Crop pixels per frame pixel (geometric mean over both axes)."""
        return float(math.sqrt(abs(np.linalg.det(np.asarray(self.matrix)[:, :2]))))

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Frame points (N, 2) in crop coordinates."""
        return _apply(self.matrix, points)

    def to_frame(self, points: np.ndarray) -> np.ndarray:
        """Crop points (N, 2) in frame coordinates."""
        return _apply(self.inverse(), points)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ np.asarray(matrix, dtype=np.float64)[:, :2].T + np.asarray(matrix, dtype=np.float64)[:, 2]


def _border_flag(border: str) -> int:
    if border not in BORDERS:
        raise InputError(None, f"unknown border mode {border!r}; choose one of {', '.join(BORDERS)}")
    return BORDERS[border]


def warp_to_crop(frame: np.ndarray, matrix: np.ndarray, size: int, border: str = "replicate") -> np.ndarray:
    """The (size, size) crop that `matrix` (frame -> crop) defines, bicubic, anti-aliased when shrinking."""
    frame = as_rgb_image(frame, "frame")
    matrix = np.asarray(matrix, dtype=np.float64)
    flag = _border_flag(border)
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    if scale < _AREA_FILTER_BELOW:
        frame, matrix = _area_shrunk_source(frame, matrix, size, scale)
    return cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=flag)


def _area_shrunk_source(frame: np.ndarray, matrix: np.ndarray, size: int,
                        scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The frame's region under the crop, shrunk by an area filter to about the crop's scale, and the
    matrix from that shrunk region to the crop."""
    corners = _apply(cv2.invertAffineTransform(matrix), [[-1, -1], [size, -1], [-1, size], [size, size]])
    margin = 4 / scale  # a few crop pixels, for the bicubic kernel
    x0, y0 = np.floor(corners.min(axis=0) - margin).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0) + margin).astype(int) + 1
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if x1 - x0 < 2 or y1 - y0 < 2:  # the crop lies (almost) wholly outside the frame
        return frame, matrix
    region = frame[y0:y1, x0:x1]
    out_w, out_h = max(2, round(region.shape[1] * scale)), max(2, round(region.shape[0] * scale))
    shrunk = cv2.resize(region, (out_w, out_h), interpolation=cv2.INTER_AREA)
    fx, fy = out_w / region.shape[1], out_h / region.shape[0]
    # shrunk pixel (u, v) sits at frame ((u + 0.5) / fx - 0.5 + x0, (v + 0.5) / fy - 0.5 + y0)
    to_frame = np.array([[1 / fx, 0, 0.5 / fx - 0.5 + x0], [0, 1 / fy, 0.5 / fy - 0.5 + y0], [0, 0, 1]])
    return shrunk, np.vstack([matrix, [0, 0, 1]])[:2] @ to_frame


def box_crop_matrix(box: Box, size: int) -> np.ndarray:
    """The frame -> crop matrix that maps `box`'s edges onto the edges of a (size, size) crop."""
    if not (box.width > 0 and box.height > 0 and size > 0):
        raise InputError(None, f"cannot crop an empty box {box} to {size} pixels")
    sx, sy = size / box.width, size / box.height
    return np.array([[sx, 0.0, -0.5 - sx * box.left], [0.0, sy, -0.5 - sy * box.top]])


# FOMM's crop-video.py enlarges a face box by `increase` of its size on every side, and the shorter side
# further, to the longer one: a square of (1 + 2 increase) x the box's longer side, on the same centre.
# FOMM then clips that square to the frame (and the ffmpeg scale that follows squashes the face); we keep
# it square and pad instead. Its default 0.1 applies to face_alignment's S3FD box joined over a whole
# clip (which covers the head's motion); for one dlib-sized box per frame, the VoxCeleb-style crops in
# our test media (FADM's source.png and driving.mp4) measure 0.32-0.36, hence our default of 0.3.
FOMM_INCREASE = 0.3


def fomm_box(box_or_landmarks: Box | np.ndarray, frame_size: tuple[int, int], increase: float = FOMM_INCREASE,
             *, keep_inside: bool = False) -> Box:
    """The square FOMM/VoxCeleb-style crop box around a face (a detector box, or 68 landmarks, which
    are turned into a detector-like box by `box_from_landmarks`).

    keep_inside=True shifts the square (and shrinks it if it is larger than the frame) so that it lies
    inside the frame; by default it stays centred on the face and `fomm_crop` pads what lies outside."""
    box = box_or_landmarks if isinstance(box_or_landmarks, Box) else box_from_landmarks(box_or_landmarks)
    if not increase > -0.5 or box.width <= 0 or box.height <= 0:
        raise InputError(None, f"fomm_box: need a non-empty box and increase > -0.5, got {box} and {increase}")
    side = (1 + 2 * increase) * max(box.width, box.height)
    center = box.center
    if keep_inside:
        height, width = frame_size
        side = min(side, height - 1.0, width - 1.0)
        center = (min(max(center[0], side / 2), width - 1 - side / 2),
                  min(max(center[1], side / 2), height - 1 - side / 2))
    return Box.square(center, side, box.score)


def fomm_crop(frame: np.ndarray, box: Box, size: int = 256, *,
              border: str = "replicate") -> tuple[np.ndarray, CropTransform]:
    """The (size, size, 3) crop of `box` (normally a `fomm_box`) and its transform."""
    frame = as_rgb_image(frame, "frame")
    matrix = box_crop_matrix(box, size)
    return warp_to_crop(frame, matrix, size, border), CropTransform(matrix, size, frame.shape[:2])


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """The FFHQ dataset's oriented crop square (4, 2): top-left, bottom-left, bottom-right, top-right.

    The published rule (NVlabs ffhq-dataset, recreate_aligned_images): from the eye centres and the
    mouth corners, x is the eye-to-eye vector turned towards the perpendicular of eye-to-mouth,
    its half-length max(2 x eye distance, 1.8 x eye-to-mouth distance); y is x turned by 90 degrees;
    the centre is the eyes' midpoint moved 0.1 of the way towards the mouth."""
    points = as_landmarks(landmarks)
    eye_left, eye_right = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = (points[48] + points[54]) / 2 - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])  # eye_to_mouth turned 90 degrees
    if not np.hypot(*x) > 0:
        raise InputError(None, "ffhq_quad: degenerate landmarks (eyes and mouth at one point)")
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8) / np.hypot(*x)
    y = np.array([-x[1], x[0]])
    center = eye_avg + eye_to_mouth * 0.1
    return np.stack([center - x - y, center - x + y, center + x + y, center + x - y])


def quad_crop_matrix(quad: np.ndarray, size: int) -> np.ndarray:
    """The frame -> crop matrix mapping a square quad (TL, BL, BR, TR) onto the crop's outer edges."""
    quad = np.asarray(quad, dtype=np.float64)
    source = np.hstack([quad[[0, 1, 3]], np.ones((3, 1))])
    target = np.array([[-0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, -0.5]])
    return np.linalg.solve(source, target).T


def ffhq_align(frame: np.ndarray, landmarks: np.ndarray, size: int = 256, *,
               border: str = "reflect") -> tuple[np.ndarray, CropTransform]:
    """The FFHQ-aligned (size, size, 3) face crop (one similarity warp of the frame) and its transform.
    FFHQ itself pads with reflection, hence the default border."""
    frame = as_rgb_image(frame, "frame")
    matrix = quad_crop_matrix(ffhq_quad(landmarks), size)
    return warp_to_crop(frame, matrix, size, border), CropTransform(matrix, size, frame.shape[:2])


# -- face-processor alignment (SDA, Diffused Heads) -----------------------------------------------------
# DinoMan/face-processor at 239c5ce (face_processor/processor.py, `warp_img` and `normalise_face`; main.py, the
# --scale/--offset/--out_size handling; README.md, the video command `--offset 0.11 0.336 0.155`) fits a
# least-squares similarity (skimage 'similarity', i.e. Umeyama) from five stable landmarks - the nose tip
# (33) and the outer and inner corners of both eyes (36, 39, 42, 45) - onto the same five points of a
# mean face, and warps the frame with it. The mean face (the repository's top-level mean_face.npy, the
# one its README passes with -m; the package's own data/mean_face.npy, used when none is given, is
# another face with a shorter lower face) is moved so that its landmark box starts at 0.11 x box width from the
# left and 0.336 x box height from the top; the output is (1 + 2 x 0.11) box widths by
# (1 + 0.336 + 0.155) box heights: for that mean face (box 224 x 244, integer pixels as main.py rounds
# them) a 273 x 363 (3:4 portrait) canvas.
# Our crops are square: we keep face-processor's vertical layout (the canvas height is the square's
# side) and centre its canvas horizontally in the square, i.e. 45 more canvas pixels of margin on each
# side. The numbers below are the five template points in that square, normalised so that its outer
# pixel edges are at 0 and 1 ((x + 0.5) / 363 with x the pixel centre), computed once from the mean
# face and kept here as our own data. The mean face is not quite symmetric: its eye line drops about
# 1.5 degrees to the image left, and so do the aligned crops, as in face-processor.
SDA_STABLE_POINTS = (33, 36, 39, 42, 45)   # nose tip; outer and inner corner of the image-left eye; of the right
SDA_TEMPLATE = np.array([
    [0.51364, 0.56555],   # 33 nose tip
    [0.31684, 0.34425],   # 36 outer corner, image-left eye
    [0.42437, 0.35020],   # 39 inner corner, image-left eye
    [0.58725, 0.34304],   # 42 inner corner, image-right eye
    [0.69329, 0.33371],   # 45 outer corner, image-right eye
])
# Where the same mean face has its other features in the square (not used by the fit; for checks and
# for callers that place things relative to the template): the eye centres (means of 36-41 and 42-47),
# the mouth centre (mean of the corners 48 and 54), the chin (8), and its landmark box (left, top,
# right, bottom; jaw ends to brows and chin).
SDA_EYE_CENTERS = np.array([[0.36872, 0.34597], [0.64322, 0.33853]])
SDA_MOUTH_CENTER = np.array([0.51929, 0.68801])
SDA_CHIN = np.array([0.52365, 0.89713])
SDA_FACE_BOX = (0.19198, 0.22503, 0.80990, 0.89713)


def similarity_fit(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The (2, 3) similarity (rotation, uniform scale, translation; no reflection) that maps the points
    `source` (N, 2) onto `target` (N, 2) with the least sum of squared errors in target space."""
    source = np.asarray(source, dtype=np.float64).reshape(-1, 2)
    target = np.asarray(target, dtype=np.float64).reshape(-1, 2)
    # As complex numbers the map is w = a z + b; least squares gives a from the centred points.
    z, w = source[:, 0] + 1j * source[:, 1], target[:, 0] + 1j * target[:, 1]
    zc, wc = z - z.mean(), w - w.mean()
    spread = float(np.sum(np.abs(zc) ** 2))
    if not spread > 1e-12:
        raise InputError(None, "similarity_fit: the source points coincide")
    a = np.sum(wc * np.conj(zc)) / spread
    b = w.mean() - a * z.mean()
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def sda_quad(landmarks: np.ndarray) -> np.ndarray:
    """The face-processor (SDA / Diffused Heads) crop square in the frame (4, 2): top-left, bottom-left,
    bottom-right, top-right, as `ffhq_quad`. It is where the template square lands under the inverse of
    the least-squares similarity from the five stable landmarks to `SDA_TEMPLATE`."""
    points = as_landmarks(landmarks)
    to_template = similarity_fit(points[list(SDA_STABLE_POINTS)], SDA_TEMPLATE)
    if not abs(np.linalg.det(to_template[:, :2])) > 1e-12:
        raise InputError(None, "sda_quad: degenerate landmarks (eyes and nose at one point)")
    unit = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    return _apply(cv2.invertAffineTransform(to_template), unit)


def sda_align_matrix(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The frame -> crop (2, 3) similarity of the face-processor alignment for a (size, size) crop:
    the stable landmarks land on `SDA_TEMPLATE` x size (in pixel-edge coordinates) as closely as a
    similarity allows."""
    return quad_crop_matrix(sda_quad(landmarks), size)


def sda_align(frame: np.ndarray, landmarks: np.ndarray, size: int = 128, *,
              border: str = "replicate") -> tuple[np.ndarray, CropTransform]:
    """The face-processor-aligned (size, size, 3) crop (SDA / Diffused Heads CREMA layout; their models
    take 128 px) and its transform. face-processor fills outside the frame with black; we replicate the
    edge by default, as the FOMM crops do (CREMA's faces never reach the frame's edge)."""
    frame = as_rgb_image(frame, "frame")
    matrix = sda_align_matrix(landmarks, size)
    return warp_to_crop(frame, matrix, size, border), CropTransform(matrix, size, frame.shape[:2])


def quad_from_center_axis(center: np.ndarray, x: np.ndarray) -> np.ndarray:
    y = np.array([-x[1], x[0]])
    return np.stack([center - x - y, center - x + y, center + x + y, center + x - y])


class FFHQAligner:
    """FFHQ alignment for a video, with the quad's centre, size and angle smoothed over time (zero-lag
    centred smoothing over `smoothing` frames, see `smoothing.py`, so the crop neither jitters nor lags).

    `align` streams: it takes (frame, landmarks or None) pairs and yields (frame, crop, transform),
    crop and transform None where the landmarks were None; it holds a few frames of look-ahead."""

    def __init__(self, size: int = 256, smoothing: float = 2.0, border: str = "reflect"):
        self.size = int(size)
        self.smoothing = float(smoothing)
        self.border = border
        _border_flag(border)

    def align(self, pairs: Iterable[tuple[np.ndarray, np.ndarray | None]]
              ) -> Iterator[tuple[np.ndarray, np.ndarray | None, CropTransform | None]]:
        smoother: TemporalSmoother[np.ndarray] = TemporalSmoother(self.smoothing)
        segment, previous = 0, None
        for frame, landmarks in pairs:
            value = None
            if landmarks is not None:
                quad = ffhq_quad(landmarks)
                center, axis = quad.mean(axis=0), (quad[3] - quad[0]) / 2
                # A jump of more than half the crop is a cut or another face: do not blend across it.
                if previous is None or np.linalg.norm(center - previous[:2]) > np.linalg.norm(axis):
                    segment += 1
                value = np.concatenate([center, axis])
            previous = value
            for item in smoother.push(frame, value, segment):
                yield self._crop(*item)
        for item in smoother.flush():
            yield self._crop(*item)

    def _crop(self, frame: np.ndarray, value: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray | None, CropTransform | None]:
        if value is None:
            return frame, None, None
        matrix = quad_crop_matrix(quad_from_center_axis(value[:2], value[2:]), self.size)
        crop = warp_to_crop(frame, matrix, self.size, self.border)
        return frame, crop, CropTransform(matrix, self.size, frame.shape[:2])


class CropSmoother:
    """Temporal smoothing of crop boxes (centre and log size; zero-lag centred window, `sigma` frames).

    `smooth` streams (payload, box or None) pairs back in order with the boxes smoothed; payloads (a
    frame, an observation) pass through. A missing box or a jump (IoU < 0.3 with the previous box)
    starts a new segment that is not blended with the one before."""

    def __init__(self, sigma: float = 3.0):
        self.sigma = float(sigma)

    def smooth(self, items: Iterable[tuple[P, Box | None]]) -> Iterator[tuple[P, Box | None]]:
        smoother: TemporalSmoother[tuple[P, float]] = TemporalSmoother(self.sigma)
        segment, previous = 0, None
        for payload, box in items:
            value = None
            if box is not None and (box.width <= 0 or box.height <= 0):
                box = None  # an empty box carries no position to smooth
            if box is not None:
                if previous is None or previous.iou(box) < 0.3:
                    segment += 1
                value = np.array([*box.center, math.log(box.width), math.log(box.height)])
            previous = box
            for (out_payload, score), smoothed in smoother.push((payload, box.score if box else 1.0), value, segment):
                yield out_payload, _box_from_vector(smoothed, score)
        for (out_payload, score), smoothed in smoother.flush():
            yield out_payload, _box_from_vector(smoothed, score)


def _box_from_vector(value: np.ndarray | None, score: float) -> Box | None:
    if value is None:
        return None
    cx, cy, half_w, half_h = value[0], value[1], math.exp(value[2]) / 2, math.exp(value[3]) / 2
    return Box(float(cx - half_w), float(cy - half_h), float(cx + half_w), float(cy + half_h), score)
