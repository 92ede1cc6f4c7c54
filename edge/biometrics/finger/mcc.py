"""Minutia Cylinder-Code matching (after Cappelli, Ferrara & Maltoni, IEEE TPAMI 32(12), 2010).

Each minutia gets a *cylinder*: `ns` x `ns` spatial cells inside a radius-R disc around it, in its
own frame, times `nd` angular layers; a cell is set when neighbouring minutiae sit there with that
relative direction. Cylinders are invariant to translation and rotation, so two minutiae are compared
by comparing cylinders (local similarity). Consolidation (LSA-R, with a greedy one-to-one assignment
instead of the Hungarian one) then takes the best pairs, lets pairs whose mutual geometry agrees
(distances, relative directions, bearings) support each other for a few relaxation rounds, and
averages the pairs that kept most of their similarity.

A global step follows (`_global_pairing`): each of the most consistent pairs fixes a rigid alignment,
refined by least squares over the pairs it brings, and the minutiae of the two prints that then
coincide (position and direction) are paired. It reports how many pair, how many of each print lie
inside the other's area (the ones that could have paired) and the summed local similarity of the
pairs: a chance alignment of two different fingers pairs minutiae whose neighbourhoods disagree,
which the count alone cannot tell from a true one.

This is the bit-based variant (MCC-b): cell values are bits, packed into 64-bit words, and a local
similarity is three popcounts over the cells valid in both cylinders. Building cylinders is numpy
(once per template, `build_cylinders`); comparing is numba kernels (`similarity_parts`).
Two prints whose placements differ by more than `max_direction_diff` (90 degrees) do not match: the
direction constraint of the paper, which removes many chance agreements.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numba import njit, types
from numba.extending import intrinsic
from scipy.special import erf

from edge.biometrics.finger.template import FLOW_BLOCK, FLOW_CODES, FLOW_NONE, FingerTemplate


@dataclass(frozen=True)
class MccParams:
    radius: float = 70.0            # R, pixels at 500 dpi
    ns: int = 16                    # spatial cells per side
    nd: int = 6                     # angular layers
    sigma_s: float = 28.0 / 3       # spatial spread of a minutia's contribution
    sigma_d: float = 2 * np.pi / 9  # angular spread
    mu_psi: float = 0.01            # a cell's bit is set when its contribution exceeds this
    omega: float = 50.0             # cells farther than this outside the minutiae's convex hull are invalid
    min_valid_cells: float = 0.75   # fraction of disc cells that must be valid for a usable cylinder
    min_neighbours: int = 2
    min_matchable: float = 0.6      # fraction of disc cells valid in both cylinders to compare them
    max_direction_diff: float = np.pi / 2
    # consolidation (LSS-R, or a greedy LSA-R when one_to_one)
    one_to_one: bool = True
    n_r_max: int = 40
    # global consolidation: alignment by the best pairs, then paired-minutiae count
    n_anchors: int = 5
    pair_distance: float = 10.0     # after the least-squares refinement; 15 px let too many chance pairs in
    pair_angle: float = np.pi / 6
    overlap_margin: float = 10.0    # a minutia this close outside the other print's hull still counts as overlap
    min_np: int = 4
    max_np: int = 12
    mu_p: float = 20.0
    tau_p: float = 0.4
    w_relax: float = 0.5
    n_relax: int = 5
    mu_rho: tuple[float, float, float] = (5.0, np.pi / 12, np.pi / 12)
    tau_rho: tuple[float, float, float] = (-8.0 / 5, -30.0, -30.0)


DEFAULT_PARAMS = MccParams()


def _wrap(a: np.ndarray) -> np.ndarray:
    """Angle difference wrapped to [-pi, pi)."""
    return (a + np.pi) % (2 * np.pi) - np.pi


class _Grid:
    """Cell centres of the disc (local frame) and layer angles, shared by every cylinder."""

    def __init__(self, p: MccParams):
        step = 2 * p.radius / p.ns
        coords = (np.arange(p.ns) - (p.ns - 1) / 2) * step
        u, v = np.meshgrid(coords, coords, indexing="ij")
        inside = u ** 2 + v ** 2 <= p.radius ** 2
        self.cells = np.stack([u[inside], v[inside]], axis=1)  # (C, 2)
        self.layer = -np.pi + (np.arange(p.nd) + 0.5) * (2 * np.pi / p.nd)  # (nd,)
        self.layer_width = 2 * np.pi / p.nd
        self.n_bits = self.cells.shape[0] * p.nd
        self.n_words = (self.n_bits + 63) // 64


_GRIDS: dict[MccParams, _Grid] = {}


def _grid(p: MccParams) -> _Grid:
    if p not in _GRIDS:
        _GRIDS[p] = _Grid(p)
    return _GRIDS[p]


@dataclass
class Cylinders:
    """Everything matching needs about one template, computed once."""

    bits: np.ndarray       # (n, words) uint64: cell bits, cell-major, nd layers per cell
    valid: np.ndarray      # (n, words) uint64: the cell's validity repeated over its nd layers
    xy: np.ndarray         # (n, 2) float64 positions (500-dpi pixels) of minutiae with usable cylinders
    theta: np.ndarray      # (n,) their directions (image frame: y down, radians)
    dist: np.ndarray       # (n, n) pairwise distances
    rel_dir: np.ndarray    # (n, n) wrapped theta_k - theta_t
    radial: np.ndarray     # (n, n) wrapped angle between theta_t and the line t->k
    n_minutiae: int = 0    # minutiae in the template (usable cylinders or not)
    all_xy: np.ndarray = None      # type: ignore[assignment]  # (N, 2) every minutia, 500-dpi pixels
    all_theta: np.ndarray = None   # type: ignore[assignment]  # (N,)
    hull: np.ndarray = None        # type: ignore[assignment]  # (H, 2) convex hull of all_xy, positive area
    cylinder_of: np.ndarray = None  # type: ignore[assignment]  # (N,) int64: row in bits/xy of each minutia, or -1
    # the template's ridge flow as doubled image-frame angles per block (0 x 0 when it has none)
    flow_cos2: np.ndarray = None   # type: ignore[assignment]  # (rows, cols) float64
    flow_sin2: np.ndarray = None   # type: ignore[assignment]  # (rows, cols) float64
    flow_on: np.ndarray = None     # type: ignore[assignment]  # (rows, cols) bool: block on the print
    flow_block: float = 0.0        # block side in 500-dpi pixels
    ridge_period: float = 0.0      # 500-dpi pixels; 0 = not known

    @property
    def count(self) -> int:
        return int(self.xy.shape[0])

    def wipe(self) -> None:
        for arr in (self.bits, self.valid, self.xy, self.theta, self.dist, self.rel_dir, self.radial,
                    self.all_xy, self.all_theta, self.hull, self.cylinder_of, self.flow_cos2, self.flow_sin2,
                    self.flow_on):
            arr.fill(0)
        self.ridge_period = 0.0


def _hull_outside_distance(points: np.ndarray, query: np.ndarray) -> np.ndarray:
    """How far each query point lies outside the convex hull of `points` (0 inside; mitred corners)."""
    hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(np.float64) if len(points) >= 3 else None
    if hull is None or hull.shape[0] < 3:
        centre = points.mean(axis=0)
        return np.sqrt(((query - centre) ** 2).sum(-1))
    a = hull
    b = np.roll(hull, -1, axis=0)
    edge = b - a
    length = np.maximum(np.sqrt((edge ** 2).sum(-1)), 1e-9)
    # signed distance to each edge's line; the hull's orientation decides which side is outside
    rel = query[:, None, :] - a[None, :, :]
    cross = (edge[None, :, 0] * rel[:, :, 1] - edge[None, :, 1] * rel[:, :, 0]) / length[None, :]
    area2 = float(np.sum(a[:, 0] * b[:, 1] - b[:, 0] * a[:, 1]))
    outside = -cross if area2 > 0 else cross
    return np.maximum(outside.max(axis=1), 0.0)


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull vertices of the minutiae with positive signed area (the order `_inside_hull` wants)."""
    if len(points) < 3:
        return np.zeros((0, 2))
    hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    area2 = float(np.sum(hull[:, 0] * np.roll(hull[:, 1], -1) - np.roll(hull[:, 0], -1) * hull[:, 1]))
    return np.ascontiguousarray(hull if area2 > 0 else hull[::-1])


