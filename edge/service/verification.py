"""Verification sessions: open with the transaction context, run attempts, decide, authorise.

    session = service.open(ctx, caller)              # policy decides the factors (or refuses)
    result = service.attempt(session.id, caller)      # capture -> quality -> liveness -> match -> fuse -> decide
    # allow: an XFS4IoT dispense token for exactly this amount, single use, short-lived; deny: reason codes

One attempt, in order:
1. refuse at once if the card is locked or biometrics are disabled for it (another session may have
   locked it meanwhile);
2. face (if required): the liveness check runs the active challenge over the camera stream and scores
   the frames passively; the best frontal frame gives the probe embedding and the evidence crop;
3. finger (if required): the customer is asked for one enrolled finger; the scanner's image is
   quality-checked, with a few recaptures before the attempt counts as failed;
4. scores -> calibrated LLRs -> fused decision (edge.decision.fusion);
5. one transaction records the decision, its evidence crop, the lockout state and the audit entries;
6. every sample (frames, embeddings, minutiae, images) is zeroised, whatever happened.

Device faults abort the attempt with a device error; they are not the customer's failures and do not
count against the card.
"""
from __future__ import annotations

import datetime as dt
import logging
import secrets as pysecrets
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

import numpy as np

from edge.config import Config
from edge.decision import lockout
from edge.decision.fusion import MatchVerdict, decide_match
from edge.decision.policy import FactorRequirement, TransactionContext, required_factors
from edge.errors import BiogateError, ConflictError, DeviceError, NotFoundError, PolicyError, QualityError
from edge.service.auth import Caller
from edge.service.biometrics import BiometricCore, FaceSample
from edge.service.devices import TerminalDevices
from edge.service.metrics import ServiceMetrics
from edge.store.base import DecisionRecord, EvidenceMeta, Store, iso, new_id, utcnow

log = logging.getLogger("biogate.verification")

OPEN, ALLOWED, DENIED, LOCKED, REFUSED, CANCELLED, EXPIRED = (
    "open", "allowed", "denied", "locked", "refused", "cancelled", "expired")


@dataclass
class IssuedAuthorisation:
    token: str
    nonce: str
    amount: str
    currency: str
    expires_at: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Session:
    id: str
    ctx: TransactionContext
    requirement: FactorRequirement
    terminal_id: str
    opened_by: str
    expires_at: dt.datetime
    token_delivery: str = "response"           # response | bridge
    status: str = OPEN
    reasons: list[str] = field(default_factory=list)
    attempts_used: int = 0
    customer_id: str | None = None
    prompt: str | None = None
    authorisation: IssuedAuthorisation | None = None
    token_cleared: bool = False                 # the dispenser nonce behind an expired token was cleared
    bridge_authorised: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def closed(self) -> bool:
        return self.status != OPEN


@dataclass
class AttemptOutcome:
    session: Session
    decision_id: str
    outcome: str
    reasons: list[str]
    locked: bool
    retry_after_s: float
    scores: dict
    liveness: dict | None
    authorisation: IssuedAuthorisation | None


@dataclass
class _Probe:
    """Everything captured during one attempt; `wipe()` zeroises it."""

    face: FaceSample | None = None
    finger_position: str | None = None
    finger_template: object | None = None
    finger_image: np.ndarray | None = None
    liveness: object | None = None
    evidence_jpeg: bytes = b""

    def wipe(self, core: BiometricCore) -> None:
        if self.face is not None:
            self.face.wipe()
        if self.finger_template is not None:
            core.wipe_finger(self.finger_template)
        if self.finger_image is not None:
            self.finger_image.fill(0)
        if self.liveness is not None and hasattr(self.liveness, "wipe"):
            self.liveness.wipe()
        self.evidence_jpeg = b""


