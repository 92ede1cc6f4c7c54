"""The inside of a virtual ZFM/R30x, AS608 or R503 module: packets in, frames out, no I/O.

    device = FingerprintDevice("zfm", source="none")
    device.power_on()
    device.tick()                                         # b"\\x55": booted, the ready byte
    reply = device.receive(P.command(I.VFY_PWD, bytes(4)))
    reply.frames                                          # [b"\\xef\\x01...\\x0a"]: the acknowledgement
    reply.after                                           # what happens once it went out (or None)

It answers as the notes (shared/notes/fingerprint-sensor.md) describe, with the frames of
`drivers.fingerprint.protocol`:

- Power: `power_on()` clears RAM (image buffer, character buffers, verified password); once
  `boot_time` has passed `tick()` returns the ready byte 0x55 and commands are heard. SoftRst does the
  same after its acknowledgement (`RESET_DELAY` later).
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

Effects that real modules apply only once the acknowledgement has left (a new baud rate, the start of
a download, a soft reset) come back as `Reply.after`, for whoever sends the frames to run afterwards.
The device is not thread-safe: its owner serialises calls (the virtual module holds its lock).
"""
from __future__ import annotations

import collections
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from drivers.deadline import Deadline
from drivers.fingerprint import protocol as P
from drivers.fingerprint.protocol import Instruction as I
from edge.errors import InputError
from simulator.fingerprint import features
from simulator.fingerprint.flash import Flash, Settings
from simulator.fingerprint.images import (
    SENSOR_DPI,
    ImageSource,
    finger_source,
    levels_to_grey,
    make_image_source,
    sensor_levels,
)
from simulator.fingerprint.profiles import PASSWORD_EXEMPT, REPLY_DATA_LENGTH, Profile, get_profile

log = logging.getLogger(__name__)

# Confirmation codes the device answers with (the manuals' names).
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


@dataclass
class Reply:
    """What the device sends back: whole frames, and what it does once they went out."""

    frames: list[bytes]
    after: Callable[[], None] | None = None


class _BadParameters(Exception):
    """A command's parameters are too short or out of range: answered with the given code."""

    def __init__(self, code: int = PACKET_RECEIVE_ERROR):
        super().__init__(code)
        self.code = code


@dataclass
class _Answer:
    """A command handler's result, before it is framed."""

    code: int
    data: bytes = b""  # after the confirmation code
    upload: bytes | None = None  # sent as data packets after an OK acknowledgement
    address: int | None = None  # reply address when it is not the module's (SetAddr answers from the new one)
    after: Callable[[], None] | None = None  # runs after the reply went out (baud switch, soft reset, download)


@dataclass
class _Download:
    """Data packets the host is sending after DownChar / DownImage."""

    target: str  # "char" or "image"
    buffer: int
    expected: int  # exact size for images, maximum for templates
    packet_size: int
    pause: Deadline  # the host's pause allowed before the next data packet
    data: bytearray = field(default_factory=bytearray)
    ok: bool = True


