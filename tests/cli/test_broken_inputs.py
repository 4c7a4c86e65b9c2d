"""The broken-input battery at the command line: every broken file makes the commands that read it
exit 2 with one line naming the file, no traceback, and no output file left behind."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from faceanim.cli.main import main
from tests.media.broken_inputs import make_broken_inputs



@pytest.fixture(scope="module")
def battery(tmp_path_factory):
    return make_broken_inputs(tmp_path_factory.mktemp("broken"))


def _check_one_line(err: str, name: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("faceanim: error: ") and name in lines[0] and "Traceback" not in err


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_battery_is_large_enough(battery):
    assert len(battery) >= 30
    assert {b.kind for b in battery} == {"image", "video", "audio"}


def test_probe_rejects_every_broken_input(battery, capsys):
    for item in battery:
        if not item.probe_detects:
            continue
        code = main(["probe", "--expect", item.kind, str(item.path)])
        _check_one_line(capsys.readouterr().err, item.path.name)
        assert code == 2, item.name


def _valid_picture(path: Path) -> bool:
    """Broken only as the other kind (a photo named as a video): `track` takes photos and videos."""
    from faceanim.errors import InputError
    from faceanim.media import probe

    try:
        return probe(path).kind in ("image", "video")
    except InputError:
        return False


def test_track_rejects_broken_pictures_and_leaves_no_output(battery, tmp_path, capsys):
    for item in battery:
        if item.kind == "audio" or _valid_picture(item.path):
            continue
        out = tmp_path / item.name.replace(".", "_")
        out.mkdir()
        suffix = ".png" if item.kind == "image" else ".mp4"
        code = main(["track", str(item.path), "-o", str(out / f"result{suffix}"), "--crops", str(out / f"crops{suffix}")])
        _check_one_line(capsys.readouterr().err, item.path.name)
        assert code == 2, item.name
        assert _leftovers(out) == [], item.name


def test_preprocess_rejects_broken_videos_and_leaves_no_clip(battery, tmp_path, capsys):
    for item in battery:
        if item.kind != "video" or not item.path.is_file():
            continue
        out = tmp_path / f"ds_{item.name}"
        code = main(["preprocess", str(item.path), "--out", str(out), "--audio"])
        _check_one_line(capsys.readouterr().err, item.path.name)
        assert code == 2, item.name
        assert _leftovers(out) == [], item.name


def test_video_without_a_face(faceless_clip, tmp_path, capsys):
    code = main(["track", str(faceless_clip), "-o", str(tmp_path / "out.mp4")])
    err = capsys.readouterr().err
    _check_one_line(err, faceless_clip.name)
    assert code == 2 and "no face found in any of its 20 frames" in err
    assert _leftovers(tmp_path) == []


def test_photo_without_a_face(tmp_path, capsys):
    import numpy as np

    from faceanim.media import write_image

    blank = write_image(tmp_path / "wall.png", np.full((200, 300, 3), 90, np.uint8))
    code = main(["track", str(blank), "-o", str(tmp_path / "out.png")])
    _check_one_line(capsys.readouterr().err, "wall.png")
    assert code == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["wall.png"]


def test_wrong_kinds_of_input_and_output(face_clip, tmp_path, capsys):
    cases = [
        (["track", str(face_clip), "-o", str(tmp_path / "out.png")], "must end in"),
        (["track", str(face_clip), "-o", str(tmp_path / "out.mp4"), "--reference", str(tmp_path / "nobody.png")],
         "nobody.png"),
        (["preprocess", str(tmp_path / "missing_folder"), "--out", str(tmp_path / "ds")], "no such file"),
        (["preprocess", str(face_clip), "--out", str(tmp_path / "ds"), "--size", "4"], "--size"),
    ]
    for argv, needle in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("kind", ["video", "image", "audio"])
def test_real_process_exit_code_and_stderr(battery, tmp_path, kind):
    """Through a real process: exit status 2 and a single stderr line (no traceback from any layer)."""
    item = next(b for b in battery if b.kind == kind and b.path.is_file() and b.probe_detects)
    command = ["probe", "--expect", "audio", str(item.path)] if kind == "audio" else \
        ["track", str(item.path), "-o", str(tmp_path / ("o.png" if kind == "image" else "o.mp4"))]
    result = subprocess.run([sys.executable, "-m", "faceanim", *command], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    _check_one_line(result.stderr, item.path.name)
    assert not any(tmp_path.iterdir())


def test_silent_audio_is_valid(tmp_path, capsys):
    import numpy as np

    from faceanim.media import Audio, write_wav

    silent = write_wav(tmp_path / "silence.wav", Audio(np.zeros(16000, np.float32), 16000))
    assert main(["probe", str(silent)]) == 0
    assert '"kind": "audio"' in capsys.readouterr().out
