"""The crop routes: how every task runs a model of face crops (`registry` kind "crops" or "refiner").

- reenact: crop the photo's face; track the driving video and crop its face frame by frame; the model
  animates the crops (`animate_crops`); each result is pasted back into the full photo.
- talk: crop the photo's face; the model makes one crop per video frame from the speech (`talk_crops`);
  each is pasted back into the full photo; the speech is the soundtrack.
- edit (and FADM's refinement of an existing video): track the video's face; its crops go through the
  model (`edit_crops` / `refine_crops`, crops in, crops out, in order); each result is pasted back into
  its own frame; the video's sound is kept. A model that needs the whole clip before editing any frame
  (an identity averaged over the video) defines `scan_crops(crops)`: it gets every crop, streamed, in
  a pass of its own before the editing pass.

Tracking is a first pass that keeps only landmarks; the second pass streams the video again, so no
video is ever held in memory. With `crop=False` the inputs are taken as ready-made crops and only
resized, as the official demos do. The crop style (FOMM/VoxCeleb square or FFHQ alignment) is the
model's `crop_style` (default: FOMM's square crops).
"""
from __future__ import annotations

import collections
import itertools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from ..errors import InputError
from ..face import FaceTracker, fomm_box, fomm_crop, largest_face, paste_back, prepare_paste_back
from ..face.crop import FOMM_INCREASE
from ..face.paste import MaskedCrop
from ..face.video import SQUARE_CROP, FaceTrack, crop_video_frames, plan_crops, track_video
from ..media import VideoReader, read_audio, read_image, video_rate_and_sound, write_video
from ..media.image import resize_square
from ..progress import progress
from ..warping.animator import MotionOptions
from ..warping.motion import find_best_frame

log = logging.getLogger(__name__)


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


def deliver(frames: Iterator[np.ndarray], output: str | os.PathLike | None, fps: float, *, audio=None,
            total: int | None = None, desc: str, show_progress: bool | None = None) -> Path | Iterator[np.ndarray]:
    """Write `frames` to `output` (returned), or return them as they are when `output` is None."""
    if output is None:
        return frames
    return write_video(output, frames, fps, audio=audio, total=total, desc=desc, show_progress=show_progress)


@dataclass
class _Source:
    image: np.ndarray
    crop: np.ndarray
    landmarks: np.ndarray | None
    paste: object | None  # PastePlan, or None when the photo is a crop (resized back instead)

    def placed(self, crop: np.ndarray) -> np.ndarray:
        """An output crop in the full photo: pasted back, or resized to it when the photo is a crop."""
        if self.paste is None:
            height, width = self.image.shape[:2]
            return cv2.resize(crop, (width, height), interpolation=cv2.INTER_CUBIC)
        return self.paste.paste(self.image, crop)


def _crop_style(pipeline) -> str:
    return getattr(pipeline, "crop_style", SQUARE_CROP)


def _prepare_photo(path, pipeline, options: CropOptions) -> _Source:
    image, size, style = read_image(path), int(pipeline.crop_size), _crop_style(pipeline)
    if not options.crop:
        return _Source(image, resize_square(image, size), None, None)
    _, landmarks = largest_face(image, options.detector, path=path)
    if style == SQUARE_CROP:
        # a model trained on wider crops states its margin (`crop_increase`); an explicit option wins
        increase = options.increase
        if increase == FOMM_INCREASE and getattr(pipeline, "crop_increase", None) is not None:
            increase = pipeline.crop_increase
        crop, transform = fomm_crop(image, fomm_box(landmarks, image.shape[:2], increase), size)
    else:
        plan = plan_crops(landmarks[None], image.shape[:2], style, size, smoothing=0)
        crop, transform = plan.crop(image, 0), plan.transforms[0]
    return _Source(image, crop, landmarks, prepare_paste_back(transform))


def _track(video, options: CropOptions) -> FaceTrack:
    return track_video(video, tracker=FaceTracker(options.detector))


def _video_crops(frames: Iterable[np.ndarray], track: FaceTrack | None, pipeline,
                 options: CropOptions) -> Iterator[np.ndarray]:
    size = int(pipeline.crop_size)
    if track is None:
        return (resize_square(frame, size) for frame in frames)
    return crop_video_frames(frames, _plan(track, pipeline, options))


def _plan(track: FaceTrack, pipeline, options: CropOptions):
    style = _crop_style(pipeline)
    motion = options.driving_crop if style == SQUARE_CROP else "smooth"
    return track.crop_plan(style, int(pipeline.crop_size), motion=motion, increase=options.increase)


# -- reenact ----------------------------------------------------------------------------------------------
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


def _crop_at(driving, index: int, track: FaceTrack | None, pipeline, options: CropOptions) -> np.ndarray:
    """The driving crop of frame `index` (decoded from the start: a short extra pass)."""
    with VideoReader(driving) as reader:
        crop = next(itertools.islice(_video_crops(reader, track, pipeline, options), index, None), None)
    if crop is None:
        raise InputError(driving, f"has no frame {index}")
    return crop


