"""The hash-chained, append-only audit log.

Each entry commits to the one before it: hash = HMAC-SHA256(audit key, canonical header + the stored
details bytes), the key kept outside the database (secrets.json); the recorded head has its own MAC. Entries are written by the store in the same
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
    head_mac,
    make_entry,
    parse_details,
    verify_links,
    verify_rows,
)
from edge.audit.verify import verify_database

__all__ = [
    "GENESIS_HASH", "AuditEntry", "AuditVerification", "canonical_json", "check_details", "entry_hash",
    "head_mac", "make_entry", "parse_details", "verify_links", "verify_rows", "verify_database",
]
