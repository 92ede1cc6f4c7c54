"""The hash-chained, append-only audit log.

Each entry commits to the one before it: hash = sha256(canonical JSON of
(seq, prev_hash, timestamp, actor, event, details)). Entries are written by the store in the same
transaction as the change they record (`edge.store.Transaction.audit`); `verify_entries` and
`verify_database` find the first entry that was edited, deleted or moved.

May import: edge.errors only.
"""
from edge.audit.chain import (
    GENESIS_HASH,
    AuditEntry,
    AuditVerification,
    canonical_json,
    check_details,
    entry_hash,
    make_entry,
    verify_entries,
)
from edge.audit.verify import verify_database

__all__ = [
    "GENESIS_HASH", "AuditEntry", "AuditVerification", "canonical_json", "check_details", "entry_hash",
    "make_entry", "verify_entries", "verify_database",
]
