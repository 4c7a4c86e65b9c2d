"""`faceanim preprocess`: raw videos -> a training dataset, one folder per clip.

Layout of a clip folder (`DATASET/<clip_id>/`):
    frames/000000.png ...   face crops (size x size RGB), one per video frame
    landmarks.npy           (N, 68, 2) float32, in crop pixels
    frame_landmarks.npy     (N, 68, 2) float32, in source-frame pixels
    boxes.npy               (N, 4) float32, the crop window in the source frame (left, top, right, bottom)
    transforms.npy          (N, 2, 3) float64, source frame -> crop affine
    found.npy               (N,) bool, face found on that frame (else landmarks are interpolated)
    audio.wav               16 kHz mono PCM (with --audio and an audio track)
    meta.json               source, fps, sizes, options, missing-face ranges; written last
A clip is finished when its folder exists (folders are written under a temporary name and renamed),
so an interrupted run resumes by skipping finished clips.
"""
from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import FaceanimError, InputError, NoFaceError
from ..face.video import CROP_KINDS, SQUARE_CROP
from ..fileio import atomic_path
from ..progress import progress

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ts"}
AUDIO_RATE = 16_000


@dataclass(frozen=True)
class PreprocessOptions:
    crop: str = SQUARE_CROP           # one of CROP_KINDS
    size: int = 256
    crop_motion: str = "smooth"       # "smooth" (follows the face) | "fixed" (one window per clip, fomm only)
    audio: bool = False
    fps: float | None = None
    min_face_fraction: float = 0.5
    overwrite: bool = False
    detector: str = "hog"             # "hog" | "mmod"

    def __post_init__(self):
        if self.crop not in CROP_KINDS:
            raise InputError(None, f"--crop must be one of {', '.join(CROP_KINDS)}, not {self.crop!r}")
        if self.crop_motion not in ("smooth", "fixed") or (self.crop_motion == "fixed" and self.crop != SQUARE_CROP):
            raise InputError(None, f"--crop-motion {self.crop_motion} is not available with --crop {self.crop}")
        if not 16 <= self.size <= 2048:
            raise InputError(None, f"--size must be between 16 and 2048, not {self.size}")
        if self.detector not in ("hog", "mmod"):
            raise InputError(None, f"--detector must be hog or mmod, not {self.detector!r}")
        if not 0 <= self.min_face_fraction <= 1:
            raise InputError(None, "--min-face-fraction must be between 0 and 1")


@dataclass
class ClipResult:
    source: str
    clip_id: str
    status: str          # "done" | "already done" | "skipped"
    reason: str = ""
    frames: int = 0
    found: int = 0


def find_videos(inputs: list[str]) -> list[Path]:
    """Files as given (any suffix: the decoder decides), folders searched recursively for video suffixes."""
    videos = []
    for item in map(Path, inputs):
        if item.is_dir():
            videos += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        elif item.exists():
            videos.append(item)
        else:
            raise InputError(item, "no such file or folder")
    if not videos:
        raise InputError(inputs[0], "no video files found")
    return videos


def clip_ids(videos: list[Path]) -> list[str]:
    """A folder name per video: its stem, with the parent folder's name prepended where stems repeat."""
    stems = [v.stem for v in videos]
    ids = [f"{v.parent.name}_{v.stem}" if stems.count(v.stem) > 1 else v.stem for v in videos]
    seen: dict[str, int] = {}
    for i, name in enumerate(ids):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            ids[i] = f"{name}_{seen[name]}"
    return ids


def _is_finished(clip_dir: Path, opts: PreprocessOptions) -> bool:
    meta = clip_dir / "meta.json"
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()).get("options") == asdict(opts) | {"overwrite": False}
    except (json.JSONDecodeError, OSError):
        return False


