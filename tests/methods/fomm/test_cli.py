"""`faceanim reenact --method fomm` with a tiny random FOMM written as the official files: a photo and a
clip in, the full photo with the driving sound out (default motion; FADM's FOMM.pth from the environment
with absolute motion, official options and --precision fast); checkpoints that are missing, do not fit or
hold code, and configs that do not fit, exit 2 in one line naming the file and leave no output."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from faceanim.cli.main import main
from faceanim.face import largest_face
from faceanim.media import VideoReader, read_image, write_image
from faceanim.warping import MotionOptions
from tests.conftest import write_face_clip

from .tiny_files import Exploit, official_checkpoint, one_line_error, tiny_model, unbuildable_yaml, write_files


@pytest.fixture(autouse=True)
def no_weight_variable(monkeypatch):
    monkeypatch.delenv("FACEANIM_FOMM_CHECKPOINT", raising=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    return write_files(tmp_path_factory.mktemp("fomm_cli"))


@pytest.fixture(scope="module")
def photo(tmp_path_factory, astronaut):
    return write_image(tmp_path_factory.mktemp("photo") / "astronaut.png", astronaut)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory, astronaut):
    """8 frames of the astronaut under the hand-held camera, with sound."""
    return write_face_clip(tmp_path_factory.mktemp("short") / "short.mp4", astronaut, frames=8)


def _reenact(photo, clip, out, *options) -> int:
    return main(["reenact", str(photo), str(clip), "-o", str(out), "--method", "fomm", *map(str, options)])


def test_reenact_writes_the_full_photo_with_the_driving_sound(files, photo, face_clip, tmp_path, capsys, recorded):
    out = tmp_path / "fomm.mp4"
    assert _reenact(photo, face_clip, out, "--checkpoint", files["checkpoint"], "--config", files["config"],
                    "--batch-size", 8) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with VideoReader(out) as video, VideoReader(face_clip) as driving:
        assert (video.width, video.height) == (512, 512) and video.frame_count == driving.frame_count == 40
        assert video.has_audio and abs(video.duration - driving.duration) < 0.05
        first = next(iter(video))
    # FOMM made every frame, with its default motion (the demo's --relative --adapt_scale)
    assert [motion for motion, _ in recorded] == [MotionOptions(relative=True, adapt_scale=True)]
    assert sum(count for _, count in recorded) == 40
    image = read_image(photo)
    box, _ = largest_face(image)
    face = (slice(int(box.top), int(box.bottom)), slice(int(box.left), int(box.right)))
    assert np.abs(first[face].astype(int) - image[face]).mean() > 10   # the model's crop is pasted there
    assert np.abs(first[:40, :40].astype(int) - image[:40, :40]).mean() <= 4   # away from the face: the photo


def test_fadms_file_from_the_variable_with_official_options(files, photo, short_clip, tmp_path, monkeypatch,
                                                            recorded):
    monkeypatch.setenv("FACEANIM_FOMM_CHECKPOINT", str(files["fomm_pth"]))
    out = tmp_path / "absolute.mp4"
    assert _reenact(photo, short_clip, out, "--config", files["config"], "--absolute", "--no-adapt-scale",
                    "--no-crop", "--best-frame", 3, "--device", "cpu", "--batch-size", 3, "--precision", "fast") == 0
    with VideoReader(out) as video:
        assert (video.width, video.height, video.frame_count) == (512, 512, 8) and video.has_audio
    assert {motion for motion, _ in recorded} == {MotionOptions(relative=False, adapt_scale=False)}


def _bad_checkpoint(kind: str, folder) -> tuple:
    """(path, text the one-line error must hold) of a checkpoint that cannot be used."""
    if kind == "not_found":
        return folder / "nowhere" / "vox-cpk.pth.tar", "checkpoint file not found"
    checkpoint = official_checkpoint(tiny_model())
    if kind == "missing_key":
        del checkpoint["generator"]["final.bias"]
        problem = "missing: final.bias"
    elif kind == "unexpected_key":
        checkpoint["kp_detector"]["kp.extra"] = torch.zeros(3)
        problem = "unexpected: kp.extra"
    else:
        checkpoint["epoch"] = Exploit(folder / "code_ran")
        problem = "refused by the weights-only loader"
    torch.save(checkpoint, folder / f"{kind}.pth.tar")
    return folder / f"{kind}.pth.tar", problem


@pytest.mark.parametrize("kind", ["not_found", "missing_key", "unexpected_key", "pickled_code"])
def test_bad_checkpoints_exit_2_naming_the_file(kind, files, photo, short_clip, tmp_path, capsys):
    path, problem = _bad_checkpoint(kind, tmp_path)
    out = tmp_path / "out.mp4"
    assert _reenact(photo, short_clip, out, "--checkpoint", path, "--config", files["config"]) == 2
    err = one_line_error(capsys)
    assert f"{path}: " in err and problem in err
    assert not out.exists() and not (tmp_path / "code_ran").exists()


def test_released_layout_assumed_without_config(files, photo, short_clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert _reenact(photo, short_clip, out, "--checkpoint", files["checkpoint"]) == 2
    err = one_line_error(capsys)
    assert f"{files['checkpoint']}: does not fit" in err and not out.exists()


def test_missing_weights_and_foreign_options_exit_2(files, photo, short_clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert _reenact(photo, short_clip, out, "--config", files["config"]) == 2
    assert "--checkpoint" in one_line_error(capsys) and not out.exists()
    assert _reenact(photo, short_clip, out, "--checkpoint", files["checkpoint"], "--config", files["config"],
                    "--depth-encoder", files["checkpoint"]) == 2
    assert "--depth-encoder" in one_line_error(capsys) and not out.exists()
    assert _reenact(photo, short_clip, out, "--checkpoint", files["checkpoint"],
                    "--config", tmp_path / "no.yaml") == 2
    assert "no.yaml" in one_line_error(capsys) and not out.exists()


@pytest.mark.parametrize("kind", ["facevid_yaml", "mistyped_yaml"])
def test_a_yaml_fomm_cannot_be_built_from_exits_2_naming_it(kind, files, photo, short_clip, tmp_path, capsys):
    config = unbuildable_yaml(tmp_path, kind)
    out = tmp_path / "out.mp4"
    assert _reenact(photo, short_clip, out, "--checkpoint", files["checkpoint"], "--config", config) == 2
    assert f"{config}: " in one_line_error(capsys) and not out.exists()


def test_precision_fast_with_the_default_motion(files, photo, short_clip, tmp_path):
    out = tmp_path / "fast.mp4"
    assert _reenact(photo, short_clip, out, "--checkpoint", files["checkpoint"], "--config", files["config"],
                    "--precision", "fast") == 0
    with VideoReader(out) as video:
        assert video.frame_count == 8
