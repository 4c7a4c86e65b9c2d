"""Fixtures of the FOMM tests: what FOMMPipeline.animate_crops was asked to do during a CLI run."""
from __future__ import annotations

import pytest

from faceanim.methods.fomm import FOMMPipeline


@pytest.fixture
def recorded(monkeypatch) -> list[list]:
    """[motion, frames made] of every FOMMPipeline.animate_crops call from now on (motion: the one given,
    else the pipeline's own)."""
    calls: list[list] = []
    animate_crops = FOMMPipeline.animate_crops

    def recording(self, source, driving_crops, initial, motion=None):
        calls.append([motion or self.motion, 0])
        for frame in animate_crops(self, source, driving_crops, initial, motion):
            calls[-1][1] += 1
            yield frame
    monkeypatch.setattr(FOMMPipeline, "animate_crops", recording)
    return calls

