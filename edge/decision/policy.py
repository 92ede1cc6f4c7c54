"""Which factors an operation needs: a pure function of the transaction context and the configuration.

    need = required_factors(TransactionContext("card_load", Decimal("1200"), "USD", "card-1"), cfg.policy)
    need.factors   -> ("face", "finger")
    need.reasons   -> ["policy.card_load_above_threshold: 1200.00 USD = 1200.00 USD > 913.00 USD"]

Default rules (edge.decision.config.PolicyConfig, all overridable in configuration) follow the regulation the
product is built for: biometric checks before every cash withdrawal, identity verification for card loads
above 913 USD equivalent, nothing extra for deposits and balance enquiries. Unknown operations are refused:
a terminal cannot invent an operation to escape a rule.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from edge.decision.config import OperationPolicy, PolicyConfig
from edge.errors import InputError

FACTOR_SETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "face": ("face",),
    "face+finger": ("face", "finger"),
    "refuse": (),
}


@dataclass(frozen=True)
class TransactionContext:
    operation: str
    amount: Decimal
    currency: str
    card_ref: str


@dataclass(frozen=True)
class FactorRequirement:
    rule: str                          # none | face | face+finger | refuse
    factors: tuple[str, ...]
    target_fmr: float
    dispenses: bool
    amount_usd: Decimal
    reasons: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        return self.rule == "refuse"

    @property
    def needs_biometrics(self) -> bool:
        return bool(self.factors)


# An amount is plain ASCII decimal text: no Unicode digits ("١٠٠"), no "1_000", no exponent, no sign, at most
# 4 decimals. Whether its decimals suit the currency is the session's check (the currency's minor units).
AMOUNT_PATTERN = r"^[0-9]{1,13}(\.[0-9]{1,4})?$"


def parse_amount(value: str | int | Decimal) -> Decimal:
    """The one amount rule (API, console, CLI): ASCII decimal text, an int or a Decimal; never a binary float."""
    if isinstance(value, bool) or isinstance(value, float):
        raise InputError("send the amount as decimal text (\"100.50\"): binary floats are not exact",
                         code="input.amount")
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        if not re.fullmatch(AMOUNT_PATTERN, value, flags=re.ASCII):
            raise InputError(f"amount {value[:40]!r} is not ASCII digits with an optional '.' and at most 4 decimals",
                             code="input.amount")
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise InputError(f"amount {value!r} is not a number", code="input.amount") from None
    if not amount.is_finite() or amount < 0:
        raise InputError("amount must be a finite, non-negative number", code="input.amount")
    if amount > Decimal("1e12"):
        raise InputError("amount is implausibly large", code="input.amount")
    return amount


def to_usd(amount: Decimal, currency: str, policy: PolicyConfig) -> Decimal:
    rate = policy.usd_rates.get(currency.upper())
    if rate is None:
        raise InputError(f"no exchange rate configured for currency {currency!r} "
                         f"(known: {', '.join(sorted(policy.usd_rates))})", code="input.currency")
    return (amount * Decimal(str(rate))).quantize(Decimal("0.01"))


def required_factors(ctx: TransactionContext, policy: PolicyConfig) -> FactorRequirement:
    rule: OperationPolicy | None = policy.operations.get(ctx.operation)
    if rule is None:
        known = ", ".join(sorted(policy.operations))
        return FactorRequirement("refuse", (), policy.target_fmr, False, Decimal(0),
                                 [f"policy.unknown_operation: {ctx.operation!r} is not configured (known: {known})"])
    usd = to_usd(ctx.amount, ctx.currency, policy)
    name = rule.factors
    reasons = [f"policy.{ctx.operation}: rule '{rule.factors}'"]
    if rule.threshold_usd is not None and rule.factors_above is not None:
        limit = Decimal(str(rule.threshold_usd)).quantize(Decimal("0.01"))
        if usd > limit:
            name = rule.factors_above
            reasons = [f"policy.{ctx.operation}_above_threshold: {ctx.amount} {ctx.currency} = {usd} USD "
                       f"> {limit} USD: rule '{name}'"]
        else:
            reasons = [f"policy.{ctx.operation}_within_threshold: {ctx.amount} {ctx.currency} = {usd} USD "
                       f"<= {limit} USD: rule '{name}'"]
    target = rule.target_fmr if rule.target_fmr is not None else policy.target_fmr
    return FactorRequirement(name, FACTOR_SETS[name], target, rule.dispenses, usd, reasons)
