"""Media I/O: video, image and audio files in and out, as uint8 RGB frames and float32 samples.

This package knows nothing about faces. Every bad input raises `faceanim.errors.InputError` with a
one-line message naming the file. torch loads only when `to_tensor` / `from_tensor` is first used.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .audio import Audio, read_audio, write_wav
from .image import read_image, write_image
from .outputs import check_output_path, rgb_array_problem
from .limits import MAX_AUDIO_SECONDS, MAX_IMAGE_PIXELS, MAX_SIDE, MAX_VIDEO_PIXELS, MIN_SIDE, MIN_VIDEO_SIDE
from .probe import MediaInfo, probe
from .video import VideoReader, VideoWriter, video_rate_and_sound, write_video

if TYPE_CHECKING:
    from .convert import from_tensor, to_tensor

__all__ = [
    "VideoReader", "VideoWriter", "write_video", "video_rate_and_sound", "Audio", "read_audio", "write_wav", "read_image", "write_image",
    "probe", "MediaInfo", "to_tensor", "from_tensor", "check_output_path", "rgb_array_problem",
    "MAX_IMAGE_PIXELS", "MAX_VIDEO_PIXELS", "MAX_SIDE", "MIN_SIDE", "MIN_VIDEO_SIDE", "MAX_AUDIO_SECONDS",
]


def __getattr__(name: str) -> Any:
    if name in ("to_tensor", "from_tensor"):
        from . import convert

        return getattr(convert, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
