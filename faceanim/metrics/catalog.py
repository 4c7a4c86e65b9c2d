"""Every metric `faceanim evaluate` knows: its name, what it measures, the paper protocol it follows and
where it lives. Plain data, so listing metrics imports no model code."""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import InputError
from .base import StreamingMetric


@dataclass(frozen=True)
class MetricInfo:
    name: str
    module: str           # faceanim.metrics.<module> holds the StreamingMetric with this name
    group: str            # pixel | perceptual | distribution | face | audio-visual | temporal
    description: str

    def load(self) -> type[StreamingMetric]:
        module = importlib.import_module(f"faceanim.metrics.{self.module}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, StreamingMetric) and getattr(value, "name", None) == self.name:
                return value
        raise LookupError(f"faceanim.metrics.{self.module} defines no metric named {self.name!r}")


METRICS: dict[str, MetricInfo] = {info.name: info for info in (
    MetricInfo("l1", "pixel", "pixel", "mean absolute error on [0, 1] (FOMM/DaGAN reconstruction L1)"),
    MetricInfo("mse", "pixel", "pixel", "mean squared error on [0, 1]"),
    MetricInfo("psnr", "pixel", "pixel", "peak signal-to-noise ratio in dB (inf for identical frames)"),
    MetricInfo("ssim", "pixel", "pixel", "structural similarity (Gaussian 11x11, sigma 1.5, as the papers' code)"),
    MetricInfo("lpips", "lpips", "perceptual", "LPIPS v0.1 (AlexNet or VGG-16; local weights)"),
    MetricInfo("fid", "distribution", "distribution", "Frechet Inception Distance of prediction vs reference frames"),
    MetricInfo("fvd", "distribution", "distribution", "Frechet Video Distance over 16-frame clips (I3D)"),
    MetricInfo("akd", "face", "face", "average 68-landmark distance to the reference, pixels (FOMM protocol)"),
    MetricInfo("aed", "face", "face", "average identity-embedding distance (FOMM protocol)"),
    MetricInfo("csim", "face", "face", "cosine similarity of identity embeddings (dlib, or ArcFace IR-SE50)"),
    MetricInfo("pose", "face", "face", "head-pose error against the reference, degrees (and DaGAN's PRMSE)"),
    MetricInfo("tl_id", "face", "temporal", "local temporal identity consistency (STIT), relative to the reference"),
    MetricInfo("tg_id", "face", "temporal", "global temporal identity consistency (STIT), relative to the reference"),
    MetricInfo("lse", "syncnet", "audio-visual", "SyncNet lip-sync error LSE-C / LSE-D (Wav2Lip protocol)"),
    MetricInfo("lip_audio", "lipsync", "audio-visual", "weight-free correlation of mouth opening and speech energy"),
    MetricInfo("ofm", "smoothness", "temporal", "optical-flow magnitude between frames (Diffused Heads)"),
    MetricInfo("fmse", "smoothness", "temporal", "squared difference of consecutive frames (Diffused Heads)"),
)}


def metric_info(name: str) -> MetricInfo:
    if name not in METRICS:
        raise InputError(None, f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}")
    return METRICS[name]
