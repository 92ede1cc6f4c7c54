"""Operator accounts: the people who sign in to the console (tellers, auditors, administrators).

    accounts = OperatorAccounts(OperatorFile(path), store, cfg.console)
    accounts.add("alice", "teller", password, actor="admin:cli")      # biogate operators add alice --role teller
    operator = accounts.authenticate("alice", password)               # AuthError when wrong, locked or disabled

- Passwords are hashed with argon2id (argon2-cffi; RFC 9106 parameters below) and never stored or logged
  in clear. A hash made with older parameters is re-made at the next successful sign-in.
- `console.max_failed_logins` wrong passwords in a row lock the account for `console.login_lock_s` seconds
  (0: until an admin resets the password); an unknown name costs the same hashing time as a known one, so
  timing does not tell which names exist.
- Every change and every sign-in (good or bad) is an audit entry under the operator's name.

Where accounts are kept: `OperatorFile`, a JSON file (0600) in the state directory, until the store has an
operators table (the store is being reshaped into one SQL implementation; the table follows it).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from edge.config import ConsoleConfig
from edge.errors import AuthError, ConflictError, InputError, NotFoundError
from edge.store.base import Store, iso, parse_iso, utcnow

# Roles a person can hold (the terminal role is the ATM application's, never a person's).
OPERATOR_ROLES = ("teller", "auditor", "admin")
NAME_RULE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256

# argon2id, RFC 9106 section 4 second recommended option (t=3, 64 MiB), one lane: the terminal has 2 cores
# and other work to do; a sign-in costs about a tenth of a second here.
HASHER = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1, hash_len=32, salt_len=16)
_DUMMY_HASH = HASHER.hash("not a password of anyone")  # verified against for unknown names (same cost)


@dataclass
class Operator:
    name: str
    role: str
    password_hash: str
    created_at: str
    status: str = "active"               # active | disabled
    failed_logins: int = 0               # wrong passwords in a row
    locked_until: str | None = None      # set when failed_logins reached the limit
    password_changed_at: str = ""
    last_login_at: str | None = None

    def public(self) -> dict:
        """What may be shown or printed: everything but the hash."""
        return {k: v for k, v in asdict(self).items() if k != "password_hash"}


class OperatorFile:
    """Operator accounts in one JSON file (written whole, atomically, mode 0600)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def load(self) -> dict[str, Operator]:
        if not self.path.exists():
            return {}
        try:
            raw = json.loads(self.path.read_text())
            return {name: Operator(**fields) for name, fields in raw.get("operators", {}).items()}
        except (OSError, ValueError, TypeError) as exc:
            raise InputError(f"the operators file {self.path} is unreadable: {exc}", code="config.invalid") from None

    def update(self, change: Callable[[dict[str, Operator]], object]):
        """Load, apply `change` (which edits the dict in place), write back; returns what `change` returned."""
        with self._lock:
            operators = self.load()
            result = change(operators)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"operators": {n: asdict(o) for n, o in sorted(operators.items())}}, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            return result


