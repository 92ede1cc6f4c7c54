"""Evidence retention: delete face crops whose retention date has passed, and audit the purge."""
from __future__ import annotations

from edge.store import Store, iso, utcnow


def purge_expired_evidence(store: Store, actor: str = "system:retention") -> list[str]:
    with store.transaction() as tx:
        now = iso(utcnow())
        ids = tx.delete_expired_evidence(now)
        # The probe embeddings of the attempts go with their evidence, and so do the scans resting on them.
        probes, scans = tx.delete_expired_probes(now), tx.delete_expired_scans(now)
        if ids or probes or scans:
            tx.audit(actor, "evidence.purged", {"count": len(ids), "evidence_ids": ids[:64], "probes": probes,
                                                "scans": scans})
    return ids
