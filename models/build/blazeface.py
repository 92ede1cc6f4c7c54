"""Builder of face_detector.onnx: MediaPipe's BlazeFace short-range .tflite converted with tflite2onnx.

tflite2onnx turns the NHWC graph into an NCHW one (input [1, 3, 128, 128]) and keeps the output names and shapes
(regressors [1, 896, 16], classificators [1, 896, 1]); it transposes back to NHWC before each output reshape, so
the anchor order is MediaPipe's. It stores initializers in an order that depends on Python's string hashing, so
the converted graph is canonicalised (initializers and value_info sorted by name) to make the bytes reproducible.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

from models.manifest import Artifact


def _canonical(model) -> None:
    for repeated in (model.graph.initializer, model.graph.value_info):
        ordered = sorted(repeated, key=lambda item: item.name)
        del repeated[:]
        repeated.extend(ordered)


def build(source: bytes, artifact: Artifact) -> bytes:
    import onnx
    import tflite2onnx

    with tempfile.TemporaryDirectory(prefix="blazeface-") as tmp:
        tflite_path, onnx_path = Path(tmp) / "model.tflite", Path(tmp) / "model.onnx"
        tflite_path.write_bytes(source)
        # tflite2onnx warns that float16 (dequantised weights) is "not tested"; the converted graph is float32
        # and is checked by tests/models/test_detector.py.
        logging.getLogger("tflite2onnx").setLevel(logging.ERROR)
        with contextlib.redirect_stdout(io.StringIO()):
            tflite2onnx.convert(str(tflite_path), str(onnx_path))
        model = onnx.load(str(onnx_path))
    _canonical(model)
    onnx.checker.check_model(model)
    return model.SerializeToString()
