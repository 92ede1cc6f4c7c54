"""The console's pages, one router: `mount_console(app, desk)` serves it at /console with its static files.

Every page needs a signed-in operator (`Operator*` dependencies below: the session cookie, its idle timeout,
the role); every POST also needs the session's CSRF token. An error on a page is a page: the status of its
code (edge.service.errors), the message in the operator's language where the catalogue has it. Routes only
translate forms into calls on the desk (edge.service.console.desk) and results into templates.
"""
from __future__ import annotations

import base64
import datetime as dt
import secrets
from pathlib import Path
from typing import Annotated, Callable

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi import Path as FastPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from edge.errors import AuthError, BiogateError, ForbiddenError, InputError, NotFoundError
from edge.search.oversight import Investigation
from edge.service.console.desk import ConsoleBackend, DecisionFilter, needs_terminal
from edge.service.console.i18n import LANGUAGES, Translator
from edge.service.console.sessions import (
    CSRF_FIELD,
    LANGUAGE_COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    ConsoleSession,
    same_token,
)
from edge.service.errors import http_status
from edge.service.schemas import CARD_REF_PATTERN, FingerPosition

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
FINGERS = list(FingerPosition.__args__)
PURPOSES = ("atm_verification", "card_load")
DOCUMENT_KINDS = ("passport", "id_card", "residence_permit")
LANGUAGE_NAMES = {code: Translator(code)("lang.name") for code in LANGUAGES}
# Security headers of every console answer: no framing, no foreign scripts, no caching of what a page shows.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class NotSignedIn(Exception):
    """No live session: a page sends the browser to sign in (and says why)."""

    def __init__(self, expired: bool):
        self.expired = expired


def get_desk(request: Request) -> ConsoleBackend:
    return request.app.state.console


DeskDep = Annotated[ConsoleBackend, Depends(get_desk)]


def language(request: Request) -> str:
    lang = request.cookies.get(LANGUAGE_COOKIE, "")
    return lang if lang in LANGUAGES else request.app.state.console.cfg.console.default_language


