"""`EMOPipeline`: one portrait crop + speech or song -> talking-head crops, clip by clip, behind
`faceanim talk --method emo`.

Per video (`prepare_source`): the reference crop's VAE latents, its face-locator feature, Hallo's region masks
(dlib landmarks standing in for MediaPipe's) and, for models that use one, the insightface identity embedding.
Per clip of f frames (`talk_crops`): wav2vec2 features for the clip's audio windows (computed a chunk at a time,
so memory does not grow with the audio's length), ReferenceNet once on the reference and the n motion frames (the
last n frames of the previous clip; for the first clip copies of the reference (Hallo) or zero maps (EMO)), the
DDIM loop with classifier-free guidance, and the VAE decode; frames are yielded as soon as a clip is decoded.
The random stream is Hallo's: one `torch.Generator` seeded once, each clip drawing its initial latents from it
on the CPU (so a seed gives the same video on every device).

Long videos drift (the peers' most reported problem: colour and identity wander after 20-60 s, because each clip
continues from the previous one's frames). Two anchors use the reference frame: `color_match` moves every frame's
mean colour (Lab, over the face region) back to the reference's before it is shown or becomes a motion frame, and
`reanchor_every` restarts the motion frames from the reference every N clips (the head's motion then restarts
from the reference pose at those clip boundaries). Both are off by default (Hallo has neither).
"""
from __future__ import annotations

import logging
import math
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ...audio import frame_count
from ...audio.signal import require_speech
from ...errors import InputError
from ...nn.pipeline import CropPipeline
from ...progress import progress
from .config import EMOConfig
from .masks import RegionMasks, region_masks
from .model import EMOModel
from .sampling import ClipInputs, clip_conditions, decode_frames, denoise_clip, encode_images, make_scheduler
from .weights import METHOD

log = logging.getLogger(__name__)

FPS = 25.0
SAMPLE_RATE = 16_000
MIN_SPEECH_SECONDS = 0.1
CROP_EXPAND = 2.4      # crop side / face box side: the head with hair and shoulders, as in HDTF-style clips


@dataclass
class Reference:
    """A prepared portrait crop (everything that is computed once per video)."""

    pixels: torch.Tensor            # (1, 3, S, S) in [-1, 1]
    latents: torch.Tensor           # (1, 4, S/8, S/8) scaled VAE latents
    face: torch.Tensor              # (1, C0, S/8, S/8) face-locator feature
    masks: RegionMasks
    identity: torch.Tensor | None   # (512,) insightface embedding, None for models without one
    crop: np.ndarray                # the uint8 crop, for colour anchoring
    color_target: np.ndarray | None = None  # mean Lab colour of the face region


def parse_head_speed(value: float | str | Sequence[float] | None) -> np.ndarray | None:
    """EMO's head speed: a number (degrees per frame, every frame), numbers, or a text file of per-frame numbers
    (whitespace or comma separated; shorter curves hold their last value)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        values = [float(value)]
    elif isinstance(value, str):
        try:
            values = [float(value)]
        except ValueError:
            path = Path(value)
            if not path.is_file():
                raise InputError(path, "head speed must be a number or a file of per-frame numbers") from None
            text = path.read_text().replace(",", " ").split()
            try:
                values = [float(v) for v in text]
            except ValueError:
                raise InputError(path, "the head-speed curve must hold numbers only") from None
    else:
        values = [float(v) for v in value]
    speeds = np.asarray(values, dtype=np.float32)
    if speeds.size == 0 or not np.isfinite(speeds).all() or (speeds < 0).any():
        raise InputError(None, "head speeds must be finite numbers >= 0 (degrees per frame)")
    return speeds


def parse_face_region(value: str | Sequence[float] | None, size: int) -> tuple[int, int, int, int] | None:
    """`x0,y0,x1,y1` as fractions of the crop (0..1) -> Hallo's box order (min_x, max_x, min_y, max_y) in pixels."""
    if value is None:
        return None
    try:
        numbers = [float(v) for v in (value.split(",") if isinstance(value, str) else value)]
    except ValueError:
        raise InputError(None, f"--face-region must be x0,y0,x1,y1 (fractions of the crop), got {value!r}") from None
    if len(numbers) != 4 or not (0 <= numbers[0] < numbers[2] <= 1 and 0 <= numbers[1] < numbers[3] <= 1):
        raise InputError(None, f"--face-region must be x0,y0,x1,y1 with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, "
                               f"got {value!r}")
    x0, y0, x1, y1 = (round(v * size) for v in numbers)
    return x0, x1, y0, y1


