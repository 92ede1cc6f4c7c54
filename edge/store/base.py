"""The storage interface: records and an abstract unit of work.

`Store.transaction()` yields a `Transaction`; everything done through it, audit entries included,
commits together or not at all. Two backends implement it with one shared schema and one set of queries
(`edge.store.sql`): SQLite for a terminal (`edge.store.sqlite`) and PostgreSQL for the fleet registry
(`edge.store.postgres`: BEGIN ... COMMIT, SELECT ... FOR UPDATE on audit_head).
Biometric payloads cross this interface as plaintext bytes; backends keep them sealed at rest.
"""
from __future__ import annotations

import abc
import datetime as dt
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from edge.audit.chain import AuditEntry, AuditVerification


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(t: dt.datetime) -> str:
    """Fixed-width UTC timestamps so that text order is time order."""
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass
class Customer:
    id: str
    display_name: str
    created_at: str
    status: str = "active"            # active | review (possible duplicate) | erased
    review_reason: str | None = None
    card_refs: list[str] = field(default_factory=list)


@dataclass
class Consent:
    id: str
    customer_id: str
    purpose: str
    modalities: list[str]
    given_at: str
    recorded_by: str
    withdrawn_at: str | None = None


@dataclass
class TemplateMeta:
    id: str
    customer_id: str
    modality: str                      # face | finger
    position: str                      # face: "face"; finger: e.g. right_index
    sample_index: int
    format: str                        # e.g. biogate-face-embedding-v1, iso19794-2:2005
    quality: float
    created_at: str
    key_id: str = ""


@dataclass
class StoredTemplate(TemplateMeta):
    payload: bytearray = field(default_factory=bytearray, repr=False)

    def zeroise(self) -> None:
        self.payload[:] = b"\0" * len(self.payload)
        self.payload.clear()


@dataclass
class EvidenceMeta:
    id: str
    decision_id: str
    customer_id: str | None
    media_type: str
    created_at: str
    retain_until: str
    key_id: str = ""


@dataclass
class DecisionRecord:
    id: str
    session_id: str
    customer_id: str | None
    card_ref: str
    operation: str
    amount: str
    currency: str
    outcome: str                       # allow | deny
    factors: str
    reasons: list[str]
    scores: dict
    terminal_id: str
    created_at: str


@dataclass
class LockoutState:
    card_ref: str
    consecutive_failures: int = 0
    total_failures: int = 0
    lockouts: int = 0
    locked_until: str | None = None
    disabled: bool = False
    updated_at: str = ""


class Transaction(abc.ABC):
    """One atomic unit of work."""

    # audit ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def audit(self, actor: str, event: str, details: dict) -> AuditEntry: ...

    @abc.abstractmethod
    def audit_entries(self, after_seq: int = 0, limit: int = 100) -> list[AuditEntry]: ...

    # customers, cards, consent -------------------------------------------------------------
    @abc.abstractmethod
    def add_customer(self, customer: Customer) -> None: ...

    @abc.abstractmethod
    def get_customer(self, customer_id: str) -> Customer | None: ...

    @abc.abstractmethod
    def customer_for_card(self, card_ref: str) -> Customer | None: ...

    @abc.abstractmethod
    def list_customers(self, limit: int = 100, offset: int = 0) -> list[Customer]: ...

    @abc.abstractmethod
    def set_customer_status(self, customer_id: str, status: str, reason: str | None = None) -> None: ...

    @abc.abstractmethod
    def add_card(self, customer_id: str, card_ref: str) -> None: ...

    @abc.abstractmethod
    def add_consent(self, consent: Consent) -> None: ...

    @abc.abstractmethod
    def consents(self, customer_id: str) -> list[Consent]: ...

    @abc.abstractmethod
    def withdraw_consents(self, customer_id: str, at: str) -> int: ...

    @abc.abstractmethod
    def erase_customer(self, customer_id: str) -> dict[str, int]:
        """Remove templates, evidence, cards and the name; keep the id (audit entries refer to it)."""

    # templates -----------------------------------------------------------------------------
    @abc.abstractmethod
    def add_template(self, meta: TemplateMeta, payload: bytes) -> None: ...

    @abc.abstractmethod
    def templates(self, customer_id: str, modality: str | None = None) -> list[StoredTemplate]: ...

    @abc.abstractmethod
    def template_metas(self, customer_id: str) -> list[TemplateMeta]: ...

    @abc.abstractmethod
    def all_templates(self, modality: str, exclude_customer: str | None = None) -> list[StoredTemplate]: ...

    @abc.abstractmethod
    def delete_templates(self, customer_id: str) -> int: ...

    # evidence ------------------------------------------------------------------------------
    @abc.abstractmethod
    def add_evidence(self, meta: EvidenceMeta, payload: bytes) -> None: ...

    @abc.abstractmethod
    def get_evidence(self, evidence_id: str) -> tuple[EvidenceMeta, bytes] | None: ...

    @abc.abstractmethod
    def list_evidence(self, decision_id: str | None = None, limit: int = 100) -> list[EvidenceMeta]: ...

    @abc.abstractmethod
    def delete_expired_evidence(self, now: str) -> list[str]: ...

    @abc.abstractmethod
    def delete_evidence_of(self, customer_id: str) -> int: ...

    # decisions and lockouts ----------------------------------------------------------------
    @abc.abstractmethod
    def add_decision(self, decision: DecisionRecord) -> None: ...

    @abc.abstractmethod
    def decisions(self, limit: int = 100, card_ref: str | None = None) -> list[DecisionRecord]: ...

    @abc.abstractmethod
    def get_lockout(self, card_ref: str) -> LockoutState | None: ...

    @abc.abstractmethod
    def put_lockout(self, state: LockoutState) -> None: ...

    @abc.abstractmethod
    def lockouts(self, only_active_after: str | None = None) -> list[LockoutState]: ...

    # keys ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def reencrypt_all(self) -> dict[str, int]:
        """Re-seal every blob under the key ring's active key; returns counts per table."""

    @abc.abstractmethod
    def key_usage(self) -> dict[str, int]:
        """How many blobs each key id still seals."""


class Store(abc.ABC):
    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[Transaction]: ...

    @abc.abstractmethod
    def verify_audit(self) -> AuditVerification:
        """Walk the stored audit chain; name the first bad entry."""

    @abc.abstractmethod
    def schema_version(self) -> int: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
