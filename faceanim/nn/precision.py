"""Float32 islands inside mixed-precision (autocast) inference.

Under `torch.autocast` convolutions and matmuls run in bfloat16/float16, which is fine for features but
not for what becomes a position: keypoint heatmaps (a softmax with temperature 0.1 amplifies logit
rounding tenfold), dense-motion masks that blend sampling grids, and the unscaled attention logits of
DaGAN. These helpers compute such values in the weights' own precision; outside autocast they change
nothing (same calls, same numbers). On CUDA, `cudnn_full_precision` keeps cuDNN's convolutions off TF32,
whose 10-bit mantissa would otherwise undo those islands (and an "exact" mode).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def full_precision(like: torch.Tensor) -> Iterator[None]:
    """Turn autocast off for `like`'s device inside the block (a no-op when it is off already)."""
    device_type = like.device.type
    if not torch.is_autocast_enabled(device_type):
        yield
        return
    with torch.autocast(device_type, enabled=False):
        yield


def run_full_precision(module: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
    """`module(*inputs)` with autocast off and the inputs cast to the module's parameter dtype."""
    dtype = next(module.parameters()).dtype
    with full_precision(inputs[0]):
        return module(*(x.to(dtype) for x in inputs))


@contextlib.contextmanager
def cudnn_full_precision(*, benchmark: bool) -> Iterator[None]:
    """cuDNN convolutions in true float32 (no TF32) and its autotuning as given inside the block."""
    cudnn = torch.backends.cudnn
    per_operator = getattr(cudnn, "conv", None)   # torch >= 2.9 sets TF32 per operator (the old flag may raise)
    saved = (per_operator.fp32_precision if per_operator is not None else cudnn.allow_tf32), cudnn.benchmark

    def apply(precision, bench: bool) -> None:
        if per_operator is not None:
            per_operator.fp32_precision = precision
        else:
            cudnn.allow_tf32 = precision
        cudnn.benchmark = bench
    apply("ieee" if per_operator is not None else False, benchmark)
    try:
        yield
    finally:
        apply(*saved)


PRECISIONS = ("exact", "fast")   # float32 throughout / autocast with float32 islands


def check_precision(precision: str) -> str:
    from ..errors import InputError

    if precision not in PRECISIONS:
        raise InputError(None, f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def backend_flags(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The backend settings of a precision mode: on CUDA, cuDNN without TF32 (it would undo the float32
    islands), autotuned in fast mode; nothing elsewhere."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return cudnn_full_precision(benchmark=precision == "fast" or torch.backends.cudnn.benchmark)


@contextlib.contextmanager
def compute_context(device: torch.device, precision: str) -> Iterator[None]:
    """`backend_flags`, plus in fast mode autocast: bfloat16 on CPUs, float16 on CUDA."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(backend_flags(device, precision))
        if precision == "fast":
            dtype = torch.bfloat16 if device.type == "cpu" else torch.float16
            stack.enter_context(torch.autocast(device.type, dtype=dtype))
        yield
