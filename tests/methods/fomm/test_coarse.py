"""FOMM as FADM's coarse animator: `faceanim reenact --method fadm --coarse fomm --coarse-checkpoint X
--coarse-config tiny.yaml` with a tiny FADM renderer (as tests/methods/fadm builds it) and a tiny random
FOMM in the official files, end to end; FOMM then moves with absolute motion (FADM's training-time
coarse stage) unless --relative says otherwise; coarse weights or configs that do not fit exit 2 in one line."""
from __future__ import annotations

import pytest
import torch
import yaml

from faceanim.cli.main import main
from faceanim.media import VideoReader, write_image
from faceanim.methods.fomm import FOMMPipeline
from faceanim.warping import MotionOptions
from faceanim.warping.fomm import FOMMModel
from tests.conftest import write_face_clip

from .tiny_files import (TINY_MODEL_PARAMS, one_line_error, tiny_config, unbuildable_yaml, write_files,
                         write_tiny_fadm, write_yaml)

COARSE_VARIABLES = ("FACEANIM_FADM_COARSE", "FACEANIM_FOMM_CHECKPOINT", "FACEANIM_FACEVID_CHECKPOINT",
                    "FACEANIM_DECA")


@pytest.fixture(autouse=True)
def no_weight_variables(monkeypatch):
    for name in COARSE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("fomm_coarse")
    return {**write_files(folder), "fadm": write_tiny_fadm(folder / "fadm")}


@pytest.fixture(scope="module")
def photo(tmp_path_factory, astronaut):
    return write_image(tmp_path_factory.mktemp("photo") / "astronaut.png", astronaut)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory, astronaut):
    return write_face_clip(tmp_path_factory.mktemp("short") / "short.mp4", astronaut, frames=3)


def _fadm(photo, clip, out, files, *options) -> int:
    return main(["reenact", str(photo), str(clip), "-o", str(out), "--method", "fadm", "--checkpoint",
                 str(files["fadm"]), "--coarse", "fomm", "--steps", "2", *map(str, options)])


@pytest.mark.slow
def test_fadm_refines_fomms_frames_end_to_end(files, photo, face_clip, tmp_path, capsys, recorded):
    """The whole 40-frame clip (frames 15-19 without a face): 40 FADM refinements, each a DECA encoding and
    two denoiser calls, about 30 s on 2 quiet cores."""
    out = tmp_path / "fadm_fomm.mp4"
    assert _fadm(photo, face_clip, out, files, "--coarse-checkpoint", files["checkpoint"],
                 "--coarse-config", files["config"], "--batch-size", 8) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with VideoReader(out) as video, VideoReader(face_clip) as driving:
        assert (video.width, video.height) == (512, 512) and video.frame_count == driving.frame_count == 40
        assert video.has_audio and abs(video.duration - driving.duration) < 0.05
    assert [motion for motion, _ in recorded] == [MotionOptions(relative=False, adapt_scale=False)]
    assert sum(count for _, count in recorded) == 40        # every coarse frame came from FOMM


@pytest.mark.slow
def test_fadms_fomm_file_from_the_variable_with_relative_motion(files, photo, short_clip, tmp_path, monkeypatch,
                                                               recorded):
    monkeypatch.setenv("FACEANIM_FADM_COARSE", str(files["fomm_pth"]))
    out = tmp_path / "relative.mp4"
    assert _fadm(photo, short_clip, out, files, "--coarse-config", files["config"], "--relative") == 0
    with VideoReader(out) as video:
        assert (video.width, video.height, video.frame_count) == (512, 512, 3) and video.has_audio
    assert [motion for motion, _ in recorded] == [MotionOptions(relative=True, adapt_scale=False)]
    assert sum(count for _, count in recorded) == 3


@pytest.mark.parametrize("case", ["not_found", "no_config", "no_weights"])
def test_coarse_problems_exit_2_in_one_line(case, files, photo, short_clip, tmp_path, capsys):
    options = {"not_found": ["--coarse-checkpoint", tmp_path / "FOMM.pth", "--coarse-config", files["config"]],
               "no_config": ["--coarse-checkpoint", files["checkpoint"]],      # the released layout is assumed
               "no_weights": ["--coarse-config", files["config"]]}[case]
    expected = {"not_found": f"{tmp_path / 'FOMM.pth'}: checkpoint file not found",
                "no_config": f"{files['checkpoint']}: does not fit",
                "no_weights": "--coarse-checkpoint"}[case]
    out = tmp_path / "out.mp4"
    assert _fadm(photo, short_clip, out, files, *options) == 2
    assert expected in one_line_error(capsys)
    assert not out.exists()


def test_a_coarse_yaml_fomm_cannot_be_built_from_exits_2(files, photo, short_clip, tmp_path, capsys):
    config = unbuildable_yaml(tmp_path, "facevid_yaml")
    out = tmp_path / "out.mp4"
    assert _fadm(photo, short_clip, out, files, "--coarse-checkpoint", files["checkpoint"],
                 "--coarse-config", config) == 2
    assert f"{config}: " in one_line_error(capsys) and not out.exists()


def test_coarse_fomm_must_make_the_renderers_crop_size(files, photo, short_clip, tmp_path, capsys):
    """A FOMM of 128 px crops cannot feed the 64 px renderer."""
    config = write_yaml(tmp_path / "tiny-128.yaml", TINY_MODEL_PARAMS, size=128)
    assert yaml.safe_load(config.read_text())["dataset_params"]["frame_shape"] == [128, 128, 3]
    model = FOMMModel(tiny_config())      # the widths do not depend on the frame size
    torch.save({"kp_detector": model.kp_detector.state_dict(), "generator": model.generator.state_dict()},
               tmp_path / "FOMM.pth")
    assert FOMMPipeline.from_pretrained(tmp_path / "FOMM.pth", config=config).crop_size == 128
    out = tmp_path / "out.mp4"
    assert _fadm(photo, short_clip, out, files, "--coarse-checkpoint", tmp_path / "FOMM.pth",
                 "--coarse-config", config) == 2
    err = one_line_error(capsys)
    assert "128" in err and "64" in err and not out.exists()
