"""Training the Diffused Heads UNet on the shared trainer, as the official train branch does (commit 2838e57a:
`train.py`, `lightning_modules/model.py`, `models/diffusion.py`, `datasets/datasets.py`).

Data: clips written by `faceanim preprocess --crop sda --audio` (frames/, landmarks.npy in crop pixels,
audio.wav, meta.json), at the model's frame rate (25 fps). An item is one random frame of a clip with
- the identity frame: another random frame (`identity_frame: random`) or frame 0 (`first`), the target
  then drawn from 1..n-1;
- the `n_motion_frames` frames before the target, oldest first; where the target is closer than that
  to the start, the missing ones are the identity frame (the official `get_ids`);
- the speech features of frames t-m .. t+m, clamped to the clip;
- the 20 mouth landmarks (68-point indices 48..67) rescaled to the training size.
Frames are mapped to [-1, 1] and resized to the UNet's image size (bilinear, antialiased); the motion frames
are made grayscale when `grayscale_motion`. A clip counts min(video frames, feature rows) frames, as the
official dataset does.

Speech features are computed once per clip and cached beside it (`audio_features_<kind>.npy` with a
`.json` record of what made them: a changed encoder, rate or audio recomputes them).

Objective (`Diffusion.forward`): t uniform over the T = 1000 steps, x_t = q_sample(x0, t, ε), and
L_simple (MSE of ε over everything) + w_vlb · L_vlb (improved DDPM's bound in bits, the variance output
trained with ε detached, the discretised decoder NLL at t = 0; averaged over the batch) + w_lip · L_lip
(per sample the MSE of ε inside the mouth box, averaged over the batch).

At the end the UNet (EMA weights if the run keeps them) is exported as a converted folder `OUTPUT/model`
(with the SDA speech encoder when the run used its features).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ...checkpoints import load_into
from ...diffusion import NoiseSchedule, SeededNoise, vlb_term
from ...errors import InputError
from ...fileio import atomic_path
from ...registry import WeightSpec, get_method
from ...train import FitResult, Phase, TrainingMethod, export_on_main, fit_in_epochs, image_grid, world_size
from .config import DiffusedHeadsConfig
from .model import DiffusedHeadsUNet
from .sampling import audio_window, make_schedule, sample_frame, to_grayscale
from .train_config import DiffusedHeadsTrainConfig, WeightFiles
from .weights import METHOD, load_unet, save_converted

log = logging.getLogger(__name__)

EXPORT_FOLDER = "model"
SAMPLE_ROWS = 4
MOUTH = slice(48, 68)            # the 20 mouth points of the 68-point layout
LIP_MARGIN = 5                   # pixels around the mouth box (official `lip_loss`)
FEATURE_CACHE_VERSION = 1
WAV2VEC2 = WeightSpec("wav2vec2", "--wav2vec2", "FACEANIM_WAV2VEC2", "wav2vec2 model folder (HF layout)")


# ------------------------------------------------------------------------------------------ objective

def lip_loss(eps: torch.Tensor, eps_pred: torch.Tensor, lips: torch.Tensor) -> torch.Tensor:
    """The official lip loss: per sample, the MSE of ε inside the box of its mouth landmarks `lips`
    (B, 20, 2) as (x, y) pixels: rows floor(min y) - 5 .. ceil(max y) + 5 (end excluded) and the same
    for columns, clamped to the image; the mean over the batch. A box that lies wholly outside the image
    adds 0 (the official code gives NaN there)."""
    batch, channels, height, width = eps.shape
    low = lips.detach().float().amin(dim=1).floor().long() - LIP_MARGIN     # (B, 2): x, y
    high = lips.detach().float().amax(dim=1).ceil().long() + LIP_MARGIN
    col0, row0 = low[:, 0].clamp(0, width), low[:, 1].clamp(0, height)
    col1, row1 = high[:, 0].clamp(0, width), high[:, 1].clamp(0, height)
    rows = torch.arange(height, device=eps.device)
    cols = torch.arange(width, device=eps.device)
    in_rows = (rows[None] >= row0[:, None]) & (rows[None] < row1[:, None])      # (B, H)
    in_cols = (cols[None] >= col0[:, None]) & (cols[None] < col1[:, None])      # (B, W)
    mask = (in_rows[:, :, None] & in_cols[:, None, :]).to(eps.dtype)[:, None]   # (B, 1, H, W)
    count = ((row1 - row0).clamp(min=0) * (col1 - col0).clamp(min=0) * channels).to(eps.dtype)
    squared = ((eps - eps_pred) ** 2 * mask).flatten(1).sum(1)
    per_sample = torch.where(count > 0, squared / count.clamp(min=1), torch.zeros_like(squared))
    return per_sample.mean()


def diffusion_losses(unet: nn.Module, schedule: NoiseSchedule, batch: Mapping[str, torch.Tensor], *,
                     t: torch.Tensor | None = None, noise: torch.Tensor | None = None,
                     lips: bool = True) -> dict[str, torch.Tensor]:
    """The official terms of one step on `batch` (`x`, `x_cond`, `motion`, `audio`, `lips`): `simple`,
    `vlb` and (with `lips`) `lip`, unweighted, and the step's `t`, `noise`, `x_t` and `eps` (prediction).
    `t` (step indices) and `noise` are drawn when not given: t uniform over the schedule, then ε."""
    x0 = batch["x"]
    if t is None:
        t = torch.randint(schedule.num_steps, (x0.shape[0],)).to(x0.device)
    if noise is None:
        noise = torch.randn_like(x0)
    t = t.to(x0.device)
    x_t = schedule.q_sample(x0, t, noise)
    motion = batch.get("motion")
    motion = motion if motion is not None and motion.shape[1] > 0 else None
    timesteps = schedule.timestep_map.to(x0.device)[t]
    out = unet(x_t, timesteps, batch["x_cond"], motion, batch["audio"]).float()
    eps, v = out.chunk(2, dim=1)
    terms = {"simple": ((noise - eps) ** 2).mean(),
             "vlb": vlb_term(schedule, x0, x_t, t, eps, v).mean()}
    if lips:
        terms["lip"] = lip_loss(noise, eps, batch["lips"])
    return {**terms, "t": t, "noise": noise, "x_t": x_t, "eps": eps}


# ------------------------------------------------------------------------------------------ data

def frame_ids(n_frames: int, identity_frame: str, n_motion_frames: int, rng: np.random.Generator
              ) -> tuple[int, int, list[int]]:
    """(target, identity, motion frames oldest first) of one draw (the official `get_ids`): the motion
    frames are the n frames before the target, the identity frame standing in for those before the clip."""
    if identity_frame == "first":
        target, identity = int(rng.integers(1, n_frames)), 0
    else:
        target, identity = (int(i) for i in rng.choice(n_frames, 2, replace=False))
    return target, identity, motion_frame_ids(target, identity, n_motion_frames)


def motion_frame_ids(target: int, identity: int, n_motion_frames: int) -> list[int]:
    """The frames before `target`, oldest first: t-n .. t-1, the identity frame in place of those before 0."""
    return [identity] * max(n_motion_frames - target, 0) + list(range(max(target - n_motion_frames, 0), target))


@dataclass(frozen=True)
class TalkingClip:
    """A preprocessed clip: its folder, usable frames, crop size and speech-feature file."""

    folder: Path
    n_frames: int
    crop_size: int
    features: Path

    def frame_path(self, index: int) -> Path:
        return self.folder / "frames" / f"{index:06d}.png"


class TalkingClipDataset(Dataset):
    """Items (dicts of float32 tensors): `x` (3, S, S) the target frame, `x_cond` the identity frame,
    `motion` (n·c, S, S) the motion frames, `audio` (2m+1, D) the speech-feature window, `lips` (20, 2)
    the mouth landmarks in pixels of S (of the frame `lip_landmarks` names). Indexed with `(index, seed)`
    keys: every draw comes from the seed."""

    def __init__(self, clips: Sequence[TalkingClip], config: DiffusedHeadsTrainConfig):
        if not clips:
            raise InputError(None, "the dataset has no clips")
        self.clips = list(clips)
        self.config = config

    def __len__(self) -> int:
        return len(self.clips) * self.config.num_repeats

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        if seed is None:
            seed = int(torch.randint(0, 2 ** 62, ()).item())
        rng = np.random.default_rng(seed)
        clip = self.clips[index % len(self.clips)]
        unet, size = self.config.model.unet, self.config.image_size
        target, identity, motion_ids = frame_ids(clip.n_frames, self.config.identity_frame, unet.n_motion_frames, rng)
        images = {i: _load_frame(clip.frame_path(i), size) for i in {target, identity, *motion_ids}}
        if motion_ids:
            motion = torch.stack([images[i] for i in motion_ids])
            motion = (to_grayscale(motion) if unet.grayscale_motion else motion).flatten(0, 1)
        else:
            motion = torch.zeros(0, size, size)
        features = np.load(clip.features, mmap_mode="r")
        audio = torch.from_numpy(np.array(features[audio_window(target, clip.n_frames, unet.n_audio_motion_embs)],
                                          dtype=np.float32))
        lip_frame = identity if self.config.lip_landmarks == "identity" else target
        landmarks = np.load(clip.folder / "landmarks.npy", mmap_mode="r")
        lips = np.array(landmarks[lip_frame, MOUTH, :2], dtype=np.float32) / np.float32(clip.crop_size / size)
        return {"x": images[target], "x_cond": images[identity], "motion": motion, "audio": audio,
                "lips": torch.from_numpy(lips)}


def _load_frame(path: Path, size: int) -> torch.Tensor:
    """A crop as (3, size, size) float32 in [-1, 1]: (uint8 / 255)·2 - 1, then resized to `size` as the
    official `Resize(img_resize)` does (bilinear), antialiased here (the official torchvision 0.10 resized
    tensors without antialiasing); crops preprocessed at the training size are used as they are."""
    from ...media import read_image

    try:
        pixels = read_image(path)
    except InputError:
        raise
    except Exception as err:     # a truncated PNG
        raise InputError(path, f"cannot read the frame ({err})") from None
    image = torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float() / 255 * 2 - 1
    if image.shape[1:] != (size, size):
        image = F.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)[0]
    return image


# ------------------------------------------------------------------------------- speech features

@dataclass
class SpeechFeatures:
    """What makes a clip's speech features: the kind, its weights (loaded on first use) and the record
    that identifies them in the cache."""

    kind: str
    fps: float
    audio_encoder: str | None = None
    wav2vec2: str | None = None
    _encoder: Any = field(default=None, repr=False)
    _extractor: Any = field(default=None, repr=False)
    _source: str | None = field(default=None, repr=False)

    @property
    def encoder(self) -> nn.Module | None:
        """The SDA speech encoder (sda features only)."""
        if self.kind != "sda":
            return None
        if self._encoder is None:
            from .audio_encoder import load_audio_encoder

            self._encoder = load_audio_encoder(self.audio_encoder)
        return self._encoder

    def source(self) -> str:
        """A fingerprint of what computes the features: the encoder's tensors, the wav2vec2 folder's files
        or the log-mel settings."""
        if self._source is None:
            if self.kind == "sda":
                digest = hashlib.sha256()
                for name, tensor in sorted(self.encoder.state_dict().items()):
                    digest.update(name.encode())
                    digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
                self._source = f"sda:{digest.hexdigest()}"
            elif self.kind == "wav2vec2":
                root = Path(self.wav2vec2).resolve()
                files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
                listing = [(str(p.relative_to(root) if root.is_dir() else p.name), p.stat().st_size,
                            p.stat().st_mtime_ns) for p in files]
                self._source = "wav2vec2:" + hashlib.sha256(json.dumps([str(root), listing]).encode()).hexdigest()
            else:
                self._source = "logmel:default"     # frame_features' defaults: 80 bands, 4 hops per frame
        return self._source

    def compute(self, samples: np.ndarray) -> np.ndarray:
        from .audio_encoder import frame_features

        extra: dict[str, Any] = {}
        if self.kind == "sda":
            extra["encoder"] = self.encoder
        elif self.kind == "wav2vec2":
            if self._extractor is None:
                from ...audio import Wav2Vec2Features

                device = "cuda" if torch.cuda.is_available() else "cpu"
                self._extractor = Wav2Vec2Features.from_pretrained(self.wav2vec2, device=device)
            extra["wav2vec2"] = self._extractor
        features = frame_features(torch.from_numpy(np.ascontiguousarray(samples)), self.kind, fps=self.fps, **extra)
        return features.numpy().astype(np.float32)

    def bundled_encoder(self) -> tuple[Any, dict] | None:
        """(config, tensors) of the SDA encoder for the exported folder; None for other features."""
        if self.kind != "sda" or not hasattr(self.encoder, "config"):
            return None
        return self.encoder.config, self.encoder.state_dict()


def cached_features(folder: Path, features: SpeechFeatures) -> Path:
    """The clip's feature file, computed (and recorded) unless the cache was made the same way."""
    audio = folder / "audio.wav"
    path, record_path = folder / f"audio_features_{features.kind}.npy", folder / f"audio_features_{features.kind}.json"
    stat = audio.stat()
    record = {"version": FEATURE_CACHE_VERSION, "kind": features.kind, "fps": features.fps,
              "source": features.source(), "audio": [stat.st_size, stat.st_mtime_ns]}
    try:
        if path.is_file() and json.loads(record_path.read_text()) == record:
            return path
    except (OSError, ValueError):
        pass
    from ...media import read_audio

    samples = read_audio(audio, sample_rate=16000).samples
    rows = features.compute(samples)
    try:
        with atomic_path(path) as tmp:
            np.save(tmp, rows)
        with atomic_path(record_path) as tmp:
            tmp.write_text(json.dumps(record) + "\n")
    except OSError as err:
        raise InputError(folder, f"cannot write the speech-feature cache ({err.strerror or err})") from None
    return path


