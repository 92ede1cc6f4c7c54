"""The registry's /v1/fleet API as both sides see it: paths, item kinds and bodies, change kinds.

Terminal -> registry (bearer token of the terminal, header X-Terminal-Id):
    POST /v1/fleet/ingest            {"items": [Item...], "audit": [AuditEntry...]} -> IngestResult
    GET  /v1/fleet/cards/{card_ref}  -> CardHolder (templates sealed for this terminal), 404 unknown card
    GET  /v1/fleet/changes?after=N&wait=S -> {"changes": [Change...], "last_seq": N} (long-poll)
    GET  /v1/fleet/anchor            -> {"seq", "hash"}: this terminal's audit head as the registry holds it

Item kinds (each ingested once per key; the newest body of a key wins on the terminal before upload):
    customer         {"customer": {...}, "consents": [...]}             key customer:<id>
    templates        {"customer_id", "templates": [sealed template]}    key templates:<id>:<template ids hash>
    customer_status  {"customer_id", "status", "reason"}                key status:<id>
    erasure          {"customer_id", "reason", "card_refs"}             key erasure:<id>
    lockout          a LockoutState                                     key lockout:<card>:<updated_at>
    decision         a DecisionRecord                                   key decision:<id>
    evidence         an EvidenceMeta (the crop stays on the terminal)   key evidence:<id>
    probe            {probe: an attempt's probe embedding sealed UP (edge.fleet.transport.seal_probe), or None
                     when purged before it left}                         key probe:<id>

Change kinds (the feed every terminal applies in seq order): erasure {customer_id, card_refs},
customer_status {customer_id, status, reason}, lockout {state}, card_revoked {card_ref, customer_id},
customer_updated {customer_id} (drop the cached copy; it is fetched again when next needed).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ITEM_KINDS = ("customer", "templates", "customer_status", "erasure", "lockout", "decision", "evidence", "probe")
CHANGE_KINDS = ("erasure", "customer_status", "lockout", "card_revoked", "customer_updated")
MAX_ITEMS = 500
MAX_AUDIT = 2000


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Item(Wire):
    kind: Literal[ITEM_KINDS]   # type: ignore[valid-type]
    key: str = Field(min_length=1, max_length=200)
    body: dict[str, Any]


class AuditEntryWire(Wire):
    seq: int = Field(ge=1)
    prev_hash: str = Field(min_length=64, max_length=64)
    timestamp: str
    actor: str
    event: str
    details: dict[str, Any]
    hash: str = Field(min_length=64, max_length=64)


class IngestRequest(Wire):
    items: list[Item] = Field(default_factory=list, max_length=MAX_ITEMS)
    audit: list[AuditEntryWire] = Field(default_factory=list, max_length=MAX_AUDIT)


class IngestResult(BaseModel):
    acked: list[str]                 # every key of the request (new or already known): the terminal may drop them
    new: int                         # how many items were new to the registry
    anchor_seq: int                  # the terminal's audit head the registry now holds
    anchor_hash: str
    last_change_seq: int


class CardHolder(BaseModel):
    customer: dict[str, Any]         # id, display_name, created_at, status, review_reason, card_refs
    templates: list[dict[str, Any]]  # sealed for the requesting terminal (edge.fleet.transport)
    change_seq: int                  # the feed position this record is current at


class ChangesResponse(BaseModel):
    changes: list[dict[str, Any]]
    last_seq: int


class Anchor(BaseModel):
    seq: int
    hash: str
