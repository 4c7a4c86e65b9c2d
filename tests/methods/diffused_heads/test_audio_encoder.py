"""The Diffused Heads / SDA speech encoder: layout and names, the official windowing and frame count, the GRU
state carried across chunks, loading from TorchScript archives (read without running them, or run on
request), SDA pickles and our converted files, and the per-frame training features of each kind."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file

from faceanim.errors import CheckpointError, InputError, MissingWeightsError
from faceanim.methods.diffused_heads.audio_encoder import (
    ArchiveAudioEncoder, AudioEncoderConfig, SDAAudioEncoder, audio_encoder_from_tensors, crema,
    default_frame_count, encode_speech, frame_features, load_audio_encoder, official_frame_count,
    save_audio_encoder, speech_windows, tiny)
from tests.audio.signals import speech_like

RATE = 16000


def _random_encoder(config: AudioEncoderConfig, seed: int = 0) -> SDAAudioEncoder:
    """Random weights and BatchNorm statistics, so eval mode is not the identity normalisation."""
    torch.manual_seed(seed)
    model = SDAAudioEncoder(config)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                tensor.normal_(0, 0.1)
            elif name.endswith("num_batches_tracked"):
                tensor.fill_(7)
    return model.eval()


@pytest.fixture(scope="module")
def encoder() -> SDAAudioEncoder:
    return _random_encoder(tiny())


# -- an archive laid out as the official one: SDA's RNN (encoder.cl / encoder.activations / rnn), called as
# -- Diffused Heads calls it; and the Diffused Heads wrapper around it (model + hidden buffer)

class _SdaFrameEncoder(nn.Module):
    def __init__(self, config: AudioEncoderConfig):
        super().__init__()
        widths = [1] + list(config.conv_channels)
        self.cl = nn.ModuleList()
        self.activations = nn.ModuleList()
        for i in range(len(config.conv_kernels)):
            self.cl.append(nn.Conv1d(widths[i], widths[i + 1], config.conv_kernels[i],
                                     stride=config.conv_strides[i], padding=config.conv_paddings[i]))
            self.activations.append(nn.Sequential(nn.BatchNorm1d(widths[i + 1]), nn.ReLU(True)))
        self.cl.append(nn.Conv1d(widths[-1], config.code_size, config.final_kernel))
        self.activations.append(nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, activation in zip(self.cl, self.activations):
            x = activation(conv(x))
        return x


class _SdaRnn(nn.Module):
    def __init__(self, config: AudioEncoderConfig):
        super().__init__()
        self.window, self.code = config.window, config.code_size
        self.encoder = _SdaFrameEncoder(config)
        self.rnn = nn.GRU(config.code_size, config.gru_hidden, config.gru_layers, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, init_state: torch.Tensor):
        steps = x.size(1)
        codes = self.encoder(x.reshape(-1, 1, self.window)).reshape(-1, steps, self.code)
        out, hidden = self.rnn(codes, init_state)
        return out[:, -1], lengths, hidden


class _DiffusedHeadsWrapper(nn.Module):
    def __init__(self, model: nn.Module, config: AudioEncoderConfig):
        super().__init__()
        self.model = model
        self.register_buffer("hidden", torch.zeros(config.gru_layers, 1, config.gru_hidden))

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        emb, _, hidden = self.model(window, torch.full([1], 3200, dtype=torch.long), self.hidden)
        return emb


def _official_like(encoder: SDAAudioEncoder) -> _SdaRnn:
    module = _SdaRnn(encoder.config)
    module.load_state_dict(encoder.state_dict(), strict=True)  # the names are the same, one to one
    return module.eval()


@pytest.fixture(scope="module")
def archive(encoder, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("sda") / "audio_encoder.pt"
    torch.jit.save(torch.jit.script(_official_like(encoder)), str(path))
    return str(path)


def _official_windows(samples: torch.Tensor) -> torch.Tensor:
    """The official cutting, written out: 1280 zeros either side, 3200-sample windows every 640 samples."""
    padded = torch.cat([torch.zeros(1280), samples, torch.zeros(1280)])
    starts = range(0, padded.numel() - 3200 + 1, 640)
    return torch.stack([padded[s:s + 3200] for s in starts])


def _samples(duration_s: float) -> torch.Tensor:
    return torch.from_numpy(speech_like(duration_s)) if duration_s >= 0.01 else torch.zeros(round(duration_s * RATE))


# ---------------------------------------------------------------------------------------- layout

def test_crema_layout_and_names_follow_sda():
    config = crema()
    assert config == AudioEncoderConfig()
    assert config.conv_lengths() == [200, 100, 50, 25, 5] and config.final_kernel == 5
    assert (config.window, config.stride, config.pad_samples, config.fps) == (3200, 640, 2560, 25.0)
    shapes = {name: tuple(t.shape) for name, t in SDAAudioEncoder(config).state_dict().items()}
    convs = [(16, 1, 80), (32, 16, 4), (64, 32, 4), (128, 64, 4), (256, 128, 10), (256, 256, 5)]
    expected = {}
    for i, shape in enumerate(convs):
        expected[f"encoder.cl.{i}.weight"], expected[f"encoder.cl.{i}.bias"] = shape, shape[:1]
        if i < 5:
            for stat in ("weight", "bias", "running_mean", "running_var"):
                expected[f"encoder.activations.{i}.0.{stat}"] = shape[:1]
            expected[f"encoder.activations.{i}.0.num_batches_tracked"] = ()
    for layer, width in ((0, 256), (1, 256)):
        expected.update({f"rnn.weight_ih_l{layer}": (768, width), f"rnn.weight_hh_l{layer}": (768, 256),
                         f"rnn.bias_ih_l{layer}": (768,), f"rnn.bias_hh_l{layer}": (768,)})
    assert shapes == expected


def test_config_round_trip_and_errors():
    for config in (crema(), tiny()):
        data = config.to_dict()
        as_json = {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
        assert AudioEncoderConfig.from_dict(as_json) == config
    with pytest.raises(InputError, match="unknown settings: bogus"):
        AudioEncoderConfig.from_dict({"bogus": 1})
    with pytest.raises(InputError, match="one entry per convolution"):
        AudioEncoderConfig(conv_kernels=(80, 4))
    with pytest.raises(InputError, match="leave nothing"):
        AudioEncoderConfig(window=100)


# ---------------------------------------------------------------------------------------- windowing

@pytest.mark.parametrize("duration_s, frames", [(0.1, 2), (1.0, 25), (3.37, 84)])
def test_windows_and_frame_count_match_the_official_cutting(duration_s, frames):
    samples = _samples(duration_s)
    windows = speech_windows(samples)
    official = _official_windows(samples)
    assert official_frame_count(samples.numel()) == frames == official.shape[0] == samples.numel() // 640
    assert default_frame_count(samples.numel()) == frames
    assert windows.shape == (frames, 3200) and torch.equal(windows, official)


def test_windows_for_a_given_frame_count_and_short_audio():
    samples = _samples(1.0)
    official = _official_windows(samples)
    assert torch.equal(speech_windows(samples, 10), official[:10])
    longer = speech_windows(samples, 30)
    assert torch.equal(longer[:25], official)
    assert torch.all(longer[29] == 0) and longer[26, :100].abs().sum() > 0  # past the end: silence
    assert speech_windows(torch.ones(639)).shape == (0, 3200)   # the official code raises here
    assert speech_windows(torch.ones(640)).shape == (1, 3200)
    assert speech_windows(torch.ones(639), 3).shape == (3, 3200)
    with pytest.raises(InputError):
        speech_windows(torch.ones(2, 100))
    with pytest.raises(InputError):
        speech_windows(torch.ones(100), -1)


# ---------------------------------------------------------------------------------------- the GRU state

def test_forward_shapes(encoder):
    out, hidden = encoder(torch.randn(3, 5, 3200))
    assert out.shape == (3, 5, 8) and hidden.shape == (2, 3, 8)
    out, hidden2 = encoder(torch.randn(3, 0, 3200), hidden)
    assert out.shape == (3, 0, 8) and hidden2 is hidden


def test_chunks_carry_the_state_and_equal_one_pass(encoder):
    samples = _samples(3.37)
    with torch.no_grad():
        whole, _ = encoder(speech_windows(samples)[None])
    whole = whole[0]
    assert whole.shape == (84, 8) and torch.isfinite(whole).all()
    for chunk in (1, 7, 84, 1000):
        chunked = encode_speech(encoder, samples, chunk_frames=chunk)
        assert chunked.shape == whole.shape
        assert (chunked - whole).abs().max() <= 1e-6
    # the state matters: the same windows from a zero state give other embeddings
    with torch.no_grad():
        restarted, _ = encoder(speech_windows(samples)[None, 10:20])
    assert (restarted[0] - whole[10:20]).abs().max() > 1e-4
    assert encode_speech(encoder, torch.zeros(100)).shape == (0, 8)


# ---------------------------------------------------------------------------------------- loading

def _same_outputs(loaded: nn.Module, original: SDAAudioEncoder, tolerance: float = 1e-6) -> None:
    samples = _samples(1.0)
    expected = encode_speech(original, samples)
    got = encode_speech(loaded, samples, chunk_frames=4)
    assert got.shape == expected.shape == (25, 8)
    assert (got - expected).abs().max() <= tolerance


def test_archive_tensors_load_into_the_encoder(encoder, archive):
    pytest.importorskip("faceanim.jit_archive")
    loaded = load_audio_encoder(archive)
    assert isinstance(loaded, SDAAudioEncoder) and not loaded.training and loaded.config == tiny()
    assert loaded.state_dict().keys() == encoder.state_dict().keys()
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    _same_outputs(loaded, encoder, 1e-6)


def test_archive_run_on_request_has_the_same_interface(encoder, archive):
    loaded = load_audio_encoder(archive, run_archive=True)
    assert isinstance(loaded, ArchiveAudioEncoder) and loaded.config == tiny()
    _same_outputs(loaded, encoder, 1e-6)


def test_archive_under_the_diffused_heads_wrapper(encoder, tmp_path):
    pytest.importorskip("faceanim.jit_archive")
    wrapper = _DiffusedHeadsWrapper(_official_like(encoder), encoder.config)
    assert set(wrapper.state_dict()) == {"hidden"} | {f"model.{k}" for k in encoder.state_dict()}
    path = tmp_path / "wrapped.pt"
    torch.jit.save(torch.jit.script(wrapper), str(path))
    _same_outputs(load_audio_encoder(path), encoder, 1e-6)


def test_crema_sized_archive_infers_the_released_config(tmp_path):
    pytest.importorskip("faceanim.jit_archive")
    path = tmp_path / "crema.pt"
    torch.jit.save(torch.jit.script(_official_like(SDAAudioEncoder(crema()).eval())), str(path))
    assert load_audio_encoder(path).config == crema()


def test_unknown_and_missing_names_in_one_line(encoder, tmp_path):
    tensors = dict(encoder.state_dict())
    tensors["encoder.extra.weight"] = torch.zeros(3)
    del tensors["rnn.bias_hh_l1"], tensors["encoder.activations.2.0.running_var"]
    with pytest.raises(CheckpointError) as caught:
        audio_encoder_from_tensors(tensors, config=tiny(), source="x.pt")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("x.pt: ")
    assert "unknown tensors: encoder.extra.weight" in message
    assert "missing tensors: encoder.activations.2.0.running_var, rnn.bias_hh_l1" in message
    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    with pytest.raises(CheckpointError, match="unknown tensors: encoder.extra.weight"):
        load_audio_encoder(path)


def test_archive_file_with_wrong_names_and_bad_files(encoder, tmp_path):
    pytest.importorskip("faceanim.jit_archive")
    module = _official_like(encoder)
    module.encoder.extra = nn.Linear(2, 2)
    path = tmp_path / "extra.pt"
    torch.jit.save(torch.jit.script(module), str(path))
    with pytest.raises(CheckpointError, match=r"unknown tensors: encoder\.extra\.bias, encoder\.extra\.weight"):
        load_audio_encoder(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_audio_encoder(tmp_path / "absent.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not an archive at all")
    with pytest.raises(CheckpointError):
        load_audio_encoder(garbage)
    with pytest.raises(CheckpointError):
        load_audio_encoder(garbage, run_archive=True)


def test_num_batches_tracked_is_optional_and_strides_need_a_config(encoder):
    tensors = {k: v for k, v in encoder.state_dict().items() if not k.endswith("num_batches_tracked")}
    _same_outputs(audio_encoder_from_tensors(tensors, config=tiny()), encoder)
    gap = {k: v for k, v in encoder.state_dict().items() if ".4." not in k}
    with pytest.raises(CheckpointError, match="not numbered"):
        audio_encoder_from_tensors(gap)
    shallow = AudioEncoderConfig(conv_channels=(2, 2, 4, 4), conv_kernels=(80, 4, 4, 4), conv_strides=(16, 2, 2, 2),
                                 conv_paddings=(32, 1, 1, 1), code_size=8, gru_hidden=8)
    assert shallow.final_kernel == 25
    tensors = _random_encoder(shallow).state_dict()
    with pytest.raises(CheckpointError, match="has 4 strided convolutions but the config 5"):
        audio_encoder_from_tensors(tensors)
    assert audio_encoder_from_tensors(tensors, config=shallow).config == shallow


def test_converted_folder_safetensors_and_sda_pickle(encoder, tmp_path):
    folder = save_audio_encoder(encoder, tmp_path / "converted")
    loaded = load_audio_encoder(folder)
    assert loaded.config == tiny()
    _same_outputs(loaded, encoder)
    single = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(single))
    _same_outputs(load_audio_encoder(single), encoder)
    # SDA's own checkpoints: the RNN's state dict under "encoder", beside the audio settings
    dat = tmp_path / "model.dat"
    torch.save({"encoder": encoder.state_dict(), "audio_rate": 16000, "audio_feat_len": 0.2, "video_rate": 25,
                "rnn_gen_dim": 8, "aud_enc_dim": 8}, str(dat))
    loaded = load_audio_encoder(dat)
    assert loaded.config == tiny()
    _same_outputs(loaded, encoder)


# ---------------------------------------------------------------------------------------- training features

@pytest.mark.parametrize("n_frames", [None, 40])
def test_frame_features_sda_and_logmel(encoder, n_frames):
    samples = _samples(1.3)
    count = n_frames if n_frames is not None else 32  # floor(1.3 * 25); faceanim.audio.frame_count rounds to 33
    sda = frame_features(samples, "sda", encoder=encoder, n_frames=n_frames)
    assert sda.shape == (count, 8) and sda.dtype == torch.float32 and torch.isfinite(sda).all()
    assert torch.allclose(sda[:32], encode_speech(encoder, samples)[:32], atol=1e-6)
    mel = frame_features(samples.numpy(), "logmel", n_frames=n_frames)
    assert mel.shape == (count, 320) and torch.isfinite(mel).all()
    short = frame_features(samples, "logmel", n_frames=10)
    assert torch.equal(short, mel[:10])   # rows do not depend on how many are asked for


def test_frame_features_wav2vec2(tmp_path):
    transformers = pytest.importorskip("transformers")
    from faceanim.audio import Wav2Vec2Features

    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=37, conv_dim=(16,) * 7,
                                         conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
                                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    transformers.Wav2Vec2Model(config).save_pretrained(tmp_path)
    transformers.Wav2Vec2FeatureExtractor().save_pretrained(tmp_path)
    samples = _samples(1.3)
    extractor = Wav2Vec2Features.from_pretrained(tmp_path)
    last = frame_features(samples, "wav2vec2", wav2vec2=extractor)
    assert last.shape == (32, 32) and torch.isfinite(last).all()
    both = frame_features(samples, "wav2vec2", wav2vec2=str(tmp_path), wav2vec2_layers=(0, -1), n_frames=20)
    assert both.shape == (20, 64) and torch.isfinite(both).all()


def test_frame_features_errors(encoder, monkeypatch):
    samples = _samples(0.5)
    with pytest.raises(InputError, match="kind"):
        frame_features(samples, "mfcc")
    with pytest.raises(MissingWeightsError):
        frame_features(samples, "sda")
    with pytest.raises(InputError, match="25 fps"):
        frame_features(samples, "sda", encoder=encoder, fps=30)
    monkeypatch.delenv("FACEANIM_WAV2VEC2", raising=False)
    with pytest.raises(MissingWeightsError):
        frame_features(samples, "wav2vec2")
    assert frame_features(samples, "logmel", fps=30).shape == (math.floor(0.5 * 30), 320)
    assert default_frame_count(np.int64(1600)) == 2
