"""OFM and F-MSE (Diffused Heads' smoothness_eval.py): still and translating videos, closed forms, and
an independent re-implementation of the official script's loop."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceanim.metrics.base import EvalContext, FrameView
from faceanim.metrics.smoothness import FMSEMetric, OFMMetric, wrapped_squared_difference


def _run(metric_class, frames):
    metric = metric_class(EvalContext())
    per_frame = [metric.update(FrameView(frame, index), None) for index, frame in enumerate(frames)]
    return per_frame, metric.compute()


def _official_script(frames_bgr):
    """The official per-video loop, written out again: resize to 128, grey, Farneback, per-pair min-max
    normalised magnitude in JET, and the uint8 squared difference; mean and std over everything."""
    previous = cv2.resize(frames_bgr[0], (128, 128))
    previous_grey = cv2.cvtColor(previous, cv2.COLOR_BGR2GRAY)
    magnitudes, squared = [], []
    for frame in frames_bgr[1:]:
        frame = cv2.resize(frame, (128, 128))
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        flow = cv2.calcOpticalFlowFarneback(previous_grey, grey, None, 0.5, 7, 5, 15, 5, 1.2, 0)
        magnitude, _ = cv2.cartToPolar(flow[..., 0], flow[..., 1])
        magnitude = cv2.normalize(magnitude, None, 0, 255, cv2.NORM_MINMAX)
        magnitudes.append(cv2.applyColorMap(magnitude.astype(np.uint8), cv2.COLORMAP_JET))
        squared.append((frame - previous) ** 2)
        previous_grey, previous = grey, frame
    magnitudes, squared = np.array(magnitudes), np.array(squared)
    return magnitudes.mean(), magnitudes.std(), squared.mean(), squared.std()


@pytest.fixture(scope="module")
def texture() -> np.ndarray:
    """A smooth random RGB texture (600x600), to cut moving windows from."""
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 255, (600, 600, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 3) * 3 - 255, 0, 255).astype(np.uint8)


def _panning(texture: np.ndarray, count: int, step: int, size: int = 256) -> list[np.ndarray]:
    return [np.ascontiguousarray(texture[100:100 + size, 50 + step * t: 50 + step * t + size])
            for t in range(count)]


def test_still_flat_video():
    frames = [np.full((96, 128, 3), 90, np.uint8)] * 4
    per_frame, ofm = _run(OFMMetric, frames)
    assert per_frame[0] == {} and len(per_frame) == 4
    assert ofm["flow_px"] == 0.0
    # zero motion is JET's dark blue (128, 0, 0) under the script's arithmetic
    assert ofm["ofm"] == pytest.approx(128 / 3) and ofm["ofm_std"] == pytest.approx(np.std([128, 0, 0]))
    _, fmse = _run(FMSEMetric, frames)
    assert fmse == {"fmse": 0.0, "fmse_std": 0.0, "frame_mse": 0.0}


def test_still_face_video(astronaut):
    # Farneback with 7 pyramid levels on 128 px frames finds a little spurious flow even between
    # identical textured frames (about 0.01 px on average)
    _, ofm = _run(OFMMetric, [astronaut] * 3)
    assert 0 <= ofm["flow_px"] < 0.05
    _, fmse = _run(FMSEMetric, [astronaut] * 3)
    assert fmse == {"fmse": 0.0, "fmse_std": 0.0, "frame_mse": 0.0}


def test_translation_flow_is_the_shift_at_128_px(texture):
    # 6 px per frame at 256 px is 3 px at the 128 px the flow is measured at
    per_frame, ofm = _run(OFMMetric, _panning(texture, 4, 6))
    assert ofm["flow_px"] == pytest.approx(3.0, rel=0.15)
    assert all(values["flow_px"] == pytest.approx(3.0, rel=0.15) for values in per_frame[1:])
    _, slower = _run(OFMMetric, _panning(texture, 4, 2))
    assert slower["flow_px"] == pytest.approx(1.0, rel=0.15)


@pytest.mark.parametrize("step", [3, 20, -3, 100])
def test_fmse_closed_form_for_constant_brightness_steps(step):
    frames = [np.full((64, 64, 3), 128 + step * (t - 1), np.uint8) for t in range(3)]
    per_frame, fmse = _run(FMSEMetric, frames)
    assert fmse["frame_mse"] == step ** 2
    assert fmse["fmse"] == (step % 256) ** 2 % 256 and fmse["fmse_std"] == 0.0  # the script's uint8 wrap
    assert [values["frame_mse"] for values in per_frame[1:]] == [step ** 2] * 2


def test_fmse_mean_and_std_over_all_values():
    # half the pixels change by 2 (square 4), half by 10 (square 100): mean 52, std 48
    first = np.zeros((128, 128, 3), np.uint8)  # 128 px: the script's resize leaves it unchanged
    second = first.copy()
    second[:64], second[64:] = 2, 10
    _, fmse = _run(FMSEMetric, [first, second])
    assert fmse["fmse"] == pytest.approx(52.0) and fmse["fmse_std"] == pytest.approx(48.0)
    assert fmse["frame_mse"] == pytest.approx(52.0)


def test_wrapped_square_is_uint8_arithmetic():
    a, b = np.array([5, 200, 0], np.uint8), np.array([0, 10, 17], np.uint8)
    np.testing.assert_array_equal(wrapped_squared_difference(a, b), [25, (190 * 190) % 256, (239 * 239) % 256])


def test_equals_the_official_script(texture, astronaut):
    rng = np.random.default_rng(1)
    frames = _panning(texture, 3, 4, size=200) + [cv2.resize(astronaut, (200, 200))]
    noisy = frames[-1].astype(int) + rng.integers(-20, 20, frames[-1].shape)
    frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    reference = _official_script([frame[..., ::-1].copy() for frame in frames])  # the script reads BGR
    _, ofm = _run(OFMMetric, frames)
    _, fmse = _run(FMSEMetric, frames)
    np.testing.assert_allclose([ofm["ofm"], ofm["ofm_std"], fmse["fmse"], fmse["fmse_std"]], reference,
                               rtol=1e-12)


def test_per_frame_ofm_averages_to_the_summary(texture):
    per_frame, ofm = _run(OFMMetric, _panning(texture, 4, 3))
    assert np.mean([values["ofm"] for values in per_frame[1:]]) == pytest.approx(ofm["ofm"], rel=1e-12)


def test_too_short_video_is_nan(astronaut):
    for metric_class in (OFMMetric, FMSEMetric):
        _, summary = _run(metric_class, [astronaut])
        assert all(np.isnan(value) for value in summary.values())
        _, empty = _run(metric_class, [])
        assert all(np.isnan(value) for value in empty.values())


def test_needs_only_the_prediction():
    assert OFMMetric.needs == frozenset() and FMSEMetric.needs == frozenset()
    assert OFMMetric.name == "ofm" and FMSEMetric.name == "fmse"
