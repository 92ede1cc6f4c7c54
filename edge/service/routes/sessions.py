"""Verification sessions: the ATM application (terminal role) and the cash desk (teller)."""
from __future__ import annotations

from fastapi import APIRouter

from edge.decision.policy import TransactionContext, parse_amount
from edge.service import schemas as S
from edge.service.deps import RuntimeDep, Terminal
from edge.service.errors import ERROR_RESPONSES

router = APIRouter(prefix="/v1/sessions", tags=["verification"], responses=ERROR_RESPONSES)


@router.post("", response_model=S.SessionView, status_code=201)
def open_session(body: S.OpenSessionRequest, runtime: RuntimeDep, caller: Terminal):
    """Open a verification session for one transaction; policy decides the factors (or refuses)."""
    ctx = TransactionContext(body.operation, parse_amount(body.amount), body.currency, body.card_ref)
    session = runtime.verification.open(ctx, caller, body.token_delivery)
    return S.SessionView.of(session, runtime.verification.attempts_left(session))


@router.get("/{session_id}", response_model=S.SessionView)
def get_session(session_id: str, runtime: RuntimeDep, caller: Terminal):
    """The session's state, including the prompt the terminal should show the customer right now."""
    session = runtime.verification.get(session_id)
    return S.SessionView.of(session, runtime.verification.attempts_left(session))


@router.post("/{session_id}/attempts", response_model=S.AttemptResult)
def attempt(session_id: str, runtime: RuntimeDep, caller: Terminal, body: S.AttemptRequest | None = None):
    """One verification attempt: capture, quality, liveness, match, fuse, decide."""
    out = runtime.verification.attempt(session_id, caller, body.finger if body else None)
    return S.AttemptResult.of(out, runtime.verification.attempts_left(out.session))


@router.delete("/{session_id}", response_model=S.SessionView)
def cancel_session(session_id: str, runtime: RuntimeDep, caller: Terminal):
    session = runtime.verification.cancel(session_id, caller)
    return S.SessionView.of(session, runtime.verification.attempts_left(session))
