"""Typed dispenser errors.

Transport and device faults are `drivers.errors.DeviceError`s; a refused end-to-end token is an
`edge.errors.AuthError`. Every error that comes from an XFS4IoT completion carries the completion
code (`completion_code`) and, for commandErrorCode, the command's `error_code`.
"""
from __future__ import annotations

from drivers.errors import DeviceError
from edge.errors import AuthError

# Completion codes that mean "the token (or its absence) is the problem", not the device.
TOKEN_COMPLETION_CODES = frozenset({
    "authorisationRequired", "noCommandNonce", "invalidToken", "invalidTokenNonce", "invalidTokenHMAC",
    "invalidTokenFormat", "invalidTokenKeyNoValue",
})


class DispenserError(DeviceError):
    """Base of the dispenser's device errors."""

    code = "device.dispenser_error"
    completion_code: str | None = None
    error_code: str | None = None


class DispenserUnavailable(DispenserError):
    """The dispenser service cannot be reached (refused, closed, bad URL, no such service)."""

    code = "device.dispenser_unavailable"


class DispenserTimeout(DispenserError):
    """No acknowledge or completion before the deadline."""

    code = "device.timeout"


class DispenserProtocolError(DispenserError):
    """The service refused the message (acknowledge status) or answered something unreadable."""

    code = "device.protocol"


class DispenserCommandFailed(DispenserError):
    """The command completed with a failure that is not about the token (hardware, cassettes, ...)."""

    code = "device.dispenser_failed"

    def __init__(self, message: str, completion_code: str, error_code: str | None = None):
        super().__init__(message, details={"completionCode": completion_code, "errorCode": error_code})
        self.completion_code = completion_code
        self.error_code = error_code


class DispenseTokenRefused(AuthError):
    """The dispenser refused the end-to-end token: `completion_code` says why
    (invalidToken, invalidTokenNonce, invalidTokenHMAC, invalidTokenFormat, noCommandNonce,
    invalidTokenKeyNoValue, authorisationRequired)."""

    code = "auth.dispense_token_refused"

    def __init__(self, message: str, completion_code: str):
        super().__init__(message, details={"completionCode": completion_code})
        self.completion_code = completion_code