def _pack(bits: np.ndarray, n_words: int) -> np.ndarray:
    """(n, n_bits) bool -> (n, n_words) uint64, zero-padded."""
    n, n_bits = bits.shape
    padded = np.zeros((n, n_words * 64), dtype=bool)
    padded[:, :n_bits] = bits
    return np.packbits(padded, axis=1, bitorder="little").view(np.uint64).reshape(n, n_words).copy()


def build_cylinders(t: FingerTemplate, p: MccParams = DEFAULT_PARAMS) -> Cylinders:
    g = _grid(p)
    scale = 500.0 / t.dpi  # work in 500-dpi pixels whatever the capture resolution
    xy = np.stack([t.x, t.y], axis=1).astype(np.float64) * scale
    theta = np.mod(-t.angle.astype(np.float64), 2 * np.pi)  # ISO angle -> image frame (y down)
    n = xy.shape[0]
    flow = _flow_arrays(t, scale)
    if n == 0:
        return _empty(g, 0, **flow)
    extras = dict(all_xy=np.ascontiguousarray(xy), all_theta=np.ascontiguousarray(theta), hull=_hull(xy), **flow)
    cos, sin = np.cos(theta), np.sin(theta)
    d = xy[None, :, :] - xy[:, None, :]                      # (m, t, 2): neighbour t seen from m
    dist = np.sqrt((d ** 2).sum(-1))
    local_u = d[..., 0] * cos[:, None] + d[..., 1] * sin[:, None]
    local_v = -d[..., 0] * sin[:, None] + d[..., 1] * cos[:, None]
    rel = _wrap(theta[None, :] - theta[:, None])             # (m, t)
    # Only neighbours that can reach a cell contribute: (m, t) pairs within R + 3 sigma_s.
    reach = (dist <= p.radius + 3 * p.sigma_s) & ~np.eye(n, dtype=bool)
    mi, ti = np.nonzero(reach)
    contrib = np.zeros((n, g.cells.shape[0], p.nd))
    if mi.size:
        du = local_u[mi, ti][:, None] - g.cells[None, :, 0]
        dv = local_v[mi, ti][:, None] - g.cells[None, :, 1]
        dist2 = du * du + dv * dv                            # (pairs, C)
        spatial = np.exp(-dist2 / (2 * p.sigma_s ** 2)) / (p.sigma_s * np.sqrt(2 * np.pi))
        spatial[dist2 > (3 * p.sigma_s) ** 2] = 0.0
        alpha = _wrap(g.layer[None, :] - rel[mi, ti][:, None])  # (pairs, nd)
        half = g.layer_width / 2
        s = p.sigma_d * np.sqrt(2)
        directional = 0.5 * (erf((alpha + half) / s) - erf((alpha - half) / s))
        np.add.at(contrib, mi, spatial[:, :, None] * directional[:, None, :])
    on = contrib > p.mu_psi                                  # (m, C, nd)

    # validity: inside the disc (by construction) and near the minutiae's convex hull
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (m, 2, 2)
    global_cells = xy[:, None, :] + np.einsum("mij,cj->mci", rot, g.cells)
    valid = _hull_outside_distance(xy, global_cells.reshape(-1, 2)).reshape(n, -1) <= p.omega
    neighbours = (dist <= p.radius + 3 * p.sigma_s).sum(axis=1) - 1
    usable = (valid.mean(axis=1) >= p.min_valid_cells) & (neighbours >= p.min_neighbours)
    keep = np.nonzero(usable)[0]
    if keep.size == 0:
        return _empty(g, n, **extras)
    cylinder_of = np.full(n, -1, np.int64)
    cylinder_of[keep] = np.arange(keep.size)
    valid_bits = np.repeat(valid[keep], p.nd, axis=1)
    cell_bits = (on[keep] & valid[keep][:, :, None]).reshape(keep.size, -1)
    radial = _wrap(np.arctan2(d[..., 1], d[..., 0]) - theta[:, None])
    sub = np.ix_(keep, keep)
    return Cylinders(
        bits=_pack(cell_bits, g.n_words),
        valid=_pack(valid_bits, g.n_words),
        xy=np.ascontiguousarray(xy[keep]),
        theta=np.ascontiguousarray(theta[keep]),
        dist=np.ascontiguousarray(dist[sub]),
        rel_dir=np.ascontiguousarray(rel[sub]),
        radial=np.ascontiguousarray(radial[sub]),
        n_minutiae=n,
        cylinder_of=cylinder_of,
        **extras,
    )


