"""The face-processor (SDA / Diffused Heads) alignment: template layout, similarity, invariance, paste-back,
crop plans over a sequence, and the photo route of the crop tasks."""
from __future__ import annotations

import types

import cv2
import numpy as np
import pytest

from faceanim.errors import InputError
from faceanim.face import face_mask, paste_back, prepare_paste_back
from faceanim.face.crop import (SDA_EYE_CENTERS, SDA_MOUTH_CENTER, SDA_STABLE_POINTS, SDA_TEMPLATE, sda_align,
                                sda_align_matrix, sda_quad, similarity_fit)
from faceanim.face.video import CROP_KINDS, SDA_CROP, FaceTrack, plan_crops

STABLE = list(SDA_STABLE_POINTS)


def _in_crop(normalised: np.ndarray, size: int) -> np.ndarray:
    """Template coordinates (pixel edges at 0 and 1) in crop pixels (pixel centres at integers)."""
    return np.asarray(normalised) * size - 0.5


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) @ np.asarray(matrix)[:, :2].T + np.asarray(matrix)[:, 2]


def _assert_similarity(matrix: np.ndarray) -> None:
    linear = np.asarray(matrix)[:, :2]
    assert np.linalg.norm(linear[:, 0]) == pytest.approx(np.linalg.norm(linear[:, 1]), rel=1e-9)  # one scale
    assert linear[:, 0] @ linear[:, 1] == pytest.approx(0, abs=1e-9)  # no shear
    assert np.linalg.det(linear) > 0  # no reflection


def test_similarity_fit_is_the_least_squares_similarity():
    from skimage.transform import estimate_transform

    rng = np.random.default_rng(0)
    source = rng.uniform(0, 300, (5, 2))
    target = rng.uniform(0, 1, (5, 2))
    ours = similarity_fit(source, target)
    theirs = estimate_transform("similarity", source, target).params[:2]  # what face-processor calls
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    _assert_similarity(ours)
    with pytest.raises(InputError, match="coincide"):
        similarity_fit(np.ones((5, 2)), target)


def test_a_template_shaped_face_lands_exactly_on_the_template(astronaut_face):
    _, points = astronaut_face
    # Put the five stable points exactly where a turned, scaled, shifted template would be.
    placed = np.array([[0.9, 0.3], [-0.3, 0.9]]) * 180
    face = points.astype(np.float64)
    face[STABLE] = SDA_TEMPLATE @ placed.T + [140.0, 60.0]
    for size in (128, 256):
        matrix = sda_align_matrix(face, size)
        _assert_similarity(matrix)
        np.testing.assert_allclose(_apply(matrix, face[STABLE]), _in_crop(SDA_TEMPLATE, size), atol=1e-6)
    quad = sda_quad(face)
    sides = np.linalg.norm(np.roll(quad, -1, axis=0) - quad, axis=1)
    np.testing.assert_allclose(sides, 180 * np.hypot(0.9, 0.3))  # the template square, in the frame


def test_astronaut_crop_has_the_template_layout(astronaut, astronaut_face):
    _, points = astronaut_face
    size = 256
    crop, transform = sda_align(astronaut, points, size)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    _assert_similarity(transform.matrix)
    in_crop = transform.to_crop(points)
    # The four eye corners are fitted (with the nose tip): a real face sits on them within a couple of pixels.
    assert np.abs(in_crop[STABLE[1:]] - _in_crop(SDA_TEMPLATE[1:], size)).max() < 2.5
    eyes = np.stack([in_crop[36:42].mean(axis=0), in_crop[42:48].mean(axis=0)])
    assert np.abs(eyes - _in_crop(SDA_EYE_CENTERS, size)).max() < 2.5
    assert np.linalg.norm(in_crop[33] - _in_crop(SDA_TEMPLATE[0], size)) < 6  # the nose tip: a least-squares compromise
    # The mouth is not fitted: it is centred under the nose as in the template, but how far below the
    # eyes depends on the person (the mean face has a long lower face; the astronaut smiles).
    mouth = (in_crop[48] + in_crop[54]) / 2
    assert abs(mouth[0] - _in_crop(SDA_MOUTH_CENTER, size)[0]) < 4
    assert in_crop[33, 1] < mouth[1] < _in_crop(SDA_MOUTH_CENTER, size)[1] + 4
    # The crop content is the frame under the transform: the eye region matches a direct warp.
    direct = cv2.warpAffine(astronaut, transform.matrix, (size, size), flags=cv2.INTER_CUBIC)
    assert np.abs(crop[60:120, 60:200].astype(int) - direct[60:120, 60:200]).mean() < 2