class EMOPipeline(CropPipeline):
    """EMO / Hallo talking heads on `crop_size` (512) square face crops.

    steps: DDIM steps per clip (40); guidance: classifier-free guidance scale (3.5; <= 1 runs without it);
    seed: the generator seed (Hallo's 42); pose_weight / face_weight / lip_weight: Hallo's region weights of
    the audio attention (1.0); face_expand_ratio: growth of the face box for the face locator and masks (1.2);
    face_region: the face region as fractions of the crop instead (x0,y0,x1,y1); head_speed: EMO's speed
    control (degrees per frame, or a per-frame curve); clip_length / motion_frames: f and n (the model's);
    color_match / reanchor_every: the long-video anchors (module docstring); crop_expand: crop side over
    face-box side; batch_size: frames the VAE decodes at a time (1 by default: a 512 px decode batch of 4
    costs 1.5 GB more at no gain on a CPU; raise it on a GPU)."""

    name = METHOD
    model_name = "the EMO model"
    value_range = (-1.0, 1.0)
    crop_style = "fomm"

    def __init__(self, model: EMOModel, vae, audio_features, config: EMOConfig, *, identity_embedder=None,
                 steps: int = 40, guidance: float = 3.5, seed: int = 42, pose_weight: float = 1.0,
                 face_weight: float = 1.0, lip_weight: float = 1.0, face_expand_ratio: float = 1.2,
                 face_region: str | Sequence[float] | None = None, head_speed=None, clip_length: int | None = None,
                 motion_frames: int | None = None, color_match: bool = False, reanchor_every: int = 0,
                 crop_expand: float = CROP_EXPAND, device: str | torch.device | None = None,
                 precision: str = "exact", batch_size: int = 1, step_callback: Callable | None = None):
        _check_settings(steps, guidance, face_expand_ratio, crop_expand, reanchor_every)
        super().__init__(model, device=device, precision=precision, batch_size=batch_size)
        self.config = config
        self.dtype = _compute_dtype(self.device, self.precision)
        self.vae = self.place(vae)
        if self.dtype != torch.float32:
            self.model, self.vae = self.model.to(self.dtype), self.vae.to(self.dtype)
        self.audio_features = audio_features
        self.identity_embedder = identity_embedder
        self.steps, self.guidance, self.seed = int(steps), float(guidance), int(seed)
        self.motion_scale = torch.tensor([pose_weight, face_weight, lip_weight], dtype=torch.float32)
        self.face_expand_ratio = float(face_expand_ratio)
        self.face_box = parse_face_region(face_region, config.image_size)
        self.head_speed = parse_head_speed(head_speed)
        if self.head_speed is not None and config.speed is None:
            raise InputError(None, "--head-speed needs a model with speed layers (the emo preset); this one has none")
        self.clip_length = int(clip_length or config.clip_length)
        self.motion_frames = config.motion_frames if motion_frames is None else int(motion_frames)
        if self.clip_length < 1 or self.motion_frames < 0 or \
                self.clip_length + self.motion_frames > config.motion_max_len:
            raise InputError(None, f"clip length {self.clip_length} + motion frames {self.motion_frames} must fit the "
                                   f"temporal layers' {config.motion_max_len} positions")
        self.color_match, self.reanchor_every = bool(color_match), int(reanchor_every)
        self.crop_increase = (float(crop_expand) - 1) / 2
        self.scheduler = make_scheduler()
        self.step_callback = step_callback

    @property
    def fps(self) -> float:
        return FPS

    @property
    def crop_size(self) -> int:
        return int(self.config.image_size)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, *, checkpoint: str | os.PathLike | None = None,
                        vae: str | os.PathLike | None = None, wav2vec2: str | os.PathLike | None = None,
                        face_analysis: str | os.PathLike | None = None, preset_name: str | None = None,
                        head_speed_curve: str | os.PathLike | None = None, **settings) -> "EMOPipeline":
        """The model from Hallo's `net.pth`, a Hallo `pretrained_models` folder (which also supplies the VAE,
        wav2vec2 and face-analysis paths not given) or a converted folder (which may hold the VAE); wav2vec2
        from a local model folder; the identity network from insightface's `w600k_r50.onnx` (models with an
        identity embedding only). `preset_name` gives the settings of a bare net.pth ("hallo", "emo");
        `head_speed_curve` is a file of per-frame head speeds (instead of a constant `head_speed`)."""
        from ...audio.wav2vec import Wav2Vec2Features
        from ...registry import get_method
        from .weights import (converted_vae_config, hallo_layout, is_converted_folder, load_model, load_vae,
                              resolve_checkpoint)

        if path is not None and checkpoint is not None and Path(path) != Path(checkpoint):
            raise InputError(None, f"two checkpoints given ({path} and {checkpoint}); pass one")
        spec = get_method(METHOD)
        source = spec.weight("checkpoint").resolve(path if path is not None else checkpoint)
        converted = is_converted_folder(source)
        found = {} if converted else hallo_layout(resolve_checkpoint(source))
        if head_speed_curve is not None:
            if settings.get("head_speed") is not None:
                raise InputError(None, "--head-speed and --head-speed-curve exclude each other")
            settings["head_speed"] = str(head_speed_curve)
        config, model = load_model(source, preset=preset_name)
        if vae is None and converted and converted_vae_config(source):
            vae = source
        vae_model = load_vae(spec.weight("vae").resolve(vae, found.get("vae")))
        audio = Wav2Vec2Features.from_pretrained(spec.weight("wav2vec2").resolve(wav2vec2, found.get("wav2vec2")))
        embedder = None
        if config.identity_dim is not None:
            from ...face.insightface_arcface import IdentityEmbedder

            embedder = IdentityEmbedder.from_onnx(
                spec.weight("face_analysis").resolve(face_analysis, found.get("face_analysis")))
        return cls(model, vae_model, audio, config, identity_embedder=embedder, **settings)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        from .weights import save_converted

        return save_converted(folder, self.config, self.model.float().state_dict(), vae=self.vae.float())

    # -- once per video ----------------------------------------------------------------------------------
    def check_speech(self, speech) -> None:
        require_speech(speech, MIN_SPEECH_SECONDS, "EMO")

    @torch.inference_mode()
    def prepare_source(self, crop: np.ndarray) -> Reference:
        pixels = self.to_tensor([crop])
        landmarks = _crop_landmarks(crop)
        masks = region_masks(landmarks, self.crop_size, face_expand_ratio=self.face_expand_ratio,
                             face_box=self.face_box)
        latents = encode_images(self.vae, pixels, self.config.latent_scale)
        face = self.model.face_locator(masks.face_region[None].to(self.device, self.dtype))
        identity = None
        if self.config.identity_dim is not None:
            if landmarks is None:   # Hallo: no face -> a zero embedding
                identity = torch.zeros(self.config.identity_dim)
            else:
                identity = torch.from_numpy(self.identity_embedder(crop, landmarks))
        target = _mean_lab(crop, masks.face_box) if self.color_match else None
        return Reference(pixels, latents, face, masks, identity, crop, target)

    # -- clips ----------------------------------------------------------------------------------------------
    def talk_crops(self, reference: Reference, speech) -> Iterator[np.ndarray]:
        """uint8 crops, one per 25 fps frame of `speech`, yielded a clip at a time."""
        n_frames = frame_count(speech.duration, self.fps)
        f, n = self.clip_length, self.motion_frames
        clips = max(1, math.ceil(n_frames / f))
        windows = self._audio_windows(speech, clips * f)
        generator = torch.Generator().manual_seed(self.seed)
        speeds = self._speeds(clips * f)
        h = self.config.latent_size
        motion: torch.Tensor | None = None       # the last n frames in [-1, 1]
        emitted = 0
        for k in progress(range(clips), total=clips, desc="emo clips", unit="clip"):
            clip_windows = next(windows)
            latents = torch.randn((1, 4, f, h, h), generator=generator).to(self.device)
            restart = motion is None or (self.reanchor_every and k % self.reanchor_every == 0)
            frames = self._clip(reference, clip_windows, None if restart else motion, speeds, k, latents)
            motion = frames[-n:] if n else frames[:0]
            for frame in self.to_crops(frames[:max(0, n_frames - emitted)]):
                emitted += 1
                yield frame

    @torch.inference_mode()
    def _clip(self, reference: Reference, windows: torch.Tensor, motion: torch.Tensor | None,
              speeds: np.ndarray | None, k: int, latents: torch.Tensor) -> torch.Tensor:
        """One clip: (f, 3, S, S) frames in [-1, 1] (clamped), colour-anchored when asked."""
        f, n = self.clip_length, self.motion_frames
        zero_motion = motion is None and self.config.identity_dim is None   # EMO: zero maps for the first clip
        if motion is None:
            ref_latents = reference.latents.repeat(1 + n, 1, 1, 1)
        else:
            moving = encode_images(self.vae, motion.to(self.dtype), self.config.latent_scale)
            ref_latents = torch.cat([reference.latents, moving])
        audio = self.model.audioproj(windows[None].to(self.device, self.dtype))
        masks = None
        if self.config.audio_attention == "masked":
            m = reference.masks
            masks = {"full": m.full, "face": m.face, "lip": m.lip}
            masks = {name: [t.to(self.device) for t in levels] for name, levels in masks.items()}
        speed = None
        if self.config.speed is not None:
            start = k * f - n
            index = np.clip(np.arange(start, start + n + f), 0, None)
            speed = torch.from_numpy(speeds[index] if speeds is not None else np.zeros(n + f, np.float32))
            speed = speed.to(self.device)
        clip = ClipInputs(ref_latents=ref_latents, audio=audio, face=reference.face, masks=masks, speed=speed,
                          zero_motion=zero_motion)
        identity = reference.identity.to(self.device) if reference.identity is not None else None
        cond = clip_conditions(self.model, clip, identity, guidance=self.guidance,
                               motion_scale=self.motion_scale.to(self.device, self.dtype))
        callback = None
        if self.step_callback is not None:
            callback = lambda i, t, out, lat: self.step_callback(k, i, t)  # noqa: E731
        latents = denoise_clip(self.model, self.scheduler, cond, latents, steps=self.steps, guidance=self.guidance,
                               on_step=callback)
        frames = torch.cat([decode_frames(self.vae, latents[:, :, i:i + self.batch_size], self.config.latent_scale)
                            for i in range(0, f, self.batch_size)]).float().clamp(-1, 1)
        if reference.color_target is not None:
            frames = _anchor_colour(frames, reference)
        return frames

    def _audio_windows(self, speech, total: int) -> Iterator[torch.Tensor]:
        """Per clip, (f, window, blocks, channels) wav2vec2 windows (rows i-m..i+m clamped to the audio), from
        features computed a chunk at a time (a rolling buffer: memory stays bounded for any length)."""
        f, m = self.clip_length, self.config.audio_margin
        samples = speech.resample(SAMPLE_RATE).samples
        samples = samples.mean(axis=1) if samples.ndim == 2 else samples
        padded = np.zeros(total * SAMPLE_RATE // int(self.fps), np.float32)   # Hallo pads to whole clips
        padded[:min(samples.size, padded.size)] = samples[:padded.size]
        layers = list(range(1, self.audio_features.num_hidden_states))      # hidden_states[1:]
        given = len(layers) * self.audio_features.hidden_size
        wanted = self.config.audio_blocks * self.config.audio_channels
        if given != wanted:
            raise InputError(None, f"the wav2vec2 model gives {len(layers)} layers of {self.audio_features.hidden_size} "
                                   f"features per frame; this model takes {wanted} ({self.config.audio_blocks} x "
                                   f"{self.config.audio_channels}): is it the wav2vec2 the model was trained with?")
        chunks = self.audio_features.iter_features((padded, SAMPLE_RATE), self.fps, num_frames=total, layers=layers)
        buffer: deque[torch.Tensor] = deque()
        first = 0            # frame index of buffer[0]
        available = 0
        for k in range(total // f):
            need_end = min(total, (k + 1) * f + m)
            while available < need_end:
                frames, rows = next(chunks)
                buffer.extend(rows.float().cpu())
                available = frames.stop
            index = (torch.arange(k * f, (k + 1) * f)[:, None] + torch.arange(-m, m + 1)).clamp(0, total - 1)
            rows = torch.stack(list(buffer))
            yield rows[index - first]
            keep_from = max(first, (k + 1) * f - m)   # the next clip looks back m frames
            while first < keep_from:
                buffer.popleft()
                first += 1

    def _speeds(self, total: int) -> np.ndarray | None:
        if self.head_speed is None:
            return None
        curve = self.head_speed
        if curve.size < total:
            curve = np.concatenate([curve, np.full(total - curve.size, curve[-1], np.float32)])
        return curve[:total]


def _check_settings(steps, guidance, face_expand_ratio, crop_expand, reanchor_every) -> None:
    if not 1 <= int(steps) <= 1000:
        raise InputError(None, f"--steps must be between 1 and 1000, got {steps}")
    if not math.isfinite(float(guidance)) or float(guidance) < 0:
        raise InputError(None, f"--guidance must be >= 0, got {guidance}")
    if not float(face_expand_ratio) > 0:
        raise InputError(None, f"--face-expand-ratio must be > 0, got {face_expand_ratio}")
    if not float(crop_expand) >= 1:
        raise InputError(None, f"--crop-expand must be >= 1, got {crop_expand}")
    if int(reanchor_every) < 0:
        raise InputError(None, f"--reanchor-every must be >= 0, got {reanchor_every}")


def _compute_dtype(device: torch.device, precision: str) -> torch.dtype:
    """"exact": float32; "fast": the model's weights in float16 on CUDA (as Hallo runs), bfloat16 elsewhere."""
    if precision != "fast":
        return torch.float32
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def _crop_landmarks(crop: np.ndarray) -> np.ndarray | None:
    """The 68 landmarks of the crop's largest face, or None (with a warning) when there is none."""
    from ...face import largest_face

    try:
        _, landmarks = largest_face(crop, "hog")
    except InputError:
        log.warning("no face found on the portrait crop; the whole crop is taken as the face region")
        return None
    return landmarks


def _mean_lab(crop: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    import cv2

    x0, x1, y0, y1 = (max(0, v) for v in box)
    lab = cv2.cvtColor(np.ascontiguousarray(crop[y0:y1, x0:x1]), cv2.COLOR_RGB2LAB).astype(np.float32)
    return lab.reshape(-1, 3).mean(axis=0)


def _anchor_colour(frames: torch.Tensor, reference: Reference) -> torch.Tensor:
    """Shift each frame's mean Lab colour over the face region back to the reference's."""
    import cv2

    out = []
    for frame in frames:
        rgb = ((frame.permute(1, 2, 0).cpu().numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
        shift = reference.color_target - _mean_lab(rgb, reference.masks.face_box)
        lab = (lab + shift).clip(0, 255).astype(np.uint8)
        fixed = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32) / 127.5 - 1
        out.append(torch.from_numpy(fixed).permute(2, 0, 1))
    return torch.stack(out).to(frames)
