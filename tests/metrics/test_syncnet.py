"""SyncNet / LSE: the official key set loads strictly, the offset / confidence / distance arithmetic equals
SyncNetInstance.evaluate (re-written here), the crops and smoothing equal crop_video's, and the streaming
metric equals a whole-clip re-implementation of the official evaluation (random weights)."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from faceanim.errors import CheckpointError, InputError, MissingWeightsError
from faceanim.media.audio import Audio
from faceanim.metrics import syncnet
from faceanim.metrics.base import EvalContext, FrameView
from faceanim.metrics.syncnet import (FrameRateConverter, LSEMetric, SyncNet, TrackSmoother, box_track_values,
                                      detector_box, load_syncnet, median_smooth, sync_scores, syncnet_crop)


def _conv_bn(prefix: str, index: int, weight: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    channels = (weight[0],)
    return {f"{prefix}.{index}.weight": weight, f"{prefix}.{index}.bias": channels,
            f"{prefix}.{index + 1}.weight": channels, f"{prefix}.{index + 1}.bias": channels,
            f"{prefix}.{index + 1}.running_mean": channels, f"{prefix}.{index + 1}.running_var": channels,
            f"{prefix}.{index + 1}.num_batches_tracked": ()}


def _fc(prefix: str) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.0.weight": (512, 512), f"{prefix}.0.bias": (512,), f"{prefix}.1.weight": (512,),
            f"{prefix}.1.bias": (512,), f"{prefix}.1.running_mean": (512,), f"{prefix}.1.running_var": (512,),
            f"{prefix}.1.num_batches_tracked": (), f"{prefix}.3.weight": (1024, 512), f"{prefix}.3.bias": (1024,)}


# SyncNetModel.S, read off the official source: Sequential index and weight shape of each conv / linear
OFFICIAL_SHAPES: dict[str, tuple[int, ...]] = {
    **_conv_bn("netcnnaud", 0, (64, 1, 3, 3)), **_conv_bn("netcnnaud", 4, (192, 64, 3, 3)),
    **_conv_bn("netcnnaud", 8, (384, 192, 3, 3)), **_conv_bn("netcnnaud", 11, (256, 384, 3, 3)),
    **_conv_bn("netcnnaud", 14, (256, 256, 3, 3)), **_conv_bn("netcnnaud", 18, (512, 256, 5, 4)),
    **_fc("netfcaud"), **_fc("netfclip"),
    **_conv_bn("netcnnlip", 0, (96, 3, 5, 7, 7)), **_conv_bn("netcnnlip", 4, (256, 96, 1, 5, 5)),
    **_conv_bn("netcnnlip", 8, (256, 256, 1, 3, 3)), **_conv_bn("netcnnlip", 11, (256, 256, 1, 3, 3)),
    **_conv_bn("netcnnlip", 14, (256, 256, 1, 3, 3)), **_conv_bn("netcnnlip", 18, (512, 256, 1, 6, 6)),
}


def random_syncnet_state(seed: int = 0, *, counters: bool = True) -> dict[str, torch.Tensor]:
    """Random weights in the official layout, scaled so activations stay moderate."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in OFFICIAL_SHAPES.items():
        if name.endswith("num_batches_tracked"):
            if counters:
                state[name] = torch.tensor(0)
        elif name.endswith("running_var"):
            state[name] = 1 + torch.rand(shape, generator=generator)
        elif len(shape) > 1:
            fan_in = math.prod(shape[1:])
            state[name] = torch.randn(shape, generator=generator) * math.sqrt(2 / fan_in)
        else:  # BatchNorm scales near 1; biases and running means near 0
            state[name] = 0.1 * torch.randn(shape, generator=generator) + (1.0 if name.endswith("weight") else 0.0)
    return state


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model"
    torch.save(random_syncnet_state(), path)
    return str(path)


# ---------------------------------------------------------------- network and weights

def test_model_has_the_official_keys_and_shapes():
    state = SyncNet().state_dict()
    assert {name: tuple(value.shape) for name, value in state.items()} == OFFICIAL_SHAPES


def test_official_layout_loads_strictly(tmp_path, weights_file):
    model = load_syncnet(weights_file)
    assert not model.training
    expected = random_syncnet_state()
    assert all(torch.equal(model.state_dict()[name], value) for name, value in expected.items())
    legacy = tmp_path / "legacy.model"  # written before PyTorch 0.4.1: no BatchNorm counters
    torch.save(random_syncnet_state(counters=False), legacy)
    load_syncnet(legacy)


