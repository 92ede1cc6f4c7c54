"""Builders of face_detector.onnx and face_detector_full_range.onnx: MediaPipe's BlazeFace .tflite models converted
with tflite2onnx.

tflite2onnx turns the NHWC graph into an NCHW one (input [1, 3, H, W]) and keeps the output names and shapes
(regressors [1, anchors, 16], classificators [1, anchors, 1]); it transposes back to NHWC before each output reshape,
so the anchor order is MediaPipe's. It stores initializers in an order that depends on Python's string hashing, so
the converted graph is canonicalised (initializers and value_info sorted by name) to make the bytes reproducible.

The full-range model (`face_detection_full_range_sparse.tflite`) uses two operators tflite2onnx 0.4.1 does not know:
- DENSIFY: its weights are stored sparse (a dense prefix of dimensions, then one CSR dimension) and expanded at run
  time. The weights are constants, so the expansion is done here, once: the model is read through a thin view that
  hides the DENSIFY operators and presents each one's output as a constant tensor holding the expanded weights
  (the following DEQUANTIZE fp16 -> fp32 is then folded by tflite2onnx as for the short-range model).
- DEPTH_TO_SPACE: registered below as ONNX DepthToSpace (mode DCR is TensorFlow's element order).
It also shares one paddings constant between several PAD operators, which tflite2onnx 0.4.1 rewrites once per
operator (the second rewrite fails): the view gives each PAD operator its own copy of that constant.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import numpy as np

from models.manifest import Artifact

# tflite.SparseIndexVector union members -> numpy dtypes of the CSR segment / index arrays
_INDEX_VECTORS = {1: ("Int32Vector", np.int32), 2: ("Uint16Vector", np.uint16), 3: ("Uint8Vector", np.uint8)}
_TFLITE_FLOAT16, _TFLITE_FLOAT32 = 1, 0


def _canonical(model) -> None:
    for repeated in (model.graph.initializer, model.graph.value_info):
        ordered = sorted(repeated, key=lambda item: item.name)
        del repeated[:]
        repeated.extend(ordered)


def _index_vector(table, kind: int) -> np.ndarray:
    import tflite

    name, dtype = _INDEX_VECTORS[kind]
    vector = getattr(tflite, name)()
    vector.Init(table.Bytes, table.Pos)
    return vector.ValuesAsNumpy().astype(np.int64) if vector.ValuesLength() else np.zeros(0, np.int64)


def densify(tensor, values: np.ndarray) -> np.ndarray:
    """The dense array of a sparse constant tensor: dense leading dimensions, then one CSR dimension, in the
    stored order (the only layout these models use; anything else is refused rather than guessed)."""
    sparsity = tensor.Sparsity()
    shape = [int(v) for v in tensor.ShapeAsNumpy()]
    order = list(sparsity.TraversalOrderAsNumpy())
    if order != list(range(len(shape))) or not sparsity.BlockMapIsNone():
        raise ValueError(f"{tensor.Name()!r}: block-sparse or reordered tensors are not supported")
    formats = [sparsity.DimMetadata(d).Format() for d in range(sparsity.DimMetadataLength())]
    if formats != [0] * (len(shape) - 1) + [1]:
        raise ValueError(f"{tensor.Name()!r}: sparsity formats {formats}; expected dense dims then one CSR dim")
    last = sparsity.DimMetadata(len(shape) - 1)
    segments = _index_vector(last.ArraySegments(), last.ArraySegmentsType())
    indices = _index_vector(last.ArrayIndices(), last.ArrayIndicesType())
    rows = int(np.prod(shape[:-1]))
    if segments.size != rows + 1 or indices.size != values.size or segments[-1] != values.size:
        raise ValueError(f"{tensor.Name()!r}: CSR arrays do not match the shape {shape}")
    dense = np.zeros((rows, shape[-1]), values.dtype)
    row_of_value = np.repeat(np.arange(rows), np.diff(segments))
    dense[row_of_value, indices] = values
    return dense.reshape(shape)


class _DenseBuffer:
    def __init__(self, data: bytes):
        self._data = np.frombuffer(data, np.uint8)

    def DataAsNumpy(self):  # noqa: N802 (the flatbuffer accessor's name)
        return self._data

    def DataLength(self):  # noqa: N802
        return self._data.size


class _ViewTensor:
    """A tensor seen with another buffer index (expanded weights) and/or another name (an unshared copy)."""

    def __init__(self, tensor, buffer_index: int | None = None, suffix: bytes = b""):
        self._tensor, self._buffer_index, self._suffix = tensor, buffer_index, suffix

    def Buffer(self):  # noqa: N802
        return self._tensor.Buffer() if self._buffer_index is None else self._buffer_index

    def Name(self):  # noqa: N802
        return self._tensor.Name() + self._suffix

    def __getattr__(self, name):
        return getattr(self._tensor, name)


class _ViewOperator:
    """An operator whose inputs may point at view-only tensor indices (unshared copies)."""

    def __init__(self, op, inputs: list[int]):
        self._op, self._inputs = op, inputs

    def Inputs(self, j):  # noqa: N802
        return self._inputs[j]

    def __getattr__(self, name):
        return getattr(self._op, name)


class _ViewSubGraph:
    def __init__(self, graph, operators: list, tensors: dict[int, _ViewTensor]):
        self._graph, self._operators, self._tensors = graph, operators, tensors
        self._count = max([graph.TensorsLength() - 1, *tensors]) + 1

    def OperatorsLength(self):  # noqa: N802
        return len(self._operators)

    def Operators(self, index):  # noqa: N802
        return self._operators[index]

    def TensorsLength(self):  # noqa: N802
        return self._count

    def Tensors(self, index):  # noqa: N802
        return self._tensors.get(index) or self._graph.Tensors(index)

    def __getattr__(self, name):
        return getattr(self._graph, name)


class ConvertibleModel:
    """A read-only view of a tflite model that tflite2onnx 0.4.1 can convert: every DENSIFY operator applied to its
    constant input (the operator gone, its output a constant held in extra buffers after the model's own), and each
    PAD operator with its own paddings tensor."""

    def __init__(self, model):
        import tflite

        self._model = model
        graph = model.Subgraphs(0)
        self._extra: list[_DenseBuffer] = []
        tensors: dict[int, _ViewTensor] = {}
        kept: list = []
        next_index = graph.TensorsLength()
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex()).BuiltinCode()
            if code == tflite.BuiltinOperator.DENSIFY:
                source = graph.Tensors(op.Inputs(0))
                dtype = {_TFLITE_FLOAT16: np.float16, _TFLITE_FLOAT32: np.float32}[source.Type()]
                values = np.frombuffer(model.Buffers(source.Buffer()).DataAsNumpy().tobytes(), dtype)
                tensors[op.Outputs(0)] = _ViewTensor(graph.Tensors(op.Outputs(0)),
                                                     model.BuffersLength() + len(self._extra))
                self._extra.append(_DenseBuffer(densify(source, values).tobytes()))
                continue
            inputs = [op.Inputs(j) for j in range(op.InputsLength())]
            if code == tflite.BuiltinOperator.PAD:
                tensors[next_index] = _ViewTensor(graph.Tensors(inputs[1]), suffix=f"_pad{i}".encode())
                inputs[1] = next_index
                next_index += 1
            kept.append(_ViewOperator(op, inputs))
        self.densified = len(self._extra)
        self._graph = _ViewSubGraph(graph, kept, tensors)

    def Subgraphs(self, index):  # noqa: N802
        assert index == 0
        return self._graph

    def BuffersLength(self):  # noqa: N802
        return self._model.BuffersLength() + len(self._extra)

    def Buffers(self, index):  # noqa: N802
        own = self._model.BuffersLength()
        return self._model.Buffers(index) if index < own else self._extra[index - own]

    def __getattr__(self, name):
        return getattr(self._model, name)


def _register_depth_to_space() -> None:
    """ONNX DepthToSpace for tflite's DEPTH_TO_SPACE (tflite2onnx 0.4.1 has none); layout handled like Resize."""
    import tflite
    from tflite2onnx.layout import Layout
    from tflite2onnx.op.common import OpFactory, Operator

    if tflite.BuiltinOperator.DEPTH_TO_SPACE in OpFactory.registry:
        return

    class DepthToSpace(Operator):
        TypeMapping = {tflite.BuiltinOperator.DEPTH_TO_SPACE: "DepthToSpace"}

        def __init__(self, TFactory, index):  # noqa: N803 (tflite2onnx's signature)
            super().__init__(TFactory, index)
            self.setInited()

        @property
        def type(self):
            return "DepthToSpace"

        def parse(self):
            op = self.tflite
            option = tflite.DepthToSpaceOptions()
            option.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            self.attrs["blocksize"] = int(option.BlockSize())
            self.attrs["mode"] = "DCR"  # TensorFlow's order: output channel fastest within each block
            self.parseInput(0, Layout("NHWC", "NCHW"))
            self.parseOutput(0, Layout("NHWC", "NCHW"))
            self.setParsed()

        def propagatableTensors(self):  # noqa: N802
            return list()

        def transform(self):
            pass

    OpFactory.register(DepthToSpace)


def _convert(source: bytes) -> bytes:
    import onnx
    import tflite
    from tflite2onnx.model import Model

    _register_depth_to_space()
    # tflite2onnx warns that float16 (dequantised weights) is "not tested"; the converted graph is float32
    # and is checked by tests/models/test_detector.py.
    logging.getLogger("tflite2onnx").setLevel(logging.ERROR)
    tflite_model = tflite.Model.GetRootAsModel(source, 0)
    # The short-range model converts as it is (its bytes are pinned in the manifest); only the full-range one
    # needs the view.
    view = ConvertibleModel(tflite_model)
    with tempfile.TemporaryDirectory(prefix="blazeface-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        onnx_path = Path(tmp) / "model.onnx"
        converter = Model(view if view.densified else tflite_model)
        converter.convert({})
        converter.save(str(onnx_path))
        model = onnx.load(str(onnx_path))
    _canonical(model)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def build(source: bytes, artifact: Artifact) -> bytes:
    """Either BlazeFace model (short range: dense weights; full range: sparse weights, expanded here)."""
    return _convert(source)
