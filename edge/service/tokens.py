"""Dispense authorisations of the API: an XFS4IoT end-to-end token for exactly one allowed transaction.

    issuer = TokenIssuer(devices, dispense_key, ttl_s, metrics)
    authorisation, problem = issuer.issue(session_id, amount, currency)   # problem: a reason code when none
    issuer.expire_due()                                                   # the periodic safety net

The rules (a fresh nonce per transaction, one outstanding authorisation, each token's own deadline that never
touches a younger token) are xfs4iot_bridge.dispense.DispenseTokens'; `issuer.dispense_tokens` is the same
instance the bridge uses for BiogateAuthorisation.GetDispenseToken. This layer adds the API's view of a token
and turns device trouble into a reason code.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

from drivers.errors import DeviceError
from edge.service.devices import SharedDispenser, TerminalDevices
from edge.service.metrics import ServiceMetrics
from edge.store.base import iso, utcnow
from xfs4iot_bridge.dispense import DispenseTokens


@dataclass
class IssuedAuthorisation:
    token: str
    nonce: str
    amount: str
    currency: str
    expires_at: str

    def to_dict(self) -> dict:
        return {"token": self.token, "nonce": self.nonce, "amount": self.amount, "currency": self.currency,
                "expires_at": self.expires_at}


class TokenIssuer:
    def __init__(self, devices: TerminalDevices, dispense_key: bytes, ttl_s: float, metrics: ServiceMetrics,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.devices = devices
        self.metrics = metrics
        self.clock = clock
        self.ttl_s = ttl_s
        self.dispense_tokens: DispenseTokens | None = (
            DispenseTokens(SharedDispenser(devices.slots["dispenser"]), dispense_key, ttl_s)
            if devices.configured("dispenser") else None)

    def issue(self, session_id: str, amount: Decimal,
              currency: str) -> tuple[IssuedAuthorisation | None, str | None]:
        """A token over a fresh dispenser nonce for exactly `amount` `currency`, or (None, reason)."""
        if self.dispense_tokens is None:
            return None, "dispenser.not_configured"
        try:
            issued = self.dispense_tokens.issue(session_id, amount, currency)
        except DeviceError as exc:
            self.metrics.device_errors.labels("dispenser", exc.code).inc()
            return None, f"dispenser.nonce_unavailable:{exc.code}"
        expires = self.clock() + dt.timedelta(seconds=self.ttl_s)
        return IssuedAuthorisation(issued.token, issued.nonce, str(amount), currency, iso(expires)), None

    def expire_due(self) -> int:
        return self.dispense_tokens.expire_due() if self.dispense_tokens is not None else 0

    def close(self) -> None:
        if self.dispense_tokens is not None:
            self.dispense_tokens.close()
