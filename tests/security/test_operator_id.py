"""Issue 14, finding 12: X-Operator-Id was free text from any caller (a terminal key wrote the actor
`terminal:auditor-...`). Against a real daemon over HTTP with a real SQLite file: only keys of roles acting for
a named operator may name one, the name must be an active account of that key's role, and the audit keeps the
key's role apart from the console's own sign-ins."""
from __future__ import annotations

import pytest

from edge.service.operators import OperatorAccounts
from edge.service.server import DaemonThread
from tests.service.conftest import KEYS, client, make_config

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    with DaemonThread(make_config(tmp_path_factory.mktemp("opid"))) as d:
        accounts = OperatorAccounts(d.runtime.store, d.runtime.cfg.console)
        accounts.add("tina", "teller", "a long enough password", actor="admin:test")
        accounts.add("olga", "teller", "a long enough password", actor="admin:test")
        accounts.set_status("olga", "disabled", actor="admin:test")
        accounts.add("aldo", "auditor", "a long enough password", actor="admin:test")
        yield d


def _session(url, role, operator):
    return client(url, role).post("/v1/sessions", headers={"X-Operator-Id": operator},
                                  json={"operation": "balance_inquiry", "amount": "0", "currency": "EUR",
                                        "card_ref": "card-op"})


def _actors(url) -> list[str]:
    return [e["actor"] for e in client(url, "auditor").get("/v1/audit", params={"limit": 1000}).json()]


def test_a_terminal_key_names_nobody(daemon):
    r = _session(daemon.url, "terminal", "aldo")
    assert r.status_code == 403 and r.json()["error"]["code"] == "auth.operator_not_allowed"
    assert not any("aldo" in a for a in _actors(daemon.url) if a.startswith("terminal"))


@pytest.mark.parametrize("name", ["auditor-x'; DROP", "Tina", "t", "tina\u200b", "ｔｉｎａ", "a" * 40])
def test_malformed_operator_names_are_refused_not_rewritten(daemon, name):
    r = client(daemon.url, "teller").get("/v1/lockouts", headers={"X-Operator-Id": name.encode("utf-8")})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "input.invalid_operator_name"


@pytest.mark.parametrize("name", ["nobody", "olga", "aldo"])   # unknown, disabled, another role's account
def test_only_an_active_account_of_the_keys_role_may_be_named(daemon, name):
    r = _session(daemon.url, "teller", name)
    assert r.status_code == 403 and r.json()["error"]["code"] == "auth.unknown_operator"


def test_the_audit_keeps_the_keys_role_apart_from_the_named_operator(daemon):
    r = _session(daemon.url, "teller", "tina")
    assert r.status_code == 201, r.text
    actors = _actors(daemon.url)
    assert "teller-key:tina" in actors          # a teller key that named tina, not tina's own sign-in
    assert "teller:tina" not in actors
    r = client(daemon.url, "terminal").post("/v1/sessions", json={"operation": "balance_inquiry", "amount": "0",
                                                                  "currency": "EUR", "card_ref": "card-op"})
    assert r.status_code == 201
    assert _actors(daemon.url)[-1] == "terminal"
    assert KEYS["teller"] not in " ".join(actors)
