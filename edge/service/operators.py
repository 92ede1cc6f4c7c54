"""Operator accounts: the people who sign in to the console (tellers, auditors, administrators).

    accounts = OperatorAccounts(store, cfg.console)
    accounts.add("alice", "teller", password, actor="admin:cli")      # biogate operators add alice --role teller
    operator = accounts.authenticate("alice", password)               # AuthError when wrong, locked or disabled

- Passwords are hashed with argon2id (argon2-cffi; RFC 9106 parameters below) and never stored or logged
  in clear. A hash made with older parameters is re-made at the next successful sign-in.
- `console.max_failed_logins` wrong passwords in a row lock the account for `console.login_lock_s` seconds
  (0: until an admin resets the password); an unknown name costs the same hashing time as a known one, so
  timing does not tell which names exist.
- Every change and every sign-in (good or bad) is an audit entry under the operator's name, written in the
  same transaction as the change (the store's `operators` table).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict
from typing import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from edge.config import ConsoleConfig
from edge.errors import AuthError, ForbiddenError, InputError, NotFoundError
from edge.store.base import OperatorAccount, Store, Transaction, iso, parse_iso, utcnow

# Roles a person can hold (the terminal role is the ATM application's, never a person's).
OPERATOR_ROLES = ("teller", "auditor", "admin", "investigator")
NAME_RULE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256

# argon2id, RFC 9106 section 4 second recommended option (t=3, 64 MiB), one lane: the terminal has 2 cores
# and other work to do; a sign-in costs about a tenth of a second here.
HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1, hash_len=32, salt_len=16)
_DUMMY_HASH = HASHER.hash("not a password of anyone")  # verified against for unknown names (same cost)


Operator = OperatorAccount


def public(o: OperatorAccount) -> dict:
    """What may be shown or printed of an account: everything but the hash."""
    return {k: v for k, v in asdict(o).items() if k != "password_hash"}


def check_name(name: str) -> str:
    if not NAME_RULE.match(name or ""):
        raise InputError("an operator name is 2-32 lowercase letters, digits, '.', '_' or '-'",
                         code="input.invalid_operator_name")
    return name


def check_password(password: str) -> str:
    if not (MIN_PASSWORD_LENGTH <= len(password or "") <= MAX_PASSWORD_LENGTH):
        raise InputError(f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
                         code="input.weak_password")
    return password


class OperatorAccounts:
    def __init__(self, store: Store, cfg: ConsoleConfig, clock: Callable[[], dt.datetime] = utcnow):
        self.store = store
        self.cfg = cfg
        self.clock = clock

    # -- administration (the CLI) -------------------------------------------------------------------
    def add(self, name: str, role: str, password: str, actor: str) -> Operator:
        check_name(name)
        if role not in OPERATOR_ROLES:
            raise InputError(f"role must be one of {', '.join(OPERATOR_ROLES)}", code="input.invalid_role")
        hashed = HASHER.hash(check_password(password))
        now = iso(self.clock())
        operator = Operator(name, role, hashed, now, password_changed_at=now)
        with self.store.transaction() as tx:
            tx.add_operator(operator)         # input.operator_exists when taken
            tx.audit(actor, "operator.added", {"operator": name, "role": role})
        return operator

    def list(self) -> list[Operator]:
        with self.store.transaction() as tx:
            return tx.list_operators()

    def get(self, name: str) -> Operator:
        with self.store.transaction() as tx:
            return _existing(tx, name)

    def check_named(self, name: str, role: str) -> None:
        """An API key's caller may name only an active account of the key's own role (X-Operator-Id):
        the audit never carries a name nobody holds, nor a teller's name under an auditor's key."""
        with self.store.transaction() as tx:
            found = tx.get_operator(name)
        if found is None or found.role != role or found.status != "active":
            raise ForbiddenError(f"X-Operator-Id names no active {role} account", code="auth.unknown_operator")

    def set_status(self, name: str, status: str, actor: str) -> Operator:
        if status not in ("active", "disabled"):
            raise InputError("status is active or disabled", code="input.invalid")
        with self.store.transaction() as tx:
            operator = _existing(tx, name)
            operator.status = status
            tx.put_operator(operator)
            tx.audit(actor, f"operator.{'disabled' if status == 'disabled' else 'enabled'}", {"operator": name})
        return operator

    def reset_password(self, name: str, password: str, actor: str) -> Operator:
        """A new password; also lifts a lock from wrong passwords."""
        hashed = HASHER.hash(check_password(password))
        with self.store.transaction() as tx:
            operator = _existing(tx, name)
            operator.password_hash, operator.password_changed_at = hashed, iso(self.clock())
            operator.failed_logins, operator.locked_until = 0, None
            tx.put_operator(operator)
            tx.audit(actor, "operator.password_reset", {"operator": name})
        return operator

    # -- sign-in --------------------------------------------------------------------------------------
    def authenticate(self, name: str, password: str) -> Operator:
        """The operator, when `password` is theirs and the account is usable; AuthError otherwise (audited).

        The hash is checked outside any transaction (it takes a tenth of a second); the outcome is then
        written with its audit entry in one transaction."""
        now = self.clock()
        with self.store.transaction() as tx:
            operator = tx.get_operator(name) if NAME_RULE.match(name or "") else None
        refusal = None
        if operator is None:
            _verify(_DUMMY_HASH, password)
            refusal = ("unknown", "auth.bad_credentials", "wrong name or password")
        elif operator.status != "active":
            _verify(_DUMMY_HASH, password)
            refusal = ("disabled", "auth.account_disabled", "this account is disabled")
        elif operator.locked_until and (self.cfg.login_lock_s == 0 or parse_iso(operator.locked_until) > now):
            _verify(_DUMMY_HASH, password)
            refusal = ("locked", "auth.account_locked", "this account is locked after repeated wrong passwords")
        elif not _verify(operator.password_hash, password):
            refusal = ("wrong_password", "auth.bad_credentials", "wrong name or password")
        with self.store.transaction() as tx:
            if refusal is None:
                operator = tx.get_operator(name)
                if HASHER.check_needs_rehash(operator.password_hash):
                    operator.password_hash = HASHER.hash(password)
                operator.failed_logins, operator.locked_until, operator.last_login_at = 0, None, iso(now)
                tx.put_operator(operator)
                tx.audit(f"{operator.role}:{name}", "operator.signed_in", {"operator": name})
                return operator
            reason, code, message = refusal
            details = {"operator": (name or "")[:32], "reason": reason}
            if reason == "wrong_password":
                operator = tx.get_operator(name)
                operator.failed_logins += 1
                details["failures_in_a_row"] = operator.failed_logins
                if operator.failed_logins >= self.cfg.max_failed_logins:
                    operator.locked_until = iso(now + dt.timedelta(seconds=self.cfg.login_lock_s))
                    code, message = "auth.account_locked", "this account is locked after repeated wrong passwords"
                tx.put_operator(operator)
            tx.audit("console", "operator.sign_in_failed", details)
            if code == "auth.account_locked" and reason == "wrong_password":
                tx.audit("system:console", "operator.locked", {"operator": name,
                                                               "failures_in_a_row": operator.failed_logins})
        raise AuthError(message, code=code)


def _existing(tx: Transaction, name: str) -> Operator:
    found = tx.get_operator(name)
    if found is None:
        raise NotFoundError(f"no operator {name}", code="input.unknown_operator")
    return found


def _verify(hashed: str, password: str) -> bool:
    try:
        return HASHER.verify(hashed, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
