"""Face metrics (AKD, AED, CSIM, head-pose error, TL-ID, TG-ID): closed forms on synthetic landmarks and
embeddings, brute-force re-implementations of the formulas, and real faces (astronaut, shared test media)."""
from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest

from faceanim.errors import InputError
from faceanim.metrics.base import EvalContext, FaceModels, FrameView
from faceanim.metrics.face import (AEDMetric, AKDMetric, CSIMMetric, PoseErrorMetric, TGIDMetric, TLIDMetric,
                                   adjacent_similarity, cosine_similarity, embedding_distance,
                                   keypoint_coordinate_difference, keypoint_distance, pairwise_similarity,
                                   pose_difference, pose_errors, relative_consistency)

from ..evidence import missing

# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models() -> FaceModels:
    return FaceModels()


def view(image: np.ndarray, models: FaceModels, index: int = 0) -> FrameView:
    return FrameView(image, index, models)


def synthetic_view(embedding: np.ndarray | None, landmarks: np.ndarray | None = None, index: int = 0,
                   size: int = 64) -> FrameView:
    """A FrameView whose face data is given instead of detected (FrameView caches in its __dict__)."""
    frame = FrameView(np.zeros((size, size, 3), np.uint8), index)
    frame.__dict__["embedding"] = None if embedding is None else np.asarray(embedding, dtype=np.float64)
    frame.__dict__["landmarks"] = landmarks if landmarks is not None else (
        None if embedding is None else np.zeros((68, 2)))
    return frame


def feed(metric, preds, refs=None):
    refs = refs if refs is not None else [None] * len(preds)
    per_frame = [metric.update(p, r) for p, r in zip(preds, refs)]
    return per_frame, metric.compute()


def shifted(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """The image translated by (dx, dy) pixels (edges reflected, so no black border appears)."""
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, matrix, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT_101)


def circle_embeddings(count: int, step_degrees: float, dims: int = 8) -> list[np.ndarray]:
    """Unit vectors turning by `step_degrees` per frame in one plane of a `dims`-d space."""
    out = []
    for t in range(count):
        vector = np.zeros(dims)
        angle = math.radians(step_degrees * t)
        vector[:2] = math.cos(angle), math.sin(angle)
        out.append(vector)
    return out


# ---------------------------------------------------------------------------------------------------
# pure functions
# ---------------------------------------------------------------------------------------------------


def test_keypoint_distances_closed_form():
    ref = np.random.default_rng(0).uniform(0, 256, (68, 2))
    assert keypoint_distance(ref, ref) == 0.0
    assert keypoint_distance(ref + [3.0, 4.0], ref) == pytest.approx(5.0)
    assert keypoint_coordinate_difference(ref + [3.0, -4.0], ref) == pytest.approx(3.5)  # FOMM's cmp_kp.py
    moved = ref.copy()
    moved[0] += [6.0, 8.0]  # one point of 68 moves by 10 px
    assert keypoint_distance(moved, ref) == pytest.approx(10.0 / 68)


def test_embedding_distance_and_cosine():
    a, b = np.array([1.0, 0.0, 0.0]), np.array([1.0, 1.0, 0.0])
    assert embedding_distance(a, b) == pytest.approx(1.0)
    assert cosine_similarity(a, b) == pytest.approx(1 / math.sqrt(2))
    assert cosine_similarity(a, 3 * a) == pytest.approx(1.0)
    assert cosine_similarity(a, -a) == pytest.approx(-1.0)
    assert math.isnan(cosine_similarity(a, np.zeros(3)))


def test_pose_difference_and_errors():
    delta = pose_difference((10.0, -5.0, 179.0), (4.0, 3.0, -179.0))
    np.testing.assert_allclose(delta, [6.0, -8.0, -2.0])  # roll wraps round +-180
    mean_abs, rms = pose_errors(delta)
    assert mean_abs == pytest.approx(16.0 / 3)
    assert rms == pytest.approx(math.sqrt((36 + 64 + 4) / 3))  # DaGAN's PRMSE term


def brute_force_adjacent(embeddings):
    sims = [float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
            for a, b in zip(embeddings, embeddings[1:]) if a is not None and b is not None]
    return float(np.mean(sims)) if sims else math.nan


def brute_force_pairwise(embeddings):
    present = [e for e in embeddings if e is not None]
    sims = [float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in itertools.combinations(present, 2)]
    return float(np.mean(sims)) if sims else math.nan


