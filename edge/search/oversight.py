"""Oversight of 1:N search: why a search runs, under which case, and who may see whom.

- Only the `investigator` role searches, and every search states a purpose and a case reference
  (`Investigation`); both go into the audit entry of the search.
- Results name people, cards and holders by pseudonyms keyed per scan (an HMAC under a random key kept sealed
  with the scan): the same customer has unrelated pseudonyms in two scans.
- Who is behind a pseudonym (identity, or the evidence crop of an attempt) is a second step: an investigator
  asks, an auditor approves, each step is its own audit entry, and the approver must be another person.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from edge.errors import ForbiddenError, InputError

CASE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{2,63}$")
INVESTIGATOR = "investigator"
AUDITOR = "auditor"


@dataclass(frozen=True)
class Investigation:
    purpose: str
    case_ref: str

    @classmethod
    def of(cls, purpose: str | None, case_ref: str | None) -> "Investigation":
        purpose = " ".join((purpose or "").split())
        if not 10 <= len(purpose) <= 300:
            raise InputError("a search states its purpose (10-300 characters)", code="search.purpose_required")
        if not CASE_REF.match(case_ref or ""):
            raise InputError("a search names its case reference (3-64 letters, digits, _ . / -)",
                             code="search.case_ref_required")
        return cls(purpose, str(case_ref))

    def audit_details(self) -> dict:
        return {"purpose": self.purpose, "case_ref": self.case_ref}


def require_role(role: str, allowed: str, what: str) -> None:
    """The search layer's own check, beneath the HTTP routes' (a CLI or a new route cannot forget it)."""
    if role != allowed:
        raise ForbiddenError(f"only the {allowed} role may {what}", code="auth.forbidden_role")


def require_person(actor: str) -> str:
    """The operator's name from an actor like `investigator:ivan`; a search is always one named person's."""
    role, _, name = actor.partition(":")
    if not name:
        raise ForbiddenError(f"{role} must name the operator (X-Operator-Id) for this step",
                             code="search.operator_required")
    return name


class Pseudonyms:
    """Stable pseudonyms within one scan: `P-`, `K-` (card), `H-` (holder) + 10 hex of an HMAC."""

    def __init__(self, key: bytes):
        self._key = key

    def of(self, kind: str, real: str) -> str:
        digest = hmac.new(self._key, f"{kind}|{real}".encode(), hashlib.sha256).hexdigest()[:10]
        return f"{kind}-{digest}"
