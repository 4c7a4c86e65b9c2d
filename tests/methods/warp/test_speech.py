"""speech_to_mouth: mouth curves follow loudness, close on silence, spread on /i/, round on /u/."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from faceanim.audio import frame_count, loudness_envelope
from faceanim.errors import InputError
from faceanim.media import Audio, read_audio
from faceanim.methods.warp.speech import MouthCurves, speech_to_mouth

RATE = 16000
FPS = 25


def _time(duration_s: float, rate: int = RATE) -> np.ndarray:
    return np.arange(round(duration_s * rate)) / rate


def _vowel(formants: tuple[float, ...], duration_s: float = 0.6, f0: float = 120.0) -> np.ndarray:
    """A vowel from a cascade formant synthesiser: a glottal pulse train (about -12 dB/octave) through
    two-pole resonators at the formants, with lip radiation (+6 dB/octave); peak 0.3."""
    pulses = np.zeros(round(duration_s * RATE))
    pulses[::round(RATE / f0)] = 1.0
    signal = lfilter([1.0], [1.0, -0.97], lfilter([1.0], [1.0, -0.9], pulses))
    for frequency, bandwidth in zip(formants, (60.0, 90.0, 150.0, 200.0)):
        c = -np.exp(-2 * np.pi * bandwidth / RATE)
        b = 2 * np.exp(-np.pi * bandwidth / RATE) * np.cos(2 * np.pi * frequency / RATE)
        signal = lfilter([1 - b - c], [1.0, -b, -c], signal)
    signal = np.diff(signal, prepend=0.0)
    return (0.3 * signal / np.abs(signal).max()).astype(np.float32)


# Formants of /i/ and /u/ (Peterson & Barney, male speakers): /i/ with a fourth formant at 3.5 kHz
# (rich in 1.8-3.5 kHz energy), /u/ with its first two only (all its energy under 1 kHz).
VOWEL_I = (270.0, 2290.0, 3010.0, 3500.0)
VOWEL_U = (300.0, 870.0)
VOWEL_A = (730.0, 1090.0, 2440.0)


def _bursts(kind: str = "tone", count: int = 4, on_s: float = 0.6, off_s: float = 0.6,
            floor: float = 1e-4) -> np.ndarray:
    """`count` bursts at -17 dBFS RMS (tone: 220 Hz buzz with harmonics; noise: 4-7.8 kHz hiss) with
    silences between, starting and ending with silence, over a noise floor (`floor` RMS; the default
    -80 dBFS is faint, but not digital silence)."""
    rng = np.random.default_rng(1)
    time = _time(off_s + count * (on_s + off_s))
    if kind == "tone":
        source = sum(np.sin(2 * np.pi * 220 * k * time) / k for k in range(1, 10))
    else:
        spectrum = np.fft.rfft(rng.standard_normal(time.size))
        frequencies = np.fft.rfftfreq(time.size, 1 / RATE)
        source = np.fft.irfft(spectrum * ((frequencies > 4000) & (frequencies < 7800)), time.size)
    on = ((time - off_s) % (on_s + off_s) < on_s) & (time >= off_s) & (time < off_s + count * (on_s + off_s))
    signal = 0.14 * on * source / source.std() + floor * rng.standard_normal(time.size)
    return signal.astype(np.float32)


def _lagged_correlation(a: np.ndarray, b: np.ndarray, max_lag: int = 2) -> float:
    best = -1.0
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[lag:], b[:len(b) - lag]) if lag >= 0 else (a[:lag], b[-lag:])
        best = max(best, float(np.corrcoef(x, y)[0, 1]))
    return best


def _silent_stretches(loudness: np.ndarray, below_db: float = -60.0, min_s: float = 0.3) -> np.ndarray:
    """Frames inside runs of at least `min_s` seconds quieter than `below_db`."""
    quiet = np.concatenate([[False], loudness < below_db, [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(int)))
    mask = np.zeros(len(loudness), dtype=bool)
    for start, end in zip(edges[::2], edges[1::2]):
        if end - start >= min_s * FPS:
            mask[start:end] = True
    return mask


def _check_curves(curves: MouthCurves, count: int, max_opening: float = 0.3) -> None:
    assert isinstance(curves, MouthCurves) and len(curves) == count
    for values in (curves.opening, curves.width, curves.rounding):
        assert values.shape == (count,) and np.isfinite(values).all() and (values >= 0).all()
    assert curves.opening.max(initial=0) <= max_opening and curves.rounding.max(initial=0) <= 1


def test_tone_bursts_open_the_mouth_and_silences_close_it():
    samples = _bursts("tone")
    curves = speech_to_mouth(Audio(samples, RATE), FPS)
    loudness = loudness_envelope((samples, RATE), FPS)
    _check_curves(curves, frame_count(samples.size / RATE, FPS))
    silent = _silent_stretches(loudness)
    sounding = loudness > -20
    assert silent.sum() >= 60 and sounding.sum() >= 50
    assert (curves.opening[silent] == 0).mean() >= 0.95
    assert (curves.width[silent] == 0).all() and (curves.rounding[silent] == 0).all()
    assert curves.opening[sounding].min() > 0.1
    assert _lagged_correlation(curves.opening, loudness) >= 0.7


def test_opening_follows_loudness_within_speech():
    """A tone whose level steps down 6 dB at a time: each step opens the mouth less."""
    time = _time(3.0)
    level = np.repeat([1.0, 0.5, 0.25, 0.125, 0.0625, 1.0], round(0.5 * RATE))
    samples = (0.3 * level * np.sin(2 * np.pi * 220 * time)).astype(np.float32)
    opening = speech_to_mouth((samples, RATE), FPS, smoothing=0).opening
    steps = [float(np.median(opening[i * 12 + 3:i * 12 + 10])) for i in range(6)]
    assert all(a > b for a, b in zip(steps[:4], steps[1:5])), steps
    assert steps[5] == pytest.approx(steps[0], abs=0.02)


@pytest.mark.parametrize("name", ["speech_en_16k.wav", "speech_ko_44k_stereo.wav"])
def test_real_speech(shared_testdata, name):
    audio = read_audio(shared_testdata / name, sample_rate=None)  # the file's own rate and channels
    curves = speech_to_mouth(audio, FPS)
    loudness = loudness_envelope(audio, FPS)
    _check_curves(curves, frame_count(audio.duration, FPS))
    assert _lagged_correlation(curves.opening, loudness) >= 0.7
    silent = _silent_stretches(loudness)
    assert silent.sum() >= 8 and (curves.opening[silent] == 0).mean() >= 0.95
    speaking = loudness > -30
    # the mouth moves while talking (not stuck open), and lips spread and round at times
    assert curves.opening[speaking].std() > 0.03 and np.median(curves.opening[speaking]) > 0.08
    assert curves.width.max() > 0.05 and curves.rounding.max() > 0.2


def test_silence_file_gives_all_zeros(shared_testdata):
    audio = read_audio(shared_testdata / "silence_2s_16k.wav")
    curves = speech_to_mouth(audio, FPS)
    _check_curves(curves, 50)
    assert not curves.opening.any() and not curves.width.any() and not curves.rounding.any()


@pytest.mark.parametrize("samples", [np.zeros(RATE, np.float32), np.zeros(0, np.float32),
                                     (1e-4 * np.random.default_rng(0).standard_normal(RATE)).astype(np.float32)])
def test_digital_silence_and_faint_noise_give_zeros(samples):
    curves = speech_to_mouth((samples, RATE), FPS)
    _check_curves(curves, frame_count(samples.size / RATE, FPS))
    assert not curves.opening.any() and not curves.width.any() and not curves.rounding.any()


def _width_and_rounding(samples: np.ndarray, frames: slice) -> tuple[float, float]:
    curves = speech_to_mouth((samples, RATE), FPS)
    return float(curves.width[frames].mean()), float(curves.rounding[frames].mean())


def test_front_vowel_spreads_and_back_vowel_rounds():
    """/a/ /i/ /a/ /u/ /a/ in one clip, 0.6 s each with 0.5 s pauses (a vowel every 1.1 s = 27.5 frames)."""
    pause = np.zeros(RATE // 2, np.float32)
    clip = np.concatenate([part for vowel in (VOWEL_A, VOWEL_I, VOWEL_A, VOWEL_U, VOWEL_A)
                           for part in (_vowel(vowel), pause)])
    i_width, i_rounding = _width_and_rounding(clip, slice(31, 40))
    u_width, u_rounding = _width_and_rounding(clip, slice(86, 95))
    assert i_width > 0.06 and u_width < 0.01, (i_width, u_width)
    assert u_rounding > 0.4 and i_rounding < 0.05, (i_rounding, u_rounding)


def test_a_single_vowel_keeps_its_character():
    """Each vowel alone: the clip's own spectral tilt is only partly normalised away."""
    i_width, i_rounding = _width_and_rounding(_vowel(VOWEL_I), slice(3, 12))
    u_width, u_rounding = _width_and_rounding(_vowel(VOWEL_U), slice(3, 12))
    assert i_width > u_width + 0.015 and u_rounding > i_rounding + 0.3, (i_width, u_width, i_rounding, u_rounding)


