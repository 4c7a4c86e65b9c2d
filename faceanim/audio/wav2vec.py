"""wav2vec 2.0 hidden states at the video frame rate, from a local Hugging Face model folder.

Time resampling follows Hallo (fudan-generative-vision/hallo, hallo/models/wav2vec.py; FaceFormer does
the same): the 50 Hz output of the convolutional feature encoder is interpolated linearly to the number
of video frames, as `F.interpolate(size=num_frames, mode="linear", align_corners=True)` does (the first
and last video frame sit on the first and last wav2vec frame), *before* the feature projection and the
transformer, which therefore run at the video rate. Models trained on Hallo-style features expect that.
`interpolate_at="hidden_states"` instead runs the model at 50 Hz and interpolates its hidden states.
(Hallo keeps hidden states 1..L, i.e. `layers=range(1, L + 1)`, and counts frames with ceil rather than
`frame_count`'s rounding: pass `num_frames` to reproduce its frame count exactly.)

Long audio runs in chunks of `chunk_seconds`, each seeing `context_seconds` more audio on both sides.
Chunks are cut on the wav2vec frame grid, and every video frame keeps the position it has in the whole
clip, so chunking never shifts frames. The group norm of base models' first convolution normalises over
time; when chunking, it uses statistics of the whole clip (a cheap first pass), so the convolutional
features equal those of one pass over everything. The default 5 s context covers the positional
convolution (128 frames: 2.56 s at 25 fps), so hidden state 0 is unchanged by chunking too; only the
attention to audio beyond the context differs (on tiny random models with 1 s chunks and 0.5 s context:
about 0.1% of the features' spread, against 50-100% without context).
"""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch

from ..errors import CheckpointError, InputError, MissingWeightsError
from ..nn.device import ModelHolder
from ..progress import progress
from .signal import mono_samples, resample
from .windows import frame_count

WAV2VEC2_ENV = "FACEANIM_WAV2VEC2"
_HOW_TO_GIVE = ("pass a Hugging Face wav2vec2 folder (config.json, preprocessor_config.json and weights, "
                f"e.g. facebook/wav2vec2-base-960h) with --wav2vec2 or set {WAV2VEC2_ENV}")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json",
                 "pytorch_model.bin", "pytorch_model.bin.index.json")
_UNUSED_AT_INFERENCE = ("masked_spec_embed",)  # pre-training mask vector, absent from some exports


@dataclass(frozen=True)
class _Chunk:
    """One piece of a long input, in video frames and in wav2vec (50 Hz) frames."""

    frames: slice  # video frames whose rows this chunk produces
    seen: slice    # video frames the transformer sees: `frames` plus context (interpolate_at="features")
    cnn_first: int  # wav2vec frames [cnn_first, cnn_end) computed from the chunk's audio
    cnn_end: int
    is_last: bool   # runs to the end of the clip


