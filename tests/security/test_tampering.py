"""Issue 14, findings 10, 11 and 15: rows edited behind the daemon's back, with write access to its SQLite file.

10. one flipped ciphertext byte: that customer is refused with an audit entry (not a 500), the row is
    quarantined, the metric counts it, and every other customer carries on (enrolment with its duplicate
    check, verification, key rotation);
11. the card -> customer link and the customer's status are sealed: an `UPDATE cards` or an `UPDATE customers`
    is detected and the card is refused;
15. a template's quality and creation time are covered by the associated data, and deleting some of a
    customer's template rows is noticed.
"""
from __future__ import annotations

import pytest

from tests.security.conftest import (attempt, audit_events, create_customer, db, enrol, open_session,
                                     rotate_keys, show)
from tests.service.conftest import client

pytestmark = pytest.mark.timeout(300)


def _template_ids(d, customer_id: str) -> list[str]:
    with db(d) as conn:
        return [r[0] for r in conn.execute("SELECT id FROM templates WHERE customer_id = ? ORDER BY sample_index",
                                           (customer_id,))]


def _quarantined(d, template_id: str) -> str | None:
    with db(d) as conn:
        return conn.execute("SELECT quarantined FROM templates WHERE id = ?", (template_id,)).fetchone()[0]


def _tamper_metric(d) -> float:
    text = client(d.url, "admin").get("/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("biogate_storage_tampered_total{"))


def _refused_as_tampered(d, card: str) -> dict:
    s = open_session(d.url, card)
    assert s["status"] == "refused" and "storage.tampered" in s["reasons"], s
    return s


def test_a_flipped_ciphertext_byte_is_quarantined_and_everyone_else_carries_on(daemon):
    a = enrol(daemon, "B. Obama", "card-a", "example:obama")
    victim = _template_ids(daemon, a)[0]
    with db(daemon) as conn:
        (blob,) = conn.execute("SELECT ciphertext FROM templates WHERE id = ?", (victim,)).fetchone()
        flipped = bytes([blob[0] ^ 0x01]) + bytes(blob[1:])
        conn.execute("UPDATE templates SET ciphertext = ? WHERE id = ?", (flipped, victim))
    # someone else enrols: the duplicate check reads every template, the bad one included
    b = enrol(daemon, "J. Biden", "card-b", "example:biden")
    assert _quarantined(daemon, victim) == "storage.tampered"
    entries = audit_events(daemon.url, "storage.tampered")
    assert [e["details"]["row_id"] for e in entries] == [victim]
    assert entries[0]["details"]["action"] == "quarantined_customer_under_review"
    assert _tamper_metric(daemon) >= 1
    # the other customer is verified as usual
    show(daemon, "example:biden")
    r = attempt(daemon.url, open_session(daemon.url, "card-b")["session_id"])
    assert r.status_code == 200 and r.json()["outcome"] == "allow", r.text
    # the tampered customer: refused (recorded, audited), never a 500
    show(daemon, "example:obama")
    s = open_session(daemon.url, "card-a")
    assert s["status"] == "refused" and "enrolment.under_review" in s["reasons"], s
    # key rotation goes on; the quarantined blob keeps its key, so its key is not retired
    rotated = rotate_keys(daemon)
    assert rotated["reencrypted"]["templates"] == len(_template_ids(daemon, a)) - 1 + len(_template_ids(daemon, b))
    assert rotated["kept_key_ids"], rotated
    r = attempt(daemon.url, open_session(daemon.url, "card-b")["session_id"])
    show(daemon, "example:biden")
    r = attempt(daemon.url, open_session(daemon.url, "card-b")["session_id"])
    assert r.status_code == 200 and r.json()["outcome"] == "allow", r.text


def test_moving_a_card_to_another_customer_is_detected(daemon):
    attacker = enrol(daemon, "B. Obama", "card-obama", "example:obama")
    enrol(daemon, "J. Biden", "card-biden", "example:biden")
    with db(daemon) as conn:   # the insider links the victim's card to his own enrolment
        conn.execute("UPDATE cards SET customer_id = ? WHERE card_ref = 'card-biden'", (attacker,))
    show(daemon, "example:obama")
    _refused_as_tampered(daemon, "card-biden")
    entries = audit_events(daemon.url, "storage.tampered")
    assert any(e["details"]["table"] == "customers" and "cards" in e["details"]["changed"] for e in entries), entries
    assert _tamper_metric(daemon) >= 1
    _refused_as_tampered(daemon, "card-obama")          # the attacker's own record no longer checks out either


def test_lifting_a_review_in_the_database_is_detected(daemon):
    enrol(daemon, "B. Obama", "card-1", "example:obama")
    show(daemon, "example:obama")
    twin = create_customer(daemon.url, "B. Obama again", "card-2")
    r = client(daemon.url, "teller").post(f"/v1/customers/{twin}/enrol/face", json={"samples": 3})
    assert r.json()["customer"]["status"] == "review", r.text          # a duplicate: under review
    with db(daemon) as conn:
        conn.execute("UPDATE customers SET status = 'active', review_reason = NULL WHERE id = ?", (twin,))
    _refused_as_tampered(daemon, "card-2")
    entries = audit_events(daemon.url, "storage.tampered")
    assert any(e["details"]["customer_id"] == twin and "status" in e["details"]["changed"] for e in entries)


@pytest.mark.parametrize("column,value", [("quality", 99.5), ("created_at", "2020-01-01T00:00:00.000000Z")])
def test_a_template_s_quality_and_creation_time_are_authenticated(daemon, column, value):
    cid = enrol(daemon, "B. Obama", "card-q", "example:obama")
    target = _template_ids(daemon, cid)[1]
    with db(daemon) as conn:
        conn.execute(f"UPDATE templates SET {column} = ? WHERE id = ?", (value, target))
    show(daemon, "example:obama")
    s = open_session(daemon.url, "card-q")
    assert s["status"] == "open", s
    r = attempt(daemon.url, s["session_id"])
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "deny" and "storage.tampered" in r.json()["reasons"], r.json()
    assert _quarantined(daemon, target) == "storage.tampered"
    assert [e["details"]["row_id"] for e in audit_events(daemon.url, "storage.tampered")] == [target]


def test_deleting_some_of_a_customer_s_template_rows_is_noticed(daemon):
    cid = enrol(daemon, "B. Obama", "card-d", "example:obama")
    with db(daemon) as conn:
        conn.execute("DELETE FROM templates WHERE customer_id = ? AND sample_index > 0", (cid,))
    show(daemon, "example:obama")
    _refused_as_tampered(daemon, "card-d")
    entries = audit_events(daemon.url, "storage.tampered")
    assert any(e["details"]["customer_id"] == cid and e["details"]["changed"] == ["templates"] for e in entries)
