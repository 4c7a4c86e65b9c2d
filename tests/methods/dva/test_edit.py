"""`faceanim edit --method dva` end to end, with random-weight files in the released formats written by the test
(Lightning checkpoint with `model.*` and `ema_model.*`, the classifier's `last.ckpt`, `latent.pkl`); the
weights readers; `faceanim convert dva`; and the broken inputs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from faceanim.cli.main import main
from faceanim.errors import CheckpointError, InputError
from faceanim.media import VideoReader, probe
from faceanim.methods.dva.config import tiny
from faceanim.methods.dva.pipeline import DVAPipeline
from faceanim.methods.dva.weights import (ATTRIBUTES, load_classifier, load_identity_stats, load_model,
                                          read_model_file)
from tests.methods.dva.release_files import write_release

STEPS = "3"


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> dict[str, Path]:
    return write_release(tmp_path_factory.mktemp("dva_release"))


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _edit_args(video, out, released, *extra) -> list:
    return ["edit", video, "-o", out, "--method", "dva", "--checkpoint", released["checkpoint"],
            "--classifier", released["classifier"], "--steps", STEPS, "--batch-size", "3", *extra]


# -- weights ----------------------------------------------------------------------------------------------
def test_released_checkpoint_gives_ema_weights_by_default_and_model_on_request(released):
    config, ema = load_model(released["checkpoint"])
    _, model = load_model(released["checkpoint"], weights="model")
    assert config == tiny()          # from the checkpoint's hyper_parameters
    key = "input_blocks.0.0.weight"
    assert torch.allclose(ema.state_dict()[key], model.state_dict()[key] + 1e-3)
    # the frozen nets are inside the checkpoint, identical in both sets
    assert torch.equal(ema.state_dict()["encoder.idnet.backbone.input_layer.0.weight"],
                       model.state_dict()["encoder.idnet.backbone.input_layer.0.weight"])


def test_classifier_statistics_and_attribute_names(released):
    classifier = load_classifier(released["classifier"])
    assert classifier.weight.shape == (40, 512) and classifier.attributes == ATTRIBUTES
    assert classifier.stats is not None and classifier.stats.mean.shape == (512,)
    ema = load_classifier(released["classifier"], use_ema=True)
    assert torch.allclose(ema.weight, classifier.weight * 0.9)
    stats = load_identity_stats(released["identity_stats"])
    assert stats.std.min() > 0
    with pytest.raises(InputError, match="Eyeglasses"):
        classifier.direction("Glasses")


def test_convert_then_edit_from_the_folder_alone(released, face_clip, tmp_path, capsys):
    folder = tmp_path / "dva_converted"
    code, _, err = _run(["convert", "dva", released["checkpoint"], "-o", folder, "--classifier",
                         released["classifier"], "--identity-stats", released["identity_stats"]], capsys)
    assert code == 0, err
    config, converted = load_model(folder)
    _, original = load_model(released["checkpoint"])
    assert config == tiny()
    assert all(torch.equal(v, original.state_dict()[k]) for k, v in converted.state_dict().items())
    pipeline = DVAPipeline.from_pretrained(folder, attribute="Smiling", steps=2, device="cpu")
    assert torch.equal(pipeline.stats.mean, load_identity_stats(released["identity_stats"]).mean)
    code, out, err = _run(["edit", "--method", "dva", "--list-attributes", "--checkpoint", folder], capsys)
    assert code == 0 and out.split() == list(ATTRIBUTES), err


def test_a_state_dict_of_another_method_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "fomm.safetensors"
    save_file({"kp_detector.predictor.encoder.down_blocks.0.conv.weight": torch.zeros(2, 3, 3, 3)}, str(path))
    with pytest.raises(CheckpointError, match="not a DVA model"):
        load_model(path)
    assert read_model_file(path)[1]          # read, then refused by its content


# -- the pipeline -----------------------------------------------------------------------------------------
def test_identity_is_averaged_once_and_edited_on_the_sphere(released, astronaut):
    import cv2

    pipeline = DVAPipeline.from_pretrained(released["checkpoint"], classifier=released["classifier"],
                                           attribute="Eyeglasses", scale=0.5, steps=2, device="cpu", batch_size=2)
    crops = [cv2.resize(np.roll(astronaut[:300, 80:380], shift, axis=1), (256, 256)) for shift in (0, 6, 12)]
    pipeline.scan_crops(iter(crops))
    with torch.no_grad():
        expected = pipeline.model.encoder.id_forward(pipeline.to_tensor(crops)).mean(dim=0, keepdim=True)
    torch.testing.assert_close(pipeline.identity, expected, rtol=1e-5, atol=1e-6)
    assert abs(float(pipeline.edited_identity.norm()) - 1.0) < 1e-5
    assert not torch.allclose(pipeline.edited_identity, pipeline.identity)
    results = list(pipeline.edit_crops(iter(crops)))
    assert len(results) == 3
    for result, crop in zip(results, crops):
        assert result.crop.shape == (256, 256, 3) and result.mask.shape == (256, 256)
        outside = result.mask == 0
        # outside the parser mask the blend is the crop itself (to rounding)
        assert np.abs(result.crop[outside].astype(int) - crop[outside].astype(int)).max() <= 1


def test_batching_does_not_change_the_frames(released, astronaut):
    import cv2

    crops = [cv2.resize(np.roll(astronaut[:300, 80:380], s, axis=0), (256, 256)) for s in (0, 5, 10)]
    outputs = []
    for batch in (1, 3):
        pipeline = DVAPipeline.from_pretrained(released["checkpoint"], steps=2, device="cpu", batch_size=batch)
        pipeline.scan_crops(iter(crops))
        outputs.append([r.crop.astype(int) for r in pipeline.edit_crops(iter(crops))])
    assert max(np.abs(a - b).max() for a, b in zip(*outputs)) <= 1


@pytest.mark.slow
def test_edit_wild_1080p_keeps_every_pixel_outside_the_face(released, shared_testdata, monkeypatch):
    """Frames as the pipeline returns them (before encoding): the size, the count, and every pixel outside the
    pasted face mask equal to the input's decoded frame."""
    import faceanim.tasks.crops as route
    from faceanim.face.paste import prepare_paste_back
    from faceanim.tasks.animate import edit

    video = shared_testdata / "wild_1080p.mp4"
    pastes = []
    placed = route._placed

    def recording(result, frame, transform):
        pastes.append((result, transform))
        return placed(result, frame, transform)
    monkeypatch.setattr(route, "_placed", recording)
    frames = edit(video, None, method="dva", checkpoint=released["checkpoint"], classifier=released["classifier"],
                  attribute="Eyeglasses", scale=0.5, steps=2, batch_size=4, device="cpu")
    count, changed_somewhere = 0, False
    with VideoReader(video) as reader:
        for index, (ours, original) in enumerate(zip(frames, reader)):
            assert ours.shape == (1080, 1920, 3) and ours.dtype == np.uint8
            result, transform = pastes[index]
            plan = prepare_paste_back(transform, result.mask, feather=0.0)
            x0, y0, x1, y1 = plan.roi
            outside = np.ones(ours.shape[:2], bool)
            outside[y0:y1, x0:x1] = plan.alpha[..., 0] == 0
            assert np.array_equal(ours[outside], original[outside]), index
            changed_somewhere |= bool((ours != original).any())
            count += 1
    assert count == 100 and changed_somewhere