def test_wrong_file_is_a_checkpoint_error(tmp_path):
    state = random_syncnet_state()
    del state["netfclip.3.weight"]
    path = tmp_path / "broken.model"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="SyncNet"):
        load_syncnet(path)


def test_embedding_shapes(weights_file):
    model = load_syncnet(weights_file)
    with torch.no_grad():
        assert model.forward_aud(torch.randn(3, 1, 13, 20)).shape == (3, 1024)
        assert model.forward_lip(torch.rand(2, 3, 5, 224, 224) * 255).shape == (2, 1024)


# ---------------------------------------------------------------- official arithmetic

def _official_evaluate(video: torch.Tensor, audio: torch.Tensor, vshift: int = 15):
    """SyncNetInstance.evaluate from its embeddings on, written out again: calc_pdist, then the curve."""
    width = vshift * 2 + 1
    padded = torch.nn.functional.pad(audio, (0, 0, vshift, vshift))
    dists = [torch.nn.functional.pairwise_distance(video[[i], :].repeat(width, 1), padded[i:i + width, :])
             for i in range(len(video))]
    mdist = torch.mean(torch.stack(dists, 1), 1)
    minval, minidx = torch.min(mdist, 0)
    distances = np.stack([d.numpy() for d in dists])
    return int(vshift - minidx), float(torch.median(mdist) - minval), float(minval), distances


@pytest.mark.parametrize("windows", [1, 7, 40])
def test_scores_equal_the_official_evaluate(windows):
    rng = np.random.default_rng(windows)
    video = rng.normal(size=(windows, 64)).astype(np.float32)
    audio = (video + rng.normal(scale=2.0, size=video.shape)).astype(np.float32)
    scores = sync_scores(video, audio)
    offset, confidence, min_distance, distances = _official_evaluate(torch.from_numpy(video),
                                                                     torch.from_numpy(audio))
    assert scores.offset == offset
    assert scores.confidence == pytest.approx(confidence, rel=1e-5)
    assert scores.min_distance == pytest.approx(min_distance, rel=1e-6)
    np.testing.assert_allclose(scores.distances, distances, rtol=1e-6)
    assert scores.curve.shape == (31,)


@pytest.mark.parametrize("delay", [0, 3, -5])
def test_planted_offset(delay):
    # audio[m] = video[m - delay]: the sound comes `delay` frames after the picture -> offset -delay
    rng = np.random.default_rng(0)
    video = rng.normal(size=(60, 32)).astype(np.float32)
    audio = np.roll(video, delay, axis=0)
    scores = sync_scores(video, audio)
    assert scores.offset == -delay
    assert scores.min_distance < 0.3 * np.median(scores.curve)
    assert scores.confidence > 0


def test_identical_embeddings():
    video = np.random.default_rng(1).normal(size=(20, 16)).astype(np.float32)
    scores = sync_scores(video, video)
    assert scores.offset == 0
    assert scores.min_distance == pytest.approx(1e-6 * 4, rel=1e-3)  # pairwise_distance's eps, sqrt(16) of it


# ---------------------------------------------------------------- crops and smoothing

def _official_crop(image_bgr: np.ndarray, bs: float, my: float, mx: float, cs: float = 0.4) -> np.ndarray:
    """crop_video's per-frame crop, written out again."""
    bsi = int(bs * (1 + 2 * cs))
    frame = np.pad(image_bgr, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=(110, 110))
    my, mx = my + bsi, mx + bsi
    face = frame[int(my - bs):int(my + bs * (1 + 2 * cs)), int(mx - bs * (1 + cs)):int(mx + bs * (1 + cs))]
    return cv2.resize(face, (224, 224))


# (half-size, centre y, centre x): inside, over the top-right corner, below the bottom-left, larger than the frame
@pytest.mark.parametrize("box", [(60.0, 128.3, 120.7), (30.5, 20.0, 240.2), (90.0, 230.0, 10.0),
                                 (200.0, 128.0, 128.0)])
def test_crop_equals_crop_video(astronaut, box):
    image = cv2.resize(astronaut, (256, 256))
    np.testing.assert_array_equal(syncnet_crop(image, *box), _official_crop(image[..., ::-1], *box))


