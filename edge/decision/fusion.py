"""Score fusion and the match decision: calibrated LLRs are summed and compared with one threshold.

    verdict = decide_match({"face": -0.41, "finger": 0.37}, calibration, target_fmr=1e-5,
                           references={"face": 3, "finger": 3})

- Each raw score becomes a log-likelihood ratio through the modality's calibration.
- Comparing a probe with k enrolled references and keeping the best score raises the chance that an
  impostor gets one lucky score roughly k-fold (union bound), so each modality's evidence is the best
  score, and the threshold targets target_fmr / prod(k) over the factors used.
- The fused LLR must reach the threshold the development data give for that FMR and that combination
  of factors; in addition every required factor must on its own favour the claim (LLR >= min_factor_llr):
  a policy that asks for face AND finger is not satisfied by an excellent face and a wrong finger.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from edge.decision.calibration import Calibration


@dataclass(frozen=True)
class MatchVerdict:
    allow: bool
    fused_llr: float
    threshold: float
    llrs: dict[str, float]
    target_fmr: float
    reasons: list[str] = field(default_factory=list)

    def scores(self) -> dict:
        return {"llr": {k: round(v, 3) for k, v in self.llrs.items()}, "fused_llr": round(self.fused_llr, 3),
                "threshold": round(self.threshold, 3), "target_fmr": self.target_fmr}


def decide_match(scores: Mapping[str, float], calibration: Calibration, *, target_fmr: float,
                 references: Mapping[str, int] | None = None, min_factor_llr: float = 0.0) -> MatchVerdict:
    factors = sorted(scores)
    refs = {f: max(1, int((references or {}).get(f, 1))) for f in factors}
    per_comparison_fmr = target_fmr / math.prod(refs.values())
    threshold = calibration.threshold(factors, per_comparison_fmr)
    llrs = {f: calibration.modality(f).llr(float(scores[f])) for f in factors}
    fused = sum(llrs.values())
    reasons = []
    for f in factors:
        if llrs[f] < min_factor_llr:
            reasons.append(f"match.{f}_mismatch")
    if fused < threshold:
        reasons.append("match.below_threshold")
    allow = not reasons
    if allow:
        reasons.append("match.accepted")
    return MatchVerdict(allow, fused, threshold, llrs, target_fmr, reasons)
