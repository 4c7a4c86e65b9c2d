"""Small media files made at test time: patterned frames, sines, videos with chosen timestamps or
rotation, and hand-built PNG bytes. Deterministic: the same call writes the same content."""
from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np


def pattern_frame(width: int, height: int, index: int) -> np.ndarray:
    """A smooth colour gradient with a bright square that moves with `index` (uint8 RGB)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frame = np.stack([64 + 120 * x / max(width - 1, 1), 64 + 120 * y / max(height - 1, 1),
                      np.full_like(x, 40.0 + 4 * (index % 30))], axis=-1)
    side = max(4, min(width, height) // 4)
    left, top = (3 * index) % max(width - side, 1), (2 * index) % max(height - side, 1)
    frame[top:top + side, left:left + side] = (230, 230, 200)
    return np.round(frame).astype(np.uint8)


def level_frame(width: int, height: int, level: int) -> np.ndarray:
    """A flat grey frame: its mean identifies it after lossy coding."""
    return np.full((height, width, 3), level, dtype=np.uint8)


def sine(frequency: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def write_h264(path: Path, frames: Sequence[np.ndarray], *, times: Sequence[float] | None = None,
               fps: float = 25, rotation: int | None = None, faststart: bool = False,
               time_base: Fraction = Fraction(1, 1000)) -> Path:
    """Encode frames with PyAV directly (single-threaded, so the bytes are reproducible).

    `times` gives each frame's start in seconds (variable frame rate; the last frame lasts as long as
    the gap before it); `rotation` sets a display matrix (degrees counter-clockwise)."""
    container = av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {})
    stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001),
                                  options={"preset": "ultrafast", "crf": "10", "threads": "1"})
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = "yuv420p"
    if rotation is not None:
        stream.set_display_rotation(rotation)
    if times is not None:
        stream.codec_context.time_base = time_base
    durations = {}  # pts -> duration; the muxer needs it for the last frame of a VFR stream
    for index, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        if times is not None:
            last = index + 1 == len(frames)
            following = 2 * times[index] - times[index - 1] if last else times[index + 1]
            frame.pts = round(times[index] / time_base)
            durations[frame.pts] = round((following - times[index]) / time_base)
        else:
            frame.pts = index
        _mux_with_durations(container, stream.encode(frame), durations)
    _mux_with_durations(container, stream.encode(None), durations)
    container.close()
    return path


def _mux_with_durations(container: av.container.OutputContainer, packets: list[av.Packet],
                        durations: dict[int, int]) -> None:
    for packet in packets:
        if packet.pts in durations:
            packet.duration = durations[packet.pts]
        container.mux(packet)


def write_audio_file(path: Path, samples: np.ndarray, rate: int, *, codec: str, sample_format: str,
                     container_format: str | None = None) -> Path:
    """Encode float samples ((N,) mono or (N, C)) with any PyAV audio encoder into any container."""
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    planar = samples.reshape(samples.shape[0], channels).T.astype(np.float32)
    container = av.open(str(path), "w", format=container_format)
    stream = container.add_stream(codec, rate=rate, layout="mono" if channels == 1 else "stereo")
    stream.codec_context.format = sample_format
    container.start_encoding()
    frame_size = stream.codec_context.frame_size or 1024
    for start in range(0, planar.shape[1], frame_size):
        chunk = planar[:, start:start + frame_size]
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp",
                                           layout=stream.codec_context.layout)
        frame.sample_rate, frame.pts = rate, start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(pixels: np.ndarray | None, *, width: int | None = None, height: int | None = None,
              bit_depth: int = 8, color_type: int = 2) -> bytes:
    """A PNG built by hand: any bit depth / colour type, or a header alone (`pixels=None`)."""
    if pixels is not None:
        height, width = pixels.shape[:2]
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))
    body = b""
    if pixels is not None:
        dtype = ">u2" if bit_depth == 16 else "u1"
        rows = pixels.astype(dtype).reshape(height, -1)
        raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on every row
        body = png_chunk(b"IDAT", zlib.compress(raw))
    return b"\x89PNG\r\n\x1a\n" + header + body + png_chunk(b"IEND", b"")


def write_mp3_with_cover(path: Path, samples: np.ndarray, rate: int) -> Path:
    """A mono MP3 carrying album art: a one-picture video stream flagged as an attached picture."""
    container = av.open(str(path), "w")
    sound = container.add_stream("libmp3lame", rate=rate, layout="mono")
    cover = container.add_stream("mjpeg", rate=1)
    cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
    cover.disposition = av.stream.Disposition.attached_pic
    container.start_encoding()
    picture = av.VideoFrame.from_ndarray(pattern_frame(32, 32, 0), format="rgb24")
    container.mux(cover.encode(picture) + cover.encode(None))
    frame_size = sound.codec_context.frame_size
    for start in range(0, samples.size, frame_size):
        frame = av.AudioFrame.from_ndarray(samples[None, start:start + frame_size].astype(np.float32),
                                           format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        container.mux(sound.encode(frame))
    container.mux(sound.encode(None))
    container.close()
    return path