def page(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    session: ConsoleSession | None = getattr(request.state, "console_session", None)
    t = Translator(language(request))
    response = templates.TemplateResponse(request, template, {
        "t": t, "lang": t.lang, "languages": LANGUAGES, "session": session, "language_names": LANGUAGE_NAMES,
        "csrf": session.csrf if session else "", "csrf_field": CSRF_FIELD,
        "terminal_id": request.app.state.console.terminal_id, "captures": request.app.state.console.captures,
        **context}, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


class ConsoleRoute(APIRoute):
    """Console routes answer errors with a page (or the sign-in redirect), never with the API's JSON."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except NotSignedIn as exc:
                target = "/console/login?expired=1" if exc.expired else "/console/login"
                if request.headers.get("HX-Request"):
                    return Response(status_code=401, headers={"HX-Redirect": target})
                return RedirectResponse(target, status_code=303)
            except BiogateError as exc:
                return page(request, "error.html", status=http_status(exc), error=exc)
            except RequestValidationError as exc:
                fields = ", ".join(".".join(str(p) for p in e.get("loc", ())[1:]) for e in exc.errors()[:5])
                return page(request, "error.html", status=422, error=InputError(
                    f"the form is incomplete or malformed: {fields}", code="input.invalid_request"))
        return route


router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


def operator(*roles: str):
    """A dependency: the signed-in operator's session, of one of `roles`; a POST must carry its CSRF token."""
    async def dependency(request: Request, desk: DeskDep) -> ConsoleSession:
        token = request.cookies.get(SESSION_COOKIE)
        session = desk.session(token)
        if session is None:
            raise NotSignedIn(expired=bool(token))
        request.state.console_session = session
        if request.method == "POST":
            form = await request.form()
            given = form.get(CSRF_FIELD) or request.headers.get("X-CSRF-Token")
            session.check_csrf(given if isinstance(given, str) else None)
        if roles and session.role not in roles:
            raise ForbiddenError(f"role '{session.role}' may not open this page", code="auth.forbidden_role",
                                 details={"role": session.role})
        return session
    return dependency


Anyone = Annotated[ConsoleSession, Depends(operator())]
Teller = Annotated[ConsoleSession, Depends(operator("teller"))]
TellerOrAdmin = Annotated[ConsoleSession, Depends(operator("teller", "admin"))]
TellerOrAuditor = Annotated[ConsoleSession, Depends(operator("teller", "auditor"))]
Auditor = Annotated[ConsoleSession, Depends(operator("auditor"))]
Admin = Annotated[ConsoleSession, Depends(operator("admin"))]
Investigator = Annotated[ConsoleSession, Depends(operator("investigator"))]

def at_terminal(desk: DeskDep) -> None:
    """A dependency of the capture pages: they need the camera and the scanner of a terminal (not the registry's)."""
    if not desk.captures:
        raise needs_terminal()


AtTerminal = [Depends(at_terminal)]

HOME = {"teller": "/console/customers", "auditor": "/console/decisions", "admin": "/console/admin/reviews",
        "investigator": "/console/investigations"}


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# -- signing in and out ----------------------------------------------------------------------------------
@router.get("/login")
def login_form(request: Request, desk: DeskDep, expired: bool = False, signed_out: bool = False):
    token = secrets.token_urlsafe(32)
    response = page(request, "login.html", login_csrf=token, expired=expired, signed_out=signed_out)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=600, httponly=True, samesite="strict",
                        secure=desk.cfg.console.secure_cookie, path="/console/login")
    return response


@router.post("/login")
def login(request: Request, desk: DeskDep, name: Annotated[str, Form(max_length=64)],
          password: Annotated[str, Form(max_length=256)], csrf_token: Annotated[str, Form(max_length=128)] = ""):
    if not same_token(request.cookies.get(LOGIN_CSRF_COOKIE, ""), csrf_token):
        raise AuthError("the sign-in form is stale; reload it", code="auth.csrf")
    try:
        token, session = desk.sign_in(name.strip().lower(), password)
    except AuthError as exc:
        fresh = secrets.token_urlsafe(32)
        response = page(request, "login.html", status=401, login_csrf=fresh, failure=exc, name=name)
        response.set_cookie(LOGIN_CSRF_COOKIE, fresh, max_age=600, httponly=True, samesite="strict",
                            secure=desk.cfg.console.secure_cookie, path="/console/login")
        return response
    if session.role not in HOME:   # a role without pages of its own (the ATM application's `terminal` keys)
        desk.sign_out(token)
        raise ForbiddenError(f"the console has no pages for the {session.role} role", code="auth.forbidden_role")
    response = redirect(HOME[session.role])
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=desk.cfg.console.secure_cookie,
                        path="/console")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return response


@router.post("/logout")
def logout(request: Request, desk: DeskDep, session: Anyone):
    desk.sign_out(request.cookies.get(SESSION_COOKIE))
    response = redirect("/console/login?signed_out=1")
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@router.post("/language")
def set_language(request: Request, lang: Annotated[str, Form(max_length=4)], back: Annotated[str, Form()] = "/console"):
    """The operator's language (a cookie; also before sign-in, so no session or CSRF token is needed: it
    changes nothing but the words)."""
    if lang not in LANGUAGES:
        raise InputError("unknown language", code="input.invalid")
    target = back if back.startswith("/console") and "//" not in back else "/console"
    response = redirect(target)
    response.set_cookie(LANGUAGE_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="strict", path="/console")
    return response


@router.get("")
def home(session: Anyone):
    return redirect(HOME[session.role])


# -- teller: customers, consent, enrolment -------------------------------------------------------------
@router.get("/customers")
def customers(request: Request, desk: DeskDep, session: TellerOrAdmin, q: str = Query("", max_length=80)):
    found = desk.find_customer(q) if q else None
    if found:
        return redirect(f"/console/customers/{found}")
    return page(request, "customers.html", q=q, searched=bool(q))


