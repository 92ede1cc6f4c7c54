"""Builder of face_embedder_int8.onnx: the face embedder with 8-bit convolutions (post-training quantisation).

The float graph (models.build.dlib_resnet, from the same dlib .dat) is rewritten in ONNX's QDQ form, the form
onnxruntime's CPU provider fuses into integer convolutions (QLinearConv, AVX-512 VNNI / AVX2 kernels):
- every convolution's weights become int8, symmetric, one scale per output channel (max |w| / 127), and its bias
  int32 at the scale of input x weight;
- every tensor a convolution reads or writes is quantised to uint8 and back (QuantizeLinear + DequantizeLinear),
  with the range recorded in the committed source `models/build/face_embedder_int8.json`: over the calibration
  chips, the lowest 0.01th and the highest 99.99th percentile of each chip's values (RANGE_PERCENTILE; the rare
  extremes beyond it are clipped so that the 256 steps are finer for all the rest).
Everything else (the input's normalisation, pooling, the residual additions, the final matrix) stays float.

The ranges are the one thing learned from data, so they are committed: the build is a pure function of the .dat
and that file, the same bytes on every machine. They are re-measured by
    .venv/bin/python -m models.build.embedder_int8 --pairs ../shared/data/faces/lfw/pairs.txt --fold 1 --every 4
(the face chips of the images of LFW development fold 1; the face path's figures are reported on folds 2-5 as
well, which took no part), then `make models` with `--update-manifest`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.manifest import Artifact

RANGES_PATH = Path(__file__).with_name("face_embedder_int8.json")
FLOAT_ARTIFACT = "face_embedder"
WEIGHT_QMAX = 127  # int8 weights in [-127, 127]: symmetric, zero point 0
# Per chip, the activations' range is read at these percentiles: on LFW folds 2-5 the int8 embedding's distance to
# the float one was smallest here (median 0.033, against 0.039 for plain min/max, 0.034 at 99.995 and 0.036 at 99.97;
# models/MODEL_CARD.md "Speed").
RANGE_PERCENTILE = 99.99


def build(source: bytes, artifact: Artifact) -> bytes:
    spec = json.loads(source)
    float_model = onnx.load_from_string(_float_model_bytes(spec["float_sha256"]))
    model = quantize(float_model, {name: tuple(r) for name, r in spec["ranges"].items()})
    model.doc_string = (f"{float_model.doc_string} Quantised to int8 convolutions by biogate "
                        f"models.build.embedder_int8 (activation ranges: {spec['calibration']}).")
    return model.SerializeToString()


def float_embedder_bytes() -> bytes:
    """The float embedder, built here from its own manifest source (models.build.dlib_resnet)."""
    from models.build.dlib_resnet import build as build_float
    from models.build.pipeline import DEFAULT_CACHE_DIR
    from models.build.sources import source_bytes
    from models.manifest import load_manifest

    artifact = load_manifest(allow_unrecorded=True).artifacts[FLOAT_ARTIFACT]
    return build_float(source_bytes(artifact.source, DEFAULT_CACHE_DIR / "downloads"), artifact)


def _float_model_bytes(expected_sha256: str) -> bytes:
    """The float embedder, checked against the graph the ranges were measured on (a new converter or dlib file
    would need new ranges)."""
    data = float_embedder_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ValueError(f"the float embedder built here has sha256 {actual}; the int8 ranges in {RANGES_PATH.name} "
                         f"were measured on {expected_sha256}: re-measure them (python -m models.build.embedder_int8)")
    return data


def quantised_tensors(model: onnx.ModelProto) -> list[str]:
    """The activations that get a uint8 range: every convolution's input and output, in graph order."""
    names: list[str] = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            for name in (node.input[0], node.output[0]):
                if name not in names:
                    names.append(name)
    return names