def reenact_crops(pipeline, source: str | os.PathLike, driving: str | os.PathLike,
                  output: str | os.PathLike | None, *, options: CropOptions = CropOptions(),
                  motion: MotionOptions | None = None, show_progress: bool | None = None):
    """Animate the photo with the driving video through `pipeline` (a `CropAnimator`: `crop_size`,
    `prepare_source(crop)`, `animate_crops(prepared, crops, initial_crop, motion)`); write `output`
    (returned) or, when it is None, return an iterator over full-size output frames."""
    photo = _prepare_photo(source, pipeline, options)
    rate, total, audio = video_rate_and_sound(driving)  # a broken driving video fails here, before model work
    track = _track(driving, options) if options.crop or options.find_best_frame else None
    crop_track = track if options.crop else None
    initial = _crop_at(driving, _initial_index(photo, track, options, driving), crop_track, pipeline, options)
    prepared = pipeline.prepare_source(photo.crop)

    def frames() -> Iterator[np.ndarray]:
        with VideoReader(driving) as reader:
            crops = _video_crops(reader, crop_track, pipeline, options)
            for crop in pipeline.animate_crops(prepared, crops, initial, motion):
                yield photo.placed(crop)
    return deliver(frames(), output, rate, audio=audio, total=total, desc="reenact", show_progress=show_progress)


# -- talk -------------------------------------------------------------------------------------------------
def talk_crops(pipeline, source: str | os.PathLike, audio: str | os.PathLike, output: str | os.PathLike | None, *,
               options: CropOptions = CropOptions(), show_progress: bool | None = None):
    """Make the photo speak `audio` through `pipeline` (a `CropTalker`: `crop_size`, `fps`,
    `prepare_source(crop)`, `talk_crops(prepared, speech)`, optionally `check_speech(speech)`); each crop
    is pasted back into the photo."""
    from ..audio import frame_count

    speech = read_audio(audio, sample_rate=None)
    _check_speech(pipeline, speech, audio)
    photo = _prepare_photo(source, pipeline, options)
    prepared = pipeline.prepare_source(photo.crop)
    frames = (photo.placed(crop) for crop in pipeline.talk_crops(prepared, speech))
    return deliver(frames, output, pipeline.fps, audio=speech, total=frame_count(speech.duration, pipeline.fps),
                   desc="talk", show_progress=show_progress)


def _check_speech(pipeline, speech, path) -> None:
    """The model's own test of the speech (e.g. too short, silent), before any other work; its message
    is about this file."""
    check = getattr(pipeline, "check_speech", None)
    if check is None:
        return
    try:
        check(speech)
    except InputError as err:
        if err.path is not None:
            raise
        raise InputError(path, err.problem) from None


# -- edit, refine -----------------------------------------------------------------------------------------
def process_video_crops(process: Callable[[Iterator[np.ndarray]], Iterable[np.ndarray | MaskedCrop]], pipeline,
                        video: str | os.PathLike, output: str | os.PathLike | None, *,
                        options: CropOptions = CropOptions(), desc: str = "edit", show_progress: bool | None = None):
    """Run the face crop of every frame of `video` through `process` (crops in, crops out, in order; the
    model may hold a batch) and paste each result back into its own frame; write `output` (returned) or
    return an iterator over the frames. Only the frames whose crops the model holds are kept in memory.

    A result may be a `MaskedCrop`: only its mask is pasted (no colour matching, no border feather), so
    every frame pixel outside the mask keeps its value. Frames without a detected face get the crop
    window interpolated from their neighbours (held at the clip's ends) and are processed like the others;
    the optional first pass (`scan_crops`) sees only the crops of frames where a face was found."""
    rate, total, audio = video_rate_and_sound(video)
    track = _track(video, options) if options.crop else None
    plan = _plan(track, pipeline, options) if track is not None else None
    size = int(pipeline.crop_size)
    if track is not None and not track.found.all():
        log.warning("%s: no face in frames %s; their crop windows are interpolated from the neighbouring frames",
                    video, ", ".join(track.missing_ranges()))

    def crops_only(reader) -> Iterator[np.ndarray]:
        for index, frame in enumerate(reader):
            if track is None:
                yield resize_square(frame, size)
            elif track.found[index]:
                yield plan.crop(frame, index)

    scan = getattr(pipeline, "scan_crops", None)
    if scan is not None:      # a model that needs the whole clip first (a video-level identity): one more pass
        faces = total if track is None else int(track.found.sum())
        with VideoReader(video) as reader:
            scan(progress(crops_only(reader), total=faces, desc="scan", enabled=show_progress))

    def frames() -> Iterator[np.ndarray]:
        waiting: collections.deque = collections.deque()   # the frames whose crops the model holds

        def crops(reader) -> Iterator[np.ndarray]:
            for index, frame in enumerate(reader):
                waiting.append((index, frame))
                yield resize_square(frame, size) if plan is None else plan.crop(frame, index)

        with VideoReader(video) as reader:
            for result in process(crops(reader)):
                index, frame = waiting.popleft()
                yield _placed(result, frame, None if plan is None else plan.transforms[index])
    return deliver(frames(), output, rate, audio=audio, total=total, desc=desc, show_progress=show_progress)


def _placed(result: np.ndarray | MaskedCrop, frame: np.ndarray, transform) -> np.ndarray:
    """A model's crop back in its frame: pasted through its transform, or resized when the frame was only
    resized (no crop); a `MaskedCrop` only where its mask is on."""
    height, width = frame.shape[:2]
    if not isinstance(result, MaskedCrop):
        if transform is None:
            return cv2.resize(result, (width, height), interpolation=cv2.INTER_CUBIC)
        return paste_back(frame, result, transform)
    if transform is None:
        crop = cv2.resize(result.crop, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        alpha = cv2.resize(np.asarray(result.mask, np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
        mixed = frame + alpha[..., None] * (crop - frame)
        return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    return paste_back(frame, result.crop, transform, mask=result.mask, feather=0.0, color_match=False)
