"""How a verified session's amount reaches the bridge, and where the bridge's devices come from.

The bridge issues a `CashDispenser.Dispense` token only for an amount some authority approved.
That authority is an `Authoriser`, implemented by whoever owns verification sessions (the daemon,
edge/service) and handed to `start_bridge`:

    class Authoriser(Protocol):
        def authorise(self, session_id: str) -> Authorisation: ...

Contract: return the approved (amount, currency) for a verified session exactly once; raise
`edge.errors.PolicyError` / `AuthError` (or any BiogateError) when the session is unknown, not
verified, expired or already used. It is called from a worker thread.

`ApprovalLedger` is a small thread-safe implementation for hosts that approve amounts directly
(e.g. a bank host adapter, or a test acting as one): `approve(session_id, amount, currency)`, then
one `authorise(session_id)` consumes it.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from drivers.base import Camera, CashDispenser, FingerprintScanner
from edge.errors import PolicyError


@dataclass(frozen=True)
class Authorisation:
    amount: Decimal
    currency: str


@runtime_checkable
class Authoriser(Protocol):
    def authorise(self, session_id: str) -> Authorisation: ...


class ApprovalLedger:
    """Single-use approvals keyed by session id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._approved: dict[str, Authorisation] = {}

    def approve(self, session_id: str, amount: Decimal | str, currency: str) -> None:
        with self._lock:
            self._approved[session_id] = Authorisation(Decimal(amount), currency)

    def authorise(self, session_id: str) -> Authorisation:
        with self._lock:
            try:
                return self._approved.pop(session_id)
            except KeyError:
                raise PolicyError("no approved amount for this session (unknown or already used)",
                                  code="policy.not_authorised") from None


@dataclass
class BridgeDevices:
    """The terminal devices the Biometric service drives (any may be absent)."""

    camera: Camera | None = None
    scanner: FingerprintScanner | None = None
    dispenser: CashDispenser | None = None
