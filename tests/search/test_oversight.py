"""Network scan and its oversight on a real SQLite store: only investigators search, with purpose and case;
pseudonyms only; reveal needs an auditor too; erasure, consent withdrawal and the purge take the person out."""
from __future__ import annotations

import json

import pytest

from edge.decision.calibration import load_calibration
from edge.errors import ForbiddenError, InputError
from edge.search.oversight import Investigation
from edge.search.service import SearchService
from edge.service.retention import purge_expired_evidence
from edge.store import open_store
from tests.search.helpers import People, attempt, enrol
from tests.service.conftest import make_config

WHY = Investigation.of("suspected cash-out network, AML referral", "CASE-2026-0042")
INV = ("investigator", "investigator:ivan")


@pytest.fixture
def world(tmp_path):
    """A mule on three nominees' cards and a shared card; two genuine customers on their own cards."""
    cfg = make_config(tmp_path)
    store = open_store(cfg)
    people = People()
    nominees = [enrol(store, people, f"nominee{i}", [f"CARD-N{i}"]) for i in range(3)]
    shared_owner = enrol(store, people, "owner", ["CARD-S"])
    genuine = [enrol(store, people, f"genuine{i}", [f"CARD-G{i}", f"CARD-G{i}b"]) for i in range(2)]
    for i, n in enumerate(nominees):
        attempt(store, people, "mule", f"CARD-N{i}", n, terminal="ATM-1" if i % 2 else "ATM-2")
    attempt(store, people, "mule", "CARD-S", shared_owner, terminal="ATM-2")
    attempt(store, people, "owner", "CARD-S", shared_owner, outcome="allow")
    attempt(store, people, "friend", "CARD-S", shared_owner)
    for i, g in enumerate(genuine):
        for card in (f"CARD-G{i}", f"CARD-G{i}b", f"CARD-G{i}"):
            attempt(store, people, f"genuine{i}", card, g, outcome="allow")
    search = SearchService(store, load_calibration(), cfg.search)
    yield store, search, nominees, shared_owner, genuine
    store.close()


def _audit(store, event):
    with store.transaction() as tx:
        return [e for e in tx.audit_entries(0, 10_000) if e.event == event]


def test_scan_finds_the_network_and_no_genuine_customer(world):
    store, search, nominees, owner, genuine = world
    view = search.scan(*INV, WHY)
    (network,) = view["networks"]
    kinds = sorted(f["kind"] for f in network["findings"])
    assert kinds == ["one_card_many_people", "one_person_many_cards"]
    assert len(network["cards"]) == 4 and len(network["holders"]) == 4 and len(network["people"]) == 3
    assert network["terminals"] == ["ATM-1", "ATM-2"] and network["score"] >= 4
    text = json.dumps(view)
    for real in nominees + genuine + [owner, "CARD-N0", "CARD-S", "CARD-G0"]:
        assert real not in text                       # pseudonyms only
    assert "presented 4 cards of 4 different holders" in network["explanation"]
    (entry,) = _audit(store, "search.scan")
    assert entry.actor == "investigator:ivan" and entry.details["case_ref"] == "CASE-2026-0042"
    assert entry.details["purpose"].startswith("suspected") and entry.details["networks"] == 1
    search.view_scan(*INV, view["scan_id"], WHY)
    assert len(_audit(store, "search.result_viewed")) == 1


@pytest.mark.parametrize("role", ["teller", "terminal", "admin", "auditor"])
def test_other_roles_cannot_search(world, role):
    store, search, *_ = world
    with pytest.raises(ForbiddenError):
        search.scan(role, f"{role}:someone", WHY)
    assert _audit(store, "search.scan") == []


def test_a_search_needs_purpose_case_and_a_named_person(world):
    _, search, *_ = world
    with pytest.raises(InputError) as e:
        Investigation.of("because", "CASE-1")
    assert e.value.code == "search.purpose_required"
    with pytest.raises(InputError) as e:
        Investigation.of("suspected cash-out network", "")
    assert e.value.code == "search.case_ref_required"
    with pytest.raises(ForbiddenError):
        search.scan("investigator", "investigator", WHY)     # no operator named


def test_reveal_takes_an_investigator_and_another_person_as_auditor(world):
    store, search, nominees, *_ = world
    view = search.scan(*INV, WHY)
    holder = view["networks"][0]["holders"][0]
    asked = search.request_reveal(*INV, view["scan_id"], holder, "identity", WHY)
    with pytest.raises(ForbiddenError) as e:
        search.reveal(*INV, asked["reveal_id"])
    assert e.value.code == "search.reveal_not_approved"
    with pytest.raises(ForbiddenError):
        search.approve_reveal("investigator", "investigator:ivan", asked["reveal_id"])   # not an auditor
    with pytest.raises(ForbiddenError):
        search.reveal("investigator", "investigator:olga", asked["reveal_id"])          # not the one who asked
    search.approve_reveal("auditor", "auditor:anna", asked["reveal_id"])
    shown = search.reveal(*INV, asked["reveal_id"])
    assert shown["customer_id"] in nominees + [world[3]] and shown["display_name"].startswith("Name of")
    for event in ("search.reveal_requested", "search.reveal_approved", "search.reveal_viewed"):
        assert len(_audit(store, event)) == 1, event
    assert _audit(store, "search.reveal_viewed")[0].details["approved_by"] == "auditor:anna"


