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

REFINERS = ("fadm",)     # methods that refine another animator's frames (faceanim.tasks.coarse builds it)
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
        if method in REFINERS:
            pipeline = load_refiner(method, checkpoint, settings, coarse_needed=True)
        else:
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


def load_refiner(method: str, checkpoint, settings: dict, *, coarse_needed: bool):
    """A refining method's pipeline (FADM) with the coarse animator its settings name (`coarse`,
    `coarse_checkpoint`, `coarse_config` and the coarse model's own options), built in `tasks.coarse`."""
    from .coarse import COARSE_SETTINGS, coarse_animator

    given_name = settings.pop("coarse", None)
    name = given_name or "facevid"
    coarse_checkpoint = settings.pop("coarse_checkpoint", None)
    coarse_settings = {key: settings.pop(key) for key in list(settings)
                       if key in COARSE_SETTINGS and key not in ("device", "batch_size")}
    if "coarse_config" in coarse_settings:
        coarse_settings["config"] = coarse_settings.pop("coarse_config")
    pipeline = load_pipeline("reenact", method, checkpoint, **settings)
    if not coarse_needed:
        if given_name or coarse_checkpoint or coarse_settings:
            raise InputError(None, "--refine-video refines the given video; coarse-animator options do not apply")
        return pipeline
    shared = {key: settings[key] for key in ("device", "batch_size") if key in settings and name != "warp"}
    pipeline.attach_coarse(coarse_animator(name, coarse_checkpoint, pipeline.crop_size, **coarse_settings, **shared))
    return pipeline


def refine(video: str | os.PathLike, output: str | os.PathLike | None = None, *, method: str = "fadm",
           checkpoint: str | os.PathLike | None = None, show_progress: bool | None = None,
           **settings) -> Path | Iterator[np.ndarray]:
    """Refine an existing animation `video` frame by frame (FADM's 'direct' mode): its face is tracked,
    cropped, refined and pasted back into each frame; the attribute is measured against its first frame."""
    from .crop_reenact import CropOptions, refine_video

    if output is not None:
        check_output_path(output, "video")
    if method not in REFINERS:
        raise InputError(None, f"--refine-video needs a refining method ({', '.join(REFINERS)}), not {method}")
    crop_settings = {key: settings.pop(key) for key in (*_CROP_SETTINGS, "detector") if key in settings}
    if crop_settings.get("find_best_frame") or crop_settings.get("best_frame") is not None:
        raise InputError(None, "--find-best-frame / --best-frame do not apply to --refine-video")
    pipeline = load_refiner(method, checkpoint, settings, coarse_needed=False)
    return refine_video(pipeline, video, output, options=CropOptions(**crop_settings), show_progress=show_progress)


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
