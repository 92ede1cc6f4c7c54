"""The `zfm` driver against fingerprint modules on real pseudo-terminals.

Two counterparts:
- the virtual module (`simulator.fingerprint`): every command of `ZfmModule`, and the declarative
  faults as a scenario would inject them;
- the scripted responder (`fingerprint_responder`): exact byte sequences at exact moments, for the
  line faults whose precise shape matters.

Every test is bounded by `pytest.mark.timeout`: the driver must never hang. A fault either is
recovered (the result equals the fault-free one) or surfaces as a typed error naming it.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from drivers.base import open_device
from drivers.fingerprint import protocol as P
from drivers.fingerprint.errors import (
    ChecksumError,
    DeviceTimeout,
    DisconnectedError,
    FingerprintError,
    ImageMessyError,
    LibraryFullError,
    ModuleError,
    NoFingerError,
    PageOutOfRangeError,
    PasswordRequiredError,
    ProtocolError,
    SensorFaultError,
    TooFewFeaturesError,
    WrongPasswordError,
)
from drivers.fingerprint.zfm import ZfmModule, ZfmScanner
from edge.errors import InputError
from simulator.fingerprint import features, images
from tests.drivers.fingerprint_responder import (
    UNPLUG,
    PtyResponder,
    ScriptedModule,
    ack,
    corrupt_checksum,
    data_frames,
    split,
)

pytestmark = pytest.mark.timeout(60)

I = P.Instruction
FAST = 1.0  # driver timeout for fault tests: long enough for a loaded machine, short enough to wait out


def expected_image(module, image: np.ndarray) -> np.ndarray:
    """What the driver must return for `image` on `module`: the documented sensor pipeline."""
    levels = images.sensor_levels(image, module.model.image_width, module.model.image_height)
    return images.levels_to_grey(levels)


def print_image(finger: int = 0, impression: int = 0) -> np.ndarray:
    return images.synthetic_print(finger, impression, seed=3)


# The same print on every capture: a retried GenImg then captures the same image again.
FIXED = print_image(2, 0)


# --------------------------------------------------------------------------------------------------
# Every command, against the virtual module
# --------------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_every_core_command_round_trips(make_module, tmp_path):
    module = make_module("zfm", "none", library_path=tmp_path / "flash.json", seed=5)
    drv = ZfmModule(module.port, timeout=5.0)  # Img2Tz runs the minutiae extractor: slow on a busy machine
    try:
        drv.verify_password()
        params = drv.read_sys_para()
        assert (params.system_id, params.library_size, params.security_level) == (9, 1000, 3)
        assert (params.device_address, params.packet_size, params.baudrate) == (0xFFFFFFFF, 128, 57600)
        assert params.password_verified and not params.image_buffer_valid
        drv.handshake()  # ZFM-70 0x53 -> 0x55

        with pytest.raises(NoFingerError):
            drv.gen_img()
        module.place(print_image(0, 0))
        drv.gen_img()
        assert drv.read_sys_para().image_buffer_valid
        image = drv.read_image()
        assert image.shape == (288, 256) and image.dtype == np.uint8
        assert np.array_equal(image, expected_image(module, print_image(0, 0)))
        drv.img2tz(1)
        module.place(print_image(0, 1))
        drv.gen_img()
        drv.img2tz(2)
        genuine = drv.match()
        assert genuine.matched and genuine.score >= 50
        drv.reg_model()
        template = drv.up_char(1)
        assert len(template) == 512 and template[:4] == features.MAGIC
        drv.store(7)
        drv.store(300, buffer=2)
        assert drv.template_count() == 2
        assert drv.read_index_table(0) == [7] and drv.read_index_table(1) == [300]
        drv.img2tz(1)  # the second impression again in buffer 1: search it in the library
        found = drv.search(1)
        assert found.found and found.page in (7, 300) and found.score >= 50
        fast = drv.hi_speed_search(1, 0, 100)  # pages 0..99 only: page 300 is outside
        assert fast.found and fast.page == 7

        module.place(print_image(3, 0))  # another finger
        drv.gen_img()
        drv.img2tz(2)
        impostor = drv.match()
        assert not impostor.matched and impostor.score < genuine.score
        assert not drv.search(2).found

        drv.load_char(300, buffer=2)
        assert drv.up_char(2) == template
        drv.down_char(template, buffer=1)
        assert drv.up_char(1) == template
        assert drv.match().matched
        packed = P.pack_image(print_image(4, 0)[:288, :256])
        drv.down_image(packed)
        assert drv.up_image() == packed

        drv.delete_char(7)
        assert drv.template_count() == 1
        with pytest.raises(ModuleError) as err:
            drv.load_char(7)
        assert err.value.name == "template_invalid"
        with pytest.raises(PageOutOfRangeError):
            drv.store(1000)
        drv.empty()
        assert drv.template_count() == 0 and drv.read_index_table(1) == []

        drv.write_notepad(3, b"biogate")
        assert drv.read_notepad(3) == b"biogate".ljust(32, b"\0")
        codes = {drv.get_random_code() for _ in range(4)}
        assert len(codes) == 4 and all(0 <= c <= 0xFFFFFFFF for c in codes)

        drv.set_security_level(5)
        assert drv.read_sys_para().security_level == 5
        drv.set_packet_size(64)
        assert drv.read_sys_para().packet_size == 64
        module.place(print_image(0, 0))
        drv.gen_img()
        assert np.array_equal(drv.read_image(), expected_image(module, print_image(0, 0)))  # 576 packets of 64
        drv.set_baudrate(115200)
        assert drv.baudrate == 115200 and drv.read_sys_para().baudrate == 115200

        drv.set_password(0x0BADCAFE)
        drv.set_address(0x12345678)
        assert drv.read_sys_para().device_address == 0x12345678
        module.place(print_image(0, 0))
        drv.gen_img()
        drv.img2tz(1)
        drv.store(42)
    finally:
        drv.close()
    module.close()
    # flash survives the power cycle: settings, notepad and library; RAM does not
    again = make_module("zfm", "none", library_path=tmp_path / "flash.json")
    with ZfmModule(again.port, baudrate=115200, address=0x12345678, timeout=1.0) as other:
        with pytest.raises(PasswordRequiredError):
            other.template_count()
        other.verify_password(0x0BADCAFE)
        assert other.read_notepad(3).startswith(b"biogate")
        assert other.template_count() == 1 and other.read_index_table(0) == [42]
        assert not other.read_sys_para().image_buffer_valid


@pytest.mark.timeout(60)
def test_r503_extras_and_geometry(make_module):
    module = make_module("r503", "synthetic")
    with ZfmModule(module.port, model="r503", timeout=5.0) as drv:
        drv.handshake()  # R503 0x40
        drv.check_sensor()
        drv.aura_led_config(control=1, speed=100, colour=2, times=0)
        assert module.led == (1, 100, 2, 0)
        assert drv.firmware_version().startswith("biogate-virtual-r503")
        drv.get_image_ex()
        image = drv.read_image()
        assert image.shape == (192, 192)
        drv.img2tz(1)
        assert len(drv.up_char(1)) == 1536
        with pytest.raises(InputError):
            drv.set_baudrate(9600 * 3)  # R503 allows N in {1, 2, 4, 6, 12}
        drv.soft_reset()  # acknowledged, then the ready byte 0x55
        assert not drv.read_sys_para().image_buffer_valid  # RAM was cleared
        module.inject({"kind": "sensor_error"})
        with pytest.raises(SensorFaultError):
            drv.check_sensor()


@pytest.mark.timeout(60)
def test_as608_answers_with_its_own_table(make_module):
    module = make_module("as608", "synthetic", password=0x55AA)
    with ZfmModule(module.port, model="as608", timeout=1.0) as drv:
        with pytest.raises(PasswordRequiredError):
            drv.template_count()
        with pytest.raises(WrongPasswordError) as err:
            drv.verify_password(0x1234)  # AS608 says 0x13 "command invalid": the driver knows it means this
        assert err.value.name == "command_invalid"
        drv.verify_password(0x55AA)
        assert drv.template_count() == 0
        assert drv.read_sys_para().library_size == 300
        with pytest.raises(ModuleError) as err:
            drv.transact(I.AURA_LED_CONFIG, b"\x01\x01\x01\x00")  # not an AS608 command
        assert err.value.confirmation == 0x13


@pytest.mark.timeout(60)
def test_scanner_backend_capture(make_module):
    module = make_module("zfm", {"kind": "synthetic", "absent_polls": 3}, seed=2)
    with open_device("fingerprint", "zfm", port=module.port, timeout=1.0, poll_interval=0.02) as scanner:
        assert isinstance(scanner, ZfmScanner) and scanner.image_shape == (288, 256)
        image = scanner.capture(timeout=5.0)  # three "no finger" polls first
        assert image.shape == (288, 256) and image.dtype == np.uint8
        assert set(np.unique(image)) <= {17 * k for k in range(16)}  # 4 bits per pixel, expanded
        assert module.commands.count("GEN_IMG") == 4
        expected = expected_image(module, images.synthetic_print(0, 0, seed=2))
        assert np.array_equal(image, expected)

        module.set_source("none")
        assert not scanner.finger_present()
        start = time.monotonic()
        with pytest.raises(NoFingerError) as err:
            scanner.capture(timeout=0.3)
        assert "0.3 s" in str(err.value) and time.monotonic() - start < 2.0
        module.place(print_image(1, 0))
        assert scanner.finger_present()
        assert np.array_equal(scanner.capture(timeout=1.0), expected_image(module, print_image(1, 0)))


# --------------------------------------------------------------------------------------------------
# Declarative faults through the virtual module
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def scanner_on(make_module):
    opened = []

    def make(faults=None, profile="zfm", timeout=FAST, **options):
        module = make_module(profile, options.pop("source", FIXED), faults=faults, **options)
        scanner = ZfmScanner(module.port, model=profile, timeout=timeout, poll_interval=0.02)
        opened.append(scanner)
        return module, scanner

    yield make
    for scanner in opened:
        scanner.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "noise", "count": 40},
        {"kind": "power_on_byte"},
        {"kind": "split_packet", "pieces": 5, "delay": 0.05},
        {"kind": "slow", "delay": 0.2},
        {"kind": "bad_checksum"},  # the acknowledgement: the command is sent again
        {"kind": "truncate"},  # half an acknowledgement, then silence: the command is sent again
    ],
    ids=lambda f: f["kind"],
)
@pytest.mark.parametrize("command", ["GenImg", "UpImage"])
def test_line_faults_on_a_reply_are_recovered(scanner_on, fault, command):
    module, scanner = scanner_on([{**fault, "command": command}])
    image = scanner.capture(timeout=2.0)
    assert np.array_equal(image, expected_image(module, FIXED))
    assert module.faults_fired and module.faults_fired[0][0] == fault["kind"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "drop_packet", "packet": 17},  # "the 3rd UpImage drops packet 17"
        {"kind": "bad_checksum", "packet": 100},
        {"kind": "truncate", "packet": 5, "keep": 40},
        {"kind": "drop_packet", "packet": 288},  # the END packet: the rest of the line stays silent
        {"kind": "noise", "packet": 200, "count": 300},
        {"kind": "split_packet", "packet": 1, "pieces": 10, "delay": 0.02},
        {"kind": "slow", "packet": 144, "delay": 0.2},
    ],
    ids=lambda f: f"{f['kind']}@{f['packet']}",
)
def test_faults_inside_an_image_transfer(scanner_on, fault):
    module, scanner = scanner_on([{**fault, "command": "UpImage", "occurrence": 3}])
    expected = expected_image(module, FIXED)
    for n in range(3):
        assert np.array_equal(scanner.capture(timeout=2.0), expected), f"capture {n + 1}"
    assert module.faults_fired == [(fault["kind"], "UP_IMAGE", fault["packet"])]
    retried = fault["kind"] in ("drop_packet", "bad_checksum", "truncate")
    assert module.commands.count("UP_IMAGE") == 3 + retried


@pytest.mark.timeout(60)
def test_a_transfer_broken_twice_raises_and_returns_no_image(scanner_on):
    module, scanner = scanner_on([{"kind": "bad_checksum", "command": "UpImage", "packet": 9, "times": 2}])
    with pytest.raises(ChecksumError):
        scanner.capture(timeout=2.0)
    module.inject({"kind": "drop_packet", "command": "UpImage", "packet": 50, "times": 2})
    with pytest.raises(ProtocolError) as err:
        scanner.capture(timeout=2.0)
    assert "expected exactly 36864" in str(err.value)
    # the line is clean again afterwards
    assert scanner.capture(timeout=2.0).shape == (288, 256)


@pytest.mark.timeout(30)
def test_silence_is_a_timeout_not_a_hang(scanner_on):
    module, scanner = scanner_on([{"kind": "drop_packet", "command": "TemplateNum", "times": 0}])
    start = time.monotonic()
    with pytest.raises(DeviceTimeout) as err:
        scanner.module.template_count()
    elapsed = time.monotonic() - start
    assert err.value.code == "device.timeout" and FAST * 0.9 <= elapsed < FAST + 1.5
    assert module.commands.count("TEMPLATE_NUM") == 1  # silence is not retried
    module.inject({"kind": "slow", "command": "GenImg", "delay": 3 * FAST})
    with pytest.raises(DeviceTimeout):
        scanner.module.gen_img()


@pytest.mark.timeout(30)
def test_persistent_bad_checksum_raises_checksum_error(scanner_on):
    module, scanner = scanner_on([{"kind": "bad_checksum", "command": "ReadSysPara", "occurrence": 2, "times": 2}])
    with pytest.raises(ChecksumError) as err:
        scanner.module.read_sys_para()
    assert err.value.code == "device.checksum"
    assert module.commands.count("READ_SYS_PARA") == 3  # one at open, then the command and its retry
    assert scanner.module.read_sys_para().library_size == 1000


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "fault, error, code, confirmation",
    [
        ({"kind": "no_finger"}, NoFingerError, "device.no_finger", 0x02),
        ({"kind": "image_messy"}, ImageMessyError, "device.image_messy", 0x06),
        ({"kind": "library_full"}, LibraryFullError, "device.library_full", 0x1F),
        ({"kind": "confirmation", "command": "Match", "code": 0x0A}, ModuleError, "device.module_error", 0x0A),
    ],
    ids=["no_finger", "image_messy", "library_full", "combine_failed"],
)
def test_module_refusals_are_typed(scanner_on, fault, error, code, confirmation):
    module, scanner = scanner_on([fault], timeout=5.0)  # Img2Tz must succeed first for two of them
    drv = scanner.module
    with pytest.raises(error) as err:
        drv.gen_img()
        drv.img2tz(1)
        drv.store(0)
        drv.match()
    assert err.value.code == code and err.value.model == "zfm"
    assert err.value.details["confirmation"] == confirmation
    assert module.faults_fired[0][0] == fault["kind"]


@pytest.mark.timeout(30)
def test_wrong_password_fault_and_password_required(scanner_on, make_module):
    module = make_module("zfm", "synthetic", faults=[{"kind": "wrong_password"}])
    with pytest.raises(WrongPasswordError) as err:
        ZfmScanner(module.port, timeout=FAST)  # opening verifies the password
    assert err.value.code == "device.wrong_password" and err.value.details["confirmation"] == 0x13
    locked = make_module("zfm", "synthetic", password=42)
    with pytest.raises(WrongPasswordError):
        ZfmScanner(locked.port, timeout=FAST)
    with ZfmModule(locked.port, timeout=FAST) as drv:
        with pytest.raises(PasswordRequiredError):
            drv.gen_img()
    with ZfmScanner(locked.port, password=42, timeout=FAST) as scanner:
        assert scanner.capture(timeout=1.0).shape == (288, 256)


@pytest.mark.timeout(30)
def test_messy_and_featureless_images(scanner_on):
    module, scanner = scanner_on(source="messy")
    scanner.module.gen_img()
    with pytest.raises(ImageMessyError):
        scanner.module.img2tz(1)
    module.place(np.full((300, 300), 250, np.uint8))  # a pale smudge, no ridges
    scanner.module.gen_img()
    with pytest.raises(TooFewFeaturesError):
        scanner.module.img2tz(1)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("packet", [0, 1, 150])
def test_unplugged_mid_transfer(scanner_on, packet):
    module, scanner = scanner_on([{"kind": "unplug", "command": "UpImage", "packet": packet}])
    start = time.monotonic()
    with pytest.raises(DisconnectedError) as err:
        scanner.capture(timeout=2.0)
    assert err.value.code == "device.disconnected" and time.monotonic() - start < 3.0
    assert not os.path.exists(module.port)  # the port vanished, as /dev/ttyUSB0 does
    with pytest.raises(DisconnectedError):
        ZfmScanner(module.port, timeout=FAST)
    module.replug()
    with ZfmScanner(module.port, timeout=FAST) as again:
        assert again.capture(timeout=2.0).shape == (288, 256)


@pytest.mark.timeout(30)
def test_silent_unplug_and_automatic_replug(scanner_on):
    module, scanner = scanner_on([{"kind": "unplug", "mode": "silent", "command": "UpImage", "packet": 40,
                                   "replug_after": 3 * FAST}])
    with pytest.raises(DeviceTimeout):
        scanner.capture(timeout=2.0)  # the transfer stops part way; its retry meets silence
    assert not module.plugged
    assert module.wait_ready(5.0)  # replugged by itself, booted, ready byte sent
    scanner.module.verify_password()  # a replugged module forgot the verification; the password is 0
    assert scanner.capture(timeout=2.0).shape == (288, 256)


@pytest.mark.timeout(30)
def test_brown_out_reset_then_recovery(scanner_on):
    module, scanner = scanner_on([{"kind": "reset", "command": "Img2Tz"}])
    assert module.commands.count("VFY_PWD") == 1
    scanner.module.gen_img()
    with pytest.raises(DeviceTimeout):
        scanner.module.img2tz(1)  # the module restarted: 0x55 instead of a reply
    with pytest.raises(ModuleError) as err:
        scanner.module.img2tz(1)  # the image buffer went with the RAM
    assert err.value.name == "no_valid_image"


@pytest.mark.timeout(30)
def test_wrong_baud_rate_is_silence(make_module):
    module = make_module("zfm", "synthetic", baudrate=115200)
    with pytest.raises(DeviceTimeout):
        ZfmScanner(module.port, baudrate=57600, timeout=FAST)
    with ZfmScanner(module.port, baudrate=115200, timeout=FAST) as scanner:
        assert scanner.parameters.baudrate == 115200


@pytest.mark.timeout(120)
def test_random_faults_never_yield_a_corrupt_image(make_module):
    """A seeded storm of line faults: every capture is exact or a typed error, none hangs."""
    # per frame: an image transfer has 289 frames, so about 1 transfer in 4 is broken (and requested again)
    rates = {"noise": 0.001, "bad_checksum": 0.0005, "drop_packet": 0.0003, "truncate": 0.0003,
             "split_packet": 0.001, "power_on_byte": 0.0005, "no_finger": 0.2}
    module = make_module("zfm", FIXED, random_faults={"seed": 11, "rates": rates})
    expected = expected_image(module, FIXED)
    outcomes: dict[str, int] = {}
    with ZfmScanner(module.port, timeout=FAST, poll_interval=0.01) as scanner:
        for _ in range(12):
            start = time.monotonic()
            try:
                image = scanner.capture(timeout=1.0)
            except FingerprintError as exc:
                outcomes[exc.code] = outcomes.get(exc.code, 0) + 1
            else:
                assert np.array_equal(image, expected)
                outcomes["ok"] = outcomes.get("ok", 0) + 1
            assert time.monotonic() - start < 15
    assert outcomes.get("ok", 0) >= 6, outcomes
    kinds = {kind for kind, _, _ in module.faults_fired}
    assert {"noise", "split_packet", "no_finger"} <= kinds, kinds


# --------------------------------------------------------------------------------------------------
# Exact byte sequences from the scripted responder
# --------------------------------------------------------------------------------------------------

PARAMS = P.SystemParameters()
SMALL = P.ModuleModel("zfm", P.MODELS["zfm"].confirmation_codes, 16, 8, 1000, frozenset(range(1, 13)), 512)


@pytest.fixture
def responder():
    made: list[PtyResponder] = []

    def make(replies=None, **kw) -> tuple[PtyResponder, ScriptedModule]:
        script = ScriptedModule(replies=replies)
        r = PtyResponder(script, **kw)
        made.append(r)
        return r, script

    yield make
    for r in made:
        r.close()
        assert not r.errors, r.errors


def image_reply(data: bytes, packet_size: int = 128):
    return [ack(0), *data_frames(data, packet_size)]


@pytest.mark.timeout(20)
def test_power_on_byte_before_a_reply(responder):
    r, _ = responder({I.TEMPLATE_NUM: [[b"\x55", ack(0, b"\x00\x05")]]}, before_open=b"\x55")
    with ZfmModule(r.port, timeout=FAST, wait_ready=0.5) as drv:
        assert drv.template_count() == 5


@pytest.mark.timeout(20)
def test_garbage_that_looks_like_frames_is_skipped(responder):
    fake_header = b"\xef\x01\xff\xff\xff\xff\x02\x00\x80"  # a data packet "of 126 bytes" that never comes
    r, _ = responder({I.TEMPLATE_NUM: [[b"\x00\xef\x01\x13" + fake_header + b"\x07" * 5, ack(0, b"\x00\x02")]]})
    with ZfmModule(r.port, timeout=FAST) as drv:
        assert drv.template_count() == 2


@pytest.mark.timeout(20)
def test_reply_in_pieces_with_pauses(responder):
    r, _ = responder({I.TEMPLATE_NUM: [split(ack(0, b"\x00\x09"), 3, 0.05)]})
    with ZfmModule(r.port, timeout=FAST) as drv:
        assert drv.template_count() == 9


@pytest.mark.timeout(20)
def test_half_a_reply_then_silence_names_the_pending_bytes(responder):
    r, _ = responder({I.TEMPLATE_NUM: [[ack(0, b"\x00\x09")[:7]]]})
    with ZfmModule(r.port, timeout=FAST) as drv:
        with pytest.raises(DeviceTimeout) as err:
            drv.template_count()
    assert "7 bytes of a partial frame pending" in str(err.value)


@pytest.mark.timeout(20)
def test_one_bad_checksum_is_retried(responder):
    r, _ = responder({I.TEMPLATE_NUM: [[corrupt_checksum(ack(0, b"\x00\x03"))], [ack(0, b"\x00\x03")]]})
    with ZfmModule(r.port, timeout=FAST) as drv:
        assert drv.template_count() == 3
    assert r.commands().count(I.TEMPLATE_NUM) == 2


@pytest.mark.timeout(20)
def test_impossible_length_then_stale_data_before_the_reply(responder):
    bogus = b"\xef\x01\xff\xff\xff\xff\x07\xff\xff"
    stale = data_frames(bytes(range(256)), 128)  # the tail of an abandoned transfer, still arriving
    # (TemplateNum starts no transfer, so data packets before its acknowledgement can only be stale)
    r, _ = responder({I.TEMPLATE_NUM: [[bogus], [stale[0], FAST * 0.7, stale[1], FAST * 0.7, ack(0, b"\x00\x04")]]})
    with ZfmModule(r.port, timeout=FAST, retries=1) as drv:
        assert drv.template_count() == 4  # BadLength: sent again; stale data packets: skipped, waited out
    assert r.commands().count(I.TEMPLATE_NUM) == 2


@pytest.mark.timeout(20)
def test_wrong_packet_kind_is_a_protocol_error(responder):
    echo = P.encode(P.command(I.TEMPLATE_NUM))  # a half-duplex adapter echoing the command back
    r, _ = responder({I.TEMPLATE_NUM: [[echo]]})
    with ZfmModule(r.port, timeout=FAST, retries=1) as drv:
        with pytest.raises(ProtocolError) as err:
            drv.template_count()
    assert "expected an acknowledgement, got packet id 0x01" in str(err.value)


@pytest.mark.timeout(20)
def test_short_reply_is_a_protocol_error(responder):
    r, _ = responder({I.TEMPLATE_NUM: [[ack(0, b"\x01")]]})
    with ZfmModule(r.port, timeout=FAST) as drv:
        with pytest.raises(ProtocolError) as err:
            drv.template_count()
    assert "expected 2" in str(err.value)


def small_driver(port: str) -> ZfmModule:
    drv = ZfmModule(port, timeout=FAST)
    drv.model = SMALL  # a 16 x 8 sensor: 64 packed bytes, two data packets of 32
    drv._packet_size = 32
    return drv


@pytest.mark.timeout(20)
def test_short_data_packet_mid_transfer(responder):
    data = bytes(range(64))
    short = P.encode(P.Packet(P.DEFAULT_ADDRESS, P.PacketId.DATA, data[:20]))
    r, _ = responder({I.UP_IMAGE: [[ack(0), short, *data_frames(data[20:], 32)], image_reply(data, 32)]})
    with small_driver(r.port) as drv:
        assert drv.up_image() == data  # the first transfer is refused, the second is whole
    assert r.commands().count(I.UP_IMAGE) == 2


@pytest.mark.timeout(20)
def test_too_much_image_data(responder):
    data = bytes(range(96))
    r, _ = responder({I.UP_IMAGE: [image_reply(data, 32)]})
    with small_driver(r.port) as drv:
        with pytest.raises(ProtocolError) as err:
            drv.up_image()
    assert "more than the expected 64 bytes" in str(err.value)


@pytest.mark.timeout(20)
def test_unplugged_mid_upimage_by_the_responder(responder):
    data = bytes(range(64))
    frames = data_frames(data, 32)
    r, _ = responder({I.UP_IMAGE: [[ack(0), frames[0], 0.05, UNPLUG]]})
    with small_driver(r.port) as drv:
        start = time.monotonic()
        with pytest.raises(DisconnectedError):
            drv.up_image()
        assert time.monotonic() - start < 2.0
        with pytest.raises(DisconnectedError):
            drv.template_count()


@pytest.mark.timeout(20)
def test_a_transfer_that_stalls_before_any_data_is_not_retried(responder):
    r, _ = responder({I.UP_IMAGE: [[ack(0)]]})
    with small_driver(r.port) as drv:
        with pytest.raises(DeviceTimeout) as err:
            drv.up_image()
    assert err.value.details["bytes_received"] == 0
    assert r.commands().count(I.UP_IMAGE) == 1


@pytest.mark.timeout(20)
def test_timeout_zero_is_one_look_not_the_default(responder):
    """`timeout=0` takes a reply only if it is already there: it never waits, and never falls back
    to the module's own (long) timeout."""
    late = 2.0  # the late replies come this late; the driver's own timeout is longer still
    r, _ = responder({I.SOFT_RESET: [[ack(0) + b"\x55"], [ack(0), late, b"\x55"]]})
    with ZfmModule(r.port, timeout=4 * late) as drv:
        drv.soft_reset(ready_timeout=0)  # the ready byte came with the acknowledgement: one look finds it
        start = time.monotonic()
        with pytest.raises(DeviceTimeout):
            drv.soft_reset(ready_timeout=0)  # it comes later: not waited for
        assert time.monotonic() - start < late / 2
    slow, _ = responder({I.TEMPLATE_NUM: [[late, ack(0, b"\x00\x04")]]})
    with ZfmModule(slow.port, timeout=4 * late) as drv:
        start = time.monotonic()
        with pytest.raises(DeviceTimeout):
            drv.transact(I.TEMPLATE_NUM, reply_size=2, timeout=0)
        assert time.monotonic() - start < late / 2


