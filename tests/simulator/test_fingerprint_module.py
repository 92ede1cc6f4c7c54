"""The virtual fingerprint module byte for byte: raw frames over a real pseudo-terminal, no driver."""
from __future__ import annotations

import json
import os
import select
import time
import tomllib

import numpy as np
import pytest
import serial

from drivers.fingerprint import protocol as P
from edge.errors import InputError
from simulator.fingerprint import Fault, RandomFaults, VirtualModule, images, parse_faults, start_module
from simulator.fingerprint.faults import FaultPlan, instruction_code
from tests.conftest import data_dir

pytestmark = pytest.mark.timeout(60)
I = P.Instruction


class Raw:
    """A bare serial client: sends commands, returns exactly what came back."""

    def __init__(self, port: str, baudrate: int = 57600):
        self.serial = serial.Serial(port, baudrate, timeout=0.02)

    def send(self, instruction: int, params: bytes = b"", address: int = P.DEFAULT_ADDRESS) -> None:
        self.serial.write(P.encode(P.command(instruction, params, address)))

    def send_packet(self, packet: P.Packet) -> None:
        self.serial.write(P.encode(packet))

    def read_until_quiet(self, quiet: float = 0.1, first: float = 3.0, limit: float = 10.0) -> bytes:
        """Wait up to `first` s for a reply to begin, then read until the line is quiet for `quiet` s."""
        out = bytearray()
        start = time.monotonic()
        last = None
        while time.monotonic() - start < limit:
            chunk = self.serial.read(65536)
            now = time.monotonic()
            if chunk:
                out += chunk
                last = now
            elif (last is None and now - start >= first) or (last is not None and now - last >= quiet):
                break
        return bytes(out)

    def ask(self, instruction: int, params: bytes = b"", address: int = P.DEFAULT_ADDRESS, *,
            silence: bool = False) -> bytes:
        """Send a command and return the whole reply (`silence`: expect none, wait only 0.5 s)."""
        self.send(instruction, params, address)
        return self.read_until_quiet(first=0.5 if silence else 3.0)

    def close(self) -> None:
        self.serial.close()


@pytest.fixture
def boot():
    made: list[tuple[VirtualModule, list[Raw]]] = []

    def make(profile: str = "zfm", source="none", **options) -> tuple[VirtualModule, Raw]:
        module = VirtualModule(profile, source, seed=3, **options).start()
        client = Raw(module.port)
        made.append((module, [client]))
        return module, client

    yield make
    for module, clients in made:
        for client in clients:
            client.close()
        module.close()
        assert not module.errors, module.errors


def ack_bytes(code: int, data: bytes = b"", address: int = P.DEFAULT_ADDRESS) -> bytes:
    return P.encode(P.ack(code, data, address))


