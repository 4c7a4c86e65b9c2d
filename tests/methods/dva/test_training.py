"""DVA training: the configs, the official objective against its formula written out here, the frozen
encoder nets, the data items, the identity statistics of every frame, the attribute classifier and its
official checkpoint layout, exact resume, and a tiny run on a real face whose held-out loss falls.

The frozen nets are random-initialised networks saved by the test in the three released file formats; the
videos are crops of skimage's astronaut with small shifts in the layout `faceanim preprocess` writes."""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from faceanim.errors import InputError, MissingWeightsError
from faceanim.media import write_image
from faceanim.methods.dva.config import tiny, vox256
from faceanim.methods.dva.encoder import IdentityNet, LandmarkNet, ParserNet
from faceanim.methods.dva.model import BeatGANsAutoencUNet
from faceanim.methods.dva.sampling import base_schedule
from faceanim.methods.dva.training import (ATTRIBUTES, ClassifierTrainConfig, DVATraining, TrainableDVA,
                                           TrainingFiles, VideoFramesDataset, WeightFiles, all_videos, dva_losses,
                                           initial_model, load_classifier_config, load_train_config,
                                           packaged_configs, read_labels, resolve_weights, train, train_classifier,
                                           train_dva, training_videos)
from faceanim.methods.dva.weights import load_classifier, load_identity_stats, load_model
from faceanim.train import state

TINY = load_train_config("tiny.yaml")
FROZEN = ("idnet", "lndnet", "bgnet")


def tiny_config(**changes) -> "object":
    trainer = {**TINY.trainer, **changes.pop("trainer", {})}
    return dataclasses.replace(TINY, trainer=trainer, **changes)


@pytest.fixture(scope="module")
def frozen_files(tmp_path_factory) -> dict[str, str]:
    """Random IR-SE50, MobileNet-GDConv and BiSeNet weights in the released formats."""
    folder = tmp_path_factory.mktemp("dva_weights")
    torch.manual_seed(1)
    paths = {name: folder / file for name, file in
             (("idnet", "model_ir_se50.pth"), ("lndnet", "mobilenet.pth.tar"), ("bgnet", "79999_iter.pth"))}
    torch.save(IdentityNet().backbone.state_dict(), paths["idnet"])
    torch.save({"state_dict": {"module." + k: v for k, v in LandmarkNet().backbone.state_dict().items()}},
               paths["lndnet"])
    torch.save(ParserNet().backbone.state_dict(), paths["bgnet"])
    return {name: str(path) for name, path in paths.items()}


def _astronaut_frames(count: int, start: int = 0, size: int = 128) -> list[np.ndarray]:
    from skimage.data import astronaut

    image = astronaut()
    return [np.ascontiguousarray(image[10 + 3 * i:10 + 3 * i + 300:2, 110 + 2 * i:110 + 2 * i + 300:2][:size, :size])
            for i in range(start, start + count)]


def write_clips(root: Path, clips: dict[str, list[np.ndarray]]) -> Path:
    """Clips in the layout `faceanim preprocess` writes (frames/000000.png, meta.json)."""
    for name, frames in clips.items():
        for index, frame in enumerate(frames):
            write_image(root / name / "frames" / f"{index:06d}.png", frame)
        (root / name / "meta.json").write_text(json.dumps({"fps": 25, "frames": len(frames),
                                                           "crop_size": frames[0].shape[0]}))
    return root


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return write_clips(tmp_path_factory.mktemp("dva_clips"), {"a": _astronaut_frames(5), "b": _astronaut_frames(4, 6)})


# ------------------------------------------------------------------------------------ configs

def test_packaged_configs_are_the_release_setup_a_tiny_one_and_the_classifier():
    assert packaged_configs() == ["classifier.yaml", "tiny.yaml", "vox256.yaml"]
    release = load_train_config("vox256")
    assert release.model == vox256() and (release.learning_rate, release.num_steps) == (1e-4, 1_000_000)
    assert release.batch_size * release.frames_per_video == 4 and release.flip
    assert {k: release.trainer[k] for k in ("mixed_precision", "max_grad_norm", "ema_decay", "seed")} == \
        {"mixed_precision": "fp16", "max_grad_norm": 1.0, "ema_decay": 0.9999, "seed": 0}
    assert TINY.model == tiny()
    cls = load_classifier_config("classifier")
    assert (cls.learning_rate, cls.batch_size, cls.num_samples, cls.ema_decay, cls.num_steps) == \
        (1e-3, 32, 300_000, 0.9999, 9375)


@pytest.mark.parametrize("text, problem", [("train: {batch_sise: 4}", "unknown train settings: batch_sise"),
                                           ("model: {preset: huge}", "unknown model preset"),
                                           ("model: {channels: 3}", "unknown model settings: channels"),
                                           ("video: {}", "unknown sections video")])
