"""SearchService: the face index kept in step with the store, duplicate search, and the investigator's tools.

    search = SearchService(store, calibration, cfg.search, retention_days=cfg.storage.evidence_retention_days)
    search.sync()                                      # at start: built from the sealed face templates
    search.duplicates(customer_id, embeddings, min_llr)        # enrolment (edge.service.enrolment)
    search.scan(role, actor, Investigation.of(purpose, case_ref))   # investigator only; audited; stored sealed

The index follows the store, never the other way round: `sync()` compares the face templates of customers
not erased (ids only, no payload opened) with what the index holds, adds the new ones and drops the rest;
every search syncs first, so an erased customer can never come out of a search, and the erasure paths call
`forget()` to clear them at once. The same class serves a terminal (SQLite) and the registry (PostgreSQL).
"""
from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import os
import threading
from typing import Callable

import numpy as np

from edge.biometrics.face.template import decode_face_template
from edge.decision.calibration import Calibration
from edge.errors import ConflictError, ForbiddenError, InputError, NotFoundError
from edge.search.config import SearchConfig
from edge.search.index import FaceIndex, TemplateIndex
from edge.search.networks import Analysis, Attempt, Finding, Network, analyse
from edge.search.oversight import (AUDITOR, INVESTIGATOR, Investigation, Pseudonyms, require_person,
                                   require_role)
from edge.search.thresholds import LinkThresholds, link_thresholds
from edge.store.base import RevealRequest, ScanMeta, Store, iso, new_id, parse_iso, utcnow

# fp16 codes move a distance by well under a thousandth (edge.search.index): the shortlist is taken this much
# wider than the threshold, and every candidate is then scored exactly on its decrypted template.
SHORTLIST_MARGIN = 0.03


