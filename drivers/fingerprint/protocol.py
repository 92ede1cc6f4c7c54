"""Wire format of the UART fingerprint modules (ZhianTec ZFM-20/60/70, R305/R307/R503, Synochip AS608).

This module is the single source of the wire format for biogate: the driver (`drivers.fingerprint.zfm`)
and the virtual module (`simulator.fingerprint`) both build and parse frames with it. It is pure: no I/O,
no clocks, no threads.

Frame (all multi-byte fields big-endian)::

    EF 01 | address (4) | packet id (1) | length (2) = len(payload) + 2 | payload | checksum (2)

    checksum = (packet id + both length bytes + every payload byte) & 0xFFFF

Packet ids: 01 command (host -> module), 02 data (more follows), 07 acknowledgement (module -> host),
08 end of data (last data packet). A command payload is ``instruction code | parameters``; an
acknowledgement payload is ``confirmation code | reply data``.

Contents
--------
- `PacketId`, `Packet` (address, pid, payload), `encode(packet)`, `checksum(...)`, `decode(frame)`;
  builders `command(...)`, `ack(...)`, `data_packets(...)`.
- `PacketReader`: incremental parser. Feed it arbitrary chunks; it returns events: `Packet`,
  `Garbage` (bytes that were not part of any frame), `BadChecksum` (a complete frame whose checksum
  failed), `BadLength` (a start code followed by an impossible length). Every byte fed ends up in
  exactly one event (or is still pending), so nothing is silently lost and resynchronisation after
  garbage is automatic (it scans for ``EF 01``).
- `Instruction`: every instruction code (ZFM/R30x/AS608 core, R503 extras, ZFM-70 handshake 0x53).
- `SysParam` numbers for SetSysPara; `SystemParameters` (ReadSysPara's 16 bytes) with pack/unpack.
- Packet-size codes (0..3 = 32/64/128/256 bytes) and baud N (baud = 9600 x N).
- `ModuleModel` / `MODELS`: per model (``zfm``, ``as608``, ``r503``) the confirmation-code table
  (code -> (name, message)), image size, library capacity and allowed baud N.
- Image helpers: `pack_image` / `unpack_image` / `unpack_nibbles` (4 bits per pixel, high nibble =
  left pixel of each pair).
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Iterable, Union

import numpy as np

from drivers.fingerprint.errors import ChecksumError, ProtocolError

# --------------------------------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------------------------------

START_CODE = b"\xef\x01"
DEFAULT_ADDRESS = 0xFFFFFFFF
DEFAULT_PASSWORD = 0x00000000
HEADER_SIZE = 9  # start code (2) + address (4) + packet id (1) + length (2)
CHECKSUM_SIZE = 2
MAX_PAYLOAD = 256  # the largest data packet (packet-size code 3); commands and acks are shorter
POWER_ON_BYTE = 0x55  # sent once by the module when it is ready (power-on, SoftRst)


class PacketId(enum.IntEnum):
    COMMAND = 0x01
    DATA = 0x02
    ACK = 0x07
    END_DATA = 0x08


def checksum(pid: int, payload: bytes) -> int:
    """The frame checksum: packet id + both length bytes + payload bytes, modulo 2**16."""
    length = len(payload) + 2
    return (pid + (length >> 8) + (length & 0xFF) + sum(payload)) & 0xFFFF


@dataclass(frozen=True)
class Packet:
    """One frame's meaning. `payload` excludes the checksum."""

    address: int
    pid: int
    payload: bytes = b""

    @property
    def is_data(self) -> bool:
        return self.pid in (PacketId.DATA, PacketId.END_DATA)

    @property
    def confirmation(self) -> int:
        """An acknowledgement's confirmation code (first payload byte)."""
        if self.pid != PacketId.ACK or not self.payload:
            raise ProtocolError(f"not an acknowledgement with a confirmation code: pid {self.pid:#04x}")
        return self.payload[0]

    @property
    def instruction(self) -> int:
        """A command's instruction code (first payload byte)."""
        if self.pid != PacketId.COMMAND or not self.payload:
            raise ProtocolError(f"not a command packet: pid {self.pid:#04x}")
        return self.payload[0]

    @property
    def body(self) -> bytes:
        """Payload after the instruction / confirmation byte (for command and ack packets)."""
        return self.payload[1:]


