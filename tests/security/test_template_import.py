"""Issue 14, finding 1: a template import must not take over a card.

The attack: a teller imported her own face into another customer's enrolment (unsigned records, or a bundle
signed for her own customer) and was then allowed a withdrawal on that customer's card. Imports are now signed
bundles bound to their customer (and terminal), checked against the existing enrolment, and held until a
second operator approves them.
"""
from __future__ import annotations

import pytest

from edge.service.operators import OperatorAccounts
from tests.security.conftest import attempt, audit_events, create_customer, db, enrol, open_session, show
from tests.service.conftest import KEYS, client

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(autouse=True)
def tellers(daemon):
    """Two teller accounts: the operator who asks for an import and the one who approves it."""
    accounts = OperatorAccounts(daemon.runtime.store, daemon.runtime.cfg.console)
    for name in ("tina", "olga"):
        accounts.add(name, "teller", "a long enough password", actor="admin:test")


def as_operator(url: str, role: str, name: str):
    c = client(url, role)
    c.headers["X-Operator-Id"] = name
    return c


def _export(d, customer_id: str, **params) -> dict:
    r = client(d.url, "admin").get(f"/v1/customers/{customer_id}/templates/export", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _withdraw(d, card: str) -> dict:
    s = open_session(d.url, card)
    if s["status"] != "open":
        return s
    r = attempt(d.url, s["session_id"])
    assert r.status_code == 200, r.text
    return r.json()


def test_a_teller_cannot_import_her_face_into_another_customer(daemon):
    victim = enrol(daemon, "B. Obama", "card-victim", "example:obama")
    teller_self = enrol(daemon, "J. Biden (teller)", "card-teller", "example:biden")
    own = _export(daemon, teller_self)
    tina = as_operator(daemon.url, "teller", "tina")
    # 1. bare records, unsigned
    records = [{k: t[k] for k in ("modality", "position", "format", "data")} for t in own["templates"]]
    r = tina.post(f"/v1/customers/{victim}/templates", json={"records": records})
    assert r.status_code == 422 and r.json()["error"]["code"] == "input.import_unsigned", r.text
    # 2. a correctly signed bundle, but signed for her own customer
    r = tina.post(f"/v1/customers/{victim}/templates", json={"bundle": own})
    assert r.status_code == 422 and r.json()["error"]["code"] == "input.bundle_wrong_customer", r.text
    # 3. the binding edited to the victim: the signature no longer verifies
    r = tina.post(f"/v1/customers/{victim}/templates",
                  json={"bundle": {**own, "for": {"customer_id": victim, "terminal_id": "*"}}})
    assert r.status_code == 422 and r.json()["error"]["code"] == "input.bundle_signature", r.text
    # 4. a bundle bound to the victim by a colluding admin: it is not the enrolled person -> refused, flagged
    colluded = _export(daemon, teller_self, for_customer=victim)
    r = tina.post(f"/v1/customers/{victim}/templates", json={"bundle": colluded})
    assert r.status_code == 409 and r.json()["error"]["code"] == "enrolment.import_mismatch", r.text
    assert client(daemon.url, "teller").get(f"/v1/customers/{victim}").json()["status"] == "review"
    assert [e["details"]["customer_id"] for e in audit_events(daemon.url, "enrolment.import_mismatch")] == [victim]
    # 5. a bundle for another terminal
    elsewhere = _export(daemon, victim, for_terminal="ATM-OTHER")
    r = tina.post(f"/v1/customers/{victim}/templates", json={"bundle": elsewhere})
    assert r.status_code == 422 and r.json()["error"]["code"] == "input.bundle_wrong_terminal", r.text
    # the teller at the machine with the victim's card gets nothing
    show(daemon, "example:biden")
    outcome = _withdraw(daemon, "card-victim")
    assert outcome.get("outcome", outcome.get("status")) in ("deny", "refused"), outcome
    with db(daemon) as conn:
        assert conn.execute("SELECT COUNT(*) FROM templates WHERE customer_id = ?", (victim,)).fetchone()[0] == 3


def test_an_import_is_used_only_after_a_second_operator_approves_it(daemon):
    source = enrol(daemon, "B. Obama", "card-central", "example:obama")
    branch = create_customer(daemon.url, "B. Obama at the branch", "card-branch")
    bundle = _export(daemon, source, for_customer=branch)        # central enrolment's bundle for this customer
    r = client(daemon.url, "admin").post(f"/v1/customers/{source}/consent/withdraw")   # (not a duplicate here)
    assert r.status_code == 200, r.text
    tina, olga = as_operator(daemon.url, "teller", "tina"), as_operator(daemon.url, "teller", "olga")
    r = tina.post(f"/v1/customers/{branch}/templates", json={"bundle": bundle})
    assert r.status_code == 202, r.text
    pending = r.json()["pending_import"]
    assert pending["status"] == "pending" and pending["count"] == 3 and r.json()["added"] == 0
    show(daemon, "example:obama")
    s = open_session(daemon.url, "card-branch")          # not usable yet
    assert s["status"] == "refused" and "enrolment.no_face_templates" in s["reasons"], s
    # flipping the pending rows to active in the database does not help: the state is authenticated
    with db(daemon) as conn:
        conn.execute("UPDATE templates SET state = 'active' WHERE import_id = ?", (pending["id"],))
    s = open_session(daemon.url, "card-branch")
    assert s["status"] == "refused" and "storage.tampered" in s["reasons"], s
    with db(daemon) as conn:
        conn.execute("UPDATE templates SET state = 'pending' WHERE import_id = ?", (pending["id"],))
    # the requester cannot approve her own import; a second operator can
    r = tina.post(f"/v1/customers/{branch}/imports/{pending['id']}", params={"approve": "true"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "auth.same_operator", r.text
    r = olga.post(f"/v1/customers/{branch}/imports/{pending['id']}", params={"approve": "true"})
    assert r.status_code == 200 and r.json()["status"] == "approved" and r.json()["decided_by"].endswith(":olga")
    events = audit_events(daemon.url, "enrolment.import_approved")
    assert events and events[0]["details"]["requested_by"].endswith(":tina")
    r = olga.post(f"/v1/customers/{branch}/imports/{pending['id']}", params={"approve": "true"})
    assert r.status_code == 409, r.text
    assert KEYS


def test_an_import_of_the_enrolled_person_passes_the_check(daemon):
    cid = enrol(daemon, "B. Obama", "card-same", "example:obama")
    bundle = _export(daemon, cid)
    r = as_operator(daemon.url, "teller", "tina").post(f"/v1/customers/{cid}/templates", json={"bundle": bundle})
    assert r.status_code == 202 and r.json()["customer"]["status"] == "active", r.text
