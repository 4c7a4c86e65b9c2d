"""`faceanim reenact --method dagan` and `faceanim convert dagan` with a tiny random DaGAN: files in,
full-size video with sound out; missing or misplaced options exit 2 in one line. One slow test runs
the released configuration on the 1080p test clip."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from faceanim.checkpoints import sha256
from faceanim.cli.main import main
from faceanim.face import largest_face
from faceanim.media import VideoReader, VideoWriter, read_image, write_image
from tests.conftest import write_clip_head
from tests.methods.dagan.tiny_files import tiny_model, write_files

WEIGHT_VARIABLES = ("FACEANIM_DAGAN_CHECKPOINT", "FACEANIM_DAGAN_DEPTH_ENCODER", "FACEANIM_DAGAN_DEPTH_DECODER")


@pytest.fixture(autouse=True)
def no_weight_variables(monkeypatch):
    for name in WEIGHT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    return write_files(tmp_path_factory.mktemp("dagan_cli"), tiny_model())


@pytest.fixture(scope="module")
def photo(tmp_path_factory, astronaut):
    return write_image(tmp_path_factory.mktemp("photo") / "astronaut.png", astronaut)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("faceanim: error:"), err
    return err


def test_reenact_writes_the_full_photo_with_the_driving_sound(files, photo, face_clip, tmp_path, capsys):
    out = tmp_path / "dagan.mp4"
    argv = ["reenact", str(photo), str(face_clip), "-o", str(out), "--method", "dagan",
            "--checkpoint", str(files["converted"]), "--batch-size", "4"]
    assert main(argv) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with VideoReader(out) as video, VideoReader(face_clip) as driving:
        assert (video.width, video.height) == (512, 512) and video.frame_count == driving.frame_count
        assert video.has_audio and abs(video.duration - driving.duration) < 0.05
        first = next(iter(video))
    image = read_image(photo)
    box, _ = largest_face(image)
    face = (slice(int(box.top), int(box.bottom)), slice(int(box.left), int(box.right)))
    assert np.abs(first[face].astype(int) - image[face]).mean() > 10  # the model's crop is pasted there


def test_reenact_from_official_files_with_every_option(files, photo, face_clip, tmp_path):
    out = tmp_path / "official.mp4"
    argv = ["reenact", str(photo), str(face_clip), "-o", str(out), "--method", "dagan",
            "--checkpoint", str(files["checkpoint"]), "--depth-encoder", str(files["depth_encoder"]),
            "--depth-decoder", str(files["depth_decoder"]), "--config", str(files["config"]), "--kp-num", "5",
            "--generator", "DepthAwareGenerator", "--precision", "fast", "--absolute", "--no-adapt-scale",
            "--no-crop", "--best-frame", "3", "--device", "cpu", "--batch-size", "16"]
    assert main(argv) == 0
    with VideoReader(out) as video:
        assert (video.width, video.height) == (512, 512) and video.frame_count == 40


def test_python_api_streams_frames(files, photo, face_clip):
    import faceanim

    frames = faceanim.reenact(photo, face_clip, method="dagan", checkpoint=files["converted"], crop=False,
                              batch_size=4, precision="fast")
    first = next(frames)
    assert first.shape == (512, 512, 3) and first.dtype == np.uint8
    assert 1 + sum(1 for _ in frames) == 40


@pytest.mark.parametrize("case", ["no depth encoder", "no depth decoder", "no checkpoint"])
def test_missing_weights_exit_2_naming_the_flag(case, files, photo, face_clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    weights = {"no depth encoder": ["--checkpoint", files["checkpoint"], "--depth-decoder", files["depth_decoder"]],
               "no depth decoder": ["--checkpoint", files["checkpoint"], "--depth-encoder", files["depth_encoder"]],
               "no checkpoint": []}[case]
    argv = ["reenact", photo, face_clip, "-o", out, "--method", "dagan", *weights]
    assert main([str(a) for a in argv]) == 2
    flag = {"no depth encoder": "--depth-encoder", "no depth decoder": "--depth-decoder",
            "no checkpoint": "--checkpoint"}[case]
    assert flag in _one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("method, option, value", [("dagan", "--smoothing", "2"), ("warp", "--precision", "fast"),
                                                   ("warp", "--depth-encoder", "e.pth")])
def test_options_of_another_method_exit_2(method, option, value, files, photo, face_clip, tmp_path, capsys):
    weights = ["--checkpoint", str(files["converted"])] if method == "dagan" else []
    argv = ["reenact", str(photo), str(face_clip), "-o", str(tmp_path / "o.mp4"), "--method", method, *weights,
            option, value]
    assert main(argv) == 2
    assert f"{option} does not apply to --method {method}" in _one_line_error(capsys)


def test_convert_prints_the_inputs_sha256_and_writes_a_loadable_folder(files, tmp_path, capsys):
    out = tmp_path / "converted"
    argv = ["convert", "dagan", str(files["checkpoint"]), "--depth-encoder", str(files["depth_encoder"]),
            "--depth-decoder", str(files["depth_decoder"]), "--config", str(files["config"]), "-o", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for name in ("checkpoint", "depth_encoder", "depth_decoder"):
        assert f"sha256 {sha256(files[name])}  {files[name]}" in printed
    assert f"wrote {out}" in printed
    from faceanim.methods.dagan import DaGANPipeline

    state = DaGANPipeline.from_pretrained(out).model.state_dict()
    reference = DaGANPipeline.from_pretrained(files["converted"]).model.state_dict()
    assert all(torch.equal(state[k], reference[k]) for k in reference)
    assert main(["convert", "dagan", str(files["checkpoint"]), str(files["depth_encoder"]), "-o", str(out)]) == 2
    assert "takes one official file" in _one_line_error(capsys)
    assert main(["convert", "dagan", str(files["checkpoint"]), "-o", str(tmp_path / "x")]) == 2
    assert "--depth-encoder" in _one_line_error(capsys) and not (tmp_path / "x").exists()


@pytest.mark.slow
@pytest.mark.testdata
def test_released_configuration_on_the_1080p_clip_streams(shared_testdata, tmp_path, monkeypatch):
    """Random weights at the vox256 layout, as official files: the 1080p clip's first frame animated by
    the first 8 frames of the 256x256 driving clip, at full resolution, one batch at a time."""
    from faceanim.methods.dagan import DaGANModel, DaGANPipeline
    from faceanim.methods.dagan.config import vox256
    from tests.methods.dagan.test_weights import save_official_layout

    torch.manual_seed(0)
    paths = save_official_layout(tmp_path, DaGANModel(vox256()).state_dict())
    with VideoReader(shared_testdata / "wild_1080p.mp4") as reader:
        source = write_image(tmp_path / "source.png", next(iter(reader)))
    driving = write_clip_head(shared_testdata / "driving_256.mp4", tmp_path / "driving.mp4", 8)
    written, generated_after = [], []
    write, generate = VideoWriter.write, DaGANPipeline.generate

    def counting_write(self, frame):
        written.append(frame.shape)
        return write(self, frame)

    def noting_generate(self, *args, **kwargs):
        generated_after.append(len(written))  # frames already written when this batch starts
        return generate(self, *args, **kwargs)
    monkeypatch.setattr(VideoWriter, "write", counting_write)
    monkeypatch.setattr(DaGANPipeline, "generate", noting_generate)
    out = tmp_path / "out.mp4"
    argv = ["reenact", str(source), str(driving), "-o", str(out), "--method", "dagan", "--batch-size", "4",
            "--checkpoint", str(paths["checkpoint"]), "--depth-encoder", str(paths["depth_encoder"]),
            "--depth-decoder", str(paths["depth_decoder"])]
    assert main(argv) == 0
    assert generated_after == [0, 4]  # the second batch is made after the first one was written
    assert written == [(1080, 1920, 3)] * 8
    with VideoReader(out) as video:
        assert (video.width, video.height, video.frame_count) == (1920, 1080, 8)
