"""SQLite backend of `edge.store.base.Store`: one file, WAL, versioned migrations, AES-GCM blobs.

Durability: journal_mode=WAL with synchronous=FULL (default) fsyncs the WAL at every COMMIT, so a
power cut after COMMIT returns loses nothing; a cut before it leaves the transaction out entirely
(SQLite's atomic commit). synchronous=NORMAL in WAL mode is still atomic and survives a process crash
(SIGKILL), but the last commits before a power cut may roll back; it is offered for SD-card terminals
where fsync is expensive, together with the wal_autocheckpoint default (1000 pages).

Concurrency: one connection shared by the daemon's threads behind a lock (SQLite serialises writers
anyway); BEGIN IMMEDIATE takes the write lock up front so two writers never deadlock on upgrade.
Other processes (the CLI) open their own connection; busy_timeout makes them wait instead of failing.
"""
from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from edge.audit.chain import GENESIS_HASH, AuditEntry, make_entry
from edge.errors import InputError, StorageError
from edge.store.base import (
    Consent,
    Customer,
    DecisionRecord,
    EvidenceMeta,
    LockoutState,
    Store,
    StoredTemplate,
    TemplateMeta,
    Transaction,
    iso,
    utcnow,
)
from edge.store.crypto import KeyRing, Sealed, aad_for

# Each migration runs once, in its own transaction, and bumps schema_version.
MIGRATIONS: list[tuple[int, str]] = [
    (1, """
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
        quality REAL NOT NULL,
        created_at TEXT NOT NULL,
        key_id TEXT NOT NULL,
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL
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
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL
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
    INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '%s');
    -- Append-only inside the product; anyone editing the file directly is caught by audit verify.
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
    """ % GENESIS_HASH),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]


def _template_aad(meta: TemplateMeta) -> bytes:
    return aad_for("templates", meta.id, meta.customer_id,
                   f"{meta.modality}|{meta.position}|{meta.sample_index}|{meta.format}")


def _evidence_aad(meta: EvidenceMeta) -> bytes:
    return aad_for("evidence", meta.id, meta.decision_id,
                   f"{meta.customer_id or ''}|{meta.media_type}|{meta.created_at}|{meta.retain_until}")


