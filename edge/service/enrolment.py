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
- Import/export: signed bundles (edge.service.exchange), bare ISO/IEC 19794-2 finger records.
- Erasure removes templates, evidence, cards and the name, and leaves an audit entry.
Samples are zeroised as soon as their template is built. `progress`, when given, hears after every capture
how far the enrolment got (counts and reason codes only, never a sample): the console shows it.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

import numpy as np

from edge.config import Config
from drivers.errors import DeviceError
from edge.errors import ConflictError, InputError, NotFoundError, QualityError
from edge.service.auth import Caller
from edge.service.biometrics import TEMPLATE_FORMATS, BiometricCore
from edge.service.devices import TerminalDevices
from edge.service.exchange import TemplateRecord, make_bundle, open_bundle, record_from_dict, sign_bundle
from edge.service.metrics import ServiceMetrics
from edge.fleet.link import FleetLink
from edge.fleet.outbox import NO_OUTBOX, Outbox
from edge.search.service import SearchService
from edge.biometrics.face.template import decode_face_template
from edge.store.base import CacheEntry, Consent, Customer, Store, TemplateMeta, iso, new_id, utcnow

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
        consent = Consent(new_id("con"), customer.id, purpose, sorted(set(modalities)), now, caller.actor)
        with self.store.transaction() as tx:
            tx.add_customer(customer)      # InputError input.card_in_use if a card belongs to someone else
            tx.add_consent(consent)
            tx.audit(caller.actor, "customer.created", {"customer_id": customer.id, "cards": len(card_refs)})
            tx.audit(caller.actor, "consent.recorded", {"customer_id": customer.id, "consent_id": consent.id,
                                                         "purpose": purpose, "modalities": consent.modalities,
                                                         "signed_by_customer": True})
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

    def _store_records(self, customer_id: str, records: list[TemplateRecord], caller: Caller, source: str) -> list[str]:
        for r in records:
            self.core.check_record(r.modality, r.data)
        duplicates = self._duplicates(customer_id, records)
        now = iso(utcnow())
        added_ids: list[str] = []
        with self.store.transaction() as tx:
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
                                    float(r.quality), now)
                tx.add_template(meta, r.data)
                added_ids.append(meta.id)
            self.outbox.templates(tx, customer_id, added_ids)
            tx.audit(caller.actor, "enrolment.templates_added", {
                "customer_id": customer_id, "source": source, "count": len(records),
                "by_modality": {m: sum(1 for r in records if r.modality == m) for m in ("face", "finger")}})
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
    def export(self, customer_id: str, caller: Caller) -> dict:
        customer, _, _ = self.customer(customer_id)
        if customer.status == "erased":
            raise ConflictError("this customer was erased", code="input.customer_erased")
        with self.store.transaction() as tx:
            templates = tx.templates(customer_id)
            tx.audit(caller.actor, "templates.exported", {"customer_id": customer_id, "count": len(templates)})
        try:
            return sign_bundle(make_bundle(customer, templates, self.cfg.terminal_id, caller.actor), self.signing_key)
        finally:
            for t in templates:
                t.zeroise()

    def import_templates(self, customer_id: str, bundle: dict | None, records: list[dict] | None,
                         caller: Caller) -> tuple[int, list[str]]:
        if (bundle is None) == (records is None):
            raise InputError("give either a signed bundle or bare records", code="input.import")
        parsed = open_bundle(bundle, self.signing_key) if bundle is not None else \
            [record_from_dict(r, i) for i, r in enumerate(records or [])]
        for modality in {r.modality for r in parsed}:
            self._consented(customer_id, modality)
        duplicates = self._store_records(customer_id, parsed, caller, source="import")
        return len(parsed), duplicates

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

