"""Dispense authorisations: one XFS4IoT end-to-end token per allowed transaction, over its own nonce.

    tokens = DispenseTokens(dispenser, key, ttl_s)
    issued = tokens.issue("ses_...", Decimal("50.00"), "EUR")     # IssuedToken: token, nonce, expires_at
    tokens.close()                                                # at shutdown: pending expiries cancelled

An XFS4IoT dispenser holds one command nonce at a time and refuses every token not made over it; a token
made over a cleared nonce never works again (Common.ClearCommandNonce). So:
- each issue clears the dispenser's nonce and asks for a fresh one: no two transactions' tokens share a
  nonce, and a token works only for the transaction it was issued for. One authorisation is outstanding
  per dispenser (an ATM serves one customer at a time): a newer one supersedes an unspent older one.
- each token carries its own deadline: `ttl_s` after issue a timer clears the nonce, if and only if it is
  still that token's nonce. Expiry of one token therefore never touches a younger one, and nothing lives
  until the dispenser's own nonce timeout.

The daemon shares one instance between the tokens it returns in the API and the ones the bridge hands out
(BiogateAuthorisation.GetDispenseToken), so both follow the same rules.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable

from drivers.base import CashDispenser

from xfs4iot_bridge.token import make_dispense_token

log = logging.getLogger("xfs4iot_bridge.dispense")


@dataclass(frozen=True)
class IssuedToken:
    session_id: str
    token: str
    nonce: str
    amount: Decimal
    currency: str
    expires_at: dt.datetime          # wall clock, for the caller to show
    deadline: float                  # monotonic seconds


class DispenseTokens:
    def __init__(self, dispenser: CashDispenser, key: bytes, ttl_s: float,
                 monotonic: Callable[[], float] = time.monotonic):
        self.dispenser, self.key, self.ttl_s, self._now = dispenser, key, ttl_s, monotonic
        self._lock = threading.Lock()       # issue and expiry of this dispenser's nonce, one at a time
        self._outstanding: IssuedToken | None = None
        self._timer: threading.Timer | None = None

    def issue(self, session_id: str, amount: Decimal, currency: str) -> IssuedToken:
        """A token for exactly `amount` `currency` over a fresh nonce (TokenError, DeviceError as raised)."""
        with self._lock:
            self.dispenser.clear_command_nonce()           # the previous transaction's nonce, spent or not
            nonce = self.dispenser.get_command_nonce()
            token = make_dispense_token(nonce, amount, currency, self.key)
            issued = IssuedToken(session_id, token, nonce.upper(), Decimal(amount), currency,
                                 dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.ttl_s),
                                 self._now() + self.ttl_s)
            if self._outstanding is not None:
                log.info("an unspent dispense authorisation was superseded by a newer transaction's")
            self._outstanding = issued
            self._arm(issued)
            return issued

    def outstanding(self) -> IssuedToken | None:
        with self._lock:
            return self._outstanding

    def expire_due(self) -> int:
        """Clear the nonce of the outstanding token if its deadline passed (the timer does this on time;
        this is the periodic safety net). 1 when a token was made useless."""
        with self._lock:
            issued = self._outstanding
            if issued is None or self._now() < issued.deadline:
                return 0
            return self._expire_locked(issued)

    def _arm(self, issued: IssuedToken) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(self.ttl_s, self._on_deadline, args=(issued,))
        self._timer.daemon = True
        self._timer.start()

    def _on_deadline(self, issued: IssuedToken) -> None:
        with self._lock:
            self._expire_locked(issued)

    def _expire_locked(self, issued: IssuedToken) -> int:
        if self._outstanding is not issued:
            return 0                     # superseded: its nonce is gone already; never clear a younger one's
        try:
            self.dispenser.clear_command_nonce()
        except Exception as exc:        # noqa: BLE001 - the periodic expire_due tries again
            log.warning("could not clear an expired token's nonce", extra={"error": type(exc).__name__})
            return 0
        self._outstanding = None
        return 1

    def close(self) -> None:
        """At shutdown: the outstanding token is made useless now rather than left to its timer."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            if self._outstanding is not None:
                self._expire_locked(self._outstanding)
