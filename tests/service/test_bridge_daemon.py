"""The daemon's verification sessions authorise dispenses through the XFS4IoT bridge.

`biogate serve --simulated` in-process (simulator.terminal): an ATM application opens a session over HTTP asking for the token
to come through the bridge, the customer is verified (face + finger through the real drivers), and the
application then asks the bridge (BiogateAuthorisation.GetDispenseToken) for the token and sends
CashDispenser.Dispense to the simulated dispenser: it pays exactly the session's amount, once.
"""
from __future__ import annotations

from decimal import Decimal

import pytest

from simulator.terminal import SimulatedTerminal
from tests.bridge.xfs_client import XfsClient, code
from tests.conftest import require_data
from tests.service.conftest import client, make_config

pytestmark = pytest.mark.timeout(300)


def dispense(cdm: XfsClient, token: str, amount: float, currency: str = "EUR") -> dict:
    return cdm.complete("CashDispenser.Dispense", {"denomination": {"currencies": {currency: amount}},
                                                   "position": "default", "token": token}, version="3.0")


def test_session_authorises_the_dispense_through_the_bridge(tmp_path):
    require_data("faces", "lfw", "images")
    require_data("fingerprints", "fvc2000", "DB1_B")
    cfg = make_config(tmp_path, {"bridge": {"enabled": True, "ports": [0]}})
    with SimulatedTerminal(cfg, camera_transport="inprocess") as d:
        rig = d.rig
        teller = client(d.url, "teller")
        cid = teller.post("/v1/customers", json={
            "display_name": "Alice", "card_refs": ["card-bridge"],
            "consent": {"purpose": "ATM", "modalities": ["face", "finger"], "given_by": "Alice"}}).json()["id"]
        rig.present(face="lfw:Colin_Powell/1", finger="fvc:DB1_B/101/1-3")
        assert teller.post(f"/v1/customers/{cid}/enrol/face", json={}).status_code == 200
        assert teller.post(f"/v1/customers/{cid}/enrol/finger", json={"positions": ["right_index"]}).status_code == 200

        terminal = client(d.url, "terminal")
        s = terminal.post("/v1/sessions", json={"operation": "cash_withdrawal", "amount": "70", "currency": "EUR",
                                                "card_ref": "card-bridge", "token_delivery": "bridge"}).json()
        rig.present(face="lfw:Colin_Powell/2", finger="fvc:DB1_B/101/6")
        result = terminal.post(f"/v1/sessions/{s['session_id']}/attempts").json()
        assert result["outcome"] == "allow", result
        assert result["authorisation"] is None            # the token goes through the bridge, not here

        bridge_url = d.addresses()["xfs4iot"]["Biometric1"]
        with XfsClient(bridge_url, token=d.daemon.runtime.secrets.bridge_client_token) as atm, XfsClient(rig.dispenser.url) as cdm:
            done = atm.complete("BiogateAuthorisation.GetDispenseToken", {"sessionId": s["session_id"]},
                                version="1.0")
            assert code(done) == "success", done
            token = done["payload"]["token"]
            assert (done["payload"]["amount"], done["payload"]["currency"]) == (70.0, "EUR")
            assert code(dispense(cdm, token, 90.0)) == "invalidToken"                       # over the amount
            forged = token.replace("DISPENSE1=70.00EUR", "DISPENSE1=90.00EUR")
            assert code(dispense(cdm, forged, 90.0)) == "invalidTokenHMAC"
            assert code(dispense(cdm, token, 70.0)) == "success"
            assert code(dispense(cdm, token, 70.0)) == "invalidToken"                       # replay
            again = atm.complete("BiogateAuthorisation.GetDispenseToken", {"sessionId": s["session_id"]},
                                 version="1.0")
            assert code(again) == "authorisationRequired"                                  # single use
            # a session that was never allowed gets nothing
            denied = terminal.post("/v1/sessions", json={"operation": "cash_withdrawal", "amount": "70",
                                                         "currency": "EUR", "card_ref": "card-unknown",
                                                         "token_delivery": "bridge"}).json()
            nothing = atm.complete("BiogateAuthorisation.GetDispenseToken", {"sessionId": denied["session_id"]},
                                   version="1.0")
            assert code(nothing) == "authorisationRequired"
        assert [(r.amount, r.currency) for r in rig.dispenser.dispensed] == [(Decimal("70.00"), "EUR")]
