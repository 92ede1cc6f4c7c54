"""Dispense authorisations: an XFS4IoT end-to-end token for exactly one allowed transaction.

    issuer = TokenIssuer(devices, dispense_key, ttl_s, metrics)
    authorisation, problem = issuer.issue(amount, currency)     # problem: a reason code when none was issued
    issuer.expire_due()                                         # make tokens past their TTL useless

A token is made over the dispenser's current command nonce and the exact amount (xfs4iot_bridge.token); the
dispenser checks it itself. Tokens not used within `ttl_s` are made useless by clearing the dispenser's nonce.
"""
from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

from drivers.errors import DeviceError
from edge.errors import BiogateError
from edge.service.devices import TerminalDevices
from edge.service.metrics import ServiceMetrics
from edge.store.base import iso, utcnow
from xfs4iot_bridge.token import make_dispense_token


@dataclass
class IssuedAuthorisation:
    token: str
    nonce: str
    amount: str
    currency: str
    expires_at: str
    cleared: bool = False          # the dispenser nonce behind it was cleared after its TTL

    def to_dict(self) -> dict:
        return {"token": self.token, "nonce": self.nonce, "amount": self.amount, "currency": self.currency,
                "expires_at": self.expires_at}


class TokenIssuer:
    def __init__(self, devices: TerminalDevices, dispense_key: bytes, ttl_s: float, metrics: ServiceMetrics,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.devices = devices
        self.dispense_key = dispense_key
        self.ttl_s = ttl_s
        self.metrics = metrics
        self.clock = clock
        self._issued: list[IssuedAuthorisation] = []
        self._lock = threading.Lock()

    def issue(self, amount: Decimal, currency: str) -> tuple[IssuedAuthorisation | None, str | None]:
        """A token over the dispenser's current nonce for exactly `amount` `currency`, or (None, reason)."""
        if not self.devices.configured("dispenser"):
            return None, "dispenser.not_configured"
        try:
            with self.devices.use("dispenser") as dispenser:
                nonce = dispenser.get_command_nonce()
        except DeviceError as exc:
            self.metrics.device_errors.labels("dispenser", exc.code).inc()
            return None, f"dispenser.nonce_unavailable:{exc.code}"
        token = make_dispense_token(nonce, amount, currency, self.dispense_key)
        expires = self.clock() + dt.timedelta(seconds=self.ttl_s)
        issued = IssuedAuthorisation(token, nonce, str(amount), currency, iso(expires))
        with self._lock:
            self._issued.append(issued)
        return issued, None

    def expire_due(self) -> int:
        """Clear the dispenser's nonce behind tokens that outlived their TTL; how many were made useless."""
        now = iso(self.clock())
        with self._lock:
            due = [a for a in self._issued if not a.cleared and now >= a.expires_at]
        expired = 0
        for a in due:
            try:
                with self.devices.use("dispenser") as dispenser:
                    dispenser.clear_command_nonce()
            except BiogateError:
                continue          # tried again on the next round
            a.cleared = True
            expired += 1
        with self._lock:
            self._issued = [a for a in self._issued if not a.cleared]
        return expired
