"""Settings of the training-free landmark warping engine (`warp`), with named presets."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ...errors import InputError


@dataclass(frozen=True)
class WarpConfig:
    # reenactment (photo + driving video)
    relative: bool = True          # move the source by the driving change from its first frame (False: absolute)
    adapt_scale: bool = False      # scale head translation by the face-size ratio (sqrt hull area, as FOMM)
    smoothing: float = 1.0         # sigma in frames of the driving expression smoothing (0 = off)
    motion_limit: float = 0.1      # soft limit on landmark motion, in face widths (0 = none): big head turns
                                   # are compressed instead of crushing one side of the face
    head_smoothing: float = 2.0    # sigma in frames of the driving head-motion smoothing (the tracker's)
    # talking head (photo + speech)
    fps: float = 25.0
    max_opening: float = 0.18      # widest inner-lip opening (inner-lip distance / face width; real talkers ~0.1)
    head_amplitude: float = 1.0    # idle head motion, x (yaw 4 deg, pitch 3, roll 2, shift 2 % of face width)
    head_speed: float = 1.0        # idle head motion speed (EMO's speed control), x (periods of 2-6 s)
    blink_rate: float = 15.0       # blinks per minute (0 = none)
    still: bool = False            # no idle head motion (blinks remain unless blink_rate is 0)
    seed: int = 0
    # rendering
    region: float = 1.0            # how far around the face (in face sizes) the warp may move pixels
    render_mouth: bool = True      # draw a mouth interior (cavity, the source's teeth) where the mouth opens
    detector: str = "hog"          # face detector for source and driving: "hog" | "mmod"

    def __post_init__(self):
        checks = [(self.smoothing >= 0 and self.head_smoothing >= 0, "smoothing must be >= 0"),
                  (0 <= self.motion_limit <= 1, "motion_limit must be in [0, 1] face widths"),
                  (0 < self.fps <= 240, "fps must be in (0, 240]"),
                  (0 < self.max_opening <= 0.6, "max_opening must be in (0, 0.6]"),
                  (self.head_amplitude >= 0 and self.head_speed > 0, "head amplitude >= 0 and speed > 0"),
                  (self.blink_rate >= 0, "blink_rate must be >= 0"),
                  (0.2 <= self.region <= 3, "region must be in [0.2, 3]"),
                  (self.detector in ("hog", "mmod"), "detector must be hog or mmod")]
        for ok, message in checks:
            if not ok:
                raise InputError(None, f"warp settings: {message}")

    def replace(self, **changes) -> "WarpConfig":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


PRESETS = {
    "default": WarpConfig(),
    "subtle": WarpConfig(head_amplitude=0.5, head_speed=0.7, max_opening=0.13),
    "expressive": WarpConfig(head_amplitude=1.8, head_speed=1.3, max_opening=0.24),
}


def preset(name: str) -> WarpConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(None, f"unknown warp preset {name!r} (choose {', '.join(PRESETS)})") from None
