"""LPIPS without the lpips package: the official file layouts (torchvision trunks, lpips v0.1 linear
layers), agreement with a plain-torch re-implementation of the formula, and the streaming metric."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from faceanim.errors import CheckpointError, InputError, MissingWeightsError
from faceanim.metrics.base import EvalContext, FrameView
from faceanim.metrics.lpips import (LPIPS, LPIPSHeads, LPIPSMetric, image_to_lpips_input, load_lpips,
                                    lpips_distance)
from faceanim.nn.backbones.alexnet import AlexNetFeatures, load_alexnet
from faceanim.nn.backbones.vgg import VGG16Features, load_vgg16

# --- the official layouts, written out from the architectures ----------------------------------------------

# torchvision alexnet(): features convs (index: out, in, kernel) and the classifier Linear layers.
ALEXNET_CONVS = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
ALEXNET_CLASSIFIER = {1: (4096, 9216), 4: (4096, 4096), 6: (1000, 4096)}
# torchvision vgg16(): configuration "D".
VGG16_WIDTHS = (3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
VGG16_CONVS = {index: (VGG16_WIDTHS[i + 1], VGG16_WIDTHS[i], 3)
               for i, index in enumerate((0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28))}
VGG16_CLASSIFIER = {0: (4096, 25088), 3: (4096, 4096), 6: (1000, 4096)}
# lpips weights/v0.1/{alex,vgg}.pth: lin{i}.model.1.weight of shape (1, C, 1, 1).
LIN_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
TRUNK_CONVS = {"alex": ALEXNET_CONVS, "vgg": VGG16_CONVS}
TRUNK_CLASSIFIER = {"alex": ALEXNET_CLASSIFIER, "vgg": VGG16_CLASSIFIER}


def feature_shapes(convs: dict) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for index, (out, inp, kernel) in convs.items():
        shapes[f"features.{index}.weight"] = (out, inp, kernel, kernel)
        shapes[f"features.{index}.bias"] = (out,)
    return shapes


def lin_shapes(net: str) -> dict[str, tuple[int, ...]]:
    return {f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate(LIN_CHANNELS[net])}


def trunk_file_state(net: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-format file: He-initialised features (activations neither vanish nor explode) and
    the classifier keys with small stand-in tensors (the real ones are 60M values, never loaded)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in feature_shapes(TRUNK_CONVS[net]).items():
        fan_in = math.prod(shape[1:]) if len(shape) == 4 else 1
        state[name] = torch.randn(shape, generator=generator) * (math.sqrt(2 / fan_in) if len(shape) == 4 else 0.05)
    for index in TRUNK_CLASSIFIER[net]:
        state[f"classifier.{index}.weight"] = torch.randn(8, 4, generator=generator)
        state[f"classifier.{index}.bias"] = torch.randn(8, generator=generator)
    return state


def lin_file_state(net: str, seed: int = 1) -> dict[str, torch.Tensor]:
    """An lpips v0.1 file: non-negative 1x1 weights, as the trained ones are."""
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.rand(shape, generator=generator) for name, shape in lin_shapes(net).items()}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """These convolutions are small; on a busy machine several OpenMP threads wait on each other for
    longer than one thread computes (VGG-16 on 64x56: 2 s with 2 threads under load, 0.1 s with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory) -> dict[str, tuple]:
    """net -> (lin path, trunk path, lin state, trunk state), saved as the official .pth files are."""
    folder = tmp_path_factory.mktemp("lpips_weights")
    files = {}
    for net in ("alex", "vgg"):
        lin, trunk = lin_file_state(net), trunk_file_state(net)
        torch.save(lin, folder / f"{net}.pth")
        torch.save(trunk, folder / f"{net}-trunk.pth")
        files[net] = (folder / f"{net}.pth", folder / f"{net}-trunk.pth", lin, trunk)
    return files


