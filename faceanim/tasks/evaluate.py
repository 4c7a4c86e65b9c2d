"""`faceanim evaluate`: stream a prediction (and a reference) through the chosen metrics, frame by frame.

Protocols: same-identity reconstruction (no source: the prediction was made from the reference's first
frame; identity is compared with the reference frame at the same time) and cross-identity reenactment
(`source`: identity is compared with the source photo, motion with the driving video given as reference).
"""
from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import InputError, MissingWeightsError
from ..media.frames import FrameSource
from ..metrics.base import METRIC_WEIGHTS, EvalContext, FaceModels, FrameView, StreamingMetric
from ..metrics.catalog import METRICS, metric_info
from ..progress import progress


@dataclass
class Evaluation:
    """Summary values per metric, per-frame series per value key, and what was compared."""

    summary: dict[str, dict[str, float]]
    per_frame: dict[str, list[float]]
    frames: int
    info: dict[str, object]
    skipped: dict[str, str] = field(default_factory=dict)
    higher_is_better: dict[str, bool] = field(default_factory=dict)   # summary key -> direction
    groups: dict[str, list[str]] = field(default_factory=dict)         # metric -> its per-frame keys


def _missing_inputs(metric: type[StreamingMetric], inputs: set[str]) -> str | None:
    """What the metric lacks, as the options that would give it (None when it has what it needs)."""
    absent = sorted(set(metric.needs) - inputs)
    if absent:
        return " and ".join("--" + name for name in absent)
    if metric.needs_any and not metric.needs_any & inputs:
        return " or ".join("--" + name for name in sorted(metric.needs_any))
    return None


def _weights_missing(metric: type[StreamingMetric], weights: Mapping[str, object]) -> str | None:
    for name in metric.weights:
        try:
            METRIC_WEIGHTS[name].resolve(weights.get(name))
        except MissingWeightsError as err:
            return str(err)
    return None


def select_metrics(requested: Sequence[str] | None, inputs: set[str],
                   weights: Mapping[str, object]) -> tuple[list[type[StreamingMetric]], dict[str, str]]:
    """The metric classes to run and, for the default selection, why the others were left out.

    Asked-for metrics must be runnable (InputError for a missing input, MissingWeightsError for missing
    weights); without a request, every metric whose inputs and weights are there runs."""
    chosen, skipped = [], {}
    for name in requested or ():
        metric_info(name)   # every name is checked before any metric is loaded
    for name in requested or list(METRICS):
        metric = metric_info(name).load()
        absent = _missing_inputs(metric, inputs)
        weight_problem = None if absent else _weights_missing(metric, weights)
        if requested:
            if absent:
                raise InputError(None, f"metric {name} needs {absent}")
            if weight_problem:
                raise MissingWeightsError(f"metric {name}: {weight_problem}")
        if absent:
            skipped[name] = f"needs {absent}"
        elif weight_problem:
            skipped[name] = weight_problem
        else:
            chosen.append(metric)
    return chosen, skipped


