"""Missing evidence (parity fixtures, ../shared/testdata) skips a test outside CI and fails it under CI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .evidence import in_ci, missing

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_fails_only_under_ci(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    assert in_ci() == bool(ci)
    with pytest.raises(outcome, match="fixtures not found"):
        missing("fixtures not found")


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_parity_file_without_fixtures(tmp_path, ci):
    """The DaGAN parity tests pointed at an empty fixture folder: skipped outside CI, a failed run under it."""
    env = {**os.environ, "CI": ci, "FACEANIM_PARITY_DIR": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/methods/dagan/test_parity.py"], cwd=REPO, env=env, capture_output=True, text=True)
    summary = run.stdout.strip().splitlines()[-1]
    if ci:
        assert run.returncode == 1, run.stdout[-2000:]
        assert "failed" in summary and "passed" not in summary
        assert "CI=true: missing evidence fails the run" in run.stdout
    else:
        assert run.returncode == 0, run.stdout[-2000:]
        assert "skipped" in summary and "failed" not in summary
