"""Noise schedules of discrete-time Gaussian diffusion: beta recipes, the derived per-step arrays, and
timestep respacing.

Every official system fixes the precision its schedule was built in, and sampling with few steps is
sensitive to it (Diffused Heads' 10-step respaced schedule has alpha_bar' ~ 6e-8 at the last step), so a
schedule records both the dtype its arrays were *derived* in and the dtype they are *stored* in:
FADM derives in float64 and stores float32 buffers, Diffused Heads derives in float32, DVA keeps float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Iterable, Mapping

import torch

BETA_RECIPES = ("linear", "scaled_linear_by_T", "cosine", "scaled_linear")
POSTERIOR_CLIP_MODES = ("first_from_second", "floor")


def make_betas(recipe: str, num_timesteps: int, *, beta_start: float = 1e-4, beta_end: float = 0.02,
               cosine_offset: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Betas of a named recipe, in the precision the recipe's reference code uses.

    - ``linear``: linspace(beta_start, beta_end) in float64.
    - ``scaled_linear_by_T``: guided-diffusion / FADM: start and end scaled by 1000/T, float64.
    - ``cosine``: Nichol & Dhariwal, alpha_bar(s) = cos²((s + offset)/(1 + offset)·π/2), betas clipped at
      ``max_beta``, float64 (one libm cos per step, as the reference loops do).
    - ``scaled_linear``: Stable Diffusion: linspace of sqrt(beta) squared, float32 (as diffusers).
    """
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
    if recipe == "linear":
        return torch.linspace(beta_start, beta_end, num_timesteps, dtype=torch.float64)
    if recipe == "scaled_linear_by_T":
        scale = 1000 / num_timesteps
        return torch.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=torch.float64)
    if recipe == "cosine":
        return _cosine_betas(num_timesteps, cosine_offset, max_beta)
    if recipe == "scaled_linear":
        return torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_timesteps, dtype=torch.float32) ** 2
    raise ValueError(f"unknown beta recipe {recipe!r}; expected one of {BETA_RECIPES}")


def _cosine_betas(num_timesteps: int, offset: float, max_beta: float) -> torch.Tensor:
    def alpha_bar(s: float) -> float:
        return math.cos((s + offset) / (1 + offset) * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / num_timesteps) / alpha_bar(i / num_timesteps), max_beta)
             for i in range(num_timesteps)]
    return torch.tensor(betas, dtype=torch.float64)


