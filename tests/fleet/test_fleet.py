"""The fleet over real HTTP: a real PostgreSQL server, the registry, two terminal daemons on the simulator.

A branch (teller desk) and an ATM: enrol at one, verify at the other; erasure, lockouts and revocations
made in one place reach the other within 5 s; the ATM decides by its offline policy while the registry is
away and its outbox drains when it comes back, every decision counted once.
"""
from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from edge.audit.chain import GENESIS_HASH, details_text, head_mac, make_entry
from edge.fleet.transport import DOWN, open_template
from tests.fleet.conftest import api, drained, wait_for

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).resolve().parents[2]
CUSTOMER_FACE, IMPOSTOR_FACE = "example:obama", "example:biden"


def enrol(terminal, card: str, face: str = CUSTOMER_FACE) -> str:
    teller = api(terminal.url, terminal.keys["teller"])
    r = teller.post("/v1/customers", json={"display_name": "B. Obama", "card_refs": [card],
                                          "consent": {"purpose": "ATM cash withdrawal verification",
                                                      "modalities": ["face"], "given_by": "B. Obama"}})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    terminal.rig.present(face=face)
    r = teller.post(f"/v1/customers/{cid}/enrol/face", json={"samples": 3})
    assert r.status_code == 200, r.text
    terminal.rig.present(face="nobody")
    return cid


def withdraw(terminal, card: str, face: str | None = CUSTOMER_FACE, amount: str = "50") -> tuple[dict, dict | None]:
    atm = api(terminal.url, terminal.keys["terminal"])
    s = atm.post("/v1/sessions", json={"operation": "cash_withdrawal", "amount": amount, "currency": "USD",
                                       "card_ref": card})
    assert s.status_code == 201, s.text
    session = s.json()
    if session["status"] != "open":
        return session, None
    terminal.rig.present(face=face)
    try:
        r = atm.post(f"/v1/sessions/{session['session_id']}/attempts")
        assert r.status_code == 200, r.text
        return session, r.json()
    finally:
        terminal.rig.present(face="nobody")


def registry_stats(world) -> dict:
    return api(world.registry_url, world.registry_keys["auditor"]).get("/v1/fleet/stats").json()


def test_enrol_at_the_branch_then_allowed_at_the_atm(world):
    branch, atm = world.terminals["BRANCH-01"], world.terminals["ATM-0002"]
    enrol(branch, "card-alice")
    wait_for(lambda: drained(branch))
    session, attempt = withdraw(atm, "card-alice")
    assert session["status"] == "open", session
    assert attempt["outcome"] == "allow", attempt
    assert attempt["authorisation"]["amount"] == "50"
    wait_for(lambda: drained(atm))
    stats = registry_stats(world)
    assert stats["terminals"]["ATM-0002"]["decisions"] == 1


def test_the_registry_hands_out_templates_sealed_for_the_asking_terminal_only(world):
    branch, atm = world.terminals["BRANCH-01"], world.terminals["ATM-0002"]
    enrol(branch, "card-alice")
    wait_for(lambda: drained(branch))
    creds = _credentials(world, "ATM-0002")
    r = httpx.get(f"{world.registry_url}/v1/fleet/cards/card-alice",
                  headers={"Authorization": f"Bearer {creds['token']}", "X-Terminal-Id": "ATM-0002"})
    assert r.status_code == 200
    key = base64.b64decode(creds["transport_key"])
    meta, plain = open_template(key, DOWN, "ATM-0002", r.json()["templates"][0])
    assert len(plain) > 100 and bytes(plain[:4]) == b"BGFT"            # a biogate face record, once opened
    assert b"BGFT" not in r.content                                     # but nothing in the clear on the wire
    with pytest.raises(Exception, match="authentication"):
        open_template(key, DOWN, "BRANCH-01", r.json()["templates"][0])  # useless to another terminal
    # one terminal cannot read as another: the ATM's token under the branch's name is refused
    r = httpx.get(f"{world.registry_url}/v1/fleet/cards/card-alice",
                  headers={"Authorization": f"Bearer {creds['token']}", "X-Terminal-Id": "BRANCH-01"})
    assert r.status_code == 401


