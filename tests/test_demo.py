"""`make demo` runs scripts/demo.py: playable talking-head and reenactment videos with the face in them."""
from __future__ import annotations

import subprocess
import sys

from faceanim.face import largest_face
from faceanim.media import VideoReader, read_audio

from .conftest import REPO


def test_demo_writes_playable_videos_with_a_face(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    speech = read_audio(REPO / "faceanim" / "assets" / "hello.ogg", sample_rate=None)
    for name, size in (("demo_talk.mp4", (512, 512)), ("demo_reenact.mp4", (256, 256)),
                       ("demo_track_crops.mp4", (256, 256))):
        assert str(tmp_path / name) in result.stdout
        with VideoReader(tmp_path / name) as video:
            assert (video.width, video.height) == size
            assert abs(video.frame_count / video.fps - speech.duration) <= 1 / video.fps + 1e-6
            if name != "demo_track_crops.mp4":
                assert video.has_audio
            for index, frame in enumerate(video):
                if index % 40 == 0:
                    largest_face(frame)  # raises NoFaceError if the face is gone
