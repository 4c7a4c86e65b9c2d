"""Benchmark: naive per-frame face detection + landmarks at full resolution vs `FaceTracker`.

Both figures include video decoding. The naive way runs dlib's HOG detector on every full-resolution
frame (first 10 frames only, it is slow); the tracker runs on the whole clip.

    python benchmarks/face_tracking.py [VIDEO]      (default ../shared/testdata/wild_1080p.mp4)
"""
from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from faceanim.face import FaceTracker, HOGDetector, LandmarkPredictor, fomm_box

DEFAULT_VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "wild_1080p.mp4"


def frames(path: Path) -> Iterator[np.ndarray]:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def naive_fps(path: Path, count: int = 10) -> float:
    detector, predictor = HOGDetector(), LandmarkPredictor()
    start = time.perf_counter()
    seen = 0
    for frame in itertools.islice(frames(path), count):
        for box in detector.detect(frame)[:1]:
            predictor(frame, box)
        seen += 1
    return seen / (time.perf_counter() - start)


def tracker_run(path: Path) -> tuple[float, FaceTracker, float]:
    """(frames per second, the tracker, mean crop-centre move between frames in % of the crop size)."""
    tracker = FaceTracker()
    LandmarkPredictor()  # models load once per process; keep loading out of the timing, as for naive
    start = time.perf_counter()
    boxes = []
    for frame, observation in tracker.track(frames(path)):
        if observation.found:
            boxes.append(fomm_box(observation.box, frame.shape[:2]))
    fps = tracker.summary().frames / (time.perf_counter() - start)
    centers = np.array([box.center for box in boxes])
    sizes = np.array([box.width for box in boxes])
    moves = np.linalg.norm(np.diff(centers, axis=0), axis=1) / sizes[1:] if len(boxes) > 1 else np.zeros(1)
    return fps, tracker, float(moves.mean() * 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", nargs="?", type=Path, default=DEFAULT_VIDEO)
    args = parser.parse_args()
    baseline = naive_fps(args.video)
    fps, tracker, move = tracker_run(args.video)
    print(f"video: {args.video}")
    print(f"naive full-res HOG + landmarks, first 10 frames: {baseline:6.1f} frames/s")
    print(f"FaceTracker, whole clip:                         {fps:6.1f} frames/s  ({tracker.summary()})")
    print(f"speed-up: {fps / baseline:.1f}x; mean crop-centre move {move:.2f} % of the crop size per frame")


if __name__ == "__main__":
    main()
