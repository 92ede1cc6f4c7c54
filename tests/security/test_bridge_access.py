"""Issue 14, finding 7: a local process with no credentials ran Biometric.Read in scan mode on the XFS4IoT
bridge, got the templates of the person at the terminal, imported them and ran unlimited Match calls, with no
audit entry.

`biogate serve --simulated` in-process: the daemon's bridge on a real WebSocket on 127.0.0.1, the simulator's
camera in front of it, the daemon's real SQLite audit log."""
from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus

from simulator.terminal import SimulatedTerminal
from tests.bridge.xfs_client import XfsClient, code
from tests.service.conftest import client, make_config

pytestmark = pytest.mark.timeout(240)

FACE = "reservedTemplate1"


@pytest.fixture(scope="module")
def terminal(tmp_path_factory):
    from edge.config import load_config
    if not (load_config(env={}).paths.models_dir / "examples").is_dir():
        pytest.skip("example images not built (run `make models`)")
    cfg = make_config(tmp_path_factory.mktemp("bridge-access"),
                      {"bridge": {"enabled": True, "ports": [0], "max_matches_per_minute": 3}})
    with SimulatedTerminal(cfg, camera_transport="inprocess") as t:
        yield t


def _url(t) -> str:
    return t.addresses()["xfs4iot"]["Biometric1"]


def _token(t) -> str:
    return t.daemon.runtime.secrets.bridge_client_token


def _audit(t) -> list[dict]:
    return client(t.url, "auditor").get("/v1/audit", params={"limit": 1000}).json()


@pytest.mark.parametrize("token", [None, "not-the-token-0123456789", ""])
def test_no_client_token_no_connection(terminal, token):
    for url in (_url(terminal), terminal.addresses()["xfs4iot"]["publisher"]):
        with pytest.raises(InvalidStatus) as err:
            XfsClient(url, token=token)
        assert err.value.response.status_code == 401


def test_scan_mode_returns_no_template_data_and_is_audited(terminal):
    with XfsClient(_url(terminal), token=_token(terminal), timeout=60) as atm:
        done = atm.complete("Biometric.Read", {"dataTypes": [{"format": FACE}], "numCaptures": 0, "mode": "scan"})
    assert code(done) == "commandErrorCode" and done["payload"]["errorCode"] == "modeNotSupported"
    assert "dataRead" not in done["payload"]
    assert any(e["event"] == "bridge.read_refused" for e in _audit(terminal))


def test_reads_and_matches_are_audited_and_rate_limited(terminal):
    terminal.rig.present(face="example:obama")
    with XfsClient(_url(terminal), token=_token(terminal), timeout=60) as atm:
        read = atm.complete("Biometric.Read", {"dataTypes": [{"format": FACE}], "numCaptures": 0, "mode": "match"})
        assert code(read) == "success", read
        assert all("data" not in item for item in read["payload"].get("dataRead", []))
        results = []
        for _ in range(5):
            m = atm.complete("Biometric.Match", {"compareMode": "identity", "maximum": 1, "threshold": 50})
            results.append(code(m))
    # the first matches run (no imported data here), the ones over the limit are refused as a fraud attempt
    assert results[:3] != ["fraudAttempt"] * 3 and results[3:] == ["fraudAttempt", "fraudAttempt"], results
    events = [e for e in _audit(terminal) if e["event"].startswith("bridge.")]
    assert any(e["event"] == "bridge.read" and e["details"]["mode"] == "match" for e in events)
    assert sum(e["event"] == "bridge.match" for e in events) == 3          # the three that ran
    # counts, modes and formats only: nothing that could be a template
    assert all(not isinstance(v, str) or len(v) < 40 for e in events for v in e["details"].values())