@pytest.mark.slow
def test_cli_edit_keeps_size_fps_sound_and_shows_progress(released, face_clip, tmp_path, capsys, monkeypatch,
                                                          caplog):
    """The face clip has sound and no face in frames 15-19: those frames get the interpolated crop window
    and are edited like the others; the identity is averaged over the frames with a face."""
    monkeypatch.setenv("FACEANIM_PROGRESS", "1")
    out = tmp_path / "edited.mp4"
    code, stdout, err = _run(_edit_args(face_clip, out, released, "--attribute", "Eyeglasses", "--scale", "0.5"),
                             capsys)
    assert code == 0, err
    source, edited = probe(face_clip), probe(out)
    assert (edited.width, edited.height, edited.frame_count) == (source.width, source.height, source.frame_count)
    assert abs(edited.fps - source.fps) < 1e-6
    assert edited.has_audio and source.has_audio
    assert "no face in frames 15-19" in caplog.text     # on stderr outside pytest (logging)
    assert "scan" in err and "edit" in err          # the progress bars of both passes


# -- broken inputs ----------------------------------------------------------------------------------------
def _pickle_with_system_call(path: Path, marker: Path) -> Path:
    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)
    torch.save({"conds_mean": Payload(), "conds_std": torch.ones(512)}, path)
    return path


@pytest.mark.parametrize("case", ["no_face", "unknown_attribute", "other_method", "malicious_stats",
                                  "text_without_clip"])
def test_broken_inputs_exit_2_with_one_line_and_no_output(case, released, face_clip, faceless_clip, tmp_path,
                                                          capsys):
    video, extra, named = face_clip, ["--attribute", "Eyeglasses"], None
    checkpoint = released["checkpoint"]
    marker = tmp_path / "executed"
    if case == "no_face":
        video = named = faceless_clip
    elif case == "unknown_attribute":
        extra, named = ["--attribute", "Glasses"], "Eyeglasses"
    elif case == "other_method":
        from safetensors.torch import save_file

        checkpoint = named = tmp_path / "fomm.safetensors"
        save_file({"kp_detector.predictor.encoder.down_blocks.0.conv.weight": torch.zeros(2, 3, 3, 3)},
                  str(named))
    elif case == "malicious_stats":
        named = _pickle_with_system_call(tmp_path / "latent.pkl", marker)
        extra = [*extra, "--identity-stats", named]
    else:
        extra, named = ["--text-from", "face", "--text-to", "face with a beard"], "--clip"
    out = tmp_path / "out.mp4"
    args = _edit_args(video, out, {**released, "checkpoint": checkpoint}, *extra)
    code, _, err = _run(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert (Path(named).name if isinstance(named, Path) else named) in lines[0], err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.suffix == ".mp4"]
    assert not marker.exists()


def test_cli_text_edit_with_a_local_clip_folder(released, face_clip, tmp_path, capsys):
    """The text edit through the command line: a tiny random transformers CLIP from a local folder, a few
    iterations (the identity moves, the video is written at the input's size)."""
    from tests.conftest import write_clip_head
    from tests.methods.dva.test_text_edit import _write_tiny_clip

    clip = tmp_path / "clip"
    _write_tiny_clip(clip)
    video = write_clip_head(face_clip, tmp_path / "short.mp4", 4)
    out = tmp_path / "text.mp4"
    code, _, err = _run(_edit_args(video, out, released, "--text-from", "face", "--text-to", "face with a beard",
                                   "--clip", clip, "--clip-iterations", "2", "--n-train-step", "2", "--scale", "0.5"),
                        capsys)
    assert code == 0, err
    assert probe(out).frame_count == 4 and (probe(out).width, probe(out).height) == (640, 480)