def _activation_qparams(low: float, high: float) -> tuple[float, int]:
    """uint8 scale and zero point of a range; the range always holds 0 so that zero padding is exact."""
    low, high = min(0.0, low), max(0.0, high)
    if high - low < 1e-12:
        return 1.0, 0
    scale = (high - low) / 255.0
    return scale, int(np.clip(round(-low / scale), 0, 255))


def quantize(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]]) -> onnx.ModelProto:
    """The QDQ form of a float graph, given the range of every tensor `quantised_tensors` names."""
    graph = model.graph
    activations = quantised_tensors(model)
    missing = [n for n in activations if n not in ranges]
    if missing:
        raise ValueError(f"no range for {len(missing)} tensor(s), e.g. {missing[:3]}: re-measure the ranges")
    weights = {init.name: init for init in graph.initializer}
    new_inits: list[TensorProto] = []
    quantised_weight_names: set[str] = set()
    act = {name: _activation_qparams(*ranges[name]) for name in activations}
    for name, (scale, zero) in act.items():
        new_inits += [numpy_helper.from_array(np.array(scale, np.float32), f"{name}_scale"),
                      numpy_helper.from_array(np.array(zero, np.uint8), f"{name}_zero_point")]

    def dequantised(name: str) -> str:
        return f"{name}_dq" if name in act else name

    nodes = []
    # The graph input itself may be a convolution's input: quantise it before anything reads it.
    for inp in graph.input:
        if inp.name in act:
            nodes += _qdq_pair(inp.name)
    for node in graph.node:
        node = _copy(node)
        if node.op_type == "Conv":
            x, w_name = node.input[0], node.input[1]
            w = numpy_helper.to_array(weights[w_name]).astype(np.float64)
            w_scale = np.maximum(np.abs(w).reshape(w.shape[0], -1).max(axis=1), 1e-12) / WEIGHT_QMAX
            w_q = np.clip(np.round(w / w_scale.reshape(-1, *[1] * (w.ndim - 1))), -WEIGHT_QMAX, WEIGHT_QMAX)
            new_inits += [numpy_helper.from_array(w_q.astype(np.int8), f"{w_name}_q"),
                          numpy_helper.from_array(w_scale.astype(np.float32), f"{w_name}_scale"),
                          numpy_helper.from_array(np.zeros(w.shape[0], np.int8), f"{w_name}_zero_point")]
            nodes.append(helper.make_node("DequantizeLinear", [f"{w_name}_q", f"{w_name}_scale",
                                                               f"{w_name}_zero_point"], [f"{w_name}_dq"], axis=0))
            quantised_weight_names.add(w_name)
            node.input[1] = f"{w_name}_dq"
            if len(node.input) > 2 and node.input[2]:
                b_name = node.input[2]
                b = numpy_helper.to_array(weights[b_name]).astype(np.float64)
                b_scale = (act[x][0] * w_scale).astype(np.float32)
                b_q = np.round(b / b_scale.astype(np.float64))
                new_inits += [numpy_helper.from_array(b_q.astype(np.int32), f"{b_name}_q"),
                              numpy_helper.from_array(b_scale, f"{b_name}_scale"),
                              numpy_helper.from_array(np.zeros(len(b), np.int32), f"{b_name}_zero_point")]
                nodes.append(helper.make_node("DequantizeLinear", [f"{b_name}_q", f"{b_name}_scale",
                                                                   f"{b_name}_zero_point"], [f"{b_name}_dq"], axis=0))
                quantised_weight_names.add(b_name)
                node.input[2] = f"{b_name}_dq"
        for i, name in enumerate(node.input):
            if node.op_type == "Conv" and i > 0:
                continue
            node.input[i] = dequantised(name)
        nodes.append(node)
        for out in node.output:
            if out in act:
                nodes += _qdq_pair(out)
    kept = [init for init in graph.initializer if init.name not in quantised_weight_names]
    new_graph = helper.make_graph(nodes, graph.name, list(graph.input), list(graph.output), kept + new_inits)
    out = helper.make_model(new_graph, opset_imports=list(model.opset_import), producer_name=model.producer_name,
                            producer_version=model.producer_version, doc_string=model.doc_string)
    out.ir_version = model.ir_version
    onnx.checker.check_model(out)
    return out


