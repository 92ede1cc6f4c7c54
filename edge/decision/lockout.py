"""Attempt limits and lockout per card reference (NIST SP 800-63B-4 §3.2.3 style), as pure functions.

The state (`edge.store.LockoutState`) is loaded and saved by the caller in the same transaction as the
decision it belongs to, so a crash can never record a failure without its decision or vice versa.

Rules (numbers in edge.decision.config.PolicyConfig):
- every failed attempt (no match, failed liveness, no usable sample) counts, for the card, as one
  consecutive failure and one failure since the last success;
- after `attempts_per_session` consecutive failures the card is locked for
  `lockout_base_s * lockout_growth ** (lockouts so far)`, capped at `lockout_max_s`, and the consecutive
  count starts again;
- after `total_failure_cap` failures without a success, biometrics are disabled for the card until a
  teller resets it (an alternative, non-biometric path must then be offered: NIST requires one);
- a success clears the counters and the growth.
Device faults are not the customer's failures and never count.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from edge.decision.config import PolicyConfig
from edge.store.base import LockoutState, iso, parse_iso


@dataclass(frozen=True)
class LockoutStatus:
    locked: bool
    disabled: bool
    retry_after_s: float
    reason: str | None

    def to_dict(self) -> dict:
        return {"locked": self.locked, "disabled": self.disabled, "retry_after_s": round(self.retry_after_s, 1),
                "reason": self.reason}


def fresh(card_ref: str) -> LockoutState:
    return LockoutState(card_ref=card_ref)


def status(state: LockoutState | None, now: dt.datetime) -> LockoutStatus:
    if state is None:
        return LockoutStatus(False, False, 0.0, None)
    if state.disabled:
        return LockoutStatus(True, True, 0.0, "policy.biometrics_disabled")
    if state.locked_until:
        remaining = (parse_iso(state.locked_until) - now).total_seconds()
        if remaining > 0:
            return LockoutStatus(True, False, remaining, "policy.locked_out")
    return LockoutStatus(False, False, 0.0, None)


def record_failure(state: LockoutState | None, card_ref: str, now: dt.datetime,
                   policy: PolicyConfig) -> tuple[LockoutState, str | None]:
    """The state after one failed attempt, and the event it triggered (None, 'locked' or 'disabled')."""
    s = state or fresh(card_ref)
    s = replace(s, consecutive_failures=s.consecutive_failures + 1, total_failures=s.total_failures + 1,
                updated_at=iso(now))
    if s.total_failures >= policy.total_failure_cap:
        return replace(s, disabled=True, consecutive_failures=0), "disabled"
    if s.consecutive_failures >= policy.attempts_per_session:
        delay = min(policy.lockout_max_s, policy.lockout_base_s * policy.lockout_growth ** s.lockouts)
        return replace(s, consecutive_failures=0, lockouts=s.lockouts + 1,
                       locked_until=iso(now + dt.timedelta(seconds=delay))), "locked"
    return s, None


def record_success(state: LockoutState | None, card_ref: str, now: dt.datetime) -> LockoutState:
    return replace(state or fresh(card_ref), consecutive_failures=0, total_failures=0, lockouts=0,
                   locked_until=None, disabled=False, updated_at=iso(now))


def reset(state: LockoutState | None, card_ref: str, now: dt.datetime) -> LockoutState:
    """A teller's reset after checking the customer's identity another way."""
    return record_success(state, card_ref, now)
