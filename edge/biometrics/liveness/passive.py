"""Passive PAD: one frame in, a bona fide probability out (hand-crafted features -> ONNX classifier).

The classifier is `pad_passive.onnx`, built from models/pad/weights.json by `make models`. It only sees
the feature vector of `features.passive_features`, so this module is the one place where the two meet.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.biometrics.liveness.features import feature_names, passive_features
from edge.biometrics.liveness.geometry import FaceGeometry
from edge.config import Config
from edge.errors import ModelError

INPUT_NAME = "features"


def _open_session(name: str, models_dir: Path, threads: int):
    """Through the project's hash-checking loader when it knows the model; the plain file otherwise."""
    try:
        from edge.models import load_session
    except ImportError:
        load_session = None
    if load_session is not None:
        try:
            return load_session(name, models_dir, threads)
        except ModelError as exc:
            if exc.code not in ("model.unknown", "model.not_in_manifest"):
                raise
    import onnxruntime as ort

    path = Path(models_dir) / f"{name}.onnx"
    if not path.is_file():
        raise ModelError(f"passive PAD model {path} is missing; build it with `make models` "
                         f"(or `.venv/bin/python -m models.pad.build {path}`)", code="model.missing")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
        raise ModelError(f"cannot load {path}: {exc.__class__.__name__}", code="model.corrupt") from None


class PassiveDetector:
    """Scores faces with the passive PAD classifier; `score >= threshold` means "looks live"."""

    def __init__(self, session, threshold: float):
        self.session = session
        self.threshold = float(threshold)
        shape = session.get_inputs()[0].shape
        if shape[-1] != len(feature_names()):
            raise ModelError(f"passive PAD model expects {shape[-1]} features, the code computes "
                             f"{len(feature_names())}: rebuild the model", code="model.mismatch")
        self.output_name = session.get_outputs()[0].name

    @classmethod
    def from_config(cls, cfg: Config, models_dir: Path | None = None) -> "PassiveDetector":
        session = _open_session(cfg.liveness.passive_model, models_dir or cfg.paths.models_dir, cfg.face.threads)
        return cls(session, cfg.liveness.passive_threshold)

    def score_features(self, features: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(np.atleast_2d(features), dtype=np.float32)
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        return self.session.run([self.output_name], {INPUT_NAME: x})[0][:, 0]

    def score(self, image_bgr: np.ndarray, geom: FaceGeometry) -> float:
        return float(self.score_features(passive_features(image_bgr, geom))[0])
