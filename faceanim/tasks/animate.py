"""`faceanim reenact` and `faceanim talk`: a photo animated by a driving video or by speech.

Files in, files out: the source photo (any size, face anywhere) is animated as a whole, at its own
resolution; the driving video is streamed frame by frame; the sound of the driving video, or the speech,
is muxed into the result. Without an output path the frames are returned as an iterator instead.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from ..media import VideoReader, VideoWriter, check_output_path, read_audio, read_image
from ..progress import progress
from ..registry import get_method

# Settings of the crop-and-paste route (`crop_reenact.CropOptions`), not of the pipeline.
_CROP_SETTINGS = ("crop", "increase", "driving_crop", "find_best_frame", "best_frame")


def load_pipeline(task: str, method: str, checkpoint: str | os.PathLike | None = None, **settings):
    """The method's pipeline, built from its weights/settings (`from_pretrained`)."""
    return get_method(method).pipeline_class_for(task).from_pretrained(checkpoint, **settings)


def reenact(source: str | os.PathLike, driving: str | os.PathLike, output: str | os.PathLike | None = None, *,
            method: str = "warp", checkpoint: str | os.PathLike | None = None, show_progress: bool | None = None,
            **settings) -> Path | Iterator[np.ndarray]:
    """Animate the photo `source` with the video `driving`; write `output` (returned) or, when it is
    None, return an iterator over the output frames (uint8 (H, W, 3) RGB, the photo's size)."""
    if output is not None:
        check_output_path(output, "video")
    crop_settings = {key: settings.pop(key) for key in _CROP_SETTINGS if key in settings}
    if hasattr(get_method(method).pipeline_class_for("reenact"), "animate_crops"):
        # a model of face crops: crop, animate, paste back
        from .crop_reenact import CropOptions, reenact_crops

        if "detector" in settings:
            crop_settings["detector"] = settings.pop("detector")
        pipeline = load_pipeline("reenact", method, checkpoint, **settings)
        return reenact_crops(pipeline, source, driving, output, options=CropOptions(**crop_settings),
                             show_progress=show_progress)
    if crop_settings:
        raise InputError(None, f"--method {method} animates the whole photo; "
                               f"{', '.join(sorted(crop_settings))} do not apply to it")
    pipeline = load_pipeline("reenact", method, checkpoint, **settings)
    prepared = pipeline.prepare_source(read_image(source), path=source)
    if output is None:
        VideoReader(driving).close()  # a broken driving video fails here, not at the first frame
        return _reenact_frames(pipeline, prepared, driving)
    with VideoReader(driving) as reader:
        audio = reader.read_audio(sample_rate=None) if reader.has_audio else None
        with VideoWriter(output, reader.fps, audio=audio) as writer:
            frames = pipeline.reenact(prepared, reader, driving_name=driving)
            for frame in progress(frames, total=reader.frame_count, desc="reenact", enabled=show_progress):
                writer.write(frame)
    return Path(output)


def _reenact_frames(pipeline, prepared, driving) -> Iterator[np.ndarray]:
    with VideoReader(driving) as reader:
        yield from pipeline.reenact(prepared, reader, driving_name=driving)


def talk(source: str | os.PathLike, audio: str | os.PathLike, output: str | os.PathLike | None = None, *,
         method: str = "warp", checkpoint: str | os.PathLike | None = None, show_progress: bool | None = None,
         **settings) -> Path | Iterator[np.ndarray]:
    """Make the photo `source` speak `audio` (any format PyAV decodes); write `output` (returned) or
    return an iterator over the frames. The video lasts as long as the audio (to the nearest frame)."""
    if output is not None:
        check_output_path(output, "video")
    pipeline = load_pipeline("talk", method, checkpoint, **settings)
    speech = read_audio(audio, sample_rate=None)
    prepared = pipeline.prepare_source(read_image(source), path=source)
    frames = pipeline.talk(prepared, speech)
    if output is None:
        return frames
    from ..audio import frame_count

    total = frame_count(speech.duration, pipeline.config.fps)
    with VideoWriter(output, pipeline.config.fps, audio=speech) as writer:
        for frame in progress(frames, total=total, desc="talk", enabled=show_progress):
            writer.write(frame)
    return Path(output)
