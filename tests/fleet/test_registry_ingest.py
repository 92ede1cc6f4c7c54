"""The registry's ingest on its own (real PostgreSQL): retries that overlap, chains that do not continue."""
from __future__ import annotations

import random
import threading

import pytest

from edge.audit.chain import GENESIS_HASH, make_entry
from edge.errors import ConflictError
from edge.fleet.protocol import IngestRequest
from edge.registry.service import RegistryService
from edge.store.crypto import KeyRing, key_id_for, new_key
from edge.store.postgres import PostgresStore

KEY = new_key()


@pytest.fixture
def service(postgres_dsn):
    store = PostgresStore(postgres_dsn, KeyRing({key_id_for(KEY): KEY}, key_id_for(KEY)), max_connections=12,
                          audit_key=KEY)
    svc = RegistryService(store)
    svc.add_terminal("ATM-9", "admin:test")
    yield svc
    store.close()


def chain(n: int, start=(0, GENESIS_HASH), tag: str = "") -> list[dict]:
    seq, prev = start
    out = []
    for i in range(n):
        e = make_entry(seq + 1, prev, f"2026-12-02T10:00:{i:02d}.000000Z", "terminal", "test.event", {"i": i, "t": tag},
                       key=KEY)
        out.append(e.to_dict())
        seq, prev = e.seq, e.hash
    return out


def test_overlapping_retries_never_move_the_anchor_back(service):
    """A terminal whose acknowledgement was lost sends again while the first attempt still runs: whatever order
    the registry finishes them in, the anchor is the longest prefix and the next batch continues it."""
    entries = chain(60)
    rng = random.Random(7)
    for upto in range(5, 61, 5):
        batches = [entries[:upto - 5 + rng.randint(1, 5)], entries[:upto]]
        rng.shuffle(batches)
        threads = [threading.Thread(target=service.ingest, args=("ATM-9", IngestRequest(audit=b))) for b in batches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert service.anchor("ATM-9")[0] == upto
    result = service.ingest("ATM-9", IngestRequest(audit=chain(3, (60, entries[-1]["hash"]))))
    assert result.anchor_seq == 63


def test_a_chain_that_does_not_continue_the_anchor_is_refused_and_logged(service):
    service.ingest("ATM-9", IngestRequest(audit=chain(4)))
    forged = chain(6, tag="rewritten")            # the same seqs, other contents: a rewritten history
    with pytest.raises(ConflictError) as err:
        service.ingest("ATM-9", IngestRequest(audit=forged))
    assert err.value.code == "fleet.audit_chain_mismatch"
    assert service.anchor("ATM-9")[0] == 4
    with service.store.transaction() as tx:
        assert tx.audit_entries(0, 100)[-1].event == "fleet.audit_chain_mismatch"


def test_each_item_is_ingested_once(service):
    item = {"kind": "decision", "key": "decision:d1", "body": {
        "id": "d1", "session_id": "s", "customer_id": None, "card_ref": "c", "operation": "cash_deposit",
        "amount": "1", "currency": "USD", "outcome": "allow", "factors": "none", "reasons": [], "scores": {},
        "terminal_id": "ATM-9", "created_at": "2026-12-02T10:00:00.000000Z", "offline": False}}
    first = service.ingest("ATM-9", IngestRequest(items=[item]))
    again = service.ingest("ATM-9", IngestRequest(items=[item]))
    assert (first.new, again.new) == (1, 0) and again.acked == ["decision:d1"]
    assert service.stats()["decisions"] == 1


def test_a_last_seen_stamp_from_a_stale_read_does_not_move_the_anchor_back(service):
    """Found by the crash loop: authentication stamped last_seen_at by writing back the whole terminal record
    it had read, undoing an ingest's anchor that committed in between."""
    with service.store.transaction() as tx:
        stale, _ = tx.get_terminal("ATM-9")           # read by an authentication before the ingest below
    service.ingest("ATM-9", IngestRequest(audit=chain(5)))
    service._seen.clear()                             # the throttle lets this stamp through
    service._touch(stale)
    assert service.anchor("ATM-9")[0] == 5
