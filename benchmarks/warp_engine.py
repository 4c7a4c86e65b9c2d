"""Benchmark: per-frame cost of the `warp` method's landmark warper against a naive dense warp.

For each source (a 256x256 face crop and the 512x512 astronaut photo from scikit-image, and the first
frame of a 1080p video with a ~370 px face when it is there) the same 60 targets (a talking mouth,
a nodding and turning head) are warped by
  (a) naive: a piecewise-affine map over the whole image at full resolution - every pixel gets its
      triangle (landmarks + image corners, Delaunay) and its affine source position, then one remap;
  (b) ours: `LandmarkWarper.warp` (face region only, field at working resolution, mouth painted).
Setup (face detection, `LandmarkWarper.__init__`) is not timed; both figures are milliseconds per frame.

    python benchmarks/warp_engine.py [VIDEO]      (default ../shared/testdata/wild_1080p.mp4; optional)
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import av
import cv2
import numpy as np
from scipy.spatial import Delaunay
from skimage import data

from faceanim.face import largest_face
from faceanim.methods.warp.model import LandmarkWarper

DEFAULT_VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "wild_1080p.mp4"
FRAMES = 60


def talking_targets(landmarks: np.ndarray, count: int = FRAMES) -> list[np.ndarray]:
    """Targets that open and close the mouth, nod and turn the head a little."""
    height = float(np.linalg.norm(landmarks[8] - landmarks[27]))
    centre = landmarks.mean(axis=0)
    jaw = np.zeros(68)
    jaw[3:14] = np.interp(np.arange(3, 14), [3, 8, 13], [0.15, 1.0, 0.15])
    jaw[[55, 56, 57, 58, 59, 65, 66, 67]] = 1.0
    targets = []
    for index in range(count):
        phase = 2 * np.pi * index / 25
        target = landmarks.copy()
        target[:, 1] += jaw * height * 0.12 * (1 + np.sin(phase)) / 2
        angle = np.radians(4 * np.sin(phase / 3))
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        targets.append((target - centre) @ rotation.T + centre + [0.02 * height * np.sin(phase / 2), 0])
    return targets


def naive_warper(image: np.ndarray, landmarks: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A full-image dense piecewise-affine warp (the baseline)."""
    height, width = image.shape[:2]
    frame = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1],
                      [width / 2, 0], [width / 2, height - 1], [0, height / 2], [width - 1, height / 2]])
    source = np.vstack([landmarks, frame])
    triangles = Delaunay(source).simplices
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))

    def warp(target: np.ndarray) -> np.ndarray:
        moved = np.vstack([target, frame])
        labels = np.zeros((height, width), dtype=np.int32)
        table = np.zeros((len(triangles), 6), dtype=np.float32)
        for index, triangle in enumerate(triangles):
            table[index] = cv2.getAffineTransform(moved[triangle].astype(np.float32),
                                                  source[triangle].astype(np.float32)).ravel()
            cv2.fillConvexPoly(labels, np.rint(moved[triangle] * 16).astype(np.int32), index, shift=4)
        coefficients = table[labels]
        map_x = coefficients[..., 0] * xs + coefficients[..., 1] * ys + coefficients[..., 2]
        map_y = coefficients[..., 3] * xs + coefficients[..., 4] * ys + coefficients[..., 5]
        return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    return warp


def ms_per_frame(warp: Callable[[np.ndarray], np.ndarray], targets: list[np.ndarray]) -> float:
    warp(targets[0])  # first-call allocations out of the timing
    start = time.perf_counter()
    for target in targets:
        warp(target)
    return (time.perf_counter() - start) / len(targets) * 1000


def sources(video: Path) -> list[tuple[str, np.ndarray]]:
    astronaut = np.ascontiguousarray(data.astronaut())
    box, _ = largest_face(astronaut)
    cx, cy = (int(round(v)) for v in box.center)
    side = int(round(box.width * 2.2))
    top, left = max(cy - side // 2, 0), max(cx - side // 2, 0)
    crop = cv2.resize(astronaut[top:top + side, left:left + side], (256, 256), interpolation=cv2.INTER_AREA)
    found = [("256x256 face crop", crop), ("512x512 astronaut", astronaut)]
    if video.is_file():
        with av.open(str(video)) as container:
            found.append((f"1920x1080 {video.name}", next(container.decode(video=0)).to_ndarray(format="rgb24")))
    else:
        print(f"({video} not found: no 1080p figure)")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video", nargs="?", type=Path, default=DEFAULT_VIDEO)
    args = parser.parse_args()
    print(f"{'source':<28}{'ROI':>12}{'naive ms':>10}{'ours ms':>9}{'speed-up':>10}")
    for name, image in sources(args.video):
        _, landmarks = largest_face(image)
        targets = talking_targets(landmarks.astype(np.float64))
        ours = LandmarkWarper(image, landmarks)
        x0, y0, x1, y1 = ours.roi
        naive = ms_per_frame(naive_warper(image, landmarks.astype(np.float64)), targets)
        fast = ms_per_frame(ours.warp, targets)
        print(f"{name:<28}{f'{x1 - x0}x{y1 - y0}':>12}{naive:>10.1f}{fast:>9.1f}{naive / fast:>9.1f}x")


if __name__ == "__main__":
    main()
