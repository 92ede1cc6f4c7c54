"""Fingerprints through the Biometric service: ISO/IEC 19794-2 (isoFmd) templates, real FVC2000
impressions on the scanner, Present/Detected/Remove events and the unsolicited SubjectRemovedEvent."""
from __future__ import annotations

import base64

import pytest

from tests.bridge.conftest import FACE, FINGER, FvcScanner, fvc_image, import_payload, live_camera
from tests.bridge.xfs_client import XfsClient, code, error_code
from xfs4iot_bridge import BridgeDevices

pytestmark = pytest.mark.timeout(120)
READ_FINGER = {"dataTypes": [{"format": FINGER}], "numCaptures": 0, "mode": "match"}


@pytest.fixture(scope="module")
def finger_engine(engine):
    if FINGER not in engine.formats:
        pytest.skip("the fingerprint package's public API (edge.biometrics.finger) is not available")
    return engine


@pytest.fixture(scope="module")
def finger_templates(finger_engine) -> dict[str, str]:
    """Enrolment templates from other impressions: 101_2 (the customer's finger), 102_1 (another)."""
    import cv2

    out = {}
    for key, (finger, impression) in {"customer": (101, 2), "other": (102, 1)}.items():
        image = cv2.imread(str(fvc_image("DB1_B", finger, impression)), cv2.IMREAD_GRAYSCALE)
        out[key] = base64.b64encode(finger_engine.finger_template(image)).decode("ascii")
    return out


def scanner_with(finger: int, impression: int) -> FvcScanner:
    return FvcScanner(fvc_image("DB1_B", finger, impression))


def names(events):
    return [e["header"]["name"] for e in events]


def test_finger_verify_with_events(make_bridge, finger_templates):
    bridge = make_bridge(BridgeDevices(scanner=scanner_with(101, 1)))
    with XfsClient(bridge.url) as c:
        caps = c.complete("Common.Capabilities", version="3.0")["payload"]["biometric"]
        assert caps["type"]["fingerprint"] is True and caps["dataFormats"][FINGER] is True
        c.complete("Biometric.Import", import_payload((FINGER, finger_templates["customer"])), version="3.0")
        ack, events, done = c.run("Biometric.Read", READ_FINGER)
        assert names(events) == ["Biometric.PresentSubjectEvent", "Biometric.SubjectDetectedEvent",
                                 "Biometric.RemoveSubjectEvent"]
        assert code(done) == "success"
        removed = c.wait_unsolicited("Biometric.SubjectRemovedEvent")
        assert "requestId" not in removed["header"]
        assert c.complete("Common.Status", version="3.0")["payload"]["biometric"]["subject"] == "notPresent"
        match = c.complete("Biometric.Match", {"compareMode": "verify", "identifier": "id1", "threshold": 50})
        assert code(match) == "success" and list(match["payload"]["candidates"]) == ["id1"]


def test_other_finger_is_not_a_candidate(make_bridge, finger_templates):
    bridge = make_bridge(BridgeDevices(scanner=scanner_with(101, 1)))
    with XfsClient(bridge.url) as c:
        c.complete("Biometric.Import", import_payload((FINGER, finger_templates["other"])), version="3.0")
        assert code(c.complete("Biometric.Read", READ_FINGER)) == "success"
        match = c.complete("Biometric.Match", {"compareMode": "verify", "identifier": "id1", "threshold": 50})
        assert code(match) == "success" and match["payload"]["candidates"] == {}


def test_face_and_finger_in_one_read(make_bridge, finger_templates, face_templates):
    bridge = make_bridge(BridgeDevices(camera=live_camera(), scanner=scanner_with(101, 3)))
    with XfsClient(bridge.url) as c:
        c.complete("Biometric.Import", import_payload((FACE, face_templates["obama2"]),
                                                      (FINGER, finger_templates["customer"])), version="3.0")
        c.complete("Biometric.SetDataPersistence", {"persistenceMode": "persist"})
        ack, events, done = c.run("Biometric.Read", {"dataTypes": [{"format": FACE}, {"format": FINGER}],
                                                      "mode": "match"})
        assert code(done) == "success"
        assert names(events) == ["Biometric.PresentSubjectEvent", "Biometric.SubjectDetectedEvent",
                                 "Biometric.RemoveSubjectEvent"] * 2
        for ident in ("id1", "id2"):
            match = c.complete("Biometric.Match", {"compareMode": "verify", "identifier": ident, "threshold": 50})
            assert list(match["payload"]["candidates"]) == [ident]
        identity = c.complete("Biometric.Match", {"compareMode": "identity", "maximum": 0, "threshold": 50})
        assert set(identity["payload"]["candidates"]) == {"id1", "id2"}


