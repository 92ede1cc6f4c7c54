"""SQLite backend of `edge.store.base.Store`: one file, WAL (the schema, queries and sealing: edge.store.sql).

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

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from edge.errors import StorageError
from edge.store.crypto import KeyRing
from edge.store.files import private_file, tighten
from edge.store.sql import MIGRATIONS, SCHEMA_VERSION, SQLITE, SqlStore, SqlTransaction

__all__ = ["SQLiteStore", "SQLiteTransaction", "MIGRATIONS", "SCHEMA_VERSION"]


class SQLiteStore(SqlStore):
    dialect = SQLITE

    def __init__(self, path: str | Path, keyring: KeyRing, *, synchronous: str = "FULL",
                 busy_timeout_ms: int = 5000, keyring_loader: Callable[[], KeyRing] | None = None,
                 audit_key: bytes):
        super().__init__(keyring, keyring_loader, audit_key=audit_key)
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            # 0600 before SQLite opens it: its -wal and -shm files take the database file's mode
            private_file(self.path)
            for suffix in ("-wal", "-shm"):
                tighten(self.path.with_name(self.path.name + suffix))
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
                self._apply_migrations(self._conn.execute, lambda: SQLiteTransaction(self, self._conn))
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
    def _transaction(self) -> Iterator["SQLiteTransaction"]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StorageError(f"database busy: {exc}", code="storage.busy") from None
            try:
                yield SQLiteTransaction(self, self._conn)
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


class SQLiteTransaction(SqlTransaction):
    """The shared queries on this SQLite connection (BEGIN IMMEDIATE already holds the write lock)."""
