"""Shared test fixtures: the ../shared test media (skipped when absent) and small generated data."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_TESTDATA = Path(os.environ.get("FACEANIM_TESTDATA_DIR", REPO.parent / "shared" / "testdata"))


@pytest.fixture(scope="session")
def shared_testdata() -> Path:
    """The folder of real test media; tests that need it are skipped where it is absent."""
    if not SHARED_TESTDATA.is_dir():
        pytest.skip(f"shared test media not found at {SHARED_TESTDATA}")
    return SHARED_TESTDATA


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real face photo that scikit-image ships (512x512 RGB uint8)."""
    skimage_data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(skimage_data.astronaut())
