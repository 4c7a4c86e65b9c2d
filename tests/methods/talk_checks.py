"""What every talking-head method's end-to-end test needs: a speech-like audio file, and the check that a talk
video has the photo's size, the audio, and as many frames as the audio lasts."""
from __future__ import annotations

from pathlib import Path

import numpy as np

import faceanim
from faceanim.media import probe, read_audio
from tests.media.synthetic import write_audio_file

FPS = 25


def speech_file(path: Path, seconds: float, rate: int = 16000, channels: int = 1, codec: str = "pcm_s16le",
                sample_format: str = "s16", loud: bool = True) -> Path:
    """A 180 Hz tone pulsing at 3 Hz (silence with loud=False), written with PyAV."""
    t = np.arange(int(seconds * rate)) / rate
    voice = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    voice = voice if loud else np.zeros_like(voice)
    samples = np.stack([voice] * channels, axis=1) if channels > 1 else voice
    return write_audio_file(path, samples, rate, codec=codec, sample_format=sample_format)


def check_talk_video(out: Path, size: tuple[int, int], seconds: float, fps: float = FPS) -> None:
    info = probe(out)
    assert (info.width, info.height) == size
    assert info.has_audio
    frames = sum(1 for _ in faceanim.media.VideoReader(out))
    assert abs(frames - seconds * fps) <= 1
    assert abs(read_audio(out).duration - seconds) <= 1 / fps
