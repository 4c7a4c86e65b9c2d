"""VideoReader / VideoWriter on generated videos: round trips with sound, rotation, variable frame
rate, streaming memory, truncation and corruption, and the writer's all-or-nothing output."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref

import av
import numpy as np
import pytest

from faceanim.errors import FaceanimError, InputError
from faceanim.media import Audio, VideoReader, VideoWriter, read_audio

from .synthetic import level_frame, pattern_frame, psnr, sine, write_h264


def write_clip(path, width, height, count=30, fps=25, audio=None, preset="veryfast"):
    frames = [pattern_frame(width, height, i) for i in range(count)]
    with VideoWriter(path, fps, audio=audio, preset=preset) as writer:
        for frame in frames:
            writer.write(frame)
    assert writer.frames_written == count
    return frames


@pytest.mark.parametrize("width, height", [(64, 48), (65, 49)])
def test_round_trip_with_audio(tmp_path, width, height):
    path = tmp_path / "clip.mp4"
    speech = Audio(sine(440, 3.0, 16000), 16000)  # longer than the video: must be cut
    frames = write_clip(path, width, height, count=30, fps=25, audio=speech)
    with VideoReader(path) as reader:
        even = (height + height % 2, width + width % 2)
        assert (reader.height, reader.width) == even
        assert reader.fps == pytest.approx(25) and reader.frame_count == 30
        assert reader.duration == pytest.approx(1.2, abs=1e-3)
        assert reader.has_audio and not reader.is_vfr and reader.rotation == 0
        decoded = list(reader)
        soundtrack = reader.read_audio(sample_rate=16000)
    assert len(decoded) == 30
    for original, frame in zip(frames, decoded):
        assert frame.shape == (*even, 3) and frame.dtype == np.uint8
        assert psnr(frame[:height, :width], original) > 30
    if width % 2:  # the padding repeats the last column / row
        assert psnr(decoded[5][:height, -1], decoded[5][:height, -2]) > 30
    assert abs(soundtrack.duration - 1.2) <= 1024 / 16000
    # the soundtrack is the sine that went in (AAC is lossy: compare its spectrum peak)
    excerpt = soundtrack.samples[1600:17600]
    peak = np.fft.rfftfreq(excerpt.size, 1 / 16000)[np.argmax(np.abs(np.fft.rfft(excerpt)))]
    assert peak == pytest.approx(440, abs=2)


def test_short_audio_is_padded_with_silence(tmp_path):
    path = tmp_path / "padded.mp4"
    write_clip(path, 32, 32, count=50, fps=25, audio=Audio(sine(300, 0.5, 22050), 22050))
    soundtrack = read_audio(path, sample_rate=None)
    assert soundtrack.sample_rate == 22050
    assert abs(soundtrack.duration - 2.0) <= 1024 / 22050
    assert np.abs(soundtrack.samples[: int(0.4 * 22050)]).max() > 0.3
    assert np.abs(soundtrack.samples[int(0.7 * 22050):]).max() < 0.01


@pytest.mark.parametrize("display_rotation, clockwise, turns", [(90, 270, 1), (-90, 90, -1), (180, 180, 2)])
def test_rotation_metadata_is_applied(tmp_path, display_rotation, clockwise, turns):
    stored = pattern_frame(64, 48, 0)
    stored[:8, :8] = (255, 0, 0)  # a red corner shows where the top-left went
    path = write_h264(tmp_path / "rotated.mp4", [stored] * 3, rotation=display_rotation)
    expected = np.rot90(stored, turns)  # np.rot90 turns counter-clockwise
    with VideoReader(path) as reader:
        assert reader.rotation == clockwise
        assert (reader.height, reader.width) == expected.shape[:2]
        frames = list(reader)
    assert all(frame.shape == expected.shape for frame in frames)
    assert psnr(frames[0], expected) > 30


def test_variable_frame_rate_is_resampled_by_timestamps(tmp_path):
    times = [i * 0.04 for i in range(10)] + [0.4 + 0.1 * i for i in range(5)]  # 25 fps, then 10 fps
    levels = [10 + 15 * i for i in range(len(times))]
    path = write_h264(tmp_path / "vfr.mp4", [level_frame(32, 32, v) for v in levels], times=times)
    with VideoReader(path) as native:
        assert native.is_vfr
        assert [round(frame.mean()) for frame in native] == pytest.approx(levels, abs=3)
    with VideoReader(path, fps=25) as reader:
        assert reader.fps == 25 and reader.source_fps != 25
        shown = [round(frame.mean()) for frame in reader]
    # the last frame starts at 0.8 s and lasts 0.1 s: ticks 0/25 ... 22/25 s
    assert len(shown) == reader.frame_count == 23
    expected = [levels[np.searchsorted(times, k / 25 + 1e-9, side="right") - 1] for k in range(23)]
    assert expected[10:14] == [levels[10], levels[10], levels[10], levels[11]]
    assert shown == pytest.approx(expected, abs=3)


def test_constant_rate_source_resampled_to_a_lower_rate(tmp_path):
    levels = [8 * i for i in range(30)]
    path = write_h264(tmp_path / "cfr.mp4", [level_frame(32, 32, v) for v in levels], fps=30)
    with VideoReader(path, fps=10) as reader:
        assert reader.frame_count == 10
        shown = [round(frame.mean()) for frame in reader]
    assert shown == pytest.approx(levels[::3], abs=3)


def test_iterating_twice_starts_over_and_close_is_safe(tmp_path):
    path = write_h264(tmp_path / "clip.mp4", [level_frame(16, 16, 20 * i) for i in range(6)])
    reader = VideoReader(path)
    first = [round(f.mean()) for f in reader]
    second = [round(f.mean()) for f in reader]
    reader.close()
    assert first == second and len(first) == 6


def test_reader_keeps_no_reference_to_yielded_frames(tmp_path):
    path = write_h264(tmp_path / "clip.mp4", [pattern_frame(32, 32, i) for i in range(40)])
    alive = []
    for frame in VideoReader(path, fps=50):  # resampling (frame repeats) must not hold frames either
        alive.append(weakref.ref(frame))
    gc.collect()
    assert len(alive) == 80
    assert sum(ref() is not None for ref in alive) <= 1


# Resident memory of a fresh interpreter while it streams a video, then while it holds 100 frames.
# (Frames are decoded into FFmpeg's buffers, which tracemalloc cannot see; ru_maxrss would count
# the parent process's memory from before exec.)
MEASURE_MEMORY = """
import os, sys
from faceanim.media import VideoReader
def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
reader = VideoReader(sys.argv[1])
before, streaming, count = resident(), 0, 0
for count, _ in enumerate(reader, start=1):
    streaming = max(streaming, resident() - before)