def test_detector_box_frames_the_face(astronaut):
    from faceanim.face import largest_face

    landmarks = largest_face(astronaut)[1]
    left, top, right, bottom = detector_box(landmarks)
    assert left == landmarks[:, 0].min() and bottom == landmarks[:, 1].max()
    assert top < landmarks[17:27, 1].min() < bottom
    half, centre_y, centre_x = box_track_values(detector_box(landmarks))
    assert half == max(bottom - top, right - left) / 2
    crop = syncnet_crop(astronaut, half, centre_y, centre_x)
    mouth = landmarks[48:68].mean(axis=0)  # the mouth lies in the crop's lower middle
    scale = 224 / (2.8 * half)
    assert 0.3 < (mouth[0] - (centre_x - 1.4 * half)) * scale / 224 < 0.7
    assert 0.45 < (mouth[1] - (centre_y - half)) * scale / 224 < 0.75
    assert crop.shape == (224, 224, 3)


@pytest.mark.filterwarnings("ignore:kernel_size exceeds")  # medfilt on clips shorter than its kernel
@pytest.mark.parametrize("length", [1, 4, 13, 40])
def test_smoothing_equals_medfilt(length):
    from scipy.signal import medfilt

    values = np.random.default_rng(length).uniform(50, 150, (length, 3))
    expected = np.stack([medfilt(values[:, k], kernel_size=13) for k in range(3)], axis=1)
    np.testing.assert_array_equal(median_smooth(values), expected)
    smoother = TrackSmoother()
    out = [item for row in range(length) for item in smoother.push(values[row], row)] + smoother.flush()
    assert [payload for _, payload in out] == list(range(length))
    np.testing.assert_array_equal(np.stack([smoothed for smoothed, _ in out]), expected)


@pytest.mark.parametrize("fps, expected", [(25, [1] * 10), (50, [1, 0] * 5), (12.5, [1, 2, 2, 2, 2])])
def test_frame_rate_conversion(fps, expected):
    converter = FrameRateConverter(fps)
    assert [converter.repeats() for _ in expected] == expected


def test_frame_rate_conversion_picks_the_nearest_frame():
    converter = FrameRateConverter(30)
    sources = [index for index in range(300) for _ in range(converter.repeats())]
    assert len(sources) == 250
    assert sources == [round(k * 30 / 25 + 1e-9) for k in range(250)]


# ---------------------------------------------------------------- the metric

def _synthetic_clip(count: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Textured 160x160 frames and a landmark set drifting across them (no face detector needed)."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (220, 220, 3)).astype(np.float32), (0, 0), 2).astype(np.uint8)
    base = np.stack([np.linspace(40, 120, 68), np.concatenate([np.linspace(50, 130, 17), np.full(10, 45.0),
                                                               np.linspace(60, 115, 41)])], axis=1)
    frames, landmarks = [], []
    for t in range(count):
        frames.append(np.ascontiguousarray(texture[t:t + 160, 2 * t:2 * t + 160]))
        landmarks.append(base + [1.5 * t + rng.normal(), 0.5 * t + rng.normal()])
    return frames, landmarks


def _speech(seconds: float, seed: int = 0) -> Audio:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 2.5 * t)
    samples = 0.3 * envelope * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)
    return Audio(samples.astype(np.float32), 16000)


def _run(metric: LSEMetric, frames, landmarks) -> dict[str, float]:
    for index, (frame, points) in enumerate(zip(frames, landmarks)):
        view = FrameView(frame, index)
        view.landmarks = points
        assert metric.update(view, None) == {}
    return metric.compute()


def _official_lse(model: SyncNet, frames, landmarks, audio: Audio) -> dict[str, float]:
    """The official evaluation over a whole clip held in memory: the track from the first to the last
    face, boxes smoothed with medfilt, crop_video's crops, the audio cut at the track start, MFCCs from
    python_speech_features, batches of 20 windows, then evaluate's arithmetic."""
    from scipy.signal import medfilt

    psf = pytest.importorskip("python_speech_features")
    found = [i for i, points in enumerate(landmarks) if points is not None]
    first, last = found[0], found[-1]
    boxes, held = [], None
    for points in landmarks[first:]:
        held = box_track_values(detector_box(points)) if points is not None else held
        boxes.append(held)
    smoothed = np.stack([medfilt(np.array(boxes)[:, k], kernel_size=13) for k in range(3)], axis=1)
    crops = [_official_crop(frame[..., ::-1], *values) for frame, values in zip(frames[first:], smoothed)]
    images = crops[:last - first + 1]
    wav = np.clip(np.rint(audio.samples.astype(np.float64) * 32768), -32768, 32767).astype(np.int16)[first * 640:]
    mfcc = np.stack([np.array(row) for row in zip(*psf.mfcc(wav, 16000))])
    cct = torch.from_numpy(mfcc[None, None].astype(float)).float()
    imtv = torch.from_numpy(np.transpose(np.stack(images, axis=3)[None], (0, 3, 4, 1, 2)).astype(float)).float()
    lastframe = min(len(images), math.floor(len(wav) / 640)) - 5
    im_feat, cc_feat = [], []
    with torch.no_grad():
        for i in range(0, lastframe, 20):
            batch = range(i, min(lastframe, i + 20))
            im_feat.append(model.forward_lip(torch.cat([imtv[:, :, v:v + 5] for v in batch])))
            cc_feat.append(model.forward_aud(torch.cat([cct[:, :, :, v * 4:v * 4 + 20] for v in batch])))
    offset, confidence, min_distance, distances = _official_evaluate(torch.cat(im_feat), torch.cat(cc_feat))
    return {"lse_c": confidence, "lse_d": min_distance, "av_offset": float(offset), "distances": distances}


