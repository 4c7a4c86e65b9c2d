"""MFCCs exactly as `python_speech_features.mfcc` (0.6) computes them with its defaults, in numpy.

SyncNet (and so the LSE-C / LSE-D lip-sync scores) was trained on these features, so they must match
bit for bit in layout and closely in value: 25 ms rectangular windows every 10 ms (no window function),
the last window zero-padded, pre-emphasis 0.97, a 512-point power spectrum, 26 triangular mel filters
on whole FFT bins, the natural log, an orthonormal type-II DCT, a sine lifter of 22, and coefficient 0
replaced by the log of the frame's total energy. Unlike `faceanim.audio.mfcc` (librosa, one row per
video frame) the rows here are the 100 Hz analysis frames themselves.

The features depend on the signal's scale (log energies): SyncNet's pipeline feeds int16 sample
values, which `int16_scale` reproduces from float audio.
"""
from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
from scipy.fft import dct

_TINY = np.finfo(float).eps  # stands in for a zero energy before the log, as the reference does


def psf_mfcc(signal: np.ndarray, sample_rate: int = 16000, *, window_s: float = 0.025, step_s: float = 0.01,
             n_cepstra: int = 13, n_filters: int = 26, n_fft: int = 512, low_hz: float = 0.0,
             high_hz: float | None = None, preemphasis: float = 0.97, lifter: float = 22,
             append_energy: bool = True) -> np.ndarray:
    """(frames, n_cepstra) float64 MFCCs of a 1-D signal (python_speech_features.mfcc defaults)."""
    signal = np.asarray(signal, dtype=np.float64).reshape(-1)
    emphasised = np.concatenate([signal[:1], signal[1:] - preemphasis * signal[:-1]])
    frames = frame_signal(emphasised, _round_half_up(window_s * sample_rate), _round_half_up(step_s * sample_rate))
    power = np.abs(np.fft.rfft(frames, n_fft)) ** 2 / n_fft
    energy = power.sum(axis=1)
    band_energy = power @ mel_filterbank(n_filters, n_fft, sample_rate, low_hz, high_hz).T
    log_bands = np.log(np.where(band_energy == 0, _TINY, band_energy))
    cepstra = dct(log_bands, type=2, axis=1, norm="ortho")[:, :n_cepstra]
    cepstra = cepstra * sine_lifter(n_cepstra, lifter)
    if append_energy:
        cepstra[:, 0] = np.log(np.where(energy == 0, _TINY, energy))
    return cepstra


def frame_signal(signal: np.ndarray, length: int, step: int) -> np.ndarray:
    """(frames, length) windows every `step` samples; one window at least, the last one zero-padded."""
    count = 1 if signal.size <= length else 1 + math.ceil((signal.size - length) / step)
    padded = np.zeros((count - 1) * step + length)
    padded[:signal.size] = signal
    starts = np.arange(count)[:, None] * step
    return padded[starts + np.arange(length)[None, :]]


def mel_filterbank(n_filters: int, n_fft: int, sample_rate: int, low_hz: float = 0.0,
                   high_hz: float | None = None) -> np.ndarray:
    """(n_filters, n_fft // 2 + 1) triangles between mel-spaced points snapped down to whole FFT bins
    (the reference's `floor((n_fft + 1) * hz / rate)`), each peaking at 1 on its centre bin."""
    high_hz = high_hz or sample_rate / 2
    if high_hz > sample_rate / 2:
        raise ValueError(f"high_hz {high_hz} is above the Nyquist frequency {sample_rate / 2}")
    mels = np.linspace(_hz_to_mel(low_hz), _hz_to_mel(high_hz), n_filters + 2)
    bins = np.floor((n_fft + 1) * _mel_to_hz(mels) / sample_rate)
    bank = np.zeros((n_filters, n_fft // 2 + 1))
    for j, (left, centre, right) in enumerate(zip(bins[:-2], bins[1:-1], bins[2:])):
        rising = np.arange(int(left), int(centre))
        falling = np.arange(int(centre), int(right))
        bank[j, rising] = (rising - left) / (centre - left)
        bank[j, falling] = (right - falling) / (right - centre)
    return bank


def sine_lifter(n_cepstra: int, lifter: float) -> np.ndarray:
    """Per-coefficient gains 1 + L/2 sin(pi n / L), boosting the higher cepstra (all ones for L <= 0)."""
    if lifter <= 0:
        return np.ones(n_cepstra)
    return 1 + (lifter / 2.0) * np.sin(np.pi * np.arange(n_cepstra) / lifter)


def int16_scale(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as the int16 values a 16-bit WAV of them holds (rounded, clipped),
    returned as float64: the scale SyncNet's MFCCs were computed at."""
    scaled = np.rint(np.asarray(samples, dtype=np.float64) * 32768.0)
    return np.clip(scaled, -32768.0, 32767.0)


def _round_half_up(value: float) -> int:
    # the reference rounds window and step lengths in decimal, halves up (400.0 and 160.0 at 16 kHz)
    return int(Decimal(value).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def _hz_to_mel(hz: float | np.ndarray) -> np.ndarray:
    return 2595 * np.log10(1 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700 * (10 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1)
