"""Issue 14, finding 8: bodies of 16-160 MB with no key were read and parsed before the 401.

Against a real daemon on 127.0.0.1 over raw TCP: the request announces (or streams) far more than
`service.max_upload_bytes`, and the answer must come while almost none of it has been sent, with the
process's memory unchanged.
"""
from __future__ import annotations

import json
import socket
import threading

import pytest

from edge.service.server import DaemonThread
from tests.service.conftest import KEYS, make_config

pytestmark = pytest.mark.timeout(180)

LIMIT = 1_000_000
MB = 1 << 20


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    cfg = make_config(tmp_path_factory.mktemp("limits"), {"service": {"max_upload_bytes": LIMIT}})
    with DaemonThread(cfg) as d:
        yield d


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _read_response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length")), 0)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, json.loads(rest[:length] or b"{}")


def _headers(path: str, extra: dict[str, str]) -> bytes:
    extra = {"Content-Type": "application/json"} | extra
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *[f"{k}: {v}" for k, v in extra.items()]]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _stream_until_answered(sock: socket.socket, total: int, chunked: bool) -> dict:
    """Send up to `total` body bytes in the background; stop as soon as the daemon has answered."""
    sent = {"bytes": 0}
    answered = threading.Event()

    def pump():
        block = b"[" + b"1," * (MB // 2 - 1) + b"1]"
        try:
            while sent["bytes"] < total and not answered.is_set():
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
                sent["bytes"] += len(block)
        except OSError:
            pass   # the daemon closed the connection: what it should do
    t = threading.Thread(target=pump, daemon=True)
    t.start()
    return sent, answered, t


@pytest.mark.parametrize("path", ["/v1/customers", "/v1/sessions", "/v1/customers/cus_x/templates"])
def test_no_key_is_refused_before_the_body_is_read(daemon, path):
    sock = _connect(daemon.url)
    size = 160 * MB
    sock.sendall(_headers(path, {"Content-Length": str(size)}) + b'{"display_name": "' + b"A" * 1000)
    status, body = _read_response(sock)          # answered with 1 kB of the announced 160 MB sent
    sock.close()
    assert status == 401 and body["error"]["code"] == "auth.missing_key"
    sock = _connect(daemon.url)
    sock.sendall(_headers(path, {"Content-Length": str(size), "X-API-Key": "not-a-key"}) + b"{")
    status, body = _read_response(sock)
    sock.close()
    assert status == 401 and body["error"]["code"] == "auth.invalid_key"


def test_announced_oversize_body_is_refused_up_front(daemon):
    sock = _connect(daemon.url)
    sock.sendall(_headers("/v1/customers", {"Content-Length": str(LIMIT + 1), "X-API-Key": KEYS["teller"]}) + b"{")
    status, body = _read_response(sock)
    sock.close()
    assert status == 413 and body["error"]["code"] == "input.body_too_large"


@pytest.mark.parametrize("role", ["teller", None])
def test_chunked_oversize_body_is_cut_off_without_growing_memory(daemon, role):
    before = _rss_bytes()
    sock = _connect(daemon.url)
    extra = {"Transfer-Encoding": "chunked"} | ({"X-API-Key": KEYS[role]} if role else {})
    sock.sendall(_headers("/v1/customers", extra))
    sent, answered, pump = _stream_until_answered(sock, 160 * MB, chunked=True)
    status, body = _read_response(sock)
    answered.set()
    pump.join(timeout=30)
    sock.close()
    assert status == (413 if role else 401), body
    grown = _rss_bytes() - before
    assert grown < 40 * MB, f"memory grew by {grown / MB:.0f} MB"
    assert sent["bytes"] < 100 * MB       # the daemon answered long before the 160 MB were through


def test_console_bodies_are_capped_too(daemon):
    sock = _connect(daemon.url)
    sock.sendall(_headers("/console/login", {"Content-Length": str(50 * MB),
                                             "Content-Type": "application/x-www-form-urlencoded"}) + b"a=")
    status, _ = _read_response(sock)
    sock.close()
    assert status == 413


def test_a_normal_request_still_works(daemon):
    import httpx
    r = httpx.post(daemon.url + "/v1/sessions", headers={"X-API-Key": KEYS["terminal"]},
                   json={"operation": "balance_inquiry", "amount": "0", "currency": "EUR", "card_ref": "c-1"})
    assert r.status_code == 201, r.text
    r = httpx.get(daemon.url + "/healthz", headers={"Authorization": "Bearer " + KEYS["auditor"]})
    assert r.status_code == 200, r.text
