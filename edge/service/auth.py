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
import re
from dataclasses import dataclass

from edge.errors import AuthError, ForbiddenError, InputError

ROLES = ("terminal", "teller", "auditor", "admin", "investigator")


# Roles whose keys are used by desk applications acting for a person, who may name that person
# (X-Operator-Id). The terminal role is the ATM application's own and names nobody.
NAMING_ROLES = ("teller", "auditor", "admin", "investigator")
OPERATOR_ID_RULE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")    # edge.service.operators.NAME_RULE


@dataclass(frozen=True)
class Caller:
    role: str
    operator: str | None = None   # the person: a console account, or the operator an API key's caller named
    via_key: bool = False         # True: authenticated by an API key of `role`, the operator only named by it

    @property
    def actor(self) -> str:
        """Who the audit log records. A console session is the operator's own sign-in ("teller:tina"); a key's
        caller is the key's role, with the operator it named kept apart ("teller-key:tina")."""
        if not self.operator:
            return self.role
        return f"{self.role}-key:{self.operator}" if self.via_key else f"{self.role}:{self.operator}"


def named_operator(role: str, x_operator_id: str | None) -> str | None:
    """The operator an API-key caller names in X-Operator-Id, checked: only roles acting for a person may name
    one (403), and the name follows the operator-account rule (422). Whether the account exists is the
    daemon's check (edge.service.deps)."""
    if x_operator_id is None:
        return None
    if role not in NAMING_ROLES:
        raise ForbiddenError(f"a {role} key acts for no named operator: X-Operator-Id is not accepted from it",
                             code="auth.operator_not_allowed")
    if not OPERATOR_ID_RULE.match(x_operator_id):
        raise InputError("X-Operator-Id is an operator name: 2-32 lowercase letters, digits, '.', '_' or '-'",
                         code="input.invalid_operator_name")
    return x_operator_id


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


def presented_key(x_api_key: str | None, authorization: str | None) -> str | None:
    """The key a request presents: `X-API-Key`, else `Authorization: Bearer <key>`."""
    if x_api_key is None and authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return x_api_key


def check_role(role: str, allowed: tuple[str, ...]) -> None:
    if role not in allowed:
        raise ForbiddenError(f"role '{role}' may not call this endpoint (allowed: {', '.join(allowed)})",
                             code="auth.forbidden_role")