def encode(packet: Packet) -> bytes:
    """The exact bytes of `packet` on the wire."""
    if not 0 <= packet.address <= 0xFFFFFFFF:
        raise ValueError(f"address out of range: {packet.address}")
    if not 0 <= packet.pid <= 0xFF:
        raise ValueError(f"packet id out of range: {packet.pid}")
    length = len(packet.payload) + 2
    if length > 0xFFFF:
        raise ValueError("payload too long for a frame")
    return (
        START_CODE
        + struct.pack(">IBH", packet.address, packet.pid, length)
        + bytes(packet.payload)
        + struct.pack(">H", checksum(packet.pid, packet.payload))
    )


def command(instruction: int, params: bytes = b"", address: int = DEFAULT_ADDRESS) -> Packet:
    return Packet(address, PacketId.COMMAND, bytes([instruction]) + bytes(params))


def ack(confirmation: int, data: bytes = b"", address: int = DEFAULT_ADDRESS) -> Packet:
    return Packet(address, PacketId.ACK, bytes([confirmation]) + bytes(data))


def data_packets(data: bytes, packet_size: int, address: int = DEFAULT_ADDRESS) -> list[Packet]:
    """Split `data` into DATA packets of `packet_size` bytes, the last one marked END_DATA."""
    if packet_size <= 0:
        raise ValueError("packet_size must be positive")
    if not data:
        return [Packet(address, PacketId.END_DATA, b"")]
    chunks = [data[i : i + packet_size] for i in range(0, len(data), packet_size)]
    return [
        Packet(address, PacketId.END_DATA if i == len(chunks) - 1 else PacketId.DATA, bytes(chunk))
        for i, chunk in enumerate(chunks)
    ]


def _valid_pid(pid: int) -> bool:
    return pid in _PIDS


_PIDS = frozenset(int(p) for p in PacketId)


def _min_length(pid: int) -> int:
    # command and ack packets carry at least an instruction / confirmation byte
    return 2 if pid in (PacketId.DATA, PacketId.END_DATA) else 3


def decode(frame: bytes, max_payload: int = MAX_PAYLOAD) -> Packet:
    """Parse exactly one complete frame; raise ProtocolError / ChecksumError otherwise."""
    if len(frame) < HEADER_SIZE + CHECKSUM_SIZE or frame[:2] != START_CODE:
        raise ProtocolError("not a frame: missing start code or too short")
    address, pid, length = struct.unpack(">IBH", frame[2:HEADER_SIZE])
    if not _valid_pid(pid):
        raise ProtocolError(f"unknown packet id {pid:#04x}")
    if not _min_length(pid) <= length <= max_payload + 2:
        raise ProtocolError(f"invalid length field {length}")
    if len(frame) != HEADER_SIZE + length:
        raise ProtocolError(f"frame is {len(frame)} bytes, length field says {HEADER_SIZE + length}")
    payload = bytes(frame[HEADER_SIZE : HEADER_SIZE + length - 2])
    (received,) = struct.unpack(">H", frame[-2:])
    expected = checksum(pid, payload)
    if received != expected:
        raise ChecksumError(
            "frame checksum mismatch", details={"expected": expected, "received": received}
        )
    return Packet(address, pid, payload)


# --------------------------------------------------------------------------------------------------
# Incremental parser
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Garbage:
    """Bytes that belong to no frame (line noise, a power-on 0x55, the tail of a broken frame)."""

    data: bytes


@dataclass(frozen=True)
class BadChecksum:
    """A complete, well-formed frame whose checksum is wrong.

    `frame` is all of its bytes, or only those before a start code inside it where another frame
    may begin (which is then rescanned).
    """

    frame: bytes
    expected: int
    received: int


