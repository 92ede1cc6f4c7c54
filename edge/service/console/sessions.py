"""Console sign-in sessions: an HttpOnly, SameSite=Strict cookie naming a session held in memory.

    session = sessions.open(operator)          # after OperatorAccounts.authenticate
    session = sessions.get(cookie_value)        # None when unknown or idle past console.idle_timeout_s
    session.check_csrf(form_token)              # every form post carries the session's CSRF token

- The cookie holds a random 256-bit token; the daemon keeps only its SHA-256, so the table of sessions
  cannot be replayed from memory.
- Idle timeout: a session not used for `idle_timeout_s` is gone; its next request is sent to sign in again.
- CSRF: a synchronizer token per session, compared in constant time on every POST (SameSite=Strict is the
  second wall, not the only one). Before sign-in, the login form carries a token of its own bound to a
  short-lived cookie (`LOGIN_CSRF_COOKIE`), so a foreign page cannot sign a browser in as someone else.
- A session gives the services a `Caller` with the operator's role and name: what they audit under.
- An account disabled, re-roled or given a new password after the session began ends the session at its
  next request (the desk checks the account each time: `ConsoleDesk.session`).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from edge.errors import AuthError
from edge.service.auth import Caller
from edge.store.base import iso, utcnow

SESSION_COOKIE = "biogate_console"
LOGIN_CSRF_COOKIE = "biogate_login_csrf"
LANGUAGE_COOKIE = "biogate_lang"
CSRF_FIELD = "csrf_token"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


@dataclass
class ConsoleSession:
    operator: str
    role: str
    csrf: str
    started: float
    last_seen: float
    key: str = field(repr=False, default="")
    signed_in_at: str = ""           # wall-clock ISO time, compared with the account's password_changed_at

    @property
    def caller(self) -> Caller:
        return Caller(self.role, self.operator)

    def check_csrf(self, given: str | None) -> None:
        if not same_token(self.csrf, given):
            raise AuthError("the form's CSRF token is missing or wrong", code="auth.csrf")


class ConsoleSessions:
    def __init__(self, idle_timeout_s: float, clock: Callable[[], float] = time.monotonic):
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock
        self._sessions: dict[str, ConsoleSession] = {}
        self._lock = threading.Lock()

    def open(self, operator: str, role: str) -> tuple[str, ConsoleSession]:
        """A new session: (the cookie value, the session)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        session = ConsoleSession(operator, role, secrets.token_urlsafe(32), now, now, _digest(token), iso(utcnow()))
        with self._lock:
            self._drop_idle(now)
            self._sessions[session.key] = session
        return token, session

    def get(self, token: str | None) -> ConsoleSession | None:
        """The live session for this cookie value (and it counts as used now), or None."""
        if not token:
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.get(_digest(token))
            if session is None:
                return None
            if now - session.last_seen > self.idle_timeout_s:
                del self._sessions[session.key]
                return None
            session.last_seen = now
            return session

    def close(self, token: str | None) -> ConsoleSession | None:
        if not token:
            return None
        with self._lock:
            return self._sessions.pop(_digest(token), None)

    def close_operator(self, operator: str) -> int:
        """End every session of one operator (disabled, password reset)."""
        with self._lock:
            keys = [k for k, s in self._sessions.items() if s.operator == operator]
            for k in keys:
                del self._sessions[k]
        return len(keys)

    def _drop_idle(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if now - s.last_seen > self.idle_timeout_s]:
            del self._sessions[key]
