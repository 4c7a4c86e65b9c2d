"""read_audio / Audio / write_wav on generated files in many containers and sample formats."""
from __future__ import annotations

import wave

import numpy as np
import pytest

import faceanim.media.audio as audio_module
from faceanim.errors import InputError
from faceanim.media import Audio, VideoWriter, read_audio
from faceanim.media.audio import write_wav

from .synthetic import pattern_frame, sine, write_audio_file


def peak_frequency(samples: np.ndarray, rate: int) -> float:
    window = np.hanning(samples.size)
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(np.abs(np.fft.rfft(samples * window)))])


def write_pcm_wav(path, samples: np.ndarray, rate: int) -> None:
    """16-bit PCM with the stdlib, independently of write_wav."""
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.round(samples * 32767).astype("<i2").tobytes())


def test_wav_s16_mono_16k_is_read_exactly(tmp_path):
    signal = sine(500, 1.0, 16000)
    write_pcm_wav(tmp_path / "a.wav", signal, 16000)
    audio = read_audio(tmp_path / "a.wav", sample_rate=None)
    assert audio.sample_rate == 16000 and audio.samples.dtype == np.float32
    assert audio.samples.shape == signal.shape
    np.testing.assert_allclose(audio.samples, signal, atol=1.5 / 32768)


@pytest.mark.parametrize("codec, sample_format", [
    ("pcm_u8", "u8"), ("pcm_s16le", "s16"), ("pcm_s32le", "s32"), ("pcm_f32le", "flt"),
    ("pcm_f64le", "dbl"), ("flac", "s16"), ("flac", "s32"),
])
def test_sample_formats_are_scaled_to_unit_range(tmp_path, codec, sample_format):
    signal = sine(1000, 0.5, 44100, amplitude=0.8)
    stereo = np.stack([signal, 0.25 * signal], axis=1)
    suffix = ".flac" if codec == "flac" else ".wav"
    path = write_audio_file(tmp_path / f"a{suffix}", stereo, 44100, codec=codec, sample_format=sample_format)
    both = read_audio(path, sample_rate=None, mono=False)
    assert both.samples.shape == (signal.size, 2)
    tolerance = 1.5 / 128 if sample_format == "u8" else 1e-4
    np.testing.assert_allclose(both.samples, stereo, atol=tolerance)
    mixed = read_audio(path, sample_rate=None)
    np.testing.assert_allclose(mixed.samples, 0.625 * signal, atol=tolerance)


def test_stereo_mix_down_averages_channels(tmp_path):
    left, right = sine(700, 1.0, 44100), -sine(700, 1.0, 44100)
    path = write_audio_file(tmp_path / "opposed.wav", np.stack([left, right], 1), 44100,
                            codec="pcm_f32le", sample_format="flt")
    assert np.abs(read_audio(path, sample_rate=None).samples).max() < 1e-6  # opposite phases cancel


@pytest.mark.parametrize("suffix, codec, rate, sample_format", [
    (".mp3", "libmp3lame", 44100, "s16p"), (".m4a", "aac", 44100, "fltp"), (".ogg", "libopus", 48000, "s16")])
def test_compressed_audio_keeps_pitch_and_length(tmp_path, suffix, codec, rate, sample_format):
    path = write_audio_file(tmp_path / f"tone{suffix}", sine(880, 2.0, rate), rate, codec=codec,
                            sample_format=sample_format)
    audio = read_audio(path)  # resampled to 16 kHz
    assert audio.sample_rate == 16000
    assert audio.duration == pytest.approx(2.0, abs=0.06)  # an encoder frame of slack
    assert peak_frequency(audio.samples[4000:28000], 16000) == pytest.approx(880, abs=2)


def test_resampling_keeps_frequency_and_duration(tmp_path):
    original = Audio(sine(1000, 3.0, 44100), 44100)
    resampled = original.resample(16000)
    assert resampled.sample_rate == 16000 and resampled.samples.dtype == np.float32
    assert abs(resampled.samples.size - 48000) <= 1
    assert resampled.duration == pytest.approx(original.duration, abs=1 / 16000)
    assert peak_frequency(resampled.samples, 16000) == pytest.approx(1000, abs=1)
    assert np.abs(resampled.samples[1000:-1000]).max() == pytest.approx(0.5, abs=0.01)
    assert original.resample(44100) is original


def test_video_soundtrack_is_read(tmp_path):
    path = tmp_path / "talk.mp4"
    with VideoWriter(path, 25, preset="ultrafast", audio=Audio(sine(330, 1.0, 16000), 16000)) as writer:
        for index in range(25):
            writer.write(pattern_frame(32, 32, index))
    audio = read_audio(path)
    assert audio.duration == pytest.approx(1.0, abs=1024 / 16000)
    assert peak_frequency(audio.samples[1600:14400], 16000) == pytest.approx(330, abs=3)


def test_digital_silence_is_valid(tmp_path):
    write_pcm_wav(tmp_path / "quiet.wav", np.zeros(8000, np.float32), 16000)
    audio = read_audio(tmp_path / "quiet.wav")
    assert audio.samples.shape == (8000,) and not audio.samples.any()


def test_write_wav_round_trip_and_clipping(tmp_path):
    stereo = np.stack([sine(200, 0.5, 8000), np.full(4000, 1.7, np.float32)], axis=1)
    path = write_wav(tmp_path / "out.wav", Audio(stereo, 8000))
    back = read_audio(path, sample_rate=None, mono=False)
    assert back.sample_rate == 8000 and back.samples.shape == (4000, 2)
    np.testing.assert_allclose(back.samples[:, 0], stereo[:, 0], atol=1 / 32767)
    np.testing.assert_allclose(back.samples[:, 1], 32767 / 32768, atol=1e-6)  # clipped to full scale
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


def test_audio_validates_its_fields():
    with pytest.raises(ValueError):
        Audio(np.zeros((2, 2, 2)), 16000)
    with pytest.raises(ValueError):
        Audio(np.zeros(10), 0)
    assert Audio(np.zeros(8000, np.float64), 16000).samples.dtype == np.float32
    assert Audio(np.zeros((16000, 2)), 16000).duration == 1.0


def test_audio_longer_than_the_limit_is_refused(tmp_path, monkeypatch):
    write_pcm_wav(tmp_path / "long.wav", sine(100, 3.0, 8000), 8000)
    monkeypatch.setattr(audio_module, "MAX_AUDIO_SECONDS", 2)
    with pytest.raises(InputError, match=r"long\.wav: audio is .* the limit is"):
        read_audio(tmp_path / "long.wav")