@dataclass(frozen=True)
class BadLength:
    """A start code and a known packet id followed by an impossible length field.

    Only the two start-code bytes are consumed (`data`); the rest is rescanned, so a real frame
    hidden behind them is still found.
    """

    data: bytes
    pid: int
    length: int
    max_length: int


Event = Union[Packet, Garbage, BadChecksum, BadLength]


@dataclass
class PacketReader:
    """Incremental frame parser: `feed(chunk)` returns the events completed by that chunk.

    Resynchronisation: anything before a plausible frame start (``EF 01`` + known packet id + valid
    length) is reported as `Garbage`. A frame that fails its checksum is reported as `BadChecksum`,
    unless a valid frame starts inside it, in which case only the bytes before that frame are
    reported. While waiting for the rest of a long frame, the reader also looks for a complete
    valid frame starting later in the buffer, so a fake header in garbage (``EF 01 07 01 00 ...``)
    cannot hide the real reply behind it.
    """

    max_payload: int = MAX_PAYLOAD
    _buf: bytearray = field(default_factory=bytearray, repr=False)

    @property
    def pending(self) -> int:
        """Bytes held back while waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[Event]:
        self._buf += chunk
        events: list[Event] = []
        while self._buf:
            event = self._next_event()
            if event is None:
                break
            events.append(event)
        return events

    def flush(self) -> list[Event]:
        """Give up on anything pending (end of stream): report it as garbage."""
        rest = bytes(self._buf)
        self._buf.clear()
        return [Garbage(rest)] if rest else []

    def reset(self) -> list[Event]:
        """Alias of flush, for callers that discard the line state between commands."""
        return self.flush()

    # -- internals ---------------------------------------------------------------------------------

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _garbage_until_start(self, start_from: int = 0) -> Garbage | None:
        """Consume up to the next start-code candidate at or after `start_from` as garbage."""
        buf = self._buf
        idx = buf.find(START_CODE, start_from)
        if idx < 0:
            # keep a trailing 0xEF: it may be the first half of a start code
            keep = 1 if buf[-1:] == START_CODE[:1] else 0
            idx = len(buf) - keep
        return Garbage(self._take(idx)) if idx > 0 else None

    def _frame_length_at(self, pos: int) -> int | None:
        """Total frame size if a complete frame with a valid checksum starts at `pos`."""
        buf = self._buf
        if buf[pos : pos + 2] != START_CODE or len(buf) < pos + HEADER_SIZE:
            return None
        pid = buf[pos + 6]
        length = (buf[pos + 7] << 8) | buf[pos + 8]
        if not _valid_pid(pid) or not _min_length(pid) <= length <= self.max_payload + 2:
            return None
        end = pos + HEADER_SIZE + length
        if len(buf) < end:
            return None
        payload = bytes(buf[pos + HEADER_SIZE : end - 2])
        if checksum(pid, payload) != ((buf[end - 2] << 8) | buf[end - 1]):
            return None
        return end - pos

    def _could_be_frame_at(self, pos: int) -> bool:
        """A start code at `pos` that is a valid frame, or may still become one as bytes arrive."""
        buf = self._buf
        if buf[pos : pos + 2] != START_CODE:
            return False
        if len(buf) < pos + HEADER_SIZE:
            return True
        pid = buf[pos + 6]
        length = (buf[pos + 7] << 8) | buf[pos + 8]
        if not _valid_pid(pid) or not _min_length(pid) <= length <= self.max_payload + 2:
            return False
        return len(buf) < pos + HEADER_SIZE + length or self._frame_length_at(pos) is not None

    def _later_valid_frame(self, start: int, stop: int) -> int | None:
        """Position of the first complete valid frame starting in (start, stop)."""
        pos = self._buf.find(START_CODE, start + 1, stop + 1)
        while 0 <= pos < stop:
            if self._frame_length_at(pos) is not None:
                return pos
            pos = self._buf.find(START_CODE, pos + 1, stop + 1)
        return None

    def _next_event(self) -> Event | None:
        buf = self._buf
        if buf[:2] != START_CODE:
            return self._garbage_until_start()
        if len(buf) < HEADER_SIZE:
            return None  # wait for the header
        pid = buf[6]
        length = (buf[7] << 8) | buf[8]
        if not _valid_pid(pid):
            # not a frame start after all: skip the EF and rescan
            return self._garbage_until_start(1) or Garbage(self._take(1))
        max_length = self.max_payload + 2
        if not _min_length(pid) <= length <= max_length:
            return BadLength(self._take(2), pid, length, max_length)
        total = HEADER_SIZE + length
        if len(buf) < total:
            later = self._later_valid_frame(0, len(buf))
            if later is not None:
                return Garbage(self._take(later))
            return None  # wait for the rest of the frame
        payload = bytes(buf[HEADER_SIZE : total - 2])
        received = (buf[total - 2] << 8) | buf[total - 1]
        expected = checksum(pid, payload)
        if received == expected:
            address = struct.unpack(">I", bytes(buf[2:6]))[0]
            self._take(total)
            return Packet(address, pid, payload)
        later = self._later_valid_frame(0, total)
        if later is not None:
            return Garbage(self._take(later))
        # A frame may begin inside the broken one (its tail may not have arrived yet): give back
        # everything from there on for rescanning. The start code may straddle the broken frame's
        # end (its last byte 0xEF, the 0x01 in the next byte), or that last 0xEF may be all that
        # has arrived so far: it is kept either way.
        end = total
        pos = buf.find(START_CODE, 1, total + 1)
        while 0 < pos < total:
            if self._could_be_frame_at(pos):
                end = pos
                break
            pos = buf.find(START_CODE, pos + 1, total + 1)
        if end == total and len(buf) == total and buf[total - 1] == START_CODE[0]:
            end = total - 1
        return BadChecksum(self._take(end), expected, received)


def parse_packets(data: bytes, max_payload: int = MAX_PAYLOAD) -> list[Packet]:
    """All valid packets found in `data` (garbage and broken frames are dropped)."""
    reader = PacketReader(max_payload=max_payload)
    return [e for e in reader.feed(data) + reader.flush() if isinstance(e, Packet)]


# --------------------------------------------------------------------------------------------------
# Instructions and system parameters
# --------------------------------------------------------------------------------------------------


class Instruction(enum.IntEnum):
    GEN_IMG = 0x01  # capture a finger image into the image buffer
    IMG2TZ = 0x02  # GenChar: image buffer -> character file in buffer 1 or 2
    MATCH = 0x03  # compare char buffers 1 and 2 -> score(2)
    SEARCH = 0x04  # buffer, start page(2), count(2) -> page(2), score(2)
    REG_MODEL = 0x05  # combine char buffers 1 and 2 into a template
    STORE = 0x06  # buffer, page(2)
    LOAD_CHAR = 0x07  # buffer, page(2)
    UP_CHAR = 0x08  # buffer -> ack, then data packets (module -> host)
    DOWN_CHAR = 0x09  # buffer -> ack, then data packets (host -> module)
    UP_IMAGE = 0x0A  # -> ack, then the image as data packets
    DOWN_IMAGE = 0x0B  # -> ack, then the host sends the image
    DELETE_CHAR = 0x0C  # page(2), count(2)
    EMPTY = 0x0D  # delete the whole library
    SET_SYS_PARA = 0x0E  # parameter number (SysParam), value
    READ_SYS_PARA = 0x0F  # -> 16 bytes (SystemParameters)
    SET_PWD = 0x12  # password(4)
    VFY_PWD = 0x13  # password(4)
    GET_RANDOM_CODE = 0x14  # -> 4 bytes
    SET_ADDR = 0x15  # address(4); the reply already comes from the new address
    WRITE_NOTEPAD = 0x18  # page(1), 32 bytes
    READ_NOTEPAD = 0x19  # page(1) -> 32 bytes
    HI_SPEED_SEARCH = 0x1B  # as SEARCH
    TEMPLATE_NUM = 0x1D  # -> count(2)
    READ_INDEX_TABLE = 0x1F  # page 0-3 -> 32-byte bitmap (bit k of byte i = template 8i+k)
    # R503 extras
    GET_IMAGE_EX = 0x28
    AUTO_ENROLL = 0x31
    AUTO_IDENTIFY = 0x32
    AURA_LED_CONFIG = 0x35  # control, speed, colour index, times
    CHECK_SENSOR = 0x36
    GET_FIRMWARE_VERSION = 0x3A  # -> 32 bytes
    SOFT_RESET = 0x3D  # ack, then the module sends 0x55 when ready again
    HANDSHAKE = 0x40
    # ZFM-70
    ZFM_HANDSHAKE = 0x53  # -> confirmation 0x55


def instruction_name(instruction: int) -> str:
    """"GEN_IMG" for 0x01; an instruction no model has is named by its code ("0x7E")."""
    try:
        return Instruction(instruction).name
    except ValueError:
        return f"0x{instruction:02X}"


class SysParam(enum.IntEnum):
    """Parameter numbers of SetSysPara."""

    BAUD = 4  # value: N, baud = 9600 x N
    SECURITY_LEVEL = 5  # value: 1..5
    PACKET_SIZE = 6  # value: packet-size code 0..3


class CharBuffer(enum.IntEnum):
    ONE = 1
    TWO = 2


PACKET_SIZES: dict[int, int] = {0: 32, 1: 64, 2: 128, 3: 256}
BAUD_UNIT = 9600


def packet_size_from_code(code: int) -> int:
    try:
        return PACKET_SIZES[code]
    except KeyError:
        raise ProtocolError(f"invalid packet-size code {code}") from None


def packet_size_code(size: int) -> int:
    for code, value in PACKET_SIZES.items():
        if value == size:
            return code
    raise ValueError(f"unsupported data packet size {size} (use 32, 64, 128 or 256)")


def baudrate_from_n(n: int) -> int:
    return BAUD_UNIT * n


def baud_n_from_rate(baudrate: int) -> int:
    if baudrate % BAUD_UNIT or not 1 <= baudrate // BAUD_UNIT <= 12:
        raise ValueError(f"baud rate must be 9600 x N with N in 1..12, got {baudrate}")
    return baudrate // BAUD_UNIT


@dataclass(frozen=True)
class SystemParameters:
    """ReadSysPara's 16-byte reply (after the confirmation code)."""

    status_register: int = 0
    system_id: int = 0x0009
    library_size: int = 1000
    security_level: int = 3
    device_address: int = DEFAULT_ADDRESS
    packet_size_code: int = 2  # 128 bytes
    baud_n: int = 6  # 57600

    FORMAT = ">HHHHIHH"
    SIZE = 16

    def pack(self) -> bytes:
        return struct.pack(
            self.FORMAT,
            self.status_register,
            self.system_id,
            self.library_size,
            self.security_level,
            self.device_address,
            self.packet_size_code,
            self.baud_n,
        )

    @classmethod
    def unpack(cls, data: bytes) -> "SystemParameters":
        if len(data) < cls.SIZE:
            raise ProtocolError(f"system parameters need {cls.SIZE} bytes, got {len(data)}")
        return cls(*struct.unpack(cls.FORMAT, bytes(data[: cls.SIZE])))

    @property
    def packet_size(self) -> int:
        return packet_size_from_code(self.packet_size_code)

    @property
    def baudrate(self) -> int:
        return baudrate_from_n(self.baud_n)

    # status register bits
    @property
    def busy(self) -> bool:
        return bool(self.status_register & 0x1)

    @property
    def matched(self) -> bool:
        return bool(self.status_register & 0x2)

    @property
    def password_verified(self) -> bool:
        return bool(self.status_register & 0x4)

    @property
    def image_buffer_valid(self) -> bool:
        return bool(self.status_register & 0x8)


