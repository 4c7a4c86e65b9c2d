"""Hallo-style region masks for EMO / Hallo talking heads, from dlib's 68 landmarks.

Hallo (fudan-generative-vision/hallo, `hallo/utils/util.py` and `hallo/datasets/image_processor.py`)
builds, for the reference image the model sees (S x S):

* a hard face box: bounds of the MediaPipe face-mesh silhouette, grown by `expand_region`
  (ratio `face_expand_ratio`, 1.2 by default); the hard mask (255 inside) is the face locator's input;
* a hard lip box: bounds of the outer-lip contour, grown by `expand_region` with ratio 2.0;
* both shrunk to 64 x 64, Gaussian-blurred (kernel 51 for the face, 31 for the lips, sigma from the
  kernel) and min-max stretched to 0..255 (`blur_mask`);
* three soft attention masks from those: background = 255 - face (Hallo's float formula, truncated to
  uint8), face = face - lip (saturating), lip = lip;
* each resized (PIL bilinear, i.e. torchvision's Resize on a PIL image) to (S/d) x (S/d) for
  d = 8, 16, 32, 64, scaled to [0, 1] and flattened row-major to (1, tokens).

This module does the same with dlib's landmarks in place of MediaPipe's. The one real difference is the
silhouette: MediaPipe's runs over the forehead (its top point, mesh id 10, sits high on the forehead)
while dlib's jaw and brows stop at the eyebrows. We add a raised copy of the brows (see
`FOREHEAD_RAISE`) so the box's top lands where MediaPipe's does (measured on two photos).

Landmarks are (68, 2) pixel coordinates (x, y) in the image the masks are for (see faceanim.face).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import cv2
import numpy as np
import torch
from PIL import Image

from faceanim.face import as_landmarks
from faceanim.face.landmarks import eye_axis

JAW = slice(0, 17)
BROWS = slice(17, 27)
MOUTH = slice(48, 68)
CHIN = 8

# The brows raised along the face's own "up" by this fraction of the (mean-brow)-to-chin height stand in
# for the top of MediaPipe's silhouette (mesh ids 10, 338, 109, ... on the upper forehead). Measured, not
# guessed: MediaPipe face mesh (0.10.14, mp.solutions.face_mesh) and dlib's 68 points on two photos
# (scikit-image's astronaut, 512 px; our 256 px test portrait) put the mesh top 0.23 and 0.25 of the
# brow-to-chin height above the mean brow line; raising every brow point (the highest brow point leads)
# by 0.2 reproduces the mesh's top within 2.3 px and 0.6 px, and the whole 1.2-expanded face box within
# 4 px on each side. (Facial thirds would put the hairline at about 0.5 - the mesh stops well below it.)
FOREHEAD_RAISE = 0.2

LEVELS = (8, 16, 32, 64)  # the UNet strides Hallo makes attention masks for (64, 32, 16, 8 tokens at 512)
BLUR_SIZE = (64, 64)
FACE_KERNEL = (51, 51)
LIP_KERNEL = (31, 31)
FACE_EXPAND_RATIO = 1.2
LIP_EXPAND_RATIO = 2.0

Region = tuple[int, int, int, int]  # (min_x, max_x, min_y, max_y), as Hallo's expand_region returns it


@dataclass
class RegionMasks:
    """Hallo's attention masks and face-locator input for one S x S image.

    `full`, `face`, `lip`: one float32 tensor (1, (S/d)^2) per level d of `levels`, values in [0, 1]
    (background, face without lips, lips). `face_region`: (3, S, S) float32, 1 inside the hard face box.
    `face_box` / `lip_box`: the hard boxes (min_x, max_x, min_y, max_y); `lip_box` is None when no
    face was given."""

    full: list[torch.Tensor]
    face: list[torch.Tensor]
    lip: list[torch.Tensor]
    face_region: torch.Tensor
    face_box: Region
    lip_box: Region | None


def expand_region(region: Sequence[float], image_w: int, image_h: int, expand_ratio: float = 1.0) -> Region:
    """Hallo's `expand_region`, with its arithmetic kept: centre and half-side floored with `//` on
    floats, the box pushed back inside the image when it sticks out (moved, not cut), Python `round`
    (half to even) at the end. A box longer than the image still ends with a negative start."""
    min_x, max_x, min_y, max_y = (float(v) for v in region)
    ratio = float(expand_ratio)
    centre_x, centre_y = (min_x + max_x) // 2, (min_y + max_y) // 2
    half_w, half_h = ((max_x - min_x) * ratio) // 2, ((max_y - min_y) * ratio) // 2
    min_x, max_x = centre_x - half_w, centre_x + half_w
    min_y, max_y = centre_y - half_h, centre_y + half_h
    if min_x < 0:
        min_x, max_x = 0.0, max_x - min_x
    if max_x > image_w:
        min_x, max_x = min_x - (max_x - image_w), float(image_w)
    if min_y < 0:
        min_y, max_y = 0.0, max_y - min_y
    if max_y > image_h:
        min_y, max_y = min_y - (max_y - image_h), float(image_h)
    return round(min_x), round(max_x), round(min_y), round(max_y)


def _rounded_bounds(points: np.ndarray) -> tuple[float, float, float, float]:
    """(min_x, max_x, min_y, max_y) of the points, each rounded half to even as numpy does."""
    low, high = np.round(points.min(axis=0)), np.round(points.max(axis=0))
    return float(low[0]), float(high[0]), float(low[1]), float(high[1])


def silhouette_points(landmarks68: np.ndarray, width: int, height: int) -> np.ndarray:
    """The (37, 2) points standing in for MediaPipe's face silhouette: jaw 0-16, brows 17-26 and the
    brows raised by FOREHEAD_RAISE x the brows-to-chin height along the face's up direction (so a
    rolled head gets a rolled forehead). Only the raised points are clamped to the image; the measured
    ones are used as they are, as Hallo uses MediaPipe's."""
    points = as_landmarks(landmarks68)
    across = eye_axis(points)
    up = np.array([across[1], -across[0]])
    brows = points[BROWS]
    brow_to_chin = max(float(np.dot(brows.mean(axis=0) - points[CHIN], up)), 0.0)
    raised = brows + up * FOREHEAD_RAISE * brow_to_chin
    raised = np.clip(raised, [0.0, 0.0], [float(width), float(height)])
    return np.concatenate([points[JAW], brows, raised])


