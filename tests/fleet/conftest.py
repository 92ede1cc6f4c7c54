"""A fleet for each test: the session's PostgreSQL server (a fresh database), the registry, two terminals."""
from __future__ import annotations

import time

import httpx
import pytest

from edge.config import Config
from simulator.fleet import FleetWorld
from simulator.pgserver import ThrowawayPostgres
from tests.service.conftest import examples_required, make_config  # noqa: F401  (fixture)

FACE_ONLY = {
    "policy": {"liveness_required": False,
               "operations": {"cash_withdrawal": {"factors": "face", "dispenses": True},
                              "cash_deposit": {"factors": "none"}}},
    "storage": {"synchronous": "NORMAL"},
}


@pytest.fixture
def world(tmp_path, postgres_server, postgres_dsn, examples_required):
    base: Config = make_config(tmp_path, FACE_ONLY)
    pg = _Database(postgres_server, postgres_dsn)
    with FleetWorld(base, tmp_path / "fleet", ["BRANCH-01", "ATM-0002"], postgres=pg,
                    rig_options={"camera_transport": "inprocess", "realtime": False}) as w:
        yield w


class _Database:
    """The session server with this test's database (what FleetWorld needs of a ThrowawayPostgres)."""

    def __init__(self, server: ThrowawayPostgres, dsn: str):
        self.server, self.dsn = server, dsn

    def close(self) -> None:
        pass


def api(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60)


def wait_for(predicate, timeout: float = 10.0, step: float = 0.1):
    """Poll until `predicate()` is truthy; its value, or AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(step)


def drained(terminal) -> bool:
    h = api(terminal.url, terminal.keys["admin"]).get("/healthz").json()
    return h["outbox_length"] == 0 and h["registry"] == "online"
