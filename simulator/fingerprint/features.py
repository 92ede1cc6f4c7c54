"""The virtual module's own "character file": up to 40 minutiae in 256 bytes, and how two are scored.

Real modules keep a proprietary (Synochip) minutiae format; nobody outside can produce it, and host-side
matching in biogate works from UpImage anyway. The simulator needs Img2Tz / RegModel / Match / Search
to behave like a module: the same finger scores high, another finger low, a blank or smeared image is
refused. So a character file here is what a module's is in spirit, minutiae in 256 bytes:

Record (256 bytes)::

    0   4  magic b"BGF2"
    4   1  kind (1 = character file from one image)
    5   1  minutiae count n (0..40)
    6   1  quality 0..100 (share of the sensor with a clear ridge flow)
    7   1  reserved (0)
    8   2  image width      10  2  image height (big-endian)
    12  4  reserved (0)
    16  n * 6  per minutia: x (2), y (2), angle (1; 256 units per turn, ISO/IEC 19794-2 direction),
               type (2 high bits: 01 ending, 10 bifurcation, 00 other) | quality (6 low bits, 0..63)
    ... zero padding to 256

The minutiae come from the product's extractor (`edge.biometrics.finger.extract`, its public API),
the best 40 by quality; the images are refused first on their ridge flow (Img2Tz's 0x06 / 0x07): too few blocks
with ridges is "too few feature points", ridges whose direction is mostly incoherent is "too messy".

A template (RegModel) is the two character files one after the other (512 bytes on ZFM/AS608; the
R503's 1536-byte template holds them followed by zeros). Two buffers score as their best pair of records.

Scoring two records (the module's own matcher, not the product's): candidate alignments come from
pairs of minutiae with similar neighbourhoods (distances to their three nearest neighbours) and
directions within 50 degrees; each candidate rotates and shifts one set onto the other and counts the
minutiae that land within 12 px and 25 degrees of a partner. With m paired of n_a and n_b, the module
score is min(300, 1000 m^2 / (n_a n_b)); `MATCH_THRESHOLDS` gives the pass mark per security level.
Measured on FVC2000 DB1_B fitted to the sensor (280 genuine pairs, 180 impostor pairs of same-numbered
impressions; a one-off script): level 1 (score 50) FNMR 6.8% / FMR 9.4%, level 3 (80) FNMR 12.9% /
FMR 1.1%, level 5 (120) FNMR 18.2% / FMR 0.6%. Img2Tz takes about 0.3 s, a comparison 10-20 ms.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import cv2
import numpy as np

MAGIC = b"BGF2"
RECORD_SIZE = 256
HEADER = 16
MINUTIA_BYTES = 6
MAX_MINUTIAE = (RECORD_SIZE - HEADER) // MINUTIA_BYTES  # 40
KIND_CHAR_FILE = 1
BLOCK = 16

# Security level (1..5) -> minimum score for a match (Match, Search, RegModel).
MATCH_THRESHOLDS = {1: 50, 2: 65, 3: 80, 4: 100, 5: 120}
MAX_SCORE = 300

# Img2Tz refusals
MIN_FOREGROUND_BLOCKS = 24  # fewer ridge blocks than this: "too few feature points" (0x07)
MIN_MEAN_COHERENCE = 0.30  # ridge flow this unclear on average: "image too messy" (0x06)
MIN_MINUTIAE = 8  # fewer minutiae than this: "too few feature points" (0x07)

# Matching tolerances
_PAIR_RADIUS = 12.0  # px
_PAIR_ANGLE = math.radians(25)
_MAX_ROTATION = math.radians(50)
_CANDIDATES = 100  # alignments tried per comparison
_NEIGHBOURS = 3


class FeatureError(Exception):
    """Img2Tz cannot make a character file; `reason` is "too_few_features" or "image_messy"."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FlowCheck:
    """How much of an image holds ridges, and how coherent their direction is."""

    ridge_blocks: int
    mean_coherence: float
    quality: int