def test_bad_configs_name_the_file_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=problem) as err:
        load_train_config(path)
    assert "bad.yaml" in str(err.value)


def test_missing_weights_name_their_flag(tmp_path, monkeypatch, frozen_files):
    for name in ("FACEANIM_DVA_IDNET", "FACEANIM_DVA_LNDNET", "FACEANIM_DVA_BGNET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MissingWeightsError, match="--idnet"):
        resolve_weights(WeightFiles())
    with pytest.raises(MissingWeightsError, match="--bgnet"):
        resolve_weights(WeightFiles(lndnet=frozen_files["lndnet"]), WeightFiles(idnet=frozen_files["idnet"]))
    with pytest.raises(InputError, match="--init"):
        resolve_weights(WeightFiles(), WeightFiles(init=str(tmp_path / "none.ckpt")))
    assert resolve_weights(WeightFiles(**frozen_files)) == TrainingFiles(**frozen_files)


# ------------------------------------------------------------------------------------ objective

def _official_losses(model, frames, t, noise1, noise2) -> torch.Tensor:
    """`training_losses` (L1, eps) + `training_step`, written out with the linear betas in float64."""
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)

    def coef(values):
        return values[t].float().reshape(-1, 1, 1, 1)

    x_start = F.interpolate(frames, (64, 64), mode="area")
    enc = model.encoder
    cond = enc.linear(torch.cat([enc.idnet(frames), enc.lndnet(frames)], dim=1))
    mask = F.interpolate(enc.bgnet(frames, for_video=False), (64, 64), mode="area")
    x_t, x_t2 = (coef(abar.sqrt()) * x_start + coef((1 - abar).sqrt()) * n for n in (noise1, noise2))
    out, out2 = (BeatGANsAutoencUNet.forward(model, x, t, cond) for x in (x_t, x_t2))
    mse = (noise1 - out).abs().mean((1, 2, 3)) + (noise2 - out2).abs().mean((1, 2, 3))
    x0, x0_2 = (coef((1 / abar).sqrt()) * x - coef((1 / abar - 1).sqrt()) * e for x, e in ((x_t, out), (x_t2, out2)))
    xT_reg = (x0 * mask - x0_2 * mask).abs().mean((1, 2, 3))
    return mse.mean() + xT_reg.mean()


@pytest.fixture(scope="module")
def tiny_model() -> TrainableDVA:
    torch.manual_seed(0)
    model = TrainableDVA(tiny())
    with torch.no_grad():          # the zero-initialised output convolutions would hide the UNet
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.02)
    return model.eval()


def test_the_loss_is_the_official_formula_and_only_the_unet_and_linear_learn(tiny_model):
    generator = torch.Generator().manual_seed(3)
    frames = torch.rand(2, 3, 256, 256, generator=generator) * 2 - 1
    t = torch.tensor([17, 901])
    noise1, noise2 = (torch.randn(2, 3, 64, 64, generator=generator) for _ in range(2))
    terms = dva_losses(tiny_model, base_schedule(tiny()), frames, t, noise1, noise2)
    with torch.no_grad():
        expected = _official_losses(tiny_model, frames, t, noise1, noise2)
    assert torch.allclose(terms["eps"] + terms["xT_reg"], expected, atol=1e-5, rtol=1e-5)
    assert terms["xT_reg"] > 0 and terms["mask"].shape == (2, 1, 64, 64)
    tiny_model.zero_grad(set_to_none=True)
    (terms["eps"] + terms["xT_reg"]).backward()
    for name in FROZEN:
        assert all(p.grad is None and not p.requires_grad for p in getattr(tiny_model.encoder, name).parameters())
    assert tiny_model.encoder.linear.weight.grad.abs().sum() > 0
    assert tiny_model.out[-1].weight.grad.abs().sum() > 0
    tiny_model.zero_grad(set_to_none=True)


def test_a_step_changes_the_unet_and_linear_but_not_the_frozen_nets(tiny_model):
    """The optimizer holds every parameter but the frozen nets'; in train mode their BatchNorm statistics
    stay as loaded too."""
    model = copy.deepcopy(tiny_model).train()
    method = DVATraining(TINY, TrainingFiles())
    optimizer = method.build_optimizers({"dva": model})["dva"]
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    frozen = tuple(f"encoder.{n}." for n in FROZEN)
    assert {n for n, p in model.named_parameters() if id(p) in held} == \
        {n for n, _ in model.named_parameters() if not n.startswith(frozen)}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(0)
    losses = method.loss({"dva": model}, {"frames": torch.rand(1, 2, 3, 256, 256) * 2 - 1}, {})
    assert set(losses) == {"eps", "xT_reg"}
    sum(losses.values()).backward()
    optimizer.step()
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert {"encoder.linear.weight", "encoder.linear.bias", "out.2.weight"} <= changed
    assert not any(k.startswith(frozen) for k in changed)


