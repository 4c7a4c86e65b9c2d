"""Identity embedders: the ArcFace IR-SE50 network (official key layout of TreB1eN / pSp's
`model_ir_se50.pth`, strict loading, unit-norm 512-d output, one residual unit against a functional
re-implementation), the pSp/DVA preprocessing, embedder choice, missing weights and the per-frame cache."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from faceanim.errors import CheckpointError, InputError, MissingWeightsError
from faceanim.face import ffhq_align
from faceanim.face.arcface_align import arcface_crop
from faceanim.metrics.base import EvalContext, FaceModels, FrameView
from faceanim.metrics.face import AEDMetric, CSIMMetric
from faceanim.metrics.identity import (ArcFaceIdentity, DlibIdentity, arcface_input, embedding_of,
                                       identity_embedder)
from faceanim.nn.backbones.irse import IRSEBackbone, ir_se50, load_ir_se50

BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def official_ir_se50_keys() -> dict[str, tuple[int, ...]]:
    """The state dict of InsightFace_Pytorch's Backbone(50, drop_ratio, 'ir_se') (as pSp/DVA copy it),
    written out from its definition: get_blocks(50) gives 4 stages of 3, 4, 14, 3 units of depth 64, 128,
    256, 512, the first unit of each with stride 2; a unit whose depth equals its input width has a
    parameter-free MaxPool2d(1, stride) shortcut, else Conv2d 1x1 + BatchNorm2d; the residual branch is
    BN, conv3x3, PReLU, conv3x3, BN, SEModule(fc1, fc2; reduction 16)."""
    shapes: dict[str, tuple[int, ...]] = {"input_layer.0.weight": (64, 3, 3, 3), "input_layer.2.weight": (64,)}

    def batch_norm(prefix: str, channels: int) -> None:
        for name in BN:
            shapes[f"{prefix}.{name}"] = () if name == "num_batches_tracked" else (channels,)

    batch_norm("input_layer.1", 64)
    index, width = 0, 64
    for depth, units in zip((64, 128, 256, 512), (3, 4, 14, 3)):
        for _ in range(units):
            unit = f"body.{index}"
            if width != depth:
                shapes[f"{unit}.shortcut_layer.0.weight"] = (depth, width, 1, 1)
                batch_norm(f"{unit}.shortcut_layer.1", depth)
            batch_norm(f"{unit}.res_layer.0", width)
            shapes[f"{unit}.res_layer.1.weight"] = (depth, width, 3, 3)
            shapes[f"{unit}.res_layer.2.weight"] = (depth,)
            shapes[f"{unit}.res_layer.3.weight"] = (depth, depth, 3, 3)
            batch_norm(f"{unit}.res_layer.4", depth)
            shapes[f"{unit}.res_layer.5.fc1.weight"] = (depth // 16, depth, 1, 1)
            shapes[f"{unit}.res_layer.5.fc2.weight"] = (depth, depth // 16, 1, 1)
            index, width = index + 1, depth
    batch_norm("output_layer.0", 512)
    shapes["output_layer.3.weight"] = (512, 512 * 7 * 7)
    shapes["output_layer.3.bias"] = (512,)
    batch_norm("output_layer.4", 512)
    return shapes


def randomised(model: IRSEBackbone, seed: int = 0) -> IRSEBackbone:
    """Random BatchNorm statistics and PReLU slopes too, so that every parameter matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.copy_(torch.rand(module.num_features, generator=generator) * 0.2 - 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                if module.affine:
                    module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                    module.bias.copy_(torch.rand(module.num_features, generator=generator) * 0.2 - 0.1)
            elif isinstance(module, torch.nn.PReLU):
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) * 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> str:
    """A random-weight IR-SE50 file laid out like model_ir_se50.pth (written before PyTorch 0.4.1, so
    without BatchNorm `num_batches_tracked` counters)."""
    torch.manual_seed(0)
    state = {k: v for k, v in randomised(ir_se50()).state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("arcface") / "model_ir_se50.pth"
    torch.save(state, path)
    return str(path)


# ---------------------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------------------


def test_state_dict_has_the_official_keys_and_shapes():
    expected = official_ir_se50_keys()
    state = ir_se50().state_dict()
    assert len(expected) == 397
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert sum(p.numel() for p in ir_se50().parameters()) == 43_797_696  # 175 MB of float32, as the file


def test_weights_load_strict_and_give_unit_512d(weights_file):
    model = load_ir_se50(weights_file)
    assert not model.training
    torch.manual_seed(0)
    faces = torch.rand(3, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        embeddings = model(faces)
    assert embeddings.shape == (3, 512)
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3))
    model.load_state_dict(model.state_dict(), strict=True)  # a file with the counters loads too


