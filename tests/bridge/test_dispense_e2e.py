"""End to end: an XFS4IoT-speaking ATM application verifies a customer through the bridge, gets a
dispense token for exactly the amount the bank host approved, and the virtual dispenser pays it once.

Actors (all real, over 127.0.0.1 WebSockets):
  - the bridge (Biometric1) with the virtual camera, the face engine, the xfs4iot dispenser driver;
  - the virtual dispenser (CashDispenser1), sharing the token key with the bridge;
  - the bank host, here an ApprovalLedger the test fills only after the Match succeeded;
  - the ATM application: raw XFS4IoT messages to both services.
"""
from __future__ import annotations

from decimal import Decimal

import pytest

from drivers.base import open_device
from simulator.dispenser import start_dispenser
from tests.bridge.conftest import FACE, KEY, import_payload, live_camera
from tests.bridge.xfs_client import XfsClient, code
from xfs4iot_bridge import BridgeDevices

pytestmark = pytest.mark.timeout(120)


@pytest.fixture()
def dispenser():
    d = start_dispenser(KEY)
    yield d
    d.stop()


@pytest.fixture()
def bridge(make_bridge, dispenser):
    driver = open_device("dispenser", "xfs4iot", url=dispenser.publisher_url)
    yield make_bridge(BridgeDevices(camera=live_camera(), dispenser=driver))
    driver.close()


def verify_customer(atm: XfsClient, template: str) -> bool:
    """The ATM application's biometric step: import the customer's template, read, verify."""
    assert code(atm.complete("Biometric.Import", import_payload((FACE, template)), version="3.0")) == "success"
    read = atm.complete("Biometric.Read", {"dataTypes": [{"format": FACE}], "numCaptures": 0, "mode": "match"})
    assert code(read) == "success"
    match = atm.complete("Biometric.Match", {"compareMode": "verify", "identifier": "id1", "maximum": 1,
                                             "threshold": 50})
    assert code(match) == "success"
    return "id1" in match["payload"]["candidates"]


def dispense(atm_cdm: XfsClient, token: str, amount: float, currency: str = "EUR") -> dict:
    return atm_cdm.complete("CashDispenser.Dispense", {"denomination": {"currencies": {currency: amount}},
                                                       "position": "default", "token": token}, version="3.0")


def test_verified_customer_gets_exactly_the_authorised_amount_once(bridge, dispenser, ledger, face_templates):
    with XfsClient(bridge.url) as atm, XfsClient(dispenser.url) as cdm:
        assert verify_customer(atm, face_templates["obama2"])
        ledger.approve("txn-0001", "50.00", "EUR")          # the bank host approves this session

        done = atm.complete("BiogateAuthorisation.GetDispenseToken", {"sessionId": "txn-0001"}, version="1.0")
        assert code(done) == "success"
        token, amount, currency = done["payload"]["token"], done["payload"]["amount"], done["payload"]["currency"]
        assert (amount, currency) == (50.0, "EUR")
        assert token.startswith("NONCE=") and ",DISPENSE1=50.00EUR," in token

        # over the authorised amount: refused, nothing moves, the token stays good
        assert code(dispense(cdm, token, 60.0)) == "invalidToken"
        # forged: the amount raised inside the token
        assert code(dispense(cdm, token.replace("DISPENSE1=50.00EUR", "DISPENSE1=90.00EUR"), 90.0)) == \
            "invalidTokenHMAC"
        assert dispenser.dispensed == []

        assert code(dispense(cdm, token, amount)) == "success"
        assert code(dispense(cdm, token, amount)) == "invalidToken"        # replay
        # the approval was single-use
        again = atm.complete("BiogateAuthorisation.GetDispenseToken", {"sessionId": "txn-0001"}, version="1.0")
        assert code(again) == "authorisationRequired"

    assert [(r.amount, r.currency) for r in dispenser.dispensed] == [(Decimal("50.00"), "EUR")]
    assert dispenser.totals() == {"EUR": Decimal("50.00")}


def test_impostor_gets_no_approval_and_no_token(bridge, dispenser, ledger, face_templates):
    with XfsClient(bridge.url) as atm:
        assert not verify_customer(atm, face_templates["biden"])   # the account holder is someone else
        # the host approves nothing, so no token can be had for this session
        done = atm.complete("BiogateAuthorisation.GetDispenseToken", {"sessionId": "txn-0002"}, version="1.0")
        assert code(done) == "authorisationRequired"
    assert dispenser.dispensed == []


def test_token_request_errors(make_bridge, bridge, ledger):
    with XfsClient(bridge.url) as atm:
        for bad in ({}, {"sessionId": ""}, {"sessionId": 12}, {"sessionId": "x" * 200}):
            assert code(atm.complete("BiogateAuthorisation.GetDispenseToken", bad, version="1.0")) == "invalidData"
    no_dispenser = make_bridge(BridgeDevices(camera=live_camera()))
    ledger.approve("txn-0003", "20.00", "EUR")
    with XfsClient(no_dispenser.url) as atm:
        done = atm.complete("BiogateAuthorisation.GetDispenseToken", {"sessionId": "txn-0003"}, version="1.0")
        assert code(done) == "deviceNotReady"


def test_unreachable_dispenser_keeps_the_approval(make_bridge, ledger, dispenser):
    driver = open_device("dispenser", "xfs4iot", url=dispenser.url, connect_timeout=1)
    bridge = make_bridge(BridgeDevices(camera=live_camera(), dispenser=driver))
    ledger.approve("txn-0004", "20.00", "EUR")
    port = dispenser.port
    dispenser.stop()
    with XfsClient(bridge.url) as atm:
        done = atm.complete("BiogateAuthorisation.GetDispenseToken", {"sessionId": "txn-0004"}, version="1.0")
        assert code(done) == "hardwareError"
        back = start_dispenser(KEY, port=port)
        try:
            done = atm.complete("BiogateAuthorisation.GetDispenseToken", {"sessionId": "txn-0004"}, version="1.0")
            assert code(done) == "success" and done["payload"]["amount"] == 20.0
        finally:
            back.stop()
            driver.close()


def test_bridge_and_dispenser_with_different_keys(make_bridge, ledger, dispenser):
    driver = open_device("dispenser", "xfs4iot", url=dispenser.url)
    bridge = make_bridge(BridgeDevices(camera=live_camera(), dispenser=driver), dispense_key=b"another key")
    ledger.approve("txn-0005", "20.00", "EUR")
    with XfsClient(bridge.url) as atm, XfsClient(dispenser.url) as cdm:
        token = atm.complete("BiogateAuthorisation.GetDispenseToken", {"sessionId": "txn-0005"},
                             version="1.0")["payload"]["token"]
        assert code(dispense(cdm, token, 20.0)) == "invalidTokenHMAC"
    driver.close()
    assert dispenser.dispensed == []
