"""Hosting XFS4IoT services over WebSocket: one port, a service publisher, one path per service.

    host = ServiceHost([biometric_service], host="127.0.0.1", ports=range(5846, 5857)).start()
    host.publisher_url      # ws://127.0.0.1:5846/xfs4iot/v1.0/
    host.service_url("Biometric1")   # ws://127.0.0.1:5846/xfs4iot/v1.0/Biometric1/
    host.stop()

URLs follow the XFS4IoT endpoint rules: the service publisher answers at `/xfs4iot/v1.0/` and each
service at `/xfs4iot/v1.0/{ServiceName}/`. The publisher serves one command,
`ServicePublisher.GetServices` (v2.0): it sends the intermediate `ServicePublisher.ServiceDetailEvent`
and completes with the same payload `{vendorName, services: [{serviceURI}]}`.

Ports: the first port of `ports` that can be bound is used (XFS4IoT reserves 5846..5856; a port of 0
asks the OS for any free port, which tests use). Any other path is refused at the HTTP handshake
with 404.

The host runs its own asyncio event loop in a daemon thread, so it serves the same way whether the
caller is threaded or asynchronous; `run(coro)` executes a coroutine on that loop from another
thread.
"""
from __future__ import annotations

import asyncio
import errno
import hmac
import logging
import socket
import threading
from concurrent.futures import Future
from http import HTTPStatus
from typing import Any, Coroutine, Iterable, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from drivers.errors import DeviceError
from edge.errors import ConfigError

from xfs4iot_bridge.envelope import MAX_MESSAGE_CHARS
from xfs4iot_bridge.server import CommandContext, XFS4IoTService

log = logging.getLogger("xfs4iot_bridge.host")
# The websockets library logs frame contents at DEBUG; those frames carry templates and tokens, so
# its server logger is held at INFO whatever the root level is.
wire_log = logging.getLogger("xfs4iot_bridge.wire")
wire_log.setLevel(logging.INFO)

XFS4IOT_PORTS = tuple(range(5846, 5857))
BASE_PATH = "/xfs4iot/v1.0/"
T = TypeVar("T")


class PortsUnavailable(DeviceError):
    code = "device.ports_unavailable"


def bind_first_free(host: str, ports: Iterable[int]) -> socket.socket:
    """A listening TCP socket on the first port of `ports` that is free on `host`."""
    tried: list[int] = []
    for port in ports:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # SO_REUSEADDR only skips TIME_WAIT leftovers; a port someone listens on still fails.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, int(port)))
            sock.listen(64)
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
            tried.append(int(port))
    raise PortsUnavailable(f"no free port on {host} among {tried}", details={"ports": tried})


class ServicePublisher(XFS4IoTService):
    """The publisher endpoint: tells clients where each service of this host lives."""

    def __init__(self, host: "ServiceHost", vendor_name: str):
        super().__init__("ServicePublisher", interface="ServicePublisher")
        self._host = host
        self.vendor_name = vendor_name
        self.register("ServicePublisher.GetServices", self._get_services, versions=("2.0",), immediate=True)
        self.declare_event("ServicePublisher.ServiceDetailEvent")

    def services_payload(self) -> dict[str, Any]:
        return {"vendorName": self.vendor_name,
                "services": [{"serviceURI": self._host.service_url(s.name)} for s in self._host.services]}

    async def _get_services(self, ctx: CommandContext) -> dict[str, Any]:
        payload = self.services_payload()
        await ctx.event("ServicePublisher.ServiceDetailEvent", payload)
        return payload


def _presents(request: Request, token: str) -> bool:
    given = request.headers.get("Authorization", "")
    if not given.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(given[7:].strip().encode(), token.encode())


