"""The one protocol every evaluation metric follows, so that `faceanim evaluate` can stream any set of
them over a prediction (and a reference) frame by frame.

A metric is fed one frame pair at a time (`update`) and may return per-frame values (plotted as curves);
`compute` gives the summary numbers of the whole video. Face data (landmarks, dlib embedding) is computed
once per frame in a `FrameView` and shared by every metric that asks for it.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import numpy as np

from ..errors import NoFaceError
from ..registry import WeightSpec

if TYPE_CHECKING:
    from ..media.audio import Audio


class FaceModels:
    """dlib's landmark and embedding models, loaded once per evaluation and shared by all frames."""

    @cached_property
    def embedder(self):
        from ..face import FaceEmbedder

        return FaceEmbedder()


class FrameView:
    """One RGB uint8 frame (H, W, 3) and its face data, each computed on first use and then kept."""

    def __init__(self, image: np.ndarray, index: int = 0, models: FaceModels | None = None):
        self.image = image
        self.index = index
        self._models = models or FaceModels()

    @cached_property
    def landmarks(self) -> np.ndarray | None:
        """(68, 2) dlib landmarks of the largest face, or None when no face is found."""
        from ..face import largest_face

        try:
            return largest_face(self.image)[1].astype(np.float64)
        except NoFaceError:
            return None

    @cached_property
    def embedding(self) -> np.ndarray | None:
        """(128,) dlib identity embedding of the largest face, or None when no face is found."""
        if self.landmarks is None:
            return None
        return self._models.embedder(self.image, self.landmarks).astype(np.float64)

    @cached_property
    def float_image(self) -> np.ndarray:
        """The frame as float64 in [0, 1]."""
        return self.image.astype(np.float64) / 255.0


@dataclass
class EvalContext:
    """What a metric may need besides the frame pairs. `source` is the identity reference of a
    cross-identity evaluation (None for same-identity reconstruction); `audio` is the speech that drove
    the prediction (mono); `weights` maps a weight name of `METRIC_WEIGHTS` to the path given for it;
    `options` holds metric options (e.g. `lpips_net`)."""

    fps: float = 25.0
    source: FrameView | None = None
    audio: "Audio | None" = None
    device: str = "cpu"
    weights: Mapping[str, str | os.PathLike | None] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    face_models: FaceModels = field(default_factory=FaceModels)

    def weight(self, name: str) -> str:
        """The local file for weight `name` (flag, then environment); MissingWeightsError naming both."""
        return METRIC_WEIGHTS[name].resolve(self.weights.get(name))


class StreamingMetric(ABC):
    """A metric over a video, fed frame pairs in order.

    Class attributes: `name` (what the user asks for), `needs` (a subset of {"ref", "source", "audio"}:
    inputs without which it cannot run), `needs_any` (inputs of which at least one must be there, e.g.
    an identity partner: the source photo or the reference), `weights` (names in `METRIC_WEIGHTS` it loads; missing files
    raise MissingWeightsError), `higher_is_better` (per summary key; used for the markdown arrows)."""

    name: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset({"ref"})
    needs_any: ClassVar[frozenset[str]] = frozenset()
    weights: ClassVar[tuple[str, ...]] = ()
    higher_is_better: ClassVar[Mapping[str, bool]] = {}

    def __init__(self, context: EvalContext):
        self.context = context

    @abstractmethod
    def update(self, pred: FrameView, ref: FrameView | None) -> Mapping[str, float]:
        """Take the next frame pair; return this frame's values (keys as in `compute`), or {} when the
        metric has no per-frame value (set metrics such as FID)."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """Summary values of everything seen so far (float('inf') / float('nan') where that is the
        honest answer, e.g. PSNR of identical videos, AKD without any face)."""


def _w(name: str, flag: str, env: str, description: str) -> WeightSpec:
    return WeightSpec(name, flag, env, description)


# Every pretrained file a metric can load; no metric downloads anything.
METRIC_WEIGHTS: dict[str, WeightSpec] = {spec.name: spec for spec in (
    _w("lpips", "--lpips-weights", "FACEANIM_LPIPS_WEIGHTS",
       "LPIPS linear-layer weights (the lpips package's weights/v0.1/alex.pth or vgg.pth)"),
    _w("lpips_backbone", "--lpips-backbone", "FACEANIM_LPIPS_BACKBONE",
       "LPIPS backbone weights (torchvision alexnet-owt-7be5be79.pth or vgg16-397923af.pth)"),
    _w("inception", "--inception", "FACEANIM_FID_INCEPTION",
       "FID Inception weights (pytorch-fid pt_inception-2015-12-05-6726825d.pth)"),
    _w("i3d", "--i3d", "FACEANIM_FVD_I3D", "FVD I3D weights (Kinetics-400 InceptionI3d state dict, rgb_imagenet.pt layout)"),
    _w("arcface", "--arcface", "FACEANIM_ARCFACE", "ArcFace IR-SE50 weights (model_ir_se50.pth)"),
    _w("syncnet", "--syncnet", "FACEANIM_SYNCNET", "SyncNet weights (syncnet_python syncnet_v2.model)"),
)}
