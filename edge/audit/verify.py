"""Verify the audit chain as a store holds it: straight from a terminal's SQLite file (read-only; safe while
the daemon runs), with the audit key from the terminal's secrets (edge.audit.chain.verify_rows)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from edge.audit.chain import AuditVerification, verify_rows
from edge.errors import StorageError

# The rows a store hands to `verify_rows`, in chain order, and the recorded head.
AUDIT_ROWS_SQL = "SELECT seq, prev_hash, timestamp, actor, event, details, hash, keyed FROM audit ORDER BY seq"
AUDIT_HEAD_SQL = "SELECT seq, hash, mac FROM audit_head WHERE id = 1"


def verify_database(path: str | Path, key: bytes) -> AuditVerification:
    path = Path(path)
    if not path.exists():
        raise StorageError(f"no database at {path}", code="storage.not_found")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {path}: {exc}", code="storage.unavailable") from None
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        return verify_rows(conn.execute(AUDIT_ROWS_SQL), conn.execute(AUDIT_HEAD_SQL).fetchone(), key)
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path} is not a readable biogate database: {exc}", code="storage.corrupt") from None
    finally:
        conn.close()
