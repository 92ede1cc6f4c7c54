"""Enrolment at the teller desk: customer and consent, captures, templates, duplicates, exchange, erasure.

- A customer is created together with a consent record (who signed, when, for what purpose, which
  modalities); nothing is captured for a modality the consent does not name.
- Captures go through the terminal's drivers with strict quality gates and a few retries per sample.
  The samples of one enrolment must agree with each other (a face that does not match the first one,
  or an impression of another finger, is rejected), so one sitting cannot mix two people.
- Duplicate check: every new template is compared with every other customer's templates of the
  same modality; a match above `service.duplicate_llr` puts the customer under review (verification
  refuses customers under review) and names the other customers in the audit log. Nothing is silently
  accepted, nothing is silently dropped.
- Import/export: signed bundles (edge.service.exchange) only, each bound to its customer (and terminal). An
  import is checked against the customer's existing enrolment (a bundle of another person is refused and the
  customer goes under review) and is held as *pending* until a second operator approves it (dual control):
  pending templates are never used to verify anyone.
- Erasure removes templates, evidence, cards and the name, and leaves an audit entry.
Samples are zeroised as soon as their template is built. `progress`, when given, hears after every capture
how far the enrolment got (counts and reason codes only, never a sample): the console shows it.
"""
from __future__ import annotations

import logging
import time
import unicodedata
from typing import Callable

import numpy as np

from edge.config import Config
from drivers.errors import DeviceError
from edge.errors import ConflictError, ForbiddenError, InputError, NotFoundError, QualityError
from edge.service.auth import Caller
from edge.service.biometrics import TEMPLATE_FORMATS, BiometricCore
from edge.service.devices import TerminalDevices
from edge.service.exchange import ANY_TERMINAL, TemplateRecord, make_bundle, open_bundle, sign_bundle
from edge.service.metrics import ServiceMetrics
from edge.fleet.link import FleetLink
from edge.fleet.outbox import NO_OUTBOX, Outbox
from edge.search.service import SearchService
from edge.biometrics.face.template import decode_face_template
from edge.store.base import (CacheEntry, Consent, Customer, Store, TemplateImport, TemplateMeta, iso, new_id,
                             utcnow)

log = logging.getLogger("biogate.enrolment")


