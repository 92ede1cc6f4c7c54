"""Roles and API keys: every endpoint names the roles that may call it.

    terminal  the ATM application: opens and runs verification sessions
    teller    cash-desk staff: enrols customers, assisted verification, sees and resets lockouts
    auditor   reads decisions, the audit log and evidence (and nothing else reads evidence)
    admin     operations: key rotation, retention, template export, customer erasure
    investigator  cash-out network scans and 1:N face search, with purpose and case reference (edge.search);
              identities behind its pseudonyms only with an auditor's approval

A caller sends its key in `X-API-Key` (or `Authorization: Bearer <key>`). Keys are compared in constant
time; the role is found by which key matched. Unknown or missing key: 401; known key, wrong role: 403.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass

from edge.errors import AuthError, ForbiddenError

ROLES = ("terminal", "teller", "auditor", "admin", "investigator")


@dataclass(frozen=True)
class Caller:
    role: str
    operator: str | None = None   # X-Operator-Id: which teller/auditor at the desk (for audit)

    @property
    def actor(self) -> str:
        return f"{self.role}:{self.operator}" if self.operator else self.role


class KeyChecker:
    def __init__(self, api_keys: dict[str, str]):
        self._keys = [(role, key.encode()) for role, key in api_keys.items() if role in ROLES]

    def role_for(self, presented: str | None) -> str:
        if not presented:
            raise AuthError("an API key is required (X-API-Key header)", code="auth.missing_key")
        given = presented.encode()
        found = None
        for role, key in self._keys:  # no early exit: the time taken does not reveal which role matched
            if hmac.compare_digest(given, key):
                found = role
        if found is None:
            raise AuthError("unknown API key", code="auth.invalid_key")
        return found


def check_role(role: str, allowed: tuple[str, ...]) -> None:
    if role not in allowed:
        raise ForbiddenError(f"role '{role}' may not call this endpoint (allowed: {', '.join(allowed)})",
                             code="auth.forbidden_role")