def test_temporal_similarities_closed_forms():
    step = 10.0
    embeddings = circle_embeddings(6, step)
    assert adjacent_similarity(embeddings) == pytest.approx(math.cos(math.radians(step)))
    # all pairs (i < j) of 6 frames: the gap j - i = k occurs 6 - k times
    expected = sum((6 - k) * math.cos(math.radians(step * k)) for k in range(1, 6)) / 15
    assert pairwise_similarity(embeddings) == pytest.approx(expected)
    assert math.isnan(adjacent_similarity(embeddings[:1]))  # no pair
    assert math.isnan(pairwise_similarity(embeddings[:1]))


def test_temporal_similarities_match_brute_force_with_gaps():
    rng = np.random.default_rng(3)
    embeddings = [rng.normal(size=16) * rng.uniform(0.5, 2) for _ in range(12)]
    embeddings[4] = embeddings[9] = None  # frames without a face
    assert adjacent_similarity(embeddings) == pytest.approx(brute_force_adjacent(embeddings))
    assert pairwise_similarity(embeddings) == pytest.approx(brute_force_pairwise(embeddings))
    # a missing frame breaks adjacency: frames 3 and 5 are not paired
    chain = [np.array([1.0, 0.0]), None, np.array([0.0, 1.0])]
    assert math.isnan(adjacent_similarity(chain))
    assert pairwise_similarity(chain) == pytest.approx(0.0)


def test_relative_consistency():
    assert relative_consistency(0.8, 0.9) == pytest.approx(0.8 / 0.9)
    assert math.isnan(relative_consistency(0.8, 0.0))
    assert math.isnan(relative_consistency(0.8, math.nan))


# ---------------------------------------------------------------------------------------------------
# streaming metrics on synthetic face data
# ---------------------------------------------------------------------------------------------------


def test_identity_partner_rule_without_and_with_source():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    preds = [synthetic_view(a, index=i) for i in range(3)]
    refs = [synthetic_view(b, index=i) for i in range(3)]
    # reconstruction: the reference frame at the same index is the partner
    _, summary = feed(CSIMMetric(EvalContext()), preds, refs)
    assert summary == {"csim": pytest.approx(0.0), "csim_missing": 0.0}
    _, summary = feed(AEDMetric(EvalContext()), preds, refs)
    assert summary["aed"] == pytest.approx(math.sqrt(2))
    # cross-identity: the source photo is the partner, whatever the reference is
    context = EvalContext(source=synthetic_view(a))
    _, summary = feed(CSIMMetric(context), preds, refs)
    assert summary["csim"] == pytest.approx(1.0)
    _, summary = feed(AEDMetric(context), preds, [None] * 3)
    assert summary == {"aed": pytest.approx(0.0), "aed_missing": 0.0}


def test_identity_metrics_count_missing_faces_and_missing_partner():
    a = np.array([1.0, 2.0, 3.0])
    preds = [synthetic_view(a), synthetic_view(None), synthetic_view(a), synthetic_view(a)]
    refs = [synthetic_view(a), synthetic_view(a), synthetic_view(None), synthetic_view(a)]
    per_frame, summary = feed(CSIMMetric(EvalContext()), preds, refs)
    assert summary["csim"] == pytest.approx(1.0) and summary["csim_missing"] == pytest.approx(0.5)
    assert [math.isnan(f["csim"]) for f in per_frame] == [False, True, True, False]
    # neither a source nor a reference: nothing to compare with, every frame is missing
    _, summary = feed(AEDMetric(EvalContext()), preds[:2])
    assert math.isnan(summary["aed"]) and summary["aed_missing"] == 1.0


def test_akd_and_pose_count_missing_faces():
    landmarks = np.random.default_rng(1).uniform(50, 200, (68, 2))
    preds = [synthetic_view(np.ones(2), landmarks + 1.0), synthetic_view(None)]
    refs = [synthetic_view(np.ones(2), landmarks), synthetic_view(np.ones(2), landmarks)]
    per_frame, summary = feed(AKDMetric(EvalContext()), preds, refs)
    assert summary == {"akd": pytest.approx(math.sqrt(2)), "akd_fomm": pytest.approx(1.0), "akd_missing": 0.5}
    assert math.isnan(per_frame[1]["akd"])
    _, empty = feed(AKDMetric(EvalContext()), preds[1:], refs[1:])
    assert math.isnan(empty["akd"]) and empty["akd_missing"] == 1.0
    _, pose = feed(PoseErrorMetric(EvalContext()), preds[1:], refs[1:])
    assert math.isnan(pose["pose_error"]) and pose["pose_missing"] == 1.0


