"""The fleet: what a terminal and the registry share, and the terminal's side of it.

    config     `[fleet]` (this terminal in a fleet) and `[registry]` (the registry service) sections
    transport  per-terminal credentials and the sealing of templates between a terminal and the registry
    protocol   the wire format of the registry's /v1/fleet API (pydantic models, change kinds)
    outbox     what a terminal queues for the registry, in the same transaction as the change itself
    link       the terminal's side: upload the outbox and the audit chain, follow the change feed, fetch a
               card holder's sealed templates, offline policy, health

May import: edge.store, edge.audit, edge.decision, edge.errors, edge.sections (below it). Never edge.config,
edge.service, edge.registry or edge.cli (above it).
"""
