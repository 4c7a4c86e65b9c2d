"""The evaluation networks against their reference packages: every `metrics` parity fixture stem of
$FACEANIM_PARITY_DIR (default ../shared/parity/metrics), made by `lpips` 0.1.4 (LPIPS, AlexNet and VGG-16
trunks) and `pytorch-fid` 0.3.0 (FID's Inception-v3, the Fréchet distance) with random weights.

The fixture weights reach our networks the way a user's files do: written as the released files are laid out
and read by the metrics themselves (`LPIPSMetric` with the "lpips"/"lpips_backbone" weights, `FIDMetric` with
"inception"), through `load_lpips` / `load_fid_inception` and the checkpoint reader.

* LPIPS: the fixture holds `lpips.LPIPS(...).state_dict()`, a layout no released file has. The released
  weights are two files, the package's `weights/v0.1/<net>.pth` (`lin<K>.model.1.weight` only) and
  torchvision's trunk (`features.<i>.*`); our loader takes exactly those, strictly, so the test writes them:
  `lin<K>.model.1.weight` as it is, `net.slice<K>.<i>.*` renamed to `features.<i>.*` (the package builds its
  slices from torchvision's `features` with the indices kept). The remaining keys are checked, not loaded:
  `lins.<K>.*` must equal `lin<K>.*` (the same tensor listed twice) and `scaling_layer.*` our constants.
* FID: the fixture keys are those of `pt_inception-2015-12-05-6726825d.pth` plus the BatchNorm
  `num_batches_tracked` counters, which that file lacks; the test writes the file without them (as released),
  the loader supplies them, and the fixture's counters must equal what the model then holds.

Criterion (README of the fixtures): rel = ||ours - expected|| / ||expected - mean(expected)|| <= 1e-3 per
tensor (`relative_error`), float32 on CPU; the Fréchet distances and the 8-d statistics, stored float32 from a
float64 computation, element by element with rtol 1e-3, except the covariances computed from our own pool3
(see `test_fid_statistics_and_frechet`).
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from faceanim.metrics.base import EvalContext
from faceanim.metrics.distribution import (FeatureStats, FIDMetric, frechet_distance, frechet_distance_of_stats,
                                           inception_features, inception_input)
from faceanim.metrics.lpips import (LPIPS, LPIPS_SCALE, LPIPS_SHIFT, LPIPS_TAPS, LPIPSMetric, image_to_lpips_input,
                                    lpips_distance, unit_normalize)
from faceanim.nn.backbones.inception import FIDInceptionV3

from ..parity import TOLERANCE, component, fixture, relative_error, stem_params

SYSTEM = "metrics"
NETS = ("alex", "vgg")
RESOLUTIONS = (64, 256)
FID_SETS = ("a", "b")
FRECHET_PAIRS = ("a vs b", "a_even vs a_odd", "b_even vs b_odd", "a_even vs b_odd")
LIN_KEY = re.compile(r"lin(\d)\.model\.1\.weight")
LINS_KEY = re.compile(r"lins\.(\d)\.model\.1\.weight")
SLICE_KEY = re.compile(r"net\.slice(\d)\.(\d+)\.(weight|bias)")


def check(name: str, ours: torch.Tensor, expected: torch.Tensor, record_property) -> float:
    """Shape, then rel <= TOLERANCE; the error is printed and recorded (junit property rel_<name>)."""
    assert tuple(ours.shape) == tuple(expected.shape), f"{name}: shape {tuple(ours.shape)} vs {tuple(expected.shape)}"
    error = relative_error(ours.double(), expected.double())
    record_property(f"rel_{name}", error)
    print(f"{name}: rel {error:.2e}")
    assert error <= TOLERANCE, f"{name}: rel {error:.3g} > {TOLERANCE}"
    return error


def check_elementwise(name: str, ours, expected: torch.Tensor, record_property, rtol: float = TOLERANCE) -> float:
    """Every element within rtol of the expected one (scalars and float64 statistics stored float32)."""
    ours = np.asarray(ours, dtype=np.float64)
    expected = expected.double().numpy()
    assert ours.shape == expected.shape, f"{name}: shape {ours.shape} vs {expected.shape}"
    worst = float(np.max(np.abs(ours - expected) / np.abs(expected)))
    record_property(f"max_rtol_{name}", worst)
    print(f"{name}: max elementwise rel {worst:.2e}")
    assert np.all(np.abs(ours - expected) <= rtol * np.abs(expected)), f"{name}: elementwise rel {worst:.3g} > {rtol}"
    return worst


def to_uint8_frames(images: torch.Tensor, low: float) -> list[np.ndarray]:
    """(N, 3, H, W) float inputs made from uint8 frames (x / 255 for low = 0, x / 127.5 - 1 for low = -1) ->
    the (H, W, 3) uint8 frames, which the metrics' own conversion turns back into these inputs."""
    scale = 255.0 if low == 0 else 127.5
    levels = ((images.double() - low) * scale).round()
    assert float(((images.double() - low) * scale - levels).abs().max()) < 1e-3, "inputs are not uint8 levels"
    return [np.ascontiguousarray(frame) for frame in levels.to(torch.uint8).permute(0, 2, 3, 1).numpy()]


