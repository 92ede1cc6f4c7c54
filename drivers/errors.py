"""The device errors' root: what a camera, scanner or dispenser can go wrong with, as stable `device.*` codes.

Every driver error is a `DeviceError` (itself a `edge.errors.BiogateError`, the dependency-free root) with a
code and details and no transport: the service maps codes to HTTP statuses, the XFS4IoT bridge to completion
codes. The kinds of device refine it in `drivers.camera.errors`, `drivers.fingerprint.errors` and
`drivers.dispenser.errors`.
"""
from __future__ import annotations

from edge.errors import BiogateError


class DeviceError(BiogateError):
    """A camera, scanner or dispenser failed (timeouts, line errors, unplugged devices)."""

    code = "device.error"


class DeviceNotConfigured(DeviceError):
    """The terminal has no device of this kind configured."""

    code = "device.not_configured"
