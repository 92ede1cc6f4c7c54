"""Finger minutiae records: ISO/IEC 19794-2:2005 and ANSI INCITS 378-2004, read and write.

Both records are big-endian and share the layout below; they differ only in the header and in the
angle unit:

    ISO  header (24 bytes): "FMR\\0" " 20\\0" | record length (4) | 4-bit certification flag +
         12-bit capture device id (2) | width (2) | height (2) | x, y resolution (2 + 2) |
         finger views (1) | reserved (1)
    ANSI header (26 bytes, or 30 with the long length): "FMR\\0" " 20\\0" | record length (2; or
         0000 followed by 4 bytes when it exceeds 65,535) | CBEFF product owner (2) + type (2) |
         4-bit compliance + 12-bit equipment id (2) | width | height | x, y resolution |
         finger views (1) | reserved (1)
    per view: finger position (1) | view number (4 bits) + impression type (4 bits) |
              finger quality 0-100 (1) | minutia count (1) | minutiae, 6 bytes each |
              extended data block length (2) + that many bytes
    per minutia: type (2 bits: 01 ridge ending, 10 bifurcation, 00 other) + x (14 bits) |
                 2 reserved bits + y (14 bits) | angle (1) | quality 0-100 (1; 0 = not reported)

The extended data block is a sequence of areas: type code (2) | data length (2) | data. biogate
writes one vendor-defined area, RIDGE_FIELD_AREA, holding the template's ridge field (what its
matcher compares besides the minutiae): ridge period in 1/256 pixel (2) | block side in pixels (1) |
block rows (2) | block columns (2) | one orientation code per block, row by row (template.FLOW_*
codes: whole degrees 0-179 counter-clockwise, 255 off the print). Other areas (ridge counts, cores
and deltas, other vendors' data) are skipped on reading, as is a block that is not a sequence of areas.

Resolution is in pixels per centimetre (500 ppi = 197). The angle byte counts units of 360/256
degrees in ISO and of 2 degrees (0-179) in ANSI, counter-clockwise from the x axis; both are
rounded to the nearest unit on writing. A `FingerTemplate` is one finger view; reading a record with
several views returns the first (or the one asked for). A resolution of 0 ("not reported", which
some extractors write) is read as 500 ppi.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from edge.biometrics.finger.template import (
    BIFURCATION,
    ENDING,
    FLOW_BLOCK,
    FLOW_CODES,
    FLOW_NONE,
    OTHER,
    FingerTemplate,
)
from edge.errors import InputError

# The storage and exchange name of an ISO/IEC 19794-2:2005 record (templates carry it in their metadata).
FINGER_TEMPLATE_FORMAT = "iso19794-2:2005"
MAGIC = b"FMR\x00"
VERSION = b" 20\x00"
ISO_HEADER = 24
ANSI_HEADER = 26
VIEW_HEADER = 4
MINUTIA_BYTES = 6
MAX_COORD = (1 << 14) - 1
MAX_MINUTIAE_PER_VIEW = 255
ISO_ANGLE_UNIT = 2 * np.pi / 256
ANSI_ANGLE_UNIT = 2 * np.pi / 180
DEFAULT_DPI = 500
CM_PER_INCH = 2.54
RIDGE_FIELD_AREA = 0xB10F     # vendor-defined extended data type code (0x0001, 0x0002 are the standard ones)
AREA_HEADER = 4
RIDGE_FIELD_HEADER = 7
PERIOD_UNIT = 1 / 256         # pixels per unit of the stored ridge period
MAX_EXTENDED = 0xFFFF

# type bits <-> FingerTemplate kind; the fourth code (11) is reserved and refused on reading
_KIND_TO_BITS = {OTHER: 0, ENDING: 1, BIFURCATION: 2}
_BITS_TO_KIND = {0: OTHER, 1: ENDING, 2: BIFURCATION}


def _bad(message: str) -> InputError:
    return InputError(f"malformed finger minutiae record: {message}", code="input.finger_template")


def dpi_to_ppcm(dpi: int) -> int:
    return int(round(dpi / CM_PER_INCH))


def ppcm_to_dpi(ppcm: int) -> int:
    return DEFAULT_DPI if ppcm == 0 else int(round(ppcm * CM_PER_INCH))


@dataclass(frozen=True)
class _Format:
    name: str
    angle_unit: float
    angle_codes: int          # number of valid angle codes (ISO 256, ANSI 180)


_ISO = _Format("ISO/IEC 19794-2:2005", ISO_ANGLE_UNIT, 256)
_ANSI = _Format("ANSI INCITS 378-2004", ANSI_ANGLE_UNIT, 180)


# writing ----------------------------------------------------------------------------------------

def _check_template(t: FingerTemplate) -> None:
    if not isinstance(t, FingerTemplate):
        raise InputError(f"expected a FingerTemplate, got {type(t).__name__}", code="input.finger_template")
    if t.count > MAX_MINUTIAE_PER_VIEW:
        raise InputError(f"a record view holds at most {MAX_MINUTIAE_PER_VIEW} minutiae, template has {t.count}",
                         code="input.finger_template")
    if not (0 < t.width <= 0xFFFF and 0 < t.height <= 0xFFFF):
        raise InputError(f"image size {t.width}x{t.height} does not fit the record", code="input.finger_template")
    if t.count and (t.x.min() < 0 or t.y.min() < 0 or t.x.max() > MAX_COORD or t.y.max() > MAX_COORD):
        raise InputError("minutia coordinates outside 0..16383", code="input.finger_template")


def _view_bytes(t: FingerTemplate, fmt: _Format, finger_position: int, impression_type: int) -> bytes:
    codes = np.rint(t.angle.astype(np.float64) / fmt.angle_unit).astype(np.int64) % fmt.angle_codes
    kind_bits = np.array([_KIND_TO_BITS.get(int(k), 0) for k in t.kind], dtype=np.int64)
    quality = np.clip(t.minutia_quality.astype(np.int64), 0, 100)
    out = bytearray(struct.pack(">BBBB", finger_position, impression_type & 0x0F,
                                int(np.clip(t.quality, 0, 100)), t.count))
    for x, y, a, k, q in zip(t.x.tolist(), t.y.tolist(), codes.tolist(), kind_bits.tolist(), quality.tolist()):
        out += struct.pack(">HHBB", (k << 14) | x, y, a, q)
    extended = _ridge_field_area(t)
    out += struct.pack(">H", len(extended)) + extended
    return bytes(out)


def _ridge_field_area(t: FingerTemplate) -> bytes:
    """The RIDGE_FIELD_AREA of the template, or nothing when it has no ridge field (or one too large
    for the 64 KiB extended data block, which only images far beyond any sensor's would give)."""
    if t.flow is None or t.ridge_period <= 0:
        return b""
    rows, cols = t.flow.shape
    size = AREA_HEADER + RIDGE_FIELD_HEADER + rows * cols
    period = int(round(t.ridge_period / PERIOD_UNIT))
    if size > MAX_EXTENDED or not 0 < period <= 0xFFFF:
        return b""
    return (struct.pack(">HHHBHH", RIDGE_FIELD_AREA, size - AREA_HEADER, period, FLOW_BLOCK, rows, cols)
            + np.ascontiguousarray(t.flow, dtype=np.uint8).tobytes())


def encode_iso(t: FingerTemplate, finger_position: int = 0, impression_type: int = 0,
               device_id: int = 0) -> bytes:
    """ISO/IEC 19794-2:2005 record of one finger view."""
    _check_template(t)
    view = _view_bytes(t, _ISO, finger_position, impression_type)
    length = ISO_HEADER + len(view)
    ppcm = dpi_to_ppcm(t.dpi)
    header = MAGIC + VERSION + struct.pack(">IHHHHHBB", length, device_id & 0x0FFF, t.width, t.height,
                                           ppcm, ppcm, 1, 0)
    return header + view


def encode_ansi(t: FingerTemplate, finger_position: int = 0, impression_type: int = 0,
                product_owner: int = 0, product_type: int = 0, equipment_id: int = 0) -> bytes:
    """ANSI INCITS 378-2004 record of one finger view (2-byte length, or 0000 + 4 bytes when longer)."""
    _check_template(t)
    view = _view_bytes(t, _ANSI, finger_position, impression_type)
    ppcm = dpi_to_ppcm(t.dpi)
    rest = struct.pack(">HHHHHHHBB", product_owner, product_type, equipment_id & 0x0FFF, t.width, t.height,
                       ppcm, ppcm, 1, 0) + view
    length = len(MAGIC + VERSION) + 2 + len(rest)
    if length <= 0xFFFF:
        return MAGIC + VERSION + struct.pack(">H", length) + rest
    return MAGIC + VERSION + struct.pack(">HI", 0, length + 4) + rest


# reading ----------------------------------------------------------------------------------------

def _read_views(data: bytes, offset: int, n_views: int, width: int, height: int, dpi: int,
                fmt: _Format, view: int) -> FingerTemplate:
    chosen: FingerTemplate | None = None
    for v in range(n_views):
        if offset + VIEW_HEADER > len(data):
            raise _bad(f"finger view {v} header runs past the end of the record")
        _position, _view_impression, finger_quality, count = struct.unpack_from(">BBBB", data, offset)
        offset += VIEW_HEADER
        if finger_quality > 100:
            raise _bad(f"finger view {v} quality {finger_quality} outside 0-100")
        end = offset + count * MINUTIA_BYTES
        if end + 2 > len(data):
            raise _bad(f"finger view {v} declares {count} minutiae but the record ends before them")
        raw = np.frombuffer(data, dtype=">u2", count=count * 3, offset=offset).reshape(count, 3)
        offset = end
        (ext_len,) = struct.unpack_from(">H", data, offset)
        extended = data[offset + 2:offset + 2 + ext_len]
        offset += 2 + ext_len
        if offset > len(data):
            raise _bad(f"finger view {v} extended data ({ext_len} bytes) runs past the end of the record")
        if v != view:
            continue
        first = raw[:, 0].astype(np.int64)
        type_bits = first >> 14
        x = first & MAX_COORD
        y = raw[:, 1].astype(np.int64) & MAX_COORD
        angle = raw[:, 2].astype(np.int64) >> 8
        quality = raw[:, 2].astype(np.int64) & 0xFF
        if np.any(type_bits == 3):
            raise _bad(f"minutia {int(np.argmax(type_bits == 3))} has the reserved type code 11")
        if np.any(angle >= fmt.angle_codes):
            raise _bad(f"minutia {int(np.argmax(angle >= fmt.angle_codes))} angle code "
                       f"{int(angle.max())} exceeds {fmt.angle_codes - 1} ({fmt.name})")
        if np.any(quality > 100):
            raise _bad(f"minutia {int(np.argmax(quality > 100))} quality {int(quality.max())} outside 0-100")
        if width and np.any(x >= width):
            raise _bad(f"minutia {int(np.argmax(x >= width))} x = {int(x.max())} outside the {width}-pixel image")
        if height and np.any(y >= height):
            raise _bad(f"minutia {int(np.argmax(y >= height))} y = {int(y.max())} outside the {height}-pixel image")
        kinds = np.array([_BITS_TO_KIND[int(b)] for b in type_bits], dtype=np.uint8)
        period, flow = _read_ridge_field(extended, width, height)
        chosen = FingerTemplate(x, y, angle * fmt.angle_unit, kinds, quality, width, height, dpi, int(finger_quality),
                                ridge_period=period, flow=flow)
    if offset != len(data):
        raise _bad(f"record length {len(data)} bytes but its views end at byte {offset}")
    if chosen is None:
        raise _bad(f"finger view {view} requested but the record has {n_views}")
    return chosen


def _read_ridge_field(extended: bytes, width: int, height: int) -> tuple[float, np.ndarray | None]:
    """(ridge period, flow) from the view's RIDGE_FIELD_AREA, or (0, None) when it has none."""
    at = 0
    while at + AREA_HEADER <= len(extended):
        code, length = struct.unpack_from(">HH", extended, at)
        body = extended[at + AREA_HEADER:at + AREA_HEADER + length]
        if len(body) < length:
            break  # not a sequence of areas (some writers fill the block their own way): nothing to read
        at += AREA_HEADER + length
        if code != RIDGE_FIELD_AREA:
            continue
        if length < RIDGE_FIELD_HEADER:
            raise _bad(f"ridge field area of {length} bytes is shorter than its {RIDGE_FIELD_HEADER}-byte header")
        period, block, rows, cols = struct.unpack_from(">HBHH", body, 0)
        if block != FLOW_BLOCK:
            raise _bad(f"ridge field blocks of {block} px, only {FLOW_BLOCK} px are read")
        if length != RIDGE_FIELD_HEADER + rows * cols:
            raise _bad(f"ridge field area of {length} bytes does not hold {rows} x {cols} blocks")
        if rows * block > height or cols * block > width:
            raise _bad(f"ridge field of {rows} x {cols} blocks exceeds the {width}x{height} image")
        if period == 0:
            raise _bad("ridge field with a zero ridge period")
        flow = np.frombuffer(body, dtype=np.uint8, count=rows * cols, offset=RIDGE_FIELD_HEADER).reshape(rows, cols)
        if np.any((flow >= FLOW_CODES) & (flow != FLOW_NONE)):
            raise _bad(f"ridge field orientation code {int(flow[flow != FLOW_NONE].max())} exceeds {FLOW_CODES - 1}")
        return period * PERIOD_UNIT, flow.copy()
    return 0.0, None


def _check_start(data: bytes, minimum: int) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"a minutiae record must be bytes, got {type(data).__name__}", code="input.finger_template")
    data = bytes(data)
    if len(data) < 8 or data[:4] != MAGIC:
        raise _bad("it does not start with the format identifier 'FMR\\0'")
    if data[4:8] != VERSION:
        raise _bad(f"version {data[4:8]!r} is not ' 20\\0'")
    if len(data) < minimum:
        raise _bad(f"{len(data)} bytes is shorter than the {minimum}-byte header")
    return data


