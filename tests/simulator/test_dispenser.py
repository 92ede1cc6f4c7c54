"""The virtual cash dispenser over a real WebSocket, driven with raw XFS4IoT messages.

Tokens are built here from the format in the notes (NONCE=..,TOKENFORMAT=1,TOKENLENGTH=nnnn,
DISPENSE1=<amount><CUR>,HMACSHA256=<hex over everything before the HMAC value>), independently of
xfs4iot_bridge.token, so a self-consistent but wrong token codec would fail these tests.
"""
from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

import pytest

from simulator.dispenser import VirtualDispenser, start_dispenser
from tests.bridge.xfs_client import XfsClient, code, error_code

KEY = bytes.fromhex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
pytestmark = pytest.mark.timeout(60)


def spec_token(nonce: str, value: str, key: bytes = KEY) -> str:
    """An end-to-end dispense token, from the notes' format."""
    for length in range(60, 400):  # TOKENLENGTH counts the whole token, itself included
        head = f"NONCE={nonce},TOKENFORMAT=1,TOKENLENGTH={length:04d},DISPENSE1={value},HMACSHA256="
        if len(head) + 64 == length:
            return head + hmac.new(key, head.encode(), hashlib.sha256).hexdigest().upper()
    raise AssertionError("no consistent length")


def dispense_payload(token: str | None, amount: float, currency: str = "EUR") -> dict:
    payload = {"denomination": {"currencies": {currency: amount}}, "position": "default"}
    if token is not None:
        payload["token"] = token
    return payload


@pytest.fixture()
def dispenser():
    d = start_dispenser(KEY)
    yield d
    d.stop()


@pytest.fixture()
def client(dispenser):
    with XfsClient(dispenser.url) as c:
        yield c


def nonce_of(client: XfsClient) -> str:
    done = client.complete("Common.GetCommandNonce")
    assert code(done) == "success"
    nonce = done["payload"]["commandNonce"]
    assert isinstance(nonce, str) and len(nonce) == 32 and int(nonce, 16) >= 0
    return nonce


def dispense(client: XfsClient, token: str | None, amount: float, currency: str = "EUR") -> dict:
    return client.complete("CashDispenser.Dispense", dispense_payload(token, amount, currency), version="3.0")


def test_publisher_lists_the_cash_dispenser(dispenser):
    with XfsClient(dispenser.publisher_url) as c:
        ack, events, done = c.run("ServicePublisher.GetServices")
    assert ack["header"]["status"] is None
    assert [e["header"]["name"] for e in events] == ["ServicePublisher.ServiceDetailEvent"]
    assert code(done) == "success"
    assert {"serviceURI": dispenser.url} in done["payload"]["services"]
    assert dispenser.url.endswith("/xfs4iot/v1.0/CashDispenser1/")


def test_status_and_capabilities(client):
    status = client.complete("Common.Status", version="3.0")
    assert code(status) == "success" and status["payload"]["common"]["device"] == "online"
    caps = client.complete("Common.Capabilities", version="3.0")["payload"]
    commands = {name for iface in caps["interfaces"] for name in iface["commands"]}
    assert {"Common.GetCommandNonce", "Common.ClearCommandNonce", "CashDispenser.Dispense"} <= commands
    assert caps["common"]["endToEndSecurity"]["required"] == "always"


def test_nonce_is_stable_until_cleared(client):
    first = nonce_of(client)
    assert nonce_of(client) == first
    assert code(client.complete("Common.ClearCommandNonce")) == "success"
    assert nonce_of(client) != first


def test_full_dispense_records_exactly_the_amount(dispenser, client):
    token = spec_token(nonce_of(client), "50.00EUR")
    done = dispense(client, token, 50.00)
    assert code(done) == "success", done
    assert done["payload"]["currencies"] == {"EUR": 50.0}
    assert [(r.amount, r.currency) for r in dispenser.dispensed] == [(Decimal("50.00"), "EUR")]
    ledger = client.complete("BiogateSimulator.GetDispensed")["payload"]
    assert ledger["totals"] == {"EUR": 50.0} and len(ledger["dispensed"]) == 1


