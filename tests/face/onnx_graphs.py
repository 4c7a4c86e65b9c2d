"""ONNX graphs in the layout of insightface's released recognition model (w600k_r50.onnx), built with onnx.helper
and random weights: for the ONNX reader's tests and for the native-layout files other tests write."""
from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

EPS = 1e-5


# ----------------------------------------------------------------------------------------------------
# Building test graphs


class GraphBuilder:
    def __init__(self, seed: int, folded: bool):
        self.rng = np.random.default_rng(seed)
        self.folded = folded
        self.nodes: list = []
        self.inits: list = []
        self.numbers = itertools.count(685)
        self.tensors = itertools.count()

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        output = output or f"t{next(self.tensors)}"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=f"{op_type}_{len(self.nodes)}", **attrs))
        return output

    def bn_values(self, c: int):
        r = self.rng
        return (r.uniform(0.5, 1.5, c), r.normal(0, 0.1, c), r.normal(0, 0.1, c), r.uniform(0.5, 1.5, c))

    def bn(self, x: str, prefix: str, c: int) -> str:
        names = [self.const(f"{prefix}.{k}", v)
                 for k, v in zip(("weight", "bias", "running_mean", "running_var"), self.bn_values(c))]
        return self.op("BatchNormalization", [x, *names], epsilon=EPS)

    def conv_bn(self, x: str, cin: int, cout: int, k: int, s: int, conv_name: str, bn_prefix: str, gain=1.0) -> str:
        w = self.rng.standard_normal((cout, cin, k, k)) * gain * np.sqrt(2.0 / (cin * k * k))
        attrs = dict(kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4, dilations=[1, 1], group=1)
        if self.folded:  # what torch.onnx.export does with Conv + BatchNorm in eval mode
            g, b, m, v = self.bn_values(cout)
            scale = g / np.sqrt(v + EPS)
            wn, bn_ = str(next(self.numbers)), str(next(self.numbers))
            next(self.numbers)  # the release skips one number per conv (its output)
            self.const(wn, w * scale[:, None, None, None])
            self.const(bn_, b - m * scale)
            return self.op("Conv", [x, wn, bn_], **attrs)
        y = self.op("Conv", [x, self.const(conv_name, w)], **attrs)
        return self.bn(y, bn_prefix, cout)

    def prelu(self, x: str, prefix: str, c: int) -> str:
        slope = self.rng.uniform(0.0, 0.5, c)
        if self.folded:
            name = self.const(f"prelu_{next(self.numbers)}", slope.reshape(c, 1, 1))
        else:
            name = self.op("Unsqueeze", [self.const(f"{prefix}.weight", slope)], axes=[1, 2])
        return self.op("PRelu", [x, name])

    def build(self, layers, num_features=512, opset=11):
        x = self.conv_bn("input.1", 3, 64, 3, 1, "conv1.weight", "bn1")
        x = self.prelu(x, "prelu", 64)
        cin = 64
        for stage, (count, width) in enumerate(zip(layers, (64, 128, 256, 512))):
            for i in range(count):
                p = f"layer{stage + 1}.{i}"
                stride = 2 if i == 0 else 1
                y = self.bn(x, f"{p}.bn1", cin)
                y = self.conv_bn(y, cin, width, 3, 1, f"{p}.conv1.weight", f"{p}.bn2")
                y = self.prelu(y, f"{p}.prelu", width)
                y = self.conv_bn(y, width, width, 3, stride, f"{p}.conv2.weight", f"{p}.bn3", gain=0.3)
                shortcut = x
                if i == 0:  # exported after conv2, as torch's forward runs it
                    shortcut = self.conv_bn(x, cin, width, 1, stride, f"{p}.downsample.0.weight", f"{p}.downsample.1")
                x = self.op("Add", [y, shortcut])
                cin = width
        x = self.bn(x, "bn2", 512)
        fc_w = self.rng.standard_normal((num_features, 512 * 49)) / np.sqrt(512 * 49)
        fc_b = self.rng.normal(0, 0.1, num_features)
        if self.folded:
            x = self.op("Flatten", [x], axis=1)
            x = self.op("Gemm", [x, self.const("fc.weight", fc_w), self.const("fc.bias", fc_b)],
                        alpha=1.0, beta=1.0, transB=1)
        else:
            x = self.op("Reshape", [x, self.const("shape", np.array([0, -1]))])
            self.inits[-1] = numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "shape")
            x = self.op("Dropout", [x], ratio=0.4)
            x = self.op("MatMul", [x, self.const("fc.weight_t", fc_w.T)])
            x = self.op("Add", [x, self.const("fc.bias", fc_b)])
        self.bn(x, "features", num_features)
        self.nodes[-1].output[0] = "683"
        graph = helper.make_graph(
            self.nodes, "torch_jit", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [None, 3, 112, 112])],
            [helper.make_tensor_value_info("683", TensorProto.FLOAT, [None, num_features])], self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def write_onnx(path, model):
    onnx.save(model, str(path))
    return path


