"""The audit chain on a real SQLite file: append-only, and `biogate audit verify` finds edits/deletes/reorders."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from edge.audit import check_details, verify_database
from edge.errors import InputError


def _fill(store, n=6):
    for i in range(n):
        with store.transaction() as tx:
            tx.audit(f"teller:t{i}", "customer.created", {"customer_id": f"cus_{i}", "n": i})


def _raw(store):
    conn = sqlite3.connect(store.path)
    conn.execute("DROP TRIGGER audit_no_update")   # an attacker with the file can drop triggers...
    conn.execute("DROP TRIGGER audit_no_delete")
    return conn


def _cli_verify(path):
    out = subprocess.run([sys.executable, "-m", "edge.cli.main", "audit", "verify", "--db", str(path), "--json"],
                         capture_output=True, text=True, timeout=60)
    return out.returncode, json.loads(out.stdout)


def test_intact_chain_verifies(store):
    _fill(store)
    r = verify_database(store.path, store.audit_key)
    assert r.ok and r.entries == 6 and r.head_seq == 6


def test_triggers_block_updates_in_product(store):
    _fill(store, 2)
    conn = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit SET actor = 'x' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit WHERE seq = 1")


def test_edit_detected(store):
    _fill(store)
    conn = _raw(store)
    conn.execute("UPDATE audit SET details = ? WHERE seq = 3", (json.dumps({"customer_id": "cus_X", "n": 2}),))
    conn.commit()
    code, out = _cli_verify(store.path)
    assert code != 0 and out["ok"] is False and out["first_bad_seq"] == 3


def test_delete_detected(store):
    _fill(store)
    conn = _raw(store)
    conn.execute("DELETE FROM audit WHERE seq = 4")
    conn.commit()
    code, out = _cli_verify(store.path)
    assert code != 0 and out["first_bad_seq"] == 4


def test_tail_truncation_detected(store):
    _fill(store)
    conn = _raw(store)
    conn.execute("DELETE FROM audit WHERE seq = 6")
    conn.commit()
    r = verify_database(store.path, store.audit_key)
    assert not r.ok and r.first_bad_seq == 6


def test_reorder_detected(store):
    _fill(store)
    conn = _raw(store)
    # swap the contents of entries 2 and 5, keeping their seq numbers
    conn.execute("UPDATE audit SET seq = -2 WHERE seq = 2")
    conn.execute("UPDATE audit SET seq = 2 WHERE seq = 5")
    conn.execute("UPDATE audit SET seq = 5 WHERE seq = -2")
    conn.commit()
    code, out = _cli_verify(store.path)
    assert code != 0 and out["first_bad_seq"] == 2


def test_cli_ok_exit_zero(store):
    _fill(store, 3)
    code, out = _cli_verify(store.path)
    assert code == 0 and out["ok"] and out["entries"] == 3


@pytest.mark.parametrize("details", [
    {"image": "abc"}, {"embedding": [0.1, 0.2]}, {"blob": b"\x00\x01"}, {"nested": {"template": "x"}},
    {"long": "A" * 1000},
])
def test_biometric_looking_details_refused(details):
    with pytest.raises(InputError):
        check_details(details)
