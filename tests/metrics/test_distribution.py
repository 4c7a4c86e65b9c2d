"""FID and FVD: the Fréchet distance against closed forms, streaming statistics against numpy, the
streaming metrics against direct feature extraction, and (slow) whole metrics on a real face video."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from faceanim.errors import InputError, MissingWeightsError
from faceanim.metrics import distribution
from faceanim.metrics.base import EvalContext, FrameView
from faceanim.metrics.distribution import (ClipWindow, FeatureStats, FIDMetric, FVDMetric, frechet_distance,
                                           frechet_distance_of_features, frechet_distance_of_stats,
                                           i3d_clip_features, i3d_input, inception_features)
from faceanim.nn.backbones.i3d import InceptionI3d, load_i3d
from faceanim.nn.backbones.inception import FIDInceptionV3, load_fid_inception
from tests.random_weights import he_state


def random_spd(rng: np.random.Generator, dim: int) -> np.ndarray:
    a = rng.normal(size=(dim, dim))
    return a @ a.T + 0.1 * np.eye(dim)


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(he_state(FIDInceptionV3()), path)
    return path


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "rgb_imagenet.pt"
    torch.save(he_state(InceptionI3d(), seed=1), path)
    return path


@pytest.fixture(scope="module")
def face_video(astronaut) -> list[np.ndarray]:
    """32 frames (160x160) of a real face under a slow pan."""
    return [np.ascontiguousarray(astronaut[20 + 2 * i:180 + 2 * i, 150 + 3 * i:310 + 3 * i]) for i in range(32)]


def noisy(frames: list[np.ndarray], sigma: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(f + rng.normal(0, sigma, f.shape), 0, 255).astype(np.uint8) for f in frames]


def run(metric, pred: list[np.ndarray], ref: list[np.ndarray]) -> dict[str, float]:
    for index, (p, r) in enumerate(zip(pred, ref)):
        assert metric.update(FrameView(p, index), FrameView(r, index)) == {}
    return metric.compute()


# --- the Fréchet distance ---------------------------------------------------------------------------------

def test_identical_gaussians_are_at_distance_zero():
    rng = np.random.default_rng(0)
    mu, sigma = rng.normal(size=6), random_spd(rng, 6)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_diagonal_gaussians_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    var1, var2 = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-10)


def test_one_dimensional_gaussians():
    # W2^2 of N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2; scalars are accepted
    assert frechet_distance(1.0, 4.0, -2.0, 9.0) == pytest.approx(9.0 + 1.0)


def test_full_covariances_match_the_eigenvalue_formula():
    # Tr sqrt(S1 S2) = sum of sqrt of the eigenvalues of S1^1/2 S2 S1^1/2 (symmetric, computed independently)
    rng = np.random.default_rng(2)
    s1, s2 = random_spd(rng, 8), random_spd(rng, 8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(w)) @ v.T
    trace_root = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ s2 @ root1), 0, None)))
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * trace_root
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_singular_product_is_retried_with_eps_on_the_diagonals():
    # sqrtm([[0, 1], [0, 0]]) does not exist (inf); with eps added the product is upper triangular
    # [[(1 + e) e, 1 + e], [0, e^2]], whose root has trace sqrt((1 + e) e) + e
    eps = 1e-6
    s1, s2 = np.diag([1.0, 0.0]), np.array([[0.0, 1.0], [0.0, 0.0]])
    expected = 1.0 - 2 * (math.sqrt((1 + eps) * eps) + eps)
    assert frechet_distance(np.zeros(2), s1, np.zeros(2), s2, eps=eps) == pytest.approx(expected, rel=1e-9)


def test_imaginary_root_and_bad_shapes_raise():
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.diag([-1.0, 1.0]))
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


# --- streaming statistics ---------------------------------------------------------------------------------

def test_feature_stats_equal_numpy_mean_and_cov():
    rng = np.random.default_rng(3)
    features = 1e4 + rng.normal(size=(26, 7)) * rng.uniform(0.01, 5, 7)   # large mean, small spread
    stats = FeatureStats(7)
    start = 0
    for size in (1, 5, 0, 3, 17):
        stats.add(features[start:start + size])
        start += size
    assert stats.count == 26
    np.testing.assert_allclose(stats.mean, np.mean(features, axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.covariance, np.cov(features, rowvar=False), rtol=1e-9, atol=1e-12)
    stats.add(features[0])              # a single (dim,) row
    assert stats.count == 27
    with pytest.raises(ValueError, match="size 3"):
        stats.add(np.zeros((2, 3)))


def test_feature_stats_with_fewer_than_two_rows():
    stats = FeatureStats(3)
    assert np.isnan(stats.mean).all() and np.isnan(stats.covariance).all()
    stats.add(np.ones(3))
    np.testing.assert_array_equal(stats.mean, np.ones(3))
    assert np.isnan(stats.covariance).all()
    other = FeatureStats(3)
    other.add(np.random.default_rng(0).normal(size=(4, 3)))
    assert math.isnan(frechet_distance_of_stats(stats, other))


def test_distance_of_features_uses_numpy_statistics():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(30, 4)), rng.normal(0.5, 2.0, size=(40, 4))
    expected = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert frechet_distance_of_features(a, b) == pytest.approx(expected, rel=1e-10)
    assert frechet_distance_of_features(a, a) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("stride,starts", [(16, [0, 16]), (8, [0, 8, 16, 24]), (20, [0, 20]), (1, list(range(25)))])
def test_clip_window_starts(stride, starts):
    window = ClipWindow(16, stride)
    clips = [clip for clip in (window.push(i) for i in range(40)) if clip is not None]
    assert [clip[0] for clip in clips] == starts
    assert all(clip == list(range(clip[0], clip[0] + 16)) for clip in clips)


# --- the streaming metrics --------------------------------------------------------------------------------

def test_missing_weights_name_the_flag_and_variable(monkeypatch):
    monkeypatch.delenv("FACEANIM_FID_INCEPTION", raising=False)
    monkeypatch.delenv("FACEANIM_FVD_I3D", raising=False)
    with pytest.raises(MissingWeightsError, match="--inception.*FACEANIM_FID_INCEPTION"):
        FIDMetric(EvalContext())
    with pytest.raises(MissingWeightsError, match="--i3d.*FACEANIM_FVD_I3D"):
        FVDMetric(EvalContext())


def test_metric_declarations():
    assert (FIDMetric.name, FIDMetric.weights, FIDMetric.needs) == ("fid", ("inception",), frozenset({"ref"}))
    assert (FVDMetric.name, FVDMetric.weights, FVDMetric.needs) == ("fvd", ("i3d",), frozenset({"ref"}))
    assert FIDMetric.input_size == 299 and FVDMetric.clip_length == 16
    assert FIDMetric.higher_is_better == {"fid": False} and FVDMetric.higher_is_better == {"fvd": False}


class SmallFID(FIDMetric):
    input_size = 75        # the smallest input Inception takes: same code path, 16x fewer operations
    batch_frames = 2


def test_fid_streams_frames_into_exact_statistics(inception_file, face_video):
    context = EvalContext(weights={"inception": inception_file})
    pred, ref = face_video[:5], noisy(face_video[:5], 30)
    metric = SmallFID(context)
    for index, (p, r) in enumerate(zip(pred, ref)):
        metric.update(FrameView(p, index), FrameView(r, index))
    assert metric.pred_stats.count == 4          # two full batches of 2; the 5th waits for compute
    metric._flush()
    model = load_fid_inception(inception_file)
    for stats, frames in ((metric.pred_stats, pred), (metric.ref_stats, ref)):
        direct = inception_features(frames, model, size=75, batch_size=3)
        assert direct.shape == (5, 2048) and stats.count == 5
        np.testing.assert_allclose(stats.mean, direct.mean(axis=0), rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(stats.covariance, np.cov(direct, rowvar=False), rtol=1e-3, atol=1e-9)
    assert not np.allclose(metric.pred_stats.mean, metric.ref_stats.mean)


def test_fid_with_one_frame_is_nan(inception_file, face_video):
    metric = SmallFID(EvalContext(weights={"inception": inception_file}))
    assert math.isnan(run(metric, face_video[:1], face_video[1:2])["fid"])


def test_fid_is_nan_where_pytorch_fid_would_raise(inception_file, face_video, monkeypatch):
    def imaginary_root(*args, **kwargs):
        raise ValueError("Fréchet distance: matrix square root has an imaginary component 0.1")

    monkeypatch.setattr(distribution, "frechet_distance", imaginary_root)
    metric = SmallFID(EvalContext(weights={"inception": inception_file}))
    assert math.isnan(run(metric, face_video[:2], face_video[2:4])["fid"])


def test_fvd_windows_and_batches_clips(i3d_file, face_video, monkeypatch):
    calls: list[torch.Tensor] = []

    def fake_logits(model, clips):       # a fixed function of the clip pixels, in place of the network
        batch = torch.stack(list(clips))
        calls.append(batch)
        return batch.flatten(1)[:, ::997][:, :400].double().numpy()

    monkeypatch.setattr(distribution, "_clip_logits", fake_logits)
    metric = FVDMetric(EvalContext(weights={"i3d": i3d_file}, options={"fvd_stride": "4"}))
    pred, ref = face_video[:23], noisy(face_video[:23], 20)
    result = run(metric, pred, ref)
    assert len(calls) == 2                               # clips start at frames 0 and 4 (8 needs a 24th frame)
    assert all(batch.shape == (2, 3, 16, 224, 224) for batch in calls)
    for batch, start in zip(calls, (0, 4)):
        torch.testing.assert_close(batch[0, :, 0], i3d_input(pred[start]))       # pred clip first
        torch.testing.assert_close(batch[1, :, 15], i3d_input(ref[start + 15]))
    features = [fake_logits(None, [batch[0], batch[1]]) for batch in calls[:2]]
    expected = frechet_distance_of_features(np.stack([f[0] for f in features]), np.stack([f[1] for f in features]))
    assert result["fvd"] == pytest.approx(expected, rel=1e-9)


def test_fvd_needs_two_clips(i3d_file, face_video):
    metric = FVDMetric(EvalContext(weights={"i3d": i3d_file}))
    assert math.isnan(run(metric, face_video[:15], face_video[:15])["fvd"])   # not even one clip


@pytest.mark.parametrize("stride", [0, -3, "x", 2.5, True])
def test_fvd_rejects_a_bad_stride(stride):
    with pytest.raises(InputError, match="fvd_stride"):
        FVDMetric(EvalContext(options={"fvd_stride": stride}))


@pytest.mark.slow
def test_fid_of_a_video_against_itself_and_a_noisy_copy(inception_file, face_video):
    context = EvalContext(weights={"inception": inception_file})
    frames = face_video[::4]                                     # 8 frames at the full 299x299 protocol
    same = run(FIDMetric(context), frames, frames)["fid"]
    degraded = run(FIDMetric(context), noisy(frames, 60), frames)["fid"]
    assert degraded > 0
    assert abs(same) < 1e-3 * degraded


@pytest.mark.slow
def test_fvd_of_a_video_against_itself_and_noisy_copies(i3d_file, face_video):
    context = EvalContext(weights={"i3d": i3d_file})
    metric = FVDMetric(context)
    same = run(metric, face_video, face_video)["fvd"]                  # two clips per side
    clips = np.stack(face_video).reshape(2, 16, 160, 160, 3)
    direct = i3d_clip_features(clips, load_i3d(i3d_file))
    np.testing.assert_allclose(metric.pred_stats.mean, direct.mean(axis=0), rtol=1e-4, atol=1e-5)
    mild = run(FVDMetric(context), noisy(face_video, 15), face_video)["fvd"]
    strong = run(FVDMetric(context), noisy(face_video, 80), face_video)["fvd"]
    assert 0 < mild < strong
    assert abs(same) < 1e-3 * mild
