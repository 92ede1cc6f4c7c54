"""Third-party clients, unchanged, as black boxes against the virtual module on a pseudo-terminal.

If real client libraries written against real sensors work end to end, the virtual module speaks the
protocol as the hardware does (reply lengths, addresses, packet sizes, the ready byte after a reset):
- pyfingerprint 1.5 checks checksums and reads replies frame by frame;
- adafruit-circuitpython-fingerprint 2.2.25 reads fixed-length replies, ignores checksums, accepts only
  address FFFFFFFF and reads the 0x55 after a soft reset.
"""
from __future__ import annotations

import gc

import cv2
import numpy as np
import pytest
import serial

from drivers.fingerprint import protocol as P
from simulator.fingerprint import VirtualModule, features, images

pytestmark = pytest.mark.timeout(180)

pyfingerprint = pytest.importorskip("pyfingerprint.pyfingerprint", reason="pyfingerprint (dev extra) not installed")
adafruit_fingerprint = pytest.importorskip(
    "adafruit_fingerprint", reason="adafruit-circuitpython-fingerprint + Adafruit-Blinka (dev extra) not installed"
)
PyFingerprint = pyfingerprint.PyFingerprint
Adafruit = adafruit_fingerprint.Adafruit_Fingerprint


def finger(f: int, impression: int = 0) -> np.ndarray:
    return images.synthetic_print(f, impression, seed=21)


def sensor_grey(module: VirtualModule, image: np.ndarray) -> np.ndarray:
    levels = images.sensor_levels(image, module.model.image_width, module.model.image_height)
    return images.levels_to_grey(levels)


@pytest.fixture
def module_factory(tmp_path):
    made: list[VirtualModule] = []

    def make(profile: str = "zfm", source="none", **options) -> VirtualModule:
        module = VirtualModule(profile, source, seed=9, **options).start()
        made.append(module)
        return module

    yield make
    gc.collect()  # pyfingerprint closes its port in __del__
    for module in made:
        module.close()
        assert not module.errors, module.errors


# --------------------------------------------------------------------------------------------------
# pyfingerprint
# --------------------------------------------------------------------------------------------------


