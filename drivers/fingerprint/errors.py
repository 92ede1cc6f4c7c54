"""Typed errors of the fingerprint-module driver (all are `drivers.errors.DeviceError`).

Two families:
- line errors: the bytes on the wire were late, corrupt, malformed or stopped (timeout, checksum,
  protocol, disconnected);
- `ModuleError`: the module answered properly but with a non-zero confirmation code; it carries the
  code and its name from the table of the module model in use. A few common codes have their own
  subclasses so callers can catch them by meaning (no finger, wrong password, library full, ...).
"""
from __future__ import annotations

from drivers.errors import DeviceError


class FingerprintError(DeviceError):
    """Base of every fingerprint-module error."""

    code = "device.error"


class DeviceTimeout(FingerprintError):
    """No complete reply before the deadline (silence, or a reply that stopped half way)."""

    code = "device.timeout"


class ChecksumError(FingerprintError):
    """A frame arrived whose checksum does not match its contents."""

    code = "device.checksum"


class ProtocolError(FingerprintError):
    """Bytes arrived but they do not make the expected reply (wrong packet type, length, size)."""

    code = "device.protocol"


class DisconnectedError(FingerprintError):
    """The serial port vanished or reached end of file (scanner unplugged)."""

    code = "device.disconnected"


class ModuleError(FingerprintError):
    """The module refused a command with a non-zero confirmation code."""

    code = "device.module_error"

    def __init__(self, message: str, *, confirmation: int, name: str, model: str, code: str | None = None):
        super().__init__(
            message,
            code=code,
            details={"confirmation": confirmation, "name": name, "model": model},
        )
        self.confirmation = confirmation
        self.name = name
        self.model = model


class NoFingerError(ModuleError):
    code = "device.no_finger"


class WrongPasswordError(ModuleError):
    code = "device.wrong_password"


class PasswordRequiredError(ModuleError):
    code = "device.password_required"


class LibraryFullError(ModuleError):
    code = "device.library_full"


class ImageMessyError(ModuleError):
    code = "device.image_messy"


class TooFewFeaturesError(ModuleError):
    code = "device.too_few_features"


class PageOutOfRangeError(ModuleError):
    code = "device.page_out_of_range"


class SensorFaultError(ModuleError):
    code = "device.sensor_fault"


# Confirmation-code names (from drivers.fingerprint.protocol tables) that have a dedicated class.
MODULE_ERROR_BY_NAME: dict[str, type[ModuleError]] = {
    "no_finger": NoFingerError,
    "wrong_password": WrongPasswordError,
    "password_required": PasswordRequiredError,
    "library_full": LibraryFullError,
    "image_messy": ImageMessyError,
    "too_few_features": TooFewFeaturesError,
    "page_out_of_range": PageOutOfRangeError,
    "sensor_error": SensorFaultError,
    "hardware_error": SensorFaultError,
}
