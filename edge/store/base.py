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
    given_by: str = ""                 # the name the consent was signed with, as the signer wrote it


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
    state: str = "active"              # active | pending (an import awaiting its second operator's approval)


@dataclass
class StoredTemplate(TemplateMeta):
    payload: bytearray = field(default_factory=bytearray, repr=False)

    def zeroise(self) -> None:
        self.payload[:] = b"\0" * len(self.payload)
        self.payload.clear()


@dataclass
class TemplateImport:
    """Imported templates held back until a second operator approves them (dual control)."""

    id: str
    customer_id: str
    requested_by: str
    requested_at: str
    source: str                        # who signed and exported the bundle (terminal and actor)
    count: int
    status: str = "pending"            # pending | approved | rejected
    decided_by: str | None = None
    decided_at: str | None = None


@dataclass(frozen=True)
class TamperReport:
    """A stored record that failed its integrity check: which row, whose, and what was wrong."""

    table: str                         # templates | evidence | customers | terminals
    row_id: str
    customer_id: str | None
    code: str                          # storage.tampered | storage.unknown_key
    changed: tuple[str, ...] = ()      # customers: the bound fields that differ (cards, status, templates, ...)


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
class ProbeMeta:
    """The probe embedding of one verification attempt (sealed in the store; never the image)."""

    id: str
    decision_id: str
    terminal_id: str
    card_ref: str
    customer_id: str | None            # the holder of the card presented
    outcome: str                       # allow | deny
    created_at: str
    retain_until: str                  # purged with the evidence (storage.evidence_retention_days)
    key_id: str = ""


@dataclass
class ScanMeta:
    """A stored network scan (edge.search): who ran it, why, for which case; its findings are sealed."""

    id: str
    actor: str
    purpose: str
    case_ref: str
    created_at: str
    retain_until: str                  # no later than the earliest probe it rests on
    key_id: str = ""


@dataclass
class RevealRequest:
    """An investigator's request to see who is behind a pseudonym of a scan; shown only once an auditor approved."""

    id: str
    scan_id: str
    pseudonym: str
    what: str                          # identity | evidence
    purpose: str
    case_ref: str
    requested_by: str
    requested_at: str
    approved_by: str | None = None
    approved_at: str | None = None


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
    offline: bool = False              # decided while the terminal could not reach the fleet registry


@dataclass
class LockoutState:
    card_ref: str
    consecutive_failures: int = 0
    total_failures: int = 0
    lockouts: int = 0
    locked_until: str | None = None
    disabled: bool = False
    updated_at: str = ""


@dataclass
class OperatorAccount:
    """A person who signs in to the console (edge.service.operators); the password only as its argon2id hash."""

    name: str
    role: str                          # teller | auditor | admin | investigator
    password_hash: str
    created_at: str
    status: str = "active"             # active | disabled
    failed_logins: int = 0             # wrong passwords in a row
    locked_until: str | None = None    # set when failed_logins reached the limit
    password_changed_at: str = ""
    last_login_at: str | None = None


@dataclass
class OutboxItem:
    """Something the terminal must tell the fleet registry, kept until the registry acknowledges it."""

    id: int
    kind: str                          # customer | templates | erasure | lockout | decision | evidence
    key: str                           # idempotency key: the registry ingests each key once
    body: dict
    created_at: str
    attempts: int = 0


@dataclass
class CacheEntry:
    """A customer whose record and templates this terminal holds (fetched from the registry, or enrolled here)."""

    customer_id: str
    origin: str                        # registry | local
    fetched_at: str
    last_used_at: str


@dataclass
class TerminalRecord:
    """A terminal registered with the fleet registry (its secrets are not part of the record)."""

    id: str
    status: str                        # active | revoked
    created_at: str
    revoked_at: str | None = None
    last_seen_at: str | None = None
    anchor_seq: int = 0                # the terminal's audit chain head the registry holds
    anchor_hash: str = "0" * 64
    anchored_at: str | None = None