def test_a_file_of_another_network_is_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "input_layer.0.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(CheckpointError, match="IR-SE50"):
        load_ir_se50(path)


def prelu(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, x, x * slope.view(1, -1, 1, 1))


def batch_norm(x: torch.Tensor, state: dict, prefix: str) -> torch.Tensor:
    shape = (1, -1, 1, 1)
    scale = state[f"{prefix}.weight"] / torch.sqrt(state[f"{prefix}.running_var"] + 1e-5)
    return (x - state[f"{prefix}.running_mean"].view(shape)) * scale.view(shape) + state[f"{prefix}.bias"].view(shape)


def reference_unit(x: torch.Tensor, state: dict, unit: str, stride: int, conv_shortcut: bool) -> torch.Tensor:
    """One IR-SE residual unit in plain tensor operations, from the official definition."""
    res = batch_norm(x, state, f"{unit}.res_layer.0")
    res = F.conv2d(res, state[f"{unit}.res_layer.1.weight"], padding=1)
    res = prelu(res, state[f"{unit}.res_layer.2.weight"])
    res = F.conv2d(res, state[f"{unit}.res_layer.3.weight"], stride=stride, padding=1)
    res = batch_norm(res, state, f"{unit}.res_layer.4")
    gate = res.mean(dim=(2, 3), keepdim=True)
    gate = torch.relu(F.conv2d(gate, state[f"{unit}.res_layer.5.fc1.weight"]))
    res = res * torch.sigmoid(F.conv2d(gate, state[f"{unit}.res_layer.5.fc2.weight"]))
    if conv_shortcut:
        shortcut = F.conv2d(x, state[f"{unit}.shortcut_layer.0.weight"], stride=stride)
        shortcut = batch_norm(shortcut, state, f"{unit}.shortcut_layer.1")
    else:
        shortcut = x[:, :, ::stride, ::stride]  # MaxPool2d(kernel 1, stride): plain subsampling
    return res + shortcut


@pytest.mark.parametrize("index, width, stride, conv_shortcut", [(0, 64, 2, False), (1, 64, 1, False),
                                                                 (3, 64, 2, True)])
