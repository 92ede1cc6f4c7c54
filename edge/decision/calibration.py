"""Score calibration: each modality's raw comparison score -> a log-likelihood ratio (natural log).

    cal = load_calibration()                      # edge/decision/calibration.json (or a configured file)
    llr = cal.modality("face").llr(-distance)      # > 0 favours "same person", < 0 favours "different"
    t = cal.threshold(["face", "finger"], target_fmr=1e-5)   # fused LLR needed for that FMR

Why likelihood ratios: the face distance and the fingerprint similarity live on unrelated scales; once
both are LLRs they add (independent evidence), and one threshold on the sum serves any mix of factors.

The mapping is a logistic fit on development scores (genuine and impostor comparisons), with equal
class weights so that the fitted log-odds is the LLR itself, not a posterior that depends on how many
pairs of each kind the data set happened to hold. It is clamped to what the data can support: with N
impostor comparisons, no score can honestly claim an LR beyond about N (and symmetrically for genuine).

The decision threshold is not 1/target_fmr (the Turing bound holds only for perfectly calibrated LRs);
it is read off the impostor LLR distribution measured on the development data: the fused threshold for
several factors comes from the distribution of the SUM of independent impostor LLRs (a zero-effort
impostor's face and finger are unrelated), computed by convolving the per-modality histograms. Each
histogram first gets one pseudo-comparison at its LLR ceiling, so a rate the data are too few to show
is never assumed to be zero (`ModalityCalibration.impostor_with_unseen_tail`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from edge.errors import ConfigError

CALIBRATION_PATH = Path(__file__).resolve().parent / "calibration.json"
BIN_WIDTH = 0.05          # LLR histogram resolution (natural-log units)
SCHEMA = 1


@dataclass(frozen=True)
class Histogram:
    """Counts of LLR values on a fixed grid: bin i holds values in [start + i*width, start + (i+1)*width)."""

    start: float
    width: float
    counts: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, lo: float, hi: float, width: float = BIN_WIDTH) -> "Histogram":
        start = math.floor(lo / width) * width
        nbins = int(math.ceil((hi - start) / width)) + 1
        idx = np.clip(np.floor((np.asarray(values, np.float64) - start) / width).astype(np.int64), 0, nbins - 1)
        return cls(start, width, np.bincount(idx, minlength=nbins).astype(np.float64))

    @property
    def total(self) -> float:
        return float(self.counts.sum())

    def to_dict(self) -> dict:
        nz = np.nonzero(self.counts)[0]
        first = int(nz[0]) if nz.size else 0
        last = int(nz[-1]) + 1 if nz.size else 0
        return {"start": round(self.start + first * self.width, 10), "width": self.width,
                "counts": [int(c) for c in self.counts[first:last]]}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Histogram":
        return cls(float(d["start"]), float(d["width"]), np.asarray(d["counts"], dtype=np.float64))


def _convolve(a: Histogram, b: Histogram) -> Histogram:
    """Distribution of X + Y for independent X ~ a, Y ~ b (same bin width), as probabilities."""
    if abs(a.width - b.width) > 1e-12:
        raise ConfigError("calibration histograms must share a bin width")
    pa = a.counts / max(a.total, 1.0)
    pb = b.counts / max(b.total, 1.0)
    return Histogram(a.start + b.start, a.width, np.convolve(pa, pb))


def _sum_of(dists: Sequence[Histogram]) -> Histogram:
    """Distribution of the sum of independent LLRs, one histogram each, as probabilities."""
    if not dists:
        raise ConfigError("a threshold needs at least one factor")
    out = Histogram(dists[0].start, dists[0].width, dists[0].counts / max(dists[0].total, 1.0))
    for h in dists[1:]:
        out = _convolve(out, h)
    return out


def _exceedance_threshold(h: Histogram, target: float, *, normalise: bool = True) -> float:
    """Smallest grid value t such that P(X >= t) <= target (X's mass sits at its bin's lower edge,
    so the estimate errs on the safe side by at most one bin). `normalise=False`: the counts already are
    probabilities of a sub-event (they need not sum to one)."""
    p = h.counts / max(h.total, 1e-300) if normalise else h.counts
    tail = np.cumsum(p[::-1])[::-1]          # tail[i] = P(X in bin i or above)
    ok = np.nonzero(tail <= target)[0]
    i = int(ok[0]) if ok.size else len(p)
    return h.start + i * h.width


def _exceedance(h: Histogram, threshold: float) -> float:
    """P(X >= threshold) for a histogram of probabilities (mass at each bin's lower edge)."""
    edges = h.start + h.width * np.arange(h.counts.size)
    return float(h.counts[edges >= threshold - 1e-9].sum())


@dataclass(frozen=True)
class ModalityCalibration:
    modality: str
    score: str                  # what the raw score is, e.g. "negated Euclidean distance"
    slope: float
    intercept: float
    llr_min: float
    llr_max: float
    impostor: Histogram         # LLRs of the development impostor comparisons
    genuine: Histogram          # LLRs of the development genuine comparisons
    provenance: dict = field(default_factory=dict)

    def impostor_with_unseen_tail(self) -> Histogram:
        """The impostor histogram plus one pseudo-comparison at the LLR ceiling.

        N impostor comparisons cannot show that an impostor never scores at the top: the rate there may
        be anything up to about 1/N. Placing one pseudo-count at `llr_max` makes every threshold honour
        that: a target FMR below 1/(N+1) cannot be reached by this modality alone (its threshold lands
        above the ceiling), and in a fusion the unseen tail is charged against the FMR budget.
        """
        h = self.impostor
        top = int(math.floor((self.llr_max - h.start) / h.width + 1e-9))
        counts = np.zeros(max(len(h.counts), top + 1))
        counts[:len(h.counts)] = h.counts
        counts[top] += 1.0
        return Histogram(h.start, h.width, counts)

    def llr(self, score: float) -> float:
        return float(self.llrs(np.array([score], dtype=np.float64))[0])

    def llrs(self, scores: np.ndarray) -> np.ndarray:
        """LLRs of raw scores; -inf (a failure to acquire) and NaN get the floor, +inf the ceiling."""
        s = np.asarray(scores, dtype=np.float64)
        s = np.where(np.isnan(s), -np.inf, s)            # slope > 0: +-inf land on the clamp's ends
        return np.clip(self.slope * s + self.intercept, self.llr_min, self.llr_max)

    def score_for_llr(self, llr: float) -> float:
        """The raw score at which this modality reaches `llr` (for operators reading raw scores)."""
        return (llr - self.intercept) / self.slope

    def to_dict(self) -> dict:
        return {"modality": self.modality, "score": self.score, "slope": self.slope, "intercept": self.intercept,
                "llr_min": self.llr_min, "llr_max": self.llr_max, "impostor_llr": self.impostor.to_dict(),
                "genuine_llr": self.genuine.to_dict(), "provenance": self.provenance}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ModalityCalibration":
        return cls(d["modality"], d["score"], float(d["slope"]), float(d["intercept"]), float(d["llr_min"]),
                   float(d["llr_max"]), Histogram.from_dict(d["impostor_llr"]), Histogram.from_dict(d["genuine_llr"]),
                   dict(d.get("provenance", {})))


@dataclass(frozen=True)
class Calibration:
    modalities: dict[str, ModalityCalibration]
    created_at: str = ""

    def modality(self, name: str) -> ModalityCalibration:
        try:
            return self.modalities[name]
        except KeyError:
            raise ConfigError(f"no calibration for modality {name!r} (have: {sorted(self.modalities)})") from None

    def impostor_distribution(self, factors: Sequence[str], *, unseen_tail: bool = True) -> Histogram:
        """Distribution of the fused impostor LLR, each modality's tail made conservative first
        (`unseen_tail=False`: the measured comparisons alone, to show how much of a rate they carry)."""
        return _sum_of([self.modality(f).impostor_with_unseen_tail() if unseen_tail else self.modality(f).impostor
                        for f in factors])

    def band_then_sum_threshold(self, first: Sequence[str], second: str, band: tuple[float, float],
                                target: float) -> float:
        """Smallest grid t with P(S in band AND S + Y >= t) <= target, for a zero-effort impostor: S the fused
        impostor LLR of `first`, Y an independent impostor LLR of `second` (each with its unseen tail).

        The rate a sequential decision spends on its second stage (edge.decision.fusion): only impostors whose
        first stage fell in the close band get there. A bin of S that only partly overlaps the band counts
        whole, so the estimate errs on the safe side.
        """
        return _exceedance_threshold(self._band_then_sum(first, second, band), target, normalise=False)

    def band_then_sum_exceedance(self, first: Sequence[str], second: str, band: tuple[float, float],
                                 threshold: float, *, unseen_tail: bool = True) -> float:
        """P(S in band AND S + Y >= threshold) for a zero-effort impostor (see `band_then_sum_threshold`)."""
        return _exceedance(self._band_then_sum(first, second, band, unseen_tail=unseen_tail), threshold)

    def _band_then_sum(self, first: Sequence[str], second: str, band: tuple[float, float], *,
                       unseen_tail: bool = True) -> Histogram:
        s = self.impostor_distribution(first, unseen_tail=unseen_tail)
        lo, hi = band
        edges = s.start + s.width * np.arange(s.counts.size)
        in_band = (edges + s.width > lo + 1e-12) & (edges < hi - 1e-12)
        banded = Histogram(s.start, s.width, np.where(in_band, s.counts, 0.0))
        m = self.modality(second)
        y = m.impostor_with_unseen_tail() if unseen_tail else m.impostor
        return Histogram(s.start + y.start, s.width, np.convolve(banded.counts, y.counts / max(y.total, 1.0)))

    def impostor_exceedance(self, factors: Sequence[str], threshold: float, *, unseen_tail: bool = True) -> float:
        """P(fused impostor LLR >= threshold) on the development data (the FMR a threshold gives)."""
        return _exceedance(self.impostor_distribution(factors, unseen_tail=unseen_tail), threshold)

    def genuine_distribution(self, factors: Sequence[str]) -> Histogram:
        return _sum_of([self.modality(f).genuine for f in factors])

    def threshold(self, factors: Sequence[str], target_fmr: float) -> float:
        """Fused LLR at or above which a zero-effort impostor is accepted with probability <= target_fmr.

        Where the development data hold too few impostor comparisons to resolve `target_fmr`, the
        threshold lands above every observed impostor value (the data cannot show anything finer).
        """
        if not 0 < target_fmr < 1:
            raise ConfigError(f"target FMR must be in (0, 1), got {target_fmr}")
        return _exceedance_threshold(self.impostor_distribution(factors), target_fmr)

    def expected_fnmr(self, factors: Sequence[str], threshold: float) -> float:
        """Share of development genuine comparisons whose fused LLR falls below `threshold`."""
        h = self.genuine_distribution(factors)
        p = h.counts / max(h.total, 1e-300)
        edges = h.start + h.width * np.arange(p.size)
        return float(p[edges < threshold - 1e-12].sum())

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "created_at": self.created_at,
                "modalities": {k: v.to_dict() for k, v in sorted(self.modalities.items())}}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Calibration":
        if d.get("schema") != SCHEMA:
            raise ConfigError(f"calibration schema {d.get('schema')!r} is not {SCHEMA}")
        return cls({k: ModalityCalibration.from_dict(v) for k, v in d["modalities"].items()}, d.get("created_at", ""))


