"""A tiny FOMM (64 px, 10 keypoints with Jacobians) with seeded random weights, written as the official
files: FOMM's `vox-cpk.pth.tar` (the training Logger's dict: every network's and optimiser's state dict and
the epoch), FADM's `FOMM.pth` (`kp_detector` + `generator` only), a DataParallel-prefixed variant, and the
official YAML (`config/vox-256.yaml`'s layout with tiny widths). Also a tiny FADM folder for the coarse route."""
from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import numpy as np
import torch
import yaml

from faceanim.warping.discriminator import MultiScaleDiscriminator
from faceanim.warping.fomm import FOMMConfig, FOMMModel

__all__ = ["SIZE", "TINY_MODEL_PARAMS", "Exploit", "crops", "official_checkpoint", "tiny_config", "tiny_model",
           "one_line_error", "unbuildable_yaml", "write_files", "write_tiny_fadm", "write_yaml"]

SIZE = 64

# config/vox-256.yaml's model_params with every width cut down (the official keys, nothing else)
TINY_MODEL_PARAMS = {
    "common_params": {"num_kp": 10, "num_channels": 3, "estimate_jacobian": True},
    "kp_detector_params": {"temperature": 0.1, "block_expansion": 8, "max_features": 32, "scale_factor": 0.25,
                           "num_blocks": 3},
    "generator_params": {"block_expansion": 8, "max_features": 32, "num_down_blocks": 2, "num_bottleneck_blocks": 2,
                         "estimate_occlusion_map": True,
                         "dense_motion_params": {"block_expansion": 8, "max_features": 32, "num_blocks": 3,
                                                 "scale_factor": 0.25}},
    "discriminator_params": {"scales": [1], "block_expansion": 8, "max_features": 32, "num_blocks": 4, "sn": True},
}


