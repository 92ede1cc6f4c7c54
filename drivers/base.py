"""Device interfaces and the backend registry.

    @register_backend("fingerprint", "zfm")
    class ZfmScanner(FingerprintScanner): ...

    scanner = open_device("fingerprint", "zfm", port="/dev/ttyUSB0")
"""
from __future__ import annotations

import abc
from typing import Callable, TypeVar

import numpy as np

from edge.errors import ConfigError

_REGISTRY: dict[str, dict[str, type]] = {}
T = TypeVar("T", bound=type)


def register_backend(kind: str, name: str) -> Callable[[T], T]:
    """Class decorator: make `cls` available as backend `name` for device `kind`."""

    def deco(cls: T) -> T:
        _REGISTRY.setdefault(kind, {})[name] = cls
        return cls

    return deco


def available_backends(kind: str) -> list[str]:
    _import_builtin_backends()
    return sorted(_REGISTRY.get(kind, {}))


def open_device(kind: str, backend: str, **options):
    """Instantiate the backend registered as `backend` for `kind` with its options."""
    _import_builtin_backends()
    try:
        cls = _REGISTRY[kind][backend]
    except KeyError:
        known = ", ".join(available_backends(kind)) or "none"
        raise ConfigError(f"no {kind} backend named {backend!r} (known: {known})") from None
    return cls(**options)


def _import_builtin_backends() -> None:
    # Backends register themselves on import; importing here keeps the registry complete without
    # every caller knowing which modules hold them.
    import importlib

    for module in BUILTIN_BACKEND_MODULES:
        importlib.import_module(module)


# Modules that hold built-in backends (each registers itself with @register_backend).
BUILTIN_BACKEND_MODULES: list[str] = [
    "drivers.camera.opencv",
    "simulator.camera.virtual",  # camera backend "simulated" (the virtual camera, in-process)
    "simulator.rig",  # camera backend "rig" (a running simulator rig's camera, borrowed in-process)
    "drivers.fingerprint.zfm",  # fingerprint backend "zfm" (ZFM/R30x/AS608/R503 on a serial port)
    "drivers.dispenser.xfs4iot",  # dispenser backend "xfs4iot" (an XFS4IoT CashDispenser service, WebSocket)
]


class Device(abc.ABC):
    """Every device can be closed and used as a context manager."""

    def close(self) -> None:  # pragma: no cover - trivial default
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Liveness challenge actions (edge.biometrics.liveness) a terminal can ask the customer to perform.
CHALLENGE_ACTIONS = ("blink", "turn_left", "turn_right", "move_closer")


class Camera(Device):
    """A source of BGR uint8 frames."""

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


class CashDispenser(Device):
    """A dispenser that only dispenses against an end-to-end token for its current nonce."""

    @abc.abstractmethod
    def get_command_nonce(self) -> str:
        """A fresh command nonce (hex); tokens must be made over it."""

    @abc.abstractmethod
    def dispense(self, token: str, amount: str, currency: str) -> dict:
        """Dispense `amount` `currency` authorised by `token`; returns the device's completion."""
