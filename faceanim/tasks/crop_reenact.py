"""Reenactment with a model of face crops (`faceanim.warping.CropAnimator`: DaGAN, FOMM, FADM): crop the
photo's face, track and crop the driving face frame by frame, animate the crops, paste each result back
into the full photo.

Pass 1 tracks the driving video (only its landmarks are kept); pass 2 streams it again, cropping,
animating in the pipeline's batches and pasting back, so no video is ever held in memory. With
`crop=False` the inputs are taken as ready-made crops and only resized, as the official demos do.
"""
from __future__ import annotations

import collections
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from ..errors import InputError
from ..face import FaceTracker, fomm_box, fomm_crop, largest_face, paste_back, prepare_paste_back
from ..face.crop import FOMM_INCREASE
from ..face.video import FaceTrack, crop_video_frames, track_video
from ..media import VideoReader, VideoWriter, read_image
from ..media.image import resize_square
from ..progress import progress
from ..warping.animator import MotionOptions
from ..warping.motion import find_best_frame


@dataclass(frozen=True)
class CropOptions:
    """How faces are cut out and which driving frame is the initial one.

    crop: find and crop the faces (False: the photo and the driving frames are already face crops).
    increase: margin of the square crop around the face box (FOMM/VoxCeleb style).
    driving_crop: "smooth" (the window follows the driving face) or "fixed" (one window for the clip).
    find_best_frame: start from the driving frame whose face is closest to the photo's (normalised
      landmarks), as the official `--find_best_frame`; best_frame: that frame's index, given.
    detector: "hog" or "mmod"."""

    crop: bool = True
    increase: float = FOMM_INCREASE
    driving_crop: str = "smooth"
    find_best_frame: bool = False
    best_frame: int | None = None
    detector: str = "hog"

    def __post_init__(self):
        if self.driving_crop not in ("smooth", "fixed"):
            raise InputError(None, f"driving crop must be 'smooth' or 'fixed', got {self.driving_crop!r}")
        if self.best_frame is not None and self.best_frame < 0:
            raise InputError(None, f"best frame must be >= 0, got {self.best_frame}")


@dataclass
class _Source:
    image: np.ndarray
    crop: np.ndarray
    landmarks: np.ndarray | None
    paste: object | None  # PastePlan, or None when the photo is a crop (resized back instead)


def _prepare_photo(path, size: int, options: CropOptions) -> _Source:
    image = read_image(path)
    if not options.crop:
        return _Source(image, resize_square(image, size), None, None)
    _, landmarks = largest_face(image, options.detector, path=path)
    crop, transform = fomm_crop(image, fomm_box(landmarks, image.shape[:2], options.increase), size)
    return _Source(image, crop, landmarks, prepare_paste_back(transform))


def _driving_crops(frames: Iterable[np.ndarray], track: FaceTrack | None, size: int,
                   options: CropOptions) -> Iterator[np.ndarray]:
    if track is None:
        return (resize_square(frame, size) for frame in frames)
    plan = track.crop_plan("fomm", size, motion=options.driving_crop, increase=options.increase)
    return crop_video_frames(frames, plan)


def _initial_index(source: _Source, track: FaceTrack | None, options: CropOptions, driving) -> int:
    if options.best_frame is not None:
        if track is not None and options.best_frame >= len(track.found):
            raise InputError(driving, f"best frame {options.best_frame} is past the video's "
                                      f"{len(track.found)} frames")
        return options.best_frame
    if not options.find_best_frame:
        return 0
    landmarks = source.landmarks if source.landmarks is not None else largest_face(source.image, options.detector)[1]
    return find_best_frame(landmarks, [lm if ok else None for lm, ok in zip(track.landmarks, track.found)])


def _crop_at(driving, index: int, track: FaceTrack | None, size: int, options: CropOptions) -> np.ndarray:
    """The driving crop of frame `index` (decoded from the start: a short extra pass)."""
    with VideoReader(driving) as reader:
        crops = _driving_crops(reader, track, size, options)
        crop = next(itertools.islice(crops, index, None), None)
    if crop is None:
        raise InputError(driving, f"has no frame {index}")
    return crop


