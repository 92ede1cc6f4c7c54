"""Privacy guarantees of the daemon: nothing biometric in logs, evidence retention, erasure of samples."""
from __future__ import annotations

import base64
import datetime as dt
import io
import logging
import time

import pytest

from edge.service.logs import JsonFormatter, configure_logging
from edge.service.server import DaemonThread
from edge.store import EvidenceMeta, iso, new_id, open_store, utcnow
from tests.service.conftest import client, make_config
from tests.service.test_api_face import FACE_ONLY, enrol, open_session

pytestmark = pytest.mark.timeout(300)


def test_no_template_or_image_bytes_in_logs(tmp_path, examples_required):
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("DEBUG", stream=stream)
    try:
        with DaemonThread(make_config(tmp_path, FACE_ONLY)) as d:
            cid = enrol(d.url, "card-logs")
            s = open_session(d.url, "card-logs")
            decision = client(d.url, "terminal").post(f"/v1/sessions/{s['session_id']}/attempts").json()
            bundle = client(d.url, "admin").get(f"/v1/customers/{cid}/templates/export").json()
            auditor = client(d.url, "auditor")
            ev = auditor.get("/v1/evidence", params={"decision_id": decision["decision_id"]}).json()[0]
            jpeg = auditor.get(f"/v1/evidence/{ev['id']}").content
            # import the same bundle back: templates travel through the request body too
            client(d.url, "admin").post(f"/v1/customers/{cid}/templates", json={"bundle": bundle})
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    text = stream.getvalue()
    assert "verification decided" in text, "the test must actually have captured the daemon's logs"
    secrets = [t["data"] for t in bundle["templates"]] + [base64.b64encode(jpeg).decode()]
    for blob in secrets:
        for start in range(0, len(blob) - 24, 97):       # any 24-character window of the base64
            assert blob[start:start + 24] not in text
    raw = [base64.b64decode(t["data"]) for t in bundle["templates"]] + [jpeg]
    for data in raw:
        assert data[20:44].hex() not in text and repr(data[20:44])[2:-1] not in text


def test_log_formatter_redacts_bytes_and_arrays():
    import numpy as np

    record = logging.LogRecord("t", logging.INFO, __file__, 1, "sample %s", (b"\x01" * 600,), None)
    record.template = bytearray(512)
    record.frame = np.zeros((150, 150, 3), np.uint8)
    out = JsonFormatter().format(record)
    assert "<600 bytes>" in out and "<512 bytes>" in out and "<array 150x150x3 uint8>" in out
    assert "\\u0001" not in out


def test_expired_evidence_is_purged_and_audited(tmp_path, examples_required):
    cfg = make_config(tmp_path, FACE_ONLY)
    past = utcnow() - dt.timedelta(days=181)
    with open_store(cfg) as store:
        with store.transaction() as tx:
            old = EvidenceMeta(new_id("evi"), "dec_old", None, "image/jpeg", iso(past),
                               iso(past + dt.timedelta(days=180)))
            tx.add_evidence(old, b"\xff\xd8old")
            fresh = EvidenceMeta(new_id("evi"), "dec_new", None, "image/jpeg", iso(utcnow()),
                                 iso(utcnow() + dt.timedelta(days=180)))
            tx.add_evidence(fresh, b"\xff\xd8new")
    with DaemonThread(cfg) as d:            # the daemon's scheduled job purges at start-up
        auditor = client(d.url, "auditor")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ids = {e["id"] for e in auditor.get("/v1/evidence").json()}
            if old.id not in ids:
                break
            time.sleep(0.2)
        assert old.id not in ids and fresh.id in ids
        assert auditor.get(f"/v1/evidence/{old.id}").status_code == 404
        events = auditor.get("/v1/audit", params={"limit": 1000}).json()
        purged = [e for e in events if e["event"] == "evidence.purged"]
        assert purged and old.id in purged[0]["details"]["evidence_ids"]
        # the admin endpoint runs the same job on demand
        assert client(d.url, "admin").post("/v1/admin/evidence/purge").json() == {"purged": 0}
        assert client(d.url, "teller").post("/v1/admin/evidence/purge").status_code == 403
