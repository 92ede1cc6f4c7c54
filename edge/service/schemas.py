"""Typed request and response bodies of the HTTP API (they are the OpenAPI schema), and the views that
build each response from the service's records (`SessionView.of(...)`, ...).

Requests forbid unknown fields and bound every string and list, so a malformed request is a clear
422 with the field named, never a crash deeper in. A card reference obeys one rule wherever it appears
(`CardRef`).
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from edge.decision import lockout as lockout_rules
from edge.decision.policy import AMOUNT_PATTERN, parse_amount
from edge.errors import InputError
from edge.service.biometrics import TEMPLATE_FORMATS
from edge.store.base import Consent, Customer, LockoutState, TemplateMeta

if TYPE_CHECKING:
    from edge.service.verification import AttemptOutcome, Session

# The one card reference rule (enrolment, sessions, lockouts): 1-64 ASCII letters, digits, . _ : -
CARD_REF_PATTERN = r"^[A-Za-z0-9._:\-]{1,64}$"
CardRef = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=CARD_REF_PATTERN)]
def _amount(value: object) -> Decimal:
    try:
        return parse_amount(value)
    except InputError as exc:
        raise ValueError(exc.message) from None


# The one amount rule (edge.decision.policy.parse_amount): ASCII decimal text or a JSON integer.
Amount = Annotated[Decimal, BeforeValidator(_amount)]
Modality = Literal["face", "finger"]
TemplateFormat = Literal[tuple(TEMPLATE_FORMATS.values())]   # the codecs' own format names
FingerPosition = Literal["right_thumb", "right_index", "right_middle", "right_ring", "right_little",
                         "left_thumb", "left_index", "left_middle", "left_ring", "left_little"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


# -- verification sessions ----------------------------------------------------------------------------
class OpenSessionRequest(Request):
    operation: str = Field(min_length=1, max_length=40, pattern=r"^[a-z_]+$",
                           description="cash_withdrawal, cash_deposit, card_load, balance_inquiry, ...")
    amount: Amount = Field(json_schema_extra={"type": "string", "pattern": AMOUNT_PATTERN})
    currency: str = Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")
    card_ref: CardRef
    reference: str | None = Field(None, max_length=64, description="the ATM's own transaction reference")
    token_delivery: Literal["response", "bridge"] = Field(
        "response", description="where the dispense token goes on allow: in this API's response, or through the "
                                "XFS4IoT bridge (BiogateAuthorisation.GetDispenseToken)")


class Authorisation(BaseModel):
    token: str
    nonce: str
    amount: str
    currency: str
    expires_at: str


class SessionView(BaseModel):
    session_id: str
    status: Literal["open", "allowed", "denied", "locked", "refused", "cancelled", "expired"]
    operation: str
    amount: str
    currency: str
    card_ref: str
    factors: list[Modality]
    rule: str
    reasons: list[str]
    attempts_used: int
    attempts_left: int
    prompt: str | None = None
    expires_at: str
    authorisation: Authorisation | None = None

    @classmethod
    def of(cls, s: "Session", attempts_left: int) -> "SessionView":
        return cls(session_id=s.id, status=str(s.status), operation=s.ctx.operation, amount=str(s.ctx.amount),
                   currency=s.ctx.currency, card_ref=s.ctx.card_ref, factors=list(s.requirement.factors),
                   rule=s.requirement.rule, reasons=s.reasons, attempts_used=s.attempts_used,
                   attempts_left=attempts_left, prompt=s.prompt, expires_at=s.expires_at.isoformat(),
                   authorisation=Authorisation(**s.authorisation.to_dict()) if s.authorisation else None)


class AttemptRequest(Request):
    finger: FingerPosition | None = Field(None, description="which enrolled finger to ask for (default: the first)")


class LivenessView(BaseModel):
    live: bool
    challenge: str | None = None
    passive_score: float | None = None
    reasons: list[str] = []


class AttemptResult(BaseModel):
    session_id: str
    decision_id: str
    outcome: Literal["allow", "deny"]
    reasons: list[str]
    attempt: int
    attempts_left: int
    locked: bool
    retry_after_s: float
    scores: dict
    liveness: LivenessView | None = None
    authorisation: Authorisation | None = None
    session: SessionView

    @classmethod
    def of(cls, out: "AttemptOutcome", attempts_left: int) -> "AttemptResult":
        s = out.session
        return cls(session_id=s.id, decision_id=out.decision_id, outcome=out.outcome, reasons=out.reasons,
                   attempt=s.attempts_used, attempts_left=attempts_left, locked=out.locked,
                   retry_after_s=round(out.retry_after_s, 1), scores=out.scores,
                   liveness=LivenessView(**out.liveness) if out.liveness else None,
                   authorisation=Authorisation(**out.authorisation.to_dict()) if out.authorisation else None,
                   session=SessionView.of(s, attempts_left))


# -- customers and enrolment --------------------------------------------------------------------------
class ConsentIn(Request):
    purpose: str = Field(min_length=3, max_length=200)
    modalities: list[Modality] = Field(min_length=1, max_length=2)
    given_by: str = Field(min_length=1, max_length=120, description="the customer's name as signed")


class CreateCustomerRequest(Request):
    display_name: str = Field(min_length=1, max_length=120)
    card_refs: list[CardRef] = Field(min_length=1, max_length=8)
    consent: ConsentIn


class TemplateInfo(BaseModel):
    id: str
    modality: Modality
    position: str
    sample_index: int
    format: str
    quality: float
    created_at: str


class ConsentView(BaseModel):
    id: str
    purpose: str
    modalities: list[str]
    given_at: str
    recorded_by: str
    given_by: str = Field("", description="the name the consent was signed with")
    withdrawn_at: str | None = None


class CustomerView(BaseModel):
    id: str
    display_name: str
    status: str
    review_reason: str | None = None
    card_refs: list[str]
    created_at: str
    consents: list[ConsentView]
    templates: list[TemplateInfo]

    @classmethod
    def of(cls, c: Customer, consents: list[Consent], metas: list[TemplateMeta]) -> "CustomerView":
        return cls(id=c.id, display_name=c.display_name, status=c.status, review_reason=c.review_reason,
                   card_refs=c.card_refs, created_at=c.created_at,
                   consents=[ConsentView(id=k.id, purpose=k.purpose, modalities=k.modalities, given_at=k.given_at,
                                         recorded_by=k.recorded_by, given_by=k.given_by,
                                         withdrawn_at=k.withdrawn_at) for k in consents],
                   templates=[TemplateInfo(id=m.id, modality=m.modality, position=m.position,
                                           sample_index=m.sample_index, format=m.format, quality=m.quality,
                                           created_at=m.created_at) for m in metas])


class EnrolFaceRequest(Request):
    samples: int | None = Field(None, ge=1, le=10)


class EnrolFingerRequest(Request):
    positions: list[FingerPosition] | None = Field(None, min_length=1, max_length=10)
    impressions: int | None = Field(None, ge=1, le=10)


class CaptureLog(BaseModel):
    modality: Modality
    position: str
    accepted: int
    rejected: list[str]


class EnrolmentResult(BaseModel):
    customer: CustomerView
    added: int
    captures: list[CaptureLog] = []
    duplicate_of: list[str] = Field(default_factory=list,
                                    description="other customers whose templates match: flagged for review")
    pending_import: "ImportView | None" = Field(None, description="an import held until a second operator "
                                                                  "approves it (its templates are not used before)")


class ImportView(BaseModel):
    id: str
    customer_id: str
    requested_by: str
    requested_at: str
    source: str
    count: int
    status: str
    decided_by: str | None = None
    decided_at: str | None = None


class TemplateRecordIn(Request):
    modality: Modality
    position: str = Field(min_length=1, max_length=20, pattern=r"^[a-z_]+$")
    format: TemplateFormat
    data: str = Field(min_length=4, max_length=20000, description="base64")
    quality: float = Field(0, ge=0, le=100)


class ImportRequest(Request):
    bundle: dict | None = Field(None, description="a signed biogate template bundle (from export), bound to this "
                                                  "customer")
    records: list[TemplateRecordIn] | None = Field(None, max_length=40,
                                                   description="bare records: refused (input.import_unsigned); "
                                                               "imports must be signed bundles")


class ErasureResult(BaseModel):
    customer_id: str
    templates_removed: int
    evidence_removed: int
    status: str

    @classmethod
    def of(cls, customer_id: str, counts: dict[str, int]) -> "ErasureResult":
        return cls(customer_id=customer_id, templates_removed=counts["templates"],
                   evidence_removed=counts["evidence"], status="erased")


# -- lockouts, decisions, audit, evidence ------------------------------------------------------------
class LockoutView(BaseModel):
    card_ref: str
    consecutive_failures: int
    total_failures: int
    lockouts: int
    locked_until: str | None
    disabled: bool
    locked: bool
    retry_after_s: float
    updated_at: str

    @classmethod
    def of(cls, st: LockoutState, now: dt.datetime) -> "LockoutView":
        status = lockout_rules.status(st, now)
        return cls(card_ref=st.card_ref, consecutive_failures=st.consecutive_failures,
                   total_failures=st.total_failures, lockouts=st.lockouts, locked_until=st.locked_until,
                   disabled=st.disabled, locked=status.locked, retry_after_s=round(status.retry_after_s, 1),
                   updated_at=st.updated_at)


class DecisionView(BaseModel):
    id: str
    session_id: str
    customer_id: str | None
    card_ref: str
    operation: str
    amount: str
    currency: str
    outcome: str
    factors: str
    reasons: list[str]
    scores: dict
    terminal_id: str
    created_at: str


class AuditEntryView(BaseModel):
    seq: int
    prev_hash: str
    timestamp: str
    actor: str
    event: str
    details: dict
    hash: str


class AuditVerifyView(BaseModel):
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_seq: int | None = None
    head_hash: str | None = None


class EvidenceView(BaseModel):
    id: str
    decision_id: str
    customer_id: str | None
    media_type: str
    created_at: str
    retain_until: str


class PurgeResult(BaseModel):
    purged: int


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    terminal_id: str
    devices: dict
    models: dict
    storage: dict
    # a terminal in a fleet only:
    registry: Literal["online", "offline"] | None = Field(None, description="whether the fleet registry answers")
    outbox_length: int | None = Field(None, description="items waiting to be sent to the registry")
    last_sync_at: str | None = Field(None, description="the last successful exchange with the registry")
    fleet: dict | None = None
