"""A virtual UART fingerprint module (ZFM-20/60/70 and R30x, AS608, R503) on a pseudo-terminal.

    module = VirtualModule(profile="zfm", source="default", library_path="fp-library.json", seed=1).start()
    scanner = open_device("fingerprint", "zfm", port=module.port)   # the product's real driver
    module.place("101_1.tif"); module.lift()                        # a finger on / off the sensor
    module.inject({"kind": "drop_packet", "command": "UpImage", "occurrence": 3, "packet": 17})
    module.unplug(); module.replug(); module.close()

The driver under test opens `module.port` like any serial device; a thread serves the master side of
the pseudo-terminal and answers byte for byte as the notes (shared/notes/fingerprint-sensor.md)
describe, with the frames of `drivers.fingerprint.protocol`:

- `port` is a stable symlink to the current pseudo-terminal (as /dev/serial/by-id/... is to
  /dev/ttyUSB0): it disappears when the module is unplugged and comes back, pointing at a new
  pseudo-terminal, on replug. `device` is the pseudo-terminal itself.
- Power-on: the module sends 0x55 once ready (on start, on replug, after SoftRst and after a reset).
- Baud rate: with `strict_baud` (default) the module only understands a line whose speed, as the
  client configured it on the pseudo-terminal, equals its own (9600 x N; SetSysPara changes it after
  acknowledging at the old rate); on a mismatch it hears noise and stays silent, as real hardware does.
- Password: when the module's password is not 0, every command but VfyPwd and the handshakes
  answers 0x21 until the password is verified. Replies carry the module's address; a command sent to
  another address is answered 0x20.
- Images: GenImg takes one print from the placed finger or the image source (None: 0x02 no finger),
  fits it to the sensor and quantises it to 4 bits (`simulator.fingerprint.images`); UpImage sends
  width x height / 2 bytes in data packets of the current packet size; DownImage loads one.
- Character buffers 1 and 2 hold `template_size` bytes (512 on ZFM/AS608, 1536 on R503): Img2Tz puts
  a character file there (`simulator.fingerprint.features`; 0x06 messy, 0x07 too few features),
  RegModel combines both into a template in both buffers, UpChar / DownChar move them.
- The library (Store, LoadChar, DeleteChar, Empty, TemplateNum, ReadIndexTable, Search,
  HiSpeedSearch), the notepad and the settings live in flash (`simulator.fingerprint.flash`), a file
  when `library_path` is given.
- Faults (`simulator.fingerprint.faults`): scripted per command or drawn at random from a seed.
"""
from __future__ import annotations

import array
import collections
import fcntl
import logging
import math
import os
import random
import select
import shutil
import tempfile
import threading
import time
import tty
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from drivers.fingerprint import protocol as P
from drivers.fingerprint.protocol import Instruction as I
from edge.errors import InputError
from simulator.fingerprint import features
from simulator.fingerprint.faults import Decision, FaultPlan, RandomFaults, parse_faults
from simulator.fingerprint.flash import Flash, Settings
from simulator.fingerprint.images import (
    SENSOR_DPI,
    FixedImageSource,
    ImageSource,
    Presentation,
    levels_to_grey,
    make_image_source,
    sensor_levels,
)
from simulator.fingerprint.profiles import PASSWORD_EXEMPT, REPLY_DATA_LENGTH, Profile, get_profile

log = logging.getLogger(__name__)

OK = P.OK
PACKET_RECEIVE_ERROR = 0x01
NO_FINGER = 0x02
IMAGE_MESSY = 0x06
TOO_FEW_FEATURES = 0x07
NO_MATCH = 0x08
NOT_FOUND = 0x09
COMBINE_FAILED = 0x0A
PAGE_OUT_OF_RANGE = 0x0B
TEMPLATE_INVALID = 0x0C
IMAGE_UPLOAD_ERROR = 0x0F
DELETE_FAILED = 0x10
WRONG_PASSWORD = 0x13
NO_VALID_IMAGE = 0x15
INVALID_REGISTER = 0x1A
WRONG_ADDRESS = 0x20
PASSWORD_REQUIRED = 0x21

