"""What auditors read: decisions, the audit log and its verification, evidence crops (each read audited first)."""
from __future__ import annotations

from edge.audit import AuditEntry, AuditVerification
from edge.errors import NotFoundError
from edge.service.auth import Caller
from edge.store.base import DecisionRecord, EvidenceMeta, Store


class AuditRecords:
    def __init__(self, store: Store):
        self.store = store

    def decisions(self, limit: int = 100, card_ref: str | None = None) -> list[DecisionRecord]:
        with self.store.transaction() as tx:
            return tx.decisions(limit=limit, card_ref=card_ref)

    def audit_entries(self, after_seq: int = 0, limit: int = 100) -> list[AuditEntry]:
        with self.store.transaction() as tx:
            return tx.audit_entries(after_seq, limit)

    def verify(self) -> AuditVerification:
        return self.store.verify_audit()

    def evidence(self, decision_id: str | None = None, limit: int = 100) -> list[EvidenceMeta]:
        with self.store.transaction() as tx:
            return tx.list_evidence(decision_id, limit)

    def read_evidence(self, evidence_id: str, caller: Caller) -> tuple[EvidenceMeta, bytes]:
        """The crop and its metadata; the read is written to the audit log in the same transaction."""
        with self.store.transaction() as tx:
            found = tx.get_evidence(evidence_id)
            if found is None:
                raise NotFoundError("no such evidence item (it may have been purged)", code="input.unknown_evidence")
            meta, data = found
            tx.audit(caller.actor, "evidence.read", {"evidence_id": evidence_id, "decision_id": meta.decision_id})
        return meta, data
