"""Dispenser backend `xfs4iot`: a client of an XFS4IoT CashDispenser service over WebSocket.

    dispenser = open_device("dispenser", "xfs4iot", url="ws://127.0.0.1:5846/xfs4iot/v1.0/CashDispenser1/")
    nonce = dispenser.get_command_nonce()                       # Common.GetCommandNonce
    dispenser.dispense(token, "50.00", "EUR")                   # CashDispenser.Dispense
    dispenser.clear_command_nonce()                             # Common.ClearCommandNonce

`url` is either a service endpoint (ws://host:port/xfs4iot/v1.0/<Service>/) or a service publisher
(ws://host:port/xfs4iot/v1.0/): then ServicePublisher.GetServices is asked and the first service
whose name starts with `service` ("CashDispenser" by default) is used.

Each call sends one command (header.timeout = the call's timeout in ms), reads the acknowledge, any
intermediate events and the completion for its requestId, and ignores unsolicited events. Errors
(drivers.dispenser.errors):

    DispenserUnavailable   cannot connect / connection lost / no such service   device.dispenser_unavailable
    DispenserTimeout       no acknowledge or completion in time (the connection is then dropped)  device.timeout
    DispenserProtocolError acknowledge refused (status) or an unreadable answer   device.protocol
    DispenseTokenRefused   token completion codes (invalidToken*, noCommandNonce, ...)   auth.dispense_token_refused
    DispenserCommandFailed any other non-success completion (.completion_code, .error_code)

A command is re-sent on a fresh connection only when the old connection was found closed while
sending it (so it never reached the service); a Dispense that may have been delivered is never
repeated.

This module speaks the envelope itself rather than importing the firmware bridge: drivers sit
below the bridge and must not depend on it.
"""
from __future__ import annotations

import inspect
import itertools
import json
import logging
import threading
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI, WebSocketException
from websockets.sync.client import ClientConnection, connect

from drivers.base import CashDispenser
from drivers.deadline import Deadline
from drivers.dispenser.errors import (
    TOKEN_COMPLETION_CODES,
    DispenserCommandFailed,
    DispenserProtocolError,
    DispenserTimeout,
    DispenserUnavailable,
    DispenseTokenRefused,
)
from edge.errors import InputError

PUBLISHER_PATH = "/xfs4iot/v1.0/"
# websockets >= 16 wants `legacy=True` to return a plain connection without a deprecation warning;
# older releases do not know the flag.
_LEGACY = {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}
# websockets logs frame contents at DEBUG and those carry dispense tokens: keep its logger at INFO.
wire_log = logging.getLogger("drivers.dispenser.wire")
wire_log.setLevel(logging.INFO)