class FingerprintDevice:
    """One emulated module (see the module docstring): command set, RAM, flash and sensor."""

    #: seconds the host may pause between the data packets of a DownChar / DownImage
    DOWNLOAD_TIMEOUT = 2.0
    #: seconds between SoftRst's acknowledgement and the start of its boot
    RESET_DELAY = 0.05

    def __init__(
        self,
        profile: str = "zfm",
        source: Any = "default",
        *,
        library_path: str | Path | None = None,
        seed: int = 0,
        password: int | None = None,
        address: int | None = None,
        baudrate: int | None = None,
        packet_size: int | None = None,
        security_level: int | None = None,
        source_dpi: float = SENSOR_DPI,
        boot_time: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.profile: Profile = get_profile(profile)
        self.model = self.profile.model
        self.seed = seed
        self.source: ImageSource = make_image_source(source, seed=seed)
        self.source_dpi = source_dpi
        self.boot_time = max(0.0, float(boot_time))
        self._clock = clock
        self.flash = Flash(library_path, model=self.model.name, capacity=self.model.library_capacity,
                           template_size=self.model.template_size)
        self._apply_initial_settings(password, address, baudrate, packet_size, security_level)
        self._rng = random.Random(seed)
        self._placed: ImageSource | None = None
        self._powered = False
        self._boot: Deadline | None = None  # running while the module boots; the ready byte follows
        self.commands: collections.deque[str] = collections.deque(maxlen=1000)
        self.captures: collections.deque[str] = collections.deque(maxlen=1000)
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
    def templates(self) -> list[int]:
        """Library pages in use."""
        return self.flash.pages()

    # -- power -----------------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Powered and booted: commands are heard and answered."""
        return self._powered and self._boot is None

    def power_on(self, boot_time: float | None = None) -> None:
        """Power-on state: RAM cleared; ready once `boot_time` s (default: the device's own) have passed."""
        self._powered = True
        self._reset_ram()
        self._boot = Deadline(self.boot_time if boot_time is None else boot_time, clock=self._clock)

    def power_off(self) -> None:
        """No power: nothing is heard, a download in progress is lost, no ready byte is due."""
        self._powered = False
        self._boot = None
        self._download = None

    def tick(self) -> bytes:
        """What the module sends unprompted now: the ready byte 0x55 once booted, else nothing.
        Also drops a download whose host has paused too long."""
        if self._download is not None and self._download.pause.expired():
            log.info("virtual fingerprint module: the host stopped sending data; download dropped")
            self._download = None
        if self._powered and self._boot is not None and self._boot.expired():
            self._boot = None
            return bytes([P.POWER_ON_BYTE])
        return b""

    def _reset_ram(self) -> None:
        """Power-on state of RAM: empty buffers, password verified only if it is the default."""
        self._image: np.ndarray | None = None  # 4-bit levels, (height, width)
        self._char: dict[int, bytes] = {1: bytes(self.model.template_size), 2: bytes(self.model.template_size)}
        self._verified = self.flash.settings.password == P.DEFAULT_PASSWORD
        self._matched = False
        self._download: _Download | None = None
        self.led: tuple[int, int, int, int] | None = None

    # -- the sensor ------------------------------------------------------------------------------------

    def place(self, finger: Any, *, source_dpi: float | None = None) -> None:
        """Put a finger on the sensor until `lift()` (see `images.finger_source` for what it may be)."""
        self._placed = finger_source(finger, source_dpi=source_dpi, seed=self.seed)

    def lift(self) -> None:
        """Take the placed finger off; captures go back to the image source."""
        self._placed = None

    def set_source(self, source: Any) -> None:
        """Change what the sensor sees when no finger is placed."""
        self.source = make_image_source(source, seed=self.seed)

    # -- the wire --------------------------------------------------------------------------------------

    def receive(self, event: P.Event) -> Reply | None:
        """One parsed event from the line; the reply to send, if any."""
        if not self.ready:
            return None  # unpowered, or still booting: nobody hears it
        if isinstance(event, P.Packet):
            if event.is_data:
                self._on_data(event)
            elif event.pid == P.PacketId.COMMAND:
                return self.command(event)
            return None
        if isinstance(event, P.BadChecksum):
            if self._download is not None:
                self._download.ok = False  # a data packet was damaged: the download is void
                return None
            if len(event.frame) > 6 and event.frame[6] == P.PacketId.COMMAND:
                return Reply([self._ack(PACKET_RECEIVE_ERROR)])
        return None  # garbage and impossible lengths: real modules ignore what they cannot frame

    def addressed(self, packet: P.Packet) -> bool:
        """The packet is for this module (others are answered 0x20 and nothing else)."""
        return packet.address == self.address

    def frame_count(self, instruction: int) -> int:
        """How many frames an OK reply to `instruction` has (1 acknowledgement + data packets)."""
        if instruction == I.UP_IMAGE:
            return 1 + math.ceil(self.model.image_bytes / self.packet_size)
        if instruction == I.UP_CHAR:
            return 1 + math.ceil(self.model.template_size / self.packet_size)
        return 1

    def command(self, packet: P.Packet, *, answer: int | None = None) -> Reply:
        """Run a command packet, or, with `answer`, only answer it with that confirmation code (the
        command does nothing; its usual reply length is kept)."""
        instruction = packet.instruction
        self._download = None  # a new command ends any download in progress
        self.commands.append(P.instruction_name(instruction))
        if not self.addressed(packet):
            result = _Answer(WRONG_ADDRESS)
        elif answer is not None:
            result = _Answer(answer)
        else:
            result = self._execute(instruction, packet.body)
        return Reply(self._frames(instruction, result), result.after)

    def _ack(self, code: int, data: bytes = b"", address: int | None = None) -> bytes:
        return P.encode(P.ack(code, data, self.address if address is None else address))

    def _frames(self, instruction: int, result: _Answer) -> list[bytes]:
        length = REPLY_DATA_LENGTH.get(instruction, 0) if instruction in self.profile.instructions else 0
        data = result.data if result.code == OK or result.data else b""
        data = data.ljust(length, b"\0")
        address = self.address if result.address is None else result.address
        frames = [self._ack(result.code, data, address)]
        if result.code == OK and result.upload is not None:
            frames += [P.encode(p) for p in P.data_packets(result.upload, self.packet_size, address)]
        return frames

    def _on_data(self, packet: P.Packet) -> None:
        dl = self._download
        if dl is None:
            return
        dl.pause.restart()
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

    # -- commands --------------------------------------------------------------------------------------

    def _execute(self, instruction: int, body: bytes) -> _Answer:
        if instruction not in self.profile.instructions:
            return _Answer(self.profile.unknown_instruction_code)
        if not self._verified and instruction not in PASSWORD_EXEMPT:
            return _Answer(PASSWORD_REQUIRED)
        handler = self._HANDLERS[instruction]
        try:
            return handler(self, body)
        except _BadParameters as bad:
            return _Answer(bad.code)

    def _gen_img(self, body: bytes) -> _Answer:
        source = self._placed or self.source
        presentation = source.capture()
        if presentation is None:
            return _Answer(NO_FINGER)
        dpi = presentation.source_dpi if presentation.source_dpi else self.source_dpi
        self._image = sensor_levels(presentation.image, self.model.image_width, self.model.image_height, dpi)
        self.captures.append(presentation.label)
        return _Answer(OK)

    def _img2tz(self, body: bytes) -> _Answer:
        buffer = _buffer(body)
        if self._image is None:
            return _Answer(NO_VALID_IMAGE)
        try:
            record = features.extract(levels_to_grey(self._image))
        except features.FeatureError as exc:
            return _Answer(IMAGE_MESSY if exc.reason == "image_messy" else TOO_FEW_FEATURES)
        self._char[buffer] = record.ljust(self.model.template_size, b"\0")
        return _Answer(OK)

    def _threshold(self) -> int:
        return features.MATCH_THRESHOLDS[self.flash.settings.security_level]

    def _match(self, body: bytes) -> _Answer:
        score = features.score(self._char[1], self._char[2])
        self._matched = score >= self._threshold()
        return _Answer(OK if self._matched else NO_MATCH, score.to_bytes(2, "big"))

    def _search(self, body: bytes) -> _Answer:
        _need(body, 5)
        buffer = _buffer(body[:1])
        start = int.from_bytes(body[1:3], "big")
        count = int.from_bytes(body[3:5], "big")
        if start >= self.model.library_capacity:
            return _Answer(PAGE_OUT_OF_RANGE)
        probe = self._char[buffer]
        best_page, best_score = None, -1
        for page in self.flash.pages():
            if start <= page < start + count:
                score = features.score(probe, self.flash.load(page) or b"")
                if score > best_score:
                    best_page, best_score = page, score
        self._matched = best_page is not None and best_score >= self._threshold()
        if not self._matched:
            return _Answer(NOT_FOUND)
        return _Answer(OK, best_page.to_bytes(2, "big") + best_score.to_bytes(2, "big"))  # type: ignore[union-attr]

    def _reg_model(self, body: bytes) -> _Answer:
        if features.score(self._char[1], self._char[2]) < self._threshold():
            return _Answer(COMBINE_FAILED)
        template = features.combine(self._char[1], self._char[2], self.model.template_size)
        self._char[1] = self._char[2] = template
        return _Answer(OK)

    def _page(self, raw: bytes) -> int:
        page = int.from_bytes(raw, "big")
        if page >= self.model.library_capacity:
            raise _BadParameters(PAGE_OUT_OF_RANGE)
        return page

    def _store(self, body: bytes) -> _Answer:
        _need(body, 3)
        buffer = _buffer(body[:1])
        page = self._page(body[1:3])
        self.flash.store(page, self._char[buffer])
        return _Answer(OK)

    def _load_char(self, body: bytes) -> _Answer:
        _need(body, 3)
        buffer = _buffer(body[:1])
        template = self.flash.load(self._page(body[1:3]))
        if template is None:
            return _Answer(TEMPLATE_INVALID)
        self._char[buffer] = template
        return _Answer(OK)

    def _up_char(self, body: bytes) -> _Answer:
        return _Answer(OK, upload=self._char[_buffer(body)])

    def _start_download(self, target: str, buffer: int, expected: int) -> Callable[[], None]:
        def begin() -> None:
            self._download = _Download(target, buffer, expected, self.packet_size,
                                       Deadline(self.DOWNLOAD_TIMEOUT, clock=self._clock))

        return begin

    def _down_char(self, body: bytes) -> _Answer:
        return _Answer(OK, after=self._start_download("char", _buffer(body), self.model.template_size))

    def _up_image(self, body: bytes) -> _Answer:
        if self._image is None:
            return _Answer(IMAGE_UPLOAD_ERROR)
        return _Answer(OK, upload=P.pack_nibbles(self._image))

    def _down_image(self, body: bytes) -> _Answer:
        return _Answer(OK, after=self._start_download("image", 0, self.model.image_bytes))

    def _delete_char(self, body: bytes) -> _Answer:
        _need(body, 4)
        start = self._page(body[0:2])
        count = int.from_bytes(body[2:4], "big")
        if count < 1 or start + count > self.model.library_capacity:
            return _Answer(DELETE_FAILED)
        self.flash.delete(start, count)
        return _Answer(OK)

    def _empty(self, body: bytes) -> _Answer:
        self.flash.empty()
        return _Answer(OK)

    def _set_sys_para(self, body: bytes) -> _Answer:
        _need(body, 2)
        parameter, value = body[0], body[1]
        if parameter == P.SysParam.BAUD:
            if value not in self.model.baud_ns:
                return _Answer(INVALID_REGISTER)
            # acknowledged at the old speed, then the module switches
            return _Answer(OK, after=lambda: self.flash.update_settings(baud_n=value))
        if parameter == P.SysParam.SECURITY_LEVEL and 1 <= value <= 5:
            self.flash.update_settings(security_level=value)
            return _Answer(OK)
        if parameter == P.SysParam.PACKET_SIZE and value in P.PACKET_SIZES:
            self.flash.update_settings(packet_size_code=value)
            return _Answer(OK)
        return _Answer(INVALID_REGISTER)

    def _status_register(self) -> int:
        return (0x2 if self._matched else 0) | (0x4 if self._verified else 0) | (0x8 if self._image is not None else 0)

    def _read_sys_para(self, body: bytes) -> _Answer:
        s = self.flash.settings
        params = P.SystemParameters(self._status_register(), self.profile.system_id, self.model.library_capacity,
                                    s.security_level, s.address, s.packet_size_code, s.baud_n)
        return _Answer(OK, params.pack())

    def _set_pwd(self, body: bytes) -> _Answer:
        _need(body, 4)
        self.flash.update_settings(password=int.from_bytes(body[:4], "big"))
        return _Answer(OK)

    def _vfy_pwd(self, body: bytes) -> _Answer:
        _need(body, 4)
        self._verified = int.from_bytes(body[:4], "big") == self.flash.settings.password
        return _Answer(OK if self._verified else WRONG_PASSWORD)

    def _get_random_code(self, body: bytes) -> _Answer:
        return _Answer(OK, self._rng.getrandbits(32).to_bytes(4, "big"))

    def _set_addr(self, body: bytes) -> _Answer:
        _need(body, 4)
        new = int.from_bytes(body[:4], "big")
        self.flash.update_settings(address=new)
        return _Answer(OK, address=new)

    def _write_notepad(self, body: bytes) -> _Answer:
        _need(body, 1 + P.NOTEPAD_PAGE_SIZE)
        if body[0] >= P.NOTEPAD_PAGES:
            return _Answer(self.profile.invalid_notepad_code)
        self.flash.write_notepad(body[0], body[1 : 1 + P.NOTEPAD_PAGE_SIZE])
        return _Answer(OK)

    def _read_notepad(self, body: bytes) -> _Answer:
        _need(body, 1)
        if body[0] >= P.NOTEPAD_PAGES:
            return _Answer(self.profile.invalid_notepad_code)
        return _Answer(OK, self.flash.read_notepad(body[0]))

    def _template_num(self, body: bytes) -> _Answer:
        return _Answer(OK, len(self.flash.pages()).to_bytes(2, "big"))

    def _read_index_table(self, body: bytes) -> _Answer:
        _need(body, 1)
        if body[0] >= P.INDEX_TABLE_PAGES:
            return _Answer(PAGE_OUT_OF_RANGE)
        return _Answer(OK, P.pages_to_index_table(self.flash.pages(), body[0]))

    def _aura_led_config(self, body: bytes) -> _Answer:
        _need(body, 4)
        self.led = (body[0], body[1], body[2], body[3])
        return _Answer(OK)

    def _check_sensor(self, body: bytes) -> _Answer:
        return _Answer(OK)

    def _firmware_version(self, body: bytes) -> _Answer:
        return _Answer(OK, self.profile.firmware.encode("ascii")[:32].ljust(32, b"\0"))

    def _soft_reset(self, body: bytes) -> _Answer:
        return _Answer(OK, after=lambda: self.power_on(self.RESET_DELAY + self.boot_time))

    def _handshake(self, body: bytes) -> _Answer:
        return _Answer(OK)

    def _zfm_handshake(self, body: bytes) -> _Answer:
        return _Answer(P.HANDSHAKE_OK)

    _HANDLERS: dict[int, Callable[["FingerprintDevice", bytes], _Answer]] = {
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
