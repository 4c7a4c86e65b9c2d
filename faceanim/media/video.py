"""Reading and writing video, one frame at a time.

`VideoReader` decodes any video FFmpeg reads into upright RGB frames, optionally resampled to a
constant frame rate by presentation timestamps. `VideoWriter` encodes RGB frames to H.264 (yuv420p),
with an optional AAC soundtrack, and only puts the file in place once it is complete.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import os
import weakref
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import av
import numpy as np

from ..errors import FaceanimError, InputError
from ..fileio import atomic_path
from .inputs import check_input_file, ffmpeg_reason, is_still_image_container, open_container, video_streams
from .limits import MAX_SIDE, MAX_VIDEO_PIXELS, MIN_VIDEO_SIDE
from .orientation import apply_orientation, clockwise_rotation, frame_orientation
from .outputs import VIDEO_SUFFIXES, rgb_array_problem
from .timing import constant_rate, is_variable_rate

if TYPE_CHECKING:
    from .audio import Audio

VFR_PROBE_PACKETS = 120  # how many leading frames' timestamps decide `is_vfr`
MAX_REORDER = 16  # frames a decoder may hold back (B-frames): the most H.264 allows


def check_frame_size(path: Path, width: int, height: int) -> None:
    """Reject frame sizes no real video has (they would only exhaust memory)."""
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_VIDEO_PIXELS:
        raise InputError(path, f"video frames of {width}x{height} are too large "
                               f"(limit {MAX_SIDE} px a side and {MAX_VIDEO_PIXELS:,} pixels)")
    if min(width, height) < MIN_VIDEO_SIDE:
        raise InputError(path, f"video frames of {width}x{height} are too small")


def _rate_or_none(rate: Fraction | None) -> float | None:
    return float(rate) if rate and rate > 0 else None


class VideoReader:
    """Upright RGB frames (`uint8 (H, W, 3)`) of a video file, decoded one at a time.

    `fps=None` yields every decoded frame; `fps=25` resamples to 25 frames per second by presentation
    timestamps (output frame k is the source frame on screen at k / fps), which also makes
    variable-frame-rate video constant. Each iteration starts from the first frame (one iteration at a
    time). Opening checks the file and decodes its first frame, so a reader that opened has a frame.

    Besides the properties: `path`, `source_fps` (the stream's average rate), `duration` (seconds, from
    the header), `has_audio`, `codec_name`.
    """

    def __init__(self, path: str | os.PathLike, *, fps: float | None = None):
        self.path = check_input_file(path)
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        self._requested_fps = None if fps is None else float(fps)
        self._is_vfr: bool | None = None
        container = open_container(self.path)
        try:
            self._read_stream_info(container)
            frames = self._decoded_frames(container)
            first = next(frames, None)
            if first is None:
                raise InputError(self.path, "no video frame could be decoded")
            check_frame_size(self.path, first.width, first.height)
        except BaseException:
            container.close()
            raise
        self._container = container
        self._first_iteration: tuple[av.VideoFrame, Iterator[av.VideoFrame]] | None = (first, frames)
        self._orientation = frame_orientation(first, self._stream_metadata)
        self._stored_size = (first.width, first.height)

    def _read_stream_info(self, container: av.container.InputContainer) -> None:
        """Check the container holds a usable video stream and note its rate, length and metadata."""
        if is_still_image_container(container):
            raise InputError(self.path, "is a still image, not a video")
        streams = video_streams(container)
        if not streams:
            kind = "audio only" if container.streams.audio else "no streams FFmpeg can use"
            raise InputError(self.path, f"has no video stream ({kind})")
        stream = streams[0]
        self._stream_index = stream.index
        if stream.codec_context is None:
            raise InputError(self.path, "its video codec is not supported by this FFmpeg build")
        check_frame_size(self.path, stream.codec_context.width or MIN_VIDEO_SIDE,
                         stream.codec_context.height or MIN_VIDEO_SIDE)
        self.codec_name: str = stream.codec_context.codec.canonical_name
        self._stream_metadata = dict(stream.metadata)
        self._time_base = stream.time_base
        self.has_audio = bool(container.streams.audio)
        self.duration = self._stream_duration(container, stream)
        rate = _rate_or_none(stream.average_rate) or _rate_or_none(stream.guessed_rate)
        rate = rate or _rate_or_none(stream.base_rate)
        if rate is None and stream.frames and self.duration:
            rate = stream.frames / self.duration
        if rate is None:
            raise InputError(self.path, "the video's frame rate cannot be determined")
        self.source_fps = rate
        self.duration = self.duration or (stream.frames / rate if stream.frames else 0.0)
        self._source_frame_count = stream.frames or round(self.duration * rate)

    @staticmethod
    def _stream_duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
        """Seconds of video from the stream's header, else the container's; 0.0 when neither says."""
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        if container.duration:
            return container.duration / av.time_base
        return 0.0

    @property
    def fps(self) -> float:
        """The rate of the frames this reader yields: the `fps` asked for, else the source's average."""
        return self._requested_fps or self.source_fps

    @property
    def frame_count(self) -> int:
        """How many frames iteration yields, from the header (an estimate where the header is wrong)."""
        if self._requested_fps is None:
            return self._source_frame_count
        return max(1, math.ceil(self.duration * self._requested_fps - 1e-6))

    @property
    def width(self) -> int:
        """Width of the upright frames this reader yields."""
        return self._stored_size[1] if self._orientation.transpose else self._stored_size[0]

    @property
    def height(self) -> int:
        """Height of the upright frames this reader yields."""
        return self._stored_size[0] if self._orientation.transpose else self._stored_size[1]

    @property
    def rotation(self) -> int:
        """Degrees (0, 90, 180, 270) the stored frames are turned clockwise to show them upright."""
        return clockwise_rotation(self._orientation)

    @property
    def is_vfr(self) -> bool:
        """True when the first frames' timestamps are not evenly spaced (variable frame rate)."""
        if self._is_vfr is None:
            self._is_vfr = self._detect_vfr()
        return self._is_vfr

    def _detect_vfr(self) -> bool:
        times: list[float] = []
        with open_container(self.path) as container:
            stream = container.streams[self._stream_index]
            try:
                for packet in container.demux(stream):
                    if packet.pts is not None and packet.size:
                        times.append(float(packet.pts * stream.time_base))
                    if len(times) >= VFR_PROBE_PACKETS + MAX_REORDER:
                        break
            except av.FFmpegError:
                pass  # a damaged tail does not change the spacing of the frames before it
        # Packets come in decode order; the earliest presentation times among them have no gaps.
        earliest = sorted(times)[:VFR_PROBE_PACKETS]
        return is_variable_rate(earliest, resolution=float(self._time_base or 0))

    def __iter__(self) -> Iterator[np.ndarray]:
        frames = self._frames_from_start()
        if self._requested_fps is not None:
            frames = constant_rate(self._timed(frames), self._requested_fps, tolerance=self._tolerance())
        previous, previous_rgb = None, None
        for frame in frames:
            if frame is previous:  # a repeated frame (constant-rate output): copy, do not re-convert
                yield previous_rgb.copy()
                continue
            previous, previous_rgb = frame, self._to_rgb(frame)
            yield previous_rgb

    def _frames_from_start(self) -> Iterator[av.VideoFrame]:
        """Decoded frames from the first; the first iteration continues the decode begun at open."""
        if self._first_iteration is not None:
            first, rest = self._first_iteration
            self._first_iteration = None
            yield first
            yield from rest
            return
        self._container.close()
        self._container = open_container(self.path)
        yield from self._decoded_frames(self._container)

    def _decoded_frames(self, container: av.container.InputContainer) -> Iterator[av.VideoFrame]:
        """Decode the video stream; corrupt data raises InputError, a file that ends early just ends."""
        stream = container.streams[self._stream_index]
        stream.thread_type = "AUTO"
        packets = container.demux(stream)
        decoded = 0
        while (packet := self._next_packet(packets)) is not None:
            try:
                frames = stream.decode(packet)
            except av.FFmpegError as error:
                if packet.is_corrupt or self._at_end(packets):
                    frames = self._flush(stream)  # the damaged packet was the last one: truncated
                else:
                    raise InputError(self.path, f"corrupt video data at frame {decoded} "
                                                f"({ffmpeg_reason(error)})") from error
            for frame in frames:
                decoded += 1
                yield frame

    @classmethod
    def _at_end(cls, packets: Iterator[av.Packet]) -> bool:
        """Whether no packet with data follows (consumes the next packet)."""
        packet = cls._next_packet(packets)
        return packet is None or packet.size == 0

    @staticmethod
    def _next_packet(packets: Iterator[av.Packet]) -> av.Packet | None:
        """The next packet (the empty one at the end flushes the decoder); None at the end, or where
        the container data stops making sense (FFmpeg's own tools also end the input there)."""
        try:
            return next(packets)
        except StopIteration:
            return None
        except av.FFmpegError:
            return None

    @staticmethod
    def _flush(stream: av.VideoStream) -> list[av.VideoFrame]:
        try:
            return stream.decode(None)
        except av.FFmpegError:
            return []

    def _timed(self, frames: Iterator[av.VideoFrame]) -> Iterator[tuple[float, float | None, av.VideoFrame]]:
        """(start seconds, duration seconds or None, frame) for the constant-rate resampler."""
        for index, frame in enumerate(frames):
            start = float(frame.time) if frame.time is not None else index / self.source_fps
            duration = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else None
            yield start, duration, frame

    def _tolerance(self) -> float:
        """How late a frame may start and still count as on screen at a tick: the timestamp
        resolution of the container, at most a tenth of an output frame."""
        tick = float(self._time_base) if self._time_base else 0.0
        return min(max(tick, 1e-4), 0.1 / self.fps)

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        try:
            rgb = frame.to_ndarray(format="rgb24")
        except (av.FFmpegError, ValueError) as error:
            raise InputError(self.path, f"cannot convert {frame.format.name} frames to RGB "
                                        f"({ffmpeg_reason(error)})") from error
        return apply_orientation(rgb, self._orientation)

    def read_audio(self, sample_rate: int | None = 16000) -> "Audio":
        """The video's soundtrack, mono, at `sample_rate` (see `read_audio`)."""
        from .audio import read_audio

        return read_audio(self.path, sample_rate)

    def close(self) -> None:
        """Release the file; iterating afterwards re-opens it."""
        self._first_iteration = None
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"VideoReader({os.fspath(self.path)!r}, {self.width}x{self.height}, "
                f"{self.fps:g} fps, ~{self.frame_count} frames)")


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")


