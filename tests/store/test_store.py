"""The SQLite store on real files: round trips, atomicity, encryption at rest, tamper/swap detection."""
from __future__ import annotations

import sqlite3

import pytest

from edge.config import load_config
from edge.errors import InputError, StorageError
from edge.store import (Consent, Customer, DecisionRecord, EvidenceMeta, LockoutState, TemplateMeta, iso, new_id,
                        open_store, utcnow)
from edge.store.sqlite import SCHEMA_VERSION

SECRET_TEMPLATE = b"FACE-EMBEDDING-\x01\x02\x03-not-a-real-one" * 4


def _customer(tx, cid="cus_1", card="card-1"):
    tx.add_customer(Customer(cid, "Test Person", iso(utcnow()), card_refs=[card]))


def _template(cid="cus_1", idx=0, tid=None):
    return TemplateMeta(tid or new_id("tpl"), cid, "face", "face", idx, "biogate-face-v1", 0.9, iso(utcnow()))


def test_round_trip_and_schema_version(store):
    assert store.schema_version() == SCHEMA_VERSION
    with store.transaction() as tx:
        _customer(tx)
        tx.add_consent(Consent(new_id("con"), "cus_1", "atm verification", ["face", "finger"], iso(utcnow()), "teller:t1"))
        meta = _template()
        tx.add_template(meta, SECRET_TEMPLATE)
    with store.transaction() as tx:
        assert tx.customer_for_card("card-1").id == "cus_1"
        assert tx.consents("cus_1")[0].modalities == ["face", "finger"]
        (t,) = tx.templates("cus_1", "face")
        assert bytes(t.payload) == SECRET_TEMPLATE and t.key_id.startswith("k-")
        t.zeroise()
        assert t.payload == bytearray()


def test_blobs_are_encrypted_on_disk(store):
    with store.transaction() as tx:
        _customer(tx)
        tx.add_template(_template(), SECRET_TEMPLATE)
    store.close()
    wal = store.path.with_name(store.path.name + "-wal")
    raw = store.path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert b"FACE-EMBEDDING" not in raw


def test_failed_transaction_leaves_nothing(store):
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            _customer(tx)
            tx.audit("teller:t", "customer.created", {"customer_id": "cus_1"})
            raise RuntimeError("power cut in the middle")
    with store.transaction() as tx:
        assert tx.get_customer("cus_1") is None
        assert tx.audit_entries() == []


def test_card_reference_cannot_belong_to_two_customers(store):
    with store.transaction() as tx:
        _customer(tx)
    with pytest.raises(InputError) as err:
        with store.transaction() as tx:
            _customer(tx, cid="cus_2", card="card-1")
    assert err.value.code == "input.card_in_use"


def test_swapped_blob_is_detected(store):
    a, b = _template(idx=0, tid="tpl_a"), _template(idx=1, tid="tpl_b")
    with store.transaction() as tx:
        _customer(tx)
        tx.add_template(a, b"template A")
        tx.add_template(b, b"template B")
    conn = sqlite3.connect(store.path)
    conn.execute("UPDATE templates SET ciphertext = (SELECT ciphertext FROM templates WHERE id='tpl_b'), "
                 "nonce = (SELECT nonce FROM templates WHERE id='tpl_b') WHERE id='tpl_a'")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError) as err:
        with store.transaction() as tx:
            tx.templates("cus_1")
    assert err.value.code == "storage.tampered"


def test_edited_metadata_is_detected(store):
    with store.transaction() as tx:
        _customer(tx)
        tx.add_template(_template(tid="tpl_a"), b"template A")
    conn = sqlite3.connect(store.path)
    conn.execute("UPDATE templates SET position = 'left_thumb' WHERE id='tpl_a'")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="authentication"):
        with store.transaction() as tx:
            tx.templates("cus_1")


def test_evidence_retention_and_lockouts(store):
    now = utcnow()
    past, future = iso(now.replace(year=now.year - 1)), iso(now.replace(year=now.year + 1))
    with store.transaction() as tx:
        tx.add_evidence(EvidenceMeta("ev_old", "dec_1", None, "image/jpeg", past, past), b"old jpeg")
        tx.add_evidence(EvidenceMeta("ev_new", "dec_2", None, "image/jpeg", iso(now), future), b"new jpeg")
        tx.put_lockout(LockoutState("card-9", 3, 3, 1, future))
    with store.transaction() as tx:
        assert tx.delete_expired_evidence(iso(now)) == ["ev_old"]
        assert tx.get_evidence("ev_old") is None
        assert tx.get_evidence("ev_new")[1] == b"new jpeg"
        assert [l.card_ref for l in tx.lockouts(only_active_after=iso(now))] == ["card-9"]


def test_decisions_round_trip(store):
    d = DecisionRecord("dec_1", "ses_1", None, "card-1", "cash_withdrawal", "100.00", "USD", "deny", "face+finger",
                       ["face.no_match"], {"fused_llr": -3.2}, "ATM-0001", iso(utcnow()))
    with store.transaction() as tx:
        tx.add_decision(d)
    with store.transaction() as tx:
        assert tx.decisions(card_ref="card-1")[0].reasons == ["face.no_match"]


def test_key_rotation_reencrypts(tmp_path, cfg):
    from typer.testing import CliRunner

    from edge.cli.main import app

    with open_store(cfg) as store:
        with store.transaction() as tx:
            _customer(tx)
            tx.add_template(_template(tid="tpl_a"), SECRET_TEMPLATE)
            old = tx.key_usage()
    config_file = tmp_path / "biogate.toml"
    config_file.write_text(f'[paths]\nstate_dir = "{tmp_path}"\n')
    result = CliRunner().invoke(app, ["keys", "rotate", "--config", str(config_file), "--json"])
    assert result.exit_code == 0, result.output
    with open_store(load_config(config_file, env={})) as store:
        with store.transaction() as tx:
            assert set(tx.key_usage()).isdisjoint(old)
            assert bytes(tx.templates("cus_1")[0].payload) == SECRET_TEMPLATE


def test_reopen_migrates_once(cfg):
    with open_store(cfg) as s1:
        with s1.transaction() as tx:
            _customer(tx)
    with open_store(cfg) as s2:
        assert s2.schema_version() == SCHEMA_VERSION
        with s2.transaction() as tx:
            assert tx.get_customer("cus_1") is not None


def test_all_templates_skips_the_customer_and_erased_customers(store):
    from edge.store import Customer, TemplateMeta, iso, new_id, utcnow

    now = iso(utcnow())
    ids = []
    with store.transaction() as tx:
        for n in range(3):
            cid = new_id("cus")
            ids.append(cid)
            tx.add_customer(Customer(cid, f"C{n}", now, card_refs=[f"card-{n}"]))
            tx.add_template(TemplateMeta(new_id("tpl"), cid, "face", "face", 0, "biogate-face-v1", 50.0, now),
                            bytes([n]) * 16)
        tx.erase_customer(ids[2])
    with store.transaction() as tx:
        others = tx.all_templates("face", exclude_customer=ids[0])
    assert [t.customer_id for t in others] == [ids[1]]
    assert bytes(others[0].payload) == bytes([1]) * 16
