"""insightface's ArcFace recognition network (buffalo_l w600k_r50.onnx) read from ONNX into PyTorch.

The ONNX files here are built with onnx.helper and random weights, in the layout of the released file
(BatchNorms after convolutions folded into them, numeric initialiser names, PReLU slopes (C, 1, 1),
Flatten + Gemm) and in an unfolded layout (named BatchNorms, Unsqueeze-wrapped slopes, Reshape +
Dropout + MatMul/Add). A small NumPy interpreter of the ONNX graph is the reference.
"""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
import onnx

from faceanim.errors import CheckpointError, MissingWeightsError
from faceanim.face.insightface_arcface import (ARCFACE_TEMPLATE, IdentityEmbedder, IResNet, arcface_blob,
                                               arcface_input, arcface_matrix, five_points_from_68,
                                               load_arcface_onnx)

from tests.face.onnx_graphs import EPS, GraphBuilder as _GraphBuilder, write_onnx as _write  # noqa: E402


# ----------------------------------------------------------------------------------------------------
# A NumPy reference interpreter for the ops these graphs use (float64)


def _conv(x, w, b, a):
    k = w.shape[2]
    s = a.get("strides", [1, 1])[0]
    p = a.get("pads", [0, 0, 0, 0])[0]
    x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    y = np.einsum("nchwij,ocij->nohw", win, w, optimize=True)
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def _run_reference(model, x: np.ndarray) -> np.ndarray:
    env = {t.name: numpy_helper.to_array(t).astype(np.float64) if numpy_helper.to_array(t).dtype.kind == "f"
           else numpy_helper.to_array(t) for t in model.graph.initializer}
    env[model.graph.input[0].name] = x.astype(np.float64)
    for node in model.graph.node:
        a = {at.name: helper.get_attribute_value(at) for at in node.attribute}
        i = [env[n] if n else None for n in node.input]
        op = node.op_type
        if op == "Conv":
            y = _conv(i[0], i[1], i[2] if len(i) > 2 else None, a)
        elif op == "BatchNormalization":
            shape = (1, -1) + (1,) * (i[0].ndim - 2)
            g, b, m, v = (t.reshape(shape) for t in i[1:5])
            y = (i[0] - m) / np.sqrt(v + a.get("epsilon", 1e-5)) * g + b
        elif op == "PRelu":
            slope = i[1] if i[1].ndim != 1 or i[0].ndim == 2 else i[1].reshape(-1, 1, 1)
            y = np.where(i[0] >= 0, i[0], i[0] * slope)
        elif op == "Relu":
            y = np.maximum(i[0], 0)
        elif op == "Add":
            y = i[0] + i[1]
        elif op == "Flatten":
            y = i[0].reshape(i[0].shape[0], -1)
        elif op == "Reshape":
            shape = [i[0].shape[k] if v == 0 else int(v) for k, v in enumerate(i[1])]
            y = i[0].reshape(shape)
        elif op == "Unsqueeze":
            y = i[0]
            for axis in sorted(a["axes"]):
                y = np.expand_dims(y, axis)
        elif op == "Gemm":
            w = i[1].T if a.get("transB", 0) else i[1]
            y = a.get("alpha", 1.0) * i[0] @ w + a.get("beta", 1.0) * (i[2] if len(i) > 2 else 0)
        elif op == "MatMul":
            y = i[0] @ i[1]
        elif op in ("Dropout", "Identity"):
            y = i[0]
        else:
            raise AssertionError(f"reference interpreter lacks {op}")
        env[node.output[0]] = y
    return env[model.graph.output[0].name]


def _relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, 112, 112)).astype(np.float32)


# ----------------------------------------------------------------------------------------------------
# (a) the PyTorch network reproduces the graph


@pytest.fixture(scope="module")
def tiny_release_onnx(tmp_path_factory):
    model = _GraphBuilder(1, folded=True).build([1, 1, 1, 1])
    return _write(tmp_path_factory.mktemp("arcface") / "w600k_tiny.onnx", model), model


@pytest.mark.parametrize("folded", [True, False], ids=["folded_release_layout", "unfolded"])
def test_tiny_iresnet_matches_numpy_reference(tmp_path, folded):
    model = _GraphBuilder(2, folded=folded).build([1, 2, 1, 1])
    net = load_arcface_onnx(_write(tmp_path / "r.onnx", model))
    assert isinstance(net, IResNet) and not net.training
    assert net.layers_config == (1, 2, 1, 1)
    x = _images(2)
    with torch.no_grad():
        ours = net(torch.from_numpy(x)).numpy()
    reference = _run_reference(model, x)
    assert ours.shape == (2, 512)
    assert _relative_error(ours, reference) < 1e-4


