"""Minutia Cylinder-Code matching (after Cappelli, Ferrara & Maltoni, IEEE TPAMI 32(12), 2010).

Each minutia gets a *cylinder*: a small grid of cells (`ns` x `ns` spatial cells inside a radius-R
disc, `nd` angular layers) in the minutia's own frame, where each cell says how much neighbouring
minutiae sit there with that relative direction. Cylinders are invariant to translation and
rotation, so two minutiae are compared by comparing cylinders (local similarity); a relaxation
step then rewards pairs whose mutual geometry agrees (distances, relative directions), and the
score averages the most consistent pairs (LSA-R consolidation).

Speed: cylinders are built once per template (`Cylinders`), only cells inside the disc are stored,
and all local similarities come from four small float32 matrix products.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import erf, expit

from edge.biometrics.finger.template import FingerTemplate


@dataclass(frozen=True)
class MccParams:
    radius: float = 70.0          # R, pixels at 500 dpi
    ns: int = 8                   # spatial cells per side
    nd: int = 6                   # angular layers
    sigma_s: float = 28.0 / 3     # spatial spread of a minutia's contribution
    sigma_d: float = 2 * np.pi / 9  # angular spread
    mu_psi: float = 0.01          # sigmoid that turns contribution sums into 0..1 cell values
    tau_psi: float = 400.0
    omega: float = 50.0           # cells farther than this outside the minutiae's convex hull are invalid
    min_valid_cells: float = 0.75  # fraction of disc cells that must be valid for a usable cylinder
    min_neighbours: int = 2
    min_matchable: float = 0.6    # fraction of disc cells valid in both cylinders to compare them
    max_direction_diff: float = np.pi / 2
    # consolidation
    min_np: int = 4
    max_np: int = 12
    mu_p: float = 20.0
    tau_p: float = 0.4
    w_relax: float = 0.5
    n_relax: int = 5
    n_r_max: int = 40
    mu_rho: tuple[float, float, float] = (5.0, np.pi / 12, np.pi / 12)
    tau_rho: tuple[float, float, float] = (-8.0 / 5, -30.0, -30.0)


DEFAULT_PARAMS = MccParams()


def _wrap(a: np.ndarray) -> np.ndarray:
    """Angle difference wrapped to [-pi, pi)."""
    return (a + np.pi) % (2 * np.pi) - np.pi


def _sigmoid(v, mu: float, tau: float):
    return expit(tau * (v - mu))


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


_GRIDS: dict[MccParams, _Grid] = {}


def _grid(p: MccParams) -> _Grid:
    if p not in _GRIDS:
        _GRIDS[p] = _Grid(p)
    return _GRIDS[p]


@dataclass
class Cylinders:
    """Everything matching needs about one template, computed once."""

    values: np.ndarray     # (n, C*nd) float32 cell values, zero on invalid cells
    energy: np.ndarray     # (n, C) sum over layers of squared values
    valid: np.ndarray      # (n, C) float32 0/1 cell validity
    xy: np.ndarray         # (n, 2) float64 positions of the minutiae with usable cylinders
    theta: np.ndarray      # (n,) their directions (image frame: y down, radians)
    dist: np.ndarray       # (n, n) pairwise distances
    rel_dir: np.ndarray    # (n, n) wrapped theta_k - theta_t
    radial: np.ndarray     # (n, n) wrapped angle between theta_t and the line t->k
    # Local similarity needs four products; two matrix products give them:
    # values_a @ values_b.T, and [energy; valid]_a @ [valid, energy]_b.T (2n x 2n blocks).
    values_f: np.ndarray = None   # type: ignore[assignment]
    rows_ev: np.ndarray = None    # type: ignore[assignment]  # (2n, C): energy rows then valid rows
    cols_ve: np.ndarray = None    # type: ignore[assignment]  # (C, 2n): valid columns then energy columns

    def __post_init__(self) -> None:
        self.values_f = np.ascontiguousarray(self.values, dtype=np.float32)
        self.values_t = np.ascontiguousarray(self.values_f.T)
        self.rows_ev = np.ascontiguousarray(np.concatenate([self.energy, self.valid]), dtype=np.float32)
        self.cols_ve = np.ascontiguousarray(np.concatenate([self.valid, self.energy]).T, dtype=np.float32)

    @property
    def count(self) -> int:
        return int(self.xy.shape[0])


def _hull_outside_distance(points: np.ndarray, query: np.ndarray) -> np.ndarray:
    """How far each query point lies outside the convex hull of `points` (0 inside; mitred corners)."""
    import cv2

    if points.shape[0] < 3:
        centre = points.mean(axis=0)
        return np.sqrt(((query - centre) ** 2).sum(-1))
    hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    if hull.shape[0] < 3:
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


def build_cylinders(t: FingerTemplate, p: MccParams = DEFAULT_PARAMS) -> Cylinders:
    g = _grid(p)
    scale = 500.0 / t.dpi  # work in 500-dpi pixels whatever the capture resolution
    xy = np.stack([t.x, t.y], axis=1).astype(np.float64) * scale
    theta = np.mod(-t.angle.astype(np.float64), 2 * np.pi)  # ISO angle -> image frame (y down)
    n = xy.shape[0]
    C, nd = g.cells.shape[0], p.nd
    if n == 0:
        return _empty(C, nd)
    cos, sin = np.cos(theta), np.sin(theta)
    d = xy[None, :, :] - xy[:, None, :]                      # (m, t, 2): neighbour t seen from m
    local_u = d[..., 0] * cos[:, None] + d[..., 1] * sin[:, None]
    local_v = -d[..., 0] * sin[:, None] + d[..., 1] * cos[:, None]
    du = local_u[:, :, None] - g.cells[None, None, :, 0]
    dv = local_v[:, :, None] - g.cells[None, None, :, 1]
    dist2 = du * du + dv * dv                                # (m, t, C)
    spatial = np.exp(-dist2 / (2 * p.sigma_s ** 2)) / (p.sigma_s * np.sqrt(2 * np.pi))
    spatial[dist2 > (3 * p.sigma_s) ** 2] = 0.0
    idx = np.arange(n)
    spatial[idx, idx, :] = 0.0                               # a minutia is not its own neighbour
    rel = _wrap(theta[None, :] - theta[:, None])             # (m, t)
    alpha = _wrap(g.layer[None, None, :] - rel[:, :, None])  # (m, t, nd)
    half = g.layer_width / 2
    s = p.sigma_d * np.sqrt(2)
    directional = 0.5 * (erf((alpha + half) / s) - erf((alpha - half) / s))
    contrib = np.einsum("mtc,mtk->mck", spatial, directional)  # (m, C, nd)
    values = _sigmoid(contrib, p.mu_psi, p.tau_psi)

    # validity: inside the disc (by construction) and near the minutiae's convex hull
    rot = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # (m, 2, 2)
    global_cells = xy[:, None, :] + np.einsum("mij,cj->mci", rot, g.cells)
    out = _hull_outside_distance(xy, global_cells.reshape(-1, 2)).reshape(n, C)
    valid = out <= p.omega
    dist = np.sqrt((d ** 2).sum(-1))
    neighbours = ((dist <= p.radius + 3 * p.sigma_s).sum(axis=1) - 1)
    usable = (valid.mean(axis=1) >= p.min_valid_cells) & (neighbours >= p.min_neighbours)
    keep = np.nonzero(usable)[0]
    if keep.size == 0:
        return _empty(C, nd)
    valid_f = valid[keep].astype(np.float32)
    vals = (values[keep] * valid_f[:, :, None]).astype(np.float32)
    radial = _wrap(np.arctan2(d[..., 1], d[..., 0]) - theta[:, None])
    sub = np.ix_(keep, keep)
    return Cylinders(
        values=vals.reshape(keep.size, C * nd),
        energy=(vals ** 2).sum(axis=2),
        valid=valid_f,
        xy=xy[keep],
        theta=theta[keep],
        dist=dist[sub],
        rel_dir=rel[sub],
        radial=radial[sub],
    )


def _empty(C: int, nd: int) -> Cylinders:
    z = np.zeros((0, 0))
    return Cylinders(np.zeros((0, C * nd), np.float32), np.zeros((0, C), np.float32),
                     np.zeros((0, C), np.float32), np.zeros((0, 2)), np.zeros(0), z, z, z)


def local_similarity(a: Cylinders, b: Cylinders, p: MccParams = DEFAULT_PARAMS) -> np.ndarray:
    """(na, nb) matrix of cylinder similarities in 0..1, restricted to cells valid in both."""
    na, nb = a.count, b.count
    dot = a.values_f @ b.values_t
    blocks = a.rows_ev @ b.cols_ve
    norm_a2 = blocks[:na, :nb]                      # |a restricted to cells valid in both|^2
    common = blocks[na:, :nb]                       # number of cells valid in both
    norm_b2 = blocks[na:, nb:]
    diff = np.sqrt(np.maximum(norm_a2 + norm_b2 - 2 * dot, 0))
    denom = np.sqrt(norm_a2) + np.sqrt(norm_b2)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = np.where(denom > 0, 1 - diff / denom, 0)
    n_cells = a.valid.shape[1]
    sim[common < p.min_matchable * n_cells] = 0
    dtheta = np.abs(_wrap(a.theta[:, None] - b.theta[None, :]))
    sim[dtheta > p.max_direction_diff] = 0
    return sim


def similarity(a: Cylinders, b: Cylinders, p: MccParams = DEFAULT_PARAMS) -> float:
    """MCC score in 0..1 (LSA-R: assignment, relaxation, then the mean of the most efficient pairs)."""
    na, nb = a.count, b.count
    if na == 0 or nb == 0:
        return 0.0
    sim = local_similarity(a, b, p)
    rows, cols = linear_sum_assignment(sim, maximize=True)
    lam0 = sim[rows, cols]
    order = np.argsort(-lam0)[: p.n_r_max]
    order = order[lam0[order] > 0]
    if order.size == 0:
        return 0.0
    ia, ib, lam0 = rows[order], cols[order], lam0[order]
    nr = ia.size
    n_p = p.min_np + int(round(_sigmoid(min(na, nb), p.mu_p, p.tau_p) * (p.max_np - p.min_np)))
    if nr == 1:
        return float(lam0[0] * min(1, 1 / n_p))
    # compatibility of every two selected pairs: same distance, same relative direction, same bearing
    ra, ca, rb, cb = ia[:, None], ia[None, :], ib[:, None], ib[None, :]
    d1 = np.abs(a.dist[ra, ca] - b.dist[rb, cb])
    d2 = np.abs(_wrap(a.rel_dir[ra, ca] - b.rel_dir[rb, cb]))
    d3 = np.abs(_wrap(a.radial[ra, ca] - b.radial[rb, cb]))
    rho = (_sigmoid(d1, p.mu_rho[0], p.tau_rho[0]) * _sigmoid(d2, p.mu_rho[1], p.tau_rho[1])
           * _sigmoid(d3, p.mu_rho[2], p.tau_rho[2]))
    np.fill_diagonal(rho, 0)
    lam = lam0
    for _ in range(p.n_relax):
        lam = p.w_relax * lam + (1 - p.w_relax) * (rho @ lam) / (nr - 1)
    efficiency = lam / lam0
    best = np.argsort(-efficiency)[:n_p]
    return float(lam[best].sum() / n_p)
