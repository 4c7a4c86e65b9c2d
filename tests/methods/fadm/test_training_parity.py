"""Parity of FADM's TRAINING step with the official `train.py` loop body: every `fadm_colour_*` fixture stem
(../shared/parity/fadm_colour), the official weights loaded strictly under their names.

What runs is our training code, as the trainer runs it:
- the frozen FOMM (absolute motion, eval) and DECA, and the attribute;
- the training condition as `FADMTraining.condition` builds it: the coarse frame at 32/64/128 px and the
  two colour references, the coarse frame and the REAL driving frame (each cut to 32 px and blown up 8x);
- the step: `FADMTraining.renderer_loss` (the trainer's phase loss) under the official global seed
  SEED*1000+2 (t = randint, then the noise, in that order): t, x_t, ε̂, the summed L1 `norm`, the colour
  loss and their sum; the condition network's intermediates are read by hooks during that call;
- the gradients of the condition network (float32 as trained; float64 against the float64 reference);
- the inference condition (colour loss exactly 0) and the colour references exchanged.

Tensors: rel = ||ours - expected|| / ||expected - mean(expected)|| <= 1e-3; scalars (the losses) by a
relative tolerance of 1e-4 (the spread criterion is undefined for them).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from faceanim.checkpoints import load_into
from faceanim.methods.fadm import DECAEncoder, FADMModel, FADMConfig
from faceanim.methods.fadm.conditioning import Condition
from faceanim.methods.fadm.config import vox256
from faceanim.methods.fadm.deca import attribute, deca_input, split_codes
from faceanim.methods.fadm.config import FADMTrainConfig
from faceanim.methods.fadm.training import FADMTraining, TrainableRenderer, coarse_frames
from faceanim.warping.fomm import FOMMConfig, FOMMModel

from ...parity import (TOLERANCE, component, fixture, fixture_dir, full_keys, key_table, relative_error,
                       stem_params)

SYSTEM = "fadm_colour"
SCALAR_RTOL = 1e-4
# The README's allowance for a float32 gradient of the summed L1 loss, per tensor: the ±1 terms cancel, and the
# official float32 run itself is up to 5.5e-4 from the float64 reference (json `grad_float32_rel`). The same
# gradients in float64 are held to TOLERANCE (test_condition_network_gradients_in_float64).
GRAD_FLOAT32_PER_TENSOR = 2e-3
COLOUR_DIVISOR = 8           # the colour references: 32 px blown up 8x to 256 (README)
LEVELS = (32, 64, 128)


def _check(errors: dict[str, float], label: str, tolerance: float = TOLERANCE) -> None:
    print(f"\n{label}: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    failing = {k: v for k, v in errors.items() if not v <= tolerance}
    assert not failing, f"rel > {tolerance}: {failing}"


def _check_scalars(pairs: dict[str, tuple[torch.Tensor, torch.Tensor]], label: str) -> None:
    errors = {name: abs(float(ours.detach()) - float(expected)) / abs(float(expected))
              for name, (ours, expected) in pairs.items()}
    _check(errors, f"{label} (scalars, relative)", SCALAR_RTOL)


def _blown_up(small: torch.Tensor) -> torch.Tensor:
    """A 32 px colour reference at 256 px (nearest, as the official `F.interpolate` default)."""
    return F.interpolate(small, scale_factor=COLOUR_DIVISOR)


# ------------------------------------------------------------------------------------------ set-up

@dataclass
class Official:
    """One fixture: its meta and io tensors, our networks holding its weights, and our training method."""

    stem: str
    seed: int
    meta: dict
    io: dict
    models: dict
    method: FADMTraining

    @property
    def renderer(self) -> TrainableRenderer:
        return self.models["renderer"]

    @property
    def batch(self) -> dict:
        return {"source": self.io["source"], "driving": self.io["driving"]}

    def regenerated_draws(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(t, noise) of the official step, redrawn as the README says (the noise is not stored)."""
        generator = torch.Generator().manual_seed(self.seed * 1000 + 2)
        driving = self.io["driving"]
        t = torch.randint(0, self.renderer.config.timesteps, (driving.shape[0],), generator=generator)
        return t, torch.randn(driving.shape, generator=generator)