def _flow_arrays(t: FingerTemplate, scale: float) -> dict:
    """The template's ridge flow and period in the matcher's frame (image angles, 500-dpi pixels)."""
    if t.flow is None or t.flow.size == 0:
        z = np.zeros((0, 0))
        return dict(flow_cos2=z, flow_sin2=z.copy(), flow_on=np.zeros((0, 0), bool), flow_block=0.0,
                    ridge_period=t.ridge_period * scale)
    on = t.flow != FLOW_NONE
    # template codes are counter-clockwise degrees; the image frame has y down, so the angle changes sign
    doubled = -2.0 * np.pi / FLOW_CODES * t.flow.astype(np.float64)
    return dict(flow_cos2=np.ascontiguousarray(np.where(on, np.cos(doubled), 0.0)),
                flow_sin2=np.ascontiguousarray(np.where(on, np.sin(doubled), 0.0)),
                flow_on=np.ascontiguousarray(on), flow_block=FLOW_BLOCK * scale, ridge_period=t.ridge_period * scale)


def _empty(g: _Grid, n_minutiae: int, **extras) -> Cylinders:
    z = np.zeros((0, 0))
    w = np.zeros((0, g.n_words), np.uint64)
    extras.setdefault("all_xy", np.zeros((0, 2)))
    extras.setdefault("all_theta", np.zeros(0))
    extras.setdefault("hull", np.zeros((0, 2)))
    extras.setdefault("cylinder_of", np.full(n_minutiae, -1, np.int64))
    extras.setdefault("flow_cos2", np.zeros((0, 0)))
    extras.setdefault("flow_sin2", np.zeros((0, 0)))
    extras.setdefault("flow_on", np.zeros((0, 0), bool))
    return Cylinders(w, w.copy(), np.zeros((0, 2)), np.zeros(0), z, z.copy(), z.copy(), n_minutiae, **extras)


