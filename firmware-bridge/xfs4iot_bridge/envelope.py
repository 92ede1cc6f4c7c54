"""The XFS4IoT message envelope: parsing incoming text, building outgoing messages.

Every XFS4IoT message is one JSON object with two members:

    {"header": {"name": "Biometric.Read", "requestId": 7, "type": "command",
                "version": "2.0", "timeout": 5000},
     "payload": {...}}

Header members (XFS4IoT 2023-2 and later, where version/timeout/completionCode live in the header):

    name             "Interface.Command" or "Interface.Event", always
    requestId        client-chosen integer >= 1; absent only on unsolicited events
    type             command | acknowledge | event | completion | unsolicited
    version          "major.minor" of the message definition
    timeout          command only: milliseconds, 0 = no timeout
    status           acknowledge only: null (accepted) | invalidMessage | invalidRequestID | tooManyRequests
    completionCode   completion only: one of `CompletionCode`
    errorDescription optional human-readable text (never biometric data)

A client only ever sends commands, so `parse_message` accepts `type == "command"` and nothing else.
When it refuses a message it raises `MessageError`, whose `ack_status` says which acknowledge status
the server must answer with and whose `request_id` / `name` carry what could be recovered for the
acknowledge header.

Builders: `ack`, `completion`, `event`, `unsolicited`, `command` (the last for clients and tests).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from edge.errors import InputError

MAX_MESSAGE_CHARS = 4 * 1024 * 1024  # larger messages are refused before json.loads
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*\.[A-Za-z][A-Za-z0-9]*$")
_VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+$")
MAX_REQUEST_ID = 2**32 - 1


class MessageType(str, Enum):
    COMMAND = "command"
    ACKNOWLEDGE = "acknowledge"
    EVENT = "event"
    COMPLETION = "completion"
    UNSOLICITED = "unsolicited"


class AckStatus(str, Enum):
    """Acknowledge statuses other than null (= accepted)."""

    INVALID_MESSAGE = "invalidMessage"
    INVALID_REQUEST_ID = "invalidRequestID"
    TOO_MANY_REQUESTS = "tooManyRequests"


class CompletionCode(str, Enum):
    SUCCESS = "success"
    COMMAND_ERROR_CODE = "commandErrorCode"
    CANCELED = "canceled"
    DEVICE_NOT_READY = "deviceNotReady"
    HARDWARE_ERROR = "hardwareError"
    INTERNAL_ERROR = "internalError"
    INVALID_COMMAND = "invalidCommand"
    INVALID_REQUEST_ID = "invalidRequestID"
    TIME_OUT = "timeOut"
    UNSUPPORTED_COMMAND = "unsupportedCommand"
    INVALID_DATA = "invalidData"
    USER_ERROR = "userError"
    UNSUPPORTED_DATA = "unsupportedData"
    FRAUD_ATTEMPT = "fraudAttempt"
    SEQUENCE_ERROR = "sequenceError"
    AUTHORISATION_REQUIRED = "authorisationRequired"
    NO_COMMAND_NONCE = "noCommandNonce"
    INVALID_TOKEN = "invalidToken"
    INVALID_TOKEN_NONCE = "invalidTokenNonce"
    INVALID_TOKEN_HMAC = "invalidTokenHMAC"
    INVALID_TOKEN_FORMAT = "invalidTokenFormat"
    INVALID_TOKEN_KEY_NO_VALUE = "invalidTokenKeyNoValue"
    NOT_ENOUGH_SPACE = "notEnoughSpace"


class MessageError(InputError):
    """An incoming message the server refuses at the acknowledge stage."""

    code = "input.xfs4iot_message"

    def __init__(self, message: str, ack_status: AckStatus = AckStatus.INVALID_MESSAGE, *,
                 request_id: int | None = None, name: str | None = None):
        super().__init__(message, details={"ackStatus": ack_status.value})
        self.ack_status = ack_status
        self.request_id = request_id
        self.name = name


@dataclass
class Header:
    name: str
    type: MessageType
    request_id: int | None = None
    version: str | None = None
    timeout: int | None = None                       # command only, ms, 0 = none
    status: AckStatus | None = None                  # acknowledge only (None = accepted)
    completion_code: CompletionCode | None = None    # completion only
    error_description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.request_id is not None:
            out["requestId"] = self.request_id
        out["type"] = self.type.value
        if self.version is not None:
            out["version"] = self.version
        if self.type is MessageType.COMMAND and self.timeout is not None:
            out["timeout"] = self.timeout
        if self.type is MessageType.ACKNOWLEDGE:
            out["status"] = self.status.value if self.status is not None else None
        if self.type is MessageType.COMPLETION:
            out["completionCode"] = (self.completion_code or CompletionCode.SUCCESS).value
        if self.error_description is not None:
            out["errorDescription"] = self.error_description
        return out


@dataclass
class Message:
    header: Header
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.header.name

    @property
    def request_id(self) -> int | None:
        return self.header.request_id

    def to_dict(self) -> dict[str, Any]:
        return {"header": self.header.to_dict(), "payload": self.payload}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_message(text: str | bytes) -> Message:
    """Parse and validate one incoming command; raise MessageError saying which ack status applies."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise MessageError("message is not UTF-8 text") from None
    if len(text) > MAX_MESSAGE_CHARS:
        raise MessageError(f"message longer than {MAX_MESSAGE_CHARS} characters")
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise MessageError(f"message is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise MessageError("message must be a JSON object with header and payload")
    header = obj.get("header")
    if not isinstance(header, dict):
        raise MessageError("message has no header object")

    # Recover what we can first, so even a refused message gets a useful acknowledge header.
    raw_name, raw_id = header.get("name"), header.get("requestId")
    name = raw_name if isinstance(raw_name, str) else None
    request_id = raw_id if _is_int(raw_id) and 1 <= raw_id <= MAX_REQUEST_ID else None

    def refuse(reason: str) -> MessageError:
        return MessageError(reason, request_id=request_id, name=name)

    unknown = set(obj) - {"header", "payload"}
    if unknown:
        raise refuse(f"unexpected top-level members: {sorted(unknown)}")
    if name is None or not _NAME_RE.match(name):
        raise refuse("header.name must be a string of the form Interface.Command")
    if "requestId" not in header:
        raise refuse("header.requestId is missing")
    if request_id is None:
        raise refuse(f"header.requestId must be an integer 1..{MAX_REQUEST_ID}")
    raw_type = header.get("type")
    if raw_type != MessageType.COMMAND.value:
        raise refuse(f"header.type must be 'command' for messages sent to a service (got {raw_type!r})")
    version = header.get("version")
    if version is not None and (not isinstance(version, str) or not _VERSION_RE.match(version)):
        raise refuse("header.version must be a string 'major.minor'")
    timeout = header.get("timeout", 0)
    if timeout is None:
        timeout = 0
    if not _is_int(timeout) or timeout < 0:
        raise refuse("header.timeout must be a non-negative integer (milliseconds)")
    for member in ("status", "completionCode"):
        if member in header:
            raise refuse(f"header.{member} is not allowed on a command")
    unknown = set(header) - {"name", "requestId", "type", "version", "timeout", "errorDescription"}
    if unknown:
        raise refuse(f"unexpected header members: {sorted(unknown)}")
    payload = obj.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise refuse("payload must be a JSON object")
    return Message(Header(name=name, type=MessageType.COMMAND, request_id=request_id,
                          version=version, timeout=timeout), payload)


# --- builders ------------------------------------------------------------------------------------

def command(name: str, request_id: int, payload: dict | None = None, *, version: str = "2.0",
            timeout: int = 0) -> Message:
    return Message(Header(name=name, type=MessageType.COMMAND, request_id=request_id,
                          version=version, timeout=timeout), payload or {})


def ack(name: str | None, request_id: int | None, status: AckStatus | None = None, *,
        version: str = "2.0", error_description: str | None = None) -> Message:
    """The acknowledge: status None means accepted (sent before the command executes)."""
    return Message(Header(name=name or "", type=MessageType.ACKNOWLEDGE, request_id=request_id,
                          version=version, status=status, error_description=error_description), {})


def completion(name: str, request_id: int, payload: dict | None = None, *,
               code: CompletionCode = CompletionCode.SUCCESS, error_description: str | None = None,
               version: str = "2.0") -> Message:
    return Message(Header(name=name, type=MessageType.COMPLETION, request_id=request_id, version=version,
                          completion_code=code, error_description=error_description), payload or {})


def event(name: str, request_id: int, payload: dict | None = None, *, version: str = "2.0") -> Message:
    """An intermediate event of a running command: it carries the command's requestId."""
    return Message(Header(name=name, type=MessageType.EVENT, request_id=request_id, version=version),
                   payload or {})


def unsolicited(name: str, payload: dict | None = None, *, version: str = "2.0") -> Message:
    """An unsolicited event: broadcast to every connection, without requestId."""
    return Message(Header(name=name, type=MessageType.UNSOLICITED, version=version), payload or {})
