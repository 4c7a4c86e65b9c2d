"""The animator interfaces: one source prepared once, then one output per driving frame.

`CoarseAnimator`: a model of whole images driven by a per-frame motion representation (the `warp`
engine), which FADM's diffusion renderer can refine. `CropAnimator`: a model of face crops (DaGAN, FOMM,
face-vid2vid, FADM); `MotionCropPipeline` builds both views for the keypoint models from two steps, and
`CoarseCrops` lets a whole-image animator serve as a crop animator. Images are uint8 (H, W, 3) RGB;
each animator chooses its own source and driving representations (landmarks, keypoints with Jacobians,
head poses, ...), which callers only pass back to it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Iterable, Iterator, Protocol, Sequence, TypeVar

import numpy as np

from ..nn.pipeline import CropPipeline

SourceT = TypeVar("SourceT")
DrivingT = TypeVar("DrivingT")


@dataclass(frozen=True)
class MotionOptions:
    """How driving motion is transferred (FOMM's terms).

    relative: the source moves by the driving frame's change from the initial driving frame (keeps the
      source's face shape); False: the source takes the driving frame's pose and expression as they are.
    adapt_scale: scale the transferred motion by the ratio of face sizes (FOMM's adapt_movement_scale)."""

    relative: bool = True
    adapt_scale: bool = False


class CoarseAnimator(Protocol, Generic[SourceT, DrivingT]):
    """What a reenactment model offers to tasks and to FADM's refinement stage."""

    name: str

    def prepare_source(self, image: np.ndarray) -> SourceT:
        """Work done once per source image (landmarks or keypoints, features, triangulations...)."""

    def driving_motion(self, frames: Iterable[np.ndarray]) -> Iterator[DrivingT | None]:
        """The driving representation of each frame, streamed and in order (None: no face on that frame)."""

    def animate(self, source: SourceT, driving: DrivingT, initial: DrivingT,
                options: MotionOptions | None = None) -> np.ndarray:
        """The source image moved like `driving` (relative to `initial`, the first driving frame);
        options None: the animator's own settings."""


class CropAnimator(Protocol, Generic[SourceT]):
    """A model of fixed-size face crops (DaGAN, FOMM, face-vid2vid, FADM): `faceanim.tasks` crops the photo
    and the driving frames for it and pastes its output crops back into the full photo."""

    crop_size: int

    def prepare_source(self, crop: np.ndarray) -> SourceT:
        """Work done once per source crop (uint8 (crop_size, crop_size, 3) RGB)."""

    def animate_crops(self, source: SourceT, driving_crops: Iterable[np.ndarray], initial: np.ndarray,
                      motion: MotionOptions | None = None) -> Iterator[np.ndarray]:
        """One output crop per driving crop, streamed in order (the model batches as it likes); `initial`
        is the driving crop that relative motion is measured from; `motion` None: the model's settings."""


class CoarseCrops(Generic[SourceT, DrivingT]):
    """A `CoarseAnimator` of whole images (the `warp` engine) used as a `CropAnimator`: the crop is its
    source image and the driving crops its driving frames. Until the driving face is first seen the
    source crop is shown as it is; a frame where it is lost keeps the last pose."""

    def __init__(self, animator: CoarseAnimator[SourceT, DrivingT], crop_size: int):
        self.animator = animator
        self.crop_size = int(crop_size)
        self.name = animator.name

    def prepare_source(self, crop: np.ndarray) -> tuple[np.ndarray, SourceT]:
        return crop, self.animator.prepare_source(crop)

    def animate_crops(self, source: tuple[np.ndarray, SourceT], driving_crops: Iterable[np.ndarray],
                      initial: np.ndarray, motion: MotionOptions | None = None) -> Iterator[np.ndarray]:
        crop, prepared = source
        reference = next(iter(self.animator.driving_motion([initial])), None)
        last = None
        for driving in self.animator.driving_motion(driving_crops):
            if driving is not None:
                reference = driving if reference is None else reference
                last = self.animator.animate(prepared, driving, reference, motion)
            yield crop if last is None else last


class MotionCropPipeline(CropPipeline):
    """A `CropPipeline` of a reenactment model driven by a per-frame motion representation (keypoints
    with Jacobians, head poses): it is a `CropAnimator` and offers the `CoarseAnimator` view, both built
    on two steps the method implements, each on a batch of frames:

    - `motion_of(crops)`: the motion of a list of driving crops (indexable per frame);
    - `render_motion(source, motion, initial, options)`: output crops for a batch of driving motion,
      relative to the `initial` driving frame's motion.

    relative / adapt_scale: the default motion transfer (FOMM's terms, `MotionOptions`)."""

    def __init__(self, model, *, relative: bool = True, adapt_scale: bool = False, **runtime):
        super().__init__(model, **runtime)
        self.motion = MotionOptions(relative=relative, adapt_scale=adapt_scale)

    def motion_of(self, crops: list[np.ndarray]):
        raise NotImplementedError

    def render_motion(self, source, motion, initial, options: MotionOptions) -> Sequence[np.ndarray]:
        raise NotImplementedError

    def needs_initial(self, options: MotionOptions) -> bool:
        """Whether the initial driving frame's motion is used (absolute motion may not need it)."""
        return True

    def animate_crops(self, source, driving_crops: Iterable[np.ndarray], initial: np.ndarray,
                      motion: MotionOptions | None = None) -> Iterator[np.ndarray]:
        """One uint8 output crop per driving crop, in order, computed `batch_size` frames at a time;
        `initial` is the driving crop that relative motion is measured from."""
        motion = motion or self.motion
        initial_motion = self.motion_of([initial]) if self.needs_initial(motion) else None
        for batch in self.batches(driving_crops):
            yield from self.render_motion(source, self.motion_of(batch), initial_motion, motion)

    def driving_motion(self, frames: Iterable[np.ndarray]) -> Iterator:
        """The motion of each driving crop, streamed (computed in batches)."""
        for batch in self.batches(frames):
            motion = self.motion_of(batch)
            for index in range(len(batch)):
                yield motion[index]

    def animate(self, source, driving, initial, options: MotionOptions | None = None) -> np.ndarray:
        """One output crop: the source moved like `driving` (relative to `initial`)."""
        return self.render_motion(source, driving, initial, options or self.motion)[0]