def test_approver_must_be_another_person(world):
    store, search, *_ = world
    view = search.scan(*INV, WHY)
    asked = search.request_reveal(*INV, view["scan_id"], view["networks"][0]["holders"][0], "identity", WHY)
    with pytest.raises(ForbiddenError) as e:
        search.approve_reveal("auditor", "auditor:ivan", asked["reveal_id"])
    assert e.value.code == "search.same_person"


@pytest.mark.parametrize("how", ["erasure", "consent_withdrawn", "purge"])
def test_erasure_withdrawal_and_purge_take_the_person_out(world, how):
    store, search, nominees, owner, genuine = world
    view = search.scan(*INV, WHY)
    assert len(search.index.customers()) == 6
    victim = nominees[0]
    if how == "purge":
        with store.transaction() as tx:   # every probe's retention date is reached
            tx._c.execute("UPDATE probes SET retain_until = '2000-01-01T00:00:00.000000Z'")
            tx._c.execute("UPDATE search_scans SET retain_until = '2000-01-01T00:00:00.000000Z'")
        purge_expired_evidence(store)
        with store.transaction() as tx:
            assert tx.count_probes() == 0
    else:
        with store.transaction() as tx:
            if how == "consent_withdrawn":
                tx.withdraw_consents(victim, "2026-01-01T00:00:00.000000Z")
            tx.erase_customer(victim)
        search.forget(victim)
        assert victim not in search.index.customers()
        with store.transaction() as tx:
            assert all(m.customer_id != victim for m, _ in tx.probes("2000-01-01"))
    with store.transaction() as tx:
        assert tx.get_scan(view["scan_id"]) is None                 # the stored finding is gone
        assert tx.scan_subjects(view["scan_id"]) == []
    again = search.scan(*INV, WHY)
    if how == "purge":
        assert again["networks"] == []
    else:
        # the mule still presents two other nominees' cards and the shared card; the erased nominee is in no
        # finding and cannot be revealed
        assert len(again["networks"][0]["holders"]) == 3
        assert victim not in search.index.customers()


def test_sync_drops_a_customer_erased_behind_its_back(world):
    store, search, nominees, *_ = world
    search.sync()
    with store.transaction() as tx:
        tx.erase_customer(nominees[1])          # e.g. applied from the fleet's change feed
    assert search.sync()["removed"] == 2
    assert nominees[1] not in search.index.customers()


def test_http_roles_on_a_live_daemon(tmp_path, world):
    """/v1/search over real HTTP: investigators scan, tellers, terminals and admins are refused (403)."""
    import httpx

    from edge.service.server import DaemonThread
    from tests.service.conftest import KEYS

    keys = {**KEYS, "investigator": "investigator-key-0123456789"}
    cfg = make_config(tmp_path / "daemon", {"keys": {"api_keys": keys}, "policy": {"liveness_required": False}})
    store, *_ = world
    why = {"purpose": "suspected cash-out network, AML referral", "case_ref": "CASE-2026-0042"}
    from edge.service.operators import OperatorAccounts
    with open_store(cfg) as own:   # the operator an investigator key names must be an investigator's account
        OperatorAccounts(own, cfg.console).add("ivan", "investigator", "correct horse battery 9", actor="admin:test")
    with DaemonThread(cfg) as d:
        for role in ("teller", "terminal", "admin", "auditor"):
            r = httpx.post(f"{d.url}/v1/search/scans", json=why, headers={"X-API-Key": keys[role]}, timeout=30)
            assert r.status_code == 403 and r.json()["error"]["code"] == "auth.forbidden_role", (role, r.text)
        inv = {"X-API-Key": keys["investigator"], "X-Operator-Id": "ivan"}
        r = httpx.post(f"{d.url}/v1/search/scans", json={**why, "purpose": "short"}, headers=inv, timeout=30)
        assert r.status_code == 422 and r.json()["error"]["code"] == "search.purpose_required", r.text
        r = httpx.post(f"{d.url}/v1/search/scans", json=why, headers=inv, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["networks"] == [] and r.json()["case_ref"] == "CASE-2026-0042"   # this daemon's own store
        # the console signs the investigator in to the investigations page only (tests/console has the pages)
        with httpx.Client(base_url=d.url, timeout=30) as browser:
            browser.get("/console/login")
            csrf = browser.cookies.get("biogate_login_csrf")
            r = browser.post("/console/login", data={"name": "ivan", "password": "correct horse battery 9",
                                                     "csrf_token": csrf or ""})
            assert r.status_code == 303 and r.headers["location"] == "/console/investigations", r.text[:300]
            assert browser.get("/console/decisions").status_code == 403


def test_face_search_from_an_attempt_names_the_linked_holder_by_pseudonym(world):
    store, search, nominees, owner, genuine = world
    view = search.scan(*INV, WHY)
    (network,) = view["networks"]
    shared = next(f for f in network["findings"] if f["kind"] == "one_card_many_people")
    found = {a: search.search_attempt(*INV, view["scan_id"], a, WHY, k=3) for a in shared["attempts"]}
    linked = [c for r in found.values() for c in r["candidates"] if c["linked"]]
    assert linked and all(c["holder"].startswith("H-") for c in linked)   # the holder's own attempt finds them
    assert owner not in str(found)
    assert len([e for e in _audit(store, "search.face_search")]) == len(shared["attempts"])