def test_full_iresnet50_release_layout_matches_numpy_reference(tmp_path):
    model = _GraphBuilder(3, folded=True).build([3, 4, 14, 3])
    names = [t.name for t in model.graph.initializer]
    assert names[:2] == ["685", "686"] and "layer1.0.bn1.running_var" in names and "features.weight" in names
    net = load_arcface_onnx(_write(tmp_path / "w600k_r50.onnx", model))
    assert net.layers_config == (3, 4, 14, 3)
    assert sum(p.numel() for p in net.parameters()) > 43_000_000
    x = _images(1, seed=4)
    with torch.no_grad():
        ours = net(torch.from_numpy(x)).numpy()
    assert _relative_error(ours, _run_reference(model, x)) < 1e-4


def test_module_keeps_arcface_torch_parameter_names(tiny_release_onnx):
    net = load_arcface_onnx(tiny_release_onnx[0])
    keys = set(net.state_dict())
    for key in ("conv1.weight", "bn1.running_var", "prelu.weight", "layer1.0.bn1.weight", "layer1.0.conv2.weight",
                "layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_mean", "bn2.bias", "fc.weight",
                "features.running_var"):
        assert key in keys


def test_torch_legacy_export_round_trip(tmp_path):
    """A real torch.onnx.export of the network (folds the BatchNorms, dedups equal slopes into Identity
    nodes, names weights onnx::Conv_NNN) loads back to the same function."""
    torch.manual_seed(0)
    net = IResNet([1, 1, 1, 1]).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 1.5)
            elif isinstance(m, torch.nn.Conv2d):
                m.weight.mul_(0.5)
    path = tmp_path / "exported.onnx"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, torch.zeros(1, 3, 112, 112), str(path), dynamo=False, opset_version=11)
    except Exception as err:  # no usable exporter in this torch build
        pytest.skip(f"torch.onnx.export unavailable: {type(err).__name__}")
    exported = onnx.load(str(path))
    assert any(t.name.startswith("onnx::Conv_") for t in exported.graph.initializer)
    loaded = load_arcface_onnx(path)
    x = torch.from_numpy(_images(2, seed=5))
    with torch.no_grad():
        assert _relative_error(loaded(x).numpy(), net(x).numpy()) < 1e-4
        assert _relative_error(loaded(x).numpy(), _run_reference(exported, x.numpy())) < 1e-4


# ----------------------------------------------------------------------------------------------------
# (b) errors


def _assert_one_line(err: Exception, path) -> None:
    text = str(err)
    assert "\n" not in text and str(path) in text


def test_missing_file_raises_missing_weights(tmp_path):
    for path in (None, tmp_path / "w600k_r50.onnx"):
        with pytest.raises(MissingWeightsError) as info:
            load_arcface_onnx(path)
        assert "\n" not in str(info.value)
    with pytest.raises(MissingWeightsError):
        IdentityEmbedder.from_onnx(tmp_path / "nowhere.onnx")


def test_garbage_file_raises_checkpoint_error(tmp_path):
    path = tmp_path / "w600k_r50.onnx"
    path.write_bytes(b"\x00\xffnot an onnx file\n" * 50)
    with pytest.raises(CheckpointError) as info:
        load_arcface_onnx(path)
    _assert_one_line(info.value, path)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError):
        load_arcface_onnx(empty)


def test_other_network_raises_checkpoint_error(tmp_path):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((10, 8 * 112 * 112)).astype(np.float32) * 0.01, "fc")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "other", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 112, 112])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    path = _write(tmp_path / "other.onnx", helper.make_model(graph))
    with pytest.raises(CheckpointError, match="not an insightface IResNet") as info:
        load_arcface_onnx(path)
    _assert_one_line(info.value, path)


