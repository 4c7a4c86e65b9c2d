"""`faceanim talk --method emo` end to end with tiny random weights written by the test in the native layouts
(Hallo's pretrained_models folder: net.pth, the SD-1.5 and sd-vae-ft-mse diffusers folders, AnimateDiff's motion
modules, wav2vec2, insightface's ONNX), a converted folder, the EMO design, and broken inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import faceanim
from faceanim.audio import frame_count
from faceanim.cli.main import main
from faceanim.media import Audio
from tests.methods.talk_checks import check_talk_video, speech_file
from tests.methods.emo.native_files import write_hallo_layout

FPS = 25


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> dict:
    return write_hallo_layout(tmp_path_factory.mktemp("pretrained_models"))


@pytest.fixture(scope="module")
def emo_layout(tmp_path_factory) -> dict:
    return write_hallo_layout(tmp_path_factory.mktemp("emo_models"), design="emo", seed=5)


@pytest.fixture(scope="module")
def astronaut_path(tmp_path_factory, astronaut) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    return path


def _run(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def _pipeline(checkpoint, **settings):
    from faceanim.methods.emo.pipeline import EMOPipeline

    return EMOPipeline.from_pretrained(checkpoint, **{"steps": 2, **settings})


def _crop(seed: int = 0, size: int = 128) -> np.ndarray:
    return np.asarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3)), dtype=np.uint8)


def test_the_native_layout_loads_as_written(layout):
    """net.pth with its settings from the SD unet/config.json (widths, heads, 128 px) and the tensors' shapes."""
    from faceanim.methods.emo.weights import load_model

    config, model = load_model(layout["root"])
    assert config == layout["config"]
    for key, value in layout["model"].state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_talk_on_the_astronaut_with_chained_clips(layout, astronaut_path, tmp_path, capsys):
    """1.5 s of speech = 38 frames = 3 clips of 16, each continuing from the last 2 frames of the one before."""
    audio = speech_file(tmp_path / "speech.wav", 1.5)
    out = tmp_path / "talk.mp4"
    code, err = _run(["talk", str(astronaut_path), str(audio), "-o", str(out), "--method", "emo",
                      "--checkpoint", str(layout["root"]), "--steps", "2"], capsys)
    assert code == 0, err
    check_talk_video(out, (512, 512), 1.5)


@pytest.mark.slow
def test_talk_on_a_1080p_frame_with_10_seconds_of_speech(layout, astronaut, tmp_path, capsys):
    from PIL import Image

    canvas = np.full((1080, 1920, 3), 40, np.uint8)
    canvas[200:712, 900:1412] = astronaut
    photo = tmp_path / "wide.png"
    Image.fromarray(canvas).save(photo)
    audio = speech_file(tmp_path / "speech.wav", 10.0, rate=44100)
    out = tmp_path / "wide.mp4"
    code, err = _run(["talk", str(photo), str(audio), "-o", str(out), "--method", "emo", "--checkpoint",
                      str(layout["net"]), "--vae", str(layout["vae"]), "--wav2vec2", str(layout["wav2vec2"]),
                      "--face-analysis", str(layout["face_analysis"]), "--steps", "2"], capsys)
    assert code == 0, err
    check_talk_video(out, (1920, 1080), 10.0)
    first = next(iter(faceanim.media.VideoReader(out)))
    assert np.abs(first[:150, :700].astype(int) - 40).max() <= 3   # far from the face: the photo, untouched


def test_frames_are_written_clip_by_clip(layout):
    """The first clip's frames come out before the second clip is denoised."""
    steps = []
    pipeline = _pipeline(layout["root"], step_callback=lambda clip, step, t: steps.append(clip))
    speech = Audio((0.3 * np.sin(np.linspace(0, 900, 16000))).astype(np.float32), 16000)   # 1 s: 2 clips
    frames = pipeline.talk_crops(pipeline.prepare_source(_crop()), speech)
    first = next(frames)
    assert first.shape == (128, 128, 3) and steps == [0, 0]
    rest = list(frames)
    assert len(rest) + 1 == frame_count(1.0, FPS) and steps == [0, 0, 1, 1]


def test_the_audio_windows_match_the_whole_clip_features_with_bounded_memory(layout):
    """Windows built from chunked features (1 s chunks) in a rolling buffer equal those of the features of the
    whole clip; the buffer never holds more than a clip plus a chunk."""
    pipeline = _pipeline(layout["root"], clip_length=8)
    pipeline.audio_features.chunk_seconds = 1.0
    speech = Audio((0.3 * np.sin(np.linspace(0, 9000, 16000 * 5))).astype(np.float32), 16000)
    total = 5 * FPS // 8 * 8 + 8
    windows = list(pipeline._audio_windows(speech, total))
    padded = np.zeros(total * 640, np.float32)
    padded[:speech.samples.size] = speech.samples
    whole = pipeline.audio_features((padded, 16000), FPS, num_frames=total, layers=list(range(1, 4))).float()
    index = (torch.arange(total)[:, None] + torch.arange(-2, 3)).clamp(0, total - 1)
    expected = whole[index]
    assert len(windows) == total // 8
    assert torch.allclose(torch.cat(windows), expected, atol=1e-3 * float(expected.abs().max()))


