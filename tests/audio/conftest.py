"""Fixtures for the audio tests: reading the shared speech recordings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def read_wav(shared_testdata: Path):
    """Read a file of the shared test media as (float32 samples, (N,) or (N, channels), sample rate)."""
    soundfile = pytest.importorskip("soundfile")  # librosa's own decoder; faceanim.media is not needed here

    def read(name: str) -> tuple[np.ndarray, int]:
        samples, rate = soundfile.read(shared_testdata / name, dtype="float32")
        return samples, rate

    return read
