"""`faceanim preprocess`: dataset layout, missing-face frames, resume, parallel workers, skipped clips,
and the acceptance figures on the real 1080p clip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from faceanim.cli.main import main
from faceanim.media import read_audio, read_image


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["preprocess", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_clip_layout(tmp_path, face_clip, capsys):
    code, out, _ = run(capsys, face_clip, "--out", tmp_path / "ds", "--audio", "--size", "128")
    assert code == 0 and "face in 35/40 frames" in out
    clip = tmp_path / "ds" / face_clip.stem
    meta = json.loads((clip / "meta.json").read_text())
    assert meta["frames"] == 40 and meta["found"] == 35 and meta["missing_ranges"] == ["15-19"]
    assert meta["fps"] == 25 and meta["frame_size"] == [480, 640] and meta["audio"]
    frames = sorted((clip / "frames").iterdir())
    assert len(frames) == 40 and read_image(frames[0]).shape == (128, 128, 3)
    found, landmarks = np.load(clip / "found.npy"), np.load(clip / "landmarks.npy")
    frame_landmarks, transforms = np.load(clip / "frame_landmarks.npy"), np.load(clip / "transforms.npy")
    assert found.tolist() == [i not in range(15, 20) for i in range(40)]
    assert landmarks.shape == (40, 68, 2) and transforms.shape == (40, 2, 3) and np.load(clip / "boxes.npy").shape == (40, 4)
    # crop landmarks are the frame landmarks under each frame's transform, and lie inside the crop
    mapped = np.einsum("nij,nkj->nki", transforms[:, :, :2], frame_landmarks) + transforms[:, None, :, 2]
    assert np.allclose(mapped, landmarks, atol=1e-3)
    assert landmarks.min() > 0 and landmarks.max() < 128
    audio = read_audio(clip / "audio.wav", sample_rate=None)
    assert audio.sample_rate == 16000 and abs(audio.duration - 40 / 25) < 0.01


def test_resume_skips_finished_clips_and_cleans_stale_temporaries(tmp_path, face_clip, capsys):
    out = tmp_path / "ds"
    assert run(capsys, face_clip, "--out", out)[0] == 0
    first = (out / face_clip.stem / "meta.json").stat().st_mtime_ns
    stale = out / f".{face_clip.stem}.abc123.tmp"   # what a killed run leaves behind
    stale.mkdir()
    code, text, _ = run(capsys, face_clip, "--out", out)
    assert code == 0 and "1 already done" in text
    assert (out / face_clip.stem / "meta.json").stat().st_mtime_ns == first
    code, text, _ = run(capsys, face_clip, "--out", out, "--overwrite")
    assert "1 clips done" in text and (out / face_clip.stem / "meta.json").stat().st_mtime_ns != first
    assert not stale.exists()


def test_batch_with_workers_reports_skipped_clips(tmp_path, face_clip, faceless_clip, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    code, text, _ = run(capsys, face_clip, faceless_clip, broken, "--out", tmp_path / "ds", "--workers", "2",
                        "--crop", "ffhq")
    assert code == 0
    assert "1 clips done, 0 already done, 2 skipped" in text
    assert f"skipped  {faceless_clip}: " in text and "no face found" in text
    assert f"skipped  {broken}: " in text
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == [face_clip.stem]


def test_single_failing_clip_exits_2_with_one_line(tmp_path, faceless_clip, capsys):
    code, out, err = run(capsys, faceless_clip, "--out", tmp_path / "ds")
    assert code == 2 and err.count("\n") == 1 and "no_face.mp4" in err and "no face found" in err
    assert list((tmp_path / "ds").iterdir()) == []


def test_fixed_crop_window_holds_still(tmp_path, face_clip, capsys):
    assert run(capsys, face_clip, "--out", tmp_path / "ds", "--crop-motion", "fixed")[0] == 0
    boxes = np.load(tmp_path / "ds" / face_clip.stem / "boxes.npy")
    assert np.ptp(boxes, axis=0).max() < 1e-3


@pytest.mark.slow
def test_acceptance_on_the_1080p_clip(tmp_path, shared_testdata, capsys):
    code, _, _ = run(capsys, shared_testdata / "wild_1080p.mp4", "--out", tmp_path / "ds")
    assert code == 0
    clip = tmp_path / "ds" / "wild_1080p"
    found, boxes = np.load(clip / "found.npy"), np.load(clip / "boxes.npy")
    assert found.mean() >= 0.95
    centres, sides = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2] - boxes[:, 0]
    movement = np.linalg.norm(np.diff(centres, axis=0), axis=1) / sides[1:]
    assert movement.mean() < 0.02
    # the crop shows the face: its landmarks sit in the middle of the crop
    landmarks = np.load(clip / "landmarks.npy")
    assert np.abs(landmarks.mean(axis=1) - 128).max() < 40
