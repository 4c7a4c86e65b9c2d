"""Pixel metrics: closed forms (identical images, constant shifts), SSIM against scikit-image and against a
plain torch re-implementation of DiffAE/DVA's pytorch-ssim, and the streaming video summaries."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from faceanim.errors import InputError
from faceanim.metrics.base import EvalContext, FrameView
from faceanim.metrics.pixel import (L1Metric, MSEMetric, PSNRMetric, SSIMMetric, gaussian_window, l1, mse, psnr,
                                    ssim, to_unit_float)


@pytest.fixture(scope="module")
def face(astronaut) -> np.ndarray:
    """A 128x96 crop of a real face (small, so the tests stay fast)."""
    return np.ascontiguousarray(astronaut[30:158, 160:256])


@pytest.fixture(scope="module")
def noisy_face(face) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(face.astype(np.int16) + rng.integers(-25, 26, face.shape), 0, 255).astype(np.uint8)


def paper_ssim_reference(img1: np.ndarray, img2: np.ndarray) -> float:
    """DiffAE/DVA `ssim.py` written out with torch ops: an 11x11 Gaussian (sigma 1.5) from the outer product
    of the 1-D one, depthwise conv2d with zero padding 5, C1 = 0.01^2, C2 = 0.03^2, mean over everything.
    float64 here (the papers ran float32), so agreement is to ~1e-12, not to float32 rounding."""
    x = torch.from_numpy(img1.astype(np.float64) / 255).permute(2, 0, 1)[None]
    y = torch.from_numpy(img2.astype(np.float64) / 255).permute(2, 0, 1)[None]
    g = torch.tensor([math.exp(-(i - 5) ** 2 / (2 * 1.5 ** 2)) for i in range(11)], dtype=torch.float64)
    g = g / g.sum()
    window = (g[:, None] @ g[None, :]).expand(3, 1, 11, 11).contiguous()

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, padding=5, groups=3)

    mu1, mu2 = blur(x), blur(y)
    s11, s22, s12 = blur(x * x) - mu1 ** 2, blur(y * y) - mu2 ** 2, blur(x * y) - mu1 * mu2
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s11 + s22 + c2))
    return float(ssim_map.mean())


def frames(images, start: int = 0) -> list[FrameView]:
    return [FrameView(image, index) for index, image in enumerate(images, start)]


def run(metric_class, preds, refs, **options):
    metric = metric_class(EvalContext(options=options))
    per_frame = [metric.update(p, r) for p, r in zip(frames(preds), frames(refs))]
    return per_frame, metric.compute()


# --- functions --------------------------------------------------------------------------------------------

def test_identical_images(face):
    assert l1(face, face) == 0.0
    assert mse(face, face) == 0.0
    assert psnr(face, face) == float("inf")
    assert ssim(face, face) == pytest.approx(1.0, abs=1e-12)
    assert ssim(face, face, mode="skimage") == pytest.approx(1.0, abs=1e-12)


def test_known_constant_shift_closed_forms():
    ref = np.random.default_rng(1).integers(10, 200, (40, 30, 3), dtype=np.uint8)
    pred = ref + np.uint8(7)
    shift = 7 / 255
    assert l1(pred, ref) == pytest.approx(shift, rel=1e-12)
    assert mse(pred, ref) == pytest.approx(shift ** 2, rel=1e-12)
    assert psnr(pred, ref) == pytest.approx(20 * math.log10(255 / 7), rel=1e-12)   # 31.23 dB
    # the same images as floats in [0, 255], with the peak named
    assert psnr(pred.astype(float), ref.astype(float), data_range=255.0) == pytest.approx(20 * math.log10(255 / 7))


def test_uint8_and_unit_float_inputs_agree(face, noisy_face):
    as_float = to_unit_float(face), to_unit_float(noisy_face)
    assert as_float[0].dtype == np.float64 and as_float[0].max() <= 1.0
    for fn in (l1, mse, psnr, ssim):
        assert fn(face, noisy_face) == pytest.approx(fn(*as_float), rel=1e-12)


def test_ssim_skimage_mode_matches_scikit_image(face, noisy_face):
    metrics = pytest.importorskip("skimage.metrics")
    want = metrics.structural_similarity(face, noisy_face, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=255, channel_axis=-1)
    assert ssim(noisy_face, face, mode="skimage") == pytest.approx(want, abs=1e-10)
    grey_a, grey_b = face[..., 0], noisy_face[..., 0]
    want_grey = metrics.structural_similarity(grey_a, grey_b, gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, data_range=255)
    assert ssim(grey_a, grey_b, mode="skimage") == pytest.approx(want_grey, abs=1e-10)


def test_ssim_paper_mode_matches_pytorch_ssim_reimplementation(face, noisy_face):
    got = ssim(noisy_face, face, mode="paper")
    assert got == pytest.approx(paper_ssim_reference(noisy_face, face), abs=1e-10)
    # the two variants differ only by the border: zero-padded there in one, left out in the other
    assert 0.0 < got < 1.0 and abs(got - ssim(noisy_face, face, mode="skimage")) > 1e-3


def test_ssim_is_symmetric_and_falls_with_noise(face, noisy_face):
    rng = np.random.default_rng(2)
    noisier = np.clip(face.astype(np.int16) + rng.integers(-80, 81, face.shape), 0, 255).astype(np.uint8)
    for mode in ("paper", "skimage"):
        assert ssim(face, noisy_face, mode=mode) == pytest.approx(ssim(noisy_face, face, mode=mode), abs=1e-14)
        assert ssim(face, noisier, mode=mode) < ssim(face, noisy_face, mode=mode)


def test_gaussian_window_is_the_papers_one():
    want = np.array([math.exp(-(x - 5) ** 2 / (2 * 1.5 ** 2)) for x in range(11)])
    np.testing.assert_allclose(gaussian_window(), want / want.sum(), rtol=1e-14)


def test_ssim_small_images_and_bad_mode():
    rng = np.random.default_rng(3)
    tiny, other = rng.integers(0, 256, (2, 8, 5, 3), dtype=np.uint8)
    # the paper mode pads, so images smaller than the window work (the padding is most of the window)
    assert ssim(tiny, other) == pytest.approx(paper_ssim_reference(tiny, other), abs=1e-10)
    assert ssim(tiny, tiny) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(tiny, tiny, mode="skimage")
    with pytest.raises(ValueError, match="paper, skimage"):
        ssim(tiny, tiny, mode="valid")


@pytest.mark.parametrize("fn", [l1, mse, psnr, ssim])
def test_different_sizes_are_an_input_error(fn):
    a, b = np.zeros((32, 32, 3), np.uint8), np.zeros((32, 16, 3), np.uint8)
    with pytest.raises(InputError, match="32x32x3 .* 16x32x3"):
        fn(a, b)


# --- streaming metrics ------------------------------------------------------------------------------------

def test_video_against_itself(face):
    video = [face, np.roll(face, 3, axis=1), face[::-1].copy()]
    per_frame, summary = run(PSNRMetric, video, video)
    assert [v["psnr"] for v in per_frame] == [float("inf")] * 3
    assert summary == {"psnr": float("inf"), "psnr_identical_frames": 3.0}
    for metric_class, key, value in ((L1Metric, "l1", 0.0), (MSEMetric, "mse", 0.0), (SSIMMetric, "ssim", 1.0)):
        assert run(metric_class, video, video)[1][key] == pytest.approx(value, abs=1e-12)


def test_psnr_summary_leaves_identical_frames_out_of_the_mean(face, noisy_face):
    shifted = np.clip(face.astype(np.int16) + 7, 0, 255).astype(np.uint8)
    preds, refs = [noisy_face, face, shifted], [face, face, face]
    per_frame, summary = run(PSNRMetric, preds, refs)
    values = [v["psnr"] for v in per_frame]
    assert values[1] == float("inf")
    assert values[0] == pytest.approx(psnr(noisy_face, face))
    assert summary["psnr"] == pytest.approx((values[0] + values[2]) / 2)
    assert summary["psnr_identical_frames"] == 1.0


def test_summaries_are_means_of_frame_values(face, noisy_face):
    preds, refs = [noisy_face, face, noisy_face[:, ::-1].copy()], [face, noisy_face, face]
    for metric_class, fn in ((L1Metric, l1), (MSEMetric, mse), (SSIMMetric, ssim)):
        per_frame, summary = run(metric_class, preds, refs)
        want = [fn(p, r) for p, r in zip(preds, refs)]
        assert [v[metric_class.name] for v in per_frame] == pytest.approx(want, rel=1e-12)
        assert summary == {metric_class.name: pytest.approx(np.mean(want), rel=1e-12)}
    _, skimage_summary = run(SSIMMetric, preds, refs, ssim_mode="skimage")
    assert skimage_summary["ssim"] == pytest.approx(np.mean([ssim(p, r, mode="skimage")
                                                             for p, r in zip(preds, refs)]))


def test_metric_names_needs_and_directions():
    assert [m.name for m in (L1Metric, MSEMetric, PSNRMetric, SSIMMetric)] == ["l1", "mse", "psnr", "ssim"]
    for metric_class in (L1Metric, MSEMetric, PSNRMetric, SSIMMetric):
        assert metric_class.needs == {"ref"} and metric_class.weights == ()
    assert L1Metric.higher_is_better == {"l1": False} and PSNRMetric.higher_is_better == {"psnr": True}
    assert SSIMMetric.higher_is_better == {"ssim": True} and MSEMetric.higher_is_better == {"mse": False}


def test_no_frames_gives_nan():
    for metric_class in (L1Metric, MSEMetric, SSIMMetric):
        assert math.isnan(metric_class(EvalContext()).compute()[metric_class.name])
    summary = PSNRMetric(EvalContext()).compute()
    assert math.isnan(summary["psnr"]) and summary["psnr_identical_frames"] == 0.0


@pytest.mark.parametrize("metric_class", [L1Metric, MSEMetric, PSNRMetric, SSIMMetric])
def test_frame_size_mismatch_is_an_input_error(metric_class):
    metric = metric_class(EvalContext())
    pred, ref = FrameView(np.zeros((64, 48, 3), np.uint8), 5), FrameView(np.zeros((64, 64, 3), np.uint8), 5)
    with pytest.raises(InputError, match=rf"{metric_class.name} \(frame 5\).*48x64x3.*64x64x3.*same size"):
        metric.update(pred, ref)


def test_bad_ssim_mode_option_is_an_input_error():
    with pytest.raises(InputError, match="ssim_mode"):
        SSIMMetric(EvalContext(options={"ssim_mode": "fast"}))


@pytest.mark.testdata
def test_real_video_against_itself_and_its_next_frame(shared_testdata):
    from faceanim.media.video import VideoReader

    with VideoReader(shared_testdata / "driving_256.mp4") as reader:
        video = list(itertools.islice(reader, 4))
    _, itself = run(PSNRMetric, video, video)
    assert itself == {"psnr": float("inf"), "psnr_identical_frames": 4.0}
    per_frame, summary = run(PSNRMetric, video[1:], video[:-1])
    assert summary["psnr_identical_frames"] == 0.0 and 15 < summary["psnr"] < 60
    assert summary["psnr"] == pytest.approx(np.mean([v["psnr"] for v in per_frame]))
    metrics = pytest.importorskip("skimage.metrics")
    want = metrics.structural_similarity(video[1], video[0], gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=255, channel_axis=-1)
    assert ssim(video[1], video[0], mode="skimage") == pytest.approx(want, abs=1e-10)
