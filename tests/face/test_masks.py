"""Face masks and mouth measurements."""
from __future__ import annotations

import numpy as np
import pytest

from faceanim.errors import InputError
from faceanim.face import face_mask, inner_mouth_opening, mouth_box


def test_face_mask_covers_the_face_and_forehead(astronaut_face):
    _, points = astronaut_face
    mask = face_mask(points, (512, 512))
    assert mask.shape == (512, 512) and mask.dtype == np.float32
    assert mask.min() == 0.0 and mask.max() == pytest.approx(1.0)
    for index in (30, 33, 36, 45, 48, 54, 51, 57):  # nose, eyes, mouth: well inside
        x, y = np.rint(points[index]).astype(int)
        assert mask[y, x] > 0.95
    brow_top = int(points[17:27, 1].min())
    forehead = (int(points[27, 0]), brow_top - 10)  # above the brows, still on the face
    assert mask[forehead[1], forehead[0]] > 0.9
    assert mask[5, 5] == 0.0 and mask[500, 250] == 0.0  # the image corner, the chest
    no_forehead = face_mask(points, (512, 512), forehead=0.0)
    assert no_forehead[forehead[1], forehead[0]] < mask[forehead[1], forehead[0]] - 0.3


def test_face_mask_edge_is_a_ramp(astronaut_face):
    _, points = astronaut_face
    hard = face_mask(points, (512, 512), feather=0.0)
    soft = face_mask(points, (512, 512), feather=0.05)
    assert set(np.unique(hard).tolist()) == {0.0, 1.0}
    assert ((soft > 0.05) & (soft < 0.95)).sum() > 3 * ((hard > 0) & (hard < 1)).sum() + 500
    assert np.abs(np.diff(soft, axis=1)).max() < 0.15  # no step anywhere
    assert abs(soft.sum() - hard.sum()) < 0.05 * hard.sum()  # feathering centred on the outline


def test_face_mask_off_frame_and_bad_args(astronaut_face):
    _, points = astronaut_face
    shifted = points + [2000, 0]
    assert face_mask(shifted, (512, 512)).max() == 0.0
    with pytest.raises(InputError):
        face_mask(points, (512, 512), feather=-1)


def test_mouth_box_and_opening(astronaut_face):
    _, points = astronaut_face
    box = mouth_box(points, scale=1.5)
    assert box.width == pytest.approx(box.height)
    lips = points[48:68]
    assert (lips[:, 0] > box.left).all() and (lips[:, 0] < box.right).all()
    assert (lips[:, 1] > box.top).all() and (lips[:, 1] < box.bottom).all()
    assert mouth_box(points, scale=3.0).width == pytest.approx(2 * box.width)

    closed = points.astype(np.float64).copy()
    closed[[65, 66, 67]] = closed[[63, 62, 61]]
    assert inner_mouth_opening(closed) == pytest.approx(0.0, abs=1e-9)
    opened = closed.copy()
    width = np.linalg.norm(points[16] - points[0])
    opened[[65, 66, 67], 1] += 0.2 * width
    assert inner_mouth_opening(opened) == pytest.approx(0.2, abs=1e-6)
    assert inner_mouth_opening(opened * 2) == pytest.approx(0.2, abs=1e-6)  # scale-free
