"""A virtual UART fingerprint module (ZFM-20/60/70 and R30x, AS608, R503) on a pseudo-terminal.

    module = VirtualModule(profile="zfm", source="default", library_path="fp-library.json", seed=1).start()
    scanner = open_device("fingerprint", "zfm", port=module.port)   # the product's real driver
    module.place("101_1.tif"); module.lift()                        # a finger on / off the sensor
    module.inject({"kind": "drop_packet", "command": "UpImage", "occurrence": 3, "packet": 17})
    module.unplug(); module.replug(); module.close()

Three parts, wired here:

    line (PtyLine) --bytes--> reader --events--> FaultFilter --> FingerprintDevice
         ^                                           |
         +------------- line actions ----------------+   (frames, pauses, unplug, restart)

- `simulator.fingerprint.line`: the pseudo-terminal. `port` is a stable symlink to the current one
  (as /dev/serial/by-id/... is to /dev/ttyUSB0): it disappears when the module is unplugged and
  comes back, pointing at a new pseudo-terminal, on replug. `device` is the pseudo-terminal itself.
- `simulator.fingerprint.device`: the command set, RAM, flash and sensor; packets in, frames out.
- `simulator.fingerprint.faults`: scripted or seeded-random faults, applied between the two.

This module adds what needs a clock and a thread: the serving thread, power (the ready byte 0x55
on start, on replug, after SoftRst and after a reset), unplugging (mode "close": the port vanishes;
"silent": it stays and nothing answers) and the baud rate: with `strict_baud` (default) the module
only understands a line whose speed, as the client configured it on the pseudo-terminal, equals its
own (9600 x N; SetSysPara changes it after acknowledging at the old rate); on a mismatch it hears
noise and stays silent, as real hardware does. `pace` sends bytes no faster than the baud rate.
"""
from __future__ import annotations

import logging
import operator
import threading
import time
from pathlib import Path
from typing import Any

from drivers.deadline import Deadline
from drivers.fingerprint import protocol as P
from edge.errors import InputError
from simulator.fingerprint import features
from simulator.fingerprint.device import FingerprintDevice
from simulator.fingerprint.faults import (
    FaultFilter,
    FaultPlan,
    LineAction,
    Pause,
    RandomFaults,
    Restart,
    Unplug,
    UNPLUG_MODES,
    parse_faults,
)
from simulator.fingerprint.images import finger_source, make_image_source
from simulator.fingerprint.line import PtyLine

log = logging.getLogger(__name__)

_SERVE_POLL = 0.02  # seconds the serving thread waits for bytes before it looks at its timers again


#: what the hardware knows, readable on the module as read-only views: `module.templates` is
#: `module.hardware.templates` (each is described on `FingerprintDevice`)
HARDWARE_VIEWS = ("profile", "model", "seed", "source", "flash", "settings", "address", "baudrate",
                  "packet_size", "templates", "commands", "captures", "led")