_TCGETS2 = 0x802C542A  # Linux ioctl: termios2, which carries the line speed as a number


class _BadParameters(Exception):
    """A command's parameters are too short or out of range: answered with the given code."""

    def __init__(self, code: int = PACKET_RECEIVE_ERROR):
        super().__init__(code)
        self.code = code


@dataclass
class _Reply:
    code: int
    data: bytes = b""  # after the confirmation code
    upload: bytes | None = None  # sent as data packets after an OK acknowledgement
    address: int | None = None  # reply address when it is not the module's (SetAddr answers from the new one)
    then: Callable[[], None] | None = None  # runs after the reply went out (baud switch, soft reset, download)


@dataclass
class _Download:
    """Data packets the host is sending after DownChar / DownImage."""

    target: str  # "char" or "image"
    buffer: int
    expected: int  # exact size for images, maximum for templates
    packet_size: int
    data: bytearray
    deadline: float
    ok: bool = True


class VirtualModule:
    """One virtual module on a pseudo-terminal (see the module docstring)."""

    #: seconds the host may pause between the data packets of a DownChar / DownImage
    DOWNLOAD_TIMEOUT = 2.0
    #: seconds a reply may wait for the client to read before the rest is dropped
    WRITE_STALL_TIMEOUT = 3.0
    #: seconds between SoftRst's acknowledgement and its ready byte
    RESET_DELAY = 0.05

    def __init__(
        self,
        profile: str = "zfm",
        source: Any = "default",
        *,
        library_path: str | Path | None = None,
        faults: Any = None,
        random_faults: RandomFaults | dict | None = None,
        seed: int = 0,
        password: int | None = None,
        address: int | None = None,
        baudrate: int | None = None,
        packet_size: int | None = None,
        security_level: int | None = None,
        source_dpi: float = SENSOR_DPI,
        strict_baud: bool = True,
        pace: bool = False,
        ready_delay: float = 0.0,
    ):
        self.profile: Profile = get_profile(profile)
        self.model = self.profile.model
        self.seed = seed
        self.source: ImageSource = make_image_source(source, seed=seed)
        self.source_dpi = source_dpi
        self.strict_baud = strict_baud
        self.pace = pace
        self.ready_delay = max(0.0, float(ready_delay))
        self.flash = Flash(library_path, model=self.model.name, capacity=self.model.library_capacity,
                           template_size=self.model.template_size)
        self._apply_initial_settings(password, address, baudrate, packet_size, security_level)
        if isinstance(random_faults, dict):
            random_faults = RandomFaults.from_dict(random_faults)
        self.faults = FaultPlan(parse_faults(faults), random_faults)
        self._rng = random.Random(seed)

        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self.device: str | None = None
        self._link_dir: Path | None = None  # made by start(): holds the stable `port` link
        self.port: str | None = None
        self._silent = False  # unplugged in "silent" mode: the port stays, nothing answers
        self._replug_at: float | None = None
        self._ready_at: float | None = None  # when the ready byte 0x55 is due
        self._reader = P.PacketReader()
        self._placed: ImageSource | None = None
        self._download: _Download | None = None
        self.commands: collections.deque[str] = collections.deque(maxlen=1000)
        self.captures: collections.deque[str] = collections.deque(maxlen=1000)
        self.led: tuple[int, int, int, int] | None = None
        self.errors: list[BaseException] = []
        self._reset_ram()

    def _apply_initial_settings(self, password, address, baudrate, packet_size, security_level) -> None:
        changes: dict[str, int] = {}
        if password is not None:
            changes["password"] = _ranged("password", password, 0, 0xFFFFFFFF)
        if address is not None:
            changes["address"] = _ranged("address", address, 0, 0xFFFFFFFF)
        if baudrate is not None:
            n = P.baud_n_from_rate(baudrate)
            if n not in self.model.baud_ns:
                raise InputError(f"{self.model.name} does not run at {baudrate} baud", code="input.baudrate")
            changes["baud_n"] = n
        if packet_size is not None:
            changes["packet_size_code"] = P.packet_size_code(packet_size)
        if security_level is not None:
            changes["security_level"] = _ranged("security level", security_level, 1, 5)
        if changes:
            self.flash.update_settings(**changes)

    # -- settings --------------------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.flash.settings

    @property
    def address(self) -> int:
        return self.flash.settings.address

    @property
    def baudrate(self) -> int:
        return P.baudrate_from_n(self.flash.settings.baud_n)

    @property
    def packet_size(self) -> int:
        return P.packet_size_from_code(self.flash.settings.packet_size_code)

    @property
    def plugged(self) -> bool:
        """The cable is in (the module may still be booting: see `ready`)."""
        with self._lock:
            return self._master is not None and not self._silent

    @property
    def ready(self) -> bool:
        """Plugged in and booted (its ready byte 0x55 sent): commands are answered."""
        with self._lock:
            return self._master is not None and not self._silent and self._ready_at is None

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Block until `ready` (e.g. after `replug()` or a SoftRst); False on timeout."""
        deadline = time.monotonic() + timeout
        while not self.ready:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> "VirtualModule":
        """Power on: open the pseudo-terminal, send the ready byte, serve in a thread."""
        if self._thread is not None:
            return self
        features.warm_up()  # booting: the first Img2Tz must not pay for loading the extractor
        self._link_dir = Path(tempfile.mkdtemp(prefix="biogate-fingerprint-"))
        self.port = str(self._link_dir / f"tty{self.model.name.upper()}")
        self._plug()
        self._thread = threading.Thread(target=self._serve, name=f"virtual-{self.model.name}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Power off for good: stop serving, close the pseudo-terminal, remove the port link."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            self._close_pty()
        if self._link_dir is not None:
            shutil.rmtree(self._link_dir, ignore_errors=True)

    def __enter__(self) -> "VirtualModule":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def unplug(self, mode: str = "close") -> None:
        """Pull the cable. "close": the port vanishes and open handles fail; "silent": it stays, mute."""
        if mode not in ("close", "silent"):
            raise InputError("unplug mode must be 'close' or 'silent'", code="input.fault")
        with self._lock:
            self._replug_at = None
            self._unplug_now(mode)

    def replug(self) -> None:
        """Plug the module back in: a new pseudo-terminal behind `port`, RAM cleared, ready byte 0x55."""
        if self._thread is None:
            raise InputError("the virtual module was never started", code="input.not_started")
        with self._lock:
            self._replug_at = None
            if self._master is not None and not self._silent:
                return
            self._silent = False
            if self._master is None:
                self._plug()
            else:
                self._reset_ram()
                self._schedule_ready()

    # -- the finger and the faults ---------------------------------------------------------------------

    def place(self, finger: Any, *, source_dpi: float | None = None) -> None:
        """Put a finger on the sensor until `lift()`: an image array, an image file, a folder (cycled
        one print per capture), a Presentation or any ImageSource."""
        if isinstance(finger, Presentation):
            placed: ImageSource = FixedImageSource(finger.image, finger.source_dpi, finger.label or "placed")
        elif isinstance(finger, np.ndarray) and source_dpi is not None:
            placed = FixedImageSource(finger, source_dpi, "placed")
        else:
            placed = make_image_source(finger, seed=self.seed)
            if source_dpi is not None and hasattr(placed, "source_dpi"):
                placed.source_dpi = source_dpi  # type: ignore[attr-defined]
        with self._lock:
            self._placed = placed

    def lift(self) -> None:
        """Take the placed finger off; captures go back to the image source ("none": no finger)."""
        with self._lock:
            self._placed = None

    def set_source(self, source: Any) -> None:
        """Change what the sensor sees when no finger is placed."""
        built = make_image_source(source, seed=self.seed)
        with self._lock:
            self.source = built

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

    @property
    def templates(self) -> list[int]:
        """Library pages in use."""
        return self.flash.pages()

    # -- pseudo-terminal plumbing ----------------------------------------------------------------------

    def _plug(self) -> None:
        assert self._link_dir is not None and self.port is not None, "start() the module first"
        with self._lock:
            master, slave = os.openpty()
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._master, self._slave = master, slave
            self.device = os.ttyname(slave)
            self._silent = False
            self._reader = P.PacketReader()
            tmp = self._link_dir / f".link-{os.getpid()}-{threading.get_ident()}"
            if tmp.is_symlink():
                tmp.unlink()
            os.symlink(self.device, tmp)
            os.replace(tmp, self.port)  # atomic: the port path always names a live pseudo-terminal
            self._reset_ram()
            self._schedule_ready()
            if self._ready_at is not None and self._ready_at <= time.monotonic():
                self._send_ready()  # before anyone can open the port: a client's open flushes it

    def _close_pty(self) -> None:
        if self.port is not None:  # the port path goes first, so nobody opens a tty being torn down
            try:
                os.unlink(self.port)
            except OSError:
                pass
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None
        self.device = None

    def _unplug_now(self, mode: str) -> None:
        self._download = None
        if mode == "silent":
            self._silent = True
        else:
            self._close_pty()
        self._ready_at = None

    def _schedule_ready(self) -> None:
        self._ready_at = time.monotonic() + self.ready_delay

    def _send_ready(self) -> None:
        self._ready_at = None
        self._write(bytes([P.POWER_ON_BYTE]))

    def _reset_ram(self) -> None:
        """Power-on state of RAM: empty buffers, password verified only if it is the default."""
        self._image: np.ndarray | None = None  # 4-bit levels, (height, width)
        self._char: dict[int, bytes] = {1: bytes(self.model.template_size), 2: bytes(self.model.template_size)}
        self._verified = self.flash.settings.password == P.DEFAULT_PASSWORD
        self._matched = False
        self._download = None
        self.led = None

    def _line_baud(self) -> int | None:
        """The speed the client set on the line (Linux termios2), or None when it cannot be read."""
        slave = self._slave
        if slave is None:
            return None
        buf = array.array("I", [0] * 16)
        try:
            fcntl.ioctl(slave, _TCGETS2, buf)
        except OSError:
            return None
        return int(buf[9]) or None  # c_ispeed

    def _write(self, data: bytes) -> bool:
        """Write to the line; False when unplugged or when the client stopped reading."""
        view = memoryview(bytes(data))
        last_progress = time.monotonic()
        while view:
            if self._stop.is_set():
                return False
            with self._lock:
                master = self._master
                if master is None or self._silent:
                    return False
                try:
                    n = os.write(master, view)
                except BlockingIOError:
                    n = 0
                except OSError:
                    return False
            if n:
                if self.pace:
                    time.sleep(n * 10 / self.baudrate)
                view = view[n:]
                last_progress = time.monotonic()
                continue
            if time.monotonic() - last_progress > self.WRITE_STALL_TIMEOUT:
                log.warning("virtual fingerprint module: the client stopped reading; reply dropped")
                return False
            try:
                select.select([], [master], [], 0.05)
            except (OSError, ValueError):
                pass
        return True

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(max(0.0, seconds))

    # -- the serving thread ----------------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                self._housekeeping()
                with self._lock:
                    master = self._master
                if master is None:
                    self._sleep(0.02)
                    continue
                try:
                    ready, _, _ = select.select([master], [], [], 0.02)
                except (OSError, ValueError):
                    continue  # closed under us by unplug(): the next turn sees it
                if not ready:
                    continue
                with self._lock:
                    if self._master != master:
                        continue
                    try:
                        chunk = os.read(master, 4096)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        chunk = b""  # EIO: no client has the port open
                    if not chunk:
                        continue
                    if self._silent or self._ready_at is not None:
                        continue  # unpowered, or still booting: nobody hears it
                    if self.strict_baud:
                        line = self._line_baud()
                        if line is not None and line != self.baudrate:
                            self._reader.flush()
                            continue  # at the wrong speed the bytes are noise to the module
                    events = self._reader.feed(chunk)
                for event in events:
                    self._on_event(event)
        except BaseException as exc:  # surfaced to tests through .errors; the module goes quiet
            log.exception("virtual fingerprint module crashed")
            self.errors.append(exc)

    def _housekeeping(self) -> None:
        with self._lock:
            if self._replug_at is not None and time.monotonic() >= self._replug_at:
                self._replug_at = None
                self.replug()
            ready_due = self._ready_at is not None and time.monotonic() >= self._ready_at
            if ready_due and self._master is not None and not self._silent:
                self._send_ready()
            if self._download is not None and time.monotonic() > self._download.deadline:
                log.info("virtual fingerprint module: the host stopped sending data; download dropped")
                self._download = None

    def _on_event(self, event: P.Event) -> None:
        if isinstance(event, P.Packet):
            if event.is_data:
                self._on_data(event)
            elif event.pid == P.PacketId.COMMAND:
                self._on_command(event)
            return
        if isinstance(event, P.BadChecksum):
            with self._lock:
                if self._download is not None:
                    self._download.ok = False  # a data packet was damaged: the download is void
                    return
            if len(event.frame) > 6 and event.frame[6] == P.PacketId.COMMAND:
                self._transmit([self._ack(PACKET_RECEIVE_ERROR)], Decision())
        # Garbage and impossible lengths: real modules ignore what they cannot frame.

    def _on_data(self, packet: P.Packet) -> None:
        with self._lock:
            dl = self._download
            if dl is None:
                return
            dl.deadline = time.monotonic() + self.DOWNLOAD_TIMEOUT
            if packet.address != self.address or len(packet.payload) > dl.packet_size:
                dl.ok = False
            elif packet.pid == P.PacketId.DATA and len(packet.payload) != dl.packet_size:
                dl.ok = False
            dl.data += packet.payload
            if len(dl.data) > dl.expected:
                dl.ok = False
            if packet.pid != P.PacketId.END_DATA:
                return
            self._download = None
            if not dl.ok or (dl.target == "image" and len(dl.data) != dl.expected) or not dl.data:
                log.info("virtual fingerprint module: a download arrived damaged and was dropped")
                return
            if dl.target == "image":
                self._image = P.unpack_nibbles(bytes(dl.data), self.model.image_width, self.model.image_height)
            else:
                self._char[dl.buffer] = bytes(dl.data).ljust(self.model.template_size, b"\0")

    def _on_command(self, packet: P.Packet) -> None:
        instruction = packet.instruction
        with self._lock:
            self._download = None  # a new command ends any download in progress
            self.commands.append(_name(instruction))
            if packet.address != self.address:
                reply = _Reply(WRONG_ADDRESS)
                decision = Decision()
            else:
                decision = self.faults.decide(instruction, self._frames_for(instruction))
                if decision.answer_code is not None:
                    reply = _Reply(decision.answer_code)
                else:
                    reply = self._execute(instruction, packet.body)
            frames = self._frames(instruction, reply)
        delivered = self._transmit(frames, decision)
        if delivered and reply.then is not None:
            with self._lock:
                reply.then()

    def _frames_for(self, instruction: int) -> int:
        """How many frames an OK reply to `instruction` has (for faults aimed at data packets)."""
        if instruction == I.UP_IMAGE:
            return 1 + math.ceil(self.model.image_bytes / self.packet_size)
        if instruction == I.UP_CHAR:
            return 1 + math.ceil(self.model.template_size / self.packet_size)
        return 1

    def _ack(self, code: int, data: bytes = b"", address: int | None = None) -> bytes:
        return P.encode(P.ack(code, data, self.address if address is None else address))

    def _frames(self, instruction: int, reply: _Reply) -> list[bytes]:
        length = REPLY_DATA_LENGTH.get(instruction, 0) if instruction in self.profile.instructions else 0
        data = reply.data if reply.code == OK or reply.data else b""
        data = data.ljust(length, b"\0")
        address = self.address if reply.address is None else reply.address
        frames = [self._ack(reply.code, data, address)]
        if reply.code == OK and reply.upload is not None:
            frames += [P.encode(p) for p in P.data_packets(reply.upload, self.packet_size, address)]
        return frames

    def _transmit(self, frames: list[bytes], decision: Decision) -> bool:
        """Send a reply's frames through the faults aimed at them; False when it was cut short."""
        for index, frame in enumerate(frames):
            faults = decision.at(index)
            for fault in faults:
                if fault.kind == "slow":
                    self._sleep(fault.delay)
                elif fault.kind in ("noise", "power_on_byte"):
                    self._write(fault.noise_bytes(self.faults.rng))
                elif fault.kind == "unplug":
                    with self._lock:
                        self._unplug_now(fault.mode)
                        if fault.replug_after is not None:
                            self._replug_at = time.monotonic() + fault.replug_after
                    return False
                elif fault.kind == "reset":
                    with self._lock:
                        self._reset_ram()
                    self._write(bytes([P.POWER_ON_BYTE]))
                    return False
            kinds = {f.kind for f in faults}
            if "drop_packet" in kinds:
                continue
            if "bad_checksum" in kinds:
                frame = frame[:-1] + bytes([frame[-1] ^ 0xA5])
            truncate = next((f for f in faults if f.kind == "truncate"), None)
            if truncate is not None:
                frame = frame[: truncate.keep if truncate.keep is not None else len(frame) // 2]
            split = next((f for f in faults if f.kind == "split_packet"), None)
            if split is not None:
                size = max(1, math.ceil(len(frame) / split.pieces))
                for i in range(0, len(frame), size):
                    if i:
                        self._sleep(split.delay)
                    if not self._write(frame[i : i + size]):
                        return False
                continue
            if not self._write(frame):
                return False
        return True

    # -- commands --------------------------------------------------------------------------------------

    def _execute(self, instruction: int, body: bytes) -> _Reply:
        if instruction not in self.profile.instructions:
            return _Reply(self.profile.unknown_instruction_code)
        if not self._verified and instruction not in PASSWORD_EXEMPT:
            return _Reply(PASSWORD_REQUIRED)
        handler = self._HANDLERS[instruction]
        try:
            return handler(self, body)
        except _BadParameters as bad:
            return _Reply(bad.code)

    def _capture(self) -> _Reply:
        source = self._placed or self.source
        presentation = source.capture()
        if presentation is None:
            return _Reply(NO_FINGER)
        dpi = presentation.source_dpi if presentation.source_dpi else self.source_dpi
        self._image = sensor_levels(presentation.image, self.model.image_width, self.model.image_height, dpi)
        self.captures.append(presentation.label)
        return _Reply(OK)

    def _gen_img(self, body: bytes) -> _Reply:
        return self._capture()

    def _img2tz(self, body: bytes) -> _Reply:
        buffer = _buffer(body)
        if self._image is None:
            return _Reply(NO_VALID_IMAGE)
        try:
            record = features.extract(levels_to_grey(self._image))
        except features.FeatureError as exc:
            return _Reply(IMAGE_MESSY if exc.reason == "image_messy" else TOO_FEW_FEATURES)
        self._char[buffer] = record.ljust(self.model.template_size, b"\0")
        return _Reply(OK)

    def _threshold(self) -> int:
        return features.MATCH_THRESHOLDS[self.flash.settings.security_level]

    def _match(self, body: bytes) -> _Reply:
        score = features.score(self._char[1], self._char[2])
        self._matched = score >= self._threshold()
        return _Reply(OK if self._matched else NO_MATCH, score.to_bytes(2, "big"))

    def _search(self, body: bytes) -> _Reply:
        _need(body, 5)
        buffer = _buffer(body[:1])
        start = int.from_bytes(body[1:3], "big")
        count = int.from_bytes(body[3:5], "big")
        if start >= self.model.library_capacity:
            return _Reply(PAGE_OUT_OF_RANGE)
        probe = self._char[buffer]
        best_page, best_score = None, -1
        for page in self.flash.pages():
            if start <= page < start + count:
                score = features.score(probe, self.flash.load(page) or b"")
                if score > best_score:
                    best_page, best_score = page, score
        self._matched = best_page is not None and best_score >= self._threshold()
        if not self._matched:
            return _Reply(NOT_FOUND)
        return _Reply(OK, best_page.to_bytes(2, "big") + best_score.to_bytes(2, "big"))  # type: ignore[union-attr]

    def _reg_model(self, body: bytes) -> _Reply:
        if features.score(self._char[1], self._char[2]) < self._threshold():
            return _Reply(COMBINE_FAILED)
        template = features.combine(self._char[1], self._char[2], self.model.template_size)
        self._char[1] = self._char[2] = template
        return _Reply(OK)

    def _page(self, raw: bytes) -> int:
        page = int.from_bytes(raw, "big")
        if page >= self.model.library_capacity:
            raise _BadParameters(PAGE_OUT_OF_RANGE)
        return page

    def _store(self, body: bytes) -> _Reply:
        _need(body, 3)
        buffer = _buffer(body[:1])
        page = self._page(body[1:3])
        self.flash.store(page, self._char[buffer])
        return _Reply(OK)

    def _load_char(self, body: bytes) -> _Reply:
        _need(body, 3)
        buffer = _buffer(body[:1])
        template = self.flash.load(self._page(body[1:3]))
        if template is None:
            return _Reply(TEMPLATE_INVALID)
        self._char[buffer] = template
        return _Reply(OK)

    def _up_char(self, body: bytes) -> _Reply:
        return _Reply(OK, upload=self._char[_buffer(body)])

    def _start_download(self, target: str, buffer: int, expected: int) -> Callable[[], None]:
        def begin() -> None:
            self._download = _Download(target, buffer, expected, self.packet_size, bytearray(),
                                       time.monotonic() + self.DOWNLOAD_TIMEOUT)

        return begin

    def _down_char(self, body: bytes) -> _Reply:
        return _Reply(OK, then=self._start_download("char", _buffer(body), self.model.template_size))

    def _up_image(self, body: bytes) -> _Reply:
        if self._image is None:
            return _Reply(IMAGE_UPLOAD_ERROR)
        return _Reply(OK, upload=P.pack_nibbles(self._image))

    def _down_image(self, body: bytes) -> _Reply:
        return _Reply(OK, then=self._start_download("image", 0, self.model.image_bytes))

    def _delete_char(self, body: bytes) -> _Reply:
        _need(body, 4)
        start = self._page(body[0:2])
        count = int.from_bytes(body[2:4], "big")
        if count < 1 or start + count > self.model.library_capacity:
            return _Reply(DELETE_FAILED)
        self.flash.delete(start, count)
        return _Reply(OK)

    def _empty(self, body: bytes) -> _Reply:
        self.flash.empty()
        return _Reply(OK)

    def _set_sys_para(self, body: bytes) -> _Reply:
        _need(body, 2)
        parameter, value = body[0], body[1]
        if parameter == P.SysParam.BAUD:
            if value not in self.model.baud_ns:
                return _Reply(INVALID_REGISTER)
            # acknowledged at the old speed, then the module switches
            return _Reply(OK, then=lambda: self.flash.update_settings(baud_n=value))
        if parameter == P.SysParam.SECURITY_LEVEL and 1 <= value <= 5:
            self.flash.update_settings(security_level=value)
            return _Reply(OK)
        if parameter == P.SysParam.PACKET_SIZE and value in P.PACKET_SIZES:
            self.flash.update_settings(packet_size_code=value)
            return _Reply(OK)
        return _Reply(INVALID_REGISTER)

    def _status_register(self) -> int:
        return (0x2 if self._matched else 0) | (0x4 if self._verified else 0) | (0x8 if self._image is not None else 0)

    def _read_sys_para(self, body: bytes) -> _Reply:
        s = self.flash.settings
        params = P.SystemParameters(self._status_register(), self.profile.system_id, self.model.library_capacity,
                                    s.security_level, s.address, s.packet_size_code, s.baud_n)
        return _Reply(OK, params.pack())

    def _set_pwd(self, body: bytes) -> _Reply:
        _need(body, 4)
        self.flash.update_settings(password=int.from_bytes(body[:4], "big"))
        return _Reply(OK)

    def _vfy_pwd(self, body: bytes) -> _Reply:
        _need(body, 4)
        self._verified = int.from_bytes(body[:4], "big") == self.flash.settings.password
        return _Reply(OK if self._verified else WRONG_PASSWORD)

    def _get_random_code(self, body: bytes) -> _Reply:
        return _Reply(OK, self._rng.getrandbits(32).to_bytes(4, "big"))

    def _set_addr(self, body: bytes) -> _Reply:
        _need(body, 4)
        new = int.from_bytes(body[:4], "big")
        self.flash.update_settings(address=new)
        return _Reply(OK, address=new)

    def _write_notepad(self, body: bytes) -> _Reply:
        _need(body, 1 + P.NOTEPAD_PAGE_SIZE)
        if body[0] >= P.NOTEPAD_PAGES:
            return _Reply(self.profile.invalid_notepad_code)
        self.flash.write_notepad(body[0], body[1 : 1 + P.NOTEPAD_PAGE_SIZE])
        return _Reply(OK)

    def _read_notepad(self, body: bytes) -> _Reply:
        _need(body, 1)
        if body[0] >= P.NOTEPAD_PAGES:
            return _Reply(self.profile.invalid_notepad_code)
        return _Reply(OK, self.flash.read_notepad(body[0]))

    def _template_num(self, body: bytes) -> _Reply:
        return _Reply(OK, len(self.flash.pages()).to_bytes(2, "big"))

    def _read_index_table(self, body: bytes) -> _Reply:
        _need(body, 1)
        if body[0] >= P.INDEX_TABLE_PAGES:
            return _Reply(PAGE_OUT_OF_RANGE)
        return _Reply(OK, P.pages_to_index_table(self.flash.pages(), body[0]))

    def _aura_led_config(self, body: bytes) -> _Reply:
        _need(body, 4)
        self.led = (body[0], body[1], body[2], body[3])
        return _Reply(OK)

    def _check_sensor(self, body: bytes) -> _Reply:
        return _Reply(OK)

    def _firmware_version(self, body: bytes) -> _Reply:
        return _Reply(OK, self.profile.firmware.encode("ascii")[:32].ljust(32, b"\0"))

    def _soft_reset(self, body: bytes) -> _Reply:
        def restart() -> None:
            self._reset_ram()
            self._ready_at = time.monotonic() + self.RESET_DELAY + self.ready_delay

        return _Reply(OK, then=restart)

    def _handshake(self, body: bytes) -> _Reply:
        return _Reply(OK)

    def _zfm_handshake(self, body: bytes) -> _Reply:
        return _Reply(P.HANDSHAKE_OK)

    _HANDLERS: dict[int, Callable[["VirtualModule", bytes], _Reply]] = {
        I.GEN_IMG: _gen_img,
        I.GET_IMAGE_EX: _gen_img,
        I.IMG2TZ: _img2tz,
        I.MATCH: _match,
        I.SEARCH: _search,
        I.HI_SPEED_SEARCH: _search,
        I.REG_MODEL: _reg_model,
        I.STORE: _store,
        I.LOAD_CHAR: _load_char,
        I.UP_CHAR: _up_char,
        I.DOWN_CHAR: _down_char,
        I.UP_IMAGE: _up_image,
        I.DOWN_IMAGE: _down_image,
        I.DELETE_CHAR: _delete_char,
        I.EMPTY: _empty,
        I.SET_SYS_PARA: _set_sys_para,
        I.READ_SYS_PARA: _read_sys_para,
        I.SET_PWD: _set_pwd,
        I.VFY_PWD: _vfy_pwd,
        I.GET_RANDOM_CODE: _get_random_code,
        I.SET_ADDR: _set_addr,
        I.WRITE_NOTEPAD: _write_notepad,
        I.READ_NOTEPAD: _read_notepad,
        I.TEMPLATE_NUM: _template_num,
        I.READ_INDEX_TABLE: _read_index_table,
        I.AURA_LED_CONFIG: _aura_led_config,
        I.CHECK_SENSOR: _check_sensor,
        I.GET_FIRMWARE_VERSION: _firmware_version,
        I.SOFT_RESET: _soft_reset,
        I.HANDSHAKE: _handshake,
        I.ZFM_HANDSHAKE: _zfm_handshake,
    }


def _need(body: bytes, n: int) -> None:
    if len(body) < n:
        raise _BadParameters()


def _buffer(body: bytes) -> int:
    _need(body, 1)
    if body[0] not in (1, 2):
        raise _BadParameters()
    return body[0]


def _ranged(label: str, value: int, low: int, high: int) -> int:
    if not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{label} must be an integer in {low}..{high}", code="input.invalid")
    return value


def _name(instruction: int) -> str:
    try:
        return I(instruction).name
    except ValueError:
        return f"0x{instruction:02X}"


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
