"""The Biometric service over a real WebSocket, from the XFS4IoT message shapes in the notes.

Face path on the virtual camera (the customer `example:obama`) with the real face engine;
enrolment templates come from other photos (obama2 = the customer, biden = an impostor).
"""
from __future__ import annotations

import base64
import json
import logging

import pytest

from tests.bridge.conftest import FACE, empty_camera, import_payload, live_camera
from tests.bridge.xfs_client import CLIENT_LOGGER, XfsClient, code, error_code
from xfs4iot_bridge import BridgeDevices

pytestmark = pytest.mark.timeout(90)
READ_FACE = {"dataTypes": [{"format": FACE}], "numCaptures": 0, "mode": "match"}


def names(events: list[dict]) -> list[str]:
    return [e["header"]["name"] for e in events]


@pytest.fixture()
def bridge(make_bridge):
    return make_bridge()


@pytest.fixture()
def client(bridge):
    with XfsClient(bridge.url) as c:
        yield c


# --- discovery, capabilities, status ----------------------------------------------------------------

def test_discovery_from_the_publisher(bridge):
    assert bridge.url == f"ws://127.0.0.1:{bridge.port}/xfs4iot/v1.0/Biometric1/"
    with XfsClient(bridge.publisher_url) as c:
        ack, events, done = c.run("ServicePublisher.GetServices")
    assert ack["header"]["type"] == "acknowledge" and ack["header"]["status"] is None
    assert names(events) == ["ServicePublisher.ServiceDetailEvent"]
    assert code(done) == "success"
    assert done["payload"]["services"] == [{"serviceURI": bridge.url}]
    assert done["payload"]["vendorName"] == "biogate"


def test_unknown_paths_are_refused(bridge):
    from websockets.exceptions import InvalidStatus

    for path in ("/", "/xfs4iot/v1.0/Camera1/", "/xfs4iot/v2.0/"):
        with pytest.raises(InvalidStatus) as exc:
            XfsClient(f"ws://127.0.0.1:{bridge.port}{path}")
        assert exc.value.response.status_code == 404


def test_first_free_xfs4iot_port_is_used(make_bridge):
    first = make_bridge(ports=list(range(5846, 5857)))
    second = make_bridge(ports=[first.port] + list(range(5846, 5857)))
    assert 5846 <= first.port <= 5856 and second.port != first.port and 5846 <= second.port <= 5856


def test_capabilities(client):
    done = client.complete("Common.Capabilities", version="3.0")
    assert code(done) == "success"
    bio = done["payload"]["biometric"]
    assert bio["type"]["facialFeatures"] is True
    assert bio["dataFormats"][FACE] is True
    assert bio["compareModes"] == {"verify": True, "identity": True}
    assert bio["matchSupported"] in ("storedMatch", "combinedMatch")
    assert bio["persistenceModes"] == {"persist": True, "clear": True}
    assert set(bio["clearData"]) == {"scannedData", "importedData", "setMatchedData"}
    commands = {c for iface in done["payload"]["interfaces"] for c in iface["commands"]}
    assert {"Biometric.Read", "Biometric.Import", "Biometric.Match", "Biometric.SetMatch",
            "Biometric.GetStorageInfo", "Biometric.Clear", "Biometric.Reset", "Biometric.SetDataPersistence",
            "Common.Status", "Common.Capabilities", "Common.Cancel",
            "BiogateAuthorisation.GetDispenseToken"} <= commands
    events = {e for iface in done["payload"]["interfaces"] for e in iface["events"]}
    assert {"Biometric.PresentSubjectEvent", "Biometric.SubjectDetectedEvent", "Biometric.RemoveSubjectEvent",
            "Biometric.SubjectRemovedEvent", "Biometric.DataClearedEvent"} <= events


def test_status(client):
    done = client.complete("Common.Status", version="3.0")
    assert done["payload"]["common"]["device"] == "online"
    bio = done["payload"]["biometric"]
    assert bio["dataPersistence"] == "clear" and bio["capture"] is False
    assert bio["subject"] in ("present", "notPresent", "unknown")


