"""Diffused Heads training on the shared trainer: configs, the official data sampling (frame ids, motion
frames, audio window, mouth box), the speech-feature cache, the official objective (L_simple, L_vlb at t = 0
and t > 0, L_lip) against the formulas of the train branch written out here, the official optimizer and
LR schedule, a tiny run on a real talking face whose held-out loss falls, exact resume, the exported
folder, and `faceanim train diffused_heads` on the command line.

The talking clips are made from the shared test media: a real talking face (driving_256.mp4, no sound)
with real speech (speech_en_16k.wav) as its sound track, through `faceanim preprocess --crop sda --size 64
--audio`."""
from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from faceanim.cli.main import main
from faceanim.errors import InputError, MissingWeightsError
from faceanim.methods.diffused_heads.config import crema, tiny
from faceanim.methods.diffused_heads.model import DiffusedHeadsUNet
from faceanim.methods.diffused_heads.sampling import audio_window, make_schedule, to_grayscale
from faceanim.methods.diffused_heads.train_config import (DiffusedHeadsTrainConfig, WeightFiles,
                                                          load_train_config, packaged_configs)
from faceanim.methods.diffused_heads.training import (DiffusedHeadsTraining, SpeechFeatures, diffusion_losses,
                                                      frame_ids, lip_loss, motion_frame_ids, open_clips,
                                                      resolve_weights, talking_dataset, train_diffused_heads)
from faceanim.methods.diffused_heads.weights import load_converted, load_model, save_converted
from faceanim.train import state
from tests.config_checks import assert_bad_config_refused

TINY = load_train_config("tiny.yaml")
LOGMEL = SpeechFeatures("logmel", 25.0)
SEGMENTS = {"train": (0, 60), "held": (120, 170)}     # frames of driving_256.mp4 (and of the speech, at 25 fps)

pytestmark = pytest.mark.testdata


def tiny_config(**trainer) -> DiffusedHeadsTrainConfig:
    return dataclasses.replace(TINY, trainer={**TINY.trainer, "log_every": 1, "sample_every": 0, **trainer})


@pytest.fixture(scope="module")
def talking_data(tmp_path_factory, shared_testdata) -> dict[str, Path]:
    """Two preprocessed talking clips (64 px sda crops, 16 kHz speech): `train` (60 frames) and `held` (50
    other frames), each in a dataset folder of its own."""
    from faceanim.media import Audio, VideoReader, VideoWriter, read_audio
    from faceanim.tasks.preprocess import PreprocessOptions, preprocess

    folder = tmp_path_factory.mktemp("diffused_heads_talk")
    speech = read_audio(shared_testdata / "speech_en_16k.wav", 16000).samples
    with VideoReader(shared_testdata / "driving_256.mp4") as reader:
        frames = list(itertools.islice(reader, max(end for _, end in SEGMENTS.values())))
    roots = {}
    for name, (start, end) in SEGMENTS.items():
        video = folder / f"talk_{name}.mp4"
        with VideoWriter(video, 25, audio=Audio(speech[start * 640:end * 640].copy(), 16000)) as writer:
            for frame in frames[start:end]:
                writer.write(frame)
        roots[name] = folder / f"{name}_data"
        assert preprocess([str(video)], roots[name], PreprocessOptions(crop="sda", size=64, audio=True)) == 0
    return roots


def _copy_clip(data: Path, destination: Path) -> Path:
    """A copy of the dataset's only clip in a dataset folder of its own; returns the clip folder."""
    clip = next(p for p in data.iterdir() if p.is_dir())
    shutil.copytree(clip, destination / clip.name)
    return destination / clip.name


# ------------------------------------------------------------------------------------ configs