class EnrolmentService:
    def __init__(self, cfg: Config, store: Store, core: BiometricCore, devices: TerminalDevices,
                 metrics: ServiceMetrics, signing_key: bytes, *, outbox: Outbox = NO_OUTBOX,
                 fleet: FleetLink | None = None, search: SearchService | None = None):
        self.cfg = cfg
        self.search = search
        self.outbox = outbox
        self.fleet = fleet
        self.store = store
        self.core = core
        self.devices = devices
        self.metrics = metrics
        self.signing_key = signing_key

    # -- customers --------------------------------------------------------------------------------
    def create_customer(self, display_name: str, card_refs: list[str], purpose: str, modalities: list[str],
                        given_by: str, caller: Caller) -> Customer:
        now = iso(utcnow())
        customer = Customer(new_id("cus"), display_name, now, card_refs=sorted(set(card_refs)))
        consent = Consent(new_id("con"), customer.id, purpose, sorted(set(modalities)), now, caller.actor,
                          given_by=given_by)
        with self.store.transaction() as tx:
            tx.add_customer(customer)      # InputError input.card_in_use if a card belongs to someone else
            tx.add_consent(consent)
            tx.audit(caller.actor, "customer.created", {"customer_id": customer.id, "cards": len(card_refs)})
            tx.audit(caller.actor, "consent.recorded", {"customer_id": customer.id, "consent_id": consent.id,
                                                         "purpose": purpose, "modalities": consent.modalities,
                                                         "given_by": given_by,
                                                         "signed_by_customer": _same_name(given_by, display_name)})
            self._enrolled_here(tx, customer, [consent])
        self._wake_fleet()
        return customer

    def _enrolled_here(self, tx, customer: Customer, consents: list) -> None:
        """In a fleet: the registry learns of the customer (outbox), and this terminal holds the original."""
        if self.outbox.enabled:
            self.outbox.customer(tx, customer, consents)
            now = customer.created_at
            tx.cache_put(CacheEntry(customer.id, "local", now, now))

    def _wake_fleet(self) -> None:
        if self.fleet is not None:
            self.fleet.wake()

    def customer(self, customer_id: str) -> tuple[Customer, list, list]:
        with self.store.transaction() as tx:
            customer = tx.get_customer(customer_id)
            if customer is None:
                raise NotFoundError("no such customer", code="input.unknown_customer")
            return customer, tx.consents(customer_id), tx.template_metas(customer_id)

    def _consented(self, customer_id: str, modality: str) -> Customer:
        customer, consents, _ = self.customer(customer_id)
        if customer.status == "erased":
            raise ConflictError("this customer was erased", code="input.customer_erased")
        if not any(modality in c.modalities and c.withdrawn_at is None for c in consents):
            raise ConflictError(f"no valid consent covers {modality} for this customer",
                                code="input.no_consent", details={"modality": modality})
        return customer

    # -- captures ---------------------------------------------------------------------------------
    def enrol_face(self, customer_id: str, samples: int | None, caller: Caller,
                   progress: Callable[[dict], None] | None = None) -> tuple[int, list[dict], list[str]]:
        self._consented(customer_id, "face")
        want = samples or self.cfg.service.enrol_face_samples
        tell = _progress_reporter(progress, "face", "face", want)
        accepted: list = []
        rejected: list[str] = []
        try:
            with self.devices.use("camera") as camera:
                camera.prompt("look_at_camera")
                attempts = 0
                while len(accepted) < want and attempts < want * self.cfg.service.capture_retries * 5:
                    attempts += 1
                    frame = camera.read(timeout=self.cfg.devices.capture_timeout_s)
                    try:
                        sample = self.core.face_sample(frame, strict=True)
                    except QualityError as exc:
                        rejected.append(exc.code)
                        tell(len(accepted), exc.code)
                        continue
                    finally:
                        frame.fill(0)
                    if accepted and not self.core.same_face(sample.embedding, accepted[0].embedding):
                        rejected.append("enrolment.face_inconsistent")
                        tell(len(accepted), "enrolment.face_inconsistent")
                        sample.wipe()
                        continue
                    accepted.append(sample)
                    tell(len(accepted), None)
                    time.sleep(0.1)  # successive samples a moment apart: a little natural variation
        except DeviceError as exc:
            self.metrics.device_errors.labels("camera", exc.code).inc()
            for s in accepted:
                s.wipe()
            raise
        try:
            if len(accepted) < want:
                self.metrics.enrolments.labels("face", "failed").inc()
                raise QualityError(f"only {len(accepted)} of {want} face samples passed the quality gates",
                                   code="quality.enrolment_incomplete", details={"rejected": rejected[-20:]})
            records = [TemplateRecord("face", "face", TEMPLATE_FORMATS["face"], self.core.face_template(s),
                                      _face_quality(s), i) for i, s in enumerate(accepted)]
        finally:
            for s in accepted:
                s.wipe()
        duplicates = self._store_records(customer_id, records, caller, source="capture")
        self.metrics.enrolments.labels("face", "ok").inc()
        return len(records), [{"modality": "face", "position": "face", "accepted": len(records),
                               "rejected": rejected[-20:]}], duplicates

    def enrol_finger(self, customer_id: str, positions: list[str] | None, impressions: int | None,
                     caller: Caller, progress: Callable[[dict], None] | None = None) -> tuple[int, list[dict], list[str]]:
        self._consented(customer_id, "finger")
        positions = positions or list(self.cfg.service.enrol_fingers)
        want = impressions or self.cfg.service.enrol_finger_impressions
        records: list[TemplateRecord] = []
        log_entries: list[dict] = []
        try:
            with self.devices.use("fingerprint") as scanner:
                for position in positions:
                    kept: list = []
                    rejected: list[str] = []
                    tell = _progress_reporter(progress, "finger", position, want)
                    tries = 0
                    while len(kept) < want and tries < want * self.cfg.service.capture_retries:
                        tries += 1
                        scanner.prompt(f"place_finger:{position}")
                        image = scanner.capture(timeout=self.cfg.devices.capture_timeout_s)
                        try:
                            template = self.core.finger_template(image)
                        except QualityError as exc:
                            rejected.append(exc.code)
                            tell(len(kept), exc.code)
                            continue
                        finally:
                            image.fill(0)
                        if template.quality < self.cfg.service.enrol_min_finger_quality:
                            rejected.append("quality.finger_low_quality")
                            tell(len(kept), "quality.finger_low_quality", quality=float(template.quality))
                            self.core.wipe_finger(template)
                            continue
                        if kept and not self.core.same_finger(template, kept[0]):
                            rejected.append("enrolment.finger_inconsistent")
                            tell(len(kept), "enrolment.finger_inconsistent", quality=float(template.quality))
                            self.core.wipe_finger(template)
                            continue
                        kept.append(template)
                        tell(len(kept), None, quality=float(template.quality))
                    try:
                        if len(kept) < want:
                            self.metrics.enrolments.labels("finger", "failed").inc()
                            raise QualityError(f"{position}: only {len(kept)} of {want} impressions were usable",
                                               code="quality.enrolment_incomplete",
                                               details={"position": position, "rejected": rejected[-20:]})
                        records += [TemplateRecord("finger", position, TEMPLATE_FORMATS["finger"],
                                                   self.core.finger_record(t), float(t.quality), i)
                                    for i, t in enumerate(kept)]
                        log_entries.append({"modality": "finger", "position": position, "accepted": len(kept),
                                            "rejected": rejected[-20:]})
                    finally:
                        for t in kept:
                            self.core.wipe_finger(t)
        except DeviceError as exc:
            self.metrics.device_errors.labels("fingerprint", exc.code).inc()
            raise
        duplicates = self._store_records(customer_id, records, caller, source="capture")
        self.metrics.enrolments.labels("finger", "ok").inc()
        return len(records), log_entries, duplicates

    # -- storing, duplicates ------------------------------------------------------------------------
    def _duplicates(self, customer_id: str, records: list[TemplateRecord]) -> dict[str, float]:
        """Other customers whose templates match any new record above the duplicate LLR: id -> best LLR.

        Faces go through the 1:N index (edge.search: a shortlist, then exact calibrated scores); fingers, and faces
        where no index runs, are scored against every stored template of the modality (each decoded once)."""
        found: dict[str, float] = {}
        for modality in ("face", "finger"):
            new = [r for r in records if r.modality == modality]
            if not new:
                continue
            if modality == "face" and self.search is not None:
                probes = [decode_face_template(r.data) for r in new]
                try:
                    for other, llr in self.search.duplicates(customer_id, probes, self.cfg.service.duplicate_llr).items():
                        found[other] = max(found.get(other, -np.inf), llr)
                finally:
                    for p in probes:
                        p.fill(0)
                continue
            with self.store.transaction() as tx:
                others = tx.all_templates(modality, exclude_customer=customer_id)
            if not others:
                continue
            gallery = self.core.gallery(modality, others)
            try:
                for r in new:
                    for other, llr in zip(others, gallery.llrs(r.data)):
                        if llr >= self.cfg.service.duplicate_llr:
                            found[other.customer_id] = max(found.get(other.customer_id, -np.inf), float(llr))
            finally:
                gallery.wipe()
                for o in others:
                    o.zeroise()
        return found

    def _store_records(self, customer_id: str, records: list[TemplateRecord], caller: Caller, source: str,
                       pending: TemplateImport | None = None) -> list[str]:
        """Store new templates (active; or, for an import under dual control, `pending` until approved)."""
        for r in records:
            self.core.check_record(r.modality, r.data)
        duplicates = self._duplicates(customer_id, records)
        now = iso(utcnow())
        added_ids: list[str] = []
        with self.store.transaction() as tx:
            if pending is not None:
                tx.add_import(pending)
            existing = tx.template_metas(customer_id)
            next_index = {}
            for m in existing:
                key = (m.modality, m.position)
                next_index[key] = max(next_index.get(key, 0), m.sample_index + 1)
            for r in records:
                key = (r.modality, r.position)
                index = next_index.get(key, 0)
                next_index[key] = index + 1
                meta = TemplateMeta(new_id("tpl"), customer_id, r.modality, r.position, index, r.format,
                                    float(r.quality), now, state="pending" if pending else "active")
                tx.add_template(meta, r.data, import_id=pending.id if pending else None)
                added_ids.append(meta.id)
            summary = {"customer_id": customer_id, "source": source, "count": len(records),
                       "by_modality": {m: sum(1 for r in records if r.modality == m) for m in ("face", "finger")}}
            if pending is None:
                self.outbox.templates(tx, customer_id, added_ids)
                tx.audit(caller.actor, "enrolment.templates_added", summary)
            else:
                tx.audit(caller.actor, "enrolment.import_requested", {**summary, "import_id": pending.id,
                                                                       "bundle_source": pending.source})
            if duplicates:
                ids = sorted(duplicates)
                reason = f"possible duplicate of {', '.join(ids[:5])}"
                tx.set_customer_status(customer_id, "review", reason)
                self.outbox.customer_status(tx, customer_id, "review", reason)
                for other in ids:   # both sides of a duplicate identity wait for a person's review
                    held = tx.get_customer(other)
                    if held is not None and held.status == "active":
                        tx.set_customer_status(other, "review", f"possible duplicate of {customer_id}")
                        self.outbox.customer_status(tx, other, "review", f"possible duplicate of {customer_id}")
                tx.audit("system:enrolment", "enrolment.duplicate_suspected", {
                    "customer_id": customer_id, "other_customers": ids[:20],
                    "best_llr": round(max(duplicates.values()), 2)})
        self._wake_fleet()
        return sorted(duplicates)

    # -- review -------------------------------------------------------------------------------------
    def resolve_review(self, customer_id: str, approve: bool, note: str, caller: Caller) -> None:
        customer, _, _ = self.customer(customer_id)
        if customer.status != "review":
            raise ConflictError("this customer is not under review", code="input.not_under_review")
        with self.store.transaction() as tx:
            if approve:
                tx.set_customer_status(customer_id, "active", None)
                self.outbox.customer_status(tx, customer_id, "active", None)
            else:
                self.outbox.erasure(tx, customer_id, "review_rejected", customer.card_refs)
                counts = tx.erase_customer(customer_id)
                tx.audit(caller.actor, "customer.erased", {"customer_id": customer_id, "reason": "review_rejected",
                                                           **{f"{k}_removed": v for k, v in counts.items()}})
                self._forget_in_search(customer_id)
            tx.audit(caller.actor, "enrolment.review_resolved", {"customer_id": customer_id,
                                                                 "approved": approve, "note": note[:200]})
        self._wake_fleet()

    # -- exchange -----------------------------------------------------------------------------------
    def export(self, customer_id: str, caller: Caller, for_customer: str | None = None,
               for_terminal: str = ANY_TERMINAL) -> dict:
        """A signed bundle of the customer's templates, bound to the customer it may be imported into (by default
        the same customer id, as held by central enrolment and the fleet) and to a terminal (or any)."""
        customer, _, _ = self.customer(customer_id)
        if customer.status == "erased":
            raise ConflictError("this customer was erased", code="input.customer_erased")
        with self.store.transaction() as tx:
            templates = tx.templates(customer_id)
            tx.audit(caller.actor, "templates.exported", {"customer_id": customer_id, "count": len(templates),
                                                          "for_customer": for_customer or customer_id,
                                                          "for_terminal": for_terminal})
        try:
            return sign_bundle(make_bundle(customer, templates, self.cfg.terminal_id, caller.actor, for_customer,
                                           for_terminal), self.signing_key)
        finally:
            for t in templates:
                t.zeroise()

    def import_templates(self, customer_id: str, bundle: dict | None, records: list[dict] | None,
                         caller: Caller) -> tuple[TemplateImport, list[str]]:
        """Check a signed bundle (bound to this customer and terminal), check it against the enrolment, hold it
        pending a second operator's approval. The pending import and the other customers it duplicates."""
        if records is not None or bundle is None:
            raise InputError("imports must be a signed bundle (bare records are not accepted: nothing vouches for "
                             "whose they are)", code="input.import_unsigned")
        opened = open_bundle(bundle, self.signing_key, customer_id=customer_id, terminal_id=self.cfg.terminal_id)
        parsed = opened.records
        for modality in {r.modality for r in parsed}:
            self._consented(customer_id, modality)
        for r in parsed:
            self.core.check_record(r.modality, r.data)
        self._check_against_enrolment(customer_id, parsed, caller)
        pending = TemplateImport(new_id("imp"), customer_id, caller.actor, iso(utcnow()), opened.source[:200],
                                 len(parsed))
        duplicates = self._store_records(customer_id, parsed, caller, source="import", pending=pending)
        return pending, duplicates

    def _check_against_enrolment(self, customer_id: str, records: list[TemplateRecord], caller: Caller) -> None:
        """Every imported record with an enrolled counterpart (the face; the same finger) must match it. A customer
        with templates must have at least one counterpart checked. A mismatch is refused and flagged: audit entry,
        the customer under review."""
        with self.store.transaction() as tx:
            enrolled = tx.templates(customer_id)
        try:
            if not enrolled:
                return   # a first enrolment by import: nothing to compare; the second operator is the check
            checked, mismatched = 0, []
            for r in records:
                same = [t for t in enrolled if t.modality == r.modality and
                        (r.modality == "face" or t.position == r.position)]
                if not same:
                    continue
                gallery = self.core.gallery(r.modality, same)
                try:
                    best = float(max(gallery.llrs(r.data)))
                finally:
                    gallery.wipe()
                checked += 1
                if best < self.cfg.service.duplicate_llr:
                    mismatched.append(f"{r.modality}:{r.position}")
        finally:
            for t in enrolled:
                t.zeroise()
        if mismatched:
            reason = "an import did not match the enrolled person"
            with self.store.transaction() as tx:
                tx.set_customer_status(customer_id, "review", reason)
                self.outbox.customer_status(tx, customer_id, "review", reason)
                tx.audit(caller.actor, "enrolment.import_mismatch", {"customer_id": customer_id,
                                                                    "mismatched": mismatched[:20]})
            self._wake_fleet()
            raise ConflictError("the imported templates do not match this customer's enrolment; the customer is "
                                "under review", code="enrolment.import_mismatch", details={"mismatched": mismatched})
        if not checked:
            raise ConflictError("nothing in this bundle can be checked against the customer's enrolment (no face, "
                                "no enrolled finger)", code="enrolment.import_unverifiable")

    def imports(self, customer_id: str) -> list[TemplateImport]:
        self.customer(customer_id)
        with self.store.transaction() as tx:
            return tx.imports(customer_id)

    def decide_import(self, customer_id: str, import_id: str, approve: bool, caller: Caller) -> TemplateImport:
        """The second operator's decision on a pending import (never the operator who requested it)."""
        with self.store.transaction() as tx:
            imp = tx.get_import(import_id)
            if imp is None or imp.customer_id != customer_id:
                raise NotFoundError("no such import for this customer", code="input.unknown_import")
            if imp.status != "pending":
                raise ConflictError(f"this import was already {imp.status}", code="input.import_decided")
            if caller.actor == imp.requested_by:
                raise ForbiddenError("an import is approved by a second operator, not by the one who requested it",
                                     code="auth.same_operator")
            now = iso(utcnow())
            ids = tx.decide_import(import_id, approve, caller.actor, now)
            if approve:
                self.outbox.templates(tx, customer_id, ids)
            tx.audit(caller.actor, "enrolment.import_approved" if approve else "enrolment.import_rejected",
                     {"customer_id": customer_id, "import_id": import_id, "requested_by": imp.requested_by,
                      "count": len(ids)})
            decided = tx.get_import(import_id)
        self._wake_fleet()
        return decided

    # -- erasure ------------------------------------------------------------------------------------
    def erase(self, customer_id: str, caller: Caller, reason: str = "customer_request") -> dict[str, int]:
        customer, _, _ = self.customer(customer_id)
        if customer.status == "erased":
            raise ConflictError("this customer was already erased", code="input.customer_erased")
        with self.store.transaction() as tx:
            tx.withdraw_consents(customer_id, iso(utcnow()))
            self.outbox.erasure(tx, customer_id, reason, customer.card_refs)
            counts = tx.erase_customer(customer_id)
            tx.audit(caller.actor, "customer.erased", {"customer_id": customer_id, "reason": reason,
                                                       **{f"{k}_removed": v for k, v in counts.items()}})
        self._forget_in_search(customer_id)
        self._wake_fleet()
        return counts

    def _forget_in_search(self, customer_id: str) -> None:
        if self.search is not None:
            self.search.forget(customer_id)


