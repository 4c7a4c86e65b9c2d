"""A lip-sync check that needs no pretrained network: how well the mouth opening follows the loudness
of the speech.

Per frame, the inner-lip gap over the face width (`faceanim.face.inner_mouth_opening` on the frame's
dlib landmarks); per frame of audio, the RMS level (dB full scale) of the one-frame stretch centred on
the frame's time (`faceanim.audio.loudness_envelope`). The score is the best Pearson correlation of the
two series over lags of up to two frames, and that lag. It sees only how far the mouth opens, not its
shape, so it complements SyncNet's LSE scores rather than replacing them.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import InputError
from .base import EvalContext, FrameView, StreamingMetric
from .face_series import lagged_correlation

MAX_LAG = 2           # frames either way: audio and video may be offset by a frame or two
LOUDNESS_FLOOR = -60  # dBFS; digital silence (-100 dB) would otherwise dominate the correlation


def speech_loudness(audio: Any, fps: float, frames: int, floor_db: float = LOUDNESS_FLOOR) -> np.ndarray:
    """(frames,) RMS level in dBFS at each video frame's time, at least `floor_db`; frames past the end
    of the audio count as silence."""
    from ..audio import loudness_envelope

    levels = np.maximum(loudness_envelope(audio, fps).astype(np.float64), floor_db)[:frames]
    return np.pad(levels, (0, frames - levels.size), constant_values=floor_db)


def lip_audio_correlation(mouth_opening: np.ndarray, loudness: np.ndarray,
                          max_lag: int = MAX_LAG) -> tuple[float, float]:
    """The best Pearson r of mouth_opening[t] with loudness[t + lag] over |lag| <= max_lag (NaNs, i.e.
    frames without a face, are left out) and that lag in frames; a positive lag means the mouth moves
    before the sound. (nan, nan) when no lag has three usable frames with some variation in both."""
    r, lag = lagged_correlation(np.asarray(mouth_opening, dtype=np.float64),
                                np.asarray(loudness, dtype=np.float64), max_lag)
    if not np.isfinite(r):
        return float("nan"), float("nan")
    return float(r), float(lag)


class LipAudioMetric(StreamingMetric):
    """`lip_audio_corr` (higher is better) and `lip_audio_lag` of the prediction against the speech
    that drove it; per frame, the mouth opening (NaN without a face)."""

    name = "lip_audio"
    needs = frozenset({"audio"})
    higher_is_better = {"lip_audio_corr": True}

    def __init__(self, context: EvalContext):
        super().__init__(context)
        if context.audio is None:
            raise InputError(None, "the lip_audio metric needs the driving speech (audio)")
        self._openings: list[float] = []

    def update(self, pred: FrameView, ref: FrameView | None) -> Mapping[str, float]:
        from ..face import inner_mouth_opening

        landmarks = pred.landmarks
        opening = float("nan") if landmarks is None else inner_mouth_opening(landmarks)
        self._openings.append(opening)
        return {"mouth_opening": opening}

    def compute(self) -> dict[str, float]:
        openings = np.asarray(self._openings, dtype=np.float64)
        loudness = speech_loudness(self.context.audio, self.context.fps, openings.size)
        r, lag = lip_audio_correlation(openings, loudness)
        return {"lip_audio_corr": r, "lip_audio_lag": lag}
