"""Data key rotation that is safe while the daemon runs (issue 14, finding 3).

    result = rotate_data_key(store, secrets_path, actor="admin:cli")

1. a fresh key is written to the key file as the active one; every process that seals re-reads the file
   before sealing when it changed (edge.store.secrets.KeyFileWatcher), inside its write transaction;
2. every readable blob is re-sealed under it in one transaction (an unreadable one is reported and
   quarantined, and keeps its key: edge.store.sql);
3. under the write lock (a transaction: on SQLite no other writer, hence no other sealing, can run), the
   keys that seal nothing any more are removed from the key file; a key still in use is kept and named.
A blob sealed by a writer that had not yet seen step 1 was committed before step 2 could start (writers are
serialised), so step 2 re-seals it; a writer after step 1 seals with the new key. Nothing sealed is ever left
without its key. (The registry's PostgreSQL store has no such global write lock: rotate it with its
processes stopped.)
"""
from __future__ import annotations

from pathlib import Path

from edge.store.secrets import add_data_key, retire_data_keys
from edge.store.sql import SqlStore


def rotate_data_key(store: SqlStore, secrets_path: Path, actor: str) -> dict:
    new_id = add_data_key(secrets_path)                         # 1
    with store.transaction() as tx:                             # 2
        counts = tx.reencrypt_all()
        tx.audit(actor, "keys.rotated", {"new_key_id": new_id, "template_blobs": counts["templates"],
                                         "evidence_blobs": counts["evidence"], "skipped_blobs": counts["skipped"]})
    with store.transaction() as tx:                             # 3
        usage = tx.key_usage()
        kept = {k: n for k, n in usage.items() if k != new_id}
        unused = [k for k in store.keyring.key_ids if k != new_id and usage.get(k, 0) == 0]
        dropped = retire_data_keys(secrets_path, unused)
        tx.audit(actor, "keys.retired", {"retired_key_ids": dropped, "kept_key_ids": sorted(kept)})
    return {"active_key_id": new_id, "reencrypted": counts, "retired_key_ids": dropped, "kept_key_ids": kept}
