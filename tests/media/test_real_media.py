"""The shared real test media (skipped where ../shared/testdata is absent)."""
from __future__ import annotations

import numpy as np
import pytest

from faceanim.media import VideoReader, probe, read_audio, read_image

pytestmark = pytest.mark.testdata


def test_wild_1080p_video(shared_testdata):
    with VideoReader(shared_testdata / "wild_1080p.mp4") as reader:
        assert (reader.width, reader.height, reader.frame_count) == (1920, 1080, 100)
        assert reader.fps == pytest.approx(25) and reader.rotation == 0 and not reader.is_vfr
        count = 0
        for count, frame in enumerate(reader, start=1):
            assert frame.shape == (1080, 1920, 3) and frame.dtype == np.uint8
    assert count == 100


def test_driving_video_resampled(shared_testdata):
    path = shared_testdata / "driving_256.mp4"
    info = probe(path, expect="video")
    assert (info.width, info.height, info.frame_count) == (256, 256, 227)
    with VideoReader(path, fps=12.5) as reader:
        frames = list(reader)
    assert len(frames) == reader.frame_count == 114  # 9.08 s at 12.5 fps
    native = [frame for _, frame in zip(range(5), VideoReader(path))]
    np.testing.assert_array_equal(frames[2], native[4])  # tick 2 / 12.5 s = source frame 4


def test_korean_stereo_speech_resampled(shared_testdata):
    path = shared_testdata / "speech_ko_44k_stereo.wav"
    native = read_audio(path, sample_rate=None, mono=False)
    assert native.sample_rate == 44100 and native.samples.shape[1] == 2
    speech = read_audio(path)
    assert speech.sample_rate == 16000 and speech.samples.ndim == 1
    assert speech.duration == pytest.approx(native.duration, abs=1 / 16000)
    assert 6.0 < speech.duration < 6.2 and np.abs(speech.samples).max() > 0.05


def test_silence_and_english_speech(shared_testdata):
    silence = read_audio(shared_testdata / "silence_2s_16k.wav")
    assert silence.duration == pytest.approx(2.0, abs=1e-3) and np.abs(silence.samples).max() < 1e-3
    speech = read_audio(shared_testdata / "speech_en_16k.wav", sample_rate=None)
    assert speech.sample_rate == 16000 and speech.duration == pytest.approx(6.9, abs=0.1)


def test_portrait_image(shared_testdata):
    image = read_image(shared_testdata / "portrait_256.png")
    assert image.shape == (256, 256, 3) and image.std() > 10
