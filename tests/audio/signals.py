"""Generated test signals with known timing (always available, no files)."""
from __future__ import annotations

import numpy as np

RATE = 16000


def tone_burst(duration_s: float = 4.0, start_s: float = 2.0, length_s: float = 1.0, *, rate: int = RATE,
               frequency: float = 440.0) -> np.ndarray:
    """A sine burst over a faint noise floor (so the quiet part is not digital silence)."""
    time = np.arange(round(duration_s * rate)) / rate
    burst = np.where((time >= start_s) & (time < start_s + length_s), 0.5 * np.sin(2 * np.pi * frequency * time), 0)
    floor = 1e-4 * np.random.default_rng(0).standard_normal(time.size)
    return (burst + floor).astype(np.float32)


def speech_like(duration_s: float = 3.0, *, rate: int = RATE) -> np.ndarray:
    """Syllable-rate bursts of a 150 Hz buzz (harmonics up to 3 kHz, so resampling keeps all of it)."""
    time = np.arange(round(duration_s * rate)) / rate
    buzz = sum(np.sin(2 * np.pi * 150 * k * time + k) / k for k in range(1, 21))
    return (0.3 * np.sin(2 * np.pi * 2.5 * time) ** 2 * buzz).astype(np.float32)