# --- the verification flow ----------------------------------------------------------------------

def test_import_read_match_verify(client, face_templates):
    ack, _, done = client.run("Biometric.Import", import_payload((FACE, face_templates["obama2"])), version="3.0")
    assert ack["header"]["status"] is None
    assert code(done) == "success" and done["payload"]["templates"] == {"id1": {"format": FACE}}
    info = client.complete("Biometric.GetStorageInfo")
    assert info["payload"]["templates"] == {"id1": {"format": FACE}}

    ack, events, done = client.run("Biometric.Read", READ_FACE)
    assert ack["header"]["status"] is None
    assert names(events) == ["Biometric.PresentSubjectEvent", "Biometric.SubjectDetectedEvent",
                             "Biometric.RemoveSubjectEvent"]
    assert all(e["header"]["requestId"] == ack["header"]["requestId"] for e in events)
    assert code(done) == "success"
    assert done["payload"]["dataRead"] == [{"type": {"format": FACE}}]   # match mode: data stays inside

    done = client.complete("Biometric.Match", {"compareMode": "verify", "identifier": "id1", "maximum": 1,
                                               "threshold": 50})
    assert code(done) == "success"
    assert list(done["payload"]["candidates"]) == ["id1"]
    assert 50 <= done["payload"]["candidates"]["id1"]["confidenceLevel"] <= 100
    assert "templateData" not in done["payload"]["candidates"]["id1"]
    # persistence mode clear (the default): the capture was used, so it is gone
    cleared = client.wait_unsolicited("Biometric.DataClearedEvent")
    assert cleared["payload"] == {"clearData": "scannedData"} and "requestId" not in cleared["header"]
    again = client.complete("Biometric.Match", {"compareMode": "verify", "identifier": "id1", "threshold": 50})
    assert (code(again), error_code(again)) == ("commandErrorCode", "noCaptureData")


def test_impostor_is_not_a_candidate(client, face_templates):
    client.complete("Biometric.Import", import_payload((FACE, face_templates["biden"])), version="3.0")
    assert code(client.complete("Biometric.Read", READ_FACE)) == "success"
    done = client.complete("Biometric.Match", {"compareMode": "verify", "identifier": "id1", "threshold": 50})
    assert code(done) == "success" and done["payload"]["candidates"] == {}


def test_identity_ranks_the_customer_first(client, face_templates):
    done = client.complete("Biometric.Import", import_payload((FACE, face_templates["biden"]),
                                                              (FACE, face_templates["obama2"])), version="3.0")
    assert list(done["payload"]["templates"]) == ["id1", "id2"]
    client.complete("Biometric.SetDataPersistence", {"persistenceMode": "persist"})
    assert code(client.complete("Biometric.Read", READ_FACE)) == "success"
    everyone = client.complete("Biometric.Match", {"compareMode": "identity", "maximum": 0, "threshold": 0})
    levels = {k: v["confidenceLevel"] for k, v in everyone["payload"]["candidates"].items()}
    assert set(levels) == {"id1", "id2"} and levels["id2"] > levels["id1"]
    best = client.complete("Biometric.Match", {"compareMode": "identity", "maximum": 1, "threshold": 50})
    assert list(best["payload"]["candidates"]) == ["id2"]


def test_threshold_is_applied_to_the_confidence(client, face_templates):
    client.complete("Biometric.Import", import_payload((FACE, face_templates["obama2"])), version="3.0")
    client.complete("Biometric.SetDataPersistence", {"persistenceMode": "persist"})
    client.complete("Biometric.Read", READ_FACE)
    level = client.complete("Biometric.Match", {"compareMode": "verify", "identifier": "id1", "threshold": 0})[
        "payload"]["candidates"]["id1"]["confidenceLevel"]
    at = client.complete("Biometric.Match", {"compareMode": "verify", "identifier": "id1", "threshold": level})
    assert list(at["payload"]["candidates"]) == ["id1"]
    if level < 100:
        above = client.complete("Biometric.Match", {"compareMode": "verify", "identifier": "id1",
                                                    "threshold": level + 1})
        assert above["payload"]["candidates"] == {}


