"""insightface's ArcFace identity network (buffalo_l `w600k_r50.onnx`, an IResNet-50) in PyTorch.

Hallo and other EMO-style talking-head models condition on the 512-d vector that insightface's
`FaceAnalysis(...).get(img)[i]["embedding"]` returns: the raw (not L2-normalised) output of the
recognition network on a 112x112 face warped onto the ArcFace 5-point template (`norm_crop`), scaled
to [-1, 1] as `(pixel - 127.5) / 127.5`, channels in RGB order (insightface feeds BGR frames and lets
`cv2.dnn.blobFromImages(..., swapRB=True)` swap them; we take RGB frames, so nothing is swapped).

The weights come from the user's own ONNX file, read with the `onnx` package. Only the initialisers and
the node list are read; the graph is never executed (no onnxruntime).

What the released file looks like (an old `torch.onnx.export` of arcface_torch's `iresnet50`, input
"input.1", output "683"): every BatchNorm that follows a convolution has been folded into that
convolution by the exporter, so those convolutions carry a bias and have numeric initialiser names
("685"/"686" for the stem, then "688"/"689", ...; newer PyTorch spells them "onnx::Conv_NNN"). The
BatchNorms that do not follow a convolution stay: each block's leading `bn1` ("layer1.0.bn1.weight",
"...running_mean", ...), the final `bn2` and the 1-d `features` BatchNorm after `fc`. PReLU slopes are
stored with shape (C, 1, 1) under numeric names. Because the names depend on the exporter version,
`load_arcface_onnx` ignores them and follows the graph's data flow instead.

Supported graphs, per block: BatchNormalization -> Conv 3x3 [-> BatchNormalization] -> PRelu ->
Conv 3x3 (stride 1 or 2) [-> BatchNormalization] -> Add, the other Add input being the block input
or Conv 1x1 [-> BatchNormalization] of it; the stem Conv 3x3 [-> BatchNormalization] -> PRelu; the
tail BatchNormalization -> Flatten or Reshape -> Gemm, or MatMul [-> Add bias] -> [BatchNormalization].
Identity, Dropout and Constant nodes (and Identity nodes that alias deduplicated initialisers) are
looked through. A folded BatchNorm becomes an identity-equivalent BatchNorm in our module (weight 1,
mean 0, variance 1 - eps, the conv bias as its bias), so the module keeps arcface_torch's parameter
layout whether the file was folded or not. Not supported: graphs rewritten by simplifiers into Mul/Add
arithmetic, quantised graphs, and MXNet-era models (those start with Sub/Mul nodes and take 0..255
input).
"""
from __future__ import annotations

import os
from collections import defaultdict
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError, InputError, MissingWeightsError
from ._image import as_landmarks, as_rgb_image

INPUT_SIZE = 112
EMBEDDING_SIZE = 512
IRESNET50_LAYERS = (3, 4, 14, 3)
STAGE_WIDTHS = (64, 128, 256, 512)
BN_EPS = 1e-5

# insightface.utils.face_align.arcface_dst: where norm_crop puts the 5 points in a 112x112 crop
# (image-left eye, image-right eye, nose tip, image-left mouth corner, image-right mouth corner).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


# ----------------------------------------------------------------------------------------------------
# The network (arcface_torch's IResNet, inference only)