NOTEPAD_PAGE_SIZE = 32
NOTEPAD_PAGES = 16
INDEX_TABLE_PAGES = 4
INDEX_TABLE_PAGE_BYTES = 32
TEMPLATES_PER_INDEX_PAGE = INDEX_TABLE_PAGE_BYTES * 8


def index_table_to_pages(bitmap: bytes, table_page: int = 0) -> list[int]:
    """Template page numbers set in one ReadIndexTable bitmap (bit k of byte i = 8i + k)."""
    base = table_page * TEMPLATES_PER_INDEX_PAGE
    return [base + 8 * i + k for i, byte in enumerate(bitmap) for k in range(8) if byte >> k & 1]


def pages_to_index_table(pages: Iterable[int], table_page: int = 0) -> bytes:
    out = bytearray(INDEX_TABLE_PAGE_BYTES)
    base = table_page * TEMPLATES_PER_INDEX_PAGE
    for page in pages:
        rel = page - base
        if 0 <= rel < TEMPLATES_PER_INDEX_PAGE:
            out[rel // 8] |= 1 << (rel % 8)
    return bytes(out)


# --------------------------------------------------------------------------------------------------
# Confirmation codes and module models
# --------------------------------------------------------------------------------------------------

ConfirmationTable = dict[int, tuple[str, str]]

OK = 0x00
HANDSHAKE_OK = 0x55  # ZFM-70 handshake reply

_ZFM_CODES: ConfirmationTable = {
    0x00: ("ok", "command executed"),
    0x01: ("packet_receive_error", "error receiving the data packet"),
    0x02: ("no_finger", "no finger on the sensor"),
    0x03: ("enroll_failed", "failed to capture the finger image"),
    0x06: ("image_messy", "image too messy to generate a character file"),
    0x07: ("too_few_features", "too few feature points to generate a character file"),
    0x08: ("no_match", "fingers do not match"),
    0x09: ("not_found", "no matching finger in the library"),
    0x0A: ("combine_failed", "failed to combine the character files"),
    0x0B: ("page_out_of_range", "page id is outside the finger library"),
    0x0C: ("template_invalid", "error reading the template, or the template is invalid"),
    0x0D: ("template_upload_error", "error uploading the template"),
    0x0E: ("cannot_receive_data", "module cannot receive the following data packets"),
    0x0F: ("image_upload_error", "error uploading the image"),
    0x10: ("delete_failed", "failed to delete the template"),
    0x11: ("clear_failed", "failed to clear the finger library"),
    0x13: ("wrong_password", "wrong password"),
    0x15: ("no_valid_image", "no valid primary image in the buffer"),
    0x18: ("flash_write_error", "error writing flash"),
    0x1A: ("invalid_register", "invalid register number"),
    0x1F: ("library_full", "finger library is full"),
    0x20: ("wrong_address", "wrong address"),
    0x21: ("password_required", "the password must be verified first"),
}

_R503_CODES: ConfirmationTable = {
    **_ZFM_CODES,
    0x22: ("template_empty", "fingerprint template is empty"),
    0x24: ("library_empty", "fingerprint library is empty"),
    0x26: ("timeout", "operation timed out"),
    0x27: ("already_exists", "fingerprint already exists"),
    0x29: ("sensor_error", "sensor hardware error"),
    0xFC: ("unsupported_command", "unsupported command"),
    0xFD: ("hardware_error", "hardware error"),
    0xFE: ("execution_failed", "command execution failed"),
}

_AS608_CODES: ConfirmationTable = {
    **{k: v for k, v in _ZFM_CODES.items() if k not in (0x13, 0x20, 0x21)},
    0x04: ("too_dry", "image too dry or too light"),
    0x05: ("too_wet", "image too wet or too dark"),
    0x12: ("low_power_error", "failed to enter low-power mode"),
    # AS608 uses 0x13 for "command invalid"; VfyPwd also answers 0x13 for a wrong password.
    0x13: ("command_invalid", "command invalid (or wrong password)"),
    0x14: ("reset_error", "reset failed"),
    0x16: ("update_error", "update failed"),
    0x17: ("finger_not_moved", "residual finger: the finger was not lifted between captures"),
    0x19: ("undefined_error", "undefined error"),
    0x1B: ("invalid_register_config", "invalid register configuration"),
    0x1C: ("invalid_notepad_page", "invalid notepad page"),
    0x1D: ("port_error", "failed to operate the communication port"),
    0x1E: ("enroll_error", "automatic enrollment failed"),
    0x20: ("wrong_address", "wrong address"),
    0x21: ("password_required", "the password must be verified first"),
}


@dataclass(frozen=True)
class ModuleModel:
    name: str
    confirmation_codes: ConfirmationTable
    image_width: int
    image_height: int
    library_capacity: int
    baud_ns: frozenset[int]
    template_size: int  # bytes returned by UpChar for a template

    @property
    def image_bytes(self) -> int:
        """UpImage payload size: 4 bits per pixel."""
        return self.image_width * self.image_height // 2

    def describe(self, code: int) -> tuple[str, str]:
        """(name, message) of a confirmation code; unknown codes get a generic entry."""
        return self.confirmation_codes.get(code, (f"unknown_{code:02x}", f"unknown confirmation code {code:#04x}"))


MODELS: dict[str, ModuleModel] = {
    "zfm": ModuleModel("zfm", _ZFM_CODES, 256, 288, 1000, frozenset(range(1, 13)), 512),
    "as608": ModuleModel("as608", _AS608_CODES, 256, 288, 300, frozenset(range(1, 13)), 512),
    # The R503 manual gives 512-byte character files and 1536-byte templates.
    "r503": ModuleModel("r503", _R503_CODES, 192, 192, 200, frozenset({1, 2, 4, 6, 12}), 1536),
}
MODEL_ALIASES = {"r305": "zfm", "r307": "zfm", "r30x": "zfm", "zfm20": "zfm", "zfm60": "zfm", "zfm70": "zfm"}


def get_model(name: str) -> ModuleModel:
    key = MODEL_ALIASES.get(name.lower(), name.lower())
    try:
        return MODELS[key]
    except KeyError:
        raise ValueError(f"unknown module model {name!r} (known: {', '.join(sorted(MODELS))})") from None


def describe_confirmation(code: int, model: str = "zfm") -> tuple[str, str]:
    return get_model(model).describe(code)


# --------------------------------------------------------------------------------------------------
# Images: 4 bits per pixel, high nibble = left pixel of each pair
# --------------------------------------------------------------------------------------------------


def unpack_nibbles(data: bytes, width: int, height: int) -> np.ndarray:
    """Packed 4-bpp bytes -> (height, width) uint8 array of 0..15. Size must be exact."""
    if width % 2:
        raise ValueError("width must be even for 4-bpp packing")
    expected = width * height // 2
    if len(data) != expected:
        raise ProtocolError(f"image needs {expected} bytes, got {len(data)}")
    raw = np.frombuffer(bytes(data), dtype=np.uint8)
    out = np.empty(raw.size * 2, dtype=np.uint8)
    out[0::2] = raw >> 4
    out[1::2] = raw & 0x0F
    return out.reshape(height, width)


def unpack_image(data: bytes, width: int, height: int) -> np.ndarray:
    """Packed 4-bpp bytes -> (height, width) uint8 greyscale 0..255 (each level x 17)."""
    return unpack_nibbles(data, width, height) * np.uint8(17)


def quantize_to_nibbles(image: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> nearest 4-bit level 0..15 (level x 17 is the closest 8-bit value)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {img.dtype}")
    return ((img.astype(np.uint16) + 8) // 17).astype(np.uint8)


def pack_nibbles(levels: np.ndarray) -> bytes:
    """(height, width) array of 0..15 -> packed bytes (high nibble = left pixel)."""
    arr = np.asarray(levels)
    if arr.ndim != 2 or arr.shape[1] % 2:
        raise ValueError("levels must be a 2-D array with an even width")
    if arr.size and int(arr.max()) > 15:
        raise ValueError("levels must be 0..15")
    flat = arr.astype(np.uint8).reshape(-1)
    return ((flat[0::2] << 4) | flat[1::2]).astype(np.uint8).tobytes()


def pack_image(image: np.ndarray) -> bytes:
    """(height, width) uint8 greyscale -> packed 4-bpp bytes as UpImage sends them."""
    return pack_nibbles(quantize_to_nibbles(image))
