"""The virtual module's own "character file": a ridge-orientation signature computed from the image.

Real modules keep a proprietary (Synochip) minutiae format; nobody outside can produce it, and host-side
matching in biogate works from UpImage anyway. The simulator only needs Img2Tz / RegModel / Match /
Search to behave plausibly: the same finger scores high, another finger low, a blank or smeared image
is refused. So a character file here is a coarse ridge-flow map:

Record (256 bytes, all in the first 256 bytes of a char buffer)::

    0   4  magic b"BGF1"
    4   1  kind (1 = character file from one image)
    5   1  grid rows        6  1  grid columns      7  1  block size in pixels (16)
    8   1  quality 0..100 (share of the image with a clear ridge flow)
    9   2  foreground blocks (big-endian)
    11  5  reserved (0)
    16  rows*cols/2  one nibble per block, row-major, high nibble first:
                     0 = no ridges there, 1..15 = ridge direction bin (12 degrees each, 0..180)
    ... zero padding to 256

A template (RegModel) is the concatenation of the two character files (512 bytes on ZFM/AS608; the
R503's 1536-byte template holds them followed by zeros). Matching takes the best pair of records.

Comparison: the best rigid alignment (rotation -24..24 degrees, shift up to 4 blocks each way) of
the two direction maps, scored by the mean agreement cos(2 * angle difference) over the overlapping
ridge blocks, discounted when the overlap is small, then mapped to the 0..~300 scale real modules
report. Thresholds per security level are in `MATCH_THRESHOLDS`.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import cv2
import numpy as np

MAGIC = b"BGF1"
RECORD_SIZE = 256
BLOCK = 16
DIRECTION_BINS = 15
HEADER = 16
KIND_CHAR_FILE = 1

# Security level (1..5) -> minimum score for a match (Match, Search, RegModel).
MATCH_THRESHOLDS = {1: 30, 2: 40, 3: 50, 4: 65, 5: 80}
MAX_SCORE = 300

# Img2Tz refusals
MIN_FOREGROUND_BLOCKS = 24  # fewer ridge blocks than this: "too few feature points" (0x07)
MIN_MEAN_COHERENCE = 0.30  # ridge flow this unclear on average: "image too messy" (0x06)


class FeatureError(Exception):
    """Img2Tz cannot make a character file; `reason` is "too_few_features" or "image_messy"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DirectionMap:
    """Per-block ridge direction (radians, 0..pi) and a mask of blocks that hold ridges."""

    angle: np.ndarray  # (rows, cols) float
    mask: np.ndarray  # (rows, cols) bool
    quality: int = 0


def direction_map(grey: np.ndarray, block: int = BLOCK) -> tuple[DirectionMap, float]:
    """Block ridge directions of an 8-bit image; returns the map and the mean coherence of its blocks."""
    img = grey.astype(np.float32)
    rows, cols = img.shape[0] // block, img.shape[1] // block
    img = img[: rows * block, : cols * block]
    smooth = cv2.GaussianBlur(img, (0, 0), 1.0)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)

    def block_sum(a: np.ndarray) -> np.ndarray:
        return a.reshape(rows, block, cols, block).sum(axis=(1, 3))

    gxx, gyy, gxy = block_sum(gx * gx), block_sum(gy * gy), block_sum(gx * gy)
    # neighbourhood smoothing of the doubled-angle vectors steadies the directions
    vx = cv2.blur((gxx - gyy).astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)
    vy = cv2.blur((2 * gxy).astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)
    energy = cv2.blur((gxx + gyy).astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)
    coherence = np.hypot(vx, vy) / np.maximum(energy, 1e-6)
    # gradient direction + 90 degrees = ridge direction
    angle = (0.5 * np.arctan2(vy, vx) + math.pi / 2) % math.pi

    blocks = img.reshape(rows, block, cols, block)
    std = blocks.std(axis=(1, 3))
    mean = blocks.mean(axis=(1, 3))
    has_ridges = (std > 12) & (mean < 235)
    mask = has_ridges & (coherence > 0.2)
    mean_coherence = float(coherence[has_ridges].mean()) if has_ridges.any() else 0.0
    quality = int(round(100 * mask.sum() / mask.size))
    return DirectionMap(angle, mask, quality), mean_coherence


def extract(grey: np.ndarray) -> bytes:
    """Character file (RECORD_SIZE bytes) of an 8-bit sensor image; FeatureError when refused."""
    dmap, mean_coherence = direction_map(grey)
    if int(dmap.mask.sum()) < MIN_FOREGROUND_BLOCKS:
        raise FeatureError("too_few_features")
    if mean_coherence < MIN_MEAN_COHERENCE:
        raise FeatureError("image_messy")
    return encode(dmap)