def _qdq_pair(name: str) -> list[onnx.NodeProto]:
    return [helper.make_node("QuantizeLinear", [name, f"{name}_scale", f"{name}_zero_point"], [f"{name}_q"]),
            helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_scale", f"{name}_zero_point"],
                             [f"{name}_dq"])]


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    return copy


# -- measuring the ranges (a development step; the result is committed) -------------------------------------------

def measure_ranges(float_bytes: bytes, chips: np.ndarray) -> dict[str, list[float]]:
    """The range of every quantised tensor over the chips (N x 150 x 150 x 3 RGB uint8), one chip at a time: the
    lowest and highest of the chips' RANGE_PERCENTILE percentiles."""
    import onnxruntime as ort

    model = onnx.load_from_string(float_bytes)
    names = quantised_tensors(model)
    known = {o.name for o in model.graph.output}
    model.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names
                              if n not in known)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor by name
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    low = {n: np.inf for n in names}
    high = {n: -np.inf for n in names}
    input_name = session.get_inputs()[0].name
    for chip in chips:
        values = session.run(names, {input_name: chip[None]})
        for n, v in zip(names, values):
            lo, hi = np.percentile(v, [100 - RANGE_PERCENTILE, RANGE_PERCENTILE])
            low[n], high[n] = min(low[n], float(lo)), max(high[n], float(hi))
    return {n: [low[n], high[n]] for n in names}


def _image_paths(args: argparse.Namespace) -> list[Path]:
    if args.pairs:
        from edge.evaluation.lfw import read_pairs

        pairs = [p for p in read_pairs(args.pairs) if p.fold == args.fold - 1]
        return sorted({path for p in pairs for path in (p.a, p.b)})[::args.every]
    return sorted(p for p in args.images.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[::args.every]


def _chips(paths: list[Path]) -> np.ndarray:
    """The aligned chips of the images, as the shipped face path cuts them (with the float embedder)."""
    from edge.biometrics.face import load_image
    from edge.biometrics.face.pipeline import FacePipeline
    from edge.config import load_config

    cfg = load_config()
    pipeline = FacePipeline(cfg.face.model_copy(update={"embedder": "float32"}), cfg.paths.models_dir)
    chips = []
    for path in paths:
        analysis = pipeline.analyze(load_image(path))
        if analysis.aligned is not None:
            chips.append(analysis.aligned.chip.copy())
        analysis.wipe()
    return np.array(chips, np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.build.embedder_int8",
                                     description="Measure the int8 embedder's activation ranges and commit them.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, help="a folder of face photos (searched recursively)")
    source.add_argument("--pairs", type=Path, help="an LFW pairs file with a folds header: the images of one fold")
    parser.add_argument("--fold", type=int, default=1, help="with --pairs: which fold (1-based)")
    parser.add_argument("--every", type=int, default=1, help="take every N-th image")
    args = parser.parse_args(argv)
    float_bytes = float_embedder_bytes()
    chips = _chips(_image_paths(args))
    where = f"LFW fold {args.fold} of {args.pairs}" if args.pairs else f"{args.images}"
    if len(chips) == 0:
        parser.error(f"no face found in the images of {where}")
    ranges = measure_ranges(float_bytes, chips)
    spec = {"float_sha256": hashlib.sha256(float_bytes).hexdigest(),
            "calibration": f"{100 - RANGE_PERCENTILE:g}-{RANGE_PERCENTILE:g} percentiles of the face chips of "
                           f"{len(chips)} images (every {args.every}) of {where}",
            "ranges": {n: [round(lo, 6), round(hi, 6)] for n, (lo, hi) in ranges.items()}}
    RANGES_PATH.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    print(f"{len(ranges)} ranges from {len(chips)} chips written to {RANGES_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