def read_raw_fd(path: str, timeout: float = 1.0) -> bytes:
    """Open a port without pyserial (which flushes pending input on open) and read what waits there."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        out = b""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if select.select([fd], [], [], 0.05)[0]:
                out += os.read(fd, 1024)
            elif out:
                break
        return out
    finally:
        os.close(fd)


# -- power, framing, tables --------------------------------------------------------------------------


def test_ready_byte_at_power_on_and_after_replug(tmp_path):
    module = start_module("zfm", source="none", seed=1)
    try:
        assert read_raw_fd(module.port) == b"\x55"
        first_device = module.device
        module.unplug()
        assert not os.path.exists(module.port) and not module.plugged
        module.replug()
        assert module.ready and os.path.islink(module.port)
        assert os.path.realpath(module.port) == module.device
        assert read_raw_fd(module.port) == b"\x55"
        assert first_device is not None
    finally:
        module.close()
    assert not os.path.exists(module.port)


def test_acknowledgements_are_byte_exact(boot):
    module, raw = boot("zfm")
    # the notes' example: VfyPwd with password 0 is acknowledged with code 00, checksum 000A
    assert raw.ask(I.VFY_PWD, bytes(4)) == bytes.fromhex("EF01FFFFFFFF07000300000A")
    params = raw.ask(I.READ_SYS_PARA)
    assert len(params) == 28
    assert P.decode(params).body == bytes.fromhex("0004" "0009" "03E8" "0003" "FFFFFFFF" "0002" "0006")
    assert raw.ask(I.TEMPLATE_NUM) == ack_bytes(0, b"\x00\x00")
    # a failed search keeps its page and score fields, zero-filled: fixed-length readers rely on it
    assert raw.ask(I.SEARCH, b"\x01\x00\x00\x03\xe8") == ack_bytes(0x09, bytes(4))
    assert raw.ask(I.MATCH) == ack_bytes(0x08, b"\x00\x00")  # two empty buffers
    assert raw.ask(I.GEN_IMG) == ack_bytes(0x02)
    assert raw.ask(I.UP_IMAGE) == ack_bytes(0x0F)  # nothing captured yet
    assert raw.ask(I.IMG2TZ, b"\x01") == ack_bytes(0x15)
    assert raw.ask(I.ZFM_HANDSHAKE) == ack_bytes(0x55)
    assert raw.ask(I.READ_NOTEPAD, b"\x10") == ack_bytes(0x01, bytes(32))  # page 16 does not exist
    assert raw.ask(I.STORE, b"\x01\x03\xe8") == ack_bytes(0x0B)  # page 1000 of 0..999
    assert raw.ask(I.SET_SYS_PARA, b"\x07\x01") == ack_bytes(0x1A)  # no parameter 7
    assert raw.ask(I.IMG2TZ, b"") == ack_bytes(0x01)  # parameters missing
    # a command whose checksum is wrong: "error receiving the package"
    frame = P.encode(P.command(I.TEMPLATE_NUM))
    raw.serial.write(frame[:-1] + bytes([frame[-1] ^ 1]))
    assert raw.read_until_quiet() == ack_bytes(0x01)


@pytest.mark.parametrize("profile, unknown, extras_ok", [("zfm", 0x01, False), ("as608", 0x13, False), ("r503", 0xFC, True)])
def test_each_model_answers_with_its_own_table(boot, profile, unknown, extras_ok):
    module, raw = boot(profile)
    assert raw.ask(0x7E) == ack_bytes(unknown)  # an instruction no model has
    for extra in (I.CHECK_SENSOR, I.HANDSHAKE, I.AURA_LED_CONFIG):
        reply = P.decode(raw.ask(extra, b"\x01\x80\x02\x00" if extra == I.AURA_LED_CONFIG else b""))
        assert reply.confirmation == (0x00 if extras_ok else unknown)
    version = P.decode(raw.ask(I.GET_FIRMWARE_VERSION))
    assert (version.confirmation == 0 and version.body.startswith(b"biogate-virtual-r503")) if extras_ok else \
        (version.confirmation == unknown and version.body == b"")
    capacity = P.decode(raw.ask(I.READ_SYS_PARA)).body[4:6]
    assert int.from_bytes(capacity, "big") == {"zfm": 1000, "as608": 300, "r503": 200}[profile]


def test_r503_soft_reset_sends_the_ready_byte(boot):
    module, raw = boot("r503", "synthetic")
    assert P.decode(raw.ask(I.GEN_IMG)).confirmation == 0
    assert raw.ask(I.SOFT_RESET) == ack_bytes(0) + b"\x55"
    status = int.from_bytes(P.decode(raw.ask(I.READ_SYS_PARA)).body[0:2], "big")
    assert not status & 0x8  # the image buffer went with the reset


def test_password_and_address(boot):
    module, raw = boot("zfm", password=0x01020304)
    assert raw.ask(I.TEMPLATE_NUM) == ack_bytes(0x21, b"\x00\x00")  # must verify the password first
    assert raw.ask(I.VFY_PWD, bytes.fromhex("01020305")) == ack_bytes(0x13)
    assert raw.ask(I.VFY_PWD, bytes.fromhex("01020304")) == ack_bytes(0)
    assert raw.ask(I.TEMPLATE_NUM) == ack_bytes(0, b"\x00\x00")
    # SetAddr: the acknowledgement already comes from the new address
    assert raw.ask(I.SET_ADDR, bytes.fromhex("CAFEF00D")) == ack_bytes(0, address=0xCAFEF00D)
    assert raw.ask(I.TEMPLATE_NUM) == ack_bytes(0x20, b"\x00\x00", address=0xCAFEF00D)  # sent to FFFFFFFF
    assert raw.ask(I.TEMPLATE_NUM, address=0xCAFEF00D) == ack_bytes(0, b"\x00\x00", address=0xCAFEF00D)


@pytest.mark.parametrize("code", [0, 1, 2, 3])
def test_packet_size_shapes_the_image_upload(boot, code):
    module, raw = boot("zfm", "synthetic")
    assert raw.ask(I.SET_SYS_PARA, bytes([6, code])) == ack_bytes(0)
    raw.ask(I.GEN_IMG)
    raw.send(I.UP_IMAGE)
    packets = P.parse_packets(raw.read_until_quiet(), max_payload=256)
    size = P.PACKET_SIZES[code]
    assert packets[0] == P.ack(0)
    data = packets[1:]
    assert len(data) == 36864 // size
    assert all(p.pid == P.PacketId.DATA and len(p.payload) == size for p in data[:-1])
    assert data[-1].pid == P.PacketId.END_DATA and len(data[-1].payload) == size
    levels = P.unpack_nibbles(b"".join(p.payload for p in data), 256, 288)
    assert levels.max() <= 15


def test_baud_rate_changes_after_the_acknowledgement(boot):
    module, raw = boot("zfm")
    assert raw.ask(I.SET_SYS_PARA, bytes([4, 12])) == ack_bytes(0)  # answered at 57600
    assert raw.ask(I.TEMPLATE_NUM, silence=True) == b""  # the module now listens at 115200: 57600 is noise
    raw.serial.baudrate = 115200
    assert raw.ask(I.TEMPLATE_NUM) == ack_bytes(0, b"\x00\x00")
    assert raw.ask(I.SET_SYS_PARA, bytes([4, 13])) == ack_bytes(0x1A)  # N = 13 does not exist


def test_down_char_and_down_image(boot):
    module, raw = boot("zfm")
    template = bytes(range(256)) * 2
    assert raw.ask(I.DOWN_CHAR, b"\x02") == ack_bytes(0)
    for packet in P.data_packets(template, 128):
        raw.send_packet(packet)
    raw.read_until_quiet(first=0.2)
    raw.send(I.UP_CHAR, b"\x02")
    packets = P.parse_packets(raw.read_until_quiet())
    assert b"".join(p.payload for p in packets[1:]) == template

    # a damaged data packet voids the download: the buffer keeps what it had
    assert raw.ask(I.DOWN_CHAR, b"\x02") == ack_bytes(0)
    frames = [P.encode(p) for p in P.data_packets(bytes(512), 128)]
    frames[1] = frames[1][:-1] + bytes([frames[1][-1] ^ 0xFF])
    raw.serial.write(b"".join(frames))
    raw.read_until_quiet(first=0.2)
    raw.send(I.UP_CHAR, b"\x02")
    assert b"".join(p.payload for p in P.parse_packets(raw.read_until_quiet())[1:]) == template

    image = np.random.default_rng(0).integers(0, 16, (288, 256), dtype=np.uint8)
    assert raw.ask(I.DOWN_IMAGE) == ack_bytes(0)
    for packet in P.data_packets(P.pack_nibbles(image), 128):
        raw.send_packet(packet)
    raw.read_until_quiet(first=0.2)
    raw.send(I.UP_IMAGE)
    data = b"".join(p.payload for p in P.parse_packets(raw.read_until_quiet())[1:])
    assert np.array_equal(P.unpack_nibbles(data, 256, 288), image)


# -- the library in flash ----------------------------------------------------------------------------


def enrol(raw: Raw, module: VirtualModule, image: np.ndarray, page: int) -> None:
    module.place(image)
    for buffer in (1, 2):
        assert P.decode(raw.ask(I.GEN_IMG)).confirmation == 0
        assert P.decode(raw.ask(I.IMG2TZ, bytes([buffer]))).confirmation == 0
    assert raw.ask(I.REG_MODEL) == ack_bytes(0)
    assert raw.ask(I.STORE, b"\x01" + page.to_bytes(2, "big")) == ack_bytes(0)


def test_library_persists_in_an_atomic_file(boot, tmp_path):
    path = tmp_path / "flash" / "library.json"
    module, raw = boot("zfm", library_path=path)
    enrol(raw, module, images.synthetic_print(1, 0, seed=5), 12)
    enrol(raw, module, images.synthetic_print(2, 0, seed=5), 700)
    assert raw.ask(I.WRITE_NOTEPAD, b"\x02" + b"teller 7".ljust(32, b"\0")) == ack_bytes(0)
    assert raw.ask(I.SET_SYS_PARA, b"\x05\x04") == ack_bytes(0)
    doc = json.loads(path.read_text())
    assert doc["format"] == "biogate-virtual-fingerprint-flash" and sorted(doc["templates"]) == ["12", "700"]
    assert doc["settings"]["security_level"] == 4
    assert [p.name for p in path.parent.iterdir()] == ["library.json"]  # no temporary file left behind
    raw.close()
    module.close()

    again = VirtualModule("zfm", "none", library_path=path).start()
    try:
        client = Raw(again.port)
        assert again.templates == [12, 700]
        assert raw_index(client) == [12, 700]
        assert P.decode(client.ask(I.READ_NOTEPAD, b"\x02")).body.startswith(b"teller 7")
        again.place(images.synthetic_print(2, 1, seed=5))
        client.ask(I.GEN_IMG)
        client.ask(I.IMG2TZ, b"\x01")
        found = P.decode(client.ask(I.SEARCH, b"\x01\x00\x00\x03\xe8"))
        assert found.confirmation == 0 and int.from_bytes(found.body[:2], "big") == 700
        assert client.ask(I.DELETE_CHAR, b"\x00\x0c\x00\x01") == ack_bytes(0)
        assert client.ask(I.DELETE_CHAR, b"\x03\xe7\x00\x02") == ack_bytes(0x10)  # runs past page 999
        assert client.ask(I.EMPTY) == ack_bytes(0)
        client.close()
    finally:
        again.close()
    assert json.loads(path.read_text())["templates"] == {}


def raw_index(client: Raw) -> list[int]:
    pages = []
    for table in range(P.INDEX_TABLE_PAGES):
        pages += P.index_table_to_pages(P.decode(client.ask(I.READ_INDEX_TABLE, bytes([table]))).body, table)
    return pages


def test_a_bad_library_file_is_refused(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(InputError) as err:
        VirtualModule("zfm", "none", library_path=broken)
    assert err.value.code == "input.library_file"
    other = tmp_path / "r503.json"
    VirtualModule("r503", "none", library_path=other, security_level=2).flash.save()
    with pytest.raises(InputError, match="r503 library"):
        VirtualModule("zfm", "none", library_path=other)


# -- image sources -----------------------------------------------------------------------------------


def test_messy_and_no_finger_sources(boot):
    module, raw = boot("zfm", "messy")
    for _ in range(3):
        assert raw.ask(I.GEN_IMG) == ack_bytes(0)
        assert raw.ask(I.IMG2TZ, b"\x01") == ack_bytes(0x06)  # image too messy
    module.set_source("none")
    assert raw.ask(I.GEN_IMG) == ack_bytes(0x02)
    module.place(images.synthetic_print(0, 0))
    assert raw.ask(I.GEN_IMG) == ack_bytes(0)
    module.lift()
    assert raw.ask(I.GEN_IMG) == ack_bytes(0x02)


def test_folder_source_cycles_through_real_prints(boot):
    folder = data_dir() / "fingerprints" / "fvc2000" / "DB1_B"
    if not folder.is_dir():
        pytest.skip(f"shared evaluation data not present: {folder}")
    module, raw = boot("zfm", "default")  # the default source is DB1_B when the data is there
    for _ in range(3):
        raw.ask(I.GEN_IMG)
    assert list(module.captures) == ["101_1.tif", "101_2.tif", "101_3.tif"]


# -- faults ------------------------------------------------------------------------------------------

SCENARIO = """
[[fingerprint.faults]]
kind = "drop_packet"
command = "UpImage"
occurrence = 3
packet = 17