def _resized(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    if frame.shape[1::-1] == size:
        return frame
    shrink = frame.shape[1] > size[0]
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def frame_pairs(pred: FrameSource, ref: FrameSource | None, *, resize: bool) -> Iterable[tuple[np.ndarray, np.ndarray | None]]:
    """(pred, ref) frames in step, up to the shorter of the two; sizes must agree unless `resize` (then
    each prediction frame is resized to the reference's size)."""
    if ref is None:
        for frame in pred:
            yield frame, None
        return
    for pred_frame, ref_frame in zip(pred, ref):
        if pred_frame.shape != ref_frame.shape:
            if not resize:
                raise InputError(pred.path, f"frames are {pred_frame.shape[1]}x{pred_frame.shape[0]} but the "
                                            f"reference's are {ref_frame.shape[1]}x{ref_frame.shape[0]}; "
                                            "pass --resize to compare at the reference's size")
            pred_frame = _resized(pred_frame, ref_frame.shape[1::-1])
        yield pred_frame, ref_frame


def run_metrics(metrics: Sequence[StreamingMetric], pairs: Iterable[tuple[np.ndarray, np.ndarray | None]],
                models: FaceModels) -> tuple[dict[str, list[float]], dict[str, list[str]], int]:
    """Feed every pair to every metric: the per-frame series (NaN where a metric gave no value), the
    series keys of each metric, and the number of frames."""
    series: dict[str, list[float]] = {}
    groups: dict[str, list[str]] = {metric.name: [] for metric in metrics}
    count = 0
    for index, (pred_frame, ref_frame) in enumerate(pairs):
        pred_view = FrameView(pred_frame, index, models)
        ref_view = None if ref_frame is None else FrameView(ref_frame, index, models)
        for metric in metrics:
            for key, value in metric.update(pred_view, ref_view).items():
                if key not in series:
                    groups[metric.name].append(key)
                values = series.setdefault(key, [math.nan] * index)
                values.extend([math.nan] * (index - len(values)))
                values.append(float(value))
        count = index + 1
    for values in series.values():
        values.extend([math.nan] * (count - len(values)))
    return series, groups, count


def evaluate(pred: str | os.PathLike, ref: str | os.PathLike | None = None, *,
             source: str | os.PathLike | None = None, audio: str | os.PathLike | None = None,
             metrics: Sequence[str] | None = None, weights: Mapping[str, str | None] | None = None,
             options: Mapping[str, object] | None = None, device: str | None = None,
             fps: float | None = None, resize: bool = False, max_frames: int | None = None,
             show_progress: bool | None = None) -> Evaluation:
    """Evaluate `pred` (video or frame folder) against `ref` with the named metrics (default: every
    metric whose inputs and weights are available)."""
    from ..media import read_audio, read_image
    from ..nn.device import resolve_device

    weights = {k: v for k, v in (weights or {}).items() if v}
    with FrameSource(pred, folder_fps=fps or 25.0) as pred_frames:
        ref_frames = FrameSource(ref, folder_fps=fps or pred_frames.fps) if ref is not None else None
        speech = read_audio(audio, 16000) if audio is not None else pred_frames.read_audio(16000)
        given = {"ref": ref is not None, "source": source is not None, "audio": speech is not None}
        chosen, skipped = select_metrics(metrics, {name for name, present in given.items() if present}, weights)
        if not chosen:
            raise InputError(None, "no metric can run on these inputs: " +
                             "; ".join(f"{k}: {v}" for k, v in skipped.items()))
        models = FaceModels()
        context = EvalContext(fps=fps or pred_frames.fps,
                              source=None if source is None else FrameView(read_image(source), 0, models),
                              audio=speech, device=str(resolve_device(device)), weights=weights,
                              options=dict(options or {}), face_models=models)
        instances = [metric(context) for metric in chosen]   # weights load here, before any frame is read
        try:
            pairs = itertools.islice(frame_pairs(pred_frames, ref_frames, resize=resize), max_frames)
            total = pred_frames.frame_count if max_frames is None else min(max_frames, pred_frames.frame_count)
            pairs = progress(pairs, total=total, desc="evaluate", enabled=show_progress)
            series, groups, count = run_metrics(instances, pairs, models)
        finally:
            if ref_frames is not None:
                ref_frames.close()
    if count == 0:
        raise InputError(pred, "no frames to evaluate")
    summary = {metric.name: metric.compute() for metric in instances}
    info = {"pred": os.fspath(pred), "ref": None if ref is None else os.fspath(ref),
            "source": None if source is None else os.fspath(source),
            "audio": os.fspath(audio) if audio is not None else ("pred's soundtrack" if speech is not None else None),
            "protocol": "cross-identity" if source is not None else
                        ("reconstruction" if ref is not None else "prediction only"),
            "fps": context.fps}
    better = {key: up for metric in instances for key, up in metric.higher_is_better.items()}
    return Evaluation(summary, series, count, info, skipped, better, groups)


def write_evaluation(evaluation: Evaluation | None, output: str | os.PathLike, *, benchmark=None) -> str:
    """metrics.json, metrics.md, per_frame.csv and plots/ in the folder `output` (written whole, or not
    at all); returns the markdown table. `benchmark` (a BenchmarkResult) adds timing and memory."""
    from pathlib import Path

    from ..fileio import atomic_path
    from ..metrics.report import write_report
    from .benchmark import as_dict, benchmark_rows

    evaluation = evaluation or _benchmark_only(benchmark)
    extra = {"benchmark": as_dict(benchmark)} if benchmark is not None else None
    rows = benchmark_rows(benchmark) if benchmark is not None else ()
    with atomic_path(Path(output), is_dir=True) as folder:
        return write_report(folder, summary=evaluation.summary, per_frame=evaluation.per_frame,
                            info=evaluation.info, skipped=evaluation.skipped, frames=evaluation.frames,
                            higher_is_better=evaluation.higher_is_better, groups=evaluation.groups,
                            extra=extra, extra_rows=rows)


def markdown(evaluation: Evaluation | None, benchmark=None) -> str:
    """The markdown table alone (what `faceanim evaluate` prints without -o)."""
    from ..metrics.report import markdown_table
    from .benchmark import benchmark_rows

    evaluation = evaluation or _benchmark_only(benchmark)
    rows = benchmark_rows(benchmark) if benchmark is not None else ()
    return markdown_table(evaluation.summary, evaluation.higher_is_better, evaluation.info, evaluation.skipped,
                          evaluation.frames, rows)


def _benchmark_only(benchmark) -> Evaluation:
    """The empty evaluation of a benchmark run without metrics."""
    return Evaluation({}, {}, benchmark.frames, {"pred": benchmark.output, "protocol": "benchmark"})