def flow_check(grey: np.ndarray, block: int = BLOCK) -> FlowCheck:
    """Block ridge-flow statistics of an 8-bit image (the basis of Img2Tz's refusals)."""
    img = grey.astype(np.float32)
    rows, cols = img.shape[0] // block, img.shape[1] // block
    img = img[: rows * block, : cols * block]
    smooth = cv2.GaussianBlur(img, (0, 0), 1.0)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)

    def block_sum(a: np.ndarray) -> np.ndarray:
        return a.reshape(rows, block, cols, block).sum(axis=(1, 3))

    gxx, gyy, gxy = block_sum(gx * gx), block_sum(gy * gy), block_sum(gx * gy)
    # neighbourhood smoothing of the doubled-angle vectors: a ridge flow is coherent over blocks
    vx = cv2.blur((gxx - gyy).astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)
    vy = cv2.blur((2 * gxy).astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)
    energy = cv2.blur((gxx + gyy).astype(np.float32), (3, 3), borderType=cv2.BORDER_REPLICATE)
    coherence = np.hypot(vx, vy) / np.maximum(energy, 1e-6)
    blocks = img.reshape(rows, block, cols, block)
    has_ridges = (blocks.std(axis=(1, 3)) > 12) & (blocks.mean(axis=(1, 3)) < 235)
    clear = has_ridges & (coherence > 0.2)
    mean_coherence = float(coherence[has_ridges].mean()) if has_ridges.any() else 0.0
    return FlowCheck(int(clear.sum()), mean_coherence, int(round(100 * clear.sum() / clear.size)))


@dataclass(frozen=True)
class Minutiae:
    """Decoded record: positions (n, 2) px, ISO angles (n,) radians, type and quality (n,)."""

    xy: np.ndarray
    angle: np.ndarray
    kind: np.ndarray
    quality: np.ndarray
    width: int
    height: int
    image_quality: int = 0

    def __len__(self) -> int:
        return len(self.angle)


def _minutiae_extractor():
    # Imported on first use: the product's fingerprint package loads numba, which takes seconds.
    from edge.biometrics.finger import extract as extract_minutiae

    return extract_minutiae


_warm = False


def warm_up() -> None:
    """Load and run the extractor once now (the virtual module calls this at power-on), so that the
    first Img2Tz answers as fast as the others: loading the product's fingerprint package and its
    compiled kernels takes seconds the first time in a process."""
    global _warm
    if _warm:
        return
    from simulator.fingerprint.images import levels_to_grey, sensor_levels, synthetic_print

    sample = levels_to_grey(sensor_levels(synthetic_print(0, 0), 256, 288))
    try:
        extract(sample)
    except FeatureError:
        pass
    _warm = True


def extract(grey: np.ndarray) -> bytes:
    """Character file (RECORD_SIZE bytes) of an 8-bit sensor image; FeatureError when refused."""
    flow = flow_check(grey)
    if flow.ridge_blocks < MIN_FOREGROUND_BLOCKS:
        raise FeatureError("too_few_features")
    if flow.mean_coherence < MIN_MEAN_COHERENCE:
        raise FeatureError("image_messy")
    from edge.errors import BiogateError

    try:
        template = _minutiae_extractor()(np.ascontiguousarray(grey, dtype=np.uint8), dpi=500)
    except BiogateError:
        raise FeatureError("too_few_features") from None
    if len(template.x) < MIN_MINUTIAE:
        raise FeatureError("too_few_features")
    best = np.argsort(-template.minutia_quality.astype(np.int32), kind="stable")[:MAX_MINUTIAE]
    minutiae = Minutiae(
        np.stack([template.x[best], template.y[best]], axis=1).astype(np.float32),
        template.angle[best].astype(np.float32),
        template.kind[best].astype(np.uint8),
        template.minutia_quality[best].astype(np.uint8),
        grey.shape[1],
        grey.shape[0],
        flow.quality,
    )
    return encode(minutiae)


