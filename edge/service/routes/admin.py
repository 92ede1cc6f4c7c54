"""Operations: retention."""
from __future__ import annotations

from fastapi import APIRouter

from edge.service import schemas as S
from edge.service.deps import Admin, RuntimeDep
from edge.service.errors import ERROR_RESPONSES

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=ERROR_RESPONSES)


@router.post("/evidence/purge", response_model=S.PurgeResult)
def purge(runtime: RuntimeDep, caller: Admin):
    return S.PurgeResult(purged=len(runtime.purge_evidence(actor=caller.actor)))
