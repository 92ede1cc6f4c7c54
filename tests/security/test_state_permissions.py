"""Issue 14, finding 13: the SQLite file, WAL and SHM were 0644 and the state folder 0755; a leftover
`secrets.json.tmp` made a new `secrets.json` 0644, and a 0666 secrets file loaded silently.

A real daemon on a real state folder (SQLite in WAL mode, the secrets file it creates), with a permissive umask
as a careless service account would have."""
from __future__ import annotations

import json
import os
import stat

import pytest

from edge.errors import ConfigError
from edge.service.server import DaemonThread
from tests.service.conftest import client, make_config

pytestmark = pytest.mark.timeout(180)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _write_something(d) -> None:
    r = client(d.url, "terminal").post("/v1/sessions", json={"operation": "balance_inquiry", "amount": "0",
                                                             "currency": "EUR", "card_ref": "card-perm"})
    assert r.status_code == 201, r.text


def test_state_folder_and_every_file_are_private(tmp_path, loose_umask):
    cfg = make_config(tmp_path)
    state = cfg.paths.state_dir
    state.mkdir(mode=0o755)            # left by an older version
    os.chmod(state, 0o755)
    (state / "secrets.json.tmp").write_text("{}")   # a leftover temporary file, 0644
    os.chmod(state / "secrets.json.tmp", 0o644)
    with DaemonThread(cfg) as d:
        _write_something(d)
        db = d.runtime.store.path
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"), state / "secrets.json"]
        for f in files:
            assert f.exists(), f
            assert mode(f) == 0o600, f"{f.name} is {mode(f):04o}"
        assert mode(state) == 0o700
        assert not (state / "secrets.json.tmp").exists()


def test_an_existing_loose_database_and_wal_are_tightened(tmp_path, loose_umask):
    cfg = make_config(tmp_path)
    with DaemonThread(cfg) as d:
        _write_something(d)
        db = d.runtime.store.path
    for f in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if f.exists():
            os.chmod(f, 0o644)
    with DaemonThread(cfg) as d:
        _write_something(d)
        for f in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            assert mode(f) == 0o600, f"{f.name} is {mode(f):04o}"


@pytest.mark.parametrize("loose", [0o666, 0o644, 0o640, 0o604])
def test_a_loose_secrets_file_is_refused_with_a_clear_error(tmp_path, loose):
    cfg = make_config(tmp_path)
    with DaemonThread(cfg):
        pass
    secrets = cfg.paths.state_dir / "secrets.json"
    before = secrets.read_bytes()
    os.chmod(secrets, loose)
    with pytest.raises(ConfigError) as err:
        DaemonThread(cfg)
    assert f"{loose:04o}" in err.value.message and "chmod 600" in err.value.message
    assert secrets.read_bytes() == before and mode(secrets) == loose   # nothing rewritten, nothing lost
    os.chmod(secrets, 0o600)
    with DaemonThread(cfg) as d:                                      # fixed by the operator: starts again
        assert json.loads(secrets.read_text())["api_keys"]
        _write_something(d)


def test_loose_fleet_credentials_are_refused(tmp_path):
    from edge.fleet.link import load_credentials
    path = tmp_path / "fleet-credentials.json"
    path.write_text(json.dumps({"terminal_id": "ATM-1", "token": "x" * 32, "transport_key": "00" * 32}))
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="0644"):
        load_credentials(path)