def test_fricative_noise_opens_less_than_a_vowel():
    vowel, hiss = _bursts("tone", count=2), _bursts("noise", count=2)
    samples = np.concatenate([vowel, hiss])
    curves = speech_to_mouth((samples, RATE), FPS)
    loudness = loudness_envelope((samples, RATE), FPS)
    half = frame_count(vowel.size / RATE, FPS)
    vowel_frames = np.flatnonzero(loudness[:half] > -25)
    hiss_frames = half + np.flatnonzero(loudness[half:] > -25)
    assert abs(np.median(loudness[vowel_frames]) - np.median(loudness[hiss_frames])) < 3  # same level
    assert np.median(curves.opening[hiss_frames]) < 0.6 * np.median(curves.opening[vowel_frames])


def test_mouth_moves_one_frame_before_the_sound_but_closes_with_it():
    """A burst that starts and ends 8 ms into a frame's window: the partly sounding frame at the
    start already opens like the next one (anticipation); at the end it does not."""
    time = _time(3.0)
    on = (time >= 1.0 - 0.02 + 0.032) & (time < 2.0 - 0.02 + 0.008)  # frame 25 is 8 ms sounding, frame 50 too
    samples = (0.3 * on * np.sin(2 * np.pi * 220 * time)).astype(np.float32)
    opening = speech_to_mouth((samples, RATE), FPS, smoothing=0).opening
    assert opening[24] == 0 and opening[25] > 0 and opening[25] == pytest.approx(opening[26], rel=0.02)
    assert 0 < opening[50] < 0.8 * opening[49] and opening[51] == 0