def test_packaged_configs_are_the_official_setup_and_a_tiny_one():
    assert packaged_configs() == ["crema.yaml", "tiny.yaml"]
    official = load_train_config("crema")
    assert official.model == crema() and official.model.audio_features == "sda"
    assert (official.learning_rate, official.batch_size, official.num_epochs, official.lr_step, official.lr_gamma) == \
        (5e-5, 10, 3000, 166, 0.8)
    assert (official.loss_weights.vlb, official.loss_weights.lip) == (1e-4, 0.2)
    assert (official.identity_frame, official.num_repeats, official.lip_landmarks) == ("random", 1, "identity")
    assert official.trainer["seed"] == 2137 and official.trainer["mixed_precision"] == "no"
    assert TINY.model.unet == dataclasses.replace(tiny().unet, audio_channels=320)
    assert TINY.model.audio_features == "logmel" and TINY.trainer["seed"] == 2137
    assert dataclasses.replace(official, num_epochs=10).lr_step == 1   # n_epochs // 18, at least 1


@pytest.mark.parametrize("text, problem", [
    ("train: {batch_sise: 4}", "unknown train settings: batch_sise"),
    ("dataset: {identity_frame: last}", "identity_frame must be one of random, first"),
    ("train: {lip_landmarks: mouth}", "lip_landmarks must be one of identity, target"),
    ("model: {preset: huge}", "unknown model preset"),
    ("model: {unet: {channels: 8}}", "unknown model.unet settings: channels"),
    ("model: {audio_features: mfcc}", "audio_features must be one of"),
    ("model: {unet: {out_channels: 3}}", "out_channels must be 6"),
    ("train: {loss_weights: {lip: -1}}", "loss weights must be >= 0"),
    ("video: {}", "unknown sections video"),
    ("- a list", "expected a mapping"),
])
def test_bad_configs_name_the_file_and_the_problem(tmp_path, text, problem):
    assert_bad_config_refused(load_train_config, tmp_path, text, problem)


# ------------------------------------------------------------------------------- data sampling

def _official_motion_ids(target: int, identity: int, n_motion: int) -> list[int]:
    """datasets.py `get_ids` after the draw: frame_ids = [target, identity] + motion frames."""
    ids = [target, identity]
    ids += [ids[1]] * (max(n_motion - ids[0], 0))
    for i in range(max(ids[0] - n_motion, 0), ids[0]):
        ids += [i]
    return ids[2:]


def _official_audio_ids(target: int, n_frames: int, m: int) -> list[int]:
    ids = [0] * max(m - target, 0)
    for i in range(max(target - m, 0), min(target + m + 1, n_frames)):
        ids += [i]
    ids += [n_frames - 1] * max(target + m - n_frames + 1, 0)
    return ids


def test_frame_and_audio_ids_follow_the_official_rule():
    for n_frames, n_motion, m in [(10, 2, 2), (3, 2, 2), (6, 3, 1), (5, 0, 2)]:
        for target, identity in itertools.permutations(range(n_frames), 2):
            assert motion_frame_ids(target, identity, n_motion) == _official_motion_ids(target, identity, n_motion)
        for target in range(n_frames):
            assert audio_window(target, n_frames, m) == _official_audio_ids(target, n_frames, m)
    draws = [frame_ids(7, "first", 2, np.random.default_rng(seed)) for seed in range(200)]
    assert {identity for _, identity, _ in draws} == {0} and {t for t, _, _ in draws} == set(range(1, 7))
    draws = [frame_ids(7, "random", 2, np.random.default_rng(seed)) for seed in range(200)]
    assert all(t != i for t, i, _ in draws) and {i for _, i, _ in draws} == set(range(7))
    assert frame_ids(7, "random", 2, np.random.default_rng(3)) == frame_ids(7, "random", 2, np.random.default_rng(3))