@pytest.fixture(scope="module")
def models(weight_files) -> dict[str, LPIPS]:
    return {net: load_lpips(net, lin_path, trunk_path) for net, (lin_path, trunk_path, _, _) in weight_files.items()}


@pytest.fixture(scope="module")
def faces(astronaut) -> tuple[np.ndarray, np.ndarray]:
    """A 64x56 face crop (small: VGG-16 on CPU) and a noisy, slightly shifted copy."""
    face = np.ascontiguousarray(astronaut[60:124, 180:236])
    noise = np.random.default_rng(0).integers(-20, 21, face.shape)
    other = np.clip(np.roll(face, 2, axis=1).astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return face, other


# --- an independent re-implementation: the LPIPS formula in plain torch ops, float64 ------------------------

def reference_features(x: torch.Tensor, state: dict, net: str) -> list[torch.Tensor]:
    def conv(h, index, stride=1, padding=1):
        return F.relu(F.conv2d(h, state[f"features.{index}.weight"].double(), state[f"features.{index}.bias"].double(),
                               stride=stride, padding=padding))

    if net == "alex":
        relu1 = conv(x, 0, stride=4, padding=2)
        relu2 = conv(F.max_pool2d(relu1, 3, 2), 3, padding=2)
        relu3 = conv(F.max_pool2d(relu2, 3, 2), 6)
        relu4 = conv(relu3, 8)
        return [relu1, relu2, relu3, relu4, conv(relu4, 10)]
    blocks, outputs, h = [(0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28)], [], x
    for number, block in enumerate(blocks):
        if number:
            h = F.max_pool2d(h, 2, 2)
        for index in block:
            h = conv(h, index)
        outputs.append(h)   # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
    return outputs


def reference_lpips(img0: np.ndarray, img1: np.ndarray, lin: dict, trunk: dict, net: str) -> float:
    """d = sum_l mean_hw sum_c w_lc (n0 - n1)^2, n = f / (||f||_c + 1e-10), on ((x/127.5 - 1) - shift) / scale."""
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)

    def prepare(img):
        x = torch.from_numpy(img.astype(np.float64) / 127.5 - 1).permute(2, 0, 1)[None]
        return (x - shift) / scale

    total = 0.0
    layers = zip(reference_features(prepare(img0), trunk, net), reference_features(prepare(img1), trunk, net))
    for layer, (f0, f1) in enumerate(layers):
        n0 = f0 / (torch.sqrt((f0 ** 2).sum(1, keepdim=True)) + 1e-10)
        n1 = f1 / (torch.sqrt((f1 ** 2).sum(1, keepdim=True)) + 1e-10)
        weights = lin[f"lin{layer}.model.1.weight"].double().view(1, -1, 1, 1)
        total += float(((n0 - n1) ** 2 * weights).sum(1).mean())
    return total


# --- layouts -----------------------------------------------------------------------------------------------

def test_trunks_have_torchvision_feature_names_and_shapes():
    for model, convs in ((AlexNetFeatures(), ALEXNET_CONVS), (VGG16Features(), VGG16_CONVS)):
        assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == feature_shapes(convs)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_heads_have_the_lpips_file_keys(net):
    assert {k: tuple(v.shape) for k, v in LPIPSHeads(LIN_CHANNELS[net]).state_dict().items()} == lin_shapes(net)
    model = LPIPS(net)
    # the scaling constants are not weights: the state dict is exactly trunk + lin layers
    assert set(model.state_dict()) == ({f"trunk.{k}" for k in feature_shapes(TRUNK_CONVS[net])}
                                       | {f"heads.{k}" for k in lin_shapes(net)})


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_test_files_have_the_official_key_sets(net, weight_files):
    lin_path, trunk_path, _, _ = weight_files[net]
    lin = torch.load(lin_path, map_location="cpu", weights_only=True)
    assert {k: tuple(v.shape) for k, v in lin.items()} == lin_shapes(net)
    trunk = torch.load(trunk_path, map_location="cpu", weights_only=True)
    classifier = {f"classifier.{i}.{kind}" for i in TRUNK_CLASSIFIER[net] for kind in ("weight", "bias")}
    assert set(trunk) == set(feature_shapes(TRUNK_CONVS[net])) | classifier


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_backbone_loaders_take_features_and_ignore_the_classifier(tmp_path, suffix):
    for net, loader in (("alex", load_alexnet), ("vgg", load_vgg16)):
        state, path = trunk_file_state(net), tmp_path / f"{net}{suffix}"
        torch.save(state, path) if suffix == ".pth" else save_file(state, str(path))
        model = loader(path)
        assert not model.training
        for name, value in model.state_dict().items():
            assert torch.equal(value, state[name])