def test_scan_mode_returns_the_template_and_clears_it(client):
    ack, events, done = client.run("Biometric.Read", {"dataTypes": [{"format": FACE}], "mode": "scan"})
    assert code(done) == "success"
    (item,) = done["payload"]["dataRead"]
    assert item["type"] == {"format": FACE}
    assert base64.b64decode(item["data"])[:4] == b"BGFT"   # biogate face template v1
    assert client.wait_unsolicited("Biometric.DataClearedEvent")["payload"] == {"clearData": "scannedData"}
    status = client.complete("Common.Status", version="3.0")
    assert status["payload"]["biometric"]["capture"] is False


def test_set_match_then_read_then_match(client, face_templates):
    client.complete("Biometric.Import", import_payload((FACE, face_templates["obama2"])), version="3.0")
    done = client.complete("Biometric.SetMatch", {"compareMode": "verify", "identifier": "id1", "threshold": 60})
    assert code(done) == "success"
    client.complete("Biometric.Read", READ_FACE)
    done = client.complete("Biometric.Match", {})
    assert code(done) == "success" and list(done["payload"]["candidates"]) == ["id1"]
    bad = client.complete("Biometric.SetMatch", {"compareMode": "sideways", "identifier": "id1", "threshold": 60})
    assert (code(bad), error_code(bad)) == ("commandErrorCode", "modeNotSupported")


def test_commands_execute_in_order(client, face_templates):
    """Import, Read and Match sent back to back: the Match only runs after the Read."""
    rids = [client.send("Biometric.Import", import_payload((FACE, face_templates["obama2"])), version="3.0"),
            client.send("Biometric.Read", READ_FACE),
            client.send("Biometric.Match", {"compareMode": "verify", "identifier": "id1", "threshold": 50})]
    completions = []
    while len(completions) < 3:
        msg = client.recv()
        if msg["header"]["type"] == "completion":
            completions.append(msg)
    assert [m["header"]["requestId"] for m in completions] == rids
    assert [code(m) for m in completions] == ["success"] * 3
    assert list(completions[2]["payload"]["candidates"]) == ["id1"]


def test_clear_reset_and_storage_info(client, face_templates):
    client.complete("Biometric.Import", import_payload((FACE, face_templates["obama2"])), version="3.0")
    assert code(client.complete("Biometric.Clear", {"clearData": "importedData"})) == "success"
    assert client.wait_unsolicited("Biometric.DataClearedEvent")["payload"] == {"clearData": "importedData"}
    done = client.complete("Biometric.GetStorageInfo")
    assert (code(done), error_code(done)) == ("commandErrorCode", "noImportedData")
    client.complete("Biometric.Import", import_payload((FACE, face_templates["obama2"])), version="3.0")
    assert code(client.complete("Biometric.Reset", {})) == "success"
    assert client.wait_unsolicited("Biometric.DataClearedEvent")["payload"] == {"clearData": None}
    assert error_code(client.complete("Biometric.GetStorageInfo")) == "noImportedData"
    assert code(client.complete("Biometric.Clear", {"clearData": "everything"})) == "invalidData"


def test_new_import_replaces_and_never_reuses_ids(client, face_templates):
    client.complete("Biometric.Import", import_payload((FACE, face_templates["obama2"])), version="3.0")
    done = client.complete("Biometric.Import", import_payload((FACE, face_templates["biden"])), version="3.0")
    assert done["payload"]["templates"] == {"id2": {"format": FACE}}
    client.complete("Biometric.Read", READ_FACE)
    stale = client.complete("Biometric.Match", {"compareMode": "verify", "identifier": "id1", "threshold": 50})
    assert (code(stale), error_code(stale)) == ("commandErrorCode", "invalidIdentifier")


