"""`faceanim reenact` / `faceanim talk` with the warp engine: files in, full-resolution video out,
sound muxed, broken inputs rejected in one line with no output left behind."""
from __future__ import annotations

import numpy as np
import pytest

import faceanim
from faceanim.cli.main import main
from faceanim.media import Audio, VideoReader, write_image, write_wav


@pytest.fixture(scope="module")
def photo(tmp_path_factory, astronaut):
    return write_image(tmp_path_factory.mktemp("photo") / "astronaut.png", astronaut)


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    rate, t = 16000, np.arange(int(2.3 * 16000)) / 16000
    buzz = np.sign(np.sin(2 * np.pi * 130 * t)) * np.sin(2 * np.pi * 600 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    return write_wav(tmp_path_factory.mktemp("audio") / "speech.wav", Audio((0.3 * buzz).astype(np.float32), rate))


def test_reenact_writes_the_whole_photo_animated_with_the_driving_sound(photo, face_clip, tmp_path, capsys):
    out = tmp_path / "reenacted.mp4"
    assert main(["reenact", str(photo), str(face_clip), "-o", str(out), "--adapt-scale", "--smoothing", "2"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with VideoReader(out) as video, VideoReader(face_clip) as driving:
        assert (video.width, video.height) == (512, 512) and video.frame_count == driving.frame_count
        assert video.has_audio and abs(video.duration - driving.duration) < 0.05


def test_talk_lasts_as_long_as_the_audio(photo, speech, tmp_path):
    out = tmp_path / "talk.mp4"
    assert main(["talk", str(photo), str(speech), "-o", str(out), "--fps", "30", "--still", "--seed", "3"]) == 0
    with VideoReader(out) as video:
        assert video.fps == 30 and video.has_audio
        assert abs(video.frame_count / 30 - 2.3) <= 1 / 30 + 1e-6


def test_python_api_returns_frames_without_an_output(photo, speech):
    frames = faceanim.talk(photo, speech, head_amplitude=0.5, preset_name="subtle")
    first = next(frames)
    assert first.shape == (512, 512, 3) and first.dtype == np.uint8
    from faceanim.audio import frame_count

    assert 1 + sum(1 for _ in frames) == frame_count(36800 / 16000, 25)


@pytest.mark.parametrize("case", ["faceless driving", "photo without a face", "broken audio", "broken driving",
                                  "bad output suffix"])
def test_bad_inputs_exit_2_without_output(case, photo, speech, face_clip, faceless_clip, tmp_path, capsys):
    wall = write_image(tmp_path / "wall.png", np.full((300, 300, 3), 120, np.uint8))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    noise = tmp_path / "noise.wav"
    noise.write_bytes(b"RIFF" + bytes(40))
    out = tmp_path / "out" / "result.mp4"
    argv = {"faceless driving": ["reenact", photo, faceless_clip],
            "photo without a face": ["reenact", wall, face_clip],
            "broken audio": ["talk", photo, noise],
            "broken driving": ["reenact", photo, broken],
            "bad output suffix": ["talk", photo, speech]}[case]
    target = out.with_suffix(".gif") if case == "bad output suffix" else out
    assert main([*map(str, argv), "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("faceanim: error:")
    assert not target.exists() and (not out.parent.exists() or not any(out.parent.iterdir()))
