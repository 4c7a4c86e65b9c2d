"""`faceanim reenact`, `talk` and `edit`: a photo animated by a driving video or by speech, a video edited.

Files in, files out. The method's registry spec says how it runs: a pipeline of whole images animates the
photo as a whole, at its own resolution; a model of face crops goes through the crop routes of
`faceanim.tasks.crops` (crop, generate, paste back). The driving video is streamed frame by frame; its
sound, or the speech, is muxed into the result. Without an output path the frames are returned as an
iterator instead.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from ..media import VideoReader, check_output_path, read_audio, read_image, video_rate_and_sound
from ..registry import MethodSpec, get_method
from .crops import CropOptions, deliver, process_video_crops, reenact_crops, talk_crops

# Settings of the crop route (`crops.CropOptions`), not of the pipeline.
_CROP_SETTINGS = ("crop", "increase", "driving_crop", "find_best_frame", "best_frame")


def load_pipeline(task: str, method: str, checkpoint: str | os.PathLike | None = None, **settings):
    """The method's pipeline, built from its weights/settings (`from_pretrained`)."""
    return get_method(method).pipeline_class_for(task).from_pretrained(checkpoint, **settings)


def _crop_settings(spec: MethodSpec, settings: dict) -> CropOptions | None:
    """The crop route's options taken out of `settings` (None for a pipeline of whole images, which
    takes none of them)."""
    route = {key: settings.pop(key) for key in _CROP_SETTINGS if key in settings}
    if spec.kind == "image":
        if route:
            raise InputError(None, f"--method {spec.name} animates the whole photo; "
                                   f"{', '.join(sorted(route))} do not apply to it")
        return None
    if "detector" in settings:
        route["detector"] = settings.pop("detector")
    return CropOptions(**route)


def _pipeline(spec: MethodSpec, task: str, checkpoint, settings: dict, *, coarse_needed: bool = True):
    if spec.kind == "refiner":
        return load_refiner(spec.name, checkpoint, settings, coarse_needed=coarse_needed)
    return load_pipeline(task, spec.name, checkpoint, **settings)


def _checked(task: str, method: str, output) -> MethodSpec:
    spec = get_method(method)
    spec.pipeline_class_for(task)      # says so (exit 2) if it does not do this yet
    if output is not None:
        check_output_path(output, "video")
    return spec


def _loaded(task: str, method: str, output, checkpoint, settings: dict):
    """The method's pipeline for `task` and its crop-route options (None for a pipeline of whole images)."""
    spec = _checked(task, method, output)
    route = _crop_settings(spec, settings)
    return _pipeline(spec, task, checkpoint, settings), route


def reenact(source: str | os.PathLike, driving: str | os.PathLike, output: str | os.PathLike | None = None, *,
            method: str = "warp", checkpoint: str | os.PathLike | None = None, show_progress: bool | None = None,
            **settings) -> Path | Iterator[np.ndarray]:
    """Animate the photo `source` with the video `driving`; write `output` (returned) or, when it is
    None, return an iterator over the output frames (uint8 (H, W, 3) RGB, the photo's size)."""
    pipeline, route = _loaded("reenact", method, output, checkpoint, settings)
    if route is not None:
        return reenact_crops(pipeline, source, driving, output, options=route, show_progress=show_progress)
    prepared = pipeline.prepare_source(read_image(source), path=source)
    rate, total, audio = video_rate_and_sound(driving)   # a broken driving video fails here

    def frames() -> Iterator[np.ndarray]:
        with VideoReader(driving) as reader:
            yield from pipeline.reenact(prepared, reader, driving_name=driving)
    return deliver(frames(), output, rate, audio=audio, total=total, desc="reenact", show_progress=show_progress)


def talk(source: str | os.PathLike, audio: str | os.PathLike, output: str | os.PathLike | None = None, *,
         method: str = "warp", checkpoint: str | os.PathLike | None = None, show_progress: bool | None = None,
         **settings) -> Path | Iterator[np.ndarray]:
    """Make the photo `source` speak `audio` (any format PyAV decodes); write `output` (returned) or
    return an iterator over the frames. The video lasts as long as the audio (to the nearest frame)."""
    pipeline, route = _loaded("talk", method, output, checkpoint, settings)
    if route is not None:
        return talk_crops(pipeline, source, audio, output, options=route, show_progress=show_progress)
    from ..audio import frame_count

    speech = read_audio(audio, sample_rate=None)
    prepared = pipeline.prepare_source(read_image(source), path=source)
    fps = pipeline.config.fps
    return deliver(pipeline.talk(prepared, speech), output, fps, audio=speech,
                   total=frame_count(speech.duration, fps), desc="talk", show_progress=show_progress)


def edit(video: str | os.PathLike, output: str | os.PathLike | None = None, *, method: str,
         checkpoint: str | os.PathLike | None = None, show_progress: bool | None = None,
         **settings) -> Path | Iterator[np.ndarray]:
    """Edit the face in every frame of `video` (the method's `edit_crops`: crops in, crops out) and paste
    the results back, keeping the sound; write `output` (returned) or return an iterator over the frames.
    `settings` are the pipeline's (the edit itself among them)."""
    if _checked("edit", method, output).kind == "image":
        raise InputError(None, f"--method {method} edits no face crops; edit needs a model of face crops")
    pipeline, route = _loaded("edit", method, output, checkpoint, settings)
    return process_video_crops(pipeline.edit_crops, pipeline, video, output, options=route, desc="edit",
                               show_progress=show_progress)


def load_refiner(method: str, checkpoint, settings: dict, *, coarse_needed: bool):
    """A refining method's pipeline with the coarse animator its settings name (`coarse`,
    `coarse_checkpoint`, `coarse_config` and the coarse model's own options), built in `tasks.coarse`."""
    from .coarse import coarse_animator, split_coarse_settings

    spec = get_method(method)
    name, coarse_checkpoint, coarse_settings, given = split_coarse_settings(spec, settings)
    pipeline = load_pipeline("reenact", method, checkpoint, **settings)
    if not coarse_needed:
        if given:
            raise InputError(None, "--refine-video refines the given video; coarse-animator options do not apply")
        return pipeline
    pipeline.attach_coarse(coarse_animator(name, coarse_checkpoint, pipeline.crop_size, refiner=spec,
                                           **coarse_settings))
    return pipeline


def refine(video: str | os.PathLike, output: str | os.PathLike | None = None, *, method: str,
           checkpoint: str | os.PathLike | None = None, show_progress: bool | None = None,
           **settings) -> Path | Iterator[np.ndarray]:
    """Refine an existing animation `video` frame by frame (FADM's 'direct' mode): its face is tracked,
    cropped, refined and pasted back into each frame; the attribute is measured against its first frame."""
    if output is not None:
        check_output_path(output, "video")
    spec = get_method(method)
    if spec.kind != "refiner":
        refiners = [m.name for m in _refiners()]
        raise InputError(None, f"--refine-video needs a refining method ({', '.join(refiners)}), not {method}")
    route = _crop_settings(spec, settings)
    if route.find_best_frame or route.best_frame is not None:
        raise InputError(None, "--find-best-frame / --best-frame do not apply to --refine-video")
    pipeline = load_refiner(method, checkpoint, settings, coarse_needed=False)
    return process_video_crops(pipeline.refine_crops, pipeline, video, output, options=route, desc="refine",
                               show_progress=show_progress)


def _refiners() -> list[MethodSpec]:
    from ..registry import list_methods

    return [m for m in list_methods() if m.kind == "refiner"]