def test_data_is_dropped_when_the_last_client_leaves(bridge, face_templates):
    with XfsClient(bridge.url) as c:
        c.complete("Biometric.Import", import_payload((FACE, face_templates["obama2"])), version="3.0")
    with XfsClient(bridge.url) as c:
        assert error_code(c.complete("Biometric.GetStorageInfo")) == "noImportedData"


# --- envelope errors ----------------------------------------------------------------------------

def test_malformed_json_is_refused(client):
    client.send_text("{not json")
    ack = client.recv()
    assert ack["header"]["type"] == "acknowledge" and ack["header"]["status"] == "invalidMessage"
    assert "requestId" not in ack["header"]


@pytest.mark.parametrize("header", [
    {"name": "Common.Status", "type": "command"},                                   # no requestId
    {"requestId": 7, "type": "command"},                                            # no name
    {"name": "Common.Status", "requestId": 7},                                      # no type
    {"name": "Common.Status", "requestId": 7, "type": "completion"},                # wrong type
    {"name": "Common.Status", "requestId": 7, "type": "command", "timeout": -5},    # bad timeout
    {"name": "Common.Status", "requestId": "7", "type": "command"},                 # id not an integer
])
def test_bad_headers_are_refused(client, header):
    client.send_text(json.dumps({"header": header, "payload": {}}))
    ack = client.recv()
    assert ack["header"]["type"] == "acknowledge" and ack["header"]["status"] == "invalidMessage"
    # nothing runs: the next command is answered normally
    assert code(client.complete("Common.Status", version="3.0")) == "success"


def test_unknown_command(client):
    ack, _, done = client.run("Biometric.Teleport")
    assert ack["header"]["status"] is None
    assert code(done) == "unsupportedCommand"


def test_duplicate_in_flight_request_id(make_bridge):
    bridge = make_bridge(BridgeDevices(camera=empty_camera()))
    with XfsClient(bridge.url) as c:
        rid = c.send("Biometric.Read", READ_FACE)
        assert c.next_for(rid)["header"]["status"] is None
        assert c.next_for(rid)["header"]["name"] == "Biometric.PresentSubjectEvent"
        c.send("Common.Status", request_id=rid)
        dup = c.next_for(rid)
        assert dup["header"]["type"] == "acknowledge" and dup["header"]["status"] == "invalidRequestID"
        c.complete("Common.Cancel", {"requestIds": [rid]})
        assert code(c.next_for(rid)) == "canceled"


def test_read_cancelled(make_bridge):
    bridge = make_bridge(BridgeDevices(camera=empty_camera()))
    with XfsClient(bridge.url) as c:
        rid = c.send("Biometric.Read", READ_FACE)
        assert c.next_for(rid)["header"]["status"] is None
        assert c.next_for(rid)["header"]["name"] == "Biometric.PresentSubjectEvent"
        status = c.complete("Common.Status", version="3.0")   # runs beside the queue
        assert status["payload"]["common"]["device"] == "deviceBusy"
        cancel_rid = c.send("Common.Cancel", {"requestIds": [rid]})
        first, second = c.next_for(rid), c.collect(cancel_rid)[2]
        assert first["header"]["type"] == "completion" and code(first) == "canceled"
        assert code(second) == "success"
        # the device is free again
        assert code(c.complete("Biometric.GetStorageInfo")) == "commandErrorCode"


def test_cancel_all_queued_and_executing(make_bridge):
    bridge = make_bridge(BridgeDevices(camera=empty_camera()))
    with XfsClient(bridge.url) as c:
        rids = [c.send("Biometric.Read", READ_FACE), c.send("Biometric.GetStorageInfo")]
        c.complete("Common.Cancel", {})
        for rid in rids:
            msgs = [c.next_for(rid)]
            while msgs[-1]["header"]["type"] != "completion":
                msgs.append(c.next_for(rid))
            assert code(msgs[-1]) == "canceled"


