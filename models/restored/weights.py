"""The restored-face embedder's weights: what fine-tuning changed, stored compactly, and put back into the graph.

`models/restored/weights.npz` (written by `models.restored.train`, read by `make models`) holds, per fine-tuned
tensor of the float embedder (models.build.dlib_resnet), the change fine-tuning made to it:
- tensors of two or more dimensions (convolution kernels, the final matrix): int8, one float32 scale per output
  channel (max |change| / 127), the change being small beside the weight it is added to;
- one-dimensional tensors (biases): float32 as they are.
Beside them: `float_sha256`, the float graph the changes apply to (a different graph is refused, not patched), and
`training`, a JSON description of how the weights were trained. The zip members carry a fixed date, so the same
weights always give the same bytes, and the same bytes the same ONNX file.

numpy only: the build needs no training library.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np
import onnx
from onnx import numpy_helper

DELTA_QMAX = 127
_FIXED_DATE = (1980, 1, 1, 0, 0, 0)


class WeightsError(ValueError):
    """The weights file does not fit the float graph it is applied to."""


def output_axis(node_op: str) -> int:
    """The axis of a weight tensor that indexes its outputs (Conv: N x C x kH x kW; MatMul: in x out)."""
    return 1 if node_op == "MatMul" else 0


def encode(changes: dict[str, tuple[np.ndarray, int]], float_sha256: str, training: dict) -> bytes:
    """`changes`: tensor name -> (fine-tuned minus original, float32; its output axis). The weights file's bytes."""
    members: dict[str, np.ndarray] = {}
    for name, (change, axis) in sorted(changes.items()):
        change = np.asarray(change, np.float32)
        if change.ndim < 2:
            members[f"f/{name}"] = change
            continue
        other = tuple(a for a in range(change.ndim) if a != axis)
        scale = np.abs(change).max(axis=other) / DELTA_QMAX
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        shaped = scale.reshape([-1 if a == axis else 1 for a in range(change.ndim)])
        members[f"q/{name}"] = np.clip(np.round(change / shaped), -DELTA_QMAX, DELTA_QMAX).astype(np.int8)
        members[f"s/{name}"] = scale
        members[f"a/{name}"] = np.array([axis], np.int8)
    members["float_sha256"] = np.frombuffer(float_sha256.encode("ascii"), np.uint8)
    members["training"] = np.frombuffer(json.dumps(training, sort_keys=True).encode("utf-8"), np.uint8)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, array in members.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(key + ".npy", date_time=_FIXED_DATE), buf.getvalue(),
                        compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def decode(data: bytes) -> tuple[dict[str, np.ndarray], str, dict]:
    """(tensor name -> float32 change, the float graph's sha256, the training description)."""
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for member in zf.namelist():
            arrays[member.removesuffix(".npy")] = np.lib.format.read_array(io.BytesIO(zf.read(member)),
                                                                             allow_pickle=False)
    changes: dict[str, np.ndarray] = {}
    for key, array in arrays.items():
        kind, _, name = key.partition("/")
        if kind == "f":
            changes[name] = array.astype(np.float32)
        elif kind == "q":
            axis = int(arrays[f"a/{name}"][0])
            scale = arrays[f"s/{name}"].reshape([-1 if a == axis else 1 for a in range(array.ndim)])
            changes[name] = (array.astype(np.float32) * scale).astype(np.float32)
    return changes, bytes(arrays["float_sha256"]).decode("ascii"), json.loads(bytes(arrays["training"]))


def apply(float_bytes: bytes, changes: dict[str, np.ndarray], expected_sha: str) -> onnx.ModelProto:
    """The float embedder with a weights file's changes (`decode`) added to its tensors; `expected_sha` is the float
    graph they were trained on."""
    actual_sha = hashlib.sha256(float_bytes).hexdigest()
    if actual_sha != expected_sha:
        raise WeightsError(f"the weights were trained on the float embedder {expected_sha[:12]}, not on "
                           f"{actual_sha[:12]}: retrain them (python -m models.restored.train)")
    model = onnx.load_from_string(float_bytes)
    by_name = {init.name: init for init in model.graph.initializer}
    missing = sorted(set(changes) - set(by_name))
    if missing:
        raise WeightsError(f"the weights change tensors the float embedder does not have: {missing[:3]}")
    for name, change in changes.items():
        original = numpy_helper.to_array(by_name[name])
        if original.shape != change.shape:
            raise WeightsError(f"tensor {name}: weights {change.shape}, float embedder {original.shape}")
        by_name[name].CopyFrom(numpy_helper.from_array((original.astype(np.float32) + change).astype(np.float32),
                                                       name))
    return model