class XFS4IoTDispenser(CashDispenser):
    def __init__(self, url: str, *, timeout: float = 10.0, connect_timeout: float = 5.0,
                 dispense_timeout: float = 60.0, service: str = "CashDispenser"):
        if not isinstance(url, str) or urlsplit(url).scheme not in ("ws", "wss"):
            raise InputError(f"dispenser url must be ws:// or wss://, got {url!r}", code="input.dispenser_url")
        self.url = url
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.dispense_timeout = float(dispense_timeout)
        self.service = service
        self._service_url: str | None = None
        self._ws: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self.last_events: list[dict[str, Any]] = []  # intermediate events of the last command

    # --- the CashDispenser interface -------------------------------------------------------------
    def get_command_nonce(self) -> str:
        payload = self.call("Common.GetCommandNonce", {})
        nonce = payload.get("commandNonce")
        if not isinstance(nonce, str) or not nonce:
            raise DispenserProtocolError("Common.GetCommandNonce completed without a commandNonce")
        return nonce

    def clear_command_nonce(self) -> None:
        self.call("Common.ClearCommandNonce", {})

    def dispense(self, token: str, amount: str | Decimal, currency: str, *, position: str = "default",
                 values: dict[str, int] | None = None) -> dict:
        try:
            value = Decimal(str(amount))
        except InvalidOperation:
            raise InputError(f"amount {amount!r} is not a decimal number", code="input.amount") from None
        denomination: dict[str, Any] = {"currencies": {currency: float(value)}}
        if values:
            denomination["values"] = dict(values)
        return self.call("CashDispenser.Dispense",
                         {"denomination": denomination, "position": position, "token": token},
                         version="3.0", timeout=self.dispense_timeout)

    def status(self) -> dict:
        return self.call("Common.Status", {}, version="3.0")

    def capabilities(self) -> dict:
        return self.call("Common.Capabilities", {}, version="3.0")

    # --- one command ------------------------------------------------------------------------------
    def call(self, name: str, payload: dict[str, Any] | None = None, *, version: str = "2.0",
             timeout: float | None = None) -> dict[str, Any]:
        """Send command `name`; return the completion payload or raise a typed error."""
        timeout = self.timeout if timeout is None else float(timeout)
        with self._lock:
            ws = self._connection()
            request_id = next(self._ids)
            message = json.dumps({"header": {"name": name, "requestId": request_id, "type": "command",
                                             "version": version, "timeout": int(timeout * 1000)},
                                  "payload": payload or {}})
            try:
                ws.send(message)
            except ConnectionClosed:  # stale connection: the command never left, one fresh attempt
                self._drop()
                ws = self._connection()
                ws.send(message)
            return self._await_completion(ws, name, request_id, Deadline(timeout + 2.0))

    def _await_completion(self, ws: ClientConnection, name: str, request_id: int,
                          deadline: Deadline) -> dict[str, Any]:
        self.last_events = []
        acknowledged = False
        while True:
            try:
                if deadline.expired():
                    raise TimeoutError
                raw = ws.recv(timeout=deadline.time_left())
            except TimeoutError:
                self._drop()  # a late completion must not be read as the next command's answer
                stage = "completion" if acknowledged else "acknowledge"
                raise DispenserTimeout(f"no {stage} for {name} from the dispenser in time",
                                       details={"command": name}) from None
            except (ConnectionClosed, OSError) as exc:
                self._drop()
                raise DispenserUnavailable(f"connection to the dispenser lost during {name}: "
                                           f"{type(exc).__name__}") from None
            try:
                msg = json.loads(raw)
                header = msg["header"]
                kind, rid = header["type"], header.get("requestId")
                body = msg.get("payload") or {}
            except (ValueError, KeyError, TypeError):
                self._drop()
                raise DispenserProtocolError(f"unreadable message from the dispenser during {name}") from None
            if kind == "unsolicited" or rid != request_id:
                continue
            if kind == "acknowledge":
                if header.get("status") is not None:
                    raise DispenserProtocolError(
                        f"dispenser refused {name}: {header.get('status')} ({header.get('errorDescription')})",
                        details={"ackStatus": header.get("status")})
                acknowledged = True
            elif kind == "event":
                self.last_events.append(msg)
            elif kind == "completion":
                return self._result(name, header, body)

    @staticmethod
    def _result(name: str, header: dict, body: dict) -> dict[str, Any]:
        code = header.get("completionCode")
        if code == "success":
            return body
        description = header.get("errorDescription") or ""
        if code in TOKEN_COMPLETION_CODES:
            raise DispenseTokenRefused(f"{name} refused the token: {code} {description}".strip(), code)
        if code == "timeOut":
            raise DispenserTimeout(f"{name} timed out in the dispenser", details={"completionCode": code})
        error_code = body.get("errorCode") if code == "commandErrorCode" else None
        raise DispenserCommandFailed(f"{name} failed: {code}{f' / {error_code}' if error_code else ''} "
                                     f"{description}".strip(), code, error_code)

    # --- connection -------------------------------------------------------------------------------
    def _connection(self) -> ClientConnection:
        if self._ws is None:
            if self._service_url is None:
                self._service_url = self._discover() if urlsplit(self.url).path == PUBLISHER_PATH else self.url
            self._ws = self._open(self._service_url)
            self._ids = itertools.count(1)
        return self._ws

    def _open(self, url: str) -> ClientConnection:
        try:
            return connect(url, open_timeout=self.connect_timeout, close_timeout=1.0, ping_interval=None,
                           max_size=4 * 1024 * 1024, proxy=None, compression=None, logger=wire_log,
                           **_LEGACY)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI, WebSocketException) as exc:
            raise DispenserUnavailable(f"cannot connect to the dispenser at {url}: {type(exc).__name__}",
                                       details={"url": url}) from None

    def _discover(self) -> str:
        """Ask the publisher for its services and pick ours."""
        ws = self._open(self.url)
        try:
            request = {"header": {"name": "ServicePublisher.GetServices", "requestId": 1, "type": "command",
                                  "version": "2.0", "timeout": int(self.timeout * 1000)}, "payload": {}}
            ws.send(json.dumps(request))
            services = self._await_completion(ws, "ServicePublisher.GetServices", 1,
                                              Deadline(self.timeout)).get("services") or []
        finally:
            ws.close()
        for entry in services:
            uri = entry.get("serviceURI", "") if isinstance(entry, dict) else ""
            if uri.rstrip("/").rsplit("/", 1)[-1].startswith(self.service):
                return uri
        raise DispenserUnavailable(f"the publisher at {self.url} offers no {self.service} service")

    def _drop(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close()
            except Exception:  # already broken; nothing to tell anyone
                pass

    def close(self) -> None:
        with self._lock:
            self._drop()