def test_read_times_out(make_bridge):
    bridge = make_bridge(BridgeDevices(camera=empty_camera()))
    with XfsClient(bridge.url) as c:
        ack, events, done = c.run("Biometric.Read", READ_FACE, timeout_ms=400)
        assert code(done) == "timeOut"
        assert code(c.complete("Common.Status", version="3.0")) == "success"


def test_read_without_a_subject_fails_after_the_capture_time(make_bridge):
    bridge = make_bridge(BridgeDevices(camera=empty_camera()), capture_timeout_s=0.5)
    with XfsClient(bridge.url) as c:
        done = c.complete("Biometric.Read", READ_FACE)
        assert (code(done), error_code(done)) == ("commandErrorCode", "readFailed")


def test_too_many_requests(make_bridge):
    bridge = make_bridge(BridgeDevices(camera=empty_camera()), max_requests=2)
    with XfsClient(bridge.url) as c:
        a = c.send("Biometric.Read", READ_FACE)
        b = c.send("Biometric.GetStorageInfo")
        third = c.send("Biometric.GetStorageInfo")
        assert c.next_for(a)["header"]["status"] is None
        assert c.next_for(b)["header"]["status"] is None
        assert c.next_for(third)["header"]["status"] == "tooManyRequests"
        c.complete("Common.Cancel", {"requestIds": None})


# --- command errors -----------------------------------------------------------------------------

def test_match_without_imported_data(client):
    done = client.complete("Biometric.Match", {"compareMode": "verify", "identifier": "id1", "threshold": 50})
    assert (code(done), error_code(done)) == ("commandErrorCode", "noImportedData")


@pytest.mark.parametrize("payload, expected", [
    ({"compareMode": "verify", "identifier": "id1", "threshold": 101}, "invalidThreshold"),
    ({"compareMode": "verify", "identifier": "id1", "threshold": -1}, "invalidThreshold"),
    ({"compareMode": "verify", "identifier": "id1", "threshold": "high"}, "invalidThreshold"),
    ({"compareMode": "verify", "identifier": "customer", "threshold": 50}, "invalidIdentifier"),
    ({"compareMode": "verify", "identifier": "id99", "threshold": 50}, "invalidIdentifier"),
    ({"compareMode": "verify", "threshold": 50}, "invalidIdentifier"),
    ({"compareMode": "fuzzy", "identifier": "id1", "threshold": 50}, "invalidCompareMode"),
    ({}, "invalidCompareMode"),
])
def test_match_payload_errors(client, face_templates, payload, expected):
    client.complete("Biometric.Import", import_payload((FACE, face_templates["obama2"])), version="3.0")
    done = client.complete("Biometric.Match", payload)
    assert (code(done), error_code(done)) == ("commandErrorCode", expected)


def test_match_before_any_read(client, face_templates):
    client.complete("Biometric.Import", import_payload((FACE, face_templates["obama2"])), version="3.0")
    done = client.complete("Biometric.Match", {"compareMode": "verify", "identifier": "id1", "threshold": 50})
    assert (code(done), error_code(done)) == ("commandErrorCode", "noCaptureData")


@pytest.mark.parametrize("templates, expected", [
    ([{"type": {"format": FACE}, "data": "***not base64***"}], "invalidData"),
    ([{"type": {"format": FACE}, "data": base64.b64encode(b"BGFT garbage").decode()}], "invalidData"),
    ([{"type": {"format": "iris"}, "data": "AAAA"}], "formatNotSupported"),
    ([{"type": {"format": "ansiFmd"}, "data": "AAAA"}], "formatNotSupported"),
    ([{"type": {"format": FACE, "keyName": "K1", "algorithm": "cbc"}, "data": "AAAA"}], "keyNotFound"),
    ([{"data": "AAAA"}], "invalidData"),
    ([], "invalidData"),
])
def test_import_errors(client, templates, expected):
    done = client.complete("Biometric.Import", {"templates": templates}, version="3.0")
    assert (code(done), error_code(done)) == ("commandErrorCode", expected)


