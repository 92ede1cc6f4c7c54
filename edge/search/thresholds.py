"""Face-link thresholds read off the calibrated face LLRs (edge.decision.calibration), never picked by hand.

Two attempts are linked as "the same person" when the LLR of their embeddings' distance reaches `same_llr`,
the smallest LLR whose impostor exceedance (development impostor pairs, with the unseen tail charged) is at
most `link_target_rate`: that exceedance is the false-link rate, per pair of different people, the scan
works at. Two faces on one card count as "different people" only when their LLR is at most `different_llr`,
the largest LLR under which at most the same share of development genuine pairs falls: a poor capture of
the card holder is not taken for a second person.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edge.decision.calibration import Calibration


@dataclass(frozen=True)
class LinkThresholds:
    same_llr: float
    same_distance: float           # embeddings closer than this are linked
    false_link_rate: float         # P(impostor pair linked), development impostor pairs
    different_llr: float
    different_distance: float      # faces farther apart than this are different people
    false_split_rate: float        # P(genuine pair called different), development genuine pairs
    impostor_pairs: int
    genuine_pairs: int

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def link_thresholds(calibration: Calibration, target_rate: float) -> LinkThresholds:
    face = calibration.modality("face")
    impostor = face.impostor_with_unseen_tail()
    same = calibration.threshold(["face"], target_rate)
    p = impostor.counts / impostor.total
    edges = impostor.start + impostor.width * np.arange(p.size)
    false_link = float(p[edges >= same - 1e-9].sum())

    genuine = face.genuine
    g = genuine.counts / max(genuine.total, 1.0)
    g_edges = genuine.start + genuine.width * np.arange(g.size)
    below = np.cumsum(g)                             # below[i] = P(genuine LLR < edge i + 1)
    ok = np.nonzero(below <= target_rate)[0]
    different = float(g_edges[ok[-1]] + genuine.width) if ok.size else float(g_edges[0])
    different = min(different, same)
    false_split = float(g[g_edges < different - 1e-9].sum())
    return LinkThresholds(
        same_llr=float(same), same_distance=float(-face.score_for_llr(same)), false_link_rate=false_link,
        different_llr=different, different_distance=float(-face.score_for_llr(different)),
        false_split_rate=false_split,
        impostor_pairs=int(face.provenance.get("impostor_comparisons", impostor.total)),
        genuine_pairs=int(face.provenance.get("genuine_comparisons", genuine.total)))
