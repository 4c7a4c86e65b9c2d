"""The registry is the only extension point: a method registered by a test (tests/cli/dummy_method.py,
no other file touched) appears in --help, info, reenact/talk/edit (through the crop routes), convert and
train, and its options are refused for other methods."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from faceanim import registry
from faceanim.cli.main import main
from faceanim.face import largest_face
from faceanim.media import Audio, VideoReader, write_image, write_wav

from . import dummy_method


@pytest.fixture
def dummy():
    registry.register(dummy_method.spec())
    dummy_method.CALLS.clear()
    yield dummy_method.CALLS
    registry.unregister("dummy")


@pytest.fixture(scope="module")
def photo(tmp_path_factory, astronaut):
    return write_image(tmp_path_factory.mktemp("dummy") / "photo.png", astronaut)


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


def test_help_lists_the_method_and_its_options(dummy, capsys):
    for command in ("reenact", "talk", "edit"):
        text = _help(capsys, command)
        assert "dummy" in text and "--strength" in text and "dummy (--method dummy)" in text
    assert "--note" in _help(capsys, "convert") and "--teacher" in _help(capsys, "train")
    assert "{warp,dagan,fomm,facevid,dummy}" in _help(capsys, "reenact")   # a coarse animator for refiners


def test_info_lists_the_method(dummy, capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["methods"]["dummy"] == {"tasks": ["reenact", "talk", "edit"], "status": "implemented",
                                        "paper": "a test's stand-in method"}
    assert "FACEANIM_DUMMY_CHECKPOINT" in info["weights"]["dummy.checkpoint"]


def test_reenact_talk_and_edit_run_through_the_crop_routes(dummy, photo, face_clip, tmp_path, astronaut):
    out = tmp_path / "reenact.mp4"
    assert main(["reenact", str(photo), str(face_clip), "-o", str(out), "--method", "dummy", "--strength", "0.9",
                 "--batch-size", "3", "--checkpoint", "ck"]) == 0
    assert dummy["from_pretrained"] == dict(path="ck", strength=0.9, batch_size=3, device=None)
    with VideoReader(out) as video, VideoReader(face_clip) as driving:
        assert video.frame_count == driving.frame_count and video.has_audio
        assert (video.width, video.height) == (512, 512)
        frame = next(iter(video))
    box, _ = largest_face(astronaut)
    difference = np.abs(frame.astype(int) - astronaut).mean(axis=2)
    assert difference[int(box.top):int(box.bottom), int(box.left):int(box.right)].mean() > 30   # the flipped face
    assert difference[:, :100].mean() < 6                                                      # the rest as it was

    speech = tmp_path / "speech.wav"
    write_wav(speech, Audio(np.zeros(16000 * 3 // 2, np.float32), 16000))
    out = tmp_path / "talk.mp4"
    assert main(["talk", str(photo), str(speech), "-o", str(out), "--method", "dummy"]) == 0
    with VideoReader(out) as video:
        assert video.frame_count == 30 and video.fps == pytest.approx(20) and video.has_audio

    out = tmp_path / "edit.mp4"
    assert main(["edit", str(face_clip), "-o", str(out), "--method", "dummy", "--strength", "0.5"]) == 0
    with VideoReader(out) as video, VideoReader(face_clip) as original:
        assert video.frame_count == original.frame_count and video.has_audio
        assert (video.width, video.height) == (original.width, original.height)
        # the first pass sees the crop of every frame with a face (the clip has none in frames 15-19)
    assert dummy["scan"] == original.frame_count - 5


def test_convert_and_train_call_its_entry_points(dummy, tmp_path, capsys):
    assert main(["convert", "dummy", "official.bin", "-o", str(tmp_path / "conv"), "--note", "hi"]) == 0
    assert dummy["convert"] == dict(official="official.bin", note="hi")
    assert json.loads((tmp_path / "conv" / "config.json").read_text()) == {"note": "hi"}
    assert main(["train", "dummy", "--data", "d", "-o", str(tmp_path / "run"), "--teacher", "t.pth",
                 "--max-steps", "3", "--stage", "extra"]) == 0
    assert dummy["train"] == dict(stage="extra", config="extra.yaml", data="d", settings={"teacher": "t.pth"},
                                  max_steps=3)
    assert "trained dummy (extra stage) to step 3" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["reenact", "a.png", "b.mp4", "-o", "o.mp4", "--method", "warp", "--strength", "1"],
     "--strength does not apply to --method warp"),
    (["train", "dummy", "--data", "d", "--vgg19", "v.pth"], "--vgg19 does not apply to training dummy"),
    (["convert", "dagan", "x.pth.tar", "-o", "o", "--note", "n"], "--note does not apply to convert dagan"),
    (["train", "dummy", "--data", "d", "--stage", "depth"], "--stage must be one of main, extra for dummy"),
])
def test_its_options_belong_to_it(dummy, argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_building_the_command_line_imports_no_model_code():
    """Every method's options are read from its light `options` module (its package exports lazily)."""
    code = ("import sys; from faceanim.cli.main import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'transformers', 'dlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
