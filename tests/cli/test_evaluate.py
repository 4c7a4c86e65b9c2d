"""`faceanim evaluate` from the command line: reports, errors, --list, --benchmark, and the acceptance
checks on the real driving clip."""
from __future__ import annotations

import itertools
import json

import cv2
import pytest

from faceanim.cli.main import main
from faceanim.media import VideoReader, write_image
from faceanim.metrics.catalog import METRICS
from tests.conftest import write_face_clip


def summary(report) -> dict:
    data = json.loads((report / "metrics.json").read_text())
    return {key: value for values in data["metrics"].values() for key, value in values.items()}


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory, astronaut):
    return write_face_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", astronaut, frames=6)


def test_list_names_every_metric(capsys):
    assert main(["evaluate", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in METRICS) and "--inception" in out and "--syncnet" in out


def test_video_against_itself_writes_a_report(short_clip, tmp_path, capsys):
    report = tmp_path / "report"
    argv = ["evaluate", "--pred", str(short_clip), "--ref", str(short_clip), "-o", str(report),
            "--metrics", "l1,psnr,akd,csim,lip_audio"]
    assert main(argv) == 0
    values = summary(report)
    assert values["l1"] == 0 and values["psnr"] == "inf" and values["akd"] == 0 and values["csim"] == pytest.approx(1)
    assert "lip_audio_corr" in values   # the clip's own soundtrack is the audio
    out = capsys.readouterr().out
    assert "| psnr | ∞ |" in out and f"wrote {report}" in out
    assert {p.name for p in (report / "plots").iterdir()} >= {"l1.png", "psnr.png", "akd.png", "csim.png"}


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--ref", "x.mp4"], "evaluate needs --pred"),
    (["evaluate", "--pred", "{clip}", "--metrics", "l1,nope"], "unknown metric 'nope'"),
    (["evaluate", "--pred", "{clip}", "--metrics", "l1"], "metric l1 needs --ref"),
    (["evaluate", "--pred", "{clip}", "--ref", "{clip}", "--metrics", "fid"], "--inception"),
    (["evaluate", "--pred", "missing.mp4", "--ref", "{clip}"], "missing.mp4"),
])
def test_bad_requests_exit_2_with_one_line_and_no_report(argv, message, short_clip, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FACEANIM_FID_INCEPTION", raising=False)
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{clip}", str(short_clip)) for a in argv] + ["-o", "report"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("faceanim: error:") and "\n" not in err and message in err
    assert not (tmp_path / "report").exists()


def test_benchmark_times_a_method_and_evaluates_its_output(short_clip, tmp_path, astronaut):
    photo = write_image(tmp_path / "face.png", astronaut)
    report, video = tmp_path / "report", tmp_path / "out.mp4"
    argv = ["evaluate", "--source", str(photo), "--metrics", "csim,fmse", "-o", str(report),
            "--benchmark", "reenact", str(photo), str(short_clip), "-o", str(video), "--method", "warp"]
    assert main(argv) == 0
    data = json.loads((report / "metrics.json").read_text())
    bench = data["benchmark"]
    assert bench["frames"] == 6 and bench["seconds_per_frame"] > 0 and bench["peak_rss_mib"] > 100
    assert bench["command"].startswith("faceanim reenact") and data["pred"] == str(video)
    assert set(data["metrics"]) == {"csim", "fmse"} and data["frames"] == 6
    assert data["metrics"]["csim"]["csim"] > 0.9   # the warp engine keeps the source's identity
    assert "seconds per frame" in (report / "metrics.md").read_text()


@pytest.mark.testdata
@pytest.mark.slow
def test_acceptance_on_the_driving_clip(shared_testdata, tmp_path):
    """The driving clip against itself: L1 0, PSNR inf, AKD 0, CSIM 1; against shifted and blurred copies
    of itself the metrics order them."""
    clip = shared_testdata / "driving_256.mp4"
    frames = 25
    copies = {"shift": lambda f: cv2.warpAffine(f, cv2.getRotationMatrix2D((0, 0), 0, 1) + [[0, 0, 6], [0, 0, 6]],
                                                (256, 256), borderMode=cv2.BORDER_REFLECT),
              "blur": lambda f: cv2.GaussianBlur(f, (0, 0), 2.0)}
    for name, change in copies.items():
        with VideoReader(clip) as reader:
            for index, frame in enumerate(itertools.islice(reader, frames)):
                write_image(tmp_path / name / f"{index:04d}.png", change(frame))
    metrics = "l1,psnr,ssim,akd,csim,aed,pose"
    values = {}
    for name, pred in (("self", clip), ("blur", tmp_path / "blur"), ("shift", tmp_path / "shift")):
        report = tmp_path / f"report_{name}"
        assert main(["evaluate", "--pred", str(pred), "--ref", str(clip), "--metrics", metrics,
                     "--max-frames", str(frames), "-o", str(report)]) == 0
        values[name] = summary(report)
    assert values["self"]["l1"] == 0 and values["self"]["psnr"] == "inf" and values["self"]["akd"] == 0
    assert values["self"]["csim"] == pytest.approx(1.0) and values["self"]["akd_missing"] == 0
    for degraded in ("blur", "shift"):
        assert values[degraded]["l1"] > 0 and values[degraded]["psnr"] < 60
        assert values[degraded]["ssim"] < values["self"]["ssim"]
        assert values[degraded]["csim"] < values["self"]["csim"]
    assert values["shift"]["akd"] == pytest.approx(6 * 2 ** 0.5, abs=2.5) and values["blur"]["akd"] < values["shift"]["akd"]