def test_items_hold_the_official_conditions(talking_data):
    from faceanim.media import read_image

    unet = dataclasses.replace(TINY.model.unet, image_size=32, attention_resolutions=(16,), grayscale_motion=True)
    config = dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, unet=unet))
    dataset = talking_dataset(config, talking_data["train"], LOGMEL)
    clip = dataset.clips[0]
    assert len(dataset) == 16 and clip.n_frames == 60 and clip.crop_size == 64
    features = np.load(clip.features)
    landmarks = np.load(clip.folder / "landmarks.npy")
    for seed in (1, 2, 3):
        item = dataset[(0, seed)]
        target, identity, motion = frame_ids(60, "random", 2, np.random.default_rng(seed))
        assert item["x"].shape == item["x_cond"].shape == (3, 32, 32)
        assert item["x"].min() >= -1 and item["x"].max() <= 1
        pixels = torch.from_numpy(np.array(read_image(clip.frame_path(target)))).permute(2, 0, 1).float() / 255 * 2 - 1
        resized = nn.functional.interpolate(pixels[None], size=(32, 32), mode="bilinear", antialias=True)[0]
        assert torch.allclose(item["x"], resized)
        grey = [to_grayscale(nn.functional.interpolate(
            (torch.from_numpy(np.array(read_image(clip.frame_path(i)))).permute(2, 0, 1).float() / 255 * 2 - 1)[None],
            size=(32, 32), mode="bilinear", antialias=True)) for i in motion]
        assert item["motion"].shape == (2, 32, 32) and torch.allclose(item["motion"], torch.cat(grey, 1)[0])
        assert torch.equal(item["audio"], torch.from_numpy(features[audio_window(target, 60, 2)]))
        assert torch.allclose(item["lips"], torch.from_numpy(landmarks[identity, 48:68] / 2))   # the identity's mouth
    target_lips = dataclasses.replace(config, lip_landmarks="target")
    item = talking_dataset(target_lips, talking_data["train"], LOGMEL)[(0, 1)]
    target, _, _ = frame_ids(60, "random", 2, np.random.default_rng(1))
    assert torch.allclose(item["lips"], torch.from_numpy(landmarks[target, 48:68] / 2))


