"""Shared test fixtures: the ../shared test media (skipped when absent, failed under CI: tests/evidence.py)
and small generated data."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from .evidence import MARK as EVIDENCE_MARK, missing

REPO = Path(__file__).resolve().parents[1]
SHARED_TESTDATA = Path(os.environ.get("FACEANIM_TESTDATA_DIR", REPO.parent / "shared" / "testdata"))


@pytest.fixture(scope="session")
def shared_testdata() -> Path:
    """The folder of real test media; tests that need it are skipped where it is absent (failed under CI)."""
    if not SHARED_TESTDATA.is_dir():
        missing(f"shared test media not found at {SHARED_TESTDATA}")
    return SHARED_TESTDATA


def pytest_runtest_setup(item):
    """A case marked `missing_evidence(reason)` (tests.evidence.missing_param) is skipped, or failed under CI."""
    marker = item.get_closest_marker(EVIDENCE_MARK)
    if marker is not None:
        missing(marker.args[0])


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real face photo that scikit-image ships (512x512 RGB uint8)."""
    skimage_data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skimage_data.astronaut())


def _demo_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("faceanim_demo", REPO / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_face_clip(path: Path, photo: np.ndarray, frames: int = 40, *, blank: range = range(0),
                    with_audio: bool = True, fps: float = 25.0) -> Path:
    """A video of `photo` under the demo's hand-held camera; frames in `blank` are grey (no face);
    with a 440 Hz tone as its sound track."""
    from faceanim.media import Audio, VideoWriter

    audio = None
    if with_audio:
        t = np.arange(int(16000 * frames / fps)) / 16000
        audio = Audio((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    with VideoWriter(path, fps, audio=audio) as writer:
        for index, frame in enumerate(_demo_module().handheld_clip(photo, frames)):
            writer.write(np.full_like(frame, 128) if index in blank else frame)
    return path


@pytest.fixture(scope="session")
def face_clip(tmp_path_factory, astronaut) -> Path:
    """40 frames (640x480, 25 fps, with sound) of a real face; frames 15-19 show no face."""
    return write_face_clip(tmp_path_factory.mktemp("clips") / "astronaut_clip.mp4", astronaut, blank=range(15, 20))


@pytest.fixture(scope="session")
def faceless_clip(tmp_path_factory) -> Path:
    """A valid video with no face in it (a moving gradient)."""
    from faceanim.media import VideoWriter

    path = tmp_path_factory.mktemp("clips") / "no_face.mp4"
    ramp = np.tile(np.linspace(0, 255, 160, dtype=np.float32), (120, 1))
    with VideoWriter(path, 25) as writer:
        for index in range(20):
            writer.write(np.repeat(((ramp + 5 * index) % 256).astype(np.uint8)[..., None], 3, axis=2))
    return path


def write_clip_head(source: Path, destination: Path, frames: int) -> Path:
    """The first `frames` frames of the video `source`, written to `destination` at its frame rate."""
    import itertools

    from faceanim.media import VideoReader, VideoWriter

    with VideoReader(source) as reader, VideoWriter(destination, reader.fps) as writer:
        for frame in itertools.islice(reader, frames):
            writer.write(frame)
    return destination