def _fomm_config(meta: dict) -> FOMMConfig:
    """The fixture's FOMM settings read the way our training config reads an official FOMM YAML."""
    fomm = meta["fomm"]
    return FOMMConfig.from_official({"common_params": fomm["common"], "kp_detector_params": fomm["kp"],
                                     "generator_params": fomm["gen"]})


@pytest.fixture(scope="module")
def official(stem) -> Official:
    meta, weights, io = fixture(SYSTEM, stem)
    source = fixture_dir(SYSTEM) / stem
    model_config = FADMConfig.from_official(meta["unet_kwargs"], timesteps=int(meta["diffusion"]["timesteps"]))
    renderer = TrainableRenderer(model_config)
    load_into(renderer, component(weights, "diffusion."), strict=True, source=source)
    coarse = FOMMModel(_fomm_config(meta))
    load_into(coarse.kp_detector, component(weights, "fomm_kp_detector."), strict=True, source=source)
    load_into(coarse.generator, component(weights, "fomm_generator."), strict=True, source=source)
    deca = DECAEncoder()
    load_into(deca, component(weights, "deca_E_flame."), strict=True, source=source)
    # as the trainer sets them up: the renderer trains (DiffusionGenerator.train()), the others are frozen
    models = {"renderer": renderer.train(), "coarse": coarse.eval().requires_grad_(False),
              "deca": deca.eval().requires_grad_(False)}
    config = FADMTrainConfig(model=model_config, coarse=coarse.config)
    assert config.colour_reference == "driving" and (config.loss_weights.norm, config.loss_weights.color) == (1, 1)
    return Official(stem, int(meta["seed"]), meta, io, models, FADMTraining(config, None))


class _Recorder:
    """Forward hooks on the denoiser's time embedding and condition network."""

    def __init__(self, renderer: FADMModel):
        unet = renderer.diffusion.denoise_fn
        network = unet.condition_conv
        self.seen: dict[str, list[torch.Tensor]] = {}
        self.handles = [self._hook(unet.time_mlp, "time_emb"), self._hook(network, "cond_image"),
                        self._hook(network.motion_cond, "motion_w"),
                        self._hook(network.pre_conv_color, "pre_conv_color", chanmean=True),
                        self._hook(network.deal_cond, "deal_cond", chanmean=True)]

    def _hook(self, module: torch.nn.Module, name: str, chanmean: bool = False):
        def record(_module, _inputs, output):
            output = output.detach()
            self.seen.setdefault(name, []).append(output.mean(dim=(2, 3)) if chanmean else output)
        return module.register_forward_hook(record)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


@pytest.fixture(scope="module")
def step(official) -> dict:
    """One training step exactly as the trainer runs it: the phase loss `renderer_loss` on the batch under the
    official global seed (t then noise drawn by our step), the losses summed as the trainer sums them, and the
    float32 gradients of the condition network; plus what the hooks saw inside the denoiser call."""
    network = official.renderer.diffusion.denoise_fn.condition_conv
    phase, = official.method.phases()
    assert phase.loss == official.method.renderer_loss and phase.optimizers == ("renderer",)
    recorder = _Recorder(official.renderer)
    context: dict = {}
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(official.seed * 1000 + 2)
            losses = phase.loss(official.models, official.batch, context)
    finally:
        recorder.remove()
    total = sum(loss.float() for loss in losses.values())           # as Trainer._checked_total
    params = dict(network.named_parameters())
    total_names = sorted(params)
    color_names = sorted(name for name in params if name.startswith("pre_conv_color."))
    grad_total = torch.autograd.grad(total, [params[n] for n in total_names], retain_graph=True)
    grad_color = torch.autograd.grad(losses["color"], [params[n] for n in color_names])
    # one denoiser call: the colour encoder on the two references, deal_cond on the three levels
    assert {name: len(values) for name, values in recorder.seen.items()} == \
        {"time_emb": 1, "cond_image": 1, "motion_w": 1, "pre_conv_color": 2, "deal_cond": 3}
    return {"losses": {name: loss.detach() for name, loss in losses.items()}, "total": total.detach(),
            "context": context["renderer_step"], "seen": recorder.seen,
            "grads": {**{f"grad_total.{n}": g for n, g in zip(total_names, grad_total)},
                      **{f"grad_color.{n}": g for n, g in zip(color_names, grad_color)}}}


