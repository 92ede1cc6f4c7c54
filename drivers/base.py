"""Device interfaces and the backend table.

    scanner = open_device("fingerprint", "zfm", port="/dev/ttyUSB0")

Backends are found by name and imported only when opened (as python-can's `BACKENDS`):
- the drivers' own backends are the `BACKENDS` table below ("module:Class");
- plugins add theirs through the entry-point group `biogate.backends`, entry name "<kind>.<backend>"
  (the simulator registers "camera.simulated" and "camera.rig" in pyproject.toml), so this package never
  names a simulator module.

Every interface carries every method its callers use (no probing with hasattr): a camera that cannot show
prompts ignores them, a dispenser without nonce clearing says so by raising. `close()` may be called any
number of times.
"""
from __future__ import annotations

import abc
import importlib
from importlib.metadata import entry_points

import numpy as np

from edge.errors import ConfigError

KINDS = ("camera", "fingerprint", "dispenser")
ENTRY_POINT_GROUP = "biogate.backends"

# The drivers of this package, by kind and configuration name.
BACKENDS: dict[str, dict[str, str]] = {
    "camera": {"opencv": "drivers.camera.opencv:OpenCVCamera"},   # V4L2 device, video file, image folder, stream
    "fingerprint": {"zfm": "drivers.fingerprint.zfm:ZfmScanner"},   # ZFM/R30x/AS608/R503 on a serial port
    "dispenser": {"xfs4iot": "drivers.dispenser.xfs4iot:XFS4IoTDispenser"},   # XFS4IoT CashDispenser (WebSocket)
}


def _plugins(kind: str) -> dict[str, object]:
    """Entry points of installed plugins for `kind`: backend name -> EntryPoint (not loaded yet)."""
    prefix = kind + "."
    return {ep.name[len(prefix):]: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name.startswith(prefix)}


def available_backends(kind: str) -> list[str]:
    return sorted(set(BACKENDS.get(kind, {})) | set(_plugins(kind)))


def backend_class(kind: str, backend: str) -> type["Device"]:
    """The class behind a backend name, imported now."""
    target = BACKENDS.get(kind, {}).get(backend)
    if target is not None:
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)
    plugin = _plugins(kind).get(backend)
    if plugin is None:
        known = ", ".join(available_backends(kind)) or "none"
        raise ConfigError(f"no {kind} backend named {backend!r} (known: {known})")
    return plugin.load()


def open_device(kind: str, backend: str, **options) -> "Device":
    """Instantiate the backend named `backend` for `kind` with its options."""
    return backend_class(kind, backend)(**options)


class Device(abc.ABC):
    """Every device can be closed (more than once, harmlessly) and used as a context manager."""

    def close(self) -> None:
        """Release the device. A second call does nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Liveness challenge actions (edge.biometrics.liveness) a terminal can ask the customer to perform.
CHALLENGE_ACTIONS = ("blink", "turn_left", "turn_right", "move_closer")


class Camera(Device):
    """A source of BGR uint8 frames."""

    # Frames per second the source declares (a simulated camera that is not paced in real time says how many
    # frames make a second); None: unknown, the reader times frames by the clock.
    fps: float | None = None

    @abc.abstractmethod
    def read(self, timeout: float = 2.0) -> np.ndarray:
        """The next frame (H x W x 3, BGR, uint8); raises DeviceError on timeout or end of stream."""

    def prompt(self, action: str) -> None:
        """The terminal shows this instruction to the customer in front of the camera.

        `action` is one of CHALLENGE_ACTIONS ("turn_left"/"turn_right" are the customer's own left and
        right) or another instruction such as "look_at_camera". A physical camera has no screen, so the
        default does nothing; backends that can reach a display (or a simulated customer) override it.
        """


class FingerprintScanner(Device):
    """A scanner that captures greyscale fingerprint images."""

    @abc.abstractmethod
    def finger_present(self) -> bool:
        """True when a finger is on the sensor now."""

    @abc.abstractmethod
    def capture(self, timeout: float = 10.0) -> np.ndarray:
        """Wait up to `timeout` s for a finger, then return its image (H x W, uint8, 500 dpi)."""

    def prompt(self, instruction: str) -> None:
        """The terminal asks the customer for a finger ("place_finger:right_index", ...). A bare sensor has no
        display: the default does nothing."""


class CashDispenser(Device):
    """A dispenser that only dispenses against an end-to-end token for its current nonce."""

    @abc.abstractmethod
    def get_command_nonce(self) -> str:
        """A fresh command nonce (hex); tokens must be made over it."""

    @abc.abstractmethod
    def clear_command_nonce(self) -> None:
        """Invalidate the current nonce: every token made over it becomes useless."""

    @abc.abstractmethod
    def dispense(self, token: str, amount: str, currency: str) -> dict:
        """Dispense `amount` `currency` authorised by `token`; returns the device's completion."""