def face_box_from_landmarks(landmarks68: np.ndarray, width: int, height: int,
                            expand_ratio: float = FACE_EXPAND_RATIO) -> Region:
    """Hallo's face box (get_face_mask): rounded bounds of the silhouette, then expand_region."""
    return expand_region(_rounded_bounds(silhouette_points(landmarks68, width, height)), width, height,
                         expand_ratio)


def lip_box_from_landmarks(landmarks68: np.ndarray, width: int, height: int,
                           expand_ratio: float = LIP_EXPAND_RATIO) -> Region:
    """Hallo's lip box (get_lip_mask): rounded bounds of the mouth points 48-67, then expand_region."""
    return expand_region(_rounded_bounds(as_landmarks(landmarks68)[MOUTH]), width, height, expand_ratio)


def box_mask(box: Region | None, width: int, height: int) -> np.ndarray:
    """A uint8 (height, width) mask, 255 on rows min_y..max_y-1 and columns min_x..max_x-1.

    The box is clipped to the image: Hallo slices with the raw numbers, so a start below 0 (a box
    longer than the image) would wrap around there and leave only a strip near the far edge."""
    mask = np.zeros((int(height), int(width)), dtype=np.uint8)
    if box is not None:
        min_x, max_x, min_y, max_y = box
        mask[max(min_y, 0):max(max_y, 0), max(min_x, 0):max(max_x, 0)] = 255
    return mask


def blur_mask(mask: np.ndarray, kernel: tuple[int, int], size: tuple[int, int] = BLUR_SIZE) -> np.ndarray:
    """Hallo's blur_mask: cv2 bilinear resize to `size`, Gaussian blur (sigma from the kernel size),
    min-max stretch to 0..255; uint8 in, uint8 out. A constant input comes out all 0 (cv2.normalize
    maps a zero range to the lower bound)."""
    small = cv2.resize(np.ascontiguousarray(mask, dtype=np.uint8), size)
    blurred = cv2.GaussianBlur(small, kernel, 0)
    return cv2.normalize(blurred, None, 0, 255, cv2.NORM_MINMAX)


def background_mask(face_blur: np.ndarray) -> np.ndarray:
    """Hallo's get_background_mask: (1 - m / 255) * 255 in float64, truncated to uint8 (so a few
    values come out one below 255 - m)."""
    return ((1.0 - face_blur / 255.0) * 255).astype(np.uint8)


