"""Crop transforms, FOMM boxes, FFHQ alignment, paste-back quality, seams and speed."""
from __future__ import annotations

import time

import numpy as np
import pytest

from faceanim.errors import InputError
from faceanim.face import (Box, CropTransform, FFHQAligner, face_mask, ffhq_align, ffhq_quad, fomm_box, fomm_crop,
                           paste_back, prepare_paste_back)
from faceanim.face.crop import FOMM_INCREASE


def test_transform_maps_points_both_ways():
    transform = CropTransform(np.array([[0.5, 0.1, -20.0], [-0.1, 0.5, 7.0]]), 256, (480, 640))
    points = np.array([[10.0, 20.0], [300.0, 400.0]])
    np.testing.assert_allclose(transform.to_frame(transform.to_crop(points)), points, atol=1e-9)
    np.testing.assert_allclose(transform.inverse() @ np.r_[transform.to_crop(points)[0], 1], points[0], atol=1e-9)
    assert transform.scale == pytest.approx(np.sqrt(0.26))


def test_fomm_box_rule():
    box = Box(100, 50, 180, 150)  # 80 wide, 100 tall
    crop_box = fomm_box(box, (480, 640), increase=0.1)
    assert crop_box.center == box.center
    assert crop_box.width == pytest.approx(120) and crop_box.height == pytest.approx(120)  # 1.2 x 100, square
    assert fomm_box(box, (480, 640)).width == pytest.approx((1 + 2 * FOMM_INCREASE) * 100)
    inside = fomm_box(Box(-30, 400, 70, 500), (480, 640), increase=0.5, keep_inside=True)
    assert (inside.left, inside.bottom, inside.width) == pytest.approx((0, 479, 200))  # moved, not shrunk


def test_fomm_box_from_landmarks_matches_vox_crops(shared_testdata, portrait):
    from faceanim.face import largest_face

    # The shared portrait is a VoxCeleb-style crop: our default box should reproduce its framing.
    box = fomm_box(largest_face(portrait)[1], portrait.shape[:2])
    assert box.width == pytest.approx(256, rel=0.15)
    assert abs(box.center[0] - 127.5) < 20 and abs(box.center[1] - 127.5) < 25


def test_fomm_crop_geometry_and_padding(astronaut, astronaut_face):
    box, points = astronaut_face
    crop_box = fomm_box(box, astronaut.shape[:2])
    crop, transform = fomm_crop(astronaut, crop_box, 256)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(transform.to_crop([[crop_box.left, crop_box.top]]), [[-0.5, -0.5]], atol=1e-9)
    np.testing.assert_allclose(transform.to_crop([[crop_box.right, crop_box.bottom]]), [[255.5, 255.5]], atol=1e-9)
    # A box hanging over the top-left corner (at scale 1; pixel centres are at integer coordinates, so a
    # box on pixel edges is at half-integers): what lies outside repeats the edge, it is not black.
    corner, _ = fomm_crop(astronaut, Box(-100.5, -100.5, 155.5, 155.5), 256)
    np.testing.assert_array_equal(corner[100:, 100:], astronaut[:156, :156])
    np.testing.assert_array_equal(corner[:100, 120], np.repeat(astronaut[:1, 20], 100, axis=0))
    reflected, _ = fomm_crop(astronaut, Box(-100.5, -100.5, 155.5, 155.5), 256, border="reflect")
    np.testing.assert_array_equal(reflected[100 - 20, 150], astronaut[20, 50])
    with pytest.raises(InputError, match="border"):
        fomm_crop(astronaut, crop_box, border="wrap")


def test_ffhq_quad_is_the_published_square(astronaut_face):
    _, points = astronaut_face
    quad = ffhq_quad(points)
    sides = np.linalg.norm(np.roll(quad, -1, axis=0) - quad, axis=1)
    assert np.allclose(sides, sides[0])  # a square
    assert np.dot(quad[1] - quad[0], quad[3] - quad[0]) == pytest.approx(0, abs=1e-6)
    eye_left, eye_right = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    mouth = (points[48] + points[54]) / 2
    eye_to_eye, eye_to_mouth = eye_right - eye_left, mouth - (eye_left + eye_right) / 2
    half = max(2.0 * np.linalg.norm(eye_to_eye), 1.8 * np.linalg.norm(eye_to_mouth))
    assert sides[0] == pytest.approx(2 * half)
    np.testing.assert_allclose(quad.mean(axis=0), (eye_left + eye_right) / 2 + 0.1 * eye_to_mouth)
    assert quad[0][1] < quad[1][1] and quad[0][0] < quad[3][0]  # top-left, bottom-left, ..., top-right


