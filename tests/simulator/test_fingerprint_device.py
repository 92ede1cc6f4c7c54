"""The virtual module's device and fault filter without a pseudo-terminal: packets in, frames out.

Time is a hand-driven clock, so download pauses, boot and SoftRst are tested without waiting.
"""
from __future__ import annotations

import numpy as np
import pytest

from drivers.fingerprint import protocol as P
from simulator.fingerprint import images
from simulator.fingerprint.device import FingerprintDevice
from simulator.fingerprint.faults import FaultFilter, FaultPlan, Pause, Restart, Unplug, parse_faults

I = P.Instruction


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def booted(profile: str = "zfm", source="none", **options) -> FingerprintDevice:
    device = FingerprintDevice(profile, source, seed=3, **options)
    device.power_on()
    assert device.tick() == b"\x55"  # booted at once: the ready byte
    return device


def ask(device, instruction: int, params: bytes = b"", address: int = P.DEFAULT_ADDRESS) -> list[bytes]:
    reply = device.receive(P.command(instruction, params, address))
    assert reply is not None
    if reply.after is not None:
        reply.after()  # the frames "went out"
    return reply.frames


def ack(code: int, data: bytes = b"", address: int = P.DEFAULT_ADDRESS) -> bytes:
    return P.encode(P.ack(code, data, address))


def test_unpowered_and_booting_devices_hear_nothing():
    clock = Clock()
    device = FingerprintDevice("zfm", "none", boot_time=0.5, clock=clock)
    assert not device.ready and device.receive(P.command(I.TEMPLATE_NUM)) is None and device.tick() == b""
    device.power_on()
    assert device.receive(P.command(I.TEMPLATE_NUM)) is None and device.tick() == b""  # still booting
    clock.now += 0.5
    assert device.tick() == b"\x55" and device.ready and device.tick() == b""  # the ready byte comes once
    assert ask(device, I.TEMPLATE_NUM) == [ack(0, b"\x00\x00")]
    device.power_off()
    assert device.receive(P.command(I.TEMPLATE_NUM)) is None


def test_acknowledgements_are_byte_exact():
    device = booted()
    # the notes' example: VfyPwd with password 0 is acknowledged with code 00, checksum 000A
    assert ask(device, I.VFY_PWD, bytes(4)) == [bytes.fromhex("EF01FFFFFFFF07000300000A")]
    assert P.decode(ask(device, I.READ_SYS_PARA)[0]).body == bytes.fromhex("0004" "0009" "03E8" "0003" "FFFFFFFF" "0002" "0006")
    assert ask(device, I.SEARCH, b"\x01\x00\x00\x03\xe8") == [ack(0x09, bytes(4))]  # zero-filled fields kept
    assert ask(device, I.GEN_IMG) == [ack(0x02)]
    assert ask(device, 0x7E) == [ack(0x01)]  # no model has it; the ZFM answers 0x01
    frame = P.encode(P.command(I.TEMPLATE_NUM))
    events = P.PacketReader().feed(frame[:-1] + bytes([frame[-1] ^ 1]))
    assert isinstance(events[0], P.BadChecksum)
    assert device.receive(events[0]).frames == [ack(0x01)]  # "error receiving the package"
    assert list(device.commands) == ["VFY_PWD", "READ_SYS_PARA", "SEARCH", "GEN_IMG", "0x7E"]


def test_password_address_and_baud_rate_take_effect_after_the_acknowledgement():
    device = booted(password=0x01020304)
    assert ask(device, I.TEMPLATE_NUM) == [ack(0x21, b"\x00\x00")]
    assert ask(device, I.VFY_PWD, bytes.fromhex("01020304")) == [ack(0)]
    assert ask(device, I.SET_ADDR, bytes.fromhex("CAFEF00D")) == [ack(0, address=0xCAFEF00D)]
    assert ask(device, I.TEMPLATE_NUM) == [ack(0x20, b"\x00\x00", address=0xCAFEF00D)]  # to FFFFFFFF
    reply = device.receive(P.command(I.SET_SYS_PARA, bytes([4, 12]), 0xCAFEF00D))
    assert reply.frames == [ack(0, address=0xCAFEF00D)] and device.baudrate == 57600  # acknowledged at the old rate
    reply.after()
    assert device.baudrate == 115200


def test_image_upload_frames_follow_the_packet_size():
    device = booted()
    print_ = images.synthetic_print(0, 0, seed=3)
    device.place(print_)
    assert ask(device, I.SET_SYS_PARA, bytes([6, 1])) == [ack(0)]  # 64-byte packets
    assert ask(device, I.GEN_IMG) == [ack(0)] and device.captures[-1] == "fixed"
    frames = ask(device, I.UP_IMAGE)
    assert len(frames) == device.frame_count(I.UP_IMAGE) == 1 + 36864 // 64
    packets = [P.decode(f) for f in frames[1:]]
    assert all(p.pid == P.PacketId.DATA and len(p.payload) == 64 for p in packets[:-1])
    assert packets[-1].pid == P.PacketId.END_DATA
    levels = P.unpack_nibbles(b"".join(p.payload for p in packets), 256, 288)
    assert np.array_equal(levels, images.sensor_levels(print_, 256, 288))
    device.lift()
    assert ask(device, I.GEN_IMG) == [ack(0x02)]