def test_akd_needs_equal_frame_sizes_and_a_reference():
    landmarks = np.zeros((68, 2))
    pred = synthetic_view(np.ones(2), landmarks, size=64)
    with pytest.raises(InputError, match="frame size"):
        AKDMetric(EvalContext()).update(pred, synthetic_view(np.ones(2), landmarks, size=32))
    with pytest.raises(InputError, match="reference"):
        AKDMetric(EvalContext()).update(pred, None)


def test_tl_id_tg_id_closed_forms_with_reference():
    pred = [synthetic_view(e, index=i) for i, e in enumerate(circle_embeddings(5, 20.0))]
    ref = [synthetic_view(e, index=i) for i, e in enumerate(circle_embeddings(5, 10.0))]
    per_frame, tl = feed(TLIDMetric(EvalContext()), pred, ref)
    local = math.cos(math.radians(20)) / math.cos(math.radians(10))
    assert tl["tl_id"] == pytest.approx(local)
    assert tl["tl_id_raw"] == pytest.approx(math.cos(math.radians(20)))
    assert tl["tl_id_ref"] == pytest.approx(math.cos(math.radians(10))) and tl["tl_id_missing"] == 0.0
    assert math.isnan(per_frame[0]["tl_id_raw"])  # the first frame has no previous one
    assert per_frame[3]["tl_id_raw"] == pytest.approx(math.cos(math.radians(20)))
    per_frame, tg = feed(TGIDMetric(EvalContext()), pred, ref)
    assert per_frame == [{}] * 5

    def all_pairs(step):
        return sum((5 - k) * math.cos(math.radians(step * k)) for k in range(1, 5)) / 10

    assert tg["tg_id"] == pytest.approx(all_pairs(20) / all_pairs(10))
    assert tg["tg_id_raw"] == pytest.approx(all_pairs(20)) and tg["tg_id_ref"] == pytest.approx(all_pairs(10))


def test_tl_id_tg_id_of_a_video_against_itself_is_one_and_raw_without_reference():
    rng = np.random.default_rng(7)
    common = rng.normal(size=32)  # one identity: the similarities are positive, as they are for real faces
    embeddings = [common + 0.5 * rng.normal(size=32) for _ in range(8)]
    frames = [synthetic_view(e, index=i) for i, e in enumerate(embeddings)]
    for metric, key in ((TLIDMetric, "tl_id"), (TGIDMetric, "tg_id")):
        _, summary = feed(metric(EvalContext()), frames, frames)
        assert summary[key] == pytest.approx(1.0)
        _, raw = feed(metric(EvalContext()), frames)
        assert set(raw) == {f"{key}_raw", f"{key}_missing"}  # no reference: unnormalised, and named so
    _, raw = feed(TGIDMetric(EvalContext()), frames)
    assert raw["tg_id_raw"] == pytest.approx(brute_force_pairwise(embeddings))
    frames[2] = synthetic_view(None, index=2)
    _, summary = feed(TLIDMetric(EvalContext()), frames)
    assert summary["tl_id_missing"] == pytest.approx(1 / 8)


def test_pose_error_of_an_in_plane_rotation_is_roll(astronaut, models):
    """Turning a face's landmarks by 10 degrees in the image about the nose adds 10 degrees of roll; yaw
    and pitch only trade a little of the face's small tilt between them (the tilt turns with the image)."""
    landmarks = view(astronaut, models).landmarks
    centre = landmarks[27:36].mean(axis=0)
    rotation = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), 10.0, 1.0)
    turned = landmarks @ rotation[:, :2].T + rotation[:, 2]
    _, summary = feed(PoseErrorMetric(EvalContext()), [synthetic_view(np.ones(2), turned)],
                      [synthetic_view(np.ones(2), landmarks)])
    assert summary["pose_roll_error"] == pytest.approx(10.0, abs=0.1)
    assert summary["pose_yaw_error"] < 0.6 and summary["pose_pitch_error"] < 0.6
    errors = [summary[f"pose_{angle}_error"] for angle in ("yaw", "pitch", "roll")]
    assert summary["pose_error"] == pytest.approx(np.mean(errors))
    assert summary["pose_prmse"] == pytest.approx(math.sqrt(np.mean(np.square(errors))))
    assert summary["pose_missing"] == 0.0


# ---------------------------------------------------------------------------------------------------
# real faces
# ---------------------------------------------------------------------------------------------------


