"""The float face embedder's ONNX graph, run by torch so that it can be fine-tuned (models.restored.train).

The graph (models.build.dlib_to_onnx) uses a handful of operators; each is mapped to its torch function here, and
`tests/models/test_restored_embedder.py` checks that the torch run equals onnxruntime's. Its tensors are torch
buffers except those named in `trainable`, which become parameters.
"""
from __future__ import annotations

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper

from edge.biometrics.face.embedder import EMBEDDING_DIM


def _pad(x: torch.Tensor, pads: torch.Tensor) -> torch.Tensor:
    """ONNX Pad (all begins, then all ends, outermost axis first) as torch's (innermost axis first) pairs."""
    values = [int(v) for v in pads.tolist()]
    n = len(values) // 2
    torch_pads: list[int] = []
    for axis in reversed(range(n)):
        torch_pads += [values[axis], values[axis + n]]
    return F.pad(x, torch_pads)


def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, at: dict) -> torch.Tensor:
    top, left, bottom, right = at.get("pads", [0, 0, 0, 0])
    if (top, left) != (bottom, right):
        raise ValueError("asymmetric convolution padding is not used by the face embedder")
    return F.conv2d(x, w, b, stride=tuple(at.get("strides", [1, 1])), padding=(top, left))


_OPS = {
    "Cast": lambda a, at: a[0].float(),
    "Sub": lambda a, at: a[0] - a[1],
    "Mul": lambda a, at: a[0] * a[1],
    "Add": lambda a, at: a[0] + a[1],
    "Transpose": lambda a, at: a[0].permute(*at["perm"]),
    "Conv": lambda a, at: _conv(a[0], a[1], a[2] if len(a) > 2 else None, at),
    "Relu": lambda a, at: F.relu(a[0]),
    "MaxPool": lambda a, at: F.max_pool2d(a[0], at["kernel_shape"], at["strides"]),
    "AveragePool": lambda a, at: F.avg_pool2d(a[0], at["kernel_shape"], at["strides"]),
    "Pad": lambda a, at: _pad(a[0], a[1]),
    "GlobalAveragePool": lambda a, at: a[0].mean(dim=(2, 3), keepdim=True),
    "Flatten": lambda a, at: a[0].flatten(1),
    "MatMul": lambda a, at: a[0] @ a[1],
    "Identity": lambda a, at: a[0],
}


class EmbedderGraph(torch.nn.Module):
    """N x 150 x 150 x 3 RGB chips (float, 0-255) -> N x 128 raw descriptors, as the ONNX graph computes them."""

    def __init__(self, model: onnx.ModelProto, trainable: set[str] = frozenset()):
        super().__init__()
        self.tensors: dict[str, torch.Tensor] = {}
        self.trainable = torch.nn.ParameterDict()
        for init in model.graph.initializer:
            value = torch.from_numpy(numpy_helper.to_array(init).copy())
            if init.name in trainable:
                self.trainable[self._key(init.name)] = torch.nn.Parameter(value)
            else:
                self.tensors[init.name] = value
        self.nodes = []
        for node in model.graph.node:
            if node.op_type not in _OPS:
                raise ValueError(f"operator {node.op_type} is not mapped to torch")
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            self.nodes.append((node.op_type, list(node.input), node.output[0], attrs))
        self.input_name = model.graph.input[0].name
        self.output_name = model.graph.output[0].name

    @staticmethod
    def _key(name: str) -> str:
        return name.replace(".", "_")  # ParameterDict keys may not hold dots

    def value(self, name: str) -> torch.Tensor:
        key = self._key(name)
        return self.trainable[key] if key in self.trainable else self.tensors[name]

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        env = {self.input_name: chips}
        for op, inputs, output, attrs in self.nodes:
            env[output] = _OPS[op]([env[i] if i in env else self.value(i) for i in inputs], attrs)
        return env[self.output_name]


def weight_tensors(model: onnx.ModelProto) -> list[tuple[str, str]]:
    """(tensor name, operator) of every weight and bias of the graph's convolutions and final matrix, in graph
    order: what fine-tuning may change."""
    initializers = {init.name for init in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type in ("Conv", "MatMul"):
            found += [(name, node.op_type) for name in node.input[1:] if name in initializers]
    return found


def descriptors(graph: EmbedderGraph, chips: np.ndarray, batch: int = 64) -> np.ndarray:
    """Raw descriptors of uint8 chips, without gradients."""
    rows = []
    with torch.no_grad():
        for start in range(0, len(chips), batch):
            rows.append(graph(torch.from_numpy(np.ascontiguousarray(chips[start:start + batch])).float()).numpy())
    return np.concatenate(rows) if rows else np.zeros((0, EMBEDDING_DIM), np.float32)