@router.get("/customers/new", dependencies=AtTerminal)
def new_customer_form(request: Request, desk: DeskDep, session: Teller):
    return page(request, "new_customer.html", purposes=PURPOSES, card_pattern=CARD_REF_PATTERN, form={})


def consent_text(t: Translator, name: str, purpose: str, modalities: list[str]) -> str:
    return t("consent.text", name=name or "…", bank=t("consent.bank"), purpose=t(f"purpose.{purpose}"),
             modalities=", ".join(t(f"modality.{m}") for m in modalities) or "…")


@router.post("/customers", dependencies=AtTerminal)
def create_customer(request: Request, desk: DeskDep, session: Teller,
                    display_name: Annotated[str, Form(min_length=1, max_length=120)],
                    card_ref: Annotated[str, Form(pattern=CARD_REF_PATTERN)],
                    purpose: Annotated[str, Form(max_length=40)],
                    given_by: Annotated[str, Form(min_length=1, max_length=120)],
                    modalities: Annotated[list[str], Form()] = [],
                    signed: Annotated[str, Form()] = ""):
    t = Translator(language(request))
    chosen = [m for m in ("face", "finger") if m in modalities]
    form = {"display_name": display_name, "card_ref": card_ref, "purpose": purpose, "given_by": given_by,
            "modalities": chosen}
    problem = None
    if purpose not in PURPOSES:
        problem = "input.invalid_purpose"
    elif not chosen:
        problem = "input.no_modalities"
    elif signed != "yes":
        problem = "input.consent_not_signed"
    if problem:
        return page(request, "new_customer.html", status=422, purposes=PURPOSES, card_pattern=CARD_REF_PATTERN,
                    form=form, problem=problem)
    text = consent_text(t, given_by, purpose, chosen)
    customer = desk.create_customer(display_name, card_ref, t(f"purpose.{purpose}"), chosen, given_by, text, t.lang,
                                    session.caller)
    return redirect(f"/console/customers/{customer.id}?created=1")


@router.get("/customers/{customer_id}")
def customer(request: Request, desk: DeskDep, session: TellerOrAdmin, customer_id: str, created: bool = False):
    c, consents, metas = desk.enrolment.customer(customer_id)
    return page(request, "customer.html", customer=c, consents=consents, templates=metas, created=created)


@router.get("/customers/{customer_id}/enrol", dependencies=AtTerminal)
def enrol_page(request: Request, desk: DeskDep, session: Teller, customer_id: str):
    c, consents, metas = desk.enrolment.customer(customer_id)
    consented = {m for k in consents if k.withdrawn_at is None for m in k.modalities}
    return page(request, "enrol.html", customer=c, templates=metas, consented=consented, fingers=FINGERS,
                samples=desk.cfg.service.enrol_face_samples, impressions=desk.cfg.service.enrol_finger_impressions)


@router.post("/customers/{customer_id}/enrol/face", dependencies=AtTerminal)
def enrol_face(desk: DeskDep, session: Teller, customer_id: str,
               samples: Annotated[int, Form(ge=1, le=10)] = 3):
    desk.enrolment.customer(customer_id)     # 404 before a job starts
    job = desk.start_enrol_face(customer_id, samples, session.caller)
    return redirect(f"/console/jobs/{job.id}")


@router.post("/customers/{customer_id}/enrol/finger", dependencies=AtTerminal)
def enrol_finger(desk: DeskDep, session: Teller, customer_id: str, position: Annotated[str, Form(max_length=20)],
                 impressions: Annotated[int, Form(ge=1, le=10)] = 3):
    if position not in FINGERS:
        raise InputError("unknown finger position", code="input.invalid")
    desk.enrolment.customer(customer_id)
    job = desk.start_enrol_finger(customer_id, position, impressions, session.caller)
    return redirect(f"/console/jobs/{job.id}")