def _check_dims(width: int, height: int, xres: int, yres: int, n_views: int) -> None:
    if width == 0 or height == 0:
        raise _bad(f"image size {width}x{height} has a zero side")
    if xres != yres:
        raise _bad(f"different x and y resolutions ({xres} and {yres} px/cm) are not supported")
    if n_views == 0:
        raise _bad("it holds no finger view")


def decode_iso(data: bytes, view: int = 0) -> FingerTemplate:
    """Read an ISO/IEC 19794-2:2005 record; InputError (input.finger_template) says what is malformed."""
    data = _check_start(data, ISO_HEADER)
    length, device, width, height, xres, yres, n_views, _reserved = struct.unpack_from(">IHHHHHBB", data, 8)
    if length != len(data):
        raise _bad(f"header says {length} bytes, record has {len(data)}")
    _check_dims(width, height, xres, yres, n_views)
    return _read_views(data, ISO_HEADER, n_views, width, height, ppcm_to_dpi(xres), _ISO, view)


def decode_ansi(data: bytes, view: int = 0) -> FingerTemplate:
    """Read an ANSI INCITS 378-2004 record (2-byte length, or 0000 + 4-byte length)."""
    data = _check_start(data, ANSI_HEADER)
    (short_length,) = struct.unpack_from(">H", data, 8)
    offset = 10
    if short_length == 0:
        if len(data) < ANSI_HEADER + 4:
            raise _bad(f"{len(data)} bytes is shorter than the 30-byte long-length header")
        (length,) = struct.unpack_from(">I", data, 10)
        offset = 14
    else:
        length = short_length
    if length != len(data):
        raise _bad(f"header says {length} bytes, record has {len(data)}")
    _owner, _ptype, _equipment, width, height, xres, yres, n_views, _reserved = struct.unpack_from(
        ">HHHHHHHBB", data, offset)
    _check_dims(width, height, xres, yres, n_views)
    return _read_views(data, offset + 16, n_views, width, height, ppcm_to_dpi(xres), _ANSI, view)