def pad_to_even(frame: np.ndarray) -> np.ndarray:
    """`frame` with its last row/column repeated where height/width is odd (yuv420p needs even sizes)."""
    pad_rows, pad_cols = frame.shape[0] % 2, frame.shape[1] % 2
    if not (pad_rows or pad_cols):
        return frame
    return np.pad(frame, ((0, pad_rows), (0, pad_cols), (0, 0)), mode="edge")


def _checked_rgb_frame(frame: object) -> np.ndarray:
    problem = rgb_array_problem(frame)
    if problem:
        raise ValueError(f"video frame: {problem}")
    return frame


class VideoWriter:
    """Encode RGB frames to an H.264 (yuv420p) video, with an optional AAC soundtrack.

    The first frame fixes the size (odd sizes are padded to even by repeating the edge). The file is
    written beside the target under a temporary name and moved into place by `close()`; an exception
    inside the `with` block, or closing without frames, leaves nothing behind. The soundtrack is cut or
    padded with silence to exactly the video's length (frames / fps).
    """

    def __init__(self, path: str | os.PathLike, fps: float, *, crf: int = 18, preset: str = "medium",
                 audio: "Audio | None" = None):
        self.path = Path(path)
        if self.path.suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError(f"{self.path}: the video file name must end in one of {', '.join(VIDEO_SUFFIXES)}")
        if not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        if not (isinstance(crf, numbers.Integral) and 0 <= crf <= 51):
            raise ValueError(f"crf must be an integer from 0 to 51, got {crf!r}")
        if preset not in X264_PRESETS:
            raise ValueError(f"preset must be one of {', '.join(X264_PRESETS)}, got {preset!r}")
        self.fps = float(fps)
        self._rate = Fraction(fps).limit_denominator(1001)
        self._crf, self._preset = int(crf), preset
        self._soundtrack = None if audio is None else _aac_ready(audio)
        self._audio_position = 0  # soundtrack samples encoded so far
        self._frames_written = 0
        self._size: tuple[int, int] | None = None  # (height, width) of the frames given
        self._container = self._video = self._audio = None
        self._closed = False
        self._atomic = atomic_path(self.path)
        self._temporary = self._atomic.__enter__()
        # A writer dropped without close() still removes its temporary file.
        self._cleanup = weakref.finalize(self, _remove_if_present, self._temporary)

    @property
    def frames_written(self) -> int:
        return self._frames_written

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 (H, W, 3) RGB frame; all frames must have the first one's size."""
        if self._closed:
            raise ValueError(f"{self.path}: the writer is closed")
        frame = _checked_rgb_frame(frame)
        if self._size is None:
            self._size = frame.shape[:2]
            self._start(*pad_to_even(frame).shape[:2])
        elif frame.shape[:2] != self._size:
            raise ValueError(f"{self.path}: frame {self._frames_written} is {frame.shape[1]}x{frame.shape[0]}, "
                             f"but the video is {self._size[1]}x{self._size[0]}")
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(pad_to_even(frame)), format="rgb24")
        picture = picture.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
        picture.pts = self._frames_written
        self._container.mux(self._video.encode(picture))
        self._frames_written += 1
        if self._audio is not None:  # keep the soundtrack level with the picture (interleaved file)
            self._encode_audio(math.floor(self._frames_written / self._rate * self._soundtrack.sample_rate))

    def _start(self, height: int, width: int) -> None:
        """Open the container and its streams, sized for the first frame."""
        mp4_like = self.path.suffix.lower() != ".mkv"
        self._container = av.open(os.fspath(self._temporary), mode="w",
                                  options={"movflags": "+faststart"} if mp4_like else {})
        video = self._container.add_stream("libx264", rate=self._rate,
                                           options={"crf": str(self._crf), "preset": self._preset})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        context = video.codec_context
        context.time_base = 1 / self._rate
        context.thread_count = 0  # libx264 picks the thread count for the machine
        # Tag the colours reformat() writes (BT.709, limited range) so that players do not guess.
        context.colorspace = context.color_primaries = context.color_trc = 1  # AVCOL_*_BT709
        context.color_range = 1  # AVCOL_RANGE_MPEG
        self._video = video
        if self._soundtrack is not None:
            channels = self._soundtrack.channels
            self._audio = self._container.add_stream("aac", rate=self._soundtrack.sample_rate,
                                                     layout="mono" if channels == 1 else "stereo")
        self._container.start_encoding()

    def _encode_audio(self, end: int, *, final: bool = False) -> None:
        """Encode the soundtrack up to sample `end` (silence past its end), in whole AAC frames
        unless `final` (only the last frame may be short)."""
        frame_size = self._audio.codec_context.frame_size or 1024
        rate = self._soundtrack.sample_rate
        while end - self._audio_position >= (1 if final else frame_size):
            count = min(frame_size, end - self._audio_position)
            chunk = np.zeros((self._soundtrack.channels, count), dtype=np.float32)
            available = self._soundtrack.samples[self._audio_position:self._audio_position + count]
            chunk[:, :available.shape[0]] = available.T  # (n,) or (n, C); none left: silence
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self._audio.codec_context.layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, self._audio_position, Fraction(1, rate)
            self._container.mux(self._audio.encode(frame))
            self._audio_position += count

    def close(self) -> None:
        """Finish the file and move it into place; without frames, raise FaceanimError and leave none."""
        if self._closed:
            return
        try:
            if self._frames_written == 0:
                raise FaceanimError(f"{self.path}: no frames were written")
            self._container.mux(self._video.encode(None))
            if self._audio is not None:
                self._encode_audio(round(self._frames_written / self._rate * self._soundtrack.sample_rate),
                                   final=True)
                self._container.mux(self._audio.encode(None))
            self._container.close()
        except BaseException as error:
            self._abort(error)
            raise
        self._closed = True
        self._cleanup.detach()
        self._atomic.__exit__(None, None, None)

    def _abort(self, error: BaseException) -> None:
        """Drop the unfinished file."""
        self._closed = True
        if self._container is not None:
            try:
                self._container.close()
            except (av.FFmpegError, OSError, ValueError):
                pass  # the file is being discarded; the original error is the one to report
        self._cleanup.detach()
        self._atomic.__exit__(type(error), error, error.__traceback__)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is None:
            self.close()
        elif not self._closed:
            self._abort(error)


