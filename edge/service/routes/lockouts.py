"""Lockouts: the cash desk sees locked cards and resets one after checking the customer's identity document."""
from __future__ import annotations

from fastapi import APIRouter, Path, Query

from edge.service import schemas as S
from edge.service.deps import RuntimeDep, Teller, TellerOrAuditor
from edge.service.errors import ERROR_RESPONSES
from edge.store.base import utcnow

router = APIRouter(prefix="/v1/lockouts", tags=["lockouts"], responses=ERROR_RESPONSES)


@router.get("", response_model=list[S.LockoutView])
def list_lockouts(runtime: RuntimeDep, caller: TellerOrAuditor,
                  active: bool = Query(True, description="only cards locked now")):
    now = utcnow()
    return [S.LockoutView.of(st, now) for st in runtime.lockouts.list(active_only=active)]


@router.post("/{card_ref}/reset", response_model=S.LockoutView)
def reset_lockout(runtime: RuntimeDep, caller: Teller,
                  card_ref: str = Path(pattern=S.CARD_REF_PATTERN),
                  identity_checked: bool = Query(..., description="the teller checked an identity document")):
    return S.LockoutView.of(runtime.lockouts.reset(card_ref, identity_checked, caller), utcnow())