@router.get("/camera/preview", dependencies=AtTerminal)
def camera_preview(request: Request, desk: DeskDep, session: Teller):
    """The live preview as JSON (frame as a data URL, face boxes as fractions, findings in words); not cached."""
    t = Translator(language(request))
    view = desk.preview.snapshot()
    if view is None:
        body = {"frame": None, "faces": [], "findings": [], "messages": [t("finding.quality.no_face")]}
    else:
        frame = "data:image/jpeg;base64," + base64.b64encode(view["frame"]).decode() if view["frame"] else None
        view["frame"] = b""
        body = {"frame": frame, "faces": view["faces"], "findings": view["findings"],
                "messages": [t.code(c) for c in view["findings"]] or [t("enrol.face_ok")],
                "count": t("enrol.faces", count=len(view["faces"]))}
    return JSONResponse(body, headers=SECURITY_HEADERS)


@router.get("/jobs/{job_id}")
def job_page(request: Request, desk: DeskDep, session: Teller, job_id: str):
    job = desk.jobs.get(job_id, session.operator)
    return page(request, "job.html", job=job, view=job_view(job, Translator(language(request)), desk))


@router.get("/jobs/{job_id}/status")
def job_status(request: Request, desk: DeskDep, session: Teller, job_id: str):
    job = desk.jobs.get(job_id, session.operator)
    return page(request, "job_status.html", job=job, view=job_view(job, Translator(language(request)), desk))


def job_view(job, t: Translator, desk: ConsoleBackend) -> dict:
    """Progress per position, the last refusal in words, and what to link to afterwards."""
    progress: dict[str, dict] = {}
    last = None
    for e in job.events:
        progress[e["position"]] = e
        last = e
    view = {"progress": list(progress.values()), "retry": None, "prompt": None}
    if last and last.get("rejected") and not job.done:
        view["retry"] = t.code(last["rejected"])
    if job.kind == "attempt" and not job.done:
        try:
            view["prompt"] = t.prompt(desk.verification.get(job.subject).prompt)
        except BiogateError:
            pass
    return view


# -- teller: assisted verification --------------------------------------------------------------------------
@router.get("/verify", dependencies=AtTerminal)
def verify_form(request: Request, desk: DeskDep, session: Teller, card_ref: str = Query("", max_length=64)):
    return page(request, "verify.html", operations=sorted(desk.cfg.policy.operations), card_ref=card_ref,
                card_pattern=CARD_REF_PATTERN)


@router.post("/verify", dependencies=AtTerminal)
def verify_open(desk: DeskDep, session: Teller, card_ref: Annotated[str, Form(pattern=CARD_REF_PATTERN)],
                operation: Annotated[str, Form(max_length=40)], amount: Annotated[str, Form(max_length=24)],
                currency: Annotated[str, Form(pattern=r"^[A-Z]{3}$")]):
    s = desk.open_verification(operation, amount, currency, card_ref, session.caller)
    return redirect(f"/console/verify/{s.id}")


@router.get("/verify/{session_id}", dependencies=AtTerminal)
def verify_session(request: Request, desk: DeskDep, session: Teller, session_id: str):
    s = desk.verification.get(session_id)
    return page(request, "verify_session.html", s=s, attempts_left=desk.verification.attempts_left(s),
                fingers=FINGERS)


@router.post("/verify/{session_id}/attempt", dependencies=AtTerminal)
def verify_attempt(desk: DeskDep, session: Teller, session_id: str,
                   finger: Annotated[str, Form(max_length=20)] = ""):
    desk.verification.get(session_id)
    job = desk.start_attempt(session_id, finger if finger in FINGERS else None, session.caller)
    return redirect(f"/console/jobs/{job.id}")


# -- teller: lockouts -------------------------------------------------------------------------------------
@router.get("/lockouts")
def lockouts(request: Request, desk: DeskDep, session: TellerOrAuditor, reset: str = ""):
    return page(request, "lockouts.html", lockouts=desk.lockouts.list(active_only=True), reset=reset,
                documents=DOCUMENT_KINDS, now=dt.datetime.now(dt.timezone.utc))