def test_ffhq_align_levels_the_eyes(astronaut, astronaut_face, psnr):
    import cv2

    _, points = astronaut_face
    turned = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((222, 130), 25, 1.0), (512, 512),
                            borderMode=cv2.BORDER_REFLECT)
    turned_points = np.c_[points, np.ones(68)] @ cv2.getRotationMatrix2D((222, 130), 25, 1.0).T
    crop, transform = ffhq_align(turned, turned_points, 256)
    eyes = transform.to_crop(np.stack([turned_points[36:42].mean(0), turned_points[42:48].mean(0)]))
    assert abs(eyes[0, 1] - eyes[1, 1]) < 0.5  # level after alignment
    assert 0.44 * 256 < eyes[0, 1] < 0.49 * 256  # FFHQ puts the eyes just above the middle...
    assert eyes[1, 0] - eyes[0, 0] == pytest.approx(0.25 * 256, rel=0.1)  # ...a quarter of the side apart
    upright, _ = ffhq_align(astronaut, points, 256)
    assert psnr(crop[40:216, 40:216], upright[40:216, 40:216]) > 25  # same face, same framing


def _face_region(frame_shape, points):
    return face_mask(points, frame_shape, feather=0.0) > 0.5


@pytest.mark.parametrize("style", ["fomm", "ffhq"])
def test_round_trip_of_an_unchanged_crop(astronaut, astronaut_face, psnr, style):
    _, points = astronaut_face
    if style == "fomm":
        crop, transform = fomm_crop(astronaut, fomm_box(points, astronaut.shape[:2]), 256)
    else:
        crop, transform = ffhq_align(astronaut, points, 256)
    region = _face_region(astronaut.shape[:2], points)
    for color_match in (False, True):
        pasted = paste_back(astronaut, crop, transform, color_match=color_match)
        assert pasted.shape == astronaut.shape and pasted.dtype == np.uint8
        assert psnr(pasted, astronaut, region) >= 40


@pytest.mark.parametrize("style", ["fomm", "ffhq"])
def test_round_trip_on_a_1080p_frame(wild_frame, psnr, style):
    from faceanim.face import largest_face

    _, points = largest_face(wild_frame)
    if style == "fomm":
        crop, transform = fomm_crop(wild_frame, fomm_box(points, wild_frame.shape[:2]), 256)
    else:
        crop, transform = ffhq_align(wild_frame, points, 256)
    assert transform.scale < 0.5  # a real downscale: the anti-aliased path
    pasted = paste_back(wild_frame, crop, transform)
    assert psnr(pasted, wild_frame, _face_region(wild_frame.shape[:2], points)) >= 40


def test_modified_crop_leaves_the_rest_alone(astronaut, astronaut_face):
    box, _ = astronaut_face
    crop, transform = fomm_crop(astronaut, fomm_box(box, astronaut.shape[:2]), 256)
    red = np.zeros_like(crop)
    red[..., 0] = 255
    pasted = paste_back(astronaut, red, transform, color_match=False)
    corners = transform.to_frame([[-0.5, -0.5], [255.5, 255.5]])
    (left, top), (right, bottom) = np.floor(corners[0]).astype(int) - 2, np.ceil(corners[1]).astype(int) + 2
    outside = np.ones(astronaut.shape[:2], dtype=bool)
    outside[max(top, 0):bottom, max(left, 0):right] = False
    np.testing.assert_array_equal(pasted[outside], astronaut[outside])
    center = np.rint(transform.to_frame([[128, 128]])[0]).astype(int)
    assert tuple(pasted[center[1], center[0]]) == (255, 0, 0)


def _largest_step(image: np.ndarray) -> int:
    image = image.astype(int)
    return int(max(np.abs(np.diff(image, axis=0)).max(), np.abs(np.diff(image, axis=1)).max()))


