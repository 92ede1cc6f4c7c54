"""Dependencies of the HTTP routes: the runtime, and who the caller is (auth as dependencies).

    def route(runtime: RuntimeDep, caller: Teller): ...

The runtime is reached through `get_runtime`, so a test can swap it (`app.dependency_overrides`). Every
route names the roles that may call it with one of the caller types below; the key is checked before
the route's body is read.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from edge.service.auth import Caller, check_role, named_operator, presented_key
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
        who = runtime.keys.role_for(presented_key(x_api_key, authorization))
        check_role(who, allowed)
        operator = named_operator(who, x_operator_id)
        if operator is not None:
            runtime.check_operator(operator, who)
        return Caller(who, operator, via_key=True)
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
