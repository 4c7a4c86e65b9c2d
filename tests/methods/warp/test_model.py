"""LandmarkWarper: identity, translation, still background, continuity under large and folding targets,
identity of the person, and sources from a 256 crop to a 1080p frame."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from faceanim.errors import InputError
from faceanim.face import (FaceEmbedder, box_from_landmarks, embedding_distance, inner_mouth_opening,
                           largest_face)
from faceanim.face.masks import face_width
from faceanim.methods.warp.model import LandmarkWarper

LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]


# ----- targets made from a face's own landmarks ------------------------------------------------------

def face_height(landmarks: np.ndarray) -> float:
    """Nose bridge (27) to chin (8), pixels."""
    return float(np.linalg.norm(landmarks[8] - landmarks[27]))


def jaw_drop(landmarks: np.ndarray, fraction: float) -> np.ndarray:
    """The lower lip and jaw moved down by `fraction` x face height (the chin fully, the jaw's ends
    and the mouth corners partly): an opening mouth."""
    weights = np.zeros(68)
    weights[3:14] = np.interp(np.arange(3, 14), [3, 8, 13], [0.15, 1.0, 0.15])
    weights[LOWER_LIP] = 1.0
    weights[[48, 54, 60, 64]] = 0.35
    target = landmarks.copy()
    target[:, 1] += weights * fraction * face_height(landmarks)
    return target


def head_turn(landmarks: np.ndarray, degrees: float) -> np.ndarray:
    """A yaw turn: points on a vertical cylinder through the jaw ends, the nose standing out of it."""
    centre_x = landmarks[[0, 16], 0].mean()
    radius = np.full(68, np.linalg.norm(landmarks[16] - landmarks[0]) / 2)
    radius[27:36] *= 1 + np.array([0.1, 0.17, 0.24, 0.32, 0.15, 0.18, 0.2, 0.18, 0.15])
    angle = np.arcsin(np.clip((landmarks[:, 0] - centre_x) / radius, -1, 1)) + np.radians(degrees)
    target = landmarks.copy()
    target[:, 0] = centre_x + radius * np.sin(angle)
    return target


def smile(landmarks: np.ndarray, amount: float) -> np.ndarray:
    """Mouth corners out and up by `amount` x face width."""
    width = np.linalg.norm(landmarks[16] - landmarks[0])
    target = landmarks.copy()
    target[[48, 60]] += [-amount * width, -0.6 * amount * width]
    target[[54, 64]] += [amount * width, -0.6 * amount * width]
    return target


# ----- measurements ----------------------------------------------------------------------------------

def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def outside(frame: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
    """The pixels of a frame outside a region, as one flat array (with a marker for the region)."""
    x0, y0, x1, y1 = roi
    copy = frame.astype(np.int16)
    copy[y0:y1, x0:x1] = -1
    return copy


def adjacent_jumps(image: np.ndarray) -> np.ndarray:
    """Per pixel, the largest channel difference to its right and lower neighbours."""
    pixels = image.astype(np.int16)
    right = np.abs(np.diff(pixels, axis=1))[:-1].max(axis=-1)
    down = np.abs(np.diff(pixels, axis=0))[:, :-1].max(axis=-1)
    return np.maximum(right, down)


def inner_mouth(landmarks: np.ndarray, shape: tuple[int, int], grow: int = 2) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillPoly(mask, [np.rint(landmarks[60:68]).astype(np.int32)], 1)
    return cv2.dilate(mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)).astype(bool)


def position_image(shape: tuple[int, int]) -> np.ndarray:
    """A smooth image whose red and green encode each pixel's own x and y (one level per 2 px)."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    return np.dstack([xs // 2, ys // 2, np.full(shape, 128)]).clip(0, 255).astype(np.uint8)


# ----- fixtures --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def astronaut_landmarks(astronaut) -> np.ndarray:
    return largest_face(astronaut)[1].astype(np.float64)


@pytest.fixture(scope="module")
def astronaut_warper(astronaut, astronaut_landmarks) -> LandmarkWarper:
    return LandmarkWarper(astronaut, astronaut_landmarks)


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return FaceEmbedder()


# ----- tests -----------------------------------------------------------------------------------------

def test_identity_target_returns_the_source(astronaut, astronaut_landmarks, astronaut_warper):
    out = astronaut_warper.warp(astronaut_landmarks)
    x0, y0, x1, y1 = astronaut_warper.roi
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    assert psnr(out[y0:y1, x0:x1], astronaut[y0:y1, x0:x1]) > 45
    np.testing.assert_array_equal(outside(out, astronaut_warper.roi), outside(astronaut, astronaut_warper.roi))
    assert out is not astronaut and not np.shares_memory(out, astronaut)