@router.post("/lockouts/{card_ref}/reset")
def lockout_reset(desk: DeskDep, session: Teller, card_ref: Annotated[str, FastPath(pattern=CARD_REF_PATTERN)],
                  identity_checked: Annotated[str, Form()] = "", document: Annotated[str, Form()] = ""):
    checked = identity_checked == "yes" and document in DOCUMENT_KINDS
    desk.lockouts.reset(card_ref, checked, session.caller)       # policy.id_check_required unless checked
    return redirect(f"/console/lockouts?reset={card_ref}")


# -- auditor: decisions, evidence, audit log, error rates -----------------------------------------------
@router.get("/decisions")
def decisions(request: Request, desk: DeskDep, session: Auditor, terminal: str = Query("", max_length=64),
              outcome: str = Query("", pattern=r"^(|allow|deny)$"), reason: str = Query("", max_length=80),
              date_from: str = Query("", max_length=10), date_to: str = Query("", max_length=10)):
    try:
        flt = DecisionFilter(terminal, outcome, reason, dt.date.fromisoformat(date_from) if date_from else None,
                             dt.date.fromisoformat(date_to) if date_to else None)
    except ValueError:
        raise InputError("dates are YYYY-MM-DD", code="input.invalid_date") from None
    return page(request, "decisions.html", decisions=desk.decisions(flt), flt=flt)


@router.get("/decisions/{decision_id}")
def decision(request: Request, desk: DeskDep, session: Auditor, decision_id: str):
    d, evidence, entries = desk.decision(decision_id)
    return page(request, "decision.html", d=d, evidence=evidence, entries=entries)


@router.get("/evidence/{evidence_id}")
def evidence(desk: DeskDep, session: Auditor, evidence_id: str):
    """The crop itself; the read is audited (AuditRecords.read_evidence) under the auditor's name."""
    meta, data = desk.records.read_evidence(evidence_id, session.caller)
    return Response(data, media_type=meta.media_type, headers=SECURITY_HEADERS)


@router.get("/audit")
def audit(request: Request, desk: DeskDep, session: Auditor, before: int | None = Query(None, ge=1)):
    verification, entries = desk.audit_page(before)
    return page(request, "audit.html", verification=verification, entries=entries)


@router.get("/error-rates")
def error_rates(request: Request, desk: DeskDep, session: Auditor):
    from edge.service.console.charts import det_charts
    return page(request, "error_rates.html", charts=det_charts(desk.cfg))


@router.get("/error-rates/{name}.png")
def error_rate_chart(desk: DeskDep, session: Auditor, name: str):
    from edge.service.console.charts import chart_png
    return Response(chart_png(desk.cfg, name), media_type="image/png", headers=SECURITY_HEADERS)


# -- admin: reviews, erasure, evidence, keys -------------------------------------------------------------
@router.get("/admin/reviews")
def reviews(request: Request, desk: DeskDep, session: Admin, done: str = ""):
    return page(request, "reviews.html", customers=desk.under_review(), done=done)


@router.post("/admin/reviews/{customer_id}")
def resolve_review(desk: DeskDep, session: Admin, customer_id: str, decision: Annotated[str, Form()],
                   note: Annotated[str, Form(max_length=200)] = ""):
    if decision not in ("approve", "reject"):
        raise InputError("decision is approve or reject", code="input.invalid")
    desk.enrolment.resolve_review(customer_id, decision == "approve", note, session.caller)
    return redirect(f"/console/admin/reviews?done={customer_id}")


@router.get("/customers/{customer_id}/erase")
def erase_form(request: Request, desk: DeskDep, session: TellerOrAdmin, customer_id: str):
    c, _, _ = desk.enrolment.customer(customer_id)
    return page(request, "erase.html", customer=c)


