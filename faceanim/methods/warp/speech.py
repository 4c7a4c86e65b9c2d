"""Speech -> mouth motion for the `talk` task: per-frame jaw opening, lip width and lip rounding.

Signal processing, no learned model: the features come from `faceanim.audio` (librosa's RMS and mel
filter bank), one row per video frame.
  opening  - the frame's loudness (dB) relative to the clip's speech level (the 90th percentile of
             the frames that are not silent), through a squared ramp from the silence threshold:
             quiet syllables open a little, speech at its usual level about 0.7 x `max_opening`,
             6 dB louder fully. Fricatives (/s/, /f/: most energy above 4 kHz) open less.
  width    - front vowels (/i/, /e/) put their 2nd and 3rd formants in 1.8-3.5 kHz: the more energy
             there relative to 300-900 Hz, the more the lips spread.
  rounding - rounded vowels (/o/, /u/) keep nearly all their energy under 1 kHz: little 1.8-3.5 kHz
             energy and a low spectral centroid.
             Both compare the 1.8-3.5 kHz / 300-900 Hz energy ratio with the clip's median, mostly:
             microphones and voices tilt whole spectra.
Co-articulation: the curves are smoothed with a centred Gaussian and lead the sound by one frame on
their rising side (the mouth starts moving before the sound does, in real speech), then every silent
frame is set to 0, so the mouth is closed on silence and the curves never go negative.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...audio import frame_count, log_mel, loudness_envelope
from ...audio.signal import mono_samples
from ...errors import InputError

ABSOLUTE_SILENCE_DB = -45.0   # quieter frames are silence, whatever the clip (dBFS)
RELATIVE_SILENCE_DB = 30.0    # ... and so are frames this far under the clip's speech level
NOISE_MARGIN_DB = 6.0         # ... and frames less than this over the noise floor (10th percentile)
MIN_SPEECH_MARGIN_DB = 15.0   # the noise rule never puts the threshold closer than this to speech level
SPEECH_PERCENTILE = 90.0      # of the non-silent frames' loudness: "the speech level"
HEADROOM_DB = 6.0             # loudness over the speech level that opens the mouth fully
ANTICIPATION_FRAMES = 1

MAX_WIDTH = 0.12              # lip spreading of a clear /i/ (12 % wider)
FRICATIVE_CLOSING = 0.6       # share of the opening a pure fricative takes away

_SAMPLE_RATE = 16000
_N_MELS = 64
_LOW_BAND_HZ = (300.0, 900.0)      # first formant region (and F2 of back rounded vowels)
_FRONT_BAND_HZ = (1800.0, 3500.0)  # F2/F3 of front vowels
_VOICE_BAND_HZ = (100.0, 4000.0)
_HISS_BAND_HZ = (4000.0, 8000.0)   # fricative noise
# Calibrated on vowels from a cascade formant synthesiser (Peterson & Barney formants, male and female)
# and on the shared speech recordings: front/low energy ratio of front vowels -12..+11 dB, of back
# vowels -25..-39 dB; the recordings' median is about -12 dB.
_TYPICAL_TILT_DB = -12.0
TILT_NORMALISATION = 0.8
_SPREAD_TILT_DB = (-14.0, -2.0)    # front/low energy ratio: no spreading .. full spreading
_ROUND_TILT_DB = (-14.0, -22.0)    # front/low energy ratio: not rounded .. fully rounded
_ROUND_CENTROID_HZ = (1000.0, 500.0)  # centroid under 4 kHz: not rounded .. fully rounded
_FRICATIVE_HISS_DB = (-10.0, 0.0)  # hiss/voice energy ratio: voiced .. pure fricative
_FLOOR_DB = -100.0                 # loudness_envelope's floor, used for frames past the audio's end


@dataclass
class MouthCurves:
    """Per-frame mouth targets for `expression.set_mouth`, all float64 (T,)."""

    opening: np.ndarray   # inner-lip gap / face width (the `faceanim.face.inner_mouth_opening` metric), >= 0
    width: np.ndarray     # relative change of mouth width: 0 = as in the source, +0.1 = 10 % wider
    rounding: np.ndarray  # 0..1 lip rounding / protrusion (o/u sounds)

    def __len__(self) -> int:
        return len(self.opening)


def speech_to_mouth(audio: Any, fps: float = 25.0, *, num_frames: int | None = None, max_opening: float = 0.3,
                    smoothing: float = 1.0, silence_db: float | None = None) -> MouthCurves:
    """Mouth curves for `audio` (a `faceanim.media.Audio` or a `(samples, sample_rate)` pair), one row per
    video frame: exactly `num_frames` rows if given (audio past the end is ignored, missing audio is
    silence), else `frame_count(audio duration, fps)`.

    `max_opening` is the opening of loud speech; `smoothing` the Gaussian sigma in frames (0 = off);
    `silence_db` the loudness (dBFS) under which a frame is silence (None: automatic, the highest of
    -45 dBFS, 30 dB under the speech level and 6 dB over the noise floor). Silent frames give 0 in all
    three curves; audio with no sound at all gives all zeros."""
    _check_options(fps, num_frames, max_opening, smoothing, silence_db)
    samples, rate = mono_samples(audio)
    count = frame_count(samples.size / rate, fps) if num_frames is None else int(num_frames)
    level = _fit_length(loudness_envelope((samples, rate), fps).astype(np.float64), count, _FLOOR_DB)
    levels = _speech_levels(level, silence_db)
    if levels is None:
        return MouthCurves(np.zeros(count), np.zeros(count), np.zeros(count))
    threshold, speech_level = levels
    loudness = np.clip((level - threshold) / (speech_level + HEADROOM_DB - threshold), 0.0, 1.0)
    speaking = level >= threshold
    spread, rounded, fricative = _vowel_shape(samples, rate, fps, count, speaking)
    # squared: the jaw opens gently from the threshold and keeps following loudness up to full
    # opening at HEADROOM_DB over the speech level (about 0.7 x max_opening at the speech level)
    raw = {"opening": max_opening * loudness ** 2 * (1.0 - FRICATIVE_CLOSING * fricative),
           "width": MAX_WIDTH * loudness * spread * (1.0 - rounded),
           "rounding": loudness * rounded}
    curves = {name: np.where(speaking, _coarticulate(curve, smoothing), 0.0) for name, curve in raw.items()}
    return MouthCurves(np.clip(curves["opening"], 0.0, max_opening), np.clip(curves["width"], 0.0, MAX_WIDTH),
                       np.clip(curves["rounding"], 0.0, 1.0))


def _check_options(fps: float, num_frames: int | None, max_opening: float, smoothing: float,
                   silence_db: float | None) -> None:
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(None, f"frame rate must be a positive number, got {fps}")
    if num_frames is not None and (not float(num_frames).is_integer() or num_frames < 0):
        raise InputError(None, f"num_frames must be a whole number >= 0, got {num_frames}")
    if not (np.isfinite(max_opening) and max_opening >= 0):
        raise InputError(None, f"max_opening must be >= 0, got {max_opening}")
    if not (np.isfinite(smoothing) and smoothing >= 0):
        raise InputError(None, f"mouth smoothing must be >= 0 frames, got {smoothing}")
    if silence_db is not None and not np.isfinite(silence_db):
        raise InputError(None, f"silence level must be a finite number of dBFS, got {silence_db}")


def _fit_length(values: np.ndarray, count: int, fill: float) -> np.ndarray:
    """`values` (T, ...) cut or padded with `fill` to `count` rows."""
    if len(values) >= count:
        return values[:count]
    padding = np.full((count - len(values), *values.shape[1:]), fill, dtype=values.dtype)
    return np.concatenate([values, padding])


def _speech_levels(level: np.ndarray, silence_db: float | None) -> tuple[float, float] | None:
    """(silence threshold, speech level) in dBFS, or None when no frame is above the silence floor."""
    floor = ABSOLUTE_SILENCE_DB if silence_db is None else float(silence_db)
    sounding = level[level >= floor]
    if sounding.size == 0:
        return None
    speech_level = float(np.percentile(sounding, SPEECH_PERCENTILE))
    if silence_db is not None:
        return float(silence_db), speech_level
    noise_rule = min(float(np.percentile(level, 10)) + NOISE_MARGIN_DB, speech_level - MIN_SPEECH_MARGIN_DB)
    return max(ABSOLUTE_SILENCE_DB, speech_level - RELATIVE_SILENCE_DB, noise_rule), speech_level


def _vowel_shape(samples: np.ndarray, rate: int, fps: float, count: int,
                 speaking: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame (spread, rounded, fricative), each 0..1, from the mel spectrum's band energies."""
    energy, centres = _band_energies(samples, rate, fps, count)

    def band(limits: tuple[float, float]) -> np.ndarray:
        inside = (centres >= limits[0]) & (centres < limits[1])
        return energy[:, inside].sum(axis=1) + 1e-12

    tilt_db = 10 * np.log10(band(_FRONT_BAND_HZ) / band(_LOW_BAND_HZ))
    hiss_db = 10 * np.log10(band(_HISS_BAND_HZ) / band(_VOICE_BAND_HZ))
    voice = (centres >= _VOICE_BAND_HZ[0]) & (centres < _VOICE_BAND_HZ[1])
    centroid = (energy[:, voice] @ centres[voice]) / band(_VOICE_BAND_HZ)
    fricative = _ramp(hiss_db, _FRICATIVE_HISS_DB)
    # Microphones and voices tilt the whole spectrum: take most of the clip's median vowel tilt out
    # (not all of it, so that a clip of a single vowel keeps its character).
    vowels = speaking & (fricative < 0.5)
    if vowels.any():
        tilt_db = tilt_db - TILT_NORMALISATION * (float(np.median(tilt_db[vowels])) - _TYPICAL_TILT_DB)
    rounded = _ramp(tilt_db, _ROUND_TILT_DB) * _ramp(centroid, _ROUND_CENTROID_HZ)
    return _ramp(tilt_db, _SPREAD_TILT_DB), rounded, fricative


