"""The HTTP API (FastAPI): typed requests and responses, roles on every endpoint, structured errors.

    app = create_app(runtime)          # runtime: edge.service.runtime.Runtime

Every endpoint, the OpenAPI document and /metrics included, requires an API key; the role that key
belongs to decides what it may call (edge.service.auth). Errors are always
`{"error": {"code", "message", "details"?}}` with the HTTP status of the error class: never a traceback.

Blocking work (captures, matching, SQLite) runs in FastAPI's thread pool: routes are plain `def`.
"""

import logging
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge.decision import lockout as lockout_rules
from edge.decision.policy import TransactionContext, parse_amount
from edge.errors import BiogateError, InputError, NotFoundError, PolicyError
from edge.service import schemas as S
from edge.service.auth import Caller, check_role
from edge.service.metrics import CONTENT_TYPE_LATEST
from edge.service.retention import purge_expired_evidence
from edge.service.runtime import Runtime
from edge.service.verification import Session
from edge.store.base import utcnow

log = logging.getLogger("biogate.api")

ERROR_RESPONSES = {status: {"model": S.ErrorResponse} for status in (401, 403, 404, 409, 422, 503)}


def _error(status: int, code: str, message: str, details: dict | None = None) -> JSONResponse:
    body: dict = {"code": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse(status_code=status, content={"error": body})


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="biogate", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None,
                  description="Biometric identity verification for ATMs and cash desks. Every endpoint requires "
                              "an API key (header X-API-Key) of a role allowed to call it.")
    app.state.runtime = runtime

    # -- errors ----------------------------------------------------------------------------------------
    @app.exception_handler(BiogateError)
    async def biogate_error(request: Request, exc: BiogateError):
        if exc.http_status >= 500:
            log.warning("request failed", extra={"path": request.url.path, "error_code": exc.code})
        return _error(exc.http_status, exc.code, exc.message, exc.details or None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = [{"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
                    for e in exc.errors()][:20]
        return _error(422, "input.invalid_request", "the request does not match the API schema",
                      {"errors": problems})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "input.no_such_endpoint", 405: "input.method_not_allowed"}.get(exc.status_code, "input.http")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.error("unexpected error", extra={"path": request.url.path, "exception": type(exc).__name__})
        return _error(500, "internal.error", "internal error; the incident was logged")

    # -- roles -----------------------------------------------------------------------------------------
    def role(*allowed: str):
        def dependency(x_api_key: Annotated[str | None, Header()] = None,
                       authorization: Annotated[str | None, Header()] = None,
                       x_operator_id: Annotated[str | None, Header(max_length=64)] = None) -> Caller:
            presented = x_api_key
            if presented is None and authorization and authorization.lower().startswith("bearer "):
                presented = authorization[7:].strip()
            who = runtime.keys.role_for(presented)
            check_role(who, allowed)
            operator = "".join(ch for ch in (x_operator_id or "") if ch.isalnum() or ch in "-_.")[:64] or None
            return Caller(who, operator)
        return dependency

    ANY = ("terminal", "teller", "auditor", "admin")
    Terminal = Annotated[Caller, Depends(role("terminal", "teller"))]
    Teller = Annotated[Caller, Depends(role("teller"))]
    TellerOrAdmin = Annotated[Caller, Depends(role("teller", "admin"))]
    TellerOrAuditor = Annotated[Caller, Depends(role("teller", "auditor"))]
    Auditor = Annotated[Caller, Depends(role("auditor"))]
    Admin = Annotated[Caller, Depends(role("admin"))]
    Anyone = Annotated[Caller, Depends(role(*ANY))]

    # -- service -----------------------------------------------------------------------------------------
    @app.get("/openapi.json", include_in_schema=False)
    def openapi(caller: Anyone):
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs(caller: Anyone):
        return get_swagger_ui_html(openapi_url="/openapi.json", title="biogate API")

    @app.get("/healthz", response_model=S.Health, tags=["service"], responses=ERROR_RESPONSES)
    def healthz(caller: Anyone):
        return runtime.health()

    @app.get("/metrics", tags=["service"], response_class=Response, responses=ERROR_RESPONSES)
    def metrics(caller: Anyone):
        return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # -- verification sessions -------------------------------------------------------------------------
    def session_view(s: Session) -> S.SessionView:
        return S.SessionView(
            session_id=s.id, status=s.status, operation=s.ctx.operation, amount=str(s.ctx.amount),
            currency=s.ctx.currency, card_ref=s.ctx.card_ref, factors=list(s.requirement.factors),
            rule=s.requirement.rule, reasons=s.reasons, attempts_used=s.attempts_used,
            attempts_left=max(0, runtime.cfg.policy.attempts_per_session - s.attempts_used) if s.status == "open" else 0,
            prompt=s.prompt, expires_at=s.expires_at.isoformat(),
            authorisation=S.Authorisation(**s.authorisation.to_dict()) if s.authorisation else None)

    @app.post("/v1/sessions", response_model=S.SessionView, status_code=201, tags=["verification"],
              responses=ERROR_RESPONSES)
    def open_session(body: S.OpenSessionRequest, caller: Terminal):
        """Open a verification session for one transaction; policy decides the factors (or refuses)."""
        ctx = TransactionContext(body.operation, parse_amount(body.amount), body.currency, body.card_ref)
        return session_view(runtime.verification.open(ctx, caller, body.token_delivery))

    @app.get("/v1/sessions/{session_id}", response_model=S.SessionView, tags=["verification"],
             responses=ERROR_RESPONSES)
    def get_session(session_id: str, caller: Terminal):
        """The session's state, including the prompt the terminal should show the customer right now."""
        return session_view(runtime.verification.get(session_id))

    @app.post("/v1/sessions/{session_id}/attempts", response_model=S.AttemptResult, tags=["verification"],
              responses=ERROR_RESPONSES)
    def attempt(session_id: str, caller: Terminal, body: S.AttemptRequest | None = None):
        """One verification attempt: capture, quality, liveness, match, fuse, decide."""
        out = runtime.verification.attempt(session_id, caller, body.finger if body else None)
        s = out.session
        return S.AttemptResult(
            session_id=s.id, decision_id=out.decision_id, outcome=out.outcome, reasons=out.reasons,
            attempt=s.attempts_used,
            attempts_left=max(0, runtime.cfg.policy.attempts_per_session - s.attempts_used) if s.status == "open" else 0,
            locked=out.locked, retry_after_s=round(out.retry_after_s, 1), scores=out.scores,
            liveness=S.LivenessView(**out.liveness) if out.liveness else None,
            authorisation=S.Authorisation(**out.authorisation.to_dict()) if out.authorisation else None,
            session=session_view(s))

    @app.delete("/v1/sessions/{session_id}", response_model=S.SessionView, tags=["verification"],
                responses=ERROR_RESPONSES)
    def cancel_session(session_id: str, caller: Terminal):
        return session_view(runtime.verification.cancel(session_id, caller))

    # -- customers and enrolment ---------------------------------------------------------------------------
    def customer_view(customer_id: str) -> S.CustomerView:
        c, consents, metas = runtime.enrolment.customer(customer_id)
        return S.CustomerView(
            id=c.id, display_name=c.display_name, status=c.status, review_reason=c.review_reason,
            card_refs=c.card_refs, created_at=c.created_at,
            consents=[S.ConsentView(id=k.id, purpose=k.purpose, modalities=k.modalities, given_at=k.given_at,
                                    recorded_by=k.recorded_by, withdrawn_at=k.withdrawn_at) for k in consents],
            templates=[S.TemplateInfo(id=m.id, modality=m.modality, position=m.position, sample_index=m.sample_index,
                                      format=m.format, quality=m.quality, created_at=m.created_at) for m in metas])

    @app.post("/v1/customers", response_model=S.CustomerView, status_code=201, tags=["enrolment"],
              responses=ERROR_RESPONSES)
    def create_customer(body: S.CreateCustomerRequest, caller: Teller):
        for ref in body.card_refs:
            if not (1 <= len(ref) <= 64 and all(ch.isalnum() or ch in "._:-" for ch in ref)):
                raise InputError("card_refs must be 1-64 characters of letters, digits, . _ : -",
                                 code="input.card_ref")
        c = runtime.enrolment.create_customer(body.display_name, body.card_refs, body.consent.purpose,
                                              list(body.consent.modalities), body.consent.given_by, caller)
        return customer_view(c.id)

    @app.get("/v1/customers/{customer_id}", response_model=S.CustomerView, tags=["enrolment"],
             responses=ERROR_RESPONSES)
    def get_customer(customer_id: str, caller: TellerOrAdmin):
        return customer_view(customer_id)

    @app.post("/v1/customers/{customer_id}/enrol/face", response_model=S.EnrolmentResult, tags=["enrolment"],
              responses=ERROR_RESPONSES)
    def enrol_face(customer_id: str, caller: Teller, body: S.EnrolFaceRequest | None = None):
        added, log_, dups = runtime.enrolment.enrol_face(customer_id, body.samples if body else None, caller)
        return S.EnrolmentResult(customer=customer_view(customer_id), added=added,
                                 captures=[S.CaptureLog(**c) for c in log_], duplicate_of=dups)

    @app.post("/v1/customers/{customer_id}/enrol/finger", response_model=S.EnrolmentResult, tags=["enrolment"],
              responses=ERROR_RESPONSES)
    def enrol_finger(customer_id: str, caller: Teller, body: S.EnrolFingerRequest | None = None):
        added, log_, dups = runtime.enrolment.enrol_finger(
            customer_id, list(body.positions) if body and body.positions else None,
            body.impressions if body else None, caller)
        return S.EnrolmentResult(customer=customer_view(customer_id), added=added,
                                 captures=[S.CaptureLog(**c) for c in log_], duplicate_of=dups)

    @app.post("/v1/customers/{customer_id}/templates", response_model=S.EnrolmentResult, tags=["enrolment"],
              responses=ERROR_RESPONSES)
    def import_templates(customer_id: str, body: S.ImportRequest, caller: TellerOrAdmin):
        """Import templates from central enrolment: a signed biogate bundle, or bare ISO 19794-2 records."""
        records = [r.model_dump() for r in body.records] if body.records is not None else None
        added, dups = runtime.enrolment.import_templates(customer_id, body.bundle, records, caller)
        return S.EnrolmentResult(customer=customer_view(customer_id), added=added, duplicate_of=dups)

    @app.get("/v1/customers/{customer_id}/templates/export", tags=["enrolment"], responses=ERROR_RESPONSES)
    def export_templates(customer_id: str, caller: Admin) -> dict:
        """A signed bundle of the customer's templates for central enrolment (admin only; audited)."""
        return runtime.enrolment.export(customer_id, caller)

    @app.post("/v1/customers/{customer_id}/review", response_model=S.CustomerView, tags=["enrolment"],
              responses=ERROR_RESPONSES)
    def resolve_review(customer_id: str, caller: Admin,
                       approve: bool = Query(..., description="true: not a duplicate; false: erase this enrolment"),
                       note: str = Query("", max_length=200)):
        runtime.enrolment.resolve_review(customer_id, approve, note, caller)
        return customer_view(customer_id)

    @app.post("/v1/customers/{customer_id}/consent/withdraw", response_model=S.ErasureResult, tags=["enrolment"],
              responses=ERROR_RESPONSES)
    def withdraw_consent(customer_id: str, caller: TellerOrAdmin):
        """The customer withdraws consent: their biometric data is erased (GDPR Art. 7(3), 17)."""
        counts = runtime.enrolment.erase(customer_id, caller, reason="consent_withdrawn")
        return S.ErasureResult(customer_id=customer_id, templates_removed=counts["templates"],
                               evidence_removed=counts["evidence"], status="erased")

    @app.delete("/v1/customers/{customer_id}", response_model=S.ErasureResult, tags=["enrolment"],
                responses=ERROR_RESPONSES)
    def erase_customer(customer_id: str, caller: TellerOrAdmin):
        counts = runtime.enrolment.erase(customer_id, caller)
        return S.ErasureResult(customer_id=customer_id, templates_removed=counts["templates"],
                               evidence_removed=counts["evidence"], status="erased")

    # -- lockouts ------------------------------------------------------------------------------------------
    def lockout_view(st) -> S.LockoutView:
        status = lockout_rules.status(st, utcnow())
        return S.LockoutView(card_ref=st.card_ref, consecutive_failures=st.consecutive_failures,
                             total_failures=st.total_failures, lockouts=st.lockouts, locked_until=st.locked_until,
                             disabled=st.disabled, locked=status.locked, retry_after_s=round(status.retry_after_s, 1),
                             updated_at=st.updated_at)

    @app.get("/v1/lockouts", response_model=list[S.LockoutView], tags=["lockouts"], responses=ERROR_RESPONSES)
    def list_lockouts(caller: TellerOrAuditor, active: bool = Query(True, description="only cards locked now")):
        from edge.store.base import iso

        with runtime.store.transaction() as tx:
            states = tx.lockouts(only_active_after=iso(utcnow()) if active else None)
        return [lockout_view(s) for s in states]

    @app.post("/v1/lockouts/{card_ref}/reset", response_model=S.LockoutView, tags=["lockouts"],
              responses=ERROR_RESPONSES)
    def reset_lockout(card_ref: str, caller: Teller,
                      identity_checked: bool = Query(..., description="the teller checked an identity document")):
        if not identity_checked:
            raise PolicyError("a lockout is reset only after an identity document check",
                              code="policy.id_check_required")
        with runtime.store.transaction() as tx:
            state = tx.get_lockout(card_ref)
            if state is None:
                raise NotFoundError("no lockout record for this card", code="input.unknown_card")
            new = lockout_rules.reset(state, card_ref, utcnow())
            tx.put_lockout(new)
            tx.audit(caller.actor, "lockout.reset", {"card_ref": card_ref, "identity_checked": True})
        return lockout_view(new)

    # -- decisions, audit, evidence (auditor) ---------------------------------------------------------------
    @app.get("/v1/decisions", response_model=list[S.DecisionView], tags=["audit"], responses=ERROR_RESPONSES)
    def decisions(caller: Auditor, card_ref: str | None = Query(None, max_length=64),
                  limit: int = Query(100, ge=1, le=1000)):
        with runtime.store.transaction() as tx:
            rows = tx.decisions(limit=limit, card_ref=card_ref)
        return [S.DecisionView(**r.__dict__) for r in rows]

    @app.get("/v1/audit", response_model=list[S.AuditEntryView], tags=["audit"], responses=ERROR_RESPONSES)
    def audit_entries(caller: Auditor, after_seq: int = Query(0, ge=0, le=2**62),
                      limit: int = Query(100, ge=1, le=1000)):
        with runtime.store.transaction() as tx:
            return [S.AuditEntryView(**e.to_dict()) for e in tx.audit_entries(after_seq, limit)]

    @app.get("/v1/audit/verify", response_model=S.AuditVerifyView, tags=["audit"], responses=ERROR_RESPONSES)
    def audit_verify(caller: Auditor):
        from edge.audit import verify_database

        return S.AuditVerifyView(**verify_database(runtime.store.path).to_dict())

    @app.get("/v1/evidence", response_model=list[S.EvidenceView], tags=["audit"], responses=ERROR_RESPONSES)
    def list_evidence(caller: Auditor, decision_id: str | None = Query(None, max_length=80),
                      limit: int = Query(100, ge=1, le=1000)):
        with runtime.store.transaction() as tx:
            return [S.EvidenceView(**{k: v for k, v in m.__dict__.items() if k != "key_id"})
                    for m in tx.list_evidence(decision_id, limit)]

    @app.get("/v1/evidence/{evidence_id}", tags=["audit"], response_class=Response,
             responses={200: {"content": {"image/jpeg": {}}}, **ERROR_RESPONSES})
    def read_evidence(evidence_id: str, caller: Auditor):
        """The evidence face crop (JPEG). Every read is written to the audit log first."""
        with runtime.store.transaction() as tx:
            found = tx.get_evidence(evidence_id)
            if found is None:
                raise NotFoundError("no such evidence item (it may have been purged)", code="input.unknown_evidence")
            meta, data = found
            tx.audit(caller.actor, "evidence.read", {"evidence_id": evidence_id, "decision_id": meta.decision_id})
        return Response(data, media_type=meta.media_type, headers={"Cache-Control": "no-store"})

    # -- admin ---------------------------------------------------------------------------------------------
    @app.post("/v1/admin/evidence/purge", response_model=S.PurgeResult, tags=["admin"], responses=ERROR_RESPONSES)
    def purge(caller: Admin):
        purged = purge_expired_evidence(runtime.store, actor=caller.actor)
        runtime.metrics.evidence_purged.inc(len(purged))
        return S.PurgeResult(purged=len(purged))

    return app