def test_import_capacity(make_bridge, face_templates):
    bridge = make_bridge(template_capacity=2)
    with XfsClient(bridge.url) as c:
        done = c.complete("Biometric.Import", import_payload(*[(FACE, face_templates["biden"])] * 3), version="3.0")
        assert (code(done), error_code(done)) == ("commandErrorCode", "capacityExceeded")


@pytest.mark.parametrize("payload, expected", [
    ({"dataTypes": [{"format": "iris"}], "mode": "match"}, ("commandErrorCode", "formatNotSupported")),
    ({"dataTypes": [{"format": FACE}], "mode": "dream"}, ("commandErrorCode", "modeNotSupported")),
    ({"dataTypes": [{"format": FACE, "keyName": "K"}], "mode": "scan"}, ("commandErrorCode", "keyNotFound")),
    ({"dataTypes": [], "mode": "scan"}, ("invalidData", None)),
    ({"dataTypes": [{"format": FACE}], "numCaptures": -1}, ("invalidData", None)),
])
def test_read_payload_errors(client, payload, expected):
    done = client.complete("Biometric.Read", payload)
    assert (code(done), error_code(done)) == expected


def test_read_needs_the_device(make_bridge):
    bridge = make_bridge(BridgeDevices())
    with XfsClient(bridge.url) as c:
        assert code(c.complete("Biometric.Read", READ_FACE)) == "deviceNotReady"
        assert c.complete("Common.Status", version="3.0")["payload"]["common"]["device"] == "noDevice"


def test_set_data_persistence(client):
    bad = client.complete("Biometric.SetDataPersistence", {"persistenceMode": "forever"})
    assert (code(bad), error_code(bad)) == ("commandErrorCode", "modeNotSupported")
    assert code(client.complete("Biometric.SetDataPersistence", {"persistenceMode": "persist"})) == "success"
    assert client.complete("Common.Status", version="3.0")["payload"]["biometric"]["dataPersistence"] == "persist"


# --- privacy ------------------------------------------------------------------------------------

def test_logs_never_carry_biometric_data(make_bridge, face_templates, caplog):
    caplog.set_level(logging.DEBUG)
    bridge = make_bridge(BridgeDevices(camera=live_camera()))
    with XfsClient(bridge.url) as c:
        c.complete("Biometric.Import", import_payload((FACE, face_templates["obama2"])), version="3.0")
        c.complete("Biometric.SetDataPersistence", {"persistenceMode": "persist"})
        scanned = c.complete("Biometric.Read", {"dataTypes": [{"format": FACE}], "mode": "scan"})
        c.complete("Biometric.Match", {"compareMode": "verify", "identifier": "id1", "threshold": 50})
        c.complete("Biometric.Import", {"templates": [{"type": {"format": FACE}, "data": face_templates["biden"][:-8]}]},
                   version="3.0")
    product = [r for r in caplog.records if not r.name.startswith(CLIENT_LOGGER)]
    assert any(r.name.startswith("xfs4iot_bridge") for r in product), "the bridge logged nothing at all"
    text = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in product)
    secrets = [face_templates["obama2"], face_templates["biden"], scanned["payload"]["dataRead"][0]["data"]]
    for secret in secrets:
        raw = base64.b64decode(secret + "=" * (-len(secret) % 4))
        for needle in (secret[:24], secret[-24:], raw[16:40].hex(), repr(raw[16:40])[2:-1]):
            assert needle not in text


def test_disabled_bridge_and_key_parsing(engine):
    from edge.config import BridgeConfig
    from edge.errors import ConfigError
    from xfs4iot_bridge import dispense_key_from_hex, start_bridge

    with pytest.raises(ConfigError):
        start_bridge(BridgeConfig(enabled=False, ports=[0]), BridgeDevices(), engine, None, None)
    assert dispense_key_from_hex("00ff") == b"\x00\xff" and dispense_key_from_hex(None) is None
    with pytest.raises(ConfigError):
        dispense_key_from_hex("not hex")
