"""Both store backends behind one interface (edge.store.sql): the same behaviour on SQLite and on a real
PostgreSQL server, and what only the server must add (concurrent appends from many connections)."""
from __future__ import annotations

import threading

import psycopg
import pytest

from edge.errors import InputError, StorageError
from edge.store import Customer, DecisionRecord, EvidenceMeta, LockoutState, TemplateMeta, iso, new_id, utcnow
from edge.store.crypto import KeyRing, key_id_for, new_key
from edge.store.postgres import PostgresStore
from edge.store.sql import SCHEMA_VERSION
from edge.store.sqlite import SQLiteStore

KEY = new_key()
RING = KeyRing({key_id_for(KEY): KEY}, key_id_for(KEY))
AUDIT_KEY = b"audit-key-of-these-tests-32bytes"
PAYLOAD = b"FACE-EMBEDDING-not-a-real-one" * 4


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    if request.param == "sqlite":
        store = SQLiteStore(tmp_path / "t.sqlite", RING, synchronous="NORMAL", audit_key=AUDIT_KEY)
    else:
        store = PostgresStore(request.getfixturevalue("postgres_dsn"), RING, max_connections=8,
                              audit_key=AUDIT_KEY)
    yield store
    store.close()


def _customer(tx, cid="cus_1", card="card-1"):
    tx.add_customer(Customer(cid, "Test Person", iso(utcnow()), card_refs=[card]))


def test_round_trip_templates_evidence_decisions_lockouts(backend):
    assert backend.schema_version() == SCHEMA_VERSION
    meta = TemplateMeta(new_id("tpl"), "cus_1", "face", "face", 0, "biogate-face-v1", 71.25, iso(utcnow()))
    now = utcnow()
    past, future = iso(now.replace(year=now.year - 1)), iso(now.replace(year=now.year + 1))
    with backend.transaction() as tx:
        _customer(tx)
        tx.add_template(meta, PAYLOAD)
        tx.add_evidence(EvidenceMeta("ev_old", "dec_1", "cus_1", "image/jpeg", past, past), b"old jpeg")
        tx.add_decision(DecisionRecord("dec_1", "ses_1", "cus_1", "card-1", "cash_withdrawal", "10.00", "EUR", "deny",
                                       "face", ["match.below_threshold"], {"fused_llr": -1.5}, "ATM-1", iso(now)))
        tx.put_lockout(LockoutState("card-1", 3, 3, 1, future, False, iso(now)))
        tx.put_lockout(LockoutState("card-1", 0, 3, 1, future, True, iso(now)))   # upsert
    with backend.transaction() as tx:
        (t,) = tx.templates("cus_1")
        assert bytes(t.payload) == PAYLOAD and t.quality == 71.25
        assert tx.customer_for_card("card-1").id == "cus_1"
        assert tx.decisions(card_ref="card-1")[0].scores == {"fused_llr": -1.5}
        assert tx.get_lockout("card-1").disabled is True
        assert tx.delete_expired_evidence(iso(now)) == ["ev_old"]
        assert tx.erase_customer("cus_1") == {"templates": 1, "evidence": 0, "probes": 0, "scans": 0,
                                                "cards": 1}


def test_a_failed_unit_of_work_leaves_nothing(backend):
    with pytest.raises(RuntimeError):
        with backend.transaction() as tx:
            _customer(tx)
            tx.audit("teller:t", "customer.created", {"customer_id": "cus_1"})
            raise RuntimeError("killed in the middle")
    with backend.transaction() as tx:
        assert tx.get_customer("cus_1") is None and tx.audit_entries() == []
    with pytest.raises(InputError, match="already belongs"):
        with backend.transaction() as tx:
            _customer(tx)
            _customer(tx, cid="cus_2")
    assert backend.verify_audit().ok


def test_the_audit_chain_holds_under_concurrent_appends(backend):
    """Eight threads (eight pooled connections on PostgreSQL) append at once: one unbroken chain."""
    def append(worker: int) -> None:
        for i in range(15):
            with backend.transaction() as tx:
                tx.audit(f"terminal:{worker}", "test.event", {"worker": worker, "i": i})
    threads = [threading.Thread(target=append, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = backend.verify_audit()
    assert result.ok and result.entries == 120 and result.head_seq == 120


def test_postgres_refuses_edits_of_the_audit_log(postgres_dsn):
    store = PostgresStore(postgres_dsn, RING, audit_key=AUDIT_KEY)
    try:
        with store.transaction() as tx:
            tx.audit("teller:t", "customer.created", {"customer_id": "cus_1"})
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute("UPDATE audit SET actor = 'x' WHERE seq = 1")
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute("DELETE FROM audit")
            conn.execute("ALTER TABLE audit DISABLE TRIGGER audit_no_update")   # the owner can, and is caught
            conn.execute("UPDATE audit SET actor = 'x' WHERE seq = 1")
        result = store.verify_audit()
        assert not result.ok and result.first_bad_seq == 1
        # blobs are sealed at rest there too
        with store.transaction() as tx:
            _customer(tx)
            tx.add_template(TemplateMeta("tpl_1", "cus_1", "face", "face", 0, "f", 1.0, iso(utcnow())), PAYLOAD)
        with psycopg.connect(postgres_dsn) as conn:
            raw = conn.execute("SELECT ciphertext FROM templates").fetchone()[0]
        assert b"FACE-EMBEDDING" not in bytes(raw)
    finally:
        store.close()


def test_postgres_migrates_once_and_reports_a_server_that_is_gone(postgres_server, postgres_dsn):
    a = PostgresStore(postgres_dsn, RING, audit_key=AUDIT_KEY)
    b = PostgresStore(postgres_dsn, RING, audit_key=AUDIT_KEY)   # a second registry process on the same database
    assert a.schema_version() == b.schema_version() == SCHEMA_VERSION
    a.close()
    b.close()
    with pytest.raises(StorageError) as err:
        PostgresStore(postgres_dsn.replace(f"port={postgres_server.port}", "port=1"), RING, connect_timeout_s=1,
                      audit_key=AUDIT_KEY)
    assert err.value.code == "storage.unavailable"
