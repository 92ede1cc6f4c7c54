"""ISO/IEC 19794-2:2005 and ANSI INCITS 378-2004 records: round trips, units, malformed records."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.biometrics.finger import FingerTemplate, decode_ansi, decode_iso, encode_ansi, encode_iso
from edge.biometrics.finger.iso import dpi_to_ppcm
from edge.errors import InputError

ISO_STEP = 2 * np.pi / 256
ANSI_STEP = 2 * np.pi / 180


def _template(n=5, width=300, height=400, dpi=500, seed=0) -> FingerTemplate:
    rng = np.random.default_rng(seed)
    return FingerTemplate(rng.integers(0, width, n), rng.integers(0, height, n), rng.uniform(0, 2 * np.pi, n),
                          rng.integers(0, 3, n), rng.integers(0, 101, n), width, height, dpi, quality=73)


@st.composite
def templates(draw):
    width = draw(st.integers(1, 2000))
    height = draw(st.integers(1, 2000))
    n = draw(st.integers(0, 255))
    xs = draw(st.lists(st.integers(0, width - 1), min_size=n, max_size=n))
    ys = draw(st.lists(st.integers(0, height - 1), min_size=n, max_size=n))
    angles = draw(st.lists(st.floats(0, 2 * np.pi, exclude_max=True), min_size=n, max_size=n))
    kinds = draw(st.lists(st.sampled_from([0, 1, 2]), min_size=n, max_size=n))
    quality = draw(st.lists(st.integers(0, 100), min_size=n, max_size=n))
    dpi = draw(st.sampled_from([250, 300, 500, 1000]))
    return FingerTemplate(xs, ys, angles, kinds, quality, width, height, dpi, draw(st.integers(0, 100)))


def _same(a: FingerTemplate, b: FingerTemplate, angle_step: float) -> bool:
    return (a.same_minutiae(b, angle_tol=angle_step / 2) and np.array_equal(a.minutia_quality, b.minutia_quality)
            and (a.width, a.height, a.quality) == (b.width, b.height, b.quality))


@settings(max_examples=60, deadline=None)
@given(templates())
def test_iso_round_trip(t):
    back = decode_iso(encode_iso(t))
    assert _same(t, back, ISO_STEP)
    assert back.dpi == round(dpi_to_ppcm(t.dpi) * 2.54)
    assert decode_iso(encode_iso(back)).same_minutiae(back)  # a decoded record re-encodes exactly


@settings(max_examples=60, deadline=None)
@given(templates())
def test_ansi_round_trip(t):
    back = decode_ansi(encode_ansi(t))
    assert _same(t, back, ANSI_STEP)
    assert decode_ansi(encode_ansi(back)).same_minutiae(back)


def test_iso_header_fields_and_units():
    t = _template(n=3, width=256, height=288)
    data = encode_iso(t, finger_position=2)
    assert data[:8] == b"FMR\x00 20\x00"
    length, _dev, width, height, xres, yres, views, _ = struct.unpack_from(">IHHHHHBB", data, 8)
    assert (length, width, height, xres, yres, views) == (len(data), 256, 288, 197, 197, 1)
    assert len(data) == 24 + 4 + 3 * 6 + 2
    assert data[24] == 2 and data[26] == 73 and data[27] == 3  # finger position, quality, count
    x0 = struct.unpack_from(">H", data, 28)[0]
    assert x0 & 0x3FFF == t.x[0] and x0 >> 14 == {0: 0, 1: 1, 2: 2}[int(t.kind[0])]
    assert data[28 + 4] == round(t.angle[0] / ISO_STEP) % 256  # angle in 360/256-degree units


def test_iso_angle_unit_exact_values():
    t = FingerTemplate([10, 20], [10, 20], [np.pi / 2, np.pi], [1, 2], [50, 60], 100, 100)
    iso = encode_iso(t)
    ansi = encode_ansi(t)
    assert iso[28 + 4] == 64 and iso[28 + 6 + 4] == 128     # 90 and 180 degrees in 1.40625-degree units
    assert ansi[30 + 4] == 45 and ansi[30 + 6 + 4] == 90    # ... and in 2-degree units
    assert iso[28 + 5] == 50 and ansi[30 + 5] == 50          # minutia quality 0-100 as is


def test_ansi_header_short_and_long_length():
    t = _template(n=4)
    data = encode_ansi(t)
    assert len(data) == 26 + 4 + 4 * 6 + 2
    assert struct.unpack_from(">H", data, 8)[0] == len(data)
    assert struct.unpack_from(">H", data, 16)[0] == 300 and struct.unpack_from(">H", data, 20)[0] == 197
    # the long form: 0000 then a 4-byte length; readers must accept it
    long_form = data[:8] + struct.pack(">HI", 0, len(data) + 4) + data[10:]
    assert decode_ansi(long_form).same_minutiae(decode_ansi(data))


def test_multiple_views_and_extended_data_are_read():
    t = _template(n=3)
    one = encode_iso(t)
    view = one[24:-2] + struct.pack(">H", 5) + b"\x01\x02\x03\x04\x05"  # a view with 5 bytes of extended data
    two = one[:8] + struct.pack(">I", 24 + 2 * len(view)) + one[12:22] + bytes([2, 0]) + view + view
    assert decode_iso(two, view=1).same_minutiae(decode_iso(one))
    with pytest.raises(InputError, match="view 2 requested"):
        decode_iso(two, view=2)


def test_resolution_zero_reads_as_500_ppi():
    data = bytearray(encode_iso(_template()))
    data[18:22] = b"\x00\x00\x00\x00"
    assert decode_iso(bytes(data)).dpi == 500


def _mutate(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value):]


GOOD = encode_iso(_template(n=4))


@pytest.mark.parametrize("data,needle", [
    (b"", "does not start with"),
    (b"XMR\x00 20\x00" + GOOD[8:], "does not start with"),
    (GOOD[:4] + b" 30\x00" + GOOD[8:], "version"),
    (GOOD[:20], "shorter than the 24-byte header"),
    (GOOD[:-1], "header says"),
    (GOOD + b"\x00", "header says"),
    (_mutate(GOOD, 14, b"\x00\x00"), "zero side"),
    (_mutate(GOOD, 18, b"\x00\xc5\x00\x64"), "different x and y resolutions"),
    (_mutate(GOOD, 22, b"\x00"), "no finger view"),
    (_mutate(GOOD, 27, b"\x09"), "declares 9 minutiae"),
    (_mutate(GOOD, 26, b"\xc8"), "quality 200"),
    (_mutate(GOOD, 28, b"\xc0\x05"), "reserved type code"),
    (_mutate(GOOD, 28, b"\x4f\xff"), "outside the 300-pixel image"),
    (_mutate(GOOD, 28 + 5, b"\x65"), "quality 101"),
    (_mutate(GOOD, len(GOOD) - 2, b"\x00\x09"), "extended data"),
])
def test_malformed_iso_records(data, needle):
    with pytest.raises(InputError, match=needle) as err:
        decode_iso(data)
    assert err.value.code == "input.finger_template"


def test_malformed_ansi_records():
    good = encode_ansi(_template(n=2))
    with pytest.raises(InputError, match="angle code 200 exceeds 179"):
        decode_ansi(_mutate(good, 30 + 4, b"\xc8"))
    with pytest.raises(InputError, match="header says"):
        decode_ansi(good[:-2])
    with pytest.raises(InputError, match="long-length header"):
        decode_ansi(good[:8] + b"\x00\x00" + good[10:26])
    with pytest.raises(InputError, match="must be bytes"):
        decode_ansi("FMR")  # type: ignore[arg-type]


def test_encode_refuses_what_the_record_cannot_hold():
    with pytest.raises(InputError, match="at most 255"):
        encode_iso(_template(n=256))
    with pytest.raises(InputError, match="expected a FingerTemplate"):
        encode_ansi(b"not a template")  # type: ignore[arg-type]


def _with_ridge_field(t: FingerTemplate, seed: int = 3) -> FingerTemplate:
    rng = np.random.default_rng(seed)
    flow = rng.integers(0, 180, (t.height // 16, t.width // 16)).astype(np.uint8)
    flow[0, :] = 255  # a row off the print
    return FingerTemplate(t.x, t.y, t.angle, t.kind, t.minutia_quality, t.width, t.height, t.dpi, t.quality,
                          ridge_period=9.3, flow=flow)


@pytest.mark.parametrize("encode,decode", [(encode_iso, decode_iso), (encode_ansi, decode_ansi)])
def test_ridge_field_round_trips_in_the_extended_data(encode, decode):
    t = _with_ridge_field(_template(n=6, width=256, height=288))
    back = decode(encode(t))
    assert back.same_minutiae(t, angle_tol=ISO_STEP if decode is decode_iso else ANSI_STEP)
    assert np.array_equal(back.flow, t.flow)
    assert abs(back.ridge_period - 9.3) <= 1 / 512
    plain = decode(encode(_template(n=6, width=256, height=288)))
    assert plain.flow is None and plain.ridge_period == 0.0


def test_ridge_field_area_layout():
    t = _with_ridge_field(_template(n=2, width=64, height=48))
    data = encode_iso(t)
    ext = 24 + 4 + 2 * 6
    (block_len,) = struct.unpack_from(">H", data, ext)
    code, length, period, block, rows, cols = struct.unpack_from(">HHHBHH", data, ext + 2)
    assert (code, block, rows, cols) == (0xB10F, 16, 3, 4)
    assert length == 7 + 12 and block_len == 4 + length and len(data) == ext + 2 + block_len
    assert period == round(9.3 * 256)
    assert data[ext + 2 + 11:] == t.flow.tobytes()


def test_other_extended_areas_are_skipped():
    t = _with_ridge_field(_template(n=2, width=64, height=48))
    data = encode_iso(t)
    ext = 24 + 4 + 2 * 6
    core_delta = struct.pack(">HH", 0x0002, 3) + b"\x00\x00\x00"  # a standard area before ours
    block = core_delta + data[ext + 2:]
    spliced = data[:ext] + struct.pack(">H", len(block)) + block
    spliced = spliced[:8] + struct.pack(">I", len(spliced)) + spliced[12:]
    assert np.array_equal(decode_iso(spliced).flow, t.flow)


def _ridge_area_mutated(offset_in_area: int, value: bytes) -> bytes:
    data = encode_iso(_with_ridge_field(_template(n=2, width=64, height=48)))
    return _mutate(data, 24 + 4 + 2 * 6 + 2 + offset_in_area, value)


@pytest.mark.parametrize("data,needle", [
    (_ridge_area_mutated(6, b"\x08"), "blocks of 8 px"),
    (_ridge_area_mutated(7, b"\x00\x04"), "does not hold 4 x 4 blocks"),
    (_ridge_area_mutated(4, b"\x00\x00"), "zero ridge period"),
    (_ridge_area_mutated(11, b"\xb4"), "orientation code 180"),
])
def test_malformed_ridge_field_is_refused(data, needle):
    with pytest.raises(InputError, match=needle):
        decode_iso(data)


def test_template_refuses_bad_ridge_fields():
    t = _template(n=2)
    with pytest.raises(ValueError, match="flow codes"):
        FingerTemplate(t.x, t.y, t.angle, t.kind, t.minutia_quality, 64, 48, flow=np.full((3, 4), 200))
    with pytest.raises(ValueError, match="ridge_period"):
        FingerTemplate(t.x, t.y, t.angle, t.kind, t.minutia_quality, 64, 48, ridge_period=-1.0)