def level_tokens(mask: np.ndarray, side: int) -> torch.Tensor:
    """A uint8 mask as Hallo's attention transform gives it: PIL bilinear resize to side x side
    (torchvision's Resize on a PIL image), /255, flattened row-major to a float32 (1, side * side)."""
    resized = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="L").resize((side, side),
                                                                                           Image.BILINEAR)
    return torch.from_numpy(np.array(resized, dtype=np.uint8)).float().div(255).view(1, -1)


def region_image(mask: np.ndarray, size: int) -> torch.Tensor:
    """A hard uint8 mask as the face locator's (3, size, size) float32 input in [0, 1] (grey to RGB,
    PIL bilinear resize, /255), as Hallo's cond_transform gives it."""
    rgb = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="L").convert("RGB")
    rgb = rgb.resize((int(size), int(size)), Image.BILINEAR)
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).float().div(255).contiguous()


def _check_size(size: int, levels: Iterable[int] = ()) -> int:
    size = int(size)
    if size < 1:
        raise ValueError(f"image size must be positive, got {size}")
    for stride in levels:
        if int(stride) < 1 or size // int(stride) < 1:
            raise ValueError(f"level stride {stride} leaves no tokens at image size {size}")
    return size


def region_masks(landmarks68: np.ndarray | None, size: int, *, face_expand_ratio: float = FACE_EXPAND_RATIO,
                 levels: Sequence[int] = LEVELS, face_box: Region | None = None) -> RegionMasks:
    """Hallo's masks for an S x S image (S = `size`) from its 68 landmarks (in that image's pixels).

    With `landmarks68=None` (no face found) the whole image is the face: face box = the image (not
    expanded), no lip box (zero lip masks), the soft face mask all 1 and the background all 0. Hallo
    itself has no such path for the masks (its MediaPipe step finds no landmarks and the mask code
    fails; only the embedding falls back), and taken through blur_mask an all-255 mask would come out
    all 0 (cv2.normalize of a constant), i.e. "all background"; we keep it "all face" instead.

    `face_box` (min_x, max_x, min_y, max_y), when given, is the face region as it is (the user's face-region
    control): it replaces the box found from the landmarks, which then give only the lips."""
    size = _check_size(size, levels)
    whole_face = landmarks68 is None and face_box is None
    lip_box: Region | None = None
    if landmarks68 is not None:
        lip_box = lip_box_from_landmarks(landmarks68, size, size)
    if face_box is None:
        face_box = (0, size, 0, size) if landmarks68 is None else face_box_from_landmarks(
            landmarks68, size, size, face_expand_ratio)
    face_hard = box_mask(face_box, size, size)
    face_blur = blur_mask(face_hard, FACE_KERNEL)
    if whole_face:
        face_blur = np.full(BLUR_SIZE, 255, dtype=np.uint8)
    lip_blur = blur_mask(box_mask(lip_box, size, size), LIP_KERNEL)
    soft = {
        "full": background_mask(face_blur),
        "face": cv2.subtract(face_blur, lip_blur),
        "lip": lip_blur,
    }
    sides = [size // int(stride) for stride in levels]
    per_level = {name: [level_tokens(mask, side) for side in sides] for name, mask in soft.items()}
    return RegionMasks(full=per_level["full"], face=per_level["face"], lip=per_level["lip"],
                       face_region=region_image(face_hard, size), face_box=face_box, lip_box=lip_box)


def union_face_mask(landmarks_list: Sequence[np.ndarray | None], size: int,
                    expand_ratio: float = 1.0) -> np.ndarray:
    """Hallo's get_union_face_mask for a clip: each frame's hard face mask (expand ratio 1 by default,
    as Hallo's training data uses), their pixel-wise maximum, then its whole bounding box filled: a
    uint8 (size, size) mask, 255 inside. Frames without a face (None) are left out (Hallo's would fail
    on them); with no face in any frame the whole image is the face."""
    size = _check_size(size)
    masks = [box_mask(face_box_from_landmarks(points, size, size, expand_ratio), size, size)
             for points in landmarks_list if points is not None]
    if not masks:
        return np.full((size, size), 255, dtype=np.uint8)
    union = np.maximum.reduce(masks)
    rows, cols = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
    if rows.size:
        union[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = union.max()
    return union


def union_face_region(landmarks_list: Sequence[np.ndarray | None], size: int,
                      expand_ratio: float = 1.0) -> torch.Tensor:
    """EMO's face-locator input for a clip: the union face mask (union_face_mask) as a (3, S, S)
    float32 tensor in [0, 1]."""
    return region_image(union_face_mask(landmarks_list, size, expand_ratio), size)