# comparison kernels -----------------------------------------------------------------------------

@intrinsic
def _popcount(typingctx, x):
    """Population count of a uint64 (LLVM ctpop: one POPCNT instruction on x86-64)."""
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@njit(cache=True, fastmath=True)
def _wrap1(a):
    """Angle to [-pi, pi); the kernels only pass differences of two such angles, so two steps suffice."""
    if a >= np.pi:
        a -= 2 * np.pi
        if a >= np.pi:
            a -= 2 * np.pi
    elif a < -np.pi:
        a += 2 * np.pi
        if a < -np.pi:
            a += 2 * np.pi
    return a


@njit(cache=True)
def local_matrix(bits_a, valid_a, theta_a, bits_b, valid_b, theta_b, min_common_bits, max_dtheta):
    """(na, nb) local similarities: 1 - |a xor b| / (|a| + |b|) (as norms) over cells valid in both."""
    na, nb, words = bits_a.shape[0], bits_b.shape[0], bits_a.shape[1]
    out = np.zeros((na, nb), dtype=np.float64)
    for i in range(na):
        for j in range(nb):
            if abs(_wrap1(theta_a[i] - theta_b[j])) > max_dtheta:
                continue
            common = np.uint64(0)
            ca = np.uint64(0)
            cb = np.uint64(0)
            cx = np.uint64(0)
            for w in range(words):
                v = valid_a[i, w] & valid_b[j, w]
                x = bits_a[i, w] & v
                y = bits_b[j, w] & v
                common += _popcount(v)
                ca += _popcount(x)
                cb += _popcount(y)
                cx += _popcount(x ^ y)
            if common < min_common_bits:
                continue
            denom = np.sqrt(np.float64(ca)) + np.sqrt(np.float64(cb))
            if denom > 0:
                out[i, j] = 1.0 - np.sqrt(np.float64(cx)) / denom
    return out


@njit(cache=True, fastmath=True)
def _z(v, mu, tau):
    return 1.0 / (1.0 + np.exp(-tau * (v - mu)))