def test_roi_is_around_the_face_and_inside_the_image(astronaut, astronaut_landmarks, astronaut_warper):
    x0, y0, x1, y1 = astronaut_warper.roi
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512
    assert (x0, y0) < tuple(astronaut_landmarks.min(axis=0)) and (x1, y1) > tuple(astronaut_landmarks.max(axis=0))
    assert (x1 - x0) * (y1 - y0) < 0.35 * 512 * 512  # a face of ~100 px in a 512 photo
    wider = LandmarkWarper(astronaut, astronaut_landmarks, region=1.0).roi
    assert wider[2] - wider[0] > x1 - x0


def test_translation_moves_the_face_by_that(astronaut, astronaut_landmarks, astronaut_warper):
    out = astronaut_warper.warp(astronaut_landmarks + [6.0, -4.0])
    _, found = largest_face(out)
    shift = (found - astronaut_landmarks).mean(axis=0)
    assert np.linalg.norm(shift - [6.0, -4.0]) < 1.5, shift
    np.testing.assert_array_equal(outside(out, astronaut_warper.roi), outside(astronaut, astronaut_warper.roi))


@pytest.mark.parametrize("crop_scale", [1.2, 1.4])
def test_a_face_near_the_border_shifts_less_but_keeps_its_shape(astronaut, crop_scale):
    """In a tight crop the still ring is cut by the image border: a shift towards it that the ring
    cannot absorb is cut for the whole face, not point by point (which would pin the near side of the
    face while the far side moves, squashing it)."""
    box, _ = largest_face(astronaut)
    cx, cy = (int(round(v)) for v in box.center)
    side = int(round(crop_scale * box.width))
    crop = cv2.resize(astronaut[cy - side // 2:cy + side // 2, cx - side // 2:cx + side // 2], (256, 256),
                      interpolation=cv2.INTER_AREA)
    landmarks = largest_face(crop)[1].astype(np.float64)
    warper = LandmarkWarper(crop, landmarks)
    shift = np.array([-0.4 * face_width(landmarks), 0.0])
    placed = warper.placed_landmarks(landmarks + shift)
    moves = placed - landmarks
    assert shift[0] < moves[0, 0] < -1.0 and np.ptp(moves, axis=0).max() < 1e-6  # one common shift
    _, found = largest_face(warper.warp(landmarks + shift))
    assert np.abs((found - landmarks).mean(axis=0) - moves[0]).max() < 2.0  # and the image shows it
    np.testing.assert_allclose(warper.placed_landmarks(landmarks + [1.0, 0.5]), landmarks + [1.0, 0.5])


@pytest.mark.parametrize("region", [0.4, 0.7])
def test_nothing_moves_beyond_the_ring(astronaut, astronaut_landmarks, region):
    """Pixels further than `region` face sizes from the landmarks' hull are returned bit-exactly."""
    warper = LandmarkWarper(astronaut, astronaut_landmarks, region=region)
    out = warper.warp(jaw_drop(head_turn(astronaut_landmarks, 15), 0.15) + [3.0, 2.0])
    changed = np.argwhere((out != astronaut).any(axis=-1))[:, ::-1]
    assert len(changed) > 1000
    x0, y0, x1, y1 = warper.roi
    assert changed.min(axis=0).tolist() >= [x0, y0] and changed.max(axis=0).tolist() < [x1, y1]
    hull = cv2.convexHull(astronaut_landmarks.astype(np.float32))
    reach = region * box_from_landmarks(astronaut_landmarks).width
    farthest = max(-cv2.pointPolygonTest(hull, (float(x), float(y)), True) for x, y in changed[::7])
    assert farthest <= reach + 1
    assert farthest > 0.5 * reach  # the motion does fade out over the whole region


def test_large_target_has_no_tears_or_holes(astronaut, astronaut_landmarks, astronaut_warper):
    target = jaw_drop(head_turn(astronaut_landmarks, -20), 0.2)
    out = astronaut_warper.warp(target)
    x0, y0, x1, y1 = astronaut_warper.roi
    mouth = inner_mouth(target, astronaut.shape[:2])[y0:y1, x0:x1][:-1, :-1]
    source_jumps = adjacent_jumps(astronaut[y0:y1, x0:x1])
    jumps = adjacent_jumps(out[y0:y1, x0:x1])[~mouth]
    assert jumps.max() <= source_jumps.max() + 10
    assert np.percentile(jumps, 99.9) <= np.percentile(source_jumps, 99.9) + 10
    # No black holes: no more near-black pixels outside the mouth than the whole source region had.
    dark = (out[y0:y1, x0:x1].max(axis=-1) < 20)[:-1, :-1][~mouth].sum()
    assert dark <= (astronaut[y0:y1, x0:x1].max(axis=-1) < 20).sum() * 1.1


@pytest.mark.parametrize("case", ["jaw-open-turn", "chin-through-nose", "scrambled", "mirrored"])
def test_the_sampled_positions_stay_continuous(astronaut_landmarks, case):
    """On an image that encodes each pixel's position, the warp's sampling field is read back:
    it must have no jumps (tears) and no stray far-away samples (garbage), however wild the target."""
    height = face_height(astronaut_landmarks)
    target = {"jaw-open-turn": lambda p: jaw_drop(head_turn(p, 20), 0.2),
              "chin-through-nose": lambda p: p + np.where(np.arange(68)[:, None] < 17, [0, -0.9 * height], 0),
              "scrambled": lambda p: p + np.random.default_rng(3).normal(0, 0.15 * height, p.shape),
              "mirrored": lambda p: np.column_stack([2 * p[:, 0].mean() - p[:, 0], p[:, 1]])}[case]
    source = position_image((512, 512))
    warper = LandmarkWarper(source, astronaut_landmarks, render_mouth=False)
    out = warper.warp(target(astronaut_landmarks))
    x0, y0, x1, y1 = warper.roi
    read = out[y0:y1, x0:x1, :2].astype(np.int16)
    steps = np.maximum(np.abs(np.diff(read, axis=0)).max(), np.abs(np.diff(read, axis=1)).max())
    assert steps <= 4  # a level is 2 px: neighbours sample at most ~8 px apart, nowhere torn
    assert (read[..., 0] >= x0 // 2 - 1).all() and (read[..., 0] <= x1 // 2).all()
    assert (read[..., 1] >= y0 // 2 - 1).all() and (read[..., 1] <= y1 // 2).all()


@pytest.mark.parametrize("make_target", [lambda p: smile(p, 0.04), lambda p: jaw_drop(p, 0.1),
                                         lambda p: head_turn(p, 10)], ids=["smile", "open", "turn"])
def test_the_person_stays_the_same(astronaut, astronaut_landmarks, astronaut_warper, embedder, make_target):
    out = astronaut_warper.warp(make_target(astronaut_landmarks))
    _, found = largest_face(out)
    distance = embedding_distance(embedder(astronaut, astronaut_landmarks), embedder(out, found))
    assert distance < 0.4


def _opened_face_check(image: np.ndarray, landmarks: np.ndarray, max_roi_share: float) -> None:
    """Warp a source to a wide-open mouth: same size frame, still outside the ROI, the ROI a bounded
    share of the frame, and dlib sees the mouth open."""
    warper = LandmarkWarper(image, landmarks)
    out = warper.warp(jaw_drop(landmarks, 0.15))
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(outside(out, warper.roi), outside(image, warper.roi))
    x0, y0, x1, y1 = warper.roi
    assert (x1 - x0) * (y1 - y0) <= max_roi_share * image.shape[0] * image.shape[1]
    _, found = largest_face(out)
    assert inner_mouth_opening(found) > inner_mouth_opening(landmarks) + 0.05


def test_works_on_a_256_face_crop(astronaut):
    box, _ = largest_face(astronaut)
    cx, cy = (int(round(v)) for v in box.center)
    side = int(round(1.8 * box.width))
    crop = cv2.resize(astronaut[cy - side // 2:cy + side // 2, cx - side // 2:cx + side // 2], (256, 256),
                      interpolation=cv2.INTER_AREA)
    _opened_face_check(crop, largest_face(crop)[1].astype(np.float64), 1.0)


def test_works_on_a_1080p_frame_with_a_small_off_centre_face(astronaut):
    frame = np.full((1080, 1920, 3), 90, dtype=np.uint8)
    frame[500:1012, 1300:1812] = astronaut  # a ~100 px face low and to the right
    _, landmarks = largest_face(frame)
    _opened_face_check(frame, landmarks.astype(np.float64), 0.05)


@pytest.mark.testdata
def test_works_on_the_shared_portrait_and_1080p_frame(shared_testdata):
    import av

    portrait = np.asarray(Image.open(shared_testdata / "portrait_256.png").convert("RGB"))
    _opened_face_check(portrait, largest_face(portrait)[1].astype(np.float64), 1.0)
    with av.open(str(shared_testdata / "wild_1080p.mp4")) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    _opened_face_check(frame, largest_face(frame)[1].astype(np.float64), 0.5)


def test_bad_inputs_raise_input_errors(astronaut, astronaut_landmarks, astronaut_warper):
    with pytest.raises(InputError, match="uint8 RGB"):
        LandmarkWarper(astronaut.astype(np.float32), astronaut_landmarks)
    with pytest.raises(InputError, match="68 finite"):
        LandmarkWarper(astronaut, astronaut_landmarks[:60])
    with pytest.raises(InputError, match="region"):
        LandmarkWarper(astronaut, astronaut_landmarks, region=0)
    broken = astronaut_landmarks.copy()
    broken[3, 0] = np.nan
    with pytest.raises(InputError, match="target"):
        astronaut_warper.warp(broken)
