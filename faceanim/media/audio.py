"""Audio as float32 samples: reading any audio FFmpeg decodes, resampling (soxr), writing WAV.

Samples are float32 in [-1, 1]; mono audio is `(N,)`, multichannel `(N, C)`.
"""
from __future__ import annotations

import os
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from ..errors import InputError
from ..fileio import atomic_path
from .inputs import check_input_file, ffmpeg_reason, is_still_image_container, open_container, video_streams
from .limits import MAX_AUDIO_SECONDS

# Full scale of each integer sample type FFmpeg decodes to (unsigned 8-bit is offset by 128).
_INTEGER_FULL_SCALE = {np.dtype(np.uint8): 128.0, np.dtype(np.int16): 32768.0,
                       np.dtype(np.int32): 2.0 ** 31, np.dtype(np.int64): 2.0 ** 63}


@dataclass
class Audio:
    """A clip of audio: float32 `samples`, `(N,)` mono or `(N, C)`, at `sample_rate` Hz."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        self.samples = np.asarray(self.samples, dtype=np.float32)
        if self.samples.ndim not in (1, 2):
            raise ValueError(f"audio samples must be (N,) or (N, C), got shape {self.samples.shape}")
        if int(self.sample_rate) != self.sample_rate or self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer, got {self.sample_rate!r}")
        self.sample_rate = int(self.sample_rate)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.shape[0] / self.sample_rate

    @property
    def channels(self) -> int:
        return 1 if self.samples.ndim == 1 else self.samples.shape[1]

    def resample(self, rate: int) -> "Audio":
        """This audio at `rate` Hz (soxr, high quality); the same object if the rate already matches."""
        if rate == self.sample_rate:
            return self
        if int(rate) != rate or rate <= 0:
            raise ValueError(f"sample rate must be a positive integer, got {rate!r}")
        import soxr

        if self.samples.shape[0] == 0:
            return Audio(self.samples.copy(), int(rate))
        resampled = soxr.resample(self.samples, self.sample_rate, int(rate), quality="HQ")
        return Audio(np.ascontiguousarray(resampled, dtype=np.float32), int(rate))

    def mono(self) -> "Audio":
        """This audio with its channels averaged into one."""
        if self.samples.ndim == 1:
            return self
        return Audio(self.samples.mean(axis=1, dtype=np.float32), self.sample_rate)


def frame_samples(frame: av.AudioFrame) -> np.ndarray:
    """A decoded audio frame as float32 `(channels, samples)` in [-1, 1], whatever its sample format."""
    data = frame.to_ndarray()
    channels = frame.layout.nb_channels
    if not frame.format.is_planar:  # packed: one row of interleaved samples
        data = data.reshape(-1, channels).T
    if data.dtype in _INTEGER_FULL_SCALE:
        offset = 128.0 if data.dtype == np.uint8 else 0.0
        return ((data.astype(np.float32) - offset) / _INTEGER_FULL_SCALE[data.dtype]).astype(np.float32)
    return data.astype(np.float32, copy=False)


def read_audio(path: str | os.PathLike, sample_rate: int | None = 16000, *, mono: bool = True) -> Audio:
    """Decode the first audio stream of any file FFmpeg reads (wav, mp3, m4a, flac, ogg, a video).

    Channels are averaged into one unless `mono=False` (then samples are `(N, C)`); the audio is
    resampled to `sample_rate` with soxr (None keeps the file's rate). Digital silence is valid.
    Raises InputError for a missing or unreadable file, no audio stream, or no samples."""
    path = check_input_file(path)
    with open_container(path) as container:
        stream = first_audio_stream(path, container)
        chunks, native_rate = _decode_audio(path, container, stream)
    samples = np.concatenate(chunks, axis=1)
    audio = Audio(samples.mean(axis=0) if mono else samples.T, native_rate)
    return audio if sample_rate is None else audio.resample(sample_rate)


def first_audio_stream(path: Path, container: av.container.InputContainer) -> av.AudioStream:
    """The container's first audio stream, checked to be decodable and not absurdly long."""
    if not container.streams.audio:
        kind = "video only" if video_streams(container) else "no streams FFmpeg can use"
        kind = "it is a still image" if is_still_image_container(container) else kind
        raise InputError(path, f"has no audio stream ({kind})")
    stream = container.streams.audio[0]
    if stream.codec_context is None:
        raise InputError(path, "its audio codec is not supported")
    _check_declared_length(path, container, stream)
    return stream


def _check_declared_length(path: Path, container: av.container.InputContainer, stream: av.AudioStream) -> None:
    seconds = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
    if seconds is None and container.duration:
        seconds = container.duration / av.time_base
    if seconds is not None and seconds > MAX_AUDIO_SECONDS:
        raise InputError(path, f"audio is {seconds / 3600:.1f} h long; the limit is "
                               f"{MAX_AUDIO_SECONDS / 3600:g} h")


def _decode_audio(path: Path, container: av.container.InputContainer,
                  stream: av.AudioStream) -> tuple[list[np.ndarray], int]:
    """All decoded samples as float32 `(C, n)` chunks, and their rate."""
    chunks: list[np.ndarray] = []
    native_rate, total, largest_frame = None, 0, 0
    for frame in decoded_audio_frames(path, container, stream):
        native_rate = native_rate or frame.sample_rate
        if frame.sample_rate != native_rate:
            raise InputError(path, "the audio sample rate changes in the middle of the stream")
        chunks.append(frame_samples(frame))
        total, largest_frame = total + frame.samples, max(largest_frame, frame.samples)
        if total > MAX_AUDIO_SECONDS * native_rate:
            raise InputError(path, f"audio is longer than the {MAX_AUDIO_SECONDS / 3600:g} h limit")
    chunks = _same_channel_count(chunks)
    # Encoders pad the last frame (AAC to 1024 samples); the stream's declared length says where the
    # sound ends. A bigger difference means the header is wrong, and the decoded samples win.
    if stream.duration and stream.time_base:
        declared = round(stream.duration * stream.time_base * native_rate)
        if 0 < total - declared < largest_frame:
            chunks = [np.concatenate(chunks, axis=1)[:, :declared]]
    return chunks, native_rate


def decoded_audio_frames(path: Path, container: av.container.InputContainer,
                         stream: av.AudioStream) -> Iterator[av.AudioFrame]:
    """The non-empty decoded frames of `stream`, streamed. Undecodable packets are skipped and damaged
    container data ends the stream, as players do; InputError if nothing at all decodes."""
    decoded, last_error = 0, None
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.FFmpegError:
            break  # the container ends in damaged data: keep what came before it
        try:
            frames = stream.decode(packet)
        except av.FFmpegError as error:
            last_error = error
            continue
        for frame in frames:
            if frame.samples:
                decoded += 1
                yield frame
    if decoded == 0 and last_error is not None:
        raise InputError(path, f"contains no decodable audio ({ffmpeg_reason(last_error)})")
    if decoded == 0:
        raise InputError(path, "contains no audio samples")


def _same_channel_count(chunks: list[np.ndarray]) -> list[np.ndarray]:
    """Chunks with one channel count: streams that change layout mid-way are mixed down to mono."""
    if len({chunk.shape[0] for chunk in chunks}) <= 1:
        return chunks
    return [chunk.mean(axis=0, keepdims=True) for chunk in chunks]


def write_wav(path: str | os.PathLike, audio: Audio) -> Path:
    """Write `audio` as 16-bit PCM WAV (clipped to [-1, 1]), atomically; returns the path."""
    samples = np.clip(audio.samples, -1.0, 1.0)
    pcm = np.round(samples * 32767.0).astype("<i2")
    path = Path(path)
    with atomic_path(path) as tmp:
        with wave.open(os.fspath(tmp), "wb") as wav:
            wav.setnchannels(audio.channels)
            wav.setsampwidth(2)
            wav.setframerate(audio.sample_rate)
            wav.writeframes(pcm.tobytes())
    return path
