"""What a terminal queues for the registry, written in the same transaction as the change it reports, so a
crash can lose neither the change nor the report (edge.fleet.link sends it, at least once; the registry
ingests each key once).

    outbox.decision(tx, record)          # verification
    outbox.customer(tx, customer, consents), outbox.templates(tx, customer_id, template_ids), ...

A terminal on its own has `NO_OUTBOX`: every method does nothing.
"""
from __future__ import annotations

import dataclasses
import hashlib

from edge.store.base import Consent, Customer, DecisionRecord, EvidenceMeta, LockoutState, ProbeMeta, Transaction


class Outbox:
    enabled = True

    def customer(self, tx: Transaction, customer: Customer, consents: list[Consent]) -> None:
        tx.outbox_put("customer", f"customer:{customer.id}", {
            "customer": dataclasses.asdict(customer), "consents": [dataclasses.asdict(c) for c in consents]})

    def templates(self, tx: Transaction, customer_id: str, template_ids: list[str]) -> None:
        digest = hashlib.sha256("|".join(sorted(template_ids)).encode()).hexdigest()[:16]
        tx.outbox_put("templates", f"templates:{customer_id}:{digest}",
                      {"customer_id": customer_id, "template_ids": sorted(template_ids)})

    def customer_status(self, tx: Transaction, customer_id: str, status: str, reason: str | None) -> None:
        tx.outbox_put("customer_status", f"status:{customer_id}",
                      {"customer_id": customer_id, "status": status, "reason": reason})

    def erasure(self, tx: Transaction, customer_id: str, reason: str, card_refs: list[str]) -> None:
        tx.outbox_put("erasure", f"erasure:{customer_id}",
                      {"customer_id": customer_id, "reason": reason, "card_refs": sorted(card_refs)})

    def lockout(self, tx: Transaction, state: LockoutState) -> None:
        tx.outbox_put("lockout", f"lockout:{state.card_ref}:{state.updated_at}", dataclasses.asdict(state))

    def decision(self, tx: Transaction, record: DecisionRecord) -> None:
        tx.outbox_put("decision", f"decision:{record.id}", dataclasses.asdict(record))

    def evidence(self, tx: Transaction, meta: EvidenceMeta) -> None:
        body = dataclasses.asdict(meta)
        body.pop("key_id", None)
        tx.outbox_put("evidence", f"evidence:{meta.id}", body)

    def probe(self, tx: Transaction, meta: ProbeMeta) -> None:
        # The id only: the embedding is read and sealed for the trip when sent (edge.fleet.link), as templates are.
        tx.outbox_put("probe", f"probe:{meta.id}", {"probe_id": meta.id})


class _NoOutbox(Outbox):
    enabled = False

    def customer(self, *a, **k) -> None:
        pass

    templates = customer_status = erasure = lockout = decision = evidence = probe = customer


NO_OUTBOX: Outbox = _NoOutbox()
