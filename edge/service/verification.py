"""Verification sessions: open with the transaction context, run attempts, decide, authorise.

    session = service.open(ctx, caller)              # policy decides the factors (or refuses)
    result = service.attempt(session.id, caller)      # capture -> quality -> liveness -> match -> fuse -> decide
    # allow: an XFS4IoT dispense token for exactly this amount, single use, short-lived; deny: reason codes

One attempt, in order:
0. reserve the card: one attempt per card in flight on this terminal (a second one, from another session on
   the same card, is refused with input.card_attempt_in_progress and counts for nothing), so the lockout
   check below and the decision see every earlier attempt's outcome;
1. refuse at once if the card is locked or biometrics are disabled for it (another session may have
   locked it meanwhile);
2. face (if required): the liveness check runs the active challenge over the camera stream and scores
   the frames passively; the best of the checked frame and the few after it (the same face: large, well
   exposed, sharp, still, frontal) gives the probe and the evidence crop; a frame the customer can improve
   prompts them (move closer, more light, hold still) instead of being decided on;
3. finger (if required): the customer is asked for one enrolled finger; the scanner's image is
   quality-checked, with a few recaptures before the attempt counts as failed;
4. scores (edge.decision.scoring, through BiometricCore) -> the verdict (edge.decision.judgement); when it
   is a close call and the customer has a second enrolled finger, the terminal asks for that one
   (`place_another_finger:<position>`, `[policy.second_finger]`) and the verdict is settled with it, within
   the same attempt (sequential fusion, edge.decision.fusion); the card's lockout state is read again right
   before a token is issued (a lock from the fleet meanwhile wins);
5. one transaction records the verdict: decision, evidence crop, lockout state and audit entries;
6. every sample (frames, embeddings, minutiae, images) is zeroised, whatever happened.

Device faults abort the attempt with a device error; they are not the customer's failures and do not
count against the card.
"""
from __future__ import annotations

import datetime as dt
import enum
import logging
import secrets as pysecrets
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable

import numpy as np

from drivers.base import Camera
from drivers.errors import DeviceError
from edge.biometrics.finger import FingerTemplate
from edge.biometrics.liveness import LivenessResult
from edge.config import Config
from edge.decision import lockout
from edge.decision.fusion import SecondFinger
from edge.decision.judgement import Verdict, judge, judge_second_finger
from edge.decision.policy import FactorRequirement, TransactionContext, required_factors
from edge.errors import ConflictError, InputError, NotFoundError, PolicyError, QualityError, StorageError
from edge.fleet.link import FleetLink
from edge.fleet.outbox import NO_OUTBOX, Outbox
from edge.service.auth import Caller
from edge.service.biometrics import BiometricCore, FaceSample
from edge.service.devices import TerminalDevices
from edge.service.metrics import ServiceMetrics
from edge.service.tokens import IssuedAuthorisation, TokenIssuer
from edge.biometrics.face.template import encode_face_template
from edge.store.base import DecisionRecord, EvidenceMeta, ProbeMeta, StoredTemplate, Store, iso, new_id, utcnow
from xfs4iot_bridge.authoriser import Authorisation
from xfs4iot_bridge.token import minor_units

# Without a liveness check the probe is chosen among the first face frame and this many that follow it (with one,
# among the start-pose frames the check kept: frames after a challenge show a turning or nearer head); after a
# quality prompt the customer gets up to PROMPT_ROUNDS looks of twice as many frames to fix it (about a second
# each at 15 fps).
PROBE_FRAMES = 4
PROMPT_ROUNDS = 2

log = logging.getLogger("biogate.verification")