def open_clips(data: str | os.PathLike, config: DiffusedHeadsTrainConfig, features: SpeechFeatures
               ) -> tuple[list[TalkingClip], int]:
    """The clips of `data` (folders `faceanim preprocess --audio` wrote) with their cached features, and
    the features' width. With several processes the first computes the caches while the others wait."""
    root = Path(data)
    if not root.is_dir():
        raise InputError(root, "dataset folder not found" if not root.exists() else "is not a folder")
    folders = [p for p in sorted(root.iterdir()) if not p.name.startswith(".") and p.is_dir()
               and (p / "meta.json").is_file() and (p / "frames").is_dir()]
    if not folders:
        raise InputError(root, "has no finished clips (folders with frames/ and meta.json, as "
                               "`faceanim preprocess --crop sda --audio` writes)")
    with _main_process_first(config):
        clips = [_open_clip(folder, config, features) for folder in folders]
    widths = {int(np.load(clip.features, mmap_mode="r").shape[1]) for clip in clips}
    if len(widths) != 1:
        raise InputError(root, f"the clips' cached {features.kind} features differ in width ({sorted(widths)})")
    return clips, widths.pop()


def _open_clip(folder: Path, config: DiffusedHeadsTrainConfig, features: SpeechFeatures) -> TalkingClip:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError) as err:
        raise InputError(folder / "meta.json", f"cannot read the clip's metadata ({err})") from None
    if not (folder / "audio.wav").is_file():
        raise InputError(folder, "has no audio.wav: preprocess the videos with --audio (and a sound track)")
    if not (folder / "landmarks.npy").is_file():
        raise InputError(folder, "has no landmarks.npy (not a clip `faceanim preprocess` wrote)")
    fps = float(meta.get("fps") or 0)
    if abs(fps - config.model.fps) > 1e-3:
        raise InputError(folder, f"is at {fps:g} fps; Diffused Heads trains at {config.model.fps:g} fps "
                                 f"(preprocess with --fps {config.model.fps:g})")
    video_frames = int(meta.get("frames") or 0)
    while video_frames and not (folder / "frames" / f"{video_frames - 1:06d}.png").is_file():
        video_frames -= 1      # meta.json promised more frames than the folder holds
    landmarks = np.load(folder / "landmarks.npy", mmap_mode="r")
    if landmarks.ndim != 3 or landmarks.shape[1] != 68:
        raise InputError(folder / "landmarks.npy", f"holds shape {landmarks.shape}, not (frames, 68, 2)")
    path = cached_features(folder, features)
    rows = np.load(path, mmap_mode="r").shape[0]
    n_frames = min(video_frames, rows, landmarks.shape[0])
    if n_frames < 2:
        raise InputError(folder, f"has {n_frames} usable frame{'s' if n_frames != 1 else ''} ({video_frames} "
                                 f"video frames, {rows} speech-feature rows); training needs at least 2")
    crop = int(meta.get("crop_size") or 0)
    if crop <= 0:
        from ...media import read_image

        crop = read_image(folder / "frames" / "000000.png").shape[0]
    return TalkingClip(folder, n_frames, crop, path)