@pytest.mark.parametrize("case", ["whole", "late_start_small_batches"])
def test_metric_equals_the_official_evaluation_on_a_whole_clip(weights_file, monkeypatch, case):
    frames, landmarks = _synthetic_clip(16)
    audio = _speech(16 / 25 + 0.1)
    if case == "late_start_small_batches":
        monkeypatch.setattr(syncnet, "BATCH_SIZE", 4)  # several streaming batches, and a partial one
        landmarks[:2] = [None, None]   # the track starts at frame 2; the audio is cut there
        landmarks[9] = None            # a frame without a face keeps the previous box
        landmarks[-1] = None           # the track ends a frame early
    metric = LSEMetric(EvalContext(fps=25, audio=audio, weights={"syncnet": weights_file}))
    ours = _run(metric, frames, landmarks)
    reference = _official_lse(metric.model, frames, landmarks, audio)
    assert ours["av_offset"] == reference["av_offset"]
    assert ours["lse_c"] == pytest.approx(reference["lse_c"], rel=1e-3, abs=1e-3)
    assert ours["lse_d"] == pytest.approx(reference["lse_d"], rel=1e-4)
    # every video window against every shifted audio window (not only the zero-padded ends)
    np.testing.assert_allclose(metric.scores.distances, reference["distances"], rtol=1e-4)


def test_short_clip_is_nan(weights_file):
    frames, landmarks = _synthetic_clip(5)  # 5 frames: the official range(0, 5 - 5) has no window
    metric = LSEMetric(EvalContext(fps=25, audio=_speech(1.0), weights={"syncnet": weights_file}))
    result = _run(metric, frames, landmarks)
    assert set(result) == {"lse_c", "lse_d", "av_offset"} and all(math.isnan(v) for v in result.values())
    no_face = LSEMetric(EvalContext(fps=25, audio=_speech(1.0), weights={"syncnet": weights_file}))
    assert all(math.isnan(v) for v in _run(no_face, frames, [None] * 5).values())
    short_audio = LSEMetric(EvalContext(fps=25, audio=_speech(0.2), weights={"syncnet": weights_file}))
    assert all(math.isnan(v) for v in _run(short_audio, *_synthetic_clip(12)).values())


def test_missing_weights_name_the_flag(monkeypatch):
    monkeypatch.delenv("FACEANIM_SYNCNET", raising=False)
    with pytest.raises(MissingWeightsError, match="--syncnet"):
        LSEMetric(EvalContext(audio=_speech(1.0)))


def test_needs_audio(weights_file):
    assert LSEMetric.needs == frozenset({"audio"}) and LSEMetric.weights == ("syncnet",)
    with pytest.raises(InputError, match="audio"):
        LSEMetric(EvalContext(weights={"syncnet": weights_file}))


@pytest.mark.testdata
def test_real_face_and_speech_end_to_end(shared_testdata, weights_file):
    import itertools

    from faceanim.media import VideoReader, read_audio

    audio = read_audio(shared_testdata / "speech_en_16k.wav", 16000)
    metric = LSEMetric(EvalContext(fps=25, audio=audio, weights={"syncnet": weights_file}))
    with VideoReader(shared_testdata / "driving_256.mp4") as reader:
        for index, frame in enumerate(itertools.islice(reader, 16)):
            metric.update(FrameView(frame, index), None)
    result = metric.compute()
    assert all(math.isfinite(value) for value in result.values())
    assert result["lse_d"] > 0 and result["lse_c"] >= 0 and -15 <= result["av_offset"] <= 15
