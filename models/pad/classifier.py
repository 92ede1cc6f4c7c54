"""The passive PAD classifier as plain numbers: standardisation followed by dense layers.

One representation serves three places: training writes it to `weights.json`, `build.py` turns it into
ONNX, and `forward` evaluates it in numpy so tests can check the ONNX graph gives the same scores.
The output is the probability that the presentation is bona fide (a live face): higher = more live.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

WEIGHTS_PATH = Path(__file__).resolve().parent / "weights.json"
ACTIVATIONS = ("relu", "sigmoid")


@dataclass
class DenseLayer:
    weight: np.ndarray  # (inputs, outputs)
    bias: np.ndarray    # (outputs,)
    activation: str     # "relu" or "sigmoid"


@dataclass
class PadClassifier:
    mean: np.ndarray
    scale: np.ndarray
    layers: list[DenseLayer]
    threshold: float
    feature_version: int
    feature_names: list[str]
    provenance: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])

    def forward(self, features: np.ndarray) -> np.ndarray:
        """Bona fide probability per row of `features` (N x D), computed in float32 like the ONNX graph."""
        x = (np.asarray(features, dtype=np.float32) - self.mean.astype(np.float32)) / self.scale.astype(np.float32)
        for layer in self.layers:
            x = x @ layer.weight.astype(np.float32) + layer.bias.astype(np.float32)
            x = np.maximum(x, 0.0) if layer.activation == "relu" else 1.0 / (1.0 + np.exp(-x))
        return x[:, 0]

    def to_json(self) -> dict[str, Any]:
        def stored(a: np.ndarray) -> list:
            # Ten significant digits: far finer than float32 inference, and coarse enough that the last-bit
            # differences of another CPU's or BLAS's arithmetic do not change the file (training reproduces it).
            return np.vectorize(lambda v: float(f"{v:.10g}"), otypes=[float])(np.asarray(a, dtype=np.float64)).tolist()
        return {
            "format": "biogate-pad-classifier/1",
            "feature_version": self.feature_version,
            "feature_names": self.feature_names,
            "threshold": self.threshold,
            "standardise": {"mean": stored(self.mean), "scale": stored(self.scale)},
            "layers": [{"weight": stored(l.weight), "bias": stored(l.bias), "activation": l.activation}
                       for l in self.layers],
            "provenance": self.provenance,
            "evaluation": self.evaluation,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PadClassifier":
        if data.get("format") != "biogate-pad-classifier/1":
            raise ValueError(f"unknown PAD weights format {data.get('format')!r}")
        layers = [DenseLayer(np.asarray(l["weight"], dtype=np.float64), np.asarray(l["bias"], dtype=np.float64),
                             l["activation"]) for l in data["layers"]]
        for l in layers:
            if l.activation not in ACTIVATIONS:
                raise ValueError(f"unknown activation {l.activation!r}")
        if layers[-1].activation != "sigmoid" or layers[-1].weight.shape[1] != 1:
            raise ValueError("the last layer must be a single sigmoid output")
        return cls(mean=np.asarray(data["standardise"]["mean"], dtype=np.float64),
                   scale=np.asarray(data["standardise"]["scale"], dtype=np.float64),
                   layers=layers, threshold=float(data["threshold"]),
                   feature_version=int(data["feature_version"]), feature_names=list(data["feature_names"]),
                   provenance=dict(data.get("provenance", {})), evaluation=dict(data.get("evaluation", {})))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return path


def load_weights(path: str | Path = WEIGHTS_PATH) -> PadClassifier:
    return PadClassifier.from_json(json.loads(Path(path).read_text()))
