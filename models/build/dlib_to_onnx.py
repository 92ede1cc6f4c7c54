"""Convert dlib's face-recognition ResNet (as read by dlib_format) into an ONNX graph, with numpy and onnx.helper.

Contract of the produced graph (also in models/manifest.json):
  input  `chips`        uint8  [N, 150, 150, 3]  RGB face chips from dlib.get_face_chip(img, shape, 150, 0.25)
  output `descriptors`  float32 [N, 128]          dlib's raw descriptor (not unit length; Euclidean distance)

What the graph does, layer for layer as dlib does it:
- input normalisation (pixel - mean[c]) / 256 with the means stored in the file, then NHWC -> NCHW;
- each convolution with the affine (batch-norm folded at training time) that follows it folded into its weights;
- dlib's add_prev, which zero-extends the smaller input to the larger one's shape (channels and spatially, at
  the end), as explicit Pad nodes: ONNX's Add would broadcast instead;
- avg_pool_everything -> GlobalAveragePool, fc_no_bias -> MatMul with the (inputs, outputs) weight matrix.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.build.dlib_format import DlibResnet

OPSET = 17
IR_VERSION = 8  # onnxruntime >= 1.14 reads this; kept fixed so the output bytes are reproducible
INPUT_NAME = "chips"
OUTPUT_NAME = "descriptors"


@dataclass
class _Value:
    name: str
    shape: tuple[int, int, int]  # (channels, height, width); batch is dynamic


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._counter = 0

    def fresh(self, stem: str) -> str:
        self._counter += 1
        return f"{stem}_{self._counter}"

    def constant(self, stem: str, array: np.ndarray) -> str:
        name = self.fresh(stem)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], stem: str, **attrs) -> str:
        out = self.fresh(stem)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _conv_output(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _pad_to(g: _GraphBuilder, value: _Value, shape: tuple[int, int, int]) -> str:
    """Zero-extend `value` at the end of the channel, row and column axes up to `shape` (dlib's add_prev)."""
    extra = [want - have for want, have in zip(shape, value.shape)]
    if not any(extra):
        return value.name
    pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)  # NCHW begins, then NCHW ends
    return g.node("Pad", [value.name, g.constant("pads", pads)], "pad", mode="constant")


def build_onnx(net: DlibResnet, *, doc: str = "") -> onnx.ModelProto:
    g = _GraphBuilder()
    size = net.input_size

    # (pixel - mean) / 256, per RGB channel, on the NHWC uint8 batch; then NCHW for the convolutions.
    x = g.node("Cast", [INPUT_NAME], "as_float", to=TensorProto.FLOAT)
    means = np.array(net.input_means, dtype=np.float32).reshape(1, 1, 1, 3)
    x = g.node("Sub", [x, g.constant("rgb_means", means)], "centred")
    x = g.node("Mul", [x, g.constant("inv_256", np.array(1.0 / 256.0, dtype=np.float32))], "scaled")
    x = g.node("Transpose", [x], "nchw", perm=[0, 3, 1, 2])
    current = _Value(x, (3, size, size))
    tags: dict[int, _Value] = {}

    layers = net.layers
    i = 0
    while i < len(layers):
        layer = layers[i]
        p = layer.params
        if layer.kind == "con":
            weights, bias = layer.weights["W"], layer.weights["b"]
            if i + 1 < len(layers) and layers[i + 1].kind == "affine":  # fold y = gamma * conv(x) + beta
                gamma, beta = layers[i + 1].weights["gamma"], layers[i + 1].weights["beta"]
                weights = weights * gamma[:, None, None, None]
                bias = bias * gamma + beta
                i += 1
            k, s, pad = p["kernel"], p["stride"], p["padding"]
            name = g.node("Conv", [current.name, g.constant("W", weights.astype(np.float32)),
                                   g.constant("b", bias.astype(np.float32))], "conv",
                          kernel_shape=[k, k], strides=[s, s], pads=[pad, pad, pad, pad])
            h = _conv_output(current.shape[1], k, s, pad)
            w = _conv_output(current.shape[2], k, s, pad)
            current = _Value(name, (p["filters"], h, w))
        elif layer.kind == "affine":  # only reached if an affine does not follow a convolution
            c = p["channels"]
            name = g.node("Mul", [current.name, g.constant("gamma", layer.weights["gamma"].reshape(1, c, 1, 1))], "aff")
            name = g.node("Add", [name, g.constant("beta", layer.weights["beta"].reshape(1, c, 1, 1))], "aff")
            current = _Value(name, current.shape)
        elif layer.kind == "relu":
            current = _Value(g.node("Relu", [current.name], "relu"), current.shape)
        elif layer.kind in ("max_pool", "avg_pool"):
            k, s, pad = p["kernel"], p["stride"], p["padding"]
            op = "MaxPool" if layer.kind == "max_pool" else "AveragePool"
            name = g.node(op, [current.name], "pool", kernel_shape=[k, k], strides=[s, s], pads=[pad] * 4)
            c, h, w = current.shape
            current = _Value(name, (c, _conv_output(h, k, s, pad), _conv_output(w, k, s, pad)))
        elif layer.kind == "tag":
            tags[p["id"]] = current
        elif layer.kind == "skip":
            current = tags[p["id"]]
        elif layer.kind == "add_prev":
            other = tags[p["tag"]]
            shape = tuple(max(a, b) for a, b in zip(current.shape, other.shape))
            name = g.node("Add", [_pad_to(g, current, shape), _pad_to(g, other, shape)], "add")
            current = _Value(name, shape)
        elif layer.kind == "avg_pool_all":
            name = g.node("GlobalAveragePool", [current.name], "gap")
            name = g.node("Flatten", [name], "flat", axis=1)
            current = _Value(name, (current.shape[0], 1, 1))
        elif layer.kind == "fc":
            w = layer.weights["W"]
            if w.shape[0] != current.shape[0]:
                raise ValueError(f"fc expects {w.shape[0]} inputs, network gives {current.shape[0]}")
            name = g.node("MatMul", [current.name, g.constant("fc_W", w.astype(np.float32))], "fc")
            current = _Value(name, (w.shape[1], 1, 1))
        else:
            raise ValueError(f"no ONNX mapping for layer kind {layer.kind!r}")
        i += 1

    g.nodes.append(helper.make_node("Identity", [current.name], [OUTPUT_NAME], name="output"))
    graph = helper.make_graph(
        g.nodes, "dlib_face_recognition_resnet_model_v1",
        inputs=[helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["N", size, size, 3])],
        outputs=[helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", current.shape[0]])],
        initializer=g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="biogate-models", producer_version="1", doc_string=doc)
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model