def test_downloads_and_the_hosts_pause():
    clock = Clock()
    device = FingerprintDevice("zfm", "none", clock=clock)
    device.power_on()
    device.tick()
    template = bytes(range(256)) * 2
    assert ask(device, I.DOWN_CHAR, b"\x02") == [ack(0)]
    for packet in P.data_packets(template, 128):
        assert device.receive(packet) is None  # data packets are not answered
    assert b"".join(P.decode(f).payload for f in ask(device, I.UP_CHAR, b"\x02")[1:]) == template

    # the host pauses longer than the module waits: the rest of the download is not taken
    ask(device, I.DOWN_CHAR, b"\x02")
    packets = P.data_packets(bytes(512), 128)
    device.receive(packets[0])
    clock.now += device.DOWNLOAD_TIMEOUT + 0.1
    device.tick()
    for packet in packets[1:]:
        device.receive(packet)
    assert b"".join(P.decode(f).payload for f in ask(device, I.UP_CHAR, b"\x02")[1:]) == template


def test_soft_reset_clears_ram_and_sends_the_ready_byte_later():
    clock = Clock()
    device = FingerprintDevice("r503", "synthetic", seed=1, clock=clock)
    device.power_on()
    device.tick()
    assert ask(device, I.GEN_IMG) == [ack(0)]
    assert ask(device, I.SOFT_RESET) == [ack(0)]
    assert not device.ready and device.tick() == b""
    clock.now += device.RESET_DELAY
    assert device.tick() == b"\x55"
    status = int.from_bytes(P.decode(ask(device, I.READ_SYS_PARA)[0]).body[0:2], "big")
    assert not status & 0x8  # the image buffer went with the reset


@pytest.mark.timeout(120)
def test_enrol_store_and_search_without_a_line(tmp_path):
    device = booted(library_path=tmp_path / "flash.json")
    device.place(images.synthetic_print(1, 0, seed=5))
    for buffer in (1, 2):
        assert ask(device, I.GEN_IMG) == [ack(0)]
        assert ask(device, I.IMG2TZ, bytes([buffer])) == [ack(0)]
    assert ask(device, I.REG_MODEL) == [ack(0)]
    assert ask(device, I.STORE, b"\x01\x02\xbc") == [ack(0)]  # page 700
    assert device.templates == [700]
    device.place(images.synthetic_print(1, 1, seed=5))
    ask(device, I.GEN_IMG)
    ask(device, I.IMG2TZ, b"\x01")
    found = P.decode(ask(device, I.SEARCH, b"\x01\x00\x00\x03\xe8")[0])
    assert found.confirmation == 0 and int.from_bytes(found.body[:2], "big") == 700
    assert ask(device, I.STORE, b"\x01\x03\xe8") == [ack(0x0B)]  # page 1000 of 0..999


# -- the fault filter between the device and the line ------------------------------------------------


def filtered(faults, source="none") -> tuple[FingerprintDevice, FaultFilter]:
    device = booted(source=source)
    return device, FaultFilter(device, FaultPlan(parse_faults(faults)))


def test_an_answer_fault_replaces_the_command():
    device, line = filtered([{"kind": "no_finger"}], source="synthetic")
    sent = line.receive(P.command(I.GEN_IMG))
    assert sent.actions == [ack(0x02)] and list(device.captures) == []  # nothing was captured
    assert line.receive(P.command(I.GEN_IMG)).actions == [ack(0)]  # the fault was for one GenImg
    assert list(device.captures)


def test_line_faults_turn_frames_into_line_actions():
    device, line = filtered([{"kind": "drop_packet", "command": "UpImage", "packet": 17},
                             {"kind": "split_packet", "command": "TemplateNum", "pieces": 2, "delay": 0.3},
                             {"kind": "noise", "command": "TemplateNum", "occurrence": 2, "data": "00ef"},
                             {"kind": "unplug", "command": "Match", "replug_after": 0.5},
                             {"kind": "reset", "command": "Empty"}], source="synthetic")
    line.receive(P.command(I.GEN_IMG))
    frames = device.receive(P.command(I.UP_IMAGE)).frames
    sent = line.receive(P.command(I.UP_IMAGE))
    assert sent.actions == frames[:17] + frames[18:]

    good = ack(0, b"\x00\x00")
    assert line.receive(P.command(I.TEMPLATE_NUM)).actions == [good[:7], Pause(0.3), good[7:]]
    assert line.receive(P.command(I.TEMPLATE_NUM)).actions == [b"\x00\xef", good]
    assert line.receive(P.command(I.MATCH)).actions == [Unplug("close", 0.5)]
    assert line.receive(P.command(I.EMPTY)).actions == [Restart()]
    assert [kind for kind, _, _ in line.plan.fired] == ["drop_packet", "split_packet", "noise", "unplug", "reset"]


def test_commands_to_another_address_pass_unfiltered():
    device, line = filtered([{"kind": "confirmation", "command": "TemplateNum", "code": 0x0A}])
    assert line.receive(P.command(I.TEMPLATE_NUM, address=0x1234)).actions == [ack(0x20, b"\x00\x00")]
    assert line.plan.fired == []  # not counted as the fault's TemplateNum
    assert line.receive(P.command(I.TEMPLATE_NUM)).actions == [ack(0x0A, b"\x00\x00")]