class SQLiteStore(Store):
    def __init__(self, path: str | Path, keyring: KeyRing, *, synchronous: str = "FULL",
                 busy_timeout_ms: int = 5000, keyring_loader: Callable[[], KeyRing] | None = None):
        self.path = Path(path)
        self.keyring = keyring
        self._keyring_loader = keyring_loader
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                         timeout=busy_timeout_ms / 1000)
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StorageError(f"could not switch {self.path} to WAL (got {mode})", code="storage.unavailable")
            self._conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"cannot open database {self.path}: {exc}", code="storage.unavailable") from None

    # -- lifecycle --------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                                   "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
                current = self._conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
                if current > SCHEMA_VERSION:
                    raise StorageError(f"database schema {current} is newer than this biogate ({SCHEMA_VERSION})",
                                       code="storage.schema_too_new")
                for version, sql in MIGRATIONS:
                    if version <= current:
                        continue
                    for statement in _split_sql(sql):
                        self._conn.execute(statement)
                    self._conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                                       (version, iso(utcnow())))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator["SQLiteTransaction"]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StorageError(f"database busy: {exc}", code="storage.busy") from None
            try:
                yield SQLiteTransaction(self)
                self._conn.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                self._conn.execute("ROLLBACK")
                raise StorageError(f"constraint violated: {exc}", code="storage.conflict") from None
            except sqlite3.DatabaseError as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StorageError(f"database error: {exc}", code="storage.error") from None
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def open_blob(self, sealed: Sealed, aad: bytes) -> bytes:
        if not self.keyring.has(sealed.key_id) and self._keyring_loader is not None:
            self.keyring = self._keyring_loader()  # a `biogate keys rotate` ran while we were up
        return self.keyring.open(sealed, aad)


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies (BEGIN ... END;) whole."""
    out, buf = [], ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            text = buf.strip()
            if text.strip(";").strip():
                out.append(text)
            buf = ""
    return out


class SQLiteTransaction(Transaction):
    def __init__(self, store: SQLiteStore):
        self._s = store
        self._c = store._conn

    # -- audit ------------------------------------------------------------------------------
    def audit(self, actor: str, event: str, details: dict) -> AuditEntry:
        seq, prev = self._c.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        entry = make_entry(int(seq) + 1, str(prev), iso(utcnow()), actor, event, details)
        self._c.execute("INSERT INTO audit (seq, prev_hash, timestamp, actor, event, details, hash) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (entry.seq, entry.prev_hash, entry.timestamp, entry.actor, entry.event,
                         json.dumps(entry.details, sort_keys=True), entry.hash))
        self._c.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (entry.seq, entry.hash))
        return entry

    def audit_entries(self, after_seq: int = 0, limit: int = 100) -> list[AuditEntry]:
        rows = self._c.execute("SELECT seq, prev_hash, timestamp, actor, event, details, hash FROM audit "
                               "WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6]) for r in rows]

    # -- customers --------------------------------------------------------------------------
    def add_customer(self, customer: Customer) -> None:
        self._c.execute("INSERT INTO customers (id, display_name, created_at, status, review_reason) "
                        "VALUES (?, ?, ?, ?, ?)", (customer.id, customer.display_name, customer.created_at,
                                                   customer.status, customer.review_reason))
        for ref in customer.card_refs:
            self.add_card(customer.id, ref)

    def _customer(self, row) -> Customer:
        cards = [r[0] for r in self._c.execute("SELECT card_ref FROM cards WHERE customer_id = ? ORDER BY card_ref",
                                               (row[0],))]
        return Customer(row[0], row[1], row[2], row[3], row[4], cards)

    def get_customer(self, customer_id: str) -> Customer | None:
        row = self._c.execute("SELECT id, display_name, created_at, status, review_reason FROM customers "
                              "WHERE id = ?", (customer_id,)).fetchone()
        return self._customer(row) if row else None

    def customer_for_card(self, card_ref: str) -> Customer | None:
        row = self._c.execute("SELECT c.id, c.display_name, c.created_at, c.status, c.review_reason "
                              "FROM customers c JOIN cards k ON k.customer_id = c.id WHERE k.card_ref = ?",
                              (card_ref,)).fetchone()
        return self._customer(row) if row else None

    def list_customers(self, limit: int = 100, offset: int = 0) -> list[Customer]:
        rows = self._c.execute("SELECT id, display_name, created_at, status, review_reason FROM customers "
                               "ORDER BY created_at, id LIMIT ? OFFSET ?", (limit, offset)).fetchall()
        return [self._customer(r) for r in rows]

    def set_customer_status(self, customer_id: str, status: str, reason: str | None = None) -> None:
        self._c.execute("UPDATE customers SET status = ?, review_reason = ? WHERE id = ?",
                        (status, reason, customer_id))

    def add_card(self, customer_id: str, card_ref: str) -> None:
        owner = self._c.execute("SELECT customer_id FROM cards WHERE card_ref = ?", (card_ref,)).fetchone()
        if owner:
            raise InputError("card reference already belongs to a customer", code="input.card_in_use")
        self._c.execute("INSERT INTO cards (card_ref, customer_id) VALUES (?, ?)", (card_ref, customer_id))

    def add_consent(self, consent: Consent) -> None:
        self._c.execute("INSERT INTO consents (id, customer_id, purpose, modalities, given_at, recorded_by, "
                        "withdrawn_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (consent.id, consent.customer_id, consent.purpose, json.dumps(consent.modalities),
                         consent.given_at, consent.recorded_by, consent.withdrawn_at))

    def consents(self, customer_id: str) -> list[Consent]:
        rows = self._c.execute("SELECT id, customer_id, purpose, modalities, given_at, recorded_by, withdrawn_at "
                               "FROM consents WHERE customer_id = ? ORDER BY given_at", (customer_id,)).fetchall()
        return [Consent(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6]) for r in rows]

    def withdraw_consents(self, customer_id: str, at: str) -> int:
        return self._c.execute("UPDATE consents SET withdrawn_at = ? WHERE customer_id = ? AND withdrawn_at IS NULL",
                               (at, customer_id)).rowcount

    def erase_customer(self, customer_id: str) -> dict[str, int]:
        counts = {"templates": self.delete_templates(customer_id), "evidence": self.delete_evidence_of(customer_id),
                  "cards": self._c.execute("DELETE FROM cards WHERE customer_id = ?", (customer_id,)).rowcount}
        self._c.execute("UPDATE customers SET status = 'erased', display_name = '', review_reason = NULL "
                        "WHERE id = ?", (customer_id,))
        return counts

    # -- templates --------------------------------------------------------------------------
    def add_template(self, meta: TemplateMeta, payload: bytes) -> None:
        sealed = self._s.keyring.seal(payload, _template_aad(meta))
        meta.key_id = sealed.key_id
        self._c.execute("INSERT INTO templates (id, customer_id, modality, position, sample_index, format, quality, "
                        "created_at, key_id, nonce, ciphertext) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (meta.id, meta.customer_id, meta.modality, meta.position, meta.sample_index, meta.format,
                         float(meta.quality), meta.created_at, sealed.key_id, sealed.nonce, sealed.ciphertext))

    _TEMPLATE_COLS = ("id, customer_id, modality, position, sample_index, format, quality, created_at, key_id, "
                      "nonce, ciphertext")

    def _open_template(self, r) -> StoredTemplate:
        meta = TemplateMeta(r[0], r[1], r[2], r[3], int(r[4]), r[5], float(r[6]), r[7], r[8])
        plain = self._s.open_blob(Sealed(r[8], r[9], r[10]), _template_aad(meta))
        return StoredTemplate(**meta.__dict__, payload=bytearray(plain))

    def templates(self, customer_id: str, modality: str | None = None) -> list[StoredTemplate]:
        sql = f"SELECT {self._TEMPLATE_COLS} FROM templates WHERE customer_id = ?"
        args: tuple = (customer_id,)
        if modality:
            sql, args = sql + " AND modality = ?", args + (modality,)
        rows = self._c.execute(sql + " ORDER BY modality, position, sample_index", args).fetchall()
        return [self._open_template(r) for r in rows]

    def template_metas(self, customer_id: str) -> list[TemplateMeta]:
        rows = self._c.execute("SELECT id, customer_id, modality, position, sample_index, format, quality, "
                               "created_at, key_id FROM templates WHERE customer_id = ? "
                               "ORDER BY modality, position, sample_index", (customer_id,)).fetchall()
        return [TemplateMeta(r[0], r[1], r[2], r[3], int(r[4]), r[5], float(r[6]), r[7], r[8]) for r in rows]

    def all_templates(self, modality: str, exclude_customer: str | None = None) -> list[StoredTemplate]:
        cols = ", ".join("t." + c.strip() for c in self._TEMPLATE_COLS.split(","))
        rows = self._c.execute(f"SELECT {cols} FROM templates t JOIN customers c "
                               "ON c.id = t.customer_id WHERE t.modality = ? AND c.status != 'erased' "
                               "AND t.customer_id != ?", (modality, exclude_customer or "")).fetchall()
        return [self._open_template(r) for r in rows]

    def delete_templates(self, customer_id: str) -> int:
        return self._c.execute("DELETE FROM templates WHERE customer_id = ?", (customer_id,)).rowcount

    # -- evidence ---------------------------------------------------------------------------
    def add_evidence(self, meta: EvidenceMeta, payload: bytes) -> None:
        sealed = self._s.keyring.seal(payload, _evidence_aad(meta))
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
        return meta, self._s.open_blob(Sealed(r[6], r[7], r[8]), _evidence_aad(meta))

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

    # -- decisions, lockouts ----------------------------------------------------------------
    def add_decision(self, d: DecisionRecord) -> None:
        self._c.execute("INSERT INTO decisions (id, session_id, customer_id, card_ref, operation, amount, currency, "
                        "outcome, factors, reasons, scores, terminal_id, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (d.id, d.session_id, d.customer_id, d.card_ref, d.operation, d.amount, d.currency, d.outcome,
                         d.factors, json.dumps(d.reasons), json.dumps(d.scores), d.terminal_id, d.created_at))

    def decisions(self, limit: int = 100, card_ref: str | None = None) -> list[DecisionRecord]:
        sql = ("SELECT id, session_id, customer_id, card_ref, operation, amount, currency, outcome, factors, "
               "reasons, scores, terminal_id, created_at FROM decisions")
        args: tuple = ()
        if card_ref:
            sql, args = sql + " WHERE card_ref = ?", (card_ref,)
        rows = self._c.execute(sql + " ORDER BY created_at DESC LIMIT ?", args + (limit,)).fetchall()
        return [DecisionRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]),
                               json.loads(r[10]), r[11], r[12]) for r in rows]

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

    # -- keys -------------------------------------------------------------------------------
    def reencrypt_all(self) -> dict[str, int]:
        counts = {"templates": 0, "evidence": 0}
        for r in self._c.execute(f"SELECT {self._TEMPLATE_COLS} FROM templates").fetchall():
            t = self._open_template(r)
            sealed = self._s.keyring.seal(bytes(t.payload), _template_aad(t))
            t.zeroise()
            self._c.execute("UPDATE templates SET key_id = ?, nonce = ?, ciphertext = ? WHERE id = ?",
                            (sealed.key_id, sealed.nonce, sealed.ciphertext, t.id))
            counts["templates"] += 1
        for (eid,) in self._c.execute("SELECT id FROM evidence").fetchall():
            meta, plain = self.get_evidence(eid)  # type: ignore[misc]
            sealed = self._s.keyring.seal(plain, _evidence_aad(meta))
            self._c.execute("UPDATE evidence SET key_id = ?, nonce = ?, ciphertext = ? WHERE id = ?",
                            (sealed.key_id, sealed.nonce, sealed.ciphertext, eid))
            counts["evidence"] += 1
        return counts

    def key_usage(self) -> dict[str, int]:
        usage: dict[str, int] = {}
        for table in ("templates", "evidence"):
            for kid, n in self._c.execute(f"SELECT key_id, COUNT(*) FROM {table} GROUP BY key_id"):
                usage[kid] = usage.get(kid, 0) + int(n)
        return usage