class SearchService:
    def __init__(self, store: Store, calibration: Calibration, cfg: SearchConfig, *, retention_days: int = 180,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.store = store
        self.calibration = calibration
        self.cfg = cfg
        self.retention_days = retention_days
        self.clock = clock
        self.thresholds: LinkThresholds = link_thresholds(calibration, cfg.link_target_rate)
        self.index = TemplateIndex()
        self._lock = threading.Lock()

    # -- the index ------------------------------------------------------------------------------------
    def sync(self) -> dict:
        """Bring the index in step with the store's face templates; counts of what was added and removed."""
        with self._lock:
            with self.store.transaction() as tx:
                owners = dict(tx.face_template_owners())
            held = self.index.template_ids()
            gone = held - owners.keys()
            new = sorted(owners.keys() - held)
            if len(held) == 0 and len(new) >= self.cfg.ivf_from:
                return self._build(owners)
            removed = self.index.remove_templates(gone)
            added = self._add(new)
            return {"templates": len(self.index), "added": added, "removed": removed, "kind": self.index.index.kind}

    def _add(self, template_ids: list[str]) -> int:
        added = 0
        for start in range(0, len(template_ids), 2000):
            with self.store.transaction() as tx:
                stored = tx.face_templates_by_id(template_ids[start:start + 2000])
            for t in stored:
                try:
                    self.index.add(t.id, t.customer_id, decode_face_template(t.payload))
                    added += 1
                finally:
                    t.zeroise()
        return added

    def _build(self, owners: dict[str, str]) -> dict:
        """A fresh index for a large gallery: IVF lists learnt from the gallery itself."""
        ids, vecs, keys = [], [], []
        order = sorted(owners)
        for start in range(0, len(order), 2000):
            with self.store.transaction() as tx:
                stored = tx.face_templates_by_id(order[start:start + 2000])
            for t in stored:
                try:
                    vecs.append(decode_face_template(t.payload))
                    keys.append((t.id, t.customer_id))
                finally:
                    t.zeroise()
        matrix = np.stack(vecs).astype(np.float32)
        labels = np.arange(1, len(keys) + 1, dtype=np.int64)
        index = TemplateIndex(FaceIndex.build(labels, matrix, kind="ivf", nprobe=self.cfg.nprobe))
        index.adopt(labels, keys)
        matrix.fill(0)
        self.index = index
        return {"templates": len(index), "added": len(keys), "removed": 0, "kind": "ivf"}

    def rebuild(self, actor: str) -> dict:
        with self._lock:
            self.index = TemplateIndex()
        counts = self.sync()
        with self.store.transaction() as tx:
            tx.audit(actor, "search.index_rebuilt", counts)
        return counts

    def forget(self, customer_id: str) -> int:
        """Clear a customer from the index at once (erasure, consent withdrawal, review rejected)."""
        return self.index.remove_customer(customer_id)

    # -- enrolment: duplicate identities ---------------------------------------------------------------
    def duplicates(self, customer_id: str, embeddings: list[np.ndarray], min_llr: float) -> dict[str, float]:
        """Other customers whose face templates reach `min_llr` against any of `embeddings`: id -> best LLR.

        The index gives the shortlist; each candidate is scored on its decrypted template with the calibrated
        face LLR, exactly as the linear scan did."""
        self.sync()
        face = self.calibration.modality("face")
        radius = -face.score_for_llr(min_llr) + SHORTLIST_MARGIN
        candidates = {h.template_id for e in embeddings
                      for h in self.index.search(e, k=32, max_distance=radius, exclude_customer=customer_id)}
        if not candidates:
            return {}
        with self.store.transaction() as tx:
            stored = tx.face_templates_by_id(sorted(candidates))
        found: dict[str, float] = {}
        try:
            for t in stored:
                ref = decode_face_template(t.payload).astype(np.float64)
                for e in embeddings:
                    llr = face.llr(-float(np.linalg.norm(ref - np.asarray(e, np.float64))))
                    if llr >= min_llr:
                        found[t.customer_id] = max(found.get(t.customer_id, -np.inf), llr)
                ref.fill(0)
        finally:
            for t in stored:
                t.zeroise()
        return found

    # -- the investigator: network scan -----------------------------------------------------------------
    def scan(self, role: str, actor: str, why: Investigation, window_days: int | None = None) -> dict:
        require_role(role, INVESTIGATOR, "run a network scan")
        require_person(actor)
        self.sync()
        now = self.clock()
        days = window_days or self.cfg.window_days
        attempts, retain = self._attempts(iso(now - dt.timedelta(days=days)))
        analysis = analyse(attempts, self.thresholds, min_cards=self.cfg.min_cards,
                           min_faces_per_card=self.cfg.min_faces_per_card)
        for a in attempts:
            a.embedding.fill(0)
        identified = self._identify(analysis, attempts)
        used = {i for n in analysis.networks for i in n.attempts}
        retain_until = min([retain[i] for i in used], default=iso(now + dt.timedelta(days=self.retention_days)))
        body = {"key": os.urandom(32).hex(), "window_days": days, "attempts": analysis.attempts,
                "thresholds": self.thresholds.to_dict(), "identified": identified,
                "networks": [dataclasses.asdict(n) for n in analysis.networks],
                "decisions": {a.id: a.decision_id for a in attempts if a.id in used}}
        subjects = sorted({h for n in analysis.networks for h in n.holders} | set(identified.values()))
        meta = ScanMeta(new_id("scn"), actor, why.purpose, why.case_ref, iso(now), retain_until)
        with self.store.transaction() as tx:
            tx.add_scan(meta, json.dumps(body).encode(), subjects)
            tx.audit(actor, "search.scan", {**why.audit_details(), "scan_id": meta.id, "window_days": days,
                                            "attempts": analysis.attempts, "networks": len(analysis.networks)})
        return self._view(meta, body)

    def _attempts(self, since: str) -> tuple[list[Attempt], dict[str, str]]:
        with self.store.transaction() as tx:
            rows = tx.probes(since)
        attempts, retain = [], {}
        enrolled: dict[str, np.ndarray] = {}
        try:
            for meta, blob in rows:
                probe = decode_face_template(blob)
                attempts.append(_ScanAttempt(meta.id, probe, meta.card_ref, meta.customer_id, meta.terminal_id,
                                             meta.created_at, meta.outcome, self._matches_holder(probe, meta.customer_id,
                                                                                                 enrolled),
                                             meta.decision_id))
                retain[meta.id] = meta.retain_until
        finally:
            for refs in enrolled.values():
                refs.fill(0)
        return attempts, retain

    def _matches_holder(self, probe: np.ndarray, holder: str | None, enrolled: dict[str, np.ndarray]) -> bool:
        """Whether the face is the card holder's own (any enrolled face template within the link distance)."""
        if not holder:
            return False
        if holder not in enrolled:
            with self.store.transaction() as tx:
                stored = tx.templates(holder, "face")
            try:
                enrolled[holder] = (np.stack([decode_face_template(t.payload) for t in stored]).astype(np.float64)
                                    if stored else np.zeros((0, probe.size)))
            finally:
                for t in stored:
                    t.zeroise()
        refs = enrolled[holder]
        return bool(len(refs)) and float(np.linalg.norm(refs - probe, axis=1).min()) <= self.thresholds.same_distance

    def _identify(self, analysis: Analysis, attempts: list[Attempt]) -> dict[str, str]:
        """People of a network whose face is an enrolled customer's: person -> customer id (exactly re-scored)."""
        by_id = {a.id: a for a in attempts}
        out = {}
        for n in analysis.networks:
            for person in n.people:
                probes = [by_id[i].embedding for i in analysis.people.get(person, []) if i in by_id]
                found = self.duplicates("", probes, self.thresholds.same_llr) if probes else {}
                if found:
                    out[person] = max(found, key=found.get)
        return out

    def view_scan(self, role: str, actor: str, scan_id: str, why: Investigation) -> dict:
        require_role(role, INVESTIGATOR, "view a network scan")
        require_person(actor)
        meta, body = self._stored_scan(scan_id)
        with self.store.transaction() as tx:
            tx.audit(actor, "search.result_viewed", {**why.audit_details(), "scan_id": scan_id,
                                                     "scan_case_ref": meta.case_ref})
        return self._view(meta, body)

    def _stored_scan(self, scan_id: str) -> tuple[ScanMeta, dict]:
        with self.store.transaction() as tx:
            found = tx.get_scan(scan_id)
        if found is None:
            raise NotFoundError("no such scan (it may have been purged, or named an erased customer)",
                                code="search.unknown_scan")
        return found[0], json.loads(found[1])

    def _view(self, meta: ScanMeta, body: dict) -> dict:
        """The scan as an investigator sees it: pseudonyms only."""
        names = Pseudonyms(bytes.fromhex(body["key"]))
        name = names.of
        identified = body["identified"]
        networks = []
        for raw in body["networks"]:
            n = _network(raw)
            networks.append({
                "id": n.id, "score": n.score, "explanation": n.explain(name),
                "people": [{"pseudonym": name("P", p),
                            "enrolled_as": name("H", identified[p]) if p in identified else None} for p in n.people],
                "cards": [name("K", c) for c in n.cards], "holders": [name("H", h) for h in n.holders],
                "terminals": n.terminals, "first_at": n.first_at, "last_at": n.last_at,
                "attempts": [name("A", a) for a in n.attempts],
                "findings": [{"kind": f.kind, "explanation": f.explain(name),
                              "people": [name("P", p) for p in f.people], "cards": [name("K", c) for c in f.cards],
                              "holders": [name("H", h) for h in f.holders],
                              "attempts": [name("A", a) for a in f.attempts]} for f in n.findings]})
        return {"scan_id": meta.id, "case_ref": meta.case_ref, "purpose": meta.purpose, "created_at": meta.created_at,
                "retain_until": meta.retain_until, "window_days": body["window_days"], "attempts": body["attempts"],
                "thresholds": body["thresholds"], "networks": networks}

    # -- the investigator: 1:N face search from an attempt of a scan -----------------------------------------
    def search_attempt(self, role: str, actor: str, scan_id: str, attempt: str, why: Investigation,
                       k: int = 10) -> dict:
        require_role(role, INVESTIGATOR, "run a 1:N search")
        require_person(actor)
        meta, body = self._stored_scan(scan_id)
        name = Pseudonyms(bytes.fromhex(body["key"])).of
        probe_id = next((a for a in body["decisions"] if name("A", a) == attempt), None)
        if probe_id is None:
            raise NotFoundError("no such attempt in this scan", code="search.unknown_attempt")
        with self.store.transaction() as tx:
            found = tx.get_probe(probe_id)
        if found is None:
            raise NotFoundError("the attempt's probe was purged", code="search.unknown_attempt")
        probe = decode_face_template(found[1])
        try:
            self.sync()
            face = self.calibration.modality("face")
            radius = self.thresholds.different_distance
            hits = self.index.search(probe, k=max(1, min(k, 50)) * 4, max_distance=radius + SHORTLIST_MARGIN)
            with self.store.transaction() as tx:     # the shortlist re-scored exactly on the decrypted templates
                stored = tx.face_templates_by_id(sorted({h.template_id for h in hits}))
            best: dict[str, float] = {}
            try:
                for t in stored:
                    ref = decode_face_template(t.payload).astype(np.float64)
                    llr = face.llr(-float(np.linalg.norm(ref - probe.astype(np.float64))))
                    best[t.customer_id] = max(best.get(t.customer_id, -np.inf), llr)
                    ref.fill(0)
            finally:
                for t in stored:
                    t.zeroise()
        finally:
            probe.fill(0)
        ranked = sorted(best.items(), key=lambda kv: -kv[1])[:k]
        with self.store.transaction() as tx:
            tx.add_scan_subjects(scan_id, [c for c, _ in ranked])
            tx.audit(actor, "search.face_search", {**why.audit_details(), "scan_id": scan_id, "attempt": attempt,
                                                   "candidates": len(ranked)})
        return {"scan_id": scan_id, "attempt": attempt, "candidates": [
            {"holder": name("H", c), "llr": round(llr, 2), "linked": llr >= self.thresholds.same_llr}
            for c, llr in ranked]}

    # -- the two-person reveal ------------------------------------------------------------------------------
    def request_reveal(self, role: str, actor: str, scan_id: str, pseudonym: str, what: str,
                       why: Investigation) -> dict:
        require_role(role, INVESTIGATOR, "ask to reveal an identity")
        require_person(actor)
        if what not in ("identity", "evidence"):
            raise InputError("what is identity or evidence", code="search.reveal_kind")
        if (what == "identity") != pseudonym.startswith("H-") or (what == "evidence") != pseudonym.startswith("A-"):
            raise InputError("an identity is revealed for a holder (H-), evidence for an attempt (A-)",
                             code="search.reveal_kind")
        self._resolve(scan_id, pseudonym)
        request = RevealRequest(new_id("rvl"), scan_id, pseudonym, what, why.purpose, why.case_ref, actor,
                                iso(self.clock()))
        with self.store.transaction() as tx:
            tx.add_reveal(request)
            tx.audit(actor, "search.reveal_requested", {**why.audit_details(), "reveal_id": request.id,
                                                        "scan_id": scan_id, "pseudonym": pseudonym, "what": what})
        return {"reveal_id": request.id, "status": "awaiting_auditor"}

    def approve_reveal(self, role: str, actor: str, reveal_id: str) -> dict:
        require_role(role, AUDITOR, "approve a reveal")
        approver = require_person(actor)
        with self.store.transaction() as tx:
            request = tx.get_reveal(reveal_id)
            if request is None:
                raise NotFoundError("no such reveal request", code="search.unknown_reveal")
            if require_person(request.requested_by) == approver:
                raise ForbiddenError("a reveal is approved by another person than the one who asked",
                                     code="search.same_person")
            if not tx.approve_reveal(reveal_id, actor, iso(self.clock())):
                raise ConflictError("this reveal was approved already", code="search.reveal_approved")
            tx.audit(actor, "search.reveal_approved", {"reveal_id": reveal_id, "scan_id": request.scan_id,
                                                       "pseudonym": request.pseudonym, "what": request.what,
                                                       "case_ref": request.case_ref, "requested_by": request.requested_by})
        return {"reveal_id": reveal_id, "status": "approved"}

    def reveal_requests(self, role: str, actor: str) -> list[dict]:
        """For an auditor, the requests awaiting approval; for an investigator, their own requests (any status).
        Request metadata only (pseudonyms, purpose, case): nothing is revealed by listing them."""
        if role == AUDITOR:
            with self.store.transaction() as tx:
                found = tx.reveals(pending_only=True)
        else:
            require_role(role, INVESTIGATOR, "list reveal requests")
            with self.store.transaction() as tx:
                found = tx.reveals(requested_by=actor)
        return [{"reveal_id": r.id, "scan_id": r.scan_id, "pseudonym": r.pseudonym, "what": r.what,
                 "purpose": r.purpose, "case_ref": r.case_ref, "requested_by": r.requested_by,
                 "requested_at": r.requested_at, "approved_by": r.approved_by,
                 "status": "approved" if r.approved_by else "awaiting_auditor"} for r in found]

    def reveal(self, role: str, actor: str, reveal_id: str) -> dict:
        require_role(role, INVESTIGATOR, "see a revealed identity")
        with self.store.transaction() as tx:
            request = tx.get_reveal(reveal_id)
        if request is None:
            raise NotFoundError("no such reveal request", code="search.unknown_reveal")
        if request.requested_by != actor:
            raise ForbiddenError("only the investigator who asked sees the reveal", code="search.not_requester")
        if request.approved_by is None:
            raise ForbiddenError("an auditor has not approved this reveal", code="search.reveal_not_approved")
        real = self._resolve(request.scan_id, request.pseudonym)
        with self.store.transaction() as tx:
            if request.what == "identity":
                customer = tx.get_customer(real)
                if customer is None or customer.status == "erased":
                    raise NotFoundError("this customer was erased", code="search.unknown_subject")
                shown = {"customer_id": customer.id, "display_name": customer.display_name,
                         "status": customer.status, "card_refs": customer.card_refs}
            else:
                _, body = self._stored_scan(request.scan_id)
                decision_id = body["decisions"][real]
                local = tx.list_evidence(decision_id=decision_id, limit=1)
                shown = {"decision_id": decision_id, "evidence": None}
                if local:
                    meta, crop = tx.get_evidence(local[0].id)  # type: ignore[misc]
                    shown["evidence"] = {"id": meta.id, "media_type": meta.media_type,
                                         "data_base64": base64.b64encode(crop).decode()}
            tx.audit(actor, "search.reveal_viewed", {"reveal_id": reveal_id, "scan_id": request.scan_id,
                                                     "pseudonym": request.pseudonym, "what": request.what,
                                                     "approved_by": request.approved_by, "case_ref": request.case_ref})
        return {"reveal_id": reveal_id, "what": request.what, "pseudonym": request.pseudonym, **shown}

    def _resolve(self, scan_id: str, pseudonym: str) -> str:
        _, body = self._stored_scan(scan_id)
        name = Pseudonyms(bytes.fromhex(body["key"])).of
        kind = pseudonym.split("-", 1)[0]
        if kind == "H":
            with self.store.transaction() as tx:
                pool = tx.scan_subjects(scan_id)
        elif kind == "A":
            pool = list(body["decisions"])
        else:
            pool = []
        for real in pool:
            if name(kind, real) == pseudonym:
                return real
        raise NotFoundError("no such pseudonym in this scan (or its person was erased)", code="search.unknown_subject")


@dataclasses.dataclass(frozen=True)
class _ScanAttempt(Attempt):
    decision_id: str = ""


def _network(raw: dict) -> Network:
    return Network(**{**raw, "findings": [Finding(**f) for f in raw["findings"]]})