def test_alexnet_taps_are_the_lpips_slices():
    model, x = AlexNetFeatures().eval(), torch.rand(1, 3, 64, 64)
    outputs = model(x)
    assert [tuple(o.shape[1:]) for o in outputs] == [(64, 15, 15), (192, 7, 7), (384, 3, 3), (256, 3, 3),
                                                     (256, 3, 3)]
    h, expected = x, []
    for start, stop in ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)):   # lpips' alexnet slice1..slice5
        h = model.features[start:stop](h)
        expected.append(h)
    assert all(torch.equal(got, want) for got, want in zip(outputs, expected))


def test_vgg16_taps_are_the_lpips_slices():
    model, x = VGG16Features().eval(), torch.rand(1, 3, 32, 32)
    outputs = model(x)
    assert [tuple(o.shape[1:]) for o in outputs] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4),
                                                     (512, 2, 2)]
    h, expected = x, []
    for start, stop in ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30)):   # lpips' vgg16 slice1..slice5
        h = model.features[start:stop](h)
        expected.append(h)
    assert all(torch.equal(got, want) for got, want in zip(outputs, expected))


# --- the distance ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_the_plain_torch_formula(net, weight_files, models, faces):
    _, _, lin, trunk = weight_files[net]
    model = models[net]
    assert not model.training and model.net == net
    for name, value in model.heads.state_dict().items():
        assert torch.equal(value, lin[name])
    for name, value in model.trunk.state_dict().items():
        assert torch.equal(value, trunk[name])
    got = lpips_distance(model, *faces)
    want = reference_lpips(*faces, lin, trunk, net)
    assert want > 1e-3                       # a real difference, not a vanishing network
    assert got == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_identical_is_zero_and_distance_is_symmetric(net, models, faces):
    model = models[net]
    face, other = faces
    assert lpips_distance(model, face, face) == 0.0
    assert lpips_distance(model, face, other) == pytest.approx(lpips_distance(model, other, face), abs=1e-7)
    assert not any(p.requires_grad for p in model.parameters())


def test_input_conversion_from_uint8_and_unit_floats():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 14
    x = image_to_lpips_input(image)
    assert x.shape == (1, 3, 2, 3) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), image / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(image_to_lpips_input(image / 255.0).numpy(), x.numpy(), atol=1e-6)
    assert float(image_to_lpips_input(np.full((2, 2, 3), 255, np.uint8)).max()) == 1.0


def test_lpips_of_different_sizes_is_an_input_error(models):
    with pytest.raises(InputError, match="same size"):
        lpips_distance(models["alex"], np.zeros((64, 64, 3), np.uint8), np.zeros((64, 72, 3), np.uint8))


def test_files_of_the_other_trunk_are_refused(weight_files):
    alex_lin, alex_trunk, _, _ = weight_files["alex"]
    vgg_lin, vgg_trunk, _, _ = weight_files["vgg"]
    with pytest.raises(CheckpointError, match=r"weights/v0\.1/vgg\.pth"):
        load_lpips("vgg", alex_lin, vgg_trunk)
    with pytest.raises(CheckpointError, match="vgg16"):
        load_lpips("vgg", vgg_lin, alex_trunk)