def test_speech_features_are_cached_and_recomputed_when_what_made_them_changes(talking_data, tmp_path, monkeypatch):
    clip = _copy_clip(talking_data["train"], tmp_path / "data")
    for cached in clip.glob("audio_features_*"):
        cached.unlink()
    computed = []
    original = SpeechFeatures.compute
    monkeypatch.setattr(SpeechFeatures, "compute", lambda self, samples: computed.append(1) or original(self, samples))
    clips, width = open_clips(tmp_path / "data", TINY, SpeechFeatures("logmel", 25.0))
    assert width == 320 and len(computed) == 1
    record = json.loads((clip / "audio_features_logmel.json").read_text())
    assert record["kind"] == "logmel" and record["fps"] == 25.0
    open_clips(tmp_path / "data", TINY, SpeechFeatures("logmel", 25.0))
    assert len(computed) == 1                                   # cached
    open_clips(tmp_path / "data", TINY, SpeechFeatures("logmel", 25.0, _source="logmel:other settings"))
    assert len(computed) == 2                                   # another setting
    from faceanim.media import read_audio, write_wav
    from faceanim.media import Audio

    speech = read_audio(clip / "audio.wav", 16000).samples
    write_wav(clip / "audio.wav", Audio(speech[: len(speech) // 2].copy(), 16000))
    clips, _ = open_clips(tmp_path / "data", TINY, SpeechFeatures("logmel", 25.0))
    assert len(computed) == 3 and clips[0].n_frames == 30      # new audio; min(video frames, feature rows)


def test_data_problems_name_the_clip(talking_data, tmp_path):
    with pytest.raises(InputError, match="has no finished clips"):
        talking_dataset(TINY, tmp_path, LOGMEL)
    with pytest.raises(InputError, match="dataset folder not found"):
        talking_dataset(TINY, tmp_path / "nowhere", LOGMEL)
    clip = _copy_clip(talking_data["train"], tmp_path / "no_audio")
    (clip / "audio.wav").unlink()
    with pytest.raises(InputError, match="has no audio.wav: preprocess the videos with --audio") as caught:
        talking_dataset(TINY, tmp_path / "no_audio", LOGMEL)
    assert caught.value.path == str(clip)
    clip = _copy_clip(talking_data["train"], tmp_path / "short")
    meta = json.loads((clip / "meta.json").read_text())
    (clip / "meta.json").write_text(json.dumps({**meta, "frames": 1}))
    with pytest.raises(InputError, match="has 1 usable frame .1 video frames, 60 speech-feature rows.; training "
                                         "needs at least 2"):
        talking_dataset(TINY, tmp_path / "short", LOGMEL)
    clip = _copy_clip(talking_data["train"], tmp_path / "fps")
    (clip / "meta.json").write_text(json.dumps({**meta, "fps": 30.0}))
    with pytest.raises(InputError, match="is at 30 fps; Diffused Heads trains at 25 fps .preprocess with --fps 25"):
        talking_dataset(TINY, tmp_path / "fps", LOGMEL)
    narrow = dataclasses.replace(TINY, model=dataclasses.replace(
        TINY.model, unet=dataclasses.replace(TINY.model.unet, audio_channels=None)))
    with pytest.raises(InputError, match="the logmel speech features have 320 values per frame but the UNet takes "
                                         "32: set model.unet.audio_channels: 320"):
        talking_dataset(narrow, talking_data["train"], LOGMEL)


def test_missing_speech_weights_name_their_flag(monkeypatch, tmp_path):
    for variable in ("FACEANIM_DIFFUSED_HEADS_AUDIO_ENCODER", "FACEANIM_WAV2VEC2"):
        monkeypatch.delenv(variable, raising=False)
    assert resolve_weights(TINY).audio_encoder is None        # logmel needs no weights
    sda = dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, audio_features="sda"))
    with pytest.raises(MissingWeightsError, match="--audio-encoder"):
        resolve_weights(sda)
    with pytest.raises(MissingWeightsError, match="--wav2vec2"):
        resolve_weights(dataclasses.replace(TINY, model=dataclasses.replace(TINY.model, audio_features="wav2vec2")))
    with pytest.raises(InputError, match="initial weights not found .--init"):
        resolve_weights(TINY, WeightFiles(init=str(tmp_path / "nowhere")))


# --------------------------------------------------------------------------------- objective

def _official_schedule(T: int = 1000) -> dict[str, torch.Tensor]:
    """models/diffusion.py `get_beta_schedule` + `set_params` (torch.tensor of Python floats: float32)."""
    alpha_bar = lambda t: np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2   # noqa: E731
    beta = torch.tensor([min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), 0.999) for i in range(T)])
    beta = beta.type(torch.float32)
    alpha = 1 - beta
    alpha_bar_t = torch.cumprod(alpha, dim=0)
    alpha_bar_prev = torch.cat([torch.ones(1), alpha_bar_t[:-1]])
    beta_tilde = beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)
    return {"beta": beta, "alpha_bar": alpha_bar_t,
            "log_beta_tilde_clipped": torch.log(torch.cat([beta_tilde[1, None], beta_tilde[1:]])),
            "coef1_x0": torch.sqrt(1.0 / alpha_bar_t), "coef2_x0": torch.sqrt(1.0 / alpha_bar_t - 1),
            "coef1_q": beta * torch.sqrt(alpha_bar_prev) / (1.0 - alpha_bar_t),
            "coef2_q": (1.0 - alpha_bar_prev) * torch.sqrt(alpha) / (1.0 - alpha_bar_t)}