def _progress_reporter(progress: Callable[[dict], None] | None, modality: str, position: str, want: int):
    """`tell(accepted, rejected_code, quality=None)`: one progress event per capture (a no-op without a listener)."""
    def tell(accepted: int, rejected: str | None, quality: float | None = None) -> None:
        if progress is not None:
            progress({"modality": modality, "position": position, "accepted": accepted, "wanted": want,
                      "rejected": rejected, "quality": None if quality is None else round(quality, 1)})
    return tell


def _face_quality(sample) -> float:
    """0..100 from the sharpness and brightness the quality gate measured (for operators, not decisions)."""
    q = sample.quality or {}
    # sharpness is contrast-free (edge.biometrics.face.quality): LFW's median is about 0.006, the gate 0.0012
    sharp = min(1.0, float(q.get("sharpness", 0.0)) / 0.01)
    bright = 1.0 - min(1.0, abs(float(q.get("brightness", 128.0)) - 128.0) / 128.0)
    return round(100.0 * (0.7 * sharp + 0.3 * bright), 1)


def _same_name(given_by: str, display_name: str) -> bool:
    """Whether the consent was signed with the customer's own name (else a representative signed it, or a typo):
    the audit says which, instead of claiming the customer signed."""
    def norm(name: str) -> str:
        return " ".join(unicodedata.normalize("NFKC", name).casefold().split())
    return norm(given_by) == norm(display_name)
