"""Wav2Vec2Features on tiny random wav2vec2 models saved to disk: shapes per fps, equality with a direct
transformers computation (Hallo's interpolation and the 50 Hz alternative), chunking without frame shifts,
loading errors, and any sample rate / channel count."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soxr
import torch
import torch.nn.functional as F

from faceanim.audio import Wav2Vec2Features, frame_count
from faceanim.errors import CheckpointError, InputError, MissingWeightsError

from .signals import RATE, speech_like

transformers = pytest.importorskip("transformers")

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
            conv_dim=(16,) * 7, conv_stride=(5, 2, 2, 2, 2, 2, 2), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)  # real strides: 320 samples, 50 Hz


def _save_tiny_model(folder, **overrides) -> str:
    torch.manual_seed(0)
    model = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**{**TINY, **overrides}))
    model.save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor().save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    """Base-model layout: group norm over time in the first convolution."""
    return _save_tiny_model(tmp_path_factory.mktemp("wav2vec2_tiny"))


@pytest.fixture(scope="module")
def extractor(model_dir) -> Wav2Vec2Features:
    return Wav2Vec2Features.from_pretrained(model_dir)


def _hallo_reference(model, samples: np.ndarray, count: int) -> torch.Tensor:
    """What Hallo computes: feature-extractor normalisation, CNN features interpolated to the video frames
    with F.interpolate(align_corners=True), then projection and the (post-norm) transformer."""
    values = transformers.Wav2Vec2FeatureExtractor()(samples, sampling_rate=RATE, return_tensors="pt").input_values
    with torch.no_grad():
        cnn = F.interpolate(model.feature_extractor(values), size=count, mode="linear", align_corners=True)
        hidden, _ = model.feature_projection(cnn.transpose(1, 2))
        encoder = model.encoder
        states = [encoder.layer_norm(hidden + encoder.pos_conv_embed(hidden))]
        for layer in encoder.layers:
            states.append(layer(states[-1]))
    return torch.stack(states, dim=2)[0]


@pytest.mark.parametrize("fps", [25, 30])
def test_shape_per_fps_and_layer_selection(extractor, fps):
    audio = (speech_like(1.234), RATE)
    features = extractor(audio, fps)
    assert features.shape == (frame_count(1.234, fps), 3, 32) and features.dtype == torch.float32
    assert torch.isfinite(features).all()
    last = extractor(audio, fps, layers=[-1, 0])
    torch.testing.assert_close(last, features[:, [2, 0]])
    assert extractor(audio, fps, num_frames=40).shape == (40, 3, 32)


@pytest.mark.parametrize(("fps", "num_frames"), [(25, None), (30, None), (25, 61)])
def test_matches_hallo_interpolation_of_cnn_features(extractor, fps, num_frames):
    samples = speech_like(2.5)
    count = num_frames or frame_count(2.5, fps)
    expected = _hallo_reference(extractor.model, samples, count)
    torch.testing.assert_close(extractor((samples, RATE), fps, num_frames=num_frames), expected,
                               atol=1e-4, rtol=1e-4)


def test_hidden_states_mode_matches_direct_model_call_then_interpolation(model_dir):
    extractor = Wav2Vec2Features.from_pretrained(model_dir, interpolate_at="hidden_states")
    samples = speech_like(2.5)
    values = transformers.Wav2Vec2FeatureExtractor()(samples, sampling_rate=RATE, return_tensors="pt").input_values
    with torch.no_grad():
        output = extractor.model(values, output_hidden_states=True)
    at_50hz = torch.stack(output.hidden_states, dim=2)[0]          # (frames, L+1, D)
    for fps in (25, 30):
        count = frame_count(2.5, fps)
        expected = F.interpolate(at_50hz.permute(1, 2, 0), size=count, mode="linear", align_corners=True)
        torch.testing.assert_close(extractor((samples, RATE), fps), expected.permute(2, 0, 1), atol=1e-4, rtol=1e-4)


def _relative_error(chunked: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
    """Per hidden state: the largest deviation over frames and channels, in units of the features' spread."""
    return (chunked - whole).abs().amax(dim=(0, 2)) / whole.std(dim=(0, 2))


