"""Ridge skeleton and minutiae: thinning, crossing number, ridge tracing and spurious-minutia removal.

The 8 neighbours of a pixel are numbered clockwise from north (P2..P9 in Zhang & Suen's notation):
N, NE, E, SE, S, SW, W, NW; a neighbourhood is an 8-bit code with bit i set for neighbour i.
Per-pixel rules (thinning, crossing number) become 256-entry lookup tables: the crossing number is
looked up over whole arrays; thinning, which needs many passes, runs as a compiled (numba) loop over
the ridge pixels only.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit

from edge.biometrics.finger.template import BIFURCATION, ENDING

# Spurious-structure limits, in ridge periods: a ridge piece shorter than SPUR_PERIODS ending in a
# fork is a spur; forks closer than BRIDGE_PERIODS along a ridge are a bridge or a hole; two endings
# facing each other within BREAK_PERIODS are a broken ridge; any two minutiae within CLOSE_PERIODS
# are noise. Directions are measured DIRECTION_PERIODS along the ridge.
SPUR_PERIODS = 1.5
BRIDGE_PERIODS = 1.0
BREAK_PERIODS = 1.0
CLOSE_PERIODS = 0.2
DIRECTION_PERIODS = 1.0

# (dy, dx) of the neighbours N, NE, E, SE, S, SW, W, NW.
NEIGHBOURS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def _bits(code: int) -> list[int]:
    return [(code >> i) & 1 for i in range(8)]


def _transitions(code: int) -> int:
    """Number of 0->1 transitions around the neighbourhood (Zhang-Suen A(P), = crossing number)."""
    b = _bits(code)
    return sum(1 for i in range(8) if b[i] == 0 and b[(i + 1) % 8] == 1)


def _build_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sub1 = np.zeros(256, dtype=bool)
    sub2 = np.zeros(256, dtype=bool)
    cn = np.zeros(256, dtype=np.uint8)
    for code in range(256):
        n, ne, e, se, s, sw, w, nw = _bits(code)
        count = sum(_bits(code))
        a = _transitions(code)
        cn[code] = a
        base = 2 <= count <= 6 and a == 1
        sub1[code] = base and n * e * s == 0 and e * s * w == 0
        sub2[code] = base and n * e * w == 0 and n * s * w == 0
    return sub1, sub2, cn


DELETE_FIRST, DELETE_SECOND, CROSSING_NUMBER = _build_tables()


def neighbour_codes(binary: np.ndarray) -> np.ndarray:
    """8-bit neighbourhood code of every pixel of a 0/1 uint8 image (outside counts as 0)."""
    p = np.pad(binary, 1)
    h, w = binary.shape
    code = np.zeros((h, w), dtype=np.uint8)
    for bit, (dy, dx) in enumerate(NEIGHBOURS):
        code |= p[1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w] << bit
    return code


def thin(binary: np.ndarray, max_iterations: int = 50) -> np.ndarray:
    """Zhang-Suen thinning (both sub-iterations as table look-ups; a compiled loop over ridge pixels)."""
    img = np.ascontiguousarray(np.pad((binary > 0).astype(np.uint8), 1))
    _thin_kernel(img, DELETE_FIRST, DELETE_SECOND, max_iterations)
    return img[1:-1, 1:-1].copy()


@njit(cache=True)
def _thin_kernel(img, first, second, max_iterations):
    """In place on a zero-bordered 0/1 image; each sub-iteration decides on the image as it was before it."""
    h, w = img.shape
    ys, xs = np.nonzero(img)
    n = ys.size
    alive = np.ones(n, np.bool_)
    doomed = np.empty(n, np.int64)
    for _ in range(max_iterations):
        changed = False
        for table in (first, second):
            k = 0
            for p in range(n):
                if not alive[p]:
                    continue
                y, x = ys[p], xs[p]
                code = (img[y - 1, x] | (img[y - 1, x + 1] << 1) | (img[y, x + 1] << 2) | (img[y + 1, x + 1] << 3)
                        | (img[y + 1, x] << 4) | (img[y + 1, x - 1] << 5) | (img[y, x - 1] << 6)
                        | (img[y - 1, x - 1] << 7))
                if table[code]:
                    doomed[k] = p
                    k += 1
            for q in range(k):
                p = doomed[q]
                img[ys[p], xs[p]] = 0
                alive[p] = False
            if k:
                changed = True
        if not changed:
            break


@dataclass
class RawMinutia:
    x: int
    y: int
    angle: float  # image angle (y down), radians
    kind: int


class _Skeleton:
    """Flat, Python-indexable view of a skeleton for tracing ridges pixel by pixel."""

    def __init__(self, skel: np.ndarray):
        self.h, self.w = skel.shape
        padded = np.pad(skel, 1)
        self.W = self.w + 2
        self.on = padded.ravel().tolist()
        self.cn = np.pad(CROSSING_NUMBER[neighbour_codes(skel)] * skel, 1).ravel().tolist()
        W = self.W
        self.offsets = [dy * W + dx for dy, dx in NEIGHBOURS]

    def index(self, x: int, y: int) -> int:
        return (y + 1) * self.W + (x + 1)

    def xy(self, idx: int) -> tuple[int, int]:
        return idx % self.W - 1, idx // self.W - 1

    def branch_starts(self, idx: int) -> list[int]:
        """One neighbour per separate group of skeleton neighbours (4-connected ones preferred)."""
        on = self.on
        bits = [on[idx + o] for o in self.offsets]
        starts = []
        for i in range(8):
            if bits[i] and not bits[i - 1]:  # first pixel of a run, going clockwise
                run = []
                j = i
                while bits[j % 8] and len(run) < 8:
                    run.append(j % 8)
                    j += 1
                pick = next((k for k in run if k % 2 == 0), run[0])
                starts.append(idx + self.offsets[pick])
        if not starts and any(bits):  # fully surrounded pixel: degenerate blob
            starts = [idx + self.offsets[i] for i in range(8) if bits[i]]
        return starts

    def trace(self, start: int, first: int, max_len: int) -> tuple[list[int], str]:
        """Follow the ridge from `start` through `first`; stop at an ending, a junction or max_len.

        Returns the visited pixel indices (start excluded) and why it stopped.
        """
        on, cn, offs = self.on, self.cn, self.offsets
        visited = {start, first}
        path = [first]
        prev, cur = start, first
        while len(path) < max_len:
            if cn[cur] >= 3:
                return path, "junction"
            nxt = [cur + o for o in offs if on[cur + o] and (cur + o) not in visited]
            if not nxt:
                return path, "ending"
            if len(nxt) > 1:
                # Pixels also touching the previous one are staircase corners, not the way on.
                ahead = [n for n in nxt if max(abs(n % self.W - prev % self.W), abs(n // self.W - prev // self.W)) > 1]
                nxt = ahead or nxt
                four = [n for n in nxt if abs(n - cur) in (1, self.W)]
                choice = four[0] if four else nxt[0]
            else:
                choice = nxt[0]
            visited.add(choice)
            path.append(choice)
            prev, cur = cur, choice
        return path, "length"


def _angle(from_xy: tuple[int, int], to_xy: tuple[int, int]) -> float:
    return float(np.arctan2(to_xy[1] - from_xy[1], to_xy[0] - from_xy[0]))


def find_minutiae(skel: np.ndarray, mask_distance: np.ndarray, orientation: np.ndarray,
                  period: float, border: float) -> list[RawMinutia]:
    """Endings and bifurcations of the skeleton, with spurs, bridges, breaks and borders removed."""
    sk = _Skeleton(skel)
    cn_map = CROSSING_NUMBER[neighbour_codes(skel)] * skel
    ys, xs = np.nonzero(((cn_map == 1) | (cn_map == 3)) & (mask_distance >= border))
    direction_len = max(4, int(round(DIRECTION_PERIODS * period)))
    spur_len = max(4, int(round(SPUR_PERIODS * period)))
    bridge_len = max(3, int(round(BRIDGE_PERIODS * period)))

    candidates: dict[int, RawMinutia] = {}
    doomed: set[int] = set()
    junction_near: dict[int, int] = {}  # maps any pixel next to a bifurcation to that bifurcation
    for x, y in zip(xs.tolist(), ys.tolist()):
        idx = sk.index(x, y)
        kind = ENDING if cn_map[y, x] == 1 else BIFURCATION
        candidates[idx] = RawMinutia(x, y, 0.0, kind)
        if kind == BIFURCATION:
            junction_near[idx] = idx
            for o in sk.offsets:
                junction_near.setdefault(idx + o, idx)

    for idx, m in candidates.items():
        starts = sk.branch_starts(idx)
        if m.kind == ENDING:
            if not starts:
                doomed.add(idx)
                continue
            path, why = sk.trace(idx, starts[0], max(spur_len, direction_len))
            if why == "ending" and len(path) < spur_len:
                doomed.add(idx)  # a short isolated fragment
                continue
            if why == "junction" and len(path) < spur_len:
                doomed.add(idx)  # a spur: the ending and the fork it hangs from are both artefacts
                doomed.add(junction_near.get(path[-1], path[-1]))
                continue
            back = sk.xy(path[min(len(path), direction_len) - 1])
            m.angle = _angle(back, (m.x, m.y))  # points out of the ridge tip
        else:
            if len(starts) != 3:
                doomed.add(idx)  # crossings and blobs are not reliable bifurcations
                continue
            vectors = []
            for s in starts:
                path, why = sk.trace(idx, s, max(bridge_len, direction_len))
                if why == "junction" and len(path) < bridge_len:
                    doomed.add(idx)  # bridge or small hole between two close forks
                    doomed.add(junction_near.get(path[-1], path[-1]))
                end = sk.xy(path[min(len(path), direction_len) - 1])
                v = np.array([end[0] - m.x, end[1] - m.y], dtype=np.float64)
                vectors.append(v / max(np.linalg.norm(v), 1e-6))
            if idx in doomed:
                continue
            cos = [float(vectors[i] @ vectors[(i + 1) % 3] + vectors[i] @ vectors[(i + 2) % 3]) for i in range(3)]
            stem = vectors[int(np.argmin(cos))]  # the branch pointing away from the other two
            m.angle = float(np.arctan2(stem[1], stem[0]))

    kept = [(idx, m) for idx, m in candidates.items() if idx not in doomed]
    # Snap each direction to the smoothed ridge orientation (less pixel noise), keeping its sense.
    for _, m in kept:
        theta = float(orientation[m.y, m.x])
        d = np.angle(np.exp(1j * (m.angle - theta)))
        m.angle = theta if abs(d) < np.pi / 2 else theta + np.pi
    return _remove_close_pairs([m for _, m in kept], period)


def _remove_close_pairs(minutiae: list[RawMinutia], period: float) -> list[RawMinutia]:
    """Drop pairs too close to be real: facing endings of a broken ridge, or any two within a period/2."""
    if len(minutiae) < 2:
        return minutiae
    xy = np.array([[m.x, m.y] for m in minutiae], dtype=np.float64)
    ang = np.array([m.angle for m in minutiae])
    kind = np.array([m.kind for m in minutiae])
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    dang = np.abs(np.angle(np.exp(1j * (ang[:, None] - ang[None, :]))))
    too_close = d < CLOSE_PERIODS * period
    both_end = (kind[:, None] == ENDING) & (kind[None, :] == ENDING)
    broken = both_end & (d < BREAK_PERIODS * period) & (dang > 2.3)
    # the two ends of a break also face each other: the line joining them follows their directions
    drop = (too_close | broken).any(axis=1)
    return [m for m, bad in zip(minutiae, drop) if not bad]


def binarise(enhanced: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Ridges = negative Gabor response, inside the mask, lightly de-speckled."""
    ridges = ((enhanced < 0) & mask).astype(np.uint8)
    return cv2.medianBlur(ridges, 3)