def _official_vlb(s: dict, x0, xt, timesteps, nn_out):
    """`Diffusion.vlb_loss` with `get_p_params`, `get_q_params` and utils/losses.py, per sample."""
    b = lambda a: a[:, None, None, None]                                  # noqa: E731

    def q_params(eps_pred=None, x_start=None):
        if x_start is None:
            x_start = (b(s["coef1_x0"][timesteps]) * xt - b(s["coef2_x0"][timesteps]) * eps_pred).clamp(-1, 1)
        return b(s["coef1_q"][timesteps]) * x_start + b(s["coef2_q"][timesteps]) * xt, \
            b(s["log_beta_tilde_clipped"][timesteps])

    eps_pred, nu = nn_out.chunk(2, 1)
    nu = (nu + 1) / 2
    p_logvar = nu * b(torch.log(s["beta"][timesteps])) + (1 - nu) * b(s["log_beta_tilde_clipped"][timesteps])
    p_mean, _ = q_params(eps_pred=eps_pred)
    q_mean, q_logvar = q_params(x_start=x0)
    kl = 0.5 * (-1.0 + p_logvar - q_logvar + torch.exp(q_logvar - p_logvar)
                + ((q_mean - p_mean) ** 2) * torch.exp(-p_logvar))
    kl = kl.mean([1, 2, 3]) / np.log(2.0)

    def cdf(x):
        return 0.5 * (1.0 + torch.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * torch.pow(x, 3))))

    inv_stdv = torch.exp(-0.5 * p_logvar)
    cdf_plus, cdf_min = cdf(inv_stdv * (x0 - p_mean + 1 / 255)), cdf(inv_stdv * (x0 - p_mean - 1 / 255))
    log_probs = torch.where(x0 < -0.999, torch.log(cdf_plus.clamp(min=1e-12)),
                            torch.where(x0 > 0.999, torch.log((1.0 - cdf_min).clamp(min=1e-12)),
                                        torch.log((cdf_plus - cdf_min).clamp(min=1e-12))))
    decoder_nll = (-log_probs).mean([1, 2, 3]) / np.log(2.0)
    return torch.where(timesteps == 0, decoder_nll, kl)


def _official_lip_loss(eps, eps_pred, landmarks):
    """`Diffusion.lip_loss`, as written."""
    loss = 0.
    for _eps, _eps_pred, _landmarks in zip(eps, eps_pred, landmarks):
        min_col, min_row = _landmarks.min(0)[0].floor().long()
        max_col, max_row = _landmarks.max(0)[0].ceil().long()
        rows = slice(max(0, min_row - 5), min(_eps.shape[1], max_row + 5))
        cols = slice(max(0, min_col - 5), min(_eps.shape[1], max_col + 5))
        loss += ((_eps[:, rows, cols] - _eps_pred[:, rows, cols]) ** 2).mean()
    return loss / eps.shape[0]