@router.post("/customers/{customer_id}/erase")
def erase(request: Request, desk: DeskDep, session: TellerOrAdmin, customer_id: str,
          confirm_id: Annotated[str, Form(max_length=80)] = ""):
    c, _, _ = desk.enrolment.customer(customer_id)
    if confirm_id.strip() != customer_id:
        return page(request, "erase.html", status=422, customer=c, mismatch=True)
    counts = desk.enrolment.erase(customer_id, session.caller)
    return page(request, "erase.html", customer=c, counts=counts)


@router.get("/admin/operations")
def operations(request: Request, desk: DeskDep, session: Admin, purged: int | None = None):
    return page(request, "operations.html", keys=desk.key_status(), purged=purged)


@router.post("/admin/evidence/purge")
def purge(desk: DeskDep, session: Admin):
    return redirect(f"/console/admin/operations?purged={desk.purge_evidence(session.caller)}")


# -- investigator: network scans and the two-person reveal (edge.search checks the roles again) -----------
def console_search(desk: DeskDep):
    """A dependency: the desk's SearchService (the investigators' pages are refused where search is off)."""
    if desk.search is None:
        raise NotFoundError("network search is not enabled here", code="search.disabled")
    return desk.search


SearchDep = Annotated[object, Depends(console_search)]


Purpose = Annotated[str, Form(max_length=300)]
CaseRef = Annotated[str, Form(max_length=64)]


@router.get("/investigations")
def investigations(request: Request, search: SearchDep, session: Investigator, requested: str = ""):
    mine = search.reveal_requests(session.role, session.caller.actor)
    return page(request, "investigations.html", reveals=mine, requested=requested)


@router.post("/investigations/scans")
def run_scan(request: Request, search: SearchDep, session: Investigator, purpose: Purpose, case_ref: CaseRef,
             window_days: Annotated[int | None, Form(ge=1, le=180)] = None):
    view = search.scan(session.role, session.caller.actor, Investigation.of(purpose, case_ref), window_days)
    return page(request, "scan.html", scan=view)


@router.post("/investigations/scans/{scan_id}")
def open_scan(request: Request, search: SearchDep, session: Investigator, scan_id: Annotated[str, FastPath(max_length=64)],
              purpose: Purpose, case_ref: CaseRef):
    view = search.view_scan(session.role, session.caller.actor, scan_id, Investigation.of(purpose, case_ref))
    return page(request, "scan.html", scan=view)


@router.post("/investigations/reveals")
def ask_reveal(search: SearchDep, session: Investigator, scan_id: Annotated[str, Form(max_length=64)],
               pseudonym: Annotated[str, Form(max_length=32)], purpose: Purpose, case_ref: CaseRef):
    what = "identity" if pseudonym.startswith("H-") else "evidence"    # a holder's identity, an attempt's crop
    asked = search.request_reveal(session.role, session.caller.actor, scan_id, pseudonym, what,
                                           Investigation.of(purpose, case_ref))
    return redirect(f"/console/investigations?requested={asked['reveal_id']}")


@router.get("/investigations/reveals/{reveal_id}")
def revealed(request: Request, search: SearchDep, session: Investigator,
             reveal_id: Annotated[str, FastPath(max_length=64)]):
    shown = search.reveal(session.role, session.caller.actor, reveal_id)
    return page(request, "reveal.html", shown=shown)


@router.get("/reveals")
def reveal_queue(request: Request, search: SearchDep, session: Auditor, approved: str = ""):
    return page(request, "reveals.html", reveals=search.reveal_requests(session.role, session.caller.actor),
                approved=approved)


@router.post("/reveals/{reveal_id}/approve")
def approve_reveal(search: SearchDep, session: Auditor, reveal_id: Annotated[str, FastPath(max_length=64)]):
    search.approve_reveal(session.role, session.caller.actor, reveal_id)
    return redirect(f"/console/reveals?approved={reveal_id}")


def mount_console(app: FastAPI, desk: ConsoleBackend) -> None:
    """Serve the console at /console on `app` with `desk` as its backend (the daemon's ConsoleDesk, or the
    registry's own object with the same methods)."""
    app.state.console = desk
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=str(HERE / "static")), name="console-static")