class _main_process_first:
    """Under a multi-process launch, the first process runs the block before the others (Accelerate's
    `main_process_first`); a plain context otherwise."""

    def __init__(self, config: DiffusedHeadsTrainConfig):
        self.state = None
        if world_size() > 1:
            from accelerate import PartialState

            cpu = bool(config.trainer.get("cpu", not torch.cuda.is_available()))
            self.state = PartialState(cpu=cpu)

    def __enter__(self):
        if self.state is not None and not self.state.is_main_process:
            self.state.wait_for_everyone()

    def __exit__(self, *exc):
        if self.state is not None and self.state.is_main_process:
            self.state.wait_for_everyone()
        return False


# ------------------------------------------------------------------------------------ the method

class DiffusedHeadsTraining(TrainingMethod):
    """One model, `unet`, one phase; Adam with the official StepLR (in epochs, stepped per step)."""

    def __init__(self, config: DiffusedHeadsTrainConfig, init: str | None = None, steps_per_epoch: int = 1):
        self.config = config
        self.init = init
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        self._schedule = make_schedule(config.model.n_timesteps)
        self._on_device: dict[torch.device, NoiseSchedule] = {}

    def schedule(self, device: torch.device) -> NoiseSchedule:
        if device not in self._on_device:
            self._on_device[device] = self._schedule.to(device)
        return self._on_device[device]

    def build_models(self) -> dict[str, nn.Module]:
        unet = DiffusedHeadsUNet(self.config.model.unet)
        if self.init is not None:
            start = load_unet(self.init, self.config.model)
            load_into(unet, start.state_dict(), strict=True, source=self.init)
            log.info("UNet started from %s", self.init)
        return {"unet": unet}

    def build_optimizers(self, models: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        return {"unet": torch.optim.Adam(models["unet"].parameters(), lr=self.config.learning_rate)}

    def build_schedulers(self, optimizers: Mapping[str, torch.optim.Optimizer]) -> dict[str, Any]:
        step_size = self.config.lr_step * self.steps_per_epoch
        return {"unet": torch.optim.lr_scheduler.StepLR(optimizers["unet"], step_size, gamma=self.config.lr_gamma)}

    def phases(self) -> list[Phase]:
        return [Phase("unet", ("unet",), self.loss)]

    def loss(self, models: Mapping[str, nn.Module], batch: dict, context: dict) -> dict[str, torch.Tensor]:
        weights = self.config.loss_weights
        terms = diffusion_losses(models["unet"], self.schedule(batch["x"].device), batch, lips=weights.lip > 0)
        losses = {"simple": terms["simple"], "vlb": weights.vlb * terms["vlb"]}
        if weights.lip > 0:
            losses["lip"] = weights.lip * terms["lip"]
        return losses

    def samples(self, models: Mapping[str, nn.Module], batch: dict) -> torch.Tensor:
        """Columns: identity | newest motion frame | real frame | generated frame (`sample_steps` DDPM steps,
        conditioned on the real motion frames and speech window)."""
        rows = {key: value[:SAMPLE_ROWS] for key, value in batch.items()}
        x_cond, motion = rows["x_cond"], rows["motion"]
        motion = motion if motion.shape[1] > 0 else None
        seed = int(torch.randint(0, 2 ** 31, ()).item())    # the trainer seeds sampling: the same every time
        shape = tuple(x_cond.shape)
        x_T = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(x_cond)
        schedule = make_schedule(self.config.model.n_timesteps, self.config.sample_steps).to(x_cond.device)
        generated = sample_frame(models["unet"], schedule, x_T, x_cond, motion, rows["audio"],
                                 SeededNoise(lambda index: seed + 1 + index, shape=shape))
        width = self.config.model.unet.motion_channels
        newest = motion[:, -width:] if motion is not None else torch.zeros_like(x_cond)
        return image_grid([(image.float() + 1) / 2 for image in (x_cond, newest, rows["x"], generated)])


# ------------------------------------------------------------------------------------- weights

@dataclass(frozen=True)
class TrainingFiles:
    init: str | None
    audio_encoder: str | None
    wav2vec2: str | None


def resolve_weights(config: DiffusedHeadsTrainConfig, overrides: WeightFiles = WeightFiles()) -> TrainingFiles:
    """The files a run needs, from flags (`overrides`), the config's `weights:` or the environment: the
    SDA encoder for sda features, a wav2vec2 folder for wav2vec2 features, `init` when given."""
    configured, kind = config.weights, config.model.audio_features
    init = overrides.init or configured.init
    if init is not None and not Path(init).exists():
        raise InputError(init, "initial weights not found (--init)")
    encoder = wav2vec2 = None
    if kind == "sda":
        spec = get_method(METHOD).weight("audio_encoder")
        encoder = spec.resolve(overrides.audio_encoder, configured.audio_encoder, config_key="audio_encoder")
        if not Path(encoder).exists():
            raise InputError(encoder, "the speech encoder not found (--audio-encoder)")
    elif kind == "wav2vec2":
        wav2vec2 = WAV2VEC2.resolve(overrides.wav2vec2, configured.wav2vec2, config_key="wav2vec2")
        if not Path(wav2vec2).exists():
            raise InputError(wav2vec2, "the wav2vec2 model not found (--wav2vec2)")
    return TrainingFiles(init, encoder, wav2vec2)


def check_feature_width(config: DiffusedHeadsTrainConfig, width: int) -> None:
    """InputError when the speech features' width is not what the UNet takes."""
    unet = config.model.unet
    if width != unet.audio_dim:
        raise InputError(None, f"the {config.model.audio_features} speech features have {width} values per frame but "
                               f"the UNet takes {unet.audio_dim}: set model.unet.audio_channels: {width}")


def export_model(models: Mapping[str, nn.Module], config: DiffusedHeadsConfig, features: SpeechFeatures,
                 folder: str | os.PathLike) -> Path:
    """The trained UNet (and the SDA speech encoder when its features were used) as a converted folder."""
    return save_converted(folder, config, models["unet"].state_dict(), audio_encoder=features.bundled_encoder(),
                          metadata={"source": "faceanim train diffused_heads"})


# ------------------------------------------------------------------------------------------ a run

def talking_dataset(config: DiffusedHeadsTrainConfig, data: str | os.PathLike,
                    features: SpeechFeatures) -> TalkingClipDataset:
    """The training items of `data`, its speech features cached and checked against the UNet."""
    clips, width = open_clips(data, config, features)
    check_feature_width(config, width)
    return TalkingClipDataset(clips, config)


def speech_features(config: DiffusedHeadsTrainConfig, files: TrainingFiles) -> SpeechFeatures:
    return SpeechFeatures(config.model.audio_features, config.model.fps, files.audio_encoder, files.wav2vec2)


def train_diffused_heads(config: DiffusedHeadsTrainConfig, data: str | os.PathLike, output: str | os.PathLike, *,
                         weights: WeightFiles = WeightFiles(), resume: str | None = None,
                         max_steps: int | None = None) -> tuple[FitResult, Path | None]:
    """Train (or resume) on `data` into `output`. Returns the fit result and the exported folder (None on
    the other processes)."""
    files = resolve_weights(config, weights)
    features = speech_features(config, files)
    dataset = talking_dataset(config, data, features)
    trainer, result = fit_in_epochs(lambda per_epoch: DiffusedHeadsTraining(config, files.init, per_epoch), dataset,
                                    len(dataset), config, record={"method": METHOD, "clips": len(dataset.clips)},
                                    output=output, max_steps=max_steps, resume=resume)
    return result, export_on_main(trainer, lambda models: export_model(models, config.model, features,
                                                                       Path(output) / EXPORT_FOLDER))


def train(stage: str, config: str | os.PathLike, data: str | os.PathLike, output: str | os.PathLike,
          settings: dict, *, resume: str | None = None, max_steps: int | None = None):
    """`faceanim train diffused_heads` (the registry's entry), from the config file `config`."""
    from .train_config import load_train_config

    return train_diffused_heads(load_train_config(config), data, output, weights=WeightFiles(**settings),
                                resume=resume, max_steps=max_steps)
