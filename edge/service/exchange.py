"""Template exchange with a bank's central enrolment: a signed bundle per customer, bound to where it goes.

    bundle = sign_bundle(make_bundle(customer, templates, terminal_id, actor, for_customer, for_terminal), key)
    opened = open_bundle(bundle, key, customer_id=target, terminal_id=here)     # import: verified and bound

Bundle (JSON):
    {"format": "biogate-templates/2", "customer": {"id", "display_name", "card_refs"},
     "exported_at", "exported_by", "terminal_id",
     "for": {"customer_id": the customer it may be imported into, "terminal_id": a terminal id or "*"},
     "templates": [{"modality", "position", "sample_index", "format", "quality", "data": base64}, ...],
     "signature": {"alg": "HMAC-SHA256", "key_id", "value": hex}}

The signing key is the deployment's template signing key (`keys.template_signing_key`, the same on every
terminal of a bank that exchanges templates): the one key a daemon trusts for imports. A bundle signed for one
customer is refused for another (`input.bundle_wrong_customer`), one for another terminal likewise; version 1
bundles (no binding) and bare unsigned records are refused.

Face records are biogate face templates (`biogate-face-v1`, edge.biometrics.face.template); finger
records are ISO/IEC 19794-2:2005 minutiae records (`iso19794-2:2005`). The signature covers the
canonical JSON of everything but `signature`, keyed with the deployment's template signing key; an
edited, truncated or foreign bundle is refused before any record is read. Every record is then decoded
and checked by its own codec.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

from edge.audit.chain import canonical_json
from edge.errors import InputError
from edge.service.biometrics import TEMPLATE_FORMATS
from edge.store.base import Customer, StoredTemplate, iso, utcnow

BUNDLE_FORMAT = "biogate-templates/2"
ANY_TERMINAL = "*"
FORMATS = TEMPLATE_FORMATS


@dataclass
class TemplateRecord:
    modality: str
    position: str
    format: str
    data: bytes
    quality: float = 0.0
    sample_index: int = 0


def key_id(key: bytes) -> str:
    return "ts-" + hashlib.sha256(b"biogate-template-signing\0" + key).hexdigest()[:12]


@dataclass
class OpenedBundle:
    records: list[TemplateRecord]
    source: str                        # "<terminal_id>/<exported_by>" of the export


def make_bundle(customer: Customer, templates: list[StoredTemplate], terminal_id: str, actor: str,
                for_customer: str | None = None, for_terminal: str = ANY_TERMINAL) -> dict:
    return {
        "format": BUNDLE_FORMAT,
        "customer": {"id": customer.id, "display_name": customer.display_name, "card_refs": customer.card_refs},
        "exported_at": iso(utcnow()), "exported_by": actor, "terminal_id": terminal_id,
        "for": {"customer_id": for_customer or customer.id, "terminal_id": for_terminal},
        "templates": [{"modality": t.modality, "position": t.position, "sample_index": t.sample_index,
                       "format": t.format, "quality": t.quality,
                       "data": base64.b64encode(bytes(t.payload)).decode()} for t in templates],
    }


def _mac(body: dict, key: bytes) -> str:
    return hmac.new(key, canonical_json(body).encode(), hashlib.sha256).hexdigest()


def sign_bundle(bundle: dict, key: bytes) -> dict:
    body = {k: v for k, v in bundle.items() if k != "signature"}
    return {**body, "signature": {"alg": "HMAC-SHA256", "key_id": key_id(key), "value": _mac(body, key)}}


def open_bundle(bundle: dict, key: bytes, *, customer_id: str, terminal_id: str) -> OpenedBundle:
    """The records of a bundle whose signature checks out and which is bound to this customer on this terminal;
    InputError naming what is wrong otherwise."""
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        raise InputError(f"not a {BUNDLE_FORMAT} bundle", code="input.bundle_format")
    sig = bundle.get("signature")
    if not isinstance(sig, dict) or sig.get("alg") != "HMAC-SHA256" or not isinstance(sig.get("value"), str):
        raise InputError("bundle carries no HMAC-SHA256 signature", code="input.bundle_signature")
    body = {k: v for k, v in bundle.items() if k != "signature"}
    try:
        expected = _mac(body, key)
    except (TypeError, ValueError):
        raise InputError("bundle is not canonical JSON", code="input.bundle_format") from None
    if not hmac.compare_digest(expected, sig["value"]):
        raise InputError("bundle signature does not verify (edited, or signed by another deployment)",
                         code="input.bundle_signature")
    bound = body.get("for")
    if not isinstance(bound, dict):
        raise InputError("bundle names no customer it is for", code="input.bundle_format")
    if bound.get("customer_id") != customer_id:
        raise InputError("this bundle was signed for another customer", code="input.bundle_wrong_customer")
    if bound.get("terminal_id") not in (ANY_TERMINAL, terminal_id):
        raise InputError("this bundle was signed for another terminal", code="input.bundle_wrong_terminal")
    items = body.get("templates")
    if not isinstance(items, list) or not items:
        raise InputError("bundle holds no templates", code="input.bundle_format")
    return OpenedBundle([record_from_dict(item, i) for i, item in enumerate(items)],
                        f"{body.get('terminal_id')}/{body.get('exported_by')}")


def record_from_dict(item: dict, index: int = 0) -> TemplateRecord:
    where = f"template {index}"
    if not isinstance(item, dict):
        raise InputError(f"{where}: not an object", code="input.bundle_format")
    modality = item.get("modality")
    if modality not in FORMATS:
        raise InputError(f"{where}: modality must be face or finger", code="input.bundle_format")
    if item.get("format") != FORMATS[modality]:
        raise InputError(f"{where}: {modality} records must be {FORMATS[modality]}", code="input.bundle_format")
    try:
        data = base64.b64decode(str(item.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{where}: data is not base64", code="input.bundle_format") from None
    position = str(item.get("position") or ("face" if modality == "face" else ""))
    if not position:
        raise InputError(f"{where}: a finger record needs its finger position", code="input.bundle_format")
    try:
        quality = float(item.get("quality", 0) or 0)
        sample_index = int(item.get("sample_index", index) or 0)
    except (TypeError, ValueError):
        raise InputError(f"{where}: quality/sample_index must be numbers", code="input.bundle_format") from None
    return TemplateRecord(modality, position, FORMATS[modality], data, quality, sample_index)