# ------------------------------------------------------------------------------------ data

def test_items_are_distinct_frames_of_one_video_each_flipped_on_its_own(clips):
    videos = training_videos(clips)
    assert [v.name for v in videos] == ["a", "b"]
    dataset = VideoFramesDataset(videos, frames_per_video=4)
    item = dataset[(0, 5)]["frames"]
    assert item.shape == (4, 3, 256, 256) and item.min() >= -1 and item.max() <= 1
    assert torch.equal(item, dataset[(0, 5)]["frames"])          # all from the seed
    flat = [f for f in item]
    assert all(not torch.equal(flat[i], flat[j]) for i in range(4) for j in range(i + 1, 4))
    plain = VideoFramesDataset(videos, frames_per_video=4, flip=False)
    frames = [plain[(0, s)]["frames"] for s in range(6)]
    flipped = [dataset[(0, s)]["frames"] for s in range(6)]
    mirrored = sum(torch.equal(f.flip(-1), p) for fs, ps in zip(flipped, frames) for f, p in zip(fs, ps))
    assert 0 < mirrored < 24


# ------------------------------------------------------------------------------------ training

@pytest.mark.slow
def test_a_resumed_run_equals_an_uninterrupted_one_and_exports_the_ema_model(tmp_path, clips, frozen_files):
    """Stop at step 2, resume to 3: weights, optimizer and EMA equal a run of 3 steps; the frozen nets
    are those of the files; the export is the EMA model, loadable."""
    config = tiny_config(batch_size=1, trainer={"checkpoint_every": 2})
    weights = WeightFiles(**frozen_files)
    whole, exported = train_dva(config, clips, tmp_path / "whole", weights=weights, max_steps=3)
    train_dva(config, clips, tmp_path / "split", weights=weights, max_steps=2)
    resumed, _ = train_dva(config, clips, tmp_path / "split", weights=weights, max_steps=3, resume="latest")
    assert resumed.step == whole.step == 3
    for name in ("models/dva.safetensors", "ema/dva.safetensors"):
        a, b = state.load_tensors(whole.checkpoint / name), state.load_tensors(resumed.checkpoint / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    a, b = (state.load_object(c / "optimizers" / "dva.pt") for c in (whole.checkpoint, resumed.checkpoint))
    assert all(torch.equal(a["state"][i][k], b["state"][i][k]) for i in a["state"] for k in a["state"][i])

    _, model = load_model(exported)
    ema = state.load_tensors(whole.checkpoint / "ema" / "dva.safetensors")
    assert all(torch.equal(v, ema[k].to(v.dtype)) for k, v in model.state_dict().items())
    start = initial_model(tiny(), TrainingFiles(**frozen_files)).state_dict()
    trained = state.load_tensors(whole.checkpoint / "models" / "dva.safetensors")
    frozen = [k for k in start if k.startswith(tuple(f"encoder.{n}." for n in FROZEN))]
    assert frozen and all(torch.equal(trained[k], start[k]) for k in frozen)
    assert not torch.equal(trained["encoder.linear.weight"], start["encoder.linear.weight"])
    assert not torch.equal(trained["out.2.weight"], start["out.2.weight"])


# ------------------------------------------------------------------------------------ identity stats

def test_identity_stats_cover_every_frame_of_every_split(tmp_path, clips, frozen_files, capsys):
    """5 frames over two splits in batches of 2: 3 batches, 5 rows (the official file kept the last batch)."""
    official = tmp_path / "vox"
    for split, name, frames in (("train", "v1", _astronaut_frames(2)), ("test", "v2", _astronaut_frames(3, 3))):
        for index, frame in enumerate(frames):       # the official layout: ROOT/<split>/<video>/<frame>.png
            write_image(official / split / name / f"{index:04d}.png", frame)
    result, folder = train("dva", "tiny.yaml", official, tmp_path / "out",
                           {"identity_stats": True, "idnet": frozen_files["idnet"], "stats_batch_size": 2})
    assert folder is None and result.step == 5 and result.path == tmp_path / "out" / "latent.pkl"
    saved = torch.load(result.path, weights_only=True)
    assert saved["conds"].shape == (5, 512)
    stats = load_identity_stats(result.path)
    assert torch.allclose(stats.mean, saved["conds"].mean(0)) and torch.allclose(stats.std, saved["conds"].std(0))
    out = capsys.readouterr().out
    assert "5 frames" in out and str(result.path) in out
    assert [v.num_frames() for v in all_videos(clips)] == [5, 4]     # preprocessed clips: every frame too


# ------------------------------------------------------------------------------------ classifier

def _labelled_folder(root: Path, fmt: str, count: int = 6) -> Path:
    rng = np.random.default_rng(0)
    labels = rng.choice([-1, 1], size=(count, len(ATTRIBUTES)))
    for i, frame in enumerate(_astronaut_frames(count, size=96)):
        write_image(root / f"{i}.jpg", frame)
    if fmt == "txt":
        lines = [str(count), " ".join(ATTRIBUTES)] + [f"{i}.jpg " + " ".join(map(str, row)) for i, row in
                                                      enumerate(labels)]
        (root / "CelebAMask-HQ-attribute-anno.txt").write_text("\n".join(lines) + "\n")
    else:
        order = list(reversed(ATTRIBUTES))           # columns are matched by name
        rows = [",".join(["filename", *order])] + [",".join([f"{i}.jpg", *[str(int(row[ATTRIBUTES.index(a)] > 0))
                                                                           for a in order]])
                                                   for i, row in enumerate(labels)]
        (root / "attrs.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize("fmt, flip", [("txt", True), ("csv", False)])
def test_the_classifier_learns_and_its_checkpoint_has_the_official_layout(tmp_path, frozen_files, fmt, flip):
    data = _labelled_folder(tmp_path / "faces", fmt)
    names, header, values = read_labels(next(p for p in data.iterdir() if p.suffix in (".txt", ".csv")))
    assert len(names) == 6 and sorted(header) == sorted(ATTRIBUTES)
    config = dataclasses.replace(ClassifierTrainConfig(), batch_size=4, identity_batch=4, ema_decay=0.9, flip=flip)
    result, _ = train_classifier(config, data, tmp_path / "out", weights=WeightFiles(idnet=frozen_files["idnet"]),
                                 max_steps=60)
    assert result.loss_end < result.loss_start
    saved = torch.load(result.path, weights_only=True)
    assert saved["global_step"] == 60
    assert {k: tuple(v.shape) for k, v in saved["state_dict"].items()} == {
        "classifier.weight": (40, 512), "classifier.bias": (40,), "ema_classifier.weight": (40, 512),
        "ema_classifier.bias": (40,), "conds_mean": (1, 512), "conds_std": (1, 512)}
    classifier = load_classifier(result.path)
    assert classifier.attributes == ATTRIBUTES and classifier.stats is not None
    assert not torch.equal(load_classifier(result.path, use_ema=True).weight, classifier.weight)


def test_the_classifier_takes_the_statistics_of_a_latent_pkl(tmp_path, frozen_files):
    from faceanim.methods.dva.weights import save_identity_stats

    data = _labelled_folder(tmp_path / "faces", "txt", count=3)
    stats = save_identity_stats(tmp_path / "latent.pkl", torch.randn(6, 512))
    config = tmp_path / "cls.yaml"
    config.write_text("classifier: {batch_size: 2, flip: false}\n")
    result, _ = train("classifier", config, data, tmp_path / "out",
                      {"idnet": frozen_files["idnet"], "identity_stats_file": str(stats), "init": None}, max_steps=2)
    assert result.step == 2
    saved = torch.load(result.path, weights_only=True)["state_dict"]
    assert torch.equal(saved["conds_mean"][0], load_identity_stats(stats).mean)


# ------------------------------------------------------------------------------------ real faces

@pytest.mark.slow
@pytest.mark.testdata
def test_tiny_training_on_a_real_face_lowers_the_held_out_loss(tmp_path, shared_testdata, frozen_files):
    """Frames of driving_256.mp4: 40 steps on frames 0..59 lower the loss on frames 120..139 (fixed t and
    noises) of the EMA-free model."""
    from faceanim.media import VideoReader

    with VideoReader(shared_testdata / "driving_256.mp4") as reader:
        frames = [frame for _, frame in zip(range(140), reader)]
    data = write_clips(tmp_path / "data", {"talk": frames[:60:2]})
    config = tiny_config(learning_rate=2e-3, batch_size=1, trainer={"ema_decay": None, "checkpoint_every": 1000})
    held = torch.stack([torch.from_numpy(f.transpose(2, 0, 1).copy()).float() / 127.5 - 1 for f in frames[120:140:5]])
    generator = torch.Generator().manual_seed(0)
    t = torch.randint(1000, (held.shape[0],), generator=generator)
    noise = [torch.randn(held.shape[0], 3, 64, 64, generator=generator) for _ in range(2)]

    def held_loss(model) -> float:
        with torch.no_grad():
            terms = dva_losses(model, base_schedule(tiny()), held, t, *noise)
        return float(terms["eps"] + terms["xT_reg"])

    before = held_loss(initial_model(tiny(), TrainingFiles(**frozen_files)).eval())
    _, exported = train_dva(config, data, tmp_path / "run", weights=WeightFiles(**frozen_files), max_steps=40)
    _, trained = load_model(exported)
    assert held_loss(trained) < 0.9 * before
