"""Issue 14, finding 3: `biogate keys rotate` while the daemon runs must never make anything unreadable.

The attack: rotate (in its own process) while the daemon is up and verifying. Before the fix the daemon kept
sealing evidence with the key it had loaded at start, which the rotation had just retired: after a restart
that evidence was `storage.unknown_key` (500) and every later rotation failed.
"""
from __future__ import annotations

import threading

import pytest

from edge.service.server import DaemonThread
from tests.security.conftest import attempt, enrol, open_session, rotate_keys, show
from tests.service.conftest import client

pytestmark = pytest.mark.timeout(400)


def _verify(d, card: str) -> str:
    r = attempt(d.url, open_session(d.url, card)["session_id"])
    assert r.status_code == 200 and r.json()["outcome"] == "allow", r.text
    return r.json()["decision_id"]


def _all_evidence_readable(d) -> int:
    auditor = client(d.url, "auditor")
    items = auditor.get("/v1/evidence", params={"limit": 1000}).json()
    for item in items:
        r = auditor.get(f"/v1/evidence/{item['id']}")
        assert r.status_code == 200 and r.content[:2] == b"\xff\xd8", (item, r.status_code, r.text[:200])
    return len(items)


def test_rotation_while_the_daemon_runs_loses_nothing(config):
    with DaemonThread(config) as d:
        enrol(d, "B. Obama", "card-rot", "example:obama")
        show(d, "example:obama")
        _verify(d, "card-rot")
        first = rotate_keys(d)                       # the daemon is up and holds the old key ring
        assert first["retired_key_ids"] and not first["kept_key_ids"], first
        _verify(d, "card-rot")                       # evidence sealed after the rotation
        # rotations racing with verifications
        errors: list[str] = []

        def rotate_twice() -> None:
            try:
                for _ in range(2):
                    rotate_keys(d)
            except AssertionError as exc:
                errors.append(str(exc))
        worker = threading.Thread(target=rotate_twice)
        worker.start()
        for _ in range(3):
            _verify(d, "card-rot")
        worker.join(timeout=300)
        assert not errors, errors
        last = rotate_keys(d)                        # and later rotations keep working
        assert not last["kept_key_ids"], last
        assert _all_evidence_readable(d) == 5
    with DaemonThread(config) as d:                  # after a restart: every blob opens with the key file's keys
        assert _all_evidence_readable(d) == 5
        show(d, "example:obama")
        _verify(d, "card-rot")                       # the templates too
