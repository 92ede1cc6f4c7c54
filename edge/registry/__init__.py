"""The fleet registry: the bank's system of record on PostgreSQL (`biogate registry serve`).

    service  RegistryService: terminals, ingest (each item once; audit chains extended from their anchors),
             card holders sealed per terminal, the change feed, central erasure / review / lockout / revocation
    app      the FastAPI application: /v1/fleet/* for terminals (each authenticates as itself), /v1/* for the
             bank's tellers, auditors and admins (API keys per role), /healthz, /metrics
    server   run it (uvicorn) or run it in a thread (tests, `biogate demo --fleet`)

Stateless apart from PostgreSQL: any number of registry processes serve one database behind a load balancer.
May import: edge.service (its error mapping, roles, schemas), edge.fleet, edge.config and everything below.
Never edge.cli or the simulator.
"""
