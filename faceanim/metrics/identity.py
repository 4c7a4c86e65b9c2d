"""Identity embedders for the face metrics (AED, CSIM, TL-ID, TG-ID): which network turns a face into a
vector, and a per-frame cache so that several metrics share one embedding per frame.

- "dlib" (default): dlib's 128-d ResNet face descriptor, `FrameView.embedding` (already cached there).
- "arcface": ArcFace IR-SE50 (`model_ir_se50.pth`, the identity network of pSp / e4e / STIT / DVA),
  512-d unit vectors. Chosen with `context.options["identity"] = "arcface"`; its file comes from
  `context.weight("arcface")` (--arcface / FACEANIM_ARCFACE).

ArcFace preprocessing follows pSp's IDLoss and DVA's IDnet: an FFHQ-aligned 256x256 face (here aligned
from the frame's dlib landmarks), rows 35:223 x columns 32:220, adaptive average pooling to 112x112,
RGB scaled to [-1, 1].
"""
from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..errors import InputError, MissingWeightsError
from .base import METRIC_WEIGHTS, EvalContext, FrameView

if TYPE_CHECKING:
    import torch

IDENTITY_CHOICES = ("dlib", "arcface")
_CACHE_ATTRIBUTE = "_identity_embeddings"  # on a FrameView: {embedder key: embedding or None}


class IdentityEmbedder(Protocol):
    """Maps a frame's largest face to an identity vector (None without a face). `key` names the network
    (and its weights) for the per-frame cache."""

    key: str

    def embed(self, view: FrameView) -> np.ndarray | None: ...


class DlibIdentity:
    """dlib's 128-d face descriptor (the FrameView computes and keeps it)."""

    key = "dlib"

    def embed(self, view: FrameView) -> np.ndarray | None:
        return view.embedding


class ArcFaceIdentity:
    """ArcFace IR-SE50 512-d unit embedding of the largest face (pSp/DVA preprocessing, see the module doc)."""

    def __init__(self, weights_path: str | os.PathLike, device: str = "cpu"):
        self.weights_path = os.path.abspath(os.fspath(weights_path))
        self.device = device
        self.key = f"arcface:{self.weights_path}"
        self.network = _shared_ir_se50(self.weights_path, str(device))

    def embed(self, view: FrameView) -> np.ndarray | None:
        if view.landmarks is None:
            return None
        return self.embed_faces([view.image], [view.landmarks])[0]

    def embed_faces(self, images: list[np.ndarray], landmarks: list[np.ndarray]) -> np.ndarray:
        """(N, 512) float64 embeddings of the faces at `landmarks` in `images`."""
        import torch

        from ..face.arcface_align import arcface_crop

        crops = np.stack([arcface_crop(image, points) for image, points in zip(images, landmarks)])
        with torch.inference_mode():
            batch = arcface_input(torch.from_numpy(crops).to(self.device))
            return self.network(batch).double().cpu().numpy()


def arcface_input(crops: "torch.Tensor") -> "torch.Tensor":
    """(N, H, W, 3) uint8 face windows (torch) -> the network's (N, 3, 112, 112) float input in [-1, 1].

    Scaling to [-1, 1] is torchvision's ToTensor + Normalize(0.5, 0.5), as pSp's transforms do; it is
    linear, so doing it before or after the pooling gives the same numbers."""
    import torch.nn.functional as F

    from ..nn.backbones.irse import INPUT_SIZE

    pixels = crops.permute(0, 3, 1, 2).contiguous().float() / 127.5 - 1.0
    return F.adaptive_avg_pool2d(pixels, (INPUT_SIZE, INPUT_SIZE))


@functools.lru_cache(maxsize=2)
def _shared_ir_se50(path: str, device: str):
    """One loaded network per (file, device), shared by every metric of an evaluation."""
    from ..nn.backbones.irse import load_ir_se50

    return load_ir_se50(path, device)


def identity_embedder(context: EvalContext) -> IdentityEmbedder:
    """The embedder `context.options["identity"]` names: "dlib" or "arcface"; when it names none, ArcFace
    if its weights were given (flag or environment), else dlib.

    MissingWeightsError naming --arcface and FACEANIM_ARCFACE when ArcFace is asked for without its file."""
    choice = context.options.get("identity") or _default_identity(context)
    if choice == "dlib":
        return DlibIdentity()
    if choice == "arcface":
        return ArcFaceIdentity(arcface_weights(context), context.device)
    raise InputError(None, f"unknown identity network {choice!r}; choose one of {', '.join(IDENTITY_CHOICES)}")


def _default_identity(context: EvalContext) -> str:
    given = context.weights.get("arcface") or os.environ.get(METRIC_WEIGHTS["arcface"].env)
    return "arcface" if given else "dlib"


def arcface_weights(context: EvalContext) -> str:
    """The ArcFace file: given (flag or environment) and present, else MissingWeightsError."""
    path = context.weight("arcface")
    if not os.path.isfile(path):
        spec = METRIC_WEIGHTS["arcface"]
        raise MissingWeightsError(f"{spec.description} not found at {path}: pass {spec.flag} PATH or set {spec.env}")
    return path


def embedding_of(view: FrameView, embedder: IdentityEmbedder) -> np.ndarray | None:
    """The embedder's vector for `view`, computed once per frame and embedder and kept on the view."""
    cache = view.__dict__.setdefault(_CACHE_ATTRIBUTE, {})
    if embedder.key not in cache:
        cache[embedder.key] = embedder.embed(view)
    return cache[embedder.key]
