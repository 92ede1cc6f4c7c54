"""The 128-d face embedding: dlib's metric-learning ResNet converted to ONNX (models/build).

Chips are 150 x 150 RGB uint8 (dlib.get_face_chip). The descriptor is the network's raw output, not
unit length; faces compare by Euclidean distance. With `flip=True` each chip is embedded together with
its mirror image and the two descriptors averaged (test-time augmentation: one batch, two rows per face).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.models import load_session

EMBEDDING_DIM = 128


class FaceEmbedder:
    def __init__(self, models_dir: Path, threads: int = 1, flip: bool = True, batch_size: int = 32):
        self.session = load_session("face_embedder", models_dir, threads)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_is_float = "float" in inp.type
        self.flip = flip
        self.batch_size = batch_size

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """N x 150 x 150 x 3 RGB uint8 chips -> N x 128 float32 descriptors."""
        chips = np.asarray(chips, dtype=np.uint8)
        if chips.ndim == 3:
            chips = chips[None]
        if chips.shape[0] == 0:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        batch = np.concatenate([chips, chips[:, :, ::-1]]) if self.flip else chips
        rows = [self._run(batch[i:i + self.batch_size]) for i in range(0, len(batch), self.batch_size)]
        out = np.concatenate(rows)
        if self.flip:
            n = len(chips)
            out = (out[:n] + out[n:]) / 2
        return out.astype(np.float32)

    def _run(self, chips: np.ndarray) -> np.ndarray:
        feed = chips.astype(np.float32) if self.input_is_float else chips
        return self.session.run(None, {self.input_name: np.ascontiguousarray(feed)})[0]


def face_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
