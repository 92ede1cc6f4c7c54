"""Issue 14, finding 4: with write access to the database, the audit chain could be rewritten and still verify
(tail truncated with the head copied in, an entry edited and the chain recomputed, a forged entry inserted,
every row deleted, a duplicate JSON key), and a NaN or non-object `details` crashed `biogate audit verify` and
made `/v1/audit/verify` answer 500.

Each attack edits a real daemon's SQLite file with sqlite3 (triggers dropped, as an insider with the file can),
then asks both the running daemon over HTTP and the CLI in a subprocess. The attacker has the database, not
the audit key (secrets.json): hashes it recomputes are plain SHA-256, the old scheme."""
from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys

import pytest

from edge.audit.chain import canonical_json
from edge.service.server import DaemonThread
from tests.service.conftest import client, make_config

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def daemon(tmp_path):
    with DaemonThread(make_config(tmp_path)) as d:
        terminal = client(d.url, "terminal")
        for i in range(5):
            r = terminal.post("/v1/sessions", json={"operation": "balance_inquiry", "amount": "0",
                                                    "currency": "EUR", "card_ref": f"card-{i}"})
            assert r.status_code == 201
        yield d


def _raw(d) -> sqlite3.Connection:
    conn = sqlite3.connect(d.runtime.store.path, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    return conn


def _sha(seq, prev, ts, actor, event, details: dict) -> str:      # the unkeyed scheme an attacker can compute
    return hashlib.sha256(canonical_json([seq, prev, ts, actor, event, details]).encode()).hexdigest()


def _verdicts(d) -> tuple[dict, dict]:
    r = client(d.url, "auditor").get("/v1/audit/verify")
    assert r.status_code == 200, r.text                                 # never a 500
    out = subprocess.run([sys.executable, "-m", "edge.cli.main", "audit", "verify",
                          "--db", str(d.runtime.store.path), "--json"], capture_output=True, text=True, timeout=60)
    cli = json.loads(out.stdout)
    assert (out.returncode == 0) == cli["ok"], out.stderr               # exit 1 exactly when broken
    return r.json(), cli


def _assert_broken(d, at: int | None = None) -> None:
    api, cli = _verdicts(d)
    for v in (api, cli):
        assert v["ok"] is False, v
        assert v["first_bad_seq"] is not None
        if at is not None:
            assert v["first_bad_seq"] == at, v


def test_untouched_chain_verifies(daemon):
    api, cli = _verdicts(daemon)
    assert api["ok"] and cli["ok"] and api["entries"] == cli["entries"] >= 6


def test_truncated_tail_with_head_copied_in(daemon):
    conn = _raw(daemon)
    last = conn.execute("SELECT MAX(seq) FROM audit").fetchone()[0]
    conn.execute("DELETE FROM audit WHERE seq > ?", (last - 2,))
    seq, digest = conn.execute("SELECT seq, hash FROM audit WHERE seq = ?", (last - 2,)).fetchone()
    conn.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq, digest))
    _assert_broken(daemon)
    # and the daemon's next entries do not make the cut invisible
    client(daemon.url, "terminal").post("/v1/sessions", json={"operation": "balance_inquiry", "amount": "0",
                                                              "currency": "EUR", "card_ref": "card-after"})
    _assert_broken(daemon, at=last - 1)


def test_edit_and_recompute_the_chain(daemon):
    conn = _raw(daemon)
    rows = conn.execute("SELECT seq, timestamp, actor, event, details FROM audit ORDER BY seq").fetchall()
    prev = "0" * 64
    for seq, ts, actor, event, details in rows:
        d = json.loads(details)
        if seq == 2:
            d["card_ref"] = "card-forged"
        h = _sha(seq, prev, ts, actor, event, d)
        conn.execute("UPDATE audit SET prev_hash = ?, details = ?, hash = ?, keyed = 0 WHERE seq = ?",
                     (prev, canonical_json(d), h, seq))
        prev = h
    conn.execute("UPDATE audit_head SET hash = ? WHERE id = 1", (prev,))
    _assert_broken(daemon)


def test_edit_one_entry_in_place(daemon):
    conn = _raw(daemon)
    conn.execute("UPDATE audit SET actor = 'teller:nobody' WHERE seq = 3")
    _assert_broken(daemon, at=3)


def test_insert_a_forged_entry(daemon):
    conn = _raw(daemon)
    seq, digest = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    d = {"customer_id": "cus_forged"}
    h = _sha(seq + 1, digest, "2026-12-02T10:00:00.000000Z", "teller", "customer.created", d)
    conn.execute("INSERT INTO audit (seq, prev_hash, timestamp, actor, event, details, hash, keyed) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
                 (seq + 1, digest, "2026-12-02T10:00:00.000000Z", "teller", "customer.created", canonical_json(d), h))
    conn.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq + 1, h))
    _assert_broken(daemon, at=seq + 1)


def test_delete_every_row(daemon):
    conn = _raw(daemon)
    conn.execute("DELETE FROM audit")
    conn.execute("UPDATE audit_head SET seq = 0, hash = ? WHERE id = 1", ("0" * 64,))
    _assert_broken(daemon)


@pytest.mark.parametrize("forged", [
    '{"card_ref":"card-1","card_ref":"card-evil"}',     # duplicate key: the old verifier hashed the last value
    '{"n":NaN}', '{"n":Infinity}',
    '[1,2,3]', '"text"', '5', 'null', 'not json at all', '{"a": 1}',   # non-objects, broken, non-canonical
])
def test_unreadable_details_are_reported_at_their_seq(daemon, forged):
    conn = _raw(daemon)
    conn.execute("UPDATE audit SET details = ? WHERE seq = 4", (forged,))
    _assert_broken(daemon, at=4)
    # the entries can still be listed for an auditor
    r = client(daemon.url, "auditor").get("/v1/audit", params={"limit": 1000})
    assert r.status_code == 200


def test_binary_details_are_reported_not_raised(daemon):
    conn = _raw(daemon)
    conn.execute("UPDATE audit SET details = X'FFFE00' WHERE seq = 5")
    _assert_broken(daemon, at=5)