@njit(cache=True)
def _consolidate(lsm, dist_a, rel_a, rad_a, dist_b, rel_b, rad_b, n_r, n_p, one_to_one, w_relax, n_relax, mu1, tau1, mu2, tau2,
           mu3, tau3):
    """LSA-R (greedy one-to-one; LSS-R when not one_to_one): best n_r pairs, relaxation, mean of the
    n_p most efficient pairs. Returns the score and the n_p pairs (indices into A and B)."""
    na, nb = lsm.shape
    # candidate pairs: the non-zero entries only (most are zero: directions too different)
    n_nz = 0
    for i in range(na):
        for j in range(nb):
            if lsm[i, j] > 0:
                n_nz += 1
    vals = np.empty(n_nz)
    cand_a = np.empty(n_nz, np.int64)
    cand_b = np.empty(n_nz, np.int64)
    n_nz = 0
    for i in range(na):
        for j in range(nb):
            if lsm[i, j] > 0:
                vals[n_nz] = -lsm[i, j]
                cand_a[n_nz] = i
                cand_b[n_nz] = j
                n_nz += 1
    # the greedy one-to-one pass rarely looks past the best few entries per wanted pair
    if n_nz > 8 * n_r:
        cut = np.partition(vals, 8 * n_r)[8 * n_r]
        keep = vals <= cut
        vals, cand_a, cand_b = vals[keep], cand_a[keep], cand_b[keep]
    order = np.argsort(vals)
    ia = np.empty(n_r, np.int64)
    ib = np.empty(n_r, np.int64)
    lam0 = np.empty(n_r)
    used_a = np.zeros(na, np.bool_)
    used_b = np.zeros(nb, np.bool_)
    k = 0
    for o in order:
        if k == n_r:
            break
        i, j = cand_a[o], cand_b[o]
        if one_to_one and (used_a[i] or used_b[j]):
            continue
        used_a[i] = True
        used_b[j] = True
        ia[k] = i
        ib[k] = j
        lam0[k] = -vals[o]
        k += 1
    if k == 0:
        return 0.0, ia[:0], ib[:0]
    ia, ib, lam0 = ia[:k], ib[:k], lam0[:k]
    if k == 1:
        return lam0[0] / max(n_p, 1), ia, ib
    rho = np.zeros((k, k))
    cut1 = mu1 + 7.0 / abs(tau1)
    cut2 = mu2 + 7.0 / abs(tau2)
    cut3 = mu3 + 7.0 / abs(tau3)
    for r in range(k):
        for c in range(r + 1, k):
            if ia[r] == ia[c] or ib[r] == ib[c]:
                continue  # two pairs sharing a minutia cannot both be right
            # each factor is < 1e-3 beyond these differences: skip the exponentials
            d1 = abs(dist_a[ia[r], ia[c]] - dist_b[ib[r], ib[c]])
            if d1 > cut1:
                continue
            d2 = abs(_wrap1(rel_a[ia[r], ia[c]] - rel_b[ib[r], ib[c]]))
            if d2 > cut2:
                continue
            d3 = abs(_wrap1(rad_a[ia[r], ia[c]] - rad_b[ib[r], ib[c]]))
            if d3 > cut3:
                continue
            v = _z(d1, mu1, tau1) * _z(d2, mu2, tau2) * _z(d3, mu3, tau3)
            rho[r, c] = v
            rho[c, r] = v
    lam = lam0.copy()
    nxt = np.empty(k)
    for _ in range(n_relax):
        for r in range(k):
            s = 0.0
            for c in range(k):
                s += rho[r, c] * lam[c]
            nxt[r] = w_relax * lam[r] + (1 - w_relax) * s / (k - 1)
        lam[:] = nxt
    eff = lam / lam0
    best = np.argsort(-eff)[:n_p]
    total = 0.0
    for r in best:
        total += lam[r]
    return total / n_p, ia[best], ib[best]


def _n_p(na: int, nb: int, p: MccParams) -> int:
    z = 1.0 / (1.0 + math.exp(-p.tau_p * (min(na, nb) - p.mu_p)))
    return p.min_np + int(round(z * (p.max_np - p.min_np)))


def similarity(a: Cylinders, b: Cylinders, p: MccParams = DEFAULT_PARAMS) -> float:
    """The MCC score alone, 0..1 (greedy LSA-R consolidation)."""
    return similarity_parts(a, b, p)[0]


