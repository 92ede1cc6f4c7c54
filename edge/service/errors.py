"""Errors to HTTP, in one place: the status of each error code, and the handlers that write every error as
`{"error": {"code", "message", "details"?}}` (never a traceback).

An error's status is looked up by its own code first, then by the default codes of its class and the
classes above it (`BiogateError.kind_codes`), so `input.unknown_session` (a NotFoundError) is 404 through
`input.not_found` without every precise code being listed.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge.errors import BiogateError
from edge.service.schemas import ErrorResponse

log = logging.getLogger("biogate.api")

HTTP_STATUS: dict[str, int] = {
    "input.invalid": 422,
    "input.not_found": 404,
    "input.conflict": 409,
    "quality.rejected": 422,
    "liveness.failed": 403,
    "policy.refused": 403,
    "auth.denied": 401,
    "auth.forbidden": 403,
    "model.invalid": 503,
    "device.error": 503,
    "storage.error": 500,
    "storage.tampered": 409,          # a record failed its integrity check: reported, quarantined; retrying won't help
    "config.invalid": 500,
    "internal.error": 500,
}


# What each route declares in the OpenAPI document besides its success.
ERROR_RESPONSES = {status: {"model": ErrorResponse} for status in (401, 403, 404, 409, 422, 503)}


def http_status(exc: BiogateError) -> int:
    for code in (exc.code, *type(exc).kind_codes()):
        if code in HTTP_STATUS:
            return HTTP_STATUS[code]
    return 500


def error_response(status: int, code: str, message: str, details: dict | None = None) -> JSONResponse:
    body: dict = {"code": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse(status_code=status, content={"error": body})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BiogateError)
    async def biogate_error(request: Request, exc: BiogateError):
        status = http_status(exc)
        if status >= 500:
            log.warning("request failed", extra={"path": request.url.path, "error_code": exc.code})
        return error_response(status, exc.code, exc.message, exc.details or None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = [{"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
                    for e in exc.errors()][:20]
        return error_response(422, "input.invalid_request", "the request does not match the API schema",
                              {"errors": problems})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "input.no_such_endpoint", 405: "input.method_not_allowed",
                413: "input.body_too_large"}.get(exc.status_code, "input.http")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.error("unexpected error", extra={"path": request.url.path, "exception": type(exc).__name__})
        return error_response(500, "internal.error", "internal error; the incident was logged")
