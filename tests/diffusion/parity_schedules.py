"""Schedule tensors of the FADM and Diffused Heads parity fixtures ($FACEANIM_PARITY_DIR, default
../shared/parity): every stem found is a test case; none found gives one skipped case."""
from __future__ import annotations

import functools

import torch

from ..parity import PARITY_DIR, stem_params

FADM_PREFIX = "diffusion.diffusion."  # component prefix + the official state-dict key


def fadm_stems() -> list:
    return stem_params("fadm")


def diffused_heads_stems() -> list:
    return stem_params("diffused_heads")


@functools.lru_cache(maxsize=4)
def fadm_buffers(stem: str) -> dict[str, torch.Tensor]:
    """FADM's schedule buffers as stored in diffusion.pth (float32), by official name."""
    from safetensors import safe_open

    path = PARITY_DIR / "fadm" / f"{stem}_weights.safetensors"
    with safe_open(str(path), "pt") as handle:
        return {key[len(FADM_PREFIX):]: handle.get_tensor(key) for key in handle.keys()
                if key.startswith(FADM_PREFIX) and ".denoise_fn." not in key and "#" not in key}


@functools.lru_cache(maxsize=4)
def diffused_heads_io(stem: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(PARITY_DIR / "diffused_heads" / f"{stem}_io.safetensors"))
