"""Lockouts as the cash desk sees them: which cards are locked, and the teller's reset after an identity check."""
from __future__ import annotations

from edge.decision import lockout as rules
from edge.errors import NotFoundError, PolicyError
from edge.fleet.link import FleetLink
from edge.fleet.outbox import NO_OUTBOX, Outbox
from edge.service.auth import Caller
from edge.store.base import LockoutState, Store, iso, utcnow


class LockoutDesk:
    def __init__(self, store: Store, outbox: Outbox = NO_OUTBOX, fleet: FleetLink | None = None):
        self.store = store
        self.outbox = outbox
        self.fleet = fleet

    def list(self, active_only: bool = True) -> list[LockoutState]:
        with self.store.transaction() as tx:
            return tx.lockouts(only_active_after=iso(utcnow()) if active_only else None)

    def reset(self, card_ref: str, identity_checked: bool, caller: Caller) -> LockoutState:
        """Clear a card's lockout; only after the teller checked an identity document (audited)."""
        if not identity_checked:
            raise PolicyError("a lockout is reset only after an identity document check",
                              code="policy.id_check_required")
        with self.store.transaction() as tx:
            state = tx.get_lockout(card_ref)
            if state is None:
                raise NotFoundError("no lockout record for this card", code="input.unknown_card")
            new = rules.reset(state, card_ref, utcnow())
            tx.put_lockout(new)
            self.outbox.lockout(tx, new)
            tx.audit(caller.actor, "lockout.reset", {"card_ref": card_ref, "identity_checked": True})
        if self.fleet is not None:
            self.fleet.wake()
        return new
