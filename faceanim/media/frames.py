"""Frames from either a video file or a folder of images, read one at a time (for evaluation, where
predictions and references come in both forms)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from .audio import Audio
from .image import read_image
from .inputs import check_input_file
from .video import VideoReader

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def natural_key(path: Path) -> list:
    """Sort key that puts frame_2.png before frame_10.png."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class FrameSource:
    """Upright RGB uint8 frames of a video file or of a frame folder (images sorted by name, numbers
    compared as numbers). A folder has no rate of its own: it plays at `folder_fps`."""

    def __init__(self, path: str | os.PathLike, *, folder_fps: float = 25.0):
        path = Path(path)
        self.path = path
        if path.is_dir():
            self._files = sorted((p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES), key=natural_key)
            if not self._files:
                raise InputError(path, f"no image frames ({', '.join(FRAME_SUFFIXES)}) in this folder")
            self._video = None
            self.fps = float(folder_fps)
        else:
            self._files = []
            self._video = VideoReader(check_input_file(path))
            self.fps = self._video.fps

    @property
    def is_folder(self) -> bool:
        return self._video is None

    @property
    def frame_count(self) -> int:
        """Number of frames (from the header for a video: an estimate)."""
        return len(self._files) if self._video is None else self._video.frame_count

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._video is not None:
            yield from self._video
            return
        for file in self._files:
            yield read_image(file)

    def read_audio(self, sample_rate: int = 16000) -> Audio | None:
        """The video's audio track as mono, or None (folders and silent videos)."""
        if self._video is None or not self._video.has_audio:
            return None
        return self._video.read_audio(sample_rate)

    def close(self) -> None:
        if self._video is not None:
            self._video.close()

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
