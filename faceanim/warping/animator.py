"""The coarse-animator interface: one source prepared once, then one output per driving frame.

Every reenactment model offers it (the training-free `warp` engine now; FOMM, face-vid2vid and DaGAN
later), and FADM's attribute-guided diffusion renderer refines whatever one of them produces. Images
are uint8 (H, W, 3) RGB; each animator chooses its own source and driving representations (landmarks,
keypoints with Jacobians, ...), which callers only pass back to it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Iterable, Iterator, Protocol, TypeVar

import numpy as np

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
