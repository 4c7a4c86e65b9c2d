"""`DiffusedHeadsPipeline`: one identity crop + speech -> talking-head crops, frame by frame, behind
`faceanim talk --method diffused_heads`.

Per video: the identity tensor (optionally on a flat green background, as the CREMA training clips),
the speech embeddings (one per 25 fps frame, computed once, streamed through the speech encoder's GRU),
and the noise stream. Per frame: a full DDPM loop (`steps`, respaced; 100 as released) conditioned on
the identity, the two previous outputs and the audio window (`sampling`). Frames are yielded as soon as
they are made, so the video is written while it is generated.

One video cannot be batched (frame n needs frames n-1 and n-2); several independent videos can
(`talk_queue`): their frames are generated side by side, one batch per frame index.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ...audio import frame_count
from ...audio.signal import require_speech
from ...errors import InputError
from ...face.background import CHROMA_GREEN
from ...nn.pipeline import CropPipeline
from .config import DiffusedHeadsConfig
from .model import DiffusedHeadsUNet
from .sampling import FrameLoop, FrameNoise, SeededFrameNoise, make_schedule, sample_frames
from .weights import METHOD, load_model

log = logging.getLogger(__name__)
SAMPLE_RATE = 16_000
MIN_SPEECH_SECONDS = 0.2       # one window of the speech encoder (5 frames)
BACKGROUNDS = ("keep", "green")
DETECTION_SIZE = 320


@dataclass
class Identity:
    """A prepared identity: the crop as a tensor (1, 3, S, S) in [-1, 1] on the pipeline's device; with the
    green background, also the photo's own crop and the head mask that puts its background back."""

    image: torch.Tensor
    crop: np.ndarray | None = None
    head: np.ndarray | None = None     # float32 (S, S, 1): 1 on the head, 0 on the replaced background

    def restore_background(self, generated: np.ndarray) -> np.ndarray:
        """The generated crop with the photo's background where the model saw green (no green box is pasted)."""
        if self.head is None:
            return generated
        mixed = self.head * generated.astype(np.float32) + (1 - self.head) * self.crop.astype(np.float32)
        return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


class _QueueNoise(FrameNoise):
    """Per-video noise streams side by side (each video's frames equal its single-video run's)."""

    def __init__(self, streams: Sequence[FrameNoise]):
        self.streams = list(streams)

    def start(self, frame: int, like: torch.Tensor) -> torch.Tensor:
        return torch.cat([s.start(frame, like[i:i + 1]) for i, s in enumerate(self.streams)])

    def steps(self, frame: int):
        sources = [s.steps(frame) for s in self.streams]
        return lambda index, like: torch.cat([src(index, like[i:i + 1]) for i, src in enumerate(sources)])