def test_identical_real_frames_give_perfect_scores(astronaut, models):
    context = EvalContext(face_models=models)
    pred, ref = view(astronaut, models), view(astronaut.copy(), models)
    assert AKDMetric(context).update(pred, ref) == {"akd": 0.0, "akd_fomm": 0.0}
    assert AEDMetric(context).update(pred, ref)["aed"] == pytest.approx(0.0)
    assert CSIMMetric(context).update(pred, ref)["csim"] == pytest.approx(1.0)
    pose = PoseErrorMetric(context).update(pred, ref)
    assert pose["pose_error"] == pytest.approx(0.0) and pose["pose_prmse"] == pytest.approx(0.0)


@pytest.mark.parametrize("dx, dy", [(6, 8), (-5, 3)])
def test_akd_of_a_translated_image_is_the_shift(astronaut, models, dx, dy):
    context = EvalContext(face_models=models)
    ref = view(astronaut, models)
    for moved in (shifted(astronaut, dx, dy), np.roll(astronaut, (dy, dx), axis=(0, 1))):
        values = AKDMetric(context).update(view(moved, models), ref)
        assert values["akd"] == pytest.approx(math.hypot(dx, dy), abs=0.5)
        assert values["akd_fomm"] == pytest.approx((abs(dx) + abs(dy)) / 2, abs=0.5)
        # a translation keeps identity and head pose
        assert CSIMMetric(context).update(view(moved, models), ref)["csim"] > 0.99
        assert PoseErrorMetric(context).update(view(moved, models), ref)["pose_error"] < 1.5


def test_no_face_frames_are_missing(astronaut, models):
    context = EvalContext(face_models=models)
    grey = np.full_like(astronaut, 128)
    preds = [view(astronaut, models, 0), view(grey, models, 1)]
    refs = [view(astronaut, models, 0), view(astronaut, models, 1)]
    for metric, key in ((AKDMetric, "akd"), (AEDMetric, "aed"), (CSIMMetric, "csim"), (PoseErrorMetric, "pose")):
        _, summary = feed(metric(context), preds, refs)
        assert summary[f"{key}_missing"] == pytest.approx(0.5)


def test_different_people_are_less_similar(astronaut, models, shared_testdata):
    path = shared_testdata / "portrait_256.png"
    if not path.is_file():
        missing(f"{path} not found")
    portrait = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    context = EvalContext(face_models=models)
    reference = view(astronaut, models)
    same = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    csim_same = CSIMMetric(context).update(view(same, models), reference)["csim"]
    csim_other = CSIMMetric(context).update(view(portrait, models), reference)["csim"]
    aed_same = AEDMetric(context).update(view(same, models), reference)["aed"]
    aed_other = AEDMetric(context).update(view(portrait, models), reference)["aed"]
    assert csim_other < csim_same - 0.05
    assert aed_other > 0.6 > aed_same  # dlib's same-person threshold
    # cross-identity: with the astronaut as source, a portrait "prediction" scores as a different person
    cross = EvalContext(source=reference, face_models=models)
    assert CSIMMetric(cross).update(view(portrait, models), view(portrait, models))["csim"] == pytest.approx(csim_other)


def test_real_video_frames(models, shared_testdata):
    path = shared_testdata / "driving_256.mp4"
    if not path.is_file():
        missing(f"{path} not found")
    from faceanim.media.video import VideoReader

    with VideoReader(path) as reader:
        frames = list(itertools.islice(reader, 0, 40, 8))
    context = EvalContext(face_models=models)
    refs = [view(frame, models, i) for i, frame in enumerate(frames)]
    preds = [view(shifted(frame, 3, 0), models, i) for i, frame in enumerate(frames)]
    _, akd = feed(AKDMetric(context), preds, refs)
    assert akd["akd_missing"] == 0.0 and akd["akd"] == pytest.approx(3.0, abs=0.7)
    _, csim = feed(CSIMMetric(context), preds, refs)
    assert csim["csim"] > 0.98
    _, aed = feed(AEDMetric(context), refs, refs)
    assert aed == {"aed": pytest.approx(0.0), "aed_missing": 0.0}
    _, tl = feed(TLIDMetric(context), refs, refs)
    _, tg = feed(TGIDMetric(context), refs, refs)
    assert tl["tl_id"] == pytest.approx(1.0) and tg["tg_id"] == pytest.approx(1.0)
    assert 0.8 < tg["tg_id_raw"] <= tl["tl_id_raw"] + 0.05 < 1.05  # one person throughout
