"""What auditors read: decisions, the audit log and its verification, evidence (each crop read is audited)."""
from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import Response

from edge.service import schemas as S
from edge.service.deps import Auditor, RuntimeDep
from edge.service.errors import ERROR_RESPONSES

router = APIRouter(prefix="/v1", tags=["audit"], responses=ERROR_RESPONSES)


@router.get("/decisions", response_model=list[S.DecisionView])
def decisions(runtime: RuntimeDep, caller: Auditor, card_ref: str | None = Query(None, max_length=64),
              limit: int = Query(100, ge=1, le=1000)):
    return [S.DecisionView(**r.__dict__) for r in runtime.records.decisions(limit=limit, card_ref=card_ref)]


@router.get("/audit", response_model=list[S.AuditEntryView])
def audit_entries(runtime: RuntimeDep, caller: Auditor, after_seq: int = Query(0, ge=0, le=2**62),
                  limit: int = Query(100, ge=1, le=1000)):
    return [S.AuditEntryView(**e.to_dict()) for e in runtime.records.audit_entries(after_seq, limit)]


@router.get("/audit/verify", response_model=S.AuditVerifyView)
def audit_verify(runtime: RuntimeDep, caller: Auditor):
    return S.AuditVerifyView(**runtime.records.verify().to_dict())


@router.get("/evidence", response_model=list[S.EvidenceView])
def list_evidence(runtime: RuntimeDep, caller: Auditor, decision_id: str | None = Query(None, max_length=80),
                  limit: int = Query(100, ge=1, le=1000)):
    return [S.EvidenceView(**{k: v for k, v in m.__dict__.items() if k != "key_id"})
            for m in runtime.records.evidence(decision_id, limit)]


@router.get("/evidence/{evidence_id}", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}, **ERROR_RESPONSES})
def read_evidence(evidence_id: str, runtime: RuntimeDep, caller: Auditor):
    """The evidence face crop (JPEG). Every read is written to the audit log first."""
    meta, data = runtime.records.read_evidence(evidence_id, caller)
    return Response(data, media_type=meta.media_type, headers={"Cache-Control": "no-store"})