def test_scan_mode_returns_an_iso_record(make_bridge, finger_engine):
    bridge = make_bridge(BridgeDevices(scanner=scanner_with(103, 1)))
    with XfsClient(bridge.url) as c:
        done = c.complete("Biometric.Read", {"dataTypes": [{"format": FINGER}], "mode": "scan"})
        record = base64.b64decode(done["payload"]["dataRead"][0]["data"])
        assert record[:4] == b"FMR\x00"     # ISO/IEC 19794-2 format identifier
        finger_engine.wipe(finger_engine.parse_template(FINGER, record))


def test_garbage_iso_record_is_invalid_data(make_bridge, finger_engine):
    bridge = make_bridge(BridgeDevices(scanner=scanner_with(101, 1)))
    with XfsClient(bridge.url) as c:
        bad = base64.b64encode(b"FMR\x00 20\x00" + bytes(40)).decode()
        done = c.complete("Biometric.Import", import_payload((FINGER, bad)), version="3.0")
        assert (code(done), error_code(done)) == ("commandErrorCode", "invalidData")


def test_finger_read_cancelled_while_waiting_for_the_finger(make_bridge, finger_engine):
    scanner = scanner_with(101, 1)
    scanner.arrive_s = 3600.0   # nobody puts a finger on
    bridge = make_bridge(BridgeDevices(scanner=scanner))
    with XfsClient(bridge.url) as c:
        rid = c.send("Biometric.Read", READ_FINGER)
        assert c.next_for(rid)["header"]["status"] is None
        assert c.next_for(rid)["header"]["name"] == "Biometric.PresentSubjectEvent"
        c.complete("Common.Cancel", {"requestIds": [rid]})
        assert code(c.next_for(rid)) == "canceled"
        assert scanner.captures == 0


def test_finger_read_on_the_virtual_serial_module(make_bridge, finger_templates):
    """The real `zfm` driver on a pseudo-terminal served by the virtual module (simulator.fingerprint):
    the finger is placed while the Read waits and lifted after the RemoveSubjectEvent."""
    import threading

    from drivers.base import open_device

    try:
        from simulator.fingerprint import start_module
    except ImportError as exc:
        pytest.skip(f"the virtual fingerprint module is not available: {exc}")
    module = start_module(profile="zfm", source="none")
    scanner = open_device("fingerprint", "zfm", port=module.port)
    try:
        bridge = make_bridge(BridgeDevices(scanner=scanner))
        with XfsClient(bridge.url, timeout=30) as c:
            c.complete("Biometric.Import", import_payload((FINGER, finger_templates["customer"])), version="3.0")
            rid = c.send("Biometric.Read", READ_FINGER)
            assert c.next_for(rid)["header"]["status"] is None
            assert c.next_for(rid)["header"]["name"] == "Biometric.PresentSubjectEvent"
            threading.Timer(0.3, module.place, args=(str(fvc_image("DB1_B", 101, 1)),)).start()
            assert c.next_for(rid)["header"]["name"] == "Biometric.SubjectDetectedEvent"
            assert c.next_for(rid)["header"]["name"] == "Biometric.RemoveSubjectEvent"
            assert code(c.next_for(rid)) == "success"
            module.lift()
            c.wait_unsolicited("Biometric.SubjectRemovedEvent")
            match = c.complete("Biometric.Match", {"compareMode": "verify", "identifier": "id1", "threshold": 50})
            assert code(match) == "success" and list(match["payload"]["candidates"]) == ["id1"]
    finally:
        scanner.close()
        module.close()