def _compared_gradients(official: Official, grads: dict[str, torch.Tensor]) -> list[str]:
    """The gradient names the fixture stores; with the README's `zero_gradient_params` (mathematically zero,
    left out) they must be exactly the parameters of our condition network (pre_conv_color's for grad_color)."""
    stored = sorted(key for key in official.io if key.startswith(("grad_total.", "grad_color.")))
    left_out = set(official.meta["zero_gradient_params"])
    assert set(stored) | left_out == set(grads) and not set(stored) & left_out
    return stored


# ------------------------------------------------------------------------------------- the tests

@pytest.mark.parametrize("stem", stem_params(SYSTEM), scope="module")
@torch.no_grad()
def test_coarse_animator_fomm_absolute_motion(official):
    """The frozen FOMM as `get_trans_img_fomm`: driving keypoints as they are; one pair at a time and batched."""
    io, fomm = official.io, official.models["coarse"]
    source, driving = io["source"], io["driving"]

    def run(s: torch.Tensor, d: torch.Tensor) -> dict[str, torch.Tensor]:
        kp_s, kp_d = fomm.keypoints(s), fomm.keypoints(d)
        out = fomm.generator(s, kp_driving=kp_d, kp_source=kp_s)
        assert torch.equal(coarse_frames(fomm, s, d), out["prediction"])   # what the training code calls
        return {"fomm_kp_source_value": kp_s.value, "fomm_kp_source_jacobian": kp_s.jacobian,
                "fomm_kp_driving_value": kp_d.value, "fomm_kp_driving_jacobian": kp_d.jacobian,
                "fomm_deformation": out["deformation"], "fomm_occlusion_map": out["occlusion_map"],
                "fomm_prediction": out["prediction"]}

    batched = run(source, driving)
    rows = [run(source[i:i + 1], driving[i:i + 1]) for i in range(source.shape[0])]
    errors = {}
    for name, ours in batched.items():
        errors[name] = relative_error(ours, io[name])
        errors[f"{name} (one by one)"] = relative_error(torch.cat([row[name] for row in rows]), io[name])
    _check(errors, official.stem)


@pytest.mark.parametrize("stem", stem_params(SYSTEM), scope="module")
@torch.no_grad()
def test_deca_codes_and_attribute(official):
    """DECA's E_flame on the 224 px resize of each frame, and the attribute exp ⊕ pose (source − driving)."""
    io, deca = official.io, official.models["deca"]
    frames = torch.cat([io["source"], io["driving"]])
    batched = deca(deca_input(frames))
    one_by_one = torch.cat([deca(deca_input(frame[None])) for frame in frames])
    count = io["source"].shape[0]
    expected = torch.cat([io["deca_params_source"], io["deca_params_driving"]])
    codes = deca.encode(frames)
    difference = attribute({k: v[:count] for k, v in codes.items()}, {k: v[count:] for k, v in codes.items()})
    assert torch.equal(torch.cat(list(split_codes(batched).values()), dim=1), batched)
    _check({"deca_params_source": relative_error(batched[:count], io["deca_params_source"]),
            "deca_params_driving": relative_error(batched[count:], io["deca_params_driving"]),
            "deca_params (one by one)": relative_error(one_by_one, expected),
            "attribute": relative_error(difference, io["attribute"])}, official.stem)


