"""An evaluation's results as files: JSON (machine-readable), a markdown table (for people and papers),
per-frame CSV, and one PNG of per-frame curves per metric."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Mapping, Sequence


def json_number(value: float) -> float | str | None:
    """JSON has no inf/nan: inf is written as the string "inf" ("-inf"), nan as null."""
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def format_number(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4f}"


def report_dict(summary: Mapping[str, Mapping[str, float]], per_frame: Mapping[str, Sequence[float]],
                info: Mapping[str, object], skipped: Mapping[str, str], frames: int,
                extra: Mapping[str, object] | None = None) -> dict:
    return {
        **dict(info), "frames": frames,
        "metrics": {name: {key: json_number(v) for key, v in values.items()} for name, values in summary.items()},
        "skipped": dict(skipped),
        **dict(extra or {}),
        "per_frame": {key: [json_number(v) for v in values] for key, values in per_frame.items()},
    }


def markdown_table(summary: Mapping[str, Mapping[str, float]], higher_is_better: Mapping[str, bool],
                   info: Mapping[str, object], skipped: Mapping[str, str], frames: int,
                   extra_rows: Sequence[tuple[str, str]] = ()) -> str:
    lines = [f"Evaluation of `{info.get('pred')}`" + (f" against `{info['ref']}`" if info.get("ref") else ""),
             "", f"protocol: {info.get('protocol')}, {frames} frames", "",
             "| metric | value | better |", "|---|---|---|"]
    for values in summary.values():
        for key, value in values.items():
            direction = {True: "↑", False: "↓"}.get(higher_is_better.get(key), "")
            lines.append(f"| {key} | {format_number(value)} | {direction} |")
    lines += [f"| {key} | {value} | |" for key, value in extra_rows]
    if skipped:
        lines += ["", "Not computed:"] + [f"- {name}: {reason}" for name, reason in skipped.items()]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, per_frame: Mapping[str, Sequence[float]], frames: int) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", *per_frame])
        for index in range(frames):
            writer.writerow([index, *(_csv_value(values[index]) for values in per_frame.values())])


def _csv_value(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def plot_curves(path: Path, title: str, series: Mapping[str, Sequence[float]], fps: float) -> None:
    """One figure: a subplot per value key, frame index below and seconds above. Infinite values (PSNR
    of identical frames) are not drawable: they are counted in the subplot's title instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(len(series), 1, figsize=(8, 2.4 * len(series)), squeeze=False, sharex=True)
    for axis, (key, values) in zip(axes[:, 0], series.items()):
        values = np.asarray(values, dtype=np.float64)
        infinite = np.isinf(values)
        axis.plot(np.arange(len(values)), np.where(infinite, np.nan, values), linewidth=1.2)
        note = f" ({int(infinite.sum())} frames ∞)" if infinite.any() else ""
        finite = values[np.isfinite(values)]
        mean = f", mean {finite.mean():.4g}" if finite.size else ""
        axis.set_title(f"{key}{mean}{note}", fontsize=9)
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(f"frame ({fps:g} fps)")
    top = axes[0, 0].secondary_xaxis("top", functions=(lambda f: f / fps, lambda s: s * fps))
    top.set_xlabel("seconds", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(folder: Path, *, summary, per_frame, info, skipped, frames, higher_is_better,
                 groups: Mapping[str, Sequence[str]], extra: Mapping[str, object] | None = None,
                 extra_rows: Sequence[tuple[str, str]] = ()) -> str:
    """Write metrics.json, metrics.md, per_frame.csv and plots/<metric>.png into `folder` (which exists);
    return the markdown. `groups` maps a metric name to its per-frame keys (one plot per metric)."""
    (folder / "metrics.json").write_text(json.dumps(
        report_dict(summary, per_frame, info, skipped, frames, extra), indent=2) + "\n")
    table = markdown_table(summary, higher_is_better, info, skipped, frames, extra_rows)
    (folder / "metrics.md").write_text(table)
    write_csv(folder / "per_frame.csv", per_frame, frames)
    plots = folder / "plots"
    for name, keys in groups.items():
        series = {key: per_frame[key] for key in keys if key in per_frame}
        if series:
            plots.mkdir(exist_ok=True)
            plot_curves(plots / f"{name}.png", f"{name} per frame: {info.get('pred')}", series,
                        float(info.get("fps") or 25.0))
    return table
