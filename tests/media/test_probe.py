"""probe(): kind by content (not by file name), the facts it reports, and `expect`."""
from __future__ import annotations

import shutil

import pytest
from PIL import Image

from faceanim.errors import InputError
from faceanim.media import Audio, MediaInfo, VideoReader, VideoWriter, probe, read_audio

from .synthetic import pattern_frame, sine, write_audio_file, write_h264, write_mp3_with_cover


@pytest.fixture()
def talking_video(tmp_path):
    path = tmp_path / "talk.mp4"
    with VideoWriter(path, 25, preset="ultrafast", audio=Audio(sine(200, 1.0, 16000), 16000)) as writer:
        for index in range(20):
            writer.write(pattern_frame(48, 32, index))
    return path


def test_video_facts(talking_video):
    info = probe(talking_video)
    assert isinstance(info, MediaInfo)
    assert (info.kind, info.width, info.height, info.frame_count) == ("video", 48, 32, 20)
    assert info.fps == pytest.approx(25) and info.duration == pytest.approx(0.8, abs=1e-3)
    assert info.has_audio and info.audio_sample_rate == 16000 and info.audio_channels == 1
    assert (info.video_codec, info.audio_codec, info.rotation, info.is_vfr) == ("h264", "aac", 0, False)
    facts = info.as_dict()
    assert facts["kind"] == "video" and facts["path"] == str(talking_video)


def test_kind_is_decided_by_content_not_name(tmp_path, talking_video, astronaut):
    disguised_video = tmp_path / "photo.png"
    shutil.copy(talking_video, disguised_video)
    assert probe(disguised_video).kind == "video"
    disguised_image = tmp_path / "clip.mp4"
    Image.fromarray(astronaut).save(disguised_image, format="JPEG")
    info = probe(disguised_image)
    assert (info.kind, info.width, info.height, info.video_codec) == ("image", 512, 512, "JPEG")
    disguised_audio = write_audio_file(tmp_path / "song.dat", sine(300, 0.5, 22050), 22050,
                                       codec="pcm_s16le", sample_format="s16", container_format="wav")
    info = probe(disguised_audio)
    assert (info.kind, info.audio_sample_rate, info.has_audio) == ("audio", 22050, True)
    assert info.duration == pytest.approx(0.5, abs=1e-3) and info.width is None


def test_rotated_video_reports_upright_size(tmp_path):
    path = write_h264(tmp_path / "r.mp4", [pattern_frame(64, 48, 0)] * 2, rotation=-90)
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (48, 64, 90)


def test_expect(tmp_path, talking_video):
    assert probe(talking_video, expect="video").kind == "video"
    assert probe(talking_video, expect="audio").kind == "video"  # its soundtrack serves as audio
    assert probe(talking_video, expect=("image", "video")).kind == "video"
    with pytest.raises(InputError, match=r"talk\.mp4: is a video, not an image"):
        probe(talking_video, expect="image")
    silent = write_h264(tmp_path / "silent.mp4", [pattern_frame(32, 32, 0)] * 2)
    with pytest.raises(InputError, match="has no audio stream"):
        probe(silent, expect="audio")
    with pytest.raises(ValueError):
        probe(silent, expect="hologram")


def test_album_art_is_not_a_video(tmp_path):
    path = write_mp3_with_cover(tmp_path / "song.mp3", sine(440, 1.0, 44100), 44100)
    info = probe(path)
    assert (info.kind, info.audio_codec, info.width) == ("audio", "mp3", None)
    assert info.duration == pytest.approx(1.0, abs=0.06)
    assert read_audio(path).duration == pytest.approx(1.0, abs=0.06)
    with pytest.raises(InputError, match=r"song\.mp3: has no video stream \(audio only\)"):
        VideoReader(path)
