"""faceanim.audio.psf_mfcc against python_speech_features (the features SyncNet was trained on)."""
from __future__ import annotations

import numpy as np
import pytest

from faceanim.audio.psf_mfcc import frame_signal, int16_scale, mel_filterbank, psf_mfcc

psf = pytest.importorskip("python_speech_features")


def _speechlike(seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A chirp with an amplitude envelope and noise, at int16 scale like SyncNet's input."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = np.sin(2 * np.pi * (150 * t + 400 * t ** 2)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return int16_scale(0.4 * tone + 0.02 * rng.standard_normal(t.size))


@pytest.mark.parametrize("length", [16000, 16000 + 77, 400, 399, 401, 1])
def test_matches_python_speech_features(length):
    signal = _speechlike(1.1)[:length]
    ours = psf_mfcc(signal, 16000)
    reference = psf.mfcc(signal, 16000)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-9)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the reference warns that 551-sample frames exceed nfft
def test_matches_on_int16_input_and_other_rates():
    signal = _speechlike(0.5, 22050, seed=1).astype(np.int16)
    np.testing.assert_allclose(psf_mfcc(signal, 22050), psf.mfcc(signal, 22050), rtol=1e-9, atol=1e-9)


def test_matches_on_silence_with_zero_energy():
    silence = np.zeros(3200)
    ours, reference = psf_mfcc(silence), psf.mfcc(silence, 16000)
    np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)
    assert np.isfinite(ours).all()


def test_frames_and_filterbank_equal_the_reference_pieces():
    from python_speech_features import base, sigproc

    signal = np.arange(1000, dtype=np.float64)
    np.testing.assert_array_equal(frame_signal(signal, 400, 160), sigproc.framesig(signal, 400, 160))
    np.testing.assert_array_equal(mel_filterbank(26, 512, 16000), base.get_filterbanks(26, 512, 16000))


def test_frame_rate_is_100_hz():
    # SyncNet takes 20 MFCC frames per 5 video frames at 25 fps: 4 per video frame
    assert psf_mfcc(np.ones(16000)).shape == (99, 13)  # 1 + ceil((16000 - 400) / 160)


def test_int16_scale_rounds_and_clips():
    np.testing.assert_array_equal(int16_scale(np.array([0.0, 0.5, -1.0, 1.0, -2.0, 1e-5])),
                                  [0.0, 16384.0, -32768.0, 32767.0, -32768.0, 0.0])