def test_pyfingerprint_whole_api(module_factory, tmp_path):
    module = module_factory("zfm", "none", library_path=tmp_path / "library.json")
    f = PyFingerprint(module.port, 57600, 0xFFFFFFFF, 0)
    assert f.verifyPassword() is True
    status, system_id, capacity, level, address, packet_code, baud_n = f.getSystemParameters()
    assert (system_id, capacity, level, address, packet_code, baud_n) == (9, 1000, 3, 0xFFFFFFFF, 2, 6)
    assert status & 0x4  # password verified
    assert (f.getStorageCapacity(), f.getSecurityLevel(), f.getMaxPacketSize(), f.getBaudRate()) == (1000, 3, 128, 57600)
    assert f.getTemplateCount() == 0 and f.getTemplateIndex(0) == [False] * 256

    assert f.readImage() is False  # no finger on the sensor
    module.place(finger(0, 0))
    assert f.readImage() is True
    bmp = tmp_path / "finger.bmp"
    f.downloadImage(str(bmp))  # UpImage, 288 packets, written by pyfingerprint as a 256x288 BMP
    assert np.array_equal(cv2.imread(str(bmp), cv2.IMREAD_GRAYSCALE), sensor_grey(module, finger(0, 0)))

    assert f.convertImage(0x01) is True
    module.place(finger(0, 1))
    f.readImage()
    assert f.convertImage(0x02) is True
    assert f.compareCharacteristics() >= features.MATCH_THRESHOLDS[3]
    assert f.createTemplate() is True
    assert f.storeTemplate() == 0  # the first free position
    assert f.storeTemplate(5, 0x02) == 5
    assert f.getTemplateCount() == 2
    index = f.getTemplateIndex(0)
    assert [i for i, used in enumerate(index) if used] == [0, 5]

    characteristics = f.downloadCharacteristics(0x01)
    assert len(characteristics) == 512
    assert f.uploadCharacteristics(0x02, characteristics) is True  # DownChar, then read back and compared
    module.place(finger(0, 2))
    f.readImage()
    f.convertImage(0x01)
    position, score = f.searchTemplate()
    assert position in (0, 5) and score >= features.MATCH_THRESHOLDS[3]
    assert f.loadTemplate(5, 0x02) is True
    assert f.downloadCharacteristics(0x02) == characteristics

    module.place(finger(7, 0))  # somebody else
    f.readImage()
    f.convertImage(0x01)
    assert f.searchTemplate() == (-1, -1)
    assert f.compareCharacteristics() == 0  # pyfingerprint reports "no match" as 0

    assert f.deleteTemplate(5) is True and f.getTemplateCount() == 1
    assert f.clearDatabase() is True and f.getTemplateCount() == 0
    numbers = {f.generateRandomNumber() for _ in range(3)}
    assert len(numbers) == 3

    module.place("messy")
    f.readImage()
    with pytest.raises(Exception, match="too messy"):
        f.convertImage(0x01)

    f.setSecurityLevel(4)
    assert f.getSecurityLevel() == 4
    f.setMaxPacketSize(64)
    assert f.getMaxPacketSize() == 64
    module.place(finger(1, 0))
    f.readImage()
    f.downloadImage(str(bmp))  # now 576 data packets of 64 bytes
    assert np.array_equal(cv2.imread(str(bmp), cv2.IMREAD_GRAYSCALE), sensor_grey(module, finger(1, 0)))

    assert f.setPassword(0x00C0FFEE) is True
    assert f.setAddress(0x1234ABCD) is True
    del f
    gc.collect()

    wrong = PyFingerprint(module.port, 57600, 0x1234ABCD, 0x11111111)
    assert wrong.verifyPassword() is False
    del wrong
    stale_address = PyFingerprint(module.port, 57600, 0xFFFFFFFF, 0x00C0FFEE)
    with pytest.raises(Exception, match="address is wrong"):
        stale_address.verifyPassword()
    del stale_address
    gc.collect()

    module.unplug()
    module.replug()  # a power cycle: the verification is gone, the settings stay in flash
    g = PyFingerprint(module.port, 57600, 0x1234ABCD, 0x00C0FFEE)
    with pytest.raises(Exception, match="0x21"):  # "must verify password first"
        g.getTemplateCount()
    assert g.verifyPassword() is True
    assert g.getSystemParameters()[3:6] == (4, 0x1234ABCD, 1)
    g.setBaudRate(115200)
    del g
    gc.collect()
    h = PyFingerprint(module.port, 115200, 0x1234ABCD, 0x00C0FFEE)  # the module now runs at 115200
    assert h.verifyPassword() is True and h.getBaudRate() == 115200
    del h


# --------------------------------------------------------------------------------------------------
# adafruit-circuitpython-fingerprint
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def adafruit_on(module_factory):
    uarts: list[serial.Serial] = []

    def connect(module: VirtualModule, baudrate: int = 57600) -> Adafruit:
        uart = serial.Serial(module.port, baudrate=baudrate, timeout=1)
        uarts.append(uart)
        return Adafruit(uart)  # verifies the password and reads the system parameters

    yield connect
    for uart in uarts:
        uart.close()