def test_erasure_at_the_registry_reaches_the_atm_within_5_s(world):
    branch, atm = world.terminals["BRANCH-01"], world.terminals["ATM-0002"]
    cid = enrol(branch, "card-alice")
    wait_for(lambda: drained(branch))
    assert withdraw(atm, "card-alice")[1]["outcome"] == "allow"          # the ATM now holds the card holder
    erased_at = time.monotonic()
    r = api(world.registry_url, world.registry_keys["admin"]).delete(f"/v1/customers/{cid}")
    assert r.status_code == 200, r.text

    def atm_forgot() -> bool:
        with sqlite3.connect(Path(atm.rig.config.paths.state_dir) / "biogate.sqlite") as conn:
            return conn.execute("SELECT COUNT(*) FROM templates WHERE customer_id = ?", (cid,)).fetchone()[0] == 0
    wait_for(atm_forgot, timeout=5.0)
    assert time.monotonic() - erased_at < 5.0
    session, _ = withdraw(atm, "card-alice")
    assert session["status"] == "refused" and "enrolment.card_not_enrolled" in session["reasons"]
    wait_for(lambda: not _local_templates(branch, cid), timeout=5.0)     # and at the branch too


def test_a_lockout_at_one_atm_locks_the_card_at_the_other(world):
    branch, atm = world.terminals["BRANCH-01"], world.terminals["ATM-0002"]
    enrol(branch, "card-alice")
    wait_for(lambda: drained(branch))
    for _ in range(3):
        session, attempt = withdraw(atm, "card-alice", face=IMPOSTOR_FACE)
        if attempt is None:
            break
    assert attempt is not None and attempt["locked"] is True, attempt
    locked_at = time.monotonic()

    def branch_sees_it() -> bool:
        r = api(branch.url, branch.keys["terminal"]).post("/v1/sessions", json={
            "operation": "cash_withdrawal", "amount": "10", "currency": "USD", "card_ref": "card-alice"}).json()
        return r["status"] == "locked"
    wait_for(branch_sees_it, timeout=5.0, step=0.25)
    assert time.monotonic() - locked_at < 5.0


def test_offline_decisions_by_policy_then_the_outbox_drains(world):
    branch, atm = world.terminals["BRANCH-01"], world.terminals["ATM-0002"]
    enrol(branch, "card-alice")
    enrol(branch, "card-bob", face=IMPOSTOR_FACE)   # another person: one face on two customers puts both under review
    wait_for(lambda: drained(branch))
    assert withdraw(atm, "card-alice")[1]["outcome"] == "allow"          # cached at the ATM
    wait_for(lambda: drained(atm))

    world.stop_registry()
    wait_for(lambda: api(atm.url, atm.keys["admin"]).get("/healthz").json()["registry"] == "offline", timeout=15)
    session, attempt = withdraw(atm, "card-alice", amount="60")
    assert attempt["outcome"] == "allow" and "fleet.offline" in attempt["reasons"], attempt
    session, attempt = withdraw(atm, "card-alice", amount="150")         # over the 200 USD offline cap in total
    assert session["status"] == "refused" and "fleet.offline_cap_reached" in session["reasons"], session
    session, _ = withdraw(atm, "card-bob")                                # never seen at this ATM
    assert session["status"] == "refused" and "fleet.offline_not_cached" in session["reasons"], session
    waiting = api(atm.url, atm.keys["admin"]).get("/healthz").json()["outbox_length"]
    assert waiting >= 3

    world.start_registry()
    wait_for(lambda: drained(atm), timeout=20)
    wait_for(lambda: drained(branch), timeout=20)
    stats = registry_stats(world)
    local = {name: _local_decisions(t) for name, t in world.terminals.items()}
    assert stats["decisions"] == sum(local.values()), (stats, local)
    assert {n: stats["terminals"][n]["decisions"] for n in local} == local
    offline = api(world.registry_url, world.registry_keys["auditor"]).get("/v1/decisions",
                                                                          params={"card_ref": "card-alice"}).json()
    assert any("fleet.offline" in d["reasons"] for d in offline)