class IBasicBlock(nn.Module):
    """Pre-activation-style residual unit: BN, conv3x3, BN, PReLU, conv3x3 (carries the stride), BN."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, eps=BN_EPS)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.prelu = nn.PReLU(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels, eps=BN_EPS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class IResNet(nn.Module):
    """arcface_torch's IResNet (default iresnet50, layers (3, 4, 14, 3)), parameter names as there.

    forward: (N, 3, 112, 112) float, RGB scaled to [-1, 1] -> (N, num_features) unnormalised embedding.
    Use in eval mode (the dropout before `fc` is inactive there, as in the exported graph)."""

    fc_scale = 7 * 7

    def __init__(self, layers: Sequence[int] = IRESNET50_LAYERS, num_features: int = EMBEDDING_SIZE,
                 dropout: float = 0.0):
        super().__init__()
        layers = tuple(int(n) for n in layers)
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"IResNet needs four stages of at least one block each, got {layers}")
        self.layers_config = layers
        self.conv1 = nn.Conv2d(3, STAGE_WIDTHS[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0], eps=BN_EPS)
        self.prelu = nn.PReLU(STAGE_WIDTHS[0])
        in_channels = STAGE_WIDTHS[0]
        for index, (count, width) in enumerate(zip(layers, STAGE_WIDTHS)):
            blocks = [IBasicBlock(in_channels, width, stride=2)]
            blocks += [IBasicBlock(width, width) for _ in range(count - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
            in_channels = width
        self.bn2 = nn.BatchNorm2d(in_channels, eps=BN_EPS)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(in_channels * self.fc_scale, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=BN_EPS)

    def blocks(self) -> list[IBasicBlock]:
        return [block for i in range(1, 5) for block in getattr(self, f"layer{i}")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


# ----------------------------------------------------------------------------------------------------
# Reading an exported ONNX graph


class _NotIResNet(Exception):
    """The graph does not have the structure load_arcface_onnx supports (message: why, one line)."""


_FOLDABLE = ("Unsqueeze", "Squeeze", "Reshape", "Cast")


def _fold(node: Any, values: list[np.ndarray | None]) -> np.ndarray:
    """Evaluate a shape-only op on constants (exports without constant folding wrap PReLU slopes so)."""
    a = _attrs(node)
    data = np.asarray(values[0])
    axes = a.get("axes", None) if len(values) < 2 or values[1] is None else [int(v) for v in values[1].reshape(-1)]
    if node.op_type == "Unsqueeze":
        for axis in sorted(int(v) % (data.ndim + len(axes)) for v in axes):
            data = np.expand_dims(data, axis)
        return data
    if node.op_type == "Squeeze":
        return np.squeeze(data, axis=None if axes is None else tuple(int(v) for v in axes))
    if node.op_type == "Reshape":
        shape = [int(v) for v in values[1].reshape(-1)]
        shape = [data.shape[i] if v == 0 else v for i, v in enumerate(shape)]
        return data.reshape(shape)
    return data.astype(np.float32)  # Cast: parameters are used as float32 anyway


class _Graph:
    """The parts of an ONNX graph the walker needs: constants, producers and consumers of each tensor."""

    def __init__(self, model: Any):
        from onnx import numpy_helper

        graph = model.graph
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self._alias: dict[str, str] = {}
        self.consumers: dict[str, list[Any]] = defaultdict(list)
        self.producer: dict[str, Any] = {}
        for node in graph.node:  # ONNX keeps nodes in topological order
            if node.op_type == "Constant":
                value = [a for a in node.attribute if a.name == "value"]
                if not value:
                    raise _NotIResNet("a Constant node without a tensor value")
                self.consts[node.output[0]] = numpy_helper.to_array(value[0].t)
                continue
            if node.op_type in _FOLDABLE and all(not n or self.resolve(n) in self.consts for n in node.input):
                self.consts[node.output[0]] = _fold(node, [self.consts[self.resolve(n)] if n else None
                                                          for n in node.input])
                continue
            if node.op_type in ("Identity", "Dropout"):
                source = self.resolve(node.input[0])
                if source in self.consts:
                    self.consts[node.output[0]] = self.consts[source]
                else:
                    self._alias[node.output[0]] = source
                continue
            for name in node.input:
                if name and self.resolve(name) not in self.consts:
                    self.consumers[self.resolve(name)].append(node)
            for name in node.output:
                self.producer[name] = node
        inputs = [i.name for i in graph.input if i.name not in self.consts]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise _NotIResNet(f"expected one image input and one output, found {len(inputs)} and {len(graph.output)}")
        self.input = inputs[0]
        self.output = self.resolve(graph.output[0].name)

    def resolve(self, name: str) -> str:
        while name in self._alias:
            name = self._alias[name]
        return name

    def const(self, node: Any, index: int) -> np.ndarray | None:
        if index >= len(node.input) or not node.input[index]:
            return None
        name = self.resolve(node.input[index])
        if name not in self.consts:
            raise _NotIResNet(f"{node.op_type} node {node.name!r} has a computed (non-constant) parameter")
        return np.asarray(self.consts[name], dtype=np.float32)

    def out(self, node: Any) -> str:
        return self.resolve(node.output[0])

    def sole(self, tensor: str, ops: tuple[str, ...]) -> Any:
        users = self.consumers.get(tensor, [])
        if len(users) != 1 or users[0].op_type not in ops:
            found = ", ".join(u.op_type for u in users) or "nothing"
            raise _NotIResNet(f"expected {' or '.join(ops)} after tensor {tensor!r}, found {found}")
        return users[0]

    def maybe(self, tensor: str, op: str) -> Any | None:
        users = self.consumers.get(tensor, [])
        return users[0] if len(users) == 1 and users[0].op_type == op else None


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class _Conv:
    def __init__(self, g: _Graph, node: Any, kernel: int, strides: tuple[int, ...]):
        self.weight = g.const(node, 1)
        self.bias = g.const(node, 2)
        a = _attrs(node)
        w = self.weight
        if w is None or w.ndim != 4 or w.shape[2:] != (kernel, kernel):
            raise _NotIResNet(f"Conv {node.name!r}: expected a {kernel}x{kernel} kernel, got weight shape "
                              f"{None if w is None else w.shape}")
        stride = tuple(a.get("strides", (1, 1)))
        if len(set(stride)) != 1 or stride[0] not in strides:
            raise _NotIResNet(f"Conv {node.name!r}: unexpected strides {stride}")
        self.stride = int(stride[0])
        pads = tuple(a.get("pads", (0, 0, 0, 0)))
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or pads != (kernel // 2,) * 4:
            raise _NotIResNet(f"Conv {node.name!r}: unexpected padding {pads}")
        if a.get("group", 1) != 1 or tuple(a.get("dilations", (1, 1))) != (1, 1):
            raise _NotIResNet(f"Conv {node.name!r}: grouped or dilated convolution")


class _Norm:
    def __init__(self, g: _Graph, node: Any):
        values = [g.const(node, i) for i in range(1, 5)]
        if any(v is None for v in values):
            raise _NotIResNet(f"BatchNormalization {node.name!r} lacks parameters")
        self.weight, self.bias, self.mean, self.var = [v.reshape(-1) for v in values]
        self.eps = float(_attrs(node).get("epsilon", 1e-5))


def _conv_then_norm(g: _Graph, node: Any, kernel: int, strides: tuple[int, ...]) -> tuple[_Conv, _Norm | None, str]:
    conv = _Conv(g, node, kernel, strides)
    after = g.out(node)
    bn_node = g.maybe(after, "BatchNormalization")
    if bn_node is None:
        return conv, None, after
    return conv, _Norm(g, bn_node), g.out(bn_node)


class _Block:
    def __init__(self, g: _Graph, x: str, bn1_node: Any):
        self.bn1 = _Norm(g, bn1_node)
        conv1_node = g.sole(g.out(bn1_node), ("Conv",))
        self.conv1, self.bn2, t = _conv_then_norm(g, conv1_node, 3, (1,))
        prelu = g.sole(t, ("PRelu",))
        self.slope = g.const(prelu, 1)
        conv2_node = g.sole(g.out(prelu), ("Conv",))
        self.conv2, self.bn3, t = _conv_then_norm(g, conv2_node, 3, (1, 2))
        add = g.sole(t, ("Add",))
        others = [g.resolve(name) for name in add.input if g.resolve(name) != t]
        if len(others) != 1:
            raise _NotIResNet(f"Add {add.name!r} is not a residual sum")
        self.downsample: tuple[_Conv, _Norm | None] | None = None
        if others[0] != x:
            shortcut = g.producer.get(others[0])
            norm = None
            if shortcut is not None and shortcut.op_type == "BatchNormalization":
                norm = _Norm(g, shortcut)
                shortcut = g.producer.get(g.resolve(shortcut.input[0]))
            if shortcut is None or shortcut.op_type != "Conv" or g.resolve(shortcut.input[0]) != x:
                raise _NotIResNet(f"the shortcut of Add {add.name!r} is neither the block input nor a 1x1 Conv of it")
            conv = _Conv(g, shortcut, 1, (self.conv2.stride,))
            self.downsample = (conv, norm)
        self.in_channels = int(self.conv1.weight.shape[1])
        self.channels = int(self.conv2.weight.shape[0])
        self.stride = self.conv2.stride
        self.output = g.out(add)


class _Parsed:
    """The IResNet read off a graph by following its data flow from the input."""

    def __init__(self, g: _Graph):
        stem_node = g.sole(g.input, ("Conv",))
        self.conv1, self.bn1, t = _conv_then_norm(g, stem_node, 3, (1,))
        if self.conv1.weight.shape[1] != 3:
            raise _NotIResNet(f"the first Conv takes {self.conv1.weight.shape[1]} channels, not 3")
        prelu = g.sole(t, ("PRelu",))
        self.slope = g.const(prelu, 1)
        x = g.out(prelu)
        self.blocks: list[_Block] = []
        while True:
            users = g.consumers.get(x, [])
            norms = [u for u in users if u.op_type == "BatchNormalization"]
            if len(norms) != 1:
                found = ", ".join(u.op_type for u in users) or "nothing"
                raise _NotIResNet(f"expected a BatchNormalization after tensor {x!r}, found {found}")
            if len(users) == 1 and g.maybe(g.out(norms[0]), "Conv") is None:
                break  # the final BatchNorm: the tail starts here
            block = _Block(g, x, norms[0])
            self.blocks.append(block)
            x = block.output
            if len(self.blocks) > 1000:
                raise _NotIResNet("more than 1000 residual blocks")
        if not self.blocks:
            raise _NotIResNet("no residual blocks")
        self.bn2 = _Norm(g, norms[0])
        flat = g.sole(g.out(norms[0]), ("Flatten", "Reshape"))
        if flat.op_type == "Flatten" and _attrs(flat).get("axis", 1) != 1:
            raise _NotIResNet("Flatten with an axis other than 1")
        linear = g.sole(g.out(flat), ("Gemm", "MatMul"))
        t = g.out(linear)
        if linear.op_type == "Gemm":
            a = _attrs(linear)
            if a.get("transA", 0):
                raise _NotIResNet("Gemm with transA")
            weight = g.const(linear, 1)
            weight = weight if a.get("transB", 0) else weight.T
            self.fc_weight = weight * float(a.get("alpha", 1.0))
            bias = g.const(linear, 2)
            self.fc_bias = None if bias is None else bias.reshape(-1) * float(a.get("beta", 1.0))
        else:
            self.fc_weight = g.const(linear, 1).T
            self.fc_bias = None
            bias_node = g.maybe(t, "Add")
            if bias_node is not None:
                other = [name for name in bias_node.input if g.resolve(name) != t]
                self.fc_bias = g.const(bias_node, list(bias_node.input).index(other[0])).reshape(-1)
                t = g.out(bias_node)
        self.features = None
        features_node = g.maybe(t, "BatchNormalization")
        if features_node is not None:
            self.features = _Norm(g, features_node)
            t = g.out(features_node)
        if t != g.output:
            found = ", ".join(u.op_type for u in g.consumers.get(t, [])) or "nothing"
            raise _NotIResNet(f"unexpected {found} after the embedding layer")

    def layers(self) -> tuple[int, ...]:
        counts: list[int] = []
        for block in self.blocks:
            if block.downsample is not None or not counts:
                counts.append(0)
            counts[-1] += 1
        widths = []
        for block in self.blocks:
            if block.downsample is not None:
                if block.stride != 2:
                    raise _NotIResNet("a stage that does not start with a stride-2 block")
                widths.append(block.channels)
        if len(counts) != 4 or tuple(widths) != STAGE_WIDTHS or self.blocks[0].downsample is None:
            raise _NotIResNet(f"stages {counts} of widths {widths}, not IResNet's four stages of "
                              f"{'/'.join(map(str, STAGE_WIDTHS))} channels")
        return tuple(counts)


def _put(target: torch.Tensor, value: np.ndarray, what: str) -> None:
    value = np.asarray(value, dtype=np.float32)
    if value.size == 1 and target.numel() > 1 and what.endswith("slope"):
        value = np.full(target.shape, float(value.reshape(-1)[0]), dtype=np.float32)
    if value.size != target.numel() or (value.ndim == target.ndim and value.shape != tuple(target.shape)):
        raise _NotIResNet(f"{what} has shape {value.shape}, the network needs {tuple(target.shape)}")
    target.copy_(torch.from_numpy(np.array(value.reshape(target.shape), dtype=np.float32, copy=True)))


def _put_conv_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d | nn.BatchNorm1d, c: _Conv | None,
                   n: _Norm | None, what: str, bias: np.ndarray | None = None) -> None:
    """Fill conv (or nothing) + BN; a missing BN (folded by the exporter) becomes identity-equivalent."""
    if c is not None:
        _put(conv.weight, c.weight, f"{what} weight")
        bias = c.bias
    channels = bn.num_features
    bias = np.zeros(channels, np.float32) if bias is None else np.asarray(bias, np.float32).reshape(-1)
    if n is None:
        bn.eps = BN_EPS
        _put(bn.weight, np.ones(channels, np.float32), f"{what} norm weight")
        _put(bn.bias, bias, f"{what} bias")
        _put(bn.running_mean, np.zeros(channels, np.float32), f"{what} norm mean")
        _put(bn.running_var, np.full(channels, 1.0 - BN_EPS, np.float32), f"{what} norm variance")
    else:  # a bias before a BatchNorm only shifts its mean
        bn.eps = n.eps
        _put(bn.weight, n.weight, f"{what} norm weight")
        _put(bn.bias, n.bias, f"{what} norm bias")
        _put(bn.running_mean, n.mean - bias if bias.size == n.mean.size else n.mean, f"{what} norm mean")
        _put(bn.running_var, n.var, f"{what} norm variance")


def _norm_only(bn: nn.BatchNorm2d, n: _Norm, what: str) -> None:
    bn.eps = n.eps
    _put(bn.weight, n.weight, f"{what} weight")
    _put(bn.bias, n.bias, f"{what} bias")
    _put(bn.running_mean, n.mean, f"{what} mean")
    _put(bn.running_var, n.var, f"{what} variance")


def _build(parsed: _Parsed) -> IResNet:
    fc_weight = parsed.fc_weight
    net = IResNet(parsed.layers(), num_features=int(fc_weight.shape[0]))
    if fc_weight.shape[1] != net.fc.in_features:
        raise _NotIResNet(f"the embedding layer takes {fc_weight.shape[1]} inputs, not 512x7x7 (112x112 input)")
    with torch.no_grad():
        _put_conv_norm(net.conv1, net.bn1, parsed.conv1, parsed.bn1, "stem conv")
        _put(net.prelu.weight, parsed.slope, "stem PReLU slope")
        for index, (block, found) in enumerate(zip(net.blocks(), parsed.blocks)):
            what = f"block {index}"
            if found.stride != block.conv2.stride[0] or (found.downsample is None) != (block.downsample is None):
                raise _NotIResNet(f"{what} has a different stride or shortcut than IResNet's")
            _norm_only(block.bn1, found.bn1, f"{what} bn1")
            _put_conv_norm(block.conv1, block.bn2, found.conv1, found.bn2, f"{what} conv1")
            _put(block.prelu.weight, found.slope, f"{what} PReLU slope")
            _put_conv_norm(block.conv2, block.bn3, found.conv2, found.bn3, f"{what} conv2")
            if found.downsample is not None:
                _put_conv_norm(block.downsample[0], block.downsample[1], *found.downsample, f"{what} shortcut")
        _norm_only(net.bn2, parsed.bn2, "final norm")
        _put(net.fc.weight, fc_weight, "embedding layer weight")
        fc_bias = parsed.fc_bias if parsed.fc_bias is not None else np.zeros(net.fc.out_features, np.float32)
        _put(net.fc.bias, fc_bias, "embedding layer bias")
        _put_conv_norm(None, net.features, None, parsed.features, "features")  # type: ignore[arg-type]
    return net.eval()


def load_arcface_onnx(path: str | os.PathLike | None) -> IResNet:
    """The IResNet of an insightface/arcface_torch ONNX export (e.g. buffalo_l `w600k_r50.onnx`), eval mode,
    float32 on the CPU. The depth (layers per stage) is read from the graph; weights only, never run.

    MissingWeightsError: no path or no such file. CheckpointError: not an ONNX model, or not an IResNet."""
    if path is None or not os.path.isfile(path):
        raise MissingWeightsError(
            f"the insightface ArcFace recognition model (buffalo_l w600k_r50.onnx) was not found at {path}; "
            "pass the path of your local copy")
    import onnx

    try:
        model = onnx.load(os.fspath(path), load_external_data=True)
    except Exception as err:  # protobuf decode errors, missing external data, ...
        raise CheckpointError(path, f"not a readable ONNX model ({type(err).__name__}: {err})") from None
    if len(model.graph.node) == 0:
        raise CheckpointError(path, "not a readable ONNX model (the graph has no nodes)")
    try:
        return _build(_Parsed(_Graph(model)))
    except _NotIResNet as err:
        raise CheckpointError(path, f"not an insightface IResNet recognition model: {err}") from None


# ----------------------------------------------------------------------------------------------------
# Alignment and the embedder


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 least-squares similarity transform taking src to dst (Umeyama 1991, as skimage's
    SimilarityTransform.estimate computes it, which insightface's estimate_norm uses)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    signs = np.ones(2)
    if np.linalg.det(cov) < 0:
        signs[1] = -1
    u, s, vt = np.linalg.svd(cov)
    rank = np.linalg.matrix_rank(cov)
    if rank == 0:
        raise InputError(None, "five points: all at one place, so no alignment can be estimated")
    if rank == 1:
        if np.linalg.det(u) * np.linalg.det(vt) > 0:
            rotation = u @ vt
        else:
            last = signs[1]
            signs[1] = -1
            rotation = u @ np.diag(signs) @ vt
            signs[1] = last
    else:
        rotation = u @ np.diag(signs) @ vt
    scale = (s @ signs) / src_c.var(axis=0).sum()
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def arcface_matrix(five_points: np.ndarray) -> np.ndarray:
    """The 2x3 warp `norm_crop` applies: five image points -> the 112x112 ArcFace template."""
    points = np.asarray(five_points, dtype=np.float64)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise InputError(None, f"five points: expected 5 finite (x, y) points, got an array of shape {points.shape}")
    return _similarity(points, ARCFACE_TEMPLATE)


def arcface_input(image_rgb_uint8: np.ndarray, five_points: np.ndarray) -> np.ndarray:
    """insightface's `norm_crop`: the (112, 112, 3) uint8 RGB face, warped (bilinear, black border) so
    the five points land on the ArcFace template."""
    image = as_rgb_image(image_rgb_uint8)
    matrix = arcface_matrix(five_points)
    return cv2.warpAffine(image, matrix, (INPUT_SIZE, INPUT_SIZE), borderValue=0.0)


def five_points_from_68(landmarks68: np.ndarray) -> np.ndarray:
    """insightface's five key points from 68 dlib landmarks, (5, 2) float32: image-left eye centre
    (mean of 36-41), image-right eye centre (42-47), nose tip (30), mouth corners 48 and 54.

    An approximation of what insightface's SCRFD detector returns for the same face."""
    points = as_landmarks(landmarks68)
    five = np.stack([points[36:42].mean(axis=0), points[42:48].mean(axis=0), points[30], points[48], points[54]])
    return five.astype(np.float32)


