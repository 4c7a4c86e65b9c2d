"""The Diffused Heads speech encoder: one 256-d embedding per 25 fps video frame, from 16 kHz audio.

Diffused Heads (MStypulkowski/diffused-heads) conditions every frame on the output of a TorchScript
archive released with the model, `audio_encoder.pt`. Its main-branch `utils.py` shows how it is used:

* `AudioEncoder.__init__` keeps the loaded archive as `self.model` beside a buffer `hidden` of zeros
  (2, 1, 256): a GRU state of 2 layers x 256 units, reset to zeros before every clip;
* `AudioEncoder.forward` windows the waveform with `create_windowed_sequence(audio, 3200,
  cutting_stride=640, pad_samples=3200-640, cut_dim=1)` and calls the archive once per window,
  `emb, _, hidden = model(window (1, 1, 3200), LongTensor([3200]), init_state=hidden)`, carrying the
  state from window to window; the embeddings are stacked to (T, 256) (`sample.py` adds the batch axis);
* `get_audio_emb` feeds `torchaudio.load`'s float samples (in [-1, 1], no further scaling) at 16 kHz.

The archive is the audio encoder of DinoMan/speech-driven-animation (SDA), as the train-branch README says.
SDA's `sda/rnn_audio.py` (class `RNN`) holds a frame encoder under `encoder` and an `nn.GRU(code, hidden,
n_layers=2, batch_first=True)` under `rnn`; `sda/encoder_audio.py` (class `Encoder`) keeps its
convolutions in the ModuleList `cl` and, in the ModuleList `activations`, `Sequential(BatchNorm1d, ReLU)`
after every convolution but the last, which is followed by `Tanh`. `sda/sda.py` builds it with
`init_kernel=0.005` s and `init_stride=0.001` s, and `sda/utils.py` gives the layout rule (`prime_factors`,
`calculate_padding`, `calculate_output_size`). For a 0.2 s window at 16 kHz (3200 samples) that rule gives

    cl.0  Conv1d(1, 16, 80, stride 16, padding 32)   3200 -> 200 samples, BatchNorm1d(16) + ReLU
    cl.1  Conv1d(16, 32, 4, stride 2, padding 1)      200 -> 100,          BatchNorm1d(32) + ReLU
    cl.2  Conv1d(32, 64, 4, stride 2, padding 1)      100 -> 50,           BatchNorm1d(64) + ReLU
    cl.3  Conv1d(64, 128, 4, stride 2, padding 1)      50 -> 25,           BatchNorm1d(128) + ReLU
    cl.4  Conv1d(128, 256, 10, stride 5, padding 3)    25 -> 5,            BatchNorm1d(256) + ReLU
    cl.5  Conv1d(256, code, 5)                           5 -> 1,            Tanh

then GRU(code -> 256, 2 layers) over the windows; the embedding is the top layer's output (256).

**Tensor names are inferred from that source**, since the real `audio_encoder.pt` is not available here:
`torch.jit.load('audio_encoder.pt').state_dict()` should hold `encoder.cl.{0..5}.weight/bias`,
`encoder.activations.{0..4}.0.{weight,bias,running_mean,running_var,num_batches_tracked}` and
`rnn.{weight_ih,weight_hh,bias_ih,bias_hh}_l{0,1}`, the names `SDAAudioEncoder` uses. The loader also
accepts those names under the Diffused Heads wrapper's attribute (`model.` + its `hidden` buffer), SDA's
own `model.dat`-style pickles (`{"encoder": RNN state dict, "audio_rate": ..., ...}`) and our converted
files. Not verifiable without the archive: the frame encoder's width `code` (read from the file's shapes;
256 by default), whether the archive's `forward` really is the `RNN` of SDA or a variant with the same
modules (its `(x, lengths, init_state)` interface differs from the public `RNN.forward`), and whether it
was saved in eval mode (the official sampler never calls `.eval()`, so an archive saved in training mode
would normalise each window with its own BatchNorm statistics; we always use the running statistics).
`load_audio_encoder(..., run_archive=True)` runs the archive itself, exactly as the official code calls it.

Frame count (official): the waveform of N samples is padded with pad_samples // 2 = 1280 zeros on the
left and 1280 on the right, and windows of 3200 samples start every 640 samples, so
T = (N + 2560 - 3200) // 640 + 1 = N // 640 = floor(N / 16000 * 25) frames (for N >= 640; the official
code raises for shorter audio, we return 0 windows). Window t covers samples [640 t - 1280, 640 t + 1920),
centred 20 ms after t / 25 s. This floors, where `faceanim.audio.frame_count` rounds: 0.1 s gives 2 frames
here and 3 there.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn

from ...errors import CheckpointError, InputError, MissingWeightsError
from ...settings import settings_checker

log = logging.getLogger(__name__)

FEATURE_KINDS = ("sda", "wav2vec2", "logmel")
CONVERTED_METHOD = "diffused_heads_audio_encoder"   # the "method" of a converted folder's config.json
_WRAPPER_BUFFERS = ("hidden",)                       # the Diffused Heads AudioEncoder's own buffer
_GRU_ANCHOR = "rnn.weight_ih_l0"

_check = settings_checker("diffused_heads audio encoder config")


# --------------------------------------------------------------------------------------------- settings

def _prime_factors(number: int) -> list[int]:
    factors, factor = [], 2
    while factor * factor <= number:
        while number % factor == 0:
            factors.append(factor)
            number //= factor
        factor += 1
    return factors + ([number] if number > 1 else [])


def _same_padding(size: int, kernel: int, stride: int) -> int:
    """Total padding that makes a strided convolution give ceil(size / stride) outputs (SDA's rule)."""
    return (math.ceil(size / stride) - 1) * stride + kernel - size


def sda_conv_layout(window: int, init_kernel: int, init_stride: int, base_channels: int = 16) -> dict:
    """The convolutions SDA's `Encoder` builds for a `window`-sample input (lengths in samples).

    A first convolution of `init_kernel`/`init_stride`, then one per prime factor p of the length it
    leaves (kernel 2p, stride p), in increasing order, doubling the channels each time; every one padded
    by ceil(total / 2) on both sides, with the total of `_same_padding`. The last prime factor gets no
    strided convolution: the final convolution's kernel spans the remaining length instead."""
    total = _same_padding(window, init_kernel, init_stride)
    length = (window + total - init_kernel) // init_stride + 1
    kernels, strides = [init_kernel], [init_stride]
    factors = _prime_factors(length)
    kernels += [2 * p for p in factors]
    strides += factors
    size, paddings = window, []
    for kernel, stride in zip(kernels[:-1], strides[:-1]):
        total = _same_padding(size, kernel, stride)
        paddings.append(math.ceil(total / 2))
        size = (size + total - kernel) // stride + 1
    count = len(paddings)
    return {"conv_channels": tuple(base_channels * 2 ** i for i in range(count)),
            "conv_kernels": tuple(kernels[:count]), "conv_strides": tuple(strides[:count]),
            "conv_paddings": tuple(paddings)}


@dataclass(frozen=True)
class AudioEncoderConfig:
    """The SDA speech encoder and its windowing. Lengths are in samples at `sample_rate`.

    `conv_*` describe the strided convolutions (each followed by BatchNorm + ReLU); the final convolution
    (`code_size` outputs, Tanh) has the kernel `final_kernel` that spans what they leave of a window. The
    embedding is the GRU's top-layer output (`embedding_dim` = `gru_hidden`)."""

    sample_rate: int = 16000
    window: int = 3200                 # 0.2 s of audio per video frame
    stride: int = 640                  # 40 ms: one window per 25 fps frame
    pad_samples: int = 2560            # window - stride, split 1280 / 1280 around the waveform
    conv_channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    conv_kernels: tuple[int, ...] = (80, 4, 4, 4, 10)
    conv_strides: tuple[int, ...] = (16, 2, 2, 2, 5)
    conv_paddings: tuple[int, ...] = (32, 1, 1, 1, 3)
    code_size: int = 256               # frame encoder output = GRU input
    gru_hidden: int = 256
    gru_layers: int = 2

    def __post_init__(self):
        for name in ("conv_channels", "conv_kernels", "conv_strides", "conv_paddings"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        counts = {len(self.conv_channels), len(self.conv_kernels), len(self.conv_strides), len(self.conv_paddings)}
        _check([(len(counts) == 1 and self.conv_channels != (), "conv_channels, conv_kernels, conv_strides and "
                                                                 "conv_paddings need one entry per convolution"),
                (min(self.conv_channels + self.conv_kernels + self.conv_strides) >= 1,
                 "convolution widths, kernels and strides must be >= 1"),
                (min(self.conv_paddings) >= 0, "convolution paddings must be >= 0"),
                (self.sample_rate >= 1 and self.window >= 1 and self.stride >= 1 and self.pad_samples >= 0,
                 "sample_rate, window and stride must be >= 1 and pad_samples >= 0"),
                (min(self.code_size, self.gru_hidden, self.gru_layers) >= 1,
                 "code_size, gru_hidden and gru_layers must be >= 1")])
        _check([(self.conv_lengths()[-1] >= 1, f"the convolutions leave nothing of a {self.window}-sample window")])

    def conv_lengths(self) -> list[int]:
        """Length of a window after each strided convolution."""
        lengths, size = [], self.window
        for kernel, stride, padding in zip(self.conv_kernels, self.conv_strides, self.conv_paddings):
            size = (size + 2 * padding - kernel) // stride + 1
            lengths.append(size)
        return lengths

    @property
    def final_kernel(self) -> int:
        return self.conv_lengths()[-1]

    @property
    def embedding_dim(self) -> int:
        return self.gru_hidden

    @property
    def fps(self) -> float:
        return self.sample_rate / self.stride

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AudioEncoderConfig":
        if not isinstance(data, Mapping):
            raise InputError(None, "diffused_heads audio encoder config must be a mapping")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InputError(None, f"diffused_heads audio encoder config: unknown settings: {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def from_sda(cls, *, sample_rate: int = 16000, window_s: float = 0.2, fps: float = 25.0,
                 init_kernel_s: float = 0.005, init_stride_s: float = 0.001, base_channels: int = 16,
                 code_size: int = 256, gru_hidden: int = 256, gru_layers: int = 2) -> "AudioEncoderConfig":
        """The encoder SDA builds for these settings (its `audio_feat_len`, `video_rate`, ...)."""
        window, stride = round(window_s * sample_rate), round(sample_rate / fps)
        layout = sda_conv_layout(window, round(init_kernel_s * sample_rate), round(init_stride_s * sample_rate),
                                 base_channels)
        return cls(sample_rate=sample_rate, window=window, stride=stride, pad_samples=window - stride,
                   code_size=code_size, gru_hidden=gru_hidden, gru_layers=gru_layers, **layout)


def crema() -> AudioEncoderConfig:
    """The encoder released with Diffused Heads (`audio_encoder.pt`), as SDA builds it for 0.2 s windows."""
    return AudioEncoderConfig.from_sda()


def tiny() -> AudioEncoderConfig:
    """The same windows and kernels with a few channels: for tests."""
    return AudioEncoderConfig(conv_channels=(2, 2, 4, 4, 8), code_size=8, gru_hidden=8, gru_layers=2)


PRESETS = {"crema": crema, "tiny": tiny}


# --------------------------------------------------------------------------------------------- modules

class _FrameEncoder(nn.Module):
    """One window of samples -> one code vector. Attribute names as SDA's `Encoder` (`cl`, `activations`)."""

    def __init__(self, config: AudioEncoderConfig):
        super().__init__()
        widths = (1,) + config.conv_channels
        self.cl = nn.ModuleList(
            nn.Conv1d(widths[i], widths[i + 1], kernel, stride=stride, padding=padding)
            for i, (kernel, stride, padding) in enumerate(zip(config.conv_kernels, config.conv_strides,
                                                               config.conv_paddings)))
        self.cl.append(nn.Conv1d(widths[-1], config.code_size, config.final_kernel))
        self.activations = nn.ModuleList(nn.Sequential(nn.BatchNorm1d(width), nn.ReLU(inplace=True))
                                         for width in config.conv_channels)
        self.activations.append(nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, window) -> (N, code_size)."""
        for conv, activation in zip(self.cl, self.activations):
            x = activation(conv(x))
        return x.flatten(1)


class SDAAudioEncoder(nn.Module):
    """SDA's speech encoder (frame encoder under `encoder`, GRU under `rnn`), parameter names as in the
    released archive (see the module docstring).

    `forward(windows (B, T, window), hidden=None) -> (embeddings (B, T, embedding_dim), hidden)`: the GRU
    state (gru_layers, B, gru_hidden) starts at zeros unless given, and the state after the last window is
    returned, so a long clip can be encoded in pieces (`encode_speech`)."""

    def __init__(self, config: AudioEncoderConfig | None = None):
        super().__init__()
        self.config = config or crema()
        self.encoder = _FrameEncoder(self.config)
        self.rnn = nn.GRU(self.config.code_size, self.config.gru_hidden, self.config.gru_layers, batch_first=True)

    def forward(self, windows: torch.Tensor, hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, steps = _check_windows(windows, self.config)
        if hidden is None:
            hidden = windows.new_zeros(self.config.gru_layers, batch, self.config.gru_hidden)
        if steps == 0:
            return windows.new_zeros(batch, 0, self.config.gru_hidden), hidden
        codes = self.encoder(windows.reshape(batch * steps, 1, self.config.window))
        return self.rnn(codes.view(batch, steps, self.config.code_size), hidden)


class ArchiveAudioEncoder(nn.Module):
    """The official TorchScript archive, run as the official sampler runs it (one window per call, state
    carried), behind `SDAAudioEncoder`'s interface. Only built when the caller opts in to running it."""

    def __init__(self, archive: Any, config: AudioEncoderConfig, source: str | os.PathLike = "archive"):
        super().__init__()
        self.archive = archive
        self.config = config
        self.source = os.fspath(source)

    def forward(self, windows: torch.Tensor, hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, steps = _check_windows(windows, self.config)
        if hidden is None:
            hidden = windows.new_zeros(self.config.gru_layers, batch, self.config.gru_hidden)
        lengths = torch.full((batch,), self.config.window, dtype=torch.long)  # official: a CPU LongTensor
        rows = []
        for step in range(steps):
            emb, _, hidden = self.archive(windows[:, step, None], lengths, init_state=hidden)
            if emb.numel() != batch * self.config.embedding_dim:
                raise CheckpointError(self.source, f"the archive returned embeddings of shape {tuple(emb.shape)} "
                                                   f"for {batch} window(s); expected {self.config.embedding_dim} each")
            rows.append(emb.reshape(batch, self.config.embedding_dim))
        if not rows:
            return windows.new_zeros(batch, 0, self.config.embedding_dim), hidden
        return torch.stack(rows, dim=1), hidden


def _check_windows(windows: torch.Tensor, config: AudioEncoderConfig) -> tuple[int, int]:
    if windows.ndim != 3 or windows.shape[-1] != config.window:
        raise ValueError(f"windows must be (batch, frames, {config.window}), got {tuple(windows.shape)}")
    return windows.shape[0], windows.shape[1]


# --------------------------------------------------------------------------------------------- windowing

def official_frame_count(num_samples: int, config: AudioEncoderConfig | None = None) -> int:
    """Frames (windows) the official code makes from `num_samples` samples:
    (N + pad_samples - window) // stride + 1, i.e. N // 640 at 16 kHz / 25 fps; 0 when the padded audio
    is shorter than one window (N < 640), where the official code raises."""
    config = config or crema()
    padded = int(num_samples) + config.pad_samples
    return 0 if padded < config.window else (padded - config.window) // config.stride + 1


def _as_samples(samples: Any) -> torch.Tensor:
    tensor = torch.as_tensor(samples)
    if tensor.ndim != 1:
        raise InputError(None, f"speech samples must be 1-D (mono, 16 kHz), got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise InputError(None, f"speech samples must be floats in [-1, 1], got dtype {tensor.dtype}")
    return tensor.detach().to(device="cpu", dtype=torch.float32)


def _window_view(samples: Any, n_frames: int | None, config: AudioEncoderConfig) -> torch.Tensor:
    """(T, window) view of the zero-padded waveform, window t starting at sample t * stride - left pad."""
    samples = _as_samples(samples)
    count = official_frame_count(samples.numel(), config) if n_frames is None else _frame_number(n_frames)
    left = config.pad_samples // 2
    right = config.pad_samples - left
    needed = (count - 1) * config.stride + config.window if count else 0
    right += max(0, needed - (left + samples.numel() + right))  # n_frames past the end: silence
    padded = torch.cat([samples.new_zeros(left), samples, samples.new_zeros(right)])
    if padded.numel() < config.window:
        return padded.new_zeros(0, config.window)
    return padded.unfold(0, config.window, config.stride)[:count]


def _frame_number(n_frames: Any) -> int:
    if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 0:
        raise InputError(None, f"n_frames must be a non-negative integer, got {n_frames!r}")
    return n_frames


def speech_windows(samples: Any, n_frames: int | None = None,
                   config: AudioEncoderConfig | None = None) -> torch.Tensor:
    """The official windows of a 16 kHz mono waveform (float samples in [-1, 1], used as they are):
    (T, window) float32, T = `official_frame_count(N)` or `n_frames` (windows past the end of the audio
    see zeros; fewer frames drop the last windows)."""
    return _window_view(samples, n_frames, config or crema()).clone()


def encode_speech(encoder: nn.Module, samples16k: Any, *, n_frames: int | None = None, chunk_frames: int = 250,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """Speech embeddings (T, embedding_dim), one per video frame, as the official sampler computes them.

    The windows go through `encoder` (`SDAAudioEncoder` or `ArchiveAudioEncoder`) `chunk_frames` at a time
    with the GRU state carried across chunks, which gives the result of one pass over all windows. The
    encoder keeps its train/eval mode (the loaders return it in eval mode); it is moved to `device` when
    given, else runs where its weights are. The result is on that device, in the encoder's dtype."""
    if isinstance(chunk_frames, bool) or not isinstance(chunk_frames, int) or chunk_frames < 1:
        raise InputError(None, f"chunk_frames must be a positive integer, got {chunk_frames!r}")
    config = encoder.config
    if device is not None:
        encoder.to(device)
    first = next(encoder.parameters(), None)
    if device is not None:
        run_device = torch.device(device)
    else:
        run_device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    windows = _window_view(samples16k, n_frames, config)
    rows, hidden = [], None
    with torch.inference_mode():
        for start in range(0, windows.shape[0], chunk_frames):
            chunk = windows[start:start + chunk_frames].to(device=run_device, dtype=dtype)
            out, hidden = encoder(chunk[None], hidden)
            rows.append(out[0])
    if not rows:
        return torch.zeros(0, config.embedding_dim, device=run_device, dtype=dtype)
    return torch.cat(rows)


# --------------------------------------------------------------------------------------------- loading

def load_audio_encoder(path: str | os.PathLike, *, config: AudioEncoderConfig | None = None,
                       run_archive: bool = False) -> nn.Module:
    """The speech encoder in eval mode, from one of:

    * the official TorchScript archive (`audio_encoder.pt`): its tensors are read without running any of
      its code (`faceanim.jit_archive`) into `SDAAudioEncoder`;
    * with `run_archive=True` (the caller accepts that the archive's code runs): the archive itself via
      `torch.jit.load`, wrapped as `ArchiveAudioEncoder` with the same call interface;
    * SDA's `model.dat`-style checkpoint (a pickle with an `encoder` state dict), read weights-only;
    * our converted format: a `.safetensors` file, or a folder with config.json + model.safetensors.

    Widths, kernels, GRU size and depth are read from the tensors' shapes; strides, paddings and windowing
    (not stored in the files) come from `config` (default `crema()`), or from a converted folder's
    config.json. A file whose tensor names do not fit raises CheckpointError naming the unknown and the
    missing names."""
    path = Path(path)
    if run_archive:
        return _run_archive(path, config)
    if path.is_dir():
        from ...checkpoints import load_model_folder

        folder_config, state = load_model_folder(path, CONVERTED_METHOD, "Diffused Heads audio encoder",
                                                 AudioEncoderConfig.from_dict)
        return audio_encoder_from_tensors(state, config=folder_config, infer=False, source=path)
    if not path.is_file():
        raise CheckpointError(path, "audio encoder file not found")
    if path.suffix == ".safetensors":
        from ...checkpoints import load_checkpoint

        return audio_encoder_from_tensors(load_checkpoint(path), config=config, source=path)
    from ...jit_archive import is_torchscript_archive, read_torchscript_tensors

    if is_torchscript_archive(path):
        return audio_encoder_from_tensors(read_torchscript_tensors(path), config=config, source=path)
    return _from_pickle(path, config)


def _run_archive(path: Path, config: AudioEncoderConfig | None) -> ArchiveAudioEncoder:
    if not path.is_file():
        raise CheckpointError(path, "TorchScript archive not found")
    try:
        archive = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # torch raises RuntimeError, ValueError, zip errors ... for non-archives
        lines = str(err).strip().splitlines()
        reason = lines[0][:200] if lines else type(err).__name__
        raise CheckpointError(path, f"not a loadable TorchScript archive ({reason})") from None
    if archive.training:
        log.warning("%s was saved in training mode: the official sampler runs it so (BatchNorm on each "
                    "window's own statistics); faceanim runs it in eval mode", path)
    tensors = _strip_wrapper(archive.state_dict(), path)
    wrapper = ArchiveAudioEncoder(archive, _infer_config(tensors, config or crema(), path), source=path)
    return wrapper.eval()


def _from_pickle(path: Path, config: AudioEncoderConfig | None) -> SDAAudioEncoder:
    from ...checkpoints import load_checkpoint, state_dict_from

    obj = load_checkpoint(path)
    if isinstance(obj, Mapping) and isinstance(obj.get("encoder"), Mapping):
        if config is None and {"audio_rate", "audio_feat_len", "video_rate"} <= set(obj):
            try:
                config = AudioEncoderConfig.from_sda(sample_rate=int(obj["audio_rate"]),
                                                     window_s=float(obj["audio_feat_len"]),
                                                     fps=float(obj["video_rate"]))
            except (InputError, TypeError, ValueError) as err:
                raise CheckpointError(path, f"SDA settings do not make an encoder ({err})") from None
        return audio_encoder_from_tensors(state_dict_from(obj, "encoder", path=path), config=config, source=path)
    return audio_encoder_from_tensors(state_dict_from(obj, path=path), config=config, source=path)


def audio_encoder_from_tensors(tensors: Mapping[str, torch.Tensor], *, config: AudioEncoderConfig | None = None,
                               infer: bool = True, source: str | os.PathLike = "checkpoint") -> SDAAudioEncoder:
    """`SDAAudioEncoder` (eval mode) holding `tensors` (the archive's state_dict names, optionally under the
    Diffused Heads wrapper's `model.`); `infer` reads the sizes from the tensors' shapes, on top of
    `config`. Strict: CheckpointError(source, ...) lists unknown, missing and wrongly shaped tensors."""
    tensors = _strip_wrapper(tensors, source)
    base = config or crema()
    config = _infer_config(tensors, base, source) if infer else base
    module = SDAAudioEncoder(config)
    own = module.state_dict()
    # num_batches_tracked only counts training steps; a file without it loses nothing at inference
    optional = {name for name in own if name.endswith("num_batches_tracked")}
    unknown = sorted(set(tensors) - set(own))
    missing = sorted(set(own) - set(tensors) - optional)
    shapes = [f"{name} {tuple(tensors[name].shape)} vs {tuple(own[name].shape)}"
              for name in sorted(set(own) & set(tensors)) if tensors[name].shape != own[name].shape]
    problems = [f"{label}: {_names(items)}" for label, items in
                (("unknown tensors", unknown), ("missing tensors", missing), ("shape mismatch", shapes)) if items]
    if problems:
        raise CheckpointError(source, "does not fit the SDA audio encoder; " + "; ".join(problems))
    module.load_state_dict({name: tensors.get(name, own[name]) for name in own})
    return module.eval()


def save_audio_encoder(encoder: SDAAudioEncoder, folder: str | os.PathLike, *,
                       metadata: Mapping[str, str] | None = None) -> Path:
    """Write our converted format: config.json {"method": CONVERTED_METHOD, "model": config} +
    model.safetensors (the archive's tensor names)."""
    from ...checkpoints import save_model_folder

    return save_model_folder(folder, CONVERTED_METHOD, encoder.config.to_dict(), encoder.state_dict(),
                             metadata=metadata)


def _names(items: Sequence[str], limit: int = 8) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _strip_wrapper(tensors: Mapping[str, torch.Tensor], source: Any) -> dict[str, torch.Tensor]:
    """The encoder's tensors without the prefix of a module holding it (`model.` in Diffused Heads'
    AudioEncoder, `module.` of DataParallel); that wrapper's `hidden` buffer is dropped."""
    anchors = [name[: -len(_GRU_ANCHOR)] for name in tensors if name.endswith(_GRU_ANCHOR)]
    anchors = [prefix for prefix in anchors if prefix == "" or prefix.endswith(".")]
    if len(anchors) > 1:
        raise CheckpointError(source, f"holds several audio encoders (under {', '.join(repr(a) for a in anchors)})")
    prefix = anchors[0] if anchors else ""
    if not prefix:
        return dict(tensors)
    outer = prefix[:-1].rpartition(".")[0]
    outer = f"{outer}." if outer else ""
    wrapper_buffers = {outer + name for name in _WRAPPER_BUFFERS}
    out = {}
    for name, tensor in tensors.items():
        if name.startswith(prefix):
            out[name[len(prefix):]] = tensor
        elif name not in wrapper_buffers:
            out[name] = tensor  # reported as unknown
    return out


def _infer_config(tensors: Mapping[str, torch.Tensor], base: AudioEncoderConfig, source: Any) -> AudioEncoderConfig:
    """`base` with the widths, kernels and GRU size the tensors' shapes show (strides are not stored)."""
    convs = sorted(int(m.group(1)) for name in tensors if (m := re.fullmatch(r"encoder\.cl\.(\d+)\.weight", name)))
    layers = [int(m.group(1)) for name in tensors if (m := re.fullmatch(r"rnn\.weight_ih_l(\d+)", name))]
    if not convs or not layers or "rnn.weight_hh_l0" not in tensors:
        return base  # not an SDA encoder: the strict name check reports what is missing
    if convs != list(range(len(convs))) or sorted(layers) != list(range(len(layers))):
        raise CheckpointError(source, f"audio encoder layers are not numbered 0..n (convolutions {convs}, "
                                      f"GRU layers {sorted(layers)})")
    shapes = [tuple(tensors[f"encoder.cl.{i}.weight"].shape) for i in convs]
    if any(len(shape) != 3 for shape in shapes):
        raise CheckpointError(source, f"audio encoder convolutions are not 1-D (weights {shapes})")
    strided = shapes[:-1]
    if len(strided) != len(base.conv_strides):
        raise CheckpointError(source, f"has {len(strided)} strided convolutions but the config "
                                      f"{len(base.conv_strides)}; their strides are not stored in the file: "
                                      "pass a matching config")
    try:
        config = dataclasses.replace(base, conv_channels=tuple(s[0] for s in strided),
                                     conv_kernels=tuple(s[2] for s in strided), code_size=shapes[-1][0],
                                     gru_hidden=int(tensors["rnn.weight_hh_l0"].shape[-1]), gru_layers=len(layers))
    except InputError as err:
        raise CheckpointError(source, f"audio encoder shapes do not make a valid encoder ({err.problem})") from None
    if config.final_kernel != shapes[-1][2]:
        raise CheckpointError(source, f"the last convolution spans {shapes[-1][2]} samples but the strided ones leave "
                                      f"{config.final_kernel} of a {config.window}-sample window: the windowing or "
                                      "strides differ from the config")
    return config


# --------------------------------------------------------------------------------------------- features

def default_frame_count(num_samples: int, fps: float = 25.0, sample_rate: int = 16000) -> int:
    """Video frames of `num_samples` samples by the Diffused Heads rule, floor(duration * fps): equal to
    `official_frame_count` at 16 kHz / 25 fps; one less than `faceanim.audio.frame_count` (which rounds)
    when the fraction is >= 0.5."""
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(None, f"frame rate must be a positive number, got {fps}")
    return int(math.floor(num_samples * fps / sample_rate + 1e-9))


def frame_features(samples16k: Any, kind: str, *, fps: float = 25.0, n_frames: int | None = None,
                   encoder: nn.Module | str | os.PathLike | None = None, wav2vec2: Any = None,
                   wav2vec2_layers: Sequence[int] = (-1,), n_mels: int = 80,
                   mel_hops_per_frame: int = 4) -> torch.Tensor:
    """Per-frame speech features for training: float32 (T, D) on the CPU, T = `n_frames` or
    `default_frame_count(N, fps)` whatever the kind, so switching features keeps the video length.

    * "sda": the Diffused Heads encoder (`encoder`: a loaded module or a file for `load_audio_encoder`),
      D = 256; only at the encoder's rate (25 fps). Row t is window t (centred 20 ms after t / fps).
    * "wav2vec2": `faceanim.audio.Wav2Vec2Features` (`wav2vec2`: an instance, a model folder, or None for
      $FACEANIM_WAV2VEC2): the 50 Hz convolutional features interpolated to the T frames before the
      transformer (Hallo's rule, the audio spread over the T frames); the hidden states `wav2vec2_layers`
      (default the last) concatenated, D = len(layers) x hidden size.
    * "logmel": `faceanim.audio.log_mel` with `mel_hops_per_frame` mel windows (default 4: 100 Hz) of
      `n_mels` bands placed symmetrically around t / fps and flattened hop-major, D = hops x n_mels (dB).
    """
    if kind not in FEATURE_KINDS:
        raise InputError(None, f"speech feature kind must be one of {', '.join(FEATURE_KINDS)}, got {kind!r}")
    samples = _as_samples(samples16k)
    count = default_frame_count(samples.numel(), fps) if n_frames is None else _frame_number(n_frames)
    if kind == "sda":
        features = _sda_features(samples, count, fps, encoder)
    elif kind == "wav2vec2":
        features = _wav2vec2_features(samples, count, fps, wav2vec2, wav2vec2_layers)
    else:
        features = _logmel_features(samples, count, fps, n_mels, mel_hops_per_frame)
    return features.to(device="cpu", dtype=torch.float32)


def _sda_features(samples: torch.Tensor, count: int, fps: float, encoder: Any) -> torch.Tensor:
    if encoder is None:
        raise MissingWeightsError("the 'sda' speech features need the Diffused Heads audio encoder "
                                  "(audio_encoder.pt or a converted one): pass encoder=")
    if not isinstance(encoder, nn.Module):
        encoder = load_audio_encoder(encoder)
    if abs(encoder.config.fps - fps) > 1e-6:
        raise InputError(None, f"the 'sda' speech features come at {encoder.config.fps:g} fps, not {fps:g}")
    return encode_speech(encoder, samples, n_frames=count)


def _wav2vec2_features(samples: torch.Tensor, count: int, fps: float, wav2vec2: Any,
                       layers: Sequence[int]) -> torch.Tensor:
    from ...audio import Wav2Vec2Features

    extractor = wav2vec2 if isinstance(wav2vec2, Wav2Vec2Features) else Wav2Vec2Features.from_pretrained(wav2vec2)
    states = extractor((samples.numpy(), 16000), fps, num_frames=count, layers=list(layers))
    return states.reshape(count, -1)


def _logmel_features(samples: torch.Tensor, count: int, fps: float, n_mels: int, hops: int) -> torch.Tensor:
    from ...audio import log_mel

    waveform = samples.numpy()
    # log_mel makes round(duration * fps) rows, row t centred on t / fps whatever the length; audio past
    # the end counts as silence there, so zero padding only adds rows, and extra rows are dropped
    needed = math.ceil((count - 0.5) * 16000 / fps) + 1 if count else 0
    if waveform.size < needed:
        waveform = torch.cat([samples, samples.new_zeros(needed - waveform.size)]).numpy()
    rows = log_mel((waveform, 16000), fps, n_mels=n_mels, hops_per_frame=hops)
    if rows.shape[0] < count:  # a bug in the padding arithmetic, not a user error
        raise RuntimeError(f"log_mel gave {rows.shape[0]} rows, expected at least {count}")
    return torch.from_numpy(rows[:count].copy())