def test_a_revoked_terminal_is_refused_at_once(world):
    atm = world.terminals["ATM-0002"]
    creds = _credentials(world, "ATM-0002")
    headers = {"Authorization": f"Bearer {creds['token']}", "X-Terminal-Id": "ATM-0002"}
    assert httpx.get(f"{world.registry_url}/v1/fleet/anchor", headers=headers).status_code == 200
    world.registry.service.revoke_terminal("ATM-0002", "admin:test")
    r = httpx.get(f"{world.registry_url}/v1/fleet/anchor", headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "auth.terminal_revoked"
    # and it cannot write as another terminal either: a decision carrying another terminal's id is refused
    branch = _credentials(world, "BRANCH-01")
    forged = {"items": [{"kind": "decision", "key": "decision:forged", "body": {
        "id": "dec_forged", "session_id": "s", "customer_id": None, "card_ref": "card-x", "operation": "x",
        "amount": "1", "currency": "USD", "outcome": "allow", "factors": "none", "reasons": [], "scores": {},
        "terminal_id": "ATM-0002", "created_at": "2026-01-01T00:00:00.000000Z", "offline": False}}], "audit": []}
    r = httpx.post(f"{world.registry_url}/v1/fleet/ingest", json=forged,
                   headers={"Authorization": f"Bearer {branch['token']}", "X-Terminal-Id": "BRANCH-01"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "auth.wrong_terminal"
    del atm


def test_a_rewritten_terminal_chain_is_caught_by_audit_verify_and_by_the_registry(world):
    atm = world.terminals["ATM-0002"]
    wait_for(lambda: drained(atm))
    db = Path(atm.rig.config.paths.state_dir) / "biogate.sqlite"
    audit_key = atm.daemon.runtime.store.audit_key
    code, out = _terminal_audit_verify(atm)
    assert code == 0, out
    # an insider with the database rewrites the whole chain consistently (the old weakness)
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER audit_no_update")
        rows = conn.execute("SELECT seq, timestamp, actor, event, details FROM audit ORDER BY seq").fetchall()
        prev = GENESIS_HASH
        for seq, ts, actor, event, details in rows:
            d = json.loads(details)
            if seq == 1:
                d["terminal_id"] = "ATM-0002-forged"
            e = make_entry(seq, prev, ts, actor, event, d, key=audit_key)   # an insider with the keys too
            conn.execute("UPDATE audit SET prev_hash = ?, details = ?, hash = ?, keyed = 1 WHERE seq = ?",
                         (e.prev_hash, details_text(e), e.hash, seq))
            prev = e.hash
        conn.execute("UPDATE audit_head SET hash = ?, mac = ? WHERE id = 1", (prev, head_mac(audit_key, seq, prev)))
    code, out = _terminal_audit_verify(atm)
    assert code == 1 and "anchor" in out, out
    # the registry refuses the rewritten chain when the terminal uploads next, and says so in its own log
    with atm.daemon.runtime.store.transaction() as tx:
        tx.audit("teller:x", "test.after_rewrite", {"n": 1})
    atm.daemon.runtime.fleet.wake()
    wait_for(lambda: atm.daemon.runtime.fleet.last_error == "fleet.audit_chain_mismatch", timeout=10)
    verify = api(world.registry_url, world.registry_keys["auditor"]).get("/v1/audit/verify").json()
    assert verify["registry"]["ok"] and all(t["ok"] for t in verify["terminals"].values())


def test_health_and_metrics_show_the_link(world):
    atm = world.terminals["ATM-0002"]
    wait_for(lambda: drained(atm))
    h = api(atm.url, atm.keys["admin"]).get("/healthz").json()
    assert h["registry"] == "online" and h["outbox_length"] == 0 and h["last_sync_at"]
    m = api(atm.url, atm.keys["admin"]).get("/metrics").text
    assert "biogate_registry_online 1.0" in m and "biogate_outbox_length 0.0" in m
    assert "biogate_last_sync_timestamp_seconds" in m


def _credentials(world, name: str) -> dict:
    cfg = world.terminals[name].rig.config
    return json.loads((Path(cfg.paths.state_dir) / cfg.fleet.credentials_file).read_text())


def _local_templates(terminal, cid: str) -> int:
    with sqlite3.connect(Path(terminal.rig.config.paths.state_dir) / "biogate.sqlite") as conn:
        return conn.execute("SELECT COUNT(*) FROM templates WHERE customer_id = ?", (cid,)).fetchone()[0]


def _local_decisions(terminal) -> int:
    with sqlite3.connect(Path(terminal.rig.config.paths.state_dir) / "biogate.sqlite") as conn:
        return conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]


def _terminal_audit_verify(terminal) -> tuple[int, str]:
    cfg = terminal.rig.config
    config_file = Path(cfg.paths.state_dir) / "terminal.toml"
    config_file.write_text(f'terminal_id = "{cfg.terminal_id}"\n[paths]\nstate_dir = "{cfg.paths.state_dir}"\n'
                           f'[fleet]\nregistry_url = "{cfg.fleet.registry_url}"\n')
    done = subprocess.run([sys.executable, "-m", "edge.cli.main", "audit", "verify", "--config", str(config_file)],
                          cwd=REPO, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    return done.returncode, done.stdout + done.stderr
