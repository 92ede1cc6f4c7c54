"""The 128-d face embedding: dlib's metric-learning ResNet converted to ONNX (models/build).

Chips are 150 x 150 RGB uint8 (dlib.get_face_chip). `descriptors` returns the network's raw output,
equal to dlib's `compute_face_descriptor` (tests/models/test_embedder_parity.py). `embed` returns the
biogate face embedding built from it:
- with `flip=True` each chip is embedded together with its mirror image and the two descriptors
  averaged (test-time augmentation: one batch, two rows per face);
- the result is scaled to a fixed length, TEMPLATE_NORM. The length of a raw descriptor varies from
  face to face (5th-95th percentile 1.31-1.55 on the LFW development images) without telling people
  apart; comparing directions only kept the LFW accuracy and lowered FNMR at low FMR (all 4,414
  genuine and ~400,000 sampled impostor development pairs: FNMR at FMR 1e-4 0.28 -> 0.21; see
  models/MODEL_CARD.md). TEMPLATE_NORM is the median raw length on those images (1.42), so distances
  stay on dlib's familiar scale (same-person threshold near 0.6).
Faces compare by Euclidean distance between embeddings (`face_distance`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.models import load_session

EMBEDDING_DIM = 128
TEMPLATE_NORM = 1.42


class FaceEmbedder:
    def __init__(self, models_dir: Path, threads: int = 1, flip: bool = True, batch_size: int = 32, *,
                 artifact: str):
        """`artifact`: the manifest name of the network that runs (edge.biometrics.config: EMBEDDER_ARTIFACTS[
        FaceConfig.embedder_build], or RESTORED_EMBEDDER_ARTIFACT)."""
        self._bind(load_session(artifact, models_dir, threads), flip, batch_size)

    @classmethod
    def from_session(cls, session, flip: bool = True, batch_size: int = 32) -> "FaceEmbedder":
        """An embedder around a network that is not a shipped artefact (a candidate being cross-validated:
        models.restored.crossval)."""
        embedder = cls.__new__(cls)
        embedder._bind(session, flip, batch_size)
        return embedder

    def _bind(self, session, flip: bool, batch_size: int) -> None:
        self.session = session
        inp = session.get_inputs()[0]
        self.input_name = inp.name
        self.input_is_float = "float" in inp.type
        self.flip = flip
        self.batch_size = batch_size

    def embed(self, chips: np.ndarray) -> np.ndarray:
        """N x 150 x 150 x 3 RGB uint8 chips -> N x 128 float32 embeddings (length TEMPLATE_NORM)."""
        chips = self._as_batch(chips)
        if chips.shape[0] == 0:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        batch = np.concatenate([chips, chips[:, :, ::-1]]) if self.flip else chips
        out = self.descriptors(batch).astype(np.float64)
        if self.flip:
            n = len(chips)
            out = (out[:n] + out[n:]) / 2
        lengths = np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return (out * (TEMPLATE_NORM / lengths)).astype(np.float32)

    def descriptors(self, chips: np.ndarray) -> np.ndarray:
        """dlib's raw descriptors (N x 128 float32) of the chips, in batches of `batch_size`."""
        chips = self._as_batch(chips)
        if chips.shape[0] == 0:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        rows = [self._run(chips[i:i + self.batch_size]) for i in range(0, len(chips), self.batch_size)]
        return np.concatenate(rows)

    @staticmethod
    def _as_batch(chips: np.ndarray) -> np.ndarray:
        chips = np.asarray(chips, dtype=np.uint8)
        return chips[None] if chips.ndim == 3 else chips

    def _run(self, chips: np.ndarray) -> np.ndarray:
        feed = chips.astype(np.float32) if self.input_is_float else chips
        return self.session.run(None, {self.input_name: np.ascontiguousarray(feed)})[0]


def face_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
