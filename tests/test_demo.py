"""`make demo` runs scripts/demo.py: it must produce playable videos with the face in them."""
from __future__ import annotations

import subprocess
import sys

from faceanim.face import largest_face
from faceanim.media import VideoReader

from .conftest import REPO


def test_demo_writes_playable_videos_with_a_face(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(tmp_path),
                             "--frames", "20"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name, size in (("demo_track_pasteback.mp4", (640, 480)), ("demo_track_crops.mp4", (256, 256))):
        assert str(tmp_path / name) in result.stdout
        with VideoReader(tmp_path / name) as video:
            assert (video.width, video.height) == size and video.frame_count == 20
            frames = list(zip(range(20), video))
        for _, frame in frames[::6]:
            largest_face(frame)  # raises NoFaceError if the face is gone
