"""Evidence retention: delete face crops whose retention date has passed, and audit the purge."""
from __future__ import annotations

from edge.store import Store, iso, utcnow


def purge_expired_evidence(store: Store, actor: str = "system:retention") -> list[str]:
    with store.transaction() as tx:
        ids = tx.delete_expired_evidence(iso(utcnow()))
        if ids:
            tx.audit(actor, "evidence.purged", {"count": len(ids), "evidence_ids": ids[:64]})
    return ids