def encode(dmap: DirectionMap) -> bytes:
    rows, cols = dmap.angle.shape
    bins = np.minimum((dmap.angle / math.pi * DIRECTION_BINS).astype(np.int64), DIRECTION_BINS - 1) + 1
    cells = np.where(dmap.mask, bins, 0).astype(np.uint8).reshape(-1)
    if cells.size % 2:
        cells = np.append(cells, 0)
    packed = ((cells[0::2] << 4) | cells[1::2]).astype(np.uint8).tobytes()
    header = MAGIC + struct.pack(">BBBBBH", KIND_CHAR_FILE, rows, cols, BLOCK, dmap.quality, int(dmap.mask.sum()))
    record = header.ljust(HEADER, b"\0") + packed
    if len(record) > RECORD_SIZE:
        raise ValueError(f"grid {rows}x{cols} does not fit a {RECORD_SIZE}-byte record")
    return record.ljust(RECORD_SIZE, b"\0")


def decode(record: bytes) -> DirectionMap | None:
    """The direction map of a record, or None when the bytes are not one of our character files."""
    if len(record) < HEADER or record[:4] != MAGIC or record[4] != KIND_CHAR_FILE:
        return None
    rows, cols, _block, quality = record[5], record[6], record[7], record[8]
    n = rows * cols
    if n == 0 or HEADER + (n + 1) // 2 > len(record):
        return None
    raw = np.frombuffer(record[HEADER : HEADER + (n + 1) // 2], dtype=np.uint8)
    cells = np.empty(raw.size * 2, dtype=np.uint8)
    cells[0::2], cells[1::2] = raw >> 4, raw & 0x0F
    cells = cells[:n].reshape(rows, cols)
    angle = (cells.astype(np.float64) - 0.5) * math.pi / DIRECTION_BINS
    return DirectionMap(angle, cells > 0, quality)


def records(buffer: bytes) -> list[DirectionMap]:
    """Every character file found in a char buffer / template (256-byte slots)."""
    out = []
    for start in range(0, len(buffer) - RECORD_SIZE + 1, RECORD_SIZE):
        dmap = decode(buffer[start : start + RECORD_SIZE])
        if dmap is not None:
            out.append(dmap)
    return out


def combine(first: bytes, second: bytes, size: int) -> bytes:
    """RegModel: a template of `size` bytes holding both character files."""
    return (first[:RECORD_SIZE] + second[:RECORD_SIZE]).ljust(size, b"\0")[:size]


_ROTATIONS = np.radians(np.arange(-24, 25, 6))
_MAX_SHIFT = 4  # blocks, each way
_MIN_OVERLAP = 20
_FULL_OVERLAP = 80


def _channels(dmap: DirectionMap, rotation: float = 0.0) -> np.ndarray:
    """(3, rows, cols): mask, mask*cos(2 angle), mask*sin(2 angle), the map rotated by `rotation`."""
    rows, cols = dmap.mask.shape
    if rotation:
        # sample the source map at the inversely rotated position of every cell (nearest cell)
        yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
        cy, cx = (rows - 1) / 2, (cols - 1) / 2
        c, s = math.cos(rotation), math.sin(rotation)
        sy = np.rint(-s * (xx - cx) + c * (yy - cy) + cy).astype(np.int64)
        sx = np.rint(c * (xx - cx) + s * (yy - cy) + cx).astype(np.int64)
        inside = (sy >= 0) & (sy < rows) & (sx >= 0) & (sx < cols)
        sy, sx = np.clip(sy, 0, rows - 1), np.clip(sx, 0, cols - 1)
        mask = dmap.mask[sy, sx] & inside
        angle = dmap.angle[sy, sx] + rotation
    else:
        mask, angle = dmap.mask, dmap.angle
    m = mask.astype(np.float64)
    return np.stack([m, m * np.cos(2 * angle), m * np.sin(2 * angle)])


def similarity(a: DirectionMap, b: DirectionMap) -> float:
    """Best aligned agreement of two direction maps, 0..1 (before mapping to a module score)."""
    if a.mask.shape != b.mask.shape or not a.mask.any() or not b.mask.any():
        return 0.0
    rows, cols = a.mask.shape
    k = _MAX_SHIFT
    padded = np.pad(_channels(a), ((0, 0), (k, k), (k, k)))
    # windows[ch, dy, dx] = a's channel seen through a shift of (dy - k, dx - k)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (rows, cols), axis=(1, 2))
    best = 0.0
    for rot in _ROTATIONS:
        mb, cb, sb = _channels(b, float(rot))
        overlap = np.einsum("yxrc,rc->yx", windows[0], mb)
        agreement = np.einsum("yxrc,rc->yx", windows[1], cb) + np.einsum("yxrc,rc->yx", windows[2], sb)
        valid = overlap >= _MIN_OVERLAP
        if not valid.any():
            continue
        scores = np.where(valid, agreement / np.maximum(overlap, 1) * np.minimum(1.0, overlap / _FULL_OVERLAP), 0.0)
        best = max(best, float(scores.max()))
    return best


# Typical agreement of two unrelated prints after the best alignment; scores start above it.
_CHANCE_AGREEMENT = 0.55


def score(buffer_a: bytes, buffer_b: bytes) -> int:
    """Module score (0..MAX_SCORE) between two char buffers / templates: best pair of records."""
    best = 0.0
    for ra in records(buffer_a):
        for rb in records(buffer_b):
            best = max(best, similarity(ra, rb))
    mapped = (best - _CHANCE_AGREEMENT) / (1 - _CHANCE_AGREEMENT)
    return int(round(min(1.0, max(0.0, mapped)) * MAX_SCORE))