def encode(m: Minutiae) -> bytes:
    n = min(len(m), MAX_MINUTIAE)
    header = MAGIC + struct.pack(">BBBBHH", KIND_CHAR_FILE, n, m.image_quality, 0, m.width, m.height)
    body = bytearray()
    for i in range(n):
        angle = int(round(float(m.angle[i]) / (2 * math.pi) * 256)) % 256
        quality = min(63, int(m.quality[i]) * 63 // 100)
        body += struct.pack(">HHBB", int(m.xy[i, 0]), int(m.xy[i, 1]), angle, (int(m.kind[i]) & 3) << 6 | quality)
    return (header.ljust(HEADER, b"\0") + bytes(body)).ljust(RECORD_SIZE, b"\0")


def decode(record: bytes) -> Minutiae | None:
    """The minutiae of a record, or None when the bytes are not one of our character files."""
    if len(record) < HEADER or record[:4] != MAGIC or record[4] != KIND_CHAR_FILE:
        return None
    n, quality, width, height = record[5], record[6], *struct.unpack(">HH", record[8:12])
    if n > MAX_MINUTIAE or len(record) < HEADER + n * MINUTIA_BYTES:
        return None
    raw = np.frombuffer(record[HEADER : HEADER + n * MINUTIA_BYTES], dtype=np.uint8).reshape(n, MINUTIA_BYTES)
    x = raw[:, 0].astype(np.float32) * 256 + raw[:, 1]
    y = raw[:, 2].astype(np.float32) * 256 + raw[:, 3]
    angle = raw[:, 4].astype(np.float32) * np.float32(2 * math.pi / 256)
    return Minutiae(np.stack([x, y], axis=1), angle, raw[:, 5] >> 6, raw[:, 5] & 0x3F, width, height, quality)


def records(buffer: bytes) -> list[Minutiae]:
    """Every character file found in a char buffer / template (256-byte slots)."""
    out = []
    for start in range(0, len(buffer) - RECORD_SIZE + 1, RECORD_SIZE):
        m = decode(buffer[start : start + RECORD_SIZE])
        if m is not None:
            out.append(m)
    return out


def combine(first: bytes, second: bytes, size: int) -> bytes:
    """RegModel: a template of `size` bytes holding both character files."""
    return (first[:RECORD_SIZE] + second[:RECORD_SIZE]).ljust(size, b"\0")[:size]


def _neighbourhoods(xy: np.ndarray) -> np.ndarray:
    """Distances from each minutia to its nearest neighbours (rotation- and shift-invariant)."""
    d = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=-1)
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, :_NEIGHBOURS]


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


def paired(a: Minutiae, b: Minutiae) -> int:
    """The most minutiae of `a` and `b` that one rigid alignment brings together."""
    if len(a) <= _NEIGHBOURS or len(b) <= _NEIGHBOURS:
        return 0
    rotation = _wrap(b.angle[None, :] - a.angle[:, None])  # (na, nb): aligns a_i's direction with b_j's
    cost = np.abs(_neighbourhoods(a.xy)[:, None, :] - _neighbourhoods(b.xy)[None, :, :]).sum(axis=-1)
    cost[np.abs(rotation) > _MAX_ROTATION] = np.inf
    order = np.argsort(cost, axis=None)[:_CANDIDATES]
    order = order[np.isfinite(cost.flat[order])]
    if order.size == 0:
        return 0
    ii, jj = np.unravel_index(order, cost.shape)
    rot = rotation[ii, jj]
    # ISO angles turn counter-clockwise on screen, where y points down: points turn by -rot in pixels
    c, s = np.cos(rot), np.sin(rot)
    turn = np.stack([np.stack([c, s], -1), np.stack([-s, c], -1)], -2)  # (k, 2, 2)
    shift = b.xy[jj] - np.einsum("kab,kb->ka", turn, a.xy[ii])
    moved = np.einsum("kab,nb->kna", turn, a.xy) + shift[:, None, :]  # (k, na, 2)
    near = ((moved[:, :, None, :] - b.xy[None, None, :, :]) ** 2).sum(-1) < _PAIR_RADIUS**2
    turned = np.abs(_wrap(b.angle[None, None, :] - a.angle[None, :, None] - rot[:, None, None])) < _PAIR_ANGLE
    together = near & turned
    count = np.minimum(together.any(axis=2).sum(axis=1), together.any(axis=1).sum(axis=1))
    return int(count.max())


def record_score(a: Minutiae, b: Minutiae) -> int:
    """Module score 0..MAX_SCORE of two records."""
    if not len(a) or not len(b):
        return 0
    m = paired(a, b)
    return int(min(MAX_SCORE, round(1000 * m * m / (len(a) * len(b)))))


def score(buffer_a: bytes, buffer_b: bytes) -> int:
    """Module score (0..MAX_SCORE) between two char buffers / templates: their best pair of records."""
    return max((record_score(ra, rb) for ra in records(buffer_a) for rb in records(buffer_b)), default=0)