class ServiceHost:
    """A WebSocket server hosting a publisher and `services` on one port, in its own thread."""

    def __init__(self, services: list[XFS4IoTService], *, host: str = "127.0.0.1",
                 ports: Iterable[int] = XFS4IOT_PORTS, vendor_name: str = "biogate",
                 client_token: str | None = None):
        names = [s.name for s in services]
        if len(set(names)) != len(names):
            raise ConfigError(f"service names must be unique: {names}")
        self.services = list(services)
        self.client_token = client_token     # None: no authentication (a device's own service, the simulator)
        self.host = host
        self.ports = list(ports)
        self.publisher = ServicePublisher(self, vendor_name)
        self._routes: dict[str, XFS4IoTService] = {BASE_PATH: self.publisher}
        for service in self.services:
            self._routes[f"{BASE_PATH}{service.name}/"] = service
        self.port: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: asyncio.Event | None = None

    # --- URLs ------------------------------------------------------------------------------------
    def _base(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{shown}:{self.port}"

    @property
    def publisher_url(self) -> str:
        return self._base() + BASE_PATH

    def service_url(self, name: str) -> str:
        return f"{self._base()}{BASE_PATH}{name}/"

    @property
    def urls(self) -> dict[str, str]:
        """{"publisher": url, <service name>: url, ...}"""
        out = {"publisher": self.publisher_url}
        out.update({s.name: self.service_url(s.name) for s in self.services})
        return out

    # --- life cycle ------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "ServiceHost":
        sock = bind_first_free(self.host, self.ports)
        self.port = sock.getsockname()[1]
        ready: Future = Future()
        self._thread = threading.Thread(target=self._thread_main, args=(sock, ready),
                                        name=f"xfs4iot-host-{self.port}", daemon=True)
        self._thread.start()
        ready.result(timeout=timeout)  # re-raises a start-up failure of the loop thread
        log.info("XFS4IoT services on %s: %s", self.publisher_url, ", ".join(s.name for s in self.services))
        return self

    def _thread_main(self, sock: socket.socket, ready: Future) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._serve(sock, ready))
        except BaseException as exc:  # noqa: BLE001 - reported to start() if it has not returned
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.exception("XFS4IoT host loop failed")
        finally:
            loop.close()

    async def _serve(self, sock: socket.socket, ready: Future) -> None:
        self._stop_event = asyncio.Event()
        self._server = await serve(self._handle, sock=sock, process_request=self._route,
                                   max_size=MAX_MESSAGE_CHARS, ping_interval=None, compression=None,
                                   logger=wire_log)
        ready.set_result(None)
        await self._stop_event.wait()
        for service in [self.publisher, *self.services]:
            await service.shutdown()
        self._server.close()
        await self._server.wait_closed()

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection and the listening socket; idempotent."""
        loop, thread = self.loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        if self._stop_event is not None:
            loop.call_soon_threadsafe(self._stop_event.set)
        thread.join(timeout)

    def __enter__(self) -> "ServiceHost":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run `coro` on the host's loop from another thread and return its result."""
        if self.loop is None:
            raise RuntimeError("the host is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # --- per connection --------------------------------------------------------------------------
    def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] not in self._routes:
            return connection.respond(HTTPStatus.NOT_FOUND, f"no XFS4IoT endpoint at {request.path}\n")
        if self.client_token is not None and not _presents(request, self.client_token):
            # XFS4IoT defines no client authentication: the connection token goes in the handshake's
            # Authorization header (docs/security-B.md); without it no message is ever read.
            log.warning("XFS4IoT connection refused: no or wrong client token")
            return connection.respond(HTTPStatus.UNAUTHORIZED, "a client token is required: "
                                                               "Authorization: Bearer <token>\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        service = self._routes[ws.request.path.split("?", 1)[0]]

        async def receive() -> str | bytes | None:
            try:
                return await ws.recv()
            except ConnectionClosed:
                return None

        await service.serve(ws.send, receive)


class RunningService:
    """What a caller holds for one service running on a `ServiceHost`: its URLs, the port, stop.

    Subclasses are dataclasses with fields `host: ServiceHost` and `service` (an XFS4IoTService)."""

    host: ServiceHost
    service: XFS4IoTService

    @property
    def url(self) -> str:
        """The service endpoint (ws://host:port/xfs4iot/v1.0/<ServiceName>/)."""
        return self.host.service_url(self.service.name)

    @property
    def publisher_url(self) -> str:
        return self.host.publisher_url

    @property
    def urls(self) -> dict[str, str]:
        return self.host.urls

    def close(self) -> None:
        """The same as `stop()` (a closable component for its owner)."""
        self.stop()

    @property
    def port(self) -> int:
        assert self.host.port is not None
        return self.host.port

    def stop(self) -> None:
        self.host.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
