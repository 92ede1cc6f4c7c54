"""The virtual camera's MJPEG server: the stream format, the control endpoints, clients that vanish."""
from __future__ import annotations

import socket
import threading
import time

import cv2
import httpx
import numpy as np
import pytest

from simulator.camera.mjpeg import BOUNDARY, MjpegServer
from simulator.camera.sources import SubjectNotFound, default_subject
from simulator.camera.virtual import VirtualCamera

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def served():
    try:
        default_subject()
    except SubjectNotFound as exc:
        pytest.skip(f"no face images for the virtual camera: {exc}")
    camera = VirtualCamera("live", fps=20, seed=7)
    server = MjpegServer(camera, host="127.0.0.1", port=0, quality=80).start()
    yield camera, server
    server.stop()
    camera.close()


def read_parts(url: str, n: int, timeout: float = 10.0) -> tuple[dict, list[bytes]]:
    """Headers and the first `n` JPEG parts of a multipart/x-mixed-replace stream, parsed by hand."""
    parts: list[bytes] = []
    with httpx.stream("GET", url, timeout=timeout) as response:
        headers = dict(response.headers)
        buf = b""
        for chunk in response.iter_bytes():
            buf += chunk
            while True:
                start = buf.find(f"--{BOUNDARY}\r\n".encode())
                head_end = buf.find(b"\r\n\r\n", start)
                if start < 0 or head_end < 0:
                    break
                head = buf[start:head_end].decode()
                length = int(next(line.split(":")[1] for line in head.split("\r\n") if line.lower().startswith("content-length")))
                body_start = head_end + 4
                if len(buf) < body_start + length + 2:
                    break
                parts.append(buf[body_start : body_start + length])
                assert buf[body_start + length : body_start + length + 2] == b"\r\n"
                buf = buf[body_start + length + 2 :]
            if len(parts) >= n:
                break
    return headers, parts[:n]


def test_stream_is_multipart_jpeg_at_the_camera_pace(served):
    camera, server = served
    assert server.url == f"http://127.0.0.1:{server.port}/stream.mjpg"
    assert server.prompt_url == f"http://127.0.0.1:{server.port}/prompt"
    start = time.monotonic()
    headers, parts = read_parts(server.url, 10)
    elapsed = time.monotonic() - start
    assert headers["content-type"] == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
    frames = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR) for p in parts]
    assert all(f is not None and f.shape == (480, 640, 3) for f in frames)
    assert elapsed >= 8 / 20  # at most the camera's 20 fps: frames are not invented
    snap = httpx.get(server.base_url + "/snapshot.jpg", timeout=5)
    assert snap.headers["content-type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(snap.content, np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3)


def test_control_endpoints(served):
    camera, server = served
    base = server.base_url
    ok = httpx.post(base + "/prompt", json={"action": "turn_left"}, timeout=5)
    assert ok.status_code == 200 and ok.json() == {"ok": True, "action": "turn_left"}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (camera.last_info and "turn_left" in camera.last_info.performing):
        time.sleep(0.05)
    assert "turn_left" in camera.last_info.performing  # the producer keeps the scene running
    assert httpx.post(base + "/prompt", json={"action": "move_closer"}, timeout=5).json()["action"] == "closer"

    bad = httpx.post(base + "/prompt", json={"action": "dance"}, timeout=5)
    assert bad.status_code == 422 and bad.json()["code"] == "input.unknown_action"
    assert httpx.post(base + "/prompt", content=b"{not json", timeout=5).status_code == 400
    assert httpx.post(base + "/prompt", json=["blink"], timeout=5).status_code == 400
    assert httpx.post(base + "/nowhere", json={}, timeout=5).status_code == 404
    assert httpx.get(base + "/nowhere", timeout=5).status_code == 404

    present = httpx.post(base + "/present", json={"script": "no_face"}, timeout=5)
    assert present.status_code == 200 and camera.script == "no_face"
    assert httpx.post(base + "/present", json={"script": "juggling"}, timeout=5).status_code == 422
    assert httpx.post(base + "/fault", json={"fault": "explode"}, timeout=5).status_code == 422

    status = httpx.get(base + "/status", timeout=5).json()
    assert status["script"] == "no_face" and status["frames_encoded"] > 0


def test_unplug_ends_streams_and_replug_restores_them(served):
    camera, server = served
    got: dict = {}

    def viewer() -> None:
        try:
            got["headers"], got["parts"] = read_parts(server.url, 10_000, timeout=10)
        except httpx.HTTPError as exc:
            got["error"] = exc

    thread = threading.Thread(target=viewer)
    thread.start()
    time.sleep(0.5)
    assert server.clients == 1
    httpx.post(server.base_url + "/fault", json={"fault": "unplug"}, timeout=5)
    thread.join(timeout=10)
    assert not thread.is_alive() and 0 < len(got["parts"]) < 10_000  # the stream ended by itself
    assert httpx.get(server.url, timeout=5).status_code == 503
    httpx.post(server.base_url + "/fault", json={"fault": "replug"}, timeout=5)
    _, parts = read_parts(server.url, 2)
    assert len(parts) == 2


def test_clients_that_vanish_do_not_disturb_the_others(served):
    camera, server = served
    for _ in range(5):  # connect, read a little, drop the connection without a word
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.0 200")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # linger 0: a reset, as a crashed viewer leaves it
    _, parts = read_parts(server.url, 3)
    assert len(parts) == 3
    deadline = time.monotonic() + 5
    while server.clients and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.clients == 0


def test_stop_ends_open_streams_promptly(served):
    camera, server = served
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
    sock.recv(1024)
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 3
    sock.settimeout(3)
    data = b"x"
    while data:  # the server closes its end: the viewer reads to EOF
        data = sock.recv(65536)
    sock.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.base_url + "/status", timeout=2)


def test_quality_is_checked():
    with pytest.raises(Exception) as err:
        MjpegServer(object(), quality=0)
    assert getattr(err.value, "code", "") == "input.invalid_quality"
