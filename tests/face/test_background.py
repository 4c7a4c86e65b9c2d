"""The flat (green) background behind a face crop, from landmarks: face kept, corners filled, soft edge."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceanim.errors import InputError
from faceanim.face.background import CHROMA_GREEN, head_mask, head_region, replace_background
from faceanim.face.crop import sda_align


@pytest.fixture(scope="module")
def aligned(astronaut, astronaut_face):
    """The astronaut's 256 px face-processor crop and her landmarks in it."""
    crop, transform = sda_align(astronaut, astronaut_face[1], 256)
    return crop, transform.to_crop(astronaut_face[1])


def _inside(points: np.ndarray, shape) -> np.ndarray:
    hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2)
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillConvexPoly(mask, np.rint(hull * 16).astype(np.int32), 1, shift=4)
    return mask.astype(bool)


def test_face_kept_corners_green(aligned):
    crop, points = aligned
    out = replace_background(crop, points)
    assert out.shape == crop.shape and out.dtype == np.uint8
    assert out is not crop and not np.shares_memory(out, crop)
    inner = _inside(points[17:], crop.shape[:2])  # brows, eyes, nose and mouth
    whole = _inside(points, crop.shape[:2])      # with the jaw line
    assert inner.sum() > 5000
    np.testing.assert_array_equal(out[whole], crop[whole])  # not a single face pixel changes
    for y, x in [(0, 0), (0, 255), (255, 0), (255, 255), (128, 2), (128, 253)]:
        assert tuple(out[y, x]) == CHROMA_GREEN
    green = np.all(out == CHROMA_GREEN, axis=-1)
    assert 0.2 < green.mean() < 0.6  # the background around the head, not the head
    assert not green[:40, 100:156].any()  # the top of the head (hair) is kept


def test_soft_edge_and_other_colours(aligned):
    crop, points = aligned
    grey = (128, 128, 128)
    hard = replace_background(crop, points, grey, feather=0.0)
    soft = replace_background(crop, points, grey, feather=0.1)
    kept_hard = np.any(hard != grey, axis=-1)
    blended = np.any((soft != grey) & (soft != crop), axis=-1)
    assert blended.sum() > 500  # a ramp of mixed pixels...
    assert not (blended & kept_hard).any()  # ...that lies outside the head region, never in it
    np.testing.assert_array_equal(soft[kept_hard], crop[kept_hard])
    mask = head_mask(points, crop.shape[:2], feather=0.1)
    assert mask.dtype == np.float32 and mask.min() == 0.0 and mask.max() == 1.0
    ramp = mask[(mask > 0) & (mask < 1)]
    assert ramp.size > 500
    with pytest.raises(InputError, match="color"):
        replace_background(crop, points, (0, 300, 0))
    with pytest.raises(InputError, match="feather"):
        replace_background(crop, points, feather=-1)


def test_head_region_covers_forehead_and_neck(aligned):
    crop, points = aligned
    face, cranium, neck = head_region(points)
    brows, chin = points[17:27, 1].mean(), points[8, 1]  # the aligned face is upright within a few degrees
    height = chin - brows
    assert cranium[:, 1].min() < brows - 0.8 * height  # the top of the head, well above the brows
    assert neck[:, 1].max() > chin + 0.5 * height  # the neck, below the chin
    assert face[:, 1].max() == pytest.approx(chin, abs=1)
    bigger = head_mask(points, crop.shape[:2], feather=0.0, head_width=1.5, neck=1.0)
    assert bigger.sum() > head_mask(points, crop.shape[:2], feather=0.0).sum()
    with pytest.raises(InputError):
        head_region(points, neck=-1)
