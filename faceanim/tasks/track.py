"""`faceanim track`: follow the face through a video (or photo), cut crops, and paste them back.

The round trip crop -> paste-back is what every method's output goes through; this command shows it
on its own (optionally with the 68 landmarks drawn on the crops) and writes the crops as a video.
"""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..errors import InputError, NoFaceError
from ..face import FaceEmbedder, FaceTracker, largest_face, paste_back
from ..face.video import plan_crops, track_video
from ..media import (VideoReader, VideoWriter, check_output_path, probe, read_image, video_rate_and_sound, write_image,
                     write_video)

def _tracker(args: argparse.Namespace) -> FaceTracker:
    if args.reference:
        image = read_image(args.reference)
        _, landmarks = largest_face(image, path=args.reference)
        return FaceTracker(detector=args.detector, select=FaceEmbedder()(image, landmarks))
    return FaceTracker(detector=args.detector, select="largest" if args.face_index is None else args.face_index)


def draw_landmarks(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A copy of `image` with the 68 points drawn (green dots, radius scaled to the image)."""
    out = image.copy()
    radius = max(1, round(image.shape[0] / 200))
    for x, y in np.round(points).astype(int):
        cv2.circle(out, (int(x), int(y)), radius, (0, 255, 0), -1, lineType=cv2.LINE_AA)
    return out


def track_file(args: argparse.Namespace) -> int:
    source, output = Path(args.input), Path(args.output)
    kind = probe(source).kind
    if kind == "audio":
        raise InputError(source, "has no picture (an audio file): give a video or a photo")
    check_output_path(output, kind)
    if args.crops:
        check_output_path(args.crops, kind)
    if kind == "image":
        return _track_photo(source, output, args)
    track = track_video(source, tracker=_tracker(args))
    plan = track.crop_plan(args.crop, args.size)
    rate, total, audio = video_rate_and_sound(source)
    with contextlib.ExitStack() as stack:
        crops_writer = stack.enter_context(VideoWriter(args.crops, rate)) if args.crops else None

        def pasted() -> Iterator[np.ndarray]:
            with VideoReader(source) as reader:
                for index, (frame, transform, landmarks) in enumerate(zip(reader, plan.transforms, track.landmarks)):
                    crop = _crop_for_display(plan.crop(frame, index), transform, landmarks, args.draw_landmarks)
                    if crops_writer:
                        crops_writer.write(crop)
                    yield paste_back(frame, crop, transform)
        write_video(output, pasted(), rate, audio=audio, total=total, desc="crop + paste-back")
    print(f"{source}: {len(track.found)} frames, face found in {int(track.found.sum())}"
          + (f" (missing {', '.join(track.missing_ranges())})" if not track.found.all() else "")
          + f" -> {output}" + (f", crops -> {args.crops}" if args.crops else ""))
    return 0


def _crop_for_display(crop: np.ndarray, transform, landmarks: np.ndarray, draw: bool) -> np.ndarray:
    return draw_landmarks(crop, transform.to_crop(landmarks)) if draw else crop


def _photo_landmarks(image: np.ndarray, source: Path, args: argparse.Namespace) -> np.ndarray:
    """The chosen face of a photo: the largest, or the one --face-index / --reference selects."""
    if args.face_index is None and not args.reference:
        return largest_face(image, detector=args.detector, path=source)[1]
    (_, observation), = _tracker(args).track([image])
    if not observation.found:
        raise NoFaceError(source, "no face matches --face-index / --reference")
    return observation.landmarks


def _track_photo(source: Path, output: Path, args: argparse.Namespace) -> int:
    image = read_image(source)
    landmarks = _photo_landmarks(image, source, args)
    plan = plan_crops(landmarks[None], image.shape[:2], args.crop, args.size, smoothing=0)
    transform = plan.transforms[0]
    crop = _crop_for_display(plan.crop(image, 0), transform, landmarks, args.draw_landmarks)
    if args.crops:
        write_image(args.crops, crop)
    write_image(output, paste_back(image, crop, transform))
    print(f"{source}: face at {np.round(transform.to_frame(np.array([[args.size / 2, args.size / 2]]))[0])} "
          f"-> {output}" + (f", crop -> {args.crops}" if args.crops else ""))
    return 0
