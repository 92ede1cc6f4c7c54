"""Passive PAD: one frame in, a bona fide probability out (hand-crafted features -> ONNX classifier).

The classifier is `pad_passive.onnx`, built from models/pad/weights.json by `make models` and loaded only
through `edge.models` (manifest sha256 check). It sees the feature vector of `features.passive_features`,
so this module is the one place where the two meet.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.biometrics.liveness.features import feature_names, passive_features
from edge.biometrics.liveness.geometry import FaceGeometry
from edge.biometrics.config import LivenessConfig
from edge.errors import ModelError
from edge.models import load_session

INPUT_NAME = "features"


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
    def from_config(cls, cfg: LivenessConfig, models_dir: Path, threads: int = 1) -> "PassiveDetector":
        return cls(load_session(cfg.passive_model, Path(models_dir), threads), cfg.passive_threshold)

    def score_features(self, features: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(np.atleast_2d(features), dtype=np.float32)
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        return self.session.run([self.output_name], {INPUT_NAME: x})[0][:, 0]

    def score(self, image_bgr: np.ndarray, geom: FaceGeometry) -> float:
        return float(self.score_features(passive_features(image_bgr, geom))[0])

    def is_live(self, score: float) -> bool:
        return score >= self.threshold
