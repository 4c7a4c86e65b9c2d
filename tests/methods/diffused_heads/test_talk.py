"""`faceanim talk --method diffused_heads` end to end, with random weights written by the test in the released
formats (a traced TorchScript UNet as `crema_script.pt`, a TorchScript speech encoder as `audio_encoder.pt`),
read without running either archive; a Lightning checkpoint; our converted folder; and the broken inputs."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import faceanim
from faceanim.audio import frame_count
from faceanim.cli.main import main
from faceanim.media import read_audio
from faceanim.methods.diffused_heads.audio_encoder import AudioEncoderConfig, SDAAudioEncoder
from faceanim.methods.diffused_heads.config import UNetConfig
from faceanim.methods.diffused_heads.model import DiffusedHeadsUNet
from tests.methods.talk_checks import check_talk_video, speech_file

# 128 px as released (the archive does not state its size), small widths; heads of 64 as released
UNET = UNetConfig(model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1, dropout=0.0)
ENCODER = AudioEncoderConfig(conv_channels=(2, 2, 4, 4, 8), code_size=8, gru_hidden=32)
FPS = 25


def _randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return module.eval()


@pytest.fixture(scope="module")
def astronaut_path(tmp_path_factory, astronaut) -> Path:
    from PIL import Image

    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    return path


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("released")
    unet = _randomised(DiffusedHeadsUNet(UNET), 1)
    size = UNET.image_size
    example = (torch.zeros(1, 3, size, size), torch.tensor([10]), torch.zeros(1, 3, size, size),
               torch.zeros(1, 6, size, size), torch.zeros(1, 5, 32))
    with torch.no_grad():
        torch.jit.save(torch.jit.trace(unet, example, check_trace=False), str(folder / "crema_script.pt"))
        encoder = _randomised(SDAAudioEncoder(ENCODER), 2)
        torch.jit.save(torch.jit.trace(encoder, (torch.zeros(1, 3, ENCODER.window),), check_trace=False),
                       str(folder / "audio_encoder.pt"))
    return {"unet": folder / "crema_script.pt", "encoder": folder / "audio_encoder.pt", "model": unet}


def _run(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def _talk_args(photo, audio, out, released, *extra) -> list[str]:
    return ["talk", str(photo), str(audio), "-o", str(out), "--method", "diffused_heads", "--checkpoint",
            str(released["unet"]), "--audio-encoder", str(released["encoder"]), "--steps", "2", *extra]


@pytest.mark.slow
def test_talk_on_the_astronaut_writes_the_photo_size_with_the_speech(released, astronaut_path, tmp_path, capsys):
    audio = speech_file(tmp_path / "speech.wav", 1.0)
    out = tmp_path / "talk.mp4"
    code, err = _run(_talk_args(astronaut_path, audio, out, released), capsys)
    assert code == 0, err
    check_talk_video(out, (512, 512), 1.0)


@pytest.mark.slow
def test_talk_on_a_wild_1080p_frame(released, shared_testdata, tmp_path, capsys):
    video = shared_testdata / "wild_1080p.mp4"
    from PIL import Image

    frame = next(iter(faceanim.media.VideoReader(video)))
    photo = tmp_path / "wild.png"
    Image.fromarray(frame).save(photo)
    audio = speech_file(tmp_path / "speech.mp3", 0.6, rate=48000, channels=2, codec="libmp3lame", sample_format="s16p")
    out = tmp_path / "wild.mp4"
    code, err = _run(_talk_args(photo, audio, out, released, "--stabilize", "--segment-len", "4"), capsys)
    assert code == 0, err
    check_talk_video(out, (frame.shape[1], frame.shape[0]), read_audio(audio).duration)


def test_frames_stream_one_at_a_time(released, astronaut_path, tmp_path):
    """The first frame comes out after one frame's DDPM loop, before the others are generated."""
    audio = speech_file(tmp_path / "speech8k.wav", 0.5, rate=8000)     # 8 kHz mono: resampled to 16 kHz
    calls = []
    frames = faceanim.talk(astronaut_path, audio, None, method="diffused_heads", checkpoint=released["unet"],
                           audio_encoder=released["encoder"], steps=2,
                           step_callback=lambda step: calls.append(step.position))
    first = next(iter(frames))
    assert first.shape == (512, 512, 3) and len(calls) == 2
    rest = list(frames)
    assert len(rest) + 1 == frame_count(0.5, FPS) and len(calls) == 2 * (len(rest) + 1)


