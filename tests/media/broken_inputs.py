"""A battery of broken media files, generated at test time, for checking that every reader fails
with a one-line `InputError` naming the file (and nothing else escapes).

`make_broken_inputs(folder)` writes the files (all small, deterministic) and returns them with the
kind of reader that must reject each: "image" (read_image), "video" (VideoReader) or "audio"
(read_audio); `probe(path, expect=kind)` must reject them too, except where `probe_detects` is False
(damage deep inside a stream that only a full decode reaches).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from .synthetic import level_frame, pattern_frame, png_bytes, png_chunk, sine, write_audio_file, write_h264

Kind = Literal["image", "video", "audio"]
CORRUPT_MIDWAY = "corrupt_frames_midway.mp4"  # fine at the start: only a full decode finds the damage


@dataclass(frozen=True)
class BrokenInput:
    name: str
    path: Path
    kind: Kind
    probe_detects: bool = True


def _random_bytes(size: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def _valid_mp4(path: Path, *, faststart: bool = False, frames: int = 12) -> bytes:
    write_h264(path, [pattern_frame(64, 48, i) for i in range(frames)], faststart=faststart)
    return path.read_bytes()


def _valid_m4a(scratch: Path) -> bytes:
    return write_audio_file(scratch / "valid.m4a", sine(440, 1.0, 16000), 16000, codec="aac",
                            sample_format="fltp").read_bytes()


def _valid_png() -> bytes:
    return png_bytes(pattern_frame(32, 32, 0))


def _valid_jpeg(path: Path) -> bytes:
    Image.fromarray(pattern_frame(64, 64, 3)).save(path, format="JPEG", quality=90)
    return path.read_bytes()


def _wav_bytes(*, channels: int = 1, rate: int = 16000, bits: int = 16, data: bytes = b"",
               format_tag: int = 1) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _mov_with_declared_size(path: Path, width: int, height: int) -> bytes:
    """A raw-video .mov whose sample description claims `width` x `height` (the data is 16x16)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "rgb24"
        for _ in range(2):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(level_frame(16, 16, 90), format="rgb24")))
        container.mux(stream.encode(None))
    data = bytearray(path.read_bytes())
    entry = data.index(b"raw ") - 4  # the sample entry starts with its 4-byte size
    size_at = entry + 8 + 6 + 2 + 2 + 2 + 4 + 4 + 4  # header, reserved, data ref, version, revision, vendor, quality
    data[size_at:size_at + 4] = struct.pack(">HH", width, height)
    return bytes(data)


def _corrupt_box(data: bytes, box: bytes) -> bytes:
    """`data` with the payload of the first `box` atom overwritten with 0xFF bytes."""
    start = data.index(box) + 4
    size = struct.unpack(">I", data[start - 8:start - 4])[0]
    return data[:start] + b"\xff" * (size - 8) + data[start + size - 8:]


def _corrupt_middle(data: bytes) -> bytes:
    """`data` with a stretch in the middle of its `mdat` (coded frames) replaced by zeros."""
    begin, end = data.index(b"mdat") + 4, data.index(b"moov")
    first, last = begin + (end - begin) // 3, begin + (end - begin) // 2
    return data[:first] + bytes(last - first) + data[last:]


