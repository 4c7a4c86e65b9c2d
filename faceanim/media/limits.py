"""Size limits for inputs, checked before decoding so a hostile or broken file cannot exhaust memory."""
from __future__ import annotations

MAX_IMAGE_PIXELS = 80_000_000  # a still image (a 10000x8000 photo still fits)
MAX_VIDEO_PIXELS = 4096 * 4096  # one video frame (DCI 4K fits)
MAX_SIDE = 16384  # the longest side of an image or a video frame
MIN_SIDE = 8  # the shortest side of an image; smaller cannot hold a face
MIN_VIDEO_SIDE = 2  # the shortest side of a video frame
MAX_AUDIO_SECONDS = 3 * 3600  # decoded audio is held in memory as float32