# --- networks built once per stem, through the metrics' own weight loading ---------------------------------

@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The machine is shared: one thread (as tests/metrics/test_lpips.py) keeps the run predictable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(stem):
    meta, weights, io = fixture(SYSTEM, stem)
    return meta, weights, io


def released_lpips_files(package: dict, net: str, folder) -> tuple:
    """The lpips package's state dict -> (weights/v0.1/<net>.pth, torchvision trunk .pth) as released (both
    pre-1.6 pickles), after checking that every package key is accounted for."""
    taps = LPIPS_TAPS[net]
    lin, trunk = {}, {}
    for key, tensor in package.items():
        if LIN_KEY.fullmatch(key):
            lin[key] = tensor
        elif match := SLICE_KEY.fullmatch(key):
            slice_number, index, kind = int(match[1]), int(match[2]), match[3]
            # slice K holds torchvision features (taps[K-2], taps[K-1]]: it ends on our K-th tap
            first = taps[slice_number - 2] + 1 if slice_number > 1 else 0
            assert first <= index <= taps[slice_number - 1], f"{key} outside the slice ending on tap {slice_number}"
            trunk[f"features.{index}.{kind}"] = tensor
        elif match := LINS_KEY.fullmatch(key):
            assert torch.equal(tensor, package[f"lin{match[1]}.model.1.weight"]), f"{key} differs from lin{match[1]}"
        elif key in ("scaling_layer.shift", "scaling_layer.scale"):
            constant = LPIPS_SHIFT if key.endswith("shift") else LPIPS_SCALE
            assert torch.equal(tensor.flatten(), torch.tensor(constant)), f"{key} = {tensor.flatten().tolist()}"
        else:
            raise AssertionError(f"unexpected lpips key {key}")
    assert len(lin) == 5 and len(trunk) == 2 * len({k.split('.')[1] for k in trunk})
    lin_path, trunk_path = folder / f"{net}.pth", folder / f"{net}-trunk.pth"
    torch.save(lin, lin_path, _use_new_zipfile_serialization=False)
    torch.save(trunk, trunk_path, _use_new_zipfile_serialization=False)
    return lin_path, trunk_path


@pytest.fixture(scope="module")
def lpips_models(data, tmp_path_factory) -> dict[str, LPIPS]:
    """net -> our LPIPS as `faceanim evaluate --metrics lpips --lpips-net <net>` loads it."""
    _, weights, _ = data
    folder = tmp_path_factory.mktemp("lpips_release")
    models = {}
    for net in NETS:
        lin_path, trunk_path = released_lpips_files(component(weights, f"lpips_{net}."), net, folder)
        context = EvalContext(weights={"lpips": lin_path, "lpips_backbone": trunk_path}, options={"lpips_net": net})
        models[net] = LPIPSMetric(context).model
    return models


@pytest.fixture(scope="module")
def fid_model(data, tmp_path_factory) -> FIDInceptionV3:
    """Our FID Inception as `faceanim evaluate --metrics fid --inception FILE` loads it."""
    _, weights, _ = data
    package = component(weights, "fid_inception.")
    counters = {k: v for k, v in package.items() if k.endswith(".num_batches_tracked")}
    path = tmp_path_factory.mktemp("fid_release") / "pt_inception-2015-12-05.pth"
    torch.save({k: v for k, v in package.items() if k not in counters}, path, _use_new_zipfile_serialization=False)
    model = FIDMetric(EvalContext(weights={"inception": path})).model
    state = model.state_dict()
    assert sorted(state) == sorted(package), "FID Inception keys differ from the fixture's"
    assert all(torch.equal(state[k], v) for k, v in counters.items())
    return model


@pytest.fixture(scope="module")
def fid_outputs(data, fid_model) -> dict[str, torch.Tensor]:
    """pool3 of every single image (each alone) and of each set (one batch of 24), through the metric's path
    from uint8 frames (`inception_features`); and what the first block received for fid_single_7."""
    meta, _, io = data
    singles = sorted((k for k in io if re.fullmatch(r"fid_single_\d+", k)), key=lambda k: int(k.rsplit("_", 1)[1]))
    assert len(singles) == len(meta["inputs"]["fid_singles"]) == io["fid_single_pool3"].shape[0]
    received = []
    hook = fid_model.Conv2d_1a_3x3.register_forward_pre_hook(lambda module, args: received.append(args[0].clone()))
    try:
        rows = {key: inception_features(to_uint8_frames(io[key], 0.0), fid_model) for key in singles}
        net_input = received[singles.index("fid_single_7")]
    finally:
        hook.remove()
    out = {"fid_single_pool3": torch.from_numpy(np.concatenate([rows[key] for key in singles])),
           "fid_single_7_net_input": net_input}
    for name in FID_SETS:
        images = io[f"fid_set_{name}"]
        frames = to_uint8_frames(images, 0.0)
        out[f"fid_set_{name}_pool3"] = torch.from_numpy(inception_features(frames, fid_model, batch_size=len(frames)))
    return out


