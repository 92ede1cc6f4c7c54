"""The console's service object: what the pages do, on top of the daemon's own services.

    desk = ConsoleDesk.for_runtime(runtime)     # or any object with the same methods (the fleet registry)
    token, session = desk.sign_in("alice", password)
    desk.enrolment.create_customer(..., session.caller)

The existing services do the work and write the audit entries under the operator's `Caller` (enrolment,
verification, lockouts, records); the desk adds only what the console itself needs: sign-in, the live
preview, capture jobs, the consent text shown, and the read views the API does not have (one decision with
its evidence and audit entries, decision filters, customers under review, key status).
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Protocol

from edge.config import Config
from edge.decision.policy import TransactionContext, parse_amount
from edge.errors import ConflictError, NotFoundError
from edge.service.auth import Caller
from edge.service.console.jobs import Jobs
from edge.service.console.preview import CameraPreview
from edge.service.console.sessions import ConsoleSession, ConsoleSessions
from edge.service.operators import OperatorAccounts
from edge.store.base import Customer, DecisionRecord

DECISIONS_SCANNED = 1000       # the newest decisions the filters look through
AUDIT_PAGE = 100
AUDIT_SCAN_PAGE = 1000


def needs_terminal() -> ConflictError:
    """The refusal of a capture page where there is no camera or scanner (the registry's console)."""
    return ConflictError("enrolment and assisted verification are done at a cash desk terminal, which has the "
                         "camera and the fingerprint scanner", code="console.needs_terminal")


@dataclass
class DecisionFilter:
    terminal: str = ""
    outcome: str = ""              # "" | allow | deny
    reason: str = ""               # substring of any reason code
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def admits(self, d: DecisionRecord) -> bool:
        day = dt.date.fromisoformat(d.created_at[:10])
        return ((not self.terminal or d.terminal_id == self.terminal)
                and (not self.outcome or d.outcome == self.outcome)
                and (not self.reason or any(self.reason in r for r in d.reasons))
                and (self.date_from is None or day >= self.date_from)
                and (self.date_to is None or day <= self.date_to))


class ConsoleBackend(Protocol):
    """What the console's pages use: a terminal's `ConsoleDesk`, or another app's own object (the registry)."""

    cfg: Config
    captures: bool             # a camera and a scanner at hand (a terminal): enrolment and assisted verification
    sessions: ConsoleSessions
    preview: CameraPreview
    jobs: Jobs
    enrolment: object          # .customer(id), .erase(id, caller), .resolve_review(id, approve, note, caller)
    verification: object       # .get(session_id), .attempts_left(session)
    lockouts: object           # .list(active_only), .reset(card, identity_checked, caller)
    records: object            # .read_evidence(id, caller)
    search: object | None      # edge.search.SearchService: the investigators' scans and the two-person reveal

    @property
    def terminal_id(self) -> str: ...
    def session(self, token: str | None) -> ConsoleSession | None: ...
    def sign_in(self, name: str, password: str) -> tuple[str, ConsoleSession]: ...
    def sign_out(self, token: str | None) -> None: ...
    def find_customer(self, query: str) -> str | None: ...
    def create_customer(self, display_name: str, card_ref: str, purpose: str, modalities: list[str], given_by: str,
                        consent_text: str, language: str, caller: Caller) -> Customer: ...
    def under_review(self) -> list[Customer]: ...
    def start_enrol_face(self, customer_id: str, samples: int, caller: Caller): ...
    def start_enrol_finger(self, customer_id: str, position: str, impressions: int, caller: Caller): ...
    def open_verification(self, operation: str, amount: str, currency: str, card_ref: str, caller: Caller): ...
    def start_attempt(self, session_id: str, finger: str | None, caller: Caller): ...
    def decisions(self, flt: DecisionFilter, limit: int = 200) -> list[DecisionRecord]: ...
    def decision(self, decision_id: str) -> tuple[DecisionRecord, list, list]: ...
    def audit_page(self, before_seq: int | None = None) -> tuple[object, list]: ...
    def key_status(self) -> dict: ...
    def purge_evidence(self, caller: Caller) -> int: ...


class OperatorDesk:
    """What every console backend shares: operators signing in against the store's accounts, the audit of
    what the console itself does, finding customers, the review queue, and the decision list and audit page
    read through `records` (an edge.service.records.AuditRecords, which each desk sets)."""

    captures = False
    search = None

    def __init__(self, cfg: Config, store):
        self.cfg = cfg
        self.store = store
        self.operators = OperatorAccounts(store, cfg.console)
        self.sessions = ConsoleSessions(cfg.console.idle_timeout_s)
        self.jobs = Jobs()

    # -- sign-in --------------------------------------------------------------------------------------
    def sign_in(self, name: str, password: str) -> tuple[str, ConsoleSession]:
        operator = self.operators.authenticate(name, password)
        return self.sessions.open(operator.name, operator.role)

    def session(self, token: str | None) -> ConsoleSession | None:
        """The live session of this cookie, or None: idle too long, or its account was disabled, given another
        role or a new password since it began (then it is ended here)."""
        session = self.sessions.get(token)
        if session is None:
            return None
        with self.store.transaction() as tx:
            account = tx.get_operator(session.operator)
        if (account is None or account.status != "active" or account.role != session.role
                or account.password_changed_at > session.signed_in_at):
            self.sessions.close(token)
            return None
        return session

    def sign_out(self, token: str | None) -> None:
        session = self.sessions.close(token)
        if session is not None:
            self._audit(session.caller, "operator.signed_out", {"operator": session.operator})

    def _audit(self, caller: Caller, event: str, details: dict) -> None:
        with self.store.transaction() as tx:
            tx.audit(caller.actor, event, details)

    # -- customers ------------------------------------------------------------------------------------
    def find_customer(self, query: str) -> str | None:
        """The customer id for a card reference or a customer id, or None."""
        query = query.strip()
        with self.store.transaction() as tx:
            customer = tx.customer_for_card(query) or (tx.get_customer(query) if query.startswith("cus_") else None)
        return customer.id if customer else None

    def under_review(self) -> list[Customer]:
        out, offset = [], 0
        with self.store.transaction() as tx:
            while True:
                page = tx.list_customers(limit=500, offset=offset)
                out += [c for c in page if c.status == "review"]
                if not page:   # (a page may be short: a tampered record is left out of it, not the end)
                    return out
                offset += 500

    # -- auditors ---------------------------------------------------------------------------------------
    def decisions(self, flt: DecisionFilter, limit: int = 200) -> list[DecisionRecord]:
        return [d for d in self.records.decisions(limit=DECISIONS_SCANNED) if flt.admits(d)][:limit]

    def audit_page(self, before_seq: int | None = None) -> tuple[object, list]:
        """The chain's verification and the newest entries (before `before_seq`), newest first."""
        verification = self.records.verify()
        head = verification.head_seq or 0
        upto = min(head, before_seq - 1) if before_seq else head
        entries = self.records.audit_entries(max(0, upto - AUDIT_PAGE), AUDIT_PAGE)
        return verification, [e for e in reversed(entries) if e.seq <= upto]


class ConsoleDesk(OperatorDesk):
    """The daemon's ConsoleBackend: the runtime's services plus the console's own parts."""

    captures = True

    def __init__(self, runtime):
        super().__init__(runtime.cfg, runtime.store)
        self.runtime = runtime
        self.enrolment = runtime.enrolment
        self.verification = runtime.verification
        self.lockouts = runtime.lockouts
        self.records = runtime.records
        self.search = runtime.search
        self.preview = CameraPreview(runtime.devices, runtime.core)

    @classmethod
    def for_runtime(cls, runtime) -> "ConsoleDesk":
        desk = cls(runtime)
        runtime.attach(desk)
        return desk

    @property
    def terminal_id(self) -> str:
        return self.cfg.terminal_id

    def create_customer(self, display_name: str, card_ref: str, purpose: str, modalities: list[str], given_by: str,
                        consent_text: str, language: str, caller: Caller) -> Customer:
        """The customer and consent (EnrolmentService), and which consent text in which language was shown:
        its SHA-256 goes to the audit log, so the signed paper can be matched to the record."""
        customer = self.enrolment.create_customer(display_name, [card_ref], purpose, modalities, given_by, caller)
        self._audit(caller, "consent.text_shown", {
            "customer_id": customer.id, "language": language,
            "text_sha256": hashlib.sha256(consent_text.encode("utf-8")).hexdigest()})
        return customer

    # -- enrolment and verification jobs -------------------------------------------------------------
    def start_enrol_face(self, customer_id: str, samples: int, caller: Caller):
        def work(tell):
            added, captures, dups = self.enrolment.enrol_face(customer_id, samples, caller, progress=tell)
            return {"added": added, "captures": captures, "duplicate_of": dups}
        return self.jobs.start(caller.operator or caller.actor, "enrol_face", customer_id, work)

    def start_enrol_finger(self, customer_id: str, position: str, impressions: int, caller: Caller):
        def work(tell):
            added, captures, dups = self.enrolment.enrol_finger(customer_id, [position], impressions, caller,
                                                                progress=tell)
            return {"added": added, "captures": captures, "duplicate_of": dups}
        return self.jobs.start(caller.operator or caller.actor, "enrol_finger", customer_id, work)

    def open_verification(self, operation: str, amount: str, currency: str, card_ref: str, caller: Caller):
        ctx = TransactionContext(operation, parse_amount(amount), currency, card_ref)
        return self.verification.open(ctx, caller)

    def start_attempt(self, session_id: str, finger: str | None, caller: Caller):
        def work(tell):
            out = self.verification.attempt(session_id, caller, finger)
            return {"decision_id": out.decision_id, "outcome": out.outcome, "reasons": out.reasons,
                    "locked": out.locked, "scores": out.scores, "liveness": out.liveness,
                    "attempts_left": self.verification.attempts_left(out.session)}
        return self.jobs.start(caller.operator or caller.actor, "attempt", session_id, work)

    # -- auditors ---------------------------------------------------------------------------------------
    def decision(self, decision_id: str) -> tuple[DecisionRecord, list, list]:
        """One decision, its evidence items and the audit entries that name it (oldest first)."""
        found = next((d for d in self.records.decisions(limit=DECISIONS_SCANNED) if d.id == decision_id), None)
        if found is None:
            raise NotFoundError("no such decision", code="input.unknown_decision")
        evidence = self.records.evidence(decision_id)
        entries, after = [], 0
        while True:
            page = self.records.audit_entries(after, AUDIT_SCAN_PAGE)
            entries += [e for e in page if e.details.get("decision_id") == decision_id]
            if len(page) < AUDIT_SCAN_PAGE:
                return found, evidence, entries
            after = page[-1].seq

    # -- administrators --------------------------------------------------------------------------------
    def key_status(self) -> dict:
        with self.store.transaction() as tx:
            usage = tx.key_usage()
        active = self.runtime.secrets.active_data_key
        return {"active": active, "usage": {k: usage.get(k, 0) for k in sorted({active, *usage})}}

    def purge_evidence(self, caller: Caller) -> int:
        return len(self.runtime.purge_evidence(actor=caller.actor))

    def close(self) -> None:
        self.preview.close()
