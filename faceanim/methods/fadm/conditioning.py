"""What FADM's denoiser is conditioned on, built from a coarse frame and DECA codes.

- `warping`: the coarse frame at 1/8, 1/4 and 1/2 of the image size (nearest; 32, 64, 128 px at 256);
- `generated` / `driving`: colour references, a frame cut to 1/8 size and blown up again (nearest). At
  inference both come from the coarse frame; the official training takes `driving` from the real driving
  frame (a leak of the ground truth that the colour loss then pulls towards);
- `attribute`: exp ⊕ pose of the source minus the driving frame (DECA).

A `Condition` caches the step-independent part of the condition network (`prepared`), so a 100-step
sampler computes it once per frame instead of once per step. The cache belongs to the tensors it was
computed from: assigning a field, or deriving a condition with `dataclasses.replace` (e.g. exchanging
the two colour references), starts without it. (Tensors changed in place are not noticed.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .condition import ConditionNetwork, PreparedCondition

LEVEL_DIVISORS = (8, 4, 2)     # the coarse frame at image_size / 8, / 4, / 2
COLOUR_DIVISOR = 8             # colour references are cut to image_size / 8


@dataclass
class Condition:
    warping: list[torch.Tensor]
    generated: torch.Tensor
    driving: torch.Tensor
    attribute: torch.Tensor
    # init=False: `dataclasses.replace` must not carry the prepared features of the old tensors over
    _cache: tuple[int, PreparedCondition] | None = field(default=None, init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value) -> None:
        if name != "_cache":                  # a new input invalidates what was prepared from the old ones
            object.__setattr__(self, "_cache", None)
        object.__setattr__(self, name, value)

    def prepared(self, network: ConditionNetwork) -> PreparedCondition:
        """The frame work of `network` on this condition; cached when gradients are off (inference)."""
        if self._cache is not None and self._cache[0] == id(network):
            return self._cache[1]
        prepared = network.prepare(self.warping, self.generated, self.driving)
        if not torch.is_grad_enabled():
            self._cache = (id(network), prepared)
        return prepared

    def __len__(self) -> int:
        return self.attribute.shape[0]


def colour_reference(frames: torch.Tensor) -> torch.Tensor:
    size = frames.shape[-1]
    small = F.interpolate(frames, size=(size // COLOUR_DIVISOR,) * 2)
    return F.interpolate(small, size=frames.shape[-2:])


def coarse_condition(coarse: torch.Tensor, attribute: torch.Tensor,
                     driving: torch.Tensor | None = None) -> Condition:
    """The condition for coarse frames (B, 3, S, S) in [0, 1]; `driving`: the real driving frames for the
    colour reference (official training), None: the coarse frames (inference)."""
    size = coarse.shape[-1]
    warping = [F.interpolate(coarse, size=(size // d,) * 2) for d in LEVEL_DIVISORS]
    generated = colour_reference(coarse)
    driving_reference = generated if driving is None else colour_reference(driving)
    return Condition(warping, generated, driving_reference, attribute.expand(coarse.shape[0], -1))
