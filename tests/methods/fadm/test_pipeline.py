"""FADMPipeline and `faceanim reenact --method fadm`: tiny random renderer (64 px) + random DECA encoder +
tiny random face-vid2vid, on real faces (the astronaut photo, a clip made from it, the shared clips)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from faceanim.cli.main import main
from faceanim.errors import InputError, MissingWeightsError
from faceanim.media import VideoReader, read_image, write_image
from faceanim.methods.fadm import DECAEncoder, FADMModel, FADMPipeline
from faceanim.methods.fadm.config import tiny
from faceanim.methods.fadm.weights import save_converted
from faceanim.methods.facevid.weights import save_converted as save_facevid
from faceanim.tasks.crops import reenact_crops

from ..facevid.tiny_files import crops, tiny_model

SIZE = 64


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """A converted FADM folder (renderer + DECA), the same as official files, and a face-vid2vid folder."""
    folder = tmp_path_factory.mktemp("fadm_weights")
    torch.manual_seed(5)
    model, deca = FADMModel(tiny()).eval(), DECAEncoder().eval()
    torch.save(model.state_dict(), folder / "diffusion.pth")
    torch.save({"E_flame": deca.state_dict(), "E_detail": {}, "D_detail": {}}, folder / "deca_model.tar")
    return {"converted": save_converted(model, folder / "fadm", deca), "diffusion": folder / "diffusion.pth",
            "deca": folder / "deca_model.tar", "facevid": save_facevid(tiny_model(), folder / "facevid")}


@pytest.fixture(scope="module")
def pipeline(files) -> FADMPipeline:
    return FADMPipeline.from_pretrained(files["converted"], steps=3, device="cpu")


@pytest.fixture(scope="module")
def photo(tmp_path_factory, astronaut):
    return write_image(tmp_path_factory.mktemp("photo") / "astronaut.png", astronaut)


def _refined(pipeline: FADMPipeline, frames: list[np.ndarray], **settings) -> list[np.ndarray]:
    saved = {key: getattr(pipeline, key) for key in settings}
    try:
        for key, value in settings.items():
            setattr(pipeline, key, value)
        source = pipeline.prepare_source(frames[0])
        return list(pipeline.refine_crops(frames, source))
    finally:
        for key, value in saved.items():
            setattr(pipeline, key, value)


def test_official_files_and_the_converted_folder_refine_identically(files, pipeline):
    official = FADMPipeline.from_pretrained(diffusion=files["diffusion"], deca=files["deca"], steps=3, device="cpu",
                                            image_size=SIZE)
    frames = crops(2, SIZE, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(_refined(official, frames), _refined(pipeline, frames)))


def test_shared_noise_makes_equal_frames_equal_and_batching_changes_nothing(pipeline):
    frames = crops(3, SIZE, seed=2)
    one_by_one = _refined(pipeline, [frames[1], frames[2], frames[1]])
    batched = _refined(pipeline, [frames[1], frames[2], frames[1]], batch_size=3)
    assert np.array_equal(one_by_one[0], one_by_one[2])          # same coarse frame, same noise, same output
    assert not np.array_equal(one_by_one[0], one_by_one[1])
    assert all(np.abs(a.astype(int) - b).max() <= 1 for a, b in zip(one_by_one, batched))


def test_fresh_noise_seeds_and_steps_change_the_result(pipeline):
    frames = crops(1, SIZE, seed=3) * 2
    base = _refined(pipeline, frames)
    fresh = _refined(pipeline, frames, share_noise=False)
    assert not np.array_equal(fresh[0], fresh[1])                 # a new draw for every frame
    assert not np.array_equal(_refined(pipeline, frames, seed=1)[0], base[0])
    assert not np.array_equal(_refined(pipeline, frames, steps=5)[0], base[0])


def test_missing_weights_name_their_flag(files, monkeypatch):
    for variable in ("FACEANIM_FADM_DIFFUSION", "FACEANIM_DECA"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(MissingWeightsError, match="--checkpoint"):
        FADMPipeline.from_pretrained()
    with pytest.raises(MissingWeightsError, match="--deca"):
        FADMPipeline.from_pretrained(files["diffusion"])
    monkeypatch.setenv("FACEANIM_DECA", str(files["deca"]))
    assert FADMPipeline.from_pretrained(files["diffusion"], image_size=SIZE).crop_size == SIZE


def test_bad_crops_and_settings_are_input_errors(pipeline, files):
    with pytest.raises(InputError, match=r"uint8 \(64, 64, 3\)"):
        pipeline.prepare_source(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(InputError, match="steps"):
        FADMPipeline.from_pretrained(files["converted"], steps=1)


def test_reenact_streams_through_the_coarse_animator(files, pipeline, photo, face_clip):
    """The crop route yields the first pasted frame after one refinement, long before the clip ends."""
    from faceanim.tasks.coarse import coarse_animator

    pipeline.attach_coarse(coarse_animator("facevid", files["facevid"], SIZE))
    calls = []
    original = pipeline.refine
    pipeline.refine = lambda *args: calls.append(1) or original(*args)
    try:
        frames = reenact_crops(pipeline, photo, face_clip, None)
        first = next(frames)
        assert first.shape == read_image(photo).shape and len(calls) == 1
    finally:
        del pipeline.refine
        pipeline.coarse = None


@pytest.mark.slow
@pytest.mark.parametrize("coarse", ["facevid", "warp"])
def test_cli_reenact_writes_the_full_photo(coarse, files, photo, face_clip, tmp_path, capsys):
    out = tmp_path / f"{coarse}.mp4"
    extra = ["--coarse-checkpoint", str(files["facevid"])] if coarse == "facevid" else []
    assert main(["reenact", str(photo), str(face_clip), "-o", str(out), "--method", "fadm", "--checkpoint",
                 str(files["converted"]), "--coarse", coarse, "--steps", "2", "--batch-size", "4", *extra]) == 0
    with VideoReader(out) as reader, VideoReader(face_clip) as driving:
        assert (reader.width, reader.height) == (512, 512) and reader.frame_count == driving.frame_count
        assert reader.has_audio


@pytest.mark.slow
def test_cli_refines_an_existing_video_frame_by_frame(files, face_clip, tmp_path):
    out = tmp_path / "refined.mp4"
    assert main(["reenact", "--refine-video", str(face_clip), "-o", str(out), "--method", "fadm", "--checkpoint",
                 str(files["converted"]), "--steps", "2"]) == 0
    with VideoReader(out) as reader, VideoReader(face_clip) as original:
        assert (reader.width, reader.height, reader.frame_count) == (original.width, original.height,
                                                                       original.frame_count)
        first, source = next(iter(reader)), next(iter(original))
    assert first.shape == source.shape and not np.array_equal(first, source)
    assert np.abs(first.astype(int) - source)[:40, :40].max() <= 12   # away from the face: the video itself


@pytest.mark.parametrize("argv, problem", [
    (["--coarse", "warp", "--coarse-checkpoint", "x.pth"], "--coarse warp has no weights"),
    (["--absolute", "--relative"], "exclude each other"),
    (["--refine-video", "{clip}", "--coarse", "fomm"], "coarse-animator options do not apply"),
    (["--coarse", "facevid"], "--coarse-checkpoint"),
])
def test_bad_fadm_invocations_exit_2_with_one_line(argv, problem, files, photo, face_clip, tmp_path, capsys,
                                                   monkeypatch):
    for variable in ("FACEANIM_FADM_COARSE", "FACEANIM_FACEVID_CHECKPOINT"):
        monkeypatch.delenv(variable, raising=False)
    argv = [a.replace("{clip}", str(face_clip)) for a in argv]
    inputs = [] if "--refine-video" in argv else [str(photo), str(face_clip)]
    code = main(["reenact", *inputs, "-o", str(tmp_path / "out.mp4"), "--method", "fadm", "--checkpoint",
                 str(files["converted"]), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and problem in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out.mp4").exists()


def test_convert_fadm_on_the_command_line(files, tmp_path, capsys):
    out = tmp_path / "converted"
    assert main(["convert", "fadm", str(files["diffusion"]), "--deca", str(files["deca"]), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sha256" in printed and str(files["deca"]) in printed
    # official files record no image size: the released 256 is assumed, everything else comes from the tensors
    converted = FADMPipeline.from_pretrained(out, device="cpu")
    original = FADMPipeline.from_pretrained(files["converted"], device="cpu")
    assert converted.crop_size == 256 and converted.model.config.unet.channel_mults == tiny().unet.channel_mults
    for a, b in zip(converted.model.state_dict().values(), original.model.state_dict().values()):
        assert torch.equal(a, b)
    assert main(["convert", "fadm", str(files["diffusion"]), "--depth-encoder", "x", "-o", str(tmp_path / "o")]) == 2


@pytest.mark.slow
@pytest.mark.testdata
def test_released_renderer_on_the_1080p_frame_streams_and_pastes_back(shared_testdata, tmp_path, monkeypatch):
    """Random weights at the released renderer layout, as official files (diffusion.pth, deca_model.tar),
    the warp engine as coarse stage: the 1080p clip's first frame driven by 4 frames of the 256x256 clip,
    refined 2 at a time and written at 1920x1080 as each batch is done."""
    from faceanim.media import VideoWriter
    from faceanim.methods.fadm.config import vox256
    from tests.conftest import write_clip_head

    torch.manual_seed(0)
    torch.save(FADMModel(vox256()).state_dict(), tmp_path / "diffusion.pth")
    torch.save({"E_flame": DECAEncoder().state_dict()}, tmp_path / "deca_model.tar")
    with VideoReader(shared_testdata / "wild_1080p.mp4") as reader:
        source = write_image(tmp_path / "source.png", next(iter(reader)))
    driving = write_clip_head(shared_testdata / "driving_256.mp4", tmp_path / "driving.mp4", 4)
    written, refined_after = [], []
    write, refine = VideoWriter.write, FADMPipeline.refine
    monkeypatch.setattr(VideoWriter, "write", lambda self, frame: written.append(frame.shape) or write(self, frame))
    monkeypatch.setattr(FADMPipeline, "refine",
                        lambda self, *args: refined_after.append(len(written)) or refine(self, *args))
    out = tmp_path / "out.mp4"
    assert main(["reenact", str(source), str(driving), "-o", str(out), "--method", "fadm", "--checkpoint",
                 str(tmp_path / "diffusion.pth"), "--deca", str(tmp_path / "deca_model.tar"), "--coarse", "warp",
                 "--steps", "2", "--batch-size", "2"]) == 0
    assert refined_after == [0, 2]          # the second batch is refined after the first one was written
    assert written == [(1080, 1920, 3)] * 4
    with VideoReader(out) as reader:
        assert (reader.width, reader.height, reader.frame_count) == (1920, 1080, 4)