def operators_path(state_dir: Path) -> Path:
    return Path(state_dir) / "operators.json"


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
    def __init__(self, repository: OperatorFile, store: Store, cfg: ConsoleConfig,
                 clock: Callable[[], dt.datetime] = utcnow):
        self.repository = repository
        self.store = store
        self.cfg = cfg
        self.clock = clock

    def _audit(self, actor: str, event: str, details: dict) -> None:
        with self.store.transaction() as tx:
            tx.audit(actor, event, details)

    # -- administration (the CLI) -------------------------------------------------------------------
    def add(self, name: str, role: str, password: str, actor: str) -> Operator:
        check_name(name)
        if role not in OPERATOR_ROLES:
            raise InputError(f"role must be one of {', '.join(OPERATOR_ROLES)}", code="input.invalid_role")
        hashed = HASHER.hash(check_password(password))
        now = iso(self.clock())

        def change(ops: dict[str, Operator]) -> Operator:
            if name in ops:
                raise ConflictError(f"operator {name} already exists", code="input.operator_exists")
            ops[name] = Operator(name, role, hashed, now, password_changed_at=now)
            return ops[name]
        operator = self.repository.update(change)
        self._audit(actor, "operator.added", {"operator": name, "role": role})
        return operator

    def list(self) -> list[Operator]:
        return sorted(self.repository.load().values(), key=lambda o: o.name)

    def get(self, name: str) -> Operator:
        found = self.repository.load().get(name)
        if found is None:
            raise NotFoundError(f"no operator {name}", code="input.unknown_operator")
        return found

    def _edit(self, name: str, edit: Callable[[Operator], None]) -> Operator:
        def change(ops: dict[str, Operator]) -> Operator:
            if name not in ops:
                raise NotFoundError(f"no operator {name}", code="input.unknown_operator")
            edit(ops[name])
            return ops[name]
        return self.repository.update(change)

    def set_status(self, name: str, status: str, actor: str) -> Operator:
        if status not in ("active", "disabled"):
            raise InputError("status is active or disabled", code="input.invalid")
        operator = self._edit(name, lambda o: setattr(o, "status", status))
        self._audit(actor, f"operator.{'disabled' if status == 'disabled' else 'enabled'}", {"operator": name})
        return operator

    def reset_password(self, name: str, password: str, actor: str) -> Operator:
        """A new password; also lifts a lock from wrong passwords."""
        hashed = HASHER.hash(check_password(password))
        now = iso(self.clock())

        def edit(o: Operator) -> None:
            o.password_hash, o.password_changed_at, o.failed_logins, o.locked_until = hashed, now, 0, None
        operator = self._edit(name, edit)
        self._audit(actor, "operator.password_reset", {"operator": name})
        return operator

    # -- sign-in --------------------------------------------------------------------------------------
    def authenticate(self, name: str, password: str) -> Operator:
        """The operator, when `password` is theirs and the account is usable; AuthError otherwise (audited)."""
        now = self.clock()
        operator = self.repository.load().get(name) if NAME_RULE.match(name or "") else None
        if operator is None:
            _verify(_DUMMY_HASH, password)
            self._audit("console", "operator.sign_in_failed", {"operator": (name or "")[:32], "reason": "unknown"})
            raise AuthError("wrong name or password", code="auth.bad_credentials")
        if operator.status != "active":
            _verify(_DUMMY_HASH, password)
            self._audit("console", "operator.sign_in_failed", {"operator": name, "reason": "disabled"})
            raise AuthError("this account is disabled", code="auth.account_disabled")
        if operator.locked_until and (self.cfg.login_lock_s == 0 or parse_iso(operator.locked_until) > now):
            _verify(_DUMMY_HASH, password)
            self._audit("console", "operator.sign_in_failed", {"operator": name, "reason": "locked"})
            raise AuthError("this account is locked after repeated wrong passwords", code="auth.account_locked")
        if not _verify(operator.password_hash, password):
            locked = self._edit(name, lambda o: _count_failure(o, now, self.cfg))
            self._audit("console", "operator.sign_in_failed", {"operator": name, "reason": "wrong_password",
                                                               "failures_in_a_row": locked.failed_logins})
            if locked.locked_until:
                self._audit("system:console", "operator.locked", {"operator": name,
                                                                  "failures_in_a_row": locked.failed_logins})
                raise AuthError("this account is locked after repeated wrong passwords", code="auth.account_locked")
            raise AuthError("wrong name or password", code="auth.bad_credentials")
        rehash = HASHER.check_needs_rehash(operator.password_hash)
        new_hash = HASHER.hash(password) if rehash else operator.password_hash

        def signed_in(o: Operator) -> None:
            o.failed_logins, o.locked_until, o.last_login_at, o.password_hash = 0, None, iso(now), new_hash
        operator = self._edit(name, signed_in)
        self._audit(f"{operator.role}:{name}", "operator.signed_in", {"operator": name})
        return operator


def _count_failure(o: Operator, now: dt.datetime, cfg: ConsoleConfig) -> None:
    o.failed_logins += 1
    if o.failed_logins >= cfg.max_failed_logins:
        o.locked_until = iso(now + dt.timedelta(seconds=cfg.login_lock_s))


def _verify(hashed: str, password: str) -> bool:
    try:
        return HASHER.verify(hashed, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
