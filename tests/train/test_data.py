"""Frame-pair datasets on both layouts, seeded sampling, frame reading, augmentation, bad inputs."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from faceanim.errors import InputError
from faceanim.media import VideoWriter, write_image
from faceanim.train import (NO_AUGMENTATION, Augmentation, ColorJitter, FramePairDataset, PairOptions, SeededSampler,
                            open_frame_pairs)
from faceanim.train.augment import adjust_contrast, adjust_hue, adjust_saturation
from faceanim.train.data import VideoFile
from faceanim.train.trainer import worker_context

SIZE = 64
FOLDER_FRAMES, FILE_FRAMES = 6, 12
PLAIN = PairOptions(frame_size=None, augmentation=NO_AUGMENTATION)


def clip_frames(astronaut, count: int) -> list[np.ndarray]:
    """Frame k: the astronaut's face, shifted 3k pixels to the right (each frame is recognisable)."""
    face = cv2.resize(astronaut[20:220, 140:340], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return [np.roll(face, 3 * k, axis=1) for k in range(count)]


@pytest.fixture(scope="module")
def official_root(tmp_path_factory, astronaut):
    root = tmp_path_factory.mktemp("official")
    for video in ("id1#a", "id1#b", "id2#a"):
        folder = root / "train" / video
        folder.mkdir(parents=True)
        for k, frame in enumerate(clip_frames(astronaut, FOLDER_FRAMES)):
            write_image(folder / f"{k:06d}.png", frame)
    with VideoWriter(root / "train" / "id3#v.mp4", 25, crf=10) as writer:
        for frame in clip_frames(astronaut, FILE_FRAMES):
            writer.write(frame)
    (root / "test" / "id9#t").mkdir(parents=True)
    write_image(root / "test" / "id9#t" / "000000.png", clip_frames(astronaut, 1)[0])
    return root


def which_frame(image: torch.Tensor, frames: list[np.ndarray]) -> tuple[int, float]:
    """Index of the frame `image` shows, and the mean squared difference to it."""
    pixels = image.permute(1, 2, 0).numpy()
    errors = [float(((pixels - f / 255.0) ** 2).mean()) for f in frames]
    return int(np.argmin(errors)), min(errors)


def test_official_layout_items(official_root, astronaut):
    dataset = FramePairDataset.from_official(official_root, options=PLAIN)
    assert len(dataset) == 4 and sorted(v.name for v in dataset.videos) == ["id1#a", "id1#b", "id2#a", "id3#v.mp4"]
    frames = clip_frames(astronaut, FOLDER_FRAMES)
    for seed in range(8):
        item = dataset[(0, seed)]
        assert item["name"] == "id1#a" and item["source"].dtype == torch.float32
        assert item["source"].shape == item["driving"].shape == (3, SIZE, SIZE)
        (source, source_error), (driving, driving_error) = which_frame(item["source"], frames), \
            which_frame(item["driving"], frames)
        assert max(source_error, driving_error) < 1e-12   # PNG frames arrive exactly
        assert source <= driving                      # drawn sorted, as the official dataset does


def test_video_files_decode_only_what_is_needed(official_root, astronaut):
    dataset = FramePairDataset.from_official(official_root, options=PLAIN)
    frames = clip_frames(astronaut, FILE_FRAMES)
    for seed in range(4):
        item = dataset[(3, seed)]
        assert item["name"] == "id3#v.mp4"
        assert all(which_frame(item[k], frames)[1] < 2e-3 for k in ("source", "driving"))
    video = VideoFile(official_root / "train" / "id3#v.mp4")
    assert video.num_frames() == FILE_FRAMES
    video._count = 100  # a header that overstates the length: the draw is mapped onto the real frames
    got = video.read([50, 99])
    assert len(got) == 2 and video.num_frames() == FILE_FRAMES
    assert [which_frame(torch.from_numpy(g / 255.0).permute(2, 0, 1).float(), frames)[0] for g in got] == [6, 11]


def test_a_key_always_gives_the_same_item_and_seeds_vary_it(official_root):
    dataset = FramePairDataset.from_official(official_root, options=PairOptions(frame_size=32))
    first, again = dataset[(1, 123)], dataset[(1, 123)]
    assert torch.equal(first["source"], again["source"]) and torch.equal(first["driving"], again["driving"])
    variants = {dataset[(1, seed)]["source"].sum().item() for seed in range(12)}
    assert len(variants) >= 4
    assert dataset[1]["source"].shape == (3, 32, 32)  # a plain index draws fresh randomness


def test_id_sampling_groups_videos_of_one_identity_and_repeats(official_root):
    dataset = FramePairDataset.from_official(official_root, options=PairOptions(frame_size=32, id_sampling=True,
                                                                               num_repeats=3))
    assert len(dataset) == 3 * 3 and [len(g) for g in dataset.groups] == [2, 1, 1]
    assert {dataset[(0, seed)]["name"] for seed in range(16)} == {"id1#a", "id1#b"}
    assert dataset[(4, 0)]["name"] == dataset[(1, 0)]["name"] == "id2#a"  # repeats wrap around


def test_test_split_and_frame_resizing(official_root):
    dataset = open_frame_pairs(official_root, split="test", options=PairOptions(frame_size=48))
    item = dataset[(0, 0)]
    assert item["name"] == "id9#t" and item["source"].shape == (3, 48, 48)
    assert torch.equal(item["source"], item["driving"])  # one frame: both sides show it, augmented alike


def make_preprocessed(root, astronaut):
    for clip in ("speaker1", "speaker2#b"):
        (root / clip / "frames").mkdir(parents=True)
        for k, frame in enumerate(clip_frames(astronaut, 3)):
            write_image(root / clip / "frames" / f"{k:06d}.png", frame)
        (root / clip / "meta.json").write_text(json.dumps({"frames": 3}))
    (root / "unfinished" / "frames").mkdir(parents=True)          # no meta.json yet
    (root / ".speaker3.ab12.tmp" / "frames").mkdir(parents=True)   # a killed preprocess run's temporary


def test_preprocessed_layout(tmp_path, astronaut):
    make_preprocessed(tmp_path, astronaut)
    dataset = open_frame_pairs(tmp_path, options=PairOptions(frame_size=32))
    assert sorted(v.name for v in dataset.videos) == ["speaker1", "speaker2#b"]
    item = dataset[(1, 4)]
    assert item["name"] == "speaker2#b" and item["source"].shape == (3, 32, 32)
    assert 0 <= item["source"].min() and item["source"].max() <= 1


def test_dataset_from_faceanim_preprocess(tmp_path, face_clip):
    from faceanim.tasks.preprocess import PreprocessOptions, preprocess

    assert preprocess([str(face_clip)], tmp_path / "ds", PreprocessOptions(size=64)) == 0
    dataset = open_frame_pairs(tmp_path / "ds", options=PairOptions(frame_size=64))
    assert [v.name for v in dataset.videos] == [face_clip.stem] and dataset.videos[0].num_frames() == 40
    item = dataset[(0, 1)]
    assert item["source"].shape == (3, 64, 64) and 0.05 < item["source"].mean() < 0.95


def test_bad_dataset_paths_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="dataset folder not found"):
        open_frame_pairs(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(InputError, match="is not a folder"):
        open_frame_pairs(tmp_path / "file.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no finished clips"):
        open_frame_pairs(tmp_path / "empty")
    (tmp_path / "official" / "train").mkdir(parents=True)
    with pytest.raises(InputError, match="has no videos"):
        open_frame_pairs(tmp_path / "official")
    with pytest.raises(InputError, match="has no test/ folder"):
        FramePairDataset.from_official(tmp_path / "official", split="test")
    (tmp_path / "official" / "train" / "blank").mkdir()
    dataset = open_frame_pairs(tmp_path / "official")
    with pytest.raises(InputError, match="blank: no PNG or JPEG frames"):
        dataset[(0, 0)]
    (tmp_path / "official" / "train" / "blank" / "000000.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="000000.png"):
        open_frame_pairs(tmp_path / "official")[(0, 0)]
    with pytest.raises(InputError, match="num_repeats"):
        PairOptions(num_repeats=0)


def test_seeded_sampler_order_depends_on_seed_and_epoch_only():
    sampler = SeededSampler(10, seed=3)
    keys = list(sampler)
    assert sorted(index for index, _ in keys) == list(range(10)) and len(sampler) == 10
    assert keys == SeededSampler(10, seed=3).keys(0)
    sampler.set_epoch(1)
    assert list(sampler) != keys and sorted(i for i, _ in sampler) == list(range(10))
    assert SeededSampler(10, seed=4).keys(0) != keys
    assert len({seed for _, seed in keys}) == 10
    assert [i for i, _ in SeededSampler(5, shuffle=False).keys(2)] == [0, 1, 2, 3, 4]


def test_worker_processes_do_not_change_the_data(official_root):
    dataset = FramePairDataset.from_official(official_root, options=PairOptions(frame_size=32))

    def batches(workers):
        loader = DataLoader(dataset, batch_size=2, sampler=SeededSampler(len(dataset), 5), num_workers=workers,
                            multiprocessing_context=worker_context(workers))
        return [batch["driving"] for batch in loader]

    assert all(torch.equal(a, b) for a, b in zip(batches(0), batches(2)))


def test_flips_happen_about_half_the_time(official_root, astronaut):
    frames = clip_frames(astronaut, FOLDER_FRAMES)
    flipped = [np.ascontiguousarray(f[:, ::-1]) for f in frames]
    mirror_only = Augmentation(horizontal_flip=True, time_flip=False, jitter=None)
    options = PairOptions(frame_size=None, augmentation=mirror_only)
    dataset = FramePairDataset.from_official(official_root, options=options)
    mirrored = 0
    for seed in range(40):
        item = dataset[(0, seed)]
        index, error = which_frame(item["source"], frames + flipped)
        assert error < 1e-12
        mirrored += index >= len(frames)
    assert 10 <= mirrored <= 30
    reverse_only = Augmentation(horizontal_flip=False, time_flip=True, jitter=None)
    options = PairOptions(frame_size=None, augmentation=reverse_only)
    dataset = FramePairDataset.from_official(official_root, options=options)
    order = [which_frame(dataset[(0, s)]["source"], frames)[0] - which_frame(dataset[(0, s)]["driving"], frames)[0]
             for s in range(40)]
    assert sum(d > 0 for d in order) >= 8 and sum(d < 0 for d in order) >= 8  # reversed clips occur


def test_colour_jitter_definitions():
    rng = np.random.default_rng(0)
    image = rng.random((8, 8, 3), dtype=np.float32)
    grey = adjust_saturation(image, 0.0)
    assert np.allclose(grey[..., 0], grey[..., 1]) and np.allclose(grey[..., 1], grey[..., 2])
    assert np.allclose(adjust_contrast(image, 0.0), (image @ [0.299, 0.587, 0.114]).mean(), atol=1e-6)
    assert np.allclose(adjust_hue(image, 0.0), image, atol=1e-5)
    red = np.zeros((2, 2, 3), np.float32)
    red[..., 0] = 1
    assert np.allclose(adjust_hue(red, 1 / 3), [0, 1, 0], atol=1e-5)  # +120 degrees: red -> green
    jitter = ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1)
    out = jitter([image, image.copy()], np.random.default_rng(3))
    assert np.array_equal(out[0], out[1]) and out[0].dtype == np.float32   # one draw for the whole clip
    assert 0 <= out[0].min() and out[0].max() <= 1 and not np.allclose(out[0], image)
    brighter = ColorJitter(brightness=0.1, contrast=0, saturation=0, hue=0)
    for seed in range(10):
        ratio = brighter([np.full((2, 2, 3), 0.5, np.float32)], np.random.default_rng(seed))[0] / 0.5
        assert 0.9 <= ratio.min() and ratio.max() <= 1.1