def _band_energies(samples: np.ndarray, rate: int, fps: float, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame energy in each mel band, (count, n_mels), and the bands' centre frequencies (Hz)."""
    import librosa

    power_db = log_mel((samples, rate), fps, n_mels=_N_MELS, hops_per_frame=2, reduce="mean",
                       sample_rate=_SAMPLE_RATE)
    power = _fit_length(librosa.db_to_power(power_db.astype(np.float64)), count, 0.0)
    # librosa's mel bands have unit area (they measure power density): weight by bandwidth for energy
    edges = librosa.mel_frequencies(_N_MELS + 2, fmin=0.0, fmax=_SAMPLE_RATE / 2)
    return power * (edges[2:] - edges[:-2]) / 2, edges[1:-1]


def _ramp(values: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """0 at limits[0], 1 at limits[1], linear between and clipped (limits may be descending)."""
    return np.clip((values - limits[0]) / (limits[1] - limits[0]), 0.0, 1.0)


def _coarticulate(curve: np.ndarray, smoothing: float) -> np.ndarray:
    """Centred Gaussian smoothing, then a lead of ANTICIPATION_FRAMES where the curve rises (the
    maximum of the curve and its look-ahead: movements start early but do not end early)."""
    from scipy.ndimage import gaussian_filter1d

    if curve.size == 0:
        return curve
    smooth = gaussian_filter1d(curve, smoothing, mode="nearest") if smoothing > 0 else curve
    ahead = np.concatenate([smooth[ANTICIPATION_FRAMES:], np.repeat(smooth[-1:], ANTICIPATION_FRAMES)])
    return np.maximum(smooth, ahead[:smooth.size])
