"""Driver for the UART fingerprint modules (ZFM-20/60/70, R30x, R503, AS608) over pyserial.

Two layers:
- `ZfmModule`: one method per module command, speaking the frames of `drivers.fingerprint.protocol`.
  Every wait is a `drivers.deadline.Deadline` (`timeout=0` is one non-blocking look at the line,
  never "the default"); garbage on the line (a power-on 0x55, noise) is skipped; a reply with a
  bad checksum or of the wrong kind makes the command be sent once more; every other failure is a
  typed `DeviceError` (see `drivers.fingerprint.errors`).
- `ZfmScanner`: the `zfm` backend of `drivers.base.FingerprintScanner` (finger presence and image
  capture), built on `ZfmModule`.

Transfers (UpImage, UpChar) are all-or-nothing: the data packets must arrive complete, with valid
checksums, at the module's packet size, adding up to exactly width x height / 2 bytes (the template
size for UpChar); otherwise the line is drained and the transfer requested once more (the module
still holds the buffer), and if that fails too it raises. A corrupt image is never returned.

The port is opened with `serial.serial_for_url`, so a device path, a pseudo-terminal or a pyserial
URL (`loop://`, `socket://host:port`) all work.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import serial

from drivers.base import FingerprintScanner
from drivers.deadline import Deadline
from drivers.fingerprint import protocol as P
from drivers.fingerprint.errors import (
    MODULE_ERROR_BY_NAME,
    ChecksumError,
    DeviceTimeout,
    DisconnectedError,
    FingerprintError,
    ModuleError,
    NoFingerError,
    ProtocolError,
    WrongPasswordError,
)
from edge.errors import InputError

log = logging.getLogger(__name__)

try:  # pyserial lets termios errors through (tcdrain, tcgetattr) when the tty hangs up (POSIX only)
    from termios import error as _TermiosError

    _LINE_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError, _TermiosError)
except ImportError:  # pragma: no cover - Windows
    _LINE_ERRORS = (serial.SerialException, OSError)
_OPEN_ERRORS = (*_LINE_ERRORS, ValueError)


@dataclass(frozen=True)
class MatchResult:
    matched: bool
    score: int


@dataclass(frozen=True)
class SearchResult:
    found: bool
    page: int | None
    score: int


class _LineFault(Exception):
    """Internal: a reply was unusable in a way that is worth one retry (checksum, garbage, wrong kind)."""

    def __init__(self, error: FingerprintError):
        super().__init__(str(error))
        self.error = error


class ZfmModule:
    """Low-level access to one module: one method per command.

    `timeout` bounds each reply (and each silence between data packets); 0 means one look at what
    the line already holds. `model` picks the confirmation-code table and image size ("zfm" covers
    ZFM-20/60/70 and R30x, "as608", "r503").
    """

    #: seconds a single pyserial read may block while time is left: a deadline is kept to within this
    POLL_INTERVAL = 0.02

    def __init__(
        self,
        port: str,
        baudrate: int = 57600,
        address: int = P.DEFAULT_ADDRESS,
        password: int = P.DEFAULT_PASSWORD,
        model: str = "zfm",
        timeout: float = 2.0,
        *,
        retries: int = 1,
        wait_ready: float = 0.0,
    ):
        self.model = P.get_model(model)
        P.baud_n_from_rate(baudrate)  # validates 9600 x N
        if timeout < 0:
            raise InputError(f"the fingerprint module timeout must be >= 0 s, got {timeout}")
        self.address = address
        self.password = password
        self.timeout = float(timeout)
        self.retries = retries
        self._lock = threading.RLock()
        self._reader = P.PacketReader()
        self._events: deque = deque()
        self._packet_size: int | None = None
        self.port = port
        try:
            self._serial = serial.serial_for_url(port, baudrate=baudrate, timeout=self.POLL_INTERVAL, write_timeout=self.timeout)
        except _OPEN_ERRORS as exc:
            raise DisconnectedError(f"cannot open fingerprint module port {port!r}: {exc}") from exc
        if wait_ready > 0:
            self.wait_ready(wait_ready, required=False)
        # Anything already on the line (a power-on 0x55, a stale reply) is not an answer to us.
        self._discard_input()

    # -- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self._serial.close()
        except Exception:  # closing an unplugged port may itself fail; nothing left to do
            pass

    def __enter__(self) -> "ZfmModule":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def baudrate(self) -> int:
        return self._serial.baudrate

    # -- line handling -----------------------------------------------------------------------------

    def _read_chunk(self, deadline: Deadline) -> bytes:
        """What the line holds now; when it holds nothing and time is left, wait one poll interval."""
        try:
            waiting = self._serial.in_waiting
            if waiting or deadline.expired():
                return self._serial.read(waiting) if waiting else b""
            return self._serial.read(1)  # blocks at most POLL_INTERVAL (the port's read timeout)
        except _LINE_ERRORS as exc:
            raise DisconnectedError(f"fingerprint module disconnected: {exc}") from exc

    def _write(self, data: bytes) -> None:
        try:
            written = self._serial.write(data)
            self._serial.flush()
        except serial.SerialTimeoutException as exc:
            raise DeviceTimeout(f"writing to the fingerprint module timed out: {exc}") from exc
        except _LINE_ERRORS as exc:
            raise DisconnectedError(f"fingerprint module disconnected: {exc}") from exc
        if written is not None and written < len(data):  # a non-blocking write (timeout 0) that did not fit
            raise DeviceTimeout(f"only {written} of {len(data)} bytes could be written to the fingerprint module")

    def _discard_input(self) -> None:
        """Forget everything received so far (stale replies, a 0x55, half frames)."""
        self._events.clear()
        self._reader.flush()
        try:
            self._serial.reset_input_buffer()
        except _LINE_ERRORS as exc:
            raise DisconnectedError(f"fingerprint module disconnected: {exc}") from exc
        except Exception:  # some URL handlers do not implement it
            pass

    def _read_until_quiet(self, quiet: float, budget: float, *, until_end_of_data: bool = False) -> None:
        """Read and drop bytes until the line has been silent for `quiet` s (or, `until_end_of_data`,
        until a transfer's last data packet went by), for at most `budget` s."""
        silence = Deadline(quiet, within=Deadline(budget))
        try:
            while not silence.expired():
                chunk = self._read_chunk(silence)
                if not chunk:
                    continue
                silence.restart()
                if until_end_of_data and any(
                    isinstance(e, P.Packet) and e.pid == P.PacketId.END_DATA for e in self._reader.feed(chunk)
                ):
                    break
        except DisconnectedError:
            pass

    def _drain(self, quiet: float = 0.05) -> None:
        """After a failed reply: read until the line has been silent for `quiet` s (bounded)."""
        self._read_until_quiet(quiet, self.timeout)
        self._events.clear()
        self._reader.flush()

    def _drain_transfer(self, expected_size: int) -> None:
        """After a transfer broke part way: the module goes on sending what it started, so read until
        its last data packet, or until the line has been silent for `timeout` s (a lost last packet),
        at most for the time the whole transfer takes. Then the next command meets a quiet line."""
        self._read_until_quiet(self.timeout, self.timeout + self._transfer_seconds(expected_size),
                               until_end_of_data=True)
        self._drain()

    def _events_until(self, deadline: Deadline) -> Iterator[P.Event]:
        """Parser events as they arrive, then DeviceTimeout once `deadline` has passed.

        The line is read once more after the deadline has passed, and then no more: a reply that has
        already arrived is taken (so a zero deadline is one non-blocking try), and a line that never
        stops babbling cannot hold the caller beyond it.
        """
        last_look = False
        while True:
            while self._events:
                yield self._events.popleft()
            if deadline.expired():
                if last_look:
                    raise DeviceTimeout(
                        f"no complete reply from the fingerprint module within the deadline "
                        f"({self._reader.pending} bytes of a partial frame pending)"
                    )
                last_look = True
            chunk = self._read_chunk(deadline)
            if chunk:
                self._events.extend(self._reader.feed(chunk))

    def _next_packet(self, deadline: Deadline) -> P.Packet:
        """The next valid packet; garbage is skipped, broken frames raise (retryable) _LineFault."""
        for event in self._events_until(deadline):
            if isinstance(event, P.Packet):
                return event
            if isinstance(event, P.Garbage):
                log.debug("skipped %d garbage bytes on the fingerprint line", len(event.data))
                continue
            if isinstance(event, P.BadChecksum):
                raise _LineFault(
                    ChecksumError(
                        "fingerprint module reply failed its checksum",
                        details={"expected": event.expected, "received": event.received},
                    )
                )
            if isinstance(event, P.BadLength):
                raise _LineFault(ProtocolError(f"frame with impossible length field {event.length}"))
        raise AssertionError("unreachable")  # _events_until ends by raising DeviceTimeout

    def wait_ready(self, timeout: float, *, required: bool = True) -> bool:
        """Wait for the module's ready byte 0x55 (power-on, after SoftRst); 0: is it already there?"""
        try:
            for event in self._events_until(Deadline(timeout)):
                if isinstance(event, P.Garbage) and P.POWER_ON_BYTE in event.data:
                    return True
        except DeviceTimeout:
            if required:
                raise DeviceTimeout(f"the fingerprint module did not signal ready (0x55) within {timeout} s") from None
            return False

    # -- command transactions ----------------------------------------------------------------------

    def _raise_for(self, instruction: int, code: int) -> None:
        name, message = self.model.describe(code)
        cls = MODULE_ERROR_BY_NAME.get(name, ModuleError)
        if instruction == P.Instruction.VFY_PWD and code == 0x13:
            cls = WrongPasswordError  # AS608 says "command invalid" (0x13) for a wrong password
        raise cls(
            f"{P.instruction_name(instruction)}: {message} (confirmation {code:#04x})",
            confirmation=code,
            name=name,
            model=self.model.name,
        )

    def _send_command(self, instruction: int, params: bytes = b"") -> None:
        self._write(P.encode(P.command(instruction, params, self.address)))

    def _transfer_seconds(self, size: int) -> float:
        """Generous time for `size` data bytes in packets at the current baud rate (3x the wire time)."""
        packet_size = self._packet_size or 128
        wire_bytes = size * (packet_size + 11) / packet_size
        return 3 * wire_bytes * 10 / self._serial.baudrate

    def _read_ack(self, timeout: float, addresses: tuple[int, ...], *, transfer: bool = False) -> P.Packet:
        """The acknowledgement of the command just sent, within `timeout` s.

        Data packets before the acknowledgement of a command that starts no transfer are the tail of
        an earlier transfer this side abandoned (the module finishes sending what it started): they
        are skipped, and while they keep coming the deadline moves with them, at most by the time a
        whole image takes on this line. Before UpImage's / UpChar's acknowledgement they mean the
        acknowledgement itself was lost: a line fault.
        """
        deadline = Deadline(timeout, within=Deadline(timeout + self._transfer_seconds(self.model.image_bytes)))
        while True:
            packet = self._next_packet(deadline)
            if packet.is_data and not transfer:
                log.debug("skipped a stale data packet before the acknowledgement")
                deadline.extend(self.timeout)
                continue
            if packet.pid != P.PacketId.ACK or not packet.payload:
                raise _LineFault(ProtocolError(f"expected an acknowledgement, got packet id {packet.pid:#04x}"))
            if packet.address not in addresses:
                raise _LineFault(
                    ProtocolError(f"reply from address {packet.address:#010x}, expected {self.address:#010x}")
                )
            return packet

    def transact(
        self,
        instruction: int,
        params: bytes = b"",
        *,
        ok: tuple[int, ...] = (P.OK,),
        reply_size: int | None = None,
        timeout: float | None = None,
        extra_addresses: tuple[int, ...] = (),
    ) -> P.Packet:
        """Send one command and return its acknowledgement.

        The confirmation code must be one of `ok` (else a ModuleError subclass is raised); when
        `reply_size` is given the data after the confirmation code must be at least that long.
        `timeout` replaces the module's own for this reply (0: only a reply already there counts).
        A checksum error, garbage frame, wrong-kind reply, or a reply cut off part way (a partial
        frame pending at the deadline) makes the command be re-sent (at most `self.retries` times);
        silence is never retried (DeviceTimeout): a module that does not answer at all is gone.
        """
        with self._lock:
            last: FingerprintError | None = None
            for _attempt in range(self.retries + 1):
                self._discard_input()
                self._send_command(instruction, params)
                try:
                    reply = self._read_ack(self.timeout if timeout is None else timeout,
                                           (self.address, *extra_addresses),
                                           transfer=instruction in _TRANSFER_INSTRUCTIONS)
                except _LineFault as fault:
                    last = fault.error
                    log.warning("fingerprint %s: %s; retrying", P.instruction_name(instruction), fault.error.code)
                    self._drain()
                    continue
                except DeviceTimeout as timeout_error:
                    if not self._reader.pending:
                        raise  # silence
                    last = timeout_error
                    log.warning("fingerprint %s: reply cut off; retrying", P.instruction_name(instruction))
                    self._drain()
                    continue
                if reply.confirmation not in ok:
                    self._raise_for(instruction, reply.confirmation)
                if reply_size is not None and len(reply.body) < reply_size:
                    last = ProtocolError(
                        f"{P.instruction_name(instruction)} reply carries {len(reply.body)} bytes, expected {reply_size}"
                    )
                    self._drain()
                    continue
                return reply
            assert last is not None
            raise last

    def _receive_data(self, expected_size: int | None, what: str) -> bytes:
        """Collect the data packets that follow an UpImage/UpChar acknowledgement.

        Each packet must arrive within `timeout` of the previous one and the whole transfer within a
        budget from the baud rate; every packet but the last must be exactly the packet size.
        """
        packet_size = self.packet_size
        out = bytearray()
        # each packet within `timeout` of the previous one, all of them within the transfer's budget
        gap = Deadline(self.timeout, within=Deadline(self.timeout + self._transfer_seconds(expected_size or 4096)))
        ended = False  # the module's last data packet has been seen
        try:
            while True:
                gap.restart()
                try:
                    packet = self._next_packet(gap)
                except _LineFault as fault:
                    raise fault.error from None
                except DeviceTimeout:
                    raise DeviceTimeout(
                        f"{what} stopped after {len(out)} of {expected_size or '?'} bytes (line silent or too slow)",
                        details={"bytes_received": len(out)},
                    ) from None
                ended = packet.pid == P.PacketId.END_DATA
                if not packet.is_data:
                    raise ProtocolError(f"{what}: expected a data packet, got packet id {packet.pid:#04x}")
                if packet.address != self.address:
                    raise ProtocolError(f"{what}: data packet from address {packet.address:#010x}")
                if packet.pid == P.PacketId.DATA and len(packet.payload) != packet_size:
                    raise ProtocolError(
                        f"{what}: data packet of {len(packet.payload)} bytes, module packet size is {packet_size}"
                    )
                if len(packet.payload) > packet_size:
                    raise ProtocolError(f"{what}: final data packet larger than the packet size")
                out += packet.payload
                if expected_size is not None and len(out) > expected_size:
                    raise ProtocolError(f"{what}: more than the expected {expected_size} bytes")
                if packet.pid == P.PacketId.END_DATA:
                    break
            if expected_size is not None and len(out) != expected_size:
                raise ProtocolError(f"{what}: received {len(out)} bytes, expected exactly {expected_size}")
            return bytes(out)
        except DisconnectedError:
            raise
        except FingerprintError as exc:
            pending_end = any(isinstance(e, P.Packet) and e.pid == P.PacketId.END_DATA for e in self._events)
            if ended or pending_end or isinstance(exc, DeviceTimeout):
                self._drain()  # the module has finished (or fallen silent)
            else:
                self._drain_transfer(max(0, (expected_size or 4096) - len(out)))
            raise
        finally:
            out[:] = bytes(len(out))  # the caller has its own copy: leave no biometric sample behind

    def _send_data(self, data: bytes) -> None:
        for packet in P.data_packets(data, self.packet_size, self.address):
            self._write(P.encode(packet))

    # -- system --------------------------------------------------------------------------------------

    def verify_password(self, password: int | None = None) -> None:
        """VfyPwd; raises WrongPasswordError."""
        pw = self.password if password is None else password
        self.transact(P.Instruction.VFY_PWD, pw.to_bytes(4, "big"))
        self.password = pw

    def set_password(self, password: int) -> None:
        """SetPwd: the module's new password (4 bytes)."""
        _check_range("password", password, 0, 0xFFFFFFFF)
        self.transact(P.Instruction.SET_PWD, password.to_bytes(4, "big"))
        self.password = password

    def set_address(self, address: int) -> None:
        """SetAddr: the module answers, and is addressed, under the new address from now on."""
        _check_range("address", address, 0, 0xFFFFFFFF)
        self.transact(P.Instruction.SET_ADDR, address.to_bytes(4, "big"), extra_addresses=(address,))
        self.address = address

    def handshake(self) -> None:
        """R503 HandShake (0x40, answers 0x00) or ZFM-70 handshake (0x53, answers 0x55)."""
        if self.model.name == "r503":
            self.transact(P.Instruction.HANDSHAKE)
        else:
            self.transact(P.Instruction.ZFM_HANDSHAKE, ok=(P.HANDSHAKE_OK, P.OK))

    def read_sys_para(self) -> P.SystemParameters:
        reply = self.transact(P.Instruction.READ_SYS_PARA, reply_size=P.SystemParameters.SIZE)
        params = P.SystemParameters.unpack(reply.body)
        if params.packet_size_code not in P.PACKET_SIZES:
            raise ProtocolError(f"module reports an invalid packet-size code {params.packet_size_code}")
        self._packet_size = params.packet_size
        return params

    def set_sys_para(self, parameter: int, value: int) -> None:
        """SetSysPara: parameter number (4 baud N, 5 security level, 6 packet-size code) and value."""
        self.transact(P.Instruction.SET_SYS_PARA, bytes([int(parameter), value]))

    def set_baudrate(self, baudrate: int) -> None:
        """Change the module's baud rate, then follow it on this side of the line."""
        try:
            n = P.baud_n_from_rate(baudrate)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if n not in self.model.baud_ns:
            raise InputError(f"{self.model.name} does not support {baudrate} baud")
        with self._lock:
            self.set_sys_para(P.SysParam.BAUD, n)
            self._serial.baudrate = baudrate

    def set_security_level(self, level: int) -> None:
        _check_range("security level", level, 1, 5)
        self.set_sys_para(P.SysParam.SECURITY_LEVEL, level)

    def set_packet_size(self, size: int) -> None:
        try:
            code = P.packet_size_code(size)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.set_sys_para(P.SysParam.PACKET_SIZE, code)
        self._packet_size = size

    @property
    def packet_size(self) -> int:
        """Data-packet size; read from the module (ReadSysPara) the first time it is needed."""
        if self._packet_size is None:
            self.read_sys_para()
        assert self._packet_size is not None
        return self._packet_size

    def get_random_code(self) -> int:
        reply = self.transact(P.Instruction.GET_RANDOM_CODE, reply_size=4)
        return int.from_bytes(reply.body[:4], "big")

    def write_notepad(self, page: int, data: bytes) -> None:
        _check_range("notepad page", page, 0, P.NOTEPAD_PAGES - 1)
        if len(data) > P.NOTEPAD_PAGE_SIZE:
            raise InputError(f"a notepad page holds {P.NOTEPAD_PAGE_SIZE} bytes, got {len(data)}")
        self.transact(P.Instruction.WRITE_NOTEPAD, bytes([page]) + bytes(data).ljust(P.NOTEPAD_PAGE_SIZE, b"\0"))

    def read_notepad(self, page: int) -> bytes:
        _check_range("notepad page", page, 0, P.NOTEPAD_PAGES - 1)
        reply = self.transact(P.Instruction.READ_NOTEPAD, bytes([page]), reply_size=P.NOTEPAD_PAGE_SIZE)
        return reply.body[: P.NOTEPAD_PAGE_SIZE]

    def soft_reset(self, ready_timeout: float | None = None) -> None:
        """R503 SoftRst: acknowledged, then the module sends 0x55 once it is ready again."""
        with self._lock:
            self.transact(P.Instruction.SOFT_RESET)
            self.wait_ready(self.timeout if ready_timeout is None else ready_timeout)
            self._discard_input()

    def check_sensor(self) -> None:
        """R503 CheckSensor: returns when the sensor is normal, raises SensorFaultError (0x29) else."""
        self.transact(P.Instruction.CHECK_SENSOR)

    def aura_led_config(self, control: int, speed: int, colour: int, times: int = 0) -> None:
        """R503 AuraLedConfig: control (1 breathing, 2 flashing, 3 on, 4 off, 5 fade in, 6 fade out),
        speed 0-255, colour index (1 red, 2 blue, 3 purple, ...), times (0 = endless)."""
        for label, value in (("control", control), ("speed", speed), ("colour", colour), ("times", times)):
            _check_range(label, value, 0, 255)
        self.transact(P.Instruction.AURA_LED_CONFIG, bytes([control, speed, colour, times]))

    def firmware_version(self) -> str:
        """R503 firmware version string (0x3A)."""
        reply = self.transact(P.Instruction.GET_FIRMWARE_VERSION)
        return reply.body.rstrip(b"\0").decode("ascii", "replace").strip()

    # -- images and character buffers ----------------------------------------------------------------

    def gen_img(self) -> None:
        """GenImg: capture into the image buffer; raises NoFingerError when no finger is there."""
        self.transact(P.Instruction.GEN_IMG)

    def get_image_ex(self) -> None:
        """R503 GetImageEx: as GenImg, with the module's own image-quality check."""
        self.transact(P.Instruction.GET_IMAGE_EX)

    def img2tz(self, buffer: int = 1) -> None:
        """Img2Tz / GenChar: image buffer -> character file in `buffer` (1 or 2)."""
        self.transact(P.Instruction.IMG2TZ, bytes([_buffer(buffer)]))

    def match(self) -> MatchResult:
        """Match: compare character buffers 1 and 2."""
        reply = self.transact(P.Instruction.MATCH, ok=(P.OK, 0x08))
        score = int.from_bytes(reply.body[:2], "big") if len(reply.body) >= 2 else 0
        return MatchResult(reply.confirmation == P.OK, score)

    def search(self, buffer: int = 1, start: int = 0, count: int | None = None, *, high_speed: bool = False) -> SearchResult:
        """Search (or HiSpeedSearch) the library pages [start, start + count) for `buffer`."""
        count = self.model.library_capacity - start if count is None else count
        _check_range("start page", start, 0, 0xFFFF)
        _check_range("page count", count, 0, 0xFFFF)
        instruction = P.Instruction.HI_SPEED_SEARCH if high_speed else P.Instruction.SEARCH
        params = bytes([_buffer(buffer)]) + start.to_bytes(2, "big") + count.to_bytes(2, "big")
        reply = self.transact(instruction, params, ok=(P.OK, 0x09))
        if reply.confirmation != P.OK:
            return SearchResult(False, None, 0)
        if len(reply.body) < 4:
            raise ProtocolError("search reply lacks page and score")
        return SearchResult(True, int.from_bytes(reply.body[0:2], "big"), int.from_bytes(reply.body[2:4], "big"))

    def hi_speed_search(self, buffer: int = 1, start: int = 0, count: int | None = None) -> SearchResult:
        return self.search(buffer, start, count, high_speed=True)

    def reg_model(self) -> None:
        """RegModel: combine character buffers 1 and 2 into a template."""
        self.transact(P.Instruction.REG_MODEL)

    def store(self, page: int, buffer: int = 1) -> None:
        self.transact(P.Instruction.STORE, bytes([_buffer(buffer)]) + _page(page, self.model))

    def load_char(self, page: int, buffer: int = 1) -> None:
        self.transact(P.Instruction.LOAD_CHAR, bytes([_buffer(buffer)]) + _page(page, self.model))

    def delete_char(self, page: int, count: int = 1) -> None:
        _check_range("count", count, 1, 0xFFFF)
        self.transact(P.Instruction.DELETE_CHAR, _page(page, self.model) + count.to_bytes(2, "big"))

    def empty(self) -> None:
        """Empty: delete every template in the library."""
        self.transact(P.Instruction.EMPTY)

    def template_count(self) -> int:
        reply = self.transact(P.Instruction.TEMPLATE_NUM, reply_size=2)
        return int.from_bytes(reply.body[:2], "big")

    def read_index_table(self, table_page: int = 0) -> list[int]:
        """Library pages in use within index page `table_page` (0-3, 256 templates each)."""
        _check_range("index table page", table_page, 0, P.INDEX_TABLE_PAGES - 1)
        reply = self.transact(P.Instruction.READ_INDEX_TABLE, bytes([table_page]), reply_size=P.INDEX_TABLE_PAGE_BYTES)
        return P.index_table_to_pages(reply.body[: P.INDEX_TABLE_PAGE_BYTES], table_page)

    def _upload(self, instruction: int, params: bytes, expected_size: int, what: str) -> bytes:
        """Request a module -> host transfer (UpImage, UpChar) and collect all of it.

        A transfer the line broke (a checksum error, a malformed, short or missing data packet, or a
        stall after data had started to flow) is requested again, at most `self.retries` times: the
        module still holds the buffer. Silence from the start and a vanished port are not retried.
        """
        with self._lock:
            self.packet_size  # make sure the packet size is known before the data flows
            for attempt in range(self.retries + 1):
                self.transact(instruction, params)
                try:
                    return self._receive_data(expected_size, what)
                except (ChecksumError, ProtocolError, DeviceTimeout) as exc:
                    started = not isinstance(exc, DeviceTimeout) or exc.details.get("bytes_received", 0) > 0
                    if attempt == self.retries or not started:
                        raise
                    log.warning("fingerprint %s broken on the line (%s); requesting it again", what, exc.code)
            raise AssertionError("unreachable")  # the loop returns or raises

    def up_char(self, buffer: int = 1) -> bytes:
        """UpChar: the template in `buffer` (opaque, proprietary format), exactly the model's
        template size (`protocol.MODELS[...].template_size`: 512 bytes on ZFM/AS608, 1536 on R503)."""
        return self._upload(P.Instruction.UP_CHAR, bytes([_buffer(buffer)]), self.model.template_size, "UpChar")

    def down_char(self, data: bytes, buffer: int = 1) -> None:
        """DownChar: send a character file / template into `buffer`."""
        if not data:
            raise InputError("empty template")
        with self._lock:
            self.packet_size
            self.transact(P.Instruction.DOWN_CHAR, bytes([_buffer(buffer)]))
            self._send_data(bytes(data))

    def up_image(self) -> bytes:
        """UpImage: the image buffer as packed 4-bpp bytes, exactly width x height / 2 of them."""
        return self._upload(P.Instruction.UP_IMAGE, b"", self.model.image_bytes, "UpImage")

    def down_image(self, packed: bytes) -> None:
        """DownImage: load a packed 4-bpp image into the module's image buffer."""
        if len(packed) != self.model.image_bytes:
            raise InputError(f"an image for {self.model.name} is {self.model.image_bytes} packed bytes, got {len(packed)}")
        with self._lock:
            self.packet_size
            self.transact(P.Instruction.DOWN_IMAGE)
            self._send_data(bytes(packed))

    def read_image(self) -> np.ndarray:
        """UpImage, unpacked to (height, width) uint8 0..255."""
        return P.unpack_image(self.up_image(), self.model.image_width, self.model.image_height)


# Commands whose acknowledgement is followed by data packets from the module.
_TRANSFER_INSTRUCTIONS = frozenset({P.Instruction.UP_IMAGE, P.Instruction.UP_CHAR})


def _check_range(label: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{label} must be an integer in {low}..{high}, got {value!r}")


def _buffer(buffer: int) -> int:
    _check_range("character buffer", buffer, 1, 2)
    return buffer


def _page(page: int, model: P.ModuleModel) -> bytes:
    _check_range("library page", page, 0, 0xFFFF)
    return page.to_bytes(2, "big")


class ZfmScanner(FingerprintScanner):
    """The `zfm` fingerprint backend: a ZFM/R30x/AS608/R503 module on a serial port.

    Opening verifies the password and reads the system parameters (which fixes the data-packet
    size). `capture` polls GenImg until a finger is on the sensor, then uploads the image.
    """

    def __init__(
        self,
        port: str,
        baudrate: int = 57600,
        address: int = P.DEFAULT_ADDRESS,
        password: int = P.DEFAULT_PASSWORD,
        model: str = "zfm",
        timeout: float = 2.0,
        poll_interval: float = 0.1,
        wait_ready: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.module = ZfmModule(port, baudrate, address, password, model, timeout, wait_ready=wait_ready)
        self.poll_interval = poll_interval
        self._clock = clock
        try:
            self.module.verify_password()
            self.parameters = self.module.read_sys_para()
        except Exception:
            self.module.close()
            raise

    @property
    def image_shape(self) -> tuple[int, int]:
        return (self.module.model.image_height, self.module.model.image_width)

    def close(self) -> None:
        self.module.close()

    def finger_present(self) -> bool:
        try:
            self.module.gen_img()
        except NoFingerError:
            return False
        return True

    def capture(self, timeout: float = 10.0) -> np.ndarray:
        deadline = Deadline(timeout, clock=self._clock)
        while True:
            try:
                self.module.gen_img()
                break
            except NoFingerError as exc:
                if deadline.expired() or deadline.time_left() < self.poll_interval:  # no time for another poll
                    raise NoFingerError(
                        f"no finger on the sensor within {timeout} s",
                        confirmation=exc.confirmation,
                        name=exc.name,
                        model=exc.model,
                    ) from None
                time.sleep(self.poll_interval)
        image = self.module.read_image()
        if image.shape != self.image_shape:  # unpack_image already checks the size; keep the promise explicit
            raise ProtocolError(f"image of shape {image.shape}, expected {self.image_shape}")
        return image
