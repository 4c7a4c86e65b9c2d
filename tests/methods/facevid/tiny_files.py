"""A tiny face-vid2vid with random weights, written as the official `Facevid.pth`, and test crops."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from faceanim.methods.facevid.config import tiny
from faceanim.methods.facevid.model import COMPONENTS, FaceVidModel


def tiny_model(seed: int = 3) -> FaceVidModel:
    """A fresh copy of `_calibrated_state(seed)` (built without a second random initialisation)."""
    with torch.device("meta"):
        model = FaceVidModel(tiny())
    model.load_state_dict({k: v.clone() for k, v in _calibrated_state(seed).items()}, assign=True)
    return model.eval()


@functools.lru_cache(maxsize=2)
def _calibrated_state(seed: int) -> dict:
    """tiny() with PyTorch's initialisation (seeded) and BatchNorm statistics measured on random crops.

    With the initial statistics (mean 0, variance 1) the signal fades through the deep random networks
    and the output barely depends on the motion; measured statistics keep every layer's output at unit
    scale, so motion, pose and expression visibly change the frames."""
    torch.manual_seed(seed)
    model = FaceVidModel(tiny())
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None   # a plain average over the calibration batches
    images = torch.stack([torch.from_numpy(c).permute(2, 0, 1).float() / 255 for c in crops(8, seed=seed + 1)])
    with torch.no_grad():
        model.train()
        model.animate(images[:1], images)
    return model.state_dict()


def write_official(path: Path, model: FaceVidModel) -> Path:
    """`model` saved as the re-implementation's Logger does: one state dict per network, optimisers beside."""
    state = model.state_dict()
    checkpoint = {name: {k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}
                  for name in COMPONENTS}
    checkpoint["optimizer_generator"] = {"state": {}, "param_groups": [{"lr": 2e-4, "params": [0]}]}
    torch.save(checkpoint, path)
    return path


def crops(count: int, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """`count` different smooth random uint8 (size, size, 3) images."""
    rng = np.random.default_rng(seed)
    blocks = rng.random((count, size // 8, size // 8, 3))
    return [(np.kron(block, np.ones((8, 8, 1))) * 255).round().astype(np.uint8) for block in blocks]
