"""log_mel / mfcc / loudness_envelope: row t is centred on t / fps, row counts follow frame_count, values
behave on a tone burst, on real speech and on digital silence."""
from __future__ import annotations

import numpy as np
import pytest
import soxr

from faceanim.audio import frame_count, log_mel, loudness_envelope, mfcc
from faceanim.errors import InputError

from .signals import RATE, tone_burst


def _rise_and_fall(levels: np.ndarray) -> tuple[int, int]:
    """First and last row above the midpoint between the quietest and loudest row."""
    loud = np.flatnonzero(levels > (levels.min() + levels.max()) / 2)
    return int(loud[0]), int(loud[-1])


@pytest.mark.parametrize(("fps", "hops"), [(25, 1), (25, 4), (30, 1), (30, 4)])
def test_log_mel_rows_rise_where_the_burst_starts(fps, hops):
    features = log_mel((tone_burst(), RATE), fps, hops_per_frame=hops)
    assert features.shape == (4 * fps, 80 * hops) and features.dtype == np.float32
    rise, fall = _rise_and_fall(features.mean(axis=1))
    assert abs(rise - 2 * fps) <= 1      # burst starts at 2.0 s
    assert abs(fall - 3 * fps) <= 1      # and stops at 3.0 s


def test_log_mel_with_one_hop_is_exactly_centred():
    """Default windows are two frames long and centred on t / fps: row 49 (1.96 s) must not hear a burst that
    starts at 2.0 s, while row 50 hears half of its window."""
    levels = log_mel((tone_burst(), RATE), 25).mean(axis=1)
    assert levels[50] > levels[49] + 40 and levels[49] < levels[10] + 3


def test_stacked_hops_are_ordered_in_time_and_mean_matches_shape():
    stacked = log_mel((tone_burst(), RATE), 25, hops_per_frame=4).reshape(100, 4, 80).max(axis=2)
    assert stacked[50, 3] > stacked[50, 0] + 20    # row 50's later hops lie after the onset
    assert stacked[75, 0] > stacked[75, 3] + 20    # row 75 (3.0 s): its earlier hops hear the burst, later not
    averaged = log_mel((tone_burst(), RATE), 25, hops_per_frame=4, reduce="mean")
    assert averaged.shape == (100, 80)
    with pytest.raises(ValueError):
        log_mel((tone_burst(), RATE), 25, hops_per_frame=4, reduce="max")


@pytest.mark.parametrize("fps", [25, 30, 29.97])
def test_row_counts_follow_frame_count_for_odd_durations(fps):
    audio = (tone_burst(1.234, 0.5, 0.3), RATE)
    expected = frame_count(1.234, fps)
    assert log_mel(audio, fps).shape == (expected, 80)
    assert log_mel(audio, fps, hops_per_frame=4).shape == (expected, 320)
    assert mfcc(audio, fps).shape == (expected, 13)
    assert loudness_envelope(audio, fps).shape == (expected,)


def test_features_do_not_depend_on_input_rate_or_channels():
    mono = tone_burst()
    at_44k = soxr.resample(mono, RATE, 44100).astype(np.float32)
    stereo = np.stack([at_44k, at_44k], axis=1)
    reference = log_mel((mono, RATE), 25)
    burst_rows = slice(52, 74)
    assert np.abs(log_mel((stereo, 44100), 25)[burst_rows] - reference[burst_rows]).mean() < 0.5  # dB
    np.testing.assert_allclose(log_mel((stereo, 44100), 25), log_mel((at_44k, 44100), 25), atol=1e-3)


def test_loudness_envelope_puts_a_click_in_its_frame():
    samples = np.zeros(2 * RATE, np.float32)
    samples[RATE] = 1.0                       # a click at exactly 1.0 s
    envelope = loudness_envelope((samples, RATE), 25)
    assert envelope.shape == (50,) and int(np.argmax(envelope)) == 25
    assert np.isclose(envelope[25], 20 * np.log10(np.sqrt(1 / 640)), atol=0.01)  # one sample in 640
    np.testing.assert_allclose(np.delete(envelope, 25), -100, atol=1e-3)


def test_mfcc_on_real_speech(read_wav):
    samples, rate = read_wav("speech_en_16k.wav")
    features = mfcc((samples, rate), 25)
    assert features.shape == (frame_count(samples.size / rate, 25), 13)
    assert np.isfinite(features).all()
    assert features[:, 1:].std(axis=0).min() > 1.0          # coefficients vary with the phonemes
    stacked = mfcc((samples, rate), 30, hops_per_frame=4, n_mfcc=20)
    assert stacked.shape == (frame_count(samples.size / rate, 30), 80) and np.isfinite(stacked).all()


def test_loudness_speech_above_flat_silence(read_wav):
    speech = loudness_envelope(read_wav("speech_en_16k.wav"), 25)
    silence = loudness_envelope(read_wav("silence_2s_16k.wav"), 25)
    assert silence.shape == (50,)
    assert np.ptp(silence) < 1e-3                          # flat
    assert np.median(speech) > silence.max() + 40
    assert speech.max() > -20                               # speech peaks are loud


def test_stereo_44k_speech(read_wav):
    samples, rate = read_wav("speech_ko_44k_stereo.wav")
    features = log_mel((samples, rate), 25)
    assert features.shape == (frame_count(samples.shape[0] / rate, 25), 80) and np.isfinite(features).all()


@pytest.mark.parametrize("audio", [
    (np.array([0.0, np.nan], np.float32), RATE),
    (np.zeros(100, np.float32), 0),
    (np.zeros((2, 3, 4), np.float32), RATE),
    (np.array(["a", "b"]), RATE),
])
def test_bad_audio_raises_input_error(audio):
    with pytest.raises(InputError):
        log_mel(audio, 25)


def test_integer_pcm_is_scaled():
    burst_rows = slice(52, 74)  # the quiet rows' faint noise floor is only a few PCM steps
    expected = loudness_envelope((tone_burst(), RATE), 25)[burst_rows]
    signed = np.round(tone_burst() * 32767).astype(np.int16)
    np.testing.assert_allclose(loudness_envelope((signed, RATE), 25)[burst_rows], expected, atol=0.01)
    unsigned = np.round(tone_burst() * 127 + 128).astype(np.uint8)
    np.testing.assert_allclose(loudness_envelope((unsigned, RATE), 25)[burst_rows], expected, atol=0.1)


def test_accepts_faceanim_media_audio():
    media = pytest.importorskip("faceanim.media")
    samples = np.stack([tone_burst(), tone_burst()], axis=1)       # (N, C) as faceanim.media keeps it
    np.testing.assert_array_equal(log_mel(media.Audio(samples, RATE), 25), log_mel((tone_burst(), RATE), 25))


@pytest.mark.parametrize("samples", [0, 100])   # no audio, and less than half a frame: no rows
def test_audio_too_short_for_a_frame_gives_no_rows(samples):
    audio = (np.zeros(samples, np.float32), RATE)
    assert log_mel(audio, 25).shape == (0, 80)
    assert log_mel(audio, 25, hops_per_frame=4).shape == (0, 320)
    assert mfcc(audio, 25).shape == (0, 13)
    assert mfcc(audio, 25, hops_per_frame=2).shape == (0, 26)
    assert loudness_envelope(audio, 25).shape == (0,)