@pytest.mark.parametrize("interpolate_at", ["features", "hidden_states"])
@pytest.mark.parametrize(("fps", "num_frames"), [(25, None), (30, None), (25, 83)])
def test_chunked_equals_unchunked_within_a_small_bound(extractor, interpolate_at, fps, num_frames):
    """3 s in 1 s chunks with 0.5 s context. Layer 0 sees only 16 frames around it, so it must agree to float
    rounding (any shift of frames at a chunk boundary would show there); deeper layers attend to the whole
    input, so they differ slightly; without context they would differ a lot."""
    audio = (speech_like(3.0), RATE)
    def run(**chunking):
        features = Wav2Vec2Features(extractor.model, interpolate_at=interpolate_at, **chunking)
        return features(audio, fps, num_frames=num_frames)
    whole = run()
    error = _relative_error(run(chunk_seconds=1.0, context_seconds=0.5), whole)
    assert error[0] < 1e-4
    assert error.max() < 0.01    # measured about 0.001
    assert _relative_error(run(chunk_seconds=1.0, context_seconds=0.0), whole).max() > 0.2


def test_missing_folder_or_files_raise_missing_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("FACEANIM_WAV2VEC2", raising=False)
    with pytest.raises(MissingWeightsError, match="FACEANIM_WAV2VEC2"):
        Wav2Vec2Features.from_pretrained(None)
    missing = tmp_path / "nowhere"
    with pytest.raises(MissingWeightsError) as error:
        Wav2Vec2Features.from_pretrained(missing)
    assert str(missing) in str(error.value) and "--wav2vec2" in str(error.value)
    folder = _save_tiny_model(tmp_path / "partial")
    os.remove(os.path.join(folder, "preprocessor_config.json"))
    with pytest.raises(MissingWeightsError, match="preprocessor_config.json"):
        Wav2Vec2Features.from_pretrained(folder)


def test_folder_from_environment_and_device_dtype(model_dir, monkeypatch):
    monkeypatch.setenv("FACEANIM_WAV2VEC2", model_dir)
    extractor = Wav2Vec2Features.from_pretrained(device="cpu", dtype=torch.float64)
    features = extractor((speech_like(1.0), RATE), 25)
    assert features.dtype == torch.float64 and features.device.type == "cpu" and features.shape == (25, 3, 32)


def test_broken_or_mismatched_checkpoints_raise_checkpoint_error(tmp_path):
    broken = _save_tiny_model(tmp_path / "broken")
    with open(os.path.join(broken, "config.json"), "w") as config:
        config.write("{ not json")
    with pytest.raises(CheckpointError, match="broken"):
        Wav2Vec2Features.from_pretrained(broken)
    mismatched = _save_tiny_model(tmp_path / "mismatched")
    config_path = os.path.join(mismatched, "config.json")
    with open(config_path) as config:
        settings = json.load(config)
    settings["hidden_size"] = 48
    with open(config_path, "w") as config:
        json.dump(settings, config)
    with pytest.raises(CheckpointError, match="mismatched"):
        Wav2Vec2Features.from_pretrained(mismatched)


def test_44k_stereo_matches_16k_mono(extractor):
    mono = speech_like(2.0)
    at_44k = soxr.resample(mono, RATE, 44100, quality="HQ").astype(np.float32)
    stereo = np.stack([at_44k, at_44k], axis=1)
    whole = extractor((mono, RATE), 25)
    from_stereo = extractor((stereo, 44100), 25)
    assert from_stereo.shape == whole.shape
    assert _relative_error(from_stereo, whole).max() < 1e-3  # two band-limited resamplings (measured 6e-6)


def test_real_44k_stereo_speech(extractor, read_wav):
    samples, rate = read_wav("speech_ko_44k_stereo.wav")
    features = extractor((samples, rate), 30)
    assert features.shape == (frame_count(samples.shape[0] / rate, 30), 3, 32) and torch.isfinite(features).all()


def test_short_and_bad_inputs(extractor):
    assert extractor((np.zeros(0, np.float32), RATE), 25).shape == (0, 3, 32)
    assert extractor((speech_like(0.02), RATE), 25).shape == (1, 3, 32)   # shorter than one wav2vec window
    with pytest.raises(InputError):
        extractor((np.zeros(0, np.float32), RATE), 25, num_frames=3)
    with pytest.raises(InputError):
        extractor((speech_like(1.0), RATE), 25, layers=[3])
    with pytest.raises(InputError):
        extractor((speech_like(1.0), RATE), 25, num_frames=-1)


def test_import_is_light():
    code = ("import sys, faceanim.audio; "
            "print(sorted(m for m in ('librosa', 'transformers', 'soxr') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
