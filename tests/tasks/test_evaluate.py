"""`faceanim.tasks.evaluate`: streaming a prediction and a reference through the metrics, the protocols,
metric selection, and the report files."""
from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest

from faceanim.errors import InputError, MissingWeightsError
from faceanim.media import write_image
from faceanim.tasks.evaluate import evaluate, select_metrics, write_evaluation

FACE_METRICS = ["l1", "mse", "psnr", "ssim", "akd", "aed", "csim", "pose"]


def face_frames(astronaut: np.ndarray, count: int = 4) -> list[np.ndarray]:
    """`count` 256x256 crops around the astronaut's face, the camera drifting a few pixels."""
    return [np.ascontiguousarray(astronaut[20 + 2 * i: 276 + 2 * i, 100 + 3 * i: 356 + 3 * i]) for i in range(count)]


def write_folder(folder, frames) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        write_image(folder / f"frame_{index}.png", frame)
    return str(folder)


def shifted(frame: np.ndarray, pixels: float) -> np.ndarray:
    matrix = np.float32([[1, 0, pixels], [0, 1, pixels]])
    return cv2.warpAffine(frame, matrix, frame.shape[1::-1], borderMode=cv2.BORDER_REFLECT)


def blurred(frame: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(frame, (0, 0), sigma)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, astronaut):
    root = tmp_path_factory.mktemp("evaluate")
    frames = face_frames(astronaut)
    copies = {"same": frames, "blur1": [blurred(f, 1.0) for f in frames], "blur3": [blurred(f, 3.0) for f in frames],
              "shift3": [shifted(f, 3) for f in frames], "shift8": [shifted(f, 8) for f in frames]}
    return {name: write_folder(root / name, copy) for name, copy in copies.items()}


def test_a_video_against_itself_is_perfect(reference):
    result = evaluate(reference["same"], reference["same"], metrics=FACE_METRICS)
    assert result.frames == 4 and result.info["protocol"] == "reconstruction"
    summary = {key: value for values in result.summary.values() for key, value in values.items()}
    assert summary["l1"] == 0 and summary["mse"] == 0 and summary["psnr"] == math.inf
    assert summary["ssim"] == pytest.approx(1.0) and summary["akd"] == 0 and summary["aed"] == 0
    assert summary["csim"] == pytest.approx(1.0) and summary["pose_error"] == 0
    assert summary["akd_missing"] == 0   # the face was found in every frame
    assert len(result.per_frame["l1"]) == 4 and result.groups["psnr"] == ["psnr"]


def test_degraded_copies_are_ordered(reference):
    results = {name: evaluate(path, reference["same"], metrics=FACE_METRICS)
               for name, path in reference.items()}
    value = {name: {k: v for vals in r.summary.values() for k, v in vals.items()} for name, r in results.items()}
    for weak, strong in (("blur1", "blur3"), ("shift3", "shift8")):
        assert 0 == value["same"]["l1"] < value[weak]["l1"] < value[strong]["l1"]
        assert math.inf == value["same"]["psnr"] > value[weak]["psnr"] > value[strong]["psnr"]
        assert value["same"]["ssim"] > value[weak]["ssim"] > value[strong]["ssim"]
    # landmarks follow the shift (about 3*sqrt(2) and 8*sqrt(2) pixels) and barely move under blur
    assert value["shift3"]["akd"] == pytest.approx(3 * 2 ** 0.5, abs=1.5)
    assert value["shift8"]["akd"] == pytest.approx(8 * 2 ** 0.5, abs=2.0)
    assert value["blur1"]["akd"] < value["shift3"]["akd"]
    assert value["same"]["csim"] > value["blur3"]["csim"]


def test_cross_identity_compares_identity_with_the_source(reference, tmp_path, astronaut):
    source = write_image(tmp_path / "source.png", face_frames(astronaut, 1)[0])   # = frame 0 of "same"
    cross = evaluate(reference["same"], reference["shift8"], source=source, metrics=["csim", "aed", "akd"])
    assert cross.info["protocol"] == "cross-identity"
    assert cross.per_frame["csim"][0] == pytest.approx(1.0) and cross.per_frame["aed"][0] == 0
    assert cross.per_frame["akd"][0] > 5   # motion is still measured against the reference (driving) video
    reconstruction = evaluate(reference["same"], reference["shift8"], metrics=["csim"])
    assert reconstruction.per_frame["csim"][0] < 1 - 1e-4


