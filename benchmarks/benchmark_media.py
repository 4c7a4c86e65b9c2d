"""Inputs shared by the benchmark scripts (run as `python benchmarks/<name>.py`, so this folder is on the path)."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

TESTDATA = Path(__file__).resolve().parents[1].parent / "shared" / "testdata"


def load_crops(count: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The 256x256 portrait and driving clip of the shared test media, or shifted noise without them."""
    from faceanim.media import VideoReader, read_image

    if (TESTDATA / "driving_256.mp4").is_file():
        with VideoReader(TESTDATA / "driving_256.mp4") as reader:
            frames = list(itertools.islice(reader, count))
        return read_image(TESTDATA / "portrait_256.png"), frames
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (256, 300, 3), dtype=np.uint8)
    return base[:, :256].copy(), [np.ascontiguousarray(base[:, i:i + 256]) for i in range(count)]
