"""Attacks on a real daemon (issue 14): real HTTP on 127.0.0.1, a real SQLite file, the simulator's camera.

The daemon runs face-only (no liveness challenge) so that each attack stays quick; the mechanisms under test
(store integrity, reservations, key rotation, imports) are the same for every factor.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from edge.service.server import DaemonThread
from edge.store import db_path
from tests.service.conftest import client, make_config

FACE_ONLY = {
    "devices": {"camera": {"backend": "simulated",
                           "options": {"script": "live", "subject": "example:obama", "realtime": False}}},
    "policy": {"liveness_required": False,
               "operations": {"cash_withdrawal": {"factors": "face", "dispenses": True}}},
}


@pytest.fixture
def config(tmp_path):
    cfg = make_config(tmp_path, FACE_ONLY)
    if not (cfg.paths.models_dir / "examples").is_dir():
        pytest.skip(f"example images not built: {cfg.paths.models_dir / 'examples'} (run `make models`)")
    return cfg


@pytest.fixture
def daemon(config):
    with DaemonThread(config) as d:
        yield d


def show(d, subject: str) -> None:
    """Who stands in front of the simulated camera from now on."""
    with d.runtime.devices.use("camera") as cam:
        cam.present("live", subject=subject)


def create_customer(url: str, name: str, card: str) -> str:
    r = client(url, "teller").post("/v1/customers", json={
        "display_name": name, "card_refs": [card],
        "consent": {"purpose": "ATM cash withdrawal verification", "modalities": ["face"], "given_by": name}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def enrol(d, name: str, card: str, subject: str) -> str:
    show(d, subject)
    cid = create_customer(d.url, name, card)
    r = client(d.url, "teller").post(f"/v1/customers/{cid}/enrol/face", json={"samples": 3})
    assert r.status_code == 200, r.text
    return cid


def open_session(url: str, card: str, amount: str = "100") -> dict:
    r = client(url, "terminal").post("/v1/sessions", json={"operation": "cash_withdrawal", "amount": amount,
                                                            "currency": "USD", "card_ref": card})
    assert r.status_code == 201, r.text
    return r.json()


def attempt(url: str, session_id: str):
    return client(url, "terminal").post(f"/v1/sessions/{session_id}/attempts")


def db(d) -> sqlite3.Connection:
    """A second connection to the daemon's SQLite file: what an insider with write access to the state folder has."""
    return closing(sqlite3.connect(db_path(d.runtime.cfg), isolation_level=None))


def audit_events(url: str, event: str) -> list[dict]:
    entries = client(url, "auditor").get("/v1/audit", params={"limit": 1000}).json()
    return [e for e in entries if e["event"] == event]


def rotate_keys(d) -> dict:
    """`biogate keys rotate --json` in its own process, on the running daemon's state folder."""
    config_file = Path(d.runtime.cfg.paths.state_dir).parent / "cli.toml"
    config_file.write_text(f'[paths]\nstate_dir = "{d.runtime.cfg.paths.state_dir}"\n')
    out = subprocess.run([str(Path(sys.executable).parent / "biogate"), "keys", "rotate", "--config", str(config_file),
                          "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)