def test_residual_unit_matches_the_official_definition(index, width, stride, conv_shortcut):
    model = randomised(ir_se50(), seed=index)
    state = model.state_dict()
    x = torch.randn(2, width, 14, 14)
    with torch.no_grad():
        expected = reference_unit(x, state, f"body.{index}", stride, conv_shortcut)
        torch.testing.assert_close(model.body[index](x), expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------------
# preprocessing
# ---------------------------------------------------------------------------------------------------


def adaptive_average_reference(image: np.ndarray, size: int) -> np.ndarray:
    """Adaptive average pooling written out: output cell i averages input rows floor(i n / size) to
    ceil((i + 1) n / size) - 1 (windows overlap when n / size is not an integer), likewise columns."""
    rows, cols = image.shape[:2]
    out = np.zeros((size, size) + image.shape[2:])
    for i in range(size):
        r0, r1 = (i * rows) // size, -((-(i + 1) * rows) // size)
        for j in range(size):
            c0, c1 = (j * cols) // size, -((-(j + 1) * cols) // size)
            out[i, j] = image[r0:r1, c0:c1].mean(axis=(0, 1))
    return out


def test_network_input_is_the_pooled_window_in_minus_one_to_one():
    window = np.random.default_rng(0).integers(0, 256, (188, 188, 3), dtype=np.uint8)
    batch = arcface_input(torch.from_numpy(window[None]))
    assert batch.shape == (1, 3, 112, 112) and batch.dtype == torch.float32
    expected = adaptive_average_reference(window.astype(np.float64) / 255 * 2 - 1, 112)
    np.testing.assert_allclose(batch[0].permute(1, 2, 0).numpy(), expected, atol=1e-5)
    flat = arcface_input(torch.full((1, 188, 188, 3), 255, dtype=torch.uint8))
    assert torch.allclose(flat, torch.ones_like(flat))


def test_arcface_crop_is_the_inner_window_of_the_ffhq_crop(astronaut):
    landmarks = FrameView(astronaut).landmarks
    crop = arcface_crop(astronaut, landmarks)
    aligned, _ = ffhq_align(astronaut, landmarks, 256)
    assert crop.shape == (188, 188, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop, aligned[35:223, 32:220])


# ---------------------------------------------------------------------------------------------------
# embedder choice, weights, cache
# ---------------------------------------------------------------------------------------------------


def test_dlib_is_the_default_and_unknown_names_are_refused(monkeypatch):
    monkeypatch.delenv("FACEANIM_ARCFACE", raising=False)
    assert isinstance(identity_embedder(EvalContext()), DlibIdentity)
    assert isinstance(identity_embedder(EvalContext(options={"identity": "dlib"})), DlibIdentity)
    with pytest.raises(InputError, match="arcface"):
        identity_embedder(EvalContext(options={"identity": "facenet"}))


def test_missing_arcface_weights_name_the_flag(monkeypatch, tmp_path):
    monkeypatch.delenv("FACEANIM_ARCFACE", raising=False)
    context = EvalContext(options={"identity": "arcface"})
    for metric in (CSIMMetric, AEDMetric):
        with pytest.raises(MissingWeightsError, match="--arcface.*FACEANIM_ARCFACE"):
            metric(context)
    absent = EvalContext(options={"identity": "arcface"}, weights={"arcface": str(tmp_path / "none.pth")})
    with pytest.raises(MissingWeightsError, match="not found.*--arcface"):
        CSIMMetric(absent)


def test_weights_from_the_environment(monkeypatch, weights_file):
    monkeypatch.setenv("FACEANIM_ARCFACE", weights_file)
    embedder = identity_embedder(EvalContext(options={"identity": "arcface"}))
    assert isinstance(embedder, ArcFaceIdentity) and embedder.key.endswith("model_ir_se50.pth")


def test_arcface_is_chosen_when_its_weights_are_given(monkeypatch, weights_file):
    monkeypatch.delenv("FACEANIM_ARCFACE", raising=False)
    assert isinstance(identity_embedder(EvalContext(weights={"arcface": weights_file})), ArcFaceIdentity)
    assert isinstance(identity_embedder(EvalContext(weights={"arcface": weights_file}, options={"identity": "dlib"})),
                      DlibIdentity)
    monkeypatch.setenv("FACEANIM_ARCFACE", weights_file)
    assert isinstance(identity_embedder(EvalContext()), ArcFaceIdentity)


class CountingEmbedder:
    key = "counting"

    def __init__(self):
        self.calls = 0

    def embed(self, view):
        self.calls += 1
        return np.array([float(view.index), 1.0])


def test_embeddings_are_computed_once_per_frame_and_embedder():
    first, second = CountingEmbedder(), CountingEmbedder()
    second.key = "other"
    frame = FrameView(np.zeros((8, 8, 3), np.uint8), index=3)
    for _ in range(3):
        np.testing.assert_array_equal(embedding_of(frame, first), [3.0, 1.0])
    embedding_of(frame, second)
    assert first.calls == 1 and second.calls == 1


def test_arcface_embeddings_of_a_real_face(astronaut, weights_file):
    models = FaceModels()
    context = EvalContext(weights={"arcface": weights_file}, options={"identity": "arcface"}, face_models=models)
    csim, aed = CSIMMetric(context), AEDMetric(context)
    assert csim.embedder.network is aed.embedder.network  # one network for all metrics
    pred, ref = FrameView(astronaut, 0, models), FrameView(astronaut.copy(), 0, models)
    assert csim.update(pred, ref)["csim"] == pytest.approx(1.0)
    assert aed.update(pred, ref)["aed"] == pytest.approx(0.0)
    vector = embedding_of(pred, csim.embedder)
    assert vector.shape == (512,) and math.isclose(float(np.linalg.norm(vector)), 1.0, rel_tol=1e-5)
    assert pred.embedding.shape == (128,)  # dlib's stays available beside it
    faceless = FrameView(np.full_like(astronaut, 128), 1, models)
    assert embedding_of(faceless, csim.embedder) is None
    assert math.isnan(csim.update(faceless, ref)["csim"]) and csim.compute()["csim_missing"] == 0.5