@pytest.mark.timeout(20)
def test_capture_with_timeout_zero_polls_once(make_module):
    module = make_module("zfm", "none")
    with ZfmScanner(module.port, timeout=FAST, poll_interval=0.5) as scanner:
        start = time.monotonic()
        with pytest.raises(NoFingerError):
            scanner.capture(timeout=0)
        assert time.monotonic() - start < 0.5  # no poll interval slept
    assert module.commands.count("GEN_IMG") == 1


def test_a_negative_timeout_is_refused(tmp_path):
    with pytest.raises(InputError):
        ZfmModule(str(tmp_path / "ttyUSB9"), timeout=-1)


def test_cannot_open_a_missing_port(tmp_path):
    with pytest.raises(DisconnectedError):
        ZfmModule(str(tmp_path / "ttyUSB9"))


def test_argument_checks_need_no_module(responder):
    r, _ = responder()
    with ZfmModule(r.port, timeout=FAST) as drv:
        for call in (lambda: drv.store(-1), lambda: drv.img2tz(3), lambda: drv.write_notepad(16, b""),
                     lambda: drv.write_notepad(0, bytes(33)), lambda: drv.set_packet_size(100),
                     lambda: drv.set_baudrate(1200), lambda: drv.down_char(b""), lambda: drv.down_image(b"\0"),
                     lambda: drv.set_security_level(6), lambda: drv.read_index_table(4)):
            with pytest.raises(InputError):
                call()
    assert r.commands() == []  # refused before anything went on the wire
