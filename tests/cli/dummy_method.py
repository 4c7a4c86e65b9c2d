"""A stand-in method registered only by tests/cli/test_extension.py: one module plus one registry entry,
and nothing else in faceanim names it. It is a model of face crops that does all three tasks with plain
array arithmetic (its output is recognisable), has its own options, a converter and a training entry."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceanim.registry import CoarseSpec, MethodSpec, TrainSpec, WeightSpec

CALLS: dict[str, dict] = {}   # what each entry point was given, for the test to check


def spec() -> MethodSpec:
    here = __name__
    return MethodSpec(
        "dummy", ("reenact", "talk", "edit"), "a test's stand-in method", kind="crops",
        pipeline=f"{here}:DummyPipeline", option_groups=("crop", "runtime"), options=f"{here}:add_options",
        convert=f"{here}:convert", train=TrainSpec(f"{here}:train", {"main": "dummy.yaml", "extra": "extra.yaml"}),
        coarse=CoarseSpec(("strength",)),
        weights=(WeightSpec("checkpoint", "--checkpoint", "FACEANIM_DUMMY_CHECKPOINT", "dummy weights"),))


def add_options(add, command: str) -> None:
    if command in ("reenact", "talk", "edit"):
        add("--strength", type=float, help="0: the crops as they are; more: upside down")
    if command == "convert":
        add("--note", help="written into the converted folder")
    if command == "train":
        add("--teacher", help="a weight file the dummy's training needs")


class DummyPipeline:
    crop_size = 64
    fps = 20.0

    def __init__(self, strength: float = 0.5, batch_size: int = 2):
        self.strength, self.batch_size = strength, batch_size

    @classmethod
    def from_pretrained(cls, path=None, *, strength: float = 0.5, batch_size: int = 2, device=None,
                        precision: str = "exact"):
        CALLS["from_pretrained"] = dict(path=path, strength=strength, batch_size=batch_size, device=device)
        return cls(strength, batch_size)

    def prepare_source(self, crop: np.ndarray) -> np.ndarray:
        assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
        return crop

    def _flip(self, crop: np.ndarray) -> np.ndarray:
        """Upside down (paste-back matches colours, so a geometric change is what stays visible)."""
        return np.ascontiguousarray(crop[::-1]) if self.strength > 0 else crop

    def animate_crops(self, source, driving_crops, initial, motion=None):
        for crop in driving_crops:
            yield self._flip(crop)

    def talk_crops(self, source, speech):
        frames = int(round(speech.duration * self.fps))
        for index in range(frames):
            yield self._flip(np.roll(source, index % 3, axis=0))

    def scan_crops(self, crops):
        """The whole clip before editing (the route's optional first pass): counted here."""
        CALLS["scan"] = sum(1 for crop in crops if crop.shape == (64, 64, 3))

    def edit_crops(self, crops):
        for crop in crops:
            yield self._flip(crop)


@dataclass
class Conversion:
    inputs: dict
    output: Path
    components: tuple


def convert(official: str, output: str, *, note: str | None = None) -> Conversion:
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"note": note}))
    CALLS["convert"] = dict(official=official, note=note)
    return Conversion({"official": (official, "0" * 64)}, folder, ("model",))


@dataclass
class Result:
    step: int


def train(stage, config, data, output, settings, *, resume=None, max_steps=None):
    CALLS["train"] = dict(stage=stage, config=config, data=data, settings=settings, max_steps=max_steps)
    return Result(max_steps or 1), Path(output) / "exported"
