"""The terminal's devices as the daemon holds them: opened from configuration, one user at a time.

A terminal has one camera, one scanner and one dispenser, and one customer in front of them; a lock
per device keeps two requests from interleaving captures. A device that fails to open is recorded
(health shows it) and opened again on next use, so a scanner plugged in after start-up just works.
`watch_frames(listener)` lets the console's live preview see each camera frame whoever reads it (a
capture holds the camera, so the preview cannot read it itself meanwhile); the listener must copy what
it keeps, because the reader zeroises the frame after use.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from drivers.base import KINDS, Camera, CashDispenser, FingerprintScanner, open_device
from drivers.errors import DeviceError, DeviceNotConfigured
from edge.config import DeviceSpec, DevicesConfig
from edge.errors import BiogateError

log = logging.getLogger("biogate.devices")


class DeviceSlot:
    def __init__(self, kind: str, spec: DeviceSpec | None):
        self.kind = kind
        self.spec = spec
        self.device = None
        self.last_error: str | None = None
        self.lock = threading.RLock()
        self.frame_listeners: list[Callable] = []     # camera only: see TerminalDevices.watch_frames

    @property
    def configured(self) -> bool:
        return self.spec is not None

    def _open(self):
        if self.spec is None:
            raise DeviceNotConfigured(f"no {self.kind} is configured for this terminal")
        try:
            self.device = open_device(self.kind, self.spec.backend, **self.spec.options)
            self.last_error = None
        except BiogateError as exc:
            self.last_error = exc.code
            raise
        except (OSError, ValueError, TypeError) as exc:
            self.last_error = "device.open_failed"
            raise DeviceError(f"cannot open the {self.kind} ({self.spec.backend}): {exc}",
                              code="device.open_failed") from None
        return self.device

    @contextmanager
    def use(self) -> Iterator:
        """Exclusive use of the device; a device error closes it so the next use reopens it."""
        with self.lock:
            device = self.device or self._open()
            try:
                yield _WatchedCamera(device, self.frame_listeners) if self.frame_listeners else device
            except DeviceError as exc:
                self.last_error = exc.code
                if exc.code in ("device.disconnected", "device.camera_unavailable", "device.open_failed"):
                    self.close()
                raise

    def health(self) -> dict:
        if not self.configured:
            return {"status": "not_configured"}
        state = "ok" if self.last_error is None else "error"
        out = {"status": state, "backend": self.spec.backend, "open": self.device is not None}
        if self.last_error:
            out["last_error"] = self.last_error
        return out

    def close(self) -> None:
        device, self.device = self.device, None
        if device is not None:
            try:
                device.close()
            except Exception:  # closing a broken device must not mask the error that broke it
                log.warning("device close failed", extra={"device": self.kind})


class TerminalDevices:
    def __init__(self, cfg: DevicesConfig):
        self.cfg = cfg
        self.slots = {kind: DeviceSlot(kind, getattr(cfg, kind)) for kind in KINDS}

    def use(self, kind: str):
        return self.slots[kind].use()

    def configured(self, kind: str) -> bool:
        return self.slots[kind].configured

    def watch_frames(self, listener: Callable) -> None:
        """Call `listener(frame)` with every camera frame read (it must copy what it keeps)."""
        self.slots["camera"].frame_listeners.append(listener)

    def health(self) -> dict:
        return {kind: slot.health() for kind, slot in self.slots.items()}

    def close(self) -> None:
        for slot in self.slots.values():
            with slot.lock:
                slot.close()


class _WatchedCamera(Camera):
    """The camera as a capture sees it, with each frame shown to the listeners first (the live preview)."""

    def __init__(self, camera: Camera, listeners: list[Callable]):
        self._camera, self._listeners = camera, listeners

    @property
    def fps(self):   # noqa: D401 - the source's own pace (liveness timing reads it)
        return self._camera.fps

    def read(self, timeout: float = 2.0):
        frame = self._camera.read(timeout)
        for listener in self._listeners:
            try:
                listener(frame)
            except Exception:  # a preview must never break a capture
                log.warning("frame listener failed")
        return frame

    def prompt(self, action: str) -> None:
        self._camera.prompt(action)

    def __getattr__(self, name):   # backend extras (the simulator's present(), ...) pass through
        return getattr(self._camera, name)

    def close(self) -> None:   # the slot owns the device
        pass


class _Shared:
    """A device handle for another component (the XFS4IoT bridge) that borrows the slot per call."""

    def __init__(self, slot: DeviceSlot):
        self._slot = slot

    def _call(self, method: str, *args):
        with self._slot.use() as device:
            return getattr(device, method)(*args)

    def close(self) -> None:  # the daemon owns the device; borrowers never close it
        pass


class SharedCamera(_Shared, Camera):
    def read(self, timeout: float = 2.0):
        return self._call("read", timeout)

    def prompt(self, action: str) -> None:
        self._call("prompt", action)


class SharedScanner(_Shared, FingerprintScanner):
    def finger_present(self) -> bool:
        return self._call("finger_present")

    def capture(self, timeout: float = 10.0):
        return self._call("capture", timeout)

    def prompt(self, instruction: str) -> None:
        self._call("prompt", instruction)


class SharedDispenser(_Shared, CashDispenser):
    def get_command_nonce(self) -> str:
        return self._call("get_command_nonce")

    def clear_command_nonce(self) -> None:
        self._call("clear_command_nonce")

    def dispense(self, token: str, amount: str, currency: str) -> dict:
        return self._call("dispense", token, amount, currency)


def shared_devices(devices: TerminalDevices) -> dict:
    """camera / scanner / dispenser handles (None where not configured) for the bridge."""
    s = devices.slots
    return {"camera": SharedCamera(s["camera"]) if s["camera"].configured else None,
            "scanner": SharedScanner(s["fingerprint"]) if s["fingerprint"].configured else None,
            "dispenser": SharedDispenser(s["dispenser"]) if s["dispenser"].configured else None}
