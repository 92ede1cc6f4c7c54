"""The HTTP API, one APIRouter per area (FastAPI's "bigger applications" layout):

    system     /healthz, /metrics, /openapi.json, /docs
    sessions   /v1/sessions ...                 the ATM application and the cash desk
    customers  /v1/customers ...                enrolment, consent, import/export, review, erasure
    lockouts   /v1/lockouts ...                 the cash desk's view and reset
    audit      /v1/decisions, /v1/audit, /v1/evidence ...   auditors (every evidence read audited)
    admin      /v1/admin/...                    operations
    search     /v1/search/...                   investigators: network scans, 1:N search, reveals (edge.search)

Routes only translate: the caller's role and the runtime come in as dependencies (edge.service.deps), the
work is a call into a service of the runtime, the answer is a view from edge.service.schemas. No store
transaction or audit write happens in a route function.

May import: as edge.service.
"""
from edge.service.deps import role, search_service
from edge.service.routes import admin, audit, customers, lockouts, search, sessions, system

ROUTERS = [system.router, sessions.router, customers.router, lockouts.router, audit.router, admin.router,
           search.make_router(search_service, role("investigator"), role("auditor"), role("admin"))]