@pytest.mark.parametrize("profile", ["zfm", "r503"])
def test_adafruit_whole_api(module_factory, adafruit_on, profile):
    af = adafruit_fingerprint
    module = module_factory(profile, "none")
    model = module.model
    f = adafruit_on(module)
    assert (f.library_size, f.system_id, f.security_level, f.data_packet_size, f.baudrate) == (
        model.library_capacity, 9, 3, 2, 6)
    assert f.device_address == b"\xff\xff\xff\xff"

    assert f.get_image() == af.NOFINGER
    module.place(finger(2, 0))
    assert f.get_image() == af.OK
    assert f.image_2_tz(1) == af.OK
    module.place(finger(2, 1))
    assert f.get_image() == af.OK and f.image_2_tz(2) == af.OK
    assert f.compare_templates() == af.OK and f.confidence[0] >= features.MATCH_THRESHOLDS[3]
    assert f.create_model() == af.OK
    assert f.store_model(3) == af.OK
    assert f.count_templates() == af.OK and f.template_count == 1
    assert f.read_templates() == af.OK and f.templates == [3]
    assert f.finger_search() == af.OK and f.finger_id == 3 and f.confidence >= features.MATCH_THRESHOLDS[3]
    assert f.finger_fast_search() == af.OK and f.finger_id == 3

    template = f.get_fpdata("char", 1)
    assert len(template) == model.template_size
    assert f.send_fpdata(template, "char", 2) is True
    assert f.compare_templates() == af.OK
    assert f.load_model(3, 2) == af.OK
    assert bytes(f.get_fpdata("char", 2)) == bytes(template)

    packed = f.get_fpdata("image")  # UpImage read as fixed-size frames
    expected = P.pack_nibbles(images.sensor_levels(finger(2, 1), model.image_width, model.image_height))
    assert bytes(packed) == expected
    other = P.pack_nibbles(images.sensor_levels(finger(4, 0), model.image_width, model.image_height))
    assert f.send_fpdata(list(other), "image") is True  # DownImage
    assert bytes(f.get_fpdata("image")) == other

    module.place(finger(5, 0))  # not enrolled (and, for this seed, far from finger 2 on both sensors)
    f.get_image()
    f.image_2_tz(1)
    assert f.finger_search() == af.NOTFOUND
    assert f.compare_templates() == af.NOMATCH
    module.place("messy")
    f.get_image()
    assert f.image_2_tz(1) == af.IMAGEMESS

    assert f.delete_model(3) == af.OK and f.count_templates() == af.OK and f.template_count == 0
    assert f.store_model(9) == af.OK and f.empty_library() == af.OK
    assert f.count_templates() == af.OK and f.template_count == 0

    assert f.set_sysparam(5, 4) == af.OK and f.security_level == 4
    assert f.read_sysparam() == af.OK and f.security_level == 4
    assert f.set_sysparam(6, 1) == af.OK  # 64-byte data packets from now on
    module.place(finger(2, 0))
    f.get_image()
    assert len(f.get_fpdata("image")) == model.image_bytes

    if profile == "r503":
        assert f.set_led(color=2, mode=1, speed=0x40, cycles=0) == af.OK and module.led == (1, 0x40, 2, 0)
        f.soft_reset()  # acknowledged, then the ready byte 0x55
        assert f.read_sysparam() == af.OK and not f.status_register & 0x8  # the image buffer was cleared
        with pytest.raises(RuntimeError):
            f.check_module()  # 0x53 is not an R503 command: it answers 0xFC
    else:
        assert f.check_module() is True  # 0x53 -> 0x55
        assert f.set_led() == 0x01  # no aura LED on a ZFM: "error receiving the package"
        f.soft_reset()  # not a ZFM command: refused, and adafruit does not wait for a ready byte
        assert f.read_sysparam() == af.OK


def test_adafruit_meets_the_documented_limits(module_factory, adafruit_on):
    """What the library cannot do, it fails at as the notes say: a typed RuntimeError, not a hang."""
    locked = module_factory("zfm", "none", password=0x1234)
    with pytest.raises(RuntimeError, match="Failed to find sensor"):
        adafruit_on(locked)
    readdressed = module_factory("zfm", "none", address=0x0A0B0C0D)
    with pytest.raises(RuntimeError, match="Incorrect address"):
        adafruit_on(readdressed)
    module = module_factory("zfm", "none")
    f = adafruit_on(module)
    assert f.set_sysparam(4, 12) == adafruit_fingerprint.OK  # the module moves to 115200 ...
    with pytest.raises(RuntimeError, match="Failed to read"):
        f.count_templates()  # ... the library does not follow: silence at 57600
    f._uart.baudrate = 115200
    assert f.count_templates() == adafruit_fingerprint.OK
