"""LSE-C and LSE-D: lip-sync scores from SyncNet (Chung & Zisserman 2016), by the protocol of Wav2Lip's
`evaluation/scores_LSE` (joonson/syncnet_python's `run_pipeline.py` crops, `SyncNetInstance.evaluate`).

SyncNet embeds 5 video frames (0.2 s at 25 fps) of a face crop and the 20 MFCC frames (100 Hz) of the
same 0.2 s of speech into one space. For every window of the video, the distances to the audio
windows shifted by -15..+15 frames are averaged over the video into one curve; LSE-D is the curve's
minimum, LSE-C its median minus its minimum (a clear dip = confident sync), and the AV offset is
15 minus the index of the minimum. Reproduced as the official code does it:

* the network `S` under its official parameter names (syncnet_v2.model loads strictly), in eval mode;
  its input is the raw BGR pixel values (0-255) of 224x224 crops, as OpenCV decodes them;
* the video is resampled to 25 fps (nearest frame in time, as `ffmpeg -r 25`);
* the speech is resampled to 16 kHz and taken at int16 scale, MFCCs as `python_speech_features.mfcc`;
* with N = min(video frames, floor(audio samples / 640)), the windows start at frames 0 .. N - 6
  (the official `lastframe = min_length - 5`), video window v against MFCC frames 4v .. 4v + 19;
* distances are `torch.nn.functional.pairwise_distance` against the audio embeddings zero-padded by
  15 windows at both ends; the curve, its minimum and median as in `evaluate`.

The official crop comes from an S3FD face track. We have dlib's 68 landmarks per frame instead, and
make an S3FD-like box from them (`detector_box`: the landmarks' width, from the chin up to the brows
plus 30% of the brow-to-chin height for the forehead), then follow `crop_video` exactly: centre and
half-size median-filtered over the track (13 frames, zero-padded like scipy's medfilt), a square of
2.8 half-sizes that starts at the box's top, padded with grey 110, resized to 224x224. Frames without a
face keep the previous box; the track runs from the first to the last frame with a face, and the audio
is cut to start with it, as the official pipeline cuts it. Not reproduced: S3FD itself, the codec
round trips of the official crops (XVID, JPEG), the pipeline's scene cuts, splitting at gaps of more
than 25 frames, and its minimum track length (100 frames) and face size (100 px). So our LSE values are
close to, not identical with, published ones.

Memory: the crops are embedded 20 windows at a time as the frames arrive; only the 1024-d embeddings
are kept (plus the few frames that the 13-frame smoothing still needs).
"""
from __future__ import annotations

import math
import os
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, InputError
from .base import EvalContext, FrameView, StreamingMetric

VIDEO_FPS = 25
AUDIO_RATE = 16000
SAMPLES_PER_FRAME = AUDIO_RATE // VIDEO_FPS  # 640
WINDOW_FRAMES = 5                             # video frames a SyncNet window sees
MFCC_PER_FRAME = 4                            # 100 Hz MFCC frames per 25 fps video frame
MFCC_WINDOW = WINDOW_FRAMES * MFCC_PER_FRAME  # 20
VSHIFT = 15                                   # audio shifts tried, in frames, either way
BATCH_SIZE = 20
CROP_SIZE = 224
CROP_SCALE = 0.4                              # run_pipeline.py --crop_scale
SMOOTHING_FRAMES = 13                         # median filter over the face track
PAD_GREY = 110                                # what the crop is padded with beyond the frame
FOREHEAD = 0.3                                # S3FD-like box top above the brows, x brow-to-chin


# ---------------------------------------------------------------- network

def _conv_block(conv: nn.Module, norm: nn.Module, pool: nn.Module | None = None) -> list[nn.Module]:
    return [conv, norm, nn.ReLU(inplace=True)] + ([pool] if pool is not None else [])