def test_default_selection_skips_what_cannot_run_and_says_why(monkeypatch):
    for spec in ("FACEANIM_LPIPS_WEIGHTS", "FACEANIM_FID_INCEPTION", "FACEANIM_SYNCNET"):
        monkeypatch.delenv(spec, raising=False)
    chosen, skipped = select_metrics(None, {"ref"}, {})
    names = {metric.name for metric in chosen}
    assert {"l1", "psnr", "ssim", "akd", "csim", "ofm", "fmse"} <= names
    assert "--lpips-weights" in skipped["lpips"] and "--inception" in skipped["fid"]
    assert skipped["lse"] == "needs --audio"
    _, skipped = select_metrics(None, set(), {})
    assert skipped["csim"] == "needs --ref or --source" and skipped["l1"] == "needs --ref"


def test_asked_for_metrics_must_be_runnable(monkeypatch):
    monkeypatch.delenv("FACEANIM_FID_INCEPTION", raising=False)
    with pytest.raises(MissingWeightsError, match="--inception"):
        select_metrics(["fid"], {"ref"}, {})
    with pytest.raises(InputError, match="metric lse needs --audio"):
        select_metrics(["lse"], {"ref"}, {})
    with pytest.raises(InputError, match="unknown metric 'nope'"):
        select_metrics(["nope"], {"ref"}, {})


def test_sizes_must_agree_unless_resized(reference, tmp_path, astronaut):
    small = write_folder(tmp_path / "small", [cv2.resize(f, (128, 128)) for f in face_frames(astronaut)])
    with pytest.raises(InputError, match="128x128 but the reference's are 256x256.*--resize"):
        evaluate(small, reference["same"], metrics=["l1"])
    result = evaluate(small, reference["same"], metrics=["l1"], resize=True)
    assert 0 < result.summary["l1"]["l1"] < 0.05


def test_the_shorter_input_sets_the_length_and_max_frames_cuts(reference, tmp_path, astronaut):
    longer = write_folder(tmp_path / "longer", face_frames(astronaut, 6))
    assert evaluate(longer, reference["same"], metrics=["l1"]).frames == 4
    assert evaluate(longer, reference["same"], metrics=["l1"], max_frames=2).frames == 2


def test_report_files(reference, tmp_path):
    result = evaluate(reference["shift3"], reference["same"], metrics=["l1", "psnr", "akd", "ofm"])
    out = tmp_path / "report"
    table = write_evaluation(result, out)
    data = json.loads((out / "metrics.json").read_text())
    assert data["frames"] == 4 and data["protocol"] == "reconstruction"
    assert set(data["metrics"]) == {"l1", "psnr", "akd", "ofm"}
    assert len(data["per_frame"]["l1"]) == 4 and data["per_frame"]["ofm"][0] is None   # no flow into frame 0
    assert "| l1 |" in table and table == (out / "metrics.md").read_text()
    rows = list(csv.reader(open(out / "per_frame.csv")))
    assert rows[0][:2] == ["frame", "l1"] and len(rows) == 5
    for name in ("l1", "psnr", "akd", "ofm"):
        png = cv2.imread(str(out / "plots" / f"{name}.png"))
        assert png is not None and png.shape[0] > 100 and png.std() > 0


def test_infinite_values_are_reported_as_such(reference, tmp_path):
    result = evaluate(reference["same"], reference["same"], metrics=["psnr"])
    write_evaluation(result, tmp_path / "r")
    data = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert data["metrics"]["psnr"]["psnr"] == "inf" and data["per_frame"]["psnr"] == ["inf"] * 4
    assert "| psnr | ∞ |" in (tmp_path / "r" / "metrics.md").read_text()
    assert (tmp_path / "r" / "plots" / "psnr.png").is_file()   # a plot that says the frames are infinite


def test_a_failed_evaluation_leaves_no_report(reference, tmp_path):
    out = tmp_path / "report"
    with pytest.raises(InputError):
        evaluate(str(tmp_path / "missing.mp4"), reference["same"])
    assert not out.exists()
