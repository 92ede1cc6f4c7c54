"""Builder of pad_passive.onnx: the passive presentation-attack classifier, from the committed weights.

The source is models/pad/weights.json (trained by `python -m models.pad.train` on NUAA, see MODEL_CARD.md);
models.pad.build writes the ONNX graph with onnx.helper, a pure function of the weights, so the same weights
always give the same bytes.
"""
from __future__ import annotations

from models.manifest import Artifact


def build(source: bytes, artifact: Artifact) -> bytes:
    from models.pad.build import onnx_bytes

    return onnx_bytes(source)