@pytest.mark.parametrize("stem", stem_params(SYSTEM), scope="module")
def test_training_condition_takes_its_colour_from_the_real_driving_frame(official, step):
    """The condition the step ran on (`FADMTraining.condition`, colour_reference 'driving'): the coarse frame at
    32/64/128 px, `generated` = its 32 px version blown up, `driving` = the REAL driving frame's."""
    io, ran = official.io, step["context"]
    condition: Condition = ran["condition"]
    errors = {"fomm_prediction (coarse)": relative_error(ran["coarse"], io["fomm_prediction"]),
              "attribute": relative_error(condition.attribute, io["attribute"]),
              "generated": relative_error(condition.generated, _blown_up(io["cond_warping_32"])),
              "driving": relative_error(condition.driving, _blown_up(io["cond_driving_32"]))}
    errors.update({f"cond_warping_{size}": relative_error(level, io[f"cond_warping_{size}"])
                   for size, level in zip(LEVELS, condition.warping, strict=True)})
    _check(errors, official.stem)
    # not a tautology: the two colour references really differ (the coarse frame is not the driving frame)
    assert relative_error(condition.driving, condition.generated) > 0.05


@pytest.mark.parametrize("stem", stem_params(SYSTEM), scope="module")
def test_training_step_losses_and_prediction(official, step):
    """t and the noise drawn by our step under the official seed, x_t, ε̂, the condition network's
    intermediates, and the losses (L1 sum, colour, total)."""
    io, ran, seen, losses = official.io, step["context"], step["seen"], step["losses"]
    t, noise = official.regenerated_draws()
    assert torch.equal(t, io["train_t"].long()) and torch.equal(ran["t"], t)
    assert torch.equal(ran["noise"], noise)
    pre_generated, pre_driving = seen["pre_conv_color"]          # called on `generated`, then on `driving`
    ours = {"train_x_noisy": ran["x_t"], "train_eps": ran["eps"], "time_emb": seen["time_emb"][0],
            "motion_w": seen["motion_w"][0], "cond_image": seen["cond_image"][0],
            "pre_conv_color_generated_chanmean": pre_generated, "pre_conv_color_driving_chanmean": pre_driving,
            "deal_cond_chanmean": torch.stack(seen["deal_cond"])}
    errors = {name: relative_error(value, io[name]) for name, value in ours.items()}
    _check(errors, official.stem)
    assert set(losses) == {"norm", "color"}
    _check_scalars({"train_loss_norm": (losses["norm"], io["train_loss_norm"]),
                    "train_loss_color": (losses["color"], io["train_loss_color"]),
                    "total (norm + color)": (step["total"], io["train_loss_norm"] + io["train_loss_color"])},
                   official.stem)


@pytest.mark.parametrize("stem", stem_params(SYSTEM), scope="module")
def test_condition_network_gradients_in_float32(official, step):
    """∂(norm + color)/∂θ and ∂color/∂θ of the step the trainer runs (float32) against the float64 reference:
    grad_color (no L1 sum) per tensor within TOLERANCE; grad_total per tensor within the README's float32
    allowance, and all of it concatenated within TOLERANCE."""
    io, grads = official.io, step["grads"]
    names = _compared_gradients(official, grads)
    per_tensor = {name: relative_error(grads[name], io[name]) for name in names}
    concatenated = {}
    for prefix in ("grad_total.", "grad_color."):
        group = [name for name in names if name.startswith(prefix)]
        concatenated[f"{prefix}* (concatenated)"] = relative_error(torch.cat([grads[n].flatten() for n in group]),
                                                                   torch.cat([io[n].flatten() for n in group]))
    _check(concatenated, f"{official.stem} float32 gradients")
    _check({n: e for n, e in per_tensor.items() if n.startswith("grad_color.")},
           f"{official.stem} float32 grad_color")
    _check({n: e for n, e in per_tensor.items() if n.startswith("grad_total.")},
           f"{official.stem} float32 grad_total", GRAD_FLOAT32_PER_TENSOR)


