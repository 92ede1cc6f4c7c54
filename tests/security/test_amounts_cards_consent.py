"""Issue 14, findings 9 and 14, against a real daemon over HTTP on 127.0.0.1 with a real SQLite file.

9: amounts the dispense token cannot carry (0, 100.001, 0.0001 EUR) used to pass the schema, run the
   biometrics and then fail token creation with no decision (a silent match oracle): now 422 at open.
14: amounts with Unicode digits or `1_000` were accepted; one card-reference rule for enrolment and
   sessions; the consent's `given_by` was dropped while the audit claimed `signed_by_customer: true`.
"""
from __future__ import annotations

import sqlite3

import pytest

from edge.service.server import DaemonThread
from tests.service.conftest import client, make_config
from tests.service.test_api_face import FACE_ONLY, enrol

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    from edge.config import load_config
    if not (load_config(env={}).paths.models_dir / "examples").is_dir():
        pytest.skip("example images not built (run `make models`)")
    with DaemonThread(make_config(tmp_path_factory.mktemp("amounts"), FACE_ONLY)) as d:
        enrol(d.url, card="card-amounts")
        yield d


def _open(url, amount, currency="EUR", card="card-amounts", operation="cash_withdrawal"):
    return client(url, "terminal").post("/v1/sessions", json={"operation": operation, "amount": amount,
                                                               "currency": currency, "card_ref": card})


def _audit_events(url) -> list[dict]:
    return client(url, "auditor").get("/v1/audit", params={"limit": 1000}).json()


@pytest.mark.parametrize("amount", ["0", "100.001", "0.0001", "0.00"])
def test_amount_the_token_cannot_carry_is_refused_at_open(daemon, amount):
    before = len(client(daemon.url, "auditor").get("/v1/decisions", params={"limit": 500}).json())
    r = _open(daemon.url, amount)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "input.amount"
    # nothing ran: no session to attempt, no decision
    after = len(client(daemon.url, "auditor").get("/v1/decisions", params={"limit": 500}).json())
    assert after == before


def test_minor_units_follow_the_currency(daemon):
    assert _open(daemon.url, "100.50", "EUR").status_code == 201
    r = _open(daemon.url, "0", "EUR", operation="card_load")
    assert r.status_code == 201, r.text      # card_load dispenses nothing: zero is a valid amount for it
    assert r.json()["status"] == "allowed", r.json()
    r = _open(daemon.url, "10.005", "EUR", operation="card_load")
    assert r.status_code == 422 and r.json()["error"]["code"] == "input.amount"


@pytest.mark.parametrize("amount", ["١٠٠", "1_000", "１００", "1e2", "-5", " 5", "5 ", "+5", "NaN", "Infinity", 12.5,
                                    True])
def test_amount_text_is_ascii_decimal_only(daemon, amount):
    r = _open(daemon.url, amount)
    assert r.status_code == 422, (amount, r.text)
    assert r.json()["error"]["code"] == "input.invalid_request"


def test_integer_amounts_still_work(daemon):
    r = _open(daemon.url, 100)
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == "100"


@pytest.mark.parametrize("ref", ["café-1", "карта-7", "١٢٣", "card 1", "ｃａｒｄ", "a" * 65, ""])
def test_one_card_reference_rule_for_enrolment_and_sessions(daemon, ref):
    teller = client(daemon.url, "teller")
    enrol_r = teller.post("/v1/customers", json={
        "display_name": "Someone", "card_refs": [ref],
        "consent": {"purpose": "ATM cash withdrawal verification", "modalities": ["face"], "given_by": "Someone"}})
    session_r = _open(daemon.url, "10", card=ref)
    # the same answer from both: a reference enrolment takes can always be verified, and vice versa
    assert enrol_r.status_code == session_r.status_code == 422, (enrol_r.text, session_r.text)


def test_a_card_reference_enrolment_accepts_opens_a_session(daemon):
    ref = "Card.9_x:Z-0"
    teller = client(daemon.url, "teller")
    r = teller.post("/v1/customers", json={
        "display_name": "Ref Rule", "card_refs": [ref],
        "consent": {"purpose": "ATM cash withdrawal verification", "modalities": ["face"], "given_by": "Ref Rule"}})
    assert r.status_code == 201, r.text
    s = _open(daemon.url, "10", card=ref)
    assert s.status_code == 201 and s.json()["card_ref"] == ref


def test_consent_given_by_is_kept_and_audited_truthfully(daemon):
    teller = client(daemon.url, "teller")
    own = teller.post("/v1/customers", json={
        "display_name": "Aigerim  Nurlanovna", "card_refs": ["card-consent-own"],
        "consent": {"purpose": "ATM cash withdrawal verification", "modalities": ["face"],
                    "given_by": "aigerim nurlanovna"}})
    proxy = teller.post("/v1/customers", json={
        "display_name": "Minor Child", "card_refs": ["card-consent-proxy"],
        "consent": {"purpose": "ATM cash withdrawal verification", "modalities": ["face"],
                    "given_by": "Parent Guardian"}})
    assert own.status_code == proxy.status_code == 201
    assert own.json()["consents"][0]["given_by"] == "aigerim nurlanovna"
    assert proxy.json()["consents"][0]["given_by"] == "Parent Guardian"
    # read back from the store, not only from the response
    got = teller.get(f"/v1/customers/{proxy.json()['id']}").json()
    assert got["consents"][0]["given_by"] == "Parent Guardian"
    db = daemon.runtime.cfg.paths.state_dir / "biogate.sqlite"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        names = {r[0] for r in conn.execute("SELECT given_by FROM consents")}
    assert {"aigerim nurlanovna", "Parent Guardian"} <= names
    recorded = {e["details"]["customer_id"]: e["details"] for e in _audit_events(daemon.url)
                if e["event"] == "consent.recorded"}
    assert recorded[own.json()["id"]]["signed_by_customer"] is True
    assert recorded[proxy.json()["id"]]["signed_by_customer"] is False
    assert recorded[proxy.json()["id"]]["given_by"] == "Parent Guardian"
