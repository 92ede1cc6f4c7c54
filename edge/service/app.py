"""The HTTP API (FastAPI): one router per area (edge.service.routes), errors mapped in one place.

    app = create_app(runtime)          # runtime: edge.service.runtime.Runtime

Every endpoint, the OpenAPI document and /metrics included, requires an API key, checked before the body is
read (edge.service.gate); the role that key belongs to decides what it may call (edge.service.deps). Errors are always
`{"error": {"code", "message", "details"?}}` with the HTTP status of their code (edge.service.errors).

Blocking work (captures, matching, SQLite) runs in FastAPI's thread pool: routes are plain `def`.
The operators' web console (edge.service.console) is served at /console unless `console.enabled` is false;
it signs operators in with their own accounts instead of API keys.
"""
from __future__ import annotations

from fastapi import FastAPI

from edge.service.errors import install_error_handlers
from edge.service.gate import install_gate
from edge.service.routes import ROUTERS
from edge.service.runtime import Runtime


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="biogate", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None,
                  description="Biometric identity verification for ATMs and cash desks. Every endpoint requires "
                              "an API key (header X-API-Key) of a role allowed to call it.")
    app.state.runtime = runtime
    install_error_handlers(app)
    install_gate(app, runtime.keys, runtime.cfg.service.max_upload_bytes)
    for router in ROUTERS:
        app.include_router(router)
    if runtime.cfg.console.enabled:
        from edge.service.console import ConsoleDesk, mount_console
        mount_console(app, ConsoleDesk.for_runtime(runtime))
    return app