def space_timesteps(num_timesteps: int, section_counts: str | int | Iterable[int]) -> list[int]:
    """The original timesteps kept when respacing, sorted (guided-diffusion's rule).

    ``"ddimN"`` keeps range(0, T, stride) for the integer stride giving exactly N steps; otherwise the
    counts (``"10"``, ``"10,15"``, ``[10, 15]``) split [0, T) into equal sections and take that many
    evenly spaced steps from each, each rounded with Python's round() of a float accumulator.
    For one section this equals Diffused Heads' ``space(n)`` (0, 111, ..., 999 for n = 10)."""
    if isinstance(section_counts, str) and section_counts.startswith("ddim"):
        wanted = int(section_counts[len("ddim"):])
        for stride in range(1, num_timesteps):
            if len(range(0, num_timesteps, stride)) == wanted:
                return list(range(0, num_timesteps, stride))
        raise ValueError(f"cannot take exactly {wanted} steps from {num_timesteps} with an integer stride")
    if isinstance(section_counts, str):
        counts = [int(part) for part in section_counts.split(",")]
    elif isinstance(section_counts, int):
        counts = [section_counts]
    else:
        counts = [int(c) for c in section_counts]
    size_per, extra = divmod(num_timesteps, len(counts))
    kept, start = [], 0
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if not 1 <= count <= size:
            raise ValueError(f"cannot take {count} steps from a section of {size}")
        stride = 1 if count == 1 else (size - 1) / (count - 1)
        position = 0.0
        for _ in range(count):
            kept.append(start + round(position))
            position += stride
        start += size
    return sorted(set(kept))


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """Per-step arrays of a discrete diffusion process, indexed by step index 0..N-1.

    ``timestep_map[i]`` is the original (training) timestep of index i: the denoiser is called with it,
    while every array here is indexed by i (they differ only after :meth:`respace`).
    Field names follow guided-diffusion / FADM, so official buffers load by name."""

    betas: torch.Tensor
    alphas_cumprod: torch.Tensor
    alphas_cumprod_prev: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    log_one_minus_alphas_cumprod: torch.Tensor
    sqrt_recip_alphas_cumprod: torch.Tensor
    sqrt_recipm1_alphas_cumprod: torch.Tensor
    posterior_variance: torch.Tensor
    posterior_log_variance_clipped: torch.Tensor
    posterior_mean_coef1: torch.Tensor
    posterior_mean_coef2: torch.Tensor
    ddim_sigma: torch.Tensor  # eta = 1 DDIM std between consecutive steps (FADM's `ddim_c1` buffer)
    timestep_map: torch.Tensor  # int64

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_betas(cls, betas: torch.Tensor, *, dtype: torch.dtype | None = None,
                   storage_dtype: torch.dtype | None = None, timestep_map: torch.Tensor | None = None,
                   posterior_log_variance: str = "first_from_second",
                   posterior_variance_floor: float = 1e-20) -> "NoiseSchedule":
        """Derive every array from ``betas`` in ``dtype`` (default: the betas' dtype), then cast to
        ``storage_dtype`` (default: ``dtype``).

        The log posterior variance is 0 at index 0; ``posterior_log_variance`` picks how it is made
        finite: ``"first_from_second"`` (improved DDPM, Diffused Heads, DVA: use index 1's value) or
        ``"floor"`` (FADM: clamp the variance at ``posterior_variance_floor``)."""
        if posterior_log_variance not in POSTERIOR_CLIP_MODES:
            raise ValueError(f"posterior_log_variance must be one of {POSTERIOR_CLIP_MODES}")
        betas = torch.as_tensor(betas).detach().cpu()
        betas = betas.to(dtype or betas.dtype)
        if betas.ndim != 1 or not bool(((betas > 0) & (betas <= 1)).all()):
            raise ValueError("betas must be a 1-D tensor of values in (0, 1]")
        arrays = _derive(betas, posterior_log_variance, posterior_variance_floor)
        arrays = {k: v.to(storage_dtype or betas.dtype) for k, v in arrays.items()}
        steps = len(betas)
        timestep_map = torch.arange(steps) if timestep_map is None else torch.as_tensor(timestep_map).long()
        return cls(**arrays, timestep_map=timestep_map.cpu())

    @classmethod
    def from_recipe(cls, recipe: str, num_timesteps: int, *, dtype: torch.dtype = torch.float64,
                    storage_dtype: torch.dtype | None = None, posterior_log_variance: str = "first_from_second",
                    **recipe_kwargs) -> "NoiseSchedule":
        """``make_betas(recipe, ...)`` cast to ``dtype``, then :meth:`from_betas`. Diffused Heads:
        ``("cosine", 1000, dtype=float32)``; FADM: ``("scaled_linear_by_T", 100, dtype=float64,
        storage_dtype=float32, posterior_log_variance="floor")``; DVA: ``("linear", 1000)``."""
        betas = make_betas(recipe, num_timesteps, **recipe_kwargs).to(dtype)
        return cls.from_betas(betas, storage_dtype=storage_dtype, posterior_log_variance=posterior_log_variance)

    @classmethod
    def from_buffers(cls, buffers: Mapping[str, torch.Tensor], *,
                     timestep_map: torch.Tensor | None = None) -> "NoiseSchedule":
        """A schedule from precomputed arrays (e.g. FADM's float32 buffers in ``diffusion.pth``), used
        exactly as given. ``betas`` is required; arrays that are absent are derived from the given
        ``betas`` in their dtype. FADM's name ``ddim_c1`` is accepted for ``ddim_sigma``."""
        given = {("ddim_sigma" if k == "ddim_c1" else k): torch.as_tensor(v).detach().cpu()
                 for k, v in buffers.items()}
        if "betas" not in given:
            raise ValueError("a schedule's buffers must contain 'betas'")
        unknown = set(given) - set(_ARRAY_NAMES)
        if unknown:
            raise ValueError(f"unknown schedule buffers: {sorted(unknown)}")
        derived = cls.from_betas(given["betas"], timestep_map=timestep_map)
        return replace(derived, **{k: v for k, v in given.items()})

    # ------------------------------------------------------------------ properties and conversion
    @property
    def num_steps(self) -> int:
        return len(self.betas)

    @property
    def dtype(self) -> torch.dtype:
        return self.betas.dtype

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def to(self, device: torch.device | str) -> "NoiseSchedule":
        """The same schedule on ``device`` (never changes the arrays' dtype)."""
        return replace(self, **{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def buffers(self, *, fadm_names: bool = False) -> dict[str, torch.Tensor]:
        """The arrays by name (without ``timestep_map``), e.g. to register as module buffers;
        ``fadm_names`` writes ``ddim_sigma`` as FADM's ``ddim_c1``."""
        out = {name: getattr(self, name) for name in _ARRAY_NAMES}
        if fadm_names:
            out["ddim_c1"] = out.pop("ddim_sigma")
        return out

    def respace(self, use_timesteps: Iterable[int], *, max_beta: float | None = None) -> "NoiseSchedule":
        """A shorter process over the kept indices: beta'_k = 1 - abar[k]/abar[previous kept] (1 before
        the first), derived in this schedule's dtype as the reference code does; ``timestep_map``
        composes, so the denoiser still sees original timesteps.

        With few kept steps a beta' can round to exactly 1 (abar' = 0: the x0 estimate divides by zero and
        the sampler returns NaN, as Diffused Heads' float32 `space(n <= 6)` does). ``max_beta`` replaces
        only such betas (>= 1) by ``max_beta``; every finite beta' is kept as computed."""
        kept = sorted(set(int(i) for i in use_timesteps))
        if not kept or kept[0] < 0 or kept[-1] >= self.num_steps:
            raise ValueError(f"respaced indices must lie in [0, {self.num_steps})")
        index = torch.tensor(kept)
        kept_cumprod = self.alphas_cumprod[index]
        previous = torch.cat([torch.ones(1, dtype=self.dtype, device=self.device), kept_cumprod[:-1]])
        betas = 1 - kept_cumprod / previous
        if max_beta is not None:
            if not 0 < max_beta < 1:
                raise ValueError(f"max_beta must lie in (0, 1), got {max_beta}")
            betas = torch.where(betas >= 1, torch.full_like(betas, max_beta), betas)
        return NoiseSchedule.from_betas(betas, timestep_map=self.timestep_map[index])

    # ------------------------------------------------------------------ per-sample coefficients
    def gather(self, array: torch.Tensor, index: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        """``array[index]`` shaped (B, 1, ..., 1) to broadcast against ``like``, in its dtype/device."""
        index = torch.as_tensor(index, device=array.device).long().reshape(-1)
        values = array[index].to(device=like.device, dtype=like.dtype)
        return values.reshape(-1, *([1] * (like.ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t)·x0 + sqrt(1 - abar_t)·noise (t: step indices, one per sample)."""
        return (self.gather(self.sqrt_alphas_cumprod, t, x0) * x0
                + self.gather(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise)

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x0)."""
        mean = (self.gather(self.posterior_mean_coef1, t, x_t) * x0
                + self.gather(self.posterior_mean_coef2, t, x_t) * x_t)
        return (mean, self.gather(self.posterior_variance, t, x_t),
                self.gather(self.posterior_log_variance_clipped, t, x_t))

    def x0_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return self.gather(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t \
            - self.gather(self.sqrt_recipm1_alphas_cumprod, t, x_t) * eps

    def eps_from_x0(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return (self.gather(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t - x0) \
            / self.gather(self.sqrt_recipm1_alphas_cumprod, t, x_t)

    def v_from_eps(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """v = sqrt(abar)·eps - sqrt(1 - abar)·x0 (Salimans & Ho)."""
        return self.gather(self.sqrt_alphas_cumprod, t, x0) * eps \
            - self.gather(self.sqrt_one_minus_alphas_cumprod, t, x0) * x0

    def x0_eps_from_v(self, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, eps) from a v prediction: x0 = sqrt(abar)·x_t - sqrt(1-abar)·v,
        eps = sqrt(abar)·v + sqrt(1-abar)·x_t."""
        a = self.gather(self.sqrt_alphas_cumprod, t, x_t)
        s = self.gather(self.sqrt_one_minus_alphas_cumprod, t, x_t)
        return a * x_t - s * v, a * v + s * x_t


def _derive(betas: torch.Tensor, posterior_log_variance: str, floor: float) -> dict[str, torch.Tensor]:
    alphas = 1.0 - betas
    cumprod = torch.cumprod(alphas, dim=0)
    cumprod_prev = torch.cat([torch.ones(1, dtype=betas.dtype), cumprod[:-1]])
    posterior_variance = betas * (1.0 - cumprod_prev) / (1.0 - cumprod)
    if posterior_log_variance == "floor" or len(betas) == 1:
        posterior_log_variance_clipped = torch.log(posterior_variance.clamp(min=floor))
    else:
        posterior_log_variance_clipped = torch.log(torch.cat([posterior_variance[1:2], posterior_variance[1:]]))
    return {
        "betas": betas,
        "alphas_cumprod": cumprod,
        "alphas_cumprod_prev": cumprod_prev,
        "sqrt_alphas_cumprod": torch.sqrt(cumprod),
        "sqrt_one_minus_alphas_cumprod": torch.sqrt(1.0 - cumprod),
        "log_one_minus_alphas_cumprod": torch.log(1.0 - cumprod),
        "sqrt_recip_alphas_cumprod": torch.sqrt(1.0 / cumprod),
        "sqrt_recipm1_alphas_cumprod": torch.sqrt(1.0 / cumprod - 1),
        "posterior_variance": posterior_variance,
        "posterior_log_variance_clipped": posterior_log_variance_clipped,
        "posterior_mean_coef1": betas * torch.sqrt(cumprod_prev) / (1.0 - cumprod),
        "posterior_mean_coef2": (1.0 - cumprod_prev) * torch.sqrt(alphas) / (1.0 - cumprod),
        "ddim_sigma": torch.sqrt((1.0 - cumprod / cumprod_prev) * (1 - cumprod_prev) / (1 - cumprod)),
    }


_ARRAY_NAMES = tuple(f.name for f in fields(NoiseSchedule) if f.name != "timestep_map")
