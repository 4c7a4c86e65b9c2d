"""Fixtures for the face tests: real faces (astronaut, the shared portrait, a wild 1080p frame)."""
from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def astronaut_face(astronaut):
    """(box, landmarks) of the astronaut's face."""
    from faceanim.face import largest_face

    return largest_face(astronaut)


@pytest.fixture(scope="session")
def portrait(shared_testdata) -> np.ndarray:
    return np.asarray(Image.open(shared_testdata / "portrait_256.png").convert("RGB"))


@pytest.fixture(scope="session")
def wild_frame(shared_testdata) -> np.ndarray:
    """The first frame of wild_1080p.mp4 (1920x1080, one face of about 370 px)."""
    with av.open(str(shared_testdata / "wild_1080p.mp4")) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def _read_frames(path):
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


@pytest.fixture(scope="session")
def read_frames():
    """read_frames(path): stream a video's frames as RGB arrays (as faceanim.media.VideoReader does)."""
    return _read_frames


def _psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = diff[where].mean() if where is not None else diff.mean()
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


@pytest.fixture(scope="session")
def psnr():
    """psnr(a, b, where=None): peak signal-to-noise ratio in dB, optionally over a boolean region."""
    return _psnr
