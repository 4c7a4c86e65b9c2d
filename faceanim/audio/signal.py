"""Audio as the feature extractors want it: one float32 mono channel at a known sample rate.

Accepts `faceanim.media.Audio` (or anything with `.samples` and `.sample_rate`) or a plain
`(samples, sample_rate)` pair, so this package does not depend on how the audio was decoded."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..media.audio import Audio


def mono_samples(audio: Any) -> tuple[np.ndarray, int]:
    """Return `(samples float32 (N,), sample_rate)`; 2-D input is averaged over its channel axis.

    For 2-D input the shorter axis is taken as the channels ((N, C) and (C, N) both work). Integer
    PCM (signed, or unsigned with its midpoint as zero) is scaled to [-1, 1). Bad input raises `InputError`
    naming the audio's path when it has one."""
    if hasattr(audio, "samples") and hasattr(audio, "sample_rate"):
        samples, rate = audio.samples, audio.sample_rate
    elif isinstance(audio, (tuple, list)) and len(audio) == 2:
        samples, rate = audio
    else:
        raise TypeError("audio must be a faceanim.media.Audio or a (samples, sample_rate) pair, "
                        f"not {type(audio).__name__}")
    where = getattr(audio, "path", None)
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise InputError(where, f"audio sample rate must be a positive integer, got {rate!r}")
    samples = np.asarray(samples)
    if np.issubdtype(samples.dtype, np.integer):
        limits = np.iinfo(samples.dtype)
        half_range = (float(limits.max) + 1 - float(limits.min)) / 2  # unsigned PCM is offset by this
        samples = (samples - (float(limits.min) + half_range)) / half_range
    elif not np.issubdtype(samples.dtype, np.floating):
        raise InputError(where, f"audio samples must be numbers, got dtype {samples.dtype}")
    if samples.ndim == 2:
        samples = samples.mean(axis=int(np.argmin(samples.shape)))
    if samples.ndim != 1:
        raise InputError(where, f"audio samples must be 1-D or (samples, channels), got shape {samples.shape}")
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if not np.isfinite(samples).all():
        raise InputError(where, "audio contains NaN or infinite samples")
    return samples, int(rate)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling (`faceanim.media.Audio.resample`: soxr; identity when the rates match)."""
    return Audio(samples, from_rate).resample(to_rate).samples


SILENCE_PEAK = 1e-4   # -80 dBFS: no speech at all


def require_speech(audio: Audio, min_seconds: float, model: str) -> None:
    """InputError unless `audio` lasts at least `min_seconds` and has a sample above -80 dBFS (the talking-head
    models' check of their driving audio, before any work)."""
    if audio.duration < min_seconds:
        raise InputError(None, f"the speech is {audio.duration:.2f} s long; {model} needs at least {min_seconds} s")
    if audio.samples.size == 0 or float(np.abs(audio.samples).max()) < SILENCE_PEAK:
        raise InputError(None, "the speech is silent (no sample above -80 dBFS)")
