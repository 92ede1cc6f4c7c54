"""Typed camera errors (all are `drivers.errors.DeviceError`)."""
from __future__ import annotations

from drivers.errors import DeviceError


class CameraError(DeviceError):
    """Base of every camera error."""

    code = "device.error"


class CameraUnavailable(CameraError):
    """The source cannot be opened (no such device, file or URL; or it was closed)."""

    code = "device.camera_unavailable"


class CameraTimeout(CameraError):
    """No frame arrived before the read deadline."""

    code = "device.timeout"


class EndOfStream(CameraError):
    """A finite source (video file, image folder) has no more frames."""

    code = "device.end_of_stream"


class BadFrame(CameraError):
    """A frame of the source could not be decoded (a corrupt image in a folder)."""

    code = "device.bad_frame"
