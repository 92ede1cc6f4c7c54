"""A raw XFS4IoT test client, written from the message shapes in the notes (not the implementation).

    with XfsClient(url) as c:
        ack, events, completion = c.run("Common.Status")
        c.unsolicited          # unsolicited events seen so far

Messages are plain dicts: {"header": {...}, "payload": {...}}.
"""
from __future__ import annotations

import inspect
import itertools
import json
import logging
import time
from typing import Any

from websockets.sync.client import connect

_LEGACY = {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}
CLIENT_LOGGER = "tests.xfs_client"  # the test client's own websockets log (not the product's)


# The connection token the bridge fixtures configure (tests.bridge.conftest.make_bridge).
TEST_CLIENT_TOKEN = "test-client-token-0123456789abcdef"


class XfsClient:
    def __init__(self, url: str, timeout: float = 10.0, token: str | None = TEST_CLIENT_TOKEN):
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.ws = connect(url, open_timeout=5, close_timeout=1, ping_interval=None, proxy=None,
                          max_size=8 * 1024 * 1024, additional_headers=headers,
                          logger=logging.getLogger(CLIENT_LOGGER), **_LEGACY)
        self.timeout = timeout
        self.ids = itertools.count(1)
        self.unsolicited: list[dict] = []
        self.backlog: list[dict] = []   # messages for other requestIds, kept in arrival order

    def __enter__(self) -> "XfsClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.ws.close()

    # raw
    def send_text(self, text: str | bytes) -> None:
        self.ws.send(text)

    def send(self, name: str, payload: dict | None = None, *, request_id: int | None = None,
             timeout: int | None = 0, version: str = "2.0") -> int:
        rid = next(self.ids) if request_id is None else request_id
        header: dict[str, Any] = {"name": name, "requestId": rid, "type": "command", "version": version}
        if timeout is not None:
            header["timeout"] = timeout
        self.ws.send(json.dumps({"header": header, "payload": payload or {}}))
        return rid

    def recv(self, timeout: float | None = None) -> dict:
        msg = json.loads(self.ws.recv(timeout=timeout or self.timeout))
        if msg["header"]["type"] == "unsolicited":
            self.unsolicited.append(msg)
        return msg

    def next_for(self, rid: int | None, timeout: float | None = None) -> dict:
        """The next message with requestId `rid` (None: an acknowledge without requestId)."""
        for i, msg in enumerate(self.backlog):
            if msg["header"].get("requestId") == rid:
                return self.backlog.pop(i)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if msg["header"]["type"] == "unsolicited":
                continue
            if msg["header"].get("requestId") == rid:
                return msg
            self.backlog.append(msg)

    def collect(self, rid: int, timeout: float | None = None) -> tuple[dict, list[dict], dict]:
        """(acknowledge, intermediate events, completion) of command `rid`."""
        ack = self.next_for(rid, timeout)
        assert ack["header"]["type"] == "acknowledge", ack
        events = []
        while True:
            msg = self.next_for(rid, timeout)
            if msg["header"]["type"] == "completion":
                return ack, events, msg
            assert msg["header"]["type"] == "event", msg
            events.append(msg)

    def run(self, name: str, payload: dict | None = None, *, timeout_ms: int | None = 0,
            version: str = "2.0", wait: float | None = None) -> tuple[dict, list[dict], dict]:
        rid = self.send(name, payload, timeout=timeout_ms, version=version)
        return self.collect(rid, wait)

    def complete(self, name: str, payload: dict | None = None, **kw) -> dict:
        """Run a command and return its completion message."""
        return self.run(name, payload, **kw)[2]

    def wait_unsolicited(self, name: str, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.unsolicited:
                if msg["header"]["name"] == name:
                    self.unsolicited.remove(msg)
                    return msg
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if msg["header"]["type"] != "unsolicited":
                self.backlog.append(msg)


def code(completion: dict) -> str:
    return completion["header"]["completionCode"]


def error_code(completion: dict) -> str | None:
    return completion["payload"].get("errorCode")