@njit(cache=True, fastmath=True)
def _inside_hull(x, y, hull, margin):
    """True when (x, y) lies inside the convex polygon `hull` (counter-clockwise in the image frame)
    or at most `margin` pixels outside it."""
    h = hull.shape[0]
    if h < 3:
        return False
    for e in range(h):
        ax, ay = hull[e, 0], hull[e, 1]
        bx, by = hull[(e + 1) % h, 0], hull[(e + 1) % h, 1]
        ex, ey = bx - ax, by - ay
        length = np.sqrt(ex * ex + ey * ey)
        if length == 0:
            continue
        # positive cross product = left of the edge = inside for a counter-clockwise polygon
        if (ex * (y - ay) - ey * (x - ax)) / length < -margin:
            return False
    return True


@njit(cache=True, fastmath=True)
def _pair_under(c, s, tx, ty, phi, pa, ta, pb, tb, dtol, atol, moved_x, moved_y, used, match_of):
    """Greedy one-to-one pairing of A's minutiae, moved by (rotation phi, translation), with B's:
    the nearest unpaired minutia of B within `dtol` pixels and `atol` radians. Returns the count and
    fills match_of[k] (the B index paired with A's k, or -1)."""
    na, nb = pa.shape[0], pb.shape[0]
    for k in range(na):
        moved_x[k] = c * pa[k, 0] - s * pa[k, 1] + tx
        moved_y[k] = s * pa[k, 0] + c * pa[k, 1] + ty
    used[:] = False
    m = 0
    for k in range(na):
        match_of[k] = -1
        best_d = dtol * dtol
        best_l = -1
        for l in range(nb):
            if used[l]:
                continue
            dx = moved_x[k] - pb[l, 0]
            dy = moved_y[k] - pb[l, 1]
            d2 = dx * dx + dy * dy
            if d2 < best_d and abs(_wrap1(ta[k] + phi - tb[l])) < atol:
                best_d = d2
                best_l = l
        if best_l >= 0:
            used[best_l] = True
            match_of[k] = best_l
            m += 1
    return m


@njit(cache=True, fastmath=True)
def _anchor_transform(i, j, xy_a, th_a, xy_b, th_b):
    """(cos, sin, tx, ty, phi) of the rigid transform that puts A's minutia i onto B's minutia j."""
    phi = th_b[j] - th_a[i]
    c, s = np.cos(phi), np.sin(phi)
    return c, s, xy_b[j, 0] - (c * xy_a[i, 0] - s * xy_a[i, 1]), xy_b[j, 1] - (s * xy_a[i, 0] + c * xy_a[i, 1]), phi


@njit(cache=True, fastmath=True)
def _least_squares_transform(pa, pb, match_of, m):
    """(cos, sin, tx, ty, phi) of the least-squares rigid transform (2-D Procrustes) of the m pairs."""
    max_, may, mbx, mby = 0.0, 0.0, 0.0, 0.0
    for k in range(pa.shape[0]):
        if match_of[k] >= 0:
            max_ += pa[k, 0]
            may += pa[k, 1]
            mbx += pb[match_of[k], 0]
            mby += pb[match_of[k], 1]
    max_ /= m
    may /= m
    mbx /= m
    mby /= m
    sxx, sxy = 0.0, 0.0
    for k in range(pa.shape[0]):
        if match_of[k] >= 0:
            ax, ay = pa[k, 0] - max_, pa[k, 1] - may
            bx, by = pb[match_of[k], 0] - mbx, pb[match_of[k], 1] - mby
            sxx += ax * bx + ay * by
            sxy += ax * by - ay * bx
    phi = np.arctan2(sxy, sxx)
    c, s = np.cos(phi), np.sin(phi)
    return c, s, mbx - (c * max_ - s * may), mby - (s * max_ + c * may), phi