def crops(count: int, size: int = SIZE, seed: int = 0) -> list[np.ndarray]:
    """`count` different smooth random uint8 (size, size, 3) images (8x8-pixel blocks)."""
    rng = np.random.default_rng(seed)
    blocks = rng.random((count, size // 8, size // 8, 3))
    return [(np.kron(block, np.ones((8, 8, 1))) * 255).round().astype(np.uint8) for block in blocks]


def official_yaml(model_params: dict = TINY_MODEL_PARAMS, size: int = SIZE) -> dict:
    """An official FOMM YAML (dataset, model, train and animate sections as `config/vox-256.yaml`)."""
    return {
        "dataset_params": {"root_dir": "data/vox-png", "frame_shape": [size, size, 3], "id_sampling": True,
                           "pairs_list": "data/vox256.csv"},
        "model_params": copy.deepcopy(model_params),
        "train_params": {"num_epochs": 100, "num_repeats": 75, "epoch_milestones": [60, 90], "lr_generator": 2.0e-4,
                         "lr_discriminator": 2.0e-4, "lr_kp_detector": 2.0e-4, "batch_size": 40,
                         "scales": [1, 0.5, 0.25, 0.125], "checkpoint_freq": 50},
        "animate_params": {"num_pairs": 50, "format": ".mp4",
                           "normalization_params": {"adapt_movement_scale": False, "use_relative_movement": True,
                                                    "use_relative_jacobian": True}},
    }


def write_yaml(path: Path, model_params: dict = TINY_MODEL_PARAMS, size: int = SIZE) -> Path:
    path.write_text(yaml.safe_dump(official_yaml(model_params, size), sort_keys=False))
    return path


def tiny_config(model_params: dict = TINY_MODEL_PARAMS, size: int = SIZE) -> FOMMConfig:
    return FOMMConfig.from_official(model_params, image_size=size)


def tiny_model(seed: int = 0) -> FOMMModel:
    """A fresh copy of `_calibrated_state(seed)`."""
    model = FOMMModel(tiny_config())
    model.load_state_dict({k: v.clone() for k, v in _calibrated_state(seed).items()})
    return model.eval()


@functools.lru_cache(maxsize=2)
def _calibrated_state(seed: int) -> dict:
    """PyTorch's (seeded) initialisation, random Jacobian-head weights (FOMM starts them at zero, which
    would make every Jacobian the identity), and batch-norm statistics measured on random crops.

    With the initial statistics (mean 0, variance 1) the signal fades through the random hourglasses and
    every output is a flat grey; measured statistics keep each layer at unit scale, so keypoints, motion
    and frames differ visibly from crop to crop."""
    torch.manual_seed(seed)
    model = FOMMModel(tiny_config())
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        jacobian = model.kp_detector.jacobian.weight
        jacobian.copy_(0.02 * torch.randn(jacobian.shape, generator=generator))
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None   # a plain average over the calibration batches
    images = torch.stack([torch.from_numpy(c).permute(2, 0, 1).float() / 255 for c in crops(8, SIZE, seed=seed + 7)])
    with torch.no_grad():
        model.train()
        model.animate(images[:1], model.keypoints(images[:1]), model.keypoints(images))
    return model.state_dict()


def tiny_discriminator(seed: int = 0) -> MultiScaleDiscriminator:
    torch.manual_seed(seed)
    params = dict(TINY_MODEL_PARAMS["discriminator_params"])
    return MultiScaleDiscriminator(scales=tuple(params.pop("scales")), num_channels=3, **params)


def _adam_state(module: torch.nn.Module, seed: int) -> dict:
    """The state dict of the official Adam (lr 2e-4, betas (0.5, 0.999)) after one step, on copies of the
    module's parameters (the module itself is not changed)."""
    generator = torch.Generator().manual_seed(seed)
    params = [p.detach().clone().requires_grad_() for p in module.parameters()]
    optimizer = torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator)
    optimizer.step()
    return optimizer.state_dict()


def official_checkpoint(model: FOMMModel, layout: str = "vox-cpk", epoch: int = 99) -> dict:
    """`model` as a checkpoint dict.

    vox-cpk: what FOMM's Logger.save_cpk writes (state dicts of generator, discriminator, kp_detector and of
    their three optimisers, then the epoch); fomm.pth: FADM's FOMM.pth (kp_detector and generator only);
    data-parallel: vox-cpk with every network key under DataParallel's `module.` prefix."""
    networks = {"generator": model.generator, "discriminator": tiny_discriminator(), "kp_detector": model.kp_detector}
    if layout == "fomm.pth":
        return {"kp_detector": model.kp_detector.state_dict(), "generator": model.generator.state_dict()}
    checkpoint = {name: network.state_dict() for name, network in networks.items()}
    for index, (name, network) in enumerate(networks.items()):
        checkpoint[f"optimizer_{name}"] = _adam_state(network, index)
    checkpoint["epoch"] = epoch
    if layout == "data-parallel":
        for name in networks:
            checkpoint[name] = {f"module.{k}": v for k, v in checkpoint[name].items()}
    elif layout != "vox-cpk":
        raise ValueError(layout)
    return checkpoint


def write_files(folder: Path, model: FOMMModel | None = None) -> dict[str, Path]:
    """The official files of `model` (default `tiny_model()`): checkpoint (vox-cpk.pth.tar), fomm_pth
    (FADM's FOMM.pth) and config (the tiny official YAML)."""
    model = model or tiny_model()
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"checkpoint": folder / "vox-cpk.pth.tar", "fomm_pth": folder / "FOMM.pth",
             "config": write_yaml(folder / "vox-tiny-64.yaml")}
    torch.save(official_checkpoint(model), paths["checkpoint"])
    torch.save(official_checkpoint(model, "fomm.pth"), paths["fomm_pth"])
    return paths


def write_tiny_fadm(folder: Path, seed: int = 5) -> Path:
    """A converted FADM folder (the tiny 64 px renderer + a random DECA encoder), as tests/methods/fadm
    builds it."""
    from faceanim.methods.fadm import DECAEncoder, FADMModel
    from faceanim.methods.fadm.config import tiny
    from faceanim.methods.fadm.weights import save_converted

    torch.manual_seed(seed)
    return save_converted(FADMModel(tiny()).eval(), folder, DECAEncoder().eval())


def unbuildable_yaml(folder: Path, kind: str) -> Path:
    """An official-looking YAML that FOMM's networks cannot be built from: `facevid_yaml`, the tiny YAML with
    face-vid2vid's keypoint-detector keys (reshape_channel, reshape_depth), as its vox-256.yaml has them;
    `mistyped_yaml`, a number written as a word."""
    params = copy.deepcopy(TINY_MODEL_PARAMS)
    if kind == "facevid_yaml":
        params["kp_detector_params"].update(reshape_channel=16384, reshape_depth=16)
    elif kind == "mistyped_yaml":
        params["kp_detector_params"]["num_blocks"] = "five"
    else:
        raise ValueError(kind)
    return write_yaml(folder / f"{kind}.yaml", params)


class Exploit:
    """Pickles as a call of os.system (`touch marker`): what a weights-only loader must refuse."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def one_line_error(capsys) -> str:
    """The CLI's stderr, which must be exactly one `faceanim: error:` line."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("faceanim: error:"), err
    return err
