"""The registry's work: terminals, ingest, card holders, the change feed, and the bank's central actions.

Every method is one unit of work on the PostgreSQL store; the registry holds no state of its own, so any
number of registry processes can serve the same database behind a load balancer.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any

from edge.audit.chain import GENESIS_HASH, AuditEntry
from edge.decision import lockout as lockout_rules
from edge.errors import AuthError, ConflictError, ForbiddenError, InputError, NotFoundError, PolicyError
from edge.fleet.protocol import IngestRequest, IngestResult
from edge.fleet.transport import DOWN, UP, TerminalCredentials, new_credentials, open_probe, open_template, seal_template
from edge.fleet.transport import token_hash, token_matches
from edge.biometrics.face.template import decode_face_template
from edge.search.service import SearchService
from edge.service.auth import Caller
from edge.store.base import (Change, Consent, Customer, DecisionRecord, EvidenceMeta, LockoutState, Store,
                             TerminalRecord, Transaction, iso, utcnow)

log = logging.getLogger("biogate.registry")


class TerminalRevoked(AuthError):
    code = "auth.terminal_revoked"


class RegistryService:
    def __init__(self, store: Store, *, search: SearchService | None = None, duplicate_llr: float = 6.9):
        self.store = store
        self.search = search                    # the bank's 1:N face index (edge.search), None: no duplicate search
        self.duplicate_llr = duplicate_llr
        self._seen: dict[str, float] = {}          # terminal -> last time last_seen_at was written
        self._seen_lock = threading.Lock()

    # -- terminals ------------------------------------------------------------------------------------
    def add_terminal(self, terminal_id: str, actor: str) -> TerminalCredentials:
        creds = new_credentials(terminal_id)
        with self.store.transaction() as tx:
            if tx.get_terminal(terminal_id) is not None:
                raise ConflictError(f"terminal {terminal_id} is already registered", code="input.terminal_exists")
            tx.add_terminal(TerminalRecord(terminal_id, "active", iso(utcnow())), token_hash(creds.token),
                            creds.transport_key)
            tx.audit(actor, "terminal.registered", {"terminal_id": terminal_id})
        return creds

    def revoke_terminal(self, terminal_id: str, actor: str) -> TerminalRecord:
        with self.store.transaction() as tx:
            found = tx.get_terminal(terminal_id)
            if found is None:
                raise NotFoundError("no such terminal", code="input.unknown_terminal")
            record = dataclasses.replace(found[0], status="revoked", revoked_at=iso(utcnow()))
            tx.set_terminal_status(terminal_id, record.status, record.revoked_at)
            tx.audit(actor, "terminal.revoked", {"terminal_id": terminal_id})
        return record

    def terminals(self) -> list[TerminalRecord]:
        with self.store.transaction() as tx:
            return tx.list_terminals()

    def authenticate(self, terminal_id: str | None, token: str | None) -> Caller:
        """The terminal a request comes from, checked against the database on every request (a revoked
        terminal is refused at once, by every registry process)."""
        if not terminal_id or not token:
            raise AuthError("a terminal authenticates with X-Terminal-Id and its bearer token",
                            code="auth.missing_key")
        with self.store.transaction() as tx:
            found = tx.get_terminal(terminal_id)
        if found is None or not token_matches(token, found[1]):
            raise AuthError("unknown terminal or wrong token", code="auth.invalid_key")
        if found[0].status != "active":
            raise TerminalRevoked(f"terminal {terminal_id} was revoked")
        self._touch(found[0])
        return Caller("terminal", terminal_id)

    def _touch(self, record: TerminalRecord) -> None:
        now = time.monotonic()
        with self._seen_lock:
            if now - self._seen.get(record.id, 0.0) < 10.0:
                return
            self._seen[record.id] = now
        with self.store.transaction() as tx:
            tx.set_terminal_seen(record.id, iso(utcnow()))

    # -- ingest ---------------------------------------------------------------------------------------
    def ingest(self, terminal_id: str, request: IngestRequest) -> IngestResult:
        """One batch from a terminal, in one transaction: its audit entries extend the chain the registry holds
        (or nothing is taken), each item is applied once, the anchor moves to the new head."""
        try:
            with self.store.transaction() as tx:
                # The terminal's row stays locked until COMMIT: a retry that arrives while the first attempt is
                # still running waits for it, so the anchor only ever moves forward along one chain.
                record, _ = tx.get_terminal(terminal_id, for_update=True) or (None, None)
                if record is None or record.status != "active":
                    raise TerminalRevoked(f"terminal {terminal_id} is not active")
                entries = [AuditEntry(**e.model_dump()) for e in request.audit]
                head_seq, head_hash = self._extend_chain(tx, record, entries)
                new = 0
                for item in request.items:
                    if tx.mark_ingested(terminal_id, item.key):
                        self._apply_item(tx, terminal_id, item.kind, item.body)
                        new += 1
                if entries:
                    tx.set_terminal_anchor(terminal_id, head_seq, head_hash, iso(utcnow()))
                last_change = tx.last_change_seq()
        except ConflictError as exc:
            if exc.code == "fleet.audit_chain_mismatch":
                with self.store.transaction() as tx:
                    tx.audit("system:registry", "fleet.audit_chain_mismatch",
                             {"terminal_id": terminal_id, "reason": exc.message[:200]})
                log.error("audit chain mismatch: %s", exc.message, extra={"terminal_id": terminal_id})
            raise
        return IngestResult(acked=[i.key for i in request.items], new=new, anchor_seq=head_seq,
                            anchor_hash=head_hash, last_change_seq=last_change)

    @staticmethod
    def _extend_chain(tx: Transaction, record: TerminalRecord, entries: list[AuditEntry]) -> tuple[int, str]:
        """Check that `entries` continue the terminal's chain from the anchored head; store the new ones."""
        def mismatch(why: str) -> ConflictError:
            return ConflictError(f"terminal {record.id}: {why}", code="fleet.audit_chain_mismatch")

        seq, prev = record.anchor_seq, record.anchor_hash
        fresh = []
        for e in sorted(entries, key=lambda e: e.seq):
            if e.seq <= record.anchor_seq:      # sent again after a lost acknowledgement: must be what we hold
                held = tx.terminal_audit_entries(record.id, e.seq - 1, 1)
                if not held or held[0].hash != e.hash:
                    raise mismatch(f"entry {e.seq} differs from the one the registry holds (chain rewritten)")
                continue
            if e.seq != seq + 1 or e.prev_hash != prev:
                raise mismatch(f"entry {e.seq} does not continue the anchored head at seq {seq}")
            # The entry's MAC is under the terminal's own audit key, which the registry does not hold: it keeps
            # the links, and the anchor it holds is what the terminal's `audit verify` checks its chain against.
            fresh.append(e)
            seq, prev = e.seq, e.hash
        tx.add_terminal_audit(record.id, fresh)
        return seq, prev

    def _apply_item(self, tx: Transaction, terminal_id: str, kind: str, body: dict[str, Any]) -> None:
        origin = f"terminal:{terminal_id}"
        if kind == "customer":
            self._upsert_customer(tx, body["customer"], body.get("consents", []), origin)
        elif kind == "templates":
            key = tx.terminal_transport_key(terminal_id)
            have = {m.id for m in tx.template_metas(body["customer_id"])}
            customer = tx.get_customer(body["customer_id"])
            if customer is None or customer.status == "erased":
                return   # erased (or never known) here: the templates are not kept
            added, faces = 0, []
            for wire in body["templates"]:
                meta, payload = open_template(key, UP, terminal_id, wire)
                try:
                    if meta.customer_id == customer.id and meta.id not in have:
                        tx.add_template(meta, bytes(payload))
                        added += 1
                        if meta.modality == "face":
                            faces.append(decode_face_template(payload))
                finally:
                    payload[:] = bytes(len(payload))
            if added:
                tx.add_change("customer_updated", customer.id, {"customer_id": customer.id}, origin)
            self._bank_wide_duplicates(tx, customer.id, faces, origin)
        elif kind == "customer_status":
            self._set_status(tx, body["customer_id"], body["status"], body.get("reason"), origin)
        elif kind == "erasure":
            self._erase(tx, body["customer_id"], body.get("reason", "customer_request"), origin)
            self._forget_in_search(body["customer_id"])
        elif kind == "lockout":
            self._merge_lockout(tx, LockoutState(**body), origin)
        elif kind == "decision":
            d = DecisionRecord(**body)
            if d.terminal_id != terminal_id:
                raise ForbiddenError(f"a decision of {d.terminal_id} sent by {terminal_id}",
                                     code="auth.wrong_terminal")
            tx.add_decision_once(d)
        elif kind == "evidence":
            tx.add_remote_evidence(terminal_id, EvidenceMeta(**body))
        elif kind == "probe" and body.get("probe") is not None:   # an attempt's embedding, for the network scan
            meta, embedding = open_probe(tx.terminal_transport_key(terminal_id), UP, terminal_id, body["probe"])
            try:
                if meta.terminal_id != terminal_id:
                    raise ForbiddenError(f"a probe of {meta.terminal_id} sent by {terminal_id}",
                                         code="auth.wrong_terminal")
                held = tx.get_customer(meta.customer_id) if meta.customer_id else None
                if held is None or held.status != "erased":   # never keep a probe on an erased holder's card
                    tx.add_probe(meta, bytes(embedding))
            finally:
                embedding[:] = bytes(len(embedding))

    def _bank_wide_duplicates(self, tx: Transaction, customer_id: str, faces: list, origin: str) -> None:
        """A new enrolment searched against every enrolled customer of the bank (a terminal only sees its own):
        a match at `service.duplicate_llr` puts both customers under review, fleet-wide through the feed."""
        if self.search is None or not faces:
            return
        try:
            found = self.search.duplicates(customer_id, faces, self.duplicate_llr)
        finally:
            for f in faces:
                f.fill(0)
        if not found:
            return
        ids = sorted(found)
        self._set_status(tx, customer_id, "review", f"possible duplicate of {', '.join(ids[:5])}", origin)
        for other in ids:
            self._set_status(tx, other, "review", f"possible duplicate of {customer_id}", origin)
        tx.audit("system:registry", "enrolment.duplicate_suspected", {
            "customer_id": customer_id, "other_customers": ids[:20], "best_llr": round(max(found.values()), 2),
            "origin": origin})

    def _upsert_customer(self, tx: Transaction, c: dict, consents: list[dict], origin: str) -> None:
        held = tx.get_customer(c["id"])
        if held is not None and held.status == "erased":
            return   # an erasure is final
        if held is None:
            tx.add_customer(Customer(c["id"], c["display_name"], c["created_at"], c.get("status", "active"),
                                     c.get("review_reason"), []))
        for ref in c.get("card_refs", []):
            owner = tx.customer_for_card(ref)
            if owner is None:
                tx.add_card(c["id"], ref)
            elif owner.id != c["id"]:
                tx.audit("system:registry", "fleet.card_conflict", {"card_ref": ref, "customer_id": c["id"],
                                                                    "held_by": owner.id, "origin": origin})
        known = {k.id for k in tx.consents(c["id"])}
        for k in consents:
            if k["id"] not in known:
                tx.add_consent(Consent(**k))
        if held is not None:
            tx.add_change("customer_updated", c["id"], {"customer_id": c["id"]}, origin)

    @staticmethod
    def _set_status(tx: Transaction, customer_id: str, status: str, reason: str | None, origin: str) -> None:
        held = tx.get_customer(customer_id)
        if held is None or held.status == "erased":
            return
        tx.set_customer_status(customer_id, status, reason)
        tx.add_change("customer_status", customer_id, {"customer_id": customer_id, "status": status,
                                                       "reason": reason}, origin)

    @staticmethod
    def _erase(tx: Transaction, customer_id: str, reason: str, origin: str) -> dict[str, int]:
        held = tx.get_customer(customer_id)
        if held is None:
            tx.add_customer(Customer(customer_id, "", iso(utcnow()), "erased"))   # erased before we heard of it
            held = tx.get_customer(customer_id)
        cards = list(held.card_refs)
        tx.withdraw_consents(customer_id, iso(utcnow()))
        counts = tx.erase_customer(customer_id)
        tx.add_change("erasure", customer_id, {"customer_id": customer_id, "card_refs": cards}, origin)
        tx.audit(origin if origin.startswith("registry:") else "system:registry", "customer.erased",
                 {"customer_id": customer_id, "reason": reason, "origin": origin,
                  **{f"{k}_removed": v for k, v in counts.items()}})
        return counts

    @staticmethod
    def _merge_lockout(tx: Transaction, state: LockoutState, origin: str) -> None:
        held = tx.get_lockout(state.card_ref)
        if held is not None and (held.updated_at or "") > (state.updated_at or ""):
            return   # the registry already holds a newer state of this card
        tx.put_lockout(state)
        tx.add_change("lockout", state.card_ref, {"state": dataclasses.asdict(state)}, origin)

    # -- card holders and the feed --------------------------------------------------------------------
    def card_holder(self, terminal_id: str, card_ref: str) -> dict:
        """The card holder's record and templates sealed for `terminal_id`; 404 for an unknown card."""
        with self.store.transaction() as tx:
            customer = tx.customer_for_card(card_ref)
            if customer is None or customer.status == "erased":
                raise NotFoundError("no customer holds this card", code="input.unknown_card")
            key = tx.terminal_transport_key(terminal_id)
            templates = tx.templates(customer.id)
            change_seq = tx.last_change_seq()
        try:
            sealed = [seal_template(key, DOWN, terminal_id, t, bytes(t.payload)) for t in templates]
        finally:
            for t in templates:
                t.zeroise()
        return {"customer": dataclasses.asdict(customer), "templates": sealed, "change_seq": change_seq}

    def changes(self, after: int, limit: int = 500) -> tuple[list[Change], int]:
        with self.store.transaction() as tx:
            return tx.changes(after, limit), tx.last_change_seq()

    def anchor(self, terminal_id: str) -> tuple[int, str]:
        with self.store.transaction() as tx:
            found = tx.get_terminal(terminal_id)
        if found is None:
            raise NotFoundError("no such terminal", code="input.unknown_terminal")
        return found[0].anchor_seq, found[0].anchor_hash

    # -- the bank's central actions -------------------------------------------------------------------
    def erase_customer(self, customer_id: str, caller: Caller, reason: str = "customer_request") -> dict[str, int]:
        with self.store.transaction() as tx:
            if tx.get_customer(customer_id) is None:
                raise NotFoundError("no such customer", code="input.unknown_customer")
            counts = self._erase(tx, customer_id, reason, f"registry:{caller.actor}")
        self._forget_in_search(customer_id)
        return counts

    def _forget_in_search(self, customer_id: str) -> None:
        if self.search is not None:   # at once here; the other registry processes drop it at their next sync
            self.search.forget(customer_id)

    def set_review(self, customer_id: str, under_review: bool, reason: str, caller: Caller) -> None:
        with self.store.transaction() as tx:
            if tx.get_customer(customer_id) is None:
                raise NotFoundError("no such customer", code="input.unknown_customer")
            self._set_status(tx, customer_id, "review" if under_review else "active", reason or None,
                             f"registry:{caller.actor}")
            tx.audit(caller.actor, "customer.review_set", {"customer_id": customer_id, "review": under_review})

    def revoke_card(self, card_ref: str, caller: Caller) -> None:
        with self.store.transaction() as tx:
            owner = tx.remove_card(card_ref)
            if owner is None:
                raise NotFoundError("no such card", code="input.unknown_card")
            tx.add_change("card_revoked", card_ref, {"card_ref": card_ref, "customer_id": owner},
                          f"registry:{caller.actor}")
            tx.audit(caller.actor, "card.revoked", {"card_ref": card_ref, "customer_id": owner})

    def lock_card(self, card_ref: str, caller: Caller, *, reset: bool, identity_checked: bool = False) -> LockoutState:
        """Lock a card everywhere (disable biometrics for it), or reset its lockout after an identity check."""
        if reset and not identity_checked:
            raise PolicyError("a lockout is reset only after an identity document check",
                              code="policy.id_check_required")
        now = utcnow()
        with self.store.transaction() as tx:
            held = tx.get_lockout(card_ref)
            state = (lockout_rules.reset(held, card_ref, now) if reset else
                     dataclasses.replace(held or lockout_rules.fresh(card_ref), disabled=True, updated_at=iso(now)))
            tx.put_lockout(state)
            tx.add_change("lockout", card_ref, {"state": dataclasses.asdict(state)}, f"registry:{caller.actor}")
            tx.audit(caller.actor, "lockout.reset" if reset else "lockout.locked", {"card_ref": card_ref})
        return state

    def decisions(self, limit: int, card_ref: str | None) -> list[DecisionRecord]:
        with self.store.transaction() as tx:
            return tx.decisions(limit=limit, card_ref=card_ref)

    def stats(self) -> dict:
        with self.store.transaction() as tx:
            terminals = tx.list_terminals()
            return {"decisions": tx.count_decisions(), "last_change_seq": tx.last_change_seq(),
                    "terminals": {t.id: {"status": t.status, "decisions": tx.count_decisions(t.id),
                                         "anchor_seq": t.anchor_seq, "last_seen_at": t.last_seen_at}
                                  for t in terminals}}

    def verify(self) -> dict:
        """The registry's own audit chain, and every terminal's chain as the registry holds it."""
        from edge.audit.chain import verify_links

        out = {"registry": self.store.verify_audit().to_dict(), "terminals": {}}
        for t in self.terminals():
            with self.store.transaction() as tx:
                entries, after = [], 0
                while True:
                    batch = tx.terminal_audit_entries(t.id, after, 5000)
                    if not batch:
                        break
                    entries += batch
                    after = batch[-1].seq
            head = (t.anchor_seq, t.anchor_hash if t.anchor_seq else GENESIS_HASH)
            out["terminals"][t.id] = verify_links(entries, head=head).to_dict()
        return out


def check_terminal_id(terminal_id: str) -> str:
    if not (1 <= len(terminal_id) <= 64 and all(ch.isascii() and (ch.isalnum() or ch in "-_.") for ch in terminal_id)):
        raise InputError("a terminal id is 1-64 ASCII letters, digits, - _ .", code="input.terminal_id")
    return terminal_id