def check_amount_for_currency(ctx: TransactionContext, requirement: FactorRequirement) -> None:
    """Refuse, before any capture, an amount the dispense token could not carry: more decimals than the
    currency's minor units (100.001 EUR), or nothing to dispense (0 EUR) for an operation that dispenses.
    Found later, it would fail after the match with no decision recorded: a silent match oracle."""
    digits = minor_units(ctx.currency)
    quantum = Decimal(1).scaleb(-digits)
    if ctx.amount != ctx.amount.quantize(quantum):
        raise InputError(f"amount {ctx.amount} has more decimals than {ctx.currency} allows ({digits})",
                         code="input.amount", details={"currency": ctx.currency, "minor_units": digits})
    if requirement.dispenses and ctx.amount < quantum:
        raise InputError(f"{ctx.operation} dispenses: its amount must be at least {quantum} {ctx.currency}",
                         code="input.amount", details={"currency": ctx.currency, "minimum": str(quantum)})


class SessionStatus(enum.StrEnum):
    """A session is open until one transition closes it; a closed session never changes again."""

    OPEN = "open"
    ALLOWED = "allowed"          # verified (or no biometrics needed): the transaction may go ahead
    DENIED = "denied"            # the attempts allowed in this session were used up
    LOCKED = "locked"            # the card is locked (now, or by this session's failures)
    REFUSED = "refused"          # policy or enrolment refuses the transaction before any attempt
    CANCELLED = "cancelled"      # the terminal cancelled it
    EXPIRED = "expired"          # nobody finished it within service.session_ttl_s


@dataclass
class Session:
    id: str
    ctx: TransactionContext
    requirement: FactorRequirement
    terminal_id: str
    opened_by: str
    expires_at: dt.datetime
    token_delivery: str = "response"           # response | bridge
    status: SessionStatus = SessionStatus.OPEN
    reasons: list[str] = field(default_factory=list)
    attempts_used: int = 0
    customer_id: str | None = None
    prompt: str | None = None
    authorisation: IssuedAuthorisation | None = None
    bridge_authorised: bool = False
    offline: bool = False                       # decided without the fleet registry (edge.fleet offline policy)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def closed(self) -> bool:
        return self.status is not SessionStatus.OPEN

    def close(self, status: SessionStatus) -> None:
        """The one transition: open -> `status`."""
        if self.closed:
            raise ConflictError(f"session is already {self.status}", code="input.session_closed")
        self.status = status
        self.prompt = None

    def expire_if_due(self, now: dt.datetime) -> bool:
        """The one expiry rule: an open session past `expires_at` is expired. True when it is now closed."""
        if not self.closed and now >= self.expires_at:
            self.close(SessionStatus.EXPIRED)
        return self.closed


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
    finger_template: FingerTemplate | None = None
    finger_image: np.ndarray | None = None
    second_finger_template: FingerTemplate | None = None
    second_finger_image: np.ndarray | None = None
    liveness: LivenessResult | None = None
    evidence_jpeg: bytes = b""

    def wipe(self, core: BiometricCore) -> None:
        if self.face is not None:
            self.face.wipe()
        for template in (self.finger_template, self.second_finger_template):
            if template is not None:
                core.wipe_finger(template)
        for image in (self.finger_image, self.second_finger_image):
            if image is not None:
                image.fill(0)
        if self.liveness is not None:
            self.liveness.wipe()
        self.evidence_jpeg = b""

    def liveness_view(self) -> dict | None:
        lv = self.liveness
        if lv is None:
            return None
        return {"live": bool(lv.live), "challenge": lv.challenge, "passive_score": _round(lv.passive_score),
                "reasons": list(lv.reasons or [])}


@dataclass
class _Recorded:
    decision_id: str
    lockout_event: str | None = None           # locked | disabled, when this verdict triggered it
    retry_after_s: float = 0.0


