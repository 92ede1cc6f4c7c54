"""What every HTTP request passes before any route reads its body (a pure ASGI middleware).

An API request without a known key is answered 401 here, before a byte of its body is read: FastAPI reads
and parses a route's body before it runs the route's dependencies (where the role is checked), so without
this gate anyone on 127.0.0.1 could make the daemon buffer and parse a body of any size. The route's own
dependency (edge.service.deps.role) still decides whether the key's role may call it.

The console (/console, edge.service.console) signs operators in with cookies instead of keys and checks
them itself. Every body, the console's too, is capped at `service.max_upload_bytes`: an announced
Content-Length over it is answered 413 here, up front; a body without one (chunked) is counted as it arrives
by Starlette's RequestBodyLimitMiddleware, installed just inside this gate, and cut off at 413 once over.
"""
from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from edge.errors import AuthError
from edge.service.auth import KeyChecker, presented_key
from edge.service.errors import error_response

# Paths whose routes authenticate by other means (the console's sign-in cookie).
COOKIE_AUTH_PREFIX = "/console"


def _uses_cookie_auth(path: str) -> bool:
    return path == COOKIE_AUTH_PREFIX or path.startswith(COOKIE_AUTH_PREFIX + "/")


def install_gate(app: FastAPI, keys: KeyChecker, max_body_bytes: int) -> None:
    """The gate outside, the streaming limit inside it (Starlette runs the last added middleware first)."""
    app.add_middleware(RequestBodyLimitMiddleware, max_body_size=max_body_bytes)
    app.add_middleware(KeyBeforeBody, keys=keys, max_body_bytes=max_body_bytes)


class KeyBeforeBody:
    def __init__(self, app: ASGIApp, keys: KeyChecker, max_body_bytes: int):
        self.app, self.keys, self.max_body_bytes = app, keys, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = None
        if not _uses_cookie_auth(scope["path"]):
            try:
                self.keys.role_for(presented_key(headers.get("x-api-key"), headers.get("authorization")))
            except AuthError as exc:
                refusal = error_response(401, exc.code, exc.message)
        if refusal is None and _announced_length(headers) > self.max_body_bytes:
            refusal = error_response(413, "input.body_too_large",
                                     f"the request body is larger than {self.max_body_bytes} bytes")
        if refusal is not None:
            refusal.headers["Connection"] = "close"     # the unread body is never drained
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _announced_length(headers: Headers) -> int:
    try:
        return int(headers.get("content-length", "0"))
    except ValueError:
        return 0       # h11 refuses a malformed Content-Length before it gets here
