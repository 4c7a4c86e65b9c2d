"""The painted mouth interior: dlib sees the target opening, teeth only where the source shows them,
hung from their lip and not stretched, a dark cavity, nothing painted outside the inner lips."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from faceanim.face import inner_mouth_opening, largest_face
from faceanim.methods.warp.model import LandmarkWarper
from faceanim.methods.warp.mouth import MouthInterior

from .test_model import astronaut_landmarks, astronaut_warper, jaw_drop  # noqa: F401  (fixtures)


def luminance(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ [0.299, 0.587, 0.114]


def inner_polygon_distance(landmarks: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Signed distance (positive inside) of pixels (N, 2) to the inner-lip polygon."""
    contour = landmarks[60:68].astype(np.float32).reshape(-1, 1, 2)
    return np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in pixels])


def mouth_centre(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The pixels around the middle of the inner mouth (between points 62 and 66)."""
    cx, cy = np.rint((landmarks[62] + landmarks[66]) / 2).astype(int)
    return frame[cy - 2:cy + 3, cx - 5:cx + 6]


@pytest.fixture(scope="module")
def closed_mouth(astronaut, astronaut_landmarks, astronaut_warper):
    """(image, landmarks) of the astronaut with her lips closed over her teeth (warped shut, then
    her landmarks found again by dlib)."""
    target = astronaut_landmarks.copy()
    gap = float(np.mean(target[[65, 66, 67], 1] - target[[63, 62, 61], 1]))
    target[[65, 66, 67]] = target[[63, 62, 61]]
    target[55:60, 1] -= gap
    target[3:14, 1] -= gap * np.interp(np.arange(3, 14), [3, 8, 13], [0.2, 1.0, 0.2])
    image = astronaut_warper.warp(target)
    return image, largest_face(image)[1].astype(np.float64)


def test_dlib_sees_the_opening_follow_the_target(astronaut, astronaut_landmarks, astronaut_warper):
    wanted, seen = [], []
    for fraction in (0.0, 0.05, 0.10, 0.15):
        target = jaw_drop(astronaut_landmarks, fraction)
        _, found = largest_face(astronaut_warper.warp(target))
        wanted.append(inner_mouth_opening(target))
        seen.append(inner_mouth_opening(found))
    assert np.all(np.diff(seen) > 0), seen
    assert np.corrcoef(wanted, seen)[0, 1] > 0.9, (wanted, seen)


def test_teeth_are_found_in_the_astronauts_smile(astronaut, astronaut_landmarks, astronaut_warper):
    mouth = MouthInterior(astronaut, astronaut_landmarks)
    assert mouth.has_teeth and astronaut_warper.has_teeth
    assert [texture.lip for texture in mouth.teeth] == ["upper"]
    upper = mouth.teeth[0].rgba
    assert luminance(upper[..., :3])[upper[..., 3] > 0.8].mean() > 150  # bright where it covers


def test_a_closed_mouth_gets_a_cavity_and_no_teeth(closed_mouth):
    image, landmarks = closed_mouth
    assert inner_mouth_opening(landmarks) < 0.03
    warper = LandmarkWarper(image, landmarks)
    assert not warper.has_teeth
    target = jaw_drop(landmarks, 0.15)
    out = warper.warp(target)
    x0, y0 = np.floor(target[60:68].min(axis=0)).astype(int)
    x1, y1 = np.ceil(target[60:68].max(axis=0)).astype(int)
    pixels = np.argwhere(np.ones((y1 - y0, x1 - x0), bool))[:, ::-1] + [x0, y0]
    deep = pixels[inner_polygon_distance(target, pixels) > 2.0]
    assert len(deep) > 50
    brightness = luminance(out[deep[:, 1], deep[:, 0]])
    assert brightness.max() < 90  # no teeth invented
    assert luminance(mouth_centre(out, target)).mean() < 60


def test_the_cavity_under_the_teeth_is_dark(astronaut, astronaut_landmarks, astronaut_warper):
    target = jaw_drop(astronaut_landmarks, 0.15)
    painted = astronaut_warper.warp(target)
    assert luminance(mouth_centre(painted, target)).mean() < 60
    stretched = LandmarkWarper(astronaut, astronaut_landmarks, render_mouth=False).warp(target)
    assert luminance(mouth_centre(stretched, target)).mean() > 100  # what the painting replaces


def _teeth_rows_below_the_upper_lip(frame: np.ndarray, landmarks: np.ndarray) -> int:
    """How many bright rows hang below the upper inner lip, in the middle of the mouth."""
    x = int(round(landmarks[62, 0]))
    top, bottom = int(round(landmarks[62, 1])), int(round(landmarks[66, 1]))
    column = luminance(frame[top:bottom, x - 3:x + 4]).mean(axis=1)
    bright = column > 120
    return int(np.argmin(bright[1:]) + 1) if bright[1:].any() else 0


def test_teeth_hang_from_the_upper_lip_and_are_not_stretched(astronaut_landmarks, astronaut_warper):
    heights = []
    for fraction in (0.10, 0.20):
        target = jaw_drop(astronaut_landmarks, fraction)
        heights.append(_teeth_rows_below_the_upper_lip(astronaut_warper.warp(target), target))
    gap = astronaut_landmarks[66, 1] - astronaut_landmarks[62, 1]
    assert heights[0] >= 3 and abs(heights[1] - heights[0]) <= 2, heights
    assert heights[0] <= gap + 2


def test_paint_stays_inside_the_inner_lip_polygon(astronaut, astronaut_landmarks):
    mouth = MouthInterior(astronaut, astronaut_landmarks)
    target = jaw_drop(astronaut_landmarks, 0.2)
    canvas = np.full_like(astronaut, 200)
    mouth.paint(canvas, target, 1.0)
    changed = np.argwhere((canvas != 200).any(axis=-1))[:, ::-1]
    assert len(changed) > 200
    assert inner_polygon_distance(target, changed).min() > -0.75


def test_strength_grows_with_extra_opening_only(astronaut, astronaut_landmarks):
    mouth = MouthInterior(astronaut, astronaut_landmarks)
    closing = jaw_drop(astronaut_landmarks, -0.03)
    assert mouth.strength(astronaut_landmarks) == 0.0 and mouth.strength(closing) == 0.0
    strengths = [mouth.strength(jaw_drop(astronaut_landmarks, f)) for f in (0.01, 0.03, 0.06, 0.2)]
    assert np.all(np.diff(strengths) >= 0) and 0 < strengths[0] < 1 and strengths[-1] == 1.0


def test_a_closing_mouth_is_plainly_warped(astronaut, astronaut_landmarks, astronaut_warper):
    target = jaw_drop(astronaut_landmarks, -0.03)
    plain = LandmarkWarper(astronaut, astronaut_landmarks, render_mouth=False).warp(target)
    np.testing.assert_array_equal(astronaut_warper.warp(target), plain)


@pytest.mark.testdata
def test_teeth_in_the_shared_portrait_and_none_in_the_closed_wild_mouth(shared_testdata):
    import av

    portrait = np.asarray(Image.open(shared_testdata / "portrait_256.png").convert("RGB"))
    assert MouthInterior(portrait, largest_face(portrait)[1]).has_teeth
    with av.open(str(shared_testdata / "wild_1080p.mp4")) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    _, landmarks = largest_face(frame)
    assert not MouthInterior(frame, landmarks).has_teeth
