"""Verify the audit chain as a store holds it: from its raw rows (any backend), or straight from a terminal's
SQLite file (read-only; safe while the daemon runs)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

from edge.audit.chain import AuditEntry, AuditVerification, verify_entries
from edge.errors import StorageError


# The rows a store hands to `verify_rows`, in chain order.
AUDIT_ROWS_SQL = "SELECT seq, prev_hash, timestamp, actor, event, details, hash FROM audit ORDER BY seq"
AUDIT_HEAD_SQL = "SELECT seq, hash FROM audit_head WHERE id = 1"


def _entries(rows: Iterable[tuple]) -> Iterator[AuditEntry]:
    for seq, prev, ts, actor, event, details, digest in rows:
        try:
            parsed = json.loads(details)
        except (TypeError, json.JSONDecodeError):
            parsed = {"__unparseable__": str(details)[:64]}
        yield AuditEntry(int(seq), str(prev), str(ts), str(actor), str(event), parsed, str(digest))


def verify_rows(rows: Iterable[tuple], head_row: tuple | None) -> AuditVerification:
    """The chain's verdict from the raw audit rows (AUDIT_ROWS_SQL) and the recorded head (AUDIT_HEAD_SQL)."""
    head = (int(head_row[0]), str(head_row[1])) if head_row else (0, "0" * 64)
    return verify_entries(_entries(rows), head=head)


def verify_database(path: str | Path) -> AuditVerification:
    path = Path(path)
    if not path.exists():
        raise StorageError(f"no database at {path}", code="storage.not_found")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {path}: {exc}", code="storage.unavailable") from None
    try:
        conn.execute("PRAGMA busy_timeout=10000")
        return verify_rows(conn.execute(AUDIT_ROWS_SQL), conn.execute(AUDIT_HEAD_SQL).fetchone())
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path} is not a readable biogate database: {exc}", code="storage.corrupt") from None
    finally:
        conn.close()