def arcface_blob(crops: np.ndarray) -> torch.Tensor:
    """(N, 112, 112, 3) or (112, 112, 3) uint8 RGB crops -> (N, 3, 112, 112) float32 in [-1, 1], as
    `cv2.dnn.blobFromImages(crops_bgr, 1/127.5, (112, 112), (127.5,) * 3, swapRB=True)` gives."""
    crops = np.asarray(crops)
    if crops.ndim == 3:
        crops = crops[None]
    if crops.ndim != 4 or crops.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise InputError(None, f"ArcFace crops: expected (N, 112, 112, 3) RGB, got shape {crops.shape}")
    blob = (crops.astype(np.float32) - 127.5) * np.float32(1.0 / 127.5)
    return torch.from_numpy(np.ascontiguousarray(blob.transpose(0, 3, 1, 2)))


class IdentityEmbedder:
    """The 512-d identity vector insightface's FaceAnalysis returns as `face["embedding"]` (unnormalised),
    computed in PyTorch from the buffalo_l recognition ONNX file.

    `embedder(image_rgb_uint8, landmarks68)` -> (512,) float32. The five alignment points come from
    the 68 dlib landmarks (`five_points_from_68`); `embed_five_points` takes detector key points."""

    def __init__(self, network: IResNet, device: str | torch.device | None = None, dtype: torch.dtype | None = None):
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype or torch.float32
        self.network = network.eval().to(device=self.device, dtype=self.dtype)

    @classmethod
    def from_onnx(cls, path: str | os.PathLike | None, device: str | torch.device | None = None,
                  dtype: torch.dtype | None = None) -> "IdentityEmbedder":
        return cls(load_arcface_onnx(path), device=device, dtype=dtype)

    @torch.inference_mode()
    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        """(N, 112, 112, 3) uint8 RGB crops already on the template -> (N, 512) float32."""
        blob = arcface_blob(crops).to(device=self.device, dtype=self.dtype)
        return self.network(blob).float().cpu().numpy()

    def embed_five_points(self, image_rgb_uint8: np.ndarray, five_points: np.ndarray) -> np.ndarray:
        return self.embed_aligned(arcface_input(image_rgb_uint8, five_points))[0]

    def __call__(self, image_rgb_uint8: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
        return self.embed_five_points(image_rgb_uint8, five_points_from_68(landmarks68))