def test_turning_scaling_and_moving_the_photo_gives_the_same_crop(astronaut, astronaut_face, psnr):
    _, points = astronaut_face
    upright, transform = sda_align(astronaut, points, 256)
    move = cv2.getRotationMatrix2D((222.0, 130.0), 20, 0.8)
    move[:, 2] += [60.0, -25.0]
    moved = cv2.warpAffine(astronaut, move, (640, 560), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    moved_points = _apply(move, points)
    crop, moved_transform = sda_align(moved, moved_points, 256)
    # The least-squares similarity commutes with a similarity of the photo: exactly the same window.
    np.testing.assert_allclose(moved_transform.matrix @ np.vstack([move, [0, 0, 1]]), transform.matrix, atol=1e-9)
    assert psnr(crop[30:226, 30:226], upright[30:226, 30:226]) > 32  # same pixels, up to two resamplings


def test_paste_back_reproduces_the_face_and_leaves_the_rest(astronaut, astronaut_face, psnr):
    _, points = astronaut_face
    crop, transform = sda_align(astronaut, points, 256)
    region = face_mask(points, astronaut.shape[:2], feather=0.0) > 0.5
    for color_match in (False, True):
        pasted = paste_back(astronaut, crop, transform, color_match=color_match)
        assert pasted.shape == astronaut.shape and pasted.dtype == np.uint8
        assert psnr(pasted, astronaut, region) >= 40
    red = np.zeros_like(crop)
    red[..., 0] = 255
    pasted = paste_back(astronaut, red, transform, color_match=False)
    corners = transform.to_frame([[-0.5, -0.5], [255.5, -0.5], [-0.5, 255.5], [255.5, 255.5]])
    (left, top), (right, bottom) = np.floor(corners.min(0)).astype(int) - 2, np.ceil(corners.max(0)).astype(int) + 2
    outside = np.ones(astronaut.shape[:2], dtype=bool)
    outside[max(top, 0):bottom, max(left, 0):right] = False
    assert outside.sum() > 100_000  # most of the photo is far from the face
    np.testing.assert_array_equal(pasted[outside], astronaut[outside])
    nose = np.rint(points[33]).astype(int)
    assert tuple(pasted[nose[1], nose[0]]) == (255, 0, 0)


def _drifting_landmarks(points: np.ndarray, frames: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """The face moving right and down by (3, 1.5) px a frame, plus landmark jitter of `noise` px."""
    rng = np.random.default_rng(seed)
    steps = np.arange(frames)[:, None, None] * np.array([3.0, 1.5])
    return points[None] + steps + rng.normal(0, noise, (frames, 68, 2))


def test_plan_crops_over_a_sequence(astronaut_face):
    _, points = astronaut_face
    assert SDA_CROP == "sda" and SDA_CROP in CROP_KINDS
    steady = _drifting_landmarks(points, 12)
    plan = plan_crops(steady, (480, 640), "sda", 128)
    assert len(plan.transforms) == 12 and plan.border == "replicate"
    for matrix, landmarks in zip(plan.matrices(), steady):
        _assert_similarity(matrix)
        # Smoothing is centred (zero lag): a steady drift keeps every frame's own alignment.
        np.testing.assert_allclose(matrix, sda_align_matrix(landmarks, 128), atol=1e-6)
    jittery = _drifting_landmarks(points, 12, noise=1.5)
    raw = plan_crops(jittery, (480, 640), "sda", 128, smoothing=0)
    smooth = plan_crops(jittery, (480, 640), "sda", 128, smoothing=2.0)
    for matrix, landmarks in zip(raw.matrices(), jittery):
        np.testing.assert_allclose(matrix, sda_align_matrix(landmarks, 128), atol=1e-9)

    def wobble(crop_plan):  # how much the face's (noise-free) eyes and nose move in the crops
        placed = np.stack([_apply(m, lm[STABLE]) for m, lm in zip(crop_plan.matrices(), steady)])
        return float(np.abs(np.diff(placed, axis=0)).mean())
    assert wobble(smooth) < 0.5 * wobble(raw)
    with pytest.raises(InputError, match="not available"):
        plan_crops(steady, (480, 640), "sda", 128, motion="fixed")


def test_face_track_crop_plan(astronaut, astronaut_face):
    _, points = astronaut_face
    landmarks = _drifting_landmarks(points, 6)
    track = FaceTrack(landmarks, np.ones(6, dtype=bool), 25.0, astronaut.shape[:2])
    plan = track.crop_plan("sda", 64)
    np.testing.assert_allclose(plan.matrices(), plan_crops(landmarks, astronaut.shape[:2], "sda", 64).matrices())
    crop = plan.crop(astronaut, 0)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    eyes = plan.landmarks_in_crops(landmarks)[:, STABLE[1:]]
    assert np.abs(eyes - _in_crop(SDA_TEMPLATE[1:], 64)).max() < 1.0  # 2.5 px of 256, at 64


def test_the_photo_route_of_the_crop_tasks(tmp_path, astronaut, astronaut_face, psnr):
    from PIL import Image

    from faceanim.tasks.crops import CropOptions, _prepare_photo

    _, points = astronaut_face
    path = tmp_path / "photo.png"
    Image.fromarray(astronaut).save(path)
    pipeline = types.SimpleNamespace(crop_size=128, crop_style="sda")
    source = _prepare_photo(path, pipeline, CropOptions())
    crop, transform = sda_align(astronaut, source.landmarks, 128)
    np.testing.assert_allclose(source.paste.transform.matrix, transform.matrix, atol=1e-9)
    np.testing.assert_array_equal(source.crop, crop)
    placed = source.placed(source.crop)
    region = face_mask(points, astronaut.shape[:2], feather=0.0) > 0.5
    assert placed.shape == astronaut.shape and psnr(placed, astronaut, region) >= 30  # a 128 px round trip
    assert prepare_paste_back(transform).roi == source.paste.roi


def test_preprocess_options_accept_sda():
    from faceanim.cli.commands import CROP_KINDS as CLI_CROP_KINDS
    from faceanim.tasks.preprocess import PreprocessOptions

    assert list(CLI_CROP_KINDS) == list(CROP_KINDS)  # the CLI's copy is in step
    assert PreprocessOptions(crop="sda", size=128).crop == "sda"
    with pytest.raises(InputError, match="fomm, ffhq, sda"):
        PreprocessOptions(crop="square")
    with pytest.raises(InputError, match="crop-motion"):
        PreprocessOptions(crop="sda", crop_motion="fixed")