def test_seed_repeats_and_changes_the_video(layout):
    speech = Audio((0.3 * np.sin(np.linspace(0, 400, 8000))).astype(np.float32), 16000)
    crop = _crop(1)
    runs = []
    for seed in (7, 7, 8):
        pipeline = _pipeline(layout["root"], seed=seed, clip_length=8)
        runs.append(np.stack(list(pipeline.talk_crops(pipeline.prepare_source(crop), speech))))
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


def test_convert_then_talk_from_the_folder(layout, tmp_path, capsys):
    folder = tmp_path / "converted"
    code, err = _run(["convert", "emo", str(layout["net"]), "-o", str(folder)], capsys)
    assert code == 0, err
    speech = Audio((0.3 * np.sin(np.linspace(0, 400, 8000))).astype(np.float32), 16000)
    direct = _pipeline(layout["root"], clip_length=8)
    converted = _pipeline(folder, clip_length=8, wav2vec2=layout["wav2vec2"], face_analysis=layout["face_analysis"])
    crop = _crop(2)
    a = list(direct.talk_crops(direct.prepare_source(crop), speech))
    b = list(converted.talk_crops(converted.prepare_source(crop), speech))
    assert len(a) == len(b) == frame_count(0.5, FPS) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_region_weights_and_face_region_reach_the_video(layout):
    speech = Audio((0.3 * np.sin(np.linspace(0, 400, 8000))).astype(np.float32), 16000)
    crop = _crop(3)
    base = _pipeline(layout["root"], clip_length=8)
    reference = np.stack(list(base.talk_crops(base.prepare_source(crop), speech)))
    for settings in ({"lip_weight": 2.0}, {"face_region": "0.2,0.2,0.6,0.7"}, {"guidance": 1.0}):
        pipeline = _pipeline(layout["root"], clip_length=8, **settings)
        frames = np.stack(list(pipeline.talk_crops(pipeline.prepare_source(crop), speech)))
        assert frames.shape == reference.shape and not np.array_equal(frames, reference), settings


def test_the_emo_design_with_speed_control(emo_layout, tmp_path):
    """Plain audio attention, no identity network needed, speed layers: a constant speed and a curve change the
    video; the first clip's motion frames are zero maps."""
    speech = Audio((0.3 * np.sin(np.linspace(0, 800, 16000))).astype(np.float32), 16000)
    crop = _crop(4)
    videos = {}
    curve = tmp_path / "speed.txt"
    curve.write_text("\n".join(str(v) for v in np.linspace(0, 6, 25)))
    for name, settings in (("none", {}), ("fast", {"head_speed": 6.0}), ("curve", {"head_speed_curve": curve})):
        pipeline = _pipeline(emo_layout["root"], preset_name="emo", **settings)
        assert pipeline.identity_embedder is None and pipeline.config.speed is not None
        videos[name] = np.stack(list(pipeline.talk_crops(pipeline.prepare_source(crop), speech)))
    assert videos["none"].shape[0] == 25
    assert not np.array_equal(videos["none"], videos["fast"]) and not np.array_equal(videos["fast"], videos["curve"])


def test_colour_anchor_holds_the_reference_colour(layout):
    from faceanim.methods.emo.pipeline import _mean_lab

    speech = Audio((0.3 * np.sin(np.linspace(0, 900, 24000))).astype(np.float32), 16000)
    crop = _crop(5)
    pipeline = _pipeline(layout["root"], clip_length=8, color_match=True)
    reference = pipeline.prepare_source(crop)
    frames = list(pipeline.talk_crops(reference, speech))
    shifts = [np.abs(_mean_lab(f, reference.masks.face_box) - reference.color_target).max() for f in frames]
    assert max(shifts) < 2.0, shifts


@pytest.mark.parametrize("case", ["silent", "short", "other_method", "truncated", "no_wav2vec", "speed_on_hallo"])
def test_broken_inputs_exit_2_with_one_line_and_no_output(case, layout, astronaut_path, tmp_path, capsys,
                                                         monkeypatch):
    photo, audio = astronaut_path, speech_file(tmp_path / "speech.wav", 1.0)
    checkpoint, named, extra = layout["root"], None, []
    if case == "silent":
        audio = named = speech_file(tmp_path / "silent.wav", 1.0, loud=False)
    elif case == "short":
        audio = named = speech_file(tmp_path / "short.wav", 0.04)
    elif case == "other_method":
        checkpoint = named = tmp_path / "other.pth"
        torch.save({"generator.conv.weight": torch.zeros(2, 3, 3, 3)}, checkpoint)
    elif case == "truncated":
        data = layout["net"].read_bytes()
        checkpoint = named = tmp_path / "net.pth"
        named.write_bytes(data[: len(data) // 2])
        extra = ["--vae", str(layout["vae"]), "--wav2vec2", str(layout["wav2vec2"])]
    elif case == "no_wav2vec":
        monkeypatch.delenv("FACEANIM_WAV2VEC2", raising=False)
        checkpoint = layout["net"]
        extra = ["--vae", str(layout["vae"]), "--wav2vec2", str(tmp_path / "absent")]
        named = tmp_path / "absent"
    else:
        extra, named = ["--head-speed", "2"], "--head-speed"
    out = tmp_path / "out.mp4"
    code, err = _run(["talk", str(photo), str(audio), "-o", str(out), "--method", "emo", "--checkpoint",
                      str(checkpoint), "--steps", "2", *extra], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert Path(str(named)).name in lines[0], lines[0]
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.suffix == ".mp4"]