def load_calibration(path: str | Path | None = None) -> Calibration:
    path = Path(path) if path else CALIBRATION_PATH
    try:
        return Calibration.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ConfigError(f"calibration file not found: {path} (run `biogate calibrate`)") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"calibration file {path} is invalid: {exc}") from None


# -- fitting (development time) -----------------------------------------------------------------------
def fit_logistic(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the class-balanced logistic regression of "genuine" on the score.

    Balanced weights make the fitted log-odds equal to the log-likelihood ratio. A failure to acquire
    (-inf) carries no position on the score axis; it is left out of the fit and handled by the clamp.
    """
    from scipy.optimize import minimize

    g = np.asarray(genuine, np.float64)
    i = np.asarray(impostor, np.float64)
    g, i = g[np.isfinite(g)], i[np.isfinite(i)]
    if g.size < 2 or i.size < 2:
        raise ValueError("need at least two finite genuine and impostor scores")
    centre = (np.median(g) + np.median(i)) / 2
    scale = max(float(np.std(np.concatenate([g, i]))), 1e-9)
    xg, xi = (g - centre) / scale, (i - centre) / scale

    def loss(w: np.ndarray) -> float:
        a, b = w
        # -log sigmoid(z) = logaddexp(0, -z): stable for any z
        return float(np.mean(np.logaddexp(0, -(a * xg + b))) + np.mean(np.logaddexp(0, a * xi + b)))

    res = minimize(loss, np.array([1.0, 0.0]), method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-12,
                                                                               "maxiter": 4000})
    a, b = res.x
    slope = a / scale
    return float(slope), float(b - slope * centre)


def fit_modality(modality: str, score_name: str, genuine: Iterable[float], impostor: Iterable[float],
                 provenance: dict | None = None) -> ModalityCalibration:
    g = np.asarray(list(genuine) if not isinstance(genuine, np.ndarray) else genuine, np.float64)
    i = np.asarray(list(impostor) if not isinstance(impostor, np.ndarray) else impostor, np.float64)
    slope, intercept = fit_logistic(g, i)
    if slope <= 0:
        raise ValueError(f"{modality}: scores do not separate genuine from impostor (slope {slope:.3g})")
    llr_max = math.log(i.size + 1.0)
    llr_min = -math.log(g.size + 1.0)
    base = ModalityCalibration(modality, score_name, slope, intercept, llr_min, llr_max,
                               Histogram(0, BIN_WIDTH, np.zeros(1)), Histogram(0, BIN_WIDTH, np.zeros(1)))
    lg, li = base.llrs(g), base.llrs(i)
    return ModalityCalibration(modality, score_name, slope, intercept, llr_min, llr_max,
                               Histogram.of(li, llr_min, llr_max), Histogram.of(lg, llr_min, llr_max),
                               {**(provenance or {}), "genuine_comparisons": int(g.size),
                                "impostor_comparisons": int(i.size),
                                "genuine_failures": int(np.sum(~np.isfinite(g))),
                                "impostor_failures": int(np.sum(~np.isfinite(i)))})
