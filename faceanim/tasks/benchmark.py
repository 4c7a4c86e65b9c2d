"""`faceanim evaluate --benchmark COMMAND...`: run one faceanim command in this process and report its
wall time, seconds per output frame and peak memory (process RSS, and CUDA when it is used)."""
from __future__ import annotations

import os
import resource
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..errors import InputError

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss() -> int | None:
    """Resident memory of this process in bytes (Linux /proc), or None elsewhere."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


class PeakMemory:
    """Samples this process's RSS in a thread (every `interval` s) and keeps the peak; ru_maxrss (the
    lifetime peak) stands in where /proc is not available."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.baseline = current_rss()
        self.peak = self.baseline or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            rss = current_rss()
            if rss is not None:
                self.peak = max(self.peak, rss)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        if self.baseline is None:   # no /proc: the lifetime peak, in KiB on Linux and bytes on macOS
            scale = 1 if os.uname().sysname == "Darwin" else 1024
            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


@contextmanager
def cuda_peak() -> Iterator[dict[str, float]]:
    """Peak CUDA memory allocated by torch inside the block, in MiB (empty when CUDA is not in use)."""
    result: dict[str, float] = {}
    try:
        import torch
        active = torch.cuda.is_available() and torch.cuda.is_initialized()
    except ImportError:   # pragma: no cover - torch is a dependency
        active = False
    if active:
        torch.cuda.reset_peak_memory_stats()
    yield result
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20


@dataclass
class BenchmarkResult:
    command: str
    seconds: float
    frames: int
    seconds_per_frame: float
    peak_rss_mib: float
    rss_increase_mib: float
    peak_cuda_mib: float | None
    output: str


def output_of(argv: Sequence[str]) -> Path:
    """The -o/--output path of a faceanim command line."""
    for index, arg in enumerate(argv):
        if arg in ("-o", "--output") and index + 1 < len(argv):
            return Path(argv[index + 1])
        if arg.startswith("--output="):
            return Path(arg.split("=", 1)[1])
    raise InputError(None, "--benchmark needs a faceanim command that writes a video (-o OUT.mp4)")


def count_frames(path: Path) -> int:
    from ..media.frames import FrameSource

    with FrameSource(path) as frames:
        return sum(1 for _ in frames)


def benchmark_command(argv: Sequence[str], run: Callable[[list[str]], int]) -> BenchmarkResult:
    """Run the faceanim command line `argv` (reenact / talk / edit ...) in this process through `run` (the
    CLI's `main`, passed in: tasks sit below the CLI) and measure it. Model loading is included in the
    time: it is part of what a user waits for."""
    argv = list(argv)
    if not argv:
        raise InputError(None, "--benchmark needs a faceanim command after it, e.g. --benchmark reenact SRC DRV -o OUT.mp4")
    output = output_of(argv)
    with PeakMemory() as memory, cuda_peak() as cuda:
        start = time.perf_counter()
        code = run(argv)
        seconds = time.perf_counter() - start
    if code != 0:
        raise InputError(None, f"the benchmarked command failed (exit {code}): faceanim {' '.join(argv)}")
    frames = count_frames(output)
    return BenchmarkResult(command="faceanim " + " ".join(argv), seconds=seconds, frames=frames,
                           seconds_per_frame=seconds / max(frames, 1), peak_rss_mib=memory.peak / 2**20,
                           rss_increase_mib=(memory.peak - (memory.baseline or 0)) / 2**20,
                           peak_cuda_mib=cuda.get("peak_cuda_mib"), output=os.fspath(output))


def benchmark_rows(result: BenchmarkResult) -> list[tuple[str, str]]:
    rows = [("seconds per frame", f"{result.seconds_per_frame:.4f}"), ("frames", str(result.frames)),
            ("total seconds (incl. loading)", f"{result.seconds:.2f}"),
            ("peak RSS (MiB)", f"{result.peak_rss_mib:.0f}"), ("RSS increase (MiB)", f"{result.rss_increase_mib:.0f}")]
    if result.peak_cuda_mib is not None:
        rows.append(("peak CUDA memory (MiB)", f"{result.peak_cuda_mib:.0f}"))
    return rows


def as_dict(result: BenchmarkResult) -> dict:
    return asdict(result)
