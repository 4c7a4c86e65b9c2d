"""Hallo-style region masks from dlib landmarks (faceanim.methods.emo.masks)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from faceanim.methods.emo import masks as M


def _upright_face() -> np.ndarray:
    """Synthetic 68 points of an upright face: brows on y=100, chin (point 8) at y=200, jaw x 90..200,
    eyes level (so "up" is -y), mouth x 125..165, y 160..180."""
    points = np.zeros((68, 2))
    jaw_x = np.linspace(90, 200, 17)
    points[0:17, 0] = jaw_x
    points[0:17, 1] = 200 - np.abs(jaw_x - 145)  # highest at the ends (y=145), lowest at the chin
    points[17:27] = np.stack([np.linspace(100, 190, 10), np.full(10, 100.0)], axis=1)
    points[27:36] = [145, 140]
    points[36:42] = [120, 120]
    points[42:48] = [170, 120]
    points[48:60] = np.stack([np.linspace(125, 165, 12), np.where(np.arange(12) % 2, 160.0, 180.0)], axis=1)
    points[60:68] = [145, 170]
    return points


# ---- expand_region and the boxes: Hallo's integer arithmetic, worked by hand ----

def test_expand_region_hand_worked():
    # centre 111 // 2 = 55, half side (91 * 1.2) // 2 = 109.2 // 2 = 54 -> 1..109; y: 50 -/+ 36
    assert M.expand_region([10, 101, 20, 80], 512, 512, 1.2) == (1, 109, 14, 86)
    # x: centre 25 // 2 = 12, half 35 -> -23..47, pushed right by 23 -> 0..70
    # y: centre 450, half 100 -> 350..550, pushed up by 38 -> 312..512
    assert M.expand_region([-5, 30, 400, 500], 512, 512, 2.0) == (0, 70, 312, 512)
    # floor division on negative floats and half-to-even rounding: centre (3 + 4) // 2 = 3.0,
    # half (1 * 1.5) // 2 = 0.0 -> 3..3; and 2.5 -> 2 through Python's round
    assert M.expand_region([3, 4, 3, 4], 10, 10, 1.5) == (3, 3, 3, 3)
    # a box longer than the image keeps Hallo's negative start after being pushed back
    assert M.expand_region([0, 100, 0, 100], 100, 100, 1.2) == (-20, 100, -20, 100)


def test_face_and_lip_boxes_hand_worked():
    points = _upright_face()
    # silhouette: x 90..200, y from the raised brows 100 - 0.2 * 100 = 80 down to the chin 200
    silhouette = M.silhouette_points(points, 512, 512)
    assert silhouette.shape == (37, 2)
    np.testing.assert_allclose(silhouette.min(axis=0), [90, 80])
    np.testing.assert_allclose(silhouette.max(axis=0), [200, 200])
    # x: centre 145, half (110 * 1.2) // 2 = 66; y: centre 140, half (120 * 1.2) // 2 = 72
    assert M.face_box_from_landmarks(points, 512, 512) == (79, 211, 68, 212)
    assert M.face_box_from_landmarks(points, 512, 512, expand_ratio=1.0) == (90, 200, 80, 200)
    # lips x 125..165, y 160..180 doubled around (145, 170)
    assert M.lip_box_from_landmarks(points, 512, 512) == (105, 185, 150, 190)


def test_raised_forehead_is_clamped_and_follows_roll():
    points = _upright_face() - [0, 85]  # brows at y=15: the forehead would reach y=-5
    assert M.silhouette_points(points, 512, 512)[:, 1].min() == 0.0
    angle = np.deg2rad(30)  # rolled: the forehead moves along the face's own up direction
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = np.array([145.0, 150.0])
    rolled = (_upright_face() - centre) @ rotation.T + centre
    raised = M.silhouette_points(rolled, 512, 512)[27:]
    up = rotation @ np.array([0.0, -1.0])
    np.testing.assert_allclose(raised - rolled[17:27], np.tile(up * 20.0, (10, 1)), atol=1e-9)


# ---- blur, background, tokens ----

def _numpy_blur(mask: np.ndarray, kernel: int) -> np.ndarray:
    """blur_mask in plain numpy: bilinear sampling at half-pixel centres, a separable Gaussian with
    OpenCV's default sigma and reflect-101 borders, min-max to 0..255."""
    height, width = mask.shape
    def sample(axis_len):
        pos = np.clip((np.arange(64) + 0.5) * axis_len / 64 - 0.5, 0, axis_len - 1)
        low = np.floor(pos).astype(int)
        high = np.minimum(low + 1, axis_len - 1)
        return low, high, pos - low
    small = mask.astype(np.float64)
    ly, hy, wy = sample(height)
    small = small[ly] * (1 - wy)[:, None] + small[hy] * wy[:, None]
    lx, hx, wx = sample(width)
    small = small[:, lx] * (1 - wx) + small[:, hx] * wx
    small = np.rint(small)
    sigma = 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8
    taps = np.exp(-((np.arange(kernel) - kernel // 2) ** 2) / (2 * sigma ** 2))
    taps /= taps.sum()
    half = kernel // 2
    padded = np.pad(small, half, mode="reflect")
    rows = np.stack([np.convolve(row, taps, mode="valid") for row in padded])
    blurred = np.stack([np.convolve(col, taps, mode="valid") for col in rows.T]).T
    blurred = np.rint(blurred)
    return np.rint((blurred - blurred.min()) * 255 / (blurred.max() - blurred.min()))


@pytest.mark.parametrize("kernel", [M.FACE_KERNEL, M.LIP_KERNEL])
def test_blur_mask_matches_numpy(kernel):
    mask = M.box_mask((150, 330, 100, 400), 512, 512)
    got = M.blur_mask(mask, kernel)
    assert got.dtype == np.uint8 and got.shape == (64, 64)
    assert got.min() == 0 and got.max() == 255
    # OpenCV's 8-bit blur uses fixed-point taps and rounds before the min-max stretch, which scales
    # that rounding up: a few levels apart at most, well under one on average
    diff = np.abs(got.astype(np.float64) - _numpy_blur(mask, kernel[0]))
    assert diff.max() <= 3 and diff.mean() < 0.6


def test_blur_mask_of_a_constant_is_zero():
    assert not M.blur_mask(np.full((512, 512), 255, np.uint8), M.FACE_KERNEL).any()


def test_background_is_hallos_truncated_inverse():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    inverse = M.background_mask(values).astype(int)
    assert np.isin(inverse - (255 - values.astype(int)), [0, -1]).all()
    assert inverse[0, 0] == 255 and inverse[-1, -1] == 0
    expected = ((1.0 - values / 255.0) * 255).astype(np.uint8)
    np.testing.assert_array_equal(M.background_mask(values), expected)


def test_level_tokens_are_row_major_bilinear():
    mask = np.zeros((64, 64), np.uint8)
    mask[:32, 32:] = 255  # top-right quadrant
    tokens = M.level_tokens(mask, 8)
    assert tokens.shape == (1, 64) and tokens.dtype == torch.float32
    grid = tokens.view(8, 8)
    # PIL's bilinear filter spans one output token (antialiased): only the block edges blend
    assert torch.all(grid[:3, 5:] == 1) and torch.all(grid[5:, :] == 0) and torch.all(grid[:, :3] == 0)
    assert torch.equal(M.level_tokens(mask, 64), torch.from_numpy(mask).float().div(255).view(1, -1))


# ---- region_masks ----

@pytest.mark.parametrize("size, sides", [(512, [64, 32, 16, 8]), (128, [16, 8, 4, 2])])
def test_shapes_per_level(size, sides):
    points = _upright_face() * size / 512
    masks = M.region_masks(points, size)
    for group in (masks.full, masks.face, masks.lip):
        assert [tuple(t.shape) for t in group] == [(1, side * side) for side in sides]
        assert all(t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1 for t in group)
    assert masks.face_region.shape == (3, size, size) and masks.face_region.dtype == torch.float32


def test_face_region_is_the_hard_expanded_box():
    masks = M.region_masks(_upright_face(), 512, face_expand_ratio=1.2)
    assert masks.face_box == (79, 211, 68, 212)
    expected = torch.zeros(512, 512)
    expected[68:212, 79:211] = 1
    assert torch.equal(masks.face_region, expected.expand(3, -1, -1))


@pytest.fixture(scope="module")
def astronaut_in_512(astronaut):
    """The astronaut's landmarks mapped into a 512 square crop around her face (2.5 face boxes wide)."""
    from faceanim.face import LandmarkPredictor, make_detector

    box = make_detector("hog").detect(astronaut)[0]
    points = LandmarkPredictor()(astronaut, box).astype(np.float64)
    side = 2.5 * max(box.width, box.height)
    origin = np.array(box.center) - side / 2
    return (points - origin) * 512 / side


def _centroid(tokens: torch.Tensor, size: int) -> np.ndarray:
    side = int(round(tokens.numel() ** 0.5))
    weights = tokens.view(side, side).double().numpy()
    centres = (np.arange(side) + 0.5) * size / side
    return np.array([(weights.sum(axis=0) * centres).sum(), (weights.sum(axis=1) * centres).sum()]) / weights.sum()


def test_astronaut_masks_sit_on_face_and_mouth(astronaut_in_512):
    points = astronaut_in_512
    masks = M.region_masks(points, 512)
    fx0, fx1, fy0, fy1 = masks.face_box
    lx0, lx1, ly0, ly1 = masks.lip_box
    assert 0 <= fx0 < lx0 < lx1 < fx1 <= 512 and 0 <= fy0 < ly0 < ly1 <= fy1 <= 512
    # the face box holds all of dlib's face points and the lip box the mouth
    assert (points.min(axis=0) >= [fx0, fy0]).all() and (points.max(axis=0) <= [fx1, fy1]).all()
    mouth = points[48:68]
    assert (mouth.min(axis=0) >= [lx0, ly0]).all() and (mouth.max(axis=0) <= [lx1, ly1]).all()
    for level in range(4):
        lx, ly = _centroid(masks.lip[level], 512)
        assert lx0 <= lx <= lx1 and ly0 <= ly <= ly1
        face = masks.face[level] + masks.lip[level]
        cx, cy = _centroid(face, 512)
        assert fx0 <= cx <= fx1 and fy0 <= cy <= fy1
    full = masks.full[0].view(64, 64)
    centre = (int((fy0 + fy1) / 2 / 8), int((fx0 + fx1) / 2 / 8))
    assert full[centre] < 0.05
    assert min(full[0, 0], full[0, -1], full[-1, 0], full[-1, -1]) > 0.95
    # most of the face weight lies within the face box grown by a blur sigma (8 px at 64 -> 64 px)
    weights = (masks.face[0] + masks.lip[0]).view(64, 64).double()
    inner = weights[max(fy0 // 8 - 8, 0):fy1 // 8 + 8, max(fx0 // 8 - 8, 0):fx1 // 8 + 8]
    assert inner.sum() / weights.sum() > 0.9
    # the lip mask peaks at the mouth, and the face mask gives way to it there (face = face - lip)
    mouth_token = (int(mouth[:, 1].mean() / 8), int(mouth[:, 0].mean() / 8))
    assert masks.lip[0].view(64, 64)[mouth_token] > 0.9
    assert masks.face[0].view(64, 64)[mouth_token] < 0.1


def test_no_face_uses_the_whole_image():
    masks = M.region_masks(None, 128)
    assert masks.face_box == (0, 128, 0, 128) and masks.lip_box is None
    assert torch.equal(masks.face_region, torch.ones(3, 128, 128))
    for level in range(4):
        assert not masks.lip[level].any() and not masks.full[level].any()
        assert torch.all(masks.face[level] == 1)


def test_box_longer_than_the_image_is_clipped():
    points = (_upright_face() - 145) * 5 + 256  # a face about 550 px wide and 600 px tall in a 512 image
    box = M.face_box_from_landmarks(points, 512, 512)
    assert box[0] < 0 and box[2] < 0 and box[1] == box[3] == 512  # Hallo's arithmetic, kept
    # Hallo would slice from a negative start (a strip at the far edge); we clip to the whole image
    assert (M.box_mask(box, 512, 512) == 255).all()


# ---- union over a clip ----

def test_union_covers_every_frame_box():
    base = _upright_face()
    clip = [base + shift for shift in ([0, 0], [40, -10], [-30, 25], [15, 60])]
    union = M.union_face_mask(clip, 512)
    assert union.dtype == np.uint8 and set(np.unique(union)) == {0, 255}
    boxes = [M.face_box_from_landmarks(points, 512, 512, expand_ratio=1.0) for points in clip]
    for x0, x1, y0, y1 in boxes:
        assert (union[y0:y1, x0:x1] == 255).all()
    # the union is one filled rectangle: the bounds of all the boxes
    x0, y0 = min(b[0] for b in boxes), min(b[2] for b in boxes)
    x1, y1 = max(b[1] for b in boxes), max(b[3] for b in boxes)
    expected = np.zeros((512, 512), np.uint8)
    expected[y0:y1, x0:x1] = 255
    np.testing.assert_array_equal(union, expected)
    region = M.union_face_region(clip, 512)
    assert region.shape == (3, 512, 512)
    assert torch.equal(region[0], torch.from_numpy(expected).float() / 255)


def test_union_skips_faceless_frames_and_falls_back_to_the_image():
    base = _upright_face()
    assert np.array_equal(M.union_face_mask([None, base, None], 512), M.union_face_mask([base], 512))
    assert (M.union_face_mask([None, None], 64) == 255).all()
