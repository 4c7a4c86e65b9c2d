"""Speed of the `warp` engine end to end: output frames per second for a 512x512 source on this machine.

Reenact: driving landmarks are computed first (excluded, as the target says), then each output frame
is motion transfer + warp + H.264 encoding. Talk: speech analysis + idle motion + warps + encoding.
Baseline measured in the same run: encoding the unchanged source frame (the floor any method pays).
Target: >= 15 output frames/s on 2 cores.

    python benchmarks/warp_speed.py [DRIVING_VIDEO] [SPEECH]
"""
from __future__ import annotations

import itertools
import sys
import tempfile
import time
from pathlib import Path

from skimage.data import astronaut

from faceanim.media import VideoReader, VideoWriter, read_audio
from faceanim.methods.warp import WarpPipeline
from faceanim.methods.warp.conditioning import MotionTransfer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "testdata"
TARGET_FPS = 15.0


def timed_encode(frames, path, fps=25.0) -> tuple[float, int]:
    start, count = time.perf_counter(), 0
    with VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
            count += 1
    return time.perf_counter() - start, count


def main() -> None:
    driving_path = Path(sys.argv[1]) if len(sys.argv) > 1 else SHARED / "driving_256.mp4"
    speech_path = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parents[1] / "faceanim/assets/hello.ogg"
    photo = astronaut()
    pipeline = WarpPipeline()
    source = pipeline.prepare_source(photo)
    with VideoReader(driving_path) as reader:
        driving = [lm for lm in pipeline.driving_motion(itertools.islice(reader, 150)) if lm is not None]
    transfer = MotionTransfer(source.landmarks, driving[0])
    speech = read_audio(speech_path, sample_rate=None)
    with tempfile.TemporaryDirectory() as tmp:
        base_s, base_n = timed_encode((photo for _ in driving), Path(tmp) / "base.mp4")
        reenact_s, n = timed_encode((source.warper.warp(transfer(lm)) for lm in driving), Path(tmp) / "r.mp4")
        talk_s, talk_n = timed_encode(pipeline.talk(source, speech), Path(tmp) / "t.mp4")
    rows = [("baseline: encode the unchanged 512x512 photo", base_n / base_s),
            ("reenact: transfer + warp + encode", n / reenact_s),
            ("talk: speech + idle motion + warp + encode", talk_n / talk_s)]
    for label, fps in rows:
        print(f"{label:48s} {fps:6.1f} frames/s  ({fps / TARGET_FPS:4.1f}x the 15 fps target, "
              f"{fps / rows[0][1]:4.2f}x the baseline)")


if __name__ == "__main__":
    main()
