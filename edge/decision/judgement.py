"""The verdict of one verification attempt: what was captured and how it scored -> allow or deny, with reasons.

    verdict = judge(requirement, capture_failures, scores, references, calibration, min_factor_llr=0.0)
    verdict.allow, verdict.reasons, verdict.scores()

Pure: no devices, no store, no clock. The order of the reasons is the order an operator reads them in: the
policy's reasons for the factors, then either the capture failures (a sample that could not be used, a
failed liveness check: the match is not even attempted) or the match's own reasons.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from edge.decision.calibration import Calibration
from edge.decision.fusion import MatchVerdict, decide_match
from edge.decision.policy import FactorRequirement

ACCEPTED = "match.accepted"


@dataclass(frozen=True)
class Verdict:
    allow: bool
    reasons: list[str] = field(default_factory=list)
    match: MatchVerdict | None = None          # None when the capture failed before any comparison

    def scores(self) -> dict:
        """The calibrated evidence (LLRs, fused LLR, threshold, target FMR) for the decision record."""
        return self.match.scores() if self.match else {}


def judge(requirement: FactorRequirement, capture_failures: Sequence[str], scores: Mapping[str, float],
          references: Mapping[str, int], calibration: Calibration, *, min_factor_llr: float = 0.0) -> Verdict:
    """`scores`: raw score per compared modality (edge.decision.scoring); `references`: how many enrolled
    references each score is the best of (the threshold allows for them)."""
    policy_reasons = list(requirement.reasons)
    if capture_failures:
        return Verdict(False, policy_reasons + list(capture_failures))
    match = decide_match(scores, calibration, target_fmr=requirement.target_fmr, references=references,
                         min_factor_llr=min_factor_llr)
    if match.allow:
        return Verdict(True, policy_reasons + match.reasons, match)
    return Verdict(False, policy_reasons + [r for r in match.reasons if r != ACCEPTED], match)
