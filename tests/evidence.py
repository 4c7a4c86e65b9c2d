"""What a test does when its evidence (../shared/testdata, parity fixtures) is missing.

Outside CI it is skipped with the reason; under CI (`CI=true`, as `.ci/run` is started) it fails, so that a
run can never go green because the media or the fixtures were not there.
"""
from __future__ import annotations

import os

import pytest

MARK = "missing_evidence"   # pytest marker: pytest.mark.missing_evidence(reason), applied in conftest.py


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Skip (outside CI) or fail (under CI) the running test because `reason` names missing evidence."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: missing evidence fails the run instead of skipping)", pytrace=False)
    pytest.skip(reason)


def missing_param(reason: str, id: str = "missing"):
    """A parametrize case standing for evidence that is absent: skipped outside CI, failed under CI."""
    return pytest.param(None, id=id, marks=getattr(pytest.mark, MARK)(reason))