@pytest.mark.parametrize("angle", [0, 30])
def test_pasted_crop_has_no_hard_edge(angle):
    import cv2

    # Red pasted on flat grey: any step between neighbouring pixels is the seam itself.
    grey = np.full((400, 600, 3), 128, dtype=np.uint8)
    matrix = cv2.getRotationMatrix2D((300, 200), angle, 256 / 180)
    matrix[:, 2] += 127.5 - (matrix[:, :2] @ [300, 200] + matrix[:, 2])  # (300, 200) to the crop centre
    transform = CropTransform(matrix, 256, (400, 600))
    red = np.zeros((256, 256, 3), dtype=np.uint8)
    red[..., 0] = 255
    soft = paste_back(grey, red, transform, color_match=False)
    hard = paste_back(grey, red, transform, color_match=False, feather=0.0)
    assert tuple(soft[200, 300]) == (255, 0, 0)
    assert _largest_step(hard) > 50  # the seam the feathering removes (one anti-aliased pixel wide)
    # 127 levels spread over the ramp (0.1 x 180 px, smoothstep: steepest 1.5x the mean)
    assert _largest_step(soft) <= 1.5 * 128 / 18 + 2
def test_colour_match_undoes_a_grading_shift(astronaut, astronaut_face, psnr):
    _, points = astronaut_face
    crop, transform = ffhq_align(astronaut, points, 256)
    brighter = np.clip(crop.astype(int) + [25, 10, -15], 0, 255).astype(np.uint8)
    region = _face_region(astronaut.shape[:2], points)
    matched = paste_back(astronaut, brighter, transform, color_match=True)
    unmatched = paste_back(astronaut, brighter, transform, color_match=False)
    assert psnr(matched, astronaut, region) > psnr(unmatched, astronaut, region) + 6
    assert psnr(matched, astronaut, region) > 35


def test_paste_with_a_face_mask_keeps_the_background(astronaut, astronaut_face):
    box, points = astronaut_face
    crop, transform = fomm_crop(astronaut, fomm_box(box, astronaut.shape[:2]), 256)
    mask = face_mask(transform.to_crop(points), (256, 256), feather=0.03)
    pasted = paste_back(astronaut, np.zeros_like(crop), transform, mask=mask, color_match=False)
    face = face_mask(points, astronaut.shape[:2], feather=0.0) > 0.5
    far = face_mask(points, astronaut.shape[:2], feather=0.2) < 0.001
    assert pasted[face].mean() < 0.3 * astronaut[face].mean()
    np.testing.assert_array_equal(pasted[far], astronaut[far])
    with pytest.raises(InputError, match="mask"):
        paste_back(astronaut, crop, transform, mask=np.ones((10, 10)))
    with pytest.raises(InputError, match="do not match"):
        paste_back(astronaut[:100], crop, transform)


def test_paste_plan_is_fast_at_1080p(wild_frame):
    from faceanim.face import largest_face

    _, points = largest_face(wild_frame)
    crop, transform = fomm_crop(wild_frame, fomm_box(points, wild_frame.shape[:2]), 256)
    plan = prepare_paste_back(transform)
    np.testing.assert_array_equal(plan.paste(wild_frame, crop), paste_back(wild_frame, crop, transform))
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        plan.paste(wild_frame, crop)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.030


def test_ffhq_aligner_streams_steady_crops(astronaut, astronaut_face):
    import cv2

    _, points = astronaut_face
    rng = np.random.default_rng(2)
    pairs = []
    for i in range(20):
        shift = np.array([3.0 * i, 0.0])
        frame = cv2.warpAffine(astronaut, np.array([[1, 0, shift[0]], [0, 1, 0]], float), (512, 512),
                               borderMode=cv2.BORDER_REFLECT)
        pairs.append((frame, None if i == 10 else points + shift + rng.normal(0, 1.5, points.shape)))
    out = list(FFHQAligner(size=128, smoothing=2.0).align(iter(pairs)))
    assert [o[0] is p[0] for o, p in zip(out, pairs)] == [True] * 20
    assert out[10][1] is None and out[10][2] is None
    centers = np.array([t.to_frame([[63.5, 63.5]])[0] for _, c, t in out if t is not None])
    steps = np.diff(centers[:, 0])
    raw = np.array([ffhq_quad(p).mean(axis=0)[0] for _, p in pairs if p is not None])
    assert np.abs(steps - 3.0).mean() < 0.6 * np.abs(np.diff(raw) - 3.0).mean()


def test_degenerate_crops_are_input_errors(astronaut):
    with pytest.raises(InputError, match="degenerate"):
        ffhq_quad(np.zeros((68, 2)))
    with pytest.raises(InputError, match="empty box"):
        fomm_crop(astronaut, Box(10, 10, 10, 50))
    with pytest.raises(InputError, match="uint8 RGB"):
        fomm_crop(astronaut.astype(np.float32), Box(0, 0, 50, 50))