def _remove_if_present(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _aac_ready(audio: "Audio") -> "Audio":
    """`audio` at a sample rate and channel count the AAC encoder takes (mono or stereo)."""
    from .audio import Audio

    if audio.channels > 2:
        audio = audio.mono()
    rates = av.codec.Codec("aac", "w").audio_rates or ()
    if rates and audio.sample_rate not in rates:
        audio = audio.resample(48000)
    return Audio(np.ascontiguousarray(audio.samples), audio.sample_rate)


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float, *, audio: "Audio | None" = None,
                total: int | None = None, desc: str = "write", show_progress: bool | None = None) -> Path:
    """Encode `frames` (uint8 (H, W, 3) RGB, streamed) to `path` with an optional soundtrack, showing a
    progress bar of `total` frames; the file appears only once complete (see `VideoWriter`)."""
    from ..progress import progress

    with VideoWriter(path, fps, audio=audio) as writer:
        for frame in progress(frames, total=total, desc=desc, enabled=show_progress):
            writer.write(frame)
    return Path(path)


def video_rate_and_sound(path: str | os.PathLike) -> tuple[float, int, "Audio | None"]:
    """A video's frame rate, frame count and soundtrack (None when it has none), read once up front."""
    with VideoReader(path) as reader:
        return reader.fps, reader.frame_count, reader.read_audio(sample_rate=None) if reader.has_audio else None