class VerificationService:
    def __init__(self, cfg: Config, store: Store, core: BiometricCore, devices: TerminalDevices,
                 metrics: ServiceMetrics, dispense_key: bytes, clock: Callable[[], dt.datetime] = utcnow):
        self.cfg = cfg
        self.store = store
        self.core = core
        self.devices = devices
        self.metrics = metrics
        self.dispense_key = dispense_key
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    # -- sessions -------------------------------------------------------------------------------------
    def open(self, ctx: TransactionContext, caller: Caller, token_delivery: str = "response") -> Session:
        requirement = required_factors(ctx, self.cfg.policy)
        now = self.clock()
        session = Session(new_id("ses"), ctx, requirement, self.cfg.terminal_id, caller.actor,
                          now + dt.timedelta(seconds=self.cfg.service.session_ttl_s), token_delivery,
                          reasons=list(requirement.reasons))
        if requirement.refused:
            session.status = REFUSED
            self._record_closing_decision(session, "deny", session.reasons, caller)
        elif not requirement.needs_biometrics:
            session.status = ALLOWED
            session.reasons.append("policy.no_biometrics_required")
            if requirement.dispenses and token_delivery == "response":
                session.authorisation = self._issue_token(session, session.reasons)
            self._record_closing_decision(session, "allow", session.reasons, caller)
        else:
            self._check_enrolment_and_lockout(session, caller)
        with self._lock:
            self._sessions[session.id] = session
            self._gc_locked(now)
            self.metrics.sessions_open.set(sum(1 for s in self._sessions.values() if not s.closed))
        return session

    def _check_enrolment_and_lockout(self, session: Session, caller: Caller) -> None:
        now = self.clock()
        with self.store.transaction() as tx:
            state = lockout.status(tx.get_lockout(session.ctx.card_ref), now)
            customer = tx.customer_for_card(session.ctx.card_ref)
            metas = tx.template_metas(customer.id) if customer else []
        if state.locked:
            session.status = LOCKED
            session.reasons.append(state.reason or "policy.locked_out")
            self._record_closing_decision(session, "deny", session.reasons, caller,
                                          extra={"retry_after_s": round(state.retry_after_s, 1)})
            return
        if customer is None or customer.status == "erased":
            session.status = REFUSED
            session.reasons.append("enrolment.card_not_enrolled")
            self._record_closing_decision(session, "deny", session.reasons, caller)
            return
        if customer.status == "review":
            session.status = REFUSED
            session.reasons.append("enrolment.under_review")
            self._record_closing_decision(session, "deny", session.reasons, caller)
            return
        session.customer_id = customer.id
        have = {m.modality for m in metas}
        missing = [f for f in session.requirement.factors if f not in have]
        if missing:
            session.status = REFUSED
            session.reasons += [f"enrolment.no_{f}_templates" for f in missing]
            self._record_closing_decision(session, "deny", session.reasons, caller)

    def get(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise NotFoundError("no such verification session (it may have expired)", code="input.unknown_session")
        self._expire_if_due(session)
        return session

    def cancel(self, session_id: str, caller: Caller) -> Session:
        session = self.get(session_id)
        with session.lock:
            if session.status == OPEN:
                session.status = CANCELLED
                session.prompt = None
                with self.store.transaction() as tx:
                    tx.audit(caller.actor, "session.cancelled", {"session_id": session.id,
                                                                 "card_ref": session.ctx.card_ref})
        self._update_gauge()
        return session

    def _expire_if_due(self, session: Session) -> None:
        if session.status == OPEN and self.clock() >= session.expires_at:
            with session.lock:
                self._expire_if_due_locked(session)

    def _gc_locked(self, now: dt.datetime) -> None:
        # Closed sessions are kept for a while so the ATM can read their outcome, then forgotten.
        horizon = now - dt.timedelta(seconds=2 * self.cfg.service.session_ttl_s)
        for sid in [s.id for s in self._sessions.values() if s.expires_at < horizon]:
            del self._sessions[sid]

    def _update_gauge(self) -> None:
        with self._lock:
            self.metrics.sessions_open.set(sum(1 for s in self._sessions.values() if not s.closed))

    # -- attempts -------------------------------------------------------------------------------------
    def attempt(self, session_id: str, caller: Caller, finger: str | None = None) -> AttemptOutcome:
        session = self.get(session_id)
        if not session.lock.acquire(blocking=False):
            raise ConflictError("an attempt is already running in this session", code="input.attempt_in_progress")
        try:
            self._expire_if_due_locked(session)
            if session.status != OPEN:
                raise ConflictError(f"session is {session.status}; open a new session", code="input.session_closed",
                                    details={"status": session.status, "reasons": session.reasons})
            started = time.perf_counter()
            outcome = self._attempt_locked(session, caller, finger)
            self.metrics.verification_seconds.observe(time.perf_counter() - started)
            self.metrics.verifications.labels(outcome.outcome, session.ctx.operation).inc()
            return outcome
        finally:
            session.prompt = None
            session.lock.release()
            self._update_gauge()

    def _expire_if_due_locked(self, session: Session) -> None:
        if session.status == OPEN and self.clock() >= session.expires_at:
            session.status = EXPIRED
            session.prompt = None

    def _attempt_locked(self, session: Session, caller: Caller, finger: str | None) -> AttemptOutcome:
        now = self.clock()
        with self.store.transaction() as tx:
            state = lockout.status(tx.get_lockout(session.ctx.card_ref), now)
            customer = tx.get_customer(session.customer_id) if session.customer_id else None
            templates = tx.templates(session.customer_id) if customer else []
        try:
            if state.locked:
                session.status = LOCKED
                reasons = [state.reason or "policy.locked_out"]
                decision_id = self._record_closing_decision(session, "deny", reasons, caller,
                                                            extra={"retry_after_s": round(state.retry_after_s, 1)})
                return AttemptOutcome(session, decision_id, "deny", reasons, True, state.retry_after_s, {}, None, None)
            if customer is None or customer.status == "erased":
                raise ConflictError("the customer for this card is no longer enrolled", code="input.not_enrolled")
            probe = _Probe()
            try:
                failure = self._capture(session, probe, templates, finger)
                return self._decide(session, caller, probe, templates, failure)
            finally:
                probe.wipe(self.core)
        finally:
            for t in templates:
                t.zeroise()

    def _prompt(self, session: Session, camera=None) -> Callable[[str], None]:
        def show(action: str) -> None:
            session.prompt = action
            if camera is not None and hasattr(camera, "prompt"):
                camera.prompt(action)
        return show

    def _capture(self, session: Session, probe: _Probe, templates, finger: str | None) -> list[str]:
        """Fill `probe`; returns the customer-side failure reasons (empty when every sample is usable)."""
        factors = session.requirement.factors
        if "face" in factors:
            failure = self._capture_face(session, probe)
            if failure:
                return failure
        if "finger" in factors:
            positions = sorted({t.position for t in templates if t.modality == "finger"})
            position = finger if finger in positions else positions[0]
            probe.finger_position = position
            return self._capture_finger(session, probe, position)
        return []

    def _capture_face(self, session: Session, probe: _Probe) -> list[str]:
        t0 = time.perf_counter()
        try:
            with self.devices.use("camera") as camera:
                show = self._prompt(session, camera)
                show("look_at_camera")
                if self.cfg.policy.liveness_required:
                    rng = np.random.default_rng(pysecrets.randbits(64))
                    result = self.core.check_liveness(camera, show, rng)
                    probe.liveness = result
                    self.metrics.liveness.labels("live" if result.live else "attack_or_fail").inc()
                    frame = getattr(result, "best_frame", None)
                    failure = [] if result.live else list(result.reasons or ["liveness.failed"])
                else:
                    frame, failure = self._first_face_frame(camera), []
        except DeviceError as exc:
            self.metrics.device_errors.labels("camera", exc.code).inc()
            raise
        finally:
            self.metrics.stage_seconds.labels("face_capture").observe(time.perf_counter() - t0)
        if frame is None:
            return failure or ["quality.no_face"]
        try:
            probe.face = self.core.face_sample(frame, strict=False)
            probe.evidence_jpeg = probe.face.crop_jpeg
        except QualityError as exc:
            failure = failure or [exc.code]
        finally:
            frame.fill(0)
        return failure

    def _first_face_frame(self, camera) -> np.ndarray | None:
        deadline = time.monotonic() + self.cfg.devices.capture_timeout_s
        while time.monotonic() < deadline:
            frame = camera.read(timeout=2.0)
            if self.core.has_face(frame):
                return frame
            frame.fill(0)
        return None

    def _capture_finger(self, session: Session, probe: _Probe, position: str) -> list[str]:
        t0 = time.perf_counter()
        last = "quality.finger_unusable"
        try:
            with self.devices.use("fingerprint") as scanner:
                for _ in range(self.cfg.service.capture_retries):
                    session.prompt = f"place_finger:{position}"
                    image = scanner.capture(timeout=self.cfg.devices.capture_timeout_s)
                    try:
                        template = self.core.finger_template(image)
                    except QualityError as exc:
                        last = exc.code
                        image.fill(0)
                        session.prompt = f"lift_and_replace_finger:{position}"
                        continue
                    probe.finger_image, probe.finger_template = image, template
                    return []
        except DeviceError as exc:
            self.metrics.device_errors.labels("fingerprint", exc.code).inc()
            raise
        finally:
            self.metrics.stage_seconds.labels("finger_capture").observe(time.perf_counter() - t0)
        return [last]

    def _decide(self, session: Session, caller: Caller, probe: _Probe, templates, failure: list[str]) -> AttemptOutcome:
        verdict: MatchVerdict | None = None
        if not failure:
            t0 = time.perf_counter()
            scores, refs = {}, {}
            if probe.face is not None:
                faces = [t for t in templates if t.modality == "face"]
                scores["face"], refs["face"] = self.core.face_score(probe.face.embedding, faces), 1  # one centroid
            if probe.finger_template is not None:
                prints = [t for t in templates if t.modality == "finger" and t.position == probe.finger_position]
                scores["finger"], refs["finger"] = self.core.finger_score(probe.finger_template, prints), len(prints)
            verdict = decide_match(scores, self.core.calibration, target_fmr=session.requirement.target_fmr,
                                   references=refs, min_factor_llr=self.cfg.policy.min_factor_llr)
            self.metrics.stage_seconds.labels("match").observe(time.perf_counter() - t0)
            failure = [] if verdict.allow else [r for r in verdict.reasons if r != "match.accepted"]
        allow = not failure
        reasons = list(session.requirement.reasons) + (verdict.reasons if allow and verdict else failure)
        liveness = None
        if probe.liveness is not None:
            lv = probe.liveness
            liveness = {"live": bool(lv.live), "challenge": getattr(lv, "challenge", None),
                        "passive_score": _round(getattr(lv, "passive_score", None)),
                        "reasons": list(getattr(lv, "reasons", []) or [])}
        scores = verdict.scores() if verdict else {}
        now = self.clock()
        authorisation = None
        if allow and session.requirement.dispenses and session.token_delivery == "response":
            authorisation = self._issue_token(session, reasons)
        decision_id = new_id("dec")
        event = None
        with self.store.transaction() as tx:
            state = tx.get_lockout(session.ctx.card_ref)
            if allow:
                tx.put_lockout(lockout.record_success(state, session.ctx.card_ref, now))
            else:
                new_state, event = lockout.record_failure(state, session.ctx.card_ref, now, self.cfg.policy)
                tx.put_lockout(new_state)
            tx.add_decision(self._decision_record(decision_id, session, "allow" if allow else "deny", reasons,
                                                  {**scores, "liveness": liveness} if liveness else scores, now))
            if probe.evidence_jpeg:
                retain = now + dt.timedelta(days=self.cfg.storage.evidence_retention_days)
                tx.add_evidence(EvidenceMeta(new_id("evi"), decision_id, session.customer_id, "image/jpeg",
                                             iso(now), iso(retain)), probe.evidence_jpeg)
            tx.audit(caller.actor, "verification.decided", {
                "decision_id": decision_id, "session_id": session.id, "card_ref": session.ctx.card_ref,
                "customer_id": session.customer_id, "operation": session.ctx.operation,
                "amount": str(session.ctx.amount), "currency": session.ctx.currency,
                "outcome": "allow" if allow else "deny", "reasons": reasons[:16], "scores": scores,
                "liveness": liveness, "token_issued": authorisation is not None})
            if event:
                tx.audit("system:policy", f"lockout.{event}", {"card_ref": session.ctx.card_ref,
                                                                "session_id": session.id})
        session.attempts_used += 1
        locked, retry = False, 0.0
        if allow:
            session.status = ALLOWED
            session.authorisation = authorisation
        elif event:
            session.status = LOCKED
            self.metrics.lockouts.labels(event).inc()
            with self.store.transaction() as tx:
                st = lockout.status(tx.get_lockout(session.ctx.card_ref), self.clock())
            locked, retry = True, st.retry_after_s
            reasons.append("policy.locked_out" if event == "locked" else "policy.biometrics_disabled")
        elif session.attempts_used >= self.cfg.policy.attempts_per_session:
            session.status = DENIED
        session.reasons = reasons
        log.info("verification decided", extra={"session_id": session.id, "decision_id": decision_id,
                                                "outcome": "allow" if allow else "deny", "reasons": reasons})
        return AttemptOutcome(session, decision_id, "allow" if allow else "deny", reasons, locked, retry, scores,
                              liveness, authorisation)

    # -- records and tokens -------------------------------------------------------------------------
    def _decision_record(self, decision_id: str, session: Session, outcome: str, reasons: list[str], scores: dict,
                         now: dt.datetime) -> DecisionRecord:
        return DecisionRecord(decision_id, session.id, session.customer_id, session.ctx.card_ref,
                              session.ctx.operation, str(session.ctx.amount), session.ctx.currency, outcome,
                              session.requirement.rule, list(reasons), scores, session.terminal_id, iso(now))

    def _record_closing_decision(self, session: Session, outcome: str, reasons: list[str], caller: Caller,
                                 extra: dict | None = None) -> str:
        decision_id = new_id("dec")
        now = self.clock()
        with self.store.transaction() as tx:
            tx.add_decision(self._decision_record(decision_id, session, outcome, reasons, extra or {}, now))
            tx.audit(caller.actor, "verification.decided", {
                "decision_id": decision_id, "session_id": session.id, "card_ref": session.ctx.card_ref,
                "customer_id": session.customer_id, "operation": session.ctx.operation,
                "amount": str(session.ctx.amount), "currency": session.ctx.currency, "outcome": outcome,
                "reasons": reasons[:16], "token_issued": session.authorisation is not None, **(extra or {})})
        return decision_id

    def _issue_token(self, session: Session, reasons: list[str]) -> IssuedAuthorisation | None:
        """A dispense token over the dispenser's current nonce for exactly the session's amount."""
        from xfs4iot_bridge.token import make_dispense_token

        if not self.devices.configured("dispenser"):
            reasons.append("dispenser.not_configured")
            return None
        try:
            with self.devices.use("dispenser") as dispenser:
                nonce = dispenser.get_command_nonce()
        except DeviceError as exc:
            self.metrics.device_errors.labels("dispenser", exc.code).inc()
            reasons.append(f"dispenser.nonce_unavailable:{exc.code}")
            return None
        token = make_dispense_token(nonce, session.ctx.amount, session.ctx.currency, self.dispense_key)
        expires = self.clock() + dt.timedelta(seconds=self.cfg.service.token_ttl_s)
        return IssuedAuthorisation(token, nonce, str(session.ctx.amount), session.ctx.currency, iso(expires))

    def expire_tokens(self) -> int:
        """Clear the dispenser's nonce behind tokens that outlived their TTL (they become useless)."""
        now = self.clock()
        expired = 0
        with self._lock:
            sessions = list(self._sessions.values())
        for s in sessions:
            a = s.authorisation
            if a is None or s.token_cleared:
                continue
            if iso(now) >= a.expires_at:
                try:
                    with self.devices.use("dispenser") as dispenser:
                        if hasattr(dispenser, "clear_command_nonce"):
                            dispenser.clear_command_nonce()
                except BiogateError:
                    continue
                s.token_cleared = True
                expired += 1
        return expired

    # -- the bridge's authoriser -----------------------------------------------------------------------
    def authorise(self, session_id: str):
        """`xfs4iot_bridge.authoriser.Authoriser`: the approved amount of an allowed session, exactly once."""
        from xfs4iot_bridge.authoriser import Authorisation

        session = self.get(session_id)
        with session.lock:
            if session.status != ALLOWED or not session.requirement.dispenses:
                raise PolicyError("this session has no approved dispense", code="policy.not_authorised")
            if session.token_delivery != "bridge" or session.bridge_authorised:
                raise PolicyError("this session's dispense was already authorised", code="policy.already_authorised")
            session.bridge_authorised = True
        return Authorisation(Decimal(session.ctx.amount), session.ctx.currency)


def _round(v, nd: int = 4):
    return None if v is None else round(float(v), nd)