@njit(cache=True, fastmath=True)
def _global_pairing(anchor_a, anchor_b, xy_a, th_a, xy_b, th_b, pa, ta, pb, tb, hull_a, hull_b, dtol, atol,
                    margin, lsm, cyl_a, cyl_b):
    """Global consolidation: the most minutiae paired under one alignment, how many minutiae of each
    print fall inside the other's area under it (the ones that *could* pair) and the summed local
    similarity of the pairs.

    Each anchor pair (a minutia of A, one of B) fixes a rotation and translation; the anchor that
    pairs the most is then refined once by the least-squares rigid transform of its pairs, which
    follows the whole overlap rather than the one anchor (skin stretches away from it); the refined
    alignment is kept when it pairs at least as many. Returns (paired, A's minutiae inside B's hull,
    B's minutiae inside A's moved hull, summed local similarity of the pairs, whether an alignment
    was found, and that alignment: cos, sin, tx, ty, phi).
    """
    na, nb = pa.shape[0], pb.shape[0]
    moved_x = np.empty(na)
    moved_y = np.empty(na)
    used = np.zeros(nb, np.bool_)
    match_of = np.empty(na, np.int64)
    # the best anchor's pairing and moved positions, kept rather than recomputed
    best_match = np.empty(na, np.int64)
    best_x = np.empty(na)
    best_y = np.empty(na)
    best, best_h = 0, -1
    for h in range(anchor_a.size):
        c, s, tx, ty, phi = _anchor_transform(anchor_a[h], anchor_b[h], xy_a, th_a, xy_b, th_b)
        m = _pair_under(c, s, tx, ty, phi, pa, ta, pb, tb, dtol, atol, moved_x, moved_y, used, match_of)
        if m > best:
            best, best_h = m, h
            best_match[:] = match_of
            best_x[:] = moved_x
            best_y[:] = moved_y
    if best_h < 0:
        return 0, na, nb, 0.0, False, 1.0, 0.0, 0.0, 0.0, 0.0
    c, s, tx, ty, phi = _anchor_transform(anchor_a[best_h], anchor_b[best_h], xy_a, th_a, xy_b, th_b)
    m = best
    if m >= 3:
        c2, s2, tx2, ty2, phi2 = _least_squares_transform(pa, pb, best_match, m)
        if abs(_wrap1(phi2 - phi)) < atol:
            m2 = _pair_under(c2, s2, tx2, ty2, phi2, pa, ta, pb, tb, dtol, atol, moved_x, moved_y, used,
                             match_of)
            if m2 >= m:
                m, c, s, tx, ty, phi = m2, c2, s2, tx2, ty2, phi2
                best_match[:] = match_of
                best_x[:] = moved_x
                best_y[:] = moved_y
    match_of, moved_x, moved_y = best_match, best_x, best_y
    sim = 0.0
    for k in range(na):
        l = match_of[k]
        if l >= 0 and cyl_a[k] >= 0 and cyl_b[l] >= 0:
            sim += lsm[cyl_a[k], cyl_b[l]]
    in_a = 0
    for k in range(na):
        if _inside_hull(moved_x[k], moved_y[k], hull_b, margin):
            in_a += 1
    in_b = 0  # B's minutiae moved back into A's frame (inverse rotation and translation)
    for l in range(nb):
        dx, dy = pb[l, 0] - tx, pb[l, 1] - ty
        if _inside_hull(c * dx + s * dy, -s * dx + c * dy, hull_a, margin):
            in_b += 1
    return m, in_a, in_b, sim, True, c, s, tx, ty, phi


@njit(cache=True, fastmath=True)
def _flow_agreement(c, s, tx, ty, phi, cos_a, sin_a, on_a, block_a, cos_b, sin_b, on_b, block_b):
    """How well the ridge flows agree where the prints overlap under the alignment (A moved onto B):
    the mean of cos 2(orientation difference) over A's blocks that land on B's print (1 = the same
    flow, about 0.5 between different fingers of one pattern class, 0 for unrelated directions),
    and how many blocks overlap. A chance alignment of two different fingers can pair a dozen
    minutiae, but rarely keeps the flow parallel over the whole overlap."""
    rows_a, cols_a = on_a.shape
    rows_b, cols_b = on_b.shape
    if rows_a == 0 or rows_b == 0:
        return 0.0, 0
    c2p, s2p = np.cos(2.0 * phi), np.sin(2.0 * phi)
    total = 0.0
    n = 0
    for i in range(rows_a):
        y = (i + 0.5) * block_a
        for j in range(cols_a):
            if not on_a[i, j]:
                continue
            x = (j + 0.5) * block_a
            jb = int(math.floor((c * x - s * y + tx) / block_b))
            ib = int(math.floor((s * x + c * y + ty) / block_b))
            if ib < 0 or ib >= rows_b or jb < 0 or jb >= cols_b or not on_b[ib, jb]:
                continue
            ra = cos_a[i, j] * c2p - sin_a[i, j] * s2p  # A's doubled angle turned by 2 phi
            rb = cos_a[i, j] * s2p + sin_a[i, j] * c2p
            total += ra * cos_b[ib, jb] + rb * sin_b[ib, jb]
            n += 1
    return total, n


