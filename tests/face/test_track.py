"""The streaming face tracker: a synthetic moving face with a gap, face selection, and a real 1080p clip."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from faceanim.errors import InputError
from faceanim.face import FaceEmbedder, FaceTracker, fomm_box, fomm_crop, inner_mouth_opening, largest_face

BLANK = range(25, 32)


def _moving_face_video(astronaut, face_center):
    """60 frames (384x384): the astronaut drifting right and down while zooming in by 30 %, frames
    25-31 blanked. Returns the frames and the true position of the face box centre in each."""
    frames, truth = [], []
    for i in range(60):
        zoom = 1.0 + 0.3 * i / 59
        matrix = np.array([[zoom, 0, 0], [0, zoom, 0]], dtype=np.float64)
        matrix[:, 2] = (1 - zoom) * np.asarray(face_center) + [-124 + 2.0 * i, -20 + 1.0 * i]
        frame = cv2.warpAffine(astronaut, matrix, (384, 384), borderMode=cv2.BORDER_REFLECT_101)
        frames.append(np.zeros_like(frame) if i in BLANK else frame)
        truth.append(matrix[:, :2] @ face_center + matrix[:, 2])
    return frames, truth


@pytest.fixture(scope="module")
def moving_run(astronaut, astronaut_face):
    frames, truth = _moving_face_video(astronaut, astronaut_face[0].center)
    tracker = FaceTracker(detect_every=10, smoothing=2.0)
    pairs = list(tracker.track(iter(frames)))
    return frames, truth, tracker, pairs


def test_found_and_missing_frames(moving_run):
    frames, _, tracker, pairs = moving_run
    assert [frame is original for (frame, _), original in zip(pairs, frames)] == [True] * 60
    assert [obs.index for _, obs in pairs] == list(range(60))
    assert [obs.found for _, obs in pairs] == [i not in BLANK for i in range(60)]
    summary = tracker.summary()
    assert (summary.frames, summary.found, summary.missing) == (60, 53, [(25, 31)])
    assert summary.missing_text == "25-31" and "missing: 25-31" in str(summary)
    missing = [obs for _, obs in pairs if not obs.found]
    assert all(obs.box is None and obs.landmarks is None and not obs.detected for obs in missing)
    detected = [obs.index for _, obs in pairs if obs.detected]
    assert detected[0] == 0 and 32 in detected  # re-acquired by the detector right after the gap
    assert len(detected) < 12  # in between, landmarks alone track the face


def test_boxes_follow_the_motion_without_jitter(moving_run):
    _, truth, _, pairs = moving_run
    found = [obs for _, obs in pairs if obs.found]
    errors = [np.hypot(*np.subtract(obs.box.center, truth[obs.index])) for obs in found]
    assert max(errors) < 5.0
    widths = np.array([obs.box.width for obs in found[:25]])
    assert widths[-1] / widths[0] == pytest.approx(1 + 0.3 * 24 / 59, rel=0.05)  # follows the zoom
    steps = np.diff([obs.box.center[0] for obs in found[:25]])
    assert np.abs(steps - np.diff([truth[i][0] for i in range(25)])).max() < 1.0
    assert all(obs.landmarks.shape == (68, 2) and obs.landmarks.dtype == np.float32 for obs in found)


def test_smoothing_keeps_the_expression(moving_run):
    _, _, _, pairs = moving_run
    for _, obs in pairs:
        if obs.found:
            assert inner_mouth_opening(obs.landmarks) == pytest.approx(inner_mouth_opening(obs.raw_landmarks), abs=1e-4)


def test_no_face_at_all_is_not_an_error():
    tracker = FaceTracker()
    frames = [np.full((120, 160, 3), value, dtype=np.uint8) for value in (0, 90, 200)]
    observations = [obs for _, obs in tracker.track(frames)]
    assert [obs.found for obs in observations] == [False] * 3
    assert tracker.summary().missing == [(0, 2)] and tracker.summary().found == 0


def test_bad_frames_and_options_raise_input_error():
    with pytest.raises(InputError, match="frame 1"):
        list(FaceTracker().track([np.zeros((50, 50, 3), np.uint8), np.zeros((50, 50), np.uint8)]))
    with pytest.raises(InputError):
        FaceTracker(select="smallest")
    with pytest.raises(InputError):
        FaceTracker(select=np.zeros(12))
    with pytest.raises(InputError):
        FaceTracker(detect_every=0)


@pytest.fixture(scope="module")
def two_faces(astronaut, astronaut_face, portrait):
    """A 256x512 frame: the astronaut (FOMM crop, larger face) on the left, the portrait on the right."""
    left, _ = fomm_crop(astronaut, fomm_box(astronaut_face[0], astronaut.shape[:2], increase=0.15), 256)
    return np.concatenate([left, portrait], axis=1)


def _followed_x(tracker, frame):
    (_, observation), = tracker.track([frame])
    assert observation.found
    return observation.box.center[0]


def test_select_by_reference_embedding(two_faces, portrait, astronaut, astronaut_face):
    portrait_embedding = FaceEmbedder()(portrait, largest_face(portrait)[1])
    astronaut_embedding = FaceEmbedder()(astronaut, astronaut_face[1])
    assert _followed_x(FaceTracker(select=portrait_embedding, detect_max_side=None), two_faces) > 256
    assert _followed_x(FaceTracker(select=astronaut_embedding, detect_max_side=None), two_faces) < 256
    stranger = np.zeros(128, dtype=np.float32)
    (_, observation), = FaceTracker(select=stranger).track([two_faces])
    assert not observation.found


def test_select_by_position_and_size(two_faces):
    assert _followed_x(FaceTracker(select=0), two_faces) < 256  # leftmost
    assert _followed_x(FaceTracker(select=1), two_faces) > 256
    (_, observation), = FaceTracker(select=2).track([two_faces])
    assert not observation.found
    assert _followed_x(FaceTracker(select="largest"), two_faces) < 256  # the astronaut crop is larger


@pytest.fixture(scope="module")
def wild_run(shared_testdata, read_frames):
    tracker = FaceTracker()
    start = time.perf_counter()
    observations = [(frame.shape, obs) for frame, obs in tracker.track(read_frames(shared_testdata / "wild_1080p.mp4"))]
    return tracker, observations, len(observations) / (time.perf_counter() - start)


def test_wild_1080p_face_found_and_crops_steady(wild_run):
    tracker, observations, fps = wild_run
    assert tracker.summary().frames == 100
    assert tracker.summary().found >= 95
    boxes = [fomm_box(obs.box, shape[:2]) for shape, obs in observations if obs.found]
    centers = np.array([box.center for box in boxes])
    moves = np.linalg.norm(np.diff(centers, axis=0), axis=1) / np.array([box.width for box in boxes[1:]])
    assert moves.mean() < 0.02
    first = boxes[0]
    assert 1230 < first.center[0] < 1600 and 280 < first.center[1] < 650  # the face in the README's box


def test_wild_1080p_tracking_speed(wild_run):
    _, _, fps = wild_run
    assert fps >= 10  # including decoding; about 50-100 frames/s on 2 cores


def test_streams_with_a_short_lookahead(astronaut):
    tracker = FaceTracker(smoothing=2.0)
    consumed = []

    def frames():
        for i in range(20):
            consumed.append(i)
            yield astronaut

    lags = [len(consumed) - 1 - obs.index for _, obs in tracker.track(frames())]
    assert max(lags) == tracker.lookahead == 5 and lags[-1] == 0
    consumed.clear()
    assert [len(consumed) - 1 - obs.index for _, obs in FaceTracker(smoothing=0).track(frames())] == [0] * 20


def test_a_cut_is_followed_at_once_and_not_smoothed_across(astronaut, astronaut_face):
    center = np.asarray(astronaut_face[0].center)
    shifts = [np.array([-100.0, 0.0])] * 15 + [np.array([110.0, 60.0])] * 15  # the face jumps at frame 15
    frames = [cv2.warpAffine(astronaut, np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float64), (512, 512),
                             borderMode=cv2.BORDER_REFLECT_101) for dx, dy in shifts]
    observations = [obs for _, obs in FaceTracker(smoothing=3.0).track(frames)]
    assert all(obs.found for obs in observations)
    errors = [np.hypot(*(np.asarray(obs.box.center) - center - shift)) for obs, shift in zip(observations, shifts)]
    assert max(errors) < 3.0
    assert observations[15].detected