class Wav2Vec2Features(ModelHolder):
    """Frame-aligned wav2vec 2.0 features: `extractor(audio, fps)` -> (T, L+1, D) tensor."""

    def __init__(self, model: Any, *, sampling_rate: int = 16000, do_normalize: bool = True,
                 interpolate_at: Literal["features", "hidden_states"] = "features",
                 chunk_seconds: float = 30.0, context_seconds: float = 5.0):
        """`model` is a `transformers.Wav2Vec2Model`; the other arguments come from its feature-extractor
        config (`from_pretrained` reads them) or choose the resampling and chunking described above."""
        if interpolate_at not in ("features", "hidden_states"):
            raise ValueError(f"interpolate_at must be 'features' or 'hidden_states', got {interpolate_at!r}")
        if not (chunk_seconds > 0 and context_seconds >= 0):
            raise ValueError("chunk_seconds must be > 0 and context_seconds >= 0")
        self.model = model.eval()
        self.sampling_rate = int(sampling_rate)
        self.do_normalize = bool(do_normalize)
        self.interpolate_at = interpolate_at
        self.chunk_seconds = float(chunk_seconds)
        self.context_seconds = float(context_seconds)
        config = model.config
        self._layers = list(zip(config.conv_kernel, config.conv_stride))
        self._stride = math.prod(config.conv_stride)  # samples between wav2vec frames (320: 50 Hz)
        self._receptive_field = _receptive_field(self._layers)  # samples behind one frame (400)
        self.frame_rate = self.sampling_rate / self._stride

    @classmethod
    def from_pretrained(cls, local_dir: str | os.PathLike | None = None, *, device: torch.device | str | None = None,
                        dtype: torch.dtype | None = None, **options: Any) -> Wav2Vec2Features:
        """Load `Wav2Vec2Model` and its feature-extractor config from a local folder, never the network.

        `local_dir=None` reads the folder from $FACEANIM_WAV2VEC2. A missing folder or file raises
        `MissingWeightsError`; a folder that does not load as a complete wav2vec2 raises `CheckpointError`.
        `options` go to the constructor (interpolate_at, chunk_seconds, context_seconds)."""
        folder = _model_folder(local_dir)
        from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model
        from transformers.utils import logging as hf_logging

        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # our own progress bars are the only ones a user should see
        try:
            model, info = Wav2Vec2Model.from_pretrained(folder, local_files_only=True, output_loading_info=True)
            extractor = Wav2Vec2FeatureExtractor.from_pretrained(folder, local_files_only=True)
        except Exception as exc:  # transformers raises OSError, ValueError, JSON and safetensors errors here
            raise CheckpointError(folder, f"does not load as a wav2vec2 model ({type(exc).__name__}: "
                                          f"{str(exc)[:200]})") from exc
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
        missing = sorted(key for key in info["missing_keys"] if not key.endswith(_UNUSED_AT_INFERENCE))
        if missing:
            raise CheckpointError(folder, f"{len(missing)} wav2vec2 weights are missing from the checkpoint "
                                          f"(e.g. {missing[0]}); is it a wav2vec2 model?")
        model.to(device=device, dtype=dtype)
        return cls(model, sampling_rate=extractor.sampling_rate, do_normalize=extractor.do_normalize, **options)

    @property
    def num_hidden_states(self) -> int:
        """L + 1: the transformer's input (after the positional convolution) and each layer's output."""
        return self.model.config.num_hidden_layers + 1

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    def __call__(self, audio: Any, fps: float = 25, *, num_frames: int | None = None,
                 layers: Literal["all"] | Sequence[int] = "all") -> torch.Tensor:
        """Hidden states per video frame: (T, len(layers), D) on the model's device and dtype.

        T is `frame_count(duration, fps)`, or `num_frames` when given (the audio is then spread over
        exactly that many frames, as Hallo does; fps is not used). `layers` picks hidden states by
        index (0 = transformer input, -1 = last layer). Any sample rate and channel count is accepted:
        the audio is averaged to mono, resampled to the model's rate (16 kHz) with soxr and normalised
        to zero mean and unit variance over the whole clip when the feature extractor does that."""
        count = self.frame_total(audio, fps, num_frames=num_frames)
        features = torch.empty((count, len(self._layer_indices(layers)), self.hidden_size), device=self.device,
                               dtype=self.dtype)
        for frames, rows in self.iter_features(audio, fps, num_frames=num_frames, layers=layers):
            features[frames] = rows
        return features

    def frame_total(self, audio: Any, fps: float = 25, *, num_frames: int | None = None) -> int:
        """The number of frames `__call__` / `iter_features` give for `audio`."""
        samples, rate = mono_samples(audio)
        return frame_count(samples.size / rate, fps) if num_frames is None else _checked_count(num_frames)

    def iter_features(self, audio: Any, fps: float = 25, *, num_frames: int | None = None,
                      layers: Literal["all"] | Sequence[int] = "all") -> Iterator[tuple[slice, torch.Tensor]]:
        """The rows of `__call__`, one chunk at a time: (frame slice, (frames, len(layers), D)), in order.
        Only one chunk of features exists at a time, so memory does not grow with the audio's length."""
        samples, rate = mono_samples(audio)
        count = self.frame_total(audio, fps, num_frames=num_frames)
        layer_ids = self._layer_indices(layers)
        if count == 0:
            return
        if samples.size == 0:
            raise InputError(getattr(audio, "path", None), f"audio is empty but {count} frames were asked for")
        wave = self._model_input(resample(samples, rate, self.sampling_rate))
        cnn_count = self._cnn_length(wave.shape[1])
        positions = np.linspace(0.0, cnn_count - 1, count)  # video frame t in wav2vec frames, align_corners
        chunks = list(self._chunks(positions, cnn_count))
        with contextlib.ExitStack() as hooks:
            norm = self._time_group_norm()
            if norm is not None and len(chunks) > 1:
                with torch.inference_mode():
                    statistics = self._clip_norm_statistics(wave, norm)
                hooks.enter_context(_hooked(norm, _fixed_group_norm(*statistics)))
            for chunk in progress(chunks, total=len(chunks), desc="wav2vec2", unit="chunk"):
                with torch.inference_mode():
                    rows = self._run_chunk(wave, positions, chunk, layer_ids)
                yield chunk.frames, rows

    def _layer_indices(self, layers: Literal["all"] | Sequence[int]) -> list[int]:
        count = self.num_hidden_states
        if isinstance(layers, str):
            if layers != "all":
                raise InputError(None, f"wav2vec2 layers must be 'all' or a list of indices, got {layers!r}")
            return list(range(count))
        indices = [int(index) for index in layers]
        if not indices or any(not -count <= index < count for index in indices):
            raise InputError(None, f"wav2vec2 layers {indices} out of range: the model has hidden states "
                                   f"0..{count - 1}")
        return [index % count for index in indices]

    def _model_input(self, samples: np.ndarray) -> torch.Tensor:
        """(1, N) waveform for the model: normalised like Wav2Vec2FeatureExtractor, long enough for one frame."""
        if self.do_normalize:  # the same float32 arithmetic as Wav2Vec2FeatureExtractor, to match it exactly
            samples = (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
        if samples.size < self._receptive_field:  # pad with silence (zero after normalising)
            samples = np.pad(samples, (0, self._receptive_field - samples.size))
        return torch.from_numpy(samples.astype(np.float32)[None]).to(device=self.device, dtype=self.dtype)

    def _cnn_length(self, num_samples: int) -> int:
        """Frames the convolutional encoder makes from `num_samples` samples (unpadded convolutions)."""
        for kernel, stride in self._layers:
            num_samples = (num_samples - kernel) // stride + 1
        return num_samples

    def _chunks(self, positions: np.ndarray, cnn_count: int) -> Iterator[_Chunk]:
        """Split the clip on the wav2vec frame grid; each video frame goes to the chunk holding its position."""
        core = max(1, round(self.chunk_seconds * self.frame_rate))
        margin = round(self.context_seconds * self.frame_rate)
        for first in range(0, cnn_count, core):
            end = min(cnn_count, first + core)
            frame_first, frame_end = np.searchsorted(positions, [first, end])
            if frame_first == frame_end:
                continue
            # +1: a frame just below `end` interpolates towards wav2vec frame `end`
            cnn_first, cnn_end = max(0, first - margin), min(cnn_count, end + 1 + margin)
            seen_first = np.searchsorted(positions, cnn_first, side="left")
            seen_end = np.searchsorted(positions, cnn_end - 1, side="right")
            yield _Chunk(slice(int(frame_first), int(frame_end)), slice(int(seen_first), int(seen_end)),
                         cnn_first, cnn_end, is_last=cnn_end == cnn_count)

    def _run_chunk(self, wave: torch.Tensor, positions: np.ndarray, chunk: _Chunk,
                   layer_ids: list[int]) -> torch.Tensor:
        """Rows for `chunk.frames`: (frames, len(layer_ids), D)."""
        # wav2vec frame k covers samples [k * stride, k * stride + receptive_field): cutting here keeps the
        # grid. The last chunk keeps the tail that makes no frame: it still counts in the group norm.
        end = self._stride * (chunk.cnn_end - 1) + self._receptive_field
        audio = wave[:, self._stride * chunk.cnn_first: None if chunk.is_last else end]
        cnn_frames = chunk.cnn_end - chunk.cnn_first
        if self.interpolate_at == "features":
            seen = positions[chunk.seen] - chunk.cnn_first
            with _hooked(self.model.feature_extractor, _resampled_encoder_output(seen, cnn_frames)):
                states = self._hidden_states(audio, layer_ids)
            return states[chunk.frames.start - chunk.seen.start: chunk.frames.stop - chunk.seen.start]
        states = self._hidden_states(audio, layer_ids)
        _check_length(states.shape[0], cnn_frames)
        return _lerp_rows(states, positions[chunk.frames] - chunk.cnn_first)

    def _hidden_states(self, audio: torch.Tensor, layer_ids: list[int]) -> torch.Tensor:
        output = self.model(audio, output_hidden_states=True)
        return torch.stack([output.hidden_states[index][0] for index in layer_ids], dim=1)

    def _time_group_norm(self) -> torch.nn.GroupNorm | None:
        """The first conv layer's group norm over time (feat_extract_norm="group"), if the model has one."""
        norm = getattr(self.model.feature_extractor.conv_layers[0], "layer_norm", None)
        return norm if isinstance(norm, torch.nn.GroupNorm) else None

    def _clip_norm_statistics(self, wave: torch.Tensor, norm: torch.nn.GroupNorm) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-group mean and variance of the first convolution's output over the whole clip (float64)."""
        conv = self.model.feature_extractor.conv_layers[0].conv
        kernel, stride = conv.kernel_size[0], conv.stride[0]
        total = (wave.shape[1] - kernel) // stride + 1
        step = max(1, round(self.chunk_seconds * self.sampling_rate / stride))
        sums = torch.zeros(2, norm.num_channels, dtype=torch.float64, device=wave.device)
        for first in range(0, total, step):  # pieces overlap by kernel - stride samples: each output once
            end = min(total, first + step)
            output = conv(wave[:, None, first * stride: (end - 1) * stride + kernel])[0].double()
            sums += torch.stack([output.sum(dim=1), output.square().sum(dim=1)])
        count = total * norm.num_channels // norm.num_groups
        mean, mean_square = sums.view(2, norm.num_groups, -1).sum(dim=2) / count
        return mean, (mean_square - mean.square()).clamp(min=0)


@contextlib.contextmanager
def _hooked(module: torch.nn.Module, hook: Any) -> Iterator[None]:
    """Within the block, `hook(module, inputs, output)` replaces the module's output."""
    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _resampled_encoder_output(positions: np.ndarray, expected_frames: int) -> Any:
    """Hook for the convolutional encoder: its (1, channels, frames) output resampled to `positions`."""
    def resample(module: Any, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        _check_length(output.shape[-1], expected_frames)
        return _lerp_rows(output[0].T, positions).T[None]

    return resample


def _fixed_group_norm(mean: torch.Tensor, var: torch.Tensor) -> Any:
    """Hook for a GroupNorm: normalise with the given per-group statistics instead of the input's own."""
    def normalise(module: torch.nn.GroupNorm, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        x = inputs[0]  # (batch, channels, time)
        grouped = x.reshape(x.shape[0], module.num_groups, -1, x.shape[-1])
        scale = (var + module.eps).rsqrt().to(x.dtype)[:, None, None]
        normalised = ((grouped - mean.to(x.dtype)[:, None, None]) * scale).reshape(x.shape)
        if module.affine:
            normalised = normalised * module.weight[:, None] + module.bias[:, None]
        return normalised

    return normalise


def _lerp_rows(rows: torch.Tensor, positions: np.ndarray) -> torch.Tensor:
    """Linear interpolation along dim 0 at fractional row `positions` (within 0..len-1)."""
    count = rows.shape[0]
    lower = np.clip(np.floor(positions), 0, max(count - 2, 0)).astype(np.int64)
    weight = np.clip(positions - lower, 0.0, 1.0)
    lower_rows = torch.from_numpy(lower).to(rows.device)
    upper_rows = (lower_rows + 1).clamp(max=count - 1)
    weight = torch.from_numpy(weight).to(device=rows.device, dtype=rows.dtype).reshape(-1, *[1] * (rows.ndim - 1))
    return rows[lower_rows] * (1 - weight) + rows[upper_rows] * weight


def _receptive_field(layers: list[tuple[int, int]]) -> int:
    """Input samples behind one output frame of a stack of unpadded convolutions."""
    field, jump = 1, 1
    for kernel, stride in layers:
        field += (kernel - 1) * jump
        jump *= stride
    return field


def _check_length(actual: int, expected: int) -> None:
    if actual != expected:  # a bug in the chunk arithmetic, not a user error
        raise RuntimeError(f"wav2vec2 chunk gave {actual} frames, expected {expected}")


def _checked_count(num_frames: int) -> int:
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 0:
        raise InputError(None, f"num_frames must be a non-negative integer, got {num_frames!r}")
    return int(num_frames)


def _model_folder(local_dir: str | os.PathLike | None) -> Path:
    """The model folder, checked for the files from_pretrained needs (MissingWeightsError if absent)."""
    local_dir = local_dir if local_dir is not None else (os.environ.get(WAV2VEC2_ENV) or None)
    if local_dir is None:
        raise MissingWeightsError(f"no wav2vec2 model folder given: {_HOW_TO_GIVE}")
    folder = Path(local_dir).expanduser()
    if not folder.is_dir():
        raise MissingWeightsError(f"{folder}: wav2vec2 model folder not found; {_HOW_TO_GIVE}")
    missing = [name for name in ("config.json", "preprocessor_config.json") if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in _WEIGHT_FILES):
        missing.append("model.safetensors or pytorch_model.bin")
    if missing:
        raise MissingWeightsError(f"{folder}: wav2vec2 model folder lacks {', '.join(missing)}; {_HOW_TO_GIVE}")
    return folder