def test_the_archive_is_read_not_run(released, monkeypatch):
    """Loading the released formats never calls torch.jit.load."""
    from faceanim.methods.diffused_heads.pipeline import DiffusedHeadsPipeline

    def refuse(*args, **kwargs):
        raise AssertionError("torch.jit.load was called")
    monkeypatch.setattr(torch.jit, "load", refuse)
    pipeline = DiffusedHeadsPipeline.from_pretrained(released["unet"], audio_encoder=released["encoder"])
    for key, value in released["model"].state_dict().items():
        assert torch.equal(pipeline.model.state_dict()[key].cpu(), value), key


def test_convert_then_talk_from_the_folder(released, astronaut_path, tmp_path, capsys):
    folder = tmp_path / "converted"
    code, err = _run(["convert", "diffused_heads", str(released["unet"]), "-o", str(folder),
                      "--audio-encoder", str(released["encoder"])], capsys)
    assert code == 0, err
    from faceanim.methods.diffused_heads.pipeline import DiffusedHeadsPipeline

    direct = DiffusedHeadsPipeline.from_pretrained(released["unet"], audio_encoder=released["encoder"], steps=2)
    converted = DiffusedHeadsPipeline.from_pretrained(folder, steps=2)     # the folder holds the encoder too
    from faceanim.media import Audio

    speech = Audio(np.sin(np.linspace(0, 400, 8000)).astype(np.float32) * 0.3, 16000)
    crop = np.asarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3)), dtype=np.uint8)
    a = list(direct.talk_crops(direct.prepare_source(crop), speech))
    b = list(converted.talk_crops(converted.prepare_source(crop), speech))
    assert len(a) == len(b) == frame_count(0.5, FPS) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_lightning_checkpoint_loads_with_inert_hyper_parameters(released, tmp_path):
    """A train-branch .ckpt: the UNet twice (unet., diffusion.nn_backbone.), pickled hyper-parameters with
    a foreign object (the torchvision motion transform) that must load as inert data."""
    import sys
    import types

    from faceanim.methods.diffused_heads.weights import load_model

    fake = types.ModuleType("torchvision_standin_transforms")    # pickled by reference, absent when loading
    Compose = type("Compose", (), {"__init__": lambda self, transforms: setattr(self, "transforms", transforms),
                                   "__module__": fake.__name__})
    fake.Compose = Compose
    sys.modules[fake.__name__] = fake
    state = released["model"].state_dict()
    ckpt = {"state_dict": {**{f"unet.{k}": v for k, v in state.items()},
                           **{f"diffusion.nn_backbone.{k}": v for k, v in state.items()}},
            "hyper_parameters": {"num_head_channels": 64, "n_timesteps": 1000, "dropout": 0.1,
                                 "motion_transforms": Compose([])}, "epoch": 3}
    path = tmp_path / "last.ckpt"
    torch.save(ckpt, path)
    del sys.modules[fake.__name__]
    config, unet, _ = load_model(path)
    assert config.unet.dropout == 0.1 and config.unet.num_head_channels == 64
    assert all(torch.equal(unet.state_dict()[k], v) for k, v in state.items())


@pytest.mark.parametrize("case", ["silent", "short", "no_face", "other_method", "truncated"])
def test_broken_inputs_exit_2_with_one_line_and_no_output(case, released, astronaut_path, tmp_path, capsys):
    photo, audio = astronaut_path, speech_file(tmp_path / "speech.wav", 1.0)
    args_checkpoint = released["unet"]
    named = None
    if case == "silent":
        audio = named = speech_file(tmp_path / "silent.wav", 1.0, loud=False)
    elif case == "short":
        audio = named = speech_file(tmp_path / "short.wav", 0.1)
    elif case == "no_face":
        from PIL import Image

        photo = named = tmp_path / "wall.png"
        Image.fromarray(np.full((300, 400, 3), 90, np.uint8)).save(photo)
    elif case == "other_method":
        from safetensors.torch import save_file

        args_checkpoint = named = tmp_path / "fomm.safetensors"
        save_file({"kp_detector.predictor.encoder.down_blocks.0.conv.weight": torch.zeros(2, 3, 3, 3)}, str(named))
    else:
        data = released["unet"].read_bytes()
        args_checkpoint = named = tmp_path / "crema_script.pt"
        named.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.mp4"
    args = _talk_args(photo, audio, out, {**released, "unet": args_checkpoint})
    code, err = _run(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and Path(named).name in lines[0] and "Traceback" not in err, err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.suffix == ".mp4"]


def test_archive_is_a_zip_of_records(released):
    with zipfile.ZipFile(released["unet"]) as archive:
        assert any(name.endswith("data.pkl") for name in archive.namelist())