class SyncNet(nn.Module):
    """SyncNet's `S` model, layer for layer (Sequential indices are the official parameter names)."""

    def __init__(self, embedding_size: int = 1024):
        super().__init__()
        self.netcnnaud = nn.Sequential(
            *_conv_block(nn.Conv2d(1, 64, 3, padding=1), nn.BatchNorm2d(64), nn.MaxPool2d(1, 1)),
            *_conv_block(nn.Conv2d(64, 192, 3, padding=1), nn.BatchNorm2d(192), nn.MaxPool2d(3, (1, 2))),
            *_conv_block(nn.Conv2d(192, 384, 3, padding=1), nn.BatchNorm2d(384)),
            *_conv_block(nn.Conv2d(384, 256, 3, padding=1), nn.BatchNorm2d(256)),
            *_conv_block(nn.Conv2d(256, 256, 3, padding=1), nn.BatchNorm2d(256), nn.MaxPool2d(3, 2)),
            *_conv_block(nn.Conv2d(256, 512, (5, 4)), nn.BatchNorm2d(512)),
        )
        self.netfcaud = self._head(embedding_size)
        self.netfclip = self._head(embedding_size)  # registered in the official order
        self.netcnnlip = nn.Sequential(
            *_conv_block(nn.Conv3d(3, 96, (5, 7, 7), stride=(1, 2, 2)), nn.BatchNorm3d(96),
                         nn.MaxPool3d((1, 3, 3), (1, 2, 2))),
            *_conv_block(nn.Conv3d(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), nn.BatchNorm3d(256),
                         nn.MaxPool3d((1, 3, 3), (1, 2, 2), padding=(0, 1, 1))),
            *_conv_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
            *_conv_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256)),
            *_conv_block(nn.Conv3d(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256),
                         nn.MaxPool3d((1, 3, 3), (1, 2, 2))),
            *_conv_block(nn.Conv3d(256, 512, (1, 6, 6)), nn.BatchNorm3d(512)),
        )

    @staticmethod
    def _head(embedding_size: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embedding_size))

    def forward_aud(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) MFCC windows -> (N, 1024) audio embeddings."""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def forward_lip(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR 0-255 face crops -> (N, 1024) video embeddings."""
        return self.netfclip(self.netcnnlip(crops).flatten(1))