held = [frame for _, frame in zip(range(100), VideoReader(sys.argv[1]))]
print(count, streaming, resident() - before)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_reading_streams_frames_without_holding_them(tmp_path):
    path = tmp_path / "long.mp4"
    count, frame_bytes = 600, 320 * 240 * 3
    with VideoWriter(path, 25, preset="ultrafast", crf=30) as writer:
        for index in range(count):
            writer.write(pattern_frame(320, 240, index))
    result = subprocess.run([sys.executable, "-c", MEASURE_MEMORY, str(path)], capture_output=True,
                            text=True, check=True)
    seen, streaming_growth, holding_growth = map(int, result.stdout.split())
    assert seen == count
    assert holding_growth > 60 * frame_bytes  # the measurement does see frames that are kept
    assert streaming_growth < 30 * frame_bytes  # all 600 frames would be 138 MB


def test_file_that_ends_early_just_stops(tmp_path):
    data = (write_h264(tmp_path / "full.mp4", [pattern_frame(64, 48, i) for i in range(40)],
                       faststart=True)).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 3 // 4])
    frames = list(VideoReader(cut))
    assert 10 < len(frames) < 40


def test_corrupt_data_midway_names_the_frame(tmp_path):
    data = write_h264(tmp_path / "full.mp4", [pattern_frame(64, 48, i) for i in range(60)]).read_bytes()
    begin, end = data.index(b"mdat") + 4, data.index(b"moov")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data[: begin + (end - begin) // 3] + bytes((end - begin) // 6)
                       + data[begin + (end - begin) // 2:])
    reader = VideoReader(broken)  # the start is fine
    with pytest.raises(InputError, match=r"broken\.mp4: corrupt video data at frame \d+"):
        list(reader)


def test_writer_leaves_nothing_on_error_or_without_frames(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(target, 25) as writer:
            writer.write(pattern_frame(32, 32, 0))
            raise RuntimeError("model crashed")
    with pytest.raises(FaceanimError, match="no frames were written"):
        with VideoWriter(target, 25):
            pass
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_bad_frames_and_arguments(tmp_path):
    with VideoWriter(tmp_path / "out.mp4", 25, preset="ultrafast") as writer:
        writer.write(pattern_frame(32, 32, 0))
        with pytest.raises(ValueError, match="32x32"):
            writer.write(pattern_frame(40, 32, 1))
        with pytest.raises(ValueError, match="uint8"):
            writer.write(pattern_frame(32, 32, 1).astype(np.float32))
        with pytest.raises(ValueError, match="uint8"):
            writer.write(pattern_frame(32, 32, 1)[:, :, 0])
    assert VideoReader(tmp_path / "out.mp4").frame_count == 1
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "x.mp4", 0)
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "x.mp4", 25, preset="warp-speed")
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "x.gif", 25)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_writer_output_is_h264_yuv420p_and_replaces_atomically(tmp_path):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"old contents")
    write_clip(target, 48, 32, count=5, fps=12.5)
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert float(stream.average_rate) == pytest.approx(12.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_reader_rejects_bad_fps_argument(tmp_path):
    path = write_h264(tmp_path / "clip.mp4", [level_frame(16, 16, 50)] * 2)
    for bad in (0, -5, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            VideoReader(path, fps=bad)
