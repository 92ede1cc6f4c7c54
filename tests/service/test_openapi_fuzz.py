"""Property-based run against the OpenAPI document (schemathesis): no request may produce a 5xx.

Every operation is exercised with generated valid and invalid requests, under each role's key in turn,
against a live daemon over HTTP; 4xx answers must carry the structured error body.
"""
from __future__ import annotations

import itertools

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from edge.service.server import DaemonThread
from tests.service.conftest import KEYS, make_config

pytestmark = pytest.mark.timeout(900)

_roles = itertools.cycle(["terminal", "teller", "auditor", "admin"])


@pytest.fixture(scope="module")
def live_daemon(tmp_path_factory):
    cfg = make_config(tmp_path_factory.mktemp("fuzz"), {
        "devices": {"camera": {"backend": "simulated", "options": {"script": "no_face", "realtime": False}},
                    "capture_timeout_s": 0.5},
        "policy": {"liveness_required": False},
    })
    with DaemonThread(cfg) as d:
        yield d


def _operations(app):
    schema = schemathesis.openapi.from_dict(app.openapi())
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_no_server_errors(live_daemon, mode):
    # schemathesis' pytest plugin does not load under pytest 9, so its strategies are driven directly.
    operations = _operations(live_daemon.daemon.app)
    assert len(operations) >= 20
    failures = []
    for operation in operations:
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy(generation_mode=mode))
        def exercise(case):
            role = next(_roles)
            response = case.call(base_url=live_daemon.url, headers={"X-API-Key": KEYS[role]}, timeout=30)
            assert response.status_code < 500, (f"{case.method} {case.formatted_path} as {role}: "
                                                f"{response.status_code} {response.text[:300]}")
            if response.status_code >= 400:
                body = response.json()
                assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body

        try:
            exercise()
        except AssertionError as exc:
            failures.append(str(exc)[:600])
    assert not failures, "\n".join(failures)