class _FixedOutput(nn.Module):
    """A stand-in UNet: returns `out` and records what it was called with."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.out, self.calls = out, []

    def forward(self, x_t, timesteps, x_cond, motion_frames, audio_emb):
        self.calls.append((x_t, timesteps, x_cond, motion_frames, audio_emb))
        return self.out


def test_lip_loss_is_the_official_one():
    torch.manual_seed(0)
    eps, eps_pred = torch.randn(4, 3, 16, 16), torch.randn(4, 3, 16, 16)
    lips = torch.stack([torch.tensor([[5.3, 7.8], [9.1, 6.2], [7.5, 9.9]]),        # inside: floor/ceil +- 5
                        torch.tensor([[1.2, 0.4], [3.7, 2.5], [2.0, 1.0]]),        # clamped at 0
                        torch.tensor([[12.5, 13.1], [14.6, 15.2], [13.0, 14.0]]),  # clamped at 16
                        torch.tensor([[0.0, 3.0], [15.0, 12.0], [8.0, 8.0]])])     # integer corners
    assert torch.allclose(lip_loss(eps, eps_pred, lips), _official_lip_loss(eps, eps_pred, lips), atol=1e-6)
    # rows floor(6.2) - 5 = 1 .. ceil(9.9) + 5 = 15 (end excluded), columns 0 .. 15
    first = ((eps[0, :, 1:15, 0:15] - eps_pred[0, :, 1:15, 0:15]) ** 2).mean()
    assert torch.allclose(lip_loss(eps[:1], eps_pred[:1], lips[:1]), first)
    outside = torch.full((1, 3, 2), 40.0)                                        # official: NaN; here 0
    assert lip_loss(eps[:1], eps_pred[:1], outside) == 0


@pytest.mark.parametrize("t", [[0, 0], [0, 500], [1, 999], [37, 250]])
def test_the_objective_terms_are_the_official_ones(t):
    """L_simple, L_vlb (decoder NLL at t = 0, KL otherwise, ε detached) and L_lip of one step."""
    torch.manual_seed(1)
    size = 8
    x0 = (torch.rand(2, 3, size, size) * 2 - 1)
    x0[0, 0, :2] = -1.0                                  # the decoder's edge bins
    x0[1, 1, :2] = 1.0
    out = torch.randn(2, 6, size, size).clamp(-1, 1).requires_grad_()
    noise = torch.randn(2, 3, size, size)
    t = torch.tensor(t)
    batch = {"x": x0, "x_cond": torch.zeros(2, 3, size, size), "motion": torch.zeros(2, 6, size, size),
             "audio": torch.zeros(2, 5, 4), "lips": torch.tensor([[[2.5, 3.5], [4.0, 5.2]]] * 2)}
    unet = _FixedOutput(out)
    terms = diffusion_losses(unet, make_schedule(1000), batch, t=t, noise=noise)
    s = _official_schedule()
    abar = s["alpha_bar"][t][:, None, None, None]
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise              # `forward_diffusion`
    assert torch.allclose(unet.calls[0][0], x_t, atol=1e-6) and torch.equal(unet.calls[0][1], t)
    eps_pred, nu = out.chunk(2, 1)
    official_vlb = _official_vlb(s, x0, x_t, t, torch.cat([eps_pred.detach(), nu], dim=1)).mean()
    assert torch.allclose(terms["vlb"], official_vlb, rtol=1e-5, atol=1e-6)
    assert torch.allclose(terms["simple"], ((noise - eps_pred) ** 2).mean())
    assert torch.allclose(terms["lip"], _official_lip_loss(noise, eps_pred, batch["lips"]))
    terms["vlb"].backward()
    assert out.grad[:, :3].abs().sum() == 0 and out.grad[:, 3:].abs().sum() > 0   # vlb trains the variance only


def test_the_official_optimizer_and_lr_schedule():
    """Adam(lr) without weight decay; StepLR(n_epochs // 18 epochs, 0.8) per epoch, here stepped per step."""
    config = dataclasses.replace(TINY, num_epochs=36, learning_rate=1e-3, lr_step_epochs=None)
    method = DiffusedHeadsTraining(config, steps_per_epoch=3)
    models = {"unet": nn.Linear(2, 2)}
    optimizer = method.build_optimizers(models)["unet"]
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["weight_decay"] == 0
    scheduler = method.build_schedulers({"unet": optimizer})["unet"]
    rates = []
    for _ in range(13):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([1e-3] * 6 + [8e-4] * 6 + [6.4e-4])   # decays every 2 epochs of 3 steps
    assert [phase.name for phase in method.phases()] == ["unet"]


def test_init_from_a_converted_folder_or_a_state_dict(tmp_path):
    torch.manual_seed(3)
    source = DiffusedHeadsUNet(TINY.model.unet)
    folder = save_converted(tmp_path / "converted", TINY.model, source.state_dict())
    torch.save(source.state_dict(), tmp_path / "unet.pth")
    for path in (folder, tmp_path / "unet.pth"):
        started = DiffusedHeadsTraining(TINY, str(path)).build_models()["unet"]
        assert all(torch.equal(v, source.state_dict()[k]) for k, v in started.state_dict().items())


# ------------------------------------------------------------------------------- training runs

def _held_out_loss(unet: nn.Module, batch: dict) -> dict[str, float]:
    """The objective's terms on fixed held-out items, timesteps spread over the schedule, fixed noise."""
    count = batch["x"].shape[0]
    t = torch.linspace(0, 999, count).round().long()
    noise = torch.randn(batch["x"].shape, generator=torch.Generator().manual_seed(5))
    unet.eval()
    with torch.no_grad():
        terms = diffusion_losses(unet, make_schedule(1000), batch, t=t, noise=noise)
    return {name: terms[name].item() for name in ("simple", "vlb", "lip")}


def _converted_unet(folder: Path) -> DiffusedHeadsUNet:
    return load_model(folder)[1]


@pytest.mark.slow
def test_tiny_training_on_a_talking_face_lowers_the_held_out_loss(tmp_path, talking_data):
    """30 steps from a saved random UNet on the train clip: the loss on 16 items of the held-out clip
    (other frames, other speech; fixed timesteps and noise) falls."""
    torch.manual_seed(2)
    initial = save_converted(tmp_path / "initial", TINY.model, DiffusedHeadsUNet(TINY.model.unet).state_dict())
    held = talking_dataset(TINY, talking_data["held"], LOGMEL)
    items = [held[(0, 100 + index)] for index in range(16)]
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    result, exported = train_diffused_heads(tiny_config(sample_every=15), talking_data["train"], tmp_path / "run",
                                            weights=WeightFiles(init=str(initial)), max_steps=30)
    before, after = _held_out_loss(_converted_unet(initial), batch), _held_out_loss(_converted_unet(exported), batch)
    simple = [values["unet/simple"] for _, values in result.history]
    print(f"tiny Diffused Heads, 30 steps: held-out L_simple {before['simple']:.4f} -> {after['simple']:.4f}, "
          f"L_lip {before['lip']:.4f} -> {after['lip']:.4f}; logged L_simple {np.mean(simple[:3]):.4f} (steps 1-3) "
          f"-> {np.mean(simple[-3:]):.4f} (steps 28-30)")
    assert after["simple"] < 0.7 * before["simple"] and after["lip"] < 0.7 * before["lip"]
    assert np.mean(simple[-3:]) < np.mean(simple[:3])
    assert set(result.history[0][1]) >= {"unet/simple", "unet/vlb", "unet/lip", "lr/unet"}
    checkpoint = state.load_tensors(result.checkpoint / "models" / "unet.safetensors")
    exported_state = _converted_unet(exported).state_dict()
    assert all(torch.equal(exported_state[k], v) for k, v in checkpoint.items())
    assert (tmp_path / "run" / "samples" / "step-00000015.png").is_file()
    assert load_model(exported)[0].audio_features == "logmel" and load_converted(exported)[2] is None


@pytest.mark.slow
def test_a_resumed_run_reaches_the_state_of_an_uninterrupted_one(tmp_path, talking_data):
    """Stop at step 3, resume to step 6: weights, optimizer, scheduler and EMA equal a run of 6 steps."""
    config = tiny_config(checkpoint_every=3, ema_decay=0.9)
    whole, _ = train_diffused_heads(config, talking_data["train"], tmp_path / "whole", max_steps=6)
    train_diffused_heads(config, talking_data["train"], tmp_path / "split", max_steps=3)
    resumed, _ = train_diffused_heads(config, talking_data["train"], tmp_path / "split", max_steps=6, resume="latest")
    assert resumed.step == whole.step == 6
    for name in ("models/unet.safetensors", "ema/unet.safetensors"):
        a, b = state.load_tensors(whole.checkpoint / name), state.load_tensors(resumed.checkpoint / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    a, b = (state.load_object(c / "optimizers" / "unet.pt") for c in (whole.checkpoint, resumed.checkpoint))
    assert a["param_groups"] == b["param_groups"]
    assert all(torch.equal(a["state"][i][k], b["state"][i][k]) for i in a["state"] for k in a["state"][i])
    assert state.verify(whole.checkpoint)["files"] == state.verify(resumed.checkpoint)["files"]
    assert resumed.history[-1] == whole.history[-1]


# --------------------------------------------------------------------------------------- CLI

def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_on_the_command_line_exports_a_model_the_pipeline_loads(tmp_path, talking_data, monkeypatch, capsys):
    """tiny.yaml (log-mel features): the exported folder needs no speech weights to load."""
    from faceanim.methods.diffused_heads import DiffusedHeadsPipeline

    monkeypatch.delenv("FACEANIM_DIFFUSED_HEADS_AUDIO_ENCODER", raising=False)
    out = tmp_path / "run"
    code, stdout, stderr = _run(capsys, "train", "diffused_heads", "--config", "tiny.yaml", "--data",
                                talking_data["train"], "-o", out, "--max-steps", 2)
    assert code == 0, stderr
    assert "trained diffused_heads to step 2" in stdout
    assert (out / "checkpoints" / "latest").read_text().strip() == "step-00000002"
    config, unet_state, audio_state, _ = load_converted(out / "model")
    assert config == TINY.model and audio_state is None
    assert json.loads((out / "train_config.json").read_text())["method"] == "diffused_heads"
    pipeline = DiffusedHeadsPipeline.from_pretrained(out / "model", steps=2, device="cpu")
    assert pipeline.config == TINY.model and pipeline.crop_size == 64
    assert all(torch.equal(v.cpu(), unet_state[k]) for k, v in pipeline.model.state_dict().items())


def test_an_sda_run_bundles_its_speech_encoder_and_loads_in_the_pipeline(tmp_path, talking_data, capsys):
    """sda features from a (tiny, random) SDA encoder: 8 values per frame; the exported folder holds the
    encoder, so the pipeline loads it without --audio-encoder."""
    from faceanim.methods.diffused_heads import DiffusedHeadsPipeline
    from faceanim.methods.diffused_heads.audio_encoder import AudioEncoderConfig, SDAAudioEncoder, save_audio_encoder
    from faceanim.methods.diffused_heads.audio_encoder import tiny as tiny_encoder

    torch.manual_seed(4)
    encoder = save_audio_encoder(SDAAudioEncoder(tiny_encoder()).eval(), tmp_path / "encoder")
    (tmp_path / "sda.yaml").write_text("model: {preset: tiny, audio_features: sda, unet: {audio_channels: 8}}\n"
                                       "train: {batch_size: 2}\ndataset: {num_repeats: 4}\n"
                                       "trainer: {num_workers: 0, sample_every: 0}\n")
    data = tmp_path / "data"
    _copy_clip(talking_data["train"], data)
    out = tmp_path / "run"
    code, _, stderr = _run(capsys, "train", "diffused_heads", "--config", tmp_path / "sda.yaml", "--data", data,
                           "-o", out, "--audio-encoder", encoder, "--max-steps", 1)
    assert code == 0, stderr
    assert len(list(data.glob("*/audio_features_sda.npy"))) == 1
    pipeline = DiffusedHeadsPipeline.from_pretrained(out / "model", steps=2, device="cpu")
    assert isinstance(pipeline.audio_encoder, SDAAudioEncoder)
    assert pipeline.audio_encoder.config == AudioEncoderConfig.from_dict(tiny_encoder().to_dict())
    trained = _converted_unet(out / "model").state_dict()
    assert all(torch.equal(v.cpu(), trained[k]) for k, v in pipeline.model.state_dict().items())


@pytest.mark.parametrize("argv, problem", [
    (["--config", "crema.yaml", "--data", "{data}"], "--audio-encoder"),
    (["--config", "tiny.yaml", "--data", "{data}", "--init", "nowhere.pth"], "nowhere.pth: initial weights not found"),
    (["--config", "tiny.yaml", "--data", "{empty}"], "has no finished clips"),
    (["--config", "tiny.yaml", "--data", "{data}", "--deca", "x.tar"], "--deca does not apply to training "
                                                                       "diffused_heads"),
])
def test_bad_train_invocations_exit_2_with_one_line(argv, problem, tmp_path, talking_data, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FACEANIM_DIFFUSED_HEADS_AUDIO_ENCODER", raising=False)
    (tmp_path / "empty").mkdir()
    values = {"data": talking_data["train"], "empty": tmp_path / "empty"}
    code, _, err = _run(capsys, "train", "diffused_heads", *[a.format(**values) for a in argv])
    assert code == 2 and err.startswith("faceanim: error:") and err.count("\n") == 1, err
    assert problem in err
    assert not (tmp_path / "runs").exists()