class VirtualModule:
    """One virtual module on a pseudo-terminal (see the module docstring)."""

    #: seconds a reply may wait for the client to read before the rest is dropped
    WRITE_STALL_TIMEOUT = 3.0

    def __init__(
        self,
        profile: str = "zfm",
        source: Any = "default",
        *,
        faults: Any = None,
        random_faults: RandomFaults | dict | None = None,
        strict_baud: bool = True,
        pace: bool = False,
        ready_delay: float = 0.0,
        **device_options: Any,
    ):
        """`device_options` configure the hardware (`FingerprintDevice`: library_path, seed, password,
        address, baudrate, packet_size, security_level, source_dpi); `ready_delay` is its boot time."""
        self.hardware = FingerprintDevice(profile, source, boot_time=ready_delay, **device_options)
        if isinstance(random_faults, dict):
            random_faults = RandomFaults.from_dict(random_faults)
        self.faults = FaultPlan(parse_faults(faults), random_faults)
        self._filter = FaultFilter(self.hardware, self.faults)
        self.strict_baud = strict_baud
        self.pace = pace

        self._lock = threading.RLock()  # the hardware, the fault plan and the power state
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.line = PtyLine(f"tty{self.hardware.model.name.upper()}", stop=self._stop,
                            stall_timeout=self.WRITE_STALL_TIMEOUT)
        self.port: str | None = None  # set by start(); stays the same across replugs
        self._silent = False  # unplugged in "silent" mode: the port stays, nothing answers
        self._replug: Deadline | None = None  # a scheduled automatic replug
        self._reader = P.PacketReader()
        self.errors: list[BaseException] = []
        # callables(direction, data): the bytes on the cable, "host" (from the client) or "device" (to it),
        # and "cable" (b"unplugged:<mode>", b"plugged", b"powered"); the recorder listens here
        self.taps: list = []

    # -- what the hardware knows: HARDWARE_VIEWS (below the class), and the line's pseudo-terminal ------

    @property
    def device(self) -> str | None:
        """The current pseudo-terminal (None while unplugged)."""
        return self.line.device

    # -- power and cable -------------------------------------------------------------------------------

    @property
    def plugged(self) -> bool:
        """The cable is in (the module may still be booting: see `ready`)."""
        with self._lock:
            return self.line.plugged and not self._silent

    @property
    def ready(self) -> bool:
        """Plugged in and booted (its ready byte 0x55 sent): commands are answered."""
        with self._lock:
            return self.line.plugged and not self._silent and self.hardware.ready

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Block until `ready` (e.g. after `replug()` or a SoftRst); False on timeout."""
        deadline = Deadline(timeout)
        while not self.ready:
            if deadline.expired():
                return False
            time.sleep(0.01)
        return True

    def start(self) -> "VirtualModule":
        """Power on: open the pseudo-terminal, send the ready byte, serve in a thread."""
        if self._thread is not None:
            return self
        features.warm_up()  # booting: the first Img2Tz must not pay for loading the extractor
        with self._lock:
            self._plug()
        self.port = self.line.port
        self._thread = threading.Thread(target=self._serve, name=f"virtual-{self.model.name}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Power off for good: stop serving, close the pseudo-terminal, remove the port link."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self.line.close()

    def __enter__(self) -> "VirtualModule":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def unplug(self, mode: str = "close") -> None:
        """Pull the cable. "close": the port vanishes and open handles fail; "silent": it stays, mute."""
        if mode not in UNPLUG_MODES:
            raise InputError("unplug mode must be 'close' or 'silent'", code="input.fault")
        with self._lock:
            self._replug = None
            self._unplug_now(mode)

    def replug(self) -> None:
        """Plug the module back in: a new pseudo-terminal behind `port`, RAM cleared, ready byte 0x55."""
        if self._thread is None:
            raise InputError("the virtual module was never started", code="input.not_started")
        with self._lock:
            self._replug = None
            if self.line.plugged and not self._silent:
                return
            if self.line.plugged:  # silent: the cable stayed, the power comes back
                self._tap("cable", b"powered")
                self._silent = False
                self._power_on()
            else:
                self._plug()

    def _plug(self) -> None:
        self._tap("cable", b"plugged")
        self.line.plug()
        self._silent = False
        self._reader = P.PacketReader()
        self._power_on()  # the ready byte goes out before anyone can open the port: a client's open flushes it

    def _power_on(self) -> None:
        self.hardware.power_on()
        self._send(self.hardware.tick())

    def _unplug_now(self, mode: str) -> None:
        self._tap("cable", f"unplugged:{mode}".encode())
        self.hardware.power_off()
        if mode == "silent":
            self._silent = True
        else:
            self.line.hang_up()

    # -- the finger and the faults ---------------------------------------------------------------------

    def place(self, finger: Any, *, source_dpi: float | None = None) -> None:
        """Put a finger on the sensor until `lift()`: an image array, an image file, a folder (cycled
        one print per capture), a Presentation or any ImageSource."""
        placed = finger_source(finger, source_dpi=source_dpi, seed=self.seed)  # loads files: outside the lock
        with self._lock:
            self.hardware.place(placed)

    def lift(self) -> None:
        """Take the placed finger off; captures go back to the image source ("none": no finger)."""
        with self._lock:
            self.hardware.lift()

    def set_source(self, source: Any) -> None:
        """Change what the sensor sees when no finger is placed."""
        built = make_image_source(source, seed=self.seed)
        with self._lock:
            self.hardware.set_source(built)

    def inject(self, faults: Any) -> None:
        """Arm faults: a Fault, a dict, a list of either; or random faults (a RandomFaults, or a dict
        with "seed" / "rates" and no "kind"), which replace the random plan."""
        if isinstance(faults, dict) and "kind" not in faults and ({"seed", "rates"} & set(faults)):
            faults = RandomFaults.from_dict(faults)
        with self._lock:
            if isinstance(faults, RandomFaults):
                self.faults.set_random(faults)
                return
            for fault in parse_faults(faults):
                self.faults.add(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()
            self.faults.set_random(None)

    @property
    def faults_fired(self) -> list[tuple[str, str, int]]:
        """(kind, instruction, frame) of every fault that has acted so far."""
        return list(self.faults.fired)

    # -- the serving thread ----------------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                self._housekeeping()
                chunk = self.line.read(_SERVE_POLL)
                if chunk is None:  # unplugged: nothing to read until a replug
                    self._stop.wait(_SERVE_POLL)
                    continue
                if not chunk:
                    continue
                self._tap("host", chunk)
                with self._lock:
                    if self._silent or not self.hardware.ready:
                        continue  # unpowered, or still booting: nobody hears it
                    if self.strict_baud:
                        line = self.line.client_baud()
                        if line is not None and line != self.baudrate:
                            self._reader.flush()
                            continue  # at the wrong speed the bytes are noise to the module
                    events = self._reader.feed(chunk)
                for event in events:
                    with self._lock:
                        sending = self._filter.receive(event)
                    if sending is not None and self._play(sending.actions) and sending.after is not None:
                        with self._lock:
                            sending.after()
        except BaseException as exc:  # surfaced to tests through .errors; the module goes quiet
            log.exception("virtual fingerprint module crashed")
            self.errors.append(exc)

    def _housekeeping(self) -> None:
        with self._lock:
            if self._replug is not None and self._replug.expired():
                self._replug = None
                self.replug()
            self._send(self.hardware.tick())

    def _play(self, actions: list[LineAction]) -> bool:
        """Put a reply on the line as the faults left it; False when it was cut short."""
        for action in actions:
            if isinstance(action, Pause):
                self._stop.wait(max(0.0, action.seconds))
            elif isinstance(action, Unplug):
                with self._lock:
                    self._unplug_now(action.mode)
                    if action.replug_after is not None:
                        self._replug = Deadline(action.replug_after)
                return False
            elif isinstance(action, Restart):
                with self._lock:
                    self.hardware.power_on(boot_time=0.0)  # a brown-out: back at once, RAM lost
                    self._send(self.hardware.tick())
                return False
            elif not self._send(action):
                return False
        return True

    def _send(self, data: bytes) -> bool:
        """Write to the line; False when unplugged, mute, or the client stopped reading."""
        if not data:
            return True
        if self._silent or not self.line.plugged:
            return False
        self._tap("device", data)
        return self.line.write(data, baud=self.baudrate if self.pace else None)

    def _tap(self, direction: str, data: bytes) -> None:
        for tap in list(self.taps):
            try:
                tap(direction, bytes(data))
            except Exception:  # a listener must never break the line
                log.warning("virtual module: a line tap failed")


for _view in HARDWARE_VIEWS:  # after the class: one read-only property per view
    setattr(VirtualModule, _view, property(operator.attrgetter(f"hardware.{_view}")))


def start_module(
    profile: str = "zfm",
    source: Any = "default",
    library_path: str | Path | None = None,
    faults: Any = None,
    seed: int = 0,
    **options: Any,
) -> VirtualModule:
    """Start a virtual module on a pseudo-terminal and return it (`.port` for the `zfm` driver).

    `source`: "default" (FVC2000 DB1_B from the shared data, else synthetic prints), "synthetic",
    "messy", "none", a folder, a file, an array, a dict or an ImageSource. `faults`: Fault records
    (see `simulator.fingerprint.faults`). Other options go to `VirtualModule` (password, address,
    baudrate, packet_size, security_level, random_faults, strict_baud, pace, ready_delay).
    """
    return VirtualModule(profile, source, library_path=library_path, faults=faults, seed=seed, **options).start()
