"""The virtual camera as a network camera: MJPEG over HTTP on 127.0.0.1, plus a small control surface.

    server = MjpegServer(camera, host="127.0.0.1", port=0, quality=85).start()
    server.url          # http://127.0.0.1:<port>/stream.mjpg  -> open_device("camera", "opencv", source=server.url)
    server.prompt_url   # http://127.0.0.1:<port>/prompt       -> the opencv backend's prompt_url
    server.stop()

Endpoints (names are a contract: the opencv backend POSTs to `<base>/prompt`):

  GET  /stream.mjpg   multipart/x-mixed-replace JPEG stream (boundary "frame"), the camera's frames as they come
  GET  /snapshot.jpg  the newest frame as one JPEG
  GET  /status        JSON {"script", "frame_index", "clients", "fault", "frames_encoded"}
  POST /prompt        JSON {"action": "blink"|"turn_left"|"turn_right"|"closer"} -> camera.respond(action)
                      (the terminal's on-screen instruction reaching the simulated customer; the liveness
                      name "move_closer" is accepted for "closer")
  POST /present       JSON {"script": ..., "subject": ..., "photo": ..., "second_subject": ...} -> camera.present(...)
  POST /fault         JSON {"fault": "unplug"|"freeze"|"replug"} -> camera.unplug() / freeze() / replug()

Control answers are JSON: 200 {"ok": true, ...}; 400 for a body that is not a JSON object; 422 with the
error's {"code", "message"} for values the camera refuses (unknown action, script or fault).

One producer thread reads the camera at its own pace (the camera's scripts count frames, so the scene
advances the same whatever the number of viewers), encodes each frame once and hands the newest to
every client; a slow client skips frames rather than queueing them. A client that disconnects ends only
its own handler. While the camera is unplugged, open streams end and new ones get 503; while it is
frozen, streams stay open but no frame comes (a reader times out).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

from drivers.camera.errors import CameraTimeout, CameraUnavailable
from edge.errors import BiogateError, InputError
from simulator.camera.presentations import ACTIONS

log = logging.getLogger(__name__)

BOUNDARY = "frame"
STREAM_PATH = "/stream.mjpg"
PROMPT_ALIASES = {"move_closer": "closer"}  # liveness names -> the simulator's
FAULTS = ("unplug", "freeze", "replug")
PROMPT_ACTIONS = ACTIONS  # what the simulated customer can be asked to do


class _Frames:
    """The newest encoded frame and a condition to wait for the next one."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.jpeg: bytes | None = None
        self.seq = 0
        self.unavailable = False  # the camera is unplugged: streams end

    def publish(self, jpeg: bytes) -> None:
        with self.cond:
            self.jpeg = jpeg
            self.seq += 1
            self.unavailable = False
            self.cond.notify_all()

    def set_unavailable(self) -> None:
        with self.cond:
            if not self.unavailable:
                self.unavailable = True
                self.cond.notify_all()


