"""Training data: (source, driving) frame pairs from video datasets, with seeded sampling.

Two layouts are read:
- the one `faceanim preprocess` writes: `ROOT/<clip_id>/frames/000000.png ...` with `meta.json`
  (folders without `meta.json` are unfinished and skipped);
- the official FOMM/DaGAN one: `ROOT/{train,test}/<video>`, a video being a folder of PNG/JPEG frames
  or a video file (read with `faceanim.media.VideoReader`, decoding only up to the last frame needed).

An item is two frames of one video, drawn at random (sorted, with replacement, as the official
`FramesDataset`), augmented, resized to `frame_size` and returned as float tensors (3, H, W) in [0, 1].
With `id_sampling`, items are identities (`name.split('#')[0]`, VoxCeleb naming) and a random video
of the identity is used. `num_repeats` passes over the data per epoch (the official DatasetRepeater).

Items are indexed with `(index, seed)` keys from `SeededSampler`: all randomness of an item comes from
its seed, and the keys of an epoch are a function of (seed, epoch) alone, so the data a run sees does
not depend on worker processes or restarts (exact resume).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..errors import InputError
from ..media import VideoReader, read_image
from ..media.image import resize_square
from ..tasks.preprocess import VIDEO_SUFFIXES
from .augment import Augmentation

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
SampleKey = tuple[int, int]  # (item index, seed)


class SeededSampler(Sampler[SampleKey]):
    """Yields `(index, seed)` for every item once per epoch, in an order (shuffled or not) and with
    per-item seeds that depend only on (seed, epoch). Call `set_epoch` before each epoch."""

    def __init__(self, num_items: int, seed: int = 0, shuffle: bool = True):
        self.num_items = int(num_items)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_items

    def keys(self, epoch: int) -> list[SampleKey]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.num_items) if self.shuffle else np.arange(self.num_items)
        seeds = rng.integers(0, 2 ** 63 - 1, size=self.num_items)
        return list(zip(order.tolist(), seeds.tolist()))

    def __iter__(self) -> Iterator[SampleKey]:
        return iter(self.keys(self.epoch))


class FrameFolder:
    """A video stored as a folder of image frames (sorted by name)."""

    def __init__(self, path: Path, name: str | None = None):
        self.path = Path(path)
        self.name = name or self.path.name
        self._files: list[Path] | None = None

    def _frame_files(self) -> list[Path]:
        if self._files is None:
            self._files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._files:
                raise InputError(self.path, "no PNG or JPEG frames in this video folder")
        return self._files

    def num_frames(self) -> int:
        return len(self._frame_files())

    def read(self, indices: Sequence[int]) -> list[np.ndarray]:
        files = self._frame_files()
        return [read_image(files[i]) for i in indices]


class VideoFile:
    """A video file; frames are decoded from the start up to the last one asked for."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.name = self.path.name
        self._count: int | None = None

    def num_frames(self) -> int:
        """From the header (exact for the files preprocessing and most encoders write)."""
        if self._count is None:
            with VideoReader(self.path) as reader:
                self._count = max(1, reader.frame_count)
        return self._count

    def read(self, indices: Sequence[int]) -> list[np.ndarray]:
        frames, decoded = self._decode(indices)
        if len(frames) < len(set(indices)):
            # The header promised more frames than the file has: map the draw onto the real length.
            scaled = [i * decoded // self.num_frames() for i in indices]
            self._count = decoded
            frames, _ = self._decode(scaled)
            indices = scaled
        return [frames[i].copy() for i in indices]

    def _decode(self, indices: Sequence[int]) -> tuple[dict[int, np.ndarray], int]:
        wanted, frames, decoded = set(indices), {}, 0
        with VideoReader(self.path) as reader:
            for index, frame in enumerate(reader):
                decoded = index + 1
                if index in wanted:
                    frames[index] = frame
                    if len(frames) == len(wanted):
                        break
        return frames, decoded


FrameSource = FrameFolder | VideoFile


@dataclass(frozen=True)
class PairOptions:
    """frame_size: output side in pixels (None: as stored); num_repeats: passes over the data per epoch."""

    frame_size: int | None = 256
    id_sampling: bool = False
    num_repeats: int = 1
    augmentation: Augmentation = Augmentation()

    def __post_init__(self):
        if self.frame_size is not None and self.frame_size < 8:
            raise InputError(None, f"frame_size must be at least 8 pixels, not {self.frame_size}")
        if self.num_repeats < 1:
            raise InputError(None, f"num_repeats must be >= 1, not {self.num_repeats}")


class FramePairDataset(Dataset):
    """Items are dicts: `source`, `driving` (float32 (3, H, W) in [0, 1]) and `name` (the video's name)."""

    def __init__(self, videos: Sequence[FrameSource], options: PairOptions = PairOptions()):
        if not videos:
            raise InputError(None, "the dataset has no videos")
        self.videos = list(videos)
        self.options = options
        names = sorted({_identity(v.name) for v in self.videos}) if options.id_sampling else None
        if names is None:
            self.groups = [[video] for video in self.videos]
        else:
            by_name = {name: [] for name in names}
            for video in self.videos:
                by_name[_identity(video.name)].append(video)
            self.groups = list(by_name.values())

    def __len__(self) -> int:
        return len(self.groups) * self.options.num_repeats

    def __getitem__(self, key: int | SampleKey) -> dict:
        index, seed = key if isinstance(key, tuple) else (key, None)
        if seed is None:  # plain index: a fresh draw (per-worker torch seeding applies)
            seed = int(torch.randint(0, 2 ** 62, ()).item())
        rng = np.random.default_rng(seed)
        group = self.groups[index % len(self.groups)]
        video = group[rng.integers(len(group))]
        frame_indices = np.sort(rng.integers(video.num_frames(), size=2))
        frames = [resize_square(frame, self.options.frame_size).astype(np.float32) / 255.0
                  for frame in video.read(frame_indices.tolist())]
        frames = self.options.augmentation(frames, rng)
        return {"source": _chw(frames[0]), "driving": _chw(frames[1]), "name": video.name}

    @classmethod
    def from_preprocessed(cls, root: str | os.PathLike, options: PairOptions = PairOptions()) -> "FramePairDataset":
        """Clips written by `faceanim preprocess` under `root`."""
        root = _existing_folder(root)
        clips = [FrameFolder(p / "frames", name=p.name) for p in sorted(root.iterdir())
                 if not p.name.startswith(".") and (p / "meta.json").is_file() and (p / "frames").is_dir()]
        if not clips:
            raise InputError(root, "has no finished clips (folders with frames/ and meta.json, "
                                   "as `faceanim preprocess` writes)")
        return cls(clips, options)

    @classmethod
    def from_official(cls, root: str | os.PathLike, split: str = "train",
                      options: PairOptions = PairOptions()) -> "FramePairDataset":
        """The official layout `root/<split>/<video>` (frame folders or video files)."""
        folder = _existing_folder(root) / split
        if not folder.is_dir():
            raise InputError(root, f"has no {split}/ folder (expected ROOT/{split}/<video>)")
        videos: list[FrameSource] = []
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                videos.append(FrameFolder(entry))
            elif entry.suffix.lower() in VIDEO_SUFFIXES:
                videos.append(VideoFile(entry))
        if not videos:
            raise InputError(folder, "has no videos (frame folders or video files)")
        return cls(videos, options)


def open_frame_pairs(root: str | os.PathLike, split: str = "train",
                     options: PairOptions = PairOptions()) -> FramePairDataset:
    """A dataset of either layout: `root/<split>/` means the official one, else preprocessed clips."""
    folder = _existing_folder(root)
    if (folder / split).is_dir():
        return FramePairDataset.from_official(folder, split, options)
    return FramePairDataset.from_preprocessed(folder, options)


def _identity(name: str) -> str:
    return name.split("#")[0]


def _existing_folder(root: str | os.PathLike) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "dataset folder not found" if not root.exists() else "is not a folder")
    return root


def _chw(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))
