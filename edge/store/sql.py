"""The SQL the stores share: one schema, one set of queries, for SQLite (a terminal) and PostgreSQL (the registry).

    class SQLiteStore(SqlStore): ...        # edge.store.sqlite: one file, WAL
    class PostgresStore(SqlStore): ...      # edge.store.postgres: a connection pool, several processes

A backend supplies a `Dialect` (how its DDL spells a few types, how a row is locked for update, its
trigger syntax) and connections; `SqlTransaction` holds every query, written once with `?` placeholders
(turned into `%s` for psycopg). Biometric payloads cross this layer as plaintext and are sealed here
(AES-GCM, the row's identity as associated data) before any SQL sees them.
"""
from __future__ import annotations

import hmac
import json
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from edge.audit.chain import (GENESIS_HASH, HEAD_TAMPERED, AuditEntry, AuditVerification, details_text, head_mac,
                              make_entry, parse_details, verify_rows)
from edge.audit.verify import AUDIT_HEAD_SQL, AUDIT_ROWS_SQL
from edge.errors import InputError, StorageError
from edge.store.base import (
    CacheEntry,
    Change,
    Consent,
    Customer,
    DecisionRecord,
    EvidenceMeta,
    LockoutState,
    OperatorAccount,
    OutboxItem,
    ProbeMeta,
    RevealRequest,
    ScanMeta,
    Store,
    StoredTemplate,
    TamperReport,
    TemplateImport,
    TemplateMeta,
    TerminalRecord,
    Transaction,
    iso,
    utcnow,
)
from edge.store.crypto import KeyRing, Sealed, aad_for

log = logging.getLogger("biogate.store")


@dataclass(frozen=True)
class Dialect:
    name: str                  # "sqlite" | "postgresql"
    blob: str                  # the binary column type
    real: str                  # a double-precision float column type
    lock_row: str              # appended to a SELECT that must lock the row it reads until COMMIT
    paramstyle: str            # "qmark" (?) or "format" (%s)
    serial: str                # an auto-incrementing integer primary key

    def sql(self, text: str) -> str:
        """A query written with `?` placeholders in this engine's style (no query here has a literal ?)."""
        return text if self.paramstyle == "qmark" else text.replace("%", "%%").replace("?", "%s")


SQLITE = Dialect("sqlite", blob="BLOB", real="REAL", lock_row="", paramstyle="qmark",   # BEGIN IMMEDIATE locks
                 serial="INTEGER PRIMARY KEY AUTOINCREMENT")
POSTGRESQL = Dialect("postgresql", blob="BYTEA", real="DOUBLE PRECISION", lock_row=" FOR UPDATE",
                     paramstyle="format", serial="BIGSERIAL PRIMARY KEY")

