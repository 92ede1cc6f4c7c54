"""The control service running in a background thread of the rig's process (uvicorn on 127.0.0.1)."""
from __future__ import annotations

import uvicorn

from edge.service.server import BackgroundServer, bind_socket
from simulator.control.app import create_control_app
from simulator.control.state import SimulatorControl


class ControlServer:
    def __init__(self, control: SimulatorControl, host: str = "127.0.0.1", port: int = 0):
        self.control = control
        self.sock = bind_socket(host, port)
        addr = self.sock.getsockname()
        self.url = f"http://{addr[0]}:{addr[1]}"
        server = uvicorn.Server(uvicorn.Config(create_control_app(control), log_config=None, access_log=False,
                                               timeout_graceful_shutdown=2, ws="websockets-sansio"))
        self._background = BackgroundServer(server, self.sock, self.sock.close, "simulator-control")
        self._running = False

    def start(self) -> "ControlServer":
        if not self._running:
            self._background.__enter__()
            self._running = True
        return self

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._background.__exit__(None, None, None)
        else:
            self.sock.close()
