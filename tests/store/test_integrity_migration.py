"""Schema 5 (issue 14, part A) on a database written before it: every template re-sealed under the v2
associated data and every customer's record sealed, so nothing enrolled before the upgrade is lost or
left unprotected."""
from __future__ import annotations

import sqlite3

import pytest

from edge.errors import StorageError

from edge.store import open_store
from edge.store import sql as store_sql
from edge.store.base import TemplateMeta
from edge.store.crypto import aad_for


def test_migration_to_schema_5_reseals_what_was_there(cfg, monkeypatch):
    with monkeypatch.context() as m:   # a database as biogate left it at schema 4
        m.setattr(store_sql, "MIGRATIONS", store_sql.MIGRATIONS[:4])
        m.setattr(store_sql, "SCHEMA_VERSION", 4)
        import edge.store.sqlite as sqlite_mod
        m.setattr(sqlite_mod, "SCHEMA_VERSION", 4)
        old = open_store(cfg)
        meta = TemplateMeta("tpl_old", "cus_old", "face", "face", 0, "biogate-face-v1", 81.5,
                            "2026-01-01T00:00:00.000000Z")
        sealed = old.keyring.seal(b"template bytes", aad_for("templates", meta.id, meta.customer_id,
                                                             "face|face|0|biogate-face-v1"))
        path = old.path
        old.close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO customers (id, display_name, created_at, status) VALUES ('cus_old', 'Old', "
                     "'2026-01-01T00:00:00.000000Z', 'active')")
        conn.execute("INSERT INTO cards (card_ref, customer_id) VALUES ('card-old', 'cus_old')")
        conn.execute("INSERT INTO templates (id, customer_id, modality, position, sample_index, format, quality, "
                     "created_at, key_id, nonce, ciphertext) VALUES (?, ?, 'face', 'face', 0, 'biogate-face-v1', "
                     "81.5, ?, ?, ?, ?)", (meta.id, meta.customer_id, meta.created_at, sealed.key_id, sealed.nonce,
                                           sealed.ciphertext))
    with open_store(cfg) as store:
        assert store.schema_version() == store_sql.SCHEMA_VERSION
        with store.transaction() as tx:
            assert tx.customer_for_card("card-old").card_refs == ["card-old"]
            assert bytes(tx.templates("cus_old")[0].payload) == b"template bytes"
    with sqlite3.connect(path) as conn:    # and from now on the quality is authenticated
        conn.execute("UPDATE templates SET quality = 99.0 WHERE id = 'tpl_old'")
    with open_store(cfg) as store:
        with store.transaction() as tx:
            with pytest.raises(StorageError) as caught:
                tx.templates("cus_old")
            assert caught.value.code == "storage.tampered"