class VerificationService:
    def __init__(self, cfg: Config, store: Store, core: BiometricCore, devices: TerminalDevices,
                 metrics: ServiceMetrics, dispense_key: bytes, clock: Callable[[], dt.datetime] = utcnow, *,
                 outbox: Outbox = NO_OUTBOX, fleet: FleetLink | None = None):
        self.cfg = cfg
        self.outbox = outbox
        self.fleet = fleet
        self.store = store
        self.core = core
        self.devices = devices
        self.metrics = metrics
        self.clock = clock
        self.tokens = TokenIssuer(devices, dispense_key, cfg.service.token_ttl_s, metrics, clock)
        self._sessions: dict[str, Session] = {}
        self._cards_in_flight: set[str] = set()     # cards with an attempt running (reserved under self._lock)
        self._lock = threading.Lock()

    # -- sessions -------------------------------------------------------------------------------------
    def open(self, ctx: TransactionContext, caller: Caller, token_delivery: str = "response") -> Session:
        requirement = required_factors(ctx, self.cfg.policy)
        check_amount_for_currency(ctx, requirement)
        now = self.clock()
        session = Session(new_id("ses"), ctx, requirement, self.cfg.terminal_id, caller.actor,
                          now + dt.timedelta(seconds=self.cfg.service.session_ttl_s), token_delivery,
                          reasons=list(requirement.reasons))
        if requirement.refused:
            self._close_without_attempt(session, SessionStatus.REFUSED, [], caller)
        elif not requirement.needs_biometrics:
            session.reasons.append("policy.no_biometrics_required")
            if requirement.dispenses and token_delivery == "response":
                session.authorisation = self._issue_token(session, session.reasons)
            self._close_without_attempt(session, SessionStatus.ALLOWED, [], caller)
        else:
            self._prepare_in_fleet(session, caller)
            if not session.closed:
                self._check_enrolment_and_lockout(session, caller)
        with self._lock:
            self._sessions[session.id] = session
            self._gc_locked(now)
        self._update_gauge()
        return session

    def _prepare_in_fleet(self, session: Session, caller: Caller) -> None:
        """In a fleet: caught up with the registry's changes and the card holder at hand, or the offline policy's
        answer (edge.fleet.link)."""
        if self.fleet is None:
            return
        readiness = self.fleet.prepare(session.ctx.card_ref, session.requirement.amount_usd)
        session.offline = readiness.offline
        if readiness.offline:
            session.reasons.append("fleet.offline")
        if readiness.refusal:
            self._close_without_attempt(session, SessionStatus.REFUSED, [readiness.refusal], caller)

    def _check_enrolment_and_lockout(self, session: Session, caller: Caller) -> None:
        now = self.clock()
        try:
            with self.store.transaction() as tx:
                state = lockout.status(tx.get_lockout(session.ctx.card_ref), now)
                customer = tx.customer_for_card(session.ctx.card_ref)
                metas = tx.template_metas(customer.id) if customer else []
        except StorageError as exc:
            if exc.code != "storage.tampered":
                raise
            # the store has reported it (audit entry, metric); this card holder cannot be verified until reviewed
            self._close_without_attempt(session, SessionStatus.REFUSED, ["storage.tampered"], caller)
            return
        if state.locked:
            self._close_without_attempt(session, SessionStatus.LOCKED, [state.reason or "policy.locked_out"], caller,
                                        extra={"retry_after_s": round(state.retry_after_s, 1)})
            return
        if customer is None or customer.status == "erased":
            self._close_without_attempt(session, SessionStatus.REFUSED, ["enrolment.card_not_enrolled"], caller)
            return
        if customer.status == "review":
            self._close_without_attempt(session, SessionStatus.REFUSED, ["enrolment.under_review"], caller)
            return
        session.customer_id = customer.id
        have = {m.modality for m in metas}
        missing = [f for f in session.requirement.factors if f not in have]
        if missing:
            self._close_without_attempt(session, SessionStatus.REFUSED,
                                        [f"enrolment.no_{f}_templates" for f in missing], caller)

    def _close_without_attempt(self, session: Session, status: SessionStatus, reasons: list[str], caller: Caller,
                               extra: dict | None = None) -> None:
        session.reasons += reasons
        allow = status is SessionStatus.ALLOWED
        self._record(session, caller, Verdict(allow, session.reasons), counts=False, extra=extra)
        session.close(status)

    def get(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise NotFoundError("no such verification session (it may have expired)", code="input.unknown_session")
        if session.lock.acquire(blocking=False):   # a running attempt checks expiry itself; never wait for it
            try:
                session.expire_if_due(self.clock())
            finally:
                session.lock.release()
        return session

    def cancel(self, session_id: str, caller: Caller) -> Session:
        session = self.get(session_id)
        with session.lock:
            if not session.expire_if_due(self.clock()):
                session.close(SessionStatus.CANCELLED)
                with self.store.transaction() as tx:
                    tx.audit(caller.actor, "session.cancelled", {"session_id": session.id,
                                                                 "card_ref": session.ctx.card_ref})
        self._update_gauge()
        return session

    def _gc_locked(self, now: dt.datetime) -> None:
        # Closed sessions are kept for a while so the ATM can read their outcome, then forgotten.
        horizon = now - dt.timedelta(seconds=2 * self.cfg.service.session_ttl_s)
        for sid in [s.id for s in self._sessions.values() if s.expires_at < horizon]:
            del self._sessions[sid]

    def _update_gauge(self) -> None:
        with self._lock:
            self.metrics.sessions_open.set(sum(1 for s in self._sessions.values() if not s.closed))

    def attempts_left(self, session: Session) -> int:
        return 0 if session.closed else max(0, self.cfg.policy.attempts_per_session - session.attempts_used)

    # -- attempts -------------------------------------------------------------------------------------
    def attempt(self, session_id: str, caller: Caller, finger: str | None = None) -> AttemptOutcome:
        session = self.get(session_id)
        if not session.lock.acquire(blocking=False):
            raise ConflictError("an attempt is already running in this session", code="input.attempt_in_progress")
        card = session.ctx.card_ref
        reserved = False
        try:
            if session.expire_if_due(self.clock()):
                raise ConflictError(f"session is {session.status}; open a new session", code="input.session_closed",
                                    details={"status": str(session.status), "reasons": session.reasons})
            with self._lock:   # check and reserve in one step: one attempt per card in flight
                if card in self._cards_in_flight:
                    raise ConflictError("another attempt on this card is running; try again when it has finished",
                                        code="input.card_attempt_in_progress")
                self._cards_in_flight.add(card)
                reserved = True
            started = time.perf_counter()
            outcome = self._attempt_locked(session, caller, finger)
            self.metrics.verification_seconds.observe(time.perf_counter() - started)
            self.metrics.verifications.labels(outcome.outcome, session.ctx.operation).inc()
            return outcome
        finally:
            if reserved:
                with self._lock:
                    self._cards_in_flight.discard(card)
            session.prompt = None
            session.lock.release()
            self._update_gauge()

    def _attempt_locked(self, session: Session, caller: Caller, finger: str | None) -> AttemptOutcome:
        now = self.clock()
        try:
            with self.store.transaction() as tx:
                state = lockout.status(tx.get_lockout(session.ctx.card_ref), now)
                customer = tx.get_customer(session.customer_id) if session.customer_id else None
                templates = tx.templates(session.customer_id) if customer else []
        except StorageError as exc:
            if exc.code != "storage.tampered":
                raise
            return self._refuse_attempt(session, caller, ["storage.tampered"])
        try:
            if customer is not None and customer.status == "review":
                return self._refuse_attempt(session, caller, ["enrolment.under_review"])
            if state.locked:
                reasons = [state.reason or "policy.locked_out"]
                recorded = self._record(session, caller, Verdict(False, reasons), counts=False,
                                        extra={"retry_after_s": round(state.retry_after_s, 1)})
                session.close(SessionStatus.LOCKED)
                return AttemptOutcome(session, recorded.decision_id, "deny", reasons, True, state.retry_after_s, {},
                                      None, None)
            if customer is None or customer.status == "erased":
                raise ConflictError("the customer for this card is no longer enrolled", code="input.not_enrolled")
            probe = _Probe()
            try:
                failures = self._capture(session, probe, templates, finger)
                return self._decide(session, caller, probe, templates, failures)
            finally:
                probe.wipe(self.core)
        finally:
            for t in templates:
                t.zeroise()

    def _refuse_attempt(self, session: Session, caller: Caller, reasons: list[str]) -> AttemptOutcome:
        """The card holder's record cannot be used (tampered, under review): a recorded refusal, not a failure."""
        recorded = self._record(session, caller, Verdict(False, reasons), counts=False)
        session.close(SessionStatus.REFUSED)
        session.reasons = session.reasons + reasons
        return AttemptOutcome(session, recorded.decision_id, "deny", reasons, False, 0.0, {}, None, None)

    def _prompt(self, session: Session, camera: Camera | None = None) -> Callable[[str], None]:
        def show(action: str) -> None:
            session.prompt = action
            if camera is not None:
                camera.prompt(action)
        return show

    def _capture(self, session: Session, probe: _Probe, templates: list[StoredTemplate],
                 finger: str | None) -> list[str]:
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
            failures, probe.finger_image, probe.finger_template = self._capture_finger(session, position)
            return failures
        return []

    def _capture_face(self, session: Session, probe: _Probe) -> list[str]:
        t0 = time.perf_counter()
        candidates: list[np.ndarray] = []  # frames the probe is chosen from; this method wipes them
        try:
            with self.devices.use("camera") as camera:
                show = self._prompt(session, camera)
                show("look_at_camera")
                if self.cfg.policy.liveness_required:
                    rng = np.random.default_rng(pysecrets.randbits(64))
                    result = self.core.check_liveness(camera, show, rng)
                    probe.liveness = result
                    self.metrics.liveness.labels("live" if result.live else "attack_or_fail").inc()
                    candidates = result.probe_frames()  # the result's own frames: wiped here once used
                    failure = [] if result.live else list(result.reasons or ["liveness.failed"])
                else:
                    first, failure = self._first_face_frame(camera), []
                    if first is not None:
                        candidates = [first]
                        candidates += self._read_frames(camera, PROBE_FRAMES)
        except DeviceError as exc:
            self.metrics.device_errors.labels("camera", exc.code).inc()
            for frame in candidates:
                frame.fill(0)
            raise
        finally:
            self.metrics.stage_seconds.labels("face_capture").observe(time.perf_counter() - t0)
        try:
            if not candidates:
                return failure or ["quality.no_face"]
            if failure:  # no decision; the face is still kept as evidence of what was presented
                try:
                    probe.face = self.core.face_sample(candidates[0], strict=False)
                    probe.evidence_jpeg = probe.face.crop_jpeg
                except QualityError:
                    pass
                return failure
            with self.devices.use("camera") as camera:
                return self._pick_probe(session, probe, camera, candidates)
        except DeviceError as exc:
            self.metrics.device_errors.labels("camera", exc.code).inc()
            raise
        finally:
            for frame in candidates:
                frame.fill(0)

    def _pick_probe(self, session: Session, probe: _Probe, camera: Camera, candidates: list[np.ndarray]
                    ) -> list[str]:
        """The probe is the best of the capture's candidate frames, not the first (FacePipeline.analyze_best):
        the liveness check's start-pose frames (or, without one, the first face frame and the next few), each
        of them the same face as the first candidate. A frame the customer can improve (too small, dark, bright,
        blurred, smeared) is not decided on: the terminal shows the finding's prompt (move_closer, more_light,
        ...) through the camera prompt path and looks at the frames that follow; if none is good enough the
        attempt ends with that quality code. The caller owns and wipes `candidates`."""
        from edge.biometrics.face.quality import PROMPTS

        show = self._prompt(session, camera)
        try:
            anchor = self.core.face_sample(candidates[0], strict=False)
        except QualityError as exc:
            return [exc.code]
        frames = candidates
        prompted: str | None = None
        try:
            for round_ in range(PROMPT_ROUNDS + 1):
                chosen = self.core.best_face_sample(frames, reference=anchor.embedding)
                if chosen is None:
                    return [prompted or "quality.no_face"]
                sample, findings = chosen
                if not findings:
                    probe.face, probe.evidence_jpeg = sample, sample.crop_jpeg
                    return []
                sample.wipe()
                prompted = findings[0]
                if round_ == PROMPT_ROUNDS:
                    return [prompted]
                show(PROMPTS[prompted])
                if frames is not candidates:
                    for f in frames:
                        f.fill(0)
                frames = self._read_frames(camera, PROBE_FRAMES * 2)
            return [prompted or "quality.no_face"]
        finally:
            anchor.wipe()
            if frames is not candidates:
                for f in frames:
                    f.fill(0)

    @staticmethod
    def _read_frames(camera: Camera, count: int) -> list[np.ndarray]:
        """`count` frames; when a read fails midway, the frames already read are zeroised before the error goes on
        (the caller never received them, so nobody else could wipe them)."""
        frames: list[np.ndarray] = []
        try:
            for _ in range(count):
                frames.append(camera.read(timeout=2.0))
        except BaseException:
            for frame in frames:
                frame.fill(0)
            raise
        return frames

    def _first_face_frame(self, camera: Camera) -> np.ndarray | None:
        deadline = time.monotonic() + self.cfg.devices.capture_timeout_s
        while time.monotonic() < deadline:
            frame = camera.read(timeout=2.0)
            if self.core.has_face(frame):
                return frame
            frame.fill(0)
        return None

    def _capture_finger(self, session: Session, position: str, ask: str = "place_finger"
                        ) -> tuple[list[str], np.ndarray | None, FingerTemplate | None]:
        """(failures, image, template) of one finger: `ask` is the prompt (`place_finger`, or
        `place_another_finger` for the second finger of a close call, which first waits for the sensor to be
        cleared so that the finger still lying on it is not read again)."""
        t0 = time.perf_counter()
        last = "quality.finger_unusable"
        session.prompt = f"{ask}:{position}"
        try:
            with self.devices.use("fingerprint") as scanner:
                if ask == "place_another_finger":
                    self._wait_for_lift(scanner)
                for _ in range(self.cfg.service.capture_retries):
                    image = scanner.capture(timeout=self.cfg.devices.capture_timeout_s)
                    try:
                        template = self.core.finger_template(image)
                    except QualityError as exc:
                        last = exc.code
                        image.fill(0)
                        session.prompt = f"lift_and_replace_finger:{position}"
                        self._wait_for_lift(scanner)
                        continue
                    return [], image, template
        except DeviceError as exc:
            self.metrics.device_errors.labels("fingerprint", exc.code).inc()
            raise
        finally:
            self.metrics.stage_seconds.labels("finger_capture").observe(time.perf_counter() - t0)
        return [last], None, None

    def _wait_for_lift(self, scanner) -> None:
        """Until no finger is on the sensor (at most the capture timeout; then the capture goes ahead): before
        another finger, and before capturing again after a print the quality gate refused (imaging the same
        placement again would fail the same way)."""
        deadline = time.monotonic() + self.cfg.devices.capture_timeout_s
        while scanner.finger_present() and time.monotonic() < deadline:
            time.sleep(0.1)

    def _decide(self, session: Session, caller: Caller, probe: _Probe, templates: list[StoredTemplate],
                failures: list[str]) -> AttemptOutcome:
        scores, references = {}, {}
        second_position, second_prints = self._second_finger(session, probe, templates)
        if not failures:
            t0 = time.perf_counter()
            if probe.face is not None:
                faces = [t for t in templates if t.modality == "face"]
                scores["face"], references["face"] = self.core.face_score(probe.face.embedding, faces), 1  # centroid
            if probe.finger_template is not None:
                prints = [t for t in templates if t.modality == "finger" and t.position == probe.finger_position]
                scores["finger"] = self.core.finger_score(probe.finger_template, prints)
                references["finger"] = len(prints)
            self.metrics.stage_seconds.labels("match").observe(time.perf_counter() - t0)
        rule = self.cfg.policy.second_finger
        verdict = judge(session.requirement, failures, scores, references, self.core.calibration,
                        min_factor_llr=self.cfg.policy.min_factor_llr,
                        second_finger=SecondFinger(rule.margin_llr) if rule.enabled else None,
                        second_references=len(second_prints))
        if verdict.needs_second_finger:
            verdict = self._settle_with_second_finger(session, probe, verdict, second_position, second_prints)
        reasons = list(verdict.reasons) + (["fleet.offline"] if session.offline else [])
        if verdict.allow:
            # Re-checked right before anything is handed out: the card may have been locked meanwhile (the
            # fleet's feed); this terminal's own attempts on the card cannot interleave (it is reserved).
            with self.store.transaction() as tx:
                state = lockout.status(tx.get_lockout(session.ctx.card_ref), self.clock())
            if state.locked:
                reasons = [state.reason or "policy.locked_out"]
                recorded = self._record(session, caller, Verdict(False, reasons), counts=False,
                                        extra={"retry_after_s": round(state.retry_after_s, 1)})
                session.close(SessionStatus.LOCKED)
                session.reasons = reasons
                return AttemptOutcome(session, recorded.decision_id, "deny", reasons, True, state.retry_after_s,
                                      {}, None, None)
        authorisation = None
        if verdict.allow and session.requirement.dispenses and session.token_delivery == "response":
            authorisation = self._issue_token(session, reasons)
        liveness = probe.liveness_view()
        recorded = self._record(session, caller, Verdict(verdict.allow, reasons, verdict.match), counts=True,
                                liveness=liveness, evidence=probe.evidence_jpeg, token_issued=authorisation is not None,
                                probe_embedding=probe.face.embedding if probe.face is not None else None)
        session.attempts_used += 1
        locked = False
        if verdict.allow:
            session.authorisation = authorisation
            session.close(SessionStatus.ALLOWED)
        elif recorded.lockout_event:
            self.metrics.lockouts.labels(recorded.lockout_event).inc()
            locked = True
            reasons.append("policy.locked_out" if recorded.lockout_event == "locked" else "policy.biometrics_disabled")
            session.close(SessionStatus.LOCKED)
        elif session.attempts_used >= self.cfg.policy.attempts_per_session:
            session.close(SessionStatus.DENIED)
        session.reasons = reasons
        outcome = "allow" if verdict.allow else "deny"
        log.info("verification decided", extra={"session_id": session.id, "decision_id": recorded.decision_id,
                                                "outcome": outcome, "reasons": reasons})
        return AttemptOutcome(session, recorded.decision_id, outcome, reasons, locked, recorded.retry_after_s,
                              verdict.scores(), liveness, authorisation)

    def _second_finger(self, session: Session, probe: _Probe, templates: list[StoredTemplate]
                       ) -> tuple[str | None, list[StoredTemplate]]:
        """The enrolled finger a close call would ask for (the first other enrolled position) and its
        impressions; (None, []) when the customer enrolled one finger only or the policy asks for none."""
        if not self.cfg.policy.second_finger.enabled or probe.finger_position is None:
            return None, []
        others = sorted({t.position for t in templates if t.modality == "finger"} - {probe.finger_position})
        if not others:
            return None, []
        return others[0], [t for t in templates if t.modality == "finger" and t.position == others[0]]

    def _settle_with_second_finger(self, session: Session, probe: _Probe, first: Verdict, position: str,
                                   prints: list[StoredTemplate]) -> Verdict:
        """A close call: ask for the second finger, compare it with its enrolled impressions, decide."""
        failures, probe.second_finger_image, probe.second_finger_template = self._capture_finger(
            session, position, ask="place_another_finger")
        if failures:
            return judge_second_finger(first, None, self.core.calibration, failures)
        t0 = time.perf_counter()
        score = self.core.finger_score(probe.second_finger_template, prints)
        self.metrics.stage_seconds.labels("match").observe(time.perf_counter() - t0)
        return judge_second_finger(first, score, self.core.calibration)

    # -- recording ------------------------------------------------------------------------------------
    def _record(self, session: Session, caller: Caller, verdict: Verdict, *, counts: bool,
                liveness: dict | None = None, evidence: bytes = b"", token_issued: bool | None = None,
                extra: dict | None = None, probe_embedding: np.ndarray | None = None) -> _Recorded:
        """Record one verdict in one transaction: the lockout state (when it `counts` as an attempt of the
        customer), the decision, its evidence crop, the sealed probe embedding (for the network scan,
        edge.search; kept and purged with the evidence) and the audit entries."""
        decision_id = new_id("dec")
        now = self.clock()
        outcome = "allow" if verdict.allow else "deny"
        scores = verdict.scores()
        recorded = _Recorded(decision_id)
        if token_issued is None:
            token_issued = session.authorisation is not None
        with self.store.transaction() as tx:
            if counts:
                state = tx.get_lockout(session.ctx.card_ref)
                if verdict.allow:
                    new_state = lockout.record_success(state, session.ctx.card_ref, now)
                else:
                    new_state, recorded.lockout_event = lockout.record_failure(state, session.ctx.card_ref, now,
                                                                               self.cfg.policy)
                    recorded.retry_after_s = lockout.status(new_state, now).retry_after_s if \
                        recorded.lockout_event else 0.0
                tx.put_lockout(new_state)
                self.outbox.lockout(tx, new_state)
            record = DecisionRecord(
                decision_id, session.id, session.customer_id, session.ctx.card_ref, session.ctx.operation,
                str(session.ctx.amount), session.ctx.currency, outcome, session.requirement.rule,
                list(verdict.reasons), {**scores, "liveness": liveness} if liveness else (scores or extra or {}),
                session.terminal_id, iso(now), offline=session.offline)
            tx.add_decision(record)
            self.outbox.decision(tx, record)
            if evidence:
                retain = now + dt.timedelta(days=self.cfg.storage.evidence_retention_days)
                meta = EvidenceMeta(new_id("evi"), decision_id, session.customer_id, "image/jpeg", iso(now),
                                    iso(retain))
                tx.add_evidence(meta, evidence)
                self.outbox.evidence(tx, meta)
            if probe_embedding is not None:
                retain = now + dt.timedelta(days=self.cfg.storage.evidence_retention_days)
                probe_meta = ProbeMeta(new_id("prb"), decision_id, session.terminal_id, session.ctx.card_ref,
                                       session.customer_id, outcome, iso(now), iso(retain))
                tx.add_probe(probe_meta, encode_face_template(probe_embedding))
                self.outbox.probe(tx, probe_meta)
            details = {"decision_id": decision_id, "session_id": session.id, "card_ref": session.ctx.card_ref,
                       "customer_id": session.customer_id, "operation": session.ctx.operation,
                       "amount": str(session.ctx.amount), "currency": session.ctx.currency, "outcome": outcome,
                       "reasons": verdict.reasons[:16]}
            if counts:
                details.update(scores=scores, liveness=liveness)
            tx.audit(caller.actor, "verification.decided", {**details, "token_issued": token_issued,
                                                             **(extra or {})})
            if recorded.lockout_event:
                tx.audit("system:policy", f"lockout.{recorded.lockout_event}",
                         {"card_ref": session.ctx.card_ref, "session_id": session.id})
        if self.fleet is not None:
            self.fleet.wake()
        return recorded

    # -- tokens -----------------------------------------------------------------------------------------
    def _issue_token(self, session: Session, reasons: list[str]) -> IssuedAuthorisation | None:
        """A dispense token for exactly the session's amount (a reason is added when none could be made)."""
        authorisation, problem = self.tokens.issue(session.id, session.ctx.amount, session.ctx.currency)
        if problem:
            reasons.append(problem)
        return authorisation

    def expire_tokens(self) -> int:
        return self.tokens.expire_due()

    # -- the bridge's authoriser -----------------------------------------------------------------------
    def authorise(self, session_id: str) -> Authorisation:
        """`xfs4iot_bridge.authoriser.Authoriser`: the approved amount of an allowed session, exactly once."""
        session = self.get(session_id)
        with session.lock:
            if session.status is not SessionStatus.ALLOWED or not session.requirement.dispenses:
                raise PolicyError("this session has no approved dispense", code="policy.not_authorised")
            if session.token_delivery != "bridge" or session.bridge_authorised:
                raise PolicyError("this session's dispense was already authorised", code="policy.already_authorised")
            session.bridge_authorised = True
        return Authorisation(Decimal(session.ctx.amount), session.ctx.currency)


def _round(v, nd: int = 4):
    return None if v is None else round(float(v), nd)