def load_syncnet(path: str | os.PathLike, device: str | torch.device = "cpu") -> SyncNet:
    """SyncNet in eval mode with the weights of `path` (syncnet_v2.model, a plain state dict, or a
    converted .safetensors). Strict: only `num_batches_tracked` counters may be absent (files written
    before PyTorch 0.4.1 lack them, and BatchNorm fills them in). CheckpointError naming the file when
    the keys do not fit."""
    from ..checkpoints import load_state_dict

    model = SyncNet()
    state = load_state_dict(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise CheckpointError(path, f"is not a SyncNet state dict ({' '.join(lines[:2])[:300]})") from None
    return model.to(device).eval()


# ---------------------------------------------------------------- face crops

def detector_box(landmarks: np.ndarray) -> np.ndarray:
    """An S3FD-like face box (left, top, right, bottom) from 68 landmarks: their horizontal extent,
    from the lowest point (chin) up to the brows plus FOREHEAD x the brow-to-chin height."""
    points = np.asarray(landmarks, dtype=np.float64)
    brows, chin = points[17:27, 1].min(), points[:, 1].max()
    return np.array([points[:, 0].min(), brows - FOREHEAD * (chin - brows), points[:, 0].max(), chin])


def box_track_values(box: np.ndarray) -> np.ndarray:
    """(half-size, centre y, centre x) of a box: what crop_video smooths over the track."""
    left, top, right, bottom = box
    return np.array([max(bottom - top, right - left) / 2, (top + bottom) / 2, (left + right) / 2])


def median_smooth(values: np.ndarray, kernel: int = SMOOTHING_FRAMES) -> np.ndarray:
    """Running median along axis 0 with zeros beyond both ends (scipy.signal.medfilt's rule)."""
    values = np.asarray(values, dtype=np.float64)
    half = kernel // 2
    padded = np.concatenate([np.zeros((half,) + values.shape[1:]), values, np.zeros((half,) + values.shape[1:])])
    if not len(values):
        return values
    return np.stack([np.median(padded[i:i + kernel], axis=0) for i in range(len(values))])


def syncnet_crop(image: np.ndarray, half_size: float, centre_y: float, centre_x: float,
                 crop_scale: float = CROP_SCALE) -> np.ndarray:
    """(224, 224, 3) uint8 BGR crop as crop_video cuts it: rows from the box top (centre - half-size)
    down (2 + 2 crop_scale) half-sizes, columns (1 + crop_scale) half-sizes either side of the centre,
    grey 110 beyond the frame, integer bounds truncated as the official slicing of the padded frame."""
    import cv2

    pad = int(half_size * (1 + 2 * crop_scale))
    height, width = image.shape[:2]
    # bounds in the official frame padded by `pad` on every side, clamped as slicing clamps them
    rows = _slice_bounds(int(centre_y + pad - half_size), int(centre_y + pad + half_size * (1 + 2 * crop_scale)),
                         height + 2 * pad)
    cols = _slice_bounds(int(centre_x + pad - half_size * (1 + crop_scale)),
                         int(centre_x + pad + half_size * (1 + crop_scale)), width + 2 * pad)
    if rows[1] <= rows[0] or cols[1] <= cols[0]:
        return np.full((CROP_SIZE, CROP_SIZE, 3), PAD_GREY, np.uint8)  # a degenerate box: nothing to see
    face = np.full((rows[1] - rows[0], cols[1] - cols[0], 3), PAD_GREY, np.uint8)
    top, bottom = max(rows[0] - pad, 0), min(rows[1] - pad, height)
    left, right = max(cols[0] - pad, 0), min(cols[1] - pad, width)
    if bottom > top and right > left:
        face[top + pad - rows[0]: bottom + pad - rows[0], left + pad - cols[0]: right + pad - cols[0]] = \
            image[top:bottom, left:right, ::-1]  # RGB -> BGR, the order the network was trained on
    return cv2.resize(face, (CROP_SIZE, CROP_SIZE))


def _slice_bounds(start: int, stop: int, size: int) -> tuple[int, int]:
    return min(max(start, 0), size), min(max(stop, 0), size)


# ---------------------------------------------------------------- audio

def syncnet_mfcc(audio: Any) -> np.ndarray:
    """(13, T) float32 MFCCs of the speech at 16 kHz and int16 scale, 100 frames a second."""
    from ..audio.psf_mfcc import int16_scale, psf_mfcc
    from ..audio.signal import mono_samples, resample

    samples, rate = mono_samples(audio)
    samples = resample(samples, rate, AUDIO_RATE)
    return psf_mfcc(int16_scale(samples), AUDIO_RATE).T.astype(np.float32)


def mfcc_windows(mfcc: np.ndarray, count: int) -> np.ndarray:
    """(count, 1, 13, 20): video window v's audio, MFCC frames 4v .. 4v + 19."""
    return np.stack([mfcc[None, :, MFCC_PER_FRAME * v: MFCC_PER_FRAME * v + MFCC_WINDOW] for v in range(count)])


# ---------------------------------------------------------------- scores

@dataclass
class SyncScores:
    offset: int               # audio-video offset in frames (positive: vshift - index of the minimum)
    confidence: float         # LSE-C: median - minimum of the mean distance curve
    min_distance: float       # LSE-D: the curve's minimum
    curve: np.ndarray         # (2 vshift + 1,) mean distance at each shift
    distances: np.ndarray     # (windows, 2 vshift + 1) distance of each video window at each shift


def sync_scores(video_embeddings: np.ndarray, audio_embeddings: np.ndarray, vshift: int = VSHIFT) -> SyncScores:
    """Offset, confidence and minimum distance exactly as SyncNetInstance.evaluate computes them from
    the (windows, D) video and audio embeddings (in float32, with pairwise_distance's eps)."""
    video = torch.as_tensor(np.asarray(video_embeddings), dtype=torch.float32)
    audio = torch.as_tensor(np.asarray(audio_embeddings), dtype=torch.float32)
    if video.ndim != 2 or video.shape != audio.shape or len(video) == 0:
        raise ValueError("need equal (windows >= 1, D) embeddings, "
                         f"got {tuple(video.shape)} and {tuple(audio.shape)}")
    width = 2 * vshift + 1
    shifted = F.pad(audio, (0, 0, vshift, vshift)).unfold(0, width, 1).transpose(1, 2)  # (windows, width, D)
    distances = F.pairwise_distance(video[:, None, :].expand_as(shifted), shifted)     # (windows, width)
    curve = distances.t().mean(1)  # the official mean of torch.stack(dists, 1) over its dim 1
    min_distance, min_index = torch.min(curve, 0)
    confidence = torch.median(curve) - min_distance
    return SyncScores(int(vshift - min_index), float(confidence), float(min_distance),
                      curve.numpy().astype(np.float64), distances.numpy().astype(np.float64))


# ---------------------------------------------------------------- streaming pieces

class FrameRateConverter:
    """How often each source frame appears in the video resampled to `target` fps: output frame k is
    the source frame nearest to time k / target (what `ffmpeg -r 25` does, up to its rounding)."""

    def __init__(self, source_fps: float, target_fps: float = VIDEO_FPS):
        if not (math.isfinite(source_fps) and source_fps > 0):
            raise InputError(None, f"frame rate must be a positive number, got {source_fps}")
        self.ratio = source_fps / target_fps
        self.source_index = 0
        self.output_index = 0

    def repeats(self) -> int:
        """Copies of the next source frame in the output (0: dropped)."""
        count = 0
        while math.floor(self.output_index * self.ratio + 0.5 + 1e-9) <= self.source_index:
            count += 1
            self.output_index += 1
        self.source_index += 1
        return count


class TrackSmoother:
    """The 13-frame zero-padded running median of crop_video, fed one frame at a time: a frame comes
    out (with its smoothed values) once the 6 frames after it are known, the rest at `flush`."""

    def __init__(self, kernel: int = SMOOTHING_FRAMES):
        self.half = kernel // 2
        self.kernel = kernel
        self._values: deque[np.ndarray] = deque(maxlen=kernel)  # values of the last `kernel` frames
        self._pending: deque[Any] = deque()                     # payloads not yet smoothed
        self._count = 0

    def push(self, values: np.ndarray, payload: Any) -> list[tuple[np.ndarray, Any]]:
        self._values.append(np.asarray(values, dtype=np.float64))
        self._pending.append(payload)
        self._count += 1
        return [self._emit(self._count - 1 - self.half)] if self._count > self.half else []

    def flush(self) -> list[tuple[np.ndarray, Any]]:
        ready = []
        while self._pending:
            ready.append(self._emit(self._count - len(self._pending)))
        return ready

    def _emit(self, index: int) -> tuple[np.ndarray, Any]:
        first_known = self._count - len(self._values)  # frame index of self._values[0]
        window = [self._values[i - first_known] if 0 <= i < self._count else np.zeros_like(self._values[-1])
                  for i in range(index - self.half, index + self.half + 1)]
        return np.median(np.stack(window), axis=0), self._pending.popleft()


# ---------------------------------------------------------------- metric

class LSEMetric(StreamingMetric):
    """LSE-C (`lse_c`, higher is better), LSE-D (`lse_d`, lower is better) and the AV offset in frames
    (`av_offset`) of the prediction against the speech that drove it. All NaN when the face track (or
    the audio) is shorter than 6 frames at 25 fps. No per-frame values; call `compute` once, at the end."""

    name = "lse"
    needs = frozenset({"audio"})
    weights = ("syncnet",)
    higher_is_better = {"lse_c": True, "lse_d": False}

    def __init__(self, context: EvalContext):
        super().__init__(context)
        if context.audio is None:
            raise InputError(None, "the lse metric needs the driving speech (audio)")
        self.device = torch.device(context.device)
        self.model = load_syncnet(context.weight("syncnet"), self.device)
        self._to_25fps = FrameRateConverter(context.fps)
        self._smoother = TrackSmoother()
        self._frame_index = 0          # 25 fps frames seen
        self._first_face: int | None = None
        self._last_face: int | None = None
        self._last_box: np.ndarray | None = None
        self._crops: list[np.ndarray] = []  # crops not yet embedded as the start of a window
        self._windows_done = 0
        self._window_limit: int | None = None  # windows the audio allows (known once the track starts)
        self._embeddings: list[np.ndarray] = []
        self._result: dict[str, float] | None = None
        self.scores: SyncScores | None = None  # the full curve and distances, once computed

    def update(self, pred: FrameView, ref: FrameView | None) -> Mapping[str, float]:
        if self._result is not None:
            raise RuntimeError("LSEMetric.update after compute")
        for _ in range(self._to_25fps.repeats()):
            self._add_frame(pred)
        return {}

    def compute(self) -> dict[str, float]:
        if self._result is None:
            for values, image in self._smoother.flush():
                self._add_crop(syncnet_crop(image, *values))
            self._embed_windows(final=True)
            self._result = self._scores()
        return dict(self._result)

    # the face track
    def _add_frame(self, frame: FrameView) -> None:
        index, self._frame_index = self._frame_index, self._frame_index + 1
        if frame.landmarks is not None:
            self._last_box = box_track_values(detector_box(frame.landmarks))
            self._last_face = index
            if self._first_face is None:
                self._first_face = index
                self._window_limit = self._window_cap(index)
        if self._last_box is None:
            return  # before the track starts
        # a copy: the smoothing holds frames back for 6 more, and a reader may reuse its buffer
        for values, image in self._smoother.push(self._last_box, frame.image.copy()):
            self._add_crop(syncnet_crop(image, *values))

    def _window_cap(self, start_frame: int) -> int:
        """An upper bound on the windows the audio allows from `start_frame` on (from its duration: the
        exact count, from the resampled samples, is taken at the end), so no window past it is embedded."""
        duration = self.context.audio.samples.shape[0] / self.context.audio.sample_rate
        frames = math.ceil(duration * VIDEO_FPS) + 1 - start_frame
        return max(frames - WINDOW_FRAMES, 0)

    # video embeddings, a batch of windows at a time
    def _add_crop(self, crop: np.ndarray) -> None:
        self._crops.append(crop)
        if len(self._crops) >= BATCH_SIZE + WINDOW_FRAMES - 1:
            self._embed_windows(final=False)

    def _embed_windows(self, final: bool) -> None:
        while len(self._crops) >= WINDOW_FRAMES and (final or len(self._crops) >= BATCH_SIZE + WINDOW_FRAMES - 1):
            count = min(len(self._crops) - WINDOW_FRAMES + 1, BATCH_SIZE)
            wanted = min(count, max(self._window_limit - self._windows_done, 0))
            if wanted:
                self._embeddings.append(self._embed_lips(self._crops[:wanted + WINDOW_FRAMES - 1]))
            self._windows_done += count
            del self._crops[:count]

    @torch.inference_mode()
    def _embed_lips(self, crops: list[np.ndarray]) -> np.ndarray:
        clip = torch.from_numpy(np.stack(crops)).to(self.device, torch.float32).permute(3, 0, 1, 2)  # (3, T, H, W)
        windows = clip.unfold(1, WINDOW_FRAMES, 1).permute(1, 0, 4, 2, 3)  # (T - 4, 3, 5, H, W)
        return self.model.forward_lip(windows.contiguous()).float().cpu().numpy()

    @torch.inference_mode()
    def _embed_audio(self, mfcc: np.ndarray, count: int) -> np.ndarray:
        windows = torch.from_numpy(mfcc_windows(mfcc, count))
        embeddings = [self.model.forward_aud(batch.to(self.device)) for batch in windows.split(BATCH_SIZE)]
        return torch.cat(embeddings).float().cpu().numpy()

    def _scores(self) -> dict[str, float]:
        nothing = {"lse_c": float("nan"), "lse_d": float("nan"), "av_offset": float("nan")}
        if self._first_face is None:
            return nothing
        audio = self._track_audio(self._first_face)
        track_frames = self._last_face - self._first_face + 1
        # the official min(len(images), floor(len(audio) / 640)) - 5 windows
        count = min(track_frames, audio.size // SAMPLES_PER_FRAME) - WINDOW_FRAMES
        if count < 1:
            return nothing
        video = np.concatenate(self._embeddings)[:count]
        self.scores = scores = sync_scores(video, self._embed_audio(syncnet_mfcc((audio, AUDIO_RATE)), count))
        return {"lse_c": scores.confidence, "lse_d": scores.min_distance, "av_offset": float(scores.offset)}

    def _track_audio(self, start_frame: int) -> np.ndarray:
        """The speech at 16 kHz from the track's first frame on (the official pipeline cuts it there)."""
        from ..audio.signal import mono_samples, resample

        samples, rate = mono_samples(self.context.audio)
        return resample(samples, rate, AUDIO_RATE)[start_frame * SAMPLES_PER_FRAME:]
