"""The verdict of one verification attempt: what was captured and how it scored -> allow or deny, with reasons.

    verdict = judge(requirement, capture_failures, scores, references, calibration, min_factor_llr=0.0,
                    second_finger=SecondFinger(), second_references=3)
    if verdict.needs_second_finger:                       # close call: the terminal asks for another finger
        verdict = judge_second_finger(verdict, second_score, calibration)   # or its capture failures
    verdict.allow, verdict.reasons, verdict.scores()

Pure: no devices, no store, no clock. The order of the reasons is the order an operator reads them in: the
policy's reasons for the factors, then either the capture failures (a sample that could not be used, a
failed liveness check: the match is not even attempted) or the match's own reasons.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from edge.decision.calibration import Calibration
from edge.decision.fusion import PENDING, SECOND_FINGER, MatchPlan, MatchVerdict, SecondFinger, plan_match
from edge.decision.policy import FactorRequirement

ACCEPTED = ("match.accepted", "match.accepted_with_second_finger")


@dataclass(frozen=True)
class Verdict:
    allow: bool
    reasons: list[str] = field(default_factory=list)
    match: MatchVerdict | None = None          # None when the capture failed before any comparison
    plan: MatchPlan | None = None              # the thresholds the match was decided against
    policy_reasons: list[str] = field(default_factory=list)

    @property
    def needs_second_finger(self) -> bool:
        return self.match is not None and self.match.pending

    def scores(self) -> dict:
        """The calibrated evidence (LLRs, fused LLR, threshold, target FMR) for the decision record."""
        return self.match.scores() if self.match else {}


def judge(requirement: FactorRequirement, capture_failures: Sequence[str], scores: Mapping[str, float],
          references: Mapping[str, int], calibration: Calibration, *, min_factor_llr: float = 0.0,
          second_finger: SecondFinger | None = None, second_references: int = 0) -> Verdict:
    """`scores`: raw score per compared modality (edge.decision.scoring); `references`: how many enrolled
    references each score is the best of (the threshold allows for them); `second_references`: how many
    impressions the customer's second enrolled finger has (0: none, so no second stage)."""
    policy_reasons = list(requirement.reasons)
    if capture_failures:
        return Verdict(False, policy_reasons + list(capture_failures), policy_reasons=policy_reasons)
    plan = plan_match(calibration, list(scores), target_fmr=requirement.target_fmr, references=references,
                      min_factor_llr=min_factor_llr, second_finger=second_finger,
                      second_references=second_references)
    match = plan.first({f: calibration.modality(f).llr(float(s)) for f, s in scores.items()})
    return _verdict(policy_reasons, match, plan)


def judge_second_finger(first: Verdict, second_score: float | None, calibration: Calibration,
                        capture_failures: Sequence[str] = ()) -> Verdict:
    """The final verdict after a pending one: the second finger's raw score (best over its impressions), or the
    reasons its capture failed (then the attempt fails with them)."""
    if not first.needs_second_finger or first.plan is None or first.match is None:
        raise ValueError("judge_second_finger needs a verdict that is waiting for a second finger")
    if capture_failures:
        return Verdict(False, first.policy_reasons + [PENDING] + list(capture_failures), first.match, first.plan,
                       first.policy_reasons)
    llr = calibration.modality(SECOND_FINGER).llr(float(second_score))
    return _verdict(first.policy_reasons, first.plan.second(first.match, llr), first.plan)


def _verdict(policy_reasons: list[str], match: MatchVerdict, plan: MatchPlan) -> Verdict:
    if match.allow:
        return Verdict(True, policy_reasons + match.reasons, match, plan, policy_reasons)
    return Verdict(False, policy_reasons + [r for r in match.reasons if r not in ACCEPTED], match, plan,
                   policy_reasons)
