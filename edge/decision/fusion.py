"""Score fusion and the match decision: calibrated LLRs are summed and compared with one threshold, and a
close call may ask for a second finger (sequential fusion).

    plan = plan_match(calibration, ["face", "finger"], target_fmr=1e-5, references={"face": 1, "finger": 3},
                      second_finger=SecondFinger(margin_llr=3.0), second_references=3)
    first = plan.first({"face": face_llr, "finger": finger_llr})   # allow, deny, or pending (ask a second finger)
    final = plan.second(first, second_finger_llr) if first.pending else first

- Each raw score becomes a log-likelihood ratio through the modality's calibration.
- Comparing a probe with k enrolled references and keeping the best score raises the chance that an
  impostor gets one lucky score at most k-fold (union bound), so each modality's evidence is the best
  score, and the threshold targets target_fmr / prod(k) over the factors used.
- The fused LLR must reach the threshold the development data give for that FMR and that combination
  of factors; in addition every required factor must on its own favour the claim (LLR >= min_factor_llr):
  a policy that asks for face AND finger is not satisfied by an excellent face and a wrong finger.
- Sequential fusion (a terminal can ask for another finger, which costs the customer a few seconds): when
  every factor favours the claim but the fused LLR falls short of the threshold by at most `margin_llr`,
  the decision is pending and a second enrolled finger is asked for. The FMR budget is shared: the first
  stage's threshold is raised (bin by bin, from the one-stage threshold) until what it lets through plus
  what the second stage lets through keeps the target; the second stage's threshold is computed from the
  impostor distribution of "first stage in the close band AND first + second >= t2" (the second finger's
  impostor LLR is independent of the first stage's for a zero-effort impostor). The second stage never
  accepts below the first stage's own threshold, so the second finger always has to add evidence.
  Without a second enrolled finger the whole budget goes to the single stage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

from edge.decision.calibration import Calibration

SECOND_FINGER = "finger"            # the second finger is scored and calibrated as a finger
PENDING = "match.second_finger_needed"
MAX_STEPS = 200                     # how far (in histogram bins) the first stage may rise to make room


@dataclass(frozen=True)
class SecondFinger:
    """How a close call is settled by a second finger (`policy.second_finger`)."""

    margin_llr: float = 3.0         # how far below the threshold still counts as close


@dataclass(frozen=True)
class MatchVerdict:
    allow: bool
    fused_llr: float
    threshold: float
    llrs: dict[str, float]
    target_fmr: float
    reasons: list[str] = field(default_factory=list)
    pending: bool = False                   # close: a second finger would decide
    second_finger_llr: float | None = None  # set once a second finger was compared
    first_threshold: float | None = None    # the first stage's threshold, when a second stage was run

    def scores(self) -> dict:
        out = {"llr": {k: round(v, 3) for k, v in self.llrs.items()}, "fused_llr": round(self.fused_llr, 3),
               "threshold": round(self.threshold, 3), "target_fmr": self.target_fmr}
        if self.second_finger_llr is not None:
            out["second_finger_llr"] = round(self.second_finger_llr, 3)
            out["first_threshold"] = round(self.first_threshold or 0.0, 3)
        return out


@dataclass(frozen=True)
class MatchPlan:
    """The thresholds of one decision, computed once from the calibration (the daemon and `biogate eval
    fusion` decide through the same object)."""

    factors: tuple[str, ...]
    target_fmr: float
    threshold: float                        # first stage: fused LLR needed to allow at once
    min_factor_llr: float = 0.0
    close_from: float | None = None         # fused LLR in [close_from, threshold): ask a second finger
    second_threshold: float | None = None   # first stage + second finger LLR needed after it
    references: int = 1                     # product of the first stage's best-of-k counts
    second_references: int = 0              # impressions of the second finger

    def estimated_fmr(self, calibration: Calibration, *, unseen_tail: bool = True) -> float:
        """The zero-effort FMR these thresholds give on the development data, union bound over the best-of-k
        choices included; `unseen_tail=False` counts the measured impostor comparisons only."""
        fmr = self.references * calibration.impostor_exceedance(self.factors, self.threshold, unseen_tail=unseen_tail)
        if self.sequential:
            fmr += self.references * self.second_references * calibration.band_then_sum_exceedance(
                self.factors, SECOND_FINGER, (self.close_from, self.threshold), self.second_threshold,
                unseen_tail=unseen_tail)
        return fmr

    @property
    def sequential(self) -> bool:
        return self.close_from is not None

    def first(self, llrs: Mapping[str, float]) -> MatchVerdict:
        llrs = {f: float(llrs[f]) for f in self.factors}
        fused = sum(llrs.values())
        reasons = [f"match.{f}_mismatch" for f in self.factors if llrs[f] < self.min_factor_llr]
        if fused < self.threshold:
            if not reasons and self.sequential and fused >= self.close_from:
                return MatchVerdict(False, fused, self.threshold, llrs, self.target_fmr, [PENDING], pending=True)
            reasons.append("match.below_threshold")
        if reasons:
            return MatchVerdict(False, fused, self.threshold, llrs, self.target_fmr, reasons)
        return MatchVerdict(True, fused, self.threshold, llrs, self.target_fmr, ["match.accepted"])

    def second(self, first: MatchVerdict, second_llr: float) -> MatchVerdict:
        """The decision once the second finger was compared (its LLR, calibrated as a finger)."""
        if not first.pending or self.second_threshold is None:
            raise ValueError("a second finger is only compared after a pending first stage")
        fused = first.fused_llr + float(second_llr)
        reasons = []
        if second_llr < self.min_factor_llr:
            reasons.append("match.second_finger_mismatch")
        if fused < self.second_threshold:
            reasons.append("match.below_threshold")
        return replace(first, allow=not reasons, fused_llr=fused, threshold=self.second_threshold,
                       reasons=reasons or ["match.accepted_with_second_finger"], pending=False,
                       second_finger_llr=float(second_llr), first_threshold=self.threshold)


def plan_match(calibration: Calibration, factors: Sequence[str], *, target_fmr: float,
               references: Mapping[str, int] | None = None, min_factor_llr: float = 0.0,
               second_finger: SecondFinger | None = None, second_references: int = 0) -> MatchPlan:
    """The thresholds for `factors` at `target_fmr`; sequential when a second finger is allowed and enrolled
    (`second_references` impressions of it) and the first stage includes a finger."""
    factors = tuple(sorted(factors))
    refs = math.prod(max(1, int((references or {}).get(f, 1))) for f in factors)
    single = calibration.threshold(factors, target_fmr / refs)
    sequential = second_finger is not None and second_references > 0 and "finger" in factors
    if not sequential:
        return MatchPlan(factors, target_fmr, single, min_factor_llr, references=refs)
    # The lowest first-stage threshold at which both stages together keep the target: each step up frees
    # some of the budget for the impostors a second finger could let through.
    step = calibration.modality("finger").impostor.width
    ceiling = calibration.modality(SECOND_FINGER).llr_max
    for k in range(MAX_STEPS + 1):
        threshold = single + k * step
        first_fmr = refs * calibration.impostor_exceedance(factors, threshold)
        band = (threshold - second_finger.margin_llr, threshold)
        per_choice = (target_fmr - first_fmr) / (refs * second_references)   # union bound over both stages' best-of-k
        second = max(threshold, calibration.band_then_sum_threshold(factors, SECOND_FINGER, band, per_choice))
        plan = MatchPlan(factors, target_fmr, threshold, min_factor_llr, band[0], second, refs, second_references)
        # asking must be able to help: a second finger at its LLR ceiling lifts the band's middle to `second`
        reachable = second <= threshold - second_finger.margin_llr / 2 + ceiling
        if reachable and plan.estimated_fmr(calibration) <= target_fmr:
            return plan
    return MatchPlan(factors, target_fmr, single, min_factor_llr, references=refs)   # no room: one stage


def decide_match(scores: Mapping[str, float], calibration: Calibration, *, target_fmr: float,
                 references: Mapping[str, int] | None = None, min_factor_llr: float = 0.0) -> MatchVerdict:
    """One-stage decision on raw scores (no second finger)."""
    plan = plan_match(calibration, list(scores), target_fmr=target_fmr, references=references,
                      min_factor_llr=min_factor_llr)
    return plan.first({f: calibration.modality(f).llr(float(s)) for f, s in scores.items()})
