"""The registry's HTTP API.

Terminals (X-Terminal-Id + their bearer token; checked against the database on every request):
    POST /v1/fleet/ingest, GET /v1/fleet/cards/{card_ref}, GET /v1/fleet/changes, GET /v1/fleet/anchor
The bank's people (X-API-Key of a role, from the registry's secrets file):
    DELETE /v1/customers/{id} (teller, admin)          erase everywhere
    POST /v1/customers/{id}/consent/withdraw (teller, admin)
    POST /v1/customers/{id}/review (admin)             put under review / clear
    POST /v1/cards/{card_ref}/revoke (teller, admin)
    POST /v1/lockouts/{card_ref}/lock (teller, admin)   POST /v1/lockouts/{card_ref}/reset (teller)
    GET  /v1/decisions, GET /v1/fleet/stats, GET /v1/audit/verify (auditor)
    GET  /v1/terminals (admin)
    /v1/search/... (investigator; reveals approved by an auditor)   network scans across the fleet, 1:N search
/healthz and /metrics need any role's key.
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from edge.fleet.protocol import Anchor, CardHolder, ChangesResponse, IngestRequest, IngestResult
from edge.registry.service import RegistryService
from edge.service.auth import Caller, KeyChecker, check_role, named_operator
from edge.service.routes.search import make_router as make_search_router
from edge.service.errors import ERROR_RESPONSES, install_error_handlers
from edge.service.schemas import CARD_REF_PATTERN, DecisionView

CardPath = Annotated[str, Path(pattern=CARD_REF_PATTERN)]


class RegistryMetrics:
    def __init__(self, service: RegistryService):
        self.registry = CollectorRegistry()
        self.ingested = Counter("biogate_registry_items_ingested", "Outbox items ingested (new ones)", ["kind"],
                                registry=self.registry)
        self.batches = Counter("biogate_registry_ingest_batches", "Ingest requests by outcome", ["outcome"],
                               registry=self.registry)
        self.fetches = Counter("biogate_registry_card_fetches", "Card holder fetches by outcome", ["outcome"],
                               registry=self.registry)
        last = Gauge("biogate_registry_last_change_seq", "Newest change feed sequence number", registry=self.registry)
        last.set_function(lambda: service.changes(2 ** 62, 1)[1])


def _service(request: Request) -> RegistryService:
    return request.app.state.service


ServiceDep = Annotated[RegistryService, Depends(_service)]


def _terminal(request: Request, service: ServiceDep,
              x_terminal_id: Annotated[str | None, Header(max_length=64)] = None,
              authorization: Annotated[str | None, Header()] = None) -> Caller:
    token = authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else None
    return service.authenticate(x_terminal_id, token)


def _role(*allowed: str):
    def dependency(request: Request, x_api_key: Annotated[str | None, Header()] = None,
                   x_operator_id: Annotated[str | None, Header(max_length=64)] = None) -> Caller:
        keys: KeyChecker = request.app.state.keys
        who = keys.role_for(x_api_key)
        check_role(who, allowed)
        return Caller(who, named_operator(who, x_operator_id), via_key=True)
    return dependency


TerminalCaller = Annotated[Caller, Depends(_terminal)]
Teller = Annotated[Caller, Depends(_role("teller"))]
TellerOrAdmin = Annotated[Caller, Depends(_role("teller", "admin"))]
Auditor = Annotated[Caller, Depends(_role("auditor"))]
Admin = Annotated[Caller, Depends(_role("admin"))]
Anyone = Annotated[Caller, Depends(_role("teller", "auditor", "admin", "investigator"))]

fleet = APIRouter(prefix="/v1/fleet", tags=["fleet"], responses=ERROR_RESPONSES)
bank = APIRouter(prefix="/v1", tags=["registry"], responses=ERROR_RESPONSES)
system = APIRouter(tags=["service"])


# -- terminals --------------------------------------------------------------------------------------------
def _counted(counter: Counter, failure: str, work, *args):
    """`work(*args)`, counted in `counter` as "ok" or as `failure`."""
    try:
        result = work(*args)
    except Exception:
        counter.labels(failure).inc()
        raise
    counter.labels("ok").inc()
    return result


@fleet.post("/ingest", response_model=IngestResult)
def ingest(body: IngestRequest, request: Request, service: ServiceDep, terminal: TerminalCaller):
    return _counted(request.app.state.metrics.batches, "refused", service.ingest, terminal.operator, body)


@fleet.get("/cards/{card_ref}", response_model=CardHolder)
def card_holder(card_ref: CardPath, request: Request, service: ServiceDep, terminal: TerminalCaller):
    return _counted(request.app.state.metrics.fetches, "not_found", service.card_holder, terminal.operator, card_ref)


@fleet.get("/changes", response_model=ChangesResponse)
async def changes(request: Request, service: ServiceDep, terminal: TerminalCaller,
                  after: int = Query(0, ge=0, le=2 ** 62), wait: float = Query(0.0, ge=0, le=120)):
    """The feed after `after`, waiting up to `wait` s (capped by registry.max_change_wait_s) for a change."""
    deadline = asyncio.get_running_loop().time() + min(wait, request.app.state.max_wait_s)
    while True:
        found, last = await run_in_threadpool(service.changes, after)
        if found or asyncio.get_running_loop().time() >= deadline:
            return ChangesResponse(changes=[dataclasses.asdict(c) for c in found], last_seq=last)
        await asyncio.sleep(0.25)


@fleet.get("/anchor", response_model=Anchor)
def anchor(service: ServiceDep, terminal: TerminalCaller):
    seq, digest = service.anchor(terminal.operator)
    return Anchor(seq=seq, hash=digest)


@fleet.get("/stats")
def stats(service: ServiceDep, caller: Auditor) -> dict:
    return service.stats()


# -- the bank ---------------------------------------------------------------------------------------------
@bank.delete("/customers/{customer_id}")
def erase(customer_id: str, service: ServiceDep, caller: TellerOrAdmin) -> dict:
    return {"customer_id": customer_id, "status": "erased", "removed": service.erase_customer(customer_id, caller)}


@bank.post("/customers/{customer_id}/consent/withdraw")
def withdraw_consent(customer_id: str, service: ServiceDep, caller: TellerOrAdmin) -> dict:
    return {"customer_id": customer_id, "status": "erased",
            "removed": service.erase_customer(customer_id, caller, reason="consent_withdrawn")}


@bank.post("/customers/{customer_id}/review")
def review(customer_id: str, service: ServiceDep, caller: Admin, under_review: bool = Query(...),
           reason: str = Query("", max_length=200)) -> dict:
    service.set_review(customer_id, under_review, reason, caller)
    return {"customer_id": customer_id, "status": "review" if under_review else "active"}


@bank.post("/cards/{card_ref}/revoke")
def revoke_card(card_ref: CardPath, service: ServiceDep, caller: TellerOrAdmin) -> dict:
    service.revoke_card(card_ref, caller)
    return {"card_ref": card_ref, "status": "revoked"}


@bank.post("/lockouts/{card_ref}/lock")
def lock(card_ref: CardPath, service: ServiceDep, caller: TellerOrAdmin) -> dict:
    return dataclasses.asdict(service.lock_card(card_ref, caller, reset=False))


@bank.post("/lockouts/{card_ref}/reset")
def reset(card_ref: CardPath, service: ServiceDep, caller: Teller,
          identity_checked: bool = Query(..., description="the teller checked an identity document")) -> dict:
    return dataclasses.asdict(service.lock_card(card_ref, caller, reset=True, identity_checked=identity_checked))


@bank.get("/decisions", response_model=list[DecisionView])
def decisions(service: ServiceDep, caller: Auditor, card_ref: str | None = Query(None, max_length=64),
              limit: int = Query(100, ge=1, le=1000)):
    return [DecisionView(**{k: v for k, v in dataclasses.asdict(d).items() if k != "offline"})
            for d in service.decisions(limit, card_ref)]


@bank.get("/audit/verify")
def verify(service: ServiceDep, caller: Auditor) -> dict:
    return service.verify()


@bank.get("/terminals")
def terminals(service: ServiceDep, caller: Admin) -> list[dict]:
    return [dataclasses.asdict(t) for t in service.terminals()]


# -- the service ------------------------------------------------------------------------------------------
@system.get("/healthz")
def healthz(service: ServiceDep, caller: Anyone) -> dict:
    return {"status": "ok", "role": "registry", "schema_version": service.store.schema_version(),
            "last_change_seq": service.changes(2 ** 62, 1)[1]}


@system.get("/metrics", response_class=Response)
def metrics(request: Request, caller: Anyone):
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _search(request: Request):
    return request.app.state.search


def create_registry_app(service: RegistryService, api_keys: dict[str, str], *, max_wait_s: float = 25.0,
                        search=None, console=None) -> FastAPI:
    """The registry's API; with `search` (edge.search) the investigators' routes, with `console` (an
    edge.registry.console.RegistryDesk) the web console."""
    app = FastAPI(title="biogate registry", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None,
                  description="The fleet registry: system of record for customers, templates, decisions and every "
                              "terminal's audit chain.")
    app.state.service = service
    app.state.keys = KeyChecker(api_keys)
    app.state.metrics = RegistryMetrics(service)
    app.state.max_wait_s = max_wait_s
    app.state.search = search or service.search
    install_error_handlers(app)
    for router in (system, fleet, bank):
        app.include_router(router)
    if app.state.search is not None:   # fleet-wide network scans and 1:N search (edge.search), investigators only
        app.include_router(make_search_router(_search, _role("investigator"), _role("auditor"), _role("admin")))
    if console is not None:
        from edge.service.console import mount_console
        console.search = app.state.search
        mount_console(app, console)
    return app