# The audit log is append-only inside the product; anyone editing the database directly is caught by
# `biogate audit verify`. Trigger syntax is the one part of the schema each engine spells its own way.
_APPEND_ONLY = {
    "sqlite": [
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END",
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'audit is append-only'; END; $$",
        "CREATE TRIGGER audit_no_update BEFORE UPDATE OR DELETE ON audit "
        "FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    ],
}


def _schema_v1(d: Dialect) -> list[str]:
    tables = f"""
    CREATE TABLE customers (
        id TEXT PRIMARY KEY,
        display_name TEXT NOT NULL,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'review', 'erased')),
        review_reason TEXT
    );
    CREATE TABLE cards (
        card_ref TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL REFERENCES customers(id)
    );
    CREATE INDEX cards_by_customer ON cards(customer_id);
    CREATE TABLE consents (
        id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL REFERENCES customers(id),
        purpose TEXT NOT NULL,
        modalities TEXT NOT NULL,
        given_at TEXT NOT NULL,
        recorded_by TEXT NOT NULL,
        withdrawn_at TEXT
    );
    CREATE TABLE templates (
        id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL REFERENCES customers(id),
        modality TEXT NOT NULL CHECK (modality IN ('face', 'finger')),
        position TEXT NOT NULL,
        sample_index INTEGER NOT NULL,
        format TEXT NOT NULL,
        quality {d.real} NOT NULL,
        created_at TEXT NOT NULL,
        key_id TEXT NOT NULL,
        nonce {d.blob} NOT NULL,
        ciphertext {d.blob} NOT NULL
    );
    CREATE INDEX templates_by_customer ON templates(customer_id, modality);
    CREATE TABLE decisions (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        customer_id TEXT,
        card_ref TEXT NOT NULL,
        operation TEXT NOT NULL,
        amount TEXT NOT NULL,
        currency TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('allow', 'deny')),
        factors TEXT NOT NULL,
        reasons TEXT NOT NULL,
        scores TEXT NOT NULL,
        terminal_id TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX decisions_by_card ON decisions(card_ref, created_at);
    CREATE TABLE evidence (
        id TEXT PRIMARY KEY,
        decision_id TEXT NOT NULL,
        customer_id TEXT,
        media_type TEXT NOT NULL,
        created_at TEXT NOT NULL,
        retain_until TEXT NOT NULL,
        key_id TEXT NOT NULL,
        nonce {d.blob} NOT NULL,
        ciphertext {d.blob} NOT NULL
    );
    CREATE INDEX evidence_by_retention ON evidence(retain_until);
    CREATE TABLE lockouts (
        card_ref TEXT PRIMARY KEY,
        consecutive_failures INTEGER NOT NULL,
        total_failures INTEGER NOT NULL,
        lockouts INTEGER NOT NULL,
        locked_until TEXT,
        disabled INTEGER NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        prev_hash TEXT NOT NULL,
        timestamp TEXT NOT NULL,
        actor TEXT NOT NULL,
        event TEXT NOT NULL,
        details TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TABLE audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL
    );
    INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '{GENESIS_HASH}');
    """
    return statements(tables) + _APPEND_ONLY[d.name]


def _schema_v2_fleet(d: Dialect) -> list[str]:
    """The fleet: a terminal's outbox, sync state and cache; the registry's terminals, their audit chains and the
    change feed (both sides share one schema; each uses its half)."""
    return statements(f"""
    ALTER TABLE decisions ADD COLUMN offline INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE outbox (
        id {d.serial},
        kind TEXT NOT NULL,
        item_key TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE TABLE sync_state (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE cache_entries (
        customer_id TEXT PRIMARY KEY,
        origin TEXT NOT NULL CHECK (origin IN ('registry', 'local')),
        fetched_at TEXT NOT NULL,
        last_used_at TEXT NOT NULL
    );
    CREATE TABLE terminals (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL,
        transport_key_id TEXT NOT NULL,
        transport_nonce {d.blob} NOT NULL,
        transport_ciphertext {d.blob} NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
        created_at TEXT NOT NULL,
        revoked_at TEXT,
        last_seen_at TEXT,
        anchor_seq INTEGER NOT NULL DEFAULT 0,
        anchor_hash TEXT NOT NULL DEFAULT '{GENESIS_HASH}',
        anchored_at TEXT
    );
    CREATE TABLE terminal_audit (
        terminal_id TEXT NOT NULL REFERENCES terminals(id),
        seq INTEGER NOT NULL,
        prev_hash TEXT NOT NULL,
        timestamp TEXT NOT NULL,
        actor TEXT NOT NULL,
        event TEXT NOT NULL,
        details TEXT NOT NULL,
        hash TEXT NOT NULL,
        PRIMARY KEY (terminal_id, seq)
    );
    CREATE TABLE remote_evidence (
        id TEXT PRIMARY KEY,
        terminal_id TEXT NOT NULL,
        decision_id TEXT NOT NULL,
        customer_id TEXT,
        media_type TEXT NOT NULL,
        created_at TEXT NOT NULL,
        retain_until TEXT NOT NULL
    );
    CREATE TABLE changes (
        seq INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        origin TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE ingested (
        terminal_id TEXT NOT NULL,
        item_key TEXT NOT NULL,
        ingested_at TEXT NOT NULL,
        PRIMARY KEY (terminal_id, item_key)
    );
    CREATE TABLE change_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL
    );
    INSERT INTO change_head (id, seq) VALUES (1, 0);
    CREATE INDEX decisions_by_terminal ON decisions(terminal_id)
    """)


def _schema_v3_operators(d: Dialect) -> list[str]:
    """The console's operator accounts (edge.service.operators)."""
    return statements("""
    CREATE TABLE operators (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('teller', 'auditor', 'admin')),
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until TEXT,
        password_changed_at TEXT NOT NULL,
        last_login_at TEXT
    )
    """)


def _schema_v4_consent_signer(d: Dialect) -> list[str]:
    """Issue 14: the consent keeps the name it was signed with."""
    return ["ALTER TABLE consents ADD COLUMN given_by TEXT NOT NULL DEFAULT ''"]


def _schema_v5_integrity(d: Dialect) -> list[str]:
    """Integrity and dual control (issue 14): each customer's record is sealed (its status, cards and active
    templates, so an `UPDATE cards` or a deleted template row is detected), templates carry their state
    (active, or pending a second operator's approval), unreadable blobs are quarantined instead of stopping
    everyone. After these statements AFTER_MIGRATION[5] re-seals every template under the v2 associated data and seals
    every customer's record (it needs the keys, so it is Python, in the same transaction)."""
    return statements(f"""
    ALTER TABLE customers ADD COLUMN binding_key_id TEXT;
    ALTER TABLE customers ADD COLUMN binding_nonce {d.blob};
    ALTER TABLE customers ADD COLUMN binding_ciphertext {d.blob};
    ALTER TABLE templates ADD COLUMN state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'pending'));
    ALTER TABLE templates ADD COLUMN import_id TEXT;
    ALTER TABLE templates ADD COLUMN quarantined TEXT;
    ALTER TABLE evidence ADD COLUMN quarantined TEXT;
    CREATE TABLE template_imports (
        id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL REFERENCES customers(id),
        requested_by TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        source TEXT NOT NULL,
        count INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
        decided_by TEXT,
        decided_at TEXT
    );
    CREATE INDEX template_imports_by_customer ON template_imports(customer_id)
    """)


def _schema_v6_search(d: Dialect) -> list[str]:
    """1:N search (edge.search): the sealed probe embedding of every attempt, stored network scans and the customers
    they name; the investigator role for operators (the role check is widened by rebuilding the table, the one way
    both engines change a CHECK)."""
    return statements(f"""
    CREATE TABLE probes (
        id TEXT PRIMARY KEY,
        decision_id TEXT NOT NULL,
        terminal_id TEXT NOT NULL,
        card_ref TEXT NOT NULL,
        customer_id TEXT,
        outcome TEXT NOT NULL CHECK (outcome IN ('allow', 'deny')),
        created_at TEXT NOT NULL,
        retain_until TEXT NOT NULL,
        key_id TEXT NOT NULL,
        nonce {d.blob} NOT NULL,
        ciphertext {d.blob} NOT NULL
    );
    CREATE INDEX probes_by_time ON probes(created_at);
    CREATE INDEX probes_by_retention ON probes(retain_until);
    CREATE INDEX probes_by_customer ON probes(customer_id);
    CREATE TABLE search_scans (
        id TEXT PRIMARY KEY,
        actor TEXT NOT NULL,
        purpose TEXT NOT NULL,
        case_ref TEXT NOT NULL,
        created_at TEXT NOT NULL,
        retain_until TEXT NOT NULL,
        key_id TEXT NOT NULL,
        nonce {d.blob} NOT NULL,
        ciphertext {d.blob} NOT NULL
    );
    CREATE TABLE search_subjects (
        scan_id TEXT NOT NULL REFERENCES search_scans(id),
        customer_id TEXT NOT NULL,
        PRIMARY KEY (scan_id, customer_id)
    );
    CREATE INDEX search_subjects_by_customer ON search_subjects(customer_id);
    CREATE TABLE search_reveals (
        id TEXT PRIMARY KEY,
        scan_id TEXT NOT NULL,
        pseudonym TEXT NOT NULL,
        what TEXT NOT NULL CHECK (what IN ('identity', 'evidence')),
        purpose TEXT NOT NULL,
        case_ref TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        approved_by TEXT,
        approved_at TEXT
    );
    CREATE TABLE operators_v6 (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('teller', 'auditor', 'admin', 'investigator')),
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until TEXT,
        password_changed_at TEXT NOT NULL,
        last_login_at TEXT
    );
    INSERT INTO operators_v6 SELECT name, role, password_hash, created_at, status, failed_logins, locked_until,
        password_changed_at, last_login_at FROM operators;
    DROP TABLE operators;
    ALTER TABLE operators_v6 RENAME TO operators
    """)


def _schema_v7_keyed_audit(d: Dialect) -> list[str]:
    """Issue 14, finding 4: the audit chain is keyed (entries from now on carry an HMAC under the audit key,
    `keyed` = 1; the head carries its own MAC; edge.audit.chain)."""
    return ["ALTER TABLE audit ADD COLUMN keyed INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE audit_head ADD COLUMN mac TEXT NOT NULL DEFAULT ''"]


# Each migration: (version, dialect -> statements). It runs once, in one transaction, and bumps
# schema_version. Add new ones at the end; never edit one that has shipped.
MIGRATIONS: list[tuple[int, Callable[[Dialect], list[str]]]] = [
    (1, _schema_v1),
    (2, _schema_v2_fleet),
    (3, _schema_v3_operators),
    (4, _schema_v4_consent_signer),
    (5, _schema_v5_integrity),
    (6, _schema_v6_search),
    (7, _schema_v7_keyed_audit),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
# Steps that need the keys (so are Python, not SQL), run after a migration's statements in its transaction.
# 7: the head found when the chain becomes keyed (a new database's empty one, or an older one's) gets its MAC;
# only then, so a head whose MAC is blanked later is never sealed again.
AFTER_MIGRATION: dict[int, Callable[[Any], None]] = {5: lambda tx: tx.seal_existing_records(),
                                                     7: lambda tx: tx.seal_audit_head()}


def statements(script: str) -> list[str]:
    """The statements of a DDL script without procedural bodies (they are given one by one)."""
    return [part.strip() for part in script.split(";") if part.strip()]


def _readable(text: Any) -> dict:
    try:
        return parse_details(text)
    except (ValueError, TypeError, RecursionError):
        return {"unreadable": True}


def _template_aad(meta: TemplateMeta) -> bytes:
    """Everything a template row says about its blob: a changed quality, creation time or state (a pending import
    flipped to active) fails authentication like a swapped blob. (The float's repr round-trips exactly through
    REAL / DOUBLE PRECISION.)"""
    return aad_for("templates/v2", meta.id, meta.customer_id,
                   f"{meta.modality}|{meta.position}|{meta.sample_index}|{meta.format}|{float(meta.quality)!r}|"
                   f"{meta.created_at}|{meta.state}")


def _template_aad_v1(meta: TemplateMeta) -> bytes:
    """The associated data before schema 5 (read once, by the migration that re-seals under v2)."""
    return aad_for("templates", meta.id, meta.customer_id,
                   f"{meta.modality}|{meta.position}|{meta.sample_index}|{meta.format}")


def _binding_aad(customer_id: str) -> bytes:
    return aad_for("customers", customer_id, customer_id, "binding")


def binding_plaintext(status: str, review_reason: str | None, display_name: str, cards: list[str],
                      template_ids: list[str]) -> bytes:
    """What a customer's sealed record binds: status, review reason, name, cards, active template ids."""
    return json.dumps({"status": status, "review_reason": review_reason, "display_name": display_name,
                       "cards": sorted(cards), "templates": sorted(template_ids)},
                      sort_keys=True, separators=(",", ":")).encode()


def _probe_aad(meta: ProbeMeta) -> bytes:
    return aad_for("probes", meta.id, meta.decision_id,
                   f"{meta.terminal_id}|{meta.card_ref}|{meta.customer_id or ''}|{meta.outcome}|{meta.created_at}")


def _scan_aad(meta: ScanMeta) -> bytes:
    return aad_for("search_scans", meta.id, meta.case_ref, f"{meta.actor}|{meta.created_at}|{meta.retain_until}")


def _evidence_aad(meta: EvidenceMeta) -> bytes:
    return aad_for("evidence", meta.id, meta.decision_id,
                   f"{meta.customer_id or ''}|{meta.media_type}|{meta.created_at}|{meta.retain_until}")


class SqlStore(Store):
    """What both backends share: the key ring, sealing and opening blobs, the migrations, tamper reports.

    A backend implements `_transaction()`; `transaction()` wraps it so that integrity failures found during a
    unit of work (`report_tamper`) are written afterwards in a unit of their own (`_flush_tamper_reports`:
    quarantine, audit entry, listeners such as the daemon's metric), whether the first one committed or not.
    """

    dialect: Dialect

    def __init__(self, keyring: KeyRing, keyring_loader: Callable[[], KeyRing] | None = None, *,
                 audit_key: bytes):
        self.keyring = keyring
        self._keyring_loader = keyring_loader
        self.audit_key = audit_key      # HMAC key of the audit chain, from secrets.json, never in the database
        self._reports: list[TamperReport] = []
        self._reports_lock = threading.Lock()
        self._reported: set[TamperReport] = set()     # audited once per process, not at every read
        self._flushing = threading.local()
        self.tamper_listeners: list[Callable[[TamperReport], None]] = []

    def seal(self, plaintext: bytes, aad: bytes) -> Sealed:
        """Seal under the active key of the key file *now*: a `biogate keys rotate` that made a new key active is
        picked up before anything is sealed (the loader re-reads the file only when it changed)."""
        if self._keyring_loader is not None:
            self.keyring = self._keyring_loader()
        return self.keyring.seal(plaintext, aad)

    def open_blob(self, sealed: Sealed, aad: bytes) -> bytes:
        if not self.keyring.has(sealed.key_id) and self._keyring_loader is not None:
            self.keyring = self._keyring_loader()  # a `biogate keys rotate` ran while we were up
        return self.keyring.open(sealed, aad)

    def verify_audit(self) -> AuditVerification:
        """The audit chain's verdict, read in one transaction (a consistent snapshot of rows and head)."""
        with self.transaction() as tx:
            return tx.verify_audit()

    # -- units of work and tamper reports ------------------------------------------------------------
    def _transaction(self):   # the backend's BEGIN ... COMMIT
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator["SqlTransaction"]:
        try:
            with self._transaction() as tx:
                yield tx
        finally:
            self._flush_tamper_reports()

    def report_tamper(self, report: TamperReport) -> None:
        with self._reports_lock:
            if report not in self._reported:
                self._reports.append(report)

    def _flush_tamper_reports(self) -> None:
        if getattr(self._flushing, "active", False):
            return
        with self._reports_lock:
            reports, self._reports = self._reports, []
            self._reported.update(reports)
        if not reports:
            return
        self._flushing.active = True
        try:
            with self._transaction() as tx:
                for report in reports:
                    tx.quarantine(report)
        except Exception as exc:   # never let the report of one bad row break the caller's work
            log.error("could not record a tamper report", extra={"error": type(exc).__name__})
        finally:
            self._flushing.active = False
        for report in reports:
            log.error("stored record failed its integrity check",
                      extra={"table": report.table, "row_id": report.row_id, "error_code": report.code})
            for listener in self.tamper_listeners:
                listener(report)

    def _apply_migrations(self, execute: Callable[..., Any], tx_factory: Callable[[], "SqlTransaction"]) -> None:
        """Run the migrations newer than the database, inside the caller's transaction."""
        execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        current = execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        if current > SCHEMA_VERSION:
            raise StorageError(f"database schema {current} is newer than this biogate ({SCHEMA_VERSION})",
                               code="storage.schema_too_new")
        for version, build in MIGRATIONS:
            if version <= current:
                continue
            for statement in build(self.dialect):
                execute(statement)
            if version in AFTER_MIGRATION:
                AFTER_MIGRATION[version](tx_factory())
            execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, iso(utcnow())))