@njit(cache=True)
def _compare(bits_a, valid_a, xy_a, th_a, dist_a, rel_a, rad_a, all_xy_a, all_th_a, hull_a, cyl_a,
             fc_a, fs_a, fo_a, fb_a,
             bits_b, valid_b, xy_b, th_b, dist_b, rel_b, rad_b, all_xy_b, all_th_b, hull_b, cyl_b,
             fc_b, fs_b, fo_b, fb_b,
             min_common_bits, max_dtheta, n_r, n_p, one_to_one, relax, rho, n_anchors, pairing):
    """Local similarities, consolidation and the global count in one compiled call (one dispatch)."""
    lsm = local_matrix(bits_a, valid_a, th_a, bits_b, valid_b, th_b, min_common_bits, max_dtheta)
    score, ia, ib = _consolidate(lsm, dist_a, rel_a, rad_a, dist_b, rel_b, rad_b, n_r, n_p, one_to_one,
                                 relax[0], int(relax[1]), rho[0], rho[1], rho[2], rho[3], rho[4], rho[5])
    k = min(ia.size, n_anchors)
    m, in_a, in_b, sim, aligned, c, s, tx, ty, phi = _global_pairing(
        ia[:k], ib[:k], xy_a, th_a, xy_b, th_b, all_xy_a, all_th_a, all_xy_b, all_th_b, hull_a, hull_b, pairing[0],
        pairing[1], pairing[2], lsm, cyl_a, cyl_b)
    flow_sum, flow_n = 0.0, 0
    if aligned:
        flow_sum, flow_n = _flow_agreement(c, s, tx, ty, phi, fc_a, fs_a, fo_a, fb_a, fc_b, fs_b, fo_b, fb_b)
    return score, m, in_a, in_b, sim, flow_sum, flow_n


def similarity_parts(a: Cylinders, b: Cylinders, p: MccParams = DEFAULT_PARAMS) -> tuple:
    """(MCC score 0..1, paired minutiae under the best alignment, minutiae of A inside B's area and of
    B inside A's under that alignment, summed local similarity of the pairs, mean ridge-flow agreement
    over the overlap (-1..1; 0 without flows or overlap), the overlap in FLOW_BLOCK-sided 500-dpi
    blocks, ridge period ratio smaller / larger (0 when either is not known))."""
    # the ridge-field parts count only when both templates carry one (flow and period)
    both = min(a.ridge_period, b.ridge_period) > 0 and a.flow_on.size > 0 and b.flow_on.size > 0
    period_ratio = min(a.ridge_period, b.ridge_period) / max(a.ridge_period, b.ridge_period) if both else 0.0
    if a.count == 0 or b.count == 0:
        return 0.0, 0, a.n_minutiae, b.n_minutiae, 0.0, 0.0, 0.0, period_ratio
    g = _grid(p)
    n_r = min(a.count, b.count, p.n_r_max)
    mcc, m, in_a, in_b, sim, flow_sum, flow_n = _compare(
        a.bits, a.valid, a.xy, a.theta, a.dist, a.rel_dir, a.radial, a.all_xy, a.all_theta, a.hull, a.cylinder_of,
        a.flow_cos2, a.flow_sin2, a.flow_on, a.flow_block,
        b.bits, b.valid, b.xy, b.theta, b.dist, b.rel_dir, b.radial, b.all_xy, b.all_theta, b.hull, b.cylinder_of,
        b.flow_cos2, b.flow_sin2, b.flow_on, b.flow_block,
        int(p.min_matchable * g.n_bits), p.max_direction_diff, n_r, _n_p(a.count, b.count, p), p.one_to_one,
        (p.w_relax, float(p.n_relax)), (p.mu_rho[0], p.tau_rho[0], p.mu_rho[1], p.tau_rho[1], p.mu_rho[2],
                                         p.tau_rho[2]),
        p.n_anchors, (p.pair_distance, p.pair_angle, p.overlap_margin))
    if not both:
        flow_sum, flow_n = 0.0, 0
    agreement = flow_sum / flow_n if flow_n else 0.0
    overlap = flow_n * (a.flow_block / FLOW_BLOCK) ** 2 if flow_n else 0.0  # in 500-dpi FLOW_BLOCK squares
    return float(mcc), int(m), int(in_a), int(in_b), float(sim), float(agreement), float(overlap), float(period_ratio)