# --- LPIPS ---------------------------------------------------------------------------------------------------

def lpips_pairs(io: dict, res: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, x1) of the official call: at 256 px x0 is one image expanded to x1's batch."""
    x0, x1 = io[f"lpips{res}_x0"], io[f"lpips{res}_x1"]
    return x0.expand_as(x1), x1


def lpips_spatial(model: LPIPS, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """`LPIPS(spatial=True)` from our network's parts (the metric never needs the map): every head output
    upsampled to the input size (nn.Upsample bilinear, align_corners=False), summed over the layers."""
    taps = LPIPS_TAPS[model.net]
    features0 = model.trunk((x0 - model.shift) / model.scale, taps)
    features1 = model.trunk((x1 - model.shift) / model.scale, taps)
    maps = [head((unit_normalize(f0) - unit_normalize(f1)) ** 2)
            for head, f0, f1 in zip(model.heads, features0, features1)]
    return sum(F.interpolate(m, size=x0.shape[-2:], mode="bilinear", align_corners=False) for m in maps)


@pytest.mark.parametrize("stem", stem_params(SYSTEM), scope="module")
@pytest.mark.parametrize("res", RESOLUTIONS)
@pytest.mark.parametrize("net", NETS)
def test_lpips_batched(stem, net, res, data, lpips_models, record_property):
    """One batched call: the distances and the five per-layer terms."""
    _, _, io = data
    model = lpips_models[net]
    x0, x1 = lpips_pairs(io, res)
    with torch.inference_mode():
        terms = torch.stack(model.layer_distances(x0, x1), dim=1)
        dist = model(x0, x1)
    check(f"lpips_{net}{res}_layers", terms, io[f"lpips_{net}{res}_layers"], record_property)
    check(f"lpips_{net}{res}_dist", dist, io[f"lpips_{net}{res}_dist"], record_property)
    assert torch.allclose(terms.sum(dim=1), dist, rtol=1e-6, atol=0)


@pytest.mark.parametrize("stem", stem_params(SYSTEM), scope="module")
@pytest.mark.parametrize("res", RESOLUTIONS)
@pytest.mark.parametrize("net", NETS)
def test_lpips_frame_by_frame(stem, net, res, data, lpips_models, record_property):
    """The metric's own path: one pair of uint8 frames at a time (`lpips_distance`, lpips.im2tensor scaling,
    which gives back the fixture's inputs up to float32 rounding)."""
    _, _, io = data
    x0, x1 = lpips_pairs(io, res)
    frames0, frames1 = to_uint8_frames(x0, -1.0), to_uint8_frames(x1, -1.0)
    assert torch.allclose(torch.cat([image_to_lpips_input(f) for f in frames1]), x1, rtol=0, atol=1e-6)
    dist = torch.tensor([lpips_distance(lpips_models[net], f0, f1) for f0, f1 in zip(frames0, frames1)])
    check(f"lpips_{net}{res}_dist_frames", dist, io[f"lpips_{net}{res}_dist"], record_property)


@pytest.mark.parametrize("stem", stem_params(SYSTEM), scope="module")
@pytest.mark.parametrize("res", RESOLUTIONS)
@pytest.mark.parametrize("net", NETS)
def test_lpips_spatial(stem, net, res, data, lpips_models, record_property):
    """The spatial map: all 6 pairs at 64 px, pair 1 at 256 px."""
    _, _, io = data
    x0, x1 = lpips_pairs(io, res)
    if res == 256:
        x0, x1 = x0[1:2], x1[1:2]
    with torch.inference_mode():
        spatial = lpips_spatial(lpips_models[net], x0, x1)
    check(f"lpips_{net}{res}_spatial", spatial, io[f"lpips_{net}{res}_spatial"], record_property)


# --- FID -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stem", stem_params(SYSTEM), scope="module")
def test_fid_net_input(stem, data, fid_outputs, record_property):
    """What the first block receives for the 360x360 image: resize to 299 without antialias, then 2x - 1."""
    _, _, io = data
    check("fid_single_7_net_input", fid_outputs["fid_single_7_net_input"], io["fid_single_7_net_input"],
          record_property)
    direct = inception_input(to_uint8_frames(io["fid_single_7"], 0.0)[0])[None]
    assert torch.equal(direct, fid_outputs["fid_single_7_net_input"])


@pytest.mark.parametrize("stem", stem_params(SYSTEM), scope="module")
def test_fid_single_pool3(stem, data, fid_outputs, record_property):
    """Every single image (64x64 to 360x360, several non-square) run alone -> its pool3 row."""
    _, _, io = data
    ours, expected = fid_outputs["fid_single_pool3"], io["fid_single_pool3"]
    for row in range(expected.shape[0]):
        check(f"fid_single_pool3[{row}]", ours[row], expected[row], record_property)
    check("fid_single_pool3", ours, expected, record_property)


@pytest.mark.parametrize("stem", stem_params(SYSTEM), scope="module")
@pytest.mark.parametrize("name", FID_SETS)
def test_fid_set_pool3(stem, name, data, fid_outputs, record_property):
    """Each set of 24 images run as one batch -> (24, 2048) pool3."""
    _, _, io = data
    check(f"fid_set_{name}_pool3", fid_outputs[f"fid_set_{name}_pool3"], io[f"fid_set_{name}_pool3"], record_property)


def projected_stats(pool3: torch.Tensor, projection: torch.Tensor, rows: slice = slice(None)) -> FeatureStats:
    """Our streaming statistics of p = pool3 @ projection (float64), fed as FIDMetric feeds them (batches of
    `FIDMetric.batch_frames` rows), over the rows selected."""
    features = (pool3.double() @ projection.double()).numpy()[rows]
    stats = FeatureStats(features.shape[1])
    for start in range(0, len(features), FIDMetric.batch_frames):
        stats.add(features[start:start + FIDMetric.batch_frames])
    return stats


@pytest.mark.parametrize("stem", stem_params(SYSTEM), scope="module")
@pytest.mark.parametrize("pool3_source", ["fixture_pool3", "our_pool3"])
def test_fid_statistics_and_frechet(stem, pool3_source, data, fid_outputs, record_property):
    """mu, sigma (ddof 1) of the 8-d projections and the four Fréchet distances, from the fixture's pool3
    (our statistics and distance code alone: every element within rtol 1e-3) and from our own pool3 (end to
    end: mu and the distances element by element; sigma by the spread criterion, because a few of its
    off-diagonal entries are ~1e-3 of its scale, the result of cancellation, and float32 summation order in
    pool3 alone (rel ~2e-7) moves them by ~1e-3 of their value)."""
    meta, _, io = data
    assert tuple(meta["fid"]["frechet_pairs"]) == FRECHET_PAIRS
    source = io if pool3_source == "fixture_pool3" else fid_outputs
    pool3 = {name: source[f"fid_set_{name}_pool3"] for name in FID_SETS}
    projection = io["fid_projection"]
    full = {name: projected_stats(pool3[name], projection) for name in FID_SETS}
    even, odd = slice(0, None, 2), slice(1, None, 2)
    pairs = [(full["a"], full["b"]),
             (projected_stats(pool3["a"], projection, even), projected_stats(pool3["a"], projection, odd)),
             (projected_stats(pool3["b"], projection, even), projected_stats(pool3["b"], projection, odd)),
             (projected_stats(pool3["a"], projection, even), projected_stats(pool3["b"], projection, odd))]
    distances = [frechet_distance_of_stats(first, second) for first, second in pairs]
    failures = []

    def run(checker, *args):
        try:
            checker(*args, record_property)
        except AssertionError as err:
            failures.append(str(err).splitlines()[0])

    run(check_elementwise, f"fid_frechet_from_{pool3_source}", distances, io["fid_frechet"])
    for name in FID_SETS:
        run(check_elementwise, f"fid_mu_{name}_from_{pool3_source}", full[name].mean, io[f"fid_mu_{name}"])
        sigma = full[name].covariance
        if pool3_source == "fixture_pool3":
            run(check_elementwise, f"fid_sigma_{name}_from_{pool3_source}", sigma, io[f"fid_sigma_{name}"])
        else:
            run(check, f"fid_sigma_{name}_from_{pool3_source}", torch.from_numpy(sigma), io[f"fid_sigma_{name}"])
            worst = float(np.max(np.abs(sigma / io[f"fid_sigma_{name}"].double().numpy() - 1)))
            print(f"  (fid_sigma_{name}_from_{pool3_source}: max elementwise rel {worst:.2e}, not a criterion)")
    assert not failures, failures
    # the same distance through the plain function on numpy's statistics, as pytorch-fid's fid_score takes them
    p = {name: (pool3[name].double() @ projection.double()).numpy() for name in FID_SETS}
    plain = frechet_distance(p["a"].mean(0), np.cov(p["a"], rowvar=False), p["b"].mean(0), np.cov(p["b"], rowvar=False))
    assert plain == pytest.approx(distances[0], rel=1e-9)