def test_frame_count_options_and_scaling():
    samples = _bursts("tone", count=2)
    natural = frame_count(samples.size / RATE, FPS)
    full = speech_to_mouth((samples, RATE), FPS)
    longer = speech_to_mouth((samples, RATE), FPS, num_frames=natural + 20)
    shorter = speech_to_mouth((samples, RATE), FPS, num_frames=natural - 20)
    assert len(longer) == natural + 20 and not longer.opening[natural:].any()
    np.testing.assert_allclose(longer.opening[:natural - 3], full.opening[:natural - 3])
    assert len(shorter) == natural - 20 and len(speech_to_mouth((samples, RATE), FPS, num_frames=0)) == 0
    for fps in (24.0, 30.0, 29.97):
        assert len(speech_to_mouth((samples, RATE), fps)) == frame_count(samples.size / RATE, fps)
    half = speech_to_mouth((samples, RATE), FPS, max_opening=0.15)
    np.testing.assert_allclose(half.opening, full.opening / 2, atol=1e-12)
    rough = speech_to_mouth((samples, RATE), FPS, smoothing=0)
    assert np.abs(np.diff(rough.opening)).sum() >= np.abs(np.diff(full.opening)).sum()


def test_rate_and_channels_do_not_matter():
    mono = _bursts("tone", count=2)
    stereo_44k = Audio(np.stack([mono, mono], axis=1), RATE).resample(44100)
    a, b = speech_to_mouth(Audio(mono, RATE), FPS), speech_to_mouth(stereo_44k, FPS)
    assert len(a) == len(b)
    assert np.abs(a.opening - b.opening).max() < 0.02 and np.abs(a.width - b.width).max() < 0.02


def test_silence_level_and_noise_floor():
    quiet = 0.01 * _bursts("tone", count=2, floor=0.0)  # speech at -57 dBFS
    assert not speech_to_mouth((quiet, RATE), FPS).opening.any()
    assert speech_to_mouth((quiet, RATE), FPS, silence_db=-70).opening.max() > 0.1
    noisy = _bursts("tone", count=2, floor=0.01)  # hiss at -40 dBFS between the bursts
    curves = speech_to_mouth((noisy, RATE), FPS)
    between = slice(2, 12)  # the first 0.6 s: noise only
    assert not curves.opening[between].any() and curves.opening.max() > 0.15


@pytest.mark.parametrize("options", [{"fps": 0}, {"num_frames": -1}, {"num_frames": 2.5}, {"max_opening": -0.1},
                                     {"smoothing": -1}, {"silence_db": float("nan")}])
def test_bad_options_raise_input_error(options):
    with pytest.raises(InputError):
        speech_to_mouth((np.zeros(RATE, np.float32), RATE), **options)