def test_cumulative_amount_per_token(dispenser, client):
    token = spec_token(nonce_of(client), "50.00EUR")
    assert code(dispense(client, token, 20.0)) == "success"
    assert code(dispense(client, token, 30.0)) == "success"
    assert code(dispense(client, token, 5.0)) == "invalidToken"      # used up: a replay
    assert dispenser.totals() == {"EUR": Decimal("50.00")}


def test_replay_of_a_used_token_is_refused(dispenser, client):
    token = spec_token(nonce_of(client), "50.00EUR")
    assert code(dispense(client, token, 50.0)) == "success"
    assert code(dispense(client, token, 50.0)) == "invalidToken"
    nonce_of(client)  # even with a fresh nonce on the device the old token stays dead
    assert code(dispense(client, token, 50.0)) == "invalidToken"
    assert len(dispenser.dispensed) == 1


def test_used_up_token_retires_its_nonce(client):
    nonce = nonce_of(client)
    assert code(dispense(client, spec_token(nonce, "20.00EUR"), 20.0)) == "success"
    assert nonce_of(client) != nonce


def test_over_amount_is_refused_and_nothing_moves(dispenser, client):
    token = spec_token(nonce_of(client), "50.00EUR")
    assert code(dispense(client, token, 60.0)) == "invalidToken"
    assert code(dispense(client, token, 50.0, "USD")) == "invalidToken"   # other currency
    assert dispenser.dispensed == []
    assert code(dispense(client, token, 50.0)) == "success"               # still worth 50


def test_cleared_nonce_kills_the_token(dispenser, client):
    nonce = nonce_of(client)
    token = spec_token(nonce, "50.00EUR")
    client.complete("Common.ClearCommandNonce")
    assert code(dispense(client, token, 50.0)) == "noCommandNonce"
    nonce_of(client)
    assert code(dispense(client, token, 50.0)) == "invalidTokenNonce"
    assert dispenser.dispensed == []


def test_forged_and_malformed_tokens(dispenser, client):
    nonce = nonce_of(client)
    assert code(dispense(client, spec_token(nonce, "50.00EUR", key=b"wrong key"), 50.0)) == "invalidTokenHMAC"
    genuine = spec_token(nonce, "50.00EUR")
    raised = genuine.replace("DISPENSE1=50.00EUR", "DISPENSE1=90.00EUR")   # same length, HMAC kept
    assert code(dispense(client, raised, 90.0)) == "invalidTokenHMAC"
    assert code(dispense(client, genuine.replace("TOKENLENGTH=", "TOKENLENGTH=9"), 50.0)) == "invalidTokenFormat"
    assert code(dispense(client, "NONCE=XYZ,HMACSHA256=00", 50.0)) == "invalidTokenFormat"
    assert code(dispense(client, None, 50.0)) == "authorisationRequired"
    assert dispenser.dispensed == []


def test_dispenser_without_key_refuses_every_token():
    d = start_dispenser(b"")
    try:
        with XfsClient(d.url) as c:
            token = spec_token(nonce_of(c), "50.00EUR")
            assert code(dispense(c, token, 50.0)) == "invalidTokenKeyNoValue"
    finally:
        d.stop()


def test_mechanism_refusals_do_not_spend_the_token(dispenser, client):
    token = spec_token(nonce_of(client), "50.00EUR")
    done = dispense(client, token, 3.0)                 # no 1 or 3 EUR notes
    assert code(done) == "commandErrorCode" and error_code(done) == "notDispensable"
    done = client.complete("CashDispenser.Dispense", {**dispense_payload(token, 50.0), "position": "rear"},
                           version="3.0")
    assert code(done) == "commandErrorCode" and error_code(done) == "unsupportedPosition"
    assert code(client.complete("CashDispenser.Dispense", {"token": token}, version="3.0")) == "invalidData"
    assert code(dispense(client, token, 50.0)) == "success"
    assert len(dispenser.dispensed) == 1


def test_nonce_expires_after_its_lifetime():
    now = [0.0]
    device = VirtualDispenser(key=KEY, nonce_ttl_s=60.0, clock=lambda: now[0])
    nonce = device.get_command_nonce()
    token = spec_token(nonce, "10.00EUR")
    now[0] = 61.0
    with pytest.raises(Exception) as exc:
        device.dispense(token, Decimal("10.00"), "EUR")
    assert exc.value.completion_code.value == "noCommandNonce"
    assert device.get_command_nonce() != nonce