class MjpegServer:
    """Serve `camera` (any drivers.base.Camera; control endpoints need the VirtualCamera's methods)."""

    def __init__(self, camera, host: str = "127.0.0.1", port: int = 0, quality: int = 85):
        if not 1 <= int(quality) <= 100:
            raise InputError("JPEG quality must be 1..100", code="input.invalid_quality")
        self.camera = camera
        self.quality = int(quality)
        self._frames = _Frames()
        self._stop = threading.Event()
        self._clients = 0
        self._clients_lock = threading.Lock()
        self._encoded = 0
        self._producer: threading.Thread | None = None
        self._serving: threading.Thread | None = None
        self.frame_taps: list = []   # callables(jpeg bytes): each encoded frame (the recorder)
        self._httpd = _Server((host, int(port)), _handler_for(self))
        self.host, self.port = self._httpd.server_address[:2]

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The MJPEG stream (what the opencv backend opens)."""
        return self.base_url + STREAM_PATH

    @property
    def prompt_url(self) -> str:
        return self.base_url + "/prompt"

    @property
    def clients(self) -> int:
        """Streams being served now."""
        with self._clients_lock:
            return self._clients

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> "MjpegServer":
        if self._serving is not None:
            return self
        self._producer = threading.Thread(target=self._produce, name="mjpeg-producer", daemon=True)
        self._producer.start()
        self._serving = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                         name="mjpeg-http", daemon=True)
        self._serving.start()
        return self

    def stop(self) -> None:
        """Stop serving: open streams end, the port is released, threads are joined."""
        self._stop.set()
        with self._frames.cond:
            self._frames.cond.notify_all()
        if self._serving is not None:
            self._httpd.shutdown()
        self._httpd.server_close()  # joins the client handlers (they notice _stop within 0.1 s)
        for thread in (self._producer, self._serving):
            if thread is not None:
                thread.join(timeout=5)

    def __enter__(self) -> "MjpegServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the producer ------------------------------------------------------------------------------

    def _produce(self) -> None:
        fps = float(getattr(self.camera, "fps", 15.0) or 15.0)
        paced_by_camera = bool(getattr(self.camera, "realtime", True))
        params = [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                frame = self.camera.read(timeout=0.2)
            except CameraTimeout:
                continue  # frozen: no frame this time, streams stay open
            except CameraUnavailable:
                self._frames.set_unavailable()
                self._stop.wait(0.1)
                continue
            except BiogateError as exc:  # any other device error: keep trying, say why once in a while
                log.warning("mjpeg: camera read failed: %s", exc.code)
                self._stop.wait(0.1)
                continue
            ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(frame), params)
            if ok:
                data = jpeg.tobytes()
                self._frames.publish(data)
                self._encoded += 1
                for tap in list(self.frame_taps):
                    tap(data)
            if not paced_by_camera:  # a camera that does not wait for its frame times: pace it here
                self._stop.wait(max(0.0, 1.0 / fps - (time.monotonic() - started)))

    # -- what the handlers call --------------------------------------------------------------------

    def next_frame(self, after: int, timeout: float = 0.1) -> tuple[int, bytes | None, bool]:
        """(seq, jpeg, unavailable): the first frame newer than `after`, waiting up to `timeout`."""
        with self._frames.cond:
            if self._frames.seq <= after and not self._frames.unavailable and not self._stop.is_set():
                self._frames.cond.wait(timeout)
            f = self._frames
            if f.seq > after:
                return f.seq, f.jpeg, f.unavailable
            return after, None, f.unavailable

    def status(self) -> dict:
        return {
            "script": getattr(self.camera, "script", None),
            "frame_index": getattr(self.camera, "frame_index", None),
            "clients": self.clients,
            "fault": getattr(self.camera, "_fault", None),
            "frames_encoded": self._encoded,
        }

    def control(self, path: str, body: dict) -> dict:
        """Run one control request; InputError for values the camera refuses."""
        if path == "/prompt":
            action = body.get("action")
            if not isinstance(action, str):
                raise InputError("'action' must be a string", code="input.unknown_action")
            action = PROMPT_ALIASES.get(action, action)
            if action not in PROMPT_ACTIONS:
                raise InputError(f"unknown prompt action {action!r}; known: {', '.join(PROMPT_ACTIONS)}",
                                 code="input.unknown_action")
            # through prompt(), so the customer's reaction and the prompt log apply; respond() for cameras
            # that only have the challenge channel
            self._require("prompt" if hasattr(self.camera, "prompt_listeners") else "respond")(action)
            return {"ok": True, "action": action}
        if path == "/present":
            script = body.get("script")
            if not isinstance(script, str):
                raise InputError("'script' must be a string", code="input.unknown_script")
            options = {k: body[k] for k in ("subject", "photo", "second_subject") if body.get(k) is not None}
            self._require("present")(script, **options)
            return {"ok": True, "script": script}
        if path == "/fault":
            fault = body.get("fault")
            if fault not in FAULTS:
                raise InputError(f"'fault' must be one of {', '.join(FAULTS)}", code="input.unknown_fault")
            self._require(fault)()
            return {"ok": True, "fault": fault}
        raise LookupError(path)

    def _require(self, method: str):
        fn = getattr(self.camera, method, None)
        if not callable(fn):
            raise InputError(f"this camera cannot {method}", code="input.unsupported")
        return fn

    def _client(self, delta: int) -> None:
        with self._clients_lock:
            self._clients += delta


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _handler_for(server: MjpegServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the stream ends when the connection does
        server_version = "biogate-virtual-camera/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
            log.debug("mjpeg %s - %s", self.address_string(), format % args)

        # -- GET -----------------------------------------------------------------------------------
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path == STREAM_PATH:
                self._stream()
            elif path == "/snapshot.jpg":
                self._snapshot()
            elif path == "/status":
                self._json(HTTPStatus.OK, server.status())
            else:
                self._json(HTTPStatus.NOT_FOUND, {"code": "input.not_found", "message": f"no such path {path}"})

        def _snapshot(self) -> None:
            _, jpeg, unavailable = server.next_frame(-1, timeout=1.0)
            if jpeg is None or unavailable:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"code": "device.camera_unavailable",
                                                            "message": "no frame from the camera"})
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(jpeg)))
            self.end_headers()
            self.wfile.write(jpeg)

        def _stream(self) -> None:
            # Start with a frame taken after this request (a camera just replugged needs a moment);
            # an unplugged camera gets 503, a frozen one an open stream that stays silent.
            seq, _, _ = server.next_frame(-1, timeout=0)
            jpeg, unavailable = None, False
            deadline = time.monotonic() + 1.5
            while jpeg is None and time.monotonic() < deadline and not server._stop.is_set():
                seq, jpeg, unavailable = server.next_frame(seq, timeout=0.1)
            if jpeg is None and unavailable:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"code": "device.camera_unavailable",
                                                            "message": "the camera is unplugged"})
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-cache, no-store")
            self.send_header("Pragma", "no-cache")
            self.end_headers()
            server._client(+1)
            try:
                while not server._stop.is_set():
                    if jpeg is not None:
                        self.wfile.write(
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                            + jpeg + b"\r\n"
                        )
                        self.wfile.flush()
                    seq, jpeg, unavailable = server.next_frame(seq, timeout=0.1)
                    if unavailable:
                        break  # unplugged: the stream ends, as a camera's would
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
                pass  # the viewer went away: only this handler ends
            finally:
                server._client(-1)

        # -- POST ----------------------------------------------------------------------------------
        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            try:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if 0 < length <= 65536 else b""
                body = json.loads(raw.decode("utf-8")) if raw else None
            except (ValueError, UnicodeDecodeError):
                body = None
            if not isinstance(body, dict):
                self._json(HTTPStatus.BAD_REQUEST, {"code": "input.invalid_json",
                                                    "message": "the body must be a JSON object"})
                return
            try:
                result = server.control(path, body)
            except LookupError:
                self._json(HTTPStatus.NOT_FOUND, {"code": "input.not_found", "message": f"no such path {path}"})
            except InputError as exc:
                self._json(HTTPStatus.UNPROCESSABLE_ENTITY, exc.to_dict())
            else:
                self._json(HTTPStatus.OK, result)

        def _json(self, status: HTTPStatus, payload: dict) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler
