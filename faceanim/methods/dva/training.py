"""Training Diffusion Video Autoencoders on the shared trainer, as the official code does (`experiment.py`
`LitModel`, `diffusion/base.py` `training_losses`, `dataset.py` `Voxceleb`, `experiment_classifier.py`).

Stage `dva` (the autoencoder). Data: videos of FFHQ-aligned face crops, as `faceanim preprocess --crop ffhq`
writes them (`ROOT/<clip>/frames/*.png` with meta.json) or in the official layout (`ROOT/train/<video>/`).
An item is `frames_per_video` (4) distinct random frames of one video, each resized to 256 px, flipped
horizontally at random on its own and mapped to [-1, 1] (the official item; its DataLoader takes one video
per GPU, so a step sees 4 frames per GPU). The objective, per frame, one t uniform over the T steps:
- z_face = encoder(clean frame): the frozen ArcFace and landmark nets, then the trained Linear(614, 512);
- two noises ε1, ε2 at that t: `eps` = L1(ε1, ε̂1) + L1(ε2, ε̂2) (means over pixels);
- `xT_reg` = L1 between the two x0 estimates, each times the parser's foreground mask of the clean frame
  (the image class set, `face_mask(x, for_video=False)`, as `training_losses` calls it);
- loss = mean over frames of `eps` + mean of `xT_reg` (`training_step`).
Adam(1e-4) over the UNet and `encoder.linear` (the ArcFace, landmark and parser nets stay frozen), gradient
norm clipped to 1, EMA 0.9999 after every step, fp16 autocast. The frozen nets come from `--init` (a released
or trained checkpoint, or a converted folder, to fine-tune from) or from the three pretrained files
(`--idnet`, `--lndnet`, `--bgnet`). At the end the EMA weights are exported as a converted folder
`OUTPUT/model` that `weights.load_model` reads. With the tiny preset the UNet runs at 64 px: the frames
(and the mask) are resized for it while the encoder reads them at 256 px.

`identity_stats` (instead of training): the ArcFace identity of every frame of every split is computed
and written to `OUTPUT/latent.pkl` (conds, conds_mean, conds_std), the file the classifier and the edit
z-normalise with. The official `infer_whole_dataset` appends the features after its loop, so its
latent.pkl holds only the last batch and its statistics come from that batch; here every frame counts.

Stage `classifier`: the official `ClsModel`: Linear(512, 40) over the z-normalised identities of labelled
FFHQ-aligned face images (CelebA-HQ), BCE with labels > 0 as positives, Adam(1e-3), batches of 32, an EMA
twin (0.9999), random horizontal flips. The frozen ArcFace computes every image's identity (and its
mirror's) once; the classifier then trains on the cached features in a plain loop: a 512 x 40 linear layer
needs neither devices nor checkpoints (a run takes seconds). The export, `OUTPUT/last.ckpt`, has the
official layout (`state_dict` with classifier.*, ema_classifier.*, conds_mean, conds_std; `global_step`).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ... import fileio
from ...checkpoints import load_checkpoint, load_into, state_dict_from
from ...diffusion import NoiseSchedule
from ...errors import InputError
from ...fileio import atomic_path
from ...media import read_image
from ...media.image import resize_square
from ...progress import progress
from ...registry import WeightSpec
from ...settings import config_section, settings_builder, settings_checker
from ...train import (FitResult, Phase, TrainingMethod, export_on_main, fit_in_epochs, image_grid,
                      is_main_process)
from ...train.data import FramePairDataset, FrameFolder, IMAGE_SUFFIXES, PairOptions, open_frame_pairs
from .config import DVAConfig, tiny, vox256
from .encoder import FRAME_SIZE, IdentityNet
from .model import DVAModel
from .sampling import base_schedule, ddim_encode, ddim_reconstruct
from .weights import (ATTRIBUTES, ID_DIM, IdentityStats, load_identity_stats, load_model, load_pretrained_encoder,
                      save_converted, save_identity_stats)

log = logging.getLogger(__name__)

EXPORT_FOLDER = "model"
STATS_FILE = "latent.pkl"
CLASSIFIER_FILE = "last.ckpt"
SAMPLE_ROWS = 4
PRESETS = {"vox256": vox256, "tiny": tiny}
OWNER = "dva training config"
LABEL_FILES = ("CelebAMask-HQ-attribute-anno.txt", "attributes.csv", "labels.csv")

_check = settings_checker(OWNER)
_build = settings_builder(OWNER)

IDNET = WeightSpec("idnet", "--idnet", "FACEANIM_DVA_IDNET", "ArcFace IR-SE50 weights (model_ir_se50.pth; or --init)")
LNDNET = WeightSpec("lndnet", "--lndnet", "FACEANIM_DVA_LNDNET",
                    "landmark weights (mobilenet_224_model_best_gdconv_external.pth.tar; or --init)")
BGNET = WeightSpec("bgnet", "--bgnet", "FACEANIM_DVA_BGNET", "face-parser weights (79999_iter.pth; or --init)")
SPECS = {"idnet": IDNET, "lndnet": LNDNET, "bgnet": BGNET}


# ------------------------------------------------------------------------------------------ settings

@dataclass(frozen=True)
class WeightFiles:
    """Local files of a run (None: from the command line or the environment): `init` a DVA checkpoint or
    converted folder to start from (it holds the frozen nets), else the three pretrained files; `checkpoint`
    the model whose ArcFace computes identity statistics."""

    init: str | None = None
    checkpoint: str | None = None
    idnet: str | None = None
    lndnet: str | None = None
    bgnet: str | None = None


@dataclass(frozen=True)
class DVATrainConfig:
    """How the autoencoder is trained (module docstring). `batch_size`: videos per process and step, each
    giving `frames_per_video` frames; `num_steps` (when set) ends the run instead of `num_epochs` (an epoch is
    one item per video, times `num_repeats`); `checkpoint_freq` in epochs unless the trainer section sets
    `checkpoint_every`; `sample_steps`: DDIM steps of the sample grids."""

    model: DVAConfig = field(default_factory=vox256)
    learning_rate: float = 1e-4
    batch_size: int = 1
    frames_per_video: int = 4
    num_epochs: int = 1
    num_steps: int | None = 1_000_000
    checkpoint_freq: float = 1
    sample_steps: int = 20
    flip: bool = True
    num_repeats: int = 1
    trainer: dict = field(default_factory=dict)
    weights: WeightFiles = field(default_factory=WeightFiles)

    def __post_init__(self):
        object.__setattr__(self, "trainer", dict(self.trainer))
        positive = ("learning_rate", "batch_size", "frames_per_video", "num_epochs", "checkpoint_freq",
                    "sample_steps", "num_repeats")
        _check([(getattr(self, name) > 0, f"{name} must be > 0") for name in positive]
               + [(self.num_steps is None or self.num_steps > 0, "num_steps must be > 0 or null")])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DVATrainConfig":
        unknown = sorted(set(data) - {"model", "train", "dataset", "trainer", "weights"})
        _check([(not unknown, f"unknown sections {', '.join(unknown)}")])
        values = {**config_section(data, "train", ("learning_rate", "batch_size", "frames_per_video", "num_epochs",
                                                   "num_steps", "checkpoint_freq", "sample_steps"), owner=OWNER),
                  **config_section(data, "dataset", ("flip", "num_repeats"), owner=OWNER)}
        trainer = data.get("trainer") or {}
        _check([(isinstance(trainer, Mapping), "section trainer must be a mapping")])
        return cls(model=model_from_dict(data.get("model") or {}), trainer=dict(trainer),
                   weights=_build(WeightFiles, data.get("weights") or {}, "weights"), **values)


@dataclass(frozen=True)
class ClassifierTrainConfig:
    """The attribute classifier (`templates_cls.py`): `num_samples` images seen in batches of `batch_size`;
    `labels` the label file in the data folder (None: found there), `images` the image folder (None: the
    label file's folder, else its `CelebA-HQ-img/`); `flip` the official random horizontal flip;
    `identity_batch` images per ArcFace call when caching the identities."""

    learning_rate: float = 1e-3
    batch_size: int = 32
    num_samples: int = 300_000
    ema_decay: float = 0.9999
    flip: bool = True
    seed: int = 0
    labels: str | None = None
    images: str | None = None
    identity_batch: int = 32
    weights: WeightFiles = field(default_factory=WeightFiles)

    def __post_init__(self):
        positive = ("learning_rate", "batch_size", "num_samples", "identity_batch")
        _check([(getattr(self, name) > 0, f"{name} must be > 0") for name in positive]
               + [(0 <= self.ema_decay < 1, "ema_decay must be in [0, 1)")])

    @property
    def num_steps(self) -> int:
        return max(1, self.num_samples // self.batch_size)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ClassifierTrainConfig":
        unknown = sorted(set(data) - {"classifier", "weights"})
        _check([(not unknown, f"unknown sections {', '.join(unknown)}")])
        values = data.get("classifier") or {}
        _check([(isinstance(values, Mapping), "section classifier must be a mapping")])
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)} - {"weights"}
        unknown = sorted(set(values) - known)
        _check([(not unknown, f"unknown classifier settings: {', '.join(unknown)}")])
        return cls(weights=_build(WeightFiles, data.get("weights") or {}, "weights"), **values)


def model_from_dict(section: Mapping[str, Any]) -> DVAConfig:
    """A network from a `preset` (vox256 unless given) with `DVAConfig` overrides."""
    _check([(isinstance(section, Mapping), "section model must be a mapping")])
    section = dict(section)
    preset = section.pop("preset", "vox256")
    _check([(preset in PRESETS, f"unknown model preset {preset!r} (choose {', '.join(PRESETS)})")])
    known = {f.name for f in dataclasses.fields(DVAConfig)}
    unknown = sorted(set(section) - known)
    _check([(not unknown, f"unknown model settings: {', '.join(unknown)}")])
    return PRESETS[preset]().replace(**{k: tuple(v) if isinstance(v, list) else v for k, v in section.items()})


def packaged_configs() -> list[str]:
    """Names of the DVA training configs shipped with faceanim (`configs/*.yaml`)."""
    return fileio.packaged_configs(__package__)


def load_train_config(source: str | os.PathLike) -> DVATrainConfig:
    """The autoencoder's training config from a YAML file or a packaged name (`tiny.yaml`, `vox256`)."""
    return fileio.load_config(source, __package__, DVATrainConfig.from_dict)


def load_classifier_config(source: str | os.PathLike) -> ClassifierTrainConfig:
    """The classifier's training config (`classifier.yaml` or a file)."""
    return fileio.load_config(source, __package__, ClassifierTrainConfig.from_dict)


# ------------------------------------------------------------------------------------------ objective

def dva_losses(model: DVAModel, schedule: NoiseSchedule, frames: torch.Tensor, t: torch.Tensor,
               noise1: torch.Tensor, noise2: torch.Tensor) -> dict[str, torch.Tensor]:
    """The official terms of one step on `frames` (N, 3, 256, 256) in [-1, 1] with step indices `t` (N,) and
    two noises at the UNet's size: `eps` (mean over frames of the two noises' L1), `xT_reg` (mean over frames
    of the masked x0 estimates' L1; the loss is their sum) and, detached, `x0_estimated`, `x0_estimated2`
    and `mask` (at the UNet's size)."""
    x0 = model.to_unet_size(frames)
    cond = model.encoder(frames)          # the frozen nets build no graph; the gradient reaches the linear
    with torch.no_grad():
        mask = model.to_unet_size(model.encoder.face_mask(frames).to(x0.dtype))
    t = t.to(x0.device)
    timesteps = schedule.timestep_map.to(x0.device)[t]
    x_t1, x_t2 = schedule.q_sample(x0, t, noise1), schedule.q_sample(x0, t, noise2)
    eps1 = model(x_t1, timesteps, cond).float()
    eps2 = model(x_t2, timesteps, cond).float()
    l1 = (noise1 - eps1).abs().flatten(1).mean(1) + (noise2 - eps2).abs().flatten(1).mean(1)
    x0_1 = schedule.x0_from_eps(x_t1.float(), t, eps1) * mask
    x0_2 = schedule.x0_from_eps(x_t2.float(), t, eps2) * mask
    reg = (x0_1 - x0_2).abs().flatten(1).mean(1)
    return {"eps": l1.mean(), "xT_reg": reg.mean(), "x0_estimated": x0_1.detach(),
            "x0_estimated2": x0_2.detach(), "mask": mask}


class TrainableDVA(DVAModel):
    """The model whose forward with `frames=` gives the training terms (a forward DistributedDataParallel
    can wrap); called as (x_t, t, cond) it is the UNet. Its state dict is `DVAModel`'s."""

    def __init__(self, config: DVAConfig | None = None):
        super().__init__(config)
        self._schedules: dict[torch.device, NoiseSchedule] = {}

    def schedule(self, device: torch.device) -> NoiseSchedule:
        if device not in self._schedules:
            self._schedules[device] = base_schedule(self.config).to(device)
        return self._schedules[device]

    def forward(self, x_t: torch.Tensor | None = None, t: torch.Tensor | None = None,
                cond: torch.Tensor | None = None, *, frames: torch.Tensor | None = None,
                noise: tuple[torch.Tensor, torch.Tensor] | None = None):
        if frames is None:
            return super().forward(x_t, t, cond)
        return dva_losses(self, self.schedule(frames.device), frames, t, *noise)


# ------------------------------------------------------------------------------------------ data

def frame_to_tensor(frame: np.ndarray, flip: bool = False) -> torch.Tensor:
    """A uint8 (H, W, 3) crop as (3, 256, 256) float32 in [-1, 1] (the official Resize(256), ToTensor,
    Normalize(0.5, 0.5)), mirrored when `flip`."""
    pixels = resize_square(frame, FRAME_SIZE)
    if flip:
        pixels = pixels[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).float() / 127.5 - 1


class VideoFramesDataset(Dataset):
    """Items: {"frames": (k, 3, 256, 256)}, k distinct random frames of one video (with replacement only
    when it has fewer), each flipped at random; indexed with `(index, seed)` keys, all draws from the seed."""

    def __init__(self, videos: Sequence, frames_per_video: int = 4, flip: bool = True, num_repeats: int = 1):
        if not videos:
            raise InputError(None, "the dataset has no videos")
        self.videos, self.count, self.flip, self.num_repeats = list(videos), frames_per_video, flip, num_repeats

    def __len__(self) -> int:
        return len(self.videos) * self.num_repeats

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        if seed is None:
            seed = int(torch.randint(0, 2 ** 62, ()).item())
        rng = np.random.default_rng(seed)
        video = self.videos[index % len(self.videos)]
        n = video.num_frames()
        picks = rng.choice(n, self.count, replace=n < self.count).tolist()
        flips = rng.random(self.count) < 0.5 if self.flip else np.zeros(self.count, bool)
        frames = [frame_to_tensor(frame, bool(f)) for frame, f in zip(video.read(picks), flips)]
        return {"frames": torch.stack(frames)}


def training_videos(data: str | os.PathLike) -> list:
    """The videos of `data`: ROOT/train/ in the official layout, else the preprocessed clips."""
    return open_frame_pairs(data, "train", PairOptions(frame_size=None)).videos


def all_videos(data: str | os.PathLike) -> list:
    """Every video of `data`: all splits (train/, test/) of the official layout, else the preprocessed clips."""
    root = Path(data)
    splits = [s for s in ("train", "test") if (root / s).is_dir()]
    if not splits:
        return FramePairDataset.from_preprocessed(root, PairOptions(frame_size=None)).videos
    return [v for s in splits for v in FramePairDataset.from_official(root, s, PairOptions(frame_size=None)).videos]


# ------------------------------------------------------------------------------------ the method

class DVATraining(TrainingMethod):
    """One model, `dva` (its frozen nets keep requires_grad False, so only the UNet and `encoder.linear`
    are optimised), one phase; plain Adam as the official (no warmup, no weight decay)."""

    def __init__(self, config: DVATrainConfig, files: "TrainingFiles"):
        self.config = config
        self.files = files

    def build_models(self) -> dict[str, nn.Module]:
        return {"dva": initial_model(self.config.model, self.files)}

    def build_optimizers(self, models: Mapping[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        trained = [p for p in models["dva"].parameters() if p.requires_grad]
        return {"dva": torch.optim.Adam(trained, lr=self.config.learning_rate)}

    def phases(self) -> list[Phase]:
        return [Phase("dva", ("dva",), self.loss)]

    def loss(self, models: Mapping[str, nn.Module], batch: dict, context: dict) -> dict[str, torch.Tensor]:
        frames = batch["frames"].flatten(0, 1)
        size = self.config.model.img_size
        t = torch.randint(self.config.model.T, (frames.shape[0],)).to(frames.device)
        shape = (frames.shape[0], 3, size, size)
        noise = (torch.randn(shape, device=frames.device), torch.randn(shape, device=frames.device))
        terms = models["dva"](frames=frames, t=t, noise=noise)
        return {"eps": terms["eps"], "xT_reg": terms["xT_reg"]}

    def samples(self, models: Mapping[str, nn.Module], batch: dict) -> torch.Tensor:
        """Columns: real frame | DDIM autoencoding (encode to x_T, decode; `sample_steps` steps each)."""
        model = models["dva"]
        frames = batch["frames"].flatten(0, 1)[:SAMPLE_ROWS]
        x0, cond = model.to_unet_size(frames), model.encoder(frames)
        steps = self.config.sample_steps
        x_T = ddim_encode(model, x0, cond, steps, config=self.config.model)
        decoded = ddim_reconstruct(model, x_T, cond, steps, config=self.config.model)
        return image_grid([(x0.float() + 1) / 2, (decoded.float() + 1) / 2])


# ------------------------------------------------------------------------------------- weights

@dataclass(frozen=True)
class TrainingFiles:
    init: str | None = None
    idnet: str | None = None
    lndnet: str | None = None
    bgnet: str | None = None


def _existing(path: str, flag: str, what: str) -> str:
    if not Path(path).exists():
        raise InputError(path, f"{what} not found ({flag})")
    return path


def resolve_weights(configured: WeightFiles, overrides: WeightFiles = WeightFiles()) -> TrainingFiles:
    """`init` (flag or config) when given, else the three pretrained files (flag, config `weights:` or
    environment; MissingWeightsError naming the flag)."""
    init = overrides.init or configured.init
    if init is not None:
        return TrainingFiles(init=_existing(init, "--init", "initial weights"))
    paths = {name: spec.resolve(getattr(overrides, name), getattr(configured, name), config_key=name)
             for name, spec in SPECS.items()}
    return TrainingFiles(**{name: _existing(path, SPECS[name].flag, SPECS[name].description.split(" (")[0])
                            for name, path in paths.items()})


def initial_model(config: DVAConfig, files: TrainingFiles) -> TrainableDVA:
    """The model training starts from: `init`'s weights (its EMA set), or a random UNet and linear with the
    three pretrained nets."""
    model = TrainableDVA(config)
    if files.init is not None:
        _, start = load_model(files.init, weights="ema")
        load_into(model, start.state_dict(), strict=True, source=files.init)
        log.info("DVA started from %s", files.init)
    else:
        load_pretrained_encoder(model, idnet=files.idnet, lndnet=files.lndnet, bgnet=files.bgnet)
    return model


def identity_net(configured: WeightFiles, overrides: WeightFiles = WeightFiles()) -> IdentityNet:
    """The frozen ArcFace of `checkpoint` or `init` (a DVA model), else of the `idnet` file: it is never
    trained, so every source gives the same identities."""
    model_file = overrides.checkpoint or overrides.init or configured.checkpoint or configured.init
    if model_file is not None:
        _, model = load_model(_existing(model_file, "--checkpoint", "DVA checkpoint"))
        return model.encoder.idnet
    path = _existing(IDNET.resolve(overrides.idnet, configured.idnet, config_key="idnet"), "--idnet",
                     "ArcFace weights")
    net = IdentityNet()
    state = state_dict_from(load_checkpoint(path), path=path)
    for key, value in net.backbone.state_dict().items():     # old files lack the BatchNorm counters
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, value)
    load_into(net.backbone, state, strict=True, source=path)
    return net.eval()


def export_model(models: Mapping[str, nn.Module], config: DVAConfig, folder: str | os.PathLike) -> Path:
    return save_converted(folder, config, models["dva"].state_dict(), metadata={"source": "faceanim train dva"})


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ------------------------------------------------------------------------------ identity statistics

@dataclass(frozen=True)
class StatsResult:
    """`step`: the number of frames whose identities were computed; `path`: the latent.pkl written."""

    step: int
    path: Path


def frame_batches(videos: Sequence, batch_size: int) -> Iterator[torch.Tensor]:
    """Every frame of every video, in order, as (≤ batch_size, 3, 256, 256) batches in [-1, 1]; frame
    folders are read a batch at a time, video files decoded once from start to end."""
    from ...media import VideoReader

    pending: list[torch.Tensor] = []
    for video in videos:
        if isinstance(video, FrameFolder):
            frames = (frame for start in range(0, video.num_frames(), batch_size)
                      for frame in video.read(range(start, min(start + batch_size, video.num_frames()))))
        else:
            frames = iter(VideoReader(video.path))
        for frame in frames:
            pending.append(frame_to_tensor(frame))
            if len(pending) == batch_size:
                yield torch.stack(pending)
                pending = []
    if pending:
        yield torch.stack(pending)


@torch.no_grad()
def compute_identities(net: IdentityNet, batches: Iterator[torch.Tensor], *, total: int | None = None,
                       device: torch.device | None = None, desc: str = "identities") -> torch.Tensor:
    """(N, 512) ArcFace identities of every frame the batches hold (float32, on the CPU)."""
    device = device or _device()
    net = net.to(device).eval()
    rows = [net(batch.to(device)).float().cpu() for batch in progress(batches, total=total, desc=desc,
                                                                      unit="batch")]
    return torch.cat(rows) if rows else torch.zeros(0, ID_DIM)


def write_identity_stats(data: str | os.PathLike, output: str | os.PathLike, weights: WeightFiles,
                         overrides: WeightFiles, batch_size: int) -> StatsResult:
    """`OUTPUT/latent.pkl` from the identity of every frame of every split of `data`."""
    videos = all_videos(data)
    net = identity_net(weights, overrides)
    total_frames = sum(v.num_frames() for v in videos)
    identities = compute_identities(net, frame_batches(videos, batch_size),
                                    total=-(-total_frames // batch_size))
    path = save_identity_stats(Path(output) / STATS_FILE, identities)
    plural = "s" if len(videos) != 1 else ""
    print(f"identity statistics of {identities.shape[0]} frames ({len(videos)} video{plural}): {path}")
    return StatsResult(int(identities.shape[0]), path)


# ------------------------------------------------------------------------------ attribute classifier

@dataclass(frozen=True)
class LabelledImages:
    """Image paths and their (N, 40) 0/1 labels in `ATTRIBUTES` order."""

    paths: list[Path]
    labels: torch.Tensor


def find_label_file(data: Path, name: str | None) -> Path:
    if name is not None:
        path = data / name if not Path(name).is_absolute() else Path(name)
        if not path.is_file():
            raise InputError(path, "label file not found (classifier: labels)")
        return path
    found = [data / n for n in LABEL_FILES if (data / n).is_file()] + sorted(data.glob("*.csv"))
    if not found:
        raise InputError(data, f"has no label file ({', '.join(LABEL_FILES)} or a .csv); set classifier: labels")
    return found[0]


def read_labels(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(file names, attribute names, values) of the official CelebAMask-HQ-attribute-anno.txt (count, names,
    then `file v1 .. v40`) or a CSV with the header `filename,attr1,...`."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if path.suffix.lower() == ".csv":
        rows = [[cell.strip() for cell in line.split(",")] for line in lines]
        header, rows = rows[0][1:], rows[1:]
    else:
        if len(lines) < 2 or not lines[0].strip().isdigit():
            raise InputError(path, "is not a CelebAMask-HQ attribute file (line 1: the image count)")
        header, rows = lines[1].split(), [line.split() for line in lines[2:]]
    bad = [row[0] for row in rows if len(row) != len(header) + 1]
    if bad or not rows:
        raise InputError(path, f"rows must hold a file name and {len(header)} values" + (f" (see {bad[0]})" if bad
                                                                                          else ": none found"))
    try:
        values = np.array([[float(v) for v in row[1:]] for row in rows], dtype=np.float32)
    except ValueError as err:
        raise InputError(path, f"holds a value that is not a number ({err})") from None
    return [row[0] for row in rows], header, values


def labelled_images(data: str | os.PathLike, config: ClassifierTrainConfig) -> LabelledImages:
    """The labelled faces of `data`: labels > 0 are positives (the official `labels > 0`), columns taken by
    name in the classifier's order."""
    root = Path(data)
    if not root.is_dir():
        raise InputError(root, "dataset folder not found" if not root.exists() else "is not a folder")
    label_file = find_label_file(root, config.labels)
    names, header, values = read_labels(label_file)
    missing = [a for a in ATTRIBUTES if a not in header]
    if missing:
        raise InputError(label_file, f"lacks the attributes {', '.join(missing)}")
    columns = [header.index(a) for a in ATTRIBUTES]
    folder = Path(config.images) if config.images else label_file.parent
    if not config.images and not (folder / names[0]).is_file() and (folder / "CelebA-HQ-img").is_dir():
        folder = folder / "CelebA-HQ-img"
    paths = [folder / name for name in names]
    absent = [p for p in paths if not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES]
    if absent:
        raise InputError(absent[0], f"labelled image not found ({len(absent)} of {len(paths)} missing)")
    return LabelledImages(paths, torch.from_numpy((values[:, columns] > 0).astype(np.float32)))


def image_batches(paths: Sequence[Path], batch_size: int, flip: bool) -> Iterator[torch.Tensor]:
    """The images (mirrored when `flip`) resized to 256 px, in [-1, 1], in batches."""
    for start in range(0, len(paths), batch_size):
        yield torch.stack([frame_to_tensor(read_image(p), flip) for p in paths[start:start + batch_size]])


@dataclass
class ClassifierResult:
    """`step`: classifier updates; `path`: the checkpoint; `history`: (step, BCE of the batch) every 100
    steps and at the end; `loss_start`/`loss_end`: the BCE over all the cached features before and after."""

    step: int
    path: Path
    loss_start: float
    loss_end: float
    history: list[tuple[int, float]]


def train_classifier(config: ClassifierTrainConfig, data: str | os.PathLike, output: str | os.PathLike, *,
                     weights: WeightFiles = WeightFiles(), identity_stats_file: str | None = None,
                     max_steps: int | None = None) -> tuple[ClassifierResult, None]:
    """The official ClsModel training on the cached identities of `data`; writes OUTPUT/last.ckpt."""
    images = labelled_images(data, config)
    net = identity_net(config.weights, weights)
    batches = -(-len(images.paths) // config.identity_batch)
    views = [compute_identities(net, image_batches(images.paths, config.identity_batch, flip), total=batches,
                                desc="identities" + (" (mirrored)" if flip else ""))
             for flip in ((False, True) if config.flip else (False,))]
    if identity_stats_file is not None:
        stats = load_identity_stats(identity_stats_file)
    else:
        if views[0].shape[0] < 2:
            raise InputError(data, "needs at least 2 labelled images for identity statistics (or pass a latent.pkl)")
        stats = IdentityStats(views[0].mean(0), views[0].std(0))
    features = torch.stack([stats.normalize(v) for v in views])      # (views, N, 512)
    steps = max_steps or config.num_steps
    state, result_log = fit_classifier(features, images.labels, config, steps)
    state.update({"conds_mean": stats.mean[None].clone(), "conds_std": stats.std[None].clone()})
    path = Path(output) / CLASSIFIER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        torch.save({"state_dict": state, "global_step": steps}, temporary)
    print(f"attribute classifier ({steps} steps, BCE {result_log[0]:.4f} -> {result_log[1]:.4f}): {path}")
    return ClassifierResult(steps, path, result_log[0], result_log[1], result_log[2]), None


def fit_classifier(features: torch.Tensor, labels: torch.Tensor, config: ClassifierTrainConfig, steps: int
                   ) -> tuple[dict[str, torch.Tensor], tuple[float, float, list[tuple[int, float]]]]:
    """Train Linear(512, A) on `features` (views, N, 512: each sample's view drawn at random, the official
    flip) for `steps` batches; returns the state dict (classifier.*, ema_classifier.*) and
    (BCE before, BCE after, history)."""
    generator = torch.Generator().manual_seed(config.seed)
    torch_state = torch.random.get_rng_state()
    torch.manual_seed(config.seed)                         # the initial weights, without touching the caller's RNG
    classifier = nn.Linear(features.shape[-1], labels.shape[1])
    torch.random.set_rng_state(torch_state)
    ema = nn.Linear(features.shape[-1], labels.shape[1]).requires_grad_(False)
    ema.load_state_dict(classifier.state_dict())
    optimizer = torch.optim.Adam(classifier.parameters(), lr=config.learning_rate)
    views, count = features.shape[:2]
    batch = min(config.batch_size, count)

    def full_loss() -> float:
        with torch.no_grad():
            return float(F.binary_cross_entropy_with_logits(classifier(features[0]), labels))

    start, history, order, position = full_loss(), [], torch.randperm(count, generator=generator), 0
    for step in range(1, steps + 1):
        if position + batch > count:     # a new epoch (drop_last)
            order, position = torch.randperm(count, generator=generator), 0
        index = order[position:position + batch]
        position += batch
        view = torch.randint(views, (batch,), generator=generator)
        loss = F.binary_cross_entropy_with_logits(classifier(features[view, index]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for average, value in zip(ema.parameters(), classifier.parameters()):
                average.lerp_(value, 1 - config.ema_decay)
        if step % 100 == 0 or step == steps:
            history.append((step, float(loss.detach())))
    state = {f"classifier.{k}": v.detach().clone() for k, v in classifier.state_dict().items()}
    state.update({f"ema_classifier.{k}": v.detach().clone() for k, v in ema.state_dict().items()})
    return state, (start, full_loss(), history)


# ------------------------------------------------------------------------------------------ a run

def train_dva(config: DVATrainConfig, data: str | os.PathLike, output: str | os.PathLike, *,
              weights: WeightFiles = WeightFiles(), resume: str | None = None,
              max_steps: int | None = None) -> tuple[FitResult, Path | None]:
    """Train (or resume) the autoencoder on `data` into `output`. Returns the fit result and the exported
    folder (None on the other processes)."""
    files = resolve_weights(config.weights, weights)
    dataset = VideoFramesDataset(training_videos(data), config.frames_per_video, config.flip, config.num_repeats)
    trainer, result = fit_in_epochs(lambda _: DVATraining(config, files), dataset, len(dataset), config,
                                    record={"method": "dva", "stage": "dva", "videos": len(dataset.videos)},
                                    output=output, max_steps=max_steps or config.num_steps, resume=resume)
    return result, export_on_main(trainer, lambda models: export_model(models, config.model,
                                                                       Path(output) / EXPORT_FOLDER))


SETTINGS = ("identity_stats", "identity_stats_file", "stats_batch_size")


def train(stage: str, config: str | os.PathLike, data: str | os.PathLike, output: str | os.PathLike,
          settings: dict, *, resume: str | None = None, max_steps: int | None = None):
    """`faceanim train dva` (the registry's entry): stage `dva` (or, with `identity_stats`, the identity
    statistics of the data) or `classifier`."""
    settings = {k: v for k, v in settings.items() if v is not None}
    extra = {k: settings.pop(k) for k in SETTINGS if k in settings}
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(WeightFiles)})
    if unknown:
        raise InputError(None, f"dva training: unknown settings {', '.join(unknown)}")
    weights = WeightFiles(**settings)
    if stage == "classifier":
        return train_classifier(load_classifier_config(config), data, output, weights=weights,
                                identity_stats_file=extra.get("identity_stats_file"), max_steps=max_steps)
    if stage != "dva":
        raise InputError(None, f"unknown dva training stage {stage!r} (dva or classifier)")
    train_config = load_train_config(config)
    if extra.get("identity_stats"):
        if not is_main_process():
            return StatsResult(0, Path(output) / STATS_FILE), None
        batch = int(extra.get("stats_batch_size") or 64)
        return write_identity_stats(data, output, train_config.weights, weights, batch), None
    return train_dva(train_config, data, output, weights=weights, resume=resume, max_steps=max_steps)
