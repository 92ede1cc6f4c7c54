"""Running the daemon: logging, the runtime, the XFS4IoT bridge, uvicorn.

    run_daemon(cfg)                             # what `biogate serve` does
    with DaemonThread(cfg) as d: d.url          # the same in a background thread (tests, scenarios, demo)

The daemon knows nothing of the simulator: `biogate serve --simulated` starts the simulated devices first
(edge.cli) and hands the daemon a configuration that points at them, as it would point at real hardware.

The listening socket is bound before uvicorn starts, so port 0 works and the real address is known
(`--ready-file` receives it as JSON once the API answers).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

import uvicorn

from edge.config import Config
from edge.service.app import create_app
from edge.service.devices import shared_devices
from edge.service.logs import configure_logging
from edge.service.notify import Notifier
from edge.service.runtime import Runtime
from xfs4iot_bridge.authoriser import BridgeDevices
from xfs4iot_bridge.bridge import BridgeHandle, start_bridge

log = logging.getLogger("biogate.server")


class GracefulServer(uvicorn.Server):
    """uvicorn's server, except that SIGTERM / SIGINT end `run()` normally instead of being raised again after
    it (uvicorn's default), so the code after `run()` still closes the runtime (devices, store, the audit entry
    `daemon.stopped`) and tells systemd it is stopping; the process then exits 0."""

    @contextlib.contextmanager
    def capture_signals(self):
        with super().capture_signals():
            try:
                yield
            finally:
                self.stopped_by = list(self._captured_signals)   # noted, not re-raised
                self._captured_signals.clear()


def bind_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class Daemon:
    """The runtime, the app and the uvicorn server of one daemon, before it runs.

    `announce`: more addresses for the start-up line and the ready file (the simulated devices', say)."""

    def __init__(self, cfg: Config, *, host: str | None = None, port: int | None = None,
                 announce: dict | None = None):
        self.cfg = cfg
        self.announce = dict(announce or {})
        self.runtime = Runtime.start(cfg)
        try:
            self.bridge = self._start_bridge()
            self.app = create_app(self.runtime)
            self.sock = bind_socket(host or cfg.service.host, cfg.service.port if port is None else port)
        except BaseException:
            self.runtime.close()
            raise
        addr = self.sock.getsockname()
        self.url = f"http://{addr[0]}:{addr[1]}"
        self.server = GracefulServer(uvicorn.Config(self.app, log_config=None, access_log=False,
                                                    timeout_graceful_shutdown=5))

    def _start_bridge(self) -> BridgeHandle | None:
        if not self.cfg.bridge.enabled:
            return None
        engine = self.runtime.core.bridge_engine(self.cfg.policy.target_fmr)
        bridge_cfg = self.cfg.bridge
        if not bridge_cfg.client_token:      # the terminal's own, from secrets.json (docs/security-B.md)
            bridge_cfg = bridge_cfg.model_copy(update={"client_token": self.runtime.secrets.bridge_client_token})
        bridge = start_bridge(bridge_cfg, BridgeDevices(**shared_devices(self.runtime.devices)), engine,
                              self.runtime.verification, self.runtime.secrets.dispense_hmac_key,
                              tokens=self.runtime.verification.tokens.dispense_tokens,
                              audit=self.runtime.audit_bridge)
        self.runtime.attach(bridge)
        return bridge

    def addresses(self) -> dict:
        out = {"url": self.url, "terminal_id": self.cfg.terminal_id, "pid": os.getpid()}
        if self.bridge is not None:
            out["xfs4iot"] = self.bridge.urls
        return {**out, **self.announce}

    def serve(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.runtime.close()
            self.sock.close()


def run_daemon(cfg: Config, *, host: str | None = None, port: int | None = None,
               ready_file: Path | None = None, announce: dict | None = None) -> None:
    """Serve until SIGINT/SIGTERM; `ready_file` receives the addresses as JSON once the API answers."""
    configure_logging(cfg.service.log_level)
    daemon = Daemon(cfg, host=host, port=port, announce=announce)
    info = daemon.addresses()
    log.info("biogate listening", extra=info)
    notifier = Notifier.from_environment()

    def announce() -> None:
        while not daemon.server.started:
            time.sleep(0.05)
        if ready_file:
            tmp = Path(str(ready_file) + ".tmp")
            tmp.write_text(json.dumps(info))
            os.replace(tmp, ready_file)
        if notifier is not None:
            notifier.ready(f"listening on {daemon.url}")
            notifier.keep_alive(daemon.runtime.is_healthy)
    threading.Thread(target=announce, daemon=True).start()
    try:
        daemon.serve()
    finally:
        if notifier is not None:
            notifier.stopping()


class BackgroundServer:
    """A uvicorn server serving from a background thread of this process; `close` runs after it stopped."""

    def __init__(self, server: uvicorn.Server, sock: socket.socket, close, name: str):
        self._server, self._sock, self._close = server, sock, close
        self._thread = threading.Thread(target=lambda: server.run(sockets=[sock]), name=name, daemon=True)

    def __enter__(self):
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._close()
                raise RuntimeError(f"{self._thread.name} did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._close()


class DaemonThread(BackgroundServer):
    """A daemon serving from a background thread of this process (tests, scenarios, `biogate demo`)."""

    def __init__(self, cfg: Config, **kw):
        self.daemon = Daemon(cfg, **kw)
        self.url = self.daemon.url
        self.runtime = self.daemon.runtime
        super().__init__(self.daemon.server, self.daemon.sock, self._close_daemon, "biogate-daemon")

    def _close_daemon(self) -> None:
        self.runtime.close()
        self.daemon.sock.close()

    def addresses(self) -> dict:
        return self.daemon.addresses()
