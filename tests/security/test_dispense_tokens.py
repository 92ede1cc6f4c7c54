"""Issue 14, findings 5 and 6: dispense tokens outlived `token_ttl_s`, and tokens of different transactions
shared one dispenser nonce (either worked for either transaction; clearing one expired token's nonce refused a
younger valid one).

`biogate serve --simulated` in-process: the daemon over HTTP, its XFS4IoT bridge over a real WebSocket, the
simulator's XFS4IoT cash dispenser over another. The withdrawal policy needs no biometrics here, so each session
is allowed at once and the test is about the tokens alone."""
from __future__ import annotations

import time

import pytest

from simulator.terminal import SimulatedTerminal
from tests.bridge.xfs_client import XfsClient, code
from tests.service.conftest import client, make_config

pytestmark = pytest.mark.timeout(240)

TTL = 6.0
NO_BIOMETRICS = {"bridge": {"enabled": True, "ports": [0]},
                 "service": {"token_ttl_s": TTL},
                 "policy": {"operations": {"cash_withdrawal": {"factors": "none", "dispenses": True}}}}


@pytest.fixture(scope="module")
def terminal(tmp_path_factory):
    with SimulatedTerminal(make_config(tmp_path_factory.mktemp("tokens"), NO_BIOMETRICS),
                           camera_transport="inprocess") as t:
        yield t


def _session(t, amount: str, delivery: str = "response") -> dict:
    r = client(t.url, "terminal").post("/v1/sessions", json={"operation": "cash_withdrawal", "amount": amount,
                                                              "currency": "EUR", "card_ref": "card-tok",
                                                              "token_delivery": delivery})
    assert r.status_code == 201 and r.json()["status"] == "allowed", r.text
    return r.json()


def _bridge_token(t, session_id: str) -> str:
    token = t.daemon.runtime.secrets.bridge_client_token
    with XfsClient(t.addresses()["xfs4iot"]["Biometric1"], token=token) as atm:
        done = atm.complete("BiogateAuthorisation.GetDispenseToken", {"sessionId": session_id}, version="1.0")
    assert code(done) == "success", done
    return done["payload"]["token"]


def _dispense(t, token: str, amount: float) -> str:
    with XfsClient(t.rig.dispenser.url) as cdm:
        return code(cdm.complete("CashDispenser.Dispense", {"denomination": {"currencies": {"EUR": amount}},
                                                             "position": "default", "token": token}, version="3.0"))


def _nonce(token: str) -> str:
    return token.split(",")[0].removeprefix("NONCE=")


def test_a_bridge_token_dies_at_its_ttl(terminal):
    token = _bridge_token(terminal, _session(terminal, "40", "bridge")["session_id"])
    time.sleep(TTL + 1.5)
    assert _dispense(terminal, token, 40.0) in ("invalidTokenNonce", "noCommandNonce")


def test_an_api_token_dies_at_its_ttl(terminal):
    token = _session(terminal, "45")["authorisation"]["token"]
    time.sleep(TTL + 1.5)
    assert _dispense(terminal, token, 45.0) in ("invalidTokenNonce", "noCommandNonce")


def test_each_transaction_has_its_own_nonce_and_only_its_own_token_works(terminal):
    first = _session(terminal, "50")["authorisation"]["token"]
    second = _bridge_token(terminal, _session(terminal, "70", "bridge")["session_id"])
    third = _session(terminal, "30")["authorisation"]["token"]
    assert len({_nonce(first), _nonce(second), _nonce(third)}) == 3
    # only the latest transaction's authorisation is live: the earlier ones cannot pay for it or for themselves
    assert _dispense(terminal, first, 30.0) == "invalidTokenNonce"
    assert _dispense(terminal, second, 30.0) == "invalidTokenNonce"
    assert _dispense(terminal, third, 30.0) == "success"
    assert _dispense(terminal, third, 30.0) == "invalidToken"          # spent


def test_expiry_of_an_older_token_never_breaks_a_younger_one(terminal):
    older = _session(terminal, "20")["authorisation"]["token"]
    time.sleep(TTL / 2 + 0.5)
    younger = _session(terminal, "25")["authorisation"]["token"]
    time.sleep(TTL / 2 + 0.5)                 # past the older token's deadline, well within the younger's
    assert _dispense(terminal, younger, 25.0) == "success"
    assert _dispense(terminal, older, 20.0) in ("invalidTokenNonce", "noCommandNonce")
    paid = [(str(r.amount), r.currency) for r in terminal.rig.dispenser.dispensed]
    assert ("25.00", "EUR") in paid and ("20.00", "EUR") not in paid
