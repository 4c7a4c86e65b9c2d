"""What precision a model's convolutions really ran in (for the fast-mode tests)."""
from __future__ import annotations

import torch


def conv_output_dtypes(model: torch.nn.Module, run) -> tuple:
    """(run(), {name: dtypes of its outputs} of every 2-D/3-D convolution of `model` that ran in `run`)."""
    seen: dict[str, set] = {}
    handles = [module.register_forward_hook(lambda m, args, out, name=name: seen.setdefault(name, set()).add(out.dtype))
               for name, module in model.named_modules() if isinstance(module, (torch.nn.Conv2d, torch.nn.Conv3d))]
    try:
        return run(), seen
    finally:
        for handle in handles:
            handle.remove()


def dtypes_under(convs: dict, *, under: str, but_not: str | None = None) -> set:
    """The output dtypes of the convolutions named under `under` (except those under `but_not`)."""
    chosen = [d for n, d in convs.items() if n.startswith(under) and not (but_not and n.startswith(but_not))]
    assert chosen, f"no convolution under {under} ran"
    return set().union(*chosen)
