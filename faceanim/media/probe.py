"""What a media file is (image, video or audio) and its basic facts, checked by actually decoding it.

The kind is decided from the file's content, never from its name: image signatures go to Pillow,
everything else to FFmpeg.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image

from ..errors import InputError
from .audio import decoded_audio_frames, first_audio_stream
from .image import read_image
from .inputs import check_input_file, is_still_image_container, open_container, video_streams
from .video import VideoReader

KINDS = ("image", "video", "audio")


@dataclass
class MediaInfo:
    """Facts about a media file; fields that do not apply to its kind are None."""

    path: str
    kind: str  # "image" | "video" | "audio"
    width: int | None = None  # upright (after EXIF orientation / display rotation)
    height: int | None = None
    fps: float | None = None
    frame_count: int | None = None  # from the header: an estimate for some containers
    duration: float | None = None  # seconds
    rotation: int = 0  # degrees clockwise a player turns the stored video frames
    is_vfr: bool = False
    has_audio: bool = False
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    video_codec: str | None = None  # for images, the image format ("PNG", "JPEG", ...)
    audio_codec: str | None = None
    container: str | None = None  # FFmpeg's demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def looks_like_image(path: Path) -> bool:
    """Whether the file starts with a PNG, JPEG, BMP or WebP signature."""
    with open(path, "rb") as file:
        head = file.read(12)
    return (head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM"))
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"))


def probe(path: str | os.PathLike, *, expect: str | tuple[str, ...] | None = None) -> MediaInfo:
    """Describe a media file after checking that it decodes (an image fully, a video's first frame,
    an audio stream's first samples).

    `expect` names the kind(s) the caller can use; anything else raises InputError (a video with a
    soundtrack counts as audio too). Any broken, unsupported or unexpected file raises InputError."""
    path = check_input_file(path)
    expected = (expect,) if isinstance(expect, str) else tuple(expect or ())
    unknown = set(expected) - set(KINDS)
    if unknown:
        raise ValueError(f"expect must name kinds among {KINDS}, got {sorted(unknown)}")
    if looks_like_image(path):
        info = _probe_image(path)
    else:
        info = _probe_streams(path, check_audio=not expected or "audio" in expected)
    problem = _kind_problem(info, expected)
    if problem:
        raise InputError(path, problem)
    return info


def _kind_problem(info: MediaInfo, expected: tuple[str, ...]) -> str | None:
    """Why a file of this kind does not serve a caller expecting `expected`; None if it does."""
    if not expected or info.kind in expected or ("audio" in expected and info.has_audio):
        return None
    if info.kind == "video" and expected == ("audio",):
        return "has no audio stream (it is a video without sound)"
    names = {"image": "an image", "video": "a video", "audio": "an audio file"}
    return f"is {names[info.kind]}, not {' or '.join(names[kind] for kind in expected)}"


def _probe_image(path: Path) -> MediaInfo:
    rgb = read_image(path)
    with Image.open(path) as image:
        image_format = image.format
    return MediaInfo(path=os.fspath(path), kind="image", width=rgb.shape[1], height=rgb.shape[0],
                     video_codec=image_format)


def _probe_streams(path: Path, *, check_audio: bool) -> MediaInfo:
    """Video (possibly with sound) or audio-only file info; the sound is decoded when it matters."""
    with open_container(path) as container:
        if is_still_image_container(container):  # an image without a known signature: Pillow decides
            return _probe_image(path)
        has_video, has_audio = bool(video_streams(container)), bool(container.streams.audio)
        if not (has_video or has_audio):
            raise InputError(path, "has no video or audio stream")
        info = MediaInfo(path=os.fspath(path), kind="video" if has_video else "audio",
                         container=container.format.name, has_audio=has_audio)
        if has_audio and (check_audio or not has_video):
            stream = first_audio_stream(path, container)
            next(iter(decoded_audio_frames(path, container, stream)))
        if has_audio:
            _add_audio_facts(info, container)
    if has_video:
        _add_video_facts(path, info)
    return info


def _add_audio_facts(info: MediaInfo, container: av.container.InputContainer) -> None:
    stream = container.streams.audio[0]
    context = stream.codec_context
    if context is not None:
        info.audio_codec = context.codec.canonical_name
        info.audio_sample_rate = context.sample_rate or None
        info.audio_channels = context.layout.nb_channels or None
    if info.kind == "audio":
        info.duration = _audio_duration(container, stream)


def _audio_duration(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else None


def _add_video_facts(path: Path, info: MediaInfo) -> None:
    with VideoReader(path) as reader:
        info.width, info.height, info.fps = reader.width, reader.height, reader.fps
        info.frame_count, info.duration, info.rotation = reader.frame_count, reader.duration, reader.rotation
        info.is_vfr = reader.is_vfr
        info.video_codec = reader.codec_name