def _broken_videos(scratch: Path, mp4: bytes, text: bytes) -> list[tuple[str, Kind, bytes]]:
    mp4_faststart = _valid_mp4(scratch / "valid_faststart.mp4", faststart=True)
    return [
        ("empty.mp4", "video", b""),
        ("text_renamed.mp4", "video", text),
        ("garbage.mp4", "video", _random_bytes(4096, seed=1)),
        ("ftyp_then_garbage.mp4", "video", mp4[:32] + _random_bytes(4096, seed=2)),
        ("truncated_10_bytes.mp4", "video", mp4[:10]),
        ("truncated_1kb.mp4", "video", mp4[:1024]),
        ("truncated_half.mp4", "video", mp4[: len(mp4) // 2]),
        ("faststart_without_frames.mp4", "video", mp4_faststart[: mp4_faststart.index(b"mdat") + 4]),
        ("moov_corrupted.mp4", "video", _corrupt_box(mp4, b"moov")),
        ("trak_corrupted.mp4", "video", _corrupt_box(mp4, b"trak")),
        ("audio_only.mp4", "video", _valid_m4a(scratch)),
        ("image_as_video.png", "video", _valid_png()),
        ("jpeg_as_video.jpg", "video", _valid_jpeg(scratch / "valid.jpg")),
        ("absurd_dimensions.mov", "video", _mov_with_declared_size(scratch / "raw.mov", 8000, 8000)),
        ("absurd_dimensions.y4m", "video", b"YUV4MPEG2 W20000 H20000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(64)),
        (CORRUPT_MIDWAY, "video", _corrupt_middle(mp4)),
    ]


def _broken_images(scratch: Path, mp4: bytes, text: bytes) -> list[tuple[str, Kind, bytes]]:
    png, jpeg = _valid_png(), _valid_jpeg(scratch / "valid.jpg")
    gif = scratch / "anim.gif"
    Image.fromarray(pattern_frame(32, 32, 0)).save(gif, format="GIF")
    return [
        ("empty.png", "image", b""),
        ("empty.jpg", "image", b""),
        ("text_renamed.png", "image", text),
        ("garbage.jpg", "image", _random_bytes(2048, seed=3)),
        ("bomb_50000x50000.png", "image", png_bytes(None, width=50000, height=50000)),
        ("one_pixel.png", "image", png_bytes(np.zeros((1, 1, 3), np.uint8))),
        ("four_by_four.png", "image", png_bytes(np.zeros((4, 4, 3), np.uint8))),
        ("truncated_header.jpg", "image", jpeg[:20]),
        ("truncated_half.jpg", "image", jpeg[: len(jpeg) // 2]),
        ("truncated_data.png", "image", png[: len(png) * 2 // 3]),
        ("bad_header_crc.png", "image", png[:29] + b"\x00\x00\x00\x00" + png[33:]),  # IHDR's CRC
        ("corrupt_pixel_data.png", "image", png[:33] + png_chunk(b"IDAT", _random_bytes(300, seed=4))
         + png_chunk(b"IEND", b"")),
        ("zero_width.png", "image", png_bytes(None, width=0, height=32)),
        ("video_as_image.mp4", "image", mp4),
        ("unsupported_format.gif", "image", gif.read_bytes()),
    ]


def _broken_audio(scratch: Path, mp4: bytes, text: bytes) -> list[tuple[str, Kind, bytes]]:
    m4a = _valid_m4a(scratch)
    html = b"<html><body><h1>404 Not Found</h1></body></html>\n" * 10
    return [
        ("empty.wav", "audio", b""),
        ("empty.mp3", "audio", b""),
        ("text_renamed.wav", "audio", text),
        ("html_renamed.mp3", "audio", html),
        ("garbage.mp3", "audio", _random_bytes(8192, seed=5)),
        ("zero_samples.wav", "audio", _wav_bytes()),
        ("bogus_header.wav", "audio", _wav_bytes(channels=0, rate=0, bits=16, data=bytes(3200))),
        ("unknown_codec.wav", "audio", _wav_bytes(format_tag=0x7777, data=_random_bytes(3200, seed=6))),
        ("truncated_header.wav", "audio", _wav_bytes(data=bytes(3200))[:20]),
        ("truncated_half.m4a", "audio", m4a[: len(m4a) // 2]),
        ("video_without_audio.mp4", "audio", mp4),
        ("image_as_audio.png", "audio", _valid_png()),
    ]


def make_broken_inputs(folder: Path) -> list[BrokenInput]:
    """Write the broken files into `folder` (created if needed; valid originals go to `_valid/`)."""
    folder = Path(folder)
    scratch = folder / "_valid"
    scratch.mkdir(parents=True, exist_ok=True)
    mp4 = _valid_mp4(scratch / "valid.mp4", frames=60)
    text = b"This is a plain text file, not media.\n" * 20
    broken = []
    for make in (_broken_videos, _broken_images, _broken_audio):
        for name, kind, content in make(scratch, mp4, text):
            path = folder / name
            path.write_bytes(content)
            broken.append(BrokenInput(name, path, kind, probe_detects=name != CORRUPT_MIDWAY))
    for kind, suffix in (("video", ".mp4"), ("image", ".png"), ("audio", ".wav")):
        directory = folder / f"a_directory_{kind}{suffix}"
        directory.mkdir(exist_ok=True)
        broken.append(BrokenInput(directory.name, directory, kind))
        broken.append(BrokenInput(f"missing_{kind}{suffix}", folder / f"missing_{kind}{suffix}", kind))
    return broken
