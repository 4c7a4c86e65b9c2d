"""`WarpPipeline`: the training-free landmark engine behind `faceanim reenact/talk --method warp`.

The source is prepared once (landmarks, anchors, triangulation, mouth textures); each output frame is
then one dense warp of the full source image towards target landmarks, which come from a driving
video (`reenact`) or from speech plus idle motion (`talk`). It is also a coarse animator
(`faceanim.warping.CoarseAnimator`) for FADM's diffusion renderer.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ...errors import InputError, NoFaceError
from ...warping import MotionOptions
from .conditioning import MotionTransfer
from .config import WarpConfig, preset
from .model import LandmarkWarper


@dataclass
class WarpSource:
    """A prepared source: the full image, its 68 landmarks, and the warper built for them."""

    image: np.ndarray
    landmarks: np.ndarray
    warper: LandmarkWarper


class WarpPipeline:
    name = "warp"

    def __init__(self, config: WarpConfig | None = None):
        self.config = config or WarpConfig()

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *, preset_name: str = "default",
                        **overrides) -> "WarpPipeline":
        """The engine has no weights; `path` may name a folder with a `config.json` of settings, else the
        named preset is used. Keyword overrides (None = keep) change single settings."""
        config = preset(preset_name)
        if path is not None:
            config_file = Path(path) / "config.json"
            if not config_file.is_file():
                raise InputError(path, "has no config.json")
            config = WarpConfig(**json.loads(config_file.read_text()))
        return cls(config.replace(**overrides))

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        return folder

    # -- coarse-animator interface -------------------------------------------------------------------
    def prepare_source(self, image: np.ndarray, landmarks: np.ndarray | None = None, *,
                       path: str | os.PathLike | None = None) -> WarpSource:
        """Find the face (largest) unless landmarks are given, and build the warper: done once per source."""
        if landmarks is None:
            from ...face import largest_face

            _, landmarks = largest_face(image, detector=self.config.detector, path=path)
        landmarks = np.asarray(landmarks, dtype=np.float64)
        warper = LandmarkWarper(image, landmarks, region=self.config.region, render_mouth=self.config.render_mouth)
        return WarpSource(image, landmarks, warper)

    def driving_motion(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray | None]:
        """Tracked, smoothed 68 landmarks of each driving frame (None where no face is found)."""
        from ...face import FaceTracker
        from ...face.smoothing import TemporalSmoother

        tracker = FaceTracker(detector=self.config.detector, smoothing=self.config.head_smoothing)
        smoother: TemporalSmoother[None] = TemporalSmoother(self.config.smoothing)
        for _, observation in tracker.track(frames):
            for _, landmarks in smoother.push(None, observation.landmarks if observation.found else None):
                yield landmarks
        for _, landmarks in smoother.flush():
            yield landmarks

    def animate(self, source: WarpSource, driving: np.ndarray, initial: np.ndarray,
                options: MotionOptions | None = None) -> np.ndarray:
        """One output frame: the source moved like `driving` (relative to `initial`)."""
        options = options or MotionOptions(self.config.relative, self.config.adapt_scale)
        transfer = MotionTransfer(source.landmarks, initial, relative=options.relative,
                                  adapt_scale=options.adapt_scale, motion_limit=self.config.motion_limit)
        return source.warper.warp(transfer(driving))

    # -- whole clips -------------------------------------------------------------------------------
    def reenact(self, source: WarpSource, driving_frames: Iterable[np.ndarray], *,
                driving_name: str | os.PathLike | None = None) -> Iterator[np.ndarray]:
        """One output frame per driving frame (streamed). Until the driving face first appears the source
        is shown as it is; a frame where it is lost repeats the last pose. NoFaceError if it never appears."""
        transfer, target = None, source.landmarks
        for driving in self.driving_motion(driving_frames):
            if driving is not None:
                if transfer is None:
                    transfer = MotionTransfer(source.landmarks, driving, relative=self.config.relative,
                                              adapt_scale=self.config.adapt_scale,
                                              motion_limit=self.config.motion_limit)
                target = transfer(driving)
            yield source.warper.warp(target)
        if transfer is None:
            raise NoFaceError(driving_name, "no face found in any frame of the driving video")

    def talk(self, source: WarpSource, audio, *, num_frames: int | None = None) -> Iterator[np.ndarray]:
        """One frame per 1/fps of `audio` (a `faceanim.media.Audio`): mouth from speech, idle motion."""
        from ...audio import frame_count
        from .expression import close_eyes, rotate_head, set_mouth
        from .idle import idle_motion
        from .speech import speech_to_mouth

        cfg = self.config
        frames = num_frames or frame_count(audio.duration, cfg.fps)
        mouth = speech_to_mouth(audio, cfg.fps, num_frames=frames, max_opening=cfg.max_opening)
        idle = idle_motion(frames, cfg.fps, seed=cfg.seed, head_amplitude=cfg.head_amplitude,
                           head_speed=cfg.head_speed, blink_rate=cfg.blink_rate, still=cfg.still)
        for t in range(frames):
            target = set_mouth(source.landmarks, opening=float(mouth.opening[t]), width=float(mouth.width[t]),
                               rounding=float(mouth.rounding[t]))
            target = close_eyes(target, float(idle.blink[t]))
            target = rotate_head(target, yaw=float(idle.yaw[t]), pitch=float(idle.pitch[t]),
                                 roll=float(idle.roll[t]), scale=float(idle.scale[t]),
                                 shift=(float(idle.shift[t, 0]), float(idle.shift[t, 1])))
            yield source.warper.warp(target)

