"""Detection, landmarks, identity embeddings, model loading and the preflight check, on real faces."""
from __future__ import annotations

import numpy as np
import pytest

from faceanim.errors import InputError, MissingWeightsError, NoFaceError
from faceanim.face import (Box, FaceEmbedder, HOGDetector, LandmarkPredictor, MMODDetector, box_from_landmarks,
                           embedding_distance, fomm_box, fomm_crop, largest_face, make_detector)


def test_box_geometry():
    box = Box(10, 20, 50, 100, score=0.5)
    assert (box.width, box.height, box.center, box.area) == (40, 80, (30, 60), 3200)
    assert box.scale(0.5).as_array().tolist() == [5, 10, 25, 50]
    grown = box.expand(1.5)
    assert grown.center == box.center and (grown.width, grown.height) == (60, 120) and grown.score == 0.5
    assert box.iou(box) == pytest.approx(1.0)
    assert box.iou(Box(60, 20, 80, 100)) == 0.0
    assert Box(0, 0, 10, 10).iou(Box(5, 0, 15, 10)) == pytest.approx(1 / 3)


def test_hog_finds_the_astronaut(astronaut):
    boxes = HOGDetector().detect(astronaut)
    assert len(boxes) == 1
    cx, cy = boxes[0].center
    assert abs(cx - 222) < 25 and abs(cy - 126) < 25 and 60 < boxes[0].width < 130


def test_detection_on_a_shrunk_copy_maps_back(astronaut):
    full = HOGDetector().detect(astronaut)[0]
    big = np.kron(astronaut, np.ones((2, 2, 1), dtype=np.uint8))  # 1024x1024, face twice as large
    mapped = HOGDetector(max_side=512).detect(big)[0]
    assert mapped.iou(full.scale(2)) > 0.7


def test_weak_false_positive_is_not_the_largest_face(astronaut):
    import cv2

    # Turned 20 degrees, the astronaut also yields a weak, larger false detection on her suit.
    rotation = cv2.getRotationMatrix2D((222, 130), -20, 1.0)
    turned = cv2.warpAffine(astronaut, rotation, (512, 512), borderMode=cv2.BORDER_REFLECT)
    box, _ = largest_face(turned)
    assert abs(box.center[0] - 222) < 30 and abs(box.center[1] - 130) < 30


def test_landmarks_lie_on_the_face(astronaut):
    box = HOGDetector().detect(astronaut)[0]
    points = LandmarkPredictor()(astronaut, box)
    assert points.shape == (68, 2) and points.dtype == np.float32
    grown = box.expand(1.4)
    assert (points[:, 0] > grown.left).all() and (points[:, 0] < grown.right).all()
    assert (points[:, 1] > grown.top).all() and (points[:, 1] < grown.bottom).all()
    assert points[36:42, 0].mean() < points[42:48, 0].mean()  # image-left eye first
    assert points[19, 1] < points[30, 1] < points[57, 1] < points[8, 1]  # brow, nose, lip, chin downwards


def test_refitting_in_the_landmark_box_is_stable(astronaut, astronaut_face):
    _, points = astronaut_face
    predictor = LandmarkPredictor()
    again = predictor(astronaut, box_from_landmarks(points))
    assert np.abs(again - points).max() <= 2.0
    box = box_from_landmarks(points)
    assert box.width == pytest.approx(box.height)
    assert box.iou(HOGDetector().detect(astronaut)[0]) > 0.5  # placed and sized like a detector box


def test_embeddings_tell_people_apart(astronaut, astronaut_face, portrait):
    embed = FaceEmbedder()
    _, points = astronaut_face
    own = embed(astronaut, points)
    assert own.shape == (128,) and own.dtype == np.float32
    assert 0.5 < np.linalg.norm(own) < 2.0  # dlib's descriptors are not normalised, but near unit scale
    assert embedding_distance(own, embed(astronaut, points)) == 0.0
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    assert embedding_distance(own, embed(flipped, largest_face(flipped)[1])) < 0.4
    other = embed(portrait, largest_face(portrait)[1])
    assert embedding_distance(own, other) > 0.6


def test_mmod_detector_finds_a_face(astronaut, astronaut_face):
    crop, transform = fomm_crop(astronaut, fomm_box(astronaut_face[0], astronaut.shape[:2]), 256)
    boxes = make_detector("mmod").detect(crop)
    assert isinstance(make_detector("mmod"), MMODDetector) and len(boxes) == 1
    face_in_crop = transform.to_crop(astronaut_face[1]).mean(axis=0)
    assert boxes[0].left < face_in_crop[0] < boxes[0].right and boxes[0].top < face_in_crop[1] < boxes[0].bottom


def test_no_face_names_the_file():
    flat = np.full((200, 300, 3), 128, dtype=np.uint8)
    with pytest.raises(NoFaceError, match=r"^photo\.png: no face found \(detector hog, image 300x200"):
        largest_face(flat, path="photo.png")


def test_bad_inputs_raise_input_error(astronaut):
    with pytest.raises(InputError, match="uint8 RGB"):
        HOGDetector().detect(astronaut.astype(np.float32))
    with pytest.raises(InputError, match="uint8 RGB"):
        LandmarkPredictor()(astronaut[..., 0], Box(0, 0, 10, 10))
    with pytest.raises(InputError, match="68"):
        FaceEmbedder()(astronaut, np.zeros((5, 2)))
    with pytest.raises(InputError, match="unknown face detector"):
        make_detector("retina")


def test_missing_model_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEANIM_DLIB_MODELS", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="shape_predictor_68_face_landmarks.dat"):
        LandmarkPredictor()
    with pytest.raises(MissingWeightsError, match="elsewhere.dat"):
        FaceEmbedder(model_path=tmp_path / "elsewhere.dat")


def test_corrupt_model_file_is_an_input_error(tmp_path):
    bad = tmp_path / "shape_predictor_68_face_landmarks.dat"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a valid dlib model"):
        LandmarkPredictor(model_path=bad)