def reenact_crops(pipeline, source: str | os.PathLike, driving: str | os.PathLike,
                  output: str | os.PathLike | None, *, options: CropOptions = CropOptions(),
                  motion: MotionOptions | None = None, show_progress: bool | None = None):
    """Animate the photo with the driving video through `pipeline` (which offers `crop_size`,
    `prepare_source(crop)` and `animate_crops(prepared, crops, initial_crop, motion)`); write `output`
    (returned) or, when it is None, return an iterator over full-size output frames."""
    size = int(pipeline.crop_size)
    photo = _prepare_photo(source, size, options)
    VideoReader(driving).close()  # a broken driving video fails here, before any model work
    needs_track = options.crop or options.find_best_frame
    track = track_video(driving, tracker=FaceTracker(options.detector)) if needs_track else None
    initial = _crop_at(driving, _initial_index(photo, track, options, driving), track if options.crop else None,
                       size, options)
    prepared = pipeline.prepare_source(photo.crop)
    frames = _animated_frames(pipeline, prepared, photo, driving, track if options.crop else None, initial,
                              options, motion)
    if output is None:
        return frames
    with VideoReader(driving) as reader:
        audio = reader.read_audio(sample_rate=None) if reader.has_audio else None
        rate, total = reader.fps, reader.frame_count
    with VideoWriter(output, rate, audio=audio) as writer:
        for frame in progress(frames, total=total, desc="reenact", enabled=show_progress):
            writer.write(frame)
    return Path(output)


def _animated_frames(pipeline, prepared, photo: _Source, driving, track, initial, options, motion):
    with VideoReader(driving) as reader:
        crops = _driving_crops(reader, track, int(pipeline.crop_size), options)
        for crop in pipeline.animate_crops(prepared, crops, initial, motion):
            yield _placed(photo, crop)


def _placed(photo: _Source, crop: np.ndarray) -> np.ndarray:
    if photo.paste is None:
        height, width = photo.image.shape[:2]
        return cv2.resize(crop, (width, height), interpolation=cv2.INTER_CUBIC)
    return photo.paste.paste(photo.image, crop)


def refine_video(pipeline, video: str | os.PathLike, output: str | os.PathLike | None, *,
                 options: CropOptions = CropOptions(), show_progress: bool | None = None):
    """Refine the face of every frame of `video` with `pipeline.refine_crops` (crops in, crops out, in
    order) and paste each result back into its own frame; write `output` (returned) or return an iterator
    over the frames. Only `batch_size` frames are held at a time."""
    size = int(pipeline.crop_size)
    with VideoReader(video) as reader:
        audio = reader.read_audio(sample_rate=None) if reader.has_audio else None
        rate, total = reader.fps, reader.frame_count
    plan = None
    if options.crop:
        track = track_video(video, tracker=FaceTracker(options.detector))
        plan = track.crop_plan("fomm", size, motion=options.driving_crop, increase=options.increase)
    frames = _refined_frames(pipeline, video, plan, size)
    if output is None:
        return frames
    with VideoWriter(output, rate, audio=audio) as writer:
        for frame in progress(frames, total=total, desc="refine", enabled=show_progress):
            writer.write(frame)
    return Path(output)


def _refined_frames(pipeline, video, plan, size: int) -> Iterator[np.ndarray]:
    waiting: collections.deque = collections.deque()   # the frames whose crops the pipeline holds

    def crops(reader) -> Iterator[np.ndarray]:
        for index, frame in enumerate(reader):
            waiting.append((index, frame))
            yield resize_square(frame, size) if plan is None else plan.crop(frame, index)

    with VideoReader(video) as reader:
        for crop in pipeline.refine_crops(crops(reader)):
            index, frame = waiting.popleft()
            if plan is None:
                yield cv2.resize(crop, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_CUBIC)
            else:
                yield paste_back(frame, crop, plan.transforms[index])
