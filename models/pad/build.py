"""Build the passive PAD ONNX model from the committed weights (no data needed).

    .venv/bin/python -m models.pad.build models/artifacts/pad_passive.onnx

Graph: features (N x D float32) -> (x - mean) / scale -> dense layers -> bona_fide (N x 1, probability).
Written with `onnx.helper` so the graph is exactly the maths in `classifier.PadClassifier.forward`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from models.pad.classifier import WEIGHTS_PATH, PadClassifier

MODEL_NAME = "pad_passive"
INPUT_NAME = "features"
OUTPUT_NAME = "bona_fide"


def make_model(clf: PadClassifier):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, array: np.ndarray):
        return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)

    initialisers = [const("mean", clf.mean), const("scale", clf.scale)]
    nodes = [helper.make_node("Sub", [INPUT_NAME, "mean"], ["centred"]),
             helper.make_node("Div", ["centred", "scale"], ["h0"])]
    current = "h0"
    for i, layer in enumerate(clf.layers):
        initialisers += [const(f"w{i}", layer.weight), const(f"b{i}", layer.bias)]
        nodes += [helper.make_node("MatMul", [current, f"w{i}"], [f"mm{i}"]),
                  helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"z{i}"])]
        out = OUTPUT_NAME if i == len(clf.layers) - 1 else f"h{i + 1}"
        nodes.append(helper.make_node("Relu" if layer.activation == "relu" else "Sigmoid", [f"z{i}"], [out]))
        current = out
    graph = helper.make_graph(
        nodes, "biogate_pad_passive",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["n", clf.n_features])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["n", 1])],
        initialisers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="biogate-models-pad")
    model.ir_version = 8  # readable by every onnxruntime >= 1.14
    meta = {"feature_version": str(clf.feature_version), "threshold": repr(clf.threshold),
            "train_subjects": ",".join(clf.provenance.get("train_subjects", [])),
            "face_locator": str(clf.provenance.get("face_locator", ""))}
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    return model


def onnx_bytes(weights_json: bytes) -> bytes:
    """The serialised ONNX model for the given weights file contents (deterministic: same bytes in, same out).

    Shaped for a manifest builder whose "source" is `models/pad/weights.json`."""
    import json

    return make_model(PadClassifier.from_json(json.loads(weights_json))).SerializeToString()


def build_onnx(out_path: str | Path, weights: str | Path = WEIGHTS_PATH) -> Path:
    """Write the ONNX model built from `weights` to `out_path` and return the path."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    data = onnx_bytes(Path(weights).read_bytes())
    tmp = out_path.with_suffix(out_path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out_path)  # never leave a half-written model where the loader looks
    return out_path


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("models/artifacts") / f"{MODEL_NAME}.onnx"
    print(build_onnx(target))
