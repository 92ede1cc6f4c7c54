"""The one place comparisons become scores and scores become evidence, for the daemon and the bridge alike.

    scorer = Scorer(load_calibration())
    s = scorer.face(probe_embedding, enrolled_embeddings)      # raw face score against an enrolment
    scorer.llr("face", s)                                       # calibrated log-likelihood ratio
    scorer.confidence("finger", score, operating_llr)           # the bridge's 0..1 scale, 0.5 at the point

Score conventions (what `edge.decision.calibration` was fitted on):
- face: minus the Euclidean distance between two 128-d embeddings (higher = more alike); against an
  enrolment, the distance to the centroid of the enrolled samples (one comparison, no multiple-comparison
  allowance; the centroid is steadier than any single sample);
- finger: the matcher's similarity (`edge.biometrics.finger.compare`, log10-LR-like); against an
  enrolment, the best over the enrolled impressions (the threshold then allows for their number).
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from edge.biometrics import finger
from edge.biometrics.face.embedder import face_distance
from edge.decision.calibration import Calibration


# -- face ------------------------------------------------------------------------------------------------
def face_score(probe: np.ndarray, reference: np.ndarray) -> float:
    """Minus the Euclidean distance between two embeddings."""
    return -face_distance(probe, reference)


def face_scores(probe: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """`face_score` of one probe against every row of `gallery` (N x 128)."""
    return -np.linalg.norm(np.asarray(gallery, np.float64) - np.asarray(probe, np.float64), axis=1)


def face_centroid(embeddings: np.ndarray) -> np.ndarray:
    """The mean of the enrolled embeddings, rescaled to their mean length (embeddings have a fixed length, the
    plain mean of several would be shorter and sit closer to everyone)."""
    vecs = np.asarray(embeddings, np.float64)
    centroid = vecs.mean(axis=0)
    norm = float(np.linalg.norm(centroid))
    if norm > 0:
        centroid *= float(np.linalg.norm(vecs, axis=1).mean()) / norm
    return centroid


def enrolment_face_score(probe: np.ndarray, enrolled: np.ndarray) -> float:
    """The face score of a probe against a customer's enrolled embeddings (their centroid); -inf if none."""
    if len(enrolled) == 0:
        return -math.inf
    centroid = face_centroid(enrolled)
    try:
        return face_score(probe, centroid)
    finally:
        centroid.fill(0)


# -- finger ----------------------------------------------------------------------------------------------
def finger_score(probe, reference) -> float:
    """The matcher's similarity of two prints (templates or prepared templates)."""
    return float(finger.compare(probe, reference))


def finger_scores(probe, references: Sequence) -> np.ndarray:
    return finger.compare_many(probe, list(references))


def enrolment_finger_score(probe, enrolled: Sequence) -> float:
    """The best finger score of a probe against the enrolled impressions of one finger; -inf if none."""
    if not enrolled:
        return -math.inf
    return float(finger_scores(probe, enrolled).max())


# -- evidence ----------------------------------------------------------------------------------------------
def logistic(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class Scorer:
    """Scores and their calibrated meaning under one calibration."""

    def __init__(self, calibration: Calibration):
        self.calibration = calibration

    face = staticmethod(enrolment_face_score)
    finger = staticmethod(enrolment_finger_score)

    @property
    def modalities(self) -> Iterable[str]:
        return self.calibration.modalities

    def llr(self, modality: str, score: float) -> float:
        """The log-likelihood ratio (natural log; > 0 favours "same person") of a raw score."""
        return self.calibration.modality(modality).llr(score)

    def llrs(self, modality: str, scores: np.ndarray) -> np.ndarray:
        return self.calibration.modality(modality).llrs(scores)

    def operating_llr(self, modality: str, target_fmr: float) -> float:
        """The LLR a single comparison of this modality must reach for `target_fmr` on the development data."""
        return self.calibration.threshold([modality], target_fmr)

    def confidence(self, modality: str, score: float, operating_llr: float) -> float:
        """0..1, 0.5 exactly at `operating_llr`, monotone in the score: logistic(LLR - operating LLR). Each
        0.1 above 0.5 near the point is a further factor of about e^0.4 in likelihood ratio."""
        return logistic(self.llr(modality, score) - operating_llr)