def preprocess(inputs: list[str], out: str | os.PathLike, opts: PreprocessOptions, *, workers: int = 1) -> int:
    """Process every video; print a summary. Exit code 0 if any clip is finished, else 2."""
    videos = find_videos(inputs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs, results = [], []
    for video, clip_id in zip(videos, clip_ids(videos)):
        if not opts.overwrite and _is_finished(out / clip_id, opts):
            results.append(ClipResult(str(video), clip_id, "already done"))
        else:
            jobs.append((video, out / clip_id))
    results += _run_jobs(jobs, opts, workers)
    return _report(results, out, single=len(videos) == 1)


def _run_jobs(jobs: list[tuple[Path, Path]], opts: PreprocessOptions, workers: int) -> list[ClipResult]:
    if workers <= 1 or len(jobs) <= 1:
        return [process_clip_safely(v, d, opts) for v, d in progress(jobs, total=len(jobs), desc="clips", unit="clip")]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(process_clip_safely, v, d, opts) for v, d in jobs]
        return [f.result() for f in progress(as_completed(futures), total=len(futures), desc="clips", unit="clip")]


def process_clip_safely(video: Path, clip_dir: Path, opts: PreprocessOptions) -> ClipResult:
    """Run `process_clip`; a problem with this one input becomes a skipped result, not a crash."""
    try:
        return process_clip(video, clip_dir, opts)
    except FaceanimError as err:
        return ClipResult(str(video), clip_dir.name, "skipped", reason=str(err))


def _report(results: list[ClipResult], out: Path, *, single: bool) -> int:
    skipped = [r for r in results if r.status == "skipped"]
    if single and skipped:
        print(f"faceanim: error: {skipped[0].reason}", file=sys.stderr)
        return 2
    done = [r for r in results if r.status == "done"]
    print(f"preprocess: {len(done)} clips done, {len(results) - len(done) - len(skipped)} already done, "
          f"{len(skipped)} skipped -> {out}")
    for r in done:
        print(f"  done     {r.clip_id}: face in {r.found}/{r.frames} frames")
    for r in skipped:
        print(f"  skipped  {r.source}: {r.reason}")
    return 0 if len(skipped) < len(results) else 2


def process_clip(video: Path, clip_dir: Path, opts: PreprocessOptions) -> ClipResult:
    from ..face import FaceTracker
    from ..face.video import crop_video_frames, track_video
    from ..media import VideoReader, probe

    _remove_stale_temporaries(clip_dir)
    has_audio = probe(video).has_audio
    track = track_video(video, fps=opts.fps, tracker=FaceTracker(detector=opts.detector))
    if track.found.mean() < opts.min_face_fraction:
        raise NoFaceError(video, f"face found in only {int(track.found.sum())} of {len(track.found)} frames "
                                 f"(--min-face-fraction {opts.min_face_fraction})")
    plan = track.crop_plan(opts.crop, opts.size, motion=opts.crop_motion)
    with atomic_path(clip_dir, is_dir=True) as tmp:
        (tmp / "frames").mkdir()
        with VideoReader(video, fps=opts.fps) as reader:
            for index, crop in enumerate(crop_video_frames(reader, plan)):
                _write_png(tmp / "frames" / f"{index:06d}.png", crop)
        _save_arrays(tmp, track, plan)
        has_audio = opts.audio and has_audio
        if has_audio:
            _write_audio(video, tmp / "audio.wav")
        meta = {"faceanim": __version__, "source": str(video.resolve()), "fps": track.fps,
                "frames": len(track.found), "frame_size": list(track.frame_size), "crop_size": opts.size,
                "found": int(track.found.sum()), "missing_ranges": track.missing_ranges(),
                "audio": bool(has_audio), "options": asdict(opts) | {"overwrite": False}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return ClipResult(str(video), clip_dir.name, "done", frames=len(track.found), found=int(track.found.sum()))


def _remove_stale_temporaries(clip_dir: Path) -> None:
    """Temporary folders of this clip left by a killed run (`atomic_path` names them .<clip>.*.tmp)."""
    import shutil

    for stale in clip_dir.parent.glob(f".{clip_dir.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)


def _write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise FaceanimError(f"{path}: could not write the frame (disk full?)")


def _save_arrays(folder: Path, track, plan) -> None:
    np.save(folder / "frame_landmarks.npy", track.landmarks.astype(np.float32))
    np.save(folder / "landmarks.npy", plan.landmarks_in_crops(track.landmarks).astype(np.float32))
    np.save(folder / "boxes.npy", plan.boxes().astype(np.float32))
    np.save(folder / "transforms.npy", plan.matrices())
    np.save(folder / "found.npy", track.found)


def _write_audio(video: Path, path: Path) -> None:
    from ..media import read_audio, write_wav

    write_wav(path, read_audio(video, sample_rate=AUDIO_RATE))
