"""Dependencies of the HTTP routes: the runtime, and who the caller is (auth as dependencies).

    def route(runtime: RuntimeDep, caller: Teller): ...

The runtime is reached through `get_runtime`, so a test can swap it (`app.dependency_overrides`). Every
route names the roles that may call it with one of the caller types below; the key is checked before
the route's body is read.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from edge.service.auth import Caller, check_role
from edge.service.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def role(*allowed: str):
    """A dependency that admits callers whose API key belongs to one of `allowed`."""
    def dependency(runtime: RuntimeDep,
                   x_api_key: Annotated[str | None, Header()] = None,
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


def search_service(runtime: RuntimeDep):
    """The runtime's SearchService (edge.search)."""
    return runtime.search


ANY_ROLE = ("terminal", "teller", "auditor", "admin", "investigator")
Terminal = Annotated[Caller, Depends(role("terminal", "teller"))]
Teller = Annotated[Caller, Depends(role("teller"))]
TellerOrAdmin = Annotated[Caller, Depends(role("teller", "admin"))]
TellerOrAuditor = Annotated[Caller, Depends(role("teller", "auditor"))]
Auditor = Annotated[Caller, Depends(role("auditor"))]
Admin = Annotated[Caller, Depends(role("admin"))]
Anyone = Annotated[Caller, Depends(role(*ANY_ROLE))]
