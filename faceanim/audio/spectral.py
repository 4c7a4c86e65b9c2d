"""Spectral speech features (log-mel, MFCC, loudness) with one row per video frame.

Alignment rule: for T = `frame_count(duration, fps)` frames, row t summarises the audio *centred on*
time t / fps. With `hops_per_frame` = H > 1 each row holds H analysis windows placed symmetrically
around t / fps, at t/fps + (h + 1/2 - H/2) / (H * fps) for h = 0..H-1 (H=4 at 25 fps is the usual
100 Hz mel of talking-head models), either stacked side by side or averaged.

Librosa gives the mel filter bank, the dB conversion, the DCT of the MFCC and the RMS; the windows
themselves are cut here at exact sample positions, because librosa's framing needs a whole number of
samples per hop (16 kHz at 30 fps is 533.3) and would let frames drift against the video.
Samples beyond either end of the audio count as silence.
"""
from __future__ import annotations

from typing import Any, Iterator, Literal

import numpy as np

from .signal import mono_samples, resample
from .windows import frame_count

_BLOCK_WINDOWS = 2048  # windows cut and transformed at a time, to bound memory on long audio
_MIN_N_FFT = 512       # keeps the lowest of 80 mel bands at 16 kHz from being empty


def log_mel(audio: Any, fps: float = 25, *, n_mels: int = 80, n_fft: int | None = None,
            hops_per_frame: int = 1, reduce: Literal["stack", "mean"] = "stack",
            sample_rate: int = 16000, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Log-mel power (dB re 1.0, floor -100 dB) per video frame: float32 (T, n_mels), or
    (T, hops_per_frame * n_mels) when several hops are stacked (hop-major: hop 0's bands first).

    The audio is first resampled to `sample_rate` so features do not depend on the input rate.
    n_fft (also the Hann window length) defaults to two hops, so that windows overlap by half and
    every sample counts, but at least 512. `reduce="mean"` averages the hops' power before the log."""
    _check_reduce(reduce)
    power = _mel_power(audio, fps, n_mels, n_fft, hops_per_frame, sample_rate, fmin, fmax)
    if reduce == "mean":
        power = power.mean(axis=1, keepdims=True)
    count, hops, bands = power.shape
    return _to_db(power).reshape(count, hops * bands)


def mfcc(audio: Any, fps: float = 25, *, n_mfcc: int = 13, n_mels: int = 40, n_fft: int | None = None,
         hops_per_frame: int = 1, reduce: Literal["stack", "mean"] = "stack",
         sample_rate: int = 16000) -> np.ndarray:
    """MFCCs (librosa's type-II orthonormal DCT of the dB log-mel) per video frame: float32
    (T, n_mfcc), or (T, hops_per_frame * n_mfcc) stacked. Windows and alignment as `log_mel`;
    `reduce="mean"` averages the hops' coefficients."""
    import librosa

    _check_reduce(reduce)
    power = _mel_power(audio, fps, n_mels, n_fft, hops_per_frame, sample_rate, 0.0, None)
    count, hops = power.shape[:2]
    if count == 0:
        return np.zeros((0, n_mfcc if reduce == "mean" else hops * n_mfcc), np.float32)
    coefficients = librosa.feature.mfcc(S=_to_db(power).reshape(count * hops, n_mels).T, n_mfcc=n_mfcc)
    coefficients = coefficients.T.reshape(count, hops, n_mfcc)
    if reduce == "mean":
        coefficients = coefficients.mean(axis=1, keepdims=True)
    return coefficients.reshape(count, -1).astype(np.float32)


def loudness_envelope(audio: Any, fps: float = 25) -> np.ndarray:
    """RMS level in dB full scale (floor -100 dB) per video frame: float32 (T,).

    Row t is the RMS (librosa.feature.rms) of the one-frame-long stretch of audio centred on t / fps,
    at the audio's own sample rate."""
    import librosa

    samples, rate = mono_samples(audio)
    count = frame_count(samples.size / rate, fps)
    length = max(1, round(rate / fps))
    levels = [librosa.feature.rms(y=block, frame_length=length, hop_length=length, center=False)[:, 0, 0]
              for block in _windows(samples, rate, np.arange(count) / fps, length)]
    rms = np.concatenate(levels) if levels else np.zeros(0)
    return librosa.amplitude_to_db(rms, ref=1.0, amin=1e-5, top_db=None).astype(np.float32)


def _mel_power(audio: Any, fps: float, n_mels: int, n_fft: int | None, hops_per_frame: int,
               sample_rate: int, fmin: float, fmax: float | None) -> np.ndarray:
    """Mel power spectra at the analysis windows of each video frame: float64 (T, H, n_mels)."""
    import librosa

    if hops_per_frame < 1 or sample_rate < 1:
        raise ValueError(f"hops_per_frame and sample_rate must be >= 1, got {hops_per_frame}, {sample_rate}")
    samples, rate = mono_samples(audio)
    count = frame_count(samples.size / rate, fps)  # from the original length: resampling rounds it
    samples = resample(samples, rate, sample_rate)
    if n_fft is None:
        n_fft = max(round(2 * sample_rate / (fps * hops_per_frame)), _MIN_N_FFT)
    offsets = (np.arange(hops_per_frame) + 0.5) / hops_per_frame - 0.5
    centres = ((np.arange(count)[:, None] + offsets[None, :]) / fps).reshape(-1)
    bank = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).T
    window = librosa.filters.get_window("hann", n_fft, fftbins=True)
    spectra = [np.abs(np.fft.rfft(block * window, axis=-1)) ** 2 @ bank.astype(np.float64)
               for block in _windows(samples, sample_rate, centres, n_fft)]
    power = np.concatenate(spectra) if spectra else np.zeros((0, n_mels))
    return power.reshape(count, hops_per_frame, n_mels)


def _check_reduce(reduce: str) -> None:
    if reduce not in ("stack", "mean"):
        raise ValueError(f"reduce must be 'stack' or 'mean', got {reduce!r}")


def _to_db(power: np.ndarray) -> np.ndarray:
    """Power to dB re 1.0 with a -100 dB floor; no top_db clipping, so a row never depends on others."""
    import librosa

    return librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=None).astype(np.float32)


def _windows(samples: np.ndarray, rate: int, centres_s: np.ndarray, length: int) -> Iterator[np.ndarray]:
    """Blocks of `length`-sample windows, window i centred on the sample nearest `centres_s[i]` seconds
    (for even lengths the centre sample is the one just right of the middle, as in librosa's centring)."""
    if centres_s.size == 0:
        return
    starts = np.round(centres_s * rate).astype(np.int64) - length // 2
    pad_before = max(0, -int(starts.min()))
    pad_after = max(0, int(starts.max()) + length - samples.size)
    padded = np.pad(samples, (pad_before, pad_after))
    all_windows = np.lib.stride_tricks.sliding_window_view(padded, length)
    for first in range(0, starts.size, _BLOCK_WINDOWS):
        yield all_windows[starts[first:first + _BLOCK_WINDOWS] + pad_before]  # fancy indexing copies