[[fingerprint.faults]]
kind = "confirmation"
command = "Match"
code = 0x0A
times = 0

[[fingerprint.faults]]
kind = "unplug"
mode = "silent"
replug_after = 0.5

[fingerprint.random_faults]
seed = 7
noise = 0.1
rates = { no_finger = 0.5 }
"""


def test_faults_from_a_toml_scenario():
    doc = tomllib.loads(SCENARIO)["fingerprint"]
    faults = parse_faults(doc["faults"])
    assert faults[0] == Fault("drop_packet", command="UpImage", occurrence=3, packet=17)
    assert faults[0].instruction == I.UP_IMAGE and faults[1].answer_code == 0x0A
    assert faults[2].instruction is None and faults[2].mode == "silent"
    assert [Fault.from_dict(f.to_dict()) for f in faults] == faults
    assert faults[0].to_dict() == {"kind": "drop_packet", "command": "UpImage", "occurrence": 3, "packet": 17}
    random_faults = RandomFaults.from_dict(doc["random_faults"])
    assert random_faults.seed == 7 and dict(random_faults.rates) == {"noise": 0.1, "no_finger": 0.5}
    assert Fault("no_finger").instruction == I.GEN_IMG and Fault("library_full").instruction == I.STORE
    assert instruction_code("GenChar") == instruction_code("IMG2TZ") == instruction_code(2) == 0x02
    for bad in ({"kind": "meteor"}, {"kind": "noise", "colour": "red"}, {"command": "GenImg"},
                {"kind": "confirmation"}, {"kind": "noise", "command": "Dance"}, {"kind": "unplug", "mode": "x"},
                {"kind": "slow", "delay": -1}, {"kind": "noise", "data": "zz"}):
        with pytest.raises(InputError) as err:
            parse_faults(bad)
        assert err.value.code == "input.fault"
    with pytest.raises(InputError):
        RandomFaults.from_dict({"seed": 1, "rates": {"noise": 2.0}})


def test_fault_plan_counts_occurrences_per_command():
    plan = FaultPlan([Fault("drop_packet", command="UpImage", occurrence=3, packet=17),
                      Fault("no_finger", times=2)])
    decisions = [plan.decide(I.UP_IMAGE, 289) for _ in range(4)]
    assert [bool(d.frame_faults) for d in decisions] == [False, False, True, False]
    assert decisions[2].at(17)[0].kind == "drop_packet" and not decisions[2].at(16)
    assert [plan.decide(I.GEN_IMG, 1).answer_code for _ in range(3)] == [0x02, 0x02, None]
    assert plan.pending == [] and len(plan.fired) == 3


def test_random_faults_are_reproducible():
    def run(seed: int) -> list:
        plan = FaultPlan(random_faults=RandomFaults(seed=seed, rates={"noise": 0.01, "no_finger": 0.3}))
        for _ in range(20):
            plan.decide(I.GEN_IMG, 1)
            plan.decide(I.UP_IMAGE, 289)
        return plan.fired

    assert run(5) == run(5) and run(5) != run(6)
    kinds = {kind for kind, _, _ in run(5)}
    assert kinds == {"noise", "no_finger"}


def test_random_faults_injected_into_a_running_module(boot):
    module, raw = boot("zfm", "synthetic")
    module.inject({"seed": 2, "rates": {"no_finger": 1.0}})
    assert raw.ask(I.GEN_IMG) == ack_bytes(0x02)
    module.clear_faults()
    assert raw.ask(I.GEN_IMG) == ack_bytes(0)


def test_scripted_line_faults_on_the_wire(boot):
    module, raw = boot("zfm", faults=[{"kind": "noise", "command": "TemplateNum", "data": "00ef0155"},
                                      {"kind": "bad_checksum", "command": "TemplateNum", "occurrence": 2},
                                      {"kind": "truncate", "command": "TemplateNum", "occurrence": 3, "keep": 5},
                                      {"kind": "split_packet", "command": "TemplateNum", "occurrence": 4,
                                       "pieces": 2, "delay": 0.3}])
    good = ack_bytes(0, b"\x00\x00")
    assert raw.ask(I.TEMPLATE_NUM) == bytes.fromhex("00ef0155") + good
    assert raw.ask(I.TEMPLATE_NUM) == good[:-1] + bytes([good[-1] ^ 0xA5])
    assert raw.ask(I.TEMPLATE_NUM) == good[:5]
    raw.send(I.TEMPLATE_NUM)
    assert raw.read_until_quiet(quiet=0.15) == good[:7]  # the first half, then a pause
    assert raw.read_until_quiet(quiet=0.15) == good[7:]
    assert raw.ask(I.TEMPLATE_NUM) == good
    assert [kind for kind, _, _ in module.faults_fired] == ["noise", "bad_checksum", "truncate", "split_packet"]


def test_unplug_and_replug_through_the_api(boot):
    module, raw = boot("zfm")
    module.inject({"kind": "unplug", "command": "TemplateNum", "replug_after": 0.3})
    raw.send(I.TEMPLATE_NUM)
    with pytest.raises(serial.SerialException):
        for _ in range(100):
            raw.serial.read(1)  # the master side closed: the tty reports the hang-up
    raw.close()
    assert module.wait_ready(5.0) and os.path.exists(module.port)
    again = Raw(module.port)
    try:
        assert again.ask(I.TEMPLATE_NUM) == ack_bytes(0, b"\x00\x00")
        module.unplug(mode="silent")
        assert os.path.exists(module.port) and again.ask(I.TEMPLATE_NUM, silence=True) == b""
        module.replug()
        assert module.wait_ready(2.0)
        assert again.read_until_quiet(first=1.0) == b"\x55"  # powered up again on the same cable
        assert again.ask(I.TEMPLATE_NUM) == ack_bytes(0, b"\x00\x00")
    finally:
        again.close()