@dataclass
class Change:
    """A change made centrally (or by one terminal) that every terminal applies, in `seq` order."""

    seq: int
    kind: str                          # erasure | lockout | customer_status | card_revoked | customer_updated
    subject: str                       # the customer id or card reference it concerns
    body: dict
    origin: str                        # registry:<actor> or terminal:<id>
    created_at: str


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
    def remove_card(self, card_ref: str) -> str | None:
        """Unlink a card from its customer; the customer id it belonged to (None: no such card)."""

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

    # imports under dual control -----------------------------------------------------------------
    @abc.abstractmethod
    def add_import(self, imp: TemplateImport) -> None: ...

    @abc.abstractmethod
    def get_import(self, import_id: str) -> TemplateImport | None: ...

    @abc.abstractmethod
    def imports(self, customer_id: str) -> list[TemplateImport]: ...

    @abc.abstractmethod
    def decide_import(self, import_id: str, approve: bool, by: str, at: str) -> list[str]:
        """Approve (its templates become active, re-sealed as such) or reject (its templates are deleted);
        the ids of the templates concerned."""

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

    # 1:N search: probe embeddings and stored scans (edge.search) -----------------------------
    @abc.abstractmethod
    def add_probe(self, meta: ProbeMeta, embedding: bytes) -> bool:
        """Keep an attempt's probe embedding sealed; False when its id was already there (idempotent)."""

    @abc.abstractmethod
    def probes(self, since: str, limit: int = 1_000_000) -> list[tuple[ProbeMeta, bytes]]: ...

    @abc.abstractmethod
    def get_probe(self, probe_id: str) -> tuple[ProbeMeta, bytes] | None: ...

    @abc.abstractmethod
    def count_probes(self) -> int: ...

    @abc.abstractmethod
    def delete_expired_probes(self, now: str) -> int: ...

    @abc.abstractmethod
    def add_scan(self, meta: ScanMeta, body: bytes, subjects: list[str]) -> None: ...

    @abc.abstractmethod
    def get_scan(self, scan_id: str) -> tuple[ScanMeta, bytes] | None: ...

    @abc.abstractmethod
    def add_scan_subjects(self, scan_id: str, customer_ids: list[str]) -> None: ...

    @abc.abstractmethod
    def scan_subjects(self, scan_id: str) -> list[str]: ...

    @abc.abstractmethod
    def delete_scans_naming(self, customer_id: str) -> int: ...

    @abc.abstractmethod
    def delete_expired_scans(self, now: str) -> int: ...

    @abc.abstractmethod
    def add_reveal(self, request: RevealRequest) -> None: ...

    @abc.abstractmethod
    def get_reveal(self, reveal_id: str) -> RevealRequest | None: ...

    @abc.abstractmethod
    def approve_reveal(self, reveal_id: str, approved_by: str, at: str) -> bool:
        """Record the auditor's approval once; False when it was approved already."""

    @abc.abstractmethod
    def reveals(self, *, requested_by: str | None = None, pending_only: bool = False,
                limit: int = 200) -> list[RevealRequest]:
        """Reveal requests, newest first: one investigator's (`requested_by`), or those awaiting an auditor."""

    @abc.abstractmethod
    def face_template_owners(self) -> list[tuple[str, str]]: ...

    @abc.abstractmethod
    def face_templates_by_id(self, template_ids: list[str]) -> list[StoredTemplate]: ...

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

    # console operators ---------------------------------------------------------------------
    @abc.abstractmethod
    def add_operator(self, operator: OperatorAccount) -> None:
        """InputError input.operator_exists when the name is taken."""

    @abc.abstractmethod
    def get_operator(self, name: str) -> OperatorAccount | None: ...

    @abc.abstractmethod
    def put_operator(self, operator: OperatorAccount) -> None:
        """Write back an existing account (status, password hash, failed sign-ins, lock)."""

    @abc.abstractmethod
    def list_operators(self) -> list[OperatorAccount]: ...

    # fleet: the terminal's side (outbox, sync state, cache) ------------------------------------
    @abc.abstractmethod
    def outbox_put(self, kind: str, key: str, body: dict) -> None:
        """Queue an item for the registry (a second put of the same key replaces the body)."""

    @abc.abstractmethod
    def outbox_items(self, limit: int = 100) -> list[OutboxItem]: ...

    @abc.abstractmethod
    def outbox_done(self, ids: list[int]) -> None: ...

    @abc.abstractmethod
    def outbox_failed(self, ids: list[int], error: str) -> None: ...

    @abc.abstractmethod
    def outbox_length(self) -> int: ...

    @abc.abstractmethod
    def sync_get(self, name: str, default: str | None = None) -> str | None: ...

    @abc.abstractmethod
    def sync_set(self, name: str, value: str) -> None: ...

    @abc.abstractmethod
    def cache_put(self, entry: CacheEntry) -> None: ...

    @abc.abstractmethod
    def cache_entry(self, customer_id: str) -> CacheEntry | None: ...

    @abc.abstractmethod
    def cache_entries(self) -> list[CacheEntry]: ...

    @abc.abstractmethod
    def cache_drop(self, customer_id: str) -> None: ...

    @abc.abstractmethod
    def forget_customer(self, customer_id: str) -> None:
        """Remove every trace of a customer from this store (a cached copy evicted), without an erasure record."""

    @abc.abstractmethod
    def offline_spend(self, card_ref: str, since: str) -> list[tuple[str, str]]:
        """(amount, currency) of the card's allowed offline decisions since `since`."""

    # fleet: the registry's side (terminals, their audit chains, the change feed) ---------------
    @abc.abstractmethod
    def add_terminal(self, record: TerminalRecord, token_hash: str, transport_key: bytes) -> None: ...

    @abc.abstractmethod
    def get_terminal(self, terminal_id: str, *, for_update: bool = False) -> tuple[TerminalRecord, str] | None:
        """The terminal and its token hash; `for_update` locks its row until COMMIT (one ingest at a time)."""

    @abc.abstractmethod
    def terminal_transport_key(self, terminal_id: str) -> bytes: ...

    @abc.abstractmethod
    def list_terminals(self) -> list[TerminalRecord]: ...

    # Narrow updates, each of one aspect: a write of one never carries a stale copy of another (a last-seen
    # stamp written from a record read before an ingest must not move the anchor back).
    @abc.abstractmethod
    def set_terminal_status(self, terminal_id: str, status: str, revoked_at: str | None) -> None: ...

    @abc.abstractmethod
    def set_terminal_seen(self, terminal_id: str, at: str) -> None: ...

    @abc.abstractmethod
    def set_terminal_anchor(self, terminal_id: str, seq: int, digest: str, at: str) -> None:
        """Move the anchor forward (never back: a smaller seq is ignored)."""

    @abc.abstractmethod
    def add_terminal_audit(self, terminal_id: str, entries: list[AuditEntry]) -> int:
        """Store a terminal's audit entries (each (terminal, seq) once); how many were new."""

    @abc.abstractmethod
    def terminal_audit_entries(self, terminal_id: str, after_seq: int = 0, limit: int = 1000) -> list[AuditEntry]: ...

    @abc.abstractmethod
    def mark_ingested(self, terminal_id: str, key: str) -> bool:
        """Record that a terminal's outbox item was ingested; False when it already was (ingest it once)."""

    @abc.abstractmethod
    def add_decision_once(self, decision: DecisionRecord) -> bool:
        """Ingest a decision; False when its id was already there (idempotent)."""

    @abc.abstractmethod
    def add_remote_evidence(self, terminal_id: str, meta: EvidenceMeta) -> bool:
        """Ingest the metadata of an evidence crop kept on a terminal; False when already there."""

    @abc.abstractmethod
    def remote_evidence(self, decision_id: str) -> list[tuple[str, EvidenceMeta]]:
        """The evidence crops of an ingested decision, as (terminal holding the crop, its metadata)."""

    @abc.abstractmethod
    def count_decisions(self, terminal_id: str | None = None) -> int: ...

    @abc.abstractmethod
    def add_change(self, kind: str, subject: str, body: dict, origin: str) -> Change:
        """Append to the change feed; sequence numbers are handed out in commit order."""

    @abc.abstractmethod
    def changes(self, after_seq: int, limit: int = 500) -> list[Change]: ...

    @abc.abstractmethod
    def last_change_seq(self) -> int: ...

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
