"""Opening input files with one-line `InputError`s instead of raw OS or FFmpeg exceptions."""
from __future__ import annotations

import os
from pathlib import Path

import av

from ..errors import InputError

# FFmpeg demuxers that read a single still image; such a file is an image, never a video.
IMAGE_DEMUXERS = frozenset({"image2", "image2pipe"})


def check_input_file(path: str | os.PathLike) -> Path:
    """Return `path` as a Path if it names a readable, non-empty regular file; else raise InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, not a file")
    if not path.is_file():
        raise InputError(path, "is not a regular file")
    if not os.access(path, os.R_OK):
        raise InputError(path, "permission denied")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    return path


def ffmpeg_reason(error: BaseException) -> str:
    """FFmpeg's short reason for a failure, without the file name PyAV appends to it."""
    if isinstance(error, av.FFmpegError) and error.strerror:
        return error.strerror
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def open_container(path: Path) -> av.container.InputContainer:
    """Open a media container for reading; a file FFmpeg cannot parse raises InputError."""
    try:
        container = av.open(os.fspath(path), mode="r", metadata_errors="replace")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise InputError(path, f"not a readable media file ({ffmpeg_reason(error)})") from error
    return container


def is_still_image_container(container: av.container.InputContainer) -> bool:
    """True when FFmpeg opened the file with one of its still-image demuxers (png_pipe, image2, ...)."""
    names = set(container.format.name.split(","))
    return bool(names & IMAGE_DEMUXERS) or any(name.endswith("_pipe") for name in names)


def video_streams(container: av.container.InputContainer) -> list[av.VideoStream]:
    """The container's video streams, leaving out cover art (an attached picture is not a video)."""
    return [stream for stream in container.streams.video
            if not stream.disposition & av.stream.Disposition.attached_pic]
