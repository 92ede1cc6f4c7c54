"""The registry's side on a real PostgreSQL: the bank-wide duplicate search at ingest puts both customers under
review (through the change feed), and the scan works on the same SQL as a terminal's."""
from __future__ import annotations

import os

from edge.decision.calibration import load_calibration
from edge.registry.service import RegistryService
from edge.search.config import SearchConfig
from edge.search.oversight import Investigation
from edge.search.service import SearchService
from edge.store.crypto import KeyRing, key_id_for
from edge.store.postgres import PostgresStore
from tests.search.helpers import People, attempt, enrol


def test_bank_wide_duplicate_and_scan_on_postgres(postgres_dsn):
    key = os.urandom(32)
    store = PostgresStore(postgres_dsn, KeyRing({key_id_for(key): key}, key_id_for(key)), max_connections=8,
                          audit_key=os.urandom(32))
    try:
        people = People()
        first = enrol(store, people, "alice", ["CARD-A"])            # enrolled at one terminal
        other = enrol(store, people, "bob", ["CARD-B"])
        search = SearchService(store, load_calibration(), SearchConfig())
        registry = RegistryService(store, search=search, duplicate_llr=6.9)
        again = enrol(store, people, "alice", ["CARD-A2"])          # the same face enrolled elsewhere, a new customer
        with store.transaction() as tx:
            registry._bank_wide_duplicates(tx, again, [people.face("alice")], "terminal:ATM-9")
        with store.transaction() as tx:
            assert tx.get_customer(again).status == "review" and tx.get_customer(first).status == "review"
            assert tx.get_customer(other).status == "active"
            fed = [c for c in tx.changes(0) if c.kind == "customer_status"]
            assert {c.subject for c in fed} == {again, first}
        for i, holder in enumerate([first, other, again]):
            attempt(store, people, "mule", ["CARD-A", "CARD-B", "CARD-A2"][i], holder)
        view = search.scan("investigator", "investigator-key:ivan",
                           Investigation.of("suspected cash-out network, AML referral", "CASE-PG-1"))
        assert len(view["networks"]) == 1 and len(view["networks"][0]["holders"]) == 3
    finally:
        store.close()