# --- the streaming metric ----------------------------------------------------------------------------------

def context_with(weight_files, net: str = "alex", **options) -> EvalContext:
    lin_path, trunk_path, _, _ = weight_files[net]
    return EvalContext(weights={"lpips": lin_path, "lpips_backbone": trunk_path},
                       options={"lpips_net": net, **options})


def test_metric_per_frame_values_and_mean(weight_files, faces):
    face, other = faces
    metric = LPIPSMetric(context_with(weight_files))
    assert (metric.name, metric.needs, metric.weights) == ("lpips", {"ref"}, ("lpips", "lpips_backbone"))
    assert metric.higher_is_better == {"lpips": False}
    assert math.isnan(metric.compute()["lpips"])
    values = [metric.update(FrameView(p, i), FrameView(r, i))["lpips"]
              for i, (p, r) in enumerate([(face, other), (face, face), (other, face)])]
    assert values[1] == 0.0 and values[0] > 0 and values[0] == pytest.approx(values[2], abs=1e-7)
    assert metric.compute() == {"lpips": pytest.approx(sum(values) / 3)}


def test_metric_vgg_option(weight_files, faces):
    metric = LPIPSMetric(context_with(weight_files, "vgg"))
    _, _, lin, trunk = weight_files["vgg"]
    value = metric.update(FrameView(faces[0]), FrameView(faces[1]))["lpips"]
    assert value == pytest.approx(reference_lpips(*faces, lin, trunk, "vgg"), abs=1e-6)


def test_metric_frame_size_mismatch_and_bad_net(weight_files):
    metric = LPIPSMetric(context_with(weight_files))
    with pytest.raises(InputError, match=r"lpips \(frame 3\).*64x64x3.*72x64x3"):
        metric.update(FrameView(np.zeros((64, 64, 3), np.uint8), 3), FrameView(np.zeros((64, 72, 3), np.uint8), 3))
    with pytest.raises(InputError, match="lpips_net"):
        LPIPSMetric(context_with(weight_files, lpips_net="squeeze"))


def test_missing_weights_name_the_flags(weight_files, monkeypatch):
    monkeypatch.delenv("FACEANIM_LPIPS_WEIGHTS", raising=False)
    monkeypatch.delenv("FACEANIM_LPIPS_BACKBONE", raising=False)
    with pytest.raises(MissingWeightsError, match="--lpips-weights.*FACEANIM_LPIPS_WEIGHTS"):
        LPIPSMetric(EvalContext())
    lin_path, trunk_path, _, _ = weight_files["alex"]
    with pytest.raises(MissingWeightsError, match="--lpips-backbone.*FACEANIM_LPIPS_BACKBONE"):
        LPIPSMetric(EvalContext(weights={"lpips": lin_path}))
    # the environment variables name the files as well as the flags do
    monkeypatch.setenv("FACEANIM_LPIPS_WEIGHTS", str(lin_path))
    monkeypatch.setenv("FACEANIM_LPIPS_BACKBONE", str(trunk_path))
    assert LPIPSMetric(EvalContext()).model.net == "alex"


def test_loads_files_in_the_legacy_format_of_the_official_ones(tmp_path, weight_files, faces):
    """The official lpips weights/v0.1/*.pth (2018) and torchvision's alexnet-owt-7be5be79.pth (2017) are
    pickles of PyTorch's pre-1.6 serialisation, not zip archives."""
    _, _, lin, trunk = weight_files["alex"]
    torch.save(lin, tmp_path / "alex.pth", _use_new_zipfile_serialization=False)
    torch.save(trunk, tmp_path / "alexnet-owt.pth", _use_new_zipfile_serialization=False)
    model = load_lpips("alex", tmp_path / "alex.pth", tmp_path / "alexnet-owt.pth")
    assert lpips_distance(model, *faces) == pytest.approx(reference_lpips(*faces, lin, trunk, "alex"), abs=1e-6)