def test_iresnet_with_wrong_stage_count_raises(tmp_path):
    three = _GraphBuilder(6, folded=True)  # an IResNet-like graph with three stages of one block
    x = three.prelu(three.conv_bn("input.1", 3, 64, 3, 1, "", ""), "", 64)
    cin = 64
    for width in (64, 128, 256):
        y = three.bn(x, "b", cin)
        y = three.conv_bn(y, cin, width, 3, 1, "", "")
        y = three.conv_bn(three.prelu(y, "", width), width, width, 3, 2, "", "")
        x = three.op("Add", [y, three.conv_bn(x, cin, width, 1, 2, "", "")])
        cin = width
    x = three.op("Flatten", [three.bn(x, "bn2", 256)], axis=1)
    three.op("Gemm", [x, three.const("fc", np.zeros((512, 256 * 196)))], "out", transB=1)
    image = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [None, 3, 112, 112])
    graph = helper.make_graph(three.nodes, "g", [image], [helper.make_tensor_value_info(
        "out", TensorProto.FLOAT, [None, 512])], three.inits)
    path = _write(tmp_path / "three.onnx", helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]))
    with pytest.raises(CheckpointError, match="stages") as info:
        load_arcface_onnx(path)
    _assert_one_line(info.value, path)


# ----------------------------------------------------------------------------------------------------
# (c) alignment


def test_similarity_matches_skimage_umeyama():
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(7)
    for _ in range(5):
        points = ARCFACE_TEMPLATE * rng.uniform(0.5, 3) + rng.uniform(0, 300, 2) + rng.normal(0, 3, (5, 2))
        tform = SimilarityTransform()
        tform.estimate(points, ARCFACE_TEMPLATE)
        np.testing.assert_allclose(arcface_matrix(points), tform.params[:2], atol=1e-6)


def test_template_points_give_the_identity_warp():
    image = np.random.default_rng(8).integers(0, 256, (160, 200, 3), dtype=np.uint8)
    np.testing.assert_allclose(arcface_matrix(ARCFACE_TEMPLATE), [[1, 0, 0], [0, 1, 0]], atol=1e-6)
    crop = arcface_input(image, ARCFACE_TEMPLATE)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    assert np.abs(crop.astype(int) - image[:112, :112]).max() <= 1


def test_rotated_scaled_face_is_warped_back_onto_the_template(astronaut):
    face = cv2.resize(np.ascontiguousarray(astronaut[40:260, 130:350]), (112, 112), interpolation=cv2.INTER_AREA)
    angle, scale, shift = np.deg2rad(25.0), 2.3, np.array([140.0, 60.0])
    forward = np.array([[scale * np.cos(angle), -scale * np.sin(angle), shift[0]],
                        [scale * np.sin(angle), scale * np.cos(angle), shift[1]]])
    big = cv2.warpAffine(face, forward, (480, 420), flags=cv2.INTER_CUBIC)
    points = ARCFACE_TEMPLATE.astype(np.float64) @ forward[:, :2].T + forward[:, 2]
    np.testing.assert_allclose(arcface_matrix(points)[:, :2] @ forward[:, :2], np.eye(2), atol=1e-6)
    back = arcface_input(big, points)
    inner = (slice(8, 104), slice(8, 104))
    error = np.abs(back[inner].astype(float) - face[inner].astype(float)).mean()
    assert error < 4.0


def test_five_points_from_68_order():
    landmarks = np.zeros((68, 2))
    landmarks[36:42] = [100, 100]
    landmarks[42:48] = [160, 102]
    landmarks[30] = [130, 140]
    landmarks[48] = [108, 170]
    landmarks[54] = [152, 171]
    np.testing.assert_allclose(five_points_from_68(landmarks),
                               [[100, 100], [160, 102], [130, 140], [108, 170], [152, 171]])


def test_blob_matches_insightface_get_feat_preprocessing():
    crop = np.random.default_rng(9).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    bgr = np.ascontiguousarray(crop[..., ::-1])  # insightface works on BGR frames and swaps them back
    expected = cv2.dnn.blobFromImages([bgr], 1.0 / 127.5, (112, 112), (127.5, 127.5, 127.5), swapRB=True)
    np.testing.assert_allclose(arcface_blob(crop).numpy(), expected, atol=1e-6)


# ----------------------------------------------------------------------------------------------------
# (d) the embedder on a real face


def test_identity_embedder_on_astronaut(astronaut, astronaut_face, tiny_release_onnx):
    path, model = tiny_release_onnx
    _, landmarks = astronaut_face
    embedder = IdentityEmbedder.from_onnx(path)
    vector = embedder(astronaut, landmarks)
    assert vector.shape == (512,) and vector.dtype == np.float32 and np.isfinite(vector).all()
    crop = arcface_input(astronaut, five_points_from_68(landmarks))
    reference = _run_reference(model, arcface_blob(crop).numpy())[0]
    assert _relative_error(vector, reference) < 1e-4
