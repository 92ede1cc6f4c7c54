"""Customers and enrolment at the teller desk; template exchange; duplicate review; erasure."""
from __future__ import annotations

from fastapi import APIRouter, Query

from edge.service import schemas as S
from edge.service.deps import Admin, RuntimeDep, Teller, TellerOrAdmin
from edge.service.errors import ERROR_RESPONSES

router = APIRouter(prefix="/v1/customers", tags=["enrolment"], responses=ERROR_RESPONSES)


def customer_view(runtime, customer_id: str) -> S.CustomerView:
    return S.CustomerView.of(*runtime.enrolment.customer(customer_id))


@router.post("", response_model=S.CustomerView, status_code=201)
def create_customer(body: S.CreateCustomerRequest, runtime: RuntimeDep, caller: Teller):
    c = runtime.enrolment.create_customer(body.display_name, body.card_refs, body.consent.purpose,
                                          list(body.consent.modalities), body.consent.given_by, caller)
    return customer_view(runtime, c.id)


@router.get("/{customer_id}", response_model=S.CustomerView)
def get_customer(customer_id: str, runtime: RuntimeDep, caller: TellerOrAdmin):
    return customer_view(runtime, customer_id)


@router.post("/{customer_id}/enrol/face", response_model=S.EnrolmentResult)
def enrol_face(customer_id: str, runtime: RuntimeDep, caller: Teller, body: S.EnrolFaceRequest | None = None):
    added, captures, dups = runtime.enrolment.enrol_face(customer_id, body.samples if body else None, caller)
    return S.EnrolmentResult(customer=customer_view(runtime, customer_id), added=added,
                             captures=[S.CaptureLog(**c) for c in captures], duplicate_of=dups)


@router.post("/{customer_id}/enrol/finger", response_model=S.EnrolmentResult)
def enrol_finger(customer_id: str, runtime: RuntimeDep, caller: Teller, body: S.EnrolFingerRequest | None = None):
    added, captures, dups = runtime.enrolment.enrol_finger(
        customer_id, list(body.positions) if body and body.positions else None,
        body.impressions if body else None, caller)
    return S.EnrolmentResult(customer=customer_view(runtime, customer_id), added=added,
                             captures=[S.CaptureLog(**c) for c in captures], duplicate_of=dups)


@router.post("/{customer_id}/templates", response_model=S.EnrolmentResult, status_code=202)
def import_templates(customer_id: str, body: S.ImportRequest, runtime: RuntimeDep, caller: TellerOrAdmin):
    """Import templates from central enrolment: a signed biogate bundle bound to this customer. It is checked
    against the existing enrolment and held pending until a second operator approves it (`.../imports/{id}`)."""
    records = [r.model_dump() for r in body.records] if body.records is not None else None
    pending, dups = runtime.enrolment.import_templates(customer_id, body.bundle, records, caller)
    return S.EnrolmentResult(customer=customer_view(runtime, customer_id), added=0, duplicate_of=dups,
                             pending_import=S.ImportView(**pending.__dict__))


@router.get("/{customer_id}/imports", response_model=list[S.ImportView])
def list_imports(customer_id: str, runtime: RuntimeDep, caller: TellerOrAdmin):
    return [S.ImportView(**i.__dict__) for i in runtime.enrolment.imports(customer_id)]


@router.post("/{customer_id}/imports/{import_id}", response_model=S.ImportView)
def decide_import(customer_id: str, import_id: str, runtime: RuntimeDep, caller: TellerOrAdmin,
                  approve: bool = Query(..., description="true: the templates become usable; false: they are "
                                                         "deleted")):
    """The second operator's decision on a pending import (403 auth.same_operator for the one who asked)."""
    return S.ImportView(**runtime.enrolment.decide_import(customer_id, import_id, approve, caller).__dict__)


@router.get("/{customer_id}/templates/export")
def export_templates(customer_id: str, runtime: RuntimeDep, caller: Admin,
                     for_customer: str | None = Query(None, max_length=80, description="the customer id it may be "
                                                      "imported into (default: this one)"),
                     for_terminal: str = Query("*", max_length=64, description="the terminal it may be imported "
                                               "on (default: any terminal holding the deployment's signing key)")
                     ) -> dict:
    """A signed bundle of the customer's templates for central enrolment (admin only; audited)."""
    return runtime.enrolment.export(customer_id, caller, for_customer, for_terminal)


@router.post("/{customer_id}/review", response_model=S.CustomerView)
def resolve_review(customer_id: str, runtime: RuntimeDep, caller: Admin,
                   approve: bool = Query(..., description="true: not a duplicate; false: erase this enrolment"),
                   note: str = Query("", max_length=200)):
    runtime.enrolment.resolve_review(customer_id, approve, note, caller)
    return customer_view(runtime, customer_id)


@router.post("/{customer_id}/consent/withdraw", response_model=S.ErasureResult)
def withdraw_consent(customer_id: str, runtime: RuntimeDep, caller: TellerOrAdmin):
    """The customer withdraws consent: their biometric data is erased (GDPR Art. 7(3), 17)."""
    return S.ErasureResult.of(customer_id, runtime.enrolment.erase(customer_id, caller, reason="consent_withdrawn"))


@router.delete("/{customer_id}", response_model=S.ErasureResult)
def erase_customer(customer_id: str, runtime: RuntimeDep, caller: TellerOrAdmin):
    return S.ErasureResult.of(customer_id, runtime.enrolment.erase(customer_id, caller))
