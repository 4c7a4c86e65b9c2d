"""Speech features aligned to video frames: frame counts, context windows, log-mel / MFCC / loudness
(librosa) and wav2vec 2.0 hidden states (transformers, from a local model folder).

Every feature function returns exactly `frame_count(duration, fps)` rows (or `num_frames` when given),
row t describing the audio around time t / fps."""
from __future__ import annotations

from .spectral import log_mel, loudness_envelope, mfcc
from .wav2vec import Wav2Vec2Features
from .windows import context_windows, frame_count

__all__ = ["context_windows", "frame_count", "log_mel", "mfcc", "loudness_envelope", "Wav2Vec2Features"]
