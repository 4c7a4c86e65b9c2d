"""Idle motion for the `talk` task: blinks and small, smooth head motion, seeded and reproducible.

Blinks come at random intervals (a minimum gap plus an exponential wait, so the mean rate is
`blink_rate` per minute) with a fast close and a slower open; every blink closes the eyes fully on
at least one frame. Head motion is band-limited random motion: per channel (yaw, pitch, roll, shift
x/y, scale) a weighted sum of three sinusoids with random phases and periods of 2-6 s divided by
`head_speed` (EMO's speed control), so it never exceeds `head_amplitude` x the channel's range. It
fades in over the first half second, so the first frame shows the source's own pose.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InputError

HEAD_RANGES = {"yaw": 4.0, "pitch": 3.0, "roll": 2.0}  # degrees, at head_amplitude 1
SHIFT_RANGE = 0.02     # face widths
SCALE_RANGE = 0.01     # relative
PERIODS_S = (2.0, 6.0)
COMPONENTS = 3         # sinusoids per channel
FADE_IN_S = 0.5

BLINK_MIN_GAP_S = 1.5  # from one blink's closed moment to the next
BLINK_DURATION_S = (0.15, 0.3)
BLINK_CLOSING_SHARE = 1 / 3  # of a blink's duration spent closing; the rest opening
FIRST_BLINK_AFTER_S = 0.3    # the first frames show the source's open eyes


@dataclass
class IdleMotion:
    """Per-frame idle motion, float64: angles in degrees (signs as `faceanim.face.pose`), `shift` (T, 2)
    in face widths (image x, y), `scale` 1 = unchanged, `blink` 0 (open) .. 1 (closed)."""

    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    shift: np.ndarray
    scale: np.ndarray
    blink: np.ndarray

    def __len__(self) -> int:
        return len(self.blink)


def idle_motion(num_frames: int, fps: float = 25.0, *, seed: int = 0, head_amplitude: float = 1.0,
                head_speed: float = 1.0, blink_rate: float = 15.0, still: bool = False) -> IdleMotion:
    """Blinks and head motion for `num_frames` frames at `fps`, the same for the same arguments.

    `still=True` keeps the head still (zero angles and shift, scale 1) but keeps the blinks (a head
    that never blinks looks dead); `blink_rate=0` turns blinks off. The blinks do not depend on the
    head settings. Blink rates over 60 / 1.5 s = 40 a minute give blinks every 1.5 s."""
    _check_options(num_frames, fps, head_amplitude, head_speed, blink_rate)
    num_frames = int(num_frames)
    blink_seed, head_seed = np.random.SeedSequence(seed).spawn(2)
    blink = _blinks(num_frames, fps, blink_rate, np.random.default_rng(blink_seed))
    time = np.arange(num_frames) / fps
    if still or head_amplitude == 0:
        zeros = np.zeros(num_frames)
        return IdleMotion(zeros, zeros.copy(), zeros.copy(), np.zeros((num_frames, 2)), np.ones(num_frames), blink)
    rng = np.random.default_rng(head_seed)
    fade = _smoothstep(time / FADE_IN_S) * head_amplitude
    wander = {name: fade * _wander(time, head_speed, rng) for name in ("yaw", "pitch", "roll", "x", "y", "scale")}
    return IdleMotion(yaw=HEAD_RANGES["yaw"] * wander["yaw"], pitch=HEAD_RANGES["pitch"] * wander["pitch"],
                      roll=HEAD_RANGES["roll"] * wander["roll"],
                      shift=SHIFT_RANGE * np.column_stack([wander["x"], wander["y"]]),
                      scale=1.0 + SCALE_RANGE * wander["scale"], blink=blink)


def _check_options(num_frames: int, fps: float, head_amplitude: float, head_speed: float,
                   blink_rate: float) -> None:
    if not float(num_frames).is_integer() or num_frames < 0:
        raise InputError(None, f"num_frames must be a whole number >= 0, got {num_frames}")
    if not (np.isfinite(fps) and fps > 0):
        raise InputError(None, f"frame rate must be a positive number, got {fps}")
    for name, value in (("head_amplitude", head_amplitude), ("blink_rate", blink_rate)):
        if not (np.isfinite(value) and value >= 0):
            raise InputError(None, f"{name} must be >= 0, got {value}")
    if not (np.isfinite(head_speed) and head_speed > 0):
        raise InputError(None, f"head_speed must be > 0, got {head_speed}")


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _wander(time: np.ndarray, speed: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random motion in [-1, 1]: COMPONENTS sinusoids, random periods (PERIODS_S / speed),
    phases and weights (summing to 1). The draws do not depend on `speed`: it only rescales time."""
    periods = rng.uniform(*PERIODS_S, size=COMPONENTS)
    phases = rng.uniform(0.0, 2 * np.pi, size=COMPONENTS)
    weights = rng.dirichlet(np.ones(COMPONENTS))
    angles = 2 * np.pi * speed * time[:, None] / periods[None, :] + phases[None, :]
    return np.sin(angles) @ weights


def _blinks(num_frames: int, fps: float, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure per frame: blinks whose fully closed moment falls on a frame, at least
    BLINK_MIN_GAP_S apart, `rate` a minute on average."""
    closure = np.zeros(num_frames)
    if rate == 0 or num_frames == 0:
        return closure
    min_gap = int(np.ceil(BLINK_MIN_GAP_S * fps))  # frames, so the rounded times keep the gap
    extra_wait_s = max(60.0 / rate - min_gap / fps, 0.0)  # mean of the exponential part of each gap
    peak = int(np.ceil(FIRST_BLINK_AFTER_S * fps)) + int(round(rng.uniform(0.0, 60.0 / rate) * fps))
    time = np.arange(num_frames) / fps
    while peak < num_frames + fps * BLINK_DURATION_S[1]:  # a blink just past the end still shows its start
        duration = rng.uniform(*BLINK_DURATION_S)
        closure = np.maximum(closure, _blink_profile(time - peak / fps, duration))
        peak += min_gap + int(round(rng.exponential(extra_wait_s) * fps)) if extra_wait_s > 0 else min_gap
    return closure


def _blink_profile(offset_s: np.ndarray, duration_s: float) -> np.ndarray:
    """Closure of one blink at times relative to its closed moment: a raised-cosine close over
    BLINK_CLOSING_SHARE of `duration_s`, then a raised-cosine open over the rest."""
    closing = BLINK_CLOSING_SHARE * duration_s
    opening = duration_s - closing
    progress = np.where(offset_s < 0, 1.0 + offset_s / closing, 1.0 - offset_s / opening)
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(progress, 0.0, 1.0))  # progress < 0: outside the blink