@pytest.mark.slow
@pytest.mark.parametrize("stem", stem_params(SYSTEM), scope="module")
def test_condition_network_gradients_in_float64(official, step):
    """The same step through our renderer's training forward in float64 (the reference's precision; the
    condition, x0, t and the regenerated noise cast), every gradient tensor within TOLERANCE."""
    io = official.io
    renderer = copy.deepcopy(official.renderer).double()
    condition: Condition = step["context"]["condition"]
    wide = Condition([level.double() for level in condition.warping], condition.generated.double(),
                     condition.driving.double(), condition.attribute.double())
    t, noise = official.regenerated_draws()
    terms = renderer(io["driving"].double(), wide, t=t, noise=noise.double())
    network = renderer.diffusion.denoise_fn.condition_conv
    params = dict(network.named_parameters())
    names = _compared_gradients(official, step["grads"])
    total_names = [n for n in names if n.startswith("grad_total.")]
    color_names = [n for n in names if n.startswith("grad_color.")]
    grad_total = torch.autograd.grad(terms["norm"] + terms["color"],
                                     [params[n.removeprefix("grad_total.")] for n in total_names], retain_graph=True)
    grad_color = torch.autograd.grad(terms["color"], [params[n.removeprefix("grad_color.")] for n in color_names])
    _check({n: relative_error(g.float(), io[n]) for n, g in [*zip(total_names, grad_total),
                                                              *zip(color_names, grad_color)]},
           f"{official.stem} float64 gradients")
    _check_scalars({"train_loss_norm (float64)": (terms["norm"], io["train_loss_norm"]),
                    "train_loss_color (float64)": (terms["color"], io["train_loss_color"])}, official.stem)


@pytest.mark.parametrize("stem", stem_params(SYSTEM), scope="module")
@torch.no_grad()
def test_inference_condition_and_exchanged_colour_references(official, step):
    """At the step's t: the inference condition (both colour references from the coarse frame: colour loss
    exactly 0) and the training condition with its two colour references exchanged (the same colour loss,
    another condition image). The exchanged condition is derived with `dataclasses.replace` from one whose
    frame work is cached, as a caller would."""
    io = official.io
    unet = official.renderer.diffusion.denoise_fn
    network = unet.condition_conv
    t = io["train_t"].long()

    def condition_image(condition: Condition) -> tuple[torch.Tensor, torch.Tensor]:
        prepared = condition.prepared(network)
        return network(prepared, condition.attribute, unet.time_mlp(t)), prepared.color_loss

    _, inference = official.method.condition(official.models, io["source"], io["driving"], colour_from_driving=False)
    infer_image, infer_colour = condition_image(inference)
    training = dataclasses.replace(step["context"]["condition"])
    train_image, _ = condition_image(training)                      # caches the training condition's frame work
    swapped = dataclasses.replace(training, generated=training.driving, driving=training.generated)
    swap_image, swap_colour = condition_image(swapped)
    _check({"cond_image (no grad)": relative_error(train_image, io["cond_image"]),
            "infer_cond_image_row0": relative_error(infer_image[:1], io["infer_cond_image_row0"]),
            "swap_cond_image_row0": relative_error(swap_image[:1], io["swap_cond_image_row0"])}, official.stem)
    assert torch.equal(inference.driving, inference.generated) and float(infer_colour) == 0.0
    assert float(io["infer_color_loss"]) == 0.0
    _check_scalars({"swap_color_loss": (swap_colour, io["swap_color_loss"])}, official.stem)
    # the variants are different conditions (json `checks`: ≈ 0.4 and 0.57 away from the training one)
    assert relative_error(infer_image, train_image) > 0.05 and relative_error(swap_image, train_image) > 0.05


def test_released_key_set_of_the_training_fixtures_listing():
    """`fadm_colour_full_keys.txt`: the released renderer and DECA E_flame have exactly these keys and shapes."""
    table = full_keys(SYSTEM, {"diffusion", "deca_E_flame"})
    assert key_table(FADMModel(vox256()).state_dict()) == table["diffusion"]
    assert key_table(DECAEncoder().state_dict()) == table["deca_E_flame"]
