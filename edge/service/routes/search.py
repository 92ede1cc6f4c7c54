"""/v1/search: cash-out network scans, 1:N face search and the two-person reveal (edge.search).

One router for the terminal daemon and the fleet registry alike (`make_router`): each passes its own way of
finding the SearchService and of checking a caller's role. Investigators scan and search (with purpose and
case reference), auditors approve reveals, admins may rebuild the index (no result comes with it); everyone
else is refused, here by the route and again inside edge.search.
"""
# No `from __future__ import annotations` here: the routes' annotations name dependencies made inside
# make_router, which FastAPI must see as objects, not as strings to look up in this module.
from typing import Annotated, Any, Callable, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from edge.search.oversight import Investigation
from edge.service.auth import Caller
from edge.service.errors import ERROR_RESPONSES


class Why(BaseModel):
    purpose: str = Field(..., max_length=300, description="why this search is run (10-300 characters)")
    case_ref: str = Field(..., max_length=64, description="the case it belongs to")

    def investigation(self) -> Investigation:
        return Investigation.of(self.purpose, self.case_ref)


class ScanRequest(Why):
    window_days: int | None = Field(None, ge=1, le=180)


class FaceSearchRequest(Why):
    scan_id: str = Field(..., max_length=64)
    attempt: str = Field(..., max_length=32, description="an attempt's pseudonym (A-...) in that scan")
    k: int = Field(10, ge=1, le=50)


class RevealRequestBody(Why):
    scan_id: str = Field(..., max_length=64)
    pseudonym: str = Field(..., max_length=32)
    what: Literal["identity", "evidence"]


IdPath = Annotated[str, Path(max_length=64, pattern=r"^[a-z]{3}_[0-9a-f]{32}$")]


def make_router(search: Callable[..., Any], investigator: Callable[..., Caller], auditor: Callable[..., Caller],
                admin: Callable[..., Caller]) -> APIRouter:
    router = APIRouter(prefix="/v1/search", tags=["search"], responses=ERROR_RESPONSES)
    Search = Annotated[Any, Depends(search)]
    Investigator = Annotated[Caller, Depends(investigator)]
    Auditor = Annotated[Caller, Depends(auditor)]
    Admin = Annotated[Caller, Depends(admin)]

    @router.post("/scans")
    def scan(body: ScanRequest, service: Search, caller: Investigator) -> dict:
        return service.scan(caller.role, caller.actor, body.investigation(), body.window_days)

    @router.get("/scans/{scan_id}")
    def view_scan(scan_id: IdPath, service: Search, caller: Investigator,
                  purpose: str = Query(..., max_length=300), case_ref: str = Query(..., max_length=64)) -> dict:
        return service.view_scan(caller.role, caller.actor, scan_id, Investigation.of(purpose, case_ref))

    @router.post("/faces")
    def face_search(body: FaceSearchRequest, service: Search, caller: Investigator) -> dict:
        return service.search_attempt(caller.role, caller.actor, body.scan_id, body.attempt, body.investigation(),
                                      body.k)

    @router.post("/reveals")
    def request_reveal(body: RevealRequestBody, service: Search, caller: Investigator) -> dict:
        return service.request_reveal(caller.role, caller.actor, body.scan_id, body.pseudonym, body.what,
                                      body.investigation())

    @router.post("/reveals/{reveal_id}/approve")
    def approve_reveal(reveal_id: IdPath, service: Search, caller: Auditor) -> dict:
        return service.approve_reveal(caller.role, caller.actor, reveal_id)

    @router.get("/reveals/{reveal_id}")
    def reveal(reveal_id: IdPath, service: Search, caller: Investigator) -> dict:
        return service.reveal(caller.role, caller.actor, reveal_id)

    @router.post("/index/rebuild")
    def rebuild(service: Search, caller: Admin) -> dict:
        return service.rebuild(caller.actor)

    return router
