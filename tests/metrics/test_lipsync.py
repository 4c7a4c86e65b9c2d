"""The weight-free lip-audio correlation: known series, and landmarks whose mouth follows the speech."""
from __future__ import annotations

import numpy as np
import pytest

from faceanim.errors import InputError
from faceanim.face import inner_mouth_opening
from faceanim.media.audio import Audio
from faceanim.metrics.base import EvalContext, FrameView
from faceanim.metrics.lipsync import LipAudioMetric, lip_audio_correlation, speech_loudness

RATE, FPS = 16000, 25
HOP = RATE // FPS  # 640 samples a frame


@pytest.fixture(scope="module")
def landmarks(astronaut) -> np.ndarray:
    from faceanim.face import largest_face

    return largest_face(astronaut)[1].astype(np.float64)


def _speech(levels: np.ndarray) -> Audio:
    """A 400 Hz tone whose amplitude is levels[t] over the frame-long stretch centred on t / fps (so the
    RMS the metric measures at frame t is exactly levels[t] / sqrt(2)); 16 whole periods a frame."""
    samples = np.arange(levels.size * HOP)
    amplitude = levels[np.minimum((samples + HOP // 2) // HOP, levels.size - 1)]
    t = samples / RATE
    return Audio((amplitude * np.sin(2 * np.pi * 400 * t)).astype(np.float32), RATE)


def _with_mouth(landmarks: np.ndarray, gap: float) -> np.ndarray:
    """The landmarks with the lower inner lip moved `gap` pixels below the upper one."""
    points = landmarks.copy()
    for upper, lower in ((61, 67), (62, 66), (63, 65)):
        points[lower] = points[upper] + [0.0, gap]
    return points


def _run(landmark_series, audio: Audio) -> tuple[list, dict]:
    metric = LipAudioMetric(EvalContext(fps=FPS, audio=audio))
    blank = np.zeros((8, 8, 3), np.uint8)
    per_frame = []
    for index, points in enumerate(landmark_series):
        view = FrameView(blank, index)
        view.landmarks = points  # the landmarks a detector would have found (None: no face)
        per_frame.append(metric.update(view, None))
    return per_frame, metric.compute()


def test_known_lag_and_correlation():
    rng = np.random.default_rng(0)
    loudness = rng.normal(size=60)
    mouth = np.roll(loudness, -2)  # mouth[t] = loudness[t + 2]: the mouth moves two frames early
    assert lip_audio_correlation(mouth[:-2], loudness[:-2]) == (pytest.approx(1.0), 2.0)
    assert lip_audio_correlation(-loudness, loudness, max_lag=0) == (pytest.approx(-1.0), 0.0)
    mixed = 0.6 * loudness + 0.8 * rng.normal(size=60)
    r, lag = lip_audio_correlation(mixed, loudness, max_lag=0)
    assert (r, lag) == (pytest.approx(np.corrcoef(mixed, loudness)[0, 1]), 0.0)


def test_frames_without_face_are_left_out():
    loudness = np.sin(np.arange(40) / 3.0)
    mouth = 2 * loudness + 1
    mouth[[3, 10, 11]] = np.nan
    assert lip_audio_correlation(mouth, loudness) == (pytest.approx(1.0), 0.0)
    assert all(np.isnan(lip_audio_correlation(np.full(40, np.nan), loudness)))
    assert all(np.isnan(lip_audio_correlation(np.ones(40), loudness)))  # a mouth that never moves


def test_loudness_is_the_frame_rms_in_db():
    levels = np.array([0.1, 0.5, 0.02, 0.3])
    loudness = speech_loudness(_speech(levels), FPS, 6)
    expected = 20 * np.log10(levels / np.sqrt(2))
    expected[0] -= 10 * np.log10(2)  # half of frame 0's window lies before the audio starts: silence
    np.testing.assert_allclose(loudness[:4], expected, atol=0.01)
    assert loudness[4:].tolist() == [-60.0, -60.0]  # past the audio: silence, at the floor


def test_mouth_following_the_speech_scores_one(landmarks):
    rng = np.random.default_rng(1)
    levels = rng.uniform(0.01, 0.5, 80)
    decibels = 20 * np.log10(levels / np.sqrt(2))
    # frame 0 shows no face (its loudness window starts before the audio, in silence)
    series = [None] + [_with_mouth(landmarks, 2.0 + 0.5 * (db + 45)) for db in decibels[1:]]
    per_frame, summary = _run(series, _speech(levels))
    assert summary["lip_audio_corr"] == pytest.approx(1.0, abs=1e-4) and summary["lip_audio_lag"] == 0
    assert np.isnan(per_frame[0]["mouth_opening"])
    assert [values["mouth_opening"] for values in per_frame[1:]] == [inner_mouth_opening(p) for p in series[1:]]

    shuffled = [series[i] for i in rng.permutation(len(series))]
    _, unrelated = _run(shuffled, _speech(levels))
    assert abs(unrelated["lip_audio_corr"]) < 0.35

    late = [None] + series[:-1]  # the mouth one frame late: frame t shows the sound of t - 1
    _, delayed = _run(late, _speech(levels))
    assert delayed["lip_audio_corr"] == pytest.approx(1.0, abs=1e-4) and delayed["lip_audio_lag"] == -1


def test_no_face_anywhere_is_nan(landmarks):
    per_frame, summary = _run([None] * 10, _speech(np.full(10, 0.2)))
    assert np.isnan(per_frame[0]["mouth_opening"])
    assert np.isnan(summary["lip_audio_corr"]) and np.isnan(summary["lip_audio_lag"])


def test_needs_audio():
    assert LipAudioMetric.needs == frozenset({"audio"}) and LipAudioMetric.name == "lip_audio"
    with pytest.raises(InputError, match="audio"):
        LipAudioMetric(EvalContext())
