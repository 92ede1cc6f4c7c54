"""Issue 14, finding 2: concurrent attempts on one card must not get past the lockout.

The attack: eight sessions opened on one card, eight attempts fired at once. Before the fix every attempt
passed the lockout check before the camera queue, so more comparisons ran than the lockout allows and a
queued attempt could be allowed after the card had locked.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.security.conftest import attempt, enrol, open_session, show
from tests.service.conftest import client

pytestmark = pytest.mark.timeout(300)


def _compared(url: str, card: str) -> list[dict]:
    """The card's decisions in which a face comparison ran (its customer's failures and successes)."""
    decisions = client(url, "auditor").get("/v1/decisions", params={"card_ref": card, "limit": 1000}).json()
    return [d for d in decisions if "fused_llr" in (d.get("scores") or {})]


def _fire(url: str, session_ids: list[str]):
    barrier = threading.Barrier(len(session_ids))

    def one(sid: str):
        barrier.wait()
        return attempt(url, sid)
    with ThreadPoolExecutor(len(session_ids)) as pool:
        return list(pool.map(one, session_ids))


def _fire_while_the_first_captures(daemon, session_ids: list[str], monkeypatch):
    """Fire the attempts at once, the first one to reach the camera held there until every other request has
    been answered: on a loaded machine a late thread would otherwise arrive after the first attempt finished and
    legitimately run as a second attempt, which is not the race under test."""
    service = daemon.runtime.verification
    capture, answered, release = service._capture, threading.Semaphore(0), threading.Event()
    others = len(session_ids) - 1

    def held_capture(*args, **kwargs):
        if not release.is_set():
            for _ in range(others):          # each other request must come back (409) while this one holds
                if not answered.acquire(timeout=60):
                    break
            release.set()
        return capture(*args, **kwargs)
    monkeypatch.setattr(service, "_capture", held_capture)
    barrier = threading.Barrier(len(session_ids))

    def one(sid: str):
        barrier.wait()
        response = attempt(daemon.url, sid)
        if response.status_code == 409:
            answered.release()
        return response
    with ThreadPoolExecutor(len(session_ids)) as pool:
        results = list(pool.map(one, session_ids))
    monkeypatch.setattr(service, "_capture", capture)
    return results


def test_eight_concurrent_attempts_cannot_outrun_the_lockout(daemon):
    url, card = daemon.url, "card-race"
    enrol(daemon, "B. Obama", card, "example:obama")
    limit = daemon.runtime.cfg.policy.attempts_per_session
    show(daemon, "example:biden")                     # the impostor with the card
    sessions = [open_session(url, card)["session_id"] for _ in range(8)]
    first = _fire(url, sessions)
    codes = [r.status_code for r in first]
    assert set(codes) <= {200, 409}, [r.text for r in first]
    busy = [r for r in first if r.status_code == 409]
    assert all(r.json()["error"]["code"] == "input.card_attempt_in_progress" for r in busy)
    assert codes.count(200) >= 1
    # keep going as the attacker would, eight at a time, until every session is closed
    for _ in range(20):
        open_ids = [s for s in sessions
                    if client(url, "terminal").get(f"/v1/sessions/{s}").json()["status"] == "open"]
        if not open_ids:
            break
        _fire(url, open_ids)
    # the genuine face now in front of the camera: the locked card must not let a queued attempt through
    show(daemon, "example:obama")
    late = [open_session(url, card) for _ in range(4)]
    assert all(s["status"] == "locked" for s in late), late
    # never more comparisons than the lockout allows, and none allowed
    compared = _compared(url, card)
    assert len(compared) <= limit, [d["reasons"] for d in compared]
    assert all(d["outcome"] == "deny" for d in compared)
    state = client(url, "teller").get("/v1/lockouts", params={"active": "false"}).json()
    mine = [s for s in state if s["card_ref"] == card]
    assert mine and mine[0]["total_failures"] == limit, mine


def test_a_success_cannot_reset_the_counters_of_queued_failures(daemon, monkeypatch):
    url, card = daemon.url, "card-race2"
    enrol(daemon, "B. Obama", card, "example:obama")
    show(daemon, "example:obama")
    sessions = [open_session(url, card)["session_id"] for _ in range(8)]
    results = _fire_while_the_first_captures(daemon, sessions, monkeypatch)
    allowed = [r for r in results if r.status_code == 200 and r.json()["outcome"] == "allow"]
    # exactly one attempt ran; the others were refused before any capture (409), not queued behind it
    assert len(allowed) == 1, [r.text[:200] for r in results]
    assert sum(r.status_code == 409 for r in results) == 7
