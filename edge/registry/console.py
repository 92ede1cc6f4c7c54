"""The console at the registry: the same pages as a terminal's, over the whole fleet's records.

    mount_console(app, RegistryDesk(cfg, store, service, active_key))     # edge.registry.app does this

Operators sign in with accounts kept in the registry's database (`biogate operators add --registry`).
Auditors see every terminal's decisions and the audit chains the registry holds; administrators resolve
duplicate reviews and erase customers fleet-wide; tellers find customers and reset lockouts. What needs a
camera and a scanner (new customers, enrolment, assisted verification) stays at a cash desk terminal, and
evidence crops stay on the terminal that took them: the registry only knows where they are.
"""
from __future__ import annotations

from dataclasses import dataclass

from edge.config import Config
from edge.errors import ConflictError, NotFoundError
from edge.registry.service import RegistryService
from edge.service.auth import Caller
from edge.service.console.desk import DECISIONS_SCANNED, OperatorDesk, needs_terminal
from edge.service.records import AuditRecords
from edge.store.base import Customer, DecisionRecord, LockoutState, iso, utcnow


@dataclass(frozen=True)
class RemoteCrop:
    """An evidence crop as the registry knows it: its id and the terminal that holds it."""
    id: str
    held_by: str


class RegistryCustomers:
    """The customer views and the central erasure and review actions (the console's `enrolment`)."""

    def __init__(self, service: RegistryService):
        self.service = service

    def customer(self, customer_id: str):
        with self.service.store.transaction() as tx:
            found = tx.get_customer(customer_id)
            if found is None:
                raise NotFoundError("no such customer", code="input.unknown_customer")
            return found, tx.consents(customer_id), tx.template_metas(customer_id)

    def erase(self, customer_id: str, caller: Caller) -> dict[str, int]:
        return self.service.erase_customer(customer_id, caller)

    def resolve_review(self, customer_id: str, approve: bool, note: str, caller: Caller) -> None:
        """Approve (the customer is active everywhere again) or reject (erased everywhere), as a terminal does."""
        if approve:
            self.service.set_review(customer_id, False, note, caller)
        else:
            self.service.erase_customer(customer_id, caller, reason="review_rejected")


class RegistryLockouts:
    def __init__(self, service: RegistryService):
        self.service = service

    def list(self, active_only: bool = True) -> list[LockoutState]:
        with self.service.store.transaction() as tx:
            return tx.lockouts(only_active_after=iso(utcnow()) if active_only else None)

    def reset(self, card_ref: str, identity_checked: bool, caller: Caller) -> LockoutState:
        return self.service.lock_card(card_ref, caller, reset=True, identity_checked=identity_checked)


class RegistryRecords(AuditRecords):
    """The registry's records, as a terminal's, except that the crops themselves stay on the terminals."""

    def read_evidence(self, evidence_id: str, caller: Caller):
        raise NotFoundError("evidence crops stay on the terminal that took them; open this one in that terminal's "
                            "console", code="console.evidence_at_terminal")


class RegistryDesk(OperatorDesk):
    """The registry's ConsoleBackend: the fleet's records through the RegistryService; no capture."""

    captures = False
    preview = None
    verification = None     # assisted verification needs a terminal (the capture routes refuse first)

    def __init__(self, cfg: Config, service: RegistryService, active_key: str):
        super().__init__(cfg, service.store)
        self.service = service
        self.active_key = active_key
        self.enrolment = RegistryCustomers(service)
        self.lockouts = RegistryLockouts(service)
        self.records = RegistryRecords(service.store)

    @property
    def terminal_id(self) -> str:
        return "registry"

    def decision(self, decision_id: str) -> tuple[DecisionRecord, list, list]:
        """One decision, where its crops are, and the deciding terminal's audit entries that name it."""
        found = next((d for d in self.records.decisions(limit=DECISIONS_SCANNED) if d.id == decision_id), None)
        if found is None:
            raise NotFoundError("no such decision", code="input.unknown_decision")
        entries, after = [], 0
        with self.store.transaction() as tx:
            crops = [RemoteCrop(meta.id, terminal) for terminal, meta in tx.remote_evidence(decision_id)]
            while True:
                page = tx.terminal_audit_entries(found.terminal_id, after, 1000)
                entries += [e for e in page if e.details.get("decision_id") == decision_id]
                if len(page) < 1000:
                    return found, crops, entries
                after = page[-1].seq

    def key_status(self) -> dict:
        with self.store.transaction() as tx:
            usage = tx.key_usage()
        return {"active": self.active_key, "usage": {k: usage.get(k, 0) for k in sorted({self.active_key, *usage})}}

    # What needs a camera and a scanner, or the crops themselves, is a terminal's (routes.at_terminal refuses
    # the capture pages first; these say the same to any other caller).
    def create_customer(self, *args, **kwargs) -> Customer:
        raise needs_terminal()

    def start_enrol_face(self, *args, **kwargs):
        raise needs_terminal()

    start_enrol_finger = open_verification = start_attempt = start_enrol_face

    def purge_evidence(self, caller: Caller) -> int:
        raise ConflictError("each terminal purges its own evidence on its retention schedule",
                            code="console.evidence_at_terminal")
