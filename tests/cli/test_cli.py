"""The command line: subcommands exist, unimplemented methods say so (exit 2), info reports the setup."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from faceanim.cli.main import main


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "faceanim", *argv], capture_output=True, text=True, timeout=300)


def test_help_lists_every_subcommand():
    out = run_cli("--help").stdout
    for command in ("reenact", "talk", "edit", "train", "preprocess", "evaluate", "convert", "info"):
        assert command in out


@pytest.mark.parametrize("argv", [
    ["edit", "a.mp4", "-o", "o.mp4", "--method", "emo"],
    ["talk", "a.png", "b.wav", "-o", "o.mp4", "--method", "dva"],
    ["train", "emo", "--data", "x", "-o", "out"],
])
def test_unimplemented_features_say_so(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("faceanim: error:") and "\n" not in err
    assert "not implemented" in err or "does not do" in err
    assert not (tmp_path / "o.mp4").exists()


def test_info_reports_versions_device_methods_and_weights(tmp_path):
    ck = tmp_path / "ck.pth.tar"
    torch.save({"generator": {"module.w": torch.zeros(2, 3)}, "epoch": 3}, ck)
    result = run_cli("info", "--json", "--checkpoint", str(ck))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["packages"]["torch"].startswith("2.")
    assert info["runtime"]["device"] in ("cpu", "cuda", "mps") and info["runtime"]["threads"] >= 1
    assert set(info["methods"]) == {"warp", "dagan", "fomm", "facevid", "fadm", "diffused_heads", "emo", "dva"}
    assert info["weights"]["dlib"]["shape_predictor_68_face_landmarks.dat"].startswith("found")
    assert "FACEANIM_DAGAN_CHECKPOINT" in info["weights"]["dagan.checkpoint"]
    assert "--inception" in info["weights"]["metrics.inception"] and "FACEANIM_SYNCNET" in info["weights"]["metrics.syncnet"]
    (described,) = info["checkpoints"]
    assert len(described["sha256"]) == 64 and described["components"]["generator"].startswith("1 tensors")
    text = run_cli("info").stdout
    assert "methods:" in text and "dagan" in text


def test_verbose_checkpoint_loading_prints_sha256(tmp_path):
    ck = tmp_path / "ck.pth"
    torch.save({"w": torch.ones(1)}, ck)
    result = run_cli("-v", "info", "--checkpoint", str(ck))
    from faceanim.checkpoints import sha256
    assert sha256(ck) in result.stderr