class _Cursorless:
    """`execute(sql, args)` on a connection in the backend's parameter style (psycopg and sqlite3 both return a
    cursor with fetchone / fetchall / rowcount / iteration)."""

    def __init__(self, conn: Any, dialect: Dialect):
        self._conn, self._d = conn, dialect

    def execute(self, sql: str, args: Sequence = ()) -> Any:
        if not args:   # no parameters: the text goes as it is (psycopg then reads no placeholders)
            return self._conn.execute(sql)
        return self._conn.execute(self._d.sql(sql), tuple(args))


class SqlTransaction(Transaction):
    def __init__(self, store: SqlStore, conn: Any):
        self._s = store
        self._d = store.dialect
        self._c = _Cursorless(conn, store.dialect)

    # -- audit ------------------------------------------------------------------------------
    def seal_audit_head(self) -> None:
        seq, digest = self._c.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        self._c.execute("UPDATE audit_head SET mac = ? WHERE id = 1", (head_mac(self._s.audit_key, int(seq), digest),))

    def audit(self, actor: str, event: str, details: dict) -> AuditEntry:
        key = self._s.audit_key
        seq, prev, mac = self._c.execute("SELECT seq, hash, mac FROM audit_head WHERE id = 1"
                                         + self._d.lock_row).fetchone()
        if not hmac.compare_digest(str(mac), head_mac(key, int(seq), str(prev))):
            # Someone replaced the head (a truncated tail, a rolled-back file). The terminal keeps working, but
            # the entry says so under the key, so the next append cannot make the cut invisible.
            log.error("audit head does not verify: the log was truncated or its head replaced")
            details = {**details, HEAD_TAMPERED: True}
        entry = make_entry(int(seq) + 1, str(prev), iso(utcnow()), actor, event, details, key=key)
        self._c.execute("INSERT INTO audit (seq, prev_hash, timestamp, actor, event, details, hash, keyed) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
                        (entry.seq, entry.prev_hash, entry.timestamp, entry.actor, entry.event,
                         details_text(entry), entry.hash))
        self._c.execute("UPDATE audit_head SET seq = ?, hash = ?, mac = ? WHERE id = 1",
                        (entry.seq, entry.hash, head_mac(key, entry.seq, entry.hash)))
        return entry

    def verify_audit(self) -> AuditVerification:
        return verify_rows(self._c.execute(AUDIT_ROWS_SQL).fetchall(), self._c.execute(AUDIT_HEAD_SQL).fetchone(),
                           self._s.audit_key)

    def audit_entries(self, after_seq: int = 0, limit: int = 100) -> list[AuditEntry]:
        """Entries for reading (the API, the fleet upload); a row too damaged to read is shown as such, the
        verifier names it (edge.audit.chain.verify_rows)."""
        rows = self._c.execute("SELECT seq, prev_hash, timestamp, actor, event, details, hash FROM audit "
                               "WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)).fetchall()
        return [AuditEntry(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), _readable(r[5]), str(r[6]))
                for r in rows]

    # -- customers --------------------------------------------------------------------------
    def add_customer(self, customer: Customer) -> None:
        self._c.execute("INSERT INTO customers (id, display_name, created_at, status, review_reason) "
                        "VALUES (?, ?, ?, ?, ?)", (customer.id, customer.display_name, customer.created_at,
                                                   customer.status, customer.review_reason))
        with self._changing(customer.id, check="none"):
            for ref in customer.card_refs:
                if self._c.execute("SELECT 1 FROM cards WHERE card_ref = ?", (ref,)).fetchone():
                    raise InputError("card reference already belongs to a customer", code="input.card_in_use")
                self._c.execute("INSERT INTO cards (card_ref, customer_id) VALUES (?, ?)", (ref, customer.id))

    # A customer's record is sealed as a whole (`binding_plaintext`): reading a customer compares the rows with
    # the sealed copy, and every change here re-seals it after checking the old one (so a change made behind
    # biogate's back is never blessed by a later legitimate one).
    _CUSTOMER_COLS = "id, display_name, created_at, status, review_reason"

    def _customer(self, row) -> Customer:
        cards = [r[0] for r in self._c.execute("SELECT card_ref FROM cards WHERE customer_id = ? ORDER BY card_ref",
                                               (row[0],))]
        customer = Customer(row[0], row[1], row[2], row[3], row[4], cards)
        self._check_binding(customer)
        return customer

    def _active_template_ids(self, customer_id: str) -> list[str]:
        return [r[0] for r in self._c.execute("SELECT id FROM templates WHERE customer_id = ? AND state = 'active' "
                                              "AND quarantined IS NULL", (customer_id,))]

    def _sealed_binding(self, customer_id: str) -> dict | None:
        """The customer's sealed record as it was last written by biogate (None: missing or unreadable)."""
        r = self._c.execute("SELECT binding_key_id, binding_nonce, binding_ciphertext FROM customers WHERE id = ?",
                            (customer_id,)).fetchone()
        if r is None or r[0] is None or r[1] is None or r[2] is None:
            return None
        try:
            return json.loads(self._s.open_blob(Sealed(r[0], bytes(r[1]), bytes(r[2])), _binding_aad(customer_id)))
        except StorageError:
            return None

    def _check_binding(self, customer: Customer) -> None:
        sealed = self._sealed_binding(customer.id)
        current = json.loads(binding_plaintext(customer.status, customer.review_reason, customer.display_name,
                                               customer.card_refs, self._active_template_ids(customer.id)))
        if sealed == current:
            return
        changed = tuple(sorted(k for k in current if sealed is None or sealed.get(k) != current[k])) or ("seal",)
        if sealed is None:
            changed = ("seal",)
        self._s.report_tamper(TamperReport("customers", customer.id, customer.id, "storage.tampered", changed))
        raise StorageError("this customer's record was changed outside biogate (" + ", ".join(changed) + ")",
                           code="storage.tampered", details={"customer_id": customer.id, "changed": list(changed)})

    def _rebind(self, customer_id: str) -> None:
        row = self._c.execute(f"SELECT {self._CUSTOMER_COLS} FROM customers WHERE id = ?", (customer_id,)).fetchone()
        if row is None:
            return
        cards = [r[0] for r in self._c.execute("SELECT card_ref FROM cards WHERE customer_id = ?", (customer_id,))]
        plain = binding_plaintext(row[3], row[4], row[1], cards, self._active_template_ids(customer_id))
        sealed = self._s.seal(plain, _binding_aad(customer_id))
        self._c.execute("UPDATE customers SET binding_key_id = ?, binding_nonce = ?, binding_ciphertext = ? "
                        "WHERE id = ?", (sealed.key_id, sealed.nonce, sealed.ciphertext, customer_id))

    @contextmanager
    def _changing(self, customer_id: str, *, check: str = "strict") -> Iterator[None]:
        """Check the customer's sealed record, let the caller change it, re-seal it.

        check="strict": a record that no longer checks out refuses the change (storage.tampered);
        "if_intact": the change goes ahead either way (a card revocation), but only an intact record is re-sealed,
        so a change made behind biogate's back stays detected; "none": re-sealed whatever it was (a new customer,
        an erasure: nothing of the old record is left to bless)."""
        intact = True
        if check != "none":
            row = self._c.execute(f"SELECT {self._CUSTOMER_COLS} FROM customers WHERE id = ?",
                                  (customer_id,)).fetchone()
            if row is not None:
                try:
                    self._customer(row)
                except StorageError as exc:
                    if check == "strict" or exc.code != "storage.tampered":
                        raise
                    intact = False
        yield
        if intact:
            self._rebind(customer_id)

    def get_customer(self, customer_id: str) -> Customer | None:
        row = self._c.execute(f"SELECT {self._CUSTOMER_COLS} FROM customers WHERE id = ?", (customer_id,)).fetchone()
        return self._customer(row) if row else None

    def customer_for_card(self, card_ref: str) -> Customer | None:
        row = self._c.execute("SELECT c.id, c.display_name, c.created_at, c.status, c.review_reason "
                              "FROM customers c JOIN cards k ON k.customer_id = c.id WHERE k.card_ref = ?",
                              (card_ref,)).fetchone()
        return self._customer(row) if row else None

    def list_customers(self, limit: int = 100, offset: int = 0) -> list[Customer]:
        """The customers whose records check out; a tampered one is reported (audit, metric) and left out."""
        rows = self._c.execute(f"SELECT {self._CUSTOMER_COLS} FROM customers "
                               "ORDER BY created_at, id LIMIT ? OFFSET ?", (limit, offset)).fetchall()
        found = []
        for r in rows:
            try:
                found.append(self._customer(r))
            except StorageError as exc:
                if exc.code != "storage.tampered":
                    raise
        return found

    def set_customer_status(self, customer_id: str, status: str, reason: str | None = None) -> None:
        with self._changing(customer_id):
            self._c.execute("UPDATE customers SET status = ?, review_reason = ? WHERE id = ?",
                            (status, reason, customer_id))

    def add_card(self, customer_id: str, card_ref: str) -> None:
        owner = self._c.execute("SELECT customer_id FROM cards WHERE card_ref = ?", (card_ref,)).fetchone()
        if owner:
            raise InputError("card reference already belongs to a customer", code="input.card_in_use")
        with self._changing(customer_id):
            self._c.execute("INSERT INTO cards (card_ref, customer_id) VALUES (?, ?)", (card_ref, customer_id))

    def remove_card(self, card_ref: str) -> str | None:
        row = self._c.execute("SELECT customer_id FROM cards WHERE card_ref = ?", (card_ref,)).fetchone()
        if row:
            # removing a card (a revocation) must work on a record that no longer checks out too
            with self._changing(row[0], check="if_intact"):
                self._c.execute("DELETE FROM cards WHERE card_ref = ?", (card_ref,))
        return row[0] if row else None

    def add_consent(self, consent: Consent) -> None:
        self._c.execute("INSERT INTO consents (id, customer_id, purpose, modalities, given_at, recorded_by, "
                        "withdrawn_at, given_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (consent.id, consent.customer_id, consent.purpose, json.dumps(consent.modalities),
                         consent.given_at, consent.recorded_by, consent.withdrawn_at, consent.given_by))

    def consents(self, customer_id: str) -> list[Consent]:
        rows = self._c.execute("SELECT id, customer_id, purpose, modalities, given_at, recorded_by, withdrawn_at, "
                               "given_by FROM consents WHERE customer_id = ? ORDER BY given_at",
                               (customer_id,)).fetchall()
        return [Consent(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7]) for r in rows]

    def withdraw_consents(self, customer_id: str, at: str) -> int:
        return self._c.execute("UPDATE consents SET withdrawn_at = ? WHERE customer_id = ? AND withdrawn_at IS NULL",
                               (at, customer_id)).rowcount

    def erase_customer(self, customer_id: str) -> dict[str, int]:
        # No check first: an erasure must succeed even on a record that was tampered with (nothing is left to bless).
        with self._changing(customer_id, check="none"):
            counts = {"templates": self._c.execute("DELETE FROM templates WHERE customer_id = ?",
                                                   (customer_id,)).rowcount,
                      "evidence": self.delete_evidence_of(customer_id),
                      "probes": self._c.execute("DELETE FROM probes WHERE customer_id = ?", (customer_id,)).rowcount,
                      "scans": self.delete_scans_naming(customer_id),
                      "cards": self._c.execute("DELETE FROM cards WHERE customer_id = ?", (customer_id,)).rowcount}
            self._c.execute("UPDATE template_imports SET status = 'rejected' WHERE customer_id = ? "
                            "AND status = 'pending'", (customer_id,))
            self._c.execute("UPDATE customers SET status = 'erased', display_name = '', review_reason = NULL "
                            "WHERE id = ?", (customer_id,))
        return counts

    # -- templates --------------------------------------------------------------------------
    def add_template(self, meta: TemplateMeta, payload: bytes, import_id: str | None = None) -> None:
        sealed = self._s.seal(payload, _template_aad(meta))
        meta.key_id = sealed.key_id
        with self._changing(meta.customer_id):
            self._c.execute("INSERT INTO templates (id, customer_id, modality, position, sample_index, format, "
                            "quality, created_at, key_id, nonce, ciphertext, state, import_id) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (meta.id, meta.customer_id, meta.modality, meta.position, meta.sample_index, meta.format,
                             float(meta.quality), meta.created_at, sealed.key_id, sealed.nonce, sealed.ciphertext,
                             meta.state, import_id))

    _TEMPLATE_COLS = ("id, customer_id, modality, position, sample_index, format, quality, created_at, key_id, "
                      "state, nonce, ciphertext")
    _USABLE = "state = 'active' AND quarantined IS NULL"

    @staticmethod
    def _template_meta(r) -> TemplateMeta:
        return TemplateMeta(r[0], r[1], r[2], r[3], int(r[4]), r[5], float(r[6]), r[7], r[8], r[9])

    def _open_template(self, r, aad=_template_aad) -> StoredTemplate:
        meta = self._template_meta(r)
        try:
            plain = self._s.open_blob(Sealed(r[8], bytes(r[10]), bytes(r[11])), aad(meta))
        except StorageError as exc:
            self._s.report_tamper(TamperReport("templates", meta.id, meta.customer_id, exc.code))
            raise
        return StoredTemplate(**meta.__dict__, payload=bytearray(plain))

    def templates(self, customer_id: str, modality: str | None = None) -> list[StoredTemplate]:
        """The customer's active templates, after their record checked out (a deleted row is noticed); a blob that
        fails to open raises storage.tampered (and is quarantined afterwards: see SqlStore)."""
        self.get_customer(customer_id)
        sql = f"SELECT {self._TEMPLATE_COLS} FROM templates WHERE customer_id = ? AND {self._USABLE}"
        args: tuple = (customer_id,)
        if modality:
            sql, args = sql + " AND modality = ?", args + (modality,)
        rows = self._c.execute(sql + " ORDER BY modality, position, sample_index", args).fetchall()
        opened: list[StoredTemplate] = []
        try:
            for r in rows:
                opened.append(self._open_template(r))
        except StorageError:
            for t in opened:
                t.zeroise()
            raise
        return opened

    def template_metas(self, customer_id: str) -> list[TemplateMeta]:
        rows = self._c.execute("SELECT id, customer_id, modality, position, sample_index, format, quality, "
                               f"created_at, key_id, state FROM templates WHERE customer_id = ? AND {self._USABLE} "
                               "ORDER BY modality, position, sample_index", (customer_id,)).fetchall()
        return [self._template_meta(r) for r in rows]

    def all_templates(self, modality: str, exclude_customer: str | None = None) -> list[StoredTemplate]:
        """Every other customer's active templates of a modality (the duplicate check). A blob that fails to open
        is reported and left out: one bad row never stops everyone else's enrolment."""
        cols = ", ".join("t." + c.strip() for c in self._TEMPLATE_COLS.split(","))
        rows = self._c.execute(f"SELECT {cols} FROM templates t JOIN customers c "
                               "ON c.id = t.customer_id WHERE t.modality = ? AND c.status != 'erased' "
                               "AND t.state = 'active' AND t.quarantined IS NULL AND t.customer_id != ?",
                               (modality, exclude_customer or "")).fetchall()
        opened = []
        for r in rows:
            try:
                opened.append(self._open_template(r))
            except StorageError:
                continue
        return opened

    def delete_templates(self, customer_id: str) -> int:
        with self._changing(customer_id, check="if_intact"):
            return self._c.execute("DELETE FROM templates WHERE customer_id = ?", (customer_id,)).rowcount

    # -- imports under dual control ------------------------------------------------------------
    _IMPORT_COLS = "id, customer_id, requested_by, requested_at, source, count, status, decided_by, decided_at"

    def add_import(self, imp: TemplateImport) -> None:
        self._c.execute(f"INSERT INTO template_imports ({self._IMPORT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (imp.id, imp.customer_id, imp.requested_by, imp.requested_at, imp.source, imp.count,
                         imp.status, imp.decided_by, imp.decided_at))

    def get_import(self, import_id: str) -> TemplateImport | None:
        r = self._c.execute(f"SELECT {self._IMPORT_COLS} FROM template_imports WHERE id = ?", (import_id,)).fetchone()
        return TemplateImport(*r) if r else None

    def imports(self, customer_id: str) -> list[TemplateImport]:
        rows = self._c.execute(f"SELECT {self._IMPORT_COLS} FROM template_imports WHERE customer_id = ? "
                               "ORDER BY requested_at", (customer_id,)).fetchall()
        return [TemplateImport(*r) for r in rows]

    def decide_import(self, import_id: str, approve: bool, by: str, at: str) -> list[str]:
        imp = self.get_import(import_id)
        if imp is None:
            raise InputError("no such import", code="input.unknown_import")
        rows = self._c.execute(f"SELECT {self._TEMPLATE_COLS} FROM templates WHERE import_id = ? "
                               "AND state = 'pending' AND quarantined IS NULL", (import_id,)).fetchall()
        ids = [r[0] for r in rows]
        with self._changing(imp.customer_id):
            if approve:   # re-sealed as active: the state is part of the associated data
                for r in rows:
                    t = self._open_template(r)
                    t.state = "active"
                    sealed = self._s.seal(bytes(t.payload), _template_aad(t))
                    t.zeroise()
                    self._c.execute("UPDATE templates SET state = 'active', key_id = ?, nonce = ?, ciphertext = ? "
                                    "WHERE id = ?", (sealed.key_id, sealed.nonce, sealed.ciphertext, t.id))
            else:
                self._c.execute("DELETE FROM templates WHERE import_id = ? AND state = 'pending'", (import_id,))
            self._c.execute("UPDATE template_imports SET status = ?, decided_by = ?, decided_at = ? WHERE id = ?",
                            ("approved" if approve else "rejected", by, at, import_id))
        return ids

    # -- integrity: quarantine, sealing at migration ----------------------------------------------
    def quarantine(self, report: TamperReport) -> None:
        """Take a row that failed its integrity check out of use, keep it for investigation, audit it. A template's
        customer goes under review (its record is re-sealed only if nothing else about it changed)."""
        action = "reported"
        if report.table in ("templates", "evidence"):
            moved = self._c.execute(f"UPDATE {report.table} SET quarantined = ? WHERE id = ? AND quarantined IS NULL",
                                    (report.code, report.row_id)).rowcount
            action = "quarantined" if moved else "already_quarantined"
        if report.table == "templates" and report.customer_id and action == "quarantined":
            sealed = self._sealed_binding(report.customer_id)
            row = self._c.execute(f"SELECT {self._CUSTOMER_COLS} FROM customers WHERE id = ?",
                                  (report.customer_id,)).fetchone()
            if sealed is not None and row is not None:
                cards = [r[0] for r in self._c.execute("SELECT card_ref FROM cards WHERE customer_id = ?",
                                                       (report.customer_id,))]
                expected = dict(sealed, templates=[t for t in sealed["templates"] if t != report.row_id])
                current = json.loads(binding_plaintext(row[3], row[4], row[1], cards,
                                                       self._active_template_ids(report.customer_id)))
                if expected == current and row[3] != "erased":
                    reason = f"template {report.row_id} quarantined ({report.code}); re-enrol"
                    self._c.execute("UPDATE customers SET status = 'review', review_reason = ? WHERE id = ?",
                                    (reason, report.customer_id))
                    self._rebind(report.customer_id)
                    action = "quarantined_customer_under_review"
        self.audit("system:store", "storage.tampered", {
            "table": report.table, "row_id": report.row_id, "customer_id": report.customer_id, "code": report.code,
            "changed": list(report.changed), "action": action})

    def seal_existing_records(self) -> None:
        """Schema 5: re-seal every template under the v2 associated data, then seal every customer's record."""
        for r in self._c.execute(f"SELECT {self._TEMPLATE_COLS} FROM templates").fetchall():
            t = self._open_template(r, aad=_template_aad_v1)
            sealed = self._s.seal(bytes(t.payload), _template_aad(t))
            t.zeroise()
            self._c.execute("UPDATE templates SET key_id = ?, nonce = ?, ciphertext = ? WHERE id = ?",
                            (sealed.key_id, sealed.nonce, sealed.ciphertext, t.id))
        for (cid,) in self._c.execute("SELECT id FROM customers").fetchall():
            self._rebind(cid)

    # -- evidence ---------------------------------------------------------------------------
    def add_evidence(self, meta: EvidenceMeta, payload: bytes) -> None:
        sealed = self._s.seal(payload, _evidence_aad(meta))
        meta.key_id = sealed.key_id
        self._c.execute("INSERT INTO evidence (id, decision_id, customer_id, media_type, created_at, retain_until, "
                        "key_id, nonce, ciphertext) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (meta.id, meta.decision_id, meta.customer_id, meta.media_type, meta.created_at,
                         meta.retain_until, sealed.key_id, sealed.nonce, sealed.ciphertext))

    def get_evidence(self, evidence_id: str) -> tuple[EvidenceMeta, bytes] | None:
        r = self._c.execute("SELECT id, decision_id, customer_id, media_type, created_at, retain_until, key_id, "
                            "nonce, ciphertext FROM evidence WHERE id = ?", (evidence_id,)).fetchone()
        if not r:
            return None
        meta = EvidenceMeta(r[0], r[1], r[2], r[3], r[4], r[5], r[6])
        try:
            return meta, self._s.open_blob(Sealed(r[6], bytes(r[7]), bytes(r[8])), _evidence_aad(meta))
        except StorageError as exc:
            self._s.report_tamper(TamperReport("evidence", meta.id, meta.customer_id, exc.code))
            raise

    def list_evidence(self, decision_id: str | None = None, limit: int = 100) -> list[EvidenceMeta]:
        sql = "SELECT id, decision_id, customer_id, media_type, created_at, retain_until, key_id FROM evidence"
        args: tuple = ()
        if decision_id:
            sql, args = sql + " WHERE decision_id = ?", (decision_id,)
        rows = self._c.execute(sql + " ORDER BY created_at DESC LIMIT ?", args + (limit,)).fetchall()
        return [EvidenceMeta(*r) for r in rows]

    def delete_expired_evidence(self, now: str) -> list[str]:
        ids = [r[0] for r in self._c.execute("SELECT id FROM evidence WHERE retain_until <= ?", (now,))]
        self._c.execute("DELETE FROM evidence WHERE retain_until <= ?", (now,))
        return ids

    def delete_evidence_of(self, customer_id: str) -> int:
        return self._c.execute("DELETE FROM evidence WHERE customer_id = ?", (customer_id,)).rowcount

    # -- 1:N search: probes and stored scans ----------------------------------------------------
    _PROBE_COLS = "id, decision_id, terminal_id, card_ref, customer_id, outcome, created_at, retain_until, key_id"

    def add_probe(self, meta: ProbeMeta, embedding: bytes) -> bool:
        sealed = self._s.seal(embedding, _probe_aad(meta))
        meta.key_id = sealed.key_id
        return self._c.execute(f"INSERT INTO probes ({self._PROBE_COLS}, nonce, ciphertext) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                               (meta.id, meta.decision_id, meta.terminal_id, meta.card_ref, meta.customer_id,
                                meta.outcome, meta.created_at, meta.retain_until, sealed.key_id, sealed.nonce,
                                sealed.ciphertext)).rowcount == 1

    def probes(self, since: str, limit: int = 1_000_000) -> list[tuple[ProbeMeta, bytes]]:
        rows = self._c.execute(f"SELECT {self._PROBE_COLS}, nonce, ciphertext FROM probes WHERE created_at >= ? "
                               "ORDER BY created_at, id LIMIT ?", (since, limit)).fetchall()
        out = []
        for r in rows:
            meta = ProbeMeta(*r[:9])
            out.append((meta, self._s.open_blob(Sealed(r[8], bytes(r[9]), bytes(r[10])), _probe_aad(meta))))
        return out

    def get_probe(self, probe_id: str) -> tuple[ProbeMeta, bytes] | None:
        r = self._c.execute(f"SELECT {self._PROBE_COLS}, nonce, ciphertext FROM probes WHERE id = ?",
                            (probe_id,)).fetchone()
        if not r:
            return None
        meta = ProbeMeta(*r[:9])
        return meta, self._s.open_blob(Sealed(r[8], bytes(r[9]), bytes(r[10])), _probe_aad(meta))

    def count_probes(self) -> int:
        return int(self._c.execute("SELECT COUNT(*) FROM probes").fetchone()[0])

    def delete_expired_probes(self, now: str) -> int:
        return self._c.execute("DELETE FROM probes WHERE retain_until <= ?", (now,)).rowcount

    def add_scan(self, meta: ScanMeta, body: bytes, subjects: list[str]) -> None:
        sealed = self._s.seal(body, _scan_aad(meta))
        meta.key_id = sealed.key_id
        self._c.execute("INSERT INTO search_scans (id, actor, purpose, case_ref, created_at, retain_until, key_id, "
                        "nonce, ciphertext) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (meta.id, meta.actor, meta.purpose, meta.case_ref, meta.created_at, meta.retain_until,
                         sealed.key_id, sealed.nonce, sealed.ciphertext))
        for customer_id in sorted(set(subjects)):
            self._c.execute("INSERT INTO search_subjects (scan_id, customer_id) VALUES (?, ?)", (meta.id, customer_id))

    def get_scan(self, scan_id: str) -> tuple[ScanMeta, bytes] | None:
        r = self._c.execute("SELECT id, actor, purpose, case_ref, created_at, retain_until, key_id, nonce, ciphertext "
                            "FROM search_scans WHERE id = ?", (scan_id,)).fetchone()
        if not r:
            return None
        meta = ScanMeta(*r[:7])
        return meta, self._s.open_blob(Sealed(r[6], bytes(r[7]), bytes(r[8])), _scan_aad(meta))

    def add_scan_subjects(self, scan_id: str, customer_ids: list[str]) -> None:
        for customer_id in sorted(set(customer_ids)):
            self._c.execute("INSERT INTO search_subjects (scan_id, customer_id) VALUES (?, ?) "
                            "ON CONFLICT (scan_id, customer_id) DO NOTHING", (scan_id, customer_id))

    def scan_subjects(self, scan_id: str) -> list[str]:
        return [r[0] for r in self._c.execute("SELECT customer_id FROM search_subjects WHERE scan_id = ? "
                                              "ORDER BY customer_id", (scan_id,))]

    def delete_scans_naming(self, customer_id: str) -> int:
        """Stored scans are removed whole when they name the customer (erasure, consent withdrawal)."""
        ids = [r[0] for r in self._c.execute("SELECT scan_id FROM search_subjects WHERE customer_id = ?",
                                             (customer_id,)).fetchall()]
        self._delete_scans(ids)
        return len(ids)

    def _delete_scans(self, ids: list[str]) -> None:
        for scan_id in ids:
            for table, column in (("search_reveals", "scan_id"), ("search_subjects", "scan_id"), ("search_scans", "id")):
                self._c.execute(f"DELETE FROM {table} WHERE {column} = ?", (scan_id,))

    def add_reveal(self, r: RevealRequest) -> None:
        self._c.execute("INSERT INTO search_reveals (id, scan_id, pseudonym, what, purpose, case_ref, requested_by, "
                        "requested_at, approved_by, approved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (r.id, r.scan_id, r.pseudonym, r.what, r.purpose, r.case_ref, r.requested_by, r.requested_at,
                         r.approved_by, r.approved_at))

    def get_reveal(self, reveal_id: str) -> RevealRequest | None:
        r = self._c.execute("SELECT id, scan_id, pseudonym, what, purpose, case_ref, requested_by, requested_at, "
                            "approved_by, approved_at FROM search_reveals WHERE id = ?", (reveal_id,)).fetchone()
        return RevealRequest(*r) if r else None

    def approve_reveal(self, reveal_id: str, approved_by: str, at: str) -> bool:
        return self._c.execute("UPDATE search_reveals SET approved_by = ?, approved_at = ? WHERE id = ? "
                               "AND approved_by IS NULL", (approved_by, at, reveal_id)).rowcount == 1

    def reveals(self, *, requested_by: str | None = None, pending_only: bool = False,
                limit: int = 200) -> list[RevealRequest]:
        where, args = ["1 = 1"], []
        if requested_by is not None:
            where.append("requested_by = ?")
            args.append(requested_by)
        if pending_only:
            where.append("approved_by IS NULL")
        rows = self._c.execute("SELECT id, scan_id, pseudonym, what, purpose, case_ref, requested_by, requested_at, "
                               f"approved_by, approved_at FROM search_reveals WHERE {' AND '.join(where)} "
                               "ORDER BY requested_at DESC, id LIMIT ?", (*args, int(limit))).fetchall()
        return [RevealRequest(*r) for r in rows]

    def delete_expired_scans(self, now: str) -> int:
        ids = [r[0] for r in self._c.execute("SELECT id FROM search_scans WHERE retain_until <= ?", (now,)).fetchall()]
        self._delete_scans(ids)
        return len(ids)

    def face_template_owners(self) -> list[tuple[str, str]]:
        """(template id, customer id) of every usable face template of a customer not erased (no payload opened;
        pending imports and quarantined rows are not usable)."""
        return [(r[0], r[1]) for r in self._c.execute(
            "SELECT t.id, t.customer_id FROM templates t JOIN customers c ON c.id = t.customer_id "
            "WHERE t.modality = 'face' AND c.status != 'erased' AND t.state = 'active' AND t.quarantined IS NULL "
            "ORDER BY t.id").fetchall()]

    def face_templates_by_id(self, template_ids: list[str]) -> list[StoredTemplate]:
        """The usable ones of these templates; a blob that fails to open is reported (quarantined afterwards) and
        left out, as in all_templates: one bad row never stops the index or anyone's duplicate check."""
        out = []
        for start in range(0, len(template_ids), 500):
            chunk = template_ids[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self._c.execute(f"SELECT {self._TEMPLATE_COLS} FROM templates WHERE id IN ({marks}) "
                                   f"AND {self._USABLE}", tuple(chunk)).fetchall()
            for r in rows:
                try:
                    out.append(self._open_template(r))
                except StorageError:
                    continue
        return out

    # -- decisions, lockouts ----------------------------------------------------------------
    _DECISION_INSERT = ("INSERT INTO decisions (id, session_id, customer_id, card_ref, operation, amount, currency, "
                        "outcome, factors, reasons, scores, terminal_id, created_at, offline) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")

    @staticmethod
    def _decision_row(d: DecisionRecord) -> tuple:
        return (d.id, d.session_id, d.customer_id, d.card_ref, d.operation, d.amount, d.currency, d.outcome,
                d.factors, json.dumps(d.reasons), json.dumps(d.scores), d.terminal_id, d.created_at, int(d.offline))

    def add_decision(self, d: DecisionRecord) -> None:
        self._c.execute(self._DECISION_INSERT, self._decision_row(d))

    def add_decision_once(self, d: DecisionRecord) -> bool:
        return self._c.execute(self._DECISION_INSERT + " ON CONFLICT (id) DO NOTHING", self._decision_row(d)).rowcount == 1

    def count_decisions(self, terminal_id: str | None = None) -> int:
        if terminal_id is None:
            return int(self._c.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])
        return int(self._c.execute("SELECT COUNT(*) FROM decisions WHERE terminal_id = ?", (terminal_id,)).fetchone()[0])

    def decisions(self, limit: int = 100, card_ref: str | None = None) -> list[DecisionRecord]:
        sql = ("SELECT id, session_id, customer_id, card_ref, operation, amount, currency, outcome, factors, "
               "reasons, scores, terminal_id, created_at, offline FROM decisions")
        args: tuple = ()
        if card_ref:
            sql, args = sql + " WHERE card_ref = ?", (card_ref,)
        rows = self._c.execute(sql + " ORDER BY created_at DESC LIMIT ?", args + (limit,)).fetchall()
        return [DecisionRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]),
                               json.loads(r[10]), r[11], r[12], bool(r[13])) for r in rows]

    def get_lockout(self, card_ref: str) -> LockoutState | None:
        r = self._c.execute("SELECT card_ref, consecutive_failures, total_failures, lockouts, locked_until, "
                            "disabled, updated_at FROM lockouts WHERE card_ref = ?", (card_ref,)).fetchone()
        return LockoutState(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) if r else None

    def put_lockout(self, s: LockoutState) -> None:
        self._c.execute("INSERT INTO lockouts (card_ref, consecutive_failures, total_failures, lockouts, "
                        "locked_until, disabled, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT(card_ref) DO UPDATE SET consecutive_failures = excluded.consecutive_failures, "
                        "total_failures = excluded.total_failures, lockouts = excluded.lockouts, "
                        "locked_until = excluded.locked_until, disabled = excluded.disabled, "
                        "updated_at = excluded.updated_at",
                        (s.card_ref, s.consecutive_failures, s.total_failures, s.lockouts, s.locked_until,
                         int(s.disabled), s.updated_at or iso(utcnow())))

    def lockouts(self, only_active_after: str | None = None) -> list[LockoutState]:
        sql = ("SELECT card_ref, consecutive_failures, total_failures, lockouts, locked_until, disabled, updated_at "
               "FROM lockouts")
        args: tuple = ()
        if only_active_after:
            sql, args = sql + " WHERE disabled = 1 OR locked_until > ?", (only_active_after,)
        rows = self._c.execute(sql + " ORDER BY updated_at DESC", args).fetchall()
        return [LockoutState(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6]) for r in rows]

    # -- console operators --------------------------------------------------------------------
    _OPERATOR_COLUMNS = ("name, role, password_hash, created_at, status, failed_logins, locked_until, "
                         "password_changed_at, last_login_at")

    def add_operator(self, o: OperatorAccount) -> None:
        if self.get_operator(o.name) is not None:
            raise InputError(f"operator {o.name} already exists", code="input.operator_exists")
        self._c.execute(f"INSERT INTO operators ({self._OPERATOR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (o.name, o.role, o.password_hash, o.created_at, o.status, o.failed_logins, o.locked_until,
                         o.password_changed_at, o.last_login_at))

    def get_operator(self, name: str) -> OperatorAccount | None:
        r = self._c.execute(f"SELECT {self._OPERATOR_COLUMNS} FROM operators WHERE name = ?", (name,)).fetchone()
        return OperatorAccount(*r) if r else None

    def put_operator(self, o: OperatorAccount) -> None:
        self._c.execute("UPDATE operators SET role = ?, password_hash = ?, status = ?, failed_logins = ?, "
                        "locked_until = ?, password_changed_at = ?, last_login_at = ? WHERE name = ?",
                        (o.role, o.password_hash, o.status, o.failed_logins, o.locked_until, o.password_changed_at,
                         o.last_login_at, o.name))

    def list_operators(self) -> list[OperatorAccount]:
        rows = self._c.execute(f"SELECT {self._OPERATOR_COLUMNS} FROM operators ORDER BY name").fetchall()
        return [OperatorAccount(*r) for r in rows]

    # -- fleet: the terminal's side ----------------------------------------------------------
    def outbox_put(self, kind: str, key: str, body: dict) -> None:
        self._c.execute("INSERT INTO outbox (kind, item_key, body, created_at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (item_key) DO UPDATE SET body = excluded.body, kind = excluded.kind",
                        (kind, key, json.dumps(body, sort_keys=True), iso(utcnow())))

    def outbox_items(self, limit: int = 100) -> list[OutboxItem]:
        rows = self._c.execute("SELECT id, kind, item_key, body, created_at, attempts FROM outbox ORDER BY id LIMIT ?",
                               (limit,)).fetchall()
        return [OutboxItem(int(r[0]), r[1], r[2], json.loads(r[3]), r[4], int(r[5])) for r in rows]

    def outbox_done(self, ids: list[int]) -> None:
        for i in ids:
            self._c.execute("DELETE FROM outbox WHERE id = ?", (i,))

    def outbox_failed(self, ids: list[int], error: str) -> None:
        for i in ids:
            self._c.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?", (error[:200], i))

    def outbox_length(self) -> int:
        return int(self._c.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def sync_get(self, name: str, default: str | None = None) -> str | None:
        row = self._c.execute("SELECT value FROM sync_state WHERE name = ?", (name,)).fetchone()
        return row[0] if row else default

    def sync_set(self, name: str, value: str) -> None:
        self._c.execute("INSERT INTO sync_state (name, value) VALUES (?, ?) "
                        "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, value))

    def cache_put(self, e: CacheEntry) -> None:
        self._c.execute("INSERT INTO cache_entries (customer_id, origin, fetched_at, last_used_at) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (customer_id) DO UPDATE SET origin = excluded.origin, "
                        "fetched_at = excluded.fetched_at, last_used_at = excluded.last_used_at",
                        (e.customer_id, e.origin, e.fetched_at, e.last_used_at))

    def cache_entry(self, customer_id: str) -> CacheEntry | None:
        r = self._c.execute("SELECT customer_id, origin, fetched_at, last_used_at FROM cache_entries "
                            "WHERE customer_id = ?", (customer_id,)).fetchone()
        return CacheEntry(*r) if r else None

    def cache_entries(self) -> list[CacheEntry]:
        rows = self._c.execute("SELECT customer_id, origin, fetched_at, last_used_at FROM cache_entries "
                               "ORDER BY last_used_at").fetchall()
        return [CacheEntry(*r) for r in rows]

    def cache_drop(self, customer_id: str) -> None:
        self._c.execute("DELETE FROM cache_entries WHERE customer_id = ?", (customer_id,))

    def forget_customer(self, customer_id: str) -> None:
        self.delete_scans_naming(customer_id)
        for table in ("templates", "evidence", "probes", "cards", "consents", "cache_entries", "template_imports"):
            self._c.execute(f"DELETE FROM {table} WHERE customer_id = ?", (customer_id,))
        self._c.execute("DELETE FROM customers WHERE id = ?", (customer_id,))

    def offline_spend(self, card_ref: str, since: str) -> list[tuple[str, str]]:
        rows = self._c.execute("SELECT amount, currency FROM decisions WHERE card_ref = ? AND offline = 1 "
                               "AND outcome = 'allow' AND created_at > ?", (card_ref, since)).fetchall()
        return [(r[0], r[1]) for r in rows]

    # -- fleet: the registry's side ------------------------------------------------------------
    _TERMINAL_COLS = "id, status, created_at, revoked_at, last_seen_at, anchor_seq, anchor_hash, anchored_at"

    def add_terminal(self, record: TerminalRecord, token_hash: str, transport_key: bytes) -> None:
        sealed = self._s.seal(transport_key, aad_for("terminals", record.id, record.id, "transport"))
        self._c.execute("INSERT INTO terminals (id, token_hash, transport_key_id, transport_nonce, "
                        "transport_ciphertext, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (record.id, token_hash, sealed.key_id, sealed.nonce, sealed.ciphertext, record.status,
                         record.created_at))

    def get_terminal(self, terminal_id: str, *, for_update: bool = False) -> tuple[TerminalRecord, str] | None:
        r = self._c.execute(f"SELECT {self._TERMINAL_COLS}, token_hash FROM terminals WHERE id = ?"
                            + (self._d.lock_row if for_update else ""), (terminal_id,)).fetchone()
        return (TerminalRecord(r[0], r[1], r[2], r[3], r[4], int(r[5]), r[6], r[7]), r[8]) if r else None

    def terminal_transport_key(self, terminal_id: str) -> bytes:
        r = self._c.execute("SELECT transport_key_id, transport_nonce, transport_ciphertext FROM terminals "
                            "WHERE id = ?", (terminal_id,)).fetchone()
        if r is None:
            raise InputError("no such terminal", code="input.unknown_terminal")
        return self._s.open_blob(Sealed(r[0], bytes(r[1]), bytes(r[2])),
                                 aad_for("terminals", terminal_id, terminal_id, "transport"))

    def list_terminals(self) -> list[TerminalRecord]:
        rows = self._c.execute(f"SELECT {self._TERMINAL_COLS} FROM terminals ORDER BY id").fetchall()
        return [TerminalRecord(r[0], r[1], r[2], r[3], r[4], int(r[5]), r[6], r[7]) for r in rows]

    def set_terminal_status(self, terminal_id: str, status: str, revoked_at: str | None) -> None:
        self._c.execute("UPDATE terminals SET status = ?, revoked_at = ? WHERE id = ?", (status, revoked_at, terminal_id))

    def set_terminal_seen(self, terminal_id: str, at: str) -> None:
        self._c.execute("UPDATE terminals SET last_seen_at = ? WHERE id = ?", (at, terminal_id))

    def set_terminal_anchor(self, terminal_id: str, seq: int, digest: str, at: str) -> None:
        self._c.execute("UPDATE terminals SET anchor_seq = ?, anchor_hash = ?, anchored_at = ? "
                        "WHERE id = ? AND anchor_seq <= ?", (seq, digest, at, terminal_id, seq))

    def add_terminal_audit(self, terminal_id: str, entries: list[AuditEntry]) -> int:
        new = 0
        for e in entries:
            new += self._c.execute(
                "INSERT INTO terminal_audit (terminal_id, seq, prev_hash, timestamp, actor, event, details, hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (terminal_id, seq) DO NOTHING",
                (terminal_id, e.seq, e.prev_hash, e.timestamp, e.actor, e.event, json.dumps(e.details, sort_keys=True),
                 e.hash)).rowcount
        return new

    def terminal_audit_entries(self, terminal_id: str, after_seq: int = 0, limit: int = 1000) -> list[AuditEntry]:
        rows = self._c.execute("SELECT seq, prev_hash, timestamp, actor, event, details, hash FROM terminal_audit "
                               "WHERE terminal_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                               (terminal_id, after_seq, limit)).fetchall()
        return [AuditEntry(int(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5]), r[6]) for r in rows]

    def mark_ingested(self, terminal_id: str, key: str) -> bool:
        return self._c.execute("INSERT INTO ingested (terminal_id, item_key, ingested_at) VALUES (?, ?, ?) "
                               "ON CONFLICT (terminal_id, item_key) DO NOTHING",
                               (terminal_id, key, iso(utcnow()))).rowcount == 1

    def add_remote_evidence(self, terminal_id: str, m: EvidenceMeta) -> bool:
        return self._c.execute("INSERT INTO remote_evidence (id, terminal_id, decision_id, customer_id, media_type, "
                               "created_at, retain_until) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                               (m.id, terminal_id, m.decision_id, m.customer_id, m.media_type, m.created_at,
                                m.retain_until)).rowcount == 1

    def remote_evidence(self, decision_id: str) -> list[tuple[str, EvidenceMeta]]:
        rows = self._c.execute("SELECT terminal_id, id, decision_id, customer_id, media_type, created_at, retain_until "
                               "FROM remote_evidence WHERE decision_id = ? ORDER BY created_at, id",
                               (decision_id,)).fetchall()
        return [(r[0], EvidenceMeta(*r[1:])) for r in rows]

    def add_change(self, kind: str, subject: str, body: dict, origin: str) -> Change:
        # The head row is locked until COMMIT, so sequence numbers are handed out in commit order and a
        # follower reading "seq > N" never misses a change that commits later with a smaller number.
        (seq,) = self._c.execute("SELECT seq FROM change_head WHERE id = 1" + self._d.lock_row).fetchone()
        change = Change(int(seq) + 1, kind, subject, body, origin, iso(utcnow()))
        self._c.execute("INSERT INTO changes (seq, kind, subject, body, origin, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (change.seq, kind, subject, json.dumps(body, sort_keys=True), origin, change.created_at))
        self._c.execute("UPDATE change_head SET seq = ? WHERE id = 1", (change.seq,))
        return change

    def changes(self, after_seq: int, limit: int = 500) -> list[Change]:
        rows = self._c.execute("SELECT seq, kind, subject, body, origin, created_at FROM changes WHERE seq > ? "
                               "ORDER BY seq LIMIT ?", (after_seq, limit)).fetchall()
        return [Change(int(r[0]), r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows]

    def last_change_seq(self) -> int:
        return int(self._c.execute("SELECT seq FROM change_head WHERE id = 1").fetchone()[0])

    # -- keys -------------------------------------------------------------------------------
    def reencrypt_all(self) -> dict[str, int]:
        """Re-seal every readable blob under the active key. A blob that fails to open is reported (quarantined
        afterwards) and keeps its key: rotation goes on for everyone else, and its key is not retired."""
        counts = {"templates": 0, "evidence": 0, "customers": 0, "skipped": 0}
        for r in self._c.execute(f"SELECT {self._TEMPLATE_COLS} FROM templates WHERE quarantined IS NULL").fetchall():
            try:
                t = self._open_template(r)
            except StorageError:
                counts["skipped"] += 1
                continue
            sealed = self._s.seal(bytes(t.payload), _template_aad(t))
            t.zeroise()
            self._c.execute("UPDATE templates SET key_id = ?, nonce = ?, ciphertext = ? WHERE id = ?",
                            (sealed.key_id, sealed.nonce, sealed.ciphertext, t.id))
            counts["templates"] += 1
        for (eid,) in self._c.execute("SELECT id FROM evidence WHERE quarantined IS NULL").fetchall():
            try:
                meta, plain = self.get_evidence(eid)  # type: ignore[misc]
            except StorageError:
                counts["skipped"] += 1
                continue
            sealed = self._s.seal(plain, _evidence_aad(meta))
            self._c.execute("UPDATE evidence SET key_id = ?, nonce = ?, ciphertext = ? WHERE id = ?",
                            (sealed.key_id, sealed.nonce, sealed.ciphertext, eid))
            counts["evidence"] += 1
        for row in self._c.execute(f"SELECT {self._CUSTOMER_COLS} FROM customers").fetchall():
            try:
                self._customer(row)          # a record that no longer checks out is left alone (re-sealing it
            except StorageError:             # would bless the change) and reported
                counts["skipped"] += 1
                continue
            self._rebind(row[0])
            counts["customers"] += 1
        for (tid,) in self._c.execute("SELECT id FROM terminals").fetchall():   # the registry's transport keys
            sealed = self._s.seal(self.terminal_transport_key(tid), aad_for("terminals", tid, tid, "transport"))
            self._c.execute("UPDATE terminals SET transport_key_id = ?, transport_nonce = ?, transport_ciphertext = ? "
                            "WHERE id = ?", (sealed.key_id, sealed.nonce, sealed.ciphertext, tid))
            counts["terminals"] = counts.get("terminals", 0) + 1
        for r in self._c.execute(f"SELECT {self._PROBE_COLS}, nonce, ciphertext FROM probes").fetchall():
            meta = ProbeMeta(*r[:9])
            sealed = self._s.seal(self._s.open_blob(Sealed(r[8], bytes(r[9]), bytes(r[10])), _probe_aad(meta)),
                                  _probe_aad(meta))
            self._c.execute("UPDATE probes SET key_id = ?, nonce = ?, ciphertext = ? WHERE id = ?",
                            (sealed.key_id, sealed.nonce, sealed.ciphertext, meta.id))
            counts["probes"] = counts.get("probes", 0) + 1
        for (scan_id,) in self._c.execute("SELECT id FROM search_scans").fetchall():
            meta, body = self.get_scan(scan_id)  # type: ignore[misc]
            sealed = self._s.seal(body, _scan_aad(meta))
            self._c.execute("UPDATE search_scans SET key_id = ?, nonce = ?, ciphertext = ? WHERE id = ?",
                            (sealed.key_id, sealed.nonce, sealed.ciphertext, scan_id))
            counts["search_scans"] = counts.get("search_scans", 0) + 1
        return counts

    def key_usage(self) -> dict[str, int]:
        """How many blobs each key still seals, quarantined ones included (their key is kept)."""
        usage: dict[str, int] = {}
        for table, column in (("templates", "key_id"), ("evidence", "key_id"), ("terminals", "transport_key_id"),
                              ("customers", "binding_key_id"), ("probes", "key_id"), ("search_scans", "key_id")):
            for kid, n in self._c.execute(f"SELECT {column}, COUNT(*) FROM {table} WHERE {column} IS NOT NULL "
                                          f"GROUP BY {column}").fetchall():
                usage[kid] = usage.get(kid, 0) + int(n)
        return usage
