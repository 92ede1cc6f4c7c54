"""The policy section of the configuration (`[policy]`): which factors each operation needs, attempt limits,
lockout and the fused decision's target (edge.decision)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from edge.sections import Section


class OperationPolicy(Section):
    """What one operation needs: `factors`, or `factors_above` when the amount exceeds `threshold_usd`."""

    factors: Literal["none", "face", "face+finger", "refuse"] = "face+finger"
    threshold_usd: float | None = Field(None, ge=0)
    factors_above: Literal["none", "face", "face+finger", "refuse"] | None = None
    target_fmr: float | None = Field(None, gt=0, lt=1, description="overrides PolicyConfig.target_fmr")
    dispenses: bool = Field(False, description="allow issues an XFS4IoT dispense token for the amount")


def _default_operations() -> dict[str, "OperationPolicy"]:
    return {
        "cash_withdrawal": OperationPolicy(factors="face+finger", dispenses=True),
        "cash_deposit": OperationPolicy(factors="none"),
        "balance_inquiry": OperationPolicy(factors="none"),
        # Identity verification for card loads above 913 USD equivalent (edge.decision.policy).
        "card_load": OperationPolicy(factors="none", threshold_usd=913.0, factors_above="face+finger"),
    }


class SecondFingerPolicy(Section):
    """Sequential fusion (edge.decision.fusion): a close call asks the customer for a second enrolled finger."""

    enabled: bool = True
    margin_llr: float = Field(3.0, ge=0, le=20, description="a fused LLR at most this far below the threshold "
                                                            "(every factor favouring the claim) asks for a second finger")


class PolicyConfig(Section):
    """edge.decision: which factors each operation needs, attempt limits, fusion threshold."""

    operations: dict[str, OperationPolicy] = Field(default_factory=_default_operations)
    # USD per one unit of the currency (configurable; used only to compare against thresholds).
    usd_rates: dict[str, float] = Field(default_factory=lambda: {
        "USD": 1.0, "EUR": 1.08, "GBP": 1.27, "KZT": 0.0020, "RUB": 0.011, "CNY": 0.14})
    attempts_per_session: int = Field(3, ge=1, le=10)
    lockout_base_s: float = Field(30.0, ge=0, description="first lockout; NIST 800-63B-4: >= 30 s")
    lockout_growth: float = Field(2.0, ge=1.0)
    lockout_max_s: float = Field(86400.0, ge=0)
    total_failure_cap: int = Field(50, ge=1, description="then biometrics are disabled for the card (NIST cap 50)")
    target_fmr: float = Field(1e-5, gt=0, lt=1, description="combined false-match rate the fused threshold targets")
    calibration_file: str | None = Field(None, description="fitted LR calibration JSON (default: edge/decision/calibration.json)")
    liveness_required: bool = True
    second_finger: SecondFingerPolicy = Field(default_factory=SecondFingerPolicy)
    min_factor_llr: float = Field(0.0, description="each required factor must on its own reach this log-LR "
                                                     "(0 = its evidence favours the claim)")