class DiffusedHeadsPipeline(CropPipeline):
    """Diffused Heads talking heads on `crop_size` (128) aligned face crops.

    steps: DDPM steps per frame (respaced; released 100); seed: the noise stream (the official CPU
    stream of `torch.manual_seed(seed)`); stabilize / segment_len: put the identity frame back into the
    motion buffer every segment_len frames (train-branch option against drift); background: "keep" the
    photo's, or "green" (replace it by the flat green of the training clips, `face.background`)."""

    name = "diffused_heads"
    model_name = "the Diffused Heads UNet"
    value_range = (-1.0, 1.0)
    crop_style = "sda"

    def __init__(self, unet: DiffusedHeadsUNet, audio_encoder, config: DiffusedHeadsConfig, *,
                 steps: int = 100, seed: int = 0, stabilize: bool = False, segment_len: int = 15,
                 background: str = "keep", device: str | torch.device | None = None, precision: str = "exact",
                 batch_size: int = 1, step_callback: Callable | None = None):
        if not 2 <= int(steps) <= config.n_timesteps:
            raise InputError(None, f"--steps must be between 2 and {config.n_timesteps}, got {steps}")
        if int(segment_len) < 1:
            raise InputError(None, f"--segment-len must be >= 1, got {segment_len}")
        if background not in BACKGROUNDS:
            raise InputError(None, f"--background must be one of {', '.join(BACKGROUNDS)}, got {background!r}")
        super().__init__(unet, device=device, precision=precision, batch_size=batch_size)
        self.audio_encoder = self.place(audio_encoder) if isinstance(audio_encoder, torch.nn.Module) else audio_encoder
        self.config = config
        self.steps, self.seed = int(steps), int(seed)
        self.stabilize, self.segment_len, self.background = bool(stabilize), int(segment_len), background
        self.step_callback = step_callback
        self.schedule = make_schedule(config.n_timesteps, self.steps)

    @property
    def fps(self) -> float:
        return float(self.config.fps)

    @property
    def crop_size(self) -> int:
        return int(self.config.unet.image_size)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *, checkpoint: str | os.PathLike | None = None,
                        audio_encoder: str | os.PathLike | None = None, run_audio_archive: bool = False,
                        wav2vec2: str | os.PathLike | None = None, **settings) -> "DiffusedHeadsPipeline":
        """The UNet from our folder, `crema_script.pt`, a Lightning `.ckpt` or a state dict (`path` or
        `checkpoint`); the speech encoder from `audio_encoder` (`audio_encoder.pt` or ours) unless the
        folder holds one. `run_audio_archive`: run the TorchScript speech encoder itself (its code runs:
        only for archives you trust) instead of reading its tensors into ours. Models trained on wav2vec2
        features take `wav2vec2` (a model folder; else $FACEANIM_WAV2VEC2), log-mel ones need nothing."""
        from .audio_encoder import AudioEncoderConfig, SDAAudioEncoder, load_audio_encoder

        from ...registry import get_method

        if path is not None and checkpoint is not None and Path(path) != Path(checkpoint):
            raise InputError(None, f"two UNet checkpoints given ({path} and {checkpoint}); pass one")
        weights = get_method(METHOD)
        source = weights.weight("checkpoint").resolve(path if path is not None else checkpoint)
        config, unet, bundled = load_model(source)
        encoder = None
        if bundled is not None and audio_encoder is None:
            encoder = SDAAudioEncoder(AudioEncoderConfig.from_dict(bundled[0]))
            encoder.load_state_dict(bundled[1])
        if config.audio_features == "wav2vec2":
            encoder = wav2vec2
        elif encoder is None and config.audio_features == "sda":
            audio_encoder = weights.weight("audio_encoder").resolve(audio_encoder)
            encoder = load_audio_encoder(audio_encoder, run_archive=run_audio_archive)
        return cls(unet, encoder, config, **settings)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """The UNet and (when it is ours) the speech encoder as one converted folder."""
        from .weights import save_converted

        audio = None
        if hasattr(self.audio_encoder, "config") and isinstance(self.audio_encoder, torch.nn.Module):
            audio = (self.audio_encoder.config, self.audio_encoder.state_dict())
        return save_converted(folder, self.config, self.model.state_dict(), audio_encoder=audio)

    # -- once per video ------------------------------------------------------------------------------
    def check_speech(self, speech) -> None:
        """Refuse speech the model cannot use: shorter than one encoder window, or silent."""
        require_speech(speech, MIN_SPEECH_SECONDS, "Diffused Heads")

    @torch.inference_mode()
    def prepare_source(self, crop: np.ndarray) -> Identity:
        if self.background == "green":
            head = _head_mask(crop)
            if head is not None:
                green = (head * crop + (1 - head) * np.array(CHROMA_GREEN, np.float32) + 0.5).astype(np.uint8)
                return Identity(self.to_tensor([green]), crop, head)
        return Identity(self.to_tensor([crop]))

    @torch.inference_mode()
    def speech_embeddings(self, speech) -> torch.Tensor:
        """(n_frames, C) speech embeddings, one per video frame of the speech's duration."""
        from .audio_encoder import encode_speech, frame_features

        self.check_speech(speech)
        samples = speech.resample(SAMPLE_RATE).samples
        samples = torch.from_numpy(np.ascontiguousarray(samples.mean(axis=1) if samples.ndim == 2 else samples))
        if self.config.audio_features == "sda":
            embeddings = encode_speech(self.audio_encoder, samples, device=self.device).float()
        else:   # a model trained on other features (`faceanim train diffused_heads`)
            embeddings = frame_features(samples, self.config.audio_features, fps=self.fps, wav2vec2=self.audio_encoder)
        n_frames = frame_count(speech.duration, self.fps)
        if embeddings.shape[0] < n_frames:     # the encoder's last window may end a frame early: repeat it
            embeddings = torch.cat([embeddings, embeddings[-1:].expand(n_frames - embeddings.shape[0], -1)])
        if embeddings.shape[1] != self.config.unet.audio_dim:
            raise InputError(None, f"the speech encoder gives {embeddings.shape[1]}-d embeddings; this UNet "
                                   f"takes {self.config.unet.audio_dim}-d ones")
        return embeddings[:n_frames].to(self.device)

    # -- frames ---------------------------------------------------------------------------------------
    def _loop(self, images: torch.Tensor, embeddings: torch.Tensor) -> FrameLoop:
        c = self.config.unet
        return FrameLoop(images, embeddings, n_motion_frames=c.n_motion_frames, half_window=c.n_audio_motion_embs,
                         grayscale_motion=c.grayscale_motion, stabilize=self.stabilize, segment_len=self.segment_len)

    def _frames(self, loop: FrameLoop, noise: FrameNoise) -> Iterator[torch.Tensor]:
        with torch.inference_mode(), self.compute_context():
            for frame in sample_frames(self.model, self.schedule, loop, noise, callback=self.step_callback):
                yield frame.float()

    def talk_crops(self, identity: Identity, speech) -> Iterator[np.ndarray]:
        """uint8 crops, one per 25 fps frame of `speech`, each yielded as soon as it is generated."""
        embeddings = self.speech_embeddings(speech)
        noise = SeededFrameNoise(self.seed, embeddings.shape[0], tuple(identity.image.shape))
        for frame in self._frames(self._loop(identity.image, embeddings[None]), noise):
            yield identity.restore_background(self.to_crops(frame)[0])

    def talk_queue(self, identities: Sequence[Identity], speeches: Sequence, seeds: Sequence[int] | None = None
                   ) -> Iterator[list[np.ndarray | None]]:
        """Several independent videos at once: per frame index, one crop per video (None once a shorter
        video has ended). Each video equals its own `talk_crops` run with its seed (default: the
        pipeline's), up to the float rounding of batched kernels."""
        if len(identities) != len(speeches):
            raise InputError(None, "talk_queue needs one speech per identity")
        seeds = list(seeds) if seeds is not None else [self.seed] * len(identities)
        embeddings = [self.speech_embeddings(s) for s in speeches]
        lengths = [e.shape[0] for e in embeddings]
        longest = max(lengths)
        padded = torch.stack([torch.cat([e, e[-1:].expand(longest - e.shape[0], -1)]) for e in embeddings])
        images = torch.cat([i.image for i in identities])
        noise = _QueueNoise([SeededFrameNoise(seed, n, tuple(i.image.shape))
                            for seed, n, i in zip(seeds, lengths, identities)])
        for index, frames in enumerate(self._frames(self._loop(images, padded), noise)):
            crops = [i.restore_background(c) for i, c in zip(identities, self.to_crops(frames))]
            yield [crop if index < n else None for crop, n in zip(crops, lengths)]


def _head_mask(crop: np.ndarray) -> np.ndarray | None:
    """The soft head mask (S, S, 1) of the identity crop (landmarks found on an upscaled copy: the detector
    misses faces under ~80 px); None, with a warning, when no face is found."""
    import cv2

    from ...face import largest_face
    from ...face.background import head_mask

    scale = max(1.0, DETECTION_SIZE / crop.shape[0])
    enlarged = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale > 1 else crop
    try:
        _, landmarks = largest_face(enlarged, "hog")
    except InputError:
        log.warning("no face found on the identity crop; its background is kept")
        return None
    return head_mask(landmarks / scale, crop.shape[:2])[..., None].astype(np.float32)
